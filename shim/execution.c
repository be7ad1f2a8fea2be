/* capsule-shim: running cells.  One cell at a time per session, the rest queued; a timeout
 * interrupts (SIGINT, state kept) and only kills the interpreter when it does not stop within
 * the grace period; an interpreter that dies (OOM, crash) is restarted with the files intact,
 * and the answer says what happened and whether the variables survived. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "utils.h"

void
exec_call_free (struct exec_call *x)
{
  if (x == NULL)
    return;
  free (x->call.id_json);
  free (x->exec_id);
  free (x->code);
  free (x);
}

static struct exec_call *
pop (struct session *se)
{
  struct exec_call *x = se->queue;
  if (x)
    se->queue = x->next;
  return x;
}

static void
send_execute (struct shim *s, struct session *se, struct exec_call *x)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *line = NULL;
  json_w_open_object (w);
  json_w_kv_string (w, "id", x->exec_id);
  json_w_kv_string (w, "method", "execute");
  json_w_kv_string (w, "code", x->code);
  json_w_kv_bool (w, "stream", true);
  json_w_close_object (w);
  line = xasprintf ("%s\n", json_writer_text (w, NULL));
  x->phase = EXEC_RUNNING;
  if (se->restored_unreported)
    {
      x->restored = true;
      x->restore_ms = se->restore_ms;
      se->restored_unreported = false;
    }
  x->started_ms = shim_monotonic_ms ();
  x->deadline_ms = x->started_ms + x->timeout_ms;
  sandbox_send (s, se, line);
}

void
execution_kick (struct shim *s, struct session *se)
{
  struct exec_call *x = se->queue;
  if (x == NULL || x->phase != EXEC_QUEUED)
    return;
  if (se->sb == SB_ASLEEP)
    {
      struct rpc_error *e = session_wake (s, se);
      if (e)
        execution_fail_all (s, se, e); /* the pool is full: it stays asleep */
      return;                          /* ready later */
    }
  if (se->sb == SB_CHECKPOINTING || se->sb == SB_RESTORING)
    return; /* kicked again when the worker is done */
  if (se->sb == SB_NONE)
    {
      _cleanup_error_ capsule_error *err = NULL;
      x->restarted = se->starts > 0;
      if (sandbox_start (s, se, &err) < 0)
        {
          execution_fail_all (s, se, rpc_error_from (500, "sandbox_failed", steal_pointer (&err)));
          return;
        }
      return; /* ready later */
    }
  if (se->sb == SB_READY && shim_monotonic_ms () >= x->not_before_ms)
    send_execute (s, se, x);
}

void
execution_enqueue (struct shim *s, struct session *se, struct exec_call *x)
{
  struct exec_call **tail = &se->queue;
  while (*tail)
    tail = &(*tail)->next;
  *tail = x;
  execution_kick (s, se);
}

void
execution_fail_all (struct shim *s, struct session *se, struct rpc_error *e)
{
  struct exec_call *x;
  while ((x = pop (se)))
    {
      struct rpc_error *copy
          = rpc_error_new (e->http_status, e->err_code, e->param, "%s", e->message);
      shim_reply_error (s, &x->call, copy);
      exec_call_free (x);
    }
  rpc_error_free (e);
}

/* ------------------------------------------------------------ the container.execution object */

struct outcome
{
  const char *status;
  const json_value *result;   /* the executor's result line, or NULL */
  const char *ename, *evalue; /* an error of the shim's own (timeout kill, OOM, crash) */
};

static void
w_file_list (struct session *se, json_writer *w, const json_value *items, bool images,
             json_writer *outputs)
{
  for (size_t i = 0; i < json_array_len (items); i++)
    {
      const json_value *it = json_array_get (items, i);
      const char *path = json_string (json_get (it, "path"));
      json_value *bytes = json_get (it, "bytes");
      struct cfile *f;
      _cleanup_free_ char *rel = NULL;
      struct rpc_error *bad;
      if (path == NULL || se->n_files >= FILES_MAX)
        continue;
      /* what the sandbox reports is checked as an upload's path would be */
      if ((bad = files_normalise (path, &rel)) != NULL)
        {
          rpc_error_free (bad);
          continue;
        }
      f = files_register (se, rel, json_is_integer (bytes) ? json_integer (bytes) : 0, false);
      if (f == NULL)
        continue;
      if (images && outputs)
        {
          json_w_open_object (outputs);
          json_w_kv_string (outputs, "type", "image");
          json_w_kv_string (outputs, "file_id", f->id);
          json_w_kv_string (outputs, "path", path);
          json_w_close_object (outputs);
        }
      files_w_object (w, se, f);
    }
}

