/* HTTP/1.x request parser state machine and the client response-head parser.
 * Helpers, writers and status texts are in http1_util.c. Strictness rules are
 * listed in docs/http.md; every check runs on complete lines, and length
 * limits are checked against the bytes seen so far, so the outcome does not
 * depend on how the input was split across feed calls. */
#include "net/http1.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

enum pstate {
    S_REQ_LINE,
    S_HEADERS,
    S_BODY_LEN,
    S_CHUNK_SIZE,
    S_CHUNK_DATA,
    S_CHUNK_CR,
    S_CHUNK_LF,
    S_TRAILERS,
    S_DONE_PENDING, /* body finished; DONE not yet reported */
    S_DONE,         /* DONE reported; the next feed starts a new message */
    S_ERROR,
};

/* Offsets into the head buffer (it may move while it grows). */
struct field_off {
    size_t name, name_len, value, value_len;
};

/* Keep-alive connections give back a head buffer that grew past this. */
#define HEAD_KEEP_BYTES 16384
/* Empty lines tolerated before a request line (RFC 9112 section 2.2). */
#define MAX_LEADING_EMPTY 1

struct http1_parser {
    struct http1_limits lim;
    enum pstate st;
    struct buf head;   /* request line and field lines; each CR replaced by NUL */
    size_t line_start; /* where the line being collected starts in head */
    size_t target_off; /* request target in head (the method is at 0) */
    size_t block_used; /* header block bytes so far (CRLFs counted) */
    unsigned empty_lines;
    struct field_off *offs; /* lim.max_fields entries */
    struct http1_header *hdrs;
    size_t nfields;
    struct http1_request req;
    bool have_req;
    struct buf line;     /* chunk-size and trailer lines */
    size_t trailer_used; /* trailer section bytes so far */
    uint64_t remaining;  /* body bytes left (Content-Length) or left in this chunk */
    uint64_t body_total; /* decoded chunked bytes so far */
    const uint8_t *body_ptr;
    size_t body_len;
    enum http1_error err;
    char msg[192];
};

void http1_limits_default(struct http1_limits *l)
{
    l->max_request_line = 8192;
    l->max_header_block = 65536;
    l->max_fields = 100;
    l->max_field_line = 16384;
    l->max_chunk_line = 1024;
    l->max_trailers = 8192;
    l->max_body = HTTP1_DEFAULT_MAX_BODY;
}

static const struct {
    const char *reason;
    int status;
} error_info[] = {
    [HTTP1_ERR_NONE] = {"none", 0},
    [HTTP1_ERR_BAD_REQUEST] = {"bad_request", 400},
    [HTTP1_ERR_BAD_HOST] = {"bad_host", 400},
    [HTTP1_ERR_AMBIGUOUS_LENGTH] = {"ambiguous_length", 400},
    [HTTP1_ERR_BAD_CHUNKED] = {"bad_chunked", 400},
    [HTTP1_ERR_CLIENT_ABORTED] = {"client_aborted", 400},
    [HTTP1_ERR_BODY_TOO_LARGE] = {"body_too_large", 413},
    [HTTP1_ERR_URI_TOO_LONG] = {"uri_too_long", 414},
    [HTTP1_ERR_HEADERS_TOO_LARGE] = {"headers_too_large", 431},
    [HTTP1_ERR_UNSUPPORTED] = {"unsupported", 501},
    [HTTP1_ERR_VERSION] = {"version_not_supported", 505},
    [HTTP1_ERR_INTERNAL] = {"internal", 500},
};

const char *http1_error_reason(enum http1_error e)
{
    if ((size_t)e >= ARRAY_SIZE(error_info))
        return "internal";
    return error_info[e].reason;
}

int http1_error_status(enum http1_error e)
{
    if ((size_t)e >= ARRAY_SIZE(error_info))
        return 500;
    return error_info[e].status;
}

static __attribute__((format(printf, 3, 4))) enum http1_event
fail(struct http1_parser *p, enum http1_error e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
    va_end(ap);
    p->err = e;
    p->st = S_ERROR;
    p->have_req = false;
    return HTTP1_ERROR;
}

