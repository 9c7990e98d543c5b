/* Policy sources and the snapshot (network.md 8.1): finding and reading the
 * corp, user and profile files, checking each one as a whole, merging their
 * settings, and the reference-counted snapshot. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "policy/policy_int.h"

const char *policy_action_name(enum policy_action a)
{
    return a == POLICY_ALLOW ? "allow" : a == POLICY_ASK ? "ask" : "block";
}

const char *policy_source_name(enum policy_source s)
{
    static const char *const names[] = {"corp", "user", "profile", "default"};
    return (unsigned)s < 4 ? names[s] : "default";
}

/* ---- one file ---- */

static bool policy_key(const char *k)
{
    static const char *const names[] = {"schema", "rule", "policy", "network", "dns", "corp"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return false;
}

/* Top-level keys: the six policy ones; in the corp file the rest belongs to
 * the settings registry (docs/config.md) and is skipped. */
static int check_top(const struct toml_value *root, const struct load_ctx *c, struct err **errp)
{
    bool any = false;
    for (size_t i = 0; i < toml_table_len(root); i++) {
        const char *k = toml_table_key(root, i);
        if (policy_key(k)) {
            any = true;
            continue;
        }
        if (c->src != POLICY_SRC_CORP)
            return err_status(errp, 400,
                              "%s:%d: unknown key '%s' (schema, rule, [policy], [network], [dns], "
                              "[corp])",
                              c->label, toml_line(toml_table_value(root, i)), k);
    }
    const struct toml_value *schema = toml_table_get(root, "schema");
    int64_t v;
    if (schema && (toml_int(schema, &v) < 0 || v != 1))
        return err_status(errp, 400, "%s:%d: schema must be 1 (this capsem reads schema 1)",
                          c->label, toml_line(schema));
    if (any && !schema)
        return err_status(errp, 400, "%s:1: missing 'schema = 1'", c->label);
    return 0;
}

int policy_parse_file(const struct toml_value *root, const struct load_ctx *c,
                      struct rule_set *rules, struct settings_layer *st, struct err **errp)
{
    memset(rules, 0, sizeof(*rules));
    if (check_top(root, c, errp) < 0)
        return -1;
    const struct toml_value *arr = toml_table_get(root, "rule");
    if (arr && rules_parse(arr, c, rules, errp) < 0)
        return -1;
    if (settings_parse(root, c, st, errp) < 0) {
        rules_free(rules);
        return -1;
    }
    return 0;
}

int policy_check_text(enum policy_source src, const char *text, size_t len, const char *label,
                      const struct policy_hostlist *lists, size_t nlists, struct err **errp)
{
    struct load_ctx c = {.label = label, .src = src, .lists = lists, .nlists = nlists};
    struct rule_set rules;
    struct settings_layer st;
    _cleanup_toml_ struct toml_value *root = toml_parse(text, len, label, errp);
    if (!root || policy_parse_file(root, &c, &rules, &st, errp) < 0)
        return -1;
    rules_free(&rules);
    settings_layer_free(&st);
    return 0;
}

/* ---- the snapshot ---- */

static struct policy *policy_alloc(void)
{
    struct policy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    settings_defaults(&p->owned.v);
    p->st = p->owned.v;
    for (int k = 0; k < POLICY_NKEYS; k++)
        p->key_src[k] = POLICY_SRC_DEFAULT;
    return p;
}

struct policy *policy_defaults(void)
{
    return policy_alloc();
}

static void policy_free(struct policy *p)
{
    for (int s = 0; s < 3; s++) {
        rules_free(&p->src[s]);
        free(p->labels[s]);
    }
    settings_layer_free(&p->owned);
    warnings_free(&p->warn);
    free(p);
}

struct policy *policy_ref(struct policy *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void policy_unref(struct policy *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        policy_free(p);
}

void policy_unrefp(struct policy **p)
{
    policy_unref(*p);
    *p = NULL;
}

const struct policy_settings *policy_settings(const struct policy *p)
{
    return &p->st;
}

int policy_setting_source(const struct policy *p, const char *key)
{
    int i = settings_key_index(key);
    return i < 0 ? -1 : p->key_src[i];
}

size_t policy_warning_count(const struct policy *p)
{
    return p->warn.n;
}

const char *policy_warning(const struct policy *p, size_t i)
{
    return i < p->warn.n ? p->warn.v[i] : NULL;
}

size_t policy_rule_count(const struct policy *p, enum policy_source src)
{
    return (unsigned)src < 3 ? p->src[src].n : 0;
}

const char *policy_source_label(const struct policy *p, enum policy_source src)
{
    return (unsigned)src < 3 ? p->labels[src] : NULL;
}

/* ---- finding and reading the sources ---- */

static bool profile_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return false;
    }
    return true;
}

