/* libFuzzer harness: the JSON layer on any bytes.  Parsing never crashes and stops at its depth
 * and value limits; whatever parses, written back through the writer, is valid UTF-8 and parses
 * again to the same shape; sanitising any bytes gives valid UTF-8; hex of any string comes back.
 * And our parser against yajl's (a second, independent reader): what ours takes yajl takes to
 * the same tree, numbers to the same value; what yajl takes and ours refuses is one of the
 * documented differences, each known by our message (comments, \v or \f as white space, text
 * after the value, UTF-8 that RFC 3629 does not allow, a number beyond a double's range, past the
 * depth or value limit), and a lone surrogate escape is U+FFFD in ours only where the text has
 * one.  A NUL byte is refused wherever it is; json_has_nul agrees with a scan of the text for an
 * unescaped \u0000.
 * Built by tests/fuzz/run (clang -fsanitize=fuzzer,address,undefined). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <stdbool.h>
#include <yajl/yajl_tree.h>

#include "json.h"
#include "shim-util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static size_t
write_back (json_writer *w, const json_value *v)
{
  size_t n = 1;
  if (json_is_object (v))
    {
      json_w_open_object (w);
      for (size_t i = 0; i < json_object_len (v); i++)
        {
          json_w_key (w, json_object_key (v, i));
          n += write_back (w, json_object_value (v, i));
        }
      json_w_close_object (w);
    }
  else if (json_is_array (v))
    {
      json_w_open_array (w);
      for (size_t i = 0; i < json_array_len (v); i++)
        n += write_back (w, json_array_get (v, i));
      json_w_close_array (w);
    }
  else if (json_is_string (v))
    json_w_string (w, json_string (v));
  else if (json_is_integer (v))
    json_w_int (w, json_integer (v));
  else if (json_is_bool (v))
    json_w_bool (w, json_bool (v));
  else
    json_w_null (w); /* doubles and null: their text is not the point here */
  return n;
}

static size_t
count (const json_value *v)
{
  size_t n = 1;
  for (size_t i = 0; i < json_object_len (v); i++)
    n += count (json_object_value (v, i));
  for (size_t i = 0; i < json_array_len (v); i++)
    n += count (json_array_get (v, i));
  return n;
}

/* does the text hold a \uD800-\uDFFF escape (which ours may read as U+FFFD, yajl otherwise)? */
static bool surrogates;

static bool
surrogate_escape (const char *text)
{
  for (const char *p = text; (p = strstr (p, "\\u")); p++)
    if ((p[2] == 'd' || p[2] == 'D') && p[3] && strchr ("89abcdefABCDEF", p[3]))
      return true;
  return false;
}

/* \u0000 not itself escaped: an odd run of backslashes before "u0000" */
static bool
nul_escape (const char *text)
{
  for (const char *p = text; (p = strstr (p, "u0000")); p++)
    {
      size_t backslashes = 0;
      for (const char *b = p - 1; b >= text && *b == '\\'; b--)
        backslashes++;
      if (backslashes % 2 == 1)
        return true;
    }
  return false;
}

/* the same tree: types, members in order, strings and numbers; a string may differ only where
   ours read a lone surrogate escape as U+FFFD */
static bool
same_text (const char *ours, const char *theirs)
{
  return strcmp (ours, theirs) == 0 || (surrogates && strstr (ours, "\xef\xbf\xbd"));
}