struct http1_parser *http1_parser_new(const struct http1_limits *limits, struct err **errp)
{
    struct http1_parser *p = calloc(1, sizeof(*p));
    if (!p) {
        err_set(errp, ENOMEM, "http1 parser: out of memory");
        return NULL;
    }
    if (limits)
        p->lim = *limits;
    else
        http1_limits_default(&p->lim);
    if (p->lim.max_fields == 0 || p->lim.max_fields > 100000 || p->lim.max_request_line == 0 ||
        p->lim.max_header_block < 2 || p->lim.max_chunk_line == 0 || p->lim.max_trailers < 2) {
        free(p);
        err_status(errp, 500, "http1 parser: invalid limits");
        return NULL;
    }
    p->offs = calloc(p->lim.max_fields, sizeof(*p->offs));
    p->hdrs = calloc(p->lim.max_fields, sizeof(*p->hdrs));
    if (!p->offs || !p->hdrs) {
        http1_parser_free(p);
        err_set(errp, ENOMEM, "http1 parser: out of memory");
        return NULL;
    }
    buf_init(&p->head, p->lim.max_request_line + 2 + p->lim.max_header_block);
    buf_init(&p->line, MAX(p->lim.max_chunk_line + 2, p->lim.max_trailers));
    p->st = S_REQ_LINE;
    return p;
}

void http1_parser_free(struct http1_parser *p)
{
    if (!p)
        return;
    buf_free(&p->head);
    buf_free(&p->line);
    free(p->offs);
    free(p->hdrs);
    free(p);
}

static void reset_message(struct http1_parser *p)
{
    if (p->head.cap > HEAD_KEEP_BYTES)
        buf_free(&p->head);
    if (p->line.cap > HEAD_KEEP_BYTES)
        buf_free(&p->line);
    buf_reset(&p->head);
    buf_reset(&p->line);
    p->line_start = 0;
    p->block_used = 0;
    p->empty_lines = 0;
    p->nfields = 0;
    memset(&p->req, 0, sizeof(p->req));
    p->have_req = false;
    p->trailer_used = 0;
    p->remaining = 0;
    p->body_total = 0;
    p->st = S_REQ_LINE;
}

enum take { TAKE_MORE, TAKE_LINE, TAKE_LONG, TAKE_NOMEM };

/* Collects one line into acc, where it started at offset start. The line,
 * LF included, may be at most `allow` bytes. The LF is consumed but not
 * stored. n must be > 0. */
static enum take take_line(struct buf *acc, size_t start, size_t allow, const uint8_t *d, size_t n,
                           size_t *used)
{
    size_t cur = acc->len - start;
    size_t window = allow > cur ? allow - cur : 0;
    size_t scan = MIN(n, window);
    const uint8_t *lf = scan ? memchr(d, '\n', scan) : NULL;
    size_t take = lf ? (size_t)(lf - d) : scan;

    if (buf_append(acc, d, take) < 0)
        return TAKE_NOMEM;
    *used = lf ? take + 1 : take;
    if (lf)
        return TAKE_LINE;
    return scan == window ? TAKE_LONG : TAKE_MORE;
}

/* ---- request line ---- */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool scheme_valid(const char *t)
{
    if (!is_alpha((unsigned char)t[0]))
        return false;
    for (size_t i = 1; t[i]; i++) {
        int c = (unsigned char)t[i];
        if (c == ':')
            return true;
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.')
            return false;
    }
    return false;
}

static enum http1_event classify_target(struct http1_parser *p, const char *method,
                                        const char *target)
{
    bool connect = strcmp(method, "CONNECT") == 0;

    if (strchr(target, '#'))
        return fail(p, HTTP1_ERR_BAD_REQUEST, "request target contains a fragment ('#')");
    if (strcmp(target, "*") == 0) {
        if (strcmp(method, "OPTIONS") != 0)
            return fail(p, HTTP1_ERR_BAD_REQUEST, "target '*' is only valid with OPTIONS");
        p->req.form = HTTP1_TARGET_ASTERISK;
    } else if (connect) {
        if (strpbrk(target, "/?@") || http1_host_split(target, NULL, NULL, NULL) < 0 ||
            !strchr(target, ':'))
            return fail(p, HTTP1_ERR_BAD_REQUEST, "CONNECT needs a host:port target");
        p->req.form = HTTP1_TARGET_AUTHORITY;
    } else if (target[0] == '/') {
        p->req.form = HTTP1_TARGET_ORIGIN;
    } else if (scheme_valid(target)) {
        p->req.form = HTTP1_TARGET_ABSOLUTE;
    } else {
        return fail(p, HTTP1_ERR_BAD_REQUEST, "invalid request target");
    }
    return HTTP1_NEED_MORE;
}

