#!/bin/sh
# Install the Debian packages dh builds and tests with, when missing.
set -eu
pkgs="gcc g++ make pkg-config libsodium-dev libzmq3-dev libxxhash-dev libjansson-dev
bats bats-support bats-assert mandoc shellcheck jq python3-zmq procps
python3-dev python3-setuptools python3-numpy python3-pytest stress-ng util-linux spin clang libclang-rt-dev prometheus zsh
libmicrohttpd-dev libncurses-dev tmux curl
dpkg-dev debhelper dh-python lintian fakeroot systemd"
# Only `make bench` uses these (the Eclipse iceoryx peer, issue 14): installed
# where the archive has them for this architecture, never a reason to fail;
# dh-bench skips the peer with a note without them.
optional="iceoryx libiceoryx-binding-c-dev"
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
missing=
for p in $pkgs; do
	installed "$p" || missing="$missing $p"
done
opt_missing=
for p in $optional; do
	installed "$p" || opt_missing="$opt_missing $p"
done
[ -z "$missing$opt_missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	[ -n "$opt_missing" ] && echo "deps: optional (make bench) packages not installed:$opt_missing" >&2
	[ -z "$missing" ] && exit 0
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
apt-get update -q >&2
for p in $opt_missing; do
	if apt-cache show "$p" >/dev/null 2>&1; then
		missing="$missing $p"
	else
		echo "deps: $p is not available here; make bench will skip the iceoryx peer" >&2
	fi
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2
