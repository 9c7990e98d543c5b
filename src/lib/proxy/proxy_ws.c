/* WebSocket upgrades (network.md section 6 step 13): after an allow, the
 * proxy opens the upstream leg itself (a non-blocking TCP connect on the
 * proxy's event base, then TLS with certificate and host-name verification
 * for https), sends the guest's request head, and forwards the upstream's
 * response head. On 101 the connection is spliced both ways without parsing
 * frames, with flow control in each direction; one net_events row is written
 * when it ends. Any other answer is forwarded and the connection closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "proxy/proxy_int.h"

/* Guest bytes queued toward the upstream before the guest is stopped. */
#define WS_UP_HIGH (256u * 1024u)
/* Hard cap on that queue: one feed is at most the guest's pending window. */
#define WS_UP_MAX (4u * 1024u * 1024u)
#define WS_HEAD_MAX (100u * 1024u)
#define WS_HEAD_FIELDS 100
#define WS_IO_CHUNK 16384

enum ws_phase {
    WS_CONNECT, /* TCP connect in progress */
    WS_TLS,     /* TLS client handshake */
    WS_HEAD,    /* request head going out, response head coming in */
    WS_SPLICE,  /* after 101: bytes both ways */
    WS_BODY,    /* a non-101 answer: its body, then close */
};

struct pws {
    enum ws_phase phase;
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    struct event *rev, *wev, *timer;
    struct buf up;          /* toward the upstream: request head, then guest bytes */
    struct buf head;        /* the upstream response head being read */
    int ssl_write_len;      /* length of an SSL_write to retry, 0 when none */
    bool tls_want_write;    /* handshake interest */
    bool write_wants_read;  /* SSL_write needs the socket readable */
    bool read_wants_write;  /* SSL_read needs the socket writable */
    bool up_eof;            /* the upstream ended its stream */
    bool up_shut;           /* our write side toward the upstream is shut */
    bool guest_eof;         /* the guest ended its stream (every byte before it queued) */
    bool recorded;          /* the connection's row is written */
    bool body_until_eof;    /* non-101 answer without a length */
    uint64_t body_left;     /* non-101 answer: body bytes still to forward */
};

/* Hop-by-hop fields of the guest's head that do not go upstream; Upgrade and
 * Connection do (they are the handshake). Host is written by us. */
static const char *const ws_hop[] = {"keep-alive", "proxy-connection", "proxy-authenticate",
                                     "proxy-authorization", "te", "trailer",
                                     "transfer-encoding", "expect", "content-length", "host"};

static bool ws_is_hop(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(ws_hop); i++)
        if (strlen(ws_hop[i]) == len && strncasecmp(name, ws_hop[i], len) == 0)
            return true;
    return false;
}

static void ws_pump(struct pconn *c);

static bool ws_alive(const struct pconn *c)
{
    return c->ws && c->state == PC_WS;
}

static void ws_arm(struct pconn *c, unsigned seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(c->ws->timer, &tv);
}

/* An error before anything of the answer went to the guest: a generated
 * response (it writes the row and closes). */
static void ws_fail(struct pconn *c, int status, const char *reason, const char *detail)
{
    c->ws->recorded = true;
    pconn_reply(c, status, reason, c->dec.rule, detail);
}

/* The connection's one row, then close. */
static void ws_finish(struct pconn *c, const char *reason, const char *detail, bool graceful)
{
    struct pws *w = c->ws;
    if (!w->recorded) {
        w->recorded = true;
        if (w->phase == WS_SPLICE)
            proxy_record(c, "websocket", 101, "allowed", c->dec.rule, reason, detail);
        else
            proxy_record(c, c->tls ? "https" : "http", c->resp_status,
                         reason ? "error" : "allowed", c->dec.rule, reason, detail);
    }
    pconn_close(c, graceful);
}

/* ---------- the dial address ---------- */

static int ws_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    char tmp[300];
    if (str_copy(tmp, sizeof(tmp), ip) < 0)
        return -1;
    char *h = tmp;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h[n - 1] = '\0';
        h++;
    }
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return 0;
    }
    return -1;
}