/* line: NUL-terminated request line of len bytes (CRLF removed). */
static enum http1_event on_request_line(struct http1_parser *p, char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\r')
            return fail(p, HTTP1_ERR_BAD_REQUEST, "bare CR in request line");
        if (c < 0x20 || c >= 0x7f)
            return fail(p, HTTP1_ERR_BAD_REQUEST, "invalid byte 0x%02x in request line", c);
    }
    char *sp1 = memchr(line, ' ', len);
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || sp1 == line || !sp2 || sp2 == sp1 + 1 || strchr(sp2 + 1, ' '))
        return fail(p, HTTP1_ERR_BAD_REQUEST,
                    "malformed request line (expected: METHOD SP target SP HTTP/1.1)");
    *sp1 = '\0';
    *sp2 = '\0';
    if (!http1_token_valid(line, (size_t)(sp1 - line)))
        return fail(p, HTTP1_ERR_BAD_REQUEST, "invalid character in request method");

    const char *v = sp2 + 1;
    if (strlen(v) != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
        !is_digit(v[7]))
        return fail(p, HTTP1_ERR_BAD_REQUEST, "malformed HTTP version in request line");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(p, HTTP1_ERR_VERSION, "HTTP version %s is not supported (use 1.0 or 1.1)", v);
    p->req.version_minor = v[7] - '0';
    p->target_off = (size_t)(sp1 + 1 - line);
    return classify_target(p, line, sp1 + 1);
}

static enum http1_event step_request_line(struct http1_parser *p, const uint8_t *d, size_t n,
                                          size_t *used)
{
    switch (take_line(&p->head, 0, p->lim.max_request_line + 2, d, n, used)) {
    case TAKE_MORE:
        return HTTP1_NEED_MORE;
    case TAKE_LONG:
        return fail(p, HTTP1_ERR_URI_TOO_LONG, "request line longer than %zu bytes",
                    p->lim.max_request_line);
    case TAKE_NOMEM:
        return fail(p, HTTP1_ERR_INTERNAL, "out of memory");
    case TAKE_LINE:
        break;
    }
    char *line = (char *)p->head.data;
    size_t len = p->head.len;
    if (len == 0 || line[len - 1] != '\r')
        return fail(p, HTTP1_ERR_BAD_REQUEST, "request line not terminated by CRLF (bare LF)");
    if (len == 1) {
        /* Empty line before the request: tolerated once (RFC 9112 2.2). */
        buf_reset(&p->head);
        if (++p->empty_lines > MAX_LEADING_EMPTY)
            return fail(p, HTTP1_ERR_BAD_REQUEST, "empty lines before the request line");
        return HTTP1_NEED_MORE;
    }
    line[len - 1] = '\0';
    enum http1_event ev = on_request_line(p, line, len - 1);
    if (ev == HTTP1_ERROR)
        return ev;
    p->line_start = p->head.len;
    p->st = S_HEADERS;
    return HTTP1_NEED_MORE;
}

/* ---- header fields ---- */

struct field_span {
    size_t name_len, value, value_len; /* value is an offset into the line */
};

/* Checks one field line (CRLF removed) and locates name and value. Returns
 * NULL when valid, else a static message saying what is wrong. */
static const char *field_line_check(const char *line, size_t len, struct field_span *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\r')
            return "bare CR in header field line";
        if (c == 0)
            return "NUL in header field line";
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "control character in header field line";
    }
    if (len > 0 && (line[0] == ' ' || line[0] == '\t'))
        return "folded header line (obs-fold) is not allowed";
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return "header field line without a colon";
    size_t nlen = (size_t)(colon - line);
    if (nlen == 0)
        return "empty header field name";
    if (line[nlen - 1] == ' ' || line[nlen - 1] == '\t')
        return "whitespace between header field name and colon";
    if (!http1_token_valid(line, nlen))
        return "invalid character in header field name";
    size_t vs = nlen + 1, ve = len;
    while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
        vs++;
    while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
        ve--;
    out->name_len = nlen;
    out->value = vs;
    out->value_len = ve - vs;
    return NULL;
}

