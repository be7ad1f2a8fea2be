#!/bin/bash
# More of config.json honoured: sysctl, overlay mounts, extra devices, cgroupsPath, annotations
# and process fields that the other files do not reach.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }

# the value inside differs from the host's, whatever the host has
host_rmid=$(cat /proc/sys/kernel/shm_rmid_forced)
want_rmid=$((1 - host_rmid))
edit_config "$B" 'c["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "'$want_rmid'"}'
set_args "$B" sh -c 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced'
run_in "$B" cfg-sysctl
check_eq "namespaced sysctls are set inside" "80 $want_rmid" "$(echo $OUT)"
check_eq "and not on the host" "$host_rmid" "$(cat /proc/sys/kernel/shm_rmid_forced)"
edit_config "$B" 'c["linux"]["sysctl"] = {"kernel.no_such_knob": "1"}'
run_in "$B" cfg-sysctl-bad
check_match "an unknown sysctl fails naming it" 'linux.sysctl.kernel.no_such_knob' "$OUT"
edit_config "$B" 'c["linux"]["sysctl"] = {}'

# an overlay: a read-only lower layer and a writable upper layer owned by the container's root
mkdir -p "$WORK/lower" "$WORK/upper" "$WORK/work"
echo "from the image" > "$WORK/lower/base.txt"
# an image for a user namespace belongs to the mapped range (copy-up keeps the owner)
chown -R 100000:100000 "$WORK/lower" "$WORK/upper" "$WORK/work"
edit_config "$B" 'c["mounts"].append({"destination": "/layered", "type": "overlay", "source": "overlay", "options": ["lowerdir='"$WORK/lower"'", "upperdir='"$WORK/upper"'", "workdir='"$WORK/work"'"]})'
set_args "$B" sh -c 'cat /layered/base.txt; echo new > /layered/new.txt; echo changed > /layered/base.txt; cat /layered/base.txt'
run_in "$B" cfg-overlay
check_eq "an overlay mount reads the lower layer and writes the upper" "from the image changed" "$(echo $OUT)"
check_eq "writes land in the upper layer" "changed new" "$(cat "$WORK/upper/base.txt" "$WORK/upper/new.txt" | tr '\n' ' ' | sed 's/ $//')"
check_eq "the lower layer is untouched" "from the image" "$(cat "$WORK/lower/base.txt")"

# an extra device from linux.devices (in a user namespace it is bound from the host)
# (/dev/kmsg, 1:11, is on every Linux host; the default devices do not include it)
edit_config "$B" 'c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438}]'
set_args "$B" sh -c 'stat -c "%F %t:%T" /dev/kmsg'
run_in "$B" cfg-dev
check_eq "linux.devices adds the device" "character special file 1:b" "$OUT"
edit_config "$B" 'c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 9, "minor": 9}]'
run_in "$B" cfg-dev-bad
check_match "a device whose host node differs is refused" 'host `/dev/kmsg` is 1:11, not 9:9' "$OUT"
edit_config "$B" 'c["linux"]["devices"] = []'

# cgroupsPath relative to the caller's cgroup
edit_config "$B" 'c["linux"]["cgroupsPath"] = "capsule-tests-cfg/inner"'
set_args "$B" sleep 30
cap run --detach --bundle "$B" cfg-cg >/dev/null 2>&1
pid=$(cap state cfg-cg | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
check_eq "a relative cgroupsPath lands under the caller's own cgroup" \
  "$(own_cgroup)/capsule-tests-cfg/inner" "$(proc_cgroup "$pid")"
cap delete --force cfg-cg
for c in /sys/fs/cgroup/*/; do rmdir "$c"capsule-tests-cfg 2>/dev/null; done
find /sys/fs/cgroup -maxdepth 4 -name capsule-tests-cfg -type d -exec rmdir {} \; 2>/dev/null
edit_config "$B" 'del c["linux"]["cgroupsPath"]'

# process fields: umask, additionalGids, env, oomScoreAdj
edit_config "$B" 'c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 63}
c["process"]["env"].append("GREETING=hello")
c["process"]["oomScoreAdj"] = 600'
set_args "$B" sh -c 'id -G; umask; echo $GREETING; cat /proc/self/oom_score_adj'
run_in "$B" cfg-proc
check_eq "additionalGids, umask, env and oomScoreAdj are honoured" "1000 5 7 0077 hello 600" "$(echo $OUT)"

finish
