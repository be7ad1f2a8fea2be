/* capsule: the default config.json. */
#define _GNU_SOURCE
#include "spec-default.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "paths.h"
#include "spec.h"
#include "state.h"
#include "utils.h"

char *
spec_policy_path (const char *relative)
{
  const char *env = getenv ("CAPSULE_POLICY_DIR");
  _cleanup_free_ char *installed = xasprintf ("policies/%s", relative);
  if (env && env[0])
    return xasprintf ("%s/%s", env, relative);
  return capsule_data_path (installed, installed);
}

static char *
json_quote (const char *s)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  json_w_string (w, s);
  return xstrdup (json_writer_text (w, NULL));
}

static char *
args_array (const char *args)
{
  _cleanup_json_writer_ json_writer *w = json_writer_new (false);
  _cleanup_free_ char *copy = xstrdup (args);
  char *save = NULL;
  json_w_open_array (w);
  for (char *t = strtok_r (copy, " ", &save); t; t = strtok_r (NULL, " ", &save))
    json_w_string (w, t);
  json_w_close_array (w);
  return xstrdup (json_writer_text (w, NULL));
}

static const char template[]
    = "{\n"
      "  \"ociVersion\": \"" OCI_VERSION "\",\n"
      "  \"process\": {\n"
      "    \"terminal\": false,\n"
      "    \"user\": { \"uid\": 0, \"gid\": 0 },\n"
      "    \"args\": %s,\n"
      "    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", "
      "\"HOME=/root\", \"LANG=C.UTF-8\"],\n"
      "    \"cwd\": \"/\",\n"
      "    \"capabilities\": {\n"
      "      \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
      "      \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
      "      \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
      "    },\n"
      "    \"rlimits\": [\n"
      "      { \"type\": \"RLIMIT_CORE\", \"soft\": 0, \"hard\": 0 },\n"
      "      { \"type\": \"RLIMIT_NOFILE\", \"soft\": 1024, \"hard\": 1024 }\n"
      "    ],\n"
      "    \"noNewPrivileges\": true\n"
      "  },\n"
      "  \"root\": { \"path\": %s, \"readonly\": true },\n"
      "  \"hostname\": \"capsule\",\n"
      "  \"mounts\": [\n"
      "    { \"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\" },\n"
      "    { \"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\",\n"
      "      \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"] },\n"
      "    { \"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\",\n"
      "      \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", "
      "\"mode=0620\"] },\n"
      "    { \"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\",\n"
      "      \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"] },\n"
      "    { \"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\",\n"
      "      \"options\": [\"nosuid\", \"noexec\", \"nodev\"] },\n"
      "    { \"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\",\n"
      "      \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"] },\n"
      "    { \"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\",\n"
      "      \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"] },\n"
      "    { \"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\",\n"
      "      \"options\": [\"nosuid\", \"nodev\", \"mode=1777\", \"size=256m\"] }\n"
      "  ],\n"
      "  \"linux\": {\n"
      "    \"uidMappings\": [{ \"containerID\": 0, \"hostID\": 100000, \"size\": 65536 }],\n"
      "    \"gidMappings\": [{ \"containerID\": 0, \"hostID\": 100000, \"size\": 65536 }],\n"
      "    \"namespaces\": [\n"
      "      { \"type\": \"pid\" }, { \"type\": \"network\" }, { \"type\": \"ipc\" },\n"
      "      { \"type\": \"uts\" }, { \"type\": \"mount\" }, { \"type\": \"user\" },\n"
      "      { \"type\": \"cgroup\" }\n"
      "    ],\n"
      "    \"resources\": {\n"
      "      \"memory\": { \"limit\": 1073741824, \"swap\": 1073741824 },\n"
      "      \"pids\": { \"limit\": 1024 }\n"
      "    },\n"
      "    \"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\",\n"
      "      \"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/timer_stats\", "
      "\"/proc/sched_debug\",\n"
      "      \"/proc/scsi\", \"/sys/firmware\", \"/sys/devices/virtual/powercap\"],\n"
      "    \"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", "
      "\"/proc/sysrq-trigger\"],\n"
      "    \"seccomp\": %s\n"
      "  }\n"
      "}\n";

int
spec_default_text (const char *rootfs, const char *args, char **ret, capsule_error **err)
{
  _cleanup_free_ char *policy = spec_policy_path ("seccomp/default.json");
  _cleanup_free_ char *seccomp = NULL, *q_root = json_quote (rootfs), *q_args = args_array (args);
  _cleanup_free_ char *text = NULL;
  _cleanup_spec_ struct spec *check = NULL;
  if (read_file_at (AT_FDCWD, policy, 1 << 20, &seccomp, NULL, err) < 0)
    return capsule_error_wrap (err, "spec: the default seccomp profile");
  text = xasprintf (template, q_args, q_root, seccomp);
  /* What we hand out must be something we accept. */
  check = spec_parse (text, policy, "/", err);
  if (check == NULL)
    return -1;
  *ret = steal_pointer (&text);
  return 0;
}
