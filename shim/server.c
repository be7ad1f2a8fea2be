/* capsule-shim: the event loop.  Clients speak JSON-RPC 2.0, one object per line; the loop
 * frames, checks and dispatches through the method table, and keeps every deadline (interpreter
 * start-up, cell timeouts, expiry) as the epoll timeout. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "utils.h"

void
shim_watch (struct shim *s, int fd, struct watcher *w, bool out)
{
  struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = w };
  if (epoll_ctl (s->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
    epoll_ctl (s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void
shim_unwatch (struct shim *s, int fd)
{
  epoll_ctl (s->epfd, EPOLL_CTL_DEL, fd, NULL);
}

struct client *
shim_client (struct shim *s, uint64_t id)
{
  for (struct client *c = s->clients; c; c = c->next)
    if (c->id == id)
      return c;
  return NULL;
}

static void
client_flush (struct shim *s, struct client *c)
{
  while (c->out.len)
    {
      ssize_t n = send (c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      buf_consume (&c->out, n);
    }
  if ((c->out.len > 0) != c->want_out)
    {
      c->want_out = c->out.len > 0;
      shim_watch (s, c->fd, &c->w, c->want_out);
    }
}

#define CLIENT_OUT_MAX    (256u << 20) /* unread answers a client may have waiting */
#define CLIENT_STREAM_MAX (8u << 20)   /* past this, stream notifications are dropped */

static void client_close (struct shim *s, struct client *c);

static void
send_text (struct shim *s, uint64_t client_id, char *text, bool droppable)
{
  struct client *c = client_id ? shim_client (s, client_id) : NULL;
  size_t len = strlen (text);
  /* a client that went away mid-call: the answer has nowhere to go */
  if (c && droppable && c->out.len > CLIENT_STREAM_MAX)
    c = NULL; /* it does not read: streamed output is not worth the shim's memory */
  if (c && c->out.len + len > CLIENT_OUT_MAX)
    {
      client_close (s, c);
      c = NULL;
    }
  if (c)
    {
      buf_append (&c->out, text, len);
      client_flush (s, c);
    }
  free (text);
}

void
shim_send (struct shim *s, uint64_t client_id, char *text)
{
  send_text (s, client_id, text, false);
}

void
shim_notify (struct shim *s, uint64_t client_id, char *text)
{
  send_text (s, client_id, text, true);
}

void
shim_reply (struct shim *s, struct call *c, char *result_json)
{
  if (c->id_json)
    shim_send (s, c->client_id, rpc_response_text (c->id_json, result_json));
  free (result_json);
}

void
shim_reply_error (struct shim *s, struct call *c, struct rpc_error *e)
{
  if (c->id_json)
    shim_send (s, c->client_id, rpc_error_text (c->id_json, e));
  rpc_error_free (e);
}

static struct rpc_error *
protocol_error (int code, const char *fmt, const char *detail)
{
  struct rpc_error *e = rpc_error_new (400, "invalid_request", NULL, fmt, detail);
  e->code = code;
  return e;
}

static void
dispatch (struct shim *s, struct client *cl, const char *line, size_t len)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *req = NULL;
  _cleanup_free_ char *id = NULL, *result = NULL;
  struct call call = { cl->id, NULL };
  const struct method *m;
  const char *method, *version;
  json_value *params;
  struct rpc_error *e;

  if (strlen (line) != len)
    {
      call.id_json = "null";
      shim_reply_error (s, &call, protocol_error (-32700, "parse error: %s", "a NUL byte"));
      return;
    }
  req = json_parse (line, "request", &err);
  if (req == NULL || !json_is_object (req))
    {
      call.id_json = "null";
      shim_reply_error (s, &call,
                        protocol_error (req ? -32600 : -32700, "%s",
                                        req ? "invalid request: not a JSON object" : err->msg));
      return;
    }
  id = rpc_id_text (json_get (req, "id"));
  call.id_json = id ? id : "null";
  version = json_string (json_get (req, "jsonrpc"));
  method = json_string (json_get (req, "method"));
  params = json_get (req, "params");
  if (id == NULL || version == NULL || strcmp (version, "2.0") != 0 || method == NULL)
    {
      shim_reply_error (s, &call,
                        protocol_error (-32600, "invalid request: %s",
                                        id == NULL ? "id must be a string, a number or null"
                                                   : "needs \"jsonrpc\": \"2.0\" and a method"));
      return;
    }
  if (json_get (req, "id") == NULL)
    call.id_json = NULL; /* a notification: no answer */
  if (rpc_has_nul_escape (line))
    {
      shim_reply_error (
          s, &call,
          protocol_error (-32602, "%s", "invalid params: strings may not hold NUL (\\u0000)"));
      return;
    }
  if (params && !json_is_object (params))
    {
      shim_reply_error (s, &call, protocol_error (-32602, "%s", "params must be an object"));
      return;
    }
  m = methods_find (method);
  if (m == NULL)
    {
      shim_reply_error (s, &call, protocol_error (-32601, "method not found: %s", method));
      return;
    }
  /* A create or an exec sent as a notification would make a container or run code whose
     result nobody can ever learn: such notifications are dropped. */
  if (call.id_json == NULL
      && (strcmp (method, "containers.create") == 0 || strcmp (method, "containers.exec") == 0))
    return;
  e = rpc_check_params (params, m->params);
  if (e)
    {
      e->code = -32602;
      shim_reply_error (s, &call, e);
      return;
    }
  e = m->fn (s, &call, params, &result);
  if (e)
    shim_reply_error (s, &call, e);
  else if (result)
    shim_reply (s, &call, steal_pointer (&result));
}

