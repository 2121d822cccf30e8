#!/usr/bin/env bats
# dh-write | channel | dh-read: framing round trips, errors, command line. See LICENSE.

load test_helper
load rw_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	EMPTY=$T/empty          # not /dev/null: a test elsewhere could have replaced it
	: >"$EMPTY"
}

# --- round trips, byte-exact ----------------------------------------------

@test "raw: binary data with NULs, not a multiple of the slot size, round trip" {
	head -c 100000 /dev/urandom >"$T/in"
	printf '\0\0\0x\0' >>"$T/in"
	run -0 dh-write --create --slots 64 --slot-size 4K "$ch" <"$T/in"
	dh-read --from oldest "$ch" >"$T/out"
	cmp "$T/in" "$T/out"
	# a regular file is read a full slot at a time: 24 slots of 4096 and one of 1701
	run -0 sh -c "dh-read --from oldest --json '$ch' | jq -r .length | sort -n | uniq -c | awk '{print \$1 \"x\" \$2}' | tr '\n' ' '"
	assert_output "1x1701 24x4096 "
}

@test "raw: a 50 MB file through 4K slots with a concurrent reader" {
	head -c 50M /dev/urandom >"$T/in"
	dh-create --slots 64 --slot-size 4K "$ch"
	reader_bg r "$ch"
	dh_await readers_at_least "$ch" 1
	run -0 dh-write "$ch" <"$T/in"
	status_of "$RPID"
	assert_equal "$st" 0
	cmp "$T/in" "$T/r.out"
	[ ! -s "$T/r.err" ]
}

@test "lines: one message per line, empty lines kept, last line without newline counts" {
	printf 'alpha\n\nbeta gamma\n\t tabs \ndelta' >"$T/in"
	run -0 dh-write --create --lines "$ch" <"$T/in"
	run -0 sh -c "dh-read --from oldest --json '$ch' | jq -c '[.seq, .length, .text]'"
	assert_output - <<-'EOF'
	[0,5,"alpha"]
	[1,0,""]
	[2,10,"beta gamma"]
	[3,7,"\t tabs "]
	[4,5,"delta"]
	EOF
	dh-read --from oldest --lines "$ch" >"$T/out"
	printf '\n' >>"$T/in"      # --lines output ends every message with a newline
	cmp "$T/in" "$T/out"
}

@test "lines: a text file round trips byte-exact" {
	seq 1 20000 | sed 's/$/ some text/' >"$T/in"
	run -0 dh-write --create --slots 32768 --slot-size 64 --lines "$ch" <"$T/in"
	dh-read --from oldest --lines "$ch" >"$T/out"
	cmp "$T/in" "$T/out"
}

