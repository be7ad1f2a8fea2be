/* capsule: cgroup v2, one directory in the unified hierarchy under a delegated parent. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cgroup-internal.h"
#include "cgroup.h"
#include "utils.h"

static char *
file_of (struct cgroup *cg, const char *name)
{
  return xasprintf ("%s%s/%s", cg->root, cg->path, name);
}

static bool
word_in (const char *list, const char *word)
{
  size_t n = strlen (word);
  for (const char *p = list; (p = strstr (p, word)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
      return true;
  return false;
}

/* Enable CONTROLLERS in DIR's subtree_control where DIR offers them and they are not on yet. */
static int
enable_controllers (const char *dir, capsule_error **err)
{
  static const char *const wanted[] = { "memory", "pids", "cpu", "cpuset" };
  _cleanup_free_ char *avail_f = xasprintf ("%s/cgroup.controllers", dir);
  _cleanup_free_ char *sub_f = xasprintf ("%s/cgroup.subtree_control", dir);
  _cleanup_free_ char *avail = NULL, *on = NULL;
  if (read_file_at (AT_FDCWD, avail_f, 4096, &avail, NULL, err) < 0
      || read_file_at (AT_FDCWD, sub_f, 4096, &on, NULL, err) < 0)
    return -1;
  for (size_t i = 0; i < ARRAY_SIZE (wanted); i++)
    {
      _cleanup_free_ char *cmd = NULL;
      if (!word_in (avail, wanted[i]) || word_in (on, wanted[i]))
        continue;
      cmd = xasprintf ("+%s", wanted[i]);
      if (write_knob (AT_FDCWD, sub_f, cmd, err) < 0)
        {
          if ((*err)->status == EBUSY)
            capsule_error_wrap (err,
                                "cgroup v2: %s holds processes, so it cannot hand controllers to "
                                "child cgroups (the no-internal-process rule); run capsule from "
                                "a leaf of a delegated subtree",
                                dir);
          return -1;
        }
    }
  return 0;
}

static int
v2_create (struct cgroup *cg, capsule_error **err)
{
  _cleanup_free_ char *full = xasprintf ("%s%s", cg->root, cg->path);
  size_t rootlen = strlen (cg->root);
  /* Walk the ancestors from the top: each must pass the controllers down. */
  for (char *p = full + rootlen; p; p = strchr (p + 1, '/'))
    {
      char save = *p;
      *p = '\0';
      if (mkdir (full, 0755) < 0 && errno != EEXIST)
        return capsule_error_make (err, errno, "create cgroup %s", full);
      if (enable_controllers (full[0] ? full : "/", err) < 0)
        return -1;
      *p = save;
    }
  if (mkdir (full, 0755) < 0)
    return capsule_error_make (
        err, errno, errno == EEXIST ? "cgroup %s already exists" : "create cgroup %s", full);
  cg->dirfd = open (full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg->dirfd < 0)
    return capsule_error_make (err, errno, "open cgroup %s", full);
  return 0;
}

static int
put (struct cgroup *cg, const char *name, const char *value, capsule_error **err)
{
  _cleanup_free_ char *f = file_of (cg, name);
  if (write_knob (AT_FDCWD, f, value, err) < 0)
    {
      if ((*err)->status == ENOENT)
        capsule_error_wrap (err, "cgroup v2: the controller for %s is not enabled", name);
      return -1;
    }
  return 0;
}

static int
put_limit (struct cgroup *cg, const char *name, int64_t v, capsule_error **err)
{
  _cleanup_free_ char *text = cgroup_limit_text (v);
  return put (cg, name, text, err);
}

