/* Unit tests: config.json parsing, valid and every kind of malformed field. */
#define _GNU_SOURCE
#include <check.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "spec.h"
#include "utils.h"
#include "unit-main.h"

#define MINIMAL_HEAD                                                                               \
  "{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"},"                 \
  " \"root\": {\"path\": \"rootfs\"}"

static struct spec *
parse (const char *text, char **ret_msg)
{
  capsule_error *err = NULL;
  struct spec *s = spec_parse (text, "config.json", "/bundle", &err);
  if (ret_msg)
    *ret_msg = err ? xstrdup (err->msg) : NULL;
  capsule_error_free (err);
  return s;
}

/* Parse TEXT, expect failure with a message containing WANT. */
static void
expect_error (const char *text, const char *want)
{
  char *msg = NULL;
  struct spec *s = parse (text, &msg);
  ck_assert_msg (s == NULL, "accepted: %s", text);
  ck_assert_ptr_nonnull (msg);
  ck_assert_msg (strstr (msg, want) != NULL, "message \"%s\" lacks \"%s\"", msg, want);
  free (msg);
}

START_TEST (test_minimal)
{
  char *msg = NULL;
  struct spec *s = parse (MINIMAL_HEAD "}", &msg);
  ck_assert_msg (s != NULL, "%s", msg);
  ck_assert_str_eq (s->root_path, "/bundle/rootfs");
  ck_assert_str_eq (s->process->args[0], "sh");
  ck_assert_int_eq (s->process->umask, 0022);
  ck_assert (!s->root_readonly);
  spec_free (s);
}
END_TEST

START_TEST (test_full)
{
  const char *text = MINIMAL_HEAD
      ", \"hostname\": \"box\","
      " \"mounts\": [{\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": "
      "\"tmpfs\", \"options\": [\"nosuid\", \"nodev\", \"size=64m\", \"mode=1777\"]},"
      "  {\"destination\": \"/usr\", \"type\": \"bind\", \"source\": \"/usr\", "
      "\"options\": [\"rbind\", \"ro\", \"rprivate\"]}],"
      " \"linux\": {\"namespaces\": [{\"type\": \"uts\"}, {\"type\": \"mount\"}, "
      "{\"type\": \"network\", \"path\": \"/proc/1/ns/net\"}, {\"type\": \"user\"}],"
      "  \"uidMappings\": [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}],"
      "  \"gidMappings\": [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}],"
      "  \"resources\": {\"memory\": {\"limit\": 1073741824}, \"pids\": {\"limit\": "
      "64}, \"cpu\": {\"shares\": 512, \"quota\": 50000, \"period\": 100000}},"
      "  \"sysctl\": {\"net.ipv4.ip_forward\": \"0\"},"
      "  \"maskedPaths\": [\"/proc/kcore\"], \"readonlyPaths\": [\"/proc/sys\"]},"
      " \"annotations\": {\"a\": \"b\"},"
      " \"hooks\": {\"poststop\": [{\"path\": \"/bin/true\", \"timeout\": 3}]}}";
  char *msg = NULL;
  struct spec *s = parse (text, &msg);
  ck_assert_msg (s != NULL, "%s", msg);
  ck_assert_str_eq (s->hostname, "box");
  ck_assert_int_eq (s->n_mounts, 2);
  ck_assert_uint_eq (s->mounts[0].flags, MS_NOSUID | MS_NODEV);
  ck_assert_str_eq (s->mounts[0].data, "size=64m,mode=1777");
  ck_assert_uint_eq (s->mounts[1].flags, MS_BIND | MS_REC | MS_RDONLY);
  ck_assert_uint_eq (s->mounts[1].propagation, MS_PRIVATE | MS_REC);
  ck_assert_ptr_null (s->mounts[1].data);
  ck_assert_ptr_nonnull (spec_namespace (s, CLONE_NEWUTS));
  ck_assert_str_eq (spec_namespace (s, CLONE_NEWNET)->path, "/proc/1/ns/net");
  ck_assert_ptr_null (spec_namespace (s, CLONE_NEWPID));
  ck_assert_uint_eq (s->uid_mappings[0].host_id, 100000);
  ck_assert_int_eq (s->resources->memory_limit, 1073741824);
  ck_assert_int_eq (s->resources->pids_limit, 64);
  ck_assert_uint_eq (s->resources->cpu_shares, 512);
  ck_assert_int_eq (s->resources->cpu_quota, 50000);
  ck_assert_str_eq (s->sysctl_keys[0], "net.ipv4.ip_forward");
  ck_assert_str_eq (spec_annotation (s, "a"), "b");
  ck_assert_int_eq (s->n_hooks[HOOK_POSTSTOP], 1);
  ck_assert_int_eq (s->hooks[HOOK_POSTSTOP][0].timeout, 3);
  spec_free (s);
}
END_TEST

