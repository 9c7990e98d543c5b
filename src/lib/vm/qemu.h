/* QEMU backend: command line, accelerator choice, host facts. Nothing
 * outside src/lib/vm/ may assume QEMU (architecture.md). */
#ifndef CAPSEM_QEMU_H
#define CAPSEM_QEMU_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vm/vmconfig.h"

#define QEMU_CHANNEL_PORT "org.capsem.ch0"

/* fds handed to QEMU (inherited, not CLOEXEC in the child). */
struct qemu_fds {
    int channel; /* socketpair end for the virtio-serial channel port */
    int qmp;     /* socketpair end for QMP */
    int console; /* socketpair end for the serial console */
};

/* NULL-terminated argv (heap; free with qemu_argv_free). */
char **qemu_build_argv(const struct vm_config *c, const struct qemu_fds *fds, struct err **errp);
void qemu_argv_free(char **argv);
/* The kernel command line used for every boot (and by the bench's bare boot). */
char *qemu_kernel_cmdline(const struct vm_config *c);

/* True when /dev/kvm opens read-write. */
bool qemu_kvm_usable(void);
/* A device node is not proof: nested hosts can expose a /dev/kvm that QEMU
 * cannot run a guest on. This boots `kernel` under KVM with nothing to run
 * (the kernel panics, QEMU exits because of -no-reboot) and returns true if
 * that completes within timeout_ms; else `why` says what happened. */
bool qemu_kvm_probe(const char *qemu_binary, const char *kernel, int timeout_ms, char *why,
                    size_t cap);
/* Picks "kvm" or "tcg" for a setting of auto|kvm|tcg. `kvm_works` is the
 * probe's verdict; a forced kvm setting without it fails. */
int qemu_choose_accel(const char *setting, bool kvm_works, const char **accel,
                      struct err **errp);
/* Host TSC frequency in kHz, measured (about 20 ms); 0 if unavailable. Under
 * TCG the guest TSC runs at this rate; telling the kernel avoids a flaky PIT
 * calibration that can hang boot. */
uint32_t qemu_host_tsc_khz(void);
/* "qemu-system-x86_64" for this host. */
const char *qemu_default_binary(void);

#endif
