# dh.bash: helpers for bats tests of programs that talk through dh channels.
# Documented in dh(7), BATS HELPERS.  See LICENSE.
#
# Load it from a .bats file (installed, or from a source tree):
#     load /usr/share/dh/bats/dh.bash
#     load "$DH_TOP/bats/dh.bash"
# and call dh_cleanup from teardown (it runs even when the test failed).
# Needs bash 5 (EPOCHREALTIME), jq, and the dh commands on PATH.
#
# Channels:    dh_channel_name [TAG]     a name unique to this test
#              dh_temp_channel [-t TAG] [DH-CREATE-OPTION...]
#                                        create one, print its name
#              dh_cleanup                remove this test's channels
# Waits (each polls, never sleeps blindly; -t SECONDS, default
# $DH_WAIT_TIMEOUT or 10; on timeout: a message saying what was awaited and
# what was seen, dh-diagnose of the channel, status 1):
#              dh_wait [-t S] [-m WHAT] CMD...    until CMD succeeds
#              dh_wait_channel [-t S] NAME        the channel exists
#              dh_wait_readers [-t S] NAME [N]    N readers alive (default 1)
#              dh_wait_committed [-t S] NAME N    N messages committed
#              dh_wait_eos [-t S] NAME            end-of-stream is marked
#              dh_wait_healthy [-t S] NAME        health is ok
# Assertions (on failure: the expression, the channel's dh-stat JSON and
# dh-diagnose, status 1):
#              dh_assert_channel NAME JQ-EXPR     JQ-EXPR holds on the channel
#              dh_assert_committed NAME N         exactly N committed
#              dh_assert_readers NAME N           exactly N readers alive
#              dh_assert_eos NAME                 end-of-stream is marked
#              dh_assert_health NAME ok|warn|bad  the health is that
#              dh_assert_valid NAME               dh-validate finds nothing
# Queries:     dh_channel_json NAME      the channel's object of dh-stat --json
#              dh_channel_field NAME JQ  one value of it (jq -r)
#
# Names are ${DH_CHANNEL_PREFIX:-dhbats}-<file>-<test number>-<pid>[-TAG]:
# two files, two tests or two runs at once never collide, and dh_cleanup
# finds every channel of the test by that prefix, whoever created it.

DH_CHANNEL_PREFIX=${DH_CHANNEL_PREFIX:-dhbats}
DH_WAIT_TIMEOUT=${DH_WAIT_TIMEOUT:-10}

if ! command -v jq >/dev/null 2>&1; then
	echo "dh.bash: jq is needed (the waits and assertions read dh-stat --json)" >&2
	return 1
fi

_dh_lib_file=$(basename "${BATS_TEST_FILENAME:-bats}" .bats)
_dh_lib_file=${_dh_lib_file//[^A-Za-z0-9._-]/_}

dh_channel_name() {
	printf '%s-%s-%s-%s%s\n' "$DH_CHANNEL_PREFIX" "$_dh_lib_file" "${BATS_TEST_NUMBER:-0}" "$$" "${1:+-$1}"
}

dh_temp_channel() {
	local tag='' name
	if [ "${1:-}" = -t ]; then
		tag=$2
		shift 2
	fi
	name=$(dh_channel_name "$tag")
	dh-create "$@" "$name" >&2 || {
		echo "dh_temp_channel: dh-create $* $name failed" >&2
		return 1
	}
	printf '%s\n' "$name"
}

# Unlinking the segment file is all `dh-create --remove --force` does to a
# channel nobody uses, and it also removes a segment too damaged to open.
dh_cleanup() {
	local base
	base=/dev/shm/dh.$DH_CHANNEL_PREFIX-$_dh_lib_file-${BATS_TEST_NUMBER:-0}-$$
	rm -f "$base" "$base-"*
}

dh_channel_json() {
	local json
	json=$(dh-stat --json "$1" 2>/dev/null | jq -c '.channels[0] | select(.ok == true)') &&
		[ -n "$json" ] && printf '%s\n' "$json"
}

dh_channel_field() {
	local json
	json=$(dh_channel_json "$1") && jq -r "$2" <<<"$json"
}

# _dh_show NAME: what a failure message appends: the channel as dh-stat
# and dh-diagnose see it.
_dh_show() {
	local json
	if ! json=$(dh-stat --json "$1" 2>/dev/null); then
		printf '# %s\n' "$(dh-stat "$1" 2>&1 >/dev/null)"
	else
		printf '# dh-stat --json %s:\n%s\n' "$1" "$(printf '%s' "$json" | jq -c '.channels[0]')"
	fi
	printf '# dh-diagnose %s:\n' "$1"
	dh-diagnose "$1" 2>&1 | sed 's/^/#   /'
}

# _dh_timeout_opts "$@": parse -t S / -m WHAT into _dh_t / _dh_m, leaving
# the count of words consumed in _dh_n.
_dh_timeout_opts() {
	_dh_t=$DH_WAIT_TIMEOUT _dh_m='' _dh_n=0
	while :; do
		case ${1:-} in
		-t) _dh_t=$2 ;;
		-m) _dh_m=$2 ;;
		*) break ;;
		esac
		shift 2
		_dh_n=$((_dh_n + 2))
	done
	case $_dh_t in
	'' | *[!0-9.]* | .*)
		echo "dh.bash: bad timeout: $_dh_t (seconds expected)" >&2
		return 2
		;;
	esac
}

