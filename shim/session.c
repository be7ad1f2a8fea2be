/* capsule-shim: sessions, their cells and their sleep (session.h). */
#define _GNU_SOURCE
#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "overlay.h"
#include "workspace.h"
#include "shim-util.h"
#include "utils.h"

#define SLEEP_WORKERS_MAX 2 /* idle checkpoints at a time */
#define BUSY_RETRY_MS     100
#define RESTORE_TRIES     2 /* a sleeping session that fails to wake this often starts afresh */
#define WARM_REFILL_MS    300

static const struct sandbox_events sandbox_events;
static void kick (struct session *se);
static void arm_cell_timer (struct session *se);

/* ------------------------------------------------------------------ objects */

void
cell_free (struct cell *c)
{
  if (c == NULL)
    return;
  free (c->exec_id);
  free (c->code);
  free (c->notice);
  free (c);
}

struct session *
sessions_find (struct sessions *ss, const char *id)
{
  for (struct session *se = ss->list; se; se = se->next)
    if (strcmp (se->id, id) == 0)
      return se;
  return NULL;
}

struct session *
sessions_find_context (struct sessions *ss, const char *tenant, const char *key)
{
  for (struct session *se = ss->list; se; se = se->next)
    if (se->status == SESSION_RUNNING && se->context_key && strcmp (se->context_key, key) == 0
        && strcmp (se->tenant, tenant) == 0)
      return se;
  return NULL;
}

int
sessions_count (struct sessions *ss, enum session_status st)
{
  int n = 0;
  for (struct session *se = ss->list; se; se = se->next)
    n += se->status == st;
  return n;
}

const char *
session_sandbox_state (const struct session *se)
{
  if (se->status != SESSION_RUNNING || se->sb == NULL)
    return "none";
  return sandbox_state_name (se->sb->state);
}

static void on_cell_timer (struct loop_timer *t);

struct session *
session_alloc (struct sessions *ss, const char *id, const struct tier *tier,
               enum session_status status)
{
  struct session *se = xmalloc0 (sizeof *se);
  se->ss = ss;
  se->seq = ++ss->next_seq;
  se->id = id ? xstrdup (id) : shim_new_id ("cntr_");
  se->tier = tier;
  se->created_at = se->last_active_at = shim_now ();
  se->status = status;
  se->name = xstrdup ("");
  se->tenant = xstrdup ("");
  se->dir = xasprintf ("%s/sessions/%s", ss->cfg.state_dir, se->id);
  se->data_dir = xasprintf ("%s/data", se->dir);
  se->run_dir = xasprintf ("%s/run", se->dir);
  se->cell_timer = (struct loop_timer){ .fn = on_cell_timer, .data = se };
  se->next = ss->list;
  ss->list = se;
  return se;
}

static void
session_unlink (struct session *se)
{
  for (struct session **p = &se->ss->list; *p; p = &(*p)->next)
    if (*p == se)
      {
        *p = se->next;
        return;
      }
}

static void
session_free (struct session *se)
{
  loop_timer_stop (se->ss->loop, &se->cell_timer);
  free (se->id);
  free (se->name);
  free (se->tenant);
  free (se->context_key);
  free (se->lost_reason);
  free (se->dir);
  free (se->data_dir);
  free (se->run_dir);
  files_release (&se->files);
  free (se);
}

static struct sandbox *
new_sandbox (struct session *se)
{
  return sandbox_new (se->ss->host, se->id, se->dir, se->tier, se->tenant, &sandbox_events, se);
}

/* ------------------------------------------------------------------ answering waiters */

static struct rpc_error *
error_copy (const struct rpc_error *e)
{
  return rpc_error_new (e->http_status, e->err_code, e->param, "%s", e->message);
}

static void
answer_wait (struct session_wait *w, struct session *se, const struct rpc_error *e)
{
  struct session_wait copy = *w;
  *w = (struct session_wait){ 0 };
  if (copy.fn)
    copy.fn (copy.ctx, e ? NULL : se, e ? error_copy (e) : NULL);
}

static struct cell *
pop (struct session *se)
{
  struct cell *c = se->queue;
  if (c)
    se->queue = c->next;
  arm_cell_timer (se);
  return c;
}

/* Every queued cell answered with E (taken). */
static void
fail_cells (struct session *se, struct rpc_error *e)
{
  struct cell *c;
  while ((c = pop (se)))
    {
      c->done (c->ctx, se, c, NULL, error_copy (e));
      cell_free (c);
    }
  rpc_error_free (e);
}

/* ------------------------------------------------------------------ the end of a session */

static void
remove_record (struct session *se)
{
  /* first, and here: a shim that dies while the rest is torn down must not take it up again */
  _cleanup_free_ char *record = xasprintf ("%s/record.json", se->dir);
  if (unlink (record) < 0 && errno != ENOENT)
    fprintf (stderr, "capsule-shim: %s: remove the record: %m\n", se->id);
}

