/* capsule: JSON.  Reading builds a tree (our own parser, json.c); writing streams through yajl's
 * generator.  The rest of the code never names yajl. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct json_value json_value;

/* Parse TEXT (NUL-terminated), strict RFC 8259 (no comments, nothing after the value).  WHAT
 * names the document in errors ("config.json").  Documents nested deeper than JSON_MAX_DEPTH fail
 * with status ELOOP, those holding more than JSON_MAX_VALUES values with E2BIG, invalid ones (also
 * invalid UTF-8, a number beyond a double's range) with EINVAL, the message naming line and
 * column.  A lone surrogate escape reads as U+FFFD.  A string with \u0000 parses, cut short there
 * as a C string, and json_has_nul says so of its document: refuse it.  json_free takes the
 * document, never a value inside it. */
#define JSON_MAX_DEPTH  64
#define JSON_MAX_VALUES (1 << 20)
_Static_assert(JSON_MAX_VALUES < (1ll << 32), "a container's count is 32 bits");
json_value *json_parse (const char *text, const char *what, capsule_error **err);
/* The same of LEN bytes at TEXT (TEXT[LEN] is a NUL) that came off a socket or out of a file: a
 * NUL byte among them is refused, not taken for the end.  FLAGS: JSON_NUL_REFUSE refuses a
 * \u0000 escape as invalid JSON, JSON_NUL_REPLACE reads it as U+FFFD (output, where a NUL cut
 * short would lose the rest); with neither, json_has_nul tells. */
/* Read the text of a JSON file (read_file_at, at most MAX bytes) for a parser that takes a C
 * string: one with a NUL byte in it is refused here ("WHAT: invalid JSON: a NUL byte ..."), since
 * a parse would end there with the rest unread.  *RET_LEN may be NULL. */
int json_read_at (int dirfd, const char *path, size_t max, const char *what, char **ret,
                  size_t *ret_len, capsule_error **err);
#define JSON_NUL_REFUSE  1u
#define JSON_NUL_REPLACE 2u
json_value *json_parse_n (const char *text, size_t len, unsigned flags, const char *what,
                          capsule_error **err);
void json_free (json_value *v);
bool json_has_nul (const json_value *doc);
static inline void
json_freep (json_value **v)
{
  json_free (*v);
}
#define _cleanup_json_ __attribute__ ((cleanup (json_freep)))

bool json_is_object (const json_value *v);
bool json_is_array (const json_value *v);
bool json_is_string (const json_value *v);
bool json_is_integer (const json_value *v);
bool json_is_number (const json_value *v);
bool json_is_bool (const json_value *v);
bool json_is_null (const json_value *v);
const char *json_type_name (const json_value *v);

/* Object member KEY of V, NULL when V is no object or has no such member. */
json_value *json_get (const json_value *v, const char *key);
size_t json_object_len (const json_value *v);
const char *json_object_key (const json_value *v, size_t i);
json_value *json_object_value (const json_value *v, size_t i);
size_t json_array_len (const json_value *v);
json_value *json_array_get (const json_value *v, size_t i);
const char *json_string (const json_value *v);
long long json_integer (const json_value *v);
double json_double (const json_value *v);
bool json_bool (const json_value *v);
/* Unsigned integers beyond INT64_MAX (seccomp argument values) as yajl keeps their text. */
int json_u64 (const json_value *v, uint64_t *ret);

/* Writing. */
typedef struct json_writer json_writer;
json_writer *json_writer_new (bool pretty);
void json_writer_free (json_writer *w);
static inline void
json_writer_freep (json_writer **w)
{
  json_writer_free (*w);
}
#define _cleanup_json_writer_ __attribute__ ((cleanup (json_writer_freep)))
void json_w_open_object (json_writer *w);
void json_w_close_object (json_writer *w);
void json_w_open_array (json_writer *w);
void json_w_close_array (json_writer *w);
void json_w_key (json_writer *w, const char *key);
void json_w_string (json_writer *w, const char *s); /* NULL writes null */
void json_w_int (json_writer *w, long long v);
void json_w_bool (json_writer *w, bool v);
void json_w_null (json_writer *w);
/* Convenience: key + value. */
void json_w_kv_string (json_writer *w, const char *key, const char *s);
void json_w_kv_int (json_writer *w, const char *key, long long v);
void json_w_kv_bool (json_writer *w, const char *key, bool v);
void json_w_string_array (json_writer *w, const char *key, const char *const *v, size_t n);
/* The text written so far (owned by the writer). */
const char *json_writer_text (json_writer *w, size_t *ret_len);
/* Put JSON (a complete value our own writer made) where a value goes. */
void json_w_raw (json_writer *w, const char *json);

/* Is S valid UTF-8?  And a copy with each byte that is not part of a valid sequence replaced by
 * U+FFFD.  Strings written are always valid UTF-8: json_w_string replaces such bytes. */
bool json_utf8_valid (const char *s);
char *json_utf8_sanitise (const char *s);
