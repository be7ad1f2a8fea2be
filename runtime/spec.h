/* capsule: the OCI runtime spec (config.json) parsed into plain C structures.
 *
 * Parsing validates everything it can without touching the system, so a hostile bundle fails here
 * with one line naming the field ("config.json: linux.namespaces[2].type: unknown namespace ...")
 * before any namespace, mount or cgroup exists. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "json.h"

#define SPEC_MAX_SIZE (4u << 20) /* config.json larger than this is refused */

struct spec_idmap;

struct spec_mount
{
  char *destination;
  char *type;
  char *source;
  unsigned long flags;       /* MS_* to set */
  unsigned long clear_flags; /* MS_* options that were explicitly turned off (rw, suid, ...) */
  unsigned long propagation; /* MS_PRIVATE|MS_REC ... or 0 */
  bool recursive_readonly;   /* "rro" */
  char *data;                /* remaining options joined by commas, for mount(2)'s data */
  /* an idmapped bind ("idmap", "ridmap": recursive, or the mount's own mappings): the mount's
     uid/gid mappings, or none for the container's user namespace */
  bool idmap, idmap_recursive;
  struct spec_idmap *uid_mappings, *gid_mappings;
  size_t n_uid_mappings, n_gid_mappings;
};

struct spec_rlimit
{
  int resource;
  uint64_t soft, hard;
};

struct spec_namespace
{
  int type; /* CLONE_NEW* */
  char *path;
};

struct spec_idmap
{
  uint32_t container_id, host_id, size;
};

struct spec_device
{
  char *path;
  char type; /* 'c', 'b', 'u' (= 'c'), 'p' */
  int64_t major, minor;
  mode_t mode;
  bool has_mode;
  uid_t uid;
  gid_t gid;
};

struct spec_device_rule
{
  bool allow;
  char type;            /* 'a', 'c', 'b' */
  int64_t major, minor; /* -1 = any */
  char access[4];       /* subset of "rwm" */
};

struct spec_seccomp_arg
{
  unsigned index;
  uint64_t value, value_two;
  int op; /* enum scmp_compare */
};

struct spec_seccomp_rule
{
  char **names;
  uint32_t action; /* libseccomp action, errno folded in */
  struct spec_seccomp_arg *args;
  size_t n_args;
};

struct spec_seccomp
{
  uint32_t default_action;
  uint32_t *archs; /* libseccomp arch tokens */
  size_t n_archs;
  struct spec_seccomp_rule *rules;
  size_t n_rules;
  unsigned flags; /* SECCOMP_FILTER_FLAG_* requested */
};

struct spec_resources
{
  bool has_memory_limit, has_memory_reservation, has_memory_swap;
  int64_t memory_limit, memory_reservation, memory_swap; /* -1 = unlimited */
  bool disable_oom_killer;
  bool has_pids_limit;
  int64_t pids_limit;
  uint64_t cpu_shares; /* 0 = unset */
  int64_t cpu_quota;   /* 0 = unset, -1 = unlimited */
  uint64_t cpu_period; /* 0 = unset */
  char *cpus, *mems;
  uint64_t blkio_weight; /* linux.resources.blockIO.weight, 0 = unset */
  struct spec_device_rule *devices;
  size_t n_devices;
  char **unified_keys, **unified_values; /* linux.resources.unified (v2 only) */
  size_t n_unified;
};

struct spec_hook
{
  char *path;
  char **args;
  char **env;
  int timeout; /* seconds, 0 = none */
};

enum spec_hook_kind
{
  HOOK_PRESTART,
  HOOK_CREATE_RUNTIME,
  HOOK_CREATE_CONTAINER,
  HOOK_START_CONTAINER,
  HOOK_POSTSTART,
  HOOK_POSTSTOP,
  HOOK_KINDS
};
extern const char *const spec_hook_names[HOOK_KINDS];