static void
end_session (struct session *se, enum session_status st, struct rpc_error *why)
{
  answer_wait (&se->wait_ready, se, why);
  answer_wait (&se->wait_sleep, se, why);
  fail_cells (se, why);
  remove_record (se);
  if (se->sb)
    sandbox_dispose (se->sb, true);
  se->sb = NULL;
  if (se->charged)
    pools_credit (&se->ss->pools, se->tenant, se->tier->memory);
  se->charged = false;
  files_release (&se->files);
  se->status = st;
  se->ended_at = shim_now ();
}

void
session_expire (struct session *se, const char *why)
{
  if (se->status != SESSION_RUNNING && se->status != SESSION_WARM)
    return;
  end_session (
      se, SESSION_EXPIRED,
      rpc_error_new (400, "container_expired", "container_id", "container %s %s", se->id, why));
}

void
session_delete (struct session *se)
{
  if (se->status == SESSION_RUNNING || se->status == SESSION_WARM)
    end_session (
        se, SESSION_DELETED,
        rpc_error_new (404, "not_found", "container_id", "container %s was deleted", se->id));
  session_unlink (se);
  session_free (se);
}

static void
expire_idle (struct session *se)
{
  _cleanup_free_ char *why
      = xasprintf ("expired after %lld minutes without activity", (long long)se->expires_minutes);
  fprintf (stderr, "capsule-shim: %s: %s\n", se->id, why);
  session_expire (se, why);
}

/* ------------------------------------------------------------------ creating */

/* The run directory is where the sandbox's user puts the executor's socket; it is writable
   from the sandbox, so it is a tiny tmpfs, not the state directory's disk. */
