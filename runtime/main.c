/* capsule: the runc-compatible command line.
 *
 *   capsule [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ID
 *
 * Only this file prints errors: one line, "capsule: <cause>", also written to --log as JSON
 * ({"level":"error","msg":...,"time":...}) where engines such as containerd look for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "checkpoint.h"
#include "container.h"
#include "oci-features.h"
#include "json.h"
#include "spec-default.h"
#include "paths.h"
#include "utils.h"

#ifndef CAPSULE_VERSION
#define CAPSULE_VERSION "0.1.0"
#endif

struct globals
{
  const char *root;
  const char *log;
  bool log_json;
  bool systemd_cgroup;
};

static struct globals g = { .root = CAPSULE_ROOT_DEFAULT };

static void
log_error (const char *msg)
{
  fprintf (stderr, "capsule: %s\n", msg);
  if (g.log)
    {
      _cleanup_free_ char *now = rfc3339_now ();
      _cleanup_close_ int fd = open (g.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0)
        return;
      if (g.log_json)
        {
          _cleanup_json_writer_ json_writer *w = json_writer_new (false);
          json_w_open_object (w);
          json_w_kv_string (w, "level", "error");
          json_w_kv_string (w, "msg", msg);
          json_w_kv_string (w, "time", now);
          json_w_close_object (w);
          dprintf (fd, "%s\n", json_writer_text (w, NULL));
        }
      else
        dprintf (fd, "time=\"%s\" level=error msg=\"%s\"\n", now, msg);
    }
}

/* main's whole argv, for create and run to re-execute from a sealed copy (container.h) */
static char **reexec_argv;

static int
fail (capsule_error *err)
{
  log_error (err && err->msg ? err->msg : "unknown error");
  capsule_error_free (err);
  return 1;
}

static int usage_error (const char *cmd, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
static int
usage_error (const char *cmd, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL, *line = NULL;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  line = xasprintf ("%s%s%s (see `capsule %s --help`)", cmd ? cmd : "", cmd ? ": " : "",
                    msg ? msg : "bad usage", cmd ? cmd : "");
  log_error (line);
  return 2;
}

static const char *const main_help
    = "Usage: capsule [--root DIR] [--log FILE] [--log-format text|json] COMMAND [ARGS]\n"
      "\n"
      "An OCI runtime for sandboxes: runs a container from an OCI bundle (config.json + rootfs)\n"
      "in its own user, mount, pid, network (lo only), ipc, uts and cgroup namespaces.\n"
      "\n"
      "Commands:\n"
      "  create   --bundle DIR [--pid-file F] [--console-socket S] ID   set up, wait for start\n"
      "  start    ID                      run the process of a created container\n"
      "  run      [--bundle DIR] [--detach] [--keep] [--pid-file F] ID  create, start, wait\n"
      "  exec     [--process F | ARGS...] [--cwd D] [--env K=V] [--user UID[:GID]] [--detach]\n"
      "           [--pid-file F] ID       run another process in a running container\n"
      "  state    ID                      the OCI state JSON\n"
      "  kill     [--all] ID [SIGNAL]     send a signal (name or number; default TERM)\n"
      "  delete   [--force] ID            remove a container and everything it made\n"
      "  list     [-q] [--format table|json]\n"
      "  ps       [--format table|json] ID  processes of a container\n"
      "  pause    ID / resume ID          freeze and thaw\n"
      "  update   [--memory N] [--memory-swap N] [--pids-limit N] [--cpu-shares N]\n"
      "           [--cpu-quota N] [--cpu-period N] [--cpuset-cpus L] [--cpuset-mems L]\n"
      "           [--blkio-weight N]\n"
      "           [-r resources.json] ID\n"
      "  events   [--stats] [--interval S] ID  memory, pids and cpu figures as JSON lines\n"
      "  spec     [--bundle DIR] [--rootfs PATH] [--args 'CMD ...']  write a secure config.json\n"
      "  checkpoint [--image-path DIR] [--work-path DIR] [--leave-running] [--tcp-established]\n"
      "           [--ext-unix-sk] [--shell-job] [--file-locks] ID   dump to disk with CRIU\n"
      "  restore  [--bundle DIR] [--image-path DIR] [--work-path DIR] [--detach] [--pid-file F] "
      "ID\n"
      "           bring a checkpointed container back\n"
      "  features                         what this runtime supports, as OCI features JSON\n"
      "\n"
      "Global options: --root DIR (default " CAPSULE_ROOT_DEFAULT "), --log FILE, --log-format\n"
      "text|json, --systemd-cgroup, --debug, --version, --help.\n";

/* getopt_long with "+" so options after the id are left alone, and opterr off: we report. */
#define OPT_FLAGS "+"

static int
need_id (const char *cmd, int argc, char **argv, const char **ret)
{
  if (optind >= argc)
    return usage_error (cmd, "missing container id");
  *ret = argv[optind++];
  return 0;
}

static bool
want_help (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
      return true;
  return false;
}

static int
cmd_create_or_run (int argc, char **argv, bool run)
{
  static const struct option opts[] = {
    { "bundle", required_argument, NULL, 'b' },
    { "pid-file", required_argument, NULL, 'p' },
    { "console-socket", required_argument, NULL, 'c' },
    { "preserve-fds", required_argument, NULL, 'f' },
    { "detach", no_argument, NULL, 'd' },
    { "keep", no_argument, NULL, 'k' },
    { "no-pivot", no_argument, NULL, 'n' },
    { "no-new-keyring", no_argument, NULL, 'K' },
    { NULL, 0, NULL, 0 },
  };
  const char *cmd = run ? "run" : "create";
  struct container_opts o = { .root = g.root, .bundle = ".", .reexec_argv = reexec_argv };
  bool detach = false, keep = false;
  capsule_error *err = NULL;
  uint64_t n;
  int c, status = 0;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "b:dk", opts, NULL)) != -1)
    switch (c)
      {
      case 'b':
        o.bundle = optarg;
        break;
      case 'p':
        o.pid_file = optarg;
        break;
      case 'c':
        o.console_socket = optarg;
        break;
      case 'f':
        if (parse_u64 (optarg, &n) < 0 || n > 1024)
          return usage_error (cmd, "--preserve-fds: \"%s\" is not a count", optarg);
        o.preserve_fds = n;
        break;
      case 'd':
        detach = true;
        break;
      case 'k':
        keep = true;
        break;
      case 'n':
      case 'K':
        break;
      default:
        return usage_error (cmd, "unknown option %s", argv[optind - 1]);
      }
  if (need_id (cmd, argc, argv, &o.id))
    return 2;
  if (optind < argc)
    return usage_error (cmd, "unexpected argument \"%s\"", argv[optind]);
  if (!run)
    return container_create (&o, &err) < 0 ? fail (err) : 0;
  if (container_run (&o, detach, keep, &status, &err) < 0)
    return fail (err);
  return status;
}

