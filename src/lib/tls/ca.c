/* The per-install MITM CA: creation, loading with permission checks,
 * rotation (ca.h). OpenSSL does all the cryptography and X.509 encoding. */
#include "tls/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "tls/tlsutil.h"

#define CA_FILE_MAX (64 * 1024)

struct ca {
    X509 *cert;
    EVP_PKEY *key;
    char *pem; /* certificate PEM, NUL-terminated */
    size_t pem_len;
};

static void bio_freep(BIO **b)
{
    BIO_free(*b);
}
static void x509_freep(X509 **x)
{
    X509_free(*x);
}
static void pkey_freep(EVP_PKEY **k)
{
    EVP_PKEY_free(*k);
}
#define _cleanup_bio_  __attribute__((cleanup(bio_freep)))
#define _cleanup_x509_ __attribute__((cleanup(x509_freep)))
#define _cleanup_pkey_ __attribute__((cleanup(pkey_freep)))

void ca_free(struct ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->pem);
    free(ca);
}

X509 *ca_cert(const struct ca *ca)
{
    return ca->cert;
}

EVP_PKEY *ca_key(const struct ca *ca)
{
    return ca->key;
}

const char *ca_cert_pem(const struct ca *ca, size_t *len)
{
    if (len)
        *len = ca->pem_len;
    return ca->pem;
}

int ca_fingerprint_sha256(const struct ca *ca, char out[96], struct err **errp)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(ca->cert, EVP_sha256(), md, &n) || n != 32)
        return tls_err(errp, "cannot compute the CA fingerprint");
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
    return 0;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name, struct err **errp)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return err_set(errp, ENAMETOOLONG, "path too long: %s/%s", dir, name);
    return 0;
}

static int check_install_id(const char *id, struct err **errp)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > CA_INSTALL_ID_MAX)
        return err_status(errp, 400, "install id must be 1 to %d characters", CA_INSTALL_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return err_status(errp, 400, "install id may only contain [A-Za-z0-9._-]");
    }
    return 0;
}

/* Wraps cert + key (ownership taken on success) and renders the PEM. */
static struct ca *ca_wrap(X509 *cert, EVP_PKEY *key, struct err **errp)
{
    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    if (!bio || !PEM_write_bio_X509(bio, cert)) {
        tls_err(errp, "cannot encode the CA certificate");
        return NULL;
    }
    long n = BIO_get_mem_data(bio, &data);
    struct ca *ca = calloc(1, sizeof(*ca));
    char *pem = malloc((size_t)n + 1);
    if (!ca || !pem || n <= 0) {
        free(ca);
        free(pem);
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(pem, data, (size_t)n);
    pem[n] = '\0';
    ca->cert = cert;
    ca->key = key;
    ca->pem = pem;
    ca->pem_len = (size_t)n;
    return ca;
}

static X509 *build_ca_cert(EVP_PKEY *key, const char *install_id, struct err **errp)
{
    _cleanup_x509_ X509 *x = X509_new();
    char cn[80];
    snprintf(cn, sizeof(cn), "capsem MITM CA %s", install_id);
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    if (!x || !X509_set_version(x, X509_VERSION_3) ||
        !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (unsigned char *)cn, -1,
                                    -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key)) {
        tls_err(errp, "cannot build the CA certificate");
        return NULL;
    }
    if (tls_set_random_serial(x, errp) < 0 ||
        tls_set_validity(x, time(NULL), -3600, CA_VALIDITY_DAYS, 0, errp) < 0 ||
        tls_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", errp) < 0 ||
        tls_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", errp) < 0 ||
        tls_add_ext(x, x, NID_subject_key_identifier, "hash", errp) < 0)
        return NULL;
    if (!X509_sign(x, key, EVP_sha256())) {
        tls_err(errp, "cannot sign the CA certificate");
        return NULL;
    }
    return steal_pointer(&x);
}