static int
mount_run (struct session *se, capsule_error **err)
{
  uid_t uid = se->ss->cfg.host_uid_base + SANDBOX_UID;
  _cleanup_free_ char *opts = xasprintf ("size=64k,mode=0700,uid=%u,gid=%u,nr_inodes=16", uid, uid);
  if (mount ("capsule-run", se->run_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
    return capsule_error_make (err, errno, "mount the run directory at %s", se->run_dir);
  se->run_mounted = true;
  return 0;
}

static int
make_dirs (struct session *se, capsule_error **err)
{
  if (mkdir_p (se->data_dir, 0700, err) < 0 || mkdir_p (se->run_dir, 0700, err) < 0
      || chmod (se->dir, 0711) < 0)
    return capsule_error_make (err, errno, "session directory %s", se->dir);
  /* the workspace (/mnt/data and the root's upper layer) is made by the sandbox's start
     worker: mke2fs must not hold the loop (workspace.c) */
  return mount_run (se, err);
}

/* A session that never became anyone's: all it holds goes. */
static void
drop (struct session *se)
{
  remove_record (se);
  if (se->sb)
    sandbox_dispose (se->sb, true);
  else
    {
      /* no sandbox yet: the directory alone */
      struct sandbox *sb = new_sandbox (se);
      sandbox_dispose (sb, true);
    }
  se->sb = NULL;
  if (se->charged)
    pools_credit (&se->ss->pools, se->tenant, se->tier->memory);
  se->charged = false;
  session_unlink (se);
  session_free (se);
}

static struct session *
take_warm (struct sessions *ss, const struct tier *tier)
{
  struct session *any = NULL;
  for (struct session *se = ss->list; se; se = se->next)
    if (se->status == SESSION_WARM && se->sb && se->sb->state == SB_READY && se->tier == tier)
      {
        if (se->primed)
          return se; /* the one whose first cell will not wait for imports */
        if (any == NULL)
          any = se;
      }
  return any;
}

/* ------------------------------------------------------------------ priming */

#define PRIME_ID "capsule-prime"

static uint64_t
mem_available (void)
{
  _cleanup_free_ char *text = NULL;
  unsigned long long kb;
  const char *p;
  if (read_file_at (AT_FDCWD, "/proc/meminfo", 1 << 16, &text, NULL, NULL) < 0)
    return 0;
  p = strstr (text, "MemAvailable:");
  if (p == NULL || sscanf (p, "MemAvailable: %llu kB", &kb) != 1)
    return 0;
  return (uint64_t)kb << 10;
}

/* A warm sandbox, connected: import what every session imports, at the lowest CPU priority so
   no call waits for it, and only while the host has memory to spare. */
static void
maybe_prime (struct session *se)
{
  const struct tiers *t = se->ss->tiers;
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_free_ char *line = NULL;
  if (se->primed || se->priming || t->prime_modules == NULL)
    return;
  if (mem_available () < t->prime_min_available)
    return;
  w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "id", PRIME_ID);
  json_w_kv_string (w, "method", "prime");
  json_w_key (w, "modules");
  json_w_open_array (w);
  for (char **m = t->prime_modules; *m; m++)
    json_w_string (w, *m);
  json_w_close_array (w);
  json_w_kv_bool (w, "plot", t->prime_plot);
  json_w_close_object (w);
  line = xasprintf ("%s\n", json_writer_text (w, NULL));
  sandbox_set_nice (se->sb, 19);
  if (sandbox_send (se->sb, line) == 0)
    se->priming = true;
}

static void
prime_done (struct session *se, const json_value *msg)
{
  const char *event = json_string (json_get (msg, "event"));
  struct cell *c = se->queue;
  if (!se->priming)
    return;
  se->priming = false;
  se->primed = event && strcmp (event, "reply") == 0;
  if (se->status == SESSION_RUNNING && se->sb)
    sandbox_set_nice (se->sb,
                      0); /* claimed while it primed: threads made since at full speed too */
  if (c && c->busy_wait)
    {
      /* the first cell came while it primed and was told busy: send it now */
      c->busy_wait = false;
      c->not_before_ms = 0;
      if (c->phase == CELL_QUEUED)
        kick (se);
    }
}

static void
on_warm_timer (struct loop_timer *t)
{
  sessions_refill_warm (t->data);
}

void
sessions_refill_warm (struct sessions *ss)
{
  int n = sessions_count (ss, SESSION_WARM);
  while (n++ < ss->cfg.warm && !ss->warm_failed && !ss->stopping)
    {
      _cleanup_error_ capsule_error *err = NULL;
      struct session *se
          = session_alloc (ss, NULL, tiers_find (ss->tiers, ss->tiers->default_tier), SESSION_WARM);
      if (make_dirs (se, &err) < 0
          || ((se->sb = new_sandbox (se)), sandbox_start (se->sb, &err)) < 0)
        {
          fprintf (stderr, "capsule-shim: cannot start a warm sandbox: %s\n", err->msg);
          ss->warm_failed = true;
          drop (se);
        }
    }
}

struct rpc_error *
session_create (struct sessions *ss, const char *name, const char *tenant, const struct tier *tier,
                int64_t minutes, struct session **ret)
{
  _cleanup_error_ capsule_error *err = NULL;
  struct session *se;
  if (sessions_count (ss, SESSION_RUNNING) >= ss->cfg.max_sessions)
    return rpc_error_new (429, "too_many_containers", NULL,
                          "this host runs %d containers, its limit", ss->cfg.max_sessions);
  if (pools_charge (&ss->pools, tenant, tier->memory, &err) < 0)
    return rpc_error_from (429, "memory_pool_exhausted", steal_pointer (&err));
  ss->warm_failed = false;
  se = take_warm (ss, tier);
  if (se)
    {
      /* claimed: it becomes this container, fresh as if just made */
      ss->warm_claims++;
      sandbox_set_nice (se->sb, 0);
      se->seq = ++ss->next_seq;
      se->created_at = se->last_active_at = shim_now ();
    }
  else
    se = session_alloc (ss, NULL, tier, SESSION_RUNNING);
  se->status = SESSION_RUNNING;
  free (se->name);
  free (se->tenant);
  se->name = xstrdup (name);
  se->tenant = xstrdup (tenant);
  se->charged = true;
  se->expires_minutes = minutes;
  if (se->sb == NULL && make_dirs (se, &err) < 0)
    {
      drop (se);
      return rpc_error_from (500, "sandbox_failed", steal_pointer (&err));
    }
  if (se->sb == NULL)
    se->sb = new_sandbox (se);
  else
    store_save (se); /* a claimed warm sandbox is someone's now, also after a restart */
  /* refill a little later: starting a Python now would take CPU from the first cell the
     client is about to send to the sandbox it just got */
  if (!loop_timer_armed (&ss->warm_timer))
    loop_timer_in (ss->loop, &ss->warm_timer, WARM_REFILL_MS);
  *ret = se;
  return NULL;
}

struct rpc_error *
session_start (struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (se->sb->state != SB_NONE)
    return NULL;
  if (sandbox_start (se->sb, &err) < 0)
    {
      drop (se);
      return rpc_error_from (500, "sandbox_failed", steal_pointer (&err));
    }
  return NULL;
}

bool
session_ready (const struct session *se)
{
  return se->sb && se->sb->state == SB_READY;
}

void
session_await_ready (struct session *se, session_done_fn fn, void *ctx)
{
  se->wait_ready = (struct session_wait){ fn, ctx };
}

void
session_touch (struct session *se)
{
  if (se->status != SESSION_RUNNING)
    return;
  se->last_active_at = shim_now ();
  if (se->last_active_at != se->saved_active_at)
    store_save (se);
}

struct cfile *
session_file_written (struct session *se, const char *rel, uint64_t bytes, bool from_user)
{
  struct cfile *f = files_register (&se->files, rel, bytes, from_user);
  store_save (se);
  return f;
}

void
session_file_deleted (struct session *se, struct cfile *f)
{
  files_forget (&se->files, f);
  store_save (se);
}

void
session_rescan (struct session *se)
{
  files_rescan (&se->files, se->data_dir);
}

/* ------------------------------------------------------------------ cells */

static void
send_execute (struct session *se, struct cell *c)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *line = NULL;
  json_w_open_object (w);
  json_w_kv_string (w, "id", c->exec_id);
  json_w_kv_string (w, "method", "execute");
  json_w_kv_string (w, "code", c->code);
  json_w_kv_bool (w, "stream", true);
  json_w_close_object (w);
  line = xasprintf ("%s\n", json_writer_text (w, NULL));
  if (se->restore_pending_report)
    {
      c->restored = true;
      c->restore_ms = se->restore_ms;
      se->restore_pending_report = false;
    }
  if (c->started_ms == 0)
    {
      /* the timeout counts from the first send, whatever the interpreter answers after */
      c->started_ms = loop_now_ms ();
      c->deadline_ms = c->started_ms + c->timeout_ms;
    }
  c->phase = CELL_SENT;
  sandbox_send (se->sb, line);
  arm_cell_timer (se);
}

