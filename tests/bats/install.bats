#!/usr/bin/env bats
# make install / uninstall into a DESTDIR; a C program built against the installed libdh. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	R=$T/root
}

# mk TARGET VAR=VALUE...: make in the source tree, quietly, output in $T/make.log.
mk() {
	make -s -C "$DH_TOP" --no-print-directory BUILD="$DH_BUILD" "$@" >"$T/make.log" 2>&1 ||
		{ cat "$T/make.log" >&2; return 1; }
}

# What make install must put under PREFIX (default directories), sorted.
expected_files() {
	local f n
	for f in "$DH_TOP/$DH_BUILD"/bin/dh-*; do
		n=${f##*/}
		echo "bin/$n"
		echo "share/bash-completion/completions/$n"
	done
	for f in "$DH_TOP"/man/*.[1-8]; do
		echo "share/man/man${f##*.}/${f##*/}"
	done
	for f in "$DH_TOP"/lib/dh.h "$DH_TOP"/lib/dh_*.h; do
		[ "${f##*/}" = dh_impl.h ] || echo "include/dh/${f##*/}"
	done
	echo include/dh/dh.hpp
	echo lib/libdh.a
	echo lib/libdh.so
	echo lib/libdh.so.0
	echo lib/pkgconfig/dh.pc
	local py
	# a sanitizer build installs no Python package (an instrumented libdh
	# cannot load into /usr/bin/python3: see the Makefile's python target)
	if [ -z "${DH_SAN:-}" ]; then
		py=lib/python$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')/dist-packages/dh
		echo "$py/__init__.py"
		echo "$py/_dh.pyi"
		echo "$py/py.typed"
		echo "$py/_dh$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
	fi
	echo share/zsh/site-functions/_dh
	echo lib/systemd/system/dh-broker.service
	echo lib/systemd/system/dh-validate.service
	echo lib/systemd/system/dh-validate.timer
	echo share/dh/bats/dh.bash
}

