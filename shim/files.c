/* capsule-shim: the files of a session, under /mnt/data.
 *
 * The data directory is the sandbox's to write, so the shim never follows anything in it:
 * every open is openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) relative
 * to the directory, the last component O_NOFOLLOW, a file must be regular with one link (a hard
 * link planted to some other file is refused), and sizes are capped both ways. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "files.h"
#include "shim-util.h"
#include "utils.h"

#define PATH_MAX_LEN     1024
#define NAME_MAX_LEN     255
#define SCAN_MAX_ENTRIES 10000

struct cfile *
files_find (struct files *fs, const char *id)
{
  return id ? strmap_get (&fs->by_id, id) : NULL;
}

struct cfile *
files_find_path (struct files *fs, const char *rel)
{
  return strmap_get (&fs->by_path, rel);
}

struct cfile *
files_register (struct files *fs, const char *rel, uint64_t bytes, bool from_user)
{
  struct cfile *f = files_find_path (fs, rel);
  if (f)
    {
      f->bytes = bytes;
      f->from_user = from_user;
      return f;
    }
  if (fs->n >= FILES_MAX)
    return NULL;
  if (fs->n == fs->cap)
    {
      fs->cap = fs->cap ? 2 * fs->cap : 16;
      fs->v = xrealloc (fs->v, fs->cap * sizeof *fs->v);
    }
  f = xmalloc0 (sizeof *f);
  *f = (struct cfile){ shim_new_id ("cfile_"), xstrdup (rel), bytes, shim_now (), from_user };
  fs->v[fs->n++] = f;
  strmap_put (&fs->by_id, f->id, f);
  strmap_put (&fs->by_path, f->path, f);
  return f;
}

int
files_set_id (struct files *fs, struct cfile *f, const char *id)
{
  if (strmap_get (&fs->by_id, id))
    return -1;
  strmap_del (&fs->by_id, f->id);
  free (f->id);
  f->id = xstrdup (id);
  strmap_put (&fs->by_id, f->id, f);
  return 0;
}

static void
cfile_free (struct cfile *f)
{
  free (f->id);
  free (f->path);
  free (f);
}

void
files_forget (struct files *fs, struct cfile *f)
{
  for (size_t i = 0; i < fs->n; i++)
    if (fs->v[i] == f)
      {
        memmove (&fs->v[i], &fs->v[i + 1], (fs->n - i - 1) * sizeof *fs->v);
        fs->n--;
        break;
      }
  strmap_del (&fs->by_id, f->id);
  strmap_del (&fs->by_path, f->path);
  cfile_free (f);
}

void
files_release (struct files *fs)
{
  for (size_t i = 0; i < fs->n; i++)
    cfile_free (fs->v[i]);
  free (fs->v);
  strmap_release (&fs->by_id);
  strmap_release (&fs->by_path);
  *fs = (struct files){ 0 };
}

int
files_data_fd (const char *data_dir, capsule_error **err)
{
  int fd = open (data_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "open the data directory");
  return fd;
}

struct rpc_error *
files_normalise (const char *path, char **ret_rel)
{
  const char *p = path;
  size_t n;
  if (strncmp (p, "/mnt/data/", 10) == 0)
    p += 10;
  else if (p[0] == '/')
    return rpc_error_new (400, "invalid_path", "path",
                          "path '%s' is outside /mnt/data: give a path relative to /mnt/data or "
                          "under it",
                          path);
  n = strlen (p);
  if (n == 0)
    return rpc_error_new (400, "invalid_path", "path", "path is empty");
  if (n > PATH_MAX_LEN)
    return rpc_error_new (400, "invalid_path", "path", "path is longer than %d bytes",
                          PATH_MAX_LEN);
  for (const char *c = p;;)
    {
      const char *slash = strchr (c, '/');
      size_t len = slash ? (size_t)(slash - c) : strlen (c);
      if (len == 0)
        return rpc_error_new (400, "invalid_path", "path", "path '%s' has an empty component",
                              path);
      if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
        return rpc_error_new (400, "invalid_path", "path", "path '%s' has a '.' or '..' component",
                              path);
      if (len > NAME_MAX_LEN)
        return rpc_error_new (400, "invalid_path", "path", "a name in '%s' is longer than %d bytes",
                              path, NAME_MAX_LEN);
      for (size_t i = 0; i < len; i++)
        if ((unsigned char)c[i] < 0x20)
          return rpc_error_new (400, "invalid_path", "path",
                                "path has a control character (byte %d)", c[i]);
      if (!slash)
        break;
      c = slash + 1;
    }
  *ret_rel = xstrdup (p);
  return NULL;
}

static int
open_beneath (int dirfd, const char *path, int flags, mode_t mode)
{
  struct open_how how = { .flags = flags | O_NOFOLLOW | O_CLOEXEC,
                          .mode = mode,
                          .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
                                     | RESOLVE_NO_XDEV };
  return syscall (SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Open the parent directory of REL (creating missing ones, owned by UID) and return its fd;
   *ret_name points at the last component inside REL. */
