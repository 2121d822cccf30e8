#!/usr/bin/env bats
# net.bats: channels across hosts (issue 16): dh-read --serve on "host A",
# dh-read --connect and dh-write --connect on "host B".  A and B are two
# network namespaces joined by a veth pair that this file creates and
# removes; where namespaces cannot be made, both sides run in this
# namespace over 127.0.0.1, and the first test says so by being skipped
# (never counted as a pass of the namespace setup).  Only addresses in the
# namespaces made here, or loopback, are ever used.  See LICENSE.

load test_helper

setup_file() {
	local n=$$
	export NET_NSA=dhna$n NET_NSB=dhnb$n NET_VA=dhva$n NET_VB=dhvb$n
	export NET_A=10.231.$((n % 200 + 20)).1 NET_B=10.231.$((n % 200 + 20)).2 NET_NS=0
	# DH_TEST_NO_NETNS=1 tries the loopback fallback on a machine that has namespaces
	if [ "${DH_TEST_NO_NETNS:-0}" != 1 ] && ip netns add "$NET_NSA" 2>/dev/null && ip netns add "$NET_NSB" 2>/dev/null &&
		ip link add "$NET_VA" type veth peer name "$NET_VB" 2>/dev/null &&
		ip link set "$NET_VA" netns "$NET_NSA" && ip link set "$NET_VB" netns "$NET_NSB" &&
		ip -n "$NET_NSA" addr add "$NET_A/24" dev "$NET_VA" &&
		ip -n "$NET_NSB" addr add "$NET_B/24" dev "$NET_VB" &&
		ip -n "$NET_NSA" link set "$NET_VA" up && ip -n "$NET_NSB" link set "$NET_VB" up &&
		ip -n "$NET_NSA" link set lo up && ip -n "$NET_NSB" link set lo up; then
		NET_NS=1
	else
		net_cleanup
		NET_A=127.0.0.1 NET_B=127.0.0.1
	fi
	export NET_NS NET_A NET_B
}

net_cleanup() {
	ip link del "$NET_VA" 2>/dev/null || true
	ip netns del "$NET_NSA" 2>/dev/null || true
	ip netns del "$NET_NSB" 2>/dev/null || true
}

teardown_file() {
	net_cleanup
}

setup() {
	dh_setup
	D=$BATS_TEST_TMPDIR
	C=$(dh_name)
}

teardown() {
	dh_teardown
}

# serve NAME [PORT [ARGS...]]: an exporter of NAME on host A (port 0: any),
# log in $D/serve.log; sets EP to its endpoint and SERVE_PID.
serve() {
	local name=$1 port=${2:-0}
	shift 2 || shift $#
	: >"$D/serve.log"
	dh_bg sh -c 'exec "$@" 2>>"$0"' "$D/serve.log" $(onA_prefix) \
		dh-read --serve "tcp://$NET_A:$port" "$@" "$name"
	SERVE_PID=$DH_BG_PID
	dh_await grep -q 'serving on' "$D/serve.log"
	EP=$(sed -n 's/.*serving on \(tcp:[^ ]*\).*/\1/p' "$D/serve.log" | tail -1)
	[ -n "$EP" ]
}

# onA_prefix, onB_prefix: the words that put a command on host A or B
# (nothing over loopback).
onA_prefix() {
	[ "$NET_NS" = 1 ] && printf '%s\n' "$(command -v ip)" netns exec "$NET_NSA"
	return 0
}

# remote_read ARGS...: dh-read --connect "$EP" ARGS on host B in the
# background, standard output to $D/out, errors to $D/out.err; $reader is
# its pid.
remote_read() {
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out" $(onB_prefix) dh-read --connect "$EP" "$@"
	reader=$DH_BG_PID
}

onB_prefix() {
	[ "$NET_NS" = 1 ] && printf '%s\n' "$(command -v ip)" netns exec "$NET_NSB"
	return 0
}

