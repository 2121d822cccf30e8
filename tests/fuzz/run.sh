#!/bin/sh
# make fuzz: build every tests/fuzz/fuzz_*.c with clang's libFuzzer, ASan and
# UBSan, and run each for FUZZ_TIME seconds (60; 600 under DH_SOAK=1),
# starting from the seeds in tests/fuzz/corpus/NAME.  A crash fails the run
# and leaves its input in build-fuzz/; copy it into the corpus once fixed so
# that `make check` replays it for ever after.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=build-fuzz
time=${FUZZ_TIME:-60}
[ "${DH_SOAK:-0}" = 1 ] && time=${FUZZ_TIME:-600}
CC=${FUZZ_CC:-clang}
flags="-std=c11 -g -O1 -D_GNU_SOURCE -Ilib $(pkg-config --cflags libsodium libzmq libxxhash jansson)"
libs="$(pkg-config --libs libsodium libzmq libxxhash jansson) -lpthread"
san=address,undefined
mkdir -p "$out/lib"
objs=
for src in lib/*.c; do
	o="$out/lib/$(basename "$src" .c).o"
	$CC $flags -fsanitize=fuzzer-no-link,$san -c -o "$o" "$src"
	objs="$objs $o"
done
status=0
for h in tests/fuzz/fuzz_*.c; do
	name=$(basename "$h" .c)
	$CC $flags -fsanitize=fuzzer,$san -o "$out/$name" "$h" $objs $libs
	mkdir -p "$out/corpus/$name" "tests/fuzz/corpus/$name"
	echo "fuzz: $name for ${time}s" >&2
	if ! UBSAN_OPTIONS=halt_on_error=1 "$out/$name" -max_total_time="$time" -timeout=10 \
		-artifact_prefix="$out/$name-" "$out/corpus/$name" "tests/fuzz/corpus/$name" >"$out/$name.log" 2>&1; then
		echo "fuzz: $name FAILED; see $out/$name.log and $out/$name-*" >&2
		tail -30 "$out/$name.log" >&2
		status=1
	fi
done
rm -f /dev/shm/dh.dhtest-fuzz-*
exit $status
