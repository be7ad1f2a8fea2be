/* capsule-shim: sessions that sleep on disk.
 *
 * A session idle for checkpoint_after_seconds (tiers file), or asked to by containers.checkpoint,
 * is checkpointed with CRIU into STATE/checkpoints/ID: its processes are gone, its memory
 * free, its tier credited back to the tenant's pool.  /mnt/data stays where it is (the session's
 * workspace on the host), so files calls answer without waking it.  The next call that needs the
 * interpreter charges the pool again and restores it: variables, imported modules and the
 * execution counter come back, and that call's result says `restored` with the time it took.
 *
 * Dump and restore take seconds for a big interpreter, so each runs in a forked worker while the
 * loop goes on; the worker's exit comes as SIGCHLD.  A restored sandbox is reparented to us (we
 * are a subreaper) when the worker exits.  STATE/checkpoints is root's alone (0700): the image
 * files belong to the sandbox's mapped root, which criu restores as, and nobody else may reach
 * them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "container.h"
#include "shim-util.h"
#include "shim.h"
#include "utils.h"

#define COMPLETE_MARK      "capsule-complete"
#define SLEEP_WORKERS_MAX  2                /* idle checkpoints at a time */
#define WORKER_DEADLINE_MS (10 * 60 * 1000) /* a dump or restore that takes longer is killed */

void
sleep_init (struct shim *s)
{
  _cleanup_free_ char *dir = xasprintf ("%s/checkpoints", s->cfg.state_dir);
  _cleanup_error_ capsule_error *err = NULL;
  free (s->checkpoint_unavailable);
  s->checkpoint_unavailable = checkpoint_unavailable ();
  if (s->checkpoint_unavailable == NULL && (mkdir_p (dir, 0700, &err) < 0 || chmod (dir, 0700) < 0))
    s->checkpoint_unavailable
        = xasprintf ("cannot make `%s`: %s", dir, err ? err->msg : strerror (errno));
  if (s->checkpoint_unavailable)
    fprintf (stderr, "capsule-shim: idle sessions stay live: checkpoint unavailable: %s\n",
             s->checkpoint_unavailable);
}

char *
sleep_image_dir (struct shim *s, struct session *se)
{
  return xasprintf ("%s/checkpoints/%s", s->cfg.state_dir, se->id);
}

bool
sleep_image_complete (struct shim *s, struct session *se)
{
  _cleanup_free_ char *mark
      = xasprintf ("%s/checkpoints/%s/" COMPLETE_MARK, s->cfg.state_dir, se->id);
  return access (mark, F_OK) == 0;
}

void
sleep_image_remove (struct shim *s, struct session *se)
{
  _cleanup_free_ char *dir = sleep_image_dir (s, se);
  _cleanup_error_ capsule_error *err = NULL;
  if (rm_rf (dir, &err) < 0)
    fprintf (stderr, "capsule-shim: %s: remove the checkpoint: %s\n", se->id, err->msg);
}

static char *
error_file (struct session *se)
{
  return xasprintf ("%s/checkpoint.error", se->dir);
}

/* In the worker: do it, leave the reason in checkpoint.error when it fails. */
static _Noreturn void
worker (struct shim *s, struct session *se, bool restore)
{
  _cleanup_free_ char *images = sleep_image_dir (s, se), *bundle = NULL, *errpath = error_file (se);
  _cleanup_error_ capsule_error *err = NULL;
  struct checkpoint_opts co = { .image_path = images, .detach = true, .ext_unix_sk = true };
  sigset_t none;
  int r, status = 0;
  /* nothing of the shim's (other sessions' executor sockets, clients) may be held open here:
     criu would find the far end of a connection it dumps alive */
  close_range (3, ~0U, 0);
  setpgid (0, 0); /* so that a deadline kills criu with us */
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  signal (SIGPIPE, SIG_DFL);
  if (restore)
    {
      struct container_opts o = { .root = s->runtime_root, .id = se->id };
      bundle = xasprintf ("%s/bundle", se->dir);
      o.bundle = bundle;
      r = container_restore (&o, &co, &status, &err);
    }
  else
    {
      _cleanup_error_ capsule_error *ignored = NULL;
      rm_rf (images, &ignored);
      r = container_checkpoint (s->runtime_root, se->id, &co, &err);
    }
  if (r < 0)
    {
      _cleanup_error_ capsule_error *ignored = NULL;
      write_file_atomic (errpath, err->msg, strlen (err->msg), 0600, &ignored);
      _exit (1);
    }
  /* a restore's image is removed by the shim once it has the sandbox back */
  if (!restore)
    {
      _cleanup_free_ char *mark = xasprintf ("%s/" COMPLETE_MARK, images);
      if (write_file_atomic (mark, "", 0, 0600, &err) < 0)
        {
          _cleanup_error_ capsule_error *ignored = NULL;
          capsule_error_wrap (&err, "mark the checkpoint complete");
          write_file_atomic (errpath, err->msg, strlen (err->msg), 0600, &ignored);
          _exit (1);
        }
    }
  _exit (0);
}

