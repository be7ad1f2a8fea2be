#!/bin/bash
# Sessions that sleep on disk, end to end through the shim's socket on cgroup v2 with CRIU: an
# idle session is checkpointed (its cgroup and memory gone, its tier credited to the pool), the
# next call wakes it with its variables, imported modules, execution counter and /mnt/data as
# they were, and says so; containers.checkpoint does the same on demand; a wake the pool cannot
# afford fails with the pool's error and the session stays asleep; a sleeping session survives
# kill -9 of the shim; deleting it removes the image.
. "$(dirname "$0")/lib.sh"

SHIM=$(dirname "$CAPSULE")/../shim/capsule-shim
CTL=$(dirname "$CAPSULE")/../shim/capsulectl
[ -x "$SHIM" ] && [ -x "$CTL" ] || skip_all "no capsule-shim or capsulectl in the build"
SVC=$PARENT/shim-ckpt
mkdir -p "$CG$SVC"
cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "320m", "checkpoint_after_seconds": 20,
 "tiers": {"1g": {"memory": "320m", "workspace": "16m", "tmp": "16m", "pids": 64}}}
JSON
# the expiry minute is MINUTE seconds (8 unless a step says)
shim() { start_shim 60 --state-dir "$WORK/state" --tiers "$WORK/tiers.json" --warm 0 --minute "${MINUTE:-8}"; }
trap 'stop_shim -TERM; for c in $(ls "$WORK/state/sessions" 2>/dev/null); do "$CAPSULE" --root "$WORK/state/runtime" delete --force "$c" >/dev/null 2>&1; umount -l "$WORK/state/sessions/$c/data" "$WORK/state/sessions/$c/run" 2>/dev/null; done; rmdir "$CG$SVC"/* "$CG$SVC" 2>/dev/null; cleanup' EXIT
ctl() { "$CTL" --socket "$WORK/shim.sock" "$@"; }
sandbox() { ctl get "$1" | cut -f3; }
asleep() { [ "$(sandbox "$1")" = checkpointed ]; }
# shim.status does not count as activity (a retrieve of the container would)
n_asleep() { json_get "$(ctl --json status)" "j['sessions']['checkpointed']"; }
one_asleep() { [ "$(n_asleep)" = 1 ]; }
used() { json_get "$(ctl --json status)" "j['pools'][0]['used_bytes']"; }

shim
STATUS=$(ctl --json status)
check_eq "shim.status says checkpoint is available" "available" "$(json_get "$STATUS" "j['checkpoint'] + j.get('checkpoint_reason', '')")"

# expiry "minutes" are 8 s here: the long-lived sessions ask for an hour of them
cid=$(ctl create --name sleeper --expires 60 | cut -f1)
check_match "a session starts" '^cntr_[0-9a-f]{32}$' "$cid"
ctl exec "$cid" 'import numpy as np; a = np.arange(1_000_000, dtype=np.float64); n = 41' > /dev/null
check_eq "it holds a numpy array" "499999500000.0" "$(ctl exec "$cid" 'open("/mnt/data/note.txt", "w").write("kept"); float(a.sum())')"
# an open file and a unix socket pair the interpreter holds across the sleep
ctl exec "$cid" 'import socket; log = open("/mnt/data/log.txt", "a"); log.write("before\n"); log.flush(); sa, sb = socket.socketpair(); sa.send(b"queued")' > /dev/null
check_eq "its tier is charged to the pool" "335544320" "$(used)"

# --- idle: checkpointed after checkpoint_after_seconds
wait_for 240 one_asleep
check_eq "an idle session is checkpointed" "checkpointed" "$(sandbox "$cid")"
check_eq "its container object still says running" "running" "$(ctl get "$cid" | cut -f2)"
check_eq "its sandbox's cgroup is gone: its memory is free" "" "$(ls -d "$CG$SVC/capsule-$cid" 2>/dev/null)"
check_eq "its tier is credited back to the pool" "0" "$(used)"
check_match "the image is on disk under the state dir" 'pages-[0-9]+\.img' "$(ls "$WORK/state/checkpoints/$cid" 2>&1)"
check_eq "where only root may reach it" "700 root" "$(stat -c '%a %U' "$WORK/state/checkpoints")"
check_match "files calls answer without waking it" '/mnt/data/note.txt' "$(ctl files "$cid")"
check_eq "a file downloads while asleep" "kept" "$(ctl download "$cid" note.txt)"
check_eq "and it is still asleep" "checkpointed" "$(sandbox "$cid")"

