/* Always-blocked destinations for resolved IPv4 addresses (network.md 8.3)
 * and the answer filter of section 4 step 8 (rebinding guard). Self-contained
 * so the policy engine (src/lib/policy) and the HTTPS proxy can call the same
 * check: dns_ipv4_always_blocked() is the one range table. Addresses are in
 * host byte order. */
#ifndef CAPSEM_DNS_DNSADDR_H
#define CAPSEM_DNS_DNSADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dnsmsg.h"

/* 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24,
 * 192.168/16, 198.18/15, 224/4, 240/4 and 100.100.100.200. */
bool dns_ipv4_always_blocked(uint32_t addr);

/* Dotted quad -> host order; strict (four decimal parts 0..255, no leading
 * zeros, nothing else). 0 or -1. */
int dns_ipv4_parse(const char *s, uint32_t *out);
/* Host order -> dotted quad (cap >= 16). */
void dns_ipv4_format(uint32_t addr, char *buf, size_t cap);

enum dns_filter_result {
    DNS_FILTER_KEPT = 0, /* no A record removed (or none to look at) */
    DNS_FILTER_TRIMMED,  /* some removed, some left */
    DNS_FILTER_EMPTY,    /* there were A records and all were removed: NXDOMAIN `private_address` */
};

/* Removes A records in always-blocked ranges from r unless named_by_rule
 * (the deciding allow rule is corp/user and names the qname exactly; the
 * policy engine decides that). *removed (may be NULL) gets the count. */
enum dns_filter_result dns_result_filter_private(struct dns_result *r, bool named_by_rule,
                                                 size_t *removed);

#endif
