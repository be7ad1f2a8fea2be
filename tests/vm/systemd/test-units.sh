#!/bin/bash
# The shim under its real units, systemd as PID 1: socket activation starts it, a session holds
# a variable and an uploaded file, another sleeps on disk (CRIU), `systemctl restart
# capsule-shim` replaces the daemon, and both sessions come back whole: the restarted shim runs
# in the unit's own mount namespace (ProtectSystem=, ProtectHome= and friends make one), so the
# workspaces must not live in the old one's.
. "$(dirname "$0")/../../runtime/lib.sh"
. "$(dirname "$0")/../helpers.sh"
BUILD=$(cd "$(dirname "$CAPSULE")/.." && pwd)
CTL=$BUILD/shim/capsulectl
SOCK=/run/capsule-shim.sock
U=/etc/systemd/system
cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "1g", "checkpoint_after_seconds": 86400,
 "tiers": {"1g": {"memory": "256m", "workspace": "16m", "tmp": "16m", "pids": 64}}}
JSON
chmod 644 "$WORK/tiers.json"
# the build's units, starting the build's shim (which finds its files in the build tree)
sed -e "s|^ExecStart=[^ ]*|ExecStart=$BUILD/shim/capsule-shim --tiers $WORK/tiers.json --warm 1|" \
  "$BUILD/shim/capsule-shim.service" > $U/capsule-shim.service
cp "$BUILD/shim/capsule-shim.socket" $U/capsule-shim.socket
sed -e "s|^ExecStart=[^ ]*|ExecStart=$BUILD/shim/capsule-shim|" \
  "$BUILD/shim/capsule-sandboxes.service" > $U/capsule-sandboxes.service
stop_units() {
  systemctl stop capsule-shim.socket capsule-shim.service capsule-sandboxes.service >/dev/null 2>&1
  for c in $(ls /var/lib/capsule-shim/sessions 2>/dev/null); do
    "$CAPSULE" --root /var/lib/capsule-shim/runtime delete --force "$c" >/dev/null 2>&1
  done
  rm -f $U/capsule-shim.service $U/capsule-shim.socket $U/capsule-sandboxes.service
  systemctl daemon-reload
}
trap 'stop_units; cleanup' EXIT
systemctl daemon-reload
check_eq "systemd loads the units" "loaded loaded loaded" \
  "$(systemctl show -P LoadState capsule-shim.socket) $(systemctl show -P LoadState capsule-shim.service) $(systemctl show -P LoadState capsule-sandboxes.service)"
systemctl start capsule-shim.socket
check_eq "the socket listens" "active" "$(systemctl is-active capsule-shim.socket)"
check_eq "with the unit's mode and group" "660 root" "$(stat -c '%a %G' $SOCK)"
ctl() { "$CTL" --socket $SOCK "$@"; }

# socket activation: the first connection starts the service
cid=$(ctl create --name kept | cut -f1)
check_match "the first call starts the shim (socket activation) and makes a session" '^cntr_[0-9a-f]{32}$' "$cid"
check_eq "the service runs, Type=notify (READY=1 reached)" "active" "$(systemctl is-active capsule-shim.service)"
pid1=$(systemctl show -P MainPID capsule-shim.service)
check_eq "the shim runs in its unit's cgroup" "0::/capsule.slice/capsule-shim.service" "$(cat /proc/$pid1/cgroup)"
SBX=/sys/fs/cgroup/capsule.slice/capsule-sandboxes.service
check_eq "the holder sits in the leaf of capsule-sandboxes.service" "0::/capsule.slice/capsule-sandboxes.service/holder" \
  "$(cat /proc/$(systemctl show -P MainPID capsule-sandboxes.service)/cgroup)"
check_eq "the sandbox's cgroup is in capsule-sandboxes.service, with the tier's memory.max" "268435456" \
  "$(cat $SBX/capsule-$cid/memory.max 2>&1)"
check_eq "a cell runs" "41" "$(ctl exec "$cid" 'v = 41; v')"
check_eq "the sandbox still has its own lo (the unit denies all but localhost)" "b'ping'" "$(ctl exec "$cid" '
import socket
srv = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(srv.getsockname())
a, _ = srv.accept(); c.sendall(b"ping"); a.recv(4)' 2>&1)"
printf 'uploaded before the restart' > "$WORK/note.txt"
ctl upload "$cid" "$WORK/note.txt" note.txt > /dev/null
check_eq "a file is uploaded" "uploaded before the restart" "$(ctl download "$cid" note.txt)"
sleeper=$(ctl create --name sleeper | cut -f1)
ctl exec "$sleeper" 'import numpy as np; s = np.arange(10).sum()' > /dev/null
OUT=$(ctl checkpoint "$sleeper" 2>&1)
check_eq "another session sleeps on disk" "$sleeper	running	checkpointed" "$OUT"

# the restart
systemctl restart capsule-shim.service
check_eq "systemctl restart capsule-shim succeeds" "0" "$?"
[ "$FAILED" = 0 ] || { systemctl status capsule-shim.service --no-pager -l | head -20 | sed 's/^/#   /'; }
pid2=$(systemctl show -P MainPID capsule-shim.service)
check_eq "a new shim runs" "yes" "$([ -n "$pid2" ] && [ "$pid2" != 0 ] && [ "$pid2" != "$pid1" ] && echo yes)"
OUT=$(ctl --json exec "$cid" 'v + 1' 2>&1)
check_eq "the live session's variable survived the restart" "42" "$(json_get "$OUT" "j['result']" 2>&1)"
check_eq "its interpreter was not restarted" "False" "$(json_get "$OUT" "j['interpreter_restarted']" 2>&1)"
check_eq "its uploaded file is there" "uploaded before the restart" "$(ctl download "$cid" note.txt 2>&1)"
check_eq "the sleeping session is still asleep" "checkpointed" "$(ctl get "$sleeper" | cut -f3)"
OUT=$(ctl --json exec "$sleeper" 'int(s)' 2>&1)
check_eq "and wakes with its state" "45 True" "$(json_get "$OUT" "j['result'] + ' ' + str(j['restored'])" 2>&1)"
check_eq "nothing expired" "running running" "$(ctl get "$cid" | cut -f2) $(ctl get "$sleeper" | cut -f2)"

# stopped and started again by the next connection
systemctl stop capsule-shim.service
check_eq "a stopped shim leaves the socket listening" "active inactive" \
  "$(systemctl is-active capsule-shim.socket) $(systemctl is-active capsule-shim.service)"
check_eq "the next call starts it again, and the session is there" "42" "$(ctl exec "$cid" 'v + 1' 2>&1)"
ctl rm "$cid" > /dev/null
ctl rm "$sleeper" > /dev/null
no_cgroups() { [ ! -d "$SBX/capsule-$cid" ] && [ ! -d "$SBX/capsule-$sleeper" ]; }
wait_for 120 no_cgroups
check_eq "deleted sessions leave no cgroup" "" "$(ls -d "$SBX/capsule-$cid" "$SBX/capsule-$sleeper" 2>/dev/null)"
[ "$FAILED" = 0 ] || journalctl -u capsule-shim.service --no-pager -o cat | grep -v 'left-over\|usually indicates' | tail -40 | sed 's/^/#   /'
finish
