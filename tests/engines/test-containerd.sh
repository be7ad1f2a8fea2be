#!/bin/bash
# containerd (started here with its own root, state and socket, stopped by pid) runs capsule
# through its runc v2 shim with BinaryName = capsule (ctr --runc-binary).
. "$(dirname "$0")/lib.sh"
command -v containerd >/dev/null && command -v ctr >/dev/null || skip_all "containerd is not installed (scripts/setup installs it)"
command -v podman >/dev/null || skip_all "podman is needed to write the test image as an OCI archive"

CT=$WORK/containerd
mkdir -p "$CT"
cat > "$CT/config.toml" <<CONF
version = 2
root = "$CT/root"
state = "$CT/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CT/containerd.sock"
[ttrpc]
  address = "$CT/containerd.sock.ttrpc"
CONF
containerd --config "$CT/config.toml" > "$CT/log" 2>&1 &
CT_PID=$!
engine_cleanup() {
  local id
  for id in $(c tasks ls -q 2>/dev/null); do c tasks kill -s KILL "$id" >/dev/null 2>&1; done
  sleep 0.3
  for id in $(c containers ls -q 2>/dev/null); do c tasks delete -f "$id" >/dev/null 2>&1; c containers delete "$id" >/dev/null 2>&1; done
  kill "$CT_PID" 2>/dev/null && wait "$CT_PID" 2>/dev/null
  grep -o "$CT[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  cleanup_cgroups
  cleanup
}
trap engine_cleanup EXIT
c() { ctr -a "$CT/containerd.sock" -n capsule-test "$@"; }
for i in $(seq 100); do [ -S "$CT/containerd.sock" ] && break; sleep 0.05; done
check_eq "containerd is up" "0" "$(c version >/dev/null 2>&1; echo $?)"

# the image: a busybox tree, written as an OCI archive by podman, imported into containerd
make_image_rootfs "$WORK/img"
export CONTAINERS_CONF=/dev/null
pm() { podman --root "$WORK/pm-storage" --runroot "$WORK/pm-run" --storage-driver overlay --cgroup-manager cgroupfs --events-backend file "$@"; }
pm import "$WORK/rootfs.tar" "$IMAGE" >/dev/null 2>&1 && pm save --format oci-archive -o "$WORK/image.tar" "$IMAGE" >/dev/null 2>&1
c images import "$WORK/image.tar" >/dev/null 2>&1
check_match "the image imports" 'capsule-test' "$(c images ls -q)"

n=0
run() { n=$((n + 1)); c run --runc-binary "$CAPSULE" --cgroup "$CG_PARENT/ct-$n" "$@"; }

check_eq "output of a container" "hello" "$(run --rm "$IMAGE" t1 echo hello)"
run --rm "$IMAGE" t2 sh -c 'exit 42'
check_eq "exit code of a container" "42" "$?"
OUT=$(run --rm "$IMAGE" t3 no-such-program 2>&1)
check_match "a failing create: capsule's error reaches containerd's user (--log JSON)" 'executable `no-such-program` not found' "$OUT"

run -d "$IMAGE" t4 sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
check_match "-d: the task runs" 't4 +[0-9]+ +RUNNING' "$(c tasks ls)"
check_eq "exec into it" "in-exec" "$(c tasks exec --exec-id e1 t4 echo in-exec)"
check_match "exec joins its pid namespace" 'trap' "$(c tasks exec --exec-id e2 t4 cat /proc/1/cmdline | tr '\0' ' ')"
check_match "ps lists its processes" '[0-9]' "$(c tasks ps t4)"
c tasks kill -s SIGTERM t4 >/dev/null
for i in $(seq 50); do c tasks ls | grep -q 't4.*STOPPED' && break; sleep 0.1; done
check_match "kill SIGTERM stops it" 't4 +[0-9]+ +STOPPED' "$(c tasks ls)"
c tasks delete t4 >/dev/null && c containers delete t4
run -d "$IMAGE" t5 sleep 100 >/dev/null
c tasks kill -s SIGKILL t5 >/dev/null
for i in $(seq 50); do c tasks ls | grep -q 't5.*STOPPED' && break; sleep 0.1; done
check_match "kill SIGKILL stops it" 't5 +[0-9]+ +STOPPED' "$(c tasks ls)"
c tasks delete t5 >/dev/null && c containers delete t5

run --rm --memory-limit 33554432 "$IMAGE" t6 sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived' >/dev/null 2>&1
check_eq "--memory-limit: a hog is OOM-killed (137)" "137" "$?"
check_match "--read-only" 'Read-only file system' "$(run --rm --read-only "$IMAGE" t7 touch /x 2>&1)"
check_eq "a new network namespace: only lo" "lo" "$(run --rm "$IMAGE" t8 ls /sys/class/net)"
# ctr run has no --user: root adds a user and su(1) becomes it
check_eq "a non-root process writes /dev/null (mode 0666 whatever the umask)" "1000 written" \
  "$(run --rm "$IMAGE" t12 sh -c 'echo "u:x:1000:1000::/:/bin/sh" >>/etc/passwd; su u -c "echo x >/dev/null && echo \$(id -u) written"' 2>&1)"
check_eq "--uidmap: a user namespace (root inside is 100000 outside)" "0 100000 65536" \
  "$(run --rm --uidmap 0:100000:65536 --gidmap 0:100000:65536 "$IMAGE" t9 cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
# ctr wants a terminal of its own for -t: script(1) gives it one
check_match "-t: a pty" '/dev/pts/[0-9]+' \
  "$(script -qec "ctr -a $CT/containerd.sock -n capsule-test run --runc-binary $CAPSULE --cgroup $CG_PARENT/ct-tty --rm -t $IMAGE t10 tty" /dev/null | tr -d '\r')"
# ctr never closes a container's stdin, so read one line
check_eq "stdin reaches the container" "through stdin" "$(echo 'through stdin' | timeout 30 ctr -a "$CT/containerd.sock" -n capsule-test run --runc-binary "$CAPSULE" --cgroup "$CG_PARENT/ct-in" --rm "$IMAGE" t11 head -n1)"

check_eq "--rm leaves no task or container" "" "$(c tasks ls -q)$(c containers ls -q)"
check_eq "and no container cgroup" "" "$(find /sys/fs/cgroup -path "*$CG_PARENT/ct-*" -type d 2>/dev/null)"
finish
