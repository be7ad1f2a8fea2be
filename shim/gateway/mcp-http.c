/* capsule-gateway: MCP's Streamable HTTP transport at /mcp.  POST carries one JSON-RPC message:
 * a notification or a client's answer is 202, a request is answered as application/json or,
 * for tools/call when the client takes text/event-stream, as a stream of server-sent events
 * (progress notifications while the cell runs, then the answer).  initialize makes the session
 * and names it in Mcp-Session-Id; DELETE ends it (its sandbox is deleted).  GET, the stream of
 * messages the server starts itself, is 405: this server starts none.  The caller's key was
 * checked already (api.c): a session is found only by the tenant that made it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mcp-http.h"
#include "mcp.h"
#include "utils.h"

/* Streamed requests under way, each a thread: also those whose client went away, whose cells
   run to their end */
#define SSE_WORKERS_MAX 256
static int sse_workers;

static enum MHD_Result
answer (struct MHD_Connection *conn, unsigned status, char *json, const char *session_id)
{
  struct MHD_Response *r;
  enum MHD_Result ret;
  if (json == NULL)
    r = MHD_create_response_from_buffer (0, (void *)"", MHD_RESPMEM_PERSISTENT);
  else
    {
      r = MHD_create_response_from_buffer (strlen (json), json, MHD_RESPMEM_MUST_FREE);
      MHD_add_response_header (r, "Content-Type", "application/json");
    }
  if (r == NULL)
    return MHD_NO;
  if (session_id)
    MHD_add_response_header (r, "Mcp-Session-Id", session_id);
  if (status == 405)
    MHD_add_response_header (r, "Allow", "POST, DELETE");
  ret = MHD_queue_response (conn, status, r);
  MHD_destroy_response (r);
  return ret;
}

static enum MHD_Result
answer_error (struct MHD_Connection *conn, unsigned status, int code, const char *message)
{
  return answer (conn, status, mcp_error_text (NULL, code, message), NULL);
}

/* A host of a loopback address or name ("localhost", "127.0.0.1:8080", "[::1]:80"). */
static bool
loopback_host (const char *h, size_t n)
{
  if (n >= 6 && strncmp (h, "[::1]", 5) == 0 && (n == 5 || h[5] == ':'))
    return true;
  if (n == 5 && strncmp (h, "[::1]", 5) == 0)
    return true;
  for (size_t i = 0; i < n; i++)
    if (h[i] == ':')
      n = i;
  return (n == 9 && strncasecmp (h, "localhost", 9) == 0)
         || (n >= 4 && strncmp (h, "127.", 4) == 0 && strspn (h, "0123456789.") >= n);
}

/* Against DNS rebinding: a browser's request (it sends Origin) is taken only from a loopback
   origin or the origin of --public-url.  Clients that are not browsers send no Origin. */
static bool
origin_allowed (const char *origin)
{
  const char *host;
  size_t n;
  if (origin == NULL)
    return true;
  if (gw.public_url)
    {
      size_t pl = strlen (gw.public_url);
      while (pl && gw.public_url[pl - 1] == '/')
        pl--;
      if (strlen (origin) == pl && strncasecmp (origin, gw.public_url, pl) == 0)
        return true;
    }
  if (strncasecmp (origin, "http://", 7) == 0)
    host = origin + 7;
  else if (strncasecmp (origin, "https://", 8) == 0)
    host = origin + 8;
  else
    return false;
  n = strcspn (host, "/");
  return host[n] == 0 && loopback_host (host, n);
}

/* Does the Accept header take TYPE (or a wildcard)? */
static bool
accepts (const char *accept, const char *type)
{
  const char *slash = strchr (type, '/');
  if (accept == NULL)
    return false;
  for (const char *p = accept; *p;)
    {
      size_t n;
      p += strspn (p, " \t,");
      n = strcspn (p, ",;");
      while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
      size_t major = (size_t)(slash - type);
      bool exact = n == strlen (type) && strncasecmp (p, type, n) == 0;
      bool any = n == 3 && strncmp (p, "*/*", 3) == 0;
      bool sub = n == major + 2 && strncasecmp (p, type, major + 1) == 0 && p[major + 1] == '*';
      if (exact || any || sub)
        return true;
      p += strcspn (p, ",");
    }
  return false;
}

/* ------------------------------------------------------------------ a request as events */

struct sse_job
{
  struct mcp_session *s;
  json_value *msg;
  int wfd;
  struct shimc c;
  struct mcp_ctx x;
};

