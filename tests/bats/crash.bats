#!/usr/bin/env bats
# Crash points: writers and readers killed or stopped at exact protocol
# points; dh-diagnose (golden JSON), dh-validate --repair, and the stream
# resumes with no torn, duplicated or forged message. See LICENSE.

load test_helper
load integrity_helper

setup() {
	dh_setup
	ch=$(dh_name)
	[ -x "$HELPERS/crashpoint" ] || fail "test helpers not built: run make helpers"
}

# --- the writer ----------------------------------------------------------------

@test "writer stopped after reserve is STALLED, beyond --force; killed, it is DEAD mid-write; repair; a new writer resumes at that seq" {
	dh-create --slots 8 --slot-size 64 "$ch"
	read_bg follow --follow --count 5 --lines "$ch"
	cp_bg w crash "$ch" 2 reserve
	local w=$CPID
	await_stopped "$w"
	dh_await lines_of "$BATS_TEST_TMPDIR/follow.out" 2

	run -1 dh-diagnose --json "$ch"
	golden crash-writer-stopped.json <<<"$output"
	run -1 dh-diagnose "$ch"
	assert_line --regexp "^writer +STALLED pid $w crashpoint, next seq 2,"
	assert_line "    fix:    kill -CONT $w"
	# alive: nothing may take its place, not even with --force
	run -1 --separate-stderr dh-validate --repair --force "$ch"
	assert_line "$ch: writer_stalled: writer (pid $w) alive but stopped; nothing can safely take its place [unrepairable]"
	assert_line "$ch: 1 problem remains"
	is_stopped "$w"

	kill9 "$w"
	run -1 dh-diagnose --json "$ch"
	golden crash-writer-reserve.json <<<"$output"
	run -1 dh-diagnose --slot 2 --json "$ch"
	[ "$(jq -c '.slot | [.state, .seq, .integrity]' <<<"$output")" = '["writing",2,"n/a"]' ]

	# a reader without --follow drains what was committed, then reports the death
	run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1'
	assert_equal "$stderr" "dh-read: $ch: writer died without marking end-of-stream"

	run -1 --separate-stderr dh-validate "$ch"
	assert_line "$ch: writer_dead: writer (crashpoint, pid $w) died at seq 2 without end-of-stream [repairable]"
	assert_line --partial "$ch: writer_midwrite: message 2 was half-written when the writer died"
	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_line "$ch: writer_dead: writer (crashpoint, pid $w) died at seq 2 without end-of-stream [repaired]"
	assert_line "$ch: repaired 2, valid"
	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_output "$ch: valid, 2 committed messages checked"
	assert_equal "$stderr" ''

	crashpoint write "$ch" 3 new
	status_of "$RPID"
	[ "$st" -eq 0 ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/follow.out")" $'msg-0\nmsg-1\nnew-2\nnew-3\nnew-4'
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1\nnew-2\nnew-3\nnew-4'
	run -0 dh-validate "$ch"
}

@test "writer killed mid-payload: the torn frame is never visible, and a new writer takes over without any repair" {
	dh-create --slots 8 --slot-size 64 --checksum blake2b "$ch"
	cp_bg w crash "$ch" 3 midpayload
	await_stopped "$CPID"
	kill9 "$CPID"

	run -1 dh-diagnose --json "$ch"
	golden crash-writer-midpayload.json <<<"$output"
	run -1 dh-diagnose --slot 3 "$ch"
	assert_line --regexp '^state +writing$'
	assert_line --regexp '^seq +3$'
	run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2'

	crashpoint write "$ch" 2 new
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.verdict, .writer.state, .committed, .findings]' <<<"$output")" = '["healthy","NONE",5,[]]' ]
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nnew-3\nnew-4'
	refute_output --partial TORN
}

