/* capsule-shim: the daemon.  One process, one event loop, no threads; its layers each call only
 * the one below and hear back through callbacks:
 *
 *   methods.c   the API: the method table, params, the tenant checked on every call, objects
 *               in OpenAI's shapes
 *   session.c   sessions: their states, queues of cells, sleep, records (store.c), files
 *   sandbox.c   one container and its executor channel; blocking work in workers (worker.c)
 *   server.c    JSON-RPC clients on the unix socket        loop.c   fds, timers, children
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "sandbox.h"
#include "server.h"
#include "session.h"
#include "tiers.h"

struct shim_config
{
  const char *socket_path;
  const char *state_dir;
  const char *image; /* "host" or an image directory */
  const char *tiers_path;
  const char *policy_dir;
  const char *executor_dir;
  const char *init_path;
  const char *sandbox_cgroup; /* cgroup v2: where sandboxes go (else beside the shim's leaf) */
  uint64_t tenant_pool;       /* 0 = from the tiers file */
  int64_t exec_timeout_default_ms, exec_timeout_max_ms, interrupt_grace_ms;
  int64_t startup_timeout_ms;
  uint64_t max_upload;
  int max_clients;
  int max_sessions;
  int64_t expired_retention_s;
  int64_t minute_s;
  uint64_t max_message;   /* bytes in one request line */
  uint32_t host_uid_base; /* container uid 0 → this host uid; the sandbox user 1000 → +1000 */
  int warm;
  const char *workspaces; /* "auto" (disk where the host can), "disk" or "tmpfs" */
};

struct shim
{
  struct shim_config cfg;
  struct loop loop;
  struct server server;
  struct sandbox_host host;
  struct sessions sessions;
  struct tiers tiers;
  int64_t started_ms;
};

/* methods.c */
extern const struct method shim_methods[];
extern const size_t shim_n_methods;
