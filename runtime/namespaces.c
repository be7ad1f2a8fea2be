/* capsule: namespaces. */
#define _GNU_SOURCE
#include "namespaces.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>

#include "utils.h"

int
namespaces_new_flags (const struct spec *s)
{
  int flags = 0;
  for (size_t i = 0; i < s->n_namespaces; i++)
    if (s->namespaces[i].path == NULL)
      flags |= s->namespaces[i].type;
  return flags;
}

bool
namespaces_any_path (const struct spec *s)
{
  for (size_t i = 0; i < s->n_namespaces; i++)
    if (s->namespaces[i].path)
      return true;
  return false;
}

char *
namespaces_idmap_text (const struct spec_idmap *maps, size_t n)
{
  size_t cap = n * 36 + 1, len = 0;
  char *out = xmalloc0 (cap);
  for (size_t i = 0; i < n; i++)
    len += snprintf (out + len, cap - len, "%u %u %u\n", maps[i].container_id, maps[i].host_id,
                     maps[i].size);
  return out;
}

static int
write_map (pid_t pid, const char *file, const struct spec_idmap *maps, size_t n,
           capsule_error **err)
{
  _cleanup_free_ char *text = namespaces_idmap_text (maps, n);
  _cleanup_free_ char *path = xasprintf ("/proc/%d/%s", pid, file);
  if (write_knob (AT_FDCWD, path, text, err) < 0)
    {
      /* one line: the map itself, without the kernel's newlines */
      for (char *p = (*err)->msg; *p; p++)
        if (*p == '\n')
          *p = ';';
      return capsule_error_wrap (err, "config.json: linux.%s: the kernel refused the map",
                                 strcmp (file, "uid_map") == 0 ? "uidMappings" : "gidMappings");
    }
  return 0;
}

int
namespaces_write_idmaps (pid_t pid, const struct spec *s, capsule_error **err)
{
  if (write_map (pid, "uid_map", s->uid_mappings, s->n_uid_mappings, err) < 0)
    return -1;
  return write_map (pid, "gid_map", s->gid_mappings, s->n_gid_mappings, err);
}

static int
join (const struct spec_namespace *ns, capsule_error **err)
{
  _cleanup_close_ int fd = open (ns->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "linux.namespaces: open %s namespace `%s`",
                               spec_namespace_name (ns->type), ns->path);
  if (setns (fd, ns->type) < 0)
    return capsule_error_make (err, errno, "linux.namespaces: join %s namespace `%s`",
                               spec_namespace_name (ns->type), ns->path);
  return 0;
}

int
namespaces_join_paths (const struct spec *s, capsule_error **err)
{
  const struct spec_namespace *user = NULL;
  for (size_t i = 0; i < s->n_namespaces; i++)
    {
      const struct spec_namespace *ns = &s->namespaces[i];
      if (ns->path == NULL)
        continue;
      if (ns->type == CLONE_NEWUSER)
        {
          user = ns;
          continue;
        }
      if (join (ns, err) < 0)
        return -1;
    }
  /* Joining the user namespace drops our host privileges, so it comes after the others. */
  return user ? join (user, err) : 0;
}

bool
namespaces_maps_root (const struct spec_idmap *maps, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (maps[i].container_id == 0)
      return true;
  return false;
}
