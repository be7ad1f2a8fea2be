#!/bin/bash
# Malformed and hostile bundles and bad invocations: one clear line naming the cause, never a
# crash, nothing left behind, nothing done on the host.
. "$(dirname "$0")/lib.sh"

B=$WORK/b
make_bundle "$B" || { fail "make bundle"; finish; exit; }
cp "$B/config.json" "$WORK/good.json"

# expect_error NAME REGEX: run the bundle, expect failure with one line matching REGEX
expect_error() {
  local out rc
  out=$("$CAPSULE" --root "$ROOT" run --bundle "$B" err-test 2>&1)
  rc=$?
  if [ $rc = 0 ]; then fail "$1" "succeeded: $out"; return; fi
  if [ "$(printf '%s\n' "$out" | wc -l)" != 1 ]; then fail "$1" "not one line: $out"; return; fi
  if [ $rc -ge 128 ]; then fail "$1" "crashed with $rc: $out"; return; fi
  check_match "$1" "$2" "$out"
  [ -z "$(ls "$ROOT" 2>/dev/null)" ] || fail "$1: nothing left behind" "$(ls "$ROOT")"
  [ -z "$(leftover_cgroups err-test)" ] || fail "$1: no cgroup left" "$(leftover_cgroups err-test)"
}
restore() { cp "$WORK/good.json" "$B/config.json"; }

printf '{"ociVersion": "1.0.0", "process": ' > "$B/config.json"
expect_error "truncated config.json" '^capsule: config.json: invalid JSON'
printf '\x00\x01\xff garbage' > "$B/config.json"
expect_error "binary garbage config.json" '^capsule: config.json: invalid JSON'
cat "$WORK/good.json" > "$B/config.json" && printf '\0{}' >> "$B/config.json"
expect_error "a NUL byte after a good config.json" '^capsule: config.json: invalid JSON: a NUL byte at byte [0-9]+'
: > "$B/config.json"
expect_error "empty config.json" '^capsule: config.json: empty file'
head -c 5000000 /dev/zero | tr '\0' ' ' > "$B/config.json"
expect_error "oversized config.json" 'larger than 4194304 bytes'
rm -f "$B/config.json"
expect_error "missing config.json" "open \`$B/config.json\`: No such file or directory"
restore

edit_config "$B" 'c["root"]["path"] = "nope"'
expect_error "missing rootfs" "config.json: root.path: \`$B/nope\`: No such file or directory"
restore
edit_config "$B" 'c["linux"]["seccomp"]["syscalls"][1]["action"] = "SCMP_ACT_NOPE"'
expect_error "unknown seccomp action names the field" 'config.json: linux.seccomp.syscalls\[1\].action: unknown action "SCMP_ACT_NOPE"'
restore
edit_config "$B" 'c["process"]["args"] = ["/no/such/program"]'
expect_error "missing executable" "process.args\[0\]: cannot execute \`/no/such/program\`"
restore
edit_config "$B" 'c["process"]["args"] = ["no-such-program-anywhere"]'
expect_error "executable not in PATH" 'executable `no-such-program-anywhere` not found in \$PATH'
restore
edit_config "$B" 'c["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir"})'
expect_error "bind of a missing source" 'mounts: bind source `/no/such/dir` for `/data`: No such file or directory'
restore
edit_config "$B" 'c["mounts"].append({"destination": "/x/../../../etc", "type": "tmpfs", "source": "tmpfs"})'
expect_error "a mount destination with .." 'contains ".."'
restore
edit_config "$B" 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]'
expect_error "no mount namespace" 'capsule needs a new mount namespace'
restore
edit_config "$B" 'c["linux"]["cgroupsPath"] = "../../escape"'
expect_error "a cgroupsPath escaping with .." 'linux.cgroupsPath: "../../escape" contains ".."'
restore
edit_config "$B" '[n.update(path="/proc/self/ns/nope") for n in c["linux"]["namespaces"] if n["type"] == "network"]'
expect_error "joining a namespace that does not exist" 'linux.namespaces: open network namespace `/proc/self/ns/nope`: No such file or directory'
restore
edit_config "$B" 'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 4294967294, "size": 65536}]'
expect_error "an impossible uid mapping" 'config.json: linux.uidMappings: the kernel refused the map'
restore

# hostile rootfs: symlinks planted to point mounts and mkdirs at the host
OUTSIDE=$WORK/outside
mkdir -p "$OUTSIDE"
ln -s "$OUTSIDE" "$B/rootfs/evil"
edit_config "$B" 'c["mounts"].append({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"})
c["process"]["args"] = ["sh", "-c", "stat -f -c %T '"$OUTSIDE"'/sub"]'
OUT=$(cap run --bundle "$B" err-symlink 2>&1)
check_eq "a mount through a symlink to a host path resolves inside the rootfs (as runc: the target is made there)" \
  "tmpfs" "$OUT"
