#!/bin/bash
# minimal profile: bash + busybox on glibc, unpacked without a package
# manager so it builds in seconds. For fast tests, not for agents.
# Usage: build.sh TREE
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=images/lib/common.sh
. "$here/../../lib/common.sh"

tree=$1
debs=$(mktemp -d "$tree.debs.XXXXXX")
mapfile -t pkgs < <(sed 's/#.*//; /^[[:space:]]*$/d' "$here/packages")
apt_download "$debs" "${pkgs[@]}"
for deb in "$debs"/*.deb; do
    dpkg -x "$deb" "$tree"
done
rm -rf "$debs"

# usrmerge, as Debian bookworm lays out a fresh system: /bin, /sbin, /lib*
# are links into /usr.
for d in bin sbin lib lib64; do
    mkdir -p "$tree/usr/$d"
    if [ -d "$tree/$d" ] && [ ! -L "$tree/$d" ]; then
        cp -a "$tree/$d/." "$tree/usr/$d/"
        rm -rf "${tree:?}/$d"
    fi
    ln -sfn "usr/$d" "$tree/$d"
done

ln -sfn bash "$tree/usr/bin/sh"

# iptables: the agent loads its rules with the legacy backend (the initrd has
# the x_tables modules, not nf_tables). dpkg -x runs no postinst, so the
# alternatives links are made here, pointing at the legacy binary; the nft
# binary and its links are dropped (its libraries are not in this profile).
rm -f "$tree/usr/sbin/xtables-nft-multi"
find "$tree/usr/sbin" -maxdepth 1 -type l -lname xtables-nft-multi -delete
for t in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
    ln -sfn xtables-legacy-multi "$tree/usr/sbin/$t"
done

# Busybox applets for everyday tools, never replacing a real binary.
applets="ls cat echo mkdir rmdir rm cp mv ln sleep head tail wc grep egrep fgrep sed awk sort
uniq env id uname ps kill dd sync mount umount date hostname tr cut find xargs stat true false
printf test [ chmod chown touch seq yes od base64 sha256sum md5sum tee nproc df du free ip
mknod basename dirname readlink realpath pwd mktemp which timeout tar gzip gunzip zcat xz unxz
less vi hexdump xxd diff cmp expr dmesg sysctl truncate uptime clear tty whoami more cpio
stty reset pgrep pkill watch nc wget"
available=" $("$tree/usr/bin/busybox" --list | tr '\n' ' ') "
for a in $applets; do
    case $available in *" $a "*) ;; *) continue ;; esac
    [ -e "$tree/usr/bin/$a" ] || [ -L "$tree/usr/bin/$a" ] || ln -s busybox "$tree/usr/bin/$a"
done

# Users and basic /etc a package manager would have written.
cat >"$tree/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$tree/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
printf 'root:*::0:99999:7:::\n' >"$tree/etc/shadow"
chmod 0640 "$tree/etc/shadow"
# base-files ships /etc/profile as a template that its postinst would install.
cp "$tree/usr/share/base-files/profile" "$tree/etc/profile"
mkdir -p "$tree"/{root,tmp,run,proc,sys,dev,var/tmp}
chmod 1777 "$tree/tmp" "$tree/var/tmp"
rm -rf "$tree"/usr/share/{doc,man,info,lintian,locale}
