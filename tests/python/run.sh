#!/bin/sh
# Run the pytest suite of the Python package (tests/python) against the
# module built in $BUILD/python; print TAP, one line per test, for
# tests/run.sh to count (conftest.py writes it).  pytest's own report goes
# to stdout as TAP comments.  "No tests collected" (pytest exit 5), a
# crash or a collection error is a failing line, never a silent pass.
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
if [ -n "${DH_SAN:-}" ]; then
	echo "1..1"
	echo "ok 1 - python suite # SKIP an instrumented libdh cannot load into /usr/bin/python3 (SAN=$DH_SAN)"
	exit 0
fi
if ! ls "$BUILD"/python/dh/_dh.*.so >/dev/null 2>&1; then
	echo "not ok - python suite: the dh module is not built in $BUILD/python (make python)"
	exit 1
fi
tap=$(mktemp) || exit 2
log=$(mktemp) || exit 2
trap 'rm -f "$tap" "$log"' EXIT
# /usr/bin/python3 explicitly: a python3 earlier on PATH may be another interpreter
PYTHONPATH="$top/$BUILD/python" PYTHONDONTWRITEBYTECODE=1 DH_PYTEST_TAP=$tap \
	timeout 600 /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfEs tests/python >"$log" 2>&1
rc=$?
sed 's/^/# /' "$log"
cat "$tap"
if [ $rc -eq 5 ]; then
	echo "not ok - python suite: pytest collected no tests"
elif [ $rc -ne 0 ] && ! grep -q '^not ok ' "$tap"; then
	echo "not ok - python suite: pytest exited $rc without a failing test"
fi
exit $rc
