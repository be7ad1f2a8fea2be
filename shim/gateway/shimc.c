/* capsule-gateway: a blocking JSON-RPC client of capsule-shim, one per HTTP connection.  File
 * contents travel as descriptors beside the JSON (SCM_RIGHTS), not inside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway.h"
#include "shim-util.h"
#include "utils.h"

#define SHIMC_LINE_MAX (160u << 20) /* the base64 of the largest file the shim sends, and more */

static int
shimc_connect (struct shimc *c, const char *path, capsule_error **err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;
  if (c->fd >= 0)
    return 0;
  if (strlen (path) >= sizeof addr.sun_path)
    return capsule_error_make (err, 0, "shim socket path too long: %s", path);
  strcpy (addr.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return capsule_error_make (err, errno, "socket");
  if (connect (fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    {
      int e = errno;
      close (fd);
      return capsule_error_make (err, e, "connect to the shim at %s", path);
    }
  c->fd = fd;
  c->in.max = SHIMC_LINE_MAX;
  return 0;
}

void
shimc_close (struct shimc *c)
{
  if (c->fd >= 0)
    close (c->fd);
  c->fd = -1;
  if (c->in_fd >= 0)
    close (c->in_fd);
  c->in_fd = -1;
  c->quiet_since_ms = 0;
  line_reader_release (&c->in);
  memset (&c->in, 0, sizeof c->in);
}

/* The first bytes of a request, with descriptor FD (SCM_RIGHTS) when FD >= 0. */
static int
send_head (int sock, const char *head, int fd)
{
  char cbuf[CMSG_SPACE (sizeof (int))] = { 0 };
  struct iovec iov = { (void *)head, strlen (head) };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  ssize_t n;
  if (fd >= 0)
    {
      struct cmsghdr *cm;
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      cm = CMSG_FIRSTHDR (&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN (sizeof (int));
      memcpy (CMSG_DATA (cm), &fd, sizeof (int));
    }
  do
    n = sendmsg (sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  return write_all (sock, head + n, iov.iov_len - n) < 0 ? -1 : 0;
}

int
shimc_send_fd (struct shimc *c, const char *socket_path, const char *method,
               const char *params_json, int fd, uint64_t *ret_id, capsule_error **err)
{
  _cleanup_free_ char *head = NULL;
  uint64_t id;
  if (shimc_connect (c, socket_path, err) < 0)
    return -1;
  id = ++c->next_id;
  head = xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\",\"params\":",
                    (unsigned long long)id, method);
  /* three writes of one line: the shim frames by newline, and the params are not copied once
     more; a descriptor goes with the first byte */
  if (send_head (c->fd, head, fd) < 0 || write_all (c->fd, params_json, strlen (params_json)) < 0
      || write_all (c->fd, "}\n", 2) < 0)
    {
      int e = errno;
      shimc_close (c);
      return capsule_error_make (err, e, "write to the shim");
    }
  *ret_id = id;
  c->quiet_since_ms = 0;
  return 0;
}

int
shimc_send (struct shimc *c, const char *socket_path, const char *method, const char *params_json,
            uint64_t *ret_id, capsule_error **err)
{
  return shimc_send_fd (c, socket_path, method, params_json, -1, ret_id, err);
}

int
shimc_take_fd (struct shimc *c)
{
  return steal_fd (&c->in_fd);
}

/* Read what the shim sent, keeping a descriptor that came with it (one call at a time is under
   way on a connection, so it is that call's; an older one nobody took is closed). */
static ssize_t
recv_some (struct shimc *c, char *buf, size_t len)
{
  char cbuf[CMSG_SPACE (4 * sizeof (int))];
  struct iovec iov = { buf, len };
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n = recvmsg (c->fd, &mh, MSG_CMSG_CLOEXEC);
  if (n < 0)
    return n;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); cm; cm = CMSG_NXTHDR (&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      {
        size_t k = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        for (size_t i = 0; i < k; i++)
          {
            int fd;
            memcpy (&fd, CMSG_DATA (cm) + i * sizeof (int), sizeof fd);
            if (c->in_fd >= 0)
              close (c->in_fd);
            c->in_fd = fd;
          }
      }
  return n;
}

int
shimc_next (struct shimc *c, json_value **ret_msg, capsule_error **err)
{
  for (;;)
    {
      char *line;
      size_t len;
      char chunk[65536];
      ssize_t n;
      enum line_status st = line_reader_next (&c->in, &line, &len);
      if (st == LINE_OK)
        {
          json_value *m = json_parse_n (line, len, JSON_NUL_REPLACE, "the shim's answer", err);
          c->quiet_since_ms = 0;
          if (m == NULL)
            {
              shimc_close (c);
              return -1;
            }
          *ret_msg = m;
          return 0;
        }
      if (st == LINE_TOO_LONG)
        {
          shimc_close (c);
          return capsule_error_make (err, EMSGSIZE, "the shim's answer is too long");
        }
      {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int64_t now = shim_monotonic_ms ();
        int64_t left;
        int r;
        if (c->quiet_since_ms == 0)
          c->quiet_since_ms = now;
        left = (c->wait_ms > 0 ? c->wait_ms : gw.shim_wait_ms) - (now - c->quiet_since_ms);
        if (left < 0)
          left = 0;
        r = poll (&p, 1, (int)(c->tick_ms > 0 && c->tick_ms < left ? c->tick_ms : left));
        if (r < 0 && errno == EINTR)
          continue;
        if (r == 0 && c->tick_ms > 0
            && shim_monotonic_ms () - c->quiet_since_ms
                   < (c->wait_ms > 0 ? c->wait_ms : gw.shim_wait_ms))
          {
            *ret_msg = NULL;
            return 0;
          }
        if (r == 0)
          {
            c->quiet_since_ms = 0;
            /* its answer, if it ever comes, must not be taken for the next call's */
            shimc_close (c);
            return capsule_error_make (err, ETIMEDOUT, "the shim did not answer in time");
          }
      }
      n = recv_some (c, chunk, sizeof chunk);
      if (n > 0)
        c->quiet_since_ms = shim_monotonic_ms ();
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = n < 0 ? errno : ECONNRESET;
          shimc_close (c);
          return capsule_error_make (err, e, "read from the shim");
        }
      line_reader_feed (&c->in, chunk, n);
    }
}

int
shimc_call_fd (struct shimc *c, const char *socket_path, const char *method,
               const char *params_json, int send_fd, shimc_notify_fn notify, void *ctx,
               json_value **ret_msg, capsule_error **err)
{
  uint64_t id;
  if (c->in_fd >= 0)
    close (steal_fd (&c->in_fd)); /* of an answer nobody took */
  if (shimc_send_fd (c, socket_path, method, params_json, send_fd, &id, err) < 0)
    return -1;
  for (;;)
    {
      json_value *m = NULL;
      json_value *mid;
      if (shimc_next (c, &m, err) < 0)
        return -1;
      if (m == NULL)
        {
          if (notify)
            notify (ctx, NULL);
          continue;
        }
      mid = json_get (m, "id");
      if (mid && json_is_integer (mid) && (uint64_t)json_integer (mid) == id)
        {
          *ret_msg = m;
          return 0;
        }
      if (mid == NULL && notify)
        notify (ctx, m);
      json_free (m);
    }
}

int
shimc_call (struct shimc *c, const char *socket_path, const char *method, const char *params_json,
            shimc_notify_fn notify, void *ctx, json_value **ret_msg, capsule_error **err)
{
  return shimc_call_fd (c, socket_path, method, params_json, -1, notify, ctx, ret_msg, err);
}