#define SPEC_N_CAPSETS      5
#define SPEC_MAX_NUMA_NODES 1024
enum
{
  CAPSET_BOUNDING,
  CAPSET_EFFECTIVE,
  CAPSET_PERMITTED,
  CAPSET_INHERITABLE,
  CAPSET_AMBIENT
};

struct spec_process
{
  bool terminal;
  char **args;
  char **env;
  char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *additional_gids;
  size_t n_additional_gids;
  bool has_umask;
  mode_t umask;
  struct spec_rlimit *rlimits;
  size_t n_rlimits;
  bool no_new_privileges;
  bool has_capabilities;
  uint64_t caps[SPEC_N_CAPSETS];
  bool has_oom_score_adj;
  int oom_score_adj;
};

struct spec
{
  char *oci_version;
  char *bundle;    /* absolute path of the bundle directory */
  char *root_path; /* absolute */
  bool root_readonly;
  char *hostname, *domainname;
  struct spec_process *process;
  struct spec_mount *mounts;
  size_t n_mounts;
  struct spec_namespace *namespaces;
  size_t n_namespaces;
  struct spec_idmap *uid_mappings, *gid_mappings;
  size_t n_uid_mappings, n_gid_mappings;
  char **masked_paths, **readonly_paths;
  struct spec_device *devices;
  size_t n_devices;
  char **sysctl_keys, **sysctl_values;
  size_t n_sysctl;
  /* linux.memoryPolicy: set_mempolicy(mode | flags, nodes) for the container's process */
  bool has_mempolicy, mempolicy_has_nodes;
  int mempolicy_mode; /* MPOL_* with MPOL_F_* flags */
  unsigned long mempolicy_nodes[SPEC_MAX_NUMA_NODES / (8 * sizeof (unsigned long))];
  struct spec_seccomp *seccomp;
  struct spec_resources *resources;
  char *cgroups_path;
  unsigned long rootfs_propagation;
  struct spec_hook *hooks[HOOK_KINDS];
  size_t n_hooks[HOOK_KINDS];
  char **annotation_keys, **annotation_values;
  size_t n_annotations;
};

/* Load BUNDLE/config.json.  BUNDLE may be relative; the result holds absolute paths. */
struct spec *spec_load (const char *bundle, capsule_error **err);
/* Parse a config.json document; WHAT names it in errors, BUNDLE resolves a relative root. */
struct spec *spec_parse (const char *text, const char *what, const char *bundle,
                         capsule_error **err);
/* Parse a standalone process object (exec --process FILE). */
struct spec_process *spec_process_parse (const char *text, const char *what, capsule_error **err);
/* Parse an OCI LinuxResources object (update -r FILE). */
struct spec_resources *spec_resources_parse (const char *text, const char *what,
                                             capsule_error **err);
struct spec_resources *spec_resources_free (struct spec_resources *r);
struct spec *spec_free (struct spec *s);
struct spec_process *spec_process_free (struct spec_process *p);
static inline void
spec_freep (struct spec **s)
{
  spec_free (*s);
}
#define _cleanup_spec_ __attribute__ ((cleanup (spec_freep)))
static inline void
spec_process_freep (struct spec_process **p)
{
  spec_process_free (*p);
}
#define _cleanup_spec_process_ __attribute__ ((cleanup (spec_process_freep)))

/* The namespace entry of TYPE (CLONE_NEW*), or NULL when the spec does not ask for one. */
const struct spec_namespace *spec_namespace (const struct spec *s, int type);
const char *spec_annotation (const struct spec *s, const char *key);

/* Mount option parsing, exposed for tests: fills flags, clear_flags, propagation, data. */
int spec_mount_options_parse (struct spec_mount *m, char **options, const char *where,
                              capsule_error **err);
/* "RLIMIT_NOFILE" → RLIMIT_NOFILE, -1 when unknown. */
int spec_rlimit_parse (const char *name);
/* "network" → CLONE_NEWNET, 0 when unknown. */
int spec_namespace_parse (const char *name);
const char *spec_namespace_name (int type);
