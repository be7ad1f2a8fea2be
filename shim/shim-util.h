/* capsule-shim: small helpers: ids, base64, clock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* "cntr_" + 32 hex digits from getrandom(2). */
char *shim_new_id (const char *prefix);
/* Is ID of the form PREFIX + 32 lowercase hex digits? */
bool shim_id_valid (const char *id, const char *prefix);

char *base64_encode (const void *data, size_t len);
/* Strict: padding required, no whitespace.  Returns -1 on malformed input. */
int base64_decode (const char *text, size_t text_len, unsigned char **ret, size_t *ret_len);
/* Decoded size of a base64 text of TEXT_LEN characters (an upper bound). */
size_t base64_decoded_max (size_t text_len);

/* Is PATH on another mount than its parent? */
bool is_mount_point (const char *path);

/* The session lock a worker holds (LOCKFILE, made if missing; blocks until it is free): its fd,
 * or -1.  The lock goes when the process closes the fd or ends, never with a child of it. */
int session_lock_take (const char *lockfile);
/* Takes the session lock and lets it go again: 1 when it was free, 0 when a worker holds it, -1
 * when LOCKFILE is not there. */
int session_lock_try (const char *lockfile);

/* Seconds since the epoch (wall clock, for API timestamps). */
int64_t shim_now (void);
/* Monotonic milliseconds (for timeouts). */
int64_t shim_monotonic_ms (void);

/* A map from strings to pointers (open addressing, linear probing); keys are borrowed from the
 * values they point at and must outlive their entries. */
struct strmap
{
  const char **keys;
  void **values;
  size_t n, cap;
};
void *strmap_get (const struct strmap *m, const char *key);
void strmap_put (struct strmap *m, const char *key, void *value);
void strmap_del (struct strmap *m, const char *key);
void strmap_release (struct strmap *m);

/* Lowercase hex of the bytes of S, and back (NULL when TEXT is not hex of a string without
 * NUL). */
char *hex_encode_string (const char *s);
char *hex_decode_string (const char *text);
