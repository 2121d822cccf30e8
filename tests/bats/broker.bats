#!/usr/bin/env bats
# broker.bats: dh-broker through PATH: options, keys, signals, and the
# Python client of tests/broker/client.py against a live broker, with and
# without CURVE. See LICENSE.

load test_helper

setup() {
	dh_setup
	D=$BATS_TEST_TMPDIR
	EP=ipc://$D/req.sock
	EV=ipc://$D/ev.sock
	CLIENT=$DH_TOP/tests/broker/client.py
	PY=
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import zmq' 2>/dev/null; then
			PY=$p
			break
		fi
	done
}

teardown() {
	dh_teardown
	rm -f "$D/req.sock" "$D/ev.sock"
}

# need_py: the Python client needs python3-zmq (installed by `make deps`):
# fail loudly rather than skip, so CI never passes without it.
need_py() {
	if [ -z "$PY" ]; then
		echo "python3-zmq is missing: run make deps" >&2
		return 1
	fi
}

# broker_bg [ARGS...]: dh-broker on this test's endpoints with a 100 ms
# heartbeat, log in $D/broker.log; waits until both sockets exist.
broker_bg() {
	dh_bg sh -c 'exec dh-broker "$@" 2>"$0"' "$D/broker.log" \
		--bind "$EP" --events "$EV" --heartbeat 100ms "$@"
	BPID=$DH_BG_PID
	dh_await test -S "$D/ev.sock"
}

# has_event FILE JQ-CONDITION: some event of FILE satisfies the condition.
has_event() {
	jq -e -s "any(.[]; $2)" "$1" >/dev/null
}

# py ARGS...: the Python client on this test's endpoints.
py() {
	"$PY" "$CLIENT" --endpoint "$EP" --events "$EV" "$@"
}

# events_valid FILE: every line is a JSON object with a string "event",
# and lines with a seq have increasing seqs.
events_valid() {
	[ -s "$1" ] &&
		jq -e -s 'length > 0 and all(.[]; type == "object" and (.event | type) == "string")
			and ([.[] | select(.seq) | .seq] | . == sort)' "$1" >/dev/null
}

@test "--help prints the usage (the man page synopsis) on stdout" {
	run -0 --separate-stderr dh-broker --help
	[[ ${lines[0]} == "usage: dh-broker [--bind ENDPOINT] "* ]]
	assert_equal "$stderr" ""
	run -0 dh_usage_forms <<<"$output"
	assert_output - <<-'EOF'
	dh-broker [--bind ENDPOINT] [--events ENDPOINT] [--curve DIR] [--heartbeat DUR] [--verbose]
	dh-broker --keygen DIR
	EOF
	assert_equal "$output" "$(dh_man_synopsis "$DH_TOP/man/dh-broker.1")"
}

@test "--version, and --help to a full stdout fails" {
	run -0 --separate-stderr dh-broker --version
	assert_output "dh-broker 0.1.0"
	run -1 --separate-stderr sh -c 'dh-broker --help >/dev/full'
	assert_output ""
	assert_equal "$stderr" "dh-broker: write error: No space left on device"
}

@test "usage errors exit 2 with one usage line and nothing on stdout" {
	run -2 --separate-stderr dh-broker --frobnicate
	assert_output ""
	assert_equal "${stderr_lines[0]}" "dh-broker: unknown option --frobnicate"
	[[ ${stderr_lines[1]} == "usage: dh-broker [--bind"* ]]
	# one usage form (wrapped to 80 columns), the first of the SYNOPSIS
	assert_equal "$(dh_usage_forms <<<"$stderr")" "$(dh_man_synopsis "$DH_TOP/man/dh-broker.1" | head -n 1)"
	run -2 --separate-stderr dh-broker --heartbeat 0
	assert_output ""
	[[ $stderr == *"--heartbeat 0: invalid duration"* ]]
	run -2 --separate-stderr dh-broker --heartbeat 5x
	run -2 --separate-stderr dh-broker --bind
	[[ $stderr == *"needs an argument"* ]]
	run -2 --separate-stderr dh-broker extra
	run -2 --separate-stderr dh-broker --keygen "$D/k" --verbose
	[[ $stderr == *"usage: dh-broker --keygen DIR"* ]]
	[ ! -e "$D/k" ]
	run -2 --separate-stderr dh-broker --bind "$EP" --events "$EP"
}

