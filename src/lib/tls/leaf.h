/* Leaf certificates minted per name and their per-VM LRU cache (network.md
 * section 5; docs/tls.md).
 *
 * One P-256 key per cache (capsem-process has one cache, so one key per
 * process), generated at leaf_cache_new(). Per name: SAN = the DNS name (IP
 * SAN for an IPv4/IPv6 literal), EKU serverAuth, keyUsage digitalSignature,
 * basicConstraints CA:FALSE, random 128-bit serial, notBefore now - 1 h,
 * notAfter now + 24 h, issuer = the CA; chain [leaf, CA]. Subject CN = the
 * name when it fits in 64 characters, else an empty subject with a critical
 * SAN. The cache keeps `capacity` names (LRU); an entry with less than 1 h of
 * validity left (or not yet valid: clock moved back) is re-minted on use.
 * Denied names are minted like any other: the caller decides.
 *
 * Not thread-safe: one cache per reactor thread. */
#ifndef CAPSEM_TLS_LEAF_H
#define CAPSEM_TLS_LEAF_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/err.h"
#include "tls/ca.h"

#define LEAF_CACHE_DEFAULT  1024
#define LEAF_LIFETIME_SECS  (24 * 3600)
#define LEAF_BACKDATE_SECS  3600
#define LEAF_REMINT_MARGIN  3600 /* re-mint when less than this is left */

struct leaf_cache;

/* ca is borrowed only during the call: the cache takes its own references to
 * the CA certificate and key, so it may outlive the struct ca (a rotated CA
 * does not affect running VMs). capacity 0 means LEAF_CACHE_DEFAULT. */
struct leaf_cache *leaf_cache_new(const struct ca *ca, size_t capacity, struct err **errp);
void leaf_cache_free(struct leaf_cache *lc);

/* The certificate for name (DNS name, any case; or an IPv4/IPv6 literal),
 * minted on a miss or when stale. Borrowed: valid until the next
 * leaf_cache_get*() or leaf_cache_install() call (which may evict it); take a
 * reference (X509_up_ref) to keep it longer. Invalid names fail with status
 * 400. */
X509 *leaf_cache_get(struct leaf_cache *lc, const char *name, struct err **errp);
/* Same, with the clock given (tests). */
X509 *leaf_cache_get_at(struct leaf_cache *lc, const char *name, time_t now, struct err **errp);

/* Installs the leaf for name on ssl: certificate, the cache's private key and
 * the chain [CA] (SSL_use_certificate / SSL_use_PrivateKey / SSL_set1_chain;
 * ssl takes its own references, so a later eviction is harmless). */
int leaf_cache_install(struct leaf_cache *lc, SSL *ssl, const char *name, struct err **errp);

/* Borrowed, valid until leaf_cache_free(). */
EVP_PKEY *leaf_cache_key(const struct leaf_cache *lc);
X509 *leaf_cache_ca_cert(const struct leaf_cache *lc);
STACK_OF(X509) *leaf_cache_chain(const struct leaf_cache *lc); /* [CA] */

struct leaf_cache_stats {
    size_t size;
    size_t capacity;
    uint64_t hits;
    uint64_t mints;   /* new names */
    uint64_t remints; /* stale entries replaced */
    uint64_t evictions;
};
void leaf_cache_get_stats(const struct leaf_cache *lc, struct leaf_cache_stats *out);

#endif