static bool
same (const json_value *a, yajl_val b)
{
  if (json_is_object (a))
    {
      if (!YAJL_IS_OBJECT (b) || json_object_len (a) != b->u.object.len)
        return false;
      for (size_t i = 0; i < json_object_len (a); i++)
        if (!same_text (json_object_key (a, i), b->u.object.keys[i])
            || !same (json_object_value (a, i), b->u.object.values[i]))
          return false;
      return true;
    }
  if (json_is_array (a))
    {
      if (!YAJL_IS_ARRAY (b) || json_array_len (a) != b->u.array.len)
        return false;
      for (size_t i = 0; i < json_array_len (a); i++)
        if (!same (json_array_get (a, i), b->u.array.values[i]))
          return false;
      return true;
    }
  if (json_is_string (a))
    return YAJL_IS_STRING (b) && same_text (json_string (a), b->u.string);
  if (json_is_integer (a))
    return YAJL_IS_INTEGER (b) && json_integer (a) == b->u.number.i;
  if (json_is_number (a))
    return YAJL_IS_NUMBER (b) && !YAJL_IS_INTEGER (b)
           && (!YAJL_IS_DOUBLE (b) || json_double (a) == b->u.number.d);
  if (json_is_bool (a))
    return json_bool (a) ? YAJL_IS_TRUE (b) : YAJL_IS_FALSE (b);
  return YAJL_IS_NULL (b);
}

static void
differential (const char *text, const json_value *ours, const capsule_error *err)
{
  int status = err ? err->status : 0;
  char errbuf[256];
  yajl_val theirs;
  /* yajl recurses without bound: keep it off documents ours refused for depth */
  if (status == ELOOP)
    return;
  theirs = yajl_tree_parse (text, errbuf, sizeof errbuf);
  if (ours)
    assert (theirs != NULL && same (ours, theirs));
  else if (theirs && status != E2BIG)
    {
      const char *m = err->msg;
      /* yajl checks a UTF-8 sequence's shape only (it takes overlong forms and encoded
         surrogates); ours takes RFC 3629's */
      bool high = false;
      for (const char *p = text; *p; p++)
        high |= (unsigned char)*p >= 0x80;
      /* nor does yajl keep to RFC 8259's four kinds of white space (it skips \v and \f too),
         it takes comments, lets some text after the value pass, and reads 1e400 as inf */
      assert ((high && strstr (m, "UTF-8"))
              || ((strstr (text, "/*") || strstr (text, "//")) && strstr (m, "'/'"))
              || (strpbrk (text, "\v\f") && (strstr (m, "0x0b") || strstr (m, "0x0c")))
              || strstr (m, "more after the value") || strstr (m, "beyond a double's range"));
    }
  yajl_tree_free (theirs);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *text = malloc (size + 1);
  capsule_error *err = NULL;
  json_value *v;
  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  v = json_parse_n (text, size, 0, "fuzz", &err);
  if (memchr (text, '\0', size))
    {
      /* a NUL byte anywhere is refused, not taken for the end */
      assert (v == NULL && strstr (err->msg, "a NUL byte"));
      capsule_error_free (err);
      err = NULL;
    }
  else
    {
      surrogates = surrogate_escape (text);
      differential (text, v, err);
    }
  if (v)
    {
      /* the flags: refused exactly where there is a \u0000, replaced it leaves none */
      json_value *refused = json_parse_n (text, size, JSON_NUL_REFUSE, "fuzz", &err);
      json_value *replaced = json_parse_n (text, size, JSON_NUL_REPLACE, "fuzz", &err);
      assert (json_has_nul (v) == nul_escape (text));
      assert ((refused == NULL) == json_has_nul (v));
      assert (replaced != NULL && !json_has_nul (replaced));
      json_free (refused);
      json_free (replaced);
      capsule_error_free (err);
      err = NULL;
    }
  if (v)
    {
      json_writer *w = json_writer_new (false);
      size_t n = write_back (w, v);
      const char *out = json_writer_text (w, NULL);
      json_value *again;
      assert (json_utf8_valid (out));
      again = json_parse (out, "written", &err);
      assert (again != NULL);
      assert (count (again) == n);
      json_free (again);
      json_writer_free (w);
      json_free (v);
    }
  capsule_error_free (err);
  {
    char *clean = json_utf8_sanitise (text);
    char *hex = hex_encode_string (text);
    char *back = hex_decode_string (hex);
    assert (json_utf8_valid (clean));
    assert (back != NULL && strcmp (back, text) == 0);
    free (clean);
    free (hex);
    free (back);
  }
  free (text);
  return 0;
}
