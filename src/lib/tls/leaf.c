/* Leaf minting and the LRU certificate cache (leaf.h). A chained hash table
 * (FNV-1a over the normalised name) finds entries; a doubly linked list keeps
 * them in recency order. */
#include "tls/leaf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "tls/clienthello.h"
#include "tls/tlsutil.h"

struct leaf_entry {
    char name[TLS_NAME_MAX + 1]; /* normalised: lowercase / canonical address */
    enum tls_name_kind kind;
    X509 *cert;
    time_t not_before, not_after;
    struct leaf_entry *prev, *next; /* LRU list, head = most recent */
    struct leaf_entry *hnext;       /* hash bucket chain */
};

struct leaf_cache {
    X509 *ca_cert;
    EVP_PKEY *ca_key;
    EVP_PKEY *key;          /* the leaf key shared by every name */
    STACK_OF(X509) *chain;  /* [CA] */
    struct leaf_entry **buckets;
    size_t nbuckets;        /* power of two */
    struct leaf_entry *head, *tail;
    struct leaf_cache_stats st;
};

struct leaf_cache *leaf_cache_new(const struct ca *ca, size_t capacity, struct err **errp)
{
    struct leaf_cache *lc = calloc(1, sizeof(*lc));
    if (!lc) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    lc->st.capacity = capacity ? capacity : LEAF_CACHE_DEFAULT;
    lc->nbuckets = 16;
    while (lc->nbuckets < lc->st.capacity * 2)
        lc->nbuckets <<= 1;
    lc->buckets = calloc(lc->nbuckets, sizeof(*lc->buckets));
    lc->ca_cert = ca_cert(ca);
    lc->ca_key = ca_key(ca);
    X509_up_ref(lc->ca_cert);
    EVP_PKEY_up_ref(lc->ca_key);
    lc->chain = sk_X509_new_null();
    if (!lc->buckets || !lc->chain || !X509_up_ref(lc->ca_cert)) {
        err_set(errp, ENOMEM, "out of memory");
        leaf_cache_free(lc);
        return NULL;
    }
    /* The chain holds its own reference (taken just above). */
    if (!sk_X509_push(lc->chain, lc->ca_cert)) {
        X509_free(lc->ca_cert);
        err_set(errp, ENOMEM, "out of memory");
        leaf_cache_free(lc);
        return NULL;
    }
    lc->key = tls_gen_p256(errp);
    if (!lc->key) {
        err_prefix(errp, "leaf key");
        leaf_cache_free(lc);
        return NULL;
    }
    return lc;
}

void leaf_cache_free(struct leaf_cache *lc)
{
    if (!lc)
        return;
    for (struct leaf_entry *e = lc->head, *n; e; e = n) {
        n = e->next;
        X509_free(e->cert);
        free(e);
    }
    free(lc->buckets);
    sk_X509_pop_free(lc->chain, X509_free);
    EVP_PKEY_free(lc->key);
    EVP_PKEY_free(lc->ca_key);
    X509_free(lc->ca_cert);
    free(lc);
}

EVP_PKEY *leaf_cache_key(const struct leaf_cache *lc)
{
    return lc->key;
}

X509 *leaf_cache_ca_cert(const struct leaf_cache *lc)
{
    return lc->ca_cert;
}

STACK_OF(X509) *leaf_cache_chain(const struct leaf_cache *lc)
{
    return lc->chain;
}

void leaf_cache_get_stats(const struct leaf_cache *lc, struct leaf_cache_stats *out)
{
    *out = lc->st;
}

/* ---- minting ---- */

static int add_san(X509 *x, const char *name, enum tls_name_kind kind, int critical,
                   struct err **errp)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gen = GENERAL_NAME_new();
    int ok = gens && gen;
    if (ok && kind == TLS_NAME_DNS) {
        ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
        ok = ia5 && ASN1_STRING_set(ia5, name, (int)strlen(name));
        if (ok)
            GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
        else
            ASN1_IA5STRING_free(ia5);
    } else if (ok) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
        ok = ip != NULL;
        if (ok)
            GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
    }
    ok = ok && sk_GENERAL_NAME_push(gens, gen);
    if (!ok)
        GENERAL_NAME_free(gen);
    ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    return ok ? 0 : tls_err(errp, "cannot add the subjectAltName for %s", name);
}

static int set_names(struct leaf_cache *lc, X509 *x, const char *name, struct err **errp)
{
    X509_NAME *subj = X509_get_subject_name(x);
    size_t len = strlen(name);
    /* ub-common-name is 64; a longer name lives only in the (then critical) SAN. */
    if (len <= 64 && !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_ASC,
                                                 (const unsigned char *)name, (int)len, -1, 0))
        return tls_err(errp, "cannot set the subject of %s", name);
    if (!X509_set_issuer_name(x, X509_get_subject_name(lc->ca_cert)))
        return tls_err(errp, "cannot set the issuer of %s", name);
    return len <= 64 ? 0 : 1;
}

