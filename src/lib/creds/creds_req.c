/* The request check and substitution of network.md section 10, and the
 * streaming body scan; see creds.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"
#include "creds/creds.h"
#include "creds/creds_int.h"

/* ---------- base64 and Authorization values ---------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

ssize_t creds_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t need = (n + 2) / 3 * 4;
    if (cap <= need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return (ssize_t)o;
}

static int b64_value(char ch)
{
    const char *p = ch ? strchr(b64_alphabet, ch) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

ssize_t creds_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n == 0 || n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            int d = j >= 4 - pad ? 0 : b64_value(in[i + (size_t)j]);
            if (d < 0)
                return -1;
            v = v << 6 | (uint32_t)d;
        }
        size_t bytes = 3 - (size_t)pad;
        if (o + bytes > cap)
            return -1;
        for (size_t j = 0; j < bytes; j++)
            out[o++] = (uint8_t)(v >> (16 - 8 * j));
    }
    return (ssize_t)o;
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

bool creds_auth_split(const char *v, size_t n, size_t *scheme_len, const char **cred,
                      size_t *cred_len)
{
    size_t i = 0;
    while (i < n && i <= 32 && is_tchar(v[i]))
        i++;
    size_t j = i;
    while (j < n && v[j] == ' ')
        j++;
    if (i == 0 || i > 32 || j == i || j == n) {
        *scheme_len = 0;
        *cred = v;
        *cred_len = n;
        return false;
    }
    *scheme_len = i;
    *cred = v + j;
    *cred_len = n - j;
    return true;
}

static bool name_is(const struct http1_header *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

static bool is_auth_field(const struct http1_header *f)
{
    return name_is(f, "authorization") || name_is(f, "proxy-authorization");
}

/* Decoded Basic credentials of an Authorization-like field (malloc'd, the
 * caller wipes and frees), or NULL when it holds none. */
