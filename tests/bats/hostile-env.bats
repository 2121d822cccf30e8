# hostile-env.bats: full /dev/shm, other users, symlinks, squatted and bad
# names, racing creators, pid reuse, CPU stress. See LICENSE.

load test_helper

not_locked() {
	! dh_locked "$1"
}

# run_in_small_shm CMD: run CMD (a shell string) in a private mount
# namespace whose /dev/shm is a fresh 2 MB tmpfs, then list what is left.
run_in_small_shm() {
	run --separate-stderr unshare -m --propagation private sh -c \
		"mount -t tmpfs -o size=2m tmpfs /dev/shm || exit 99; $1; rc=\$?; echo left:; ls -A /dev/shm; exit \$rc"
}

@test "full /dev/shm: create fails with ENOSPC, leaves nothing, never SIGBUS" {
	local name
	name=$(dh_name)
	run_in_small_shm "dh-create --slots 64 --slot-size 64K $name"
	assert_equal "$status" 1
	assert_equal "$stderr" "dh-create: $name: No space left on device"
	assert_equal "$output" "left:"
}

@test "full /dev/shm: dh-write --create fails cleanly; a channel that fits still works" {
	local name
	name=$(dh_name)
	run_in_small_shm "echo hi | dh-write --create --slots 64 --slot-size 64K $name; echo status \$?; \
		echo hi | dh-write --create --slots 4 --slot-size 1K $name && dh-read --no-wait --lines $name && dh-create --remove $name"
	assert_equal "$status" 0
	assert_line --index 0 "status 1"
	assert_line --index 1 "hi"
	assert_line --index 2 "left:"
	assert_equal "${#lines[@]}" 3
	[[ $stderr == *"No space left on device"* ]]
}

@test "another user cannot read or write a 0600 channel: EACCES, and diagnose cannot check" {
	local name
	name=$(dh_name)
	umask 000
	dh-create "$name"
	run -1 --separate-stderr runuser -u nobody -- "$DH_TOP/$DH_BUILD/bin/dh-read" --no-wait "$name"
	assert_equal "$stderr" "dh-read: $name: Permission denied"
	run -1 --separate-stderr runuser -u nobody -- sh -c "echo x | '$DH_TOP/$DH_BUILD/bin/dh-write' '$name'"
	assert_equal "$stderr" "dh-write: $name: Permission denied"
	run -2 --separate-stderr runuser -u nobody -- "$DH_TOP/$DH_BUILD/bin/dh-diagnose" "$name"
	[[ $stderr == *"Permission denied"* ]]
	[[ $output != *DEAD* ]]
}

@test "a symlink planted in /dev/shm is never followed" {
	local name target
	name=$(dh_name)
	target=$BATS_TEST_TMPDIR/victim
	echo precious >"$target"
	ln -s "$target" "$(dh_shm "$name")"
	run -1 --separate-stderr dh-create "$name"
	assert_equal "$stderr" "dh-create: $name: channel exists"
	run -1 --separate-stderr dh-read --no-wait "$name"
	assert_equal "$stderr" "dh-read: $name: Too many levels of symbolic links"
	run -1 --separate-stderr sh -c "echo x | dh-write $name"
	assert_equal "$stderr" "dh-write: $name: Too many levels of symbolic links"
	run -0 cat "$target"
	assert_output precious
	run -0 dh-create --remove --force "$name"
	[ -f "$target" ]
}

@test "a name squatted by another user is refused before any damage" {
	local name f
	name=$(dh_name)
	f=$(dh_shm "$name")
	runuser -u nobody -- sh -c "printf squat >'$f'"
	run -1 --separate-stderr dh-create "$name"
	assert_equal "$stderr" "dh-create: $name: channel exists"
	run -1 --separate-stderr sh -c "echo x | dh-write $name"
	assert_equal "$stderr" "dh-write: $name: not a dh channel"
	run -0 stat -c '%U %s' "$f"
	assert_output "nobody 5"
	run -0 cat "$f"
	assert_output squat
}

@test "bad names are refused by every tool before touching /dev/shm" {
	local n long
	long=$(printf 'a%.0s' $(seq 201))
	for n in "a/b" ".." "../dh.x" "" ".hidden" "$long" "sp ace" "x*"; do
		run -2 --separate-stderr dh-create "$n"
		[ "${#lines[@]}" -eq 0 ]
		[[ $stderr == dh-create:* ]]
		run -2 --separate-stderr dh-read --no-wait "$n"
		[[ $stderr == dh-read:* ]]
		run -2 --separate-stderr dh-write "$n" </dev/null
		[[ $stderr == dh-write:* ]]
	done
	run -0 sh -c "ls /dev/shm | grep -c '^dh\.\(a\|\.\|sp\|x\)' || true"
	assert_output 0
}

