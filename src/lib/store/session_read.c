/* session.db readers for capsem-service: history of every layer, counters
 * and stats. Each call opens the file read-only, reads inside one
 * transaction (one WAL snapshot) and closes it, so a live writer is never
 * held up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "base/util.h"
#include "store/session_db.h"
#include "store/store.h"

#define HISTORY_MAX_LIMIT 10000
#define SEARCH_MAX        4096
#define SQL_MAX           (16u * 1024u) /* generated history SQL */
#define SUMMARY_MAX       (8u * 1024u)  /* a row's `command` text */
#define LAYERS_TEXT_MAX   256

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

/* Integer columns stay integers, except the 0/1 flags, which are booleans. */
static json_t *json_col(sqlite3_stmt *st, int col, bool boolean)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        return boolean ? json_boolean(sqlite3_column_int64(st, col) != 0)
                       : json_integer((json_int_t)sqlite3_column_int64(st, col));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, col));
    case SQLITE_TEXT:
        return json_col_text(st, col);
    default:
        return json_null(); /* NULL (history carries no BLOB columns) */
    }
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

/* ---------- argument parsing ---------- */

static const char *const layer_names[] = {"exec", "net", "dns", "model", "tool", "audit"};

int session_db_parse_layers(const char *text, unsigned *out, struct err **errp)
{
    *out = SDB_LAYER_ALL;
    if (!text || !*text || strcmp(text, "all") == 0)
        return 0;
    if (strlen(text) > LAYERS_TEXT_MAX)
        return err_status(errp, 400, "layer must be at most %d bytes", LAYERS_TEXT_MAX);
    unsigned bits = 0;
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        size_t i = 0;
        while (i < ARRAY_SIZE(layer_names) &&
               !(strlen(layer_names[i]) == len && memcmp(layer_names[i], p, len) == 0))
            i++;
        if (i == ARRAY_SIZE(layer_names))
            return err_status(errp, 400,
                              "unknown layer '%.*s': use all, or a comma-separated list of "
                              "exec, net, dns, model, tool, audit",
                              (int)MIN(len, 64), p);
        bits |= 1u << i;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = bits;
    return 0;
}

