#!/usr/bin/env bats
# The bats helper library dh ships (bats/dh.bash, dh(7) BATS HELPERS): each
# wait succeeds when its condition holds and times out, saying what it
# waited for and showing dh-diagnose, when it never does; cleanup runs even
# after a failing test. See LICENSE.

load test_helper

setup() {
	dh_setup
	T=$BATS_TEST_TMPDIR
}

# timed VAR CMD...: run CMD (status in $status, stderr in $stderr), its
# wall time in ms in VAR.
timed() {
	local var=$1 t0
	shift
	t0=$(_dh_now_ms)
	run --separate-stderr "$@"
	printf -v "$var" '%s' $(($(_dh_now_ms) - t0))
}

@test "dh_channel_name: unique per test and tag, under the prefix; dh_temp_channel creates it with options" {
	a=$(dh_channel_name)
	b=$(dh_channel_name x)
	[[ "$a" == "dhtest-bats-lib-$BATS_TEST_NUMBER-$$" ]] || fail "name: $a"
	[ "$b" = "$a-x" ]
	run -0 dh_temp_channel -t q --slots 3 --policy ring
	assert_output "$a-q"
	[ -e "$(dh_shm "$a-q")" ]
	[ "$(dh_channel_field "$a-q" '.slots, .policy' | paste -sd' ')" = "3 ring" ]
	run -1 dh_temp_channel -t q
	assert_output --partial "dh_temp_channel: dh-create  $a-q failed"
}

@test "dh_cleanup removes the test's channels, tagged or not, and leaves others alone" {
	dh_temp_channel >/dev/null
	dh_temp_channel -t one >/dev/null
	other=dhtest-bats-lib-other-$$
	dh-create "$other"
	dh_cleanup
	[ ! -e "$(dh_shm "$(dh_name)")" ] && [ ! -e "$(dh_shm "$(dh_name one)")" ]
	[ -e "$(dh_shm "$other")" ] || fail "dh_cleanup removed another test's channel"
	rm -f "$(dh_shm "$other")"
}

@test "a failing test's channels are removed by dh_cleanup in its teardown" {
	cat >"$T/inner.bats" <<-EOF
	load "$DH_TOP/bats/dh.bash"
	teardown() { dh_cleanup; }
	TEST "creates two channels, then fails" {
		dh_temp_channel >"$T/names"
		dh_temp_channel -t b >>"$T/names"
		dh-write "\$(dh_channel_name)" <<<hello
		false
	}
	EOF
	# (an @test line in this file's heredoc would be taken for one of its own)
	sed -i 's/^TEST /@test /' "$T/inner.bats"
	# a bats of its own: none of this run's BATS_* settings, nor its fds
	run env -i PATH="$PATH" HOME="$HOME" "$BATS_ROOT/bin/bats" --tap "$T/inner.bats" 3>&-
	assert_line "not ok 1 creates two channels, then fails"
	[ "$(wc -l <"$T/names")" -eq 2 ]
	while read -r n; do
		[[ "$n" == dhbats-inner-1-* ]] || fail "default prefix: $n"
		[ ! -e "$(dh_shm "$n")" ] || { rm -f "$(dh_shm "$n")"; fail "left behind: $n"; }
	done <"$T/names"
}

@test "dh_wait_committed: returns once N are committed; times out saying what it saw, with dh-diagnose" {
	ch=$(dh_temp_channel --slots 8)
	dh_feed "$ch" --lines --no-eos
	echo one >&"$DH_FEED"
	run -0 dh_wait_committed "$ch" 1
	echo two >&"$DH_FEED"
	echo three >&"$DH_FEED"
	run -0 dh_wait_committed "$ch" 3
	dh_assert_committed "$ch" 3
	timed ms dh_wait_committed -t 0.3 "$ch" 5
	[ "$status" -eq 1 ]
	[[ "${stderr_lines[0]}" == "dh_wait_committed: $ch: timed out after 0.3s waiting for 5 message(s) committed (now: 3 committed)" ]] ||
		fail "message: ${stderr_lines[0]}"
	[[ "$stderr" == *"# dh-diagnose $ch:"*"verdict"* ]] || fail "no dh-diagnose in: $stderr"
	[ "$ms" -ge 300 ] && [ "$ms" -lt 5000 ] || fail "took ${ms}ms for a 0.3s timeout"
}

@test "dh_wait_readers: returns once a reader is alive; times out with none" {
	ch=$(dh_temp_channel)
	run -1 --separate-stderr dh_wait_readers -t 0.2 "$ch"
	assert_equal "${stderr_lines[0]}" "dh_wait_readers: $ch: timed out after 0.2s waiting for 1 reader(s) alive (now: 0 alive)"
	dh_bg dh-read --follow "$ch"
	dh_wait_readers "$ch" 1
	dh_assert_readers "$ch" 1
	run -1 --separate-stderr dh_wait_readers -t 0.2 "$ch" 2
	assert_equal "${stderr_lines[0]}" "dh_wait_readers: $ch: timed out after 0.2s waiting for 2 reader(s) alive (now: 1 alive)"
}

