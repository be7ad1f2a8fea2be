#!/bin/bash
# Behaviours that engines and bundles rely on because runc and crun have them (issue 14): each
# check here failed on capsule before it behaved as runc does.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
# a bundle as rootful podman or containerd hand over: no user namespace
H=$WORK/h
make_bundle "$H" || { fail "make bundle"; finish; exit; }
edit_config "$H" '
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
del c["linux"]["uidMappings"], c["linux"]["gidMappings"]'

# device nodes: the spec's fileMode (default 0666), whatever the runtime's umask
edit_config "$H" 'c["process"]["user"] = {"uid": 1000, "gid": 1000}
c["linux"]["devices"] = [{"path": "/dev/zero9", "type": "c", "major": 1, "minor": 5, "fileMode": 432},
                         {"path": "/dev/full9", "type": "c", "major": 1, "minor": 7}]'
set_args "$H" sh -c 'stat -c %a /dev/null /dev/zero /dev/tty /dev/zero9 /dev/full9; echo x >/dev/null && echo written'
OUT=$(umask 077 && "$CAPSULE" --root "$ROOT" run --bundle "$H" compat-dev 2>&1)
check_eq "device nodes get fileMode (default 0666) under a runtime umask of 077" \
  "666 666 666 660 666 written" "$(echo $OUT)"
edit_config "$B" 'c["process"]["user"] = {"uid": 1000, "gid": 1000}'
set_args "$B" sh -c 'stat -c %a /dev/null; echo x >/dev/null && echo written'
OUT=$(umask 077 && "$CAPSULE" --root "$ROOT" run --bundle "$B" compat-dev-userns 2>&1)
check_eq "with a user namespace the bound host nodes keep the host's mode" \
  "$(stat -c %a /dev/null) written" "$(echo $OUT)"
edit_config "$H" 'c["process"]["user"] = {"uid": 0, "gid": 0}; c["linux"]["devices"] = []'
edit_config "$B" 'c["process"]["user"] = {"uid": 0, "gid": 0}'

# HOME from the rootfs's /etc/passwd for process.user.uid when env has none (or an empty one),
# "/" for an uid it does not list; a HOME the spec gives is kept.  exec does the same.
edit_config "$B" 'c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")]'
set_args "$B" sh -c 'echo "[$HOME]"'
home_as() { # UID ENV-EXTRA...
  local uid=$1
  shift
  edit_config "$B" 'c["process"]["user"] = {"uid": '"$uid"', "gid": 0}
c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")] + '"$*"
  run_in "$B" compat-home
  echo "$OUT"
}
check_eq "no HOME: root's home from /etc/passwd" "[/root]" "$(home_as 0 '[]')"
check_eq "no HOME: uid 1000's home from /etc/passwd" "[/mnt/data]" "$(home_as 1000 '[]')"
check_eq "no HOME: / for an uid /etc/passwd does not list" "[/]" "$(home_as 4242 '[]')"
check_eq "an empty HOME is set too" "[/mnt/data]" "$(home_as 1000 '["HOME="]')"
check_eq "a HOME the spec gives is kept" "[/elsewhere]" "$(home_as 1000 '["HOME=/elsewhere"]')"
mv "$B/rootfs/etc/passwd" "$WORK/passwd" && mkfifo "$B/rootfs/etc/passwd"
check_eq "a hostile /etc/passwd (a fifo) is no user list: /, and no hang" "[/]" "$(home_as 0 '[]')"
rm "$B/rootfs/etc/passwd" && mv "$WORK/passwd" "$B/rootfs/etc/passwd"
home_as 0 '[]' >/dev/null
set_args "$B" sleep 30
cap run --detach --bundle "$B" compat-home-exec >/dev/null 2>&1
check_eq "exec: HOME of its own --user from /etc/passwd" "[/mnt/data]" \
  "$(cap exec --user 1000:1000 compat-home-exec sh -c 'echo "[$HOME]"' 2>&1)"
