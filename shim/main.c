/* capsule-shim: the code-interpreter daemon.
 *
 *   capsule-shim --socket PATH --state-dir DIR [--image DIR|host] [--tiers FILE]
 *                [--tenant-pool SIZE] [--exec-timeout-max MS] [--max-upload SIZE]
 *
 * Runs in the foreground; under systemd it takes its listening socket from LISTEN_FDS and says
 * READY=1 on NOTIFY_SOCKET.  JSON-RPC 2.0, one object per line; see shim/PROTOCOL.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cgroup.h"
#include "checkpoint.h"
#include "paths.h"
#include "shim-util.h"
#include "shim.h"
#include "spec-default.h"
#include "utils.h"

static const char usage[]
    = "usage: capsule-shim --socket PATH --state-dir DIR [--image DIR|host] [--tiers FILE]\n"
      "                    [--tenant-pool SIZE] [--exec-timeout-max MS] [--max-upload SIZE]\n"
      "                    [--executor-dir DIR] [--init PATH] [--policy-dir DIR]\n"
      "                    [--max-message SIZE] [--interrupt-grace MS] [--warm N]\n"
      "                    [--sandbox-cgroup PATH]  (cgroup v2: where sandboxes go)\n"
      "                    [--workspaces auto|disk|tmpfs]\n"
      "       capsule-shim --hold-cgroup          (the holder of capsule-sandboxes.service)\n"
      "                    [--minute SECONDS]   (length of an expiry minute, for tests)\n";

static int fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static int
fail (const char *fmt, ...)
{
  va_list ap;
  fputs ("capsule-shim: ", stderr);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
  return 1;
}

static int
listen_socket (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  const char *fds = getenv ("LISTEN_FDS"), *pid = getenv ("LISTEN_PID");
  int fd;
  if (fds && pid && atoi (pid) == getpid () && atoi (fds) >= 1)
    {
      fcntl (3, F_SETFD, FD_CLOEXEC);
      fcntl (3, F_SETFL, fcntl (3, F_GETFL) | O_NONBLOCK);
      return 3;
    }
  if (path == NULL)
    return errno = EINVAL, -1;
  /* bound, given its mode and listening under a name of its own, then renamed into place: a
     client that sees the path can connect, and never to a socket of the wrong mode */
  if ((size_t)snprintf (addr.sun_path, sizeof addr.sun_path, "%s.%d", path, (int)getpid ())
      >= sizeof addr.sun_path)
    return errno = ENAMETOOLONG, -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  unlink (addr.sun_path);
  if (bind (fd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod (addr.sun_path, 0660) < 0
      || listen (fd, 128) < 0 || rename (addr.sun_path, path) < 0)
    {
      int e = errno;
      unlink (addr.sun_path);
      close (fd);
      return errno = e, -1;
    }
  return fd;
}

static void
notify_ready (void)
{
  const char *path = getenv ("NOTIFY_SOCKET");
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;
  if (path == NULL || strlen (path) >= sizeof addr.sun_path)
    return;
  strcpy (addr.sun_path, path);
  if (addr.sun_path[0] == '@')
    addr.sun_path[0] = '\0';
  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  sendto (fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&addr, sizeof addr);
  close (fd);
}

static int hold_cgroup (void);

