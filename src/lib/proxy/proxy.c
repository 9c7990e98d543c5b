/* Proxy connections: the MUX_SVC_NET stream glue, protocol classification,
 * TLS termination over memory BIOs (the bytes come from the channel, not a
 * socket), output with flow control, timers and deferred frees. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "proxy/proxy_int.h"

#define PENDING_MAX (MUX_WINDOW + 64u * 1024u)
#define OUTQ_MAX (8u * 1024u * 1024u)
#define FEED_CHUNK (16u * 1024u)
#define CLOSE_LINGER_MS 5000

struct proxy {
    struct event_base *base;
    SSL_CTX *ctx;
    struct proxy_limits lim;
    struct proxy_hooks hooks;
    struct curlev *curl;
    struct pconn *conns;
    unsigned nconns;
    uint64_t next_id;
    struct pconn *graveyard;
    struct event *reaper;
    void (*kick)(void *arg);
    void *kick_arg;
};

static int ex_index = -1; /* SSL ex_data slot: the pconn */

void proxy_limits_default(struct proxy_limits *l)
{
    l->max_conns = 512;
    l->max_request_body = 256ull << 20;
    l->first_bytes_ms = 10000;
    l->head_ms = 30000;
    l->idle_ms = 60000;
    l->upstream_connect_s = 15;
    l->upstream_idle_s = 600;
}

struct curlev *proxy_curl(struct proxy *p)
{
    return p->curl;
}

struct event_base *proxy_base(struct proxy *p)
{
    return p->base;
}

const struct proxy_hooks *proxy_hooks(struct proxy *p)
{
    return &p->hooks;
}

const struct proxy_limits *proxy_limits(struct proxy *p)
{
    return &p->lim;
}

unsigned proxy_conn_count(const struct proxy *p)
{
    return p->nconns;
}

/* ---------- freeing at a safe point ---------- */

static void pconn_destroy(struct pconn *c)
{
    pconn_upstream_free(c);
    pconn_ws_free(c);
    if (c->ssl)
        SSL_free(c->ssl); /* frees both BIOs */
    http1_parser_free(c->parser);
    clienthello_parser_free(c->hello);
    if (c->timer)
        event_free(c->timer);
    buf_free(&c->pending);
    buf_free(&c->body);
    buf_free(&c->resp_head);
    buf_free(&c->outq);
    buf_free(&c->plain);
    free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    while (p->graveyard) {
        struct pconn *c = p->graveyard;
        p->graveyard = c->next;
        pconn_destroy(c);
    }
}

static void pconn_bury(struct pconn *c)
{
    struct proxy *p = c->p;
    if (c->state == PC_DEAD)
        return;
    pconn_vet_end(c);
    if (c->deciding) {
        c->deciding = false;
        if (p->hooks.cancel)
            p->hooks.cancel(p->hooks.ctx, c->id, c->seq);
    }
    if (c->obs) {
        /* The request ended without its row (the guest went away). */
        struct proxy_event ev = {.conn_id = c->id, .request_seq = c->seq,
                                 .started_ms = c->req_started_ms, .req = &c->req,
                                 .conn_type = c->tls ? "https" : "http",
                                 .decision = "error", .reason = "client_aborted",
                                 .dec = &c->dec, .ttfb_ms = -1};
        void *obs = c->obs;
        c->obs = NULL;
        p->hooks.observe_finish(obs, &ev, 0);
    }
    c->state = PC_DEAD;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->nconns--;
    if (c->s) {
        mux_stream_set_user(c->s, NULL);
        mux_stream_release(c->s);
        c->s = NULL;
    }
    if (c->timer)
        event_del(c->timer);
    c->next = p->graveyard;
    p->graveyard = c;
    event_active(p->reaper, EV_TIMEOUT, 0);
}

/* ---------- output ---------- */

