/* Unit tests: cgroup path rules and value conversions, and v1/v2 against a fake tree. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "spec.h"
#include "utils.h"
#include "unit-main.h"

static char *
resolve (const char *own, const char *path, const char *id)
{
  char *ret = NULL;
  capsule_error *err = NULL;
  if (cgroup_resolve_path (own, path, id, &ret, &err) < 0)
    {
      ret = xasprintf ("ERROR: %s", err->msg);
      capsule_error_free (err);
    }
  return ret;
}

#define CHECK_RESOLVE(own, path, id, want)                                                         \
  do                                                                                               \
    {                                                                                              \
      char *got_ = resolve (own, path, id);                                                        \
      ck_assert_str_eq (got_, want);                                                               \
      free (got_);                                                                                 \
    }                                                                                              \
  while (0)

START_TEST (test_resolve)
{
  CHECK_RESOLVE ("/user.slice/me", NULL, "abc", "/user.slice/me/capsule-abc");
  CHECK_RESOLVE ("/", NULL, "abc", "/capsule-abc");
  CHECK_RESOLVE ("/a", "sub/ctr", "x", "/a/sub/ctr");
  CHECK_RESOLVE ("/a", "/abs/ctr", "x", "/abs/ctr");
  CHECK_RESOLVE ("/a", "/abs//ctr/", "x", "/abs/ctr");
  CHECK_RESOLVE ("/a", "sub/../../etc", "x",
                 "ERROR: config.json: linux.cgroupsPath: \"sub/../../etc\" contains \"..\"");
  CHECK_RESOLVE ("/a", "..", "x", "ERROR: config.json: linux.cgroupsPath: \"..\" contains \"..\"");
  CHECK_RESOLVE ("/a", "/", "x",
                 "ERROR: config.json: linux.cgroupsPath: \"/\" names an existing parent cgroup, "
                 "not one for the container");
  CHECK_RESOLVE ("/a", "system.slice:capsule:x", "x",
                 "ERROR: config.json: linux.cgroupsPath: \"system.slice:capsule:x\" is a "
                 "systemd slice path; capsule manages cgroupfs paths (no systemd cgroup driver)");
  /* ".." inside a name is a name, not a parent */
  CHECK_RESOLVE ("/a", "x..y", "x", "/a/x..y");
}
END_TEST

START_TEST (test_own_path)
{
  const char *hybrid = "12:pids:/\n4:memory:/process_api/31fd\n2:cpu,cpuacct:/c\n0::/u\n";
  char *p = NULL;
  ck_assert_int_eq (cgroup_own_path (hybrid, "memory", &p), 0);
  ck_assert_str_eq (p, "/process_api/31fd");
  free (p);
  ck_assert_int_eq (cgroup_own_path (hybrid, "cpuacct", &p), 0);
  ck_assert_str_eq (p, "/c");
  free (p);
  ck_assert_int_eq (cgroup_own_path (hybrid, NULL, &p), 0);
  ck_assert_str_eq (p, "/u");
  free (p);
  ck_assert_int_eq (cgroup_own_path (hybrid, "freezer", &p), -1);
}
END_TEST

START_TEST (test_values)
{
  char *s;
  ck_assert_uint_eq (cgroup_shares_to_weight (2), 1);
  ck_assert_uint_eq (cgroup_shares_to_weight (1024), 39);
  ck_assert_uint_eq (cgroup_shares_to_weight (262144), 10000);
  ck_assert_uint_eq (cgroup_shares_to_weight (0), 0);
  s = cgroup_v2_cpu_max (50000, 100000);
  ck_assert_str_eq (s, "50000 100000");
  free (s);
  s = cgroup_v2_cpu_max (-1, 0);
  ck_assert_str_eq (s, "max 100000");
  free (s);
  s = cgroup_limit_text (-1);
  ck_assert_str_eq (s, "max");
  free (s);
  s = cgroup_limit_text (4096);
  ck_assert_str_eq (s, "4096");
  free (s);
}
END_TEST

/* The v2 writer against a fake cgroup directory: the files must get the right values. */
static char *
slurp (const char *dir, const char *name)
{
  char *path = xasprintf ("%s/%s", dir, name), *text = NULL;
  if (read_file_at (AT_FDCWD, path, 4096, &text, NULL, NULL) < 0)
    text = xstrdup ("<missing>");
  free (path);
  return text;
}

static void
expect_file (const char *dir, const char *name, const char *want)
{
  char *text = slurp (dir, name);
  ck_assert_msg (strcmp (text, want) == 0, "%s/%s is \"%s\", want \"%s\"", dir, name, text, want);
  free (text);
}

