/* Leaf certificates and their LRU cache (src/lib/tls/leaf.h): every field,
 * chain verification against the CA with X509_verify_cert (DNS and IP SANs),
 * eviction order, re-mint under 1 h of validity left. */
#include <arpa/inet.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "tap.h"
#include "tls/ca.h"
#include "tls/leaf.h"

static char root[] = "/tmp/capsem-test-tls-leaf-XXXXXX";

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

/* X509_verify_cert against a store holding only `anchor`, with the cache's
 * chain as untrusted intermediates; host or ip (one of them) must match. */
static int verify(X509 *leaf, X509 *anchor, STACK_OF(X509) *chain, const char *host,
                  const char *ip, time_t at)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, anchor);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, chain);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (host)
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, ip);
    if (at)
        X509_VERIFY_PARAM_set_time(param, at);
    int rc = X509_verify_cert(ctx);
    int result = rc == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    if (result == X509_V_OK)
        result = sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) == 2 ? 0 : -1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return result;
}

static GENERAL_NAME *only_san(X509 *x, int *crit)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, crit, NULL);
    GENERAL_NAME *g = NULL;
    if (gens && sk_GENERAL_NAME_num(gens) == 1)
        g = GENERAL_NAME_dup(sk_GENERAL_NAME_value(gens, 0));
    GENERAL_NAMES_free(gens);
    return g;
}

static char *serial_hex(X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = BN_bn2hex(bn);
    char *copy = strdup(h);
    OPENSSL_free(h);
    BN_free(bn);
    return copy;
}

static void test_fields(struct ca *ca, struct leaf_cache *lc)
{
    time_t now = time(NULL);
    struct err *e = NULL;
    X509 *x = leaf_cache_get(lc, "Api.Example.COM", &e);
    ok(x != NULL, "minted: %s", e ? err_msg(e) : "ok");
    err_free(e);
    if (!x)
        return;
    is_int(X509_get_version(x), X509_VERSION_3, "version 3");
    is_int(X509_get_signature_nid(x), NID_ecdsa_with_SHA256, "ecdsa-with-SHA256");
    is_int(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca_cert(ca))), 0,
           "issuer = CA subject");
    char cn[300] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    is_str(cn, "api.example.com", "subject CN (lowercased)");
    int crit = -1;
    GENERAL_NAME *g = only_san(x, &crit);
    ok(g && g->type == GEN_DNS && crit == 0, "one DNS SAN, not critical");
    if (g && g->type == GEN_DNS)
        is_str((const char *)ASN1_STRING_get0_data(g->d.dNSName), "api.example.com", "SAN value");
    GENERAL_NAME_free(g);
    is_int(X509_get_extended_key_usage(x), XKU_SSL_SERVER, "EKU serverAuth only");
    is_int(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE, "keyUsage digitalSignature");
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
    ok(ku && crit == 1, "keyUsage critical");
    ASN1_BIT_STRING_free(ku);
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    ok(bc && !bc->ca && crit == 1, "basicConstraints critical CA:FALSE");
    BASIC_CONSTRAINTS_free(bc);
    is_int(X509_check_ca(x), 0, "not a CA");
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    ok(aki && ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca_cert(ca))) == 0,
       "authorityKeyIdentifier = CA subjectKeyIdentifier");
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    ok(!BN_is_negative(bn) && BN_num_bits(bn) <= 128 && BN_num_bits(bn) >= 96,
       "128-bit random serial (%d bits)", BN_num_bits(bn));
    BN_free(bn);
    int days = -1, secs = -1;
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
    is_int(days * 86400 + secs, 25 * 3600, "validity window 25 h");
    ok(X509_cmp_time(X509_get0_notBefore(x), &(time_t){now - 3600 + 60}) < 0 &&
           X509_cmp_time(X509_get0_notBefore(x), &(time_t){now - 3600 - 60}) > 0,
       "notBefore = now - 1 h");
    ok(EVP_PKEY_eq(X509_get0_pubkey(x), leaf_cache_key(lc)) == 1, "the cache's leaf key");
    ok(EVP_PKEY_eq(X509_get0_pubkey(x), ca_key(ca)) != 1, "leaf key is not the CA key");
    is_int(X509_verify(x, X509_get0_pubkey(ca_cert(ca))), 1, "signed by the CA key");
    STACK_OF(X509) *chain = leaf_cache_chain(lc);
    ok(sk_X509_num(chain) == 1 && X509_cmp(sk_X509_value(chain, 0), ca_cert(ca)) == 0,
       "chain after the leaf is [CA]");
    is_int(verify(x, ca_cert(ca), chain, "api.example.com", NULL, 0), 0,
           "X509_verify_cert: chain [leaf, CA], host api.example.com");
    is_int(verify(x, ca_cert(ca), chain, "API.example.com", NULL, 0), 0, "host check ignores case");
    is_int(verify(x, ca_cert(ca), chain, "other.example.com", NULL, 0),
           X509_V_ERR_HOSTNAME_MISMATCH, "other host rejected");

    struct ca *other = ca_create(root, "other", NULL);
    ok(other && verify(x, ca_cert(other), NULL, "api.example.com", NULL, 0) != 0,
       "does not verify against another CA");
    ca_free(other);
}

