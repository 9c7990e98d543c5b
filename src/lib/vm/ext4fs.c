/* Workspace image access with libext2fs (see ext4fs.h, docs/ext4fs.md). */
#include "vm/ext4fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "base/utf8.h"
#include "base/util.h"

/* Byte ranges QEMU's image locking (file-posix, locking=auto) takes OFD locks
 * on: permission bytes from 100, "not shared" bytes from 200. */
#define QEMU_LOCK_START 100
#define QEMU_LOCK_LEN   200
/* Our reader/writer lock lives on byte 0, which QEMU never locks. */
#define OWN_LOCK_START 0
#define OWN_LOCK_LEN   1

#define IO_CHUNK (1u << 20)

static const char escape_msg[] = "path escapes the workspace";

/* ---------- errors ---------- */

static pthread_once_t et_once = PTHREAD_ONCE_INIT;

static void et_init(void)
{
    initialize_ext2_error_table();
}

static const char *ext2_msg(errcode_t rc)
{
    pthread_once(&et_once, et_init);
    return error_message(rc);
}

/* Maps a libext2fs error to our statuses; everything unexpected is 500. */
static int fs_fail(struct err **errp, errcode_t rc, const char *what, const char *shown)
{
    if (rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL || rc == ENOSPC)
        return err_status(errp, 413, "%s: no space left in the workspace", shown);
    return err_status(errp, 0, "%s: %s: %s", shown, what, ext2_msg(rc));
}

/* ---------- guest paths ---------- */

struct wpath {
    char *rel;   /* "a/b/c": no leading slash, no empty or "." components */
    char *shown; /* "/root/a/b/c", used in results and messages */
};

static void wpath_free(struct wpath *p)
{
    free(p->rel);
    free(p->shown);
}

static int wpath_parse(const char *path, struct wpath *out, struct err **errp)
{
    *out = (struct wpath){0};
    if (!path || !*path)
        path = "/root";
    size_t n = strlen(path), r = 0;
    if (n > EXT4FS_PATH_MAX)
        return err_status(errp, 400, "path too long (%zu bytes, limit %d)", n, EXT4FS_PATH_MAX);
    const char *p = path;
    if (*p == '/') {
        if (strcmp(p, "/root") != 0 && !str_has_prefix(p, "/root/"))
            return err_status(errp, 403, "%s", escape_msg);
        p += 5;
    }
    _cleanup_free_ char *rel = malloc(n + 1);
    _cleanup_free_ char *shown = malloc(n + 8);
    if (!rel || !shown)
        return err_set(errp, ENOMEM, "out of memory");
    for (p += strspn(p, "/"); *p; p += strspn(p, "/")) {
        size_t c = strcspn(p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.')
            return err_status(errp, 400, "path must not contain '..': %s", path);
        if (c > EXT2_NAME_LEN)
            return err_status(errp, 400, "file name too long in %s", path);
        if (!(c == 1 && p[0] == '.')) {
            if (r)
                rel[r++] = '/';
            memcpy(rel + r, p, c);
            r += c;
        }
        p += c;
    }
    rel[r] = '\0';
    snprintf(shown, n + 8, "/root%s%s", r ? "/" : "", rel);
    /* Shown in JSON results and messages, which must be UTF-8. */
    size_t slen;
    out->shown = utf8_sanitize(shown, strlen(shown), &slen);
    if (!out->shown)
        return err_set(errp, ENOMEM, "out of memory");
    out->rel = steal_pointer(&rel);
    return 0;
}

/* ---------- opening the image ---------- */

struct img {
    int fd; /* ours: holds the OFD locks until closed */
    ext2_filsys fs;
    bool rw;
};

static int ofd_lock(int fd, short type, off_t start, off_t len, bool wait)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int rc;
    do
        rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    while (rc < 0 && errno == EINTR);
    return rc;
}

static int img_lock(struct img *im, const char *image, struct err **errp)
{
    if (ofd_lock(im->fd, im->rw ? F_WRLCK : F_RDLCK, OWN_LOCK_START, OWN_LOCK_LEN, true) < 0)
        return err_sys(errp, "lock %s", image);
    if (!im->rw)
        return 0;
    /* Taking QEMU's lock bytes fails while a QEMU has the image open and
     * makes a QEMU started meanwhile fail instead of booting on a disk we are
     * changing. */
    if (ofd_lock(im->fd, F_WRLCK, QEMU_LOCK_START, QEMU_LOCK_LEN, false) < 0) {
        if (errno == EAGAIN || errno == EACCES)
            return err_status(errp, 409, "the workspace image is in use (is the VM running?)");
        return err_sys(errp, "lock %s", image);
    }
    return 0;
}

