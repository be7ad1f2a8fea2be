/* capsule: checkpoint and restore through CRIU (libcriu), as runc does it.
 *
 * checkpoint: criu dumps the container's process tree with its namespaces (user, mount, pid, net
 * with only lo, ipc, uts, cgroup), seccomp filters, capabilities, rlimits and open files into the
 * image directory.  Mounts the container took from the host (bind mounts, device nodes bound in a
 * user namespace, masked files hidden under /dev/null) are external to criu: we name each one by
 * its mount point, and write the list into the image as capsule-mounts.json, so that restore can
 * say where each comes from now.
 *
 * restore: a new record and cgroup from the bundle (its limits applied before any process runs),
 * then a helper process joins that cgroup and asks criu to restore the tree as its sibling; the
 * restored init is thus our child (we are a subreaper, the helper exits), inside the cgroup, with
 * the same seccomp filter, capabilities and namespaces it had. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "container.h"
#include "json.h"
#include "process.h"
#include "state.h"
#include "utils.h"

#ifdef HAVE_CRIU
#include <criu/criu.h>
#include <dirent.h>
#endif

#define EXT_MOUNTS_FILE "capsule-mounts.json"

#ifdef HAVE_CRIU
/* Read what child PID writes into FD (closed after) into BUF (NUL-terminated), then reap the
   child; its wait status, -1 when it could not be had. */
