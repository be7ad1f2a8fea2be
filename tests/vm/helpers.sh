# What both guest suites use (tests/vm/lib.sh sources it; so do tests/vm/systemd/test-*.sh,
# after tests/runtime/lib.sh, since tests/vm/lib.sh wants the plain suite's cgroup parent).

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds (code under TCG runs 25-85x slower)
wait_for() {
  local n=$(($1 * 10))
  shift
  while [ $n -gt 0 ]; do
    "$@" && return 0
    sleep 0.1
    n=$((n - 1))
  done
  return 1
}
# json_get JSON PYEXPR: evaluate PYEXPR with j = the parsed JSON
json_get() {
  /usr/bin/python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}
