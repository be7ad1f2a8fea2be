/* capsule: JSON.  Reading is our own parser (one pass, the tree in a few arena blocks: a config,
 * a JSON-RPC line or an HTTP body costs two or three allocations, not one per value); writing
 * streams through yajl's generator. */
#define _GNU_SOURCE
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "utils.h"

enum json_type
{
  J_NULL,
  J_FALSE,
  J_TRUE,
  J_NUMBER,
  J_STRING,
  J_ARRAY,
  J_OBJECT,
};

/* What a number holds: an integer (no fraction, no exponent) that fits a long long, one beyond
   INT64_MAX that fits 64 bits unsigned (seccomp's argument values), or anything else as a double. */
enum json_num
{
  N_INT,
  N_U64,
  N_DOUBLE,
};

/* 24 bytes: a document of a million values (JSON_MAX_VALUES) costs some 32 MB, whatever its text */
struct json_value
{
  unsigned char type;
  unsigned char num; /* enum json_num */
  uint32_t n;        /* members of an object, items of an array */
  union
  {
    const char *s;
    long long i;
    uint64_t u;
    double d;
    json_value **items;
    struct
    {
      const char **keys;
      json_value **values;
    } obj;
  } u;
};

/* ---------------------------------------------------------------- the arena */

struct chunk
{
  struct chunk *next;
  size_t used, cap;
  alignas (max_align_t) char data[];
};

/* What json_parse returns points at ROOT: json_free finds the blocks from there. */
struct document
{
  struct chunk *chunks;
  bool has_nul;
  json_value root;
};

struct parser
{
  const char *text, *p, *what;
  struct chunk *chunks;
  size_t values, depth;
  /* the items of the arrays and objects still open, and the keys of the objects */
  void **stack; /* json_value * */
  void **keys;  /* const char * */
  size_t top, cap, ktop, kcap;
  capsule_error **err;
  size_t first; /* the first block's size: the tree of a document is a few times its text */
  unsigned flags;
  bool failed, has_nul;
};

/* Everything in the arena is a value, an array of pointers or a string: pointer alignment does */
#define ARENA_ALIGN alignof (json_value)
_Static_assert(alignof (json_value) >= alignof (void *), "values align pointers too");

static void *
arena_alloc (struct parser *ps, size_t size)
{
  struct chunk *c = ps->chunks;
  size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (c == NULL || c->cap - c->used < size)
    {
      size_t cap = c ? c->cap * 2 : ps->first;
      while (cap < size)
        cap *= 2;
      c = xmalloc0 (sizeof *c + cap);
      c->cap = cap;
      c->next = ps->chunks;
      ps->chunks = c;
    }
  c->used += size;
  return c->data + c->used - size;
}

static void
chunks_free (struct chunk *c)
{
  while (c)
    {
      struct chunk *next = c->next;
      free (c);
      c = next;
    }
}

/* ---------------------------------------------------------------- errors */

__attribute__ ((format (printf, 3, 4))) static void *
fail (struct parser *ps, int status, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  size_t line = 1, col = 1;
  va_list ap;
  if (ps->failed)
    return NULL;
  ps->failed = true;
  for (const char *q = ps->text; q < ps->p; q++)
    if (*q == '\n')
      line++, col = 1;
    else
      col++;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    abort ();
  va_end (ap);
  if (status == EINVAL)
    capsule_error_make (ps->err, EINVAL, "%s: invalid JSON: %s at line %zu, column %zu", ps->what,
                        msg, line, col);
  else
    capsule_error_make (ps->err, status, "%s: %s", ps->what, msg);
  return NULL;
}

static void *
unexpected (struct parser *ps, const char *wanted)
{
  unsigned char c = (unsigned char)*ps->p;
  if (c == '\0')
    return fail (ps, EINVAL, "the text ends where %s should be", wanted);
  if (c >= 0x20 && c < 0x7f)
    return fail (ps, EINVAL, "'%c' where %s should be", c, wanted);
  return fail (ps, EINVAL, "byte 0x%02x where %s should be", c, wanted);
}

