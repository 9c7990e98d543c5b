/* Internal helpers shared by the tls/ module: OpenSSL error reporting into
 * struct err, random serials, X.509 extension helpers. Not for use outside
 * src/lib/tls/. */
#ifndef CAPSEM_TLS_TLSUTIL_H
#define CAPSEM_TLS_TLSUTIL_H

#include <time.h>

#include <openssl/types.h>

#include "base/err.h"

/* err_set() with the message followed by ": <OpenSSL reason>" (the oldest
 * queued error); clears OpenSSL's thread error queue. Returns -1. */
int tls_err(struct err **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets a random positive 128-bit serial number. */
int tls_set_random_serial(X509 *x, struct err **errp);

/* notBefore = now + before_secs, notAfter = now + after_days days + after_secs. */
int tls_set_validity(X509 *x, time_t now, long before_secs, int after_days, long after_secs,
                     struct err **errp);

/* Adds an extension given in openssl.cnf syntax with a fixed, trusted value
 * string ("critical,CA:TRUE,pathlen:0", "hash", "keyid:always"...). issuer
 * may equal x for self-signed certificates. Never pass peer data here. */
int tls_add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct err **errp);

/* Generates a P-256 key. */
EVP_PKEY *tls_gen_p256(struct err **errp);

/* Whether key is an EC key on P-256. */
int tls_key_is_p256(EVP_PKEY *key);

#endif