check_eq "no directory was created on the host through the symlink" "" "$(ls -A "$OUTSIDE")"
rm -f "$B/rootfs/evil"
restore
ln -s /etc "$B/rootfs/evil-etc"
edit_config "$B" 'c["mounts"].append({"destination": "/evil-etc", "type": "tmpfs", "source": "tmpfs"})
c["process"]["args"] = ["sh", "-c", "touch /evil-etc/capsule-planted && ls /etc/capsule-planted"]'
OUT=$(cap run --bundle "$B" err-symlink2 2>&1)
check_eq "a symlink to /etc is followed inside the rootfs: the tmpfs lands on the container's /etc" \
  "/etc/capsule-planted" "$OUT"
check_eq "nothing was written to the host's /etc" "" "$(ls /etc/capsule-planted 2>/dev/null)"
rm -f "$B/rootfs/evil-etc"
restore

# bad invocations
OUT=$(cap run --bundle "$B" "../escape" 2>&1)
check_match "an id with a slash is refused" 'invalid container id "../escape"' "$OUT"
OUT=$(cap start nosuch 2>&1)
check_eq "start of an unknown id" 'capsule: container `nosuch` does not exist: No such file or directory' "$OUT"
OUT=$(cap delete nosuch 2>&1)
check_match "delete of an unknown id" 'container `nosuch` does not exist' "$OUT"
OUT=$(cap kill nosuch BOGUS 2>&1)
check_match "an unknown signal" 'unknown signal "BOGUS"' "$OUT"
OUT=$(cap frobnicate 2>&1)
check_match "an unknown command" 'unknown command "frobnicate"' "$OUT"
OUT=$(cap create --bundle 2>&1)
check_match "a missing option argument" 'create: ' "$OUT"
OUT=$("$CAPSULE" --root "$ROOT" --log-format yaml list 2>&1)
check_match "a bad --log-format" 'log-format must be text or json' "$OUT"
OUT=$("$CAPSULE" --systemd-cgroup list 2>&1)
check_match "--systemd-cgroup says clearly it is not supported" 'systemd-cgroup: capsule manages cgroups through cgroupfs only' "$OUT"
check_match "--version" '^capsule version [0-9.]+' "$("$CAPSULE" --version)"
check_match "features is OCI features JSON" '"ociVersionMax": "1.2.0"' "$("$CAPSULE" features)"
check_match "spec refuses to overwrite" 'it exists; remove it first' "$("$CAPSULE" spec --bundle "$B" 2>&1)"

# CVE-2025-31133: an image whose /dev/null is a link to a writable file must not turn every
# masked path into that file
M=$WORK/mask
make_bundle "$M"
edit_config "$M" "c['mounts'] = [m for m in c['mounts'] if not m['destination'].startswith('/dev')]"
mkdir -p "$M/rootfs/dev"
echo untouched > "$M/rootfs/planted"
chmod 666 "$M/rootfs/planted"
ln -sf /planted "$M/rootfs/dev/null"
set_args "$M" sh -c 'echo written > /proc/keys'
OUT=$("$CAPSULE" --root "$ROOT" run --bundle "$M" err-masknull 2>&1)
check_match "a /dev/null that is not the null device is refused for masking" 'is not the null device' "$OUT"
check_eq "and the file it pointed to was not exposed" "untouched" "$(cat "$M/rootfs/planted")"

# an image that plants /proc/sys/kernel/cap_last_cap (no procfs on /proc) must not keep the
# capabilities above the number it wrote in the bounding set
P=$WORK/proc
make_bundle "$P"
edit_config "$P" "c['mounts'] = [m for m in c['mounts'] if m['destination'] != '/proc']
c['process']['capabilities'] = {k: [] for k in ('bounding', 'effective', 'permitted', 'inheritable', 'ambient')}"
mkdir -p "$P/rootfs/proc/sys/kernel"
echo 5 > "$P/rootfs/proc/sys/kernel/cap_last_cap"
set_args "$P" "$PY" -c 'import ctypes; l = ctypes.CDLL(None); print([c for c in range(64) if l.prctl(23, c, 0, 0, 0) == 1])'
OUT=$("$CAPSULE" --root "$ROOT" run --bundle "$P" err-lastcap 2>&1)
check_eq "a planted cap_last_cap leaves no capability in the bounding set" "[]" "$OUT"

finish
