#!/usr/bin/env bats
# broker-contract.bats: dh-broker and its commands against docs/PROTOCOL.md
# where an independent client found them apart (issue 11): reply ids,
# ephemeral and out-of-range ports, bytes queued for a client that does not
# read, and signals that land anywhere in a blocking loop. See LICENSE.

load test_helper

setup() {
	dh_setup
	D=$BATS_TEST_TMPDIR
	EP=ipc://$D/req.sock
	EV=ipc://$D/ev.sock
	CLIENT=$DH_TOP/tests/broker/client.py
	PY=/usr/bin/python3
}

teardown() {
	[ -z "$STOP" ] || touch "$STOP"
	dh_teardown
	rm -f "$D/req.sock" "$D/ev.sock"
}

need_py() {
	if ! "$PY" -c 'import zmq' 2>/dev/null; then
		echo "python3-zmq is missing: run make deps" >&2
		return 1
	fi
}

# broker_bg [ARGS...]: dh-broker on this test's endpoints (later options
# win), log in $D/broker.log; waits until the request socket exists.
broker_bg() {
	dh_bg sh -c 'exec dh-broker "$@" 2>"$0"' "$D/broker.log" --bind "$EP" --heartbeat 100ms "$@"
	BPID=$DH_BG_PID
	dh_await test -S "$D/req.sock"
}

py() {
	"$PY" "$CLIENT" --endpoint "$EP" "$@"
}

# gone PID: the process has exited (for dh_await).
gone() {
	! kill -0 "$1" 2>/dev/null
}

# lines_over FILE N: FILE has more than N lines.
lines_over() {
	[ "$(wc -l <"$1")" -gt "$2" ]
}

@test "a refused request's reply carries its id whenever the id was usable" {
	need_py
	broker_bg
	run -0 --separate-stderr py ids
	echo "$output"
	assert_equal "$(jq -r -s 'map(.id) | join(",")' <<<"$output")" "k1,k2,k3,k4,k5,,"
}