static enum http1_event on_field_line(struct http1_parser *p, char *line, size_t len)
{
    struct field_span sp;
    const char *why = field_line_check(line, len, &sp);
    if (why)
        return fail(p, HTTP1_ERR_BAD_REQUEST, "%s", why);
    if (p->nfields >= p->lim.max_fields)
        return fail(p, HTTP1_ERR_HEADERS_TOO_LARGE, "more than %zu header fields",
                    p->lim.max_fields);
    line[sp.name_len] = '\0';
    line[sp.value + sp.value_len] = '\0';
    size_t base = (size_t)((uint8_t *)line - p->head.data);
    p->offs[p->nfields++] = (struct field_off){
        .name = base,
        .name_len = sp.name_len,
        .value = base + sp.value,
        .value_len = sp.value_len,
    };
    return HTTP1_NEED_MORE;
}

static enum http1_event finish_head(struct http1_parser *p);

static enum http1_event step_headers(struct http1_parser *p, const uint8_t *d, size_t n,
                                     size_t *used)
{
    size_t field_allow = p->lim.max_field_line + 2;
    size_t block_allow = p->lim.max_header_block - p->block_used;
    switch (take_line(&p->head, p->line_start, MIN(field_allow, block_allow), d, n, used)) {
    case TAKE_MORE:
        return HTTP1_NEED_MORE;
    case TAKE_LONG:
        if (field_allow <= block_allow)
            return fail(p, HTTP1_ERR_HEADERS_TOO_LARGE, "header field line longer than %zu bytes",
                        p->lim.max_field_line);
        return fail(p, HTTP1_ERR_HEADERS_TOO_LARGE, "header block larger than %zu bytes",
                    p->lim.max_header_block);
    case TAKE_NOMEM:
        return fail(p, HTTP1_ERR_INTERNAL, "out of memory");
    case TAKE_LINE:
        break;
    }
    char *line = (char *)p->head.data + p->line_start;
    size_t len = p->head.len - p->line_start;
    if (len == 0 || line[len - 1] != '\r')
        return fail(p, HTTP1_ERR_BAD_REQUEST, "header line not terminated by CRLF (bare LF)");
    p->block_used += len + 1;
    line[len - 1] = '\0';
    if (len == 1)
        return finish_head(p);
    enum http1_event ev = on_field_line(p, line, len - 1);
    p->line_start = p->head.len;
    return ev;
}

/* ---- head semantics ---- */

static enum http1_event check_host(struct http1_parser *p)
{
    size_t pos = 0, count = 0;
    const struct http1_header *h, *first = NULL;
    while ((h = http1_header_find(p->hdrs, p->nfields, "host", &pos))) {
        if (!first)
            first = h;
        count++;
    }
    if (count > 1)
        return fail(p, HTTP1_ERR_BAD_HOST, "more than one Host header field");
    if (count == 0 && p->req.version_minor == 1)
        return fail(p, HTTP1_ERR_BAD_HOST, "HTTP/1.1 request without a Host header field");
    if (first && http1_host_split(first->value, NULL, NULL, NULL) < 0)
        return fail(p, HTTP1_ERR_BAD_HOST, "invalid Host header field");
    p->req.host = first ? first->value : NULL;
    return HTTP1_NEED_MORE;
}

/* Walks the comma-separated elements of every field named `name`.
 * Returns the number of elements; calls fn on each trimmed element. */
static void each_element(const struct http1_header *hs, size_t n, const char *name,
                         void (*fn)(void *ctx, const char *e, size_t len), void *ctx)
{
    size_t pos = 0;
    const struct http1_header *h;
    while ((h = http1_header_find(hs, n, name, &pos))) {
        const char *s = h->value, *end = h->value + h->value_len;
        for (;;) {
            const char *comma = memchr(s, ',', (size_t)(end - s));
            const char *e = comma ? comma : end;
            const char *a = s, *b = e;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            fn(ctx, a, (size_t)(b - a));
            if (!comma)
                break;
            s = comma + 1;
        }
    }
}

struct te_scan {
    int elements, chunked, others, empty;
    bool last_chunked;
};

