#!/usr/bin/env bats
# dh-write/dh-read running together: policies, end-of-stream, signals, waits, idle CPU. See LICENSE.

load test_helper
load rw_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	EMPTY=$T/empty          # not /dev/null: a test elsewhere could have replaced it
	: >"$EMPTY"
}

teardown() {
	local p
	# a stopped process would never see teardown's SIGTERM
	for p in "${DH_BG_PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
	done
	dh_teardown
}

# writer_bg ARGS...: `dh-write ARGS...` in the background reading $T/in,
# stderr to $T/w.err; its pid in $WPID.
writer_bg() {
	dh_bg sh -c 'i=$1; shift; exec dh-write "$@" <"$i" 2>"$i.err"' sh "$T/in" "$@"
	WPID=$DH_BG_PID
}

# --- policies ----------------------------------------------------------------

@test "sync: two readers each get every message in order while the writer is faster" {
	dh-create --slots 4 --policy sync "$ch"
	reader_bg r1 --lines "$ch"
	p1=$RPID
	reader_bg r2 --lines "$ch"
	p2=$RPID
	dh_await readers_at_least "$ch" 2
	kill -STOP "$p2"
	seq 1 5000 >"$T/in"
	writer_bg --lines "$ch"
	# r2 is stopped at seq 0: the writer fills the 4 slots and must wait
	dh_await has_lines "$T/r1.out" 4
	sleep 0.3                                   # observe that nothing more happens
	kill -0 "$WPID"
	assert_equal "$(lines_in "$T/r1.out")" 4
	kill -CONT "$p2"
	status_of "$WPID"
	assert_equal "$st" 0
	status_of "$p1"
	assert_equal "$st" 0
	status_of "$p2"
	assert_equal "$st" 0
	cmp "$T/in" "$T/r1.out"
	cmp "$T/in" "$T/r2.out"
	[ ! -s "$T/r1.err" ] && [ ! -s "$T/r2.err" ] && [ ! -s "$T/in.err" ]
}

@test "queue: three readers together get every message exactly once" {
	dh-create --slots 8 --policy queue "$ch"
	local i pids=()
	for i in 1 2 3; do
		reader_bg "r$i" --lines "$ch"
		pids+=("$RPID")
	done
	dh_await readers_at_least "$ch" 3
	seq 1 30000 >"$T/in"
	run -0 dh-write --lines "$ch" <"$T/in"
	for i in 0 1 2; do
		status_of "${pids[$i]}"
		assert_equal "$st" 0
		sort -n -c "$T/r$((i + 1)).out"         # each reader sees its share in order
	done
	sort -n "$T/r1.out" "$T/r2.out" "$T/r3.out" | cmp "$T/in" -
}

@test "ring: a slow reader is told how many messages it lost, exit 0; -q silences it" {
	dh-create --slots 4 --policy ring "$ch"
	reader_bg r --lines "$ch"
	pr=$RPID
	reader_bg q -q --lines "$ch"
	pq=$RPID
	dh_await readers_at_least "$ch" 2
	kill -STOP "$pr" "$pq"
	seq 1 100 | dh-write --lines "$ch"          # a ring writer never waits
	kill -CONT "$pr" "$pq"
	status_of "$pr"
	assert_equal "$st" 0
	# 4 slots: at least the first 96 were overwritten; what was lost is
	# exactly what was not delivered
	run -0 cat "$T/r.err"
	assert_output --regexp "^dh-read: $ch: lost ([0-9]+) messages before seq ([0-9]+)\$"
	[[ $output =~ lost\ ([0-9]+).*seq\ ([0-9]+) ]]
	lost=${BASH_REMATCH[1]}
	assert_equal "${BASH_REMATCH[2]}" "$lost"
	[ "$lost" -ge 96 ]
	assert_equal "$(cat "$T/r.out")" "$(seq $((lost + 1)) 100)"
	status_of "$pq"
	assert_equal "$st" 0
	[ ! -s "$T/q.err" ]
	assert_equal "$(tail -1 "$T/q.out")" 100
	[ "$(lines_in "$T/q.out")" -le 4 ]
}

@test "latest: a reader gets the newest message" {
	dh-create --slots 4 --policy latest "$ch"
	seq 1 100 | dh-write --lines "$ch"
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output 100
	assert_equal "$stderr" ""
}

