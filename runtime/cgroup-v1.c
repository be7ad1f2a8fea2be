/* capsule: cgroup v1, one directory per controller hierarchy (hybrid hosts). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cgroup.h"
#include "utils.h"

enum
{
  V1_MEMORY,
  V1_PIDS,
  V1_CPU,
  V1_CPUACCT,
  V1_FREEZER,
  V1_DEVICES,
  V1_CPUSET,
  V1_BLKIO,
};
const char *const cgroup_v1_controllers[]
    = { "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "cpuset", "blkio", NULL };

static char *
dir_of (struct cgroup *cg, int c)
{
  return xasprintf ("%s/%s%s", cg->root, cgroup_v1_controllers[c], cg->v1_paths[c]);
}

static char *
file_of (struct cgroup *cg, int c, const char *name)
{
  return xasprintf ("%s/%s%s/%s", cg->root, cgroup_v1_controllers[c], cg->v1_paths[c], name);
}

static bool
hierarchy_present (struct cgroup *cg, int c)
{
  _cleanup_free_ char *h = xasprintf ("%s/%s", cg->root, cgroup_v1_controllers[c]);
  struct stat st;
  return stat (h, &st) == 0 && S_ISDIR (st.st_mode);
}

/* cpuset refuses tasks until cpus and mems are filled in, so copy them down from the parent. */
static int
cpuset_fill (const char *dir, capsule_error **err)
{
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  _cleanup_free_ char *parent = xstrdup (dir);
  char *slash = strrchr (parent, '/');
  if (slash)
    *slash = '\0';
  for (size_t i = 0; i < ARRAY_SIZE (files); i++)
    {
      _cleanup_free_ char *mine = xasprintf ("%s/%s", dir, files[i]);
      _cleanup_free_ char *theirs = xasprintf ("%s/%s", parent, files[i]);
      _cleanup_free_ char *cur = NULL, *val = NULL;
      if (read_file_at (AT_FDCWD, mine, 4096, &cur, NULL, err) < 0)
        return -1;
      if (strspn (cur, "\n") != strlen (cur))
        continue;
      if (read_file_at (AT_FDCWD, theirs, 4096, &val, NULL, err) < 0)
        return -1;
      if (write_knob (AT_FDCWD, mine, val, err) < 0)
        return -1;
    }
  return 0;
}

/* mkdir -p, filling in cpuset.cpus and cpuset.mems of every cpuset directory it makes.  The
   parents are usually there: the leaf is tried first, the walk from the top only when it is
   missing a parent. */
static int
make_chain (const char *dir, bool cpuset, capsule_error **err)
{
  _cleanup_free_ char *p = NULL;
  if (mkdir (dir, 0755) == 0)
    return cpuset ? cpuset_fill (dir, err) : 0;
  if (errno == EEXIST)
    return capsule_error_make (err, EEXIST, "cgroup %s already exists", dir);
  if (errno != ENOENT)
    return capsule_error_make (err, errno, "create cgroup %s", dir);
  p = xstrdup (dir);
  for (char *s = strchr (p + 1, '/');; s = strchr (s + 1, '/'))
    {
      if (s)
        *s = '\0';
      if (mkdir (p, 0755) == 0)
        {
          if (cpuset && cpuset_fill (p, err) < 0)
            return -1;
        }
      else if (errno != EEXIST)
        return capsule_error_make (err, errno, "create cgroup %s", p);
      else if (s == NULL)
        return capsule_error_make (err, EEXIST, "cgroup %s already exists", p);
      if (s == NULL)
        return 0;
      *s = '/';
    }
}

static int
v1_create (struct cgroup *cg, capsule_error **err)
{
  for (int c = 0; cgroup_v1_controllers[c]; c++)
    {
      _cleanup_free_ char *dir = NULL;
      if (cg->v1_paths[c] == NULL)
        continue;
      if (!hierarchy_present (cg, c))
        {
          cg->v1_paths[c] = (free (cg->v1_paths[c]), NULL);
          continue;
        }
      dir = dir_of (cg, c);
      if (make_chain (dir, c == V1_CPUSET, err) < 0)
        return -1;
    }
  return 0;
}

static int
put (struct cgroup *cg, int c, const char *name, const char *value, capsule_error **err)
{
  _cleanup_free_ char *f = NULL;
  if (cg->v1_paths[c] == NULL)
    return capsule_error_make (err, ENOENT, "the v1 %s controller is not mounted; cannot set %s",
                               cgroup_v1_controllers[c], name);
  f = file_of (cg, c, name);
  return write_knob (AT_FDCWD, f, value, err);
}

