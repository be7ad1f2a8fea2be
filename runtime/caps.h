/* capsule: capability names and the setting of the five capability sets. */
#pragma once

#include <stdint.h>

#include "error.h"
#include "spec.h"

/* "CAP_SYS_ADMIN" (any case) → its number, -1 when unknown. */
int caps_parse_name (const char *name);
/* The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
int caps_last_cap (void);
/* Drop from the bounding set every capability not in KEEP. */
int caps_drop_bounding (uint64_t keep, capsule_error **err);
/* Set effective, permitted, inheritable and ambient as the process asks (none when it gives no
 * capabilities object).  Called after the switch to the process's uid with PR_SET_KEEPCAPS. */
int caps_apply (const struct spec_process *p, capsule_error **err);
