#!/usr/bin/env bats
# truncated-mapping.bats: a segment truncated under an inspecting command
# (SIGBUS on the next access) is reported for that channel, never a crash:
# the one SIGBUS guard of cmd/cli.c in its recovering form. See LICENSE.

load test_helper

setup_file() {
	# an instrumented binary needs its sanitizer runtime first: no shim then
	[ -n "${DH_SAN:-}" ] && return 0
	${CC:-cc} -shared -fPIC -O1 -o "$BATS_FILE_TMPDIR/truncmap.so" "$BATS_TEST_DIRNAME/truncmap.c" -ldl
}

setup() {
	dh_setup
	[ -z "${DH_SAN:-}" ] || skip "LD_PRELOAD shim under a sanitizer (DH_SAN=$DH_SAN)"
	ch=$(dh_name)
	dh-create --slots 4 --slot-size 64 "$ch"
	printf 'hi\n' | dh-write --lines "$ch"
	shim=$BATS_FILE_TMPDIR/truncmap.so
}

teardown() {
	dh_teardown
}

@test "dh-stat NAME: the truncated channel is reported corrupt (exit 1), no core" {
	run -1 --separate-stderr env LD_PRELOAD="$shim" dh-stat "$ch"
	assert_equal "$stderr" "dh-stat: $ch: corrupt segment"
	[ "$(stat -c %s "$(dh_shm "$ch")")" = 0 ]   # the shim did truncate it
}

@test "dh-stat --json NAME: the truncated channel is ok:false with the reason" {
	run -1 --separate-stderr env LD_PRELOAD="$shim" dh-stat --json "$ch"
	[ "$(jq -c --arg ch "$ch" '.channels[0] | [.channel == $ch, .ok, .error]' <<<"$output")" = \
		'[true,false,"corrupt segment"]' ]
}

@test "dh-validate: truncated while being checked is a corrupt header (exit 1)" {
	run -1 --separate-stderr env LD_PRELOAD="$shim" dh-validate "$ch"
	assert_output "$ch: corrupt header: segment truncated while being checked; no repair is provably safe"
}

@test "dh-diagnose: truncated while being read is one line and exit 1" {
	run -1 --separate-stderr env LD_PRELOAD="$shim" dh-diagnose "$ch"
	assert_output ""
	assert_equal "$stderr" "dh-diagnose: $ch: segment truncated while being read"
}
