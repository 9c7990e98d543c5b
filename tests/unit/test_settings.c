/* Unit tests for the settings registry (src/lib/config/settings.h): defaults,
 * layering, corp locks, issue texts, env and MCP server rules, /settings/info,
 * PATCH /settings/edit (all or nothing, the written file), the template. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "config/settings.h"
#include "tap.h"

static char dir[64];
static char user_path[128], corp_path[128];

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        diag("cannot write %s", path);
}

static char *get_file(const char *path)
{
    char *s = NULL;
    if (file_read_all(path, 1 << 20, &s, NULL, NULL) < 0)
        return NULL;
    return s;
}

/* Loads user.toml (text, NULL = absent) and corp (NULL = no corp file). */
static struct settings *load(const char *user, const char *corp)
{
    unlink(user_path);
    unlink(corp_path);
    if (user)
        put_file(user_path, user);
    if (corp)
        put_file(corp_path, corp);
    struct err *e = NULL;
    struct settings *s = settings_load_paths(user_path, corp ? corp_path : NULL, &e);
    if (!s)
        diag("load failed: %s", err_msg(e));
    err_free(e);
    return s;
}

/* Issues joined with '\n' (static buffer). */
static const char *issues(const struct settings *s)
{
    static char out[8192];
    size_t o = 0;
    out[0] = '\0';
    const json_t *a = settings_issues(s);
    for (size_t i = 0; i < json_array_size(a) && o < sizeof(out); i++)
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? "\n" : "",
                              json_string_value(json_array_get(a, i)));
    return out;
}

static void test_defaults(void)
{
    struct settings *s = load(NULL, NULL);
    ok(s != NULL, "no files: loads");
    is_str(issues(s), "", "no files: no issues");
    is_int(settings_int(s, "vm.cpus"), 2, "vm.cpus default");
    is_int(settings_int(s, "vm.ram_mb"), 2048, "vm.ram_mb default");
    is_int(settings_int(s, "vm.disk_gb"), 16, "vm.disk_gb default");
    is_str(settings_str(s, "vm.profile"), "code", "vm.profile default");
    is_int(settings_int(s, "limits.cpus_max"), 8, "limits.cpus_max default");
    is_int(settings_int(s, "limits.ram_mb_max"), 16384, "limits.ram_mb_max default");
    is_int(settings_int(s, "exec.max_output_bytes"), 10485760, "exec.max_output_bytes default");
    is_int(settings_int(s, "gateway.port"), 19222, "gateway.port default");
    is_str(settings_str(s, "hypervisor.accel"), "auto", "accel default");
    is_str(settings_str(s, "hypervisor.qemu_binary"), "", "qemu_binary default");
    is_str(settings_str(s, "service.log_level"), "info", "log_level default");
    ok(settings_bool(s, "mcp.enabled") && settings_bool(s, "service.auto_start"), "bool defaults");
    ok(json_is_object(settings_json(s, "vm.env")) &&
           json_object_size(settings_json(s, "vm.env")) == 0,
       "vm.env default {}");
    ok(json_is_array(settings_json(s, "mcp.servers")) &&
           json_array_size(settings_json(s, "mcp.servers")) == 0,
       "mcp.servers default []");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_DEFAULT, "source default");
    ok(!settings_corp_locked(s, "vm.cpus"), "not locked");
    is_int(settings_int(s, "no.such"), 0, "unknown id int getter is 0");
    is_str(settings_str(s, "vm.cpus"), "", "string getter on an int is empty");
    ok(settings_json(s, "no.such") == NULL, "unknown id json is NULL");
    ok(settings_user_toml(s) == NULL && settings_corp_toml(s) == NULL, "no trees");
    settings_free(s);
}

