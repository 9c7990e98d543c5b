/* Expression language, compile side (network.md section 9): lexer,
 * recursive-descent parser and type checker. Everything that can be wrong
 * with an expression is found here, at load time. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/util.h"
#include "policy/expr_int.h"

/* ---- field table ---- */

#define NM (EXPR_SCOPE_NET | EXPR_SCOPE_MODEL)
#define ALL (EXPR_SCOPE_NET | EXPR_SCOPE_MODEL | EXPR_SCOPE_MCP)

static const struct field_def fields[] = {
    {"http.host", F_HTTP_HOST, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.port", F_HTTP_PORT, VT_INT, NM, EXPR_CLASS_HTTP},
    {"http.scheme", F_HTTP_SCHEME, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.method", F_HTTP_METHOD, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.path", F_HTTP_PATH, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.query", F_HTTP_QUERY, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.header", F_HTTP_HEADER, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.upgrade", F_HTTP_UPGRADE, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"http.sni", F_HTTP_SNI, VT_STRING, NM, EXPR_CLASS_HTTP},
    {"dns.qname", F_DNS_QNAME, VT_STRING, EXPR_SCOPE_NET, EXPR_CLASS_DNS},
    {"dns.qtype", F_DNS_QTYPE, VT_STRING, EXPR_SCOPE_NET, EXPR_CLASS_DNS},
    {"dns.suspicious", F_DNS_SUSPICIOUS, VT_BOOL, EXPR_SCOPE_NET, EXPR_CLASS_DNS},
    {"conn.dst_ip", F_CONN_DST_IP, VT_STRING, NM, EXPR_CLASS_CONN},
    {"conn.dst_port", F_CONN_DST_PORT, VT_INT, NM, EXPR_CLASS_CONN},
    {"process.name", F_PROC_NAME, VT_STRING, ALL, EXPR_CLASS_PROCESS},
    {"process.exe", F_PROC_EXE, VT_STRING, ALL, EXPR_CLASS_PROCESS},
    {"process.pid", F_PROC_PID, VT_INT, ALL, EXPR_CLASS_PROCESS},
    {"vm.id", F_VM_ID, VT_STRING, ALL, EXPR_CLASS_VM},
    {"vm.name", F_VM_NAME, VT_STRING, ALL, EXPR_CLASS_VM},
    {"vm.profile", F_VM_PROFILE, VT_STRING, ALL, EXPR_CLASS_VM},
    {"model.provider", F_MODEL_PROVIDER, VT_STRING, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.protocol", F_MODEL_PROTOCOL, VT_STRING, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.name", F_MODEL_NAME, VT_STRING, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.stream", F_MODEL_STREAM, VT_BOOL, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.max_tokens", F_MODEL_MAX_TOKENS, VT_INT, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.messages_count", F_MODEL_MESSAGES_COUNT, VT_INT, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"model.tools", F_MODEL_TOOLS, VT_LIST, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL},
    {"mcp.server", F_MCP_SERVER, VT_STRING, EXPR_SCOPE_MCP, EXPR_CLASS_MCP},
    {"mcp.tool", F_MCP_TOOL, VT_STRING, EXPR_SCOPE_MCP, EXPR_CLASS_MCP},
    {"mcp.method", F_MCP_METHOD, VT_STRING, EXPR_SCOPE_MCP, EXPR_CLASS_MCP},
    {"mcp.args", F_MCP_ARGS, VT_STRING, EXPR_SCOPE_MCP, EXPR_CLASS_MCP},
};

static const char *const method_names[] = {"startsWith", "endsWith", "contains", "matches", "glob"};

static const char *type_name(enum vtype t)
{
    switch (t) {
    case VT_STRING:
        return "a string";
    case VT_INT:
        return "an integer";
    case VT_BOOL:
        return "a boolean";
    case VT_LIST:
        return "a list";
    }
    return "?";
}

static const char *scope_name(enum expr_scope s)
{
    return s == EXPR_SCOPE_NET ? "net" : s == EXPR_SCOPE_MODEL ? "model" : "mcp";
}

/* ---- lexer ---- */

enum tk {
    T_EOF,
    T_LP,
    T_RP,
    T_LB,
    T_RB,
    T_COMMA,
    T_DOT,
    T_NOT,
    T_AND,
    T_OR,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_WORD,
    T_STR,
    T_INT,
};

struct parser {
    const char *s;
    size_t len, pos;
    enum expr_scope scope;
    struct err **errp;
    bool failed;
    unsigned depth, atoms, classes;
    /* current token */
    enum tk k;
    size_t tpos;
    const char *w; /* T_WORD: start in s */
    size_t wlen;
    char *str; /* T_STR: decoded, in a scratch buffer of len + 1 bytes */
    size_t slen;
    int64_t ival;
};

static void __attribute__((format(printf, 3, 4))) perr(struct parser *p, size_t pos,
                                                        const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err_status(p->errp, 400, "column %zu: %s", pos + 1, msg);
}

static bool is_word_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_word_char(char c)
{
    return is_word_start(c) || (c >= '0' && c <= '9');
}

/* One escape after a backslash at s[*i]; appends the byte to the token. */
static int lex_escape(struct parser *p, size_t *i)
{
    size_t at = *i;
    char c = *i + 1 < p->len ? p->s[*i + 1] : '\0';
    int byte;
    switch (c) {
    case '\\':
    case '"':
    case '\'':
        byte = c;
        *i += 2;
        break;
    case 'n':
        byte = '\n';
        *i += 2;
        break;
    case 't':
        byte = '\t';
        *i += 2;
        break;
    case 'x': {
        int h = *i + 2 < p->len ? hex_digit(p->s[*i + 2]) : -1;
        int l = *i + 3 < p->len ? hex_digit(p->s[*i + 3]) : -1;
        if (h < 0 || l < 0) {
            perr(p, at, "\\x needs two hex digits");
            return -1;
        }
        byte = h * 16 + l;
        if (byte == 0) {
            perr(p, at, "\\x00 is not allowed in strings");
            return -1;
        }
        *i += 4;
        break;
    }
    default:
        perr(p, at, "invalid escape (use \\\\ \\\" \\' \\n \\t or \\xHH)");
        return -1;
    }
    p->str[p->slen++] = (char)byte;
    return 0;
}

static int lex_string(struct parser *p)
{
    char q = p->s[p->pos];
    size_t i = p->pos + 1;
    p->slen = 0;
    for (;;) {
        if (i >= p->len) {
            perr(p, p->tpos, "unterminated string");
            return -1;
        }
        unsigned char c = (unsigned char)p->s[i];
        if (c == (unsigned char)q)
            break;
        if (c == '\\') {
            if (lex_escape(p, &i) < 0)
                return -1;
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            perr(p, i, "control character in a string (use \\n or \\t)");
            return -1;
        }
        p->str[p->slen++] = (char)c;
        i++;
    }
    p->str[p->slen] = '\0';
    if (!utf8_valid(p->str, p->slen)) {
        perr(p, p->tpos, "string is not valid UTF-8");
        return -1;
    }
    p->pos = i + 1;
    p->k = T_STR;
    return 0;
}

static int lex_int(struct parser *p)
{
    int64_t v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        v = v * 10 + (p->s[p->pos] - '0');
        if (v >= (INT64_C(1) << 53)) {
            perr(p, p->tpos, "integer too large (the limit is 2^53 - 1)");
            return -1;
        }
        p->pos++;
    }
    p->ival = v;
    p->k = T_INT;
    return 0;
}

struct op {
    const char *text;
    enum tk k;
};

static const struct op ops[] = {
    {"&&", T_AND}, {"||", T_OR}, {"==", T_EQ}, {"!=", T_NE}, {"<=", T_LE},   {">=", T_GE},
    {"<", T_LT},   {">", T_GT},  {"!", T_NOT}, {"(", T_LP},  {")", T_RP},    {"[", T_LB},
    {"]", T_RB},   {",", T_COMMA}, {".", T_DOT},
};

/* Reads the next token into p; on error p->failed is set and k = T_EOF. */
static void next(struct parser *p)
{
    p->k = T_EOF;
    if (p->failed)
        return;
    while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]))
        p->pos++;
    p->tpos = p->pos;
    if (p->pos >= p->len)
        return;
    char c = p->s[p->pos];
    if (c == '"' || c == '\'') {
        if (lex_string(p) < 0)
            p->k = T_EOF;
        return;
    }
    if (c >= '0' && c <= '9') {
        if (lex_int(p) < 0)
            p->k = T_EOF;
        return;
    }
    if (is_word_start(c)) {
        p->w = p->s + p->pos;
        while (p->pos < p->len && is_word_char(p->s[p->pos]))
            p->pos++;
        p->wlen = (size_t)(p->s + p->pos - p->w);
        p->k = T_WORD;
        return;
    }
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i].text);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, ops[i].text, n) == 0) {
            p->pos += n;
            p->k = ops[i].k;
            return;
        }
    }
    if (c == '=')
        perr(p, p->pos, "unexpected '=' (use == to compare)");
    else if (c == '&' || c == '|')
        perr(p, p->pos, "unexpected '%c' (use && or ||)", c);
    else if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
        perr(p, p->pos, "unexpected character '%c'", c);
    else
        perr(p, p->pos, "unexpected byte 0x%02X", (unsigned char)c);
}

