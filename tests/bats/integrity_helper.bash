# integrity_helper.bash: helpers of the integrity suites (after test_helper). See LICENSE.
#
# The C helpers live in $DH_TOP/$DH_BUILD/tests/helpers (make check builds
# them): crashpoint stops a writer or reader at an exact protocol point,
# hostile pokes segments and sweeps byte flips in-process.

HELPERS=$DH_TOP/$DH_BUILD/tests/helpers
# Under make asan, a sanitizer report must not pass for "exit 1, problems
# found": make it an abort (status 134), which every check here rejects.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}abort_on_error=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}abort_on_error=1:print_stacktrace=1
CRASH_PIDS=()

crashpoint() { "$HELPERS/crashpoint" "$@"; }
hostile() { "$HELPERS/hostile" "$@"; }

# cp_bg TAG ARGS...: `crashpoint ARGS...` in the background, stdout to
# $BATS_TEST_TMPDIR/TAG.out, stderr to TAG.err; pid in $CPID. Killed
# (SIGKILL: it may be stopped) in teardown.
cp_bg() {
	local tag=$1
	shift
	"$HELPERS/crashpoint" "$@" >"$BATS_TEST_TMPDIR/$tag.out" 2>"$BATS_TEST_TMPDIR/$tag.err" 3>&- &
	CPID=$!
	CRASH_PIDS+=("$CPID")
}

# is_stopped PID: the process is stopped (state T in /proc/PID/stat).
is_stopped() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${st:0:1}" = T ]
}

# await_stopped PID: wait until PID stopped itself at its crash point.
await_stopped() {
	dh_await is_stopped "$1"
}

# kill9 PID: SIGKILL and reap it; its status must be 137.
kill9() {
	local st=0
	kill -KILL "$1"
	wait "$1" || st=$?
	[ "$st" -eq 137 ] || { echo "kill9: $1 exited $st, not 137" >&2; return 1; }
}

# golden FILE: the dh-diagnose --json document on stdin, volatile fields
# (times, ages, pids, the channel name) replaced by placeholders, compared
# with tests/bats/golden/FILE; the diff is shown on failure.
# DH_GOLDEN_UPDATE=1 rewrites the golden file instead.
golden() {
	local want=$DH_TOP/tests/bats/golden/$1 got=$BATS_TEST_TMPDIR/golden.$1
	jq -S --arg ch "$ch" '
		def vol: if . == null then null else "X" end;
		def scrub: if type == "string" then
			gsub($ch; "CHANNEL") | gsub("pid [0-9]+"; "pid PID") |
			gsub("kill -CONT [0-9]+"; "kill -CONT PID") |
			gsub("[0-9]+\\.[0-9]+s"; "N.Ns")
			else . end;
		.created_ns |= vol | .creator_pid |= vol | .creator_uid |= vol |
		.counters.writer_wait_ns |= vol |
		.writer |= (.pid |= vol | .last_active_ns |= vol | .idle_ns |= vol | .age_ns |= vol) |
		.readers |= map(.pid |= vol | .last_active_ns |= vol | .idle_ns |= vol | .age_ns |= vol) |
		.findings |= map(.pid |= vol | .age_ns |= vol) |
		walk(scrub)' >"$got" || return 1
	if [ "${DH_GOLDEN_UPDATE:-0}" = 1 ]; then
		cp "$got" "$want"
		return 0
	fi
	diff -u "$want" "$got" >&2
}

# diag_json NAME: dh-diagnose --json NAME, with its exit status in $dstatus.
diag_json() {
	dstatus=0
	dh-diagnose --json "$@" || dstatus=$?
}

# jdiag NAME FILTER: one value of the dh-diagnose JSON.
jdiag() {
	local name=$1
	shift
	dh-diagnose --json "$name" | jq -r "$@"
}

# shm_sum NAME: sha256 of the segment.
shm_sum() {
	sha256sum <"$(dh_shm "$1")" | cut -d' ' -f1
}

# data_offset NAME SLOT: byte offset of slot SLOT's payload in the segment.
data_offset() {
	dh-diagnose --json "$1" | jq -r --argjson s "$2" '.layout.data_off + $s * .stride'
}

# desc_offset NAME SLOT FIELD: byte offset of a descriptor field of slot SLOT.
desc_offset() {
	local base
	base=$(dh-diagnose --json "$1" | jq -r --argjson s "$2" '.layout.desc_off + $s * 64')
	echo $((base + $(hostile offset "desc.$3")))
}

# has_option CMD OPTION: CMD --help mentions OPTION (options other engineers
# are still adding: tests needing them skip, saying so, until they land).
has_option() {
	"$1" --help 2>/dev/null | grep -qE -- "$2([^a-z-]|\$)"
}

integrity_teardown() {
	local pid
	for pid in "${CRASH_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	CRASH_PIDS=()
	dh_teardown
}

teardown() {
	integrity_teardown
}

# read_bg TAG ARGS...: `dh-read ARGS...` in the background, stdout to
# $BATS_TEST_TMPDIR/TAG.out and stderr to TAG.err; its pid in $RPID.
read_bg() {
	local tag=$1
	shift
	dh_bg sh -c 'o=$1; shift; exec dh-read "$@" >"$o.out" 2>"$o.err"' sh "$BATS_TEST_TMPDIR/$tag" "$@"
	RPID=$DH_BG_PID
}

# exited PID: the child has terminated (zombie or gone), so `wait` won't block.
exited() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	[ "${st:0:1}" = Z ]
}

# status_of PID: wait (bounded) for a background child; its status in $st.
status_of() {
	dh_await exited "$1" || return 1
	st=0
	wait "$1" || st=$?
}

# lines_of FILE N: FILE has at least N lines.
lines_of() {
	[ -e "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}