static int
drain_and_reap (int fd, char *buf, size_t size, pid_t pid)
{
  size_t len = 0;
  ssize_t n;
  int status = -1;
  while ((n = read (fd, buf + len, size - 1 - len)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      len += n;
  close (fd);
  buf[len] = '\0';
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}

/* The first "Error (file:line): reason" of criu's output, as "reason"; NULL when none. */
static char *
criu_first_error (const char *text)
{
  const char *p = text;
  while (p && *p)
    {
      const char *eol = strchr (p, '\n');
      size_t len = eol ? (size_t)(eol - p) : strlen (p);
      const char *e = memmem (p, len, "Error (", 7);
      if (e)
        {
          const char *colon = memmem (e, len - (e - p), "): ", 3);
          const char *msg = colon ? colon + 3 : e;
          return strndup (msg, len - (msg - p));
        }
      p = eol ? eol + 1 : NULL;
    }
  return NULL;
}

#endif

char *
checkpoint_unavailable (void)
{
#ifndef HAVE_CRIU
  return xstrdup ("this capsule was built without CRIU (meson -Dcriu=enabled, Debian package "
                  "criu)");
#else
  int pipefd[2];
  char buf[8192];
  int status;
  pid_t pid;
  char *reason;
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return xasprintf ("pipe: %s", strerror (errno));
  pid = fork ();
  if (pid < 0)
    {
      close (pipefd[0]);
      close (pipefd[1]);
      return xasprintf ("fork: %s", strerror (errno));
    }
  if (pid == 0)
    {
      int null = open ("/dev/null", O_RDONLY);
      if (null >= 0)
        dup2 (null, 0);
      dup2 (pipefd[1], 1);
      dup2 (pipefd[1], 2);
      execlp ("criu", "criu", "check", (char *)NULL);
      dprintf (2, "Error (capsule): criu is not installed (Debian package criu)\n");
      _exit (127);
    }
  close (pipefd[1]);
  status = drain_and_reap (pipefd[0], buf, sizeof buf, pid);
  if (status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return NULL;
  reason = criu_first_error (buf);
  if (reason)
    return reason;
  return xasprintf ("`criu check` failed (%s)", buf[0] ? strtok (buf, "\n") : "no output");
#endif
}

#ifndef HAVE_CRIU

int
container_checkpoint (const char *root, const char *id, const struct checkpoint_opts *o,
                      capsule_error **err)
{
  _cleanup_free_ char *why = checkpoint_unavailable ();
  (void)root, (void)o;
  return capsule_error_make (err, 0, "checkpoint `%s`: %s; the container was left as it was", id,
                             why);
}

int
container_restore (const struct container_opts *o, const struct checkpoint_opts *co,
                   int *ret_status, capsule_error **err)
{
  _cleanup_free_ char *why = checkpoint_unavailable ();
  (void)co, (void)ret_status;
  return capsule_error_make (err, 0, "restore `%s`: %s; nothing was restored", o->id, why);
}

#else

/* ------------------------------------------------------------ external mounts */

enum ext_kind
{
  EXT_BIND,   /* a bind mount of the spec: comes from its source */
  EXT_DEVICE, /* a device node bound from the host's /dev in a user namespace */
  EXT_MASKED, /* a masked file: the host's /dev/null */
  EXT_CGROUP, /* the container's cgroup2 mount: its own cgroup directory */
};
static const char *const ext_kind_names[] = { "bind", "device", "masked", "cgroup" };

struct ext_mount
{
  enum ext_kind kind;
  char *path;
};

struct ext_mounts
{
  struct ext_mount *v;
  size_t n;
};

static void
ext_mounts_release (struct ext_mounts *e)
{
  for (size_t i = 0; i < e->n; i++)
    free (e->v[i].path);
  free (e->v);
  e->v = NULL;
  e->n = 0;
}

static void
ext_add (struct ext_mounts *e, enum ext_kind kind, const char *path)
{
  for (size_t i = 0; i < e->n; i++)
    if (strcmp (e->v[i].path, path) == 0)
      return;
  e->v = xrealloc (e->v, (e->n + 1) * sizeof *e->v);
  e->v[e->n].kind = kind;
  e->v[e->n].path = xstrdup (path);
  e->n++;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void
unescape_octal (char *s)
{
  char *w = s;
  for (char *r = s; *r; r++)
    {
      if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0'
          && r[3] <= '7')
        {
          *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
          r += 3;
        }
      else
        *w++ = *r;
    }
  *w = '\0';
}

/* The container's mounts that criu must treat as external, from what the spec asked and what
   the container's mountinfo shows mounted. */
static int
ext_mounts_find (pid_t pid, const struct spec *s, struct ext_mounts *ret, capsule_error **err)
{
  _cleanup_free_ char *path = xasprintf ("/proc/%d/mountinfo", pid);
  _cleanup_free_ char *text = NULL;
  bool userns = spec_namespace (s, CLONE_NEWUSER) != NULL;
  if (read_file_at (AT_FDCWD, path, 16 << 20, &text, NULL, err) < 0)
    return capsule_error_wrap (err, "the container's mounts");
  for (char *save = NULL, *line = strtok_r (text, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save))
    {
      char *f[6] = { NULL }, *sep = strstr (line, " - "), *fstype, *fsave = NULL;
      size_t nf = 0;
      if (sep == NULL)
        continue;
      *sep = '\0';
      fstype = strtok_r (sep + 3, " ", &fsave);
      for (char *tsave = NULL, *t = strtok_r (line, " ", &tsave); t && nf < 6;
           t = strtok_r (NULL, " ", &tsave))
        f[nf++] = t;
      if (nf < 5 || fstype == NULL)
        continue;
      unescape_octal (f[4]);
      const char *mp = f[4];
      for (size_t i = 0; i < s->n_mounts; i++)
        if ((s->mounts[i].flags & MS_BIND) && strcmp (s->mounts[i].destination, mp) == 0)
          ext_add (ret, EXT_BIND, mp);
      /* a user namespace may not mount cgroup2 where criu restores mounts: bind it instead */
      if (strcmp (fstype, "cgroup2") == 0)
        ext_add (ret, EXT_CGROUP, mp);
      if (strcmp (fstype, "tmpfs") == 0)
        continue;
      for (char **m = s->masked_paths; m && *m; m++)
        if (strcmp (*m, mp) == 0)
          ext_add (ret, EXT_MASKED, mp);
      /* devices: bound from the host's devtmpfs (a user namespace may not mknod) */
      if (userns && strncmp (mp, "/dev/", 5) == 0 && strchr (mp + 5, '/') == NULL
          && strcmp (fstype, "devtmpfs") == 0)
        ext_add (ret, EXT_DEVICE, mp);
    }
  return 0;
}

static int
ext_mounts_save (int dirfd, const struct ext_mounts *e, capsule_error **err)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  const char *text;
  size_t len;
  json_w_open_array (w);
  for (size_t i = 0; i < e->n; i++)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "kind", ext_kind_names[e->v[i].kind]);
      json_w_kv_string (w, "path", e->v[i].path);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  text = json_writer_text (w, &len);
  return write_file_at (dirfd, EXT_MOUNTS_FILE, text, len, 0600, err);
}

static int
ext_mounts_load (int dirfd, struct ext_mounts *ret, capsule_error **err)
{
  _cleanup_free_ char *text = NULL;
  _cleanup_json_ json_value *v = NULL;
  size_t len;
  if (read_file_at (dirfd, EXT_MOUNTS_FILE, 1 << 20, &text, &len, err) < 0)
    return capsule_error_wrap (err, "the image's " EXT_MOUNTS_FILE " (not a capsule checkpoint?)");
  v = json_parse_n (text, len, JSON_NUL_REFUSE, EXT_MOUNTS_FILE, err);
  if (v == NULL)
    return -1;
  if (!json_is_array (v))
    return capsule_error_make (err, EINVAL, EXT_MOUNTS_FILE ": not an array");
  for (size_t i = 0; i < json_array_len (v); i++)
    {
      json_value *m = json_array_get (v, i), *k = json_get (m, "kind"), *p = json_get (m, "path");
      size_t kind;
      if (!json_is_string (k) || !json_is_string (p) || json_string (p)[0] != '/')
        return capsule_error_make (err, EINVAL, EXT_MOUNTS_FILE ": entry %zu is malformed", i);
      for (kind = 0; kind < ARRAY_SIZE (ext_kind_names); kind++)
        if (strcmp (json_string (k), ext_kind_names[kind]) == 0)
          break;
      if (kind == ARRAY_SIZE (ext_kind_names))
        return capsule_error_make (err, EINVAL, EXT_MOUNTS_FILE ": unknown kind \"%s\"",
                                   json_string (k));
      ext_add (ret, (enum ext_kind)kind, json_string (p));
    }
  return 0;
}

/* Where external mount E comes from on this host, per the restoring bundle's spec. */
static char *
ext_source (const struct spec *s, const struct cgroup *cg, const struct ext_mount *e,
            capsule_error **err)
{
  switch (e->kind)
    {
    case EXT_CGROUP:
      if (cg->ops->version == 2)
        return xasprintf ("%s%s", cg->root, cg->path);
      capsule_error_make (err, 0,
                          "the checkpoint has a cgroup2 mount at `%s`, but this host has no "
                          "cgroup v2 for the container",
                          e->path);
      return NULL;
    case EXT_DEVICE:
      {
        /* only a node of the host's /dev, whatever the image says */
        struct stat st;
        if (strncmp (e->path, "/dev/", 5) != 0 || strchr (e->path + 5, '/') != NULL
            || strstr (e->path, "..") != NULL || lstat (e->path, &st) < 0
            || !(S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode)))
          {
            capsule_error_make (err, EINVAL, "the checkpoint names `%s` as a device of the host",
                                e->path);
            return NULL;
          }
        return xstrdup (e->path);
      }
    case EXT_MASKED:
      return xstrdup ("/dev/null");
    case EXT_BIND:
      for (size_t i = 0; i < s->n_mounts; i++)
        {
          const struct spec_mount *m = &s->mounts[i];
          if ((m->flags & MS_BIND) && strcmp (m->destination, e->path) == 0)
            return m->source[0] == '/' ? xstrdup (m->source)
                                       : xasprintf ("%s/%s", s->bundle, m->source);
        }
      break;
    }
  capsule_error_make (err, ENOENT,
                      "the checkpoint has a bind mount at `%s` that the bundle's config.json lacks",
                      e->path);
  return NULL;
}

