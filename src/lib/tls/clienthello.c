/* First-bytes classifier and incremental ClientHello parser (clienthello.h).
 *
 * The parser reassembles the handshake message from its records into a
 * fixed CLIENTHELLO_MAX buffer (bytes are copied once, so feeding a byte at a
 * time costs O(n) overall), checks the outer framing as soon as each piece is
 * known, and parses the body with bounds-checked cursors once it is whole. */
#include "tls/clienthello.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define EXT_SERVER_NAME        0
#define EXT_ALPN               16
#define EXT_SUPPORTED_VERSIONS 43
#define HANDSHAKE_CLIENT_HELLO 1
#define CONTENT_HANDSHAKE      22

/* ---- first bytes ---- */

static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

enum conn_class conn_classify(const uint8_t *data, size_t len)
{
    if (len == 0)
        return CONN_CLASS_NEED_MORE;
    if (data[0] == 0x16) {
        if (len < 2)
            return CONN_CLASS_NEED_MORE;
        return data[1] == 0x03 ? CONN_CLASS_TLS : CONN_CLASS_UNKNOWN;
    }
    size_t i;
    for (i = 0; i < len && data[i] != ' '; i++) {
        if (!is_tchar(data[i]) || i == CONN_CLASS_MAX_TOKEN)
            return CONN_CLASS_UNKNOWN;
    }
    if (i == len)
        return CONN_CLASS_NEED_MORE;
    if (i == 0)
        return CONN_CLASS_UNKNOWN;
    /* "PRI * HTTP/2.0": the HTTP/2 prior-knowledge preface. */
    if (i == 3 && memcmp(data, "PRI", 3) == 0)
        return CONN_CLASS_UNKNOWN;
    return CONN_CLASS_HTTP;
}

void conn_first_bytes_hex(const uint8_t *data, size_t len, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = MIN(len, (size_t)16);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[data[i] >> 4];
        out[2 * i + 1] = hex[data[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- names ---- */

static bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* ASCII LDH labels of 1..63 bytes; returns whether the last label is all digits
 * through *numeric_tail. */
static bool ldh_name_ok(const char *s, size_t len, bool *numeric_tail)
{
    if (len == 0 || len > TLS_NAME_MAX)
        return false;
    size_t label = 0;
    bool digits = true;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
            digits = true;
            continue;
        }
        if (!is_ldh(s[i]) || ++label > 63)
            return false;
        if (s[i] < '0' || s[i] > '9')
            digits = false;
    }
    if (label == 0) /* empty last label: trailing dot */
        return false;
    *numeric_tail = digits;
    return true;
}

enum tls_name_kind tls_name_classify(const char *name, size_t len)
{
    char tmp[64];
    if (len > 0 && len < sizeof(tmp) && memchr(name, '\0', len) == NULL) {
        memcpy(tmp, name, len);
        tmp[len] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET, tmp, addr) == 1)
            return TLS_NAME_IPV4;
        if (memchr(tmp, ':', len) && inet_pton(AF_INET6, tmp, addr) == 1)
            return TLS_NAME_IPV6;
    }
    bool numeric_tail = false;
    if (!ldh_name_ok(name, len, &numeric_tail) || numeric_tail)
        return TLS_NAME_INVALID;
    return TLS_NAME_DNS;
}

/* ---- bounded cursor ---- */

struct cur {
    const uint8_t *p;
    size_t n;
};

static bool cur_u8(struct cur *c, uint8_t *v)
{
    if (c->n < 1)
        return false;
    *v = c->p[0];
    c->p++;
    c->n--;
    return true;
}

static bool cur_u16(struct cur *c, uint16_t *v)
{
    if (c->n < 2)
        return false;
    *v = (uint16_t)(c->p[0] << 8 | c->p[1]);
    c->p += 2;
    c->n -= 2;
    return true;
}

static bool cur_skip(struct cur *c, size_t n, struct cur *out)
{
    if (c->n < n)
        return false;
    if (out) {
        out->p = c->p;
        out->n = n;
    }
    c->p += n;
    c->n -= n;
    return true;
}