static int
cmd_simple (int argc, char **argv, const char *cmd,
            int (*fn) (const char *, const char *, capsule_error **))
{
  capsule_error *err = NULL;
  const char *id = NULL;
  optind = 1;
  if (need_id (cmd, argc, argv, &id))
    return 2;
  if (optind < argc)
    return usage_error (cmd, "unexpected argument \"%s\"", argv[optind]);
  return fn (g.root, id, &err) < 0 ? fail (err) : 0;
}

static int
do_pause (const char *root, const char *id, capsule_error **err)
{
  return container_pause (root, id, true, err);
}
static int
do_resume (const char *root, const char *id, capsule_error **err)
{
  return container_pause (root, id, false, err);
}

static int
cmd_state (int argc, char **argv)
{
  capsule_error *err = NULL;
  _cleanup_free_ char *json = NULL;
  const char *id = NULL;
  optind = 1;
  if (need_id ("state", argc, argv, &id))
    return 2;
  if (container_state (g.root, id, &json, &err) < 0)
    return fail (err);
  printf ("%s\n", json);
  return 0;
}

static int
cmd_kill (int argc, char **argv)
{
  static const struct option opts[] = { { "all", no_argument, NULL, 'a' }, { NULL, 0, NULL, 0 } };
  capsule_error *err = NULL;
  bool all = false;
  const char *id = NULL;
  int c, sig = SIGTERM;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "a", opts, NULL)) != -1)
    if (c == 'a')
      all = true;
    else
      return usage_error ("kill", "unknown option %s", argv[optind - 1]);
  if (need_id ("kill", argc, argv, &id))
    return 2;
  if (optind < argc)
    {
      sig = signal_parse (argv[optind]);
      if (sig < 0)
        return usage_error ("kill", "unknown signal \"%s\"", argv[optind]);
    }
  return container_kill (g.root, id, sig, all, &err) < 0 ? fail (err) : 0;
}

