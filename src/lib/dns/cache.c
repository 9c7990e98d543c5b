/* Per-VM DNS answer cache (cache.h). */
#include "dns/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dns/dnslru.h"

struct centry {
    struct dns_lru_node node;
    uint64_t expires_ms;
    size_t bytes; /* accounted size */
    uint16_t qtype;
    size_t key_len;
    struct dns_result res;
    char key[]; /* qtype (2 bytes) + qname */
};

struct dns_cache {
    struct dns_cache_config cfg;
    struct dns_lru lru;
    size_t bytes;
};

void dns_cache_config_default(struct dns_cache_config *c)
{
    *c = (struct dns_cache_config){
        .max_entries = 2048,
        .max_bytes = 8u << 20,
        .min_ttl = 30,
        .max_ttl = 300,
        .neg_ttl = 30,
    };
}

struct dns_cache *dns_cache_new(const struct dns_cache_config *cfg, struct err **errp)
{
    struct dns_cache *c = calloc(1, sizeof(*c));
    if (!c) {
        err_set(errp, ENOMEM, "dns cache: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (c->cfg.max_entries == 0)
        c->cfg.max_entries = 1;
    if (dns_lru_init(&c->lru, c->cfg.max_entries, errp) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void entry_drop(struct dns_cache *c, struct centry *e)
{
    dns_lru_remove(&c->lru, &e->node);
    c->bytes -= e->bytes;
    dns_result_clear(&e->res);
    free(e);
}

void dns_cache_clear(struct dns_cache *c)
{
    struct dns_lru_node *n;
    while ((n = dns_lru_oldest(&c->lru)))
        entry_drop(c, dns_container_of(n, struct centry, node));
}

void dns_cache_free(struct dns_cache *c)
{
    if (!c)
        return;
    dns_cache_clear(c);
    dns_lru_fini(&c->lru);
    free(c);
}

uint32_t dns_cache_ttl(const struct dns_cache_config *cfg, const struct dns_result *res,
                       uint16_t qtype)
{
    if (dns_result_is_negative(res, qtype))
        return cfg->neg_ttl;
    uint32_t t = dns_result_min_ttl(res);
    if (t < cfg->min_ttl)
        t = cfg->min_ttl;
    if (t > cfg->max_ttl)
        t = cfg->max_ttl;
    return t;
}

static size_t make_key(char *key, const char *qname, uint16_t qtype)
{
    size_t n = strlen(qname);
    key[0] = (char)(qtype >> 8);
    key[1] = (char)qtype;
    memcpy(key + 2, qname, n);
    return n + 2;
}

static struct centry *find(const struct dns_cache *c, const char *key, size_t key_len,
                           uint64_t hash)
{
    for (struct dns_lru_node *n = dns_lru_bucket(&c->lru, hash); n; n = n->hnext) {
        struct centry *e = dns_container_of(n, struct centry, node);
        if (n->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    }
    return NULL;
}

static size_t result_size(const struct dns_result *r)
{
    size_t s = sizeof(struct centry);
    for (size_t i = 0; i < r->n; i++)
        s += r->rr[i].owner_len + (size_t)r->rr[i].rdlen;
    return s;
}

int64_t dns_cache_put(struct dns_cache *c, const char *qname, uint16_t qtype,
                      const struct dns_result *res, uint64_t now_ms, struct err **errp)
{
    char key[2 + DNS_NAME_BUF];
    if (strlen(qname) > DNS_NAME_TEXT_MAX)
        return err_set(errp, EINVAL, "dns cache: name too long");
    size_t key_len = make_key(key, qname, qtype);
    struct centry *e = calloc(1, sizeof(*e) + key_len);
    if (!e)
        return err_set(errp, ENOMEM, "dns cache: out of memory");
    if (dns_result_copy(&e->res, res, errp) < 0) {
        free(e);
        return -1;
    }
    uint32_t ttl = dns_cache_ttl(&c->cfg, res, qtype);
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->qtype = qtype;
    e->expires_ms = now_ms + (uint64_t)ttl * 1000;
    e->bytes = result_size(&e->res) + key_len;
    uint64_t hash = dns_lru_hash(&c->lru, key, key_len);
    struct centry *old = find(c, key, key_len, hash);
    if (old)
        entry_drop(c, old);
    dns_lru_insert(&c->lru, &e->node, hash);
    c->bytes += e->bytes;
    struct dns_lru_node *n;
    while ((c->lru.count > c->cfg.max_entries || c->bytes > c->cfg.max_bytes) &&
           (n = dns_lru_oldest(&c->lru)) && n != &e->node)
        entry_drop(c, dns_container_of(n, struct centry, node));
    return ttl;
}

int dns_cache_get(struct dns_cache *c, const char *qname, uint16_t qtype, uint64_t now_ms,
                  struct dns_result *out, struct err **errp)
{
    char key[2 + DNS_NAME_BUF];
    if (strlen(qname) > DNS_NAME_TEXT_MAX)
        return 0;
    size_t key_len = make_key(key, qname, qtype);
    struct centry *e = find(c, key, key_len, dns_lru_hash(&c->lru, key, key_len));
    if (!e)
        return 0;
    if (now_ms >= e->expires_ms) {
        entry_drop(c, e);
        return 0;
    }
    if (dns_result_copy(out, &e->res, errp) < 0)
        return -1;
    uint64_t left = (e->expires_ms - now_ms + 999) / 1000;
    dns_result_set_ttl(out, (uint32_t)MAX(left, (uint64_t)1));
    dns_lru_touch(&c->lru, &e->node);
    return 1;
}

size_t dns_cache_count(const struct dns_cache *c)
{
    return c->lru.count;
}

size_t dns_cache_bytes(const struct dns_cache *c)
{
    return c->bytes;
}
