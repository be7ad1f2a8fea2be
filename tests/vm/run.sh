#!/bin/bash
# The guest suite: run every tests/vm/test-*.sh (or those named) in a real cgroup v2 hierarchy,
# as scripts/vm-test does inside its QEMU guest.  Prints each file's checks and, last,
# "N passed, N failed".
#
# The runner makes a delegated subtree the way a service manager would: the controllers are on
# at the root, /capsule-tests holds no process, and the runner itself lives in the leaf
# /capsule-tests/runner.  Tests put containers under /capsule-tests (an absolute cgroupsPath, as
# podman and containerd pass); each file runs under capsule-init -s, the subreaper an engine's
# shim would be.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
export CAPSULE=${CAPSULE:-$TOP/build/runtime/capsule}
INIT=${CAPSULE_INIT:-$(dirname "$CAPSULE")/capsule-init}
export VM_CGROUP_PARENT=/capsule-tests
CG=/sys/fs/cgroup
# one file's bound (the slowest takes about 130 s on a loaded TCG guest)
FILE_TIMEOUT=${VM_FILE_TIMEOUT:-420}

bail() {
  echo "not ok - $*"
  echo "0 passed, 1 failed"
  exit 1
}

[ "$(id -u)" = 0 ] || bail "the guest suite runs as root"
[ "$(stat -fc %T $CG)" = cgroup2fs ] || bail "$CG is not a cgroup2 mount (run it through scripts/vm-test)"
[ -x "$CAPSULE" ] && [ -x "$INIT" ] || bail "no capsule or capsule-init at $(dirname "$CAPSULE")"
for c in memory pids cpu; do
  grep -qw $c $CG/cgroup.controllers || bail "the $c controller is not available in $CG"
  grep -qw $c $CG/cgroup.subtree_control || echo "+$c" > $CG/cgroup.subtree_control ||
    bail "cannot enable $c at the root"
done
mkdir -p $CG$VM_CGROUP_PARENT/runner || bail "cannot create $VM_CGROUP_PARENT/runner"
echo $$ > $CG$VM_CGROUP_PARENT/runner/cgroup.procs || bail "cannot move the runner into $VM_CGROUP_PARENT/runner"

passed=0 failed=0
files=()
for t in "$@"; do [ -f "$t" ] && files+=("$t") || files+=("$HERE/$t"); done
[ ${#files[@]} -gt 0 ] || files=("$HERE"/test-*.sh)
for t in "${files[@]}"; do
  echo "# $(basename "$t")"
  start=$(date +%s)
  # the checks go out as they come (a guest that dies or times out still shows where it was),
  # and a file that hangs is ended and reported while the others still run
  log=$(mktemp)
  timeout --kill-after=20 "$FILE_TIMEOUT" "$INIT" -s -- bash "$t" 2>&1 < /dev/null | tee "$log"
  rc=${PIPESTATUS[0]}
  echo "# $(basename "$t"): $(($(date +%s) - start)) s"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  rm -f "$log"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "not ok - $(basename "$t") did not end within ${FILE_TIMEOUT}s"
    failed=$((failed + 1))
    continue
  fi
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
left=$(find $CG$VM_CGROUP_PARENT -mindepth 1 -type d ! -path "*/runner" 2>/dev/null)
if [ -n "$left" ]; then
  echo "not ok - cgroups left behind under $VM_CGROUP_PARENT: $left"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ $failed = 0 ]
