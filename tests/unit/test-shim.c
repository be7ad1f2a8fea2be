/* Unit tests: capsule-shim's tiers and pools, JSON-RPC framing and errors, base64, ids and the
 * normalisation of user paths. */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rpc.h"
#include "shim-util.h"
#include "capsule-config.h"
#include "files.h"
#include "tiers.h"
#include "utils.h"
#include "worker.h"
#include "unit-main.h"

static const char *const tiers_json
    = "{\"default\": \"1g\", \"tenant_pool\": \"64g\", \"tiers\": {"
      "\"1g\": {\"memory\": \"1g\", \"workspace\": \"1g\", \"pids\": 512, \"cpu_shares\": 1024, "
      "\"nofile\": 1024},"
      "\"4g\": {\"memory\": \"4g\", \"workspace\": \"4g\", \"tmp\": \"1g\"},"
      "\"16g\": {\"memory\": \"16g\", \"workspace\": \"16g\"},"
      "\"64g\": {\"memory\": 68719476736, \"workspace\": \"64g\"}}}";

START_TEST (test_tiers_parse)
{
  struct tiers t;
  capsule_error *err = NULL;
  const struct tier *one, *four;
  char *names;
  ck_assert_int_eq (tiers_parse (tiers_json, "tiers.json", &t, &err), 0);
  ck_assert_uint_eq (t.n, 4);
  ck_assert_str_eq (t.default_tier, "1g");
  ck_assert_uint_eq (t.pool, 64ULL << 30);
  one = tiers_find (&t, "1g");
  four = tiers_find (&t, "4g");
  ck_assert_uint_eq (one->memory, 1ULL << 30);
  ck_assert_uint_eq (one->pids, 512);
  ck_assert_uint_eq (four->tmp, 1ULL << 30);
  ck_assert_uint_eq (four->pids, 1024); /* default */
  ck_assert_uint_eq (tiers_find (&t, "64g")->memory, 64ULL << 30);
  ck_assert_ptr_null (tiers_find (&t, "2g"));
  names = tiers_names (&t);
  ck_assert_str_eq (names, "1g, 4g, 16g, 64g");
  free (names);
  tiers_release (&t);
}
END_TEST

START_TEST (test_tiers_shipped)
{
  struct tiers t;
  capsule_error *err = NULL;
  char *path = xasprintf ("%s/policies/tiers.json", CAPSULE_SOURCE_ROOT);
  ck_assert_msg (tiers_load (path, &t, &err) == 0, "%s", err ? err->msg : "");
  for (const char *const *n = (const char *const[]){ "1g", "4g", "16g", "64g", NULL }; *n; n++)
    {
      const struct tier *x = tiers_find (&t, *n);
      uint64_t want;
      ck_assert_ptr_nonnull (x);
      ck_assert_int_eq (parse_size (*n, &want), 0);
      ck_assert_uint_eq (x->memory, want); /* a tier's name is its memory.max */
      ck_assert_uint_gt (x->workspace, 0);
    }
  ck_assert_uint_eq (t.pool, 64ULL << 30);
  /* the shipped file primes the data stack, with a figure, unless memory is short */
  ck_assert_ptr_nonnull (t.prime_modules);
  ck_assert_str_eq (t.prime_modules[0], "numpy");
  ck_assert (t.prime_plot);
  ck_assert_uint_eq (t.prime_min_available, 2ULL << 30);
  tiers_release (&t);
  free (path);
}
END_TEST

static void tiers_bad (const char *text, const char *want);

#define ONE_TIER "\"tiers\": {\"1g\": {\"memory\": \"1g\", \"workspace\": \"1g\"}}"

START_TEST (test_tiers_prime)
{
  struct tiers t;
  capsule_error *err = NULL;
  ck_assert_int_eq (tiers_parse ("{" ONE_TIER "}", "tiers.json", &t, &err), 0);
  ck_assert_ptr_null (t.prime_modules); /* nothing primed unless asked */
  tiers_release (&t);
  ck_assert_int_eq (
      tiers_parse ("{\"prime\": {\"modules\": [\"a.b_c\", \"x2\"], \"min_available\": "
                   "\"1m\"}, " ONE_TIER "}",
                   "tiers.json", &t, &err),
      0);
  ck_assert_str_eq (t.prime_modules[0], "a.b_c");
  ck_assert_str_eq (t.prime_modules[1], "x2");
  ck_assert_ptr_null (t.prime_modules[2]);
  ck_assert (!t.prime_plot);
  ck_assert_uint_eq (t.prime_min_available, 1 << 20);
  tiers_release (&t);
  tiers_bad ("{\"prime\": [], " ONE_TIER "}", "prime: expected an object");
  tiers_bad ("{\"prime\": {\"modules\": [\"os; import x\"]}, " ONE_TIER "}",
             "prime.modules[0]: not a dotted module name");
  tiers_bad ("{\"prime\": {\"modules\": [\"a..b\"]}, " ONE_TIER "}", "prime.modules[0]");
  tiers_bad ("{\"prime\": {\"modules\": [\"1a\"]}, " ONE_TIER "}", "prime.modules[0]");
  tiers_bad ("{\"prime\": {\"modules\": [7]}, " ONE_TIER "}", "prime.modules[0]");
  tiers_bad ("{\"prime\": {\"plot\": 1}, " ONE_TIER "}", "prime.plot: expected true or false");
  tiers_bad ("{\"prime\": {\"min_available\": \"x\"}, " ONE_TIER "}", "min_available");
}
END_TEST

