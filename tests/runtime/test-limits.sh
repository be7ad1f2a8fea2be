#!/bin/bash
# Resource limits through cgroups: memory (OOM kill, reported), pids (fork bomb), cpu.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }

edit_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}'
set_args "$B" "$PY" -c 'x = [bytearray(1 << 20) for i in range(512)]; print("survived")'
OUT=$(cap run --keep --bundle "$B" lim-oom 2>&1)
RC=$?
check_eq "a memory hog is killed (exit 137)" "137" "$RC"
check_nomatch "the memory hog did not survive" 'survived' "$OUT"
check_match "the OOM kill is reported with the limit" 'killed: out of memory \(limit 64.0 MiB\)' "$OUT"
check_match "state says oomKilled" '"oomKilled": true' "$(cap state lim-oom)"
check_match "state says stopped" '"status": "stopped"' "$(cap state lim-oom)"
cap delete lim-oom
check_eq "delete removed the OOM-killed container's cgroups" "" "$(leftover_cgroups lim-oom)"

set_args "$B" "$PY" -c 'x = bytearray(16 << 20); print("fine", len(x))'
run_in "$B" lim-under
check_eq "a process under the memory limit runs" "0 fine 16777216" "$RC $OUT"

# fork bomb: stops at pids.max, the container stays in control, the host is unharmed
set_args "$B" "$PY" -c '
import os, signal, time
kids, err = [], None
for i in range(500):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.strerror
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print("forked", len(kids), "then:", err)
for k in kids:
    os.kill(k, signal.SIGKILL)
'
OUT=$(timeout 60 "$CAPSULE" --root "$ROOT" run --bundle "$B" lim-fork 2>&1)
RC=$?
check_match "a fork bomb stops at the pids limit (64 with itself)" 'forked 63 then' "$OUT"
check_match "fork fails inside with EAGAIN" 'Resource temporarily unavailable' "$OUT"
check_eq "the container exits normally after the bomb" "0" "$RC"
check_eq "the fork-bomb container was torn down completely" "" "$(leftover_cgroups lim-fork)"

# a real bomb, killed from outside: kill + delete leave nothing
set_args "$B" sh -c 'b() { b | b & }; b; exec sleep 600'
cap run --detach --bundle "$B" lim-bomb >/dev/null 2>&1
for i in $(seq 600); do
  [ "$(awk '$1 == "max" {print $2}' "$(cg_file lim-bomb pids.events)" 2>/dev/null)" -gt 0 ] 2>/dev/null && break
  sleep 0.1
done
check_match "the bomb hit the pids limit (pids.events max > 0)" '^max [1-9]' "$(grep '^max' "$(cg_file lim-bomb pids.events)" 2>/dev/null)"
check_eq "the container survives its bomb" "running" "$(cap state lim-bomb | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
cap delete --force lim-bomb
check_eq "delete --force of a fork bomb leaves no cgroup" "" "$(leftover_cgroups lim-bomb)"
check_eq "delete --force of a fork bomb leaves no state" "" "$(ls "$ROOT")"

# update: resources of a running container, by flags and by a resources.json
edit_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}'
set_args "$B" sleep 60
cap run --detach --bundle "$B" lim-upd >/dev/null
limits() { cap exec lim-upd sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max' | tr '\n' ' '; }
cap update --memory 128m --pids-limit 99 lim-upd
check_eq "update --memory --pids-limit lowers and raises limits live" "134217728 99 " "$(limits)"
cap update --memory 2g lim-upd
check_eq "update can raise memory past the old memory+swap" "2147483648 99 " "$(limits)"
echo '{"pids": {"limit": 12}}' | cap update -r - lim-upd
check_eq "update -r resources.json" "2147483648 12 " "$(limits)"
OUT=$(echo '{"memory": {"limit": "x"}}' | cap update -r - lim-upd 2>&1)
check_match "a bad resources.json names the field" 'linux.resources.memory.limit: expected an integer' "$OUT"
OUT=$(printf '{"pids": {"limit": 13}}\0{"pids": {"limit": 1}}' | cap update -r - lim-upd 2>&1)
check_match "update -r refuses a NUL byte" '-: invalid JSON: a NUL byte' "$OUT"
check_eq "and changes nothing" "2147483648 12 " "$(limits)"
OUT=$(cap update --memory lots lim-upd 2>&1)
check_match "a bad size is refused" '--memory: "lots" is not a size' "$OUT"
cap delete --force lim-upd
OUT=$(cap update --memory 1g lim-upd 2>&1)
check_match "update of a missing container" 'does not exist' "$OUT"

edit_config "$B" 'c["linux"]["resources"] = {"cpu": {"shares": 512, "quota": 20000, "period": 100000}}'
set_args "$B" sh -c 'cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpu.max'
run_in "$B" lim-cpu
check_match "cpu shares and quota reach the cgroup" '^(512 20000|20 20000 100000)$' "$(echo $OUT)"

edit_config "$B" 'c["linux"]["resources"] = {}; c["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "soft": 77, "hard": 77})'
set_args "$B" sh -c 'grep -E "^Max (open files|processes|core file size)" /proc/self/limits | tr -s " "'
run_in "$B" lim-rlimit
check_eq "rlimits are set" "Max core file size 0 0 bytes Max processes 77 77 processes Max open files 1024 1024 files" "$(echo $OUT)"

# past fs.nr_open no process may raise RLIMIT_NOFILE, whatever its capabilities
high=$(($(cat /proc/sys/fs/nr_open) + 1))
edit_config "$B" 'c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": '$high', "hard": '$high'}]'
run_in "$B" lim-rlimit-high
check_match "raising a hard rlimit past the host's fails with a clear error" "process.rlimits\\[0\\]: set soft $high hard $high" "$OUT"
check_eq "a failed create leaves no state behind" "" "$(ls "$ROOT")"

# a cgroup namespace's root is the container's own cgroup, in every hierarchy, as runc shows it:
# the process joined its cgroups before it made the namespace (on v1 it moves itself, which
# spares the kernel's threadgroup lock and its RCU grace period)
B=$WORK/cgns
make_bundle "$B" sh -c 'cat /proc/self/cgroup; sleep 30'
cap run -d --bundle "$B" lim-cgns > /dev/null 2>&1
pid=$(cap state lim-cgns 2>/dev/null | $PY -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
inside=$(cap exec lim-cgns cat /proc/self/cgroup 2>&1)
check_eq "inside, every hierarchy's cgroup is / (the cgroup namespace's root)" "" \
  "$(printf '%s\n' "$inside" | awk -F: '$3 != "/"')"
check_match "and there is one line for each hierarchy" '^[0-9]+:' "$inside"
# outside: v1, each controller's line; v2, the one line
outside=$(awk -F: '$2 != "" && $2 !~ /^name=/ {print $3}' "/proc/$pid/cgroup")
[ -n "$outside" ] || outside=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
check_eq "outside, the process sits in the container's cgroup in every hierarchy" "" \
  "$(printf '%s\n' "$outside" | grep -v '/capsule-lim-cgns$')"
check_eq "and its cgroup holds it" "$pid" "$(grep -x "$pid" "$(cg_file lim-cgns cgroup.procs)" 2>&1)"
cap delete --force lim-cgns > /dev/null 2>&1
check_eq "deleted, it leaves no cgroup" "" "$(leftover_cgroups lim-cgns)"

finish
