#!/usr/bin/env bats
# broker-clients.bats: dh-write, dh-read and dh-stat with a live dh-broker:
# registration, readers, --wait-channel, schema refusal, events, a broker
# that dies and comes back, CURVE. See LICENSE.

load test_helper

setup() {
	dh_setup
	D=$BATS_TEST_TMPDIR
	EP=ipc://$D/req.sock
	EV=ipc://$D/ev.sock
	HOSTILE=$DH_TOP/$DH_BUILD/tests/helpers/hostile
}

teardown() {
	dh_teardown
	rm -f "$D/req.sock" "$D/ev.sock"
}

# broker_bg [ARGS...]: dh-broker on this test's endpoints with a 100 ms
# heartbeat, log in $D/broker.log (appended: it may be restarted); waits
# until both sockets exist.
broker_bg() {
	dh_bg sh -c 'exec dh-broker "$@" 2>>"$0"' "$D/broker.log" \
		--bind "$EP" --events "$EV" --heartbeat 100ms "$@"
	BPID=$DH_BG_PID
	dh_await test -S "$D/ev.sock"
}

# broker_kill: SIGKILL, no cleanup: its socket files stay behind, removed here.
broker_kill() {
	kill -KILL "$BPID"
	wait "$BPID" 2>/dev/null || true
	rm -f "$D/req.sock" "$D/ev.sock"
}

# events_bg: dh-stat --events in the background, lines in $D/ev (stderr in
# $D/ev.err), pid in $EVPID; returns once the welcome is there.
events_bg() {
	dh_bg sh -c 'exec dh-stat --broker "$1" --events >"$0" 2>"$0.err"' "$D/ev" "$EP"
	EVPID=$DH_BG_PID
	dh_await grep -q '"welcome"' "$D/ev"
}

# reader_bg TAG ARGS...: dh-read ARGS... in the background, stdout in
# $D/TAG.out, stderr in $D/TAG.err, pid in $RPID.
reader_bg() {
	local tag=$1
	shift
	dh_bg sh -c 'exec dh-read "$@" >"$0.out" 2>"$0.err"' "$D/$tag" "$@"
	RPID=$DH_BG_PID
}

# listed JQ: the broker's list (dh-stat --broker --json) satisfies JQ, in
# which $n is the test's channel.
listed() {
	dh-stat --broker "$EP" --json 2>/dev/null | jq -e --arg n "$n" "$1" >/dev/null
}

# has_event JQ: some line of $D/ev satisfies JQ ($n: the channel).
has_event() {
	jq -e -s --arg n "$n" "any(.[]; $1)" "$D/ev" >/dev/null
}

# exit_status PID: wait for PID (a child of the test shell: not from a
# command substitution) and leave its exit status in $ST.
exit_status() {
	ST=0
	wait "$1" || ST=$?
}

# has_lines FILE N: FILE has N lines (for dh_await: evaluated at each try).
has_lines() {
	[ -f "$1" ] && [ "$(wc -l <"$1")" -eq "$2" ]
}

now_ms() {
	date +%s%3N
}

@test "broker options: usage errors exit 2, unusable key files and brokers exit 1" {
	n=$(dh_name)
	run -2 --separate-stderr dh-write --broker-key "$D/k" "$n"
	assert_output ""
	assert_equal "${stderr_lines[0]}" "dh-write: --broker-key and --client-key need --broker (or DH_BROKER)"
	[[ ${stderr_lines[1]} == "usage: dh-write "* ]]
	run -2 --separate-stderr dh-read --from oldest --broker "$EP" --client-key "$D/k" "$n"
	assert_equal "${stderr_lines[0]}" "dh-read: --broker-key and --client-key go together"
	run -2 --separate-stderr dh-write --broker nowhere "$n"
	assert_equal "$stderr" "dh-write: broker nowhere: invalid endpoint (ipc://PATH or tcp://HOST:PORT)"
	run -2 --separate-stderr dh-read --wait-channel soon "$n"
	assert_equal "$stderr" "dh-read: --wait-channel soon: invalid duration"
	run -2 --separate-stderr dh-stat --events
	assert_equal "${stderr_lines[0]}" "dh-stat: --events needs --broker ENDPOINT (or DH_BROKER)"
	assert_equal "$(dh_usage_forms <<<"$stderr")" "dh-stat [--broker ENDPOINT] [--broker-key FILE --client-key FILE] --events"
	run -2 --separate-stderr dh-stat --broker "$EP" --prometheus
	run -2 --separate-stderr dh-stat --broker "$EP" --watch 1
	run -2 --separate-stderr dh-stat --broker "$EP" --events "$n"
	run -2 --separate-stderr dh-stat --client-key "$D/k" --broker-key "$D/k"
	assert_equal "${stderr_lines[0]}" "dh-stat: --broker-key and --client-key need --broker or --events"
	# key files are checked before anything else happens
	run -1 --separate-stderr dh-write --create --broker "$EP" --broker-key "$D/none.pub" --client-key "$D/none.key" "$n"
	assert_equal "$stderr" "dh-write: $D/none.pub: No such file or directory"
	[ ! -e "$(dh_shm "$n")" ]
	dh-broker --keygen "$D/k"
	chmod 0644 "$D/k/client.key"
	DH_CURVE_DIR=$D/k run -1 --separate-stderr dh-stat --broker "$EP"
	assert_equal "$stderr" "dh-stat: $D/k/client.key: key file must be a regular file owned by you with mode 0600 or stricter"
	echo "not a key" >"$D/bad.pub"
	run -1 --separate-stderr dh-read --from oldest --broker "$EP" --broker-key "$D/bad.pub" --client-key "$D/k/client.key" "$n"
	assert_equal "$stderr" "dh-read: $D/bad.pub: not a CURVE key file (40 Z85 characters)"
	# no broker there: dh-stat says so (after its 2 s request timeout)
	run -1 --separate-stderr dh-stat --broker "$EP"
	assert_output ""
	assert_equal "$stderr" "dh-stat: broker $EP: no reply from the broker while list"
}