static int
cmd_delete (int argc, char **argv)
{
  static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, { NULL, 0, NULL, 0 } };
  capsule_error *err = NULL;
  bool force = false;
  const char *id = NULL;
  int c;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "f", opts, NULL)) != -1)
    if (c == 'f')
      force = true;
    else
      return usage_error ("delete", "unknown option %s", argv[optind - 1]);
  if (need_id ("delete", argc, argv, &id))
    return 2;
  return container_delete (g.root, id, force, &err) < 0 ? fail (err) : 0;
}

static int
cmd_list (int argc, char **argv)
{
  static const struct option opts[] = { { "quiet", no_argument, NULL, 'q' },
                                        { "format", required_argument, NULL, 'f' },
                                        { NULL, 0, NULL, 0 } };
  _cleanup_strv_ char **ids = NULL;
  _cleanup_json_writer_ json_writer *w = NULL;
  capsule_error *err = NULL;
  bool quiet = false, json = false;
  int c;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "qf:", opts, NULL)) != -1)
    if (c == 'q')
      quiet = true;
    else if (c == 'f' && (strcmp (optarg, "json") == 0 || strcmp (optarg, "table") == 0))
      json = strcmp (optarg, "json") == 0;
    else
      return usage_error ("list", "bad option %s", argv[optind - 1]);
  if (state_list (g.root, &ids, &err) < 0)
    return fail (err);
  if (json)
    {
      w = json_writer_new (false);
      json_w_open_array (w);
    }
  else if (!quiet)
    printf ("%-24s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
  for (char **id = ids; *id; id++)
    {
      _cleanup_state_ struct container_state *st = NULL;
      capsule_error *tmp = NULL;
      enum container_status s;
      if (state_load (g.root, *id, &st, &tmp) < 0)
        {
          capsule_error_free (tmp);
          if (quiet)
            printf ("%s\n", *id);
          continue;
        }
      s = state_status (g.root, st);
      if (quiet)
        printf ("%s\n", *id);
      else if (json)
        {
          json_w_open_object (w);
          json_w_kv_string (w, "id", st->id);
          json_w_kv_int (w, "pid", s == STATUS_STOPPED ? 0 : st->pid);
          json_w_kv_string (w, "status", container_status_name (s));
          json_w_kv_string (w, "bundle", st->bundle);
          json_w_kv_string (w, "rootfs", st->rootfs);
          json_w_kv_string (w, "created", st->created);
          json_w_kv_string (w, "owner", "root");
          json_w_close_object (w);
        }
      else
        printf ("%-24s %-8d %-10s %-40s %s\n", st->id, s == STATUS_STOPPED ? 0 : st->pid,
                container_status_name (s), st->bundle ? st->bundle : "", st->created);
    }
  if (json)
    {
      json_w_close_array (w);
      printf ("%s\n", json_writer_text (w, NULL));
    }
  return 0;
}

static int
cmd_ps (int argc, char **argv)
{
  static const struct option opts[]
      = { { "format", required_argument, NULL, 'f' }, { NULL, 0, NULL, 0 } };
  _cleanup_free_ pid_t *pids = NULL;
  capsule_error *err = NULL;
  const char *id = NULL;
  bool json = false;
  size_t n = 0;
  int c;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "f:", opts, NULL)) != -1)
    if (c == 'f')
      json = strcmp (optarg, "json") == 0;
    else
      return usage_error ("ps", "unknown option %s", argv[optind - 1]);
  if (need_id ("ps", argc, argv, &id))
    return 2;
  if (container_pids (g.root, id, &pids, &n, &err) < 0)
    return fail (err);
  if (json)
    {
      printf ("[");
      for (size_t i = 0; i < n; i++)
        printf ("%s%d", i ? "," : "", pids[i]);
      printf ("]\n");
      return 0;
    }
  printf ("PID\tCMD\n");
  for (size_t i = 0; i < n; i++)
    {
      _cleanup_free_ char *path = xasprintf ("/proc/%d/comm", pids[i]), *comm = NULL;
      if (read_file_at (AT_FDCWD, path, 256, &comm, NULL, NULL) == 0)
        comm[strcspn (comm, "\n")] = '\0';
      printf ("%d\t%s\n", pids[i], comm ? comm : "?");
    }
  return 0;
}

