/* Policy settings (network.md 8.1, 8.5): the [policy], [network], [dns] and
 * [corp] keys, who may set each, their checks, and the merge corp > user >
 * profile > defaults with corp locks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/policy_int.h"

enum ktype { K_INT, K_BOOL, K_ACTION, K_FLOAT, K_PORTS, K_PROXY, K_OVERRIDES, K_UPSTREAMS };

#define W_CORP    1u
#define W_USER    2u
#define W_PROFILE 4u
#define W_ALL     (W_CORP | W_USER | W_PROFILE)
#define W_CU      (W_CORP | W_USER)

#define MAX_OVERRIDES 64
#define MAX_UPSTREAMS 8
#define MAX_PROXY     1024

struct keydef {
    const char *key;
    enum ktype t;
    int64_t min, max;
    unsigned who;
    size_t off; /* in struct policy_settings */
};

#define OFF(f) offsetof(struct policy_settings, f)

static const struct keydef keys[POLICY_NKEYS] = {
    {"policy.ask_timeout_s", K_INT, 1, 600, W_ALL, OFF(ask_timeout_s)},
    {"policy.ask_max_pending", K_INT, 1, 64, W_ALL, OFF(ask_max_pending)},
    {"policy.default_action", K_ACTION, 0, 0, W_CORP, OFF(default_action)},
    {"policy.default_model_action", K_ACTION, 0, 0, W_CORP, OFF(default_model_action)},
    {"policy.default_mcp_action", K_ACTION, 0, 0, W_CORP, OFF(default_mcp_action)},
    {"network.http_ports", K_PORTS, 0, 0, W_ALL, 0},
    {"network.log_bodies", K_BOOL, 0, 0, W_ALL, OFF(log_bodies)},
    {"network.body_preview_bytes", K_INT, 0, 1048576, W_ALL, OFF(body_preview_bytes)},
    {"network.log_model_content", K_BOOL, 0, 0, W_ALL, OFF(log_model_content)},
    {"network.max_request_body_mib", K_INT, 1, 4096, W_ALL, OFF(max_request_body_mib)},
    {"network.upstream_idle_s", K_INT, 1, 86400, W_ALL, OFF(upstream_idle_s)},
    {"network.upstream_proxy", K_PROXY, 0, 0, W_CU, 0},
    {"network.upstream_override", K_OVERRIDES, 0, 0, W_CU, 0},
    {"dns.upstreams", K_UPSTREAMS, 0, 0, W_CU, 0},
    {"dns.exfil_guard.max_label", K_INT, 1, 63, W_CU, OFF(exfil.max_label)},
    {"dns.exfil_guard.max_name", K_INT, 1, 253, W_CU, OFF(exfil.max_name)},
    {"dns.exfil_guard.max_sub_labels", K_INT, 1, 127, W_CU, OFF(exfil.max_sub_labels)},
    {"dns.exfil_guard.entropy_min_len", K_INT, 1, 253, W_CU, OFF(exfil.entropy_min_len)},
    {"dns.exfil_guard.entropy_bits", K_FLOAT, 0, 8, W_CU, OFF(exfil.entropy_bits)},
    {"dns.exfil_guard.suspicious_burst", K_INT, 0, 100000, W_CU, OFF(exfil.suspicious_burst)},
    {"dns.exfil_guard.suspicious_per_min", K_INT, 0, 100000, W_CU, OFF(exfil.suspicious_per_min)},
    {"dns.exfil_guard.unique_subdomains_per_10min", K_INT, 1, 1000000, W_CU,
     OFF(exfil.unique_subdomains_per_10min)},
    {"corp.user_rules", K_BOOL, 0, 0, W_CORP, OFF(user_rules)},
    {"corp.profile_rules", K_BOOL, 0, 0, W_CORP, OFF(profile_rules)},
    {"corp.asks", K_BOOL, 0, 0, W_CORP, OFF(asks)},
};

