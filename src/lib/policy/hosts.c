/* Host patterns (network.md 8.2) and the always-blocked destinations (8.3). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy_int.h"

/* ---- always-blocked ---- */

struct v4range {
    uint32_t addr, mask;
};

#define V4(a, b, c, d)                                                                             \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define PFX(n) ((n) == 0 ? 0u : ~0u << (32 - (n)))

static const struct v4range v4_blocked[] = {
    {V4(0, 0, 0, 0), PFX(8)},    {V4(10, 0, 0, 0), PFX(8)},     {V4(100, 64, 0, 0), PFX(10)},
    {V4(127, 0, 0, 0), PFX(8)},  {V4(169, 254, 0, 0), PFX(16)}, {V4(172, 16, 0, 0), PFX(12)},
    {V4(192, 0, 0, 0), PFX(24)}, {V4(192, 168, 0, 0), PFX(16)}, {V4(198, 18, 0, 0), PFX(15)},
    {V4(224, 0, 0, 0), PFX(4)},  {V4(240, 0, 0, 0), PFX(4)},    {V4(100, 100, 100, 200), PFX(32)},
};

bool policy_ipv4_always_blocked(uint32_t addr)
{
    for (size_t i = 0; i < sizeof(v4_blocked) / sizeof(v4_blocked[0]); i++)
        if ((addr & v4_blocked[i].mask) == v4_blocked[i].addr)
            return true;
    return false;
}

static bool v6_prefix(const uint8_t *a, const uint8_t *p, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, p, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xFF << (8 - rest));
    return (a[full] & m) == (p[full] & m);
}

static uint32_t v4_tail(const uint8_t *a)
{
    return (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15];
}

bool policy_ipv6_always_blocked(const uint8_t a[16])
{
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t nat64[12] = {0, 0x64, 0xFF, 0x9B};
    static const uint8_t nat64_local[6] = {0, 0x64, 0xFF, 0x9B, 0, 1};
    static const uint8_t fc[1] = {0xFC}, fe80[2] = {0xFE, 0x80}, ff[1] = {0xFF};
    static const uint8_t ec2[16] = {0xFD, 0, 0x0E, 0xC2, [14] = 0x02, [15] = 0x54};
    if (memcmp(a, zero, 15) == 0 && a[15] <= 1) /* ::, ::1 */
        return true;
    if (v6_prefix(a, fc, 7) || v6_prefix(a, fe80, 10) || v6_prefix(a, ff, 8) ||
        memcmp(a, ec2, 16) == 0)
        return true;
    /* IPv4 inside IPv6: mapped ::ffff:0:0/96, compatible ::/96, NAT64
     * 64:ff9b::/96 (RFC 6052: the last 32 bits). */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, zero, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return policy_ipv4_always_blocked(v4_tail(a));
    /* The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215). Its usual
     * layout is 64:ff9b:1::/96 (bytes 6-11 zero, IPv4 in the last 32 bits).
     * Otherwise the network may have cut it at /48, /56 or /64, where RFC
     * 6052 places the IPv4 bits elsewhere (skipping byte 8); the length is
     * unknown here, so the address is blocked if any reading is. */
    if (v6_prefix(a, nat64_local, 48)) {
        static const uint8_t at[4][4] = {
            {12, 13, 14, 15}, {6, 7, 9, 10}, {7, 9, 10, 11}, {9, 10, 11, 12}};
        size_t readings = memcmp(a + 6, zero, 6) == 0 ? 1 : 4;
        for (size_t i = 0; i < readings; i++) {
            uint32_t v4 = (uint32_t)a[at[i][0]] << 24 | (uint32_t)a[at[i][1]] << 16 |
                          (uint32_t)a[at[i][2]] << 8 | a[at[i][3]];
            if (policy_ipv4_always_blocked(v4))
                return true;
        }
    }
    return false;
}

static bool suffix_match(const char *host, size_t hlen, const char *suffix, size_t slen)
{
    return hlen > slen + 1 && host[hlen - slen - 1] == '.' &&
           strncasecmp(host + hlen - slen, suffix, slen) == 0;
}