@test "--keygen: key pairs, allow-list, modes 0600/0700; never overwrites" {
	run -0 --separate-stderr dh-broker --keygen "$D/k"
	assert_output ""
	for f in broker.key broker.pub client.key clients/client.pub; do
		assert_equal "$(stat -c %a "$D/k/$f")" 600
		assert_equal "$(wc -c <"$D/k/$f")" 41
	done
	assert_equal "$(stat -c %a "$D/k")" 700
	assert_equal "$(stat -c %a "$D/k/clients")" 700
	sum=$(cat "$D"/k/*.key "$D"/k/*.pub | cksum)
	run -1 --separate-stderr dh-broker --keygen "$D/k"
	assert_equal "$stderr" "dh-broker: $D/k: key files exist (remove them first)"
	assert_equal "$(cat "$D"/k/*.key "$D"/k/*.pub | cksum)" "$sum"
}

@test "SIGTERM and SIGINT: clean exit by the signal, sockets removed" {
	broker_bg
	kill -TERM "$BPID"
	status_=0
	wait "$BPID" || status_=$?
	assert_equal "$status_" 143
	[ ! -e "$D/req.sock" ] && [ ! -e "$D/ev.sock" ]
	broker_bg
	kill -INT "$BPID"
	status_=0
	wait "$BPID" || status_=$?
	assert_equal "$status_" 130
	[ ! -e "$D/req.sock" ]
	assert_equal "$(cat "$D/broker.log")" ""
}

@test "a second broker on the same ipc endpoint is refused; the first keeps serving" {
	need_py
	broker_bg
	run -1 --separate-stderr dh-broker --bind "$EP"
	assert_equal "$stderr" "dh-broker: $EP: address in use (another broker listens there)"
	run -0 py ping
	[ -S "$D/req.sock" ]
}

@test "--curve fails closed: no secret key or no allow-list, no broker" {
	run -1 --separate-stderr dh-broker --bind "$EP" --curve "$D/none"
	[[ $stderr == "dh-broker: $D/none/broker.key: No such file or directory" ]]
	dh-broker --keygen "$D/k"
	rm -r "$D/k/clients/client.pub" && rmdir "$D/k/clients"
	run -1 --separate-stderr dh-broker --bind "$EP" --curve "$D/k"
	[[ $stderr == *"clients: allow-list: No such file or directory" ]]
	[ ! -e "$D/req.sock" ]
	chmod 0644 "$D/k/broker.key"
	run -1 --separate-stderr dh-broker --bind "$EP" --curve "$D/k"
	[[ $stderr == *"broker.key: key file must be a regular file owned by you"* ]]
	[ ! -e "$D/req.sock" ]
}

@test "python client: register, heartbeat, discover, list, events, deregister" {
	need_py
	broker_bg
	run -0 --separate-stderr py demo "$(dh_name)"
	assert_equal "$stderr" ""
	printf '%s\n' "$output" >"$D/events"
	events_valid "$D/events"
	for e in welcome registered reader_joined checksum_failure reader_left closed; do
		has_event "$D/events" ".event == \"$e\""
	done
}

@test "python client with CURVE: an allow-listed client does everything" {
	need_py
	dh-broker --keygen "$D/k"
	broker_bg --curve "$D/k"
	run -0 --separate-stderr py --server-key "$D/k/broker.pub" --client-key "$D/k/client.key" demo "$(dh_name)"
	printf '%s\n' "$output" >"$D/events"
	events_valid "$D/events"
}

@test "CURVE matrix: unknown key, wrong server key, no CURVE are all refused" {
	need_py
	dh-broker --keygen "$D/k"
	dh-broker --keygen "$D/other"
	broker_bg --curve "$D/k"
	run -0 py --server-key "$D/k/broker.pub" --client-key "$D/k/client.key" ping
	run -3 py --timeout 1 --server-key "$D/k/broker.pub" --client-key "$D/other/client.key" ping
	run -3 py --timeout 1 --server-key "$D/other/broker.pub" --client-key "$D/k/client.key" ping
	run -3 py --timeout 1 ping
	# nor can they register (the request never reaches the registry)
	run -3 py --timeout 1 --server-key "$D/k/broker.pub" --client-key "$D/other/client.key" \
		request '{"type":"register","channel":"x","host":"h","pid":1,"policy":"sync","slots":1,"slot_size":1,"max_readers":1,"checksum":"none"}'
	run -0 --separate-stderr py --server-key "$D/k/broker.pub" --client-key "$D/k/client.key" \
		request '{"type":"list"}'
	assert_equal "$(jq -c .channels <<<"$output")" "[]"
	grep -q "not in the allow-list" "$D/broker.log"
	grep -q "failed: client uses another broker key" "$D/broker.log"
	# (a client without CURVE is logged as "client without CURVE" or as a lost
	# connection, depending on which side notices the mismatch first)
	# the events socket refuses the same way: no welcome without a listed key
	run -3 py --timeout 1 --server-key "$D/k/broker.pub" --client-key "$D/other/client.key" expiry "$(dh_name)"
}

@test "heartbeat expiry: stale, then removed and announced closed" {
	need_py
	broker_bg
	run -0 --separate-stderr py expiry "$(dh_name)"
	printf '%s\n' "$output" >"$D/events"
	events_valid "$D/events"
	has_event "$D/events" '.event == "stale" and .role == "writer"'
	has_event "$D/events" '.event == "closed" and .reason == "expired"'
	grep -q "expired (no heartbeat for" "$D/broker.log"
}

@test "a second live writer for a host and channel is refused (conflict)" {
	need_py
	broker_bg
	run -0 --separate-stderr py conflict "$(dh_name)"
	jq -e -s 'any(.[]; .error == "conflict")' <<<"$output" >/dev/null
}

@test "a schema conflict is refused and announced" {
	need_py
	broker_bg
	run -0 --separate-stderr py schema "$(dh_name)"
	printf '%s\n' "$output" | grep '"event"' >"$D/events"
	events_valid "$D/events"
	has_event "$D/events" '.event == "schema_conflict" and .role == "writer"'
	has_event "$D/events" '.event == "schema_conflict" and .role == "reader"'
}

@test "a reader that stops heartbeating is announced dead; its channel stays" {
	need_py
	broker_bg
	run -0 --separate-stderr py reader-died "$(dh_name)"
	printf '%s\n' "$output" >"$D/events"
	events_valid "$D/events"
	has_event "$D/events" '.event == "reader_died" and .reason == "expired"'
}

@test "hostile input: every request answered or dropped, a good client served, memory bounded" {
	need_py
	# under `make asan`, freed memory sits in ASan's quarantine: measure the broker's own
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0
	broker_bg
	run -0 --separate-stderr py hostile "$BPID" 3
	echo "$output"
	jq -e '.good_requests > 10 and .registrations <= 4096' <<<"${lines[-1]}" >/dev/null
	kill -0 "$BPID"
	run -0 py ping
	grep -q "invalid_request" "$D/broker.log"
	grep -q "more log lines suppressed" "$D/broker.log"
}

@test "the man page passes mandoc -Tlint" {
	run -0 mandoc -Tlint -W warning "$DH_TOP/man/dh-broker.1"
	assert_output ""
}