/* ------------------------------------------------------------ stdio of the host */

#define STDIO_FILE "capsule-stdio"

/* The init's fd 0-2 when it is no file of the container's mounts (runc's descriptors.json): a
   host file (</dev/null, a log) is external to criu, named "file[mnt_id:inode]"; a pipe is
   "pipe:[inode]".  Restore hands its own fd N in its place, as runc does. */
struct stdio_ext
{
  int fd;
  char key[96];
};

static bool
mount_id_in (const char *mountinfo, unsigned long id)
{
  for (const char *line = mountinfo; line && *line;)
    {
      char *end;
      unsigned long v = strtoul (line, &end, 10);
      if (end != line && v == id)
        return true;
      line = strchr (line, '\n');
      if (line)
        line++;
    }
  return false;
}

static size_t
stdio_find (pid_t pid, struct stdio_ext out[3])
{
  _cleanup_free_ char *mi_path = xasprintf ("/proc/%d/mountinfo", pid), *mountinfo = NULL;
  _cleanup_error_ capsule_error *ignored = NULL;
  size_t n = 0;
  if (read_file_at (AT_FDCWD, mi_path, 16 << 20, &mountinfo, NULL, &ignored) < 0)
    return 0;
  for (int fd = 0; fd < 3; fd++)
    {
      char link[PATH_MAX] = "", fdpath[64], infopath[64];
      _cleanup_free_ char *info = NULL;
      const char *mnt;
      struct stat st;
      ssize_t len;
      snprintf (fdpath, sizeof fdpath, "/proc/%d/fd/%d", pid, fd);
      snprintf (infopath, sizeof infopath, "/proc/%d/fdinfo/%d", pid, fd);
      len = readlink (fdpath, link, sizeof link - 1);
      if (len <= 0)
        continue;
      link[len] = '\0';
      if (strncmp (link, "pipe:[", 6) == 0)
        {
          out[n].fd = fd;
          snprintf (out[n++].key, sizeof out[0].key, "%s", link);
          continue;
        }
      if (link[0] != '/' || stat (fdpath, &st) < 0
          || read_file_at (AT_FDCWD, infopath, 1 << 16, &info, NULL, &ignored) < 0
          || (mnt = strstr (info, "mnt_id:")) == NULL)
        {
          capsule_error_release (&ignored);
          continue;
        }
      if (mount_id_in (mountinfo, strtoul (mnt + strlen ("mnt_id:"), NULL, 10)))
        continue; /* a file of the container's: criu dumps it as it is */
      out[n].fd = fd;
      snprintf (out[n++].key, sizeof out[0].key, "file[%lx:%llx]",
                strtoul (mnt + strlen ("mnt_id:"), NULL, 10), (unsigned long long)st.st_ino);
    }
  return n;
}

