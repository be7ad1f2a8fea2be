#!/bin/bash
# The install tests: capsule under a prefix of its own, and the Debian package.  Prints each
# file's checks and "install: N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0
for t in "$HERE"/test-*.sh; do
  echo "# $(basename "$t")"
  out=$(timeout 1200 bash "$t" 2>&1)
  rc=$?
  echo "$out"
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "not ok - $(basename "$t") ended without a summary (exit $rc)"
    failed=$((failed + 1))
    continue
  fi
  set -- $line
  passed=$((passed + $1)) failed=$((failed + $3))
  [ $rc = 0 ] || [ "$3" != 0 ] || { echo "not ok - $(basename "$t") exited $rc"; failed=$((failed + 1)); }
done
echo "install: $passed passed, $failed failed"
[ $failed = 0 ]
