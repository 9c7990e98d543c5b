/* session.db schema (internal to src/lib/store): the migrations and, per
 * table, the columns producers may set. test_session_db checks that the two
 * agree, column by column and type by type. */
#ifndef CAPSEM_SESSION_SCHEMA_H
#define CAPSEM_SESSION_SCHEMA_H

#include <stddef.h>

#include "store/session_db.h"

/* Columns beyond `id` and `timestamp`, in table order. type is the declared
 * SQLite type: "INTEGER", "REAL", "TEXT" or "BLOB". */
struct sdb_col {
    const char *name;
    const char *type;
};

struct sdb_table_def {
    const char *name;
    const struct sdb_col *cols;
    size_t ncols; /* < 64: ops keep a column bitmask */
};

extern const struct sdb_table_def sdb_tables[SDB_TABLE_COUNT];

/* sdb_migrations[i] upgrades version i to i + 1. */
extern const char *const sdb_migrations[SESSION_DB_VERSION];

/* Index of column `name` in table t, or -1. `hint` is where to look first
 * (callers usually pass columns in table order). */
int sdb_col_index(enum sdb_table t, const char *name, size_t hint);

#endif
