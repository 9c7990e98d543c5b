/* Strict TOML reader: arrays, inline tables and the document layout
 * (headers, dotted keys, redefinition rules of TOML 1.0). docs/config.md
 * lists what is left out. */
#include "config/toml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "base/util.h"
#include "config/toml_int.h"

/* ---- containers ---- */

static int parse_value(struct parser *ps, int depth, struct toml_value **out);
static int set_dotted(struct parser *ps, struct toml_value *t, struct keypath *kp,
                      struct toml_value *val);

static int check_depth(struct parser *ps, int depth)
{
    if (depth > TOML_MAX_DEPTH)
        return tomli_perr(ps, "nesting deeper than %d levels", TOML_MAX_DEPTH);
    return 0;
}

static int array_value(struct parser *ps, int depth, struct toml_value **out)
{
    if (check_depth(ps, depth) < 0)
        return -1;
    struct toml_value *a = tomli_value_new(TOML_ARRAY, ps->line, depth);
    if (!a)
        return tomli_oom(ps);
    ps->p++;
    for (;;) {
        struct toml_value *item = NULL;
        if (tomli_skip_blank(ps) < 0)
            goto fail;
        if (tomli_peek(ps) == ']')
            break;
        if (parse_value(ps, depth + 1, &item) < 0)
            goto fail;
        if (tomli_array_push(a, item) < 0) {
            tomli_oom(ps);
            goto fail;
        }
        if (tomli_skip_blank(ps) < 0)
            goto fail;
        if (tomli_peek(ps) == ',') {
            ps->p++;
            continue;
        }
        if (tomli_peek(ps) != ']') {
            tomli_perr(ps, "expected ',' or ']' in array");
            goto fail;
        }
        break;
    }
    ps->p++;
    *out = a;
    return 0;
fail:
    toml_free(a);
    return -1;
}

/* An inline table and every table made by dotted keys inside it is sealed. */
static void seal_inline(struct toml_value *t)
{
    t->u.tbl.kind = TK_INLINE;
    for (size_t i = 0; i < t->u.tbl.len; i++) {
        struct toml_value *c = t->u.tbl.kv[i].val;
        if (c->type == TOML_TABLE && c->u.tbl.kind == TK_DOTTED)
            seal_inline(c);
    }
}

/* One `key = value` inside an inline table. */
static int inline_entry(struct parser *ps, struct toml_value *t, int depth)
{
    struct keypath kp = {.n = 0};
    struct toml_value *val = NULL;
    int r = -1;
    if (tomli_parse_key(ps, &kp) < 0)
        goto out;
    if (tomli_peek(ps) != '=') {
        tomli_perr(ps, "expected '=' after a key in an inline table");
        goto out;
    }
    ps->p++;
    tomli_skip_ws(ps);
    if (parse_value(ps, depth + (int)kp.n, &val) < 0)
        goto out;
    r = set_dotted(ps, t, &kp, val);
out:
    tomli_keypath_clear(&kp);
    return r;
}

static int inline_table(struct parser *ps, int depth, struct toml_value **out)
{
    if (check_depth(ps, depth) < 0)
        return -1;
    struct toml_value *t = tomli_value_new(TOML_TABLE, ps->line, depth);
    if (!t)
        return tomli_oom(ps);
    t->u.tbl.kind = TK_DOTTED;
    ps->p++;
    tomli_skip_ws(ps);
    if (tomli_peek(ps) != '}') {
        for (;;) {
            if (tomli_at_newline(ps)) {
                tomli_perr(ps, "newline in an inline table (keep { ... } on one line)");
                goto fail;
            }
            if (inline_entry(ps, t, depth) < 0)
                goto fail;
            tomli_skip_ws(ps);
            if (tomli_peek(ps) == '}')
                break;
            if (tomli_peek(ps) != ',') {
                tomli_perr(ps, "expected ',' or '}' in an inline table");
                goto fail;
            }
            ps->p++;
            tomli_skip_ws(ps);
            if (tomli_peek(ps) == '}') {
                tomli_perr(ps, "trailing comma in an inline table");
                goto fail;
            }
        }
    }
    ps->p++;
    seal_inline(t);
    *out = t;
    return 0;
fail:
    toml_free(t);
    return -1;
}

static int parse_value(struct parser *ps, int depth, struct toml_value **out)
{
    switch (tomli_peek(ps)) {
    case '"':
    case '\'':
        return tomli_string_value(ps, depth, out);
    case '[':
        return array_value(ps, depth, out);
    case '{':
        return inline_table(ps, depth, out);
    default:
        return tomli_bare_value(ps, depth, out);
    }
}

/* ---- layout: dotted keys and headers ---- */

static struct toml_value *new_table(struct parser *ps, struct toml_value *parent, const char *key,
                                    enum tbl_kind kind)
{
    if (check_depth(ps, parent->depth + 1) < 0)
        return NULL;
    struct toml_value *t = tomli_value_new(TOML_TABLE, ps->line, parent->depth + 1);
    char *k = strdup(key);
    if (!t || !k) {
        free(t);
        free(k);
        tomli_oom(ps);
        return NULL;
    }
    t->u.tbl.kind = kind;
    if (tomli_table_put(parent, k, t) < 0) {
        tomli_oom(ps);
        return NULL;
    }
    return t;
}