static void img_close(struct img *im)
{
    if (im->fs)
        ext2fs_close_free(&im->fs);
    if (im->fd >= 0)
        close(im->fd);
    im->fd = -1;
}

/* Flushes a read-write image (bitmaps, group descriptors, superblock, all with
 * checksums; fsync) and closes it. */
static int img_finish(struct img *im, const char *image, struct err **errp)
{
    errcode_t rc = ext2fs_close_free(&im->fs);
    img_close(im);
    if (rc)
        return fs_fail(errp, rc, "flush", image);
    return 0;
}

static int img_open(struct img *im, const char *image, bool rw, struct err **errp)
{
    *im = (struct img){.fd = -1, .rw = rw};
    im->fd = open(image, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
    if (im->fd < 0)
        return err_sys(errp, "open workspace image %s", image);
    struct stat st;
    if (fstat(im->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        img_close(im);
        return err_status(errp, 0, "workspace image %s is not a regular file", image);
    }
    if (img_lock(im, image, errp) < 0) {
        img_close(im);
        return -1;
    }
    /* libext2fs's own unix_io opens without O_CLOEXEC; hand it a CLOEXEC
     * duplicate through the fd I/O manager instead (it closes it, also on
     * failure). */
    int dup = fcntl(im->fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0) {
        err_sys(errp, "dup");
        img_close(im);
        return -1;
    }
    char name[16];
    snprintf(name, sizeof(name), "%d", dup);
    int flags = EXT2_FLAG_64BITS | (rw ? EXT2_FLAG_RW : 0);
    errcode_t rc = ext2fs_open2(name, NULL, flags, 0, 0, unixfd_io_manager, &im->fs);
    if (rc) {
        im->fs = NULL;
        img_close(im);
        return err_status(errp, 0, "workspace image %s cannot be opened as ext4: %s", image,
                          ext2_msg(rc));
    }
    /* The superblock is guest-controlled: one claiming more blocks than the
     * image holds would let allocations grow the host file without bound. */
    if (ext2fs_blocks_count(im->fs->super) > (blk64_t)st.st_size / im->fs->blocksize) {
        img_close(im);
        return err_status(errp, 0,
                          "workspace image %s is damaged: its file system is larger "
                          "than the image",
                          image);
    }
    return 0;
}

/* Writes are refused on images the kernel left mid-transaction: libext2fs
 * does not replay journals, and writing around one would corrupt the file
 * system when the guest replays it at the next mount. */
static int img_writable(struct img *im, const char *image, struct err **errp)
{
    struct ext2_super_block *sb = im->fs->super;
    if (ext2fs_has_feature_journal_needs_recovery(sb))
        return err_status(errp, 409, "the workspace needs a journal replay; start the VM once");
    if (sb->s_state & EXT2_ERROR_FS)
        return err_status(errp, 409,
                          "the workspace file system is marked as damaged; writes are refused "
                          "(reads still work)");
    errcode_t rc = ext2fs_read_bitmaps(im->fs);
    if (rc)
        return fs_fail(errp, rc, "read bitmaps", image);
    return 0;
}

/* ---------- inodes ---------- */

static errcode_t inode_get(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *in)
{
    memset(in, 0, sizeof(*in));
    return ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)in, sizeof(*in));
}

static bool inode_has_extra(ext2_filsys fs, const struct ext2_inode_large *in, size_t end)
{
    return EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
           EXT2_GOOD_OLD_INODE_SIZE + (size_t)in->i_extra_isize >= end;
}

/* Seconds since the epoch, with the extra epoch bits of large inodes. */
static int64_t inode_mtime(ext2_filsys fs, const struct ext2_inode_large *in)
{
    int64_t s = (int32_t)in->i_mtime;
    if (inode_has_extra(fs, in, offsetof(struct ext2_inode_large, i_mtime_extra) + 4))
        s += (int64_t)(in->i_mtime_extra & EXT4_EPOCH_MASK) << 32;
    return s;
}

static uint32_t time_extra(const struct timespec *ts)
{
    int64_t epoch = ((int64_t)ts->tv_sec - (int32_t)ts->tv_sec) >> 32;
    return ((uint32_t)ts->tv_nsec << EXT4_EPOCH_BITS) | ((uint32_t)epoch & EXT4_EPOCH_MASK);
}

static void inode_set_times(ext2_filsys fs, struct ext2_inode_large *in)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint32_t sec = (uint32_t)now.tv_sec, extra = time_extra(&now);
    in->i_ctime = in->i_mtime = in->i_atime = sec;
    if (inode_has_extra(fs, in, offsetof(struct ext2_inode_large, i_atime_extra) + 4))
        in->i_ctime_extra = in->i_mtime_extra = in->i_atime_extra = extra;
}

