#!/bin/bash
# The guest suite under systemd (scripts/vm-test with VM_SYSTEMD=1 boots systemd as init and runs
# this as a service): every tests/vm/systemd/test-*.sh (or those named), each bounded in time.
# Prints each file's checks and, last, "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../../.." && pwd)
export CAPSULE=${CAPSULE:-$TOP/build/runtime/capsule}
passed=0 failed=0
[ "$(cat /proc/1/comm)" = systemd ] || { echo "not ok - PID 1 is not systemd"; echo "0 passed, 1 failed"; exit 1; }
files=()
for t in "$@"; do [ -f "$t" ] && files+=("$t") || files+=("$HERE/$t"); done
[ ${#files[@]} -gt 0 ] || files=("$HERE"/test-*.sh)
for t in "${files[@]}"; do
  echo "# $(basename "$t")"
  start=$(date +%s)
  out=$(timeout --kill-after=30 1500 bash "$t" 2>&1)
  rc=$?
  echo "$out"
  echo "# $(basename "$t"): $(($(date +%s) - start)) s"
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "not ok - $(basename "$t") ended without a summary (exit $rc)"
    failed=$((failed + 1))
    continue
  fi
  set -- $line
  passed=$((passed + $1))
  failed=$((failed + $3))
  if [ $rc != 0 ] && [ "$3" = 0 ]; then
    echo "not ok - $(basename "$t") exited $rc"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
