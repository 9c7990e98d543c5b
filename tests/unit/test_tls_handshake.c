/* In-process TLS handshakes over a socketpair between an OpenSSL client
 * (trusting only the throwaway CA, verifying the host name or IP) and the
 * guest-facing server context (src/lib/tls/tlsctx.h). The server side runs
 * the way the proxy does: it reads the first bytes itself, classifies them,
 * parses the ClientHello, picks the name, then replays the bytes into the
 * SSL through memory BIOs. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "tap.h"
#include "tls/ca.h"
#include "tls/clienthello.h"
#include "tls/leaf.h"
#include "tls/tlsctx.h"

static char root[] = "/tmp/capsem-test-tls-hs-XXXXXX";

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

struct opts {
    const char *sni;          /* client SNI (NULL: none) */
    const char *verify_host;  /* client checks this DNS name */
    const char *verify_ip;    /* or this IP */
    const char *alpn;         /* wire-format ALPN list (NULL: none) */
    size_t alpn_len;
    int min_version, max_version;
    const char *client_ciphers;
    int trust_nothing;        /* client store without the CA */
    const char *pin_name;     /* server: name when the hello has no usable SNI */
    const char *force_name;   /* server: name regardless of SNI */
    int callback_mode;        /* server: pass NULL, let the ClientHello callback decide */
};

struct result {
    int client_ok, server_ok;
    long verify;
    int client_alert_rcvd; /* description or -1 */
    const char *server_alert;
    bool server_alert_sent;
    char alpn[32];
    int version;
    int chain_len;
    char peer_san[256];
    int data_ok;
    struct clienthello ch;
};

static void client_info(const SSL *ssl, int where, int ret)
{
    struct result *r = SSL_get_app_data(ssl);
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && r->client_alert_rcvd < 0)
        r->client_alert_rcvd = ret & 0xff;
}

static SSL *make_client(X509 *ca, const struct opts *o, struct result *r, int fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!o->trust_nothing)
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->min_version)
        SSL_CTX_set_min_proto_version(ctx, o->min_version);
    if (o->max_version)
        SSL_CTX_set_max_proto_version(ctx, o->max_version);
    if (o->client_ciphers)
        SSL_CTX_set_cipher_list(ctx, o->client_ciphers);
    SSL_CTX_set_info_callback(ctx, client_info);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    SSL_set_app_data(ssl, r);
    SSL_set_fd(ssl, fd);
    if (o->sni)
        SSL_set_tlsext_host_name(ssl, o->sni);
    if (o->verify_host)
        SSL_set1_host(ssl, o->verify_host);
    if (o->verify_ip)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o->verify_ip);
    if (o->alpn)
        SSL_set_alpn_protos(ssl, (const unsigned char *)o->alpn, (unsigned)o->alpn_len);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Server side of one connection, proxy style. */
struct server {
    int fd;
    uint8_t first[CLIENTHELLO_RAW_MAX + 1024];
    size_t first_len;
    struct clienthello_parser *parser;
    SSL *ssl;
    BIO *rbio, *wbio;
    int failed, done;
};

static void server_flush(struct server *s)
{
    char buf[16384];
    int n;
    while (s->wbio && (n = BIO_read(s->wbio, buf, sizeof(buf))) > 0)
        fd_write_all(s->fd, buf, (size_t)n);
}

