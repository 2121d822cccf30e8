#!/usr/bin/env bats
# dh-stat: listing, one channel, JSON, Prometheus, unreadable channels, read-only, --watch. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
}

# The listing line of channel $1 from output $2 (first field equal to $1).
line_of() {
	awk -v n="$1" '$1 == n' <<<"$2"
}

# field NAME HEADER LINE: the value in LINE under column HEADER of the
# listing header line (columns are split on blanks; cells have none).
field() {
	awk -v c="$1" -v h="$2" -v l="$3" 'BEGIN {
		n = split(h, hs); split(l, ls)
		for (i = 1; i <= n; i++) if (hs[i] == c) { print ls[i]; exit }
	}'
}

# readers_at_least NAME N: N readers hold their liveness locks (bytes 1..
# of the segment file; byte 0 is the writer's), as the kernel sees it.
readers_at_least() {
	local key
	key=$(stat -c '%Hd %Ld %i' "$(dh_shm "$1")" | awk '{ printf "%02x:%02x:%s", $1, $2, $3 }')
	[ "$(awk -v k="$key" '$2 != "->" && $6 == k && $7 != 0 { n++ } END { print n + 0 }' /proc/locks)" -ge "$2" ]
}

# lines_in FILE: its number of lines, 0 if missing; has_lines FILE N.
lines_in() {
	if [ -e "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi
}

has_lines() {
	[ "$(lines_in "$1")" -ge "$2" ]
}

# status_of PID: wait for a background job; its exit status in $st.
status_of() {
	st=0
	wait "$1" || st=$?
}

# committed_is NAME N: the channel has N messages committed.
committed_is() {
	[ "$(dh-stat --json "$1" | jq '.channels[0].committed')" = "$2" ]
}

# --- command line -----------------------------------------------------------

@test "--help prints the usage first, to stdout, exit 0; --version" {
	run -0 --separate-stderr dh-stat --help
	[[ ${lines[0]} == "usage: dh-stat "* ]]
	assert_equal "$(dh_usage_forms <<<"$output" | head -n 1)" 'dh-stat [--json | --prometheus] [--watch SEC] [--all-fields] [--filter PATTERN] [NAME ...]'
	[ -z "$stderr" ]
	run -0 --separate-stderr dh-stat -V
	assert_output --regexp '^dh-stat [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "usage errors exit 2 with a usage line on stderr and nothing on stdout" {
	for args in "--bogus" "-x" "--watch" "--watch 0" "--watch -1" "--watch 1x" "--json --prometheus" \
		"bad/name" ".hidden"; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr dh-stat $args
		[ -z "$output" ] || fail "stdout for '$args': $output"
		[ -n "$stderr" ] || fail "no message for '$args'"
		# at most one reason line, then one usage form (wrapped to 80 columns)
		[ "$(awk '/^usage: /{exit} {n++} END{print n+0}' <<<"$stderr")" -le 1 ] &&
			[ "$(dh_usage_forms <<<"$stderr" | wc -l)" -le 1 ] ||
			fail "more than a reason and a usage for '$args': $stderr"
	done
	run -2 --separate-stderr dh-stat --bogus
	assert_equal "$(dh_usage_forms <<<"$stderr")" 'dh-stat [--json | --prometheus] [--watch SEC] [--all-fields] [--filter PATTERN] [NAME ...]'
}

# --- listing ----------------------------------------------------------------

@test "listing: one aligned line per channel with policy, geometry, messages, writer, readers, health" {
	dh-create --slots 8 --slot-size 1K "$ch-a"
	dh-create --policy ring --slots 4 "$ch-b"
	seq 1 5 | dh-write --lines "$ch-a"
	run -0 --separate-stderr dh-stat
	[ -z "$stderr" ]
	head=${lines[0]}
	assert_equal "$(echo $head)" "NAME POLICY SLOTS FILL MESSAGES WRITER READERS LAG HEALTH"
	a=$(line_of "$ch-a" "$output")
	b=$(line_of "$ch-b" "$output")
	[ -n "$a" ] && [ -n "$b" ]
	assert_equal "$(echo $a)" "$ch-a sync 8x1K - 5 none 0/0 - ok"
	assert_equal "$(echo $b)" "$ch-b ring 4x64K - 0 none 0/0 - ok"
	# aligned: every column starts at the same offset in the header and the rows
	for col in POLICY SLOTS WRITER HEALTH; do
		pre=${head%%"$col"*}
		for row in "$a" "$b"; do
			v=$(field "$col" "$head" "$row")
			[ "${row:${#pre}:${#v}}" = "$v" ] || fail "column $col misaligned in: $row"
		done
	done
	# sorted by name
	[ "$(printf '%s\n' "${lines[@]:1}" | awk '{print $1}' | LC_ALL=C sort -c 2>&1)" = "" ]
}

@test "listing with a live writer and a stopped reader: pid/alive, readers, lag, fill" {
	dh-create --slots 8 --slot-size 1K "$ch"
	dh_feed "$ch" --lines --name prod
	dh_bg sh -c 'exec dh-read --from now --name cons "$1" >/dev/null' sh "$ch"
	reader=$DH_BG_PID
	dh_await readers_at_least "$ch" 1
	kill -STOP "$reader"
	seq 1 3 >&"$DH_FEED"
	dh_wait_committed "$ch" 3
	dh_assert_committed "$ch" 3
	run -0 dh-stat
	row=$(line_of "$ch" "$output")
	head=${lines[0]}
	assert_equal "$(field WRITER "$head" "$row")" "$DH_FEED_PID/alive"
	assert_equal "$(field READERS "$head" "$row")" "1/1"
	assert_equal "$(field LAG "$head" "$row")" "3"
	assert_equal "$(field FILL "$head" "$row")" "3/8"
	assert_equal "$(field MESSAGES "$head" "$row")" "3"
	assert_equal "$(field HEALTH "$head" "$row")" "ok"

	run -0 dh-stat "$ch"
	assert_line --regexp "^writer +pid $DH_FEED_PID, alive\$"
	assert_line --regexp "^readers +1 alive of 1\$"
	assert_line --regexp "^lag +3 \(reader 1\)\$"
	assert_line --regexp "^ +0 +writer +alive +$DH_FEED_PID +prod +3 +- +3 +3 +- +- +"
	assert_line --regexp "^ +1 +reader +alive +$reader +cons +0 +3 +0 +0 +0 +0 +"
	kill -CONT "$reader"
}

@test "listing with --all-fields adds checksum, loss, end-of-stream and creation columns" {
	dh-create --checksum blake2b --slots 2 "$ch"
	printf 'x\n' | dh-write --lines "$ch"
	run -0 dh-stat --all-fields
	assert_equal "$(echo ${lines[0]})" \
		"NAME POLICY CHECKSUM SLOTS FILL MESSAGES WRITER READERS LAG LOST CKFAIL EOS CREATED HEALTH"
	row=$(line_of "$ch" "$output")
	assert_equal "$(field CHECKSUM "${lines[0]}" "$row")" blake2b
	assert_equal "$(field EOS "${lines[0]}" "$row")" yes
	[[ "$(field CREATED "${lines[0]}" "$row")" =~ ^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:]{8}Z$ ]]
}

