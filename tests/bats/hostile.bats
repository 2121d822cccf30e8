#!/usr/bin/env bats
# Hostile segments: truncated, foreign, wrong version, huge geometry,
# out-of-range descriptor and table fields, a flipped byte at every offset.
# Every tool reports an error or a problem and never crashes. See LICENSE.

load test_helper
load integrity_helper

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
	[ -x "$HELPERS/hostile" ] || fail "test helpers not built: run make helpers"
}

# sample_channel [POLICY]: $ch with 4 slots of 64 bytes, three messages, a
# dead reader entry (it held seq 0), and a backup of the segment.
sample_channel() {
	dh-create --slots 4 --slot-size 64 --policy "${1:-sync}" "$ch"
	crashpoint write "$ch" 3
	cp_bg r hold "$ch" 1
	await_stopped "$CPID"
	kill9 "$CPID"
	cp "$shm" "$BATS_TEST_TMPDIR/backup"
}

restore() {
	cat "$BATS_TEST_TMPDIR/backup" >"$shm"
}

# survive WHAT: every tool on $ch exits without a signal or a hang;
# dh-validate and dh-diagnose with 0, 1 or 2, and dh-diagnose leaves the
# segment byte-identical.  WHAT names the damage in failure messages.
survive() {
	local what=$1 st sum tool
	sum=$(shm_sum "$ch")
	for tool in "dh-diagnose" "dh-diagnose --json" "dh-diagnose --slot 1" "dh-validate" "dh-validate --json"; do
		st=0
		# shellcheck disable=SC2086
		timeout 10 $tool "$ch" >/dev/null 2>&1 || st=$?
		[ "$st" -le 2 ] || fail "$what: $tool exited $st"
	done
	[ "$(shm_sum "$ch")" = "$sum" ] || fail "$what: dh-diagnose or dh-validate changed the segment"
	for tool in "dh-read --no-wait --lines" "dh-stat" "dh-stat --json"; do
		command -v "${tool%% *}" >/dev/null || continue
		st=0
		# shellcheck disable=SC2086
		timeout 10 $tool "$ch" >/dev/null 2>&1 </dev/null || st=$?
		[ "$st" -lt 124 ] || fail "$what: $tool exited $st"
	done
	st=0
	timeout 10 dh-validate --repair "$ch" >/dev/null 2>&1 || st=$?
	[ "$st" -le 2 ] || fail "$what: dh-validate --repair exited $st"
	st=0
	timeout 10 dh-write --lines "$ch" >/dev/null 2>&1 </dev/null || st=$?
	[ "$st" -lt 124 ] || fail "$what: dh-write exited $st"
}

@test "truncated segments: a short header or missing pages is a corrupt header (1), an empty file is no channel (2)" {
	sample_channel
	local size
	size=$(stat -c %s "$shm")
	truncate -s $((size - 4096)) "$shm"
	run -1 --separate-stderr dh-validate "$ch"
	assert_output "$ch: corrupt header: corrupt segment; no repair is provably safe"
	run -1 dh-diagnose --json "$ch"
	[ "$(jq -c '[.verdict, .error]' <<<"$output")" = '["corrupt","corrupt segment"]' ]
	run --separate-stderr dh-read --no-wait "$ch"
	[ "$status" -eq 1 ]
	assert_equal "$stderr" "dh-read: $ch: corrupt segment"
	survive "cut by a page"

	truncate -s 100 "$shm"
	run -1 dh-validate "$ch"
	survive "cut to 100 bytes"

	truncate -s 0 "$shm"
	run -2 --separate-stderr dh-validate "$ch"
	assert_equal "$stderr" "dh-validate: $ch: not a dh channel"
	survive "cut to nothing"
}

@test "bad magic is not a dh channel (2); a bad version is a corrupt header (1)" {
	sample_channel
	hostile set "$shm" "$(hostile offset hdr.magic)" u32 0x12345678
	run -2 --separate-stderr dh-validate "$ch"
	assert_equal "$stderr" "dh-validate: $ch: not a dh channel"
	run -2 --separate-stderr dh-diagnose "$ch"
	assert_equal "$stderr" "dh-diagnose: $ch: not a dh channel"
	survive "bad magic"
	restore
	hostile set "$shm" "$(hostile offset hdr.version)" u32 3
	run -1 --separate-stderr dh-validate "$ch"
	assert_output "$ch: corrupt header: unsupported channel format version; no repair is provably safe"
	run -1 dh-diagnose "$ch"
	assert_line "verdict     corrupt: unsupported channel format version"
	survive "bad version"
}

