#include "store/main_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "store/session_db.h"
#include "store/store.h"

#define NAME_TRIES 100000 /* consecutive taken names before giving up */

struct main_db {
    sqlite3 *conn;
    char *path;
};

/* Version 1. Frozen: changes are new steps appended to `steps`. */
static const char schema_v1[] =
    "CREATE TABLE sessions (vm_id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,"
    " profile TEXT, persistent INTEGER NOT NULL DEFAULT 0, status TEXT, created_at INTEGER,"
    " stopped_at INTEGER, session_dir TEXT, image TEXT, base_version TEXT, cpus INTEGER,"
    " ram_mb INTEGER, env TEXT, owner_pid INTEGER, last_error TEXT,"
    " net_requests INTEGER NOT NULL DEFAULT 0, net_allowed INTEGER NOT NULL DEFAULT 0,"
    " net_denied INTEGER NOT NULL DEFAULT 0, dns_queries INTEGER NOT NULL DEFAULT 0,"
    " dns_denied INTEGER NOT NULL DEFAULT 0, model_calls INTEGER NOT NULL DEFAULT 0,"
    " input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,"
    " cache_read_tokens INTEGER NOT NULL DEFAULT 0, thinking_tokens INTEGER NOT NULL DEFAULT 0,"
    " estimated_cost_usd REAL NOT NULL DEFAULT 0, tool_calls INTEGER NOT NULL DEFAULT 0,"
    " asks INTEGER NOT NULL DEFAULT 0, updated_at INTEGER);"
    "CREATE INDEX sessions_name ON sessions(name);"
    "CREATE INDEX sessions_created_at ON sessions(created_at);"
    "CREATE TABLE name_counters (profile TEXT PRIMARY KEY NOT NULL, next INTEGER NOT NULL);";

static const char *const steps[MAIN_DB_VERSION] = {schema_v1};

int main_db_open(const char *path, struct main_db **out, struct err **errp)
{
    struct main_db *db = calloc(1, sizeof(*db));
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return err_set(errp, ENOMEM, "out of memory");
    }
    if (store_open_rw(path, &db->conn, errp) < 0 ||
        store_migrate(db->conn, path, steps, MAIN_DB_VERSION, errp) < 0) {
        main_db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void main_db_close(struct main_db *db)
{
    if (!db)
        return;
    if (db->conn) {
        sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close_v2(db->conn);
    }
    free(db->path);
    free(db);
}

/* ---------- helpers ---------- */

static void bind_text_or_null(sqlite3_stmt *st, int idx, const char *s)
{
    if (s)
        sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

static void bind_int_or_null(sqlite3_stmt *st, int idx, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, idx, v);
    else
        sqlite3_bind_null(st, idx);
}

static int prepare(struct main_db *db, const char *sql, sqlite3_stmt **st, struct err **errp)
{
    if (sqlite3_prepare_v2(db->conn, sql, -1, st, NULL) != SQLITE_OK)
        return store_err(errp, db->conn, "%s: prepare", db->path);
    return 0;
}

/* Steps a write statement to completion; with want_row, no changed row is a 404. */
static int step_write(struct main_db *db, sqlite3_stmt *st, const char *vm_id, bool want_row,
                      struct err **errp)
{
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_err(errp, db->conn, "%s", db->path);
    if (want_row && sqlite3_changes(db->conn) == 0)
        return err_status(errp, 404, "unknown VM %s", vm_id);
    return 0;
}

static void rollback(struct main_db *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* ---------- names ---------- */

static int read_counter(struct main_db *db, const char *profile, int64_t *next, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db, "SELECT next FROM name_counters WHERE profile = ?", &st, errp) < 0)
        return -1;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *next = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        *next = 1;
    else
        return store_err(errp, db->conn, "%s: read name counter", db->path);
    if (*next < 1)
        *next = 1;
    return 0;
}

static int write_counter(struct main_db *db, const char *profile, int64_t next, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db,
                "INSERT INTO name_counters(profile, next) VALUES(?1, ?2)"
                " ON CONFLICT(profile) DO UPDATE SET next = excluded.next",
                &st, errp) < 0)
        return -1;
    sqlite3_bind_text(st, 1, profile, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, next);
    return step_write(db, st, NULL, false, errp);
}

