#include "vm/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

struct argv_builder {
    char **v;
    size_t n, cap;
    bool failed;
};

static void add(struct argv_builder *b, const char *s)
{
    if (b->failed)
        return;
    if (b->n + 2 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        char **nv = realloc(b->v, ncap * sizeof(char *));
        if (!nv) {
            b->failed = true;
            return;
        }
        b->v = nv;
        b->cap = ncap;
    }
    b->v[b->n] = strdup(s);
    if (!b->v[b->n]) {
        b->failed = true;
        return;
    }
    b->n++;
    b->v[b->n] = NULL;
}

static void addf(struct argv_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(struct argv_builder *b, const char *fmt, ...)
{
    char tmp[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->failed = true;
        return;
    }
    add(b, tmp);
}

/* QEMU option values use ',' as separator; a literal comma is doubled. */
static char *opt_escape(const char *s)
{
    struct buf b;
    buf_init(&b, 16384);
    for (const char *p = s; *p; p++) {
        if (buf_append(&b, p, 1) < 0 || (*p == ',' && buf_append(&b, ",", 1) < 0)) {
            buf_free(&b);
            return NULL;
        }
    }
    char *r = buf_steal_str(&b);
    buf_free(&b);
    return r;
}

char *qemu_kernel_cmdline(const struct vm_config *c)
{
    char tsc[64] = "";
    if (strcmp(c->accel, "tcg") == 0 && c->tsc_khz)
        snprintf(tsc, sizeof(tsc), " tsc_early_khz=%u tsc=reliable", c->tsc_khz);
    /* CAPSEM_KERNEL_CMDLINE_EXTRA: diagnostics only (e.g. capsem.debug=1). */
    const char *extra = getenv("CAPSEM_KERNEL_CMDLINE_EXTRA");
    char *s = NULL;
    if (asprintf(&s,
                 "console=ttyS0 quiet loglevel=3 panic=-1 reboot=t pci=off mitigations=off "
                 "no_timer_check nowatchdog cryptomgr.notests ipv6.disable=1 "
                 "random.trust_cpu=on dummy.numdummies=0 rdinit=/init%s%s%s",
                 tsc, extra && *extra ? " " : "", extra && *extra ? extra : "") < 0)
        return NULL;
    return s;
}

static void add_drive(struct argv_builder *b, const char *path, const char *id, bool readonly)
{
    _cleanup_free_ char *esc = opt_escape(path);
    if (!esc) {
        b->failed = true;
        return;
    }
    add(b, "-drive");
    addf(b, "file=%s,if=none,id=%s,format=raw,cache=writeback,discard=unmap%s", esc, id,
         readonly ? ",readonly=on" : "");
    add(b, "-device");
    addf(b, "virtio-blk-device,drive=%s,serial=capsem-%s", id, id);
}

char **qemu_build_argv(const struct vm_config *c, const struct qemu_fds *fds, struct err **errp)
{
    struct argv_builder b = {0};
    bool kvm = strcmp(c->accel, "kvm") == 0;
    _cleanup_free_ char *cmdline = qemu_kernel_cmdline(c);
    _cleanup_free_ char *kernel = opt_escape(c->kernel);
    _cleanup_free_ char *initrd = opt_escape(c->initrd);
    char ovl[4096], ws[4096];
    snprintf(ovl, sizeof(ovl), "%s/overlay.img", c->vm_dir);
    snprintf(ws, sizeof(ws), "%s/workspace.img", c->vm_dir);
    if (!cmdline || !kernel || !initrd)
        return err_set(errp, ENOMEM, "out of memory"), NULL;

    add(&b, c->qemu_binary);
    add(&b, "-name");
    addf(&b, "capsem-%.8s,process=capsem-vm-%.8s", c->id, c->id);
    add(&b, "-M");
    add(&b, "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on");
    add(&b, "-accel");
    add(&b, kvm ? "kvm" : "tcg");
    add(&b, "-cpu");
    add(&b, kvm ? "host" : "max");
    add(&b, "-m");
    addf(&b, "%u", c->ram_mb);
    add(&b, "-smp");
    addf(&b, "%u", c->cpus);
    const char *fixed[] = {"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                           "-sandbox",    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        add(&b, fixed[i]);
    add(&b, "-kernel");
    add(&b, kernel);
    add(&b, "-initrd");
    add(&b, initrd);
    add(&b, "-append");
    add(&b, cmdline);
    add(&b, "-chardev");
    addf(&b, "socket,id=con,fd=%d", fds->console);
    add(&b, "-serial");
    add(&b, "chardev:con");
    add(&b, "-chardev");
    addf(&b, "socket,id=qmp,fd=%d", fds->qmp);
    add(&b, "-mon");
    add(&b, "chardev=qmp,mode=control");
    add(&b, "-chardev");
    addf(&b, "socket,id=ch0,fd=%d", fds->channel);
    add(&b, "-device");
    add(&b, "virtio-serial-device,max_ports=2");
    add(&b, "-device");
    add(&b, "virtserialport,chardev=ch0,name=" QEMU_CHANNEL_PORT);
    add(&b, "-object");
    add(&b, "rng-random,filename=/dev/urandom,id=rng0");
    add(&b, "-device");
    add(&b, "virtio-rng-device,rng=rng0");
    if (c->restore_from) {
        add(&b, "-incoming");
        add(&b, "defer");
    }
    add_drive(&b, c->rootfs, "rootfs", true);
    add_drive(&b, ovl, "overlay", false);
    add_drive(&b, ws, "workspace", false);
    if (b.failed) {
        qemu_argv_free(b.v);
        return err_set(errp, ENOMEM, "cannot build the QEMU command line"), NULL;
    }
    return b.v;
}

void qemu_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

bool qemu_kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

bool qemu_kvm_probe(const char *qemu_binary, const char *kernel, int timeout_ms, char *why,
                    size_t cap)
{
    if (!qemu_kvm_usable()) {
        snprintf(why, cap, "/dev/kvm is missing or not accessible");
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        char *argv[] = {(char *)qemu_binary, "-M", "microvm,x-option-roms=off,isa-serial=off,rtc=on",
                        "-accel", "kvm", "-cpu", "host", "-m", "128", "-smp", "1", "-nodefaults",
                        "-no-user-config", "-display", "none", "-no-reboot", "-kernel",
                        (char *)kernel, "-append", "panic=-1 quiet init=/none rdinit=/none", NULL};
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (time_mono_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(why, cap, "a KVM test boot did not finish within %d ms", timeout_ms);
            return false;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    snprintf(why, cap, "QEMU failed to run a KVM guest (%s %d)",
             WIFEXITED(status) ? "exit" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return false;
}

int qemu_choose_accel(const char *setting, bool kvm_works, const char **accel, struct err **errp)
{
    bool kvm = kvm_works;
    if (!setting || !*setting || strcmp(setting, "auto") == 0) {
        *accel = kvm ? "kvm" : "tcg";
        return 0;
    }
    if (strcmp(setting, "tcg") == 0) {
        *accel = "tcg";
        return 0;
    }
    if (strcmp(setting, "kvm") == 0) {
        if (!kvm)
            return err_status(errp, 500,
                              "hypervisor.accel is kvm but KVM is not usable here "
                              "(add your user to group kvm, or set accel to auto)");
        *accel = "kvm";
        return 0;
    }
    return err_status(errp, 400, "hypervisor.accel must be auto, kvm or tcg (got %s)", setting);
}

#if defined(__x86_64__)
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

uint32_t qemu_host_tsc_khz(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC_RAW, &a);
    uint64_t t0 = rdtsc();
    struct timespec req = {0, 20 * 1000 * 1000};
    while (nanosleep(&req, &req) < 0 && errno == EINTR)
        ;
    uint64_t t1 = rdtsc();
    clock_gettime(CLOCK_MONOTONIC_RAW, &b);
    uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec -
                  (uint64_t)a.tv_nsec;
    if (ns == 0 || t1 <= t0)
        return 0;
    return (uint32_t)((t1 - t0) * 1000000ull / ns);
}
#else
uint32_t qemu_host_tsc_khz(void)
{
    return 0;
}
#endif

const char *qemu_default_binary(void)
{
#if defined(__x86_64__)
    return "qemu-system-x86_64";
#elif defined(__aarch64__)
    return "qemu-system-aarch64";
#else
    return "qemu-system-x86_64";
#endif
}
