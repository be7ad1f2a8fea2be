/* capsule-shim: the container behind a session.
 *
 * Each session's sandbox is an OCI container made with libcapsule: the image read-only as root,
 * /mnt/data a size-capped tmpfs of the host (so files outlive an interpreter restart), the
 * executor's directory and capsule-init bound read-only, and a per-session run directory where
 * the executor puts its unix socket.  The interpreter is pid 2 under capsule-init. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "container.h"
#include "json.h"
#include "shim-util.h"
#include "shim.h"
#include "spec-default.h"
#include "utils.h"

#define SANDBOX_UID 1000 /* the unprivileged user inside */

static const char *const host_etc_binds[]
    = { "/etc/alternatives", "/etc/ld.so.cache", "/etc/matplotlibrc", "/etc/fonts" };

static int
write_text (const char *dir, const char *name, const char *text, capsule_error **err)
{
  _cleanup_free_ char *p = xasprintf ("%s/%s", dir, name);
  return write_file_atomic (p, text, strlen (text), 0644, err);
}

/* The zero-build image: empty mount points, the merged-/usr links, and a generated /etc.  The
 * host's /usr (and a few non-secret pieces of its /etc) are bound into it read-only. */
static int
prepare_host_image (const char *root, capsule_error **err)
{
  static const char *const dirs[] = { "usr",
                                      "proc",
                                      "dev",
                                      "sys",
                                      "tmp",
                                      "run",
                                      "mnt/data",
                                      ".capsule/executor",
                                      ".capsule/session",
                                      "etc/alternatives",
                                      "etc/fonts",
                                      "root",
                                      "var/tmp" };
  static const char *const links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
  _cleanup_free_ char *etc = xasprintf ("%s/etc", root);
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      _cleanup_free_ char *d = xasprintf ("%s/%s", root, dirs[i]);
      if (mkdir_p (d, 0755, err) < 0)
        return -1;
    }
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    {
      _cleanup_free_ char *host = xasprintf ("/%s", links[i]);
      _cleanup_free_ char *target = xasprintf ("usr/%s", links[i]);
      _cleanup_free_ char *l = xasprintf ("%s/%s", root, links[i]);
      struct stat st;
      if (lstat (host, &st) == 0 && S_ISLNK (st.st_mode) && symlink (target, l) < 0
          && errno != EEXIST)
        return capsule_error_make (err, errno, "image: symlink %s", l);
    }
  for (size_t i = 0; i < ARRAY_SIZE (host_etc_binds); i++)
    {
      _cleanup_free_ char *t = xasprintf ("%s%s", root, host_etc_binds[i]);
      struct stat st;
      if (stat (host_etc_binds[i], &st) == 0 && !S_ISDIR (st.st_mode)
          && write_file_at (AT_FDCWD, t, "", 0, 0644, err) < 0)
        return -1;
    }
  {
    _cleanup_free_ char *init = xasprintf ("%s/.capsule/init", root);
    if (write_file_at (AT_FDCWD, init, "", 0, 0755, err) < 0)
      return -1;
  }
  if (write_text (etc, "passwd",
                  "root:x:0:0:root:/root:/bin/sh\n"
                  "sandbox:x:1000:1000:sandbox:/mnt/data:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                  err)
          < 0
      || write_text (etc, "group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n", err) < 0
      || write_text (etc, "hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n", err) < 0
      || write_text (etc, "resolv.conf", "", err) < 0
      || write_text (etc, "hostname", "sandbox\n", err) < 0
      || write_text (etc, "nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", err) < 0)
    return capsule_error_wrap (err, "image");
  return 0;
}

int
sandbox_prepare_image (struct shim *s, capsule_error **err)
{
  if (s->cfg.image == NULL || strcmp (s->cfg.image, "host") == 0)
    {
      s->image_is_host = true;
      _cleanup_free_ char *images = xasprintf ("%s/images", s->cfg.state_dir);
      s->image_root = xasprintf ("%s/images/host", s->cfg.state_dir);
      if (mkdir_p (images, 0711, err) < 0)
        return -1;
      if (chmod (images, 0711) < 0)
        return capsule_error_make (err, errno, "chmod %s", images);
      return prepare_host_image (s->image_root, err);
    }
  s->image_root = realpath (s->cfg.image, NULL);
  if (s->image_root == NULL)
    return capsule_error_make (err, errno, "--image `%s`", s->cfg.image);
  {
    _cleanup_free_ char *py = xasprintf ("%s/usr/bin/python3", s->image_root);
    if (access (py, X_OK) < 0)
      return capsule_error_make (err, errno, "--image `%s`: no usr/bin/python3 in it",
                                 s->image_root);
  }
  return 0;
}

