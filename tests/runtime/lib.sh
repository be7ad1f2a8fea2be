# capsule integration tests: shared helpers.  Sourced by each tests/runtime/test-*.sh.
#
# Every test runs real containers as root through the CLI ($CAPSULE, default build/runtime/capsule)
# with a private --root, on a rootfs made of the host's /usr bound read-only (no download).
# Each check prints "ok - NAME" or "not ok - NAME: why"; the file ends with "N passed, N failed".
set -u

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CAPSULE=${CAPSULE:-$TOP/build/runtime/capsule}
PY=/usr/bin/python3
PASSED=0
FAILED=0
WORK=$(mktemp -d /tmp/capsule-test.XXXXXX)
chmod 755 "$WORK" # the container root (uid 100000 on the host) must reach the rootfs
ROOT=$WORK/state
export CAPSULE_POLICY_DIR=${CAPSULE_POLICY_DIR:-$TOP/policies}

skip_all() {
  echo "SKIP: $*"
  exit 77
}

[ "$(id -u)" = 0 ] || skip_all "needs root (namespaces, cgroups, mounts)"
[ -x "$CAPSULE" ] || { echo "not ok - capsule binary missing at $CAPSULE (build first)"; exit 1; }
[ -x "$PY" ] || { echo "not ok - $PY missing (scripts/setup installs it)"; exit 1; }

cleanup() {
  local id
  for id in $("$CAPSULE" --root "$ROOT" list -q 2>/dev/null); do
    "$CAPSULE" --root "$ROOT" delete --force "$id" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $1${2:+: $2}"; }

# check NAME EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; return 1; fi
}
# check_match NAME REGEX TEXT
check_match() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then pass "$1"; else fail "$1" "[$3] does not match /$2/"; fi
}
# check_ne NAME UNWANTED ACTUAL: fixed strings, no pattern
check_ne() {
  if [ "$2" != "$3" ]; then pass "$1"; else fail "$1" "got [$3], which it must not be"; fi
}
# wait_file SECONDS FILE: until FILE exists (an event the test's process makes), bounded
wait_file() {
  local i
  for i in $(seq $(($1 * 20))); do
    [ -e "$2" ] && return 0
    sleep 0.05
  done
  return 1
}
check_nomatch() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then fail "$1" "[$3] matches /$2/"; else pass "$1"; fi
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

. "$TOP/scripts/host-bundle.sh"
make_bundle() { host_bundle "$@"; }
edit_config() { bundle_edit "$@"; }
set_args() { bundle_args "$@"; }

# run_in DIR ID: capsule run, output (stdout+stderr) in $OUT, exit status in $RC
run_in() {
  OUT=$("$CAPSULE" --root "$ROOT" run --bundle "$1" "$2" 2>&1)
  RC=$?
}

cap() { "$CAPSULE" --root "$ROOT" "$@"; }

# Cgroup directories a container id left behind (v1: every controller; v2: unified).
leftover_cgroups() {
  find /sys/fs/cgroup -maxdepth 6 -type d -name "capsule-$1" 2>/dev/null
}

# cg_file ID FILE: FILE (pids.events, memory.events…) of container ID's cgroup, whichever
# hierarchy holds it (v1: one directory a controller; v2: the unified one)
cg_file() {
  local d
  for d in $(leftover_cgroups "$1"); do
    [ -f "$d/$2" ] && { echo "$d/$2"; return 0; }
  done
  echo "/nonexistent/$2"
}

# own_cgroup: this shell's cgroup (v1: the pids hierarchy's; v2: the unified one), no trailing /
own_cgroup() {
  local c
  c=$(awk -F: '$2 == "pids" {print $3}' /proc/self/cgroup)
  [ -n "$c" ] || c=$(awk -F: '$1 == "0" && $2 == "" {print $3}' /proc/self/cgroup)
  echo "${c%/}"
}

# proc_cgroup PID: the same for another process
proc_cgroup() {
  local c
  c=$(awk -F: '$2 == "pids" {print $3}' "/proc/$1/cgroup" 2>/dev/null)
  [ -n "$c" ] || c=$(awk -F: '$1 == "0" && $2 == "" {print $3}' "/proc/$1/cgroup" 2>/dev/null)
  echo "${c%/}"
}
