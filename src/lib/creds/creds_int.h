/* Internals shared by creds.c, creds_req.c and creds_redact.c. */
#ifndef CAPSEM_CREDS_INT_H
#define CAPSEM_CREDS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "creds/creds.h"

#define CREDS_PREFIX_LEN (sizeof(CREDS_PLACEHOLDER_PREFIX) - 1)

/* True when host is one of p's owner hosts. */
bool creds_owner(enum creds_provider p, const char *host);
/* p's i-th owner host, NULL past the last. */
const char *creds_owner_host(enum creds_provider p, size_t i);

/* Length of the secret for p (0 when none). */
size_t creds_secret_len(const struct creds *c, enum creds_provider p);

/* Memory for secrets: anonymous pages, mlock()ed when the limit allows,
 * excluded from core dumps. *locked tells whether mlock worked. Freed with
 * creds_secure_free(), which zeroes first. */
void *creds_secure_alloc(size_t n, bool *locked);
void creds_secure_free(void *p, size_t n, bool locked);

/* First occurrence of needle (lowercase ASCII) in h, ASCII case-insensitive;
 * NULL when none. */
const char *creds_find_ci(const char *h, size_t hn, const char *needle, size_t nn);

/* When [s, s+n) starts with a whole placeholder (followed by the end or a
 * character outside [A-Za-z0-9]), its length and provider; else 0. */
size_t creds_placeholder_at(const char *s, size_t n, enum creds_provider *p);

/* Standard base64 with padding. encode writes 4*ceil(n/3) chars and a NUL,
 * returns the length or -1 when cap is too small. decode is strict (padding
 * required, no whitespace), returns the decoded length or -1. */
ssize_t creds_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
ssize_t creds_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* Splits an Authorization value into scheme (a token of <= 32 chars
 * followed by spaces) and credential. Returns false when the value has no
 * such scheme (then the whole value is the credential). */
bool creds_auth_split(const char *v, size_t n, size_t *scheme_len, const char **cred,
                      size_t *cred_len);

#endif
