/* capsule-shim: ids, base64, clocks. */
#define _GNU_SOURCE
#include "shim-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "utils.h"

char *
shim_new_id (const char *prefix)
{
  unsigned char raw[16];
  char hex[33];
  size_t got = 0;
  while (got < sizeof raw)
    {
      ssize_t r = getrandom (raw + got, sizeof raw - got, 0);
      if (r > 0)
        got += r;
    }
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf (hex + 2 * i, 3, "%02x", raw[i]);
  return xasprintf ("%s%s", prefix, hex);
}

bool
shim_id_valid (const char *id, const char *prefix)
{
  size_t n = strlen (prefix);
  if (id == NULL || strncmp (id, prefix, n) != 0 || strlen (id) != n + 32)
    return false;
  for (const char *p = id + n; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
base64_encode (const void *data, size_t len)
{
  const unsigned char *in = data;
  char *out = xmalloc0 (4 * ((len + 2) / 3) + 1), *o = out;
  size_t i = 0;
  for (; i + 2 < len; i += 3)
    {
      *o++ = b64[in[i] >> 2];
      *o++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
      *o++ = b64[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
      *o++ = b64[in[i + 2] & 63];
    }
  if (i < len)
    {
      *o++ = b64[in[i] >> 2];
      if (i + 1 < len)
        {
          *o++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
          *o++ = b64[(in[i + 1] & 15) << 2];
        }
      else
        {
          *o++ = b64[(in[i] & 3) << 4];
          *o++ = '=';
        }
      *o++ = '=';
    }
  *o = '\0';
  return out;
}

static int
b64_value (char c)
{
  const char *p = c ? strchr (b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

size_t
base64_decoded_max (size_t text_len)
{
  return text_len / 4 * 3;
}

int
base64_decode (const char *text, size_t text_len, unsigned char **ret, size_t *ret_len)
{
  unsigned char *out;
  size_t n = 0;
  if (text_len % 4 != 0)
    return -1;
  out = xmalloc0 (base64_decoded_max (text_len) + 1);
  for (size_t i = 0; i < text_len; i += 4)
    {
      int v[4];
      bool last = i + 4 == text_len;
      for (int k = 0; k < 4; k++)
        v[k] = b64_value (text[i + k]);
      if (v[0] < 0 || v[1] < 0)
        goto bad;
      out[n++] = (v[0] << 2) | (v[1] >> 4);
      if (text[i + 2] == '=')
        {
          if (!last || text[i + 3] != '=')
            goto bad;
          break;
        }
      if (v[2] < 0)
        goto bad;
      out[n++] = ((v[1] & 15) << 4) | (v[2] >> 2);
      if (text[i + 3] == '=')
        {
          if (!last)
            goto bad;
          break;
        }
      if (v[3] < 0)
        goto bad;
      out[n++] = ((v[2] & 3) << 6) | v[3];
    }
  *ret = out;
  *ret_len = n;
  return 0;
bad:
  free (out);
  return -1;
}

int64_t
shim_now (void)
{
  return time (NULL);
}

int64_t
shim_monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ strmap */

static size_t
str_hash (const char *s)
{
  size_t h = 14695981039346656037ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static size_t
strmap_slot (const struct strmap *m, const char *key)
{
  size_t i = str_hash (key) & (m->cap - 1);
  while (m->keys[i] && strcmp (m->keys[i], key) != 0)
    i = (i + 1) & (m->cap - 1);
  return i;
}

void *
strmap_get (const struct strmap *m, const char *key)
{
  size_t i;
  if (m->cap == 0)
    return NULL;
  i = strmap_slot (m, key);
  return m->keys[i] ? m->values[i] : NULL;
}

static void
strmap_grow (struct strmap *m)
{
  struct strmap old = *m;
  m->cap = old.cap ? old.cap * 2 : 64;
  m->keys = xmalloc0 (m->cap * sizeof *m->keys);
  m->values = xmalloc0 (m->cap * sizeof *m->values);
  m->n = 0;
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i])
      strmap_put (m, old.keys[i], old.values[i]);
  free (old.keys);
  free (old.values);
}

void
strmap_put (struct strmap *m, const char *key, void *value)
{
  size_t i;
  if ((m->n + 1) * 2 > m->cap)
    strmap_grow (m);
  i = strmap_slot (m, key);
  if (m->keys[i] == NULL)
    m->n++;
  m->keys[i] = key;
  m->values[i] = value;
}

void
strmap_del (struct strmap *m, const char *key)
{
  size_t i, j;
  if (m->cap == 0)
    return;
  i = strmap_slot (m, key);
  if (m->keys[i] == NULL)
    return;
  m->keys[i] = NULL;
  m->n--;
  /* backward shift: every entry after the hole that would be found through it moves up */
  for (j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
    {
      size_t home = str_hash (m->keys[j]) & (m->cap - 1);
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j))
        {
          m->keys[i] = m->keys[j];
          m->values[i] = m->values[j];
          m->keys[j] = NULL;
          i = j;
        }
    }
}

void
strmap_release (struct strmap *m)
{
  free (m->keys);
  free (m->values);
  *m = (struct strmap){ 0 };
}

char *
hex_encode_string (const char *s)
{
  size_t n = strlen (s);
  char *out = xmalloc0 (2 * n + 1);
  for (size_t i = 0; i < n; i++)
    snprintf (out + 2 * i, 3, "%02x", (unsigned char)s[i]);
  return out;
}

static int
hex_digit (char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *
hex_decode_string (const char *text)
{
  size_t n = strlen (text);
  char *out;
  if (n % 2)
    return NULL;
  out = xmalloc0 (n / 2 + 1);
  for (size_t i = 0; i < n / 2; i++)
    {
      int hi = hex_digit (text[2 * i]), lo = hex_digit (text[2 * i + 1]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        {
          free (out);
          return NULL;
        }
      out[i] = (char)(hi << 4 | lo);
    }
  return out;
}

/* A POSIX record lock, not flock(2): a record lock belongs to the process that took it, and a
   child it forks has none, where a flock(2) lock belongs to the open file, which the child shares.
   A container a worker makes waits for its start with the worker's fds until it execs; killed
   there (a shim stopping while a warm sandbox starts), the worker left the session locked by the
   container, and the stop worker that would remove the container waited for it for ever.  (A
   record lock also goes when its process closes any fd of the file: nothing here opens it twice.) */
static int
record_lock (int fd, bool wait)
{
  struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
  int r;
  do
    r = fcntl (fd, wait ? F_SETLKW : F_SETLK, &l);
  while (r < 0 && errno == EINTR);
  return r;
}

int
session_lock_take (const char *lockfile)
{
  int fd = open (lockfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0)
    record_lock (fd, true);
  return fd;
}

int
session_lock_try (const char *lockfile)
{
  _cleanup_close_ int fd = open (lockfile, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  return record_lock (fd, false) == 0;
}

bool
is_mount_point (const char *path)
{
  _cleanup_free_ char *parent = xasprintf ("%s/..", path);
  struct stat a, b;
  return stat (path, &a) == 0 && stat (parent, &b) == 0 && a.st_dev != b.st_dev;
}
