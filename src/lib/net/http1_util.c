/* HTTP/1.x helpers: header lookup, token and Host syntax, request-target
 * and query decoding, head and chunk writers, status texts. No allocation
 * except through the caller's struct buf. */
#include "net/http1.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

/* ---- syntax ---- */

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool http1_token_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* reg-name = *( unreserved / pct-encoded / sub-delims ); also covers IPv4. */
static size_t reg_name_len(const char *h)
{
    size_t i = 0;
    for (;;) {
        unsigned char c = (unsigned char)h[i];
        if (c == '%') {
            if (hex_digit((unsigned char)h[i + 1]) < 0 || hex_digit((unsigned char)h[i + 2]) < 0)
                return i;
            i += 3;
        } else if (c && (strchr("-._~!$&'()*+,;=", c) || (c >= '0' && c <= '9') ||
                         (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            i++;
        } else {
            return i;
        }
    }
}

static int port_parse(const char *s, int *port)
{
    size_t n = strlen(s);
    if (n == 0) {
        *port = -1; /* "host:" - an empty port means none (RFC 3986 3.2.3) */
        return 0;
    }
    if (n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

int http1_host_split(const char *host, const char **name, size_t *name_len, int *port)
{
    const char *nm = host, *rest;
    size_t nlen;
    int pt = -1;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (!rb || rb == host + 1)
            return -1;
        for (const char *q = host + 1; q < rb; q++)
            if (hex_digit((unsigned char)*q) < 0 && *q != ':' && *q != '.')
                return -1;
        nm = host + 1;
        nlen = (size_t)(rb - nm);
        rest = rb + 1;
    } else {
        nlen = reg_name_len(host);
        rest = host + nlen;
    }
    if (*rest == ':') {
        if (port_parse(rest + 1, &pt) < 0)
            return -1;
    } else if (*rest != '\0') {
        return -1;
    }
    if (name)
        *name = nm;
    if (name_len)
        *name_len = nlen;
    if (port)
        *port = pt;
    return 0;
}

/* ---- header lookup ---- */

const struct http1_header *http1_header_find(const struct http1_header *h, size_t n,
                                             const char *name, size_t *pos)
{
    size_t i = pos ? *pos : 0;
    for (; i < n; i++) {
        if (strcasecmp(h[i].name, name) == 0) {
            if (pos)
                *pos = i + 1;
            return &h[i];
        }
    }
    if (pos)
        *pos = n;
    return NULL;
}

const char *http1_header_get(const struct http1_header *h, size_t n, const char *name)
{
    const struct http1_header *f = http1_header_find(h, n, name, NULL);
    return f ? f->value : NULL;
}

static bool list_has_token(const char *v, const char *token)
{
    size_t tlen = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',' && *e != ';' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - v) == tlen && tlen && strncasecmp(v, token, tlen) == 0)
            return true;
        v = strchr(e, ',');
        if (!v)
            return false;
    }
    return false;
}

bool http1_header_has_token(const struct http1_header *h, size_t n, const char *name,
                            const char *token)
{
    size_t pos = 0;
    const struct http1_header *f;
    while ((f = http1_header_find(h, n, name, &pos)))
        if (list_has_token(f->value, token))
            return true;
    return false;
}

/* ---- request target and query ---- */

void http1_target_split(const char *target, const char **path, size_t *path_len, const char **query,
                        size_t *query_len)
{
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    *path = target;
    *path_len = plen;
    *query = q ? q + 1 : NULL;
    *query_len = q ? strcspn(q + 1, "#") : 0;
    if (!q)
        *path_len = strcspn(target, "#");
}

ssize_t http1_pct_decode(const char *s, size_t n, bool plus_space, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = hex_digit((unsigned char)s[i + 1]), lo = hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

ssize_t http1_query_get(const char *target, const char *name, char *buf, size_t cap)
{
    const char *path, *q;
    size_t plen, qlen;
    http1_target_split(target, &path, &plen, &q, &qlen);
    if (!q)
        return -1;
    const char *end = q + qlen;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ne = eq ? eq : pe;
        char key[256];
        ssize_t klen = http1_pct_decode(q, (size_t)(ne - q), true, key, sizeof(key));
        if (klen >= 0 && ne > q && strcmp(key, name) == 0) {
            const char *v = eq ? eq + 1 : pe;
            ssize_t r = http1_pct_decode(v, (size_t)(pe - v), true, buf, cap);
            return r < 0 ? -2 : r;
        }
        q = amp ? amp + 1 : end;
    }
    return -1;
}