static int
start_worker (struct shim *s, struct session *se, bool restore, capsule_error **err)
{
  _cleanup_free_ char *errpath = error_file (se);
  pid_t pid;
  unlink (errpath);
  pid = fork ();
  if (pid < 0)
    return capsule_error_make (err, errno, "fork a %s worker", restore ? "restore" : "checkpoint");
  if (pid == 0)
    worker (s, se, restore);
  setpgid (pid, pid); /* as the worker does: whichever runs first, the group exists */
  se->cr_pid = pid;
  se->cr_started_ms = shim_monotonic_ms ();
  return 0;
}

struct rpc_error *
session_sleep (struct shim *s, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (s->checkpoint_unavailable)
    return rpc_error_new (501, "checkpoint_unavailable", NULL, "sessions cannot sleep here: %s",
                          s->checkpoint_unavailable);
  if (se->sb == SB_NONE)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s has no interpreter running (it starts on the next exec): "
                          "nothing to checkpoint",
                          se->id);
  if (se->sb != SB_READY || se->queue || se->pending_create.id_json)
    return rpc_error_new (409, "container_busy", "container_id",
                          "container %s is busy; checkpoint it when its calls have finished",
                          se->id);
  /* the executor goes back to waiting for a connection: nothing of ours is in the image */
  sandbox_detach (s, se);
  se->sb = SB_CHECKPOINTING;
  if (start_worker (s, se, false, &err) < 0)
    {
      sandbox_await_executor (s, se); /* reconnect to the untouched sandbox */
      return rpc_error_from (500, "checkpoint_failed", steal_pointer (&err));
    }
  return NULL;
}

struct rpc_error *
session_wake (struct shim *s, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  if (se->sb != SB_ASLEEP)
    return NULL;
  if (pools_charge (&s->pools, se->tenant, se->tier->memory, &err) < 0)
    return rpc_error_from (429, "memory_pool_exhausted", steal_pointer (&err));
  se->charged = true;
  se->sb = SB_RESTORING;
  if (start_worker (s, se, true, &err) < 0)
    {
      pools_credit (&s->pools, se->tenant, se->tier->memory);
      se->charged = false;
      se->sb = SB_ASLEEP;
      return rpc_error_from (500, "restore_failed", steal_pointer (&err));
    }
  return NULL;
}

void
sessions_sleep_due (struct shim *s, int64_t now)
{
  int workers = 0;
  for (struct session *se = s->sessions; se; se = se->next)
    if (se->cr_pid > 0 && shim_monotonic_ms () - se->cr_started_ms > WORKER_DEADLINE_MS)
      {
        fprintf (stderr, "capsule-shim: %s: the %s worker ran past %d s: killed\n", se->id,
                 se->sb == SB_RESTORING ? "restore" : "checkpoint", WORKER_DEADLINE_MS / 1000);
        kill (-se->cr_pid, SIGKILL); /* its SIGCHLD takes the failure path */
      }
  if (s->checkpoint_unavailable || s->tiers.checkpoint_after_s == 0)
    return;
  for (struct session *se = s->sessions; se; se = se->next)
    workers += se->cr_pid > 0;
  /* idle sessions go to sleep a few at a time: a hundred dumps at once would take the CPU from
     the sessions that work */
  for (struct session *se = s->sessions; se && workers < SLEEP_WORKERS_MAX; se = se->next)
    if (se->status == SESSION_RUNNING && se->sb == SB_READY && se->queue == NULL
        && se->pending_create.id_json == NULL && !se->sleep_failed
        && now >= se->last_active_at + (int64_t)s->tiers.checkpoint_after_s)
      {
        struct rpc_error *e = session_sleep (s, se);
        workers += e == NULL;
        if (e)
          {
            fprintf (stderr, "capsule-shim: %s: %s\n", se->id, e->message);
            se->sleep_failed = true;
            rpc_error_free (e);
          }
      }
}

static char *
worker_error (struct session *se, int status)
{
  _cleanup_free_ char *path = error_file (se);
  _cleanup_error_ capsule_error *ignored = NULL;
  char *text = NULL;
  if (read_file_at (AT_FDCWD, path, 1 << 16, &text, NULL, &ignored) == 0 && text[0])
    return text;
  free (text);
  if (WIFSIGNALED (status))
    return xasprintf ("the worker was killed by signal %d", WTERMSIG (status));
  return xasprintf ("the worker failed (status %d)", WEXITSTATUS (status));
}

