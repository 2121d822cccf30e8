#!/bin/sh
# make model: exhaustive SPIN checks of tests/model/*.pml (safety:
# assertions and invalid end states, i.e. deadlocks).  Needs spin and a C
# compiler.
#
# Each model names its variants in its header comment:
#   * verify: none, -DTHIRD            (compile flags; "none" = no flag)
#   * counterexample: -DBUG4, -DONEBUF
#   * reach: -DREACH_DISCARD
# A "verify" variant must finish with no error AND the state space
# exhausted (no depth limit hit, no incomplete search).  A
# "counterexample" variant (today's protocol, issue 19) must produce a
# violation: that is the test that the model can see the bug the fix
# removes.  A "reach" variant puts an assert(false) at a state the
# verified model must reach (an eviction that matters, a discarded
# update...): it must fail too, or the verification proved nothing about
# that case.  Any other outcome fails `make model`.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$top/build-model
command -v spin >/dev/null || { echo "model: spin is not installed (apt-get install spin)" >&2; exit 2; }
mkdir -p "$out"
status=0
pass=0
fail=0

# variants FILE KEY: the comma-separated list after " * KEY:"
variants() {
	sed -n "s/^ \* $2: //p" "$1" | head -1 | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -v '^$' || true
}

now() { date +%s.%N; }

# check FILE NAME FLAGS EXPECT(verify|counterexample|reach)
check() {
	m=$1 name=$2 flags=$3 expect=$4
	[ "$flags" = none ] && flags=
	tag=$name${flags:+ $flags}
	dir=$out/$name$(printf '%s' "$flags" | tr -c 'A-Za-z0-9' '_')
	rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
	cp "$m" .
	# shellcheck disable=SC2086
	if ! spin -a $flags "$name.pml" >spin.out 2>&1; then
		echo "model: $tag: spin failed:" >&2; cat spin.out >&2
		fail=$((fail + 1)); status=1; return
	fi
	# -DCOLLAPSE: the queue model needs ~1.3 GB with it, 3 GB without
	${CC:-cc} -O2 -DSAFETY -DCOLLAPSE -w -o pan pan.c
	t0=$(now)
	./pan -m100000 >pan.out 2>&1 || true
	t1=$(now)
	secs=$(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')
	states=$(awk '/states, stored/ { print $1; exit }' pan.out)
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out | head -1)
	incomplete=
	if grep -Eq 'depth too small|Search not completed|out of memory|max search depth|MEMLIM' pan.out; then
		incomplete=yes
	fi
	case $expect in
	verify)
		if [ "$errors" = 0 ] && [ -z "$incomplete" ]; then
			echo "model: $tag: verified, $states states, ${secs}s"
			pass=$((pass + 1))
		else
			echo "model: $tag: NOT VERIFIED (errors: ${errors:-?}${incomplete:+, search incomplete}); trail:" >&2
			grep -E '^pan:|error' pan.out >&2 || true
			# shellcheck disable=SC2086
			spin $flags -t -p -g "$name.pml" 2>&1 | tail -40 >&2 || true
			fail=$((fail + 1)); status=1
		fi;;
	reach)
		if [ -n "$errors" ] && [ "$errors" -gt 0 ]; then
			echo "model: $tag: reached, ${secs}s"
			pass=$((pass + 1))
		else
			echo "model: $tag: NOT REACHED: the verified model never gets there (errors: ${errors:-?})" >&2
			fail=$((fail + 1)); status=1
		fi;;
	counterexample)
		if [ -n "$errors" ] && [ "$errors" -gt 0 ]; then
			echo "model: $tag: counterexample as expected ($(grep -m1 '^pan:1:' pan.out | sed 's/^pan:1: //; s/ (at depth.*//'), $states states, ${secs}s"
			pass=$((pass + 1))
		else
			echo "model: $tag: NO COUNTEREXAMPLE: the model no longer sees the bug it is meant to catch (errors: ${errors:-?})" >&2
			fail=$((fail + 1)); status=1
		fi;;
	esac
}

t_all=$(now)
for m in "$top"/tests/model/*.pml; do
	name=$(basename "$m" .pml)
	# tests/model/run.sh NAME...: only those models
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
		continue
	fi
	for v in $(variants "$m" verify | tr ' ' '+'); do
		check "$m" "$name" "$(echo "$v" | tr '+' ' ')" verify
	done
	for kind in counterexample reach; do
		for v in $(variants "$m" $kind | tr ' ' '+'); do
			check "$m" "$name" "$(echo "$v" | tr '+' ' ')" $kind
		done
	done
	if [ -z "$(variants "$m" verify)" ]; then
		echo "model: $name: no 'verify:' line in its header" >&2
		fail=$((fail + 1)); status=1
	fi
done
echo "model: $pass passed, $fail failed in $(echo "$t_all $(now)" | awk '{ printf "%.0f", $2 - $1 }')s"
exit $status