static bool word_is(const struct parser *p, const char *w)
{
    return p->k == T_WORD && p->wlen == strlen(w) && memcmp(p->w, w, p->wlen) == 0;
}

/* True when the next non-blank character after the current token is '('. */
static bool next_is_lparen(const struct parser *p)
{
    size_t i = p->pos;
    while (i < p->len && strchr(" \t\r\n", p->s[i]))
        i++;
    return i < p->len && p->s[i] == '(';
}

static const char *tok_desc(const struct parser *p)
{
    static const char *const names[] = {
        [T_EOF] = "the end", [T_LP] = "'('",  [T_RP] = "')'",    [T_LB] = "'['",
        [T_RB] = "']'",      [T_COMMA] = "','", [T_DOT] = "'.'",  [T_NOT] = "'!'",
        [T_AND] = "'&&'",    [T_OR] = "'||'", [T_EQ] = "'=='",   [T_NE] = "'!='",
        [T_LT] = "'<'",      [T_LE] = "'<='", [T_GT] = "'>'",    [T_GE] = "'>='",
        [T_WORD] = "a name", [T_STR] = "a string", [T_INT] = "an integer",
    };
    return names[p->k];
}

static bool expect(struct parser *p, enum tk k, const char *what)
{
    if (p->k == k)
        return true;
    perr(p, p->tpos, "expected %s, found %s", what, tok_desc(p));
    return false;
}