/* c->dec.dial ("ip:port") when set, else the first address of
 * c->dec.resolve ("host:port:ip[,ip...]"). */
static int ws_dial_addr(const struct pconn *c, struct sockaddr_storage *ss, socklen_t *len,
                        char *what, size_t what_cap)
{
    char ip[300];
    unsigned long port;
    if (c->dec.dial[0]) {
        const char *colon = strrchr(c->dec.dial, ':');
        if (!colon || (size_t)(colon - c->dec.dial) >= sizeof(ip))
            return -1;
        memcpy(ip, c->dec.dial, (size_t)(colon - c->dec.dial));
        ip[colon - c->dec.dial] = '\0';
        port = strtoul(colon + 1, NULL, 10);
    } else if (c->dec.resolve[0]) {
        const char *last = strrchr(c->dec.resolve, ':');
        const char *p = last;
        while (p && p > c->dec.resolve && p[-1] != ':')
            p--;
        if (!last || p == c->dec.resolve)
            return -1;
        port = strtoul(p, NULL, 10);
        size_t n = strcspn(last + 1, ",");
        if (n == 0 || n >= sizeof(ip))
            return -1;
        memcpy(ip, last + 1, n);
        ip[n] = '\0';
    } else {
        return -1;
    }
    snprintf(what, what_cap, "%s:%lu", ip, port);
    if (port == 0 || port > 65535)
        return -1;
    return ws_sockaddr(ip, (unsigned)port, ss, len);
}

/* ---------- the request head ---------- */

static const char *ws_subst_for(const struct pconn *c, const struct http1_header *h)
{
    for (size_t i = 0; i < c->dec.nsubst && i < PROXY_MAX_SUBST; i++) {
        const struct proxy_subst *s = &c->dec.subst[i];
        if (strlen(s->name) == h->name_len && strncasecmp(h->name, s->name, h->name_len) == 0)
            return s->value;
    }
    return NULL;
}

/* Substituted values come from the host's credential store: one that could
 * forge header lines fails the request. */
static const char *ws_check_rewrites(const struct pconn *c)
{
    for (size_t i = 0; i < c->dec.nsubst && i < PROXY_MAX_SUBST; i++) {
        const struct proxy_subst *s = &c->dec.subst[i];
        if (!s->name[0] || strpbrk(s->value, "\r\n") || strpbrk(s->name, "\r\n: \t"))
            return "a credential substitution is malformed";
    }
    const char *t = c->dec.target_rewrite;
    if (t[0] && (t[0] != '/' || strpbrk(t, "\r\n \t")))
        return "rewritten request target is malformed";
    return NULL;
}

static int ws_build_request(struct pconn *c)
{
    struct pws *w = c->ws;
    const struct proxy_request *r = &c->req;
    const char *target = c->target;
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        const char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : "/";
    }
    if (c->dec.target_rewrite[0])
        target = c->dec.target_rewrite;
    bool default_port = c->dst_port == (c->tls ? 443 : 80);
    int rc = default_port
                 ? buf_printf(&w->up, "%s %s HTTP/1.1\r\nHost: %s\r\n", c->method, target, c->host)
                 : buf_printf(&w->up, "%s %s HTTP/1.1\r\nHost: %s:%u\r\n", c->method, target,
                              c->host, c->dst_port);
    for (size_t i = 0; rc >= 0 && i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        if (ws_is_hop(h->name, h->name_len))
            continue;
        const char *sub = ws_subst_for(c, h);
        rc = buf_printf(&w->up, "%s: %s\r\n", h->name, sub ? sub : h->value);
    }
    if (rc >= 0)
        rc = buf_append_str(&w->up, "\r\n");
    return rc < 0 ? -1 : 0;
}

/* ---------- socket interest ---------- */

static void ws_set(struct event *ev, bool on)
{
    if (on && !event_pending(ev, EV_READ | EV_WRITE, NULL))
        event_add(ev, NULL);
    else if (!on)
        event_del(ev);
}

