/* capsule-shim: every session's writable root, an overlay of the idmapped image; see overlay.c. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct sandbox_host;

/* The idmapped lower layers under STATE_DIR/images, once per shim.  Never fails: where the
 * kernel or the image's filesystem cannot, h->overlay is false and h->overlay_reason says why. */
int overlay_host_init (struct sandbox_host *h, const char *state_dir);
void overlay_host_release (struct sandbox_host *h);
/* DIR/root (and DIR/usr for the host's image) as overlays with their upper and work
 * directories in WS, the session's workspace; nothing when the host has no overlay. */
int overlay_session_mount (const struct sandbox_host *h, const char *dir, const char *ws, uid_t uid,
                           capsule_error **err);
void overlay_session_unmount (const char *dir);
/* Is DIR/root a mount, the root the sandbox is to get? */
bool overlay_session_has_root (const char *dir);