static void test_user_layer(void)
{
    struct settings *s = load("[vm]\ncpus = 4\nprofile = 'minimal'\nenv = { EDITOR = 'vim' }\n"
                              "[hypervisor]\naccel = 'tcg'\n[mcp]\nenabled = false\n",
                              NULL);
    is_str(issues(s), "", "valid user file: no issues");
    is_int(settings_int(s, "vm.cpus"), 4, "user vm.cpus");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_USER, "source user");
    is_int(settings_source(s, "vm.ram_mb"), SETTINGS_DEFAULT, "untouched key stays default");
    is_str(settings_str(s, "vm.profile"), "minimal", "user profile");
    is_str(settings_str(s, "hypervisor.accel"), "tcg", "user accel");
    ok(!settings_bool(s, "mcp.enabled"), "user bool false");
    is_str(json_string_value(json_object_get(settings_json(s, "vm.env"), "EDITOR")), "vim",
           "user env");
    ok(settings_user_toml(s) != NULL, "user tree kept");
    settings_free(s);
}

static void test_issues(void)
{
    struct settings *s = load("[vm]\n"                 /* 1 */
                              "cpus = 12\n"            /* 2 */
                              "ram_mb = '4G'\n"        /* 3 */
                              "cpu = 2\n"              /* 4 */
                              "profile = 'no/slash'\n" /* 5 */
                              "[hypervisor]\n"         /* 6 */
                              "accel = 'hvf'\n"        /* 7 */
                              "[mcp]\n"                /* 8 */
                              "enabled = 1\n"          /* 9 */
                              "[service]\n"            /* 10 */
                              "log_level = 'trace'\n"  /* 11 */
                              "[bogus]\n"              /* 12 */
                              "x = 1\n"                /* 13 */
                              "[policy]\n"             /* 14 */
                              "[gateway]\n"            /* 15 */
                              "port = 70000\n"         /* 16 */
                              "[limits]\n"             /* 17 */
                              "cpus_min = 0\n",        /* 18 */
                              NULL);
    is_str(issues(s),
           "user.toml:4: vm.cpu: unknown setting\n"
           "user.toml:12: bogus: unknown setting\n"
           "user.toml:14: policy: network policy belongs in policy.toml\n"
           "user.toml:2: vm.cpus: must be an integer between 1 and 8\n"
           "user.toml:3: vm.ram_mb: must be an integer between 256 and 16384\n"
           "user.toml:5: vm.profile: must be a name of 1-64 characters of A-Z a-z 0-9 _ - "
           "starting with a letter or digit\n"
           "user.toml:18: limits.cpus_min: must be an integer between 1 and 255\n"
           "user.toml:7: hypervisor.accel: must be one of: auto, kvm, tcg\n"
           "user.toml:9: mcp.enabled: must be true or false\n"
           "user.toml:16: gateway.port: must be an integer between 0 and 65535\n"
           "user.toml:11: service.log_level: must be one of: error, warn, info, debug",
           "issue texts, lines and order");
    is_int(settings_int(s, "vm.cpus"), 2, "bad vm.cpus falls back to the default");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_DEFAULT, "bad value: source default");
    is_str(settings_str(s, "hypervisor.accel"), "auto", "bad accel falls back");
    settings_free(s);

    s = load("vm = 3\n[exec]\nmax_timeout_secs = 100\ndefault_timeout_secs = 300\n", NULL);
    is_str(issues(s),
           "user.toml:1: vm: must be a table ([vm])\n"
           "user.toml:4: exec.default_timeout_secs: must be an integer between 1 and 100\n"
           "exec.default_timeout_secs: default 300 is outside 1..100 (set by "
           "exec.max_timeout_secs); using 100",
           "section not a table; range from another key; default clamped");
    is_int(settings_int(s, "exec.default_timeout_secs"), 100, "clamped default");
    settings_free(s);

    s = load("[vm]\ncpus = 4\n[limits]\ncpus_max = 3\n", NULL);
    is_str(issues(s), "user.toml:2: vm.cpus: must be an integer between 1 and 3",
           "vm.cpus checked against the user's limits");
    settings_free(s);

    s = load("[vm]\ncpus = 2\ncpus = 3\n", NULL);
    is_str(
        issues(s),
        "user.toml:3: duplicate key 'cpus' (first defined at line 2) (the whole file is ignored)",
        "parse error: one issue, file ignored");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_DEFAULT, "parse error: defaults");
    ok(settings_user_toml(s) == NULL, "parse error: no user tree");
    settings_free(s);
}

