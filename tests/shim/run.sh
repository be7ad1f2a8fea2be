#!/bin/bash
# End-to-end tests of capsule-shim through its socket (python unittest), under capsule-init as a
# subreaper.  Prints unittest's report and a final "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
export BUILD
cd "${TEST_DIR:-$HERE}"
export PYTHONPATH=$HERE${PYTHONPATH:+:$PYTHONPATH}
out=$("$BUILD/runtime/capsule-init" -s -- /usr/bin/python3 -m unittest -v "$@" 2>&1)
rc=$?
echo "$out"
ran=$(echo "$out" | sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' | tail -1)
bad=$(echo "$out" | grep -cE '^(FAIL|ERROR): ')
skipped=$(echo "$out" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p' | tail -1)
ran=${ran:-0} skipped=${skipped:-0}
[ "$ran" -gt 0 ] || bad=$((bad + 1))
ok=$((ran - bad - skipped))
echo "${SUITE:-shim}: $((ok < 0 ? 0 : ok)) passed, $bad failed, $skipped skipped"
[ $rc = 0 ] && [ "$bad" = 0 ]
