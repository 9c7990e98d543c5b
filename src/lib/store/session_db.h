/* Per-VM telemetry database, session.db (network.md section 11,
 * docs/telemetry.md).
 *
 * Writing: capsem-process opens one `struct session_db`, which owns one
 * writer thread and one SQLite connection. Producers (any thread, normally
 * the event loop) call the enqueue functions, which never block on I/O: an op
 * is copied into a bounded in-memory queue, or dropped and counted when the
 * queue is full. The writer commits the queue in batches (one transaction per
 * 100 ms or 1,000 ops).
 *
 * Row ids are chosen by the producer: every insert returns its row id at
 * once (from a per-table counter started at MAX(id)+1 when the file was
 * opened), so a later op can reference it (model_calls.net_event_id,
 * tool_calls.model_call_id) or update it (policy_decisions ask rows inserted
 * `pending`) before the row is even written. Ops are written in enqueue
 * order, so an update always follows its insert.
 *
 * Reading: session_db_history() and session_db_read_counters() open the file
 * read-only for the duration of one call; they may run in another process
 * while the writer is live (WAL) or after it has closed. */
#ifndef CAPSEM_SESSION_DB_H
#define CAPSEM_SESSION_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Schema version written to PRAGMA user_version. */
#define SESSION_DB_VERSION 1

/* Text columns are capped at 64 KiB, blob previews at 1 MiB; longer values
 * are cut on a UTF-8 boundary and end with SESSION_DB_TRUNC_MARK (the total
 * stays within the cap). The enqueue functions apply this to every value. */
#define SESSION_DB_TEXT_MAX   (64u * 1024u)
#define SESSION_DB_BLOB_MAX   (1024u * 1024u)
#define SESSION_DB_TRUNC_MARK "\xe2\x80\xa6[truncated]"

enum sdb_table {
    SDB_NET_EVENTS,
    SDB_DNS_EVENTS,
    SDB_EXEC_EVENTS,
    SDB_FS_EVENTS,
    SDB_MODEL_CALLS,
    SDB_TOOL_CALLS,
    SDB_POLICY_DECISIONS,
    SDB_TELEMETRY_GAPS, /* written by the writer itself; producers cannot insert */
    SDB_TABLE_COUNT
};

/* "net_events", ...; NULL for an out-of-range value. */
const char *session_db_table_name(enum sdb_table t);

enum sdb_type { SDB_NULL, SDB_INT, SDB_REAL, SDB_TEXT, SDB_BLOB };

/* One column value for the generic insert/update. `col` is a column name of
 * the table (never `id` or `timestamp`). Text and blob bytes are borrowed
 * until the call returns (they are copied into the queue). */
struct sdb_val {
    const char *col;
    enum sdb_type type;
    int64_t i;
    double d;
    const void *p; /* SDB_TEXT: NULL stores NULL */
    size_t len;    /* SDB_TEXT: SIZE_MAX means strlen(p) */
};

#define SDB_INT_V(c, v)      ((struct sdb_val){.col = (c), .type = SDB_INT, .i = (int64_t)(v)})
#define SDB_REAL_V(c, v)     ((struct sdb_val){.col = (c), .type = SDB_REAL, .d = (double)(v)})
#define SDB_TEXT_V(c, s)     ((struct sdb_val){.col = (c), .type = SDB_TEXT, .p = (s), .len = SIZE_MAX})
#define SDB_TEXTN_V(c, s, n) ((struct sdb_val){.col = (c), .type = SDB_TEXT, .p = (s), .len = (n)})
#define SDB_BLOB_V(c, b, n)  ((struct sdb_val){.col = (c), .type = SDB_BLOB, .p = (b), .len = (n)})
#define SDB_NULL_V(c)        ((struct sdb_val){.col = (c), .type = SDB_NULL})

/* Queue and batching parameters; a zero field takes the default. */
struct session_db_opts {
    size_t max_ops;        /* 65,536 */
    size_t max_bytes;      /* 64 MiB of queued ops (payload plus bookkeeping) */
    size_t reserved_ops;   /* 1,024 extra slots only policy_decisions may use */
    size_t reserved_bytes; /* 8 MiB extra bytes only policy_decisions may use */
    unsigned batch_ops;    /* 1,000 ops per transaction at most */
    unsigned batch_ms;     /* 100 ms: longest an op waits for its batch to fill */
    bool start_paused;     /* tests: the writer takes nothing until unpaused */
};

struct session_db;