# files DIR: every file and link under DIR, relative to it, sorted.
files() {
	(cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
}

@test "make install: the expected files, modes and contents; uninstall leaves nothing" {
	mk install DESTDIR="$R"
	run files "$R/usr/local"
	assert_output "$(expected_files | LC_ALL=C sort)"
	# what matters, named explicitly
	for f in bin/dh-stat bin/dh-create share/man/man1/dh-stat.1 share/man/man5/dh-format.5 \
		share/man/man7/dh.7 include/dh/dh.h include/dh/dh_block.h include/dh/dh_ring.h \
		include/dh/dh_error.h include/dh/dh_frame.h include/dh/dh_stat.h include/dh/dh.hpp \
		share/bash-completion/completions/dh-stat; do
		[ -f "$R/usr/local/$f" ] || fail "not installed: $f"
	done
	[ ! -e "$R/usr/local/include/dh/dh_impl.h" ] || fail "the private header was installed"
	run stat -c '%a %n' "$R/usr/local/bin/dh-stat" "$R/usr/local/lib/libdh.a" "$R/usr/local/lib/libdh.so.0" \
		"$R/usr/local/include/dh/dh.h" "$R/usr/local/lib/pkgconfig/dh.pc"
	assert_output - <<-EOF
	755 $R/usr/local/bin/dh-stat
	644 $R/usr/local/lib/libdh.a
	755 $R/usr/local/lib/libdh.so.0
	644 $R/usr/local/include/dh/dh.h
	644 $R/usr/local/lib/pkgconfig/dh.pc
	EOF
	[ "$(readlink "$R/usr/local/lib/libdh.so")" = libdh.so.0 ] || fail "libdh.so is not a link to libdh.so.0"
	cmp "$DH_TOP/$DH_BUILD/libdh.so.0" "$R/usr/local/lib/libdh.so.0"
	cmp "$DH_TOP/completions/dh.bash" "$R/usr/local/share/bash-completion/completions/dh-read"
	cmp "$DH_TOP/completions/_dh" "$R/usr/local/share/zsh/site-functions/_dh"
	"$R/usr/local/bin/dh-stat" --version

	mk uninstall DESTDIR="$R"
	run files "$R"
	assert_output ""
	[ ! -e "$R/usr/local/include/dh" ]
}

@test "make install honours PREFIX, BINDIR, MANDIR, BASHCOMPDIR, ZSHCOMPDIR" {
	mk install DESTDIR="$R" PREFIX=/opt/dh BINDIR=/opt/dh/sbin MANDIR=/usr/share/man \
		BASHCOMPDIR=/etc/bash_completion.d ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	[ -x "$R/opt/dh/sbin/dh-stat" ]
	[ -f "$R/opt/dh/lib/libdh.a" ] && [ -f "$R/opt/dh/include/dh/dh.h" ]
	[ -f "$R/usr/share/man/man1/dh-stat.1" ] && [ -f "$R/usr/share/man/man5/dh-format.5" ]
	[ -f "$R/etc/bash_completion.d/dh-write" ] && [ -f "$R/usr/share/zsh/vendor-completions/_dh" ]
	[ ! -e "$R/usr/local" ] && [ ! -e "$R/opt/dh/bin" ]
	run grep -E '^(prefix|libdir|includedir)=' "$R/opt/dh/lib/pkgconfig/dh.pc"
	assert_output - <<-'EOF'
	prefix=/opt/dh
	libdir=${prefix}/lib
	includedir=${prefix}/include
	EOF
	mk uninstall DESTDIR="$R" PREFIX=/opt/dh BINDIR=/opt/dh/sbin MANDIR=/usr/share/man \
		BASHCOMPDIR=/etc/bash_completion.d ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	run files "$R"
	assert_output ""
}

@test "a C program builds and runs against the installed libdh through pkg-config" {
	mk install DESTDIR="$R"
	cat >"$T/app.c" <<-'EOF'
	/* writes one message through a channel, reads it back, renders stats */
	#include <dh.h>
	#include <dh_stat.h>
	#include <stdio.h>
	#include <stdlib.h>
	#include <string.h>

	int
	main(int argc, char **argv)
	{
		struct dh_config cfg;
		struct dh_writer *w;
		struct dh_reader *r;
		struct dh_block *b;
		struct dh_msg m;
		struct dh_snapshot *s = malloc(sizeof *s);
		struct dh_stat_channel ch = { 0 };
		char *json = NULL;
		int rc;

		if (argc != 2 || !s)
			return 2;
		dh_config_init(&cfg);
		cfg.slots = 4;
		cfg.slot_size = 64;
		if ((rc = dh_block_create(argv[1], &cfg)) < 0 ||
		    (rc = dh_writer_open(argv[1], "app", &w, NULL)) < 0 ||
		    (rc = dh_writer_write(w, "hello", 5, 0)) < 0 || (rc = dh_writer_eos(w)) < 0) {
			fprintf(stderr, "app: %s\n", dh_strerror(rc));
			return 1;
		}
		dh_writer_close(w);
		/* the stream ended before we attached: ask for what is held */
		struct dh_reader_opts ro = { .start = DH_START_HELD };
		if ((rc = dh_reader_open(argv[1], &ro, &r)) < 0 || (rc = dh_reader_next(r, &m, 0)) < 0) {
			fprintf(stderr, "app: read: %s\n", dh_strerror(rc));
			return 1;
		}
		printf("%.*s %llu\n", (int)m.len, (const char *)m.data, (unsigned long long)m.seq);
		dh_reader_close(r);
		if ((rc = dh_block_open(argv[1], DH_OPEN_RDONLY, &b)) < 0 || (rc = dh_block_snapshot(b, s)) < 0)
			return 1;
		dh_block_close(b);
		ch.name = argv[1];
		ch.snap = s;
		if (dh_stat_json(&ch, 1, 0, 0, &json) < 0)
			return 1;
		fputs(json, stdout);
		free(json);
		free(s);
		return dh_block_unlink(argv[1], 0, NULL) < 0;
	}
	EOF
	export PKG_CONFIG_PATH=$R/usr/local/lib/pkgconfig
	# relocated by redefining prefix
	flags=$(pkg-config --define-variable=prefix="$R/usr/local" --cflags --libs dh)
	[[ "$flags" == *"-I$R/usr/local/include/dh"* && "$flags" == *"-L$R/usr/local/lib"* ]] ||
		fail "flags do not point into the DESTDIR: $flags"
	# a sanitizer build installs an instrumented libdh: link its runtime too
	case $DH_BUILD in *asan*) flags="-fsanitize=address,undefined $flags" ;; esac
	# shellcheck disable=SC2086
	cc -std=c11 -Wall -Wextra -o "$T/app" "$T/app.c" $flags
	# -ldh picks the shared library, found at run time through its soname
	readelf -d "$T/app" | grep -F '(NEEDED)' | grep -qF '[libdh.so.0]' || fail "app does not use libdh.so.0"
	run -0 env LD_LIBRARY_PATH="$R/usr/local/lib" "$T/app" "$ch"
	assert_line -n 0 "hello 0"
	jq -e '.channels[0].committed == 1 and .channels[0].end_of_stream' <<<"${lines[1]}"
	[ ! -e "$(dh_shm "$ch")" ]

	# relocated by a sysroot, the way cross builds do it; the archive
	# linked explicitly with the same flags: no libdh.so needed to run
	flags=$(PKG_CONFIG_SYSROOT_DIR=$R pkg-config --cflags --libs dh)
	[[ "$flags" == *"-I$R/usr/local/include/dh"* ]] || fail "sysroot flags: $flags"
	flags=${flags/-ldh/$R/usr/local/lib/libdh.a}
	case $DH_BUILD in *asan*) flags="-fsanitize=address,undefined $flags" ;; esac
	# shellcheck disable=SC2086
	cc -std=c11 -o "$T/app2" "$T/app.c" $flags
	! readelf -d "$T/app2" | grep -qF 'libdh.so' || fail "app2 should have linked libdh.a"
	run -0 "$T/app2" "$ch"
	assert_line -n 0 "hello 0"
	[ "$(pkg-config --modversion dh)" = "$(sed -n 's/^VERSION = //p' "$DH_TOP/config.mk")" ]
	mk uninstall DESTDIR="$R"
}

