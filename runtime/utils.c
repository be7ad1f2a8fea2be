/* capsule: small helpers shared by every module. */
#define _GNU_SOURCE
#include "utils.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void
strv_free (char **v)
{
  if (v == NULL)
    return;
  for (char **p = v; *p; p++)
    free (*p);
  free (v);
}

size_t
strv_length (char **v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void *
xmalloc0 (size_t size)
{
  void *p = calloc (1, size ? size : 1);
  if (p == NULL)
    abort ();
  return p;
}

void *
xrealloc (void *p, size_t size)
{
  p = realloc (p, size ? size : 1);
  if (p == NULL)
    abort ();
  return p;
}

char *
xstrdup (const char *s)
{
  char *r;
  if (s == NULL)
    return NULL;
  r = strdup (s);
  if (r == NULL)
    abort ();
  return r;
}

char *
xasprintf (const char *fmt, ...)
{
  char *r;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&r, fmt, ap) < 0)
    abort ();
  va_end (ap);
  return r;
}

ssize_t
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  size_t done = 0;
  while (done < len)
    {
      ssize_t r = write (fd, p + done, len - done);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      done += r;
    }
  return done;
}

ssize_t
read_all (int fd, void *buf, size_t len)
{
  char *p = buf;
  size_t done = 0;
  while (done < len)
    {
      ssize_t r = read (fd, p + done, len - done);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (r == 0)
        break;
      done += r;
    }
  return done;
}