/* ---- nodes ---- */

static void node_free(struct enode *n);

static void lit_clear(struct lit *l)
{
    free(l->s);
    l->s = NULL;
}

static void node_free(struct enode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->f.key);
    lit_clear(&n->lit);
    for (size_t i = 0; i < n->nlist; i++)
        lit_clear(&n->list[i]);
    free(n->list);
    free(n->str);
    if (n->has_re)
        regfree(&n->re);
    free(n);
}

static struct enode *node_new(struct parser *p, enum ekind kind)
{
    struct enode *n = calloc(1, sizeof(*n));
    if (!n) {
        perr(p, p->tpos, "out of memory");
        return NULL;
    }
    n->kind = kind;
    return n;
}

static int add_kid(struct parser *p, struct enode *n, struct enode *kid)
{
    struct enode **k = realloc(n->kids, (n->nkids + 1) * sizeof(*k));
    if (!k) {
        node_free(kid);
        perr(p, p->tpos, "out of memory");
        return -1;
    }
    n->kids = k;
    n->kids[n->nkids++] = kid;
    return 0;
}

static bool count_atom(struct parser *p, size_t pos)
{
    if (++p->atoms <= EXPR_MAX_ATOMS)
        return true;
    perr(p, pos, "more than %d atoms", EXPR_MAX_ATOMS);
    return false;
}

