#!/bin/bash
# Checkpoint and restore through the CLI (CRIU), in the guest where Debian's criu works: a
# counting process is dumped, is gone, comes back and counts on from where it stopped, with the
# same isolation (only lo, its seccomp filter, no capabilities, the same cgroup limits).
. "$(dirname "$0")/lib.sh"

command -v criu > /dev/null || { fail "criu is installed (scripts/setup)"; finish; exit; }
CHECK=$(criu check 2>&1)
check_match "criu check passes in the guest" 'Looks good' "$CHECK"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
mkdir -p "$WORK/data"
chown 100000:100000 "$WORK/data"
id=counter
in_parent "$B" $id
edit_config "$B" "c['mounts'].append({'destination': '/mnt/data', 'type': 'bind', 'source': '$WORK/data', 'options': ['rbind', 'rw']})
c['linux']['resources'] = {'memory': {'limit': 67108864}, 'pids': {'limit': 32}}"
# stdio: the container's own /dev/null, so nothing ties it to this shell
set_args "$B" /bin/sh -c 'exec < /dev/null > /dev/null 2>&1; i=0; while :; do i=$((i + 1)); echo $i > /mnt/data/count; echo $i >> /mnt/data/log; sleep 0.2; done'
count() { cat "$WORK/data/count" 2>/dev/null || echo 0; }
# criu's log, shown when a dump or restore fails (CI prints every line that is not a passing check)
criu_log() { [ -f "$1" ] && grep -E 'Error|Warn' "$1" | tail -15 | sed 's/^/#   /'; }
past() { [ "$(count)" -ge "$1" ]; }

cap run -d --bundle "$B" $id
wait_for 60 past 3
check_match "the counter runs" '^[0-9]+$' "$(count)"

pid=$(json_get "$(cap state $id)" "j['pid']")
caps=$(grep CapEff: /proc/$pid/status)
OUT=$(cap checkpoint --image-path "$WORK/img" $id 2>&1)
check_eq "checkpoint succeeds" "" "$OUT" || criu_log "$WORK/img/dump.log"
check_eq "the image is written" "yes" "$([ -f "$WORK/img/inventory.img" ] && echo yes)"
check_match "and names its external mounts" '"/mnt/data"' "$(cat "$WORK/img/capsule-mounts.json" 2>/dev/null)"
check_match "the container is gone after the checkpoint, as with runc" 'does not exist' "$(cap state $id 2>&1)"
check_eq "its cgroup too" "" "$(ls -d "$(cgdir $id)" 2>/dev/null)"
at=$(count)
sleep 2
check_eq "the count stopped at the checkpoint" "$at" "$(count)"

OUT=$(cap restore -d --bundle "$B" --image-path "$WORK/img" $id 2>&1)
check_eq "restore succeeds" "" "$OUT" || criu_log "$WORK/img/restore.log"
check_match "state says running" '"status": "running"' "$(cap state $id 2>&1)"
wait_for 60 past $((at + 3))
now=$(count)
check_eq "the count goes on from where it stopped" "yes" "$([ "$now" -gt "$at" ] && [ "$now" -lt $((at + 200)) ] && echo yes)"
# every value once, in order: a process that started again from 0 (or skipped) breaks the run
check_eq "the first value after the restore is the next one (1..N with no restart or gap)" "ok" \
  "$(awk 'NR != $1 {bad = 1} END {print (NR > 0 && !bad) ? "ok" : "broken at line " NR}' "$WORK/data/log")"
