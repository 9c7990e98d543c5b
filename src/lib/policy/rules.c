/* Rules (network.md 8.2): reading `rule` entries from a parsed policy file,
 * checking every field, and matching the non-expression fields. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/policy_int.h"

#define HOSTLIST_NAME_MAX 32

/* ---- errors ---- */

struct rctx {
    const struct load_ctx *c;
    const char *id; /* for messages; NULL until known */
    size_t index;
    struct err **errp;
};

static int __attribute__((format(printf, 3, 4)))
rfail(const struct rctx *x, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (x->id)
        return err_status(x->errp, 400, "%s:%d: rule '%s': %s", x->c->label, line, x->id, msg);
    return err_status(x->errp, 400, "%s:%d: rule #%zu: %s", x->c->label, line, x->index + 1, msg);
}

/* ---- field readers ---- */

static bool id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static int read_string(const struct rctx *x, const struct toml_value *v, const char *field,
                       const char **out)
{
    if (!(*out = toml_string(v)))
        return rfail(x, toml_line(v), "%s must be a string", field);
    return 0;
}

static int read_action(const struct rctx *x, const struct toml_value *v, enum policy_action *a)
{
    const char *s;
    if (read_string(x, v, "action", &s) < 0)
        return -1;
    if (strcmp(s, "allow") == 0)
        *a = POLICY_ALLOW;
    else if (strcmp(s, "block") == 0)
        *a = POLICY_BLOCK;
    else if (strcmp(s, "ask") == 0)
        *a = POLICY_ASK;
    else
        return rfail(x, toml_line(v), "action must be allow, block or ask (not '%s')", s);
    return 0;
}

static int read_scope(const struct rctx *x, const struct toml_value *v, enum policy_scope *sc)
{
    const char *s;
    if (read_string(x, v, "scope", &s) < 0)
        return -1;
    if (strcmp(s, "net") == 0)
        *sc = POLICY_SCOPE_NET;
    else if (strcmp(s, "model") == 0)
        *sc = POLICY_SCOPE_MODEL;
    else if (strcmp(s, "mcp") == 0)
        *sc = POLICY_SCOPE_MCP;
    else
        return rfail(x, toml_line(v), "scope must be net, model or mcp (not '%s')", s);
    return 0;
}

static int add_host(const struct rctx *x, struct policy_rule *r, const char *s, int line,
                    const char *list)
{
    struct host_pat hp;
    char why[400];
    if (hostpat_parse(s, &hp, why, sizeof(why)) < 0) {
        if (list)
            return rfail(x, line, "host: @%s: %s", list, why);
        return rfail(x, line, "host: %s", why);
    }
    if (list && hp.kind == HP_ANY)
        return rfail(x, line, "host: @%s: '*' is not allowed in a host list", list);
    struct host_pat *h = realloc(r->hosts, (r->nhosts + 1) * sizeof(*h));
    if (!h) {
        hostpat_clear(&hp);
        return err_status(x->errp, 0, "out of memory");
    }
    r->hosts = h;
    r->hosts[r->nhosts++] = hp;
    return 0;
}

static int expand_list(const struct rctx *x, struct policy_rule *r, const char *name, int line)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n <= HOSTLIST_NAME_MAX && name[0] >= 'a' && name[0] <= 'z';
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '-' || name[i] == '_';
    if (!ok)
        return rfail(x, line, "host: '@%s' is not a host list name", name);
    for (size_t i = 0; i < x->c->nlists; i++) {
        const struct policy_hostlist *l = &x->c->lists[i];
        if (strcmp(l->name, name) != 0)
            continue;
        for (size_t j = 0; j < l->nhosts; j++)
            if (add_host(x, r, l->hosts[j], line, name) < 0)
                return -1;
        return 0;
    }
    if (strcmp(name, "debian") == 0 || strcmp(name, "npm") == 0)
        return 0; /* known, not supplied: the rule matches no host */
    return rfail(x, line, "host: unknown host list '@%s' (known: @debian, @npm%s)", name,
                 x->c->nlists ? " and the caller's lists" : "");
}