static void test_ip_and_long(struct ca *ca, struct leaf_cache *lc)
{
    STACK_OF(X509) *chain = leaf_cache_chain(lc);
    X509 *x = leaf_cache_get(lc, "93.184.216.34", NULL);
    int crit = -1;
    GENERAL_NAME *g = x ? only_san(x, &crit) : NULL;
    static const unsigned char addr[4] = {93, 184, 216, 34};
    ok(g && g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4 &&
           memcmp(ASN1_STRING_get0_data(g->d.iPAddress), addr, 4) == 0,
       "IPv4 literal gets an IP SAN");
    GENERAL_NAME_free(g);
    ok(x && verify(x, ca_cert(ca), chain, NULL, "93.184.216.34", 0) == 0, "IP SAN verifies");
    ok(x && verify(x, ca_cert(ca), chain, NULL, "93.184.216.35", 0) == X509_V_ERR_IP_ADDRESS_MISMATCH,
       "other IP rejected");
    char cn[64] = "";
    if (x)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    is_str(cn, "93.184.216.34", "IP literal subject CN");

    x = leaf_cache_get(lc, "2001:db8::1", NULL);
    g = x ? only_san(x, &crit) : NULL;
    ok(g && g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 16, "IPv6 IP SAN");
    GENERAL_NAME_free(g);
    ok(x && verify(x, ca_cert(ca), chain, NULL, "2001:db8::1", 0) == 0, "IPv6 SAN verifies");

    char name[200];
    memset(name, 'a', sizeof(name));
    name[60] = name[120] = '.';
    name[180] = '\0';
    x = leaf_cache_get(lc, name, NULL);
    g = x ? only_san(x, &crit) : NULL;
    ok(x && X509_NAME_entry_count(X509_get_subject_name(x)) == 0 && g && crit == 1,
       "name > 64 chars: empty subject, critical SAN");
    GENERAL_NAME_free(g);
    ok(x && verify(x, ca_cert(ca), chain, name, NULL, 0) == 0, "long name verifies");

    static const char *const bad[] = {"",          "a..b",        "foo_bar.com", "127.1",
                                      "a.b.",      "exa mple.com", "[::1]",      "x\xc3\xa9.com"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct err *e = NULL;
        x = leaf_cache_get(lc, bad[i], &e);
        ok(!x && e && e->status == 400, "invalid name \"%s\" refused", bad[i]);
        err_free(e);
    }
    ok(leaf_cache_get(lc, NULL, NULL) == NULL, "NULL name refused");
    memset(name, 'b', sizeof(name));
    for (int i = 50; i < 200; i += 51)
        name[i] = '.';
    name[199] = '\0';
    char longer[300];
    snprintf(longer, sizeof(longer), "%s.%.53s", name, name);
    ok(strlen(longer) == 253 && leaf_cache_get(lc, longer, NULL) != NULL, "253-char name");
    snprintf(longer, sizeof(longer), "%s.%.54s", name, name);
    ok(strlen(longer) == 254 && leaf_cache_get(lc, longer, NULL) == NULL, "254-char name refused");
}

