#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define STORE_BUSY_MS 5000

int store_err(struct err **errp, sqlite3 *db, const char *fmt, ...)
{
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
    int eno = (code & 0xff) == SQLITE_FULL ? ENOSPC : EIO;
    return err_set(errp, eno, "%s: %s", ctx, db ? sqlite3_errmsg(db) : "sqlite error");
}

void store_closep(sqlite3 **db)
{
    if (*db)
        sqlite3_close_v2(*db);
    *db = NULL;
}

void store_finalizep(sqlite3_stmt **st)
{
    if (*st)
        sqlite3_finalize(*st);
    *st = NULL;
}

int store_exec(sqlite3 *db, const char *sql, struct err **errp)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int rc = err_set(errp, EIO, "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

/* The file is created here rather than by SQLite so that it (and the -wal
 * and -shm files, which copy its mode) is 0600 whatever the umask. */
static int precreate_0600(const char *path, struct err **errp)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_sys(errp, "create %s", path);
    int rc = fchmod(fd, 0600);
    int saved = errno;
    close(fd);
    if (rc < 0) {
        errno = saved;
        return err_sys(errp, "chmod %s", path);
    }
    return 0;
}

static int open_flags(const char *path, int flags, sqlite3 **out, struct err **errp)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        store_err(errp, db, "open %s", path);
        sqlite3_close_v2(db);
        return -1;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, STORE_BUSY_MS);
    *out = db;
    return 0;
}

int store_open_rw(const char *path, sqlite3 **out, struct err **errp)
{
    if (precreate_0600(path, errp) < 0)
        return -1;
    _cleanup_sqlite_ sqlite3 *db = NULL;
    if (open_flags(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db, errp) < 0)
        return -1;
    if (store_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", errp) < 0) {
        err_prefix(errp, "%s", path);
        return -1;
    }
    *out = steal_pointer(&db);
    return 0;
}

int store_open_ro(const char *path, sqlite3 **out, struct err **errp)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return err_sys(errp, "%s", path);
    return open_flags(path, SQLITE_OPEN_READONLY, out, errp);
}

int store_user_version(sqlite3 *db, int *out, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return store_err(errp, db, "read user_version");
    *out = sqlite3_column_int(st, 0);
    return 0;
}

static int run_steps(sqlite3 *db, const char *const *steps, int from, int to, struct err **errp)
{
    for (int v = from; v < to; v++) {
        if (store_exec(db, steps[v], errp) < 0) {
            err_prefix(errp, "migration to version %d", v + 1);
            return -1;
        }
    }
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", to);
    return store_exec(db, sql, errp);
}

int store_migrate(sqlite3 *db, const char *what, const char *const *steps, int nsteps,
                  struct err **errp)
{
    int v;
    if (store_user_version(db, &v, errp) < 0)
        return -1;
    if (v > nsteps)
        return err_status(errp, 409,
                          "%s has schema version %d, newer than this capsem supports (%d); "
                          "upgrade capsem or move the file away",
                          what, v, nsteps);
    if (v == nsteps)
        return 0;
    if (store_exec(db, "BEGIN IMMEDIATE", errp) < 0)
        return -1;
    /* Re-read inside the write lock: another process may have migrated. */
    if (store_user_version(db, &v, errp) < 0 || v > nsteps ||
        (v < nsteps && run_steps(db, steps, v, nsteps, errp) < 0)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (v > nsteps)
            return err_status(errp, 409, "%s has schema version %d, newer than supported (%d)",
                              what, v, nsteps);
        err_prefix(errp, "%s", what);
        return -1;
    }
    if (store_exec(db, "COMMIT", errp) < 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        err_prefix(errp, "%s", what);
        return -1;
    }
    return 0;
}
