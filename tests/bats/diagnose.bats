#!/usr/bin/env bats
# dh-diagnose: the report, its JSON, --slot, --stall-after, exit statuses,
# and that it never changes a segment. See LICENSE.

load test_helper
load integrity_helper

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
	[ -x "$HELPERS/crashpoint" ] || fail "test helpers not built: run make helpers"
}

@test "a healthy channel: the text report, exit 0" {
	dh-create --slots 4 --slot-size 64 --policy ring "$ch"
	crashpoint write "$ch" 6
	run -0 --separate-stderr dh-diagnose "$ch"
	assert_equal "$stderr" ''
	assert_line --index 0 "channel     $ch"
	assert_line --index 1 --regexp '^format      version 2, 12288 bytes, created [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z by uid [0-9]+ pid [0-9]+$'
	assert_line --index 2 "geometry    4 slots of 64 bytes (stride 64), 16 readers max, metadata zone 0 bytes"
	assert_line --index 3 "policy      ring, checksum xxh3"
	assert_line --index 4 "stream      1 from seq 0, committed 6, oldest held 2, end-of-stream yes"
	assert_line "writer      none"
	assert_line "readers     0"
	assert_line "findings    0, 0 problems"
	assert_line "integrity   ok, 4 committed messages checked, 0 failing, 0 quarantined"
	assert_line "verdict     healthy"
}

@test "--json carries the report with stable fields" {
	dh-create --slots 4 --slot-size 100 --checksum blake2b --max-readers 3 --meta-size 1K "$ch"
	crashpoint write "$ch" 2
	run -0 --separate-stderr dh-diagnose --json "$ch"
	assert_equal "${#lines[@]}" 1
	[ "$(jq -c 'keys_unsorted' <<<"$output")" = \
		'["channel","verdict","exit","error","format_version","created_ns","creator_uid","creator_pid","slots","slot_size","stride","meta_size","max_readers","segment_size","geometry","layout","policy","checksum","keyed","evict_after_ns","schema","schema_hash","record_size","committed","oldest","end_of_stream","stream","stream_start","counters","writer","readers","findings","integrity"]' ]
	[ "$(jq -c '[.channel, .verdict, .exit, .error, .format_version, .policy, .checksum, .keyed, .schema]' <<<"$output")" = \
		"[\"$ch\",\"healthy\",0,null,2,\"sync\",\"blake2b\",false,null]" ]
	[ "$(jq -c '[.slots, .slot_size, .stride, .meta_size, .max_readers, .segment_size]' <<<"$output")" = '[4,100,128,1024,3,12288]' ]
	# the old nesting, a deprecated alias until 0.2 (dh-json(5))
	[ "$(jq -c '.geometry' <<<"$output")" = '{"slots":4,"slot_size":100,"stride":128,"meta_size":1024,"max_readers":3,"total_size":12288}' ]
	[ "$(jq -c '.layout | keys_unsorted' <<<"$output")" = '["table_off","desc_off","meta_off","data_off"]' ]
	[ "$(jq -c '[.committed, .oldest, .end_of_stream, .stream, .stream_start]' <<<"$output")" = '[2,0,true,1,0]' ]
	[ "$(jq -c '[.schema, .schema_hash, .record_size]' <<<"$output")" = '[null,null,null]' ]
	[ "$(jq -c '.writer | [.state, .pid, .name, .position, .messages, .bytes]' <<<"$output")" = '["NONE",null,null,2,2,10]' ]
	[ "$(jq -c '[.counters.messages_written, .counters.bytes_written, .counters.eos_count]' <<<"$output")" = '[2,10,1]' ]
	[ "$(jq -c '.integrity' <<<"$output")" = '{"verdict":"ok","checked":2,"failing":0,"quarantined":0}' ]
	[ "$(stat -c %s "$shm")" = "$(jq .segment_size <<<"$output")" ]
}

