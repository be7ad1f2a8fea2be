/* capsule-shim: the sandbox layer: a container's life and the executor channel (sandbox.h). */
#define _GNU_SOURCE
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "overlay.h"
#include "shim-util.h"
#include "workspace.h"
#include "checkpoint.h"
#include "container.h"
#include "spec-default.h"
#include "utils.h"

#define CONNECT_RETRY_MS 5
#define LINES_PER_TURN   256

const char *
sandbox_state_name (enum sandbox_state st)
{
  static const char *const names[]
      = { "stopped", "starting", "live", "stopping", "checkpointing", "checkpointed", "restoring" };
  return names[st];
}

/* ------------------------------------------------------------------ the host */

int
sandbox_host_init (struct sandbox_host *h, const char *state_dir, const char *image,
                   const char *policy_dir, capsule_error **err)
{
  _cleanup_free_ char *policy = policy_dir ? xasprintf ("%s/seccomp/default.json", policy_dir)
                                           : spec_policy_path ("seccomp/default.json");
  _cleanup_json_ json_value *check = NULL;
  size_t len;
  h->runtime_root = xasprintf ("%s/runtime", state_dir);
  h->checkpoint_dir = xasprintf ("%s/checkpoints", state_dir);
  if (read_file_at (AT_FDCWD, policy, 1 << 20, &h->seccomp_profile, &len, err) < 0)
    return capsule_error_wrap (err, "seccomp profile");
  /* it goes into every config as it is: it must be one JSON value, all of the file */
  check = json_parse_n (h->seccomp_profile, len, JSON_NUL_REFUSE, policy, err);
  if (check == NULL)
    return -1;
  if (sandbox_host_image (h, state_dir, image, err) < 0)
    return -1;
  if (workspace_host_init (h, state_dir, err) < 0)
    return -1;
  return overlay_host_init (h, state_dir);
}

void
sandbox_host_release (struct sandbox_host *h)
{
  free (h->runtime_root);
  free (h->checkpoint_dir);
  free (h->image_root);
  free (h->seccomp_profile);
  free (h->cgroup_parent);
  overlay_host_release (h);
  workspace_host_release (h);
}

/* ------------------------------------------------------------------ small pieces */

static char *
image_dir (const struct sandbox *sb)
{
  return xasprintf ("%s/%s", sb->host->checkpoint_dir, sb->id);
}

bool
sandbox_image_complete (const struct sandbox *sb)
{
  _cleanup_free_ char *mark
      = xasprintf ("%s/%s/" SANDBOX_COMPLETE_MARK, sb->host->checkpoint_dir, sb->id);
  return access (mark, F_OK) == 0;
}

/* The pid of the container's process when the runtime's record says it runs, else 0. */
static pid_t
running_pid (const struct sandbox *sb)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  if (state_load (sb->host->runtime_root, sb->id, &st, &err) < 0 || !state_process_alive (st))
    return 0;
  return st->pid;
}

static void
close_executor (struct sandbox *sb)
{
  struct loop *l = sb->host->loop;
  loop_timer_stop (l, &sb->connect_timer);
  loop_timer_stop (l, &sb->more_timer);
  if (sb->fd >= 0)
    {
      loop_io_del (l, &sb->io);
      close (sb->fd);
      sb->fd = -1;
    }
  line_reader_release (&sb->in);
  buf_release (&sb->out);
}

static void
close_pidfd (struct sandbox *sb)
{
  if (sb->pidfd >= 0)
    {
      loop_io_del (sb->host->loop, &sb->pid_io);
      close (sb->pidfd);
      sb->pidfd = -1;
    }
}

static void on_pid_exit (struct loop_io *io, uint32_t revents);
static void on_worker_done (struct worker *w, bool ok, capsule_error *err);
static void on_connect_timer (struct loop_timer *t);
static void on_executor_io (struct loop_io *io, uint32_t revents);
static void on_more_lines (struct loop_timer *t);
static void on_ended (struct loop_timer *t);

