/* capsem-init: PID 1 of the guest initrd.
 *
 * Loads the kernel modules listed in /lib/modules/load-order, finds the three
 * virtio disks by their serial (never by vdX order: virtio-mmio enumeration
 * order is not guaranteed), stacks the writable overlay disk on the read-only
 * erofs rootfs, mounts the workspace disk on /root, installs the agent under
 * /run and switches into the new root, where capsem-agent becomes PID 1.
 *
 * Every failure is fatal: the reason goes to the console and the VM reboots,
 * which with QEMU's -no-reboot means it exits; the host then reports the boot
 * failure with the tail of the serial log. The disk layout is documented in
 * docs/guest-image.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"
#include "modules.h"

#define NEWROOT      "/newroot"
#define MODULE_DIR   "/lib/modules"
#define AGENT_SRC    "/capsem-agent"
#define AGENT_DST    NEWROOT "/run/capsem-agent"
#define DISK_WAIT_MS 10000
#define DISK_POLL_US 5000

enum disk_role { DISK_ROOTFS, DISK_OVERLAY, DISK_WORKSPACE, DISK_COUNT };

static const char *const disk_serials[DISK_COUNT] = {
    [DISK_ROOTFS] = "capsem-rootfs",
    [DISK_OVERLAY] = "capsem-overlay",
    [DISK_WORKSPACE] = "capsem-workspace",
};

/* Names under /run that the agent binary answers to (it dispatches on argv[0]). */
static const char *const agent_links[] = {
    "capsem-sysutil",
    "capsem-net-proxy",
    "capsem-dns-proxy",
    "capsem-mcp-server",
};

static bool debug;

static void console_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The kernel opened /dev/console (from the initrd) as fds 0, 1 and 2. */
static void console_print(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    (void)fd_write_all(STDERR_FILENO, line, (size_t)n);
}

static void step(const char *name)
{
    if (!debug)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    console_print("capsem-init: [%5ld.%06ld] %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000L, name);
}

static __attribute__((noreturn)) void die(const char *stepname, struct err *e)
{
    console_print("capsem-init: %s: %s\n", stepname, e ? err_msg(e) : "failed");
    sync();
    reboot(RB_AUTOBOOT);
    /* reboot() only returns on error; PID 1 must never exit (kernel panic). */
    for (;;)
        pause();
}

static int do_mount(const char *src, const char *target, const char *fstype, unsigned long flags,
                    const char *data, struct err **errp)
{
    if (mount(src, target, fstype, flags, data) == 0)
        return 0;
    /* EINVAL from a disk mount almost always means the image is not that fs. */
    bool disk = str_has_prefix(src, "/dev/vd");
    err_sys(errp, "mount %s (%s) on %s%s%s%s", src, fstype ? fstype : "move", target,
            disk && errno == EINVAL ? " (no " : "", disk && errno == EINVAL ? fstype : "",
            disk && errno == EINVAL ? " file system on it?)" : "");
    return -1;
}

static int ensure_dir(const char *path, mode_t mode, struct err **errp)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return err_sys(errp, "mkdir %s", path);
    return 0;
}

static void read_cmdline(void)
{
    _cleanup_free_ char *cmdline = NULL;
    if (file_read_all("/proc/cmdline", 65536, &cmdline, NULL, NULL) < 0)
        return;
    for (char *p = cmdline; *p;) {
        size_t n = strcspn(p, " \t\n");
        if (n == strlen("capsem.debug=1") && memcmp(p, "capsem.debug=1", n) == 0)
            debug = true;
        p += n;
        p += strspn(p, " \t\n");
    }
}

static int mount_early(struct err **errp)
{
    if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", errp) < 0 ||
        do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, errp) < 0 ||
        do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, errp) < 0)
        return -1;
    return 0;
}