@test "dh-write --broker registers its channel; dh-stat --broker lists it with its counters" {
	broker_bg
	n=$(dh_name)
	dh_feed "$n" --create --lines --name sensor --broker "$EP" 2>"$D/w.err"
	printf 'a\nbb\nccc\n' >&"$DH_FEED"
	dh_await listed '.channels[] | select(.channel == $n) | .metrics.messages == 3'
	run -0 --separate-stderr dh-stat --broker "$EP" --json
	assert_equal "$stderr" ""
	jq -e --arg n "$n" --arg ep "$EP" --argjson pid "$DH_FEED_PID" '
		.broker == $ep and .time_ns > 0 and (.channels | length) == 1 and
		(.channels[0] | .channel == $n and .pid == $pid and .label == "sensor" and .state == "live"
			and .policy == "sync" and .slots == 64 and .slot_size == 65536 and .checksum == "xxh3"
			and .metrics.messages == 3 and .metrics.bytes == 6 and .metrics.stream == 1
			and .metrics.eos == 0 and .metrics.readers_lost == 0 and .readers == [])' <<<"$output"
	run -0 --separate-stderr dh-stat --broker "$EP"
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 --regexp '^CHANNEL +HOST +STATE +PID +LABEL +POLICY +SLOTS +MESSAGES +BYTES +READERS +AGE$'
	assert_line --index 1 --regexp "^$n +[^ ]+ +live +$DH_FEED_PID +sensor +sync +64x64K +3 +6 +0 +[0-9]+\.[0-9]s$"
	# by name: an unregistered one is reported
	run -1 --separate-stderr dh-stat --broker "$EP" "$n" "$n-none"
	assert_equal "$stderr" "dh-stat: $n-none: not registered"
	assert_equal "${#lines[@]}" 2
	dh_feed_end
	assert_equal "$(cat "$D/w.err")" ""
	# deregistered at exit
	run -0 --separate-stderr dh-stat --broker "$EP" --json
	jq -e '.channels == []' <<<"$output"
}

@test "dh-read --broker registers as a reader: listed with its label, gone after SIGTERM" {
	broker_bg
	n=$(dh_name)
	dh_feed "$n" --create --lines --broker "$EP"
	reader_bg r --lines --name rd --broker "$EP" "$n"
	echo hello >&"$DH_FEED"
	dh_await listed '.channels[] | select(.channel == $n) | .readers | length == 1'
	dh_await grep -qx hello "$D/r.out"
	listed ".channels[0].readers[0] | .pid == $RPID and .label == \"rd\" and .state == \"live\""
	run -0 --separate-stderr dh-stat --broker "$EP"
	assert_line --index 1 --regexp "^$n .* 1 +[0-9.]+s$"
	kill -TERM "$RPID"
	exit_status "$RPID"
	assert_equal "$ST" 143
	dh_await listed '.channels[] | select(.channel == $n) | .readers == []'
	assert_equal "$(cat "$D/r.err")" ""
	dh_feed_end
}