/* A vector with a 1- or 2-byte length prefix. */
static bool cur_vec(struct cur *c, int lenbytes, struct cur *out)
{
    uint8_t l8 = 0;
    uint16_t l16 = 0;
    if (lenbytes == 1 ? !cur_u8(c, &l8) : !cur_u16(c, &l16))
        return false;
    return cur_skip(c, lenbytes == 1 ? l8 : l16, out);
}

static int set_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- extensions ---- */

int clienthello_parse_sni(const uint8_t *ext, size_t len, struct clienthello *out, char *err,
                          size_t errcap)
{
    struct cur c = {ext, len}, list, name;
    uint8_t type;
    out->has_sni = false;
    out->sni_is_ip = false;
    out->sni[0] = '\0';
    if (!cur_vec(&c, 2, &list) || c.n != 0)
        return set_err(err, errcap, "server_name list length does not match the extension");
    /* Like OpenSSL: exactly one entry, of type host_name (RFC 6066 3). */
    if (!cur_u8(&list, &type) || !cur_vec(&list, 2, &name) || list.n != 0)
        return set_err(err, errcap, "server_name list is not a single well-formed entry");
    if (type != 0)
        return set_err(err, errcap, "server_name entry type %u is not host_name", type);
    switch (tls_name_classify((const char *)name.p, name.n)) {
    case TLS_NAME_DNS:
        for (size_t i = 0; i < name.n; i++) {
            char ch = (char)name.p[i];
            out->sni[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        out->sni[name.n] = '\0';
        out->has_sni = true;
        return 0;
    case TLS_NAME_IPV4:
    case TLS_NAME_IPV6:
        out->sni_is_ip = true; /* counts as no SNI (section 6 step 3) */
        return 0;
    default:
        return set_err(err, errcap, "server_name is not a valid host name (%zu bytes)", name.n);
    }
}

static int parse_alpn(struct cur c, struct clienthello *out, char *err, size_t errcap)
{
    struct cur list, proto;
    if (!cur_vec(&c, 2, &list) || c.n != 0 || list.n == 0)
        return set_err(err, errcap, "ALPN list length does not match the extension");
    out->has_alpn = true;
    while (list.n) {
        if (!cur_vec(&list, 1, &proto) || proto.n == 0)
            return set_err(err, errcap, "ALPN protocol name is empty or truncated");
        if (proto.n == 8 && memcmp(proto.p, "http/1.1", 8) == 0)
            out->alpn_http11 = true;
        else if (proto.n == 2 && memcmp(proto.p, "h2", 2) == 0)
            out->alpn_h2 = true;
        out->alpn_count++;
    }
    return 0;
}

static bool is_grease(uint16_t v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static int parse_versions(struct cur c, struct clienthello *out, char *err, size_t errcap)
{
    struct cur list;
    if (!cur_vec(&c, 1, &list) || c.n != 0 || list.n == 0 || list.n % 2)
        return set_err(err, errcap, "supported_versions list length is invalid");
    out->has_supported_versions = true;
    uint16_t max = 0, v;
    while (cur_u16(&list, &v)) {
        if (is_grease(v))
            continue;
        if (v == 0x0304)
            out->offers_tls13 = true;
        if (v > max)
            max = v;
    }
    if (max)
        out->max_version = max;
    return 0;
}

static int parse_extension(uint16_t type, struct cur data, struct clienthello *out, char *err,
                           size_t errcap)
{
    switch (type) {
    case EXT_SERVER_NAME:
        return clienthello_parse_sni(data.p, data.n, out, err, errcap);
    case EXT_ALPN:
        return parse_alpn(data, out, err, errcap);
    case EXT_SUPPORTED_VERSIONS:
        return parse_versions(data, out, err, errcap);
    default:
        return 0;
    }
}

/* seen: 65536-bit map of extension types already present (zeroed here). */
static int parse_extensions(struct cur c, struct clienthello *out, uint8_t *seen, char *err,
                            size_t errcap)
{
    struct cur exts, data;
    uint16_t type;
    if (!cur_vec(&c, 2, &exts) || c.n != 0)
        return set_err(err, errcap, "extensions length does not match the ClientHello");
    memset(seen, 0, 65536 / 8);
    while (exts.n) {
        if (!cur_u16(&exts, &type) || !cur_vec(&exts, 2, &data))
            return set_err(err, errcap, "extension %u is truncated", out->extensions);
        if (seen[type >> 3] & (1u << (type & 7)))
            return set_err(err, errcap, "duplicate extension type %u", type);
        seen[type >> 3] |= (uint8_t)(1u << (type & 7));
        out->extensions++;
        if (parse_extension(type, data, out, err, errcap) < 0)
            return -1;
    }
    return 0;
}

/* The handshake body (after the 4-byte header). */
static int parse_body(const uint8_t *body, size_t len, struct clienthello *out, uint8_t *seen,
                      char *err, size_t errcap)
{
    struct cur c = {body, len}, sid, suites, comp;
    if (!cur_u16(&c, &out->legacy_version) || (out->legacy_version >> 8) != 3)
        return set_err(err, errcap, "client_version is missing or not 3.x");
    out->max_version = out->legacy_version;
    if (!cur_skip(&c, 32, NULL))
        return set_err(err, errcap, "random is truncated");
    if (!cur_vec(&c, 1, &sid) || sid.n > 32)
        return set_err(err, errcap, "session_id is truncated or longer than 32 bytes");
    if (!cur_vec(&c, 2, &suites) || suites.n < 2 || suites.n % 2)
        return set_err(err, errcap, "cipher_suites length is invalid");
    out->cipher_suites = (uint16_t)(suites.n / 2);
    if (!cur_vec(&c, 1, &comp) || comp.n < 1)
        return set_err(err, errcap, "compression_methods length is invalid");
    if (c.n == 0)
        return 0; /* no extensions (SSLv3-style hello) */
    return parse_extensions(c, out, seen, err, errcap);
}

/* ---- incremental parser ---- */

struct clienthello_parser {
    enum clienthello_status status;
    uint8_t hdr[5];
    size_t hdr_have;  /* bytes of the current record header seen */
    size_t rec_left;  /* payload bytes left in the current record */
    size_t msg_len;   /* handshake bytes reassembled */
    size_t records;
    size_t raw;
    uint16_t first_version;
    struct clienthello result;
    char err[160];
    uint8_t seen[65536 / 8];
    uint8_t msg[CLIENTHELLO_MAX];
};

struct clienthello_parser *clienthello_parser_new(struct err **errp)
{
    struct clienthello_parser *p = calloc(1, sizeof(*p));
    if (!p)
        err_set(errp, ENOMEM, "out of memory allocating a ClientHello parser");
    return p;
}

void clienthello_parser_free(struct clienthello_parser *p)
{
    free(p);
}

static enum clienthello_status fail(struct clienthello_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum clienthello_status fail(struct clienthello_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof(p->err), fmt, ap);
    va_end(ap);
    p->status = CLIENTHELLO_ERROR;
    return p->status;
}

static enum clienthello_status check_record_header(struct clienthello_parser *p)
{
    const uint8_t *h = p->hdr;
    uint16_t version = (uint16_t)(h[1] << 8 | h[2]);
    size_t len = (size_t)h[3] << 8 | h[4];
    if (h[0] != CONTENT_HANDSHAKE)
        return fail(p, "record %zu has content type %u, not handshake (22)", p->records + 1, h[0]);
    if (version < 0x0301 || version > 0x0304)
        return fail(p, "record %zu has version 0x%04x, not 0x0301-0x0304", p->records + 1, version);
    if (len == 0 || len > CLIENTHELLO_RECORD_MAX)
        return fail(p, "record %zu length %zu is not within 1..%d", p->records + 1, len,
                    CLIENTHELLO_RECORD_MAX);
    if (++p->records > CLIENTHELLO_MAX_RECORDS)
        return fail(p, "ClientHello fragmented over more than %d records",
                    CLIENTHELLO_MAX_RECORDS);
    if (p->records == 1)
        p->first_version = version;
    p->rec_left = len;
    return CLIENTHELLO_NEED_MORE;
}

static size_t hello_total(const struct clienthello_parser *p)
{
    return 4 + ((size_t)p->msg[1] << 16 | (size_t)p->msg[2] << 8 | p->msg[3]);
}

/* Checks what is known after msg grew; parses the body once it is whole. */
static enum clienthello_status check_message(struct clienthello_parser *p)
{
    if (p->msg_len >= 1 && p->msg[0] != HANDSHAKE_CLIENT_HELLO)
        return fail(p, "first handshake message has type %u, not ClientHello (1)", p->msg[0]);
    if (p->msg_len < 4)
        return CLIENTHELLO_NEED_MORE;
    size_t total = hello_total(p);
    if (total > CLIENTHELLO_MAX)
        return fail(p, "ClientHello of %zu bytes exceeds %d", total, CLIENTHELLO_MAX);
    if (p->msg_len < total)
        return CLIENTHELLO_NEED_MORE;
    if (p->msg_len > total || p->rec_left > 0)
        return fail(p, "record carries %zu bytes past the ClientHello",
                    p->msg_len - total + p->rec_left);
    struct clienthello *r = &p->result;
    memset(r, 0, sizeof(*r));
    if (parse_body(p->msg + 4, total - 4, r, p->seen, p->err, sizeof(p->err)) < 0) {
        p->status = CLIENTHELLO_ERROR;
        return p->status;
    }
    r->record_version = p->first_version;
    r->hello_len = total;
    r->records = p->records;
    r->raw_len = p->raw;
    p->status = CLIENTHELLO_OK;
    return p->status;
}

enum clienthello_status clienthello_parser_feed(struct clienthello_parser *p, const uint8_t *data,
                                                size_t len, size_t *used)
{
    size_t off = 0;
    while (p->status == CLIENTHELLO_NEED_MORE && off < len) {
        if (p->hdr_have < 5) {
            size_t take = MIN(5 - p->hdr_have, len - off);
            memcpy(p->hdr + p->hdr_have, data + off, take);
            p->hdr_have += take;
            off += take;
            p->raw += take;
            if (p->hdr[0] != CONTENT_HANDSHAKE) /* reject at once, not after 5 bytes */
                fail(p, "record %zu has content type %u, not handshake (22)", p->records + 1,
                     p->hdr[0]);
            else if (p->hdr_have == 5)
                check_record_header(p);
            continue;
        }
        size_t take = MIN(p->rec_left, len - off);
        if (take > CLIENTHELLO_MAX - p->msg_len) {
            fail(p, "ClientHello exceeds %d bytes across records", CLIENTHELLO_MAX);
            break;
        }
        memcpy(p->msg + p->msg_len, data + off, take);
        p->msg_len += take;
        p->rec_left -= take;
        off += take;
        p->raw += take;
        if (p->rec_left == 0)
            p->hdr_have = 0;
        check_message(p);
    }
    *used = off;
    return p->status;
}

const struct clienthello *clienthello_parser_result(const struct clienthello_parser *p)
{
    return p->status == CLIENTHELLO_OK ? &p->result : NULL;
}

const char *clienthello_parser_error(const struct clienthello_parser *p)
{
    return p->status == CLIENTHELLO_ERROR ? p->err : "";
}

enum clienthello_status clienthello_parse(const uint8_t *data, size_t len, struct clienthello *out,
                                          char *err, size_t errcap)
{
    struct clienthello_parser *p = clienthello_parser_new(NULL);
    if (!p) {
        set_err(err, errcap, "out of memory");
        return CLIENTHELLO_ERROR;
    }
    size_t used;
    enum clienthello_status st = clienthello_parser_feed(p, data, len, &used);
    if (st == CLIENTHELLO_OK)
        *out = p->result;
    else if (st == CLIENTHELLO_ERROR)
        set_err(err, errcap, "%s", p->err);
    clienthello_parser_free(p);
    return st;
}

const uint8_t *clienthello_decode_error_alert(size_t *len)
{
    /* alert record, TLS 1.2 record version, length 2, level fatal, decode_error (50) */
    static const uint8_t alert[7] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32};
    *len = sizeof(alert);
    return alert;
}
