#!/bin/bash
# What a process inside a capsule container can see and do.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }

set_args "$B" sh -c 'echo pid=$$'
run_in "$B" iso-pid
check_eq "process is pid 1 in its pid namespace" "pid=1" "$OUT"

set_args "$B" hostname
run_in "$B" iso-host
check_eq "hostname comes from the spec" "capsule" "$OUT"

set_args "$B" sh -c 'id -u; cat /proc/self/uid_map'
run_in "$B" iso-uid
check_match "uid 0 inside is mapped to 100000 outside" '^0 *0 +100000 +65536$' "$(echo $OUT)"

# uid mapping seen from outside: the process runs as host uid 100000
set_args "$B" sleep 30
cap run --detach --bundle "$B" iso-out >/dev/null 2>&1
pid=$(cap state iso-out | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
check_eq "from outside the container process runs as host uid 100000" "100000" \
  "$(awk '/^Uid:/ {print $2}' /proc/$pid/status)"
cap delete --force iso-out

set_args "$B" sh -c 'touch /etc/x 2>&1; echo rc=$?'
run_in "$B" iso-ro
check_match "root filesystem is read-only" 'Read-only file system.*rc=1' "$(echo $OUT)"

set_args "$B" sh -c 'touch /tmp/x && echo tmp-ok'
run_in "$B" iso-tmp
check_eq "/tmp is a writable tmpfs" "tmp-ok" "$OUT"

set_args "$B" sh -c 'wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware 2>/dev/null | wc -l; echo x > /proc/sys/kernel/domainname'
run_in "$B" iso-mask
check_match "masked paths read as empty" '^0 0 0' "$(echo $OUT)"
check_match "readonlyPaths such as /proc/sys are read-only" 'Read-only file system' "$OUT"

# mount flags: the v1 cgroup tree gets its flags in one recursive mount_setattr, device nodes bound
# from the host one mount_setattr each, masked files those of the /dev/null they bind, a bind's
# options and read-only paths one mount_setattr each; with and without a user namespace (mknod'd
# nodes, masked files remounted)
mount_flags() {
  set_args "$B" sh -c 'awk "{print \$5, \$6}" /proc/self/mountinfo'
  run_in "$B" "iso-flags$1"
  bad=$(echo "$OUT" | awk '
    function has(o, f) { return ("," o ",") ~ ("," f ",") }
    $1 ~ /^\/sys\/fs\/cgroup(\/|$)/ { n++; if (!has($2, "ro") || !has($2, "nosuid") || !has($2, "nodev") || !has($2, "noexec")) print $1 }
    $1 ~ /^\/dev\/(null|zero|full|random|urandom|tty)$/ || $1 == "/proc/keys" || $1 == "/proc/timer_list" {
      n++; if (!has($2, "nosuid") || !has($2, "noexec")) print $1 }
    $1 == "/usr" { n++; if (!has($2, "ro") || !has($2, "nosuid") || !has($2, "nodev")) print $1 }
    $1 == "/proc/sys" || $1 == "/proc/sysrq-trigger" {
      n++; if (!has($2, "ro") || !has($2, "nosuid") || !has($2, "nodev") || !has($2, "noexec")) print $1 }
    END { if (n == 0) print "no such mounts at all" }')
  check_eq "every cgroup mount and read-only path ro,nosuid,nodev,noexec, /usr ro,nosuid,nodev, every device and masked file nosuid,noexec$2" "" "$bad"
}
mount_flags "" ""
cp "$B/config.json" "$WORK/iso-config.json"
edit_config "$B" 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
del c["linux"]["uidMappings"], c["linux"]["gidMappings"]'
mount_flags "-root" " (no user namespace)"
cp "$WORK/iso-config.json" "$B/config.json"

set_args "$B" sh -c 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "'
run_in "$B" iso-lo
check_eq "the network namespace has only lo" "lo" "$OUT"

set_args "$B" sh -c 'cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; ip route get 192.0.2.1 2>&1; tail -n +2 /proc/net/route | wc -l'
run_in "$B" iso-route
check_match "lo is up" '0x9' "$OUT"
check_match "no route out of the sandbox" 'Network is unreachable' "$OUT"
check_match "the routing table is empty" '^0$' "$(echo "$OUT" | tail -1)"

set_args "$B" sh -c 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status'
run_in "$B" iso-caps
# CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29)
check_match "CapEff is what the spec says" 'CapEff:[[:space:]]+0000000020000420' "$OUT"
check_match "CapBnd is what the spec says" 'CapBnd:[[:space:]]+0000000020000420' "$OUT"
check_match "no_new_privs is set" 'NoNewPrivs:[[:space:]]+1' "$OUT"
check_match "a seccomp filter is installed" 'Seccomp:[[:space:]]+2' "$OUT"

edit_config "$B" 'c["process"]["capabilities"] = {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}'
set_args "$B" sh -c 'grep CapEff /proc/self/status'
run_in "$B" iso-caps2
check_match "a different capability set is honoured" 'CapEff:[[:space:]]+0000000000000001' "$OUT"

# seccomp: a denied syscall returns its errno
B2=$WORK/b2
make_bundle "$B2"
edit_config "$B2" '
rules = c["linux"]["seccomp"]["syscalls"]
rules[0]["names"].remove("mkdir")
rules.append({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42})'
set_args "$B2" "$PY" -c 'import os, ctypes
try:
    os.mkdir("/tmp/d"); print("allowed")
except OSError as e:
    print("errno", e.errno)
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x20000)
print("unshare", r, ctypes.get_errno())'
run_in "$B2" iso-seccomp
check_match "a seccomp-denied syscall returns its errnoRet" 'errno 42' "$OUT"
check_match "unshare is denied by the default profile with EPERM" 'unshare -1 1$' "$OUT"

set_args "$B" sh -c 'ls /dev | tr "\n" " "'
run_in "$B" iso-dev
for d in full null ptmx pts random shm stderr stdin stdout tty urandom zero; do
  check_match "/dev/$d exists" "(^| )$d " "$OUT"
done
check_nomatch "no host disks in /dev" 'vda|sda|nvme|mem ' "$OUT"

set_args "$B" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max'
run_in "$B" iso-cg
check_eq "the container sees its own cgroup limits" "1073741824 1024" "$(echo $OUT)"

set_args "$B" "$PY" -c 'print(open("/proc/self/status").read())'
OUT=$(trap '' INT PIPE HUP; "$CAPSULE" --root "$ROOT" run --bundle "$B" iso-sig 2>&1)
check_match "the container starts with no signal blocked" 'SigBlk:[[:space:]]+0000000000000000' "$OUT"
check_match "nor ignored (the runtime's ignored INT/HUP do not leak in)" 'SigIgn:[[:space:]]+0000000001001000' "$OUT"

set_args "$B" sh -c 'echo $PATH; pwd'
edit_config "$B" 'c["process"]["cwd"] = "/mnt/data"; c["process"]["user"] = {"uid": 1000, "gid": 1000}'
set_args "$B" sh -c 'id -u; id -g; pwd'
run_in "$B" iso-user
check_eq "process.user and cwd are honoured" "1000 1000 /mnt/data" "$(echo $OUT)"

# CVE-2024-21626: a cwd through a descriptor the runtime holds (here one the caller passes with
# --preserve-fds, in the v2 guest the cgroup's) must not put the process on the host's tree
host_root=$(stat -c %d:%i /)
edit_config "$B" 'c["process"]["cwd"] = "/proc/self/fd/3"; c["process"]["user"] = {"uid": 0, "gid": 0}'
set_args "$B" sh -c 'stat -c %d:%i ../../../../../../../..'
OUT=$("$CAPSULE" --root "$ROOT" run --preserve-fds 1 --bundle "$B" iso-cwdfd 2>&1 3</)
check_match "process.cwd through a held host descriptor is refused" 'is outside the container' "$OUT"
check_nomatch "and nothing ran on the host's root" "^$host_root\$" "$OUT"
edit_config "$B" 'c["process"]["cwd"] = "/"'
set_args "$B" sleep 30
cap run --detach --bundle "$B" iso-cwdexec >/dev/null 2>&1
OUT=$("$CAPSULE" --root "$ROOT" exec --preserve-fds 1 --cwd /proc/self/fd/3 iso-cwdexec sh -c 'stat -c %d:%i ../../../../../../../..' 2>&1 3</)
check_match "exec --cwd through a held host descriptor is refused" 'is outside the container' "$OUT"
cap delete --force iso-cwdexec

# CVE-2019-5736: while the runtime works inside a container, a process there must not be able
# to rewrite its binary through /proc/PID/exe.  In a user namespace that does not map the
# binary's owner it cannot open it for writing, and the host's file is used (the shim's way);
# where container root could (no user namespace, or one that maps host root), the runtime runs
# from a sealed in-memory copy.
set_args "$B" true
cap create --bundle "$B" --pid-file "$WORK/exe.pid" iso-exe >/dev/null 2>&1
pid=$(cat "$WORK/exe.pid" 2>/dev/null)
check_eq "in a user namespace that maps no owner of the binary, the host's file is used" \
  "$(readlink -f "$CAPSULE")" "$(readlink /proc/$pid/exe 2>&1)"
OUT=$(cap exec iso-exe sh -c 'exec 3>>/proc/1/exe && echo opened' 2>&1)
check_match "and container root cannot open it for writing through /proc/1/exe" 'Permission denied' "$OUT"
check_nomatch "  (nothing was opened)" 'opened' "$OUT"
cap delete --force iso-exe
sealed_copy() { # sealed_copy NAME: a created container's runtime process runs from a sealed memfd
  cap create --bundle "$B" --pid-file "$WORK/exe.pid" iso-exe >/dev/null 2>&1
  pid=$(cat "$WORK/exe.pid" 2>/dev/null)
  check_match "$1: the runtime's process in a created container runs from a memfd" \
    '^/memfd:capsule' "$(readlink /proc/$pid/exe 2>&1)"
  check_eq "$1: sealed against writes, growth and shrinking" "15" \
    "$("$PY" -c 'import fcntl, sys; print(fcntl.fcntl(open(sys.argv[1], "rb"), 1034) & 15)' /proc/$pid/exe 2>&1)"
  cap delete --force iso-exe
}
cp "$B/config.json" "$WORK/iso-config.json"
edit_config "$B" 'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]'
sealed_copy "a user namespace that maps host root"
edit_config "$B" 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
del c["linux"]["uidMappings"], c["linux"]["gidMappings"]'
sealed_copy "no user namespace"
cp "$WORK/iso-config.json" "$B/config.json"

# the shim's sandboxes ask for a root without setuid or device nodes (annotation)
edit_config "$B" 'c.setdefault("annotations", {})["run.capsule.rootfs.options"] = "nosuid,nodev"'
set_args "$B" sh -c 'awk "\$5 == \"/\" {print \$6}" /proc/self/mountinfo'
run_in "$B" iso-rootopts
check_match "run.capsule.rootfs.options makes the root nosuid,nodev" '(^|,)nosuid(,|$).*' "$OUT"
check_match "  (and nodev)" '(^|,)nodev(,|$)' "$OUT"
edit_config "$B" 'c["annotations"]["run.capsule.rootfs.options"] = "nosuid,suid"'
run_in "$B" iso-rootbad
check_match "an unknown root option is refused by name" 'unknown option "suid"' "$OUT"
edit_config "$B" 'del c["annotations"]["run.capsule.rootfs.options"]'

finish
