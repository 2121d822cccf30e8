#!/bin/sh
# deb.sh [OUTDIR]: build the Debian packages of this tree (make deb).
# The tree -- what git tracks plus new files it does not ignore, with any
# uncommitted edits -- is copied to OUTDIR/src and built there with
# dpkg-buildpackage -b, so this checkout's build/ is neither used nor
# touched; the .debs (and the build log, OUTDIR/build.log) land in OUTDIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src
rm -rf "$src" "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mkdir -p "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	# a tracked file deleted in the work tree is left out ($f is the inner sh's)
	# shellcheck disable=SC2016
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		xargs -0 cp --parents -t "$src")
else
	(cd "$top" && find . -path './build*' -prune -o -type f -print0 |
		xargs -0 cp --parents -t "$src")
fi
echo "deb: dpkg-buildpackage in $src (log: $out/build.log)"
# run from make (make deb, make check): not the caller's jobserver or flags
unset MAKEFLAGS MFLAGS MAKELEVEL
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=${DEB_JOBS:-2} ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
	tail -40 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
fi
rm -rf "$src"
ls "$out"/*.deb
