#!/usr/bin/env bats
# examples.bats: the EXAMPLES of the self-contained man pages and the
# README's tour, pasted into a shell in order, as a new user would (issue
# 12).  Channels live in a private DH_SHM_DIR, so the pages' own names
# (temp, jobs, frames...) are used as written.  The programs the examples
# stand for (sensor, worker, camera...) and the files they read are small
# fixtures made here.
#
# Every command must exit 0 (a pipeline: its last command) within a bound,
# except those listed below with the behaviour they document instead.
# dh-read(1)'s examples read channels that a feed already fills: each runs
# after the state it describes is set up.  The pages that show a sample
# state with invented pids (dh-stat(1), dh-diagnose(1), dh-validate(1)) or
# other hosts (dh-broker(1)) are not run here: their commands are covered
# by their own suites; dh-cpp(3)'s programs are built and run by cpp.bats.

load test_helper

setup() {
	dh_setup
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$W/bin" "$W/shm" "$W/var/log"
	export DH_SHM_DIR=$W/shm
	# a live sensor: a burst, then a reading every 0.2 s for as long as it runs
	fixture sensor 'i=0; while [ $i -lt 3000 ]; do i=$((i + 1)); echo "2$((i % 10)).$((i % 7))"; [ $i -lt 20 ] || sleep 0.2; done'
	fixture producer 'seq 1 10'
	fixture camera 'head -c 3000000 /dev/urandom'
	fixture worker 'cat >/dev/null'
	fixture encoder 'cat'
	fixture checker 'cat >/dev/null'
	fixture analyzer 'wc -l'
	fixture sink 'cat >/dev/null'
	head -c 3000000 /dev/urandom >"$W/image.bin"
	awk 'BEGIN { for (i = 1; i <= 1000; i++) printf "%d,%.1f,probe%d\n", i, 20 + i / 100, i % 7 }' >"$W/probes.csv"
	printf '{"gain": 1.5}\n' >"$W/calib.json"
	: >"$W/var/log/app.log"
}

teardown() {
	# background examples still running (followers, waiting readers)
	if [ -s "$W/script.pid" ]; then pkill -KILL -g "$(cat "$W/script.pid")" 2>/dev/null || true; fi
	rm -rf "$W/shm"
	dh_teardown
}

fixture() { # NAME SCRIPT
	printf '#!/bin/sh\n%s\n' "$2" >"$W/bin/$1"
	chmod +x "$W/bin/$1"
}

# examples PAGE: its EXAMPLES commands, one per line, continuations joined
# and roff escapes undone.
examples() {
	awk '/^\.Sh EXAMPLES/ { e = 1; next } /^\.Sh / { e = 0 }
		e && /^\.Bd -literal/ { b = 1; next } e && /^\.Ed/ { b = 0; print "----"; next }
		e && b' "$DH_TOP/man/$1" |
		sed -e 's/\\e/\\/g' -e 's/\\&//g' |
		awk '/^----$/ { print; next }
		/^\$ / { cmd = substr($0, 3); while (cmd ~ /\\$/ && (getline nxt) > 0) { sub(/\\$/, "", cmd); sub(/^[ \t]+/, " ", nxt); cmd = cmd nxt } print cmd }'
}

# block PAGE N: the commands of the Nth example of PAGE
block() {
	examples "$1" | awk -v n="$2" '/^----$/ { i++; next } i == n - 1'
}

# paste PAGE-OR-FILE: run the commands read on stdin in order, in one shell
# (background jobs and `wait` work as typed), with the expectations below.
# Each command's output goes to $W/out.N; the commands to $W/cmds.
paste_in_order() {
	local script=$W/script.sh n=0 cmd
	{
		echo 'cd "$W" || exit 99'
		echo 'PATH="$W/bin:$PATH"'
		# each background job in a process group of its own, so that the
		# end of an example (a user closing that terminal) can stop it
		echo 'set -m'
		while IFS= read -r cmd; do
			if [ "$cmd" = ---- ]; then
				echo 'for j in $(jobs -p); do kill -TERM -- -"$j" 2>/dev/null; done; wait'
				continue
			fi
			n=$((n + 1))
			printf '%s\n' "$cmd" >>"$W/cmds"
			case $cmd in
			*' &')
				printf '{ %s; } >"$W/out.%d" 2>&1 &\n' "${cmd% &}" "$n" ;;
			*'& done')
				# a loop starting jobs: typed at the prompt, they are the shell's
				printf '%s\n' "$cmd" ;;
			wait*)
				printf 'timeout 60 tail --pid=$! -f /dev/null; %s >"$W/out.%d" 2>&1 || { echo "exit $?: %s"; exit 1; }\n' "$cmd" "$n" "${cmd//\"/\\\"}" ;;
			*'--follow'* | *'tail -F'* | 'dh-stat --watch'* | 'dh-read --lines temp | analyzer' | 'sensor | '*)
				# a consumer of a live feed (--follow, a live sensor) is
				# documented to run until interrupted: still running after 2 s
				printf 'timeout 2 bash -c %q >"$W/out.%d" 2>&1; rc=$?; [ $rc -eq 124 ] || { echo "exit $rc, expected to run until interrupted: %s"; exit 1; }\n' "$cmd" "$n" "${cmd//\"/\\\"}" ;;
			*)
				printf 'timeout 30 bash -c %q >"$W/out.%d" 2>&1; rc=$?; [ $rc -eq 0 ] || { echo "exit $rc: %s"; cat "$W/out.%d"; exit 1; }\n' "$cmd" "$n" "${cmd//\"/\\\"}" "$n" ;;
			esac
		done
	} >"$script"
	# its own process group, so teardown can stop what it left running
	W=$W run setsid bash -c 'echo $$ >"$W/script.pid"; exec bash "$1"' sh "$script"
}

