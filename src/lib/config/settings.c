/* Settings layering: defaults < user.toml < corp file, issues, getters,
 * /settings/info and PATCH /settings/edit. The registry and value checks are
 * in settings_registry.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/paths.h"
#include "base/util.h"
#include "config/settings_int.h"

enum user_state { U_NONE, U_OK, U_BAD, U_LOCKED };

struct sval {
    json_t *value; /* resolved, owned */
    enum settings_source src;
    bool locked;
    enum user_state user; /* what happened to the user's value */
    char *user_why;       /* U_BAD: the reason (owned) */
};

struct settings {
    char *user_path;
    char *corp_path; /* NULL: no corp file */
    struct toml_value *user_tree, *corp_tree;
    char *user_broken; /* user.toml exists but does not parse: the error */
    struct sval *v;    /* settings_ndefs entries */
    json_t *issues;
};

/* ---- issues ---- */

static void issue(json_t *issues, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void issue(json_t *issues, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_string(msg);
    if (!j) /* a cut UTF-8 sequence at the end of a long message */
        j = json_string("(issue text is not valid UTF-8)");
    json_array_append_new(issues, j);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- reading ---- */

/* Parses one file into *tree (NULL when absent). Bad content is an issue
 * (and *broken gets the message when broken != NULL); other I/O errors
 * fail. */
static int read_layer(const char *path, const char *label, struct toml_value **tree, char **broken,
                      json_t *issues, struct err **errp)
{
    _cleanup_err_ struct err *e = NULL;
    *tree = toml_parse_file(path, label, &e);
    if (*tree)
        return 0;
    if (e->code == ENOENT)
        return 0;
    if (e->status != 400) {
        err_move(errp, &e);
        return -1;
    }
    issue(issues, "%s (the whole file is ignored)", err_msg(e));
    if (broken && !(*broken = strdup(err_msg(e))))
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < settings_ndefs; i++)
        if (strncmp(settings_defs[i].id, name, n) == 0 && settings_defs[i].id[n] == '.')
            return true;
    return false;
}

static void collect_section(const struct toml_value *t, const char *sect, const char *label,
                            const struct toml_value **val, json_t *issues)
{
    for (size_t i = 0; i < toml_table_len(t); i++) {
        char id[TOML_MAX_KEY * 2 + 2];
        const struct toml_value *v = toml_table_value(t, i);
        snprintf(id, sizeof(id), "%s.%s", sect, toml_table_key(t, i));
        int idx = settings_def_find(id);
        if (idx < 0)
            issue(issues, "%s:%d: %s: unknown setting", label, toml_line(v), id);
        else
            val[idx] = v;
    }
}

/* Maps the file's keys to registry entries (val[i] borrowed from tree). */
static void collect(const struct toml_value *tree, const char *label, bool corp,
                    const struct toml_value **val, json_t *issues)
{
    for (size_t i = 0; i < toml_table_len(tree); i++) {
        const char *k = toml_table_key(tree, i);
        const struct toml_value *t = toml_table_value(tree, i);
        if (corp && settings_policy_table(k))
            continue; /* network.md section 8 reads these */
        if (!is_section(k)) {
            if (settings_policy_table(k))
                issue(issues, "%s:%d: %s: network policy belongs in policy.toml", label,
                      toml_line(t), k);
            else
                issue(issues, "%s:%d: %s: unknown setting", label, toml_line(t), k);
        } else if (toml_type(t) != TOML_TABLE) {
            issue(issues, "%s:%d: %s: must be a table ([%s])", label, toml_line(t), k, k);
        } else {
            collect_section(t, k, label, val, issues);
        }
    }
}

/* ---- resolution ---- */

struct layers {
    const struct toml_value **corp, **user;
    const char *corp_label, *user_label;
};

static int64_t ref_int(const struct sval *v, const char *id, int64_t dflt)
{
    int i = settings_def_find(id);
    return i >= 0 && json_is_integer(v[i].value) ? json_integer_value(v[i].value) : dflt;
}

static int try_value(const struct setting_def *d, const struct toml_value *tv, int64_t lo,
                     int64_t hi, json_t **out, char *why, size_t cap)
{
    json_t *j = toml_to_json(tv);
    if (!j) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int r = settings_validate(d, j, lo, hi, out, why, cap);
    json_decref(j);
    return r;
}

/* The default, clamped into [lo, hi] when other settings moved the range. */
static json_t *default_value(const struct setting_def *d, int64_t lo, int64_t hi, json_t *issues)
{
    if (d->type != ST_INT || (d->def >= lo && d->def <= hi))
        return settings_def_default(d);
    int64_t c = d->def < lo ? lo : hi;
    issue(issues, "%s: default %lld is outside %lld..%lld (set by %s); using %lld", d->id,
          (long long)d->def, (long long)lo, (long long)hi, d->def < lo ? d->lo_ref : d->hi_ref,
          (long long)c);
    return json_integer(c);
}

static void resolve_one(struct sval *v, size_t i, const struct layers *L, json_t *issues)
{
    const struct setting_def *d = &settings_defs[i];
    int64_t lo = d->lo_ref ? MAX(d->min, ref_int(v, d->lo_ref, d->min)) : d->min;
    int64_t hi = d->hi_ref ? MIN(d->max, ref_int(v, d->hi_ref, d->max)) : d->max;
    char why[512];
    const struct toml_value *cv = L->corp[i], *uv = L->user[i];
    struct sval *o = &v[i];
    if (cv) {
        o->locked = true;
        if (uv) {
            o->user = U_LOCKED;
            issue(issues, "%s:%d: %s: ignored: locked by the corp file", L->user_label,
                  toml_line(uv), d->id);
        }
        if (try_value(d, cv, lo, hi, &o->value, why, sizeof(why)) == 0)
            o->src = SETTINGS_CORP;
        else
            issue(issues, "%s:%d: %s: %s", L->corp_label, toml_line(cv), d->id, why);
    } else if (uv) {
        if (try_value(d, uv, lo, hi, &o->value, why, sizeof(why)) == 0) {
            o->src = SETTINGS_USER;
            o->user = U_OK;
        } else {
            o->user = U_BAD;
            o->user_why = strdup(why);
            issue(issues, "%s:%d: %s: %s", L->user_label, toml_line(uv), d->id, why);
        }
    }
    if (!o->value) {
        o->src = SETTINGS_DEFAULT;
        o->value = default_value(d, lo, hi, issues);
    }
}

static bool refs_done(const struct setting_def *d, const bool *done)
{
    int a = d->lo_ref ? settings_def_find(d->lo_ref) : -1;
    int b = d->hi_ref ? settings_def_find(d->hi_ref) : -1;
    return (a < 0 || done[a]) && (b < 0 || done[b]);
}

/* Resolves every key once the keys its range depends on are resolved; the
 * issues of each key are kept apart and then added in registry order. */
static int resolve_all(struct sval *v, const struct layers *L, json_t **slot)
{
    size_t n = settings_ndefs;
    bool *done = calloc(n, sizeof(*done));
    if (!done)
        return -1;
    for (size_t left = n, pass = 0; left > 0 && pass <= n; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (done[i] || !refs_done(&settings_defs[i], done))
                continue;
            resolve_one(v, i, L, slot[i]);
            done[i] = true;
            left--;
        }
    }
    free(done);
    for (size_t i = 0; i < n; i++)
        if (!v[i].value)
            return -1;
    return 0;
}

