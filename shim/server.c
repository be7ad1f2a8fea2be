/* capsule-shim: the JSON-RPC server (server.h). */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "utils.h"

#define CLIENT_OUT_MAX    (256u << 20) /* unread answers a client may have waiting */
#define CLIENT_STREAM_MAX (8u << 20)   /* past this, stream notifications are dropped */
#define CLIENT_OUT_FDS    16
#define LINES_PER_TURN    64

struct out_fd
{
  uint64_t at; /* the byte of the output stream it goes with */
  int fd;
};

struct client
{
  struct server *srv;
  uint64_t id;
  int fd;
  struct loop_io io;
  struct loop_timer more; /* lines read already wait for the next turn */
  bool eof;               /* it hung up: answer what it sent, then close */
  struct line_reader in;
  struct buf out;
  uint64_t out_sent;          /* bytes of output sent so far */
  int in_fds[SERVER_FDS_MAX]; /* received, not yet taken */
  int n_in_fds;
  struct out_fd out_fds[CLIENT_OUT_FDS];
  int n_out_fds;
  struct client *next;
};

static struct client *
find_client (struct server *srv, uint64_t id)
{
  for (struct client *c = srv->clients; c; c = c->next)
    if (c->id == id)
      return c;
  return NULL;
}

static void
client_close (struct client *c)
{
  struct server *srv = c->srv;
  for (struct client **p = &srv->clients; *p; p = &(*p)->next)
    if (*p == c)
      {
        *p = c->next;
        break;
      }
  loop_io_del (srv->loop, &c->io);
  loop_timer_stop (srv->loop, &c->more);
  close (c->fd);
  for (int i = 0; i < c->n_in_fds; i++)
    close (c->in_fds[i]);
  for (int i = 0; i < c->n_out_fds; i++)
    close (c->out_fds[i].fd);
  line_reader_release (&c->in);
  buf_release (&c->out);
  srv->n_clients--;
  free (c);
}