@test "dh-stat --events: JSON lines from the welcome on (registered, reader_joined, checksum_failure, closed); SIGINT ends it" {
	broker_bg
	events_bg
	n=$(dh_name)
	dh_feed "$n" --create --lines --broker "$EP"
	printf 'one\ntwo\nthree\n' >&"$DH_FEED"
	dh_await listed '.channels[] | select(.channel == $n) | .metrics.messages == 3'
	# spoil message 1: its reader reports it, and the broker announces it
	off=$(dh-diagnose --json "$n" | jq -r '.layout.data_off + 1 * .stride')
	"$HOSTILE" xor "$(dh_shm "$n")" "$off" 0x20
	reader_bg r --lines --name rd --broker "$EP" "$n"
	dh_await has_event '.event == "reader_joined" and .channel == $n'
	dh_await has_event '.event == "checksum_failure" and .channel == $n and .message_seq == 1'
	dh_feed_end
	exit_status "$RPID"
	assert_equal "$ST" 1
	assert_equal "$(cat "$D/r.out")" "$(printf 'one\nthree')"
	assert_equal "$(cat "$D/r.err")" "dh-read: $n: checksum mismatch at seq 1"
	dh_await has_event '.event == "closed" and .channel == $n and .reason == "deregistered"'
	kill -INT "$EVPID"
	exit_status "$EVPID"
	assert_equal "$ST" 130
	assert_equal "$(cat "$D/ev.err")" ""
	# every line is one JSON object; the welcome first; then in seq order
	jq -e -s --arg n "$n" --argjson w "$DH_FEED_PID" --argjson r "$RPID" '
		.[0] == {"event":"welcome","protocol":3,"version":"0.1.0"} and
		all(.[1:][]; type == "object" and (.event | type) == "string" and (.seq | type) == "number") and
		([.[1:][] | .seq] | . == sort) and
		any(.[]; .event == "registered" and .channel == $n and .pid == $w and .policy == "sync") and
		any(.[]; .event == "reader_joined" and .channel == $n and .pid == $r and .label == "rd") and
		any(.[]; .event == "checksum_failure" and .pid == $r) and
		any(.[]; .event == "closed" and .channel == $n and .pid == $w)' "$D/ev" >/dev/null
	assert_equal "$(grep -c . "$D/ev")" "$(jq -c . "$D/ev" | grep -c .)"
}

@test "dh-read --wait-channel waits until a writer registers the channel, then reads it" {
	broker_bg
	n=$(dh_name)
	reader_bg r --lines --wait-channel 30s --broker "$EP" "$n"
	# it is asking the broker, and waiting
	dh_await grep -q "discover: not_found: channel $n is not registered" "$D/broker.log"
	! _dh_gone "$RPID"
	printf 'x\ny\n' | dh-write --create --lines --broker "$EP" "$n"
	exit_status "$RPID"
	assert_equal "$ST" 0
	assert_equal "$(cat "$D/r.out")" "$(printf 'x\ny')"
	assert_equal "$(cat "$D/r.err")" ""
}

@test "dh-read --wait-channel times out with exit 3, with a broker, without, and with none answering" {
	n=$(dh_name)
	run -3 --separate-stderr dh-read --wait-channel 200ms "$n"
	assert_output ""
	assert_equal "$stderr" "dh-read: $n: channel did not appear in time"
	broker_bg
	t0=$(now_ms)
	run -3 --separate-stderr dh-read --wait-channel 300ms --broker "$EP" "$n"
	t1=$(now_ms)
	assert_equal "$stderr" "dh-read: $n: channel did not appear in time"
	[ $((t1 - t0)) -ge 300 ] && [ $((t1 - t0)) -lt 2000 ]
	run -3 --separate-stderr dh-read --wait-channel 300ms --broker "ipc://$D/nobody.sock" "$n"
	assert_equal "$stderr" "dh-read: $n: channel did not appear in time"
	# a channel that exists needs no broker and no wait
	dh-create "$n"
	run -0 --separate-stderr dh-read --wait-channel 0 --no-wait --broker "ipc://$D/nobody.sock" "$n"
	assert_output ""
}

@test "dh-read --wait-channel refuses a registered channel whose schema differs from --schema" {
	broker_bg
	n=$(dh_name)
	dh-create --schema 'ts:u64;temp:f32' "$n"
	dh_feed "$n" --broker "$EP"
	dh_await listed '.channels[] | select(.channel == $n) | .schema_hash != null'
	# from now on only the broker knows of the channel (the writer keeps
	# its mapping and its registration)
	rm "$(dh_shm "$n")"
	run -1 --separate-stderr dh-read --wait-channel 10s --schema 'ts:u64;temp:f64' --broker "$EP" "$n"
	assert_output ""
	[[ $stderr =~ ^"dh-read: $n: the channel registered on "[^\ ]+" has another schema (hash "[0-9a-f]{16}"..., --schema "[0-9a-f]{16}"...)"$ ]]
	# the same schema passes the broker's check, then attaching finds no channel here
	run -1 --separate-stderr dh-read --wait-channel 10s --schema 'ts:u64; temp:f32' --broker "$EP" "$n"
	assert_equal "$stderr" "dh-read: $n: no such channel"
	dh_feed_end
}

