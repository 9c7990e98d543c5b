/* TOML tokens: whitespace, comments, strings (4 kinds), keys, booleans and
 * numbers. Everything here reads from a `struct parser` and reports
 * "<file>:<line>: <reason>" errors. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "base/util.h"
#include "config/toml.h"
#include "config/toml_int.h"

/* ---- errors ---- */

void tomli_keypath_clear(struct keypath *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->part[i]);
    k->n = 0;
}

/* Truncating a message may cut a UTF-8 sequence; messages end up in JSON,
 * so drop the broken tail. */
static void trim_utf8(char *s)
{
    size_t len = strlen(s);
    for (int k = 0; k < 4 && !utf8_valid(s, len); k++)
        s[--len] = '\0';
}

/* A character for a message: 'x' when printable ASCII, else its code. */
static const char *char_desc(int c, char buf[16])
{
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else if (c < 0)
        snprintf(buf, 16, "end of input");
    else
        snprintf(buf, 16, "byte 0x%02X", (unsigned)c);
    return buf;
}

int tomli_perr(struct parser *ps, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    trim_utf8(msg);
    return err_status(ps->errp, 400, "%s:%d: %s", ps->file, ps->line, msg);
}

int tomli_oom(struct parser *ps)
{
    return err_set(ps->errp, ENOMEM, "%s: out of memory", ps->file);
}

