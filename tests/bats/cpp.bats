#!/usr/bin/env bats
# lib/dh.hpp from the compiler's side: the header stands alone, record types
# that are not trivially copyable are refused at compile time, and the
# examples of dh-cpp(3) and README.md compile and run. The behaviour of the
# layer is tested by tests/cpp/test_cpp.cpp. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
}

# The flags the C++ tests build with, warnings as errors.
CXXFLAGS=(-std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Werror)

# cxx_link OUT SRC: build a program against the tree's lib/ and libdh.a.
cxx_link() {
	local san=()
	# a sanitizer build's libdh.a needs the sanitizer runtimes
	case $DH_BUILD in *asan*) san=("-fsanitize=address,undefined") ;; esac
	# shellcheck disable=SC2046
	g++ "${CXXFLAGS[@]}" "${san[@]}" -I"$DH_TOP/lib" -o "$1" "$2" "$DH_TOP/$DH_BUILD/libdh.a" \
		$(pkg-config --libs libsodium libzmq libxxhash jansson) -lpthread
}

# man_examples DIR: write every literal block of the EXAMPLES section of
# dh-cpp(3) whose first line is "// FILE.cpp: ..." to DIR/FILE.cpp, with
# the roff escapes the page uses undone; print the file names.
man_examples() {
	awk -v dir="$1" '
		/^\.Sh / { ex = ($2 == "EXAMPLES"); next }
		ex && /^\.Bd -literal/ { inb = 1; out = ""; next }
		inb && /^\.Ed/ { inb = 0; if (out != "") close(out); out = ""; next }
		inb && out == "" {
			if (match($0, /^\/\/ [a-z_]+\.cpp:/)) {
				out = dir "/" substr($0, 4, RLENGTH - 4)
				print substr($0, 4, RLENGTH - 4)
			} else {
				inb = 0
				next
			}
		}
		inb {
			line = $0
			gsub(/\\&/, "", line)
			gsub(/\\e/, "\\", line)
			print line > out
		}' "$DH_TOP/man/dh-cpp.3"
}

# readme_examples DIR: the same for the ```cpp blocks of README.md.
readme_examples() {
	awk -v dir="$1" '
		/^```cpp$/ { inb = 1; out = ""; next }
		inb && /^```$/ { inb = 0; if (out != "") close(out); out = ""; next }
		inb && out == "" && match($0, /^\/\/ [a-z_]+\.cpp:/) {
			out = dir "/" substr($0, 4, RLENGTH - 4)
			print substr($0, 4, RLENGTH - 4)
		}
		inb && out != "" { print > out }' "$DH_TOP/README.md"
}

@test "dh.hpp compiles on its own, warning-free, as C++17 and as C++20; under C++20 it takes std::span" {
	printf '#include "dh.hpp"\n' >"$T/h.cpp"
	for std in c++17 c++20; do
		g++ -std=$std -Wall -Wextra -Wpedantic -Wshadow -Werror -I"$DH_TOP/lib" -fsyntax-only "$T/h.cpp"
	done
	cat >"$T/span.cpp" <<-'EOF'
	#include "dh.hpp"
	#include <span>
	void f(dh::writer &w, const dh::message &m)
	{
		std::span<const std::byte> s = m.data;
		w.write(s);
		w.write(std::span<const int>());
	}
	EOF
	g++ -std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Werror -I"$DH_TOP/lib" -fsyntax-only "$T/span.cpp"
}

@test "a record type that is not trivially copyable does not compile: write_record, reserve_record, next_record, as" {
	cat >"$T/rec.cpp" <<-'EOF'
	#include "dh.hpp"
	#include <string>
	#ifdef TRIVIAL
	struct rec { int id; char name[12]; };
	#else
	struct rec { int id; std::string name; };
	#endif
	void f(dh::writer &w, dh::reader &r, const dh::message &m)
	{
	#if USE == 1
		w.write_record(rec{});
	#elif USE == 2
		auto tx = w.reserve_record<rec>();
		tx.commit();
	#elif USE == 3
		auto x = r.next_record<rec>();
		(void)x;
	#else
		auto x = m.as<rec>();
		(void)x;
	#endif
		(void)w, (void)r, (void)m;
	}
	EOF
	for use in 1 2 3 4; do
		# the control: the same code with a trivially copyable type compiles
		g++ "${CXXFLAGS[@]}" -I"$DH_TOP/lib" -fsyntax-only -DTRIVIAL -DUSE=$use "$T/rec.cpp" ||
			fail "USE=$use: the trivially copyable control does not compile"
		run -1 g++ "${CXXFLAGS[@]}" -I"$DH_TOP/lib" -fsyntax-only -DUSE=$use "$T/rec.cpp"
		assert_output --partial "static assertion failed: dh: record type must be trivially copyable"
	done
}

@test "the examples of dh-cpp(3) compile warning-free and run as a producer and a consumer" {
	run -0 man_examples "$T"
	assert_output $'producer.cpp\nconsumer.cpp'
	cxx_link "$T/producer" "$T/producer.cpp"
	cxx_link "$T/consumer" "$T/consumer.cpp"
	dh-create --schema 'ts:u64;temp:f32' "$ch"
	"$T/consumer" "$ch" >"$T/out" &
	pid=$!
	# like a FIFO: the consumer attaches first, or it waits for the next stream
	dh_await dh_locked "$ch"
	"$T/producer" "$ch"
	wait "$pid"
	run cat "$T/out"
	assert_output "$(for i in 0 1 2 3 4 5 6 7 8 9; do
		awk -v i=$i 'BEGIN { printf "%d %.1f\n", i, 20 + i / 2 }'
	done)"
	# what the producer wrote is what the schema says, for the commands too
	run -0 dh-read --csv --no-wait "$ch"
	assert_line -n 0 'ts,temp'
	assert_line -n 10 '9,24.5'
}

@test "the C++ examples of README.md are those of dh-cpp(3)" {
	mkdir "$T/man" "$T/readme"
	run -0 man_examples "$T/man"
	assert_output $'producer.cpp\nconsumer.cpp'
	run -0 readme_examples "$T/readme"
	assert_output $'producer.cpp\nconsumer.cpp'
	diff -u "$T/man/producer.cpp" "$T/readme/producer.cpp"
	diff -u "$T/man/consumer.cpp" "$T/readme/consumer.cpp"
}