static char *
logs_text (const json_value *r, const struct outcome *o)
{
  const char *out = json_string (json_get (r, "stdout"));
  const char *err = json_string (json_get (r, "stderr"));
  const char *res = json_string (json_get (r, "result"));
  json_value *error = json_get (r, "error");
  json_value *tb = json_get (error, "traceback");
  struct buf b = { 0 };
  char *ret;
  if (out)
    buf_append (&b, out, strlen (out));
  if (err)
    buf_append (&b, err, strlen (err));
  if (res)
    {
      buf_append (&b, res, strlen (res));
      buf_append (&b, "\n", 1);
    }
  for (size_t i = 0; i < json_array_len (tb); i++)
    {
      const char *line = json_string (json_array_get (tb, i));
      if (line)
        {
          buf_append (&b, line, strlen (line));
          if (line[0] && line[strlen (line) - 1] != '\n')
            buf_append (&b, "\n", 1);
        }
    }
  if (o->ename)
    {
      char *t = xasprintf ("%s: %s\n", o->ename, o->evalue);
      buf_append (&b, t, strlen (t));
      free (t);
    }
  ret = xstrdup (b.data ? b.data : "");
  buf_release (&b);
  return ret;
}

static void
w_error (json_writer *w, const json_value *r, const struct outcome *o)
{
  json_value *e = json_get (r, "error");
  json_value *tb = json_get (e, "traceback");
  json_w_key (w, "error");
  if (o->ename)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "ename", o->ename);
      json_w_kv_string (w, "evalue", o->evalue);
      json_w_key (w, "traceback");
      json_w_open_array (w);
      json_w_close_array (w);
      json_w_close_object (w);
      return;
    }
  if (!json_is_object (e))
    {
      json_w_null (w);
      return;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "ename", json_string (json_get (e, "ename")));
  json_w_kv_string (w, "evalue", json_string (json_get (e, "evalue")));
  json_w_key (w, "traceback");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (tb); i++)
    json_w_string (w, json_string (json_array_get (tb, i)));
  json_w_close_array (w);
  json_w_close_object (w);
}

static char *
execution_json (struct session *se, struct exec_call *x, const struct outcome *o)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_json_writer_ json_writer *outputs = json_writer_new (false);
  _cleanup_json_writer_ json_writer *files = json_writer_new (false);
  _cleanup_free_ char *logs = logs_text (o->result, o);
  const json_value *r = o->result;
  json_value *count = json_get (r, "execution_count");
  _cleanup_free_ char *text = NULL;

  json_w_open_array (outputs);
  json_w_open_object (outputs);
  json_w_kv_string (outputs, "type", "logs");
  json_w_kv_string (outputs, "logs", logs);
  json_w_close_object (outputs);
  json_w_open_array (files);
  w_file_list (se, files, json_get (r, "images"), true, outputs);
  w_file_list (se, files, json_get (r, "files"), false, NULL);
  json_w_close_array (files);
  json_w_close_array (outputs);

  json_w_open_object (w);
  json_w_kv_string (w, "object", "container.execution");
  json_w_kv_string (w, "id", x->exec_id);
  json_w_kv_string (w, "container_id", se->id);
  json_w_kv_string (w, "status", o->status);
  json_w_key (w, "execution_count");
  if (json_is_integer (count))
    json_w_int (w, json_integer (count));
  else
    json_w_null (w);
  json_w_kv_string (w, "stdout", json_string (json_get (r, "stdout")) ?: "");
  json_w_kv_string (w, "stderr", json_string (json_get (r, "stderr")) ?: "");
  json_w_kv_string (w, "result", json_string (json_get (r, "result")));
  w_error (w, r, o);
  json_w_kv_bool (w, "interpreter_restarted", x->restarted);
  json_w_kv_bool (w, "restored", x->restored);
  if (x->restored)
    json_w_kv_int (w, "restore_ms", x->restore_ms);
  json_w_kv_int (w, "duration_ms", x->started_ms ? shim_monotonic_ms () - x->started_ms : 0);
  json_w_key (w, "outputs");
  json_w_string (w, "@OUTPUTS@");
  json_w_key (w, "files");
  json_w_string (w, "@FILES@");
  json_w_close_object (w);
  text = json_splice (json_writer_text (w, NULL), "@OUTPUTS@", json_writer_text (outputs, NULL));
  return json_splice (text, "@FILES@", json_writer_text (files, NULL));
}

static void
finish (struct shim *s, struct session *se, const struct outcome *o)
{
  struct exec_call *x = pop (se);
  if (x == NULL)
    return;
  session_touch (se);
  shim_reply (s, &x->call, execution_json (se, x, o));
  store_save (s, se);
  exec_call_free (x);
}

static const char *
status_of (const char *executor_status, bool timed_out)
{
  if (executor_status && strcmp (executor_status, "ok") == 0)
    return "completed";
  if (executor_status && strcmp (executor_status, "interrupted") == 0)
    return timed_out ? "timeout" : "interrupted";
  return "failed";
}

