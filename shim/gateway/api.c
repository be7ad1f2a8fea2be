/* capsule-gateway: the HTTP API.  Each request is authenticated first (its key names its
 * tenant), routed, its body taken (JSON up to a cap, multipart streamed to a file), then
 * answered from one or a few calls to the shim naming that tenant.  Every error, ours or the
 * shim's, is OpenAI's error object with its HTTP status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "gateway.h"
#include "mcp-http.h"
#include "mcp.h"
#include "shim-util.h"
#include "utils.h"

#define FIELD_MAX 4096 /* a multipart field that is not a file */

enum route
{
  R_NONE,
  R_CONTAINERS,    /* /v1/containers */
  R_CONTAINER,     /* /v1/containers/ID */
  R_CFILES,        /* /v1/containers/ID/files */
  R_CFILE,         /* /v1/containers/ID/files/FID */
  R_CFILE_CONTENT, /* /v1/containers/ID/files/FID/content */
  R_EXECUTIONS,    /* /v1/containers/ID/executions */
  R_FILES,         /* /v1/files */
  R_FILE,          /* /v1/files/ID */
  R_FILE_CONTENT,  /* /v1/files/ID/content */
  R_MCP,           /* /mcp: the Model Context Protocol (mcp-http.c) */
};

enum body_kind
{
  BODY_NONE,
  BODY_JSON,
  BODY_MULTIPART,
};

struct req
{
  enum route route;
  char *id, *fid;
  bool get, post, del;
  char *method;
  char tenant[KEY_TENANT_MAX + 1];
  enum body_kind body_kind;
  struct buf body;
  uint64_t body_bytes;
  struct MHD_PostProcessor *pp;
  /* a multipart upload: to a memfd (container files) or into the store (/v1/files) */
  int up_fd;
  struct fupload fup;
  bool have_file;
  char *filename, *purpose, *file_id;
  uint64_t up_bytes;
  uint64_t counted;   /* of gw.uploading */
  uint64_t drain_max; /* of a refused body, what is read before the connection is cut */
  /* the first error met while taking the body, answered once it is all read */
  int err_status;
  char *err_json;
};

/* ------------------------------------------------------------------ answers */

static char *
error_json (const char *type, const char *code, const char *param, const char *message)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_key (w, "error");
  json_w_open_object (w);
  json_w_kv_string (w, "message", message);
  json_w_kv_string (w, "type", type);
  json_w_kv_string (w, "param", param);
  json_w_kv_string (w, "code", code);
  json_w_close_object (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

static char *error_fmt (const char *code, const char *param, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static char *
error_fmt (const char *code, const char *param, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  return error_json ("invalid_request_error", code, param, msg);
}

static enum MHD_Result
send_response (struct MHD_Connection *conn, unsigned status, struct MHD_Response *r)
{
  enum MHD_Result ret;
  if (r == NULL)
    return MHD_NO;
  if (status == 429)
    MHD_add_response_header (r, "Retry-After", "5");
  ret = MHD_queue_response (conn, status, r);
  MHD_destroy_response (r);
  return ret;
}

/* Answer STATUS with the JSON text BODY (taken). */
static enum MHD_Result
respond_json (struct MHD_Connection *conn, unsigned status, char *body)
{
  struct MHD_Response *r
      = MHD_create_response_from_buffer (strlen (body), body, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header (r, "Content-Type", "application/json");
  return send_response (conn, status, r);
}

static enum MHD_Result
respond_error (struct MHD_Connection *conn, unsigned status, const char *code, const char *param,
               const char *message)
{
  const char *type = status == 429   ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  return respond_json (conn, status, error_json (type, code, param, message));
}

static enum MHD_Result
respond_shim_down (struct MHD_Connection *conn, capsule_error *err)
{
  _cleanup_free_ char *msg = xasprintf ("the code interpreter is not reachable: %s", err->msg);
  fprintf (stderr, "capsule-gateway: %s\n", err->msg);
  if (err->status == ETIMEDOUT)
    return respond_error (conn, 504, "shim_timeout", NULL, msg);
  return respond_error (conn, 503, "shim_unavailable", NULL, msg);
}

/* The shim's error answer as OpenAI's error and status. */
static enum MHD_Result
respond_shim_error (struct MHD_Connection *conn, const json_value *error)
{
  json_value *d = json_get (error, "data");
  json_value *st = json_get (d, "http_status");
  const char *msg = json_string (json_get (d, "message"))
                        ?: json_string (json_get (error, "message")) ?: "the shim failed";
  unsigned status = json_is_integer (st) && json_integer (st) >= 400 && json_integer (st) < 600
                        ? (unsigned)json_integer (st)
                        : 500;
  const char *type = json_string (json_get (d, "type"))
                         ?: (status >= 500 ? "server_error" : "invalid_request_error");
  return respond_json (conn, status,
                       error_json (type, json_string (json_get (d, "code")),
                                   json_string (json_get (d, "param")), msg));
}

/* ------------------------------------------------------------------ JSON helpers */

void
w_value (json_writer *w, const json_value *v)
{
  if (json_is_object (v))
    {
      json_w_open_object (w);
      for (size_t i = 0; i < json_object_len (v); i++)
        {
          json_w_key (w, json_object_key (v, i));
          w_value (w, json_object_value (v, i));
        }
      json_w_close_object (w);
    }
  else if (json_is_array (v))
    {
      json_w_open_array (w);
      for (size_t i = 0; i < json_array_len (v); i++)
        w_value (w, json_array_get (v, i));
      json_w_close_array (w);
    }
  else if (json_is_string (v))
    json_w_string (w, json_string (v));
  else if (json_is_integer (v))
    json_w_int (w, json_integer (v));
  else if (json_is_number (v))
    {
      /* no parameter the shim takes is fractional: 1.5 stays 1.5 for the shim to refuse, while
         1e2 and 10.0 go on as 100 and 10, integers as JSON Schema counts them */
      char t[64];
      snprintf (t, sizeof t, "%.17g", json_double (v));
      json_w_raw (w, t);
    }
  else if (json_is_bool (v))
    json_w_bool (w, json_bool (v));
  else
    json_w_null (w);
}

/* What an HTTP connection keeps for its life: its thread's connection to the shim, and its
   place on guard.c's list. */
struct conn_ctx
{
  struct shimc shim;
  struct guard guard;
};

static struct conn_ctx *
ctx_of (struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci
      = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static struct shimc *
shim_of (struct MHD_Connection *conn)
{
  struct conn_ctx *c = ctx_of (conn);
  return c ? &c->shim : NULL;
}

static struct guard *
guard_of (struct MHD_Connection *conn)
{
  struct conn_ctx *c = ctx_of (conn);
  return c ? &c->guard : NULL;
}

struct shim_answer
{
  json_value *msg;
  json_value *result; /* inside msg, or NULL when it is an error */
};

static void
shim_answer_release (struct shim_answer *a)
{
  json_free (a->msg);
  a->msg = a->result = NULL;
}
#define _cleanup_answer_ __attribute__ ((cleanup (shim_answer_release)))

/* Call the shim; returns MHD_YES with A filled, or has answered the client already (an error) and
 * returns what MHD wants to hear in *RET. */
static bool
shim_call_fd (struct MHD_Connection *conn, const char *method, const char *params, int fd,
              struct shim_answer *a, enum MHD_Result *ret)
{
  _cleanup_error_ capsule_error *err = NULL;
  struct shimc *c = shim_of (conn);
  memset (a, 0, sizeof *a);
  if (c == NULL)
    {
      *ret = respond_error (conn, 500, "server_error", NULL, "no shim connection");
      return false;
    }
  /* only a cell may keep the shim silent longer than a minute (executions_create says how long) */
  if (strcmp (method, "containers.exec") != 0)
    c->wait_ms = 0;
  c->tick_ms = 0; /* of a stream before */
  if (shimc_call_fd (c, gw.shim_socket, method, params, fd, NULL, NULL, &a->msg, &err) < 0)
    {
      *ret = respond_shim_down (conn, err);
      return false;
    }
  a->result = json_get (a->msg, "result");
  if (a->result == NULL)
    {
      json_value *e = json_get (a->msg, "error");
      /* a call refused before its method ran leaves its descriptor queued on the connection,
         where the next call (maybe another tenant's) would take it: start afresh */
      if (fd >= 0)
        shimc_close (c);
      *ret = respond_shim_error (conn, e);
      shim_answer_release (a);
      return false;
    }
  return true;
}

static bool
shim_call (struct MHD_Connection *conn, const char *method, const char *params,
           struct shim_answer *a, enum MHD_Result *ret)
{
  return shim_call_fd (conn, method, params, -1, a, ret);
}

/* A writer for the params of a shim call, opened, with the tenant in it. */
static json_writer *
params_new (const struct req *q)
{
  json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_string (w, "tenant", q->tenant);
  return w;
}

static const char *
params_done (json_writer *w)
{
  json_w_close_object (w);
  return json_writer_text (w, NULL);
}

static enum MHD_Result
respond_result (struct MHD_Connection *conn, const json_value *result)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  w_value (w, result);
  return respond_json (conn, 200, xstrdup (json_writer_text (w, NULL)));
}

/* The request's JSON body as an object (an empty body is an empty object); NULL when it has
 * answered already. */
static json_value *
body_object (struct MHD_Connection *conn, struct req *q, enum MHD_Result *ret)
{
  _cleanup_error_ capsule_error *err = NULL;
  json_value *v;
  if (buf_size (&q->body) == 0)
    return json_parse ("{}", "the body", &err);
  buf_append (&q->body, "", 1);
  v = json_parse_n (buf_bytes (&q->body), buf_size (&q->body) - 1, 0, "the body", &err);
  if (json_has_nul (v))
    {
      json_free (v);
      *ret = respond_error (conn, 400, "invalid_value", NULL, "the body holds a \\u0000 escape");
      return NULL;
    }
  if (v == NULL || !json_is_object (v))
    {
      _cleanup_free_ char *m = xasprintf ("We could not parse the JSON body of your request. (%s)",
                                          v ? "not an object" : err->msg);
      json_free (v);
      *ret = respond_error (conn, 400, "invalid_json", NULL, m);
      return NULL;
    }
  return v;
}

/* Every key of BODY is one of ALLOWED (NULL-terminated), or answer 400. */
static bool
only_keys (struct MHD_Connection *conn, const json_value *body, const char *const *allowed,
           enum MHD_Result *ret)
{
  for (size_t i = 0; i < json_object_len (body); i++)
    {
      const char *k = json_object_key (body, i);
      bool ok = false;
      for (const char *const *a = allowed; *a && !ok; a++)
        ok = strcmp (*a, k) == 0;
      if (!ok)
        {
          _cleanup_free_ char *m = xasprintf ("Unknown parameter: '%s'.", k);
          *ret = respond_error (conn, 400, "unknown_parameter", k, m);
          return false;
        }
    }
  return true;
}

/* limit, order and after from the query string into W; false when it has answered. */
static bool
list_query (struct MHD_Connection *conn, json_writer *w, enum MHD_Result *ret)
{
  const char *limit = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "limit");
  const char *order = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "order");
  const char *after = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "after");
  if (limit)
    {
      uint64_t n;
      if (parse_u64 (limit, &n) < 0 || n > 1000000)
        {
          *ret = respond_error (conn, 400, "invalid_type", "limit",
                                "limit must be an integer between 1 and 100");
          return false;
        }
      json_w_kv_int (w, "limit", (long long)n);
    }
  if (order)
    json_w_kv_string (w, "order", order);
  if (after && after[0])
    json_w_kv_string (w, "after", after);
  return true;
}

