/* Unit tests: small parsers (sizes, signals, ids), capability names, id map text. */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "namespaces.h"
#include "utils.h"
#include "unit-main.h"

START_TEST (test_sizes)
{
  uint64_t v;
  ck_assert_int_eq (parse_size ("1g", &v), 0);
  ck_assert_uint_eq (v, 1ULL << 30);
  ck_assert_int_eq (parse_size ("512MiB", &v), 0);
  ck_assert_uint_eq (v, 512ULL << 20);
  ck_assert_int_eq (parse_size ("4096", &v), 0);
  ck_assert_uint_eq (v, 4096);
  ck_assert_int_eq (parse_size ("64G", &v), 0);
  ck_assert_uint_eq (v, 64ULL << 30);
  ck_assert_int_eq (parse_size ("1x", &v), -1);
  ck_assert_int_eq (parse_size ("-1", &v), -1);
  ck_assert_int_eq (parse_size ("", &v), -1);
  ck_assert_int_eq (parse_size ("99999999999999999999t", &v), -1);
}
END_TEST

START_TEST (test_signals)
{
  ck_assert_int_eq (signal_parse ("KILL"), SIGKILL);
  ck_assert_int_eq (signal_parse ("SIGTERM"), SIGTERM);
  ck_assert_int_eq (signal_parse ("sigint"), SIGINT);
  ck_assert_int_eq (signal_parse ("9"), 9);
  ck_assert_int_eq (signal_parse ("0"), -1);
  ck_assert_int_eq (signal_parse ("999"), -1);
  ck_assert_int_eq (signal_parse ("NOPE"), -1);
  ck_assert_int_eq (signal_parse ("RTMIN+1"), SIGRTMIN + 1);
}
END_TEST

START_TEST (test_ids)
{
  ck_assert (container_id_valid ("abc-1.2_3+x"));
  ck_assert (!container_id_valid (""));
  ck_assert (!container_id_valid ("."));
  ck_assert (!container_id_valid (".."));
  ck_assert (!container_id_valid ("a/b"));
  ck_assert (!container_id_valid ("a b"));
  ck_assert (!container_id_valid ("a\nb"));
}
END_TEST

START_TEST (test_caps)
{
  ck_assert_int_eq (caps_parse_name ("CAP_CHOWN"), 0);
  ck_assert_int_eq (caps_parse_name ("CAP_SYS_ADMIN"), 21);
  ck_assert_int_eq (caps_parse_name ("cap_kill"), 5);
  ck_assert_int_eq (caps_parse_name ("SYS_ADMIN"), -1);
  ck_assert_int_eq (caps_parse_name ("CAP_NOT_A_CAP"), -1);
  ck_assert_int_ge (caps_last_cap (), 37);
}
END_TEST

START_TEST (test_idmap_text)
{
  struct spec_idmap maps[] = { { 0, 100000, 1 }, { 1, 200000, 65535 } };
  char *t = namespaces_idmap_text (maps, 2);
  ck_assert_str_eq (t, "0 100000 1\n1 200000 65535\n");
  free (t);
  ck_assert (namespaces_maps_root (maps, 2));
  ck_assert (!namespaces_maps_root (maps + 1, 1));
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("utils");
  TCase *tc = tcase_create ("parsers");
  tcase_add_test (tc, test_sizes);
  tcase_add_test (tc, test_signals);
  tcase_add_test (tc, test_ids);
  tcase_add_test (tc, test_caps);
  tcase_add_test (tc, test_idmap_text);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