static void
stream_out (struct shim *s, struct session *se, struct exec_call *x, const json_value *msg)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  if (!x->stream)
    return;
  json_w_open_object (w);
  json_w_kv_string (w, "id", x->exec_id);
  json_w_kv_string (w, "container_id", se->id);
  json_w_kv_string (w, "stream", json_string (json_get (msg, "name")));
  json_w_kv_string (w, "text", json_string (json_get (msg, "text")));
  json_w_close_object (w);
  shim_notify (s, x->call.client_id,
               rpc_notification_text ("exec.output", json_writer_text (w, NULL)));
}

void
execution_on_line (struct shim *s, struct session *se, const json_value *msg)
{
  struct exec_call *x = se->queue;
  const char *event = json_string (json_get (msg, "event"));
  const char *id = json_string (json_get (msg, "id"));
  if (x == NULL || x->phase == EXEC_QUEUED || event == NULL || id == NULL
      || strcmp (id, x->exec_id) != 0)
    return;
  if (strcmp (event, "stream") == 0)
    stream_out (s, se, x, msg);
  else if (strcmp (event, "result") == 0)
    {
      struct outcome o = { status_of (json_string (json_get (msg, "status")), x->timed_out), msg };
      finish (s, se, &o);
      execution_kick (s, se);
    }
  else if (strcmp (event, "error") == 0
           && strcmp (json_string (json_get (json_get (msg, "error"), "code")) ?: "", "busy") == 0)
    {
      /* a cell from before a shim restart still runs: send this one when it is done */
      x->phase = EXEC_QUEUED;
      x->not_before_ms = shim_monotonic_ms () + 100;
    }
  else if (strcmp (event, "error") == 0)
    {
      const char *m = json_string (json_get (json_get (msg, "error"), "message"));
      x = pop (se);
      shim_reply_error (s, &x->call,
                        rpc_error_new (500, "executor_error", NULL,
                                       "the interpreter refused the "
                                       "cell: %s",
                                       m ? m : "unknown error"));
      exec_call_free (x);
      execution_kick (s, se);
    }
}

void
execution_on_timer (struct shim *s, struct session *se, int64_t now)
{
  struct exec_call *x = se->queue;
  if (x && x->phase == EXEC_QUEUED && x->not_before_ms && now >= x->not_before_ms)
    {
      execution_kick (s, se);
      return;
    }
  if (x == NULL || x->phase == EXEC_QUEUED || now < x->deadline_ms)
    return;
  if (x->phase == EXEC_RUNNING)
    {
      /* capsule-init passes SIGINT on to the interpreter: KeyboardInterrupt, state kept */
      x->timed_out = true;
      x->phase = EXEC_INTERRUPTING;
      x->deadline_ms = now + s->cfg.interrupt_grace_ms;
      sandbox_signal (se, SIGINT);
      return;
    }
  /* it ignored the interrupt: kill the interpreter, start a fresh one */
  {
    _cleanup_free_ char *msg
        = xasprintf ("the cell ran past its %lld ms timeout and did not stop on interrupt; the "
                     "interpreter was restarted and its variables are lost (files in /mnt/data "
                     "are kept)",
                     (long long)x->timeout_ms);
    struct outcome o = { "timeout", NULL, "TimeoutError", msg };
    x->restarted = true;
    sandbox_stop (s, se);
    finish (s, se, &o);
    execution_kick (s, se);
  }
}

void
execution_on_sandbox_death (struct shim *s, struct session *se, bool oom, int status)
{
  struct exec_call *x = se->queue;
  if (se->status == SESSION_WARM)
    {
      session_drop_warm (s, se);
      return;
    }
  if (se->pending_create.client_id && se->sb == SB_NONE && x == NULL)
    {
      _cleanup_error_ capsule_error *err = NULL;
      capsule_error_make (&err, 0, "the interpreter exited during start-up (status %d)", status);
      session_start_failed (s, se, steal_pointer (&err));
      return;
    }
  if (x && x->phase != EXEC_QUEUED)
    {
      _cleanup_free_ char *tier = format_size (se->tier->memory);
      _cleanup_free_ char *msg
          = oom ? xasprintf ("killed: out of memory (limit %s); the interpreter was restarted and "
                             "its variables are lost (files in /mnt/data are kept)",
                             tier)
                : xasprintf ("the interpreter exited (status %d); it was restarted and its "
                             "variables are lost (files in /mnt/data are kept)",
                             status);
      struct outcome o
          = { oom ? "oom" : "failed", NULL, oom ? "MemoryError" : "InterpreterDied", msg };
      x->restarted = true;
      finish (s, se, &o);
    }
  for (x = se->queue; x; x = x->next)
    x->phase = EXEC_QUEUED;
  if (se->status == SESSION_RUNNING && se->queue)
    execution_kick (s, se);
}