static void
touch (const char *dir, const char *name)
{
  char *path = xasprintf ("%s/%s", dir, name);
  int fd = open (path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ck_assert_int_ge (fd, 0);
  close (fd);
  free (path);
}

static int
remove_entry (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  return type == FTW_DP ? rmdir (path) : unlink (path);
}

/* The test's own scratch tree goes, whatever it holds. */
static void
remove_tree (const char *root)
{
  ck_assert_int_eq (nftw (root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
  ck_assert_int_eq (access (root, F_OK), -1);
}

START_TEST (test_v2_apply)
{
  char tmpl[] = "/tmp/capsule-cg-XXXXXX";
  char *root = mkdtemp (tmpl), *dir;
  const char *files[] = { "memory.max", "memory.swap.max", "memory.oom.group", "pids.max",
                          "cpu.weight", "cpu.max",         "memory.low" };
  struct cgroup cg = { .ops = &cgroup_v2_ops, .root = root, .path = "/ctr", .dirfd = -1 };
  struct spec_resources r = { .has_memory_limit = true,
                              .memory_limit = 1 << 30,
                              .has_pids_limit = true,
                              .pids_limit = 100,
                              .cpu_shares = 1024,
                              .cpu_quota = 50000,
                              .cpu_period = 100000 };
  capsule_error *err = NULL;
  ck_assert_ptr_nonnull (root);
  dir = xasprintf ("%s/ctr", root);
  ck_assert_int_eq (mkdir (dir, 0755), 0);
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    touch (dir, files[i]);
  ck_assert_int_eq (cgroup_v2_ops.apply (&cg, &r, &err), 0);
  expect_file (dir, "memory.max", "1073741824");
  expect_file (dir, "memory.swap.max", "0");
  expect_file (dir, "memory.oom.group", "1");
  expect_file (dir, "pids.max", "100");
  expect_file (dir, "cpu.weight", "39");
  expect_file (dir, "cpu.max", "50000 100000");
  /* swap given as memory+swap: v2 takes the swap part alone */
  r.has_memory_swap = true;
  r.memory_swap = (1 << 30) + (1 << 20);
  touch (dir, "memory.swap.max");
  ck_assert_int_eq (cgroup_v2_ops.apply (&cg, &r, &err), 0);
  expect_file (dir, "memory.swap.max", "1048576");
  r.memory_swap = -1;
  touch (dir, "memory.swap.max");
  ck_assert_int_eq (cgroup_v2_ops.apply (&cg, &r, &err), 0);
  expect_file (dir, "memory.swap.max", "max");
  /* a controller that is not enabled says so */
  {
    char *pids = xasprintf ("%s/pids.max", dir);
    unlink (pids);
    free (pids);
  }
  ck_assert_int_eq (cgroup_v2_ops.apply (&cg, &r, &err), -1);
  ck_assert_ptr_nonnull (strstr (err->msg, "pids.max"));
  capsule_error_free (err);
  remove_tree (root);
  free (dir);
}
END_TEST

/* Cgroups a container made below its own go first, deepest first; a cgroup already gone is fine. */
START_TEST (test_v2_destroy_tree)
{
  char tmpl[] = "/tmp/capsule-cg-XXXXXX";
  char *root = mkdtemp (tmpl);
  const char *dirs[] = { "ctr", "ctr/a", "ctr/a/b", "ctr/a/b/c", "ctr/d" };
  struct cgroup cg = { .ops = &cgroup_v2_ops, .root = root, .path = "/ctr", .dirfd = -1 };
  capsule_error *err = NULL;
  char *ctr;
  ck_assert_ptr_nonnull (root);
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    {
      char *d = xasprintf ("%s/%s", root, dirs[i]);
      ck_assert_int_eq (mkdir (d, 0755), 0);
      free (d);
    }
  ck_assert_int_eq (cgroup_v2_ops.destroy (&cg, &err), 0);
  ctr = xasprintf ("%s/ctr", root);
  ck_assert_int_eq (access (ctr, F_OK), -1);
  ck_assert_int_eq (cgroup_v2_ops.destroy (&cg, &err), 0);
  ck_assert_int_eq (rmdir (root), 0);
  free (ctr);
}
END_TEST

START_TEST (test_v1_apply)
{
  char tmpl[] = "/tmp/capsule-cg1-XXXXXX";
  char *root = mkdtemp (tmpl);
  const char *const ctrl[] = { "memory", "pids", "cpu" };
  struct cgroup cg = { .ops = &cgroup_v1_ops, .root = root, .path = "/ctr", .dirfd = -1 };
  struct spec_resources r = { .has_memory_limit = true,
                              .memory_limit = 64 << 20,
                              .has_pids_limit = true,
                              .pids_limit = -1,
                              .cpu_shares = 512 };
  capsule_error *err = NULL;
  char *mem;
  for (size_t i = 0; i < 3; i++)
    {
      char *d = xasprintf ("%s/%s/ctr", root, ctrl[i]);
      ck_assert_int_eq (mkdir_p (d, 0755, &err), 0);
      free (d);
    }
  cg.v1_paths[0] = "/ctr";
  cg.v1_paths[1] = "/ctr";
  cg.v1_paths[2] = "/ctr";
  mem = xasprintf ("%s/memory/ctr", root);
  touch (mem, "memory.limit_in_bytes");
  touch (mem, "memory.memsw.limit_in_bytes");
  {
    char *p = xasprintf ("%s/pids/ctr", root), *c = xasprintf ("%s/cpu/ctr", root);
    touch (p, "pids.max");
    touch (c, "cpu.shares");
    free (p);
    free (c);
  }
  ck_assert_int_eq (cgroup_v1_ops.apply (&cg, &r, &err), 0);
  expect_file (mem, "memory.limit_in_bytes", "67108864");
  /* a limit alone means no swap: memsw equals the limit */
  expect_file (mem, "memory.memsw.limit_in_bytes", "67108864");
  {
    char *p = xasprintf ("%s/pids/ctr", root);
    expect_file (p, "pids.max", "max");
    free (p);
    p = xasprintf ("%s/cpu/ctr", root);
    expect_file (p, "cpu.shares", "512");
    free (p);
  }
  r.n_unified = 1;
  ck_assert_int_eq (cgroup_v1_ops.apply (&cg, &r, &err), -1);
  ck_assert_ptr_nonnull (strstr (err->msg, "linux.resources.unified needs cgroup v2"));
  capsule_error_free (err);
  remove_tree (root);
  free (mem);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("cgroup");
  TCase *tc = tcase_create ("paths");
  tcase_add_test (tc, test_resolve);
  tcase_add_test (tc, test_own_path);
  tcase_add_test (tc, test_values);
  tcase_add_test (tc, test_v2_apply);
  tcase_add_test (tc, test_v2_destroy_tree);
  tcase_add_test (tc, test_v1_apply);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
