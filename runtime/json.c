/* capsule: JSON over yajl. */
#define _GNU_SOURCE
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "utils.h"

json_value *
json_parse (const char *text, const char *what, capsule_error **err)
{
  char errbuf[1024] = "";
  json_value *v = yajl_tree_parse (text, errbuf, sizeof errbuf);
  if (v == NULL)
    {
      /* yajl's message spans lines and ends with a caret diagram; keep the first line. */
      char *nl = strchr (errbuf, '\n');
      if (nl)
        *nl = '\0';
      capsule_error_make (err, 0, "%s: invalid JSON: %s", what, errbuf[0] ? errbuf : "parse error");
      return NULL;
    }
  return v;
}

void
json_free (json_value *v)
{
  if (v)
    yajl_tree_free (v);
}

bool
json_is_object (const json_value *v)
{
  return v && YAJL_IS_OBJECT (v);
}
bool
json_is_array (const json_value *v)
{
  return v && YAJL_IS_ARRAY (v);
}
bool
json_is_string (const json_value *v)
{
  return v && YAJL_IS_STRING (v);
}
bool
json_is_integer (const json_value *v)
{
  return v && YAJL_IS_INTEGER (v);
}
bool
json_is_number (const json_value *v)
{
  return v && YAJL_IS_NUMBER (v);
}
bool
json_is_bool (const json_value *v)
{
  return v && (YAJL_IS_TRUE (v) || YAJL_IS_FALSE (v));
}
bool
json_is_null (const json_value *v)
{
  return v && YAJL_IS_NULL (v);
}

const char *
json_type_name (const json_value *v)
{
  if (v == NULL)
    return "nothing";
  switch (v->type)
    {
    case yajl_t_string:
      return "a string";
    case yajl_t_number:
      return "a number";
    case yajl_t_object:
      return "an object";
    case yajl_t_array:
      return "an array";
    case yajl_t_true:
    case yajl_t_false:
      return "a boolean";
    case yajl_t_null:
      return "null";
    default:
      return "something unknown";
    }
}

json_value *
json_get (const json_value *v, const char *key)
{
  if (!json_is_object (v))
    return NULL;
  /* The last duplicate wins, as in most JSON readers. */
  for (size_t i = v->u.object.len; i > 0; i--)
    if (strcmp (v->u.object.keys[i - 1], key) == 0)
      return v->u.object.values[i - 1];
  return NULL;
}

size_t
json_object_len (const json_value *v)
{
  return json_is_object (v) ? v->u.object.len : 0;
}
const char *
json_object_key (const json_value *v, size_t i)
{
  return v->u.object.keys[i];
}
json_value *
json_object_value (const json_value *v, size_t i)
{
  return v->u.object.values[i];
}
size_t
json_array_len (const json_value *v)
{
  return json_is_array (v) ? v->u.array.len : 0;
}
json_value *
json_array_get (const json_value *v, size_t i)
{
  return v->u.array.values[i];
}
const char *
json_string (const json_value *v)
{
  return json_is_string (v) ? v->u.string : NULL;
}
long long
json_integer (const json_value *v)
{
  return v->u.number.i;
}
double
json_double (const json_value *v)
{
  return v->u.number.d;
}
bool
json_bool (const json_value *v)
{
  return YAJL_IS_TRUE (v);
}

int
json_u64 (const json_value *v, uint64_t *ret)
{
  if (!json_is_number (v))
    return -1;
  return parse_u64 (v->u.number.r, ret);
}

struct json_writer
{
  yajl_gen g;
};

json_writer *
json_writer_new (bool pretty)
{
  json_writer *w = xmalloc0 (sizeof *w);
  w->g = yajl_gen_alloc (NULL);
  if (w->g == NULL)
    abort ();
  if (pretty)
    {
      yajl_gen_config (w->g, yajl_gen_beautify, 1);
      yajl_gen_config (w->g, yajl_gen_indent_string, "  ");
    }
  return w;
}

void
json_writer_free (json_writer *w)
{
  if (w == NULL)
    return;
  yajl_gen_free (w->g);
  free (w);
}

void
json_w_open_object (json_writer *w)
{
  yajl_gen_map_open (w->g);
}
void
json_w_close_object (json_writer *w)
{
  yajl_gen_map_close (w->g);
}
void
json_w_open_array (json_writer *w)
{
  yajl_gen_array_open (w->g);
}
void
json_w_close_array (json_writer *w)
{
  yajl_gen_array_close (w->g);
}
void
json_w_key (json_writer *w, const char *key)
{
  yajl_gen_string (w->g, (const unsigned char *)key, strlen (key));
}
void
json_w_string (json_writer *w, const char *s)
{
  if (s == NULL)
    yajl_gen_null (w->g);
  else
    yajl_gen_string (w->g, (const unsigned char *)s, strlen (s));
}
void
json_w_int (json_writer *w, long long v)
{
  yajl_gen_integer (w->g, v);
}
void
json_w_bool (json_writer *w, bool v)
{
  yajl_gen_bool (w->g, v);
}
void
json_w_null (json_writer *w)
{
  yajl_gen_null (w->g);
}
void
json_w_kv_string (json_writer *w, const char *key, const char *s)
{
  json_w_key (w, key);
  json_w_string (w, s);
}
void
json_w_kv_int (json_writer *w, const char *key, long long v)
{
  json_w_key (w, key);
  json_w_int (w, v);
}
void
json_w_kv_bool (json_writer *w, const char *key, bool v)
{
  json_w_key (w, key);
  json_w_bool (w, v);
}
void
json_w_string_array (json_writer *w, const char *key, const char *const *v, size_t n)
{
  json_w_key (w, key);
  json_w_open_array (w);
  for (size_t i = 0; i < n; i++)
    json_w_string (w, v[i]);
  json_w_close_array (w);
}

char *
json_splice (const char *text, const char *marker, const char *raw)
{
  _cleanup_free_ char *token = xasprintf ("\"%s\"", marker);
  const char *at = strstr (text, token);
  if (at == NULL)
    return xstrdup (text);
  return xasprintf ("%.*s%s%s", (int)(at - text), text, raw, at + strlen (token));
}

const char *
json_writer_text (json_writer *w, size_t *ret_len)
{
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf (w->g, &buf, &len);
  if (ret_len)
    *ret_len = len;
  return (const char *)buf;
}