/* ------------------------------------------------------------------ the OCI config */

static void
w_mount (json_writer *w, const char *dst, const char *type, const char *src,
         const char *const *opts)
{
  json_w_open_object (w);
  json_w_kv_string (w, "destination", dst);
  json_w_kv_string (w, "type", type);
  json_w_kv_string (w, "source", src);
  json_w_key (w, "options");
  json_w_open_array (w);
  for (const char *const *o = opts; *o; o++)
    json_w_string (w, *o);
  json_w_close_array (w);
  json_w_close_object (w);
}

static void
w_bind (json_writer *w, const char *dst, const char *src, bool ro)
{
  static const char *const ro_opts[] = { "rbind", "ro", "nosuid", "nodev", NULL };
  static const char *const rw_opts[] = { "rbind", "nosuid", "nodev", NULL };
  w_mount (w, dst, "bind", src, ro ? ro_opts : rw_opts);
}

static void
w_process (struct shim *s, struct session *se, json_writer *w)
{
  static const char *const passthrough[] = { "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE" };
  json_w_key (w, "process");
  json_w_open_object (w);
  json_w_kv_bool (w, "terminal", false);
  json_w_key (w, "user");
  json_w_open_object (w);
  json_w_kv_int (w, "uid", SANDBOX_UID);
  json_w_kv_int (w, "gid", SANDBOX_UID);
  json_w_close_object (w);
  json_w_key (w, "args");
  json_w_open_array (w);
  json_w_string (w, "/.capsule/init");
  json_w_string (w, "/usr/bin/python3");
  json_w_string (w, "/.capsule/executor/executor.py");
  json_w_string (w, "--socket");
  json_w_string (w, "/.capsule/session/executor.sock");
  json_w_string (w, "--data-dir");
  json_w_string (w, "/mnt/data");
  json_w_close_array (w);
  json_w_key (w, "env");
  json_w_open_array (w);
  json_w_string (w, "PATH=/usr/local/bin:/usr/bin:/bin");
  json_w_string (w, "HOME=/mnt/data");
  json_w_string (w, "LANG=C.UTF-8");
  json_w_string (w, "MPLBACKEND=Agg");
  json_w_string (w, "MPLCONFIGDIR=/tmp/.matplotlib");
  json_w_string (w, "XDG_CACHE_HOME=/tmp/.cache");
  json_w_string (w, "PYTHONDONTWRITEBYTECODE=1");
  for (size_t i = 0; i < ARRAY_SIZE (passthrough); i++)
    if (getenv (passthrough[i]))
      {
        _cleanup_free_ char *kv = xasprintf ("%s=%s", passthrough[i], getenv (passthrough[i]));
        json_w_string (w, kv);
      }
  json_w_close_array (w);
  json_w_kv_string (w, "cwd", "/mnt/data");
  json_w_key (w, "capabilities");
  json_w_open_object (w);
  json_w_string_array (w, "bounding", NULL, 0);
  json_w_string_array (w, "effective", NULL, 0);
  json_w_string_array (w, "permitted", NULL, 0);
  json_w_close_object (w);
  json_w_key (w, "rlimits");
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "RLIMIT_NOFILE");
  json_w_kv_int (w, "soft", se->tier->nofile);
  json_w_kv_int (w, "hard", se->tier->nofile);
  json_w_close_object (w);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "RLIMIT_CORE");
  json_w_kv_int (w, "soft", 0);
  json_w_kv_int (w, "hard", 0);
  json_w_close_object (w);
  json_w_close_array (w);
  json_w_kv_bool (w, "noNewPrivileges", true);
  json_w_kv_int (w, "oomScoreAdj", 500);
  json_w_close_object (w);
  (void)s;
}