static int
open_parent (int datafd, const char *rel, bool create, uid_t uid, const char **ret_name,
             capsule_error **err)
{
  _cleanup_free_ char *copy = xstrdup (rel);
  char *slash = strrchr (copy, '/');
  int fd;
  *ret_name = strrchr (rel, '/') ? strrchr (rel, '/') + 1 : rel;
  if (slash == NULL)
    {
      fd = dup (datafd);
      return fd < 0 ? capsule_error_make (err, errno, "dup") : fd;
    }
  *slash = '\0';
  fd = open_beneath (datafd, copy, O_PATH | O_DIRECTORY, 0);
  if (fd >= 0 || !create || errno != ENOENT)
    return fd >= 0 ? fd : capsule_error_make (err, errno, "directory '%s'", copy);
  /* make each missing component, never through a symlink */
  {
    _cleanup_close_ int cur = dup (datafd);
    char *save = NULL;
    for (char *c = strtok_r (copy, "/", &save); c; c = strtok_r (NULL, "/", &save))
      {
        int next;
        if (mkdirat (cur, c, 0755) == 0)
          fchownat (cur, c, uid, uid, AT_SYMLINK_NOFOLLOW);
        else if (errno != EEXIST)
          return capsule_error_make (err, errno, "create directory '%s'", c);
        next = open_beneath (cur, c, O_PATH | O_DIRECTORY, 0);
        if (next < 0)
          return capsule_error_make (err, errno, "directory '%s'", c);
        close (cur);
        cur = next;
      }
    return steal_fd (&cur);
  }
}

int
files_write (const char *data_dir, const char *rel, const void *data, size_t len, uid_t uid,
             capsule_error **err)
{
  _cleanup_close_ int datafd = files_data_fd (data_dir, err);
  _cleanup_close_ int parent = -1, fd = -1;
  _cleanup_free_ char *tmp = NULL;
  const char *name;
  struct stat st;
  if (datafd < 0)
    return -1;
  parent = open_parent (datafd, rel, true, uid, &name, err);
  if (parent < 0)
    return -1;
  /* an existing entry must be a plain file with one link; write beside it, then rename */
  fd = open_beneath (parent, name, O_PATH, 0);
  if (fd >= 0)
    {
      if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_nlink != 1)
        return capsule_error_make (err, EEXIST, "'%s' exists and is not a plain file", rel);
      close (steal_fd (&fd));
    }
  tmp = xasprintf (".capsule-upload-%s", name);
  if (strlen (tmp) > NAME_MAX_LEN)
    tmp[NAME_MAX_LEN] = '\0';
  unlinkat (parent, tmp, 0);
  {
    _cleanup_close_ int dir = open_beneath (parent, ".", O_RDONLY | O_DIRECTORY, 0);
    if (dir < 0)
      return capsule_error_make (err, errno, "open the directory of '%s'", rel);
    fd = openat (dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
      return capsule_error_make (err, errno, "create '%s'", rel);
    if (write_all (fd, data, len) < 0 || fchown (fd, uid, uid) < 0)
      {
        int e = errno;
        unlinkat (dir, tmp, 0);
        return capsule_error_make (
            err, e, e == ENOSPC ? "write '%s': the workspace is full" : "write '%s'", rel);
      }
    if (renameat (dir, tmp, dir, name) < 0)
      {
        int e = errno;
        unlinkat (dir, tmp, 0);
        return capsule_error_make (err, e, "rename into '%s'", rel);
      }
  }
  return 0;
}

