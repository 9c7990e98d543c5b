/* TOML writer for JSON-shaped data: enough for user.toml (scalars, string
 * maps, arrays of tables). Output is deterministic: keys in object order. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "config/toml.h"

#define WRITE_MAX (64u * 1024 * 1024)

struct writer {
    struct buf b;
    struct err **errp;
    const char *path[TOML_MAX_DEPTH + 1]; /* header path of the current table */
    int npath;
};

static int wfail(struct writer *w)
{
    if (errno == EMSGSIZE)
        return err_status(w->errp, 400, "TOML output is larger than %u bytes", WRITE_MAX);
    return err_set(w->errp, ENOMEM, "out of memory");
}

static int put(struct writer *w, const char *s)
{
    return buf_append_str(&w->b, s) < 0 ? wfail(w) : 0;
}

static int put_string(struct writer *w, const char *s, size_t n)
{
    static const char esc_from[] = "\b\t\n\f\r\"\\", esc_to[] = "btnfr\"\\";
    if (buf_append(&w->b, "\"", 1) < 0)
        return wfail(w);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *hit = c ? strchr(esc_from, c) : NULL;
        int r;
        if (c == 0)
            return err_status(w->errp, 400, "strings holding NUL cannot be written as TOML");
        if (hit)
            r = buf_printf(&w->b, "\\%c", esc_to[hit - esc_from]);
        else if (c < 0x20 || c == 0x7f)
            r = buf_printf(&w->b, "\\u%04X", c);
        else
            r = buf_append(&w->b, &s[i], 1);
        if (r < 0)
            return wfail(w);
    }
    return buf_append(&w->b, "\"", 1) < 0 ? wfail(w) : 0;
}

static bool bare_key(const char *k)
{
    if (!*k)
        return false;
    for (; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-'))
            return false;
    return true;
}

static int put_key(struct writer *w, const char *k)
{
    return bare_key(k) ? put(w, k) : put_string(w, k, strlen(k));
}

static int put_float(struct writer *w, double d)
{
    char num[40];
    snprintf(num, sizeof(num), "%.17g", d);
    size_t l = strlen(num);
    if (!strpbrk(num, ".eE"))
        snprintf(num + l, sizeof(num) - l, ".0");
    return put(w, num);
}

static int put_inline(struct writer *w, const json_t *v, int depth);

static int put_inline_container(struct writer *w, const json_t *v, int depth)
{
    bool obj = json_is_object(v);
    if (put(w, obj ? "{" : "[") < 0)
        return -1;
    const char *k;
    json_t *c;
    size_t i = 0, n = obj ? json_object_size(v) : json_array_size(v);
    void *it = obj ? json_object_iter((json_t *)v) : NULL;
    for (; i < n; i++) {
        if (i && put(w, ", ") < 0)
            return -1;
        if (obj) {
            k = json_object_iter_key(it);
            c = json_object_iter_value(it);
            it = json_object_iter_next((json_t *)v, it);
            if (put_key(w, k) < 0 || put(w, " = ") < 0)
                return -1;
        } else {
            c = json_array_get(v, i);
        }
        if (put_inline(w, c, depth + 1) < 0)
            return -1;
    }
    return put(w, obj ? "}" : "]");
}

static int put_inline(struct writer *w, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return put_string(w, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(&w->b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0 ? wfail(w) : 0;
    case JSON_REAL:
        return put_float(w, json_real_value(v));
    case JSON_TRUE:
        return put(w, "true");
    case JSON_FALSE:
        return put(w, "false");
    case JSON_NULL:
        return err_status(w->errp, 400, "null has no TOML form");
    default:
        if (depth > TOML_MAX_DEPTH)
            return err_status(w->errp, 400, "nesting deeper than %d levels", TOML_MAX_DEPTH);
        return put_inline_container(w, v, depth);
    }
}

/* Non-empty arrays of objects are written as [[arrays.of.tables]]. */
static bool is_table_array(const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_object(json_array_get(v, i)))
            return false;
    return true;
}

static int put_header(struct writer *w, bool aot)
{
    /* One blank line before every header, none at the start of the text. */
    bool blank = w->b.len == 0;
    if (w->b.len >= 2) {
        const char *end = (const char *)buf_head(&w->b) + w->b.len;
        blank = end[-1] == '\n' && end[-2] == '\n';
    }
    if (!blank && put(w, "\n") < 0)
        return -1;
    if (put(w, aot ? "[[" : "[") < 0)
        return -1;
    for (int i = 0; i < w->npath; i++)
        if ((i && put(w, ".") < 0) || put_key(w, w->path[i]) < 0)
            return -1;
    return put(w, aot ? "]]\n" : "]\n");
}

static int write_table(struct writer *w, const json_t *obj, int depth);

/* Emits `[path.key]` (or one `[[path.key]]` per element) and the body. */
static int write_sub(struct writer *w, const char *key, const json_t *v, int depth)
{
    if (w->npath >= TOML_MAX_DEPTH || depth + (json_is_object(v) ? 1 : 2) > TOML_MAX_DEPTH)
        return err_status(w->errp, 400, "nesting deeper than %d levels", TOML_MAX_DEPTH);
    w->path[w->npath++] = key;
    int r = 0;
    if (json_is_object(v)) {
        r = put_header(w, false) < 0 || write_table(w, v, depth + 1) < 0 ? -1 : 0;
    } else {
        for (size_t i = 0; r == 0 && i < json_array_size(v); i++)
            r = put_header(w, true) < 0 || write_table(w, json_array_get(v, i), depth + 2) < 0 ? -1
                                                                                               : 0;
    }
    w->npath--;
    return r;
}

/* Key/values first (a header ends them), then sub-tables, then arrays of
 * tables. depth: nesting level of obj (root 0). */
static int write_table(struct writer *w, const json_t *obj, int depth)
{
    json_t *o = (json_t *)obj;
    for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
        const json_t *v = json_object_iter_value(it);
        if (json_is_object(v) || is_table_array(v))
            continue;
        if (put_key(w, json_object_iter_key(it)) < 0 || put(w, " = ") < 0 ||
            put_inline(w, v, depth + 1) < 0 || put(w, "\n") < 0)
            return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
            const json_t *v = json_object_iter_value(it);
            bool take = pass == 0 ? json_is_object(v) : is_table_array(v);
            if (take && write_sub(w, json_object_iter_key(it), v, depth) < 0)
                return -1;
        }
    }
    return 0;
}

static int put_comment(struct writer *w, const char *text)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        if (put(w, n ? "# " : "#") < 0)
            return -1;
        if (buf_append(&w->b, text, n) < 0)
            return wfail(w);
        if (put(w, "\n") < 0)
            return -1;
        text += n + (text[n] == '\n');
    }
    return 0;
}

char *toml_write(const json_t *root, const char *header, struct err **errp)
{
    if (!json_is_object(root)) {
        err_status(errp, 400, "only a JSON object can be written as a TOML document");
        return NULL;
    }
    struct writer w = {.errp = errp};
    buf_init(&w.b, WRITE_MAX);
    if ((header && (put_comment(&w, header) < 0 || put(&w, "\n") < 0)) ||
        write_table(&w, root, 0) < 0) {
        buf_free(&w.b);
        return NULL;
    }
    char *out = buf_steal_str(&w.b);
    buf_free(&w.b);
    if (!out)
        err_set(errp, ENOMEM, "out of memory");
    return out;
}
