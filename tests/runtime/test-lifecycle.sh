#!/bin/bash
# create / start / state / exec / kill / delete, as separate invocations cooperating through --root,
# hooks, and cleanup after kills and interrupted creates.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
status_of() { cap state "$1" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null; }
pid_of() { cap state "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
# wait_status ID STATUS: poll up to 60 s (a killed pid 1 waits for its namespace to empty)
wait_status() {
  local i
  for i in $(seq 600); do
    [ "$(status_of "$1")" = "$2" ] && break
    sleep 0.1
  done
  status_of "$1"
}

set_args "$B" sleep 60
edit_config "$B" 'c["annotations"] = {"org.example.k": "v"}'
cap create --bundle "$B" --pid-file "$WORK/pid" lc1
check_eq "create succeeds" "0" "$?"
check_eq "status after create is created" "created" "$(status_of lc1)"
pid=$(cat "$WORK/pid")
check_eq "the pid file holds the container's pid" "$pid" "$(pid_of lc1)"
check_eq "the created process waits (not yet exec'd)" "capsule" "$(cat /proc/$pid/comm)"
check_match "state has annotations" '"org.example.k": "v"' "$(cap state lc1)"
check_match "list shows it" "^lc1 +$pid +created" "$(cap list | tail -n +2)"
check_match "list --format json" "\"id\":\"lc1\",\"pid\":$pid,\"status\":\"created\"" "$(cap list --format json)"
check_eq "list -q" "lc1" "$(cap list -q)"

OUT=$(cap create --bundle "$B" lc1 2>&1)
check_match "a duplicate id fails" 'container `lc1` already exists' "$OUT"
check_eq "the duplicate attempt did not disturb the first" "created" "$(status_of lc1)"

cap start lc1
check_eq "start succeeds" "0" "$?"
check_eq "status after start is running" "running" "$(status_of lc1)"
check_eq "the process is the spec's after start" "sleep" "$(cat /proc/$pid/comm)"
OUT=$(cap start lc1 2>&1)
check_match "start twice fails" 'it is running, not created' "$OUT"

# exec joins every namespace of the container
OUT=$(cap exec lc1 sh -c 'for n in user mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done' 2>&1)
WANT=$(for n in user mnt pid net ipc uts cgroup; do readlink /proc/$pid/ns/$n; done)
check_eq "exec joins all the namespaces of the container" "$WANT" "$OUT"
check_eq "exec sees the container's processes (pid 1 is sleep)" "sleep" "$(cap exec lc1 cat /proc/1/comm)"
cap exec lc1 sh -c 'exit 7'
check_eq "exec returns the process's exit status" "7" "$?"
check_eq "exec --user and --cwd" "1000 /tmp" "$(cap exec --user 1000:1000 --cwd /tmp lc1 sh -c 'echo $(id -u) $(pwd)')"
check_eq "exec --env" "bar" "$(cap exec --env FOO=bar lc1 sh -c 'echo $FOO')"
printf '{"args": ["sh", "-c", "echo from-process-file $(id -u)"], "cwd": "/", "user": {"uid": 1000, "gid": 1000}}' > "$WORK/proc.json"
check_eq "exec --process FILE" "from-process-file 1000" "$(cap exec --process "$WORK/proc.json" lc1)"
# a NUL byte ended the parse: what followed it went unread
printf '{"args": ["true"], "cwd": "/"}\0{"args": ["sh"]}' > "$WORK/proc-nul.json"
OUT=$(cap exec --process "$WORK/proc-nul.json" lc1 2>&1)
check_match "exec --process refuses a NUL byte" "proc-nul.json: invalid JSON: a NUL byte" "$OUT"
OUT=$(cap exec lc1 /no/such/binary 2>&1)
check_match "exec of a missing binary fails clearly" "cannot execute \`/no/such/binary\`" "$OUT"
cap exec --detach --pid-file "$WORK/xpid" lc1 sleep 30
xpid=$(cat "$WORK/xpid")
check_eq "exec --detach leaves the process running with its pid file" "sleep" "$(cat /proc/$xpid/comm 2>/dev/null)"
# the exec'd process's own cgroup, seen from the host (inside, a cgroup namespace shows "/")
check_match "exec runs in the container's cgroup" "capsule-lc1\$" "$(grep -E '^[0-9]+:(pids|):' /proc/$xpid/cgroup 2>&1 | head -1)"
check_eq "exec seccomp: the container's filter applies to exec'd processes" "2" \
  "$(cap exec lc1 sh -c 'grep Seccomp: /proc/self/status' | awk '{print $2}')"

cap pause lc1
check_eq "pause freezes" "paused" "$(status_of lc1)"
cap resume lc1
check_eq "resume thaws" "running" "$(status_of lc1)"

OUT=$(cap delete lc1 2>&1)
check_match "delete of a running container needs --force" 'is running: stop it first' "$OUT"
cap kill lc1 KILL
check_eq "kill by name stops it" "stopped" "$(wait_status lc1 stopped)"
check_eq "kill also ended the exec'd process (cgroup)" "" "$(cat /proc/$xpid/comm 2>/dev/null)"
OUT=$(cap kill lc1 TERM 2>&1)
check_match "kill of a stopped container says so" 'is not running' "$OUT"
cap delete lc1
check_eq "delete of a stopped container succeeds" "0" "$?"
check_eq "nothing of it is left in --root" "" "$(ls "$ROOT")"
check_eq "no cgroup is left" "" "$(leftover_cgroups lc1)"
check_eq "no process is left" "" "$(ps -eo pid= | grep -w "$pid")"
OUT=$(cap state lc1 2>&1)
check_match "state of a deleted container fails" 'container `lc1` does not exist' "$OUT"

# signal by number (a pid 1 gets only the signals it handles, as the kernel wants)
set_args "$B" sh -c 'trap "exit 0" TERM; echo > /tmp/trap-set; while :; do sleep 0.1; done'
cap create --bundle "$B" lc2 && cap start lc2
wait_file 60 "/proc/$(pid_of lc2)/root/tmp/trap-set" || fail "the shell set its trap"
cap kill lc2 15
check_eq "kill by number (15)" "stopped" "$(wait_status lc2 stopped)"
cap delete lc2
set_args "$B" sleep 60
cap create --bundle "$B" lc3
pid=$(pid_of lc3)
cap delete lc3
check_eq "delete of a created container kills its process" "" "$(ps -eo pid= | grep -w "$pid")"
check_eq "and leaves no cgroup" "" "$(leftover_cgroups lc3)"

# joining namespaces by path: a second container shares the first one's network namespace
set_args "$B" sleep 60
cap run --detach --bundle "$B" lc-net >/dev/null
npid=$(pid_of lc-net)
B2=$WORK/b2
make_bundle "$B2"
edit_config "$B2" '[n.update(path="/proc/'"$npid"'/ns/net") for n in c["linux"]["namespaces"] if n["type"] == "network"]'
set_args "$B2" sh -c 'readlink /proc/self/ns/net; echo pid=$$; readlink /proc/self/ns/user'
OUT=$("$CAPSULE" --root "$ROOT" run --bundle "$B2" lc-join 2>&1)
check_eq "a namespace joined by path is shared" "$(readlink /proc/$npid/ns/net)" "$(echo "$OUT" | head -1)"
check_match "the other namespaces are still new (pid 1, own user ns)" "^pid=1$" "$(echo "$OUT" | sed -n 2p)"
check_match "a new user namespace made after a join" "user:" "$(echo "$OUT" | sed -n 3p)"
check_ne "which is not the host's" "$(readlink /proc/self/ns/user)" "$(echo "$OUT" | sed -n 3p)"
cap delete --force lc-net

# run: exit status, 128+signal, --detach
set_args "$B" sh -c 'exit 3'
run_in "$B" lc4
check_eq "run returns the exit status" "3" "$RC"
set_args "$B" sleep 60
"$CAPSULE" --root "$ROOT" run --bundle "$B" lc5 &
rpid=$!
wait_status lc5 running >/dev/null
cap kill lc5 KILL
wait $rpid
check_eq "run returns 128+signal when the process is killed" "137" "$?"
check_eq "run deletes the container afterwards" "" "$(ls "$ROOT")"

# hooks: state on stdin, in the documented order; a failing hook fails create cleanly
cat > "$WORK/hook" <<HOOK
#!/bin/sh
state=\$(cat)
echo "\$1 \$(echo "\$state" | $PY -c 'import json,sys; s=json.load(sys.stdin); print(s["id"], s["status"], s["pid"] > 0)')" >> $WORK/hooks.log
HOOK
chmod +x "$WORK/hook"
# createContainer and startContainer hooks run inside the container (as its root, uid 100000 on
# the host): give them the log and the hook at the same path
touch "$WORK/hooks.log" && chmod 666 "$WORK/hooks.log"
edit_config "$B" 'c["mounts"].append({"destination": "'"$WORK"'", "type": "bind", "source": "'"$WORK"'", "options": ["rbind"]})'
edit_config "$B" '
h = lambda n: [{"path": "'"$WORK/hook"'", "args": ["hook", n]}]
c["hooks"] = {k: h(k) for k in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]}'
set_args "$B" true
run_in "$B" lc6
check_eq "all six hooks run in order with the state on stdin" \
  "prestart lc6 creating True createRuntime lc6 creating True createContainer lc6 creating True startContainer lc6 created True poststart lc6 running True poststop lc6 stopped False" \
  "$(cat "$WORK/hooks.log" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