/* Send what is queued; a descriptor goes with the first byte of the answer it belongs to. */
static void
client_flush (struct client *c)
{
  while (buf_size (&c->out))
    {
      size_t len = buf_size (&c->out);
      char cbuf[CMSG_SPACE (sizeof (int))] = { 0 };
      struct iovec iov;
      struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
      ssize_t n;
      if (c->n_out_fds > 0)
        {
          uint64_t at = c->out_fds[0].at;
          if (at > c->out_sent && at - c->out_sent < len)
            len = at - c->out_sent; /* up to the answer that carries it */
          else if (at == c->out_sent)
            {
              struct cmsghdr *cm;
              mh.msg_control = cbuf;
              mh.msg_controllen = sizeof cbuf;
              cm = CMSG_FIRSTHDR (&mh);
              cm->cmsg_level = SOL_SOCKET;
              cm->cmsg_type = SCM_RIGHTS;
              cm->cmsg_len = CMSG_LEN (sizeof (int));
              memcpy (CMSG_DATA (cm), &c->out_fds[0].fd, sizeof (int));
            }
        }
      iov = (struct iovec){ (void *)buf_bytes (&c->out), len };
      n = sendmsg (c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      if (mh.msg_control)
        {
          close (c->out_fds[0].fd);
          memmove (c->out_fds, c->out_fds + 1, --c->n_out_fds * sizeof c->out_fds[0]);
        }
      buf_consume (&c->out, n);
      c->out_sent += n;
    }
  loop_io_set (c->srv->loop, &c->io,
               (c->eof ? 0 : EPOLLIN | EPOLLRDHUP) | (buf_size (&c->out) ? (uint32_t)EPOLLOUT : 0));
}

static char *
backlog_error (const char *id_json, size_t len, size_t unread)
{
  struct rpc_error *e = rpc_error_new (
      429, "client_backlog", NULL,
      "the answer (%zu bytes) would make more than %u bytes unread on this connection (%zu "
      "are): read the answers already sent, then ask again",
      len, CLIENT_OUT_MAX, unread);
  char *text = rpc_error_text (id_json, e);
  rpc_error_free (e);
  return text;
}

/* Queue TEXT (taken) for the client.  A notification is dropped for a client that does not
   read; an answer that would pass the cap becomes an error for that request alone, so the
   other answers on the connection (a gateway's other tenants') stay as they are. */
static void
client_send (struct server *srv, uint64_t client_id, const char *id_json, char *text,
             bool droppable, int fd)
{
  struct client *c = client_id ? find_client (srv, client_id) : NULL;
  size_t len = strlen (text);
  if (c && droppable && buf_size (&c->out) > CLIENT_STREAM_MAX)
    c = NULL;
  if (c && buf_size (&c->out) + len > CLIENT_OUT_MAX)
    {
      char *small = backlog_error (id_json ? id_json : "null", len, buf_size (&c->out));
      free (text);
      text = small;
      len = strlen (text);
      if (fd >= 0)
        close (steal_fd (&fd));
    }
  if (c && fd >= 0 && c->n_out_fds == CLIENT_OUT_FDS)
    {
      struct rpc_error *e = rpc_error_new (429, "client_backlog", NULL,
                                           "too many descriptors wait on this connection");
      free (text);
      text = rpc_error_text (id_json ? id_json : "null", e);
      rpc_error_free (e);
      len = strlen (text);
      close (steal_fd (&fd));
    }
  if (c)
    {
      if (fd >= 0)
        c->out_fds[c->n_out_fds++] = (struct out_fd){ c->out_sent + buf_size (&c->out), fd };
      buf_append (&c->out, text, len);
      client_flush (c);
    }
  else if (fd >= 0)
    close (fd);
  free (text);
}

/* ------------------------------------------------------------------ calls */

struct call *
call_keep (const struct call *c)
{
  struct call *k = xmalloc0 (sizeof *k);
  k->srv = c->srv;
  k->client_id = c->client_id;
  k->id_json = c->id_json ? xstrdup (c->id_json) : NULL;
  return k;
}

void
call_free (struct call *c)
{
  if (c == NULL)
    return;
  free (c->id_json);
  free (c);
}

void
call_reply_fd (struct call *c, char *result_json, int fd)
{
  if (c->id_json)
    client_send (c->srv, c->client_id, c->id_json, rpc_response_text (c->id_json, result_json),
                 false, fd);
  else if (fd >= 0)
    close (fd);
  free (result_json);
}

void
call_reply (struct call *c, char *result_json)
{
  call_reply_fd (c, result_json, -1);
}

void
call_error (struct call *c, struct rpc_error *e)
{
  if (c->id_json)
    client_send (c->srv, c->client_id, c->id_json, rpc_error_text (c->id_json, e), false, -1);
  rpc_error_free (e);
}

void
call_notify (struct call *c, const char *method, const char *params_json)
{
  client_send (c->srv, c->client_id, NULL, rpc_notification_text (method, params_json), true, -1);
}

int
call_take_fd (struct call *c)
{
  struct client *cl = find_client (c->srv, c->client_id);
  int fd;
  if (cl == NULL || cl->n_in_fds == 0)
    return -1;
  fd = cl->in_fds[0];
  memmove (cl->in_fds, cl->in_fds + 1, --cl->n_in_fds * sizeof (int));
  return fd;
}

/* ------------------------------------------------------------------ dispatch */

static struct rpc_error *
protocol_error (int code, const char *err_code, const char *fmt, const char *detail)
{
  struct rpc_error *e = rpc_error_new (400, err_code, NULL, fmt, detail);
  e->code = code;
  return e;
}

static struct rpc_error *
parse_failure (capsule_error *err)
{
  struct rpc_error *e;
  if (err->status == ELOOP)
    e = rpc_error_new (400, "nesting_too_deep", NULL, "%s", err->msg);
  else if (err->status == E2BIG)
    e = rpc_error_new (413, "message_too_large", NULL, "%s", err->msg);
  else
    e = protocol_error (-32700, "invalid_request", "parse error: %s", err->msg);
  return e;
}

static const struct method *
find_method (struct server *srv, const char *name)
{
  for (size_t i = 0; i < srv->n_methods; i++)
    if (strcmp (srv->methods[i].name, name) == 0)
      return &srv->methods[i];
  return NULL;
}

static void
dispatch (struct client *cl, const char *line, size_t len)
{
  struct server *srv = cl->srv;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *req = NULL;
  _cleanup_free_ char *id = NULL, *result = NULL;
  struct call call = { srv, cl->id, "null" };
  const struct method *m;
  const char *method, *version;
  json_value *params;
  struct rpc_error *e;

  req = json_parse_n (line, len, 0, "request", &err);
  if (req == NULL)
    {
      call_error (&call, parse_failure (err));
      return;
    }
  if (!json_is_object (req))
    {
      call_error (&call, protocol_error (-32600, "invalid_request", "%s",
                                         "invalid request: not a JSON object"));
      return;
    }
  id = rpc_id_text (json_get (req, "id"));
  call.id_json = id ? id : "null";
  version = json_string (json_get (req, "jsonrpc"));
  method = json_string (json_get (req, "method"));
  params = json_get (req, "params");
  if (id == NULL || version == NULL || strcmp (version, "2.0") != 0 || method == NULL)
    {
      call_error (&call, protocol_error (-32600, "invalid_request", "invalid request: %s",
                                         id == NULL ? "id must be a string, a number or null"
                                                    : "needs \"jsonrpc\": \"2.0\" and a method"));
      return;
    }
  if (json_get (req, "id") == NULL)
    call.id_json = NULL; /* a notification: no answer */
  if (json_has_nul (req))
    {
      call_error (&call, protocol_error (-32602, "invalid_request", "%s",
                                         "invalid params: strings may not hold NUL (\\u0000)"));
      return;
    }
  if (params && !json_is_object (params))
    {
      call_error (&call,
                  protocol_error (-32602, "invalid_request", "%s", "params must be an object"));
      return;
    }
  m = find_method (srv, method);
  if (m == NULL)
    {
      call_error (&call,
                  protocol_error (-32601, "invalid_request", "method not found: %s", method));
      return;
    }
  if (call.id_json == NULL && m->needs_answer)
    return;
  e = rpc_check_params (params, m->params);
  if (e)
    {
      e->code = -32602;
      call_error (&call, e);
      return;
    }
  e = m->fn (srv->ctx, &call, params, &result);
  if (e)
    call_error (&call, e);
  else if (result)
    call_reply (&call, steal_pointer (&result));
}

/* ------------------------------------------------------------------ connections */

static void
take_fds (struct client *c, struct msghdr *mh)
{
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (mh); cm; cm = CMSG_NXTHDR (mh, cm))
    {
      size_t n;
      int *fds;
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        continue;
      n = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      fds = (int *)CMSG_DATA (cm);
      for (size_t i = 0; i < n; i++)
        {
          int fd;
          memcpy (&fd, &fds[i], sizeof fd);
          if (c->n_in_fds < SERVER_FDS_MAX)
            c->in_fds[c->n_in_fds++] = fd;
          else
            close (fd); /* a client that sends descriptors nobody takes loses them */
        }
    }
}