/* ------------------------------------------------------------------ content types */

const char *
content_type_of (const char *name)
{
  static const char *const table[][2] = {
    { ".png", "image/png" },
    { ".jpg", "image/jpeg" },
    { ".jpeg", "image/jpeg" },
    { ".gif", "image/gif" },
    { ".webp", "image/webp" },
    { ".svg", "image/svg+xml" },
    { ".csv", "text/csv" },
    { ".tsv", "text/tab-separated-values" },
    { ".txt", "text/plain" },
    { ".log", "text/plain" },
    { ".md", "text/markdown" },
    { ".py", "text/x-python" },
    { ".json", "application/json" },
    { ".html", "text/html" },
    { ".htm", "text/html" },
    { ".xml", "application/xml" },
    { ".pdf", "application/pdf" },
    { ".zip", "application/zip" },
    { ".gz", "application/gzip" },
    { ".tar", "application/x-tar" },
    { ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
    { ".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
    { ".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
    { ".parquet", "application/vnd.apache.parquet" },
  };
  const char *dot = name ? strrchr (name, '.') : NULL;
  if (dot && strchr (dot, '/') == NULL)
    for (size_t i = 0; i < ARRAY_SIZE (table); i++)
      if (strcasecmp (dot, table[i][0]) == 0)
        return table[i][1];
  return "application/octet-stream";
}

/* Raw bytes: what a sandbox made is never run by a browser on the API's origin. */
static void
content_headers (struct MHD_Response *r, const char *name)
{
  MHD_add_response_header (r, "Content-Type", content_type_of (name));
  MHD_add_response_header (r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header (r, "Content-Security-Policy", "sandbox");
}

/* ------------------------------------------------------------------ uploads to the shim */

/* files.create of the bytes of FD (not taken) as PATH in container CID: the descriptor goes to
   the shim beside the call, the bytes are never copied into JSON. */
static bool
shim_upload (struct MHD_Connection *conn, const struct req *q, const char *cid, const char *path,
             int fd, struct shim_answer *a, enum MHD_Result *ret)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  json_w_kv_string (w, "container_id", cid);
  json_w_kv_string (w, "path", path);
  json_w_kv_bool (w, "content_fd", true);
  return shim_call_fd (conn, "files.create", params_done (w), fd, a, ret);
}

/* A stored /v1/files file into container CID, under its filename. */
static bool
upload_stored (struct MHD_Connection *conn, const struct req *q, const char *cid,
               const char *file_id, const char *param, struct shim_answer *a, enum MHD_Result *ret)
{
  struct fobject *o = fstore_get (&gw.store, q->tenant, file_id);
  _cleanup_close_ int fd = -1;
  bool ok;
  if (o == NULL || (fd = fstore_open (&gw.store, q->tenant, file_id)) < 0)
    {
      _cleanup_free_ char *msg = xasprintf ("No such File object: %s", file_id);
      fobject_free (o);
      *ret = respond_error (conn, 404, "not_found", param, msg);
      return false;
    }
  ok = shim_upload (conn, q, cid, o->filename, fd, a, ret);
  fobject_free (o);
  return ok;
}

/* ------------------------------------------------------------------ containers */

static void
delete_quietly (struct MHD_Connection *conn, const struct req *q, const char *cid)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_ json_value *m = NULL;
  struct shimc *c = shim_of (conn);
  json_w_kv_string (w, "container_id", cid);
  if (c == NULL)
    return;
  c->wait_ms = 0;
  c->tick_ms = 0;
  shimc_call (c, gw.shim_socket, "containers.delete", params_done (w), NULL, NULL, &m, &err);
}

/* Auto mode: the container a context key of the tenant found last, if it still runs. */
static char *
auto_path (const struct req *q, const char *key)
{
  char h[65];
  sha256_hex (key, strlen (key), h);
  return xasprintf ("%s/%s/%s", gw.auto_dir, q->tenant, h);
}

static bool
auto_find (struct MHD_Connection *conn, const struct req *q, const char *key, struct shim_answer *a)
{
  _cleanup_free_ char *path = auto_path (q, key), *cid = NULL;
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_json_writer_ json_writer *w = NULL;
  struct shimc *c = shim_of (conn);
  const char *status;
  size_t len;
  if (read_file_at (AT_FDCWD, path, 256, &cid, &len, &err) < 0 || c == NULL)
    return false;
  w = params_new (q);
  json_w_kv_string (w, "container_id", cid);
  c->wait_ms = 0;
  c->tick_ms = 0;
  if (shimc_call (c, gw.shim_socket, "containers.retrieve", params_done (w), NULL, NULL, &a->msg,
                  &err)
      < 0)
    return false;
  a->result = json_get (a->msg, "result");
  status = json_string (json_get (a->result, "status"));
  if (status && strcmp (status, "running") == 0)
    return true;
  /* gone or expired: the key is forgotten (a new container takes it), so keys do not pile up */
  if (a->result || json_get (a->msg, "error"))
    unlink (path);
  shim_answer_release (a);
  return false;
}

static void
auto_remember (const struct req *q, const char *key, const char *cid)
{
  _cleanup_free_ char *dir = xasprintf ("%s/%s", gw.auto_dir, q->tenant);
  _cleanup_free_ char *path = auto_path (q, key);
  _cleanup_error_ capsule_error *err = NULL;
  if (mkdir_p (dir, 0700, &err) < 0 || write_file_atomic (path, cid, strlen (cid), 0600, &err) < 0)
    fprintf (stderr, "capsule-gateway: auto mode: %s\n", err->msg);
}

static enum MHD_Result
containers_create (struct MHD_Connection *conn, struct req *q)
{
  static const char *const allowed[]
      = { "name",           "memory_limit", "expires_after", "file_ids",
          "network_policy", "skills",       "context_key",   NULL };
  enum MHD_Result ret = MHD_NO;
  _cleanup_json_ json_value *body = body_object (conn, q, &ret);
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_answer_ struct shim_answer a = { 0 };
  json_value *np, *skills, *ids, *name, *ctx_key;
  const char *cid, *key = NULL;
  _cleanup_free_ char *auto_name = NULL;
  if (body == NULL || !only_keys (conn, body, allowed, &ret))
    return ret;
  np = json_get (body, "network_policy");
  skills = json_get (body, "skills");
  ids = json_get (body, "file_ids");
  name = json_get (body, "name");
  ctx_key = json_get (body, "context_key");
  if (np && !json_is_null (np))
    {
      const char *type = json_string (json_get (np, "type"));
      if (!json_is_object (np) || type == NULL)
        return respond_error (conn, 400, "invalid_type", "network_policy",
                              "network_policy must be an object with a type");
      if (strcmp (type, "allowlist") == 0)
        return respond_error (conn, 400, "unsupported_value", "network_policy.type",
                              "network_policy 'allowlist' is not supported: capsule's sandboxes "
                              "have no network");
      if (strcmp (type, "disabled") != 0 || json_object_len (np) != 1)
        return respond_error (conn, 400, "invalid_value", "network_policy.type",
                              "network_policy.type must be 'disabled'");
    }
  if (skills
      && !(json_is_null (skills) || (json_is_array (skills) && json_array_len (skills) == 0)))
    return respond_error (conn, 400, "unsupported_value", "skills",
                          "skills are not supported by this server yet");
  if (ids && !json_is_null (ids) && !json_is_array (ids))
    return respond_error (conn, 400, "invalid_type", "file_ids", "file_ids must be an array");
  if (ctx_key)
    {
      key = json_string (ctx_key);
      if (key == NULL || key[0] == 0 || strlen (key) > 256)
        return respond_error (conn, 400, "invalid_value", "context_key",
                              "context_key must be a string of 1 to 256 bytes");
      if (auto_find (conn, q, key, &a))
        return respond_result (conn, a.result);
    }
  for (size_t i = 0; i < json_array_len (ids); i++)
    {
      const char *fid = json_string (json_array_get (ids, i));
      struct fobject *o;
      if (fid == NULL)
        return respond_error (conn, 400, "invalid_type", "file_ids", "file_ids must hold strings");
      if (strncmp (fid, "file-", 5) != 0)
        continue;
      if ((o = fstore_get (&gw.store, q->tenant, fid)) == NULL)
        {
          _cleanup_free_ char *m = xasprintf ("No such File object: %s", fid);
          return respond_error (conn, 404, "not_found", "file_ids", m);
        }
      fobject_free (o);
    }

  w = params_new (q);
  json_w_key (w, "name");
  if (name == NULL && key)
    json_w_string (w, auto_name = xasprintf ("auto-%.48s", key));
  else
    w_value (w, name);
  if (json_get (body, "memory_limit"))
    {
      json_w_key (w, "memory_limit");
      w_value (w, json_get (body, "memory_limit"));
    }
  if (json_get (body, "expires_after"))
    {
      json_w_key (w, "expires_after");
      w_value (w, json_get (body, "expires_after"));
    }
  /* capsule's own container file ids go to the shim; /v1/files ids are uploaded after */
  json_w_key (w, "file_ids");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (ids); i++)
    if (strncmp (json_string (json_array_get (ids, i)), "file-", 5) != 0)
      json_w_string (w, json_string (json_array_get (ids, i)));
  json_w_close_array (w);
  if (!shim_call (conn, "containers.create", params_done (w), &a, &ret))
    return ret;
  cid = json_string (json_get (a.result, "id"));
  if (cid == NULL)
    return respond_error (conn, 502, "server_error", NULL, "the shim answered no container id");
  for (size_t i = 0; i < json_array_len (ids); i++)
    {
      const char *fid = json_string (json_array_get (ids, i));
      _cleanup_answer_ struct shim_answer f = { 0 };
      if (strncmp (fid, "file-", 5) != 0)
        continue;
      if (!upload_stored (conn, q, cid, fid, "file_ids", &f, &ret))
        {
          /* the error is answered; the half-made container goes */
          delete_quietly (conn, q, cid);
          return ret;
        }
    }
  if (key)
    auto_remember (q, key, cid);
  return respond_result (conn, a.result);
}

static enum MHD_Result
containers_list (struct MHD_Connection *conn, struct req *q)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  _cleanup_answer_ struct shim_answer a = { 0 };
  enum MHD_Result ret;
  const char *name = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "name");
  if (!list_query (conn, w, &ret))
    return ret;
  if (name)
    json_w_kv_string (w, "name", name);
  if (!shim_call (conn, "containers.list", params_done (w), &a, &ret))
    return ret;
  return respond_result (conn, a.result);
}

