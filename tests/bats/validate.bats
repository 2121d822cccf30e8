#!/usr/bin/env bats
# dh-validate, and the integrity promise end to end: a corrupted or forged
# message is reported, never output; repair quarantines it; keys. See LICENSE.

load test_helper
load integrity_helper

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
	key=$BATS_TEST_TMPDIR/key
	[ -x "$HELPERS/crashpoint" ] || fail "test helpers not built: run make helpers"
}

# make_channel KIND: $ch with 8 slots of 64 bytes and checksum KIND (xxh3,
# blake2b, or mac: keyed with $key), holding msg-0 .. msg-4, end-of-stream.
make_channel() {
	if [ "$1" = mac ]; then
		dh-create --keygen "$key"
		dh-create --slots 8 --slot-size 64 --key "$key" "$ch"
		crashpoint -k "$key" write "$ch" 5
	else
		dh-create --slots 8 --slot-size 64 --checksum "$1" "$ch"
		crashpoint write "$ch" 5
	fi
}

# keyopt KIND: the --key option for a keyed channel.
keyopt() {
	[ "$1" = mac ] && printf '%s\n' --key "$key"
	return 0
}

# corrupt_cycle KIND: one payload byte of seq 2 flipped after commit:
# dh-validate reports it (1), --repair quarantines it (0), a second run
# is a no-op (0), readers keep skipping it, and a lap clears it.
corrupt_cycle() {
	local kind=$1 k
	make_channel "$kind"
	k=$(keyopt "$kind")
	hostile xor "$shm" "$(data_offset "$ch" 2)" 0x20

	# shellcheck disable=SC2086
	run -1 --separate-stderr dh-validate $k "$ch"
	assert_output "$ch: checksum: message 2 (slot 2) fails its checksum; repair quarantines it [repairable]"$'\n'"$ch: 1 problem remains (dh-validate --repair fixes what is safe)"
	assert_equal "$stderr" ''
	# shellcheck disable=SC2086
	run -1 dh-diagnose --json $k "$ch"
	[ "$(jq -c '[.verdict, .integrity, (.findings[] | [.kind, .seq, .slot, .fix])]' <<<"$output")" = \
		"[\"problems\",{\"verdict\":\"failing\",\"checked\":5,\"failing\":1,\"quarantined\":0},[\"checksum\",2,2,\"dh-validate --repair $ch\"]]" ]

	# shellcheck disable=SC2086
	run -0 --separate-stderr dh-validate --repair $k "$ch"
	assert_output "$ch: checksum: message 2 (slot 2) fails its checksum; repair quarantines it [repaired]"$'\n'"$ch: repaired 1, valid"
	# shellcheck disable=SC2086
	run -0 --separate-stderr dh-validate --repair $k "$ch"
	assert_output "$ch: quarantined: message 2 fails its checksum and is quarantined: readers skip it"$'\n'"$ch: valid, 5 committed messages checked"
	# shellcheck disable=SC2086
	run -0 --separate-stderr dh-validate --repair --quiet $k "$ch"
	assert_output ''
	assert_equal "$stderr" ''
	# shellcheck disable=SC2086
	run -0 dh-diagnose --slot 2 --json $k "$ch"
	[ "$(jq -c '.slot | [.state, .quarantined, .integrity]' <<<"$output")" = '["committed",true,"quarantined"]' ]

	# once read (the reader skips the quarantined message and says so), a
	# lap overwrites the slot: nothing is left to report
	# shellcheck disable=SC2086
	run -1 --separate-stderr dh-read --no-wait $k "$ch"
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 2"
	if [ "$kind" = mac ]; then
		crashpoint -k "$key" write "$ch" 8 new
	else
		crashpoint write "$ch" 8 new
	fi
	# shellcheck disable=SC2086
	run -0 --separate-stderr dh-validate $k "$ch"
	assert_output "$ch: valid, 8 committed messages checked"
}

