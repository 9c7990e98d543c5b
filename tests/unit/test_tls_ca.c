/* The per-install CA (src/lib/tls/ca.h): every field and extension of the
 * written certificate parsed back with OpenSSL, file modes, permission
 * refusals, mismatches, expiry, rotation. Throwaway CAs in a temp dir. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "tap.h"
#include "tls/ca.h"

static char root[] = "/tmp/capsem-test-tls-ca-XXXXXX";

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static void path(char *out, size_t cap, const char *dir, const char *name)
{
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
        abort();
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

static X509 *read_cert(const char *file)
{
    FILE *f = fopen(file, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    return x;
}

static char *slurp(const char *file, size_t *len)
{
    char *data = NULL;
    if (file_read_all(file, 1 << 20, &data, len, NULL) < 0)
        return NULL;
    return data;
}

static void check_fields(X509 *x, const char *install_id)
{
    is_int(X509_get_version(x), X509_VERSION_3, "version 3");
    is_int(X509_get_signature_nid(x), NID_ecdsa_with_SHA256, "signed ecdsa-with-SHA256");
    EVP_PKEY *pub = X509_get0_pubkey(x);
    char group[64] = "";
    size_t glen;
    EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen);
    ok(EVP_PKEY_is_a(pub, "EC") && strcmp(group, "prime256v1") == 0, "key EC P-256 (%s)", group);
    X509_NAME *subj = X509_get_subject_name(x);
    char cn[128] = "", want[128];
    X509_NAME_get_text_by_NID(subj, NID_commonName, cn, sizeof(cn));
    snprintf(want, sizeof(want), "capsem MITM CA %s", install_id);
    is_str(cn, want, "subject CN");
    is_int(X509_NAME_entry_count(subj), 1, "subject has only the CN");
    is_int(X509_NAME_cmp(X509_get_issuer_name(x), subj), 0, "issuer = subject");
    is_int(X509_verify(x, pub), 1, "self-signature verifies");

    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    ok(!BN_is_negative(serial) && BN_num_bits(serial) <= 128 && BN_num_bits(serial) >= 96,
       "random positive serial of <= 128 bits (%d)", BN_num_bits(serial));
    BN_free(serial);

    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    ok(bc && bc->ca && bc->pathlen && ASN1_INTEGER_get(bc->pathlen) == 0 && crit == 1,
       "basicConstraints critical CA:TRUE pathlen:0");
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
    ok(ku && crit == 1, "keyUsage critical");
    ASN1_BIT_STRING_free(ku);
    is_int(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN, "keyUsage keyCertSign+cRLSign");
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    ok(ski && ASN1_STRING_length(ski) == 20, "subjectKeyIdentifier present");
    is_int(X509_get_ext_count(x), 3, "exactly three extensions");
    is_int(X509_check_ca(x), 1, "OpenSSL sees a CA");

    int days = 0, secs = 0;
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
    is_int((long long)days * 86400 + secs, 3650LL * 86400 + 3600, "valid 10 years (+1 h backdate)");
    time_t now = time(NULL);
    ok(X509_cmp_time(X509_get0_notBefore(x), &(time_t){now - 3600 + 120}) < 0 &&
           X509_cmp_time(X509_get0_notBefore(x), &(time_t){now - 3600 - 120}) > 0,
       "notBefore is now - 1 h");
}

static void test_create(const char *dir)
{
    struct err *e = NULL;
    struct ca *ca = ca_create(dir, "inst-1234", &e);
    ok(ca != NULL, "ca_create: %s", e ? err_msg(e) : "ok");
    err_free(e);
    if (!ca)
        return;
    char crt[512], key[512];
    path(crt, sizeof(crt), dir, "ca.crt");
    path(key, sizeof(key), dir, "ca.key");
    is_int(mode_of(dir), 0700, "directory 0700");
    is_int(mode_of(crt), 0644, "ca.crt 0644");
    is_int(mode_of(key), 0600, "ca.key 0600");

    X509 *x = read_cert(crt);
    ok(x != NULL, "ca.crt parses as PEM");
    if (x) {
        check_fields(x, "inst-1234");
        is_int(X509_cmp(x, ca_cert(ca)), 0, "file matches the returned CA");
        X509_free(x);
    }
    size_t len, plen;
    char *file = slurp(crt, &len);
    const char *pem = ca_cert_pem(ca, &plen);
    ok(file && strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0, "PEM text");
    is_mem(pem, plen, file, len, "PEM for the guest equals ca.crt");
    free(file);

    FILE *kf = fopen(key, "r");
    EVP_PKEY *k = kf ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
    if (kf)
        fclose(kf);
    ok(k && EVP_PKEY_eq(k, ca_key(ca)) == 1, "ca.key holds the CA key (unencrypted PEM)");
    EVP_PKEY_free(k);

    char fp[96];
    unsigned char md[32];
    unsigned int mdlen;
    X509_digest(ca_cert(ca), EVP_sha256(), md, &mdlen);
    char want[8];
    snprintf(want, sizeof(want), "%02X:%02X", md[0], md[1]);
    ok(ca_fingerprint_sha256(ca, fp, NULL) == 0 && strlen(fp) == 95 &&
           strncmp(fp, want, 5) == 0,
       "SHA-256 fingerprint");

    struct ca *again = ca_create(dir, "inst-1234", &e);
    ok(!again && e && e->code == EEXIST && strstr(err_msg(e), "--rotate-ca"),
       "ca_create refuses to overwrite: %s", e ? err_msg(e) : "");
    err_free(e);
    e = NULL;

    struct ca *loaded = ca_load(dir, &e);
    ok(loaded && X509_cmp(ca_cert(loaded), ca_cert(ca)) == 0 &&
           EVP_PKEY_eq(ca_key(loaded), ca_key(ca)) == 1,
       "ca_load returns the same CA: %s", e ? err_msg(e) : "ok");
    err_free(e);
    ca_free(loaded);
    ca_free(ca);
}

static void expect_load_fail(const char *dir, int code, const char *needle, const char *what)
{
    struct err *e = NULL;
    struct ca *ca = ca_load(dir, &e);
    ok(!ca && e && (code == 0 || e->code == code) && strstr(err_msg(e), needle), "%s: %s", what,
       e ? err_msg(e) : "(loaded)");
    ca_free(ca);
    err_free(e);
}

static void test_permissions(const char *dir)
{
    char key[512];
    path(key, sizeof(key), dir, "ca.key");
    static const mode_t bad_key[] = {0640, 0604, 0644, 0620, 0601};
    for (size_t i = 0; i < ARRAY_SIZE(bad_key); i++) {
        chmod(key, bad_key[i]);
        char what[64];
        snprintf(what, sizeof(what), "key mode %04o refused", bad_key[i]);
        expect_load_fail(dir, EACCES, "chmod 600", what);
    }
    chmod(key, 0600);
    static const mode_t bad_dir[] = {0750, 0705, 0701, 0755};
    for (size_t i = 0; i < ARRAY_SIZE(bad_dir); i++) {
        chmod(dir, bad_dir[i]);
        char what[64];
        snprintf(what, sizeof(what), "directory mode %04o refused", bad_dir[i]);
        expect_load_fail(dir, EACCES, "chmod 700", what);
    }
    chmod(dir, 0700);
    chmod(key, 0400);
    struct ca *ca = ca_load(dir, NULL);
    ok(ca != NULL, "key 0400 accepted");
    ca_free(ca);
    chmod(key, 0600);

    char real[512];
    path(real, sizeof(real), dir, "real.key");
    rename(key, real);
    if (symlink("real.key", key) == 0) {
        expect_load_fail(dir, 0, "ca.key", "symlinked key refused");
        unlink(key);
    }
    rename(real, key);
    ca = ca_load(dir, NULL);
    ok(ca != NULL, "loads again after the fixes");
    ca_free(ca);
}

static void test_bad_material(const char *dir, const char *other)
{
    char crt[512], key[512], ocrt[512], save[512];
    path(crt, sizeof(crt), dir, "ca.crt");
    path(key, sizeof(key), dir, "ca.key");
    path(ocrt, sizeof(ocrt), other, "ca.crt");
    path(save, sizeof(save), dir, "saved.crt");
    size_t len;
    char *orig = slurp(crt, &len);

    struct ca *o = ca_create(other, "other", NULL);
    size_t olen;
    char *odata = slurp(ocrt, &olen);
    file_write_atomic(crt, odata, olen, 0644, NULL);
    expect_load_fail(dir, 0, "does not match", "certificate of another CA refused");
    free(odata);

    /* expired: same key, notAfter in the past, re-signed */
    struct ca *cur = NULL;
    file_write_atomic(crt, orig, len, 0644, NULL);
    cur = ca_load(dir, NULL);
    X509 *x = X509_dup(ca_cert(cur));
    time_t past = time(NULL) - 86400;
    X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &past);
    X509_sign(x, ca_key(cur), EVP_sha256());
    FILE *f = fopen(crt, "w");
    PEM_write_X509(f, x);
    fclose(f);
    X509_free(x);
    expect_load_fail(dir, EKEYEXPIRED, "expired", "expired CA refused");
    ca_free(cur);

    file_write_atomic(crt, "not a certificate\n", 18, 0644, NULL);
    expect_load_fail(dir, 0, "not a PEM certificate", "garbage certificate refused");
    file_write_atomic(crt, orig, len, 0644, NULL);

    char *korig = slurp(key, &len);
    file_write_atomic(key, "junk\n", 5, 0600, NULL);
    expect_load_fail(dir, 0, "not a PEM private key", "garbage key refused");
    /* an RSA key is refused too */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    f = fopen(key, "w");
    PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(rsa);
    expect_load_fail(dir, 0, "P-256", "RSA key refused");
    file_write_atomic(key, korig, strlen(korig), 0600, NULL);
    free(korig);
    free(orig);
    ca_free(o);

    struct ca *ca = ca_load(dir, NULL);
    ok(ca != NULL, "restored CA loads");
    ca_free(ca);

    char missing[512];
    path(missing, sizeof(missing), root, "nope");
    expect_load_fail(missing, ENOENT, "capsem setup", "missing directory");
    struct err *e = NULL;
    static const char *const bad_ids[] = {"", "a b", "x/y", "0123456789012345678901234567890123456789012345678"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
        char d[512];
        snprintf(d, sizeof(d), "%s/id%zu", root, i);
        ca = ca_create(d, bad_ids[i], &e);
        ok(!ca && e && e->status == 400, "install id \"%s\" refused", bad_ids[i]);
        err_free(e);
        e = NULL;
    }
    char d[512];
    snprintf(d, sizeof(d), "%s/id48", root);
    ca = ca_create(d, "012345678901234567890123456789012345678901234567", NULL);
    ok(ca != NULL, "48-character install id accepted");
    ca_free(ca);
}