pid=$(json_get "$(cap state $id)" "j['pid']")
check_eq "the restored process is in the container's cgroup" "0::$PARENT/capsule-$id" "$(cat /proc/$pid/cgroup 2>&1)"
check_eq "with memory.max from the bundle" "67108864" "$(knob $id memory.max)"
check_eq "and pids.max" "32" "$(knob $id pids.max)"
check_eq "its network namespace still has only lo" "lo" "$(cap exec $id /bin/sh -c 'ls /sys/class/net' 2>&1 | tr '\n' ' ' | sed 's/ $//')"
check_match "its seccomp filter is back (Seccomp: 2)" 'Seccomp:[[:space:]]+2' "$(grep Seccomp: /proc/$pid/status)"
check_eq "the same capabilities as before" "$caps" "$(grep CapEff: /proc/$pid/status)"
# criu 3.17 does not carry no_new_privs over (README: checkpoint); what the container runs next has it
check_match "a process exec'd into the restored container has no_new_privs" 'NoNewPrivs:[[:space:]]+1' "$(cap exec $id /bin/sh -c 'grep NoNewPrivs: /proc/self/status' 2>&1)"
check_eq "the same user namespace mapping" "$(cat /proc/$pid/uid_map | tr -s ' ')" " 0 100000 65536"

# --leave-running: the image is taken, the container goes on
OUT=$(cap checkpoint --leave-running --image-path "$WORK/img2" $id 2>&1)
check_eq "checkpoint --leave-running succeeds" "" "$OUT"
at=$(count)
wait_for 30 past $((at + 2))
check_match "and the container keeps running" '"status": "running"' "$(cap state $id 2>&1)"
cap delete --force $id

# an overlay workspace (a read-only lower layer, a writable upper one): restored on the same
# upper layer, so what the process writes after the restore lands where it wrote before
O=$WORK/ovl
mkdir -p "$O/lower" "$O/upper" "$O/work"
echo base > "$O/lower/base.txt"
chown -R 100000:100000 "$O"
id=overlay
make_bundle "$WORK/b2" || fail "make bundle"
in_parent "$WORK/b2" $id
edit_config "$WORK/b2" "c['mounts'].append({'destination': '/work', 'type': 'overlay', 'source': 'overlay', 'options': ['lowerdir=$O/lower', 'upperdir=$O/upper', 'workdir=$O/work']})"
set_args "$WORK/b2" /bin/sh -c 'exec < /dev/null > /dev/null 2>&1; i=0; while :; do i=$((i + 1)); echo $i > /work/count; cat /work/base.txt > /work/seen.new && mv /work/seen.new /work/seen; sleep 0.2; done'
ocount() { cat "$O/upper/count" 2>/dev/null || echo 0; }
opast() { [ "$(ocount)" -ge "$1" ]; }
cap run -d --bundle "$WORK/b2" $id
wait_for 60 opast 2
OUT=$(cap checkpoint --image-path "$WORK/img-ovl" $id 2>&1)
check_eq "a container with an overlay workspace checkpoints" "" "$OUT"
at=$(ocount)
OUT=$(cap restore -d --bundle "$WORK/b2" --image-path "$WORK/img-ovl" $id 2>&1)
check_eq "and restores" "" "$OUT"
wait_for 60 opast $((at + 2))
check_eq "it writes on into the same upper layer" "yes" "$([ "$(ocount)" -gt "$at" ] && echo yes)"
check_eq "and still sees the lower layer" "base" "$(cat "$O/upper/seen" 2>&1)"
cap delete --force $id 2>/dev/null

