#!/bin/bash
# Test the image builders: rootfs/build with the CI package list (a few minutes on first run),
# its cache stamp, the sandbox user and mountpoints, rootfs/census on the result, and
# rootfs/host-image with the executor running inside it as the sandbox user.
#
#   rootfs/test-build.sh [WORKDIR]      (root; WORKDIR defaults to a new dir under /var/tmp)
#
# Exits 77 (skip) only when the machine cannot run it (not root, no unshare); 1 on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root (mmdebstrap root mode, chroot, mounts)"
    exit 77
fi
command -v unshare > /dev/null || { echo "SKIP: unshare(1) is missing"; exit 77; }

work=${1:-$(mktemp -d /var/tmp/capsule-test-build.XXXXXX)}
mkdir -p "$work"
image=$work/ci-image
failures=0

pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

echo "== build (CI list) into $image"
rm -rf --one-file-system "$image"
start=$(date +%s)
"$here/build" --packages "$here/packages-ci.txt" "$image" | tee "$work/build1.out"
pass "first build took $(( $(date +%s) - start )) s"

check "stamp written" grep -q '^key=[0-9a-f]\{64\}$' "$image/.capsule-image"
check "no temporary build dir left" \
    test -z "$(find "$(dirname "$image")" -maxdepth 1 -name ".$(basename "$image").build.*" -print -quit)"

echo "== second build: cached"
start_ns=$(date +%s%N)
"$here/build" --packages "$here/packages-ci.txt" "$image" | tee "$work/build2.out"
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
check "second run says up to date" grep -q '^image up to date' "$work/build2.out"
check "second run is fast (${elapsed_ms} ms < 5000 ms)" test "$elapsed_ms" -lt 5000

echo "== a changed list is a different key"
# the CI list's names in reverse order, under a comment of their own
{ echo '# copy'; grep -v '^#' "$here/packages-ci.txt" | grep . | tac; } > "$work/same.txt"
check "comments and order do not change the key" \
    sh -c "'$here/build' --packages '$work/same.txt' '$image' | grep -q '^image up to date'"

echo "== a missing package fails clearly and keeps the old image"
printf 'python3\npython3-no-such-package-capsule\n' > "$work/bad.txt"
if "$here/build" --packages "$work/bad.txt" "$image" > "$work/bad.out" 2>&1; then
    fail "build with an unknown package succeeded"
else
    check "error names the package" grep -q 'python3-no-such-package-capsule' "$work/bad.out"
    check "old image still in place" \
        grep -q "^packages=$(grep -v '^#' "$here/packages-ci.txt" | grep -c .)\$" "$image/.capsule-image"
fi

echo "== image content"
check "sandbox user uid 1000 home /mnt/data" grep -qx 'sandbox:x:1000:1000:capsule sandbox:/mnt/data:/bin/sh' "$image/etc/passwd"
check "sandbox group gid 1000" grep -qx 'sandbox:x:1000:' "$image/etc/group"
check "/mnt/data owned by 1000" test "$(stat -c %u:%g "$image/mnt/data")" = 1000:1000
for d in .capsule/executor .capsule/session; do
    check "/$d exists and is empty" test -d "$image/$d" -a -z "$(ls -A "$image/$d")"
done
check "python3 runs in the image" chroot "$image" /usr/bin/python3 -c 'import numpy'

echo "== census"
"$here/census" --failures "$work/census-failures.txt" "$image" | tee "$work/census.out"
count=$(sed -n 's/^importable distributions: \([0-9]*\) of [0-9]*$/\1/p' "$work/census.out")
check "census counts importable distributions (${count:-none})" test "${count:-0}" -gt 0

echo "== host-image, with the executor inside it as the sandbox user"
host=$work/host-image
"$here/host-image" "$host"
"$here/host-image" "$host" > /dev/null
check "host-image stamp" grep -qx 'type=host' "$host/.capsule-image"
check "bin is the host's symlink" test "$(readlink "$host/bin")" = "$(readlink /bin)"
check "usr is an empty mountpoint" test -d "$host/usr" -a -z "$(ls -A "$host/usr")"
check "no host secrets in etc" test ! -e "$host/etc/shadow" -a ! -e "$host/etc/ssl/private"
check "sandbox in passwd" grep -q '^sandbox:x:1000:1000:.*:/mnt/data:/bin/sh$' "$host/etc/passwd"
check "ld.so.cache copied" cmp -s /etc/ld.so.cache "$host/etc/ld.so.cache"
session=$work/session
mkdir -p "$session"
chown 1000:1000 "$session"
# shellcheck disable=SC2016 # expanded by the inner shell
if unshare --mount --pid --fork --propagation private sh -euc '
    T=$1; session=$2; executor=$3
    mount --bind /usr "$T/usr"; mount -o remount,bind,ro "$T/usr"
    mount -t proc proc "$T/proc"; mount --rbind /dev "$T/dev"; mount -t tmpfs tmpfs "$T/tmp"
    mount -t tmpfs -o mode=0755,uid=1000,gid=1000 tmpfs "$T/mnt/data"
    mount --bind "$executor" "$T/.capsule/executor"; mount -o remount,bind,ro "$T/.capsule/executor"
    mount --bind "$session" "$T/.capsule/session"
    chroot --userspec=1000:1000 "$T" /usr/bin/env -i HOME=/mnt/data PATH=/usr/bin:/bin \
        /usr/bin/python3 /.capsule/executor/executor.py --socket /.capsule/session/executor.sock &
    /usr/bin/python3 - "$session/executor.sock" <<EOF
import json, socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); break
    except OSError:
        s.close()
        if time.monotonic() > deadline: sys.exit("executor socket never appeared")
        time.sleep(0.01)
f = s.makefile("rwb")
f.write(json.dumps({"id": 1, "method": "execute", "code":
    "import os, pwd\nopen(\"hello.txt\", \"w\").write(\"hi\")\n"
    "(pwd.getpwuid(os.getuid()).pw_name, os.getcwd())"}).encode() + b"\n"); f.flush()
r = json.loads(f.readline())
assert r["status"] == "ok", r
assert r["result"] == "(\x27sandbox\x27, \x27/mnt/data\x27)", r["result"]
assert [x["path"] for x in r["files"]] == ["/mnt/data/hello.txt"], r["files"]
f.write(b"{\"id\": 2, \"method\": \"execute\", \"code\": \"open(\x27/usr/x\x27, \x27w\x27)\"}\n"); f.flush()
r = json.loads(f.readline())
assert r["error"]["ename"] in ("OSError", "PermissionError"), r["error"]
print("executor in host-image:", "sandbox user, cwd /mnt/data, /usr read-only")
EOF
' x "$host" "$session" "$repo/shim/executor"; then
    pass "executor runs in the host image"
else
    fail "executor in the host image"
fi
check "host image untouched by the run (no mounts left)" test -z "$(ls -A "$host/usr")"

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed; work dir kept: $work" >&2
    exit 1
fi
rm -rf --one-file-system "$work"
echo "all rootfs checks passed"