# committed NAME: messages committed to the channel.
committed() {
	dh-stat --json "$1" | grep -o '"committed":[0-9]*' | head -1 | cut -d: -f2
}

committed_is() { # NAME N
	[ "$(committed "$1")" = "$2" ]
}

# reap PID: wait for a background process of this test; its exit status in $status.
reap() {
	status=0
	wait "$1" || status=$?
	echo "reaped $1: status $status" >&2
}

# lines FILE: lines in FILE (0 if missing).
lines() {
	[ -e "$1" ] && wc -l <"$1" || echo 0
}

at_least() { # FILE N
	[ "$(lines "$1")" -ge "$2" ]
}

subscribers() { # NAME: remote subscribers attached (readers labelled net:)
	dh-stat --json "$1" | grep -o '"name":"net:[^"]*"' | wc -l
}

has_subscriber() { # NAME N
	[ "$(subscribers "$1")" -ge "$2" ]
}

@test "two network namespaces joined by a veth pair (else loopback)" {
	if [ "$NET_NS" != 1 ]; then
		skip "network namespaces unavailable: every test of this file ran over 127.0.0.1"
	fi
	# the addresses are there; every test below then crosses the veth pair
	ip -n "$NET_NSA" addr show dev "$NET_VA" | grep -q "inet $NET_A/24"
	ip -n "$NET_NSB" addr show dev "$NET_VB" | grep -q "inet $NET_B/24"
	run -0 ip -n "$NET_NSB" route get "$NET_A"
	assert_output --partial "dev $NET_VB"
}

@test "sync: lines cross byte-exact, end-of-stream ends the remote reader, the subscriber shows in dh-stat" {
	dh-create --slots 8 --slot-size 1K --policy sync "$C"
	serve "$C"
	remote_read --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	run dh-stat "$C"
	assert_output --partial "net:$NET_B"
	seq 1 3000 | dh-write --lines --timeout 20s "$C"
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 3000 | cmp - "$D/out"
	[ ! -s "$D/out.err" ]
}

@test "sync: a stopped remote reader holds the local writer back (credit), then everything arrives" {
	dh-create --slots 8 --slot-size 1K --policy sync "$C"
	serve "$C"
	remote_read --lines "$C"
	dh_await has_subscriber "$C" 1
	kill -STOP "$reader"
	# the window (1024), the one message in hand and the slots (8) at most
	# can be ahead of a reader that reads nothing
	# (kept short: the exporter drops a subscriber silent for 5 s, and
	# what was in flight to it is then lost to it, see dh-read(1))
	run -3 --separate-stderr sh -c 'seq 1 3000 | dh-write --lines --no-eos --timeout 1s "$0"' "$C"
	kill -CONT "$reader"
	[[ $stderr == *"timed out"* ]]
	# the writer is gone: the count is final
	committed=$(committed "$C")
	[ "$committed" -le 1033 ]
	dh_await at_least "$D/out" "$committed"
	seq 1 "$committed" | cmp - "$D/out"
}

@test "ring: a slow remote reader loses messages and says how many; nothing is duplicated" {
	dh-create --slots 4 --slot-size 64 --policy ring "$C"
	serve "$C"
	remote_read --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	kill -STOP "$reader"
	seq 1 5000 | dh-write --lines "$C"
	kill -CONT "$reader"
	reap "$reader"
	[ "$status" -eq 0 ]
	grep -q 'lost [0-9]* messages before seq' "$D/out.err"
	# strictly increasing, ends with the last message, fewer than all
	sort -n -c -u "$D/out"
	[ "$(tail -1 "$D/out")" = 5000 ]
	n=$(lines "$D/out")
	[ "$n" -lt 5000 ]
	lost=$(sed -n 's/.*lost \([0-9]*\) messages.*/\1/p' "$D/out.err" | awk '{ s += $1 } END { print s }')
	[ $((n + lost)) -eq 5000 ]
}

