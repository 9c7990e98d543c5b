/* Unit tests for session.db: schema and migrations, the queued writer
 * (batches, drops, reserved slots, gaps, failing ops, flush, close), the
 * readers (history JSON, counters) and a multi-producer stress run. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "store/session_db.h"
#include "store/session_schema.h"
#include "store/store.h"
#include "tap.h"

static char dir[] = "/tmp/capsem-test-sdb-XXXXXX";
static int file_no;

/* A fresh database path per test. */
static void new_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/s%d.db", dir, ++file_no);
}

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static int64_t q_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        diag("query failed: %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* First column of the first row as a heap string ("" for none). */
static char *q_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v ? v : strdup("");
}

static int exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK)
        diag("exec failed: %s: %s", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

static struct session_db *open_db(const char *path, const struct session_db_opts *o)
{
    struct err *e = NULL;
    struct session_db *db = NULL;
    if (session_db_open(path, o, &db, &e) < 0) {
        diag("open %s: %s", path, err_msg(e));
        err_free(e);
        return NULL;
    }
    return db;
}

static bool flush_ok(struct session_db *db)
{
    struct err *e = NULL;
    int rc = session_db_flush(db, 10000, &e);
    if (rc < 0)
        diag("flush: %s", err_msg(e));
    err_free(e);
    return rc == 0;
}

static bool close_ok(struct session_db *db)
{
    struct err *e = NULL;
    int rc = session_db_close(db, &e);
    if (rc < 0)
        diag("close: %s", err_msg(e));
    err_free(e);
    return rc == 0;
}

static int64_t add_exec(struct session_db *db, int64_t ts, const char *cmd, int code)
{
    struct sdb_exec_event ev = {.timestamp_ms = ts,
                                .command = cmd,
                                .has_exit_code = true,
                                .exit_code = code,
                                .duration_ms = 7,
                                .stdout_preview = "out",
                                .stderr_preview = "",
                                .stdout_bytes = 3,
                                .source = "api"};
    return session_db_add_exec(db, &ev, NULL);
}

/* ---------- schema ---------- */

static void check_columns(const char *path)
{
    sqlite3 *c = NULL;
    sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL);
    int bad = 0;
    for (int t = 0; t < SDB_TABLE_COUNT; t++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", sdb_tables[t].name);
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(c, sql, -1, &st, NULL);
        size_t i = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            const char *type = (const char *)sqlite3_column_text(st, 2);
            const char *want = i == 0 ? "id" : i == 1 ? "timestamp" : NULL;
            const char *wtype = i < 2 ? "INTEGER" : NULL;
            if (i >= 2 && i - 2 < sdb_tables[t].ncols) {
                want = sdb_tables[t].cols[i - 2].name;
                wtype = sdb_tables[t].cols[i - 2].type;
            }
            if (!want || strcmp(want, name) != 0 || strcmp(wtype, type) != 0) {
                diag("%s column %zu: %s %s", sdb_tables[t].name, i, name, type);
                bad++;
            }
            i++;
        }
        if (i != sdb_tables[t].ncols + 2) {
            diag("%s: %zu columns, descriptor has %zu", sdb_tables[t].name, i,
                 sdb_tables[t].ncols + 2);
            bad++;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(c);
    is_int(bad, 0, "every table's columns and types match the descriptors");
}

static void test_schema(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db *db = open_db(path, NULL);
    ok(db != NULL, "open creates session.db");
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "session.db is mode 0600");
    is_int(q_int(path, "PRAGMA user_version"), SESSION_DB_VERSION, "user_version is current");
    _cleanup_free_ char *jm = q_text(path, "PRAGMA journal_mode");
    is_str(jm, "wal", "journal_mode is WAL");
    check_columns(path);
    is_int(
        q_int(path, "SELECT COUNT(*) FROM sqlite_master WHERE type='index' AND name LIKE '%_ts'"),
        SDB_TABLE_COUNT, "a timestamp index on every table");
    is_int(q_int(path, "SELECT COUNT(*) FROM sqlite_master WHERE type='index' AND (sql LIKE "
                       "'%(domain)' OR sql LIKE '%(qname)' OR sql LIKE '%(call_id)' OR sql LIKE "
                       "'%(event_id)' OR sql LIKE '%(net_event_id)')"),
           5, "the five lookup indexes exist");
    is_int(add_exec(db, 1000, "first", 0), 1, "first insert gets id 1");
    is_int(add_exec(db, 2000, "second", 0), 2, "second insert gets id 2");
    ok(close_ok(db), "close");

    db = open_db(path, NULL);
    ok(db != NULL, "reopen an existing file");
    is_int(add_exec(db, 3000, "third", 0), 3, "ids continue from MAX(id)+1 after reopen");
    ok(close_ok(db), "close again");
    is_int(q_int(path, "SELECT COUNT(*) FROM exec_events"), 3, "three rows after two sessions");
    is_int(q_int(path, "PRAGMA user_version"), SESSION_DB_VERSION, "version unchanged by reopen");

    exec_sql(path, "PRAGMA user_version=99");
    struct err *e = NULL;
    struct session_db *db2 = NULL;
    is_int(session_db_open(path, NULL, &db2, &e), -1, "a newer schema version is refused");
    ok(e && e->status == 409 && strstr(e->msg, "newer") && strstr(e->msg, "99"),
       "the error says the file is newer (%s)", err_msg(e));
    err_free(e);
    remove_db(path);
}

/* An empty (version 0) file is upgraded; the migration runner applies only
 * the missing steps (step 1 would fail if it ran twice). */
