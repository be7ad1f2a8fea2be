/* capsule-shim: the daemon's shared types.
 *
 * One process, one epoll loop, no threads: every socket is non-blocking, every wait is a deadline
 * the loop keeps, so a runaway cell in one session never delays a call on another.  Creating a
 * sandbox is a libcapsule call (a few milliseconds in this thread); everything slower (the
 * interpreter starting, a cell running) is waited for as events. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpc.h"
#include "tiers.h"

struct shim;
struct session;

enum watch_kind
{
  W_LISTEN,
  W_CLIENT,
  W_SIGNAL,
  W_EXECUTOR,
  W_PIDFD /* a re-adopted sandbox, not our child: its exit comes as a pidfd event */
};

struct watcher
{
  enum watch_kind kind;
  void *obj;
};

struct client
{
  uint64_t id;
  int fd;
  struct line_reader in;
  struct buf out;
  bool want_out;
  struct watcher w;
  struct client *next;
};

/* A call whose answer comes later: which client, which request id. */
struct call
{
  uint64_t client_id; /* 0 = nobody waits */
  char *id_json;
};

struct cfile
{
  char *id;
  char *path; /* relative to /mnt/data */
  uint64_t bytes;
  int64_t created_at;
  bool from_user;
};

enum exec_phase
{
  EXEC_QUEUED,
  EXEC_RUNNING,
  EXEC_INTERRUPTING /* timed out: SIGINT sent, waiting out the grace period */
};

struct exec_call
{
  struct call call;
  char *exec_id;
  char *code;
  int64_t timeout_ms;
  bool stream;
  enum exec_phase phase;
  int64_t started_ms;
  int64_t deadline_ms;
  bool timed_out;
  int64_t not_before_ms; /* the interpreter was still busy (a cell from before a restart) */
  bool restarted;        /* the interpreter was (re)started for or during this call */
  bool restored;         /* the session was asleep and was restored for this call */
  int64_t restore_ms;
  struct exec_call *next;
};

enum sandbox_state
{
  SB_NONE,     /* no container */
  SB_STARTING, /* container up, waiting for the executor's socket */
  SB_READY,
  SB_CHECKPOINTING, /* a worker is dumping it to disk (CRIU) */
  SB_ASLEEP,        /* on disk only: its memory is free, its tier credited to the pool */
  SB_RESTORING,     /* a worker is bringing it back */
};

enum session_status
{
  SESSION_WARM, /* a sandbox started ahead of demand, not yet anyone's container */
  SESSION_RUNNING,
  SESSION_EXPIRED,
  SESSION_DELETED
};

struct session
{
  uint64_t seq; /* creation order, for stable listing */
  char *id, *name, *tenant;
  const struct tier *tier;
  int64_t created_at, last_active_at;
  int64_t expires_minutes;
  enum session_status status;
  int64_t ended_at; /* when it expired */
  char *dir, *data_dir, *run_dir;
  bool data_mounted;
  bool run_mounted; /* the run directory is a tiny tmpfs: the sandbox may write there */
  bool charged;     /* its tier is charged to the tenant pool */

  enum sandbox_state sb;
  pid_t pid; /* capsule-init of the sandbox */
  int pidfd; /* re-adopted sandboxes only */
  struct watcher pid_w;
  int64_t saved_active_at; /* last_active_at in the record on disk */
  uint64_t oom_kills;      /* memory.events oom_kill seen so far */
  int64_t ready_deadline_ms;
  int64_t next_connect_ms;
  int exec_fd;
  struct line_reader exec_in;
  struct buf exec_out;
  bool exec_want_out;
  struct watcher w;
  uint64_t next_request;
  int starts;

  struct call pending_create; /* containers.create waits for the interpreter */
  struct call pending_sleep;  /* containers.checkpoint waits for the dump */
  pid_t cr_pid;               /* the checkpoint or restore worker */
  int64_t cr_started_ms;
  int64_t restore_ms; /* the last wake took this long; reported by the next result */
  bool restored_unreported;
  bool sleep_failed;       /* a checkpoint failed: do not try again on idleness */
  struct exec_call *queue; /* head runs; the rest wait */