"$PY" -c 'import json; json.dump({"args": ["sh", "-c", "echo [$HOME]"], "cwd": "/", "user": {"uid": 4242, "gid": 0}, "env": ["PATH=/usr/bin:/bin"]}, open("'"$WORK"'/proc.json", "w"))'
check_eq "exec --process: / for an unknown uid" "[/]" "$(cap exec --process "$WORK/proc.json" compat-home-exec 2>&1)"
cap delete --force compat-home-exec
edit_config "$B" 'c["process"]["env"].append("HOME=/root")'

# a missing process.cwd is made (mkdir -p) inside the root, before root.readonly applies
edit_config "$H" 'c["process"]["cwd"] = "/tmp/new/deep"'
set_args "$H" sh -c 'pwd'
run_in "$H" compat-cwd
check_eq "a missing cwd on a tmpfs is made" "/tmp/new/deep" "$OUT"
edit_config "$H" 'c["process"]["cwd"] = "/made/here"'
run_in "$H" compat-cwd
check_eq "a missing cwd in a read-only root is made before the root turns read-only" "/made/here" "$OUT"
check_eq "and it is a directory of the rootfs, 0755" "755" "$(stat -c %a "$H/rootfs/made/here" 2>&1)"
# a symlink to an absolute path, which the host does not have (the rootfs does)
T=/mnt/capsule-compat-$$
mkdir -p "$H/rootfs$T"
ln -s "$T" "$H/rootfs/escape"
ln -s ../../../../../../../.. "$H/rootfs/up"
edit_config "$H" 'c["process"]["cwd"] = "/escape/sub"'
run_in "$H" compat-cwd
check_eq "a cwd through an absolute symlink is made inside the root" \
  "$T/sub yes no" "$OUT $([ -d "$H/rootfs$T/sub" ] && echo yes || echo no) $([ -e "$T" ] && echo yes || echo no)"
edit_config "$H" 'c["process"]["cwd"] = "/up/tmp/climbed"'
run_in "$H" compat-cwd
check_eq "a cwd through a symlink climbing with .. stays inside the root" "/tmp/climbed no" \
  "$OUT $([ -e /tmp/climbed ] && echo yes || echo no)"
touch "$H/rootfs/afile"
edit_config "$H" 'c["process"]["cwd"] = "/afile/sub"'
run_in "$H" compat-cwd
check_match "a cwd under a file fails clearly" 'process.cwd: chdir `/afile/sub`' "$OUT"
edit_config "$H" 'c["process"]["cwd"] = "/"'

# an exec'd process leads a session and process group of its own, as with runc
set_args "$B" sleep 30
cap run --detach --bundle "$B" compat-pgrp >/dev/null 2>&1
check_eq "exec: own session and process group (pid = pgrp = sid)" "same" \
  "$(cap exec compat-pgrp sh -c 'set -- $(cut -d" " -f1,5,6 /proc/$$/stat); [ "$1" = "$2" ] && [ "$1" = "$3" ] && echo same || echo "$*"' 2>&1)"
check_eq "exec --detach: the same" "same" \
  "$(cap exec --detach compat-pgrp sh -c 'set -- $(cut -d" " -f1,5,6 /proc/$$/stat); [ "$1" = "$2" ] && [ "$1" = "$3" ] && echo same >/tmp/pgrp || echo "$*" >/tmp/pgrp' 2>&1
   cap exec compat-pgrp sh -c 'while [ ! -s /tmp/pgrp ]; do sleep 0.05; done; cat /tmp/pgrp')"
cap delete --force compat-pgrp

# delete --force of what is not there succeeds quietly (runc exits 0), so engines can clean up
OUT=$(cap delete --force compat-nosuch 2>&1)
check_eq "delete --force of an unknown id: exit 0, nothing said" "0 []" "$? [$OUT]"
OUT=$("$CAPSULE" --root "$WORK/no-such-root" delete --force compat-nosuch 2>&1)
check_eq "delete --force under a --root that does not exist: exit 0" "0 []" "$? [$OUT]"
set_args "$B" no-such-program
cap create --bundle "$B" compat-failed >/dev/null 2>&1
OUT=$(cap delete --force compat-failed 2>&1)
check_eq "delete --force of a container whose create failed: exit 0" "0 []" "$? [$OUT]"
set_args "$B" sleep 30
cap create --bundle "$B" compat-twice >/dev/null 2>&1
cap delete --force compat-twice
OUT=$(cap delete --force compat-twice 2>&1)
check_eq "delete --force twice: exit 0" "0 []" "$? [$OUT]"
OUT=$(cap delete compat-nosuch 2>&1)
check_match "delete without --force of an unknown id still fails" 'container `compat-nosuch` does not exist' "$? $OUT"
OUT=$(cap delete --force 'bad/id' 2>&1)
check_match "delete --force of an invalid id still fails, as with runc" 'invalid container id' "$OUT"