/* Fills v[] (settings_ndefs entries, zeroed) from the two parsed files. */
static int resolve(struct sval *v, json_t *issues, const struct toml_value *user_tree,
                   const char *user_label, const struct toml_value *corp_tree,
                   const char *corp_label)
{
    size_t n = settings_ndefs;
    const struct toml_value **cv = calloc(n, sizeof(*cv)), **uv = calloc(n, sizeof(*uv));
    json_t **slot = calloc(n, sizeof(*slot));
    int r = cv && uv && slot ? 0 : -1;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (!(slot[i] = json_array()))
            r = -1;
    if (r == 0) {
        collect(corp_tree, corp_label, true, cv, issues);
        collect(user_tree, user_label, false, uv, issues);
        struct layers L = {cv, uv, corp_label, user_label};
        r = resolve_all(v, &L, slot);
    }
    for (size_t i = 0; slot && i < n; i++) {
        if (r == 0)
            json_array_extend(issues, slot[i]);
        json_decref(slot[i]);
    }
    free(slot);
    free(cv);
    free(uv);
    return r;
}

static void svals_free(struct sval *v)
{
    for (size_t i = 0; v && i < settings_ndefs; i++) {
        json_decref(v[i].value);
        free(v[i].user_why);
    }
    free(v);
}

