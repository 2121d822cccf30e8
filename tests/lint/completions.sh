#!/bin/sh
# completions.sh: check the shell completions, if they exist yet. See LICENSE.
# TAP on stdout:
#  - shellcheck of completions/dh.bash; zsh -n of completions/_dh;
#  - every built command is registered in both files (complete -F, #compdef);
#  - bash: asked for `CMD --`, the function offers every long option of
#    CMD --help; asked for `CMD --opt --` for each option --help shows with a
#    value (--opt ARG), it offers no options (it knows a value comes next);
#  - zsh: the same two checks through a real zsh (tests/helpers/zsh-complete.zsh);
#    without zsh, every long option must at least appear in completions/_dh.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
bin=${DH_BUILD:-${BUILD:-build}}/bin
n=0

ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}

notok() { # description [details]
	n=$((n + 1))
	echo "not ok $n - $1"
	[ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/#   /'
	return 0
}

check() { # description missing-list
	if [ -z "$2" ]; then ok "$1"; else notok "$1" "missing:$2"; fi
}

longopts() { # cmd: the long options of its --help
	"$1" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

valopts() { # cmd: the long options --help shows followed by a value name
	"$1" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]* [A-Z]+([^a-z]|$)' | cut -d' ' -f1 | sort -u
}

# bash_complete WORD...: what completions/dh.bash offers for that command line.
bash_complete() {
	bash -c '. completions/dh.bash
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dh
		printf "%s\n" "${COMPREPLY[@]}"' bash "$@"
}

# zsh_complete LINE...: "== LINE" then the matches zsh offers, for each LINE.
zsh_complete() {
	timeout 60 zsh -f tests/helpers/zsh-complete.zsh "$top/completions" "$@"
}

# section LINE: the matches of LINE in zsh_complete output on stdin.
section() {
	awk -v h="== $1" '$0 == h { on = 1; next } /^== / { on = 0 } on'
}

have_zsh=0
command -v zsh >/dev/null 2>&1 && zsh -fc 'zmodload zsh/zpty' 2>/dev/null && have_zsh=1

if [ -f completions/dh.bash ]; then
	if out=$(shellcheck -s bash completions/dh.bash 2>&1); then
		ok "shellcheck -s bash completions/dh.bash"
	else
		notok "shellcheck -s bash completions/dh.bash" "$out"
	fi
fi
if [ -f completions/_dh ] && [ $have_zsh = 1 ]; then
	if out=$(zsh -n completions/_dh 2>&1); then
		ok "zsh -n completions/_dh"
	else
		notok "zsh -n completions/_dh" "$out"
	fi
fi

for cmd in "$bin"/dh-*; do
	[ -x "$cmd" ] || continue
	name=${cmd##*/}

	if [ -f completions/dh.bash ]; then
		check "completions/dh.bash: $name is registered" "$(grep -qE "^complete -F _dh( [a-z-]+)* $name( |\$)" completions/dh.bash || echo " $name")"
		offered=$(bash_complete "$name" --)
		missing=
		for o in $(longopts "$cmd"); do
			printf '%s\n' "$offered" | grep -qx -- "$o" || missing="$missing $o"
		done
		check "completions/dh.bash: $name -- offers every long option" "$missing"
		missing=
		for o in $(valopts "$cmd"); do
			# "--" after it: a value (none starts so), or options if it did not know
			bash_complete "$name" "$o" -- | grep -q '^-' && missing="$missing $o"
		done
		check "completions/dh.bash: $name: options that take a value complete a value" "$missing"
	fi

	if [ -f completions/_dh ]; then
		check "completions/_dh: $name is in #compdef" \
			"$(head -n 1 completions/_dh | grep -qE "^#compdef( [a-z-]+)* $name( |\$)" || echo " $name")"
		if [ $have_zsh = 1 ]; then
			vals=$(valopts "$cmd")
			# one zsh session per command: "CMD --", then "CMD --opt " for each
			set -- "$name --"
			for o in $vals; do
				set -- "$@" "$name $o --"
			done
			answers=$(zsh_complete "$@")
			offered=$(printf '%s\n' "$answers" | section "$name --")
			missing=
			for o in $(longopts "$cmd"); do
				printf '%s\n' "$offered" | grep -qx -- "$o" || missing="$missing $o"
			done
			check "completions/_dh: $name -- offers every long option (zsh)" "$missing"
			missing=
			for o in $vals; do
				printf '%s\n' "$answers" | section "$name $o --" | grep -q '^-' && missing="$missing $o"
			done
			check "completions/_dh: $name: options that take a value complete a value (zsh)" "$missing"
		else
			missing=
			for o in $(longopts "$cmd"); do
				grep -qE -- "$o([^a-z0-9-]|\$)" completions/_dh || missing="$missing $o"
			done
			check "completions/_dh: mentions every long option of $name (no zsh to ask)" "$missing"
		fi
	fi
done
[ "$n" -gt 0 ] && echo "1..$n"
exit 0
