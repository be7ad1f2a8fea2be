#!/bin/bash
# capsule installed under a prefix of its own (meson setup --prefix, ninja install): the shim
# finds its executor, capsule-init and policies where meson put them, with no path flags, and a
# session works; the units name the installed binary.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
PREFIX=${PREFIX:-/opt/capsule-test-prefix}
WORK=$(mktemp -d /tmp/capsule-install.XXXXXX)
chmod 755 "$WORK"
BUILD=$WORK/build
trap 'rm -rf "$WORK" "$PREFIX"' EXIT
[ ! -e "$PREFIX" ] || { fail "$PREFIX exists already: not ours to install into"; finish; exit; }

meson setup "$BUILD" "$TOP" --prefix "$PREFIX" -Dtests=disabled > "$WORK/setup.log" 2>&1 &&
  ninja -C "$BUILD" > "$WORK/build.log" 2>&1 && ninja -C "$BUILD" install > "$WORK/install.log" 2>&1
check_eq "meson setup --prefix $PREFIX, ninja install" "0" "$?"
for f in bin/capsule bin/capsule-shim bin/capsulectl libexec/capsule/capsule-init \
  share/capsule/executor/executor.py share/capsule/policies/seccomp/default.json \
  share/capsule/policies/tiers.json lib/systemd/system/capsule-shim.service \
  lib/systemd/system/capsule-shim.socket share/doc/capsule/README.md; do
  check_eq "installed: $f" "yes" "$([ -e "$PREFIX/$f" ] && echo yes)"
done
check_match "the unit starts the installed shim" "^ExecStart=$PREFIX/bin/capsule-shim " \
  "$(grep ^ExecStart= "$PREFIX/lib/systemd/system/capsule-shim.service")"
check_eq "nothing under /usr/local is named" "" "$(grep -rl /usr/local "$PREFIX/lib/systemd" 2>/dev/null)"
# the build tree is gone: the installed binaries may rely on nothing in it
rm -rf "$BUILD"
session_through "$PREFIX/bin/capsule-shim" "$PREFIX/bin/capsulectl" "$WORK"
check_match "the runtime names its version" '^capsule version ' "$("$PREFIX/bin/capsule" --version)"
finish
