#!/bin/bash
# Installs the host binaries and the guest assets into CAPSEM_HOME:
#   scripts/install.sh --home DIR --bin-dir BUILD/src/cmd --assets build/assets
# Assets are hard-linked when possible (they are read-only), else copied.
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
mkdir -p "$HOME_DIR/bin" "$HOME_DIR/assets"
chmod 700 "$HOME_DIR"
for b in capsem capsem-service capsem-process; do
    src="$BIN_DIR/$b"
    [ -x "$src" ] || src="$BIN_DIR/$b/$b"
    [ -x "$src" ] || { echo "install.sh: $b not built" >&2 && exit 1; }
    install -m 0755 "$src" "$HOME_DIR/bin/$b.new"
    mv -f "$HOME_DIR/bin/$b.new" "$HOME_DIR/bin/$b"
done

version=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["current"])' \
    "$ASSETS/manifest.json")
if [ ! -d "$HOME_DIR/assets/v$version" ]; then
    tmp="$HOME_DIR/assets/.v$version.tmp"
    rm -rf "$tmp"
    cp -al "$ASSETS/v$version" "$tmp" 2>/dev/null || cp -a --reflink=auto "$ASSETS/v$version" "$tmp"
    mv "$tmp" "$HOME_DIR/assets/v$version"
fi
# The manifest lists every version still installed, current first.
/usr/bin/python3 - "$ASSETS/manifest.json" "$HOME_DIR/assets" <<'PY'
import json, os, sys
src = json.load(open(sys.argv[1]))
dst_dir = sys.argv[2]
path = os.path.join(dst_dir, "manifest.json")
try:
    dst = json.load(open(path))
except (OSError, ValueError):
    dst = {"format": 1, "versions": {}}
dst["format"] = 1
dst.setdefault("versions", {}).update(src["versions"])
dst["current"] = src["current"]
dst["versions"] = {v: e for v, e in dst["versions"].items()
                   if os.path.isdir(os.path.join(dst_dir, "v" + v))}
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(dst, f, indent=2)
    f.flush()
    os.fsync(f.fileno())
os.rename(tmp, path)
PY
echo "Installed capsem into $HOME_DIR (assets v$version)"
