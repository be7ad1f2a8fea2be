/* A session's workspace: the tier's `workspace` bytes for /mnt/data and its root's upper layer
 * together, on disk.
 *
 * STATE/sessions/ID/ws.img is a sparse file of that size holding an ext4 filesystem (made once
 * with mke2fs, lazily initialised: a few hundred KiB on disk and ~20 ms), attached to a loop
 * device with direct I/O (no second copy in the page cache) and autoclear (the device goes with
 * the mount) and mounted nosuid,nodev at STATE/sessions/ID/ws.  Its files are the host's page
 * cache, reclaimable, not a tmpfs pinned in the sandbox's memory: a 1g session may fill a 16g
 * workspace.  Writing past the size is ENOSPC inside and `workspace_full` to a client.  The
 * image outlives a reboot of the host: the shim mounts it again and the session comes back
 * with its files and its changed root.
 *
 * Where the host has no loop devices or no ext4 (a probe at start says), the workspace is a
 * tmpfs of the same size, as before, and shim.status says why. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "overlay.h"
#include "sandbox.h"
#include "shim-util.h"
#include "utils.h"
#include "workspace.h"

#define IMAGE "ws.img"

/* mke2fs on PATH: ext4, no reserved blocks, inode and journal tables written lazily by the
   kernel, nothing discarded (the file is sparse already).  Inodes: one per 16 KiB as mke2fs
   would, but never fewer than a tmpfs workspace had (65536, or one per 2 KiB of a small one),
   so a tree of many small files fits as it did. */