# an overlay root the caller prepared (image below, the container's writable layer above):
# dumped and restored on the same layers, so it counts on into the same upper directory
R=$WORK/rootovl
mkdir -p "$R/upper" "$R/work" "$R/merged"
cp -a "$WORK/b2/rootfs" "$R/lower"
chown -R 100000:100000 "$R/lower" "$R/upper" "$R/work"
if mount -t overlay overlay -o "lowerdir=$R/lower,upperdir=$R/upper,workdir=$R/work,redirect_dir=off,metacopy=off,index=off" "$R/merged"; then
  id=ovlroot
  make_bundle "$WORK/b3" || fail "make bundle"
  in_parent "$WORK/b3" $id
  edit_config "$WORK/b3" "c['root'] = {'path': '$R/merged', 'readonly': False}"
  set_args "$WORK/b3" /bin/sh -c 'exec < /dev/null > /dev/null 2>&1; i=0; while :; do i=$((i + 1)); echo $i > /count; echo $i >> /count.log; sleep 0.2; done'
  rcount() { cat "$R/upper/count" 2>/dev/null || echo 0; }
  rpast() { [ "$(rcount)" -ge "$1" ]; }
  cap run -d --bundle "$WORK/b3" $id
  wait_for 60 rpast 2
  OUT=$(cap checkpoint --image-path "$WORK/img-root" $id 2>&1)
  check_eq "a container on an overlay root checkpoints" "" "$OUT" || criu_log "$WORK/img-root/dump.log"
  at=$(rcount)
  OUT=$(cap restore -d --bundle "$WORK/b3" --image-path "$WORK/img-root" $id 2>&1)
  check_eq "and restores" "" "$OUT" || criu_log "$WORK/img-root/restore.log"
  wait_for 60 rpast $((at + 2))
  check_eq "it counts on in the same upper layer, with no restart or gap" "ok" \
    "$(awk 'NR != $1 {bad = 1} END {print (NR > 2 && !bad) ? "ok" : "broken at line " NR}' "$R/upper/count.log")"
  cap delete --force $id 2>/dev/null
  umount "$R/merged"
else
  fail "mount an overlay root"
fi

# stdio from the host (</dev/null, a log file), as engines hand it: checkpointed (criu is told
# they are external) and restored with the restoring caller's own fds in their place, as runc
id=hoststdio
in_parent "$B" $id
set_args "$B" /bin/sh -c 'i=0; while :; do i=$((i + 1)); echo $i; sleep 0.2; done'
lines() { cat "$1" 2>/dev/null | wc -l; }
grown() { [ "$(lines "$1")" -ge "$2" ]; }
# a log opened for appending, as engines open theirs (criu checks the size of any other file)
cap run -d --bundle "$B" $id < /dev/null >> "$WORK/out1" 2>&1
wait_for 60 grown "$WORK/out1" 3
OUT=$(cap checkpoint --image-path "$WORK/img-stdio" $id 2>&1)
check_eq "a container whose stdio is the host's /dev/null and a log file checkpoints" "" "$OUT" ||
  criu_log "$WORK/img-stdio/dump.log"
at=$(tail -n1 "$WORK/out1")
# criu reopens an inherited host file as the restored process (the container's root, uid
# 100000 here), so the new log is one that user may write, as an engine's would be
: > "$WORK/out2"
chown 100000:100000 "$WORK/out2"
cap restore -d --bundle "$B" --image-path "$WORK/img-stdio" $id < /dev/null >> "$WORK/out2" 2> "$WORK/err2"
check_eq "and restores, handed the restoring caller's stdio" "" "$(cat "$WORK/err2")" ||
  criu_log "$WORK/img-stdio/restore.log"
wait_for 60 grown "$WORK/out2" 2
check_eq "it counts on, into the new stdout" "$((at + 1))" "$(head -n1 "$WORK/out2")"
cap delete --force $id 2>/dev/null

# mistakes are named
cap run -d --bundle "$B" $id > /dev/null 2>&1
check_match "(a container of that id runs)" '"status": "running"' "$(cap state $id 2>&1)"
check_match "restore of an id that exists is refused" 'already exists' "$(cap restore -d --bundle "$B" --image-path "$WORK/img2" $id 2>&1)"
cap delete --force $id 2>/dev/null
mkdir -p "$WORK/empty"
check_match "restore from a directory without an image says so" 'holds no checkpoint' "$(cap restore -d --bundle "$B" --image-path "$WORK/empty" x 2>&1)"
check_match "checkpoint of a missing container says so" 'does not exist' "$(cap checkpoint --image-path "$WORK/img3" nosuch 2>&1)"
finish
