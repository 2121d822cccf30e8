#!/usr/bin/env bats
# --progress of dh-read and dh-write: live on a terminal, log lines elsewhere. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
}

# A log line: "PROG: NAME: [done ]ELAPSEDs MSGS msgs BYTES bytes R msg/s R bytes/s [fill F] lag L"
num='[0-9]+(\.[0-9])?'
log_re() { # PROG MSGS [done]
	local fill=
	[ "$1" = dh-write ] && fill=' fill ([0-9]+%|-)'
	printf '^%s: %s: %s%ss %s msgs [0-9]+ bytes %s msg/s %s bytes/s%s lag ([0-9]+|-)$' \
		"$1" "$ch" "${3:+done }" "$num" "$2" "$num" "$num" "$fill"
}

status_of() {
	st=0
	wait "$1" || st=$?
}

has_lines() {
	[ -e "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}

@test "dh-read --progress off a terminal: a line per interval while it waits, then the final tally" {
	dh-create "$ch"
	dh_bg sh -c 'exec dh-read --progress --progress-interval 100ms --lines "$1" >"$2" 2>"$3"' \
		sh "$ch" "$T/out" "$T/err"
	reader=$DH_BG_PID
	# blocked waiting for messages, it still reports, once per interval
	dh_await has_lines "$T/err" 3
	run -0 head -n3 "$T/err"
	for i in 0 1 2; do
		[[ ${lines[$i]} =~ $(log_re dh-read 0) ]] || fail "line $i: ${lines[$i]}"
	done
	seq 1 5 | dh-write --lines "$ch"
	dh_await eval '! kill -0 $reader 2>/dev/null'
	status_of "$reader"
	assert_equal "$st" 0
	run -0 tail -n1 "$T/err"
	assert_output --regexp "$(log_re dh-read 5 done)"
	assert_output --partial " 5 msgs 5 bytes "   # payload bytes, as dh-write counts them
	assert_output --regexp ' lag 0$'
	# elapsed time grows from line to line
	run -0 awk '{ t = $3; if ($3 == "done") t = $4; sub(/s$/, "", t); if (t + 0 < last) bad = 1; last = t + 0 }
		END { exit bad }' "$T/err"
}

@test "dh-read --progress: its own lag" {
	dh-create --slots 1024 "$ch"
	seq 1 1000 | dh-write --lines --no-eos "$ch"
	run -0 --separate-stderr dh-read --from oldest --count 400 --lines --progress "$ch"
	assert_equal "${#lines[@]}" 400
	[[ $stderr =~ $(log_re dh-read 400 done) ]] || fail "$stderr"
	[[ $stderr == *" lag 600" ]] || fail "$stderr"
}

@test "dh-write --progress: fill and lag of the slowest reader" {
	dh-create --slots 64 "$ch"
	dh_bg sh -c 'exec dh-read --lines "$1" >/dev/null' sh "$ch"
	reader=$DH_BG_PID
	dh_await eval '[ "$(dh-stat --json "$ch" | jq ".channels[0].readers_alive")" = 1 ]'
	kill -STOP "$reader"
	seq 1 16 | dh-write --lines --no-eos --progress=log "$ch" 2>"$T/err"
	run -0 tail -n1 "$T/err"
	assert_output --regexp "$(log_re dh-write 16 done)"
	[[ $output == *" fill 25% lag 16" ]] || fail "$output"
}

@test "--progress=log on a terminal: plain lines; --progress there: a line redrawn in place" {
	command -v script >/dev/null || skip "script(1) not installed"
	dh-create --slots 8192 --slot-size 64 "$ch"
	seq 1 3000 >"$T/in"
	run -0 script -qec "dh-write --lines --no-eos --progress=log '$ch' <'$T/in'" /dev/null
	[[ $output != *$'\033'* ]] || fail "escapes in a log: $(cat -v <<<"$output")"
	[[ $(tr -d '\r' <<<"$output") =~ $(log_re dh-write 3000 done) ]] || fail "$output"
	run -0 script -qec "dh-read --from oldest --count 3000 --progress '$ch' >/dev/null" /dev/null
	[[ $output == $'\r'* ]] || fail "not redrawn in place: $(cat -v <<<"$output")"
	[[ $output == *"3000 msgs"*"msg/s"*"lag 0"* ]] || fail "$(cat -v <<<"$output")"
	[[ $output == *$'\033[K'* ]] || fail "line not cleared: $(cat -v <<<"$output")"
}

@test "a signal still gets the final tally; reporting never changes the exit status" {
	dh-create "$ch"
	dh_bg sh -c 'exec dh-read --progress=log --progress-interval 50ms "$1" >/dev/null 2>"$2"' sh "$ch" "$T/err"
	reader=$DH_BG_PID
	dh_await has_lines "$T/err" 1
	kill -INT "$reader"
	status_of "$reader"
	assert_equal "$st" 130
	run -0 tail -n1 "$T/err"
	assert_output --regexp "$(log_re dh-read 0 done)"
	# stderr closed: the copy goes on as before
	run -0 sh -c "seq 1 10 | dh-write --lines --progress '$ch' 2>&-"
	run -0 sh -c "dh-read --from oldest --lines --no-wait --progress '$ch' 2>/dev/full | wc -l"
	assert_output 10
}

@test "usage: --progress=auto|log, --progress-interval DUR of 10ms or more, for both" {
	for cmd in dh-read dh-write; do
		run -2 --separate-stderr $cmd --progress=bogus "$ch"
		assert_equal "${stderr_lines[0]}" "$cmd: --progress=bogus: auto or log"
		[[ $(dh_usage_forms <<<"$stderr") == "$cmd "*"[--progress[=auto|log]] [--progress-interval DUR]"* ]]
		for d in 0 5ms x -1s; do
			run -2 --separate-stderr $cmd --progress-interval "$d" "$ch"
			assert_equal "${stderr_lines[0]}" "$cmd: --progress-interval $d: a duration of at least 10ms"
		done
	done
}
