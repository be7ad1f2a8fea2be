/* capsule-shim: what a sandbox is made of: the image (the zero-build host image, or a built one)
 * and the OCI config of a session's container.  The image is read-only as root; /mnt/data is
 * the session's workspace; the executor's directory and capsule-init are bound read-only; the
 * run directory is where the executor puts its unix socket.  The interpreter is pid 2 under
 * capsule-init, uid 1000 in a user namespace, with no capabilities, only `lo`, the default
 * seccomp profile and the tier's limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "sandbox.h"
#include "utils.h"

static const char *const host_etc_binds[]
    = { "/etc/alternatives", "/etc/ld.so.cache", "/etc/matplotlibrc", "/etc/fonts" };

static int
write_text (const char *dir, const char *name, const char *text, capsule_error **err)
{
  _cleanup_free_ char *p = xasprintf ("%s/%s", dir, name);
  return write_file_atomic (p, text, strlen (text), 0644, err);
}

/* The zero-build image: empty mount points, the merged-/usr links, and a generated /etc.  The
 * host's /usr (and a few non-secret pieces of its /etc) are bound into it read-only. */
static int
prepare_host_image (const char *root, capsule_error **err)
{
  static const char *const dirs[] = { "usr",
                                      "proc",
                                      "dev",
                                      "sys",
                                      "tmp",
                                      "run",
                                      "mnt/data",
                                      ".capsule/executor",
                                      ".capsule/session",
                                      "etc/alternatives",
                                      "etc/fonts",
                                      "root",
                                      "var/tmp" };
  static const char *const links[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
  _cleanup_free_ char *etc = xasprintf ("%s/etc", root);
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      _cleanup_free_ char *d = xasprintf ("%s/%s", root, dirs[i]);
      if (mkdir_p (d, 0755, err) < 0)
        return -1;
    }
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    {
      _cleanup_free_ char *host = xasprintf ("/%s", links[i]);
      _cleanup_free_ char *target = xasprintf ("usr/%s", links[i]);
      _cleanup_free_ char *l = xasprintf ("%s/%s", root, links[i]);
      struct stat st;
      if (lstat (host, &st) == 0 && S_ISLNK (st.st_mode) && symlink (target, l) < 0
          && errno != EEXIST)
        return capsule_error_make (err, errno, "image: symlink %s", l);
    }
  for (size_t i = 0; i < ARRAY_SIZE (host_etc_binds); i++)
    {
      _cleanup_free_ char *t = xasprintf ("%s%s", root, host_etc_binds[i]);
      struct stat st;
      if (stat (host_etc_binds[i], &st) == 0 && !S_ISDIR (st.st_mode)
          && write_file_at (AT_FDCWD, t, "", 0, 0644, err) < 0)
        return -1;
    }
  {
    _cleanup_free_ char *init = xasprintf ("%s/.capsule/init", root);
    if (write_file_at (AT_FDCWD, init, "", 0, 0755, err) < 0)
      return -1;
  }
  if (write_text (etc, "passwd",
                  "root:x:0:0:root:/root:/bin/sh\n"
                  "sandbox:x:1000:1000:sandbox:/mnt/data:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                  err)
          < 0
      || write_text (etc, "group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n", err) < 0
      || write_text (etc, "hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n", err) < 0
      || write_text (etc, "resolv.conf", "", err) < 0
      || write_text (etc, "hostname", "sandbox\n", err) < 0
      || write_text (etc, "nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", err) < 0)
    return capsule_error_wrap (err, "image");
  return 0;
}

/* ------------------------------------------------------------------ the OCI config */

static void
w_mount (json_writer *w, const char *dst, const char *type, const char *src,
         const char *const *opts)
{
  json_w_open_object (w);
  json_w_kv_string (w, "destination", dst);
  json_w_kv_string (w, "type", type);
  json_w_kv_string (w, "source", src);
  json_w_key (w, "options");
  json_w_open_array (w);
  for (const char *const *o = opts; *o; o++)
    json_w_string (w, *o);
  json_w_close_array (w);
  json_w_close_object (w);
}

static void
w_bind (json_writer *w, const char *dst, const char *src, bool ro)
{
  static const char *const ro_opts[] = { "rbind", "ro", "nosuid", "nodev", NULL };
  static const char *const rw_opts[] = { "rbind", "nosuid", "nodev", NULL };
  w_mount (w, dst, "bind", src, ro ? ro_opts : rw_opts);
}

static void
w_process (const struct sandbox_host *h, const struct sandbox *sb, bool overlay, json_writer *w)
{
  static const char *const passthrough[] = { "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE" };
  json_w_key (w, "process");
  json_w_open_object (w);
  json_w_kv_bool (w, "terminal", false);
  json_w_key (w, "user");
  json_w_open_object (w);
  json_w_kv_int (w, "uid", SANDBOX_UID);
  json_w_kv_int (w, "gid", SANDBOX_UID);
  json_w_close_object (w);
  json_w_key (w, "args");
  json_w_open_array (w);
  json_w_string (w, "/.capsule/init");
  json_w_string (w, "/usr/bin/python3");
  json_w_string (w, "/.capsule/executor/executor.py");
  json_w_string (w, "--socket");
  json_w_string (w, "/.capsule/session/executor.sock");
  json_w_string (w, "--data-dir");
  json_w_string (w, "/mnt/data");
  json_w_close_array (w);
  json_w_key (w, "env");
  json_w_open_array (w);
  json_w_string (w, "PATH=/usr/local/bin:/usr/bin:/bin");
  json_w_string (w, "HOME=/mnt/data");
  json_w_string (w, "LANG=C.UTF-8");
  json_w_string (w, "MPLBACKEND=Agg");
  json_w_string (w, "MPLCONFIGDIR=/tmp/.matplotlib");
  json_w_string (w, "XDG_CACHE_HOME=/tmp/.cache");
  json_w_string (w, "PYTHONDONTWRITEBYTECODE=1");
  if (overlay)
    {
      /* the root is the session's own: pip may install into it (Debian's PEP 668 marker is
         for the host's system Python, not a sandbox's copy), and never looks for a network */
      json_w_string (w, "PIP_BREAK_SYSTEM_PACKAGES=1");
      json_w_string (w, "PIP_DISABLE_PIP_VERSION_CHECK=1");
      json_w_string (w, "PIP_NO_INDEX=1");
    }
  for (size_t i = 0; i < ARRAY_SIZE (passthrough); i++)
    if (getenv (passthrough[i]))
      {
        _cleanup_free_ char *kv = xasprintf ("%s=%s", passthrough[i], getenv (passthrough[i]));
        json_w_string (w, kv);
      }
  json_w_close_array (w);
  json_w_kv_string (w, "cwd", "/mnt/data");
  json_w_key (w, "capabilities");
  json_w_open_object (w);
  json_w_string_array (w, "bounding", NULL, 0);
  json_w_string_array (w, "effective", NULL, 0);
  json_w_string_array (w, "permitted", NULL, 0);
  json_w_close_object (w);
  json_w_key (w, "rlimits");
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "RLIMIT_NOFILE");
  json_w_kv_int (w, "soft", sb->tier->nofile);
  json_w_kv_int (w, "hard", sb->tier->nofile);
  json_w_close_object (w);
  json_w_open_object (w);
  json_w_kv_string (w, "type", "RLIMIT_CORE");
  json_w_kv_int (w, "soft", 0);
  json_w_kv_int (w, "hard", 0);
  json_w_close_object (w);
  json_w_close_array (w);
  json_w_kv_bool (w, "noNewPrivileges", true);
  json_w_kv_int (w, "oomScoreAdj", 500);
  json_w_close_object (w);
  (void)h;
}