static void te_element(void *ctx, const char *e, size_t len)
{
    struct te_scan *t = ctx;
    t->elements++;
    if (len == 0) {
        t->empty++;
        return;
    }
    t->last_chunked = len == 7 && strncasecmp(e, "chunked", 7) == 0;
    if (t->last_chunked)
        t->chunked++;
    else
        t->others++;
}

struct cl_scan {
    int elements;
    bool bad;
    const char *digits; /* first value, leading zeros stripped */
    size_t ndigits;
    bool differ;
};

static void cl_element(void *ctx, const char *e, size_t len)
{
    struct cl_scan *c = ctx;
    c->elements++;
    if (len == 0) {
        c->bad = true;
        return;
    }
    for (size_t i = 0; i < len; i++)
        if (!is_digit(e[i])) {
            c->bad = true;
            return;
        }
    while (len > 1 && e[0] == '0') {
        e++;
        len--;
    }
    if (!c->digits) {
        c->digits = e;
        c->ndigits = len;
    } else if (len != c->ndigits || memcmp(e, c->digits, len) != 0) {
        c->differ = true;
    }
}

static enum http1_event check_te(struct http1_parser *p)
{
    struct te_scan t = {0};
    each_element(p->hdrs, p->nfields, "transfer-encoding", te_element, &t);
    if (p->req.version_minor == 0)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "Transfer-Encoding in an HTTP/1.0 request");
    if (http1_header_get(p->hdrs, p->nfields, "content-length"))
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH,
                    "both Content-Length and Transfer-Encoding are present");
    if (t.empty)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "empty transfer coding in Transfer-Encoding");
    if (!t.last_chunked)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "chunked is not the final transfer coding");
    if (t.chunked > 1)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "chunked applied more than once");
    if (t.others)
        return fail(p, HTTP1_ERR_UNSUPPORTED, "transfer codings other than chunked");
    p->req.body = HTTP1_BODY_CHUNKED;
    return HTTP1_NEED_MORE;
}

static enum http1_event check_framing(struct http1_parser *p)
{
    if (http1_header_get(p->hdrs, p->nfields, "transfer-encoding"))
        return check_te(p);
    struct cl_scan c = {0};
    each_element(p->hdrs, p->nfields, "content-length", cl_element, &c);
    if (c.elements == 0) {
        p->req.body = HTTP1_BODY_EMPTY;
        return HTTP1_NEED_MORE;
    }
    if (c.bad)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "non-numeric Content-Length");
    if (c.differ)
        return fail(p, HTTP1_ERR_AMBIGUOUS_LENGTH, "differing Content-Length values");
    uint64_t v = 0;
    bool over = c.ndigits > 19;
    for (size_t i = 0; !over && i < c.ndigits; i++)
        v = v * 10 + (uint64_t)(c.digits[i] - '0');
    if (over || v > p->lim.max_body)
        return fail(p, HTTP1_ERR_BODY_TOO_LARGE, "request body larger than %llu bytes",
                    (unsigned long long)p->lim.max_body);
    p->req.content_length = v;
    p->req.body = v ? HTTP1_BODY_LENGTH : HTTP1_BODY_EMPTY;
    return HTTP1_NEED_MORE;
}

static void check_connection(struct http1_parser *p)
{
    const struct http1_header *h = p->hdrs;
    size_t n = p->nfields;
    bool close = http1_header_has_token(h, n, "connection", "close");
    bool ka = http1_header_has_token(h, n, "connection", "keep-alive");
    p->req.keep_alive = p->req.version_minor == 1 ? !close : (ka && !close);
    p->req.upgrade = p->req.version_minor == 1 &&
                     http1_header_has_token(h, n, "connection", "upgrade") &&
                     http1_header_get(h, n, "upgrade") != NULL;

    size_t pos = 0;
    const struct http1_header *e = http1_header_find(h, n, "expect", &pos);
    if (!e)
        p->req.expect = HTTP1_EXPECT_NONE;
    else if (strcasecmp(e->value, "100-continue") == 0 && !http1_header_find(h, n, "expect", &pos))
        p->req.expect = p->req.version_minor == 1 ? HTTP1_EXPECT_CONTINUE : HTTP1_EXPECT_NONE;
    else
        p->req.expect = HTTP1_EXPECT_OTHER;
}

