/* capsule: `capsule spec`, a config.json with capsule's secure defaults (modelled on nsjail's):
 * every namespace including user and network, a read-only root, tmpfs /tmp, masked /proc paths,
 * three capabilities, no_new_privs, core dumps off, and the default seccomp profile read from
 * policies/seccomp/default.json. */
#pragma once

#include "error.h"

/* Where policy files live: $CAPSULE_POLICY_DIR, else the installed directory, else the source
 * tree's policies/ (a build that was not installed). */
char *spec_policy_path (const char *relative);
int spec_default_text (const char *rootfs, const char *args, char **ret, capsule_error **err);