# --- the next exec wakes it
OUT=$(ctl --json exec "$cid" 'n + 1, float(a.sum()), a.dtype.name, np.__name__, open("/mnt/data/note.txt").read()')
check_match "the next exec is answered" '"status": "completed"' "$OUT"
check_eq "with the variables, the module and the file as they were" "(42, 499999500000.0, 'float64', 'numpy', 'kept')" "$(json_get "$OUT" "j['result']")"
check_eq "the result says restored" "True" "$(json_get "$OUT" "j['restored']")"
check_match "with the restore time" '^[0-9]+$' "$(json_get "$OUT" "j['restore_ms']")"
check_eq "an open file and a socket pair come back: writes go on, queued bytes arrive" "(b'queued', 'before\\nafter\\n')" "$(ctl exec "$cid" 'log.write("after\n"); log.flush(); sb.recv(16), open("/mnt/data/log.txt").read()')"
check_eq "the interpreter was not restarted" "False" "$(json_get "$OUT" "j['interpreter_restarted']")"
check_eq "the execution counter goes on (4th cell)" "4" "$(json_get "$OUT" "j['execution_count']")"
check_eq "the sandbox is live again" "live" "$(sandbox "$cid")"
check_eq "charged to the pool again" "335544320" "$(used)"
check_eq "in its cgroup, with the tier's memory.max" "335544320" "$(cat "$CG$SVC/capsule-$cid/memory.max" 2>&1)"
check_eq "pids.max" "64" "$(cat "$CG$SVC/capsule-$cid/pids.max" 2>&1)"
check_eq "still only lo" "['lo']" "$(ctl exec "$cid" 'import os; sorted(os.listdir("/sys/class/net"))')"
check_match "still no capabilities" "CapEff:.t0{16}.n'" "$(ctl exec "$cid" '[l for l in open("/proc/self/status") if l.startswith("CapEff")][0]')"
check_eq "the cells run with no_new_privs again" "1" "$(ctl exec "$cid" 'int([l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0])')"
check_eq "the result of a later call does not say restored" "False" "$(json_get "$(ctl --json exec "$cid" 'n')" "j['restored']")"

# --- on demand, and the pool
OUT=$(ctl checkpoint "$cid")
check_eq "containers.checkpoint puts it to sleep on demand" "$cid	running	checkpointed" "$OUT"
cid2=$(ctl create --name other | cut -f1)
check_match "its credited tier lets another session start" '^cntr_' "$cid2"
OUT=$(ctl --json exec "$cid" 'n' 2>&1)
check_match "a wake the pool cannot afford fails with the pool's error" 'memory pool exhausted: 320m in use \+ 320m requested > 320m pool' "$OUT"
check_eq "and the session stays asleep, not lost" "checkpointed" "$(sandbox "$cid")"
ctl rm "$cid2" > /dev/null
check_eq "once the pool has room it wakes with its state" "41" "$(ctl exec "$cid" 'n')"

# --- criu dying while it holds the sandbox frozen (killed at its worker's deadline, a crash):
# the checkpoint fails, the sandbox is thawed and answers with its state.  criu freezes the
# cgroup only while it seizes the tasks, too short a time to kill it in from here: a stand-in
# first on the shim's PATH does what such a criu leaves behind (the cgroup frozen) and dies.
ctl exec "$cid" 'k = 7' > /dev/null
mkdir -p "$WORK/fakebin"
cat > "$WORK/fakebin/criu" <<EOF
#!/bin/sh
[ "\$1" = swrk ] || exec $(command -v criu) "\$@"
echo 1 > "$CG$SVC/capsule-$cid/cgroup.freeze"
kill -9 \$\$
EOF
chmod +x "$WORK/fakebin/criu"
stop_shim -TERM
PATH=$WORK/fakebin:$PATH shim
OUT=$(ctl checkpoint "$cid" 2>&1)
check_match "a checkpoint whose criu dies fails and says so" 'criu|checkpoint' "$OUT"
check_eq "the sandbox is live again" "live" "$(sandbox "$cid")"
OUT=$(ctl --json exec "$cid" 'k, n')
check_eq "thawed, it answers with its variables" "(7, 41)" "$(json_get "$OUT" "j['result']")"
check_eq "its interpreter was not restarted" "False" "$(json_get "$OUT" "j['interpreter_restarted']")"
check_eq "its cgroup is not frozen" "frozen 0" "$(grep '^frozen' "$CG$SVC/capsule-$cid/cgroup.events")"
stop_shim -TERM
shim

# --- kill -9 of the shim while a session sleeps
ctl checkpoint "$cid" > /dev/null
stop_shim -KILL
shim
check_eq "after kill -9 and a new shim the session is still asleep" "checkpointed" "$(sandbox "$cid")"
check_eq "and wakes with its variables" "82" "$(ctl exec "$cid" 'n * 2')"

ctl rm "$cid" > /dev/null
# the teardown runs in a worker after the answer
gone() { [ ! -d "$WORK/state/sessions/$1" ] && [ ! -d "$WORK/state/checkpoints/$1" ]; }
wait_for 120 gone "$cid"
check_eq "delete removes the session and its image" "" "$(ls -d "$WORK/state/sessions/$cid" "$WORK/state/checkpoints/$cid" 2>/dev/null)"
# --- expiry still frees everything at expires_after, checkpoint included.  The session is put
# to sleep under a shim whose minutes are long (a dump, 2-9 s under TCG, never races the
# expiry), then a shim whose minutes are a second takes it up: past its expiry, asleep
stop_shim -TERM
MINUTE=600 shim
cid3=$(ctl create --name brief --expires 1 | cut -f1)
ctl exec "$cid3" 'x = 1' > /dev/null
OUT=$(ctl checkpoint "$cid3" 2>&1)
check_eq "a short-lived session is asleep" "$cid3	running	checkpointed" "$OUT"
stop_shim -TERM
MINUTE=1 shim
wait_for 120 gone "$cid3"
check_eq "and expires at expires_after: its image and files are gone" "yes" "$(gone "$cid3" && echo yes)"
check_eq "its container object says expired" "expired" "$(ctl get "$cid3" | cut -f2)"

[ "$FAILED" = 0 ] || { echo "# the shim's log:"; tail -40 "$WORK/shim.log" | sed 's/^/#   /'; }
finish