static void ws_interest(struct pconn *c)
{
    struct pws *w = c->ws;
    bool rd = false, wr = false;
    switch (w->phase) {
    case WS_CONNECT:
        wr = true;
        break;
    case WS_TLS:
        wr = w->tls_want_write;
        rd = !w->tls_want_write;
        break;
    case WS_HEAD:
    case WS_SPLICE:
    case WS_BODY:
        rd = (!w->up_eof && (w->phase == WS_HEAD || pconn_room(c) > 0)) || w->write_wants_read;
        wr = w->up.len > 0 || w->read_wants_write;
        break;
    }
    ws_set(w->rev, rd);
    ws_set(w->wev, wr);
}

/* ---------- writing toward the upstream ---------- */

/* Returns -1 when the connection was closed. */
static int ws_write(struct pconn *c)
{
    struct pws *w = c->ws;
    w->write_wants_read = false;
    while (w->up.len > 0) {
        ssize_t n;
        if (w->ssl) {
            int len = w->ssl_write_len ? w->ssl_write_len
                                       : (int)MIN(w->up.len, (size_t)WS_IO_CHUNK);
            ERR_clear_error();
            int k = SSL_write(w->ssl, buf_head(&w->up), len);
            if (k <= 0) {
                int e = SSL_get_error(w->ssl, k);
                w->ssl_write_len = len;
                if (e == SSL_ERROR_WANT_WRITE)
                    return 0;
                if (e == SSL_ERROR_WANT_READ) {
                    w->write_wants_read = true;
                    return 0;
                }
                n = -1;
            } else {
                w->ssl_write_len = 0;
                n = k;
            }
        } else {
            n = send(w->fd, buf_head(&w->up), w->up.len, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        }
        if (n < 0) {
            char detail[160];
            snprintf(detail, sizeof(detail), "writing to the upstream failed: %s",
                     w->ssl ? "TLS error" : strerror(errno));
            ERR_clear_error();
            if (w->phase == WS_HEAD)
                ws_fail(c, 502, "upstream_connect", detail);
            else
                ws_finish(c, "upstream_reset", detail, false);
            return -1;
        }
        size_t before = w->up.len;
        buf_consume(&w->up, (size_t)n);
        if (before >= WS_UP_HIGH && w->up.len < WS_UP_HIGH && w->phase == WS_SPLICE) {
            pconn_resume_input(c); /* the guest may send again */
            if (!ws_alive(c))
                return -1;
        }
    }
    return 0;
}

/* The guest ended its stream and everything before it went out: end ours. */
static void ws_shut_upstream(struct pconn *c)
{
    struct pws *w = c->ws;
    if (w->phase != WS_SPLICE || !w->guest_eof || w->up.len > 0 || w->up_shut)
        return;
    w->up_shut = true;
    if (w->ssl) {
        ERR_clear_error();
        SSL_shutdown(w->ssl); /* close_notify; the read side stays open */
        ERR_clear_error();
    }
    shutdown(w->fd, SHUT_WR);
}

/* ---------- the response head ---------- */

static void ws_deliver(struct pconn *c, const uint8_t *d, size_t n);

static void ws_on_head(struct pconn *c, const struct http1_response *resp, size_t used)
{
    struct pws *w = c->ws;
    c->resp_status = resp->status;
    c->ttfb_ms = (int64_t)(time_real_ms() - c->req_started_ms);
    c->upstream_version = resp->version_minor == 0 ? "1.0" : "1.1";
    bool upgraded = resp->status == 101;
    /* The raw upstream head for the row (a NUL after it, not counted). */
    buf_reset(&c->resp_head);
    uint8_t *nul;
    if (buf_append(&c->resp_head, buf_head(&w->head), used) == 0 &&
        (nul = buf_reserve(&c->resp_head, 1)) != NULL)
        *nul = '\0';
    else
        buf_reset(&c->resp_head);
    struct buf out;
    buf_init(&out, WS_HEAD_MAX + 256);
    buf_printf(&out, "HTTP/1.1 %d %s\r\n", resp->status, http1_status_text(resp->status));
    bool has_length = false, chunked = false;
    uint64_t length = 0;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct http1_header *h = &resp->headers[i];
        if (!upgraded) {
            if (strcasecmp(h->name, "connection") == 0 || strcasecmp(h->name, "keep-alive") == 0 ||
                strcasecmp(h->name, "proxy-connection") == 0)
                continue;
            if (strcasecmp(h->name, "transfer-encoding") == 0)
                chunked = true;
            if (strcasecmp(h->name, "content-length") == 0) {
                has_length = true;
                length = strtoull(h->value, NULL, 10);
            }
        }
        buf_printf(&out, "%s: %s\r\n", h->name, h->value);
    }
    if (!upgraded)
        buf_append_str(&out, "Connection: close\r\n");
    buf_append_str(&out, "\r\n");
    pconn_output_plain(c, buf_head(&out), out.len);
    buf_free(&out);
    if (!ws_alive(c))
        return;
    const uint8_t *rest = buf_head(&w->head) + used;
    size_t nrest = w->head.len - used;
    if (upgraded) {
        w->phase = WS_SPLICE;
    } else {
        w->phase = WS_BODY;
        bool no_body = strcmp(c->method, "HEAD") == 0 || resp->status == 204 ||
                       resp->status == 304 || resp->status < 200;
        w->body_until_eof = !no_body && (chunked || !has_length);
        w->body_left = no_body || w->body_until_eof ? 0 : length;
    }
    ws_arm(c, proxy_limits(c->p)->upstream_idle_s);
    if (nrest > 0) {
        uint8_t *copy = malloc(nrest);
        if (!copy) {
            ws_finish(c, "internal", "out of memory", false);
            return;
        }
        memcpy(copy, rest, nrest);
        buf_reset(&w->head);
        ws_deliver(c, copy, nrest);
        free(copy);
    } else {
        buf_reset(&w->head);
        if (w->phase == WS_BODY && !w->body_until_eof && w->body_left == 0) {
            ws_finish(c, NULL, NULL, true);
            return;
        }
    }
    if (ws_alive(c) && w->phase == WS_SPLICE)
        pconn_resume_input(c); /* guest bytes that waited for the 101 */
}