static int
make_ext4 (const char *path, uint64_t size, capsule_error **err)
{
  uint64_t small = size / 2048 < 65536 ? size / 2048 : 65536;
  uint64_t inodes = size / 16384 > small ? size / 16384 : small;
  char n[32];
  int status;
  pid_t pid;
  snprintf (n, sizeof n, "%llu", (unsigned long long)inodes);
  pid = fork ();
  if (pid < 0)
    return capsule_error_make (err, errno, "fork");
  if (pid == 0)
    {
      int null = open ("/dev/null", O_RDWR);
      char *const env[] = { "PATH=/usr/sbin:/sbin:/usr/bin:/bin", "LC_ALL=C", NULL };
      char *const argv[] = { "mke2fs",
                             "-q",
                             "-F",
                             "-t",
                             "ext4",
                             "-m",
                             "0",
                             "-N",
                             n,
                             "-E",
                             "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0",
                             (char *)path,
                             NULL };
      if (null >= 0)
        {
          dup2 (null, 0);
          dup2 (null, 1);
          dup2 (null, 2);
        }
      execve ("/usr/sbin/mke2fs", argv, env);
      execve ("/sbin/mke2fs", argv, env);
      _exit (127);
    }
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return capsule_error_make (err, errno, "waitpid mke2fs");
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    return capsule_error_make (err, 0, "mke2fs %s: %s %d", path,
                               WIFEXITED (status) ? "exit" : "signal",
                               WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
  return 0;
}

/* A free loop device backed by IMAGE_FD; returns its fd (the mount must be made before it is
   closed: autoclear) and its path in DEV. */
static int
attach_loop (int image_fd, const char *image, char *dev, size_t dev_len, capsule_error **err)
{
  _cleanup_close_ int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    return capsule_error_make (err, errno, "open /dev/loop-control");
  for (int attempt = 0; attempt < 32; attempt++)
    {
      struct loop_config cfg
          = { .fd = image_fd, .info = { .lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO } };
      int n = ioctl (ctl, LOOP_CTL_GET_FREE), fd;
      if (n < 0)
        return capsule_error_make (err, errno, "LOOP_CTL_GET_FREE");
      snprintf (dev, dev_len, "/dev/loop%d", n);
      fd = open (dev, O_RDWR | O_CLOEXEC);
      if (fd < 0)
        return capsule_error_make (err, errno, "open %s", dev);
      snprintf ((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", image);
      if (ioctl (fd, LOOP_CONFIGURE, &cfg) == 0)
        return fd;
      if (errno == EINVAL)
        {
          /* a backing filesystem without direct I/O: the page cache, then */
          cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
          if (ioctl (fd, LOOP_CONFIGURE, &cfg) == 0)
            return fd;
        }
      close (fd);
      if (errno != EBUSY)
        return capsule_error_make (err, errno, "LOOP_CONFIGURE %s", dev);
      /* another attach took it between GET_FREE and CONFIGURE: the next one */
    }
  return capsule_error_make (err, EBUSY, "no free loop device");
}

/* WS as the ext4 of DIR/ws.img, made of SIZE bytes when it is not there. */
static int
mount_disk (const char *dir, const char *ws, uint64_t size, capsule_error **err)
{
  _cleanup_free_ char *image = xasprintf ("%s/" IMAGE, dir);
  _cleanup_close_ int image_fd = -1, loop_fd = -1;
  char dev[64];
  bool made = false;
  image_fd = open (image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (image_fd < 0 && errno == ENOENT)
    {
      image_fd = open (image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (image_fd < 0 || ftruncate (image_fd, (off_t)size) < 0)
        return capsule_error_make (err, errno, "the workspace image %s", image);
      if (make_ext4 (image, size, err) < 0)
        {
          unlink (image);
          return -1;
        }
      made = true;
    }
  if (image_fd < 0)
    return capsule_error_make (err, errno, "open the workspace image %s", image);
  loop_fd = attach_loop (image_fd, image, dev, sizeof dev, err);
  if (loop_fd < 0)
    return -1;
  if (mount (dev, ws, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "errors=remount-ro") < 0)
    {
      capsule_error_make (err, errno, "mount the workspace %s (%s) at %s", image, dev, ws);
      if (made)
        unlink (image);
      return -1;
    }
  if (chmod (ws, 0711) < 0)
    return capsule_error_make (err, errno, "chmod %s", ws);
  return 0;
}

static int
mount_tmpfs (const char *ws, uint64_t size, capsule_error **err)
{
  _cleanup_free_ char *opts
      = xasprintf ("size=%llu,mode=0711,nr_inodes=65536", (unsigned long long)size);
  if (mount ("capsule-workspace", ws, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
    return capsule_error_make (err, errno, "mount the workspace at %s", ws);
  return 0;
}

int
workspace_host_init (struct sandbox_host *h, const char *state_dir, capsule_error **ret_err)
{
  /* one small image, made and mounted as a session's would be */
  _cleanup_free_ char *dir = xasprintf ("%s/images/ws-probe", state_dir);
  _cleanup_free_ char *ws = xasprintf ("%s/ws", dir);
  _cleanup_error_ capsule_error *err = NULL, *ignored = NULL;
  free (h->store_reason);
  h->store_reason = NULL;
  if (h->store_mode && strcmp (h->store_mode, "tmpfs") == 0)
    {
      h->store_disk = false;
      h->store_reason = xstrdup ("--workspaces tmpfs");
      return 0;
    }
  umount2 (ws, MNT_DETACH);
  rm_rf (dir, &ignored);
  capsule_error_release (&ignored);
  h->store_disk = mkdir_p (ws, 0700, &err) == 0 && mount_disk (dir, ws, 16 << 20, &err) == 0;
  if (h->store_disk)
    umount2 (ws, MNT_DETACH);
  else if (h->store_mode && strcmp (h->store_mode, "disk") == 0)
    {
      rm_rf (dir, &ignored);
      return capsule_error_make (ret_err, err->status,
                                 "--workspaces disk, but this host cannot hold them: %s", err->msg);
    }
  else
    {
      h->store_reason = xstrdup (err->msg);
      fprintf (stderr, "capsule-shim: workspaces are tmpfs (in memory): %s\n", err->msg);
    }
  rm_rf (dir, &ignored);
  return 0;
}

void
workspace_host_release (struct sandbox_host *h)
{
  free (h->store_reason);
  h->store_reason = NULL;
}

int
workspace_mount (const struct sandbox_host *h, const char *dir, uint64_t size, uid_t uid,
                 capsule_error **err)
{
  _cleanup_free_ char *ws = xasprintf ("%s/ws", dir), *files = xasprintf ("%s/data", ws);
  _cleanup_free_ char *data = xasprintf ("%s/data", dir), *image = xasprintf ("%s/" IMAGE, dir);
  struct stat st;
  if (mkdir_p (ws, 0700, err) < 0 || mkdir_p (data, 0700, err) < 0)
    return -1;
  if (!is_mount_point (ws))
    {
      /* a session whose workspace was made on disk stays there (also when the host now says
         tmpfs: its files are in the image) */
      bool disk = h->store_disk || access (image, F_OK) == 0;
      if ((disk ? mount_disk (dir, ws, size, err) : mount_tmpfs (ws, size, err)) < 0)
        return -1;
    }
  if (mkdir (files, 0700) < 0 && errno != EEXIST)
    return capsule_error_make (err, errno, "mkdir %s", files);
  /* the sandbox's user owns its files' top directory, and nothing planted there is followed */
  if (lstat (files, &st) < 0)
    return capsule_error_make (err, errno, "lstat %s", files);
  if (!S_ISDIR (st.st_mode))
    return capsule_error_make (err, ENOTDIR, "%s is no directory", files);
  if (chown (files, uid, uid) < 0 || chmod (files, 0700) < 0)
    return capsule_error_make (err, errno, "chown %s", files);
  if (!is_mount_point (data) && mount (files, data, NULL, MS_BIND, NULL) < 0)
    return capsule_error_make (err, errno, "bind the workspace's data directory at %s", data);
  if (!overlay_session_has_root (dir) && overlay_session_mount (h, dir, ws, uid, err) < 0)
    return -1;
  return 0;
}

void
workspace_unmount (const char *dir)
{
  _cleanup_free_ char *ws = xasprintf ("%s/ws", dir), *data = xasprintf ("%s/data", dir);
  overlay_session_unmount (dir);
  umount2 (data, MNT_DETACH);
  umount2 (ws, MNT_DETACH);
}

bool
workspace_ready (const char *dir)
{
  _cleanup_free_ char *data = xasprintf ("%s/data", dir);
  return is_mount_point (data);
}
