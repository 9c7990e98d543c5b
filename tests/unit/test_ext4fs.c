/* Unit tests for vm/ext4fs: images are built here with mke2fs -d from a
 * populated temporary directory, then listed, read and written through
 * libext2fs; e2fsck -fn must find them clean afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/util.h"
#include "tap.h"
#include "vm/ext4fs.h"

#define FIXED_TIME 1700000000
#define BIN_SIZE   (1024 * 1024)
/* 129 bytes: too long for the inode, stored in a data block ("slow"). */
#define LONG_TARGET                                                                                \
    "././././././././././././././././././././././././././././././././././././././././././././././" \
    "././././././././././././././dir/a.txt"

static char tmp[256];
static char srcdir[300];
static char image[300];

/* ---------- helpers ---------- */

/* Runs argv (PATH, then /usr/sbin and /sbin), stdout and stderr to
 * /dev/null unless verbose; returns the exit status or -1. */
static int run(char *const argv[], bool quiet)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setenv("E2FSPROGS_FAKE_TIME", "1700000000", 1);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0 && quiet) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[0], argv);
        char path[128];
        snprintf(path, sizeof(path), "/usr/sbin/%s", argv[0]);
        execv(path, argv);
        snprintf(path, sizeof(path), "/sbin/%s", argv[0]);
        execv(path, argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int fsck_clean(void)
{
    char *argv[] = {"e2fsck", "-fn", image, NULL};
    return run(argv, true);
}

static void put_file(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", srcdir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || fd_write_all(fd, data, len) < 0)
        diag("cannot write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void put_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", srcdir, rel);
    if (mkdir(path, 0755) < 0)
        diag("mkdir %s: %s", path, strerror(errno));
}

static void put_link(const char *rel, const char *target)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", srcdir, rel);
    if (symlink(target, path) < 0)
        diag("symlink %s: %s", path, strerror(errno));
}

static uint8_t *bin_data(void)
{
    uint8_t *b = malloc(BIN_SIZE);
    uint32_t x = 12345;
    for (size_t i = 0; i < BIN_SIZE; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (uint8_t)(x >> 16);
    }
    return b;
}

/* Every entry below srcdir gets FIXED_TIME as mtime (symlinks too). */
static void fix_times(const char *dir)
{
    static const char *const rels[] = {
        "hello.txt",  "bin.dat",  "dir",   "dir/a.txt", "dir/sub", "dir/sub/b.txt",
        "dir/sub/up", "dir/esc2", "empty", "etc_link",  "escape",  "good",
        "goodfile",   "longlink", "loop1", "loop2",     "pipe",    ".",
    };
    struct timespec ts[2] = {{FIXED_TIME, 0}, {FIXED_TIME, 0}};
    for (size_t i = 0; i < ARRAY_SIZE(rels); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, rels[i]);
        utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
    }
}

static int run_mkfs(const char *block_size, const char *features)
{
    char *trunc[] = {"truncate", "-s", "64M", image, NULL};
    char *mkfs[] = {"mke2fs",         "-q", "-F",   "-t",  "ext4", "-b", (char *)block_size, "-O",
                    (char *)features, "-d", srcdir, image, NULL};
    if (run(trunc, false) != 0 || run(mkfs, false) != 0)
        return -1;
    return 0;
}

/* Workspace images are GiBs, so mke2fs picks 4 KiB blocks; a 64 MiB test
 * image would get 1 KiB blocks unless told (test_small_blocks covers those). */
static int build_image(const char *name, const char *block_size, const char *features)
{
    snprintf(srcdir, sizeof(srcdir), "%s/src", tmp);
    snprintf(image, sizeof(image), "%s/%s", tmp, name);
    if (mkdir(srcdir, 0755) < 0)
        return run_mkfs(block_size, features);
    put_file("hello.txt", "hello world\n", 12);
    uint8_t *bin = bin_data();
    put_file("bin.dat", bin, BIN_SIZE);
    free(bin);
    put_dir("dir");
    put_file("dir/a.txt", "alpha", 5);
    put_dir("dir/sub");
    put_file("dir/sub/b.txt", "beta!", 5);
    put_link("dir/sub/up", "../a.txt");
    put_link("dir/esc2", "../../x");
    put_dir("empty");
    put_link("etc_link", "/etc");
    put_link("escape", "../..");
    put_link("good", "dir/sub");
    put_link("goodfile", "dir/a.txt");
    put_link("longlink", LONG_TARGET);
    put_link("loop1", "loop2");
    put_link("loop2", "loop1");
    char fifo[512];
    snprintf(fifo, sizeof(fifo), "%s/pipe", srcdir);
    mkfifo(fifo, 0644);
    fix_times(srcdir);
    return run_mkfs(block_size, features);
}