/* Upstream bytes after the head, toward the guest. */
static void ws_deliver(struct pconn *c, const uint8_t *d, size_t n)
{
    struct pws *w = c->ws;
    if (w->phase == WS_BODY && !w->body_until_eof)
        n = (size_t)MIN((uint64_t)n, w->body_left);
    if (n > 0) {
        pconn_output_plain(c, d, n);
        c->bytes_down += n;
        ws_arm(c, proxy_limits(c->p)->upstream_idle_s);
    }
    if (!ws_alive(c))
        return;
    if (w->phase == WS_BODY && !w->body_until_eof) {
        w->body_left -= n;
        if (w->body_left == 0)
            ws_finish(c, NULL, NULL, true);
    }
}

static void ws_got(struct pconn *c, const uint8_t *d, size_t n)
{
    struct pws *w = c->ws;
    if (w->phase != WS_HEAD) {
        ws_deliver(c, d, n);
        return;
    }
    buf_append(&w->head, d, n); /* the read was sized to fit */
    struct http1_response resp;
    struct err *e = NULL;
    ssize_t used = http1_response_parse(buf_head(&w->head), w->head.len, WS_HEAD_MAX,
                                        WS_HEAD_FIELDS, &resp, &e);
    if (used < 0) {
        ws_fail(c, 502, "upstream_protocol", err_msg(e));
        err_free(e);
        return;
    }
    if (used == 0) {
        if (w->head.len >= WS_HEAD_MAX)
            ws_fail(c, 502, "upstream_protocol", "upstream response head larger than 100 KiB");
        return;
    }
    ws_on_head(c, &resp, (size_t)used);
    http1_response_free(&resp);
}

/* ---------- reading from the upstream ---------- */

