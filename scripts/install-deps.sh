#!/bin/sh
# Install every Debian package Capsem needs to build, test and build guest images.
# Idempotent: packages already present are skipped; apt runs only when something is missing.
set -eu

PACKAGES="
build-essential meson ninja-build pkg-config clang llvm libclang-rt-14-dev musl-tools
libssl-dev libcurl4-openssl-dev libevent-dev libjansson-dev libsqlite3-dev libext2fs-dev
libmicrohttpd-dev libmsgpack-dev
qemu-system-x86 qemu-utils
mmdebstrap squashfs-tools erofs-utils cpio kmod e2fsprogs dpkg-dev zstd
python3 python3-pytest python3-psutil python3-pytest-xdist python3-pytest-timeout
tmux sqlite3 jq curl ca-certificates openssl publicsuffix
nodejs
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# tests/mcp (MCP TypeScript SDK) needs npm; some nodejs builds bring their own.
if ! command -v npm >/dev/null 2>&1; then missing="$missing npm"; fi

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
