/* Installing and cleaning up guest asset versions; see assets_install.h. */
#include "vm/assets_install.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "vm/assets.h"

#define MANIFEST_MAX (1024u * 1024u)
#define COPY_CHUNK   (1u << 20)

enum place_how { PLACED_LINK = 1, PLACED_COPY = 2 };

/* ---------- small file-system helpers ---------- */

static int lock_dir(const char *dir, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(dir, ".lock");
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_sys(errp, "open %s", path);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            err_sys(errp, "lock %s", path);
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Removes path and everything under it (no symlinks followed). */
static int rm_tree_at(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > 16)
        return -1;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc |= rm_tree_at(dirfd(d), de->d_name, depth + 1);
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

static int rm_tree(const char *path)
{
    return rm_tree_at(AT_FDCWD, path, 0);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static json_t *load_json(const char *path, struct err **errp)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, MANIFEST_MAX, &text, &len, errp) < 0)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        err_status(errp, 400, "%s:%d: %s", path, jerr.line, j ? "not a JSON object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int write_json(const char *path, json_t *j, struct err **errp)
{
    _cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    _cleanup_free_ char *with_nl = NULL;
    if (!text || asprintf(&with_nl, "%s\n", text) < 0)
        return err_set(errp, ENOMEM, "cannot encode %s", path);
    return file_write_atomic(path, with_nl, strlen(with_nl), 0644, errp);
}

/* ---------- manifest entries ---------- */

static bool safe_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool is_sha256(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static int check_file_entry(const char *ver, const char *what, const json_t *f, struct err **errp)
{
    const json_t *size = json_object_get(f, "size");
    if (!json_is_object(f) || !safe_name(json_string_value(json_object_get(f, "file"))) ||
        !is_sha256(json_string_value(json_object_get(f, "sha256"))) || !json_is_integer(size) ||
        json_integer_value(size) < 0)
        return err_status(errp, 400, "asset manifest: version %s: bad entry for %s", ver, what);
    return 0;
}

/* Calls fn for kernel, initrd and every rootfs entry of a version; stops at
 * the first failure. */
typedef int (*file_fn)(void *ctx, const char *what, const json_t *f, struct err **errp);

static int each_file(const json_t *entry, file_fn fn, void *ctx, struct err **errp)
{
    if (fn(ctx, "kernel", json_object_get(entry, "kernel"), errp) < 0 ||
        fn(ctx, "initrd", json_object_get(entry, "initrd"), errp) < 0)
        return -1;
    const char *profile;
    json_t *f;
    json_object_foreach((json_t *)json_object_get(entry, "rootfs"), profile, f)
    {
        if (fn(ctx, profile, f, errp) < 0)
            return -1;
    }
    return 0;
}

static int check_entry_cb(void *ctx, const char *what, const json_t *f, struct err **errp)
{
    return check_file_entry(ctx, what, f, errp);
}

static int check_manifest(const json_t *m, const char *path, struct err **errp)
{
    const char *current = json_string_value(json_object_get(m, "current"));
    const json_t *versions = json_object_get(m, "versions");
    if (!safe_name(current) || !json_is_object(versions) || !json_object_get(versions, current))
        return err_status(errp, 400, "%s: no valid \"current\" version", path);
    const char *ver;
    json_t *entry;
    json_object_foreach((json_t *)versions, ver, entry)
    {
        if (!safe_name(ver) || !json_is_object(entry) ||
            !json_is_object(json_object_get(entry, "rootfs")))
            return err_status(errp, 400, "%s: bad version entry %s", path, ver);
        if (each_file(entry, check_entry_cb, (void *)ver, errp) < 0)
            return -1;
    }
    return 0;
}

/* ---------- placing and verifying one file ---------- */

static int copy_bytes(int in, int out, const char *src, struct err **errp)
{
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, COPY_CHUNK, 0);
        if (n == 0)
            return 0;
        if (n > 0)
            continue;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return err_sys(errp, "copy %s", src);
        break; /* fall back to read/write from the current offsets */
    }
    static __thread char chunk[1 << 16];
    ssize_t n;
    while ((n = fd_read_retry(in, chunk, sizeof(chunk))) > 0)
        if (fd_write_all(out, chunk, (size_t)n) < 0)
            return err_sys(errp, "write copy of %s", src);
    return n < 0 ? err_sys(errp, "read %s", src) : 0;
}

