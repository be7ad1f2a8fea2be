#!/bin/bash
# process.terminal: a pty for fds 0-2, handed to --console-socket (as engines want) or copied
# to the runtime's own stdio by `run` and `exec -t`.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
RECV="$PY $(dirname "$0")/console-receiver.py"

# wait_receiver PID: the receiver ends when the pty closes; bounded, so a create that failed
# before handing the pty over fails this check instead of hanging the suite
wait_receiver() {
  local i
  for i in $(seq 600); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill "$1" 2>/dev/null
  wait "$1"
}

edit_config "$B" 'c["process"]["terminal"] = True'
set_args "$B" sh -c 'tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; stty size'
$RECV "$WORK/console.sock" > "$WORK/console.out" &
rpid=$!
for i in $(seq 600); do [ -S "$WORK/console.sock" ] && break; sleep 0.05; done
cap create --bundle "$B" --console-socket "$WORK/console.sock" term1
check_eq "create with --console-socket" "0" "$?"
cap start term1
wait_receiver $rpid
OUT=$(cat "$WORK/console.out")
check_match "the process's stdio is a pty from the container's devpts" '^/dev/pts/0$' "$(echo "$OUT" | sed -n 2p)"
check_match "fds 0, 1 and 2 are the terminal" 'all-ttys' "$OUT"
cap delete --force term1 2>/dev/null

OUT=$(cap create --bundle "$B" term2 2>&1)
check_match "a terminal without a console socket is refused by create" 'process.terminal is true but no --console-socket' "$OUT"
check_eq "and leaves nothing" "" "$(ls "$ROOT")"

set_args "$B" sh
OUT=$(printf 'tty\necho sum=$((40+2))\nexit 7\n' | timeout 20 "$CAPSULE" --root "$ROOT" run --bundle "$B" term3 2>&1)
RC=$?
check_eq "run with a terminal copies stdio through the pty and returns the status" "7" "$RC"
check_match "run: the shell ran on the pty" '/dev/pts/0' "$OUT"
check_match "run: input reached it" 'sum=42' "$OUT"

edit_config "$B" 'c["process"]["terminal"] = False'
set_args "$B" sleep 60
cap run --detach --bundle "$B" term4 >/dev/null
OUT=$(printf 'tty\nexit 5\n' | timeout 20 "$CAPSULE" --root "$ROOT" exec -t term4 sh 2>&1)
RC=$?
check_eq "exec -t returns the status" "5" "$RC"
check_match "exec -t gives the process a pty" '/dev/pts/[0-9]' "$OUT"
rm -f "$WORK/console.sock"
$RECV "$WORK/console.sock" > "$WORK/console2.out" &
rpid=$!
for i in $(seq 600); do [ -S "$WORK/console.sock" ] && break; sleep 0.05; done
cap exec --detach -t --console-socket "$WORK/console.sock" term4 sh -c 'echo detached-with-tty; tty'
wait_receiver $rpid
check_match "exec --detach -t --console-socket hands the pty over" 'detached-with-tty' "$(cat "$WORK/console2.out")"
OUT=$(cap exec --detach -t term4 true 2>&1)
check_match "exec --detach -t without a console socket is refused" 'needs --console-socket' "$OUT"
cap delete --force term4

finish