static void test_migrations(void)
{
    char path[256];
    new_path(path, sizeof(path));
    exec_sql(path, "CREATE TABLE unrelated(x)");
    struct session_db *db = open_db(path, NULL);
    ok(db != NULL, "a version 0 file opens");
    ok(close_ok(db), "close");
    is_int(q_int(path, "PRAGMA user_version"), SESSION_DB_VERSION, "upgraded to current");
    is_int(q_int(path, "SELECT COUNT(*) FROM unrelated"), 0, "existing content kept");
    remove_db(path);

    new_path(path, sizeof(path));
    const char *steps[] = {"CREATE TABLE a(x)", "CREATE TABLE b(x)", "ALTER TABLE a ADD y"};
    sqlite3 *c = NULL;
    struct err *e = NULL;
    ok(store_open_rw(path, &c, &e) == 0, "store_open_rw");
    is_int(store_migrate(c, "t.db", steps, 2, &e), 0, "migrate 0 -> 2");
    is_int(store_migrate(c, "t.db", steps, 2, &e), 0, "migrate 2 -> 2 is a no-op");
    is_int(store_migrate(c, "t.db", steps, 3, &e), 0, "migrate 2 -> 3 runs only step 3");
    int v = 0;
    store_user_version(c, &v, &e);
    is_int(v, 3, "user_version 3");
    is_int(store_migrate(c, "t.db", steps, 2, &e), -1, "an older binary refuses version 3");
    ok(e && e->status == 409, "status 409: %s", err_msg(e));
    err_free(e);
    e = NULL;
    const char *broken[] = {"CREATE TABLE a(x)", "CREATE TABLE b(x)", "ALTER TABLE a ADD y",
                            "CREATE TABLE c(x)", "SYNTAX ERROR"};
    is_int(store_migrate(c, "t.db", broken, 5, &e), -1, "a failing step fails the migration");
    store_user_version(c, &v, NULL);
    is_int(v, 3, "and rolls back to the previous version");
    sqlite3_stmt *st = NULL;
    ok(sqlite3_prepare_v2(c, "SELECT * FROM c", -1, &st, NULL) != SQLITE_OK,
       "including the steps before the failing one");
    sqlite3_finalize(st);
    err_free(e);
    sqlite3_close(c);
    remove_db(path);
}

/* ---------- history ---------- */

static json_t *history(const char *path, int64_t limit, int64_t offset, const char *search,
                       const char *layer)
{
    json_t *out = NULL;
    struct err *e = NULL;
    if (session_db_history(path, limit, offset, search, layer, &out, &e) < 0) {
        diag("history: %s", err_msg(e));
        err_free(e);
        return NULL;
    }
    return out;
}

static const char *cmd_at(json_t *h, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(h, "commands"), i), "command"));
}

static int64_t total_of(json_t *h)
{
    return json_integer_value(json_object_get(h, "total"));
}

static size_t count_of(json_t *h)
{
    return json_array_size(json_object_get(h, "commands"));
}

static void check_first_row(json_t *h)
{
    json_t *r = json_array_get(json_object_get(h, "commands"), 0);
    char *s = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
    is_str(s,
           "{\"command\":\"cmd 1999\",\"duration_ms\":7,\"exit_code\":1999,\"id\":2000,"
           "\"layer\":\"exec\",\"stderr_preview\":\"\",\"stdout_preview\":\"out\","
           "\"timestamp\":\"2026-11-29T10:33:19Z\",\"timestamp_ms\":1795948399000}",
           "newest row, exactly");
    free(s);
}

static void fill_history(struct session_db *db)
{
    const int64_t base = 1795946400000; /* 2026-11-29T10:00:00Z */
    for (int i = 0; i < 2000; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "cmd %d", i);
        if (add_exec(db, base + i * 1000, cmd, i) != i + 1)
            break;
    }
    add_exec(db, base - 5000, "echo 50% done", 0);
    add_exec(db, base - 6000, "echo 50 percent", 0);
    add_exec(db, base - 7000, "touch a_b", 0);
    add_exec(db, base - 8000, "touch axb", 0);
    add_exec(db, base - 9000, "ECHO Upper", 0);
    struct sdb_exec_event ev = {.timestamp_ms = base - 10000, .command = "killed"};
    session_db_add_exec(db, &ev, NULL);
    ok(flush_ok(db), "flush 2006 exec rows");
}

static void check_pages(const char *path)
{
    json_t *h = history(path, 10, 0, NULL, NULL);
    is_int(total_of(h), 2006, "total counts every row");
    is_int(count_of(h), 10, "limit 10 rows");
    is_str(cmd_at(h, 0), "cmd 1999", "newest first");
    is_str(cmd_at(h, 9), "cmd 1990", "descending order");
    ok(json_is_true(json_object_get(h, "has_more")), "has_more while rows remain");
    check_first_row(h);
    json_decref(h);

    h = history(path, 10, 2000, NULL, "exec");
    is_int(count_of(h), 6, "last page holds the remaining 6");
    is_str(cmd_at(h, 0), "echo 50% done", "oldest rows last");
    ok(json_is_false(json_object_get(h, "has_more")), "no more after the last page");
    json_t *k = json_array_get(json_object_get(h, "commands"), 5);
    ok(json_is_null(json_object_get(k, "exit_code")) &&
           json_is_null(json_object_get(k, "stdout_preview")),
       "NULL exit code and preview are JSON null");
    json_decref(h);
}

static void check_search(const char *path)
{
    json_t *h = history(path, 100, 0, "50%", "all");
    is_int(total_of(h), 1, "search '50%%' matches %% literally");
    is_str(cmd_at(h, 0), "echo 50% done", "the right row");
    json_decref(h);
    h = history(path, 100, 0, "a_b", "all");
    is_int(total_of(h), 1, "search 'a_b' matches _ literally");
    is_str(cmd_at(h, 0), "touch a_b", "not touch axb");
    json_decref(h);
    h = history(path, 100, 0, "echo u", "all");
    is_int(total_of(h), 1, "search is case-insensitive");
    is_str(cmd_at(h, 0), "ECHO Upper", "ECHO Upper found by 'echo u'");
    json_decref(h);
    h = history(path, 3, 1, "cmd 19", "all");
    is_int(total_of(h), 111, "search total (cmd 19, cmd 190-199, cmd 1900-1999)");
    is_str(cmd_at(h, 0), "cmd 1998", "search with offset 1");
    ok(count_of(h) == 3 && json_is_true(json_object_get(h, "has_more")), "search page");
    json_decref(h);
    h = history(path, 10, 0, NULL, "audit");
    ok(h && total_of(h) == 0 && count_of(h) == 0, "layer audit has no rows in this version");
    json_decref(h);
}