@test "latest: a waiting reader skips to the newest without reporting losses" {
	dh-create --slots 4 --policy latest "$ch"
	dh_feed "$ch" --lines
	reader_bg r --lines --follow "$ch"
	dh_await readers_at_least "$ch" 1
	kill -STOP "$RPID"
	seq 1 50 >&"$DH_FEED"
	dh_feed_end
	kill -CONT "$RPID"
	dh_await file_has "$T/r.out" 50
	kill -TERM "$RPID"
	status_of "$RPID"
	assert_equal "$st" 143
	assert_equal "$(tail -1 "$T/r.out")" 50
	[ "$(lines_in "$T/r.out")" -le 5 ]
	[ ! -s "$T/r.err" ]
}

# --- end of stream -----------------------------------------------------------

@test "end-of-stream: a waiting reader exits 0 after the writer's EOF" {
	dh-create "$ch"
	reader_bg r --lines "$ch"
	dh_await readers_at_least "$ch" 1
	printf 'a\nb\n' | dh-write --lines "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$T/r.out")" "$(printf 'a\nb')"
	[ ! -s "$T/r.err" ]
}

@test "--follow keeps reading across a writer restart" {
	dh-create "$ch"
	reader_bg r --lines --follow "$ch"
	dh_await readers_at_least "$ch" 1
	echo one | dh-write --lines "$ch"
	dh_await file_has "$T/r.out" one
	echo two | dh-write --lines "$ch"
	dh_await file_has "$T/r.out" two
	kill -0 "$RPID"
	kill -TERM "$RPID"
	status_of "$RPID"
	assert_equal "$st" 143
	assert_equal "$(cat "$T/r.out")" "$(printf 'one\ntwo')"
}

@test "writer SIGKILLed: the reader drains, says so and exits 1" {
	dh-create "$ch"
	reader_bg r --lines "$ch"
	dh_await readers_at_least "$ch" 1
	dh_feed "$ch" --lines
	dh_await dh_writer_alive "$ch"
	echo hello >&"$DH_FEED"
	dh_await file_has "$T/r.out" hello
	kill -KILL "$DH_FEED_PID"
	status_of "$RPID"
	assert_equal "$st" 1
	assert_equal "$(cat "$T/r.out")" hello
	assert_equal "$(cat "$T/r.err")" "dh-read: $ch: writer died without marking end-of-stream"
}

@test "writer SIGTERMed: it marks end-of-stream and re-raises; the reader exits 0" {
	dh-create "$ch"
	reader_bg r --lines "$ch"
	dh_await readers_at_least "$ch" 1
	dh_feed "$ch" --lines
	dh_await dh_writer_alive "$ch"
	echo hello >&"$DH_FEED"
	dh_await file_has "$T/r.out" hello
	kill -TERM "$DH_FEED_PID"
	status_of "$DH_FEED_PID"
	assert_equal "$st" 143
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$T/r.out")" hello
	[ ! -s "$T/r.err" ]
}

# --- signals to the reader ---------------------------------------------------

@test "SIGTERM to a following reader: status 143 and its table entry freed" {
	dh-create --max-readers 1 "$ch"
	reader_bg r --follow "$ch"
	dh_await readers_at_least "$ch" 1
	run -0 sh -c "dh-stat --json '$ch' | jq -c '.channels[0] | [.readers_total, [.readers[].state]]'"
	assert_output '[1,["alive"]]'
	kill -TERM "$RPID"
	status_of "$RPID"
	assert_equal "$st" 143
	assert_equal "$(dh_readers "$ch")" 0
	[ ! -s "$T/r.err" ]
	# freed, not merely dead (a SIGKILLed reader would be listed as "dead")
	run -0 sh -c "dh-stat --json '$ch' | jq -c '.channels[0] | [.readers_total, .readers]'"
	assert_output '[0,[]]'
	run -0 timeout 5 dh-read --no-wait "$ch"
}

@test "a SIGKILLed reader's entry is left dead (what the SIGTERM test rules out)" {
	dh-create --max-readers 1 "$ch"
	reader_bg r --follow "$ch"
	dh_await readers_at_least "$ch" 1
	kill -KILL "$RPID"
	status_of "$RPID"
	assert_equal "$st" 137
	run -0 sh -c "dh-stat --json '$ch' | jq -c '.channels[0] | [.readers_total, [.readers[].state]]'"
	assert_output '[1,["dead"]]'
}

@test "SIGINT to a following reader: status 130" {
	dh-create "$ch"
	reader_bg r --follow "$ch"
	dh_await readers_at_least "$ch" 1
	kill -INT "$RPID"
	status_of "$RPID"
	assert_equal "$st" 130
	assert_equal "$(dh_readers "$ch")" 0
}

# --- waits and limits --------------------------------------------------------

