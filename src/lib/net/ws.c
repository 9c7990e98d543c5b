/* WebSocket handshake, frame decoder and encoder (RFC 6455). Checks run on
 * complete frame headers and payload bytes in order, so the outcome does not
 * depend on how input was split across feed calls. */
#include "net/ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/util.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- UTF-8 (Unicode Table 3-7, well-formed byte sequences) ---- */

struct utf8_state {
    unsigned need;  /* continuation bytes still expected */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
};

static bool utf8_lead(struct utf8_state *s, uint8_t c)
{
    s->lo = 0x80;
    s->hi = 0xBF;
    if (c < 0x80)
        return true;
    if (c >= 0xC2 && c <= 0xDF) {
        s->need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        s->need = 2;
        if (c == 0xE0)
            s->lo = 0xA0; /* no overlongs */
        if (c == 0xED)
            s->hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        s->need = 3;
        if (c == 0xF0)
            s->lo = 0x90; /* no overlongs */
        if (c == 0xF4)
            s->hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return false;
    }
    return true;
}

static bool utf8_step(struct utf8_state *s, uint8_t c)
{
    if (!s->need)
        return utf8_lead(s, c);
    if (c < s->lo || c > s->hi)
        return false;
    s->need--;
    s->lo = 0x80;
    s->hi = 0xBF;
    return true;
}

static bool utf8_feed(struct utf8_state *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!utf8_step(s, p[i]))
            return false;
    return true;
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    struct utf8_state s = {0};
    return utf8_feed(&s, p, n) && s.need == 0;
}

/* ---- handshake ---- */

static bool is_b64(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool ws_key_valid(const char *key)
{
    if (strlen(key) != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i]))
            return false;
    return true;
}