/* Answer up to LINES_PER_TURN complete lines: a client that sends a flood of small requests
   gets a bounded share of each turn.  True when more wait (and C still exists). */
static bool
client_take_lines (struct client *c)
{
  struct server *srv = c->srv;
  uint64_t id = c->id;
  for (int n = 0; n < LINES_PER_TURN; n++)
    {
      char *line;
      size_t len;
      enum line_status ls = line_reader_next (&c->in, &line, &len);
      if (ls == LINE_NONE)
        return false;
      if (ls == LINE_TOO_LONG)
        {
          struct call call = { srv, c->id, "null" };
          call_error (&call, rpc_error_new (413, "message_too_large", NULL,
                                            "a request line is larger than %llu bytes",
                                            (unsigned long long)srv->max_message));
          continue;
        }
      dispatch (c, line, len);
      if (find_client (srv, id) == NULL)
        return false;
    }
  return true;
}

/* Go on with the lines read already; a client that hung up is closed once they are answered
   (a request sent just before the hang-up still runs). */
static void
go_on (struct client *c)
{
  struct server *srv = c->srv;
  uint64_t id = c->id;
  bool more = client_take_lines (c);
  if (find_client (srv, id) == NULL)
    return;
  if (more)
    loop_timer_in (srv->loop, &c->more, 0);
  else if (c->eof && buf_size (&c->out) == 0)
    client_close (c);
  else if (c->eof)
    loop_io_set (srv->loop, &c->io, EPOLLOUT); /* the answers go out, then it closes */
}

