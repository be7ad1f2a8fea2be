/* capsule: namespaces. */
#define _GNU_SOURCE
#include "namespaces.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
namespaces_userns_fd (const struct spec_idmap *uid, size_t n_uid, const struct spec_idmap *gid,
                      size_t n_gid, capsule_error **err)
{
  int ready[2], hold[2], fd = -1;
  char b = 0;
  pid_t pid;
  if (pipe2 (ready, O_CLOEXEC) < 0)
    return capsule_error_make (err, errno, "pipe");
  if (pipe2 (hold, O_CLOEXEC) < 0)
    {
      close (ready[0]);
      close (ready[1]);
      return capsule_error_make (err, errno, "pipe");
    }
  pid = fork ();
  if (pid == 0)
    {
      /* say when the namespace is there, then wait for the runtime to have taken it */
      close (ready[0]);
      close (hold[1]);
      if (unshare (CLONE_NEWUSER) < 0)
        _exit (1);
      if (write (ready[1], "1", 1) != 1)
        _exit (1);
      if (read (hold[0], &b, 1) < 0)
        _exit (1);
      _exit (0);
    }
  close (ready[1]);
  close (hold[0]);
  if (pid < 0)
    capsule_error_make (err, errno, "fork");
  else if (read (ready[0], &b, 1) != 1)
    capsule_error_make (err, 0, "create a user namespace for an idmapped mount");
  else if (write_map (pid, "uid_map", uid, n_uid, err) == 0
           && write_map (pid, "gid_map", gid, n_gid, err) == 0)
    {
      _cleanup_free_ char *path = xasprintf ("/proc/%d/ns/user", pid);
      fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        capsule_error_make (err, errno, "open `%s`", path);
    }
  close (ready[0]);
  close (hold[1]);
  if (pid > 0)
    waitpid (pid, NULL, 0);
  return fd;
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