@test "broker killed while dh-write runs: every line reaches the reader at once, a warning, a quick exit" {
	broker_bg
	n=$(dh_name)
	dh_feed "$n" --create --lines --broker "$EP" 2>"$D/w.err"
	reader_bg r --lines "$n"
	dh_await listed '.channels[] | select(.channel == $n)'
	seq 1 100 >&"$DH_FEED"
	dh_await has_lines "$D/r.out" 100
	broker_kill
	# no stall: the data path never waits for the broker (whose requests
	# time out only after 2 s)
	t0=$(now_ms)
	seq 101 200 >&"$DH_FEED"
	dh_await has_lines "$D/r.out" 200
	t1=$(now_ms)
	[ $((t1 - t0)) -lt 1500 ]
	dh_await grep -q "^dh-write: broker: no reply" "$D/w.err"
	seq 201 300 >&"$DH_FEED"
	t0=$(now_ms)
	dh_feed_end
	t1=$(now_ms)
	[ $((t1 - t0)) -lt 1500 ]
	exit_status "$RPID"
	assert_equal "$ST" 0
	assert_equal "$(cat "$D/r.out")" "$(seq 1 300)"
	assert_equal "$(cat "$D/r.err")" ""
	assert_equal "$(grep -c "^dh-write: broker:" "$D/w.err")" 1
}

@test "broker restarted: the writer registers again by itself, data flowing all along" {
	broker_bg
	n=$(dh_name)
	dh_feed "$n" --create --lines --name w1 --broker "$EP" 2>"$D/w.err"
	reader_bg r --lines "$n"
	dh_await listed '.channels[] | select(.channel == $n)'
	seq 1 50 >&"$DH_FEED"
	broker_kill
	dh_await grep -q "^dh-write: broker: no reply" "$D/w.err"
	seq 51 100 >&"$DH_FEED"
	broker_bg
	dh_await listed ".channels[] | select(.channel == \$n) | .pid == $DH_FEED_PID and .label == \"w1\""
	dh_await grep -qx "dh-write: broker: registered again" "$D/w.err"
	seq 101 150 >&"$DH_FEED"
	dh_await listed '.channels[] | select(.channel == $n) | .metrics.messages == 150'
	dh_feed_end
	exit_status "$RPID"
	assert_equal "$ST" 0
	assert_equal "$(cat "$D/r.out")" "$(seq 1 150)"
	listed '.channels == []'
}

@test "CURVE: the writer registers with the keys (options or DH_CURVE_DIR); a wrong broker key is a warning, data flows" {
	dh-broker --keygen "$D/k"
	dh-broker --keygen "$D/other"
	broker_bg --curve "$D/k"
	n=$(dh_name)
	dh_feed "$n" --create --lines --broker "$EP" --broker-key "$D/k/broker.pub" --client-key "$D/k/client.key" 2>"$D/w.err"
	echo a >&"$DH_FEED"
	# dh-stat with the keys from DH_CURVE_DIR sees it; without keys it gets no answer
	DH_CURVE_DIR=$D/k dh_await listed '.channels[] | select(.channel == $n) | .metrics.messages == 1'
	dh_feed_end
	assert_equal "$(cat "$D/w.err")" ""
	run -1 --separate-stderr dh-stat --broker "$EP"
	[[ $stderr == "dh-stat: broker $EP: "* ]]
	# the reader side through DH_CURVE_DIR
	n=$(dh_name 2)
	DH_CURVE_DIR=$D/k dh_feed "$n" --create --lines --broker "$EP" 2>"$D/w.err"
	DH_CURVE_DIR=$D/k reader_bg r --lines --name rd "$n" --broker "$EP"
	DH_CURVE_DIR=$D/k dh_await listed '.channels[] | select(.channel == $n) | .readers[0].label == "rd"'
	dh_feed_end
	exit_status "$RPID"
	assert_equal "$ST" 0
	assert_equal "$(cat "$D/w.err")$(cat "$D/r.err")" ""
	# a wrong broker key: the handshake fails, the writer says so and writes on
	n=$(dh_name 3)
	dh_feed "$n" --create --lines --broker "$EP" --broker-key "$D/other/broker.pub" --client-key "$D/k/client.key" 2>"$D/w.err"
	reader_bg r2 --lines "$n"
	seq 1 20 >&"$DH_FEED"
	dh_await has_lines "$D/r2.out" 20
	dh_await grep -qF "dh-write: broker: no reply: the handshake with the broker failed (wrong broker key?)" "$D/w.err"
	seq 21 40 >&"$DH_FEED"
	dh_feed_end
	exit_status "$RPID"
	assert_equal "$ST" 0
	assert_equal "$(cat "$D/r2.out")" "$(seq 1 40)"
	DH_CURVE_DIR=$D/k listed '.channels == []'
}