/* Reads /sys/block/<name>/serial; returns the role or -1 if it is not ours. */
static int disk_role_of(const char *name)
{
    char path[300], serial[64];
    snprintf(path, sizeof(path), "/sys/block/%s/serial", name);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = fd_read_retry(fd, serial, sizeof(serial) - 1);
    if (n <= 0)
        return -1;
    serial[n] = '\0';
    serial[strcspn(serial, "\n")] = '\0';
    for (int i = 0; i < DISK_COUNT; i++)
        if (strcmp(serial, disk_serials[i]) == 0)
            return i;
    return -1;
}

/* Scans /sys/block once; fills devs[role] with "/dev/vdX" for each disk found
 * whose device node exists. Returns how many roles are filled. */
static int scan_disks(char devs[DISK_COUNT][32])
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "vd", 2) != 0 || strlen(de->d_name) > 16)
            continue;
        int role = disk_role_of(de->d_name);
        if (role < 0 || devs[role][0])
            continue;
        char dev[32];
        snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
        /* sysfs shows the disk a moment before devtmpfs has its node. */
        if (access(dev, F_OK) == 0)
            str_copy(devs[role], sizeof(devs[role]), dev);
    }
    closedir(d);
    int found = 0;
    for (int i = 0; i < DISK_COUNT; i++)
        found += devs[i][0] != '\0';
    return found;
}

static int find_disks(char devs[DISK_COUNT][32], struct err **errp)
{
    uint64_t deadline = time_mono_ms() + DISK_WAIT_MS;
    for (;;) {
        if (scan_disks(devs) == DISK_COUNT)
            return 0;
        if (time_mono_ms() >= deadline)
            break;
        usleep(DISK_POLL_US);
    }
    char missing[128] = "";
    size_t off = 0;
    for (int i = 0; i < DISK_COUNT; i++) {
        if (devs[i][0] || off >= sizeof(missing))
            continue;
        int n = snprintf(missing + off, sizeof(missing) - off, "%s%s", off ? ", " : "",
                         disk_serials[i]);
        if (n > 0)
            off += (size_t)n;
    }
    return err_set(errp, ENODEV,
                   "no virtio disk with serial %s after %d ms (is the host passing "
                   "-device virtio-blk-device,serial=...?)",
                   missing, DISK_WAIT_MS);
}

static int mount_root(char devs[DISK_COUNT][32], struct err **errp)
{
    if (ensure_dir("/mnt/lower", 0755, errp) < 0 || ensure_dir("/mnt/rw", 0755, errp) < 0 ||
        ensure_dir(NEWROOT, 0755, errp) < 0)
        return -1;
    if (do_mount(devs[DISK_ROOTFS], "/mnt/lower", "erofs", MS_RDONLY, NULL, errp) < 0)
        return -1;
    if (do_mount(devs[DISK_OVERLAY], "/mnt/rw", "ext4", MS_NOATIME, "noinit_itable", errp) < 0)
        return -1;
    if (ensure_dir("/mnt/rw/upper", 0755, errp) < 0 || ensure_dir("/mnt/rw/work", 0755, errp) < 0)
        return -1;
    return do_mount("overlay", NEWROOT, "overlay", 0,
                    "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work", errp);
}

