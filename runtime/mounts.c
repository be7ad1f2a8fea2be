/* capsule: filesystem set-up of the container. */
#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "namespaces.h"
#include "utils.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV  0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
struct capsule_mount_attr
{
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static int
openat2_in_root (int rootfd, const char *path, int flags, mode_t mode)
{
  struct open_how how = { .flags = flags | O_CLOEXEC,
                          .mode = mode,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  while (*path == '/')
    path++;
  if (*path == '\0')
    path = ".";
  return syscall (SYS_openat2, rootfd, path, &how, sizeof how);
}

/* The components of PATH, and how many. */
static char **
split_path (const char *path, size_t *ret_n)
{
  _cleanup_free_ char *copy = xstrdup (path);
  size_t n = 0;
  char **v = xmalloc0 ((strlen (path) / 2 + 2) * sizeof (char *));
  char *save = NULL;
  for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    v[n++] = xstrdup (comp);
  *ret_n = n;
  return v;
}

/* Resolve PATH beneath ROOTFD as runc does (securejoin): every prefix afresh from the root, so an
   absolute or relative symlink, at any depth, resolves as the container will see it; a missing
   component is made (a directory, or a file for the last when FILE); a dangling symlink is
   followed and its target made, inside the root.  Returns an O_PATH fd of the result. */
int
mounts_open_target (int rootfd, const char *path, bool file, capsule_error **err)
{
  _cleanup_free_ char *todo = xstrdup (path);
  int links = 0;

  for (const char *p = path; *p;)
    {
      size_t len = strcspn (p, "/");
      if (len == 2 && p[0] == '.' && p[1] == '.')
        return capsule_error_make (err, 0, "mount destination `%s` contains \"..\"", path);
      p += len;
      p += strspn (p, "/");
    }
  /* Mostly everything is there: one lookup of the whole path resolves it exactly as the walk
     below would (RESOLVE_IN_ROOT follows every symlink beneath the root).  The walk is for what
     is missing, and for the error that names where. */
  {
    int fd = openat2_in_root (rootfd, path, O_PATH, 0);
    if (fd >= 0)
      return fd;
  }
restart:
  {
    size_t n = 0;
    _cleanup_strv_ char **comps = split_path (todo, &n);
    _cleanup_free_ char *prefix = xstrdup ("");
    _cleanup_close_ int parent = dup (rootfd);
    if (parent < 0)
      return capsule_error_make (err, errno, "dup");
    for (size_t i = 0; i < n; i++)
      {
        const char *comp = comps[i];
        bool last = i + 1 == n;
        char *next = xasprintf ("%s/%s", prefix, comp);
        int nfd;
        free (prefix);
        prefix = next;
        nfd = openat2_in_root (rootfd, prefix, O_PATH, 0);
        if (nfd < 0 && errno == ENOENT)
          {
            char target[4096];
            /* PARENT is where the prefix so far resolved beneath the root and COMP one plain
               name in it: what is made lands inside the rootfs. */
            ssize_t len = readlinkat (parent, comp, target, sizeof target - 1);
            if (len > 0)
              {
                /* a dangling symlink: go on from its target, as the container would */
                _cleanup_free_ char *rest = xstrdup ("");
                if (++links > 40)
                  return capsule_error_make (err, ELOOP, "resolve `%s` in the rootfs", path);
                target[len] = '\0';
                for (size_t j = i + 1; j < n; j++)
                  {
                    char *r = xasprintf ("%s/%s", rest, comps[j]);
                    free (rest);
                    rest = r;
                  }
                *strrchr (prefix, '/') = '\0';
                free (todo);
                todo = target[0] == '/' ? xasprintf ("%s%s", target, rest)
                                        : xasprintf ("%s/%s%s", prefix, target, rest);
                goto restart;
              }
            if (last && file)
              {
                int f = openat (parent, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                                0644);
                if (f < 0 && errno != EEXIST)
                  return capsule_error_make (err, errno, "create mount target `%s`", path);
                if (f >= 0)
                  close (f);
              }
            else if (mkdirat (parent, comp, 0755) < 0 && errno != EEXIST)
              return capsule_error_make (err, errno, "create directory for `%s`", path);
            nfd = openat2_in_root (rootfd, prefix, O_PATH, 0);
          }
        if (nfd < 0)
          return capsule_error_make (err, errno, "resolve `%s` in the rootfs", path);
        close (parent);
        parent = nfd;
      }
    return steal_fd (&parent);
  }
}

static char *
fd_path (int fd)
{
  return xasprintf ("/proc/self/fd/%d", fd);
}

/* Flags a user namespace may not clear on a remount (the kernel "locks" them): keep them. */
static unsigned long
locked_flags (const char *target)
{
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs (target, &sv) < 0)
    return 0;
  if (sv.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  if (sv.f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  return f;
}

/* Add ATTRS (MOUNT_ATTR_*) to the mount FD is the root of, and to every mount below it when
   RECURSIVE: one call, no flags to read back first.  -1 with errno ENOSYS on kernels before
   5.12, for the caller to remount the old way. */
static int
setattr_fd (int fd, uint64_t attrs, bool recursive)
{
  struct capsule_mount_attr attr = { .attr_set = attrs };
  return syscall (__NR_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                  sizeof attr);
}

static int
remount_bind (const char *target, unsigned long set, unsigned long clear, capsule_error **err)
{
  unsigned long flags = (locked_flags (target) | set) & ~(clear & ~MS_RDONLY);
  if (clear & MS_RDONLY)
    flags &= ~MS_RDONLY;
  flags &= MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME
           | MS_STRICTATIME | MS_SYNCHRONOUS | MS_DIRSYNC;
  if (mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
    return capsule_error_make (err, errno, "remount `%s`", target);
  return 0;
}

/* remount_bind for the mount FD is the root of: flags only added (no clear, no atime mode) go
   on with one mount_setattr, without reading the mount's flags back first or walking
   /proc/self/fd again; anything else, or an old kernel, takes remount_bind. */
static int
remount_fd (int fd, const char *target, unsigned long set, unsigned long clear, capsule_error **err)
{
  static const struct
  {
    unsigned long ms;
    uint64_t attr;
  } map[] = { { MS_RDONLY, MOUNT_ATTR_RDONLY },
              { MS_NOSUID, MOUNT_ATTR_NOSUID },
              { MS_NODEV, MOUNT_ATTR_NODEV },
              { MS_NOEXEC, MOUNT_ATTR_NOEXEC } };
  unsigned long rest = set;
  uint64_t attrs = 0;
  for (size_t i = 0; i < ARRAY_SIZE (map); i++)
    if (set & map[i].ms)
      {
        attrs |= map[i].attr;
        rest &= ~map[i].ms;
      }
  if (clear == 0 && rest == 0 && attrs && setattr_fd (fd, attrs, false) == 0)
    return 0;
  return remount_bind (target, set, clear, err);
}

/* A path through /proc/self/fd/N names what the fd was opened on, not a mount made on top of it
   since: after mounting, open the destination again to work on the new mount. */
static int
reopen (int rootfd, const struct spec_mount *sm, int *fd, char **target, capsule_error **err)
{
  bool file = false;
  struct stat st;
  if (fstat (*fd, &st) == 0)
    file = !S_ISDIR (st.st_mode);
  close (*fd);
  *fd = mounts_open_target (rootfd, sm->destination, file, err);
  if (*fd < 0)
    return -1;
  free (*target);
  *target = fd_path (*fd);
  return 0;
}

static int
mount_cgroup (const struct mounts_ctx *m, int rootfd, const struct spec_mount *sm, int *target_fd,
              capsule_error **err)
{
  _cleanup_free_ char *target = fd_path (*target_fd);
  const struct cgroup *cg = m->cgroup;
  unsigned long ro = sm->flags & MS_RDONLY;
  if (cg == NULL)
    return capsule_error_make (err, 0, "mount of type cgroup at `%s` without a container cgroup",
                               sm->destination);
  if (cg->ops->version == 2)
    {
      if (m->cgroupns
          && mount ("cgroup2", target, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, NULL) == 0)
        return 0;
      _cleanup_free_ char *src = xasprintf ("%s%s", cg->root, cg->path);
      if (mount (src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        return capsule_error_make (err, errno, "bind the container cgroup at `%s`",
                                   sm->destination);
      if (reopen (rootfd, sm, target_fd, &target, err) < 0)
        return -1;
      return ro ? remount_fd (*target_fd, target, MS_RDONLY, 0, err) : 0;
    }
  /* v1: a tmpfs with one directory per controller, each the container's own cgroup, so the
     container sees memory.limit_in_bytes, cpu.shares, pids.max of itself and nothing above. */
  if (mount ("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k") < 0)
    return capsule_error_make (err, errno, "mount tmpfs for cgroups at `%s`", sm->destination);
  if (reopen (rootfd, sm, target_fd, &target, err) < 0)
    return -1;
  for (int c = 0; cgroup_v1_controllers[c]; c++)
    {
      _cleanup_free_ char *src = NULL, *dst = NULL;
      if (cg->v1_paths[c] == NULL)
        continue;
      src = xasprintf ("%s/%s%s", cg->root, cgroup_v1_controllers[c], cg->v1_paths[c]);
      dst = xasprintf ("%s/%s", target, cgroup_v1_controllers[c]);
      if (mkdir (dst, 0755) < 0 && errno != EEXIST)
        return capsule_error_make (err, errno, "mkdir `%s/%s`", sm->destination,
                                   cgroup_v1_controllers[c]);
      if (mount (src, dst, NULL, MS_BIND, NULL) < 0)
        return capsule_error_make (err, errno, "bind cgroup %s at `%s/%s`", src, sm->destination,
                                   cgroup_v1_controllers[c]);
    }
  /* the tmpfs and every controller's bind at once (8 remounts and their statfs before) */
  if (setattr_fd (*target_fd,
                  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
                      | (ro ? MOUNT_ATTR_RDONLY : 0),
                  true)
      == 0)
    return 0;
  if (errno != ENOSYS)
    return capsule_error_make (err, errno, "make `%s` %s", sm->destination,
                               ro ? "read-only" : "nosuid, nodev, noexec");
  for (int c = 0; cgroup_v1_controllers[c]; c++)
    {
      _cleanup_free_ char *dst = NULL;
      if (cg->v1_paths[c] == NULL)
        continue;
      dst = xasprintf ("%s/%s", target, cgroup_v1_controllers[c]);
      if (remount_bind (dst, MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, 0, err) < 0)
        return -1;
    }
  return ro ? remount_bind (target, MS_RDONLY, 0, err) : 0;
}

static int
bind_source_is_file (const struct spec *s, const struct spec_mount *sm, char **ret_src,
                     bool *ret_file, capsule_error **err)
{
  struct stat st;
  char *src
      = sm->source[0] == '/' ? xstrdup (sm->source) : xasprintf ("%s/%s", s->bundle, sm->source);
  if (stat (src, &st) < 0)
    {
      capsule_error_make (err, errno, "mounts: bind source `%s` for `%s`", src, sm->destination);
      free (src);
      return -1;
    }
  *ret_file = !S_ISDIR (st.st_mode);
  *ret_src = src;
  return 0;
}

static int
bind_tree (const struct mounts_ctx *m, const struct spec_mount *sm)
{
  const struct spec *s = m->spec;
  if (m->bind_trees == NULL || sm < s->mounts || sm >= s->mounts + s->n_mounts)
    return -1;
  return m->bind_trees[sm - s->mounts];
}

int *
mounts_open_bind_trees (const struct spec *s, bool all)
{
  int *fds = xmalloc0 ((s->n_mounts + 1) * sizeof (int));
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      const struct spec_mount *sm = &s->mounts[i];
      _cleanup_free_ char *src = NULL;
      fds[i] = -1;
      if (!(sm->flags & MS_BIND) || (sm->type && strcmp (sm->type, "cgroup") == 0)
          || !(all || sm->idmap))
        continue;
      src = sm->source[0] == '/' ? xstrdup (sm->source)
                                 : xasprintf ("%s/%s", s->bundle, sm->source);
      fds[i] = open_tree (AT_FDCWD, src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                              | ((sm->flags & MS_REC) ? AT_RECURSIVE : 0));
    }
  return fds;
}

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

int
mounts_idmap_trees (const struct spec *s, int *trees, pid_t child, capsule_error **err)
{
  const struct spec_namespace *user = spec_namespace (s, CLONE_NEWUSER);
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      const struct spec_mount *sm = &s->mounts[i];
      struct capsule_mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP };
      _cleanup_close_ int userns = -1;
      if (!sm->idmap)
        continue;
      if (trees == NULL || trees[i] < 0)
        {
          _cleanup_free_ char *src = sm->source[0] == '/'
                                         ? xstrdup (sm->source)
                                         : xasprintf ("%s/%s", s->bundle, sm->source);
          if (trees == NULL
              || (trees[i] = open_tree (AT_FDCWD, src,
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                            | ((sm->flags & MS_REC) ? AT_RECURSIVE : 0)))
                     < 0)
            return capsule_error_make (err, errno, "mounts[%zu]: idmapped bind source `%s`", i,
                                       src);
        }
      if (sm->n_uid_mappings)
        userns = namespaces_userns_fd (sm->uid_mappings, sm->n_uid_mappings, sm->gid_mappings,
                                       sm->n_gid_mappings, err);
      else
        {
          /* the container's own user namespace: joined by path, or the one it made */
          _cleanup_free_ char *path
              = user && user->path ? xstrdup (user->path) : xasprintf ("/proc/%d/ns/user", child);
          userns = open (path, O_RDONLY | O_CLOEXEC);
          if (userns < 0)
            capsule_error_make (err, errno, "open the user namespace `%s`", path);
        }
      if (userns < 0)
        return capsule_error_wrap (err, "mounts[%zu]: idmapped mount of `%s`", i, sm->source);
      attr.userns_fd = userns;
      if (syscall (__NR_mount_setattr, trees[i], "",
                   AT_EMPTY_PATH | (sm->idmap_recursive ? AT_RECURSIVE : 0), &attr, sizeof attr)
          < 0)
        return capsule_error_make (err, errno,
                                   "mounts[%zu]: idmap the mount of `%s` (the filesystem must "
                                   "support idmapped mounts)",
                                   i, sm->source);
    }
  return 0;
}

void
mounts_close_bind_trees (int *fds, size_t n)
{
  for (size_t i = 0; fds && i < n; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  free (fds);
}

static int
do_mount (const struct mounts_ctx *m, int rootfd, const struct spec_mount *sm, capsule_error **err)
{
  _cleanup_free_ char *src = NULL, *target = NULL;
  _cleanup_close_ int fd = -1;
  bool file = false;
  unsigned long flags = sm->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
  const char *type = sm->type;
  int tree = bind_tree (m, sm);
  struct stat tree_st;

  if (sm->flags & MS_BIND)
    {
      if (sm->idmap && tree >= 0 && fstat (tree, &tree_st) == 0)
        {
          src = xstrdup (sm->source);
          file = !S_ISDIR (tree_st.st_mode);
        }
      else if (bind_source_is_file (m->spec, sm, &src, &file, err) < 0)
        {
          /* out of the container root's reach: the runtime's copy says what it is */
          if (tree < 0 || (*err)->status != EACCES || fstat (tree, &tree_st) < 0)
            return -1;
          capsule_error_release (err);
          src = xstrdup (sm->source);
          file = !S_ISDIR (tree_st.st_mode);
        }
    }
  fd = mounts_open_target (rootfd, sm->destination, file, err);
  if (fd < 0)
    return capsule_error_wrap (err, "mounts: `%s`", sm->destination);
  target = fd_path (fd);

  if (type && strcmp (type, "cgroup") == 0)
    return mount_cgroup (m, rootfd, sm, &fd, err);
  if (sm->flags & MS_BIND)
    {
      if (sm->idmap)
        {
          if (tree < 0
              || move_mount (tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
                     < 0)
            return capsule_error_make (err, tree < 0 ? EBADF : errno,
                                       "mounts: idmapped bind `%s` at `%s`", src, sm->destination);
        }
      else if (mount (src, target, NULL, MS_BIND | (sm->flags & MS_REC), NULL) < 0
               && !(errno == EACCES && tree >= 0
                    && move_mount (tree, "", fd, "",
                                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
                           == 0))
        return capsule_error_make (err, errno, "mounts: bind `%s` at `%s`", src, sm->destination);
      if (reopen (rootfd, sm, &fd, &target, err) < 0)
        return -1;
      if ((flags || sm->clear_flags) && remount_fd (fd, target, flags, sm->clear_flags, err) < 0)
        return capsule_error_wrap (err, "mounts: `%s`", sm->destination);
      if (sm->recursive_readonly)
        {
          struct capsule_mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
          if (syscall (__NR_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr)
              < 0)
            return capsule_error_make (err, errno, "mounts: make `%s` recursively read-only",
                                       sm->destination);
        }
    }
  else
    {
      const char *source = sm->source && sm->source[0] ? sm->source : type;
      if (mount (source, target, type, flags, sm->data) < 0)
        {
          int e = errno;
          /* sysfs belongs to the network namespace's owner; without a new netns a user
             namespace may only bind the host's (read-only, as runc does). */
          if (strcmp (type, "sysfs") == 0 && (e == EPERM || e == EACCES))
            {
              if (mount ("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0)
                return reopen (rootfd, sm, &fd, &target, err) < 0
                           ? -1
                           : remount_bind (target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0,
                                           err);
            }
          return capsule_error_make (err, e, "mounts: mount %s at `%s`%s%s", type, sm->destination,
                                     sm->data ? " with options " : "", sm->data ? sm->data : "");
        }
      if (reopen (rootfd, sm, &fd, &target, err) < 0)
        return -1;
    }
  if (sm->propagation && mount (NULL, target, NULL, sm->propagation, NULL) < 0)
    return capsule_error_make (err, errno, "mounts: set propagation of `%s`", sm->destination);
  return 0;
}

struct default_dev
{
  const char *name;
  int major, minor;
};
static const struct default_dev default_devices[] = {
  { "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
  { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

static int
make_device (const struct mounts_ctx *m, int rootfd, const char *path, char type, int major,
             int minor, mode_t mode, uid_t uid, gid_t gid, capsule_error **err)
{
  /* PATH is absolute and clean (spec.c): its directory, made beneath the root if need be,
     anywhere in the rootfs as runc allows; NAME is one plain component in it. */
  _cleanup_free_ char *dir = xasprintf ("%.*s", (int)(strrchr (path, '/') - path), path);
  _cleanup_close_ int devfd = mounts_open_target (rootfd, dir[0] ? dir : "/", false, err);
  const char *name = strrchr (path, '/') + 1;
  mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
  if (devfd < 0)
    return capsule_error_wrap (err, "linux.devices: `%s`", path);
  if (!m->userns && mknodat (devfd, name, kind | (mode & 07777), makedev (major, minor)) == 0)
    {
      /* mknod applies the runtime's umask; the node gets the spec's fileMode whatever it is.
         The name is one component we just made in a /dev nothing else runs in yet; chmod
         after chown, which clears set-id bits. */
      if (fchownat (devfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return capsule_error_make (err, errno, "chown `%s`", path);
      if (fchmodat (devfd, name, mode & 07777, 0) < 0)
        return capsule_error_make (err, errno, "chmod `%s` to %04o", path, mode & 07777);
      return 0;
    }
  if (!m->userns && errno == EEXIST)
    return 0;
  /* In a user namespace mknod is refused: bind the host's node instead, as runc does. */
  {
    _cleanup_free_ char *host = xstrdup (path);
    struct spec_mount bind
        = { .destination = (char *)path, .source = host, .flags = MS_BIND | MS_NOSUID | MS_NOEXEC };
    struct stat st;
    if (stat (host, &st) < 0)
      return capsule_error_make (err, errno, "device `%s`: no such device on the host to bind",
                                 path);
    if (!S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode))
      return capsule_error_make (err, 0, "device `%s`: host `%s` is no device", path, host);
    if (major >= 0
        && (major (st.st_rdev) != (unsigned)major || minor (st.st_rdev) != (unsigned)minor))
      return capsule_error_make (err, 0, "device `%s`: host `%s` is %u:%u, not %d:%d", path, host,
                                 major (st.st_rdev), minor (st.st_rdev), major, minor);
    return do_mount (m, rootfd, &bind, err);
  }
}

/* A user namespace binds the host's node over a new empty file in the container's /dev (DEVFD):
   one name in one directory, no walk.  1 when done, 0 to take the general way (the name is
   there already: it may be anything the image put there), -1 on error. */
static int
bind_default_device (int devfd, const struct default_dev *d, capsule_error **err)
{
  _cleanup_free_ char *host = xasprintf ("/dev/%s", d->name);
  _cleanup_free_ char *on = NULL;
  _cleanup_close_ int file = -1, top = -1;
  struct stat st;
  if (stat (host, &st) < 0 || !S_ISCHR (st.st_mode) || major (st.st_rdev) != (unsigned)d->major
      || minor (st.st_rdev) != (unsigned)d->minor)
    return 0; /* the general way says what is wrong */
  /* O_EXCL: a file made here and now, nothing planted */
  file = openat (devfd, d->name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (file < 0)
    return errno == EEXIST ? 0 : capsule_error_make (err, errno, "create mount target `%s`", host);
  on = fd_path (file);
  if (mount (host, on, NULL, MS_BIND, NULL) < 0)
    return capsule_error_make (err, errno, "mounts: bind `%s` at `%s`", host, host);
  /* the name now leads into the bind: nosuid and noexec on it */
  top = openat (devfd, d->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0)
    return capsule_error_make (err, errno, "open `%s` in the container", host);
  free (on);
  on = fd_path (top);
  return remount_fd (top, on, MS_NOSUID | MS_NOEXEC, 0, err) < 0 ? -1 : 1;
}

static int
setup_devices (const struct mounts_ctx *m, int rootfd, capsule_error **err)
{
  static const char *const links[][2] = {
    { "/proc/self/fd", "fd" },       { "/proc/self/fd/0", "stdin" },
    { "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
    { "pts/ptmx", "ptmx" },
  };
  _cleanup_close_ int real = -1;
  const struct spec *s = m->spec;
  /* the container's /dev, resolved beneath the root, as a directory to make names in */
  {
    _cleanup_close_ int devfd = mounts_open_target (rootfd, "/dev", false, err);
    _cleanup_free_ char *p = NULL;
    if (devfd < 0)
      return capsule_error_wrap (err, "linux.devices: /dev");
    p = fd_path (devfd);
    real = open (p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (real < 0)
      return capsule_error_make (err, errno, "open /dev of the container");
  }
  for (size_t i = 0; i < ARRAY_SIZE (default_devices); i++)
    {
      _cleanup_free_ char *p = xasprintf ("/dev/%s", default_devices[i].name);
      int done = m->userns ? bind_default_device (real, &default_devices[i], err) : 0;
      if (done < 0)
        return -1;
      if (done)
        continue;
      if (make_device (m, rootfd, p, 'c', default_devices[i].major, default_devices[i].minor, 0666,
                       0, 0, err)
          < 0)
        return -1;
    }
  for (size_t i = 0; i < s->n_devices; i++)
    {
      const struct spec_device *d = &s->devices[i];
      if (make_device (m, rootfd, d->path, d->type, d->major, d->minor,
                       d->has_mode ? d->mode : 0666, d->uid, d->gid, err)
          < 0)
        return -1;
    }
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    if (symlinkat (links[i][0], real, links[i][1]) < 0 && errno != EEXIST)
      return capsule_error_make (err, errno, "symlink /dev/%s", links[i][1]);
  return 0;
}

static bool
spec_mounts_dev (const struct spec *s)
{
  for (size_t i = 0; i < s->n_mounts; i++)
    if (strcmp (s->mounts[i].destination, "/dev") == 0)
      return true;
  return false;
}

void
mounts_precreate_targets (const struct spec *s)
{
  _cleanup_close_ int rootfd = open (s->root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return;
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      const struct spec_mount *sm = &s->mounts[i];
      _cleanup_error_ capsule_error *ignored = NULL;
      _cleanup_free_ char *src = NULL;
      bool file = false;
      int fd;
      if ((sm->flags & MS_BIND) && bind_source_is_file (s, sm, &src, &file, &ignored) < 0)
        continue;
      fd = mounts_open_target (rootfd, sm->destination, file, &ignored);
      if (fd >= 0)
        close (fd);
    }
}

/* The spec has no options for the root mount; this annotation gives some, for a root that must
   not honour setuid bits or device nodes (the shim's sandboxes: no_new_privs is per thread, and a
   thread that a checkpoint's restore brought back without it must still gain nothing). */
#define ROOT_OPTIONS "run.capsule.rootfs.options"

static int
root_flags (const struct spec *s, unsigned long *ret, capsule_error **err)
{
  static const struct
  {
    const char *name;
    unsigned long flag;
  } known[] = { { "nosuid", MS_NOSUID }, { "nodev", MS_NODEV }, { "noexec", MS_NOEXEC } };
  const char *value = NULL;
  _cleanup_free_ char *copy = NULL;
  char *save = NULL;

  *ret = 0;
  for (size_t i = 0; i < s->n_annotations; i++)
    if (strcmp (s->annotation_keys[i], ROOT_OPTIONS) == 0)
      value = s->annotation_values[i];
  if (value == NULL)
    return 0;
  copy = xstrdup (value);
  for (char *o = strtok_r (copy, ",", &save); o; o = strtok_r (NULL, ",", &save))
    {
      size_t k;
      for (k = 0; k < ARRAY_SIZE (known) && strcmp (o, known[k].name) != 0; k++)
        ;
      if (k == ARRAY_SIZE (known))
        return capsule_error_make (err, EINVAL,
                                   "annotations." ROOT_OPTIONS ": unknown option \"%s\" (nosuid, "
                                   "nodev and noexec are known)",
                                   o);
      *ret |= known[k].flag;
    }
  return 0;
}

int
mounts_prepare_rootfs (const struct mounts_ctx *m, capsule_error **err)
{
  const struct spec *s = m->spec;
  unsigned long prop = s->rootfs_propagation ? s->rootfs_propagation : MS_PRIVATE | MS_REC;
  unsigned long flags = 0;
  _cleanup_close_ int rootfd = -1;

  /* pivot_root refuses a shared new root: a shared rootfsPropagation applies after it. */
  if (prop & MS_SHARED)
    prop = MS_PRIVATE | (prop & MS_REC);

  /* Nothing we mount may propagate back to the host. */
  if (mount (NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    return capsule_error_make (err, errno, "make / a slave mount");
  if (mount (s->root_path, s->root_path, NULL, MS_BIND | MS_REC, NULL) < 0)
    {
      if (errno == EACCES && m->userns)
        return capsule_error_make (err, EACCES,
                                   "root.path: `%s` is out of reach of the container's root user "
                                   "(uidMappings): every directory above it must be searchable "
                                   "by others (chmod o+x)",
                                   s->root_path);
      return capsule_error_make (err, errno, "root.path: bind `%s`", s->root_path);
    }
  if (mount (NULL, s->root_path, NULL, prop, NULL) < 0)
    return capsule_error_make (err, errno, "linux.rootfsPropagation of `%s`", s->root_path);
  if (root_flags (s, &flags, err) < 0)
    return -1;
  if (flags && remount_bind (s->root_path, flags, 0, err) < 0)
    return capsule_error_wrap (err, "annotations." ROOT_OPTIONS);
  rootfd = open (s->root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return capsule_error_make (err, errno, "root.path: open `%s`", s->root_path);
  for (size_t i = 0; i < s->n_mounts; i++)
    if (do_mount (m, rootfd, &s->mounts[i], err) < 0)
      return -1;
  if (spec_mounts_dev (s) || s->n_devices)
    if (setup_devices (m, rootfd, err) < 0)
      return -1;
  return 0;
}

int
mounts_pivot (const struct spec *s, capsule_error **err)
{
  _cleanup_close_ int oldroot = open ("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  _cleanup_close_ int newroot = open (s->root_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0 || newroot < 0)
    return capsule_error_make (err, errno, "open old and new root");
  if (fchdir (newroot) < 0)
    return capsule_error_make (err, errno, "chdir into `%s`", s->root_path);
  /* pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then drops
     the old root without needing a directory for it inside the rootfs. */
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    return capsule_error_make (err, errno, "pivot_root into `%s`", s->root_path);
  if (fchdir (oldroot) < 0)
    return capsule_error_make (err, errno, "chdir to the old root");
  if (mount (NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return capsule_error_make (err, errno, "make the old root a slave");
  if (umount2 (".", MNT_DETACH) < 0)
    return capsule_error_make (err, errno, "unmount the old root");
  if (chdir ("/") < 0)
    return capsule_error_make (err, errno, "chdir /");
  /* A peer group of the container's own: the host's mounts stay slaves, nothing goes back. */
  if ((s->rootfs_propagation & MS_SHARED)
      && mount (NULL, "/", NULL, s->rootfs_propagation, NULL) < 0)
    return capsule_error_make (err, errno, "linux.rootfsPropagation of the container's root");
  return 0;
}

/* The node masked files are bound from: the container's /dev/null, opened without following a
   link and checked to be the null device (1:3).  An image or a /dev shared with another container
   could make it a symlink to a writable file such as /proc/sys/kernel/core_pattern, and every
   masked path would then expose that file instead of hiding one (CVE-2025-31133). */
static int
open_null_device (capsule_error **err)
{
  struct stat st;
  int fd = open ("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "linux.maskedPaths: open /dev/null in the container");
  if (fstat (fd, &st) < 0 || !S_ISCHR (st.st_mode) || st.st_rdev != makedev (1, 3))
    {
      close (fd);
      return capsule_error_make (err, EPERM,
                                 "linux.maskedPaths: /dev/null in the container is not the null "
                                 "device (1:3); refusing to mask with it");
    }
  return fd;
}

/* NULL_FLAGS: the null device's mount is nosuid and noexec already, and a bind of it is too */
static int
mask_path (const char *path, int nullfd, bool null_flags, capsule_error **err)
{
  _cleanup_free_ char *null_path = NULL;
  struct stat st;
  if (lstat (path, &st) < 0)
    return errno == ENOENT ? 0 : capsule_error_make (err, errno, "linux.maskedPaths: `%s`", path);
  if (S_ISDIR (st.st_mode))
    {
      if (mount ("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 "size=0,mode=000")
          < 0)
        return capsule_error_make (err, errno, "linux.maskedPaths: hide `%s`", path);
      return 0;
    }
  /* Through the descriptor checked above, not the name again: the name could change between. */
  null_path = fd_path (nullfd);
  if (access (null_path, F_OK) < 0)
    {
      free (null_path);
      null_path = xstrdup ("/dev/null"); /* no /proc in this container: the name, checked once */
    }
  if (mount (null_path, path, NULL, MS_BIND, NULL) < 0)
    return capsule_error_make (err, errno, "linux.maskedPaths: hide `%s`", path);
  if (!null_flags && remount_bind (path, MS_NOSUID | MS_NOEXEC, 0, err) < 0)
    return capsule_error_wrap (err, "linux.maskedPaths");
  return 0;
}

static int
readonly_path (const char *path, capsule_error **err)
{
  _cleanup_close_ int fd = -1;
  if (mount (path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
    return errno == ENOENT ? 0 : capsule_error_make (err, errno, "linux.readonlyPaths: `%s`", path);
  /* the name now leads to the bind just made */
  fd = open (path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return capsule_error_make (err, errno, "linux.readonlyPaths: open `%s`", path);
  if (remount_fd (fd, path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0, err) < 0)
    return capsule_error_wrap (err, "linux.readonlyPaths");
  return 0;
}

int
mounts_finish (const struct mounts_ctx *m, capsule_error **err)
{
  const struct spec *s = m->spec;
  for (char **p = s->readonly_paths; p && *p; p++)
    if (readonly_path (*p, err) < 0)
      return -1;
  if (s->masked_paths && *s->masked_paths)
    {
      _cleanup_close_ int nullfd = open_null_device (err);
      _cleanup_free_ char *null_path = NULL;
      struct statvfs sv;
      bool null_flags;
      if (nullfd < 0)
        return -1;
      /* the mount flags a bind copies: a user namespace's /dev/null is a nosuid, noexec bind */
      null_path = fd_path (nullfd);
      null_flags
          = statvfs (null_path, &sv) == 0 && (sv.f_flag & ST_NOSUID) && (sv.f_flag & ST_NOEXEC);
      for (char **p = s->masked_paths; *p; p++)
        if (mask_path (*p, nullfd, null_flags, err) < 0)
          return -1;
    }
  if (s->root_readonly && remount_bind ("/", MS_RDONLY, 0, err) < 0)
    return capsule_error_wrap (err, "root.readonly");
  return 0;
}