static void
sse_write (void *ctx, const char *json)
{
  struct sse_job *j = ctx;
  _cleanup_free_ char *ev = xasprintf ("event: message\ndata: %s\n\n", json);
  /* a client that went away does not stop the cell: its answer is dropped (EPIPE) */
  if (j->wfd >= 0 && write_all (j->wfd, ev, strlen (ev)) < 0)
    {
      close (j->wfd);
      j->wfd = -1;
    }
}

static void *
sse_worker (void *arg)
{
  struct sse_job *j = arg;
  _cleanup_free_ char *text = mcp_request (j->s, j->msg, &j->x);
  if (text)
    sse_write (j, text);
  /* else: cancelled, the stream ends without an answer */
  if (j->wfd >= 0)
    close (j->wfd);
  shimc_close (&j->c);
  mcp_session_unref (j->s);
  json_free (j->msg);
  free (j);
  __atomic_sub_fetch (&sse_workers, 1, __ATOMIC_RELAXED);
  return NULL;
}

static ssize_t
sse_read (void *cls, uint64_t pos, char *out, size_t max)
{
  static const char keepalive[] = ": keep-alive\n\n";
  struct pollfd p = { .fd = (int)(intptr_t)cls, .events = POLLIN };
  ssize_t n;
  int r;
  (void)pos;
  /* a stream silent for as long as --timeout would be closed as idle: while the request waits
     (for the sandbox, for another cell of the session, for a quiet cell) a comment goes out
     every second */
  do
    r = poll (&p, 1, 1000);
  while (r < 0 && errno == EINTR);
  if (r == 0 && max >= sizeof keepalive - 1)
    {
      memcpy (out, keepalive, sizeof keepalive - 1);
      return sizeof keepalive - 1;
    }
  do
    n = read (p.fd, out, max);
  while (n < 0 && errno == EINTR);
  if (n == 0)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (n < 0)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  return n;
}

static void
sse_free (void *cls)
{
  close ((int)(intptr_t)cls);
}

/* The request MSG (taken) of session S (taken) answered as a stream: a thread of its own works
   it, with a connection of its own to the shim, writing events into a pipe that the response
   reads. */
static enum MHD_Result
answer_stream (struct MHD_Connection *conn, struct mcp_session *s, json_value *msg)
{
  struct sse_job *j;
  struct MHD_Response *r;
  pthread_attr_t attr;
  pthread_t t;
  int p[2];
  if (__atomic_add_fetch (&sse_workers, 1, __ATOMIC_RELAXED) > SSE_WORKERS_MAX)
    {
      _cleanup_free_ char *id = rpc_id_text (json_get (msg, "id"));
      __atomic_sub_fetch (&sse_workers, 1, __ATOMIC_RELAXED);
      mcp_session_unref (s);
      json_free (msg);
      return answer (conn, 503,
                     mcp_error_text (id, MCP_SERVER_ERROR,
                                     "the server runs as many streamed tool calls as it takes; "
                                     "try again"),
                     NULL);
    }
  if (pipe2 (p, O_CLOEXEC) < 0)
    {
      __atomic_sub_fetch (&sse_workers, 1, __ATOMIC_RELAXED);
      mcp_session_unref (s);
      json_free (msg);
      return answer_error (conn, 500, MCP_INTERNAL_ERROR, "no pipe for the event stream");
    }
  j = xmalloc0 (sizeof *j);
  j->s = s;
  j->msg = msg;
  j->wfd = p[1];
  j->c.fd = j->c.in_fd = -1;
  j->x.shim = &j->c;
  j->x.notify = sse_write;
  j->x.notify_ctx = j;
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&t, &attr, sse_worker, j) != 0)
    {
      pthread_attr_destroy (&attr);
      close (p[0]);
      close (p[1]);
      mcp_session_unref (s);
      json_free (msg);
      free (j);
      __atomic_sub_fetch (&sse_workers, 1, __ATOMIC_RELAXED);
      return answer_error (conn, 503, MCP_INTERNAL_ERROR, "no thread for the request");
    }
  pthread_attr_destroy (&attr);
  r = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, 65536, sse_read, (void *)(intptr_t)p[0],
                                         sse_free);
  if (r == NULL)
    {
      close (p[0]);
      return MHD_NO;
    }
  MHD_add_response_header (r, "Content-Type", "text/event-stream");
  MHD_add_response_header (r, "Cache-Control", "no-cache");
  {
    enum MHD_Result ret = MHD_queue_response (conn, 200, r);
    MHD_destroy_response (r);
    return ret;
  }
}

/* ------------------------------------------------------------------ /mcp */

