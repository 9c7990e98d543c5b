/* libFuzzer target for the policy expression language (src/lib/policy/expr.h,
 * network.md section 9): compiler (lexer, parser, type checker, regex and
 * glob checks) and evaluator.
 *
 * Input: one mode byte, then the rest.
 *   - mode % 4 in 0..2: the rest is expression text. It is compiled under
 *     every scope and, when it compiles, evaluated against a few request
 *     shapes (full, empty, DNS-only, model, oversized subjects). Checks:
 *     errors are 400s with a column inside the text; the limits hold
 *     (4 KiB, 64 atoms); only fields of the scope appear; an expression
 *     that compiles in one scope compiles the same in every scope its
 *     fields allow; evaluation is 0/1 (-1 only for a subject over 64 KiB,
 *     with a message, and short circuit skips it); and rewrites keep the
 *     meaning: " !(e) " == not e, "false || (e) && true" == e,
 *     "(true || (e)) && !(false && (e))" == 1 (each may only fail on the
 *     nesting, atom or length limit).
 *   - mode % 4 == 3: the rest drives a generator of well-typed expressions
 *     (every construct of the grammar, random whitespace and escapes,
 *     globs, literal regexes, sizes around every limit). Each generated
 *     expression carries its expected outcome, computed independently:
 *     compiles in exactly the scopes its fields allow and the limits admit,
 *     with the expected atom count, field classes and, for every request
 *     shape, the expected value (globs checked by a reference matcher).
 *     The text then also goes through the raw-text checks above.
 *   - mode % 8 == 7: "pattern NUL subject NUL subject...": the linear-time
 *     matcher the evaluator uses must agree with regexec on every `matches`
 *     pattern that loads, and with regexec and a reference matcher on
 *     globs.
 * Any broken invariant traps. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/expr.h"
#include "policy/expr_int.h" /* expr_regex_compile() */

/* expr_re.c (declared in expr_eval.c too until expr_int.h has it). */
int expr_re_linear_match(const char *pattern, bool glob, const char *subject, size_t len);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum expr_scope scopes[3] = {EXPR_SCOPE_NET, EXPR_SCOPE_MODEL, EXPR_SCOPE_MCP};

/* Field classes usable in each scope. */
static unsigned scope_classes(enum expr_scope s)
{
    unsigned any = EXPR_CLASS_PROCESS | EXPR_CLASS_VM;
    switch (s) {
    case EXPR_SCOPE_NET: return any | EXPR_CLASS_HTTP | EXPR_CLASS_DNS | EXPR_CLASS_CONN;
    case EXPR_SCOPE_MODEL: return any | EXPR_CLASS_HTTP | EXPR_CLASS_CONN | EXPR_CLASS_MODEL;
    case EXPR_SCOPE_MCP: return any | EXPR_CLASS_MCP;
    }
    return 0;
}

/* ---- request shapes ---- */

#define NSHAPES 5 /* evaluated with expected values in generator mode */
#define SUBJ_MAX 64

static const struct http1_header full_headers[] = {
    {.name = "User-Agent", .value = "curl/8.5.0"},
    {.name = "X-Token", .value = "abc"},
    {.name = "user-agent", .value = "second"},
};
static const struct http1_header model_headers[] = {
    {.name = "x-api-key", .value = "capsem-placeholder-1"},
    {.name = "Accept", .value = "text/event-stream"},
};
static const char *const full_tools[] = {"bash", "local__fetch_http"};

struct shapes {
    struct policy_request r[NSHAPES];
    char subj[SUBJ_MAX + 1]; /* the fuzz-chosen string of shape 4 */
    struct http1_header fuzz_header[2];
    const char *fuzz_tools[2];
};

static void shapes_init(struct shapes *s, const char *subj, int64_t num, bool flag, uint32_t ip)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->subj, sizeof(s->subj), "%s", subj);
    /* 0: everything present */
    s->r[0] = (struct policy_request){
        .http = {.host = "api.example.com", .port = 443, .has_port = true, .scheme = "https",
                 .method = "POST", .path = "/org/repo.git/git-receive-pack", .query = "a=1&b=2",
                 .upgrade = "websocket", .sni = "api.example.com", .headers = full_headers,
                 .nheaders = 3},
        .dns = {.qname = "a.example.com", .qtype = "TXT", .has_suspicious = true},
        .conn = {.dst_ip = 0xC0000207, .has_dst_ip = true, .dst_port = 443, .has_dst_port = true},
        .process = {.name = "curl", .exe = "/usr/bin/curl", .pid = 42, .has_pid = true},
        .vm = {.id = "vm-1", .name = "dev", .profile = "code"},
        .model = {.provider = "anthropic", .protocol = "anthropic-messages",
                  .name = "claude-opus-4", .stream = true, .has_stream = true,
                  .max_tokens = 64000, .has_max_tokens = true, .messages_count = 3,
                  .has_messages_count = true, .tools = full_tools, .ntools = 2,
                  .has_tools = true},
        .mcp = {.server = "local", .tool = "local__fetch_http", .method = "tools/call",
                .args = "{\"url\":\"https://wiki.corp.example/x\"}"},
    };
    /* 1: nothing present. 2: a DNS query. */
    s->r[2] = (struct policy_request){
        .dns = {.qname = "k3j4h5g6f7d8s9a0.exfil.example.com", .qtype = "TYPE65",
                .suspicious = true, .has_suspicious = true},
        .process = {.name = "dig", .pid = 0, .has_pid = true},
        .vm = {.id = "vm-2"},
    };
    /* 3: a model call (an empty tools list) */
    s->r[3] = (struct policy_request){
        .http = {.host = "api.anthropic.com", .port = 8443, .has_port = true, .scheme = "https",
                 .method = "GET", .path = "/v1/messages", .query = "",
                 .headers = model_headers, .nheaders = 2},
        .conn = {.dst_ip = 0x0A000001, .has_dst_ip = true},
        .model = {.provider = "openai", .protocol = "openai-chat", .name = "gpt-5",
                  .has_stream = true, .max_tokens = 0, .has_max_tokens = true,
                  .has_tools = true},
        .mcp = {.server = "github", .tool = "github__create_issue", .method = "tools/call",
                .args = "{}"},
    };
    /* 4: every string is the fuzz string */
    const char *v = s->subj;
    s->fuzz_header[0] = (struct http1_header){.name = "X-Token", .value = v};
    s->fuzz_header[1] = (struct http1_header){.name = "Accept", .value = "*/*"};
    s->fuzz_tools[0] = v;
    s->fuzz_tools[1] = "bash";
    s->r[4] = (struct policy_request){
        .http = {.host = v, .port = num, .has_port = true, .scheme = v, .method = v, .path = v,
                 .query = v, .upgrade = v, .sni = v, .headers = s->fuzz_header, .nheaders = 2},
        .dns = {.qname = v, .qtype = v, .suspicious = flag, .has_suspicious = true},
        .conn = {.dst_ip = ip, .has_dst_ip = true, .dst_port = num, .has_dst_port = true},
        .process = {.name = v, .exe = v, .pid = num, .has_pid = true},
        .vm = {.id = v, .name = v, .profile = v},
        .model = {.provider = v, .protocol = v, .name = v, .stream = !flag, .has_stream = true,
                  .max_tokens = num, .has_max_tokens = true, .messages_count = num,
                  .has_messages_count = true, .tools = s->fuzz_tools, .ntools = 2,
                  .has_tools = true},
        .mcp = {.server = v, .tool = v, .method = v, .args = v},
    };
}

