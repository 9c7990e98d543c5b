/* Model price table: parsing, override merge, lookup and cost (prices.h). */
#include "ai/prices.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ai/ai_int.h"
#include "base/util.h"

#define PRICES_MAX_VERSION 64u

struct ai_prices {
    char *version;
    struct ai_price *v;
    size_t n;
    bool replace; /* override files only */
};

static void price_clear(struct ai_price *e)
{
    free(e->provider);
    free(e->model);
}

void ai_prices_free(struct ai_prices *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        price_clear(&p->v[i]);
    free(p->v);
    free(p->version);
    free(p);
}

const char *ai_prices_version(const struct ai_prices *p)
{
    return p ? p->version : NULL;
}

size_t ai_prices_count(const struct ai_prices *p)
{
    return p ? p->n : 0;
}

/* ---- parsing ---- */

static bool key_in(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(key, *keys) == 0)
            return true;
    return false;
}

static int check_keys(const json_t *obj, const char *const *keys, const char *where,
                      struct err **errp)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!key_in(k, keys))
            return err_status(errp, 400, "%s: unknown key \"%s\"", where, k);
    }
    return 0;
}

/* Optional price member: 0 when absent (*has false), -1 when not a finite
 * number >= 0. */
static int get_price(const json_t *obj, const char *key, double *out, bool *has,
                     const char *where, struct err **errp)
{
    json_t *v = json_object_get(obj, key);
    if (has)
        *has = v != NULL;
    if (!v)
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!json_is_number(v) || !isfinite(d) || d < 0)
        return err_status(errp, 400, "%s: \"%s\" must be a number >= 0 (USD per million tokens)",
                          where, key);
    *out = d;
    return 0;
}

static int parse_tier(const json_t *obj, struct ai_price_tier *t, bool need_io, const char *where,
                      struct err **errp)
{
    bool has_in, has_out;
    if (get_price(obj, "input", &t->input, &has_in, where, errp) < 0 ||
        get_price(obj, "output", &t->output, &has_out, where, errp) < 0)
        return -1;
    if (need_io && (!has_in || !has_out))
        return err_status(errp, 400, "%s: \"input\" and \"output\" prices are required", where);
    bool has_cr, has_cw;
    if (get_price(obj, "cache_read", &t->cache_read, &has_cr, where, errp) < 0 ||
        get_price(obj, "cache_write", &t->cache_write, &has_cw, where, errp) < 0)
        return -1;
    t->has_cache_read = t->has_cache_read || has_cr;
    t->has_cache_write = t->has_cache_write || has_cw;
    return 0;
}

static int parse_long(const json_t *lc, struct ai_price *e, const char *where, struct err **errp)
{
    static const char *const keys[] = {"threshold", "input",       "output",
                                       "cache_read", "cache_write", NULL};
    if (!json_is_object(lc))
        return err_status(errp, 400, "%s: \"long_context\" must be an object", where);
    if (check_keys(lc, keys, where, errp) < 0)
        return -1;
    json_t *th = json_object_get(lc, "threshold");
    if (!json_is_integer(th) || json_integer_value(th) <= 0)
        return err_status(errp, 400, "%s: long_context \"threshold\" must be a positive integer",
                          where);
    e->has_long = true;
    e->long_threshold = (int64_t)json_integer_value(th);
    e->longer = e->base; /* missing tier prices fall back to the base ones */
    return parse_tier(lc, &e->longer, false, where, errp);
}

