/* session.db writer: the bounded queue producers fill and the thread that
 * commits it in batches (docs/telemetry.md). Everything under `mu` is shared
 * with producers; the SQLite connection and statement cache belong to the
 * writer thread once session_db_open() has started it. */
#include "store/session_db.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "store/session_op.h"
#include "store/session_schema.h"
#include "store/store.h"

#define CACHE_SLOTS   8 /* prepared statements per table (distinct column sets) */
#define MAX_FAIL_LOGS 5 /* per batch; the rest are summed up in one line */

struct gap {
    uint64_t count;
    int64_t from_ts;
    int64_t to_ts;
};

struct stmt_slot {
    sqlite3_stmt *st;
    uint64_t mask;
    uint8_t kind;
};

struct session_db {
    char *path;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* writer: ops queued, flush, close, unpause */
    pthread_cond_t done; /* flushers: done_seq moved */

    /* ---- under mu ---- */
    struct sdb_op **ring;
    size_t ring_cap, head, depth, bytes;
    size_t max_ops, max_bytes, reserved_ops, reserved_bytes;
    unsigned batch_ops, batch_ms;
    uint64_t last_seq;     /* last seq handed out */
    uint64_t done_seq;     /* every op up to here is committed or failed */
    uint64_t flush_target; /* a flusher waits for done_seq >= this */
    int64_t next_id[SDB_TABLE_COUNT];
    bool closing, paused;
    struct gap gaps[SDB_TABLE_COUNT];
    struct session_db_metrics m; /* depth/bytes filled in on read */
    uint32_t lat_us[SDB_LAT_RING];
    size_t lat_n, lat_pos;

    /* ---- writer thread only ---- */
    sqlite3 *conn;
    struct sdb_op **batch;
    struct stmt_slot cache[SDB_TABLE_COUNT][CACHE_SLOTS];
    unsigned cache_next[SDB_TABLE_COUNT];
    struct err *close_err;
};

static const struct session_db_opts defaults = {
    .max_ops = 65536,
    .max_bytes = 64u << 20,
    .reserved_ops = 1024,
    .reserved_bytes = 8u << 20,
    .batch_ops = 1000,
    .batch_ms = 100,
};

