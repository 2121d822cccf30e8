#!/usr/bin/env bats
# one-source.bats: what is written once stays so.  The policy and checksum
# names of lib/policy.c: the commands' --help and both completions take
# them from the table (the completions ask the built dh-create), the usage
# lines and SYNOPSIS say POLICY and KIND instead of repeating them, and
# every page, spec, binding and summary that describes or encodes each one
# names every one (docs/DESIGN.md lists those files).  The version of config.mk
# in every program.  See LICENSE.

load test_helper

# table KIND: the names lib/policy.c lists for --KIND (policy or checksum),
# one per line, as the commands report them for an unknown value.
table() {
	run -2 --separate-stderr dh-create --"$1" '?' dhtest-one-source-never-created
	[[ $stderr =~ \((.*)\)$ ]] || fail "no list of choices in: $stderr"
	tr -d ' ' <<<"${BASH_REMATCH[1]}" | tr ',' '\n'
}

# comp WORD...: what completions/dh.bash offers for that command line,
# sorted, one per line.
comp() {
	bash -c '. "$DH_TOP/completions/dh.bash"
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dh
		printf "%s\n" "${COMPREPLY[@]}"' bash "$@" | LC_ALL=C sort
}

# in_block FILE START END WORD: WORD is on a line of FILE between the first
# line matching START and the next matching END.
in_block() {
	awk -v s="$2" -v e="$3" -v w="$4" '
		!on && $0 ~ s { on = 1; next }
		on && $0 ~ e { exit }
		on && index($0, w) { found = 1; exit }
		END { exit !found }' "$1"
}

# the_names KIND PLACEHOLDER: $names (table order) and $sorted for --KIND,
# after checking that both usage lines and SYNOPSIS say --KIND PLACEHOLDER
# and that dh-create --help lists exactly the table.
the_names() {
	local kind=$1 ph=$2 cmd form page
	names=$(table "$kind")
	[ "$(wc -l <<<"$names")" -ge 3 ] || fail "--$kind: too few names: $names"
	sorted=$(LC_ALL=C sort <<<"$names")
	for cmd in dh-create dh-write; do
		run -0 "$cmd" --help
		form=$(dh_usage_forms <<<"$output" | head -1)
		[[ $form == *"[--$kind $ph]"* ]] || fail "$cmd usage: not [--$kind $ph]: $form"
		page=$(mandoc -Tascii "$DH_TOP/man/$cmd.1" | sed 's/.\x08//g')
		[[ $page == *"[--$kind $ph]"* ]] || fail "$cmd(1) SYNOPSIS: not [--$kind $ph]"
	done
	run -0 dh-create --help
	assert_line --regexp "^  --$kind $ph +one of $(paste -sd, <<<"$names" | sed 's/,/, /g') \\(default [a-z0-9]+\\)$"
}

# in_docs KIND NAME...: each NAME in every file that describes or encodes
# the kinds of --KIND.
in_docs() {
	local ty=$1 n
	shift
	for n; do
		grep -qE "^\\.It [0-9]+ Ta $ty Ta u32 Ta .*[0-9] $n(,|\$| )" "$DH_TOP/man/dh-format.5" ||
			fail "dh-format(5): the $ty header field lacks $n"
		grep -E "^enum class $ty \\{" "$DH_TOP/lib/dh.hpp" | grep -qE "[ {]$n = DH_" ||
			fail "lib/dh.hpp: dh::$ty lacks $n"
		if [ "$ty" = policy ]; then
			in_block "$DH_TOP/man/dh.7" '^\.Ss Policies' '^\.S[sh] ' ".It Cm $n" ||
				fail "dh(7) Policies does not describe $n"
			in_block "$DH_TOP/man/dh-read.1" "depends on the channel's policy" '^\.El' ".It Cm $n" ||
				fail "dh-read(1) does not say what a $n reader receives"
			in_block "$DH_TOP/README.md" 'policies:$' '^- ' "\`$n\`" ||
				fail "README.md: the summary's policies lack $n"
		else
			in_block "$DH_TOP/man/dh.7" '^\.Ss Checksums' '^\.S[sh] ' ".Cm $n" ||
				fail "dh(7) Checksums does not describe $n"
		fi
	done
}

check_names() { # kind placeholder
	local names sorted cmd
	the_names "$1" "$2"
	for cmd in dh-create dh-write "$DH_TOP/$DH_BUILD/bin/dh-write"; do
		assert_equal "$(comp "$cmd" --"$1" '')" "$sorted"
	done
	# shellcheck disable=SC2086 # one name a line
	in_docs "$1" $names
}

@test "the policy names of lib/policy.c: in --help and the bash completion, described in every page that must" {
	check_names policy POLICY
}

@test "the checksum names of lib/policy.c: in --help and the bash completion, described in every page that must" {
	check_names checksum KIND
}

@test "zsh offers the policy and checksum names of lib/policy.c" {
	command -v zsh >/dev/null && zsh -fc 'zmodload zsh/zpty' 2>/dev/null || skip "zsh with zpty not installed"
	local names sorted out
	for kind in policy checksum; do
		names=$(table "$kind")
		sorted=$(LC_ALL=C sort <<<"$names")
		out=$(timeout 30 zsh -f "$DH_TOP/tests/helpers/zsh-complete.zsh" "$DH_TOP/completions" \
			"dh-create --$kind " "dh-write --$kind=")
		assert_equal "$(awk '/^== dh-create/ { on = 1; next } /^== / { on = 0 } on' <<<"$out")" "$sorted"
		assert_equal "$(awk '/^== dh-write/ { on = 1; next } /^== / { on = 0 } on' <<<"$out")" "$sorted"
	done
}

@test "the version is written once: config.mk's VERSION, every command and the Python package agree" {
	local v cmd
	v=$(sed -n 's/^VERSION = //p' "$DH_TOP/config.mk")
	[ -n "$v" ]
	# no other file of the code spells it
	run grep -rlF --include='*.[ch]' --include='*.py' --include='*.in' "\"$v\"" "$DH_TOP/lib" "$DH_TOP/cmd" \
		"$DH_TOP/python" "$DH_TOP/bench"
	assert_output ""
	for cmd in "$DH_TOP/$DH_BUILD"/bin/dh-*; do
		run -0 "$cmd" --version
		assert_output "${cmd##*/} $v"
	done
	if [ -z "${DH_SAN:-}" ] && ls "$DH_TOP/$DH_BUILD"/python/dh/_dh.*.so >/dev/null 2>&1; then
		run -0 env PYTHONPATH="$DH_TOP/$DH_BUILD/python" /usr/bin/python3 -c 'import dh; print(dh.__version__)'
		assert_output "$v"
	fi
}