# sysctls only where the container has the namespace: ipc ones need an ipc namespace, net.* a
# network namespace (not the host's), kernel.domainname a uts namespace; others are refused.
# (Each value is the host's own, so a runtime that wrongly writes one changes nothing.)
shm=$(cat /proc/sys/kernel/shm_rmid_forced) mq=$(cat /proc/sys/fs/mqueue/msg_max)
port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) swp=$(cat /proc/sys/vm/swappiness)
sysctl_case() { # NAME BUNDLE NAMESPACES-PYTHON SYSCTL-PYTHON EXPECTED-REGEX
  edit_config "$2" 'c["linux"]["namespaces"] = '"$3"'
c["linux"]["sysctl"] = '"$4"'
if not any(n["type"] == "uts" for n in c["linux"]["namespaces"]): c.pop("hostname", None)'
  set_args "$2" sh -c 'echo set; cat /proc/sys/kernel/domainname'
  run_in "$2" compat-sysctl
  check_match "$1" "$5" "$OUT"
}
NS_ALL='[{"type": t} for t in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"]]'
sysctl_case "an ipc sysctl without an ipc namespace is refused" "$B" \
  "[n for n in $NS_ALL if n['type'] != 'ipc']" "{'kernel.shm_rmid_forced': '$shm'}" \
  'linux.sysctl.kernel.shm_rmid_forced: an ipc sysctl needs an ipc namespace'
sysctl_case "fs.mqueue.* without an ipc namespace is refused" "$B" \
  "[n for n in $NS_ALL if n['type'] != 'ipc']" "{'fs.mqueue.msg_max': '$mq'}" \
  'linux.sysctl.fs.mqueue.msg_max: an ipc sysctl needs an ipc namespace'
sysctl_case "with one, they are set" "$B" "$NS_ALL" "{'fs.mqueue.msg_max': '$mq', 'kernel.shm_rmid_forced': '$shm'}" '^set'
sysctl_case "net.* without a network namespace is refused" "$B" \
  "[n for n in $NS_ALL if n['type'] != 'network']" "{'net.ipv4.ip_unprivileged_port_start': '$port'}" \
  'linux.sysctl.net.ipv4.ip_unprivileged_port_start: a net sysctl needs a network namespace'
sysctl_case "net.* in the host's network namespace joined by path is refused" "$H" \
  "[{'type': 'mount'}, {'type': 'pid'}, {'type': 'network', 'path': '/proc/self/ns/net'}]" \
  "{'net.ipv4.ip_unprivileged_port_start': '$port'}" \
  "linux.sysctl.net.ipv4.ip_unprivileged_port_start: the network namespace \`/proc/self/ns/net\` is the host's own"
sysctl_case "kernel.domainname with a uts namespace is set" "$B" "$NS_ALL" "{'kernel.domainname': 'example.org'}" \
  '^example.org$'
sysctl_case "kernel.domainname without a uts namespace is refused" "$B" \
  "[n for n in $NS_ALL if n['type'] != 'uts']" "{'kernel.domainname': 'example.org'}" \
  'linux.sysctl.kernel.domainname: needs a uts namespace'
sysctl_case "kernel.hostname is refused: the hostname field says it" "$B" "$NS_ALL" "{'kernel.hostname': 'h'}" \
  'linux.sysctl.kernel.hostname: conflicts with the "hostname" field'
sysctl_case "a sysctl of no namespace (vm.*) is refused" "$B" "$NS_ALL" "{'vm.swappiness': '$swp'}" \
  "linux.sysctl.vm.swappiness: not in a namespace of the container's"
