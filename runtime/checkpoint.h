/* capsule: checkpoint and restore of a running container through CRIU (libcriu), with runc's
 * flags.  Built only with the meson feature `criu`; without it every call says so. */
#pragma once

#include <stdbool.h>

#include "container.h"
#include "error.h"

struct checkpoint_opts
{
  const char *image_path; /* default ./checkpoint */
  const char *work_path;  /* criu's logs and scratch; default the image path */
  bool leave_running;     /* checkpoint: the container keeps running */
  bool detach;            /* restore: return once the container runs again */
  bool tcp_established, ext_unix_sk, shell_job, file_locks;
};

/* NULL when CRIU can checkpoint on this host; otherwise why not, in one line (the caller frees
 * it): not built in, criu missing, or the first error of `criu check`. */
char *checkpoint_unavailable (void);

/* Dump container ID into the image directory.  Unless LEAVE_RUNNING, the container is gone
 * afterwards (its processes, cgroup and record), as with runc. */
int container_checkpoint (const char *root, const char *id, const struct checkpoint_opts *o,
                          capsule_error **err);

/* Make container O->ID from bundle O->BUNDLE and the image directory: the same cgroup limits as
 * the bundle asks, its processes as they were.  Without DETACH, wait for the container's process
 * and delete the container after, as `run` does; *RET_STATUS is its exit status. */
int container_restore (const struct container_opts *o, const struct checkpoint_opts *co,
                       int *ret_status, capsule_error **err);