/* Creates or opens `path` (mode 0600), migrates it to SESSION_DB_VERSION
 * (a newer file is refused, status 409), reads the next row id of every
 * table and starts the writer thread. opts may be NULL. */
int session_db_open(const char *path, const struct session_db_opts *opts, struct session_db **out,
                    struct err **errp);

/* Flushes, writes pending gap rows, checkpoints the WAL with
 * wal_checkpoint(TRUNCATE), joins the writer and frees db (also on error,
 * which reports a failed checkpoint or close). NULL is a no-op. */
int session_db_close(struct session_db *db, struct err **errp);

/* Returns the new row's id (>= 1) once the op is queued; 0 when the queue was
 * full and the op was dropped (counted; store NULL wherever you would have
 * referenced the row); -1 with *errp for a caller bug (unknown table or
 * column, duplicate column, telemetry_gaps). timestamp_ms 0 means now. */
int64_t session_db_insert(struct session_db *db, enum sdb_table t, int64_t timestamp_ms,
                          const struct sdb_val *vals, size_t n, struct err **errp);

/* Queues `UPDATE t SET ... WHERE id = row_id`. 1 when queued, 0 when dropped,
 * -1 on a caller bug. An update of a row that was never written (its insert
 * dropped) changes nothing. */
int session_db_update(struct session_db *db, enum sdb_table t, int64_t row_id,
                      const struct sdb_val *vals, size_t n, struct err **errp);

/* exec_events row (network.md section 11). NULL strings are stored as NULL;
 * has_exit_code = false stores a NULL exit code (the command never exited). */
struct sdb_exec_event {
    int64_t timestamp_ms; /* command start, Unix ms; 0 = now */
    const char *exec_id;
    const char *command;
    bool has_exit_code;
    int exit_code;
    int64_t duration_ms;
    const char *stdout_preview; /* NUL-terminated; capped at 64 KiB */
    const char *stderr_preview;
    int64_t stdout_bytes;
    int64_t stderr_bytes;
    const char *source; /* "api", "mcp", "run", ... */
    const char *process_name;
    int64_t pid; /* <= 0 stores NULL */
};

/* As session_db_insert() for exec_events. */
int64_t session_db_add_exec(struct session_db *db, const struct sdb_exec_event *ev,
                            struct err **errp);

/* Returns once every op enqueued before the call is committed (or failed and
 * was logged), including the gap rows due by then. -1 (ETIMEDOUT) after
 * timeout_ms; -1 is also returned while the writer is paused. */
int session_db_flush(struct session_db *db, unsigned timeout_ms, struct err **errp);

/* Tests: stop or restart the writer taking ops from the queue. */
void session_db_set_paused(struct session_db *db, bool paused);

#define SDB_LAT_RING 256

struct session_db_metrics {
    size_t depth;      /* ops queued now */
    size_t bytes;      /* bytes queued now */
    size_t high_water; /* largest depth seen */
    uint64_t enqueued[SDB_TABLE_COUNT];
    uint64_t dropped[SDB_TABLE_COUNT]; /* queue full */
    uint64_t failed[SDB_TABLE_COUNT];  /* rejected by SQLite, logged */
    uint64_t written;                  /* ops committed */
    uint64_t gap_rows;                 /* telemetry_gaps rows written */
    uint64_t transactions;
    uint32_t txn_p50_us; /* over the last SDB_LAT_RING transactions */
    uint32_t txn_p99_us;
};

void session_db_get_metrics(struct session_db *db, struct session_db_metrics *out);

/* Cuts [s, s+len) to at most max bytes on a UTF-8 boundary ending with
 * SESSION_DB_TRUNC_MARK when it is longer. Returns the length of the kept
 * prefix (before the mark); *truncated tells whether the mark is needed.
 * max must exceed the mark's length. */
size_t session_db_trunc_len(const char *s, size_t len, size_t max, bool *truncated);

/* Heap copy of s capped as above (NUL-terminated); NULL only on ENOMEM. */
char *session_db_truncate(const char *s, size_t len, size_t max);

/* ---- readers (read-only, any process) ---- */

/* GET /vms/{id}/history: {commands:[{timestamp, layer, command, exit_code,
 * duration_ms, stdout_preview, stderr_preview}], total, has_more}, newest
 * first. limit 0..10000, offset >= 0, search NULL or "" for none (a
 * case-insensitive substring of the command; % and _ match literally),
 * layer NULL/"all", "exec" or "audit" (no rows in this version). A missing
 * or empty file yields no rows. Bad arguments fail with status 400. *out is
 * a new reference. */