static void test_history(void)
{
    char path[256];
    new_path(path, sizeof(path));
    json_t *h = history(path, 10, 0, NULL, "all");
    ok(h && total_of(h) == 0 && count_of(h) == 0 && json_is_false(json_object_get(h, "has_more")),
       "a missing session.db has an empty history");
    json_decref(h);
    struct session_db *db = open_db(path, NULL);
    fill_history(db);
    check_pages(path);
    check_search(path);
    struct err *e = NULL;
    json_t *x = NULL;
    is_int(session_db_history(path, 10, 0, NULL, "bogus", &x, &e), -1, "unknown layer refused");
    ok(e && e->status == 400, "status 400: %s", err_msg(e));
    err_free(e);
    e = NULL;
    is_int(session_db_history(path, -1, 0, NULL, NULL, &x, &e), -1, "negative limit refused");
    err_free(e);
    ok(close_ok(db), "close");
    h = history(path, 1, 0, NULL, NULL);
    is_int(total_of(h), 2006, "history reads the closed file too");
    json_decref(h);
    remove_db(path);
}

/* ---------- truncation ---------- */

static void test_truncation(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db *db = open_db(path, NULL);
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = 0;
    struct sdb_exec_event ev = {.timestamp_ms = 1, .command = "big", .stdout_preview = big};
    ok(session_db_add_exec(db, &ev, NULL) == 1, "queue a 100 KiB preview");
    for (size_t i = 0; i + 1 < n; i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* é */
    ev.command = "utf8";
    ev.stdout_preview = big;
    session_db_add_exec(db, &ev, NULL);
    ok(flush_ok(db), "flush");
    is_int(q_int(path, "SELECT length(CAST(stdout_preview AS BLOB)) FROM exec_events WHERE id=1"),
           SESSION_DB_TEXT_MAX, "capped at exactly 64 KiB");
    _cleanup_free_ char *tail =
        q_text(path, "SELECT substr(stdout_preview, -12) FROM exec_events WHERE id=1");
    is_str(tail, SESSION_DB_TRUNC_MARK, "ends with the truncation mark");
    int64_t len2 =
        q_int(path, "SELECT length(CAST(stdout_preview AS BLOB)) FROM exec_events WHERE id=2");
    ok(len2 <= SESSION_DB_TEXT_MAX && len2 >= SESSION_DB_TEXT_MAX - 1, "2-byte chars: %lld bytes",
       (long long)len2);
    json_t *h = history(path, 1, 0, "utf8", NULL);
    ok(h && json_is_string(json_object_get(json_array_get(json_object_get(h, "commands"), 0),
                                           "stdout_preview")),
       "the cut keeps valid UTF-8");
    json_decref(h);
    char *t = session_db_truncate("hello world, this is long", 25, 20);
    is_str(t, "hello " SESSION_DB_TRUNC_MARK, "truncate helper: 20 bytes including the mark");
    free(t);
    t = session_db_truncate("short", 5, 20);
    is_str(t, "short", "short strings unchanged");
    free(t);
    free(big);
    ok(close_ok(db), "close");
    remove_db(path);
}

/* ---------- overflow, reserved slots, gaps ---------- */

static int64_t add_policy(struct session_db *db, int64_t ts, const char *status)
{
    struct sdb_val v[] = {SDB_TEXT_V("subject", "net"), SDB_TEXT_V("action", "ask"),
                          SDB_TEXT_V("status", status), SDB_TEXT_V("host", "example.com")};
    return session_db_insert(db, SDB_POLICY_DECISIONS, ts, v, 4, NULL);
}

static int64_t add_net(struct session_db *db, int64_t ts, const char *decision)
{
    struct sdb_val v[] = {SDB_TEXT_V("method", "GET"), SDB_TEXT_V("domain", "example.com"),
                          SDB_INT_V("port", 443), SDB_TEXT_V("decision", decision)};
    return session_db_insert(db, SDB_NET_EVENTS, ts, v, 4, NULL);
}

static void check_overflow_counts(struct session_db *db)
{
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    is_int(m.depth, 110, "depth = 100 general + 10 reserved");
    is_int(m.high_water, 110, "high-water 110");
    is_int(m.enqueued[SDB_EXEC_EVENTS], 100, "100 exec ops queued");
    is_int(m.dropped[SDB_EXEC_EVENTS], 50, "50 exec ops dropped");
    is_int(m.enqueued[SDB_POLICY_DECISIONS], 10, "policy_decisions used its 10 reserved slots");
    is_int(m.dropped[SDB_POLICY_DECISIONS], 5, "then 5 policy ops dropped");
    is_int(m.dropped[SDB_NET_EVENTS], 3, "3 net ops dropped");
    is_int(m.dropped[SDB_DNS_EVENTS], 0, "no dns drops");
}

static void test_overflow(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db_opts o = {.max_ops = 100, .reserved_ops = 10, .start_paused = true};
    struct session_db *db = open_db(path, &o);
    int queued = 0, dropped = 0;
    for (int i = 0; i < 150; i++) {
        int64_t id = add_exec(db, 5000 + i, "x", 0);
        queued += id > 0;
        dropped += id == 0;
    }
    ok(queued == 100 && dropped == 50, "exec: 100 queued, 50 dropped (returned 0)");
    is_int(add_net(db, 777, "allowed"), 0, "net op dropped when full");
    add_net(db, 778, "allowed");
    add_net(db, 779, "allowed");
    int pq = 0;
    for (int i = 0; i < 15; i++)
        pq += add_policy(db, 9000 + i, "pending") > 0;
    is_int(pq, 10, "policy_decisions still queued 10 ops into the reserved slots");
    check_overflow_counts(db);
    struct err *e = NULL;
    is_int(session_db_flush(db, 50, &e), -1, "flush times out while the writer is paused");
    ok(e && e->code == ETIMEDOUT, "ETIMEDOUT: %s", err_msg(e));
    err_free(e);

    session_db_set_paused(db, false);
    ok(flush_ok(db), "flush after recovery");
    is_int(q_int(path, "SELECT COUNT(*) FROM exec_events"), 100, "100 exec rows written");
    is_int(q_int(path, "SELECT COUNT(*) FROM policy_decisions"), 10, "10 policy rows written");
    is_int(q_int(path, "SELECT COUNT(*) FROM telemetry_gaps"), 3, "one gap row per table");
    _cleanup_free_ char *g1 = q_text(
        path, "SELECT table_name||','||dropped||','||from_ts||','||to_ts FROM telemetry_gaps "
              "WHERE table_name='exec_events'");
    is_str(g1, "exec_events,50,5100,5149", "exec gap: count and event time range");
    _cleanup_free_ char *g2 = q_text(
        path, "SELECT table_name||','||dropped||','||from_ts||','||to_ts FROM telemetry_gaps "
              "WHERE table_name='net_events'");
    is_str(g2, "net_events,3,777,779", "net gap");
    _cleanup_free_ char *g3 =
        q_text(path, "SELECT dropped||','||from_ts||','||to_ts FROM telemetry_gaps "
                     "WHERE table_name='policy_decisions'");
    is_str(g3, "5,9010,9014", "policy gap");
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    is_int(m.gap_rows, 3, "metrics count 3 gap rows");
    is_int(m.written, 110, "110 ops written");
    is_int(m.depth, 0, "queue empty");
    ok(m.transactions >= 1 && m.txn_p99_us >= m.txn_p50_us && m.txn_p50_us > 0,
       "transaction latency p50 %u us, p99 %u us", m.txn_p50_us, m.txn_p99_us);
    add_exec(db, 6000, "after", 0);
    ok(flush_ok(db), "flush again");
    is_int(q_int(path, "SELECT COUNT(*) FROM telemetry_gaps"), 3, "no new gap without new drops");
    ok(close_ok(db), "close");
    remove_db(path);
}

static void test_byte_cap(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db_opts o = {.max_bytes = 10000, .start_paused = true};
    struct session_db *db = open_db(path, &o);
    char *p = malloc(4001);
    memset(p, 'b', 4000);
    p[4000] = 0;
    struct sdb_exec_event ev = {.timestamp_ms = 1, .command = "b", .stdout_preview = p};
    int64_t a = session_db_add_exec(db, &ev, NULL);
    int64_t b = session_db_add_exec(db, &ev, NULL);
    int64_t c = session_db_add_exec(db, &ev, NULL);
    ok(a == 1 && b == 2 && c == 0, "byte cap: two 4 KB ops fit in 10000 bytes, the third drops");
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    ok(m.bytes > 8000 && m.bytes <= 10000, "queued bytes %zu", m.bytes);
    ok(close_ok(db), "close drains a paused queue");
    is_int(q_int(path, "SELECT COUNT(*) FROM exec_events"), 2, "both rows written by close");
    is_int(q_int(path, "SELECT dropped FROM telemetry_gaps"), 1, "and the gap recorded");
    free(p);
    remove_db(path);
}

/* ---------- failing op, references, updates ---------- */

static void test_failing_op(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db_opts o = {.start_paused = true};
    struct session_db *db = open_db(path, &o);
    for (int i = 1; i <= 5; i++) {
        char cmd[16];
        snprintf(cmd, sizeof(cmd), "op %d", i);
        add_exec(db, i, cmd, 0);
    }
    /* Someone else took id 3: the writer's insert of op 3 fails its UNIQUE
     * constraint; the batch is retried op by op and only op 3 is lost. */
    is_int(exec_sql(path, "INSERT INTO exec_events(id, timestamp, command) VALUES(3, 3, 'other')"),
           SQLITE_OK, "external row with id 3");
    session_db_set_paused(db, false);
    ok(flush_ok(db), "flush");
    _cleanup_free_ char *cmds =
        q_text(path, "SELECT group_concat(command, '|') FROM (SELECT command FROM exec_events "
                     "ORDER BY id)");
    is_str(cmds, "op 1|op 2|other|op 4|op 5", "only the failing op was dropped");
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    is_int(m.failed[SDB_EXEC_EVENTS], 1, "failed counted for exec_events");
    is_int(m.written, 4, "4 ops written");

    /* Producer-assigned ids: reference and update rows before they are written. */
    int64_t net = add_net(db, 100, "allowed");
    struct sdb_val mc[] = {SDB_INT_V("net_event_id", net), SDB_TEXT_V("model", "m1"),
                           SDB_INT_V("input_tokens", 10)};
    int64_t model = session_db_insert(db, SDB_MODEL_CALLS, 101, mc, 3, NULL);
    struct sdb_val tc[] = {SDB_INT_V("model_call_id", model), SDB_TEXT_V("tool_name", "t")};
    int64_t tool = session_db_insert(db, SDB_TOOL_CALLS, 102, tc, 2, NULL);
    int64_t ask = add_policy(db, 103, "pending");
    struct sdb_val up[] = {SDB_TEXT_V("status", "approved"), SDB_TEXT_V("resolver", "api"),
                           SDB_INT_V("waited_ms", 1234)};
    is_int(session_db_update(db, SDB_POLICY_DECISIONS, ask, up, 3, NULL), 1, "update queued");
    ok(flush_ok(db), "flush");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT net_event_id FROM model_calls WHERE id=%lld",
             (long long)model);
    is_int(q_int(path, sql), net, "model_calls.net_event_id references the net row");
    snprintf(sql, sizeof(sql), "SELECT model_call_id FROM tool_calls WHERE id=%lld",
             (long long)tool);
    is_int(q_int(path, sql), model, "tool_calls.model_call_id references the model call");
    snprintf(sql, sizeof(sql),
             "SELECT status||','||resolver||','||waited_ms FROM policy_decisions WHERE id=%lld",
             (long long)ask);
    _cleanup_free_ char *st = q_text(path, sql);
    is_str(st, "approved,api,1234", "the pending ask row was updated after its insert");
    ok(close_ok(db), "close");
    remove_db(path);
}