static struct ca *ca_generate(const char *install_id, struct err **errp)
{
    _cleanup_pkey_ EVP_PKEY *key = tls_gen_p256(errp);
    if (!key)
        return NULL;
    _cleanup_x509_ X509 *cert = build_ca_cert(key, install_id, errp);
    if (!cert)
        return NULL;
    struct ca *ca = ca_wrap(cert, key, errp);
    if (ca) {
        cert = NULL;
        key = NULL;
    }
    return ca;
}

/* Key first: a crash between the two renames leaves a mismatched pair that
 * ca_load() reports, never a certificate whose key is lost. */
static int ca_write(const struct ca *ca, const char *dir, struct err **errp)
{
    char kpath[PATH_MAX], cpath[PATH_MAX];
    if (path_join(kpath, sizeof(kpath), dir, CA_KEY_FILE, errp) < 0 ||
        path_join(cpath, sizeof(cpath), dir, CA_CERT_FILE, errp) < 0)
        return -1;
    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_PrivateKey(bio, ca->key, NULL, NULL, 0, NULL, NULL))
        return tls_err(errp, "cannot encode the CA key");
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    int rc = file_write_atomic(kpath, data, (size_t)n, 0600, errp);
    OPENSSL_cleanse(data, (size_t)n);
    if (rc < 0)
        return -1;
    return file_write_atomic(cpath, ca->pem, ca->pem_len, 0644, errp);
}

static int prepare_dir(const char *dir, struct err **errp)
{
    if (mkdir_p(dir, 0700, errp) < 0)
        return -1;
    if (chmod(dir, 0700) < 0)
        return err_sys(errp, "chmod 700 %s", dir);
    return 0;
}

static int ca_exists(const char *dir, struct err **errp)
{
    char path[PATH_MAX];
    const char *names[] = {CA_CERT_FILE, CA_KEY_FILE};
    int found = 0;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct stat st;
        if (path_join(path, sizeof(path), dir, names[i], errp) < 0)
            return -1;
        if (lstat(path, &st) == 0)
            found = 1;
        else if (errno != ENOENT)
            return err_sys(errp, "stat %s", path);
    }
    return found;
}

struct ca *ca_create(const char *dir, const char *install_id, struct err **errp)
{
    if (check_install_id(install_id, errp) < 0 || prepare_dir(dir, errp) < 0)
        return NULL;
    int exists = ca_exists(dir, errp);
    if (exists < 0)
        return NULL;
    if (exists) {
        err_set(errp, EEXIST, "a CA already exists in %s (to replace it: capsem setup --rotate-ca)",
                dir);
        return NULL;
    }
    struct ca *ca = ca_generate(install_id, errp);
    if (ca && ca_write(ca, dir, errp) < 0) {
        ca_free(ca);
        return NULL;
    }
    return ca;
}

/* Reads a regular file through fd (already opened) into buf; -1 if larger. */
static ssize_t read_fd_capped(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = fd_read_retry(fd, buf + n, cap - n);
        if (r < 0)
            return -1;
        if (r == 0)
            return (ssize_t)n;
        n += (size_t)r;
        if (n == cap) {
            errno = EFBIG;
            return -1;
        }
    }
}

static int check_private_mode(const char *path, mode_t mode, bool is_dir, struct err **errp)
{
    if ((mode & 077) == 0)
        return 0;
    return err_set(errp, EACCES,
                   "%s %s is accessible by group or others (mode %04o); refusing to use it. Fix "
                   "it with: chmod %s %s",
                   is_dir ? "CA directory" : "CA key", path, (unsigned)(mode & 07777),
                   is_dir ? "700" : "600", path);
}