# has_lines FILE N: FILE has at least N lines.
has_lines() {
	[ -e "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}

@test "lines from a slow source: each line is published as soon as the input has nothing more ready" {
	# dh-write batches bursts; a line with no more input behind it must not
	# wait in a batch for the next (or for end of input)
	dh-create --slots 64 --slot-size 64 "$ch"
	dh_feed "$ch" --lines
	reader_bg r --lines "$ch"
	for i in 1 2 3 4 5; do
		echo "reading-$i" >&"$DH_FEED"
		dh_await -t 5 has_lines "$T/r.out" "$i"
	done
	printf 'burst-%s\n' $(seq 1 3000) >&"$DH_FEED"
	dh_await -t 10 has_lines "$T/r.out" 3005
	dh_feed_end
	status_of "$RPID"
	assert_equal "$st" 0
	run -0 sed -n '5p;6p;3005p' "$T/r.out"
	assert_output $'reading-5\nburst-1\nburst-3000'
}

@test "lines: a 200000-line burst through a small ring arrives whole and in order, batched" {
	seq 1 200000 >"$T/in"
	dh-create --slots 256 --slot-size 64 "$ch"
	reader_bg r --lines "$ch"
	dh_await readers_at_least "$ch" 1
	run -0 dh-write --lines "$ch" <"$T/in"
	status_of "$RPID"
	assert_equal "$st" 0
	cmp "$T/in" "$T/r.out"
	[ "$(dh-stat --json "$ch" | jq .channels[0].committed)" = 200000 ]
}

@test "null: NUL-terminated records, binary-safe round trip" {
	printf 'one\0two\nlines\0\0\377\001\0' >"$T/in"
	run -0 dh-write --create --null "$ch" <"$T/in"
	run -0 sh -c "dh-read --from oldest --json '$ch' | jq -c '.length'"
	assert_output "$(printf '3\n9\n0\n2')"
	dh-read --from oldest --null "$ch" >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "framed: boundaries and binary payloads (NULs, newlines, empty) round trip" {
	perl -e 'print pack("V/a*", $_) for ("abc", "", "a\nb\0c", "\0" x 300, join("", map { chr } 0..255))' >"$T/in"
	run -0 dh-write --create --framed "$ch" <"$T/in"
	run -0 sh -c "dh-read --from oldest --json '$ch' | jq -c .length | tr '\n' ' '"
	assert_output "3 0 5 300 256 "
	dh-read --from oldest --framed "$ch" >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "record: fixed-size binary records round trip" {
	head -c 16000 /dev/urandom >"$T/in"
	run -0 dh-write --create --slots 1024 --record-size 16 "$ch" <"$T/in"
	run -0 sh -c "dh-read --from oldest --json '$ch' | jq -c .length | sort -u"
	assert_output 16
	run -0 sh -c "dh-read --from oldest --json '$ch' | wc -l"
	assert_output 1000
	dh-read --from oldest "$ch" >"$T/out"
	cmp "$T/in" "$T/out"
}

@test "empty input: writer exits 0, reader gets nothing and exits 0" {
	run -0 --separate-stderr dh-write --create "$ch" <"$EMPTY"
	assert_equal "$stderr" ""
	run -0 --separate-stderr dh-read --from oldest "$ch"
	assert_output ""
	assert_equal "$stderr" ""
	for mode in --lines --null --framed "--record-size 8"; do
		# shellcheck disable=SC2086
		run -0 dh-write $mode "$ch" <"$EMPTY"
	done
}

@test "--framed preserves message boundaries through two channels" {
	dh-create "$ch-a"
	dh-create "$ch-b"
	printf 'first\n\nthird has  spaces\n' | dh-write --lines "$ch-a"
	run -0 bash -c "dh-read --from oldest --framed '$ch-a' | dh-write --framed '$ch-b'"
	run -0 sh -c "dh-read --from oldest --json '$ch-b' | jq -c '[.length, .text]'"
	assert_output - <<-'EOF'
	[5,"first"]
	[0,""]
	[17,"third has  spaces"]
	EOF
}

@test "--json: one valid object per message, text or base64, parsed by jq" {
	perl -e 'print pack("V/a*", $_) for ("hello", "quote \" back\\slash\ttab", "caf\xc3\xa9", "\xff\x00\x01", "")' >"$T/in"
	dh-write --create --framed "$ch" <"$T/in"
	dh-read --from oldest --json "$ch" >"$T/out"
	run -0 jq -e -s 'length == 5 and all(.[]; (.seq|type) == "number" and (.length|type) == "number"
		and (.time|test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{9}Z$")))' "$T/out"
	run -0 jq -r -s 'map(.seq) | join(",")' "$T/out"
	assert_output "0,1,2,3,4"
	run -0 jq -r 'select(.seq == 1) | .text' "$T/out"
	assert_output "$(printf 'quote " back\\slash\ttab')"
	run -0 jq -r 'select(.seq == 2) | .text' "$T/out"
	assert_output "$(printf 'caf\303\251')"
	run -0 jq -r 'select(.seq == 3) | [.length, .base64, has("text")] | @tsv' "$T/out"
	assert_output "$(printf '3\t/wAB\tfalse')"
	jq -r 'select(.seq == 3) | .base64' "$T/out" | base64 -d >"$T/bin"
	printf '\377\000\001' | cmp - "$T/bin"
	run -0 jq -r 'select(.seq == 4) | [.length, .text] | @tsv' "$T/out"
	assert_output "$(printf '0\t')"
}

# --- bad input: exact status, one line, earlier data delivered ------------

@test "oversized line: exit 1, one line naming ordinal and size, earlier lines delivered" {
	dh-create --slot-size 8 "$ch"
	printf 'ok\nfine\nthis line is too long\nafter\n' >"$T/in"
	run -1 --separate-stderr dh-write --lines "$ch" <"$T/in"
	assert_output ""
	assert_equal "$stderr" "dh-write: $ch: line 3 is 21 bytes, more than the slot payload (8 bytes)"
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output "$(printf 'ok\nfine')"
	assert_equal "$stderr" ""
}

@test "oversized NUL record and frame: exit 1 with ordinal and size" {
	dh-create --slot-size 8 "$ch"
	printf 'a\0bcdefghijk\0c\0' >"$T/in"
	run -1 --separate-stderr dh-write --null "$ch" <"$T/in"
	assert_equal "$stderr" "dh-write: $ch: record 2 is 10 bytes, more than the slot payload (8 bytes)"
	run -0 dh-read --null --no-wait "$ch"
	assert_output "a"

	perl -e 'print pack("V/a*", $_) for ("12345678", "123456789", "x")' >"$T/in"
	run -1 --separate-stderr dh-write --create --slot-size 8 --framed "$ch-f" <"$T/in"
	assert_equal "$stderr" "dh-write: $ch-f: frame 2 is 9 bytes, more than the slot payload (8 bytes)"
	run -0 dh-read --from oldest --lines "$ch-f"
	assert_output "12345678"
}

@test "oversized record size: exit 1, one line" {
	dh-create --slot-size 8 "$ch"
	printf '123456789' >"$T/in"
	run -1 --separate-stderr dh-write --record-size 9 "$ch" <"$T/in"
	assert_output ""
	assert_equal "$stderr" "dh-write: $ch: record size 9 is more than the slot payload (8 bytes)"
}

@test "truncated frame at EOF: exit 1 naming the byte offset, whole frames delivered" {
	perl -e 'print pack("V/a*", "one"), pack("V/a*", "two"), pack("V", 10), "abc"' >"$T/in"
	run -1 --separate-stderr dh-write --create --framed "$ch" <"$T/in"
	assert_equal "$stderr" "dh-write: $ch: truncated frame 3 at byte offset 14 (3 of 10 bytes)"
	run -0 dh-read --from oldest --lines "$ch"
	assert_output "$(printf 'one\ntwo')"
}

@test "truncated frame header and truncated record at EOF" {
	perl -e 'print pack("V/a*", "one"), "\x05\x00"' >"$T/in"
	run -1 --separate-stderr dh-write --create --framed "$ch" <"$T/in"
	assert_equal "$stderr" "dh-write: $ch: truncated frame 2 at byte offset 7 (2 of 4 bytes)"
	printf 'aaaabbbbcc' >"$T/in"
	run -1 --separate-stderr dh-write --record-size 4 "$ch" <"$T/in"
	assert_equal "$stderr" "dh-write: $ch: truncated record 3 at byte offset 8 (2 of 4 bytes)"
	run -0 dh-read --lines --from 1 "$ch"
	assert_output "$(printf 'aaaa\nbbbb')"
}

@test "bad numbers and durations: exit 2, one line, nothing on stdout" {
	dh-create "$ch"
	local bad
	while IFS='|' read -r prog bad; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr $prog $bad "$ch" <"$EMPTY"
		assert_output ""
		assert_equal "${#stderr_lines[@]}" 1
		[[ $stderr == "$prog: --"* ]]
	done <<-'EOF'
	dh-write|--record-size 0
	dh-write|--record-size 12x
	dh-write|--record-size -4
	dh-write|--timeout 5y
	dh-write|--wait-readers many
	dh-write|--create --slots 0
	dh-write|--create --slot-size 99999999999
	dh-write|--create --policy fifo
	dh-read|--count 0
	dh-read|--count abc
	dh-read|--count 18446744073709551616
	dh-read|--from 12ab
	dh-read|--from -1
	dh-read|--timeout -1
	EOF
}

@test "missing channel: exit 1 with one line, for writer and reader" {
	run -1 --separate-stderr dh-write "$ch" <"$EMPTY"
	assert_output ""
	assert_equal "$stderr" "dh-write: $ch: no such channel (--create creates it)"
	run -1 --separate-stderr dh-read --from oldest "$ch"
	assert_output ""
	assert_equal "$stderr" "dh-read: $ch: no such channel (--wait-channel DUR waits for it)"
	[ ! -e "$(dh_shm "$ch")" ]
}

@test "usage errors: exit 2 with a usage line; --help and --version on stdout" {
	run -2 --separate-stderr dh-write --lines --null "$ch"
	assert_output ""
	[[ $stderr == *$'\n'"usage: dh-write "* ]]
	run -2 --separate-stderr dh-write --slots 4 "$ch"
	[[ $stderr == *"geometry options need --create"* ]]
	run -2 --separate-stderr dh-read --from oldest --json --lines "$ch"
	[[ $stderr == *$'\n'"usage: dh-read "* ]]
	run -2 --separate-stderr dh-read
	run -2 --separate-stderr dh-read --from oldest --bogus "$ch"
	run -2 --separate-stderr dh-read --from oldest a b
	run -0 dh-read --help
	[[ ${lines[0]} == "usage: dh-read "* ]]
	run -0 dh-write -h
	[[ ${lines[0]} == "usage: dh-write "* ]]
	run -0 dh-read -V
	assert_output --regexp '^dh-read [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "--help usage line equals the man page SYNOPSIS" {
	local prog
	for prog in dh-write dh-read; do
		run -0 dh_man_synopsis "$DH_TOP/man/$prog.1"
		local want=$output
		run -0 "$prog" --help
		assert_equal "$(dh_usage_forms <<<"$output")" "$want"
	done
}

# --- metadata ---------------------------------------------------------------

@test "--meta FILE replaces the metadata zone; dh-read --meta prints it" {
	dh-create --meta-size 1K "$ch"
	printf '{"unit":"C","rate":10}\n' >"$T/m1"
	run -0 dh-write --meta "$T/m1" --no-eos "$ch" <"$EMPTY"
	dh-read --meta "$ch" >"$T/got"
	cmp "$T/m1" "$T/got"
	head -c 1000 /dev/urandom >"$T/m2"
	printf 'x\n' | dh-write --meta "$T/m2" --lines "$ch"
	dh-read --meta "$ch" >"$T/got"
	cmp "$T/m2" "$T/got"
	run -0 dh-read --from oldest --lines "$ch"
	assert_output x
	head -c 1025 /dev/zero >"$T/big"
	run -1 --separate-stderr dh-write --meta "$T/big" "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: $ch: $T/big is 1025 bytes, the metadata zone holds 1024"
	dh-read --meta "$ch" | cmp "$T/m2" -
}

@test "--meta on a channel without a metadata zone: exit 1" {
	dh-create "$ch"
	printf 'x' >"$T/m"
	run -1 --separate-stderr dh-write --meta "$T/m" "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: $ch: channel has no metadata zone (dh-create --meta-size)"
	run -1 --separate-stderr dh-read --meta "$ch"
	assert_equal "$stderr" "dh-read: $ch: channel has no metadata zone"
}

# --- output ----------------------------------------------------------------

@test "dh-read | head -1 ends quietly" {
	seq 1 1000000 >"$T/in"
	dh-write --create --slots 128 --slot-size 64K "$ch" <"$T/in"
	run -0 bash -c "dh-read --from oldest --timeout 10 '$ch' 2>'$T/err' | head -1; echo \"\${PIPESTATUS[0]}\""
	assert_equal "${lines[0]}" 1
	[[ ${lines[1]} == 0 || ${lines[1]} == 141 ]]
	[ ! -s "$T/err" ]
	[ "$(dh_readers "$ch")" -eq 0 ]
}

@test "stdout error (/dev/full): exit 1 with a message" {
	printf 'a\nb\n' | dh-write --create --lines "$ch"
	run -1 --separate-stderr bash -c "dh-read --from oldest --lines '$ch' >/dev/full"
	assert_output ""
	assert_equal "$stderr" "dh-read: write error: No space left on device"
	[ "$(dh_readers "$ch")" -eq 0 ]
}

@test "--progress off a terminal: plain lines, the last one the final tally (more in progress.bats)" {
	dh-create --slots 128 "$ch"   # room for all: no reader is attached
	seq 1 100 | dh-write --lines --progress "$ch" 2>"$T/err"
	run -1 grep -Ev "^dh-write: $ch: (done )?[0-9.]+s [0-9]+ msgs " "$T/err"
	run -0 tail -n1 "$T/err"
	assert_output --regexp "^dh-write: $ch: done [0-9.]+s 100 msgs 192 bytes [0-9.]+ msg/s [0-9.]+ bytes/s fill - lag -\$"
}

@test "--progress draws a status line on a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	seq 1 5000 >"$T/in"
	dh-create --slots 8192 --slot-size 64 "$ch"
	run -0 script -qec "dh-write --lines --progress $ch <'$T/in'" /dev/null
	[[ $output == *"5000 msgs"* ]]
	[[ $output == *"fill"* && $output == *"lag"* ]]
	run -0 sh -c "dh-read --from oldest --lines '$ch' | wc -l"
	assert_output 5000
}

@test "--key: dh-write --create makes a keyed channel; only key holders read or write it" {
	dh-create --keygen "$T/key"
	printf 'a\nb\n' | dh-write --create --key "$T/key" --lines "$ch"
	run -0 --separate-stderr dh-read --from oldest --key "$T/key" --lines "$ch"
	assert_output "$(printf 'a\nb')"
	run -1 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_equal "$stderr" "dh-read: $ch: channel is keyed: a key is required"
	run -1 --separate-stderr dh-write --lines "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: $ch: channel is keyed: a key is required"
	run -2 --separate-stderr dh-write --create --key "$T/key" --checksum blake2b "$ch-2" <"$EMPTY"
	assert_equal "${#stderr_lines[@]}" 1
	[ ! -e "$(dh_shm "$ch-2")" ]
}

@test "dh-write --create refuses what dh-create refuses: --evict-after 0, --key with --checksum" {
	local ch key
	ch=$(dh_name)
	key=$BATS_TEST_TMPDIR/k
	dh-create --keygen "$key"
	run -2 --separate-stderr dh-write --create --policy sync --evict-after 0 "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: --evict-after 0: invalid duration"
	run -2 --separate-stderr dh-write --create --key "$key" --checksum xxh3 "$ch" <"$EMPTY"
	assert_equal "$stderr" "dh-write: --key and --checksum exclude each other: a key selects the keyed MAC"
	[ ! -e "$(dh_shm "$ch")" ]
}
