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

finish