@test "--wait-readers N holds the data until N readers are attached" {
	dh-create "$ch"
	printf 'a\nb\nc\n' >"$T/in"
	writer_bg --lines --wait-readers 2 "$ch"
	dh_await dh_writer_alive "$ch"
	reader_bg r1 --lines "$ch"
	p1=$RPID
	dh_await readers_at_least "$ch" 1
	sleep 0.3                                   # observe that nothing is written yet
	kill -0 "$WPID"
	[ ! -s "$T/r1.out" ]
	reader_bg r2 --lines "$ch"
	status_of "$WPID"
	assert_equal "$st" 0
	status_of "$p1"
	assert_equal "$st" 0
	status_of "$RPID"
	assert_equal "$st" 0
	cmp "$T/in" "$T/r1.out"
	cmp "$T/in" "$T/r2.out"
}

@test "--wait-readers with --timeout: exit 3" {
	dh-create "$ch"
	run -3 --separate-stderr dh-write --wait-readers 1 --timeout 200ms "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: $ch: timed out waiting for readers"
}

@test "dh-read --timeout: exit 3 when no message arrives in time, after the ones that did" {
	dh-create "$ch"
	run -3 --separate-stderr dh-read --from oldest --timeout 200ms "$ch"
	assert_output ""
	assert_equal "$stderr" "dh-read: $ch: no message within the timeout"
	dh_feed "$ch" --lines
	printf 'x\ny\n' >&"$DH_FEED"
	run -3 --separate-stderr dh-read --from oldest --lines --timeout 300ms "$ch"
	assert_output "$(printf 'x\ny')"
}

@test "dh-write --timeout: exit 3 when a sync reader stalls it" {
	dh-create --slots 2 --policy sync "$ch"
	reader_bg r --lines "$ch"
	dh_await readers_at_least "$ch" 1
	kill -STOP "$RPID"
	run -3 --separate-stderr bash -c "seq 1 10 | dh-write --lines --timeout 300ms '$ch'"
	assert_equal "$stderr" "dh-write: $ch: timed out waiting for space"
	kill -CONT "$RPID"
	status_of "$RPID"
	assert_equal "$st" 0                          # end-of-stream was marked at 2
	assert_equal "$(cat "$T/r.out")" "$(seq 1 2)"
}

@test "--no-wait prints what is there and exits while the writer is alive" {
	dh-create "$ch"
	dh_feed "$ch" --lines
	printf '1\n2\n3\n' >&"$DH_FEED"
	run -0 timeout 10 dh-read --from oldest --lines --count 3 "$ch"     # all three committed
	run -0 --separate-stderr timeout 10 dh-read --lines --no-wait "$ch"
	assert_output "$(seq 1 3)"
	assert_equal "$stderr" ""
	dh_writer_alive "$ch"
}

@test "--count N exits after N messages, without waiting for end-of-stream" {
	dh-create "$ch"
	dh_feed "$ch" --lines
	seq 1 10 >&"$DH_FEED"
	run -0 --separate-stderr timeout 10 dh-read --from oldest --lines --count 3 "$ch"
	assert_output "$(seq 1 3)"
	run -0 timeout 10 dh-read --json --count 1 --from 7 "$ch"
	run -0 jq -r '[.seq, .text] | @tsv' <<<"$output"
	assert_output "$(printf '7\t8')"
	assert_equal "$(dh_readers "$ch")" 0
}

@test "--from oldest, latest, now and SEQ" {
	dh-create --slots 16 --policy ring "$ch"
	seq 1 10 | dh-write --lines "$ch"
	run -0 dh-read --lines --from oldest "$ch"
	assert_output "$(seq 1 10)"
	run -0 dh-read --lines --from latest "$ch"
	assert_output 10
	run -0 dh-read --lines --from 4 "$ch"
	assert_output "$(seq 5 10)"
	run -0 timeout 10 dh-read --lines --from now --no-wait "$ch"
	assert_output ""
}

# --- idle cost -----------------------------------------------------------------

@test "an idle dh-read uses under 1% CPU over 3 s" {
	dh-create "$ch"
	dh_feed "$ch" --lines
	reader_bg r --lines "$ch"
	pr=$RPID
	reader_bg f --lines --follow "$ch"
	pf=$RPID
	dh_await readers_at_least "$ch" 2
	local hz a0 b0 a1 b1
	hz=$(getconf CLK_TCK)
	a0=$(cpu_ticks "$pr")
	b0=$(cpu_ticks "$pf")
	sleep 3                                     # the measurement window itself
	a1=$(cpu_ticks "$pr")
	b1=$(cpu_ticks "$pf")
	echo "# ticks in 3 s at $hz Hz: reader $((a1 - a0)), follower $((b1 - b0))" >&3
	[ $(((a1 - a0) * 100)) -lt $((3 * hz)) ]
	[ $(((b1 - b0) * 100)) -lt $((3 * hz)) ]
}
