/* capsule: turning a set-up container process into the spec's process: rlimits, user and groups,
 * capabilities, no_new_privs, seccomp, cwd, exec.  Shared by create and exec. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "seccomp-filter.h"
#include "spec.h"

/* Find ARGS[0] in the PATH of ENV (the container's view); returns a malloc'd path. */
char *process_find_executable (const struct spec_process *p, capsule_error **err);
/* HOME, when P's env has none or an empty one, as runc and crun set it: the home of P's uid in
 * the container's /etc/passwd (the caller is inside its root), "/" for an unknown uid. */
void process_set_home (struct spec_process *p);
int process_set_rlimits (const struct spec_process *p, capsule_error **err);
/* Become the spec's user with the spec's capabilities; install SECCOMP here when it must go in
 * before privileges drop (no noNewPrivileges).  Leaves cwd, nnp-seccomp and exec to the caller. */
int process_drop_privileges (const struct spec_process *p, const struct seccomp_program *seccomp,
                             capsule_error **err);
/* Create a missing process.cwd (mkdir -p, 0755) beneath the container's root, which the caller
 * has entered, as runc does; called before the root is made read-only. */
int process_make_cwd (const struct spec_process *p, capsule_error **err);
int process_chdir (const struct spec_process *p, capsule_error **err);
/* no_new_privs and (when the process asks for it) the seccomp filter: the last steps. */
int process_finalize (const struct spec_process *p, const struct seccomp_program *seccomp,
                      capsule_error **err);
/* Close (on exec) every fd from 3 + PRESERVE up, then execve.  Returns only on failure. */
int process_exec (const struct spec_process *p, const char *path, int preserve_fds,
                  capsule_error **err);

/* A container process starts clean: every signal at its default action, none blocked, whatever
 * its runtime (a daemon with signalfd, a shell ignoring SIGPIPE) had. */
void process_reset_signals (void);

/* Wait for PID (our child, or reparented to us as subreaper) to exit, forwarding every other
 * signal of MASK (which the caller has blocked) to it.  *ret_status: exit code, 128+signal. */
void process_wait_forwarding (pid_t pid, const sigset_t *mask, int *ret_status);