/* A request whose every string is `big` (for the 64 KiB subject limit). */
static void big_shape(struct policy_request *r, const char *big)
{
    static const char *tools[1];
    static struct http1_header h[1];
    tools[0] = big;
    h[0] = (struct http1_header){.name = "User-Agent", .value = big};
    memset(r, 0, sizeof(*r));
    r->http.host = r->http.scheme = r->http.method = r->http.path = big;
    r->http.query = r->http.upgrade = r->http.sni = big;
    r->http.headers = h;
    r->http.nheaders = 1;
    r->dns.qname = r->dns.qtype = big;
    r->process.name = r->process.exe = big;
    r->vm.id = r->vm.name = r->vm.profile = big;
    r->model.provider = r->model.protocol = r->model.name = big;
    r->model.tools = tools;
    r->model.ntools = 1;
    r->model.has_tools = true;
    r->mcp.server = r->mcp.tool = r->mcp.method = r->mcp.args = big;
}

/* ---- raw-text checks ---- */

struct compiled {
    struct expr *x;
    char msg[400];
};

static void compile(const char *text, size_t len, enum expr_scope sc, struct compiled *c)
{
    struct err *e = NULL;
    c->x = expr_compile(text, len, sc, &e);
    c->msg[0] = '\0';
    if (c->x) {
        CHECK(e == NULL);
        return;
    }
    CHECK(e && e->msg && e->msg[0]);
    CHECK(e->status == 400);
    snprintf(c->msg, sizeof(c->msg), "%s", e->msg);
    if (len > EXPR_MAX_LEN) {
        CHECK(strcmp(e->msg, "expression is longer than 4096 bytes") == 0);
    } else {
        /* "column N: ..." with N inside the text (or just past its end). */
        unsigned long col = 0;
        int used = 0;
        CHECK(sscanf(e->msg, "column %lu: %n", &col, &used) == 1 && used > 0);
        CHECK(col >= 1 && col <= len + 1);
    }
    err_free(e);
}

/* Evaluates x on r; the result is 0 or 1 unless big is set, where -1 is
 * allowed and must carry the subject limit message. */
static int eval_checked(const struct expr *x, const struct policy_request *r, bool big)
{
    struct err *e = NULL;
    int v = expr_eval(x, r, &e);
    CHECK(v == 0 || v == 1 || (v == -1 && big));
    if (v == -1) {
        CHECK(e && strstr(e->msg, "byte limit"));
        err_free(e);
    } else {
        CHECK(e == NULL);
    }
    CHECK(expr_eval(x, r, NULL) == v); /* deterministic, errp optional */
    return v;
}

static char *big_subject;
static struct policy_request big_req;

/* Values on every shape (bit i), plus with_big the oversized one (bit 6:
 * true there, bit 7: -1 there). */
static unsigned eval_all(const struct expr *x, const struct shapes *sh, bool with_big)
{
    unsigned mask = 0;
    for (int i = 0; i < NSHAPES; i++)
        if (eval_checked(x, &sh->r[i], false))
            mask |= 1u << i;
    if (!with_big)
        return mask;
    int v = eval_checked(x, &big_req, true);
    if (v < 0)
        mask |= 0x80;
    else if (v)
        mask |= 0x40;
    return mask;
}

/* Compiles pre + text + post; returns its value mask, or -1 when it does
 * not compile (the error must then be one of the allowed limits). */
static long wrapped(const char *pre, const char *text, size_t len, const char *post,
                    enum expr_scope sc, const struct shapes *sh, bool atoms_may_fail,
                    unsigned *atoms)
{
    size_t pl = strlen(pre), ql = strlen(post);
    char *buf = malloc(pl + len + ql + 1);
    CHECK(buf);
    memcpy(buf, pre, pl);
    memcpy(buf + pl, text, len);
    memcpy(buf + pl + len, post, ql);
    struct compiled c;
    compile(buf, pl + len + ql, sc, &c);
    free(buf);
    if (!c.x) {
        CHECK(strstr(c.msg, "nested deeper than 16 levels") ||
              (atoms_may_fail && strstr(c.msg, "more than 64 atoms")) ||
              pl + len + ql > EXPR_MAX_LEN);
        return -1;
    }
    *atoms = expr_atoms(c.x);
    long m = (long)eval_all(c.x, sh, false); /* the 64 KiB shape: once, not per rewrite */
    expr_free(c.x);
    return m;
}