/* ---- parser ---- */

static struct enode *parse_or(struct parser *p);

static bool is_tchar(char c)
{
    return is_word_char(c) || (c && strchr("!#$%&'*+-.^`|~", c));
}

/* http.header["Name"]: the key, checked as an HTTP token, lowercased. */
static char *parse_subscript(struct parser *p)
{
    next(p);
    if (!expect(p, T_STR, "a header name string"))
        return NULL;
    size_t at = p->tpos;
    for (size_t i = 0; i < p->slen; i++)
        if (!is_tchar(p->str[i])) {
            perr(p, at, "header name \"%s\" is not an HTTP token", p->str);
            return NULL;
        }
    if (p->slen == 0) {
        perr(p, at, "empty header name");
        return NULL;
    }
    char *key = strdup(p->str);
    if (!key) {
        perr(p, at, "out of memory");
        return NULL;
    }
    for (char *c = key; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    next(p);
    if (!expect(p, T_RB, "']'")) {
        free(key);
        return NULL;
    }
    next(p);
    return key;
}

static int method_lookup(struct parser *p)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
        if (word_is(p, method_names[i]))
            return (int)i;
    perr(p, p->tpos, "unknown method '%.*s' (startsWith, endsWith, contains, matches, glob)",
         (int)p->wlen, p->w);
    return -1;
}

static bool append_ident(struct parser *p, char *name, size_t cap, size_t *nlen)
{
    for (size_t i = 0; i < p->wlen; i++)
        if (p->w[i] >= 'A' && p->w[i] <= 'Z') {
            perr(p, p->tpos, "unknown field '%.*s' (field names are lowercase)", (int)p->wlen,
                 p->w);
            return false;
        }
    if (*nlen + p->wlen + 2 > cap) {
        perr(p, p->tpos, "unknown field '%.*s...'", (int)*nlen, name);
        return false;
    }
    if (*nlen)
        name[(*nlen)++] = '.';
    memcpy(name + *nlen, p->w, p->wlen);
    *nlen += p->wlen;
    name[*nlen] = '\0';
    return true;
}

static bool resolve_field(struct parser *p, size_t at, const char *name, struct efield *f)
{
    const struct field_def *def = NULL;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(fields[i].name, name) == 0)
            def = &fields[i];
    if (!def) {
        perr(p, at, "unknown field '%s'", name);
        return false;
    }
    if (!(def->scopes & p->scope)) {
        perr(p, at, "field '%s' is not available in %s rules", name, scope_name(p->scope));
        return false;
    }
    if (def->id == F_HTTP_HEADER && !f->key) {
        perr(p, at, "http.header needs a name: http.header[\"user-agent\"]");
        return false;
    }
    if (def->id != F_HTTP_HEADER && f->key) {
        perr(p, at, "only http.header takes [\"name\"]");
        return false;
    }
    f->def = def;
    p->classes |= def->cls;
    return true;
}

/* A field reference starting at the current T_WORD. When it ends in
 * ".method(", *method is that method and the current token is the '('. */