static enum http1_event finish_head(struct http1_parser *p)
{
    for (size_t i = 0; i < p->nfields; i++) {
        const struct field_off *o = &p->offs[i];
        p->hdrs[i] = (struct http1_header){
            .name = (const char *)p->head.data + o->name,
            .value = (const char *)p->head.data + o->value,
            .name_len = o->name_len,
            .value_len = o->value_len,
        };
    }
    /* The head buffer no longer moves: point into it now. */
    p->req.method = (const char *)p->head.data;
    p->req.target = p->req.method + p->target_off;
    p->req.headers = p->hdrs;
    p->req.nheaders = p->nfields;

    if (check_host(p) == HTTP1_ERROR || check_framing(p) == HTTP1_ERROR)
        return HTTP1_ERROR;
    check_connection(p);
    p->have_req = true;
    if (p->req.body == HTTP1_BODY_LENGTH) {
        p->remaining = p->req.content_length;
        p->st = S_BODY_LEN;
    } else if (p->req.body == HTTP1_BODY_CHUNKED) {
        p->st = S_CHUNK_SIZE;
    } else {
        p->st = S_DONE_PENDING;
    }
    return HTTP1_HEAD;
}

/* ---- chunked body ---- */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t skip_token(const char *s, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && http1_token_valid(s + j, 1))
        j++;
    return j;
}

/* quoted-string starting at s[i] == '"'; returns the index after the closing
 * quote, or 0 when malformed. */
static size_t skip_quoted(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i >= n)
                return 0;
            c = (unsigned char)s[i];
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 0;
}

/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) */
static bool chunk_ext_valid(const char *s, size_t i, size_t n)
{
    for (;;) {
        if (i == n)
            return true;
        i = skip_ws(s, i, n);
        if (i == n || s[i] != ';')
            return false; /* whitespace only before ';' (no trailing BWS) */
        i = skip_ws(s, i + 1, n);
        size_t j = skip_token(s, i, n);
        if (j == i)
            return false;
        i = skip_ws(s, j, n);
        if (i < n && s[i] == '=') {
            i = skip_ws(s, i + 1, n);
            if (i < n && s[i] == '"') {
                j = skip_quoted(s, i, n);
                if (j == 0)
                    return false;
            } else {
                j = skip_token(s, i, n);
                if (j == i)
                    return false;
            }
            i = j;
        }
    }
}

#define MAX_CHUNK_SIZE (1ULL << 40)

static enum http1_event on_chunk_size(struct http1_parser *p, const char *s, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && hex_digit((unsigned char)s[i]) >= 0; i++) {
        v = v * 16 + (uint64_t)hex_digit((unsigned char)s[i]);
        if (v > MAX_CHUNK_SIZE)
            return fail(p, HTTP1_ERR_BAD_CHUNKED, "chunk size larger than 2^40");
    }
    if (i == 0)
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "chunk size is not a hex number");
    if (!chunk_ext_valid(s, i, n))
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "malformed chunk size line");
    if (v > p->lim.max_body - p->body_total)
        return fail(p, HTTP1_ERR_BODY_TOO_LARGE, "request body larger than %llu bytes",
                    (unsigned long long)p->lim.max_body);
    p->body_total += v;
    p->remaining = v;
    p->st = v ? S_CHUNK_DATA : S_TRAILERS;
    return HTTP1_NEED_MORE;
}

static enum http1_event step_chunk_size(struct http1_parser *p, const uint8_t *d, size_t n,
                                        size_t *used)
{
    switch (take_line(&p->line, 0, p->lim.max_chunk_line + 2, d, n, used)) {
    case TAKE_MORE:
        return HTTP1_NEED_MORE;
    case TAKE_LONG:
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "chunk size line longer than %zu bytes",
                    p->lim.max_chunk_line);
    case TAKE_NOMEM:
        return fail(p, HTTP1_ERR_INTERNAL, "out of memory");
    case TAKE_LINE:
        break;
    }
    const char *s = (const char *)p->line.data;
    size_t len = p->line.len;
    if (len == 0 || s[len - 1] != '\r')
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "chunk size line not terminated by CRLF");
    if (memchr(s, '\r', len - 1))
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "bare CR in chunk size line");
    enum http1_event ev = on_chunk_size(p, s, len - 1);
    buf_reset(&p->line);
    return ev;
}