/* A reflink shares blocks (copy-on-write file systems); otherwise bytes are copied. */
static int copy_file(const char *src, const char *dst, struct err **errp)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_status(errp, 412, "cannot open %s: %s", src, strerror(errno));
    _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0)
        return err_sys(errp, "create %s", dst);
    if (ioctl(out, FICLONE, in) < 0 && copy_bytes(in, out, src, errp) < 0)
        return -1;
    if (fsync(out) < 0)
        return err_sys(errp, "fsync %s", dst);
    if (fchmod(out, 0444) < 0)
        return err_sys(errp, "chmod %s", dst);
    return 0;
}

static int place_file(const char *src, const char *dst, enum place_how *how, struct err **errp)
{
    if (linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0) {
        *how = PLACED_LINK;
        return 0;
    }
    if (errno == ENOENT)
        return err_status(errp, 412, "asset file missing: %s", src);
    *how = PLACED_COPY;
    return copy_file(src, dst, errp);
}

static int verify_file(const char *path, const char *ver, const json_t *f, struct err **errp)
{
    const char *file = json_string_value(json_object_get(f, "file"));
    const char *want = json_string_value(json_object_get(f, "sha256"));
    json_int_t size = json_integer_value(json_object_get(f, "size"));
    struct stat st;
    if (stat(path, &st) < 0)
        return err_sys(errp, "stat %s", path);
    if ((json_int_t)st.st_size != size)
        return err_status(errp, 412, "v%s/%s: size %lld does not match the manifest (%lld)", ver,
                          file, (long long)st.st_size, (long long)size);
    char got[65];
    if (sha256_file(path, got, errp) < 0)
        return -1;
    if (strcmp(got, want) != 0)
        return err_status(errp, 412, "v%s/%s: sha256 %s does not match the manifest (%s)", ver,
                          file, got, want);
    return 0;
}

/* ---------- installing one version ---------- */

struct version_job {
    const char *ver;
    char *src_vdir;
    char *tmp_dir;
    unsigned how; /* PLACED_* bits seen */
    assets_progress_fn progress;
    void *arg;
};

static int install_file_cb(void *ctx, const char *what, const json_t *f, struct err **errp)
{
    struct version_job *job = ctx;
    const char *file = json_string_value(json_object_get(f, "file"));
    _cleanup_free_ char *src = paths_join(job->src_vdir, file);
    _cleanup_free_ char *dst = paths_join(job->tmp_dir, file);
    if (!src || !dst)
        return err_set(errp, ENOMEM, "out of memory");
    struct stat st;
    if (lstat(dst, &st) == 0)
        return 0; /* two profiles sharing one file name: placed and verified already */
    enum place_how how = 0;
    if (place_file(src, dst, &how, errp) < 0 || verify_file(dst, job->ver, f, errp) < 0)
        return -1;
    job->how |= how;
    if (job->progress)
        job->progress(job->arg, ASSETS_EV_FILE, job->ver, file);
    return 0;
}

/* Swaps the verified temp directory into place (replacing an old copy). */
static int commit_version(const char *dst_dir, const char *tmp, const char *ver, struct err **errp)
{
    char name[300];
    snprintf(name, sizeof(name), "v%s", ver);
    _cleanup_free_ char *final = paths_join(dst_dir, name);
    snprintf(name, sizeof(name), ".v%s.old-%d", ver, (int)getpid());
    _cleanup_free_ char *old = paths_join(dst_dir, name);
    if (!final || !old)
        return err_set(errp, ENOMEM, "out of memory");
    bool had_old = false;
    if (is_dir(final)) {
        if (rename(final, old) < 0)
            return err_sys(errp, "rename %s", final);
        had_old = true;
    }
    if (rename(tmp, final) < 0) {
        int saved = errno;
        if (had_old)
            rename(old, final);
        errno = saved;
        return err_sys(errp, "rename %s to %s", tmp, final);
    }
    if (had_old)
        rm_tree(old);
    return 0;
}

