#!/bin/bash
# One cgroup per container in a real cgroup v2 hierarchy: born there (CLONE_INTO_CGROUP), the OCI
# resources in its interface files, stats, freezing, teardown of a fork bomb, and where a
# container goes when the bundle names no cgroup.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }

# --- one container through the knobs and the lifecycle
id=v2-knobs
in_parent "$B" $id
edit_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 32},
  "cpu": {"shares": 512, "quota": 20000, "period": 100000}}'
set_args "$B" sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max; exec sleep 600'
# strace (scripts/setup installs it; the guest runs on the host's root) proves where clone3 puts it
command -v strace >/dev/null || fail "strace is installed (scripts/setup)"
tracer=(strace -o "$WORK/clone3.trace" -e trace=clone3)
"${tracer[@]}" "$CAPSULE" --root "$ROOT" create --bundle "$B" --pid-file "$WORK/pid" $id > "$WORK/out" 2>&1
check_eq "create succeeds" "0" "$?"
pid=$(cat "$WORK/pid" 2>/dev/null)
check_eq "right after create the process is in its own cgroup under the delegated parent" \
  "0::$PARENT/capsule-$id" "$(cat /proc/$pid/cgroup 2>&1)"
check_match "clone3 creates it there (CLONE_INTO_CGROUP)" 'CLONE_INTO_CGROUP' "$(cat "$WORK/clone3.trace" 2>&1)"
check_eq "cgroup.procs of the container cgroup lists it" "$pid" "$(knob $id cgroup.procs)"
check_match "the runtime handed memory, pids and cpu down the delegated parent" \
  '(memory.*pids|pids.*memory)' "$(cat $CG$PARENT/cgroup.subtree_control)"
check_eq "memory.max from linux.resources.memory.limit" "67108864" "$(knob $id memory.max)"
check_eq "memory.swap.max is 0 (no swap figure: no swap)" "0" "$(knob $id memory.swap.max)"
check_eq "memory.oom.group is 1 (an OOM kills the whole sandbox)" "1" "$(knob $id memory.oom.group)"
check_eq "pids.max from linux.resources.pids.limit" "32" "$(knob $id pids.max)"
check_eq "cpu.max from cpu.quota and cpu.period" "20000 100000" "$(knob $id cpu.max)"
check_eq "cpu.weight from cpu.shares 512 (runc's mapping)" "20" "$(knob $id cpu.weight)"

cap start $id
check_eq "start succeeds" "0" "$?"
wait_for 60 grep -q '^[0-9]' "$WORK/out"
# the shell has exec'd sleep (cat gone): the pids figure below is then exactly 1
is_sleep() { [ "$(cat /proc/$pid/comm 2>/dev/null)" = sleep ]; }
wait_for 60 is_sleep
check_eq "inside, its cgroup namespace is rooted at its own cgroup and shows its limit" \
  "0::/ 67108864" "$(echo $(cat "$WORK/out"))"

stats=$(cap events --stats $id 2>&1)
check_eq "events --stats: memory.current is counted" "True" \
  "$(json_get "$stats" 'j["data"]["memory"]["usage"]["usage"] > 0')"
check_eq "events --stats: memory.peak and the limit" "True 67108864" \
  "$(json_get "$stats" 'str(j["data"]["memory"]["usage"]["max"] >= j["data"]["memory"]["usage"]["usage"]) + " " + str(j["data"]["memory"]["usage"]["limit"])')"
check_eq "events --stats: pids (sh exec'd sleep: 1) and pids.max" "1 32" \
  "$(json_get "$stats" 'str(j["data"]["pids"]["current"]) + " " + str(j["data"]["pids"]["limit"])')"
check_eq "events --stats: cpu usage from cpu.stat" "True" \
  "$(json_get "$stats" 'j["data"]["cpu"]["usage"]["total"] > 0')"

cap pause $id
check_eq "pause writes cgroup.freeze" "1" "$(knob $id cgroup.freeze)"
check_match "pause waits until cgroup.events says frozen" 'frozen 1' "$(knob $id cgroup.events)"
check_match "state says paused" '"status": "paused"' "$(cap state $id)"
cap resume $id
check_match "resume thaws it" 'frozen 0' "$(knob $id cgroup.events)"
check_match "state says running again" '"status": "running"' "$(cap state $id)"

