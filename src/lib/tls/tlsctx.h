/* The guest-facing TLS server context (network.md section 5; docs/tls.md).
 *
 * One SSL_CTX per capsem-process: TLS 1.2 and 1.3 only, OpenSSL's default
 * ciphers and groups, ALPN selects `http/1.1` and nothing else (a client
 * offering ALPN without it fails with no_application_protocol; a client
 * offering no ALPN gets none), no renegotiation, no session resumption (no
 * tickets, no cache), no early data, SSL_MODE_RELEASE_BUFFERS and
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER for use on a reactor. No certificate
 * lives on the SSL_CTX: each SSL gets its leaf, either before the handshake
 * (the usual path: the proxy parsed the raw ClientHello and picked the name:
 * SNI, pin-set name or IP literal) or from the ClientHello callback (SNI).
 *
 * Not thread-safe (the leaf cache is used from the handshake): one tlsctx
 * per reactor thread. */
#ifndef CAPSEM_TLS_TLSCTX_H
#define CAPSEM_TLS_TLSCTX_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "base/err.h"
#include "tls/leaf.h"

struct tlsctx;

/* lc is borrowed and must outlive the tlsctx and every SSL made from it. */
struct tlsctx *tlsctx_new(struct leaf_cache *lc, struct err **errp);
/* SSL objects made from it stay valid (they hold a reference to the SSL_CTX)
 * but must not start a handshake after this if they rely on the callback. */
void tlsctx_free(struct tlsctx *tc);

/* Borrowed. */
SSL_CTX *tlsctx_ssl_ctx(const struct tlsctx *tc);

/* A new server-side SSL (accept state, no BIO attached: the caller sets its
 * BIOs and first replays the raw ClientHello bytes it already read). Owned by
 * the caller (SSL_free).
 * name != NULL: the leaf for name (DNS name or IP literal) is installed now;
 *   whatever SNI the client sent does not change it.
 * name == NULL: the ClientHello callback mints for the client's SNI; without a
 *   usable DNS SNI (none, or an IP literal) the handshake fails with
 *   unrecognized_name, a malformed one with decode_error. */
SSL *tlsctx_ssl_new(struct tlsctx *tc, const char *name, struct err **errp);

/* The first fatal alert of ssl's connection, as its RFC 8446 name
 * ("unknown_ca", "no_application_protocol"...), with *sent = whether we sent
 * it (false: the guest did). NULL when there was none. Static strings. */
const char *tlsctx_alert(const SSL *ssl, bool *sent);

/* RFC name of a TLS alert description; "alert_<n>" style names are not
 * produced: unknown values give "unknown_alert". */
const char *tls_alert_name(int desc);

#endif
