#!/bin/sh
# Install the Debian packages dh builds and tests with, when missing.
set -eu
pkgs="gcc g++ make pkg-config libsodium-dev libzmq3-dev libxxhash-dev libjansson-dev
bats bats-support bats-assert mandoc shellcheck jq python3-zmq procps
python3-dev python3-setuptools python3-numpy python3-pytest stress-ng util-linux spin clang libclang-rt-dev prometheus zsh
libmicrohttpd-dev libncurses-dev tmux curl
dpkg-dev debhelper dh-python lintian fakeroot systemd"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
cmd="apt-get update && apt-get install -y$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing" >&2
	echo "deps: run as root: $cmd" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2