static void test_bad_input(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db *db = open_db(path, NULL);
    struct err *e = NULL;
    struct sdb_val v1[] = {SDB_TEXT_V("nope", "x")};
    is_int(session_db_insert(db, SDB_NET_EVENTS, 0, v1, 1, &e), -1, "unknown column refused");
    ok(e && strstr(e->msg, "net_events has no column nope"), "message: %s", err_msg(e));
    err_free(e);
    e = NULL;
    struct sdb_val v2[] = {SDB_TEXT_V("domain", "a"), SDB_TEXT_V("domain", "b")};
    is_int(session_db_insert(db, SDB_NET_EVENTS, 0, v2, 2, &e), -1, "duplicate column refused");
    err_free(e);
    e = NULL;
    struct sdb_val v3[] = {SDB_INT_V("dropped", 1)};
    is_int(session_db_insert(db, SDB_TELEMETRY_GAPS, 0, v3, 1, &e), -1,
           "producers cannot write telemetry_gaps");
    err_free(e);
    e = NULL;
    struct sdb_val v4[] = {SDB_TEXT_V("id", "1")};
    is_int(session_db_insert(db, SDB_FS_EVENTS, 0, v4, 1, &e), -1, "id is not a settable column");
    err_free(e);
    e = NULL;
    is_int(session_db_update(db, SDB_FS_EVENTS, 0, v4, 1, &e), -1, "update of row 0 refused");
    err_free(e);
    e = NULL;
    is_int(session_db_insert(db, (enum sdb_table)42, 0, NULL, 0, &e), -1, "bad table refused");
    err_free(e);
    struct sdb_val v5[] = {SDB_TEXT_V("path", "/root/a"), SDB_NULL_V("name"),
                           SDB_BLOB_V("directory", "\0\1", 2), SDB_REAL_V("size", 1.5)};
    ok(session_db_insert(db, SDB_FS_EVENTS, 0, v5, 4, NULL) == 1, "mixed value types");
    ok(flush_ok(db), "flush");
    is_int(q_int(path, "SELECT (name IS NULL) + (typeof(directory)='blob') * 2 + "
                       "(typeof(size)='real') * 4 + (timestamp > 1700000000000) * 8 "
                       "FROM fs_events"),
           15, "NULL, blob, real and a default timestamp stored as such");
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    is_int(m.enqueued[SDB_FS_EVENTS], 1, "rejected calls are not counted as enqueued");
    ok(close_ok(db), "close");
    remove_db(path);
}

