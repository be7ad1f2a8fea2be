/* capsule: the container's filesystem: rootfs, spec mounts, devices, pivot_root, masked and
 * read-only paths.  Runs in the container process, inside its new mount namespace.
 *
 * Every mount target is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT) and mounted
 * through /proc/self/fd/N, so a symlink planted in a hostile rootfs cannot send a mount (or a
 * mkdir) onto the host. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "cgroup.h"
#include "error.h"
#include "spec.h"

struct mounts_ctx
{
  const struct spec *spec;
  const struct cgroup *cgroup; /* for a "cgroup" mount; may be NULL */
  bool userns;                 /* in a new user namespace: no mknod, locked mount flags */
  bool netns;                  /* sysfs may be mounted fresh */
  bool cgroupns;
  /* Per spec mount: a detached copy of its bind source the runtime made (user namespace), for a
     source the container's root may not reach; -1 or NULL where none. */
  const int *bind_trees;
};

/* Everything before pivot_root: propagation, rootfs bind, spec mounts, devices. */
int mounts_prepare_rootfs (const struct mounts_ctx *m, capsule_error **err);
/* pivot_root into the rootfs and drop the old root. */
int mounts_pivot (const struct spec *s, capsule_error **err);
/* After pivot: masked paths, read-only paths, read-only root. */
int mounts_finish (const struct mounts_ctx *m, capsule_error **err);

/* In the runtime, before the container exists: create the mount targets the spec needs inside
 * the rootfs, as the host's root.  A container root mapped to an unprivileged host uid often may
 * not create them itself.  Best effort: what cannot be made now fails later with its reason. */
void mounts_precreate_targets (const struct spec *s);

/* In the runtime, before the container exists (a user namespace): open a detached copy
 * (open_tree) of every bind source, as runc opens them before entering, so a source that only
 * the caller can reach (a directory above it closed to others) still mounts.  Returns an array
 * of s->n_mounts fds, -1 where none; best effort.  mounts_close_bind_trees closes and frees. */
int *mounts_open_bind_trees (const struct spec *s, bool all);
/* In the runtime, once CHILD's user namespace has its maps: make each idmapped mount's copy
 * idmapped (mount_setattr), to the mount's own mappings or the container's user namespace. */
int mounts_idmap_trees (const struct spec *s, int *trees, pid_t child, capsule_error **err);
void mounts_close_bind_trees (int *fds, size_t n);

/* Open PATH (absolute inside the container) beneath ROOTFD, creating missing directories, and the
 * last component as a directory or (FILE) an empty file.  Returns an O_PATH fd. */
int mounts_open_target (int rootfd, const char *path, bool file, capsule_error **err);
