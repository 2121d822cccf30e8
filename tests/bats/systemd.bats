#!/usr/bin/env bats
# The systemd units dh ships (systemd/): installed by make install with the
# installed paths, clean under `systemd-analyze verify` (which checks the
# unit files, the ExecStart binaries and the man pages of Documentation=
# without a running systemd), hardened, and doing what dh-validate(1)'s
# cron example does. See LICENSE.

load test_helper

setup_file() {
	# one install for the whole file, into a scratch root that also holds
	# the host's own units (sysinit.target and the rest, which verify
	# resolves dependencies against)
	R=$BATS_FILE_TMPDIR/root
	make -s -C "$DH_TOP" --no-print-directory BUILD="$DH_BUILD" install DESTDIR="$R" \
		>"$BATS_FILE_TMPDIR/make.log" 2>&1 || { cat "$BATS_FILE_TMPDIR/make.log" >&2; return 1; }
	mkdir -p "$R/usr/lib/systemd/system"
	cp -a /lib/systemd/system/. "$R/usr/lib/systemd/system/"
}

setup() {
	dh_setup
	R=$BATS_FILE_TMPDIR/root
	U=$R/usr/local/lib/systemd/system
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
}

verify() { # UNIT-FILE...: systemd-analyze verify within the scratch root
	MANPATH=$R/usr/local/share/man systemd-analyze verify --root="$R" "$@"
}

@test "make install: the three units, ExecStart at the installed commands" {
	run -0 ls "$U"
	assert_output - <<-EOF
	dh-broker.service
	dh-validate.service
	dh-validate.timer
	EOF
	run -0 grep -h '^ExecStart=' "$U"/dh-broker.service "$U"/dh-validate.service
	assert_line -n 0 --regexp '^ExecStart=/usr/local/bin/dh-broker '
	assert_line -n 1 'ExecStart=/usr/local/bin/dh-validate --all --repair --quiet'
	! grep -q '@[A-Z]*@' "$U"/* || fail "a placeholder was left in a unit"
	[ "$(stat -c %a "$U/dh-broker.service")" = 644 ]
}

@test "systemd-analyze verify: every unit clean (no warning at all)" {
	run -0 --separate-stderr verify "$U"/dh-broker.service "$U"/dh-validate.service "$U"/dh-validate.timer
	assert_equal "$stderr$output" ""
}

@test "systemd-analyze verify bites: a unknown directive and a missing binary are reported" {
	sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$U/dh-broker.service" >"$U/dh-broken.service"
	run --separate-stderr verify "$U/dh-broken.service"
	[[ "$stderr" == *"Unknown key 'NoNewPrivilege'"* ]] || fail "not reported: $stderr"
	sed 's|/usr/local/bin/dh-validate|/usr/local/bin/dh-nothere|' "$U/dh-validate.service" >"$U/dh-broken.service"
	run -1 --separate-stderr verify "$U/dh-broken.service"
	[[ "$stderr" == *"/usr/local/bin/dh-nothere is not executable"* ]] || fail "not reported: $stderr"
	rm -f "$U/dh-broken.service"
}

@test "the units are hardened: exposure at most 2.0 of 10 in systemd-analyze security" {
	for u in dh-broker.service dh-validate.service; do
		run --separate-stderr systemd-analyze security --offline=yes --threshold=20 --root="$R" "$U/$u"
		[ "$status" -eq 0 ] || fail "$u: $(printf '%s\n' "$output" | tail -3)"
	done
	run -0 grep -xE 'DynamicUser=yes|NoNewPrivileges=yes|ProtectSystem=strict|PrivateTmp=yes|PrivateDevices=yes|CapabilityBoundingSet=|RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
		"$U/dh-broker.service"
	[ "${#lines[@]}" -eq 7 ] || fail "missing: $output"
	# validate writes to channels, nowhere else; it sees every process (a
	# hidden process would look like a dead reader)
	grep -qx 'ReadWritePaths=/dev/shm' "$U/dh-validate.service"
	! grep -q '^ProtectProc=' "$U/dh-validate.service"
}

@test "dh-validate.timer runs the cron example's command every five minutes" {
	# the cron line of dh-validate(1) and the unit's ExecStart: the same arguments
	cron=$(mandoc -Tascii "$DH_TOP/man/dh-validate.1" | sed 's/.\x08//g' | grep -F '*/5 * * * * dh-validate')
	cron=${cron#*dh-validate }
	run -0 grep -x "ExecStart=/usr/local/bin/dh-validate $cron" "$U/dh-validate.service"
	run -0 grep -x 'OnCalendar=.*' "$U/dh-validate.timer"
	run -0 systemd-analyze calendar --iterations=3 --base-time='2026-01-01 00:01:00 UTC' "${output#OnCalendar=}"
	assert_line --partial 'Normalized form: *-*-* *:00/5:00'
	assert_line --regexp 'Next elapse: .* 00:05:00'
	assert_line --regexp 'Iter. #2: .* 00:10:00'
}

@test "dh-validate.service's command repairs a channel with a dead reader (in a private DH_SHM_DIR)" {
	export DH_SHM_DIR=$BATS_TEST_TMPDIR/shm
	mkdir -p "$DH_SHM_DIR"
	ch=$(dh_name)
	dh-create "$ch"
	dh_bg dh-read --follow "$ch"
	dh_wait_readers "$ch" 1
	kill -KILL "$DH_BG_PID"
	dh_await _dh_gone "$DH_BG_PID"
	cmd=$(sed -n 's/^ExecStart=//p' "$U/dh-validate.service")
	cmd=${cmd/\/usr\/local\/bin\//$R/usr/local/bin/}
	# shellcheck disable=SC2086
	run -0 $cmd
	assert_output --partial "reader_dead"
	assert_output --partial "[repaired]"
	# shellcheck disable=SC2086
	run -0 $cmd
	assert_output ""
}

@test "dh-broker.service's command line serves: a client lists through its socket, SIGTERM stops it cleanly" {
	# /run/dh-broker (RuntimeDirectory=) moved into the test's directory
	run_dir=$BATS_TEST_TMPDIR/run
	mkdir -p "$run_dir"
	cmd=$(sed -n 's/^ExecStart=//p' "$U/dh-broker.service")
	cmd=${cmd//\/run\/dh-broker/$run_dir}
	cmd=${cmd/\/usr\/local\/bin\//$R/usr/local/bin/}
	# shellcheck disable=SC2086
	dh_bg $cmd
	dh_wait -m "the broker's sockets" test -S "$run_dir/broker.sock" -a -S "$run_dir/events.sock"
	run -0 dh-stat --broker "ipc://$run_dir/broker.sock" --json
	jq -e '.channels == []' <<<"$output"
	kill -TERM "$DH_BG_PID"
	st=0
	wait "$DH_BG_PID" || st=$?
	assert_equal "$st" 143
	[ ! -e "$run_dir/broker.sock" ] || fail "the broker left its socket behind"
}
