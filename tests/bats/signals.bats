#!/usr/bin/env bats
# signals.bats: every blocking wait of dh-write and dh-read ends promptly on
# SIGTERM/SIGINT, wherever the signal lands (issue 19, finding 6: a signal
# caught outside the sleep was lost and dh-write polled for 40 minutes).
# Each wait is tried many times under CPU load, one signal per trial, so
# signals land before, inside and between the sleeps.

load test_helper
load rw_helper

TRIALS=12

setup() {
	dh_setup
	ch=$(dh_name)
	# load: two busy loops that end by themselves
	dh_bg timeout 120 sh -c 'while :; do :; done'
	dh_bg timeout 120 sh -c 'while :; do :; done'
}

# one_trial SIG WAITCOND CMD...: start CMD, wait until WAITCOND holds and
# CMD sleeps, wait a little (varies per trial), send SIG once; CMD must end
# within 5 s, killed by SIG (re-raised after cleanup) or exit 0.
one_trial() {
	local sig=$1 cond=$2 pid t0
	shift 2
	dh_bg "$@"
	pid=$DH_BG_PID
	dh_await -t 10 eval "$cond"
	# sleep in S state first, or the signal races startup instead
	dh_await -t 10 eval '[ "$(proc_state '"$pid"')" = S ]'
	sleep "0.00$((RANDOM % 10))"
	kill -"$sig" "$pid"
	t0=$SECONDS
	while ! _dh_gone "$pid"; do
		if [ $((SECONDS - t0)) -ge 5 ]; then
			echo "pid $pid ($*) still running 5 s after SIG$sig: the signal was lost" >&2
			kill -KILL "$pid"
			return 1
		fi
		sleep 0.01
	done
	st=0
	wait "$pid" || st=$?
	case $sig in TERM) want=143 ;; INT) want=130 ;; esac
	if [ "$st" -ne "$want" ] && [ "$st" -ne 0 ]; then
		echo "pid $pid ($*) exited $st after SIG$sig" >&2
		return 1
	fi
}

@test "dh-write --wait-readers: SIGTERM while waiting for a reader, $TRIALS times" {
	dh-create "$ch"
	for _ in $(seq "$TRIALS"); do
		one_trial TERM "dh_writer_alive $ch" dh-write --lines --wait-readers 1 "$ch"
	done
}

@test "dh-write: SIGINT while blocked on a full sync channel, $TRIALS times" {
	dh-create --slots 2 "$ch"
	seq 1 200000 >"$BATS_TEST_TMPDIR/lines"
	# a reader whose output nobody reads: once its pipe is full it holds
	# the writer back for good
	mkfifo "$BATS_TEST_TMPDIR/out"
	exec {keep}<>"$BATS_TEST_TMPDIR/out"
	dh_bg sh -c 'exec dh-read --follow --lines "$1" >"$2"' sh "$ch" "$BATS_TEST_TMPDIR/out"
	dh_await readers_at_least "$ch" 1
	for _ in $(seq "$TRIALS"); do
		one_trial INT "dh_writer_alive $ch" sh -c 'exec dh-write --lines "$1" <"$2"' sh "$ch" "$BATS_TEST_TMPDIR/lines"
	done
	exec {keep}>&-
}

@test "dh-write: SIGTERM while waiting for input, $TRIALS times" {
	dh-create "$ch"
	mkfifo "$BATS_TEST_TMPDIR/in"
	exec {keep}<>"$BATS_TEST_TMPDIR/in"
	for _ in $(seq "$TRIALS"); do
		one_trial TERM "dh_writer_alive $ch" sh -c 'exec dh-write --lines "$1" <"$2"' sh "$ch" "$BATS_TEST_TMPDIR/in"
	done
	exec {keep}>&-
}

@test "dh-read: SIGTERM while waiting for data, every policy, $TRIALS times each" {
	local p
	for p in sync ring latest queue; do
		dh-create --policy "$p" "$ch-$p"
		for _ in $(seq "$TRIALS"); do
			one_trial TERM "readers_at_least $ch-$p 1" dh-read --lines "$ch-$p"
		done
	done
}
