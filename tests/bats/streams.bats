#!/usr/bin/env bats
# streams.bats: a channel carries a sequence of streams, and every use of it
# behaves like a FIFO, not only the first (issue 12, part 1).

load test_helper
load rw_helper

setup() {
	dh_setup
	ch=$(dh_name)
}

# run_pipeline I: one reader, one writer, one line: the reader gets exactly
# that line and exits 0 at the end of the stream.
run_pipeline() {
	reader_bg "r$1" "$ch"
	dh_wait_readers "$ch" 1
	printf 'run-%s\n' "$1" | dh-write --wait-readers 1 "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/r$1.out")" "run-$1"
}

@test "the same pipeline three times on one channel, every policy: each run gets its own data" {
	local p i
	for p in sync ring latest queue; do
		ch=$(dh_name "$p")
		dh-create --policy "$p" "$ch"
		for i in 1 2 3; do
			run_pipeline "$p-$i"
		done
	done
}

@test "a reader arriving after the stream ended waits for the next one and reads only it" {
	dh-create "$ch"
	printf 'old\n' | dh-write "$ch"
	run -0 dh-read "$ch"       # consumed: nothing of that stream is left unread
	assert_output old
	reader_bg late "$ch"
	dh_wait_readers "$ch" 1
	dh_await eval '[ "$(proc_state '"$RPID"')" = S ]'
	# it is waiting, not done: nothing out, still attached
	kill -0 "$RPID"
	assert_equal "$(lines_in "$BATS_TEST_TMPDIR/late.out")" 0
	printf 'new\n' | dh-write --wait-readers 1 "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/late.out")" new
}

@test "--from now between streams waits for the next stream too" {
	dh-create "$ch"
	printf 'old\n' | dh-write "$ch"
	reader_bg now --from now "$ch"
	dh_wait_readers "$ch" 1
	printf 'new\n' | dh-write --wait-readers 1 "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/now.out")" new
}

@test "--no-wait and --from oldest still give what the channel holds of the ended stream" {
	dh-create "$ch"
	printf 'a\nb\n' | dh-write --lines "$ch"
	run -0 dh-read --no-wait --lines "$ch"
	assert_output $'a\nb'
	run -0 timeout 10 dh-read --from oldest --lines "$ch"
	assert_output $'a\nb'
	run -0 timeout 10 dh-read --from 1 --lines "$ch"
	assert_output b
}

@test "--follow reads stream after stream" {
	dh-create "$ch"
	reader_bg f --follow "$ch"
	dh_wait_readers "$ch" 1
	printf 'one\n' | dh-write "$ch"
	printf 'two\n' | dh-write "$ch"
	dh_await has_lines "$BATS_TEST_TMPDIR/f.out" 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/f.out")" $'one\ntwo'
}

@test "a reader attached while a stream runs starts at that stream's first message, not the last one's tail" {
	dh-create --slots 8 "$ch"
	printf 'old1\nold2\n' | dh-write --lines "$ch"
	run -0 dh-read --lines "$ch"    # consumed: nothing of the old stream is kept for later
	assert_output $'old1\nold2'
	dh_feed "$ch" --lines
	echo new1 >&"$DH_FEED"
	dh_wait_committed "$ch" 3
	dh_assert_committed "$ch" 3
	reader_bg mid --lines "$ch"
	dh_wait_readers "$ch" 1
	echo new2 >&"$DH_FEED"
	dh_feed_end
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/mid.out")" $'new1\nnew2'
}

@test "the stream number is in dh-stat and dh-diagnose, and grows with each stream" {
	dh-create "$ch"
	[ "$(dh-stat --json "$ch" | jq '.channels[0].stream')" -eq 0 ]
	printf 'a\n' | dh-write "$ch"
	printf 'b\n' | dh-write "$ch"
	[ "$(dh-stat --json "$ch" | jq '.channels[0].stream')" -eq 2 ]
	[ "$(dh-stat --json "$ch" | jq '.channels[0].stream_start')" -eq 1 ]
	[ "$(dh-diagnose --json "$ch" | jq -c '[.stream, .stream_start]')" = '[2,1]' ]
}