static enum http1_event step_trailers(struct http1_parser *p, const uint8_t *d, size_t n,
                                      size_t *used)
{
    switch (take_line(&p->line, 0, p->lim.max_trailers - p->trailer_used, d, n, used)) {
    case TAKE_MORE:
        return HTTP1_NEED_MORE;
    case TAKE_LONG:
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "trailer section larger than %zu bytes",
                    p->lim.max_trailers);
    case TAKE_NOMEM:
        return fail(p, HTTP1_ERR_INTERNAL, "out of memory");
    case TAKE_LINE:
        break;
    }
    const char *s = (const char *)p->line.data;
    size_t len = p->line.len;
    if (len == 0 || s[len - 1] != '\r')
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "trailer line not terminated by CRLF");
    p->trailer_used += len + 1;
    buf_reset(&p->line);
    if (len == 1) {
        p->st = S_DONE;
        return HTTP1_DONE;
    }
    struct field_span sp;
    const char *why = field_line_check(s, len - 1, &sp);
    if (why)
        return fail(p, HTTP1_ERR_BAD_CHUNKED, "bad trailer: %s", why);
    return HTTP1_NEED_MORE;
}

static enum http1_event step_body(struct http1_parser *p, const uint8_t *d, size_t n, size_t *used,
                                  enum pstate next)
{
    size_t take = p->remaining < n ? (size_t)p->remaining : n;
    p->body_ptr = d;
    p->body_len = take;
    p->remaining -= take;
    *used = take;
    if (p->remaining == 0)
        p->st = next;
    return HTTP1_BODY;
}

static enum http1_event step_crlf(struct http1_parser *p, const uint8_t *d, size_t *used)
{
    *used = 1;
    if (p->st == S_CHUNK_CR && d[0] == '\r') {
        p->st = S_CHUNK_LF;
        return HTTP1_NEED_MORE;
    }
    if (p->st == S_CHUNK_LF && d[0] == '\n') {
        p->st = S_CHUNK_SIZE;
        return HTTP1_NEED_MORE;
    }
    return fail(p, HTTP1_ERR_BAD_CHUNKED, "missing CRLF after chunk data");
}

/* ---- driver ---- */

/* Runs one state; n > 0 unless the state needs no input. HTTP1_NEED_MORE
 * means "no event yet". */
static enum http1_event step(struct http1_parser *p, const uint8_t *d, size_t n, size_t *used)
{
    switch (p->st) {
    case S_REQ_LINE:
        return step_request_line(p, d, n, used);
    case S_HEADERS:
        return step_headers(p, d, n, used);
    case S_BODY_LEN:
        return step_body(p, d, n, used, S_DONE_PENDING);
    case S_CHUNK_SIZE:
        return step_chunk_size(p, d, n, used);
    case S_CHUNK_DATA:
        return step_body(p, d, n, used, S_CHUNK_CR);
    case S_CHUNK_CR:
    case S_CHUNK_LF:
        return step_crlf(p, d, used);
    case S_TRAILERS:
        return step_trailers(p, d, n, used);
    case S_DONE_PENDING:
        p->st = S_DONE;
        return HTTP1_DONE;
    case S_DONE:
    case S_ERROR:
        break;
    }
    return HTTP1_ERROR;
}

enum http1_event http1_parser_feed(struct http1_parser *p, const uint8_t *data, size_t len,
                                   size_t *consumed)
{
    size_t off = 0;
    *consumed = 0;
    p->body_ptr = NULL;
    p->body_len = 0;
    if (p->st == S_ERROR)
        return HTTP1_ERROR;
    if (p->st == S_DONE)
        reset_message(p);
    for (;;) {
        if (off == len && p->st != S_DONE_PENDING) {
            *consumed = off;
            return HTTP1_NEED_MORE;
        }
        size_t used = 0;
        enum http1_event ev = step(p, data + off, len - off, &used);
        off += used;
        if (ev != HTTP1_NEED_MORE) {
            *consumed = off;
            return ev;
        }
    }
}