edit_config "$B" 'c["linux"]["namespaces"] = '"$NS_ALL"'; c["linux"]["sysctl"] = {}; c["hostname"] = "capsule"'
edit_config "$H" 'c["linux"]["namespaces"] = [n for n in '"$NS_ALL"' if n["type"] != "user"]; c["linux"]["sysctl"] = {}; c["hostname"] = "capsule"'

# resources: cpu.quota -1 is unlimited; memory.disableOOMKiller; update --cpuset-cpus/--cpuset-mems
if [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/cpu ]; then
  edit_config "$B" 'c["linux"]["resources"]["cpu"] = {"quota": -1, "period": 50000}
c["linux"]["resources"]["memory"]["disableOOMKiller"] = True'
  set_args "$B" sh -c 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control'
  run_in "$B" compat-res
  check_eq "cpu.quota -1 is unlimited; disableOOMKiller sets memory.oom_control (v1)" \
    "-1 50000 oom_kill_disable 1" "$(echo $OUT)"
  edit_config "$B" 'c["linux"]["resources"]["cpu"] = {"quota": 20000}; del c["linux"]["resources"]["memory"]["disableOOMKiller"]'
  set_args "$B" sleep 30
  cap run --detach --bundle "$B" compat-upd >/dev/null 2>&1
  cap update --cpu-quota -1 compat-upd
  check_eq "update --cpu-quota -1: unlimited" "-1" "$(cap exec compat-upd cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
  cpus=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null)
  if [ -n "$cpus" ]; then
    OUT=$(cap update --cpuset-cpus 0 --cpuset-mems 0 compat-upd 2>&1)
    check_eq "update --cpuset-cpus and --cpuset-mems" "0 0" \
      "$(cap exec compat-upd cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems | tr '\n' ' ' | sed 's/ $//')$OUT"
  fi
  cap delete --force compat-upd
  edit_config "$B" 'del c["linux"]["resources"]["cpu"]'
fi

# hooks get the environment the spec gives them, none of the runtime's
edit_config "$B" 'c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "env | sort > '"$WORK"'/hook-env"], "env": ["A=1", "B=two"]}],
  "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "env | grep -v -e ^PWD= -e ^SHLVL= -e ^_= | sort > '"$WORK"'/hook-env2"]}]}'
set_args "$B" true
OUT=$(env CAPSULE_COMPAT_LEAK=1 "$CAPSULE" --root "$ROOT" run --bundle "$B" compat-hooks 2>&1)
check_eq "a hook's env is the spec's" "A=1 B=two" "$(grep -v -e ^PWD= -e ^SHLVL= -e ^_= "$WORK/hook-env" | tr '\n' ' ' | sed 's/ $//')"
check_eq "a hook without env gets an empty one" "" "$(cat "$WORK/hook-env2")"
edit_config "$B" 'del c["hooks"]'

# linux.devices: nodes anywhere in the rootfs (runc allows paths outside /dev), nested ones, and a
# trailing slash; ".." and relative paths are refused
edit_config "$H" 'c["linux"]["devices"] = [
  {"path": "/dev/zero2/", "type": "c", "major": 1, "minor": 5},
  {"path": "/extra//null9", "type": "c", "major": 1, "minor": 3},
  {"path": "/dev/sub/full9", "type": "c", "major": 1, "minor": 7, "fileMode": 384}]'
set_args "$H" sh -c 'stat -c "%n %F %t:%T %a" /dev/zero2 /extra/null9 /dev/sub/full9; echo x > /extra/null9 && echo ok'
run_in "$H" compat-devpath
check_eq "devices with a trailing slash, outside /dev and nested are made" \
  "/dev/zero2 character special file 1:5 666 /extra/null9 character special file 1:3 666 /dev/sub/full9 character special file 1:7 600 ok" \
  "$(echo $OUT)"
