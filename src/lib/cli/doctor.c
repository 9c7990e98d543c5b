/* Host-side checks of `capsem doctor`; see doctor.h. */
#include "cli/doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli/format.h"
#include "vm/assets.h"

#define QEMU_VERSION_TIMEOUT_MS 10000

static char *find_on_path(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        size_t n = strcspn(p, ":");
        char *cand = NULL;
        if (n > 0 && asprintf(&cand, "%.*s/%s", (int)n, p, name) >= 0 && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        p += n;
        if (*p == ':')
            p++;
    }
    return NULL;
}

/* Reads the child's stdout until EOF or the deadline. */
static size_t read_output(int fd, char *out, size_t cap)
{
    size_t len = 0;
    uint64_t deadline = time_mono_ms() + QEMU_VERSION_TIMEOUT_MS;
    while (len + 1 < cap) {
        uint64_t now = time_mono_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t n = fd_read_retry(fd, out + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    return len;
}

int cli_qemu_version(const char *binary, char **path, char *version, size_t cap, struct err **errp)
{
    *path = find_on_path(binary);
    if (!*path)
        return err_set(errp, ENOENT,
                       "%s not found on PATH (install QEMU: apt install qemu-system-x86 "
                       "or the package of your distribution)",
                       binary);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return err_sys(errp, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return err_sys(errp, "fork");
    }
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(pipefd[1], STDOUT_FILENO) < 0 ||
            dup2(null_fd, STDERR_FILENO) < 0)
            _exit(127);
        char *const argv[] = {*path, "--version", NULL};
        execv(*path, argv);
        _exit(127);
    }
    close(pipefd[1]);
    char out[4096];
    read_output(pipefd[0], out, sizeof(out));
    close(pipefd[0]);
    kill(pid, SIGKILL); /* no-op when it already exited */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    out[strcspn(out, "\n")] = '\0';
    if (!out[0])
        return err_set(errp, EIO, "%s --version printed nothing", *path);
    snprintf(version, cap, "%s", out);
    return 0;
}

int cli_free_bytes(const char *path, uint64_t *bytes, struct err **errp)
{
    char p[PATH_MAX];
    if (str_copy(p, sizeof(p), path) < 0)
        return err_set(errp, ENAMETOOLONG, "path too long: %s", path);
    struct statvfs vfs;
    while (statvfs(p, &vfs) < 0) {
        char *slash = strrchr(p, '/');
        if (errno != ENOENT || !slash)
            return err_sys(errp, "statvfs %s", path);
        if (slash == p)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}

static int check_version(struct assets *a, const struct asset_version *v, struct buf *summary,
                         struct err **errp)
{
    uint64_t total = 0;
    size_t files = 0;
    const struct asset_file *fixed[] = {&v->kernel, &v->initrd};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++, files++) {
        if (assets_verify(a, fixed[i], errp) < 0)
            return -1;
        total += fixed[i]->size;
    }
    for (size_t i = 0; i < v->nrootfs; i++, files++) {
        if (assets_verify(a, &v->rootfs[i].f, errp) < 0)
            return -1;
        total += v->rootfs[i].f.size;
    }
    char size[24];
    cli_format_size(total, size, sizeof(size));
    return buf_printf(summary, "%sv%s%s (%zu files, %s)", summary->len ? ", " : "", v->version,
                      strcmp(v->version, a->current) == 0 ? " current" : "", files, size) < 0
               ? err_set(errp, ENOMEM, "out of memory")
               : 0;
}

int cli_assets_check(const char *assets_dir, struct buf *summary, struct err **errp)
{
    struct assets a;
    if (assets_load(assets_dir, &a, errp) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < a.nversions; i++)
        rc = check_version(&a, &a.versions[i], summary, errp);
    assets_free(&a);
    return rc;
}

int cli_ifaces_parse(const char *text, char *names, size_t cap)
{
    names[0] = '\0';
    if (!strstr(text, "Inter-") || !strstr(text, "face"))
        return -1;
    int bad = 0;
    size_t used = 0;
    const char *line = strchr(text, '\n');
    line = line ? strchr(line + 1, '\n') : NULL; /* two header lines */
    while (line && *++line) {
        const char *colon = strchr(line, ':');
        const char *eol = strchr(line, '\n');
        if (!colon || (eol && colon > eol))
            break;
        const char *s = line;
        while (*s == ' ')
            s++;
        int n = (int)(colon - s);
        if (!((n == 2 && strncmp(s, "lo", 2) == 0) || (n == 6 && strncmp(s, "dummy0", 6) == 0)))
            bad++;
        int w = snprintf(names + used, cap - used, "%s%.*s", used ? ", " : "", n, s);
        if (w > 0 && (size_t)w < cap - used)
            used += (size_t)w;
        line = eol;
    }
    return bad;
}
