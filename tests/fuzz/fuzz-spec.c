/* libFuzzer harness: config.json, process.json and resources.json parsing must fail cleanly, never
 * crash, on any bytes.  Built by tests/fuzz/run (clang -fsanitize=fuzzer,address,undefined). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *text = malloc (size + 1);
  capsule_error *err = NULL;
  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  spec_free (spec_parse (text, "config.json", "/bundle", &err));
  capsule_error_free (err);
  err = NULL;
  spec_process_free (spec_process_parse (text, "process.json", &err));
  capsule_error_free (err);
  err = NULL;
  spec_resources_free (spec_resources_parse (text, "resources.json", &err));
  capsule_error_free (err);
  free (text);
  return 0;
}
