/* capsule: the container lifecycle: create, start, run, exec, kill, delete, pause, state. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "cgroup.h"
#include "error.h"
#include "spec.h"
#include "state.h"

struct container_opts
{
  const char *root; /* state root (--root) */
  const char *id;
  const char *bundle;
  const char *pid_file;
  const char *console_socket;
  int preserve_fds;
  bool null_stdio; /* fds 0-2 of the container are /dev/null, not the caller's (a daemon's) */
  /* the CLI's own argv: when the container could write this binary (see binary_writable in
     container.c), create re-executes from a sealed copy of it first.  NULL: never (the shim,
     whose sandboxes' user namespaces map no owner of its files) */
  char **reexec_argv;
};

/* create: the container's process waits for `start`, its pid is in the pid file. */
int container_create (const struct container_opts *o, capsule_error **err);
int container_start (const char *root, const char *id, capsule_error **err);
/* create + start + wait; *ret_status is the exit code (128+signal when killed).  With DETACH it
 * returns once the process runs.  Without KEEP a finished container is deleted. */
int container_run (const struct container_opts *o, bool detach, bool keep, int *ret_status,
                   capsule_error **err);

struct exec_opts
{
  const char *process_file; /* --process */
  char **args;              /* or these, with the container's process as template */
  const char *cwd;
  char **env;
  const char *user; /* "UID[:GID]" */
  bool no_new_privs;
  bool detach;
  const char *pid_file;
  int preserve_fds;
  bool tty;                   /* -t: the process gets a pty (also process.terminal) */
  const char *console_socket; /* where the pty master goes; none: exec copies it to its stdio */
};
int container_exec (const char *root, const char *id, const struct exec_opts *e, int *ret_status,
                    capsule_error **err);

int container_kill (const char *root, const char *id, int sig, bool all, capsule_error **err);
int container_delete (const char *root, const char *id, bool force, capsule_error **err);
/* The same, with the poststop hooks taken from KNOWN (the spec the container was made from)
 * rather than reread from its bundle; KNOWN NULL reads the bundle. */
int container_delete_known (const char *root, const char *id, bool force, const struct spec *known,
                            capsule_error **err);
int container_pause (const char *root, const char *id, bool pause, capsule_error **err);
/* Change the resources of a running container (memory, swap, pids, cpu). */
int container_update (const char *root, const char *id, const struct spec_resources *r,
                      capsule_error **err);
/* The OCI state JSON of the container. */
int container_state (const char *root, const char *id, char **ret_json, capsule_error **err);
int container_stats (const char *root, const char *id, struct cgroup_stats *ret,
                     capsule_error **err);
int container_pids (const char *root, const char *id, pid_t **ret, size_t *ret_n,
                    capsule_error **err);

/* Pieces of create that restore (checkpoint.c) shares. */
#include <signal.h>
/* Make ROOT/ID (fails with EEXIST when the container exists); returns the directory. */
char *container_make_dir (const char *root, const char *id, capsule_error **err);
/* The record of a container being made from spec S, saved with creating = true, and its (not yet
 * created) cgroup in *RET_CG. */
struct container_state *container_record_new (const char *root, const char *id,
                                              const struct spec *s, struct cgroup **ret_cg,
                                              capsule_error **err);
int container_load_locked (const char *root, const char *id, struct container_state **ret,
                           int *ret_lock, enum container_status *ret_status, capsule_error **err);
/* The signals run and restore forward to the container's process while they wait for it. */
void container_forwarding_mask (sigset_t *mask);
/* The container's process has exited: say so when its cgroup saw an OOM kill, and delete the
 * container unless KEEP (poststop hooks from KNOWN, the spec it was made from, when not NULL). */
void container_exited (const char *root, const struct container_state *st, const struct spec *known,
                       bool keep);
/* Write PID into PATH (nothing when PATH is NULL); the error names --pid-file. */
int container_write_pid_file (const char *path, pid_t pid, capsule_error **err);