/* ---------- close, WAL, concurrent readers ---------- */

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_close_checkpoint(void)
{
    char path[256], wal[300];
    new_path(path, sizeof(path));
    snprintf(wal, sizeof(wal), "%s-wal", path);
    struct session_db *db = open_db(path, NULL);
    for (int i = 0; i < 3000; i++)
        add_net(db, i + 1, i % 3 ? "allowed" : "denied");
    ok(flush_ok(db), "flush 3000 rows");
    struct stat st;
    ok(stat(wal, &st) == 0 && st.st_size > 0, "the WAL holds the rows while open");
    ok((st.st_mode & 0777) == 0600, "the -wal file is mode 0600 too");
    struct session_db_counters c;
    ok(session_db_read_counters(path, &c, NULL) == 0, "counters while the writer is open");
    ok(c.net_requests == 3000 && c.net_denied == 1000 && c.net_allowed == 2000,
       "net counters %lld/%lld/%lld", (long long)c.net_requests, (long long)c.net_allowed,
       (long long)c.net_denied);
    ok(close_ok(db), "close");
    off_t ws = file_size(wal);
    ok(ws <= 0, "after close the WAL is empty or gone (%lld)", (long long)ws);
    is_int(q_int(path, "SELECT COUNT(*) FROM net_events"), 3000, "rows are in the main file");
    remove_db(path);
}

static void test_counters(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db_counters c;
    ok(session_db_read_counters(path, &c, NULL) == 0 && c.net_requests == 0,
       "missing file: zero counters");
    struct session_db *db = open_db(path, NULL);
    add_net(db, 1, "allowed");
    add_net(db, 2, "denied");
    add_net(db, 3, "error");
    struct sdb_val d[] = {SDB_TEXT_V("qname", "a.example"), SDB_TEXT_V("decision", "denied")};
    session_db_insert(db, SDB_DNS_EVENTS, 4, d, 2, NULL);
    for (int i = 0; i < 2; i++) {
        struct sdb_val mc[] = {SDB_INT_V("input_tokens", 100), SDB_INT_V("output_tokens", 20),
                               SDB_INT_V("cache_read_tokens", 5), SDB_INT_V("thinking_tokens", 3),
                               SDB_REAL_V("estimated_cost_usd", 0.25)};
        session_db_insert(db, SDB_MODEL_CALLS, 5, mc, 5, NULL);
    }
    struct sdb_val tc[] = {SDB_TEXT_V("tool_name", "x")};
    session_db_insert(db, SDB_TOOL_CALLS, 6, tc, 1, NULL);
    add_policy(db, 7, "pending");
    struct sdb_val pd[] = {SDB_TEXT_V("action", "block")};
    session_db_insert(db, SDB_POLICY_DECISIONS, 8, pd, 1, NULL);
    ok(close_ok(db), "close");
    ok(session_db_read_counters(path, &c, NULL) == 0, "read counters");
    ok(c.net_requests == 3 && c.net_allowed == 1 && c.net_denied == 1, "net 3/1/1");
    ok(c.dns_queries == 1 && c.dns_denied == 1, "dns 1/1");
    ok(c.model_calls == 2 && c.input_tokens == 200 && c.output_tokens == 40 &&
           c.cache_read_tokens == 10 && c.thinking_tokens == 6,
       "model calls and token sums");
    ok(c.estimated_cost_usd > 0.499 && c.estimated_cost_usd < 0.501, "cost sum 0.5");
    ok(c.tool_calls == 1 && c.asks == 1, "tool calls 1, asks 1");
    remove_db(path);
}