edit_config "$B" 'c["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}'
run_in "$B" lc7
check_match "a failing hook fails the container with a clear error" 'hooks.createRuntime\[0\] \(/bin/false\): exited with status 1' "$OUT"
check_eq "and leaves nothing behind" "" "$(ls "$ROOT")$(leftover_cgroups lc7)"
edit_config "$B" 'c["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}'
run_in "$B" lc8
check_match "a hook past its timeout fails the container" 'hooks.prestart\[0\] \(/bin/sleep\): timed out after 1 s' "$OUT"

# interrupted create: SIGTERM mid-create rolls back; SIGKILL mid-create is cleaned by delete.
# The createRuntime hook says when the create is in the middle (it then waits to be ended).
printf '#!/bin/sh\ntouch "%s/in-create"\nexec sleep 60\n' "$WORK" > "$WORK/slow-hook"
chmod +x "$WORK/slow-hook"
edit_config "$B" 'c["hooks"] = {"createRuntime": [{"path": "'"$WORK/slow-hook"'"}]}'
set_args "$B" sleep 60
rm -f "$WORK/in-create"
(exec "$CAPSULE" --root "$ROOT" create --bundle "$B" lc9 2>"$WORK/lc9.err") &
cpid=$!
wait_file 60 "$WORK/in-create" || fail "create reached its createRuntime hook"
kill -TERM $cpid
wait $cpid
check_eq "SIGTERM mid-create makes create fail" "1" "$?"
check_match "and it says it was interrupted" 'interrupted by signal TERM' "$(cat "$WORK/lc9.err")"
check_eq "SIGTERM mid-create leaves nothing" "" "$(ls "$ROOT")$(leftover_cgroups lc9)"
rm -f "$WORK/in-create"
(exec "$CAPSULE" --root "$ROOT" create --bundle "$B" lc10 2>/dev/null) &
cpid=$!
wait_file 60 "$WORK/in-create" || fail "create reached its createRuntime hook"
kill -KILL $cpid
wait $cpid 2>/dev/null
check_match "SIGKILL mid-create leaves a record" 'lc10' "$(ls "$ROOT")"
cap delete --force lc10
check_eq "delete cleans up after a SIGKILLed create" "" "$(ls "$ROOT")$(leftover_cgroups lc10)"

