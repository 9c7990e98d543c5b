/* Telemetry redaction of header values and previews (network.md sections
 * 10 and 11); see creds.h. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "creds/creds.h"
#include "creds/creds_int.h"

/* Fields whose values telemetry keeps as they are (section 11). */
static const char *const verbatim_fields[] = {
    "accept",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "user-agent",
    "server",
    "date",
    "cache-control",
    "location",
    "retry-after",
    "x-request-id",
    "request-id",
};

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return true;
    return false;
}

/* "hmac:<first 6 bytes of HMAC-SHA256 in hex>". */
static void hmac_tag(const uint8_t key[32], const void *p, size_t n, char out[18])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    static const unsigned char empty;
    if (!HMAC(EVP_sha256(), key, 32, n ? p : &empty, n, md, &len) || len < 6) {
        snprintf(out, 18, "hmac:unavailable");
        return;
    }
    snprintf(out, 18, "hmac:%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3], md[4], md[5]);
}

/* Provider of the placeholder that is exactly [p, p+n), or -1. */
static int exact_placeholder(const char *p, size_t n)
{
    enum creds_provider q;
    return n && creds_placeholder_at(p, n, &q) == n ? (int)q : -1;
}

static size_t redact(const struct creds *c, const char *in, size_t n, char *out, size_t cap,
                     bool placeholders);

static int redact_auth(const struct creds *c, const uint8_t key[32], const char *value, size_t n,
                       char *out, size_t cap)
{
    size_t sl = 0, cl = 0;
    const char *cred = value;
    bool has_scheme = creds_auth_split(value, n, &sl, &cred, &cl);
    int p = exact_placeholder(cred, cl);
    if (p < 0 && has_scheme && sl == 5 && strncasecmp(value, "basic", 5) == 0) {
        uint8_t *plain = malloc(cl / 4 * 3 + 1);
        ssize_t pn = plain ? creds_b64_decode(cred, cl, plain, cl / 4 * 3) : -1;
        const uint8_t *colon = pn > 0 ? memchr(plain, ':', (size_t)pn) : NULL;
        if (colon)
            p = exact_placeholder((const char *)colon + 1,
                                  (size_t)pn - (size_t)(colon - plain) - 1);
        if (pn > 0)
            explicit_bzero(plain, (size_t)pn);
        free(plain);
    }
    char tag[32];
    if (p >= 0)
        snprintf(tag, sizeof(tag), "placeholder:%s", creds_provider_name((enum creds_provider)p));
    else
        hmac_tag(key, cred, cl, tag);
    /* The scheme is kept, but it is guest text like any other: secrets and
     * placeholders in it are replaced too (found by fuzz_creds). */
    size_t at = has_scheme ? redact(c, value, sl, out, cap, true) : 0;
    int w = snprintf(out + at, cap - at, "%s%s", has_scheme ? " " : "", tag);
    return w < 0 ? -1 : (int)MIN(at + (size_t)w, cap - 1);
}

int creds_redact_header(const struct creds *c, const uint8_t hmac_key[32], const char *name,
                        const char *value, char *out, size_t cap)
{
    if (!out || cap < CREDS_REDACT_MIN || !hmac_key)
        return -1;
    size_t n = value ? strlen(value) : 0;
    if (!name)
        name = "";
    if (n == 0) {
        out[0] = '\0';
        return 0;
    }
    if (in_list(name, verbatim_fields, ARRAY_SIZE(verbatim_fields)))
        return (int)redact(c, value, n, out, cap, false);
    if (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "proxy-authorization") == 0)
        return redact_auth(c, hmac_key, value, n, out, cap);
    int p = exact_placeholder(value, n);
    char tag[32];
    if (p >= 0)
        snprintf(tag, sizeof(tag), "placeholder:%s", creds_provider_name((enum creds_provider)p));
    else
        hmac_tag(hmac_key, value, n, tag);
    int w = snprintf(out, cap, "%s", tag);
    return w < 0 ? -1 : w;
}

/* What starts at in[i]: a secret, a placeholder, or a secret cut by the end
 * of the input. Returns the bytes it covers (0: none) and its label. */
static size_t hit_at(const struct creds *c, const char *in, size_t n, size_t i, bool placeholders,
                     const char **label)
{
    size_t rem = n - i;
    for (int q = 0; q < CREDS_NPROV; q++) {
        const char *sec = creds_secret(c, (enum creds_provider)q);
        size_t sl = creds_secret_len(c, (enum creds_provider)q);
        if (sec && sl <= rem && memcmp(in + i, sec, sl) == 0) {
            *label = creds_provider_name((enum creds_provider)q);
            return sl;
        }
    }
    if (placeholders && creds_find_ci(in + i, MIN(rem, CREDS_PREFIX_LEN), CREDS_PLACEHOLDER_PREFIX,
                                      CREDS_PREFIX_LEN)) {
        enum creds_provider q;
        size_t len = creds_placeholder_at(in + i, rem, &q);
        if (len) {
            *label = creds_provider_name(q);
            return len;
        }
        len = CREDS_PREFIX_LEN;
        while (len < rem && (in[i + len] == '-' || (in[i + len] >= 'a' && in[i + len] <= 'z') ||
                             (in[i + len] >= 'A' && in[i + len] <= 'Z') ||
                             (in[i + len] >= '0' && in[i + len] <= '9')))
            len++;
        *label = "unknown";
        return len;
    }
    for (int q = 0; rem >= CREDS_SECRET_MIN && q < CREDS_NPROV; q++) {
        const char *sec = creds_secret(c, (enum creds_provider)q);
        if (sec && rem < creds_secret_len(c, (enum creds_provider)q) &&
            memcmp(in + i, sec, rem) == 0) {
            *label = creds_provider_name((enum creds_provider)q);
            return rem;
        }
    }
    return 0;
}

static size_t redact(const struct creds *c, const char *in, size_t n, char *out, size_t cap,
                     bool placeholders)
{
    if (cap == 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const char *label = NULL;
        size_t len = hit_at(c, in, n, i, placeholders, &label);
        if (len) {
            char token[32];
            int tl = snprintf(token, sizeof(token), "[secret:%s]", label);
            if (tl < 0 || o + (size_t)tl >= cap)
                break;
            memcpy(out + o, token, (size_t)tl);
            o += (size_t)tl;
            i += len;
            continue;
        }
        if (o + 1 >= cap)
            break;
        out[o++] = in[i++];
    }
    out[o] = '\0';
    return o;
}

size_t creds_redact_text(const struct creds *c, const char *in, size_t n, char *out, size_t cap)
{
    return redact(c, in ? in : "", in ? n : 0, out, cap, true);
}