/* Watch PID (the container's init): its exit comes as the pidfd turning readable.  False when
   it is gone already. */
static bool
watch_pid (struct sandbox *sb, pid_t pid)
{
  close_pidfd (sb);
  sb->pid = pid;
  sb->pidfd = pid > 0 ? syscall (SYS_pidfd_open, pid, 0) : -1;
  if (sb->pidfd < 0)
    return false;
  sb->pid_io = (struct loop_io){ .fn = on_pid_exit, .data = sb };
  loop_io_add (sb->host->loop, &sb->pid_io, sb->pidfd, EPOLLIN);
  return true;
}

static uint64_t
oom_kills (const struct sandbox *sb)
{
  struct cgroup_stats stats = { 0 };
  _cleanup_error_ capsule_error *err = NULL;
  if (container_stats (sb->host->runtime_root, sb->id, &stats, &err) < 0)
    return 0;
  return stats.oom_kills;
}

static void
await_executor (struct sandbox *sb)
{
  sb->state = SB_STARTING;
  sb->ready_deadline_ms = loop_now_ms () + sb->host->startup_timeout_ms;
  loop_timer_in (sb->host->loop, &sb->connect_timer, 0);
}

struct sandbox *
sandbox_new (struct sandbox_host *h, const char *id, const char *dir, const struct tier *tier,
             const char *tenant, const struct sandbox_events *ev, void *owner)
{
  struct sandbox *sb = xmalloc0 (sizeof *sb);
  sb->host = h;
  sb->ev = ev;
  sb->owner = owner;
  sb->id = xstrdup (id);
  sb->dir = xstrdup (dir);
  sb->run_dir = xasprintf ("%s/run", dir);
  sb->data_dir = xasprintf ("%s/data", dir);
  sb->tenant = xstrdup (tenant);
  sb->tier = tier;
  sb->fd = sb->pidfd = -1;
  sb->io.fd = sb->pid_io.fd = -1;
  sb->in.max = SANDBOX_LINE_MAX;
  sb->connect_timer = (struct loop_timer){ .fn = on_connect_timer, .data = sb };
  sb->more_timer = (struct loop_timer){ .fn = on_more_lines, .data = sb };
  sb->ended_timer = (struct loop_timer){ .fn = on_ended, .data = sb };
  worker_init (&sb->worker, h->loop, on_worker_done, sb);
  return sb;
}

static void
sandbox_free (struct sandbox *sb)
{
  loop_timer_stop (sb->host->loop, &sb->ended_timer);
  close_executor (sb);
  close_pidfd (sb);
  worker_cancel (&sb->worker);
  free (sb->id);
  free (sb->dir);
  free (sb->run_dir);
  free (sb->data_dir);
  free (sb->tenant);
  capsule_error_free (sb->fail);
  free (sb);
}

/* ------------------------------------------------------------------ the workers */

/* Held by a worker for its whole life (the lock goes with its process, never closed here): a
   shim started while a killed shim's worker still mounts a workspace or makes a container waits
   for it (sessions_load) before it takes the session up or clears its directory, and a new
   worker of the same sandbox runs after it. */
static void
hold_session_lock (const struct sandbox *sb)
{
  _cleanup_free_ char *path = NULL;
  if (sb->dir == NULL)
    return;
  path = xasprintf ("%s/" SANDBOX_LOCK, sb->dir);
  (void)session_lock_take (path);
}