int
files_read (const char *data_dir, const char *rel, size_t max, char **ret, size_t *ret_len,
            capsule_error **err)
{
  _cleanup_close_ int datafd = files_data_fd (data_dir, err);
  _cleanup_close_ int fd = -1;
  _cleanup_free_ char *data = NULL;
  struct stat st;
  if (datafd < 0)
    return -1;
  fd = open_beneath (datafd, rel, O_RDONLY | O_NONBLOCK, 0);
  if (fd < 0)
    return capsule_error_make (err, errno,
                               errno == ELOOP ? "'%s' is (or passes through) a "
                                                "symlink; the shim does not follow "
                                                "links made in the sandbox"
                                              : "open '%s'",
                               rel);
  if (fstat (fd, &st) < 0)
    return capsule_error_make (err, errno, "stat '%s'", rel);
  if (!S_ISREG (st.st_mode))
    return capsule_error_make (err, EINVAL, "'%s' is not a regular file", rel);
  if (st.st_nlink != 1)
    return capsule_error_make (err, EPERM,
                               "'%s' has %lu hard links; the shim does not read "
                               "files linked elsewhere",
                               rel, (unsigned long)st.st_nlink);
  if ((uint64_t)st.st_size > max)
    return capsule_error_make (err, EFBIG, "'%s' is %lld bytes, over the %zu-byte download limit",
                               rel, (long long)st.st_size, max);
  data = xmalloc0 (st.st_size + 1);
  if (read_all (fd, data, st.st_size) != st.st_size)
    return capsule_error_make (err, errno ? errno : EIO, "read '%s'", rel);
  *ret = steal_pointer (&data);
  *ret_len = st.st_size;
  return 0;
}

int
files_unlink (const char *data_dir, const char *rel, capsule_error **err)
{
  _cleanup_close_ int datafd = files_data_fd (data_dir, err);
  _cleanup_close_ int parent = -1, dir = -1;
  const char *name;
  if (datafd < 0)
    return -1;
  parent = open_parent (datafd, rel, false, 0, &name, err);
  if (parent < 0)
    return errno == ENOENT ? 0 : -1;
  dir = open_beneath (parent, ".", O_RDONLY | O_DIRECTORY, 0);
  if (dir < 0)
    return capsule_error_make (err, errno, "open the directory of '%s'", rel);
  if (unlinkat (dir, name, 0) < 0 && errno != ENOENT)
    return capsule_error_make (err, errno, "delete '%s'", rel);
  return 0;
}

/* Walk the data directory (no symlinks followed, bounded in entries and in path length) and
   bring the registry up to date: files made by the code that no cell reported are added, files
   gone are dropped.  What the bounds leave out is said (truncated), never silently lost. */
struct scan
{
  struct files *fs;
  size_t budget;
  bool truncated;
};

static void
scan_dir (struct scan *sc, int at, const char *prefix)
{
  DIR *d;
  struct dirent *de;
  int fd = open_beneath (at, ".", O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0 || (d = fdopendir (fd)) == NULL)
    {
      if (fd >= 0)
        close (fd);
      return;
    }
  while ((de = readdir (d)))
    {
      _cleanup_free_ char *rel = NULL;
      struct stat st;
      size_t plen = strlen (prefix);
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0
          || strncmp (de->d_name, ".capsule-upload-", 16) == 0)
        continue;
      if (sc->budget == 0)
        {
          sc->truncated = true;
          break;
        }
      sc->budget--;
      if (plen + 1 + strlen (de->d_name) > PATH_MAX_LEN)
        {
          sc->truncated = true; /* deeper than a path the API can name */
          continue;
        }
      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      rel = plen ? xasprintf ("%s/%s", prefix, de->d_name) : xstrdup (de->d_name);
      if (S_ISDIR (st.st_mode))
        {
          int sub = open_beneath (dirfd (d), de->d_name, O_PATH | O_DIRECTORY, 0);
          if (sub >= 0)
            {
              scan_dir (sc, sub, rel);
              close (sub);
            }
        }
      else if (S_ISREG (st.st_mode))
        {
          struct cfile *f = files_find_path (sc->fs, rel);
          if (f == NULL)
            f = files_register (sc->fs, rel, st.st_size, false);
          if (f == NULL)
            {
              sc->truncated = true;
              continue;
            }
          f->bytes = st.st_size;
          f->seen = true;
        }
    }
  closedir (d);
}

void
files_rescan (struct files *fs, const char *data_dir)
{
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_close_ int datafd = files_data_fd (data_dir, &err);
  struct scan sc = { fs, SCAN_MAX_ENTRIES, false };
  size_t kept = 0;
  if (datafd < 0)
    return;
  for (size_t i = 0; i < fs->n; i++)
    fs->v[i]->seen = false;
  scan_dir (&sc, datafd, "");
  /* drop what is gone, in one pass */
  for (size_t i = 0; i < fs->n; i++)
    {
      struct cfile *f = fs->v[i];
      if (f->seen || sc.truncated)
        {
          fs->v[kept++] = f;
          continue;
        }
      strmap_del (&fs->by_id, f->id);
      strmap_del (&fs->by_path, f->path);
      cfile_free (f);
    }
  fs->n = kept;
  fs->truncated = sc.truncated;
}