static void
reply_sleep (struct shim *s, struct session *se, struct rpc_error *e)
{
  if (se->pending_sleep.id_json == NULL)
    {
      rpc_error_free (e);
      return;
    }
  if (e)
    shim_reply_error (s, &se->pending_sleep, e);
  else
    shim_reply (s, &se->pending_sleep, session_object_json (s, se));
  free (se->pending_sleep.id_json);
  se->pending_sleep = (struct call){ 0 };
}

static void
checkpoint_done (struct shim *s, struct session *se, int status)
{
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    {
      se->sb = SB_ASLEEP;
      se->pid = 0;
      if (se->charged)
        pools_credit (&s->pools, se->tenant, se->tier->memory);
      se->charged = false;
      fprintf (stderr, "capsule-shim: %s: asleep (checkpointed in %lld ms)\n", se->id,
               (long long)(shim_monotonic_ms () - se->cr_started_ms));
      reply_sleep (s, se, NULL);
      if (!s->stopping)
        execution_kick (s, se); /* a call came in meanwhile: wake it again */
      return;
    }
  {
    _cleanup_free_ char *why = worker_error (se, status);
    fprintf (stderr, "capsule-shim: %s: checkpoint failed: %s\n", se->id, why);
    se->sleep_failed = true;
    reply_sleep (s, se, rpc_error_new (500, "checkpoint_failed", NULL, "%s", why));
  }
  /* criu failed before touching the sandbox (it leaves it running): reconnect; else it is gone,
     and the next call starts a fresh interpreter and says so */
  if (sandbox_running (s, se) > 0)
    {
      sandbox_await_executor (s, se);
      return;
    }
  sandbox_stop (s, se);
  if (!s->stopping)
    execution_kick (s, se);
}

static void
restore_done (struct shim *s, struct session *se, int status)
{
  bool worker_ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;
  pid_t pid = worker_ok ? sandbox_running (s, se) : 0;
  if (pid > 0)
    {
      se->pid = pid;
      se->oom_kills = 0;
      se->restore_ms = shim_monotonic_ms () - se->cr_started_ms;
      se->restored_unreported = true;
      sandbox_await_executor (s, se);
      sleep_image_remove (s, se);
      fprintf (stderr, "capsule-shim: %s: awake (restored in %lld ms)\n", se->id,
               (long long)se->restore_ms);
      return;
    }
  {
    _cleanup_free_ char *why
        = worker_ok ? xstrdup ("the restored interpreter died at once") : worker_error (se, status);
    fprintf (stderr, "capsule-shim: %s: restore failed: %s\n", se->id, why);
    /* whatever the restore left (a record, a dying process) goes */
    sandbox_stop (s, se);
    if (sleep_image_complete (s, se))
      {
        /* the image is still there: the session stays asleep and the next call tries again */
        pools_credit (&s->pools, se->tenant, se->tier->memory);
        se->charged = false;
        se->sb = SB_ASLEEP;
        execution_fail_all (s, se,
                            rpc_error_new (500, "restore_failed", NULL,
                                           "the sleeping sandbox could not be restored: %s (it "
                                           "stays asleep; its files are intact)",
                                           why));
        return;
      }
    /* no image to go back to: a fresh interpreter (the call says interpreter_restarted) */
    se->starts = se->starts > 0 ? se->starts : 1;
    if (!s->stopping)
      execution_kick (s, se);
  }
}

bool
sleep_on_child (struct shim *s, pid_t pid, int status)
{
  for (struct session *se = s->sessions; se; se = se->next)
    if (se->cr_pid > 0 && se->cr_pid == pid)
      {
        se->cr_pid = 0;
        if (se->sb == SB_CHECKPOINTING)
          checkpoint_done (s, se, status);
        else if (se->sb == SB_RESTORING)
          restore_done (s, se, status);
        return true;
      }
  return false;
}

void
sleep_cancel (struct shim *s, struct session *se)
{
  (void)s;
  if (se->cr_pid <= 0)
    return;
  if (kill (-se->cr_pid, SIGKILL) < 0)
    kill (se->cr_pid, SIGKILL);
  while (waitpid (se->cr_pid, NULL, 0) < 0 && errno == EINTR)
    ;
  se->cr_pid = 0;
  reply_sleep (s, se, rpc_error_new (409, "container_busy", NULL, "the container was stopped"));
}

void
sleep_wait_workers (struct shim *s)
{
  for (struct session *se = s->sessions; se; se = se->next)
    if (se->cr_pid > 0)
      {
        pid_t pid = se->cr_pid;
        int status = 0;
        fprintf (stderr, "capsule-shim: %s: waiting for its %s to finish\n", se->id,
                 se->sb == SB_RESTORING ? "restore" : "checkpoint");
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
          ;
        sleep_on_child (s, pid, status);
      }
}