@test "xxh3: a corrupted payload byte is reported (1), quarantined by --repair (0), a no-op the second time" {
	corrupt_cycle xxh3
}

@test "blake2b: a corrupted payload byte is reported (1), quarantined by --repair (0), a no-op the second time" {
	corrupt_cycle blake2b
}

@test "keyed MAC: a corrupted payload byte is reported (1), quarantined by --repair (0), a no-op the second time" {
	corrupt_cycle mac
}

# dh-read over a corrupted message: reports the seq, outputs nothing of it,
# carries on, exits 1; the failure is counted in the header.
read_corrupt() {
	local kind=$1
	make_channel "$kind"
	hostile xor "$shm" "$(data_offset "$ch" 2)" 0x20
	if [ "$kind" = mac ]; then
		run -1 --separate-stderr dh-read --from oldest --key "$key" --lines "$ch"
	else
		run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	fi
	assert_output $'msg-0\nmsg-1\nmsg-3\nmsg-4'
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 2"
	[ "$(jdiag "$ch" .counters.checksum_failures)" = 1 ]
	# quarantined, it is still skipped with a report
	dh-validate --repair $(keyopt "$kind") "$ch" >/dev/null
	if [ "$kind" = mac ]; then
		run -1 --separate-stderr dh-read --from oldest --key "$key" --lines "$ch"
	else
		run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	fi
	assert_output $'msg-0\nmsg-1\nmsg-3\nmsg-4'
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 2"
}

@test "xxh3: dh-read reports the corrupted seq, outputs nothing from that slot, carries on, exits 1" {
	read_corrupt xxh3
}

@test "blake2b: dh-read reports the corrupted seq, outputs nothing from that slot, carries on, exits 1" {
	read_corrupt blake2b
}

@test "keyed MAC: dh-read --key reports the corrupted seq, outputs nothing from that slot, carries on, exits 1" {
	has_option dh-read --key || skip "dh-read has no --key yet"
	read_corrupt mac
}

@test "keyed MAC: a library reader reports the corrupted seq and carries on" {
	make_channel mac
	hostile xor "$shm" "$(data_offset "$ch" 2)" 0x20
	run -1 --separate-stderr crashpoint -k "$key" read "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-3\nmsg-4'
	assert_equal "$stderr" "checksum mismatch at seq 2"
}

# copy_frame FROM_CH FROM_SLOT TO_CH TO_SLOT: payload, length and check of
# one slot pasted over another's (the stamp, i.e. the seq, stays).
copy_frame() {
	local fs ts f t
	fs=$(dh_shm "$1")
	ts=$(dh_shm "$3")
	for f in length check; do
		dd if="$fs" of="$ts" bs=1 conv=notrunc status=none \
			skip="$(desc_offset "$1" "$2" "$f")" seek="$(desc_offset "$3" "$4" "$f")" \
			count="$([ $f = length ] && echo 4 || echo 32)"
	done
	f=$(data_offset "$1" "$2")
	t=$(data_offset "$3" "$4")
	dd if="$fs" of="$ts" bs=1 conv=notrunc status=none skip="$f" seek="$t" count=64
}

@test "a frame copied from another slot fails its check, for every checksum kind" {
	local kind
	for kind in xxh3 blake2b mac; do
		rm -f "$shm" "$key"
		make_channel "$kind"
		copy_frame "$ch" 0 "$ch" 1
		run -1 dh-validate $(keyopt "$kind") "$ch"
		assert_line "$ch: checksum: message 1 (slot 1) fails its checksum; repair quarantines it [repairable]"
	done
	run -1 --separate-stderr crashpoint -k "$key" read "$ch"
	assert_output $'msg-0\nmsg-2\nmsg-3\nmsg-4'
	assert_equal "$stderr" "checksum mismatch at seq 1"
}

