/* Token buckets and the per-VM query admission of network.md section 4
 * step 3: at most 200 queries/s with a burst of 500, at most 256 queries
 * outstanding (answered neither from the cache nor upstream yet); beyond
 * either -> REFUSED. Also the placeholder check of the same step.
 * Time is passed in (monotonic ms). No allocation. */
#ifndef CAPSEM_DNS_RATELIMIT_H
#define CAPSEM_DNS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Starts full. rate_per_ms may be fractional (10/min = 10.0 / 60000). */
struct dns_bucket {
    double tokens;
    double burst;
    double rate_per_ms;
    uint64_t last_ms;
};

void dns_bucket_init(struct dns_bucket *b, double burst, double rate_per_ms, uint64_t now_ms);
/* Refills for the time since the last call, then takes one token if there
 * is one. A clock going backwards refills nothing. */
bool dns_bucket_take(struct dns_bucket *b, uint64_t now_ms);

struct dns_rate {
    struct dns_bucket bucket;
    unsigned outstanding;
    unsigned max_outstanding;
};

enum dns_rate_verdict {
    DNS_RATE_OK = 0,   /* admitted: call dns_rate_done() once answered */
    DNS_RATE_LIMITED,  /* over the rate: REFUSED */
    DNS_RATE_BUSY,     /* too many outstanding: REFUSED */
};

/* Defaults: 200/s, burst 500, 256 outstanding. */
void dns_rate_init(struct dns_rate *r, double per_s, double burst, unsigned max_outstanding,
                   uint64_t now_ms);
enum dns_rate_verdict dns_rate_admit(struct dns_rate *r, uint64_t now_ms);
void dns_rate_done(struct dns_rate *r);
/* "rate_limited", "too_many_outstanding", NULL for OK. */
const char *dns_rate_reason(enum dns_rate_verdict v);

/* The qname carries a credential placeholder (`capsem-placeholder-`):
 * answer NXDOMAIN, reason `placeholder_misuse`. */
bool dns_qname_has_placeholder(const char *qname);

#endif