int http1_parser_eof(struct http1_parser *p)
{
    if (http1_parser_idle(p) || p->st == S_DONE_PENDING)
        return 0;
    if (p->st == S_ERROR)
        return -1;
    if (p->st == S_REQ_LINE || p->st == S_HEADERS)
        fail(p, HTTP1_ERR_CLIENT_ABORTED, "connection closed inside the request head");
    else
        fail(p, HTTP1_ERR_CLIENT_ABORTED, "connection closed inside the request body");
    return -1;
}

bool http1_parser_idle(const struct http1_parser *p)
{
    return p->st == S_DONE || (p->st == S_REQ_LINE && p->head.len == 0);
}

const struct http1_request *http1_parser_request(const struct http1_parser *p)
{
    return p->have_req ? &p->req : NULL;
}

const uint8_t *http1_parser_body(const struct http1_parser *p, size_t *len)
{
    *len = p->body_len;
    return p->body_ptr;
}

enum http1_error http1_parser_error(const struct http1_parser *p)
{
    return p->err;
}

const char *http1_parser_error_msg(const struct http1_parser *p)
{
    return p->err ? p->msg : "";
}

bool http1_keep_alive(const struct http1_parser *p)
{
    return p->have_req && p->st != S_ERROR && p->req.keep_alive;
}

/* ---- response head (clients) ---- */

/* "HTTP/1.x SP 3DIGIT [SP reason]"; the reason may be empty or absent. */
static int parse_status_line(char *s, size_t n, struct http1_response *r, struct err **errp)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return err_status(errp, 502, "control character in response status line");
    }
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
        !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return err_status(errp, 502, "malformed response status line");
    r->version_minor = s[7] - '0';
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (r->status < 100 || r->status > 599)
        return err_status(errp, 502, "response status %d out of range", r->status);
    r->reason = n > 12 ? s + 13 : s + n;
    return 0;
}

/* fields: the lines after the status line, each ending in CRLF, then the
 * final CRLF (NUL-terminated copy). */
static int parse_response_fields(char *fields, size_t max_fields, struct http1_response *r,
                                 struct err **errp)
{
    size_t count = 0;
    for (char *q = fields; strncmp(q, "\r\n", 2) != 0; q = strstr(q, "\r\n") + 2)
        count++;
    if (count > max_fields)
        return err_status(errp, 502, "response head has more than %zu fields", max_fields);
    r->headers = calloc(count ? count : 1, sizeof(*r->headers));
    if (!r->headers)
        return err_set(errp, ENOMEM, "out of memory");
    char *line = fields;
    for (size_t i = 0; i < count; i++) {
        char *end = strstr(line, "\r\n");
        struct field_span sp;
        const char *why = field_line_check(line, (size_t)(end - line), &sp);
        if (why)
            return err_status(errp, 502, "bad response header: %s", why);
        line[sp.name_len] = '\0';
        line[sp.value + sp.value_len] = '\0';
        r->headers[i] = (struct http1_header){line, line + sp.value, sp.name_len, sp.value_len};
        line = end + 2;
    }
    r->nheaders = count;
    return 0;
}

ssize_t http1_response_parse(const uint8_t *data, size_t len, size_t max_head, size_t max_fields,
                             struct http1_response *resp, struct err **errp)
{
    memset(resp, 0, sizeof(*resp));
    const uint8_t *end = memmem(data, MIN(len, max_head), "\r\n\r\n", 4);
    if (!end) {
        if (len >= max_head)
            return err_status(errp, 502, "response head larger than %zu bytes", max_head);
        return 0;
    }
    size_t head_len = (size_t)(end - data) + 4;
    if (memchr(data, '\0', head_len))
        return err_status(errp, 502, "NUL in response head");
    struct http1_response r = {0};
    r.raw_ = malloc(head_len + 1);
    if (!r.raw_)
        return err_set(errp, ENOMEM, "out of memory");
    memcpy(r.raw_, data, head_len);
    r.raw_[head_len] = '\0';
    char *eol = strstr(r.raw_, "\r\n");
    *eol = '\0';
    if (parse_status_line(r.raw_, (size_t)(eol - r.raw_), &r, errp) < 0 ||
        parse_response_fields(eol + 2, max_fields, &r, errp) < 0) {
        http1_response_free(&r);
        return -1;
    }
    *resp = r;
    return (ssize_t)head_len;
}

void http1_response_free(struct http1_response *resp)
{
    free(resp->headers);
    free(resp->raw_);
    memset(resp, 0, sizeof(*resp));
}