/* ---------- every layer: history, stats ---------- */

#define T0 1795946400000 /* 2026-11-29T10:00:00Z */

static void fill_layers(struct session_db *db)
{
    add_exec(db, T0 + 1000, "curl -s https://example.com", 0);
    struct sdb_val net[] = {SDB_TEXT_V("process_name", "curl"),
                            SDB_INT_V("pid", 42),
                            SDB_TEXT_V("conn_type", "https"),
                            SDB_TEXT_V("method", "GET"),
                            SDB_TEXT_V("scheme", "https"),
                            SDB_TEXT_V("domain", "example.com"),
                            SDB_INT_V("port", 443),
                            SDB_TEXT_V("path", "/a/b"),
                            SDB_INT_V("status_code", 403),
                            SDB_TEXT_V("decision", "denied"),
                            SDB_TEXT_V("matched_rule", "default:default-deny"),
                            SDB_TEXT_V("reason", "default_deny"),
                            SDB_INT_V("bytes_sent", 10),
                            SDB_INT_V("bytes_received", 200),
                            SDB_INT_V("duration_ms", 12)};
    session_db_insert(db, SDB_NET_EVENTS, T0 + 2000, net, ARRAY_SIZE(net), NULL);
    struct sdb_val fail[] = {SDB_TEXT_V("conn_type", "connection"),
                             SDB_TEXT_V("dst_ip", "1.2.3.4"),
                             SDB_INT_V("port", 443),
                             SDB_TEXT_V("decision", "error"),
                             SDB_TEXT_V("reason", "unknown_protocol"),
                             SDB_INT_V("bytes_sent", 5)};
    session_db_insert(db, SDB_NET_EVENTS, T0 + 3000, fail, ARRAY_SIZE(fail), NULL);
    struct sdb_val dns[] = {SDB_TEXT_V("qname", "example.com"), SDB_TEXT_V("qtype", "A"),
                            SDB_TEXT_V("rcode", "NOERROR"),     SDB_TEXT_V("decision", "allowed"),
                            SDB_INT_V("cache_hit", 1),          SDB_INT_V("suspicious", 0)};
    session_db_insert(db, SDB_DNS_EVENTS, T0 + 1500, dns, ARRAY_SIZE(dns), NULL);
    struct sdb_val mc[] = {SDB_TEXT_V("provider", "anthropic"),
                           SDB_TEXT_V("model", "claude-x"),
                           SDB_INT_V("stream", 1),
                           SDB_INT_V("input_tokens", 100),
                           SDB_INT_V("output_tokens", 20),
                           SDB_INT_V("cache_write_tokens", 7),
                           SDB_REAL_V("estimated_cost_usd", 0.125)};
    session_db_insert(db, SDB_MODEL_CALLS, T0 + 2000, mc, ARRAY_SIZE(mc), NULL);
    struct sdb_val tc[] = {SDB_TEXT_V("tool_name", "local__fetch_http"),
                           SDB_TEXT_V("status", "requested")};
    session_db_insert(db, SDB_TOOL_CALLS, T0 + 2500, tc, ARRAY_SIZE(tc), NULL);
    add_policy(db, T0 + 2600, "pending");
}

static json_t *hq(const char *path, unsigned layers, int64_t since, const char *search,
                  int64_t limit, int64_t offset)
{
    struct sdb_history_query q = {
        .limit = limit, .offset = offset, .search = search, .layers = layers, .since_ms = since};
    json_t *out = NULL;
    struct err *e = NULL;
    if (session_db_history_query(path, &q, &out, &e) < 0)
        diag("history: %s", err_msg(e));
    err_free(e);
    return out;
}

/* "layer:command" of every row, joined by " | ". */
static char *layer_cmds(json_t *h)
{
    static char out[1024];
    out[0] = 0;
    json_t *cmds = json_object_get(h, "commands");
    for (size_t i = 0; i < json_array_size(cmds); i++) {
        json_t *r = json_array_get(cmds, i);
        size_t n = strlen(out);
        snprintf(out + n, sizeof(out) - n, "%s%s:%s", i ? " | " : "",
                 json_string_value(json_object_get(r, "layer")),
                 json_string_value(json_object_get(r, "command")));
    }
    return out;
}