@test "a dh-write that refuses its input leaves the ended stream as it found it" {
	dh-create --slot-size 16 "$ch"
	printf 'a\n' | dh-write --lines "$ch"
	run -0 dh-read --lines "$ch"
	assert_output a
	reader_bg waiting --lines "$ch"    # between streams: waits for the next
	dh_wait_readers "$ch" 1
	run -1 dh-write --csv "$ch" <<<"x,y"
	run -1 dh-write --record-size 32 "$ch" <<<"abc"
	[ "$(dh-stat --json "$ch" | jq -c '.channels[0] | [.end_of_stream, .stream, .writer]')" = '[true,1,null]' ]
	run -0 dh-validate "$ch"
	run -0 dh-read --no-wait --lines "$ch"
	assert_output a
	# the waiting reader got nothing of those attempts and reads the next stream
	printf 'b\n' | dh-write --lines "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/waiting.out")" b
}

@test "dh-write(1)'s copy example: the reader starts first, waits for the channel, and the copy is exact" {
	head -c 5000000 /dev/urandom >"$BATS_TEST_TMPDIR/image.bin"
	dh_bg sh -c 'exec dh-read --wait-channel 10s "$1" >"$2"' sh "$ch" "$BATS_TEST_TMPDIR/copy.bin"
	local rpid=$DH_BG_PID
	dh-write --create --wait-readers 1 --slot-size 1M "$ch" <"$BATS_TEST_TMPDIR/image.bin"
	status_of "$rpid"
	assert_equal "$st" 0
	cmp "$BATS_TEST_TMPDIR/image.bin" "$BATS_TEST_TMPDIR/copy.bin"
}

@test "dh-read --wait-channel reads a channel created and finished while it waited, from its first message" {
	dh_bg sh -c 'exec dh-read --lines --wait-channel 10s "$1" >"$2"' sh "$ch" "$BATS_TEST_TMPDIR/out"
	local rpid=$DH_BG_PID
	dh-create "$ch"
	# writer done before the reader (polling every 50 ms) attaches
	printf 'x\ny\n' | dh-write --lines "$ch"
	status_of "$rpid"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" $'x\ny'
}

# --- issue 12, part 2: no silent loss on a lossless channel ---------------

# writer_waiting NAME: the writer is asleep waiting for space right now
writer_waiting() {
	[ "$(dh-stat --json "$1" | jq '.channels[0].counters.writer_waits')" -ge 1 ]
}

@test "sync, no reader: the writer keeps every unread message and waits; the next reader gets them all" {
	dh-create --slots 4 --slot-size 64 "$ch"
	dh_bg sh -c 'seq 1 10 | exec dh-write --lines "$1"' sh "$ch"
	local w=$DH_BG_PID
	dh_await writer_waiting "$ch"
	# the ring is full of unread messages: the writer stops there
	[ "$(dh-stat --json "$ch" | jq '.channels[0].committed')" -eq 4 ]
	kill -0 "$w"
	run -0 dh-read --lines "$ch"
	assert_output "$(seq 1 10)"
	status_of "$w"
	assert_equal "$st" 0
	[ "$(dh-stat --json "$ch" | jq -c '.channels[0] | [.committed, .counters.readers_lost, .health]')" = '[10,0,"ok"]' ]
}

@test "sync, no reader: dh-write --timeout gives up with exit 3 and the kept messages stay readable" {
	dh-create --slots 4 --slot-size 64 "$ch"
	run -3 --separate-stderr dh-write --lines --timeout 200ms "$ch" < <(seq 1 10)
	assert_equal "$stderr" "dh-write: $ch: timed out waiting for space"
	run -0 dh-read --lines "$ch"
	assert_output "$(seq 1 4)"
}

