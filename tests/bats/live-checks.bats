#!/usr/bin/env bats
# live-checks.bats: no false alarms on healthy busy channels, and no reader
# loop that cannot end (issue 11: "False alarms and hangs").

load test_helper
load rw_helper
load integrity_helper

setup() {
	dh_setup
	ch=$(dh_name)
}

teardown() {
	integrity_teardown
}

# busy POLICY: a channel with a writer that never stops and a reader that
# keeps up, both alive until teardown.
busy() {
	dh-create --policy "$1" --slots 16 "$ch"
	dh_bg bash -c 'exec dh-read --lines "$1" >/dev/null' bash "$ch"
	dh_await readers_at_least "$ch" 1
	dh_bg bash -c 'exec dh-write --lines "$1" < <(exec yes 0123456789abcdef)' bash "$ch"
	dh_await dh_writer_alive "$ch"
	dh_wait_committed "$ch" 1001
}

# checks N: N runs of dh-validate and of dh-diagnose on the busy channel;
# every one must find it healthy.
checks() {
	local i bad=0
	for i in $(seq "$1"); do
		if ! out=$(dh-validate "$ch" 2>&1); then
			echo "dh-validate run $i: $out" >&2
			bad=$((bad + 1))
		fi
		if ! out=$(dh-diagnose "$ch" 2>&1); then
			echo "dh-diagnose run $i: $(grep -v '^ ' <<<"$out" | head -5)" >&2
			bad=$((bad + 1))
		fi
	done
	[ "$bad" -eq 0 ]
}

@test "100 checks (25 under a sanitizer) of a busy sync channel: never a false alarm" {
	busy sync
	checks "$(dh_rounds 100)"
}

@test "100 checks (25 under a sanitizer) of a busy ring channel: never a false alarm" {
	busy ring
	checks "$(dh_rounds 100)"
}

@test "100 checks (25 under a sanitizer) of a busy latest channel: never a false alarm" {
	busy latest
	checks "$(dh_rounds 100)"
}

@test "100 checks (25 under a sanitizer) of a busy queue channel: never a false alarm" {
	busy queue
	checks "$(dh_rounds 100)"
}

@test "a latest reader on a 1-slot channel whose writer died mid-message ends (no spin)" {
	dh-create --policy latest --slots 1 "$ch"
	cp_bg w crash "$ch" 2 reserve
	await_stopped "$CPID"
	kill9 "$CPID"
	run timeout 10 dh-read --no-wait --lines "$ch"
	[ "$status" -ne 124 ] || { echo "dh-read --no-wait spun until killed" >&2; return 1; }
	assert_equal "$status" 1
	assert_output --partial "writer died"
	run timeout 10 dh-read --timeout 1s --lines "$ch"
	assert_equal "$status" 1
	assert_output --partial "writer died"
}

@test "a latest reader whose newest slot was aborted under an end-of-stream mark ends at it" {
	dh-create --policy latest --slots 1 "$ch"
	cp_bg w crash "$ch" 2 reserve
	await_stopped "$CPID"
	# the writer leaves; its successor ends the stream without writing
	kill9 "$CPID"
	dh-write "$ch" </dev/null
	run timeout 10 dh-read --from latest --lines "$ch"
	assert_equal "$status" 0
}

@test "a latest reader meeting a corrupt stamp reports it and exits 1" {
	dh-create --policy latest --slots 4 "$ch"
	printf 'a\nb\nc\n' | dh-write --lines "$ch"
	local d
	d=$(dh-diagnose --json "$ch" | jq .layout.desc_off)
	hostile set "$(dh_shm "$ch")" $((d + 2 * 64 + $(hostile offset desc.stamp))) u64 999
	run timeout 10 dh-read --no-wait --lines "$ch"
	assert_equal "$status" 1
	assert_output --partial "corrupt"
}

@test "random descriptors on a sync channel: dh-read reports a corrupt segment, never exit 0 with nothing" {
	local d i
	for i in 1 2 3 4 5; do
		dh-create --slots 8 "$ch"
		printf 'a\nb\nc\nd\n' | dh-write --lines "$ch"
		d=$(dh-diagnose --json "$ch" | jq .layout.desc_off)
		for s in 0 1 2 3; do
			hostile set "$(dh_shm "$ch")" $((d + s * 64 + $(hostile offset desc.stamp))) u64 \
				$(( (RANDOM << 30 | RANDOM << 15 | RANDOM) + 3 ))
		done
		run timeout 10 dh-read --no-wait --lines "$ch"
		assert_equal "$status" 1
		assert_output --partial "corrupt"
		dh-create --remove "$ch"
	done
}

@test "--evict-after: a dh-read stalled on its output holds nothing; the writer cuts it loose and finishes" {
	dh-create --slots 4 --evict-after 300ms "$ch"
	mkfifo "$BATS_TEST_TMPDIR/out"
	exec {keep}<>"$BATS_TEST_TMPDIR/out"   # open, never read: dh-read blocks once it is full
	dh_bg sh -c 'exec dh-read --lines "$1" >"$2" 2>"$3"' sh "$ch" "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/r.err"
	local rpid=$DH_BG_PID
	dh_await readers_at_least "$ch" 1
	run timeout 60 sh -c 'seq 1 300000 | dh-write --lines "$1"' sh "$ch"
	assert_equal "$status" 0
	[ "$(dh-stat --json "$ch" | jq '.channels[0].counters.evictions')" -eq 1 ]
	# let it go on: its next read says it was evicted
	timeout 10 cat "$BATS_TEST_TMPDIR/out" >/dev/null &
	status_of "$rpid"
	exec {keep}>&-
	assert_equal "$st" 1
	grep -q evicted "$BATS_TEST_TMPDIR/r.err"
}