size_t pconn_room(struct pconn *c)
{
    return c->outq.len >= PROXY_OUT_HIGH ? 0 : PROXY_OUT_HIGH - c->outq.len;
}

static void drain_wbio(struct pconn *c)
{
    uint8_t tmp[16384];
    int n;
    while (c->wbio && (n = BIO_read(c->wbio, tmp, sizeof(tmp))) > 0)
        if (buf_append(&c->outq, tmp, (size_t)n) < 0)
            log_warn("proxy %llu: output queue full", (unsigned long long)c->id);
}

void pconn_flush(struct pconn *c)
{
    if (!c->s)
        return;
    while (c->outq.len > 0) {
        ssize_t n = mux_stream_write(c->s, buf_head(&c->outq), c->outq.len);
        if (n <= 0)
            break;
        buf_consume(&c->outq, (size_t)n);
    }
    if (c->outq.len > 0)
        mux_stream_notify_writable(c->s);
    if (c->p->kick)
        c->p->kick(c->p->kick_arg);
    if (c->state == PC_CLOSING && c->outq.len == 0 && !c->fin_sent) {
        c->fin_sent = true;
        mux_stream_close_write(c->s);
        pconn_arm_timer(c, CLOSE_LINGER_MS);
    }
}

/* Bytes for the guest as they are (a TLS alert written before any session). */
static void pconn_output_raw(struct pconn *c, const void *data, size_t len)
{
    if (buf_append(&c->outq, data, len) < 0)
        log_warn("proxy %llu: output queue full", (unsigned long long)c->id);
    pconn_flush(c);
}

void pconn_output_plain(struct pconn *c, const void *data, size_t len)
{
    if (c->state == PC_DEAD || len == 0)
        return;
    if (c->tls) {
        const uint8_t *p = data;
        while (len > 0) {
            int n = SSL_write(c->ssl, p, (int)MIN(len, (size_t)16384));
            if (n <= 0)
                break;
            p += n;
            len -= (size_t)n;
        }
        drain_wbio(c);
    } else if (buf_append(&c->outq, data, len) < 0) {
        log_warn("proxy %llu: output queue full", (unsigned long long)c->id);
    }
    pconn_flush(c);
}

void pconn_close(struct pconn *c, bool graceful)
{
    if (c->state == PC_DEAD)
        return;
    pconn_upstream_free(c);
    pconn_ws_free(c);
    if (!graceful || !c->s) {
        if (c->s)
            mux_stream_reset(c->s, MUX_RST_CANCEL);
        pconn_bury(c);
        return;
    }
    if (c->tls && c->ssl)
        SSL_shutdown(c->ssl), drain_wbio(c);
    c->state = PC_CLOSING;
    pconn_flush(c);
}

/* ---------- timers ---------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *c = arg;
    switch (c->state) {
    case PC_CLASSIFY:
    case PC_TLS:
        proxy_record(c, "connection", 0, "error", "-", "handshake_timeout",
                     "no complete first bytes / handshake within the time limit");
        pconn_close(c, false);
        break;
    case PC_HEAD:
        if (c->parser && !http1_parser_idle(c->parser)) {
            pconn_reply(c, 408, "header_timeout", "-", "the request head did not arrive in time");
        } else {
            pconn_close(c, true); /* keep-alive idle: close silently */
        }
        break;
    case PC_CLOSING:
        pconn_bury(c);
        break;
    default:
        break;
    }
}

void pconn_arm_timer(struct pconn *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->timer, &tv);
}

/* ---------- input ---------- */

static void tls_handshake(struct pconn *c);