static void test_corp(void)
{
    const char *corp = "schema = 1\n"
                       "rule = [ { id = 'x', action = 'allow' } ]\n"
                       "[vm]\n"
                       "cpus = 3\n"
                       "[limits]\n"
                       "cpus_max = 4\n"
                       "[policy]\n"
                       "default_action = 'block'\n"
                       "[network]\n"
                       "log_bodies = true\n"
                       "[dns]\n"
                       "[corp]\n"
                       "user_rules = false\n";
    struct settings *s = load("[vm]\ncpus = 4\nram_mb = 4096\n", corp);
    is_str(issues(s), "user.toml:2: vm.cpus: ignored: locked by the corp file",
           "user value of a corp key: one issue; policy tables skipped");
    is_int(settings_int(s, "vm.cpus"), 3, "corp value wins");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_CORP, "source corp");
    ok(settings_corp_locked(s, "vm.cpus") && settings_corp_locked(s, "limits.cpus_max"),
       "corp keys locked");
    ok(!settings_corp_locked(s, "vm.ram_mb"), "other keys not locked");
    is_int(settings_int(s, "vm.ram_mb"), 4096, "user value of an unlocked key applies");
    const struct toml_value *ct = settings_corp_toml(s);
    is_str(toml_string(toml_lookup(ct, "policy.default_action")), "block",
           "corp tree keeps [policy] for network code");
    is_str(settings_corp_path(s), corp_path, "corp path");
    settings_free(s);

    char want[512];
    s = load(NULL, "[vm]\ncpus = 99\n[limits]\ncpus_min = 4\n");
    snprintf(want, sizeof(want),
             "%s:2: vm.cpus: must be an integer between 4 and 8\n"
             "vm.cpus: default 2 is outside 4..8 (set by limits.cpus_min); using 4",
             corp_path);
    is_str(issues(s), want, "bad corp value: issue with the corp path; default clamped");
    ok(settings_corp_locked(s, "vm.cpus"), "bad corp value still locks");
    is_int(settings_int(s, "vm.cpus"), 4, "clamped to the corp minimum");
    settings_free(s);

    s = load(NULL, "[vm\n");
    snprintf(want, sizeof(want),
             "%s:1: expected ']' to close the table header (the whole file is ignored)", corp_path);
    is_str(issues(s), want, "corp parse error is an issue");
    settings_free(s);
}