static int read_host_item(const struct rctx *x, struct policy_rule *r, const struct toml_value *v)
{
    const char *s = toml_string(v);
    if (!s)
        return rfail(x, toml_line(v), "host entries must be strings");
    if (s[0] == '@')
        return expand_list(x, r, s + 1, toml_line(v));
    return add_host(x, r, s, toml_line(v), NULL);
}

static int read_hosts(const struct rctx *x, const struct toml_value *v, struct policy_rule *r)
{
    r->has_host = true;
    if (toml_type(v) == TOML_STRING)
        return read_host_item(x, r, v);
    if (toml_type(v) != TOML_ARRAY || toml_array_len(v) == 0)
        return rfail(x, toml_line(v), "host must be a string or a non-empty array of strings");
    for (size_t i = 0; i < toml_array_len(v); i++)
        if (read_host_item(x, r, toml_array_at(v, i)) < 0)
            return -1;
    return 0;
}

/* A decimal port of s[0..n): digits only (no sign, no spaces), 1-65535. */
static int parse_port_digits(const char *s, size_t n, uint16_t *out)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_port_range(const char *s, struct port_range *pr)
{
    const char *dash = strchr(s, '-');
    if (!dash || parse_port_digits(s, (size_t)(dash - s), &pr->lo) < 0 ||
        parse_port_digits(dash + 1, strlen(dash + 1), &pr->hi) < 0 || pr->lo > pr->hi)
        return -1;
    return 0;
}

static int read_ports(const struct rctx *x, const struct toml_value *v, struct policy_rule *r)
{
    size_t n = toml_array_len(v);
    if (toml_type(v) != TOML_ARRAY || n == 0)
        return rfail(x, toml_line(v),
                     "ports must be a non-empty array of ports and \"lo-hi\" ranges");
    if (!(r->ports = calloc(n, sizeof(*r->ports))))
        return err_status(x->errp, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct toml_value *e = toml_array_at(v, i);
        int64_t p;
        const char *s = toml_string(e);
        struct port_range *pr = &r->ports[r->nports++];
        if (toml_int(e, &p) == 0) {
            if (p < 1 || p > 65535)
                return rfail(x, toml_line(e), "ports: %lld is not a port (1-65535)", (long long)p);
            pr->lo = pr->hi = (uint16_t)p;
        } else if (!s || parse_port_range(s, pr) < 0) {
            return rfail(x, toml_line(e),
                         "ports: entries are ports (443) or ranges (\"8000-8999\")");
        }
    }
    return 0;
}

