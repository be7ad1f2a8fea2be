#!/bin/bash
# capsule-gateway end to end: a real capsule-shim on a private socket and state directory, a
# real capsule-gateway on a loopback port in front of it, the official OpenAI Node SDK from npm
# (unchanged, baseURL pointed at the gateway; `npm ci` from the committed lock file) and curl for
# raw HTTP corner cases.  Every container a test made is deleted at the end, through the shim,
# for both tenants (sandboxes outlive their shim by design); one left over is a failure.
# Last line: "gateway: N passed, N failed, N skipped".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
export BUILD

# sandboxes' processes are reparented to us, not to whatever started the suite
if [ -z "${GATEWAY_TEST_REAPER:-}" ]; then
  GATEWAY_TEST_REAPER=1 exec "$BUILD/runtime/capsule-init" -s -- "$0" "$@"
fi

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
summary() {
  echo "gateway: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" = 0 ]
  exit $?
}

GATEWAY=$BUILD/shim/gateway/capsule-gateway
SHIM=$BUILD/shim/capsule-shim
if [ "$(id -u)" != 0 ]; then
  bad "the suite needs root (the shim makes namespaces and cgroups)"
  summary
fi
for b in "$GATEWAY" "$SHIM"; do
  [ -x "$b" ] || { bad "$b is not built"; summary; }
done
for t in node npm curl python3; do
  command -v $t >/dev/null || { bad "$t is not installed"; summary; }
done

WORK=$(mktemp -d /tmp/capsule-gateway-test.XXXXXX)
chmod 755 "$WORK"
shim_pid= gw_pid=
export WORK SHIM_SOCKET=$WORK/shim.sock

cleanup() {
  local left
  if [ -n "$gw_pid" ]; then
    kill -TERM "$gw_pid" 2>/dev/null
    wait "$gw_pid" 2>/dev/null
  fi
  # what the tests left: deleted through the shim, then counted
  left=$(python3 "$HERE/shim-cleanup.py" delete tenant-a tenant-b 2>&1)
  if [ -n "$shim_pid" ]; then
    kill -TERM "$shim_pid" 2>/dev/null
    wait "$shim_pid" 2>/dev/null
  fi
  sandboxes=$(python3 "$HERE/shim-cleanup.py" sweep 2>&1)
  if [ -n "$left" ] || [ -n "$sandboxes" ]; then
    bad "every container the tests made was deleted (left: $left $sandboxes)"
  else
    ok "every container the tests made was deleted"
  fi
  if [ -n "${KEEP_GATEWAY_LOG:-}" ] || [ "$failed" != 0 ]; then
    echo "--- gateway log"; tail -50 "$WORK/gateway.log"
    echo "--- shim log"; tail -30 "$WORK/shim.log"
  fi
  rm -rf "$WORK"
}

# small tiers, as tests/shim uses: quick pools and OOMs
cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "768m",
 "tiers": {"1g": {"memory": "160m", "workspace": "16m", "tmp": "16m", "pids": 64, "nofile": 256},
           "4g": {"memory": "256m", "workspace": "32m", "tmp": "16m", "pids": 128},
           "16g": {"memory": "512m", "workspace": "32m", "pids": 128},
           "64g": {"memory": "1g", "workspace": "32m", "pids": 128}}}
JSON
"$SHIM" --socket "$SHIM_SOCKET" --state-dir "$WORK/state" --tiers "$WORK/tiers.json" \
  --interrupt-grace 1500 --max-message 24m --max-upload 12m --warm 1 >"$WORK/shim.log" 2>&1 &
shim_pid=$!
trap 'cleanup; summary' EXIT
trap 'exit 1' INT TERM

# the event each start waits for: the shim's socket accepting, the gateway's "listening" line
if python3 "$HERE/shim-cleanup.py" wait; then ok "capsule-shim started"; else bad "capsule-shim started"; exit 1; fi

KEY_A=sk-capsule-test-a-$RANDOM$RANDOM KEY_B=sk-capsule-test-b-$RANDOM$RANDOM
{
  echo "# test keys"
  echo "sha256:$(printf %s "$KEY_A" | sha256sum | cut -d' ' -f1) tenant-a"
  echo
  echo "sha256:$(printf %s "$KEY_B" | sha256sum | cut -d' ' -f1) tenant-b"
} > "$WORK/keys"
export KEY_A KEY_B
mkfifo "$WORK/gateway.fifo"
"$GATEWAY" --listen 127.0.0.1:0 --shim-socket "$SHIM_SOCKET" --keys "$WORK/keys" \
  --state-dir "$WORK/gateway-state" --max-upload 8m --files-quota 10m --timeout 3 \
  2>"$WORK/gateway.fifo" &
gw_pid=$!
exec 3<"$WORK/gateway.fifo"
port=
while IFS= read -r -t 30 line <&3; do
  echo "$line" >>"$WORK/gateway.log"
  if [[ $line =~ listening\ on\ .*\ port\ ([0-9]+) ]]; then
    port=${BASH_REMATCH[1]}
    break
  fi
done
# the rest of its log goes on to the file
cat <&3 >>"$WORK/gateway.log" &
exec 3<&-
if [ -n "$port" ]; then ok "capsule-gateway started (port $port)"; else bad "capsule-gateway started"; exit 1; fi
export GATEWAY_URL=http://127.0.0.1:$port GATEWAY_PID=$gw_pid KEYS_FILE=$WORK/keys

# the SDK, exactly the version the lock file names
if (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
  ok "npm ci (the openai package from the lock file)"
else
  bad "npm ci"; cat "$WORK/npm.log"; exit 1
fi

# count TAP: node's test runner
count_tap() {
  local out=$1 p f s
  p=$(printf '%s\n' "$out" | sed -n 's/^# pass \([0-9]*\)$/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^# fail \([0-9]*\)$/\1/p' | tail -1)
  s=$(printf '%s\n' "$out" | sed -n 's/^# skipped \([0-9]*\)$/\1/p' | tail -1)
  [ -n "$p" ] || { bad "the node tests ended without their summary"; return; }
  passed=$((passed + p)) failed=$((failed + ${f:-0})) skipped=$((skipped + ${s:-0}))
}

out=$(cd "$HERE" && timeout 900 node --test --test-reporter=tap --test-concurrency=1 ${GATEWAY_TESTS:-test/*.test.mjs} 2>&1)
printf '%s\n' "$out" | grep -vE '^\s+(duration_ms|type):|^\s+\.\.\.$|^\s+---$'
count_tap "$out"

# raw HTTP corner cases
# shellcheck source=http.sh
. "$HERE/http.sh"

kill -0 "$gw_pid" 2>/dev/null && ok "the gateway is still up after all of it" || bad "the gateway is still up after all of it"
exit 0
