#!/usr/bin/env bats
# make bench's iceoryx peer (issue 14): dh-bench measures it with an
# iox-roudi of its own, or skips it with a one-line note, and leaves no
# iox-roudi process and no iceoryx file behind, also when interrupted.
# A few seconds: one case, --quick. See LICENSE.

load test_helper

setup() {
	dh_setup
	BENCH=$DH_TOP/$DH_BUILD/bench/dh-bench
	[ -x "$BENCH" ] || skip "dh-bench not built (make helpers builds it, not under a sanitizer)"
	OUT=$BATS_TEST_TMPDIR/out
	ERR=$BATS_TEST_TMPDIR/err
	# the files an iceoryx run makes: RouDi's, and one socket per process
	ioxfiles_before=$(iox_files)
}

teardown() {
	[ -n "${hp:-}" ] && kill -KILL "$hp" 2>/dev/null
	dh_teardown
}

iox_files() {
	ls -d /dev/shm/iceoryx_mgmt /tmp/roudi /tmp/roudi.lock /tmp/iox-unique-roudi.lock \
		/tmp/dhbench-[0-9]*-iox-* /tmp/dhbench-[0-9]*-roudi.* 2>/dev/null | sort
}

# The peer can run here: dh-bench built with the C binding, iox-roudi
# installed, and no other RouDi (iceoryx allows one per machine).
iox_possible() {
	ls /usr/include/iceoryx/v*/iceoryx_binding_c/api.h >/dev/null 2>&1 &&
		command -v iox-roudi >/dev/null && [ ! -e /tmp/roudi ]
}

# assert_clean ROUDI_PID: that RouDi is gone and no iceoryx file is new.
assert_clean() {
	if [ -n "$1" ]; then
		run kill -0 "$1"
		assert_failure
	fi
	assert_equal "$(iox_files)" "$ioxfiles_before"
}

writer_registered() {
	[ -n "$(roudi_pid)" ] && ls /tmp/dhbench-[0-9]*-iox-pub >/dev/null 2>&1
}

roudi_pid() {
	sed -n 's/.*iceoryx: iox-roudi pid \([0-9]*\) started.*/\1/p' "$ERR" | head -1
}

@test "dh-bench measures iceoryx with its own iox-roudi and leaves nothing behind" {
	"$BENCH" --quick --only tput.64.iox -v --json "$BATS_TEST_TMPDIR/b.json" >"$OUT" 2>"$ERR"
	if ! iox_possible; then
		# one line says why, and nothing else claims a figure
		run grep -c 'ICEORYX: iceoryx skipped: ' "$OUT"
		assert_output 1
		run jq -r '.iceoryx.note' "$BATS_TEST_TMPDIR/b.json"
		assert_output --partial 'iceoryx skipped'
		skip "iceoryx peer not available here: $(grep 'ICEORYX:' "$OUT")"
	fi
	pid=$(roudi_pid)
	[ -n "$pid" ]
	# measured in every repetition, with messages counted and checked
	run grep -E '^  64B +iceoryx \(waitset, lossless\) +[0-9.]+ [kM]? ' "$OUT"
	assert_success
	run jq -r '.results[] | select(.key == "tput.64.iox") | "\(.ok) \(.reps | length)"' \
		"$BATS_TEST_TMPDIR/b.json"
	assert_output "true 5"
	assert_clean "$pid"
}

@test "dh-bench interrupted mid-case stops its iox-roudi and removes iceoryx's files" {
	iox_possible || skip "iceoryx peer not available here"
	# a full-length case, interrupted once an iceoryx writer is registered
	"$BENCH" --only tput.65536.iox -v >"$OUT" 2>"$ERR" 3>&- &
	hp=$!
	dh_await -t 20 writer_registered
	pid=$(roudi_pid)
	kill -TERM "$hp"
	st=0
	wait "$hp" || st=$?
	hp=
	assert_equal "$st" 143   # died of the signal, re-raised after cleaning up
	assert_clean "$pid"
}