static struct rpc_error *
wake (struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (pools_charge (&se->ss->pools, se->tenant, se->tier->memory, &err) < 0)
    return rpc_error_from (429, "memory_pool_exhausted", steal_pointer (&err));
  se->charged = true;
  if (sandbox_restore (se->sb, &err) < 0)
    {
      pools_credit (&se->ss->pools, se->tenant, se->tier->memory);
      se->charged = false;
      return rpc_error_from (500, "restore_failed", steal_pointer (&err));
    }
  se->waking = true;
  return NULL;
}

static void
kick (struct session *se)
{
  struct cell *c = se->queue;
  if (c == NULL || c->phase != CELL_QUEUED || se->status != SESSION_RUNNING || se->sb == NULL)
    return;
  switch (se->sb->state)
    {
    case SB_ASLEEP:
      {
        struct rpc_error *e = wake (se);
        if (e)
          fail_cells (se, e); /* the pool is full: it stays asleep */
        return;
      }
    case SB_NONE:
      {
        _cleanup_error_ capsule_error *err = NULL;
        c->restarted = se->sb->starts > 0 || se->lost_reason;
        if (se->lost_reason)
          {
            free (c->notice);
            c->notice = steal_pointer (&se->lost_reason);
          }
        if (sandbox_start (se->sb, &err) < 0)
          fail_cells (se, rpc_error_from (500, "sandbox_failed", steal_pointer (&err)));
        return;
      }
    case SB_READY:
      if (loop_now_ms () >= c->not_before_ms)
        send_execute (se, c);
      return;
    default:
      return; /* kicked again when the sandbox is there */
    }
}

struct rpc_error *
session_exec (struct session *se, struct cell *c)
{
  struct cell **tail = &se->queue;
  int queued = 0;
  for (; *tail; tail = &(*tail)->next)
    queued++;
  if (queued >= 64)
    return rpc_error_new (429, "too_many_cells", "container_id",
                          "container %s has %d cells waiting; wait for their results", se->id,
                          queued);
  c->exec_id = shim_new_id ("exec_");
  c->phase = CELL_QUEUED;
  *tail = c;
  kick (se);
  return NULL;
}

struct rpc_error *
session_reset (struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (se->queue)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s runs a cell; interrupt it or wait for it first", se->id);
  if (se->sb == NULL)
    return NULL;
  switch (se->sb->state)
    {
    case SB_NONE:
      return NULL; /* the next cell starts a fresh one anyway */
    case SB_READY:
      break;
    case SB_ASLEEP:
      /* the image goes; the fresh interpreter is charged to the pool like a woken one */
      if (!se->charged)
        {
          if (pools_charge (&se->ss->pools, se->tenant, se->tier->memory, &err) < 0)
            return rpc_error_from (429, "memory_pool_exhausted", steal_pointer (&err));
          se->charged = true;
        }
      break;
    default:
      return rpc_error_new (409, "container_busy", "container_id",
                            "container %s is %s; try again in a moment", se->id,
                            session_sandbox_state (se));
    }
  sandbox_stop (se->sb); /* stopped() kicks; the next cell starts a fresh interpreter */
  return NULL;
}

bool
session_interrupt (struct session *se)
{
  struct cell *c = se->queue;
  if (c == NULL || c->phase == CELL_QUEUED || se->sb == NULL || se->sb->state != SB_READY)
    return false;
  sandbox_signal (se->sb, SIGINT);
  return true;
}

/* Register the files a result lists (checked as an upload's path would be, each once, at most
   FILES_MAX of them) into OUT. */
static size_t
take_files (struct session *se, const json_value *items, struct cfile **out, uint64_t stamp)
{
  size_t n = 0;
  for (size_t i = 0; i < json_array_len (items) && n < FILES_MAX; i++)
    {
      const json_value *it = json_array_get (items, i);
      const char *path = json_string (json_get (it, "path"));
      const char *hex = json_string (json_get (it, "path_hex"));
      json_value *bytes = json_get (it, "bytes");
      _cleanup_free_ char *raw = NULL, *rel = NULL;
      struct rpc_error *bad;
      struct cfile *f;
      if (path == NULL && hex)
        path = raw = hex_decode_string (hex);
      if (path == NULL)
        continue;
      if ((bad = files_normalise (path, &rel)) != NULL)
        {
          rpc_error_free (bad);
          continue;
        }
      f = files_register (
          &se->files, rel,
          json_is_integer (bytes) && json_integer (bytes) >= 0 ? json_integer (bytes) : 0, false);
      if (f == NULL || f->mark == stamp)
        continue;
      f->mark = stamp;
      out[n++] = f;
    }
  return n;
}