static void test_env_and_mcp(void)
{
    struct err *e = NULL;
    json_t *env = json_pack("{s:s, s:s, s:s}", "A", "1", "_b9", "x", "PATH", "/bin");
    ok(settings_env_check(env, &e) == 0, "good env names");
    json_decref(env);
    static const char *const bad[][2] = {
        {"9A", "variable name '9A' must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)"},
        {"A-B", "variable name 'A-B' must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)"},
        {"", "variable name '' must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)"},
        {"CAPSEM_VM_ID", "variable name 'CAPSEM_VM_ID' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, "
                         "BASH_ENV, ENV, IFS, CDPATH)"},
        {"LD_PRELOAD", "variable name 'LD_PRELOAD' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, "
                       "BASH_ENV, ENV, IFS, CDPATH)"},
        {"BASH_FUNC_x%%", "variable name 'BASH_FUNC_x%%' must match [A-Za-z_][A-Za-z0-9_]* (at "
                          "most 256 characters)"},
        {"BASH_FUNC_x", "variable name 'BASH_FUNC_x' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, "
                        "BASH_ENV, ENV, IFS, CDPATH)"},
        {"IFS", "variable name 'IFS' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, BASH_ENV, ENV, "
                "IFS, CDPATH)"},
        {"ENV", "variable name 'ENV' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, BASH_ENV, ENV, "
                "IFS, CDPATH)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        env = json_pack("{s:s}", bad[i][0], "v");
        e = NULL;
        settings_env_check(env, &e);
        is_str(e ? err_msg(e) : NULL, bad[i][1], "env name %s", bad[i][0]);
        is_int(e ? e->status : 0, 400, "env error is 400");
        err_free(e);
        json_decref(env);
    }
    char *big = calloc(1, 32 * 1024 + 2);
    memset(big, 'x', 32 * 1024);
    env = json_pack("{s:s}", "A", big);
    ok(settings_env_check(env, NULL) == 0, "value of 32 KiB accepted");
    json_decref(env);
    big[32 * 1024] = 'x';
    env = json_pack("{s:s}", "A", big);
    e = NULL;
    settings_env_check(env, &e);
    is_str(e ? err_msg(e) : NULL, "value of A is longer than 32768 bytes", "value one past 32 KiB");
    err_free(e);
    json_decref(env);
    big[32 * 1024] = '\0';
    env = json_object();
    for (int i = 0; i < 9; i++) {
        char k[16];
        snprintf(k, sizeof(k), "V%d", i);
        json_object_set_new(env, k, json_string(big));
    }
    e = NULL;
    settings_env_check(env, &e);
    is_str(e ? err_msg(e) : NULL, "values total more than 262144 bytes", "total past 256 KiB");
    err_free(e);
    json_decref(env);
    free(big);
    env = json_pack("{s:i}", "A", 1);
    e = NULL;
    settings_env_check(env, &e);
    is_str(e ? err_msg(e) : NULL, "value of A must be a string without NUL", "non-string value");
    err_free(e);
    json_decref(env);

    struct settings *s = load("[vm.env]\nLD_PRELOAD = 'x'\n", NULL);
    is_str(issues(s),
           "user.toml:1: vm.env: variable name 'LD_PRELOAD' is reserved (CAPSEM_*, LD_*, "
           "BASH_FUNC_*, BASH_ENV, ENV, IFS, CDPATH)",
           "reserved env name in user.toml");
    ok(json_object_size(settings_json(s, "vm.env")) == 0, "bad env: default applies");
    settings_free(s);

    s = load("[[mcp.servers]]\nname = 'docs'\nurl = 'https://mcp.example.com/mcp'\n"
             "headers = { Authorization = 'Bearer x' }\n"
             "[[mcp.servers]]\nname = 'b-2'\nurl = 'http://127.0.0.1:9000'\nenabled = false\n",
             NULL);
    is_str(issues(s), "", "good servers");
    char *dump = json_dumps(settings_json(s, "mcp.servers"), JSON_COMPACT);
    is_str(dump,
           "[{\"name\":\"docs\",\"url\":\"https://mcp.example.com/mcp\",\"headers\":"
           "{\"Authorization\":\"Bearer x\"},\"enabled\":true},{\"name\":\"b-2\",\"url\":"
           "\"http://127.0.0.1:9000\",\"headers\":{},\"enabled\":false}]",
           "servers normalized");
    free(dump);
    settings_free(s);

    static const char *const badmcp[][2] = {
        {"name = 'local'\nurl = 'http://x'",
         "entry 1: MCP server name 'local' is reserved for built-in tools"},
        {"name = 'a__b'\nurl = 'http://x'",
         "entry 1: MCP server name 'a__b' must not contain \"__\""},
        {"name = ''\nurl = 'http://x'", "entry 1: MCP server name must not be empty"},
        {"name = 'a b'\nurl = 'http://x'",
         "entry 1: MCP server name 'a b' must be 1-64 of A-Z a-z 0-9 _ -"},
        {"url = 'http://x'", "entry 1: name must be a string"},
        {"name = 'a'\nurl = 'ftp://x'", "server a: url must be an http:// or https:// URL"},
        {"name = 'a'", "server a: url must be an http:// or https:// URL"},
        {"name = 'a'\nurl = 'http://x'\ncommand = 'sh'",
         "entry 1: unknown field 'command' (name, url, headers, enabled)"},
        {"name = 'a'\nurl = 'http://x'\nheaders = { 'Bad Name' = 'v' }",
         "server a: 'Bad Name' is not a valid HTTP header name"},
        {"name = 'a'\nurl = 'http://x'\nheaders = { X = 1 }",
         "server a: header X must be a string of at most 8192 bytes without control characters"},
        {"name = 'a'\nurl = 'http://x'\nenabled = 'yes'",
         "server a: enabled must be true or false"},
        {"name = 'a'\nurl = 'http://x'\n[[mcp.servers]]\nname = 'a'\nurl = 'http://y'",
         "server name a is used twice"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(badmcp); i++) {
        char text[512], want[512];
        snprintf(text, sizeof(text), "[[mcp.servers]]\n%s\n", badmcp[i][0]);
        snprintf(want, sizeof(want), "user.toml:1: mcp.servers: %s", badmcp[i][1]);
        s = load(text, NULL);
        is_str(issues(s), want, "mcp servers: %s", badmcp[i][1]);
        settings_free(s);
    }
    s = load("[mcp]\nservers = 'x'\n", NULL);
    is_str(issues(s), "user.toml:2: mcp.servers: must be an array of tables ([[mcp.servers]])",
           "servers not an array");
    settings_free(s);
}

static void test_load_env_and_io(void)
{
    put_file(user_path, "[vm]\ncpus = 5\n");
    put_file(corp_path, "[vm]\ncpus = 6\n");
    setenv("CAPSEM_CORP_CONFIG", corp_path, 1);
    struct err *e = NULL;
    struct settings *s = settings_load(dir, &e);
    is_int(s ? settings_int(s, "vm.cpus") : -1, 6, "CAPSEM_CORP_CONFIG names the corp file");
    settings_free(s);
    setenv("CAPSEM_CORP_CONFIG", "", 1);
    s = settings_load(dir, &e);
    is_int(s ? settings_int(s, "vm.cpus") : -1, 5, "empty CAPSEM_CORP_CONFIG: no corp file");
    ok(s && settings_corp_path(s) == NULL, "no corp path");
    is_str(s ? settings_user_path(s) : NULL, user_path, "user path from home");

    /* reload: new content applies; an unreadable file keeps the old state */
    put_file(user_path, "[vm]\ncpus = 7\n");
    ok(settings_reload(s, &e) == 0 && settings_int(s, "vm.cpus") == 7, "reload applies changes");
    unlink(user_path);
    mkdir(user_path, 0700);
    ok(settings_reload(s, &e) < 0, "reload fails when user.toml is a directory");
    ok(e && e->code == EISDIR, "the error is the read error");
    err_free(e);
    e = NULL;
    is_int(settings_int(s, "vm.cpus"), 7, "failed reload keeps the old values");
    settings_free(s);
    s = settings_load(dir, &e);
    ok(s == NULL && e, "load fails on an I/O error other than ENOENT");
    err_free(e);
    rmdir(user_path);
    unsetenv("CAPSEM_CORP_CONFIG");
}

static void test_info(void)
{
    struct settings *s = load("[vm]\ncpus = 4\nbad = 1\n", "[limits]\nmax_concurrent_vms = 3\n");
    json_t *info = settings_info_json(s);
    json_t *list = json_object_get(info, "settings");
    ok(json_is_array(list) && json_array_size(list) == 30, "30 settings listed");
    char *first = json_dumps(json_array_get(list, 0), JSON_COMPACT);
    is_str(
        first,
        "{\"id\":\"vm.cpus\",\"value\":4,\"default\":2,\"source\":\"user\",\"corp_locked\":false}",
        "first entry shape");
    free(first);
    json_t *e = NULL;
    for (size_t i = 0; i < json_array_size(list); i++) {
        e = json_array_get(list, i);
        if (!strcmp(json_string_value(json_object_get(e, "id")), "limits.max_concurrent_vms"))
            break;
    }
    char *lim = json_dumps(e, JSON_COMPACT);
    is_str(lim,
           "{\"id\":\"limits.max_concurrent_vms\",\"value\":3,\"default\":10,\"source\":\"corp\","
           "\"corp_locked\":true}",
           "corp entry shape");
    free(lim);
    char *iss = json_dumps(json_object_get(info, "issues"), JSON_COMPACT);
    is_str(iss, "[\"user.toml:3: vm.bad: unknown setting\"]", "issues in info");
    free(iss);
    is_int(json_object_size(info), 2, "only settings and issues");
    json_decref(info);
    settings_free(s);
}

static int edit(struct settings *s, const char *patch_json, char **msg, int *status)
{
    json_t *patch = json_loads(patch_json, 0, NULL);
    struct err *e = NULL;
    int r = settings_edit(s, patch, &e);
    *msg = e ? strdup(err_msg(e)) : NULL;
    *status = e ? e->status : 0;
    err_free(e);
    json_decref(patch);
    return r;
}

static void edit_fails(struct settings *s, const char *patch, int status, const char *want)
{
    char *before = get_file(user_path), *msg = NULL;
    int st = 0;
    ok(edit(s, patch, &msg, &st) < 0, "edit %s refused", patch);
    is_int(st, status, "status %d", status);
    is_str(msg, want, "message");
    char *after = get_file(user_path);
    is_str(after, before, "user.toml untouched");
    free(before);
    free(after);
    free(msg);
}

static void test_edit_refusals(void)
{
    struct settings *s = load("# mine\n[vm]\ncpus = 6\n", "[gateway]\nport = 1234\n");
    edit_fails(s, "{\"vm.cpus\": 4, \"vm.nope\": 1}", 400, "unknown setting: vm.nope");
    edit_fails(s, "{\"vm.cpus\": 4, \"gateway.port\": 1}", 403,
               "setting is locked by corp: gateway.port");
    edit_fails(s, "{\"vm.cpus\": 4, \"vm.ram_mb\": \"4G\"}", 400,
               "vm.ram_mb: must be an integer between 256 and 16384");
    edit_fails(s, "{\"vm.cpus\": 9}", 400, "vm.cpus: must be an integer between 1 and 8");
    edit_fails(s, "{\"vm.cpus\": 4.0}", 400, "vm.cpus: must be an integer between 1 and 8");
    edit_fails(s, "{\"vm.cpus\": {\"a\": 1}}", 400, "vm.cpus: must be an integer between 1 and 8");
    edit_fails(s, "{\"vm.profile\": [null]}", 400,
               "vm.profile: must be a name of 1-64 characters of A-Z a-z 0-9 _ - starting with a "
               "letter or digit");
    edit_fails(s, "{\"vm.cpus\": 12, \"limits.cpus_max\": 10}", 400,
               "vm.cpus: must be an integer between 1 and 10");
    edit_fails(s, "{\"limits.cpus_max\": 4}", 400,
               "vm.cpus: must be an integer between 1 and 4 (value in user.toml)");
    edit_fails(s, "{\"vm.env\": {\"LD_PRELOAD\": \"x\"}}", 400,
               "vm.env: variable name 'LD_PRELOAD' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, "
               "BASH_ENV, ENV, IFS, CDPATH)");
    edit_fails(s, "{\"mcp.servers\": [{\"name\": \"local\", \"url\": \"http://x\"}]}", 400,
               "mcp.servers: entry 1: MCP server name 'local' is reserved for built-in tools");
    edit_fails(s, "{\"hypervisor.accel\": \"hvf\"}", 400,
               "hypervisor.accel: must be one of: auto, kvm, tcg");
    edit_fails(s, "[1]", 400, "settings patch must be a JSON object of id: value");
    settings_free(s);

    s = load("[vm\n", NULL);
    edit_fails(s, "{\"vm.cpus\": 4}", 409,
               "user.toml does not parse; fix or remove it first: user.toml:1: expected ']' to "
               "close the table header");
    settings_free(s);
}

static void test_edit_writes(void)
{
    struct settings *s =
        load("# comment\n[vm]\ncpus = 3\nfoo = 'kept'\n[hypervisor]\naccel = 'tcg'\n",
             "[service]\nlog_level = 'debug'\n");
    char *msg = NULL;
    int st = 0;
    int r = edit(s,
                 "{\"vm.cpus\": 4, \"limits.cpus_max\": 6, \"hypervisor.accel\": null,"
                 " \"vm.env\": {\"EDITOR\": \"vim\", \"Q\": \"a \\\"q\\\"\\n\"},"
                 " \"mcp.servers\": [{\"name\": \"docs\", \"url\": \"https://x/mcp\","
                 " \"headers\": {\"Authorization\": \"Bearer t\"}}]}",
                 &msg, &st);
    ok(r == 0, "edit applied");
    if (msg)
        diag("%s", msg);
    free(msg);
    char *text = get_file(user_path);
    is_str(text,
           "# Capsem user settings, written by capsem-service (PATCH /settings/edit).\n"
           "# Comments are not kept when the service rewrites this file.\n"
           "\n"
           "[vm]\n"
           "cpus = 4\n"
           "foo = \"kept\"\n"
           "\n[vm.env]\nEDITOR = \"vim\"\nQ = \"a \\\"q\\\"\\n\"\n"
           "\n[hypervisor]\n"
           "\n[limits]\ncpus_max = 6\n"
           "\n[mcp]\n"
           "\n[[mcp.servers]]\nname = \"docs\"\nurl = \"https://x/mcp\"\n"
           "\n[mcp.servers.headers]\nAuthorization = \"Bearer t\"\n",
           "written user.toml");
    free(text);
    struct stat sb;
    ok(stat(user_path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "user.toml mode 0600");
    is_int(settings_int(s, "vm.cpus"), 4, "reloaded vm.cpus");
    is_int(settings_int(s, "limits.cpus_max"), 6, "reloaded limits.cpus_max");
    is_str(settings_str(s, "hypervisor.accel"), "auto", "null removed the user value");
    is_int(settings_source(s, "hypervisor.accel"), SETTINGS_DEFAULT, "source back to default");
    is_str(json_string_value(json_object_get(settings_json(s, "vm.env"), "Q")), "a \"q\"\n",
           "env value round-trips");
    is_str(json_string_value(
               json_object_get(json_array_get(settings_json(s, "mcp.servers"), 0), "name")),
           "docs", "server round-trips");
    is_str(issues(s), "user.toml:6: vm.foo: unknown setting", "unknown key kept, still an issue");
    is_str(settings_str(s, "service.log_level"), "debug", "corp still applies after edit");

    /* a second edit starts from the written file */
    r = edit(s, "{\"vm.env\": null, \"mcp.servers\": null}", &msg, &st);
    ok(r == 0 && json_object_size(settings_json(s, "vm.env")) == 0 &&
           json_array_size(settings_json(s, "mcp.servers")) == 0,
       "null removes tables too");
    free(msg);

    /* a range and a value that needs it, in one patch */
    r = edit(s, "{\"limits.cpus_max\": 16, \"vm.cpus\": 12}", &msg, &st);
    ok(r == 0 && settings_int(s, "vm.cpus") == 12, "raise a limit and use it in one patch");
    free(msg);
    /* an empty patch changes nothing, not even the comments */
    put_file(user_path, "# keep me\n[vm]\ncpus = 5\n");
    r = edit(s, "{}", &msg, &st);
    text = get_file(user_path);
    is_str(text, "# keep me\n[vm]\ncpus = 5\n", "empty patch leaves the file alone");
    free(text);
    free(msg);
    settings_free(s);

    /* a home that does not exist yet is created (0700) */
    char nested[192];
    snprintf(nested, sizeof(nested), "%s/home/user.toml", dir);
    s = settings_load_paths(nested, NULL, NULL);
    r = edit(s, "{\"vm.cpus\": 3}", &msg, &st);
    struct stat hs;
    snprintf(nested, sizeof(nested), "%s/home", dir);
    ok(r == 0 && stat(nested, &hs) == 0 && (hs.st_mode & 0777) == 0700, "edit creates the home");
    is_int(settings_int(s, "vm.cpus"), 3, "value in the new home");
    free(msg);
    settings_free(s);
    snprintf(nested, sizeof(nested), "%s/home/user.toml", dir);
    unlink(nested);
    snprintf(nested, sizeof(nested), "%s/home", dir);
    rmdir(nested);

    /* no user.toml yet: the edit creates it */
    s = load(NULL, NULL);
    r = edit(s, "{\"vm.ram_mb\": 4096}", &msg, &st);
    text = get_file(user_path);
    ok(r == 0 && text && strstr(text, "[vm]\nram_mb = 4096\n"), "edit creates user.toml");
    is_int(settings_int(s, "vm.ram_mb"), 4096, "created value applies");
    free(text);
    free(msg);
    settings_free(s);
}

/* The template parses without issues, and uncommenting every `# key = value`
 * line outside the mcp.servers example gives the defaults, all from user. */
static void test_template(void)
{
    char *t = settings_user_toml_template();
    ok(t != NULL, "template");
    struct settings *s = load(t, NULL);
    is_str(issues(s), "", "template: no issues");
    is_int(settings_source(s, "vm.cpus"), SETTINGS_DEFAULT, "template: all commented out");
    settings_free(s);
    struct buf b;
    buf_init(&b, 1 << 20);
    size_t n_uncommented = 0;
    bool in_example = false; /* the commented [[mcp.servers]] block */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (str_has_prefix(line, "# [[mcp.servers]]"))
            in_example = true;
        else if (len == 0)
            in_example = false;
        size_t k = 2;
        while (k < len && ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_'))
            k++;
        bool setting = !in_example && str_has_prefix(line, "# ") && k > 2 && k + 3 <= len &&
                       !memcmp(line + k, " = ", 3);
        n_uncommented += setting;
        buf_append(&b, setting ? line + 2 : line, setting ? len - 2 : len);
        buf_append(&b, "\n", 1);
        line += len + (nl ? 1 : 0);
    }
    char *u = buf_steal_str(&b);
    buf_free(&b);
    is_int(n_uncommented, 29, "29 settings in the template besides mcp.servers");
    s = load(u, NULL);
    is_str(issues(s), "", "uncommented template: no issues");
    json_t *info = settings_info_json(s);
    json_t *list = json_object_get(info, "settings");
    size_t same = 0, from_user = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        same += json_equal(json_object_get(e, "value"), json_object_get(e, "default"));
        from_user += !strcmp(json_string_value(json_object_get(e, "source")), "user");
    }
    is_int(same, 30, "uncommented template: every value is the default");
    is_int(from_user, 29, "uncommented template: every key but mcp.servers from user");
    json_decref(info);
    settings_free(s);
    free(u);
    free(t);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_settings_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(user_path, sizeof(user_path), "%s/user.toml", dir);
    snprintf(corp_path, sizeof(corp_path), "%s/corp.toml", dir);
    unsetenv("CAPSEM_CORP_CONFIG");
    test_defaults();
    test_user_layer();
    test_issues();
    test_corp();
    test_env_and_mcp();
    test_load_env_and_io();
    test_info();
    test_edit_refusals();
    test_edit_writes();
    test_template();
    unlink(user_path);
    unlink(corp_path);
    rmdir(dir);
    return done_testing();
}