static int
stdio_save (int dirfd, const struct stdio_ext *v, size_t n, capsule_error **err)
{
  _cleanup_free_ char *text = xstrdup ("");
  for (size_t i = 0; i < n; i++)
    {
      char *t = xasprintf ("%s%d %s\n", text, v[i].fd, v[i].key);
      free (text);
      text = t;
    }
  return write_file_at (dirfd, STDIO_FILE, text, strlen (text), 0600, err);
}

/* Restore: the caller's own fd N for each saved one (an image without the file has none). */
static int
stdio_inherit (int dirfd, criu_opts *opts, capsule_error **err)
{
  _cleanup_free_ char *text = NULL;
  _cleanup_error_ capsule_error *missing = NULL;
  _cleanup_free_ char *seen = xstrdup ("\n");
  char *save = NULL;
  if (read_file_at (dirfd, STDIO_FILE, 1 << 16, &text, NULL, &missing) < 0)
    return 0;
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *key = strchr (line, ' '), *t;
      int fd = atoi (line);
      if (key == NULL || fd < 0 || fd > 2
          || !(strncmp (key + 1, "file[", 5) == 0 || strncmp (key + 1, "pipe:[", 6) == 0))
        return capsule_error_make (err, EINVAL, STDIO_FILE ": bad line \"%s\"", line);
      if (fcntl (fd, F_GETFD) < 0)
        return capsule_error_make (err, EBADF,
                                   "the checkpoint's process had its fd %d from the host: "
                                   "restore needs an fd %d of its own to hand it",
                                   fd, fd);
      t = xasprintf ("\n%s\n", key + 1);
      if (strstr (seen, t))
        {
          free (t);
          continue; /* stdout and stderr on one file: one fd for both */
        }
      free (t);
      t = xasprintf ("%s%s\n", seen, key + 1);
      free (seen);
      seen = t;
      if (criu_local_add_inherit_fd (opts, fd, key + 1) < 0)
        return capsule_error_make (err, ENOMEM, "criu: inherit fd %d", fd);
    }
  return 0;
}

