/* DNS per-VM state without the network: answer cache (TTL clamping,
 * negative entries, LRU and byte caps, injectable clock), pin set LRU, rate
 * limits, always-blocked address filter, keyed hash. */
#include <stdlib.h>
#include <string.h>

#include "dns/cache.h"
#include "dns/dnsaddr.h"
#include "dns/dnslru.h"
#include "dns/pinset.h"
#include "dns/ratelimit.h"
#include "tap.h"

static void add_a(struct dns_result *r, const char *owner, uint32_t ttl, uint32_t ip)
{
    uint8_t wire[DNS_NAME_WIRE_MAX], rd[4] = {ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF,
                                              ip & 0xFF};
    int wl = dnsname_text_to_wire(owner, wire, sizeof(wire));
    dns_result_add(r, DNS_T_A, ttl, wire, (size_t)wl, rd, 4);
}

static void add_cname(struct dns_result *r, const char *owner, uint32_t ttl, const char *target)
{
    uint8_t wire[DNS_NAME_WIRE_MAX], rd[DNS_NAME_WIRE_MAX];
    int wl = dnsname_text_to_wire(owner, wire, sizeof(wire));
    int tl = dnsname_text_to_wire(target, rd, sizeof(rd));
    dns_result_add(r, DNS_T_CNAME, ttl, wire, (size_t)wl, rd, (size_t)tl);
}

static struct dns_cache *new_cache(size_t entries, size_t bytes)
{
    struct dns_cache_config cfg;
    dns_cache_config_default(&cfg);
    if (entries)
        cfg.max_entries = entries;
    if (bytes)
        cfg.max_bytes = bytes;
    return dns_cache_new(&cfg, NULL);
}

static void test_cache_ttl(void)
{
    struct dns_cache *c = new_cache(0, 0);
    struct dns_result r = {0}, out = {0};
    uint64_t t0 = 1000000;
    add_a(&r, "short.com", 5, 0x01020304);
    is_int(dns_cache_put(c, "short.com", DNS_T_A, &r, t0, NULL), 30, "TTL 5 clamped up to 30");
    is_int(dns_cache_get(c, "short.com", DNS_T_A, t0 + 29999, &out, NULL), 1, "hit at 29.999 s");
    is_int(out.rr[0].ttl, 1, "remaining TTL 1 s");
    is_int(dns_cache_get(c, "short.com", DNS_T_A, t0 + 30000, &out, NULL), 0, "miss at 30 s");
    is_int(dns_cache_count(c), 0, "expired entry dropped");
    dns_result_clear(&r);

    add_a(&r, "long.com", 86400, 0x01020304);
    is_int(dns_cache_put(c, "long.com", DNS_T_A, &r, t0, NULL), 300, "TTL 86400 clamped to 300");
    is_int(dns_cache_get(c, "long.com", DNS_T_A, t0 + 100000, &out, NULL), 1, "hit at 100 s");
    is_int(out.rr[0].ttl, 200, "remaining TTL 200 s");
    is_int(dns_cache_get(c, "long.com", DNS_T_A, t0 + 300000, &out, NULL), 0, "miss at 300 s");
    dns_result_clear(&r);

    add_cname(&r, "mid.com", 200, "x.net");
    add_a(&r, "x.net", 120, 0x01020304);
    is_int(dns_cache_put(c, "mid.com", DNS_T_A, &r, t0, NULL), 120, "smallest TTL of the chain");
    is_int(dns_cache_get(c, "mid.com", DNS_T_TXT, t0, &out, NULL), 0, "other qtype: miss");
    is_int(dns_cache_get(c, "mid.com", DNS_T_A, t0 + 1, &out, NULL), 1, "same qtype: hit");
    ok(out.n == 2 && out.rr[0].ttl == 120 && out.rr[1].ttl == 120, "copy with TTLs left");
    dns_result_clear(&r);

    r.rcode = DNS_RCODE_NXDOMAIN;
    is_int(dns_cache_put(c, "nx.com", DNS_T_A, &r, t0, NULL), 30, "NXDOMAIN kept 30 s");
    ok(dns_cache_get(c, "nx.com", DNS_T_A, t0 + 29000, &out, NULL) == 1 &&
           out.rcode == DNS_RCODE_NXDOMAIN && out.n == 0,
       "negative hit is NXDOMAIN");
    is_int(dns_cache_get(c, "nx.com", DNS_T_A, t0 + 30000, &out, NULL), 0, "negative gone at 30 s");
    r.rcode = DNS_RCODE_NOERROR;
    add_cname(&r, "nodata.com", 3600, "y.net");
    is_int(dns_cache_put(c, "nodata.com", DNS_T_A, &r, t0, NULL), 30,
           "CNAME without A at its end: negative, 30 s");
    dns_result_clear(&r);

    add_a(&r, "replace.com", 60, 1);
    dns_cache_put(c, "replace.com", DNS_T_A, &r, t0, NULL);
    dns_result_clear(&r);
    add_a(&r, "replace.com", 60, 2);
    dns_cache_put(c, "replace.com", DNS_T_A, &r, t0, NULL);
    uint32_t ip = 0;
    dns_cache_get(c, "replace.com", DNS_T_A, t0, &out, NULL);
    dns_result_ipv4(&out, &ip, 1);
    is_int(ip, 2, "put replaces the older entry");
    dns_result_clear(&r);
    dns_result_clear(&out);
    dns_cache_free(c);
}

