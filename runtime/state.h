/* capsule: what the runtime keeps about each container under --root (default /run/capsule), so
 * separate invocations cooperate as runc's do: ROOT/ID/state.json and ROOT/ID/exec.fifo. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "error.h"
#include "spec.h"

#define CAPSULE_ROOT_DEFAULT "/run/capsule"
#define OCI_VERSION          "1.2.0"

enum container_status
{
  STATUS_CREATING,
  STATUS_CREATED,
  STATUS_RUNNING,
  STATUS_PAUSED,
  STATUS_STOPPED,
};

struct container_state
{
  char *id;
  char *bundle;
  char *rootfs;
  char *created;
  bool creating; /* create has not finished (or was interrupted) */
  pid_t pid;
  uint64_t start_time;
  int cgroup_version;
  char *cgroup_root, *cgroup_path;
  char *v1_paths[8];
  char **annotation_keys, **annotation_values;
  size_t n_annotations;
  uint64_t memory_limit; /* for the OOM report; 0 = none */
};

const char *container_status_name (enum container_status s);
char *state_dir (const char *root, const char *id);
int state_save (const char *root, const struct container_state *st, capsule_error **err);
int state_load (const char *root, const char *id, struct container_state **ret,
                capsule_error **err);
struct container_state *state_free (struct container_state *st);
static inline void
state_freep (struct container_state **st)
{
  state_free (*st);
}
#define _cleanup_state_ __attribute__ ((cleanup (state_freep)))

/* Is the stored pid still the container's process (same start time)? */
bool state_process_alive (const struct container_state *st);
enum container_status state_status (const char *root, const struct container_state *st);
/* The container's cgroup, rebuilt from the record (NULL when it had none). */
struct cgroup *state_cgroup (const struct container_state *st);
/* The OCI state document. */
char *state_json (const struct container_state *st, enum container_status status, bool oom_killed);
/* Ids under ROOT, sorted. */
int state_list (const char *root, char ***ret, capsule_error **err);
/* Take an exclusive lock on the container's directory (released when the fd closes). */
int state_lock (const char *root, const char *id, capsule_error **err);
