#!/usr/bin/env bats
# dh-stat --watch on a terminal (a tmux pane): the full-screen view, its keys, colour; --filter. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	SOCK=$T/tmux.sock
}

teardown() {
	tmux -S "$SOCK" kill-server 2>/dev/null || true
	dh_teardown
}

# top [-x COLS] [ENV=VALUE...] -- ARGS: dh-stat --watch 100ms ARGS in a
# detached tmux pane of COLS x 30 (a UTF-8 locale, so the sparkline uses
# block characters); its exit status lands in $T/exit.
top() {
	local cols=140
	if [ "$1" = -x ]; then
		cols=$2
		shift 2
	fi
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	rm -f "$T/exit"
	tmux -S "$SOCK" -f /dev/null new-session -d -x "$cols" -y 30 \
		env -u NO_COLOR LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH="$PATH" "${envs[@]}" \
		sh -c 'dh-stat --watch 100ms "$@"; echo $? >"$0"' "$T/exit" "$@"
}

screen() {
	tmux -S "$SOCK" capture-pane -p "$@"
}

# on_screen REGEX: some line of the pane matches (extended regex).
on_screen() {
	screen | grep -Eq -- "$1"
}

# row NAME: the pane's line for channel NAME.
row() {
	screen | awk -v n="$1" '$1 == n'
}

keys() {
	tmux -S "$SOCK" send-keys "$@"
}

exited() {
	[ -s "$T/exit" ]
}

@test "one row per channel: rates, last-minute sparkline, fill, lag, readers, health; rows follow the channels" {
	dh-create --slots 64 "$ch-a"
	dh-create --policy ring "$ch-b"
	dh_bg sh -c 'exec dh-read --lines "$1" >/dev/null' sh "$ch-a"
	reader=$DH_BG_PID
	dh_await eval '[ "$(dh-stat --json "$ch-a" | jq ".channels[0].readers_alive")" = 1 ]'
	kill -STOP "$reader"
	dh_feed "$ch-a" --lines --no-eos
	top -- --filter "$ch"
	dh_await on_screen "^NAME +POLICY +MSG/S +BYTES/S +LAST MINUTE +FILL +LAG +READERS +HEALTH$"
	dh_await eval 'row "$ch-b" | grep -q .'
	# 10 messages into a 64-slot ring a stopped reader does not read
	seq 1 10 >&"$DH_FEED"
	dh_await eval 'row "$ch-a" | grep -Eq " 16% +10 +1/1 "'
	# a live rate while messages flow (it falls back to 0 a refresh after
	# they stop), then the sparkline has bars
	rated=
	for i in $(seq 1 40); do
		echo "$i" >&"$DH_FEED"
		if row "$ch-a" | awk '{ exit !($3 + 0 > 0) }'; then
			rated=$(row "$ch-a")
			break
		fi
		sleep 0.05
	done
	[ -n "$rated" ] || fail "no rate: $(row "$ch-a")"
	kill -CONT "$reader"
	dh_await -t 15 eval 'row "$ch-a" | grep -q "[▂▃▄▅▆▇█]"'
	run -0 row "$ch-b"
	assert_output --regexp "^$ch-b +ring +0\.0 +0B .* - +- +0/0 +ok$"
	# a channel removed leaves the view; one created joins it
	dh-create --remove "$ch-b"
	dh_await eval '! row "$ch-b" | grep -q .'
	dh-create "$ch-c"
	dh_await eval 'row "$ch-c" | grep -q " ok$"'
}

