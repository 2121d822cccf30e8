#!/bin/sh
# make model: exhaustive SPIN check of tests/model/*.pml (safety: assertions
# and invalid end states, i.e. deadlocks).  Needs spin and a C compiler.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$top/build-model
command -v spin >/dev/null || { echo "model: spin is not installed (apt-get install spin)" >&2; exit 2; }
mkdir -p "$out"
status=0
for m in "$top"/tests/model/*.pml; do
	name=$(basename "$m" .pml)
	rm -rf "$out/$name" && mkdir -p "$out/$name" && cd "$out/$name"
	cp "$m" .
	spin -a "$name.pml" >/dev/null
	${CC:-cc} -O2 -DSAFETY -w -o pan pan.c
	./pan -m1000000 >pan.out 2>&1 || true
	if grep -q 'errors: 0' pan.out && ! grep -q 'error:' pan.out; then
		echo "model: $name: no violation in $(awk '/states, stored/ { print $1 }' pan.out) states"
	else
		echo "model: $name: VIOLATION; trail:" >&2
		spin -t -p -g "$name.pml" | tail -40 >&2 || true
		status=1
	fi
done
exit $status