/* Compiles pre + text + mid + text + post (see wrapped()). */
static long wrapped2(const char *pre, const char *text, size_t len, const char *mid,
                     const char *post, enum expr_scope sc, const struct shapes *sh,
                     unsigned *atoms)
{
    size_t ml = strlen(mid);
    char *inner = malloc(len + ml + len + 1);
    CHECK(inner);
    memcpy(inner, text, len);
    memcpy(inner + len, mid, ml);
    memcpy(inner + len + ml, text, len);
    long m = wrapped(pre, inner, 2 * len + ml, post, sc, sh, true, atoms);
    free(inner);
    return m;
}

/* Every raw-text invariant for one text. */
static void raw_checks(const char *text, size_t len, const struct shapes *sh)
{
    struct compiled c[3];
    for (int i = 0; i < 3; i++)
        compile(text, len, scopes[i], &c[i]);
    unsigned ref_mask = 0;
    int ref = -1;
    for (int i = 0; i < 3; i++) {
        if (!c[i].x)
            continue;
        unsigned atoms = expr_atoms(c[i].x), cls = expr_classes(c[i].x);
        CHECK(len <= EXPR_MAX_LEN);
        CHECK(atoms >= 1 && atoms <= EXPR_MAX_ATOMS);
        CHECK((cls & ~scope_classes(scopes[i])) == 0);
        /* Every other scope allowing these classes compiles it the same way,
         * and a scope that does not allow them refuses it. */
        for (int j = 0; j < 3; j++) {
            bool allowed = (cls & ~scope_classes(scopes[j])) == 0;
            CHECK(!c[j].x == !allowed);
            if (c[j].x)
                CHECK(expr_atoms(c[j].x) == atoms && expr_classes(c[j].x) == cls);
            else
                CHECK(strstr(c[j].msg, "is not available in"));
        }
        unsigned mask = eval_all(c[i].x, sh, true);
        if (ref >= 0)
            CHECK(mask == ref_mask);
        ref = i;
        ref_mask = mask;
    }
    /* A second compile gives the same error. */
    if (!c[0].x) {
        struct compiled again;
        compile(text, len, scopes[0], &again);
        CHECK(!again.x && strcmp(again.msg, c[0].msg) == 0);
    }
    if (ref >= 0) {
        enum expr_scope sc = scopes[ref];
        unsigned atoms = expr_atoms(c[ref].x), a2 = 0;
        const unsigned all = (1u << NSHAPES) - 1, v = ref_mask & all;
        long m;
        /* Rewrites that negate or keep the value. */
        if ((m = wrapped(" \t\n!(", text, len, ")\r\n ", sc, sh, false, &a2)) >= 0)
            CHECK((unsigned)m == (~v & all) && a2 == atoms);
        if ((m = wrapped("false || (", text, len, ") && true", sc, sh, true, &a2)) >= 0)
            CHECK((unsigned)m == v && a2 == atoms + 2);
        if ((m = wrapped2("(true ||(", text, len, ")) && !(false&&(", "))", sc, sh, &a2)) >= 0)
            CHECK((unsigned)m == all && a2 == 2 * atoms + 2);
        /* Short circuit stops an evaluation error too. */
        if (ref_mask & 0x80) {
            struct compiled t;
            char *buf = malloc(len + 11);
            CHECK(buf);
            memcpy(buf, "true || (", 9);
            memcpy(buf + 9, text, len);
            buf[9 + len] = ')';
            compile(buf, len + 10, sc, &t);
            if (t.x) {
                CHECK(eval_checked(t.x, &big_req, true) == 1);
                expr_free(t.x);
            }
            free(buf);
        }
    }
    for (int i = 0; i < 3; i++)
        expr_free(c[i].x);
}

/* ---- generator ---- */

struct gen {
    const uint8_t *p;
    size_t n, i;
    char *out; /* rendered text */
    size_t len, cap;
    bool too_long;
    const struct shapes *sh;
    unsigned atoms, classes, scopes; /* scopes allowing every field used */
    unsigned depth, max_depth;
    bool bad_list, bad_int, bad_regex;
};

#define OUT_CAP 16384
#define GEN_DEPTH_MAX 19 /* a few past the limit */
#define GEN_ATOMS_SOFT 72

static unsigned take(struct gen *g)
{
    return g->i < g->n ? g->p[g->i++] : 0;
}

static void emit(struct gen *g, const char *s, size_t n)
{
    if (g->len + n >= g->cap) {
        g->too_long = true;
        return;
    }
    memcpy(g->out + g->len, s, n);
    g->len += n;
}

static void emits(struct gen *g, const char *s)
{
    emit(g, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) emitf(struct gen *g, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit(g, buf, (size_t)n);
}

/* Optional blanks (must=true: at least one). */
static void ws(struct gen *g, bool must)
{
    static const char *const blanks[8] = {"", "", "", " ", " ", "\t", "\n ", "\r\n"};
    const char *b = blanks[take(g) & 7];
    emits(g, must && !*b ? " " : b);
}

/* A string literal in either quote style, with escapes. */
static void emit_string(struct gen *g, const char *s, size_t n)
{
    char q = (take(g) & 1) ? '"' : '\'';
    unsigned style = take(g);
    emit(g, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q) {
            char e[2] = {'\\', (char)c};
            emit(g, e, 2);
        } else if (c == '\n') {
            emits(g, "\\n");
        } else if (c == '\t') {
            emits(g, (style & 1) ? "\\t" : "\\x09");
        } else if (c < 0x20 || c == 0x7f || ((style & 2) && (i % 3) == 0 && c < 0x80)) {
            emitf(g, (style & 4) ? "\\x%02x" : "\\x%02X", c);
        } else {
            emit(g, (const char *)&c, 1);
        }
    }
    emit(g, &q, 1);
}

enum gtype { G_STR, G_INT, G_BOOL, G_LIST };

/* The fields, with where request.h keeps them (the reference lookups read
 * the request directly, not through the evaluator). */
