/* Per-VM DNS answer cache (network.md section 4 step 7): LRU keyed by
 * (normalised qname, qtype), 2048 entries, positive TTLs clamped to
 * [30, 300] s, negative answers (NXDOMAIN, or no record of the asked type)
 * kept 30 s. A byte cap bounds the record data held (LRU eviction past it).
 *
 * Time is passed in (monotonic milliseconds) so tests drive the clock. Not
 * thread-safe: one VM's event loop owns it. Policy runs before the cache, so
 * a policy reload applies to cached names without flushing. */
#ifndef CAPSEM_DNS_CACHE_H
#define CAPSEM_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dns/dnsmsg.h"

struct dns_cache_config {
    size_t max_entries; /* 2048 */
    size_t max_bytes;   /* record data + names held, 8 MiB */
    uint32_t min_ttl;   /* 30 s */
    uint32_t max_ttl;   /* 300 s */
    uint32_t neg_ttl;   /* 30 s */
};

void dns_cache_config_default(struct dns_cache_config *c);

struct dns_cache;

struct dns_cache *dns_cache_new(const struct dns_cache_config *cfg, struct err **errp);
void dns_cache_free(struct dns_cache *c);

/* TTL an answer gets in the cache: negative -> neg_ttl, else the smallest
 * record TTL clamped to [min_ttl, max_ttl]. */
uint32_t dns_cache_ttl(const struct dns_cache_config *cfg, const struct dns_result *res,
                       uint16_t qtype);

/* Stores a copy of res for (qname, qtype), replacing an older entry, evicting
 * the least recently used past the caps. Returns the TTL stored (seconds), or
 * -1 when out of memory (the cache is unchanged). */
int64_t dns_cache_put(struct dns_cache *c, const char *qname, uint16_t qtype,
                      const struct dns_result *res, uint64_t now_ms, struct err **errp);

/* 1 on a hit: *out (cleared first) receives a copy the caller owns
 * (dns_result_clear()), every record's TTL set to the seconds left (at least
 * 1). 0 on a miss; an expired entry is dropped. -1 out of memory. */
int dns_cache_get(struct dns_cache *c, const char *qname, uint16_t qtype, uint64_t now_ms,
                  struct dns_result *out, struct err **errp);

size_t dns_cache_count(const struct dns_cache *c);
size_t dns_cache_bytes(const struct dns_cache *c);
void dns_cache_clear(struct dns_cache *c);

#endif