static const char *kind_word(const struct toml_value *v)
{
    if (v->type == TOML_ARRAY)
        return v->u.arr.aot ? "an array of tables" : "an array";
    switch (v->type) {
    case TOML_STRING:
        return "a string";
    case TOML_INT:
        return "an integer";
    case TOML_FLOAT:
        return "a float";
    case TOML_BOOL:
        return "a boolean";
    default:
        break;
    }
    switch (v->u.tbl.kind) {
    case TK_INLINE:
        return "an inline table";
    case TK_DOTTED:
        return "a table made by dotted keys";
    default:
        return "a table";
    }
}

/* Key/value line (or inline-table entry): walks/creates the dotted prefix in
 * t and stores val under the last part. Takes ownership of val. */
static int set_dotted(struct parser *ps, struct toml_value *t, struct keypath *kp,
                      struct toml_value *val)
{
    char name[512];
    for (size_t i = 0; i + 1 < kp->n; i++) {
        struct toml_value *c = (struct toml_value *)toml_table_get(t, kp->part[i]);
        if (!c) {
            c = new_table(ps, t, kp->part[i], TK_DOTTED);
        } else if (c->type != TOML_TABLE || c->u.tbl.kind != TK_DOTTED) {
            tomli_perr(ps, "cannot add keys to '%s' with dotted keys: it is %s (line %d)",
                       tomli_key_str(name, sizeof(name), kp->part, i + 1), kind_word(c), c->line);
            c = NULL;
        }
        if (!c) {
            toml_free(val);
            return -1;
        }
        t = c;
    }
    const struct toml_value *old = toml_table_get(t, kp->part[kp->n - 1]);
    if (old) {
        tomli_perr(ps, "duplicate key '%s' (first defined at line %d)",
                   tomli_key_str(name, sizeof(name), kp->part, kp->n), old->line);
        toml_free(val);
        return -1;
    }
    char *k = strdup(kp->part[kp->n - 1]);
    if (!k) {
        toml_free(val);
        return tomli_oom(ps);
    }
    if (tomli_table_put(t, k, val) < 0)
        return tomli_oom(ps);
    return 0;
}

/* One intermediate step of a header path: descend, creating implicit tables;
 * an array of tables means its last element. */
static struct toml_value *header_step(struct parser *ps, struct toml_value *t,
                                      const struct keypath *kp, size_t i)
{
    char name[512];
    struct toml_value *c = (struct toml_value *)toml_table_get(t, kp->part[i]);
    if (!c)
        return new_table(ps, t, kp->part[i], TK_IMPLICIT);
    if (c->type == TOML_ARRAY && c->u.arr.aot)
        return c->u.arr.items[c->u.arr.len - 1];
    if (c->type == TOML_TABLE && c->u.tbl.kind != TK_INLINE)
        return c;
    tomli_perr(ps, "cannot define a table under '%s': it is %s (line %d)",
               tomli_key_str(name, sizeof(name), kp->part, i + 1), kind_word(c), c->line);
    return NULL;
}

static int table_header(struct parser *ps, struct keypath *kp)
{
    char name[512];
    struct toml_value *t = ps->root;
    for (size_t i = 0; t && i + 1 < kp->n; i++)
        t = header_step(ps, t, kp, i);
    if (!t)
        return -1;
    const char *last = kp->part[kp->n - 1];
    struct toml_value *c = (struct toml_value *)toml_table_get(t, last);
    if (!c) {
        c = new_table(ps, t, last, TK_HEADER);
        if (!c)
            return -1;
    } else if (c->type == TOML_TABLE && c->u.tbl.kind == TK_IMPLICIT) {
        c->u.tbl.kind = TK_HEADER;
        c->line = ps->line;
    } else if (c->type == TOML_TABLE && c->u.tbl.kind == TK_HEADER) {
        return tomli_perr(ps, "table [%s] is defined twice (first at line %d)",
                          tomli_key_str(name, sizeof(name), kp->part, kp->n), c->line);
    } else {
        return tomli_perr(ps, "cannot define table [%s]: it is already %s (line %d)",
                          tomli_key_str(name, sizeof(name), kp->part, kp->n), kind_word(c),
                          c->line);
    }
    ps->cur = c;
    return 0;
}