/* "a.b.c" from key parts, for messages only (truncated to fit). */
const char *tomli_key_str(char *dst, size_t cap, char *const *part, size_t n)
{
    size_t o = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        int w = snprintf(dst + o, cap - o, "%s%s", i ? "." : "", part[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    trim_utf8(dst);
    return dst;
}

/* Skips a comment if one starts here (up to, not including, the newline). */
int tomli_skip_comment(struct parser *ps)
{
    if (tomli_peek(ps) != '#')
        return 0;
    for (ps->p++; ps->p < ps->end && !tomli_at_newline(ps); ps->p++) {
        int c = tomli_peek(ps);
        if (tomli_is_ctrl(c))
            return tomli_perr(ps, "control character U+%04X in comment", (unsigned)c);
    }
    return 0;
}

/* After a key/value or header: whitespace, an optional comment, then a
 * newline or the end of input. */
int tomli_expect_eol(struct parser *ps)
{
    tomli_skip_ws(ps);
    if (tomli_skip_comment(ps) < 0)
        return -1;
    if (ps->p == ps->end)
        return 0;
    if (!tomli_at_newline(ps)) {
        char cd[16];
        return tomli_perr(ps, "expected the end of the line, found %s",
                          char_desc(tomli_peek(ps), cd));
    }
    tomli_eat_newline(ps);
    return 0;
}

/* Whitespace, newlines and comments (inside arrays). */
int tomli_skip_blank(struct parser *ps)
{
    for (;;) {
        tomli_skip_ws(ps);
        if (tomli_skip_comment(ps) < 0)
            return -1;
        if (!tomli_at_newline(ps))
            return 0;
        tomli_eat_newline(ps);
    }
}

/* ---- strings ---- */

static int sb_put(struct parser *ps, const void *p, size_t n, const char *what, size_t max)
{
    if (ps->sb.len + n > max)
        return tomli_perr(ps, "%s longer than %zu bytes", what, max);
    if (buf_append(&ps->sb, p, n) < 0)
        return tomli_oom(ps);
    return 0;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* \uXXXX or \UXXXXXXXX; ps->p is on the 'u' / 'U'. */
static int unicode_escape(struct parser *ps, const char *what, size_t max)
{
    size_t ndig = *ps->p == 'u' ? 4 : 8;
    uint32_t cp = 0;
    ps->p++;
    for (size_t i = 0; i < ndig; i++) {
        int h = hex_digit(tomli_peek(ps));
        if (h < 0)
            return tomli_perr(ps, "\\%c escape needs %zu hex digits", ndig == 4 ? 'u' : 'U', ndig);
        cp = (cp << 4) | (uint32_t)h;
        ps->p++;
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return tomli_perr(ps, "escape U+%04X is not a Unicode scalar value", (unsigned)cp);
    if (cp == 0)
        return tomli_perr(ps, "NUL characters (\\u0000) are not supported");
    char enc[4];
    return sb_put(ps, enc, utf8_encode(cp, enc), what, max);
}

/* One escape after '\' (ps->p is on the character after the backslash). */
static int escape(struct parser *ps, const char *what, size_t max)
{
    static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
    int c = tomli_peek(ps);
    if (c == 'u' || c == 'U')
        return unicode_escape(ps, what, max);
    const char *hit = c > 0 ? strchr(from, c) : NULL;
    if (!hit) {
        char cd[16];
        return tomli_perr(ps, "invalid escape sequence: backslash then %s in %s", char_desc(c, cd),
                          what);
    }
    ps->p++;
    return sb_put(ps, &to[hit - from], 1, what, max);
}

/* Multi-line basic strings: a backslash that ends a line removes the newline
 * and all whitespace up to the next visible character. Returns 1 if it did. */
static int line_ending_backslash(struct parser *ps)
{
    const char *q = ps->p + 1;
    while (q < ps->end && (*q == ' ' || *q == '\t'))
        q++;
    if (!(q < ps->end && (*q == '\n' || (*q == '\r' && q + 1 < ps->end && q[1] == '\n'))))
        return 0;
    ps->p = q;
    for (;;) {
        tomli_skip_ws(ps);
        if (!tomli_at_newline(ps))
            return 1;
        tomli_eat_newline(ps);
    }
}

/* At a run of `quote` characters inside a multi-line string: returns 1 when
 * it closes the string (adding up to two quotes that belong to the content),
 * 0 when the run is content, -1 on error. */
static int quote_run(struct parser *ps, char quote, const char *what, size_t max)
{
    size_t n = 0;
    while (tomli_peek_at(ps, n) == quote)
        n++;
    if (n < 3) {
        ps->p += n;
        return sb_put(ps, ps->p - n, n, what, max);
    }
    if (n > 5)
        return tomli_perr(ps, "too many quotes at the end of a multi-line string");
    if (sb_put(ps, ps->p, n - 3, what, max) < 0)
        return -1;
    ps->p += n;
    return 1;
}

/* Plain content byte (or newline) inside a string. */
static int string_char(struct parser *ps, bool multi, const char *what, size_t max)
{
    if (tomli_at_newline(ps)) {
        if (!multi)
            return tomli_perr(ps, "newline in a single-line %s (use \"\"\" for several lines)",
                              what);
        tomli_eat_newline(ps);
        return sb_put(ps, "\n", 1, what, max);
    }
    int c = tomli_peek(ps);
    if (tomli_is_ctrl(c))
        return tomli_perr(ps, "control character U+%04X in %s", (unsigned)c, what);
    ps->p++;
    return sb_put(ps, ps->p - 1, 1, what, max);
}

/* Parses a string token at ps->p (any of the four kinds). The decoded bytes
 * are left in ps->sb (NUL-terminated). Keys pass multi_ok = false. */
static int parse_string(struct parser *ps, bool multi_ok, const char *what, size_t max)
{
    char quote = *ps->p;
    bool literal = quote == '\'';
    bool multi = tomli_peek_at(ps, 1) == quote && tomli_peek_at(ps, 2) == quote;
    int start_line = ps->line;
    buf_reset(&ps->sb);
    if (multi && !multi_ok)
        return tomli_perr(ps, "a %s cannot be a multi-line string", what);
    ps->p += multi ? 3 : 1;
    if (multi && tomli_at_newline(ps))
        tomli_eat_newline(ps);
    for (;;) {
        int c = tomli_peek(ps);
        int r = 0;
        if (c < 0) {
            ps->line = start_line;
            return tomli_perr(ps, "unterminated %s", what);
        }
        if (c == quote && multi) {
            if ((r = quote_run(ps, quote, what, max)) != 0)
                break;
        } else if (c == quote) {
            ps->p++;
            break;
        } else if (c == '\\' && !literal) {
            if (multi && line_ending_backslash(ps))
                continue;
            ps->p++;
            r = escape(ps, what, max);
        } else {
            r = string_char(ps, multi, what, max);
        }
        if (r < 0)
            return -1;
    }
    return sb_put(ps, "", 1, what, max + 1);
}

/* ---- keys ---- */

static bool is_bare(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int key_part(struct parser *ps, struct keypath *kp)
{
    if (kp->n == TOML_MAX_DEPTH)
        return tomli_perr(ps, "key has more than %d parts", TOML_MAX_DEPTH);
    int c = tomli_peek(ps);
    char *s;
    if (c == '"' || c == '\'') {
        if (parse_string(ps, false, "key", TOML_MAX_KEY) < 0)
            return -1;
        s = strdup((const char *)buf_head(&ps->sb));
    } else {
        const char *b = ps->p;
        while (is_bare(tomli_peek(ps)))
            ps->p++;
        if (ps->p == b) {
            char cd[16];
            return c < 0 || c == '\n' || c == '\r'
                       ? tomli_perr(ps, "expected a key")
                       : tomli_perr(ps, "expected a key, found %s", char_desc(c, cd));
        }
        if ((size_t)(ps->p - b) > TOML_MAX_KEY)
            return tomli_perr(ps, "key longer than %d bytes", TOML_MAX_KEY);
        s = strndup(b, (size_t)(ps->p - b));
    }
    if (!s)
        return tomli_oom(ps);
    kp->part[kp->n++] = s;
    return 0;
}

/* key ( ws '.' ws key )* ; leaves ps->p after the last part. */
int tomli_parse_key(struct parser *ps, struct keypath *kp)
{
    for (;;) {
        if (key_part(ps, kp) < 0)
            return -1;
        tomli_skip_ws(ps);
        if (tomli_peek(ps) != '.')
            return 0;
        ps->p++;
        tomli_skip_ws(ps);
    }
}

/* ---- scalars ---- */

int tomli_string_value(struct parser *ps, int depth, struct toml_value **out)
{
    int line = ps->line;
    if (parse_string(ps, true, "string", TOML_MAX_STRING) < 0)
        return -1;
    struct toml_value *v = tomli_value_new(TOML_STRING, line, depth);
    if (!v)
        return tomli_oom(ps);
    v->u.str.len = ps->sb.len - 1;
    v->u.str.s = malloc(ps->sb.len);
    if (!v->u.str.s) {
        free(v);
        return tomli_oom(ps);
    }
    memcpy(v->u.str.s, buf_head(&ps->sb), ps->sb.len);
    *out = v;
    return 0;
}

/* Digits of `radix` with single '_' between digits; at least one digit. */
static bool digits_ok(const char *s, size_t n, int radix)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 == n || s[i + 1] == '_')
                return false;
            continue;
        }
        int d = hex_digit((unsigned char)s[i]);
        if (d < 0 || d >= radix)
            return false;
    }
    return true;
}

static int radix_int(struct parser *ps, const char *tok, size_t n, int64_t *out)
{
    int radix = tok[1] == 'x' ? 16 : tok[1] == 'o' ? 8 : 2;
    if (!digits_ok(tok + 2, n - 2, radix))
        return tomli_perr(ps, "invalid %s integer '%.*s'",
                          radix == 16  ? "hexadecimal"
                          : radix == 8 ? "octal"
                                       : "binary",
                          (int)MIN(n, 40), tok);
    uint64_t v = 0;
    for (size_t i = 2; i < n; i++) {
        if (tok[i] == '_')
            continue;
        if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t)hex_digit(tok[i])) / (uint64_t)radix)
            return tomli_perr(ps, "integer '%.*s' is out of range", (int)MIN(n, 40), tok);
        v = v * (uint64_t)radix + (uint64_t)hex_digit(tok[i]);
    }
    *out = (int64_t)v;
    return 0;
}

