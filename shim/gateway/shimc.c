/* capsule-gateway: a blocking JSON-RPC client of capsule-shim, one per HTTP connection. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gateway.h"
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
  line_reader_release (&c->in);
  memset (&c->in, 0, sizeof c->in);
}

int
shimc_send (struct shimc *c, const char *socket_path, const char *method, const char *params_json,
            uint64_t *ret_id, capsule_error **err)
{
  _cleanup_free_ char *head = NULL;
  uint64_t id;
  if (shimc_connect (c, socket_path, err) < 0)
    return -1;
  id = ++c->next_id;
  head = xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\",\"params\":",
                    (unsigned long long)id, method);
  /* three writes of one line: the shim frames by newline, and the params (maybe a large upload)
     are not copied once more */
  if (write_all (c->fd, head, strlen (head)) < 0
      || write_all (c->fd, params_json, strlen (params_json)) < 0
      || write_all (c->fd, "}\n", 2) < 0)
    {
      int e = errno;
      shimc_close (c);
      return capsule_error_make (err, e, "write to the shim");
    }
  *ret_id = id;
  return 0;
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
          json_value *m = json_parse (line, "the shim's answer", err);
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
      n = read (c->fd, chunk, sizeof chunk);
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
shimc_call (struct shimc *c, const char *socket_path, const char *method, const char *params_json,
            shimc_notify_fn notify, void *ctx, json_value **ret_msg, capsule_error **err)
{
  uint64_t id;
  if (shimc_send (c, socket_path, method, params_json, &id, err) < 0)
    return -1;
  for (;;)
    {
      json_value *m = NULL;
      json_value *mid;
      if (shimc_next (c, &m, err) < 0)
        return -1;
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
