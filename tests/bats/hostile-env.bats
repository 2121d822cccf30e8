# hostile-env.bats: full /dev/shm, other users, symlinks, squatted and bad
# names, racing creators, pid reuse, CPU stress. See LICENSE.

load test_helper

# Hostile neighbours: a system user of our own, made for this file only.
setup_file() {
	DH_HOSTILE_USER=dhhost$$
	useradd --system --no-create-home --shell /usr/sbin/nologin "$DH_HOSTILE_USER"
	export DH_HOSTILE_USER
}

teardown_file() {
	userdel "$DH_HOSTILE_USER" 2>/dev/null || true
}

teardown() {
	dh_teardown
	rmdir "$(dh_shm "$(dh_name)")" 2>/dev/null || true   # a planted directory
	if [ -n "${DH_TEST_DIR:-}" ]; then
		rm -rf "$DH_TEST_DIR"
	fi
}

# as_user CMD...: run CMD as the hostile user (PATH to our build kept).
as_user() {
	runuser -u "$DH_HOSTILE_USER" -- env PATH="$DH_TOP/$DH_BUILD/bin:/usr/bin:/bin" "$@"
}

# test_dir: a fresh directory on tmpfs (/dev/shm) for DH_SHM_DIR, mode 1777
# like /dev/shm itself; teardown removes it.
test_dir() {
	DH_TEST_DIR=$(mktemp -d /dev/shm/dhtest-dir.XXXXXX)
	chmod 1777 "$DH_TEST_DIR"
}

# rdlock FILE MARK: as the hostile user, open FILE read-only and hold OFD
# read locks on bytes 0..257 (every liveness byte and the metadata lock)
# until killed; MARK is created once they are held.
rdlock() {
	dh_bg runuser -u "$DH_HOSTILE_USER" -- /usr/bin/python3 -c '
import fcntl, os, signal, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
for i in range(258):
    fcntl.fcntl(fd, 37, struct.pack("hh4xqqi4x", fcntl.F_RDLCK, 0, i, 1, 0))  # F_OFD_SETLK
open(sys.argv[2], "w").close()
signal.pause()' "$1" "$2"
	dh_await test -e "$2"
}

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
	assert_equal "$stderr" "dh-create: $name: channel exists (--force replaces it, --remove removes it)"
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
	assert_equal "$stderr" "dh-create: $name: channel exists (--force replaces it, --remove removes it)"
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

@test "two creators racing for one name, 200 rounds (50 under a sanitizer): exactly one wins each time" {
	local name i wins=0 losses=0 a b rounds
	name=$(dh_name)
	rounds=$(dh_rounds 200)
	for i in $(seq "$rounds"); do
		dh-create --slots 2 --slot-size 64 "$name" 2>"$BATS_TEST_TMPDIR/a" & a=$!
		dh-create --slots 2 --slot-size 64 "$name" 2>"$BATS_TEST_TMPDIR/b" & b=$!
		local sa=0 sb=0
		wait $a || sa=$?
		wait $b || sb=$?
		if [ $sa -eq 0 ] && [ $sb -eq 1 ]; then
			grep -qx "dh-create: $name: channel exists (--force replaces it, --remove removes it)" "$BATS_TEST_TMPDIR/b"
			wins=$((wins + 1))
		elif [ $sa -eq 1 ] && [ $sb -eq 0 ]; then
			grep -qx "dh-create: $name: channel exists (--force replaces it, --remove removes it)" "$BATS_TEST_TMPDIR/a"
			wins=$((wins + 1))
		else
			losses=$((losses + 1))
			echo "round $i: statuses $sa $sb" >&2
		fi
		dh-create --remove "$name"
	done
	assert_equal "$wins" "$rounds"
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

# --- planted FIFOs, sockets, directories: nothing may block ----------------

# plant KIND FILE: as the hostile user, make FILE a fifo, socket or directory.
plant() {
	case $1 in
	fifo) as_user mkfifo "$2" ;;
	socket) as_user /usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$2" ;;
	dir) as_user mkdir "$2" ;;
	esac
}