@test "dh_wait_eos: returns once the writer marks end-of-stream; times out while it does not" {
	ch=$(dh_temp_channel)
	echo x | dh-write --no-eos "$ch"
	run -1 --separate-stderr dh_wait_eos -t 0.2 "$ch"
	assert_equal "${stderr_lines[0]}" "dh_wait_eos: $ch: timed out after 0.2s waiting for end-of-stream (now: end_of_stream false, 1 committed)"
	run -1 dh_assert_eos "$ch"
	dh_bg sh -c 'echo y | dh-write "$1"' sh "$ch"
	dh_wait_eos "$ch"
	dh_assert_eos "$ch"
	dh_assert_committed "$ch" 2
}

@test "dh_wait_healthy: returns on a healthy channel; times out on a dead writer's, naming the problem" {
	ch=$(dh_temp_channel)
	dh_wait_healthy "$ch"
	dh_assert_health "$ch" ok
	dh_feed "$ch" --lines --no-eos
	echo one >&"$DH_FEED"
	dh_wait_committed "$ch" 1
	kill -KILL "$DH_FEED_PID"
	dh_await _dh_gone "$DH_FEED_PID"
	run -1 --separate-stderr dh_wait_healthy -t 0.3 "$ch"
	assert_equal "${stderr_lines[0]}" "dh_wait_healthy: $ch: timed out after 0.3s waiting for health ok (now: health bad [\"writer-dead\"])"
	dh_assert_health "$ch" bad
	run -1 dh_assert_health "$ch" ok
	run -2 dh_assert_health "$ch" fine
}

@test "dh_wait_channel: returns once the channel is created; times out on a missing one" {
	ch=$(dh_name)
	run -1 --separate-stderr dh_wait_channel -t 0.2 "$ch"
	assert_equal "${stderr_lines[0]}" "dh_wait_channel: $ch: timed out after 0.2s waiting for the channel to exist (now: no such channel)"
	# the delay is the point: the wait has to see the channel appear
	dh_bg sh -c 'sleep 0.3; dh-create "$1"' sh "$ch"
	dh_wait_channel "$ch"
	[ -e "$(dh_shm "$ch")" ]
}

@test "dh_wait: polls any command; a bad timeout is a usage error" {
	touch "$T/later"
	run -0 dh_wait test -e "$T/later"
	run -1 --separate-stderr dh_wait -t 0.2 -m "the flag file" test -e "$T/never"
	assert_equal "$stderr" "dh_wait: timed out after 0.2s waiting for: the flag file"
	run -2 --separate-stderr dh_wait -t soon true
	assert_equal "$stderr" "dh.bash: bad timeout: soon (seconds expected)"
	run -2 dh_wait_committed "$(dh_name)" many
}

@test "dh_assert_channel and dh_assert_committed: a failure prints the expression, the JSON and dh-diagnose" {
	ch=$(dh_temp_channel)
	printf 'a\nb\n' | dh-write --lines "$ch"
	dh_assert_channel "$ch" '.committed == 2 and .end_of_stream'
	run -1 --separate-stderr dh_assert_committed "$ch" 3
	assert_equal "${stderr_lines[0]}" "dh_assert_channel: $ch: does not hold: .committed == 3"
	assert_equal "${stderr_lines[1]}" "# dh-stat --json $ch:"
	jq -e '.committed == 2' <<<"${stderr_lines[2]}"
	assert_equal "${stderr_lines[3]}" "# dh-diagnose $ch:"
	[[ "$stderr" == *"#   verdict"* ]] || fail "$stderr"
	run -1 --separate-stderr dh_assert_committed "$(dh_name missing)" 0
	assert_equal "${stderr_lines[1]}" "# dh-stat: $(dh_name missing): no such channel"
}

@test "dh_assert_valid: passes a valid channel, fails on a dead reader with dh-validate's finding" {
	ch=$(dh_temp_channel)
	dh_assert_valid "$ch"
	dh_bg dh-read --follow "$ch"
	dh_wait_readers "$ch"
	kill -KILL "$DH_BG_PID"
	dh_await _dh_gone "$DH_BG_PID"
	run -1 --separate-stderr dh_assert_valid "$ch"
	assert_equal "${stderr_lines[0]}" "dh_assert_valid: $ch: dh-validate found problems:"
	[[ "$stderr" == *reader_dead* ]] || fail "$stderr"
}

@test "the example of dh(7) TESTING WITH BATS runs and passes (./filter being cat)" {
	mandoc -Tascii "$DH_TOP/man/dh.7" | sed 's/.\x08//g' |
		awk '/^TESTING WITH BATS/ { on = 1 } on && /^ +load \/usr\/share/ { ex = 1 }
		     ex { print } ex && /^ +}$/ { exit }' | sed 's/^           //' >"$T/ex.bats"
	grep -q '^@test ' "$T/ex.bats" || fail "no example found: $(cat "$T/ex.bats")"
	sed -i -e "s|^load /usr/share/dh/bats/dh.bash|load $DH_TOP/bats/dh.bash|" -e 's|\./filter|cat|' "$T/ex.bats"
	run env -i PATH="$PATH" HOME="$HOME" "$BATS_ROOT/bin/bats" --tap "$T/ex.bats" 3>&-
	assert_line "ok 1 the filter passes three lines through"
	run -0 sh -c "ls /dev/shm | grep -c '^dh\.dhbats-ex-' || true"
	assert_output 0
}