static void
tiers_bad (const char *text, const char *want)
{
  struct tiers t;
  capsule_error *err = NULL;
  ck_assert_int_eq (tiers_parse (text, "tiers.json", &t, &err), -1);
  ck_assert_msg (strstr (err->msg, want) != NULL, "\"%s\" lacks \"%s\"", err->msg, want);
  capsule_error_free (err);
}

START_TEST (test_tiers_bad)
{
  tiers_bad ("{", "invalid JSON");
  tiers_bad ("{\"tiers\": []}", "\"tiers\" must be an object");
  tiers_bad ("{\"tiers\": {\"1g\": {\"workspace\": \"1g\"}}}", "tiers.1g.memory: missing");
  tiers_bad ("{\"tiers\": {\"1g\": {\"memory\": \"lots\", \"workspace\": \"1g\"}}}",
             "tiers.1g.memory: expected a positive size");
  tiers_bad ("{\"tiers\": {\"1g\": {\"memory\": \"1k\", \"workspace\": \"1g\"}}}", "below 16m");
  tiers_bad (
      "{\"default\": \"9g\", \"tiers\": {\"1g\": {\"memory\": \"1g\", \"workspace\": \"1g\"}}}",
      "default: no tier \"9g\"");
}
END_TEST

START_TEST (test_pools)
{
  struct pools p = { .default_total = 64ULL << 30 };
  capsule_error *err = NULL;
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq (pools_charge (&p, "acme", 16ULL << 30, &err), 0);
  ck_assert_int_eq (pools_charge (&p, "acme", 1ULL << 30, &err), -1);
  ck_assert_str_eq (err->msg,
                    "tenant \"acme\" memory pool exhausted: 64g in use + 1g requested > 64g pool");
  capsule_error_free (err);
  err = NULL;
  ck_assert_uint_eq (pools_get (&p, "acme")->used, 64ULL << 30);
  ck_assert_int_eq (pools_charge (&p, "other", 64ULL << 30, &err), 0);
  pools_credit (&p, "acme", 16ULL << 30);
  ck_assert_int_eq (pools_charge (&p, "acme", 4ULL << 30, &err), 0);
  ck_assert_uint_eq (pools_get (&p, "acme")->used, 52ULL << 30);
  pools_credit (&p, "nobody", 1); /* harmless */
  pools_release (&p);
}
END_TEST

static void
size_is (uint64_t bytes, const char *want)
{
  char *s = format_size (bytes);
  ck_assert_str_eq (s, want);
  free (s);
}

START_TEST (test_format_size)
{
  size_is (1ULL << 30, "1g");
  size_is (3ULL << 29, "1.5g");
  size_is (160ULL << 20, "160m");
  size_is (1000, "1000");
}
END_TEST

START_TEST (test_line_reader)
{
  struct line_reader r = { .max = 16 };
  char *line;
  size_t len;
  line_reader_feed (&r, "{\"a\":1}\n{\"b\"", 12);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_OK);
  ck_assert_str_eq (line, "{\"a\":1}");
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_NONE);
  line_reader_feed (&r, ":2}\n", 4);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_OK);
  ck_assert_str_eq (line, "{\"b\":2}");
  /* an over-long line is reported once and skipped to its newline */
  line_reader_feed (&r, "0123456789abcdefghij", 20);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_TOO_LONG);
  line_reader_feed (&r, "more junk\nok\n", 13);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_OK);
  ck_assert_str_eq (line, "ok");
  line_reader_release (&r);
}
END_TEST

/* Many lines in one feed are taken without moving the buffer for each (the old reader moved
   the rest of the buffer down once per line: a flood of newlines cost seconds); a long line
   that arrives in pieces is found, and the reader's bytes stay bounded. */
