/* capsem cp: one file between the host and a VM's workspace (/root),
 * through GET/POST /vms/{id}/files/content. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/paths.h"
#include "base/util.h"
#include "cli.h"
#include "cli/format.h"

/* Local cap on one transfer; the service's files.max_bytes (10 MiB by
 * default) is normally the lower one and gives the error. */
#define CP_MAX ((size_t)CLI_MAX_RESPONSE)

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int read_stdin(char **data, size_t *len, struct err **errp)
{
    struct buf b;
    buf_init(&b, CP_MAX);
    for (;;) {
        uint8_t *p = buf_reserve(&b, 1 << 16);
        if (!p) {
            buf_free(&b);
            return err_set(errp, EFBIG, "standard input is larger than %zu MiB", CP_MAX >> 20);
        }
        ssize_t n = fd_read_retry(STDIN_FILENO, p, 1 << 16);
        if (n < 0) {
            buf_free(&b);
            return err_sys(errp, "read standard input");
        }
        if (n == 0)
            break;
        buf_commit(&b, (size_t)n);
    }
    *len = b.len;
    *data = buf_steal_str(&b);
    buf_free(&b);
    return *data ? 0 : err_set(errp, ENOMEM, "out of memory");
}

static int read_source(const char *src, char **data, size_t *len, struct err **errp)
{
    if (strcmp(src, "-") == 0)
        return read_stdin(data, len, errp);
    if (is_dir(src))
        return err_set(errp, EISDIR, "%s is a directory: cp copies single files", src);
    return file_read_all(src, CP_MAX, data, len, errp);
}

static int write_target(const char *dst, const char *data, size_t len, struct err **errp)
{
    if (strcmp(dst, "-") == 0)
        return cli_write(STDOUT_FILENO, data, len) ? 0 : err_sys(errp, "write standard output");
    _cleanup_close_ int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0)
        return err_sys(errp, "cannot create %s", dst);
    if (fd_write_all(fd, data, len) < 0)
        return err_sys(errp, "write %s", dst);
    if (close(steal_fd(&fd)) < 0)
        return err_sys(errp, "write %s", dst);
    return 0;
}

static char *file_route(const char *vm, const char *path, struct err **errp)
{
    _cleanup_free_ char *base = cli_vm_path(vm, "/files/content", errp);
    const char *q[] = {"path", path};
    char *s = base ? cli_path_query(base, q, 1) : NULL;
    if (base && !s)
        err_set(errp, ENOMEM, "out of memory");
    return s;
}

static int download(struct cli_ctx *ctx, const char *vm, const char *path, const char *src,
                    const char *dst, struct err **errp)
{
    if (!*path)
        return err_set(errp, EINVAL, "give a file after %s: (for example %s:notes.txt)", vm, vm);
    _cleanup_free_ char *target = NULL;
    if (strcmp(dst, "-") != 0 && is_dir(dst) && !(target = paths_join(dst, cli_base_name(path))))
        return err_set(errp, ENOMEM, "out of memory");
    struct cli_client *c = cli_connect(ctx, errp);
    _cleanup_free_ char *route = c ? file_route(vm, path, errp) : NULL;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (!route || cli_client_raw(c, "GET", route, NULL, 0, CLI_CALL_TIMEOUT, &data, &len, errp) < 0)
        return -1;
    if (write_target(target ? target : dst, data, len, errp) < 0)
        return -1;
    fprintf(stderr, "Copied %zu bytes: %s -> %s\n", len, src, target ? target : dst);
    return 0;
}

static int upload(struct cli_ctx *ctx, const char *src, const char *vm, const char *path,
                  struct err **errp)
{
    _cleanup_free_ char *full = NULL;
    if (!*path || path[strlen(path) - 1] == '/') {
        if (strcmp(src, "-") == 0)
            return err_set(errp, EINVAL, "give a file name to write standard input to: %s:PATH",
                           vm);
        if (asprintf(&full, "%s%s", path, cli_base_name(src)) < 0)
            return err_set(errp, ENOMEM, "out of memory");
        path = full;
    }
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (read_source(src, &data, &len, errp) < 0)
        return -1;
    struct cli_client *c = cli_connect(ctx, errp);
    _cleanup_free_ char *route = c ? file_route(vm, path, errp) : NULL;
    _cleanup_free_ char *answer = NULL;
    size_t alen = 0;
    if (!route ||
        cli_client_raw(c, "POST", route, data, len, CLI_CALL_TIMEOUT, &answer, &alen, errp) < 0)
        return -1;
    fprintf(stderr, "Copied %zu bytes: %s -> %s:%s\n", len, src, vm, path);
    return 0;
}

static int run_cp(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    const char *src = a->pos[0], *dst = a->pos[1];
    _cleanup_free_ char *src_vm = NULL, *dst_vm = NULL;
    const char *src_path = NULL, *dst_path = NULL;
    int rs = cli_split_remote(src, &src_vm, &src_path);
    int rd = cli_split_remote(dst, &dst_vm, &dst_path);
    if (rs < 0 || rd < 0)
        return cli_failf("out of memory");
    if (rs + rd != 1)
        return cli_usage(&cmd_cp, "exactly one of SRC and DST must be VM:PATH");
    _cleanup_err_ struct err *e = NULL;
    int rc =
        rs ? download(ctx, src_vm, src_path, src, dst, &e) : upload(ctx, src, dst_vm, dst_path, &e);
    return rc < 0 ? cli_fail(e) : EXIT_OK;
}

static const struct cli_opt cp_opts[] = {OPT_ROW_UDS};

const struct cli_command cmd_cp = {
    .name = "cp",
    .usage = "cp SRC DST",
    .summary = "Copy a file between the host and a VM",
    .description =
        "Copies one file. Exactly one of SRC and DST is VM:PATH, a path in the VM's\n"
        "workspace (/root; a relative PATH is under /root). The other is a host path, or\n"
        "- for standard input or output. A host directory DST gets the source's file\n"
        "name, and so does a VM PATH that is empty or ends with /. Prints `Copied N\n"
        "bytes: SRC -> DST` on stderr. Works on Stopped VMs too (and downloads from\n"
        "Suspended ones). Write ./a:b for a host file whose name has a colon.",
    .examples = "  capsem cp notes.txt dev:\n"
                "  capsem cp dev:out/report.json .\n"
                "  tar c src | capsem cp - dev:src.tar\n"
                "  capsem cp dev:/root/log.txt - | less\n",
    .opts = cp_opts,
    .nopts = ARRAY_SIZE(cp_opts),
    .stop_after = -1,
    .min_pos = 2,
    .max_pos = 2,
    .missing = "SRC DST",
    .run = run_cp,
};