static void test_cache_lru(void)
{
    struct dns_cache *c = new_cache(3, 0);
    struct dns_result r = {0}, out = {0};
    char name[32];
    add_a(&r, "x.com", 60, 1);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "n%d.com", i);
        dns_cache_put(c, name, DNS_T_A, &r, 0, NULL);
    }
    is_int(dns_cache_count(c), 3, "three entries");
    is_int(dns_cache_get(c, "n0.com", DNS_T_A, 1, &out, NULL), 1, "touch n0");
    dns_cache_put(c, "n3.com", DNS_T_A, &r, 2, NULL);
    is_int(dns_cache_count(c), 3, "still three after a fourth put");
    is_int(dns_cache_get(c, "n1.com", DNS_T_A, 3, &out, NULL), 0, "least recently used evicted");
    is_int(dns_cache_get(c, "n0.com", DNS_T_A, 3, &out, NULL), 1, "touched entry kept");
    is_int(dns_cache_get(c, "n3.com", DNS_T_A, 3, &out, NULL), 1, "newest entry kept");
    dns_cache_free(c);

    /* The default 2048: at the cap, and one past. */
    c = new_cache(0, 0);
    for (int i = 0; i < 2048; i++) {
        snprintf(name, sizeof(name), "h%d.com", i);
        dns_cache_put(c, name, DNS_T_A, &r, 0, NULL);
    }
    ok(dns_cache_count(c) == 2048 && dns_cache_get(c, "h0.com", DNS_T_A, 1, &out, NULL) == 1,
       "2048 entries held");
    dns_cache_put(c, "h2048.com", DNS_T_A, &r, 0, NULL);
    ok(dns_cache_count(c) == 2048 && dns_cache_get(c, "h1.com", DNS_T_A, 1, &out, NULL) == 0,
       "2049th evicts the oldest");
    dns_cache_clear(c);
    is_int(dns_cache_count(c), 0, "clear empties");
    is_int(dns_cache_bytes(c), 0, "clear releases the byte count");
    dns_cache_free(c);

    /* Byte cap. */
    c = new_cache(100, 1000);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "b%d.com", i);
        dns_cache_put(c, name, DNS_T_A, &r, 0, NULL);
    }
    ok(dns_cache_bytes(c) <= 1000 && dns_cache_count(c) < 20, "byte cap evicts (%zu entries)",
       dns_cache_count(c));
    dns_result_clear(&r);
    dns_result_clear(&out);
    dns_cache_free(c);
}