/* A directory whose entries changed gets new mtime and ctime. */
static errcode_t dir_touch(ext2_filsys fs, ext2_ino_t dir)
{
    struct ext2_inode_large in;
    errcode_t rc = inode_get(fs, dir, &in);
    if (rc)
        return rc;
    inode_set_times(fs, &in);
    return ext2fs_write_inode_full(fs, dir, (struct ext2_inode *)&in, sizeof(in));
}

/* Reads a symlink's target (at most EXT4FS_PATH_MAX bytes) into buf. */
static int symlink_target(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *in, char *buf,
                          const char *shown, struct err **errp)
{
    uint64_t size = EXT2_I_SIZE(in);
    if (size == 0 || size >= EXT4FS_PATH_MAX)
        return err_status(errp, 400, "%s: symlink target is empty or too long", shown);
    if (ext2fs_is_fast_symlink((struct ext2_inode *)in)) {
        if (size >= sizeof(in->i_block))
            return err_status(errp, 0, "%s: damaged symlink", shown);
        memcpy(buf, in->i_block, size);
    } else {
        ext2_file_t f;
        errcode_t rc = ext2fs_file_open2(fs, ino, (struct ext2_inode *)in, 0, &f);
        if (rc)
            return fs_fail(errp, rc, "read symlink", shown);
        unsigned int got = 0;
        rc = ext2fs_file_read(f, buf, (unsigned int)size, &got);
        ext2fs_file_close(f);
        if (rc || got != size)
            return fs_fail(errp, rc ? rc : EXT2_ET_SHORT_READ, "read symlink", shown);
    }
    buf[size] = '\0';
    if (strlen(buf) != size)
        return err_status(errp, 400, "%s: symlink target contains a NUL byte", shown);
    return 0;
}

/* Inode flags the host must respect: it cannot produce encrypted names or
 * data, case-folded names or fs-verity trees, and the guest's chattr +i / +a
 * bind root too. */
static int dir_check_writable(ext2_filsys fs, ext2_ino_t dir, const char *shown, struct err **errp)
{
    struct ext2_inode_large in;
    errcode_t rc = inode_get(fs, dir, &in);
    if (rc)
        return fs_fail(errp, rc, "read inode", shown);
    if (in.i_flags & (EXT4_ENCRYPT_FL | EXT4_CASEFOLD_FL))
        return err_status(errp, 400,
                          "%s: cannot create entries in an encrypted or case-insensitive "
                          "directory from the host; start the VM to do it",
                          shown);
    if (in.i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL))
        return err_status(errp, 409, "%s: a parent directory is immutable or append-only", shown);
    return 0;
}

static int file_check(const struct ext2_inode_large *in, bool write, const char *shown,
                      struct err **errp)
{
    if (in->i_flags & EXT4_ENCRYPT_FL)
        return err_status(errp, 400, "%s: file is encrypted in the guest; start the VM to use it",
                          shown);
    if (write && (in->i_flags & EXT4_VERITY_FL))
        return err_status(errp, 400, "%s: file is protected by fs-verity and cannot be rewritten",
                          shown);
    if (write && (in->i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL)))
        return err_status(errp, 409, "%s: file is immutable or append-only (chattr in the guest)",
                          shown);
    return 0;
}

/* ---------- resolution ---------- */

enum { RES_FOLLOW_LAST = 1, RES_CREATE_DIRS = 2 };

struct res {
    ext2_ino_t parent; /* directory holding `name`; 0 when the path ended on a directory */
    ext2_ino_t ino;    /* 0 when `name` does not exist in `parent` */
    char name[EXT2_NAME_LEN + 1];
};

struct walk {
    ext2_filsys fs;
    const char *shown;
    int flags;
    int hops;
    ext2_ino_t *dirs; /* directories from the root down to the current one */
    size_t ndirs, cap;
    char *rest; /* components still to resolve */
    size_t pos;
};

static int walk_push(struct walk *w, ext2_ino_t ino, struct err **errp)
{
    if (w->ndirs == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        ext2_ino_t *d = realloc(w->dirs, cap * sizeof(*d));
        if (!d)
            return err_set(errp, ENOMEM, "out of memory");
        w->dirs = d;
        w->cap = cap;
    }
    w->dirs[w->ndirs++] = ino;
    return 0;
}

/* Next component of w->rest into name (skipping empty and "."); returns 1
 * with *last telling whether nothing but slashes and dots follows, 0 at the
 * end, -1 on an over-long name. */