/* ---- writers ---- */

static bool text_valid(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static int write_fields(struct buf *b, const struct http1_field *f, size_t n, int64_t body_len)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].name || !f[i].value || !http1_token_valid(f[i].name, strlen(f[i].name)) ||
            !text_valid(f[i].value)) {
            errno = EINVAL;
            return -1;
        }
        if (buf_printf(b, "%s: %s\r\n", f[i].name, f[i].value) < 0)
            return -1;
    }
    int r = 0;
    if (body_len >= 0) {
        r = buf_printf(b, "Content-Length: %lld\r\n", (long long)body_len);
    } else if (body_len == HTTP1_LEN_CHUNKED) {
        r = buf_append_str(b, "Transfer-Encoding: chunked\r\n");
    } else if (body_len != HTTP1_LEN_NONE) {
        errno = EINVAL;
        return -1;
    }
    if (r < 0)
        return -1;
    return buf_append_str(b, "\r\n");
}

/* Undoes a partial write so a failed call appends nothing. */
static int write_failed(struct buf *b, size_t saved, const char *what, struct err **errp)
{
    int e = errno ? errno : EINVAL;
    b->len = saved;
    if (e == EINVAL)
        return err_status(errp, 500, "%s: invalid header name or value", what);
    return err_set(errp, e, "%s: %s", what, e == EMSGSIZE ? "output buffer full" : "no memory");
}

int http1_write_response_head(struct buf *b, int status, const char *reason,
                              const struct http1_field *fields, size_t nfields, int64_t body_len,
                              struct err **errp)
{
    size_t saved = b->len;
    if (!reason)
        reason = http1_status_text(status);
    errno = 0;
    if (status < 100 || status > 999 || !text_valid(reason)) {
        errno = EINVAL;
        return write_failed(b, saved, "response head", errp);
    }
    if (buf_printf(b, "HTTP/1.1 %d %s\r\n", status, reason) < 0 ||
        write_fields(b, fields, nfields, body_len) < 0)
        return write_failed(b, saved, "response head", errp);
    return 0;
}

int http1_write_request_head(struct buf *b, const char *method, const char *target,
                             const struct http1_field *fields, size_t nfields, int64_t body_len,
                             struct err **errp)
{
    size_t saved = b->len;
    errno = 0;
    bool target_ok = target[0] != '\0';
    for (const char *t = target; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            target_ok = false;
    if (!http1_token_valid(method, strlen(method)) || !target_ok) {
        errno = EINVAL;
        return write_failed(b, saved, "request head", errp);
    }
    if (buf_printf(b, "%s %s HTTP/1.1\r\n", method, target) < 0 ||
        write_fields(b, fields, nfields, body_len) < 0)
        return write_failed(b, saved, "request head", errp);
    return 0;
}

int http1_write_chunk(struct buf *b, const void *data, size_t len, struct err **errp)
{
    size_t saved = b->len;
    if (len == 0)
        return 0;
    errno = 0;
    if (buf_printf(b, "%zx\r\n", len) < 0 || buf_append(b, data, len) < 0 ||
        buf_append(b, "\r\n", 2) < 0)
        return write_failed(b, saved, "chunk", errp);
    return 0;
}

int http1_write_chunk_end(struct buf *b, struct err **errp)
{
    size_t saved = b->len;
    errno = 0;
    if (buf_append(b, "0\r\n\r\n", 5) < 0)
        return write_failed(b, saved, "last chunk", errp);
    return 0;
}

static const struct {
    int code;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http1_status_text(int status)
{
    for (size_t i = 0; i < ARRAY_SIZE(status_texts); i++)
        if (status_texts[i].code == status)
            return status_texts[i].text;
    return "Unknown";
}
