/* Stand-in for capsem-agent used by images/test-boot.sh: runs as PID 1 after
 * capsem-init's switch into the rootfs, checks the guest contract that init
 * is responsible for, prints one result line per check to the console and
 * powers the VM off (QEMU runs with -no-reboot, so the reboot exits it).
 *
 * Output protocol (grepped by test-boot.sh):
 *   "check ok <what>" / "check FAIL <what>: <why>"
 *   "probe: <text>"   output of a few commands in the rootfs
 *   "capsem-agent ok" when every check passed, else "capsem-agent FAILED"
 *
 * Standalone (no project headers) so it builds with a bare musl-gcc. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what, const char *why)
{
    if (ok) {
        printf("check ok %s\n", what);
    } else {
        printf("check FAIL %s: %s\n", what, why ? why : strerror(errno));
        failures++;
    }
    fflush(stdout);
}

static int write_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    int ok = write(fd, "x\n", 2) == 2 && fsync(fd) == 0;
    close(fd);
    return ok && unlink(path) == 0;
}

static int mounted_as(const char *mnt, const char *fstype)
{
    FILE *f = fopen("/proc/mounts", "re");
    if (!f)
        return 0;
    char dev[256], dir[256], type[64];
    int found = 0;
    while (fscanf(f, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
        if (strcmp(dir, mnt) == 0)
            found = strcmp(type, fstype) == 0; /* the last mount on a path wins */
    fclose(f);
    return found;
}

/* Guest contract: no device that can carry a packet out; only lo and dummy0. */
static int only_local_netdevs(void)
{
    DIR *d = opendir("/sys/class/net");
    if (!d)
        return 0;
    int ok = 1;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strcmp(de->d_name, "lo") != 0 &&
            strcmp(de->d_name, "dummy0") != 0)
            ok = 0;
    closedir(d);
    return ok;
}

static void mounts_summary(void)
{
    FILE *f = fopen("/proc/mounts", "re");
    if (!f)
        return;
    char dev[256], dir[256], type[64];
    printf("mounts:");
    while (fscanf(f, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
        printf(" %s=%s", dir, type);
    printf("\n");
    fclose(f);
}

static void run_probe(void)
{
    static const char script[] =
        "echo \"probe: kernel $(uname -r) shell $BASH_VERSION\"; "
        "echo \"probe: uptime $(cut -d' ' -f1 /proc/uptime) s\"; "
        "echo \"probe: net $(ls /sys/class/net | tr '\\n' ' ')\"; "
        "for c in python3 git node npm curl jq iptables; do "
        "  if command -v $c >/dev/null 2>&1; then "
        "    echo \"probe: $c $($c --version 2>&1 | head -n 1)\"; "
        "  else echo \"probe: $c absent\"; fi; "
        "done; "
        "if command -v python3 >/dev/null 2>&1; then "
        "  echo \"probe: python3 -c $(python3 -c 'import ssl, sqlite3, venv; print(6*7)' 2>&1)\"; "
        "fi; "
        "echo \"probe: links $(readlink /usr/sbin/poweroff) $(readlink /run/capsem-sysutil)\"";
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        check(0, "probe shell", NULL);
    else
        check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "probe shell", "exit status");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Wall time of a few typical first commands, run twice: the first run reads
 * the rootfs (cold page cache), the second shows the warm cost. */
static void run_timings(void)
{
    static const char *const cmds[] = {
        "python3 -c 'import json, ssl, asyncio'",
        "node -e 0",
        "git --version",
        "ls -lR /usr/lib >/dev/null",
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char first[16] = "";
        for (int round = 0; round < 2; round++) {
            double t0 = now_ms();
            pid_t pid = fork();
            if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                if (null >= 0) {
                    dup2(null, 1);
                    dup2(null, 2);
                }
                execl("/bin/sh", "sh", "-c", cmds[i], (char *)NULL);
                _exit(127);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                break;
            if (round == 0)
                snprintf(first, sizeof(first), "%.0f", now_ms() - t0);
            else
                printf("time: %s: cold %s ms, warm %.0f ms\n", cmds[i], first, now_ms() - t0);
        }
    }
    fflush(stdout);
}

int main(void)
{
    struct stat st;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("capsem-agent: started at %ld.%03ld s (monotonic)\n", (long)ts.tv_sec,
           ts.tv_nsec / 1000000L);
    check(getpid() == 1, "pid 1", "not PID 1");
    check(stat("/run/capsem-agent", &st) == 0 && (st.st_mode & 07777) == 0555,
          "/run/capsem-agent mode 0555", "missing or wrong mode");
    char link[64] = "";
    ssize_t n = readlink("/run/capsem-sysutil", link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = '\0';
    check(strcmp(link, "capsem-agent") == 0, "/run/capsem-sysutil link", "missing");
    check(stat("/run/capsem", &st) == 0 && S_ISDIR(st.st_mode), "/run/capsem dir", NULL);
    check(mounted_as("/", "overlay"), "/ is overlay", "not overlay");
    check(mounted_as("/root", "ext4"), "/root is ext4", "not ext4");
    check(mounted_as("/tmp", "tmpfs"), "/tmp is tmpfs", "not tmpfs");
    check(mounted_as("/dev/pts", "devpts"), "/dev/pts is devpts", "not devpts");
    check(write_file("/root/.capsem-test"), "/root writable", NULL);
    check(write_file("/etc/capsem-test"), "/ writable (overlay)", NULL);
    check(write_file("/tmp/capsem-test"), "/tmp writable", NULL);
    check(access("/dev/fd/0", F_OK) == 0, "/dev/fd", NULL);
    int ptm = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    check(ptm >= 0, "/dev/ptmx opens", NULL);
    if (ptm >= 0)
        close(ptm);
    check(only_local_netdevs(), "network devices are lo and dummy0 only", "other device found");
    mounts_summary();
    run_timings();
    run_probe();
    printf("%s\n", failures ? "capsem-agent FAILED" : "capsem-agent ok");
    fflush(stdout);
    sync();
    reboot(RB_AUTOBOOT);
    return 1;
}