static int walk_next(struct walk *w, char *name, bool *last)
{
    const char *p = w->rest + w->pos;
    for (;;) {
        p += strspn(p, "/");
        size_t c = strcspn(p, "/");
        if (c == 0) {
            w->pos = (size_t)(p - w->rest);
            return 0;
        }
        if (c == 1 && p[0] == '.') {
            p += 1;
            continue;
        }
        if (c > EXT2_NAME_LEN)
            return -1;
        memcpy(name, p, c);
        name[c] = '\0';
        p += c;
        w->pos = (size_t)(p - w->rest);
        const char *q = p;
        while (*q == '/' || (*q == '.' && (q[1] == '/' || q[1] == '\0')))
            q++;
        *last = *q == '\0';
        return 1;
    }
}

/* Replaces the consumed part of w->rest with a symlink's target. */
static int walk_splice(struct walk *w, ext2_ino_t ino, struct ext2_inode_large *in,
                       struct err **errp)
{
    if (++w->hops > EXT4FS_MAX_SYMLINKS)
        return err_status(errp, 400, "%s: too many levels of symbolic links", w->shown);
    char target[EXT4FS_PATH_MAX];
    if (symlink_target(w->fs, ino, in, target, w->shown, errp) < 0)
        return -1;
    if (target[0] == '/')
        return err_status(errp, 403, "%s", escape_msg);
    const char *tail = w->rest + w->pos;
    size_t n = strlen(target) + strlen(tail) + 2;
    char *r = malloc(n);
    if (!r)
        return err_set(errp, ENOMEM, "out of memory");
    snprintf(r, n, "%s/%s", target, tail);
    free(w->rest);
    w->rest = r;
    w->pos = 0;
    return 0;
}

static int walk_mkdir(struct walk *w, const char *name, ext2_ino_t *ino, struct err **errp)
{
    ext2_ino_t parent = w->dirs[w->ndirs - 1];
    if (dir_check_writable(w->fs, parent, w->shown, errp) < 0)
        return -1;
    errcode_t rc = ext2fs_mkdir(w->fs, parent, 0, name);
    if (rc == EXT2_ET_DIR_NO_SPACE) {
        rc = ext2fs_expand_dir(w->fs, parent);
        if (!rc)
            rc = ext2fs_mkdir(w->fs, parent, 0, name);
    }
    if (!rc)
        rc = ext2fs_lookup(w->fs, parent, name, (int)strlen(name), NULL, ino);
    if (!rc)
        rc = dir_touch(w->fs, parent);
    if (rc)
        return fs_fail(errp, rc, "create directory", w->shown);
    return 0;
}

/* One component `name` in the current directory. Returns 1 when the walk is
 * done (*out filled), 0 to go on, -1 on error. */
static int walk_step(struct walk *w, const char *name, bool last, struct res *out,
                     struct err **errp)
{
    ext2_ino_t cur = w->dirs[w->ndirs - 1], ino = 0;
    if (strcmp(name, "..") == 0) {
        if (w->ndirs == 1)
            return err_status(errp, 403, "%s", escape_msg);
        w->ndirs--;
        return 0;
    }
    errcode_t rc = ext2fs_lookup(w->fs, cur, name, (int)strlen(name), NULL, &ino);
    if (rc == EXT2_ET_FILE_NOT_FOUND) {
        if (last) {
            *out = (struct res){.parent = cur, .ino = 0};
            str_copy(out->name, sizeof(out->name), name);
            return 1;
        }
        if (!(w->flags & RES_CREATE_DIRS))
            return err_status(errp, 404, "%s: no such file or directory", w->shown);
        if (walk_mkdir(w, name, &ino, errp) < 0)
            return -1;
        return walk_push(w, ino, errp);
    }
    if (rc)
        return fs_fail(errp, rc, "lookup", w->shown);
    struct ext2_inode_large in;
    if ((rc = inode_get(w->fs, ino, &in)))
        return fs_fail(errp, rc, "read inode", w->shown);
    if (LINUX_S_ISLNK(in.i_mode) && (!last || (w->flags & RES_FOLLOW_LAST)))
        return walk_splice(w, ino, &in, errp);
    if (last) {
        *out = (struct res){.parent = cur, .ino = ino};
        str_copy(out->name, sizeof(out->name), name);
        return 1;
    }
    if (!LINUX_S_ISDIR(in.i_mode))
        return err_status(errp, 400, "%s: not a directory", w->shown);
    return walk_push(w, ino, errp);
}

