/* A writable root for every session: an overlay of the image, read-only and shared below, the
 * session's own upper layer above, on the session's workspace (the tier's `workspace`, shared
 * with /mnt/data).
 *
 * The image belongs to the host's root; seen from a sandbox's user namespace its files would
 * be owned by nobody and no copy-up could ever be written by the sandbox's user.  So the layer
 * below is an idmapped mount of the image: the host's uid 0 shows as the sandbox's user (1000),
 * the host's 1-999 and 1001-65535 as the same ids of the sandbox, and the user may change any
 * file of its own root, each change landing in its upper layer alone.  The lower mounts are
 * made once per shim under STATE/images; a filesystem or kernel without idmapped mounts (or
 * overlay over them, Linux 5.19) leaves sessions on the read-only root, and shim.status says
 * why. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "namespaces.h"
#include "overlay.h"
#include "sandbox.h"
#include "shim-util.h"
#include "spec.h"
#include "utils.h"

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

/* overlay's options: no redirect or metacopy xattrs (a layer never points at another path),
   no index; nosuid and nodev on the mount */
#define OVERLAY_OPTS "redirect_dir=off,metacopy=off,index=off"

static void
detach_all (const char *path)
{
  /* a previous shim's mounts, stacked by as many restarts */
  for (int i = 0; i < 64 && umount2 (path, MNT_DETACH) == 0; i++)
    ;
}

