# rw_helper.bash: helpers of the dh-write/dh-read suites (after test_helper). See LICENSE.
# shellcheck disable=SC2016,SC2034  # sh -c scripts; RPID and st are read by the suites

# dh_readers NAME: number of readers attached and alive (their liveness
# locks on bytes 1.. of the segment; byte 0 is the writer's).
dh_readers() {
	local f key
	f=$(dh_shm "$1")
	[ -e "$f" ] || { echo 0; return; }
	key=$(stat -c '%Hd %Ld %i' "$f" | awk '{ printf "%02x:%02x:%s", $1, $2, $3 }')
	awk -v k="$key" '$2 != "->" && $6 == k && $7 != 0 { n++ } END { print n + 0 }' /proc/locks
}

# dh_writer_alive NAME: true while a writer holds byte 0 of the segment.
dh_writer_alive() {
	local f key
	f=$(dh_shm "$1")
	[ -e "$f" ] || return 1
	key=$(stat -c '%Hd %Ld %i' "$f" | awk '{ printf "%02x:%02x:%s", $1, $2, $3 }')
	awk -v k="$key" '$2 != "->" && $6 == k && $7 == 0 { f = 1 } END { exit !f }' /proc/locks
}

# readers_at_least NAME N
readers_at_least() {
	[ "$(dh_readers "$1")" -ge "$2" ]
}

# reader_bg TAG ARGS...: `dh-read ARGS...` in the background, stdout to
# $BATS_TEST_TMPDIR/TAG.out and stderr to TAG.err; its pid in $RPID.
reader_bg() {
	local tag=$1
	shift
	dh_bg sh -c 'o=$1; shift; exec dh-read "$@" >"$o.out" 2>"$o.err"' sh "$BATS_TEST_TMPDIR/$tag" "$@"
	RPID=$DH_BG_PID
}

# status_of PID: wait (at most 30 s) for a background job; its exit
# status in $st.  A job still running then is killed and the test fails.
status_of() {
	local i=0
	while kill -0 "$1" 2>/dev/null && [ "$(proc_state "$1")" != Z ]; do
		i=$((i + 1))
		if [ "$i" -gt 1500 ]; then
			echo "status_of: pid $1 still running after 30 s" >&2
			kill -CONT "$1" 2>/dev/null
			kill -KILL "$1" 2>/dev/null
			st=999
			return 1
		fi
		sleep 0.02
	done
	st=0
	wait "$1" || st=$?
}

# lines_in FILE: number of lines (0 if missing).
lines_in() {
	if [ -e "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

has_lines() { # FILE N
	[ "$(lines_in "$1")" -ge "$2" ]
}

file_has() { # FILE STRING
	[ -e "$1" ] && grep -qF -- "$2" "$1"
}

# proc_state PID: the state letter of /proc/PID/stat (R, S, T, Z...).
proc_state() {
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1
}

# cpu_ticks PID: utime + stime of PID in clock ticks.
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