@test "keys: s sorts by the next column, r reverses, / filters, Esc clears, q quits with 0" {
	dh-create "$ch-a"
	dh-create "$ch-b"
	top -- --filter "$ch"
	dh_await on_screen "sort: name  filter: $ch\$"
	dh_await eval 'row "$ch-b" | grep -q .'
	run -0 screen
	a=$(grep -n "^$ch-a " <<<"$output" | cut -d: -f1)
	b=$(grep -n "^$ch-b " <<<"$output" | cut -d: -f1)
	[ "$a" -lt "$b" ]
	keys r
	dh_await on_screen "sort: name \(reversed\)"
	run -0 screen
	a=$(grep -n "^$ch-a " <<<"$output" | cut -d: -f1)
	b=$(grep -n "^$ch-b " <<<"$output" | cut -d: -f1)
	[ "$a" -gt "$b" ] || fail "not reversed: $output"
	keys s
	dh_await on_screen "sort: msg/s \(reversed\)"
	keys S S
	dh_await on_screen "sort: health \(reversed\)"
	# / edits the filter (it starts from --filter's), Enter applies it
	keys /
	dh_await on_screen "^filter \(glob; Enter applies, Esc cancels\): $ch\$"
	keys -l -- "-b"
	keys Enter
	dh_await on_screen "filter: $ch-b\$"
	dh_await eval '! row "$ch-a" | grep -q .'
	row "$ch-b" | grep -q .
	# a glob matches the whole name (^U empties the line)
	keys / C-u
	keys -l "$ch-[a]"
	keys Enter
	dh_await on_screen "filter: $ch-\[a\]\$"
	dh_await eval 'row "$ch-a" | grep -q .'
	! row "$ch-b" | grep -q .
	# Esc clears the filter: every channel again
	keys Escape
	dh_await eval 'row "$ch-b" | grep -q .'
	! on_screen "filter: "
	keys q
	dh_await exited
	assert_equal "$(cat "$T/exit")" 0
}

@test "health in colour; NO_COLOR: none" {
	dh-create "$ch"
	top -- "--filter" "$ch"
	dh_await eval 'row "$ch" | grep -q " ok$"'
	# green "ok"
	screen -e | grep -F "$ch" | grep -q $'\033\\[32mok'
	keys q
	dh_await exited
	top NO_COLOR=1 -- --filter "$ch"
	dh_await eval 'row "$ch" | grep -q " ok$"'
	run -0 screen -e
	! grep -Eq $'\033\\[([0-9;]*;)?(3[0-7]|4[0-7]|38;|48;)' <<<"$output" || fail "colour with NO_COLOR: $(cat -v <<<"$output")"
	keys q
	dh_await exited
}

@test "SIGINT ends the view with 130; a narrow terminal drops the sparkline" {
	dh-create "$ch"
	top -x 100 -- --filter "$ch"
	dh_await eval 'row "$ch" | grep -q " ok$"'
	! on_screen "LAST MINUTE" || fail "sparkline in 100 columns: $(screen)"
	on_screen "^NAME +POLICY +MSG/S +BYTES/S +FILL +LAG +READERS +HEALTH$"
	pane=$(tmux -S "$SOCK" display -p '#{pane_pid}')
	kill -INT "$(pgrep -P "$pane" dh-stat)"
	dh_await exited
	assert_equal "$(cat "$T/exit")" 130
}

@test "a terminal that cannot address its cursor (TERM=dumb) gets the plain listing" {
	dh-create "$ch"
	top TERM=dumb -- --filter "$ch"
	dh_await on_screen "^NAME +POLICY +SLOTS +FILL +MESSAGES +MSG/S +MB/S +WRITER +READERS +LAG +HEALTH"
	on_screen "^$ch +sync "
	! on_screen "q quit"
	pane=$(tmux -S "$SOCK" display -p '#{pane_pid}')
	kill -INT "$(pgrep -P "$pane" dh-stat)"
	dh_await exited
	assert_equal "$(cat "$T/exit")" 130
}

@test "--filter: a glob, or a substring without * ? [, in every output; not with NAME" {
	dh-create "$ch-a1"
	dh-create "$ch-b1"
	run -0 --separate-stderr dh-stat --filter "$ch-a"
	assert_equal "${#lines[@]}" 2
	assert_line -n 1 --regexp "^$ch-a1 "
	run -0 --separate-stderr dh-stat --filter "$ch-?1"
	assert_equal "${#lines[@]}" 3
	run -0 --separate-stderr dh-stat --filter "$ch-b*" --json
	assert_equal "$(jq -c '[.channels[].name]' <<<"$output")" "[\"$ch-b1\"]"
	run -0 --separate-stderr dh-stat --filter "$ch-[b]" --prometheus
	refute_output --partial "$ch-b1"
	run -2 --separate-stderr dh-stat --filter x "$ch-a1"
	assert_equal "${stderr_lines[0]}" "dh-stat: --filter selects among all channels: no NAME with it"
}
