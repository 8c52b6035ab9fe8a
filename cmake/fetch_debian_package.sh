#!/bin/sh
# Fetches one Debian package (a headers-only -dev package: ONNX Runtime's, Xbyak's) and unpacks it
# into DEST/root without touching the system's apt configuration: a private apt state folder with
# one source line for SUITE, built from the mirror this machine's apt already uses.
# Usage: fetch_debian_package.sh DEST SUITE PACKAGE VERSION
set -eu
dest=$1 suite=$2 package=$3 version=$4
mkdir -p "$dest/etc/sources.list.d" "$dest/etc/preferences.d" "$dest/state/lists/partial" \
         "$dest/cache/archives/partial" "$dest/deb" "$dest/root"

# The Debian mirror this machine is configured with (one-line or deb822 format).
mirror=$(sed -n -e 's/^deb \(\[[^]]*\] \)\{0,1\}\(https\{0,1\}:[^ ]*\/debian\) .*/\2/p' \
                -e 's/^URIs: *\(https\{0,1\}:[^ ]*\/debian\)\/\{0,1\}$/\1/p' \
         /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n 1)
[ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $suite main" > "$dest/etc/sources.list"

apt_opts="-o Dir::Etc::sourcelist=$dest/etc/sources.list -o Dir::Etc::sourceparts=$dest/etc/sources.list.d
 -o Dir::Etc::preferencesparts=$dest/etc/preferences.d -o Dir::State=$dest/state
 -o Dir::Cache=$dest/cache -o Debug::NoLocking=1 -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get $apt_opts -qq update >&2
cd "$dest/deb"
# shellcheck disable=SC2086
apt-get $apt_opts -qq download "${package}=${version}*" >&2
dpkg-deb -x "${package}"_*.deb "$dest/root"
