/* capsule: where its own files are (paths.h). */
#define _GNU_SOURCE
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsule-config.h"
#include "utils.h"

#define CLONED_FROM_ENV "_CAPSULE_CLONED_FROM"
#define SEALS           (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

bool
capsule_run_from_build_tree (void)
{
  static int known = -1;
  char self[4096];
  ssize_t n;
  if (known >= 0)
    return known;
  n = readlink ("/proc/self/exe", self, sizeof self - 1);
  known = 0;
  if (n > 0 && strncmp (self, "/memfd:", 7) == 0)
    {
      /* the sealed copy: judge by the file it was copied from */
      const char *origin = getenv (CLONED_FROM_ENV);
      n = origin ? (ssize_t)strlen (origin) : -1;
      if (n > 0 && (size_t)n < sizeof self)
        memcpy (self, origin, n);
      else
        n = -1;
    }
  if (n > 0)
    {
      size_t root = strlen (CAPSULE_BUILD_ROOT);
      self[n] = '\0';
      known = strncmp (self, CAPSULE_BUILD_ROOT, root) == 0 && self[root] == '/';
    }
  return known;
}

char *
capsule_data_path (const char *installed, const char *source)
{
  if (capsule_run_from_build_tree ())
    return xasprintf ("%s/%s", CAPSULE_SOURCE_ROOT, source);
  return xasprintf ("%s/%s", CAPSULE_DATADIR, installed);
}

char *
capsule_libexec_path (const char *name, const char *build)
{
  if (capsule_run_from_build_tree ())
    return xasprintf ("%s/%s", CAPSULE_BUILD_ROOT, build);
  return xasprintf ("%s/%s", CAPSULE_LIBEXECDIR, name);
}

int
capsule_exec_sealed_copy (char **argv)
{
  extern char **environ;
  _cleanup_close_ int self = open ("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  _cleanup_close_ int copy = -1;
  char origin[4096];
  struct stat st;
  ssize_t n;
  off_t off = 0;

  if (self < 0 || fstat (self, &st) < 0)
    return -1;
  n = fcntl (self, F_GET_SEALS);
  if (n >= 0 && (n & SEALS) == SEALS)
    {
      unsetenv (CLONED_FROM_ENV); /* read once by paths, never handed on */
      capsule_run_from_build_tree ();
      prctl (PR_SET_NAME, "capsule", 0, 0, 0); /* not "memfd:capsule" in ps */
      return 0;
    }
  n = readlink ("/proc/self/exe", origin, sizeof origin - 1);
  if (n <= 0)
    return -1;
  origin[n] = '\0';
  copy = memfd_create ("capsule", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (copy < 0)
    return -1;
  while (off < st.st_size)
    {
      ssize_t w = sendfile (copy, self, &off, st.st_size - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return -1;
    }
  if (fcntl (copy, F_ADD_SEALS, SEALS) < 0 || setenv (CLONED_FROM_ENV, origin, 1) < 0)
    return -1;
  fexecve (copy, argv, environ);
  unsetenv (CLONED_FROM_ENV);
  return -1;
}