_dh_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	printf '%s\n' $((t / 1000))
}

_dh_poll() { # SECONDS CMD...: 0 once CMD succeeds, 1 after SECONDS
	local limit_ms start
	limit_ms=$(awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }')
	shift
	start=$(_dh_now_ms)
	until "$@"; do
		if [ $(($(_dh_now_ms) - start)) -ge "$limit_ms" ]; then
			return 1
		fi
		sleep 0.02
	done
}

dh_wait() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	local what=${_dh_m:-$*}
	_dh_poll "$_dh_t" "$@" && return 0
	echo "dh_wait: timed out after ${_dh_t}s waiting for: $what" >&2
	return 1
}

# _dh_wait_on FUNC NAME DESCRIPTION JQ-EXPR JQ-SEEN: wait until JQ-EXPR is
# true on NAME's JSON; on timeout say what was awaited and what was seen.
_dh_holds() {
	local json
	json=$(dh_channel_json "$1") && jq -e "$2" <<<"$json" >/dev/null 2>&1
}

_dh_wait_on() {
	local func=$1 name=$2 desc=$3 expr=$4 seen=$5 now
	_dh_poll "$_dh_t" _dh_holds "$name" "$expr" && return 0
	if now=$(dh_channel_json "$name"); then
		now=$(jq -r "$seen" <<<"$now")
	else
		now="no such channel"
	fi
	{
		echo "$func: $name: timed out after ${_dh_t}s waiting for $desc (now: $now)"
		_dh_show "$name"
	} >&2
	return 1
}

_dh_count() { # FUNC VALUE: VALUE must be a count
	case $2 in
	'' | *[!0-9]*)
		echo "$1: bad count: '$2'" >&2
		return 2
		;;
	esac
}

dh_wait_channel() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	_dh_wait_on dh_wait_channel "$1" "the channel to exist" true '"exists"'
}

dh_wait_readers() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	local n=${2:-1}
	_dh_count dh_wait_readers "$n" || return 2
	_dh_wait_on dh_wait_readers "$1" "$n reader(s) alive" ".readers_alive >= $n" \
		'"\(.readers_alive) alive"'
}

dh_wait_committed() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	_dh_count dh_wait_committed "${2:-}" || return 2
	_dh_wait_on dh_wait_committed "$1" "$2 message(s) committed" ".committed >= $2" \
		'"\(.committed) committed"'
}

dh_wait_eos() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	_dh_wait_on dh_wait_eos "$1" "end-of-stream" '.end_of_stream == true' \
		'"end_of_stream \(.end_of_stream), \(.committed) committed"'
}

dh_wait_healthy() {
	_dh_timeout_opts "$@" || return 2
	shift "$_dh_n"
	_dh_wait_on dh_wait_healthy "$1" "health ok" '.health == "ok"' \
		'"health \(.health) \(.problems)"'
}

dh_assert_channel() {
	local name=$1 expr=$2 json
	if json=$(dh_channel_json "$name") && jq -e "$expr" <<<"$json" >/dev/null 2>&1; then
		return 0
	fi
	{
		echo "dh_assert_channel: $name: does not hold: $expr"
		_dh_show "$name"
	} >&2
	return 1
}

dh_assert_committed() {
	_dh_count dh_assert_committed "${2:-}" || return 2
	dh_assert_channel "$1" ".committed == $2"
}

dh_assert_readers() {
	_dh_count dh_assert_readers "${2:-}" || return 2
	dh_assert_channel "$1" ".readers_alive == $2"
}

dh_assert_eos() {
	dh_assert_channel "$1" '.end_of_stream == true'
}

dh_assert_health() {
	case ${2:-} in
	ok | warn | bad) ;;
	*)
		echo "dh_assert_health: health is ok, warn or bad, not '${2:-}'" >&2
		return 2
		;;
	esac
	dh_assert_channel "$1" ".health == \"$2\""
}

dh_assert_valid() {
	local out
	out=$(dh-validate --quiet "$1" 2>&1) && return 0
	{
		echo "dh_assert_valid: $1: dh-validate found problems:"
		printf '%s\n' "$out" | sed 's/^/#   /'
		_dh_show "$1"
	} >&2
	return 1
}
