#!/bin/bash
# code profile: a Debian minbase system with the tools coding agents expect,
# installed by mmdebstrap from the host's apt sources.
# Usage: build.sh TREE
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=images/lib/common.sh
. "$here/../../lib/common.sh"

tree=$1
include=$(sed 's/#.*//; /^[[:space:]]*$/d' "$here/packages" | paste -sd, -)

# The host's apt sources, never a hard-coded mirror: mmdebstrap pastes a
# sources file given as MIRROR into the chroot (deb822 or one-line format).
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -Eq '^[[:space:]]*(deb |Types:)' "$f" && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || die "no apt sources found in /etc/apt (mmdebstrap needs a mirror)"

# Documentation, man pages and translations are never read in the guest
# (LANG=C.UTF-8). dpkg path filters drop them at unpack time and stay in the
# image (/etc/dpkg/dpkg.cfg.d/), so packages installed later skip them too.
dpkgopts=()
for o in 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
    'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
    'path-exclude=/usr/share/lintian/*'; do
    dpkgopts+=("--dpkgopt=$o")
done

# mmdebstrap refuses an existing non-empty directory; TREE is empty.
mmdebstrap --quiet --variant=minbase --mode=root --format=directory "${dpkgopts[@]}" \
    --include="$include" "$CAPSEM_SUITE" "$tree" "${sources[@]}" >&2 ||
    die "mmdebstrap failed (see its output above)"

# The initrd loads the legacy x_tables modules only (the rootfs has no
# modules to autoload nf_tables from), so iptables must use the legacy backend.
for t in iptables ip6tables; do
    if [ -e "$tree/usr/sbin/$t-legacy" ]; then
        chroot "$tree" update-alternatives --quiet --set "$t" "/usr/sbin/$t-legacy"
    fi
done

# The apt hosts this image was built from (network.md: the `debian` policy
# rule allows them). Only URIs: fields and deb lines, never comments.
(cat "$tree"/etc/apt/sources.list "$tree"/etc/apt/sources.list.d/*.list \
    "$tree"/etc/apt/sources.list.d/*.sources 2>/dev/null || true) | sed 's/#.*//' |
    awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }
         $1 == "deb" || $1 == "deb-src" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' |
    sed -E 's|^[a-z+]+://([^/@]*@)?([^/:]+).*|\2|' | sort -u >"$tree/etc/capsem-apt-hosts"
[ -s "$tree/etc/capsem-apt-hosts" ] || die "found no apt hosts in the image's apt sources"

# Caches and logs that only make the image bigger and less reproducible.
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/* "$tree"/var/cache/debconf/*-old \
    "$tree"/var/cache/ldconfig/aux-cache "$tree"/var/log/* "$tree"/var/lib/dpkg/*-old
