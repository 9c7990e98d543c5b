#!/bin/bash
# Installs the host binaries into CAPSEM_HOME and runs `capsem setup` to install
# the guest assets (sha256 and size verified, manifest written atomically, old
# versions cleaned up, user.toml written if absent):
#   scripts/install.sh --home DIR --bin-dir BUILD/src/cmd --assets build/assets
set -euo pipefail

HOME_DIR="" BIN_DIR="" ASSETS=""
while [ $# -gt 0 ]; do
    case $1 in
    --home) HOME_DIR=$2 && shift 2 ;;
    --bin-dir) BIN_DIR=$2 && shift 2 ;;
    --assets) ASSETS=$2 && shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2 && exit 2 ;;
    esac
done
[ -n "$HOME_DIR" ] && [ -n "$BIN_DIR" ] && [ -n "$ASSETS" ] || {
    echo "usage: install.sh --home DIR --bin-dir DIR --assets DIR" >&2
    exit 2
}

umask 077
mkdir -p "$HOME_DIR/bin"
chmod 700 "$HOME_DIR"
for b in capsem capsem-service capsem-process capsem-mcp; do
    src="$BIN_DIR/$b"
    [ -x "$src" ] || { echo "install.sh: $b not built" >&2 && exit 1; }
    install -m 0755 "$src" "$HOME_DIR/bin/$b.new"
    mv -f "$HOME_DIR/bin/$b.new" "$HOME_DIR/bin/$b"
done

# Bundled data (network policy profiles, the AI price table).
if [ -d share ]; then
    rm -rf "$HOME_DIR/share/capsem.new"
    mkdir -p "$HOME_DIR/share"
    cp -r share "$HOME_DIR/share/capsem.new"
    rm -rf "$HOME_DIR/share/capsem"
    mv "$HOME_DIR/share/capsem.new" "$HOME_DIR/share/capsem"
fi

# A service from older binaries keeps running its VMs; stop it so the next
# command starts the new one, which re-adopts them.
pidfile="$HOME_DIR/run/service.pid"
if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
fi

ABS_ASSETS=$(cd "$ASSETS" && pwd)
if [ "$(cd "$HOME_DIR" && pwd)" = "$(cd ~ && pwd)/.capsem" ]; then
    "$HOME_DIR/bin/capsem" setup --non-interactive --no-service --assets-from "$ABS_ASSETS"
else
    CAPSEM_HOME="$HOME_DIR" "$HOME_DIR/bin/capsem" setup --non-interactive --no-service \
        --assets-from "$ABS_ASSETS"
fi