int session_db_history(const char *path, int64_t limit, int64_t offset, const char *search,
                       const char *layer, json_t **out, struct err **errp);

struct session_db_counters {
    int64_t net_requests; /* net_events rows */
    int64_t net_allowed;  /* decision = 'allowed' */
    int64_t net_denied;   /* decision = 'denied' */
    int64_t dns_queries;
    int64_t dns_denied;
    int64_t model_calls;
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t thinking_tokens;
    double estimated_cost_usd;
    int64_t tool_calls;
    int64_t asks; /* policy_decisions rows with action 'ask' */
};

/* Totals over the whole file in one read transaction; a missing file gives
 * all zeros. */
int session_db_read_counters(const char *path, struct session_db_counters *out, struct err **errp);

/* ---- telemetry reads for the API (docs/telemetry.md "Readers") ---- */

/* History layers, as a bit set; "all" is every layer that has rows. */
#define SDB_LAYER_EXEC  (1u << 0)
#define SDB_LAYER_NET   (1u << 1)
#define SDB_LAYER_DNS   (1u << 2)
#define SDB_LAYER_MODEL (1u << 3)
#define SDB_LAYER_TOOL  (1u << 4)
#define SDB_LAYER_AUDIT (1u << 5) /* accepted; no rows in this version */
#define SDB_LAYER_ALL                                                                              \
    (SDB_LAYER_EXEC | SDB_LAYER_NET | SDB_LAYER_DNS | SDB_LAYER_MODEL | SDB_LAYER_TOOL)

/* "all", or a comma-separated list of exec, net, dns, model, tool, audit
 * ("net,dns"); NULL or "" is all. -1 with status 400 naming the bad word. */
int session_db_parse_layers(const char *text, unsigned *out, struct err **errp);

/* A `since` value: Unix ms (digits) or RFC 3339 UTC ("2026-11-29T10:00:00Z",
 * optional fraction, "Z" or "+00:00"). -1 with status 400 otherwise. */
int session_db_parse_time(const char *text, int64_t *ms, struct err **errp);

struct sdb_history_query {
    int64_t limit;      /* 0..10000 */
    int64_t offset;     /* >= 0 */
    const char *search; /* NULL/"" = none; <= 4 KiB; case-insensitive substring */
    unsigned layers;    /* SDB_LAYER_* bits; 0 = all */
    int64_t since_ms;   /* rows with timestamp >= since_ms; 0 = no bound */
};

/* The GET /vms/{id}/history body for any mix of layers, newest first
 * (timestamp, then layer name, then id). Exec rows are exactly those of
 * session_db_history(); net, dns, model and tool rows carry their own
 * fields (docs/telemetry.md). Every row also has `timestamp_ms` and `id`.
 * Search matches per layer: exec command; net domain, path, method,
 * process_name, matched_rule, reason; dns qname, process_name, matched_rule,
 * reason; model provider, model, process_name; tool tool_name, server_name,
 * process_name. Bad arguments: status 400. *out is a new reference. */
int session_db_history_query(const char *path, const struct sdb_history_query *q, json_t **out,
                             struct err **errp);

/* Everything GET /vms/{id}/stats reports from the file. */
struct session_db_stats {
    struct session_db_counters c; /* exactly session_db_read_counters() */
    int64_t net_error;            /* decision = 'error' */
    int64_t net_bytes_sent;
    int64_t net_bytes_received;
    int64_t dns_allowed;
    int64_t dns_error;
    int64_t dns_cache_hits;
    int64_t cache_write_tokens;
    int64_t asks_pending; /* asks still waiting for an answer */
    int64_t exec_count;
    int64_t gap_rows;    /* telemetry_gaps rows */
    int64_t gap_dropped; /* sum of their `dropped` */
};

/* One read transaction; a missing file gives all zeros. */
int session_db_read_stats(const char *path, struct session_db_stats *out, struct err **errp);

/* The stats as the flat JSON object of GET /vms/{id}/stats (new reference;
 * NULL on ENOMEM). */
json_t *session_db_stats_json(const struct session_db_stats *s);

/* Writer metrics as JSON: {depth, bytes, high_water, written, transactions,
 * gap_rows, txn_p50_us, txn_p99_us, enqueued:{<table>:n}, dropped:{...},
 * failed:{...}} (new reference; NULL on ENOMEM). */
json_t *session_db_metrics_json(const struct session_db_metrics *m);

#endif