/* Listing as text: "path type size mtime[+]" per line, "+" marking entries
 * that carry a children array, children right after their parent. */
static void render(struct buf *b, json_t *arr)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        json_t *kids = json_object_get(e, "children");
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *path = json_string_value(json_object_get(e, "path"));
        json_int_t mtime = json_integer_value(json_object_get(e, "mtime"));
        bool fixed = mtime == FIXED_TIME;
        buf_printf(b, "%s %s %lld %s%s\n", path, json_string_value(json_object_get(e, "type")),
                   (long long)json_integer_value(json_object_get(e, "size")), fixed ? "T" : "now",
                   kids ? "+" : "");
        if (!name || !path || !str_has_suffix(path, name))
            buf_printf(b, "BAD NAME %s\n", name ? name : "(null)");
        if (kids)
            render(b, kids);
    }
}

static char *list_text(const char *path, int depth, size_t max, bool *truncated, int *status)
{
    json_t *arr = NULL;
    struct err *e = NULL;
    *status = 200;
    if (ext4fs_list(image, path, depth, max, &arr, truncated, &e) < 0) {
        *status = e->status ? e->status : 500;
        err_free(e);
        return NULL;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    render(&b, arr);
    json_decref(arr);
    char *s = buf_steal_str(&b);
    buf_free(&b);
    return s;
}

static int read_status(const char *path, size_t max, char **msg)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct err *e = NULL;
    if (ext4fs_read(image, path, max, &data, &len, &e) == 0) {
        free(data);
        return 200;
    }
    int st = e->status ? e->status : 500;
    if (msg)
        *msg = strdup(e->msg);
    err_free(e);
    return st;
}

static int write_status(const char *path, const void *data, size_t len, mode_t mode, char **msg)
{
    struct err *e = NULL;
    if (ext4fs_write(image, path, data, len, mode, &e) == 0)
        return 200;
    int st = e->status ? e->status : 500;
    if (msg)
        *msg = strdup(e->msg);
    err_free(e);
    return st;
}

static bool read_is(const char *path, const void *want, size_t wlen, const char *what)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct err *e = NULL;
    if (ext4fs_read(image, path, 16u << 20, &data, &len, &e) < 0) {
        diag("read %s: %s", path, err_msg(e));
        err_free(e);
        return ok(false, "%s", what);
    }
    bool pass = is_mem(data, len, want, wlen, "%s", what);
    if (pass && data[len] != '\0')
        pass = ok(false, "%s: NUL terminated", what);
    free(data);
    return pass;
}

/* ---------- tests ---------- */

static const char depth1[] = "/root/bin.dat file 1048576 T\n"
                             "/root/dir dir 4096 T\n"
                             "/root/empty dir 4096 T\n"
                             "/root/escape symlink 5 T\n"
                             "/root/etc_link symlink 4 T\n"
                             "/root/good symlink 7 T\n"
                             "/root/goodfile symlink 9 T\n"
                             "/root/hello.txt file 12 T\n"
                             "/root/longlink symlink 129 T\n"
                             "/root/loop1 symlink 5 T\n"
                             "/root/loop2 symlink 5 T\n"
                             "/root/lost+found dir 16384 T\n"
                             "/root/pipe other 0 T\n";

static const char depth2[] = "/root/bin.dat file 1048576 T\n"
                             "/root/dir dir 4096 T+\n"
                             "/root/dir/a.txt file 5 T\n"
                             "/root/dir/esc2 symlink 7 T\n"
                             "/root/dir/sub dir 4096 T\n"
                             "/root/empty dir 4096 T+\n"
                             "/root/escape symlink 5 T\n"
                             "/root/etc_link symlink 4 T\n"
                             "/root/good symlink 7 T\n"
                             "/root/goodfile symlink 9 T\n"
                             "/root/hello.txt file 12 T\n"
                             "/root/longlink symlink 129 T\n"
                             "/root/loop1 symlink 5 T\n"
                             "/root/loop2 symlink 5 T\n"
                             "/root/lost+found dir 16384 T+\n"
                             "/root/pipe other 0 T\n";