static int
parse_args (int argc, char **argv, struct shim_config *c)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 's' },
    { "state-dir", required_argument, NULL, 'd' },
    { "image", required_argument, NULL, 'i' },
    { "tiers", required_argument, NULL, 't' },
    { "tenant-pool", required_argument, NULL, 'p' },
    { "exec-timeout-max", required_argument, NULL, 'x' },
    { "max-upload", required_argument, NULL, 'u' },
    { "executor-dir", required_argument, NULL, 'e' },
    { "init", required_argument, NULL, 'n' },
    { "policy-dir", required_argument, NULL, 'P' },
    { "max-message", required_argument, NULL, 'm' },
    { "minute", required_argument, NULL, 'M' },
    { "interrupt-grace", required_argument, NULL, 'g' },
    { "warm", required_argument, NULL, 'w' },
    { "sandbox-cgroup", required_argument, NULL, 'C' },
    { "hold-cgroup", no_argument, NULL, 'H' },
    { "workspaces", required_argument, NULL, 'W' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t v;
  int o;
  while ((o = getopt_long (argc, argv, "h", opts, NULL)) != -1)
    switch (o)
      {
      case 's':
        c->socket_path = optarg;
        break;
      case 'd':
        c->state_dir = optarg;
        break;
      case 'i':
        c->image = optarg;
        break;
      case 't':
        c->tiers_path = optarg;
        break;
      case 'e':
        c->executor_dir = optarg;
        break;
      case 'n':
        c->init_path = optarg;
        break;
      case 'P':
        c->policy_dir = optarg;
        break;
      case 'p':
        if (parse_size (optarg, &c->tenant_pool) < 0 || c->tenant_pool == 0)
          return fail ("--tenant-pool: \"%s\" is not a size like 64g", optarg);
        break;
      case 'u':
        if (parse_size (optarg, &c->max_upload) < 0 || c->max_upload == 0)
          return fail ("--max-upload: \"%s\" is not a size like 64m", optarg);
        break;
      case 'x':
        if (parse_u64 (optarg, &v) < 0 || v < 1000 || v > 86400000)
          return fail ("--exec-timeout-max: \"%s\" is not milliseconds in [1000, 86400000]",
                       optarg);
        c->exec_timeout_max_ms = v;
        break;
      case 'm':
        if (parse_size (optarg, &c->max_message) < 0 || c->max_message < 4096)
          return fail ("--max-message: \"%s\" is not a size of at least 4k", optarg);
        break;
      case 'M':
        if (parse_u64 (optarg, &v) < 0 || v < 1 || v > 3600)
          return fail ("--minute: \"%s\" is not seconds in [1, 3600]", optarg);
        c->minute_s = v;
        break;
      case 'g':
        if (parse_u64 (optarg, &v) < 0 || v < 100 || v > 600000)
          return fail ("--interrupt-grace: \"%s\" is not milliseconds in [100, 600000]", optarg);
        c->interrupt_grace_ms = v;
        break;
      case 'w':
        if (parse_u64 (optarg, &v) < 0 || v > 64)
          return fail ("--warm: \"%s\" is not a count in [0, 64]", optarg);
        c->warm = v;
        break;
      case 'C':
        c->sandbox_cgroup = optarg;
        break;
      case 'H':
        exit (hold_cgroup ());
      case 'W':
        if (strcmp (optarg, "auto") != 0 && strcmp (optarg, "disk") != 0
            && strcmp (optarg, "tmpfs") != 0)
          return fail ("--workspaces: \"%s\" is not auto, disk or tmpfs", optarg);
        c->workspaces = optarg;
        break;
      case 'h':
        fputs (usage, stdout);
        exit (0);
      default:
        fputs (usage, stderr);
        return 2;
      }
  if (c->state_dir == NULL)
    return fail ("--state-dir is required\n%s", usage);
  if (c->socket_path == NULL && getenv ("LISTEN_FDS") == NULL)
    return fail ("--socket is required (or a socket from systemd)\n%s", usage);
  return 0;
}

/* On cgroup v2 a cgroup that holds processes cannot give controllers to its children (the
   no-internal-process rule).  Without --sandbox-cgroup, the shim's own cgroup is the delegated
   subtree: the shim moves itself into a leaf, LEAF, and puts sandboxes beside it.  (Under
   systemd that cannot survive a restart: the new shim would have to start in a cgroup that gives
   controllers to its children, which fails with 219/CGROUP.  So the units give the sandboxes a
   home of their own, capsule-sandboxes.service, whose holder process sits in its leaf.) */
static int
claim_cgroup_subtree (const char *leaf_name, char **ret_parent, capsule_error **err)
{
  _cleanup_free_ char *self = NULL, *own = NULL, *leaf = NULL, *procs = NULL, *pid = NULL;
  _cleanup_free_ char *suffix = xasprintf ("/%s", leaf_name);
  size_t n;
  if (cgroup_detect_version (CGROUP_ROOT_DEFAULT) != 2)
    return 0;
  if (read_file_at (AT_FDCWD, "/proc/self/cgroup", 1 << 16, &self, NULL, err) < 0)
    return -1;
  if (cgroup_own_path (self, NULL, &own) < 0 || strcmp (own, "/") == 0)
    return 0; /* the root cgroup is exempt from the rule */
  n = strlen (own);
  if (n > strlen (suffix) && strcmp (own + n - strlen (suffix), suffix) == 0)
    own[n - strlen (suffix)] = '\0'; /* a restarted one already sits in the leaf */
  leaf = xasprintf ("%s%s/%s", CGROUP_ROOT_DEFAULT, own, leaf_name);
  procs = xasprintf ("%s/cgroup.procs", leaf);
  pid = xasprintf ("%d", getpid ());
  if ((mkdir (leaf, 0755) < 0 && errno != EEXIST) || write_knob (AT_FDCWD, procs, pid, err) < 0)
    {
      capsule_error_release (err);
      return capsule_error_make (err, errno,
                                 "cgroup v2: cannot move into %s (is the subtree delegated, "
                                 "Delegate=yes?)",
                                 leaf);
    }
  if (ret_parent)
    *ret_parent = steal_pointer (&own);
  return 0;
}