/* ---- load / reload / free ---- */

static void settings_clear(struct settings *s)
{
    toml_free(s->user_tree);
    toml_free(s->corp_tree);
    free(s->user_broken);
    svals_free(s->v);
    json_decref(s->issues);
    s->user_tree = s->corp_tree = NULL;
    s->user_broken = NULL;
    s->v = NULL;
    s->issues = NULL;
}

/* Reads both files into the (cleared) state fields of s. */
static int load_state(struct settings *s, struct err **errp)
{
    s->issues = json_array();
    s->v = calloc(settings_ndefs, sizeof(*s->v));
    if (!s->issues || !s->v)
        return err_set(errp, ENOMEM, "out of memory");
    const char *ulabel = base_name(s->user_path);
    if (s->corp_path &&
        read_layer(s->corp_path, s->corp_path, &s->corp_tree, NULL, s->issues, errp) < 0)
        return -1;
    if (read_layer(s->user_path, ulabel, &s->user_tree, &s->user_broken, s->issues, errp) < 0)
        return -1;
    if (resolve(s->v, s->issues, s->user_tree, ulabel, s->corp_tree,
                s->corp_path ? s->corp_path : "corp") < 0)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

struct settings *settings_load_paths(const char *user_path, const char *corp_path,
                                     struct err **errp)
{
    struct settings *s = calloc(1, sizeof(*s));
    if (!s || !(s->user_path = strdup(user_path)) ||
        (corp_path && !(s->corp_path = strdup(corp_path)))) {
        settings_free(s);
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    if (load_state(s, errp) < 0) {
        settings_free(s);
        return NULL;
    }
    return s;
}

struct settings *settings_load(const char *home, struct err **errp)
{
    _cleanup_free_ char *user = paths_join(home, "user.toml");
    if (!user) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    const char *corp = getenv("CAPSEM_CORP_CONFIG");
    if (!corp)
        corp = SETTINGS_CORP_DEFAULT;
    return settings_load_paths(user, *corp ? corp : NULL, errp);
}

int settings_reload(struct settings *s, struct err **errp)
{
    struct settings fresh = {.user_path = s->user_path, .corp_path = s->corp_path};
    if (load_state(&fresh, errp) < 0) {
        settings_clear(&fresh);
        return -1;
    }
    settings_clear(s);
    s->user_tree = fresh.user_tree;
    s->corp_tree = fresh.corp_tree;
    s->user_broken = fresh.user_broken;
    s->v = fresh.v;
    s->issues = fresh.issues;
    return 0;
}

void settings_free(struct settings *s)
{
    if (!s)
        return;
    settings_clear(s);
    free(s->user_path);
    free(s->corp_path);
    free(s);
}

void settings_freep(struct settings **s)
{
    settings_free(*s);
    *s = NULL;
}

/* ---- getters ---- */

static const struct sval *get(const struct settings *s, const char *id)
{
    int i = settings_def_find(id);
    return i >= 0 ? &s->v[i] : NULL;
}

int64_t settings_int(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v && json_is_integer(v->value) ? (int64_t)json_integer_value(v->value) : 0;
}

const char *settings_str(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v && json_is_string(v->value) ? json_string_value(v->value) : "";
}

bool settings_bool(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v && json_is_true(v->value);
}

const json_t *settings_json(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v ? v->value : NULL;
}

enum settings_source settings_source(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v ? v->src : SETTINGS_DEFAULT;
}

bool settings_corp_locked(const struct settings *s, const char *id)
{
    const struct sval *v = get(s, id);
    return v && v->locked;
}

const char *settings_source_name(enum settings_source src)
{
    return src == SETTINGS_CORP ? "corp" : src == SETTINGS_USER ? "user" : "default";
}

const json_t *settings_issues(const struct settings *s)
{
    return s->issues;
}

const struct toml_value *settings_corp_toml(const struct settings *s)
{
    return s->corp_tree;
}

const struct toml_value *settings_user_toml(const struct settings *s)
{
    return s->user_tree;
}

const char *settings_user_path(const struct settings *s)
{
    return s->user_path;
}

const char *settings_corp_path(const struct settings *s)
{
    return s->corp_path;
}

json_t *settings_info_json(const struct settings *s)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < settings_ndefs; i++) {
        const struct sval *v = &s->v[i];
        json_t *e = json_pack("{s:s, s:O, s:o, s:s, s:b}", "id", settings_defs[i].id, "value",
                              v->value, "default", settings_def_default(&settings_defs[i]),
                              "source", settings_source_name(v->src), "corp_locked", v->locked);
        if (!e || json_array_append_new(list, e) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    if (!list)
        return NULL;
    return json_pack("{s:o, s:O}", "settings", list, "issues", s->issues);
}

/* ---- edit ---- */

static const char written_header[] =
    "Capsem user settings, written by capsem-service (PATCH /settings/edit).\n"
    "Comments are not kept when the service rewrites this file.";

/* Sets (or with null, removes) doc[section][key] for id "section.key". */
static int doc_apply(json_t *doc, const char *id, const json_t *value)
{
    const char *dot = strchr(id, '.');
    char sect[64];
    snprintf(sect, sizeof(sect), "%.*s", (int)(dot - id), id);
    json_t *t = json_object_get(doc, sect);
    if (json_is_null(value)) {
        if (json_is_object(t))
            json_object_del(t, dot + 1);
        return 0;
    }
    if (!json_is_object(t)) {
        t = json_object();
        if (json_object_set_new(doc, sect, t) < 0)
            return -1;
    }
    return json_object_set_new(t, dot + 1, json_deep_copy(value));
}

/* Integers get their range (which may depend on other keys of the patch)
 * in edit_check(); everything else is checked here, so that only values that
 * can be written and read back reach the writer. */
static int precheck_value(const struct settings *s, const char *k, const json_t *v,
                          struct err **errp)
{
    const struct setting_def *d = &settings_defs[settings_def_find(k)];
    char why[512];
    json_t *out = NULL;
    if (json_is_null(v) || (d->type == ST_INT && json_is_integer(v)))
        return 0;
    int64_t lo = d->lo_ref ? MAX(d->min, ref_int(s->v, d->lo_ref, d->min)) : d->min;
    int64_t hi = d->hi_ref ? MIN(d->max, ref_int(s->v, d->hi_ref, d->max)) : d->max;
    if (settings_validate(d, v, lo, hi, &out, why, sizeof(why)) < 0)
        return err_status(errp, 400, "%s: %s", k, why);
    json_decref(out);
    return 0;
}

/* Ids known (400), not locked (403), values acceptable (400), user.toml
 * readable (409), in that order. */
static int edit_precheck(const struct settings *s, const json_t *patch, struct err **errp)
{
    json_t *p = (json_t *)patch;
    for (void *it = json_object_iter(p); it; it = json_object_iter_next(p, it))
        if (settings_def_find(json_object_iter_key(it)) < 0)
            return err_status(errp, 400, "unknown setting: %s", json_object_iter_key(it));
    for (void *it = json_object_iter(p); it; it = json_object_iter_next(p, it))
        if (s->v[settings_def_find(json_object_iter_key(it))].locked)
            return err_status(errp, 403, "setting is locked by corp: %s", json_object_iter_key(it));
    for (void *it = json_object_iter(p); it; it = json_object_iter_next(p, it))
        if (precheck_value(s, json_object_iter_key(it), json_object_iter_value(it), errp) < 0)
            return -1;
    if (s->user_broken)
        return err_status(errp, 409, "user.toml does not parse; fix or remove it first: %s",
                          s->user_broken);
    return 0;
}

/* Resolves the candidate user file against the current corp file; any user
 * value the patch sets, or that was valid and no longer is, fails. */
static int edit_check(const struct settings *s, const json_t *patch, const struct toml_value *tree,
                      struct err **errp)
{
    struct sval *nv = calloc(settings_ndefs, sizeof(*nv));
    json_t *scratch = json_array();
    int r = nv && scratch ? 0 : err_set(errp, ENOMEM, "out of memory");
    if (r == 0 && resolve(nv, scratch, tree, base_name(s->user_path), s->corp_tree, "corp") < 0)
        r = err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < settings_ndefs; i++) {
        bool patched = json_object_get(patch, settings_defs[i].id) != NULL;
        if (nv[i].user != U_BAD || !(patched || s->v[i].user == U_OK))
            continue;
        r = err_status(errp, 400, "%s: %s%s", settings_defs[i].id,
                       nv[i].user_why ? nv[i].user_why : "invalid",
                       patched ? "" : " (value in user.toml)");
    }
    svals_free(nv);
    json_decref(scratch);
    return r;
}

/* $CAPSEM_HOME may not exist yet when the first edit comes (0700, as
 * surface.md section 9 has it). */
static int ensure_parent(const char *path, struct err **errp)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    _cleanup_free_ char *dirpath = strndup(path, (size_t)(slash - path));
    if (!dirpath)
        return err_set(errp, ENOMEM, "out of memory");
    return mkdir_p(dirpath, 0700, errp);
}