static struct timespec deadline_after(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---------- statements ---------- */

static int build_sql(const struct sdb_op *op, struct buf *b)
{
    const struct sdb_table_def *d = &sdb_tables[op->table];
    int rc = 0;
    if (op->kind == SDB_OP_INSERT) {
        rc |= buf_printf(b, "INSERT INTO %s(id,timestamp", d->name);
        for (size_t i = 0; i < op->nvals; i++)
            rc |= buf_printf(b, ",%s", d->cols[op->vals[i].col].name);
        rc |= buf_append_str(b, ") VALUES(?,?");
        for (size_t i = 0; i < op->nvals; i++)
            rc |= buf_append_str(b, ",?");
        rc |= buf_append_str(b, ")");
    } else {
        rc |= buf_printf(b, "UPDATE %s SET ", d->name);
        for (size_t i = 0; i < op->nvals; i++)
            rc |= buf_printf(b, "%s%s=?", i ? "," : "", d->cols[op->vals[i].col].name);
        rc |= buf_append_str(b, " WHERE id=?");
    }
    return rc ? -1 : buf_append(b, "", 1);
}

/* Prepared statement for the op's (table, kind, column set), cached. */
static sqlite3_stmt *stmt_for(struct session_db *db, const struct sdb_op *op)
{
    struct stmt_slot *slots = db->cache[op->table];
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (slots[i].st && slots[i].mask == op->mask && slots[i].kind == op->kind)
            return slots[i].st;
    struct buf b;
    buf_init(&b, 16384);
    sqlite3_stmt *st = NULL;
    if (build_sql(op, &b) == 0 &&
        sqlite3_prepare_v3(db->conn, (const char *)buf_head(&b), -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK)
        st = NULL;
    buf_free(&b);
    if (!st)
        return NULL;
    struct stmt_slot *s = &slots[db->cache_next[op->table]++ % CACHE_SLOTS];
    if (s->st)
        sqlite3_finalize(s->st);
    *s = (struct stmt_slot){.st = st, .mask = op->mask, .kind = op->kind};
    return st;
}

static void bind_val(sqlite3_stmt *st, int idx, const struct sdb_op_val *v)
{
    switch (v->type) {
    case SDB_INT:
        sqlite3_bind_int64(st, idx, v->u.i);
        break;
    case SDB_REAL:
        sqlite3_bind_double(st, idx, v->u.d);
        break;
    case SDB_TEXT:
        sqlite3_bind_text(st, idx, (const char *)v->u.p, (int)v->len, SQLITE_STATIC);
        break;
    case SDB_BLOB:
        sqlite3_bind_blob(st, idx, v->u.p, (int)v->len, SQLITE_STATIC);
        break;
    default:
        sqlite3_bind_null(st, idx);
        break;
    }
}

/* Runs one op; SQLITE_DONE on success, else the SQLite error code. */
static int run_op(struct session_db *db, const struct sdb_op *op)
{
    sqlite3_stmt *st = stmt_for(db, op);
    if (!st)
        return SQLITE_ERROR;
    int idx = 1;
    if (op->kind == SDB_OP_INSERT) {
        sqlite3_bind_int64(st, idx++, op->id);
        sqlite3_bind_int64(st, idx++, op->ts);
    }
    for (size_t i = 0; i < op->nvals; i++)
        bind_val(st, idx++, &op->vals[i]);
    if (op->kind == SDB_OP_UPDATE)
        sqlite3_bind_int64(st, idx, op->id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int write_gaps(struct session_db *db, const struct gap *gaps, uint64_t *rows)
{
    int64_t now = (int64_t)time_real_ms();
    for (int t = 0; t < SDB_TABLE_COUNT; t++) {
        if (!gaps[t].count)
            continue;
        struct sdb_op_val v[4] = {
            {.col = 0,
             .type = SDB_TEXT,
             .len = (uint32_t)strlen(sdb_tables[t].name),
             .u.p = (const uint8_t *)sdb_tables[t].name},
            {.col = 1, .type = SDB_INT, .u.i = (int64_t)gaps[t].count},
            {.col = 2, .type = SDB_INT, .u.i = gaps[t].from_ts},
            {.col = 3, .type = SDB_INT, .u.i = gaps[t].to_ts},
        };
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->conn,
                               "INSERT INTO telemetry_gaps(timestamp,table_name,dropped,"
                               "from_ts,to_ts) VALUES(?,?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK)
            return -1;
        sqlite3_bind_int64(st, 1, now);
        for (int i = 0; i < 4; i++)
            bind_val(st, i + 2, &v[i]);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return -1;
        log_warn("telemetry: %s dropped %llu events (queue full) between %lld and %lld",
                 sdb_tables[t].name, (unsigned long long)gaps[t].count, (long long)gaps[t].from_ts,
                 (long long)gaps[t].to_ts);
        (*rows)++;
    }
    return 0;
}

/* ---------- batches ---------- */

struct batch_result {
    uint64_t written;
    uint64_t failed[SDB_TABLE_COUNT];
    uint64_t gap_rows;
    uint32_t lat_us;
};

static void log_op_failure(struct session_db *db, const struct sdb_op *op, int rc, int *logged)
{
    if ((*logged)++ < MAX_FAIL_LOGS)
        log_warn("telemetry: dropping %s op (row %lld): %s", sdb_tables[op->table].name,
                 (long long)op->id, sqlite3_errmsg(db->conn));
    (void)rc;
}

/* The retry path: each op in its own transaction, so one bad op (a duplicate
 * id, a full disk for a large row) costs only itself. */
static void write_one_by_one(struct session_db *db, struct sdb_op **ops, size_t n,
                             const struct gap *gaps, struct batch_result *r)
{
    int logged = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = run_op(db, ops[i]);
        if (rc == SQLITE_DONE) {
            r->written++;
            continue;
        }
        log_op_failure(db, ops[i], rc, &logged);
        r->failed[ops[i]->table]++;
    }
    if (logged > MAX_FAIL_LOGS)
        log_warn("telemetry: %d more ops dropped in the same batch", logged - MAX_FAIL_LOGS);
    if (write_gaps(db, gaps, &r->gap_rows) < 0)
        log_warn("telemetry: cannot record telemetry gaps: %s", sqlite3_errmsg(db->conn));
}

static void write_batch(struct session_db *db, struct sdb_op **ops, size_t n,
                        const struct gap *gaps, struct batch_result *r)
{
    uint64_t t0 = time_mono_us();
    bool ok = sqlite3_exec(db->conn, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    size_t i = 0;
    while (ok && i < n && run_op(db, ops[i]) == SQLITE_DONE)
        i++;
    ok = ok && i == n;
    uint64_t gap_rows = 0;
    ok = ok && write_gaps(db, gaps, &gap_rows) == 0;
    ok = ok && sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (ok) {
        r->written = n;
        r->gap_rows = gap_rows;
        uint64_t dt = time_mono_us() - t0;
        r->lat_us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
        return;
    }
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    write_one_by_one(db, ops, n, gaps, r);
    uint64_t dt = time_mono_us() - t0;
    r->lat_us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
}

static bool writer_urgent(const struct session_db *db)
{
    return db->closing || db->flush_target > db->done_seq;
}

static bool queue_recovered(const struct session_db *db)
{
    return db->depth * 2 <= db->max_ops && db->bytes * 2 <= db->max_bytes;
}

/* Under mu: waits for work and pops up to batch_ops ops into db->batch.
 * Pending gaps move to *gaps once the queue has drained below half its caps.
 * Returns 0 only when closing with nothing left. */
static size_t take_batch(struct session_db *db, struct gap *gaps)
{
    while (db->depth == 0 || (db->paused && !db->closing)) {
        if (db->closing)
            return 0;
        pthread_cond_wait(&db->wake, &db->mu);
    }
    struct timespec dl = deadline_after(db->batch_ms);
    while (db->depth < db->batch_ops && !writer_urgent(db))
        if (pthread_cond_timedwait(&db->wake, &db->mu, &dl) == ETIMEDOUT)
            break;
    size_t n = MIN(db->depth, (size_t)db->batch_ops);
    for (size_t i = 0; i < n; i++) {
        struct sdb_op *op = db->ring[db->head];
        db->ring[db->head] = NULL;
        db->head = (db->head + 1) % db->ring_cap;
        db->bytes -= op->size;
        db->batch[i] = op;
    }
    db->depth -= n;
    memset(gaps, 0, sizeof(struct gap) * SDB_TABLE_COUNT);
    if (queue_recovered(db)) {
        memcpy(gaps, db->gaps, sizeof(db->gaps));
        memset(db->gaps, 0, sizeof(db->gaps));
    }
    return n;
}

/* Under mu: publishes a finished batch. */
static void batch_done(struct session_db *db, uint64_t last_seq, const struct batch_result *r)
{
    db->m.written += r->written;
    db->m.gap_rows += r->gap_rows;
    db->m.transactions++;
    for (int t = 0; t < SDB_TABLE_COUNT; t++)
        db->m.failed[t] += r->failed[t];
    db->lat_us[db->lat_pos] = r->lat_us;
    db->lat_pos = (db->lat_pos + 1) % SDB_LAT_RING;
    if (db->lat_n < SDB_LAT_RING)
        db->lat_n++;
    db->done_seq = last_seq;
    pthread_cond_broadcast(&db->done);
}

static void writer_finish(struct session_db *db)
{
    for (int t = 0; t < SDB_TABLE_COUNT; t++)
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (db->cache[t][i].st)
                sqlite3_finalize(db->cache[t][i].st);
    int logf = 0, ckpt = 0;
    if (sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, &logf, &ckpt) !=
        SQLITE_OK)
        store_err(&db->close_err, db->conn, "checkpoint %s", db->path);
    if (sqlite3_close(db->conn) != SQLITE_OK && !db->close_err)
        store_err(&db->close_err, db->conn, "close %s", db->path);
    db->conn = NULL;
}

static void *writer_main(void *arg)
{
    struct session_db *db = arg;
    struct gap gaps[SDB_TABLE_COUNT];
    pthread_mutex_lock(&db->mu);
    for (;;) {
        size_t n = take_batch(db, gaps);
        if (n == 0)
            break;
        uint64_t last = db->batch[n - 1]->seq;
        pthread_mutex_unlock(&db->mu);
        struct batch_result r = {0};
        write_batch(db, db->batch, n, gaps, &r);
        for (size_t i = 0; i < n; i++)
            free(db->batch[i]);
        pthread_mutex_lock(&db->mu);
        batch_done(db, last, &r);
    }
    /* Drops can only be pending here if the last batch left the queue above
     * half full, which closing rules out; write them anyway. */
    memcpy(gaps, db->gaps, sizeof(gaps));
    memset(db->gaps, 0, sizeof(db->gaps));
    pthread_mutex_unlock(&db->mu);
    uint64_t rows = 0;
    if (write_gaps(db, gaps, &rows) < 0)
        log_warn("telemetry: cannot record telemetry gaps: %s", sqlite3_errmsg(db->conn));
    writer_finish(db);
    return NULL;
}

/* ---------- producers ---------- */

static void count_drop(struct session_db *db, const struct sdb_op *op)
{
    struct gap *g = &db->gaps[op->table];
    db->m.dropped[op->table]++;
    if (g->count == 0 || op->ts < g->from_ts)
        g->from_ts = op->ts;
    if (g->count == 0 || op->ts > g->to_ts)
        g->to_ts = op->ts;
    g->count++;
}

/* Queues op (taking ownership). Returns the row id / 1, or 0 if dropped. */
static int64_t enqueue(struct session_db *db, struct sdb_op *op)
{
    bool reserved = op->table == SDB_POLICY_DECISIONS;
    size_t lim_ops = db->max_ops + (reserved ? db->reserved_ops : 0);
    size_t lim_bytes = db->max_bytes + (reserved ? db->reserved_bytes : 0);
    pthread_mutex_lock(&db->mu);
    if (db->depth >= lim_ops || db->bytes + op->size > lim_bytes || db->closing) {
        count_drop(db, op);
        pthread_mutex_unlock(&db->mu);
        free(op);
        return 0;
    }
    int64_t ret = 1;
    if (op->kind == SDB_OP_INSERT)
        ret = op->id = db->next_id[op->table]++;
    op->seq = ++db->last_seq;
    db->ring[(db->head + db->depth) % db->ring_cap] = op;
    db->depth++;
    db->bytes += op->size;
    if (db->depth > db->m.high_water)
        db->m.high_water = db->depth;
    db->m.enqueued[op->table]++;
    /* Wake the writer when it may be idle (first op) or waiting for a full batch. */
    if (db->depth == 1 || db->depth == db->batch_ops)
        pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    return ret;
}

int64_t session_db_insert(struct session_db *db, enum sdb_table t, int64_t timestamp_ms,
                          const struct sdb_val *vals, size_t n, struct err **errp)
{
    if (t == SDB_TELEMETRY_GAPS)
        return err_set(errp, EINVAL, "telemetry_gaps is written by the writer only");
    struct sdb_op *op = sdb_op_new(t, SDB_OP_INSERT, vals, n, errp);
    if (!op)
        return -1;
    op->ts = timestamp_ms ? timestamp_ms : (int64_t)time_real_ms();
    return enqueue(db, op);
}

int session_db_update(struct session_db *db, enum sdb_table t, int64_t row_id,
                      const struct sdb_val *vals, size_t n, struct err **errp)
{
    if (t == SDB_TELEMETRY_GAPS)
        return err_set(errp, EINVAL, "telemetry_gaps is written by the writer only");
    if (row_id <= 0 || n == 0)
        return err_set(errp, EINVAL, "update needs a row id and at least one column");
    struct sdb_op *op = sdb_op_new(t, SDB_OP_UPDATE, vals, n, errp);
    if (!op)
        return -1;
    op->id = row_id;
    op->ts = (int64_t)time_real_ms();
    return (int)enqueue(db, op);
}

int session_db_flush(struct session_db *db, unsigned timeout_ms, struct err **errp)
{
    struct timespec dl = deadline_after(timeout_ms);
    pthread_mutex_lock(&db->mu);
    uint64_t target = db->last_seq;
    if (db->flush_target < target)
        db->flush_target = target;
    pthread_cond_signal(&db->wake);
    while (db->done_seq < target)
        if (pthread_cond_timedwait(&db->done, &db->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = db->done_seq >= target;
    size_t depth = db->depth;
    pthread_mutex_unlock(&db->mu);
    if (ok)
        return 0;
    return err_set(errp, ETIMEDOUT, "telemetry flush timed out after %u ms (%zu ops queued)",
                   timeout_ms, depth);
}

void session_db_set_paused(struct session_db *db, bool paused)
{
    pthread_mutex_lock(&db->mu);
    db->paused = paused;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void session_db_get_metrics(struct session_db *db, struct session_db_metrics *out)
{
    uint32_t lat[SDB_LAT_RING];
    pthread_mutex_lock(&db->mu);
    *out = db->m;
    out->depth = db->depth;
    out->bytes = db->bytes;
    size_t n = db->lat_n;
    memcpy(lat, db->lat_us, n * sizeof(lat[0]));
    pthread_mutex_unlock(&db->mu);
    out->txn_p50_us = out->txn_p99_us = 0;
    if (n == 0)
        return;
    qsort(lat, n, sizeof(lat[0]), cmp_u32);
    out->txn_p50_us = lat[(n - 1) * 50 / 100];
    out->txn_p99_us = lat[(n - 1) * 99 / 100];
}

/* ---------- open / close ---------- */

static int read_next_ids(struct session_db *db, struct err **errp)
{
    for (int t = 0; t < SDB_TABLE_COUNT; t++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT COALESCE(MAX(id),0)+1 FROM %s", sdb_tables[t].name);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
            return store_err(errp, db->conn, "%s", sql);
        db->next_id[t] = sqlite3_column_int64(st, 0);
    }
    return 0;
}

static void apply_opts(struct session_db *db, const struct session_db_opts *o)
{
    db->max_ops = o && o->max_ops ? o->max_ops : defaults.max_ops;
    db->max_bytes = o && o->max_bytes ? o->max_bytes : defaults.max_bytes;
    db->reserved_ops = o && o->reserved_ops ? o->reserved_ops : defaults.reserved_ops;
    db->reserved_bytes = o && o->reserved_bytes ? o->reserved_bytes : defaults.reserved_bytes;
    db->batch_ops = o && o->batch_ops ? o->batch_ops : defaults.batch_ops;
    db->batch_ms = o && o->batch_ms ? o->batch_ms : defaults.batch_ms;
    db->paused = o && o->start_paused;
    db->ring_cap = db->max_ops + db->reserved_ops;
}

static int init_sync(struct session_db *db, struct err **errp)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return err_set(errp, ENOMEM, "condattr");
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_mutex_init(&db->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&db->wake, &ca)) != 0)
        pthread_mutex_destroy(&db->mu);
    if (rc == 0 && (rc = pthread_cond_init(&db->done, &ca)) != 0) {
        pthread_cond_destroy(&db->wake);
        pthread_mutex_destroy(&db->mu);
    }
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        errno = rc;
        return err_sys(errp, "telemetry writer locks");
    }
    return 0;
}

static void db_free_mem(struct session_db *db)
{
    if (db->ring)
        for (size_t i = 0; i < db->ring_cap; i++)
            free(db->ring[i]);
    free(db->ring);
    free(db->batch);
    free(db->path);
    free(db);
}

static int open_conn(struct session_db *db, struct err **errp)
{
    if (store_open_rw(db->path, &db->conn, errp) < 0 ||
        store_migrate(db->conn, db->path, sdb_migrations, SESSION_DB_VERSION, errp) < 0 ||
        read_next_ids(db, errp) < 0) {
        store_closep(&db->conn);
        return -1;
    }
    return 0;
}

int session_db_open(const char *path, const struct session_db_opts *opts, struct session_db **out,
                    struct err **errp)
{
    struct session_db *db = calloc(1, sizeof(*db));
    if (!db)
        return err_set(errp, ENOMEM, "out of memory");
    apply_opts(db, opts);
    db->path = strdup(path);
    db->ring = calloc(db->ring_cap, sizeof(*db->ring));
    db->batch = calloc(db->batch_ops, sizeof(*db->batch));
    if (!db->path || !db->ring || !db->batch) {
        db_free_mem(db);
        return err_set(errp, ENOMEM, "out of memory");
    }
    if (open_conn(db, errp) < 0) {
        db_free_mem(db);
        return -1;
    }
    if (init_sync(db, errp) < 0) {
        store_closep(&db->conn);
        db_free_mem(db);
        return -1;
    }
    int rc = pthread_create(&db->thread, NULL, writer_main, db);
    if (rc != 0) {
        pthread_cond_destroy(&db->done);
        pthread_cond_destroy(&db->wake);
        pthread_mutex_destroy(&db->mu);
        store_closep(&db->conn);
        db_free_mem(db);
        errno = rc;
        return err_sys(errp, "start telemetry writer");
    }
    *out = db;
    return 0;
}

int session_db_close(struct session_db *db, struct err **errp)
{
    if (!db)
        return 0;
    pthread_mutex_lock(&db->mu);
    db->closing = true;
    pthread_cond_signal(&db->wake);
    pthread_mutex_unlock(&db->mu);
    pthread_join(db->thread, NULL);
    int rc = 0;
    if (db->close_err) {
        err_move(errp, &db->close_err);
        rc = -1;
    }
    pthread_cond_destroy(&db->done);
    pthread_cond_destroy(&db->wake);
    pthread_mutex_destroy(&db->mu);
    db_free_mem(db);
    return rc;
}
