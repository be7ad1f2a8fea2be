/* The main() every unit test file shares: run the suite, exit non-zero on any failure. */
#pragma once

#include <check.h>
#include <stdlib.h>

static inline int
run_suite (Suite *s)
{
  SRunner *sr = srunner_create (s);
  int failed;
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