static bool parse_field(struct parser *p, struct efield *f, int *method)
{
    char name[64];
    size_t nlen = 0, at = p->tpos;
    *method = -1;
    name[0] = '\0';
    for (;;) {
        if (nlen > 0 && next_is_lparen(p)) {
            if ((*method = method_lookup(p)) < 0)
                return false;
            next(p);
            break;
        }
        if (!append_ident(p, name, sizeof(name), &nlen))
            return false;
        next(p);
        if (p->k == T_LB) {
            if (!(f->key = parse_subscript(p)))
                return false;
            if (p->k == T_DOT) {
                next(p);
                if (p->k != T_WORD || !next_is_lparen(p)) {
                    perr(p, p->tpos, "expected a method call after '.'");
                    return false;
                }
                if ((*method = method_lookup(p)) < 0)
                    return false;
                next(p);
            }
            break;
        }
        if (p->k != T_DOT)
            break;
        next(p);
        if (p->k != T_WORD) {
            perr(p, p->tpos, "expected a name after '.', found %s", tok_desc(p));
            return false;
        }
    }
    return resolve_field(p, at, name, f);
}

static bool parse_literal(struct parser *p, struct lit *l)
{
    if (p->k == T_STR) {
        l->type = VT_STRING;
        if (!(l->s = strdup(p->str))) {
            perr(p, p->tpos, "out of memory");
            return false;
        }
    } else if (p->k == T_INT) {
        l->type = VT_INT;
        l->i = p->ival;
    } else if (word_is(p, "true") || word_is(p, "false")) {
        l->type = VT_BOOL;
        l->b = word_is(p, "true");
    } else {
        perr(p, p->tpos, "expected a literal (a string, an integer, true or false), found %s",
             tok_desc(p));
        return false;
    }
    next(p);
    return true;
}

static bool parse_cmp(struct parser *p, struct enode *n)
{
    static const char *const opnames[] = {"==", "!=", "<", "<=", ">", ">="};
    size_t at = p->tpos;
    n->op = (enum ecmp)(p->k - T_EQ);
    next(p);
    if (!parse_literal(p, &n->lit))
        return false;
    const char *fname = n->f.def->name, *op = opnames[n->op];
    enum vtype ft = n->f.def->type;
    if (n->op >= C_LT) {
        if (ft != VT_INT || n->lit.type != VT_INT) {
            perr(p, at, "'%s' compares integers; '%s' is %s and the literal %s", op, fname,
                 type_name(ft), type_name(n->lit.type));
            return false;
        }
    } else if (ft == VT_LIST) {
        perr(p, at, "'%s' does not apply to the list '%s' (use \"name\" in %s)", op, fname, fname);
        return false;
    } else if (ft != n->lit.type) {
        perr(p, at, "'%s' compares %s ('%s') with %s", op, type_name(ft), fname,
             type_name(n->lit.type));
        return false;
    }
    return true;
}

static bool parse_in_list(struct parser *p, struct enode *n)
{
    size_t at = p->tpos;
    enum vtype ft = n->f.def->type;
    if (ft != VT_STRING && ft != VT_INT) {
        perr(p, at, "'in [...]' needs a string or integer field; '%s' is %s", n->f.def->name,
             type_name(ft));
        return false;
    }
    next(p);
    if (!expect(p, T_LB, "'[' after 'in'"))
        return false;
    next(p);
    for (;;) {
        if (n->nlist == EXPR_MAX_LIST) {
            perr(p, p->tpos, "list has more than %d items", EXPR_MAX_LIST);
            return false;
        }
        struct lit *l = realloc(n->list, (n->nlist + 1) * sizeof(*l));
        if (!l) {
            perr(p, p->tpos, "out of memory");
            return false;
        }
        n->list = l;
        memset(&l[n->nlist], 0, sizeof(*l));
        size_t lat = p->tpos;
        if (!parse_literal(p, &l[n->nlist++]))
            return false;
        if (l[n->nlist - 1].type != ft) {
            perr(p, lat, "list items must be %s like '%s'", type_name(ft), n->f.def->name);
            return false;
        }
        if (p->k == T_RB)
            break;
        if (!expect(p, T_COMMA, "',' or ']'"))
            return false;
        next(p);
    }
    next(p);
    return true;
}

