#!/bin/bash
# Initrd builders (uncompressed newc cpio; decompressing costs boot time under TCG).
#
#   initrd.sh modules OUT KERNEL_DEB RELEASE MODULE_LIST
#     OUT/<name>.ko for the dependency closure of MODULE_LIST,
#     OUT/load-order (one file name per line, every module after its deps),
#     OUT/modules.dep ("a.ko: dep.ko ..." for capsem-init's parallel loader),
#     OUT/report (which requested modules are built in or absent).
#   initrd.sh assemble OUT MODULES_DIR AGENT INIT
#     OUT/initrd.img: /init, /capsem-agent, /dev/console, /lib/modules/*.
set -euo pipefail
# shellcheck source=images/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

modules() {
    local out=$1 deb=$2 release=$3 list=$4
    local work m line ko base
    work=$(mktemp -d "$out/work.XXXXXX")
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards "./lib/modules/$release/*" ||
        die "$deb has no /lib/modules/$release"
    # The package carries no modules.dep; depmod writes it (and the softdeps).
    depmod -b "$work" "$release" || die "depmod failed on $deb"

    : >"$out/load-order"
    : >"$out/report"
    declare -A have=()
    while read -r m; do
        m=${m%%#*}
        m=${m//[[:space:]]/}
        [ -n "$m" ] || continue
        # -C /dev/null: the host's modprobe.d must not shape the guest's list.
        if ! deps=$(modprobe -C /dev/null -d "$work" -S "$release" --show-depends "$m" 2>/dev/null); then
            echo "absent $m" >>"$out/report"
            continue
        fi
        while read -r line; do
            case $line in
            builtin\ *) echo "builtin ${line#builtin }" >>"$out/report" ;;
            insmod\ *)
                ko=${line#insmod }
                ko=${ko%% *}
                base=${ko##*/}
                [ -n "${have[$base]:-}" ] && continue
                [ -e "$out/$base" ] && die "two modules named $base"
                have[$base]=1
                case $ko in
                *.ko) cp "$ko" "$out/$base" ;;
                *) die "module $ko is compressed; capsem-init loads plain .ko files" ;;
                esac
                echo "$base" >>"$out/load-order"
                ;;
            esac
        done <<<"$deps"
    done <"$list"
    sort -u -o "$out/report" "$out/report"
    [ -s "$out/load-order" ] || die "no module of $list found in $deb"

    # modules.dep for capsem-init's parallel loader: each module with the
    # modules (hard and soft dependencies) modprobe would load before it.
    : >"$out/modules.dep"
    while read -r base; do
        deps=$(modprobe -C /dev/null -d "$work" -S "$release" --show-depends "${base%.ko}" |
            awk -v self="$base" '$1 == "insmod" { n = split($2, p, "/"); if (p[n] != self) print p[n] }' |
            paste -sd' ' -) || die "modprobe --show-depends ${base%.ko} failed"
        echo "$base: $deps" >>"$out/modules.dep"
    done <"$out/load-order"
    rm -rf "$work"
}

assemble() {
    local out=$1 mods=$2 agent=$3 init=$4
    local root
    root=$(mktemp -d "$out/root.XXXXXX")
    mkdir -p "$root"/{dev,proc,sys,mnt,newroot,lib/modules}
    install -m 0555 "$init" "$root/init"
    install -m 0555 "$agent" "$root/capsem-agent"
    # Without /dev/console in the initramfs the kernel gives init no stdio.
    mknod -m 0600 "$root/dev/console" c 5 1
    install -m 0444 "$mods"/*.ko "$root/lib/modules/"
    install -m 0444 "$mods/load-order" "$mods/modules.dep" "$root/lib/modules/"
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc --reproducible -R 0:0 --quiet) >"$out/initrd.img" ||
        die "cpio failed"
    rm -rf "$root"
}

case ${1:-} in
modules) shift && modules "$@" ;;
assemble) shift && assemble "$@" ;;
*) die "usage: initrd.sh modules|assemble ..." ;;
esac
