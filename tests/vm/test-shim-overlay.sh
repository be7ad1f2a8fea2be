#!/bin/bash
# A session's own root and its workspace on disk, through a sleep and a wake on cgroup v2 with
# CRIU: the shim's lower layer is an idmapped mount of the image, which the guest's 9p root and
# its 6.1 tmpfs cannot give, so the image here is on ext4 (python and its standard library,
# copied from the host); the workspace is an ext4 image on a loop device.  A session changes
# its root (/etc, /opt) and /mnt/data, sleeps on disk, wakes with its variables and every change,
# and another session sees the pristine image.
. "$(dirname "$0")/lib.sh"

SHIM=$(dirname "$CAPSULE")/../shim/capsule-shim
CTL=$(dirname "$CAPSULE")/../shim/capsulectl
[ -x "$SHIM" ] && [ -x "$CTL" ] || skip_all "no capsule-shim or capsulectl in the build"
SVC=$PARENT/shim-overlay
EXT=$WORK/ext
IMG=$EXT/image
mkdir -p "$CG$SVC" "$EXT"

truncate -s 1G "$WORK/ext.img"
mkfs.ext4 -q -F "$WORK/ext.img" && mount -o loop "$WORK/ext.img" "$EXT"
check_eq "an ext4 filesystem for the image and the state (a loop device)" "ext4" "$(stat -fc %T "$EXT" 2>&1 | sed 's/ext2\/ext3/ext4/')"

