/* capsule: the error helpers every module uses. */
#define _GNU_SOURCE
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int
set_message (capsule_error **err, int status, char *msg)
{
  if (err == NULL)
    {
      free (msg);
      return -1;
    }
  if (*err != NULL)
    *err = capsule_error_free (*err);
  *err = calloc (1, sizeof (**err));
  if (*err == NULL)
    {
      free (msg);
      return -1;
    }
  (*err)->status = status;
  (*err)->msg = msg ? msg : strdup ("out of memory");
  return -1;
}

int
capsule_error_make (capsule_error **err, int errno_, const char *fmt, ...)
{
  char *base = NULL, *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&base, fmt, ap) < 0)
    base = NULL;
  va_end (ap);
  if (base == NULL)
    return set_message (err, errno_ ? errno_ : ENOMEM, NULL);
  if (errno_ == 0)
    return set_message (err, 0, base);
  if (asprintf (&msg, "%s: %s", base, strerror (errno_)) < 0)
    msg = NULL;
  free (base);
  return set_message (err, errno_, msg);
}

int
capsule_error_wrap (capsule_error **err, const char *fmt, ...)
{
  char *prefix = NULL, *msg = NULL;
  va_list ap;

  if (err == NULL || *err == NULL)
    return -1;
  va_start (ap, fmt);
  if (vasprintf (&prefix, fmt, ap) < 0)
    prefix = NULL;
  va_end (ap);
  if (prefix == NULL)
    return -1;
  if (asprintf (&msg, "%s: %s", prefix, (*err)->msg) < 0)
    msg = NULL;
  free (prefix);
  if (msg == NULL)
    return -1;
  free ((*err)->msg);
  (*err)->msg = msg;
  return -1;
}

capsule_error *
capsule_error_free (capsule_error *err)
{
  if (err == NULL)
    return NULL;
  free (err->msg);
  free (err);
  return NULL;
}

void
capsule_error_release (capsule_error **err)
{
  if (err != NULL)
    *err = capsule_error_free (*err);
}