@test "a FIFO, socket or directory planted under a channel name: every tool refuses it at once, one line" {
	local name kind f c
	name=$(dh_name)
	f=$(dh_shm "$name")
	chmod 0755 "$BATS_TEST_TMPDIR"
	for kind in fifo socket dir; do
		plant "$kind" "$f"
		for c in "dh-stat $name" "dh-create --remove $name" "dh-read --meta $name" \
			"dh-read --no-wait $name" "dh-write $name"; do
			run -1 --separate-stderr timeout 10 $c </dev/null
			assert_equal "$stderr" "${c%% *}: $name: not a regular file (not a dh channel)"
		done
		run -1 --separate-stderr timeout 10 dh-create --force "$name"
		assert_equal "$stderr" "dh-create: $name: remove: not a regular file (not a dh channel)"
		for c in "dh-diagnose $name" "dh-validate $name"; do
			run -2 --separate-stderr timeout 10 $c
			assert_equal "$stderr" "${c%% *}: $name: not a regular file (not a dh channel)"
		done
		run -1 --separate-stderr timeout 10 dh-write --meta /dev/null "$name"
		assert_equal "$stderr" "dh-write: $name: metadata: not a regular file (not a dh channel)"
		run -1 --separate-stderr timeout 10 sh -c "echo x | dh-write --create $name"
		assert_equal "$stderr" "dh-write: $name: not a regular file (not a dh channel)"
		[ -e "$f" ] && [ ! -f "$f" ]
		if [ "$kind" = dir ]; then
			# --force removes any file planted there, but not a directory
			run -1 --separate-stderr timeout 10 dh-create --remove --force "$name"
			assert_equal "$stderr" "dh-create: $name: not a regular file (not a dh channel)"
			rmdir "$f"
		else
			run -0 timeout 10 dh-create --remove --force "$name"
		fi
		[ ! -e "$f" ] && [ ! -L "$f" ]
	done
}

@test "listings (dh-stat, dh-validate --all) skip a planted FIFO, socket, directory or symlink and list the rest" {
	local name
	name=$(dh_name)
	test_dir
	export DH_SHM_DIR=$DH_TEST_DIR
	dh-create --slots 2 --slot-size 64 "$name"
	plant fifo "$DH_TEST_DIR/dh.$name-fifo"
	plant socket "$DH_TEST_DIR/dh.$name-sock"
	plant dir "$DH_TEST_DIR/dh.$name-dir"
	as_user ln -s "$DH_TEST_DIR/dh.$name" "$DH_TEST_DIR/dh.$name-link"
	run -0 --separate-stderr timeout 10 dh-stat --json
	run -0 jq -r '.channels[].name' <<<"$output"
	assert_output "$name"
	run -0 --separate-stderr timeout 10 dh-validate --all
	assert_equal "$stderr" ""
	run -0 --separate-stderr timeout 10 dh-validate --all --json
	run -0 jq -r .channel <<<"$output"
	assert_output "$name"
}

# --- read-only or write-only access: refused, and read locks forge nothing --

@test "--mode granting read-only or write-only access is refused by dh-create and dh-write --create" {
	local name m
	name=$(dh_name)
	for m in 0640 0644 0604 0620 0602 0622 0664 0646; do
		run -2 --separate-stderr dh-create --mode "$m" "$name"
		assert_equal "$stderr" "dh-create: --mode $m: read-only or write-only access would let that user block the channel (group and others: rw or nothing, e.g. 0600, 0660, 0666)"
		run -2 --separate-stderr dh-write --create --mode "$m" "$name" </dev/null
		[[ $stderr == "dh-write: --mode $m: read-only or write-only access"* ]]
	done
	[ ! -e "$(dh_shm "$name")" ]
	for m in 0600 0660 0606 0666; do
		dh-create --mode "$m" "$name"
		run -0 stat -c %a "$(dh_shm "$name")"
		assert_output "${m#0}"
		dh-create --remove "$name"
	done
}

