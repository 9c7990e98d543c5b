#include "vm/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

static int run_mke2fs(const char *path, struct err **errp)
{
    pid_t pid = fork();
    if (pid < 0)
        return err_sys(errp, "fork");
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        char *argv[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-m", "0", "-E",
                        "lazy_itable_init=1,lazy_journal_init=1,nodiscard", (char *)path, NULL};
        execvp("mke2fs", argv);
        execv("/usr/sbin/mke2fs", argv);
        execv("/sbin/mke2fs", argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return err_sys(errp, "waitpid mke2fs");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return err_set(errp, EIO, "mke2fs %s failed (exit %d); is e2fsprogs installed?", path,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

static int ensure_template(const char *dir, uint64_t bytes, char *out, size_t cap,
                           struct err **errp)
{
    if (snprintf(out, cap, "%s/ext4-%llu.img", dir, (unsigned long long)bytes) >= (int)cap)
        return err_set(errp, ENAMETOOLONG, "template path too long");
    if (access(out, R_OK) == 0)
        return 0;
    if (mkdir_p(dir, 0700, errp) < 0)
        return -1;
    char tmp[PATH_MAX + 32];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid()) >= (int)sizeof(tmp))
        return err_set(errp, ENAMETOOLONG, "template path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_sys(errp, "create %s", tmp);
    int rc = ftruncate(fd, (off_t)bytes);
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        return err_sys(errp, "size %s", tmp);
    }
    if (run_mke2fs(tmp, errp) < 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, out) < 0) { /* a concurrent creator may have won: fine */
        unlink(tmp);
        if (access(out, R_OK) != 0)
            return err_sys(errp, "rename %s", tmp);
    }
    return 0;
}

static int sparse_copy(int in, int out, off_t size, struct err **errp)
{
    static __thread char buf[1 << 20];
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(in, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break; /* only a hole remains */
            return err_sys(errp, "seek data");
        }
        off_t hole = lseek(in, data, SEEK_HOLE);
        if (hole < 0)
            return err_sys(errp, "seek hole");
        for (off_t off = data; off < hole;) {
            size_t want = (size_t)MIN((off_t)sizeof(buf), hole - off);
            ssize_t n = pread(in, buf, want, off);
            if (n <= 0)
                return err_sys(errp, "read");
            if (pwrite(out, buf, (size_t)n, off) != n)
                return err_sys(errp, "write");
            off += n;
        }
        pos = hole;
    }
    if (ftruncate(out, size) < 0)
        return err_sys(errp, "truncate");
    return 0;
}

int disk_clone(const char *src, const char *dst, struct err **errp)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_sys(errp, "open %s", src);
    struct stat st;
    if (fstat(in, &st) < 0)
        return err_sys(errp, "stat %s", src);
    char tmp[PATH_MAX + 32];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, (int)getpid()) >= (int)sizeof(tmp))
        return err_set(errp, ENAMETOOLONG, "path too long: %s", dst);
    _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return err_sys(errp, "create %s", tmp);
    if (ioctl(out, FICLONE, in) < 0 && sparse_copy(in, out, st.st_size, errp) < 0) {
        err_prefix(errp, "copy %s", src);
        unlink(tmp);
        return -1;
    }
    if (fsync(out) < 0 || rename(tmp, dst) < 0) {
        err_sys(errp, "finish %s", dst);
        unlink(tmp);
        return -1;
    }
    return 0;
}

int disk_ensure_ext4(const char *path, uint64_t bytes, const char *template_dir,
                     struct err **errp)
{
    if (access(path, F_OK) == 0)
        return 0;
    char tpl[PATH_MAX];
    if (ensure_template(template_dir, bytes, tpl, sizeof(tpl), errp) < 0)
        return -1;
    return disk_clone(tpl, path, errp);
}

int64_t disk_allocated_bytes(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    return (int64_t)st.st_blocks * 512;
}
