/* Unit tests for sessions/main.db: schema version, generated-name counters
 * (increment, skip taken names, persist across reopen) and the sessions rows
 * (upsert, status, totals from a session.db, listing, delete). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "store/main_db.h"
#include "store/session_db.h"
#include "tap.h"

static char dir[] = "/tmp/capsem-test-maindb-XXXXXX";

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static struct main_db *open_db(const char *path)
{
    struct err *e = NULL;
    struct main_db *db = NULL;
    if (main_db_open(path, &db, &e) < 0) {
        diag("open %s: %s", path, err_msg(e));
        err_free(e);
    }
    return db;
}

static const char *next_name(struct main_db *db, const char *profile,
                             bool (*taken)(const char *, void *), void *arg)
{
    static char name[64];
    struct err *e = NULL;
    if (main_db_next_name(db, profile, taken, arg, name, sizeof(name), &e) < 0) {
        diag("next_name: %s", err_msg(e));
        err_free(e);
        return "(error)";
    }
    return name;
}

/* Pretends code-3 and code-4 exist (a user named VMs so). */
static bool taken_3_4(const char *name, void *arg)
{
    (*(int *)arg)++;
    return strcmp(name, "code-3") == 0 || strcmp(name, "code-4") == 0;
}

static bool all_taken(const char *name, void *arg)
{
    return true;
}

static void test_names(const char *path)
{
    struct main_db *db = open_db(path);
    ok(db != NULL, "open creates main.db");
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "main.db is mode 0600");
    is_str(next_name(db, "code", NULL, NULL), "code-1", "first name code-1");
    is_str(next_name(db, "code", NULL, NULL), "code-2", "then code-2");
    int calls = 0;
    is_str(next_name(db, "code", taken_3_4, &calls), "code-5", "taken code-3 and code-4 skipped");
    is_int(calls, 3, "the predicate saw code-3, code-4, code-5");
    is_str(next_name(db, "code", taken_3_4, &calls), "code-6", "skipped numbers are not reused");
    is_str(next_name(db, "py", NULL, NULL), "py-1", "each profile has its own counter");
    char small[6];
    struct err *e = NULL;
    is_int(main_db_next_name(db, "code", NULL, NULL, small, sizeof(small), &e), -1,
           "a too-small buffer fails");
    err_free(e);
    e = NULL;
    is_int(main_db_next_name(db, "", NULL, NULL, small, sizeof(small), &e), -1,
           "empty profile refused");
    ok(e && e->status == 400, "status 400: %s", err_msg(e));
    err_free(e);
    main_db_close(db);

    db = open_db(path);
    is_str(next_name(db, "code", NULL, NULL), "code-7", "the counter survives a reopen");
    is_str(next_name(db, "py", NULL, NULL), "py-2", "for every profile");
    char out[64];
    e = NULL;
    is_int(main_db_next_name(db, "x", all_taken, NULL, out, sizeof(out), &e), -1,
           "gives up when every name is taken");
    err_free(e);
    main_db_close(db);
}

static void make_session_db(const char *path)
{
    struct session_db *s = NULL;
    session_db_open(path, NULL, &s, NULL);
    const char *dec[] = {"allowed", "allowed", "denied"};
    for (int i = 0; i < 3; i++) {
        struct sdb_val v[] = {SDB_TEXT_V("domain", "a.example"), SDB_TEXT_V("decision", dec[i])};
        session_db_insert(s, SDB_NET_EVENTS, 1000 + i, v, 2, NULL);
    }
    struct sdb_val m[] = {SDB_INT_V("input_tokens", 11), SDB_INT_V("output_tokens", 22),
                          SDB_REAL_V("estimated_cost_usd", 0.125)};
    session_db_insert(s, SDB_MODEL_CALLS, 2000, m, 3, NULL);
    struct sdb_val t[] = {SDB_TEXT_V("tool_name", "local__fetch_http")};
    session_db_insert(s, SDB_TOOL_CALLS, 2001, t, 1, NULL);
    session_db_close(s, NULL);
}

static json_int_t jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void test_totals(struct main_db *db, struct main_db_session *a)
{
    char sdb[512];
    snprintf(sdb, sizeof(sdb), "%s/vm-a-session.db", dir);
    make_session_db(sdb);
    ok(main_db_refresh_totals(db, "vm-a", sdb, NULL) == 0, "refresh totals from session.db");
    ok(main_db_set_status(db, "vm-a", "Stopped", "guest powered off", 5000, NULL) == 0,
       "set status");
    a->status = "Stopped"; /* an upsert keeps the counters */
    a->stopped_at = 5000;
    a->last_error = "guest powered off";
    ok(main_db_upsert_session(db, a, NULL) == 0, "upsert an existing session");
    remove_db(sdb);

    json_t *r = NULL;
    ok(main_db_get_session(db, "vm-a", &r, NULL) == 0 && r, "get vm-a");
    ok(jint(r, "net_requests") == 3 && jint(r, "net_allowed") == 2 && jint(r, "net_denied") == 1,
       "net counters 3/2/1");
    ok(jint(r, "input_tokens") == 11 && jint(r, "output_tokens") == 22 &&
           jint(r, "tool_calls") == 1,
       "tokens and tool calls");
    ok(json_real_value(json_object_get(r, "estimated_cost_usd")) == 0.125, "cost 0.125");
    is_str(json_string_value(json_object_get(r, "status")), "Stopped", "status");
    is_str(json_string_value(json_object_get(r, "last_error")), "guest powered off", "last_error");
    is_int(jint(r, "stopped_at"), 5000, "stopped_at");
    is_str(json_string_value(json_object_get(r, "env")), "{\"A\":\"1\"}", "env JSON text");
    ok(json_is_false(json_object_get(r, "persistent")), "persistent is a boolean");
    ok(json_is_null(json_object_get(r, "image")), "unset image is null");
    ok(jint(r, "updated_at") > 1700000000000LL, "updated_at is Unix ms");
    json_decref(r);
}