START_TEST (test_line_reader_flood)
{
  struct line_reader r = { .max = 1 << 20 };
  static char flood[1 << 20];
  char *line;
  size_t len, lines = 0;
  memset (flood, '\n', sizeof flood);
  for (int round = 0; round < 8; round++)
    {
      line_reader_feed (&r, flood, sizeof flood);
      size_t bytes = 0;
      while (line_reader_next (&r, &line, &len) == LINE_OK)
        {
          bytes += len;
          lines++;
        }
      ck_assert_uint_eq (bytes, 0);
    }
  ck_assert_uint_eq (lines, 8u << 20);
  ck_assert_uint_le (r.b.cap, 2u << 20);
  line_reader_feed (&r, "abc", 3);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_NONE);
  line_reader_feed (&r, "def\nx", 5);
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_OK);
  ck_assert_str_eq (line, "abcdef");
  ck_assert_int_eq (line_reader_next (&r, &line, &len), LINE_NONE);
  line_reader_release (&r);
}
END_TEST

START_TEST (test_buf_consume)
{
  struct buf b = { 0 };
  buf_append (&b, "hello world", 11);
  buf_consume (&b, 6);
  ck_assert_uint_eq (buf_size (&b), 5);
  ck_assert_int_eq (memcmp (buf_bytes (&b), "world", 5), 0);
  buf_append (&b, "!", 1);
  ck_assert_str_eq (buf_bytes (&b), "world!");
  buf_consume (&b, 100);
  ck_assert_uint_eq (buf_size (&b), 0);
  buf_release (&b);
}
END_TEST

START_TEST (test_strmap)
{
  struct strmap m = { 0 };
  static char keys[5000][16];
  for (int i = 0; i < 5000; i++)
    {
      snprintf (keys[i], sizeof keys[i], "k%d", i);
      strmap_put (&m, keys[i], keys[i]);
    }
  ck_assert_uint_eq (m.n, 5000);
  for (int i = 0; i < 5000; i += 2)
    strmap_del (&m, keys[i]);
  ck_assert_uint_eq (m.n, 2500);
  for (int i = 0; i < 5000; i++)
    ck_assert_ptr_eq (strmap_get (&m, keys[i]), i % 2 ? keys[i] : NULL);
  strmap_release (&m);
}
END_TEST

START_TEST (test_hex_strings)
{
  char *h = hex_encode_string ("\xff\xfe.bin");
  char *back = hex_decode_string (h);
  ck_assert_str_eq (h, "fffe2e62696e");
  ck_assert_str_eq (back, "\xff\xfe.bin");
  ck_assert_ptr_null (hex_decode_string ("0"));
  ck_assert_ptr_null (hex_decode_string ("zz"));
  ck_assert_ptr_null (hex_decode_string ("6100")); /* a NUL byte */
  free (h);
  free (back);
}
END_TEST

/* The registry finds a file by id and by path at once, drops what a rescan no longer sees, and
   holds at most FILES_MAX files. */
START_TEST (test_files_registry)
{
  struct files fs = { 0 };
  struct cfile *a = files_register (&fs, "a.txt", 1, true);
  struct cfile *b = files_register (&fs, "dir/b.txt", 2, false);
  ck_assert_ptr_eq (files_find (&fs, a->id), a);
  ck_assert_ptr_eq (files_find_path (&fs, "dir/b.txt"), b);
  ck_assert_ptr_eq (files_register (&fs, "a.txt", 5, false), a);
  ck_assert_uint_eq (a->bytes, 5);
  files_forget (&fs, a);
  ck_assert_ptr_null (files_find_path (&fs, "a.txt"));
  ck_assert_uint_eq (fs.n, 1);
  for (int i = 0; i < FILES_MAX + 10; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "f%d", i);
      files_register (&fs, name, 0, false);
    }
  ck_assert_uint_eq (fs.n, FILES_MAX);
  files_release (&fs);
}
END_TEST

START_TEST (test_rpc_texts)
{
  struct rpc_error *e = rpc_error_new (404, "not_found", "container_id", "no container %s", "x");
  char *t = rpc_error_text ("7", e);
  ck_assert_str_eq (t, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32000,\"message\":\"no "
                       "container x\",\"data\":{\"message\":\"no container x\",\"type\":"
                       "\"invalid_request_error\",\"param\":\"container_id\",\"code\":"
                       "\"not_found\",\"http_status\":404}}}\n");
  free (t);
  rpc_error_free (e);
  e = rpc_error_new (429, "memory_pool_exhausted", NULL, "full");
  ck_assert_str_eq (e->type, "rate_limit_error");
  rpc_error_free (e);
  t = rpc_response_text ("\"a\"", "{}");
  ck_assert_str_eq (t, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}\n");
  free (t);
}
END_TEST

