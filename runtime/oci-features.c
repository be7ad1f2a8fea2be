/* capsule: `capsule features`. */
#define _GNU_SOURCE
#include "oci-features.h"

#include <seccomp.h>

#include "caps.h"
#include "json.h"
#include "state.h"
#include "utils.h"

#include <sys/capability.h>

char *
features_json (void)
{
  static const char *const hooks[] = { "prestart",       "createRuntime", "createContainer",
                                       "startContainer", "poststart",     "poststop" };
  static const char *const mount_options[]
      = { "async",      "atime",         "bind",        "dev",      "diratime",
          "dirsync",    "exec",          "idmap",       "ridmap",   "mand",
          "noatime",    "nodev",         "nodiratime",  "noexec",   "nomand",
          "norelatime", "nostrictatime", "nosuid",      "private",  "rbind",
          "relatime",   "remount",       "ro",          "rprivate", "rro",
          "rshared",    "rslave",        "runbindable", "rw",       "shared",
          "slave",      "strictatime",   "suid",        "sync",     "unbindable" };
  static const char *const namespaces[]
      = { "cgroup", "ipc", "mount", "network", "pid", "user", "uts" };
  static const char *const actions[]
      = { "SCMP_ACT_ALLOW",       "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS",
          "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",   "SCMP_ACT_TRACE", "SCMP_ACT_TRAP" };
  static const char *const operators[]
      = { "SCMP_CMP_EQ", "SCMP_CMP_GE",        "SCMP_CMP_GT", "SCMP_CMP_LE",
          "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE" };
  static const char *const archs[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                       "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM" };
  _cleanup_json_writer_ json_writer *w = json_writer_new (true);
  const struct scmp_version *v = seccomp_version ();
  char libseccomp[32];
  int last = caps_last_cap ();

  json_w_open_object (w);
  json_w_kv_string (w, "ociVersionMin", "1.0.0");
  json_w_kv_string (w, "ociVersionMax", OCI_VERSION);
  json_w_string_array (w, "hooks", hooks, ARRAY_SIZE (hooks));
  json_w_string_array (w, "mountOptions", mount_options, ARRAY_SIZE (mount_options));
  json_w_key (w, "linux");
  json_w_open_object (w);
  json_w_string_array (w, "namespaces", namespaces, ARRAY_SIZE (namespaces));
  json_w_key (w, "capabilities");
  json_w_open_array (w);
  for (int c = 0; c <= last; c++)
    {
      char *name = cap_to_name (c);
      _cleanup_free_ char *upper = xasprintf ("%s", name);
      cap_free (name);
      for (char *p = upper; *p; p++)
        *p = (*p >= 'a' && *p <= 'z') ? *p - 32 : *p;
      json_w_string (w, upper);
    }
  json_w_close_array (w);
  json_w_key (w, "cgroup");
  json_w_open_object (w);
  json_w_kv_bool (w, "v1", true);
  json_w_kv_bool (w, "v2", true);
  json_w_kv_bool (w, "systemd", false);
  json_w_kv_bool (w, "systemdUser", false);
  json_w_close_object (w);
  json_w_key (w, "seccomp");
  json_w_open_object (w);
  json_w_kv_bool (w, "enabled", true);
  json_w_string_array (w, "actions", actions, ARRAY_SIZE (actions));
  json_w_string_array (w, "operators", operators, ARRAY_SIZE (operators));
  json_w_string_array (w, "archs", archs, ARRAY_SIZE (archs));
  json_w_close_object (w);
  json_w_key (w, "apparmor");
  json_w_open_object (w);
  json_w_kv_bool (w, "enabled", false);
  json_w_close_object (w);
  json_w_key (w, "selinux");
  json_w_open_object (w);
  json_w_kv_bool (w, "enabled", false);
  json_w_close_object (w);
  json_w_close_object (w);
  json_w_key (w, "annotations");
  json_w_open_object (w);
  snprintf (libseccomp, sizeof libseccomp, "%u.%u.%u", v->major, v->minor, v->micro);
  json_w_kv_string (w, "io.github.seccomp.libseccomp.version", libseccomp);
  json_w_kv_string (w, "run.capsule.version", CAPSULE_VERSION);
  json_w_close_object (w);
  json_w_close_object (w);
  return xstrdup (json_writer_text (w, NULL));
}