static void
finish (struct session *se, struct cell_outcome *o)
{
  static uint64_t stamps;
  const json_value *r = o->result;
  size_t max_i = json_array_len (json_get (r, "images"));
  size_t max_f = json_array_len (json_get (r, "files"));
  _cleanup_free_ struct cfile **images
      = xmalloc0 ((max_i < FILES_MAX ? max_i : FILES_MAX) * sizeof (void *) + 1);
  _cleanup_free_ struct cfile **files
      = xmalloc0 ((max_f < FILES_MAX ? max_f : FILES_MAX) * sizeof (void *) + 1);
  struct cell *c = pop (se);
  if (c == NULL)
    return;
  o->images = images;
  o->files = files;
  o->n_images = take_files (se, json_get (r, "images"), images, ++stamps);
  o->n_files = take_files (se, json_get (r, "files"), files, ++stamps);
  o->duration_ms = c->started_ms ? loop_now_ms () - c->started_ms : 0;
  session_touch (se);
  store_save (se);
  c->done (c->ctx, se, c, o, NULL);
  cell_free (c);
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
finish_with_result (struct session *se, const json_value *msg)
{
  struct cell_outcome o
      = { status_of (json_string (json_get (msg, "status")), se->queue->timed_out), msg };
  finish (se, &o);
  kick (se);
}

static void
ask_last_result (struct session *se, struct cell *c)
{
  _cleanup_free_ char *line
      = xasprintf ("{\"id\":\"last:%s\",\"method\":\"last_result\"}\n", c->exec_id);
  sandbox_send (se->sb, line);
}

static void
on_message (void *owner, const json_value *msg)
{
  struct session *se = owner;
  struct cell *c = se->queue;
  const char *event = json_string (json_get (msg, "event"));
  const char *id = json_string (json_get (msg, "id"));
  if (id && strcmp (id, PRIME_ID) == 0)
    {
      prime_done (se, msg);
      return;
    }
  if (c == NULL || event == NULL || id == NULL)
    return;
  if (strcmp (event, "reply") == 0 && strncmp (id, "last:", 5) == 0
      && strcmp (id + 5, c->exec_id) == 0 && c->phase != CELL_QUEUED)
    {
      /* after a reconnection: the cell had finished while we were not connected */
      const json_value *last = json_get (msg, "last_result");
      const char *last_id = json_string (json_get (last, "id"));
      if (last_id && strcmp (last_id, c->exec_id) == 0)
        finish_with_result (se, last);
      return;
    }
  if (strcmp (id, c->exec_id) != 0)
    {
      /* the end of a cell we did not send (one from before a restart): the interpreter is free */
      if (strcmp (event, "result") == 0 && c->busy_wait)
        {
          c->busy_wait = false;
          c->not_before_ms = 0;
          if (c->phase == CELL_QUEUED)
            kick (se);
        }
      return;
    }
  if (c->phase == CELL_QUEUED)
    return;
  if (strcmp (event, "stream") == 0)
    {
      const char *name = json_string (json_get (msg, "name"));
      const char *text = json_string (json_get (msg, "text"));
      if (c->stream && c->output && name && text)
        c->output (c->ctx, se, c, name, text);
    }
  else if (strcmp (event, "result") == 0)
    finish_with_result (se, msg);
  else if (strcmp (event, "error") == 0)
    {
      const char *code = json_string (json_get (json_get (msg, "error"), "code"));
      const char *m = json_string (json_get (json_get (msg, "error"), "message"));
      if (code && strcmp (code, "busy") == 0)
        {
          /* a cell from before a shim restart still runs: send this one when it is done; its
             deadline stays what it was */
          c->busy_wait = true;
          if (c->phase == CELL_SENT)
            c->phase = CELL_QUEUED;
          c->not_before_ms = loop_now_ms () + BUSY_RETRY_MS;
          arm_cell_timer (se);
          return;
        }
      c = pop (se);
      c->done (c->ctx, se, c, NULL,
               rpc_error_new (500, "executor_error", NULL, "the interpreter refused the cell: %s",
                              m ? m : "unknown error"));
      cell_free (c);
      kick (se);
    }
}

static void
arm_cell_timer (struct session *se)
{
  struct cell *c = se->queue;
  int64_t when = INT64_MAX;
  if (c && c->started_ms)
    when = c->deadline_ms;
  if (c && c->phase == CELL_QUEUED && c->not_before_ms && c->not_before_ms < when)
    when = c->not_before_ms;
  if (when == INT64_MAX)
    loop_timer_stop (se->ss->loop, &se->cell_timer);
  else
    loop_timer_at (se->ss->loop, &se->cell_timer, when);
}

static void
kill_timed_out (struct session *se, struct cell *c)
{
  _cleanup_free_ char *msg
      = xasprintf ("the cell ran past its %lld ms timeout and did not stop on interrupt; the "
                   "interpreter was restarted and its variables are lost (files in /mnt/data "
                   "are kept)",
                   (long long)c->timeout_ms);
  struct cell_outcome o = { "timeout", NULL, "TimeoutError", msg };
  c->restarted = true;
  finish (se, &o);
  sandbox_stop (se->sb); /* stopped() kicks the next cell */
}

static void
on_cell_timer (struct loop_timer *t)
{
  struct session *se = t->data;
  struct cell *c = se->queue;
  int64_t now = loop_now_ms ();
  if (c == NULL)
    return;
  if (c->started_ms && now >= c->deadline_ms)
    {
      if (c->phase == CELL_INTERRUPTING)
        {
          kill_timed_out (se, c);
          return;
        }
      /* capsule-init passes SIGINT on to the interpreter: KeyboardInterrupt, state kept */
      c->timed_out = true;
      c->phase = CELL_INTERRUPTING;
      c->deadline_ms = now + se->ss->cfg.interrupt_grace_ms;
      if (se->sb)
        sandbox_signal (se->sb, SIGINT);
      arm_cell_timer (se);
      return;
    }
  if (c->phase == CELL_QUEUED && c->not_before_ms && now >= c->not_before_ms)
    {
      c->not_before_ms = 0;
      kick (se);
    }
  arm_cell_timer (se);
}

/* ------------------------------------------------------------------ sandbox events */

static void
on_ready (void *owner)
{
  struct session *se = owner;
  struct cell *c = se->queue;
  if (se->sb->restored)
    {
      se->restore_pending_report = true;
      se->restore_ms = se->sb->restore_ms;
      se->sb->restored = false;
      se->restore_failures = 0;
    }
  se->waking = false;
  if (se->status != SESSION_RUNNING)
    {
      maybe_prime (se); /* a warm one, waiting to be claimed */
      return;
    }
  store_save (se);
  answer_wait (&se->wait_ready, se, NULL);
  if (c && c->phase != CELL_QUEUED)
    ask_last_result (se, c); /* we were cut off while it ran */
  kick (se);
}

static void
on_exited (void *owner, bool oom, int status)
{
  struct session *se = owner;
  struct cell *c = se->queue;
  if (se->status == SESSION_WARM)
    {
      drop (se);
      return;
    }
  if (se->wait_ready.fn && c == NULL)
    {
      struct rpc_error *e
          = rpc_error_new (500, "sandbox_failed", NULL,
                           "the interpreter exited during start-up (status %d)", status);
      answer_wait (&se->wait_ready, se, e);
      rpc_error_free (e);
      drop (se);
      return;
    }
  if (c && c->phase != CELL_QUEUED)
    {
      _cleanup_free_ char *tier = format_size (se->tier->memory);
      _cleanup_free_ char *msg
          = oom ? xasprintf ("killed: out of memory (limit %s); the interpreter was restarted and "
                             "its variables are lost (files in /mnt/data are kept)",
                             tier)
            : status < 0
                ? xstrdup ("the interpreter stopped answering; it was restarted and its variables "
                           "are lost (files in /mnt/data are kept)")
                : xasprintf ("the interpreter exited (status %d); it was restarted and its "
                             "variables are lost (files in /mnt/data are kept)",
                             status);
      struct cell_outcome o
          = { oom ? "oom" : "failed", NULL, oom ? "MemoryError" : "InterpreterDied", msg };
      c->restarted = true;
      finish (se, &o);
    }
  for (c = se->queue; c; c = c->next)
    c->phase = CELL_QUEUED;
  kick (se);
}

static void
on_failed (void *owner, capsule_error *err)
{
  struct session *se = owner;
  bool was_waking = se->waking;
  se->waking = false;
  if (se->status == SESSION_WARM)
    {
      fprintf (stderr, "capsule-shim: a warm sandbox failed to start: %s\n", err->msg);
      se->ss->warm_failed = true;
      drop (se);
      return;
    }
  if (se->wait_ready.fn)
    {
      struct rpc_error *e = rpc_error_new (500, "sandbox_failed", NULL, "%s", err->msg);
      answer_wait (&se->wait_ready, se, e);
      rpc_error_free (e);
      drop (se);
      return;
    }
  if (!was_waking)
    {
      fail_cells (se, rpc_error_new (500, "sandbox_failed", NULL, "%s", err->msg));
      return;
    }
  fprintf (stderr, "capsule-shim: %s: restore failed: %s\n", se->id, err->msg);
  if (se->sb->state == SB_ASLEEP && ++se->restore_failures < RESTORE_TRIES)
    {
      /* the image is still there: the session stays asleep and the next call tries again */
      pools_credit (&se->ss->pools, se->tenant, se->tier->memory);
      se->charged = false;
      fail_cells (se, rpc_error_new (500, "restore_failed", NULL,
                                     "the sleeping sandbox could not be restored: %s (it stays "
                                     "asleep; its files are intact)",
                                     err->msg));
      return;
    }
  /* the image will not come back (or is gone): a fresh interpreter with the files, said
     plainly in the next result; the pool charge stays for it */
  se->restore_failures = 0;
  free (se->lost_reason);
  se->lost_reason = xasprintf ("the sleeping interpreter could not be restored (%s); a fresh one "
                               "was started: variables are lost, files in /mnt/data are kept",
                               err->msg);
  if (se->sb->state == SB_ASLEEP)
    sandbox_stop (se->sb); /* removes the image; stopped() starts the fresh one */
  else
    kick (se);
}

static void
on_stopped (void *owner)
{
  kick (owner);
}

static void
on_slept (void *owner, capsule_error *err)
{
  struct session *se = owner;
  if (err == NULL)
    {
      if (se->charged)
        pools_credit (&se->ss->pools, se->tenant, se->tier->memory);
      se->charged = false;
      answer_wait (&se->wait_sleep, se, NULL);
    }
  else
    {
      struct rpc_error *e = rpc_error_new (500, "checkpoint_failed", NULL, "%s", err->msg);
      se->sleep_failed = true;
      answer_wait (&se->wait_sleep, se, e);
      rpc_error_free (e);
    }
  if (!se->ss->stopping)
    kick (se); /* a call came in meanwhile: wake it again */
}

static const struct sandbox_events sandbox_events = {
  .ready = on_ready,
  .message = on_message,
  .exited = on_exited,
  .failed = on_failed,
  .stopped = on_stopped,
  .slept = on_slept,
};

/* ------------------------------------------------------------------ sleep */

static struct rpc_error *
session_sleep (struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (se->ss->checkpoint_unavailable)
    return rpc_error_new (501, "checkpoint_unavailable", NULL, "sessions cannot sleep here: %s",
                          se->ss->checkpoint_unavailable);
  if (se->sb->state == SB_NONE)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s has no interpreter running (it starts on the next exec): "
                          "nothing to checkpoint",
                          se->id);
  if (se->sb->state != SB_READY || se->queue || se->wait_ready.fn)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s is busy; checkpoint it when its calls have finished",
                          se->id);
  if (sandbox_checkpoint (se->sb, &err) < 0)
    return rpc_error_from (500, "checkpoint_failed", steal_pointer (&err));
  return NULL;
}