@test "latest: the remote reader gets only newer messages, the newest last" {
	dh-create --slots 4 --slot-size 64 --policy latest "$C"
	serve "$C"
	remote_read --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 3000 | dh-write --lines "$C"
	reap "$reader"
	[ "$status" -eq 0 ]
	sort -n -c -u "$D/out"
	[ "$(tail -1 "$D/out")" = 3000 ]
}

@test "queue: two remote subscribers share the messages, each to exactly one" {
	dh-create --slots 16 --slot-size 64 --policy queue "$C"
	serve "$C"
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out1" $(onB_prefix) dh-read --connect "$EP" --lines --timeout 20s "$C"
	r1=$DH_BG_PID
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out2" $(onB_prefix) dh-read --connect "$EP" --lines --timeout 20s "$C"
	r2=$DH_BG_PID
	dh_await has_subscriber "$C" 2
	seq 1 4000 | dh-write --lines "$C"
	reap "$r1"
	[ "$status" -eq 0 ]
	reap "$r2"
	[ "$status" -eq 0 ]
	sort -n "$D/out1" "$D/out2" | cmp - <(seq 1 4000)
	# every message was acknowledged by the one that got it: none counted lost
	dh_await eval '[ "$(subscribers "$C")" = 0 ]'
	[ "$(queue_lost "$C")" = 0 ]
}

# queue_lost NAME: queue messages the channel counted lost.
queue_lost() {
	dh-stat --json "$1" | jq '.channels[0].counters.queue_lost'
}

# net_messages NAME: messages the exporter's readers took from NAME.
net_messages() {
	dh-stat --json "$1" | jq '[.channels[0].readers[] | select(.name | startswith("net:")) | .messages] | add // 0'
}

@test "queue: messages in flight to a remote reader that is killed are counted lost, none dropped silently" {
	dh-create --slots 64 --slot-size 64 --policy queue "$C"
	serve "$C"
	remote_read --lines --timeout 60s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 20 | dh-write --lines --no-eos "$C"
	dh_await at_least "$D/out" 20
	# acknowledged once written out: nothing of these is held any more
	kill -STOP "$reader"
	seq 21 50 | dh-write --lines --no-eos "$C"
	# the exporter took all 30 for it: they are on their way to a reader
	# that will never pass them on
	dh_await eval '[ "$(net_messages "$C")" = 50 ]'
	kill -KILL "$reader"
	reap "$reader"
	# a silent subscriber is dropped after 5 s and waited for 10 s more (it
	# might resume): then what it never acknowledged is counted
	dh_await -t 40 eval '[ "$(queue_lost "$C")" = 30 ]'
	[ "$(lines "$D/out")" = 20 ]
	seq 1 20 | cmp - "$D/out"
	grep -q '30 messages sent and never acknowledged, counted lost' "$D/serve.log"
	run -0 dh-stat "$C"
	assert_output --partial "queue lost           30"
}

@test "queue: remote readers that leave take nothing with them; --count N takes N, the rest stays queued" {
	dh-create --slots 64 --slot-size 64 --policy queue "$C"
	serve "$C"
	seq 1 50 | dh-write --lines --no-eos "$C"
	run -0 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --lines --count 5 --timeout 10s "$C"
	[ "$output" = "$(seq 1 5)" ]
	dh_await eval '[ "$(subscribers "$C")" = 0 ]'
	run -0 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --lines --count 45 --timeout 10s "$C"
	[ "$output" = "$(seq 6 50)" ]
	dh_await eval '[ "$(subscribers "$C")" = 0 ]'
	[ "$(queue_lost "$C")" = 0 ]
}

@test "a writer killed is reported remotely as dead, not as end-of-stream" {
	dh-create --slots 8 --slot-size 64 --policy sync "$C"
	serve "$C"
	dh_feed "$C" --lines
	remote_read --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	echo one >&"$DH_FEED"
	dh_await at_least "$D/out" 1
	kill -KILL "$DH_FEED_PID"
	reap "$reader"
	[ "$status" -eq 1 ]
	grep -q 'the remote writer died without marking end-of-stream' "$D/out.err"
	[ "$(cat "$D/out")" = one ]
}