static int pick_name(const char *profile, int64_t *next, bool (*taken)(const char *, void *),
                     void *arg, char *out, size_t cap, struct err **errp)
{
    for (int i = 0; i < NAME_TRIES; i++) {
        int n = snprintf(out, cap, "%s-%lld", profile, (long long)(*next)++);
        if (n < 0 || (size_t)n >= cap)
            return err_set(errp, ENAMETOOLONG, "generated name for profile %s is too long",
                           profile);
        if (!taken || !taken(out, arg))
            return 0;
    }
    return err_status(errp, 409, "no free name for profile %s after %d tries", profile, NAME_TRIES);
}

int main_db_next_name(struct main_db *db, const char *profile,
                      bool (*taken)(const char *name, void *arg), void *arg, char *out, size_t cap,
                      struct err **errp)
{
    if (!profile || !*profile)
        return err_status(errp, 400, "profile must not be empty");
    if (store_exec(db->conn, "BEGIN IMMEDIATE", errp) < 0)
        return -1;
    int64_t next = 1;
    if (read_counter(db, profile, &next, errp) < 0 ||
        pick_name(profile, &next, taken, arg, out, cap, errp) < 0 ||
        write_counter(db, profile, next, errp) < 0 || store_exec(db->conn, "COMMIT", errp) < 0) {
        rollback(db);
        if (cap)
            out[0] = 0;
        return -1;
    }
    return 0;
}

/* ---------- sessions ---------- */

static const char upsert_sql[] =
    "INSERT INTO sessions(vm_id, name, profile, persistent, status, created_at, stopped_at,"
    " session_dir, image, base_version, cpus, ram_mb, env, owner_pid, last_error, updated_at)"
    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
    " ON CONFLICT(vm_id) DO UPDATE SET name=excluded.name, profile=excluded.profile,"
    " persistent=excluded.persistent, status=excluded.status, created_at=excluded.created_at,"
    " stopped_at=excluded.stopped_at, session_dir=excluded.session_dir, image=excluded.image,"
    " base_version=excluded.base_version, cpus=excluded.cpus, ram_mb=excluded.ram_mb,"
    " env=excluded.env, owner_pid=excluded.owner_pid, last_error=excluded.last_error,"
    " updated_at=excluded.updated_at";

int main_db_upsert_session(struct main_db *db, const struct main_db_session *s, struct err **errp)
{
    if (!s->vm_id || !*s->vm_id || !s->name)
        return err_status(errp, 400, "a session needs a vm_id and a name");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db, upsert_sql, &st, errp) < 0)
        return -1;
    bind_text_or_null(st, 1, s->vm_id);
    bind_text_or_null(st, 2, s->name);
    bind_text_or_null(st, 3, s->profile);
    sqlite3_bind_int(st, 4, s->persistent ? 1 : 0);
    bind_text_or_null(st, 5, s->status);
    bind_int_or_null(st, 6, s->created_at);
    bind_int_or_null(st, 7, s->stopped_at);
    bind_text_or_null(st, 8, s->session_dir);
    bind_text_or_null(st, 9, s->image);
    bind_text_or_null(st, 10, s->base_version);
    bind_int_or_null(st, 11, s->cpus);
    bind_int_or_null(st, 12, s->ram_mb);
    bind_text_or_null(st, 13, s->env_json);
    bind_int_or_null(st, 14, s->owner_pid);
    bind_text_or_null(st, 15, s->last_error);
    sqlite3_bind_int64(st, 16, (int64_t)time_real_ms());
    return step_write(db, st, s->vm_id, false, errp);
}

int main_db_set_status(struct main_db *db, const char *vm_id, const char *status,
                       const char *last_error, int64_t stopped_at_ms, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db,
                "UPDATE sessions SET status = ?2, last_error = ?3,"
                " stopped_at = COALESCE(?4, stopped_at), updated_at = ?5 WHERE vm_id = ?1",
                &st, errp) < 0)
        return -1;
    bind_text_or_null(st, 1, vm_id);
    bind_text_or_null(st, 2, status);
    bind_text_or_null(st, 3, last_error);
    bind_int_or_null(st, 4, stopped_at_ms > 0 ? stopped_at_ms : 0);
    sqlite3_bind_int64(st, 5, (int64_t)time_real_ms());
    return step_write(db, st, vm_id, true, errp);
}

