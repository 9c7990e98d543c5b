# Shared helpers for the guest image builders. Sourced, never run.
# shellcheck shell=bash

# shellcheck disable=SC2034 # globals used by the scripts that source this file

# Bump to invalidate every cache entry at once (e.g. after fixing a builder bug
# that the per-builder script hashes would not catch).
CAPSEM_IMAGE_CACHE_EPOCH=1

# The Debian release the guest is built from (kernel 6.1, see docs/guest-image.md).
CAPSEM_SUITE=bookworm

log() {
    printf '[image] %s\n' "$*" >&2
}

die() {
    printf '[image] error: %s\n' "$*" >&2
    exit 1
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 ||
            die "'$c' not found; run scripts/install-deps.sh (Debian packages for the image build)"
    done
}

sha256_file() {
    sha256sum "$1" | cut -d' ' -f1
}

sha256_stdin() {
    sha256sum | cut -d' ' -f1
}

# Seconds since the epoch, for the progress lines.
now_s() {
    date +%s.%N
}

elapsed() {
    awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'
}

# apt as root would drop to the _apt user for downloads, which cannot write
# into our private temp dirs; downloads are verified by apt either way.
APT_OPTS=(-o APT::Sandbox::User=root -qq)
# Containers often disable apt's binary package cache, which makes every
# apt-cache call re-parse the lists (~0.5 s each); keep our own (build.sh sets
# the directory; apt rebuilds the file whenever the lists change).
apt_use_pkgcache() {
    export CAPSEM_APT_PKGCACHE_DIR=$1
    mkdir -p "$1"
    APT_OPTS+=(-o "Dir::Cache::pkgcache=$1/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$1/srcpkgcache.bin")
}
if [ -n "${CAPSEM_APT_PKGCACHE_DIR:-}" ]; then
    apt_use_pkgcache "$CAPSEM_APT_PKGCACHE_DIR"
fi

apt_cache() {
    apt-cache "${APT_OPTS[@]}" "$@"
}

# Runs `apt-get update` once if the package lists are empty or lack $1.
apt_ensure_lists() {
    local probe=$1
    # (grep reads all input: grep -q would SIGPIPE apt-cache under pipefail)
    if apt_cache policy "$probe" 2>/dev/null | grep -c 'Candidate: [^(]' >/dev/null; then
        return 0
    fi
    log "apt lists do not know '$probe'; running apt-get update once"
    apt-get "${APT_OPTS[@]}" update >&2 || die "apt-get update failed (check the apt sources)"
    apt_cache policy "$probe" 2>/dev/null | grep -c 'Candidate: [^(]' >/dev/null ||
        die "package '$probe' has no installable candidate in the configured apt sources"
}

# Prints "name=candidate" for each package, sorted. Fails on unknown packages.
apt_candidates() {
    apt_cache policy "$@" 2>/dev/null | awk '
        /^[^ ].*:$/ { name = substr($0, 1, length($0) - 1) }
        /^  Candidate:/ { print name "=" $2 }' | sort -u
}

# Dependency closure (Depends + Pre-Depends) of the given packages, sorted.
apt_closure() {
    apt_cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^[ <]' | sort -u
}

# Downloads packages into directory $1 (apt verifies them against the lists).
apt_download() {
    local dir=$1
    shift
    (cd "$dir" && apt-get "${APT_OPTS[@]}" download "$@" >&2) ||
        die "apt-get download $* failed"
}

# Default SOURCE_DATE_EPOCH: the newest Date: of the apt Release files, which
# is after every file date in the packages (mkfs.erofs clamps newer mtimes to
# it, and clamping must not touch package files: Python checks .pyc against
# the source mtime).
default_source_date_epoch() {
    local d newest=0 f e
    for f in /var/lib/apt/lists/*InRelease /var/lib/apt/lists/*_Release; do
        [ -f "$f" ] || continue
        d=$(sed -n 's/^Date: //p;T;q' "$f")
        [ -n "$d" ] || continue
        e=$(date -d "$d" +%s 2>/dev/null) || continue
        [ "$e" -gt "$newest" ] && newest=$e
    done
    [ "$newest" -gt 0 ] || newest=$(date +%s)
    echo "$newest"
}

# ---- content-addressed cache -------------------------------------------------
# Layout: $CACHE_DIR/<kind>/<key>/ holds one finished artifact set plus
# `inputs` (what the key was computed from) and `sha256sums`. Entries are built
# in $CACHE_DIR/tmp/ and renamed into place, so an entry either exists whole or
# not at all.

cache_key() {
    # stdin: the input description
    sha256_stdin | cut -c1-32
}

cache_entry() {
    echo "${CACHE_DIR:?}/$1/$2"
}

# cache_build KIND KEY INPUTS_TEXT BUILDER [ARGS...]
# Unless the entry exists, runs `BUILDER TMPDIR ARGS...` and publishes TMPDIR
# as the entry. Sets CACHE_ENTRY to the entry path and CACHE_HIT to 1 or 0.
# A lock per key lets concurrent builds share the work instead of racing.
cache_build() {
    local kind=$1 key=$2 inputs=$3 builder=$4
    shift 4
    local entry tmp lockfd
    entry=$(cache_entry "$kind" "$key")
    mkdir -p "$CACHE_DIR/$kind" "$CACHE_DIR/tmp"
    exec {lockfd}>"$CACHE_DIR/$kind/$key.lock"
    flock "$lockfd"
    if [ -f "$entry/sha256sums" ]; then
        CACHE_HIT=1
        touch "$entry" # recently used entries survive pruning
    else
        CACHE_HIT=0
        tmp=$(mktemp -d "$CACHE_DIR/tmp/$kind.XXXXXX")
        CLEANUP_DIRS+=("$tmp")
        printf '%s\n' "$inputs" >"$tmp/inputs"
        "$builder" "$tmp" "$@"
        local sums
        sums=$(cd "$tmp" && find . -maxdepth 1 -type f ! -name inputs -printf '%P\n' |
            LC_ALL=C sort | xargs -r sha256sum)
        printf '%s\n' "$sums" >"$tmp/sha256sums"
        rm -rf "$entry" # leftovers of an entry whose deletion was interrupted
        mv -T "$tmp" "$entry"
        cache_prune "$kind" "$key"
    fi
    exec {lockfd}>&-
    CACHE_ENTRY=$entry
}

# Keeps the CACHE_KEEP most recently used entries of a kind.
cache_prune() {
    local kind=$1 keep_key=$2 d
    find "$CACHE_DIR/$kind" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %f\n' | sort -rn |
        tail -n +"$((CACHE_KEEP + 1))" | while read -r _ d; do
        [ "$d" = "$keep_key" ] && continue
        log "cache: pruning old $kind entry $d"
        rm -rf "${CACHE_DIR:?}/$kind/$d" "$CACHE_DIR/$kind/$d.lock"
    done
}

# Hash of an entry file, from the entry's sha256sums (no re-read).
cache_sha() {
    awk -v f="$2" '$2 == f { print $1 }' "$1/sha256sums"
}
