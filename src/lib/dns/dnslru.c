/* Keyed hash and intrusive LRU hash table (dnslru.h). */
#include "dns/dnslru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/util.h"

/* ---- SipHash-2-4 (Aumasson, Bernstein 2012) ---- */

static uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

struct sip {
    uint64_t v0, v1, v2, v3;
};

static void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13) ^ s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16) ^ s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21) ^ s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17) ^ s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void sip_word(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

uint64_t dns_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    struct sip s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                    k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8)
        sip_word(&s, load_le64(p + i));
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    sip_word(&s, last);
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

void dns_random_key(uint8_t key[16])
{
    ssize_t n;
    do
        n = getrandom(key, 16, 0);
    while (n < 0 && errno == EINTR);
    if (n == 16)
        return;
    uint64_t a = time_mono_us() ^ ((uint64_t)(uintptr_t)key << 17);
    uint64_t b = time_real_ms() * 0x9E3779B97F4A7C15ULL;
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

/* ---- table ---- */

int dns_lru_init(struct dns_lru *l, size_t expected, struct err **errp)
{
    size_t n = 16;
    while (n < expected && n < ((size_t)1 << 24))
        n <<= 1;
    memset(l, 0, sizeof(*l));
    l->buckets = calloc(n, sizeof(*l->buckets));
    if (!l->buckets)
        return err_set(errp, ENOMEM, "dns: out of memory for a table of %zu buckets", n);
    l->mask = n - 1;
    l->head.newer = l->head.older = &l->head;
    dns_random_key(l->key);
    return 0;
}

void dns_lru_fini(struct dns_lru *l)
{
    free(l->buckets);
    l->buckets = NULL;
    l->count = 0;
}

uint64_t dns_lru_hash(const struct dns_lru *l, const void *key, size_t len)
{
    return dns_siphash(l->key, key, len);
}

struct dns_lru_node *dns_lru_bucket(const struct dns_lru *l, uint64_t hash)
{
    return l->buckets[hash & l->mask];
}

static void list_link_newest(struct dns_lru *l, struct dns_lru_node *n)
{
    n->newer = &l->head;
    n->older = l->head.older;
    l->head.older->newer = n;
    l->head.older = n;
}

static void list_unlink(struct dns_lru_node *n)
{
    n->newer->older = n->older;
    n->older->newer = n->newer;
    n->newer = n->older = NULL;
}

void dns_lru_insert(struct dns_lru *l, struct dns_lru_node *n, uint64_t hash)
{
    n->hash = hash;
    n->hnext = l->buckets[hash & l->mask];
    l->buckets[hash & l->mask] = n;
    list_link_newest(l, n);
    l->count++;
}

void dns_lru_remove(struct dns_lru *l, struct dns_lru_node *n)
{
    struct dns_lru_node **pp = &l->buckets[n->hash & l->mask];
    while (*pp && *pp != n)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = n->hnext;
    n->hnext = NULL;
    list_unlink(n);
    l->count--;
}

void dns_lru_touch(struct dns_lru *l, struct dns_lru_node *n)
{
    list_unlink(n);
    list_link_newest(l, n);
}

struct dns_lru_node *dns_lru_oldest(const struct dns_lru *l)
{
    return l->head.newer == &l->head ? NULL : l->head.newer;
}
