/* capsule-shim: work that may block (making or tearing down a container, a checkpoint, a
 * restore, formatting a workspace) runs in a forked worker process, so the loop never waits on
 * it.  The worker runs FN and exits; its exit and the error it reported come back as DONE.
 *
 * A worker holds none of the shim's fds (only its error pipe), has its own process group (a
 * deadline or a cancel kills it with whatever it started) and default signal handling. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "loop.h"

struct worker;
typedef int (*worker_fn) (void *arg, capsule_error **err);
/* OK is true when FN returned 0; else ERR says why (the worker's error, or how it died). */
typedef void (*worker_done_fn) (struct worker *w, bool ok, capsule_error *err);

struct worker
{
  struct loop *loop;
  pid_t pid; /* 0 when none runs */
  int err_fd;
  int64_t started_ms;
  int64_t deadline_ms; /* when it is killed (loop_now_ms's clock) */
  const char *what;    /* "stop", "checkpoint", ... for messages */
  struct loop_child child;
  struct loop_timer deadline;
  worker_done_fn done;
  void *data;
};

void worker_init (struct worker *w, struct loop *l, worker_done_fn done, void *data);
/* Start FN(ARG) in a worker; at most DEADLINE_MS later it is killed (and DONE says so). */
int worker_start (struct worker *w, const char *what, worker_fn fn, void *arg, int64_t deadline_ms,
                  capsule_error **err);
static inline bool
worker_running (const struct worker *w)
{
  return w->pid > 0;
}
/* Kill the worker's process group; DONE is not called.  The loop reaps it later. */
void worker_cancel (struct worker *w);
/* Block until the worker ends and call DONE (the shim is stopping). */
void worker_wait (struct worker *w);