static void classify(struct pconn *c)
{
    const uint8_t *d = buf_head(&c->pending);
    size_t n = c->pending.len;
    enum conn_class k = conn_classify(d, n);
    if (k == CONN_CLASS_NEED_MORE)
        return;
    if (k == CONN_CLASS_TLS) {
        c->tls = true;
        c->state = PC_TLS;
        c->hello = clienthello_parser_new(NULL);
        c->ssl = SSL_new(c->p->ctx);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (!c->hello || !c->ssl || !c->rbio || !c->wbio) {
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            c->rbio = c->wbio = NULL;
            pconn_close(c, false);
            return;
        }
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_ex_data(c->ssl, ex_index, c);
        SSL_set_accept_state(c->ssl);
        return;
    }
    if (k == CONN_CLASS_HTTP) {
        c->state = PC_HEAD;
        pconn_arm_timer(c, c->p->lim.head_ms);
        return;
    }
    char hex[33];
    conn_first_bytes_hex(d, n, hex);
    proxy_record(c, "connection", 0, "error", "-", "unknown_protocol", hex);
    pconn_close(c, false);
}

/* The raw ClientHello bytes, checked before OpenSSL sees them (section 15):
 * a malformed or oversized hello gets decode_error and a bad_client_hello
 * row. Returns false when the connection was closed. */
static bool check_hello(struct pconn *c, const uint8_t *d, size_t n)
{
    if (!c->hello)
        return true;
    size_t used;
    enum clienthello_status st = clienthello_parser_feed(c->hello, d, n, &used);
    if (st == CLIENTHELLO_NEED_MORE)
        return true;
    if (st == CLIENTHELLO_ERROR) {
        size_t alen;
        const uint8_t *alert = clienthello_decode_error_alert(&alen);
        pconn_output_raw(c, alert, alen);
        proxy_record(c, "connection", 0, "error", "-", "bad_client_hello",
                     clienthello_parser_error(c->hello));
        c->tls = false; /* no session to shut down: the alert is the last word */
        pconn_close(c, true);
        return false;
    }
    clienthello_parser_free(c->hello);
    c->hello = NULL;
    return true;
}

