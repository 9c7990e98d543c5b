/* File streams: read, write and list guest files for the host. With
 * T_CONFINE the path is resolved beneath /root (openat2 RESOLVE_BENEATH, so
 * symlinks cannot lead out of the workspace either). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"

#define WORKSPACE "/root"

/* Kernel ABI for openat2(2) (Linux 5.6+); musl ships no <linux/openat2.h>. */
struct open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct file_op_state {
    struct stream_ctx base;
    struct mux_stream *s;
    struct rec_reader rr;
    uint32_t op;
    char *path;
    uint32_t mode;
    uint64_t max_bytes;
    bool confine;
    uint32_t depth;
    int fd;
    uint64_t size;  /* bytes transferred so far */
    uint64_t total; /* file size for reads */
    bool have_req;
    bool finished;
};

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC,
                           .mode = (flags & O_CREAT) ? mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd;
    do {
        fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
    } while (fd < 0 && errno == EINTR);
    return (int)fd;
}

/* Splits a request path into a path relative to the workspace. */
static const char *workspace_rel(const char *path)
{
    if (strcmp(path, WORKSPACE) == 0)
        return ".";
    if (str_has_prefix(path, WORKSPACE "/"))
        return path[sizeof(WORKSPACE)] ? path + sizeof(WORKSPACE) : ".";
    if (path[0] == '/')
        return NULL;
    return path;
}

/* Creates missing parent directories of rel beneath root (symlinks that
 * leave the root are refused by openat2). */
static int mkparents_beneath(int root, const char *rel)
{
    char tmp[4096];
    if (str_copy(tmp, sizeof(tmp), rel) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (tmp[0]) {
            int fd = open_beneath(root, tmp, O_PATH | O_DIRECTORY, 0);
            if (fd >= 0) {
                close(fd);
            } else if (errno == ENOENT) {
                char *slash = strrchr(tmp, '/');
                int parent = slash ? (*slash = '\0', open_beneath(root, tmp, O_PATH | O_DIRECTORY, 0))
                                   : dup(root);
                if (slash)
                    *slash = '/';
                if (parent < 0)
                    return -1;
                int rc = mkdirat(parent, slash ? slash + 1 : tmp, 0755);
                close(parent);
                if (rc < 0 && errno != EEXIST)
                    return -1;
            } else {
                return -1;
            }
        }
        *p = '/';
    }
    return 0;
}