static int
put_i64 (struct cgroup *cg, int c, const char *name, int64_t v, capsule_error **err)
{
  _cleanup_free_ char *text = xasprintf ("%lld", (long long)v);
  return put (cg, c, name, text, err);
}

static int
apply_memory (struct cgroup *cg, const struct spec_resources *r, capsule_error **err)
{
  /* Memory plus swap: what the spec says, or no swap at all when only a limit is given. */
  int64_t swap = r->has_memory_swap ? r->memory_swap : (r->has_memory_limit ? r->memory_limit : 0);
  _cleanup_free_ char *memsw = file_of (cg, V1_MEMORY, "memory.memsw.limit_in_bytes");
  bool has_memsw = swap != 0 && access (memsw, F_OK) == 0;
  if (r->has_memory_limit
      && put_i64 (cg, V1_MEMORY, "memory.limit_in_bytes", r->memory_limit, err) < 0)
    {
      /* raising the limit past the current memory+swap (update): raise that first */
      if ((*err)->status != EINVAL || !has_memsw)
        return -1;
      capsule_error_release (err);
      if (put_i64 (cg, V1_MEMORY, "memory.memsw.limit_in_bytes", swap, err) < 0
          || put_i64 (cg, V1_MEMORY, "memory.limit_in_bytes", r->memory_limit, err) < 0)
        return -1;
    }
  if (r->has_memory_reservation
      && put_i64 (cg, V1_MEMORY, "memory.soft_limit_in_bytes", r->memory_reservation, err) < 0)
    return -1;
  if (has_memsw && put_i64 (cg, V1_MEMORY, "memory.memsw.limit_in_bytes", swap, err) < 0)
    return -1;
  /* At the limit the container's tasks then wait for memory instead of being killed. */
  if (r->disable_oom_killer && put (cg, V1_MEMORY, "memory.oom_control", "1", err) < 0)
    return capsule_error_wrap (err, "linux.resources.memory.disableOOMKiller");
  return 0;
}

static int
apply_devices (struct cgroup *cg, const struct spec_resources *r, capsule_error **err)
{
  static const char *const defaults[]
      = { "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",   "c 1:9 rwm",
          "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm" };
  if (r->n_devices == 0 || cg->v1_paths[V1_DEVICES] == NULL)
    return 0;
  for (size_t i = 0; i < r->n_devices; i++)
    {
      const struct spec_device_rule *d = &r->devices[i];
      _cleanup_free_ char *major
          = d->major < 0 ? xstrdup ("*") : xasprintf ("%lld", (long long)d->major);
      _cleanup_free_ char *minor
          = d->minor < 0 ? xstrdup ("*") : xasprintf ("%lld", (long long)d->minor);
      _cleanup_free_ char *rule = d->type == 'a'
                                      ? xstrdup ("a")
                                      : xasprintf ("%c %s:%s %s", d->type, major, minor, d->access);
      if (put (cg, V1_DEVICES, d->allow ? "devices.allow" : "devices.deny", rule, err) < 0)
        return -1;
    }
  for (size_t i = 0; i < ARRAY_SIZE (defaults); i++)
    if (put (cg, V1_DEVICES, "devices.allow", defaults[i], err) < 0)
      return -1;
  return 0;
}

/* blkio.weight went with CFQ (Linux 5.0); BFQ has blkio.bfq.weight.  With neither (no BFQ on
   any disk) there is nothing to weigh: runc goes on, and so do we, saying so. */
static int
apply_blkio_weight (struct cgroup *cg, uint64_t weight, capsule_error **err)
{
  static const char *const files[] = { "blkio.weight", "blkio.bfq.weight" };
  for (size_t i = 0; cg->v1_paths[V1_BLKIO] && i < ARRAY_SIZE (files); i++)
    {
      _cleanup_free_ char *f = file_of (cg, V1_BLKIO, files[i]);
      if (access (f, F_OK) == 0)
        return put_i64 (cg, V1_BLKIO, files[i], weight, err);
    }
  dprintf (2, "capsule: warning: linux.resources.blockIO.weight: this kernel's blkio controller "
              "has no weight file (blkio.weight, blkio.bfq.weight: BFQ scheduler); not applied\n");
  return 0;
}