static void
w_mounts (struct shim *s, struct session *se, json_writer *w)
{
  static const char *const dev[] = { "nosuid", "strictatime", "mode=755", "size=65536k", NULL };
  static const char *const pts[]
      = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", NULL };
  static const char *const shm[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=64m", NULL };
  static const char *const sys[] = { "nosuid", "noexec", "nodev", "ro", NULL };
  static const char *const none[] = { NULL };
  _cleanup_free_ char *tmp_size = xasprintf ("size=%llu", (unsigned long long)se->tier->tmp);
  const char *tmp[] = { "nosuid", "nodev", "mode=1777", tmp_size, NULL };
  json_w_key (w, "mounts");
  json_w_open_array (w);
  w_mount (w, "/proc", "proc", "proc", none);
  w_mount (w, "/dev", "tmpfs", "tmpfs", dev);
  w_mount (w, "/dev/pts", "devpts", "devpts", pts);
  w_mount (w, "/dev/shm", "tmpfs", "shm", shm);
  w_mount (w, "/sys", "sysfs", "sysfs", sys);
  w_mount (w, "/tmp", "tmpfs", "tmpfs", tmp);
  if (s->image_is_host)
    {
      w_bind (w, "/usr", "/usr", true);
      for (size_t i = 0; i < ARRAY_SIZE (host_etc_binds); i++)
        if (access (host_etc_binds[i], F_OK) == 0)
          w_bind (w, host_etc_binds[i], host_etc_binds[i], true);
    }
  w_bind (w, "/.capsule/executor", s->cfg.executor_dir, true);
  w_bind (w, "/.capsule/init", s->cfg.init_path, true);
  w_bind (w, "/.capsule/session", se->run_dir, false);
  w_bind (w, "/mnt/data", se->data_dir, false);
  json_w_close_array (w);
}

static void
w_idmap (json_writer *w, const char *key, uint32_t base)
{
  json_w_key (w, key);
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_int (w, "containerID", 0);
  json_w_kv_int (w, "hostID", base);
  json_w_kv_int (w, "size", 65536);
  json_w_close_object (w);
  json_w_close_array (w);
}

static void
w_linux (struct shim *s, struct session *se, json_writer *w)
{
  static const char *const ns[] = { "pid", "network", "ipc", "uts", "mount", "user", "cgroup" };
  static const char *const masked[] = { "/proc/acpi",
                                        "/proc/asound",
                                        "/proc/kcore",
                                        "/proc/keys",
                                        "/proc/latency_stats",
                                        "/proc/timer_list",
                                        "/proc/timer_stats",
                                        "/proc/sched_debug",
                                        "/proc/scsi",
                                        "/sys/firmware",
                                        "/sys/devices/virtual/powercap" };
  static const char *const readonly[]
      = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" };
  json_w_key (w, "linux");
  json_w_open_object (w);
  w_idmap (w, "uidMappings", s->cfg.host_uid_base);
  w_idmap (w, "gidMappings", s->cfg.host_uid_base);
  json_w_key (w, "namespaces");
  json_w_open_array (w);
  for (size_t i = 0; i < ARRAY_SIZE (ns); i++)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "type", ns[i]);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_key (w, "resources");
  json_w_open_object (w);
  json_w_key (w, "memory");
  json_w_open_object (w);
  json_w_kv_int (w, "limit", se->tier->memory);
  json_w_kv_int (w, "swap", se->tier->memory);
  json_w_close_object (w);
  json_w_key (w, "pids");
  json_w_open_object (w);
  json_w_kv_int (w, "limit", se->tier->pids);
  json_w_close_object (w);
  json_w_key (w, "cpu");
  json_w_open_object (w);
  json_w_kv_int (w, "shares", se->tier->cpu_shares);
  json_w_close_object (w);
  json_w_close_object (w);
  if (s->cgroup_parent)
    {
      _cleanup_free_ char *path = xasprintf ("%s/capsule-%s", s->cgroup_parent, se->id);
      json_w_kv_string (w, "cgroupsPath", path);
    }
  json_w_string_array (w, "maskedPaths", masked, ARRAY_SIZE (masked));
  json_w_string_array (w, "readonlyPaths", readonly, ARRAY_SIZE (readonly));
  json_w_kv_string (w, "seccomp", "@SECCOMP@");
  json_w_close_object (w);
}