static void check_layer_rows(const char *path)
{
    json_t *h = hq(path, 0, 0, NULL, 100, 0);
    is_str(layer_cmds(h),
           "net:connection 1.2.3.4:443 | tool:local__fetch_http | model:anthropic claude-x | "
           "net:GET https://example.com:443/a/b | dns:A example.com | "
           "exec:curl -s https://example.com",
           "all layers, newest first; same ms: model before net");
    is_int(total_of(h), 6, "total over every layer (policy rows are not history)");
    json_t *net = json_array_get(json_object_get(h, "commands"), 3);
    json_t *want = json_loads(
        "{\"timestamp\":\"2026-11-29T10:00:02Z\",\"timestamp_ms\":1795946402000,\"layer\":\"net\","
        "\"id\":1,\"command\":\"GET https://example.com:443/a/b\",\"process_name\":\"curl\","
        "\"pid\":42,\"conn_type\":\"https\",\"method\":\"GET\",\"scheme\":\"https\","
        "\"domain\":\"example.com\",\"port\":443,\"dst_ip\":null,\"path\":\"/a/b\","
        "\"query\":null,\"status_code\":403,\"decision\":\"denied\","
        "\"matched_rule\":\"default:default-deny\",\"reason\":\"default_deny\","
        "\"error_detail\":null,\"bytes_sent\":10,\"bytes_received\":200,\"duration_ms\":12,"
        "\"ttfb_ms\":null,\"conn_id\":null,\"request_seq\":null,\"upstream_http_version\":null,"
        "\"ask_id\":null,\"credential_provider\":null}",
        0, NULL);
    ok(json_equal(net, want), "net row, field by field");
    json_decref(want);
    json_t *dns = json_array_get(json_object_get(h, "commands"), 4);
    ok(json_is_true(json_object_get(dns, "cache_hit")) &&
           json_is_false(json_object_get(dns, "suspicious")),
       "dns flags are booleans");
    json_t *mc = json_array_get(json_object_get(h, "commands"), 2);
    ok(json_is_true(json_object_get(mc, "stream")) &&
           json_real_value(json_object_get(mc, "estimated_cost_usd")) == 0.125 &&
           json_integer_value(json_object_get(mc, "cache_write_tokens")) == 7,
       "model row: stream, cost, tokens");
    json_decref(h);
}

static void check_layer_filters(const char *path)
{
    json_t *h = hq(path, SDB_LAYER_NET, 0, NULL, 100, 0);
    is_str(layer_cmds(h), "net:connection 1.2.3.4:443 | net:GET https://example.com:443/a/b",
           "layer net");
    json_decref(h);
    unsigned bits = 0;
    ok(session_db_parse_layers("dns,exec", &bits, NULL) == 0 &&
           bits == (SDB_LAYER_DNS | SDB_LAYER_EXEC),
       "parse dns,exec");
    h = hq(path, bits, 0, NULL, 100, 0);
    is_str(layer_cmds(h), "dns:A example.com | exec:curl -s https://example.com", "dns,exec");
    json_decref(h);
    h = hq(path, 0, T0 + 2000, NULL, 100, 0);
    is_int(total_of(h), 4, "since T0+2s keeps the 4 rows at or after it");
    json_decref(h);
    h = hq(path, 0, 0, "EXAMPLE.com", 100, 0);
    is_str(layer_cmds(h),
           "net:GET https://example.com:443/a/b | dns:A example.com | "
           "exec:curl -s https://example.com",
           "search matches domain, qname and command, case-insensitively");
    json_decref(h);
    h = hq(path, 0, 0, "default_deny", 100, 0);
    is_int(total_of(h), 1, "search matches the net reason");
    json_decref(h);
    h = hq(path, 0, 0, NULL, 2, 2);
    is_str(layer_cmds(h), "model:anthropic claude-x | net:GET https://example.com:443/a/b",
           "limit and offset across layers");
    ok(json_is_true(json_object_get(h, "has_more")), "has_more across layers");
    json_decref(h);
    h = hq(path, SDB_LAYER_AUDIT, 0, NULL, 100, 0);
    ok(total_of(h) == 0 && count_of(h) == 0, "audit alone: no rows");
    json_decref(h);
}

static void check_parsers(void)
{
    unsigned bits = 0;
    struct err *e = NULL;
    ok(session_db_parse_layers(NULL, &bits, NULL) == 0 && bits == SDB_LAYER_ALL, "NULL is all");
    ok(session_db_parse_layers("all", &bits, NULL) == 0 && bits == SDB_LAYER_ALL, "all");
    is_int(session_db_parse_layers("net,bogus", &bits, &e), -1, "unknown layer in a list");
    ok(e && e->status == 400 && strstr(err_msg(e), "'bogus'"), "400 naming it: %s", err_msg(e));
    err_free(e);
    e = NULL;
    is_int(session_db_parse_layers("net,", &bits, NULL), -1, "empty word refused");
    int64_t ms = 0;
    ok(session_db_parse_time("2026-11-29T10:00:00Z", &ms, NULL) == 0 && ms == T0, "RFC 3339");
    ok(session_db_parse_time("2026-11-29T10:00:00.25+00:00", &ms, NULL) == 0 && ms == T0 + 250,
       "fraction and +00:00");
    ok(session_db_parse_time("1795946400123", &ms, NULL) == 0 && ms == T0 + 123, "Unix ms");
    const char *bad[] = {"2026-02-30T10:00:00Z",
                         "2026-11-29T10:00:00",
                         "2026-11-29",
                         "2026-11-29T25:00:00Z",
                         "-5",
                         "",
                         "2026-11-29T10:00:00+01:00"};
    int refused = 0;
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        e = NULL;
        refused += session_db_parse_time(bad[i], &ms, &e) == -1 && e && e->status == 400;
        err_free(e);
    }
    is_int(refused, (int)ARRAY_SIZE(bad), "bad times refused with 400");
}

