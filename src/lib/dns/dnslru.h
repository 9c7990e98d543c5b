/* Internal to src/lib/dns: a keyed hash (SipHash-2-4, so a guest choosing
 * names cannot aim them at one bucket) and an intrusive hash table with a
 * recency list, shared by the cache, the pin set and the exfiltration guard.
 *
 * Nodes are embedded in the owner's entries; the table never allocates or
 * frees entries, it only links them. Lookups walk one bucket and compare
 * the stored 64-bit hash first; the owner compares the key itself. */
#ifndef CAPSEM_DNS_DNSLRU_H
#define CAPSEM_DNS_DNSLRU_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define dns_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

uint64_t dns_siphash(const uint8_t key[16], const void *data, size_t len);
/* 16 random bytes from getrandom(); falls back to clock mixing (a weaker
 * key still keeps the table correct). */
void dns_random_key(uint8_t key[16]);

struct dns_lru_node {
    struct dns_lru_node *newer, *older; /* recency list */
    struct dns_lru_node *hnext;         /* bucket chain */
    uint64_t hash;
};

struct dns_lru {
    struct dns_lru_node **buckets;
    size_t mask;
    struct dns_lru_node head; /* head.older = newest entry, head.newer = oldest */
    size_t count;
    uint8_t key[16];
};

/* Buckets: the power of two >= expected (at least 16). */
int dns_lru_init(struct dns_lru *l, size_t expected, struct err **errp);
/* Frees the bucket array only; entries belong to the caller. */
void dns_lru_fini(struct dns_lru *l);
uint64_t dns_lru_hash(const struct dns_lru *l, const void *key, size_t len);
/* First node of the chain that may hold hash (walk with ->hnext). */
struct dns_lru_node *dns_lru_bucket(const struct dns_lru *l, uint64_t hash);
/* Links n as the newest entry. */
void dns_lru_insert(struct dns_lru *l, struct dns_lru_node *n, uint64_t hash);
void dns_lru_remove(struct dns_lru *l, struct dns_lru_node *n);
/* Marks n as the newest entry. */
void dns_lru_touch(struct dns_lru *l, struct dns_lru_node *n);
/* Oldest entry, NULL when empty. */
struct dns_lru_node *dns_lru_oldest(const struct dns_lru *l);

#endif
