#!/bin/bash
# Attacks on capsule (tests/security): hostile cells and clients against a real shim, through
# its socket.  The runtime's escapes (hostile bundles) run in tests/runtime and, for cgroup v2,
# in the guest (tests/vm).  Prints unittest's report and "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
export BUILD=${BUILD:-$TOP/build}
TEST_DIR=$HERE SUITE=security exec "$TOP/tests/shim/run.sh" "$@"