/* A call on one container (or one of its files) whose result is the answer. */
static enum MHD_Result
container_call (struct MHD_Connection *conn, struct req *q, const char *method, bool with_file)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  _cleanup_answer_ struct shim_answer a = { 0 };
  enum MHD_Result ret;
  json_w_kv_string (w, "container_id", q->id);
  if (with_file)
    json_w_kv_string (w, "file_id", q->fid);
  if (!shim_call (conn, method, params_done (w), &a, &ret))
    return ret;
  return respond_result (conn, a.result);
}

/* ------------------------------------------------------------------ container files */

static enum MHD_Result
cfiles_create (struct MHD_Connection *conn, struct req *q)
{
  _cleanup_answer_ struct shim_answer a = { 0 };
  enum MHD_Result ret = MHD_NO;
  if (q->body_kind == BODY_MULTIPART)
    {
      if (q->have_file && q->file_id)
        return respond_error (conn, 400, "invalid_request", "file",
                              "give either file or file_id, not both");
      if (q->file_id)
        {
          if (!upload_stored (conn, q, q->id, q->file_id, "file_id", &a, &ret))
            return ret;
          return respond_result (conn, a.result);
        }
      if (!q->have_file)
        return respond_error (conn, 400, "missing_required_parameter", "file",
                              "Missing required parameter: 'file'.");
      if (!shim_upload (conn, q, q->id, q->filename, q->up_fd, &a, &ret))
        return ret;
      return respond_result (conn, a.result);
    }
  else
    {
      static const char *const allowed[] = { "file_id", NULL };
      _cleanup_json_ json_value *body = body_object (conn, q, &ret);
      const char *fid;
      if (body == NULL || !only_keys (conn, body, allowed, &ret))
        return ret;
      fid = json_string (json_get (body, "file_id"));
      if (fid == NULL)
        return respond_error (conn, 400, "missing_required_parameter", "file",
                              "Missing required parameter: 'file' (or 'file_id').");
      if (!upload_stored (conn, q, q->id, fid, "file_id", &a, &ret))
        return ret;
      return respond_result (conn, a.result);
    }
}

