/* capsule-shim: the session layer.  A session is a container of the API: its states (warm,
 * running, expired, deleted; its sandbox live, asleep or being made), the queue of cells, the
 * tenant pool charge, the files registry and the record on disk that lets a new shim take it
 * up.  It drives its sandbox (sandbox.h) and tells its callers through the callbacks they gave. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "files.h"
#include "json.h"
#include "loop.h"
#include "rpc.h"
#include "sandbox.h"
#include "tiers.h"

struct session;
struct sessions;

struct session_config
{
  const char *state_dir;
  int64_t minute_s; /* seconds in an expiry "minute": 60, less in tests */
  int64_t expired_retention_s;
  int64_t exec_timeout_default_ms, exec_timeout_max_ms, interrupt_grace_ms;
  int max_sessions;
  int warm;
  uint32_t host_uid_base;
};

enum session_status
{
  SESSION_WARM, /* a sandbox started ahead of demand, not yet anyone's container */
  SESSION_RUNNING,
  SESSION_EXPIRED,
  SESSION_DELETED
};

/* A call answered later: the create waiting for its interpreter, a checkpoint for its dump.
   FN is called exactly once: with the session, or with an error (then SE may be NULL). */
typedef void (*session_done_fn) (void *ctx, struct session *se, struct rpc_error *e);
struct session_wait
{
  session_done_fn fn;
  void *ctx;
};

enum cell_phase
{
  CELL_QUEUED,
  CELL_SENT,
  CELL_INTERRUPTING /* timed out: SIGINT sent, waiting out the grace period */
};

struct cell;
/* How a cell ended.  The files are the registry's, valid during the callback. */
struct cell_outcome
{
  const char *status;         /* completed failed timeout interrupted oom */
  const json_value *result;   /* the executor's result line, or NULL */
  const char *ename, *evalue; /* an error of the shim's own (timeout kill, OOM, crash) */
  struct cfile **images, **files;
  size_t n_images, n_files;
  int64_t duration_ms;
};
/* Output of a running cell (stream: true); and its end: an outcome, or E when it never ran. */
typedef void (*cell_output_fn) (void *ctx, struct session *se, struct cell *c, const char *stream,
                                const char *text);
typedef void (*cell_done_fn) (void *ctx, struct session *se, struct cell *c,
                              const struct cell_outcome *o, struct rpc_error *e);

struct cell
{
  char *exec_id, *code;
  int64_t timeout_ms;
  bool stream;
  enum cell_phase phase;
  int64_t started_ms, deadline_ms; /* the deadline holds from the first send, whatever happens */
  int64_t not_before_ms;           /* the interpreter said busy: send again then */
  bool busy_wait;                  /* ... and it has not taken this cell yet */
  bool timed_out;
  bool restarted; /* the interpreter was (re)started for or during this call */
  bool restored;  /* the session was asleep and was restored for this call */
  int64_t restore_ms;
  char *notice; /* what the caller must know beyond the outcome (a lost interpreter) */
  cell_output_fn output;
  cell_done_fn done;
  void *ctx;
  struct cell *next;
};

struct session
{
  struct sessions *ss;
  uint64_t seq; /* creation order, for stable listing */
  char *id, *name, *tenant;
  char *context_key; /* auto mode: the frontend's key that finds this container again */
  const struct tier *tier;
  int64_t created_at, last_active_at, saved_active_at;
  int64_t expires_minutes;
  int64_t ended_at; /* when it expired */
  enum session_status status;
  char *dir, *data_dir, *run_dir;
  bool data_mounted, run_mounted;
  bool charged; /* its tier is charged to the tenant pool */

  struct sandbox *sb; /* NULL once it ended */
  struct cell *queue; /* head runs; the rest wait */
  struct loop_timer cell_timer;
  bool restore_pending_report; /* the next cell says restored */
  int64_t restore_ms;
  int restore_failures;
  bool sleep_failed; /* a checkpoint failed: no more tries on idleness */
  bool waking;       /* a restore runs for it */
  bool priming;      /* a warm sandbox imports the data stack (tiers.json "prime") */
  bool primed;       /* ... and has */
  char *lost_reason; /* the next start says interpreter_restarted, and why */
  struct session_wait wait_ready, wait_sleep;
  struct files files;
  bool record_broken; /* a record that could not be read: only an honest expiry is left */
  struct session *next;
};

struct sessions
{
  struct loop *loop;
  struct sandbox_host *host;
  struct session_config cfg;
  struct tiers *tiers;
  struct pools pools;
  struct session *list;
  uint64_t next_seq;
  struct loop_timer tick, warm_timer;
  bool warm_failed, stopping;
  uint64_t warm_claims;         /* creates served by a warm sandbox */
  char *checkpoint_unavailable; /* why sessions cannot sleep here; NULL when they can */
};

void sessions_init (struct sessions *ss, struct loop *l, struct sandbox_host *h,
                    struct tiers *tiers, const struct session_config *cfg);
/* Take up the sessions recorded under the state directory; returns how many. */
int sessions_load (struct sessions *ss);
void sessions_refill_warm (struct sessions *ss);
/* The shim stops: records saved, sandboxes left running for the next shim, warm ones gone. */
void sessions_shutdown (struct sessions *ss);

struct session *sessions_find (struct sessions *ss, const char *id);
struct session *sessions_find_context (struct sessions *ss, const char *tenant, const char *key);
int sessions_count (struct sessions *ss, enum session_status st);

/* A new running session of TIER for TENANT (a warm sandbox when one waits), charged to the
   pool.  It is ready when session_ready() says so; else session_await_ready. */
struct rpc_error *session_create (struct sessions *ss, const char *name, const char *tenant,
                                  const struct tier *tier, int64_t minutes, struct session **ret);
/* Start its interpreter (after the files were copied in). */
struct rpc_error *session_start (struct session *se);
bool session_ready (const struct session *se);
void session_await_ready (struct session *se, session_done_fn fn, void *ctx);

/* Any operation on a container refreshes last_active_at (and the record). */
void session_touch (struct session *se);
/* A file was written into its workspace (an upload): registered and recorded. */
struct cfile *session_file_written (struct session *se, const char *rel, uint64_t bytes,
                                    bool from_user);
void session_file_deleted (struct session *se, struct cfile *f);
void session_rescan (struct session *se);

/* Queue a cell; it is answered through C->done. */
struct rpc_error *session_exec (struct session *se, struct cell *c);
/* A fresh interpreter for the next cell (variables gone, files kept); refused while a cell
   runs or waits. */
struct rpc_error *session_reset (struct session *se);
/* SIGINT to the running cell; false when none runs. */
bool session_interrupt (struct session *se);
/* Put it to sleep now; FN hears when it is on disk. */
struct rpc_error *session_checkpoint (struct session *se, session_done_fn fn, void *ctx);
/* End it: DELETED is forgotten at once (the caller frees nothing), expired stays listed. */
void session_delete (struct session *se);
void session_expire (struct session *se, const char *why);

const char *session_sandbox_state (const struct session *se);
void cell_free (struct cell *c);

/* Within the layer: a new session object in the list. */
struct session *session_alloc (struct sessions *ss, const char *id, const struct tier *tier,
                               enum session_status status);

/* store.c: the record on disk (STATE/sessions/ID/record.json) */
int store_save (struct session *se);
struct session *store_load (struct sessions *ss, const char *dir, const char *id);