static void test_rotate(const char *dir)
{
    char crt[512], key[512], ocrt[512], okey[512];
    path(crt, sizeof(crt), dir, "ca.crt");
    path(key, sizeof(key), dir, "ca.key");
    path(ocrt, sizeof(ocrt), dir, "ca.crt.old");
    path(okey, sizeof(okey), dir, "ca.key.old");
    size_t clen, klen, l1, l2;
    char *c0 = slurp(crt, &clen), *k0 = slurp(key, &klen);
    struct err *e = NULL;
    struct ca *ca = ca_rotate(dir, "inst-5678", &e);
    ok(ca != NULL, "ca_rotate: %s", e ? err_msg(e) : "ok");
    err_free(e);
    char *c1 = slurp(ocrt, &l1), *k1 = slurp(okey, &l2);
    ok(c1 && k1 && l1 == clen && l2 == klen && memcmp(c0, c1, clen) == 0 &&
           memcmp(k0, k1, klen) == 0,
       "previous pair kept as .old");
    ok(mode_of(okey) == 0600 && mode_of(ocrt) == 0644, ".old modes 0600 / 0644");
    X509 *x = read_cert(crt);
    if (x) {
        char cn[128] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        is_str(cn, "capsem MITM CA inst-5678", "new CA has the new install id");
        ok(ca && X509_cmp(x, ca_cert(ca)) == 0, "new certificate written");
        X509_free(x);
    }
    struct ca *loaded = ca_load(dir, NULL);
    ok(loaded && ca && EVP_PKEY_eq(ca_key(loaded), ca_key(ca)) == 1, "rotated CA loads");
    ca_free(loaded);
    ca_free(ca);
    free(c0), free(k0), free(c1), free(k1);

    char fresh[512];
    snprintf(fresh, sizeof(fresh), "%s/fresh", root);
    ca = ca_rotate(fresh, "inst-9", NULL);
    char o[512];
    path(o, sizeof(o), fresh, "ca.crt.old");
    ok(ca && access(o, F_OK) != 0, "rotate without a CA creates one, no .old");
    ca_free(ca);
}

int main(void)
{
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char dir[512], other[512];
    snprintf(dir, sizeof(dir), "%s/home/ca", root);
    snprintf(other, sizeof(other), "%s/other", root);
    test_create(dir);
    test_permissions(dir);
    test_bad_material(dir, other);
    test_rotate(dir);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