struct gfield {
    const char *name;
    enum gtype type;
    unsigned scopes, cls;
    size_t off, has_off; /* value; presence flag (ints, bools) */
};

#define NMS (EXPR_SCOPE_NET | EXPR_SCOPE_MODEL)
#define ALLS (EXPR_SCOPE_NET | EXPR_SCOPE_MODEL | EXPR_SCOPE_MCP)
#define AT(m) offsetof(struct policy_request, m)
#define STR(n, sc, cl, m) {n, G_STR, sc, cl, AT(m), 0}
#define NUM(n, t, sc, cl, m, h) {n, t, sc, cl, AT(m), AT(h)}

static const struct gfield gfields[] = {
    STR("http.host", NMS, EXPR_CLASS_HTTP, http.host),
    NUM("http.port", G_INT, NMS, EXPR_CLASS_HTTP, http.port, http.has_port),
    STR("http.scheme", NMS, EXPR_CLASS_HTTP, http.scheme),
    STR("http.method", NMS, EXPR_CLASS_HTTP, http.method),
    STR("http.path", NMS, EXPR_CLASS_HTTP, http.path),
    STR("http.query", NMS, EXPR_CLASS_HTTP, http.query),
    STR("http.header", NMS, EXPR_CLASS_HTTP, http.headers), /* looked up by key */
    STR("http.upgrade", NMS, EXPR_CLASS_HTTP, http.upgrade),
    STR("http.sni", NMS, EXPR_CLASS_HTTP, http.sni),
    STR("dns.qname", EXPR_SCOPE_NET, EXPR_CLASS_DNS, dns.qname),
    STR("dns.qtype", EXPR_SCOPE_NET, EXPR_CLASS_DNS, dns.qtype),
    NUM("dns.suspicious", G_BOOL, EXPR_SCOPE_NET, EXPR_CLASS_DNS, dns.suspicious,
        dns.has_suspicious),
    STR("conn.dst_ip", NMS, EXPR_CLASS_CONN, conn.dst_ip), /* as "a.b.c.d" */
    NUM("conn.dst_port", G_INT, NMS, EXPR_CLASS_CONN, conn.dst_port, conn.has_dst_port),
    STR("process.name", ALLS, EXPR_CLASS_PROCESS, process.name),
    STR("process.exe", ALLS, EXPR_CLASS_PROCESS, process.exe),
    NUM("process.pid", G_INT, ALLS, EXPR_CLASS_PROCESS, process.pid, process.has_pid),
    STR("vm.id", ALLS, EXPR_CLASS_VM, vm.id),
    STR("vm.name", ALLS, EXPR_CLASS_VM, vm.name),
    STR("vm.profile", ALLS, EXPR_CLASS_VM, vm.profile),
    STR("model.provider", EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.provider),
    STR("model.protocol", EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.protocol),
    STR("model.name", EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.name),
    NUM("model.stream", G_BOOL, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.stream,
        model.has_stream),
    NUM("model.max_tokens", G_INT, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.max_tokens,
        model.has_max_tokens),
    NUM("model.messages_count", G_INT, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL,
        model.messages_count, model.has_messages_count),
    NUM("model.tools", G_LIST, EXPR_SCOPE_MODEL, EXPR_CLASS_MODEL, model.tools,
        model.has_tools),
    STR("mcp.server", EXPR_SCOPE_MCP, EXPR_CLASS_MCP, mcp.server),
    STR("mcp.tool", EXPR_SCOPE_MCP, EXPR_CLASS_MCP, mcp.tool),
    STR("mcp.method", EXPR_SCOPE_MCP, EXPR_CLASS_MCP, mcp.method),
    STR("mcp.args", EXPR_SCOPE_MCP, EXPR_CLASS_MCP, mcp.args),
};
#define NGFIELDS (sizeof(gfields) / sizeof(gfields[0]))
#define F_MODEL_NAME (&gfields[22])

static const char *const header_keys[] = {"user-agent", "User-Agent", "x-token",
                                          "X-TOKEN",    "accept",     "x-api-key"};

static const void *field_at(const struct policy_request *r, size_t off)
{
    return (const char *)r + off;
}

/* A string field's value (NULL: absent); ip holds conn.dst_ip's text. */
static const char *ref_str(const struct policy_request *r, const struct gfield *f,
                           const char *hkey, char ip[16])
{
    if (!strcmp(f->name, "http.header")) {
        for (size_t i = 0; i < r->http.nheaders; i++)
            if (strcasecmp(r->http.headers[i].name, hkey) == 0)
                return r->http.headers[i].value;
        return NULL;
    }
    if (!strcmp(f->name, "conn.dst_ip")) {
        uint32_t a = r->conn.dst_ip;
        snprintf(ip, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        return r->conn.has_dst_ip ? ip : NULL;
    }
    return *(const char *const *)field_at(r, f->off);
}

static bool ref_present(const struct policy_request *r, const struct gfield *f)
{
    return *(const bool *)field_at(r, f->has_off);
}

static bool ref_int(const struct policy_request *r, const struct gfield *f, int64_t *v)
{
    *v = *(const int64_t *)field_at(r, f->off);
    return ref_present(r, f);
}

static bool ref_bool(const struct policy_request *r, const struct gfield *f, bool *v)
{
    *v = *(const bool *)field_at(r, f->off);
    return ref_present(r, f);
}

/* Reference glob (network.md 8.2), by backtracking with a memo. */
struct gm {
    const char *p, *s;
    size_t pn, sn;
    int8_t memo[66][SUBJ_MAX + 2];
};

static bool gmatch(struct gm *m, size_t pi, size_t si)
{
    if (m->memo[pi][si])
        return m->memo[pi][si] > 0;
    bool r = false;
    if (pi == m->pn) {
        r = si == m->sn;
    } else if (m->p[pi] == '*' && pi + 1 < m->pn && m->p[pi + 1] == '*') {
        bool seg_start = pi == 0 || m->p[pi - 1] == '/';
        size_t j = pi + 1;
        while (j + 1 < m->pn && m->p[j + 1] == '*')
            j++;
        if (seg_start && j + 1 < m->pn && m->p[j + 1] == '/') {
            /* zero or more whole segments: "" or anything ending in '/' */
            r = gmatch(m, j + 2, si);
            for (size_t k = si; !r && k < m->sn; k++)
                if (m->s[k] == '/')
                    r = gmatch(m, j + 2, k + 1);
        } else {
            for (size_t k = si; !r && k <= m->sn; k++)
                r = gmatch(m, j + 1, k);
        }
    } else if (m->p[pi] == '*') {
        for (size_t k = si;; k++) {
            if ((r = gmatch(m, pi + 1, k)) || k == m->sn || m->s[k] == '/')
                break;
        }
    } else if (m->p[pi] == '?') {
        r = si < m->sn && m->s[si] != '/' && gmatch(m, pi + 1, si + 1);
    } else {
        r = si < m->sn && m->s[si] == m->p[pi] && gmatch(m, pi + 1, si + 1);
    }
    m->memo[pi][si] = r ? 1 : -1;
    return r;
}

static bool ref_glob(const char *pat, size_t pn, const char *s)
{
    size_t sn = strlen(s);
    if (pn > 65 || sn > SUBJ_MAX + 1) {
        /* Outside the memo: only the fixed shapes' strings and short patterns. */
        CHECK(0);
    }
    static struct gm m;
    memset(&m, 0, sizeof(m));
    m.p = pat;
    m.pn = pn;
    m.s = s;
    m.sn = sn;
    return gmatch(&m, 0, 0);
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2))
            return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return false;
    }
    return true;
}