static enum MHD_Result
cfiles_list (struct MHD_Connection *conn, struct req *q)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  _cleanup_answer_ struct shim_answer a = { 0 };
  enum MHD_Result ret;
  json_w_kv_string (w, "container_id", q->id);
  if (!list_query (conn, w, &ret))
    return ret;
  if (!shim_call (conn, "files.list", params_done (w), &a, &ret))
    return ret;
  return respond_result (conn, a.result);
}

static enum MHD_Result
cfile_content (struct MHD_Connection *conn, struct req *q)
{
  _cleanup_json_writer_ json_writer *w = params_new (q);
  _cleanup_json_writer_ json_writer *c = params_new (q);
  _cleanup_answer_ struct shim_answer f = { 0 }, a = { 0 };
  _cleanup_close_ int fd = -1;
  struct MHD_Response *r;
  enum MHD_Result ret;
  struct stat st;
  json_w_kv_string (w, "container_id", q->id);
  json_w_kv_string (w, "file_id", q->fid);
  json_w_kv_string (c, "container_id", q->id);
  json_w_kv_string (c, "file_id", q->fid);
  json_w_kv_bool (c, "content_fd", true);
  if (!shim_call (conn, "files.retrieve", params_done (w), &f, &ret)
      || !shim_call (conn, "files.content", params_done (c), &a, &ret))
    return ret;
  /* the bytes came as a sealed memfd beside the answer: sent from there (sendfile) */
  fd = shimc_take_fd (shim_of (conn));
  if (fd < 0 || fstat (fd, &st) < 0)
    return respond_error (conn, 502, "server_error", NULL, "the shim sent no content");
  r = MHD_create_response_from_fd (st.st_size, steal_fd (&fd));
  content_headers (r, json_string (json_get (f.result, "path")));
  return send_response (conn, 200, r);
}

/* ------------------------------------------------------------------ executions */

static char *
base_url (struct MHD_Connection *conn)
{
  const char *host = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Host");
  if (gw.public_url)
    return xstrdup (gw.public_url);
  return xasprintf ("%s://%s", gw.tls ? "https" : "http", host ? host : "localhost");
}

static const char *
item_status (const char *st)
{
  if (st == NULL)
    return "failed";
  /* a cell that raised still ran: the model reads its traceback from the logs */
  if (strcmp (st, "completed") == 0 || strcmp (st, "failed") == 0)
    return "completed";
  if (strcmp (st, "timeout") == 0 || strcmp (st, "interrupted") == 0)
    return "incomplete";
  return "failed";
}

/* The shim's execution plus `item` (the Responses API's code_interpreter_call) and
   `annotations` (a container_file_citation per file the cell made or changed). */