/* --sandbox-cgroup: a cgroup v2 path (from the hierarchy's root) where sandboxes go. */
static int
sandbox_cgroup (const char *path, char **ret, capsule_error **err)
{
  _cleanup_free_ char *dir = NULL;
  struct stat st;
  if (cgroup_detect_version (CGROUP_ROOT_DEFAULT) != 2)
    return 0; /* cgroup v1 has no such rule: sandboxes go below the shim's own cgroups */
  if (path[0] != '/' || strstr (path, "/..") || strstr (path, "//"))
    return capsule_error_make (
        err, EINVAL, "--sandbox-cgroup `%s`: give an absolute cgroup path without '..'", path);
  dir = xasprintf ("%s%s", CGROUP_ROOT_DEFAULT, path);
  if (stat (dir, &st) < 0 || !S_ISDIR (st.st_mode))
    return capsule_error_make (err, errno ? errno : ENOTDIR, "--sandbox-cgroup `%s`", dir);
  *ret = xstrdup (path);
  return 0;
}

/* --hold-cgroup: the holder of capsule-sandboxes.service: it sits in the leaf of the unit's
   cgroup so that the unit's cgroup can give controllers to the sandboxes below it, and waits. */
static int
hold_cgroup (void)
{
  _cleanup_error_ capsule_error *err = NULL;
  sigset_t mask;
  int sig = 0;
  if (claim_cgroup_subtree ("holder", NULL, &err) < 0)
    return fail ("%s", err->msg);
  sigemptyset (&mask);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigprocmask (SIG_BLOCK, &mask, NULL);
  notify_ready ();
  sigwait (&mask, &sig);
  return 0;
}

static int
setup (struct shim *s, capsule_error **err)
{
  _cleanup_free_ char *sessions = xasprintf ("%s/sessions", s->cfg.state_dir);
  const char *tiers = s->cfg.tiers_path;
  _cleanup_free_ char *default_tiers = NULL;
  if (tiers == NULL)
    tiers = default_tiers = s->cfg.policy_dir ? xasprintf ("%s/tiers.json", s->cfg.policy_dir)
                                              : spec_policy_path ("tiers.json");
  if (tiers_load (tiers, &s->tiers, err) < 0)
    return -1;
  /* 0711: the sandboxes' root user (an unprivileged host uid) must pass through to the image
     and to its own session directory to bind them, but may list nothing */
  if (mkdir_p (s->cfg.state_dir, 0711, err) < 0 || mkdir_p (sessions, 0711, err) < 0
      || chmod (s->cfg.state_dir, 0711) < 0 || chmod (sessions, 0711) < 0)
    return capsule_error_make (err, errno, "state directory `%s`", s->cfg.state_dir);
  if (s->cfg.sandbox_cgroup ? sandbox_cgroup (s->cfg.sandbox_cgroup, &s->host.cgroup_parent, err)
                            : claim_cgroup_subtree ("shim", &s->host.cgroup_parent, err))
    return -1;
  if (access (s->cfg.executor_dir, R_OK) < 0)
    return capsule_error_make (err, errno, "executor directory `%s`", s->cfg.executor_dir);
  if (access (s->cfg.init_path, X_OK) < 0)
    return capsule_error_make (err, errno, "capsule-init `%s`", s->cfg.init_path);
  s->host.executor_dir = s->cfg.executor_dir;
  s->host.init_path = s->cfg.init_path;
  s->host.host_uid_base = s->cfg.host_uid_base;
  s->host.startup_timeout_ms = s->cfg.startup_timeout_ms;
  s->host.store_mode = s->cfg.workspaces ? s->cfg.workspaces : "auto";
  return sandbox_host_init (&s->host, s->cfg.state_dir, s->cfg.image, s->cfg.policy_dir, err);
}

/* Where sessions may sleep: CRIU must work here and the image directory be root's alone. */
static char *
checkpoint_unavailable_reason (struct shim *s)
{
  _cleanup_error_ capsule_error *err = NULL;
  char *why = checkpoint_unavailable ();
  if (why == NULL
      && (mkdir_p (s->host.checkpoint_dir, 0700, &err) < 0
          || chmod (s->host.checkpoint_dir, 0700) < 0))
    why = xasprintf ("cannot make `%s`: %s", s->host.checkpoint_dir,
                     err ? err->msg : strerror (errno));
  if (why)
    fprintf (stderr, "capsule-shim: idle sessions stay live: checkpoint unavailable: %s\n", why);
  return why;
}

