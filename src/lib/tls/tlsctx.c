/* Guest-facing TLS server context (tlsctx.h). */
#include "tls/tlsctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "base/util.h"
#include "tls/clienthello.h"
#include "tls/tlsutil.h"

struct tlsctx {
    SSL_CTX *ctx;
    struct leaf_cache *lc; /* borrowed */
};

/* Per-SSL state packed into one ex_data word (no allocation per connection):
 * bit 0 leaf preinstalled, bit 1 alert recorded, bit 2 alert sent by us,
 * bits 8-15 alert description. */
#define ST_PRESET     0x1u
#define ST_ALERT      0x2u
#define ST_ALERT_SENT 0x4u

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static uintptr_t st_get(const SSL *ssl)
{
    return (uintptr_t)SSL_get_ex_data(ssl, ex_index);
}

static void st_set(const SSL *ssl, uintptr_t v)
{
    /* ex_data is per-SSL bookkeeping; the info callback only gets a const SSL. */
    SSL_set_ex_data((SSL *)ssl, ex_index, (void *)v);
}

static void on_info(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_ALERT) || (ret >> 8) != SSL3_AL_FATAL)
        return;
    uintptr_t v = st_get(ssl);
    if (v & ST_ALERT)
        return; /* keep the first: it is the cause */
    v |= ST_ALERT | ((uintptr_t)(ret & 0xff) << 8);
    if (where & SSL_CB_WRITE)
        v |= ST_ALERT_SENT;
    st_set(ssl, v);
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned int i = 0; i < inlen;) {
        unsigned int l = in[i];
        if (l == 0 || l > inlen - i - 1)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* -> no_application_protocol */
}

static int on_client_hello(SSL *ssl, int *al, void *arg)
{
    struct tlsctx *tc = arg;
    if (st_get(ssl) & ST_PRESET)
        return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *ext = NULL;
    size_t len = 0;
    struct clienthello ch;
    memset(&ch, 0, sizeof(ch));
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) &&
        clienthello_parse_sni(ext, len, &ch, NULL, 0) < 0) {
        *al = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (!ch.has_sni) {
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (leaf_cache_install(tc->lc, ssl, ch.sni, NULL) < 0) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int configure(SSL_CTX *ctx, struct tlsctx *tc)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_num_tickets(ctx, 0))
        return -1;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, tc);
    SSL_CTX_set_info_callback(ctx, on_info);
    return 0;
}

struct tlsctx *tlsctx_new(struct leaf_cache *lc, struct err **errp)
{
    pthread_once(&ex_once, ex_init);
    if (ex_index < 0) {
        tls_err(errp, "cannot allocate SSL ex_data");
        return NULL;
    }
    struct tlsctx *tc = calloc(1, sizeof(*tc));
    if (!tc) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    tc->lc = lc;
    tc->ctx = SSL_CTX_new(TLS_server_method());
    if (!tc->ctx || configure(tc->ctx, tc) < 0) {
        tls_err(errp, "cannot create the guest TLS context");
        tlsctx_free(tc);
        return NULL;
    }
    return tc;
}

void tlsctx_free(struct tlsctx *tc)
{
    if (!tc)
        return;
    if (tc->ctx)
        SSL_CTX_set_client_hello_cb(tc->ctx, NULL, NULL);
    SSL_CTX_free(tc->ctx);
    free(tc);
}

SSL_CTX *tlsctx_ssl_ctx(const struct tlsctx *tc)
{
    return tc->ctx;
}

SSL *tlsctx_ssl_new(struct tlsctx *tc, const char *name, struct err **errp)
{
    SSL *ssl = SSL_new(tc->ctx);
    if (!ssl) {
        tls_err(errp, "cannot create a TLS connection");
        return NULL;
    }
    SSL_set_accept_state(ssl);
    if (name) {
        if (leaf_cache_install(tc->lc, ssl, name, errp) < 0) {
            SSL_free(ssl);
            return NULL;
        }
        st_set(ssl, ST_PRESET);
    }
    return ssl;
}

const char *tlsctx_alert(const SSL *ssl, bool *sent)
{
    uintptr_t v = st_get(ssl);
    if (!(v & ST_ALERT))
        return NULL;
    if (sent)
        *sent = (v & ST_ALERT_SENT) != 0;
    return tls_alert_name((int)((v >> 8) & 0xff));
}

const char *tls_alert_name(int desc)
{
    static const struct {
        int desc;
        const char *name;
    } names[] = {
        {0, "close_notify"},
        {10, "unexpected_message"},
        {20, "bad_record_mac"},
        {21, "decryption_failed"},
        {22, "record_overflow"},
        {30, "decompression_failure"},
        {40, "handshake_failure"},
        {41, "no_certificate"},
        {42, "bad_certificate"},
        {43, "unsupported_certificate"},
        {44, "certificate_revoked"},
        {45, "certificate_expired"},
        {46, "certificate_unknown"},
        {47, "illegal_parameter"},
        {48, "unknown_ca"},
        {49, "access_denied"},
        {50, "decode_error"},
        {51, "decrypt_error"},
        {70, "protocol_version"},
        {71, "insufficient_security"},
        {80, "internal_error"},
        {86, "inappropriate_fallback"},
        {90, "user_canceled"},
        {100, "no_renegotiation"},
        {109, "missing_extension"},
        {110, "unsupported_extension"},
        {112, "unrecognized_name"},
        {113, "bad_certificate_status_response"},
        {115, "unknown_psk_identity"},
        {116, "certificate_required"},
        {120, "no_application_protocol"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (names[i].desc == desc)
            return names[i].name;
    return "unknown_alert";
}
