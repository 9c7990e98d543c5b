/* TOML value tree: allocation, keyed tables (file order plus a hash index),
 * accessors and conversion to JSON. */
#include "config/toml.h"

#include <stdlib.h>
#include <string.h>

#include "config/toml_int.h"

/* ---- tree ---- */

struct toml_value *tomli_value_new(enum toml_type type, int line, int depth)
{
    struct toml_value *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->type = type;
    v->line = line;
    v->depth = depth;
    return v;
}

void toml_free(struct toml_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case TOML_STRING:
        free(v->u.str.s);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            toml_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.tbl.len; i++) {
            free(v->u.tbl.kv[i].key);
            toml_free(v->u.tbl.kv[i].val);
        }
        free(v->u.tbl.kv);
        free(v->u.tbl.index);
        break;
    default:
        break;
    }
    free(v);
}

void toml_freep(struct toml_value **v)
{
    toml_free(*v);
    *v = NULL;
}

static uint32_t key_hash(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h;
}

/* Tables past this many keys get an open-addressing index so that a file
 * with many keys does not make every insert a linear scan. */
#define INDEX_MIN 16

static int index_rebuild(struct toml_value *t, size_t cap)
{
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (!idx)
        return -1;
    for (size_t i = 0; i < t->u.tbl.len; i++) {
        size_t h = key_hash(t->u.tbl.kv[i].key) & (cap - 1);
        while (idx[h])
            h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)i + 1;
    }
    free(t->u.tbl.index);
    t->u.tbl.index = idx;
    t->u.tbl.index_cap = cap;
    return 0;
}

const struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
    if (!t || t->type != TOML_TABLE || !key)
        return NULL;
    const struct tkv *kv = t->u.tbl.kv;
    if (!t->u.tbl.index) {
        for (size_t i = 0; i < t->u.tbl.len; i++)
            if (strcmp(kv[i].key, key) == 0)
                return kv[i].val;
        return NULL;
    }
    size_t cap = t->u.tbl.index_cap;
    for (size_t h = key_hash(key) & (cap - 1); t->u.tbl.index[h]; h = (h + 1) & (cap - 1)) {
        const struct tkv *e = &kv[t->u.tbl.index[h] - 1];
        if (strcmp(e->key, key) == 0)
            return e->val;
    }
    return NULL;
}

/* Takes ownership of key and val (both freed on failure). */
int tomli_table_put(struct toml_value *t, char *key, struct toml_value *val)
{
    if (t->u.tbl.len == t->u.tbl.cap) {
        size_t ncap = t->u.tbl.cap ? t->u.tbl.cap * 2 : 4;
        struct tkv *nkv = realloc(t->u.tbl.kv, ncap * sizeof(*nkv));
        if (!nkv)
            goto fail;
        t->u.tbl.kv = nkv;
        t->u.tbl.cap = ncap;
    }
    t->u.tbl.kv[t->u.tbl.len++] = (struct tkv){key, val};
    size_t n = t->u.tbl.len;
    if (n >= INDEX_MIN && n * 2 > t->u.tbl.index_cap) {
        if (index_rebuild(t, t->u.tbl.index_cap ? t->u.tbl.index_cap * 2 : 64) < 0) {
            t->u.tbl.len--;
            goto fail;
        }
    } else if (t->u.tbl.index) {
        size_t cap = t->u.tbl.index_cap, h = key_hash(key) & (cap - 1);
        while (t->u.tbl.index[h])
            h = (h + 1) & (cap - 1);
        t->u.tbl.index[h] = (uint32_t)n;
    }
    return 0;
fail:
    free(key);
    toml_free(val);
    return -1;
}

/* Takes ownership of val (freed on failure). */
int tomli_array_push(struct toml_value *a, struct toml_value *val)
{
    if (a->u.arr.len == a->u.arr.cap) {
        size_t ncap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
        struct toml_value **n = realloc(a->u.arr.items, ncap * sizeof(*n));
        if (!n) {
            toml_free(val);
            return -1;
        }
        a->u.arr.items = n;
        a->u.arr.cap = ncap;
    }
    a->u.arr.items[a->u.arr.len++] = val;
    return 0;
}

/* ---- accessors ---- */

enum toml_type toml_type(const struct toml_value *v)
{
    return v->type;
}

const char *toml_type_name(enum toml_type t)
{
    switch (t) {
    case TOML_TABLE:
        return "table";
    case TOML_ARRAY:
        return "array";
    case TOML_STRING:
        return "string";
    case TOML_INT:
        return "integer";
    case TOML_FLOAT:
        return "float";
    case TOML_BOOL:
        return "boolean";
    }
    return "?";
}

int toml_line(const struct toml_value *v)
{
    return v ? v->line : 0;
}

size_t toml_table_len(const struct toml_value *t)
{
    return t && t->type == TOML_TABLE ? t->u.tbl.len : 0;
}

const char *toml_table_key(const struct toml_value *t, size_t i)
{
    return i < toml_table_len(t) ? t->u.tbl.kv[i].key : NULL;
}

const struct toml_value *toml_table_value(const struct toml_value *t, size_t i)
{
    return i < toml_table_len(t) ? t->u.tbl.kv[i].val : NULL;
}

const struct toml_value *toml_lookup(const struct toml_value *root, const char *path)
{
    const struct toml_value *v = root;
    char part[TOML_MAX_KEY + 1];
    while (v && path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n > TOML_MAX_KEY)
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        v = toml_table_get(v, part);
        path = dot ? dot + 1 : NULL;
    }
    return v;
}

size_t toml_array_len(const struct toml_value *a)
{
    return a && a->type == TOML_ARRAY ? a->u.arr.len : 0;
}

const struct toml_value *toml_array_at(const struct toml_value *a, size_t i)
{
    return i < toml_array_len(a) ? a->u.arr.items[i] : NULL;
}

const char *toml_string(const struct toml_value *v)
{
    return v && v->type == TOML_STRING ? v->u.str.s : NULL;
}

int toml_int(const struct toml_value *v, int64_t *out)
{
    if (!v || v->type != TOML_INT)
        return -1;
    *out = v->u.i;
    return 0;
}

int toml_float(const struct toml_value *v, double *out)
{
    if (!v || v->type != TOML_FLOAT)
        return -1;
    *out = v->u.f;
    return 0;
}

int toml_bool(const struct toml_value *v, bool *out)
{
    if (!v || v->type != TOML_BOOL)
        return -1;
    *out = v->u.b;
    return 0;
}

/* ---- JSON ---- */

static json_t *container_to_json(const struct toml_value *v)
{
    json_t *j = v->type == TOML_TABLE ? json_object() : json_array();
    if (!j)
        return NULL;
    size_t n = v->type == TOML_TABLE ? v->u.tbl.len : v->u.arr.len;
    for (size_t i = 0; i < n; i++) {
        const struct toml_value *c = v->type == TOML_TABLE ? v->u.tbl.kv[i].val : v->u.arr.items[i];
        json_t *cj = toml_to_json(c);
        int r = !cj                     ? -1
                : v->type == TOML_TABLE ? json_object_set_new(j, v->u.tbl.kv[i].key, cj)
                                        : json_array_append_new(j, cj);
        if (r < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

json_t *toml_to_json(const struct toml_value *v)
{
    switch (v->type) {
    case TOML_STRING:
        return json_stringn(v->u.str.s, v->u.str.len);
    case TOML_INT:
        return json_integer((json_int_t)v->u.i);
    case TOML_FLOAT:
        return json_real(v->u.f);
    case TOML_BOOL:
        return json_boolean(v->u.b);
    default:
        return container_to_json(v);
    }
}