/* Returns -1 when the connection was closed. */
static int ws_read(struct pconn *c)
{
    struct pws *w = c->ws;
    w->read_wants_write = false;
    uint8_t tmp[WS_IO_CHUNK];
    while (!w->up_eof) {
        size_t want = w->phase == WS_HEAD ? buf_room(&w->head) : pconn_room(c);
        want = MIN(want, sizeof(tmp));
        if (want == 0)
            return 0; /* the guest is not reading: wait for on_writable */
        ssize_t n;
        if (w->ssl) {
            ERR_clear_error();
            int k = SSL_read(w->ssl, tmp, (int)want);
            if (k > 0) {
                n = k;
            } else {
                int e = SSL_get_error(w->ssl, k);
                if (e == SSL_ERROR_WANT_READ)
                    return 0;
                if (e == SSL_ERROR_WANT_WRITE) {
                    w->read_wants_write = true;
                    return 0;
                }
                /* close_notify, or a TCP FIN without one: both end the stream */
                n = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0) ? 0 : -1;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
                if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) ==
                                              SSL_R_UNEXPECTED_EOF_WHILE_READING)
                    n = 0;
#endif
                ERR_clear_error();
            }
        } else {
            n = recv(w->fd, tmp, want, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        }
        if (n < 0) {
            if (w->phase == WS_HEAD)
                ws_fail(c, 502, "upstream_protocol", "reading from the upstream failed");
            else
                ws_finish(c, "upstream_reset", "reading from the upstream failed", false);
            return -1;
        }
        if (n == 0) {
            w->up_eof = true;
            break;
        }
        ws_got(c, tmp, (size_t)n);
        if (!ws_alive(c))
            return -1;
    }
    /* The upstream ended its stream. */
    if (w->phase == WS_HEAD)
        ws_fail(c, 502, "upstream_protocol", "the upstream closed before a complete response head");
    else if (w->phase == WS_BODY && !w->body_until_eof)
        ws_finish(c, "upstream_truncated", "the upstream closed before the end of the body", false);
    else
        ws_finish(c, NULL, NULL, true);
    return -1;
}

static void ws_pump(struct pconn *c)
{
    if (ws_write(c) < 0)
        return;
    ws_shut_upstream(c);
    if (ws_read(c) < 0)
        return;
    ws_shut_upstream(c); /* the 101 may have just started the splice */
    ws_interest(c);
}

/* ---------- connect and TLS ---------- */

static void ws_start_head(struct pconn *c)
{
    struct pws *w = c->ws;
    w->phase = WS_HEAD;
    ws_arm(c, proxy_limits(c->p)->upstream_idle_s);
    ws_pump(c);
}

