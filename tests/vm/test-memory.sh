#!/bin/bash
# Memory tiers on cgroup v2: policies/tiers.json's "1g" tier scaled to the guest (memory / 4:
# 256 MiB), a Python process that allocates past the limit is OOM-killed and reported as such,
# one that stays under keeps running with its usage visible.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
LIMIT=$((256 << 20))
# the 1g tier's other figures, read from the shipped policy: a policy that does not read fails
# here (the shim's own mapping of a tier is checked through the shim in test-shim.sh)
read -r PIDS SHARES < <(/usr/bin/python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tiers"]["1g"]
print(t["pids"], t["cpu_shares"])' "$TOP/policies/tiers.json")
[[ "$PIDS" =~ ^[0-9]+$ && "$SHARES" =~ ^[0-9]+$ ]] || { fail "policies/tiers.json names the 1g tier's pids and cpu_shares" "got '$PIDS' '$SHARES'"; finish; exit; }
tier() {
  edit_config "$B" "c['linux']['resources'] = {'memory': {'limit': $LIMIT}, 'pids': {'limit': $PIDS},
  'cpu': {'shares': $SHARES}}"
}

# --- past the limit: killed, and told so
id=mem-hog
tier
in_parent "$B" $id
set_args "$B" "$PY" -c 'x = [bytearray(1 << 20) for i in range(512)]; print("survived")'
OUT=$(cap run --keep --bundle "$B" $id 2>&1)
RC=$?
check_eq "a Python process allocating 512 MiB under a 256 MiB limit is killed (exit 137)" "137" "$RC"
check_nomatch "it did not survive" 'survived' "$OUT"
check_match "run reports the OOM kill with the limit" 'killed: out of memory \(limit 256.0 MiB\)' "$OUT"
check_match "memory.events counts the oom_kill" 'oom_kill [1-9]' "$(knob $id memory.events)"
check_match "state says oomKilled" '"oomKilled": true' "$(cap state $id)"
check_match "state says stopped" '"status": "stopped"' "$(cap state $id)"
cap delete $id
check_eq "delete removes the OOM-killed container's cgroup" "" "$(ls -d "$(cgdir $id)" 2>/dev/null)"

# --- under the limit: keeps running, its usage visible
id=mem-tier
tier
in_parent "$B" $id
set_args "$B" "$PY" -c '
import sys, time
x = [bytearray(1 << 20) for i in range(192)]
print("holding", len(x), "MiB", flush=True)
time.sleep(600)'
cap run --detach --bundle "$B" $id > "$WORK/tier.out" 2>&1
check_eq "a tier container starts" "0" "$?"
wait_for 120 grep -q holding "$WORK/tier.out"
check_eq "a Python process holding 192 MiB under the 256 MiB limit runs" "holding 192 MiB" "$(cat "$WORK/tier.out")"
check_match "and keeps running" '"status": "running"' "$(cap state $id)"
check_eq "the tier's memory.max" "$LIMIT" "$(knob $id memory.max)"
check_eq "the tier's pids.max" "$PIDS" "$(knob $id pids.max)"
check_eq "the tier's cpu.weight (cpu_shares $SHARES)" \
  "$(( 1 + (SHARES - 2) * 9999 / 262142 ))" "$(knob $id cpu.weight)"
check_eq "no swap to crawl through" "0" "$(knob $id memory.swap.max)"
stats=$(cap events --stats $id 2>&1)
check_eq "events --stats: usage between 192 MiB and the limit, no oom_kill" "True True 0" \
  "$(json_get "$stats" '" ".join(str(v) for v in [j["data"]["memory"]["usage"]["usage"] >= 192 << 20,
    j["data"]["memory"]["usage"]["max"] <= '$LIMIT', j["data"]["memory"]["oom_kill"]])')"
check_match "state does not say oomKilled" '"oomKilled": false' "$(cap state $id)"
cap delete --force $id
check_eq "delete --force removes the tier container's cgroup" "" "$(ls -d "$(cgdir $id)" 2>/dev/null)"

finish