static int
apply_memory (struct cgroup *cg, const struct spec_resources *r, capsule_error **err)
{
  _cleanup_free_ char *swapf = file_of (cg, "memory.swap.max");
  _cleanup_free_ char *oomf = file_of (cg, "memory.oom.group");
  if (r->has_memory_limit && put_limit (cg, "memory.max", r->memory_limit, err) < 0)
    return -1;
  if (r->has_memory_reservation && put_limit (cg, "memory.low", r->memory_reservation, err) < 0)
    return -1;
  if (access (swapf, F_OK) == 0)
    {
      /* OCI's swap counts memory plus swap; v2's swap.max counts swap alone.  A limit without a
         swap figure means no swap: an OOM must be an OOM, not a slow crawl through swap. */
      int64_t swap = 0;
      if (r->has_memory_swap && r->memory_swap < 0)
        swap = -1;
      else if (r->has_memory_swap && r->has_memory_limit && r->memory_limit > 0)
        swap = r->memory_swap - r->memory_limit;
      else if (r->has_memory_swap)
        swap = r->memory_swap;
      if ((r->has_memory_limit || r->has_memory_swap)
          && put_limit (cg, "memory.swap.max", swap, err) < 0)
        return -1;
    }
  if (access (oomf, F_OK) == 0 && put (cg, "memory.oom.group", "1", err) < 0)
    return -1;
  if (r->disable_oom_killer)
    dprintf (2, "capsule: warning: linux.resources.memory.disableOOMKiller: cgroup v2 cannot "
                "turn the OOM killer off; a container at its memory limit is still killed\n");
  return 0;
}

static int
v2_apply (struct cgroup *cg, const struct spec_resources *r, capsule_error **err)
{
  if (r == NULL)
    {
      _cleanup_free_ char *oomf = file_of (cg, "memory.oom.group");
      if (access (oomf, F_OK) == 0)
        return put (cg, "memory.oom.group", "1", err);
      return 0;
    }
  if (apply_memory (cg, r, err) < 0)
    return -1;
  if (r->has_pids_limit && put_limit (cg, "pids.max", r->pids_limit, err) < 0)
    return -1;
  if (r->cpu_shares)
    {
      _cleanup_free_ char *w
          = xasprintf ("%llu", (unsigned long long)cgroup_shares_to_weight (r->cpu_shares));
      if (put (cg, "cpu.weight", w, err) < 0)
        return -1;
    }
  if (r->cpu_quota || r->cpu_period)
    {
      _cleanup_free_ char *m = cgroup_v2_cpu_max (r->cpu_quota, r->cpu_period);
      if (put (cg, "cpu.max", m, err) < 0)
        return -1;
    }
  if (r->cpus && put (cg, "cpuset.cpus", r->cpus, err) < 0)
    return -1;
  if (r->mems && put (cg, "cpuset.mems", r->mems, err) < 0)
    return -1;
  if (r->blkio_weight)
    {
      _cleanup_free_ char *bfq = file_of (cg, "io.bfq.weight"), *io = file_of (cg, "io.weight");
      /* io.weight is 1..10000 where blkio's was 10..1000 (runc's conversion) */
      _cleanup_free_ char *w = xasprintf ("%llu", (unsigned long long)r->blkio_weight);
      _cleanup_free_ char *wio
          = xasprintf ("%llu", (unsigned long long)(1 + (r->blkio_weight - 10) * 9999 / 990));
      if (access (bfq, F_OK) == 0 ? put (cg, "io.bfq.weight", w, err) < 0
                                  : put (cg, "io.weight", wio, err) < 0)
        return capsule_error_wrap (err, "linux.resources.blockIO.weight (the io controller)");
    }
  for (size_t i = 0; i < r->n_unified; i++)
    if (put (cg, r->unified_keys[i], r->unified_values[i], err) < 0)
      return capsule_error_wrap (err, "config.json: linux.resources.unified.%s",
                                 r->unified_keys[i]);
  return 0;
}

static int
v2_enter (struct cgroup *cg, pid_t pid, capsule_error **err)
{
  _cleanup_free_ char *p = xasprintf ("%d", pid);
  return put (cg, "cgroup.procs", p, err);
}

static int
v2_oom_kills (struct cgroup *cg, uint64_t *ret)
{
  _cleanup_free_ char *events = file_of (cg, "memory.events");
  return cgroup_read_keyed (events, "oom_kill", ret);
}

