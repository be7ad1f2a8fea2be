/* capsule-gateway: the Model Context Protocol server (mcp.c), its transports over HTTP at /mcp
 * (mcp-http.c) and over stdin/stdout (mcp-stdio.c).  An MCP session owns one sandbox of the
 * shim, made on first use and deleted when the session ends or expires. */
#pragma once

#include <stdbool.h>

#include "gateway.h"
#include "json.h"

#define MCP_LATEST_VERSION "2025-06-18"

/* JSON-RPC's error codes, and the one for a request the client cancelled */
#define MCP_PARSE_ERROR      -32700
#define MCP_INVALID_REQUEST  -32600
#define MCP_METHOD_NOT_FOUND -32601
#define MCP_INVALID_PARAMS   -32602
#define MCP_INTERNAL_ERROR   -32603
#define MCP_SERVER_ERROR     -32000
#define MCP_CANCELLED        -32800

struct mcp_session;

/* Another message for the client while a request is handled (a progress notification): its
   JSON text, without a newline. */
typedef void (*mcp_notify_fn) (void *ctx, const char *json);

/* What a request is handled with: a connection to the shim (the caller's) and, when the
   transport can send more than the answer, where notifications go. */
struct mcp_ctx
{
  struct shimc *shim;
  mcp_notify_fn notify;
  void *notify_ctx;
};

struct mcp_config
{
  int idle_s;          /* a session unused this long ends (and its sandbox goes) */
  uint64_t file_max;   /* upload_file, download_file, resources/read, images */
  size_t max_sessions; /* of the whole gateway */
  size_t max_per_tenant;
};
extern struct mcp_config mcp_cfg;

/* Start the thread that ends idle sessions. */
int mcp_start (capsule_error **err);
/* End every session (their sandboxes are deleted): the gateway stops. */
void mcp_shutdown (void);

/* A new session of TENANT, held once (mcp_session_unref).  LISTED: in the map that
   mcp_session_find looks in (HTTP); stdio's only session is not.  NULL with a reason when the
   caps are reached. */
struct mcp_session *mcp_session_new (const char *tenant, bool listed, capsule_error **err);
/* The session ID of TENANT, held once; NULL when there is none (also: another tenant's). */
struct mcp_session *mcp_session_find (const char *id, const char *tenant);
const char *mcp_session_id (const struct mcp_session *s);
/* The tier its sandbox gets (before it has one): MEM is 1g, 4g, 16g or 64g. */
bool mcp_session_set_tier (struct mcp_session *s, const char *mem);
bool mcp_tier_valid (const char *mem);
const char *mcp_session_protocol (const struct mcp_session *s);
void mcp_session_unref (struct mcp_session *s);
/* End it now: out of the map, its sandbox deleted through C. */
void mcp_session_end (struct mcp_session *s, struct shimc *c);

enum mcp_kind
{
  MCP_BAD,
  MCP_REQUEST,
  MCP_NOTIFICATION,
  MCP_RESPONSE, /* a client's answer (we ask nothing): dropped */
};

/* Parse one message (LEN bytes at TEXT, a NUL after them; a NUL byte among them is refused).
   On MCP_BAD, *RET_ERROR is the JSON-RPC error answer to send (a parse error, a batch, no valid
   request); else *RET_MSG is the message. */
enum mcp_kind mcp_parse (const char *text, size_t len, json_value **ret_msg, char **ret_error);
const char *mcp_method (const json_value *msg);

/* A request's answer (result or error) as JSON text; NULL when the client cancelled it. */
char *mcp_request (struct mcp_session *s, const json_value *msg, struct mcp_ctx *x);
/* A notification: initialized, cancelled (the cell it names is interrupted). */
void mcp_notification (struct mcp_session *s, const json_value *msg, struct mcp_ctx *x);

/* An error answer: ID_JSON is the request's id as JSON ("null" for none). */
char *mcp_error_text (const char *id_json, int code, const char *message);
bool mcp_version_supported (const char *v);

/* The stdio transport (mcp-stdio.c): one session on stdin and stdout, until stdin ends. */
int mcp_stdio_main (const char *tenant, const char *memory_limit);
