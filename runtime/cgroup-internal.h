/* capsule: helpers shared by cgroup-v1.c and cgroup-v2.c. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Read "KEY VALUE" lines (memory.events, cpu.stat, memory.oom_control) and return VALUE. */
int cgroup_read_keyed (const char *file, const char *key, uint64_t *ret);
/* Read a file holding one number or "max" (→ UINT64_MAX). */
int cgroup_read_u64 (const char *file, uint64_t *ret);
/* Read the pids of a cgroup.procs file. */
int cgroup_read_procs (const char *file, pid_t **ret, size_t *ret_n, capsule_error **err);
/* Send SIGKILL to every pid listed in FILE until it is empty (bounded). */
int cgroup_kill_listed (const char *file, capsule_error **err);