static void test_list(void)
{
    bool trunc = true;
    int st;
    char *t = list_text("/root", 1, 0, &trunc, &st);
    is_str(t, depth1, "list /root depth 1: exact entries");
    ok(!trunc, "list depth 1 not truncated");
    free(t);
    t = list_text(NULL, 2, 0, &trunc, &st);
    is_str(t, depth2, "list (default path) depth 2: exact entries, children only within depth");
    free(t);
    t = list_text("dir/", 6, 0, NULL, &st);
    is_str(t,
           "/root/dir/a.txt file 5 T\n/root/dir/esc2 symlink 7 T\n/root/dir/sub dir 4096 T+\n"
           "/root/dir/sub/b.txt file 5 T\n/root/dir/sub/up symlink 8 T\n",
           "list relative dir/ depth 6");
    free(t);
    t = list_text("/root/good", 1, 0, NULL, &st);
    is_str(t, "/root/good/b.txt file 5 T\n/root/good/up symlink 8 T\n",
           "list through a good relative symlink keeps the requested path");
    free(t);
    t = list_text("/root", 2, 3, &trunc, &st);
    is_str(t, "/root/bin.dat file 1048576 T\n/root/dir dir 4096 T+\n/root/dir/a.txt file 5 T\n",
           "list capped at 3 entries");
    ok(trunc, "capped list reports truncation");
    free(t);
    static const struct {
        const char *path;
        int depth, status;
    } bad[] = {
        {"/root", 0, 400},  {"/root", 7, 400},    {"hello.txt", 1, 400}, {"nope", 1, 404},
        {"/etc", 1, 403},   {"etc_link", 1, 403}, {"escape", 1, 403},    {"dir/../..", 1, 400},
        {"/rootx", 1, 403}, {"loop1", 1, 400},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        t = list_text(bad[i].path, bad[i].depth, 0, NULL, &st);
        is_int(st, bad[i].status, "list %s depth %d -> %d", bad[i].path, bad[i].depth,
               bad[i].status);
        free(t);
    }
}