@test "writer killed before publishing a complete message: repair verifies and publishes it; the stream continues after it" {
	dh-create --slots 8 --slot-size 64 "$ch"
	read_bg follow --follow --count 5 --lines "$ch"
	cp_bg w crash "$ch" 2 prepublish
	await_stopped "$CPID"
	kill9 "$CPID"

	run -1 dh-diagnose --json "$ch"
	golden crash-writer-prepublish.json <<<"$output"
	run -1 dh-diagnose --slot 2 --json "$ch"
	[ "$(jq -c '.slot | [.state, .seq, .length]' <<<"$output")" = '["unpublished",2,5]' ]

	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_line --partial "$ch: writer_unpublished: message 2 was complete but not published when the writer died [repaired]"
	run -0 --separate-stderr dh-read --no-wait --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2'
	run -0 dh-validate --repair "$ch"
	assert_output "$ch: valid, 3 committed messages checked"

	crashpoint write "$ch" 2 new
	status_of "$RPID"
	[ "$st" -eq 0 ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/follow.out")" $'msg-0\nmsg-1\nmsg-2\nnew-3\nnew-4'
}

@test "keyed channel: without the key, repair cannot prove an unpublished message whole and leaves it invisible" {
	local k=$BATS_TEST_TMPDIR/key
	dh-create --keygen "$k"
	dh-create --slots 8 --slot-size 64 --key "$k" "$ch"
	cp_bg w -k "$k" crash "$ch" 2 prepublish
	await_stopped "$CPID"
	kill9 "$CPID"

	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_line --partial "writer_dead: "
	assert_line "$ch: writer_unpublished: message 2 was complete but not published when the writer died"
	assert_equal "$stderr" "dh-validate: $ch: keyed channel: MACs not verified (use --key FILE)"
	[ "$(jdiag "$ch" .committed)" = 2 ]
	# the next writer rewrites seq 2; nothing of the dead one's frame survives
	crashpoint -k "$k" write "$ch" 1 new
	run -0 --separate-stderr crashpoint -k "$k" read "$ch"
	assert_output $'msg-0\nmsg-1\nnew-2'
	run -0 dh-validate --key "$k" "$ch"
	assert_output "$ch: valid, 3 committed messages checked"
}

# --- readers -------------------------------------------------------------------

@test "sync reader stopped at seq 0 with the ring full: STALLED, holding the writer back, not reclaimed without --force" {
	dh-create --slots 4 --slot-size 64 "$ch"
	cp_bg r hold "$ch" 0
	local r=$CPID
	await_stopped "$r"
	crashpoint write "$ch" 4

	run -1 dh-diagnose --json "$ch"
	golden crash-reader-stopped.json <<<"$output"
	run -1 --separate-stderr dh-validate --repair "$ch"
	assert_line --regexp "^$ch: reader_stalled: reader 1 \\(crashpoint, pid $r\\) alive but stopped, inactive [0-9.]+s, holding the writer back \\[needs_force\\]\$"
	assert_line "$ch: 1 problem remains"
	[ "$(jdiag "$ch" '.readers[0].state')" = STALLED ]
	[ "$(jdiag "$ch" '.counters.evictions')" = 0 ]

	run -0 --separate-stderr dh-validate --repair --force "$ch"
	assert_line --regexp "^$ch: reader_stalled: reader 1 \\(crashpoint, pid $r\\) alive but stopped, .* \\[forced: --force cut it loose although it is alive\\]\$"
	assert_line "$ch: repaired 0, forced 1, valid"
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.verdict, .readers[0].state, .counters.evictions]' <<<"$output")" = '["healthy","EVICTED",1]' ]
	# the writer is no longer held back
	crashpoint write "$ch" 2 new
	# the reader, continued, learns it was cut loose
	kill -CONT "$r"
	status_of "$r"
	[ "$st" -eq 0 ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/r.out")" $'holding none\nnext: reader evicted for stalling the channel'
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-2\nmsg-3\nnew-4\nnew-5'
}

# The writer has blocked at least once (re-read on every poll: a
# command substitution in dh_await's arguments would be read only once).
writer_waited() {
	[ "$(jdiag "$1" .counters.writer_waits)" -ge 1 ]
}

@test "sync reader killed while it blocks a writer: the writer reaps it and keeps what it left unread" {
	dh-create --slots 4 --slot-size 64 "$ch"
	cp_bg r hold "$ch" 1
	local r=$CPID
	crashpoint write "$ch" 4
	await_stopped "$r"
	cp_bg w write "$ch" 2 new
	local w=$CPID
	dh_await writer_waited "$ch"
	! exited "$w"

	kill9 "$r"
	dh_await eval '[ "$(dh-diagnose --json "$ch" | jq .counters.readers_reaped)" = 1 ]'
	# the dead reader never consumed msg-0: like a pipe's, the writer keeps
	# it (and what follows) for the next reader instead of overwriting it
	run -0 --separate-stderr dh-read --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-3\nnew-4\nnew-5'
	status_of "$w"
	[ "$st" -eq 0 ]
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.verdict, .readers, .counters.readers_reaped, .committed]' <<<"$output")" = '["healthy",[],1,6]' ]
}