static void
on_more_lines (struct loop_timer *t)
{
  go_on (t->data);
}

static void
client_read (struct client *c)
{
  char chunk[65536];
  char cbuf[CMSG_SPACE (SERVER_FDS_MAX * sizeof (int))];
  if (loop_timer_armed (&c->more) || c->eof)
    return; /* what was read already goes first */
  for (int rounds = 0; rounds < 16; rounds++)
    {
      struct iovec iov = { chunk, sizeof chunk };
      struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf
      };
      ssize_t n = recvmsg (c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n > 0 || mh.msg_controllen > 0)
        take_fds (c, &mh);
      if (n <= 0)
        {
          c->eof = true;
          break;
        }
      line_reader_feed (&c->in, chunk, n);
    }
  go_on (c);
}

static void
on_client_io (struct loop_io *io, uint32_t revents)
{
  struct client *c = io->data;
  struct server *srv = c->srv;
  uint64_t id = c->id;
  if (revents & EPOLLOUT)
    client_flush (c);
  if (c->eof)
    {
      if ((buf_size (&c->out) == 0 && !loop_timer_armed (&c->more))
          || (revents & (EPOLLHUP | EPOLLERR)))
        client_close (c);
      return;
    }
  if (find_client (srv, id) && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
    client_read (c);
}

static void
on_listen (struct loop_io *io, uint32_t revents)
{
  struct server *srv = io->data;
  (void)revents;
  for (;;)
    {
      int fd = accept4 (srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      struct client *c;
      if (fd < 0)
        return;
      if (srv->n_clients >= srv->max_clients)
        {
          struct rpc_error *e
              = rpc_error_new (429, "too_many_connections", NULL, "too many connections");
          char *text = rpc_error_text ("null", e);
          send (fd, text, strlen (text), MSG_NOSIGNAL | MSG_DONTWAIT);
          free (text);
          rpc_error_free (e);
          close (fd);
          continue;
        }
      c = xmalloc0 (sizeof *c);
      c->srv = srv;
      c->id = ++srv->next_client_id;
      c->fd = fd;
      c->in.max = srv->max_message;
      c->io = (struct loop_io){ .fn = on_client_io, .data = c };
      c->more = (struct loop_timer){ .fn = on_more_lines, .data = c };
      c->next = srv->clients;
      srv->clients = c;
      srv->n_clients++;
      loop_io_add (srv->loop, &c->io, fd, EPOLLIN | EPOLLRDHUP);
    }
}

int
server_init (struct server *srv, struct loop *l, int listen_fd, int max_clients,
             uint64_t max_message, const struct method *methods, size_t n_methods, void *ctx)
{
  *srv = (struct server){ .loop = l,
                          .listen_fd = listen_fd,
                          .max_clients = max_clients,
                          .max_message = max_message,
                          .methods = methods,
                          .n_methods = n_methods,
                          .ctx = ctx };
  srv->listen_io = (struct loop_io){ .fn = on_listen, .data = srv };
  return loop_io_add (l, &srv->listen_io, listen_fd, EPOLLIN);
}

void
server_release (struct server *srv)
{
  while (srv->clients)
    client_close (srv->clients);
  loop_io_del (srv->loop, &srv->listen_io);
}