static int
v2_stats (struct cgroup *cg, struct cgroup_stats *ret, capsule_error **err)
{
  struct cgroup_stats s = { 0 };
  _cleanup_free_ char *cur = file_of (cg, "memory.current");
  _cleanup_free_ char *peak = file_of (cg, "memory.peak");
  _cleanup_free_ char *max = file_of (cg, "memory.max");
  _cleanup_free_ char *pids = file_of (cg, "pids.current");
  _cleanup_free_ char *pmax = file_of (cg, "pids.max");
  _cleanup_free_ char *cpu = file_of (cg, "cpu.stat");
  _cleanup_free_ char *procs = file_of (cg, "cgroup.procs");
  if (access (procs, F_OK) < 0)
    return capsule_error_make (err, errno, "cgroup %s", cg->path);
  s.memory_limit = s.pids_limit = UINT64_MAX;
  cgroup_read_u64 (cur, &s.memory_current);
  cgroup_read_u64 (peak, &s.memory_peak);
  cgroup_read_u64 (max, &s.memory_limit);
  v2_oom_kills (cg, &s.oom_kills);
  cgroup_read_u64 (pids, &s.pids_current);
  cgroup_read_u64 (pmax, &s.pids_limit);
  cgroup_read_keyed (cpu, "usage_usec", &s.cpu_usage_usec);
  *ret = s;
  return 0;
}

static int
v2_procs (struct cgroup *cg, pid_t **ret, size_t *ret_n, capsule_error **err)
{
  _cleanup_free_ char *f = file_of (cg, "cgroup.procs");
  return cgroup_read_procs (f, ret, ret_n, err);
}

static int
v2_freeze (struct cgroup *cg, bool frozen, capsule_error **err)
{
  struct timespec pause = { 0, 1000 * 1000 };
  _cleanup_free_ char *events = file_of (cg, "cgroup.events");
  if (put (cg, "cgroup.freeze", frozen ? "1" : "0", err) < 0)
    return -1;
  for (int i = 0; i < 5000; i++)
    {
      uint64_t v = 0;
      if (cgroup_read_keyed (events, "frozen", &v) == 0 && v == (frozen ? 1 : 0))
        return 0;
      nanosleep (&pause, NULL);
    }
  return capsule_error_make (err, EBUSY, "cgroup %s did not %s", cg->path,
                             frozen ? "freeze" : "thaw");
}

static int
v2_is_frozen (struct cgroup *cg, bool *ret, capsule_error **err)
{
  _cleanup_free_ char *f = file_of (cg, "cgroup.freeze");
  uint64_t v = 0;
  (void)err;
  *ret = cgroup_read_u64 (f, &v) == 0 && v == 1;
  return 0;
}

static int
v2_kill_all (struct cgroup *cg, capsule_error **err)
{
  _cleanup_free_ char *killf = file_of (cg, "cgroup.kill");
  _cleanup_free_ char *procs = file_of (cg, "cgroup.procs");
  if (access (procs, F_OK) < 0)
    return 0;
  if (access (killf, F_OK) == 0 && put (cg, "cgroup.kill", "1", err) < 0)
    return -1;
  return cgroup_kill_listed (procs, err);
}

/* A container that was handed its cgroup (cgroupns, writable cgroup2 mount) may have made
 * cgroups below it; rmdir refuses a cgroup with children (EBUSY), so remove them deepest first.
 * Their processes are already dead: cgroup.kill covers the whole subtree. */
static int
rmdir_tree (const char *dir, int depth, capsule_error **err)
{
  DIR *d;
  struct dirent *de;
  int r = 0;
  if (rmdir (dir) == 0 || errno == ENOENT)
    return 0;
  if ((errno != EBUSY && errno != ENOTEMPTY) || depth >= 64 || (d = opendir (dir)) == NULL)
    return capsule_error_make (err, errno, "rmdir %s", dir);
  while (r == 0 && (de = readdir (d)))
    {
      _cleanup_free_ char *sub = NULL;
      if (de->d_type != DT_DIR || strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      sub = xasprintf ("%s/%s", dir, de->d_name);
      r = rmdir_tree (sub, depth + 1, err);
    }
  closedir (d);
  if (r < 0)
    return -1;
  if (rmdir (dir) < 0 && errno != ENOENT)
    return capsule_error_make (err, errno, "rmdir %s", dir);
  return 0;
}

static int
v2_destroy (struct cgroup *cg, capsule_error **err)
{
  _cleanup_free_ char *dir = xasprintf ("%s%s", cg->root, cg->path);
  return rmdir_tree (dir, 0, err);
}

const struct cgroup_ops cgroup_v2_ops = {
  .version = 2,
  .create = v2_create,
  .apply = v2_apply,
  .enter = v2_enter,
  .stats = v2_stats,
  .oom_kills = v2_oom_kills,
  .procs = v2_procs,
  .freeze = v2_freeze,
  .is_frozen = v2_is_frozen,
  .kill_all = v2_kill_all,
  .destroy = v2_destroy,
};