@test "dead writer: the channel is marked bad:writer-dead" {
	dh-create "$ch"
	dh_feed "$ch" --lines
	printf 'a\n' >&"$DH_FEED"
	dh_wait_committed "$ch" 1
	dh_assert_committed "$ch" 1
	kill -KILL "$DH_FEED_PID"
	wait "$DH_FEED_PID" || true
	run -0 dh-stat
	row=$(line_of "$ch" "$output")
	assert_equal "$(field WRITER "${lines[0]}" "$row")" "$DH_FEED_PID/dead"
	assert_equal "$(field HEALTH "${lines[0]}" "$row")" "bad:writer-dead"
	run -0 dh-stat --json "$ch"
	run -0 jq -c '.channels[0] | [.health, .problems, .writer.state]' <<<"$output"
	assert_output '["bad",["writer-dead"],"dead"]'
}

# --- unreadable channels ----------------------------------------------------

@test "a channel we may not open still gets a line saying why; named, it fails with exit 1" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as nobody"
	dh-create "$ch"
	chmod 000 "$(dh_shm "$ch")"
	run -0 --separate-stderr runuser -u nobody -- "$DH_TOP/$DH_BUILD/bin/dh-stat"
	row=$(line_of "$ch" "$output")
	[ -n "$row" ] || fail "no line for $ch"
	[[ "$row" =~ ^"$ch"(\ +-)+\ +error:\ Permission\ denied$ ]] || fail "line: $row"
	run -1 --separate-stderr runuser -u nobody -- "$DH_TOP/$DH_BUILD/bin/dh-stat" "$ch"
	[ -z "$output" ]
	assert_equal "$stderr" "dh-stat: $ch: Permission denied"
	run -1 --separate-stderr runuser -u nobody -- "$DH_TOP/$DH_BUILD/bin/dh-stat" --json "$ch"
	run -0 jq -c '.channels[0] | [.name, .ok, .error]' <<<"$output"
	assert_output "[\"$ch\",false,\"Permission denied\"]"
}