static X509 *mint(struct leaf_cache *lc, const char *name, enum tls_name_kind kind, time_t now,
                  struct err **errp)
{
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, lc->key)) {
        tls_err(errp, "cannot build a certificate for %s", name);
        X509_free(x);
        return NULL;
    }
    int empty_subject = set_names(lc, x, name, errp);
    if (empty_subject < 0 || tls_set_random_serial(x, errp) < 0 ||
        tls_set_validity(x, now, -LEAF_BACKDATE_SECS, 0, LEAF_LIFETIME_SECS, errp) < 0 ||
        add_san(x, name, kind, empty_subject, errp) < 0 ||
        tls_add_ext(x, lc->ca_cert, NID_basic_constraints, "critical,CA:FALSE", errp) < 0 ||
        tls_add_ext(x, lc->ca_cert, NID_key_usage, "critical,digitalSignature", errp) < 0 ||
        tls_add_ext(x, lc->ca_cert, NID_ext_key_usage, "serverAuth", errp) < 0 ||
        tls_add_ext(x, lc->ca_cert, NID_subject_key_identifier, "hash", errp) < 0 ||
        tls_add_ext(x, lc->ca_cert, NID_authority_key_identifier, "keyid:always", errp) < 0) {
        X509_free(x);
        return NULL;
    }
    if (!X509_sign(x, lc->ca_key, EVP_sha256())) {
        tls_err(errp, "cannot sign the certificate for %s", name);
        X509_free(x);
        return NULL;
    }
    return x;
}

/* ---- cache ---- */

static int normalise(const char *name, char out[TLS_NAME_MAX + 1], enum tls_name_kind *kind,
                     struct err **errp)
{
    size_t len = name ? strlen(name) : 0;
    *kind = tls_name_classify(name ? name : "", len);
    if (*kind == TLS_NAME_INVALID)
        return err_status(errp, 400, "not a valid host name or IP literal for a certificate");
    for (size_t i = 0; i <= len; i++) {
        char c = name[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return 0;
}

static size_t bucket_of(const struct leaf_cache *lc, const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h & (lc->nbuckets - 1));
}

static struct leaf_entry *lookup(const struct leaf_cache *lc, const char *name)
{
    for (struct leaf_entry *e = lc->buckets[bucket_of(lc, name)]; e; e = e->hnext)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct leaf_cache *lc, struct leaf_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        lc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        lc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct leaf_cache *lc, struct leaf_entry *e)
{
    e->next = lc->head;
    e->prev = NULL;
    if (lc->head)
        lc->head->prev = e;
    lc->head = e;
    if (!lc->tail)
        lc->tail = e;
}

static void hash_remove(struct leaf_cache *lc, struct leaf_entry *e)
{
    struct leaf_entry **pp = &lc->buckets[bucket_of(lc, e->name)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    e->hnext = NULL;
}

static void set_cert(struct leaf_entry *e, X509 *cert, time_t now)
{
    X509_free(e->cert);
    e->cert = cert;
    e->not_before = now - LEAF_BACKDATE_SECS;
    e->not_after = now + LEAF_LIFETIME_SECS;
}

/* A fresh entry for name: a new allocation, or the evicted LRU tail. */
static struct leaf_entry *take_entry(struct leaf_cache *lc)
{
    if (lc->st.size < lc->st.capacity) {
        struct leaf_entry *e = calloc(1, sizeof(*e));
        if (e)
            lc->st.size++;
        return e;
    }
    struct leaf_entry *e = lc->tail;
    lru_unlink(lc, e);
    hash_remove(lc, e);
    X509_free(e->cert);
    memset(e, 0, sizeof(*e));
    lc->st.evictions++;
    return e;
}

static X509 *insert_new(struct leaf_cache *lc, const char *name, enum tls_name_kind kind,
                        time_t now, struct err **errp)
{
    X509 *cert = mint(lc, name, kind, now, errp);
    if (!cert)
        return NULL;
    struct leaf_entry *e = take_entry(lc);
    if (!e) {
        X509_free(cert);
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(e->name, name, strlen(name) + 1);
    e->kind = kind;
    set_cert(e, cert, now);
    size_t b = bucket_of(lc, e->name);
    e->hnext = lc->buckets[b];
    lc->buckets[b] = e;
    lru_push_front(lc, e);
    lc->st.mints++;
    return e->cert;
}

X509 *leaf_cache_get_at(struct leaf_cache *lc, const char *name, time_t now, struct err **errp)
{
    char norm[TLS_NAME_MAX + 1];
    enum tls_name_kind kind;
    if (normalise(name, norm, &kind, errp) < 0)
        return NULL;
    struct leaf_entry *e = lookup(lc, norm);
    if (!e)
        return insert_new(lc, norm, kind, now, errp);
    if (now < e->not_before || e->not_after - now < LEAF_REMINT_MARGIN) {
        X509 *cert = mint(lc, norm, kind, now, errp);
        if (!cert)
            return NULL;
        set_cert(e, cert, now);
        lc->st.remints++;
    } else {
        lc->st.hits++;
    }
    lru_unlink(lc, e);
    lru_push_front(lc, e);
    return e->cert;
}

X509 *leaf_cache_get(struct leaf_cache *lc, const char *name, struct err **errp)
{
    return leaf_cache_get_at(lc, name, time(NULL), errp);
}

int leaf_cache_install(struct leaf_cache *lc, SSL *ssl, const char *name, struct err **errp)
{
    X509 *cert = leaf_cache_get(lc, name, errp);
    if (!cert)
        return -1;
    if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, lc->key) != 1 ||
        SSL_set1_chain(ssl, lc->chain) != 1)
        return tls_err(errp, "cannot install the certificate for %s", name);
    return 0;
}