static int mkparents_plain(const char *path)
{
    char tmp[4096];
    if (str_copy(tmp, sizeof(tmp), path) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = '\0';
    struct err *e = NULL;
    int rc = mkdir_p(tmp, 0755, &e);
    err_free(e);
    return rc;
}

static int open_target(struct file_op_state *f, int flags, mode_t mode)
{
    if (!f->confine) {
        if (f->path[0] != '/') {
            char full[4096];
            snprintf(full, sizeof(full), WORKSPACE "/%s", f->path);
            free(f->path);
            f->path = strdup(full);
            if (!f->path) {
                errno = ENOMEM;
                return -1;
            }
        }
        if ((flags & O_CREAT) && mkparents_plain(f->path) < 0)
            return -1;
        return open(f->path, flags | O_CLOEXEC, mode);
    }
    const char *rel = workspace_rel(f->path);
    if (!rel) {
        errno = EXDEV;
        return -1;
    }
    int root = open(WORKSPACE, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -1;
    if ((flags & O_CREAT) && mkparents_beneath(root, rel) < 0) {
        int saved = errno;
        close(root);
        errno = saved;
        return -1;
    }
    int fd = open_beneath(root, rel, flags, mode);
    int saved = errno;
    close(root);
    errno = saved;
    return fd;
}

static void send_result(struct file_op_state *f, int errnum, const char *msg)
{
    if (f->finished)
        return;
    f->finished = true;
    struct buf b;
    buf_init(&b, 1024);
    tlv_put_u32(&b, T_ERRNO, (uint32_t)errnum);
    tlv_put_u64(&b, T_SIZE, f->size);
    if (msg)
        tlv_put_str(&b, T_MESSAGE, msg);
    stream_send_rec(f->s, FILE_RESULT, buf_head(&b), b.len);
    buf_free(&b);
    mux_stream_close_write(f->s);
    agent_kick();
}

static void fail_errno(struct file_op_state *f, int errnum)
{
    const char *msg = errnum == EXDEV ? "path escapes the workspace" : strerror(errnum);
    send_result(f, errnum, msg);
}

static void op_free(struct file_op_state *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    rec_reader_free(&f->rr);
    if (f->s)
        mux_stream_release(f->s);
    free(f);
}

/* ---- read ---- */

static void read_pump(struct file_op_state *f)
{
    static uint8_t data[AGENT_DATA_CHUNK];
    while (!f->finished && stream_has_room(f->s, AGENT_DATA_CHUNK + 256)) {
        ssize_t n = fd_read_retry(f->fd, data, sizeof(data));
        if (n < 0) {
            fail_errno(f, errno);
            return;
        }
        if (n == 0) {
            send_result(f, 0, NULL);
            return;
        }
        if (f->size + (uint64_t)n > f->max_bytes) {
            send_result(f, EFBIG, "file grew past the size limit while reading");
            return;
        }
        f->size += (uint64_t)n;
        stream_send_rec(f->s, FILE_DATA, data, (size_t)n);
    }
    agent_kick();
}

static void start_read(struct file_op_state *f)
{
    f->fd = open_target(f, O_RDONLY | O_NOCTTY, 0);
    if (f->fd < 0) {
        fail_errno(f, errno);
        return;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        fail_errno(f, errno);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        send_result(f, EISDIR, "is a directory");
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        send_result(f, EINVAL, "not a regular file");
        return;
    }
    if ((uint64_t)st.st_size > f->max_bytes) {
        send_result(f, EFBIG, "file is larger than the transfer limit");
        return;
    }
    struct buf b;
    buf_init(&b, 64);
    tlv_put_u64(&b, T_SIZE, (uint64_t)st.st_size);
    tlv_put_u32(&b, T_MODE, st.st_mode & 07777);
    stream_send_rec(f->s, FILE_INFO, buf_head(&b), b.len);
    buf_free(&b);
    read_pump(f);
}

/* ---- write ---- */

static void start_write(struct file_op_state *f)
{
    f->fd = open_target(f, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, f->mode ? f->mode : 0644);
    if (f->fd < 0)
        fail_errno(f, errno);
    else if (f->mode)
        fchmod(f->fd, f->mode & 07777);
}

static void write_data(struct file_op_state *f, const uint8_t *p, size_t n)
{
    if (f->finished || f->fd < 0)
        return;
    if (f->size + n > f->max_bytes) {
        send_result(f, EFBIG, "upload larger than the transfer limit");
        return;
    }
    if (fd_write_all(f->fd, p, n) < 0) {
        fail_errno(f, errno);
        return;
    }
    f->size += n;
}

/* ---- list ---- */

static void list_dir(struct file_op_state *f, int dirfd, const char *vpath, uint32_t depth)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", strcmp(vpath, "/") ? vpath : "", de->d_name);
        uint32_t type = S_ISREG(st.st_mode)   ? FILE_TYPE_FILE
                        : S_ISDIR(st.st_mode) ? FILE_TYPE_DIR
                        : S_ISLNK(st.st_mode) ? FILE_TYPE_SYMLINK
                                              : FILE_TYPE_OTHER;
        struct buf b;
        buf_init(&b, 8192);
        tlv_put_str(&b, T_PATH, child);
        tlv_put_str(&b, T_NAME, de->d_name);
        tlv_put_u32(&b, T_TYPE, type);
        tlv_put_u64(&b, T_SIZE, (uint64_t)st.st_size);
        tlv_put_u64(&b, T_MTIME, (uint64_t)st.st_mtime);
        tlv_put_u32(&b, T_DEPTH, f->depth - depth);
        /* Listings are small; a full queue truncates them rather than block. */
        if (stream_send_rec(f->s, FILE_ENTRY, buf_head(&b), b.len) == 0)
            f->size++;
        buf_free(&b);
        if (type == FILE_TYPE_DIR && depth > 1) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                list_dir(f, sub, child, depth - 1);
        }
    }
    closedir(d);
}