static void check_stats(const char *path)
{
    struct session_db_stats s;
    ok(session_db_read_stats(path, &s, NULL) == 0, "read stats");
    json_t *j = session_db_stats_json(&s);
    json_t *want = json_loads(
        "{\"net_requests\":2,\"net_allowed\":0,\"net_denied\":1,\"net_error\":1,"
        "\"net_bytes_sent\":15,\"net_bytes_received\":200,\"dns_queries\":1,\"dns_allowed\":1,"
        "\"dns_denied\":0,\"dns_error\":0,\"dns_cache_hits\":1,\"model_calls\":1,"
        "\"input_tokens\":100,\"output_tokens\":20,\"cache_read_tokens\":0,"
        "\"cache_write_tokens\":7,\"thinking_tokens\":0,\"estimated_cost_usd\":0.125,"
        "\"tool_calls\":1,\"asks\":1,\"asks_pending\":1,\"exec_count\":1,\"telemetry_gaps\":0,"
        "\"telemetry_dropped\":0}",
        0, NULL);
    ok(json_equal(j, want), "stats JSON, field by field");
    if (!json_equal(j, want)) {
        char *d = json_dumps(j, JSON_COMPACT);
        diag("got %s", d);
        free(d);
    }
    json_decref(want);
    json_decref(j);
    struct session_db_counters c;
    ok(session_db_read_counters(path, &c, NULL) == 0 && c.net_requests == 2 && c.net_denied == 1 &&
           c.model_calls == 1 && c.asks == 1,
       "counters are the stats' subset");
}

static void check_metrics_json(struct session_db *db)
{
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    json_t *j = session_db_metrics_json(&m);
    json_t *enq = json_object_get(j, "enqueued");
    ok(json_integer_value(json_object_get(enq, "net_events")) == 2 &&
           json_integer_value(json_object_get(enq, "exec_events")) == 1 &&
           json_integer_value(json_object_get(enq, "policy_decisions")) == 1 &&
           json_object_size(enq) == SDB_TABLE_COUNT - 1 && !json_object_get(enq, "telemetry_gaps"),
       "metrics: enqueued per producer table");
    ok(json_integer_value(json_object_get(j, "written")) == 7 &&
           json_integer_value(json_object_get(j, "depth")) == 0 &&
           json_is_object(json_object_get(j, "dropped")) &&
           json_is_integer(json_object_get(j, "txn_p99_us")),
       "metrics: written, depth, dropped, latency");
    json_decref(j);
}

static void test_layers(void)
{
    char path[256];
    new_path(path, sizeof(path));
    check_parsers();
    struct session_db *db = open_db(path, NULL);
    fill_layers(db);
    ok(flush_ok(db), "flush rows of every layer");
    check_metrics_json(db);
    check_layer_rows(path);
    check_layer_filters(path);
    check_stats(path);
    ok(close_ok(db), "close");
    remove_db(path);
}

/* ---------- stress ---------- */

#define PRODUCERS    4
#define PER_PRODUCER 40000

struct producer {
    struct session_db *db;
    int no;
    int64_t queued, dropped, max_id;
    int dup_ids;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    int64_t last = 0;
    for (int i = 0; i < PER_PRODUCER; i++) {
        char cmd[48];
        snprintf(cmd, sizeof(cmd), "p%d-%d", p->no, i);
        int64_t id =
            i % 10 == 9 ? add_policy(p->db, i + 1, "auto") : add_exec(p->db, i + 1, cmd, i);
        if (id > 0) {
            p->queued++;
            if (i % 10 != 9 && id <= last)
                p->dup_ids++; /* ids of one table grow with enqueue order */
            if (i % 10 != 9)
                last = id;
        } else {
            p->dropped++;
        }
        if (i % 5000 == 0) {
            struct session_db_metrics m;
            session_db_get_metrics(p->db, &m);
        }
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    const char *path = arg;
    for (int i = 0; i < 20; i++) {
        json_t *h = NULL;
        if (session_db_history(path, 5, 0, "p1-", NULL, &h, NULL) == 0)
            json_decref(h);
        usleep(2000);
    }
    return NULL;
}

static void test_stress(void)
{
    char path[256];
    new_path(path, sizeof(path));
    struct session_db_opts o = {.max_ops = 20000, .reserved_ops = 100};
    struct session_db *db = open_db(path, &o);
    struct producer p[PRODUCERS];
    pthread_t th[PRODUCERS], rd;
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.db = db, .no = i};
        pthread_create(&th[i], NULL, producer_main, &p[i]);
    }
    pthread_create(&rd, NULL, reader_main, path);
    int64_t queued = 0, dropped = 0;
    int dups = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        queued += p[i].queued;
        dropped += p[i].dropped;
        dups += p[i].dup_ids;
    }
    pthread_join(rd, NULL);
    struct session_db_metrics m;
    session_db_get_metrics(db, &m);
    ok(close_ok(db), "close after %d producers x %d ops", PRODUCERS, PER_PRODUCER);
    is_int(queued + dropped, PRODUCERS * PER_PRODUCER, "every op was queued or dropped");
    is_int(m.enqueued[SDB_EXEC_EVENTS] + m.enqueued[SDB_POLICY_DECISIONS], queued,
           "enqueued metrics match the ids handed out");
    is_int(m.dropped[SDB_EXEC_EVENTS] + m.dropped[SDB_POLICY_DECISIONS], dropped,
           "dropped metrics match the zeros returned");
    is_int(dups, 0, "row ids grow monotonically per producer");
    is_int(q_int(path, "SELECT COUNT(*) FROM exec_events") +
               q_int(path, "SELECT COUNT(*) FROM policy_decisions"),
           queued, "every queued op is a row (%lld dropped, high-water %zu)", (long long)dropped,
           m.high_water);
    is_int(q_int(path, "SELECT COUNT(*) - (MAX(id) - MIN(id) + 1) FROM exec_events"), 0,
           "exec ids are dense: no id handed out twice or lost");
    int64_t gap_sum = q_int(path, "SELECT COALESCE(SUM(dropped), 0) FROM telemetry_gaps");
    is_int(gap_sum, dropped, "telemetry_gaps account for every drop");
    remove_db(path);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_schema();
    test_migrations();
    test_history();
    test_truncation();
    test_overflow();
    test_byte_cap();
    test_failing_op();
    test_bad_input();
    test_close_checkpoint();
    test_counters();
    test_layers();
    test_stress();
    rmdir(dir);
    return done_testing();
}