/* A string for a comparison or method on field f: another shape's value,
 * a slice of one, the fuzz string, or a fixed one. */
static size_t pick_string(struct gen *g, const struct gfield *f, const char *hkey, char *out,
                          size_t cap)
{
    static const char *const fixed[] = {"", "a", "curl", "/", "GET", "https", "*", "é€",
                                        "anthropic", "tools/call", "192.0.2.7", "bash"};
    unsigned k = take(g);
    const char *src;
    char ip[16];
    if (k % 4 == 0) {
        src = fixed[take(g) % (sizeof(fixed) / sizeof(fixed[0]))];
    } else {
        src = ref_str(&g->sh->r[take(g) % NSHAPES], f, hkey, ip);
        if (!src)
            src = g->sh->subj;
    }
    size_t n = strlen(src), a = 0, b = n;
    if (k & 0x10 && n) { /* a slice */
        a = take(g) % (n + 1);
        b = a + take(g) % (n - a + 1);
    }
    if (b - a >= cap)
        b = a + cap - 1;
    /* Do not cut a UTF-8 sequence (strings must stay valid). */
    while (a < b && ((unsigned char)src[a] & 0xC0) == 0x80)
        a++;
    while (b > a && b < n && ((unsigned char)src[b] & 0xC0) == 0x80)
        b--;
    memcpy(out, src + a, b - a);
    out[b - a] = '\0';
    /* One byte changed; flipping bit 0 keeps UTF-8 lead and continuation
     * bytes what they are, and no source byte is 0x01 (no NUL appears). */
    if (k & 0x20 && b > a)
        out[take(g) % (b - a)] ^= 0x01;
    CHECK(utf8_ok(out));
    return strlen(out);
}

static int64_t pick_int(struct gen *g, const struct gfield *f)
{
    int64_t v;
    switch (take(g) % 8) {
    case 0: return 0;
    case 1: return (INT64_C(1) << 53) - 1;
    case 2: return take(g) * 256 + take(g);
    case 3:
        if (take(g) == 0x55) {
            g->bad_int = true; /* one past the limit: a load error */
            return INT64_C(1) << 53;
        }
        return 65535;
    default:
        if (!ref_int(&g->sh->r[take(g) % NSHAPES], f, &v))
            v = 443;
        v += (int64_t)(take(g) % 3) - 1;
        return v < 0 ? 0 : v;
    }
}

static void emit_int(struct gen *g, int64_t v)
{
    if (take(g) & 1)
        emits(g, "00"); /* leading zeros are allowed */
    emitf(g, "%lld", (long long)v);
}

static unsigned all_mask(void)
{
    return (1u << NSHAPES) - 1;
}

static void use_field(struct gen *g, const struct gfield *f)
{
    g->classes |= f->cls;
    g->scopes &= f->scopes;
}

/* A field reference ("http.path" with optional blanks around the dots, or
 * http.header["key"]). */
static void emit_field(struct gen *g, const struct gfield *f, const char **hkey)
{
    const char *dot = strchr(f->name, '.');
    emit(g, f->name, (size_t)(dot - f->name));
    if (take(g) % 8 == 0) {
        ws(g, false);
        emits(g, ".");
        ws(g, false);
    } else {
        emits(g, ".");
    }
    emits(g, dot + 1);
    *hkey = NULL;
    if (!strcmp(f->name, "http.header")) {
        *hkey = header_keys[take(g) % (sizeof(header_keys) / sizeof(header_keys[0]))];
        ws(g, false);
        emits(g, "[");
        ws(g, false);
        emit_string(g, *hkey, strlen(*hkey));
        ws(g, false);
        emits(g, "]");
    }
}

static unsigned gen_or(struct gen *g);

