#!/usr/bin/env bats
# dh-create: creating, replacing and removing channels; bad input; conventions. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
}

# geometry NAME: the stored configuration, one line, as dh-stat reports it.
geometry() {
	dh-stat --json "$1" | jq -r '.channels[0] |
		"\(.slots) \(.slot_size) \(.policy) \(.checksum) \(.max_readers) \(.meta_size) \(.evict_after_ns)"'
}

# refused ARGS...: dh-create ARGS... is a usage error: status 2, nothing on
# stdout, one line "dh-create: ..." on stderr, and no channel $ch.
refused() {
	run -2 --separate-stderr dh-create "$@"
	assert_output ''
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "expected one line on stderr, got: $stderr"
	[[ $stderr == "dh-create: "* ]] || fail "stderr lacks the prefix: $stderr"
	[ ! -e "$shm" ] || fail "dh-create $* created $shm"
}

usage_line() { # the first usage form, with its wrapped lines
	dh-create --help | awk 'NR > 1 && ($1 == "dh-create" || NF == 0) { exit } { print }'
}

# --- creating ---------------------------------------------------------------

@test "creates the channel silently and it carries data from dh-write to dh-read" {
	run -0 --separate-stderr dh-create "$ch"
	assert_output ''
	assert_equal "$stderr" ''
	[ -f "$shm" ]
	[ "$(stat -c %s "$shm")" -gt $((64 * 65536)) ]
	echo hello | dh-write --lines "$ch"
	run -0 --separate-stderr dh-read --from oldest --lines "$ch"
	assert_output hello
	assert_equal "$stderr" ''
}

@test "defaults: 64 slots of 64K, sync, xxh3, 16 readers, no metadata zone, mode 0600" {
	dh-create "$ch"
	run -0 geometry "$ch"
	assert_output "64 65536 sync xxh3 16 0 0"
	run -0 stat -c %a "$shm"
	assert_output 600
	# the same segment as the one the explicit geometry gives
	dh-create --slots 64 --slot-size 64K --max-readers 16 --meta-size 0 "$ch-x"
	assert_equal "$(stat -c %s "$shm")" "$(stat -c %s "$(dh_shm "$ch-x")")"
}

@test "every geometry option, policy and checksum is stored" {
	local p c
	for p in latest ring sync queue; do
		for c in none xxh3 blake2b; do
			dh-create --slots 8 --slot-size 1K --policy "$p" --checksum "$c" \
				--meta-size 4K --max-readers 3 "$ch-$p-$c"
			run -0 geometry "$ch-$p-$c"
			assert_output "8 1024 $p $c 3 4096 0"
		done
	done
}

@test "sizes take K and M suffixes (G: see the slot size refusals); limits are reachable" {
	dh-create --slots 2 --slot-size 2M --meta-size 1k "$ch"
	run -0 geometry "$ch"
	assert_output "2 2097152 sync xxh3 16 1024 0"
	dh-create --slots 1 --slot-size 1 --max-readers 256 "$ch-max"
	run -0 geometry "$ch-max"
	assert_output "1 1 sync xxh3 256 0 0"
}

@test "--evict-after is stored in nanoseconds; inf means never" {
	dh-create --policy sync --evict-after 1500ms "$ch"
	run -0 geometry "$ch"
	assert_output "64 65536 sync xxh3 16 0 1500000000"
	dh-create --evict-after 2m "$ch-m"
	run -0 geometry "$ch-m"
	assert_output "64 65536 sync xxh3 16 0 120000000000"
	dh-create --evict-after inf "$ch-inf"
	run -0 geometry "$ch-inf"
	assert_output "64 65536 sync xxh3 16 0 0"
}

@test "a name of 200 characters is accepted" {
	local long
	long=$(dh_name "$(printf 'x%.0s' {1..200})")
	long=${long:0:200}
	run -0 --separate-stderr dh-create "$long"
	[ -f "$(dh_shm "$long")" ]
}

# --- permissions --------------------------------------------------------------

@test "mode is 0600 even under umask 000" {
	umask 000
	dh-create "$ch"
	run -0 stat -c %a "$shm"
	assert_output 600
}

@test "--mode 0606 gives exactly 0606, whatever the umask" {
	dh-create --mode 0606 "$ch"
	run -0 stat -c %a "$shm"
	assert_output 606
	umask 077
	dh-create --mode 660 "$ch-b"
	run -0 stat -c %a "$(dh_shm "$ch-b")"
	assert_output 660
}

