#!/bin/bash
# checkpoint and restore on this host.  Where criu cannot work (Debian's criu 3.17 on a 6.18
# kernel fails `criu check` on the vDSO) the runtime says so in one line, with criu's reason, and
# leaves the container running; where it works, a round trip keeps the process's state.  The
# full suite (namespaces, limits, the shim's sessions) runs in the cgroup v2 guest:
# tests/vm/test-checkpoint.sh and test-shim-checkpoint.sh.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
mkdir -p "$WORK/data"
chown 100000:100000 "$WORK/data"
edit_config "$B" "c['mounts'].append({'destination': '/mnt/data', 'type': 'bind', 'source': '$WORK/data', 'options': ['rbind', 'rw']})"
set_args "$B" /bin/sh -c 'exec < /dev/null > /dev/null 2>&1; i=0; while :; do i=$((i + 1)); echo $i > /mnt/data/count; sleep 0.1; done'
count() { cat "$WORK/data/count" 2>/dev/null || echo 0; }
wait_past() {
  local n=100
  while [ $n -gt 0 ] && [ "$(count)" -lt "$1" ]; do sleep 0.1; n=$((n - 1)); done
}

cap run -d --bundle "$B" c1
wait_past 2
if CHECK=$(criu check 2>&1); then
  OUT=$(cap checkpoint --image-path "$WORK/img" c1 2>&1)
  check_eq "criu works here: checkpoint succeeds" "" "$OUT"
  at=$(count)
  OUT=$(cap restore -d --bundle "$B" --image-path "$WORK/img" c1 2>&1)
  check_eq "and restore" "" "$OUT"
  wait_past $((at + 2))
  check_eq "the count goes on" "yes" "$([ "$(count)" -gt "$at" ] && echo yes)"
else
  reason=$(echo "$CHECK" | grep -m1 'Error (' | sed 's/^.*Error ([^)]*): //')
  OUT=$(cap checkpoint --image-path "$WORK/img" c1 2>&1)
  RC=$?
  check_eq "criu cannot work here: checkpoint fails" "1" "$RC"
  check_eq "in one line" "1" "$(printf '%s\n' "$OUT" | wc -l)"
  check_match "naming criu's own reason (\`criu check\`: $reason)" "^capsule: checkpoint \`c1\`: criu: .*$(printf '%s' "$reason" | sed 's/[][\.*^$()+?{}|]/\\&/g')" "$OUT"
  check_match "and the container is left running" '"status": "running"' "$(cap state c1 2>&1)"
  at=$(count)
  wait_past $((at + 2))
  check_eq "still counting" "yes" "$([ "$(count)" -gt "$at" ] && echo yes)"
fi
cap delete --force c1

# mistakes are named, with or without criu
mkdir -p "$WORK/empty"
check_match "restore from a directory without an image says so" 'holds no checkpoint' "$(cap restore -d --bundle "$B" --image-path "$WORK/empty" r1 2>&1)"
check_match "restore from a missing directory says so" "image-path .*: No such file" "$(cap restore -d --bundle "$B" --image-path "$WORK/none" r1 2>&1)"
check_match "checkpoint of a missing container says so" 'does not exist' "$(cap checkpoint --image-path "$WORK/img3" nosuch 2>&1)"
check_match "--leave-running is a checkpoint option" 'is a checkpoint option' "$(cap restore --leave-running r1 2>&1)"
check_eq "a failed restore leaves no container behind" "" "$(cap list -q)"
finish
