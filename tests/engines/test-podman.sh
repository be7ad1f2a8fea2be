#!/bin/bash
# podman runs capsule in place of runc: its own storage, runroot and config in $WORK, cgroupfs,
# file events, no network.
. "$(dirname "$0")/lib.sh"
command -v podman >/dev/null || skip_all "podman is not installed (scripts/setup installs it)"

cat > "$WORK/containers.conf" <<CONF
[containers]
# root here lacks CAP_SYS_RESOURCE: podman's default nofile/nproc of 1048576 cannot be set
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "capsule"
[engine.runtimes]
capsule = ["$CAPSULE"]
CONF
export CONTAINERS_CONF=$WORK/containers.conf
pm() { podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay "$@"; }
# podman passes capsule no --root (nor to the cleanup its conmon runs), so capsule's state is in
# /run/capsule, the machine's: judge only the records of this test's bundles (under $WORK)
our_records() { grep -l "\"bundle\":\"$WORK/" /run/capsule/*/state.json 2>/dev/null; }
run() { pm run --cgroup-parent "$CG_PARENT" "$@"; }
engine_cleanup() {
  pm rm -af -t 0 >/dev/null 2>&1
  pm system reset -f >/dev/null 2>&1 || true
  cleanup_cgroups
  cleanup
}
trap engine_cleanup EXIT

make_image_rootfs "$WORK/img"
pm import "$WORK/rootfs.tar" "$IMAGE" >/dev/null 2>&1
check_match "the test image imports" 'capsule-test' "$(pm images)"
check_match "podman reports capsule as its runtime" "$CAPSULE" "$(pm info --format '{{.Host.OCIRuntime.Path}}')"

check_eq "output of a container" "hello" "$(run --rm "$IMAGE" echo hello)"
run --rm "$IMAGE" sh -c 'exit 42'
check_eq "exit code of a container" "42" "$?"
OUT=$(run --rm "$IMAGE" no-such-program 2>&1)
check_match "a missing program: the runtime's reason reaches the user" 'executable `no-such-program` not found' "$OUT"

run -d --name pm-d "$IMAGE" sh -c 'trap "exit 0" TERM; echo started; while :; do sleep 0.1; done' >/dev/null
check_eq "-d: the container runs" "running" "$(pm inspect -f '{{.State.Status}}' pm-d)"
check_match "capsule's record of it is found by its bundle (what the end checks is gone)" \
  "/run/capsule/$(pm inspect -f '{{.ID}}' pm-d)/state.json" "$(our_records)"
check_eq "exec into it" "in-exec" "$(pm exec pm-d echo in-exec)"
check_match "exec joins its pid namespace (pid 1 is the container's shell)" 'trap' "$(pm exec pm-d cat /proc/1/cmdline | tr '\0' ' ')"
check_eq "exec's exit status" "3" "$(pm exec pm-d sh -c 'exit 3'; echo $?)"
pm stop -t 5 pm-d >/dev/null
check_eq "stop with SIGTERM (the process handles it)" "exited 0" "$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' pm-d)"
check_match "logs" 'started' "$(pm logs pm-d)"
pm start pm-d >/dev/null
check_eq "a stopped container starts again" "running" "$(pm inspect -f '{{.State.Status}}' pm-d)"
pm restart -t 2 pm-d >/dev/null
check_eq "restart" "running" "$(pm inspect -f '{{.State.Status}}' pm-d)"
check_eq "logs after restarts" "3" "$(pm logs pm-d | grep -c started)"
pm rm -f -t 0 pm-d >/dev/null

run -d --name pm-k "$IMAGE" sleep 100 >/dev/null
start=$(date +%s)
pm stop -t 1 pm-k >/dev/null 2>&1
check_eq "stop falls back to SIGKILL for a process that ignores SIGTERM" "exited 137" "$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' pm-k)"
pm rm pm-k >/dev/null

run --rm --memory 32m "$IMAGE" sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived' >/dev/null 2>&1
check_eq "--memory: a hog is OOM-killed (137)" "137" "$?"
OUT=$(run --rm --pids-limit 8 "$IMAGE" sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; wait' 2>&1)
check_match "--pids-limit holds" "can't fork|Resource temporarily unavailable" "$OUT"
check_match "--read-only" 'Read-only file system' "$(run --rm --read-only "$IMAGE" touch /x 2>&1)"
check_eq "--network none: only lo" "lo" "$(run --rm --network none "$IMAGE" ls /sys/class/net)"
check_eq "--user" "1000 1000" "$(run --rm --user 1000:1000 "$IMAGE" sh -c 'echo $(id -u) $(id -g)')"
check_eq "--user: a non-root process writes /dev/null (mode 0666 whatever the umask)" "written" \
  "$(run --rm --user 1000:1000 "$IMAGE" sh -c 'echo x >/dev/null && echo written' 2>&1)"
check_match "--cap-drop ALL" 'CapEff:[[:space:]]+0000000000000000' "$(run --rm --cap-drop ALL "$IMAGE" grep CapEff /proc/self/status)"
check_eq "-i: stdin reaches the container" "through stdin" "$(echo 'through stdin' | run --rm -i "$IMAGE" cat)"
check_match "-t: a pty" '^/dev/pts/[0-9]+' "$(run --rm -t "$IMAGE" tty | tr -d '\r')"

check_eq "rm leaves no container state in capsule's root" "" "$(pm ps -aq)$(our_records)"
check_eq "and no container cgroup" "" "$(find /sys/fs/cgroup -path "*$CG_PARENT/libpod-*" -type d 2>/dev/null)"

finish