@test "a read-only user's read locks neither fake a live participant nor block --remove; a chmod'ed channel is refused" {
	local name f
	name=$(dh_name)
	f=$(dh_shm "$name")
	dh-create --meta-size 1K "$name"
	echo hello | dh-write "$name"
	chmod 0644 "$f"              # what an older dh or the owner could do
	test_dir
	rdlock "$f" "$DH_TEST_DIR/locked"
	run -1 --separate-stderr sh -c "echo x | dh-write $name"
	assert_equal "$stderr" "dh-write: $name: channel mode grants read-only or write-only access (chmod it to 0600, 0660 or 0666)"
	run -1 --separate-stderr dh-read --no-wait "$name"
	assert_equal "$stderr" "dh-read: $name: channel mode grants read-only or write-only access (chmod it to 0600, 0660 or 0666)"
	run -0 sh -c "dh-diagnose --json $name | jq -r '[.writer.state] + [.readers[].state] | map(select(. == \"ALIVE\")) | length'"
	assert_output 0
	run -0 --separate-stderr dh-create --remove "$name"
	[ ! -e "$f" ]
}

# --- squatting and the trust model ------------------------------------------

@test "a channel another user created is not used by dh-write --create, dh-write or dh-read unless --owner names them" {
	local name f
	name=$(dh_name)
	f=$(dh_shm "$name")
	as_user dh-create --mode 0666 --meta-size 64 "$name"
	as_user sh -c "echo planted | dh-write --no-eos $name"
	run -1 --separate-stderr sh -c "echo secret | dh-write --create $name"
	assert_equal "$stderr" "dh-write: $name: channel owned by $DH_HOSTILE_USER, not by you or root (--owner $DH_HOSTILE_USER to trust it)"
	run -1 --separate-stderr sh -c "echo secret | dh-write $name"
	assert_equal "$stderr" "dh-write: $name: channel owned by $DH_HOSTILE_USER, not by you or root (--owner $DH_HOSTILE_USER to trust it)"
	run -1 --separate-stderr dh-read --no-wait --lines "$name"
	assert_equal "$stderr" "dh-read: $name: channel owned by $DH_HOSTILE_USER, not by you or root (--owner $DH_HOSTILE_USER to trust it)"
	assert_equal "$output" ""
	run -1 --separate-stderr dh-read --meta "$name"
	[[ $stderr == "dh-read: $name: channel owned by $DH_HOSTILE_USER, not by you"* ]]
	run -1 --separate-stderr dh-write --meta /dev/null "$name"
	[[ $stderr == "dh-write: $name: channel owned by $DH_HOSTILE_USER, not by you"* ]]
	# nothing of ours went in: the other user reads only its own message
	run -0 as_user dh-read --no-wait --lines "$name"
	assert_output planted
	# trusting that owner explicitly works, by option and by environment
	run -0 dh-read --owner "$DH_HOSTILE_USER" --no-wait --lines "$name"
	assert_output planted
	run -0 env DH_OWNER="$(id -u "$DH_HOSTILE_USER")" dh-read --no-wait --lines "$name"
	assert_output planted
	echo ours | dh-write --owner "$DH_HOSTILE_USER" --create "$name"
	# --owner is a requirement, not an addition: our own channel is refused under it
	dh-create "$name-own"
	run -1 --separate-stderr dh-read --owner "$DH_HOSTILE_USER" --no-wait "$name-own"
	assert_equal "$stderr" "dh-read: $name-own: channel owned by root, not by the required owner (uid $(id -u "$DH_HOSTILE_USER"))"
	run -2 --separate-stderr dh-read --from oldest --owner no-such-user-dh "$name"
	assert_equal "${stderr_lines[0]}" "dh-read: --owner no-such-user-dh: no such user"
	run -2 --separate-stderr env DH_OWNER=no-such-user-dh dh-write "$name"
	assert_equal "${stderr_lines[0]}" "dh-write: DH_OWNER=no-such-user-dh: no such user"
	run -0 stat -c %U "$f"
	assert_output "$DH_HOSTILE_USER"
	# the other way round: root is trusted by default (root can read any
	# process's memory anyway)
	dh-create --mode 0666 "$name-root"
	as_user sh -c "echo from-user | dh-write $name-root"
	run -0 as_user dh-read --no-wait --lines "$name-root"
	assert_output from-user
}

