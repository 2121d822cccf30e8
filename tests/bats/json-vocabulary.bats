#!/usr/bin/env bats
# json-vocabulary.bats: dh-stat, dh-diagnose and dh-validate --json name a
# channel's properties alike (dh-json(5)). See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	shm=$(dh_shm "$ch")
}

teardown() {
	dh_teardown
}

@test "one vocabulary: the fields dh-stat and dh-diagnose share have the same names and values" {
	dh-create --slots 4 --slot-size 64 --schema 'a:u32;b:u8' "$ch"
	printf '\1\0\0\0\2\0\0\0' | dh-write "$ch"
	stat=$(dh-stat --json "$ch" | jq -c '.channels[0]')
	run -0 --separate-stderr dh-diagnose --json "$ch"
	diag=$output
	local f
	for f in channel policy checksum keyed schema schema_hash record_size slots slot_size max_readers \
		meta_size segment_size evict_after_ns created_ns creator_uid creator_pid committed end_of_stream \
		stream stream_start counters; do
		[ "$(jq -c ".$f" <<<"$diag")" = "$(jq -c ".$f" <<<"$stat")" ] ||
			fail "$f: dh-diagnose $(jq -c ".$f" <<<"$diag"), dh-stat $(jq -c ".$f" <<<"$stat")"
		[ "$(jq -c ".$f" <<<"$stat")" != null ] || [ "$f" = evict_after_ns ] ||
			fail "$f: missing from dh-stat"
	done
	[ "$(jq -r .channel <<<"$stat")" = "$ch" ]
	[ "$(jq .segment_size <<<"$stat")" = "$(stat -c %s "$shm")" ]
	[ "$(jq .record_size <<<"$stat")" = 8 ]
	[ "$(jq .committed <<<"$stat")" = 1 ]
	# the deprecated aliases still carry the same values until 0.2
	[ "$(jq -r .name <<<"$stat")" = "$ch" ]
	[ "$(jq .geometry.total_size <<<"$diag")" = "$(jq .segment_size <<<"$diag")" ]
}

@test "one vocabulary: dh-validate names the channel and its findings as dh-diagnose does" {
	dh-create --slots 4 --slot-size 64 "$ch"
	printf 'x\n' | dh-write --lines "$ch"
	run -0 --separate-stderr dh-validate --json "$ch"
	[ "$(jq -r .channel <<<"$output")" = "$ch" ]
	[ "$(jq -c '.findings' <<<"$output")" = '[]' ]
	run -0 --separate-stderr dh-diagnose --json "$ch"
	[ "$(jq -r .channel <<<"$output")" = "$ch" ]
	[ "$(jq -c '.findings' <<<"$output")" = '[]' ]
}

@test "one vocabulary: a participant's idle time is idle_ns in both dh-stat and dh-diagnose" {
	dh-create --slots 4 --slot-size 64 "$ch"
	dh_feed "$ch"
	dh_await dh_locked "$ch"
	run -0 --separate-stderr dh-stat --json "$ch"
	[ "$(jq '.channels[0].writer | has("idle_ns")' <<<"$output")" = true ]
	run -0 --separate-stderr dh-diagnose --json "$ch"
	[ "$(jq '.writer | has("idle_ns")' <<<"$output")" = true ]
	[ "$(jq '.writer.idle_ns == .writer.age_ns' <<<"$output")" = true ]
}
