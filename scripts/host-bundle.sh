# Sourced helpers: make an OCI bundle whose rootfs is the host's /usr bound read-only (nothing to
# download), with capsule's secure default config.  Used by tests/runtime, scripts/demo and the
# benchmarks.  Needs $CAPSULE (the binary) and /usr/bin/python3.

# host_bundle DIR [ARGS...]: rootfs of empty mount points plus the merged-/usr links, an /etc with
# root and an unprivileged `sandbox` user (uid 1000), and `capsule spec`'s config with /usr bound.
host_bundle() {
  local dir=$1 l
  shift
  mkdir -p "$dir/rootfs"
  (cd "$dir/rootfs" && mkdir -p usr proc dev sys tmp etc mnt/data run root etc/alternatives etc/fonts)
  # mount targets made ahead: other runtimes (runc, crun) do not make them for a mapped root
  touch "$dir/rootfs/etc/ld.so.cache" "$dir/rootfs/etc/matplotlibrc"
  for l in bin sbin lib lib32 lib64 libx32; do
    [ -L "/$l" ] && ln -sfn "usr/$l" "$dir/rootfs/$l"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000::/mnt/data:/bin/sh\n' > "$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nsandbox:x:1000:\n' > "$dir/rootfs/etc/group"
  rm -f "$dir/config.json"
  "$CAPSULE" spec --bundle "$dir" --args "true" || return 1
  # /usr, and the few non-secret pieces of the host's /etc that programs under /usr follow
  # (alternatives symlinks: libblas for numpy; ld.so.cache; Debian's matplotlibrc)
  bundle_edit "$dir" '
import os
ro = ["rbind", "ro", "nosuid", "nodev"]
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ro})
for p in ["/etc/alternatives", "/etc/ld.so.cache", "/etc/matplotlibrc", "/etc/fonts"]:
    if os.path.exists(p):
        c["mounts"].append({"destination": p, "type": "bind", "source": p, "options": ro})'

  [ $# -eq 0 ] || bundle_args "$dir" "$@"
}

# bundle_edit DIR PYTHON: run PYTHON with c = the parsed config.json, then write it back.
bundle_edit() {
  /usr/bin/python3 - "$1/config.json" "$2" <<'PYEOF'
import json, sys
path, code = sys.argv[1], sys.argv[2]
c = json.load(open(path))
exec(code)
json.dump(c, open(path, "w"), indent=1)
PYEOF
}

# bundle_args DIR ARG...: set process.args
bundle_args() {
  local dir=$1
  shift
  /usr/bin/python3 - "$dir/config.json" "$@" <<'PYEOF'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["args"] = sys.argv[2:]
json.dump(c, open(path, "w"), indent=1)
PYEOF
}