static EVP_PKEY *load_key(const char *dir, struct err **errp)
{
    char path[PATH_MAX];
    if (path_join(path, sizeof(path), dir, CA_KEY_FILE, errp) < 0)
        return NULL;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (errno == ENOENT)
            err_set(errp, ENOENT, "no CA key at %s (run: capsem setup)", path);
        else
            err_sys(errp, "open %s", path);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(errp, EINVAL, "%s is not a regular file", path);
        return NULL;
    }
    if (check_private_mode(path, st.st_mode, false, errp) < 0)
        return NULL;
    char buf[CA_FILE_MAX];
    ssize_t n = read_fd_capped(fd, buf, sizeof(buf));
    if (n < 0) {
        err_sys(errp, "read %s", path);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(buf, (int)n);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(buf, (size_t)n);
    if (!key)
        tls_err(errp, "%s is not a PEM private key (run: capsem setup --rotate-ca)", path);
    else if (!tls_key_is_p256(key)) {
        err_set(errp, EINVAL, "%s is not an ECDSA P-256 key (run: capsem setup --rotate-ca)",
                path);
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

static X509 *load_cert(const char *dir, struct err **errp)
{
    char path[PATH_MAX];
    if (path_join(path, sizeof(path), dir, CA_CERT_FILE, errp) < 0)
        return NULL;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, CA_FILE_MAX, &data, &len, errp) < 0) {
        if (*errp && (*errp)->code == ENOENT)
            err_prefix(errp, "no CA certificate (run: capsem setup)");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!cert)
        tls_err(errp, "%s is not a PEM certificate (run: capsem setup --rotate-ca)", path);
    return cert;
}

static int check_pair(const char *dir, X509 *cert, EVP_PKEY *key, struct err **errp)
{
    if (!X509_check_private_key(cert, key))
        return tls_err(errp, "%s/ca.crt does not match %s/ca.key (run: capsem setup --rotate-ca)",
                       dir, dir);
    if (X509_check_ca(cert) != 1)
        return err_set(errp, EINVAL, "%s/ca.crt is not a CA certificate", dir);
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
        return err_set(errp, EKEYEXPIRED,
                       "the CA certificate in %s has expired (run: capsem setup --rotate-ca)",
                       dir);
    return 0;
}

struct ca *ca_load(const char *dir, struct err **errp)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        if (errno == ENOENT)
            err_set(errp, ENOENT, "no CA directory %s (run: capsem setup)", dir);
        else
            err_sys(errp, "stat %s", dir);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        err_set(errp, ENOTDIR, "%s is not a directory", dir);
        return NULL;
    }
    if (check_private_mode(dir, st.st_mode, true, errp) < 0)
        return NULL;
    _cleanup_pkey_ EVP_PKEY *key = load_key(dir, errp);
    if (!key)
        return NULL;
    _cleanup_x509_ X509 *cert = load_cert(dir, errp);
    if (!cert || check_pair(dir, cert, key, errp) < 0)
        return NULL;
    struct ca *ca = ca_wrap(cert, key, errp);
    if (ca) {
        cert = NULL;
        key = NULL;
    }
    return ca;
}

/* Copies dir/name to dir/name.old with the given mode (atomic). */
static int keep_old(const char *dir, const char *name, mode_t mode, struct err **errp)
{
    char src[PATH_MAX], dst[PATH_MAX];
    if (path_join(src, sizeof(src), dir, name, errp) < 0 ||
        snprintf(dst, sizeof(dst), "%s.old", src) >= (int)sizeof(dst))
        return err_set(errp, ENAMETOOLONG, "path too long in %s", dir);
    struct stat st;
    if (lstat(src, &st) < 0 && errno == ENOENT)
        return 0; /* half a pair: nothing to keep of this one */
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (file_read_all(src, CA_FILE_MAX, &data, &len, errp) < 0)
        return -1;
    int rc = file_write_atomic(dst, data, len, mode, errp);
    OPENSSL_cleanse(data, len);
    return rc;
}

struct ca *ca_rotate(const char *dir, const char *install_id, struct err **errp)
{
    if (check_install_id(install_id, errp) < 0 || prepare_dir(dir, errp) < 0)
        return NULL;
    int exists = ca_exists(dir, errp);
    if (exists < 0)
        return NULL;
    struct ca *ca = ca_generate(install_id, errp);
    if (!ca)
        return NULL;
    if (exists && (keep_old(dir, CA_KEY_FILE, 0600, errp) < 0 ||
                   keep_old(dir, CA_CERT_FILE, 0644, errp) < 0)) {
        err_prefix(errp, "keeping the previous CA");
        ca_free(ca);
        return NULL;
    }
    if (ca_write(ca, dir, errp) < 0) {
        ca_free(ca);
        return NULL;
    }
    return ca;
}