static char *
execution_answer (struct MHD_Connection *conn, const json_value *x, const char *code)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *base = base_url (conn);
  const char *cid = json_string (json_get (x, "container_id"));
  const char *xid = json_string (json_get (x, "id"));
  json_value *outputs = json_get (x, "outputs"), *files = json_get (x, "files");
  json_w_open_object (w);
  for (size_t i = 0; i < json_object_len (x); i++)
    {
      json_w_key (w, json_object_key (x, i));
      w_value (w, json_object_value (x, i));
    }
  json_w_key (w, "item");
  json_w_open_object (w);
  {
    _cleanup_free_ char *id = xasprintf ("ci_%s", xid && strlen (xid) > 5 ? xid + 5 : "");
    json_w_kv_string (w, "id", id);
  }
  json_w_kv_string (w, "type", "code_interpreter_call");
  json_w_kv_string (w, "status", item_status (json_string (json_get (x, "status"))));
  json_w_kv_string (w, "container_id", cid);
  json_w_kv_string (w, "code", code);
  json_w_key (w, "outputs");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (outputs); i++)
    {
      json_value *o = json_array_get (outputs, i);
      const char *type = json_string (json_get (o, "type"));
      json_w_open_object (w);
      if (type && strcmp (type, "image") == 0)
        {
          _cleanup_free_ char *url = xasprintf ("%s/v1/containers/%s/files/%s/content", base, cid,
                                                json_string (json_get (o, "file_id")) ?: "");
          json_w_kv_string (w, "type", "image");
          json_w_kv_string (w, "url", url);
        }
      else
        {
          json_w_kv_string (w, "type", "logs");
          json_w_kv_string (w, "logs", json_string (json_get (o, "logs")) ?: "");
        }
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_close_object (w);
  json_w_key (w, "annotations");
  json_w_open_array (w);
  for (size_t i = 0; i < json_array_len (files); i++)
    {
      json_value *f = json_array_get (files, i);
      const char *path = json_string (json_get (f, "path")) ?: "";
      const char *slash = strrchr (path, '/');
      json_w_open_object (w);
      json_w_kv_string (w, "type", "container_file_citation");
      json_w_kv_string (w, "container_id", cid);
      json_w_kv_string (w, "file_id", json_string (json_get (f, "id")));
      json_w_kv_string (w, "filename", slash ? slash + 1 : path);
      json_w_kv_int (w, "start_index", 0);
      json_w_kv_int (w, "end_index", 0);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

/* A streamed execution: the shim's exec.output notifications as server-sent events, then the
   whole object. */
struct exec_stream
{
  struct MHD_Connection *conn;
  struct shimc *c;
  uint64_t id;
  char *code;
  struct buf out;
  bool done;
};

static void
sse_event (struct buf *b, const char *event, const char *data)
{
  buf_append (b, "event: ", 7);
  buf_append (b, event, strlen (event));
  buf_append (b, "\ndata: ", 7);
  buf_append (b, data, strlen (data));
  buf_append (b, "\n\n", 2);
}

/* One message of the shim into the stream: an output of the cell as an event, the call's
   answer as the whole object (or an error event); what is not this call's is dropped. */
static void
stream_message (struct exec_stream *s, const json_value *m)
{
  json_value *mid = json_get (m, "id");
  if (mid == NULL)
    {
      _cleanup_json_writer_ json_writer *w = json_writer_new (false);
      json_value *p = json_get (m, "params");
      const char *method = json_string (json_get (m, "method"));
      if (method == NULL || strcmp (method, "exec.output") != 0 || !json_is_object (p))
        return;
      json_w_open_object (w);
      json_w_kv_string (w, "type", "exec.output");
      for (size_t i = 0; i < json_object_len (p); i++)
        {
          json_w_key (w, json_object_key (p, i));
          w_value (w, json_object_value (p, i));
        }
      json_w_close_object (w);
      sse_event (&s->out, "exec.output", json_writer_text (w, NULL));
      return;
    }
  if (!json_is_integer (mid) || (uint64_t)json_integer (mid) != s->id)
    return;
  s->done = true;
  if (json_get (m, "result"))
    {
      _cleanup_free_ char *x = execution_answer (s->conn, json_get (m, "result"), s->code);
      sse_event (&s->out, "container.execution", x);
    }
  else
    {
      json_value *d = json_get (json_get (m, "error"), "data");
      _cleanup_free_ char *e
          = error_json (json_string (json_get (d, "type")) ?: "server_error",
                        json_string (json_get (d, "code")), json_string (json_get (d, "param")),
                        json_string (json_get (d, "message")) ?: "the execution failed");
      sse_event (&s->out, "error", e);
    }
}

static ssize_t
exec_stream_read (void *cls, uint64_t pos, char *out, size_t max)
{
  struct exec_stream *s = cls;
  (void)pos;
  while (buf_size (&s->out) == 0)
    {
      _cleanup_error_ capsule_error *err = NULL;
      _cleanup_json_ json_value *m = NULL;
      int r;
      if (s->done)
        return MHD_CONTENT_READER_END_OF_STREAM;
      r = shimc_next (s->c, &m, &err);
      if (r == 0 && m == NULL)
        {
          /* a tick: a stream silent for --timeout would be closed as idle */
          buf_append (&s->out, ": keep-alive\n\n", 14);
          continue;
        }
      if (r < 0)
        {
          _cleanup_free_ char *msg
              = xasprintf ("the code interpreter is not reachable: %s", err->msg);
          _cleanup_free_ char *e = error_json ("server_error", "shim_unavailable", NULL, msg);
          sse_event (&s->out, "error", e);
          s->done = true;
          continue;
        }
      stream_message (s, m);
    }
  if (max > buf_size (&s->out))
    max = buf_size (&s->out);
  memcpy (out, buf_bytes (&s->out), max);
  buf_consume (&s->out, max);
  return max;
}

static void
exec_stream_free (void *cls)
{
  struct exec_stream *s = cls;
  buf_release (&s->out);
  free (s->code);
  free (s);
}

static enum MHD_Result
executions_create (struct MHD_Connection *conn, struct req *q)
{
  static const char *const allowed[] = { "code", "timeout_ms", "stream", NULL };
  enum MHD_Result ret = MHD_NO;
  _cleanup_json_ json_value *body = body_object (conn, q, &ret);
  _cleanup_json_writer_ json_writer *w = NULL;
  _cleanup_answer_ struct shim_answer a = { 0 };
  json_value *code, *stream;
  bool streaming;
  if (body == NULL || !only_keys (conn, body, allowed, &ret))
    return ret;
  code = json_get (body, "code");
  stream = json_get (body, "stream");
  if (code == NULL)
    return respond_error (conn, 400, "missing_required_parameter", "code",
                          "Missing required parameter: 'code'.");
  streaming = json_is_bool (stream) && json_bool (stream);
  if (shim_of (conn))
    {
      /* the cell's own deadline, then the interrupt's grace and a fresh interpreter */
      json_value *t = json_get (body, "timeout_ms");
      long long ms = json_is_integer (t) && json_integer (t) > 0 ? json_integer (t) : 60000;
      shim_of (conn)->wait_ms = ms > 3600000 ? 3720000 : (int)ms + 120000;
    }
  w = params_new (q);
  json_w_kv_string (w, "container_id", q->id);
  json_w_key (w, "code");
  w_value (w, code);
  if (json_get (body, "timeout_ms"))
    {
      json_w_key (w, "timeout_ms");
      w_value (w, json_get (body, "timeout_ms"));
    }
  if (stream)
    {
      json_w_key (w, "stream");
      w_value (w, stream);
    }
  if (streaming)
    {
      /* the shim checks the call before it runs: a bad id or code is a plain error answer, so
         the first message decides between an error status and the event stream */
      _cleanup_error_ capsule_error *err = NULL;
      struct exec_stream *s = xmalloc0 (sizeof *s);
      struct MHD_Response *r;
      s->conn = conn;
      s->c = shim_of (conn);
      s->code = xstrdup (json_string (code) ?: "");
      if (s->c == NULL
          || shimc_send (s->c, gw.shim_socket, "containers.exec", params_done (w), &s->id, &err)
                 < 0)
        {
          exec_stream_free (s);
          return err ? respond_shim_down (conn, err)
                     : respond_error (conn, 500, "server_error", NULL, "no shim connection");
        }
      /* errors of the call itself come at once, before any output: the first message of this
         call decides between an error status and the event stream */
      while (buf_size (&s->out) == 0 && !s->done)
        {
          _cleanup_json_ json_value *m = NULL;
          json_value *mid;
          if (shimc_next (s->c, &m, &err) < 0)
            {
              exec_stream_free (s);
              return respond_shim_down (conn, err);
            }
          mid = json_get (m, "id");
          if (mid && json_is_integer (mid) && (uint64_t)json_integer (mid) == s->id
              && json_get (m, "error"))
            {
              exec_stream_free (s);
              return respond_shim_error (conn, json_get (m, "error"));
            }
          stream_message (s, m);
        }
      s->c->tick_ms = 1000;
      r = MHD_create_response_from_callback (MHD_SIZE_UNKNOWN, 65536, exec_stream_read, s,
                                             exec_stream_free);
      MHD_add_response_header (r, "Content-Type", "text/event-stream");
      MHD_add_response_header (r, "Cache-Control", "no-cache");
      return send_response (conn, 200, r);
    }
  if (!shim_call (conn, "containers.exec", params_done (w), &a, &ret))
    return ret;
  return respond_json (conn, 200, execution_answer (conn, a.result, json_string (code)));
}

/* ------------------------------------------------------------------ /v1/files */

static enum MHD_Result
files_create (struct MHD_Connection *conn, struct req *q)
{
  static const char *const purposes[]
      = { "assistants", "batch", "fine-tune", "vision", "user_data", "evals", NULL };
  _cleanup_error_ capsule_error *err = NULL;
  struct fobject *o = NULL;
  bool ok = false;
  if (q->body_kind != BODY_MULTIPART)
    return respond_error (conn, 400, "invalid_request", NULL,
                          "files are uploaded as multipart/form-data with 'file' and 'purpose'");
  if (!q->have_file)
    return respond_error (conn, 400, "missing_required_parameter", "file",
                          "Missing required parameter: 'file'.");
  if (q->purpose == NULL)
    return respond_error (conn, 400, "missing_required_parameter", "purpose",
                          "Missing required parameter: 'purpose'.");
  for (const char *const *p = purposes; *p && !ok; p++)
    ok = strcmp (*p, q->purpose) == 0;
  if (!ok)
    {
      _cleanup_free_ char *m = xasprintf ("'%s' is not one of ['assistants', 'batch', "
                                          "'fine-tune', 'vision', 'user_data', 'evals'] - "
                                          "'purpose'",
                                          q->purpose);
      return respond_error (conn, 400, "invalid_value", "purpose", m);
    }
  q->fup.bytes = q->up_bytes;
  if (fstore_commit (&gw.store, &q->fup, q->filename, q->purpose, &o, &err) < 0)
    {
      if (err->status == EDQUOT)
        return respond_error (conn, 413, "quota_exceeded", "file", err->msg);
      fprintf (stderr, "capsule-gateway: files: %s\n", err->msg);
      return respond_error (conn, 500, "server_error", "file", "the file could not be stored");
    }
  fstore_abort (&q->fup); /* only closes: it is in place */
  q->up_fd = -1;
  {
    char *j = fobject_json (o);
    fobject_free (o);
    return respond_json (conn, 200, j);
  }
}

static const char *
fobject_id_of (const struct fobject *o)
{
  return o->id;
}

static enum MHD_Result
files_list (struct MHD_Connection *conn, struct req *q)
{
  const char *limit_s = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "limit");
  const char *order = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "order");
  const char *after = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "after");
  const char *purpose = MHD_lookup_connection_value (conn, MHD_GET_ARGUMENT_KIND, "purpose");
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  struct fobject **all = NULL;
  size_t n = 0, m = 0, start = 0, count = 0;
  uint64_t limit = 10000;
  bool asc;
  if (limit_s && (parse_u64 (limit_s, &limit) < 0 || limit < 1 || limit > 10000))
    return respond_error (conn, 400, "invalid_value", "limit",
                          "limit must be an integer between 1 and 10000");
  if (order && strcmp (order, "asc") != 0 && strcmp (order, "desc") != 0)
    return respond_error (conn, 400, "invalid_value", "order", "order must be 'asc' or 'desc'");
  asc = order && strcmp (order, "asc") == 0;
  if (fstore_list (&gw.store, q->tenant, &all, &n) < 0)
    return respond_error (conn, 500, "server_error", NULL, "the file store did not read");
  for (size_t i = 0; i < n; i++)
    if (purpose == NULL || strcmp (all[i]->purpose, purpose) == 0)
      all[m++] = all[i];
    else
      fobject_free (all[i]);
  if (!asc)
    for (size_t i = 0; i < m / 2; i++)
      {
        struct fobject *t = all[i];
        all[i] = all[m - 1 - i];
        all[m - 1 - i] = t;
      }
  if (after && after[0])
    {
      while (start < m && strcmp (fobject_id_of (all[start]), after) != 0)
        start++;
      start = start < m ? start + 1 : m;
    }
  json_w_open_object (w);
  json_w_kv_string (w, "object", "list");
  json_w_key (w, "data");
  json_w_open_array (w);
  for (size_t i = start; i < m && count < limit; i++, count++)
    w_fobject (w, all[i]);
  json_w_close_array (w);
  json_w_kv_string (w, "first_id", count ? all[start]->id : NULL);
  json_w_kv_string (w, "last_id", count ? all[start + count - 1]->id : NULL);
  json_w_kv_bool (w, "has_more", start + count < m);
  json_w_close_object (w);
  for (size_t i = 0; i < m; i++)
    fobject_free (all[i]);
  free (all);
  return respond_json (conn, 200, xstrdup (json_writer_text (w, NULL)));
}

