/* The settings registry (surface.md section 10): every key with its type,
 * default, allowed values and description; the value checks; the user.toml
 * template. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "config/settings_int.h"

static const char *const accel_choices[] = {"auto", "kvm", "tcg", NULL};
static const char *const log_choices[] = {"error", "warn", "info", "debug", NULL};

#define MiB (1024 * 1024)
#define GiB (1024LL * MiB)

#define INT(i, d, lo, hi, text)                                                                    \
    {                                                                                              \
        .id = i, .type = ST_INT, .def = d, .min = lo, .max = hi, .desc = text                      \
    }
#define INT_REF(i, d, lo, hi, lr, hr, text)                                                        \
    {                                                                                              \
        .id = i, .type = ST_INT, .def = d, .min = lo, .max = hi, .lo_ref = lr, .hi_ref = hr,       \
        .desc = text                                                                               \
    }
#define BOOL(i, d, text)                                                                           \
    {                                                                                              \
        .id = i, .type = ST_BOOL, .def = d, .desc = text                                           \
    }

/* Order is the order of /settings/info and of the template; keys of one
 * section stay together. */
const struct setting_def settings_defs[] = {
    INT_REF("vm.cpus", 2, 1, 255, "limits.cpus_min", "limits.cpus_max",
            "vCPUs when a request gives none (limits.cpus_min..limits.cpus_max)"),
    INT_REF("vm.ram_mb", 2048, 128, 4194304, "limits.ram_mb_min", "limits.ram_mb_max",
            "RAM in MiB when a request gives none (limits.ram_mb_min..limits.ram_mb_max)"),
    INT("vm.disk_gb", 16, 1, 16384, "size in GiB of the sparse overlay disk"),
    {.id = "vm.profile",
     .type = ST_NAME,
     .def_s = "code",
     .max = 64,
     .desc = "profile when a request gives none"},
    {.id = "vm.env",
     .type = ST_ENV,
     .desc = "variables for every guest, e.g. { EDITOR = \"vim\" }; request env wins per key"},
    INT("vm.boot_timeout_secs", 60, 1, 3600, "seconds to wait for the guest agent"),
    INT("vm.shutdown_grace_secs", 10, 0, 600, "seconds of guest poweroff before a kill"),
    INT("limits.cpus_min", 1, 1, 255, "smallest allowed cpus"),
    INT_REF("limits.cpus_max", 8, 1, 255, "limits.cpus_min", NULL, "largest allowed cpus"),
    INT("limits.ram_mb_min", 256, 128, 4194304, "smallest allowed ram_mb"),
    INT_REF("limits.ram_mb_max", 16384, 128, 4194304, "limits.ram_mb_min", NULL,
            "largest allowed ram_mb"),
    INT("limits.max_concurrent_vms", 10, 1, 1024, "Running VMs at once"),
    INT_REF("exec.default_timeout_secs", 300, 1, 604800, NULL, "exec.max_timeout_secs",
            "exec timeout when a request gives none"),
    INT("exec.max_timeout_secs", 86400, 1, 604800, "largest exec timeout a request may ask for"),
    INT("exec.max_output_bytes", 10 * MiB, 1024, 1 * GiB, "cap per output stream of one exec"),
    INT("exec.max_concurrent_per_vm", 32, 1, 1024, "parallel execs per VM"),
    INT("files.max_bytes", 10 * MiB, 1, 4 * GiB, "file transfer cap in bytes"),
    INT("sessions.failed_keep", 5, 0, 1000, "crashed ephemeral VM directories kept"),
    {.id = "hypervisor.accel",
     .type = ST_ENUM,
     .def_s = "auto",
     .choices = accel_choices,
     .desc = "auto, kvm (fail without it) or tcg"},
    {.id = "hypervisor.qemu_binary",
     .type = ST_STR,
     .def_s = "",
     .max = 4096,
     .desc = "QEMU to run; empty = qemu-system-<host arch> on PATH"},
    BOOL("mcp.enabled", 1, "guest MCP relay"),
    BOOL("mcp.builtin", 1, "local__* built-in tools"),
    INT("mcp.request_timeout_secs", 60, 1, 3600, "guest MCP request timeout"),
    INT("mcp.tool_timeout_secs", 300, 1, 86400, "guest MCP tool call timeout"),
    {.id = "mcp.servers",
     .type = ST_MCP,
     .desc =
         "external MCP servers, one [[mcp.servers]] block each (name not \"local\", no \"__\")"},
    BOOL("gateway.enabled", 1, "run capsem-gateway (read at service start)"),
    INT("gateway.port", 19222, 0, 65535, "gateway TCP port on 127.0.0.1; 0 = any free port"),
    INT("gateway.max_body_bytes", 10 * MiB, 1024, 1 * GiB, "gateway request body cap"),
    BOOL("service.auto_start", 1, "the CLI and capsem-mcp start the service"),
    {.id = "service.log_level",
     .type = ST_ENUM,
     .def_s = "info",
     .choices = log_choices,
     .desc = "error, warn, info or debug"},
};
const size_t settings_ndefs = ARRAY_SIZE(settings_defs);