START_TEST (test_process_fields)
{
  const char *text
      = "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"/r\", \"readonly\": true},"
        " \"process\": {\"args\": [\"sh\"], \"cwd\": \"/w\", \"env\": [\"A=1\"],"
        " \"user\": {\"uid\": 1000, \"gid\": 1001, \"additionalGids\": [5, 6], \"umask\": 63},"
        " \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 100, \"hard\": 200}],"
        " \"noNewPrivileges\": true, \"oomScoreAdj\": 500,"
        " \"capabilities\": {\"bounding\": [\"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
        " \"ambient\": [\"CAP_KILL\"]}}}";
  char *msg = NULL;
  struct spec *s = parse (text, &msg);
  ck_assert_msg (s != NULL, "%s", msg);
  ck_assert_str_eq (s->root_path, "/r");
  ck_assert (s->root_readonly);
  ck_assert_uint_eq (s->process->uid, 1000);
  ck_assert_uint_eq (s->process->gid, 1001);
  ck_assert_uint_eq (s->process->n_additional_gids, 2);
  ck_assert_uint_eq (s->process->umask, 63);
  ck_assert_int_eq (s->process->rlimits[0].resource, RLIMIT_NOFILE);
  ck_assert_uint_eq (s->process->rlimits[0].hard, 200);
  ck_assert (s->process->no_new_privileges);
  ck_assert_int_eq (s->process->oom_score_adj, 500);
  ck_assert_uint_eq (s->process->caps[CAPSET_BOUNDING], (1ULL << 5) | (1ULL << 10));
  ck_assert_uint_eq (s->process->caps[CAPSET_AMBIENT], 1ULL << 5);
  spec_free (s);
}
END_TEST

struct bad_case
{
  const char *text;
  const char *want;
};