/* ERE for "contains s" or "equals s": specials escaped. */
static size_t literal_regex(const char *s, bool anchored, char *out, size_t cap)
{
    size_t o = 0;
    if (anchored)
        out[o++] = '^';
    for (; *s && o + 4 < cap; s++) {
        if (strchr(".[]()*+?{}|^$\\", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    if (anchored)
        out[o++] = '$';
    out[o] = '\0';
    return o;
}

/* A glob over the string s: bytes kept, some replaced by wildcards. */
static size_t make_glob(struct gen *g, const char *s, char *out, size_t cap)
{
    static const char *const wild[] = {"*", "**", "?", "**/", "/**", "***", "*/", "/"};
    size_t o = 0, n = strlen(s);
    for (size_t i = 0; i <= n;) {
        /* One character (a whole UTF-8 sequence) at a time. */
        size_t cl = i < n ? 1 : 0;
        while (i + cl < n && ((unsigned char)s[i + cl] & 0xC0) == 0x80)
            cl++;
        if (o + 3 + cl + 1 > cap)
            break;
        unsigned k = take(g);
        if (k % 4 == 0) {
            const char *w = wild[(k >> 2) % 8];
            size_t wl = strlen(w);
            memcpy(out + o, w, wl);
            o += wl;
        }
        if ((k & 0x40) == 0) {
            memcpy(out + o, s + i, cl);
            o += cl;
        }
        if (i == n)
            break;
        i += cl;
    }
    out[o] = '\0';
    CHECK(utf8_ok(out));
    return o;
}

/* Optional blanks, then a token. */
static void tok(struct gen *g, const char *t)
{
    ws(g, false);
    emits(g, t);
}

/* The generators of atoms below emit text and return the atom's value on
 * every shape as a bit mask, computed from the request directly. */

static unsigned gen_has(struct gen *g, const struct gfield *f)
{
    const char *hkey;
    char ip[16];
    unsigned mask = 0;
    emits(g, "has");
    tok(g, "(");
    ws(g, false);
    emit_field(g, f, &hkey);
    tok(g, ")");
    for (int i = 0; i < NSHAPES; i++) {
        const struct policy_request *r = &g->sh->r[i];
        bool present = f->type == G_STR ? ref_str(r, f, hkey, ip) != NULL : ref_present(r, f);
        mask |= (unsigned)present << i;
    }
    return mask;
}

/* dns.suspicious, dns.suspicious == true, model.stream != false... */
static unsigned gen_bool(struct gen *g, const struct gfield *f, unsigned kind)
{
    const char *hkey;
    unsigned mask = 0;
    bool cmp = kind & 0x10, lit = kind & 0x20, ne = kind & 0x40;
    emit_field(g, f, &hkey);
    if (cmp) {
        tok(g, ne ? "!=" : "==");
        tok(g, lit ? "true" : "false");
    }
    for (int i = 0; i < NSHAPES; i++) {
        bool v;
        if (ref_bool(&g->sh->r[i], f, &v))
            mask |= (unsigned)(cmp ? ((v == lit) != ne) : v) << i;
    }
    return mask;
}

/* "name" in model.tools */
static unsigned gen_tools_in(struct gen *g, const struct gfield *f)
{
    const char *hkey;
    char s[SUBJ_MAX + 1];
    unsigned mask = 0;
    emit_string(g, s, pick_string(g, F_MODEL_NAME, NULL, s, sizeof(s)));
    ws(g, true);
    emits(g, "in");
    ws(g, true);
    emit_field(g, f, &hkey);
    for (int i = 0; i < NSHAPES; i++) {
        const struct policy_request *r = &g->sh->r[i];
        for (size_t t = 0; r->model.has_tools && r->model.tools && t < r->model.ntools; t++)
            if (!strcmp(r->model.tools[t], s))
                mask |= 1u << i;
    }
    return mask;
}

/* An integer field compared with a literal, or `in` a list (sometimes
 * around the 256-item limit). */
static unsigned gen_int(struct gen *g, const struct gfield *f, unsigned kind)
{
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    const char *hkey;
    int64_t list[300], v;
    size_t nl = 1;
    unsigned mask = 0, op = (kind >> 5) % 6;
    bool in = kind & 0x10;
    emit_field(g, f, &hkey);
    if (in) {
        nl = take(g) == 0xA5 ? 250 + take(g) % 12 : 1 + take(g) % 8;
        g->bad_list |= nl > EXPR_MAX_LIST;
        ws(g, true);
        emits(g, "in");
        tok(g, "[");
    } else {
        tok(g, ops[op]);
    }
    for (size_t k = 0; k < nl; k++) {
        list[k] = k < 8 ? pick_int(g, f) : (int64_t)k * 7;
        if (k)
            emits(g, ",");
        ws(g, false);
        emit_int(g, list[k]);
    }
    if (in)
        tok(g, "]");
    for (int i = 0; i < NSHAPES; i++) {
        if (!ref_int(&g->sh->r[i], f, &v))
            continue;
        int64_t lit = list[0];
        bool r = op == 0 ? v == lit : op == 1 ? v != lit : op == 2 ? v < lit
               : op == 3 ? v <= lit : op == 4 ? v > lit : v >= lit;
        for (size_t k = 0; in && k < nl; k++)
            r = k == 0 ? list[k] == v : r || list[k] == v;
        mask |= (unsigned)r << i;
    }
    return mask;
}

/* A string method: startsWith, endsWith, contains, matches (a literal
 * regex, anchored or not) or glob (the string with wildcards). */
static unsigned gen_method(struct gen *g, const struct gfield *f, const char *hkey,
                           const char *const *vals, unsigned op, unsigned kind)
{
    static const char *const methods[] = {"startsWith", "endsWith", "contains", "matches",
                                          "matches",    "glob",     "glob"};
    const char *name = methods[op - 3];
    char s[SUBJ_MAX + 1], arg[4 * SUBJ_MAX + 8];
    size_t n = pick_string(g, f, hkey, s, sizeof(s)), sl = n;
    bool anchored = (kind & 1) || n == 0, re = name[0] == 'm', glob = name[0] == 'g';
    if (re) {
        n = literal_regex(s, anchored, arg, sizeof(arg));
        g->bad_regex |= n > EXPR_MAX_REGEX;
    } else if (glob) {
        n = make_glob(g, s, arg, 66);
    } else {
        memcpy(arg, s, n + 1);
    }
    tok(g, ".");
    tok(g, name);
    tok(g, "(");
    ws(g, false);
    emit_string(g, arg, n);
    tok(g, ")");
    unsigned mask = 0;
    for (int i = 0; i < NSHAPES; i++) {
        const char *v = vals[i];
        size_t vl = v ? strlen(v) : 0;
        bool r = false;
        if (!v)
            continue;
        if (re)
            r = anchored ? strcmp(v, s) == 0 : strstr(v, s) != NULL;
        else if (glob)
            r = ref_glob(arg, n, v);
        else if (name[0] == 's')
            r = vl >= sl && memcmp(v, s, sl) == 0;
        else if (name[0] == 'e')
            r = vl >= sl && memcmp(v + vl - sl, s, sl) == 0;
        else
            r = strstr(v, s) != NULL;
        mask |= (unsigned)r << i;
    }
    return mask;
}

/* A string field: ==, !=, in [list], or a method. */
static unsigned gen_str(struct gen *g, const struct gfield *f, unsigned kind)
{
    const char *hkey, *vals[NSHAPES];
    char ipv[NSHAPES][16], items[8][SUBJ_MAX + 1];
    unsigned mask = 0, op = (kind >> 4) % 10;
    emit_field(g, f, &hkey);
    for (int i = 0; i < NSHAPES; i++)
        vals[i] = ref_str(&g->sh->r[i], f, hkey, ipv[i]);
    if (op >= 3)
        return gen_method(g, f, hkey, vals, op, kind);
    size_t nl = op == 2 ? 1 + take(g) % 8 : 1;
    if (op == 2) {
        ws(g, true);
        emits(g, "in");
        tok(g, "[");
    } else {
        tok(g, op ? "!=" : "==");
    }
    for (size_t k = 0; k < nl; k++) {
        size_t n = pick_string(g, f, hkey, items[k], sizeof(items[k]));
        if (k)
            emits(g, ",");
        ws(g, false);
        emit_string(g, items[k], n);
    }
    if (op == 2)
        tok(g, "]");
    for (int i = 0; i < NSHAPES; i++) {
        bool r = false;
        for (size_t k = 0; vals[i] && k < nl; k++)
            r |= strcmp(vals[i], items[k]) == 0;
        mask |= (unsigned)(vals[i] && r != (op == 1)) << i;
    }
    return mask;
}

/* One atom over a random field; returns its value mask. */
static unsigned gen_atom(struct gen *g)
{
    const struct gfield *f = &gfields[take(g) % NGFIELDS];
    unsigned kind = take(g);
    g->atoms++;
    use_field(g, f);
    if (kind % 5 == 0)
        return gen_has(g, f);
    switch (f->type) {
    case G_BOOL: return gen_bool(g, f, kind);
    case G_LIST: return gen_tools_in(g, f);
    case G_INT: return gen_int(g, f, kind);
    case G_STR: break;
    }
    return gen_str(g, f, kind);
}

static unsigned gen_primary(struct gen *g)
{
    unsigned k = take(g);
    bool budget = g->atoms < GEN_ATOMS_SOFT && !g->too_long && g->i < g->n;
    if (budget && k % 6 == 2 && g->depth < GEN_DEPTH_MAX) {
        emits(g, "(");
        ws(g, false);
        if (++g->depth > g->max_depth)
            g->max_depth = g->depth;
        unsigned m = gen_or(g);
        g->depth--;
        ws(g, false);
        emits(g, ")");
        return m;
    }
    if (!budget || k % 6 == 1) {
        g->atoms++;
        bool t = k & 0x40;
        emits(g, t ? "true" : "false");
        return t ? all_mask() : 0;
    }
    return gen_atom(g);
}

static unsigned gen_not(struct gen *g)
{
    unsigned k = take(g);
    if (g->atoms < GEN_ATOMS_SOFT && k % 5 == 1 && g->depth < GEN_DEPTH_MAX && g->i < g->n) {
        emits(g, "!");
        ws(g, false);
        if (++g->depth > g->max_depth)
            g->max_depth = g->depth;
        unsigned m = gen_not(g);
        g->depth--;
        return ~m & all_mask();
    }
    return gen_primary(g);
}

static unsigned gen_chain(struct gen *g, bool is_or)
{
    unsigned k = take(g), n = 1;
    if (g->atoms < GEN_ATOMS_SOFT && !g->too_long && g->i < g->n)
        n = k % 3 == 1 ? 1 + take(g) % 6 : 1 + k % 2;
    if (take(g) == 0xEE && g->atoms < 8)
        n = 64 + take(g) % 3; /* around the atom limit */
    unsigned m = is_or ? gen_chain(g, false) : gen_not(g);
    for (unsigned i = 1; i < n; i++) {
        ws(g, false);
        emits(g, is_or ? "||" : "&&");
        ws(g, false);
        unsigned x = is_or ? gen_chain(g, false) : gen_not(g);
        m = is_or ? (m | x) : (m & x);
    }
    return m;
}

static unsigned gen_or(struct gen *g)
{
    return gen_chain(g, true);
}

static void generated_checks(const uint8_t *d, size_t n, const struct shapes *sh)
{
    static char out[OUT_CAP];
    struct gen g = {.p = d, .n = n, .out = out, .cap = OUT_CAP, .sh = sh,
                    .scopes = ALLS};
    ws(&g, false);
    unsigned want = gen_or(&g);
    ws(&g, false);
    bool too_long = g.too_long || g.len > EXPR_MAX_LEN;
    bool limits_ok = !too_long && g.atoms <= EXPR_MAX_ATOMS && g.max_depth <= EXPR_MAX_NESTING &&
                     !g.bad_list && !g.bad_int && !g.bad_regex;
    int reasons = too_long + (g.atoms > EXPR_MAX_ATOMS) + (g.max_depth > EXPR_MAX_NESTING) +
                  g.bad_list + g.bad_int + g.bad_regex;
    if (getenv("FUZZ_EXPR_DEBUG")) { /* the text, escaped, and what is expected of it */
        fputs("text: ", stderr);
        for (size_t i = 0; i < g.len; i++) {
            unsigned char c = (unsigned char)out[i];
            fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
        }
        fprintf(stderr, "\natoms %u depth %u classes %#x scopes %#x want %#x reasons %d\n",
                g.atoms, g.max_depth, g.classes, g.scopes, want, reasons);
    }
    for (int i = 0; i < 3; i++) {
        struct compiled c;
        compile(out, g.len, scopes[i], &c);
        if (getenv("FUZZ_EXPR_DEBUG"))
            fprintf(stderr, "scope %d: %s\n", i, c.x ? "OK" : c.msg);
        bool scope_ok = (g.scopes & scopes[i]) != 0;
        if (!limits_ok || !scope_ok) {
            CHECK(!c.x);
            if (too_long && g.len > EXPR_MAX_LEN)
                CHECK(strstr(c.msg, "longer than 4096"));
            else if (reasons == 1 && scope_ok && g.atoms > EXPR_MAX_ATOMS)
                CHECK(strstr(c.msg, "more than 64 atoms"));
            else if (reasons == 1 && scope_ok && g.max_depth > EXPR_MAX_NESTING)
                CHECK(strstr(c.msg, "nested deeper than 16"));
            else if (reasons == 1 && scope_ok && g.bad_list)
                CHECK(strstr(c.msg, "more than 256 items"));
            else if (reasons == 1 && scope_ok && g.bad_int)
                CHECK(strstr(c.msg, "integer too large"));
            else if (reasons == 1 && scope_ok && g.bad_regex)
                CHECK(strstr(c.msg, "longer than 256"));
            else if (reasons == 0)
                CHECK(strstr(c.msg, "is not available in"));
            continue;
        }
        CHECK(c.x);
        CHECK(expr_atoms(c.x) == g.atoms);
        CHECK(expr_classes(c.x) == g.classes);
        for (int s = 0; s < NSHAPES; s++)
            CHECK(eval_checked(c.x, &sh->r[s], false) == (int)((want >> s) & 1));
        expr_free(c.x);
    }
    if (!too_long)
        raw_checks(out, g.len, sh);
}

/* ---- regex and glob matching: regexec vs the linear-time matcher ---- */

/* Input: pattern NUL subject NUL subject ... The evaluator matches with
 * expr_re_linear_match(); regexec on the same compiled pattern is the
 * reference, and the reference glob matcher for globs. */
static void regex_checks(const uint8_t *d, size_t n)
{
    char buf[1100];
    const char *subj[8];
    size_t ns = 0, o = 0;
    size_t plen = strnlen((const char *)d, n);
    if (plen >= 400)
        return;
    memcpy(buf, d, plen);
    buf[plen] = '\0';
    o = plen + 1;
    for (size_t i = plen + 1; i <= n && ns < 8 && o < sizeof(buf) - 1;) {
        size_t l = i < n ? strnlen((const char *)d + i, n - i) : 0;
        if (l > 200 || o + l + 1 > sizeof(buf))
            break;
        memcpy(buf + o, d + i, l);
        buf[o + l] = '\0';
        subj[ns++] = buf + o;
        o += l + 1;
        i += l + 1;
        if (i > n)
            break;
    }
    if (ns == 0)
        subj[ns++] = "";
    const char *pat = buf;
    char why[200];
    regex_t mine, plain;
    if (expr_regex_compile(pat, &mine, why, sizeof(why)) == 0) {
        CHECK(regcomp(&plain, pat, REG_EXTENDED | REG_NOSUB) == 0);
        for (size_t k = 0; k < ns; k++) {
            bool want = regexec(&plain, subj[k], 0, NULL, 0) == 0;
            int got = expr_re_linear_match(pat, false, subj[k], strlen(subj[k]));
            CHECK(got == -1 || got == want);
            /* Only rare bracket forms are left to regexec. */
            CHECK(got >= 0 || strchr(pat, '['));
            CHECK(expr_regex_match(&mine, subj[k]) == want);
        }
        regfree(&plain);
        regfree(&mine);
    }
    regex_t g;
    if (expr_glob_compile(pat, &g, NULL) == 0) {
        for (size_t k = 0; k < ns; k++) {
            bool want = expr_regex_match(&g, subj[k]);
            int got = expr_re_linear_match(pat, true, subj[k], strlen(subj[k]));
            CHECK(got == want);
            if (plen <= 65 && strlen(subj[k]) <= SUBJ_MAX)
                CHECK(ref_glob(pat, plen, subj[k]) == want);
        }
        regfree(&g);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!big_subject) {
        CHECK(strcmp(F_MODEL_NAME->name, "model.name") == 0);
        big_subject = malloc(EXPR_MAX_SUBJECT + 2);
        CHECK(big_subject);
        memset(big_subject, 'a', EXPR_MAX_SUBJECT + 1);
        big_subject[EXPR_MAX_SUBJECT + 1] = '\0'; /* one past the limit */
        big_shape(&big_req, big_subject);
    }
    unsigned mode = data[0];
    data++;
    size--;
    /* Shape 4 takes its string and numbers from the input's tail. */
    char subj[SUBJ_MAX + 1];
    size_t sl = 0;
    for (size_t i = size > 24 ? size - 24 : 0; i < size && sl < 24; i++) {
        unsigned char c = data[i];
        subj[sl++] = c >= 0x20 && c < 0x7f ? (char)c : (char)("/.-*?a" [c % 6]);
    }
    subj[sl] = '\0';
    int64_t num = size >= 3 ? (data[0] << 16 | data[1] << 8 | data[2]) : 443;
    static struct shapes sh;
    shapes_init(&sh, subj, num, size && (data[0] & 1), size >= 4 ? (uint32_t)data[3] << 24 | 7 : 0);
    if (mode % 8 == 7)
        regex_checks(data, size);
    else if (mode % 4 == 3)
        generated_checks(data, size, &sh);
    else
        raw_checks((const char *)data, size, &sh);
    return 0;
}