static int
start_fn (void *arg, capsule_error **err)
{
  struct sandbox *sb = arg;
  _cleanup_free_ char *bundle = xasprintf ("%s/bundle", sb->dir);
  _cleanup_error_ capsule_error *ignored = NULL;
  struct container_opts o
      = { .root = sb->host->runtime_root, .id = sb->id, .bundle = bundle, .null_stdio = true };
  hold_session_lock (sb);
  /* the workspace first: made on disk for a new session (mke2fs), mounted again after a
     reboot, there already for an interpreter's restart */
  if (sb->tier
      && workspace_mount (sb->host, sb->dir, sb->tier->workspace,
                          sb->host->host_uid_base + SANDBOX_UID, err)
             < 0)
    return capsule_error_wrap (err, "the session's workspace");
  /* a container of this id left over from a dead interpreter */
  container_delete (o.root, sb->id, true, &ignored);
  if (container_create (&o, err) < 0 || container_start (o.root, sb->id, err) < 0)
    {
      capsule_error_release (&ignored);
      container_delete (o.root, sb->id, true, &ignored);
      return capsule_error_wrap (err, "start the sandbox");
    }
  return 0;
}

static void
unmount_if_mounted (const char *path)
{
  if (umount2 (path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    fprintf (stderr, "capsule-shim: unmount %s: %m\n", path);
}

static int
stop_work (struct sandbox *sb, capsule_error **err)
{
  _cleanup_error_ capsule_error *tmp = NULL;
  int r = 0;
  if (container_delete (sb->host->runtime_root, sb->id, true, &tmp) < 0 && tmp->status != ENOENT)
    {
      *err = steal_pointer (&tmp);
      r = -1;
    }
  capsule_error_release (&tmp);
  if (!sb->keep_image)
    {
      _cleanup_free_ char *images = image_dir (sb);
      rm_rf (images, &tmp);
      capsule_error_release (&tmp);
    }
  if (sb->disposing && sb->dir)
    {
      workspace_unmount (sb->dir);
      unmount_if_mounted (sb->run_dir);
      if (rm_rf (sb->dir, &tmp) < 0 && r == 0)
        {
          *err = steal_pointer (&tmp);
          r = -1;
        }
    }
  return r;
}

static int
stop_fn (void *arg, capsule_error **err)
{
  struct sandbox *sb = arg;
  hold_session_lock (sb);
  return stop_work (sb, err);
}

/* stop_fn in the loop's own process (no fork): the session lock only for the teardown's
   length; held for the process's life it would be the shim's for ever, and every later worker
   of the session (the stop worker the shim waits for at SIGTERM) would wait for it. */
static int
stop_in_loop (struct sandbox *sb, capsule_error **err)
{
  _cleanup_free_ char *path = sb->dir ? xasprintf ("%s/" SANDBOX_LOCK, sb->dir) : NULL;
  _cleanup_close_ int fd = path ? session_lock_take (path) : -1;
  return stop_work (sb, err);
}

static int
checkpoint_fn (void *arg, capsule_error **err)
{
  struct sandbox *sb = arg;
  _cleanup_free_ char *images = image_dir (sb);
  _cleanup_free_ char *mark = xasprintf ("%s/" SANDBOX_COMPLETE_MARK, images);
  _cleanup_error_ capsule_error *ignored = NULL;
  struct checkpoint_opts co = { .image_path = images, .ext_unix_sk = true };
  hold_session_lock (sb);
  rm_rf (images, &ignored);
  if (container_checkpoint (sb->host->runtime_root, sb->id, &co, err) < 0)
    return -1;
  if (write_file_atomic (mark, "", 0, 0600, err) < 0)
    return capsule_error_wrap (err, "mark the checkpoint complete");
  return 0;
}

static int
restore_fn (void *arg, capsule_error **err)
{
  struct sandbox *sb = arg;
  _cleanup_free_ char *images = image_dir (sb), *bundle = xasprintf ("%s/bundle", sb->dir);
  _cleanup_error_ capsule_error *ignored = NULL;
  struct checkpoint_opts co = { .image_path = images, .detach = true, .ext_unix_sk = true };
  struct container_opts o = { .root = sb->host->runtime_root, .id = sb->id, .bundle = bundle };
  int status = 0;
  hold_session_lock (sb);
  if (sb->tier
      && workspace_mount (sb->host, sb->dir, sb->tier->workspace,
                          sb->host->host_uid_base + SANDBOX_UID, err)
             < 0)
    return capsule_error_wrap (err, "the session's workspace");
  if (container_restore (&o, &co, &status, err) < 0)
    {
      /* whatever the restore left (a record, a cgroup, a dying process) goes */
      container_delete (o.root, sb->id, true, &ignored);
      return -1;
    }
  /* it runs again: the image has served */
  rm_rf (images, &ignored);
  return 0;
}

static int
start_worker (struct sandbox *sb, enum sandbox_state st, const char *what, worker_fn fn,
              capsule_error **err)
{
  if (worker_start (&sb->worker, what, fn, sb, SANDBOX_WORKER_MS, err) < 0)
    return -1;
  loop_timer_stop (sb->host->loop, &sb->ended_timer); /* an end not told yet is overtaken */
  sb->state = st;
  return 0;
}

/* The state a torn-down sandbox is in: asleep when it keeps a complete image, else none (a
   disposed one is freed: none). */
static void
stopped (struct sandbox *sb)
{
  sb->state = !sb->disposing && sb->keep_image && sandbox_image_complete (sb) ? SB_ASLEEP : SB_NONE;
  sb->keep_image = false;
}

/* The container must go (it died, failed, or is stopped): tear it down in a worker. */
static void
teardown (struct sandbox *sb)
{
  _cleanup_error_ capsule_error *err = NULL;
  worker_cancel (&sb->worker);
  close_executor (sb);
  close_pidfd (sb);
  sb->pid = 0;
  if (start_worker (sb, SB_STOPPING, "stop", stop_fn, &err) < 0)
    {
      /* no fork: do it here rather than leave the container behind */
      fprintf (stderr, "capsule-shim: %s: %s; tearing down in the loop\n", sb->id, err->msg);
      capsule_error_release (&err);
      stop_in_loop (sb, &err);
      if (err)
        fprintf (stderr, "capsule-shim: %s: teardown: %s\n", sb->id, err->msg);
      /* as stop_done, but its owner is told from the loop, as a worker's end is (it may be in
         the middle of a call that tore the sandbox down) */
      stopped (sb);
      if (!sb->disposing)
        loop_timer_in (sb->host->loop, &sb->ended_timer, 0);
    }
}

static void
tell_ended (struct sandbox *sb, capsule_error *failed)
{
  if (sb->ev == NULL)
    return;
  if (failed)
    sb->ev->failed (sb->owner, failed);
  else if (sb->exit_pending)
    {
      sb->exit_pending = false;
      sb->ev->exited (sb->owner, sb->exit_oom, sb->exit_status);
    }
  else
    sb->ev->stopped (sb->owner);
}

static void
on_ended (struct loop_timer *t)
{
  struct sandbox *sb = t->data;
  _cleanup_error_ capsule_error *failed = steal_pointer (&sb->fail);
  tell_ended (sb, failed);
}

static void
unlink_disposed (struct sandbox *sb)
{
  for (struct sandbox **p = &sb->host->disposed; *p; p = &(*p)->next_disposed)
    if (*p == sb)
      {
        *p = sb->next_disposed;
        return;
      }
}

static void
stop_done (struct sandbox *sb, bool ok, capsule_error *err)
{
  stopped (sb);
  if (!ok)
    fprintf (stderr, "capsule-shim: %s: teardown: %s\n", sb->id, err->msg);
  if (sb->disposing)
    {
      unlink_disposed (sb);
      sandbox_free (sb);
      return;
    }
  {
    _cleanup_error_ capsule_error *failed = steal_pointer (&sb->fail);
    tell_ended (sb, failed);
  }
}

static void
start_done (struct sandbox *sb, bool ok, capsule_error *err)
{
  pid_t pid = ok ? running_pid (sb) : 0;
  if (!ok)
    {
      sb->state = SB_NONE;
      if (sb->ev)
        sb->ev->failed (sb->owner, err);
      return;
    }
  /* the container's init was the worker's child; the worker is gone, so it is ours now (the
     shim is a subreaper) */
  if (!watch_pid (sb, pid))
    {
      capsule_error_make (&sb->fail, ESRCH, "the interpreter exited as soon as it started");
      teardown (sb);
      return;
    }
  sb->oom_kills = oom_kills (sb);
  sb->starts++;
  sb->restored = false;
  await_executor (sb);
}

static void
restore_done (struct sandbox *sb, bool ok, capsule_error *err)
{
  pid_t pid = ok ? running_pid (sb) : 0;
  if (ok && watch_pid (sb, pid))
    {
      sb->oom_kills = oom_kills (sb);
      sb->restored = true;
      sb->restore_ms = loop_now_ms () - sb->worker.started_ms;
      fprintf (stderr, "capsule-shim: %s: awake (restored in %lld ms)\n", sb->id,
               (long long)sb->restore_ms);
      await_executor (sb);
      return;
    }
  if (ok)
    {
      capsule_error_make (&sb->fail, ESRCH, "the restored interpreter died at once");
      sb->keep_image = false;
      teardown (sb);
      return;
    }
  /* the worker removed what the restore left; the image may still be there for another try */
  sb->state = sandbox_image_complete (sb) ? SB_ASLEEP : SB_NONE;
  if (sb->ev)
    sb->ev->failed (sb->owner, err);
}

static void
checkpoint_done (struct sandbox *sb, bool ok, capsule_error *err)
{
  pid_t pid;
  if (ok)
    {
      close_pidfd (sb);
      sb->pid = 0;
      sb->state = SB_ASLEEP;
      fprintf (stderr, "capsule-shim: %s: asleep (checkpointed in %lld ms)\n", sb->id,
               (long long)(loop_now_ms () - sb->worker.started_ms));
      if (sb->ev)
        sb->ev->slept (sb->owner, NULL);
      return;
    }
  fprintf (stderr, "capsule-shim: %s: checkpoint failed: %s\n", sb->id, err->msg);
  /* criu that failed before touching the sandbox leaves it running: reconnect to it; else it
     is gone and a fresh interpreter starts on the next call */
  pid = running_pid (sb);
  if (pid > 0)
    {
      /* criu killed while it held the sandbox frozen (the worker's deadline, a crash) leaves
         its cgroup frozen, and the executor would never answer: thaw it (a no-op when criu
         thawed it itself) */
      _cleanup_error_ capsule_error *ignored = NULL;
      container_pause (sb->host->runtime_root, sb->id, false, &ignored);
    }
  if (pid > 0 && watch_pid (sb, pid))
    await_executor (sb);
  else
    {
      close_pidfd (sb);
      sb->pid = 0;
      sb->state = SB_NONE;
    }
  if (sb->ev)
    sb->ev->slept (sb->owner, err);
}

static void
on_worker_done (struct worker *w, bool ok, capsule_error *err)
{
  struct sandbox *sb = w->data;
  switch (sb->state)
    {
    case SB_STARTING:
      start_done (sb, ok, err);
      break;
    case SB_STOPPING:
      stop_done (sb, ok, err);
      break;
    case SB_CHECKPOINTING:
      checkpoint_done (sb, ok, err);
      break;
    case SB_RESTORING:
      restore_done (sb, ok, err);
      break;
    default:
      break;
    }
}

/* ------------------------------------------------------------------ lifecycle */

int
sandbox_start (struct sandbox *sb, capsule_error **err)
{
  _cleanup_free_ char *bundle = xasprintf ("%s/bundle", sb->dir);
  _cleanup_free_ char *cfg_path = xasprintf ("%s/config.json", bundle);
  _cleanup_free_ char *config = NULL, *sock = xasprintf ("%s/executor.sock", sb->run_dir);
  if (sb->state != SB_NONE)
    return capsule_error_make (err, EBUSY, "the sandbox is %s", sandbox_state_name (sb->state));
  close_executor (sb);
  if (mkdir_p (bundle, 0700, err) < 0)
    return -1;
  config = sandbox_config (sb->host, sb);
  if (write_file_atomic (cfg_path, config, strlen (config), 0600, err) < 0)
    return -1;
  unlink (sock);
  return start_worker (sb, SB_STARTING, "start", start_fn, err);
}

void
sandbox_stop (struct sandbox *sb)
{
  if (sb->state == SB_NONE && !worker_running (&sb->worker))
    return;
  sb->exit_pending = false;
  teardown (sb);
}

void
sandbox_dispose (struct sandbox *sb, bool remove_dir)
{
  sb->disposing = true;
  sb->ev = NULL;
  if (!remove_dir)
    {
      free (sb->dir);
      sb->dir = NULL;
    }
  sb->next_disposed = sb->host->disposed;
  sb->host->disposed = sb;
  teardown (sb);
  if (sb->state == SB_NONE) /* torn down already, in the loop */
    {
      unlink_disposed (sb);
      sandbox_free (sb);
    }
}

void
sandbox_detach_free (struct sandbox *sb)
{
  sb->ev = NULL; /* nobody to tell */
  /* a worker of ours finishes its job by itself (a dump or restore left halfway would leave a
     sandbox frozen or running unrecorded) */
  if (worker_running (&sb->worker))
    {
      fprintf (stderr, "capsule-shim: %s: waiting for its %s to finish\n", sb->id, sb->worker.what);
      worker_wait (&sb->worker);
    }
  sandbox_free (sb);
}

void
sandbox_host_drain (struct sandbox_host *h)
{
  while (h->disposed)
    {
      struct sandbox *sb = h->disposed;
      if (!worker_running (&sb->worker))
        {
          unlink_disposed (sb);
          sandbox_free (sb);
          continue;
        }
      worker_wait (&sb->worker); /* stop_done frees it and unlinks it */
    }
}

int
sandbox_checkpoint (struct sandbox *sb, capsule_error **err)
{
  if (sb->state != SB_READY)
    return capsule_error_make (err, EBUSY, "the sandbox is %s", sandbox_state_name (sb->state));
  /* the executor goes back to waiting for a connection: nothing of ours is in the image */
  close_executor (sb);
  if (start_worker (sb, SB_CHECKPOINTING, "checkpoint", checkpoint_fn, err) < 0)
    {
      await_executor (sb); /* reconnect to the untouched sandbox */
      return -1;
    }
  return 0;
}

int
sandbox_restore (struct sandbox *sb, capsule_error **err)
{
  if (sb->state != SB_ASLEEP)
    return capsule_error_make (err, EBUSY, "the sandbox is %s", sandbox_state_name (sb->state));
  return start_worker (sb, SB_RESTORING, "restore", restore_fn, err);
}

void
sandbox_adopt (struct sandbox *sb)
{
  pid_t pid = running_pid (sb);
  if (pid > 0 && watch_pid (sb, pid))
    {
      sb->starts = 1;
      sb->oom_kills = oom_kills (sb);
      await_executor (sb);
      return;
    }
  if (sandbox_image_complete (sb))
    {
      /* asleep (or its checkpoint finished while no shim ran): restorable on the next call */
      _cleanup_error_ capsule_error *ignored = NULL;
      container_delete (sb->host->runtime_root, sb->id, true, &ignored);
      sb->state = SB_ASLEEP;
      return;
    }
  /* gone: the next call starts a fresh interpreter and says so */
  sb->starts = 1;
  teardown (sb);
}

void
sandbox_host_sweep (struct sandbox_host *h, bool (*keep) (void *data, const char *id), void *data)
{
  DIR *d = opendir (h->runtime_root);
  struct dirent *de;
  if (d == NULL)
    return;
  while ((de = readdir (d)))
    {
      struct sandbox *sb;
      if (strncmp (de->d_name, "cntr_", 5) != 0 || !container_id_valid (de->d_name)
          || keep (data, de->d_name))
        continue;
      /* a warm sandbox or a create of a shim that died: nobody's */
      fprintf (stderr, "capsule-shim: %s: a sandbox nobody owns: removed\n", de->d_name);
      sb = sandbox_new (h, de->d_name, "/nonexistent", NULL, "", NULL, NULL);
      sandbox_dispose (sb, false);
    }
  closedir (d);
}

/* ------------------------------------------------------------------ death */

static int
exit_status (struct sandbox *sb)
{
  siginfo_t si = { 0 };
  int status;
  if (sb->pidfd >= 0 && waitid (P_PIDFD, sb->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid > 0)
    return si.si_code == CLD_EXITED ? W_EXITCODE (si.si_status, 0) : si.si_status;
  if (loop_child_reaped (sb->host->loop, sb->pid, &status))
    return status;
  return -1; /* not our child (a re-adopted sandbox) */
}

static void
died (struct sandbox *sb, int status)
{
  sb->exit_oom = oom_kills (sb) > sb->oom_kills;
  sb->exit_status = status;
  sb->exit_pending = true;
  teardown (sb);
}

static void
on_pid_exit (struct loop_io *io, uint32_t revents)
{
  struct sandbox *sb = io->data;
  int status;
  (void)revents;
  if (sb->state == SB_CHECKPOINTING)
    {
      /* criu ended it: the sandbox lives on in the image */
      close_pidfd (sb);
      return;
    }
  status = exit_status (sb);
  close_pidfd (sb);
  if (sb->state == SB_READY || sb->state == SB_STARTING)
    died (sb, status);
}

/* ------------------------------------------------------------------ the executor channel */

/* Connect to the executor's socket without following anything the sandbox planted: the run
   directory is the sandbox's to write, so the socket is opened O_PATH beneath it with no
   symlinks, checked to be a socket, and connected through /proc/self/fd. */
static int
connect_executor (const struct sandbox *sb)
{
  struct open_how how
      = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
          .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  _cleanup_close_ int dirfd = open (sb->run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  _cleanup_close_ int sockfile = -1;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  int fd;
  if (dirfd < 0)
    return -1;
  sockfile = syscall (SYS_openat2, dirfd, "executor.sock", &how, sizeof how);
  if (sockfile < 0 || fstat (sockfile, &st) < 0 || !S_ISSOCK (st.st_mode))
    return -1;
  snprintf (addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d", sockfile);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect (fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

static void
on_connect_timer (struct loop_timer *t)
{
  struct sandbox *sb = t->data;
  int64_t now = loop_now_ms ();
  int fd;
  if (sb->state != SB_STARTING || worker_running (&sb->worker))
    return;
  fd = connect_executor (sb);
  if (fd < 0)
    {
      if (now < sb->ready_deadline_ms)
        {
          loop_timer_in (sb->host->loop, t, CONNECT_RETRY_MS);
          return;
        }
      capsule_error_make (&sb->fail, ETIMEDOUT, "the interpreter did not come up within %lld ms",
                          (long long)sb->host->startup_timeout_ms);
      teardown (sb);
      return;
    }
  sb->fd = fd;
  sb->io = (struct loop_io){ .fn = on_executor_io, .data = sb };
  loop_io_add (sb->host->loop, &sb->io, fd, EPOLLIN);
  sb->state = SB_READY;
  if (sb->ev)
    sb->ev->ready (sb->owner);
}

void
sandbox_reconnect (struct sandbox *sb)
{
  if (sb->state != SB_READY)
    return;
  close_executor (sb);
  await_executor (sb);
}

int
sandbox_send (struct sandbox *sb, const char *line)
{
  if (sb->fd < 0)
    return -1;
  buf_append (&sb->out, line, strlen (line));
  loop_io_set (sb->host->loop, &sb->io, EPOLLIN | EPOLLOUT);
  return 0;
}

static void
flush_out (struct sandbox *sb)
{
  while (buf_size (&sb->out))
    {
      ssize_t n = write (sb->fd, buf_bytes (&sb->out), buf_size (&sb->out));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return;
      buf_consume (&sb->out, n);
    }
  loop_io_set (sb->host->loop, &sb->io, EPOLLIN);
}

/* Take up to LINES_PER_TURN lines: a cell that floods the channel with lines (empty ones,
   garbage) gets a bounded share of the loop, like everyone else.  True when more wait. */
static bool
take_lines (struct sandbox *sb)
{
  for (int n = 0; n < LINES_PER_TURN; n++)
    {
      _cleanup_error_ capsule_error *err = NULL;
      _cleanup_json_ json_value *msg = NULL;
      char *line;
      size_t len;
      enum line_status ls = line_reader_next (&sb->in, &line, &len);
      if (ls == LINE_NONE)
        return false;
      /* every line of the executor's is one object: anything else is not worth a parse */
      if (ls == LINE_TOO_LONG || len == 0 || line[0] != '{')
        continue;
      /* the cell's own output may hold NUL characters: they read as U+FFFD, the rest kept */
      msg = json_parse_n (line, len, JSON_NUL_REPLACE, "executor", &err);
      if (msg && json_is_object (msg) && sb->ev)
        sb->ev->message (sb->owner, msg);
      if (sb->fd < 0 || sb->state != SB_READY)
        return false;
    }
  return true;
}

static void
on_more_lines (struct loop_timer *t)
{
  struct sandbox *sb = t->data;
  if (sb->fd >= 0 && take_lines (sb))
    loop_timer_in (sb->host->loop, t, 0);
}

static void
on_executor_io (struct loop_io *io, uint32_t revents)
{
  struct sandbox *sb = io->data;
  char chunk[65536];
  if (revents & EPOLLOUT)
    flush_out (sb);
  if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || loop_timer_armed (&sb->more_timer))
    return; /* lines read before wait their turn first */
  /* a bounded turn: an executor that floods its socket waits for the others */
  for (int rounds = 0; rounds < 4; rounds++)
    {
      ssize_t n = read (sb->fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          /* the interpreter went away (its pidfd tells why), or a cell closed our connection:
             connect again; an executor that never answers again is stopped at the deadline */
          take_lines (sb);
          sandbox_reconnect (sb);
          return;
        }
      line_reader_feed (&sb->in, chunk, n);
    }
  if (take_lines (sb))
    loop_timer_in (sb->host->loop, &sb->more_timer, 0);
}

void
sandbox_set_nice (struct sandbox *sb, int nice)
{
  /* capsule-init's children are the interpreter (and what it started); nice is per thread on
     Linux, so every thread of each, also the ones made since the last call */
  _cleanup_free_ char *children = NULL;
  char path[64];
  if (sb->pid <= 0)
    return;
  snprintf (path, sizeof path, "/proc/%d/task/%d/children", (int)sb->pid, (int)sb->pid);
  if (read_file_at (AT_FDCWD, path, 1 << 16, &children, NULL, NULL) < 0)
    return;
  for (char *save = NULL, *tok = strtok_r (children, " \n", &save); tok;
       tok = strtok_r (NULL, " \n", &save))
    {
      DIR *d;
      struct dirent *e;
      snprintf (path, sizeof path, "/proc/%s/task", tok);
      d = opendir (path);
      if (d == NULL)
        continue;
      while ((e = readdir (d)))
        if (e->d_name[0] != '.')
          setpriority (PRIO_PROCESS, atoi (e->d_name), nice);
      closedir (d);
    }
}

void
sandbox_signal (struct sandbox *sb, int sig)
{
  /* through the pidfd: the pid of a sandbox that is gone could be reused */
  if (sb->pidfd >= 0)
    syscall (SYS_pidfd_send_signal, sb->pidfd, sig, NULL, 0);
}