static int install_version(const char *src_dir, const char *dst_dir, const char *ver,
                           const json_t *entry, assets_progress_fn progress, void *arg,
                           struct err **errp)
{
    char name[300];
    snprintf(name, sizeof(name), "v%s", ver);
    struct version_job job = {ver, paths_join(src_dir, name), NULL, 0, progress, arg};
    snprintf(name, sizeof(name), ".v%s.tmp-%d", ver, (int)getpid());
    job.tmp_dir = paths_join(dst_dir, name);
    int rc = -1;
    if (!job.src_vdir || !job.tmp_dir) {
        err_set(errp, ENOMEM, "out of memory");
        goto out;
    }
    if (progress)
        progress(arg, ASSETS_EV_INSTALL, ver, src_dir);
    rm_tree(job.tmp_dir);
    if (mkdir(job.tmp_dir, 0700) < 0) {
        err_sys(errp, "mkdir %s", job.tmp_dir);
        goto out;
    }
    if (each_file(entry, install_file_cb, &job, errp) < 0 ||
        commit_version(dst_dir, job.tmp_dir, ver, errp) < 0) {
        rm_tree(job.tmp_dir);
        goto out;
    }
    if (progress)
        progress(arg, ASSETS_EV_DONE, ver,
                 job.how == PLACED_LINK   ? "linked"
                 : job.how == PLACED_COPY ? "copied"
                                          : "mixed");
    rc = 0;
out:
    free(job.src_vdir);
    free(job.tmp_dir);
    return rc;
}

/* ---------- the manifest of the installed copy ---------- */

static json_t *load_installed(const char *path)
{
    json_t *m = load_json(path, NULL);
    if (!m || !json_is_object(json_object_get(m, "versions"))) {
        json_decref(m);
        m = json_pack("{s:i, s:{}}", "format", 1, "versions");
    }
    return m;
}

/* Drops versions whose directory is gone. */
static void prune_missing(json_t *versions, const char *dst_dir)
{
    const char *ver;
    json_t *entry;
    void *tmp;
    json_object_foreach_safe(versions, tmp, ver, entry)
    {
        char name[300];
        snprintf(name, sizeof(name), "v%s", ver);
        _cleanup_free_ char *dir = paths_join(dst_dir, name);
        if (!safe_name(ver) || !dir || !is_dir(dir))
            json_object_del(versions, ver);
    }
}

static bool same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int install_current(const char *src_dir, const char *dst_dir, const json_t *src, json_t *dst,
                           bool force, assets_progress_fn progress, void *arg, struct err **errp)
{
    json_t *have = json_object_get(dst, "versions");
    const char *ver = json_string_value(json_object_get(src, "current"));
    const json_t *entry = json_object_get(json_object_get(src, "versions"), ver);
    char name[300];
    snprintf(name, sizeof(name), "v%s", ver);
    _cleanup_free_ char *dir = paths_join(dst_dir, name);
    if (!dir)
        return err_set(errp, ENOMEM, "out of memory");
    if (!force && json_object_get(have, ver) && is_dir(dir)) {
        if (progress)
            progress(arg, ASSETS_EV_SKIP, ver, NULL);
        return 0;
    }
    if (install_version(src_dir, dst_dir, ver, entry, progress, arg, errp) < 0)
        return -1;
    return json_object_set(have, ver, (json_t *)entry);
}