# --- existing channels ------------------------------------------------------

@test "an existing channel is refused with exit 1 and left untouched" {
	dh-create --slots 4 "$ch"
	ino=$(stat -c %i "$shm")
	run -1 --separate-stderr dh-create --slots 8 "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-create: $ch: channel exists (--force replaces it, --remove removes it)"
	assert_equal "$(stat -c %i "$shm")" "$ino"
	run -0 geometry "$ch"
	assert_output "4 65536 sync xxh3 16 0 0"
}

@test "--force replaces an existing channel nobody uses" {
	dh-create --slots 4 "$ch"
	run -0 --separate-stderr dh-create --force --slots 8 --policy ring "$ch"
	assert_output ''
	assert_equal "$stderr" ''
	run -0 geometry "$ch"
	assert_output "8 65536 ring xxh3 16 0 0"
}

@test "--force on a missing channel just creates it" {
	run -0 --separate-stderr dh-create --force "$ch"
	[ -f "$shm" ]
}

@test "--force is refused while a writer is alive, naming its pid" {
	dh-create --slots 4 "$ch"
	ino=$(stat -c %i "$shm")
	dh_feed "$ch" --lines
	run -1 --separate-stderr dh-create --force --slots 8 "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-create: $ch: channel in use by pid $DH_FEED_PID"
	assert_equal "$(stat -c %i "$shm")" "$ino"
	echo still-here >&"$DH_FEED"
	dh_feed_end
	run -0 dh-read --from oldest --lines "$ch"
	assert_output still-here
}

@test "--force is refused while a reader is alive" {
	dh-create "$ch"
	dh_bg dh-read --follow "$ch"
	dh_await dh_locked "$ch"
	run -1 --separate-stderr dh-create --force "$ch"
	assert_equal "$stderr" "dh-create: $ch: channel in use by pid $DH_BG_PID"
	[ -f "$shm" ]
}

# --- removing ---------------------------------------------------------------

@test "--remove removes channels silently" {
	dh-create "$ch"
	dh-create "$ch-2"
	run -0 --separate-stderr dh-create --remove "$ch" "$ch-2"
	assert_output ''
	assert_equal "$stderr" ''
	[ ! -e "$shm" ]
	[ ! -e "$(dh_shm "$ch-2")" ]
}

@test "--remove of a missing channel fails with exit 1 and still removes the others" {
	dh-create "$ch-2"
	run -1 --separate-stderr dh-create --remove "$ch" "$ch-2"
	assert_output ''
	assert_equal "$stderr" "dh-create: $ch: no such channel"
	[ ! -e "$(dh_shm "$ch-2")" ]
}

@test "--remove is refused while a participant is alive; --remove --force removes it" {
	dh-create "$ch"
	dh_feed "$ch"
	run -1 --separate-stderr dh-create --remove "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-create: $ch: channel in use by pid $DH_FEED_PID (--force removes it anyway)"
	[ -f "$shm" ]
	run -0 --separate-stderr dh-create --remove --force "$ch"
	assert_equal "$stderr" ''
	[ ! -e "$shm" ]
}

@test "--remove of a dead participant's channel needs no --force" {
	dh-create "$ch"
	dh_feed "$ch"
	kill -KILL "$DH_FEED_PID"
	wait "$DH_FEED_PID" || true
	if dh_locked "$ch"; then fail "the dead writer's lock is still held"; fi
	run -0 --separate-stderr dh-create --remove "$ch"
	[ ! -e "$shm" ]
}

# --- bad input: exit 2, one line, nothing created -----------------------------

@test "bad names are refused" {
	refused ""
	assert_equal "$stderr" "dh-create: '': invalid channel name (use A-Z a-z 0-9 . _ -, no leading dot)"
	refused ".$ch"
	refused "$ch/x"
	refused "$ch x"
	refused "$ch:x"
	refused "$ch"$'\n'"x"
	assert_equal "$stderr" "dh-create: $ch\\x0ax: invalid channel name (use A-Z a-z 0-9 . _ -, no leading dot)"
	refused "$ch"$'\xc3\xa9'
	long=$(dh_name "$(printf 'x%.0s' {1..201})")
	refused "${long:0:201}"
	[[ $stderr == *": channel name longer than 200 characters" ]]
	refused --remove "$ch/x"
}