/* SNI from the ClientHello (before certificate selection): pick the name
 * the leaf is minted for. Without SNI: the pin-set name for the original
 * destination, else the IP literal (network.md section 5). */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    struct pconn *c = SSL_get_ex_data(ssl, ex_index);
    if (!c)
        return SSL_CLIENT_HELLO_ERROR;
    const unsigned char *ext;
    size_t len;
    c->sni[0] = '\0';
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) && len > 5 &&
        ext[2] == 0 /* host_name */) {
        size_t list = (size_t)ext[0] << 8 | ext[1];
        size_t nlen = (size_t)ext[3] << 8 | ext[4];
        if (list + 2 == len && nlen + 3 <= list && nlen < sizeof(c->sni)) {
            memcpy(c->sni, ext + 5, nlen);
            c->sni[nlen] = '\0';
            for (char *q = c->sni; *q; q++)
                if (*q >= 'A' && *q <= 'Z')
                    *q = (char)(*q - 'A' + 'a');
        }
    }
    struct in_addr ip;
    if (c->sni[0] && inet_pton(AF_INET, c->sni, &ip) == 1)
        c->sni[0] = '\0'; /* an IP literal in SNI counts as no SNI */
    const char *name = c->sni;
    if (!name[0] && c->p->hooks.name_for_ip)
        name = c->p->hooks.name_for_ip(c->p->hooks.ctx, c->dst_ip);
    if (!name || !name[0]) {
        struct in_addr a = {.s_addr = htonl(c->dst_ip)};
        inet_ntop(AF_INET, &a, c->tls_name, sizeof(c->tls_name));
    } else {
        str_copy(c->tls_name, sizeof(c->tls_name), name);
    }
    if (c->p->hooks.use_cert(c->p->hooks.ctx, ssl, c->tls_name) < 0) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void tls_failed(struct pconn *c)
{
    char detail[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    drain_wbio(c); /* the alert, if any */
    pconn_flush(c);
    proxy_record(c, "connection", 0, "error", "-", "tls_handshake_failed", detail);
    pconn_close(c, false);
}

static void tls_handshake(struct pconn *c)
{
    int rc = SSL_do_handshake(c->ssl);
    drain_wbio(c);
    pconn_flush(c);
    if (rc == 1) {
        c->state = PC_HEAD;
        pconn_arm_timer(c, c->p->lim.head_ms);
        return;
    }
    int err = SSL_get_error(c->ssl, rc);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        tls_failed(c);
}

static bool can_feed(struct pconn *c)
{
    if (c->state == PC_HEAD)
        return true;
    if (c->state == PC_WS)
        return pconn_ws_can_take(c);
    return c->state == PC_BODY && c->body.len < (c->holding ? PROXY_HOLD_MAX : PROXY_BODY_BUF);
}

/* Guest plaintext to whoever takes it now: the WebSocket splice or the
 * HTTP parser. */
static void deliver_plain(struct pconn *c, const uint8_t *data, size_t len)
{
    if (c->state == PC_WS)
        pconn_ws_guest_data(c, data, len);
    else
        pconn_feed_plain(c, data, len);
}

/* In the splice the guest's end of stream counts once every byte before it
 * was handed over (TLS: nothing left undecrypted or unread). */
static void ws_check_guest_eof(struct pconn *c)
{
    if (c->state != PC_WS || !c->guest_fin || c->pending.len > 0 || c->plain.len > 0)
        return;
    if (c->tls && c->ssl && (SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0))
        return;
    pconn_ws_guest_eof(c);
}

/* Moves guest bytes through TLS (if any) into the HTTP parser while the
 * request state accepts them. Credit goes back only for bytes taken out of
 * `pending`, so a stalled upstream stops the guest without growing buffers. */
/* Plaintext left over from a pipelined request goes to the parser first. */
static void feed_leftover(struct pconn *c)
{
    if (c->plain.len == 0 || !can_feed(c))
        return;
    struct buf tmp = c->plain;
    buf_init(&c->plain, tmp.max);
    deliver_plain(c, buf_head(&tmp), tmp.len);
    buf_free(&tmp);
}

static void process_input(struct pconn *c)
{
    feed_leftover(c);
    while (c->state != PC_DEAD && c->pending.len > 0 && c->plain.len == 0) {
        if (c->state == PC_CLASSIFY) {
            classify(c);
            if (c->state == PC_CLASSIFY)
                return;
            continue;
        }
        if (c->tls) {
            if (c->state != PC_TLS && !can_feed(c))
                return;
            size_t n = MIN(c->pending.len, (size_t)FEED_CHUNK);
            if (c->state == PC_TLS && !check_hello(c, buf_head(&c->pending), n))
                return;
            BIO_write(c->rbio, buf_head(&c->pending), (int)n);
            buf_consume(&c->pending, n);
            if (c->s)
                mux_stream_consumed(c->s, n);
            if (c->state == PC_TLS) {
                if (BIO_ctrl_pending(c->rbio) > PROXY_CLIENT_HELLO_MAX) {
                    proxy_record(c, "connection", 0, "error", "-", "bad_client_hello",
                                 "ClientHello larger than 16 KiB");
                    pconn_close(c, false);
                    return;
                }
                tls_handshake(c);
            }
            continue;
        }
        if (!can_feed(c))
            return;
        size_t n = MIN(c->pending.len, (size_t)FEED_CHUNK);
        uint8_t tmp[FEED_CHUNK];
        memcpy(tmp, buf_head(&c->pending), n);
        buf_consume(&c->pending, n);
        if (c->s)
            mux_stream_consumed(c->s, n);
        deliver_plain(c, tmp, n);
    }
    pconn_pump_tls(c);
    ws_check_guest_eof(c);
}

/* TLS plaintext that OpenSSL already decrypted but we did not read yet. */
void pconn_pump_tls(struct pconn *c)
{
    if (!c->tls || !c->ssl || c->state == PC_TLS || c->state == PC_DEAD)
        return;
    uint8_t tmp[FEED_CHUNK];
    while (can_feed(c)) {
        int n = SSL_read(c->ssl, tmp, sizeof(tmp));
        if (n > 0) {
            deliver_plain(c, tmp, (size_t)n);
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_ZERO_RETURN) {
            c->guest_fin = true; /* close_notify */
        } else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            pconn_close(c, false);
        }
        break;
    }
    drain_wbio(c);
    pconn_flush(c);
}