@test "readers: state, position, lag, activity and counters; --stall-after decides when a live idle reader is STALLED" {
	dh-create --slots 4 --slot-size 64 "$ch"
	cp_bg r idle "$ch" 1
	local r=$CPID
	crashpoint write "$ch" 4
	dh_await lines_of "$BATS_TEST_TMPDIR/r.out" 1
	# alive and running, at seq 0 with the ring full: the writer would wait
	run -0 dh-diagnose --json --stall-after 1m "$ch"
	[ "$(jq -c '.readers' <<<"$output" | jq -c 'map(del(.pid, .last_active_ns, .idle_ns, .age_ns))')" = \
		'[{"index":1,"state":"ALIVE","name":"crashpoint","position":0,"lag":4,"claim":null,"messages":1,"bytes":5,"lost":0,"checksum_failures":0}]' ]
	[ "$(jq '.readers[0].pid' <<<"$output")" = "$r" ]
	run -1 dh-diagnose --json --stall-after 0 "$ch"
	[ "$(jq -c '[.readers[0].state, (.findings[] | [.kind, .action, .fix])]' <<<"$output")" = \
		"[\"STALLED\",[\"reader_stalled\",\"needs_force\",\"dh-validate --repair --force $ch\"]]" ]
	run -1 dh-diagnose --stall-after 0 "$ch"
	assert_line --regexp "^  1   STALLED pid $r crashpoint, position 0, lag 4, last active [0-9.]+s ago, 1 messages, 5 bytes, 0 lost, 0 checksum failures\$"
	assert_line "    blocks: the writer waits: reader 1 is at seq 0 of 4"
	run -0 dh-diagnose --stall-after inf "$ch"
	run -2 --separate-stderr dh-diagnose --stall-after 5x "$ch"
	assert_equal "${stderr_lines[0]}" "dh-diagnose: --stall-after 5x: invalid duration"
}

@test "--slot N: one descriptor in detail, text and JSON" {
	dh-create --slots 4 --slot-size 64 --policy queue "$ch"
	crashpoint write "$ch" 4
	run -0 dh-read --from oldest --count 1 --lines "$ch"
	assert_output msg-0
	crashpoint write "$ch" 1
	run -0 --separate-stderr dh-diagnose --slot 0 "$ch"
	assert_line --index 0 "channel     $ch"
	assert_line --index 1 "slot        0 of 4"
	assert_line --index 2 "state       committed"
	assert_line --index 3 "seq         4"
	assert_line --index 4 "expected    4"
	assert_line --index 5 "stamp       10"
	assert_line --index 6 "length      5"
	assert_line --index 7 "flags       0"
	assert_line --index 8 --regexp '^time        [0-9-]+T[0-9:]+Z$'
	assert_line --index 9 --regexp '^check       [0-9a-f]{16}$'
	assert_line --index 10 "integrity   ok"
	assert_line --index 11 "queue       seq 4, available"
	run -0 dh-diagnose --slot 1 --json "$ch"
	[ "$(jq -c '.slot | del(.time_ns, .check)' <<<"$output")" = \
		'{"slot":1,"state":"committed","seq":1,"expected_seq":1,"stamp":4,"length":5,"flags":0,"quarantined":false,"integrity":"ok","queue":{"seq":1,"owner":"available"}}' ]
	[ "$(jq -c '[.channel, .verdict, .exit]' <<<"$output")" = "[\"$ch\",\"healthy\",0]" ]

	dh-create --slots 4 --slot-size 64 --checksum none "$ch-2"
	crashpoint write "$ch-2" 1
	run -0 dh-diagnose --slot 3 --json "$ch-2"
	[ "$(jq -c '.slot | [.state, .seq, .expected_seq, .check, .integrity, .queue]' <<<"$output")" = '["empty",null,null,"","n/a",null]' ]
	run -0 dh-diagnose --slot 0 --json "$ch-2"
	[ "$(jq -r '.slot.integrity' <<<"$output")" = unchecked ]

	run -2 --separate-stderr dh-diagnose --slot 4 "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-diagnose: --slot 4: the channel has 4 slots"
	run -2 --separate-stderr dh-diagnose --slot -1 "$ch"
	assert_equal "${stderr_lines[0]}" "dh-diagnose: --slot -1: invalid slot number"
}

@test "dh-diagnose leaves the segment byte-identical, whatever state it is in" {
	dh-create --keygen "$BATS_TEST_TMPDIR/key"
	dh-create --slots 4 --slot-size 64 --key "$BATS_TEST_TMPDIR/key" "$ch"
	crashpoint -k "$BATS_TEST_TMPDIR/key" write "$ch" 3
	local before
	check_same() {
		before=$(shm_sum "$ch")
		dh-diagnose "$@" "$ch" >/dev/null || true
		dh-diagnose --json "$@" "$ch" >/dev/null || true
		local s
		for s in 0 1 2 3; do
			dh-diagnose --slot "$s" "$@" "$ch" >/dev/null || true
		done
		[ "$(shm_sum "$ch")" = "$before" ] || fail "dh-diagnose $* changed the segment"
	}
	check_same
	check_same --key "$BATS_TEST_TMPDIR/key"
	# corrupted payload, quarantined or not
	hostile xor "$shm" "$(data_offset "$ch" 1)" 1
	check_same --key "$BATS_TEST_TMPDIR/key"
	# a dead reader holding the ring, a dead writer mid-write
	cp_bg r -k "$BATS_TEST_TMPDIR/key" hold "$ch" 1
	await_stopped "$CPID"
	check_same --key "$BATS_TEST_TMPDIR/key"
	kill9 "$CPID"
	cp_bg w -k "$BATS_TEST_TMPDIR/key" crash "$ch" 0 midpayload
	await_stopped "$CPID"
	kill9 "$CPID"
	check_same
	check_same --key "$BATS_TEST_TMPDIR/key" --stall-after 0
	run -1 dh-diagnose --json "$ch"
	[ "$(jq -c '[.findings[].kind]' <<<"$output")" = '["key_unverified","writer_dead","writer_midwrite","reader_dead"]' ]
}