static void test_read(void)
{
    read_is("/root/hello.txt", "hello world\n", 12, "read text file");
    read_is("dir/sub/b.txt", "beta!", 5, "read relative nested path");
    read_is("/root//dir/./a.txt", "alpha", 5, "read with // and . components");
    read_is("goodfile", "alpha", 5, "read through a final relative symlink");
    read_is("good/b.txt", "beta!", 5, "read through an intermediate symlink");
    read_is("dir/sub/up", "alpha", 5, "read through a symlink with .. inside the root");
    read_is("longlink", "alpha", 5, "read through a 129-byte (slow) symlink");
    uint8_t *bin = bin_data();
    read_is("bin.dat", bin, BIN_SIZE, "read 1 MiB binary file exactly");
    free(bin);
    uint8_t *d = NULL;
    size_t n = 0;
    struct err *e = NULL;
    is_int(ext4fs_read(image, "bin.dat", BIN_SIZE, &d, &n, &e), 0, "read at exactly max_bytes");
    free(d);
    err_free(e);
    char *msg = NULL;
    is_int(read_status("bin.dat", BIN_SIZE - 1, &msg), 413, "read over max_bytes is 413");
    ok(msg && strstr(msg, "larger than the transfer limit"), "413 message: %s", msg);
    free(msg);
    msg = NULL;
    is_int(read_status("etc_link/passwd", 1024, &msg), 403, "absolute symlink is 403");
    is_str(msg, "path escapes the workspace", "403 message is exact");
    free(msg);
    static const struct {
        const char *path;
        int status;
        const char *why;
    } bad[] = {
        {"missing.txt", 404, "missing file"},
        {"dir/nope/x", 404, "missing parent"},
        {"dir", 400, "directory"},
        {"/root", 400, "workspace root"},
        {"pipe", 400, "fifo"},
        {"hello.txt/x", 400, "file used as directory"},
        {"etc_link", 403, "final absolute symlink"},
        {"escape", 403, "final ../.. symlink"},
        {"escape/etc/passwd", 403, "../.. symlink in the middle"},
        {"dir/esc2", 403, "../../x symlink in a subdirectory"},
        {"good/../../../etc", 400, "'..' in the path"},
        {"../etc/passwd", 400, "leading '..'"},
        {"/root/../etc/passwd", 400, "'..' after /root"},
        {"/etc/passwd", 403, "absolute path outside /root"},
        {"loop1", 400, "symlink loop"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        is_int(read_status(bad[i].path, 1 << 20, NULL), bad[i].status, "read %s (%s) -> %d",
               bad[i].path, bad[i].why, bad[i].status);
    msg = NULL;
    read_status("loop1", 1024, &msg);
    ok(msg && strstr(msg, "too many levels of symbolic links"), "loop message: %s", msg);
    free(msg);
}

/* Mode and owner as the guest will see them, read with libext2fs directly. */
static void check_inode(const char *rel, unsigned mode, const char *what)
{
    ext2_filsys fs;
    ext2_ino_t ino = 0;
    struct ext2_inode in;
    if (ext2fs_open(image, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs)) {
        ok(false, "%s: open image", what);
        return;
    }
    errcode_t rc = ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, rel, &ino);
    if (!rc)
        rc = ext2fs_read_inode(fs, ino, &in);
    ok(!rc && (in.i_mode & 07777) == mode && LINUX_S_ISREG(in.i_mode) && in.i_uid == 0 &&
           in.i_gid == 0 && in.i_links_count == 1,
       "%s: mode %o, uid/gid 0", what, mode);
    ext2fs_close_free(&fs);
}

static void test_write(void)
{
    const char *txt = "written by the host\n";
    is_int(write_status("/root/new/deeper/file.txt", txt, strlen(txt), 0600, NULL), 200,
           "write into missing nested directories");
    read_is("new/deeper/file.txt", txt, strlen(txt), "new file reads back");
    check_inode("new/deeper/file.txt", 0600, "new file");
    int st;
    char *t = list_text("new", 2, 0, NULL, &st);
    is_str(t, "/root/new/deeper dir 4096 now+\n/root/new/deeper/file.txt file 20 now\n",
           "created directories and file listed with current times");
    free(t);
    is_int(fsck_clean(), 0, "e2fsck -fn clean after creating");

    size_t big = 300 * 1024 + 7;
    uint8_t *b = bin_data();
    is_int(write_status("hello.txt", b, big, 0, NULL), 200, "overwrite with longer content");
    read_is("hello.txt", b, big, "longer content reads back");
    check_inode("hello.txt", 0644, "mode 0 means 0644");
    is_int(write_status("hello.txt", "hi", 2, 0640, NULL), 200, "overwrite with shorter content");
    read_is("hello.txt", "hi", 2, "shorter content reads back");
    check_inode("hello.txt", 0640, "overwritten file");
    is_int(write_status("bin.dat", "", 0, 0644, NULL), 200, "truncate to empty");
    read_is("bin.dat", "", 0, "empty file reads back");
    is_int(write_status("bin.dat", b, BIN_SIZE, 0644, NULL), 200, "write 1 MiB back");
    read_is("bin.dat", b, BIN_SIZE, "1 MiB rewrite reads back");
    free(b);
    is_int(write_status("goodfile", "ALPHA", 5, 0644, NULL), 200, "write through a symlink");
    read_is("dir/a.txt", "ALPHA", 5, "symlink target was written");
    is_int(write_status("good/new.txt", "n", 1, 0644, NULL), 200,
           "write below an intermediate symlink");
    read_is("dir/sub/new.txt", "n", 1, "file landed in the symlink's target");
    is_int(fsck_clean(), 0, "e2fsck -fn clean after overwrites");

    static const struct {
        const char *path;
        int status;
        const char *why;
    } bad[] = {
        {"dir", 400, "directory"},
        {"/root", 400, "workspace root"},
        {"pipe", 400, "fifo"},
        {"etc_link/x", 403, "absolute symlink"},
        {"escape/x", 403, "../.. symlink"},
        {"dir/esc2", 403, "dangling escaping symlink"},
        {"../x", 400, "'..'"},
        {"/tmp/x", 403, "outside /root"},
        {"hello.txt/x", 400, "file as directory"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        is_int(write_status(bad[i].path, "x", 1, 0644, NULL), bad[i].status, "write %s (%s) -> %d",
               bad[i].path, bad[i].why, bad[i].status);
    ok(read_status("/root/x", 16, NULL) == 404, "refused writes created nothing at the root");
}

/* 200 long names overflow the first directory block several times. */
static void test_many(void)
{
    int fails = 0;
    for (int i = 0; i < 200; i++) {
        char path[128];
        snprintf(path, sizeof(path),
                 "many/file-%03d-with-a-fairly-long-name-to-fill-directory-blocks", i);
        if (write_status(path, path, strlen(path), 0644, NULL) != 200)
            fails++;
    }
    is_int(fails, 0, "200 files written into one new directory");
    bool trunc = true;
    json_t *arr = NULL;
    struct err *e = NULL;
    ext4fs_list(image, "many", 1, 0, &arr, &trunc, &e);
    is_int(json_array_size(arr), 200, "all 200 listed");
    const char *first = json_string_value(json_object_get(json_array_get(arr, 0), "name"));
    is_str(first, "file-000-with-a-fairly-long-name-to-fill-directory-blocks", "sorted by name");
    json_decref(arr);
    err_free(e);
    read_is("many/file-123-with-a-fairly-long-name-to-fill-directory-blocks",
            "many/file-123-with-a-fairly-long-name-to-fill-directory-blocks", 62,
            "one of them reads back");
    is_int(fsck_clean(), 0, "e2fsck -fn clean after expanding a directory");
}

static void test_full(void)
{
    size_t huge = 80u << 20;
    uint8_t *b = calloc(1, huge);
    char *msg = NULL;
    is_int(write_status("huge.bin", b, huge, 0644, &msg), 413, "write larger than free space: 413");
    ok(msg && strstr(msg, "not enough space"), "message: %s", msg);
    free(msg);
    free(b);
    is_int(read_status("huge.bin", 16, NULL), 404, "nothing created by the refused write");
    b = calloc(1, huge);
    is_int(write_status("hugedir/sub/huge.bin", b, huge, 0644, NULL), 413,
           "write into new directories larger than free space: 413");
    free(b);
    int st;
    free(list_text("hugedir", 1, 0, NULL, &st));
    is_int(st, 404, "no directories created by the refused write");
    is_int(fsck_clean(), 0, "e2fsck -fn clean after the refused write");
}

static void test_in_use(void)
{
    /* QEMU holds OFD locks in bytes 100..299 of an image it has open. */
    int fd = open(image, O_RDWR | O_CLOEXEC);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 101, .l_len = 1};
    ok(fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0, "simulate QEMU's image lock");
    char *msg = NULL;
    is_int(write_status("locked.txt", "x", 1, 0644, &msg), 409, "write to an image in use: 409");
    ok(msg && strstr(msg, "in use"), "message: %s", msg);
    free(msg);
    is_int(read_status("dir/a.txt", 16, NULL), 200, "reads still allowed");
    close(fd);
    is_int(write_status("locked.txt", "x", 1, 0644, NULL), 200, "write once the lock is gone");
}

static void set_needs_recovery(bool on)
{
    ext2_filsys fs;
    if (ext2fs_open(image, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs)) {
        diag("cannot open %s", image);
        return;
    }
    if (on)
        ext2fs_set_feature_journal_needs_recovery(fs->super);
    else
        ext2fs_clear_feature_journal_needs_recovery(fs->super);
    ext2fs_mark_super_dirty(fs);
    ext2fs_close_free(&fs);
}

static void test_journal(void)
{
    set_needs_recovery(true);
    char *msg = NULL;
    is_int(write_status("j.txt", "x", 1, 0644, &msg), 409, "write with a journal to replay: 409");
    is_str(msg, "the workspace needs a journal replay; start the VM once", "409 message");
    free(msg);
    read_is("dir/sub/b.txt", "beta!", 5, "still readable");
    int st;
    char *t = list_text("dir/sub", 1, 0, NULL, &st);
    is_int(st, 200, "still listable");
    free(t);
    set_needs_recovery(false);
    is_int(write_status("j.txt", "x", 1, 0644, NULL), 200, "writable after the replay");
}

static void test_bad_images(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/zero.img", tmp);
    char *trunc[] = {"truncate", "-s", "8M", path, NULL};
    run(trunc, false);
    json_t *arr = NULL;
    struct err *e = NULL;
    is_int(ext4fs_list(path, "/root", 1, 0, &arr, NULL, &e), -1, "not an ext4 image fails");
    ok(e && e->status == 0 && strstr(e->msg, "cannot be opened as ext4"), "message: %s",
       err_msg(e));
    ok(arr == NULL, "no entries on failure");
    err_freep(&e);
    snprintf(path, sizeof(path), "%s/missing.img", tmp);
    uint8_t *d = NULL;
    size_t n = 0;
    is_int(ext4fs_read(path, "x", 1, &d, &n, &e), -1, "missing image fails");
    ok(e && e->code == ENOENT, "ENOENT: %s", err_msg(e));
    err_freep(&e);
    is_int(ext4fs_write(image, "a/b", (const uint8_t *)"x", 1, 0644, NULL), 0, "errp may be NULL");
}

/* Flags and state the guest can set, applied with libext2fs directly. */
static void tweak(const char *rel, uint32_t set_flags, uint32_t clear_flags, int fs_state)
{
    ext2_filsys fs;
    if (ext2fs_open(image, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs)) {
        diag("cannot open %s", image);
        return;
    }
    ext2_ino_t ino = 0;
    struct ext2_inode in;
    if (rel && ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, rel, &ino) == 0 &&
        ext2fs_read_inode(fs, ino, &in) == 0) {
        in.i_flags = (in.i_flags | set_flags) & ~clear_flags;
        ext2fs_write_inode(fs, ino, &in);
    }
    if (fs_state >= 0) {
        fs->super->s_state = (uint16_t)fs_state;
        ext2fs_mark_super_dirty(fs);
    }
    ext2fs_close_free(&fs);
}

static void test_flags(void)
{
    char *msg = NULL;
    tweak("dir/a.txt", EXT2_IMMUTABLE_FL, 0, -1);
    is_int(write_status("dir/a.txt", "x", 1, 0644, &msg), 409, "immutable file: write 409");
    ok(msg && strstr(msg, "immutable"), "message: %s", msg);
    free(msg);
    read_is("dir/a.txt", "ALPHA", 5, "immutable file still readable");
    tweak("dir/a.txt", EXT2_APPEND_FL, EXT2_IMMUTABLE_FL, -1);
    is_int(write_status("dir/a.txt", "x", 1, 0644, NULL), 409, "append-only file: write 409");
    tweak("dir/a.txt", EXT4_ENCRYPT_FL, EXT2_APPEND_FL, -1);
    is_int(read_status("dir/a.txt", 64, NULL), 400, "encrypted file: read 400");
    tweak("dir/a.txt", 0, EXT4_ENCRYPT_FL, -1);
    tweak("empty", EXT2_IMMUTABLE_FL, 0, -1);
    is_int(write_status("empty/new", "x", 1, 0644, NULL), 409, "immutable directory: create 409");
    tweak("empty", EXT4_CASEFOLD_FL, EXT2_IMMUTABLE_FL, -1);
    is_int(write_status("empty/sub/new", "x", 1, 0644, NULL), 400,
           "case-insensitive directory: mkdir 400");
    tweak("empty", 0, EXT4_CASEFOLD_FL, -1);
    is_int(write_status("dir/a.txt", "alpha", 5, 0644, NULL), 200, "writable once flags clear");
    tweak(NULL, 0, 0, EXT2_VALID_FS | EXT2_ERROR_FS);
    is_int(write_status("dir/a.txt", "x", 1, 0644, &msg), 409, "file system with errors: 409");
    ok(msg && strstr(msg, "damaged"), "message: %s", msg);
    free(msg);
    read_is("dir/a.txt", "alpha", 5, "file system with errors still readable");
    tweak(NULL, 0, 0, EXT2_VALID_FS);
    is_int(fsck_clean(), 0, "e2fsck -fn clean after the flag games");
}

/* Writers and readers on worker threads at once: the OFD lock on byte 0
 * serialises them, so every write lands and the image stays consistent. */
static void *thread_main(void *arg)
{
    long id = (long)arg;
    long bad = 0;
    for (int j = 0; j < 15; j++) {
        char path[64];
        snprintf(path, sizeof(path), "threads/t%ld/f%d", id, j);
        if (id % 2 == 0 && write_status(path, path, strlen(path), 0644, NULL) != 200)
            bad++;
        if (id % 2 == 1 && read_status("dir/sub/b.txt", 64, NULL) != 200)
            bad++;
    }
    return (void *)bad;
}

static void test_threads(void)
{
    pthread_t t[8];
    long bad = 0;
    for (long i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    is_int(bad, 0, "4 writer and 4 reader threads: every call succeeded");
    int missing = 0;
    for (int i = 0; i < 8; i += 2)
        for (int j = 0; j < 15; j++) {
            char path[64];
            snprintf(path, sizeof(path), "threads/t%d/f%d", i, j);
            uint8_t *d = NULL;
            size_t n = 0;
            if (ext4fs_read(image, path, 64, &d, &n, NULL) < 0 || n != strlen(path) ||
                memcmp(d, path, n) != 0)
                missing++;
            free(d);
        }
    is_int(missing, 0, "all 60 files written by threads read back");
    is_int(fsck_clean(), 0, "e2fsck -fn clean after concurrent calls");
}

static int count_fds(void)
{
    int n = 0;
    char path[64];
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        if (access(path, F_OK) == 0)
            n++;
    }
    return n;
}

/* A file system claiming more blocks than its image file holds. */
static void test_shrunk(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/shrunk.img", tmp);
    char *cp[] = {"cp", "--sparse=always", image, path, NULL};
    char *trunc[] = {"truncate", "-s", "32M", path, NULL};
    ok(run(cp, false) == 0 && run(trunc, false) == 0, "shrunk copy made");
    struct err *e = NULL;
    is_int(ext4fs_write(path, "x", (const uint8_t *)"x", 1, 0644, &e), -1,
           "image smaller than its file system refused");
    ok(e && strstr(e->msg, "larger than the image"), "message: %s", err_msg(e));
    err_free(e);
}

/* The same source tree on a 1 KiB-block file system (mke2fs's choice for
 * small images: deeper extent trees for the same data) with inline_data
 * (small files and directories kept inside their inodes). */
static void test_small_blocks(void)
{
    ok(build_image("small.img", "1024", "inline_data") == 0, "1 KiB-block inline_data image built");
    int st;
    char *t = list_text("dir", 1, 0, NULL, &st);
    is_str(t, "/root/dir/a.txt file 5 T\n/root/dir/esc2 symlink 7 T\n/root/dir/sub dir 60 T\n",
           "inline directory listed");
    free(t);
    read_is("dir/a.txt", "alpha", 5, "inline file read");
    static const char grown[] = "grown past the inline area of a 256-byte inode, which holds "
                                "sixty bytes in i_block and some more in the xattr space, so "
                                "that these 181 bytes have to move out to a data block .......";
    is_int(write_status("dir/a.txt", grown, sizeof(grown) - 1, 0644, NULL), 200,
           "inline file grown");
    read_is("dir/a.txt", grown, sizeof(grown) - 1, "grown inline file reads back");
    is_int(write_status("dir/sub/c.txt", "c", 1, 0644, NULL), 200, "file added to an inline dir");
    read_is("dir/sub/c.txt", "c", 1, "reads back");
    uint8_t *b = bin_data();
    read_is("bin.dat", b, BIN_SIZE, "1 KiB blocks: read 1 MiB");
    is_int(write_status("a/b/c/big.bin", b, BIN_SIZE - 3, 0644, NULL), 200,
           "1 KiB blocks: write 1 MiB into new directories");
    read_is("a/b/c/big.bin", b, BIN_SIZE - 3, "1 KiB blocks: reads back");
    is_int(write_status("bin.dat", "short", 5, 0644, NULL), 200, "1 KiB blocks: overwrite shorter");
    read_is("bin.dat", "short", 5, "1 KiB blocks: shorter reads back");
    free(b);
    is_int(fsck_clean(), 0, "1 KiB blocks: e2fsck -fn clean");
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/capsem-ext4fs-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp) || build_image("workspace.img", "4096", "^inline_data") < 0) {
        printf("1..0 # SKIP cannot build a test image (mke2fs missing?)\n");
        return 0;
    }
    int fds = count_fds();
    is_int(fsck_clean(), 0, "fresh image is clean");
    test_list();
    test_read();
    test_write();
    test_many();
    test_full();
    test_in_use();
    test_journal();
    test_bad_images();
    test_flags();
    test_shrunk();
    test_threads();
    is_int(fsck_clean(), 0, "e2fsck -fn clean at the end");
    is_int(count_fds(), fds, "no file descriptors leaked");
    test_small_blocks();
    char *rm[] = {"rm", "-rf", tmp, NULL};
    run(rm, false);
    return done_testing();
}