@test "a reader arriving after a stream nobody read gets all of it and exits at its end (sync, queue)" {
	local p
	for p in sync queue; do
		ch=$(dh_name "$p")
		dh-create --policy "$p" --slots 8 "$ch"
		seq 1 5 | dh-write --lines "$ch"
		run -0 dh-read --lines "$ch"
		assert_output "$(seq 1 5)"
		# now consumed: the next reader waits for the next stream
		reader_bg "late-$p" --lines "$ch"
		dh_await readers_at_least "$ch" 1
		printf 'next\n' | dh-write --lines --wait-readers 1 "$ch"
		status_of "$RPID"
		assert_equal "$st" 0
		assert_equal "$(cat "$BATS_TEST_TMPDIR/late-$p.out")" next
	done
}

@test "a reader that read part of a stream and left: the next one continues after it (sync)" {
	dh-create --slots 8 "$ch"
	seq 1 6 | dh-write --lines "$ch"
	run -0 dh-read --lines --count 2 "$ch"
	assert_output $'1\n2'
	run -0 dh-read --lines "$ch"
	assert_output "$(seq 3 6)"
}

@test "ring and latest: a reader arriving after the stream ended waits for the next one even if nobody read it" {
	local p
	for p in ring latest; do
		ch=$(dh_name "$p")
		dh-create --policy "$p" "$ch"
		printf 'old\n' | dh-write --lines "$ch"
		reader_bg "late-$p" --lines "$ch"
		dh_await readers_at_least "$ch" 1
		printf 'new\n' | dh-write --lines --wait-readers 1 "$ch"
		status_of "$RPID"
		assert_equal "$st" 0
		assert_equal "$(cat "$BATS_TEST_TMPDIR/late-$p.out")" new
	done
}

@test "health describes the present: a refused --key is warn until dh-validate --repair acknowledges it; counters stay" {
	local key=$BATS_TEST_TMPDIR/k other=$BATS_TEST_TMPDIR/other
	head -c 32 /dev/urandom >"$key"
	head -c 32 /dev/urandom >"$other"
	chmod 600 "$key" "$other"
	dh-create --key "$key" "$ch"
	run -1 dh-write --key "$other" "$ch" </dev/null
	[ "$(dh-stat --json "$ch" | jq -r '.channels[0].health')" = "warn" ]
	run -0 --separate-stderr dh-validate --repair --key "$key" "$ch"
	assert_output "$ch: acknowledged: acknowledged 0 schema and 1 key refusals, 0 checksum failures, 0 queue messages lost (lifetime totals)"$'\n'"$ch: valid, 0 committed messages checked"
	run -0 dh-stat --json "$ch"
	[ "$(jq -c '.channels[0] | [.health, .counters.key_mismatches, .acknowledged.key_mismatches]' <<<"$output")" = '["ok",1,1]' ]
	# a second repair has nothing to acknowledge; a new refusal warns again
	run -0 --separate-stderr dh-validate --repair --key "$key" "$ch"
	refute_output --partial acknowledged
	run -1 dh-read --key "$other" --no-wait "$ch"
	[ "$(dh-stat --json "$ch" | jq -c '.channels[0] | [.health, .counters.key_mismatches]')" = '["warn",2]' ]
}

@test "sync: a writer that finds an earlier stream unread keeps it; the next reader gets it first, then the new stream" {
	dh-create --slots 4 "$ch"
	printf 'old1\nold2\n' | dh-write --lines "$ch"
	dh_bg sh -c 'seq 1 5 | exec dh-write --lines "$1"' sh "$ch"
	local w=$DH_BG_PID
	dh_await writer_waiting "$ch"
	# old1 old2 1 2 fill the ring: nothing unread was overwritten
	[ "$(dh-stat --json "$ch" | jq -c '.channels[0] | [.committed, .stream]')" = '[4,2]' ]
	run -0 dh-read --lines "$ch"
	assert_output "$(printf 'old1\nold2\n'; seq 1 5)"
	status_of "$w"
	assert_equal "$st" 0
}

# --- issue 12, part 4: a queue message is delivered downstream or counted lost

