/* capsule-shim: the JSON-RPC 2.0 server: clients on the unix socket, one object per line,
 * framing with a maximum message size, and dispatch through a method table it is given.  It
 * knows nothing of what the methods do.
 *
 * File descriptors may travel with a request (SCM_RIGHTS): they queue on the connection, in
 * order, and a method takes them from there; an answer may carry descriptors back. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "json.h"
#include "loop.h"
#include "rpc.h"

struct server;
struct client;

/* A request being answered.  A method that answers later keeps a copy (call_keep). */
struct call
{
  struct server *srv;
  uint64_t client_id; /* 0: nobody waits */
  char *id_json;      /* the request id as JSON; NULL for a notification */
};

typedef struct rpc_error *(*method_fn) (void *ctx, struct call *c, const json_value *params,
                                        char **ret_result);
struct method
{
  const char *name;
  method_fn fn;
  const struct param_spec *params;
  bool needs_answer; /* refused as a notification: its effect could never be learnt */
};

#define SERVER_FDS_MAX 8 /* descriptors that may wait on a connection */

struct server
{
  struct loop *loop;
  int listen_fd;
  struct loop_io listen_io;
  struct client *clients;
  int n_clients, max_clients;
  uint64_t next_client_id;
  uint64_t max_message;
  const struct method *methods;
  size_t n_methods;
  void *ctx;
};

int server_init (struct server *srv, struct loop *l, int listen_fd, int max_clients,
                 uint64_t max_message, const struct method *methods, size_t n_methods, void *ctx);
void server_release (struct server *srv);

struct call *call_keep (const struct call *c);
void call_free (struct call *c);
/* Answer with RESULT_JSON (taken), or with E (taken); FD >= 0 travels with the answer (taken). */
void call_reply (struct call *c, char *result_json);
void call_reply_fd (struct call *c, char *result_json, int fd);
void call_error (struct call *c, struct rpc_error *e);
/* A notification to the caller; dropped when it has too much unread already. */
void call_notify (struct call *c, const char *method, const char *params_json);
/* The oldest descriptor that came with the caller's requests, or -1. */
int call_take_fd (struct call *c);
