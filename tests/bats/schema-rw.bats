#!/usr/bin/env bats
# dh-write and dh-read on schema channels, beyond schema.bats: CSV header
# handling and strictness, records from raw input, refusals, --strict on a
# clean stream, and the shared geometry options of dh-write --create. See LICENSE.

load test_helper
load integrity_helper

SPEC='ts:u64;temp:f32;flags:u8;name:char[16];v:i16[3]'
HEADER='ts,temp,flags,name,v[0],v[1],v[2]'

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
}

# b2 TEXT: the BLAKE2b-256 of TEXT in hex.
b2() {
	printf '%s' "$1" | b2sum -l 256 | cut -d' ' -f1
}

schema_channel() {
	dh-create --slots 8 --schema "${1:-$SPEC}" "$ch"
}

committed() {
	jdiag "$1" .committed
}

@test "--csv: a first line equal to the header is skipped, also with CRLF; any other first line is a record" {
	schema_channel
	run -0 --separate-stderr dh-write --csv "$ch" <<<"$HEADER"$'\n1,1.5,1,a,1,2,3'
	assert_output ''
	assert_equal "$stderr" ''
	printf '%s\r\n2,2.5,2,b,4,5,6\r\n' "$HEADER" | dh-write --csv "$ch"
	# no header: the first line is data
	printf '3,3.5,3,c,7,8,9\n' | dh-write --csv "$ch"
	# only a header: nothing to write, and not an error
	run -0 --separate-stderr dh-write --csv "$ch" <<<"$HEADER"
	assert_equal "$stderr" ''
	run -0 --separate-stderr dh-read --csv --no-wait "$ch"
	assert_output "$HEADER
1,1.5,1,a,1,2,3
2,2.5,2,b,4,5,6
3,3.5,3,c,7,8,9"
	assert_equal "$stderr" ''
}

@test "--csv: a header that does not match the schema is refused before anything is written" {
	schema_channel
	run -1 --separate-stderr dh-write --csv "$ch" <<<'ts,temperature,flags,name,v[0],v[1],v[2]'$'\n1,1.5,1,a,1,2,3'
	assert_output ''
	assert_equal "$stderr" "dh-write: $ch: line 1: a header must be exactly the schema's columns (dh-read --csv prints them)"
	[ "$(committed "$ch")" = 0 ]
	# a header is only recognised on line 1
	run -1 --separate-stderr dh-write --csv "$ch" <<<$'1,1.5,1,a,1,2,3\n'"$HEADER"
	assert_equal "$stderr" "dh-write: $ch: line 2, column 1 (ts): not an integer"
	[ "$(committed "$ch")" = 1 ]
}

@test "--csv: errors name the line where the row starts, the column and what is wrong" {
	schema_channel
	run -1 --separate-stderr dh-write --csv "$ch" <<<$'1,1.5,1,"two\nlines",1,2,3\n2,1.5,1,x,1,2,3,4'
	assert_output ''
	assert_equal "$stderr" "dh-write: $ch: line 3, column 8: too many fields"
	run -1 --separate-stderr dh-write --csv "$ch" <<<'3,1.5,1,x,1,2'
	assert_equal "$stderr" "dh-write: $ch: line 1, column 7 (v[2]): too few fields"
	run -1 --separate-stderr dh-write --csv "$ch" <<<'4,1.5,1,abcdefghijklmnopq,1,2,3'
	assert_equal "$stderr" "dh-write: $ch: line 1, column 4 (name): text too long (at most 16 bytes)"
	run -1 --separate-stderr dh-write --csv "$ch" <<<'-5,1.5,1,x,1,2,3'
	assert_equal "$stderr" "dh-write: $ch: line 1, column 1 (ts): out of range"
	run -1 --separate-stderr dh-write --csv "$ch" <<<'6,1.5,1,x,1,2,3'$'\n'
	assert_equal "$stderr" "dh-write: $ch: line 2, column 1 (ts): empty field"
	# a quote left open runs to the end of input: reported where its row starts
	run -1 --separate-stderr dh-write --csv "$ch" <<<$'7,1.5,1,x,1,2,3\n8,1.5,1,"open,1,2,3\n9,1.5,1,y,1,2,3'
	assert_equal "$stderr" "dh-write: $ch: line 2, column 4 (name): unterminated quoted field"
	# a quote inside a bare field does not swallow the lines after it
	run -1 --separate-stderr dh-write --csv "$ch" <<<$'10,1.5,1,a"b,1,2,3\n11,1.5,1,y,1,2,3'
	assert_equal "$stderr" "dh-write: $ch: line 1, column 4 (name): quote in unquoted field"
	# what came before each bad row was delivered, and end-of-stream marked
	run -0 --separate-stderr dh-read --from oldest --csv "$ch"
	assert_output "$HEADER
1,1.5,1,\"two
lines\",1,2,3
6,1.5,1,x,1,2,3
7,1.5,1,x,1,2,3"
}

