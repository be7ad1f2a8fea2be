/* capsule-shim: a session's workspace (/mnt/data and its root's upper layer) on disk; see
 * workspace.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct sandbox_host;

/* Can this host hold workspaces on disk (loop devices, ext4)?  When not, h->store_disk false
 * and h->store_reason say why, and workspaces are tmpfs; that fails only when h->store_mode
 * is "disk".  With "tmpfs", nothing is probed. */
int workspace_host_init (struct sandbox_host *h, const char *state_dir, capsule_error **err);
void workspace_host_release (struct sandbox_host *h);
/* DIR/ws mounted (made first when new: SIZE bytes), DIR/data bound from DIR/ws/data (owned by
 * UID), and the session's overlay root; what is mounted already stays.  Blocks (mke2fs):
 * called in a worker, or at the shim's start. */
int workspace_mount (const struct sandbox_host *h, const char *dir, uint64_t size, uid_t uid,
                     capsule_error **err);
void workspace_unmount (const char *dir);
/* Is DIR/data the workspace's (a file written there lands in it)? */
bool workspace_ready (const char *dir);
