#!/bin/bash
# Builds the Capsem guest image ("asset source" layout) from Debian packages.
#
#   images/build.sh --out DIR --agent CAPSEM_AGENT --init CAPSEM_INIT
#                   [--profiles code,minimal] [--cache DIR]
#
# Produces DIR/manifest.json and DIR/v<VERSION>/{vmlinux, initrd.img,
# rootfs-<profile>.erofs}; prints VERSION on stdout. Every artifact is cached
# under the cache dir by a hash of its inputs, so a rebuild with unchanged
# inputs takes seconds. See docs/guest-image.md.
set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB="$IMAGES_DIR/lib"
# shellcheck source=images/lib/common.sh
. "$LIB/common.sh"

usage() {
    cat >&2 <<'EOF'
usage: images/build.sh --out DIR --agent PATH --init PATH [--profiles LIST] [--cache DIR]

  --out DIR        staging directory for manifest.json and v<VERSION>/ (replaced versions
                   listed by an older manifest in DIR are removed)
  --agent PATH     static capsem-agent binary (musl) to put in the initrd
  --init PATH      static capsem-init binary (musl), PID 1 of the initrd
  --profiles LIST  comma-separated rootfs profiles (default: all in images/profiles: code,minimal)
  --cache DIR      artifact cache (default: ${CAPSEM_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/capsem}/images)

Environment: SOURCE_DATE_EPOCH (default: newest apt Release date), CAPSEM_IMAGE_CACHE_KEEP
(entries kept per artifact kind, default 3).
EOF
}

OUT="" AGENT="" INIT="" PROFILES="" CACHE_DIR=""
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT=${2:?--out needs a directory} && shift 2 ;;
    --agent) AGENT=${2:?--agent needs a path} && shift 2 ;;
    --init) INIT=${2:?--init needs a path} && shift 2 ;;
    --profiles) PROFILES=${2:?--profiles needs a list} && shift 2 ;;
    --cache) CACHE_DIR=${2:?--cache needs a directory} && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) usage && die "unknown argument '$1'" ;;
    esac
done
if [ -z "$OUT" ] || [ -z "$AGENT" ] || [ -z "$INIT" ]; then
    usage
    die "--out, --agent and --init are required"