static bool method_valid(const char *s)
{
    if (!*s || strlen(s) > 32)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

static int read_methods(const struct rctx *x, const struct toml_value *v, struct policy_rule *r)
{
    size_t n = toml_array_len(v);
    if (toml_type(v) != TOML_ARRAY || n == 0)
        return rfail(x, toml_line(v), "methods must be a non-empty array of strings");
    if (!(r->methods = calloc(n, sizeof(char *))))
        return err_status(x->errp, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct toml_value *e = toml_array_at(v, i);
        const char *s = toml_string(e);
        if (!s || !method_valid(s))
            return rfail(x, toml_line(e), "methods: entries are uppercase HTTP methods (\"GET\")");
        if (!(r->methods[r->nmethods++] = strdup(s)))
            return err_status(x->errp, 0, "out of memory");
    }
    return 0;
}

static int read_path(const struct rctx *x, const struct toml_value *v, const char *field,
                     const char **out)
{
    if (read_string(x, v, field, out) < 0)
        return -1;
    if ((*out)[0] != '/')
        return rfail(x, toml_line(v), "%s must start with '/'", field);
    for (const char *c = *out; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return rfail(x, toml_line(v), "%s holds a space or control character", field);
    /* Requests are matched by their normalised path, so a pattern that
     * normalisation would change ("//", "/./", "/../", "%7E") never
     * matches: refuse it and say what to write. */
    size_t n = strlen(*out);
    _cleanup_free_ char *norm = malloc(n + 2);
    if (!norm)
        return err_status(x->errp, 0, "out of memory");
    if (policy_path_normalize(*out, n, norm, n + 2) < 0 || strcmp(norm, *out) != 0)
        return rfail(x, toml_line(v),
                     "%s '%.80s' never matches a normalised request path; write '%.80s'", field,
                     *out, norm);
    return 0;
}

/* ---- one rule ---- */

static const char *const rule_fields[] = {"id",    "action",  "scope",       "host",
                                          "ports", "methods", "path_prefix", "path_glob",
                                          "expr",  "reason",  "enabled"};

enum {
    RF_ID,
    RF_ACTION,
    RF_SCOPE,
    RF_HOST,
    RF_PORTS,
    RF_METHODS,
    RF_PREFIX,
    RF_GLOB,
    RF_EXPR,
    RF_REASON,
    RF_ENABLED,
    RF_N
};

/* Finds every known field; unknown ones are errors. */
static int collect_fields(const struct rctx *x, const struct toml_value *t,
                          const struct toml_value *f[RF_N])
{
    for (size_t i = 0; i < toml_table_len(t); i++) {
        const char *k = toml_table_key(t, i);
        size_t j = 0;
        while (j < RF_N && strcmp(k, rule_fields[j]) != 0)
            j++;
        if (j == RF_N)
            return rfail(x, toml_line(toml_table_value(t, i)),
                         "unknown field '%s' (id, action, scope, host, ports, methods, "
                         "path_prefix, path_glob, expr, reason, enabled)",
                         k);
        f[j] = toml_table_value(t, i);
    }
    return 0;
}

static int read_identity(struct rctx *x, const struct toml_value *t,
                         const struct toml_value *f[RF_N], struct policy_rule *r)
{
    const char *id;
    if (!f[RF_ID])
        return rfail(x, toml_line(t), "missing id");
    if (read_string(x, f[RF_ID], "id", &id) < 0)
        return -1;
    if (!id_valid(id))
        return rfail(x, toml_line(f[RF_ID]), "id '%.80s' must match [a-z0-9][a-z0-9._-]{0,63}", id);
    x->id = id;
    const char *src = policy_source_name(x->c->src);
    size_t n = strlen(src) + strlen(id) + 2;
    if (!(r->id = strdup(id)) || !(r->rule = malloc(n)))
        return err_status(x->errp, 0, "out of memory");
    snprintf(r->rule, n, "%s:%s", src, id);
    if (!f[RF_ACTION])
        return rfail(x, toml_line(t), "missing action (allow, block or ask)");
    if (read_action(x, f[RF_ACTION], &r->action) < 0)
        return -1;
    r->scope = POLICY_SCOPE_NET;
    if (f[RF_SCOPE] && read_scope(x, f[RF_SCOPE], &r->scope) < 0)
        return -1;
    r->enabled = true;
    if (f[RF_ENABLED] && toml_bool(f[RF_ENABLED], &r->enabled) < 0)
        return rfail(x, toml_line(f[RF_ENABLED]), "enabled must be true or false");
    return 0;
}

static int read_reason(const struct rctx *x, const struct toml_value *v, struct policy_rule *r)
{
    const char *s;
    if (read_string(x, v, "reason", &s) < 0)
        return -1;
    if (strlen(s) > POLICY_MAX_REASON)
        return rfail(x, toml_line(v), "reason is longer than %d bytes", POLICY_MAX_REASON);
    if (!printable(s))
        return rfail(x, toml_line(v), "reason holds a control character (one line of text)");
    if (!(r->reason = strdup(s)))
        return err_status(x->errp, 0, "out of memory");
    return 0;
}

static int read_paths(const struct rctx *x, const struct toml_value *f[RF_N], struct policy_rule *r)
{
    const char *s;
    if (f[RF_PREFIX] && f[RF_GLOB])
        return rfail(x, toml_line(f[RF_GLOB]), "give path_prefix or path_glob, not both");
    if (f[RF_PREFIX]) {
        if (read_path(x, f[RF_PREFIX], "path_prefix", &s) < 0)
            return -1;
        if (!(r->path_prefix = strdup(s)))
            return err_status(x->errp, 0, "out of memory");
        r->prefix_len = strlen(s);
    }
    if (f[RF_GLOB]) {
        if (read_path(x, f[RF_GLOB], "path_glob", &s) < 0)
            return -1;
        struct err *e = NULL;
        if (expr_glob_compile(s, &r->path_glob, &e) < 0) {
            rfail(x, toml_line(f[RF_GLOB]), "path_glob: %s", err_msg(e));
            err_free(e);
            return -1;
        }
        r->has_glob = true;
        if (!(r->path_glob_text = strdup(s)))
            return err_status(x->errp, 0, "out of memory");
    }
    return 0;
}

static int read_expr(const struct rctx *x, const struct toml_value *v, struct policy_rule *r)
{
    const char *s;
    if (read_string(x, v, "expr", &s) < 0)
        return -1;
    struct err *e = NULL;
    r->expr = expr_compile(s, strlen(s), (enum expr_scope)r->scope, &e);
    if (!r->expr) {
        rfail(x, toml_line(v), "expr: %s", err_msg(e));
        err_free(e);
        return -1;
    }
    return 0;
}

static int check_scope(const struct rctx *x, const struct toml_value *f[RF_N],
                       const struct policy_rule *r)
{
    static const int net_only[] = {RF_HOST, RF_PORTS, RF_METHODS, RF_PREFIX, RF_GLOB};
    if (r->scope != POLICY_SCOPE_MCP)
        return 0;
    for (size_t i = 0; i < sizeof(net_only) / sizeof(net_only[0]); i++)
        if (f[net_only[i]])
            return rfail(x, toml_line(f[net_only[i]]), "%s is not allowed in mcp rules",
                         rule_fields[net_only[i]]);
    return 0;
}

static void finish_rule(const struct rctx *x, struct policy_rule *r)
{
    unsigned cls = r->expr ? expr_classes(r->expr) : 0;
    bool fields = r->nports || r->nmethods || r->path_prefix || r->has_glob;
    r->name_decidable = !fields && !(cls & (EXPR_CLASS_HTTP | EXPR_CLASS_CONN));
    /* host = "*" is no condition either. */
    bool host_cond = false;
    for (size_t i = 0; i < r->nhosts; i++)
        host_cond = host_cond || r->hosts[i].kind != HP_ANY;
    if (x->c->warn && r->action == POLICY_ALLOW && !fields && !host_cond &&
        (!r->has_host || r->nhosts > 0) && cls == EXPR_CLASS_PROCESS)
        warnings_add(x->c->warn,
                     "%s:%d: rule '%s': an allow rule conditioned only on process.* fields: "
                     "the guest asserts them, so any guest process can claim them",
                     x->c->label, r->line, r->id);
}

static int parse_rule(struct rctx *x, const struct toml_value *t, struct policy_rule *r)
{
    const struct toml_value *f[RF_N] = {0};
    r->source = x->c->src;
    r->line = toml_line(t);
    if (toml_type(t) != TOML_TABLE)
        return rfail(x, toml_line(t), "each rule must be a table ({ id = ..., action = ... })");
    if (collect_fields(x, t, f) < 0 || read_identity(x, t, f, r) < 0 || check_scope(x, f, r) < 0)
        return -1;
    if ((f[RF_REASON] && read_reason(x, f[RF_REASON], r) < 0) ||
        (f[RF_HOST] && read_hosts(x, f[RF_HOST], r) < 0) ||
        (f[RF_PORTS] && read_ports(x, f[RF_PORTS], r) < 0) ||
        (f[RF_METHODS] && read_methods(x, f[RF_METHODS], r) < 0) || read_paths(x, f, r) < 0 ||
        (f[RF_EXPR] && read_expr(x, f[RF_EXPR], r) < 0))
        return -1;
    finish_rule(x, r);
    return 0;
}

/* ---- the array ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Duplicate ids: open addressing over rule indexes (+1, 0 = empty). */
static int check_duplicates(const struct load_ctx *c, const struct rule_set *set, struct err **errp)
{
    size_t cap = 16;
    while (cap < set->n * 2)
        cap *= 2;
    size_t *slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return err_status(errp, 0, "out of memory");
    for (size_t i = 0; i < set->n; i++) {
        const struct policy_rule *r = &set->rules[i];
        for (size_t h = hash_str(r->id) & (cap - 1);; h = (h + 1) & (cap - 1)) {
            if (!slot[h]) {
                slot[h] = i + 1;
                break;
            }
            const struct policy_rule *o = &set->rules[slot[h] - 1];
            if (strcmp(o->id, r->id) == 0) {
                free(slot);
                return err_status(errp, 400, "%s:%d: duplicate rule id '%s' (first at line %d)",
                                  c->label, r->line, r->id, o->line);
            }
        }
    }
    free(slot);
    return 0;
}

int rules_parse(const struct toml_value *arr, const struct load_ctx *c, struct rule_set *set,
                struct err **errp)
{
    memset(set, 0, sizeof(*set));
    if (toml_type(arr) != TOML_ARRAY)
        return err_status(errp, 400,
                          "%s:%d: rule must be an array of tables ([[rule]] or rule = [{...}])",
                          c->label, toml_line(arr));
    size_t n = toml_array_len(arr);
    if (n > POLICY_MAX_RULES)
        return err_status(errp, 400, "%s:%d: more than %d rules in one file", c->label,
                          toml_line(toml_array_at(arr, POLICY_MAX_RULES)), POLICY_MAX_RULES);
    if (n && !(set->rules = calloc(n, sizeof(*set->rules))))
        return err_status(errp, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct rctx x = {.c = c, .index = i, .errp = errp};
        set->n = i + 1;
        if (parse_rule(&x, toml_array_at(arr, i), &set->rules[i]) < 0)
            goto fail;
    }
    if (check_duplicates(c, set, errp) < 0)
        goto fail;
    return 0;
fail:
    rules_free(set);
    return -1;
}

static void rule_clear(struct policy_rule *r)
{
    free(r->id);
    free(r->rule);
    for (size_t i = 0; i < r->nhosts; i++)
        hostpat_clear(&r->hosts[i]);
    free(r->hosts);
    free(r->ports);
    for (size_t i = 0; i < r->nmethods; i++)
        free(r->methods[i]);
    free(r->methods);
    free(r->path_prefix);
    if (r->has_glob)
        regfree(&r->path_glob);
    free(r->path_glob_text);
    expr_free(r->expr);
    free(r->reason);
}

void rules_free(struct rule_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        rule_clear(&set->rules[i]);
    free(set->rules);
    set->rules = NULL;
    set->n = 0;
}

/* ---- matching ---- */

bool rule_host_match(const struct policy_rule *rule, const char *host)
{
    if (!rule->has_host)
        return true;
    if (!host)
        return false;
    uint32_t ip = 0;
    bool is_ip = policy_ipv4_parse(host, strlen(host), &ip) == 0;
    for (size_t i = 0; i < rule->nhosts; i++)
        if (hostpat_match(&rule->hosts[i], host, is_ip, ip))
            return true;
    return false;
}

/* path_glob in time linear in the path; regexec only for the rare forms
 * the linear matcher leaves to it. */
static bool glob_matches(const struct policy_rule *rule, const char *path)
{
    int m = rule->path_glob_text
                ? expr_re_linear_match(rule->path_glob_text, true, path, strlen(path))
                : -1;
    return m < 0 ? expr_regex_match(&rule->path_glob, path) : m == 1;
}

bool rule_fields_match(const struct policy_rule *rule, const struct policy_request *r)
{
    if (!rule_host_match(rule, r->http.host))
        return false;
    if (rule->nports) {
        bool hit = false;
        for (size_t i = 0; r->http.has_port && !hit && i < rule->nports; i++)
            hit = r->http.port >= rule->ports[i].lo && r->http.port <= rule->ports[i].hi;
        if (!hit)
            return false;
    }
    if (rule->nmethods) {
        bool hit = false;
        for (size_t i = 0; r->http.method && !hit && i < rule->nmethods; i++)
            hit = strcmp(r->http.method, rule->methods[i]) == 0;
        if (!hit)
            return false;
    }
    if (rule->path_prefix &&
        (!r->http.path || strncmp(r->http.path, rule->path_prefix, rule->prefix_len) != 0))
        return false;
    if (rule->has_glob && (!r->http.path || !glob_matches(rule, r->http.path)))
        return false;
    return true;
}

/* ---- warnings ---- */

void warnings_add(struct warnings *w, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char **v = realloc(w->v, (w->n + 1) * sizeof(*v));
    if (!v)
        return;
    w->v = v;
    if ((w->v[w->n] = strdup(msg)))
        w->n++;
}

void warnings_free(struct warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
    w->v = NULL;
    w->n = 0;
}
