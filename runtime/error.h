/* capsule: one error contract for the whole library.
 *
 * A function that can fail returns a negative value (or NULL) and fills *err.  Only main() and the
 * RPC dispatcher print an error; library code adds context with capsule_error_wrap() and passes it
 * up. */
#pragma once

#include <stdarg.h>
#include <stdio.h>

struct capsule_error
{
  int status; /* errno of the cause, 0 when there is none */
  char *msg;
};
typedef struct capsule_error capsule_error;

/* Fill *err with a message formatted from FMT, followed by ": strerror(errno_)" when errno_ != 0.
 * Always returns -1, so callers can write "return capsule_error_make (...)". */
int capsule_error_make (capsule_error **err, int errno_, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Prefix the message of *err with more context: "CONTEXT: old message".  Returns -1. */
int capsule_error_wrap (capsule_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

capsule_error *capsule_error_free (capsule_error *err);

/* Release an error whose content is not needed (the operation that failed was best effort). */
void capsule_error_release (capsule_error **err);

static inline void
capsule_error_freep (capsule_error **err)
{
  capsule_error_free (*err);
}
#define _cleanup_error_ __attribute__ ((cleanup (capsule_error_freep)))
