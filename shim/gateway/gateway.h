/* capsule-gateway: OpenAI's Containers, Container Files and Files API over HTTP, in front of
 * capsule-shim's socket.  One thread per HTTP connection (libmicrohttpd), each with its own
 * connection to the shim, so a call blocks only the client that made it. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json.h"
#include "rpc.h"

/* ------------------------------------------------------------------ keys (keys.c) */

#define KEY_TENANT_MAX 64

struct key_entry
{
  unsigned char digest[32]; /* sha256 of the key */
  char tenant[KEY_TENANT_MAX + 1];
};

struct keys
{
  struct key_entry *e;
  size_t n;
};

/* Read FILE: lines "sha256:<64 hex digits> TENANT", '#' comments, blank lines. */
int keys_load (const char *path, struct keys *ret, capsule_error **err);
void keys_release (struct keys *k);
/* The tenant of KEY (copied into RET_TENANT), comparing with every entry in constant time.
 * Returns false when no entry matches. */
bool keys_lookup (const struct keys *k, const char *key, size_t key_len,
                  char ret_tenant[KEY_TENANT_MAX + 1]);
bool tenant_name_valid (const char *t);
void sha256_hex (const void *data, size_t len, char ret[65]);

/* ------------------------------------------------------------------ deadlines (guard.c) */

/* Where a connection is: sending its request line and headers, its body, reading an answer.
 * A request must be in within --timeout, its body at --min-rate bytes a second after that; the
 * guard thread shuts down the socket of a connection that is late (see guard.c). */
enum guard_phase
{
  GUARD_HEADERS,
  GUARD_BODY,
  GUARD_ANSWER,
  GUARD_CUT,
};

struct guard
{
  int fd;
  enum guard_phase phase;
  int64_t since_ms; /* CLOCK_MONOTONIC, when the phase began */
  uint64_t bytes;   /* of the body so far */
  struct guard *prev, *next;
};

/* The request line and headers of a request, at most (431 beyond), and libmicrohttpd's memory
   for a connection, which must hold them and more. */
#define HEADERS_MAX     (64u << 10)
#define CONNECTION_POOL (1u << 20)

void guard_configure (unsigned timeout_s, uint64_t min_rate);
int guard_start (capsule_error **err);
void guard_add (struct guard *g, int fd); /* a new connection: its headers are due */
void guard_remove (struct guard *g);      /* before libmicrohttpd closes its socket */
void guard_request (struct guard *g);     /* the headers are in: the body is due */
void guard_body (struct guard *g, size_t n);
void guard_answer (struct guard *g); /* the request is in: no deadline while it is answered */
void guard_idle (struct guard *g);   /* answered: the next request's headers are due */

/* ------------------------------------------------------------------ the shim (shimc.c) */

struct shimc
{
  int fd;
  int in_fd;   /* a descriptor the last answer carried (SCM_RIGHTS), or -1 */
  int wait_ms; /* how long the shim may be silent in a call (0: --shim-timeout) */
  int tick_ms; /* > 0: shimc_next also returns (a NULL message) after this long without one */
  int64_t quiet_since_ms; /* since when the shim said nothing (the ticks do not count) */
  uint64_t next_id;
  struct line_reader in;
};

/* A notification the shim sent while a call was under way (exec.output); MSG is NULL for a
   tick (tick_ms). */
typedef int (*shimc_notify_fn) (void *ctx, const json_value *msg);

/* Call METHOD with PARAMS_JSON (an object's text) and wait for its answer, connecting first if
 * needed.  On success *RET_MSG is the whole answer (with "result" or "error").  A broken
 * connection is closed (the next call makes a new one) and reported in ERR. */
int shimc_call (struct shimc *c, const char *socket_path, const char *method,
                const char *params_json, shimc_notify_fn notify, void *ctx, json_value **ret_msg,
                capsule_error **err);
/* The same with descriptor SEND_FD (not taken) passed along (SCM_RIGHTS). */
int shimc_call_fd (struct shimc *c, const char *socket_path, const char *method,
                   const char *params_json, int send_fd, shimc_notify_fn notify, void *ctx,
                   json_value **ret_msg, capsule_error **err);
/* The descriptor the last answer carried (taken), or -1. */
int shimc_take_fd (struct shimc *c);
/* Send without waiting: the answer is read by shimc_next. */
int shimc_send (struct shimc *c, const char *socket_path, const char *method,
                const char *params_json, uint64_t *ret_id, capsule_error **err);
/* The next message of the connection (a notification or an answer); with tick_ms, NULL when
   that long passed without one. */
int shimc_next (struct shimc *c, json_value **ret_msg, capsule_error **err);
int shimc_send_fd (struct shimc *c, const char *socket_path, const char *method,
                   const char *params_json, int fd, uint64_t *ret_id, capsule_error **err);
void shimc_close (struct shimc *c);

/* ------------------------------------------------------------------ the Files API store (store.c) */

struct fstore
{
  char *dir; /* STATE/files: one directory per tenant */
  uint64_t quota;
  pthread_mutex_t lock; /* quota checks and listing against uploads */
};

struct fobject
{
  char id[64];
  char *filename;
  char *purpose;
  int64_t created_at;
  uint64_t seq; /* creation order within a second */
  uint64_t bytes;
};
void fobject_free (struct fobject *o);

int fstore_init (struct fstore *s, const char *state_dir, uint64_t quota, capsule_error **err);
/* An upload in progress: a hidden file in the tenant's directory, renamed into place by
 * fstore_commit, removed by fstore_abort (and at start, when a gateway died midway). */
struct fupload
{
  int fd;
  char *tmp_path;
  char *tenant;
  uint64_t bytes;
};
int fstore_begin (struct fstore *s, const char *tenant, struct fupload *u, capsule_error **err);
void fstore_abort (struct fupload *u);
/* Returns 0, or -1 with ERR (status EDQUOT: over the tenant's quota). */
int fstore_commit (struct fstore *s, struct fupload *u, const char *filename, const char *purpose,
                   struct fobject **ret, capsule_error **err);
/* NULL (errno ENOENT) when the tenant has no such file. */
struct fobject *fstore_get (struct fstore *s, const char *tenant, const char *id);
/* Every file of TENANT in creation order. */
int fstore_list (struct fstore *s, const char *tenant, struct fobject ***ret, size_t *ret_n);
int fstore_open (struct fstore *s, const char *tenant, const char *id);
int fstore_delete (struct fstore *s, const char *tenant, const char *id);
char *fobject_json (const struct fobject *o);
void w_fobject (json_writer *w, const struct fobject *o);

/* ------------------------------------------------------------------ the server (api.c) */

struct gateway
{
  const char *shim_socket;
  const char *keys_path;
  const char *public_url; /* for image URLs; NULL: from the request's Host */
  uint64_t max_upload;
  uint64_t max_body;      /* JSON bodies */
  int shim_wait_ms;       /* --shim-timeout */
  uint64_t upload_budget; /* bytes of all uploads under way at once */
  uint64_t uploading;
  bool tls;
  struct fstore store;
  char *auto_dir; /* STATE/auto: auto mode's context keys */
  pthread_mutex_t keys_lock;
  struct keys keys;
};

extern struct gateway gw;

/* Write V (a parsed value) again. */
void w_value (json_writer *w, const json_value *v);

/* The Content-Type (MCP's mimeType) of a file by its name's extension; octet-stream else. */
const char *content_type_of (const char *name);