edit_config "$H" 'c["linux"]["devices"] = [{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}]'
run_in "$H" compat-devpath
check_match "a device path with .. is refused" 'linux.devices\[0\].path: "/dev/../etc/x" is not an absolute path of a file without ".."' "$OUT"
edit_config "$H" 'c["linux"]["devices"] = [{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]'
run_in "$H" compat-devpath
check_match "a relative device path is refused" 'linux.devices\[0\].path: "dev/x" is not an absolute' "$OUT"
edit_config "$H" 'c["linux"]["devices"] = [{"path": "/", "type": "c", "major": 1, "minor": 3}]'
run_in "$H" compat-devpath
check_match "a device path of / is refused" 'linux.devices\[0\].path: "/" is not an absolute path of a file' "$OUT"
edit_config "$H" 'c["linux"]["devices"] = []'

# mount destinations through symlinks resolve inside the root as with runc (securejoin): absolute
# or relative, at any depth, existing or dangling (the target is made inside the rootfs)
mkdir -p "$H/rootfs/a" "$H/rootfs/target"
ln -s /target "$H/rootfs/a/abs"
ln -s /made/by/runtime "$H/rootfs/dangling"
ln -s ../../../rel-target "$H/rootfs/a/rel"
edit_config "$H" 'for d in ["/a/abs/sub", "/dangling", "/a/rel/x"]:
    c["mounts"].append({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})'
set_args "$H" sh -c 'stat -f -c %T /target/sub /made/by/runtime /rel-target/x 2>&1'
run_in "$H" compat-mntlink
check_eq "mounts through an absolute symlink below the top, a dangling one and a relative one" \
  "tmpfs tmpfs tmpfs" "$(echo $OUT)"
check_eq "what was made is inside the rootfs, not on the host" "yes yes no no" \
  "$([ -d "$H/rootfs/made/by/runtime" ] && echo yes) $([ -d "$H/rootfs/rel-target/x" ] && echo yes) $([ -e /made ] && echo yes || echo no) $([ -e /rel-target ] && echo yes || echo no)"
ln -s loop "$H/rootfs/loop"
edit_config "$H" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ["/a/abs/sub", "/dangling", "/a/rel/x"]]
c["mounts"].append({"destination": "/loop/x", "type": "tmpfs", "source": "tmpfs"})'
run_in "$H" compat-mntlink
check_match "a symlink loop is a clear error" 'mounts: `/loop/x`: resolve `/loop/x` in the rootfs: Too many levels of symbolic links' "$OUT"
edit_config "$H" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/loop/x"]'

# rootfsPropagation shared works (pivot_root refuses a shared new root: it is made shared after)
for p in shared rshared; do
  edit_config "$B" 'c["linux"]["rootfsPropagation"] = "'$p'"'
  set_args "$B" sh -c 'awk "\$5 == \"/\"" /proc/self/mountinfo'
  run_in "$B" compat-prop
  check_match "rootfsPropagation $p: the container's root is shared" '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / [^ ]+ .*shared:[0-9]+.* - ' "$OUT"
done
edit_config "$B" 'c["linux"]["rootfsPropagation"] = "rslave"'
run_in "$B" compat-prop
check_nomatch "rootfsPropagation rslave: not shared" 'shared:' "$OUT"
edit_config "$B" 'del c["linux"]["rootfsPropagation"]'

# with a user namespace, a bind source only the caller can reach (a directory above it closed
# to others) mounts, as runc opens sources before entering
mkdir -p "$WORK/locked/data"
chmod 700 "$WORK/locked"
chmod 755 "$WORK/locked/data"
echo "behind a locked door" > "$WORK/locked/data/file"
chmod 644 "$WORK/locked/data/file"
echo "one file" > "$WORK/locked/single"
chmod 644 "$WORK/locked/single"
touch "$B/rootfs/single"
edit_config "$B" 'c["mounts"].append({"destination": "/mnt/data", "type": "bind", "source": "'"$WORK"'/locked/data", "options": ["rbind", "ro"]})
c["mounts"].append({"destination": "/single", "type": "bind", "source": "'"$WORK"'/locked/single", "options": ["bind", "ro"]})'
set_args "$B" sh -c 'cat /mnt/data/file /single; touch /mnt/data/x 2>&1 | grep -o "Read-only file system"'
run_in "$B" compat-locked
check_eq "user namespace: bind sources behind a directory closed to the container's root mount (dir and file, ro kept)" \
  "behind a locked door one file Read-only file system" "$(echo $OUT)"
