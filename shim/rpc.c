/* capsule-shim: JSON-RPC framing and errors. */
#define _GNU_SOURCE
#include "rpc.h"

#include <stdarg.h>
#include <string.h>

#include "utils.h"

void
buf_append (struct buf *b, const void *data, size_t len)
{
  if (b->off > 0 && b->off == b->len)
    b->off = b->len = 0;
  if (b->len + len + 1 > b->cap && b->off > 0)
    {
      /* room at the front: move the unread bytes down once, instead of growing */
      memmove (b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
  if (b->len + len + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + len + 1)
        cap *= 2;
      b->data = xrealloc (b->data, cap);
      b->cap = cap;
    }
  memcpy (b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void
buf_consume (struct buf *b, size_t n)
{
  b->off += n < buf_size (b) ? n : buf_size (b);
  if (b->off < b->len)
    return;
  b->off = b->len = 0;
  if (b->cap > (1u << 20))
    buf_release (b); /* a large answer went out: give its memory back */
}

void
buf_release (struct buf *b)
{
  free (b->data);
  *b = (struct buf){ 0 };
}

void
line_reader_feed (struct line_reader *r, const char *data, size_t len)
{
  if (r->skipping)
    {
      const char *nl = memchr (data, '\n', len);
      if (nl == NULL)
        return;
      r->skipping = false;
      len -= nl + 1 - data;
      data = nl + 1;
    }
  buf_append (&r->b, data, len);
}

enum line_status
line_reader_next (struct line_reader *r, char **ret, size_t *ret_len)
{
  char *start = r->b.data ? r->b.data + r->b.off : NULL;
  size_t avail = buf_size (&r->b);
  char *nl = avail > r->scanned ? memchr (start + r->scanned, '\n', avail - r->scanned) : NULL;
  if (nl == NULL)
    {
      r->scanned = avail;
      if (avail > r->max)
        {
          buf_consume (&r->b, avail);
          r->scanned = 0;
          r->skipping = true;
          return LINE_TOO_LONG;
        }
      return LINE_NONE;
    }
  r->scanned = 0;
  /* the bytes of this line stay where they are until the next call or feed */
  r->b.off += nl + 1 - start;
  if ((size_t)(nl - start) > r->max)
    return LINE_TOO_LONG;
  *nl = '\0';
  *ret = start;
  *ret_len = nl - start;
  return LINE_OK;
}

void
line_reader_release (struct line_reader *r)
{
  buf_release (&r->b);
  r->scanned = 0;
  r->skipping = false;
}

static const char *
type_for (int http_status)
{
  if (http_status == 429)
    return "rate_limit_error";
  if (http_status >= 500)
    return "server_error";
  return "invalid_request_error";
}

struct rpc_error *
rpc_error_new (int http_status, const char *err_code, const char *param, const char *fmt, ...)
{
  struct rpc_error *e = xmalloc0 (sizeof *e);
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&e->message, fmt, ap) < 0)
    e->message = xstrdup ("error");
  va_end (ap);
  e->http_status = http_status;
  e->type = type_for (http_status);
  e->err_code = err_code;
  e->param = param ? xstrdup (param) : NULL;
  e->code = http_status >= 500 ? -32603 : -32000;
  return e;
}

struct rpc_error *
rpc_error_from (int http_status, const char *err_code, capsule_error *err)
{
  struct rpc_error *e = rpc_error_new (http_status, err_code, NULL, "%s",
                                       err && err->msg ? err->msg : "internal error");
  capsule_error_free (err);
  return e;
}

void
rpc_error_free (struct rpc_error *e)
{
  if (e == NULL)
    return;
  free (e->param);
  free (e->message);
  free (e);
}

char *
rpc_response_text (const char *id_json, const char *result_json)
{
  return xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n", id_json, result_json);
}

char *
rpc_error_text (const char *id_json, const struct rpc_error *e)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_open_object (w);
  json_w_kv_int (w, "code", e->code);
  json_w_kv_string (w, "message", e->message);
  json_w_key (w, "data");
  json_w_open_object (w);
  json_w_kv_string (w, "message", e->message);
  json_w_kv_string (w, "type", e->type);
  json_w_kv_string (w, "param", e->param);
  json_w_kv_string (w, "code", e->err_code);
  json_w_kv_int (w, "http_status", e->http_status);
  json_w_close_object (w);
  json_w_close_object (w);
  return xasprintf ("{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":%s}\n", id_json,
                    json_writer_text (w, NULL));
}

char *
rpc_notification_text (const char *method, const char *params_json)
{
  return xasprintf ("{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s}\n", method, params_json);
}

char *
rpc_id_text (const json_value *id)
{
  if (id == NULL || json_is_null (id))
    return xstrdup ("null");
  if (json_is_string (id))
    {
      _cleanup_json_writer_ json_writer *w = json_writer_new (false);
      json_w_string (w, json_string (id));
      return xstrdup (json_writer_text (w, NULL));
    }
  if (json_is_integer (id))
    return xasprintf ("%lld", json_integer (id));
  return NULL;
}

static const char *
type_name (enum param_type t)
{
  static const char *const names[]
      = { "a string", "an integer", "a boolean", "an object", "an array" };
  return names[t];
}

static bool
type_ok (const json_value *v, enum param_type t)
{
  switch (t)
    {
    case P_STRING:
      return json_is_string (v);
    case P_INT:
      return json_is_integer (v);
    case P_BOOL:
      return json_is_bool (v);
    case P_OBJECT:
      return json_is_object (v);
    case P_ARRAY:
      return json_is_array (v);
    }
  return false;
}

struct rpc_error *
rpc_check_params (const json_value *params, const struct param_spec *spec)
{
  for (const struct param_spec *p = spec; p->name; p++)
    {
      json_value *v = json_get (params, p->name);
      if (v == NULL || json_is_null (v))
        {
          if (p->required)
            return rpc_error_new (400, "missing_required_parameter", p->name,
                                  "missing required parameter '%s'", p->name);
          continue;
        }
      if (!type_ok (v, p->type))
        return rpc_error_new (400, "invalid_type", p->name, "'%s' must be %s, not %s", p->name,
                              type_name (p->type), json_type_name (v));
    }
  for (size_t i = 0; i < json_object_len (params); i++)
    {
      const char *key = json_object_key (params, i);
      const struct param_spec *p = spec;
      while (p->name && strcmp (p->name, key) != 0)
        p++;
      if (p->name == NULL)
        return rpc_error_new (400, "unknown_parameter", key, "unknown parameter '%s'", key);
    }
  return NULL;
}