static void test_pinset(void)
{
    struct dns_pinset *ps = dns_pinset_new(3, 8, NULL);
    char name[DNS_NAME_BUF];
    uint32_t a1[] = {0x0A000001, 0x0A000002, 0x0A000001};
    ok(dns_pinset_add(ps, "one.com", a1, 3, NULL) == 0, "add one.com");
    ok(dns_pinset_lookup(ps, 0x0A000002, name, sizeof(name)) && strcmp(name, "one.com") == 0,
       "address -> one.com");
    ok(!dns_pinset_lookup(ps, 0x0A000003, name, sizeof(name)), "unknown address");
    uint32_t a2[] = {0x0A000002};
    dns_pinset_add(ps, "two.com", a2, 1, NULL);
    ok(dns_pinset_lookup(ps, 0x0A000002, name, sizeof(name)) && strcmp(name, "two.com") == 0,
       "latest name wins for a shared address");
    ok(dns_pinset_lookup(ps, 0x0A000001, name, sizeof(name)) && strcmp(name, "one.com") == 0,
       "other address keeps its name");
    uint32_t a3[] = {0x0A000003}, a4[] = {0x0A000004};
    dns_pinset_add(ps, "three.com", a3, 1, NULL);
    /* Recency now: one (looked up last), three, two -> two is the oldest. */
    dns_pinset_add(ps, "four.com", a4, 1, NULL);
    is_int(dns_pinset_count(ps), 3, "capped at 3 names");
    ok(!dns_pinset_lookup(ps, 0x0A000002, name, sizeof(name)), "oldest name evicted with its addresses");
    ok(dns_pinset_lookup(ps, 0x0A000001, name, sizeof(name)), "recently looked-up name kept");
    uint32_t renew[] = {0x0A000009};
    dns_pinset_add(ps, "one.com", renew, 1, NULL);
    ok(!dns_pinset_lookup(ps, 0x0A000001, name, sizeof(name)), "re-resolution replaces addresses");
    ok(dns_pinset_lookup(ps, 0x0A000009, name, sizeof(name)), "new address maps");
    ok(dns_pinset_add(ps, "none.com", NULL, 0, NULL) == 0 && dns_pinset_count(ps) == 3,
       "no addresses: no-op");
    dns_pinset_free(ps);

    ps = dns_pinset_new(DNS_PINSET_NAMES, DNS_PINSET_ADDRS, NULL);
    uint32_t many[12];
    for (int i = 0; i < 12; i++)
        many[i] = 0x01000000u + (uint32_t)i;
    dns_pinset_add(ps, "many.com", many, 12, NULL);
    ok(dns_pinset_lookup(ps, many[7], name, sizeof(name)), "8th address kept");
    ok(!dns_pinset_lookup(ps, many[8], name, sizeof(name)), "9th address dropped");
    for (uint32_t i = 0; i < 5000; i++) {
        char n[32];
        uint32_t ip = 0x20000000u + i;
        snprintf(n, sizeof(n), "n%u.com", i);
        dns_pinset_add(ps, n, &ip, 1, NULL);
    }
    is_int(dns_pinset_count(ps), DNS_PINSET_NAMES, "4096 names at most");
    ok(!dns_pinset_lookup(ps, 0x20000000u + 903, name, sizeof(name)) &&
           dns_pinset_lookup(ps, 0x20000000u + 904, name, sizeof(name)),
       "oldest evicted first (n903 gone, n904 kept)");
    dns_pinset_free(ps);
}

static void test_rate(void)
{
    struct dns_rate r;
    dns_rate_init(&r, 200, 500, 256, 0);
    int admitted = 0;
    for (int i = 0; i < 600; i++) {
        if (dns_rate_admit(&r, 0) == DNS_RATE_OK) {
            admitted++;
            dns_rate_done(&r);
        }
    }
    is_int(admitted, 500, "burst of 500 at one instant");
    is_int(dns_rate_admit(&r, 0), DNS_RATE_LIMITED, "501st: limited");
    is_str(dns_rate_reason(DNS_RATE_LIMITED), "rate_limited", "reason");
    is_int(dns_rate_admit(&r, 5), DNS_RATE_OK, "5 ms later one token (200/s)");
    dns_rate_done(&r);
    is_int(dns_rate_admit(&r, 5), DNS_RATE_LIMITED, "and only one");
    while (dns_rate_admit(&r, 1000) == DNS_RATE_OK) /* drain at t = 1 s */
        dns_rate_done(&r);
    admitted = 0;
    for (uint64_t t = 1001; t <= 2000; t++) {
        if (dns_rate_admit(&r, t) == DNS_RATE_OK) {
            admitted++;
            dns_rate_done(&r);
        }
    }
    ok(admitted >= 199 && admitted <= 201, "about 200 per second sustained (%d)", admitted);

    dns_rate_init(&r, 200, 500, 256, 0);
    for (int i = 0; i < 256; i++)
        dns_rate_admit(&r, 0);
    is_int(r.outstanding, 256, "256 outstanding");
    is_int(dns_rate_admit(&r, 0), DNS_RATE_BUSY, "257th outstanding: busy");
    is_str(dns_rate_reason(DNS_RATE_BUSY), "too_many_outstanding", "reason");
    dns_rate_done(&r);
    is_int(dns_rate_admit(&r, 0), DNS_RATE_OK, "one answered: admitted again");

    struct dns_bucket b;
    dns_bucket_init(&b, 2, 1.0 / 1000, 100);
    ok(dns_bucket_take(&b, 100) && dns_bucket_take(&b, 100) && !dns_bucket_take(&b, 100),
       "bucket burst 2");
    ok(!dns_bucket_take(&b, 50), "clock going back refills nothing");
    ok(dns_bucket_take(&b, 1100), "refilled after 1 s");

    ok(dns_qname_has_placeholder("capsem-placeholder-openai-abc.evil.com"), "placeholder qname");
    ok(!dns_qname_has_placeholder("capsem.dev"), "ordinary qname");
}