/* ------------------------------------------------------------ criu */

struct criu_call
{
  criu_opts *opts;
  int images_fd, work_fd;
};

static void
criu_call_release (struct criu_call *c)
{
  if (c->opts)
    criu_local_free_opts (c->opts);
  if (c->images_fd >= 0)
    close (c->images_fd);
  if (c->work_fd >= 0)
    close (c->work_fd);
}

static int
open_dir (const char *path, bool create, const char *what, capsule_error **err)
{
  int fd;
  if (create && mkdir_p (path, 0700, err) < 0)
    return capsule_error_wrap (err, "%s", what);
  fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "%s `%s`", what, path);
  return fd;
}

static int
criu_call_init (struct criu_call *c, const struct checkpoint_opts *o, bool dump,
                capsule_error **err)
{
  const char *images = o->image_path ? o->image_path : "checkpoint";
  const char *debug = getenv ("CAPSULE_CRIU_DEBUG");
  *c = (struct criu_call){ .images_fd = -1, .work_fd = -1 };
  c->images_fd = open_dir (images, dump, "--image-path", err);
  if (c->images_fd < 0)
    return -1;
  if (o->work_path)
    c->work_fd = open_dir (o->work_path, true, "--work-path", err);
  else if ((c->work_fd = fcntl (c->images_fd, F_DUPFD_CLOEXEC, 3)) < 0)
    return capsule_error_make (err, errno, "dup");
  if (c->work_fd < 0)
    return -1;
  if (criu_local_init_opts (&c->opts) < 0)
    return capsule_error_make (err, ENOMEM, "criu: cannot set up its options");
  criu_local_set_images_dir_fd (c->opts, c->images_fd);
  criu_local_set_work_dir_fd (c->opts, c->work_fd);
  criu_local_set_log_file (c->opts, dump ? "dump.log" : "restore.log");
  criu_local_set_log_level (c->opts, debug && *debug == '1' ? CRIU_LOG_DEBUG : CRIU_LOG_WARN);
  criu_local_set_tcp_established (c->opts, o->tcp_established);
  criu_local_set_ext_unix_sk (c->opts, o->ext_unix_sk);
  criu_local_set_shell_job (c->opts, o->shell_job);
  criu_local_set_file_locks (c->opts, o->file_locks);
  criu_local_set_orphan_pts_master (c->opts, true);
  return 0;
}

static char *
dir_of (int fd)
{
  char link[64], buf[4096];
  ssize_t n;
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink (link, buf, sizeof buf - 1);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return xstrdup (buf);
}