static int parse_entry(const json_t *m, struct ai_price *e, const char *where, struct err **errp)
{
    static const char *const keys[] = {"model",        "provider", "input",    "output",
                                       "cache_read",   "cache_write", "long_context",
                                       "note",         "unpriced", NULL};
    if (!json_is_object(m))
        return err_status(errp, 400, "%s: must be an object", where);
    if (check_keys(m, keys, where, errp) < 0)
        return -1;
    const char *model = ai_jstr(m, "model"), *provider = ai_jstr(m, "provider");
    if (!model || !*model || strlen(model) >= AI_MAX_ID)
        return err_status(errp, 400, "%s: \"model\" must be a non-empty string", where);
    if (!provider || !*provider || strlen(provider) >= AI_MAX_ID)
        return err_status(errp, 400, "%s: \"provider\" must be a non-empty string", where);
    json_t *note = json_object_get(m, "note");
    if (note && !json_is_string(note))
        return err_status(errp, 400, "%s: \"note\" must be a string", where);
    json_t *unp = json_object_get(m, "unpriced");
    if (unp && !json_is_boolean(unp))
        return err_status(errp, 400, "%s: \"unpriced\" must be true or false", where);
    e->unpriced = json_is_true(unp);
    if (e->unpriced && json_object_size(m) > 3 + (note != NULL))
        return err_status(errp, 400, "%s: an unpriced entry has no prices", where);
    if (!e->unpriced && parse_tier(m, &e->base, true, where, errp) < 0)
        return -1;
    json_t *lc = json_object_get(m, "long_context");
    if (lc && parse_long(lc, e, where, errp) < 0)
        return -1;
    e->model = strdup(model);
    e->provider = strdup(provider);
    if (!e->model || !e->provider)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

static struct ai_price *find_same(struct ai_price *v, size_t n, const struct ai_price *e)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].model, e->model) == 0 && strcmp(v[i].provider, e->provider) == 0)
            return &v[i];
    return NULL;
}

static int parse_models(const json_t *models, struct ai_prices *p, const char *origin,
                        struct err **errp)
{
    size_t n = json_array_size(models);
    if (!json_is_array(models) || n > AI_PRICES_MAX_MODELS)
        return err_status(errp, 400, "%s: \"models\" must be an array of at most %u entries",
                          origin, AI_PRICES_MAX_MODELS);
    p->v = calloc(n ? n : 1, sizeof(*p->v));
    if (!p->v)
        return err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char where[320];
        snprintf(where, sizeof(where), "%s: models[%zu]", origin, i);
        struct ai_price *e = &p->v[p->n];
        int rc = parse_entry(json_array_get(models, i), e, where, errp);
        p->n++; /* counted even on failure, so ai_prices_free() releases it */
        if (rc < 0)
            return -1;
        if (find_same(p->v, p->n - 1, e))
            return err_status(errp, 400, "%s: duplicate entry for %s model \"%s\"", where,
                              e->provider, e->model);
    }
    return 0;
}