struct rpc_error *
session_checkpoint (struct session *se, session_done_fn fn, void *ctx)
{
  struct rpc_error *e;
  if (se->sb->state == SB_ASLEEP)
    {
      fn (ctx, se, NULL);
      return NULL;
    }
  if (se->wait_sleep.fn)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s is already being checkpointed for another call", se->id);
  /* an idle checkpoint under way: this call is answered when it is done */
  e = se->sb->state == SB_CHECKPOINTING ? NULL : session_sleep (se);
  if (e)
    return e;
  se->wait_sleep = (struct session_wait){ fn, ctx };
  return NULL;
}

static void
sleep_due (struct sessions *ss, int64_t now)
{
  int workers = 0;
  if (ss->checkpoint_unavailable || ss->tiers->checkpoint_after_s == 0)
    return;
  for (struct session *se = ss->list; se; se = se->next)
    workers += se->sb && se->sb->state == SB_CHECKPOINTING;
  /* idle sessions go to sleep a few at a time: a hundred dumps at once would take the CPU from
     the sessions that work */
  for (struct session *se = ss->list; se && workers < SLEEP_WORKERS_MAX; se = se->next)
    if (se->status == SESSION_RUNNING && se->sb && se->sb->state == SB_READY && se->queue == NULL
        && se->wait_ready.fn == NULL && !se->sleep_failed
        && now >= se->last_active_at + (int64_t)ss->tiers->checkpoint_after_s)
      {
        struct rpc_error *e = session_sleep (se);
        workers += e == NULL;
        if (e)
          {
            fprintf (stderr, "capsule-shim: %s: %s\n", se->id, e->message);
            se->sleep_failed = true;
            rpc_error_free (e);
          }
      }
}

