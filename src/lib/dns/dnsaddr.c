/* Always-blocked IPv4 ranges and the answer filter (dnsaddr.h). */
#include "dns/dnsaddr.h"

#include <stdio.h>

#include "base/util.h"

struct range {
    uint32_t net;
    unsigned bits;
};

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct range blocked[] = {
    {IP4(0, 0, 0, 0), 8},     {IP4(10, 0, 0, 0), 8},     {IP4(100, 64, 0, 0), 10},
    {IP4(127, 0, 0, 0), 8},   {IP4(169, 254, 0, 0), 16}, {IP4(172, 16, 0, 0), 12},
    {IP4(192, 0, 0, 0), 24},  {IP4(192, 168, 0, 0), 16}, {IP4(198, 18, 0, 0), 15},
    {IP4(224, 0, 0, 0), 4},   {IP4(240, 0, 0, 0), 4},    {IP4(100, 100, 100, 200), 32},
};

bool dns_ipv4_always_blocked(uint32_t addr)
{
    for (size_t i = 0; i < ARRAY_SIZE(blocked); i++) {
        uint32_t mask = blocked[i].bits ? ~(uint32_t)0 << (32 - blocked[i].bits) : 0;
        if ((addr & mask) == blocked[i].net)
            return true;
    }
    return false;
}

int dns_ipv4_parse(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && *s++ != '.')
            return -1;
        if (*s < '0' || *s > '9')
            return -1;
        unsigned n = 0, digits = 0;
        const char *start = s;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            n = n * 10 + (unsigned)(*s++ - '0');
            digits++;
        }
        if (n > 255 || digits > 3 || (digits > 1 && *start == '0'))
            return -1;
        v = (v << 8) | n;
    }
    if (*s != '\0')
        return -1;
    *out = v;
    return 0;
}

void dns_ipv4_format(uint32_t a, char *buf, size_t cap)
{
    snprintf(buf, cap, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xFF, (a >> 8) & 0xFF, a & 0xFF);
}

enum dns_filter_result dns_result_filter_private(struct dns_result *r, bool named_by_rule,
                                                 size_t *removed)
{
    size_t had = 0, gone = 0;
    for (size_t i = 0; i < r->n;) {
        if (r->rr[i].type != DNS_T_A || r->rr[i].rdlen != 4) {
            i++;
            continue;
        }
        const uint8_t *p = dns_rr_rdata(&r->rr[i]);
        uint32_t a = IP4(p[0], p[1], p[2], p[3]);
        had++;
        if (!named_by_rule && dns_ipv4_always_blocked(a)) {
            dns_result_remove(r, i);
            gone++;
        } else {
            i++;
        }
    }
    if (removed)
        *removed = gone;
    if (gone == 0)
        return DNS_FILTER_KEPT;
    return gone == had ? DNS_FILTER_EMPTY : DNS_FILTER_TRIMMED;
}
