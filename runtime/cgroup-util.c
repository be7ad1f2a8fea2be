/* capsule: small readers shared by both cgroup versions. */
#define _GNU_SOURCE
#include "cgroup-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "utils.h"

int
cgroup_read_keyed (const char *file, const char *key, uint64_t *ret)
{
  _cleanup_free_ char *text = NULL;
  size_t klen = strlen (key);
  if (read_file_at (AT_FDCWD, file, 1 << 16, &text, NULL, NULL) < 0)
    return -1;
  for (char *line = text; line && *line;)
    {
      char *nl = strchr (line, '\n');
      if (nl)
        *nl = '\0';
      if (strncmp (line, key, klen) == 0 && line[klen] == ' ')
        return parse_u64 (line + klen + 1, ret);
      line = nl ? nl + 1 : NULL;
    }
  errno = ENOENT;
  return -1;
}

int
cgroup_read_u64 (const char *file, uint64_t *ret)
{
  _cleanup_free_ char *text = NULL;
  if (read_file_at (AT_FDCWD, file, 256, &text, NULL, NULL) < 0)
    return -1;
  text[strcspn (text, "\n")] = '\0';
  if (strcmp (text, "max") == 0)
    {
      *ret = UINT64_MAX;
      return 0;
    }
  return parse_u64 (text, ret);
}

int
cgroup_read_procs (const char *file, pid_t **ret, size_t *ret_n, capsule_error **err)
{
  _cleanup_free_ char *text = NULL;
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0, cap = 0;
  if (read_file_at (AT_FDCWD, file, 1 << 24, &text, NULL, err) < 0)
    return -1;
  for (char *line = text; line && *line;)
    {
      char *nl = strchr (line, '\n');
      uint64_t v;
      if (nl)
        *nl = '\0';
      if (parse_u64 (line, &v) == 0)
        {
          if (n == cap)
            {
              cap = cap ? cap * 2 : 16;
              pids = realloc (pids, cap * sizeof *pids);
              if (pids == NULL)
                abort ();
            }
          pids[n++] = v;
        }
      line = nl ? nl + 1 : NULL;
    }
  *ret = steal_pointer (&pids);
  *ret_n = n;
  return 0;
}

int
cgroup_kill_listed (const char *file, capsule_error **err)
{
  struct timespec pause = { 0, 5 * 1000 * 1000 };
  for (int round = 0; round < 1000; round++)
    {
      _cleanup_free_ pid_t *pids = NULL;
      _cleanup_error_ capsule_error *tmp = NULL;
      size_t n = 0;
      if (cgroup_read_procs (file, &pids, &n, &tmp) < 0)
        {
          if (tmp->status == ENOENT)
            return 0;
          *err = steal_pointer (&tmp);
          return -1;
        }
      if (n == 0)
        return 0;
      for (size_t i = 0; i < n; i++)
        kill (pids[i], SIGKILL);
      nanosleep (&pause, NULL);
    }
  return capsule_error_make (err, EBUSY, "processes in %s survive SIGKILL", file);
}