/* Resolves rel inside the image, confined to its root (see ext4fs.h). */
static int resolve(ext2_filsys fs, const struct wpath *wp, int flags, struct res *out,
                   struct err **errp)
{
    struct walk w = {.fs = fs, .shown = wp->shown, .flags = flags};
    int rc = -1;
    w.rest = strdup(wp->rel);
    if (!w.rest) {
        err_set(errp, ENOMEM, "out of memory");
        goto out;
    }
    if (walk_push(&w, EXT2_ROOT_INO, errp) < 0)
        goto out;
    for (;;) {
        char name[EXT2_NAME_LEN + 1];
        bool last = false;
        int n = walk_next(&w, name, &last);
        if (n < 0) {
            err_status(errp, 400, "%s: file name too long", wp->shown);
            goto out;
        }
        if (n == 0) {
            *out = (struct res){.parent = 0, .ino = w.dirs[w.ndirs - 1]};
            rc = 0;
            goto out;
        }
        int s = walk_step(&w, name, last, out, errp);
        if (s != 0) {
            rc = s > 0 ? 0 : -1;
            goto out;
        }
    }
out:
    free(w.dirs);
    free(w.rest);
    return rc;
}

/* ---------- list ---------- */

struct dent {
    char *name;
    ext2_ino_t ino;
};

struct dvec {
    struct dent *v;
    size_t n, cap, limit;
    bool more; /* stopped at limit */
    bool oom;
};

static void dvec_free(struct dvec *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].name);
    free(d->v);
}