static int
v1_apply (struct cgroup *cg, const struct spec_resources *r, capsule_error **err)
{
  if (r == NULL)
    return 0;
  if (apply_memory (cg, r, err) < 0)
    return -1;
  if (r->has_pids_limit)
    {
      _cleanup_free_ char *v = cgroup_limit_text (r->pids_limit);
      if (put (cg, V1_PIDS, "pids.max", v, err) < 0)
        return -1;
    }
  if (r->cpu_shares && put_i64 (cg, V1_CPU, "cpu.shares", r->cpu_shares, err) < 0)
    return -1;
  if (r->cpu_period && put_i64 (cg, V1_CPU, "cpu.cfs_period_us", r->cpu_period, err) < 0)
    return -1;
  if (r->cpu_quota && put_i64 (cg, V1_CPU, "cpu.cfs_quota_us", r->cpu_quota, err) < 0)
    return -1;
  if (r->cpus && put (cg, V1_CPUSET, "cpuset.cpus", r->cpus, err) < 0)
    return -1;
  if (r->mems && put (cg, V1_CPUSET, "cpuset.mems", r->mems, err) < 0)
    return -1;
  if (r->blkio_weight && apply_blkio_weight (cg, r->blkio_weight, err) < 0)
    return -1;
  if (r->n_unified)
    return capsule_error_make (err, 0,
                               "config.json: linux.resources.unified needs cgroup v2; this host "
                               "runs cgroup v1");
  return apply_devices (cg, r, err);
}

static int
v1_enter (struct cgroup *cg, pid_t pid, capsule_error **err)
{
  _cleanup_free_ char *p = xasprintf ("%d", pid);
  for (int c = 0; cgroup_v1_controllers[c]; c++)
    if (cg->v1_paths[c] && put (cg, c, "cgroup.procs", p, err) < 0)
      return -1;
  return 0;
}

void
cgroup_v1_close_tasks (int fds[8])
{
  for (int c = 0; c < 8; c++)
    if (fds[c] >= 0)
      {
        close (fds[c]);
        fds[c] = -1;
      }
}

int
cgroup_v1_open_tasks (struct cgroup *cg, int fds[8], capsule_error **err)
{
  for (int c = 0; c < 8; c++)
    fds[c] = -1;
  for (int c = 0; cgroup_v1_controllers[c] && c < 8; c++)
    if (cg->v1_paths[c])
      {
        _cleanup_free_ char *f = file_of (cg, c, "tasks");
        fds[c] = open (f, O_WRONLY | O_CLOEXEC);
        if (fds[c] < 0)
          {
            int e = errno;
            cgroup_v1_close_tasks (fds);
            return capsule_error_make (err, e, "open %s", f);
          }
      }
  return 0;
}

int
cgroup_v1_join_self (int fds[8], capsule_error **err)
{
  for (int c = 0; c < 8; c++)
    if (fds[c] >= 0)
      {
        if (write (fds[c], "0", 1) != 1)
          {
            int e = errno;
            cgroup_v1_close_tasks (fds);
            return capsule_error_make (err, e, "join the %s cgroup", cgroup_v1_controllers[c]);
          }
        close (fds[c]);
        fds[c] = -1;
      }
  return 0;
}

static int
v1_oom_kills (struct cgroup *cg, uint64_t *ret)
{
  _cleanup_free_ char *oom = NULL;
  if (cg->v1_paths[V1_MEMORY] == NULL)
    return -1;
  oom = file_of (cg, V1_MEMORY, "memory.oom_control");
  return cgroup_read_keyed (oom, "oom_kill", ret);
}

static int
v1_stats (struct cgroup *cg, struct cgroup_stats *ret, capsule_error **err)
{
  struct cgroup_stats s = { 0 };
  _cleanup_free_ char *usage = file_of (cg, V1_MEMORY, "memory.usage_in_bytes");
  _cleanup_free_ char *peak = file_of (cg, V1_MEMORY, "memory.max_usage_in_bytes");
  _cleanup_free_ char *limit = file_of (cg, V1_MEMORY, "memory.limit_in_bytes");
  _cleanup_free_ char *pids = cg->v1_paths[V1_PIDS] ? file_of (cg, V1_PIDS, "pids.current") : NULL;
  _cleanup_free_ char *pmax = cg->v1_paths[V1_PIDS] ? file_of (cg, V1_PIDS, "pids.max") : NULL;
  _cleanup_free_ char *cpu
      = cg->v1_paths[V1_CPUACCT] ? file_of (cg, V1_CPUACCT, "cpuacct.usage") : NULL;
  if (cg->v1_paths[V1_MEMORY] == NULL)
    return capsule_error_make (err, ENOENT, "no v1 memory controller");
  if (cgroup_read_u64 (usage, &s.memory_current) < 0)
    return capsule_error_make (err, errno, "read %s", usage);
  cgroup_read_u64 (peak, &s.memory_peak);
  cgroup_read_u64 (limit, &s.memory_limit);
  if (s.memory_limit >= (UINT64_MAX >> 2) || s.memory_limit >= 0x7ffffffffffff000ULL)
    s.memory_limit = UINT64_MAX;
  v1_oom_kills (cg, &s.oom_kills);
  s.pids_limit = UINT64_MAX;
  if (pids)
    {
      cgroup_read_u64 (pids, &s.pids_current);
      cgroup_read_u64 (pmax, &s.pids_limit);
    }
  if (cpu && cgroup_read_u64 (cpu, &s.cpu_usage_usec) == 0)
    s.cpu_usage_usec /= 1000;
  *ret = s;
  return 0;
}

