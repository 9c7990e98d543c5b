#!/bin/bash
# Kernel artifact builder: kernel.sh OUT PACKAGE
#   OUT/vmlinux         uncompressed ELF kernel (QEMU boots it through its PVH
#                       note; under TCG the vmlinuz xz decompressor costs seconds)
#   OUT/kernel-release  e.g. 6.1.0-56-amd64
#   OUT/linux-image.deb the package, kept so the initrd builder can take modules
set -euo pipefail
# shellcheck source=images/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out=$1 pkg=$2
work=$(mktemp -d "$out/work.XXXXXX")

apt_download "$work" "$pkg"
deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*' ||
    die "$deb has no /boot/vmlinuz-*"
vmlinuz=$(find "$work/boot" -name 'vmlinuz-*' -print -quit)
release=${vmlinuz##*/vmlinuz-}

# A bzImage is a setup stub + decompressor + the compressed ELF; the Debian
# kernel uses xz. Take everything from the xz stream magic on; --single-stream
# ignores the padding after it.
off=$(grep -abo -m1 $'\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1 | sed -n 1p)
[ -n "$off" ] || die "no xz stream in $vmlinuz (kernel not xz-compressed? check CONFIG_KERNEL_XZ)"
# (process substitution: tail may die of SIGPIPE once xz has its stream)
xz -dc --single-stream < <(tail -c +$((off + 1)) "$vmlinuz") >"$out/vmlinux" ||
    die "xz could not decompress the kernel in $vmlinuz"
[ "$(head -c 4 "$out/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
    die "decompressed kernel is not an ELF file"
# XEN_ELFNOTE_PHYS32_ENTRY (0x12) is the PVH entry point QEMU needs for -kernel vmlinux.
readelf -n "$out/vmlinux" | grep -Eci '\(0x00000012\)|phys32' >/dev/null ||
    die "vmlinux has no PVH entry note (CONFIG_PVH); QEMU cannot boot it directly"

echo "$release" >"$out/kernel-release"
mv "$deb" "$out/linux-image.deb"
rm -rf "$work"