@test "corrupt and foreign segments get a line saying why" {
	dh-create --slots 4 "$ch-bad"
	# slot count (offset 16) zero: the header no longer matches the file
	printf '\0\0\0\0' | dd of="$(dh_shm "$ch-bad")" bs=1 seek=16 conv=notrunc status=none
	printf 'not a channel' >"$(dh_shm "$ch-foreign")"
	: >"$(dh_shm "$ch-empty")"
	run -0 --separate-stderr dh-stat
	[[ "$(line_of "$ch-bad" "$output")" =~ error:\ corrupt\ segment$ ]]
	[[ "$(line_of "$ch-foreign" "$output")" =~ error:\ not\ a\ dh\ channel$ ]]
	[[ "$(line_of "$ch-empty" "$output")" =~ error:\ (corrupt\ segment|not\ a\ dh\ channel)$ ]]
	run -1 --separate-stderr dh-stat "$ch-bad"
	assert_equal "$stderr" "dh-stat: $ch-bad: corrupt segment"
	run -1 dh-stat --prometheus "$ch-foreign" "$ch-bad"
	assert_line "dh_channel_up{channel=\"$ch-foreign\"} 0"
	assert_line "dh_channel_up{channel=\"$ch-bad\"} 0"
}

@test "a missing named channel: message, exit 1, the others still shown" {
	dh-create "$ch"
	run -1 --separate-stderr dh-stat "$ch-missing" "$ch"
	assert_equal "$stderr" "dh-stat: $ch-missing: no such channel"
	assert_line --regexp "^channel +$ch\$"
	refute_line --regexp "$ch-missing"
}

# --- machine-readable output ------------------------------------------------

@test "--json: one document with stable fields, validated by jq" {
	dh-create --policy ring --slots 4 --slot-size 128 "$ch"
	seq 1 6 | dh-write --lines --name w "$ch"
	run -0 --separate-stderr dh-stat --json
	[ "${#lines[@]}" -eq 1 ]
	jq -e --arg n "$ch" '
		(.time_ns | type == "number") and
		(.channels | type == "array") and
		(.channels[] | select(.name == $n) |
			.ok == true and .path == "/dev/shm/dh." + $n and .policy == "ring" and
			.checksum == "xxh3" and .keyed == false and .schema == null and
			.slots == 4 and .slot_size == 128 and .committed == 6 and .end_of_stream == true and
			.counters.messages_written == 6 and .counters.bytes_written == 6 and
			.counters.eos_count == 1 and .health == "ok" and .problems == [] and
			.writer == null and .readers == [] and .readers_alive == 0 and
			.fill == null and .lag == null and .msg_rate == null and
			(.created_ns | type == "number") and (has("layout") | not))' <<<"$output"
	run -0 dh-stat --json --all-fields "$ch"
	jq -e '.channels[0] | (.readers | length) == 16 and .layout.total > 0 and
		.writer.state == "free"' <<<"$output"
}

@test "--prometheus: valid exposition format (promtool), channel and reader labels" {
	dh-create --slots 8 "$ch"
	dh_feed "$ch" --lines
	dh_bg sh -c 'exec dh-read --name "r\"1" "$1" >/dev/null' sh "$ch"
	dh_await readers_at_least "$ch" 1
	printf 'a\nb\n' >&"$DH_FEED"
	dh_await committed_is "$ch" 2
	printf 'junk' >"$(dh_shm "$ch-junk")"
	run -0 --separate-stderr dh-stat --prometheus
	printf '%s\n' "$output" >"$T/all.prom"
	run -0 promtool check metrics <"$T/all.prom"
	run -1 --separate-stderr dh-stat --prometheus "$ch" "$ch-junk"
	printf '%s\n' "$output" >"$T/one.prom"
	run -0 promtool check metrics <"$T/one.prom"
	run -0 cat "$T/one.prom"
	assert_line "dh_channel_up{channel=\"$ch\"} 1"
	assert_line "dh_channel_up{channel=\"$ch-junk\"} 0"
	assert_line "dh_channel_messages_written_total{channel=\"$ch\"} 2"
	assert_line "dh_channel_writer_up{channel=\"$ch\"} 1"
	assert_line "dh_channel_info{channel=\"$ch\",policy=\"sync\",checksum=\"xxh3\"} 1"
	assert_line "dh_channel_readers{channel=\"$ch\",state=\"alive\"} 1"
	assert_line "dh_reader_up{channel=\"$ch\",reader=\"1\",reader_name=\"r\\\"1\"} 1"
	assert_line "# TYPE dh_channel_messages_written_total counter"
	[ "$(grep -c '^# TYPE dh_channel_up ' "$T/one.prom")" -eq 1 ]
}

# --- never writes -----------------------------------------------------------