/* ---------------------------------------------------------------- values */

static void
skip_space (struct parser *ps)
{
  while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
    ps->p++;
}

static json_value *
new_value (struct parser *ps, unsigned char type)
{
  json_value *v;
  if (++ps->values > JSON_MAX_VALUES)
    return fail (ps, E2BIG, "more than %d values", JSON_MAX_VALUES);
  v = arena_alloc (ps, sizeof *v);
  memset (v, 0, sizeof *v);
  v->type = type;
  return v;
}

static int
hex4 (const char *p, unsigned *ret)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++)
    {
      char c = p[i];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return -1;
    }
  *ret = v;
  return 0;
}

static char *
put_utf8 (char *o, unsigned cp)
{
  if (cp < 0x80)
    *o++ = cp;
  else if (cp < 0x800)
    {
      *o++ = 0xc0 | (cp >> 6);
      *o++ = 0x80 | (cp & 0x3f);
    }
  else if (cp < 0x10000)
    {
      *o++ = 0xe0 | (cp >> 12);
      *o++ = 0x80 | ((cp >> 6) & 0x3f);
      *o++ = 0x80 | (cp & 0x3f);
    }
  else
    {
      *o++ = 0xf0 | (cp >> 18);
      *o++ = 0x80 | ((cp >> 12) & 0x3f);
      *o++ = 0x80 | ((cp >> 6) & 0x3f);
      *o++ = 0x80 | (cp & 0x3f);
    }
  return o;
}

static size_t utf8_sequence (const unsigned char *p);

/* PS->p at the opening quote.  The decoded string, in the arena: valid UTF-8; a lone surrogate
   escape becomes U+FFFD.  A \u0000 is valid JSON and parses, but every string here is used as a
   C string, which it would cut short: the document says it held one (json_has_nul) for the
   caller to refuse it in its own terms, with the request's id. */