int
read_file_at (int dirfd, const char *path, size_t max_size, char **ret_data, size_t *ret_len,
              capsule_error **err)
{
  _cleanup_close_ int fd = openat (dirfd, path, O_RDONLY | O_CLOEXEC);
  _cleanup_free_ char *buf = NULL;
  size_t len = 0, cap = 0;

  if (fd < 0)
    return capsule_error_make (err, errno, "open `%s`", path);
  for (;;)
    {
      ssize_t r;
      if (len + 1 >= cap)
        {
          char *n;
          if (cap > max_size)
            return capsule_error_make (err, EFBIG, "read `%s`: larger than %zu bytes", path,
                                       max_size);
          cap = cap ? cap * 2 : 4096;
          n = realloc (buf, cap);
          if (n == NULL)
            return capsule_error_make (err, ENOMEM, "read `%s`", path);
          buf = n;
        }
      r = read (fd, buf + len, cap - len - 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return capsule_error_make (err, errno, "read `%s`", path);
      if (r == 0)
        break;
      len += r;
      if (len > max_size)
        return capsule_error_make (err, EFBIG, "read `%s`: larger than %zu bytes", path, max_size);
    }
  buf[len] = '\0';
  if (ret_len)
    *ret_len = len;
  *ret_data = steal_pointer (&buf);
  return 0;
}

int
write_file_at (int dirfd, const char *path, const void *data, size_t len, mode_t mode,
               capsule_error **err)
{
  _cleanup_close_ int fd
      = openat (dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return capsule_error_make (err, errno, "open `%s`", path);
  if (write_all (fd, data, len) < 0)
    return capsule_error_make (err, errno, "write `%s`", path);
  return 0;
}

int
write_file_atomic (const char *path, const void *data, size_t len, mode_t mode, capsule_error **err)
{
  _cleanup_free_ char *tmp = xasprintf ("%s.tmp.%d", path, getpid ());
  if (write_file_at (AT_FDCWD, tmp, data, len, mode, err) < 0)
    return -1;
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return capsule_error_make (err, e, "rename `%s`", path);
    }
  return 0;
}

int
write_knob (int dirfd, const char *path, const char *value, capsule_error **err)
{
  _cleanup_close_ int fd = openat (dirfd, path, O_WRONLY | O_CLOEXEC);
  size_t len = strlen (value);
  if (fd < 0)
    return capsule_error_make (err, errno, "open `%s`", path);
  if (write (fd, value, len) != (ssize_t)len)
    return capsule_error_make (err, errno, "write `%s` to `%s`", value, path);
  return 0;
}

int
mkdir_p (const char *path, mode_t mode, capsule_error **err)
{
  _cleanup_free_ char *p = NULL;
  /* mostly there already, or only the last component missing */
  if (mkdir (path, mode) == 0 || errno == EEXIST)
    return 0;
  if (errno != ENOENT)
    return capsule_error_make (err, errno, "mkdir `%s`", path);
  p = xstrdup (path);
  for (char *s = p + 1; *s; s++)
    {
      if (*s != '/')
        continue;
      *s = '\0';
      if (mkdir (p, mode) < 0 && errno != EEXIST)
        return capsule_error_make (err, errno, "mkdir `%s`", p);
      *s = '/';
    }
  if (mkdir (p, mode) < 0 && errno != EEXIST)
    return capsule_error_make (err, errno, "mkdir `%s`", p);
  return 0;
}

/* The mount a directory fd lies on (its mount id, or its device where statx cannot say). */
static uint64_t
mount_of (int fd)
{
  struct statx sx;
  if (statx (fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) == 0)
    return (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id
                                        : ((uint64_t)sx.stx_dev_major << 32 | sx.stx_dev_minor);
  return 0;
}

/* Never crosses into another mount (a bind mount left behind must not cost what it shows). */
static int
rm_rf_at (int parent, const char *name, uint64_t mnt, capsule_error **err)
{
  _cleanup_close_ int fd = -1;
  DIR *d;
  struct dirent *de;

  if (unlinkat (parent, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return capsule_error_make (err, errno, "unlink `%s`", name);
  fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "open `%s`", name);
  if (mnt == 0)
    mnt = mount_of (fd);
  else if (mount_of (fd) != mnt)
    return capsule_error_make (err, EBUSY, "remove `%s`: a mount point; left alone", name);
  d = fdopendir (fd);
  if (d == NULL)
    return capsule_error_make (err, errno, "opendir `%s`", name);
  fd = -1;
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (rm_rf_at (dirfd (d), de->d_name, mnt, err) < 0)
        {
          closedir (d);
          return -1;
        }
    }
  closedir (d);
  if (unlinkat (parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return capsule_error_make (err, errno, "rmdir `%s`", name);
  return 0;
}

int
rm_rf (const char *path, capsule_error **err)
{
  return rm_rf_at (AT_FDCWD, path, 0, err);
}

/* The decimal number at the start of S; *END points past it. */
static int
leading_u64 (const char *s, char **end, unsigned long long *ret)
{
  if (s == NULL || !isdigit ((unsigned char)*s))
    {
      errno = EINVAL;
      return -1;
    }
  errno = 0;
  *ret = strtoull (s, end, 10);
  return errno ? -1 : 0;
}

int
parse_u64 (const char *s, uint64_t *ret)
{
  char *end;
  unsigned long long v;
  if (leading_u64 (s, &end, &v) < 0)
    return -1;
  if (*end)
    {
      errno = EINVAL;
      return -1;
    }
  *ret = v;
  return 0;
}

int
parse_size (const char *s, uint64_t *ret)
{
  char *end;
  unsigned long long v;
  uint64_t mult = 1;
  if (leading_u64 (s, &end, &v) < 0)
    return -1;
  switch (*end)
    {
    case '\0':
      break;
    case 'k':
    case 'K':
      mult = 1ULL << 10;
      end++;
      break;
    case 'm':
    case 'M':
      mult = 1ULL << 20;
      end++;
      break;
    case 'g':
    case 'G':
      mult = 1ULL << 30;
      end++;
      break;
    case 't':
    case 'T':
      mult = 1ULL << 40;
      end++;
      break;
    default:
      errno = EINVAL;
      return -1;
    }
  if (*end == 'i' || *end == 'I')
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end)
    {
      errno = EINVAL;
      return -1;
    }
  if (v > UINT64_MAX / mult)
    {
      errno = ERANGE;
      return -1;
    }
  *ret = v * mult;
  return 0;
}

int
signal_parse (const char *s)
{
  uint64_t n;
  if (s == NULL || *s == '\0')
    return -1;
  if (parse_u64 (s, &n) == 0)
    return (n > 0 && n < (uint64_t)NSIG) ? (int)n : -1;
  if (strncasecmp (s, "SIG", 3) == 0)
    s += 3;
  for (int i = 1; i < NSIG; i++)
    {
      const char *abbrev = sigabbrev_np (i);
      if (abbrev && strcasecmp (abbrev, s) == 0)
        return i;
    }
  if (strncasecmp (s, "RTMIN+", 6) == 0 && parse_u64 (s + 6, &n) == 0
      && SIGRTMIN + (int)n <= SIGRTMAX)
    return SIGRTMIN + (int)n;
  return -1;
}

int
proc_start_time (pid_t pid, uint64_t *ret)
{
  char path[64], buf[1024];
  _cleanup_close_ int fd = -1;
  ssize_t n;
  char *p;
  int field = 2;

  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  p = strrchr (buf, ')'); /* comm may hold spaces and parentheses */
  if (p == NULL)
    return -1;
  for (p++; *p && field < 22; p++)
    if (*p == ' ')
      field++;
  if (field != 22)
    return -1;
  *ret = strtoull (p, NULL, 10);
  return 0;
}

char *
rfc3339_now (void)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  /* by hand: strftime would load the time zone (/etc/localtime) for nothing */
  return xasprintf ("%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

bool
container_id_valid (const char *name)
{
  size_t len = name ? strlen (name) : 0;
  if (len == 0 || len > 1024 || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return false;
  for (const char *p = name; *p; p++)
    if (!isalnum ((unsigned char)*p) && !strchr ("_+-.", *p))
      return false;
  return true;
}