@test "--csv: a line longer than any valid row is refused without reading it all into a slot" {
	schema_channel
	run -1 --separate-stderr dh-write --csv "$ch" < <(printf '1,2,3,%s,1,2,3\n' "$(head -c 5000 /dev/zero | tr '\0' a)")
	assert_output ''
	[[ $stderr == "dh-write: $ch: line 1 is 5012 bytes, longer than any row of the schema ("*" bytes)" ]] || fail "$stderr"
	[ "$(committed "$ch")" = 0 ]
}

@test "CSV relay: dh-read --csv | dh-write --csv copies records exactly, header and all" {
	schema_channel 'a:i64;b:f64;c:f32;d:u16[2]'
	dh-create --slots 8 --schema 'a:i64;b:f64;c:f32;d:u16[2]' "$ch-b"
	local csv='a,b,c,d[0],d[1]
-9223372036854775808,0.10000000000000001,1.00000012,0,65535
9223372036854775807,-1.7976931348623157e+308,-0,1,2
0,inf,-inf,3,4
1,nan,nan,5,6'
	dh-write --csv "$ch" <<<"$csv"
	dh-read --from oldest --csv "$ch" | dh-write --csv "$ch-b"
	run -0 --separate-stderr dh-read --from oldest --csv "$ch-b"
	assert_output "$csv"
	assert_equal "$stderr" ''
	# the same records as JSON: non-finite numbers are null
	run -0 --separate-stderr dh-read --from oldest --json "$ch-b"
	[ "$(jq -c '[.b, .c]' <<<"${lines[2]}")" = '[null,null]' ]
	[ "$(jq -c .d <<<"${lines[3]}")" = '[5,6]' ]
}

@test "raw input on a schema channel is cut into records; --record-size must be the record size" {
	schema_channel
	run -0 --separate-stderr dh-write "$ch" < <(head -c 80 /dev/zero)
	assert_equal "$stderr" ''
	[ "$(committed "$ch")" = 2 ]
	run -1 --separate-stderr dh-write "$ch" < <(head -c 50 /dev/zero)
	assert_equal "$stderr" "dh-write: $ch: truncated record 2 at byte offset 40 (10 of 40 bytes)"
	[ "$(committed "$ch")" = 3 ]
	run -1 --separate-stderr dh-write --record-size 41 "$ch" < <(head -c 41 /dev/zero)
	assert_output ''
	assert_equal "$stderr" "dh-write: $ch: --record-size 41: the channel's records are 40 bytes"
	[ "$(committed "$ch")" = 3 ]
	run -1 --separate-stderr dh-write --lines "$ch" <<<'short'
	assert_equal "$stderr" "dh-write: $ch: line 1 is 5 bytes, not a record of the channel's schema (40 bytes)"
	[ "$(committed "$ch")" = 3 ]
}

@test "--csv needs a schema channel, on both sides" {
	dh-create --slots 4 "$ch"
	run -1 --separate-stderr dh-write --csv "$ch" <<<'1'
	assert_output ''
	assert_equal "$stderr" "dh-write: $ch: channel has no schema: --csv encodes records (dh-create --schema)"
	run -1 --separate-stderr dh-read --csv --no-wait "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-read: $ch: channel has no schema: --csv decodes records (dh-create --schema)"
	# --json keeps its message framing there
	echo hi | dh-write --lines "$ch"
	run -0 --separate-stderr dh-read --from oldest --json "$ch"
	[ "$(jq -r .text <<<"$output")" = hi ]
}

@test "--schema: a channel without one is a mismatch; a bad SPEC is a usage error; the same layout spelt differently passes" {
	dh-create --slots 4 "$ch"
	run -1 --separate-stderr dh-read --from oldest --schema 'a:u8' "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-read: $ch: schema mismatch: channel has no schema, expected $(b2 'a:u8') (a:u8)"
	: >"$BATS_TEST_TMPDIR/empty"
	run -1 --separate-stderr dh-write --schema 'a:u8' "$ch" <"$BATS_TEST_TMPDIR/empty"
	assert_equal "$stderr" "dh-write: $ch: schema mismatch: channel has no schema, expected $(b2 'a:u8') (a:u8)"
	run -2 --separate-stderr dh-read --from oldest --schema 'a:u8;' "$ch"
	assert_output ''
	assert_equal "${stderr_lines[0]}" "dh-read: --schema: syntax error at byte 5 of the spec (at its end)"
	run -2 --separate-stderr dh-write --schema 'a:q8' "$ch"
	assert_equal "${stderr_lines[0]}" "dh-write: --schema: syntax error at byte 2 of the spec, at 'q8'"
	rm -f "$shm"
	schema_channel 'a:u8;b:u32'
	run -0 --separate-stderr dh-write --schema ' a : u8 ; _pad0:pad[3] ; b : u32 ' --csv "$ch" <<<'1,2'
	run -0 --separate-stderr dh-read --from oldest --schema 'a:u8;b:u32' --csv "$ch"
	assert_output $'a,b\n1,2'
}