static int
v1_procs (struct cgroup *cg, pid_t **ret, size_t *ret_n, capsule_error **err)
{
  int c = cg->v1_paths[V1_PIDS] ? V1_PIDS : V1_MEMORY;
  _cleanup_free_ char *f = file_of (cg, c, "cgroup.procs");
  return cgroup_read_procs (f, ret, ret_n, err);
}

static int
v1_freeze (struct cgroup *cg, bool frozen, capsule_error **err)
{
  struct timespec pause = { 0, 1000 * 1000 };
  const char *want = frozen ? "FROZEN" : "THAWED";
  _cleanup_free_ char *f = NULL;
  if (cg->v1_paths[V1_FREEZER] == NULL)
    return capsule_error_make (err, ENOTSUP, "the v1 freezer controller is not mounted");
  f = file_of (cg, V1_FREEZER, "freezer.state");
  for (int i = 0; i < 5000; i++)
    {
      _cleanup_free_ char *state = NULL;
      if (write_knob (AT_FDCWD, f, want, err) < 0)
        return -1;
      if (read_file_at (AT_FDCWD, f, 64, &state, NULL, err) < 0)
        return -1;
      if (strncmp (state, want, strlen (want)) == 0)
        return 0;
      nanosleep (&pause, NULL);
    }
  return capsule_error_make (err, EBUSY, "freezer did not reach %s", want);
}

static int
v1_is_frozen (struct cgroup *cg, bool *ret, capsule_error **err)
{
  _cleanup_free_ char *f = NULL, *state = NULL;
  *ret = false;
  if (cg->v1_paths[V1_FREEZER] == NULL)
    return 0;
  f = file_of (cg, V1_FREEZER, "freezer.state");
  if (read_file_at (AT_FDCWD, f, 64, &state, NULL, err) < 0)
    return -1;
  *ret = strncmp (state, "FROZEN", 6) == 0;
  return 0;
}

static int
v1_kill_all (struct cgroup *cg, capsule_error **err)
{
  int c = cg->v1_paths[V1_PIDS] ? V1_PIDS : V1_MEMORY;
  _cleanup_free_ char *f = file_of (cg, c, "cgroup.procs");
  _cleanup_error_ capsule_error *tmp = NULL;
  bool frozen = cg->v1_paths[V1_FREEZER] && v1_freeze (cg, true, &tmp) == 0;
  int r;
  capsule_error_release (&tmp);
  /* SIGKILL is delivered to frozen tasks once they thaw, and freezing first stops a fork bomb
     from outrunning the kill loop. */
  if (frozen)
    {
      _cleanup_free_ pid_t *pids = NULL;
      size_t n = 0;
      if (cgroup_read_procs (f, &pids, &n, &tmp) == 0)
        for (size_t i = 0; i < n; i++)
          kill (pids[i], SIGKILL);
      capsule_error_release (&tmp);
      v1_freeze (cg, false, &tmp);
    }
  r = cgroup_kill_listed (f, err);
  return r;
}

static int
v1_destroy (struct cgroup *cg, capsule_error **err)
{
  for (int c = 0; cgroup_v1_controllers[c]; c++)
    {
      _cleanup_free_ char *dir = NULL;
      if (cg->v1_paths[c] == NULL)
        continue;
      dir = dir_of (cg, c);
      if (rmdir (dir) < 0 && errno != ENOENT)
        return capsule_error_make (err, errno, "rmdir %s", dir);
    }
  return 0;
}

const struct cgroup_ops cgroup_v1_ops = {
  .version = 1,
  .create = v1_create,
  .apply = v1_apply,
  .enter = v1_enter,
  .stats = v1_stats,
  .oom_kills = v1_oom_kills,
  .procs = v1_procs,
  .freeze = v1_freeze,
  .is_frozen = v1_is_frozen,
  .kill_all = v1_kill_all,
  .destroy = v1_destroy,
};
