# capsule with real container engines: shared set-up.  Sourced by tests/engines/test-*.sh after
# tests/runtime/lib.sh (checks, $WORK, $CAPSULE).
#
# A tiny image is made here (busybox-static), no registry is reached.  Engine cgroups go under the
# test's own cgroup; every cgroup directory the test makes is removed at the end.

. "$(dirname "${BASH_SOURCE[0]}")/../runtime/lib.sh"

OWN_CG=$(own_cgroup)
CG_PARENT="$OWN_CG/capsule-engine-tests-$$"
IMAGE=localhost/capsule-test:latest

# cgroup directories that exist now are not ours to remove later
CG_BEFORE=$WORK/cgroups-before
find /sys/fs/cgroup -mindepth 2 -maxdepth 5 -type d 2>/dev/null | sort > "$CG_BEFORE"

cleanup_cgroups() {
  local d
  find /sys/fs/cgroup -mindepth 2 -maxdepth 8 -type d 2>/dev/null | sort > "$WORK/cgroups-after"
  # deepest first; only what this test made, and only once empty
  comm -13 "$CG_BEFORE" "$WORK/cgroups-after" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r d; do rmdir "$d" 2>/dev/null; done
}

make_image_rootfs() {
  local r=$1 a
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/dev" "$r/sys" "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do
    [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
  tar -C "$r" -cf "$WORK/rootfs.tar" .
}

[ -x /bin/busybox ] || skip_all "busybox-static is not installed (scripts/setup installs it)"
# engines drop files in their working directory (conmon writes "oom" there after an OOM kill)
cd "$WORK" || exit 1