static void test_status_errors(struct main_db *db)
{
    json_t *r = NULL;
    ok(main_db_set_status(db, "vm-b", "Stopped", NULL, 0, NULL) == 0, "stop vm-b");
    ok(main_db_get_session(db, "vm-b", &r, NULL) == 0 &&
           json_is_null(json_object_get(r, "stopped_at")) &&
           json_is_true(json_object_get(r, "persistent")),
       "stopped_at 0 leaves it unset");
    json_decref(r);

    struct err *e = NULL;
    is_int(main_db_set_status(db, "nope", "Stopped", NULL, 0, &e), -1, "unknown VM");
    ok(e && e->status == 404, "status 404: %s", err_msg(e));
    err_free(e);
    e = NULL;
    is_int(main_db_refresh_totals(db, "nope", "/nonexistent/session.db", &e), -1,
           "refresh of an unknown VM");
    ok(e && e->status == 404, "status 404 there too: %s", err_msg(e));
    err_free(e);
    struct session_db_counters c = {.net_requests = 9,
                                    .net_allowed = 5,
                                    .net_denied = 4,
                                    .dns_queries = 8,
                                    .dns_denied = 2,
                                    .model_calls = 3,
                                    .input_tokens = 1000,
                                    .output_tokens = 300,
                                    .cache_read_tokens = 70,
                                    .thinking_tokens = 40,
                                    .estimated_cost_usd = 1.5,
                                    .tool_calls = 6,
                                    .asks = 2};
    ok(main_db_set_totals(db, "vm-b", &c, NULL) == 0, "set totals read elsewhere");
    ok(main_db_get_session(db, "vm-b", &r, NULL) == 0 && r, "get vm-b");
    const char *keys[] = {"net_requests",      "net_allowed",     "net_denied",   "dns_queries",
                          "dns_denied",        "model_calls",     "input_tokens", "output_tokens",
                          "cache_read_tokens", "thinking_tokens", "tool_calls",   "asks"};
    const int64_t want[] = {9, 5, 4, 8, 2, 3, 1000, 300, 70, 40, 6, 2};
    int same = 0;
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        same += jint(r, keys[i]) == want[i];
    is_int(same, (int)ARRAY_SIZE(keys), "every total column as given");
    ok(json_real_value(json_object_get(r, "estimated_cost_usd")) == 1.5, "cost 1.5");
    json_decref(r);
    e = NULL;
    is_int(main_db_set_totals(db, "nope", &c, &e), -1, "totals of an unknown VM");
    ok(e && e->status == 404, "status 404: %s", err_msg(e));
    err_free(e);
    ok(main_db_delete_session(db, "vm-a", NULL) == 0, "delete");
    ok(main_db_get_session(db, "vm-a", &r, NULL) == 0 && r == NULL, "deleted row is gone");
}

static void test_sessions(const char *path)
{
    struct main_db *db = open_db(path);
    struct main_db_session a = {.vm_id = "vm-a",
                                .name = "code-1",
                                .profile = "code",
                                .status = "Running",
                                .created_at = 2000,
                                .session_dir = "/d/a",
                                .cpus = 2,
                                .ram_mb = 2048,
                                .env_json = "{\"A\":\"1\"}"};
    struct main_db_session b = {.vm_id = "vm-b",
                                .name = "keep",
                                .profile = "code",
                                .persistent = true,
                                .status = "Running",
                                .created_at = 1000};
    ok(main_db_upsert_session(db, &a, NULL) == 0 && main_db_upsert_session(db, &b, NULL) == 0,
       "insert two sessions");
    json_t *list = NULL;
    ok(main_db_list_sessions(db, &list, NULL) == 0 && json_array_size(list) == 2,
       "list returns both");
    is_str(json_string_value(json_object_get(json_array_get(list, 0), "vm_id")), "vm-b",
           "oldest created_at first");
    json_decref(list);

    test_totals(db, &a);
    test_status_errors(db);
    main_db_close(db);
}

static void test_newer(const char *path)
{
    sqlite3 *c = NULL;
    sqlite3_open(path, &c);
    sqlite3_exec(c, "PRAGMA user_version=7", NULL, NULL, NULL);
    sqlite3_close(c);
    struct err *e = NULL;
    struct main_db *db = NULL;
    is_int(main_db_open(path, &db, &e), -1, "a newer main.db is refused");
    ok(e && e->status == 409 && strstr(e->msg, "newer"), "%s", err_msg(e));
    err_free(e);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/main.db", dir);
    test_names(path);
    test_sessions(path);
    test_newer(path);
    remove_db(path);
    rmdir(dir);
    return done_testing();
}
