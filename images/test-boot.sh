#!/bin/bash
# Boots the guest image under QEMU with a throwaway test agent and checks that
# capsem-init delivered the guest contract (docs/guest-image.md, "Verifying").
#
#   images/test-boot.sh [--profile minimal|code] [--init PATH] [--boots N] [--accel tcg|kvm]
#                       [--debug] [--cache DIR] [--keep]
#
# --init     capsem-init to test (default: compiled here from src/guest/init with musl-gcc)
# --boots N  boot N times and report each wall time (default 1)
# --accel A  QEMU accelerator (default tcg; capsem-process picks kvm when it works)
# --debug    add capsem.debug=1 (capsem-init prints each step with a timestamp)
# --keep     keep the work directory (image, disks, serial logs)
# Exit status 0 when every boot printed "capsem-agent ok" (and, for code, the
# expected tools answered).
set -euo pipefail

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$IMAGES_DIR")
# shellcheck source=images/lib/common.sh
. "$IMAGES_DIR/lib/common.sh"

PROFILE=minimal ACCEL=tcg INIT="" BOOTS=1 DEBUG=0 KEEP=0 CACHE_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
    --profile) PROFILE=${2:?} && shift 2 ;;
    --init) INIT=$(realpath "${2:?}") && shift 2 ;;
    --boots) BOOTS=${2:?} && shift 2 ;;
    --accel) ACCEL=${2:?} && shift 2 ;;
    --debug) DEBUG=1 && shift ;;
    --keep) KEEP=1 && shift ;;
    --cache) CACHE_ARGS=(--cache "${2:?}") && shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" >&2 && exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
need_cmd musl-gcc qemu-system-x86_64 mkfs.ext4 truncate

work=$(mktemp -d "${TMPDIR:-/tmp}/capsem-test-boot.XXXXXX")
QEMU_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
    if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

CFLAGS=(-static -std=gnu17 -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes
    -Wstrict-prototypes -Wvla -Wno-unused-parameter)
musl-gcc "${CFLAGS[@]}" "$IMAGES_DIR/testdata/test-agent.c" -o "$work/test-agent" ||
    die "compiling the test agent failed"
if [ -z "$INIT" ]; then
    INIT="$work/capsem-init"
    musl-gcc "${CFLAGS[@]}" -I"$REPO/src/lib" "$REPO"/src/guest/init/*.c \
        "$REPO"/src/lib/base/{err,util,buf,log}.c -o "$INIT" || die "compiling capsem-init failed"
fi

"$IMAGES_DIR/build.sh" --out "$work/assets" --agent "$work/test-agent" --init "$INIT" \
    --profiles "$PROFILE" "${CACHE_ARGS[@]}" >"$work/version"
assets="$work/assets/v$(cat "$work/version")"

# The kernel cannot calibrate the TSC against the PIT reliably under nested
# TCG; hand it the host's rate.
tsc_khz=$({ dmesg 2>/dev/null || true; } | sed -n 's/.*tsc: Detected \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' | sed -n 1p)
if [ -z "$tsc_khz" ]; then
    tsc_khz=$(awk -F': ' '/^cpu MHz/ && !done { printf "%d", $2 * 1000; done = 1 }' /proc/cpuinfo)
fi
[ -n "$tsc_khz" ] || die "cannot find the host TSC rate (dmesg 'tsc: Detected', /proc/cpuinfo)"

cmdline="console=ttyS0 quiet panic=-1 reboot=t tsc_early_khz=$tsc_khz pci=off mitigations=off"
cmdline+=" tsc=reliable no_timer_check nowatchdog cryptomgr.notests"
[ "$DEBUG" = 1 ] && cmdline+=" capsem.debug=1"
timeout_s=60
[ "$PROFILE" = code ] && timeout_s=180

fail=0
for i in $(seq 1 "$BOOTS"); do
    rm -f "$work/overlay.img" "$work/workspace.img"
    for d in overlay workspace; do
        truncate -s 1G "$work/$d.img"
        mkfs.ext4 -q -F "$work/$d.img"
    done
    serial="$work/serial-$i.log"
    : >"$serial"
    t0=$(now_s)
    qemu-system-x86_64 -M microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on \
        -accel "$ACCEL" -cpu max -m 512 -smp 2 \
        -nodefaults -no-user-config -display none -no-reboot -sandbox on \
        -kernel "$assets/vmlinux" -initrd "$assets/initrd.img" -append "$cmdline" \
        -serial "file:$serial" \
        -drive "file=$assets/rootfs-$PROFILE.erofs,if=none,id=root,format=raw,readonly=on" \
        -device virtio-blk-device,drive=root,serial=capsem-rootfs \
        -drive "file=$work/overlay.img,if=none,id=ovl,format=raw" \
        -device virtio-blk-device,drive=ovl,serial=capsem-overlay \
        -drive "file=$work/workspace.img,if=none,id=ws,format=raw" \
        -device virtio-blk-device,drive=ws,serial=capsem-workspace \
        -device virtio-rng-device &
    QEMU_PID=$!
    t_agent=""
    deadline=$((SECONDS + timeout_s))
    # Event-driven wait (tail -F uses inotify): a polling loop would steal CPU
    # from QEMU's vCPU threads and skew the measurement on a small host.
    if timeout "$timeout_s" grep -m1 -q 'capsem-agent: started' \
        < <(tail -n +1 -F --pid="$QEMU_PID" "$serial" 2>/dev/null); then
        t_agent=$(elapsed "$t0")
    fi
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "boot $i: timed out after ${timeout_s}s; serial log tail:"
            tail -n 20 "$serial" >&2
            kill "$QEMU_PID" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
    t_total=$(elapsed "$t0")
    [ -n "$t_agent" ] || t_agent="(never)"

    grep -E '^(check FAIL|capsem-init:|probe:|mounts:|time:)' "$serial" | tr -d '\r' |
        sed 's/^/    /' >&2 || true
    ok=1
    grep -c '^capsem-agent ok' "$serial" >/dev/null || ok=0
    if [ "$PROFILE" = code ]; then
        for want in 'probe: python3 Python 3' 'probe: git git version' 'probe: node v' \
            'probe: python3 -c 42'; do
            grep -c "^$want" "$serial" >/dev/null || {
                log "boot $i: missing '$want'"
                ok=0
            }
        done
    fi
    if [ "$ok" = 1 ]; then
        log "boot $i: ok, agent after ${t_agent}s, VM exited after ${t_total}s (accel $ACCEL)"
    else
        log "boot $i: FAILED (serial log tail follows)"
        tail -n 30 "$serial" >&2
        fail=1
    fi
done
exit "$fail"