static void start_list(struct file_op_state *f)
{
    int fd = open_target(f, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        fail_errno(f, errno);
        return;
    }
    char vpath[4096];
    const char *rel = workspace_rel(f->path);
    if (f->confine && rel && strcmp(rel, ".") != 0)
        snprintf(vpath, sizeof(vpath), WORKSPACE "/%s", rel);
    else
        str_copy(vpath, sizeof(vpath), f->confine ? WORKSPACE : f->path);
    list_dir(f, fd, vpath, MAX(1u, MIN(f->depth, 6u)));
    send_result(f, 0, NULL);
}

static void handle_req(struct file_op_state *f, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t confine = 0;
    f->max_bytes = 10u * 1024 * 1024;
    f->depth = 1;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_OP)
            tlv_as_u32(v, n, &f->op);
        else if (tag == T_PATH && !f->path)
            f->path = tlv_as_str(v, n);
        else if (tag == T_MODE)
            tlv_as_u32(v, n, &f->mode);
        else if (tag == T_MAX_BYTES)
            tlv_as_u64(v, n, &f->max_bytes);
        else if (tag == T_CONFINE)
            tlv_as_u32(v, n, &confine);
        else if (tag == T_DEPTH)
            tlv_as_u32(v, n, &f->depth);
    }
    f->confine = confine != 0;
    f->have_req = true;
    if (!f->path || !*f->path) {
        send_result(f, EINVAL, "missing path");
        return;
    }
    switch (f->op) {
    case FILE_OP_READ:
        start_read(f);
        break;
    case FILE_OP_WRITE:
        start_write(f);
        break;
    case FILE_OP_LIST:
        start_list(f);
        break;
    default:
        send_result(f, EINVAL, "unknown file operation");
        break;
    }
}

static void maybe_done(struct file_op_state *f);

static void files_on_data(struct mux_stream *s, const uint8_t *d, size_t len)
{
    struct file_op_state *f = mux_stream_user(s);
    if (rec_reader_feed(&f->rr, d, len) < 0) {
        mux_stream_reset(s, MUX_RST_PROTOCOL);
        mux_stream_release(s);
        f->s = NULL;
        op_free(f);
        return;
    }
    mux_stream_consumed(s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    while (rec_reader_next(&f->rr, &type, &p, &n) == 1) {
        if (type == FILE_REQ && !f->have_req) {
            handle_req(f, p, n);
        } else if (type == FILE_DATA && f->op == FILE_OP_WRITE) {
            write_data(f, p, n);
        } else if (type == FILE_END && f->op == FILE_OP_WRITE) {
            if (!f->finished && f->fd >= 0 && close(f->fd) < 0) {
                f->fd = -1;
                fail_errno(f, errno);
            }
            f->fd = -1;
            send_result(f, 0, NULL);
        }
    }
    maybe_done(f);
}

/* Frees the operation once our result went out and the host finished its
 * side. Only called at the end of a callback (a safe point). */
static void maybe_done(struct file_op_state *f)
{
    if (f->finished && f->s && mux_stream_peer_finished(f->s))
        op_free(f);
}

static void files_on_fin(struct mux_stream *s)
{
    struct file_op_state *f = mux_stream_user(s);
    if (!f->have_req || (f->op == FILE_OP_WRITE && !f->finished))
        send_result(f, EINVAL, "request ended early");
    maybe_done(f);
}

static void files_on_reset(struct mux_stream *s)
{
    struct file_op_state *f = mux_stream_user(s);
    mux_stream_release(s);
    f->s = NULL;
    op_free(f);
}

static void files_on_writable(struct mux_stream *s)
{
    struct file_op_state *f = mux_stream_user(s);
    if (f->op == FILE_OP_READ && f->fd >= 0 && !f->finished)
        read_pump(f);
    maybe_done(f);
}

static const struct stream_ops files_ops = {
    .on_data = files_on_data,
    .on_fin = files_on_fin,
    .on_reset = files_on_reset,
    .on_writable = files_on_writable,
};

int files_open(struct mux_stream *s)
{
    struct file_op_state *f = calloc(1, sizeof(*f));
    if (!f)
        return MUX_RST_INTERNAL;
    f->base.ops = &files_ops;
    f->s = s;
    f->fd = -1;
    rec_reader_init(&f->rr, AGENT_DATA_CHUNK + 64 * 1024);
    mux_stream_set_user(s, f);
    return 0;
}