static int collect_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
                      int blocksize, char *buf, void *priv)
{
    struct dvec *d = priv;
    int len = ext2fs_dirent_name_len(de);
    if (de->inode == 0 || (len == 1 && de->name[0] == '.') ||
        (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
        return 0;
    if (d->n >= d->limit) {
        d->more = true;
        return DIRENT_ABORT;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        struct dent *v = realloc(d->v, cap * sizeof(*v));
        if (!v)
            goto oom;
        d->v = v;
        d->cap = cap;
    }
    char *name = strndup(de->name, (size_t)len);
    if (!name)
        goto oom;
    d->v[d->n++] = (struct dent){name, de->inode};
    return 0;
oom:
    d->oom = true;
    return DIRENT_ABORT;
}

static int dent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

struct lister {
    ext2_filsys fs;
    size_t left;
    bool truncated;
};

static const char *type_name(uint16_t mode)
{
    return LINUX_S_ISREG(mode)   ? "file"
           : LINUX_S_ISDIR(mode) ? "dir"
           : LINUX_S_ISLNK(mode) ? "symlink"
                                 : "other";
}

/* One listing entry; names that are not UTF-8 get U+FFFD substitutes. */
static json_t *entry_json(struct lister *l, const char *dirpath, const struct dent *e,
                          const struct ext2_inode_large *in)
{
    size_t nlen = 0;
    _cleanup_free_ char *name = utf8_sanitize(e->name, strlen(e->name), &nlen);
    if (!name)
        return NULL;
    size_t plen = strlen(dirpath) + nlen + 2;
    _cleanup_free_ char *path = malloc(plen);
    if (!path)
        return NULL;
    snprintf(path, plen, "%s/%s", dirpath, name);
    return json_pack("{s:s%, s:s, s:s, s:I, s:I}", "name", name, nlen, "path", path, "type",
                     type_name(in->i_mode), "size", (json_int_t)EXT2_I_SIZE(in), "mtime",
                     (json_int_t)inode_mtime(l->fs, in));
}

static int list_dir(struct lister *l, ext2_ino_t dir, const char *dirpath, int depth, json_t *arr,
                    struct err **errp);

static int list_entry(struct lister *l, const char *dirpath, const struct dent *e, int depth,
                      json_t *arr, struct err **errp)
{
    struct ext2_inode_large in;
    if (inode_get(l->fs, e->ino, &in))
        return 0; /* an unreadable entry is left out, as the guest agent does */
    json_t *obj = entry_json(l, dirpath, e, &in);
    if (!obj || json_array_append_new(arr, obj) < 0)
        return err_set(errp, ENOMEM, "out of memory");
    l->left--;
    if (!LINUX_S_ISDIR(in.i_mode) || depth <= 1)
        return 0;
    json_t *kids = json_array();
    if (!kids || json_object_set_new(obj, "children", kids) < 0)
        return err_set(errp, ENOMEM, "out of memory");
    if (in.i_flags & EXT4_ENCRYPT_FL)
        return 0; /* names are ciphertext: nothing useful to show */
    return list_dir(l, e->ino, json_string_value(json_object_get(obj, "path")), depth - 1, kids,
                    errp);
}

static int list_dir(struct lister *l, ext2_ino_t dir, const char *dirpath, int depth, json_t *arr,
                    struct err **errp)
{
    struct dvec d = {.limit = l->left};
    errcode_t rc = ext2fs_dir_iterate2(l->fs, dir, 0, NULL, collect_cb, &d);
    int ret = 0;
    if (d.oom)
        ret = err_set(errp, ENOMEM, "out of memory");
    else if (rc)
        ret = fs_fail(errp, rc, "read directory", dirpath);
    if (d.more)
        l->truncated = true;
    if (ret == 0 && d.n > 1)
        qsort(d.v, d.n, sizeof(*d.v), dent_cmp);
    for (size_t i = 0; ret == 0 && i < d.n; i++) {
        if (l->left == 0) {
            l->truncated = true;
            break;
        }
        ret = list_entry(l, dirpath, &d.v[i], depth, arr, errp);
    }
    dvec_free(&d);
    return ret;
}

static int list_root(ext2_filsys fs, const struct wpath *wp, int depth, size_t max_entries,
                     json_t **entries, bool *truncated, struct err **errp)
{
    struct res r;
    struct ext2_inode_large in;
    errcode_t rc;
    if (resolve(fs, wp, RES_FOLLOW_LAST, &r, errp) < 0)
        return -1;
    if (r.ino == 0)
        return err_status(errp, 404, "%s: no such file or directory", wp->shown);
    if ((rc = inode_get(fs, r.ino, &in)))
        return fs_fail(errp, rc, "read inode", wp->shown);
    if (!LINUX_S_ISDIR(in.i_mode))
        return err_status(errp, 400, "%s: not a directory", wp->shown);
    if (file_check(&in, false, wp->shown, errp) < 0)
        return -1;
    struct lister l = {.fs = fs, .left = max_entries ? max_entries : EXT4FS_LIST_MAX};
    json_t *arr = json_array();
    if (!arr)
        return err_set(errp, ENOMEM, "out of memory");
    if (list_dir(&l, r.ino, wp->shown, depth, arr, errp) < 0) {
        json_decref(arr);
        return -1;
    }
    *entries = arr;
    if (truncated)
        *truncated = l.truncated;
    return 0;
}

int ext4fs_list(const char *image, const char *path, int depth, size_t max_entries,
                json_t **entries, bool *truncated, struct err **errp)
{
    *entries = NULL;
    if (truncated)
        *truncated = false;
    if (depth < 1 || depth > EXT4FS_DEPTH_MAX)
        return err_status(errp, 400, "depth must be between 1 and %d", EXT4FS_DEPTH_MAX);
    struct wpath wp;
    if (wpath_parse(path, &wp, errp) < 0)
        return -1;
    struct img im;
    int ret = -1;
    if (img_open(&im, image, false, errp) == 0) {
        ret = list_root(im.fs, &wp, depth, max_entries, entries, truncated, errp);
        img_close(&im);
    }
    wpath_free(&wp);
    return ret;
}

/* ---------- read ---------- */

static int read_content(ext2_filsys fs, ext2_ino_t ino, size_t size, uint8_t **data, size_t *len,
                        const char *shown, struct err **errp)
{
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        return err_set(errp, ENOMEM, "out of memory");
    ext2_file_t f;
    errcode_t rc = ext2fs_file_open(fs, ino, 0, &f);
    if (rc) {
        free(buf);
        return fs_fail(errp, rc, "open", shown);
    }
    size_t off = 0;
    while (!rc && off < size) {
        unsigned int got = 0;
        rc = ext2fs_file_read(f, buf + off, (unsigned int)MIN(size - off, (size_t)IO_CHUNK), &got);
        if (!rc && got == 0)
            rc = EXT2_ET_SHORT_READ;
        off += got;
    }
    ext2fs_file_close(f);
    if (rc) {
        free(buf);
        return fs_fail(errp, rc, "read", shown);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return 0;
}

/* Loads the inode of a file to read or rewrite: regular, flags allowing it. */
static int regular_file(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *in, bool write,
                        const char *shown, struct err **errp)
{
    errcode_t rc = inode_get(fs, ino, in);
    if (rc)
        return fs_fail(errp, rc, "read inode", shown);
    if (LINUX_S_ISDIR(in->i_mode))
        return err_status(errp, 400, "%s: is a directory", shown);
    if (!LINUX_S_ISREG(in->i_mode))
        return err_status(errp, 400, "%s: not a regular file", shown);
    return file_check(in, write, shown, errp);
}

/* The regular file a read resolves to, checked against the cap. */
static int read_target(ext2_filsys fs, const struct res *r, size_t max_bytes, size_t *size,
                       const char *shown, struct err **errp)
{
    struct ext2_inode_large in;
    if (r->ino == 0)
        return err_status(errp, 404, "%s: no such file or directory", shown);
    if (regular_file(fs, r->ino, &in, false, shown, errp) < 0)
        return -1;
    if (EXT2_I_SIZE(&in) > max_bytes)
        return err_status(errp, 413,
                          "%s: file is larger than the transfer limit (%llu > %zu bytes)", shown,
                          (unsigned long long)EXT2_I_SIZE(&in), max_bytes);
    *size = (size_t)EXT2_I_SIZE(&in);
    return 0;
}

int ext4fs_read(const char *image, const char *path, size_t max_bytes, uint8_t **data, size_t *len,
                struct err **errp)
{
    *data = NULL;
    *len = 0;
    struct wpath wp;
    if (wpath_parse(path, &wp, errp) < 0)
        return -1;
    struct img im;
    struct res r;
    size_t size = 0;
    int ret = -1;
    if (img_open(&im, image, false, errp) < 0)
        goto out;
    if (resolve(im.fs, &wp, RES_FOLLOW_LAST, &r, errp) == 0 &&
        read_target(im.fs, &r, max_bytes, &size, wp.shown, errp) == 0)
        ret = read_content(im.fs, r.ino, size, data, len, wp.shown, errp);
    img_close(&im);
out:
    wpath_free(&wp);
    return ret;
}

/* ---------- write ---------- */

static errcode_t link_entry(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino,
                            int type)
{
    errcode_t rc = ext2fs_link(fs, dir, name, ino, type);
    if (rc == EXT2_ET_DIR_NO_SPACE) {
        rc = ext2fs_expand_dir(fs, dir);
        if (!rc)
            rc = ext2fs_link(fs, dir, name, ino, type);
    }
    return rc;
}

/* Gives up a freshly allocated inode whose directory entry could not be made. */
static void inode_release(ext2_filsys fs, ext2_ino_t ino)
{
    struct ext2_inode_large in;
    if (inode_get(fs, ino, &in) == 0) {
        in.i_links_count = 0;
        in.i_dtime = (uint32_t)time(NULL);
        ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&in, sizeof(in));
    }
    ext2fs_inode_alloc_stats2(fs, ino, -1, 0);
}

static int create_file(ext2_filsys fs, const struct res *r, ext2_ino_t *ino, const char *shown,
                       struct err **errp)
{
    errcode_t rc = ext2fs_new_inode(fs, r->parent, LINUX_S_IFREG | 0644, NULL, ino);
    if (rc)
        return fs_fail(errp, rc, "allocate inode", shown);
    struct ext2_inode in = {.i_mode = LINUX_S_IFREG | 0644, .i_links_count = 1};
    if (ext2fs_has_feature_extents(fs->super)) {
        /* An empty extent tree header in i_block, as the kernel expects. */
        ext2_extent_handle_t h;
        in.i_flags |= EXT4_EXTENTS_FL;
        rc = ext2fs_extent_open2(fs, *ino, &in, &h);
        if (rc)
            return fs_fail(errp, rc, "create extent tree", shown);
        ext2fs_extent_free(h);
    }
    if ((rc = ext2fs_write_new_inode(fs, *ino, &in)))
        return fs_fail(errp, rc, "write inode", shown);
    ext2fs_inode_alloc_stats2(fs, *ino, +1, 0);
    if ((rc = link_entry(fs, r->parent, r->name, *ino, EXT2_FT_REG_FILE))) {
        inode_release(fs, *ino);
        return fs_fail(errp, rc, "add directory entry", shown);
    }
    return 0;
}

static blk64_t free_blocks(ext2_filsys fs)
{
    blk64_t n = 0;
    for (dgrp_t g = 0; g < fs->group_desc_count; g++)
        n += ext2fs_bg_free_blocks_count(fs, g);
    return n;
}

/* Refuses a write that cannot fit (data blocks plus extent tree blocks plus a
 * little slack for new directories), counting the blocks a truncation frees. */
static int space_check(ext2_filsys fs, struct ext2_inode_large *old, size_t len, const char *shown,
                       struct err **errp)
{
    blk64_t bs = fs->blocksize;
    blk64_t need = ((blk64_t)len + bs - 1) / bs;
    need += need / ((bs - 12) / 12) + 8;
    blk64_t have = free_blocks(fs);
    if (old)
        have += ext2fs_get_stat_i_blocks(fs, (struct ext2_inode *)old) / (bs / 512);
    if (need > have)
        return err_status(
            errp, 413, "%s: not enough space in the workspace (%llu KiB needed, %llu KiB free)",
            shown, (unsigned long long)(need * bs / 1024), (unsigned long long)(have * bs / 1024));
    return 0;
}

/* Truncates to zero. libext2fs 1.47 drops an inline-data file's system.data
 * attribute but keeps its INLINE_DATA flag, which e2fsck rejects and the next
 * write trips over ("Insufficient space to store extended attribute data"):
 * put back an empty attribute. */
static errcode_t truncate_file(ext2_filsys fs, ext2_ino_t ino)
{
    ext2_file_t f;
    errcode_t rc = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &f);
    if (rc)
        return rc;
    rc = ext2fs_file_set_size2(f, 0);
    errcode_t crc = ext2fs_file_close(f);
    if (rc || crc)
        return rc ? rc : crc;
    struct ext2_inode_large in;
    if ((rc = inode_get(fs, ino, &in)))
        return rc;
    if (in.i_flags & EXT4_INLINE_DATA_FL)
        rc = ext2fs_inline_data_init(fs, ino);
    return rc;
}

static int write_content(ext2_filsys fs, ext2_ino_t ino, const uint8_t *data, size_t len,
                         const char *shown, struct err **errp)
{
    errcode_t rc = truncate_file(fs, ino);
    if (rc)
        return fs_fail(errp, rc, "truncate", shown);
    ext2_file_t f;
    if ((rc = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &f)))
        return fs_fail(errp, rc, "open", shown);
    size_t off = 0;
    while (!rc && off < len) {
        unsigned int put = 0;
        rc = ext2fs_file_write(f, data + off, (unsigned int)MIN(len - off, (size_t)IO_CHUNK), &put);
        if (!rc && put == 0)
            rc = EXT2_ET_SHORT_WRITE;
        off += put;
    }
    if (!rc)
        rc = ext2fs_file_set_size2(f, (ext2_off64_t)len);
    errcode_t crc = ext2fs_file_close(f);
    if (rc || crc) {
        truncate_file(fs, ino); /* give the blocks back rather than keep half a file */
        return fs_fail(errp, rc ? rc : crc, "write", shown);
    }
    return 0;
}