@test "exporter killed and restarted mid-stream: the remote reader resumes, nothing lost, nothing twice" {
	dh-create --slots 4096 --slot-size 64 --policy sync "$C"
	serve "$C"
	port=${EP##*:}
	dh_feed "$C" --lines
	remote_read --lines --timeout 30s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 500 >&"$DH_FEED"
	dh_await at_least "$D/out" 500
	kill -KILL "$SERVE_PID"
	seq 501 1000 >&"$DH_FEED"
	serve "$C" "$port"
	seq 1001 1500 >&"$DH_FEED"
	dh_feed_end
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 1500 | cmp - "$D/out"
}

@test "ring: a gap the channel no longer holds after a restart is reported and counted lost" {
	dh-create --slots 128 --slot-size 64 --policy ring "$C"
	serve "$C"
	port=${EP##*:}
	dh_feed "$C" --lines
	remote_read --lines --timeout 30s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 100 >&"$DH_FEED"
	dh_await at_least "$D/out" 100
	kill -KILL "$SERVE_PID"
	# without its exporter nobody reads: the writer laps the ring
	seq 101 400 >&"$DH_FEED"
	dh_await committed_is "$C" 400
	serve "$C" "$port"
	dh_feed_end
	reap "$reader"
	[ "$status" -eq 0 ]
	sort -n -c -u "$D/out"
	[ "$(tail -1 "$D/out")" = 400 ]
	grep -q 'lost [0-9]* messages before seq' "$D/out.err"
	lost=$(sed -n 's/.*lost \([0-9]*\) messages.*/\1/p' "$D/out.err" | awk '{ s += $1 } END { print s }')
	[ $(($(lines "$D/out") + lost)) -eq 400 ]
}

@test "import: 100 MB of random data byte-exact through export and import into a local channel" {
	M=$(dh_name mirror)
	dh-create --slots 64 --slot-size 64K --policy sync "$C"
	dh-create --slots 64 --slot-size 64K --policy sync "$M"
	serve "$C"
	head -c 100M /dev/urandom >"$D/in"
	dh_bg sh -c 'exec "$@" 2>"$0.err"' "$D/imp" $(onB_prefix) dh-write --connect "$EP" --timeout 60s "$M"
	imp=$DH_BG_PID
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out" dh-read --timeout 60s "$M"
	reader=$DH_BG_PID
	dh_await has_subscriber "$C" 1
	dh-write --timeout 60s "$C" <"$D/in"
	reap "$imp"
	[ "$status" -eq 0 ]
	reap "$reader"
	[ "$status" -eq 0 ]
	cmp "$D/in" "$D/out"
}

@test "import: a slow remote source still has each message published in the mirror at once (batched, flushed before waiting)" {
	M=$(dh_name mirror)
	dh-create --slots 64 --slot-size 64 --policy sync "$C"
	dh-create --slots 1024 --slot-size 64 --policy sync "$M"
	serve "$C"
	dh_feed "$C" --lines
	dh_bg $(onB_prefix) dh-write --connect "$EP" --timeout 60s "$M"
	dh_await has_subscriber "$C" 1
	dh_bg sh -c 'exec dh-read --lines --timeout 60s "$0" >"$1"' "$M" "$D/mirror"
	# one line at a time: each must reach the mirror's reader before the
	# next is sent (an importer holding a batch back would stall here)
	for i in 1 2 3 4 5 6; do
		echo "$i" >&"$DH_FEED"
		dh_await at_least "$D/mirror" "$i"
	done
	# then a burst, published in batches, every message still there once
	seq 7 20000 >&"$DH_FEED"
	dh_await -t 30 at_least "$D/mirror" 20000
	seq 1 20000 | cmp - "$D/mirror"
}

@test "import: the remote writer's death reaches the local readers of the mirror" {
	M=$(dh_name mirror)
	dh-create --slots 8 --slot-size 64 --policy sync "$C"
	dh-create --slots 8 --slot-size 64 --policy sync "$M"
	serve "$C"
	dh_feed "$C" --lines
	dh_bg sh -c 'exec "$@" 2>"$0.err"' "$D/imp" $(onB_prefix) dh-write --connect "$EP" "$M"
	imp=$DH_BG_PID
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out" dh-read --lines --timeout 20s "$M"
	reader=$DH_BG_PID
	dh_await has_subscriber "$C" 1
	echo hello >&"$DH_FEED"
	dh_await at_least "$D/out" 1
	kill -KILL "$DH_FEED_PID"
	reap "$imp"
	[ "$status" -eq 1 ]
	grep -q 'remote writer died' "$D/imp.err"
	reap "$reader"
	[ "$status" -eq 1 ]
	grep -q 'writer died without marking end-of-stream' "$D/out.err"
}

@test "an importer killed frees its reader at the exporter" {
	M=$(dh_name mirror)
	dh-create --slots 8 --slot-size 64 --policy sync "$C"
	dh-create --slots 8 --slot-size 64 --policy sync "$M"
	serve "$C"
	dh_bg $(onB_prefix) dh-write --connect "$EP" "$M"
	imp=$DH_BG_PID
	dh_await has_subscriber "$C" 1
	kill -KILL "$imp"
	# silent subscribers are dropped after 5 s; the writer is then free
	dh_await -t 15 eval '[ "$(subscribers "$C")" = 0 ]'
	# a local reader now lets the sync writer through: nothing else holds it
	dh_bg sh -c 'exec dh-read --lines --timeout 20s "$0" >"$1"' "$C" "$D/local"
	local=$DH_BG_PID
	dh_await -t 10 eval '[ "$(dh-stat --json "$C" | grep -o "\"readers_alive\":[0-9]*")" = "\"readers_alive\":1" ]'
	seq 1 100 | dh-write --lines --timeout 5s "$C"
	reap "$local"
	[ "$status" -eq 0 ]
	seq 1 100 | cmp - "$D/local"
}

@test "schema: a remote reader expecting another schema is refused; the right one reads records" {
	dh-create --schema 'a:u32' --slots 8 --policy sync "$C"
	serve "$C"
	run -1 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --schema 'b:f64' --timeout 10s "$C"
	[[ $stderr == *"schema mismatch"* ]]
	[ -z "$output" ]
	remote_read --schema 'a:u32' --json --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	printf 'a\n7\n' | dh-write --csv "$C"
	reap "$reader"
	[ "$status" -eq 0 ]
	grep -q '"a":7' "$D/out"
}

@test "keyed channel: the exporter needs no key; the remote reader verifies the MAC with it" {
	head -c 32 /dev/urandom >"$D/key"
	chmod 600 "$D/key"
	head -c 32 /dev/urandom >"$D/other"
	chmod 600 "$D/other"
	dh-create --key "$D/key" --slots 8 --policy sync "$C"
	serve "$C"
	run -1 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --timeout 10s "$C"
	[[ $stderr == *"key is needed"* ]]
	run -1 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --key "$D/other" --timeout 10s "$C"
	[[ $stderr == *"not the remote channel's"* ]]
	remote_read --key "$D/key" --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 100 | dh-write --key "$D/key" --lines "$C"
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 100 | cmp - "$D/out"
}

@test "CURVE: a listed client reads; an unknown key and plaintext get nothing; a bad key directory stops the exporter" {
	dh-broker --keygen "$D/k"
	dh-broker --keygen "$D/stranger"
	dh-create --slots 8 --slot-size 64 --policy sync "$C"
	run -1 --separate-stderr $(onA_prefix) dh-read --serve "tcp://$NET_A:0" --curve "$D/none" "$C"
	[[ $stderr == *"broker.key"* ]]
	serve "$C" 0 --curve "$D/k"
	grep -q '(CURVE)' "$D/serve.log"
	# the stranger's directory has its own server key: give it ours, keep its client key
	cp "$D/k/broker.pub" "$D/stranger/broker.pub"
	run -1 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --curve "$D/stranger" --timeout 10s "$C"
	[[ $stderr == *"refused our key"* ]]
	[ -z "$output" ]
	grep -q 'refused client key' "$D/serve.log"
	run -3 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --timeout 3s "$C"
	[ -z "$output" ]
	remote_read --curve "$D/k" --lines --timeout 20s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 50 | dh-write --lines "$C"
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 50 | cmp - "$D/out"
}

# hostile CASE: a raw ZeroMQ ROUTER on host A that answers HELLO with a
# good WELCOME, one good message ("good"), then the crafted CASE.
hostile() {
	local port
	: >"$D/hostile.log"
	dh_bg $(onA_prefix) /usr/bin/python3 "$DH_TOP/tests/net/hostile.py" "tcp://$NET_A:0" "$1" "$D/hostile.log"
	dh_await grep -q '^bound ' "$D/hostile.log"
	EP=$(sed -n 's/^bound //p' "$D/hostile.log")
}

@test "hostile exporters: forged, truncated, replayed, reordered, oversized frames and another version never reach stdout" {
	for c in forged truncated replayed reordered oversized version session gap batch-truncated batch-replayed; do
		hostile "$c"
		run -1 --separate-stderr $(onB_prefix) dh-read --connect "$EP" --lines --timeout 10s "$C"
		echo "case $c: status $status, stdout '$output', stderr '$stderr'" >&2
		[ "$output" = good ]
		case $c in
		forged) [[ $stderr == *"checksum"* ]] ;;
		version) [[ $stderr == *"protocol version 7"* ]] ;;
		truncated | batch-truncated) [[ $stderr == *"truncated"* ]] ;;
		replayed | reordered | batch-replayed) [[ $stderr == *"replayed or reordered"* ]] ;;
		oversized) [[ $stderr == *"oversized"* ]] ;;
		session) [[ $stderr == *"another session"* ]] ;;
		gap) [[ $stderr == *"silent gap"* ]] ;;
		esac
		kill "$DH_BG_PID" 2>/dev/null || :
		wait "$DH_BG_PID" 2>/dev/null || :
	done
}

