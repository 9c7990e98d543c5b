/* SQLite helpers shared by session.db and main.db (docs/telemetry.md).
 *
 * Every function follows the error contract (docs/errors.md): -1 and *errp
 * on failure, with SQLite's own message appended. Connections opened here
 * are plain sqlite3 handles; the caller closes them with sqlite3_close(). */
#ifndef CAPSEM_STORE_H
#define CAPSEM_STORE_H

#include <stdbool.h>
#include <sqlite3.h>

#include "base/err.h"

/* Opens (creating if needed) a database for writing: the file is created
 * mode 0600 (SQLite gives -wal and -shm the same mode), then WAL,
 * synchronous=NORMAL and a 5 s busy timeout are set. */
int store_open_rw(const char *path, sqlite3 **out, struct err **errp);

/* Opens an existing database read-only (WAL readers run concurrently with
 * the writer). A missing file fails with code ENOENT. */
int store_open_ro(const char *path, sqlite3 **out, struct err **errp);

/* Runs one or more statements without results. */
int store_exec(sqlite3 *db, const char *sql, struct err **errp);

/* Reads PRAGMA user_version. */
int store_user_version(sqlite3 *db, int *out, struct err **errp);

/* Forward-only migrations: steps[i] is the SQL that upgrades version i to
 * i + 1, so the newest known version is nsteps. Pending steps run in one
 * IMMEDIATE transaction together with the user_version update; a file whose
 * version is newer than nsteps is refused (status 409) naming `what`. */
int store_migrate(sqlite3 *db, const char *what, const char *const *steps, int nsteps,
                  struct err **errp);

/* Sets *errp from the connection's last error: "<context>: <sqlite message>". */
int store_err(struct err **errp, sqlite3 *db, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Cleanup helpers for locals. */
void store_closep(sqlite3 **db);
void store_finalizep(sqlite3_stmt **st);
#define _cleanup_sqlite_ __attribute__((cleanup(store_closep)))
#define _cleanup_stmt_   __attribute__((cleanup(store_finalizep)))

#endif
