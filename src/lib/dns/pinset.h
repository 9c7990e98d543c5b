/* Per-VM pin set (network.md section 4 step 8, section 5 "No SNI"): IPv4
 * address -> the last name the guest resolved to it, so a TLS connection
 * without SNI to that address is named. LRU of 4096 names with up to 8
 * addresses each; an address maps to the name that most recently returned
 * it. Addresses are IPv4 in host byte order (as agent_proto's T_DST_IP).
 * Not thread-safe: one VM's event loop owns it. */
#ifndef CAPSEM_DNS_PINSET_H
#define CAPSEM_DNS_PINSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define DNS_PINSET_NAMES 4096
#define DNS_PINSET_ADDRS 8

struct dns_pinset;

/* max_addrs is capped at DNS_PINSET_ADDRS. */
struct dns_pinset *dns_pinset_new(size_t max_names, size_t max_addrs, struct err **errp);
void dns_pinset_free(struct dns_pinset *ps);

/* Records that name (normalised text) resolved to addrs[0..n) (the first
 * max_addrs are kept; duplicates once). The name becomes the newest entry;
 * its previous address list is replaced; each address now maps to it.
 * n == 0 is a no-op. -1 out of memory or name too long (the set is
 * unchanged). */
int dns_pinset_add(struct dns_pinset *ps, const char *name, const uint32_t *addrs, size_t n,
                   struct err **errp);

/* Copies the name for addr into out (cap >= DNS_NAME_BUF from dnsnorm.h)
 * and marks it recently used. false when the address is unknown. */
bool dns_pinset_lookup(struct dns_pinset *ps, uint32_t addr, char *out, size_t cap);

size_t dns_pinset_count(const struct dns_pinset *ps);

#endif
