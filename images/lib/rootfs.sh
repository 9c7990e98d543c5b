#!/bin/bash
# Rootfs builder: rootfs.sh OUT PROFILE_DIR UUID
#   Runs PROFILE_DIR/build.sh TREE to populate a directory, applies what every
#   profile needs, then writes OUT/rootfs-<profile>.erofs (read-only base of
#   the guest root; the per-VM overlay disk is stacked on it by capsem-init).
set -euo pipefail
# shellcheck source=images/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# lz4hc: see docs/guest-image.md ("Compression") for the TCG measurements.
EROFS_COMPRESS=(-zlz4hc)

out=$1 profile_dir=$2 uuid=$3
profile=${profile_dir##*/}
tree="$out/tree"
mkdir "$tree"

"$profile_dir/build.sh" "$tree"

# Mount points capsem-init and the guest expect, whatever the profile.
mkdir -p "$tree"/{dev,proc,sys,run,root,tmp,etc}
chmod 0755 "$tree/run"
chmod 0700 "$tree/root"
chmod 1777 "$tree/tmp"
rm -rf "${tree:?}"/run/* "${tree:?}"/tmp/*
# Bind-mount targets for /run/capsem/resolv.conf (network.md section 2).
rm -f "$tree/etc/resolv.conf" && : >"$tree/etc/resolv.conf"
echo capsem >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcapsem\n' >"$tree/etc/hosts"

# Lifecycle commands go to capsem-sysutil, which the guest creates at boot
# (a link to /run/capsem-agent); dangling in the image by design.
mkdir -p "$tree/usr/sbin"
for c in poweroff shutdown halt reboot suspend; do
    rm -f "$tree/usr/sbin/$c" "$tree/sbin/$c" 2>/dev/null || true
    ln -s /run/capsem-sysutil "$tree/usr/sbin/$c"
done

if [ -f "$tree/etc/capsem-apt-hosts" ]; then
    cp "$tree/etc/capsem-apt-hosts" "$out/apt-hosts"
fi

size=$(du -sm "$tree" | cut -f1)
log "rootfs $profile: tree ${size} MiB, writing erofs (${EROFS_COMPRESS[*]})"
# SOURCE_DATE_EPOCH (set by build.sh) clamps newer mtimes and fixes the build
# time; with a fixed UUID identical trees give identical images.
mkfs.erofs --quiet "${EROFS_COMPRESS[@]}" -U "$uuid" "$out/rootfs-$profile.erofs" "$tree" ||
    die "mkfs.erofs failed for profile $profile"
rm -rf "$tree"