static bool parse_method(struct parser *p, struct enode *n, int method, size_t at)
{
    n->m = (enum emethod)method;
    if (n->f.def->type != VT_STRING) {
        perr(p, at, "%s() needs a string field; '%s' is %s", method_names[method],
             n->f.def->name, type_name(n->f.def->type));
        return false;
    }
    next(p); /* past '(' */
    if (!expect(p, T_STR, "a string argument"))
        return false;
    size_t sat = p->tpos;
    if (!(n->str = strdup(p->str))) {
        perr(p, sat, "out of memory");
        return false;
    }
    n->slen = p->slen;
    next(p);
    if (!expect(p, T_RP, "')'"))
        return false;
    next(p);
    if (n->m == M_MATCHES) {
        char why[200];
        if (expr_regex_compile(n->str, &n->re, why, sizeof(why)) < 0) {
            perr(p, sat, "matches: %s", why);
            return false;
        }
        n->has_re = true;
    } else if (n->m == M_GLOB) {
        struct err *e = NULL;
        if (expr_glob_compile(n->str, &n->re, &e) < 0) {
            perr(p, sat, "glob: %s", err_msg(e));
            err_free(e);
            return false;
        }
        n->has_re = true;
    }
    return true;
}

static struct enode *parse_field_atom(struct parser *p)
{
    size_t at = p->tpos;
    int method;
    struct enode *n = node_new(p, E_BOOL);
    if (!n || !parse_field(p, &n->f, &method) || !count_atom(p, at))
        goto fail;
    if (method >= 0) {
        n->kind = E_METHOD;
        if (!parse_method(p, n, method, at))
            goto fail;
    } else if (p->k >= T_EQ && p->k <= T_GE) {
        n->kind = E_CMP;
        if (!parse_cmp(p, n))
            goto fail;
    } else if (word_is(p, "in")) {
        n->kind = E_IN;
        if (!parse_in_list(p, n))
            goto fail;
    } else if (n->f.def->type != VT_BOOL) {
        perr(p, at, "'%s' is %s: compare it (==, in, a method) or test has(%s)", n->f.def->name,
             type_name(n->f.def->type), n->f.def->name);
        goto fail;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

/* "name" in list_field */
static struct enode *parse_str_in(struct parser *p)
{
    size_t at = p->tpos;
    int method;
    struct enode *n = node_new(p, E_STR_IN);
    if (!n || !count_atom(p, at))
        goto fail;
    if (!(n->str = strdup(p->str))) {
        perr(p, at, "out of memory");
        goto fail;
    }
    n->slen = p->slen;
    next(p);
    if (!word_is(p, "in")) {
        perr(p, p->tpos, "expected 'in' after a string (\"name\" in model.tools), found %s",
             tok_desc(p));
        goto fail;
    }
    next(p);
    if (!expect(p, T_WORD, "a field") || !parse_field(p, &n->f, &method))
        goto fail;
    if (method >= 0 || n->f.def->type != VT_LIST) {
        perr(p, at, "'\"...\" in field' needs a list field; '%s' is %s", n->f.def->name,
             method >= 0 ? "followed by a method" : type_name(n->f.def->type));
        goto fail;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

static struct enode *parse_has(struct parser *p)
{
    size_t at = p->tpos;
    int method;
    struct enode *n = node_new(p, E_HAS);
    if (!n || !count_atom(p, at))
        goto fail;
    next(p); /* past "has"; the '(' is known to follow */
    next(p);
    if (!expect(p, T_WORD, "a field in has()") || !parse_field(p, &n->f, &method))
        goto fail;
    if (method >= 0) {
        perr(p, at, "has() takes a field, not a method call");
        goto fail;
    }
    if (!expect(p, T_RP, "')'"))
        goto fail;
    next(p);
    return n;
fail:
    node_free(n);
    return NULL;
}

static bool enter(struct parser *p, size_t at)
{
    if (++p->depth <= EXPR_MAX_NESTING)
        return true;
    perr(p, at, "nested deeper than %d levels", EXPR_MAX_NESTING);
    return false;
}

static struct enode *parse_primary(struct parser *p)
{
    size_t at = p->tpos;
    if (p->k == T_LP) {
        if (!enter(p, at))
            return NULL;
        next(p);
        struct enode *e = parse_or(p);
        if (!e || !expect(p, T_RP, "')'")) {
            node_free(e);
            return NULL;
        }
        p->depth--;
        next(p);
        return e;
    }
    if (p->k == T_STR)
        return parse_str_in(p);
    if (word_is(p, "true") || word_is(p, "false")) {
        struct enode *n = node_new(p, E_CONST);
        if (!n || !count_atom(p, at)) {
            free(n);
            return NULL;
        }
        n->cval = word_is(p, "true");
        next(p);
        return n;
    }
    if (word_is(p, "has") && next_is_lparen(p))
        return parse_has(p);
    if (p->k == T_WORD)
        return parse_field_atom(p);
    perr(p, at, "expected a condition, found %s", tok_desc(p));
    return NULL;
}

static struct enode *parse_not(struct parser *p)
{
    if (p->k != T_NOT)
        return parse_primary(p);
    if (!enter(p, p->tpos))
        return NULL;
    next(p);
    struct enode *kid = parse_not(p);
    if (!kid)
        return NULL;
    p->depth--;
    struct enode *n = node_new(p, E_NOT);
    if (!n) {
        node_free(kid);
        return NULL;
    }
    if (add_kid(p, n, kid) < 0) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* and = not { "&&" not } ; or = and { "||" and } : one n-ary node each. */
static struct enode *parse_chain(struct parser *p, enum tk op, enum ekind kind,
                                 struct enode *(*sub)(struct parser *))
{
    struct enode *first = sub(p);
    if (!first || p->k != op)
        return first;
    struct enode *n = node_new(p, kind);
    if (!n) {
        node_free(first);
        return NULL;
    }
    if (add_kid(p, n, first) < 0)
        goto fail;
    while (p->k == op) {
        next(p);
        struct enode *kid = sub(p);
        if (!kid || add_kid(p, n, kid) < 0)
            goto fail;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

static struct enode *parse_and(struct parser *p)
{
    return parse_chain(p, T_AND, E_AND, parse_not);
}

static struct enode *parse_or(struct parser *p)
{
    return parse_chain(p, T_OR, E_OR, parse_and);
}

/* ---- entry points ---- */

struct expr *expr_compile(const char *text, size_t len, enum expr_scope scope, struct err **errp)
{
    if (len > EXPR_MAX_LEN) {
        err_status(errp, 400, "expression is longer than %d bytes", EXPR_MAX_LEN);
        return NULL;
    }
    struct parser p = {.s = text, .len = len, .scope = scope, .errp = errp};
    p.str = malloc(len + 1);
    struct expr *e = calloc(1, sizeof(*e));
    if (!p.str || !e) {
        free(p.str);
        free(e);
        err_status(errp, 0, "out of memory");
        return NULL;
    }
    next(&p);
    if (p.k == T_EOF && !p.failed)
        perr(&p, 0, "empty expression");
    struct enode *root = p.failed ? NULL : parse_or(&p);
    if (root && p.k != T_EOF)
        perr(&p, p.tpos, "unexpected %s", tok_desc(&p));
    free(p.str);
    if (p.failed) {
        node_free(root);
        free(e);
        return NULL;
    }
    e->root = root;
    e->classes = p.classes;
    e->atoms = p.atoms;
    return e;
}

void expr_free(struct expr *e)
{
    if (!e)
        return;
    node_free(e->root);
    free(e);
}

unsigned expr_classes(const struct expr *e)
{
    return e->classes;
}

unsigned expr_atoms(const struct expr *e)
{
    return e->atoms;
}
