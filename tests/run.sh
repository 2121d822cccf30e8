#!/bin/sh
# Run every suite, print each one's TAP output, and end with one line:
#   check: N passed, M failed[, K skipped]
# Unit tests and bats both speak TAP; a suite that dies without a plan
# counts as one failure so a crash is never silent.
set -u
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
log=$(mktemp) || exit 2
before=$(mktemp) || exit 2
trap 'rm -f "$log" "$before"' EXIT
# Only what this run leaves counts: other work on the machine may have
# channels of its own.
ls /dev/shm 2>/dev/null >"$before"

PATH="$top/$BUILD/bin:$PATH"
export PATH DH_TOP="$top" DH_BUILD="$BUILD" LC_ALL=C

suite() { # name cmd...
	name=$1; shift
	printf '# suite %s\n' "$name"
	t0=$(date +%s)
	out=$("$@" 2>&1); rc=$?
	printf '%s\n' "$out"
	# where the time goes: make check and make asan must fit CI's budget
	printf '# suite %s took %ss\n' "$name" $(($(date +%s) - t0))
	printf '%s\n' "$out" | grep -E '^(not )?ok ' >>"$log"
	if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^not ok '; then
		printf 'not ok - suite %s exited %d without a failing test\n' "$name" "$rc" | tee -a "$log"
	fi
}

for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] && suite "unit/${t##*/}" "$t"
done
for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=${f##*/}
	printf '# suite replay/%s\n' "$name"
	set --
	[ -d tests/fuzz/corpus/"$name" ] && set -- tests/fuzz/corpus/"$name"
	if out=$("$f" "$@" 2>&1); then
		echo "ok - fuzz corpus replays cleanly: $name ($out)" | tee -a "$log"
	else
		printf '%s\n' "$out" | tail -20
		echo "not ok - fuzz corpus replays cleanly: $name" | tee -a "$log"
	fi
done
rm -f /dev/shm/dh.dhtest-fuzz-*
if [ -x "$BUILD/fault/driver" ]; then
	suite fault sh tests/fault/run.sh
fi
if ls tests/bats/*.bats >/dev/null 2>&1; then
	suite bats bats --tap --timing tests/bats
fi
# The Python package (issue 15): pytest, one TAP line per test.
suite python sh tests/python/run.sh
for f in tests/lint/*.sh; do
	[ -f "$f" ] && suite "lint/${f##*/}" sh "$f"
done

leak=$(ls /dev/shm 2>/dev/null | grep -E '^dh\.dh(test|demo|bench|bats)-' | grep -vxF -f "$before" || true)
if [ -n "$leak" ]; then
	echo "not ok - no test channel left in /dev/shm: $leak" | tee -a "$log"
else
	echo "ok - no test channel left in /dev/shm" >>"$log"
fi

skipped=$(grep -cE '^ok .*# ?(skip|SKIP)' "$log")
passed=$(grep -E '^ok ' "$log" | grep -cvE '# ?(skip|SKIP)')
failed=$(grep -c '^not ok ' "$log")
if [ "$skipped" -gt 0 ]; then
	echo "check: $passed passed, $failed failed, $skipped skipped"
else
	echo "check: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