@test "exit 2 when it cannot check: missing, not a dh segment, permission denied, bad key file; 1 for a corrupt header" {
	run -2 --separate-stderr dh-diagnose "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-diagnose: $ch: no such channel"
	head -c 8192 /dev/urandom >"$shm"
	printf 'XXXX' | dd of="$shm" conv=notrunc status=none
	run -2 --separate-stderr dh-diagnose "$ch"
	assert_equal "$stderr" "dh-diagnose: $ch: not a dh channel"
	rm -f "$shm"

	dh-create --slots 4 --slot-size 64 "$ch"
	run -2 --separate-stderr dh-diagnose --key "$BATS_TEST_TMPDIR/nokey" "$ch"
	assert_equal "$stderr" "dh-diagnose: $BATS_TEST_TMPDIR/nokey: No such file or directory"
	dh-create --keygen "$BATS_TEST_TMPDIR/key"
	run -0 --separate-stderr dh-diagnose --key "$BATS_TEST_TMPDIR/key" "$ch"
	assert_equal "$stderr" "dh-diagnose: $ch: channel has no key: --key ignored"

	hostile set "$shm" "$(hostile offset hdr.slots)" u32 5
	run -1 --separate-stderr dh-diagnose "$ch"
	assert_output "channel     $ch"$'\n'"verdict     corrupt: corrupt segment"$'\n'"            no repair is provably safe: recreate the channel once nobody uses it"
	run -1 dh-diagnose --json "$ch"
	assert_output "{\"channel\":\"$ch\",\"verdict\":\"corrupt\",\"exit\":1,\"error\":\"corrupt segment\"}"

	[ "$(id -u)" = 0 ] || skip "permission check needs root to switch to nobody"
	dh-create --slots 4 --slot-size 64 "$ch-2"
	run -2 --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups -- "$(command -v dh-diagnose)" "$ch-2"
	assert_output ''
	assert_equal "$stderr" "dh-diagnose: $ch-2: Permission denied"
}

@test "--help, --version, usage errors, usage line equals the man page SYNOPSIS, write errors" {
	run -0 --separate-stderr dh-diagnose --help
	assert_line --index 0 "usage: dh-diagnose [--json] [--slot N] [--key FILE] [--stall-after DUR] NAME"
	assert_equal "$stderr" ''
	run -0 dh-diagnose --version
	assert_output "dh-diagnose $(sed -n 's/^VERSION *= *//p' "$DH_TOP/config.mk")"
	run -0 dh_man_synopsis "$DH_TOP/man/dh-diagnose.1"
	assert_equal "$output" "$(dh-diagnose --help | dh_usage_forms)"
	run -2 --separate-stderr dh-diagnose
	assert_output ''
	assert_equal "$stderr" "dh-diagnose: missing channel name"$'\n'"usage: dh-diagnose [--json] [--slot N] [--key FILE] [--stall-after DUR] NAME"
	run -2 --separate-stderr dh-diagnose "$ch" "$ch-2"
	assert_equal "${stderr_lines[0]}" "dh-diagnose: one channel name expected, got 2"
	run -2 --separate-stderr dh-diagnose --repair "$ch"
	assert_equal "${stderr_lines[0]}" "dh-diagnose: unknown option --repair"
	run -2 --separate-stderr dh-diagnose ".$ch"
	assert_equal "$stderr" "dh-diagnose: .$ch: invalid channel name"
	dh-create --slots 4 --slot-size 64 "$ch"
	run -2 --separate-stderr sh -c "dh-diagnose $ch >/dev/full"
	assert_equal "$stderr" "dh-diagnose: write error: No space left on device"
}
