/* The per-install MITM CA (network.md section 5; docs/tls.md).
 *
 * Layout: <dir>/ca.crt (PEM, 0644), <dir>/ca.key (PEM PKCS#8, 0600), dir
 * 0700; ca_rotate() keeps the previous pair as ca.crt.old / ca.key.old.
 * Certificate: ECDSA P-256 / SHA-256, CN "capsem MITM CA <install-id>",
 * basicConstraints critical CA:TRUE pathlen:0, keyUsage critical
 * keyCertSign+cRLSign, subjectKeyIdentifier, 10 years.
 *
 * A struct ca owns its certificate and key; accessors return borrowed
 * pointers valid until ca_free(). Users that outlive it (the leaf cache) take
 * their own references (X509_up_ref / EVP_PKEY_up_ref). Not thread-safe to
 * free while in use; read-only use from several threads is fine. */
#ifndef CAPSEM_TLS_CA_H
#define CAPSEM_TLS_CA_H

#include <stddef.h>

#include <openssl/types.h>

#include "base/err.h"

#define CA_CERT_FILE       "ca.crt"
#define CA_KEY_FILE        "ca.key"
#define CA_VALIDITY_DAYS   3650
#define CA_INSTALL_ID_MAX  48 /* keeps the CN within X.509's 64 characters */

struct ca;

/* Creates a new CA in dir (created 0700 if missing; an existing dir is set to
 * 0700). install_id: 1..48 characters of [A-Za-z0-9._-]. Both files are
 * written atomically (temp + fsync + rename), key first. Fails with EEXIST if
 * ca.crt or ca.key already exists (use ca_rotate). Returns the new CA, owned
 * by the caller. */
struct ca *ca_create(const char *dir, const char *install_id, struct err **errp);

/* Loads dir/ca.crt and dir/ca.key. Refuses (status 403, message saying which
 * chmod fixes it) a key file or directory with any group/other permission
 * bit; refuses a key that is not P-256, a certificate that is not a CA or does
 * not match the key, and an expired certificate. Missing files: ENOENT with a
 * hint to run `capsem setup`. */
struct ca *ca_load(const char *dir, struct err **errp);

/* Replaces the CA in dir with a new one; an existing pair is first copied to
 * ca.crt.old / ca.key.old (same modes, replacing older .old files). Without
 * an existing CA this is ca_create(). Running VMs keep the CA they loaded. */
struct ca *ca_rotate(const char *dir, const char *install_id, struct err **errp);

void ca_free(struct ca *ca);

/* Borrowed. */
X509 *ca_cert(const struct ca *ca);
EVP_PKEY *ca_key(const struct ca *ca);

/* PEM text of the certificate (NUL-terminated, *len without the NUL if len
 * != NULL): what the host sends the guest at boot. Borrowed. */
const char *ca_cert_pem(const struct ca *ca, size_t *len);

/* "AB:CD:..." SHA-256 fingerprint of the certificate (95 chars + NUL). */
int ca_fingerprint_sha256(const struct ca *ca, char out[96], struct err **errp);

#endif
