/* capsule: one cgroup per container, v2 when the host has a unified hierarchy with controllers,
 * v1 otherwise (hybrid hosts).  Both versions sit behind one table of function pointers. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "spec.h"

#define CGROUP_ROOT_DEFAULT "/sys/fs/cgroup"

struct cgroup;

struct cgroup_stats
{
  uint64_t memory_current, memory_peak, memory_limit; /* bytes; limit UINT64_MAX = none */
  uint64_t oom_kills;
  uint64_t pids_current, pids_limit; /* limit UINT64_MAX = none */
  uint64_t cpu_usage_usec;
};

struct cgroup_ops
{
  int version;
  int (*create) (struct cgroup *cg, capsule_error **err);
  int (*apply) (struct cgroup *cg, const struct spec_resources *r, capsule_error **err);
  int (*enter) (struct cgroup *cg, pid_t pid, capsule_error **err);
  int (*stats) (struct cgroup *cg, struct cgroup_stats *ret, capsule_error **err);
  /* the OOM kills alone (what run reports at exit), one file read */
  int (*oom_kills) (struct cgroup *cg, uint64_t *ret);
  int (*procs) (struct cgroup *cg, pid_t **ret, size_t *ret_n, capsule_error **err);
  int (*freeze) (struct cgroup *cg, bool frozen, capsule_error **err);
  int (*is_frozen) (struct cgroup *cg, bool *ret, capsule_error **err);
  int (*kill_all) (struct cgroup *cg, capsule_error **err);
  int (*destroy) (struct cgroup *cg, capsule_error **err);
};

struct cgroup
{
  const struct cgroup_ops *ops;
  char *root; /* mount point of the hierarchies, normally /sys/fs/cgroup */
  char *path; /* container cgroup relative to the hierarchy root, starts with "/"; v1: see below */
  /* v1 only: the resolved path in each controller hierarchy (they may differ on hybrid hosts). */
  char *v1_paths[8];
  int dirfd; /* v2: open directory of the container cgroup, for CLONE_INTO_CGROUP */
};

/* 2 for a unified hierarchy with controllers, 1 for v1/hybrid, -1 when neither is usable. */
int cgroup_detect_version (const char *root);

/* Work out where the container's cgroup goes.  OWN is the caller's cgroup in that hierarchy
 * ("/a/b"), CGROUPS_PATH the spec's linux.cgroupsPath (may be NULL), ID the container id.
 * Relative paths (and the default "capsule-ID") go under the caller's own cgroup, absolute ones
 * from the hierarchy root; ".." components and systemd "slice:prefix:name" forms are refused. */
int cgroup_resolve_path (const char *own, const char *cgroups_path, const char *id, char **ret,
                         capsule_error **err);

/* The caller's own cgroup in the v2 hierarchy (CONTROLLER NULL) or a v1 controller's, read from
 * the text of /proc/self/cgroup. */
int cgroup_own_path (const char *proc_self_cgroup, const char *controller, char **ret);

/* v1 and v2 value conversions, exposed for unit tests. */
uint64_t cgroup_shares_to_weight (uint64_t shares);
char *cgroup_v2_cpu_max (int64_t quota, uint64_t period);
char *cgroup_limit_text (int64_t v); /* -1 → "max" */

/* Prepare (not yet create) a cgroup object for container ID on this host. */
int cgroup_new (const char *cgroups_path, const char *id, struct cgroup **ret, capsule_error **err);
/* Rebuild the object from what state.json stored (version and paths). */
struct cgroup *cgroup_from_state (int version, const char *root, const char *path,
                                  char *const *v1_paths);
struct cgroup *cgroup_free (struct cgroup *cg);
static inline void
cgroup_freep (struct cgroup **cg)
{
  cgroup_free (*cg);
}
#define _cleanup_cgroup_ __attribute__ ((cleanup (cgroup_freep)))

/* Kill every process in the cgroup and remove it; tolerant of a cgroup already gone. */
int cgroup_teardown (struct cgroup *cg, capsule_error **err);

/* v1: a process moves itself in.  Writing a pid to cgroup.procs takes the kernel's threadgroup
 * lock for writing, which waits for an RCU grace period (5-15 ms on our VMs, and most of a
 * container's start); a single thread writing "0" to a hierarchy's `tasks` file moves itself
 * without it.  The runtime opens the files (the permission is the opener's), the container's
 * process, still single-threaded, writes them.  FDS has one slot per v1 controller, -1 where
 * there is none. */
int cgroup_v1_open_tasks (struct cgroup *cg, int fds[8], capsule_error **err);
int cgroup_v1_join_self (int fds[8], capsule_error **err);
void cgroup_v1_close_tasks (int fds[8]);

extern const struct cgroup_ops cgroup_v1_ops, cgroup_v2_ops;
extern const char *const cgroup_v1_controllers[]; /* NULL-terminated; index matches v1_paths */
