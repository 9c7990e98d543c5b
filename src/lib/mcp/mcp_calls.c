/* Tool -> capsem-service request mapping and result shaping for capsem-mcp
 * (surface.md section 6). Each tool has a start function that prepares the
 * first request in run->req and a step function that turns each answer into
 * either the next request or the tool's result object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "base/util.h"
#include "mcp/mcp_tooldef.h"

#define PATH_CAP (64 * 1024)

/* ---------- helpers ---------- */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

static int append_escaped(struct buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        int rc = unreserved(ch) ? buf_append(b, p, 1) : buf_printf(b, "%%%02X", ch);
        if (rc < 0)
            return -1;
    }
    return 0;
}

char *mcp_path_segment(const char *s)
{
    if (!*s || strchr(s, '/') || strchr(s, '\\') || strstr(s, ".."))
        return NULL;
    struct buf b;
    buf_init(&b, PATH_CAP);
    char *out = append_escaped(&b, s) == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    return out;
}

static unsigned char ascii_lower(char c)
{
    unsigned char ch = (unsigned char)c;
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

static bool contains_ci(const char *line, size_t n, const char *needle, size_t m)
{
    if (m == 0)
        return true;
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && ascii_lower(line[i + k]) == ascii_lower(needle[k]))
            k++;
        if (k == m)
            return true;
    }
    return false;
}

char *mcp_filter_lines(const char *text, const char *grep, long tail)
{
    size_t glen = grep ? strlen(grep) : 0;
    size_t total = strlen(text);
    /* First pass: count the matching lines, to know how many to skip. */
    size_t matches = 0;
    for (const char *p = text; *p;) {
        const char *nl = memchr(p, '\n', total - (size_t)(p - text));
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        matches += contains_ci(p, n, grep, glen);
        p += n + (nl != NULL);
    }
    size_t skip = (tail > 0 && matches > (size_t)tail) ? matches - (size_t)tail : 0;
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    size_t used = 0;
    for (const char *p = text; *p;) {
        const char *nl = memchr(p, '\n', total - (size_t)(p - text));
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t with_nl = n + (nl != NULL);
        if (contains_ci(p, n, grep, glen) && (skip == 0 || (skip--, false))) {
            memcpy(out + used, p, with_nl);
            used += with_nl;
        }
        p += with_nl;
    }
    out[used] = '\0';
    return out;
}

/* Replaces run->req with a new request (path and body are taken over). */
static void next_request(struct tool_run *run, const char *method, char *path, json_t *body)
{
    free(run->req.path);
    json_decref(run->req.body);
    run->req.method = method;
    run->req.path = path;
    run->req.body = body;
}

static const char *placeholder_kind(const char *tpl, const char *key)
{
    if (str_has_prefix(tpl, "/vms/"))
        return "VM reference";
    if (str_has_prefix(tpl, "/images/"))
        return "image name";
    return key;
}

/* Expands the "{key}" placeholders of tpl with string values of vars. */
static char *expand_path(const char *tpl, const json_t *vars, struct err **errp)
{
    struct buf b;
    buf_init(&b, PATH_CAP);
    for (const char *p = tpl; *p;) {
        size_t lit = strcspn(p, "{");
        if (buf_append(&b, p, lit) < 0)
            goto nomem;
        p += lit;
        if (!*p)
            break;
        size_t klen = strcspn(p + 1, "}");
        char key[32];
        snprintf(key, sizeof(key), "%.*s", (int)klen, p + 1);
        p += klen + 2;
        const char *v = json_string_value(json_object_get(vars, key));
        _cleanup_free_ char *seg = v ? mcp_path_segment(v) : NULL;
        if (!seg) {
            buf_free(&b);
            if (!v)
                return err_status(errp, 400, "missing required argument: %s", key), NULL;
            return err_status(errp, 400, "invalid %s: %s", placeholder_kind(tpl, key), v), NULL;
        }
        if (buf_append_str(&b, seg) < 0)
            goto nomem;
    }
    char *out = buf_steal_str(&b);
    buf_free(&b);
    if (!out)
        err_set(errp, ENOMEM, "out of memory");
    return out;
nomem:
    buf_free(&b);
    err_set(errp, ENOMEM, "request path too long");
    return NULL;
}

