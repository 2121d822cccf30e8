#!/usr/bin/env bats
# libdh.so.0: soname, exported symbols (the public API only), and the
# commands still linking the archive. See LICENSE.

load test_helper

setup() {
	dh_setup
	SO=$DH_TOP/$DH_BUILD/libdh.so.0
	A=$DH_TOP/$DH_BUILD/libdh.a
}

@test "libdh.so.0 has the soname libdh.so.0 and libdh.so links to it" {
	run -0 readelf -d "$SO"
	assert_line --partial 'Library soname: [libdh.so.0]'
	[ "$(readlink "$DH_TOP/$DH_BUILD/libdh.so")" = libdh.so.0 ]
}

@test "libdh.so.0 exports exactly the public dh_* functions of the archive, no internals" {
	# what the archive defines globally with a public name ...
	nm -g --defined-only "$A" | awk 'NF == 3 && $3 ~ /^dh_[a-z]/ { print $3 }' | LC_ALL=C sort -u \
		>"$BATS_TEST_TMPDIR/public"
	[ -s "$BATS_TEST_TMPDIR/public" ]
	# ... and the internals (dh__*), which must not leak
	nm -g --defined-only "$A" | awk 'NF == 3 && $3 ~ /^dh__/ { print $3 }' | LC_ALL=C sort -u \
		>"$BATS_TEST_TMPDIR/internal"
	[ -s "$BATS_TEST_TMPDIR/internal" ]
	# the dynamic symbol table: functions and data, without the version node
	nm -D --defined-only "$SO" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | LC_ALL=C sort -u \
		>"$BATS_TEST_TMPDIR/exported"
	run diff "$BATS_TEST_TMPDIR/public" "$BATS_TEST_TMPDIR/exported"
	assert_success
	run grep -xF -f "$BATS_TEST_TMPDIR/internal" "$BATS_TEST_TMPDIR/exported"
	assert_failure
	# every public function is declared in an installed header
	for s in $(cat "$BATS_TEST_TMPDIR/public"); do
		grep -qw "$s" "$DH_TOP"/lib/dh.h $(ls "$DH_TOP"/lib/dh_*.h | grep -v dh_impl.h) ||
			fail "$s is exported but not declared in a public header"
	done
}

@test "a program linked with -ldh against the build tree runs on libdh.so.0" {
	cat >"$BATS_TEST_TMPDIR/v.c" <<-'EOF'
	#include <stdio.h>
	#include "dh.h"
	int main(void) { puts(dh_strerror(-DH_ECHECKSUM)); return dh_name_check("ok-name") != 0; }
	EOF
	flags=
	case $DH_BUILD in *asan*) flags="-fsanitize=address,undefined" ;; esac
	# shellcheck disable=SC2086
	cc -std=c11 $flags -I"$DH_TOP/lib" -o "$BATS_TEST_TMPDIR/v" "$BATS_TEST_TMPDIR/v.c" \
		-L"$DH_TOP/$DH_BUILD" -ldh
	readelf -d "$BATS_TEST_TMPDIR/v" | grep -F '(NEEDED)' | grep -qF '[libdh.so.0]'
	run -0 env LD_LIBRARY_PATH="$DH_TOP/$DH_BUILD" "$BATS_TEST_TMPDIR/v"
	assert_output "checksum mismatch"
}

@test "the commands link the archive, not libdh.so" {
	for c in "$DH_TOP/$DH_BUILD"/bin/dh-*; do
		! readelf -d "$c" | grep -qF 'libdh.so' || fail "${c##*/} needs libdh.so"
	done
}