# --preserve-fds: fd 3 of the caller reaches the container
edit_config "$B" 'c["hooks"] = {}'
set_args "$B" sh -c 'cat <&3'
OUT=$(echo "passed through fd 3" > "$WORK/fd3"; "$CAPSULE" --root "$ROOT" run --preserve-fds 1 --bundle "$B" lc-fds 3< "$WORK/fd3" 2>&1)
check_eq "--preserve-fds 1 passes fd 3" "passed through fd 3" "$OUT"
OUT=$("$CAPSULE" --root "$ROOT" run --bundle "$B" lc-nofds 3< "$WORK/fd3" 2>&1)
check_match "without it fd 3 is closed" 'Bad file descriptor|bad file|can.t open' "$OUT"

# kill --all signals every process of the container; events --stats; ps
set_args "$B" sh -c 'sleep 100 & sleep 100 & wait'
cap run --detach --bundle "$B" lc-all >/dev/null
check_eq "ps lists the container's processes" "3" "$(cap ps --format json lc-all | tr ',' '\n' | grep -c '[0-9]')"
STATS=$(cap events --stats lc-all)
check_match "events --stats gives memory, pids and cpu" '"memory":\{"usage":\{"usage":[0-9]+.*"pids":\{"current":3,.*"cpu":\{"usage":\{"total":[0-9]+' "$STATS"
# events: two stats lines seen, then the container killed: the stream must end by itself
timeout 120 "$CAPSULE" --root "$ROOT" events --interval 1 lc-all > "$WORK/events.out" 2>&1 &
epid=$!
for i in $(seq 1200); do [ "$(grep -c '"type":"stats"' "$WORK/events.out")" -ge 2 ] && break; sleep 0.05; done
check_eq "events streams a line a second" "yes" "$([ "$(grep -c '"type":"stats"' "$WORK/events.out")" -ge 2 ] && echo yes)"
cap kill --all lc-all KILL
wait $epid
check_eq "and ends when the container stops" "0" "$?"
cap kill --all lc-all KILL 2>/dev/null
wait_status lc-all stopped >/dev/null
check_eq "kill --all KILL stops them all" "stopped" "$(status_of lc-all)"
check_match "list shows a stopped container" '^lc-all +0 +stopped' "$(cap list | grep lc-all)"
cap delete lc-all

# --log FILE --log-format json: errors as JSON lines, as containerd reads them
"$CAPSULE" --root "$ROOT" --log "$WORK/log.json" --log-format json start nosuch 2>/dev/null
check_match "errors go to --log as JSON lines" '^\{"level":"error","msg":"container `nosuch` does not exist[^"]*","time":"[0-9T:.-]+Z"\}$' "$(cat "$WORK/log.json")"

finish