/* ------------------------------------------------------------------ the clock */

static void
on_tick (struct loop_timer *t)
{
  struct sessions *ss = t->data;
  int64_t now = shim_now ();
  struct session **p = &ss->list;
  while (*p)
    {
      struct session *se = *p;
      if (se->status == SESSION_RUNNING && se->queue == NULL
          && now >= se->last_active_at + se->expires_minutes * ss->cfg.minute_s)
        expire_idle (se);
      if (se->status == SESSION_EXPIRED && now >= se->ended_at + ss->cfg.expired_retention_s)
        {
          *p = se->next;
          session_free (se);
          continue;
        }
      p = &se->next;
    }
  sleep_due (ss, now);
  loop_timer_in (ss->loop, t, 1000);
}

void
sessions_init (struct sessions *ss, struct loop *l, struct sandbox_host *h, struct tiers *tiers,
               const struct session_config *cfg)
{
  *ss = (struct sessions){ .loop = l, .host = h, .cfg = *cfg, .tiers = tiers };
  ss->pools.default_total = tiers->pool;
  ss->tick = (struct loop_timer){ .fn = on_tick, .data = ss };
  ss->warm_timer = (struct loop_timer){ .fn = on_warm_timer, .data = ss };
  loop_timer_in (l, &ss->tick, 1000);
}

void
sessions_shutdown (struct sessions *ss)
{
  ss->stopping = true;
  loop_timer_stop (ss->loop, &ss->tick);
  loop_timer_stop (ss->loop, &ss->warm_timer);
  while (ss->list)
    {
      struct session *se = ss->list;
      if (se->status == SESSION_WARM)
        {
          drop (se);
          continue;
        }
      if (se->status == SESSION_RUNNING)
        store_save (se);
      if (se->sb)
        sandbox_detach_free (se->sb);
      se->sb = NULL;
      /* the clients are gone with the shim: nobody to answer */
      se->wait_ready = se->wait_sleep = (struct session_wait){ 0 };
      while (se->queue)
        cell_free (pop (se));
      session_unlink (se);
      session_free (se);
    }
  sandbox_host_drain (ss->host);
}

