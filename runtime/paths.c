/* capsule: where its own files are (paths.h). */
#define _GNU_SOURCE
#include "paths.h"

#include <string.h>
#include <unistd.h>

#include "capsule-config.h"
#include "utils.h"

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
