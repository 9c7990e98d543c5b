/* Token buckets and per-VM query admission (ratelimit.h). */
#include "dns/ratelimit.h"

#include <string.h>

void dns_bucket_init(struct dns_bucket *b, double burst, double rate_per_ms, uint64_t now_ms)
{
    b->tokens = burst;
    b->burst = burst;
    b->rate_per_ms = rate_per_ms;
    b->last_ms = now_ms;
}

bool dns_bucket_take(struct dns_bucket *b, uint64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_ms;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

void dns_rate_init(struct dns_rate *r, double per_s, double burst, unsigned max_outstanding,
                   uint64_t now_ms)
{
    dns_bucket_init(&r->bucket, burst, per_s / 1000.0, now_ms);
    r->outstanding = 0;
    r->max_outstanding = max_outstanding;
}

enum dns_rate_verdict dns_rate_admit(struct dns_rate *r, uint64_t now_ms)
{
    if (r->outstanding >= r->max_outstanding)
        return DNS_RATE_BUSY;
    if (!dns_bucket_take(&r->bucket, now_ms))
        return DNS_RATE_LIMITED;
    r->outstanding++;
    return DNS_RATE_OK;
}

void dns_rate_done(struct dns_rate *r)
{
    if (r->outstanding > 0)
        r->outstanding--;
}

const char *dns_rate_reason(enum dns_rate_verdict v)
{
    switch (v) {
    case DNS_RATE_LIMITED:
        return "rate_limited";
    case DNS_RATE_BUSY:
        return "too_many_outstanding";
    default:
        return NULL;
    }
}

bool dns_qname_has_placeholder(const char *qname)
{
    return strstr(qname, "capsem-placeholder-") != NULL;
}