/* One `events` line: {"type": "stats", "id", "data": {memory, pids, cpu}} as runc prints it. */
static void
print_stats (const char *id, const struct cgroup_stats *st)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "stats");
  json_w_kv_string (w, "id", id);
  json_w_key (w, "data");
  json_w_open_object (w);
  json_w_key (w, "memory");
  json_w_open_object (w);
  json_w_key (w, "usage");
  json_w_open_object (w);
  json_w_kv_int (w, "usage", st->memory_current);
  json_w_kv_int (w, "max", st->memory_peak);
  json_w_kv_int (w, "limit", st->memory_limit == UINT64_MAX ? -1 : (long long)st->memory_limit);
  json_w_close_object (w);
  json_w_kv_int (w, "oom_kill", st->oom_kills);
  json_w_close_object (w);
  json_w_key (w, "pids");
  json_w_open_object (w);
  json_w_kv_int (w, "current", st->pids_current);
  json_w_kv_int (w, "limit", st->pids_limit == UINT64_MAX ? -1 : (long long)st->pids_limit);
  json_w_close_object (w);
  json_w_key (w, "cpu");
  json_w_open_object (w);
  json_w_key (w, "usage");
  json_w_open_object (w);
  json_w_kv_int (w, "total", st->cpu_usage_usec * 1000);
  json_w_close_object (w);
  json_w_close_object (w);
  json_w_close_object (w);
  json_w_close_object (w);
  printf ("%s\n", json_writer_text (w, NULL));
  fflush (stdout);
}

/* events --stats: one line.  events: a line every --interval (default 5s) and an "oom" line when
   the kernel kills for memory, until the container stops. */
static int
cmd_events (int argc, char **argv)
{
  static const struct option opts[] = { { "stats", no_argument, NULL, 's' },
                                        { "interval", required_argument, NULL, 'i' },
                                        { NULL, 0, NULL, 0 } };
  struct cgroup_stats st;
  capsule_error *err = NULL;
  const char *id = NULL;
  bool once = false;
  uint64_t interval = 5, ooms = 0;
  int c;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "", opts, NULL)) != -1)
    if (c == 's')
      once = true;
    else if (c == 'i')
      {
        unsigned long long v;
        char unit = 's';
        if (sscanf (optarg, "%llu%c", &v, &unit) < 1 || unit != 's')
          return usage_error ("events", "--interval: \"%s\" is not seconds (5 or 5s)", optarg);
        interval = v;
        if (interval == 0)
          interval = 1;
      }
    else
      return usage_error ("events", "unknown option %s", argv[optind - 1]);
  if (need_id ("events", argc, argv, &id))
    return 2;
  for (bool first = true;; first = false)
    {
      _cleanup_free_ char *state = NULL;
      if (container_stats (g.root, id, &st, &err) < 0)
        return first ? fail (err) : (capsule_error_free (err), 0);
      if (st.oom_kills > ooms && !first)
        printf ("{\"type\":\"oom\",\"id\":\"%s\"}\n", id);
      ooms = st.oom_kills;
      print_stats (id, &st);
      if (once)
        return 0;
      if (container_state (g.root, id, &state, &err) < 0)
        return (capsule_error_free (err), 0);
      if (strstr (state, "\"status\": \"stopped\""))
        return 0;
      sleep (interval);
    }
}

