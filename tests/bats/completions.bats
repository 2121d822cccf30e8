#!/usr/bin/env bats
# completions/dh.bash and completions/_dh, asked for completions. See LICENSE.

load test_helper

setup() {
	dh_setup
	ch=$(dh_name)
	T=$BATS_TEST_TMPDIR
	# shellcheck source=../../completions/dh.bash
	. "$DH_TOP/completions/dh.bash"
}

# comp WORD...: run the bash completion for the command line WORD... (the
# last word is the one being completed); the matches in $output, sorted,
# one per line.
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_dh
	output=$(printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort)
}

# zcomp LINE: what zsh offers for LINE<TAB>, in $output.
zcomp() {
	output=$(timeout 30 zsh -f "$DH_TOP/tests/helpers/zsh-complete.zsh" "$DH_TOP/completions" "$1" | sed 1d)
}

need_zsh() {
	command -v zsh >/dev/null && zsh -fc 'zmodload zsh/zpty' 2>/dev/null || skip "zsh with zpty not installed"
}

words() { # expected matches, as arguments
	printf '%s\n' "$@" | LC_ALL=C sort
}

@test "bash: registered for every command" {
	for c in dh-broker dh-create dh-diagnose dh-read dh-stat dh-validate dh-write; do
		run complete -p "$c"
		assert_output "complete -F _dh $c"
	done
}

@test "bash: the options of each command" {
	comp dh-stat --
	assert_equal "$output" "$(words --all-fields --broker --broker-key --client-key --events --filter --help \
		--json --prometheus --serve --version --watch)"
	comp dh-stat -
	assert_equal "$output" "$(words --all-fields --broker --broker-key --client-key --events --filter --help \
		--json --prometheus --serve --version --watch -V -h)"
	comp dh-create --pol
	assert_equal "$output" --policy
	comp dh-read --f
	assert_equal "$output" "$(words --follow --framed --from)"
	comp /usr/local/bin/dh-validate --re
	assert_equal "$output" --repair
	comp dh-broker --k
	assert_equal "$output" --keygen
}

@test "bash: values of --policy, --checksum, --from, also as --opt=value" {
	comp dh-create --policy ""
	assert_equal "$output" "$(words latest queue ring sync)"
	comp dh-write --create --policy r
	assert_equal "$output" ring
	comp dh-create --checksum ""
	assert_equal "$output" "$(words blake2b none xxh3)"
	comp dh-read --from ""
	assert_equal "$output" "$(words latest now oldest)"
	# bash splits --policy=sy into --policy, =, sy (COMP_WORDBREAKS)
	comp dh-create --policy = sy
	assert_equal "$output" sync
	comp dh-create --checksum =
	assert_equal "$output" "$(words blake2b none xxh3)"
	comp dh-read --progress =
	assert_equal "$output" "$(words auto log)"
	# a value is never mistaken for options
	comp dh-stat --watch -
	assert_equal "$output" ""
	comp dh-write --broker ""
	assert_equal "$output" "$(words ipc:// tcp://)"
	comp dh-read --wait-channel ""
	assert_equal "$output" inf
}

@test "bash: policy and checksum names are asked of the dh-create beside the command, else on PATH" {
	mkdir "$T/bin"
	# a dh-create whose table differs from the real one
	printf '#!/bin/sh\necho "  --policy POLICY    one of alpha, beta (default beta)"\n' >"$T/bin/dh-create"
	chmod +x "$T/bin/dh-create"
	comp "$T/bin/dh-write" --policy ""
	assert_equal "$output" "$(words alpha beta)"
	comp "$T/bin/dh-create" --checksum ""
	assert_equal "$output" ""
	PATH="$T/bin:$PATH" comp dh-write --create --policy ""
	assert_equal "$output" "$(words alpha beta)"
	# no dh-create: no names, rather than a list that may be stale
	PATH=/usr/bin:/bin comp dh-create --policy ""
	assert_equal "$output" ""
}

@test "bash: channel names from /dev/shm for NAME operands, not for dh-broker" {
	dh-create "$ch-alpha"
	dh-create "$ch-beta"
	comp dh-stat "$ch-"
	assert_equal "$output" "$(words "$ch-alpha" "$ch-beta")"
	comp dh-read --lines "$ch-a"
	assert_equal "$output" "$ch-alpha"
	comp dh-create --remove "$ch-alpha" "$ch-b"
	assert_equal "$output" "$ch-beta"
	comp dh-broker "$ch-"
	assert_equal "$output" ""
	dh-create --remove "$ch-beta"
	comp dh-validate "$ch-"
	assert_equal "$output" "$ch-alpha"
}

@test "bash: files for --key and --meta, directories for dh-broker --curve" {
	mkdir "$T/keys.d"
	: >"$T/key.bin"
	comp dh-read --key "$T/ke"
	assert_equal "$output" "$(words "$T/key.bin" "$T/keys.d")"
	comp dh-write --meta "$T/key."
	assert_equal "$output" "$T/key.bin"
	comp dh-broker --curve "$T/ke"
	assert_equal "$output" "$T/keys.d"
	comp dh-broker --keygen "$T/ke"
	assert_equal "$output" "$T/keys.d"
	comp dh-create --keygen "$T/key."
	assert_equal "$output" "$T/key.bin"
	comp dh-stat --broker-key "$T/key."
	assert_equal "$output" "$T/key.bin"
}

@test "bash: a dh command the file does not know: options from its --help" {
	mkdir "$T/bin"
	printf '#!/bin/sh\necho "usage: dh-new [--alpha] [--beta N] NAME"\n' >"$T/bin/dh-new"
	chmod +x "$T/bin/dh-new"
	PATH="$T/bin:$PATH" comp dh-new --
	assert_equal "$output" "$(words --alpha --beta)"
}

@test "zsh: options, values and channel names" {
	need_zsh
	dh-create "$ch-alpha"
	zcomp "dh-stat --"
	assert_equal "$output" "$(words --all-fields --broker --broker-key --client-key --events --filter --help \
		--json --prometheus --serve --version --watch)"
	zcomp "dh-stat --json --"
	assert_equal "$output" "$(words --all-fields --broker --broker-key --client-key --events --filter --help \
		--version --watch)"
	zcomp "dh-create --policy "
	assert_equal "$output" "$(words latest queue ring sync)"
	zcomp "dh-create --checksum="
	assert_equal "$output" "$(words blake2b none xxh3)"
	zcomp "dh-read --from "
	assert_equal "$output" "$(words latest now oldest)"
	mkdir "$T/bin"
	printf '#!/bin/sh\necho "  --policy POLICY    one of alpha, beta (default beta)"\n' >"$T/bin/dh-create"
	chmod +x "$T/bin/dh-create"
	zcomp "$T/bin/dh-write --policy "
	assert_equal "$output" "$(words alpha beta)"
	zcomp "dh-read --lines $ch-al"
	assert_equal "$output" "$ch-alpha"
	zcomp "dh-broker --curve $T/"
	refute_output --partial "$ch"
	# asking zsh leaves the system alone (compinit once replaced /dev/null)
	[ -c /dev/null ] || fail "/dev/null is no longer a device"
}