@test "two creators racing for one name, 200 rounds: exactly one wins each time" {
	local name i wins=0 losses=0 a b
	name=$(dh_name)
	for i in $(seq 200); do
		dh-create --slots 2 --slot-size 64 "$name" 2>"$BATS_TEST_TMPDIR/a" & a=$!
		dh-create --slots 2 --slot-size 64 "$name" 2>"$BATS_TEST_TMPDIR/b" & b=$!
		local sa=0 sb=0
		wait $a || sa=$?
		wait $b || sb=$?
		if [ $sa -eq 0 ] && [ $sb -eq 1 ]; then
			grep -qx "dh-create: $name: channel exists" "$BATS_TEST_TMPDIR/b"
			wins=$((wins + 1))
		elif [ $sa -eq 1 ] && [ $sb -eq 0 ]; then
			grep -qx "dh-create: $name: channel exists" "$BATS_TEST_TMPDIR/a"
			wins=$((wins + 1))
		else
			losses=$((losses + 1))
			echo "round $i: statuses $sa $sb" >&2
		fi
		dh-create --remove "$name"
	done
	assert_equal "$wins" 200
	assert_equal "$losses" 0
}

@test "pid reuse: a dead reader whose pid is now a live process is still dead" {
	local name hostpid
	name=$(dh_name)
	dh-create "$name"
	# In a new pid namespace the reader is pid 1, so the table records 1,
	# which on the host is init: alive.  Only the lock tells the truth.
	dh_bg unshare --pid --fork dh-read "$name"
	dh_await dh_locked "$name"
	hostpid=$(pgrep -f "^dh-read $name\$" | head -1)
	[ -n "$hostpid" ]
	run -0 sh -c "dh-diagnose --json $name | jq -r '.readers[0].pid'"
	assert_output 1
	kill -KILL "$hostpid"
	dh_await not_locked "$name"
	run -0 sh -c "dh-diagnose --json $name | jq -r '.readers[0].state'"
	assert_output DEAD
	run -0 sh -c "dh-diagnose --json $name | jq -r '.readers[0].pid'"
	assert_output 1
	kill -0 1
}

@test "no false deaths under CPU stress: nobody reaped, every message delivered" {
	local name
	command -v stress-ng
	name=$(dh_name)
	dh-create --slots 8 --slot-size 64 "$name"
	stress-ng --cpu 4 --timeout 20s --quiet &
	local stress=$!
	DH_BG_PIDS+=("$stress")
	dh_bg sh -c "dh-read --lines $name | wc -l >$BATS_TEST_TMPDIR/r1"
	dh_bg sh -c "dh-read --lines $name | wc -l >$BATS_TEST_TMPDIR/r2"
	dh_await sh -c "dh-diagnose --json $name | jq -e '[.readers[] | select(.state == \"ALIVE\")] | length == 2' >/dev/null"
	seq 1 50000 | dh-write --lines "$name"
	dh_await -t 60 sh -c "[ -s $BATS_TEST_TMPDIR/r1 ] && [ -s $BATS_TEST_TMPDIR/r2 ]"
	run -0 cat "$BATS_TEST_TMPDIR/r1" "$BATS_TEST_TMPDIR/r2"
	assert_equal "${lines[0]}" 50000
	assert_equal "${lines[1]}" 50000
	run -0 sh -c "dh-diagnose --json $name | jq -r '.counters.readers_reaped'"
	assert_output 0
	kill "$stress" 2>/dev/null || true
}

@test "a segment truncated under a running reader: one line, exit 1, no crash" {
	local name
	name=$(dh_name)
	dh-create --slots 4 --slot-size 4K "$name"
	dh_bg sh -c "dh-read --lines $name >/dev/null 2>$BATS_TEST_TMPDIR/err; echo \$? >$BATS_TEST_TMPDIR/status"
	dh_await dh_locked "$name"
	truncate -s 0 "$(dh_shm "$name")"
	dh_await -t 10 test -s "$BATS_TEST_TMPDIR/status"
	run -0 cat "$BATS_TEST_TMPDIR/status"
	assert_output 1
	run -0 cat "$BATS_TEST_TMPDIR/err"
	assert_output "dh-read: $name: segment truncated underneath (bus error)"
}