static int
cmd_exec (int argc, char **argv)
{
  static const struct option opts[] = {
    { "process", required_argument, NULL, 'p' },
    { "cwd", required_argument, NULL, 'w' },
    { "env", required_argument, NULL, 'e' },
    { "user", required_argument, NULL, 'u' },
    { "detach", no_argument, NULL, 'd' },
    { "pid-file", required_argument, NULL, 'P' },
    { "tty", no_argument, NULL, 't' },
    { "no-new-privs", no_argument, NULL, 'N' },
    { "preserve-fds", required_argument, NULL, 'f' },
    { "console-socket", required_argument, NULL, 'c' },
    { "cap", required_argument, NULL, 'C' },
    { NULL, 0, NULL, 0 },
  };
  struct exec_opts e = { 0 };
  _cleanup_free_ char **env = xmalloc0 ((argc + 1) * sizeof (char *));
  size_t n_env = 0;
  capsule_error *err = NULL;
  const char *id = NULL;
  uint64_t n;
  int c, status = 0;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "p:w:e:u:dtf:", opts, NULL)) != -1)
    switch (c)
      {
      case 'p':
        e.process_file = optarg;
        break;
      case 'w':
        e.cwd = optarg;
        break;
      case 'e':
        if (strchr (optarg, '=') == NULL)
          return usage_error ("exec", "--env \"%s\" is not NAME=VALUE", optarg);
        env[n_env++] = optarg;
        break;
      case 'u':
        e.user = optarg;
        break;
      case 'd':
        e.detach = true;
        break;
      case 'P':
        e.pid_file = optarg;
        break;
      case 'N':
        e.no_new_privs = true;
        break;
      case 't':
        e.tty = true;
        break;
      case 'c':
        e.console_socket = optarg;
        break;
      case 'C':
        return usage_error ("exec", "--cap is not supported yet");
      case 'f':
        if (parse_u64 (optarg, &n) < 0 || n > 1024)
          return usage_error ("exec", "--preserve-fds: \"%s\" is not a count", optarg);
        e.preserve_fds = n;
        break;
      default:
        return usage_error ("exec", "unknown option %s", argv[optind - 1]);
      }
  if (need_id ("exec", argc, argv, &id))
    return 2;
  e.env = env;
  e.args = argv + optind;
  if (e.process_file && *e.args)
    return usage_error ("exec", "give either --process or a command, not both");
  if (container_exec (g.root, id, &e, &status, &err) < 0)
    return fail (err);
  return status;
}

static int
size_arg (const char *opt, const char *v, int64_t *ret)
{
  uint64_t u;
  if (strcmp (v, "-1") == 0)
    {
      *ret = -1;
      return 0;
    }
  if (parse_size (v, &u) < 0 || u > INT64_MAX)
    return usage_error ("update", "--%s: \"%s\" is not a size or -1", opt, v);
  *ret = u;
  return 0;
}

static int
cmd_update (int argc, char **argv)
{
  static const struct option opts[] = {
    { "memory", required_argument, NULL, 'm' },
    { "memory-swap", required_argument, NULL, 's' },
    { "memory-reservation", required_argument, NULL, 'R' },
    { "pids-limit", required_argument, NULL, 'p' },
    { "cpu-shares", required_argument, NULL, 'c' },
    { "cpu-quota", required_argument, NULL, 'q' },
    { "cpu-period", required_argument, NULL, 'P' },
    { "resources", required_argument, NULL, 'r' },
    { "cpuset-cpus", required_argument, NULL, 'C' },
    { "cpuset-mems", required_argument, NULL, 'M' },
    { "blkio-weight", required_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
  };
  struct spec_resources flags = { 0 };
  struct spec_resources *from_file = NULL;
  capsule_error *err = NULL;
  const char *id = NULL, *file = NULL;
  int64_t v = 0;
  int c, r;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "r:", opts, NULL)) != -1)
    {
      if (c == 'r')
        {
          file = optarg;
          continue;
        }
      if (c == 'C' || c == 'M')
        {
          *(c == 'C' ? &flags.cpus : &flags.mems) = optarg;
          continue;
        }
      if (c == '?' || c == ':')
        return usage_error ("update", "unknown option %s", argv[optind - 1]);
      for (const struct option *o = opts; o->name; o++)
        if (o->val == c && size_arg (o->name, optarg, &v))
          return 2;
      switch (c)
        {
        case 'm':
          flags.has_memory_limit = true, flags.memory_limit = v;
          break;
        case 's':
          flags.has_memory_swap = true, flags.memory_swap = v;
          break;
        case 'R':
          flags.has_memory_reservation = true, flags.memory_reservation = v;
          break;
        case 'p':
          flags.has_pids_limit = true, flags.pids_limit = v;
          break;
        case 'c':
          flags.cpu_shares = v;
          break;
        case 'q':
          flags.cpu_quota = v;
          break;
        case 'P':
          flags.cpu_period = v;
          break;
        case 'w':
          if (v < 10 || v > 1000)
            return usage_error ("update", "--blkio-weight: %lld is out of range [10, 1000]",
                                (long long)v);
          flags.blkio_weight = v;
          break;
        }
    }
  if (need_id ("update", argc, argv, &id))
    return 2;
  if (file)
    {
      _cleanup_free_ char *text = NULL;
      if (json_read_at (AT_FDCWD, strcmp (file, "-") == 0 ? "/dev/stdin" : file, 1 << 20, file,
                        &text, NULL, &err)
          < 0)
        return fail (err);
      from_file = spec_resources_parse (text, file, &err);
      if (from_file == NULL)
        return fail (err);
    }
  r = container_update (g.root, id, from_file ? from_file : &flags, &err);
  spec_resources_free (from_file);
  return r < 0 ? fail (err) : 0;
}