@test "reading statistics never changes a segment (sha256 before and after)" {
	dh-create --slots 4 --slot-size 256 --policy sync "$ch"
	dh_bg sh -c 'exec dh-read --follow "$1" >/dev/null' sh "$ch"
	reader=$DH_BG_PID
	dh_await readers_at_least "$ch" 1
	seq 1 10 | dh-write --lines "$ch"
	dh_await eval '[ "$(dh-stat --json "$ch" | jq ".channels[0].readers[0].position")" = 10 ]'
	# leave a dead reader entry behind, then keep everything still
	kill -KILL "$reader"
	wait "$reader" || true
	before=$(sha256sum <"$(dh_shm "$ch")")
	mtime=$(stat -c %Y.%y "$(dh_shm "$ch")")
	dh-stat >/dev/null
	dh-stat "$ch" >/dev/null
	dh-stat --all-fields "$ch" >/dev/null
	dh-stat --json --all-fields >/dev/null
	dh-stat --prometheus "$ch" >/dev/null
	dh_bg dh-stat --watch 10ms --json "$ch"
	stat_pid=$DH_BG_PID
	dh_bg sh -c 'exec dh-stat --watch 10ms --json "$1" >"$2"' sh "$ch" "$T/w"
	dh_await has_lines "$T/w" 3
	kill -INT "$stat_pid" "$DH_BG_PID"
	assert_equal "$(sha256sum <"$(dh_shm "$ch")")" "$before"
	assert_equal "$(stat -c %Y.%y "$(dh_shm "$ch")")" "$mtime"
	run -0 dh-stat --json "$ch"
	jq -e '.channels[0].readers[0].state == "dead" and .channels[0].health == "warn"' <<<"$output"
}

# --- --watch ------------------------------------------------------------------

@test "--watch --json: one document per refresh with rates; SIGINT exits 130" {
	dh-create --slots 128 "$ch"   # room for the 100 lines: no reader is attached
	dh_feed "$ch" --lines
	dh_bg sh -c 'exec dh-stat --watch 50ms --json "$1" >"$2" 2>"$2.err"' sh "$ch" "$T/w"
	pid=$DH_BG_PID
	dh_await has_lines "$T/w" 1
	seq 1 100 >&"$DH_FEED"
	dh_await committed_is "$ch" 100
	n=$(lines_in "$T/w")
	dh_await has_lines "$T/w" $((n + 2))
	kill -INT "$pid"
	status_of "$pid"
	assert_equal "$st" 130
	[ ! -s "$T/w.err" ]
	# every line a document; the first has no rate, later ones do; a rate > 0 after the writes
	run -0 jq -s -c '[length >= 3, (.[0].channels[0].msg_rate == null),
		(.[1:] | all(.channels[0].msg_rate | type == "number")),
		(map(.channels[0].msg_rate // 0) | max > 0)]' "$T/w"
	assert_output '[true,true,true,true]'
}

@test "--watch text, not a terminal: successive blocks with MSG/S and MB/S columns" {
	dh-create "$ch"
	dh_bg sh -c 'exec dh-stat --watch 20ms >"$1"' sh "$T/w"
	pid=$DH_BG_PID
	dh_await eval '[ "$(grep -c "^NAME " "$T/w")" -ge 3 ]'
	kill -INT "$pid"
	status_of "$pid"
	assert_equal "$st" 130
	run -0 grep -m1 '^NAME ' "$T/w"
	assert_equal "$(echo $output)" "NAME POLICY SLOTS FILL MESSAGES MSG/S MB/S WRITER READERS LAG HEALTH"
	# blocks are separated by one empty line, and carry no terminal escapes
	[ "$(grep -c '^$' "$T/w")" -ge 2 ]
	! grep -q $'\033' "$T/w"
}

@test "--watch on a terminal refreshes in place" {
	command -v script >/dev/null || skip "script(1) not installed"
	dh-create "$ch"
	dh_bg sh -c 'exec script -qec "dh-stat --watch 20ms $1" /dev/null >"$2" </dev/null' sh "$ch" "$T/tty"
	dh_await eval '[ "$(grep -c "channel .*$ch" "$T/tty")" -ge 2 ]'
	run -0 cat -v "$T/tty"
	assert_output --partial '^[[H^[[2J'
}

# --- output errors ------------------------------------------------------------

@test "stdout is checked: >/dev/full exits 1 with a write error" {
	dh-create "$ch"
	for args in "" "$ch" "--json $ch" "--prometheus"; do
		run -1 --separate-stderr sh -c "dh-stat $args >/dev/full"
		assert_equal "$stderr" "dh-stat: write error: No space left on device"
	done
}

@test "--watch | head: ends quietly by SIGPIPE" {
	dh-create "$ch"
	run -0 --separate-stderr sh -c "dh-stat --watch 10ms --json $ch | head -n 2 | wc -l"
	assert_output 2
	[ -z "$stderr" ]
}
