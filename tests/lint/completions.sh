#!/bin/sh
# completions.sh: check the shell completions, if they exist yet. See LICENSE.
# TAP on stdout: shellcheck of completions/dh.bash, and every long option of
# each built command's --help appears in completions/dh.bash and completions/_dh.
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

if [ -f completions/dh.bash ]; then
	if out=$(shellcheck -s bash completions/dh.bash 2>&1); then
		ok "shellcheck -s bash completions/dh.bash"
	else
		notok "shellcheck -s bash completions/dh.bash" "$out"
	fi
fi

for comp in completions/dh.bash completions/_dh; do
	[ -f "$comp" ] || continue
	for cmd in "$bin"/dh-*; do
		[ -x "$cmd" ] || continue
		name=${cmd##*/}
		missing=
		for o in $("$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
			grep -qE -- "$o([^a-z0-9-]|\$)" "$comp" || missing="$missing $o"
		done
		if [ -z "$missing" ]; then
			ok "$comp: completes every long option of $name"
		else
			notok "$comp: completes every long option of $name" "missing:$missing"
		fi
	done
done
[ "$n" -gt 0 ] && echo "1..$n"
exit 0