/* Builds the request body from "arg[:field],..." (absent arguments are left
 * out; the service applies its defaults). */
static json_t *map_body(const char *spec, const json_t *args)
{
    json_t *body = json_object();
    for (const char *p = spec; body && *p;) {
        size_t n = strcspn(p, ",");
        size_t alen = strcspn(p, ":,");
        char arg[32], field[32];
        snprintf(arg, sizeof(arg), "%.*s", (int)alen, p);
        if (alen < n)
            snprintf(field, sizeof(field), "%.*s", (int)(n - alen - 1), p + alen + 1);
        else
            snprintf(field, sizeof(field), "%s", arg);
        json_t *v = json_object_get(args, arg);
        if (v && json_object_set(body, field, v) < 0) {
            json_decref(body);
            return NULL;
        }
        p += n + (p[n] == ',');
    }
    return body;
}

/* Turns a failed reply into an error: `<status>: <error>` is made from it by
 * the server. Returns 0 for a 2xx answer. */
static int reply_failed(const struct tool_run *run, const struct mcp_reply *r, struct err **errp)
{
    const char *method = run->req.method;
    const char *path = run->req.path ? run->req.path : "";
    int plen = (int)strcspn(path, "?");
    if (r->err)
        return err_set(errp, r->err->code, "%s", err_msg(r->err));
    if (r->status >= 200 && r->status < 300)
        return 0;
    const char *msg = json_string_value(json_object_get(r->json, "error"));
    if (msg)
        return err_status(errp, (int)r->status, "%s", msg);
    if ((r->status == 404 || r->status == 405) && r->body_len == 0)
        return err_status(errp, (int)r->status,
                          "capsem-service does not offer %s %.*s (not in this service version)",
                          method, plen, path);
    return err_status(errp, (int)r->status, "capsem-service answered HTTP %ld to %s %.*s",
                      r->status, method, plen, path);
}

static json_t *borrowed(const json_t *j)
{
    return json_incref((json_t *)j);
}

/* The result object of a 2xx answer: objects as they are, anything else
 * wrapped as {key: value}. */
static json_t *as_object(const json_t *j, const char *key)
{
    if (json_is_object(j))
        return borrowed(j);
    if (!j || json_is_null(j))
        return json_object();
    return json_pack("{s:O}", key, j);
}

static int nomem(struct err **errp)
{
    return err_set(errp, ENOMEM, "out of memory");
}

/* ---------- generic tools ---------- */

int calls_generic_start(struct tool_run *run, struct err **errp)
{
    const struct tool_def *d = run->def;
    if (json_object_get(run->args, "image") && json_object_get(run->args, "from"))
        return err_status(errp, 400, "give either image or from, not both");
    char *path = expand_path(d->path, run->args, errp);
    if (!path)
        return -1;
    json_t *body = NULL;
    if (d->body && !(body = map_body(d->body, run->args))) {
        free(path);
        return nomem(errp);
    }
    next_request(run, d->method, path, body);
    if (d->long_call)
        run->req.timeout_secs =
            (long)json_integer_value(json_object_get(run->args, "timeout")) + MCP_EXEC_SLACK;
    return 0;
}

int calls_generic_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp)
{
    if (reply_failed(run, r, errp) < 0)
        return -1;
    if (!(*out = as_object(r->json, "result")))
        return nomem(errp);
    return 0;
}

/* ---------- capsem_version ---------- */

int calls_version_start(struct tool_run *run, struct err **errp)
{
    char *path = strdup("/version");
    if (!path)
        return nomem(errp);
    next_request(run, "GET", path, NULL);
    run->req.autostart = false; /* like `capsem version`: report, never start */
    return 0;
}

