/* capsule-shim: JSON-RPC 2.0, one JSON object per line over a unix stream socket.
 *
 * This file holds the framing (a line buffer with a maximum message size), the error object
 * (OpenAI's {message, type, param, code} inside error.data, with the HTTP status a gateway
 * would answer), and the method table: {name, handler, params schema}. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json.h"

#define RPC_MAX_MESSAGE (96u << 20) /* base64 of a 64 MiB upload, and some */

/* A growable byte buffer: its bytes are data[off, len).  Consuming from the front moves OFF,
 * so sending a large answer in pieces or taking many lines costs no copy per piece. */
struct buf
{
  char *data;
  size_t off, len, cap;
};
void buf_append (struct buf *b, const void *data, size_t len);
void buf_consume (struct buf *b, size_t n);
void buf_release (struct buf *b);
static inline const char *
buf_bytes (const struct buf *b)
{
  return b->data ? b->data + b->off : "";
}
static inline size_t
buf_size (const struct buf *b)
{
  return b->len - b->off;
}

/* Line reader: feed bytes, take complete lines.  A line longer than MAX is reported once as
 * too long and its remaining bytes are skipped up to the next newline.  The search for a
 * newline resumes where the last one stopped, so a long line arriving in pieces is scanned
 * once. */
struct line_reader
{
  struct buf b;
  size_t max;
  size_t scanned; /* bytes after b.off known to hold no newline */
  bool skipping;
};
enum line_status
{
  LINE_NONE,
  LINE_OK,
  LINE_TOO_LONG
};
/* Returns LINE_OK with *ret pointing at the line (NUL-terminated, without the newline) inside
 * the reader's buffer, valid until the next call or feed; LINE_TOO_LONG; or LINE_NONE. */
enum line_status line_reader_next (struct line_reader *r, char **ret, size_t *ret_len);
void line_reader_feed (struct line_reader *r, const char *data, size_t len);
void line_reader_release (struct line_reader *r);

/* The error a method answers: OpenAI's error object plus the JSON-RPC code. */
struct rpc_error
{
  int code;             /* JSON-RPC: -32700, -32600, -32601, -32602, -32603, or -32000 app errors */
  int http_status;      /* what an HTTP gateway answers: 400, 404, 409, 413, 422, 429, 500 */
  const char *type;     /* "invalid_request_error", "rate_limit_error", "server_error" */
  const char *err_code; /* "not_found", "container_expired", ... (may be NULL) */
  char *param;          /* the offending parameter, or NULL */
  char *message;
};
struct rpc_error *rpc_error_new (int http_status, const char *err_code, const char *param,
                                 const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));
struct rpc_error *rpc_error_from (int http_status, const char *err_code, capsule_error *err);
void rpc_error_free (struct rpc_error *e);

/* Serialise a response line (with the trailing newline).  ID_JSON is the request id as JSON text
 * ("null" for none).  RESULT_JSON is the result as JSON text. */
char *rpc_response_text (const char *id_json, const char *result_json);
char *rpc_error_text (const char *id_json, const struct rpc_error *e);
char *rpc_notification_text (const char *method, const char *params_json);

/* The id of a request as JSON text, or NULL when it is not a valid id (object, array, bool). */
char *rpc_id_text (const json_value *id);

/* Parameter schema of a method. */
enum param_type
{
  P_STRING,
  P_INT,
  P_BOOL,
  P_OBJECT,
  P_ARRAY
};
struct param_spec
{
  const char *name;
  enum param_type type;
  bool required;
};
/* Check PARAMS (an object or NULL) against SPEC (terminated by a NULL name): every required
 * parameter present, each of its type, no unknown one. */
struct rpc_error *rpc_check_params (const json_value *params, const struct param_spec *spec);