static const char *
parse_string (struct parser *ps)
{
  const char *start = ++ps->p, *q = start;
  char *out, *o;
  /* the raw length bounds the decoded one: an escape never grows (\uXXXX is 6 bytes for at most
     3, a pair 12 for 4) */
  while (*q != '"')
    {
      if (*q == '\0')
        {
          ps->p = q;
          return fail (ps, EINVAL, "a string that does not end");
        }
      if (*q == '\\' && q[1] != '\0')
        q++;
      q++;
    }
  o = out = arena_alloc (ps, q - start + 1);
  for (const char *p = start; p < q;)
    {
      unsigned char c = (unsigned char)*p;
      if (c < 0x20)
        {
          ps->p = p;
          return fail (ps, EINVAL, "control character 0x%02x inside a string", c);
        }
      if (c >= 0x80)
        {
          size_t n = utf8_sequence ((const unsigned char *)p);
          /* a sequence may not run past the closing quote */
          if (n == 0 || p + n > q)
            {
              ps->p = p;
              return fail (ps, EINVAL, "invalid UTF-8 inside a string");
            }
          memcpy (o, p, n);
          o += n;
          p += n;
          continue;
        }
      if (c != '\\')
        {
          *o++ = c;
          p++;
          continue;
        }
      p++;
      switch (*p)
        {
        case '"':
        case '\\':
        case '/':
          *o++ = *p++;
          break;
        case 'b':
          *o++ = '\b', p++;
          break;
        case 'f':
          *o++ = '\f', p++;
          break;
        case 'n':
          *o++ = '\n', p++;
          break;
        case 'r':
          *o++ = '\r', p++;
          break;
        case 't':
          *o++ = '\t', p++;
          break;
        case 'u':
          {
            unsigned cp, lo;
            if (q - p < 5 || hex4 (p + 1, &cp) < 0)
              {
                ps->p = p - 1;
                return fail (ps, EINVAL, "a \\u escape without four hex digits");
              }
            p += 5;
            if (cp == 0 && (ps->flags & JSON_NUL_REFUSE))
              {
                ps->p = p - 6;
                return fail (ps, EINVAL, "a \\u0000 (NUL) inside a string");
              }
            if (cp == 0 && (ps->flags & JSON_NUL_REPLACE))
              cp = 0xfffd;
            else if (cp == 0)
              ps->has_nul = true;
            if (cp >= 0xd800 && cp <= 0xdbff && q - p >= 6 && p[0] == '\\' && p[1] == 'u'
                && hex4 (p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
              {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
              }
            else if (cp >= 0xd800 && cp <= 0xdfff)
              cp = 0xfffd;
            o = put_utf8 (o, cp);
            break;
          }
        default:
          ps->p = p - 1;
          return fail (ps, EINVAL, "an unknown escape inside a string");
        }
    }
  *o = '\0';
  ps->p = q + 1;
  return out;
}

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

/* Past one digit or more at *P; false, *P unmoved, where there is none. */
static bool
skip_digits (const char **p)
{
  if (!is_digit (**p))
    return false;
  while (is_digit (**p))
    (*p)++;
  return true;
}

/* Numbers read the same whatever locale a program sets */
static locale_t
c_locale (void)
{
  static locale_t c;
  locale_t l = __atomic_load_n (&c, __ATOMIC_ACQUIRE);
  if (l == (locale_t)0)
    {
      l = newlocale (LC_ALL_MASK, "C", (locale_t)0);
      if (l == (locale_t)0)
        abort ();
      __atomic_store_n (&c, l, __ATOMIC_RELEASE);
    }
  return l;
}

static json_value *
parse_number (struct parser *ps)
{
  const char *start = ps->p, *p = start;
  bool integer = true;
  json_value *v;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (!skip_digits (&p))
    {
      ps->p = p;
      return unexpected (ps, "a digit");
    }
  if (*p == '.')
    {
      integer = false;
      p++;
      if (!skip_digits (&p))
        {
          ps->p = p;
          return unexpected (ps, "a digit after the decimal point");
        }
    }
  if (*p == 'e' || *p == 'E')
    {
      integer = false;
      p++;
      if (*p == '+' || *p == '-')
        p++;
      if (!skip_digits (&p))
        {
          ps->p = p;
          return unexpected (ps, "a digit of the exponent");
        }
    }
  v = new_value (ps, J_NUMBER);
  if (v == NULL)
    return NULL;
  /* strtoll and strtod stop where the number just read ends (after "0x" strtod would read on,
     but the 'x' fails the document anyway) */
  v->num = N_DOUBLE;
  if (integer)
    {
      long long i;
      unsigned long long u;
      errno = 0;
      i = strtoll (start, NULL, 10);
      if (errno == 0)
        v->num = N_INT, v->u.i = i;
      else if (*start != '-' && (errno = 0, u = strtoull (start, NULL, 10), errno == 0))
        v->num = N_U64, v->u.u = u;
    }
  if (v->num == N_DOUBLE)
    {
      errno = 0;
      v->u.d = strtod_l (start, NULL, c_locale ());
      /* what would be written back as inf is no number JSON can carry on: refuse it */
      if (errno == ERANGE && isinf (v->u.d))
        {
          ps->p = start;
          return fail (ps, EINVAL, "a number beyond a double's range");
        }
    }
  ps->p = p;
  return v;
}

/* Append P to the growable array *V of *N (capacity *CAP) pointers. */
static void
push (void ***v, size_t *n, size_t *cap, void *p)
{
  if (*n == *cap)
    {
      *cap = *cap ? *cap * 2 : 64;
      *v = xrealloc (*v, *cap * sizeof **v);
    }
  (*v)[(*n)++] = p;
}

static json_value *parse_value (struct parser *ps);

static json_value *
parse_container (struct parser *ps, bool object)
{
  json_value *v = new_value (ps, object ? J_OBJECT : J_ARRAY);
  size_t base = ps->top, kbase = ps->ktop;
  char close = object ? '}' : ']';
  if (v == NULL)
    return NULL;
  if (++ps->depth > JSON_MAX_DEPTH)
    return fail (ps, ELOOP, "nested deeper than %d levels", JSON_MAX_DEPTH);
  ps->p++;
  skip_space (ps);
  if (*ps->p == close)
    ps->p++;
  else
    for (;;)
      {
        json_value *item;
        if (object)
          {
            const char *k;
            if (*ps->p != '"')
              return unexpected (ps, "a member's name in quotes");
            k = parse_string (ps);
            if (k == NULL)
              return NULL;
            push (&ps->keys, &ps->ktop, &ps->kcap, (void *)k);
            skip_space (ps);
            if (*ps->p != ':')
              return unexpected (ps, "':' after a member's name");
            ps->p++;
            skip_space (ps);
          }
        item = parse_value (ps);
        if (item == NULL)
          return NULL;
        push (&ps->stack, &ps->top, &ps->cap, item);
        skip_space (ps);
        if (*ps->p == ',')
          {
            ps->p++;
            skip_space (ps);
            continue;
          }
        if (*ps->p == close)
          {
            ps->p++;
            break;
          }
        return unexpected (ps, object ? "',' or '}'" : "',' or ']'");
      }
  v->n = ps->top - base;
  if (v->n)
    {
      json_value **items = arena_alloc (ps, v->n * sizeof *items);
      memcpy (items, ps->stack + base, v->n * sizeof *items);
      if (object)
        {
          const char **keys = arena_alloc (ps, v->n * sizeof *keys);
          memcpy (keys, ps->keys + kbase, v->n * sizeof *keys);
          v->u.obj.keys = keys;
          v->u.obj.values = items;
        }
      else
        v->u.items = items;
    }
  ps->top = base;
  ps->ktop = kbase;
  ps->depth--;
  return v;
}

static json_value *
literal (struct parser *ps, const char *word, unsigned char type)
{
  size_t n = strlen (word);
  if (strncmp (ps->p, word, n) != 0)
    return unexpected (ps, "a value");
  ps->p += n;
  return new_value (ps, type);
}

static json_value *
parse_value (struct parser *ps)
{
  switch (*ps->p)
    {
    case '{':
      return parse_container (ps, true);
    case '[':
      return parse_container (ps, false);
    case '"':
      {
        json_value *v = new_value (ps, J_STRING);
        if (v == NULL || (v->u.s = parse_string (ps)) == NULL)
          return NULL;
        return v;
      }
    case 't':
      return literal (ps, "true", J_TRUE);
    case 'f':
      return literal (ps, "false", J_FALSE);
    case 'n':
      return literal (ps, "null", J_NULL);
    default:
      if (*ps->p == '-' || is_digit (*ps->p))
        return parse_number (ps);
      return unexpected (ps, "a value");
    }
}

/* Depth (JSON_MAX_DEPTH, ELOOP) and size (JSON_MAX_VALUES, E2BIG) are bounded as the parser
   goes: a line of a few hundred thousand '[' stops at the 65th. */
json_value *
json_parse_n (const char *text, size_t len, unsigned flags, const char *what, capsule_error **err)
{
  struct parser ps = { .text = text,
                       .p = text,
                       .what = what,
                       .err = err,
                       .flags = flags,
                       .first = len < 1024        ? 4096
                                : len < (1 << 18) ? 4 * len
                                                  : 1 << 20 };
  const char *nul = memchr (text, '\0', len);
  struct document *doc = NULL;
  json_value *root;
  if (nul)
    {
      /* a line or a body with a NUL byte in it: the parse would end there, the rest unread */
      ps.p = nul;
      fail (&ps, EINVAL, "a NUL byte");
      return NULL;
    }
  skip_space (&ps);
  root = parse_value (&ps);
  if (root)
    {
      skip_space (&ps);
      if (*ps.p != '\0')
        root = fail (&ps, EINVAL, "more after the value");
    }
  free (ps.stack);
  free (ps.keys);
  if (root == NULL)
    {
      chunks_free (ps.chunks);
      return NULL;
    }
  doc = xmalloc0 (sizeof *doc);
  doc->chunks = ps.chunks;
  doc->has_nul = ps.has_nul;
  doc->root = *root;
  return &doc->root;
}

int
json_read_at (int dirfd, const char *path, size_t max, const char *what, char **ret,
              size_t *ret_len, capsule_error **err)
{
  char *text = NULL;
  size_t len, at;
  if (read_file_at (dirfd, path, max, &text, &len, err) < 0)
    return -1;
  at = strlen (text);
  if (at != len)
    {
      free (text);
      return capsule_error_make (err, EINVAL, "%s: invalid JSON: a NUL byte at byte %zu", what,
                                 at + 1);
    }
  *ret = text;
  if (ret_len)
    *ret_len = len;
  return 0;
}

json_value *
json_parse (const char *text, const char *what, capsule_error **err)
{
  return json_parse_n (text, strlen (text), 0, what, err);
}

bool
json_has_nul (const json_value *doc)
{
  return doc
         && ((const struct document *)((const char *)doc - offsetof (struct document, root)))
                ->has_nul;
}

void
json_free (json_value *v)
{
  struct document *doc;
  if (v == NULL)
    return;
  doc = (struct document *)((char *)v - offsetof (struct document, root));
  chunks_free (doc->chunks);
  free (doc);
}

bool
json_is_object (const json_value *v)
{
  return v && v->type == J_OBJECT;
}
bool
json_is_array (const json_value *v)
{
  return v && v->type == J_ARRAY;
}
bool
json_is_string (const json_value *v)
{
  return v && v->type == J_STRING;
}
bool
json_is_integer (const json_value *v)
{
  return v && v->type == J_NUMBER && v->num == N_INT;
}
bool
json_is_number (const json_value *v)
{
  return v && v->type == J_NUMBER;
}
bool
json_is_bool (const json_value *v)
{
  return v && (v->type == J_TRUE || v->type == J_FALSE);
}
bool
json_is_null (const json_value *v)
{
  return v && v->type == J_NULL;
}

const char *
json_type_name (const json_value *v)
{
  if (v == NULL)
    return "nothing";
  switch (v->type)
    {
    case J_STRING:
      return "a string";
    case J_NUMBER:
      return "a number";
    case J_OBJECT:
      return "an object";
    case J_ARRAY:
      return "an array";
    case J_TRUE:
    case J_FALSE:
      return "a boolean";
    case J_NULL:
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
  for (size_t i = v->n; i > 0; i--)
    if (strcmp (v->u.obj.keys[i - 1], key) == 0)
      return v->u.obj.values[i - 1];
  return NULL;
}
size_t
json_object_len (const json_value *v)
{
  return json_is_object (v) ? v->n : 0;
}
const char *
json_object_key (const json_value *v, size_t i)
{
  return v->u.obj.keys[i];
}
json_value *
json_object_value (const json_value *v, size_t i)
{
  return v->u.obj.values[i];
}
size_t
json_array_len (const json_value *v)
{
  return json_is_array (v) ? v->n : 0;
}
json_value *
json_array_get (const json_value *v, size_t i)
{
  return v->u.items[i];
}
const char *
json_string (const json_value *v)
{
  return json_is_string (v) ? v->u.s : NULL;
}
long long
json_integer (const json_value *v)
{
  return json_is_integer (v) ? v->u.i : 0;
}
double
json_double (const json_value *v)
{
  if (!json_is_number (v))
    return 0;
  return v->num == N_INT ? (double)v->u.i : v->num == N_U64 ? (double)v->u.u : v->u.d;
}
bool
json_bool (const json_value *v)
{
  return v->type == J_TRUE;
}
int
json_u64 (const json_value *v, uint64_t *ret)
{
  if (json_is_number (v) && v->num == N_INT && v->u.i >= 0)
    *ret = v->u.i;
  else if (json_is_number (v) && v->num == N_U64)
    *ret = v->u.u;
  else
    {
      errno = EINVAL;
      return -1;
    }
  return 0;
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
