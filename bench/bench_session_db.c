/* Micro-benchmark of the session.db writer (docs/telemetry.md).
 *
 * Side by side in one run, on the same machine and disk:
 *   direct  - one thread inserting the rows itself with a prepared statement,
 *             1,000 rows per transaction, WAL + synchronous=NORMAL: the floor
 *             SQLite sets.
 *   queued  - session_db: the producer enqueues every row (its cost per op is
 *             what the event loop pays), the writer thread commits them; the
 *             clock stops when session_db_flush() returns.
 *   drain   - session_db with the rows queued first (writer paused): the
 *             writer thread's own rate.
 * Queue caps are raised so that nothing is dropped. Usage:
 *   bench_session_db [rows]   (default 200000)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "store/session_db.h"
#include "store/store.h"

static char dir[] = "/tmp/capsem-bench-sdb-XXXXXX";
static const char out_text[] = "total 48\ndrwx------ 5 root root 4096 Nov 29 10:00 .\n"
                               "-rw-r--r-- 1 root root  220 Nov 29 10:00 .bashrc\n";

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static double run_direct(const char *path, long n)
{
    sqlite3 *c = NULL;
    struct err *e = NULL;
    struct session_db *db = NULL;
    /* Create the schema through session_db, then write with a bare connection. */
    session_db_open(path, NULL, &db, NULL);
    session_db_close(db, NULL);
    if (store_open_rw(path, &c, &e) < 0) {
        fprintf(stderr, "%s\n", err_msg(e));
        exit(1);
    }
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(c,
                       "INSERT INTO exec_events(id,timestamp,exec_id,command,exit_code,"
                       "duration_ms,stdout_preview,stderr_preview,stdout_bytes,stderr_bytes,"
                       "source,process_name,pid) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       -1, &st, NULL);
    uint64_t t0 = time_mono_us();
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0)
            sqlite3_exec(c, i ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "ls -la /root # %ld", i);
        sqlite3_bind_int64(st, 1, i + 1);
        sqlite3_bind_int64(st, 2, 1795946400000 + i);
        sqlite3_bind_text(st, 3, "exec-1", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, cmd, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, 0);
        sqlite3_bind_int(st, 6, 12);
        sqlite3_bind_text(st, 7, out_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, (int)sizeof(out_text) - 1);
        sqlite3_bind_int(st, 10, 0);
        sqlite3_bind_text(st, 11, "api", -1, SQLITE_STATIC);
        sqlite3_bind_null(st, 12);
        sqlite3_bind_null(st, 13);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_exec(c, "COMMIT", NULL, NULL, NULL);
    double secs = (double)(time_mono_us() - t0) / 1e6;
    sqlite3_finalize(st);
    sqlite3_close(c);
    return secs;
}

/* With paused = true the rows are queued first and the clock covers only the
 * writer draining them; else producer and writer run concurrently. */
static double run_queued(const char *path, long n, bool paused, double *enqueue_ns,
                         struct session_db_metrics *m)
{
    struct session_db_opts o = {
        .max_ops = (size_t)n + 1, .max_bytes = (size_t)n * 1024, .start_paused = paused};
    struct session_db *db = NULL;
    struct err *e = NULL;
    if (session_db_open(path, &o, &db, &e) < 0) {
        fprintf(stderr, "%s\n", err_msg(e));
        exit(1);
    }
    uint64_t t0 = time_mono_us();
    for (long i = 0; i < n; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "ls -la /root # %ld", i);
        struct sdb_exec_event ev = {.timestamp_ms = 1795946400000 + i,
                                    .exec_id = "exec-1",
                                    .command = cmd,
                                    .has_exit_code = true,
                                    .duration_ms = 12,
                                    .stdout_preview = out_text,
                                    .stderr_preview = "",
                                    .stdout_bytes = (int64_t)sizeof(out_text) - 1,
                                    .source = "api"};
        session_db_add_exec(db, &ev, NULL);
    }
    uint64_t t1 = time_mono_us();
    if (paused) {
        t0 = t1;
        session_db_set_paused(db, false);
    }
    session_db_flush(db, 600000, NULL);
    uint64_t t2 = time_mono_us();
    session_db_get_metrics(db, m);
    session_db_close(db, NULL);
    if (enqueue_ns)
        *enqueue_ns = (double)(t1 - t0) * 1000.0 / (double)n;
    return (double)(t2 - t0) / 1e6;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    if (n <= 0 || !mkdtemp(dir))
        return 1;
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof(p1), "%s/direct.db", dir);
    snprintf(p2, sizeof(p2), "%s/queued.db", dir);
    snprintf(p3, sizeof(p3), "%s/drain.db", dir);
    double d = run_direct(p1, n);
    double enq_ns;
    struct session_db_metrics m, m2;
    double q = run_queued(p2, n, false, &enq_ns, &m);
    double w = run_queued(p3, n, true, NULL, &m2);
    uint64_t dropped = 0;
    for (int t = 0; t < SDB_TABLE_COUNT; t++)
        dropped += m.dropped[t] + m.failed[t];
    printf("rows: %ld exec_events (%zu-byte stdout preview)\n", n, sizeof(out_text) - 1);
    printf("direct  : %.3f s  %.0f rows/s\n", d, (double)n / d);
    printf("queued  : %.3f s  %.0f rows/s  (producer %.0f ns/op, %llu transactions, "
           "p50 %u us, p99 %u us, high-water %zu, dropped %llu)\n",
           q, (double)n / q, enq_ns, (unsigned long long)m.transactions, m.txn_p50_us, m.txn_p99_us,
           m.high_water, (unsigned long long)dropped);
    printf("drain   : %.3f s  %.0f rows/s  (writer alone on a pre-filled queue, p50 %u us, "
           "p99 %u us)\n",
           w, (double)n / w, m2.txn_p50_us, m2.txn_p99_us);
    printf("ratio queued/direct throughput: %.2f, drain/direct: %.2f\n", d / q, d / w);
    remove_db(p1);
    remove_db(p2);
    remove_db(p3);
    rmdir(dir);
    return 0;
}