void settings_defaults(struct policy_settings *s)
{
    static const uint16_t ports[] = {80, 8080, 3128, 11434};
    static const struct policy_upstream sys = {.system = true};
    memset(s, 0, sizeof(*s));
    s->ask_timeout_s = 30;
    s->ask_max_pending = 64;
    s->default_action = POLICY_BLOCK;
    s->default_model_action = POLICY_ALLOW;
    s->default_mcp_action = POLICY_ALLOW;
    memcpy(s->http_ports, ports, sizeof(ports));
    s->n_http_ports = 4;
    s->body_preview_bytes = 4096;
    s->log_model_content = true;
    s->max_request_body_mib = 256;
    s->upstream_idle_s = 600;
    s->upstream_proxy = "";
    s->upstreams = &sys;
    s->n_upstreams = 1;
    s->exfil = (struct policy_exfil){48, 180, 6, 24, 3.5, 20, 10, 300};
    s->user_rules = s->profile_rules = s->asks = true;
}

int settings_key_index(const char *key)
{
    for (int i = 0; i < POLICY_NKEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return i;
    return -1;
}

/* ---- reading values ---- */

static int __attribute__((format(printf, 4, 5)))
kfail(const struct load_ctx *c, const struct toml_value *v, struct err **errp, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_status(errp, 400, "%s:%d: %s", c->label, toml_line(v), msg);
}

static int read_ports(const struct load_ctx *c, const struct keydef *k, const struct toml_value *v,
                      struct settings_layer *l, struct err **errp)
{
    size_t n = toml_array_len(v);
    if (toml_type(v) != TOML_ARRAY)
        return kfail(c, v, errp, "%s must be an array of ports", k->key);
    if (n > POLICY_MAX_HTTP_PORTS)
        return kfail(c, v, errp, "%s has more than %d ports", k->key, POLICY_MAX_HTTP_PORTS);
    l->v.n_http_ports = 0;
    for (size_t i = 0; i < n; i++) {
        const struct toml_value *e = toml_array_at(v, i);
        int64_t p;
        if (toml_int(e, &p) < 0 || p < 1 || p > 65535)
            return kfail(c, e, errp, "%s: entries are ports (1-65535)", k->key);
        if (p == 443)
            return kfail(c, e, errp, "%s: 443 is always redirected; leave it out", k->key);
        for (size_t j = 0; j < l->v.n_http_ports; j++)
            if (l->v.http_ports[j] == p)
                return kfail(c, e, errp, "%s: port %lld is listed twice", k->key, (long long)p);
        l->v.http_ports[l->v.n_http_ports++] = (uint16_t)p;
    }
    return 0;
}

static int read_proxy(const struct load_ctx *c, const struct keydef *k, const struct toml_value *v,
                      struct settings_layer *l, struct err **errp)
{
    const char *s = toml_string(v);
    if (!s)
        return kfail(c, v, errp, "%s must be a string", k->key);
    size_t n = strlen(s);
    bool scheme = strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
    bool ok = n == 0 || (scheme && n <= MAX_PROXY && s[strcspn(s, ":") + 3] != '\0');
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] > 0x20 && s[i] != 0x7f;
    if (!ok)
        return kfail(c, v, errp, "%s must be \"\" or an http:// or https:// URL", k->key);
    free(l->proxy);
    if (!(l->proxy = strdup(s)))
        return err_status(errp, 0, "out of memory");
    l->v.upstream_proxy = l->proxy;
    return 0;
}

/* A decimal port: digits only (no sign, no spaces), 1-65535. */
static int parse_port(const char *s, int64_t *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 5 || s[n] != '\0')
        return -1;
    return parse_int64(s, 1, 65535, out);
}

