# Helpers of the install tests: checks print "ok - NAME" or "not ok - NAME: why"; finish prints
# "N passed, N failed".  A session through an installed shim is made with its own capsulectl.
set -u
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $1${2:+: $2}"; }
check_eq() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi; }
check_match() { if printf '%s' "$3" | grep -qE -- "$2"; then pass "$1"; else fail "$1" "'$3' does not match /$2/"; fi; }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}

# session_through SHIM CTL WORK: start SHIM with no path flags on a state dir under WORK, make a
# session, run a cell that uses the data stack, draw a figure, delete it, stop the shim
session_through() {
  local shim=$1 ctl=$2 work=$3 pid cid out
  "$shim" --socket "$work/shim.sock" --state-dir "$work/state" --warm 0 2> "$work/shim.log" &
  pid=$!
  for _ in $(seq 600); do [ -S "$work/shim.sock" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  check_eq "the installed shim starts with no path flags" "yes" "$([ -S "$work/shim.sock" ] && echo yes)"
  cid=$("$ctl" --socket "$work/shim.sock" create --name installed | cut -f1)
  check_match "a session starts" '^cntr_[0-9a-f]{32}$' "$cid"
  out=$("$ctl" --socket "$work/shim.sock" exec "$cid" 'import pandas as pd; int(pd.Series([1, 2, 3]).sum() * 7)' 2>&1)
  check_eq "a cell runs in it" "42" "$out"
  out=$("$ctl" --socket "$work/shim.sock" --json exec "$cid" 'import matplotlib.pyplot as plt; plt.plot([1, 3, 2])' 2>&1)
  check_match "a figure comes back as an image" '"type": "image"' "$out"
  "$ctl" --socket "$work/shim.sock" rm "$cid" >/dev/null
  kill $pid
  wait $pid
  check_eq "the shim stops on SIGTERM" "0" "$?"
  [ "$FAILED" = 0 ] || sed 's/^/#   /' "$work/shim.log"
}