@test "hostile exporter into an importer: nothing bad reaches the local channel" {
	M=$(dh_name mirror)
	dh-create --slots 8 --slot-size 64 --policy ring "$M"
	hostile forged
	run -1 --separate-stderr $(onB_prefix) dh-write --connect "$EP" --timeout 10s "$M"
	[[ $stderr == *"checksum mismatch at remote seq 1"* ]]
	run dh-read --no-wait --lines "$M"
	assert_output good
}

@test "link down and up: the remote reader resumes where it was" {
	if [ "$NET_NS" != 1 ]; then
		skip "needs the veth pair (network namespaces unavailable)"
	fi
	dh-create --slots 4096 --slot-size 64 --policy sync "$C"
	serve "$C"
	dh_feed "$C" --lines
	remote_read --lines --timeout 30s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 200 >&"$DH_FEED"
	dh_await at_least "$D/out" 200
	ip -n "$NET_NSB" link set "$NET_VB" down
	seq 201 400 >&"$DH_FEED"
	ip -n "$NET_NSB" link set "$NET_VB" up
	seq 401 600 >&"$DH_FEED"
	dh_feed_end
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 600 | cmp - "$D/out"
}

# connected_from_B PORT: a TCP connection to PORT is established on host B.
connected_from_B() {
	$(onB_prefix) ss -Htn state established "( dport = :$1 )" | grep -q .
}