@test "huge or inconsistent geometry is a corrupt header, never a huge mapping" {
	sample_channel
	local f v
	for f in "hdr.slots u32 0xffffffff" "hdr.slots u32 0x1000000" "hdr.slot_size u32 0x40000000" \
		"hdr.slot_size u32 0xffffffff" "hdr.max_readers u32 0xffffffff" "hdr.max_readers u32 0" \
		"hdr.stride u32 0x80000000" "hdr.total_size u64 0xffffffffffffffff" "hdr.meta_size u32 0xfffffff0" \
		"hdr.data_off u64 0x100000000" "hdr.desc_off u64 8" "hdr.policy u32 9" "hdr.checksum u32 77" \
		"hdr.schema_len u32 4000" "hdr.record_size u32 0x10000"; do
		set -- $f
		restore
		hostile set "$shm" "$(hostile offset "$1")" "$2" "$3"
		run dh-validate "$ch"
		[ "$status" -eq 1 ] || fail "$f: dh-validate exited $status: $output"
		assert_output "$ch: corrupt header: corrupt segment; no repair is provably safe"
		survive "$f"
	done
	# a geometry that is consistent in itself, for a terabyte, on a small file
	restore
	hostile set "$shm" "$(hostile offset hdr.slots)" u32 0x400
	hostile set "$shm" "$(hostile offset hdr.slot_size)" u32 0x40000000
	hostile set "$shm" "$(hostile offset hdr.stride)" u32 0x40000000
	v=$(( (1 << 40) + 8192 ))
	hostile set "$shm" "$(hostile offset hdr.total_size)" u64 "$v"
	run -1 dh-validate "$ch"
	survive "a terabyte on a small file"
}

# damage LOCATION WIDTH VALUE KIND: set a field, expect dh-validate to
# report a finding of KIND (exit 1), --repair to leave it (1), and every
# tool to survive it (readers and writers attaching may clean it up).
damage() {
	restore
	hostile set "$shm" "$1" "$2" "$3"
	run dh-validate --json "$ch"
	[ "$status" -eq 1 ] || fail "$4 at $1 = $3: dh-validate exited $status: $output"
	[ "$(jq -r --arg k "$4" '[.findings[] | select(.kind == $k)] | length' <<<"$output")" -ge 1 ] ||
		fail "$4 at $1 = $3: no $4 finding in $output"
	# unrepairable: a repair leaves it and says so
	run dh-validate --repair "$ch"
	[ "$status" -eq 1 ] || fail "$4 at $1 = $3: dh-validate --repair exited $status: $output"
	survive "$4 at $1 = $3"
}

@test "out-of-range descriptor, table and counter fields are reported and survived" {
	sample_channel
	local d t h
	d=$(jdiag "$ch" .layout.desc_off)
	t=$(jdiag "$ch" .layout.table_off)
	damage $((d + 64 + $(hostile offset desc.length))) u32 0xffffffff descriptor
	damage $((d + 64 + $(hostile offset desc.length))) u32 65 descriptor
	damage $((d + 64 + $(hostile offset desc.stamp))) u64 0x7fffffffffffffff descriptor
	damage $((d + 64 + $(hostile offset desc.stamp))) u64 0xffffffffffffffff descriptor
	damage $((d + 64 + $(hostile offset desc.stamp))) u64 0 descriptor
	damage $((d + 64 + $(hostile offset desc.stamp))) u64 3 descriptor
	damage $((d + 192 + $(hostile offset desc.stamp))) u64 200 descriptor
	# the dead reader's entry (index 1): unknown state, position past the end
	# state bits 3 are no state at all (bits 2-31 are the occupant generation)
	damage $((t + 128 + $(hostile offset pentry.state))) u32 11 state
	damage $((t + 128 + $(hostile offset pentry.position))) u64 0xfffffffffffffff0 state
	damage $((t + $(hostile offset pentry.state))) u32 7 state
	damage "$(hostile offset hdr.eos_seq)" u64 1000 state
	damage "$(hostile offset hdr.committed)" u64 0x100000000 descriptor
	damage "$(hostile offset hdr.committed)" u64 0xffffffffffffffff descriptor
}