/* An idmapped, read-only, nosuid, nodev copy of SRC attached at DST. */
static int
idmapped_lower (const char *src, const char *dst, int userns, capsule_error **err)
{
  struct mount_attr attr
      = { .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
          .userns_fd = userns };
  _cleanup_close_ int tree = -1;
  detach_all (dst);
  if (mkdir_p (dst, 0700, err) < 0)
    return -1;
  tree = syscall (SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0)
    return capsule_error_make (err, errno, "open_tree `%s`", src);
  if (syscall (SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    return capsule_error_make (err, errno,
                               "idmapped mount of `%s` (its filesystem must support "
                               "idmapped mounts)",
                               src);
  if (syscall (SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return capsule_error_make (err, errno, "attach the idmapped `%s` at `%s`", src, dst);
  return 0;
}

/* Try one overlay over LOWER in a scratch directory: the kernel must take an idmapped layer. */
static int
probe (const char *state_dir, const char *lower, capsule_error **err)
{
  _cleanup_free_ char *dir = xasprintf ("%s/images/probe", state_dir);
  _cleanup_free_ char *upper = xasprintf ("%s/upper", dir), *work = xasprintf ("%s/work", dir);
  _cleanup_free_ char *merged = xasprintf ("%s/merged", dir);
  _cleanup_free_ char *opts
      = xasprintf ("lowerdir=%s,upperdir=%s,workdir=%s," OVERLAY_OPTS, lower, upper, work);
  _cleanup_error_ capsule_error *ignored = NULL;
  int r = 0;
  detach_all (merged);
  rm_rf (dir, &ignored);
  if (mkdir_p (upper, 0700, err) < 0 || mkdir_p (work, 0700, err) < 0
      || mkdir_p (merged, 0700, err) < 0)
    return -1;
  if (mount ("overlay", merged, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
    r = capsule_error_make (err, errno, "overlay over the idmapped image");
  else
    umount2 (merged, MNT_DETACH);
  capsule_error_release (&ignored);
  rm_rf (dir, &ignored);
  return r;
}

int
overlay_host_init (struct sandbox_host *h, const char *state_dir)
{
  uint32_t b = h->host_uid_base;
  /* the host's 0 is the sandbox's user; the other ids keep their place; the user's own id
     (1000) in the image has nobody to be */
  const struct spec_idmap map[] = { { 0, b + SANDBOX_UID, 1 },
                                    { 1, b + 1, SANDBOX_UID - 1 },
                                    { SANDBOX_UID + 1, b + SANDBOX_UID + 1, 65535 - SANDBOX_UID } };
  _cleanup_error_ capsule_error *err = NULL;
  _cleanup_close_ int userns = -1;
  free (h->lower_root);
  free (h->lower_usr);
  free (h->overlay_reason);
  h->lower_root = xasprintf ("%s/images/lower", state_dir);
  h->lower_usr = h->image_is_host ? xasprintf ("%s/images/lower-usr", state_dir) : NULL;
  h->overlay_reason = NULL;
  userns = namespaces_userns_fd (map, ARRAY_SIZE (map), map, ARRAY_SIZE (map), &err);
  if (userns < 0 || idmapped_lower (h->image_root, h->lower_root, userns, &err) < 0
      || (h->lower_usr && idmapped_lower ("/usr", h->lower_usr, userns, &err) < 0)
      || probe (state_dir, h->lower_root, &err) < 0)
    {
      h->overlay = false;
      h->overlay_reason = xstrdup (err->msg);
      detach_all (h->lower_root);
      if (h->lower_usr)
        detach_all (h->lower_usr);
      fprintf (stderr, "capsule-shim: sessions get a read-only root: %s\n", err->msg);
      return 0;
    }
  h->overlay = true;
  return 0;
}

void
overlay_host_release (struct sandbox_host *h)
{
  /* the sessions' overlays hold layers of their own: the lower mounts may go */
  if (h->lower_root)
    detach_all (h->lower_root);
  if (h->lower_usr)
    detach_all (h->lower_usr);
  free (h->lower_root);
  free (h->lower_usr);
  free (h->overlay_reason);
  h->lower_root = h->lower_usr = h->overlay_reason = NULL;
}

static int
one_layer (const char *lower, const char *ws, const char *name, const char *target, uid_t uid,
           mode_t mode, capsule_error **err)
{
  _cleanup_free_ char *upper = xasprintf ("%s/upper/%s", ws, name);
  _cleanup_free_ char *work = xasprintf ("%s/work/%s", ws, name);
  _cleanup_free_ char *opts
      = xasprintf ("lowerdir=%s,upperdir=%s,workdir=%s," OVERLAY_OPTS, lower, upper, work);
  if (mkdir_p (upper, 0700, err) < 0 || mkdir_p (work, 0700, err) < 0
      || mkdir_p (target, 0700, err) < 0)
    return -1;
  /* the top of the layer is the user's, as the idmapped lower's top shows */
  if (chown (upper, uid, uid) < 0 || chmod (upper, mode) < 0)
    return capsule_error_make (err, errno, "the upper layer `%s`", upper);
  if (mount ("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts) < 0)
    return capsule_error_make (err, errno, "mount the session's overlay at `%s`", target);
  return 0;
}

int
overlay_session_mount (const struct sandbox_host *h, const char *dir, const char *ws, uid_t uid,
                       capsule_error **err)
{
  _cleanup_free_ char *root = xasprintf ("%s/root", dir), *usr = xasprintf ("%s/usr", dir);
  _cleanup_free_ char *upper = xasprintf ("%s/upper", ws), *work = xasprintf ("%s/work", ws);
  struct stat st;
  if (!h->overlay)
    return 0;
  if (mkdir_p (upper, 0700, err) < 0 || mkdir_p (work, 0700, err) < 0)
    return -1;
  if (stat (h->image_root, &st) < 0)
    return capsule_error_make (err, errno, "image `%s`", h->image_root);
  if (one_layer (h->lower_root, ws, "root", root, uid, st.st_mode & 07777, err) < 0)
    return -1;
  if (h->lower_usr
      && (stat ("/usr", &st) < 0
          || one_layer (h->lower_usr, ws, "usr", usr, uid, st.st_mode & 07777, err) < 0))
    {
      umount2 (root, MNT_DETACH);
      return capsule_error_wrap (err, "/usr");
    }
  return 0;
}

void
overlay_session_unmount (const char *dir)
{
  _cleanup_free_ char *root = xasprintf ("%s/root", dir), *usr = xasprintf ("%s/usr", dir);
  detach_all (usr);
  detach_all (root);
}

bool
overlay_session_has_root (const char *dir)
{
  _cleanup_free_ char *root = xasprintf ("%s/root", dir);
  return is_mount_point (root);
}