@test "queue, link down: what was in flight comes again on the resumed session, exactly once, nothing counted lost" {
	if [ "$NET_NS" != 1 ]; then
		skip "needs the veth pair (network namespaces unavailable)"
	fi
	dh-create --slots 512 --slot-size 64 --policy queue "$C"
	serve "$C"
	port=${EP##*:}
	dh_feed "$C" --lines
	remote_read --lines --timeout 60s "$C"
	dh_await has_subscriber "$C" 1
	seq 1 100 >&"$DH_FEED"
	dh_await at_least "$D/out" 100
	ip -n "$NET_NSB" link set "$NET_VB" down
	seq 101 300 >&"$DH_FEED"
	# the exporter claimed them for the subscriber: in flight on a dead link
	dh_await eval '[ "$(net_messages "$C")" -ge 300 ]'
	connected_from_B "$port"
	# the subscriber gives the silent connection up (to dial again)
	dh_await -t 20 eval '! connected_from_B "$port"' 
	ip -n "$NET_NSB" link set "$NET_VB" up
	dh_await -t 20 grep -q "resumes session" "$D/serve.log"
	seq 301 400 >&"$DH_FEED"
	dh_feed_end
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 400 | cmp - "$D/out"
	dh_await eval '[ "$(subscribers "$C")" = 0 ]'
	[ "$(queue_lost "$C")" = 0 ]
}

@test "broker: the exporter registers its endpoint; dh-read --broker on host B finds it and reads; dh-stat --broker lists both" {
	dh_bg sh -c 'exec dh-broker --bind "$0" --heartbeat 100ms 2>"$1"' "ipc://$D/broker.sock" "$D/broker.log"
	dh_await test -S "$D/broker.sock"
	export DH_BROKER=ipc://$D/broker.sock
	dh-create --slots 64 --slot-size 64 --policy sync "$C"
	dh_feed "$C" --lines
	serve "$C"
	# host B has channels of its own, not A's
	mkdir -m 700 "$D/hostB"
	dh_bg sh -c 'exec "$@" >"$0" 2>"$0.err"' "$D/out" env DH_SHM_DIR="$D/hostB" $(onB_prefix) \
		dh-read --lines --timeout 20s "$C"
	reader=$DH_BG_PID
	dh_await has_subscriber "$C" 1
	grep -q "not here: reading it from .* at $EP" "$D/out.err"
	dh_await eval 'dh-stat --broker "$DH_BROKER" --json | grep -q "\"label\":\"net:"'
	run -0 dh-stat --broker "$DH_BROKER" --json
	assert_output --partial "\"data_transport\":\"zmq\",\"zmq_endpoint\":\"$EP\""
	assert_output --partial "\"transport\":\"zmq\",\"endpoint\":\"$EP\""
	# the remote reader shows how it reads: over zmq, through that exporter
	run -0 jq -c --arg c "$C" '.channels[] | select(.channel == $c) | .readers[] | select(.label | startswith("net:")) |
		[.transport, .role, .endpoint]' <<<"$output"
	assert_output "[\"zmq\",\"subscriber\",\"$EP\"]"
	seq 1 300 >&"$DH_FEED"
	dh_feed_end
	reap "$reader"
	[ "$status" -eq 0 ]
	seq 1 300 | cmp - "$D/out"
}

@test "usage: --serve and --connect exclude each other and other modes" {
	run -2 dh-read --serve tcp://127.0.0.1:0 --connect tcp://127.0.0.1:1 x
	run -2 dh-read --serve tcp://127.0.0.1:0 --lines x
	run -2 dh-read --connect tcp://127.0.0.1:1 --no-wait x
	run -2 dh-read --connect 'tcp://127.0.0.1:99999' x
	run -2 dh-write --connect tcp://127.0.0.1:1 --lines x
	run -2 dh-write --curve /tmp x
	run -2 dh-read --curve /tmp x
}