static char *
sandbox_config (struct shim *s, struct session *se, capsule_error **err)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  _cleanup_free_ char *policy = NULL, *profile = NULL;
  if (s->cfg.policy_dir)
    policy = xasprintf ("%s/seccomp/default.json", s->cfg.policy_dir);
  else
    policy = spec_policy_path ("seccomp/default.json");
  if (read_file_at (AT_FDCWD, policy, 1 << 20, &profile, NULL, err) < 0)
    {
      capsule_error_wrap (err, "seccomp profile");
      return NULL;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "ociVersion", "1.2.0");
  w_process (s, se, w);
  json_w_key (w, "root");
  json_w_open_object (w);
  json_w_kv_string (w, "path", s->image_root);
  json_w_kv_bool (w, "readonly", true);
  json_w_close_object (w);
  json_w_kv_string (w, "hostname", "sandbox");
  w_mounts (s, se, w);
  w_linux (s, se, w);
  json_w_key (w, "annotations");
  json_w_open_object (w);
  json_w_kv_string (w, "run.capsule.session", se->id);
  json_w_kv_string (w, "run.capsule.tier", se->tier->name);
  json_w_kv_string (w, "run.capsule.tenant", se->tenant);
  json_w_close_object (w);
  json_w_close_object (w);
  return json_splice (json_writer_text (w, NULL), "@SECCOMP@", profile);
}

/* ------------------------------------------------------------------ lifecycle */

static void
close_executor (struct shim *s, struct session *se)
{
  if (se->exec_fd >= 0)
    {
      shim_unwatch (s, se->exec_fd);
      close (se->exec_fd);
      se->exec_fd = -1;
    }
  buf_release (&se->exec_in.b);
  se->exec_in.skipping = false;
  buf_release (&se->exec_out);
  se->exec_want_out = false;
}

int
sandbox_start (struct shim *s, struct session *se, capsule_error **err)
{
  _cleanup_free_ char *bundle = xasprintf ("%s/bundle", se->dir);
  _cleanup_free_ char *config = NULL, *cfg_path = NULL, *sock = NULL;
  _cleanup_state_ struct container_state *st = NULL;
  struct container_opts o
      = { .root = s->runtime_root, .id = se->id, .bundle = bundle, .null_stdio = true };
  _cleanup_error_ capsule_error *ignored = NULL;

  close_executor (s, se);
  if (mkdir_p (bundle, 0700, err) < 0)
    return -1;
  config = sandbox_config (s, se, err);
  if (config == NULL)
    return -1;
  cfg_path = xasprintf ("%s/config.json", bundle);
  if (write_file_atomic (cfg_path, config, strlen (config), 0600, err) < 0)
    return -1;
  sock = xasprintf ("%s/executor.sock", se->run_dir);
  unlink (sock);
  /* a container of this id left over from a dead interpreter */
  container_delete (s->runtime_root, se->id, true, &ignored);
  if (container_create (&o, err) < 0 || container_start (s->runtime_root, se->id, err) < 0)
    {
      capsule_error_release (&ignored);
      container_delete (s->runtime_root, se->id, true, &ignored);
      return capsule_error_wrap (err, "start the sandbox");
    }
  if (state_load (s->runtime_root, se->id, &st, err) < 0)
    return -1;
  se->pid = st->pid;
  se->oom_kills = 0;
  se->sb = SB_STARTING;
  se->starts++;
  se->ready_deadline_ms = shim_monotonic_ms () + s->cfg.startup_timeout_ms;
  se->next_connect_ms = shim_monotonic_ms () + 5;
  return 0;
}

static void
close_pidfd (struct shim *s, struct session *se)
{
  if (se->pidfd >= 0)
    {
      shim_unwatch (s, se->pidfd);
      close (se->pidfd);
      se->pidfd = -1;
    }
}

void
sandbox_on_pidfd (struct shim *s, struct session *se)
{
  close_pidfd (s, se);
  sandbox_on_exit (s, se, -1);
}

pid_t
sandbox_running (struct shim *s, struct session *se)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  if (state_load (s->runtime_root, se->id, &st, &err) < 0 || !state_process_alive (st))
    return 0;
  return st->pid;
}

void
sandbox_await_executor (struct shim *s, struct session *se)
{
  se->sb = SB_STARTING;
  se->next_connect_ms = shim_monotonic_ms ();
  se->ready_deadline_ms = se->next_connect_ms + s->cfg.startup_timeout_ms;
}

void
sandbox_detach (struct shim *s, struct session *se)
{
  close_executor (s, se);
}

void
sandbox_stop (struct shim *s, struct session *se)
{
  _cleanup_error_ capsule_error *err = NULL;
  sleep_cancel (s, se);
  close_executor (s, se);
  close_pidfd (s, se);
  if (se->sb != SB_NONE || se->pid > 0)
    if (container_delete (s->runtime_root, se->id, true, &err) < 0 && err->status != ENOENT)
      fprintf (stderr, "capsule-shim: %s: stop sandbox: %s\n", se->id, err->msg);
  se->pid = 0;
  se->sb = SB_NONE;
}