static const struct bad_case bad_cases[] = {
  { "", "invalid JSON" },
  { "{", "invalid JSON" },
  { "[1,2]", "expected a JSON object" },
  /* valid JSON, but "/bin/sh\0x" would run /bin/sh */
  { MINIMAL_HEAD ", \"hostname\": \"a\\u0000b\"}", "a string holds \\u0000 (NUL)" },
  { "{\"process\": {}}", "ociVersion: missing" },
  { "{\"ociVersion\": 1}", "ociVersion: expected a string, got a number" },
  { "{\"ociVersion\": \"2.0.0\"}", "ociVersion: version \"2.0.0\" is not 1.x" },
  { "{\"ociVersion\": \"1.0.0\"}", "process: missing" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": []}", "process: expected an object, got an array" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\"}, \"root\": {\"path\": \"r\"}}",
    "process.args: must name a program" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\", 3], \"cwd\": \"/\"}}",
    "process.args[1]: expected a string" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"rel\"}}",
    "process.cwd: \"rel\" is not an absolute path" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"]}}", "process.cwd: missing" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": "
    "[\"NOEQ\"]}}",
    "process.env[0]: \"NOEQ\" is not of the form NAME=VALUE" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": "
    "{\"uid\": -1}}}",
    "process.user.uid: -1 is out of range" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"rlimits\": "
    "[{\"type\": \"RLIMIT_BOGUS\", \"soft\": 1, \"hard\": 1}]}}",
    "process.rlimits[0].type: unknown rlimit \"RLIMIT_BOGUS\"" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"rlimits\": "
    "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 10, \"hard\": 1}]}}",
    "process.rlimits[0]: soft limit 10 is above the hard limit 1" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
    "\"capabilities\": {\"effective\": [\"CAP_KILL\", \"CAP_NOPE\"]}}}",
    "process.capabilities.effective[1]: unknown capability \"CAP_NOPE\"" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
    "\"oomScoreAdj\": 5000}}",
    "process.oomScoreAdj: 5000 is out of range" },
  { MINIMAL_HEAD ", \"root\": 7}", "root: expected an object" },
  { "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}}",
    "root: missing" },
  { MINIMAL_HEAD ", \"mounts\": [{\"type\": \"tmpfs\"}]}", "mounts[0].destination: missing" },
  { MINIMAL_HEAD ", \"mounts\": [{\"destination\": \"tmp\", \"type\": \"tmpfs\"}]}",
    "mounts[0].destination: \"tmp\" is not an absolute path" },
  { MINIMAL_HEAD ", \"mounts\": [{\"destination\": \"/x\", \"type\": \"bind\"}]}",
    "mounts[0]: bind mount without a source" },
  { MINIMAL_HEAD ", \"mounts\": [{\"destination\": \"/x\"}]}", "mounts[0]: has no type" },
  { MINIMAL_HEAD
    ", \"mounts\": [{\"destination\": \"/x\", \"type\": \"tmpfs\", \"options\": [\"a,b\"]}]}",
    "holds a comma" },
  { MINIMAL_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"time\"}]}}",
    "linux.namespaces[0].type: unknown or unsupported namespace \"time\"" },
  { MINIMAL_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]}}",
    "linux.namespaces[1]: namespace \"pid\" is listed twice" },
  { MINIMAL_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"net\"}]}}",
    "unknown or unsupported namespace \"net\"" },
  { MINIMAL_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"user\"}]}}",
    "a new user namespace needs uidMappings and gidMappings" },
  { MINIMAL_HEAD
    ", \"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1, \"size\": 1}]}}",
    "mappings given without a user namespace" },
  { MINIMAL_HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"user\"}], \"uidMappings\": "
                 "[{\"containerID\": 0}]}}",
    "linux.uidMappings[0]: needs containerID, hostID and size" },
  { MINIMAL_HEAD ", \"hostname\": \"h\"}", "hostname: setting a hostname needs a uts namespace" },
  { MINIMAL_HEAD ", \"linux\": {\"resources\": {\"memory\": {\"limit\": \"1g\"}}}}",
    "linux.resources.memory.limit: expected an integer, got a string" },
  { MINIMAL_HEAD ", \"linux\": {\"resources\": {\"memory\": {\"limit\": 100}}}}",
    "is too small to run anything" },
  { MINIMAL_HEAD ", \"linux\": {\"resources\": {\"cpu\": {\"shares\": 1}}}}",
    "linux.resources.cpu.shares: 1 is out of range" },
  { MINIMAL_HEAD ", \"linux\": {\"resources\": {\"cpu\": {\"period\": 10}}}}",
    "linux.resources.cpu.period: 10 is out of range" },
  { MINIMAL_HEAD ", \"linux\": {\"sysctl\": {\"../../etc/x\": \"1\"}}}",
    "not a valid sysctl name" },
  { MINIMAL_HEAD ", \"linux\": {\"devices\": [{\"path\": \"/dev/../x\", \"type\": \"c\"}]}}",
    "linux.devices[0].path: \"/dev/../x\" is not an absolute path of a file without \"..\"" },
  { MINIMAL_HEAD ", \"linux\": {\"devices\": [{\"path\": \"//\", \"type\": \"c\"}]}}",
    "linux.devices[0].path: \"//\" is not an absolute path" },
  { MINIMAL_HEAD ", \"linux\": {\"devices\": [{\"path\": \"/dev/x\", \"type\": \"z\"}]}}",
    "linux.devices[0].type: unknown device type \"z\"" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_NOPE\"}}}",
    "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_NOPE\"" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                 "[{\"names\": [\"a\"], \"action\": \"SCMP_ACT_ALLOW\"}, {\"names\": [\"b\"], "
                 "\"action\": \"SCMP_ACT_ERRNO\"}, {\"names\": [\"c\"], \"action\": "
                 "\"SCMP_ACT_ERRNO\"}, {\"names\": [\"d\"], \"action\": \"SCMP_ACT_NOPE\"}]}}}",
    "config.json: linux.seccomp.syscalls[3].action: unknown action \"SCMP_ACT_NOPE\"" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                 "\"architectures\": [\"SCMP_ARCH_Z80\"]}}}",
    "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_Z80\"" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                 "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": "
                 "9, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}}}",
    "linux.seccomp.syscalls[0].args[0].index: 9 is out of range" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                 "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": "
                 "0, \"value\": 0, \"op\": \"SCMP_CMP_LIKE\"}]}]}}}",
    "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_LIKE\"" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                 "[{\"action\": \"SCMP_ACT_ALLOW\"}]}}}",
    "linux.seccomp.syscalls[0]: has no syscall names" },
  { MINIMAL_HEAD ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", "
                 "\"defaultErrnoRet\": 99999}}}",
    "linux.seccomp.defaultErrnoRet: 99999 is out of range" },
  { MINIMAL_HEAD ", \"linux\": {\"rootfsPropagation\": \"sideways\"}}",
    "linux.rootfsPropagation: unknown propagation \"sideways\"" },
  { MINIMAL_HEAD ", \"hooks\": {\"prestart\": [{\"path\": \"rel\"}]}}",
    "hooks.prestart[0].path: \"rel\" is not an absolute path" },
  { MINIMAL_HEAD ", \"annotations\": {\"k\": 1}}", "annotations.k: expected a string" },
  { MINIMAL_HEAD ", \"linux\": {\"maskedPaths\": [\"proc/kcore\"]}}", "is not an absolute path" },
};

