#!/bin/bash
# The Debian package, as a new user would take it: scripts/package builds it, apt-get installs
# it, the socket unit is enabled the Debian way with a "capsule" group for the shim's socket, a
# session runs through the installed shim (by hand: no systemd runs here; the guest boots
# systemd to test the units), and a purge takes everything away again.
. "$(dirname "$0")/lib.sh"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/capsule-package.XXXXXX)
chmod 755 "$WORK"
installed=
cleanup() {
  [ -z "$installed" ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -q capsule >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
if dpkg-query -W -f='${Status}' capsule 2>/dev/null | grep -q "ok installed"; then
  fail "a capsule package is installed already: not ours to replace"
  finish
  exit
fi

deb=$("$TOP/scripts/package" "$WORK/out" 2> "$WORK/package.log")
check_match "scripts/package builds capsule_<version>_amd64.deb" '/capsule_[0-9.]+_amd64\.deb$' "$deb"
[ -f "$deb" ] || { sed 's/^/#   /' "$WORK/package.log" | tail -30; finish; exit; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" > "$WORK/apt.log" 2>&1
rc=$?
installed=yes
check_eq "apt-get install ./capsule_*.deb" "0" "$rc"
[ $rc = 0 ] || sed 's/^/#   /' "$WORK/apt.log" | tail -20
for f in /usr/bin/capsule /usr/bin/capsule-shim /usr/bin/capsulectl /usr/libexec/capsule/capsule-init \
  /usr/share/capsule/executor/executor.py /usr/share/capsule/policies/tiers.json \
  /lib/systemd/system/capsule-shim.service /lib/systemd/system/capsule-shim.socket \
  /usr/bin/capsule-gateway /lib/systemd/system/capsule-gateway.service; do
  check_eq "installed: $f" "yes" "$([ -e "$f" ] && echo yes)"
done
check_eq "a capsule system group for the socket" "yes" "$(getent group capsule >/dev/null && echo yes)"
check_eq "the socket unit names that group" "SocketGroup=capsule" "$(grep ^SocketGroup= /lib/systemd/system/capsule-shim.socket)"
check_match "the service starts /usr/bin/capsule-shim" '^ExecStart=/usr/bin/capsule-shim ' "$(grep ^ExecStart= /lib/systemd/system/capsule-shim.service)"
check_eq "the gateway's unit reaches the socket through its group" "SupplementaryGroups=capsule" \
  "$(grep ^SupplementaryGroups= /lib/systemd/system/capsule-gateway.service)"
check_eq "the socket unit is enabled the Debian way" "yes" \
  "$([ -L /etc/systemd/system/sockets.target.wants/capsule-shim.socket ] && echo yes)"
session_through /usr/bin/capsule-shim /usr/bin/capsulectl "$WORK"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q capsule > "$WORK/purge.log" 2>&1
check_eq "apt-get purge capsule" "0" "$?"
installed=
check_eq "the purge removes the binaries, the units and the group" "no no no" \
  "$([ -e /usr/bin/capsule-shim ] && echo yes || echo no) $([ -e /lib/systemd/system/capsule-shim.socket ] && echo yes || echo no) $(getent group capsule >/dev/null && echo yes || echo no)"
finish