@test "keyed MAC: a frame copied from another channel with another key fails" {
	make_channel mac
	dh-create --keygen "$key.2"
	dh-create --slots 8 --slot-size 64 --key "$key.2" "$ch-2"
	crashpoint -k "$key.2" write "$ch-2" 5 forged
	copy_frame "$ch-2" 3 "$ch" 3
	run -1 --separate-stderr crashpoint -k "$key" read "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-4'
	assert_equal "$stderr" "checksum mismatch at seq 3"
}

# Two channels sharing a key: the MAC also covers the channel's random id,
# so a frame replayed at the same seq of another channel still fails.
@test "keyed MAC: a frame copied from another channel with the same key at the same seq fails" {
	make_channel mac
	dh-create --slots 8 --slot-size 64 --key "$key" "$ch-2"
	crashpoint -k "$key" write "$ch-2" 5 forged
	copy_frame "$ch-2" 3 "$ch" 3
	run --separate-stderr crashpoint -k "$key" read "$ch"
	refute_output --partial forged
	assert_equal "$stderr" "checksum mismatch at seq 3"
}

# --- keys ------------------------------------------------------------------------

@test "wrong key, missing key and a 0644 key file are refused with distinct messages" {
	make_channel mac
	dh-create --keygen "$key.wrong"
	cp "$key" "$key.644"
	chmod 0644 "$key.644"

	run -2 --separate-stderr dh-validate --key "$key.wrong" "$ch"
	assert_equal "$stderr" "dh-validate: $ch: wrong key"
	run -2 --separate-stderr dh-validate --key "$key.644" "$ch"
	assert_equal "$stderr" "dh-validate: $key.644: key file must be a regular file owned by you with mode 0600 or stricter"
	run -0 --separate-stderr dh-validate "$ch"
	assert_equal "$stderr" "dh-validate: $ch: keyed channel: MACs not verified (use --key FILE)"
	run -2 --separate-stderr dh-diagnose --key "$key.wrong" "$ch"
	assert_equal "$stderr" "dh-diagnose: $ch: wrong key"
	run -2 --separate-stderr dh-diagnose --key "$key.644" "$ch"
	assert_equal "$stderr" "dh-diagnose: $key.644: key file must be a regular file owned by you with mode 0600 or stricter"
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -c '[.integrity.verdict, .findings[0].kind, .findings[0].fix]' <<<"$output")" = \
		"[\"unverified\",\"key_unverified\",\"dh-diagnose --key FILE $ch\"]" ]

	# the library's readers and writers, through the helper
	run -2 --separate-stderr crashpoint -k "$key.wrong" read "$ch"
	assert_equal "$stderr" "crashpoint: open reader: wrong key"
	run -2 --separate-stderr crashpoint read "$ch"
	assert_equal "$stderr" "crashpoint: open reader: channel is keyed: a key is required"
	run -2 --separate-stderr crashpoint -k "$key.644" read "$ch"
	assert_equal "$stderr" "crashpoint: $key.644: key file must be a regular file owned by you with mode 0600 or stricter"
	run -2 --separate-stderr crashpoint -k "$key.wrong" write "$ch" 1
	assert_equal "$stderr" "crashpoint: open writer: wrong key"
	[ "$(jdiag "$ch" .counters.key_mismatches)" -ge 2 ]

	# dh-read and dh-write refuse a keyed channel they have no key for
	run -1 --separate-stderr dh-read --from oldest "$ch"
	assert_equal "$stderr" "dh-read: $ch: channel is keyed: a key is required"
	run -1 --separate-stderr dh-write "$ch" </dev/null
	assert_equal "$stderr" "dh-write: $ch: channel is keyed: a key is required"
	run -0 --separate-stderr crashpoint -k "$key" read "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-3\nmsg-4'
}