static int dec_int(struct parser *ps, const char *tok, size_t n, int64_t *out)
{
    bool neg = tok[0] == '-';
    size_t s = (tok[0] == '-' || tok[0] == '+') ? 1 : 0;
    uint64_t lim = neg ? UINT64_C(0x8000000000000000) : UINT64_C(0x7fffffffffffffff);
    uint64_t v = 0;
    for (size_t i = s; i < n; i++) {
        if (tok[i] == '_')
            continue;
        uint64_t d = (uint64_t)(tok[i] - '0');
        if (v > (lim - d) / 10)
            return tomli_perr(ps, "integer '%.*s' is out of range", (int)MIN(n, 40), tok);
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int float_val(struct parser *ps, const char *tok, size_t n, double *out)
{
    char tmp[128];
    size_t o = 0;
    if (n >= sizeof(tmp))
        return tomli_perr(ps, "number '%.40s...' is too long", tok);
    for (size_t i = 0; i < n; i++)
        if (tok[i] != '_')
            tmp[o++] = tok[i];
    tmp[o] = '\0';
    errno = 0;
    char *end = NULL;
    double d = strtod(tmp, &end);
    if (!end || *end != '\0' || isinf(d) || isnan(d))
        return tomli_perr(ps, "float '%.*s' is out of range", (int)MIN(n, 40), tok);
    *out = d;
    return 0;
}

/* Splits a decimal number into [sign] int [. frac] [e exp] and checks each. */
static int dec_shape(const char *tok, size_t n, bool *is_float)
{
    size_t i = (tok[0] == '-' || tok[0] == '+') ? 1 : 0, b = i;
    while (i < n && tok[i] != '.' && tok[i] != 'e' && tok[i] != 'E')
        i++;
    if (!digits_ok(tok + b, i - b, 10))
        return -1;
    if (tok[b] == '0' && i - b > 1)
        return -2;
    *is_float = i < n;
    if (i < n && tok[i] == '.') {
        size_t f = ++i;
        while (i < n && tok[i] != 'e' && tok[i] != 'E')
            i++;
        if (!digits_ok(tok + f, i - f, 10))
            return -1;
    }
    if (i < n) {
        i++;
        if (i < n && (tok[i] == '+' || tok[i] == '-'))
            i++;
        if (!digits_ok(tok + i, n - i, 10))
            return -1;
    }
    return 0;
}

static bool looks_like_date(const char *tok, size_t n)
{
    if (memchr(tok, ':', n))
        return true;
    return n >= 5 && tok[0] >= '0' && tok[0] <= '9' && tok[1] >= '0' && tok[1] <= '9' &&
           tok[2] >= '0' && tok[2] <= '9' && tok[3] >= '0' && tok[3] <= '9' && tok[4] == '-';
}

static bool is_word(const char *tok, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(tok, w, n) == 0;
}

static int number(struct parser *ps, const char *tok, size_t n, struct toml_value *v)
{
    const char *u = (tok[0] == '+' || tok[0] == '-') ? tok + 1 : tok;
    size_t un = n - (size_t)(u - tok);
    if (is_word(u, un, "inf") || is_word(u, un, "nan"))
        return tomli_perr(ps, "inf and nan are not supported");
    if (un > 1 && u[0] == '0' && (u[1] == 'x' || u[1] == 'o' || u[1] == 'b')) {
        if (u != tok)
            return tomli_perr(ps, "a hexadecimal, octal or binary integer cannot have a sign");
        v->type = TOML_INT;
        return radix_int(ps, tok, n, &v->u.i);
    }
    bool is_float = false;
    int r = dec_shape(tok, n, &is_float);
    if (r == -2)
        return tomli_perr(ps, "leading zeros are not allowed in '%.*s'", (int)MIN(n, 40), tok);
    if (r < 0)
        return tomli_perr(ps, "invalid value '%.*s'", (int)MIN(n, 40), tok);
    v->type = is_float ? TOML_FLOAT : TOML_INT;
    return is_float ? float_val(ps, tok, n, &v->u.f) : dec_int(ps, tok, n, &v->u.i);
}

/* Booleans and numbers: one token of [A-Za-z0-9_+.:-]. */
int tomli_bare_value(struct parser *ps, int depth, struct toml_value **out)
{
    const char *tok = ps->p;
    while (ps->p < ps->end && (is_bare(*ps->p) || *ps->p == '+' || *ps->p == '.' || *ps->p == ':'))
        ps->p++;
    size_t n = (size_t)(ps->p - tok);
    if (n == 0) {
        int c = tomli_peek(ps);
        char cd[16];
        if (c < 0 || c == '\n' || c == '\r' || c == '#')
            return tomli_perr(ps, "expected a value");
        return tomli_perr(ps, "expected a value, found %s", char_desc(c, cd));
    }
    if (looks_like_date(tok, n))
        return tomli_perr(ps, "dates and times are not supported (use a string)");
    _cleanup_free_ struct toml_value *v = tomli_value_new(TOML_BOOL, ps->line, depth);
    if (!v)
        return tomli_oom(ps);
    if (is_word(tok, n, "true") || is_word(tok, n, "false")) {
        v->u.b = tok[0] == 't';
    } else if ((tok[0] >= '0' && tok[0] <= '9') || tok[0] == '+' || tok[0] == '-' ||
               is_word(tok, n, "inf") || is_word(tok, n, "nan")) {
        if (number(ps, tok, n, v) < 0)
            return -1;
    } else {
        return tomli_perr(ps, "invalid value '%.*s' (strings need quotes)", (int)MIN(n, 40), tok);
    }
    *out = steal_pointer(&v);
    return 0;
}