int assets_install(const char *src_dir, const char *dst_dir, bool force,
                   assets_progress_fn progress, void *progress_arg, struct err **errp)
{
    _cleanup_free_ char *src_path = paths_join(src_dir, "manifest.json");
    _cleanup_free_ char *dst_path = paths_join(dst_dir, "manifest.json");
    if (!src_path || !dst_path)
        return err_set(errp, ENOMEM, "out of memory");
    json_t *src = load_json(src_path, errp);
    if (!src || check_manifest(src, src_path, errp) < 0) {
        json_decref(src);
        err_prefix(errp, "asset source %s", src_dir);
        return -1;
    }
    if (mkdir_p(dst_dir, 0700, errp) < 0) {
        json_decref(src);
        return -1;
    }
    _cleanup_close_ int lock = lock_dir(dst_dir, errp);
    json_t *dst = lock >= 0 ? load_installed(dst_path) : NULL;
    int rc = -1;
    if (!dst)
        goto out;
    if (same_dir(src_dir, dst_dir))
        force = false; /* installing a directory onto itself: only rewrite the manifest */
    if (install_current(src_dir, dst_dir, src, dst, force, progress, progress_arg, errp) < 0)
        goto out;
    prune_missing(json_object_get(dst, "versions"), dst_dir);
    json_object_set_new(dst, "format", json_integer(1));
    json_object_set(dst, "current", json_object_get(src, "current"));
    rc = write_json(dst_path, dst, errp);
out:
    json_decref(src);
    json_decref(dst);
    return rc;
}

/* ---------- cleanup ---------- */

static bool kept(const char *ver, const char *current, const char *const *keep, size_t n)
{
    if (current && strcmp(ver, current) == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (keep[i] && strcmp(keep[i], ver) == 0)
            return true;
    return false;
}

/* ".v<ver>.tmp-<pid>" or ".v<ver>.old-<pid>" whose process is gone. */
static bool stale_temp(const char *name)
{
    if (name[0] != '.' || name[1] != 'v')
        return false;
    const char *mark = strstr(name, ".tmp-");
    if (!mark)
        mark = strstr(name, ".old-");
    int64_t pid;
    if (!mark || parse_int64(mark + 5, 1, INT32_MAX, &pid) < 0)
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static int sweep(const char *dst_dir, json_t *versions, const char *current,
                 const char *const *keep, size_t n, struct err **errp)
{
    DIR *d = opendir(dst_dir);
    if (!d)
        return errno == ENOENT ? 0 : err_sys(errp, "open %s", dst_dir);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        _cleanup_free_ char *path = paths_join(dst_dir, name);
        if (!path || !is_dir(path))
            continue;
        if (stale_temp(name)) {
            rm_tree(path);
        } else if (name[0] == 'v' && safe_name(name + 1) && !kept(name + 1, current, keep, n)) {
            if (rm_tree(path) < 0) {
                err_sys(errp, "remove %s", path);
                closedir(d);
                return -1;
            }
            json_object_del(versions, name + 1);
            removed++;
        }
    }
    closedir(d);
    return removed;
}

int assets_cleanup(const char *dst_dir, const char *const *keep_versions, size_t n,
                   struct err **errp)
{
    _cleanup_free_ char *path = paths_join(dst_dir, "manifest.json");
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(path, F_OK) < 0)
        return 0;
    _cleanup_close_ int lock = lock_dir(dst_dir, errp);
    if (lock < 0)
        return -1;
    json_t *m = load_json(path, errp);
    if (!m)
        return -1;
    json_t *versions = json_object_get(m, "versions");
    const char *current = json_string_value(json_object_get(m, "current"));
    int removed = -1;
    if (!json_is_object(versions) || !safe_name(current)) {
        err_status(errp, 412, "%s: no valid \"current\" version; not cleaning up", path);
        goto out;
    }
    removed = sweep(dst_dir, versions, current, keep_versions, n, errp);
    if (removed < 0)
        goto out;
    prune_missing(versions, dst_dir);
    if (write_json(path, m, errp) < 0)
        removed = -1;
out:
    json_decref(m);
    return removed;
}
