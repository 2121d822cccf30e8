# test_helper.bash: shared setup of the dh bats suites. See LICENSE.
#
# Load it at the top of every .bats file with `load test_helper`.  It
#  - loads bats-support and bats-assert;
#  - puts "$DH_TOP/$DH_BUILD/bin" first on PATH (tests/run.sh sets both;
#    the defaults are the repository root and "build");
#  - names channels: `dh_name [TAG]` prints a name unique to this test,
#    dhtest-<file>-<test number>-<pid>[-TAG]; every test channel must come
#    from it so that teardown (and the leak check of tests/run.sh) finds it;
#  - helps with live participants: dh_feed starts a dh-write fed through a
#    FIFO, dh_bg starts any command, dh_locked/dh_await wait for conditions
#    (never for a fixed time);
#  - cleans up in teardown, even when the test failed: background processes
#    started with dh_bg or dh_feed are stopped, and every /dev/shm/dh.<name>
#    of this test is removed.
# A file that needs its own setup or teardown defines it and calls
# dh_setup / dh_teardown from it.
# The channel naming, cleanup, waits and assertions are those of the bats
# library dh ships (bats/dh.bash, installed as /usr/share/dh/bats/dh.bash):
# dh_wait_committed, dh_wait_readers, dh_assert_committed... are available
# here too, with the dhtest- prefix that tests/run.sh's leak check knows.

bats_require_minimum_version 1.7.0
bats_load_library bats-support
bats_load_library bats-assert

DH_TOP=${DH_TOP:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
DH_BUILD=${DH_BUILD:-build}
PATH="$DH_TOP/$DH_BUILD/bin:$PATH"
LC_ALL=C
export DH_TOP DH_BUILD PATH LC_ALL
# The commands register with a broker when these are set: tests that want
# one say so.
unset DH_BROKER DH_CURVE_DIR
DH_CHANNEL_PREFIX=dhtest
load "$DH_TOP/bats/dh.bash"

_dh_file=$(basename "$BATS_TEST_FILENAME" .bats)
_dh_file=${_dh_file//[^A-Za-z0-9._-]/_}
DH_BG_PIDS=()
DH_FEED=

# dh_name [TAG]: a channel name owned by the current test.
# dh_rounds N: the rounds of a repeated-trial loop: N, or N/4 under a
# sanitizer (make asan), where each process start costs ten times as much
# and the loop is there for memory errors, which a quarter of the rounds
# reach on the same paths.  Keeps make asan inside CI's time budget.
dh_rounds() {
	if [ -n "${DH_SAN:-}" ]; then
		echo $(($1 / 4))
	else
		echo "$1"
	fi
}

dh_name() {
	dh_channel_name "$@"
}

# dh_shm NAME: the segment file of channel NAME.
dh_shm() {
	printf '/dev/shm/dh.%s\n' "$1"
}

# dh_man_synopsis PAGE: the SYNOPSIS of a man page, one line per form,
# blanks squeezed (continuation lines joined to their form).
dh_man_synopsis() {
	mandoc -Tascii "$1" | sed 's/.\x08//g' | awk '
		/^[A-Z]/ { insyn = ($0 == "SYNOPSIS"); next }
		!insyn || NF == 0 { next }
		/^     [^ ]/ { if (form != "") print form; form = ""; }
		{ $1 = $1; form = (form == "" ? $0 : form " " $0) }
		END { if (form != "") print form }'
}

# dh_usage_forms: read the output of --help, or a usage error, on stdin;
# print its usage forms, one per line, the wrapped lines of each form
# joined and blanks squeezed (what dh_man_synopsis prints of the page).
dh_usage_forms() {
	awk '
		!on && sub(/^usage: /, "") { on = 1; form = $0; cmd = $1; next }
		!on { next }
		NF == 0 || $0 !~ /^ / { exit }
		$1 == cmd { print form; form = $0; next }
		{ form = form " " $0 }
		END { if (on) print form }' | awk '{ $1 = $1; print }'
}

# dh_locked NAME: true while some process holds a lock on the channel's
# file, i.e. while a participant (writer or reader) is attached and alive.
dh_locked() {
	local f key
	f=$(dh_shm "$1")
	[ -e "$f" ] || return 1
	key=$(stat -c '%Hd %Ld %i' "$f" | awk '{ printf "%02x:%02x:%s", $1, $2, $3 }')
	awk -v k="$key" '{ for (i = 1; i <= NF; i++) if ($i == k) found = 1 }
		END { exit !found }' /proc/locks
}

# dh_await [-t SECONDS] CMD...: poll CMD until it succeeds; fail after
# SECONDS (default 10, generous for loaded CI machines).
dh_await() {
	local limit=10 start
	if [ "$1" = -t ]; then
		limit=$2
		shift 2
	fi
	start=$SECONDS
	until "$@"; do
		if [ $((SECONDS - start)) -ge "$limit" ]; then
			echo "dh_await: timed out after ${limit}s: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

# dh_bg CMD...: run CMD in the background with stdin from /dev/null and
# without the fds bats and dh_feed hold; its pid is left in $DH_BG_PID (for
# wait) and teardown stops it if it is still running.
dh_bg() {
	_dh_spawn /dev/null "$@"
	DH_BG_PID=$!
	DH_BG_PIDS+=("$DH_BG_PID")
}

# _dh_spawn INPUT CMD...: CMD in the background, stdin opened from INPUT by
# the child (opening a FIFO in the test shell itself would block it).
_dh_spawn() {
	local input=$1
	shift
	(
		if [ -n "$DH_FEED" ]; then exec {DH_FEED}>&-; fi
		exec "$@"
	) <"$input" 3>&- &
}

# dh_feed NAME [ARGS...]: start `dh-write ARGS... NAME` reading from a FIFO
# held open on fd $DH_FEED (send with `echo x >&"$DH_FEED"`) and wait until
# the writer has attached.  dh_feed_end closes the FIFO (end of input) and
# returns dh-write's exit status.  One feed per test.
dh_feed() {
	local name=$1 fifo start=$SECONDS
	shift
	fifo=$BATS_TEST_TMPDIR/feed.$name
	mkfifo "$fifo"
	_dh_spawn "$fifo" dh-write "$@" "$name"
	DH_FEED_PID=$!
	DH_BG_PIDS+=("$DH_FEED_PID")
	exec {DH_FEED}>"$fifo"
	until dh_locked "$name"; do
		if ! kill -0 "$DH_FEED_PID" 2>/dev/null; then
			echo "dh_feed: dh-write $* $name exited before attaching" >&2
			return 1
		fi
		if [ $((SECONDS - start)) -ge 10 ]; then
			echo "dh_feed: dh-write $* $name did not attach in 10s" >&2
			return 1
		fi
		sleep 0.02
	done
}

dh_feed_end() {
	if [ -n "$DH_FEED" ]; then
		exec {DH_FEED}>&-
		DH_FEED=
	fi
	wait "$DH_FEED_PID"
}

# _dh_gone PID: the process has exited (a zombie counts as gone).
_dh_gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}

dh_setup() {
	:
}

dh_teardown() {
	local pid
	if [ -n "$DH_FEED" ]; then
		exec {DH_FEED}>&-
		DH_FEED=
	fi
	for pid in "${DH_BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || continue
		# a stopped process would never act on the SIGTERM
		kill -CONT "$pid" 2>/dev/null
		dh_await -t 5 _dh_gone "$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || true
	done
	dh_cleanup
}

setup() {
	dh_setup
}

teardown() {
	dh_teardown
}
