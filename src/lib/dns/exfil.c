/* DNS exfiltration guard (exfil.h). */
#include "dns/exfil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dns/dnslru.h"
#include "dns/psl.h"
#include "dns/ratelimit.h"

void dns_exfil_config_default(struct dns_exfil_config *c)
{
    *c = (struct dns_exfil_config){
        .max_label = 48,
        .max_name = 180,
        .max_sub_labels = 6,
        .entropy_min_len = 24,
        .entropy_bits = 3.5,
        .suspicious_burst = 20,
        .suspicious_per_min = 10,
        .unique_subdomains_per_10min = 300,
        .window_ms = 600000,
        .max_domains = 1024,
    };
}

struct key_def {
    const char *name;
    size_t off;
    bool is_double;
    double lo, hi;
};

#define KEY_U(f, lo, hi) {#f, offsetof(struct dns_exfil_config, f), false, lo, hi}
#define KEY_D(f, lo, hi) {#f, offsetof(struct dns_exfil_config, f), true, lo, hi}

static const struct key_def keys[] = {
    KEY_U(max_label, 1, 63),
    KEY_U(max_name, 1, 253),
    KEY_U(max_sub_labels, 1, 127),
    KEY_U(entropy_min_len, 1, 253),
    KEY_D(entropy_bits, 0, 8),
    KEY_U(suspicious_burst, 0, 1000000),
    KEY_D(suspicious_per_min, 0, 1000000),
    KEY_U(unique_subdomains_per_10min, 1, 100000),
};

int dns_exfil_config_set(struct dns_exfil_config *c, const char *key, double value,
                         struct err **errp)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct key_def *k = &keys[i];
        if (strcmp(k->name, key) != 0)
            continue;
        if (!(value >= k->lo && value <= k->hi) || (!k->is_double && value != floor(value)))
            return err_status(errp, 400, "dns.exfil_guard.%s must be %s between %.15g and %.15g",
                              key, k->is_double ? "a number" : "an integer", k->lo, k->hi);
        if (k->is_double)
            *(double *)(void *)((char *)c + k->off) = value;
        else
            *(unsigned *)(void *)((char *)c + k->off) = (unsigned)value;
        return 0;
    }
    return err_status(errp, 400, "dns.exfil_guard has no key '%s'", key);
}

/* ---- classification ---- */

double dns_entropy_bits(const char *s, size_t n)
{
    unsigned counts[256] = {0};
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.')
            continue;
        counts[(uint8_t)s[i]]++;
        total++;
    }
    if (total == 0)
        return 0;
    double h = 0;
    for (size_t i = 0; i < 256; i++) {
        if (!counts[i])
            continue;
        double p = (double)counts[i] / (double)total;
        h -= p * log2(p);
    }
    return h;
}

void dns_exfil_classify(const struct dns_exfil_config *c, const char *qname,
                        struct dns_exfil_class *out)
{
    size_t len = strlen(qname);
    memset(out, 0, sizeof(*out));
    int reg = dns_psl_registrable_offset(qname);
    out->has_regdom = reg >= 0;
    out->regdom_off = reg >= 0 ? (size_t)reg : 0;
    out->sub_len = reg > 0 ? (size_t)reg - 1 : 0;
    size_t sub_chars = 0;
    for (size_t i = 0; i < out->sub_len; i++)
        sub_chars += qname[i] != '.';
    if (out->sub_len) {
        out->sub_labels = 1;
        for (size_t i = 0; i < out->sub_len; i++)
            out->sub_labels += qname[i] == '.';
    }
    out->entropy = dns_entropy_bits(qname, out->sub_len);
    if (dnsname_longest_label(qname) >= c->max_label)
        out->why = "long_label";
    else if (len >= c->max_name)
        out->why = "long_name";
    else if (out->sub_labels >= c->max_sub_labels)
        out->why = "many_labels";
    else if (sub_chars >= c->entropy_min_len && out->entropy >= c->entropy_bits)
        out->why = "high_entropy";
    out->suspicious = out->why != NULL;
}

/* ---- per-domain accounting ---- */

struct xsub {
    uint64_t hash;
    uint64_t last_ms;
};

struct xdomain {
    struct dns_lru_node node;
    struct dns_bucket bucket;
    uint64_t blocked_until;  /* new subdomains refused before this */
    uint64_t reported_until; /* a trip was reported; the next report after this */
    struct xsub *subs;
    size_t nsub, capsub;
    size_t key_len;
    char key[DNS_NAME_BUF];
};

struct dns_exfil {
    struct dns_exfil_config cfg;
    struct dns_lru lru;
};

struct dns_exfil *dns_exfil_new(const struct dns_exfil_config *c, struct err **errp)
{
    struct dns_exfil *g = calloc(1, sizeof(*g));
    if (!g) {
        err_set(errp, ENOMEM, "dns exfil guard: out of memory");
        return NULL;
    }
    g->cfg = *c;
    if (g->cfg.max_domains == 0)
        g->cfg.max_domains = 1;
    if (dns_lru_init(&g->lru, g->cfg.max_domains, errp) < 0) {
        free(g);
        return NULL;
    }
    return g;
}