static void test_addr(void)
{
    static const struct {
        const char *ip;
        bool blocked;
    } cases[] = {
        {"0.1.2.3", true},        {"10.0.0.1", true},       {"100.63.255.255", false},
        {"100.64.0.0", true},     {"100.127.255.255", true}, {"100.128.0.0", false},
        {"127.0.0.1", true},      {"169.254.169.254", true}, {"172.15.255.255", false},
        {"172.16.0.1", true},     {"172.31.255.255", true}, {"172.32.0.0", false},
        {"192.0.0.8", true},      {"192.0.1.1", false},     {"192.168.1.1", true},
        {"198.17.255.255", false}, {"198.18.0.0", true},    {"198.19.255.255", true},
        {"198.20.0.0", false},    {"224.0.0.1", true},      {"239.255.255.255", true},
        {"240.0.0.1", true},      {"255.255.255.255", true}, {"100.100.100.200", true},
        {"100.100.100.201", true}, {"8.8.8.8", false},     {"93.184.216.34", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t a;
        ok(dns_ipv4_parse(cases[i].ip, &a) == 0 && dns_ipv4_always_blocked(a) == cases[i].blocked,
           "%s %s", cases[i].ip, cases[i].blocked ? "blocked" : "allowed");
    }
    uint32_t a;
    ok(dns_ipv4_parse("01.2.3.4", &a) < 0, "leading zero rejected");
    ok(dns_ipv4_parse("1.2.3", &a) < 0, "three parts rejected");
    ok(dns_ipv4_parse("1.2.3.256", &a) < 0, "256 rejected");
    ok(dns_ipv4_parse("1.2.3.4 ", &a) < 0, "trailing space rejected");
    char buf[16];
    dns_ipv4_format(0xC0A80101, buf, sizeof(buf));
    is_str(buf, "192.168.1.1", "format");

    struct dns_result r = {0};
    size_t removed;
    add_cname(&r, "www.x.com", 60, "x.com");
    add_a(&r, "x.com", 60, 0x7F000001);
    add_a(&r, "x.com", 60, 0x08080808);
    is_int(dns_result_filter_private(&r, false, &removed), DNS_FILTER_TRIMMED, "one removed");
    ok(removed == 1 && r.n == 2 && r.rr[1].type == DNS_T_A, "public address and CNAME kept");
    dns_result_clear(&r);
    add_a(&r, "x.com", 60, 0x0A000001);
    add_a(&r, "x.com", 60, 0xA9FEA9FE);
    is_int(dns_result_filter_private(&r, true, &removed), DNS_FILTER_KEPT,
           "named by a corp/user rule: kept");
    is_int(dns_result_filter_private(&r, false, &removed), DNS_FILTER_EMPTY,
           "all private: empty (NXDOMAIN private_address)");
    is_int(r.n, 0, "nothing left");
    is_int(dns_result_filter_private(&r, false, NULL), DNS_FILTER_KEPT, "no A records: kept");
    dns_result_clear(&r);
}

static void test_siphash(void)
{
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    ok(dns_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL, "SipHash-2-4 reference vector (15 B)");
    ok(dns_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL, "SipHash-2-4 reference vector (0 B)");
}

int main(void)
{
    test_cache_ttl();
    test_cache_lru();
    test_pinset();
    test_rate();
    test_addr();
    test_siphash();
    return done_testing();
}