static enum MHD_Result
respond_no_file (struct MHD_Connection *conn, const char *id)
{
  _cleanup_free_ char *m = xasprintf ("No such File object: %s", id);
  return respond_error (conn, 404, "not_found", "id", m);
}

static enum MHD_Result
file_retrieve (struct MHD_Connection *conn, struct req *q)
{
  struct fobject *o = fstore_get (&gw.store, q->tenant, q->id);
  char *j;
  if (o == NULL)
    return respond_no_file (conn, q->id);
  j = fobject_json (o);
  fobject_free (o);
  return respond_json (conn, 200, j);
}

static enum MHD_Result
file_delete (struct MHD_Connection *conn, struct req *q)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  if (fstore_delete (&gw.store, q->tenant, q->id) < 0)
    return respond_no_file (conn, q->id);
  json_w_open_object (w);
  json_w_kv_string (w, "id", q->id);
  json_w_kv_string (w, "object", "file");
  json_w_kv_bool (w, "deleted", true);
  json_w_close_object (w);
  return respond_json (conn, 200, xstrdup (json_writer_text (w, NULL)));
}

static enum MHD_Result
file_content (struct MHD_Connection *conn, struct req *q)
{
  struct fobject *o = fstore_get (&gw.store, q->tenant, q->id);
  struct MHD_Response *r;
  struct stat st;
  int fd;
  if (o == NULL || (fd = fstore_open (&gw.store, q->tenant, q->id)) < 0)
    {
      fobject_free (o);
      return respond_no_file (conn, q->id);
    }
  if (fstat (fd, &st) < 0)
    {
      close (fd);
      fobject_free (o);
      return respond_error (conn, 500, "server_error", NULL, "the stored file did not read");
    }
  /* streamed from the file: never all in memory */
  r = MHD_create_response_from_fd (st.st_size, fd);
  content_headers (r, o->filename);
  fobject_free (o);
  return send_response (conn, 200, r);
}

/* ------------------------------------------------------------------ request bodies */

static void
fail_body (struct req *q, unsigned status, char *json)
{
  if (q->err_status)
    {
      free (json);
      return;
    }
  q->err_status = status;
  q->err_json = json;
}

static bool
too_large (struct req *q, uint64_t more, uint64_t limit, const char *param)
{
  if (q->err_status)
    return true;
  if (more <= limit)
    return false;
  fail_body (q, 413,
             error_fmt (param && strcmp (param, "file") == 0 ? "file_too_large" : "body_too_large",
                        param, "the %s is larger than the limit of %llu bytes",
                        param && strcmp (param, "file") == 0 ? "file" : "request body",
                        (unsigned long long)limit));
  return true;
}

static enum MHD_Result
post_iter (void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
           const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
           size_t size)
{
  struct req *q = cls;
  char **field = NULL;
  (void)kind;
  (void)content_type;
  (void)transfer_encoding;
  if (q->err_status)
    return MHD_YES; /* the rest is read and dropped */
  if (strcmp (key, "file") == 0)
    {
      /* libmicrohttpd may call more than once at offset 0 (the first with no data) */
      if (off == 0 && !(q->have_file && q->up_bytes == 0))
        {
          if (q->have_file)
            {
              fail_body (q, 400,
                         error_fmt ("invalid_request", "file", "more than one 'file' part"));
              return MHD_YES;
            }
          q->have_file = true;
          free (q->filename);
          q->filename = xstrdup (filename && filename[0] ? filename : "upload");
        }
      if (too_large (q, q->up_bytes + size, gw.max_upload, "file"))
        return MHD_YES;
      /* every upload under way draws on one budget: many at once cannot fill memory (memfds)
         or the disk (the store's hidden files) */
      if (__atomic_add_fetch (&gw.uploading, size, __ATOMIC_RELAXED) > gw.upload_budget)
        {
          __atomic_sub_fetch (&gw.uploading, size, __ATOMIC_RELAXED);
          fail_body (q, 429,
                     error_json ("rate_limit_error", "too_many_uploads", "file",
                                 "too many uploads are under way on this server; try again"));
          return MHD_YES;
        }
      q->counted += size;
      if (size && write_all (q->up_fd, data, size) < 0)
        {
          fail_body (q, errno == ENOSPC || errno == EDQUOT ? 413 : 500,
                     error_fmt ("file_write_failed", "file", "the upload could not be kept: %s",
                                strerror (errno)));
          return MHD_YES;
        }
      q->up_bytes += size;
      return MHD_YES;
    }
  if (q->route == R_FILES && strcmp (key, "purpose") == 0)
    field = &q->purpose;
  else if (q->route == R_CFILES && strcmp (key, "file_id") == 0)
    field = &q->file_id;
  else if (q->route == R_FILES && strcmp (key, "expires_after[anchor]") == 0)
    return MHD_YES; /* stored files do not expire here */
  else if (q->route == R_FILES && strcmp (key, "expires_after[seconds]") == 0)
    return MHD_YES;
  else
    {
      fail_body (q, 400, error_fmt ("unknown_parameter", key, "Unknown parameter: '%s'.", key));
      return MHD_YES;
    }
  {
    size_t have = *field ? strlen (*field) : 0;
    if (off == 0)
      have = 0;
    if (have + size > FIELD_MAX || memchr (data, 0, size))
      {
        fail_body (q, 400, error_fmt ("invalid_value", key, "'%s' is too long", key));
        return MHD_YES;
      }
    *field = xrealloc (off == 0 ? (free (*field), NULL) : *field, have + size + 1);
    memcpy (*field + have, data, size);
    (*field)[have + size] = 0;
  }
  return MHD_YES;
}