static void
client_close (struct shim *s, struct client *c)
{
  for (struct client **p = &s->clients; *p; p = &(*p)->next)
    if (*p == c)
      {
        *p = c->next;
        break;
      }
  shim_unwatch (s, c->fd);
  close (c->fd);
  buf_release (&c->in.b);
  buf_release (&c->out);
  s->n_clients--;
  free (c);
}

static void
client_read (struct shim *s, struct client *c)
{
  char chunk[65536];
  for (int rounds = 0; rounds < 64; rounds++)
    {
      ssize_t n = recv (c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
      char *line;
      size_t len;
      enum line_status ls;
      uint64_t id = c->id;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        {
          client_close (s, c);
          return;
        }
      line_reader_feed (&c->in, chunk, n);
      while ((ls = line_reader_next (&c->in, &line, &len)) != LINE_NONE)
        {
          if (ls == LINE_TOO_LONG)
            {
              struct call call = { c->id, "null" };
              shim_reply_error (s, &call,
                                rpc_error_new (413, "message_too_large", NULL,
                                               "a request line is larger than %llu bytes",
                                               (unsigned long long)s->cfg.max_message));
              continue;
            }
          dispatch (s, c, line, len);
          free (line);
          if (shim_client (s, id) == NULL)
            return;
        }
    }
}

static void
accept_clients (struct shim *s)
{
  for (;;)
    {
      int fd = accept4 (s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      struct client *c;
      if (fd < 0)
        return;
      if (s->n_clients >= s->cfg.max_clients)
        {
          static const char busy[]
              = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"too "
                "many connections\",\"data\":{\"message\":\"too many connections\",\"type\":"
                "\"rate_limit_error\",\"param\":null,\"code\":\"too_many_connections\","
                "\"http_status\":429}}}\n";
          send (fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
          close (fd);
          continue;
        }
      c = xmalloc0 (sizeof *c);
      c->id = ++s->next_client_id;
      c->fd = fd;
      c->in.max = s->cfg.max_message;
      c->w = (struct watcher){ W_CLIENT, c };
      c->next = s->clients;
      s->clients = c;
      s->n_clients++;
      shim_watch (s, fd, &c->w, false);
    }
}

static void
reap_children (struct shim *s)
{
  for (;;)
    {
      int status;
      pid_t pid = waitpid (-1, &status, WNOHANG);
      if (pid <= 0)
        return;
      if (sleep_on_child (s, pid, status))
        continue;
      for (struct session *se = s->sessions; se; se = se->next)
        if (se->pid == pid)
          {
            sandbox_on_exit (s, se, status);
            break;
          }
    }
}

static void
on_signal (struct shim *s)
{
  struct signalfd_siginfo si;
  while (read (s->signal_fd, &si, sizeof si) == sizeof si)
    {
      if (si.ssi_signo == SIGCHLD)
        reap_children (s);
      else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
        s->stopping = true;
    }
}

static int
next_timeout (struct shim *s, int64_t now)
{
  int64_t next = now + 1000; /* expiry is checked every second */
  if (s->warm_refill_ms && s->warm_refill_ms < next)
    next = s->warm_refill_ms;
  for (struct session *se = s->sessions; se; se = se->next)
    {
      int64_t d = sandbox_next_deadline (se);
      if (se->queue && se->queue->phase != EXEC_QUEUED && se->queue->deadline_ms < d)
        d = se->queue->deadline_ms;
      if (se->queue && se->queue->phase == EXEC_QUEUED && se->queue->not_before_ms
          && se->queue->not_before_ms < d)
        d = se->queue->not_before_ms;
      if (d < next)
        next = d;
    }
  return next <= now ? 0 : (int)(next - now);
}

static bool
session_alive (struct shim *s, const struct session *se)
{
  for (const struct session *x = s->sessions; x; x = x->next)
    if (x == se)
      return true;
  return false;
}

static void
run_timers (struct shim *s)
{
  int64_t now = shim_monotonic_ms ();
  struct session *se = s->sessions;
  while (se)
    {
      struct session *next = se->next; /* a failed start may free SE */
      if (se->status == SESSION_RUNNING || se->status == SESSION_WARM)
        {
          sandbox_on_timer (s, se, now);
          if (session_alive (s, se)) /* a failed start frees it: compare pointers only */
            execution_on_timer (s, se, now);
        }
      se = next;
    }
  sessions_expire_due (s, shim_now ());
  sessions_sleep_due (s, shim_now ());
  if (s->warm_refill_ms && now >= s->warm_refill_ms)
    {
      s->warm_refill_ms = 0;
      sessions_refill_warm (s);
    }
}

int shim_run (struct shim *s);
int
shim_run (struct shim *s)
{
  /* One event a turn: level-triggered epoll puts a reported fd back at the tail of its ready
     list, so a flooding sandbox or client takes turns with everyone else, and no handler can
     free what another event of the same batch points at. */
  while (!s->stopping)
    {
      struct epoll_event ev;
      int n = epoll_wait (s->epfd, &ev, 1, next_timeout (s, shim_monotonic_ms ()));
      if (n < 0 && errno != EINTR)
        return -1;
      if (n == 1)
        {
          struct watcher *w = ev.data.ptr;
          switch (w->kind)
            {
            case W_LISTEN:
              accept_clients (s);
              break;
            case W_SIGNAL:
              on_signal (s);
              break;
            case W_CLIENT:
              {
                struct client *c = w->obj;
                uint64_t id = c->id;
                if (ev.events & EPOLLOUT)
                  client_flush (s, c);
                if (shim_client (s, id)
                    && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
                  client_read (s, c);
                break;
              }
            case W_EXECUTOR:
              sandbox_on_io (s, w->obj, ev.events);
              break;
            case W_PIDFD:
              sandbox_on_pidfd (s, w->obj);
              break;
            }
        }
      run_timers (s);
    }
  return 0;
}