@test "dh-read and dh-write --key: wrong key, missing key and a 0644 key file are refused with distinct messages" {
	has_option dh-read --key || skip "dh-read has no --key yet"
	has_option dh-write --key || skip "dh-write has no --key yet"
	make_channel mac
	dh-create --keygen "$key.wrong"
	cp "$key" "$key.644"
	chmod 0644 "$key.644"
	local cmd
	for cmd in dh-read dh-write; do
		run --separate-stderr "$cmd" --key "$key.wrong" "$ch" </dev/null
		[ "$status" -ne 0 ] && [ "$status" -lt 128 ]
		assert_equal "$stderr" "$cmd: $ch: wrong key"
		run --separate-stderr "$cmd" --key "$key.644" "$ch" </dev/null
		[ "$status" -ne 0 ] && [ "$status" -lt 128 ]
		assert_equal "$stderr" "$cmd: $key.644: key file must be a regular file owned by you with mode 0600 or stricter"
		run --separate-stderr "$cmd" "$ch" </dev/null
		[ "$status" -ne 0 ] && [ "$status" -lt 128 ]
		assert_equal "$stderr" "$cmd: $ch: channel is keyed: a key is required"
	done
	run -0 --separate-stderr dh-read --from oldest --key "$key" --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-3\nmsg-4'
}

# --- operands, exit statuses, output forms ---------------------------------------

@test "exit 2 for what cannot be checked: missing, not a dh segment, permission denied; the others are still checked" {
	make_channel xxh3
	printf 'not a channel, just bytes%.0s' $(seq 200) >"$(dh_shm "$ch-foreign")"
	run -2 --separate-stderr dh-validate "$ch-missing" "$ch" "$ch-foreign"
	assert_output "$ch: valid, 5 committed messages checked"
	assert_equal "$stderr" "dh-validate: $ch-missing: no such channel"$'\n'"dh-validate: $ch-foreign: not a dh channel"
	[ "$(id -u)" = 0 ] || skip "permission check needs root to switch to nobody"
	run -2 --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups -- "$(command -v dh-validate)" "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-validate: $ch: Permission denied"
}

@test "a corrupt header is a problem found (1), worse than none, less than cannot-check" {
	make_channel xxh3
	dh-create --slots 4 --slot-size 64 "$ch-ok"
	hostile set "$shm" "$(hostile offset hdr.version)" u32 99
	run -1 --separate-stderr dh-validate "$ch" "$ch-ok"
	assert_output "$ch: corrupt header: unsupported channel format version; no repair is provably safe"$'\n'"$ch-ok: valid, 0 committed messages checked"
	assert_equal "$stderr" ''
	run -1 --separate-stderr dh-validate --quiet --repair "$ch" "$ch-ok"
	assert_output "$ch: corrupt header: unsupported channel format version; no repair is provably safe"
	run -1 dh-validate --json "$ch"
	assert_output "{\"channel\":\"$ch\",\"status\":\"corrupt\",\"exit\":1,\"error\":\"unsupported channel format version\",\"checked\":0,\"problems\":1,\"repaired\":0,\"forced\":0,\"findings\":[]}"
	run -2 dh-validate "$ch" "$ch-missing"
}

@test "--json: one object per channel with stable fields" {
	make_channel blake2b
	hostile xor "$shm" "$(data_offset "$ch" 4)" 1
	dh-create --slots 4 --slot-size 64 "$ch-2"
	run -1 --separate-stderr dh-validate --json "$ch" "$ch-2"
	assert_equal "${#lines[@]}" 2
	[ "$(jq -c '[.channel, .status, .exit, .error, .checked, .problems, .repaired, .forced]' <<<"${lines[0]}")" = \
		"[\"$ch\",\"problems\",1,null,5,1,0,0]" ]
	[ "$(jq -c '.findings' <<<"${lines[0]}")" = \
		'[{"kind":"checksum","action":"repairable","problem":true,"index":null,"pid":null,"seq":4,"slot":4,"age_ns":0,"detail":"message 4 (slot 4) fails its checksum; repair quarantines it"}]' ]
	assert_equal "${lines[1]}" "{\"channel\":\"$ch-2\",\"status\":\"valid\",\"exit\":0,\"error\":null,\"checked\":0,\"problems\":0,\"repaired\":0,\"forced\":0,\"findings\":[]}"
	run -0 dh-validate --json --repair "$ch" "$ch-2"
	[ "$(jq -sc 'map([.status, .repaired, .exit])' <<<"$output")" = '[["repaired",1,0],["valid",0,0]]' ]
	run -0 dh-validate --json --quiet --repair "$ch" "$ch-2"
	assert_output ''
}

