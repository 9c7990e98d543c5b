/* Internal helpers of the tls/ module (tlsutil.h). */
#include "tls/tlsutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

int tls_err(struct err **errp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return err_set(errp, EPROTO, "%s", msg);
    char reason[256];
    ERR_error_string_n(e, reason, sizeof(reason));
    return err_set(errp, EPROTO, "%s: %s", msg, reason);
}

int tls_set_random_serial(X509 *x, struct err **errp)
{
    BIGNUM *bn = BN_new();
    int ok = bn != NULL;
    /* 128 random bits; retry the (2^-128) zero case so the serial is positive. */
    while (ok && (ok = BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) && BN_is_zero(bn))
        ;
    ok = ok && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : tls_err(errp, "cannot set a random certificate serial");
}

int tls_set_validity(X509 *x, time_t now, long before_secs, int after_days, long after_secs,
                     struct err **errp)
{
    if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, before_secs, &now) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), after_days, after_secs, &now))
        return tls_err(errp, "cannot set certificate validity");
    return 0;
}

int tls_add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct err **errp)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return tls_err(errp, "cannot build extension %s", OBJ_nid2sn(nid));
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : tls_err(errp, "cannot add extension %s", OBJ_nid2sn(nid));
}

EVP_PKEY *tls_gen_p256(struct err **errp)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key)
        tls_err(errp, "cannot generate a P-256 key");
    return key;
}

int tls_key_is_p256(EVP_PKEY *key)
{
    char group[64];
    size_t len = 0;
    if (!EVP_PKEY_is_a(key, "EC") ||
        !EVP_PKEY_get_group_name(key, group, sizeof(group), &len))
        return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}
