#!/usr/bin/env bats
# Schemas end to end (issue 4): canonical form and hash in the header,
# mismatches refused on both sides, JSON and CSV decoding, CSV round trip,
# malformed CSV rows; and dh-read --strict.  The options these need on
# dh-create, dh-write and dh-read are other work in progress: each test
# skips, naming what is missing, until they land. See LICENSE.

load test_helper
load integrity_helper

SPEC='ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]'
CANON='ts:u64;temp:f32;flags:u8;name:char[16];_pad0:pad[1];v:i16[3];_pad1:pad[4]'

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
}

# schema_channel: $ch with $SPEC, or skip if dh-create cannot do schemas yet.
schema_channel() {
	run --separate-stderr dh-create --slots 8 --slot-size 64 --schema "${1:-$SPEC}" "$ch"
	if [ "$status" -ne 0 ]; then
		[[ $stderr == *"not supported"* ]] && skip "dh-create --schema is not supported yet"
		fail "dh-create --schema failed: $stderr"
	fi
}

# record TS TEMP_LE_HEX FLAGS NAME V0 V1 V2: one 40-byte record of $SPEC,
# little-endian (x86-64, AArch64), as printf escapes on stdout.
record() {
	local ts=$1 temp=$2 flags=$3 name=$4 i b out=
	for i in 0 1 2 3 4 5 6 7; do out+=$(printf '\\x%02x' $(((ts >> (8 * i)) & 255))); done
	out+=$temp
	out+=$(printf '\\x%02x' "$flags")
	for ((i = 0; i < 16; i++)); do
		if [ "$i" -lt "${#name}" ]; then b=$(printf '%d' "'${name:i:1}"); else b=0; fi
		out+=$(printf '\\x%02x' "$b")
	done
	out+='\x00'
	for i in "$5" "$6" "$7"; do
		out+=$(printf '\\x%02x\\x%02x' $((i & 255)) $(((i >> 8) & 255)))
	done
	out+='\x00\x00\x00\x00'
	printf '%s' "$out"
}

@test "dh-create --schema stores the canonical form and its BLAKE2b-256 hash; dh-diagnose shows them" {
	schema_channel
	run -0 dh-diagnose --json "$ch"
	[ "$(jq -r .schema <<<"$output")" = "$CANON" ]
	[ "$(jq -r .record_size <<<"$output")" = 40 ]
	[ "$(jq -r .schema_hash <<<"$output")" = "$(printf '%s' "$CANON" | b2sum -l 256 | cut -d' ' -f1)" ]
	run -0 dh-diagnose "$ch"
	assert_line "schema      $CANON (40 bytes, $(printf '%s' "$CANON" | b2sum -l 256 | cut -c1-16))"
	run -0 dh-validate "$ch"
	# a spec with the same layout and names (explicit pads) is the same schema
	rm -f "$shm"
	schema_channel "$CANON"
	[ "$(jdiag "$ch" .schema)" = "$CANON" ]
}

@test "a schema mismatch is refused on both sides, with both hashes and forms, and counted" {
	schema_channel
	has_option dh-write --schema || skip "dh-write has no --schema yet"
	has_option dh-read --schema || skip "dh-read has no --schema yet"
	local other='ts:u64;temp:f64'
	run --separate-stderr dh-write --schema "$other" "$ch" </dev/null
	[ "$status" -ne 0 ] && [ "$status" -lt 128 ]
	assert_equal "$stderr" "$(printf 'dh-write: %s: schema mismatch: channel has %s (%s), expected %s (%s)' "$ch" \
		"$(printf '%s' "$CANON" | b2sum -l 256 | cut -d' ' -f1)" "$CANON" \
		"$(printf '%s' "ts:u64;temp:f64" | b2sum -l 256 | cut -d' ' -f1)" "ts:u64;temp:f64")"
	run --separate-stderr dh-read --from oldest --schema "$other" "$ch"
	[ "$status" -ne 0 ] && [ "$status" -lt 128 ]
	[[ $stderr == "dh-read: $ch: schema mismatch: channel has "* ]]
	[ "$(jdiag "$ch" .counters.schema_mismatches)" = 2 ]
	# the same schema, spelt differently, is accepted
	run -0 dh-write --schema "$CANON" --record-size 40 "$ch" </dev/null
}

@test "dh-read --json and --csv decode known records" {
	schema_channel
	has_option dh-read --csv || skip "dh-read has no --csv yet (schema decoding)"
	{
		printf "$(record 1700000000 '\x00\x00\xac\x41' 3 probe 1 -2 3)"
		printf "$(record 42 '\x00\x00\x20\xc1' 255 'a,b "c"' -32768 0 32767)"
	} | dh-write --record-size 40 "$ch"
	run -0 --separate-stderr dh-read --from oldest --json "$ch"
	[ "$(jq -c '{ts, temp, flags, name, v}' <<<"${lines[0]}")" = '{"ts":1700000000,"temp":21.5,"flags":3,"name":"probe","v":[1,-2,3]}' ]
	[ "$(jq -c '{ts, temp, flags, name, v}' <<<"${lines[1]}")" = '{"ts":42,"temp":-10,"flags":255,"name":"a,b \"c\"","v":[-32768,0,32767]}' ]
	run -0 --separate-stderr dh-read --from oldest --csv "$ch"
	assert_output 'ts,temp,flags,name,v[0],v[1],v[2]
1700000000,21.5,3,probe,1,-2,3
42,-10,255,"a,b ""c""",-32768,0,32767'
}

@test "CSV round trip: CSV -> channel -> CSV is exact" {
	schema_channel
	has_option dh-write --csv || skip "dh-write has no --csv yet"
	has_option dh-read --csv || skip "dh-read has no --csv yet"
	local csv='ts,temp,flags,name,v[0],v[1],v[2]
0,0,0,,0,0,0
18446744073709551615,3.40282347e+38,255,"x,""y""",-32768,-1,32767
1700000000,0.100000001,7,abcdefghijklmnop,1,2,3
5,-1.17549435e-38,1,"line
break",4,5,6'
	dh-write --csv "$ch" <<<"$csv"
	run -0 --separate-stderr dh-read --from oldest --csv "$ch"
	assert_output "$csv"
}

@test "a malformed CSV row is an error naming its line number" {
	schema_channel
	has_option dh-write --csv || skip "dh-write has no --csv yet"
	run --separate-stderr dh-write --csv "$ch" <<-'EOF'
	ts,temp,flags,name,v[0],v[1],v[2]
	1,1.5,1,ok,1,2,3
	2,1.5,256,too big,1,2,3
	3,1.5,1,never,1,2,3
	EOF
	[ "$status" -eq 1 ]
	[[ $stderr == "dh-write: "*"line 3"* ]] || fail "no line number: $stderr"
	[ "$(jdiag "$ch" .committed)" = 1 ]
}

@test "dh-read --strict stops at the first checksum failure" {
	has_option dh-read --strict || skip "dh-read has no --strict yet"
	dh-create --slots 8 --slot-size 64 "$ch"
	crashpoint write "$ch" 5
	hostile xor "$shm" "$(data_offset "$ch" 2)" 0x20
	run -1 --separate-stderr dh-read --from oldest --strict --lines "$ch"
	assert_output $'msg-0\nmsg-1'
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 2"
}