int settings_edit(struct settings *s, const json_t *patch, struct err **errp)
{
    if (!json_is_object(patch))
        return err_status(errp, 400, "settings patch must be a JSON object of id: value");
    if (edit_precheck(s, patch, errp) < 0)
        return -1;
    if (json_object_size(patch) == 0)
        return 0; /* nothing to change: keep the file (and its comments) */
    json_t *doc = s->user_tree ? toml_to_json(s->user_tree) : json_object();
    json_t *p = (json_t *)patch;
    int r = doc ? 0 : err_set(errp, ENOMEM, "out of memory");
    for (void *it = json_object_iter(p); r == 0 && it; it = json_object_iter_next(p, it))
        if (doc_apply(doc, json_object_iter_key(it), json_object_iter_value(it)) < 0)
            r = err_set(errp, ENOMEM, "out of memory");
    _cleanup_free_ char *text = r == 0 ? toml_write(doc, written_header, errp) : NULL;
    json_decref(doc);
    if (!text)
        return -1;
    _cleanup_toml_ struct toml_value *tree =
        toml_parse(text, strlen(text), base_name(s->user_path), errp);
    if (!tree) {
        err_prefix(errp, "the new settings cannot be stored");
        return -1;
    }
    if (edit_check(s, patch, tree, errp) < 0)
        return -1;
    if (ensure_parent(s->user_path, errp) < 0 ||
        file_write_atomic(s->user_path, text, strlen(text), 0600, errp) < 0)
        return -1;
    return settings_reload(s, errp);
}
