#!/usr/bin/env bats
# dh-stat --serve: the Prometheus endpoint, its addresses, and hostile clients. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	CLIENT="/usr/bin/python3 $BATS_TEST_DIRNAME/serve_client.py"
}

teardown() {
	dh_teardown
}

# serve [ARGS...]: start dh-stat --serve 127.0.0.1:0 ARGS (only this test's
# channels unless ARGS say otherwise) and wait until it listens; sets PORT,
# URL and SERVE_PID.  Port 0: the kernel picks a free port, which dh-stat
# reports on stderr.
serve() {
	rm -f "$T/serve.err"
	dh_bg sh -c 'exec dh-stat --serve 127.0.0.1:0 "$@" 2>"$0"' "$T/serve.err" "$@"
	SERVE_PID=$DH_BG_PID
	dh_await grep -q '^dh-stat: serving http://127.0.0.1:[0-9]*/metrics$' "$T/serve.err"
	PORT=$(sed -n 's|^dh-stat: serving http://127.0.0.1:\([0-9]*\)/metrics$|\1|p' "$T/serve.err")
	URL="http://127.0.0.1:$PORT/metrics"
}

scrape() {
	curl -sS --noproxy '*' --max-time 5 "$@"
}

# status_of PID: its exit status in $st.
status_of() {
	st=0
	wait "$1" || st=$?
}

# gone PID: the process has exited.
gone() {
	! kill -0 "$1" 2>/dev/null
}

