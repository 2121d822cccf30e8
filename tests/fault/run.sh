#!/bin/sh
# Fault loops (SQLite style): for each function, fail its Nth call from the
# program for N = 1, 2, ... until a run no longer reaches an Nth call.
# Every run must end cleanly (0, or 1 with a message), leak nothing and
# leave nothing in /dev/shm.  Prints TAP.
set -u
build=${DH_BUILD:-build}
drv=$build/fault/driver
shim=$build/fault/inject.so
hit=$(mktemp -u)
n=0
for fn in open ftruncate posix_fallocate mmap malloc calloc realloc fcntl; do
	k=1 bad= runs=0
	while [ $k -le 300 ]; do
		rm -f "$hit"
		FAULT_FUNC=$fn FAULT_N=$k FAULT_HIT=$hit LD_PRELOAD=$shim "$drv" 2>/tmp/fault.$$.err
		rc=$?
		[ -e "$hit" ] || break
		runs=$((runs + 1))
		case $rc in
		0) ;;
		1) grep -q '^driver: ' /tmp/fault.$$.err || bad="$bad N=$k:no-message" ;;
		3) bad="$bad N=$k:leak($(tr '\n' ' ' </tmp/fault.$$.err))" ;;
		4) bad="$bad N=$k:residue" ;;
		*) bad="$bad N=$k:status-$rc" ;;
		esac
		k=$((k + 1))
	done
	n=$((n + 1))
	if [ $runs -eq 0 ]; then
		echo "not ok $n - fault loop $fn: the fault never fired (is the shim working?)"
	elif [ -n "$bad" ]; then
		echo "not ok $n - fault loop $fn ($runs faults):$bad"
	else
		echo "ok $n - fault loop $fn: $runs injected faults, each a clean error, no leak, no residue"
	fi
done
rm -f "$hit" /tmp/fault.$$.err /dev/shm/dh.dhtest-fault-*
echo "1..$n"