/* The largest JSON body of the request's route: /mcp's carry files (base64). */
static uint64_t
json_limit (const struct req *q)
{
  if (q->route == R_MCP)
    return mcp_cfg.file_max / 3 * 4 + (1u << 20);
  return gw.max_body;
}

/* How much of a body over LIMIT is still read (and dropped) before the connection is cut. */
static uint64_t
drain_limit (uint64_t limit)
{
  return 2 * limit + (16u << 20);
}

/* Set up the body of a request that takes one; false when the request is refused at once
   (*RET_STATUS and *RET_JSON say how). */
static bool
body_begin (struct MHD_Connection *conn, struct req *q, unsigned *ret_status, char **ret_json)
{
  const char *ct = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Content-Type");
  const char *cl = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Content-Length");
  bool multipart = ct && strncasecmp (ct, "multipart/form-data", 19) == 0;
  uint64_t declared = 0;
  uint64_t limit = multipart ? gw.max_upload + 65536 : json_limit (q);
  if (cl && parse_u64 (cl, &declared) == 0 && declared > limit)
    {
      const char *expect = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Expect");
      char *json
          = error_fmt (multipart ? "file_too_large" : "body_too_large", multipart ? "file" : NULL,
                       "the request body of %llu bytes is larger than the limit of %llu bytes",
                       (unsigned long long)declared, (unsigned long long)limit);
      /* a client that waits for 100-continue sent nothing yet, and one whose body is far too
         large is not read: both are answered at once (then the connection closes); any other
         is read to its end, dropping the bytes, so that it reads the answer instead of a reset */
      if ((expect && strcasecmp (expect, "100-continue") == 0) || declared > drain_limit (limit))
        {
          *ret_status = 413;
          *ret_json = json;
          return false;
        }
      fail_body (q, 413, json);
      q->body_kind = multipart ? BODY_MULTIPART : BODY_JSON;
      return true;
    }
  if (!multipart)
    {
      if (q->route == R_FILES)
        {
          *ret_status = 400;
          *ret_json = error_fmt ("invalid_request", NULL,
                                 "files are uploaded as multipart/form-data with 'file' and "
                                 "'purpose'");
          return false;
        }
      q->body_kind = BODY_JSON;
      return true;
    }
  if (q->route != R_FILES && q->route != R_CFILES)
    {
      *ret_status = 400;
      *ret_json = error_fmt ("invalid_request", NULL, "this endpoint takes a JSON body");
      return false;
    }
  q->body_kind = BODY_MULTIPART;
  q->pp = MHD_create_post_processor (conn, 65536, post_iter, q);
  if (q->pp == NULL)
    {
      *ret_status = 400;
      *ret_json
          = error_fmt ("invalid_request", NULL, "the multipart/form-data body has no boundary");
      return false;
    }
  if (q->route == R_FILES)
    {
      _cleanup_error_ capsule_error *err = NULL;
      if (fstore_begin (&gw.store, q->tenant, &q->fup, &err) < 0)
        {
          fprintf (stderr, "capsule-gateway: files: %s\n", err->msg);
          *ret_status = 500;
          *ret_json = error_json ("server_error", "server_error", NULL,
                                  "the file store cannot take uploads");
          return false;
        }
      q->up_fd = q->fup.fd;
    }
  else
    {
      q->up_fd = memfd_create ("capsule-gateway-upload", MFD_CLOEXEC);
      if (q->up_fd < 0)
        {
          *ret_status = 500;
          *ret_json = error_json ("server_error", "server_error", NULL, "no memory for uploads");
          return false;
        }
    }
  return true;
}

static void
body_data (struct req *q, const char *data, size_t size)
{
  q->body_bytes += size;
  if (q->err_status)
    return;
  if (q->body_kind == BODY_MULTIPART)
    {
      if (too_large (q, q->body_bytes, gw.max_upload + 65536, "file"))
        return;
      if (MHD_post_process (q->pp, data, size) != MHD_YES && !q->err_status)
        fail_body (
            q, 400,
            error_fmt ("invalid_request", NULL, "the multipart/form-data body is malformed"));
      return;
    }
  if (q->body_kind == BODY_JSON && !too_large (q, q->body_bytes, json_limit (q), NULL))
    buf_append (&q->body, data, size);
}

/* ------------------------------------------------------------------ routing */

static char *
segment (const char **p)
{
  const char *s = *p, *e = strchr (s, '/');
  size_t n = e ? (size_t)(e - s) : strlen (s);
  char *r = strndup (s, n);
  *p = e ? e + 1 : s + n;
  return r;
}

static void
route (struct req *q, const char *url)
{
  const char *p;
  _cleanup_free_ char *rest = NULL;
  size_t n = 0;
  char *seg[6] = { 0 };
  if (strcmp (url, "/mcp") == 0 || strcmp (url, "/mcp/") == 0)
    {
      q->route = R_MCP;
      return;
    }
  if (strncmp (url, "/v1/", 4) != 0)
    return;
  p = url + 4;
  while (*p && n < ARRAY_SIZE (seg))
    seg[n++] = segment (&p);
  if (*p || n == 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (seg[i][0] == 0)
      goto out;
  if (strcmp (seg[0], "containers") == 0)
    {
      if (n == 1)
        q->route = R_CONTAINERS;
      else if (n == 2)
        q->route = R_CONTAINER;
      else if (n == 3 && strcmp (seg[2], "files") == 0)
        q->route = R_CFILES;
      else if (n == 3 && strcmp (seg[2], "executions") == 0)
        q->route = R_EXECUTIONS;
      else if (n == 4 && strcmp (seg[2], "files") == 0)
        q->route = R_CFILE;
      else if (n == 5 && strcmp (seg[2], "files") == 0 && strcmp (seg[4], "content") == 0)
        q->route = R_CFILE_CONTENT;
      if (n >= 2)
        q->id = steal_pointer (&seg[1]);
      if (n >= 4)
        q->fid = steal_pointer (&seg[3]);
    }
  else if (strcmp (seg[0], "files") == 0)
    {
      if (n == 1)
        q->route = R_FILES;
      else if (n == 2)
        q->route = R_FILE;
      else if (n == 3 && strcmp (seg[2], "content") == 0)
        q->route = R_FILE_CONTENT;
      if (n >= 2)
        q->id = steal_pointer (&seg[1]);
    }
out:
  for (size_t i = 0; i < ARRAY_SIZE (seg); i++)
    free (seg[i]);
}

/* Which methods a route takes; does METHOD take a body there? */
static bool
allowed (const struct req *q, bool *ret_body)
{
  *ret_body = false;
  switch (q->route)
    {
    case R_CONTAINERS:
    case R_CFILES:
    case R_FILES:
      *ret_body = q->post;
      return q->get || q->post;
    case R_CONTAINER:
    case R_CFILE:
    case R_FILE:
      return q->get || q->del;
    case R_CFILE_CONTENT:
    case R_FILE_CONTENT:
      return q->get;
    case R_EXECUTIONS:
      *ret_body = true;
      return q->post;
    case R_MCP:
      /* GET is answered 405 by MCP's rules, with its Allow */
      *ret_body = q->post;
      return true;
    case R_NONE:
      break;
    }
  return false;
}

static enum MHD_Result
dispatch (struct MHD_Connection *conn, struct req *q)
{
  switch (q->route)
    {
    case R_CONTAINERS:
      return q->post ? containers_create (conn, q) : containers_list (conn, q);
    case R_CONTAINER:
      return container_call (conn, q, q->del ? "containers.delete" : "containers.retrieve", false);
    case R_CFILES:
      return q->post ? cfiles_create (conn, q) : cfiles_list (conn, q);
    case R_CFILE:
      return container_call (conn, q, q->del ? "files.delete" : "files.retrieve", true);
    case R_CFILE_CONTENT:
      return cfile_content (conn, q);
    case R_EXECUTIONS:
      return executions_create (conn, q);
    case R_FILES:
      return q->post ? files_create (conn, q) : files_list (conn, q);
    case R_FILE:
      return q->del ? file_delete (conn, q) : file_retrieve (conn, q);
    case R_FILE_CONTENT:
      return file_content (conn, q);
    case R_MCP:
      if (shim_of (conn) == NULL)
        return respond_error (conn, 500, "server_error", NULL, "no shim connection");
      buf_append (&q->body, "", 1);
      return mcp_http (conn, q->tenant, q->method, buf_bytes (&q->body), buf_size (&q->body) - 1,
                       shim_of (conn));
    case R_NONE:
      break;
    }
  return respond_error (conn, 404, NULL, NULL, "not found");
}

/* ------------------------------------------------------------------ authentication */

/* NULL, or the 401 answer's JSON. */
static char *
authenticate (struct MHD_Connection *conn, struct req *q)
{
  const char *h = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Authorization");
  const char *key;
  bool ok;
  if (h == NULL || strncasecmp (h, "Bearer ", 7) != 0)
    {
      return error_json ("invalid_request_error", NULL, NULL,
                         "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                         "YOUR_KEY).");
    }
  key = h + 7;
  while (*key == ' ')
    key++;
  pthread_mutex_lock (&gw.keys_lock);
  ok = keys_lookup (&gw.keys, key, strlen (key), q->tenant);
  pthread_mutex_unlock (&gw.keys_lock);
  if (!ok)
    return error_json ("invalid_request_error", "invalid_api_key", NULL,
                       "Incorrect API key provided.");
  return NULL;
}

#define REFUSE_DRAIN_MAX (1u << 20)

/* Refuse a request before its body is read: a small body (what an SDK sends with a wrong key or
   to a wrong path) is read and dropped first, so that the client reads the answer instead of a
   reset; a large one, or one that waits for 100-continue, is answered at once. */
static enum MHD_Result
refuse (struct MHD_Connection *conn, struct req *q, unsigned status, char *json)
{
  const char *cl = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Content-Length");
  const char *te = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Transfer-Encoding");
  const char *expect = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "Expect");
  uint64_t n = 0;
  bool body = (cl && parse_u64 (cl, &n) == 0 && n > 0) || te;
  if (!body || (expect && strcasecmp (expect, "100-continue") == 0) || n > REFUSE_DRAIN_MAX)
    return respond_json (conn, status, json);
  fail_body (q, status, json);
  q->drain_max = REFUSE_DRAIN_MAX;
  return MHD_YES;
}