static bool digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static int num2(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+00:00)" -> Unix ms; -1 when malformed. */
static int64_t rfc3339_ms(const char *s)
{
    size_t len = strlen(s);
    if (len < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return -1;
    const char *p = s + 19;
    int64_t frac_ms = 0;
    if (*p == '.') {
        size_t n = strspn(p + 1, "0123456789");
        if (n == 0)
            return -1;
        for (size_t i = 0; i < 3; i++)
            frac_ms = frac_ms * 10 + (i < n ? p[1 + i] - '0' : 0);
        p += 1 + n;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    struct tm tm = {.tm_year = num2(s, 4) - 1900,
                    .tm_mon = num2(s + 5, 2) - 1,
                    .tm_mday = num2(s + 8, 2),
                    .tm_hour = num2(s + 11, 2),
                    .tm_min = num2(s + 14, 2),
                    .tm_sec = num2(s + 17, 2)};
    struct tm want = tm;
    time_t t = timegm(&tm);
    /* timegm normalises out-of-range fields: a changed field means a bad date. */
    if (t < 0 || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
        tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
        return -1;
    return (int64_t)t * 1000 + frac_ms;
}

int session_db_parse_time(const char *text, int64_t *ms, struct err **errp)
{
    if (text && *text && digits(text, strlen(text)) && parse_int64(text, 0, INT64_MAX, ms) == 0)
        return 0;
    int64_t v = text ? rfc3339_ms(text) : -1;
    if (v < 0)
        return err_status(errp, 400,
                          "invalid time '%.64s': use Unix milliseconds or RFC 3339 UTC "
                          "(2026-11-29T10:00:00Z)",
                          text ? text : "");
    *ms = v;
    return 0;
}

/* ---------- history ---------- */

/* One history layer: the table it reads, what `search` matches, the fields
 * of its rows and how its one-line `command` summary is made. */
struct layer_def {
    unsigned bit;
    const char *name;
    const char *table;
    const char *match; /* SQL condition on ?2, the LIKE pattern */
    const char *const *cols;
    size_t ncols;
    int (*summary)(const json_t *row, struct buf *b); /* NULL: `command` is a column */
};

#define LIKE(c) c " LIKE ?2 ESCAPE '\\'"

static const char *const exec_cols[] = {"command", "exit_code", "duration_ms", "stdout_preview",
                                        "stderr_preview"};
static const char *const net_cols[] = {"process_name",   "pid",
                                       "conn_type",      "method",
                                       "scheme",         "domain",
                                       "port",           "dst_ip",
                                       "path",           "query",
                                       "status_code",    "decision",
                                       "matched_rule",   "reason",
                                       "error_detail",   "bytes_sent",
                                       "bytes_received", "duration_ms",
                                       "ttfb_ms",        "conn_id",
                                       "request_seq",    "upstream_http_version",
                                       "ask_id",         "credential_provider"};
static const char *const dns_cols[] = {"process_name", "pid",
                                       "qname",        "qtype",
                                       "rcode",        "answer_ip",
                                       "answer_count", "decision",
                                       "matched_rule", "reason",
                                       "source_proto", "cache_hit",
                                       "suspicious",   "upstream_resolver_ms"};
static const char *const model_cols[] = {"net_event_id",      "provider",
                                         "protocol",          "model",
                                         "process_name",      "pid",
                                         "status_code",       "stream",
                                         "input_tokens",      "output_tokens",
                                         "cache_read_tokens", "cache_write_tokens",
                                         "thinking_tokens",   "estimated_cost_usd",
                                         "stop_reason",       "parse_status",
                                         "messages_count",    "tools_count",
                                         "ttft_ms",           "duration_ms"};
static const char *const tool_cols[] = {
    "model_call_id", "provider",  "status",      "tool_name",     "call_id",
    "origin",        "transport", "server_name", "method",        "decision",
    "matched_rule",  "ask_id",    "duration_ms", "error_message", "process_name"};

static bool is_flag_col(const char *c)
{
    return strcmp(c, "cache_hit") == 0 || strcmp(c, "suspicious") == 0 || strcmp(c, "stream") == 0;
}

static const char *jstr(const json_t *row, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(row, key));
    return s ? s : dflt;
}

/* "GET https://example.com:443/path"; a failed connection (no method):
 * "https example.com:443". */
static int net_summary(const json_t *row, struct buf *b)
{
    const char *method = jstr(row, "method", NULL);
    const char *host = jstr(row, "domain", jstr(row, "dst_ip", "?"));
    const json_t *port = json_object_get(row, "port");
    int rc = method ? buf_printf(b, "%s %s://%s", method, jstr(row, "scheme", "?"), host)
                    : buf_printf(b, "%s %s", jstr(row, "conn_type", "connection"), host);
    if (rc == 0 && json_is_integer(port))
        rc = buf_printf(b, ":%lld", (long long)json_integer_value(port));
    if (rc == 0 && method)
        rc = buf_append_str(b, jstr(row, "path", ""));
    return rc;
}

static int dns_summary(const json_t *row, struct buf *b)
{
    return buf_printf(b, "%s %s", jstr(row, "qtype", "?"), jstr(row, "qname", "?"));
}

static int model_summary(const json_t *row, struct buf *b)
{
    return buf_printf(b, "%s %s", jstr(row, "provider", "?"), jstr(row, "model", "?"));
}

static int tool_summary(const json_t *row, struct buf *b)
{
    return buf_append_str(b, jstr(row, "tool_name", "?"));
}

#define LAYER(bit_, name_, table_, match_, cols_, summary_)                                        \
    {                                                                                              \
        bit_, name_, table_, match_, cols_, ARRAY_SIZE(cols_), summary_                            \
    }

static const struct layer_def layers[] = {
    LAYER(SDB_LAYER_EXEC, "exec", "exec_events", LIKE("command"), exec_cols, NULL),
    LAYER(SDB_LAYER_NET, "net", "net_events",
          LIKE("domain") " OR " LIKE("path") " OR " LIKE("method") " OR " LIKE(
              "process_name") " OR " LIKE("matched_rule") " OR " LIKE("reason"),
          net_cols, net_summary),
    LAYER(
        SDB_LAYER_DNS, "dns", "dns_events",
        LIKE("qname") " OR " LIKE("process_name") " OR " LIKE("matched_rule") " OR " LIKE("reason"),
        dns_cols, dns_summary),
    LAYER(SDB_LAYER_MODEL, "model", "model_calls",
          LIKE("provider") " OR " LIKE("model") " OR " LIKE("process_name"), model_cols,
          model_summary),
    LAYER(SDB_LAYER_TOOL, "tool", "tool_calls",
          LIKE("tool_name") " OR " LIKE("server_name") " OR " LIKE("process_name"), tool_cols,
          tool_summary),
};

static int arm_sql(struct buf *b, const struct layer_def *l, bool count)
{
    if (count)
        return buf_printf(b,
                          "(SELECT COUNT(*) FROM %s WHERE timestamp >= ?1 AND (?2 IS NULL OR %s))",
                          l->table, l->match);
    return buf_printf(b,
                      "SELECT timestamp, '%s', id FROM %s WHERE timestamp >= ?1"
                      " AND (?2 IS NULL OR %s)",
                      l->name, l->table, l->match);
}

/* The count (count = true) or the page query over the layers in bits. Each
 * arm reads one table through its timestamp index; the compound ORDER BY
 * merges them. Parameters: ?1 since, ?2 LIKE pattern or NULL, ?3 limit,
 * ?4 offset. */
static char *history_sql(unsigned bits, bool count)
{
    struct buf b;
    buf_init(&b, SQL_MAX);
    int rc = buf_append_str(&b, count ? "SELECT 0" : "");
    bool first = true;
    for (size_t i = 0; i < ARRAY_SIZE(layers) && rc == 0; i++) {
        if (!(bits & layers[i].bit))
            continue;
        if (count || !first)
            rc = buf_append_str(&b, count ? " + " : " UNION ALL ");
        if (rc == 0)
            rc = arm_sql(&b, &layers[i], count);
        first = false;
    }
    if (rc == 0 && !count)
        rc = buf_append_str(&b, " ORDER BY 1 DESC, 2, 3 DESC LIMIT ?3 OFFSET ?4");
    char *out = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    return out;
}

/* Per-layer statements fetching one row by id, prepared on first use. */
struct row_reader {
    sqlite3 *db;
    sqlite3_stmt *st[ARRAY_SIZE(layers)];
};

static void row_reader_free(struct row_reader *rr)
{
    for (size_t i = 0; i < ARRAY_SIZE(rr->st); i++)
        sqlite3_finalize(rr->st[i]);
}

static sqlite3_stmt *row_stmt(struct row_reader *rr, size_t li, struct err **errp)
{
    if (rr->st[li])
        return rr->st[li];
    const struct layer_def *l = &layers[li];
    struct buf b;
    buf_init(&b, SQL_MAX);
    int rc = buf_append_str(&b, "SELECT timestamp, id");
    for (size_t c = 0; c < l->ncols && rc == 0; c++)
        rc = buf_printf(&b, ", %s", l->cols[c]);
    if (rc == 0)
        rc = buf_printf(&b, " FROM %s WHERE id = ?1", l->table);
    _cleanup_free_ char *sql = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    if (!sql)
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    if (sqlite3_prepare_v2(rr->db, sql, -1, &rr->st[li], NULL) != SQLITE_OK)
        return store_err(errp, rr->db, "history %s", l->table), NULL;
    return rr->st[li];
}

static json_t *layer_row(const struct layer_def *l, sqlite3_stmt *st)
{
    char ts[32];
    int64_t ms = sqlite3_column_int64(st, 0);
    time_format_rfc3339(ms > 0 ? (uint64_t)ms / 1000u : 0, ts, sizeof(ts));
    json_t *row = json_object();
    json_object_set_new(row, "timestamp", json_string(ts));
    json_object_set_new(row, "timestamp_ms", json_integer((json_int_t)ms));
    json_object_set_new(row, "layer", json_string(l->name));
    json_object_set_new(row, "id", json_integer((json_int_t)sqlite3_column_int64(st, 1)));
    if (l->summary)
        json_object_set_new(row, "command", json_null()); /* keeps its place; set below */
    for (size_t c = 0; c < l->ncols; c++)
        json_object_set_new(row, l->cols[c], json_col(st, (int)c + 2, is_flag_col(l->cols[c])));
    if (l->summary) {
        struct buf b;
        buf_init(&b, SUMMARY_MAX);
        if (l->summary(row, &b) == 0 && buf_append(&b, "", 1) == 0)
            json_object_set_new(row, "command", json_string((const char *)buf_head(&b)));
        buf_free(&b);
    }
    return row;
}

static size_t layer_index(const char *name)
{
    size_t i = 0;
    while (i < ARRAY_SIZE(layers) && strcmp(layers[i].name, name) != 0)
        i++;
    return i;
}

static int history_rows(struct row_reader *rr, sqlite3_stmt *page, json_t *cmds, struct err **errp)
{
    int rc;
    while ((rc = sqlite3_step(page)) == SQLITE_ROW) {
        size_t li = layer_index((const char *)sqlite3_column_text(page, 1));
        if (li == ARRAY_SIZE(layers))
            return err_set(errp, EPROTO, "history: unexpected layer");
        sqlite3_stmt *st = row_stmt(rr, li, errp);
        if (!st)
            return -1;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, sqlite3_column_int64(page, 2));
        if (sqlite3_step(st) == SQLITE_ROW) /* always, inside one snapshot */
            json_array_append_new(cmds, layer_row(&layers[li], st));
    }
    if (rc != SQLITE_DONE)
        return store_err(errp, rr->db, "history rows");
    return 0;
}

static void bind_filters(sqlite3_stmt *st, const struct sdb_history_query *q, const char *pattern)
{
    sqlite3_bind_int64(st, 1, q->since_ms > 0 ? q->since_ms : INT64_MIN);
    if (pattern)
        sqlite3_bind_text(st, 2, pattern, -1, SQLITE_STATIC);
}

static int history_query(sqlite3 *db, unsigned bits, const struct sdb_history_query *q,
                         const char *pattern, json_t *cmds, int64_t *total, struct err **errp)
{
    _cleanup_free_ char *count_sql = history_sql(bits, true);
    _cleanup_free_ char *page_sql = history_sql(bits, false);
    if (!count_sql || !page_sql)
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_stmt_ sqlite3_stmt *cnt = NULL;
    _cleanup_stmt_ sqlite3_stmt *page = NULL;
    if (sqlite3_prepare_v2(db, count_sql, -1, &cnt, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, page_sql, -1, &page, NULL) != SQLITE_OK)
        return store_err(errp, db, "history query");
    bind_filters(cnt, q, pattern);
    if (sqlite3_step(cnt) != SQLITE_ROW)
        return store_err(errp, db, "history count");
    *total = sqlite3_column_int64(cnt, 0);
    bind_filters(page, q, pattern);
    sqlite3_bind_int64(page, 3, q->limit);
    sqlite3_bind_int64(page, 4, q->offset);
    struct row_reader rr = {.db = db};
    int rc = history_rows(&rr, page, cmds, errp);
    row_reader_free(&rr);
    return rc;
}

static int history_read(const char *path, unsigned bits, const struct sdb_history_query *q,
                        json_t *cmds, int64_t *total, struct err **errp)
{
    _cleanup_free_ char *pattern = NULL;
    if (q->search && *q->search && !(pattern = like_pattern(q->search)))
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_sqlite_ sqlite3 *db = NULL;
    if (open_reader(path, &db, errp) < 0)
        return -1;
    if (!db)
        return 0;
    return history_query(db, bits, q, pattern, cmds, total, errp);
}

int session_db_history_query(const char *path, const struct sdb_history_query *q, json_t **out,
                             struct err **errp)
{
    if (q->limit < 0 || q->limit > HISTORY_MAX_LIMIT)
        return err_status(errp, 400, "limit must be between 0 and %d", HISTORY_MAX_LIMIT);
    if (q->offset < 0)
        return err_status(errp, 400, "offset must not be negative");
    if (q->search && strlen(q->search) > SEARCH_MAX)
        return err_status(errp, 400, "search must be at most %d bytes", SEARCH_MAX);
    unsigned bits = (q->layers ? q->layers : SDB_LAYER_ALL) & SDB_LAYER_ALL;
    json_t *cmds = json_array();
    int64_t total = 0;
    if (bits && history_read(path, bits, q, cmds, &total, errp) < 0) {
        json_decref(cmds);
        err_prefix(errp, "history");
        return -1;
    }
    int64_t shown = (int64_t)json_array_size(cmds);
    *out = json_pack("{s:o, s:I, s:b}", "commands", cmds, "total", (json_int_t)total, "has_more",
                     q->offset + shown < total);
    if (!*out)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

int session_db_history(const char *path, int64_t limit, int64_t offset, const char *search,
                       const char *layer, json_t **out, struct err **errp)
{
    struct sdb_history_query q = {.limit = limit, .offset = offset, .search = search};
    if (session_db_parse_layers(layer, &q.layers, errp) < 0)
        return -1;
    return session_db_history_query(path, &q, out, errp);
}

/* ---------- counters and stats ---------- */

/* Runs a one-row aggregate and stores its integer columns in dst[]. */
static int read_ints(sqlite3 *db, const char *sql, int64_t *const *dst, size_t n, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        return store_err(errp, db, "stats");
    for (size_t i = 0; i < n; i++)
        *dst[i] = sqlite3_column_int64(st, (int)i);
    return 0;
}

#define SUM_OF(x) "COALESCE(SUM(" x "), 0)"

static int read_stats_db(sqlite3 *db, struct session_db_stats *s, struct err **errp)
{
    struct session_db_counters *c = &s->c;
    struct {
        const char *sql;
        int64_t *dst[8];
        size_t n;
    } q[] =
        {
            {"SELECT COUNT(*), " SUM_OF("decision = 'allowed'") ", " SUM_OF("decision = 'denied'") ", " SUM_OF(
                 "decision = 'error'") ", " SUM_OF("bytes_sent") ", " SUM_OF("bytes_received") " FR"
                                                                                               "OM "
                                                                                               "net"
                                                                                               "_ev"
                                                                                               "ent"
                                                                                               "s",
             {&c->net_requests, &c->net_allowed, &c->net_denied, &s->net_error, &s->net_bytes_sent,
              &s->net_bytes_received},
             6},
            {"SELECT COUNT(*), " SUM_OF("decision = 'allowed'") ", " SUM_OF(
                 "decision = 'denied'") ", " SUM_OF("decision = 'error'") ", " SUM_OF("cache_hit "
                                                                                      "<> 0") " FRO"
                                                                                              "M "
                                                                                              "dns_"
                                                                                              "even"
                                                                                              "ts",
             {&c->dns_queries, &s->dns_allowed, &c->dns_denied, &s->dns_error, &s->dns_cache_hits},
             5},
            {"SELECT COUNT(*), " SUM_OF("input_tokens") ", " SUM_OF("output_tokens") ", " SUM_OF(
                 "cache_read_tokens") ", " SUM_OF("cache_write_tokens") ", " SUM_OF("thinking_"
                                                                                    "tokens") " FRO"
                                                                                              "M "
                                                                                              "mode"
                                                                                              "l_"
                                                                                              "call"
                                                                                              "s",
             {&c->model_calls, &c->input_tokens, &c->output_tokens, &c->cache_read_tokens,
              &s->cache_write_tokens, &c->thinking_tokens},
             6},
            {"SELECT COUNT(*) FROM tool_calls", {&c->tool_calls}, 1},
            {"SELECT " SUM_OF("action = 'ask'") ", " SUM_OF(
                 "action = 'ask' AND status = 'pending'") " FROM policy_decisions",
             {&c->asks, &s->asks_pending},
             2},
            {"SELECT COUNT(*) FROM exec_events", {&s->exec_count}, 1},
            {"SELECT COUNT(*), " SUM_OF("dropped") " FROM telemetry_gaps",
             {&s->gap_rows, &s->gap_dropped},
             2},
        };
    for (size_t i = 0; i < ARRAY_SIZE(q); i++)
        if (read_ints(db, q[i].sql, q[i].dst, q[i].n, errp) < 0)
            return -1;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(SUM(estimated_cost_usd), 0.0) FROM model_calls", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        return store_err(errp, db, "stats");
    c->estimated_cost_usd = sqlite3_column_double(st, 0);
    return 0;
}

int session_db_read_stats(const char *path, struct session_db_stats *out, struct err **errp)
{
    memset(out, 0, sizeof(*out));
    _cleanup_sqlite_ sqlite3 *db = NULL;
    if (open_reader(path, &db, errp) < 0) {
        err_prefix(errp, "stats");
        return -1;
    }
    if (!db)
        return 0;
    if (read_stats_db(db, out, errp) < 0) {
        memset(out, 0, sizeof(*out));
        err_prefix(errp, "%s", path);
        return -1;
    }
    return 0;
}

int session_db_read_counters(const char *path, struct session_db_counters *out, struct err **errp)
{
    struct session_db_stats s;
    int rc = session_db_read_stats(path, &s, errp);
    *out = s.c;
    return rc;
}

json_t *session_db_stats_json(const struct session_db_stats *s)
{
    const struct session_db_counters *c = &s->c;
    json_t *j = json_object();
    struct {
        const char *key;
        int64_t v;
    } f[] = {
        {"net_requests", c->net_requests},
        {"net_allowed", c->net_allowed},
        {"net_denied", c->net_denied},
        {"net_error", s->net_error},
        {"net_bytes_sent", s->net_bytes_sent},
        {"net_bytes_received", s->net_bytes_received},
        {"dns_queries", c->dns_queries},
        {"dns_allowed", s->dns_allowed},
        {"dns_denied", c->dns_denied},
        {"dns_error", s->dns_error},
        {"dns_cache_hits", s->dns_cache_hits},
        {"model_calls", c->model_calls},
        {"input_tokens", c->input_tokens},
        {"output_tokens", c->output_tokens},
        {"cache_read_tokens", c->cache_read_tokens},
        {"cache_write_tokens", s->cache_write_tokens},
        {"thinking_tokens", c->thinking_tokens},
    };
    struct {
        const char *key;
        int64_t v;
    } g[] = {
        {"tool_calls", c->tool_calls},     {"asks", c->asks},
        {"asks_pending", s->asks_pending}, {"exec_count", s->exec_count},
        {"telemetry_gaps", s->gap_rows},   {"telemetry_dropped", s->gap_dropped},
    };
    int rc = j ? 0 : -1;
    for (size_t i = 0; i < ARRAY_SIZE(f) && rc == 0; i++)
        rc = json_object_set_new(j, f[i].key, json_integer((json_int_t)f[i].v));
    if (rc == 0)
        rc = json_object_set_new(j, "estimated_cost_usd", json_real(c->estimated_cost_usd));
    for (size_t i = 0; i < ARRAY_SIZE(g) && rc == 0; i++)
        rc = json_object_set_new(j, g[i].key, json_integer((json_int_t)g[i].v));
    if (rc < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* {<table name>: n} over the tables producers write (telemetry_gaps has no
 * producer counts). */
static json_t *per_table(const uint64_t *v)
{
    json_t *o = json_object();
    for (int t = 0; o && t < SDB_TABLE_COUNT; t++)
        if (t != SDB_TELEMETRY_GAPS)
            json_object_set_new(o, session_db_table_name((enum sdb_table)t),
                                json_integer((json_int_t)v[t]));
    return o;
}

json_t *session_db_metrics_json(const struct session_db_metrics *m)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "depth",
                     (json_int_t)m->depth, "bytes", (json_int_t)m->bytes, "high_water",
                     (json_int_t)m->high_water, "written", (json_int_t)m->written, "transactions",
                     (json_int_t)m->transactions, "gap_rows", (json_int_t)m->gap_rows, "txn_p50_us",
                     (json_int_t)m->txn_p50_us, "txn_p99_us", (json_int_t)m->txn_p99_us, "enqueued",
                     per_table(m->enqueued), "dropped", per_table(m->dropped), "failed",
                     per_table(m->failed));
}
