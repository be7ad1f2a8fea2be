/* Unit tests: seccomp profile translation, checked by running the compiled filter. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp-filter.h"
#include "spec-default.h"
#include "spec.h"
#include "utils.h"
#include "unit-main.h"

static struct spec *
parse_linux (const char *linux_json)
{
  capsule_error *err = NULL;
  char *text = xasprintf ("{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"x\"], \"cwd\": "
                          "\"/\"}, \"root\": {\"path\": \"/\"}, \"linux\": %s}",
                          linux_json);
  struct spec *s = spec_parse (text, "config.json", "/", &err);
  ck_assert_msg (s != NULL, "%s", err ? err->msg : "");
  free (text);
  return s;
}

/* In a child: install the program, call getppid-like probes, report results by exit code. */
static int
run_in_child (const struct seccomp_program *p, int (*probe) (void))
{
  pid_t pid = fork ();
  int status;
  if (pid == 0)
    {
      capsule_error *err = NULL;
      prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
      if (seccomp_install (p, &err) < 0)
        _exit (200);
      /* the raw syscall: a sanitizer's _exit hook would need syscalls the filter denies */
      syscall (SYS_exit_group, probe ());
    }
  ck_assert_int_gt (pid, 0);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  if (WIFSIGNALED (status))
    return 1000 + WTERMSIG (status);
  return WEXITSTATUS (status);
}

static int
probe_getcwd_errno (void)
{
  char buf[64];
  long r = syscall (SYS_getcwd, buf, sizeof buf);
  return r < 0 ? errno : 0;
}

static int
probe_uname_errno (void)
{
  char buf[512];
  long r = syscall (SYS_uname, buf);
  return r < 0 ? errno : 0;
}

START_TEST (test_errno_ret)
{
  struct spec *s = parse_linux (
      "{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
      "[\"getcwd\", \"no_such_syscall_anywhere\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": "
      "42}]}}");
  struct seccomp_program p = { 0 };
  capsule_error *err = NULL;
  size_t unknown = 0;
  ck_assert_int_eq (seccomp_compile (s->seccomp, &p, &unknown, &err), 0);
  ck_assert_uint_eq (unknown, 1);
  ck_assert_uint_gt (p.len, 0);
  ck_assert_int_eq (run_in_child (&p, probe_getcwd_errno), 42);
  ck_assert_int_eq (run_in_child (&p, probe_uname_errno), 0);
  seccomp_program_release (&p);
  spec_free (s);
}
END_TEST

START_TEST (test_default_deny)
{
  struct spec *s = parse_linux (
      "{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 13, "
      "\"syscalls\": "
      "[{\"names\": [\"exit\", \"exit_group\", \"getcwd\"], \"action\": \"SCMP_ACT_ALLOW\"}]}}");
  struct seccomp_program p = { 0 };
  capsule_error *err = NULL;
  ck_assert_int_eq (seccomp_compile (s->seccomp, &p, NULL, &err), 0);
  ck_assert_int_eq (run_in_child (&p, probe_getcwd_errno), 0);
  ck_assert_int_eq (run_in_child (&p, probe_uname_errno), 13);
  seccomp_program_release (&p);
  spec_free (s);
}
END_TEST

static int
probe_personality_args (void)
{
  /* allowed only for 0; 0x0008 (PER_...) is denied with errno 7 below */
  long ok = syscall (SYS_personality, 0xffffffff);
  long denied = syscall (SYS_personality, 0x0008);
  return ok >= 0 && denied < 0 && errno == 7 ? 0 : 99;
}

START_TEST (test_argument_conditions)
{
  struct spec *s = parse_linux (
      "{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": "
      "[\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 7, \"args\": [{\"index\": "
      "0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]}]}}");
  struct seccomp_program p = { 0 };
  capsule_error *err = NULL;
  ck_assert_int_eq (seccomp_compile (s->seccomp, &p, NULL, &err), 0);
  ck_assert_int_eq (run_in_child (&p, probe_personality_args), 0);
  seccomp_program_release (&p);
  spec_free (s);
}
END_TEST

START_TEST (test_parsers)
{
  uint32_t a;
  unsigned flags = 0;
  ck_assert_int_eq (seccomp_action_parse ("SCMP_ACT_ERRNO", 5, &a), 0);
  ck_assert_uint_eq (a, SCMP_ACT_ERRNO (5));
  ck_assert_int_eq (seccomp_action_parse ("SCMP_ACT_KILL_PROCESS", 0, &a), 0);
  ck_assert_uint_eq (a, SCMP_ACT_KILL_PROCESS);
  ck_assert_int_eq (seccomp_action_parse ("SCMP_ACT_NOTIFY", 0, &a), -1);
  ck_assert_int_eq (seccomp_arch_parse ("SCMP_ARCH_X86_64", &a), 0);
  ck_assert_uint_eq (a, SCMP_ARCH_X86_64);
  ck_assert_int_eq (seccomp_arch_parse ("x86_64", &a), -1);
  ck_assert_int_eq (seccomp_op_parse ("SCMP_CMP_MASKED_EQ"), SCMP_CMP_MASKED_EQ);
  ck_assert_int_eq (seccomp_op_parse ("EQ"), -1);
  ck_assert_int_eq (seccomp_flag_parse ("SECCOMP_FILTER_FLAG_LOG", &flags), 0);
  ck_assert_int_eq (seccomp_flag_parse ("SECCOMP_FILTER_FLAG_X", &flags), -1);
}
END_TEST