int main_db_set_totals(struct main_db *db, const char *vm_id, const struct session_db_counters *c,
                       struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db,
                "UPDATE sessions SET net_requests=?2, net_allowed=?3, net_denied=?4,"
                " dns_queries=?5, dns_denied=?6, model_calls=?7, input_tokens=?8,"
                " output_tokens=?9, cache_read_tokens=?10, thinking_tokens=?11,"
                " estimated_cost_usd=?12, tool_calls=?13, asks=?14, updated_at=?15"
                " WHERE vm_id=?1",
                &st, errp) < 0)
        return -1;
    int64_t v[] = {c->net_requests,      c->net_allowed,    c->net_denied,   c->dns_queries,
                   c->dns_denied,        c->model_calls,    c->input_tokens, c->output_tokens,
                   c->cache_read_tokens, c->thinking_tokens};
    bind_text_or_null(st, 1, vm_id);
    for (size_t i = 0; i < ARRAY_SIZE(v); i++)
        sqlite3_bind_int64(st, (int)i + 2, v[i]);
    sqlite3_bind_double(st, 12, c->estimated_cost_usd);
    sqlite3_bind_int64(st, 13, c->tool_calls);
    sqlite3_bind_int64(st, 14, c->asks);
    sqlite3_bind_int64(st, 15, (int64_t)time_real_ms());
    return step_write(db, st, vm_id, true, errp);
}

int main_db_refresh_totals(struct main_db *db, const char *vm_id, const char *session_db_path,
                           struct err **errp)
{
    struct session_db_counters c;
    if (session_db_read_counters(session_db_path, &c, errp) < 0)
        return -1;
    return main_db_set_totals(db, vm_id, &c, errp);
}

int main_db_delete_session(struct main_db *db, const char *vm_id, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (prepare(db, "DELETE FROM sessions WHERE vm_id = ?", &st, errp) < 0)
        return -1;
    bind_text_or_null(st, 1, vm_id);
    return step_write(db, st, vm_id, false, errp);
}

static json_t *row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    for (int i = 0; i < sqlite3_column_count(st); i++) {
        const char *name = sqlite3_column_name(st, i);
        json_t *v;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = strcmp(name, "persistent") == 0
                    ? json_boolean(sqlite3_column_int(st, i) != 0)
                    : json_integer((json_int_t)sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_TEXT:
            v = json_stringn((const char *)sqlite3_column_text(st, i),
                             (size_t)sqlite3_column_bytes(st, i));
            break;
        default:
            v = json_null();
            break;
        }
        json_object_set_new(o, name, v ? v : json_null());
    }
    return o;
}

static int query_rows(struct main_db *db, const char *vm_id, json_t *arr, struct err **errp)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *sql = vm_id ? "SELECT * FROM sessions WHERE vm_id = ?"
                            : "SELECT * FROM sessions ORDER BY created_at, vm_id";
    if (prepare(db, sql, &st, errp) < 0)
        return -1;
    if (vm_id)
        sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row_json(st));
    if (rc != SQLITE_DONE)
        return store_err(errp, db->conn, "%s: read sessions", db->path);
    return 0;
}

int main_db_get_session(struct main_db *db, const char *vm_id, json_t **out, struct err **errp)
{
    *out = NULL;
    if (!vm_id)
        return err_status(errp, 400, "no VM id");
    json_t *arr = json_array();
    if (query_rows(db, vm_id, arr, errp) < 0) {
        json_decref(arr);
        return -1;
    }
    if (json_array_size(arr) > 0)
        *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return 0;
}

int main_db_list_sessions(struct main_db *db, json_t **out, struct err **errp)
{
    json_t *arr = json_array();
    if (query_rows(db, NULL, arr, errp) < 0) {
        json_decref(arr);
        return -1;
    }
    *out = arr;
    return 0;
}