/* criu failed with R: its first error from LOG in the work directory, else `criu check`'s. */
static int
criu_failed (struct criu_call *c, const char *what, const char *log, int r, capsule_error **err)
{
  _cleanup_free_ char *text = NULL, *reason = NULL, *dir = dir_of (c->work_fd);
  _cleanup_error_ capsule_error *ignored = NULL;
  if (read_file_at (c->work_fd, log, 64 << 20, &text, NULL, &ignored) == 0)
    reason = criu_first_error (text);
  if (reason == NULL)
    reason = checkpoint_unavailable ();
  if (reason == NULL)
    reason = xasprintf ("criu failed (%s)", strerror (r < 0 ? -r : EIO));
  return capsule_error_make (err, 0, "%s: criu: %s (log: %s/%s)", what, reason, dir ? dir : "?",
                             log);
}

int
container_checkpoint (const char *root, const char *id, const struct checkpoint_opts *o,
                      capsule_error **err)
{
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_spec_ struct spec *s = NULL;
  _cleanup_close_ int lock = -1;
  _cleanup_free_ char *what = xasprintf ("checkpoint `%s`", id);
  struct ext_mounts ext = { 0 };
  struct criu_call c = { .images_fd = -1, .work_fd = -1 };
  struct stdio_ext stdio[3];
  size_t n_stdio;
  enum container_status status;
  int r = -1;

  if (container_load_locked (root, id, &st, &lock, &status, err) < 0)
    return -1;
  if (status != STATUS_RUNNING && status != STATUS_PAUSED)
    return capsule_error_make (err, 0, "%s: it is %s, not running", what,
                               container_status_name (status));
  s = spec_load (st->bundle, err);
  if (s == NULL)
    return capsule_error_wrap (err, "%s: its bundle", what);
  if (criu_call_init (&c, o, true, err) < 0 || ext_mounts_find (st->pid, s, &ext, err) < 0
      || ext_mounts_save (c.images_fd, &ext, err) < 0)
    goto out;
  n_stdio = stdio_find (st->pid, stdio);
  if (stdio_save (c.images_fd, stdio, n_stdio, err) < 0)
    goto out;
  for (size_t i = 0; i < n_stdio; i++)
    if (strncmp (stdio[i].key, "file[", 5) == 0
        && !(i > 0 && strcmp (stdio[i].key, stdio[i - 1].key) == 0))
      criu_local_add_external (c.opts, stdio[i].key);
  criu_local_set_pid (c.opts, st->pid);
  criu_local_set_root (c.opts, st->rootfs);
  criu_local_set_leave_running (c.opts, o->leave_running);
  criu_local_set_manage_cgroups (c.opts, true);
  criu_local_set_manage_cgroups_mode (c.opts, CRIU_CG_MODE_SOFT);
  for (size_t i = 0; i < ext.n; i++)
    criu_local_add_ext_mount (c.opts, ext.v[i].path, ext.v[i].path);
  if (st->cgroup_version == 2)
    {
      /* criu freezes the whole tree at once through cgroup.freeze, not task by task */
      _cleanup_free_ char *cg = xasprintf ("%s%s", st->cgroup_root, st->cgroup_path);
      criu_local_set_freeze_cgroup (c.opts, cg);
    }
  r = criu_local_dump (c.opts);
  if (r < 0)
    {
      criu_failed (&c, what, "dump.log", r, err);
      goto out;
    }
  r = 0;
out:
  ext_mounts_release (&ext);
  criu_call_release (&c);
  if (r == 0 && !o->leave_running)
    {
      /* criu has killed the processes; what is left goes as runc's checkpoint does it */
      close (steal_fd (&lock));
      if (container_delete (root, id, true, err) < 0)
        return capsule_error_wrap (err, "%s: checkpointed, but removing the container", what);
    }
  return r;
}

/* In a user namespace criu reads some images as the container's root: give it the files (they
   hold that container's own memory) and let it search the directory, which stays root's: keep
   the image path's parents closed to others (the shim keeps them under a 0700 directory). */