START_TEST (test_shipped_profile)
{
  /* the policy file must parse, compile, and deny what a sandbox must not do */
  char *text = NULL;
  capsule_error *err = NULL;
  struct spec *s;
  struct seccomp_program p = { 0 };
  ck_assert_int_eq (spec_default_text ("rootfs", "sh", &text, &err), 0);
  s = spec_parse (text, "default", "/", &err);
  ck_assert_msg (s != NULL, "%s", err ? err->msg : "");
  ck_assert_ptr_nonnull (s->seccomp);
  ck_assert_int_eq (seccomp_compile (s->seccomp, &p, NULL, &err), 0);
  ck_assert_int_eq (run_in_child (&p, probe_getcwd_errno), 0);
  seccomp_program_release (&p);
  for (size_t i = 0; i < s->seccomp->n_rules; i++)
    if (s->seccomp->rules[i].action == SCMP_ACT_ALLOW && s->seccomp->rules[i].n_args == 0)
      for (char **n = s->seccomp->rules[i].names; *n; n++)
        {
          ck_assert_msg (strcmp (*n, "mount") != 0 && strcmp (*n, "unshare") != 0
                             && strcmp (*n, "setns") != 0 && strcmp (*n, "ptrace") != 0
                             && strcmp (*n, "bpf") != 0 && strcmp (*n, "keyctl") != 0
                             && strcmp (*n, "open_by_handle_at") != 0,
                         "default profile allows %s", *n);
        }
  ck_assert (s->process->no_new_privileges);
  ck_assert (s->root_readonly);
  spec_free (s);
  free (text);
}
END_TEST

START_TEST (test_cache)
{
  struct spec *a
      = parse_linux ("{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                     "[{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_ERRNO\", "
                     "\"errnoRet\": 42}]}}");
  struct spec *b
      = parse_linux ("{\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
                     "[{\"names\": [\"getcwd\"], \"action\": \"SCMP_ACT_ERRNO\", "
                     "\"errnoRet\": 43}]}}");
  char tmpl[] = "/tmp/capsule-seccomp-XXXXXX";
  char *dir = mkdtemp (tmpl), *file, *other;
  struct seccomp_program p1 = { 0 }, p2 = { 0 }, p3 = { 0 }, p4 = { 0 }, p5 = { 0 };
  struct stat st;
  capsule_error *err = NULL;
  FILE *f;
  ck_assert_ptr_nonnull (dir);
  ck_assert_uint_ne (seccomp_profile_hash (a->seccomp), seccomp_profile_hash (b->seccomp));
  ck_assert_uint_eq (seccomp_profile_hash (a->seccomp), seccomp_profile_hash (a->seccomp));
  ck_assert_int_eq (seccomp_compile_cached (a->seccomp, dir, &p1, &err), 0);
  ck_assert_int_eq (seccomp_compile_cached (a->seccomp, dir, &p2, &err), 0);
  ck_assert_uint_eq (p1.len, p2.len);
  ck_assert_int_eq (memcmp (p1.filter, p2.filter, p1.len * sizeof (struct sock_filter)), 0);
  ck_assert_int_eq (run_in_child (&p2, probe_getcwd_errno), 42);
  /* the first compile wrote the program under the profile's hash */
  file = xasprintf ("%s/%016llx.bpf", dir, (unsigned long long)seccomp_profile_hash (a->seccomp));
  other = xasprintf ("%s/%016llx.bpf", dir, (unsigned long long)seccomp_profile_hash (b->seccomp));
  ck_assert_int_eq (stat (file, &st), 0);
  ck_assert_int_eq (st.st_size, (off_t)(p1.len * sizeof (struct sock_filter)));
  /* and the second read it: put b's program (errno 43) under a's key, and a answers 43 */
  ck_assert_int_eq (seccomp_compile_cached (b->seccomp, dir, &p4, &err), 0);
  ck_assert_int_eq (rename (other, file), 0);
  ck_assert_int_eq (seccomp_compile_cached (a->seccomp, dir, &p5, &err), 0);
  ck_assert_int_eq (run_in_child (&p5, probe_getcwd_errno), 43);
  /* a damaged cache entry is not trusted: compiled again, and the entry repaired */
  f = fopen (file, "w");
  fputs ("junk", f);
  fclose (f);
  ck_assert_int_eq (seccomp_compile_cached (a->seccomp, dir, &p3, &err), 0);
  ck_assert_int_eq (run_in_child (&p3, probe_getcwd_errno), 42);
  ck_assert_int_eq (stat (file, &st), 0);
  ck_assert_int_eq (st.st_size, (off_t)(p3.len * sizeof (struct sock_filter)));
  unlink (file);
  unlink (other);
  rmdir (dir);
  free (file);
  free (other);
  seccomp_program_release (&p4);
  seccomp_program_release (&p5);
  seccomp_program_release (&p1);
  seccomp_program_release (&p2);
  seccomp_program_release (&p3);
  spec_free (a);
  spec_free (b);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("seccomp");
  TCase *tc = tcase_create ("compile");
  tcase_add_test (tc, test_errno_ret);
  tcase_add_test (tc, test_default_deny);
  tcase_add_test (tc, test_argument_conditions);
  tcase_add_test (tc, test_parsers);
  tcase_add_test (tc, test_shipped_profile);
  tcase_add_test (tc, test_cache);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