static void
w_mounts (const struct sandbox_host *h, const struct sandbox *sb, bool overlay, json_writer *w)
{
  static const char *const dev[] = { "nosuid", "strictatime", "mode=755", "size=65536k", NULL };
  static const char *const pts[]
      = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", NULL };
  static const char *const shm[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=64m", NULL };
  static const char *const sys[] = { "nosuid", "noexec", "nodev", "ro", NULL };
  static const char *const proc[] = { "nosuid", "noexec", "nodev", NULL };
  _cleanup_free_ char *tmp_size = xasprintf ("size=%llu", (unsigned long long)sb->tier->tmp);
  const char *tmp[] = { "nosuid", "nodev", "mode=1777", tmp_size, NULL };
  json_w_key (w, "mounts");
  json_w_open_array (w);
  w_mount (w, "/proc", "proc", "proc", proc);
  w_mount (w, "/dev", "tmpfs", "tmpfs", dev);
  w_mount (w, "/dev/pts", "devpts", "devpts", pts);
  w_mount (w, "/dev/shm", "tmpfs", "shm", shm);
  w_mount (w, "/sys", "sysfs", "sysfs", sys);
  w_mount (w, "/tmp", "tmpfs", "tmpfs", tmp);
  if (h->image_is_host)
    {
      if (overlay)
        {
          _cleanup_free_ char *usr = xasprintf ("%s/usr", sb->dir);
          w_bind (w, "/usr", usr, false);
        }
      else
        w_bind (w, "/usr", "/usr", true);
      for (size_t i = 0; i < ARRAY_SIZE (host_etc_binds); i++)
        if (access (host_etc_binds[i], F_OK) == 0)
          w_bind (w, host_etc_binds[i], host_etc_binds[i], true);
    }
  w_bind (w, "/.capsule/executor", h->executor_dir, true);
  w_bind (w, "/.capsule/init", h->init_path, true);
  w_bind (w, "/.capsule/session", sb->run_dir, false);
  w_bind (w, "/mnt/data", sb->data_dir, false);
  json_w_close_array (w);
}

static void
w_idmap (json_writer *w, const char *key, uint32_t base)
{
  json_w_key (w, key);
  json_w_open_array (w);
  json_w_open_object (w);
  json_w_kv_int (w, "containerID", 0);
  json_w_kv_int (w, "hostID", base);
  json_w_kv_int (w, "size", 65536);
  json_w_close_object (w);
  json_w_close_array (w);
}

static void
w_linux (const struct sandbox_host *h, const struct sandbox *sb, json_writer *w)
{
  static const char *const ns[] = { "pid", "network", "ipc", "uts", "mount", "user", "cgroup" };
  static const char *const masked[] = { "/proc/acpi",
                                        "/proc/asound",
                                        "/proc/kcore",
                                        "/proc/keys",
                                        "/proc/latency_stats",
                                        "/proc/timer_list",
                                        "/proc/timer_stats",
                                        "/proc/sched_debug",
                                        "/proc/scsi",
                                        "/sys/firmware",
                                        "/sys/devices/virtual/powercap" };
  static const char *const readonly[]
      = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" };
  json_w_key (w, "linux");
  json_w_open_object (w);
  w_idmap (w, "uidMappings", h->host_uid_base);
  w_idmap (w, "gidMappings", h->host_uid_base);
  json_w_key (w, "namespaces");
  json_w_open_array (w);
  for (size_t i = 0; i < ARRAY_SIZE (ns); i++)
    {
      json_w_open_object (w);
      json_w_kv_string (w, "type", ns[i]);
      json_w_close_object (w);
    }
  json_w_close_array (w);
  json_w_key (w, "resources");
  json_w_open_object (w);
  json_w_key (w, "memory");
  json_w_open_object (w);
  json_w_kv_int (w, "limit", sb->tier->memory);
  json_w_kv_int (w, "swap", sb->tier->memory);
  json_w_close_object (w);
  json_w_key (w, "pids");
  json_w_open_object (w);
  json_w_kv_int (w, "limit", sb->tier->pids);
  json_w_close_object (w);
  json_w_key (w, "cpu");
  json_w_open_object (w);
  json_w_kv_int (w, "shares", sb->tier->cpu_shares);
  json_w_close_object (w);
  json_w_close_object (w);
  if (h->cgroup_parent)
    {
      _cleanup_free_ char *path = xasprintf ("%s/capsule-%s", h->cgroup_parent, sb->id);
      json_w_kv_string (w, "cgroupsPath", path);
    }
  json_w_string_array (w, "maskedPaths", masked, ARRAY_SIZE (masked));
  json_w_string_array (w, "readonlyPaths", readonly, ARRAY_SIZE (readonly));
  json_w_key (w, "seccomp");
  json_w_raw (w, h->seccomp_profile);
  json_w_close_object (w);
}

char *
sandbox_config (const struct sandbox_host *h, const struct sandbox *sb)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  /* the start worker mounts the session's overlay before the container is made */
  bool overlay = h->overlay;
  json_w_open_object (w);
  json_w_kv_string (w, "ociVersion", "1.2.0");
  w_process (h, sb, overlay, w);
  json_w_key (w, "root");
  json_w_open_object (w);
  if (overlay)
    {
      /* the session's own overlay of the image (overlay.c) */
      _cleanup_free_ char *root = xasprintf ("%s/root", sb->dir);
      json_w_kv_string (w, "path", root);
      json_w_kv_bool (w, "readonly", false);
    }
  else
    {
      json_w_kv_string (w, "path", h->image_root);
      json_w_kv_bool (w, "readonly", true);
    }
  json_w_close_object (w);
  json_w_kv_string (w, "hostname", "sandbox");
  w_mounts (h, sb, overlay, w);
  w_linux (h, sb, w);
  json_w_key (w, "annotations");
  json_w_open_object (w);
  json_w_kv_string (w, "run.capsule.session", sb->id);
  json_w_kv_string (w, "run.capsule.tier", sb->tier->name);
  json_w_kv_string (w, "run.capsule.tenant", sb->tenant);
  /* no setuid bit or file capability anywhere: see mounts.c */
  json_w_kv_string (w, "run.capsule.rootfs.options", "nosuid,nodev");
  json_w_close_object (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}

int
sandbox_host_image (struct sandbox_host *h, const char *state_dir, const char *image,
                    capsule_error **err)
{
  if (image == NULL || strcmp (image, "host") == 0)
    {
      _cleanup_free_ char *images = xasprintf ("%s/images", state_dir);
      h->image_is_host = true;
      h->image_root = xasprintf ("%s/images/host", state_dir);
      if (mkdir_p (images, 0711, err) < 0)
        return -1;
      if (chmod (images, 0711) < 0)
        return capsule_error_make (err, errno, "chmod %s", images);
      return prepare_host_image (h->image_root, err);
    }
  h->image_root = realpath (image, NULL);
  if (h->image_root == NULL)
    return capsule_error_make (err, errno, "--image `%s`", image);
  {
    _cleanup_free_ char *py = xasprintf ("%s/usr/bin/python3", h->image_root);
    if (access (py, X_OK) < 0)
      return capsule_error_make (err, errno, "--image `%s`: no usr/bin/python3 in it",
                                 h->image_root);
  }
  return 0;
}