int calls_version_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp)
{
    _cleanup_err_ struct err *e = NULL;
    json_t *o = NULL;
    if (reply_failed(run, r, &e) < 0) {
        char reason[1024];
        if (e->status)
            snprintf(reason, sizeof(reason), "unreachable: %d: %s", e->status, err_msg(e));
        else
            snprintf(reason, sizeof(reason), "unreachable: %s", err_msg(e));
        o = json_pack("{s:s, s:s}", "mcp_version", CAPSEM_VERSION, "service", reason);
    } else {
        const char *v = json_string_value(json_object_get(r->json, "version"));
        o = json_pack("{s:s, s:s, s:s}", "mcp_version", CAPSEM_VERSION, "service", "connected",
                      "service_version", v ? v : "unknown");
    }
    if (!(*out = o))
        return nomem(errp);
    return 0;
}

/* ---------- capsem_vm_logs, capsem_service_logs ---------- */

static long arg_long(const struct tool_run *run, const char *name)
{
    return (long)json_integer_value(json_object_get(run->args, name));
}

static const char *arg_str(const struct tool_run *run, const char *name)
{
    return json_string_value(json_object_get(run->args, name));
}

int calls_vm_logs_start(struct tool_run *run, struct err **errp)
{
    _cleanup_free_ char *base = expand_path("/vms/{id}/logs", run->args, errp);
    if (!base)
        return -1;
    const char *grep = arg_str(run, "grep");
    long tail = arg_long(run, "tail");
    char *path = NULL;
    int n;
    /* With grep, fetch as much as the service gives and filter here. */
    if (grep && *grep)
        n = asprintf(&path, "%s?tail=10000", base);
    else if (tail > 0)
        n = asprintf(&path, "%s?tail=%ld", base, tail);
    else
        n = asprintf(&path, "%s", base);
    if (n < 0)
        return nomem(errp);
    next_request(run, "GET", path, NULL);
    return 0;
}

int calls_vm_logs_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp)
{
    static const char *const keys[] = {"logs", "serial_logs", "process_logs"};
    if (reply_failed(run, r, errp) < 0)
        return -1;
    json_t *o = json_is_object(r->json) ? json_copy((json_t *)r->json) : json_object();
    for (size_t i = 0; o && i < ARRAY_SIZE(keys); i++) {
        const char *text = json_string_value(json_object_get(o, keys[i]));
        if (!text)
            continue;
        char *kept = mcp_filter_lines(text, arg_str(run, "grep"), arg_long(run, "tail"));
        if (!kept || json_object_set_new(o, keys[i], json_string(kept)) < 0) {
            json_decref(o);
            o = NULL;
        }
        free(kept);
    }
    if (!(*out = o))
        return nomem(errp);
    return 0;
}

int calls_service_logs_start(struct tool_run *run, struct err **errp)
{
    struct buf b;
    buf_init(&b, PATH_CAP);
    const char *grep = arg_str(run, "grep");
    long tail = arg_long(run, "tail");
    int rc = buf_append_str(&b, "/service-logs");
    if (rc == 0 && tail > 0)
        rc = buf_printf(&b, "?tail=%ld", tail);
    if (rc == 0 && grep && *grep) {
        rc = buf_append_str(&b, tail > 0 ? "&grep=" : "?grep=");
        rc = rc ? rc : append_escaped(&b, grep);
    }
    char *path = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    if (!path)
        return err_status(errp, 400, "grep is too long");
    next_request(run, "GET", path, NULL);
    run->req.text = true;
    return 0;
}

int calls_service_logs_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                            struct err **errp)
{
    if (reply_failed(run, r, errp) < 0)
        return -1;
    size_t n = 0;
    _cleanup_free_ char *text = utf8_sanitize(r->body, r->body_len, &n);
    if (!text || !(*out = json_pack("{s:s%}", "logs", text, n)))
        return nomem(errp);
    return 0;
}