/* Permission bits, root ownership, times now. */
static int set_attrs(ext2_filsys fs, ext2_ino_t ino, mode_t mode, const char *shown,
                     struct err **errp)
{
    struct ext2_inode_large in;
    errcode_t rc = inode_get(fs, ino, &in);
    if (rc)
        return fs_fail(errp, rc, "read inode", shown);
    in.i_mode = (uint16_t)((in.i_mode & LINUX_S_IFMT) | (mode & 07777));
    in.i_uid = in.i_gid = 0;
    in.osd2.linux2.l_i_uid_high = in.osd2.linux2.l_i_gid_high = 0;
    inode_set_times(fs, &in);
    if ((rc = ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&in, sizeof(in))))
        return fs_fail(errp, rc, "write inode", shown);
    return 0;
}

static int write_resolved(ext2_filsys fs, const struct res *r, const uint8_t *data, size_t len,
                          mode_t mode, const char *shown, struct err **errp)
{
    ext2_ino_t ino = r->ino;
    if (ino) {
        struct ext2_inode_large in;
        if (regular_file(fs, ino, &in, true, shown, errp) < 0 ||
            space_check(fs, &in, len, shown, errp) < 0)
            return -1;
    } else {
        if (dir_check_writable(fs, r->parent, shown, errp) < 0 ||
            space_check(fs, NULL, len, shown, errp) < 0 ||
            create_file(fs, r, &ino, shown, errp) < 0)
            return -1;
        errcode_t rc = dir_touch(fs, r->parent);
        if (rc)
            return fs_fail(errp, rc, "update directory", shown);
    }
    if (write_content(fs, ino, data, len, shown, errp) < 0)
        return -1;
    return set_attrs(fs, ino, mode ? mode : 0644, shown, errp);
}

