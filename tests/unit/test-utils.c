/* Unit tests: small parsers (sizes, signals, ids), capability names, id map text, and the JSON
 * layer's limits and UTF-8 output. */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include "caps.h"
#include "json.h"
#include "namespaces.h"
#include "utils.h"
#include "unit-main.h"

/* 300,000 nested brackets once took the stack of a recursive tree free; the parser stops at the
   65th level, and at the value limit; strings inside may hold brackets freely. */
START_TEST (test_json_limits)
{
  size_t n = 300000;
  char *deep = malloc (2 * n + 1);
  capsule_error *err = NULL;
  json_value *v;
  memset (deep, '[', n);
  memset (deep + n, ']', n);
  deep[2 * n] = '\0';
  ck_assert_ptr_null (json_parse (deep, "request", &err));
  ck_assert_int_eq (err->status, ELOOP);
  capsule_error_release (&err);
  /* exactly at the limit it parses */
  memset (deep, '[', JSON_MAX_DEPTH);
  memset (deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
  deep[2 * JSON_MAX_DEPTH] = '\0';
  v = json_parse (deep, "request", &err);
  ck_assert_ptr_nonnull (v);
  json_free (v);
  deep[0] = '"';
  memset (deep + 1, '[', 100);
  strcpy (deep + 101, "\\\"]\"");
  v = json_parse (deep, "string", &err);
  ck_assert_ptr_nonnull (v);
  json_free (v);
  free (deep);
  {
    size_t count = JSON_MAX_VALUES + 2;
    char *wide = malloc (2 * count + 3), *p = wide;
    *p++ = '[';
    for (size_t i = 0; i < count; i++)
      {
        *p++ = '0';
        *p++ = ',';
      }
    p[-1] = ']';
    *p = '\0';
    ck_assert_ptr_null (json_parse (wide, "request", &err));
    ck_assert_int_eq (err->status, E2BIG);
    capsule_error_release (&err);
    free (wide);
  }
  ck_assert_ptr_null (json_parse ("{\"a\": \"\xff\"}", "bad utf-8", &err));
  ck_assert_int_eq (err->status, EINVAL);
  capsule_error_release (&err);
}
END_TEST

/* The reader: escapes, surrogate pairs, numbers, duplicate keys, and what strict JSON refuses,
   each refusal naming its line and column. */
START_TEST (test_json_reader)
{
  capsule_error *err = NULL;
  json_value *v;
  uint64_t u = 0;
  v = json_parse (
      " {\"s\": \"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\\ud800x\", \"k\": 1, \"k\": -2,"
      " \"big\": 18446744073709551615, \"f\": 1.5, \"e\": 1e3, \"t\": true,"
      " \"n\": null, \"a\": [], \"o\": {}}\r\n",
      "doc", &err);
  ck_assert_ptr_nonnull (v);
  ck_assert_str_eq (json_string (json_get (v, "s")),
                    "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx");
  ck_assert (json_is_integer (json_get (v, "k")));
  ck_assert_int_eq (json_integer (json_get (v, "k")), -2); /* the last duplicate */
  ck_assert (!json_is_integer (json_get (v, "big")) && json_is_number (json_get (v, "big")));
  ck_assert_int_eq (json_u64 (json_get (v, "big"), &u), 0);
  ck_assert (u == UINT64_MAX);
  ck_assert (!json_is_integer (json_get (v, "f")));
  ck_assert (json_double (json_get (v, "f")) == 1.5);
  ck_assert (!json_is_integer (json_get (v, "e")) && json_double (json_get (v, "e")) == 1000.0);
  ck_assert (json_is_bool (json_get (v, "t")) && json_bool (json_get (v, "t")));
  ck_assert (json_is_null (json_get (v, "n")));
  ck_assert_int_eq (json_array_len (json_get (v, "a")), 0);
  ck_assert (json_is_object (json_get (v, "o")) && json_object_len (json_get (v, "o")) == 0);
  ck_assert_int_eq (json_object_len (v), 10); /* both k kept */
  ck_assert_str_eq (json_object_key (v, 9), "o");
  json_free (v);
  /* \u0000 is valid JSON: it parses, the C string stops there, and the document says so */
  v = json_parse ("{\"a\": \"x\\u0000y\", \"b\": \"\\\\u0000\"}", "nul", &err);
  ck_assert_ptr_nonnull (v);
  ck_assert_str_eq (json_string (json_get (v, "a")), "x");
  ck_assert (json_has_nul (v));
  json_free (v);
  v = json_parse ("{\"b\": \"\\\\u0000\"}", "escaped backslash", &err);
  ck_assert_str_eq (json_string (json_get (v, "b")), "\\u0000");
  ck_assert (!json_has_nul (v));
  json_free (v);
  /* the flags: refused as invalid JSON where it stands, or read as U+FFFD and the rest kept */
  ck_assert_ptr_null (json_parse_n ("[\"x\\u0000\"]", 11, JSON_NUL_REFUSE, "nul", &err));
  ck_assert_pstr_eq (strstr (err->msg, "nul: invalid JSON: a \\u0000 (NUL) inside a string at "
                                       "line 1, column 4"),
                     err->msg);
  capsule_error_release (&err);
  v = json_parse_n ("[\"x\\u0000y\"]", 12, JSON_NUL_REPLACE, "nul", &err);
  ck_assert_str_eq (json_string (json_array_get (v, 0)), "x\xef\xbf\xbdy");
  ck_assert (!json_has_nul (v));
  json_free (v);
  /* a NUL byte in what came off a socket is refused, not the end of the text (json_parse_n) */
  ck_assert_ptr_null (json_parse_n ("{}\0{\"a\": 1}", 11, 0, "line", &err));
  ck_assert_pstr_eq (strstr (err->msg, "line: invalid JSON: a NUL byte at line 1, column 3"),
                     err->msg);
  capsule_error_release (&err);
  v = json_parse ("42", "scalar", &err);
  ck_assert (v && json_is_integer (v) && json_integer (v) == 42);
  json_free (v);
  /* numbers: past INT64_MAX an unsigned integer, past UINT64_MAX a double; inf is refused */
  v = json_parse ("[9223372036854775808, 18446744073709551616, -9223372036854775809, -0, 1e-400,"
                  " 1.5, 7]",
                  "numbers", &err);
  ck_assert_ptr_nonnull (v);
  ck_assert (!json_is_integer (json_array_get (v, 0)));
  ck_assert (json_u64 (json_array_get (v, 0), &u) == 0 && u == 9223372036854775808ull);
  ck_assert (json_double (json_array_get (v, 0)) == 9223372036854775808.0);
  ck_assert (json_u64 (json_array_get (v, 1), &u) < 0);
  ck_assert (json_double (json_array_get (v, 1)) == 18446744073709551616.0);
  ck_assert (json_u64 (json_array_get (v, 2), &u) < 0);
  ck_assert (json_is_number (json_array_get (v, 2)) && !json_is_integer (json_array_get (v, 2)));
  ck_assert (json_is_integer (json_array_get (v, 3)) && json_integer (json_array_get (v, 3)) == 0);
  ck_assert (json_double (json_array_get (v, 4)) == 0.0);
  ck_assert (json_u64 (json_array_get (v, 5), &u) < 0 && json_integer (json_array_get (v, 5)) == 0);
  ck_assert (json_u64 (json_array_get (v, 6), &u) == 0 && u == 7);
  ck_assert (json_integer (json_array_get (v, 6)) == 7 && json_double (json_array_get (v, 6)) == 7);
  json_free (v);
  ck_assert_ptr_null (json_parse ("[1, -1e400]", "inf", &err));
  ck_assert_pstr_eq (
      strstr (err->msg, "inf: invalid JSON: a number beyond a double's range at line 1, column 5"),
      err->msg);
  capsule_error_release (&err);
  static const char *const refused[][2] = {
    { "", "the text ends where a value should be at line 1, column 1" },
    { "{\"a\": 1,\n \"b\" 2}", "':' after a member's name should be at line 2, column 6" },
    { "[1] x", "more after the value at line 1, column 5" },
    { "[1, /* no */ 2]", "'/' where a value should be" },
    { "[\"tab\there\"]", "control character 0x09 inside a string" },
    { "[\"\xc0\x80\"]", "invalid UTF-8 inside a string" },
    { "[\"\xed\xa0\x80\"]", "invalid UTF-8 inside a string" },
    { "[\"\\x\"]", "an unknown escape inside a string" },
    { "[\"\\u12g4\"]", "a \\u escape without four hex digits" },
    { "[\"open", "a string that does not end" },
    { "[01]", "',' or ']' should be" },
    { "[1.]", "a digit after the decimal point should be" },
    { "[-]", "a digit should be" },
    { "[1e+]", "a digit of the exponent should be" },
    { "[tru]", "a value should be" },
    { "{1: 2}", "a member's name in quotes should be" },
    { "\v[]", "byte 0x0b where a value should be" },
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    {
      ck_assert_msg (json_parse (refused[i][0], "doc", &err) == NULL, "accepted: %s",
                     refused[i][0]);
      ck_assert_int_eq (err->status, EINVAL);
      ck_assert_msg (strstr (err->msg, "doc: invalid JSON: ") == err->msg, "%s", err->msg);
      ck_assert_msg (strstr (err->msg, refused[i][1]) != NULL, "%s: got %s", refused[i][0],
                     err->msg);
      capsule_error_release (&err);
    }
}
END_TEST

START_TEST (test_json_utf8_out)
{
  json_writer *w = json_writer_new (false);
  char *clean;
  json_w_open_object (w);
  json_w_kv_string (w, "path", "\xff\xfe.bin");
  json_w_kv_string (w, "ok", "caf\xc3\xa9");
  json_w_key (w, "raw");
  json_w_raw (w, "[1,{\"a\":2}]");
  json_w_close_object (w);
  ck_assert_str_eq (
      json_writer_text (w, NULL),
      "{\"path\":\"\xef\xbf\xbd\xef\xbf\xbd.bin\",\"ok\":\"caf\xc3\xa9\",\"raw\":[1,{\"a\":2}]}");
  json_writer_free (w);
  ck_assert (json_utf8_valid ("caf\xc3\xa9 \xf0\x9f\x98\x80"));
  ck_assert (!json_utf8_valid ("\xed\xa0\x80")); /* a surrogate */
  ck_assert (!json_utf8_valid ("\xc0\xaf"));     /* overlong */
  clean = json_utf8_sanitise ("a\xe2\x82");
  ck_assert_str_eq (clean, "a\xef\xbf\xbd\xef\xbf\xbd");
  free (clean);
}
END_TEST

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

/* mkdir_p tries the whole path first and walks from the top only when a parent is missing:
   both ways end with the directory, an existing one is fine, a file in the way is an error. */
START_TEST (test_mkdir_p)
{
  char top[] = "/tmp/capsule-unit-mkdir.XXXXXX";
  char *deep, *file, *under;
  capsule_error *err = NULL;
  struct stat sb;
  ck_assert_ptr_nonnull (mkdtemp (top));
  deep = xasprintf ("%s/a/b/c", top);
  ck_assert_int_eq (mkdir_p (deep, 0700, &err), 0);
  ck_assert_int_eq (stat (deep, &sb), 0);
  ck_assert (S_ISDIR (sb.st_mode));
  ck_assert_int_eq (sb.st_mode & 0777, 0700);
  ck_assert_int_eq (mkdir_p (deep, 0700, &err), 0);
  free (deep);
  deep = xasprintf ("%s/a/b/d", top);
  ck_assert_int_eq (mkdir_p (deep, 0700, &err), 0);
  ck_assert_int_eq (stat (deep, &sb), 0);
  file = xasprintf ("%s/f", top);
  FILE *f = fopen (file, "w");
  ck_assert_ptr_nonnull (f);
  fclose (f);
  under = xasprintf ("%s/f/g/h", top);
  ck_assert_int_eq (mkdir_p (under, 0700, &err), -1);
  ck_assert_int_eq (err->status, ENOTDIR);
  capsule_error_release (&err);
  ck_assert_int_eq (rm_rf (top, &err), 0);
  free (deep);
  free (file);
  free (under);
}
END_TEST

/* created times: RFC 3339 in UTC with nanoseconds, whatever the time zone */
START_TEST (test_rfc3339)
{
  setenv ("TZ", "Pacific/Kiritimati", 1);
  tzset ();
  time_t before = time (NULL);
  char *t = rfc3339_now ();
  struct tm tm = { 0 };
  char *rest = strptime (t, "%Y-%m-%dT%H:%M:%S", &tm);
  ck_assert_ptr_nonnull (rest);
  ck_assert_int_eq (strlen (rest), 11);
  ck_assert (rest[0] == '.' && rest[10] == 'Z');
  time_t parsed = timegm (&tm);
  ck_assert (parsed >= before && parsed <= time (NULL));
  free (t);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("utils");
  TCase *tc = tcase_create ("parsers");
  tcase_add_test (tc, test_json_limits);
  tcase_add_test (tc, test_json_reader);
  tcase_add_test (tc, test_json_utf8_out);
  tcase_add_test (tc, test_sizes);
  tcase_add_test (tc, test_signals);
  tcase_add_test (tc, test_ids);
  tcase_add_test (tc, test_caps);
  tcase_add_test (tc, test_idmap_text);
  tcase_add_test (tc, test_mkdir_p);
  tcase_add_test (tc, test_rfc3339);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
