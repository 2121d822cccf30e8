#!/usr/bin/env bats
# Small things a careful user trips on (issue 17): help and usage within 80
# columns, '-' for standard input, error messages that say what to do, and
# dh(7) pointing at every page. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
}

@test "--help of every command fits 80 columns, usage forms wrapped under the command name" {
	local c n
	for c in "$DH_TOP/$DH_BUILD"/bin/dh-*; do
		n=${c##*/}
		run -0 "$c" --help
		run -0 awk -v c="$n" 'length($0) > 80 { print c ": " length($0) ": " $0 }' <<<"$output"
		assert_output ""
		# continuation lines of a form line up past "usage: NAME "
		run -0 awk -v w=$((7 + ${#n} + 1)) '
			NR == 1 { next } NF == 0 { exit }
			$0 !~ "^       " { print "not indented: " $0 }
			$1 != c && match($0, /^ */) && RLENGTH != w { print "continuation at " RLENGTH ": " $0 }' \
			c="$n" <<<"$("$c" --help)"
		assert_output ""
	done
	# a usage error wraps the same way
	run -2 --separate-stderr dh-write --bogus "$ch"
	assert_equal "${stderr_lines[0]}" "dh-write: unknown option --bogus"
	[ "${#stderr_lines[@]}" -gt 3 ] || fail "the usage of dh-write was not wrapped: $stderr"
	run -0 awk 'length($0) > 80' <<<"$stderr"
	assert_output ""
	assert_equal "$(dh_usage_forms <<<"$stderr")" "$(dh_man_synopsis "$DH_TOP/man/dh-write.1")"
}

@test "dh-write --meta - reads the metadata from standard input and writes no data" {
	dh-create --meta-size 64 "$ch"
	printf 'old' | dh-write --lines --no-eos "$ch"
	run -0 --separate-stderr dh-write --meta - "$ch" <<<'{"unit":"C"}'
	assert_equal "$stderr" ""
	run -0 dh-read --meta "$ch"
	assert_output '{"unit":"C"}'
	# standard input was the metadata: no message, no end-of-stream
	dh_assert_committed "$ch" 1
	dh_assert_channel "$ch" '.end_of_stream == false'
	# a file named "-" is still reachable as ./-
	printf 'from a file' >"$T/-"
	(cd "$T" && dh-write --meta ./- --no-eos "$ch" </dev/null)
	run -0 dh-read --meta "$ch"
	assert_output 'from a file'
}

@test "error messages say what to do: exists, no such channel, schema token, text limit" {
	dh-create "$ch"
	run -1 --separate-stderr dh-create "$ch"
	assert_equal "$stderr" "dh-create: $ch: channel exists (--force replaces it, --remove removes it)"
	run -1 --separate-stderr dh-read "$ch-none"
	assert_equal "$stderr" "dh-read: $ch-none: no such channel (--wait-channel DUR waits for it)"
	run -3 --separate-stderr dh-read --wait-channel 50ms "$ch-none"
	assert_equal "$stderr" "dh-read: $ch-none: channel did not appear in time"
	run -1 --separate-stderr dh-write "$ch-none" </dev/null
	assert_equal "$stderr" "dh-write: $ch-none: no such channel (--create creates it)"
	# dh-stat words it like the others
	for c in dh-stat dh-diagnose dh-validate; do
		run --separate-stderr "$c" "$ch-none"
		[ "$status" -ne 0 ] || fail "$c succeeded on a missing channel"
		assert_equal "$stderr" "$c: $ch-none: no such channel"
	done
	run -2 --separate-stderr dh-create --schema 'ts:u64;temp:f33;n:u8' "$ch-s"
	assert_equal "${stderr_lines[0]}" "dh-create: --schema: syntax error at byte 12 of the spec, at 'f33'"
	run -2 --separate-stderr dh-create --schema 'ts:u64;' "$ch-s"
	assert_equal "${stderr_lines[0]}" "dh-create: --schema: syntax error at byte 7 of the spec (at its end)"
	dh-create --schema 'id:u8;name:char[5]' "$ch-s"
	run -1 --separate-stderr dh-write --csv "$ch-s" <<<'1,abcdef'
	assert_equal "$stderr" "dh-write: $ch-s: line 1, column 2 (name): text too long (at most 5 bytes)"
	run -0 dh-write --csv "$ch-s" <<<'1,abcde'
}

@test "dh(7) SEE ALSO lists every page of the project" {
	see=$(mandoc -Tascii "$DH_TOP/man/dh.7" | sed 's/.\x08//g' | awk '/^SEE ALSO/ { on = 1; next } on && /^[A-Z]/ { exit } on')
	for p in "$DH_TOP"/man/*.[1-8]; do
		b=${p##*/}
		[ "$b" = dh.7 ] && continue
		[[ "$see" == *"${b%.*}(${b##*.})"* ]] || fail "dh(7) SEE ALSO lacks ${b%.*}(${b##*.}): $see"
	done
}