int
main (int argc, char **argv)
{
  static struct shim s;
  _cleanup_error_ capsule_error *err = NULL;
  char *exe_dir = NULL, *init = NULL;
  int listen_fd, r;

  s.cfg = (struct shim_config){ .exec_timeout_default_ms = 60000,
                                .exec_timeout_max_ms = 600000,
                                .interrupt_grace_ms = 3000,
                                .startup_timeout_ms = 30000,
                                .max_upload = 64u << 20,
                                .max_clients = 256,
                                .max_sessions = 512,
                                .expired_retention_s = 3600,
                                .host_uid_base = 100000,
                                .minute_s = 60,
                                .max_message = RPC_MAX_MESSAGE,
                                .warm = 2 };
  if ((r = parse_args (argc, argv, &s.cfg)))
    return r;
  /* what sandboxes must read (the host image, their workspaces) is made world-readable on
     purpose; what only root may read (records, checkpoints) is made with explicit modes: so the
     shim's umask is its own, whatever its caller's (systemd's UMask=) */
  umask (022);
  /* from a build tree, the tree's own executor and capsule-init; installed, meson's layout */
  if (s.cfg.executor_dir == NULL)
    s.cfg.executor_dir = exe_dir = capsule_data_path ("executor", "shim/executor");
  if (s.cfg.init_path == NULL)
    s.cfg.init_path = init = capsule_libexec_path ("capsule-init", "runtime/capsule-init");
  if (s.cfg.exec_timeout_default_ms > s.cfg.exec_timeout_max_ms)
    s.cfg.exec_timeout_default_ms = s.cfg.exec_timeout_max_ms;
  if (loop_init (&s.loop, &err) < 0)
    return fail ("%s", err->msg);
  s.host.loop = &s.loop;
  if (setup (&s, &err) < 0)
    return fail ("%s", err->msg);
  signal (SIGPIPE, SIG_IGN);
  prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  listen_fd = listen_socket (s.cfg.socket_path);
  if (listen_fd < 0)
    return fail ("listen on %s: %s", s.cfg.socket_path ? s.cfg.socket_path : "LISTEN_FDS",
                 strerror (errno));
  if (server_init (&s.server, &s.loop, listen_fd, s.cfg.max_clients, s.cfg.max_message,
                   shim_methods, shim_n_methods, &s)
      < 0)
    return fail ("watch %s: %s", s.cfg.socket_path ? s.cfg.socket_path : "LISTEN_FDS",
                 strerror (errno));
  sessions_init (&s.sessions, &s.loop, &s.host, &s.tiers,
                 &(struct session_config){ .state_dir = s.cfg.state_dir,
                                           .minute_s = s.cfg.minute_s,
                                           .expired_retention_s = s.cfg.expired_retention_s,
                                           .exec_timeout_default_ms = s.cfg.exec_timeout_default_ms,
                                           .exec_timeout_max_ms = s.cfg.exec_timeout_max_ms,
                                           .interrupt_grace_ms = s.cfg.interrupt_grace_ms,
                                           .max_sessions = s.cfg.max_sessions,
                                           .warm = s.cfg.warm,
                                           .host_uid_base = s.cfg.host_uid_base });
  if (s.cfg.tenant_pool)
    s.sessions.pools.default_total = s.cfg.tenant_pool;
  s.sessions.checkpoint_unavailable = checkpoint_unavailable_reason (&s);
  s.started_ms = loop_now_ms ();
  fprintf (stderr, "capsule-shim: listening on %s (image %s, state %s)\n",
           s.cfg.socket_path ? s.cfg.socket_path : "the socket from systemd",
           s.host.image_is_host ? "host" : s.host.image_root, s.cfg.state_dir);
  r = sessions_load (&s.sessions);
  if (r > 0)
    fprintf (stderr, "capsule-shim: re-adopted %d session%s\n", r, r == 1 ? "" : "s");
  sessions_refill_warm (&s.sessions);
  notify_ready ();
  r = loop_run (&s.loop);
  /* On SIGTERM (a restart, an upgrade) the sessions stay: their sandboxes run on, their records
     and workspaces stay on disk, and the next shim re-adopts them.  Warm sandboxes are
     nobody's: they go. */
  server_release (&s.server);
  sessions_shutdown (&s.sessions);
  if (s.cfg.socket_path && !getenv ("LISTEN_FDS"))
    unlink (s.cfg.socket_path);
  close (listen_fd);
  free (s.sessions.checkpoint_unavailable);
  pools_release (&s.sessions.pools);
  tiers_release (&s.tiers);
  sandbox_host_release (&s.host);
  loop_release (&s.loop);
  free (exe_dir);
  free (init);
  return r < 0 ? 1 : 0;
}
