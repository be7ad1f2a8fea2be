/* capsule-gateway --mcp-stdio: MCP over stdin and stdout, for a client that spawns its server
 * (Claude Desktop, an Agents SDK's MCPServerStdio).  One JSON-RPC message per line each way;
 * stdout carries nothing else (logs go to stderr).  One session, for the tenant of --tenant,
 * whose sandbox is deleted when stdin ends or a signal stops us.  Each request runs in a thread
 * of its own, so that ping and notifications/cancelled are read while a cell runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mcp.h"
#include "utils.h"

#define STDIO_WORKERS 16 /* requests under way at once; more wait to be read */

static struct
{
  pthread_mutex_t lock; /* stdout, and the count */
  pthread_cond_t idle;
  int workers;
  bool ended;
  struct mcp_session *s;
} io = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void
send_line (void *ctx, const char *json)
{
  (void)ctx;
  pthread_mutex_lock (&io.lock);
  if (write_all (STDOUT_FILENO, json, strlen (json)) < 0 || write_all (STDOUT_FILENO, "\n", 1) < 0)
    fprintf (stderr, "capsule-gateway: mcp: stdout: %s\n", strerror (errno));
  pthread_mutex_unlock (&io.lock);
}

struct job
{
  json_value *msg;
};

static void *
worker (void *arg)
{
  struct job *j = arg;
  struct shimc c = { .fd = -1, .in_fd = -1 };
  struct mcp_ctx x = { .shim = &c, .notify = send_line };
  _cleanup_free_ char *text = mcp_request (io.s, j->msg, &x);
  if (text)
    send_line (NULL, text);
  shimc_close (&c);
  json_free (j->msg);
  free (j);
  pthread_mutex_lock (&io.lock);
  io.workers--;
  pthread_cond_broadcast (&io.idle);
  pthread_mutex_unlock (&io.lock);
  return NULL;
}

static void
start_worker (json_value *msg)
{
  struct job *j = xmalloc0 (sizeof *j);
  pthread_attr_t attr;
  pthread_t t;
  j->msg = msg;
  pthread_mutex_lock (&io.lock);
  while (io.workers >= STDIO_WORKERS)
    pthread_cond_wait (&io.idle, &io.lock);
  io.workers++;
  pthread_mutex_unlock (&io.lock);
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&t, &attr, worker, j) != 0)
    {
      _cleanup_free_ char *id = rpc_id_text (json_get (msg, "id"));
      _cleanup_free_ char *e = mcp_error_text (id, MCP_INTERNAL_ERROR, "no thread for the request");
      send_line (NULL, e);
      json_free (msg);
      free (j);
      pthread_mutex_lock (&io.lock);
      io.workers--;
      pthread_mutex_unlock (&io.lock);
    }
  pthread_attr_destroy (&attr);
}

/* The session ends once: its sandbox is deleted, the cells under way answer with errors. */
static void
end_session (void)
{
  struct shimc c = { .fd = -1, .in_fd = -1 };
  bool first;
  pthread_mutex_lock (&io.lock);
  first = !io.ended;
  io.ended = true;
  pthread_mutex_unlock (&io.lock);
  if (!first)
    return;
  mcp_session_end (io.s, &c);
  shimc_close (&c);
}

static void *
signals (void *arg)
{
  sigset_t *set = arg;
  int sig = 0;
  sigwait (set, &sig);
  fprintf (stderr, "capsule-gateway: mcp: signal %d: the session ends\n", sig);
  end_session ();
  _exit (0);
}

int
mcp_stdio_main (const char *tenant, const char *memory_limit)
{
  _cleanup_error_ capsule_error *err = NULL;
  struct line_reader in = { .max = mcp_cfg.file_max / 3 * 4 + (1u << 20) };
  struct shimc c = { .fd = -1, .in_fd = -1 };
  static sigset_t set;
  pthread_t st;

  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
  signal (SIGPIPE, SIG_IGN);
  io.s = mcp_session_new (tenant, false, &err);
  if (io.s == NULL)
    {
      fprintf (stderr, "capsule-gateway: mcp: %s\n", err->msg);
      return 1;
    }
  if (memory_limit)
    mcp_session_set_tier (io.s, memory_limit);
  if (pthread_create (&st, NULL, signals, &set) != 0)
    {
      fprintf (stderr, "capsule-gateway: mcp: no thread for signals\n");
      return 1;
    }
  fprintf (stderr, "capsule-gateway: MCP on stdin/stdout for tenant %s, shim %s\n", tenant,
           gw.shim_socket);
  for (;;)
    {
      char chunk[65536], *line;
      size_t len;
      enum line_status ls;
      ssize_t n;
      while ((ls = line_reader_next (&in, &line, &len)) != LINE_NONE)
        {
          _cleanup_json_ json_value *msg = NULL;
          _cleanup_free_ char *e = NULL;
          enum mcp_kind kind;
          if (ls == LINE_TOO_LONG)
            {
              _cleanup_free_ char *t = mcp_error_text (NULL, MCP_INVALID_REQUEST,
                                                       "the message is longer than this server "
                                                       "takes");
              send_line (NULL, t);
              continue;
            }
          if (len == 0 || strspn (line, " \t\r") == len)
            continue;
          kind = mcp_parse (line, len, &msg, &e);
          if (kind == MCP_BAD)
            send_line (NULL, e);
          else if (kind == MCP_NOTIFICATION)
            {
              struct mcp_ctx x = { .shim = &c };
              mcp_notification (io.s, msg, &x);
            }
          else if (kind == MCP_REQUEST && strcmp (mcp_method (msg), "initialize") == 0)
            {
              /* in order: what follows it is of the initialized session */
              struct mcp_ctx x = { .shim = &c };
              _cleanup_free_ char *t = mcp_request (io.s, msg, &x);
              send_line (NULL, t);
            }
          else if (kind == MCP_REQUEST)
            start_worker (steal_pointer (&msg));
        }
      n = read (STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      line_reader_feed (&in, chunk, n);
    }
  /* stdin ended: the client is done; the sandbox goes, then the cells under way are answered
     (with errors) and we leave */
  end_session ();
  pthread_mutex_lock (&io.lock);
  while (io.workers > 0)
    pthread_cond_wait (&io.idle, &io.lock);
  pthread_mutex_unlock (&io.lock);
  line_reader_release (&in);
  shimc_close (&c);
  mcp_session_unref (io.s);
  return 0;
}
