#!/usr/bin/env bats
# The Debian packages (debian/, make deb): built once per run with
# dpkg-buildpackage -b out of tree (scripts/deb.sh, about a minute on two
# cores), lintian clean but for the documented overrides, unpacked into a
# scratch root, and used from there: commands, man pages, completions,
# units, the bats library, the Python module and a C program through
# pkg-config. DH_DEB_DIR=DIR reuses .debs built earlier in the same run
# instead. See LICENSE.

load test_helper

setup_file() {
	command -v dpkg-buildpackage >/dev/null || return 0
	[ -z "${DH_SAN:-}" ] || return 0
	if [ -n "${DH_DEB_DIR:-}" ]; then
		D=$DH_DEB_DIR
	else
		D=$BATS_FILE_TMPDIR/deb
		sh "$DH_TOP/scripts/deb.sh" "$D" >"$BATS_FILE_TMPDIR/deb.out" 2>&1 ||
			{ cat "$BATS_FILE_TMPDIR/deb.out" >&2; return 1; }
	fi
	# the scratch root: every package but the debug symbols, unpacked
	R=$BATS_FILE_TMPDIR/root
	mkdir -p "$R"
	for p in "$D"/*.deb; do
		case $p in *-dbgsym_*) continue ;; esac
		dpkg-deb -x "$p" "$R"
	done
}

setup() {
	dh_setup
	command -v dpkg-buildpackage >/dev/null || skip "dpkg-buildpackage is not installed (make deps)"
	# the packages never hold a sanitizer build: make check tests them once
	[ -z "${DH_SAN:-}" ] || skip "not under SAN=$DH_SAN (the packages are built without it)"
	D=${DH_DEB_DIR:-$BATS_FILE_TMPDIR/deb}
	R=$BATS_FILE_TMPDIR/root
	V=$(sed -n 's/^VERSION = //p' "$DH_TOP/config.mk")
	A=$(dpkg-architecture -qDEB_HOST_ARCH)
	MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
	ch=$(dh_name)
}

@test "dpkg-buildpackage -b: dh-tools, libdh0, libdh-dev and python3-dh at config.mk's version" {
	for p in dh-tools libdh0 libdh-dev python3-dh; do
		[ -f "$D/${p}_${V}_$A.deb" ] || fail "not built: ${p}_${V}_$A.deb ($(ls "$D"))"
	done
	[ "$(dpkg-parsechangelog -l "$DH_TOP/debian/changelog" -SVersion)" = "$V" ] ||
		fail "debian/changelog is not at config.mk's VERSION $V"
	run -0 dpkg-deb -f "$D/libdh-dev_${V}_$A.deb" Depends
	assert_output --partial "libdh0 (= $V)"
	run -0 dpkg-deb -f "$D/python3-dh_${V}_$A.deb" Depends
	assert_output --regexp 'python3 \(>= 3\.[0-9]+~\)'
	# dh-tools links libdh statically; the library package carries the soname
	run -0 dpkg-deb -f "$D/dh-tools_${V}_$A.deb" Depends
	refute_output --partial libdh0
	run -0 dpkg-deb -I "$D/libdh0_${V}_$A.deb" shlibs
	assert_output "libdh 0 libdh0 (>= $V)"
}

@test "lintian: no error or warning; each override says why" {
	command -v lintian >/dev/null || skip "lintian is not installed (make deps)"
	run lintian --fail-on error,warning --pedantic -I "$D"/*.changes
	[ "$status" -eq 0 ] || fail "lintian: $output"
	# every override line has a comment above it (its reason)
	for f in "$DH_TOP"/debian/*.lintian-overrides; do
		awk 'NF == 0 { prev = ""; next }
		     /^#/ { prev = "#"; next }
		     prev != "#" { print FILENAME ": no reason given for: " $0; bad = 1 }
		     { prev = "x" }
		     END { exit bad }' "$f" || fail "undocumented override in $f"
	done
}

@test "the packages split the files without overlap: commands, library, headers, module" {
	for p in dh-tools libdh0 libdh-dev python3-dh; do
		dpkg-deb -c "$D/${p}_${V}_$A.deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./||' >"$BATS_TEST_TMPDIR/$p"
	done
	run -0 sh -c "cat '$BATS_TEST_TMPDIR'/dh-tools '$BATS_TEST_TMPDIR'/lib* '$BATS_TEST_TMPDIR'/python3-dh |
		grep -v '^usr/share/doc/' | sort | uniq -d"
	assert_output ""
	t=$BATS_TEST_TMPDIR
	for f in usr/bin/dh-read usr/bin/dh-broker usr/share/man/man1/dh-read.1.gz usr/share/man/man7/dh.7.gz \
		usr/share/man/man5/dh-format.5.gz usr/share/bash-completion/completions/dh-read \
		usr/share/zsh/vendor-completions/_dh lib/systemd/system/dh-broker.service \
		lib/systemd/system/dh-validate.timer usr/share/dh/bats/dh.bash; do
		grep -qx "$f" "$t/dh-tools" || fail "dh-tools lacks $f"
	done
	grep -qx "usr/lib/$MA/libdh.so.0" "$t/libdh0" || fail "libdh0 lacks libdh.so.0"
	for f in usr/include/dh/dh.h usr/include/dh/dh.hpp "usr/lib/$MA/libdh.a" "usr/lib/$MA/libdh.so" \
		"usr/lib/$MA/pkgconfig/dh.pc" usr/share/man/man3/dh-cpp.3.gz; do
		grep -qx "$f" "$t/libdh-dev" || fail "libdh-dev lacks $f"
	done
	! grep -q dh_impl.h "$t/libdh-dev" || fail "the private header is packaged"
	grep -qE '^usr/lib/python3/dist-packages/dh/_dh\..*\.so$' "$t/python3-dh" || fail "python3-dh lacks the module"
	# every command and every page of the tree is packaged
	for c in "$DH_TOP/$DH_BUILD"/bin/dh-*; do
		grep -qx "usr/bin/${c##*/}" "$t/dh-tools" || fail "not packaged: ${c##*/}"
	done
	for m in "$DH_TOP"/man/*.[1-8]; do
		s=${m##*.}
		grep -qx "usr/share/man/man$s/${m##*/}.gz" "$t/dh-tools" "$t/libdh-dev" || fail "not packaged: ${m##*/}"
	done
}