@test "queue claim words out of range are reported and survived" {
	sample_channel queue
	local d
	d=$(jdiag "$ch" .layout.desc_off)
	damage $((d + 64 + $(hostile offset desc.qword))) u64 300 descriptor
	damage $((d + 64 + $(hostile offset desc.qword))) u64 0xffffffffffffffff descriptor
	damage "$(hostile offset hdr.claim_head)" u64 0xffffffffffff state
}

@test "a flipped byte at every offset of the header, table and descriptors: open, check and repair in-process never crash" {
	local end
	sample_channel
	end=$(jdiag "$ch" .layout.data_off)
	run -0 hostile sweep "$ch" 0 4096
	assert_output --regexp '^sweep 0\.\.4096: 12288 trials, .*, 0 violations$'
	run -0 hostile sweep "$ch" 4096 "$end"
	assert_output --regexp ", 0 violations\$"
	rm -f "$shm"

	dh-create --slots 4 --slot-size 64 --policy queue --checksum blake2b "$ch"
	crashpoint write "$ch" 2
	run -0 hostile sweep "$ch" 0 "$end"
	assert_output --regexp ", 0 violations\$"
	rm -f "$shm"

	dh-create --keygen "$BATS_TEST_TMPDIR/key"
	dh-create --slots 4 --slot-size 64 --policy ring --key "$BATS_TEST_TMPDIR/key" --meta-size 256 "$ch"
	crashpoint -k "$BATS_TEST_TMPDIR/key" write "$ch" 6
	run -0 hostile sweep "$ch" 0 4096
	assert_output --regexp ", 0 violations\$"
}

@test "a flipped byte at sampled header and table offsets, through every tool" {
	sample_channel
	local f off offs=() t
	for f in magic version total_size slots slot_size stride meta_size max_readers policy checksum \
		flags evict_after_ns created_ns table_off desc_off meta_off data_off record_size schema_len \
		key_id schema_hash committed eos_seq claim_head messages_written schema; do
		off=$(hostile offset "hdr.$f")
		offs+=("$off" $((off + 1)))
	done
	t=$(jdiag "$ch" .layout.table_off)
	for f in state pid name position claim; do
		off=$(hostile offset "pentry.$f")
		offs+=($((t + off)) $((t + 128 + off)))
	done
	offs+=(4095 2000 $((t - 1)))
	for off in "${offs[@]}"; do
		restore
		hostile xor "$shm" "$off" 0xff
		survive "byte $off flipped"
	done
}

# mapped PID: true once process PID has the channel $ch mapped (dh-write
# --meta maps it right before its update), or has exited.
mapped() {
	grep -qF "/dh.$ch" "/proc/$1/maps" 2>/dev/null || ! kill -0 "$1" 2>/dev/null
}

@test "dh-write --meta SIGKILLed inside 32 MB updates, 15 rounds: dh-read --meta always gives the old or the new file" {
	local i n pid killed=0 got
	head -c 33554432 /dev/zero | tr '\0' a >"$BATS_TEST_TMPDIR/a"
	head -c 33550000 /dev/zero | tr '\0' b >"$BATS_TEST_TMPDIR/b"
	dh-create --slots 2 --slot-size 64 --meta-size 32M "$ch"
	dh-write --meta "$BATS_TEST_TMPDIR/a" "$ch" </dev/null
	for i in $(seq 15); do
		dh-write --meta "$BATS_TEST_TMPDIR/b" "$ch" </dev/null &
		pid=$!
		# kill it as soon as it has the channel mapped: inside its update
		# (copying 32 MB); a tight poll, bounded in count
		n=0
		until mapped "$pid" || [ $((n += 1)) -gt 200000 ]; do :; done
		kill -KILL "$pid" 2>/dev/null && killed=$((killed + 1))
		wait "$pid" 2>/dev/null || true
		run -0 --separate-stderr sh -c "dh-read --meta $ch | md5sum"
		got=$output
		[ "$got" = "$(md5sum <"$BATS_TEST_TMPDIR/a")" ] || [ "$got" = "$(md5sum <"$BATS_TEST_TMPDIR/b")" ] ||
			fail "round $i: dh-read --meta gave neither file ($stderr)"
		# and the next update goes through at once, the dead one's lock gone
		run -0 timeout 5 dh-write --meta "$BATS_TEST_TMPDIR/a" "$ch" </dev/null
	done
	echo "killed a live updater with the channel mapped in $killed of 15 rounds" >&3
	[ "$killed" -ge 10 ]
}