# the image: python's binary, the libraries it links, its standard library, a passwd
mkdir -p "$IMG"/usr/bin "$IMG"/usr/lib "$IMG"/usr/lib64 "$IMG"/etc "$IMG"/opt
for d in bin lib lib64 sbin; do ln -s usr/$d "$IMG/$d" 2>/dev/null || true; done
ln -sf bin "$IMG/usr/sbin"
PYBIN=$(readlink -f /usr/bin/python3)
cp "$PYBIN" "$IMG/usr/bin/" && ln -s "$(basename "$PYBIN")" "$IMG/usr/bin/python3"
PYLIB=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
for lib in $(ldd "$PYBIN" $(ls "$PYLIB"/lib-dynload/*.so | grep -v _tkinter) | grep -o '/[^ ]*' | grep -v ':$' | sort -u); do
  mkdir -p "$IMG/usr$(dirname "${lib#/usr}")"
  cp -L "$lib" "$IMG/usr${lib#/usr}"
done
mkdir -p "$IMG$PYLIB"
tar -C "$PYLIB" --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./ensurepip \
  --exclude=./lib2to3 --exclude='./config-*' --exclude=./dist-packages --exclude=./site-packages \
  -cf - . | tar -C "$IMG$PYLIB" -xf -
printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000::/home/sandbox:/bin/sh\n' > "$IMG/etc/passwd"
printf 'root:x:0:\nsandbox:x:1000:\n' > "$IMG/etc/group"
echo pristine > "$IMG/etc/motd"
check_eq "the image's python runs" "ok" "$(chroot "$IMG" /usr/bin/python3 -c 'import json, socket, threading; print("ok")' 2>&1)"

cat > "$WORK/tiers.json" <<'JSON'
{"default": "1g", "tenant_pool": "1g", "checkpoint_after_seconds": 86400,
 "tiers": {"1g": {"memory": "320m", "workspace": "64m", "tmp": "16m", "pids": 64}}}
JSON
shim() {
  start_shim 120 --image "$IMG" --state-dir "$EXT/state" --tiers "$WORK/tiers.json" --warm 0 \
    --workspaces disk
}
ctl() { "$CTL" --socket "$WORK/shim.sock" "$@"; }
ids=()
finish_up() {
  local c
  for c in "${ids[@]}"; do ctl rm "$c" > /dev/null 2>&1; done
  stop_shim -TERM
  for c in $(ls "$EXT/state/sessions" 2>/dev/null); do
    "$CAPSULE" --root "$EXT/state/runtime" delete --force "$c" >/dev/null 2>&1
  done
  # what a shim that did not get to its end left mounted under the state directory
  grep -o " $EXT/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  umount -l "$EXT" 2>/dev/null
  rmdir "$CG$SVC"/* "$CG$SVC" 2>/dev/null
  [ "$FAILED" = 0 ] || tail -20 "$WORK/shim.log" | sed 's/^/#   /'
  cleanup
}
trap finish_up EXIT
sandbox() { ctl get "$1" | cut -f3; }

shim
STATUS=$(ctl --json status)
check_eq "the shim gives overlay roots, disk workspaces and checkpoints here" "overlay disk available" \
  "$(json_get "$STATUS" "j['root'] + ' ' + j['workspace'] + ' ' + j['checkpoint'] + j.get('root_reason', '') + j.get('checkpoint_reason', '')")"

cid=$(ctl create --name changed | cut -f1)
ids+=("$cid")
check_match "a session starts on the image" '^cntr_[0-9a-f]{32}$' "$cid"
check_eq "its root is an overlay and /mnt/data is ext4" "overlay ext4" "$(ctl exec "$cid" '
fs = {l.split()[4]: l.split(" - ")[1].split()[0] for l in open("/proc/self/mountinfo")}
print(fs["/"], fs["/mnt/data"])' 2>&1)"
OUT=$(ctl exec "$cid" '
open("/etc/motd", "w").write("changed by the session\n")
open("/opt/tool.py", "w").write("def answer():\n    return 42\n")
open("/mnt/data/data.csv", "w").write("a,b\n1,2\n")
import sys; sys.path.insert(0, "/opt"); import tool
n = 41
print("written")' 2>&1)
check_eq "the session changes /etc, /opt and /mnt/data" "written" "$OUT"
other=$(ctl create --name pristine | cut -f1)
ids+=("$other")
check_eq "another session sees the pristine image" "pristine False" \
  "$(ctl exec "$other" 'import os; print(open("/etc/motd").read().strip(), os.path.exists("/opt/tool.py"))' 2>&1)"
check_eq "and so does the host" "pristine" "$(cat "$IMG/etc/motd")"

OUT=$(ctl checkpoint "$cid" 2>&1)
check_eq "the changed session sleeps on disk (CRIU)" "$cid	running	checkpointed" "$OUT"
check_eq "its sandbox is gone, its cgroup too" "" "$(ls -d "$CG$SVC/capsule-$cid" "$CG$SVC"/*/capsule-$cid 2>/dev/null)"
check_eq "a file downloads while it sleeps" "a,b
1,2" "$(ctl download "$cid" data.csv 2>&1)"
OUT=$(ctl --json exec "$cid" 'n + 1, tool.answer(), open("/etc/motd").read(), open("/mnt/data/data.csv").read()' 2>&1)
check_eq "it wakes with its variables, its imported module and every change" \
  "(42, 42, 'changed by the session\\n', 'a,b\\n1,2\\n')" "$(json_get "$OUT" "j['result']")"
check_eq "restored, not restarted" "True False" "$(json_get "$OUT" "str(j['restored']) + ' ' + str(j['interpreter_restarted'])")"
check_eq "the root is an overlay after the wake too" "overlay" "$(ctl exec "$cid" '
print({l.split()[4]: l.split(" - ")[1].split()[0] for l in open("/proc/self/mountinfo")}["/"])' 2>&1)"
check_eq "and it writes on" "ok" "$(ctl exec "$cid" 'open("/etc/after", "w").write("x"); print("ok")' 2>&1)"
check_eq "the other session still sees the pristine image" "pristine False" \
  "$(ctl exec "$other" 'import os; print(open("/etc/motd").read().strip(), os.path.exists("/etc/after"))' 2>&1)"

for c in "${ids[@]}"; do ctl rm "$c" > /dev/null; done
ids=()
gone() { [ -z "$(ls "$EXT/state/sessions" 2>/dev/null)" ]; }
wait_for 120 gone
check_eq "deleted sessions leave no workspace, no image, no mount" "" \
  "$(ls "$EXT/state/sessions" "$EXT/state/checkpoints" 2>/dev/null | grep cntr_; grep -c " $EXT/state/sessions/" /proc/self/mountinfo | grep -v '^0$')"
finish