/* "host:port" -> normalised host (heap) and port. */
static int split_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char norm[256];
    int64_t p;
    if (!colon || parse_port(colon + 1, &p) < 0)
        return -1;
    if (policy_host_normalize(s, (size_t)(colon - s), norm, sizeof(norm), NULL) < 0)
        return -1;
    if (!(*host = strdup(norm)))
        return -1;
    *port = (uint16_t)p;
    return 0;
}

static int read_override(const struct load_ctx *c, const struct toml_value *t,
                         struct policy_override *o, struct err **errp)
{
    const struct toml_value *target = NULL, *dial = NULL, *ca = NULL;
    if (toml_type(t) != TOML_TABLE)
        return kfail(c, t, errp, "network.upstream_override: entries are tables");
    for (size_t i = 0; i < toml_table_len(t); i++) {
        const char *key = toml_table_key(t, i);
        const struct toml_value *v = toml_table_value(t, i);
        if (strcmp(key, "target") == 0)
            target = v;
        else if (strcmp(key, "dial") == 0)
            dial = v;
        else if (strcmp(key, "ca_file") == 0)
            ca = v;
        else
            return kfail(c, v, errp,
                         "network.upstream_override: unknown field '%s' (target, dial, ca_file)",
                         key);
    }
    char *th = NULL, *dh = NULL;
    if (!target || !toml_string(target) ||
        split_hostport(toml_string(target), &th, &o->target_port) < 0)
        return kfail(c, target ? target : t, errp,
                     "network.upstream_override: target must be \"host:port\"");
    o->target_host = th;
    if (!dial || !toml_string(dial) || split_hostport(toml_string(dial), &dh, &o->dial_port) < 0)
        return kfail(c, dial ? dial : t, errp,
                     "network.upstream_override: dial must be \"host:port\"");
    o->dial_host = dh;
    const char *cf = ca ? toml_string(ca) : "";
    if (!cf || (*cf && *cf != '/'))
        return kfail(c, ca, errp, "network.upstream_override: ca_file must be an absolute path");
    if (!(o->ca_file = strdup(cf)))
        return err_status(errp, 0, "out of memory");
    return 0;
}

static int read_overrides(const struct load_ctx *c, const struct keydef *k,
                          const struct toml_value *v, struct settings_layer *l, struct err **errp)
{
    size_t n = toml_array_len(v);
    if (toml_type(v) != TOML_ARRAY)
        return kfail(c, v, errp, "%s must be an array of tables", k->key);
    if (n > MAX_OVERRIDES)
        return kfail(c, v, errp, "%s has more than %d entries", k->key, MAX_OVERRIDES);
    if (n && !(l->overrides = calloc(n, sizeof(*l->overrides))))
        return err_status(errp, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct policy_override *o = &l->overrides[i];
        l->v.n_overrides = i + 1;
        if (read_override(c, toml_array_at(v, i), &l->overrides[i], errp) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) /* one dial target per name, no silent shadowing */
            if (l->overrides[j].target_port == o->target_port &&
                strcmp(l->overrides[j].target_host, o->target_host) == 0)
                return kfail(c, toml_array_at(v, i), errp, "%s: target %s:%u is listed twice",
                             k->key, o->target_host, (unsigned)o->target_port);
    }
    l->v.overrides = l->overrides;
    l->v.n_overrides = n;
    return 0;
}

static int read_upstream(const char *s, struct policy_upstream *u)
{
    if (strcmp(s, "system") == 0) {
        u->system = true;
        return 0;
    }
    const char *colon = strchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    int64_t p = 53;
    if (colon && parse_port(colon + 1, &p) < 0)
        return -1;
    if (policy_ipv4_parse(s, hl, &u->ip) < 0)
        return -1;
    u->port = (uint16_t)p;
    return 0;
}