@test "--all checks every channel in /dev/shm, ours among them" {
	make_channel xxh3
	hostile xor "$shm" "$(data_offset "$ch" 1)" 1
	dh-create --slots 4 --slot-size 64 "$ch-2"
	run dh-validate --all
	[ "$status" -ge 1 ] && [ "$status" -le 2 ]
	assert_line "$ch: checksum: message 1 (slot 1) fails its checksum; repair quarantines it [repairable]"
	assert_line "$ch-2: valid, 0 committed messages checked"
	run dh-validate --all --quiet
	assert_line "$ch: checksum: message 1 (slot 1) fails its checksum; repair quarantines it [repairable]"
	refute_line --partial "$ch-2"
}

@test "--repair --force needs a stalled participant to override; --force alone is a usage error" {
	run -2 --separate-stderr dh-validate --force "$ch"
	assert_output ''
	assert_equal "${stderr_lines[0]}" "dh-validate: --force only with --repair"
	assert_equal "$(dh_usage_forms <<<"$stderr")" "dh-validate [--repair] [--force] [--json] [--quiet] [--key FILE] NAME ... | --all"
	run -2 --separate-stderr dh-validate --all "$ch"
	assert_equal "${stderr_lines[0]}" "dh-validate: --all takes no channel names"
	run -2 --separate-stderr dh-validate
	assert_equal "${stderr_lines[0]}" "dh-validate: missing channel name"
	run -2 --separate-stderr dh-validate --bogus "$ch"
	assert_equal "${stderr_lines[0]}" "dh-validate: unknown option --bogus"
	run -2 --separate-stderr dh-validate --key
	assert_equal "${stderr_lines[0]}" "dh-validate: option --key needs an argument"
	run -2 --separate-stderr dh-validate ../etc
	assert_equal "$stderr" "dh-validate: ../etc: invalid channel name"
}

@test "--help, --version, usage line equals the man page SYNOPSIS, write errors" {
	run -0 --separate-stderr dh-validate --help
	assert_equal "$(dh_usage_forms <<<"$output")" "dh-validate [--repair] [--force] [--json] [--quiet] [--key FILE] NAME ... | --all"
	assert_equal "$stderr" ''
	run -0 dh-validate -V
	assert_output "dh-validate $(sed -n 's/^VERSION *= *//p' "$DH_TOP/config.mk")"
	run -0 dh_man_synopsis "$DH_TOP/man/dh-validate.1"
	assert_equal "$output" "$(dh-validate --help | dh_usage_forms)"
	make_channel xxh3
	run -2 --separate-stderr sh -c "dh-validate $ch >/dev/full"
	assert_equal "$stderr" "dh-validate: write error: No space left on device"
}

@test "queue reader past a message failing its checksum: every other message comes out once, none released before it is written" {
	dh-create --policy queue --slots 4 --slot-size 64 "$ch"
	seq 1 3 | dh-write --lines --no-eos "$ch"
	hostile xor "$shm" "$(data_offset "$ch" 1)" 0x20
	dh_bg sh -c 'seq 4 300 | exec dh-write --lines "$1"' sh "$ch"
	run -1 --separate-stderr dh-read --lines "$ch"
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 1"
	assert_output "$(seq 1 300 | grep -vx 2)"
	[ "$(dh-stat --json "$ch" | jq '.channels[0].counters.queue_lost')" -eq 0 ]
}
