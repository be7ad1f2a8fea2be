# Guest suite helpers, on top of tests/runtime/lib.sh (the same checks, bundles and cleanup).
# Sourced by each tests/vm/test-*.sh; tests/vm/run.sh has made the delegated parent.
. "$(dirname "${BASH_SOURCE[0]}")/../runtime/lib.sh"

CG=/sys/fs/cgroup
PARENT=${VM_CGROUP_PARENT:-/capsule-tests}
[ "$(stat -fc %T $CG 2>/dev/null)" = cgroup2fs ] || skip_all "$CG is not cgroup2 (scripts/vm-test runs this suite)"
[ -d "$CG$PARENT" ] || skip_all "no delegated parent $PARENT (tests/vm/run.sh makes it)"

# cgdir ID: the host path of container ID's cgroup under the delegated parent
cgdir() { echo "$CG$PARENT/capsule-$1"; }

# in_parent DIR ID: put container ID's cgroup under the delegated parent
in_parent() { edit_config "$1" "c['linux']['cgroupsPath'] = '$PARENT/capsule-$2'"; }

# knob ID FILE: one interface file of container ID's cgroup, on one line
knob() { tr '\n' ' ' < "$(cgdir "$1")/$2" 2>/dev/null | sed 's/ $//'; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds (code under TCG runs 25-85x slower)
wait_for() {
  local n=$(($1 * 10))
  shift
  while [ $n -gt 0 ]; do
    "$@" && return 0
    sleep 0.1
    n=$((n - 1))
  done
  return 1
}

# json_get JSON PYEXPR: evaluate PYEXPR with j = the parsed JSON
json_get() {
  /usr/bin/python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}