int settings_def_find(const char *id)
{
    for (size_t i = 0; id && i < settings_ndefs; i++)
        if (strcmp(settings_defs[i].id, id) == 0)
            return (int)i;
    return -1;
}

json_t *settings_def_default(const struct setting_def *d)
{
    switch (d->type) {
    case ST_INT:
        return json_integer(d->def);
    case ST_BOOL:
        return json_boolean(d->def);
    case ST_ENV:
        return json_object();
    case ST_MCP:
        return json_array();
    default:
        return json_string(d->def_s);
    }
}

bool settings_policy_table(const char *name)
{
    static const char *const names[] = {"policy", "network", "dns", "corp", "schema", "rule"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* ---- checks ---- */

#define ENV_VALUE_MAX (32 * 1024)
#define ENV_TOTAL_MAX (256 * 1024)

static bool env_reserved(const char *n)
{
    static const char *const exact[] = {"BASH_ENV", "ENV", "IFS", "CDPATH"};
    static const char *const prefix[] = {"CAPSEM_", "LD_", "BASH_FUNC_"};
    for (size_t i = 0; i < ARRAY_SIZE(exact); i++)
        if (strcmp(n, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < ARRAY_SIZE(prefix); i++)
        if (str_has_prefix(n, prefix[i]))
            return true;
    return false;
}

static bool env_name_ok(const char *n)
{
    if (!(isalpha((unsigned char)*n) || *n == '_') || strlen(n) > 256)
        return false;
    for (const char *p = n; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

int settings_env_check(const json_t *env, struct err **errp)
{
    if (!json_is_object(env))
        return err_status(errp, 400, "must be a table (object) of strings");
    size_t total = 0;
    json_t *o = (json_t *)env;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
        const char *k = json_object_iter_key(it);
        const json_t *v = json_object_iter_value(it);
        if (!env_name_ok(k))
            return err_status(errp, 400,
                              "variable name '%.64s' must match [A-Za-z_][A-Za-z0-9_]* "
                              "(at most 256 characters)",
                              k);
        if (env_reserved(k))
            return err_status(errp, 400,
                              "variable name '%s' is reserved (CAPSEM_*, LD_*, BASH_FUNC_*, "
                              "BASH_ENV, ENV, IFS, CDPATH)",
                              k);
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return err_status(errp, 400, "value of %s must be a string without NUL", k);
        if (json_string_length(v) > ENV_VALUE_MAX)
            return err_status(errp, 400, "value of %s is longer than %d bytes", k, ENV_VALUE_MAX);
        total += json_string_length(v);
        if (total > ENV_TOTAL_MAX)
            return err_status(errp, 400, "values total more than %d bytes", ENV_TOTAL_MAX);
    }
    return 0;
}

int settings_mcp_name_check(const char *name, struct err **errp)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return err_status(errp, 400, "MCP server name must not be empty");
    if (strcmp(name, "local") == 0)
        return err_status(errp, 400, "MCP server name 'local' is reserved for built-in tools");
    if (strstr(name, "__"))
        return err_status(errp, 400, "MCP server name '%.64s' must not contain \"__\"", name);
    bool ok = n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-';
    if (!ok)
        return err_status(errp, 400, "MCP server name '%.64s' must be 1-64 of A-Z a-z 0-9 _ -",
                          name);
    return 0;
}

static int why_set(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* A string of at most max bytes without control characters (tab allowed
 * when `tab`) and without NUL. */
static bool plain_string(const json_t *v, size_t max, bool tab)
{
    if (!json_is_string(v) || json_string_length(v) > max)
        return false;
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < n; i++)
        if ((s[i] < 0x20 && !(tab && s[i] == '\t')) || s[i] == 0x7f)
            return false;
    return true;
}

static bool http_token(const char *s)
{
    if (!*s || strlen(s) > 256)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static int headers_check(const json_t *h, const char *server, char *why, size_t cap)
{
    if (!json_is_object(h))
        return why_set(why, cap, "server %s: headers must be a table of strings", server);
    json_t *o = (json_t *)h;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
        const char *k = json_object_iter_key(it);
        const json_t *v = json_object_iter_value(it);
        if (!http_token(k))
            return why_set(why, cap, "server %s: '%.64s' is not a valid HTTP header name", server,
                           k);
        if (!plain_string(v, 8192, true))
            return why_set(why, cap,
                           "server %s: header %s must be a string of at most 8192 bytes "
                           "without control characters",
                           server, k);
    }
    return 0;
}

static bool url_ok(const json_t *v)
{
    if (!plain_string(v, 4096, false))
        return false;
    const char *u = json_string_value(v);
    if (strchr(u, ' '))
        return false;
    if (str_has_prefix(u, "https://"))
        return u[8] != '\0';
    return str_has_prefix(u, "http://") && u[7] != '\0';
}

static bool mcp_field(const char *k)
{
    return !strcmp(k, "name") || !strcmp(k, "url") || !strcmp(k, "headers") ||
           !strcmp(k, "enabled");
}

/* One [[mcp.servers]] entry (i: 0-based), normalized into *out. */
static int mcp_entry(const json_t *e, size_t i, json_t **out, char *why, size_t cap)
{
    if (!json_is_object(e))
        return why_set(why, cap, "entry %zu must be a table", i + 1);
    json_t *o = (json_t *)e;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
        const char *k = json_object_iter_key(it);
        if (!mcp_field(k))
            return why_set(why, cap,
                           "entry %zu: unknown field '%.64s' (name, url, headers, "
                           "enabled)",
                           i + 1, k);
    }
    _cleanup_err_ struct err *ne = NULL;
    const json_t *name = json_object_get(e, "name");
    if (!json_is_string(name))
        return why_set(why, cap, "entry %zu: name must be a string", i + 1);
    const char *nm = json_string_value(name);
    if (settings_mcp_name_check(nm, &ne) < 0)
        return why_set(why, cap, "entry %zu: %s", i + 1, err_msg(ne));
    if (!url_ok(json_object_get(e, "url")))
        return why_set(why, cap, "server %s: url must be an http:// or https:// URL", nm);
    const json_t *h = json_object_get(e, "headers");
    if (h && headers_check(h, nm, why, cap) < 0)
        return -1;
    const json_t *en = json_object_get(e, "enabled");
    if (en && !json_is_boolean(en))
        return why_set(why, cap, "server %s: enabled must be true or false", nm);
    *out =
        json_pack("{s:s, s:O, s:o, s:b}", "name", nm, "url", json_object_get(e, "url"), "headers",
                  h ? json_deep_copy(h) : json_object(), "enabled", en ? json_is_true(en) : 1);
    return *out ? 0 : why_set(why, cap, "out of memory");
}

static bool mcp_name_taken(const json_t *arr, const char *name)
{
    for (size_t j = 0; j < json_array_size(arr); j++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(arr, j), "name")), name))
            return true;
    return false;
}