static int copy_file(const char *src, const char *dst, mode_t mode, struct err **errp)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_sys(errp, "open %s", src);
    struct stat st;
    if (fstat(in, &st) < 0)
        return err_sys(errp, "stat %s", src);
    _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return err_sys(errp, "create %s", dst);
    off_t done = 0;
    while (done < st.st_size) {
        ssize_t n = sendfile(out, in, &done, (size_t)(st.st_size - done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_sys(errp, "copy %s to %s", src, dst);
        if (n == 0)
            return err_set(errp, EIO, "copy %s to %s: short read", src, dst);
    }
    if (fchmod(out, mode) < 0)
        return err_sys(errp, "chmod %s", dst);
    return 0;
}

static int install_run(struct err **errp)
{
    if (ensure_dir(NEWROOT "/run", 0755, errp) < 0 ||
        do_mount("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", errp) < 0)
        return -1;
    if (copy_file(AGENT_SRC, AGENT_DST, 0555, errp) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(agent_links); i++) {
        char path[128];
        snprintf(path, sizeof(path), NEWROOT "/run/%s", agent_links[i]);
        if (symlink("capsem-agent", path) < 0)
            return err_sys(errp, "symlink %s", path);
    }
    return ensure_dir(NEWROOT "/run/capsem", 0755, errp);
}

static int mount_workspace(char devs[DISK_COUNT][32], struct err **errp)
{
    if (ensure_dir(NEWROOT "/root", 0700, errp) < 0)
        return -1;
    return do_mount(devs[DISK_WORKSPACE], NEWROOT "/root", "ext4", 0, "noinit_itable", errp);
}

static int move_api_mounts(struct err **errp)
{
    static const char *const moved[] = {"/dev", "/proc", "/sys"};
    for (size_t i = 0; i < ARRAY_SIZE(moved); i++) {
        char target[64];
        snprintf(target, sizeof(target), NEWROOT "%s", moved[i]);
        if (ensure_dir(target, 0755, errp) < 0 ||
            do_mount(moved[i], target, NULL, MS_MOVE, NULL, errp) < 0)
            return -1;
    }
    if (ensure_dir(NEWROOT "/dev/pts", 0755, errp) < 0 ||
        do_mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "gid=5,mode=0620,ptmxmode=0666", errp) < 0 ||
        ensure_dir(NEWROOT "/dev/shm", 01777, errp) < 0 ||
        do_mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", errp) <
            0 ||
        ensure_dir(NEWROOT "/tmp", 01777, errp) < 0 ||
        do_mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", errp) < 0)
        return -1;
    /* What udev would add; bash process substitution uses /dev/fd. */
    static const char *const links[][2] = {
        {"/proc/self/fd", NEWROOT "/dev/fd"},
        {"/proc/self/fd/0", NEWROOT "/dev/stdin"},
        {"/proc/self/fd/1", NEWROOT "/dev/stdout"},
        {"/proc/self/fd/2", NEWROOT "/dev/stderr"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(links); i++)
        if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
            return err_sys(errp, "symlink %s", links[i][1]);
    return 0;
}

/* Frees the initramfs memory we own; what remains (empty directories, mount
 * points) is a few inodes. Failures here are harmless. */
static void free_initramfs(void)
{
    DIR *d = opendir(MODULE_DIR);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    unlink(AGENT_SRC);
    unlink("/init");
}

static int switch_root(struct err **errp)
{
    free_initramfs();
    if (chdir(NEWROOT) < 0)
        return err_sys(errp, "chdir %s", NEWROOT);
    if (do_mount(".", "/", NULL, MS_MOVE, NULL, errp) < 0)
        return -1;
    if (chroot(".") < 0)
        return err_sys(errp, "chroot");
    if (chdir("/") < 0)
        return err_sys(errp, "chdir /");
    return 0;
}

int main(void)
{
    struct err *e = NULL;
    char devs[DISK_COUNT][32] = {{0}};

    if (getpid() != 1) {
        console_print("capsem-init: must run as PID 1 (it is the guest's init)\n");
        return 1;
    }
    umask(022);
    if (mount_early(&e) < 0)
        die("mount /dev /proc /sys", e);
    read_cmdline();
    step("early mounts done");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (modules_load(MODULE_DIR, cpus > 0 ? (int)cpus : 1, debug ? step : NULL, &e) < 0)
        die("load modules", e);
    step("modules loaded");
    if (find_disks(devs, &e) < 0)
        die("find disks", e);
    step("disks found");
    if (mount_root(devs, &e) < 0)
        die("mount root", e);
    step("root overlay mounted");
    if (install_run(&e) < 0)
        die("install /run", e);
    if (mount_workspace(devs, &e) < 0)
        die("mount workspace", e);
    if (move_api_mounts(&e) < 0)
        die("move /dev /proc /sys", e);
    if (switch_root(&e) < 0)
        die("switch root", e);
    step("exec agent");

    char *const agent_argv[] = {(char *)"capsem-agent", NULL};
    char *const agent_env[] = {
        (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    execve("/run/capsem-agent", agent_argv, agent_env);
    err_sys(&e, "execve /run/capsem-agent");
    die("exec agent", e);
}