@test "bad slot counts are refused: 0, above 16777216, not a number" {
	refused --slots 0 "$ch"
	assert_equal "$stderr" "dh-create: --slots 0: out of range (1..16777216)"
	refused --slots 16777217 "$ch"
	refused --slots 99999999999999999999999 "$ch"
	refused --slots abc "$ch"
	assert_equal "$stderr" "dh-create: --slots abc: invalid number"
	refused --slots -1 "$ch"
	refused --slots +1 "$ch"
	refused --slots ' 1' "$ch"
	refused --slots 1K "$ch"
	refused --slots '' "$ch"
}

@test "bad slot sizes are refused: 0, above 1G, bad suffix" {
	refused --slot-size 0 "$ch"
	assert_equal "$stderr" "dh-create: --slot-size 0: out of range (1..1073741824)"
	refused --slot-size 1073741825 "$ch"
	refused --slot-size 1025M "$ch"
	refused --slot-size 2G "$ch"
	assert_equal "$stderr" "dh-create: --slot-size 2G: out of range (1..1073741824)"
	refused --slot-size 1g1 "$ch"
	refused --slot-size 4Q "$ch"
	assert_equal "$stderr" "dh-create: --slot-size 4Q: invalid size"
	refused --slot-size 4KB "$ch"
	refused --slot-size -4K "$ch"
	refused --slot-size K "$ch"
}

@test "a geometry whose segment size overflows is refused" {
	refused --slots 16777216 --slot-size 1G "$ch"
	assert_equal "$stderr" "dh-create: $ch: 16777216 slots of 1073741824 bytes: segment too large"
}

@test "bad reader counts and metadata sizes are refused" {
	refused --max-readers 0 "$ch"
	refused --max-readers 257 "$ch"
	assert_equal "$stderr" "dh-create: --max-readers 257: out of range (1..256)"
	refused --meta-size 65M "$ch"
	refused --meta-size x "$ch"
}

@test "unknown policies and checksums are refused" {
	refused --policy fifo "$ch"
	assert_equal "$stderr" "dh-create: --policy fifo: unknown policy (latest, ring, sync, queue)"
	refused --policy SYNC "$ch"
	refused --policy '' "$ch"
	refused --checksum md5 "$ch"
	assert_equal "$stderr" "dh-create: --checksum md5: unknown checksum (none, xxh3, blake2b)"
	refused --checksum blake2b-mac "$ch"
}

@test "bad modes are refused" {
	refused --mode 0888 "$ch"
	assert_equal "$stderr" "dh-create: --mode 0888: invalid mode (octal, 0600 to 0777, owner rw)"
	refused --mode 1777 "$ch"
	refused --mode 4600 "$ch"
	refused --mode 0400 "$ch"
	refused --mode 0066 "$ch"
	refused --mode rw "$ch"
	refused --mode '' "$ch"
	refused --mode -0600 "$ch"
}

@test "bad --evict-after values, and --evict-after without --policy sync, are refused" {
	refused --evict-after 10x "$ch"
	assert_equal "$stderr" "dh-create: --evict-after 10x: invalid duration"
	refused --evict-after 0 "$ch"
	refused --evict-after -1s "$ch"
	refused --evict-after 1h "$ch"
	refused --policy ring --evict-after 1s "$ch"
	assert_equal "$stderr" "dh-create: --evict-after: only for --policy sync"
}

@test "--keygen makes a 0600 key file once; --key makes a keyed channel and refuses a bad key file" {
	local k=$BATS_TEST_TMPDIR/key
	run -0 --separate-stderr dh-create --keygen "$k"
	assert_output ''
	[ "$(stat -c '%a %s' "$k")" = "600 32" ]
	run -1 --separate-stderr dh-create --keygen "$k"
	assert_equal "$stderr" "dh-create: $k: File exists"
	refused --key "$k" --checksum none "$ch"
	assert_equal "$stderr" "dh-create: --key and --checksum exclude each other: a key selects the keyed MAC"
	run -0 --separate-stderr dh-create --key "$k" "$ch"
	[ "$(dh-diagnose --json "$ch" | jq -r '.checksum, .keyed')" = $'blake2b-mac\ntrue' ]
	cp "$k" "$k.644" && chmod 644 "$k.644"
	run -1 --separate-stderr dh-create --key "$k.644" "$ch-2"
	assert_equal "$stderr" "dh-create: $k.644: key file must be a regular file owned by you with mode 0600 or stricter"
	[ ! -e "$(dh_shm "$ch-2")" ]
}

