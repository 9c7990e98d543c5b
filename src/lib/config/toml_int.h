/* Internal layout of TOML values, shared by toml.c (reader) and
 * toml_write.c (accessors that need it, JSON conversion, writer). Not part of
 * the public API: use config/toml.h. */
#ifndef CAPSEM_TOML_INT_H
#define CAPSEM_TOML_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/toml.h"

/* How a table came to exist; decides what may later add to it (TOML 1.0). */
enum tbl_kind {
    TK_IMPLICIT, /* made as a parent by a header ([a.b] makes a) */
    TK_HEADER,   /* defined by its own [header] (or the root) */
    TK_DOTTED,   /* made by a dotted key (a.b = 1 makes a) */
    TK_INLINE,   /* { ... }: sealed */
};

struct tkv {
    char *key;
    struct toml_value *val;
};

struct toml_value {
    enum toml_type type;
    int line;
    int depth; /* 0 for the root */
    union {
        struct {
            char *s; /* NUL-terminated, no inner NUL */
            size_t len;
        } str;
        int64_t i;
        double f;
        bool b;
        struct {
            struct toml_value **items;
            size_t len, cap;
            bool aot; /* made by [[header]] */
        } arr;
        struct {
            struct tkv *kv; /* file order */
            size_t len, cap;
            uint32_t *index; /* open addressing, kv position + 1; NULL when small */
            size_t index_cap;
            enum tbl_kind kind;
        } tbl;
    } u;
};

/* ---- reader internals (toml_lex.c, toml.c) ---- */

struct parser {
    const char *p, *end;
    int line;
    const char *file;
    struct err **errp;
    struct toml_value *root;
    struct toml_value *cur; /* table that key/value lines go into */
    struct buf sb;          /* scratch for decoding strings */
};

struct keypath {
    char *part[TOML_MAX_DEPTH + 1]; /* owned */
    size_t n;
};

static inline int tomli_peek(const struct parser *ps)
{
    return ps->p < ps->end ? (unsigned char)*ps->p : -1;
}

static inline int tomli_peek_at(const struct parser *ps, size_t off)
{
    return (size_t)(ps->end - ps->p) > off ? (unsigned char)ps->p[off] : -1;
}

static inline bool tomli_is_ctrl(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static inline void tomli_skip_ws(struct parser *ps)
{
    while (tomli_peek(ps) == ' ' || tomli_peek(ps) == '\t')
        ps->p++;
}

static inline bool tomli_at_newline(const struct parser *ps)
{
    return tomli_peek(ps) == '\n' || (tomli_peek(ps) == '\r' && tomli_peek_at(ps, 1) == '\n');
}

static inline void tomli_eat_newline(struct parser *ps)
{
    ps->p += tomli_peek(ps) == '\r' ? 2 : 1;
    ps->line++;
}

/* Tree (toml_tree.c). table_put and array_push take ownership of key and
 * val, freeing them on failure. */
struct toml_value *tomli_value_new(enum toml_type type, int line, int depth);
int tomli_table_put(struct toml_value *t, char *key, struct toml_value *val);
int tomli_array_push(struct toml_value *a, struct toml_value *val);

/* Errors: "<file>:<line>: <reason>", status 400; always return -1. */
int tomli_perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tomli_oom(struct parser *ps);
/* "a.b.c" from key parts into dst, for messages (truncated to fit). */
const char *tomli_key_str(char *dst, size_t cap, char *const *part, size_t n);

/* Tokens (toml_lex.c). */
int tomli_skip_comment(struct parser *ps);
int tomli_expect_eol(struct parser *ps);
int tomli_skip_blank(struct parser *ps);
int tomli_parse_key(struct parser *ps, struct keypath *kp);
void tomli_keypath_clear(struct keypath *k);
int tomli_string_value(struct parser *ps, int depth, struct toml_value **out);
int tomli_bare_value(struct parser *ps, int depth, struct toml_value **out);

#endif