static int
cmd_spec (int argc, char **argv)
{
  static const struct option opts[] = { { "bundle", required_argument, NULL, 'b' },
                                        { "rootfs", required_argument, NULL, 'r' },
                                        { "args", required_argument, NULL, 'a' },
                                        { "rootless", no_argument, NULL, 'R' },
                                        { NULL, 0, NULL, 0 } };
  const char *bundle = ".", *rootfs = "rootfs", *args = "sh";
  _cleanup_free_ char *text = NULL, *path = NULL;
  capsule_error *err = NULL;
  int c, fd;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "b:", opts, NULL)) != -1)
    switch (c)
      {
      case 'b':
        bundle = optarg;
        break;
      case 'r':
        rootfs = optarg;
        break;
      case 'a':
        args = optarg;
        break;
      case 'R':
        break;
      default:
        return usage_error ("spec", "unknown option %s", argv[optind - 1]);
      }
  if (spec_default_text (rootfs, args, &text, &err) < 0)
    return fail (err);
  path = xasprintf ("%s/config.json", bundle);
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    {
      capsule_error_make (&err, errno, "spec: create `%s`%s", path,
                          errno == EEXIST ? " (it exists; remove it first)" : "");
      return fail (err);
    }
  if (write_all (fd, text, strlen (text)) < 0)
    {
      capsule_error_make (&err, errno, "spec: write `%s`", path);
      close (fd);
      return fail (err);
    }
  close (fd);
  return 0;
}

/* checkpoint and restore share runc's flags; criu options that make no sense for capsule's
   containers (page servers, lazy pages, pre-dumps) are refused by name. */
static int
cmd_checkpoint_or_restore (int argc, char **argv, bool restore)
{
  static const struct option opts[] = {
    { "image-path", required_argument, NULL, 'i' },
    { "work-path", required_argument, NULL, 'w' },
    { "leave-running", no_argument, NULL, 'l' },
    { "tcp-established", no_argument, NULL, 't' },
    { "ext-unix-sk", no_argument, NULL, 'x' },
    { "shell-job", no_argument, NULL, 's' },
    { "file-locks", no_argument, NULL, 'F' },
    { "bundle", required_argument, NULL, 'b' },
    { "detach", no_argument, NULL, 'd' },
    { "pid-file", required_argument, NULL, 'p' },
    { NULL, 0, NULL, 0 },
  };
  const char *cmd = restore ? "restore" : "checkpoint";
  struct checkpoint_opts co = { 0 };
  struct container_opts o = { .root = g.root, .bundle = "." };
  capsule_error *err = NULL;
  int c, status = 0;
  while ((c = getopt_long (argc, argv, OPT_FLAGS "b:d", opts, NULL)) != -1)
    switch (c)
      {
      case 'i':
        co.image_path = optarg;
        break;
      case 'w':
        co.work_path = optarg;
        break;
      case 'l':
        if (restore)
          return usage_error (cmd, "--leave-running is a checkpoint option");
        co.leave_running = true;
        break;
      case 't':
        co.tcp_established = true;
        break;
      case 'x':
        co.ext_unix_sk = true;
        break;
      case 's':
        co.shell_job = true;
        break;
      case 'F':
        co.file_locks = true;
        break;
      case 'b':
      case 'd':
      case 'p':
        if (!restore)
          return usage_error (cmd, "%s is a restore option", argv[optind - 1]);
        if (c == 'b')
          o.bundle = optarg;
        else if (c == 'p')
          o.pid_file = optarg;
        else
          co.detach = true;
        break;
      default:
        return usage_error (cmd, "unknown option %s", argv[optind - 1]);
      }
  if (need_id (cmd, argc, argv, &o.id))
    return 2;
  if (optind < argc)
    return usage_error (cmd, "unexpected argument \"%s\"", argv[optind]);
  if (!restore)
    return container_checkpoint (g.root, o.id, &co, &err) < 0 ? fail (err) : 0;
  if (container_restore (&o, &co, &status, &err) < 0)
    return fail (err);
  return status;
}

