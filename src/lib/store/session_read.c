/* session.db readers for capsem-service: history and counters. Each call
 * opens the file read-only, reads inside one transaction (one WAL snapshot)
 * and closes it, so a live writer is never held up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "base/util.h"
#include "store/session_db.h"
#include "store/store.h"

#define HISTORY_MAX_LIMIT 10000
#define SEARCH_MAX        4096

/* Opens path for reading. *db stays NULL (and 0 is returned) when there is
 * nothing to read yet: no file, or a file the writer has not migrated. */
static int open_reader(const char *path, sqlite3 **db, struct err **errp)
{
    struct stat st;
    *db = NULL;
    if (stat(path, &st) < 0 && errno == ENOENT)
        return 0;
    _cleanup_sqlite_ sqlite3 *c = NULL;
    if (store_open_ro(path, &c, errp) < 0)
        return -1;
    int v;
    if (store_user_version(c, &v, errp) < 0) {
        err_prefix(errp, "%s", path);
        return -1;
    }
    if (v > SESSION_DB_VERSION)
        return err_status(errp, 409,
                          "%s has schema version %d, newer than this capsem supports (%d)", path, v,
                          SESSION_DB_VERSION);
    if (v == 0)
        return 0;
    if (store_exec(c, "BEGIN", errp) < 0)
        return -1;
    *db = steal_pointer(&c);
    return 0;
}

static json_t *json_col_text(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    const char *p = (const char *)sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (!p)
        return json_null();
    if (utf8_valid(p, n))
        return json_stringn(p, n);
    size_t m;
    _cleanup_free_ char *clean = utf8_sanitize(p, n, &m);
    return clean ? json_stringn(clean, m) : json_null();
}

static json_t *json_col_int(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return json_null();
    return json_integer((json_int_t)sqlite3_column_int64(st, col));
}

/* "%<search with \ % _ escaped>%" for LIKE ... ESCAPE '\'. */
static char *like_pattern(const char *search)
{
    struct buf b;
    buf_init(&b, 2 * SEARCH_MAX + 3);
    int rc = buf_append_str(&b, "%");
    for (const char *p = search; *p && rc == 0; p++) {
        if (*p == '\\' || *p == '%' || *p == '_')
            rc = buf_append(&b, "\\", 1);
        if (rc == 0)
            rc = buf_append(&b, p, 1);
    }
    if (rc == 0)
        rc = buf_append_str(&b, "%");
    char *out = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    return out;
}

static json_t *history_row(sqlite3_stmt *st)
{
    char ts[32];
    int64_t ms = sqlite3_column_int64(st, 0);
    time_format_rfc3339(ms > 0 ? (uint64_t)ms / 1000u : 0, ts, sizeof(ts));
    json_t *row = json_object();
    json_object_set_new(row, "timestamp", json_string(ts));
    json_object_set_new(row, "layer", json_string("exec"));
    json_object_set_new(row, "command", json_col_text(st, 1));
    json_object_set_new(row, "exit_code", json_col_int(st, 2));
    json_object_set_new(row, "duration_ms", json_col_int(st, 3));
    json_object_set_new(row, "stdout_preview", json_col_text(st, 4));
    json_object_set_new(row, "stderr_preview", json_col_text(st, 5));
    return row;
}

static int history_query(sqlite3 *db, const char *pattern, int64_t limit, int64_t offset,
                         json_t *cmds, int64_t *total, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *cnt = NULL;
    _cleanup_stmt_ sqlite3_stmt *rows = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT COUNT(*) FROM exec_events"
                           " WHERE ?1 IS NULL OR command LIKE ?1 ESCAPE '\\'",
                           -1, &cnt, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT timestamp, command, exit_code, duration_ms, stdout_preview,"
                           " stderr_preview FROM exec_events"
                           " WHERE ?1 IS NULL OR command LIKE ?1 ESCAPE '\\'"
                           " ORDER BY timestamp DESC, id DESC LIMIT ?2 OFFSET ?3",
                           -1, &rows, NULL) != SQLITE_OK)
        return store_err(errp, db, "history query");
    sqlite3_bind_text(cnt, 1, pattern, -1, SQLITE_STATIC);
    if (sqlite3_step(cnt) != SQLITE_ROW)
        return store_err(errp, db, "history count");
    *total = sqlite3_column_int64(cnt, 0);
    sqlite3_bind_text(rows, 1, pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int64(rows, 2, limit);
    sqlite3_bind_int64(rows, 3, offset);
    int rc;
    while ((rc = sqlite3_step(rows)) == SQLITE_ROW)
        json_array_append_new(cmds, history_row(rows));
    if (rc != SQLITE_DONE)
        return store_err(errp, db, "history rows");
    return 0;
}