# out_of CMD: what the first command equal to CMD printed
out_of() {
	local n
	n=$(grep -nxF -- "$1" "$W/cmds" | head -1 | cut -d: -f1)
	[ -n "$n" ] || { echo "no such example: $1" >&2; return 1; }
	cat "$W/out.$n"
}

@test "dh-create(1) EXAMPLES, pasted in order: each exits 0, the line arrives" {
	paste_in_order < <(examples dh-create.1)
	assert_success
	[ "$(wc -l <"$W/cmds")" -ge 5 ]
	# the background reader got the line, whichever of the two came first
	dh_await eval '[ "$(cat "$W/out.txt" 2>/dev/null)" = 21.5 ]'
}

@test "dh-write(1) EXAMPLES, pasted in order: the copy is exact, the CSV comes back whole" {
	paste_in_order < <(examples dh-write.1 | grep -v 'broker.example\|DH_CURVE_DIR')
	assert_success
	# the pages' own claims: cmp said nothing, every CSV row came back
	[ -z "$(out_of 'wait; cmp image.bin copy.bin')" ]
	[ "$(out_of 'dh-read --csv probes' | wc -l)" -eq 1001 ]
	[ "$(out_of 'dh-read --meta lab')" = "$(cat "$W/calib.json")" ]
	[ "$(out_of 'dh-read --lines b')" = $'one\ntwo' ]
}

@test "dh(7) EXAMPLES, pasted in order: each exits 0 or runs until interrupted as documented" {
	paste_in_order < <(examples dh.7)
	assert_success
	[ "$(wc -l <"$W/cmds")" -ge 15 ]
	# the latest-policy gauge: the current reading is one of the sensor's
	[[ $(out_of 'dh-read --lines --count 1 temp') =~ ^2[0-9]\.[0-9]$ ]]
}

@test "dh-read(1) EXAMPLES, pasted in order after the state each describes: each exits 0, the figures come out" {
	# a new example needs its state below; the 9th runs on two hosts (net.bats)
	[ "$(examples dh-read.1 | grep -c -- ----)" -eq 9 ]
	paste_in_order < <(
		# a finished stream of readings
		echo 'dh-create temp'; echo 'seq 1 10 | dh-write --lines temp &'
		block dh-read.1 1; echo ----
		# a log channel whose writer runs on
		echo 'dh-create logs'; echo 'printf "ok\nERROR disk\n" | dh-write --lines --no-eos logs'
		block dh-read.1 2; echo ----
		# jobs queued
		echo 'dh-create --policy queue jobs'; echo 'seq 1 8 | dh-write --lines jobs'
		block dh-read.1 3; echo ----
		block dh-read.1 4; echo ----
		block dh-read.1 5; echo ----
		# a schema channel with its feed running for a while
		echo 'dh-create --schema "ts:u64;temp:f32" probes'
		echo '{ printf "1,20.5\n2,21\n"; sleep 3; } | dh-write --csv probes &'
		echo 'until [ "$(dh-stat --json probes | jq .channels[0].committed)" = 2 ]; do sleep 0.05; done'
		block dh-read.1 6; echo ----
		# frames held; logs still fed
		echo 'dh-create frames'; echo 'head -c 100000 /dev/urandom | dh-write frames'
		block dh-read.1 7; echo ----
		echo 'seq 1 5 | dh-write --lines temp &'
		block dh-read.1 8; echo ----
	)
	assert_success
	[ "$(out_of "dh-read --lines temp | awk '{ s += \$1 } END { print s / NR }'")" = 5.5 ]
	[ "$(out_of 'dh-read --json --from oldest --no-wait temp | tail -3 | jq .' | jq -s -c 'map(.text)')" = '["8","9","10"]' ]
	[ "$(out_of 'dh-read --count 1 --timeout 2s --lines temp || echo "no data"')" = $'dh-read: temp: no message within the timeout\nno data' ]
	[ "$(cat "$W/probes.csv")" = $'ts,temp\n1,20.5\n2,21' ]
	[ "$(out_of "dh-read --json --schema 'ts:u64;temp:f32' probes | jq .temp")" = $'20.5\n21' ]
	[ "$(stat -c %s "$W/frames.bin")" -eq 100000 ]
	[ "$(out_of 'dh-read --wait-channel 1m --lines temp | analyzer')" -eq 5 ]
}

@test "README tour, pasted in order: each exits 0" {
	paste_in_order < <(awk '/^## 30-second tour/ { t = 1; next } t && /^```sh/ { b = 1; next } t && b && /^```/ { exit } b' \
		"$DH_TOP/README.md" | sed -e 's/[[:space:]]*#.*$//' -e 's/^$/----/')
	assert_success
	[ "$(wc -l <"$W/cmds")" -ge 10 ]
	# the current reading of the live gauge is one of the sensor's
	[[ $(out_of 'dh-read --lines --count 1 gauge') =~ ^2[0-9]\.[0-9]$ ]]
}