/* Before the SSL exists: read, classify, parse; then create it. */
static void server_prehello(struct server *s, struct tlsctx *tc, const struct opts *o,
                            struct result *r)
{
    ssize_t n = read(s->fd, s->first + s->first_len, sizeof(s->first) - s->first_len);
    if (n <= 0)
        return;
    size_t start = s->first_len, used;
    s->first_len += (size_t)n;
    if (conn_classify(s->first, s->first_len) != CONN_CLASS_TLS) {
        s->failed = 1;
        return;
    }
    enum clienthello_status st =
        clienthello_parser_feed(s->parser, s->first + start, s->first_len - start, &used);
    if (st == CLIENTHELLO_NEED_MORE)
        return;
    if (st == CLIENTHELLO_ERROR) {
        s->failed = 1;
        return;
    }
    r->ch = *clienthello_parser_result(s->parser);
    const char *name = r->ch.has_sni ? r->ch.sni : o->pin_name;
    if (o->force_name)
        name = o->force_name;
    struct err *e = NULL;
    s->ssl = tlsctx_ssl_new(tc, o->callback_mode ? NULL : name, &e);
    if (!s->ssl) {
        diag("tlsctx_ssl_new: %s", e ? err_msg(e) : "?");
        err_free(e);
        s->failed = 1;
        return;
    }
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    BIO_write(s->rbio, s->first, (int)s->first_len);
}

static void server_step(struct server *s, struct tlsctx *tc, const struct opts *o,
                        struct result *r)
{
    if (s->failed || s->done)
        return;
    if (!s->ssl) {
        server_prehello(s, tc, o, r);
        if (!s->ssl)
            return;
    } else {
        char buf[16384];
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0)
            BIO_write(s->rbio, buf, (int)n);
    }
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        s->done = 1;
    } else {
        int err = SSL_get_error(s->ssl, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            s->failed = 1;
    }
    server_flush(s);
}

static void exchange(SSL *c, struct server *s, struct result *r)
{
    SSL_write(c, "ping", 4);
    char buf[64];
    int got = -1;
    for (int i = 0; i < 50 && got <= 0; i++) {
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0)
            BIO_write(s->rbio, buf, (int)n);
        got = SSL_read(s->ssl, buf, sizeof(buf));
    }
    if (got != 4 || memcmp(buf, "ping", 4) != 0)
        return;
    SSL_write(s->ssl, "pong", 4);
    server_flush(s);
    got = -1;
    for (int i = 0; i < 50 && got <= 0; i++)
        got = SSL_read(c, buf, sizeof(buf));
    r->data_ok = got == 4 && memcmp(buf, "pong", 4) == 0;
}

static void peer_info(SSL *c, struct result *r)
{
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(c, &alpn, &alen);
    snprintf(r->alpn, sizeof(r->alpn), "%.*s", (int)alen, alpn ? (const char *)alpn : "");
    r->version = SSL_version(c);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c);
    r->chain_len = chain ? sk_X509_num(chain) : 0;
    X509 *peer = SSL_get0_peer_certificate(c);
    GENERAL_NAMES *gens = peer ? X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL) : NULL;
    if (gens && sk_GENERAL_NAME_num(gens) > 0) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
        if (g->type == GEN_DNS)
            snprintf(r->peer_san, sizeof(r->peer_san), "DNS:%s",
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        else if (g->type == GEN_IPADD)
            snprintf(r->peer_san, sizeof(r->peer_san), "IP:%d bytes",
                     ASN1_STRING_length(g->d.iPAddress));
    }
    GENERAL_NAMES_free(gens);
}

static struct result run(struct tlsctx *tc, X509 *ca, const struct opts *o)
{
    struct result r;
    memset(&r, 0, sizeof(r));
    r.client_alert_rcvd = -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return r;
    fd_set_nonblock(sv[0], true);
    fd_set_nonblock(sv[1], true);
    SSL *c = make_client(ca, o, &r, sv[0]);
    struct server *s = calloc(1, sizeof(*s));
    s->fd = sv[1];
    s->parser = clienthello_parser_new(NULL);
    int cdone = 0, cfail = 0;
    for (int i = 0; i < 200 && !(cdone && s->done) && !(cfail && s->failed); i++) {
        if (!cdone && !cfail) {
            int rc = SSL_connect(c);
            int err = rc == 1 ? 0 : SSL_get_error(c, rc);
            if (rc == 1)
                cdone = 1;
            else if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                cfail = 1;
        }
        server_step(s, tc, o, &r);
        if ((cfail || s->failed) && i > 20)
            break;
    }
    r.client_ok = cdone;
    r.server_ok = s->done;
    r.verify = SSL_get_verify_result(c);
    if (s->ssl)
        r.server_alert = tlsctx_alert(s->ssl, &r.server_alert_sent);
    if (cdone) {
        peer_info(c, &r);
        if (s->done)
            exchange(c, s, &r);
    }
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s->ssl);
    clienthello_parser_free(s->parser);
    close(sv[0]);
    close(sv[1]);
    free(s);
    return r;
}