/* Resolves a write's target; missing directories are created only once the
 * data is known to fit, so a refused write leaves no trace. */
static int write_resolve(ext2_filsys fs, const struct wpath *wp, size_t len, struct res *r,
                         struct err **errp)
{
    struct err *e = NULL;
    if (resolve(fs, wp, RES_FOLLOW_LAST, r, &e) == 0)
        return 0;
    if (e->status != 404) {
        err_move(errp, &e);
        return -1;
    }
    err_free(e);
    if (space_check(fs, NULL, len, wp->shown, errp) < 0)
        return -1;
    return resolve(fs, wp, RES_FOLLOW_LAST | RES_CREATE_DIRS, r, errp);
}

int ext4fs_write(const char *image, const char *path, const uint8_t *data, size_t len, mode_t mode,
                 struct err **errp)
{
    struct wpath wp;
    if (wpath_parse(path, &wp, errp) < 0)
        return -1;
    struct img im;
    int ret = -1;
    if (img_open(&im, image, true, errp) < 0)
        goto out;
    struct res r;
    if (img_writable(&im, image, errp) == 0 && write_resolve(im.fs, &wp, len, &r, errp) == 0)
        ret = write_resolved(im.fs, &r, data, len, mode, wp.shown, errp);
    /* Flush also after a failure: blocks allocated so far are referenced and
     * must reach the on-disk bitmaps. */
    if (ret == 0)
        ret = img_finish(&im, image, errp);
    else
        img_close(&im);
out:
    wpath_free(&wp);
    return ret;
}
