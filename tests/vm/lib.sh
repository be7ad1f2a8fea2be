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

. "$(dirname "${BASH_SOURCE[0]}")/helpers.sh"

# start_shim SECONDS ARGS...: $SHIM on $WORK/shim.sock with ARGS, in the delegated cgroup $CG$SVC
# (or in the leaf "shim" a previous shim made there: the service cgroup gave its controllers to
# its children and may hold no process), its log appended to $WORK/shim.log; SHIM_PID is its pid;
# waits up to SECONDS for its socket.  stop_shim SIGNAL ends it.
SHIM_PID=
start_shim() {
  local wait=$1 cg=$CG$SVC
  shift
  [ -d "$cg/shim" ] && cg=$cg/shim
  (echo $BASHPID > "$cg/cgroup.procs" && exec "$SHIM" --socket "$WORK/shim.sock" "$@") 2>> "$WORK/shim.log" &
  SHIM_PID=$!
  wait_for "$wait" test -S "$WORK/shim.sock"
}
stop_shim() {
  [ -n "$SHIM_PID" ] && kill "$1" $SHIM_PID 2>/dev/null && wait $SHIM_PID 2>/dev/null
  rm -f "$WORK/shim.sock"
}
