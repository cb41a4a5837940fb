#!/bin/sh
# install-deps.sh - install, from Debian's packages, what building and
# testing multiproc needs and this machine lacks. Needs root or sudo only
# when something is missing.
set -eu
need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
pkg-config --exists check 2>/dev/null || need="$need check"
[ -e /usr/lib/x86_64-linux-gnu/libsubunit.so ] || \
    [ -e /usr/lib/aarch64-linux-gnu/libsubunit.so ] || need="$need libsubunit-dev"
if [ -z "$need" ]; then
    exit 0
fi
echo "install-deps: installing:$need"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: need root or sudo to install:$need" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq $need