  struct cfile *files;
  size_t n_files;

  struct session *next;
};

struct shim_config
{
  const char *socket_path;
  const char *state_dir;
  const char *image; /* "host" or an image directory */
  const char *tiers_path;
  const char *policy_dir;
  const char *executor_dir; /* shim/executor */
  const char *init_path;    /* capsule-init */
  uint64_t tenant_pool;     /* 0 = from the tiers file */
  int64_t exec_timeout_default_ms, exec_timeout_max_ms, interrupt_grace_ms;
  int64_t startup_timeout_ms;
  uint64_t max_upload;
  int max_clients;
  int max_sessions;
  int64_t expired_retention_s;
  int64_t minute_s;       /* seconds in an expiry "minute": 60, less in tests */
  uint64_t max_message;   /* bytes in one request line */
  uint32_t host_uid_base; /* container uid 0 → this host uid; the sandbox user 1000 → +1000 */
  int warm;               /* sandboxes of the default tier kept started ahead of demand */
};

struct shim
{
  struct shim_config cfg;
  struct tiers tiers;
  struct pools pools;
  char *runtime_root;
  char *cgroup_parent; /* cgroup v2: sandboxes go below this (the shim's own, delegated) */
  char *image_root;    /* the rootfs used by every sandbox */
  bool image_is_host;
  int epfd, listen_fd, signal_fd;
  struct watcher listen_w, signal_w;
  struct client *clients;
  int n_clients;
  uint64_t next_client_id;
  struct session *sessions;
  uint64_t next_seq;
  bool warm_failed;       /* the last warm start failed: wait for the next create to try again */
  int64_t warm_refill_ms; /* when to start replacements for claimed warm sandboxes (0: none) */
  bool stopping;
  int64_t started_ms;
  char *checkpoint_unavailable; /* why sessions cannot sleep here; NULL when they can */
};

/* server.c */
void shim_send (struct shim *s, uint64_t client_id, char *text); /* takes TEXT */
/* A notification: dropped when the client has too much unread already. */
void shim_notify (struct shim *s, uint64_t client_id, char *text);
void shim_reply (struct shim *s, struct call *c, char *result_json);
void shim_reply_error (struct shim *s, struct call *c, struct rpc_error *e);
void shim_watch (struct shim *s, int fd, struct watcher *w, bool out);
void shim_unwatch (struct shim *s, int fd);
struct client *shim_client (struct shim *s, uint64_t id);

/* methods.c: the method table */
typedef struct rpc_error *(*method_fn) (struct shim *s, struct call *c, const json_value *params,
                                        char **ret_result);
struct method
{
  const char *name;
  method_fn fn;
  const struct param_spec *params;
};
const struct method *methods_find (const char *name);

/* sandbox.c: the container behind a session */
int sandbox_prepare_image (struct shim *s, capsule_error **err);
int sandbox_start (struct shim *s, struct session *se, capsule_error **err);
void sandbox_stop (struct shim *s, struct session *se);
/* The pid of SE's container process when the runtime's record says it runs, else 0. */
pid_t sandbox_running (struct shim *s, struct session *se);
/* SE's sandbox runs: connect to its executor from the loop (SB_STARTING, now, with the startup
 * deadline). */
void sandbox_await_executor (struct shim *s, struct session *se);
/* Close our connection to the executor (it waits for the next). */
void sandbox_detach (struct shim *s, struct session *se);
/* Called from the loop: connect attempts, executor I/O, deadlines. */
void sandbox_on_timer (struct shim *s, struct session *se, int64_t now_ms);
void sandbox_on_io (struct shim *s, struct session *se, uint32_t events);
void sandbox_on_exit (struct shim *s, struct session *se, int status);
/* Send SIG to the sandbox's init (which passes INT and TERM on to the interpreter). */
void sandbox_signal (struct session *se, int sig);
/* A re-adopted sandbox (not our child) exited. */
void sandbox_on_pidfd (struct shim *s, struct session *se);
int64_t sandbox_next_deadline (struct session *se);
int sandbox_send (struct shim *s, struct session *se, const char *line);

