/* capsule: rtnetlink through libmnl.  A new network namespace starts with `lo` down; the
 * container needs it up and nothing else. */
#pragma once

#include "error.h"

/* Bring the loopback interface of the calling process's network namespace up. */
int netlink_loopback_up (capsule_error **err);