static int mcp_check(const json_t *in, json_t **out, char *why, size_t cap)
{
    if (!json_is_array(in))
        return why_set(why, cap, "must be an array of tables ([[mcp.servers]])");
    if (json_array_size(in) > 64)
        return why_set(why, cap, "at most 64 servers");
    json_t *arr = json_array();
    if (!arr)
        return why_set(why, cap, "out of memory");
    for (size_t i = 0; i < json_array_size(in); i++) {
        json_t *e = NULL;
        if (mcp_entry(json_array_get(in, i), i, &e, why, cap) < 0) {
            json_decref(arr);
            return -1;
        }
        const char *nm = json_string_value(json_object_get(e, "name"));
        if (mcp_name_taken(arr, nm)) {
            why_set(why, cap, "server name %s is used twice", nm);
            json_decref(e);
            json_decref(arr);
            return -1;
        }
        json_array_append_new(arr, e);
    }
    *out = arr;
    return 0;
}

/* Profile-style names: 1-max of [A-Za-z0-9_-], first alphanumeric. */
static bool name_ok(const json_t *v, size_t max)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > max || strlen(s) != n || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static int enum_check(const struct setting_def *d, const json_t *in, char *why, size_t cap)
{
    for (size_t i = 0; json_is_string(in) && d->choices[i]; i++)
        if (strcmp(json_string_value(in), d->choices[i]) == 0)
            return 0;
    char list[128] = "";
    size_t o = 0;
    for (size_t i = 0; d->choices[i] && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", d->choices[i]);
    return why_set(why, cap, "must be one of: %s", list);
}

static int scalar_check(const struct setting_def *d, const json_t *in, int64_t lo, int64_t hi,
                        char *why, size_t cap)
{
    switch (d->type) {
    case ST_INT:
        if (!json_is_integer(in) || json_integer_value(in) < lo || json_integer_value(in) > hi)
            return why_set(why, cap, "must be an integer between %lld and %lld", (long long)lo,
                           (long long)hi);
        return 0;
    case ST_BOOL:
        return json_is_boolean(in) ? 0 : why_set(why, cap, "must be true or false");
    case ST_NAME:
        return name_ok(in, (size_t)d->max)
                   ? 0
                   : why_set(why, cap,
                             "must be a name of 1-%lld characters of A-Z a-z 0-9 _ - starting "
                             "with a letter or digit",
                             (long long)d->max);
    case ST_STR:
        return plain_string(in, (size_t)d->max, false)
                   ? 0
                   : why_set(why, cap,
                             "must be a string of at most %lld bytes without control "
                             "characters",
                             (long long)d->max);
    default:
        return enum_check(d, in, why, cap);
    }
}

int settings_validate(const struct setting_def *d, const json_t *in, int64_t lo, int64_t hi,
                      json_t **out, char *why, size_t cap)
{
    if (d->type == ST_MCP)
        return mcp_check(in, out, why, cap);
    if (d->type == ST_ENV) {
        _cleanup_err_ struct err *e = NULL;
        if (settings_env_check(in, &e) < 0)
            return why_set(why, cap, "%s", err_msg(e));
        *out = json_deep_copy(in);
    } else {
        if (scalar_check(d, in, lo, hi, why, cap) < 0)
            return -1;
        *out = json_deep_copy(in);
    }
    return *out ? 0 : why_set(why, cap, "out of memory");
}

/* ---- template ---- */

static const char template_head[] =
    "# Capsem user settings ($CAPSEM_HOME/user.toml, TOML).\n"
    "# Every setting is listed with its default, commented out: uncomment a line\n"
    "# and change the value to override it. Keys set in the corp file\n"
    "# (/etc/capsem/corp.toml or $CAPSEM_CORP_CONFIG) are locked and ignored here.\n"
    "# Read at service start and on SIGHUP; problems show in `capsem doctor` and\n"
    "# GET /settings/info. Network policy goes in policy.toml, not here.\n";

static const char template_mcp[] = "# [[mcp.servers]]\n"
                                   "# name = \"example\"\n"
                                   "# url = \"https://mcp.example.com/mcp\"\n"
                                   "# headers = { Authorization = \"Bearer <token>\" }\n"
                                   "# enabled = true\n";

/* "# key = <default>" using the writer, so the syntax is the reader's. */
static int template_key(struct buf *b, const struct setting_def *d, const char *key)
{
    if (d->type == ST_ENV) /* the writer would make an empty [table] */
        return buf_printf(b, "# %s\n# %s = {}\n", d->desc, key);
    json_t *doc = json_object();
    json_object_set_new(doc, key, settings_def_default(d));
    char *line = toml_write(doc, NULL, NULL);
    json_decref(doc);
    if (!line)
        return -1;
    int r = buf_printf(b, "# %s\n# %s", d->desc, line);
    free(line);
    return r;
}

char *settings_user_toml_template(void)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    int r = buf_append_str(&b, template_head);
    size_t sect_len = 0;
    for (size_t i = 0; r == 0 && i < settings_ndefs; i++) {
        const struct setting_def *d = &settings_defs[i];
        const char *dot = strchr(d->id, '.');
        if (i == 0 || strncmp(d->id, settings_defs[i - 1].id, sect_len + 1) != 0) {
            sect_len = (size_t)(dot - d->id);
            r = buf_printf(&b, "\n[%.*s]\n", (int)sect_len, d->id);
        }
        if (r == 0 && d->type == ST_MCP)
            r = buf_printf(&b, "# %s\n%s", d->desc, template_mcp);
        else if (r == 0)
            r = template_key(&b, d, dot + 1);
    }
    char *out = r == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    return out;
}