/* Reads path into *root; an absent file leaves *root NULL (returns 0). */
static int read_optional(const char *path, const char *label, struct toml_value **root,
                         struct err **errp)
{
    struct err *e = NULL;
    *root = toml_parse_file(path, label, &e);
    if (*root)
        return 0;
    if (e && e->code == ENOENT && e->status == 0) {
        err_free(e);
        return 0;
    }
    err_move(errp, &e);
    return -1;
}

struct source_file {
    char *path, *label;
    bool required;
};

static char *__attribute__((format(printf, 1, 2))) fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static int find_corp(const struct policy_load_opts *o, struct source_file *f)
{
    const char *path = o->corp_path;
    if (!path) {
        path = getenv("CAPSEM_CORP_CONFIG");
        if (!path)
            path = POLICY_CORP_DEFAULT;
    }
    if (!*path)
        return 0;
    f->path = strdup(path);
    f->label = strdup(path);
    return f->path && f->label ? 0 : -1;
}

/* The profile: $home/profiles/<name>.toml if it exists, else bundled. */
static int find_profile(const struct policy_load_opts *o, struct source_file *f, struct err **errp)
{
    const char *name = o->profile ? o->profile : "code";
    if (!profile_name_valid(name))
        return err_status(errp, 400, "profile name '%s' is not valid ([A-Za-z0-9_-], 1-64)", name);
    f->required = true;
    if (o->home) {
        char *full = fmt_alloc("%s/profiles/%s.toml", o->home, name);
        if (!full)
            return err_status(errp, 0, "out of memory");
        if (access(full, F_OK) == 0) {
            f->path = full;
            f->label = fmt_alloc("profiles/%s.toml", name);
            return f->label ? 0 : err_status(errp, 0, "out of memory");
        }
        free(full);
    }
    if (!o->bundled_dir)
        return err_status(errp, 404, "profile '%s' not found in %s/profiles", name,
                          o->home ? o->home : "(no CAPSEM_HOME)");
    f->path = fmt_alloc("%s/%s.toml", o->bundled_dir, name);
    f->label = f->path ? strdup(f->path) : NULL;
    return f->label ? 0 : err_status(errp, 0, "out of memory");
}

static int find_sources(const struct policy_load_opts *o, struct source_file f[3],
                        struct err **errp)
{
    if (find_corp(o, &f[POLICY_SRC_CORP]) < 0)
        return err_status(errp, 0, "out of memory");
    if (o->home) {
        f[POLICY_SRC_USER].path = fmt_alloc("%s/policy.toml", o->home);
        f[POLICY_SRC_USER].label = strdup("policy.toml");
        if (!f[POLICY_SRC_USER].path || !f[POLICY_SRC_USER].label)
            return err_status(errp, 0, "out of memory");
    }
    return find_profile(o, &f[POLICY_SRC_PROFILE], errp);
}

static int load_sources(const struct policy_load_opts *o, struct source_file f[3], struct policy *p,
                        struct settings_layer layers[3], bool have[3], struct err **errp)
{
    for (int s = 0; s < 3; s++) {
        if (!f[s].path)
            continue;
        _cleanup_toml_ struct toml_value *root = NULL;
        if (read_optional(f[s].path, f[s].label, &root, errp) < 0)
            return -1;
        if (!root && f[s].required)
            return err_status(errp, 404, "profile not found: %s", f[s].label);
        if (!root)
            continue; /* an absent corp or user file: an empty layer, no label */
        p->labels[s] = steal_pointer(&f[s].label);
        struct load_ctx c = {.label = p->labels[s],
                             .src = (enum policy_source)s,
                             .lists = o->hostlists,
                             .nlists = o->nhostlists,
                             .warn = &p->warn};
        if (policy_parse_file(root, &c, &p->src[s], &layers[s], errp) < 0)
            return -1;
        have[s] = true;
    }
    return 0;
}

struct policy *policy_load(const struct policy_load_opts *o, struct err **errp)
{
    struct source_file f[3] = {{0}};
    struct settings_layer layers[3];
    bool have[3] = {false, false, false};
    struct policy *p = policy_alloc();
    int rc = -1;
    if (!p) {
        err_status(errp, 0, "out of memory");
        return NULL;
    }
    if (find_sources(o, f, errp) == 0 && load_sources(o, f, p, layers, have, errp) == 0) {
        struct settings_layer *lp[3];
        const char *labels[3];
        for (int s = 0; s < 3; s++) {
            lp[s] = have[s] ? &layers[s] : NULL;
            labels[s] = p->labels[s];
        }
        settings_merge(lp, labels, &p->warn, &p->owned, p->key_src);
        p->st = p->owned.v;
        rc = 0;
    }
    for (int s = 0; s < 3; s++) {
        if (have[s])
            settings_layer_free(&layers[s]);
        free(f[s].path);
        free(f[s].label);
    }
    if (rc < 0) {
        policy_free(p);
        return NULL;
    }
    return p;
}