void pconn_resume_input(struct pconn *c)
{
    process_input(c);
}

/* ---------- stream callbacks ---------- */

static void on_data(void *h, const uint8_t *data, size_t len)
{
    struct pconn *c = h;
    if (c->state == PC_DEAD)
        return;
    if (buf_append(&c->pending, data, len) < 0) {
        /* The peer sent beyond its credit: the mux would have reset it. */
        pconn_close(c, false);
        return;
    }
    process_input(c);
}

static void on_fin(void *h)
{
    struct pconn *c = h;
    c->guest_fin = true;
    if (c->state == PC_CLOSING) {
        pconn_bury(c);
        return;
    }
    if (c->state == PC_CLASSIFY || c->state == PC_TLS ||
        (c->state == PC_HEAD && (!c->parser || http1_parser_idle(c->parser)))) {
        pconn_close(c, true);
        return;
    }
    if (c->state == PC_HEAD || c->state == PC_BODY) {
        if (c->parser && http1_parser_eof(c->parser) < 0) {
            proxy_record(c, c->tls ? "https" : "http", 0, "error", "-", "client_aborted",
                         "the guest closed the connection in the middle of a request");
            pconn_close(c, false);
        }
    }
    ws_check_guest_eof(c);
    /* PC_RESPONSE: finish the response, then close (request_done sees guest_fin). */
}

static void on_reset(void *h, uint32_t reason)
{
    struct pconn *c = h;
    if (c->s) {
        mux_stream_release(c->s);
        c->s = NULL;
    }
    if (c->state != PC_CLOSING && c->state != PC_DEAD && c->state != PC_WS)
        proxy_record(c, "connection", 0, "error", "-", "client_aborted",
                     mux_reset_reason_name(reason));
    pconn_close(c, false);
}

static void on_writable(void *h)
{
    struct pconn *c = h;
    pconn_flush(c);
    if (c->resp_paused && pconn_room(c) > 0)
        pconn_upstream_resume(c);
    if (c->state == PC_WS)
        pconn_ws_guest_writable(c);
}

static const struct hstream_ops pconn_ops = {
    .on_data = on_data,
    .on_fin = on_fin,
    .on_reset = on_reset,
    .on_writable = on_writable,
};

/* ---------- accept ---------- */

static int parse_meta(struct pconn *c, const uint8_t *meta, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, meta, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t ip = 0, port = 0;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_DST_IP)
            tlv_as_u32(v, n, &ip);
        else if (tag == T_DST_PORT)
            tlv_as_u32(v, n, &port);
        else if (tag == T_PID)
            tlv_as_u32(v, n, &c->pid);
        else if (tag == T_COMM || tag == T_EXE) {
            char *dst = tag == T_COMM ? c->comm : c->exe;
            size_t cap = tag == T_COMM ? 64 : 256, k = 0;
            for (size_t i = 0; i < n && k < cap; i++) /* printable ASCII only (C7) */
                dst[k++] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
            dst[k] = '\0';
        }
    }
    if (!tlv_valid(meta, len) || port == 0 || port > 65535 || (ip >> 24) == 127 ||
        c->pid >= (1u << 22))
        return MUX_RST_BAD_METADATA;
    c->dst_ip = ip;
    c->dst_port = (uint16_t)port;
    if (!c->comm[0])
        str_copy(c->comm, sizeof(c->comm), "?");
    return 0;
}

