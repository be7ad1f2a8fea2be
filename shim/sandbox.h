/* capsule-shim: the sandbox layer.  A sandbox is one OCI container made with libcapsule, its
 * capsule-init and executor, and the executor channel (newline-delimited JSON over the unix
 * socket in the session's run directory).  It knows nothing of sessions, tenants' pools or the
 * API: its owner gives it callbacks and hears from it through them.
 *
 * Everything that may block runs in a forked worker: making the container, tearing it down,
 * checkpointing and restoring it.  The loop only ever sees their ends. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "json.h"
#include "loop.h"
#include "rpc.h"
#include "tiers.h"
#include "worker.h"

#define SANDBOX_LOCK          ".worker-lock" /* in a session's directory, see sandbox.c */
#define SANDBOX_UID           1000           /* the unprivileged user inside */
#define SANDBOX_LINE_MAX      (32u << 20) /* an executor line: 2 x 1 MiB of output escaped, files */
#define SANDBOX_WORKER_MS     (10 * 60 * 1000) /* a worker running longer than this is killed */
#define SANDBOX_COMPLETE_MARK "capsule-complete"

/* What every sandbox of this shim shares. */
struct sandbox_host
{
  struct loop *loop;
  char *runtime_root;
  char *checkpoint_dir; /* STATE/checkpoints (root's alone) */
  char *image_root;     /* the rootfs of every sandbox */
  bool image_is_host;
  /* sessions' roots are overlays of the idmapped image (overlay.c), or read-only and why */
  bool overlay;
  char *lower_root, *lower_usr, *overlay_reason;
  /* workspaces are ext4 images on loop devices (workspace.c), or tmpfs and why; store_mode
     is --workspaces: "auto" (disk where the host can), "disk" (or the shim does not start),
     "tmpfs" */
  const char *store_mode;
  bool store_disk;
  char *store_reason;
  const char *executor_dir, *init_path;
  char *seccomp_profile; /* the policy's text, read once */
  char *cgroup_parent;   /* cgroup v2: sandboxes go below this */
  uint32_t host_uid_base;
  int64_t startup_timeout_ms;
  struct sandbox *disposed; /* let go by their owners, being torn down */
};

enum sandbox_state
{
  SB_NONE,     /* no container */
  SB_STARTING, /* a worker makes the container, or we wait for the executor's socket */
  SB_READY,    /* connected to the executor */
  SB_STOPPING, /* a worker tears the container down */
  SB_CHECKPOINTING,
  SB_ASLEEP, /* on disk only (a complete checkpoint image) */
  SB_RESTORING,
};

struct sandbox_events
{
  /* connected to the executor (after a start, a restore or an adoption) */
  void (*ready) (void *owner);
  /* a line from the executor, parsed (never deeper or larger than the JSON limits) */
  void (*message) (void *owner, const json_value *msg);
  /* the interpreter died on its own (or stopped answering); the container is gone: state NONE */
  void (*exited) (void *owner, bool oom, int status);
  /* a start or a restore failed: state NONE, or ASLEEP when the image is still there */
  void (*failed) (void *owner, capsule_error *err);
  /* sandbox_stop finished: state NONE */
  void (*stopped) (void *owner);
  /* a checkpoint ended: ERR NULL and state ASLEEP, or ERR and the sandbox as criu left it
     (READY again soon, or NONE) */
  void (*slept) (void *owner, capsule_error *err);
};

struct sandbox
{
  struct sandbox_host *host;
  const struct sandbox_events *ev;
  void *owner;
  char *id, *dir, *run_dir, *data_dir, *tenant;
  const struct tier *tier;
  enum sandbox_state state;

  pid_t pid; /* capsule-init */
  int pidfd;
  struct loop_io pid_io;
  uint64_t oom_kills; /* memory.events oom_kill when it started */

  int fd; /* the executor connection */
  struct loop_io io;
  struct line_reader in;
  struct buf out;
  struct loop_timer connect_timer;
  struct loop_timer more_timer;  /* lines already read wait for the next turn */
  struct loop_timer ended_timer; /* a teardown done in the loop: its end is told from the loop */
  int64_t ready_deadline_ms;

  struct worker worker;
  int starts;         /* interpreters started (not counting restores) */
  bool restored;      /* the last ready() followed a restore */
  int64_t restore_ms; /* ... which took this long */
  bool exit_oom;      /* why it died, told once the teardown is done */
  int exit_status;
  bool exit_pending;   /* the teardown after a death: tell exited(), not stopped() */
  capsule_error *fail; /* a start or restore failed: said once the teardown is done */
  bool keep_image;     /* stopping: leave the checkpoint image (restore failed, retry later) */
  bool disposing;      /* nobody owns it: free it once torn down */
  struct sandbox *next_disposed;
};

int sandbox_host_init (struct sandbox_host *h, const char *state_dir, const char *image,
                       const char *policy_dir, capsule_error **err);
void sandbox_host_release (struct sandbox_host *h);
/* Tear down what a shim that died left: containers in the runtime root none of KEEP_IDS names. */
void sandbox_host_sweep (struct sandbox_host *h, bool (*keep) (void *data, const char *id),
                         void *data);
/* Block until disposed sandboxes are gone (the shim stops). */
void sandbox_host_drain (struct sandbox_host *h);

/* DIR holds bundle/, run/ (the executor's socket) and data/ (/mnt/data). */
struct sandbox *sandbox_new (struct sandbox_host *h, const char *id, const char *dir,
                             const struct tier *tier, const char *tenant,
                             const struct sandbox_events *ev, void *owner);
/* The owner lets go: stop it, then remove DIR (unmounting what is mounted there) unless
   REMOVE_DIR is false, and free it. */
void sandbox_dispose (struct sandbox *sb, bool remove_dir);
/* The shim stops: close the connection, leave the sandbox running for the next shim. */
void sandbox_detach_free (struct sandbox *sb);

int sandbox_start (struct sandbox *sb, capsule_error **err);
void sandbox_stop (struct sandbox *sb);
int sandbox_checkpoint (struct sandbox *sb, capsule_error **err);
int sandbox_restore (struct sandbox *sb, capsule_error **err);
/* A shim restarted: take the sandbox up where the last one left it (running: connect; a
 * complete image: ASLEEP; else NONE). */
void sandbox_adopt (struct sandbox *sb);

int sandbox_send (struct sandbox *sb, const char *line);
/* Every thread of the interpreter at nice NICE (19 while a warm sandbox primes, 0 once claimed). */
void sandbox_set_nice (struct sandbox *sb, int nice);
/* Send SIG to capsule-init (which passes INT and TERM on to the interpreter). */
void sandbox_signal (struct sandbox *sb, int sig);
/* The executor's connection dropped on purpose: reconnect (a new connection replaces ours). */
void sandbox_reconnect (struct sandbox *sb);
bool sandbox_image_complete (const struct sandbox *sb);

/* sandbox-config.c: the image every sandbox uses (the host image is made under STATE/images),
   and the OCI config of one sandbox. */
int sandbox_host_image (struct sandbox_host *h, const char *state_dir, const char *image,
                        capsule_error **err);
char *sandbox_config (const struct sandbox_host *h, const struct sandbox *sb);
const char *sandbox_state_name (enum sandbox_state st);