#define ALPN_H2_H1 "\x02h2\x08http/1.1"
#define ALPN_H2    "\x02h2"

static void test_success(struct tlsctx *tc, X509 *ca)
{
    struct opts o = {.sni = "api.example.com", .verify_host = "api.example.com",
                     .alpn = ALPN_H2_H1, .alpn_len = 12};
    struct result r = run(tc, ca, &o);
    ok(r.client_ok && r.server_ok, "SNI: handshake completes");
    is_int(r.verify, X509_V_OK, "client verified the chain and host");
    is_str(r.alpn, "http/1.1", "ALPN http/1.1 chosen over h2");
    is_int(r.version, TLS1_3_VERSION, "TLS 1.3");
    is_int(r.chain_len, 2, "chain [leaf, CA] sent");
    is_str(r.peer_san, "DNS:api.example.com", "leaf SAN");
    ok(r.data_ok, "data flows both ways");
    ok(r.ch.has_sni && strcmp(r.ch.sni, "api.example.com") == 0, "parser saw the SNI");
    ok(r.server_alert == NULL, "no alert");

    o.max_version = TLS1_2_VERSION;
    r = run(tc, ca, &o);
    ok(r.client_ok && r.server_ok && r.version == TLS1_2_VERSION && r.data_ok &&
           strcmp(r.alpn, "http/1.1") == 0,
       "TLS 1.2 client works");

    struct opts nosni = {.verify_host = "pinned.example.org", .pin_name = "pinned.example.org"};
    r = run(tc, ca, &nosni);
    ok(r.client_ok && r.server_ok && r.verify == X509_V_OK && r.data_ok && r.alpn[0] == '\0',
       "no SNI: caller-given pin-set name verifies, no ALPN offered -> none");
    ok(!r.ch.has_sni && !r.ch.sni_is_ip, "parser saw no SNI");

    struct opts ip = {.verify_ip = "93.184.216.34", .pin_name = "93.184.216.34",
                      .alpn = ALPN_H2_H1, .alpn_len = 12};
    r = run(tc, ca, &ip);
    ok(r.client_ok && r.server_ok && r.verify == X509_V_OK && r.data_ok,
       "IP literal: IP SAN verifies");
    is_str(r.peer_san, "IP:4 bytes", "IP SAN in the leaf");

    struct opts ipsni = {.sni = "93.184.216.34", .verify_ip = "93.184.216.34",
                         .pin_name = "93.184.216.34"};
    r = run(tc, ca, &ipsni);
    ok(r.ch.sni_is_ip && !r.ch.has_sni && r.client_ok && r.server_ok,
       "IP literal in SNI treated as no SNI");

    static const char *const names[] = {"github.com", "api.openai.com", "a.b.c.d.example",
                                        "xn--bcher-kva.example", "localhost"};
    int good = 0;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct opts n = {.sni = names[i], .verify_host = names[i]};
        r = run(tc, ca, &n);
        good += r.client_ok && r.server_ok && r.verify == X509_V_OK && r.data_ok;
    }
    is_int(good, (int)ARRAY_SIZE(names), "several names on one context");

    struct opts cb = {.sni = "cb.example.net", .verify_host = "cb.example.net",
                      .callback_mode = 1};
    r = run(tc, ca, &cb);
    ok(r.client_ok && r.server_ok && r.data_ok, "callback mode: leaf minted from the SNI");
    is_str(r.peer_san, "DNS:cb.example.net", "callback mode SAN");
}