@test "installed commands: a pipeline runs from the scratch root, and their man pages render" {
	B=$R/usr/bin
	"$B/dh-create" --slots 8 "$ch"
	printf 'one\ntwo\nthree\n' | "$B/dh-write" --lines "$ch"
	run -0 "$B/dh-read" --from oldest --lines "$ch"
	assert_output $'one\ntwo\nthree'
	run -0 "$B/dh-stat" --json "$ch"
	jq -e '.channels[0].committed == 3 and .channels[0].end_of_stream' <<<"$output"
	run -0 "$B/dh-validate" --quiet "$ch"
	run -0 "$B/dh-read" --version
	assert_output --partial "$V"
	run -0 sh -c "zcat '$R/usr/share/man/man1/dh-read.1.gz' | mandoc -Tascii | sed 's/.\x08//g'"
	assert_line -n 0 --regexp '^DH-READ\(1\) '
	assert_line --regexp '^ +dh-read - copy the messages'
	run -0 man -l "$R/usr/share/man/man7/dh.7.gz"
	[ ! -e "$R/usr/bin/dh-create.1" ]
	"$B/dh-create" --remove "$ch"
	[ ! -e "$(dh_shm "$ch")" ]
}

@test "installed Python module: imports from the scratch root and reads what dh-write wrote" {
	site=$R/usr/lib/python3/dist-packages
	printf 'a\nb\n' | "$R/usr/bin/dh-write" --create --slots 4 --lines "$ch"
	run -0 env PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$site" /usr/bin/python3 -c '
import sys, dh
assert dh.__file__.startswith(sys.argv[2]), dh.__file__
with dh.Reader(sys.argv[1], start="oldest", timeout=5) as r:
    print(*[bytes(m.data).decode() for m in r])' "$ch" "$site"
	assert_output "a b"
	[ -z "$(find "$site" -name __pycache__)" ]
}