# fds PID: its open descriptors.
fds() {
	ls "/proc/$1/fd" | wc -l
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# --- the endpoint -------------------------------------------------------------

@test "GET /metrics: 200, the exposition Content-Type, a body promtool accepts" {
	dh-create "$ch"
	printf 'a\nb\nc\n' | dh-write --lines "$ch"
	serve "$ch"
	run -0 scrape -D "$T/headers" -o "$T/body" "$URL"
	run -0 grep -i '^content-type:' "$T/headers"
	assert_output $'Content-Type: text/plain; version=0.0.4; charset=utf-8\r'
	run -0 head -n1 "$T/headers"
	assert_output $'HTTP/1.1 200 OK\r'
	run -0 promtool check metrics <"$T/body"
	run -0 grep "^dh_channel_messages_written_total{channel=\"$ch\"} " "$T/body"
	assert_output "dh_channel_messages_written_total{channel=\"$ch\"} 3"
	# the same renderer as --prometheus: equal apart from what moves in time
	norm='/timestamp_seconds|idle_seconds/d'
	diff <(sed -E "$norm" "$T/body") <(dh-stat --prometheus "$ch" | sed -E "$norm")
}

@test "keep-alive: scrapes reuse one connection, as Prometheus does" {
	serve "$ch"
	run -0 curl -sSv --noproxy '*' --max-time 5 -o /dev/null -o /dev/null -o /dev/null "$URL" "$URL" "$URL"
	[ "$(grep -c 'Re-using existing connection' <<<"$output")" -eq 2 ] || fail "$output"
	refute_output --partial '< Connection: close'
}

@test "counters are monotonic *_total a rate() can read; health is a gauge" {
	dh-create "$ch"
	serve "$ch"
	run -0 scrape -o "$T/m0" "$URL"
	seq 1 50 | dh-write --lines "$ch"
	run -0 scrape -o "$T/m1" "$URL"
	for f in "$T/m0" "$T/m1"; do
		grep -q '^# TYPE dh_channel_messages_written_total counter$' "$f"
		grep -q '^# TYPE dh_channel_written_bytes_total counter$' "$f"
		grep -q '^# TYPE dh_channel_health gauge$' "$f"
	done
	# every counter family is named *_total
	run -0 awk '$1 == "#" && $2 == "TYPE" && $4 == "counter" && $3 !~ /_total$/' "$T/m1"
	assert_output ""
	grep -q "^dh_channel_messages_written_total{channel=\"$ch\"} 0$" "$T/m0"
	grep -q "^dh_channel_messages_written_total{channel=\"$ch\"} 50$" "$T/m1"
	grep -q "^dh_channel_written_bytes_total{channel=\"$ch\"} 91$" "$T/m1"
	grep -q "^dh_channel_health{channel=\"$ch\"} 0$" "$T/m1"
}

# sample NAME FILE: the value of the sample named exactly NAME (labels included).
sample() {
	awk -v n="$1" '$1 == n { print $2 }' "$2"
}

@test "health describes the present: per-condition gauges; acknowledged refusals leave it, lifetime counters stay" {
	local key=$T/k other=$T/other
	head -c 32 /dev/urandom >"$key"
	head -c 32 /dev/urandom >"$other"
	chmod 600 "$key" "$other"
	dh-create --key "$key" "$ch"
	serve "$ch"
	run -1 dh-write --key "$other" "$ch" </dev/null
	scrape -o "$T/m1" "$URL"
	c="channel=\"$ch\""
	assert_equal "$(sample "dh_channel_health{$c}" "$T/m1")" 1
	assert_equal "$(sample "dh_channel_health_condition{$c,condition=\"mismatch\"}" "$T/m1")" 1
	assert_equal "$(sample "dh_channel_health_condition{$c,condition=\"writer-dead\"}" "$T/m1")" 0
	# one sample per condition of dh-stat(1)
	assert_equal "$(grep -c "^dh_channel_health_condition{$c," "$T/m1")" 9
	assert_equal "$(sample "dh_channel_key_mismatches_total{$c}" "$T/m1")" 1
	assert_equal "$(sample "dh_channel_acknowledged_key_mismatches_total{$c}" "$T/m1")" 0
	dh-validate --repair --key "$key" "$ch" >/dev/null
	scrape -o "$T/m2" "$URL"
	assert_equal "$(sample "dh_channel_health{$c}" "$T/m2")" 0
	assert_equal "$(sample "dh_channel_health_condition{$c,condition=\"mismatch\"}" "$T/m2")" 0
	assert_equal "$(sample "dh_channel_key_mismatches_total{$c}" "$T/m2")" 1
	assert_equal "$(sample "dh_channel_acknowledged_key_mismatches_total{$c}" "$T/m2")" 1
	run -0 promtool check metrics <"$T/m2"
}

@test "channels appear and disappear between scrapes" {
	serve --filter "$ch"
	run -0 scrape "$URL"
	refute_output --partial "channel=\"$ch-a\""
	dh-create "$ch-a"
	run -0 scrape "$URL"
	assert_output --partial "dh_channel_up{channel=\"$ch-a\"} 1"
	dh-create "$ch-b"
	dh-create --remove "$ch-a"
	run -0 scrape "$URL"
	refute_output --partial "channel=\"$ch-a\""
	assert_output --partial "dh_channel_up{channel=\"$ch-b\"} 1"
}

@test "404 off /metrics, 405 (Allow: GET, HEAD) for other methods, HEAD has no body" {
	serve "$ch"
	for path in / /metric /metrics/x /favicon.ico; do
		run -0 scrape -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT$path"
		assert_output 404
	done
	for m in POST PUT DELETE OPTIONS; do
		run -0 scrape -o /dev/null -D "$T/h" -w '%{http_code}' -X "$m" -d 'x=1' "$URL"
		assert_output 405
		grep -q $'^Allow: GET, HEAD\r$' "$T/h"
	done
	run -0 scrape -I "$URL"
	assert_line --partial 'HTTP/1.1 200'
	run -0 scrape -I -o /dev/null -w '%{size_download}' "$URL"
	assert_output 0
	# still serving
	run -0 scrape -o /dev/null -w '%{http_code}' "$URL"
	assert_output 200
}

@test "NAME arguments restrict what is served" {
	dh-create "$ch-a"
	dh-create "$ch-b"
	serve "$ch-b"
	run -0 scrape "$URL"
	assert_output --partial "dh_channel_up{channel=\"$ch-b\"} 1"
	refute_output --partial "$ch-a"
}

# --- addresses and lifetime ---------------------------------------------------

@test "PORT alone binds loopback; ADDR is reported on stderr" {
	dh_bg sh -c 'exec dh-stat --serve 0 --filter "$1" 2>"$2"' sh "$ch" "$T/err"
	dh_await grep -q '^dh-stat: serving ' "$T/err"
	run -0 cat "$T/err"
	assert_output --regexp '^dh-stat: serving http://127\.0\.0\.1:[0-9]+/metrics$'
	port=$(sed -n 's|.*:\([0-9]*\)/metrics$|\1|p' "$T/err")
	ss -ltn "sport = :$port" | grep -q "127.0.0.1:$port"
	run -0 scrape -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics"
	assert_output 200
}

@test "IPv6 loopback in brackets" {
	if ! ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
		skip "no IPv6 loopback here"
	fi
	dh_bg sh -c 'exec dh-stat --serve "[::1]:0" --filter "$1" 2>"$2"' sh "$ch" "$T/err"
	dh_await grep -q '^dh-stat: serving ' "$T/err"
	run -0 cat "$T/err"
	assert_output --regexp '^dh-stat: serving http://\[::1\]:[0-9]+/metrics$'
	port=$(sed -n 's|.*:\([0-9]*\)/metrics$|\1|p' "$T/err")
	run -0 scrape -g -o /dev/null -w '%{http_code}' "http://[::1]:$port/metrics"
	assert_output 200
}

@test "a malformed ADDR is a usage error (2); one that cannot be bound fails (1)" {
	for addr in "" ":9464" "x:y" "127.0.0.1:65536" "127.0.0.1:-1" "::1:9464" "[::1]:" "no.such.host.invalid:1"; do
		run -2 --separate-stderr dh-stat --serve "$addr"
		[ -z "$output" ] || fail "stdout for '$addr'"
		[[ ${stderr_lines[0]} == "dh-stat: --serve "* ]] || fail "message for '$addr': $stderr"
		assert_equal "${stderr_lines[1]}" "usage: dh-stat --serve ADDR [--all-fields] [--filter PATTERN] [NAME ...]"
	done
	run -2 --separate-stderr dh-stat --serve 127.0.0.1:x
	assert_equal "${stderr_lines[0]}" "dh-stat: --serve 127.0.0.1:x: invalid port (0 to 65535)"
	run -2 --separate-stderr dh-stat --serve :9464
	assert_equal "${stderr_lines[0]}" \
		"dh-stat: --serve :9464: name the address to listen on: 127.0.0.1:PORT (0.0.0.0:PORT for every interface)"
	for args in "--json" "--prometheus" "--watch 1"; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr dh-stat --serve 0 $args
		assert_equal "${stderr_lines[0]}" \
			"dh-stat: --serve answers in the Prometheus format: no --json, --prometheus, --watch"
	done
	# an address of no interface here (TEST-NET-3), and a port in use
	run -1 --separate-stderr dh-stat --serve 203.0.113.1:0
	assert_equal "$stderr" "dh-stat: --serve 203.0.113.1:0: Cannot assign requested address"
	serve "$ch"
	run -1 --separate-stderr dh-stat --serve "127.0.0.1:$PORT"
	assert_equal "$stderr" "dh-stat: --serve 127.0.0.1:$PORT: Address already in use"
}

@test "SIGTERM and SIGINT stop it cleanly: exit 0, port released" {
	for sig in TERM INT; do
		serve "$ch"
		kill -"$sig" "$SERVE_PID"
		dh_await gone "$SERVE_PID"
		status_of "$SERVE_PID"
		assert_equal "$st" 0
		run ! scrape -o /dev/null "$URL"
	done
}

# --- hostile clients ----------------------------------------------------------

@test "slowloris: clients dribbling headers do not delay other scrapes" {
	dh-create "$ch"
	serve "$ch"
	for i in 1 2 3 4; do
		dh_bg sh -c 'exec $1 slowloris 127.0.0.1 "$2" 8 >"$3"' sh "$CLIENT" "$PORT" "$T/slow$i"
	done
	for i in 1 2 3 4; do
		dh_await grep -q ready "$T/slow$i"
	done
	# every scrape answers at once while the dribblers hold their connections
	for i in 1 2 3 4 5 6 7 8 9 10; do
		run -0 scrape --max-time 2 -o "$T/body" -w '%{http_code} %{time_total}' "$URL"
		[[ $output == "200 "* ]] || fail "scrape $i: $output"
		awk -v t="${output#200 }" 'BEGIN { exit !(t < 1.0) }' || fail "scrape $i took $output"
		grep -q "dh_channel_up{channel=\"$ch\"} 1" "$T/body"
	done
	for i in 1 2 3 4; do
		run -0 cat "$T/slow$i"
		assert_line -n 0 ready
		refute_line --partial closed   # they were still dribbling
	done
}

@test "an idle connection is closed after the connection timeout (10s)" {
	serve "$ch"
	run -0 $CLIENT idle 127.0.0.1 "$PORT" 20
	assert_output --regexp '^closed after ([0-9]|1[0-4])\.[0-9]s$'
	secs=${output#closed after }
	awk -v t="${secs%s}" 'BEGIN { exit !(t >= 9) }' || fail "closed too early: $output"
}

@test "huge headers: refused (431) or closed, the server lives on with bounded memory" {
	dh-create "$ch"
	serve "$ch"
	run -0 scrape -o /dev/null "$URL"
	rss0=$(rss_kb "$SERVE_PID")
	for size in 20000 100000 1000000 8000000; do
		run -0 $CLIENT huge 127.0.0.1 "$PORT" "$size"
		[[ $output == 431 || $output == 413 || $output == closed ]] || fail "$size-byte header: $output"
	done
	run -0 scrape -o /dev/null -w '%{http_code}' "$URL"
	assert_output 200
	rss1=$(rss_kb "$SERVE_PID")
	[ $((rss1 - rss0)) -lt 4096 ] || fail "RSS grew from ${rss0}K to ${rss1}K"
}

@test "many connections: one address gets a bounded share, others are still served" {
	dh-create "$ch"
	serve "$ch"
	fd0=$(fds "$SERVE_PID")
	dh_bg sh -c 'exec $1 flood 127.0.0.1 "$2" 300 127.0.0.1 30 >"$3"' sh "$CLIENT" "$PORT" "$T/flood"
	flood=$DH_BG_PID
	dh_await -t 20 grep -q '^ready' "$T/flood"
	run -0 cat "$T/flood"
	open=${output#ready open=}
	# the per-address limit (16) of dh-stat(1)
	[ "$open" -le 16 ] || fail "$open connections from one address kept open"
	[ "$(fds "$SERVE_PID")" -le $((fd0 + 16)) ] || fail "$(fds "$SERVE_PID") descriptors open"
	# another address of the loopback network still gets its scrapes
	for i in 1 2 3; do
		run -0 scrape --interface 127.0.0.2 --max-time 2 -o /dev/null -w '%{http_code}' "$URL"
		assert_output 200
	done
	kill "$flood"
	dh_await gone "$flood"
	# once they are gone, so is the limit
	dh_await eval 'scrape --max-time 2 -o /dev/null "$URL"'
	dh_await eval '[ "$(fds "$SERVE_PID")" -le $((fd0 + 1)) ]'
}

@test "many addresses: at most 64 connections accepted in all, the server answers again once they go" {
	serve "$ch"
	fd0=$(fds "$SERVE_PID")
	pids=()
	for i in 10 11 12 13 14; do
		dh_bg sh -c 'exec $1 flood 127.0.0.1 "$2" 16 "$3" 30 >"$4"' sh "$CLIENT" "$PORT" "127.0.0.$i" "$T/flood$i"
		pids+=("$DH_BG_PID")
		dh_await -t 20 grep -q '^ready' "$T/flood$i"
	done
	# 80 connected; those over the limit wait in the listen backlog, not in
	# the server
	[ "$(fds "$SERVE_PID")" -le $((fd0 + 64)) ] || fail "$(fds "$SERVE_PID") descriptors open"
	kill "${pids[@]}"
	for p in "${pids[@]}"; do dh_await gone "$p"; done
	dh_await eval 'scrape --max-time 2 -o /dev/null "$URL"'
}

# --- the example configuration -------------------------------------------------

@test "docs/examples: the scrape configuration and rules pass promtool" {
	cp "$DH_TOP/docs/examples/prometheus.yml" "$DH_TOP/docs/examples/dh-rules.yml" "$T/"
	run -0 promtool check config "$T/prometheus.yml"
	run -0 promtool check rules "$T/dh-rules.yml"
	# it scrapes the address the man page uses
	grep -q "targets: \['127.0.0.1:9464'\]" "$T/prometheus.yml"
}

@test "docs/examples/grafana-dh.json: valid JSON, PromQL promtool parses, on metrics dh-stat serves" {
	dash=$DH_TOP/docs/examples/grafana-dh.json
	run -0 jq -e '.panels | length > 0' "$dash"
	# every query, Grafana's variables filled in, as recording rules promtool parses
	{
		echo 'groups:'
		echo '  - name: grafana'
		echo '    rules:'
		jq -r '.panels[].targets[].expr' "$dash" |
			sed -e 's/\$__rate_interval/1m/g' -e 's/\$instance/.*/g' -e 's/\$channel/.*/g' |
			awk '{ gsub(/'\''/, "'\'''\''"); printf "      - record: dh:grafana:%d\n        expr: '\''%s'\''\n", NR, $0 }'
	} >"$T/rules.yml"
	run -0 promtool check rules "$T/rules.yml"
	# and every metric they name is one the endpoint serves
	dh-create "$ch"
	dh_bg dh-read "$ch"
	dh_await eval '[ "$(dh-stat --json "$ch" | jq ".channels[0].readers_alive")" = 1 ]'
	serve "$ch"
	scrape -o "$T/body" "$URL"
	for m in $(jq -r '.panels[].targets[].expr, .templating.list[].query' "$dash" | grep -o 'dh_[a-z_]*' | sort -u); do
		grep -q "^# TYPE $m " "$T/body" || fail "$m is not served"
	done
}
