#!/bin/bash
# overlayfs as runc and crun use it: a root.path that is an overlay the caller prepared, and
# overlay mounts made by the runtime inside the container's user namespace (userxattr), with
# copy-up, whiteouts and opaque directories landing in the upper layer only.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }

# --- a root the caller prepared: image below, a writable layer of this container above
O=$WORK/root-ovl
trap 'umount "$O/merged" 2>/dev/null; cleanup' EXIT
mkdir -p "$O/upper" "$O/work" "$O/merged"
cp -a "$B/rootfs" "$O/lower"
echo "from the image" > "$O/lower/etc/motd"
# an image for a user namespace belongs to the mapped range (copy-up keeps the owner)
chown -R 100000:100000 "$O/lower" "$O/upper" "$O/work"
if mount -t overlay overlay -o "lowerdir=$O/lower,upperdir=$O/upper,workdir=$O/work,redirect_dir=off,metacopy=off,index=off" "$O/merged"; then
  edit_config "$B" "c['root'] = {'path': '$O/merged', 'readonly': False}"
  set_args "$B" sh -c 'cat /etc/motd; echo changed > /etc/motd; echo new > /etc/added; rm /etc/group; ls /etc'
  run_in "$B" ovl-root
  check_match "a container runs on a caller's overlay root" '^from the image' "$OUT"
  check_eq "its writes land in the upper layer" "changed new" "$(cat "$O/upper/etc/motd" "$O/upper/etc/added" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
  check_eq "a deletion is a whiteout there (0:0 char device)" "character special file 0:0" "$(stat -c '%F %t:%T' "$O/upper/etc/group" 2>&1)"
  check_eq "the image below is untouched" "from the image present" "$(cat "$O/lower/etc/motd") $([ -f "$O/lower/etc/group" ] && echo present)"
  umount "$O/merged"
  edit_config "$B" "c['root'] = {'path': 'rootfs', 'readonly': True}"
else
  fail "mount a caller's overlay root"
fi

# --- an overlay mount the runtime makes inside the user namespace: trusted.* xattrs are out of
# reach there, so the whiteout and opaque markers are user.overlay.* (userxattr)
L=$WORK/layer
mkdir -p "$L/lower/keep" "$L/lower/gone-dir" "$L/upper" "$L/work"
echo kept > "$L/lower/keep/file"
echo old > "$L/lower/gone-dir/old"
chown -R 100000:100000 "$L"
edit_config "$B" "c['mounts'].append({'destination': '/layered', 'type': 'overlay', 'source': 'overlay', 'options': ['lowerdir=$L/lower', 'upperdir=$L/upper', 'workdir=$L/work', 'userxattr']})"
set_args "$B" sh -c 'rm /layered/keep/file && rm -r /layered/gone-dir && mkdir /layered/gone-dir && echo fresh > /layered/gone-dir/new && ls /layered/gone-dir && echo done'
run_in "$B" ovl-userns
check_eq "an overlay with userxattr inside the user namespace: delete, recreate" "new done" "$(echo $OUT)"
check_eq "the deleted file is a whiteout in the upper layer" "character special file 0:0" "$(stat -c '%F %t:%T' "$L/upper/keep/file" 2>&1)"
check_match "the recreated directory is opaque (user.overlay.opaque)" 'user.overlay.opaque="y"' "$(getfattr -n user.overlay.opaque "$L/upper/gone-dir" 2>&1)"
check_eq "the lower layer is untouched" "kept old" "$(cat "$L/lower/keep/file" "$L/lower/gone-dir/old" | tr '\n' ' ' | sed 's/ $//')"

finish