static void domain_drop(struct dns_exfil *g, struct xdomain *d)
{
    dns_lru_remove(&g->lru, &d->node);
    free(d->subs);
    free(d);
}

void dns_exfil_free(struct dns_exfil *g)
{
    if (!g)
        return;
    struct dns_lru_node *n;
    while ((n = dns_lru_oldest(&g->lru)))
        domain_drop(g, dns_container_of(n, struct xdomain, node));
    dns_lru_fini(&g->lru);
    free(g);
}

size_t dns_exfil_domains(const struct dns_exfil *g)
{
    return g->lru.count;
}

static struct xdomain *domain_get(struct dns_exfil *g, const char *key, uint64_t now_ms)
{
    size_t len = strlen(key);
    uint64_t hash = dns_lru_hash(&g->lru, key, len);
    for (struct dns_lru_node *n = dns_lru_bucket(&g->lru, hash); n; n = n->hnext) {
        struct xdomain *d = dns_container_of(n, struct xdomain, node);
        if (n->hash == hash && d->key_len == len && memcmp(d->key, key, len) == 0) {
            dns_lru_touch(&g->lru, n);
            return d;
        }
    }
    struct xdomain *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    memcpy(d->key, key, len + 1);
    d->key_len = len;
    dns_bucket_init(&d->bucket, g->cfg.suspicious_burst, g->cfg.suspicious_per_min / 60000.0,
                    now_ms);
    if (g->lru.count >= g->cfg.max_domains)
        domain_drop(g, dns_container_of(dns_lru_oldest(&g->lru), struct xdomain, node));
    dns_lru_insert(&g->lru, &d->node, hash);
    return d;
}

/* Drops subdomains not seen within the window; returns the index of hash or -1. */
static ssize_t subs_prune_find(struct xdomain *d, uint64_t hash, uint64_t now_ms,
                               uint64_t window_ms)
{
    ssize_t found = -1;
    size_t k = 0;
    for (size_t i = 0; i < d->nsub; i++) {
        if (d->subs[i].last_ms + window_ms <= now_ms)
            continue;
        d->subs[k] = d->subs[i];
        if (d->subs[k].hash == hash)
            found = (ssize_t)k;
        k++;
    }
    d->nsub = k;
    return found;
}

static int subs_add(struct xdomain *d, uint64_t hash, uint64_t now_ms, size_t limit)
{
    if (d->nsub == d->capsub) {
        size_t cap = d->capsub ? MIN(d->capsub * 2, limit) : MIN((size_t)8, limit);
        struct xsub *s = realloc(d->subs, cap * sizeof(*s));
        if (!s)
            return -1;
        d->subs = s;
        d->capsub = cap;
    }
    d->subs[d->nsub++] = (struct xsub){hash, now_ms};
    return 0;
}

static void trip(struct xdomain *d, uint64_t now_ms, uint64_t window_ms, const char *why,
                 struct dns_exfil_verdict *v)
{
    v->tripped = true;
    v->why = why;
    v->first_trip = now_ms >= d->reported_until;
    if (v->first_trip)
        d->reported_until = now_ms + window_ms;
}

int dns_exfil_account(struct dns_exfil *g, const char *qname, const struct dns_exfil_class *cls,
                      uint64_t now_ms, struct dns_exfil_verdict *v, struct err **errp)
{
    memset(v, 0, sizeof(*v));
    const char *key = cls->has_regdom ? qname + cls->regdom_off : qname;
    if (str_copy(v->domain, sizeof(v->domain), key) < 0)
        return err_set(errp, EINVAL, "dns exfil guard: name too long");
    struct xdomain *d = domain_get(g, key, now_ms);
    if (!d)
        return err_set(errp, ENOMEM, "dns exfil guard: out of memory");
    if (cls->suspicious && !dns_bucket_take(&d->bucket, now_ms)) {
        trip(d, now_ms, g->cfg.window_ms, "suspicious_rate", v);
        return 0;
    }
    if (cls->sub_len == 0)
        return 0; /* the registrable domain itself */
    uint64_t h = dns_lru_hash(&g->lru, qname, cls->sub_len);
    ssize_t i = subs_prune_find(d, h, now_ms, g->cfg.window_ms);
    if (i >= 0) {
        d->subs[i].last_ms = now_ms;
        return 0;
    }
    size_t limit = g->cfg.unique_subdomains_per_10min;
    if (now_ms < d->blocked_until || d->nsub >= limit) {
        if (now_ms >= d->blocked_until)
            d->blocked_until = now_ms + g->cfg.window_ms;
        trip(d, now_ms, g->cfg.window_ms, "unique_subdomains", v);
        return 0;
    }
    if (subs_add(d, h, now_ms, limit) < 0)
        return err_set(errp, ENOMEM, "dns exfil guard: out of memory");
    return 0;
}