int ws_accept_value(const char *key, char out[WS_ACCEPT_LEN + 1], struct err **errp)
{
    char cat[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(cat))
        return err_status(errp, 400, "Sec-WebSocket-Key too long");
    if (EVP_Digest(cat, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return err_set(errp, EIO, "SHA-1 failed");
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

static const char *single_value(const struct http1_header *h, size_t n, const char *name)
{
    size_t pos = 0;
    const struct http1_header *f = http1_header_find(h, n, name, &pos);
    if (!f || http1_header_find(h, n, name, &pos))
        return NULL;
    return f->value;
}

int ws_server_handshake(const struct http1_request *req, const struct http1_field *extra,
                        size_t nextra, struct buf *out, struct err **errp)
{
    const struct http1_header *h = req->headers;
    size_t n = req->nheaders;
    if (strcmp(req->method, "GET") != 0 || req->version_minor != 1)
        return err_status(errp, 400, "WebSocket handshake needs GET over HTTP/1.1");
    if (!http1_header_has_token(h, n, "upgrade", "websocket"))
        return err_status(errp, 400, "WebSocket handshake without \"Upgrade: websocket\"");
    if (!http1_header_has_token(h, n, "connection", "upgrade"))
        return err_status(errp, 400, "WebSocket handshake without \"Connection: Upgrade\"");
    const char *version = single_value(h, n, "sec-websocket-version");
    if (!version || strcmp(version, "13") != 0)
        return err_status(errp, 426, "unsupported WebSocket version (only 13 is supported)");
    const char *key = single_value(h, n, "sec-websocket-key");
    if (!key || !ws_key_valid(key))
        return err_status(errp, 400, "missing or invalid Sec-WebSocket-Key");

    char accept[WS_ACCEPT_LEN + 1];
    if (ws_accept_value(key, accept, errp) < 0)
        return -1;
    _cleanup_free_ struct http1_field *f = calloc(3 + nextra, sizeof(*f));
    if (!f)
        return err_set(errp, ENOMEM, "out of memory");
    f[0] = (struct http1_field){"Upgrade", "websocket"};
    f[1] = (struct http1_field){"Connection", "Upgrade"};
    f[2] = (struct http1_field){"Sec-WebSocket-Accept", accept};
    for (size_t i = 0; i < nextra; i++)
        f[3 + i] = extra[i];
    return http1_write_response_head(out, 101, NULL, f, 3 + nextra, HTTP1_LEN_NONE, errp);
}

int ws_client_key(char out[WS_KEY_LEN + 1], struct err **errp)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return err_set(errp, EIO, "RAND_bytes failed");
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    out[WS_KEY_LEN] = '\0';
    return 0;
}

int ws_client_request(struct buf *out, const char *host, const char *target, const char *key,
                      const struct http1_field *extra, size_t nextra, struct err **errp)
{
    if (!ws_key_valid(key))
        return err_status(errp, 500, "invalid WebSocket key");
    _cleanup_free_ struct http1_field *f = calloc(5 + nextra, sizeof(*f));
    if (!f)
        return err_set(errp, ENOMEM, "out of memory");
    f[0] = (struct http1_field){"Host", host};
    f[1] = (struct http1_field){"Upgrade", "websocket"};
    f[2] = (struct http1_field){"Connection", "Upgrade"};
    f[3] = (struct http1_field){"Sec-WebSocket-Key", key};
    f[4] = (struct http1_field){"Sec-WebSocket-Version", "13"};
    for (size_t i = 0; i < nextra; i++)
        f[5 + i] = extra[i];
    return http1_write_request_head(out, "GET", target, f, 5 + nextra, HTTP1_LEN_NONE, errp);
}

int ws_client_verify(const struct http1_response *resp, const char *key, struct err **errp)
{
    const struct http1_header *h = resp->headers;
    size_t n = resp->nheaders;
    if (resp->status != 101)
        return err_status(errp, 502, "WebSocket handshake refused: %d %s", resp->status,
                          resp->reason);
    if (!http1_header_has_token(h, n, "upgrade", "websocket") ||
        !http1_header_has_token(h, n, "connection", "upgrade"))
        return err_status(errp, 502, "WebSocket handshake: 101 without the upgrade fields");
    if (http1_header_get(h, n, "sec-websocket-extensions"))
        return err_status(errp, 502, "WebSocket handshake: server chose an extension");
    char want[WS_ACCEPT_LEN + 1];
    if (ws_accept_value(key, want, errp) < 0)
        return -1;
    const char *got = single_value(h, n, "sec-websocket-accept");
    if (!got || strcmp(got, want) != 0)
        return err_status(errp, 502, "WebSocket handshake: wrong Sec-WebSocket-Accept");
    return 0;
}

/* ---- decoder ---- */

enum dstate { D_HEAD, D_PAYLOAD, D_CLOSED, D_ERROR };

struct ws_decoder {
    enum ws_role role;
    size_t max_message;
    enum dstate st;
    /* current frame */
    uint8_t hdr[WS_MAX_FRAME_HEAD];
    size_t hdr_len, hdr_need;
    bool fin, masked;
    unsigned op;
    uint8_t mask[4];
    uint64_t plen, pdone;
    /* message being reassembled */
    bool in_msg, msg_ready;
    unsigned msg_op;
    struct buf msg;
    struct utf8_state utf8;
    /* control frame payload */
    uint8_t ctl[WS_MAX_CONTROL];
    size_t ctl_len;
    uint16_t close_code;
    uint16_t err_code;
    char err_msg[128];
};

static __attribute__((format(printf, 3, 4))) enum ws_event
dfail(struct ws_decoder *d, uint16_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err_msg, sizeof(d->err_msg), fmt, ap);
    va_end(ap);
    d->err_code = code;
    d->st = D_ERROR;
    return WS_ERROR;
}

struct ws_decoder *ws_decoder_new(enum ws_role role, size_t max_message, struct err **errp)
{
    struct ws_decoder *d = calloc(1, sizeof(*d));
    if (!d) {
        err_set(errp, ENOMEM, "ws decoder: out of memory");
        return NULL;
    }
    d->role = role;
    d->max_message = max_message;
    d->hdr_need = 2;
    buf_init(&d->msg, max_message);
    return d;
}

void ws_decoder_free(struct ws_decoder *d)
{
    if (!d)
        return;
    buf_free(&d->msg);
    free(d);
}

static bool op_valid(unsigned op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

static bool close_code_valid(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* Validates the first two header bytes and sets how long the header is. */
static enum ws_event head_start(struct ws_decoder *d)
{
    uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
    d->fin = b0 & 0x80;
    d->op = b0 & 0x0F;
    d->masked = b1 & 0x80;
    unsigned len7 = b1 & 0x7F;
    bool control = d->op & 0x8;
    if (b0 & 0x70)
        return dfail(d, WS_CLOSE_PROTOCOL, "reserved bits set without an extension");
    if (!op_valid(d->op))
        return dfail(d, WS_CLOSE_PROTOCOL, "unknown opcode 0x%x", d->op);
    if (control && !d->fin)
        return dfail(d, WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (control && len7 > WS_MAX_CONTROL)
        return dfail(d, WS_CLOSE_PROTOCOL, "control frame longer than 125 bytes");
    if (d->op == WS_OP_CONT && !d->in_msg)
        return dfail(d, WS_CLOSE_PROTOCOL, "continuation frame without a message");
    if ((d->op == WS_OP_TEXT || d->op == WS_OP_BINARY) && d->in_msg)
        return dfail(d, WS_CLOSE_PROTOCOL, "new message before the previous one ended");
    if (d->role == WS_ROLE_SERVER && !d->masked)
        return dfail(d, WS_CLOSE_PROTOCOL, "unmasked frame from a client");
    if (d->role == WS_ROLE_CLIENT && d->masked)
        return dfail(d, WS_CLOSE_PROTOCOL, "masked frame from a server");
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (d->masked ? 4 : 0);
    return WS_NEED_MORE;
}

/* The whole header is in: payload length and masking key. */
static enum ws_event head_done(struct ws_decoder *d)
{
    unsigned len7 = d->hdr[1] & 0x7F;
    size_t i = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
        i = 4;
        if (len < 126)
            return dfail(d, WS_CLOSE_PROTOCOL, "payload length not minimally encoded");
    } else if (len7 == 127) {
        len = 0;
        for (i = 2; i < 10; i++)
            len = len << 8 | d->hdr[i];
        if (len >> 63)
            return dfail(d, WS_CLOSE_PROTOCOL, "payload length has the top bit set");
        if (len < 65536)
            return dfail(d, WS_CLOSE_PROTOCOL, "payload length not minimally encoded");
    }
    if (d->masked)
        memcpy(d->mask, d->hdr + i, 4);
    bool control = d->op & 0x8;
    if (!control && len > d->max_message - d->msg.len)
        return dfail(d, WS_CLOSE_TOO_BIG, "message larger than %zu bytes", d->max_message);
    if (!control && d->op != WS_OP_CONT) {
        d->in_msg = true;
        d->msg_op = d->op;
        memset(&d->utf8, 0, sizeof(d->utf8));
    }
    d->plen = len;
    d->pdone = 0;
    d->ctl_len = 0;
    d->st = D_PAYLOAD;
    return WS_NEED_MORE;
}

static enum ws_event on_close_frame(struct ws_decoder *d)
{
    d->st = D_CLOSED;
    if (d->ctl_len == 0) {
        d->close_code = WS_CLOSE_NO_STATUS;
        return WS_CLOSE;
    }
    if (d->ctl_len == 1)
        return dfail(d, WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    d->close_code = (uint16_t)(d->ctl[0] << 8 | d->ctl[1]);
    if (!close_code_valid(d->close_code))
        return dfail(d, WS_CLOSE_PROTOCOL, "invalid close code %u", d->close_code);
    if (!ws_utf8_valid(d->ctl + 2, d->ctl_len - 2))
        return dfail(d, WS_CLOSE_BAD_DATA, "invalid UTF-8 in close reason");
    return WS_CLOSE;
}

static enum ws_event frame_done(struct ws_decoder *d)
{
    d->st = D_HEAD;
    d->hdr_len = 0;
    d->hdr_need = 2;
    switch (d->op) {
    case WS_OP_CLOSE:
        return on_close_frame(d);
    case WS_OP_PING:
        return WS_PING;
    case WS_OP_PONG:
        return WS_PONG;
    default:
        break;
    }
    if (!d->fin)
        return WS_NEED_MORE;
    if (d->msg_op == WS_OP_TEXT && d->utf8.need)
        return dfail(d, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
    d->in_msg = false;
    d->msg_ready = true;
    return WS_MESSAGE;
}

static enum ws_event step_payload(struct ws_decoder *d, const uint8_t *p, size_t n, size_t *used)
{
    uint64_t left = d->plen - d->pdone;
    size_t take = left < n ? (size_t)left : n;
    uint8_t *dst;
    if (d->op & 0x8) {
        dst = d->ctl + d->ctl_len;
        d->ctl_len += take;
    } else {
        dst = buf_reserve(&d->msg, take);
        if (!dst && take)
            return dfail(d, WS_CLOSE_INTERNAL, "out of memory");
    }
    for (size_t i = 0; i < take; i++)
        dst[i] = d->masked ? p[i] ^ d->mask[(d->pdone + i) & 3] : p[i];
    if (!(d->op & 0x8)) {
        buf_commit(&d->msg, take);
        if (d->msg_op == WS_OP_TEXT && !utf8_feed(&d->utf8, dst, take))
            return dfail(d, WS_CLOSE_BAD_DATA, "invalid UTF-8 in text message");
    }
    d->pdone += take;
    *used = take;
    return d->pdone == d->plen ? frame_done(d) : WS_NEED_MORE;
}

static enum ws_event step_head(struct ws_decoder *d, const uint8_t *p, size_t n, size_t *used)
{
    size_t take = MIN(n, d->hdr_need - d->hdr_len);
    memcpy(d->hdr + d->hdr_len, p, take);
    d->hdr_len += take;
    *used = take;
    if (d->hdr_len < d->hdr_need)
        return WS_NEED_MORE;
    if (d->hdr_len == 2) {
        enum ws_event ev = head_start(d);
        if (ev != WS_NEED_MORE || d->hdr_need > 2)
            return ev;
    }
    enum ws_event ev = head_done(d);
    if (ev == WS_NEED_MORE && d->plen == 0)
        return frame_done(d);
    return ev;
}

enum ws_event ws_decoder_feed(struct ws_decoder *d, const uint8_t *data, size_t len,
                              size_t *consumed)
{
    size_t off = 0;
    *consumed = 0;
    if (d->st == D_ERROR)
        return WS_ERROR;
    if (d->msg_ready) {
        buf_reset(&d->msg);
        d->msg_ready = false;
    }
    while (off < len) {
        size_t used = 0;
        enum ws_event ev;
        if (d->st == D_CLOSED)
            return dfail(d, WS_CLOSE_PROTOCOL, "data after a close frame");
        ev = d->st == D_HEAD ? step_head(d, data + off, len - off, &used)
                             : step_payload(d, data + off, len - off, &used);
        off += used;
        if (ev != WS_NEED_MORE) {
            *consumed = off;
            return ev;
        }
    }
    *consumed = off;
    return WS_NEED_MORE;
}

const uint8_t *ws_decoder_payload(const struct ws_decoder *d, size_t *len)
{
    if (d->msg_ready) {
        *len = d->msg.len;
        return d->msg.len ? buf_head(&d->msg) : (const uint8_t *)"";
    }
    *len = d->ctl_len;
    return d->ctl;
}

enum ws_opcode ws_decoder_opcode(const struct ws_decoder *d)
{
    return (enum ws_opcode)d->msg_op;
}

uint16_t ws_decoder_close_code(const struct ws_decoder *d, const uint8_t **reason,
                               size_t *reason_len)
{
    if (reason)
        *reason = d->ctl_len > 2 ? d->ctl + 2 : d->ctl;
    if (reason_len)
        *reason_len = d->ctl_len > 2 ? d->ctl_len - 2 : 0;
    return d->close_code;
}

uint16_t ws_decoder_error(const struct ws_decoder *d, const char **msg)
{
    if (msg)
        *msg = d->st == D_ERROR ? d->err_msg : "";
    return d->st == D_ERROR ? d->err_code : 0;
}

/* ---- encoder ---- */

int ws_frame_write(struct buf *out, enum ws_opcode op, bool fin, const void *payload, size_t len,
                   const uint8_t *mask, struct err **errp)
{
    bool control = op & 0x8;
    if (!op_valid(op) || (control && (!fin || len > WS_MAX_CONTROL)))
        return err_status(errp, 500, "ws: invalid frame (opcode %d, fin %d, %zu bytes)", op, fin,
                          len);
    uint8_t h[WS_MAX_FRAME_HEAD];
    size_t hl = 2;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    if (mask) {
        h[1] |= 0x80;
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    if (len > SIZE_MAX - hl)
        return err_set(errp, EMSGSIZE, "ws: frame too large");
    uint8_t *dst = buf_reserve(out, hl + len);
    if (!dst)
        return err_set(errp, errno, "ws: cannot queue a %zu-byte frame", len);
    memcpy(dst, h, hl);
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        dst[hl + i] = mask ? src[i] ^ mask[i & 3] : src[i];
    buf_commit(out, hl + len);
    return 0;
}

int ws_send(struct buf *out, enum ws_role role, enum ws_opcode op, const void *payload, size_t len,
            struct err **errp)
{
    uint8_t key[4];
    if (op == WS_OP_TEXT && !ws_utf8_valid(payload, len))
        return err_status(errp, 500, "ws: text message is not valid UTF-8");
    if (role == WS_ROLE_CLIENT && RAND_bytes(key, sizeof(key)) != 1)
        return err_set(errp, EIO, "ws: RAND_bytes failed");
    return ws_frame_write(out, op, true, payload, len, role == WS_ROLE_CLIENT ? key : NULL, errp);
}

int ws_send_close(struct buf *out, enum ws_role role, uint16_t code, const char *reason,
                  struct err **errp)
{
    uint8_t p[WS_MAX_CONTROL];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > WS_MAX_CONTROL - 2 || !ws_utf8_valid((const uint8_t *)reason, rl))
        return err_status(errp, 500, "ws: close reason too long or not UTF-8");
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl)
        memcpy(p + 2, reason, rl);
    return ws_send(out, role, WS_OP_CLOSE, p, 2 + rl, errp);
}