static void test_cache(struct ca *ca)
{
    struct leaf_cache *lc = leaf_cache_new(ca, 0, NULL);
    struct leaf_cache_stats st;
    char name[64];
    time_t t0 = time(NULL);
    X509 *a = leaf_cache_get_at(lc, "a.example", t0, NULL);
    char *sa = serial_hex(a);
    X509 *a2 = leaf_cache_get_at(lc, "A.EXAMPLE", t0 + 10, NULL);
    ok(a == a2, "same name (any case) is a cache hit");
    X509 *b = leaf_cache_get_at(lc, "b.example", t0, NULL);
    char *sb = serial_hex(b);
    ok(strcmp(sa, sb) != 0, "serials differ between names");
    free(sb);

    for (int i = 0; i < 1022; i++) {
        snprintf(name, sizeof(name), "n%d.example", i);
        leaf_cache_get_at(lc, name, t0, NULL);
    }
    leaf_cache_get_stats(lc, &st);
    ok(st.size == 1024 && st.capacity == 1024 && st.mints == 1024 && st.hits == 1 &&
           st.evictions == 0,
       "1024 names cached (size %zu, mints %llu)", st.size, (unsigned long long)st.mints);
    /* a.example is least recently used; touch it, then b.example is. */
    leaf_cache_get_at(lc, "a.example", t0 + 1, NULL);
    leaf_cache_get_at(lc, "new.example", t0 + 1, NULL);
    leaf_cache_get_stats(lc, &st);
    ok(st.size == 1024 && st.evictions == 1, "1025th name evicts one");
    X509 *again = leaf_cache_get_at(lc, "a.example", t0 + 2, NULL);
    char *sa2 = serial_hex(again);
    is_str(sa2, sa, "recently used a.example survived");
    free(sa2);
    uint64_t mints = st.mints;
    leaf_cache_get_at(lc, "b.example", t0 + 2, NULL);
    leaf_cache_get_stats(lc, &st);
    ok(st.mints == mints + 1 && st.evictions == 2, "b.example was evicted (re-minted on use)");
    leaf_cache_get_at(lc, "n0.example", t0 + 2, NULL);
    leaf_cache_get_stats(lc, &st);
    ok(st.mints == mints + 2 && st.evictions == 3,
       "b.example's re-entry evicted n0.example, the next LRU");
    free(sa);
    leaf_cache_free(lc);
}

static void test_remint(struct ca *ca)
{
    struct leaf_cache *lc = leaf_cache_new(ca, 4, NULL);
    struct leaf_cache_stats st;
    time_t t0 = time(NULL);
    char *s0 = serial_hex(leaf_cache_get_at(lc, "r.example", t0, NULL));
    char *s1 = serial_hex(leaf_cache_get_at(lc, "r.example", t0 + 23 * 3600, NULL));
    is_str(s1, s0, "exactly 1 h left: still served");
    X509 *x = leaf_cache_get_at(lc, "r.example", t0 + 23 * 3600 + 1, NULL);
    char *s2 = serial_hex(x);
    leaf_cache_get_stats(lc, &st);
    ok(strcmp(s2, s0) != 0 && st.remints == 1, "under 1 h left: re-minted");
    ok(verify(x, ca_cert(ca), leaf_cache_chain(lc), "r.example", NULL, t0 + 47 * 3600) == 0,
       "re-minted leaf valid 24 h from the re-mint");
    ok(verify(x, ca_cert(ca), leaf_cache_chain(lc), "r.example", NULL, t0 + 48 * 3600 + 1) ==
           X509_V_ERR_CERT_HAS_EXPIRED,
       "and expired after");
    x = leaf_cache_get_at(lc, "r.example", t0 - 3600, NULL);
    leaf_cache_get_stats(lc, &st);
    ok(st.remints == 2 && verify(x, ca_cert(ca), leaf_cache_chain(lc), "r.example", NULL,
                                 t0 - 3600) == 0,
       "clock moved back before notBefore: re-minted");
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof(name), "s%d.example", i);
        leaf_cache_get_at(lc, name, t0, NULL);
    }
    leaf_cache_get_stats(lc, &st);
    ok(st.size == 4 && st.evictions == 3, "capacity 4 honoured (evictions %llu)",
       (unsigned long long)st.evictions);
    free(s0), free(s1), free(s2);
    leaf_cache_free(lc);
}

int main(void)
{
    if (!mkdtemp(root))
        return 1;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/ca", root);
    struct err *e = NULL;
    struct ca *ca = ca_create(dir, "leaf-test", &e);
    ok(ca != NULL, "throwaway CA: %s", e ? err_msg(e) : "ok");
    err_free(e);
    if (!ca)
        return done_testing();
    struct leaf_cache *lc = leaf_cache_new(ca, 0, NULL);
    /* The cache holds its own references: freeing the CA object is fine. */
    struct ca *ca2 = ca_load(dir, NULL);
    test_fields(ca, lc);
    test_ip_and_long(ca, lc);
    leaf_cache_free(lc);
    lc = leaf_cache_new(ca2, 0, NULL);
    ca_free(ca2);
    ok(leaf_cache_get(lc, "after-free.example", NULL) != NULL &&
           X509_cmp(leaf_cache_ca_cert(lc), ca_cert(ca)) == 0,
       "cache outlives the struct ca it was made from");
    leaf_cache_free(lc);
    test_cache(ca);
    test_remint(ca);
    ca_free(ca);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