START_TEST (test_malformed)
{
  expect_error (bad_cases[_i].text, bad_cases[_i].want);
}
END_TEST

START_TEST (test_standalone_process)
{
  capsule_error *err = NULL;
  struct spec_process *p = spec_process_parse (
      "{\"args\": [\"ls\", \"-l\"], \"cwd\": \"/tmp\", \"terminal\": true}", "process.json", &err);
  ck_assert_ptr_nonnull (p);
  ck_assert_str_eq (p->args[1], "-l");
  ck_assert (p->terminal);
  spec_process_free (p);
  p = spec_process_parse ("{\"args\": [], \"cwd\": \"/\"}", "process.json", &err);
  ck_assert_ptr_null (p);
  ck_assert_ptr_nonnull (strstr (err->msg, "process.json: process.args: must name a program"));
  capsule_error_free (err);
  err = NULL;
  p = spec_process_parse ("{\"args\": [\"/bin/sh\\u0000-c\"], \"cwd\": \"/\"}", "process.json",
                          &err);
  ck_assert_ptr_null (p);
  ck_assert_ptr_nonnull (strstr (err->msg, "process.json: a string holds \\u0000 (NUL)"));
  capsule_error_free (err);
}
END_TEST

START_TEST (test_mount_options)
{
  struct spec_mount m = { 0 };
  char *opts[] = { "ro", "rw", "nosuid", "suid", "noexec", "rslave", "mode=755", "uid=5", NULL };
  capsule_error *err = NULL;
  ck_assert_int_eq (spec_mount_options_parse (&m, opts, "test", &err), 0);
  ck_assert_uint_eq (m.flags, MS_NOEXEC);
  ck_assert_uint_eq (m.clear_flags, MS_RDONLY | MS_NOSUID);
  ck_assert_uint_eq (m.propagation, MS_SLAVE | MS_REC);
  ck_assert_str_eq (m.data, "mode=755,uid=5");
  free (m.data);
}
END_TEST

START_TEST (test_lookup_tables)
{
  ck_assert_int_eq (spec_rlimit_parse ("RLIMIT_CORE"), RLIMIT_CORE);
  ck_assert_int_eq (spec_rlimit_parse ("NOFILE"), -1);
  ck_assert_int_eq (spec_namespace_parse ("network"), CLONE_NEWNET);
  ck_assert_int_eq (spec_namespace_parse ("cgroup"), CLONE_NEWCGROUP);
  ck_assert_int_eq (spec_namespace_parse ("bogus"), 0);
  ck_assert_str_eq (spec_namespace_name (CLONE_NEWIPC), "ipc");
}
END_TEST

static Suite *
spec_suite (void)
{
  Suite *s = suite_create ("spec");
  TCase *tc = tcase_create ("parse");
  tcase_add_test (tc, test_minimal);
  tcase_add_test (tc, test_full);
  tcase_add_test (tc, test_process_fields);
  tcase_add_loop_test (tc, test_malformed, 0, sizeof bad_cases / sizeof bad_cases[0]);
  tcase_add_test (tc, test_standalone_process);
  tcase_add_test (tc, test_mount_options);
  tcase_add_test (tc, test_lookup_tables);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return run_suite (spec_suite ());
}