/* ------------------------------------------------------------------ taking up a dead shim's */

static bool
keep_sandbox (void *data, const char *id)
{
  return sessions_find (data, id) != NULL;
}

/* A session directory nobody can take up: whatever it holds goes. */
static void
dispose_dir (struct sessions *ss, const char *id, const char *dir)
{
  struct sandbox *sb = sandbox_new (ss->host, id, dir, NULL, "", NULL, NULL);
  sandbox_dispose (sb, true);
}

/* The run directory and the workspace of a session whose mounts are gone, when its workspace
   is an image on disk.  At the shim's start, before it serves anyone. */
static bool
remount (struct sessions *ss, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_free_ char *image = xasprintf ("%s/ws.img", se->dir);
  uid_t uid = ss->cfg.host_uid_base + SANDBOX_UID;
  if (access (image, F_OK) < 0)
    return false;
  if (!se->run_mounted && mount_run (se, &err) < 0)
    {
      fprintf (stderr, "capsule-shim: %s: %s\n", se->id, err->msg);
      return false;
    }
  if (workspace_mount (ss->host, se->dir, se->tier->workspace, uid, &err) < 0)
    {
      fprintf (stderr, "capsule-shim: %s: %s\n", se->id, err->msg);
      workspace_unmount (se->dir);
      return false;
    }
  return true;
}

static void
adopt (struct sessions *ss, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  se->data_mounted = is_mount_point (se->data_dir);
  se->run_mounted = is_mount_point (se->run_dir);
  se->sb = new_sandbox (se);
  if (!se->data_mounted && remount (ss, se))
    {
      /* the host rebooted (or its mounts were dropped) but the workspace is on disk: its files
         and its changed root come back; the interpreter starts afresh and says so */
      fprintf (stderr, "capsule-shim: %s: its workspace is mounted again\n", se->id);
      se->data_mounted = true;
    }
  if (!se->data_mounted)
    {
      /* its files are gone (a tmpfs workspace and the host rebooted): it cannot come back */
      fprintf (stderr, "capsule-shim: %s: its workspace is gone; expired\n", se->id);
      session_expire (se, "expired: its workspace did not survive a restart of the host");
      return;
    }
  sandbox_adopt (se->sb); /* running: connect; a complete image: asleep; else none */
  if (se->sb->state == SB_ASLEEP)
    return; /* asleep: no memory, no charge */
  if (pools_charge (&ss->pools, se->tenant, se->tier->memory, &err) < 0)
    {
      fprintf (stderr, "capsule-shim: %s: %s\n", se->id, err->msg);
      session_expire (se, "expired: its tenant's memory pool no longer holds it");
      return;
    }
  se->charged = true;
}

/* A worker of a shim that was killed may still be at work on DIR (mounting its workspace,
   making its container, dumping it): wait until it is done (its lock goes with it), until
   DEADLINE_MS at most.  One deadline for the whole load: the dead shim's workers ran side by
   side, so waiting for them one after another takes no longer than the slowest, and a stuck
   one costs the start a minute, not a minute for each. */
static void
settle (const char *dir, int64_t deadline_ms)
{
  _cleanup_free_ char *path = xasprintf ("%s/" SANDBOX_LOCK, dir);
  struct timespec pause = { 0, 10 * 1000 * 1000 };
  int r;
  while ((r = session_lock_try (path)) == 0 && shim_monotonic_ms () < deadline_ms)
    nanosleep (&pause, NULL);
  if (r == 0)
    fprintf (stderr, "capsule-shim: %s: a worker of an earlier shim is still at work on it\n", dir);
}

int
sessions_load (struct sessions *ss)
{
  _cleanup_free_ char *root = xasprintf ("%s/sessions", ss->cfg.state_dir);
  DIR *d = opendir (root);
  struct dirent *de;
  int n = 0;
  int64_t settle_by = shim_monotonic_ms () + 60 * 1000;
  if (d != NULL)
    {
      while ((de = readdir (d)))
        {
          _cleanup_free_ char *dir = NULL, *record = NULL;
          struct session *se;
          if (!shim_id_valid (de->d_name, "cntr_"))
            continue;
          dir = xasprintf ("%s/%s", root, de->d_name);
          settle (dir, settle_by);
          record = xasprintf ("%s/record.json", dir);
          if (access (record, F_OK) < 0)
            {
              /* a warm sandbox, a create that never finished, a delete cut short: nobody's */
              dispose_dir (ss, de->d_name, dir);
              continue;
            }
          se = store_load (ss, dir, de->d_name);
          if (se->record_broken)
            {
              /* its record does not read: an honest expiry, never a sandbox left running */
              se->status = SESSION_EXPIRED;
              se->ended_at = shim_now ();
              dispose_dir (ss, de->d_name, dir);
              continue;
            }
          adopt (ss, se);
          n += se->status == SESSION_RUNNING;
        }
      closedir (d);
    }
  sandbox_host_sweep (ss->host, keep_sandbox, ss);
  return n;
}