/* ---------- capsem_mcp_servers, capsem_mcp_tools, capsem_mcp_call ---------- */

int calls_mcp_servers_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                           struct err **errp)
{
    if (reply_failed(run, r, errp) < 0)
        return -1;
    if (!(*out = as_object(r->json, "servers")))
        return nomem(errp);
    return 0;
}

static int request_tools_of(struct tool_run *run, const char *server, struct err **errp)
{
    json_t *vars =
        json_pack("{s:O, s:s}", "profile", json_object_get(run->args, "profile"), "server", server);
    if (!vars)
        return nomem(errp);
    char *path = expand_path("/profiles/{profile}/mcp/servers/{server}/tools/list", vars, errp);
    json_decref(vars);
    if (!path)
        return -1;
    next_request(run, "GET", path, NULL);
    return 0;
}

int calls_mcp_tools_start(struct tool_run *run, struct err **errp)
{
    const char *server = arg_str(run, "server");
    if (server)
        return request_tools_of(run, server, errp);
    /* Every server: list them, then ask each in turn. */
    if (!(run->state = json_pack("{s:[], s:[], s:i}", "servers", "tools", "next", 0)))
        return nomem(errp);
    char *path = expand_path("/profiles/{profile}/mcp/servers/list", run->args, errp);
    if (!path)
        return -1;
    next_request(run, "GET", path, NULL);
    return 0;
}

static int collect_server_names(json_t *state, const json_t *list)
{
    json_t *names = json_object_get(state, "servers");
    size_t i;
    const json_t *srv;
    json_array_foreach(list, i, srv)
    {
        const char *name = json_string_value(json_object_get(srv, "name"));
        if (name && json_array_append_new(names, json_string(name)) < 0)
            return -1;
    }
    return 0;
}

int calls_mcp_tools_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                         struct err **errp)
{
    if (reply_failed(run, r, errp) < 0)
        return -1;
    if (!run->state) {
        *out = as_object(r->json, "tools");
        return *out ? 0 : nomem(errp);
    }
    json_t *tools = json_object_get(run->state, "tools");
    int rc = run->step == 0
                 ? collect_server_names(run->state, r->json)
                 : (json_is_array(r->json) ? json_array_extend(tools, (json_t *)r->json) : 0);
    if (rc < 0)
        return nomem(errp);
    json_t *names = json_object_get(run->state, "servers");
    size_t next = (size_t)json_integer_value(json_object_get(run->state, "next"));
    if (next < json_array_size(names)) {
        json_object_set_new(run->state, "next", json_integer((json_int_t)next + 1));
        return request_tools_of(run, json_string_value(json_array_get(names, next)), errp) < 0 ? -1
                                                                                               : 1;
    }
    if (!(*out = json_pack("{s:O}", "tools", tools)))
        return nomem(errp);
    return 0;
}

int calls_mcp_call_start(struct tool_run *run, struct err **errp)
{
    const char *name = arg_str(run, "name");
    const char *sep = strstr(name, "__");
    if (!sep || sep == name || !sep[2])
        return err_status(
            errp, 400, "invalid tool name: %s (expected <server>__<tool>, e.g. local__fetch_http)",
            name);
    json_t *vars = json_pack("{s:O, s:s%, s:s}", "profile", json_object_get(run->args, "profile"),
                             "server", name, (size_t)(sep - name), "tool", sep + 2);
    if (!vars)
        return nomem(errp);
    char *path =
        expand_path("/profiles/{profile}/mcp/servers/{server}/tools/{tool}/call", vars, errp);
    json_decref(vars);
    if (!path)
        return -1;
    json_t *body = json_pack("{s:O}", "arguments", json_object_get(run->args, "arguments"));
    if (!body) {
        free(path);
        return nomem(errp);
    }
    next_request(run, "POST", path, body);
    return 0;
}
