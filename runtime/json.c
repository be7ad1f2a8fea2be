/* capsule: JSON over yajl. */
#define _GNU_SOURCE
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "utils.h"

/* yajl builds its tree and frees it by recursion, with no bound on depth or size: a line of a
   few hundred thousand '[' takes the stack, and a long array of small values costs ~40 times its
   text in tree nodes.  So every document is measured first, in one pass, and refused past the
   limits before yajl sees it. */
static int
check_shape (const char *text, const char *what, capsule_error **err)
{
  size_t depth = 0, values = 0;
  bool in_string = false;
  for (const char *p = text; *p; p++)
    {
      char c = *p;
      if (in_string)
        {
          if (c == '\\' && p[1])
            p++;
          else if (c == '"')
            in_string = false;
          continue;
        }
      switch (c)
        {
        case '"':
          in_string = true;
          values++;
          break;
        case '[':
        case '{':
          if (++depth > JSON_MAX_DEPTH)
            return capsule_error_make (err, ELOOP, "%s: nested deeper than %d levels", what,
                                       JSON_MAX_DEPTH);
          values++;
          break;
        case ']':
        case '}':
          if (depth > 0)
            depth--;
          break;
        case ',':
          values++;
          break;
        default:
          break;
        }
      if (values > JSON_MAX_VALUES)
        return capsule_error_make (err, E2BIG, "%s: more than %d values", what, JSON_MAX_VALUES);
    }
  return 0;
}

json_value *
json_parse (const char *text, const char *what, capsule_error **err)
{
  char errbuf[1024] = "";
  json_value *v;
  if (check_shape (text, what, err) < 0)
    return NULL;
  v = yajl_tree_parse (text, errbuf, sizeof errbuf);
  if (v == NULL)
    {
      /* yajl's message spans lines and ends with a caret diagram; keep the first line. */
      char *nl = strchr (errbuf, '\n');
      if (nl)
        *nl = '\0';
      capsule_error_make (err, EINVAL, "%s: invalid JSON: %s", what,
                          errbuf[0] ? errbuf : "parse error");
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
  if (!json_utf8_valid (key))
    {
      _cleanup_free_ char *clean = json_utf8_sanitise (key);
      yajl_gen_string (w->g, (const unsigned char *)clean, strlen (clean));
      return;
    }
  yajl_gen_string (w->g, (const unsigned char *)key, strlen (key));
}
/* Length of the valid UTF-8 sequence at P (1-4), or 0 when the bytes there are not one. */
static size_t
utf8_sequence (const unsigned char *p)
{
  size_t n;
  uint32_t cp;
  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    n = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    n = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    n = 4, cp = p[0] & 0x07;
  else
    return 0;
  for (size_t i = 1; i < n; i++)
    {
      if ((p[i] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
      || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

bool
json_utf8_valid (const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p;)
    {
      size_t n = utf8_sequence (p);
      if (n == 0)
        return false;
      p += n;
    }
  return true;
}

char *
json_utf8_sanitise (const char *s)
{
  size_t len = strlen (s);
  char *out = xmalloc0 (len * 3 + 1), *o = out;
  for (const unsigned char *p = (const unsigned char *)s; *p;)
    {
      size_t n = utf8_sequence (p);
      if (n == 0)
        {
          memcpy (o, "\xef\xbf\xbd", 3); /* U+FFFD REPLACEMENT CHARACTER */
          o += 3;
          p++;
          continue;
        }
      memcpy (o, p, n);
      o += n;
      p += n;
    }
  *o = '\0';
  return out;
}

void
json_w_string (json_writer *w, const char *s)
{
  if (s == NULL)
    yajl_gen_null (w->g);
  else if (json_utf8_valid (s))
    yajl_gen_string (w->g, (const unsigned char *)s, strlen (s));
  else
    {
      /* what we write is always UTF-8: bytes that are not (a file name the sandbox made) are
         each shown as U+FFFD */
      _cleanup_free_ char *clean = json_utf8_sanitise (s);
      yajl_gen_string (w->g, (const unsigned char *)clean, strlen (clean));
    }
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

void
json_w_raw (json_writer *w, const char *json)
{
  /* yajl prints a number's text as given, in the generator's place: the way to put a value
     that is already JSON (and was made by our own writer) where a value goes */
  yajl_gen_number (w->g, json, strlen (json));
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
