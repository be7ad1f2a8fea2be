/* capsule: OCI hooks.  Each hook gets the container's state JSON on stdin; a hook that fails or
 * outlives its timeout fails the operation with an error naming it. */
#pragma once

#include "error.h"
#include "spec.h"

int hooks_run (const struct spec *s, enum spec_hook_kind kind, const char *state_json,
               capsule_error **err);