# queue_cut SIGNAL: a queue reader whose output is blocked is killed with
# SIGNAL; every message is then accounted for exactly once: written out
# whole, counted lost, or still in the channel for the next reader.
queue_cut() {
	local sig=$1 total=3000 fifo=$BATS_TEST_TMPDIR/fifo fd r w done rest
	dh-create --policy queue --slots 16 --slot-size 4K "$ch"
	mkfifo "$fifo"
	dh_bg sh -c 'exec dh-read --lines "$1" >"$2" 2>"$2.err"' sh "$ch" "$fifo"
	r=$DH_BG_PID
	exec {fd}<"$fifo"   # the reader's output is open; nobody reads it yet
	dh_bg sh -c 'awk -v n="$2" "BEGIN { for (i = 1; i <= n; i++) printf \"%0999d\n\", i }" |
		exec dh-write --lines "$1"' sh "$ch" "$total"
	w=$DH_BG_PID
	dh_await eval '[[ "$(cat /proc/'"$r"'/wchan 2>/dev/null)" == *pipe_write* ]]'
	kill -"$sig" "$r"
	status_of "$r"
	rst=$st
	cat <&"$fd" >"$BATS_TEST_TMPDIR/got"
	exec {fd}<&-
	run -0 dh-read --lines "$ch"      # the rest, once the writer has reaped or seen the claims
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/rest"
	status_of "$w"
	assert_equal "$st" 0
	lost=$(dh-stat --json "$ch" | jq '.channels[0].counters.queue_lost')
	done=$(grep -c '^[0-9]\{999\}$' "$BATS_TEST_TMPDIR/got" || true)
	rest=$(grep -c '^[0-9]\{999\}$' "$BATS_TEST_TMPDIR/rest" || true)
	echo "sig $sig: written $done, lost $lost, left $rest of $total" >&3
	[ "$lost" -ge 1 ]
	# missing from the output and the channel: never more than counted lost
	missing=$((total - done - rest))
	[ "$missing" -le "$lost" ]
	# and nothing twice
	assert_equal "$(cat "$BATS_TEST_TMPDIR/got" "$BATS_TEST_TMPDIR/rest" | grep '^[0-9]\{999\}$' | sort | uniq -d)" ""
}

@test "queue reader interrupted (SIGINT) while its output is blocked: unwritten claims are counted lost, said once, no write error" {
	queue_cut INT
	assert_equal "$rst" 130
	# it knew what it had written: the count is exact
	assert_equal "$missing" "$lost"
	run cat "$BATS_TEST_TMPDIR/fifo.err"
	assert_output --regexp "^dh-read: $ch: [0-9]+ claimed messages not written out, counted lost\$"
}

@test "queue reader killed (SIGKILL) while its output is blocked: its unwritten claims are counted lost when reaped" {
	queue_cut KILL
	assert_equal "$rst" 137
	# a killed reader cannot say which of its claims were written out just
	# before it died: those are counted lost too (over-counted, never missed)
}

@test "--no-eos stopped by SIGINT: readers keep waiting for a next writer, as dh-write(1) says, not 'writer died'" {
	dh-create "$ch"
	dh_feed "$ch" --lines --no-eos
	reader_bg r --lines --timeout 1s "$ch"
	dh_await readers_at_least "$ch" 1
	echo one >&"$DH_FEED"
	dh_await file_has "$BATS_TEST_TMPDIR/r.out" one
	kill -INT "$DH_FEED_PID"
	dh_await eval '! dh_writer_alive "$ch"'
	status_of "$RPID"
	assert_equal "$st" 3
	assert_equal "$(cat "$BATS_TEST_TMPDIR/r.err")" "dh-read: $ch: no message within the timeout"
	run -0 dh-validate "$ch"
}

@test "sync: what a reader still attached consumed is not handed again to a reader arriving after the end" {
	dh-create "$ch"
	reader_bg follow --lines --follow "$ch"
	dh_await readers_at_least "$ch" 1
	seq 1 5 | dh-write --lines "$ch"
	dh_await has_lines "$BATS_TEST_TMPDIR/follow.out" 5
	# the follower consumed it all: a late reader waits for the next stream
	reader_bg late --lines "$ch"
	dh_await readers_at_least "$ch" 2
	printf 'next\n' | dh-write --lines "$ch"
	status_of "$RPID"
	assert_equal "$st" 0
	assert_equal "$(cat "$BATS_TEST_TMPDIR/late.out")" next
}