static int check_history_args(int64_t limit, int64_t offset, const char *search, const char *layer,
                              struct err **errp)
{
    if (limit < 0 || limit > HISTORY_MAX_LIMIT)
        return err_status(errp, 400, "limit must be between 0 and %d", HISTORY_MAX_LIMIT);
    if (offset < 0)
        return err_status(errp, 400, "offset must not be negative");
    if (search && strlen(search) > SEARCH_MAX)
        return err_status(errp, 400, "search must be at most %d bytes", SEARCH_MAX);
    if (layer && *layer && strcmp(layer, "all") != 0 && strcmp(layer, "exec") != 0 &&
        strcmp(layer, "audit") != 0)
        return err_status(errp, 400, "layer must be all, exec or audit");
    return 0;
}

static int history_read(const char *path, const char *search, int64_t limit, int64_t offset,
                        json_t *cmds, int64_t *total, struct err **errp)
{
    _cleanup_free_ char *pattern = NULL;
    if (search && *search && !(pattern = like_pattern(search)))
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_sqlite_ sqlite3 *db = NULL;
    if (open_reader(path, &db, errp) < 0)
        return -1;
    if (!db)
        return 0;
    return history_query(db, pattern, limit, offset, cmds, total, errp);
}

int session_db_history(const char *path, int64_t limit, int64_t offset, const char *search,
                       const char *layer, json_t **out, struct err **errp)
{
    if (check_history_args(limit, offset, search, layer, errp) < 0)
        return -1;
    json_t *cmds = json_array();
    int64_t total = 0;
    bool audit_only = layer && strcmp(layer, "audit") == 0;
    if (!audit_only && history_read(path, search, limit, offset, cmds, &total, errp) < 0) {
        json_decref(cmds);
        err_prefix(errp, "history");
        return -1;
    }
    int64_t shown = (int64_t)json_array_size(cmds);
    *out = json_pack("{s:o, s:I, s:b}", "commands", cmds, "total", (json_int_t)total, "has_more",
                     offset + shown < total);
    if (!*out)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

static const char counters_sql[] =
    "SELECT (SELECT COUNT(*) FROM net_events),"
    " (SELECT COUNT(*) FROM net_events WHERE decision = 'allowed'),"
    " (SELECT COUNT(*) FROM net_events WHERE decision = 'denied'),"
    " (SELECT COUNT(*) FROM dns_events),"
    " (SELECT COUNT(*) FROM dns_events WHERE decision = 'denied'),"
    " COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(thinking_tokens), 0),"
    " COALESCE(SUM(estimated_cost_usd), 0.0),"
    " (SELECT COUNT(*) FROM tool_calls),"
    " (SELECT COUNT(*) FROM policy_decisions WHERE action = 'ask')"
    " FROM model_calls";

int session_db_read_counters(const char *path, struct session_db_counters *out, struct err **errp)
{
    memset(out, 0, sizeof(*out));
    _cleanup_sqlite_ sqlite3 *db = NULL;
    if (open_reader(path, &db, errp) < 0) {
        err_prefix(errp, "counters");
        return -1;
    }
    if (!db)
        return 0;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, counters_sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return store_err(errp, db, "counters %s", path);
    int64_t *dst[] = {&out->net_requests,   &out->net_allowed,   &out->net_denied,
                      &out->dns_queries,    &out->dns_denied,    &out->model_calls,
                      &out->input_tokens,   &out->output_tokens, &out->cache_read_tokens,
                      &out->thinking_tokens};
    for (size_t i = 0; i < ARRAY_SIZE(dst); i++)
        *dst[i] = sqlite3_column_int64(st, (int)i);
    out->estimated_cost_usd = sqlite3_column_double(st, 10);
    out->tool_calls = sqlite3_column_int64(st, 11);
    out->asks = sqlite3_column_int64(st, 12);
    return 0;
}
