/* libFuzzer harness: the shim's framing and request checks (line reader, NUL-escape scan, JSON,
 * parameter schema, tiers file, path normalisation, base64) on any bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rpc.h"
#include "shim-util.h"
#include "files.h"
#include "tiers.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const struct param_spec spec[] = { { "container_id", P_STRING, true },
                                            { "limit", P_INT, false },
                                            { "stream", P_BOOL, false },
                                            { NULL, 0, false } };
  struct line_reader r = { .max = 4096 };
  char *line, *text = malloc (size + 1);
  size_t len;
  enum line_status st;
  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  line_reader_feed (&r, (const char *)data, size);
  while ((st = line_reader_next (&r, &line, &len)) != LINE_NONE)
    if (st == LINE_OK)
      {
        capsule_error *err = NULL;
        json_value *v = json_parse (line, "request", &err);
        if (v)
          {
            rpc_error_free (rpc_check_params (json_get (v, "params"), spec));
            json_free (v);
          }
        capsule_error_free (err);
      }
  line_reader_release (&r);
  {
    char *rel = NULL;
    struct tiers t;
    capsule_error *err = NULL;
    unsigned char *dec = NULL;
    size_t n;
    rpc_error_free (files_normalise (text, &rel));
    free (rel);
    if (tiers_parse (text, "tiers.json", &t, &err) == 0)
      tiers_release (&t);
    capsule_error_free (err);
    if (base64_decode (text, size, &dec, &n) == 0)
      free (dec);
  }
  free (text);
  return 0;
}