static int parse_header(const json_t *root, struct ai_prices *p, const char *origin,
                        struct err **errp)
{
    static const char *const keys[] = {"version", "currency", "unit",   "as_of",
                                       "notes",   "replace",  "models", NULL};
    if (check_keys(root, keys, origin, errp) < 0)
        return -1;
    const char *ver = ai_jstr(root, "version");
    if (!ver || !*ver || strlen(ver) > PRICES_MAX_VERSION)
        return err_status(errp, 400, "%s: \"version\" must be a string of 1 to %u bytes", origin,
                          PRICES_MAX_VERSION);
    const char *cur = ai_jstr(root, "currency"), *unit = ai_jstr(root, "unit");
    if (json_object_get(root, "currency") && (!cur || strcmp(cur, "USD") != 0))
        return err_status(errp, 400, "%s: \"currency\" must be \"USD\"", origin);
    if (json_object_get(root, "unit") && (!unit || strcmp(unit, "per_million_tokens") != 0))
        return err_status(errp, 400, "%s: \"unit\" must be \"per_million_tokens\"", origin);
    json_t *rep = json_object_get(root, "replace");
    if (rep && !json_is_boolean(rep))
        return err_status(errp, 400, "%s: \"replace\" must be true or false", origin);
    p->replace = json_is_true(rep);
    if (!(p->version = strdup(ver)))
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

int ai_prices_parse(const char *text, size_t len, const char *origin, struct ai_prices **out,
                    struct err **errp)
{
    *out = NULL;
    if (len > AI_PRICES_MAX_FILE)
        return err_status(errp, 400, "%s: larger than %u bytes", origin, AI_PRICES_MAX_FILE);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_status(errp, 400, "%s: line %d: %s", origin, jerr.line, jerr.text);
    struct ai_prices *p = calloc(1, sizeof(*p));
    int rc = -1;
    if (!p)
        err_set(errp, ENOMEM, "out of memory");
    else if (!json_is_object(root))
        err_status(errp, 400, "%s: must be a JSON object", origin);
    else if (parse_header(root, p, origin, errp) == 0)
        rc = parse_models(json_object_get(root, "models"), p, origin, errp);
    json_decref(root);
    if (rc < 0) {
        ai_prices_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

/* ---- override ---- */

static int prices_merge(struct ai_prices *base, struct ai_prices *over, struct err **errp)
{
    size_t vlen = strlen(base->version) + 1 + strlen(over->version) + 1;
    char *ver = malloc(vlen);
    struct ai_price *nv = realloc(base->v, (base->n + over->n + 1) * sizeof(*nv));
    if (!ver || !nv) {
        free(ver);
        if (nv)
            base->v = nv;
        return err_set(errp, ENOMEM, "out of memory");
    }
    base->v = nv;
    snprintf(ver, vlen, "%s+%s", base->version, over->version);
    free(base->version);
    base->version = ver;
    if (over->replace) {
        for (size_t i = 0; i < base->n; i++)
            price_clear(&base->v[i]);
        base->n = 0;
    }
    for (size_t i = 0; i < over->n; i++) {
        struct ai_price *same = find_same(base->v, base->n, &over->v[i]);
        if (same) {
            price_clear(same);
            *same = over->v[i];
        } else {
            base->v[base->n++] = over->v[i];
        }
    }
    over->n = 0; /* entries moved */
    return 0;
}

int ai_prices_load(const char *bundled_path, const char *override_path, struct ai_prices **out,
                   struct err **errp)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    struct ai_prices *base = NULL, *over = NULL;
    if (file_read_all(bundled_path, AI_PRICES_MAX_FILE, &text, &len, errp) < 0)
        return -1;
    int rc = ai_prices_parse(text, len, bundled_path, &base, errp);
    free(text);
    text = NULL;
    if (rc == 0 && override_path) {
        struct err *e = NULL;
        if (file_read_all(override_path, AI_PRICES_MAX_FILE, &text, &len, &e) < 0) {
            if (e && e->code != ENOENT) {
                err_move(errp, &e);
                rc = -1;
            }
            err_free(e);
        } else {
            rc = ai_prices_parse(text, len, override_path, &over, errp);
            if (rc == 0)
                rc = prices_merge(base, over, errp);
        }
    }
    free(text);
    ai_prices_free(over);
    if (rc < 0) {
        ai_prices_free(base);
        return -1;
    }
    *out = base;
    return 0;
}

/* ---- lookup and cost ---- */

static bool is_boundary(char c)
{
    return c == '-' || c == '@' || c == ':';
}

const struct ai_price *ai_prices_lookup(const struct ai_prices *p, const char *provider,
                                        const char *model)
{
    if (!p || !model)
        return NULL;
    const struct ai_price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct ai_price *e = &p->v[i];
        if (provider && strcmp(e->provider, provider) != 0)
            continue;
        if (strcmp(e->model, model) == 0)
            return e;
        size_t ml = strlen(e->model);
        if (ml > best_len && strncmp(model, e->model, ml) == 0 &&
            (is_boundary(model[ml]) || is_boundary(e->model[ml - 1]))) {
            best = e;
            best_len = ml;
        }
    }
    return best;
}

bool ai_prices_cost(const struct ai_prices *p, const char *provider, const char *model,
                    int64_t input, int64_t cache_read, int64_t cache_write, int64_t output,
                    double *usd)
{
    const struct ai_price *e = ai_prices_lookup(p, provider, model);
    if (!e || e->unpriced || input < 0 || output < 0)
        return false;
    double in = (double)input, out = (double)output;
    double cr = cache_read > 0 ? (double)cache_read : 0;
    double cw = cache_write > 0 ? (double)cache_write : 0;
    const struct ai_price_tier *t = &e->base;
    if (e->has_long && in + cr + cw > (double)e->long_threshold)
        t = &e->longer;
    if ((cr > 0 && !t->has_cache_read) || (cw > 0 && !t->has_cache_write))
        return false; /* tokens of a kind this entry cannot price */
    *usd = (in * t->input + cr * t->cache_read + cw * t->cache_write + out * t->output) / 1e6;
    return true;
}