enum MHD_Result
mcp_http (struct MHD_Connection *conn, const char *tenant, const char *method, const char *body,
          size_t body_len, struct shimc *c)
{
  const char *origin = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Origin");
  const char *version = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "MCP-Protocol-Version");
  const char *sid = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Mcp-Session-Id");
  const char *accept = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Accept");
  const char *ctype = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Content-Type");
  _cleanup_json_ json_value *msg = NULL;
  _cleanup_free_ char *err = NULL;
  struct mcp_ctx x = { .shim = c };
  struct mcp_session *s;
  enum mcp_kind kind;
  const char *m;

  if (!origin_allowed (origin))
    return answer_error (conn, 403, MCP_INVALID_REQUEST,
                         "Forbidden: requests from this Origin are not taken (DNS rebinding "
                         "protection; a browser client needs a loopback origin or --public-url)");
  if (version && !mcp_version_supported (version))
    {
      _cleanup_free_ char *t = xasprintf ("Bad Request: unsupported MCP-Protocol-Version '%.40s' "
                                          "(this server speaks 2025-06-18, 2025-03-26, 2024-11-05)",
                                          version);
      return answer_error (conn, 400, MCP_INVALID_REQUEST, t);
    }
  if (strcmp (method, "DELETE") == 0)
    {
      if (sid == NULL)
        return answer_error (conn, 400, MCP_INVALID_REQUEST,
                             "Bad Request: DELETE needs the Mcp-Session-Id header");
      if ((s = mcp_session_find (sid, tenant)) == NULL)
        return answer_error (conn, 404, MCP_INVALID_REQUEST, "Session not found");
      mcp_session_end (s, c);
      mcp_session_unref (s);
      return answer (conn, 204, NULL, NULL);
    }
  if (strcmp (method, "POST") != 0)
    return answer_error (conn, 405, MCP_INVALID_REQUEST,
                         "Method Not Allowed: this server sends no stream of its own; POST "
                         "messages, DELETE to end the session");
  if (accept && !accepts (accept, "application/json") && !accepts (accept, "text/event-stream"))
    return answer_error (conn, 406, MCP_INVALID_REQUEST,
                         "Not Acceptable: the client must accept application/json and "
                         "text/event-stream");
  if (ctype == NULL || strncasecmp (ctype, "application/json", 16) != 0
      || (ctype[16] && ctype[16] != ';' && ctype[16] != ' '))
    return answer_error (conn, 415, MCP_INVALID_REQUEST,
                         "Unsupported Media Type: the body must be application/json");
  kind = mcp_parse (body ? body : "", body ? body_len : 0, &msg, &err);
  if (kind == MCP_BAD)
    return answer (conn, 400, steal_pointer (&err), NULL);
  m = mcp_method (msg);
  if (kind == MCP_REQUEST && strcmp (m, "initialize") == 0)
    {
      _cleanup_error_ capsule_error *e = NULL;
      char *text;
      s = mcp_session_new (tenant, true, &e);
      if (s == NULL)
        return answer_error (conn, e->status == EAGAIN ? 429 : 500, MCP_SERVER_ERROR, e->msg);
      text = mcp_request (s, msg, &x);
      if (mcp_session_protocol (s) == NULL)
        {
          /* refused: no session is left behind */
          mcp_session_end (s, c);
          mcp_session_unref (s);
          return answer (conn, 200, text, NULL);
        }
      {
        enum MHD_Result ret = answer (conn, 200, text, mcp_session_id (s));
        mcp_session_unref (s);
        return ret;
      }
    }
  if (sid == NULL)
    return answer_error (conn, 400, MCP_INVALID_REQUEST,
                         "Bad Request: no Mcp-Session-Id header (initialize first)");
  if ((s = mcp_session_find (sid, tenant)) == NULL)
    return answer_error (conn, 404, MCP_INVALID_REQUEST, "Session not found");
  if (kind != MCP_REQUEST)
    {
      if (kind == MCP_NOTIFICATION)
        mcp_notification (s, msg, &x);
      mcp_session_unref (s);
      return answer (conn, 202, NULL, NULL);
    }
  if (strcmp (m, "tools/call") == 0 && accepts (accept, "text/event-stream"))
    return answer_stream (conn, s, steal_pointer (&msg));
  {
    char *text = mcp_request (s, msg, &x);
    mcp_session_unref (s);
    if (text == NULL)
      {
        _cleanup_free_ char *id = rpc_id_text (json_get (msg, "id"));
        text = mcp_error_text (id, MCP_CANCELLED, "the request was cancelled");
      }
    return answer (conn, 200, text, NULL);
  }
}
