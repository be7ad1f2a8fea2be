/* capsule: cgroup version detection, path rules and the shared teardown. */
#define _GNU_SOURCE
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <time.h>

#include "utils.h"

static const char *
cgroup_root (void)
{
  const char *r = getenv ("CAPSULE_CGROUP_ROOT"); /* tests point this at a fake tree */
  return r && r[0] ? r : CGROUP_ROOT_DEFAULT;
}

int
cgroup_detect_version (const char *root)
{
  struct statfs sfs;
  _cleanup_free_ char *memory = NULL;
  if (statfs (root, &sfs) < 0)
    return -1;
  if (sfs.f_type == CGROUP2_SUPER_MAGIC)
    return 2;
  memory = xasprintf ("%s/memory", root);
  if (statfs (memory, &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC)
    return 1;
  return -1;
}

static bool
path_has_dotdot (const char *p)
{
  const char *s = p;
  while ((s = strstr (s, "..")))
    {
      bool start = s == p || s[-1] == '/';
      bool end = s[2] == '\0' || s[2] == '/';
      if (start && end)
        return true;
      s += 2;
    }
  return false;
}

static char *
join_clean (const char *a, const char *b)
{
  _cleanup_free_ char *joined = xasprintf ("%s/%s", a, b);
  char *out = xmalloc0 (strlen (joined) + 2);
  size_t n = 0;
  /* collapse "//" and drop a trailing "/" */
  for (const char *p = joined; *p; p++)
    {
      if (*p == '/' && n > 0 && out[n - 1] == '/')
        continue;
      out[n++] = *p;
    }
  if (n > 1 && out[n - 1] == '/')
    n--;
  if (n == 0 || out[0] != '/')
    {
      memmove (out + 1, out, n);
      out[0] = '/';
      n++;
    }
  out[n] = '\0';
  return out;
}

int
cgroup_resolve_path (const char *own, const char *cgroups_path, const char *id, char **ret,
                     capsule_error **err)
{
  if (cgroups_path == NULL || cgroups_path[0] == '\0')
    {
      _cleanup_free_ char *def = xasprintf ("capsule-%s", id);
      *ret = join_clean (own, def);
      return 0;
    }
  if (strchr (cgroups_path, ':') != NULL && cgroups_path[0] != '/')
    return capsule_error_make (err, 0,
                               "config.json: linux.cgroupsPath: \"%s\" is a systemd slice path; "
                               "capsule manages cgroupfs paths (no systemd cgroup driver)",
                               cgroups_path);
  if (path_has_dotdot (cgroups_path))
    return capsule_error_make (err, 0, "config.json: linux.cgroupsPath: \"%s\" contains \"..\"",
                               cgroups_path);
  if (cgroups_path[0] == '/')
    *ret = join_clean ("", cgroups_path);
  else
    *ret = join_clean (own, cgroups_path);
  if (strcmp (*ret, "/") == 0 || strcmp (*ret, own) == 0)
    {
      *ret = (free (*ret), NULL);
      return capsule_error_make (err, 0,
                                 "config.json: linux.cgroupsPath: \"%s\" names an existing parent "
                                 "cgroup, not one for the container",
                                 cgroups_path);
    }
  return 0;
}

int
cgroup_own_path (const char *text, const char *controller, char **ret)
{
  const char *line = text;
  while (line && *line)
    {
      const char *end = strchr (line, '\n');
      size_t len = end ? (size_t)(end - line) : strlen (line);
      _cleanup_free_ char *l = strndup (line, len);
      char *c1 = l ? strchr (l, ':') : NULL;
      char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (c2)
        {
          *c1 = *c2 = '\0';
          if (controller == NULL ? (strcmp (l, "0") == 0 && c1[1] == '\0') : false)
            {
              *ret = xstrdup (c2 + 1);
              return 0;
            }
          if (controller)
            {
              /* the controller list may be "cpu,cpuacct" */
              char *save = NULL;
              for (char *t = strtok_r (c1 + 1, ",", &save); t; t = strtok_r (NULL, ",", &save))
                if (strcmp (t, controller) == 0)
                  {
                    *ret = xstrdup (c2 + 1);
                    return 0;
                  }
            }
        }
      line = end ? end + 1 : NULL;
    }
  return -1;
}

uint64_t
cgroup_shares_to_weight (uint64_t shares)
{
  /* The mapping runc and crun use: [2, 262144] onto [1, 10000]. */
  if (shares == 0)
    return 0;
  if (shares < 2)
    shares = 2;
  if (shares > 262144)
    shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

char *
cgroup_v2_cpu_max (int64_t quota, uint64_t period)
{
  if (period == 0)
    period = 100000;
  if (quota <= 0)
    return xasprintf ("max %llu", (unsigned long long)period);
  return xasprintf ("%lld %llu", (long long)quota, (unsigned long long)period);
}

char *
cgroup_limit_text (int64_t v)
{
  return v < 0 ? xstrdup ("max") : xasprintf ("%lld", (long long)v);
}

int
cgroup_new (const char *cgroups_path, const char *id, struct cgroup **ret, capsule_error **err)
{
  const char *root = cgroup_root ();
  int version = cgroup_detect_version (root);
  _cleanup_free_ char *self = NULL;
  struct cgroup *cg;

  if (version < 0)
    return capsule_error_make (err, 0, "no usable cgroup hierarchy at %s", root);
  if (read_file_at (AT_FDCWD, "/proc/self/cgroup", 1 << 16, &self, NULL, err) < 0)
    return -1;
  cg = xmalloc0 (sizeof *cg);
  cg->dirfd = -1;
  cg->root = xstrdup (root);
  cg->ops = version == 2 ? &cgroup_v2_ops : &cgroup_v1_ops;
  if (version == 2)
    {
      _cleanup_free_ char *own = NULL;
      if (cgroup_own_path (self, NULL, &own) < 0)
        own = xstrdup ("/");
      if (cgroup_resolve_path (own, cgroups_path, id, &cg->path, err) < 0)
        return (cgroup_free (cg), -1);
    }
  else
    {
      for (size_t i = 0; cgroup_v1_controllers[i]; i++)
        {
          _cleanup_free_ char *own = NULL;
          if (cgroup_own_path (self, cgroup_v1_controllers[i], &own) < 0)
            own = xstrdup ("/");
          if (cgroup_resolve_path (own, cgroups_path, id, &cg->v1_paths[i], err) < 0)
            return (cgroup_free (cg), -1);
        }
      cg->path = xstrdup (cg->v1_paths[0]);
    }
  *ret = cg;
  return 0;
}

struct cgroup *
cgroup_from_state (int version, const char *root, const char *path, char *const *v1_paths)
{
  struct cgroup *cg = xmalloc0 (sizeof *cg);
  cg->dirfd = -1;
  cg->root = xstrdup (root);
  cg->path = xstrdup (path);
  cg->ops = version == 2 ? &cgroup_v2_ops : &cgroup_v1_ops;
  for (size_t i = 0; version == 1 && cgroup_v1_controllers[i] && v1_paths && v1_paths[i]; i++)
    cg->v1_paths[i] = xstrdup (v1_paths[i]);
  return cg;
}

struct cgroup *
cgroup_free (struct cgroup *cg)
{
  if (cg == NULL)
    return NULL;
  if (cg->dirfd >= 0)
    close (cg->dirfd);
  free (cg->root);
  free (cg->path);
  for (size_t i = 0; i < ARRAY_SIZE (cg->v1_paths); i++)
    free (cg->v1_paths[i]);
  free (cg);
  return NULL;
}

int
cgroup_teardown (struct cgroup *cg, capsule_error **err)
{
  struct timespec pause = { 0, 10 * 1000 * 1000 };
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 1;
  _cleanup_error_ capsule_error *ignored = NULL;
  /* The common case: the container's processes are gone already (its init exited and took its
     pid namespace along).  An empty cgroup needs no freeze and no kill, only its removal; a
     cgroup that still has children or processes falls through to the kill loop. */
  if (cg->ops->procs (cg, &pids, &n, &ignored) == 0 && n == 0
      && cg->ops->destroy (cg, &ignored) == 0)
    return 0;
  for (int attempt = 0; attempt < 500; attempt++)
    {
      _cleanup_error_ capsule_error *tmp = NULL;
      if (cg->ops->kill_all (cg, &tmp) < 0)
        capsule_error_release (&tmp);
      if (cg->ops->destroy (cg, &tmp) == 0)
        return 0;
      if (tmp->status != EBUSY || attempt == 499)
        {
          *err = steal_pointer (&tmp);
          return capsule_error_wrap (err, "remove cgroup %s", cg->path);
        }
      nanosleep (&pause, NULL);
    }
  return 0;
}
