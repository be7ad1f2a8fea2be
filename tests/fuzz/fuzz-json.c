/* libFuzzer harness: the JSON layer on any bytes.  Parsing never crashes and stops at its depth
 * and value limits; whatever parses, written back through the writer, is valid UTF-8 and parses
 * again to the same shape; sanitising any bytes gives valid UTF-8; hex of any string comes back.
 * Built by tests/fuzz/run (clang -fsanitize=fuzzer,address,undefined). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  v = json_parse (text, "fuzz", &err);
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