@test "installed libdh-dev: a C program builds through pkg-config and runs on libdh.so.0" {
	cat >"$BATS_TEST_TMPDIR/v.c" <<-'EOF'
	#include <dh.h>
	#include <stdio.h>
	int main(int argc, char **argv)
	{
		struct dh_config cfg;
		dh_config_init(&cfg);
		cfg.slots = 4;
		int r = dh_block_create(argv[argc - 1], &cfg);
		printf("%s\n", r == 0 ? "created" : dh_strerror(r));
		return r != 0;
	}
	EOF
	# relocated into the scratch root by its prefix; the dependencies' .pc
	# files are the system's
	flags=$(PKG_CONFIG_PATH=$R/usr/lib/$MA/pkgconfig pkg-config --define-variable=prefix="$R/usr" --cflags --libs dh)
	[[ "$flags" == *"-I$R/usr/include/dh"* ]] || fail "flags: $flags"
	# shellcheck disable=SC2086
	cc -std=c11 -o "$BATS_TEST_TMPDIR/v" "$BATS_TEST_TMPDIR/v.c" $flags
	run -0 env LD_LIBRARY_PATH="$R/usr/lib/$MA" ldd "$BATS_TEST_TMPDIR/v"
	assert_line --regexp "libdh\.so\.0 => $R/usr/lib/$MA/libdh\.so\.0"
	run -0 env LD_LIBRARY_PATH="$R/usr/lib/$MA" "$BATS_TEST_TMPDIR/v" "$ch"
	assert_output created
	"$R/usr/bin/dh-stat" "$ch" >/dev/null
}

@test "installed units verify against the installed commands; the bats library works from /usr/share/dh/bats" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	mkdir -p "$R/usr/lib/systemd/system"
	cp -a /lib/systemd/system/. "$R/usr/lib/systemd/system/"
	run -0 grep -h '^ExecStart=' "$R"/lib/systemd/system/dh-*.service
	assert_line -n 0 --regexp '^ExecStart=/usr/bin/dh-broker '
	assert_line -n 1 'ExecStart=/usr/bin/dh-validate --all --repair --quiet'
	run -0 --separate-stderr env MANPATH="$R/usr/share/man" systemd-analyze verify --root="$R" \
		"$R"/lib/systemd/system/dh-broker.service "$R"/lib/systemd/system/dh-validate.*
	assert_equal "$stderr$output" ""

	# a user's test file, as dh(7) shows it, against the installed paths
	mkdir -p "$BATS_TEST_TMPDIR/user"
	cat >"$BATS_TEST_TMPDIR/user/t.bats" <<-EOF
	load $R/usr/share/dh/bats/dh.bash
	teardown() { dh_cleanup; }
	TEST "three lines arrive" {
		ch=\$(dh_temp_channel --slots 8)
		printf '1\n2\n3\n' | dh-write --lines "\$ch"
		dh_wait_eos "\$ch"
		dh_assert_committed "\$ch" 3
		echo "\$ch" >"$BATS_TEST_TMPDIR/user/name"
	}
	EOF
	sed -i 's/^TEST /@test /' "$BATS_TEST_TMPDIR/user/t.bats"
	run env -i PATH="$R/usr/bin:/usr/bin:/bin" HOME="$HOME" "$BATS_ROOT/bin/bats" --tap \
		"$BATS_TEST_TMPDIR/user/t.bats" 3>&-
	assert_line "ok 1 three lines arrive"
	[ ! -e "$(dh_shm "$(cat "$BATS_TEST_TMPDIR/user/name")")" ]
}