static int
images_give_to (int dirfd, const struct spec *s, capsule_error **err)
{
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  _cleanup_close_ int fd = -1;
  DIR *d;
  struct dirent *de;
  if (spec_namespace (s, CLONE_NEWUSER) == NULL)
    return 0;
  for (size_t i = 0; i < s->n_uid_mappings; i++)
    if (s->uid_mappings[i].container_id == 0)
      uid = s->uid_mappings[i].host_id;
  for (size_t i = 0; i < s->n_gid_mappings; i++)
    if (s->gid_mappings[i].container_id == 0)
      gid = s->gid_mappings[i].host_id;
  if (uid == (uid_t)-1 && gid == (gid_t)-1)
    return 0;
  fd = openat (dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || (d = fdopendir (fd)) == NULL)
    return capsule_error_make (err, errno, "read the image directory");
  steal_fd (&fd);
  if (fchmod (dirfd, 0711) < 0)
    {
      int e = errno;
      closedir (d);
      return capsule_error_make (err, e, "chmod the image directory");
    }
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0
        && fchownat (dirfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
      {
        int e = errno;
        closedir (d);
        return capsule_error_make (err, e, "chown `%s` in the image directory", de->d_name);
      }
  closedir (d);
  return 0;
}

/* The helper: joins the container's cgroup, has criu restore the tree as its sibling (so our
   child), reports the restored pid through FD and exits. */
static _Noreturn void
restore_helper (struct criu_call *c, struct cgroup *cg, const char *root, const char *croot, int fd)
{
  _cleanup_error_ capsule_error *err = NULL;
  int pid;
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (cg->ops->enter (cg, getpid (), &err) < 0)
    {
      dprintf (fd, "Ejoin the container's cgroup: %s", err->msg);
      _exit (1);
    }
  /* criu wants the root as a mount point of its own: bind it in a mount namespace of ours, so
     that it goes with this process whatever happens (the host never sees it) */
  if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount (root, croot, NULL, MS_BIND | MS_REC, NULL) < 0)
    {
      dprintf (fd, "Ebind the root `%s` at `%s`: %s", root, croot, strerror (errno));
      _exit (1);
    }
  pid = criu_local_restore_child (c->opts);
  if (pid < 0)
    {
      dprintf (fd, "F%d", pid);
      _exit (1);
    }
  dprintf (fd, "P%d", pid);
  _exit (0);
}

static int
restore_run (struct criu_call *c, struct cgroup *cg, const char *root, const char *croot,
             const char *what, pid_t *ret_pid, capsule_error **err)
{
  int p[2];
  char buf[4096];
  pid_t helper;
  if (pipe2 (p, O_CLOEXEC) < 0)
    return capsule_error_make (err, errno, "pipe");
  helper = fork ();
  if (helper < 0)
    {
      close (p[0]);
      close (p[1]);
      return capsule_error_make (err, errno, "fork");
    }
  if (helper == 0)
    {
      close (p[0]);
      restore_helper (c, cg, root, croot, p[1]);
    }
  close (p[1]);
  drain_and_reap (p[0], buf, sizeof buf, helper);
  if (buf[0] == 'P')
    {
      *ret_pid = atoi (buf + 1);
      if (*ret_pid > 0)
        return 0;
    }
  if (buf[0] == 'E')
    return capsule_error_make (err, 0, "%s: %s", what, buf + 1);
  return criu_failed (c, what, "restore.log", buf[0] == 'F' ? atoi (buf + 1) : -EIO, err);
}