bool policy_host_always_blocked(const char *host)
{
    static const char *const names[] = {"localhost", "metadata.google.internal",
                                        "host.capsem.internal"};
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && strncasecmp(host, names[i], n) == 0)
            return true;
    if (suffix_match(host, n, "localhost", 9))
        return true;
    uint32_t ip;
    if (policy_ipv4_parse(host, n, &ip) == 0)
        return policy_ipv4_always_blocked(ip);
    if (memchr(host, ':', n)) { /* an IPv6 literal, bracketed or not */
        char buf[64];
        size_t off = host[0] == '[', len = n - off - (n > 0 && host[n - 1] == ']');
        uint8_t a6[16];
        if (len >= sizeof(buf))
            return true;
        memcpy(buf, host + off, len);
        buf[len] = '\0';
        return inet_pton(AF_INET6, buf, a6) != 1 || policy_ipv6_always_blocked(a6);
    }
    return false;
}

/* ---- patterns ---- */

static int __attribute__((format(printf, 3, 4))) fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int hostpat_parse(const char *s, struct host_pat *hp, char *why, size_t cap)
{
    char norm[256];
    size_t n = strlen(s);
    memset(hp, 0, sizeof(*hp));
    if (strcmp(s, "*") == 0) {
        hp->kind = HP_ANY;
        return 0;
    }
    const char *slash = strchr(s, '/');
    if (slash) {
        /* The prefix length is one or two digits, without a leading zero. */
        const char *b = slash + 1;
        size_t nd = strspn(b, "0123456789");
        unsigned bits = nd == 1   ? (unsigned)(b[0] - '0')
                        : nd == 2 ? (unsigned)((b[0] - '0') * 10 + (b[1] - '0'))
                                  : 99;
        if (policy_ipv4_parse(s, (size_t)(slash - s), &hp->addr) < 0 || b[nd] != '\0' ||
            bits > 32 || (nd == 2 && b[0] == '0'))
            return fail(why, cap, "'%s' is not an IPv4 CIDR (a.b.c.d/n)", s);
        hp->mask = PFX(bits);
        if (hp->addr & ~hp->mask)
            return fail(why, cap, "'%s' has bits set past the /%u prefix", s, bits);
        hp->kind = HP_CIDR;
        return 0;
    }
    bool wild = n > 2 && s[0] == '*' && s[1] == '.';
    const char *name = wild ? s + 2 : s;
    if (strchr(name, '*'))
        return fail(why, cap, "'%s': '*' is allowed only alone or as '*.suffix'", s);
    struct err *e = NULL;
    int len = policy_host_normalize(name, strlen(name), norm, sizeof(norm), &e);
    if (len < 0) {
        snprintf(why, cap, "'%s': %s", s, err_msg(e));
        err_free(e);
        return -1;
    }
    if (policy_ipv4_parse(norm, (size_t)len, &hp->addr) == 0) {
        if (wild)
            return fail(why, cap, "'%s': a wildcard needs a DNS suffix", s);
        hp->kind = HP_IPV4;
        hp->mask = ~0u;
        return 0;
    }
    if (!(hp->name = strdup(norm)))
        return fail(why, cap, "out of memory");
    hp->nlen = (size_t)len;
    hp->kind = wild ? HP_SUFFIX : HP_EXACT;
    return 0;
}

void hostpat_clear(struct host_pat *hp)
{
    free(hp->name);
    hp->name = NULL;
}

bool hostpat_match(const struct host_pat *hp, const char *host, bool is_ip, uint32_t ip)
{
    switch (hp->kind) {
    case HP_ANY:
        return true;
    case HP_EXACT:
        return !is_ip && strcasecmp(host, hp->name) == 0;
    case HP_SUFFIX:
        return !is_ip && suffix_match(host, strlen(host), hp->name, hp->nlen);
    case HP_IPV4:
    case HP_CIDR:
        return is_ip && (ip & hp->mask) == hp->addr;
    }
    return false;
}

bool hostpat_names(const struct host_pat *hp, const char *host, bool is_ip, uint32_t ip)
{
    return (hp->kind == HP_EXACT || hp->kind == HP_IPV4 || hp->kind == HP_CIDR) &&
           hostpat_match(hp, host, is_ip, ip);
}