/* Connect to the executor's socket without following anything the sandbox planted: the run
   directory is the sandbox's to write, so the socket is opened O_PATH beneath it with no
   symlinks, checked to be a socket, and connected through /proc/self/fd. */
static int
connect_executor (struct session *se)
{
  struct open_how how
      = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
          .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  _cleanup_close_ int dirfd = open (se->run_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
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

int64_t
sandbox_next_deadline (struct session *se)
{
  if (se->sb == SB_STARTING)
    return se->next_connect_ms < se->ready_deadline_ms ? se->next_connect_ms
                                                       : se->ready_deadline_ms;
  return INT64_MAX;
}

void
sandbox_on_timer (struct shim *s, struct session *se, int64_t now)
{
  int fd;
  if (se->sb != SB_STARTING || now < se->next_connect_ms)
    return;
  fd = connect_executor (se);
  if (fd < 0)
    {
      if (now >= se->ready_deadline_ms)
        {
          _cleanup_error_ capsule_error *err = NULL;
          sandbox_stop (s, se);
          capsule_error_make (&err, ETIMEDOUT, "the interpreter did not come up within %lld ms",
                              (long long)s->cfg.startup_timeout_ms);
          session_start_failed (s, se, steal_pointer (&err));
          return;
        }
      se->next_connect_ms = now + 5;
      return;
    }
  se->exec_fd = fd;
  se->exec_in.max = RPC_MAX_MESSAGE;
  se->w = (struct watcher){ W_EXECUTOR, se };
  shim_watch (s, fd, &se->w, false);
  se->sb = SB_READY;
  session_ready (s, se);
}

int
sandbox_send (struct shim *s, struct session *se, const char *line)
{
  if (se->exec_fd < 0)
    return -1;
  buf_append (&se->exec_out, line, strlen (line));
  if (!se->exec_want_out)
    {
      se->exec_want_out = true;
      shim_watch (s, se->exec_fd, &se->w, true);
    }
  return 0;
}

static void
flush_out (struct shim *s, struct session *se)
{
  while (se->exec_out.len)
    {
      ssize_t n = write (se->exec_fd, se->exec_out.data, se->exec_out.len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return;
      buf_consume (&se->exec_out, n);
    }
  se->exec_want_out = false;
  shim_watch (s, se->exec_fd, &se->w, false);
}

void
sandbox_on_io (struct shim *s, struct session *se, uint32_t events)
{
  char chunk[65536];
  if ((events & EPOLLOUT) && se->exec_fd >= 0)
    flush_out (s, se);
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    return;
  /* a bounded turn: an executor that floods its socket waits for the others */
  for (int rounds = 0; rounds < 16; rounds++)
    {
      ssize_t n = read (se->exec_fd, chunk, sizeof chunk);
      char *line;
      size_t len;
      enum line_status ls;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        {
          /* the interpreter went away; its exit (SIGCHLD) tells why */
          close_executor (s, se);
          return;
        }
      line_reader_feed (&se->exec_in, chunk, n);
      while ((ls = line_reader_next (&se->exec_in, &line, &len)) != LINE_NONE)
        {
          _cleanup_error_ capsule_error *err = NULL;
          _cleanup_json_ json_value *msg = NULL;
          if (ls == LINE_TOO_LONG)
            continue;
          msg = json_parse (line, "executor", &err);
          free (line);
          if (msg)
            execution_on_line (s, se, msg);
          if (se->exec_fd < 0)
            return;
        }
    }
}

void
sandbox_signal (struct session *se, int sig)
{
  /* a re-adopted sandbox is not our child: its pid could be reused once it is gone */
  if (se->pidfd >= 0)
    syscall (SYS_pidfd_send_signal, se->pidfd, sig, NULL, 0);
  else if (se->pid > 0)
    kill (se->pid, sig);
}

void
sandbox_on_exit (struct shim *s, struct session *se, int status)
{
  _cleanup_error_ capsule_error *err = NULL;
  struct cgroup_stats stats = { 0 };
  bool oom = false;
  if (se->sb == SB_CHECKPOINTING || se->sb == SB_ASLEEP || se->sb == SB_RESTORING)
    {
      /* criu ended it: the sandbox lives on in the image */
      se->pid = 0;
      return;
    }
  if (container_stats (s->runtime_root, se->id, &stats, &err) == 0)
    oom = stats.oom_kills > se->oom_kills;
  close_executor (s, se);
  sandbox_stop (s, se);
  execution_on_sandbox_death (s, se, oom, status);
}
