#!/usr/bin/env bats
# one-source.bats: what is written once stays so: the policy and checksum
# names of lib/policy.c in every usage string, man page and completion,
# and the version of config.mk in every program. See LICENSE.

load test_helper

# table KIND: the names lib/policy.c lists for --KIND (policy or checksum),
# one per line, as the commands report them for an unknown value.
table() {
	run -2 --separate-stderr dh-create --"$1" '?' dhtest-one-source-never-created
	[[ $stderr =~ \((.*)\)$ ]] || fail "no list of choices in: $stderr"
	tr -d ' ' <<<"${BASH_REMATCH[1]}" | tr ',' '\n'
}

# check_names KIND: the table's names for --KIND, in table order, joined by
# '|' in the usage lines and man pages of dh-create and dh-write, by
# blanks in the bash and zsh completions.
check_names() {
	local kind=$1 names joined spaced
	names=$(table "$kind")
	[ "$(wc -l <<<"$names")" -ge 3 ] || fail "--$kind: too few names: $names"
	joined=$(paste -sd'|' <<<"$names")
	spaced=$(paste -sd' ' <<<"$names")
	local cmd
	for cmd in dh-create dh-write; do
		run -0 "$cmd" --help
		# the first usage form, its wrapped lines joined
		local form
		form=$(dh_usage_forms <<<"$output" | head -1)
		[[ $form == *"--$kind $joined]"* ]] || fail "$cmd usage lacks --$kind $joined: $form"
	done
	grep -qF "*:--$kind) _dh_words \"$spaced\" ;;" "$DH_TOP/completions/dh.bash" ||
		fail "completions/dh.bash: --$kind is not \"$spaced\""
	grep -qF ":$kind:($spaced)'" "$DH_TOP/completions/_dh" ||
		fail "completions/_dh: --$kind is not ($spaced)"
	local page
	for cmd in dh-create dh-write; do
		page=$(mandoc -Tascii "$DH_TOP/man/$cmd.1" | sed 's/.\x08//g')
		[[ $page == *"--$kind $joined"* ]] || fail "$cmd(1) lacks --$kind $joined"
	done
}

@test "the policy names of lib/policy.c are those of the usage lines, the man pages and both completions" {
	check_names policy
}

@test "the checksum names of lib/policy.c are those of the usage lines, the man pages and both completions" {
	check_names checksum
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