static void test_failures(struct tlsctx *tc, X509 *ca)
{
    struct opts h2 = {.sni = "h2.example.com", .verify_host = "h2.example.com", .alpn = ALPN_H2,
                      .alpn_len = 3};
    struct result r = run(tc, ca, &h2);
    ok(!r.client_ok && !r.server_ok, "h2-only client fails");
    is_int(r.client_alert_rcvd, 120, "client got no_application_protocol");
    ok(r.server_alert && strcmp(r.server_alert, "no_application_protocol") == 0 &&
           r.server_alert_sent,
       "server recorded sending %s", r.server_alert ? r.server_alert : "(none)");

    struct opts old = {.sni = "old.example.com", .min_version = TLS1_VERSION,
                       .max_version = TLS1_1_VERSION, .client_ciphers = "DEFAULT:@SECLEVEL=0"};
    r = run(tc, ca, &old);
    ok(!r.client_ok && !r.server_ok, "TLS 1.1 client fails");
    ok(r.server_alert && strcmp(r.server_alert, "protocol_version") == 0 && r.server_alert_sent,
       "server sent %s", r.server_alert ? r.server_alert : "(none)");
    is_int(r.client_alert_rcvd, 70, "client got protocol_version");

    struct opts untrusted = {.sni = "u.example.com", .verify_host = "u.example.com",
                             .trust_nothing = 1};
    r = run(tc, ca, &untrusted);
    ok(!r.client_ok && !r.server_ok, "client without the CA fails");
    ok(r.server_alert && strcmp(r.server_alert, "unknown_ca") == 0 && !r.server_alert_sent,
       "server recorded the guest's %s", r.server_alert ? r.server_alert : "(none)");

    struct opts mismatch = {.sni = "a.example.com", .verify_host = "a.example.com",
                            .force_name = "b.example.com"};
    r = run(tc, ca, &mismatch);
    ok(!r.client_ok && r.verify == X509_V_ERR_HOSTNAME_MISMATCH,
       "caller-given name wins over the SNI (client sees b.example.com)");

    struct opts cbnosni = {.verify_host = "x.example", .callback_mode = 1};
    r = run(tc, ca, &cbnosni);
    ok(!r.client_ok && !r.server_ok && r.server_alert &&
           strcmp(r.server_alert, "unrecognized_name") == 0,
       "callback mode without SNI: %s", r.server_alert ? r.server_alert : "(none)");

    struct err *e = NULL;
    SSL *ssl = tlsctx_ssl_new(tc, "bad_name.example", &e);
    ok(!ssl && e && e->status == 400, "invalid name refused: %s", e ? err_msg(e) : "");
    err_free(e);
    SSL_free(ssl);

    is_str(tls_alert_name(48), "unknown_ca", "alert name 48");
    is_str(tls_alert_name(200), "unknown_alert", "unknown alert value");
}

static void test_context(struct tlsctx *tc)
{
    SSL_CTX *ctx = tlsctx_ssl_ctx(tc);
    is_int(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION, "min TLS 1.2");
    is_int(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION, "max TLS 1.3");
    ok(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION, "no renegotiation");
    is_int(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF, "no session cache");
    is_int(SSL_CTX_get_num_tickets(ctx), 0, "no tickets");
}

int main(void)
{
    if (!mkdtemp(root))
        return 1;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ca", root);
    struct err *e = NULL;
    struct ca *ca = ca_create(dir, "hs-test", &e);
    struct leaf_cache *lc = ca ? leaf_cache_new(ca, 0, &e) : NULL;
    struct tlsctx *tc = lc ? tlsctx_new(lc, &e) : NULL;
    ok(tc != NULL, "CA, leaf cache, server context: %s", e ? err_msg(e) : "ok");
    err_free(e);
    if (tc) {
        test_context(tc);
        test_success(tc, ca_cert(ca));
        test_failures(tc, ca_cert(ca));
    }
    tlsctx_free(tc);
    leaf_cache_free(lc);
    ca_free(ca);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