cap delete --force $id
check_eq "delete --force of a running container removes its cgroup" "" "$(ls -d "$(cgdir $id)" 2>/dev/null)"
check_eq "and its process is gone" "" "$(ls -d /proc/$pid 2>/dev/null)"

# --- a real fork bomb held by pids.max, then killed through cgroup.kill and removed
id=v2-bomb
edit_config "$B" 'c["linux"]["resources"] = {"pids": {"limit": 32}}'
in_parent "$B" $id
set_args "$B" sh -c 'b() { b | b & }; b; exec sleep 600'
cap run --detach --bundle "$B" $id > /dev/null 2>&1
check_eq "the bomb starts" "0" "$?"
wait_for 60 grep -q '^max [1-9]' "$(cgdir $id)/pids.events"
check_match "the bomb hits pids.max (pids.events max > 0)" '^max [1-9]' "$(cat "$(cgdir $id)/pids.events" 2>&1)"
n=$(cat "$(cgdir $id)/pids.current" 2>/dev/null)
check_match "pids.current is held at pids.max 32 ($n)" '^([1-9]|[12][0-9]|3[0-2])$' "$n"
# a container given its cgroup may make cgroups below it: teardown must take those along
mkdir -p "$(cgdir $id)/inner/deeper"
head -1 "$(cgdir $id)/cgroup.procs" > "$(cgdir $id)/inner/deeper/cgroup.procs"
check_match "a bomb process moved into a nested cgroup" '^[0-9]+' "$(cat "$(cgdir $id)/inner/deeper/cgroup.procs")"
t0=$(date +%s%N)
cap delete --force $id
check_eq "delete --force of the bomb succeeds" "0" "$?"
echo "# delete --force of the bomb took $((($(date +%s%N) - t0) / 1000000)) ms"
check_eq "nothing left of the bomb's cgroup" "" "$(ls -d "$(cgdir $id)" 2>/dev/null)"
check_eq "no bomb process left anywhere" "" "$(grep -l "^0::$PARENT/capsule-$id" /proc/[0-9]*/cgroup 2>/dev/null)"
check_eq "no state left" "" "$(ls "$ROOT")"

# --- no cgroupsPath: under the caller's own cgroup as capsule-ID
id=v2-default
make_bundle "$B"
set_args "$B" cat /proc/self/cgroup
run_in "$B" $id
check_eq "from a cgroup that holds processes, the default placement fails" "1" "$RC"
check_match "and says why: the no-internal-process rule" \
  "cgroup v2: $CG$PARENT/runner holds processes, so it cannot hand controllers to child cgroups \(the no-internal-process rule\)" "$OUT"
check_eq "the failed create leaves no state" "" "$(ls "$ROOT")"
check_eq "nor a cgroup" "" "$(ls -d $CG$PARENT/runner/capsule-$id 2>/dev/null)"

# the root cgroup is exempt from the rule: a caller there gets /capsule-ID
OUT=$(bash -c "echo \$\$ > $CG/cgroup.procs && exec \"$CAPSULE\" --root \"$ROOT\" run --keep --bundle \"$B\" $id" 2>&1)
RC=$?
check_eq "from the root cgroup the default placement works" "0 0::/" "$RC $OUT"
check_match "the container's cgroup was /capsule-ID" "\"cgroupPath\": *\"/capsule-$id\"" "$(cat "$ROOT/$id/state.json" 2>&1)"
cap delete $id
check_eq "delete removes /capsule-ID" "" "$(ls -d $CG/capsule-$id 2>/dev/null)"

# --- CVE-2024-21626: the cgroup directory is open while the init prepares; no descriptor it
# holds may become the process's cwd (that cwd is the host's tree: `..` climbs to its root)
host_root=$(stat -c %d:%i /)
escaped=""
for fd in 3 4 5 6 7 8 9 10; do
  id=v2-cwd$fd
  in_parent "$B" $id
  edit_config "$B" "c['process']['cwd'] = '/proc/self/fd/$fd'; c['linux'].pop('resources', None)"
  set_args "$B" sh -c 'stat -c %d:%i ../../../../../../../..'
  out=$("$CAPSULE" --root "$ROOT" run --bundle "$B" $id 2>&1)
  [ "$(echo "$out" | tail -1)" = "$host_root" ] && escaped="$escaped fd$fd"
  cap delete --force $id >/dev/null 2>&1
done
check_eq "no cwd of /proc/self/fd/N reaches the host's root" "" "$escaped"
edit_config "$B" "c['process']['cwd'] = '/'"

finish