static void ws_handshake(struct pconn *c)
{
    struct pws *w = c->ws;
    ERR_clear_error();
    int rc = SSL_connect(w->ssl);
    if (rc == 1) {
        ws_start_head(c);
        return;
    }
    int e = SSL_get_error(w->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        w->tls_want_write = e == SSL_ERROR_WANT_WRITE;
        ws_interest(c);
        return;
    }
    char detail[300];
    long vr = SSL_get_verify_result(w->ssl);
    if (vr != X509_V_OK) {
        snprintf(detail, sizeof(detail), "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else {
        char ossl[256] = "connection closed during the handshake";
        unsigned long err = ERR_get_error();
        if (err)
            ERR_error_string_n(err, ossl, sizeof(ossl));
        snprintf(detail, sizeof(detail), "TLS handshake failed: %s", ossl);
    }
    ERR_clear_error();
    ws_fail(c, 502, "upstream_tls", detail);
}

static int ws_tls_setup(struct pconn *c, char *detail, size_t cap)
{
    struct pws *w = c->ws;
    w->ctx = SSL_CTX_new(TLS_client_method());
    if (!w->ctx)
        return snprintf(detail, cap, "cannot create a TLS context"), -1;
    SSL_CTX_set_min_proto_version(w->ctx, TLS1_2_VERSION);
    if (SSL_CTX_set_default_verify_paths(w->ctx) != 1)
        return snprintf(detail, cap, "cannot load the default trust store"), -1;
    if (c->dec.ca_file[0] && SSL_CTX_load_verify_locations(w->ctx, c->dec.ca_file, NULL) != 1)
        return snprintf(detail, cap, "cannot load the override's CA file (ca_file)"), -1;
    SSL_CTX_set_verify(w->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(w->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    w->ssl = SSL_new(w->ctx);
    if (!w->ssl || SSL_set_fd(w->ssl, w->fd) != 1)
        return snprintf(detail, cap, "cannot create a TLS session"), -1;
    X509_VERIFY_PARAM *param = SSL_get0_param(w->ssl);
    struct in6_addr any;
    bool literal =
        inet_pton(AF_INET, c->host, &any) == 1 || inet_pton(AF_INET6, c->host, &any) == 1;
    int ok;
    if (literal) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(param, c->host);
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = X509_VERIFY_PARAM_set1_host(param, c->host, 0) == 1 &&
             SSL_set_tlsext_host_name(w->ssl, c->host) == 1;
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    if (ok != 1 || SSL_set_alpn_protos(w->ssl, alpn, sizeof(alpn) - 1) != 0)
        return snprintf(detail, cap, "cannot set the TLS server name"), -1;
    SSL_set_connect_state(w->ssl);
    return 0;
}

static void ws_connected(struct pconn *c)
{
    struct pws *w = c->ws;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    if (soerr == EINPROGRESS || soerr == EALREADY ||
        (!soerr && getpeername(w->fd, (struct sockaddr *)&peer, &plen) < 0 && errno == ENOTCONN))
        return; /* still connecting */
    if (soerr) {
        char detail[160];
        snprintf(detail, sizeof(detail), "connect: %s", strerror(soerr));
        ws_fail(c, 502, "upstream_connect", detail);
        return;
    }
    if (!c->tls) {
        ws_start_head(c);
        return;
    }
    char detail[300];
    if (ws_tls_setup(c, detail, sizeof(detail)) < 0) {
        ERR_clear_error();
        ws_fail(c, 502, "upstream_tls", detail);
        return;
    }
    w->phase = WS_TLS;
    ws_handshake(c);
}

static void ws_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *c = arg;
    if (!ws_alive(c))
        return;
    switch (c->ws->phase) {
    case WS_CONNECT:
        ws_connected(c);
        break;
    case WS_TLS:
        ws_handshake(c);
        break;
    default:
        ws_pump(c);
        break;
    }
}

static void ws_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pconn *c = arg;
    if (!ws_alive(c))
        return;
    struct pws *w = c->ws;
    char detail[160];
    if (w->phase == WS_CONNECT || w->phase == WS_TLS) {
        snprintf(detail, sizeof(detail), "no connection to the upstream within %u s",
                 proxy_limits(c->p)->upstream_connect_s);
        ws_fail(c, 504, "upstream_timeout", detail);
    } else if (w->phase == WS_HEAD) {
        snprintf(detail, sizeof(detail), "no response head within %u s",
                 proxy_limits(c->p)->upstream_idle_s);
        ws_fail(c, 504, "upstream_timeout", detail);
    } else {
        snprintf(detail, sizeof(detail), "no traffic for %u s",
                 proxy_limits(c->p)->upstream_idle_s);
        ws_finish(c, "idle_timeout", detail, true);
    }
}

/* ---------- entry points (proxy_int.h) ---------- */

void pconn_ws_start(struct pconn *c)
{
    struct pws *w = calloc(1, sizeof(*w));
    if (!w) {
        pconn_reply(c, 502, "upstream_connect", c->dec.rule, "out of memory");
        return;
    }
    c->ws = w;
    c->state = PC_WS;
    w->fd = -1;
    buf_init(&w->up, WS_UP_MAX);
    buf_init(&w->head, WS_HEAD_MAX);
    c->resp_status = 0;
    const char *bad = ws_check_rewrites(c);
    if (bad) {
        ws_fail(c, 502, "upstream_connect", bad);
        return;
    }
    if (ws_build_request(c) < 0) {
        ws_fail(c, 502, "upstream_connect", "the request head is too large");
        return;
    }
    struct sockaddr_storage ss;
    socklen_t slen;
    char what[320] = "";
    if (ws_dial_addr(c, &ss, &slen, what, sizeof(what)) < 0) {
        char detail[400];
        snprintf(detail, sizeof(detail), "no usable IP address to dial (%s)",
                 what[0] ? what : "none given");
        ws_fail(c, 502, "upstream_connect", detail);
        return;
    }
    w->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct event_base *base = proxy_base(c->p);
    if (w->fd >= 0) {
        w->rev = event_new(base, w->fd, EV_READ | EV_PERSIST, ws_io_cb, c);
        w->wev = event_new(base, w->fd, EV_WRITE | EV_PERSIST, ws_io_cb, c);
    }
    w->timer = evtimer_new(base, ws_timer_cb, c);
    if (w->fd < 0 || !w->rev || !w->wev || !w->timer) {
        ws_fail(c, 502, "upstream_connect", "cannot create a socket");
        return;
    }
    int one = 1;
    setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ws_arm(c, proxy_limits(c->p)->upstream_connect_s);
    w->phase = WS_CONNECT;
    if (connect(w->fd, (struct sockaddr *)&ss, slen) == 0) {
        ws_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        char detail[400];
        snprintf(detail, sizeof(detail), "connect to %s: %s", what, strerror(errno));
        ws_fail(c, 502, "upstream_connect", detail);
        return;
    }
    ws_interest(c);
}

bool pconn_ws_can_take(const struct pconn *c)
{
    const struct pws *w = c->ws;
    return w && w->phase == WS_SPLICE && !w->guest_eof && w->up.len < WS_UP_HIGH;
}

void pconn_ws_guest_data(struct pconn *c, const uint8_t *data, size_t len)
{
    struct pws *w = c->ws;
    if (!w || len == 0)
        return;
    if (buf_append(&w->up, data, len) < 0) {
        ws_finish(c, "internal", "WebSocket queue toward the upstream overflowed", false);
        return;
    }
    c->bytes_up += len;
    ws_arm(c, proxy_limits(c->p)->upstream_idle_s);
    event_active(w->wev, EV_WRITE, 0); /* written from the loop, not from here */
}

void pconn_ws_guest_eof(struct pconn *c)
{
    struct pws *w = c->ws;
    if (!w || w->guest_eof)
        return;
    w->guest_eof = true;
    if (w->phase == WS_SPLICE)
        event_active(w->wev, EV_WRITE, 0); /* earlier phases look at it on entering the splice */
}

void pconn_ws_guest_writable(struct pconn *c)
{
    struct pws *w = c->ws;
    if (w && w->rev && (w->phase == WS_SPLICE || w->phase == WS_BODY) && pconn_room(c) > 0 &&
        !w->up_eof)
        event_active(w->rev, EV_READ, 0);
}

void pconn_ws_free(struct pconn *c)
{
    struct pws *w = c->ws;
    if (!w)
        return;
    if (!w->recorded) {
        /* Ended from outside (the guest reset, the proxy stopped). */
        w->recorded = true;
        if (w->phase == WS_SPLICE)
            proxy_record(c, "websocket", 101, "allowed", c->dec.rule, "client_aborted", NULL);
        else
            proxy_record(c, c->tls ? "https" : "http", c->resp_status, "error", c->dec.rule,
                         "client_aborted", "the guest went away during a WebSocket upgrade");
    }
    c->ws = NULL;
    if (w->rev)
        event_free(w->rev);
    if (w->wev)
        event_free(w->wev);
    if (w->timer)
        event_free(w->timer);
    if (w->ssl)
        SSL_free(w->ssl);
    if (w->ctx)
        SSL_CTX_free(w->ctx);
    if (w->fd >= 0)
        close(w->fd);
    buf_free(&w->up);
    buf_free(&w->head);
    free(w);
}