@test "a C++ program builds and runs against the installed dh.hpp through pkg-config" {
	mk install DESTDIR="$R"
	cat >"$T/app.cpp" <<-'EOF'
	// one typed record through a channel and back, with the C++ layer
	#include <dh.hpp>
	#include <cstdio>

	struct rec { std::uint32_t id; float v; };

	int main(int argc, char **argv)
	try {
		if (argc != 2)
			return 2;
		dh::create(argv[1], dh::config().slots(4).schema("id:u32;v:f32"));
		{
			dh::writer w(argv[1]);
			w.write_record(rec{7, 1.5f});
			w.eos();
		}
		dh::reader r(argv[1], dh::reader_options().start(dh::start::held));
		for (auto &m : r.messages(std::chrono::seconds(5)))
			std::printf("%u %.1f %d\n", m.as<rec>().id, m.as<rec>().v, (int)m.seq);
		bool end = r.at_end();
		r.close();
		return !(end && dh::remove(argv[1]));
	} catch (const dh::error &e) {
		std::fprintf(stderr, "app: %s\n", e.what());
		return 1;
	}
	EOF
	export PKG_CONFIG_PATH=$R/usr/local/lib/pkgconfig
	flags=$(pkg-config --define-variable=prefix="$R/usr/local" --cflags --libs dh)
	case $DH_BUILD in *asan*) flags="-fsanitize=address,undefined $flags" ;; esac
	# shellcheck disable=SC2086
	c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$T/app" "$T/app.cpp" $flags
	# -ldh is the shared library now: found at run time through its soname
	run -0 env LD_LIBRARY_PATH="$R/usr/local/lib" "$T/app" "$ch"
	assert_output "7 1.5 0"
	[ ! -e "$(dh_shm "$ch")" ]
	mk uninstall DESTDIR="$R"
	[ ! -e "$R/usr/local/include/dh/dh.hpp" ]
}

@test "make install: the Python package imports from the DESTDIR's site-packages and moves a message" {
	[ -z "${DH_SAN:-}" ] || skip "an instrumented module cannot load into /usr/bin/python3"
	mk install DESTDIR="$R"
	site=$(echo "$R"/usr/local/lib/python3.*/dist-packages)
	[ -f "$site/dh/__init__.py" ]
	# the installed module stands alone: no libdh.so needed at run time
	! readelf -d "$site"/dh/_dh.*.so | grep -qF libdh.so || fail "the module needs libdh.so"
	run -0 env PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$site" /usr/bin/python3 -c '
import sys, dh
assert dh.__file__.startswith(sys.argv[2]), dh.__file__
dh.create(sys.argv[1], slots=4, slot_size=64)
with dh.Writer(sys.argv[1]) as w:
    w.write(b"hello")
with dh.Reader(sys.argv[1], start="oldest", timeout=5) as r:
    print(*[bytes(m.data).decode() for m in r])
dh.remove(sys.argv[1])' "$ch" "$site"
	assert_output "hello"
	mk uninstall DESTDIR="$R"
	run files "$R"
	assert_output ""
}