static int read_upstreams(const struct load_ctx *c, const struct keydef *k,
                          const struct toml_value *v, struct settings_layer *l, struct err **errp)
{
    size_t n = toml_array_len(v);
    if (toml_type(v) != TOML_ARRAY || n == 0 || n > MAX_UPSTREAMS)
        return kfail(c, v, errp, "%s must be an array of 1 to %d entries", k->key, MAX_UPSTREAMS);
    if (!(l->upstreams = calloc(n, sizeof(*l->upstreams))))
        return err_status(errp, 0, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct toml_value *e = toml_array_at(v, i);
        if (!toml_string(e) || read_upstream(toml_string(e), &l->upstreams[i]) < 0)
            return kfail(c, e, errp, "%s: entries are \"system\" or \"a.b.c.d[:port]\"", k->key);
    }
    l->v.upstreams = l->upstreams;
    l->v.n_upstreams = n;
    return 0;
}

static int read_action(const char *s, enum policy_action *a)
{
    if (!s)
        return -1;
    if (strcmp(s, "allow") == 0)
        *a = POLICY_ALLOW;
    else if (strcmp(s, "block") == 0)
        *a = POLICY_BLOCK;
    else if (strcmp(s, "ask") == 0)
        *a = POLICY_ASK;
    else
        return -1;
    return 0;
}

static int read_scalar(const struct load_ctx *c, const struct keydef *k, const struct toml_value *v,
                       struct settings_layer *l, struct err **errp)
{
    char *base = (char *)&l->v + k->off;
    int64_t i;
    double d;
    switch (k->t) {
    case K_INT:
        if (toml_int(v, &i) < 0 || i < k->min || i > k->max)
            return kfail(c, v, errp, "%s must be an integer between %lld and %lld", k->key,
                         (long long)k->min, (long long)k->max);
        memcpy(base, &i, sizeof(i));
        return 0;
    case K_BOOL:
        if (toml_bool(v, (bool *)(void *)base) < 0)
            return kfail(c, v, errp, "%s must be true or false", k->key);
        return 0;
    case K_ACTION:
        if (read_action(toml_string(v), (enum policy_action *)(void *)base) < 0)
            return kfail(c, v, errp, "%s must be \"allow\", \"block\" or \"ask\"", k->key);
        return 0;
    case K_FLOAT:
        if (toml_int(v, &i) == 0)
            d = (double)i;
        else if (toml_float(v, &d) < 0)
            d = -1;
        if (!(d >= (double)k->min && d <= (double)k->max))
            return kfail(c, v, errp, "%s must be a number between %lld and %lld", k->key,
                         (long long)k->min, (long long)k->max);
        memcpy(base, &d, sizeof(d));
        return 0;
    default:
        return -1;
    }
}

static int read_key(const struct load_ctx *c, const char *full, const struct toml_value *v,
                    struct settings_layer *l, struct err **errp)
{
    int idx = settings_key_index(full);
    if (idx < 0)
        return kfail(c, v, errp, "unknown key '%s'", full);
    const struct keydef *k = &keys[idx];
    unsigned me = c->src == POLICY_SRC_CORP   ? W_CORP
                  : c->src == POLICY_SRC_USER ? W_USER
                                              : W_PROFILE;
    if (!(k->who & me))
        return kfail(c, v, errp, "%s can only be set in the corp%s file", full,
                     k->who & W_USER ? " or user" : "");
    l->set[idx] = true;
    l->line[idx] = toml_line(v);
    switch (k->t) {
    case K_PORTS:
        return read_ports(c, k, v, l, errp);
    case K_PROXY:
        return read_proxy(c, k, v, l, errp);
    case K_OVERRIDES:
        return read_overrides(c, k, v, l, errp);
    case K_UPSTREAMS:
        return read_upstreams(c, k, v, l, errp);
    default:
        return read_scalar(c, k, v, l, errp);
    }
}