/* ------------------------------------------------------------------ MHD's callbacks */

static enum MHD_Result
count_value (void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  size_t *n = cls;
  (void)kind;
  *n += strlen (key) + (value ? strlen (value) : 0) + 4; /* ": " and CRLF, or "=" and "&" */
  return MHD_YES;
}

/* The request line and headers: libmicrohttpd's own limit (its memory pool) answers with an
   HTML page, so ours is lower and answers in OpenAI's shape. */
static bool
headers_too_large (struct MHD_Connection *conn, const char *url)
{
  size_t n = strlen (url);
  MHD_get_connection_values (conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, count_value, &n);
  return n > HEADERS_MAX;
}

enum MHD_Result
api_handle (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
            const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
  struct req *q = *req_cls;
  (void)cls;
  (void)version;
  if (q == NULL)
    {
      bool takes_body;
      unsigned status = 0;
      char *json = NULL;
      q = xmalloc0 (sizeof *q);
      q->up_fd = -1;
      q->fup.fd = -1;
      *req_cls = q;
      q->get = strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0;
      q->post = strcmp (method, "POST") == 0;
      q->del = strcmp (method, "DELETE") == 0;
      q->method = xstrdup (method);
      guard_request (guard_of (conn));
      if (headers_too_large (conn, url))
        return refuse (conn, q, 431,
                       error_fmt ("request_header_fields_too_large", NULL,
                                  "the request line and headers are larger than %u bytes",
                                  HEADERS_MAX));
      if ((json = authenticate (conn, q)))
        return refuse (conn, q, 401, json);
      route (q, url);
      if (q->route == R_NONE)
        {
          _cleanup_free_ char *m = xasprintf ("Invalid URL (%s %s)", method, url);
          return refuse (conn, q, 404, error_json ("invalid_request_error", NULL, NULL, m));
        }
      if (!allowed (q, &takes_body))
        {
          _cleanup_free_ char *m = xasprintf ("Invalid method for URL (%s %s)", method, url);
          return refuse (conn, q, 405, error_json ("invalid_request_error", NULL, NULL, m));
        }
      if (takes_body && !body_begin (conn, q, &status, &json))
        return refuse (conn, q, status, json);
      return MHD_YES;
    }
  if (*upload_data_size)
    {
      guard_body (guard_of (conn), *upload_data_size);
      body_data (q, upload_data, *upload_data_size);
      *upload_data_size = 0;
      /* an endless body (chunked) is cut off */
      if (q->err_status
          && q->body_bytes > (q->drain_max
                                  ? q->drain_max
                                  : drain_limit (q->body_kind == BODY_MULTIPART ? gw.max_upload
                                                                                : json_limit (q))))
        return MHD_NO;
      return MHD_YES;
    }
  guard_answer (guard_of (conn));
  if (q->pp)
    {
      /* a body that ended inside a part (no closing boundary) is refused, not half taken */
      enum MHD_Result whole = MHD_destroy_post_processor (q->pp);
      q->pp = NULL;
      if (whole != MHD_YES)
        fail_body (q, 400,
                   error_fmt ("invalid_request", NULL,
                              "the multipart/form-data body ends before its closing boundary"));
    }
  if (q->err_status)
    {
      unsigned st = q->err_status;
      return respond_json (conn, st, steal_pointer (&q->err_json));
    }
  return dispatch (conn, q);
}

void
api_completed (void *cls, struct MHD_Connection *conn, void **req_cls,
               enum MHD_RequestTerminationCode toe)
{
  struct req *q = *req_cls;
  (void)cls;
  (void)toe;
  guard_idle (guard_of (conn));
  if (q == NULL)
    return;
  __atomic_sub_fetch (&gw.uploading, q->counted, __ATOMIC_RELAXED);
  if (q->pp)
    MHD_destroy_post_processor (q->pp);
  if (q->fup.fd >= 0 || q->fup.tmp_path)
    fstore_abort (&q->fup); /* an upload that did not become a file */
  else if (q->up_fd >= 0)
    close (q->up_fd);
  buf_release (&q->body);
  free (q->id);
  free (q->method);
  free (q->fid);
  free (q->filename);
  free (q->purpose);
  free (q->file_id);
  free (q->err_json);
  free (q);
  *req_cls = NULL;
}

void
api_connection (void *cls, struct MHD_Connection *conn, void **socket_context,
                enum MHD_ConnectionNotificationCode toe)
{
  (void)cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    {
      struct conn_ctx *c = xmalloc0 (sizeof *c);
      const union MHD_ConnectionInfo *ci
          = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_CONNECTION_FD);
      c->shim.fd = -1;
      c->shim.in_fd = -1;
      c->guard.fd = -1;
      if (ci)
        guard_add (&c->guard, ci->connect_fd);
      *socket_context = c;
    }
  else if (*socket_context)
    {
      struct conn_ctx *c = *socket_context;
      /* off the guard's list before libmicrohttpd closes the socket */
      guard_remove (&c->guard);
      shimc_close (&c->shim);
      free (c);
      *socket_context = NULL;
    }
}
