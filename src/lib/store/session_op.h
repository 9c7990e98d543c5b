/* Queued session.db operations (internal to src/lib/store). An op is one
 * allocation: the header, its values sorted by column index, then the text
 * and blob bytes they point into. */
#ifndef CAPSEM_SESSION_OP_H
#define CAPSEM_SESSION_OP_H

#include <stddef.h>
#include <stdint.h>

#include "store/session_db.h"

enum sdb_op_kind { SDB_OP_INSERT, SDB_OP_UPDATE };

struct sdb_op_val {
    uint8_t col;  /* index into sdb_tables[table].cols */
    uint8_t type; /* enum sdb_type */
    uint32_t len; /* text/blob bytes */
    union {
        int64_t i;
        double d;
        const uint8_t *p; /* into the op's own allocation */
    } u;
};

struct sdb_op {
    uint64_t seq;  /* enqueue order, assigned under the queue lock */
    int64_t id;    /* inserted row id, or the row an update targets */
    int64_t ts;    /* timestamp column (inserts); enqueue time (updates) */
    uint64_t mask; /* bit i set when column i has a value */
    size_t size;   /* bytes charged against the queue's byte cap */
    uint8_t table; /* enum sdb_table */
    uint8_t kind;  /* enum sdb_op_kind */
    uint8_t nvals;
    struct sdb_op_val vals[];
};

/* Validates and copies the values (capping text and blobs) into a new op.
 * NULL with *errp for unknown tables/columns, duplicates, bad types. */
struct sdb_op *sdb_op_new(enum sdb_table t, enum sdb_op_kind kind, const struct sdb_val *vals,
                          size_t n, struct err **errp);

#endif