static int read_table(const struct load_ctx *c, const char *prefix, const struct toml_value *t,
                      struct settings_layer *l, struct err **errp)
{
    if (toml_type(t) != TOML_TABLE)
        return kfail(c, t, errp, "%s must be a table ([%s])", prefix, prefix);
    for (size_t i = 0; i < toml_table_len(t); i++) {
        const char *k = toml_table_key(t, i);
        const struct toml_value *v = toml_table_value(t, i);
        char full[320];
        snprintf(full, sizeof(full), "%s.%s", prefix, k);
        if (strcmp(full, "dns.exfil_guard") == 0) {
            if (read_table(c, full, v, l, errp) < 0)
                return -1;
        } else if (read_key(c, full, v, l, errp) < 0) {
            return -1;
        }
    }
    return 0;
}

int settings_parse(const struct toml_value *root, const struct load_ctx *c,
                   struct settings_layer *out, struct err **errp)
{
    static const char *const tables[] = {"policy", "network", "dns", "corp"};
    memset(out, 0, sizeof(*out));
    settings_defaults(&out->v);
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        const struct toml_value *t = toml_table_get(root, tables[i]);
        if (t && read_table(c, tables[i], t, out, errp) < 0) {
            settings_layer_free(out);
            return -1;
        }
    }
    return 0;
}

void settings_layer_free(struct settings_layer *l)
{
    for (size_t i = 0; l->overrides && i < l->v.n_overrides; i++) {
        free((char *)l->overrides[i].target_host);
        free((char *)l->overrides[i].dial_host);
        free((char *)l->overrides[i].ca_file);
    }
    free(l->overrides);
    free(l->upstreams);
    free(l->proxy);
    l->overrides = NULL;
    l->upstreams = NULL;
    l->proxy = NULL;
}

/* ---- merge ---- */

static void take_key(const struct keydef *k, struct settings_layer *from,
                     struct settings_layer *dst)
{
    switch (k->t) {
    case K_PORTS:
        memcpy(dst->v.http_ports, from->v.http_ports, sizeof(dst->v.http_ports));
        dst->v.n_http_ports = from->v.n_http_ports;
        break;
    case K_PROXY:
        dst->proxy = from->proxy;
        from->proxy = NULL;
        dst->v.upstream_proxy = dst->proxy;
        break;
    case K_OVERRIDES:
        dst->overrides = from->overrides;
        dst->v.overrides = from->overrides;
        dst->v.n_overrides = from->v.n_overrides;
        from->overrides = NULL;
        from->v.n_overrides = 0;
        break;
    case K_UPSTREAMS:
        dst->upstreams = from->upstreams;
        dst->v.upstreams = from->upstreams;
        dst->v.n_upstreams = from->v.n_upstreams;
        from->upstreams = NULL;
        break;
    case K_INT:
    case K_FLOAT:
        memcpy((char *)&dst->v + k->off, (char *)&from->v + k->off, 8);
        break;
    case K_BOOL:
        memcpy((char *)&dst->v + k->off, (char *)&from->v + k->off, sizeof(bool));
        break;
    case K_ACTION:
        memcpy((char *)&dst->v + k->off, (char *)&from->v + k->off, sizeof(enum policy_action));
        break;
    }
}

void settings_merge(struct settings_layer *layers[3], const char *labels[3], struct warnings *w,
                    struct settings_layer *dst, int key_src[POLICY_NKEYS])
{
    memset(dst, 0, sizeof(*dst));
    settings_defaults(&dst->v);
    for (int k = 0; k < POLICY_NKEYS; k++) {
        key_src[k] = POLICY_SRC_DEFAULT;
        for (int s = 0; s < 3; s++) {
            struct settings_layer *l = layers[s];
            if (!l || !l->set[k])
                continue;
            if (key_src[k] == POLICY_SRC_CORP) {
                warnings_add(w, "%s:%d: %s: ignored: locked by the corp file", labels[s],
                             l->line[k], keys[k].key);
                continue;
            }
            if (key_src[k] != POLICY_SRC_DEFAULT)
                continue;
            key_src[k] = s;
            dst->set[k] = true;
            take_key(&keys[k], l, dst);
        }
    }
}