@test "sync reader killed with no writer running: DEAD, reclaimed by --repair, a no-op the second time" {
	dh-create --slots 4 --slot-size 64 "$ch"
	cp_bg r hold "$ch" 1
	local r=$CPID
	crashpoint write "$ch" 4
	await_stopped "$r"
	kill9 "$r"

	run -1 dh-diagnose --json "$ch"
	golden crash-reader-dead.json <<<"$output"
	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_output "$ch: reader_dead: reader 1 (crashpoint, pid $r) died at seq 0 [repaired]"$'\n'"$ch: repaired 1, valid"
	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_output "$ch: valid, 4 committed messages checked"
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.readers, .counters.readers_reaped]' <<<"$output")" = '[[],1]' ]
	# nothing was consumed: the next writer waits for a reader rather than overwrite
	cp_bg w write "$ch" 2 new
	local w=$CPID
	dh_await writer_waited "$ch"
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-3\nnew-4\nnew-5'
	status_of "$w"
	[ "$st" -eq 0 ]
}

@test "queue reader killed holding a claim: the message is counted lost, never delivered twice" {
	dh-create --slots 4 --slot-size 64 --policy queue "$ch"
	crashpoint write "$ch" 3
	cp_bg r claim "$ch"
	local r=$CPID
	await_stopped "$r"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/r.out")" "claimed 0"
	run -1 dh-diagnose "$ch"
	assert_line --regexp "^  1 +STALLED pid $r crashpoint, position 0, lag 2, holds 0,"
	kill9 "$r"

	run -1 dh-diagnose --json "$ch"
	golden crash-queue-claim.json <<<"$output"
	run -0 --separate-stderr dh-validate --repair "$ch"
	assert_line "$ch: claim_dead: message 0 claimed by dead reader 1; reclaiming counts it lost [repaired]"
	assert_line "$ch: repaired 2, valid"
	run -0 --separate-stderr dh-validate --repair "$ch"
	[ "$(jdiag "$ch" .counters.queue_lost)" = 1 ]

	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-1\nmsg-2'
	# slot 0 is free again: the writer can lap it
	crashpoint write "$ch" 4 new
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'new-3\nnew-4\nnew-5\nnew-6'
}

@test "two concurrent repairers do not conflict: each dead entry is reclaimed once" {
	dh-create --slots 4 --slot-size 64 --policy queue "$ch"
	crashpoint write "$ch" 3
	cp_bg r1 claim "$ch"
	local r1=$CPID
	await_stopped "$r1"
	cp_bg r2 claim "$ch"
	local r2=$CPID
	await_stopped "$r2"
	cp_bg w crash "$ch" 0 reserve
	local w=$CPID
	await_stopped "$w"
	kill9 "$r1"
	kill9 "$r2"
	kill9 "$w"

	dh-validate --repair --json "$ch" >"$BATS_TEST_TMPDIR/a.json" &
	local a=$!
	dh-validate --repair --json "$ch" >"$BATS_TEST_TMPDIR/b.json" &
	local b=$!
	wait "$a"
	wait "$b"
	run -0 dh-validate --repair "$ch"
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.readers, .writer.state, .counters.readers_reaped, .counters.queue_lost]' <<<"$output")" = '[[],"NONE",2,2]' ]
	# between them, every finding was repaired exactly once or found already gone
	[ "$(cat "$BATS_TEST_TMPDIR/a.json" "$BATS_TEST_TMPDIR/b.json" |
		jq -s '[.[].findings[] | select(.action == "repaired" and .kind == "reader_dead")] | length')" -le 2 ]
	run -0 --separate-stderr dh-read --no-wait --lines "$ch"
	assert_output 'msg-2'
}
