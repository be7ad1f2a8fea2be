#!/bin/bash
# The executor's own tests (python unittest, real executors on temporary sockets), with Debian's
# python3 so matplotlib is there.  Prints unittest's report and "executor: N passed, N failed,
# N skipped".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
out=$(/usr/bin/python3 -m unittest discover -v -s "$HERE" 2>&1)
rc=$?
# each failure with its traceback: unittest's report from the first ==== line to "Ran N tests"
echo "$out" | sed -n '/^======/,/^Ran [0-9]/p' | sed '$d'
echo "$out" | grep -E ' \.\.\. (ok|FAIL|ERROR|skipped)' | grep -v ' ok$'
ran=$(echo "$out" | sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' | tail -1)
bad=$(echo "$out" | grep -cE '^(FAIL|ERROR): ')
skipped=$(echo "$out" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p' | tail -1)
ran=${ran:-0} skipped=${skipped:-0}
[ "$ran" -gt 0 ] || bad=$((bad + 1))
ok=$((ran - bad - skipped))
echo "executor: $((ok < 0 ? 0 : ok)) passed, $bad failed, $skipped skipped"
[ $rc = 0 ] && [ "$bad" = 0 ]