@test "dh-write --create --schema creates a schema channel, a slot per record unless --slot-size" {
	run -0 --separate-stderr dh-write --create --slots 4 --schema 'a:u8;b:i32' --csv "$ch" <<<$'a,b\n1,-2'
	assert_equal "$stderr" ''
	[ "$(jdiag "$ch" .schema)" = 'a:u8;_pad0:pad[3];b:i32' ]
	[ "$(jdiag "$ch" .slot_size)" = 8 ]
	run -0 dh-read --from oldest --csv "$ch"
	assert_output $'a,b\n1,-2'
	run -0 dh-write --create --slot-size 1K --schema 'a:u8' --csv "$ch-k" <<<'7'
	[ "$(jdiag "$ch-k" .slot_size)" = 1024 ]
	: >"$BATS_TEST_TMPDIR/empty"
	run -2 --separate-stderr dh-write --create --slot-size 4 --schema 'a:u64' "$ch-s" <"$BATS_TEST_TMPDIR/empty"
	assert_equal "$stderr" "dh-write: --schema: a record of 8 bytes does not fit a slot of 4"
	[ ! -e "$(dh_shm "$ch-s")" ]
}

@test "--csv and the framing options exclude each other (usage error)" {
	schema_channel
	run -2 --separate-stderr dh-write --lines --csv "$ch"
	assert_output ''
	assert_equal "${stderr_lines[0]}" "dh-write: --lines, --null, --framed, --record-size and --csv exclude each other"
	run -2 --separate-stderr dh-write --csv --record-size 40 "$ch"
	run -2 --separate-stderr dh-read --from oldest --json --csv "$ch"
	assert_equal "${stderr_lines[0]}" "dh-read: --lines, --null, --framed, --json and --csv exclude each other"
	run -2 --separate-stderr dh-read --from oldest --csv --framed "$ch"
}

@test "dh-read --csv on an empty channel prints the header only; --json prints nothing" {
	schema_channel
	run -0 --separate-stderr dh-read --csv --no-wait "$ch"
	assert_output "$HEADER"
	assert_equal "$stderr" ''
	run -0 --separate-stderr dh-read --json --no-wait "$ch"
	assert_output ''
}

@test "dh-read --strict: a clean stream is read in full; without --strict a failure is skipped and reading goes on" {
	dh-create --slots 8 --slot-size 64 "$ch"
	crashpoint write "$ch" 5
	run -0 --separate-stderr dh-read --from oldest --strict --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-3\nmsg-4'
	assert_equal "$stderr" ''
	hostile xor "$shm" "$(data_offset "$ch" 3)" 0x20
	run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2\nmsg-4'
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 3"
	run -1 --separate-stderr dh-read --from oldest --strict --lines "$ch"
	assert_output $'msg-0\nmsg-1\nmsg-2'
	assert_equal "$stderr" "dh-read: $ch: checksum mismatch at seq 3"
}

@test "dh-write --create: the shared geometry options parse and refuse exactly as before" {
	run -0 dh-write --create --slots 3 --slot-size 2K --policy ring --checksum blake2b --meta-size 1K \
		--max-readers 5 --mode 0660 "$ch" <<<'x'
	[ "$(dh-stat --json "$ch" | jq -c '.channels[0] | [.slots, .slot_size, .policy, .checksum, .max_readers, .meta_size]')" = '[3,2048,"ring","blake2b",5,1024]' ]
	run -0 stat -c %a "$shm"
	assert_output 660
	run -2 --separate-stderr dh-write --create --slots 0 "$ch-x"
	assert_equal "$stderr" "dh-write: --slots 0: out of range (1..16777216)"
	run -2 --separate-stderr dh-write --create --slot-size 1x "$ch-x"
	assert_equal "$stderr" "dh-write: --slot-size 1x: invalid size"
	run -2 --separate-stderr dh-write --create --policy fifo "$ch-x"
	assert_equal "$stderr" "dh-write: --policy fifo: unknown policy (latest, ring, sync, queue)"
	run -2 --separate-stderr dh-write --create --mode 0400 "$ch-x"
	assert_equal "$stderr" "dh-write: --mode 0400: invalid mode (octal, 0600 to 0777, owner rw)"
	run -2 --separate-stderr dh-write --create --policy ring --evict-after 1s "$ch-x"
	assert_equal "$stderr" "dh-write: --evict-after: only for --policy sync"
	run -2 --separate-stderr dh-write --evict-after 1s "$ch-x"
	assert_equal "${stderr_lines[0]}" "dh-write: geometry options need --create"
	[ ! -e "$(dh_shm "$ch-x")" ]
}