static int array_table_header(struct parser *ps, struct keypath *kp)
{
    char name[512];
    struct toml_value *t = ps->root;
    for (size_t i = 0; t && i + 1 < kp->n; i++)
        t = header_step(ps, t, kp, i);
    if (!t)
        return -1;
    const char *last = kp->part[kp->n - 1];
    struct toml_value *a = (struct toml_value *)toml_table_get(t, last);
    if (!a) {
        if (check_depth(ps, t->depth + 2) < 0)
            return -1;
        struct toml_value *na = tomli_value_new(TOML_ARRAY, ps->line, t->depth + 1);
        char *k = strdup(last);
        if (!na || !k) {
            free(na);
            free(k);
            return tomli_oom(ps);
        }
        na->u.arr.aot = true;
        if (tomli_table_put(t, k, na) < 0)
            return tomli_oom(ps);
        a = na;
    } else if (a->type != TOML_ARRAY || !a->u.arr.aot) {
        return tomli_perr(ps, "cannot define [[%s]]: it is already %s (line %d)",
                          tomli_key_str(name, sizeof(name), kp->part, kp->n), kind_word(a),
                          a->line);
    }
    struct toml_value *el = tomli_value_new(TOML_TABLE, ps->line, a->depth + 1);
    if (!el || tomli_array_push(a, el) < 0)
        return tomli_oom(ps);
    el->u.tbl.kind = TK_HEADER;
    ps->cur = el;
    return 0;
}

static int header_line(struct parser *ps)
{
    bool aot = tomli_peek_at(ps, 1) == '[';
    struct keypath kp = {.n = 0};
    int r = -1;
    ps->p += aot ? 2 : 1;
    tomli_skip_ws(ps);
    if (tomli_parse_key(ps, &kp) < 0)
        goto out;
    if (tomli_peek(ps) != ']' || (aot && tomli_peek_at(ps, 1) != ']')) {
        tomli_perr(ps, "expected '%s' to close the table header", aot ? "]]" : "]");
        goto out;
    }
    ps->p += aot ? 2 : 1;
    r = aot ? array_table_header(ps, &kp) : table_header(ps, &kp);
out:
    tomli_keypath_clear(&kp);
    return r;
}

static int keyval_line(struct parser *ps)
{
    struct keypath kp = {.n = 0};
    struct toml_value *val = NULL;
    int r = -1;
    if (tomli_parse_key(ps, &kp) < 0)
        goto out;
    if (tomli_peek(ps) != '=') {
        tomli_perr(ps, "expected '=' after the key");
        goto out;
    }
    ps->p++;
    tomli_skip_ws(ps);
    if (parse_value(ps, ps->cur->depth + (int)kp.n, &val) < 0)
        goto out;
    r = set_dotted(ps, ps->cur, &kp, val);
out:
    tomli_keypath_clear(&kp);
    return r;
}

/* Reports the line of the first byte that is not valid UTF-8. */
static int check_utf8(struct parser *ps)
{
    const char *s = ps->p;
    while (s < ps->end) {
        const char *nl = memchr(s, '\n', (size_t)(ps->end - s));
        const char *e = nl ? nl : ps->end;
        if (!utf8_valid(s, (size_t)(e - s)))
            return tomli_perr(ps, "invalid UTF-8");
        ps->line++;
        s = e + 1;
    }
    ps->line = 1;
    return 0;
}

static int parse_document(struct parser *ps)
{
    if (check_utf8(ps) < 0)
        return -1;
    while (ps->p < ps->end) {
        tomli_skip_ws(ps);
        if (tomli_skip_comment(ps) < 0)
            return -1;
        if (ps->p == ps->end)
            break;
        if (tomli_at_newline(ps)) {
            tomli_eat_newline(ps);
            continue;
        }
        int r = tomli_peek(ps) == '[' ? header_line(ps) : keyval_line(ps);
        if (r < 0 || tomli_expect_eol(ps) < 0)
            return -1;
    }
    return 0;
}

struct toml_value *toml_parse(const char *text, size_t len, const char *filename, struct err **errp)
{
    if (!filename)
        filename = "<input>";
    if (len > TOML_MAX_INPUT) {
        err_status(errp, 400, "%s: file is larger than %d bytes", filename, TOML_MAX_INPUT);
        return NULL;
    }
    struct parser ps = {.p = text, .end = text + len, .line = 1, .file = filename, .errp = errp};
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3;
    buf_init(&ps.sb, TOML_MAX_STRING + 1);
    ps.root = tomli_value_new(TOML_TABLE, 1, 0);
    if (!ps.root) {
        err_set(errp, ENOMEM, "%s: out of memory", filename);
        return NULL;
    }
    ps.root->u.tbl.kind = TK_HEADER;
    ps.cur = ps.root;
    int r = parse_document(&ps);
    buf_free(&ps.sb);
    if (r < 0) {
        toml_free(ps.root);
        return NULL;
    }
    return ps.root;
}

struct toml_value *toml_parse_file(const char *path, const char *label, struct err **errp)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    _cleanup_err_ struct err *e = NULL;
    if (file_read_all(path, TOML_MAX_INPUT, &text, &len, &e) < 0) {
        if (e->code == EFBIG) {
            err_status(errp, 400, "%s: file is larger than %d bytes", label ? label : path,
                       TOML_MAX_INPUT);
            return NULL;
        }
        err_move(errp, &e);
        return NULL;
    }
    return toml_parse(text, len, label ? label : path, errp);
}