int proxy_accept(struct proxy *p, struct mux_stream *s, const uint8_t *meta, size_t len,
                 void (*kick)(void *arg), void *kick_arg)
{
    if (p->nconns >= p->lim.max_conns)
        return MUX_RST_TOO_MANY_STREAMS;
    struct pconn *c = calloc(1, sizeof(*c));
    if (!c)
        return MUX_RST_INTERNAL;
    c->hs.ops = &pconn_ops;
    c->p = p;
    c->id = ++p->next_id;
    c->opened_ms = time_real_ms();
    c->ttfb_ms = -1;
    int rc = parse_meta(c, meta, len);
    if (rc != 0) {
        free(c);
        return rc;
    }
    buf_init(&c->pending, PENDING_MAX);
    buf_init(&c->body, PROXY_BODY_BUF + FEED_CHUNK);
    buf_init(&c->resp_head, 100 * 1024);
    buf_init(&c->outq, OUTQ_MAX);
    buf_init(&c->plain, PENDING_MAX);
    c->timer = evtimer_new(p->base, timer_cb, c);
    c->s = s;
    p->kick = kick;
    p->kick_arg = kick_arg;
    mux_stream_set_user(s, &c->hs);
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    pconn_arm_timer(c, p->lim.first_bytes_ms);
    return 0;
}

/* ---------- telemetry ---------- */

void proxy_record(struct pconn *c, const char *conn_type, int status, const char *decision,
                  const char *rule, const char *reason, const char *detail)
{
    const struct proxy_hooks *h = &c->p->hooks;
    if (!h->record && !c->obs)
        return;
    bool have_req = c->req.method != NULL;
    uint64_t start = have_req ? c->req_started_ms : c->opened_ms;
    struct proxy_event ev = {.conn_id = c->id,
                             .request_seq = c->seq,
                             .started_ms = start,
                             .req = have_req ? &c->req : NULL,
                             .conn_type = conn_type,
                             .status = status,
                             .bytes_sent = c->bytes_up,
                             .bytes_received = c->bytes_down,
                             .duration_ms = time_real_ms() - start,
                             .ttfb_ms = c->ttfb_ms,
                             .decision = decision,
                             .rule = rule,
                             .reason = reason,
                             .error_detail = detail,
                             .upstream_http_version = c->upstream_version,
                             .response_headers = have_req && c->resp_head.len
                                                     ? (const char *)buf_head(&c->resp_head)
                                                     : NULL,
                             .dec = have_req ? &c->dec : NULL,
                             .ask_id = have_req ? c->dec.ask_id : 0};
    int64_t row = h->record ? h->record(h->ctx, &ev) : 0;
    if (c->obs) {
        void *obs = c->obs;
        c->obs = NULL;
        h->observe_finish(obs, &ev, row);
    }
}

struct pconn *proxy_find_conn(struct proxy *p, uint64_t conn_id)
{
    for (struct pconn *c = p->conns; c; c = c->next)
        if (c->id == conn_id)
            return c;
    return NULL;
}

/* ---------- setup ---------- */

struct proxy *proxy_new(struct event_base *base, SSL_CTX *server_ctx,
                        const struct proxy_limits *limits, const struct proxy_hooks *hooks,
                        struct err **errp)
{
    if (ex_index < 0)
        ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p)
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    p->base = base;
    p->ctx = server_ctx;
    p->hooks = *hooks;
    if (limits)
        p->lim = *limits;
    else
        proxy_limits_default(&p->lim);
    p->curl = curlev_new(base, errp);
    p->reaper = event_new(base, -1, 0, reap_cb, p);
    if (!p->curl || !p->reaper) {
        proxy_free(p);
        return NULL;
    }
    SSL_CTX_set_client_hello_cb(server_ctx, client_hello_cb, p);
    return p;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    while (p->conns)
        pconn_close(p->conns, false);
    reap_cb(-1, 0, p);
    curlev_free(p->curl);
    if (p->reaper)
        event_free(p->reaper);
    free(p);
}