@test "--events tcp://127.0.0.1:0: ping reports the port bound, and subscribers get events there" {
	need_py
	broker_bg --events tcp://127.0.0.1:0
	run -0 --separate-stderr py ping
	ev=$(jq -r .events <<<"$output")
	[[ $ev =~ ^tcp://127\.0\.0\.1:([0-9]+)$ ]]
	port=${BASH_REMATCH[1]}
	[ "$port" -gt 0 ] && [ "$port" -le 65535 ]
	dh_bg sh -c 'exec dh-stat --broker "$1" --events >"$0"' "$D/ev" "$EP"
	dh_await grep -q '"welcome"' "$D/ev"
}

@test "a tcp port above 65535 is refused: --bind and --events exit 2, a client says invalid endpoint" {
	for opt in --bind --events; do
		run -2 --separate-stderr timeout 10 dh-broker --bind "$EP" "$opt" tcp://127.0.0.1:70000
		stderr_lines=("${stderr_lines[@]}")
		assert_equal "${stderr_lines[0]}" "dh-broker: $opt tcp://127.0.0.1:70000: invalid endpoint (ipc://PATH or tcp://HOST:PORT, PORT 0..65535)"
	done
	run -2 --separate-stderr timeout 10 dh-broker --bind tcp://127.0.0.1:65536
	run -2 --separate-stderr timeout 10 dh-broker --bind tcp://127.0.0.1:
	run -2 --separate-stderr timeout 10 dh-broker --bind tcp://127.0.0.1:1x
	run -2 --separate-stderr timeout 10 dh-stat --broker tcp://127.0.0.1:70000
	assert_output ""
	assert_equal "$stderr" "dh-stat: broker tcp://127.0.0.1:70000: invalid endpoint (ipc://PATH or tcp://HOST:PORT)"
}

@test "list sent 300 times without reading: the broker's memory stays bounded (paged replies)" {
	need_py
	# under `make asan`, freed memory sits in ASan's quarantine: measure the broker's own
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0
	broker_bg --heartbeat 10s --verbose
	run -0 --separate-stderr py list-flood "$BPID" "$D/broker.log"
	echo "$output"
	kill -0 "$BPID"
}

@test "dh-stat --broker lists a registry of many pages whole, each channel once" {
	need_py
	broker_bg --heartbeat 10s
	run -0 --separate-stderr py fill 250
	run -0 --separate-stderr dh-stat --broker "$EP" --json
	jq -e '[.channels[].channel] | length == 250 and (unique | length) == 250' <<<"$output" >/dev/null
	run -0 --separate-stderr dh-stat --broker "$EP"
	[ "${#lines[@]}" -eq 251 ]
}

# signal_trials SIG STATUS: 10 times, dh-stat --events under a stream of
# events gets SIG once lines flow; it must be gone within 3 s with STATUS.
signal_trials() {
	local sig=$1 want=$2 trial pid st
	STOP=$D/stop
	dh_bg "$PY" "$CLIENT" --endpoint "$EP" churn 120 "$STOP"
	for trial in 1 2 3 4 5 6 7 8 9 10; do
		: >"$D/ev"
		dh_bg sh -c 'exec dh-stat --broker "$1" --events >"$0"' "$D/ev" "$EP"
		pid=$DH_BG_PID
		dh_await grep -q '"welcome"' "$D/ev"
		dh_await lines_over "$D/ev" $((trial * 20))     # vary where the signal lands
		kill "-$sig" "$pid"
		if ! dh_await -t 3 gone "$pid"; then
			echo "trial $trial: dh-stat --events ignored SIG$sig" >&2
			return 1
		fi
		st=0
		wait "$pid" || st=$?
		[ "$st" -eq "$want" ] || { echo "trial $trial: exit $st, expected $want" >&2; return 1; }
	done
	touch "$STOP"
}

@test "dh-stat --events under a stream of events: SIGINT ends it promptly, 10 trials out of 10" {
	need_py
	broker_bg --events "$EV"
	signal_trials INT 130
}

@test "dh-stat --events under a stream of events: SIGTERM ends it promptly, 10 trials out of 10" {
	need_py
	broker_bg --events "$EV"
	signal_trials TERM 143
}

@test "dh-broker under a request flood: SIGTERM ends it promptly, 5 trials out of 5" {
	need_py
	local trial st
	for trial in 1 2 3 4 5; do
		STOP=$D/stop$trial
		broker_bg --events "$EV" --verbose
		dh_bg "$PY" "$CLIENT" --endpoint "$EP" churn 60 "$STOP"
		dh_await lines_over "$D/broker.log" $((trial * 50))
		kill -TERM "$BPID"
		if ! dh_await -t 3 gone "$BPID"; then
			echo "trial $trial: dh-broker ignored SIGTERM" >&2
			return 1
		fi
		st=0
		wait "$BPID" || st=$?
		[ "$st" -eq 143 ]
		touch "$STOP"
		rm -f "$D/req.sock" "$D/ev.sock"
	done
}

# discovers_over N NAME: the broker's log shows more than N discover
# requests for NAME (dh-read --wait-channel asking for it).
discovers_over() {
	[ "$(grep -c "discover: not_found: channel $2 " "$D/broker.log")" -gt "$1" ]
}

@test "dh-read --wait-channel with a busy broker: SIGINT ends it promptly, 5 trials out of 5" {
	need_py
	local trial pid st n
	n=$(dh_name)
	broker_bg --verbose
	STOP=$D/stop
	dh_bg "$PY" "$CLIENT" --endpoint "$EP" churn 120 "$STOP"
	for trial in 1 2 3 4 5; do
		dh_bg dh-read --broker "$EP" --wait-channel 60s "$n"
		pid=$DH_BG_PID
		dh_await discovers_over $((trial * 4)) "$n"     # vary where the signal lands
		kill -INT "$pid"
		if ! dh_await -t 3 gone "$pid"; then
			echo "trial $trial: dh-read --wait-channel ignored SIGINT" >&2
			return 1
		fi
		st=0
		wait "$pid" || st=$?
		[ "$st" -eq 130 ] || { echo "trial $trial: exit $st, expected 130" >&2; return 1; }
	done
	touch "$STOP"
}