static uint8_t *basic_decode(const struct http1_header *f, size_t *len)
{
    size_t sl, cl;
    const char *cred;
    if (!creds_auth_split(f->value, f->value_len, &sl, &cred, &cl) || sl != 5 ||
        strncasecmp(f->value, "basic", 5) != 0)
        return NULL;
    uint8_t *buf = malloc(cl / 4 * 3 + 1);
    ssize_t n = buf ? creds_b64_decode(cred, cl, buf, cl / 4 * 3) : -1;
    if (n < 0) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

/* ---------- the check ---------- */

enum pass { PASS_SECRETS, PASS_PLACEHOLDERS };

struct check {
    const struct creds *c;
    const struct creds_vm *vm;
    const char *host;
    struct creds_outcome *out;
    enum pass pass;
};

static void owners_text(enum creds_provider p, char *buf, size_t cap)
{
    const char *a = creds_owner_host(p, 0), *b = creds_owner_host(p, 1);
    snprintf(buf, cap, "%s%s%s", a, b ? " and " : "", b ? b : "");
}

static bool verdict(struct check *k, enum creds_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool verdict(struct check *k, enum creds_verdict v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->out->detail, sizeof(k->out->detail), fmt, ap);
    va_end(ap);
    k->out->verdict = v;
    return true;
}

static bool holds_secret(const struct creds *c, const char *p, size_t n)
{
    for (int q = 0; q < CREDS_NPROV; q++) {
        const char *s = creds_secret(c, (enum creds_provider)q);
        if (s && memmem(p, n, s, creds_secret_len(c, (enum creds_provider)q)))
            return true;
    }
    return false;
}

static bool scan_secrets(struct check *k, const char *p, size_t n, const char *where)
{
    for (int q = 0; q < CREDS_NPROV; q++) {
        const char *s = creds_secret(k->c, (enum creds_provider)q);
        if (!s || creds_owner((enum creds_provider)q, k->host) ||
            !memmem(p, n, s, creds_secret_len(k->c, (enum creds_provider)q)))
            continue;
        char owners[80];
        owners_text((enum creds_provider)q, owners, sizeof(owners));
        return verdict(k, CREDS_SECRET_LEAK,
                       "the host-held %s secret is in %s; only %s may receive it",
                       creds_provider_name((enum creds_provider)q), where, owners);
    }
    return false;
}

/* This VM's placeholder starting at p, or -1. */
static int own_placeholder(const struct creds_vm *vm, const char *p, size_t n, size_t *len)
{
    for (int q = 0; vm && q < CREDS_NPROV; q++) {
        const char *ph = vm->placeholder[q];
        size_t l = strlen(ph);
        if (l && l <= n && memcmp(p, ph, l) == 0 && creds_placeholder_at(p, n, NULL) == l) {
            *len = l;
            return q;
        }
    }
    return -1;
}

static bool scan_placeholders(struct check *k, const char *p, size_t n, const char *where)
{
    size_t off = 0;
    const char *hit;
    while ((hit = creds_find_ci(p + off, n - off, CREDS_PLACEHOLDER_PREFIX, CREDS_PREFIX_LEN))) {
        size_t at = (size_t)(hit - p), len = 0;
        int q = own_placeholder(k->vm, hit, n - at, &len);
        enum creds_provider shape;
        if (q >= 0 && creds_owner((enum creds_provider)q, k->host)) {
            off = at + len;
            continue;
        }
        if (q >= 0) {
            char owners[80];
            owners_text((enum creds_provider)q, owners, sizeof(owners));
            return verdict(k, CREDS_PLACEHOLDER_MISUSE,
                           "the %s placeholder is in %s; only %s may receive it",
                           creds_provider_name((enum creds_provider)q), where, owners);
        }
        if (creds_placeholder_at(hit, n - at, &shape))
            return verdict(k, CREDS_PLACEHOLDER_MISUSE, "another VM's %s placeholder is in %s",
                           creds_provider_name(shape), where);
        return verdict(k, CREDS_PLACEHOLDER_MISUSE, "a malformed capsem placeholder is in %s",
                       where);
    }
    return false;
}

static bool scan(struct check *k, const char *p, size_t n, const char *where)
{
    return k->pass == PASS_SECRETS ? scan_secrets(k, p, n, where)
                                   : scan_placeholders(k, p, n, where);
}

/* Lenient percent-decoding: valid %XX escapes decoded, anything else kept. */
static size_t pct_decode_lenient(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = i + 2 < n && s[i] == '%' ? hex_digit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
        if (lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

/* Walks every place section 10 names: field names and values, decoded
 * Basic credentials, the raw and percent-decoded target. True when a
 * verdict was reached; -1 on allocation failure. */
static int scan_request(struct check *k, const struct http1_header *h, size_t nh,
                        const char *target)
{
    char where[96];
    for (size_t i = 0; i < nh; i++) {
        if (scan(k, h[i].name, h[i].name_len, "a field name"))
            return 1;
        if (holds_secret(k->c, h[i].name, h[i].name_len))
            snprintf(where, sizeof(where), "a field value");
        else
            snprintf(where, sizeof(where), "field %.40s", h[i].name);
        if (scan(k, h[i].value, h[i].value_len, where))
            return 1;
        size_t blen = 0;
        uint8_t *basic = is_auth_field(&h[i]) ? basic_decode(&h[i], &blen) : NULL;
        if (basic) {
            char bwhere[128];
            snprintf(bwhere, sizeof(bwhere), "the Basic credentials of %s", where);
            bool hit = scan(k, (const char *)basic, blen, bwhere);
            explicit_bzero(basic, blen);
            free(basic);
            if (hit)
                return 1;
        }
    }
    size_t tn = target ? strlen(target) : 0;
    if (!tn)
        return 0;
    if (scan(k, target, tn, "the request target"))
        return 1;
    char *dec = malloc(tn + 1);
    if (!dec)
        return -1;
    size_t dn = pct_decode_lenient(target, tn, dec);
    bool hit = dn != tn && scan(k, dec, dn, "the request target (percent-decoded)");
    free(dec);
    return hit;
}

/* ---------- substitution ---------- */

static bool value_is(const char *v, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(v, s, n) == 0;
}

/* Reserves the next substitution slot for field i. 1 when the request
 * carries the field twice (a verdict), -1 on error. */
static int subst_slot(struct check *k, const struct http1_header *h, size_t nh, size_t i,
                      struct err **errp)
{
    struct creds_outcome *o = k->out;
    size_t same = 0;
    for (size_t j = 0; j < nh; j++)
        if (h[j].name_len == h[i].name_len && strncasecmp(h[j].name, h[i].name, h[i].name_len) == 0)
            same++;
    if (same > 1)
        return verdict(k, CREDS_PLACEHOLDER_MISUSE,
                       "the request has %zu %.40s fields; send the credential in one", same,
                       h[i].name);
    if (o->nsubst >= CREDS_MAX_SUBST || h[i].name_len >= sizeof(o->subst[0].name))
        return err_status(errp, 400, "too many credential fields to substitute");
    memcpy(o->subst[o->nsubst].name, h[i].name, h[i].name_len);
    o->subst[o->nsubst].name[h[i].name_len] = '\0';
    return 0;
}

/* value = "<scheme> <secret>" (or the secret alone when slen is 0). */
static int put_plain(struct check *k, const struct http1_header *h, size_t nh, size_t i,
                     size_t slen, const char *secret, struct err **errp)
{
    int r = subst_slot(k, h, nh, i, errp);
    if (r)
        return r;
    char *v = k->out->subst[k->out->nsubst].value;
    size_t cap = sizeof(k->out->subst[0].value);
    int n = slen ? snprintf(v, cap, "%.*s %s", (int)slen, h[i].value, secret)
                 : snprintf(v, cap, "%s", secret);
    if (n < 0 || (size_t)n >= cap) {
        explicit_bzero(v, cap);
        return err_status(errp, 400, "the substituted %s value would not fit", h[i].name);
    }
    k->out->nsubst++;
    return 0;
}

/* value = "<scheme> base64(<user>:<secret>)". */
static int put_basic(struct check *k, const struct http1_header *h, size_t nh, size_t i,
                     size_t slen, const uint8_t *user, size_t ulen, const char *secret,
                     struct err **errp)
{
    int r = subst_slot(k, h, nh, i, errp);
    if (r)
        return r;
    size_t sl = strlen(secret), plen = ulen + 1 + sl;
    uint8_t *plain = malloc(plen);
    if (!plain)
        return err_set(errp, ENOMEM, "out of memory");
    memcpy(plain, user, ulen);
    plain[ulen] = ':';
    memcpy(plain + ulen + 1, secret, sl);
    char *v = k->out->subst[k->out->nsubst].value;
    size_t cap = sizeof(k->out->subst[0].value);
    ssize_t n = slen + 1 < cap ? creds_b64_encode(plain, plen, v + slen + 1, cap - slen - 1) : -1;
    explicit_bzero(plain, plen);
    free(plain);
    if (n < 0) {
        explicit_bzero(v, cap);
        return err_status(errp, 400, "the substituted Basic credentials would not fit");
    }
    memcpy(v, h[i].value, slen);
    v[slen] = ' ';
    k->out->nsubst++;
    return 0;
}

static int subst_auth(struct check *k, enum creds_provider p, const struct http1_header *h,
                      size_t nh, size_t i, const char *ph, const char *secret, struct err **errp)
{
    size_t sl, cl;
    const char *cred;
    if (!creds_auth_split(h[i].value, h[i].value_len, &sl, &cred, &cl))
        return 0;
    const char *scheme = h[i].value;
    bool bearer = sl == 6 && strncasecmp(scheme, "bearer", 6) == 0;
    bool token = p == CREDS_GITHUB && sl == 5 && strncasecmp(scheme, "token", 5) == 0;
    if (bearer || token)
        return value_is(cred, cl, ph) ? put_plain(k, h, nh, i, sl, secret, errp) : 0;
    if (p != CREDS_GITHUB || sl != 5 || strncasecmp(scheme, "basic", 5) != 0)
        return 0;
    size_t blen = 0;
    uint8_t *basic = basic_decode(&h[i], &blen);
    const uint8_t *colon = basic ? memchr(basic, ':', blen) : NULL;
    int r = 0;
    if (colon) {
        size_t ulen = (size_t)(colon - basic);
        if (value_is((const char *)colon + 1, blen - ulen - 1, ph))
            r = put_basic(k, h, nh, i, sl, basic, ulen, secret, errp);
    }
    if (basic)
        explicit_bzero(basic, blen);
    free(basic);
    return r;
}

static size_t put_bytes(char *out, size_t cap, size_t o, const char *s, size_t n)
{
    if (o < cap && n < cap - o)
        memcpy(out + o, s, n);
    return o + n;
}

static bool is_unreserved(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Rewrites each `key=<placeholder>` query parameter to the secret,
 * percent-encoded (unreserved characters kept). */
static int rewrite_query(struct check *k, const char *target, const char *ph, const char *secret,
                         struct err **errp)
{
    const char *q = target ? strchr(target, '?') : NULL;
    if (!q)
        return 0;
    char *out = k->out->target;
    size_t cap = sizeof(k->out->target),
           o = put_bytes(out, cap, 0, target, (size_t)(q + 1 - target));
    bool changed = false;
    for (const char *s = q + 1;;) {
        size_t n = strcspn(s, "&");
        if (n == 4 + strlen(ph) && memcmp(s, "key=", 4) == 0 && memcmp(s + 4, ph, n - 4) == 0) {
            o = put_bytes(out, cap, o, "key=", 4);
            for (const char *c = secret; *c; c++) {
                char esc[4];
                bool plain = is_unreserved(*c);
                snprintf(esc, sizeof(esc), "%%%02X", (unsigned char)*c);
                o = put_bytes(out, cap, o, plain ? c : esc, plain ? 1 : 3);
            }
            changed = true;
        } else {
            o = put_bytes(out, cap, o, s, n);
        }
        if (!s[n])
            break;
        o = put_bytes(out, cap, o, "&", 1);
        s += n + 1;
    }
    if (!changed || o >= cap) {
        explicit_bzero(out, cap);
        if (changed)
            return err_status(errp, 414, "the request target with the substituted key is too long");
        return 0;
    }
    out[o] = '\0';
    return 0;
}

static int substitute(struct check *k, const struct http1_header *h, size_t nh, const char *target,
                      struct err **errp)
{
    int p = creds_host_provider(k->host);
    const char *secret = p >= 0 ? creds_secret(k->c, (enum creds_provider)p) : NULL;
    const char *ph = p >= 0 && k->vm ? k->vm->placeholder[p] : "";
    if (!secret || !*ph)
        return 0;
    for (size_t i = 0; i < nh; i++) {
        int r = 0;
        if ((p == CREDS_ANTHROPIC && name_is(&h[i], "x-api-key")) ||
            (p == CREDS_GOOGLE && name_is(&h[i], "x-goog-api-key"))) {
            if (value_is(h[i].value, h[i].value_len, ph))
                r = put_plain(k, h, nh, i, 0, secret, errp);
        } else if (p != CREDS_GOOGLE && name_is(&h[i], "authorization")) {
            r = subst_auth(k, (enum creds_provider)p, h, nh, i, ph, secret, errp);
        }
        if (r)
            return r < 0 ? -1 : 0;
    }
    if (p == CREDS_GOOGLE && rewrite_query(k, target, ph, secret, errp) < 0)
        return -1;
    if (k->out->nsubst || k->out->target[0])
        k->out->provider = p;
    return 0;
}

const char *creds_verdict_reason(enum creds_verdict v)
{
    switch (v) {
    case CREDS_OK:
        return "ok";
    case CREDS_PLACEHOLDER_MISUSE:
        return "placeholder_misuse";
    case CREDS_SECRET_LEAK:
        return "secret_leak";
    }
    return "ok";
}

void creds_outcome_wipe(struct creds_outcome *o)
{
    if (o)
        explicit_bzero(o, sizeof(*o));
}

int creds_check_request(const struct creds *c, const struct creds_vm *vm, const char *host,
                        const struct http1_header *h, size_t nh, const char *target,
                        struct creds_outcome *out, struct err **errp)
{
    memset(out, 0, sizeof(*out));
    out->provider = -1;
    struct check k = {.c = c, .vm = vm, .host = host ? host : "", .out = out};
    static const enum pass passes[] = {PASS_SECRETS, PASS_PLACEHOLDERS};
    for (size_t i = 0; i < ARRAY_SIZE(passes); i++) {
        k.pass = passes[i];
        int r = scan_request(&k, h, nh, target);
        if (r < 0)
            return err_set(errp, ENOMEM, "out of memory");
        if (r > 0)
            return 0;
    }
    if (substitute(&k, h, nh, target, errp) < 0) {
        creds_outcome_wipe(out);
        out->provider = -1;
        return -1;
    }
    if (out->verdict != CREDS_OK) { /* a duplicate field: nothing is forwarded */
        for (size_t i = 0; i < CREDS_MAX_SUBST; i++)
            explicit_bzero(&out->subst[i], sizeof(out->subst[i]));
        explicit_bzero(out->target, sizeof(out->target));
        out->nsubst = 0;
        out->provider = -1;
    }
    return 0;
}

/* ---------- streaming body scan ---------- */

struct creds_body_scan {
    const struct creds *c;
    enum creds_verdict hit;
    size_t keep;     /* bytes of earlier chunks kept */
    size_t tail_len; /* <= keep */
    char *win;       /* 2 * keep: the kept tail, then the head of the next chunk */
};

struct creds_body_scan *creds_body_scan_new(const struct creds *c)
{
    size_t longest = CREDS_PREFIX_LEN;
    for (int p = 0; p < CREDS_NPROV; p++)
        longest = MAX(longest, creds_secret_len(c, (enum creds_provider)p));
    struct creds_body_scan *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->c = c;
    s->keep = MAX((size_t)64, longest - 1);
    s->win = malloc(2 * s->keep);
    if (!s->win) {
        free(s);
        return NULL;
    }
    return s;
}

static bool body_match(struct creds_body_scan *s, const char *p, size_t n)
{
    for (int q = 0; q < CREDS_NPROV; q++) {
        const char *sec = creds_secret(s->c, (enum creds_provider)q);
        if (sec && memmem(p, n, sec, creds_secret_len(s->c, (enum creds_provider)q))) {
            s->hit = CREDS_SECRET_LEAK;
            return true;
        }
    }
    if (creds_find_ci(p, n, CREDS_PLACEHOLDER_PREFIX, CREDS_PREFIX_LEN)) {
        s->hit = CREDS_PLACEHOLDER_MISUSE;
        return true;
    }
    return false;
}

bool creds_body_scan_feed(struct creds_body_scan *s, const void *data, size_t n)
{
    const char *p = data;
    if (s->hit != CREDS_OK)
        return true;
    if (n == 0)
        return false;
    /* Matches that cross the boundary lie in the kept tail plus the first
     * keep bytes of this chunk. */
    size_t head = MIN(n, s->keep);
    memcpy(s->win + s->tail_len, p, head);
    if (body_match(s, s->win, s->tail_len + head) || body_match(s, p, n))
        return true;
    if (n >= s->keep) {
        memcpy(s->win, p + n - s->keep, s->keep);
        s->tail_len = s->keep;
    } else {
        size_t total = s->tail_len + n, drop = total > s->keep ? total - s->keep : 0;
        memmove(s->win, s->win + drop, total - drop);
        s->tail_len = total - drop;
    }
    return false;
}

enum creds_verdict creds_body_scan_verdict(const struct creds_body_scan *s)
{
    return s ? s->hit : CREDS_OK;
}

void creds_body_scan_free(struct creds_body_scan *s)
{
    if (!s)
        return;
    explicit_bzero(s->win, 2 * s->keep);
    free(s->win);
    free(s);
}