START_TEST (test_rpc_params)
{
  static const struct param_spec spec[]
      = { { "name", P_STRING, true }, { "limit", P_INT, false }, { NULL, 0, false } };
  capsule_error *err = NULL;
  json_value *v = json_parse ("{\"name\": \"x\", \"limit\": 3}", "t", &err);
  struct rpc_error *e;
  ck_assert_ptr_null (rpc_check_params (v, spec));
  json_free (v);
  v = json_parse ("{\"limit\": 3}", "t", &err);
  e = rpc_check_params (v, spec);
  ck_assert_str_eq (e->param, "name");
  ck_assert_str_eq (e->err_code, "missing_required_parameter");
  rpc_error_free (e);
  json_free (v);
  v = json_parse ("{\"name\": 1}", "t", &err);
  e = rpc_check_params (v, spec);
  ck_assert_str_eq (e->message, "'name' must be a string, not a number");
  rpc_error_free (e);
  json_free (v);
  v = json_parse ("{\"name\": \"x\", \"colour\": 1}", "t", &err);
  e = rpc_check_params (v, spec);
  ck_assert_str_eq (e->err_code, "unknown_parameter");
  rpc_error_free (e);
  json_free (v);
}
END_TEST

START_TEST (test_base64)
{
  const char *cases[][2] = { { "", "" },        { "f", "Zg==" },        { "fo", "Zm8=" },
                             { "foo", "Zm9v" }, { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" } };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      char *enc = base64_encode (cases[i][0], strlen (cases[i][0]));
      unsigned char *dec;
      size_t n;
      ck_assert_str_eq (enc, cases[i][1]);
      ck_assert_int_eq (base64_decode (enc, strlen (enc), &dec, &n), 0);
      ck_assert_uint_eq (n, strlen (cases[i][0]));
      ck_assert_int_eq (memcmp (dec, cases[i][0], n), 0);
      free (enc);
      free (dec);
    }
  {
    unsigned char *dec;
    size_t n;
    ck_assert_int_eq (base64_decode ("Zm9", 3, &dec, &n), -1);
    ck_assert_int_eq (base64_decode ("Zm9v!A==", 8, &dec, &n), -1);
    ck_assert_int_eq (base64_decode ("Zg==Zg==", 8, &dec, &n), -1);
    ck_assert_int_eq (base64_decode ("Z===", 4, &dec, &n), -1);
  }
}
END_TEST

START_TEST (test_ids)
{
  char *id = shim_new_id ("cntr_");
  char *other = shim_new_id ("cntr_");
  ck_assert (shim_id_valid (id, "cntr_"));
  ck_assert_str_ne (id, other);
  ck_assert (!shim_id_valid (id, "cfile_"));
  ck_assert (!shim_id_valid ("cntr_../../etc", "cntr_"));
  free (id);
  free (other);
}
END_TEST

static void
path_ok (const char *in, const char *want)
{
  char *rel = NULL;
  struct rpc_error *e = files_normalise (in, &rel);
  ck_assert_msg (e == NULL, "%s: %s", in, e ? e->message : "");
  ck_assert_str_eq (rel, want);
  free (rel);
}

static void
path_bad (const char *in)
{
  char *rel = NULL;
  struct rpc_error *e = files_normalise (in, &rel);
  ck_assert_msg (e != NULL, "accepted \"%s\" as \"%s\"", in, rel);
  ck_assert_str_eq (e->param, "path");
  rpc_error_free (e);
}

START_TEST (test_paths)
{
  char *long_name = xmalloc0 (300), *long_path = xmalloc0 (1100);
  path_ok ("a.csv", "a.csv");
  path_ok ("dir/sub/a.csv", "dir/sub/a.csv");
  path_ok ("/mnt/data/x/y", "x/y");
  path_ok ("..a/b..", "..a/b..");
  path_bad ("");
  path_bad ("/etc/passwd");
  path_bad ("/mnt/data");
  path_bad ("/mnt/data/");
  path_bad ("../x");
  path_bad ("a/../../x");
  path_bad ("a/./b");
  path_bad ("a//b");
  path_bad ("a/");
  path_bad ("a\nb");
  path_bad ("a\tb");
  memset (long_name, 'n', 299);
  path_bad (long_name);
  for (int i = 0; i < 1099; i++)
    long_path[i] = i % 2 ? '/' : 'd';
  path_bad (long_path);
  free (long_name);
  free (long_path);
}
END_TEST

/* A worker's session lock goes with the worker alone.  A container the worker made waits for its
 * start with the worker's fds until it execs: killed there, the worker must not leave the session
 * locked by that child (the stop worker that removes the container would wait for ever). */
START_TEST (test_session_lock_not_inherited)
{
  char dir[] = "/tmp/capsule-unit-lock.XXXXXX";
  int up[2], hold[2], status;
  pid_t worker, child = 0;
  char *lockfile;
  ck_assert_ptr_nonnull (mkdtemp (dir));
  lockfile = xasprintf ("%s/%s", dir, "lock");
  ck_assert_int_eq (session_lock_try (lockfile), -1); /* no file: nothing to wait for */
  ck_assert_int_eq (pipe (up), 0);
  ck_assert_int_eq (pipe (hold), 0);
  prctl (PR_SET_CHILD_SUBREAPER, 1); /* the worker's child comes to us when it is killed */
  worker = fork ();
  ck_assert_int_ge (worker, 0);
  if (worker == 0)
    {
      pid_t c;
      (void)session_lock_take (lockfile);
      c = fork (); /* a child that outlives it, as a created container does */
      if (c == 0)
        {
          char b;
          close (hold[1]);
          (void)!read (hold[0], &b, 1);
          _exit (0);
        }
      (void)!write (up[1], &c, sizeof c);
      (void)!read (hold[0], &c, 1); /* stays until told */
      _exit (0);
    }
  ck_assert_int_eq (read (up[0], &child, sizeof child), (ssize_t)sizeof child);
  ck_assert_int_eq (session_lock_try (lockfile), 0); /* the worker holds it */
  kill (worker, SIGKILL);
  ck_assert_int_eq (waitpid (worker, &status, 0), worker);
  ck_assert_int_eq (kill (child, 0), 0);             /* its child lives on ... */
  ck_assert_int_eq (session_lock_try (lockfile), 1); /* ... and does not hold the lock */
  close (hold[1]);
  ck_assert_int_eq (waitpid (child, &status, 0), child);
  close (hold[0]);
  close (up[0]);
  close (up[1]);
  unlink (lockfile);
  rmdir (dir);
  free (lockfile);
}
END_TEST

static int
stuck_fn (void *arg, capsule_error **err)
{
  (void)arg;
  (void)err;
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* should the test fail: nothing of it left behind */
  for (;;)
    pause (); /* a worker that never ends by itself */
  return 0;
}

static void
stuck_done (struct worker *w, bool ok, capsule_error *err)
{
  char **said = w->data;
  *said = xstrdup (ok ? "ok" : err->msg);
}

/* The loop waits for a worker at shutdown (it cannot run the worker's deadline timer then):
 * the wait ends at the deadline, the worker killed, rather than never. */
START_TEST (test_worker_wait_keeps_the_deadline)
{
  struct loop l;
  struct worker w;
  capsule_error *err = NULL;
  char *said = NULL;
  ck_assert_int_eq (loop_init (&l, &err), 0);
  worker_init (&w, &l, stuck_done, &said);
  ck_assert_int_eq (worker_start (&w, "stuck", stuck_fn, NULL, 300, &err), 0);
  worker_wait (&w);
  ck_assert (!worker_running (&w));
  ck_assert_ptr_nonnull (said);
  ck_assert_str_eq (said, "the stuck worker was killed by signal 9");
  free (said);
  loop_release (&l);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("shim");
  TCase *tc = tcase_create ("units");
  tcase_add_test (tc, test_tiers_parse);
  tcase_add_test (tc, test_tiers_shipped);
  tcase_add_test (tc, test_tiers_bad);
  tcase_add_test (tc, test_tiers_prime);
  tcase_add_test (tc, test_pools);
  tcase_add_test (tc, test_format_size);
  tcase_add_test (tc, test_line_reader);
  tcase_add_test (tc, test_line_reader_flood);
  tcase_add_test (tc, test_buf_consume);
  tcase_add_test (tc, test_strmap);
  tcase_add_test (tc, test_hex_strings);
  tcase_add_test (tc, test_files_registry);
  tcase_add_test (tc, test_rpc_texts);
  tcase_add_test (tc, test_rpc_params);
  tcase_add_test (tc, test_base64);
  tcase_add_test (tc, test_ids);
  tcase_add_test (tc, test_paths);
  tcase_add_test (tc, test_session_lock_not_inherited);
  tcase_add_test (tc, test_worker_wait_keeps_the_deadline);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