@test "--schema stores the canonical form; slot size follows the record; bad specs exit 2" {
	refused --schema 'ts:u64;;' "$ch"
	assert_equal "$stderr" "dh-create: --schema: syntax error at byte 7 of the spec, at ';'"
	refused --slot-size 8 --schema 'ts:u64;temp:f32' "$ch"
	assert_equal "$stderr" "dh-create: --schema: a record of 16 bytes does not fit a slot of 8"
	run -0 --separate-stderr dh-create --schema 'ts:u64; temp:f32 ;name:char[5]' "$ch"
	run -0 sh -c "dh-diagnose --json '$ch' | jq -r '.schema, .slot_size'"
	assert_line --index 0 'ts:u64;temp:f32;name:char[5];_pad0:pad[7]'
	assert_line --index 1 24
}

# --- command-line conventions -------------------------------------------------

@test "--help prints the usage line and every option to stdout, exit 0" {
	run -0 --separate-stderr dh-create --help
	assert_equal "$stderr" ''
	[[ ${lines[0]} == "usage: dh-create [--slots N] "* ]]
	assert_equal "$(dh_usage_forms <<<"$output")" "$(printf '%s\n' \
		"dh-create [--slots N] [--slot-size SIZE] [--policy POLICY] [--checksum KIND] [--key FILE] [--schema SPEC] [--meta-size SIZE] [--max-readers N] [--mode OCTAL] [--evict-after DUR] [--force] NAME" \
		"dh-create --remove [--force] NAME ..." \
		"dh-create --keygen FILE")"
	local o
	for o in --slots --slot-size --policy --checksum --key --schema --meta-size --max-readers \
		--mode --evict-after --force --remove --keygen --help --version; do
		assert_output --partial -- "$o"
	done
	run -0 --separate-stderr dh-create -h
	[[ $output == "$(usage_line)"$'\n'* ]] || fail "-h does not start with the usage: $output"
}

@test "-V/--version prints the version from config.mk" {
	local v
	v=$(sed -n 's/^VERSION *= *//p' "$DH_TOP/config.mk")
	run -0 --separate-stderr dh-create --version
	assert_output "dh-create $v"
	assert_equal "$stderr" ''
	run -0 --separate-stderr dh-create -V
	assert_output "dh-create $v"
}

@test "unknown options and missing operands: a reason and one usage line on stderr, exit 2" {
	local u
	u=$(usage_line)
	run -2 --separate-stderr dh-create --bogus "$ch"
	assert_output ''
	assert_equal "$stderr" "dh-create: unknown option --bogus"$'\n'"$u"
	run -2 --separate-stderr dh-create -x "$ch"
	assert_equal "$stderr" "dh-create: unknown option -x"$'\n'"$u"
	run -2 --separate-stderr dh-create --slots
	assert_equal "$stderr" "dh-create: option --slots needs an argument"$'\n'"$u"
	run -2 --separate-stderr dh-create
	assert_equal "$stderr" "dh-create: missing channel name"$'\n'"$u"
	run -2 --separate-stderr dh-create "$ch" "$ch-2"
	assert_equal "$stderr" "dh-create: one channel name expected, got 2"$'\n'"$u"
	run -2 --separate-stderr dh-create --remove
	assert_equal "$stderr" "dh-create: missing channel name"$'\n'"usage: dh-create --remove [--force] NAME ..."
	run -2 --separate-stderr dh-create --remove --slots 4 "$ch"
	assert_equal "$stderr" "dh-create: --remove takes no creation options"$'\n'"usage: dh-create --remove [--force] NAME ..."
	[ ! -e "$shm" ] && [ ! -e "$(dh_shm "$ch-2")" ]
}

@test "the usage lines equal the man page SYNOPSIS" {
	run -0 dh_man_synopsis "$DH_TOP/man/dh-create.1"
	assert_equal "$output" "$(dh-create --help | dh_usage_forms)"
}

@test "a failed write to stdout is reported: --help >/dev/full exits 1" {
	run -1 --separate-stderr sh -c 'dh-create --help >/dev/full'
	assert_equal "$stderr" "dh-create: write error: No space left on device"
	run -1 --separate-stderr sh -c 'dh-create --version >/dev/full'
}
