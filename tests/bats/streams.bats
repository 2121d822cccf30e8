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
	[ "$(dh-diagnose --json "$ch" | jq -c '[.stream.number, .stream.start]')" = '[2,1]' ]
}

@test "a dh-write that refuses its input leaves the ended stream as it found it" {
	dh-create --slot-size 16 "$ch"
	printf 'a\n' | dh-write --lines "$ch"
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