/* execution.c */
void execution_enqueue (struct shim *s, struct session *se, struct exec_call *x);
void execution_kick (struct shim *s, struct session *se);
void execution_on_line (struct shim *s, struct session *se, const json_value *msg);
void execution_on_timer (struct shim *s, struct session *se, int64_t now_ms);
/* The interpreter died (OOM, crash, killed): answer the running call, restart. */
void execution_on_sandbox_death (struct shim *s, struct session *se, bool oom, int status);
void execution_fail_all (struct shim *s, struct session *se, struct rpc_error *e);
void exec_call_free (struct exec_call *x);

/* sessions.c */
struct session *session_find (struct shim *s, const char *id);
void session_touch (struct session *se);
void session_expire (struct shim *s, struct session *se, bool deleted);
void session_free (struct session *se);
void sessions_expire_due (struct shim *s, int64_t now);
char *session_object_json (struct shim *s, struct session *se);
void session_ready (struct shim *s, struct session *se);
void session_start_failed (struct shim *s, struct session *se, capsule_error *err);
/* Start sandboxes until cfg.warm of them wait, ready, for containers.create. */
void sessions_refill_warm (struct shim *s);
/* A warm sandbox died or failed: drop it (a later create refills). */
void session_drop_warm (struct shim *s, struct session *se);

/* sleep.c: idle sessions checkpointed to disk and restored on the next call */
void sleep_init (struct shim *s);
/* Checkpoint the sessions idle for the tiers file's checkpoint_after_seconds. */
void sessions_sleep_due (struct shim *s, int64_t now);
/* Start putting SE to sleep (a ready sandbox with nothing queued). */
struct rpc_error *session_sleep (struct shim *s, struct session *se);
/* Start waking SE: charges its tier to the pool again (the pool's error when that fails). */
struct rpc_error *session_wake (struct shim *s, struct session *se);
/* A child exited: true when it was a checkpoint or restore worker (handled). */
bool sleep_on_child (struct shim *s, pid_t pid, int status);
/* Stop a worker of SE, if one runs. */
void sleep_cancel (struct shim *s, struct session *se);
/* SE's checkpoint image directory, and whether a complete image is there. */
char *sleep_image_dir (struct shim *s, struct session *se);
bool sleep_image_complete (struct shim *s, struct session *se);
void sleep_image_remove (struct shim *s, struct session *se);
/* Wait for the workers still running (the shim is stopping) and take their results. */
void sleep_wait_workers (struct shim *s);

/* store.c: records on disk, re-adoption after a restart */
int store_save (struct shim *s, struct session *se);
/* Re-adopt the sessions recorded under the state directory; returns how many. */
int store_load_all (struct shim *s);
/* Undo what a session holds on the host (sandbox, workspace, directory, pool charge). */
void session_discard (struct shim *s, struct session *se);

/* files.c */
#define FILES_MAX 10000 /* files a session's registry tracks */
struct cfile *files_find (struct session *se, const char *id);
struct cfile *files_register (struct session *se, const char *rel_path, uint64_t bytes,
                              bool from_user);
void files_w_object (json_writer *w, struct session *se, const struct cfile *f);
void files_release (struct session *se);
/* Open the session's data directory (O_PATH) */
int files_data_fd (struct session *se, capsule_error **err);
/* Normalise a user path: relative to /mnt/data or absolute under it; refuses "..", NUL, empty
 * components, over-long names.  Returns the path relative to the data dir. */
struct rpc_error *files_normalise (const char *path, char **ret_rel);
/* Write DATA as REL (through a temporary file and rename), owned by UID. */
int files_write (struct session *se, const char *rel, const void *data, size_t len, uid_t uid,
                 capsule_error **err);
int files_read (struct session *se, const char *rel, size_t max, char **ret, size_t *ret_len,
                capsule_error **err);
int files_unlink (struct session *se, const char *rel, capsule_error **err);
/* Bring the registry in line with what is on disk. */
void files_rescan (struct session *se);
