/* Unit tests of capsule-gateway's keys file: parsing, tenants, lookups. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"
#include "utils.h"

static char *
keys_file (const char *text)
{
  char *path = xstrdup ("/tmp/capsule-test-keys.XXXXXX");
  int fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write_all (fd, text, strlen (text)), (ssize_t)strlen (text));
  close (fd);
  return path;
}

static int
load (const char *text, struct keys *k, capsule_error **err)
{
  _cleanup_free_ char *path = keys_file (text);
  int r = keys_load (path, k, err);
  unlink (path);
  return r;
}

static char *
line_for (const char *key, const char *tenant)
{
  char hex[65];
  sha256_hex (key, strlen (key), hex);
  return xasprintf ("sha256:%s %s\n", hex, tenant);
}

START_TEST (test_keys_parse_and_lookup)
{
  _cleanup_free_ char *a = line_for ("sk-one", "team-a"), *b = line_for ("sk-two", "team_b.x");
  _cleanup_free_ char *text = xasprintf (
      "# comment\n\n   \n%.*s  # a comment goes on its own line\n", (int)strlen (a) - 1, a);
  _cleanup_free_ char *two = xasprintf ("%s\t%s", a, b);
  struct keys k = { 0 };
  capsule_error *err = NULL;
  char tenant[KEY_TENANT_MAX + 1];
  /* a trailing comment is no tenant name: refused, not silently taken */
  ck_assert_int_lt (load (text, &k, &err), 0);
  capsule_error_release (&err);
  ck_assert_int_eq (load (two, &k, &err), 0);
  ck_assert_uint_eq (k.n, 2);
  ck_assert (keys_lookup (&k, "sk-one", 6, tenant));
  ck_assert_str_eq (tenant, "team-a");
  ck_assert (keys_lookup (&k, "sk-two", 6, tenant));
  ck_assert_str_eq (tenant, "team_b.x");
  ck_assert (!keys_lookup (&k, "sk-on", 5, tenant));
  ck_assert (!keys_lookup (&k, "sk-onee", 7, tenant));
  ck_assert (!keys_lookup (&k, "", 0, tenant));
  keys_release (&k);
  ck_assert (!keys_lookup (&k, "sk-one", 6, tenant));
}
END_TEST

START_TEST (test_keys_refused)
{
  static const char *const bad[] = {
    "sk-plain-key team\n",
    "sha256:abc team\n",
    "sha1:0000000000000000000000000000000000000000 team\n",
    "sha256:zz00000000000000000000000000000000000000000000000000000000000000 team\n",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000 ..\n",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000 a/b\n",
    "sha256:00000000000000000000000000000000000000000000000000000000000000000 team\n",
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      struct keys k = { 0 };
      capsule_error *err = NULL;
      ck_assert_msg (load (bad[i], &k, &err) < 0, "accepted: %s", bad[i]);
      ck_assert (strstr (err->msg, ":1:") != NULL);
      capsule_error_release (&err);
    }
}
END_TEST

START_TEST (test_tenant_names)
{
  ck_assert (tenant_name_valid ("a"));
  ck_assert (tenant_name_valid ("Team-1_x.y"));
  ck_assert (!tenant_name_valid (""));
  ck_assert (!tenant_name_valid ("."));
  ck_assert (!tenant_name_valid (".."));
  ck_assert (!tenant_name_valid ("a b"));
  ck_assert (!tenant_name_valid ("a/b"));
  ck_assert (!tenant_name_valid ("é"));
  ck_assert (
      tenant_name_valid ("0123456789012345678901234567890123456789012345678901234567890123"));
  ck_assert (
      !tenant_name_valid ("01234567890123456789012345678901234567890123456789012345678901234"));
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("gateway");
  TCase *tc = tcase_create ("keys");
  SRunner *sr;
  int failed;
  tcase_add_test (tc, test_keys_parse_and_lookup);
  tcase_add_test (tc, test_keys_refused);
  tcase_add_test (tc, test_tenant_names);
  suite_add_tcase (s, tc);
  sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