int
container_restore (const struct container_opts *o, const struct checkpoint_opts *co,
                   int *ret_status, capsule_error **err)
{
  _cleanup_spec_ struct spec *s = NULL;
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_cgroup_ struct cgroup *cg = NULL;
  _cleanup_free_ char *dir = NULL, *croot = NULL, *what = xasprintf ("restore `%s`", o->id);
  struct ext_mounts ext = { 0 };
  struct criu_call c = { .images_fd = -1, .work_fd = -1 };
  sigset_t mask, old;
  pid_t pid = -1;
  int r = -1;

  if (!container_id_valid (o->id))
    return capsule_error_make (err, EINVAL, "invalid container id \"%s\"", o->id);
  s = spec_load (o->bundle ? o->bundle : ".", err);
  if (s == NULL)
    return -1;
  if (access (s->root_path, F_OK) < 0)
    return capsule_error_make (err, errno, "config.json: root.path: `%s`", s->root_path);
  if (criu_call_init (&c, co, false, err) < 0)
    goto fail_early;
  if (faccessat (c.images_fd, "inventory.img", F_OK, 0) < 0)
    {
      capsule_error_make (err, ENOENT, "%s: `%s` holds no checkpoint (no inventory.img)", what,
                          co->image_path ? co->image_path : "checkpoint");
      goto fail_early;
    }
  if (ext_mounts_load (c.images_fd, &ext, err) < 0 || images_give_to (c.images_fd, s, err) < 0
      || stdio_inherit (c.images_fd, c.opts, err) < 0)
    goto fail_early;
  container_forwarding_mask (&mask);
  sigprocmask (SIG_BLOCK, &mask, &old);
  prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  dir = container_make_dir (o->root, o->id, err);
  if (dir == NULL)
    goto out;
  st = container_record_new (o->root, o->id, s, &cg, err);
  if (st == NULL || cg->ops->create (cg, err) < 0 || cg->ops->apply (cg, s->resources, err) < 0)
    goto rollback;
  for (size_t i = 0; i < ext.n; i++)
    {
      _cleanup_free_ char *src = ext_source (s, cg, &ext.v[i], err);
      if (src == NULL)
        goto rollback;
      if (access (src, F_OK) < 0)
        {
          capsule_error_make (err, errno, "%s: source `%s` of mount `%s`", what, src,
                              ext.v[i].path);
          goto rollback;
        }
      criu_local_add_ext_mount (c.opts, ext.v[i].path, src);
    }
  /* where the helper binds the root for criu, in a mount namespace of its own */
  croot = xasprintf ("%s/criu-root", dir);
  if (mkdir (croot, 0700) < 0)
    {
      capsule_error_make (err, errno, "%s: create `%s`", what, croot);
      goto rollback;
    }
  criu_local_set_root (c.opts, croot);
  /* the tree lands in the cgroup the helper joined */
  criu_local_set_manage_cgroups (c.opts, true);
  criu_local_set_manage_cgroups_mode (c.opts, CRIU_CG_MODE_IGNORE);
  if (restore_run (&c, cg, s->root_path, croot, what, &pid, err) < 0)
    goto rollback;
  rmdir (croot);
  if (proc_start_time (pid, &st->start_time) < 0)
    {
      capsule_error_make (err, ESRCH, "%s: the restored process vanished", what);
      goto rollback;
    }
  st->pid = pid;
  st->creating = false;
  if (state_save (o->root, st, err) < 0)
    goto rollback;
  if (container_write_pid_file (o->pid_file, pid, err) < 0)
    goto rollback;
  r = 0;
  *ret_status = 0;
  if (!co->detach)
    {
      process_wait_forwarding (pid, &mask, ret_status);
      container_exited (o->root, st, NULL, false);
    }
  goto out;

rollback:
  {
    _cleanup_error_ capsule_error *tmp = NULL;
    if (pid > 0)
      kill (pid, SIGKILL);
    if (cg && cgroup_teardown (cg, &tmp) < 0)
      capsule_error_release (&tmp);
    if (pid > 0)
      waitpid (pid, NULL, 0);
    if (dir && rm_rf (dir, &tmp) < 0)
      capsule_error_release (&tmp);
  }
out:
  sigprocmask (SIG_SETMASK, &old, NULL);
fail_early:
  ext_mounts_release (&ext);
  criu_call_release (&c);
  return r;
}

#endif