# --- DH_SHM_DIR ---------------------------------------------------------------

@test "DH_SHM_DIR moves every tool to another tmpfs directory; /dev/shm is left alone" {
	local name
	name=$(dh_name)
	test_dir
	export DH_SHM_DIR=$DH_TEST_DIR
	dh-create --slots 4 --slot-size 64 --meta-size 64 "$name"
	[ -f "$DH_TEST_DIR/dh.$name" ] && [ ! -e "$(dh_shm "$name")" ]
	printf 'a\nb\n' | dh-write --lines --meta /dev/null "$name"
	run -0 dh-read --no-wait --lines "$name"
	assert_output $'a\nb'
	run -0 sh -c "dh-stat --json $name | jq -r '.channels[0].path'"
	assert_output "$DH_TEST_DIR/dh.$name"
	run -0 dh-validate "$name"
	run -0 dh-diagnose "$name"
	run -0 dh-validate --all
	echo x | dh-write --create --slots 2 --slot-size 64 "$name-w"
	[ -f "$DH_TEST_DIR/dh.$name-w" ]
	dh-create --remove "$name" "$name-w"
	run -0 ls -A "$DH_TEST_DIR"
	assert_output ""
	[ ! -e "$(dh_shm "$name")" ]
}

@test "DH_SHM_DIR keeps the safety checks: no symlink followed, O_EXCL, unsafe directories refused" {
	local name
	name=$(dh_name)
	test_dir
	export DH_SHM_DIR=$DH_TEST_DIR
	echo precious >"$BATS_TEST_TMPDIR/victim"
	as_user ln -s "$BATS_TEST_TMPDIR/victim" "$DH_TEST_DIR/dh.$name"
	run -1 --separate-stderr dh-create "$name"
	assert_equal "$stderr" "dh-create: $name: channel exists (--force replaces it, --remove removes it)"
	run -1 --separate-stderr dh-read --no-wait "$name"
	assert_equal "$stderr" "dh-read: $name: Too many levels of symbolic links"
	run -0 cat "$BATS_TEST_TMPDIR/victim"
	assert_output precious
	rm "$DH_TEST_DIR/dh.$name"
	# a directory others may write without the sticky bit: they could swap our channel
	chmod 0777 "$DH_TEST_DIR"
	run -1 --separate-stderr dh-create "$name"
	assert_equal "$stderr" "dh-create: $name: channel directory unsafe: it must be an absolute path owned by you or root, sticky if others may write"
	chmod 1777 "$DH_TEST_DIR"
	# a directory owned by another user: they could too
	chown "$DH_HOSTILE_USER" "$DH_TEST_DIR"
	run -1 --separate-stderr dh-read --no-wait "$name"
	assert_equal "$stderr" "dh-read: $name: channel directory unsafe: it must be an absolute path owned by you or root, sticky if others may write"
	chown root "$DH_TEST_DIR"
	# a relative path is refused, never resolved against the current directory
	run -1 --separate-stderr env DH_SHM_DIR=shm dh-create "$name"
	assert_equal "$stderr" "dh-create: $name: channel directory unsafe: it must be an absolute path owned by you or root, sticky if others may write"
	[ ! -e "shm/dh.$name" ]
}
