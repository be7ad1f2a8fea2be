#!/bin/bash
# capsule-shim on cgroup v2, as under systemd with Delegate=yes: started in a cgroup of its own
# that holds processes, it moves itself into a leaf ("shim") and puts each sandbox beside it,
# with the tier's limits; an OOM in a cell is reported and the session goes on.
. "$(dirname "$0")/lib.sh"

SHIM=$(dirname "$CAPSULE")/../shim/capsule-shim
CTL=$(dirname "$CAPSULE")/../shim/capsulectl
[ -x "$SHIM" ] && [ -x "$CTL" ] || skip_all "no capsule-shim or capsulectl in the build"
SVC=$PARENT/shim-service
mkdir -p "$CG$SVC"
cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "1g",
 "tiers": {"1g": {"memory": "192m", "workspace": "16m", "tmp": "16m", "pids": 48, "cpu_shares": 1536}}}
JSON
# the service's cgroup, as systemd would make it: the shim starts inside it
(echo $BASHPID > "$CG$SVC/cgroup.procs" && exec "$SHIM" --socket "$WORK/shim.sock" \
  --state-dir "$WORK/state" --tiers "$WORK/tiers.json" --warm 0) 2> "$WORK/shim.log" &
SHIM_PID=$!
trap 'kill $SHIM_PID 2>/dev/null; wait $SHIM_PID 2>/dev/null; rmdir "$CG$SVC/shim" "$CG$SVC" 2>/dev/null; cleanup' EXIT
wait_for 60 test -S "$WORK/shim.sock"
check_eq "the shim moved itself into the leaf of its delegated cgroup" "0::$SVC/shim" "$(cat /proc/$SHIM_PID/cgroup)"
ctl() { "$CTL" --socket "$WORK/shim.sock" "$@"; }

cid=$(ctl create --name v2 | cut -f1)
check_match "a session starts on cgroup v2" '^cntr_[0-9a-f]{32}$' "$cid"
check_eq "its sandbox's cgroup sits beside the shim's leaf" "yes" "$([ -d "$CG$SVC/capsule-$cid" ] && echo yes)"
check_eq "with the tier's memory.max" "201326592" "$(cat "$CG$SVC/capsule-$cid/memory.max" 2>/dev/null)"
check_eq "the tier's pids.max, from the shim's tiers file" "48" "$(cat "$CG$SVC/capsule-$cid/pids.max" 2>/dev/null)"
check_eq "the tier's cpu_shares 1536 as cpu.weight" "$(( 1 + (1536 - 2) * 9999 / 262142 ))" "$(cat "$CG$SVC/capsule-$cid/cpu.weight" 2>/dev/null)"
check_eq "memory.swap.max 0, memory.oom.group 1" "0 1" "$(cat "$CG$SVC/capsule-$cid/memory.swap.max" "$CG$SVC/capsule-$cid/memory.oom.group" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
check_eq "a cell runs" "42" "$(ctl exec "$cid" 'x = 40; x + 2')"
OUT=$(ctl --json exec "$cid" 'b = [bytearray(1 << 20) for i in range(400)]' 2>&1)
check_match "a cell past the memory limit is reported as oom" '"status": "oom"' "$OUT"
check_match "naming the tier's limit" 'killed: out of memory \(limit 192m\)' "$OUT"
check_eq "the session goes on with a fresh interpreter" "2" "$(ctl exec "$cid" '1 + 1')"
ctl rm "$cid" >/dev/null
# the teardown runs in a worker after the answer
wait_for 120 test ! -d "$CG$SVC/capsule-$cid"
check_eq "delete removes the sandbox's cgroup" "" "$(ls -d "$CG$SVC"/capsule-* 2>/dev/null)"
finish
