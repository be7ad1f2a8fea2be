#!/bin/bash
# Run every tests/runtime/test-*.sh (or those named) under capsule-init as a child subreaper, so
# processes that leave a container are reaped as a container engine's shim would; print each
# file's checks and the total as "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
export CAPSULE=${CAPSULE:-$BUILD/runtime/capsule}
INIT=${CAPSULE_INIT:-$BUILD/runtime/capsule-init}
passed=0 failed=0 skipped=0
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$HERE"/test-*.sh)
for t in "${files[@]}"; do
  echo "# $(basename "$t")"
  # every file bounded: one that hangs fails and the rest still run (TERM first: its trap
  # deletes its containers)
  out=$(timeout -k 20 "${TEST_FILE_TIMEOUT:-900}" "$INIT" -s -- bash "$t" 2>&1)
  rc=$?
  echo "$out"
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    echo "not ok - $(basename "$t") did not end within ${TEST_FILE_TIMEOUT:-900} s"
    failed=$((failed + 1))
    continue
  fi
  if [ $rc = 77 ]; then
    skipped=$((skipped + 1))
    continue
  fi
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "not ok - $(basename "$t") ended without a summary (exit $rc)"
    failed=$((failed + 1))
    continue
  fi
  p=${line%% passed*}
  f=${line#*, }
  f=${f%% failed*}
  passed=$((passed + p))
  failed=$((failed + f))
  if [ $rc != 0 ] && [ "$f" = 0 ]; then
    echo "not ok - $(basename "$t") exited $rc"
    failed=$((failed + 1))
  fi
done
echo "runtime: $passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