static int
c_checkpoint (int a, char **v)
{
  return cmd_checkpoint_or_restore (a, v, false);
}
static int
c_restore (int a, char **v)
{
  return cmd_checkpoint_or_restore (a, v, true);
}

static int
cmd_features (void)
{
  _cleanup_free_ char *text = features_json ();
  printf ("%s\n", text);
  return 0;
}

struct command
{
  const char *name;
  int (*fn) (int argc, char **argv);
};

static int
c_create (int a, char **v)
{
  return cmd_create_or_run (a, v, false);
}
static int
c_run (int a, char **v)
{
  return cmd_create_or_run (a, v, true);
}
static int
c_start (int a, char **v)
{
  return cmd_simple (a, v, "start", container_start);
}
static int
c_pause (int a, char **v)
{
  return cmd_simple (a, v, "pause", do_pause);
}
static int
c_resume (int a, char **v)
{
  return cmd_simple (a, v, "resume", do_resume);
}
static int
c_features (int a, char **v)
{
  (void)a;
  (void)v;
  return cmd_features ();
}

static const struct command commands[] = {
  { "create", c_create },   { "start", c_start },       { "run", c_run },
  { "exec", cmd_exec },     { "state", cmd_state },     { "kill", cmd_kill },
  { "delete", cmd_delete }, { "list", cmd_list },       { "ps", cmd_ps },
  { "pause", c_pause },     { "resume", c_resume },     { "events", cmd_events },
  { "spec", cmd_spec },     { "update", cmd_update },   { "checkpoint", c_checkpoint },
  { "restore", c_restore }, { "features", c_features },
};

static int
parse_globals (int argc, char **argv)
{
  static const struct option opts[] = {
    { "root", required_argument, NULL, 'r' },
    { "log", required_argument, NULL, 'l' },
    { "log-format", required_argument, NULL, 'f' },
    { "systemd-cgroup", no_argument, NULL, 's' },
    { "debug", no_argument, NULL, 'd' },
    { "version", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "rootless", required_argument, NULL, 'R' },
    { "criu", required_argument, NULL, 'c' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long (argc, argv, "+vh", opts, NULL)) != -1)
    switch (c)
      {
      case 'r':
        g.root = optarg;
        break;
      case 'l':
        g.log = optarg;
        break;
      case 'f':
        if (strcmp (optarg, "json") != 0 && strcmp (optarg, "text") != 0)
          return usage_error (NULL, "--log-format must be text or json, not \"%s\"", optarg);
        g.log_json = strcmp (optarg, "json") == 0;
        break;
      case 's':
        g.systemd_cgroup = true;
        break;
      case 'd':
      case 'R':
      case 'c':
        break;
      case 'v':
        printf ("capsule version %s\nspec: %s\n", CAPSULE_VERSION, OCI_VERSION);
        exit (0);
      case 'h':
        fputs (main_help, stdout);
        exit (0);
      default:
        return usage_error (NULL, "unknown global option %s", argv[optind - 1]);
      }
  return 0;
}

int
main (int argc, char **argv)
{
  char **all_argv = argv;
  const char *cmd;
  opterr = 0;
  if (parse_globals (argc, argv))
    return 2;
  if (optind >= argc)
    {
      fputs (main_help, stderr);
      return 2;
    }
  if (g.systemd_cgroup)
    {
      log_error ("--systemd-cgroup: capsule manages cgroups through cgroupfs only; this "
                 "host's systemd is not used (drop the flag)");
      return 1;
    }
  cmd = argv[optind];
  /* The commands that work inside a container run from a sealed copy of this binary; create
     and run decide once they read the spec (container.c, binary_writable). */
  reexec_argv = all_argv;
  if ((strcmp (cmd, "exec") == 0 || strcmp (cmd, "restore") == 0)
      && capsule_exec_sealed_copy (all_argv) < 0)
    {
      _cleanup_free_ char *msg
          = xasprintf ("cannot run from a sealed copy of /proc/self/exe: %s", strerror (errno));
      log_error (msg);
      return 1;
    }
  argc -= optind;
  argv += optind;
  optind = 0; /* glibc: start getopt afresh for the command's own options */
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    if (strcmp (commands[i].name, cmd) == 0)
      {
        if (want_help (argc, argv))
          {
            fputs (main_help, stdout);
            return 0;
          }
        return commands[i].fn (argc, argv);
      }
  return usage_error (NULL, "unknown command \"%s\"", cmd);
}
