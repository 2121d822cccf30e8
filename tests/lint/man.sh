#!/bin/sh
# man.sh: lint the man pages and check them against the commands. See LICENSE.
# TAP on stdout, one line per check of something that exists:
#  - every man/*.[1-8] passes `mandoc -Tlint -W warning` silently;
#  - for every built command with a man/<cmd>.1 (a command without one is
#    reported as skipped), the SYNOPSIS equals the usage lines of
#    `<cmd> --help` and the page mentions every long option of --help.
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

render() {
	mandoc -Tascii "$1" | sed 's/.\x08//g'
}

# The SYNOPSIS forms, one per line, blanks squeezed.
synopsis() {
	render "$1" | awk '
		/^[A-Z]/ { insyn = ($0 == "SYNOPSIS"); next }
		!insyn || NF == 0 { next }
		/^     [^ ]/ { if (form != "") print form; form = "" }
		{ $1 = $1; form = (form == "" ? $0 : form " " $0) }
		END { if (form != "") print form }'
}

# The usage forms of --help: the "usage:" line and the indented lines
# right after it, up to a blank line; a line starting with the command name
# again starts the next form, any other continues (wraps) the current one.
usage() { # cmd name
	"$1" --help 2>/dev/null | awk -v cmd="$2" '
		NR == 1 { if (!sub(/^usage: /, "")) exit; on = 1; form = $0; next }
		NF == 0 || $0 !~ /^ / { exit }
		$1 == cmd { print form; form = $0; next }
		{ form = form " " $0 }
		END { if (on) print form }' | awk '{ $1 = $1; print }'
}

for page in man/*.[1-8]; do
	[ -f "$page" ] || continue
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	if [ -z "$out" ]; then
		ok "mandoc -Tlint: $page"
	else
		notok "mandoc -Tlint: $page" "$out"
	fi
done

for cmd in "$bin"/dh-*; do
	[ -x "$cmd" ] || continue
	name=${cmd##*/}
	page=man/$name.1
	if [ ! -f "$page" ]; then
		# Visible in the closing "K skipped" of make check, not a failure
		# while the page is being written.
		ok "$name: man page checks # SKIP $page not written yet"
		continue
	fi
	want=$(synopsis "$page")
	got=$(usage "$cmd" "$name")
	if [ -n "$got" ] && [ "$want" = "$got" ]; then
		ok "$name: --help usage equals the SYNOPSIS of $page"
	else
		notok "$name: --help usage equals the SYNOPSIS of $page" \
			"$(printf 'usage:    %s\nSYNOPSIS: %s' "$got" "$want")"
	fi
	text=$(render "$page")
	missing=
	for o in $("$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		printf '%s\n' "$text" | grep -qE -- "$o([^a-z0-9-]|\$)" || missing="$missing $o"
	done
	if [ -z "$missing" ]; then
		ok "$name: every long option of --help is in $page"
	else
		notok "$name: every long option of --help is in $page" "missing:$missing"
	fi
done
echo "1..$n"