fi
for f in "$AGENT" "$INIT"; do
    [ -f "$f" ] || die "$f: no such file (build the guest binaries first)"
    [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "$f is not an ELF binary"
done
AGENT=$(realpath "$AGENT")
INIT=$(realpath "$INIT")

[ "$(id -u)" = 0 ] ||
    die "must run as root (mknod /dev/console in the initrd, mmdebstrap --mode=root, file ownership)"
need_cmd apt-get apt-cache dpkg-deb depmod modprobe cpio mkfs.erofs mmdebstrap xz readelf flock \
    python3 sha256sum

all_profiles=$(find "$IMAGES_DIR/profiles" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
[ -n "$PROFILES" ] || PROFILES=$(echo "$all_profiles" | paste -sd, -)
mapfile -t profiles < <(tr ',' '\n' <<<"$PROFILES" | sed '/^$/d' | LC_ALL=C sort -u)
for p in "${profiles[@]}"; do
    [ -x "$IMAGES_DIR/profiles/$p/build.sh" ] ||
        die "unknown profile '$p' (have: $(echo "$all_profiles" | paste -sd' ' -))"
done

CACHE_DIR=${CACHE_DIR:-${CAPSEM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/capsem}/images}
CACHE_KEEP=${CAPSEM_IMAGE_CACHE_KEEP:-3} # read by cache_prune (lib/common.sh)
export CACHE_KEEP
mkdir -p "$CACHE_DIR/tmp" "$OUT"
CACHE_DIR=$(realpath "$CACHE_DIR")
OUT=$(realpath "$OUT")
apt_use_pkgcache "$CACHE_DIR/apt"
# Temp dirs of builds killed without a chance to clean up.
find "$CACHE_DIR/tmp" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + 2>/dev/null || true

CLEANUP_DIRS=()
cleanup() {
    local d
    for d in "${CLEANUP_DIRS[@]}"; do
        [ -e "$d" ] && rm -rf "$d"
    done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(default_source_date_epoch)}
export LC_ALL=C.UTF-8
t_start=$(now_s)

file_sha() { sha256_file "$1"; }
# After cache_build: "<what>: cached" or "<what>: built in N s".
report() {
    if [ "$CACHE_HIT" = 1 ]; then
        log "$1: cached"
    else
        log "$1: built in $(elapsed "$2")s"
    fi
}
tool_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }

# ---- kernel ------------------------------------------------------------------
apt_ensure_lists linux-image-amd64
kpkg=$(apt_cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !p { print $2; p = 1 }')
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
kernel_inputs="epoch=$CAPSEM_IMAGE_CACHE_EPOCH
builder=$(file_sha "$LIB/kernel.sh")
$(apt_candidates linux-image-amd64 "$kpkg")"
kernel_key=$(cache_key <<<"$kernel_inputs")
t=$(now_s)
log "kernel: $kpkg ($(apt_candidates "$kpkg" | cut -d= -f2))"
if [ ! -f "$(cache_entry kernel "$kernel_key")/sha256sums" ]; then
    log "building kernel (apt-get download + extract vmlinux, ~10 s)..."
fi
cache_build kernel "$kernel_key" "$kernel_inputs" "$LIB/kernel.sh" "$kpkg"
kernel_entry=$CACHE_ENTRY
report kernel "$t"
release=$(cat "$kernel_entry/kernel-release")

# ---- initrd --------------------------------------------------------------------
build_modules() { "$LIB/initrd.sh" modules "$@"; }
build_initrd() { "$LIB/initrd.sh" assemble "$@"; }

modules_inputs="epoch=$CAPSEM_IMAGE_CACHE_EPOCH
kernel=$kernel_key
builder=$(file_sha "$LIB/initrd.sh")
list=$(file_sha "$IMAGES_DIR/initrd-modules.list")
kmod=$(tool_version kmod)"
modules_key=$(cache_key <<<"$modules_inputs")
t=$(now_s)
cache_build modules "$modules_key" "$modules_inputs" build_modules \
    "$kernel_entry/linux-image.deb" "$release" "$IMAGES_DIR/initrd-modules.list"
modules_entry=$CACHE_ENTRY
report "modules ($(wc -l <"$modules_entry/load-order") .ko)" "$t"

initrd_inputs="epoch=$CAPSEM_IMAGE_CACHE_EPOCH
modules=$modules_key
builder=$(file_sha "$LIB/initrd.sh")
agent=$(file_sha "$AGENT")
init=$(file_sha "$INIT")
cpio=$(tool_version cpio)"
initrd_key=$(cache_key <<<"$initrd_inputs")
t=$(now_s)
cache_build initrd "$initrd_key" "$initrd_inputs" build_initrd "$modules_entry" "$AGENT" "$INIT"
initrd_entry=$CACHE_ENTRY
report initrd "$t"

# ---- rootfs profiles ---------------------------------------------------------------
essential=$(apt_cache dumpavail 2>/dev/null |
    awk '/^Package:/ { p = $2 } /^Essential: yes/ { print p }' | sort -u)
declare -A rootfs_entry=()
for p in "${profiles[@]}"; do
    pdir="$IMAGES_DIR/profiles/$p"
    mapfile -t pkgs < <(sed 's/#.*//; /^[[:space:]]*$/d' "$pdir/packages")
    [ ${#pkgs[@]} -gt 0 ] || die "profile $p lists no packages ($pdir/packages)"
    apt_ensure_lists "${pkgs[0]}"
    # Candidate versions of everything the profile can pull in: its packages'
    # dependency closure plus the Essential set every Debian system has.
    # shellcheck disable=SC2086
    versions=$(apt_closure "${pkgs[@]}" $essential | xargs -r apt-cache "${APT_OPTS[@]}" policy 2>/dev/null |
        awk '/^[^ ].*:$/ { n = substr($0, 1, length($0) - 1) }
             /^  Candidate:/ { print n "=" $2 }' | sort -u)
    missing=$(apt_candidates "${pkgs[@]}" | awk -F= '$2 == "(none)" { print $1 }' | paste -sd' ' -)
    [ -z "$missing" ] || die "profile $p: no installable candidate for: $missing"
    rootfs_inputs="epoch=$CAPSEM_IMAGE_CACHE_EPOCH
profile=$p
builder=$(file_sha "$LIB/rootfs.sh")
$(cd "$pdir" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum)
erofs-utils=$(tool_version erofs-utils)
mmdebstrap=$(tool_version mmdebstrap)
$versions"
    key=$(cache_key <<<"$rootfs_inputs")
    uuid=$(echo "$key" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
    if [ ! -f "$(cache_entry "rootfs-$p" "$key")/sha256sums" ]; then
        case $p in
        code) log "building rootfs code (mmdebstrap, ~1-2 min)..." ;;
        minimal) log "building rootfs minimal (apt-get download + dpkg -x, ~10 s)..." ;;
        *) log "building rootfs $p..." ;;
        esac
    fi
    t=$(now_s)
    cache_build "rootfs-$p" "$key" "$rootfs_inputs" "$LIB/rootfs.sh" "$pdir" "$uuid"
    rootfs_entry[$p]=$CACHE_ENTRY
    report "rootfs $p" "$t"
done

# ---- publish ---------------------------------------------------------------------
shas=$(cache_sha "$kernel_entry" vmlinux)$(cache_sha "$initrd_entry" initrd.img)
for p in "${profiles[@]}"; do
    shas+=$(cache_sha "${rootfs_entry[$p]}" "rootfs-$p.erofs")
done
VERSION=$(printf '%s' "$shas" | sha256_stdin | cut -c1-12)

stage=$(mktemp -d "$OUT/.v$VERSION.XXXXXX")
CLEANUP_DIRS+=("$stage")
cp --reflink=auto "$kernel_entry/vmlinux" "$stage/vmlinux"
cp --reflink=auto "$initrd_entry/initrd.img" "$stage/initrd.img"
for p in "${profiles[@]}"; do
    cp --reflink=auto "${rootfs_entry[$p]}/rootfs-$p.erofs" "$stage/rootfs-$p.erofs"
done
chmod 0444 "$stage"/*
chmod 0755 "$stage"

manifest_args=("$VERSION" "$release" "$stage")
for p in "${profiles[@]}"; do
    manifest_args+=("$p" "${rootfs_entry[$p]}")
done
KERNEL_ENTRY=$kernel_entry INITRD_ENTRY=$initrd_entry \
    python3 - "${manifest_args[@]}" >"$stage.manifest" <<'PY'
import hashlib, json, os, sys

version, release, stage = sys.argv[1:4]
rest = sys.argv[4:]

def entry(name, cache_dir):
    sums = {}
    with open(os.path.join(cache_dir, "sha256sums")) as f:
        for line in f:
            h, n = line.split()
            sums[n] = h
    return {"file": name, "sha256": sums[name], "size": os.path.getsize(os.path.join(stage, name))}

ver = {"arch": "x86_64", "kernel_release": release}
ver["kernel"] = entry("vmlinux", os.environ["KERNEL_ENTRY"])
ver["initrd"] = entry("initrd.img", os.environ["INITRD_ENTRY"])
ver["rootfs"] = {}
for i in range(0, len(rest), 2):
    profile, cache_dir = rest[i], rest[i + 1]
    e = entry(f"rootfs-{profile}.erofs", cache_dir)
    hosts = os.path.join(cache_dir, "apt-hosts")
    if os.path.exists(hosts):
        with open(hosts) as f:
            e["apt_hosts"] = [h.strip() for h in f if h.strip()]
    ver["rootfs"][profile] = e
json.dump({"format": 1, "current": version, "versions": {version: ver}}, sys.stdout, indent=2,
          sort_keys=True)
sys.stdout.write("\n")
PY
[ -s "$stage.manifest" ] || die "writing the manifest failed"
CLEANUP_DIRS+=("$stage.manifest")

# Versions an older manifest in OUT listed are replaced (OUT is a staging area).
old_versions=""
if [ -f "$OUT/manifest.json" ]; then
    old_versions=$(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1])).get("versions", {})))' \
        "$OUT/manifest.json" 2>/dev/null || true)
fi
rm -rf "${OUT:?}/v$VERSION"
mv -T "$stage" "$OUT/v$VERSION"
mv -f "$stage.manifest" "$OUT/manifest.json"
for v in $old_versions; do
    if [ "$v" != "$VERSION" ] && [[ $v =~ ^[0-9a-f]{12}$ ]] && [ -d "$OUT/v$v" ]; then
        log "removing replaced version $OUT/v$v"
        rm -rf "${OUT:?}/v$v"
    fi
done

for f in "$OUT/v$VERSION"/*; do
    log "  $(basename "$f"): $(du -h --apparent-size "$f" | cut -f1)"
done
log "done in $(elapsed "$t_start")s: $OUT/v$VERSION (version $VERSION, kernel $release)"
echo "$VERSION"