edit_config "$B" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/mnt/data", "/single")]'
edit_config "$B" 'c["mounts"].append({"destination": "/mnt/data", "type": "bind", "source": "'"$WORK"'/no-such-dir", "options": ["rbind"]})'
run_in "$B" compat-locked
check_match "a missing bind source is still a clear error" 'mounts: bind source `[^`]*/no-such-dir` for `/mnt/data`: No such file or directory' "$OUT"
edit_config "$B" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/mnt/data"]'

# joining another container's user and pid namespaces by path (a pod sharing its processes):
# root there, as runc becomes, so the rootfs can be set up
set_args "$B" sleep 30
cap run --detach --bundle "$B" compat-pod >/dev/null 2>&1
pid=$(cap state compat-pod | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
J=$WORK/j
make_bundle "$J" sh -c 'id -u; tr "\0" " " < /proc/1/cmdline' >/dev/null
edit_config "$J" 'c["linux"]["namespaces"] = [n if n["type"] not in ("pid", "user") else {"type": n["type"], "path": "/proc/'"$pid"'/ns/" + n["type"]} for n in c["linux"]["namespaces"]]
del c["linux"]["uidMappings"], c["linux"]["gidMappings"]'
run_in "$J" compat-pod-2
check_eq "joined user and pid namespaces: root inside, the pod's pid 1 seen" "0 sleep 30" "$(echo $OUT)"
cap delete --force compat-pod

# a container process that fails before the runtime's first message: its reason, every time
# (it raced: "sync: send message 3: Broken pipe", "Connection reset by peer")
touch "$WORK/not-a-namespace"
edit_config "$H" 'c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid", "path": "'"$WORK"'/not-a-namespace"}]
c.pop("hostname", None)'
said=$(for i in 1 2 3 4 5 6 7 8 9 10; do cap run --bundle "$H" compat-early 2>&1; done | sort -u)
check_eq "an early failure always reports its own reason" \
  "capsule: linux.namespaces: join pid namespace \`$WORK/not-a-namespace\`: Invalid argument" "$said"
edit_config "$H" 'c["linux"]["namespaces"] = [n for n in '"$NS_ALL"' if n["type"] != "user"]; c["hostname"] = "capsule"'

# linux.memoryPolicy: set_mempolicy for the container's process (inherited by what it runs)
if [ -e /proc/self/numa_maps ] && [ -d /sys/devices/system/node/node0 ]; then
  set_args "$B" sh -c 'grep -m1 -oE "(bind|interleave|prefer|default)[^ ]*" /proc/self/numa_maps'
  edit_config "$B" 'c["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}'
  run_in "$B" compat-mpol
  check_eq "memoryPolicy MPOL_BIND 0" "bind:0" "$OUT"
  edit_config "$B" 'c["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}'
  run_in "$B" compat-mpol
  check_eq "memoryPolicy MPOL_INTERLEAVE with MPOL_F_STATIC_NODES" "interleave=static:0" "$OUT"
fi
edit_config "$B" 'c["linux"]["memoryPolicy"] = {"mode": "MPOL_NOPE", "nodes": "0"}'
run_in "$B" compat-mpol
check_match "an unknown memoryPolicy mode is refused" 'linux.memoryPolicy.mode: unknown mode "MPOL_NOPE"' "$OUT"
edit_config "$B" 'c["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0-x"}'
run_in "$B" compat-mpol
check_match "a bad node list is refused" 'linux.memoryPolicy.nodes: "0-x" is not a list of nodes' "$OUT"
edit_config "$B" 'c["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "1000"}'
run_in "$B" compat-mpol
check_match "a node the host lacks: the kernel's refusal, named" 'linux.memoryPolicy: set_mempolicy: Invalid argument' "$OUT"
edit_config "$B" 'del c["linux"]["memoryPolicy"]'

# blockIO.weight and update --blkio-weight: applied where the kernel has a weight (v1
# blkio.weight or blkio.bfq.weight, v2 io.bfq.weight or io.weight), accepted as runc does where not
edit_config "$B" 'c["linux"]["resources"]["blockIO"] = {"weight": 500}'
set_args "$B" sh -c 'cat /sys/fs/cgroup/blkio/blkio.weight /sys/fs/cgroup/blkio/blkio.bfq.weight /sys/fs/cgroup/io.bfq.weight /sys/fs/cgroup/io.weight 2>/dev/null | head -1; echo ran'
run_in "$B" compat-blkio
check_match "blockIO.weight: the container runs, with the weight where the kernel has one" \
  '^(500|default 500)?[[:space:]]*ran$|no weight file' "$(echo $OUT)"
edit_config "$B" 'del c["linux"]["resources"]["blockIO"]'
set_args "$B" sleep 30
cap run --detach --bundle "$B" compat-blkio-upd >/dev/null 2>&1
OUT=$(cap update --blkio-weight 300 compat-blkio-upd 2>&1)
check_eq "update --blkio-weight is accepted" "0" "$?"
check_nomatch "and is no unknown option" 'unknown option' "$OUT"
OUT=$(cap update --blkio-weight 5 compat-blkio-upd 2>&1)
check_match "update --blkio-weight out of range is refused" 'blkio-weight: 5 is out of range \[10, 1000\]' "$OUT"
cap delete --force compat-blkio-upd
edit_config "$B" 'c["linux"]["resources"]["blockIO"] = {"weight": 5}'
run_in "$B" compat-blkio
check_match "blockIO.weight out of range is refused" 'linux.resources.blockIO.weight: 5 is out of range' "$OUT"
edit_config "$B" 'del c["linux"]["resources"]["blockIO"]'

# idmapped bind mounts ("idmap", "ridmap", or the mount's own uidMappings/gidMappings), as runc
mkdir -p "$WORK/idm" "$WORK/idm2"
echo "root's" > "$WORK/idm/file"
chmod 700 "$WORK/idm" && chmod 600 "$WORK/idm/file"
echo "uid 1000's" > "$WORK/idm2/file"
chown -R 1000:1000 "$WORK/idm2" && chmod 700 "$WORK/idm2" && chmod 600 "$WORK/idm2/file"
ln -s /mnt "$B/rootfs/to-mnt"
edit_config "$B" 'c["mounts"].append({"destination": "/to-mnt/idm", "type": "bind", "source": "'"$WORK"'/idm", "options": ["bind", "idmap"]})
m = [{"containerID": 1000, "hostID": 100000, "size": 1}]
c["mounts"].append({"destination": "/mnt/idm2", "type": "bind", "source": "'"$WORK"'/idm2", "options": ["rbind"], "uidMappings": m, "gidMappings": m})'
set_args "$B" sh -c 'stat -c %u:%g /mnt/idm /mnt/idm2; cat /mnt/idm/file /mnt/idm2/file; touch /mnt/idm/made-inside'
run_in "$B" compat-idmap
check_eq "idmap: the host's root files are the container root's, through a symlinked destination; own mappings map uid 1000 to it" \
  "0:0 0:0 root's uid 1000's" "$(echo $OUT)"
check_eq "what the container's root makes there is the host root's" "0" "$(stat -c %u "$WORK/idm/made-inside" 2>&1)"
edit_config "$B" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/to-mnt/idm", "/mnt/idm2")]'
edit_config "$H" 'c["mounts"].append({"destination": "/mnt/idm", "type": "bind", "source": "'"$WORK"'/idm", "options": ["bind", "idmap"]})'
run_in "$H" compat-idmap
check_match "idmap without mappings of its own needs a user namespace" 'mounts\[[0-9]+\]: an idmapped mount without uidMappings of its own needs a user namespace' "$OUT"
edit_config "$H" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/mnt/idm"]
c["mounts"].append({"destination": "/mnt/idm", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]})'
run_in "$H" compat-idmap
check_match "only a bind mount can be idmapped" 'only a bind mount can be idmapped' "$OUT"
edit_config "$H" 'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/mnt/idm"]'

finish
