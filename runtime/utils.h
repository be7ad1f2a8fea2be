/* capsule: small helpers shared by every module: cleanup attributes, files, strings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"

static inline void
freep (void *p)
{
  free (*(void **)p);
}
static inline void
closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
static inline void
fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
}
void strv_free (char **v);
static inline void
strv_freep (char ***v)
{
  strv_free (*v);
}

#define _cleanup_free_   __attribute__ ((cleanup (freep)))
#define _cleanup_close_  __attribute__ ((cleanup (closep)))
#define _cleanup_fclose_ __attribute__ ((cleanup (fclosep)))
#define _cleanup_strv_   __attribute__ ((cleanup (strv_freep)))

static inline void *
steal_ptr (void *pp)
{
  void **p = pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_pointer(pp) ((__typeof__ (*(pp)))steal_ptr (pp))

static inline int
steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

void *xmalloc0 (size_t size);
void *xrealloc (void *p, size_t size);
char *xstrdup (const char *s);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
size_t strv_length (char **v);

/* Whole-file helpers.  read_file_at refuses files larger than max_size with EFBIG. */
int read_file_at (int dirfd, const char *path, size_t max_size, char **ret_data, size_t *ret_len,
                  capsule_error **err);
int write_file_at (int dirfd, const char *path, const void *data, size_t len, mode_t mode,
                   capsule_error **err);
/* Write DATA to PATH through a temporary file and rename(2): readers see old or new, never half. */
int write_file_atomic (const char *path, const void *data, size_t len, mode_t mode,
                       capsule_error **err);
/* Write a short string to an existing (kernel) file such as a cgroup or /proc knob. */
int write_knob (int dirfd, const char *path, const char *value, capsule_error **err);

int mkdir_p (const char *path, mode_t mode, capsule_error **err);
int rm_rf (const char *path, capsule_error **err);

/* Loop over EINTR and short I/O. */
ssize_t write_all (int fd, const void *buf, size_t len);
ssize_t read_all (int fd, void *buf, size_t len);

/* Parse an unsigned decimal; returns -1 (errno EINVAL/ERANGE) on anything else. */
int parse_u64 (const char *s, uint64_t *ret);
/* "1g", "512M", "4096" → bytes; returns -1 on error. */
int parse_size (const char *s, uint64_t *ret);

/* Signal by name ("TERM", "SIGTERM", "sigkill") or number ("9"); -1 when unknown. */
int signal_parse (const char *s);

/* Field 22 of /proc/PID/stat: lets a stored pid be told apart from a recycled one. */
int proc_start_time (pid_t pid, uint64_t *ret);

/* Wall-clock time in RFC 3339 with nanoseconds, UTC. */
char *rfc3339_now (void);

/* Is NAME a safe container id?  Letters, digits, and "_+-." ; not "." or ".."; at most 1024. */
bool container_id_valid (const char *name);
