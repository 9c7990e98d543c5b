/* DNS exfiltration guard and Public Suffix List (docs/dns.md, network.md
 * section 4 step 6 and section 14): registrable domains for ordinary,
 * multi-label, wildcard and exception suffixes; classification at and one
 * past each threshold; the per-domain suspicious bucket, distinct
 * subdomain window, block, first-trip reporting and domain cap, driven by
 * an explicit clock; dns.exfil_guard key validation. */
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dnsvm.h"
#include "dns/exfil.h"
#include "dns/psl.h"
#include "tap.h"

/* ---- Public Suffix List ---- */

/* Checks both offsets; reg/suffix NULL means -1. */
static void check_psl(const char *name, const char *want_reg, const char *want_suffix)
{
    int reg = dns_psl_registrable_offset(name);
    int suf = dns_psl_suffix_offset(name);
    is_str(reg >= 0 ? name + reg : NULL, want_reg, "registrable domain of '%s'", name);
    is_str(suf >= 0 ? name + suf : NULL, want_suffix, "public suffix of '%s'", name);
}

static void test_psl_table(void)
{
    ok(dns_psl_rules_count >= 1000, "the compiled list holds %zu rules (>= 1000)",
       dns_psl_rules_count);
    bool sorted = true;
    for (size_t i = 1; i < dns_psl_rules_count; i++)
        if (strcmp(dns_psl_rules[i - 1].suffix, dns_psl_rules[i].suffix) >= 0) {
            diag("out of order at %zu: '%s' then '%s'", i, dns_psl_rules[i - 1].suffix,
                 dns_psl_rules[i].suffix);
            sorted = false;
            break;
        }
    ok(sorted, "rules strictly sorted bytewise (binary search needs it)");
    size_t hexlen = strspn(dns_psl_source_sha256, "0123456789abcdef");
    ok(hexlen == 64 && dns_psl_source_sha256[64] == '\0', "source SHA-256 is 64 hex digits");
}

static void test_psl_lookups(void)
{
    /* Ordinary and unknown TLDs (the implicit "*" rule). */
    check_psl("www.example.com", "example.com", "com");
    check_psl("example.com", "example.com", "com");
    check_psl("com", NULL, "com");
    check_psl("a.b.c.example.org", "example.org", "org");
    check_psl("host.nosuchtld", "host.nosuchtld", "nosuchtld");
    check_psl("nosuchtld", NULL, "nosuchtld");
    check_psl("", NULL, NULL);

    /* Multi-label suffixes; the longest matching rule wins. */
    check_psl("a.b.example.co.uk", "example.co.uk", "co.uk");
    check_psl("co.uk", NULL, "co.uk");
    check_psl("bbc.uk", "bbc.uk", "uk");
    check_psl("user.github.io", "user.github.io", "github.io"); /* private section */
    check_psl("x.y.user.github.io", "user.github.io", "github.io");
    check_psl("github.io", NULL, "github.io");
    check_psl("bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com", "s3.amazonaws.com");
    check_psl("amazonaws.com", "amazonaws.com", "com");

    /* Wildcard rules: "*.ck" makes every second-level .ck name a suffix;
     * "*.kawasaki.jp" does not make kawasaki.jp itself one ("jp" matches). */
    check_psl("bar.ck", NULL, "bar.ck");
    check_psl("foo.bar.ck", "foo.bar.ck", "bar.ck");
    check_psl("a.foo.bar.ck", "foo.bar.ck", "bar.ck");
    check_psl("ck", NULL, "ck");
    check_psl("x.y.kawasaki.jp", "x.y.kawasaki.jp", "y.kawasaki.jp");
    check_psl("y.kawasaki.jp", NULL, "y.kawasaki.jp");
    check_psl("kawasaki.jp", "kawasaki.jp", "jp");

    /* Exception rules prevail over the wildcard: "!www.ck", "!city.kawasaki.jp". */
    check_psl("www.ck", "www.ck", "ck");
    check_psl("a.b.www.ck", "www.ck", "ck");
    check_psl("city.kawasaki.jp", "city.kawasaki.jp", "kawasaki.jp");
    check_psl("www.city.kawasaki.jp", "city.kawasaki.jp", "kawasaki.jp");

    /* Non-ASCII rules are compiled as A-labels (公司.cn, рф). */
    check_psl("shop.xn--55qx5d.cn", "shop.xn--55qx5d.cn", "xn--55qx5d.cn");
    check_psl("xn--55qx5d.cn", NULL, "xn--55qx5d.cn");
    check_psl("a.xn--d1acufc.xn--p1ai", "xn--d1acufc.xn--p1ai", "xn--p1ai");

    /* The most labels a name can have: 127 one-character labels. */
    char deep[DNS_NAME_BUF];
    size_t n = 0;
    for (int i = 0; i < 126; i++) {
        deep[n++] = 'a';
        deep[n++] = '.';
    }
    memcpy(deep + n, "x", 2);
    is_int(strlen(deep), 253, "deep name is 253 characters");
    is_int(dns_psl_registrable_offset(deep), 250, "registrable domain of a 127-label name");
    is_int(dns_psl_suffix_offset(deep), 252, "public suffix of a 127-label name");
}

/* ---- classification ---- */

static struct dns_exfil_config defaults(void)
{
    struct dns_exfil_config c;
    dns_exfil_config_default(&c);
    return c;
}

static struct dns_exfil_class classify(const struct dns_exfil_config *c, const char *name)
{
    struct dns_exfil_class cls;
    dns_exfil_classify(c, name, &cls);
    return cls;
}

/* n copies of ch into buf (NUL-terminated). */
static char *repeat(char *buf, char ch, size_t n)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

static void test_entropy(void)
{
    ok(fabs(dns_entropy_bits("aabb", 4) - 1.0) < 1e-12, "two symbols, equal counts: 1 bit");
    ok(fabs(dns_entropy_bits("a.b", 3) - 1.0) < 1e-12, "dots are skipped");
    is_int(dns_entropy_bits("....", 4) == 0.0, 1, "only dots: 0");
    is_int(dns_entropy_bits("", 0) == 0.0, 1, "empty: 0");
    is_int(dns_entropy_bits("zzzz", 4) == 0.0, 1, "one symbol: 0");
    ok(fabs(dns_entropy_bits("abcdefgh", 8) - 3.0) < 1e-12, "eight symbols: 3 bits");
}

static void test_classify_fields(void)
{
    struct dns_exfil_config c = defaults();
    struct dns_exfil_class k = classify(&c, "a.bc.example.co.uk");
    ok(k.has_regdom && k.regdom_off == 5, "registrable domain at offset 5");
    is_int(k.sub_len, 4, "subdomain part 'a.bc'");
    is_int(k.sub_labels, 2, "two subdomain labels");
    ok(!k.suspicious && k.why == NULL, "ordinary name: not suspicious");
    k = classify(&c, "example.com");
    ok(k.has_regdom && k.regdom_off == 0 && k.sub_len == 0 && k.sub_labels == 0,
       "registrable domain itself: no subdomain");
    k = classify(&c, "bar.ck");
    ok(!k.has_regdom && k.sub_len == 0, "a public suffix has no registrable domain");
    /* The registrable label itself does not count as subdomain entropy. */
    k = classify(&c, "q8w7e6r5t4y3u2i1o0pasdfghjkl.com");
    ok(!k.suspicious && k.sub_len == 0, "random registrable label alone: not suspicious");
}

static void test_classify_thresholds(void)
{
    struct dns_exfil_config c = defaults();
    char label[64], name[300];
    struct dns_exfil_class k;

    /* Label length 48 (any label of the qname). */
    snprintf(name, sizeof(name), "%s.example.com", repeat(label, 'a', 48));
    k = classify(&c, name);
    ok(k.suspicious && strcmp(k.why, "long_label") == 0, "48-char subdomain label: long_label");
    snprintf(name, sizeof(name), "%s.example.com", repeat(label, 'a', 47));
    ok(!classify(&c, name).suspicious, "47-char label: not suspicious");
    snprintf(name, sizeof(name), "%s.com", repeat(label, 'b', 48));
    k = classify(&c, name);
    ok(k.suspicious && strcmp(k.why, "long_label") == 0,
       "48-char registrable label: long_label too");

    /* Name length 180: four low-entropy labels + ".example.com". */
    char l40[64], l45[64], l44[64];
    repeat(l40, 'a', 40);
    snprintf(name, sizeof(name), "%s.%s.%s.%s.example.com", l40, l40, l40, repeat(l45, 'a', 45));
    is_int(strlen(name), 180, "built a 180-char name");
    k = classify(&c, name);
    ok(k.suspicious && strcmp(k.why, "long_name") == 0, "180 chars: long_name");
    snprintf(name, sizeof(name), "%s.%s.%s.%s.example.com", l40, l40, l40, repeat(l44, 'a', 44));
    is_int(strlen(name), 179, "built a 179-char name");
    ok(!classify(&c, name).suspicious, "179 chars: not suspicious");

    /* Six subdomain labels (counted above the registrable domain). */
    k = classify(&c, "a.b.c.d.e.f.example.com");
    ok(k.suspicious && strcmp(k.why, "many_labels") == 0 && k.sub_labels == 6,
       "6 subdomain labels: many_labels");
    k = classify(&c, "b.c.d.e.f.example.com");
    ok(!k.suspicious && k.sub_labels == 5, "5 subdomain labels: not suspicious");
    k = classify(&c, "a.b.c.d.e.example.co.uk");
    ok(!k.suspicious && k.sub_labels == 5, "5 labels above example.co.uk: not suspicious");

    /* Entropy 3.5 bits over >= 24 characters (dots not counted). */
    const char *sym12 = "q8w7e6r5t4y3";
    snprintf(name, sizeof(name), "%s%s.example.com", sym12, sym12); /* 24 chars, log2(12) */
    k = classify(&c, name);
    ok(k.entropy >= 3.5, "12 symbols twice: %.3f bits", k.entropy);
    ok(k.suspicious && strcmp(k.why, "high_entropy") == 0, "24 chars at >= 3.5 bits: high_entropy");
    snprintf(name, sizeof(name), "%s%.11s.example.com", sym12, sym12); /* 23 chars */
    k = classify(&c, name);
    ok(k.entropy >= 3.5 && !k.suspicious, "23 chars at %.3f bits: not suspicious", k.entropy);
    snprintf(name, sizeof(name), "%s.%.11s.example.com", sym12, sym12); /* 23 chars + a dot */
    k = classify(&c, name);
    ok(k.sub_len == 24 && !k.suspicious, "23 chars plus a dot: dots not counted");
    /* Exactly 3.5 bits: 8 symbols twice and 4 symbols four times (32 chars). */
    snprintf(name, sizeof(name), "abcdefghabcdefgh%s.example.com", "wxyzwxyzwxyzwxyz");
    k = classify(&c, name);
    ok(k.entropy == 3.5 && k.suspicious && strcmp(k.why, "high_entropy") == 0,
       "exactly 3.5 bits (%.17g): high_entropy", k.entropy);
    /* 11 symbols three times each: log2(11) = 3.46 bits. */
    snprintf(name, sizeof(name), "%.11s%.11s%.11s.example.com", sym12, sym12, sym12);
    k = classify(&c, name);
    ok(k.entropy < 3.5 && !k.suspicious, "33 chars at %.3f bits: not suspicious", k.entropy);

    /* The first test that holds names the reason. */
    snprintf(name, sizeof(name), "%s.a.b.c.d.e.f.example.com", repeat(label, 'z', 50));
    is_str(classify(&c, name).why, "long_label", "long label and many labels: long_label first");

    /* Thresholds come from the config. */
    ok(dns_exfil_config_set(&c, "entropy_bits", 3, NULL) == 0 &&
           dns_exfil_config_set(&c, "entropy_min_len", 24, NULL) == 0,
       "entropy_bits 3, entropy_min_len 24");
    k = classify(&c, "abcdefghabcdefghabcdefgh.example.com"); /* exactly 3.0 bits */
    ok(k.suspicious && strcmp(k.why, "high_entropy") == 0, "at the configured 3.0 bits");
    dns_exfil_config_set(&c, "entropy_min_len", 25, NULL);
    ok(!classify(&c, "abcdefghabcdefghabcdefgh.example.com").suspicious,
       "entropy_min_len 25: 24 chars no longer enough");
    dns_exfil_config_set(&c, "max_sub_labels", 2, NULL);
    is_str(classify(&c, "a.b.example.com").why, "many_labels", "max_sub_labels 2");
    dns_exfil_config_set(&c, "max_label", 3, NULL);
    is_str(classify(&c, "abc.example.com").why, "long_label", "max_label 3");
    c = defaults();
    dns_exfil_config_set(&c, "max_name", 11, NULL);
    is_str(classify(&c, "example.com").why, "long_name", "max_name 11");
    ok(!classify(&c, "example.co").suspicious, "10 chars under max_name 11");
}

/* ---- accounting ---- */

struct acct {
    struct dns_exfil *g;
    struct dns_exfil_config c;
};

/* Classifies and accounts name at now; returns the verdict. */
static struct dns_exfil_verdict account(struct acct *a, const char *name, uint64_t now)
{
    struct dns_exfil_class cls;
    struct dns_exfil_verdict v;
    dns_exfil_classify(&a->c, name, &cls);
    if (dns_exfil_account(a->g, name, &cls, now, &v, NULL) < 0) {
        diag("account %s failed", name);
        memset(&v, 0, sizeof(v));
        v.tripped = true;
        v.why = "error";
    }
    return v;
}

static bool acct_init(struct acct *a, size_t max_domains)
{
    dns_exfil_config_default(&a->c);
    if (max_domains)
        a->c.max_domains = max_domains;
    a->g = dns_exfil_new(&a->c, NULL);
    return a->g != NULL;
}

#define SUSPICIOUS "q8w7e6r5t4y3q8w7e6r5t4y3.example.com" /* high_entropy */

static void test_suspicious_bucket(void)
{
    struct acct a;
    if (!ok(acct_init(&a, 0), "new guard"))
        return;
    const uint64_t t0 = 5000000;
    int passed = 0;
    for (int i = 0; i < 20; i++)
        passed += !account(&a, SUSPICIOUS, t0).tripped;
    is_int(passed, 20, "burst: 20 suspicious queries pass at one instant");
    struct dns_exfil_verdict v = account(&a, SUSPICIOUS, t0);
    ok(v.tripped && v.first_trip && strcmp(v.why, "suspicious_rate") == 0,
       "21st: tripped, suspicious_rate, first trip");
    is_str(v.domain, "example.com", "verdict names the registrable domain");
    v = account(&a, SUSPICIOUS, t0);
    ok(v.tripped && !v.first_trip, "22nd: tripped, not reported again");
    ok(!account(&a, "www.example.com", t0).tripped, "non-suspicious name of the domain passes");
    ok(!account(&a, "q8w7e6r5t4y3q8w7e6r5t4y3.other.com", t0).tripped,
       "another domain has its own bucket");

    /* 10 per minute: one token every 6 s. */
    ok(account(&a, SUSPICIOUS, t0 + 5999).tripped, "5.999 s later: still empty");
    ok(!account(&a, SUSPICIOUS, t0 + 6000).tripped, "6 s later: one token");
    ok(account(&a, SUSPICIOUS, t0 + 6000).tripped, "and only one");
    passed = 0;
    for (int i = 0; i < 12; i++)
        passed += !account(&a, SUSPICIOUS, t0 + 66000).tripped;
    is_int(passed, 10, "one minute later: 10 tokens");
    /* One report per domain per 10 minutes: the first trip was at t0. */
    passed = 0;
    for (int i = 0; i < 20; i++)
        passed += !account(&a, SUSPICIOUS, t0 + 599999).tripped;
    is_int(passed, 20, "refilled to the burst by 9:59.999");
    v = account(&a, SUSPICIOUS, t0 + 599999);
    ok(v.tripped && !v.first_trip, "trip at 9:59.999: not reported");
    v = account(&a, SUSPICIOUS, t0 + 600000);
    ok(v.tripped && v.first_trip, "trip at 10:00: reported (new window)");
    passed = 0;
    int reported = 0;
    for (int i = 0; i < 25; i++) {
        v = account(&a, SUSPICIOUS, t0 + 10000000);
        passed += !v.tripped;
        reported += v.first_trip;
    }
    is_int(passed, 20, "after a long pause the bucket holds the burst, not more");
    is_int(reported, 1, "5 trips, one report");
    dns_exfil_free(a.g);

    /* A qname that is itself a public suffix is its own key. */
    if (!acct_init(&a, 0))
        return;
    dns_exfil_config_set(&a.c, "suspicious_burst", 0, NULL);
    dns_exfil_config_set(&a.c, "max_label", 5, NULL);
    dns_exfil_free(a.g);
    a.g = dns_exfil_new(&a.c, NULL);
    v = account(&a, "longlabel.bd", t0);
    ok(v.tripped && strcmp(v.why, "suspicious_rate") == 0, "burst 0: first suspicious trips");
    is_str(v.domain, "longlabel.bd", "suffix qname is its own key");
    ok(!account(&a, "www.ab.de", t0).tripped, "non-suspicious unaffected by burst 0");
    dns_exfil_free(a.g);
}

/* Accounts count new subdomains s<first>..s<first+count-1>.<dom>; returns
 * how many passed. */
static int subs(struct acct *a, const char *dom, int first, int count, uint64_t now)
{
    char name[DNS_NAME_BUF];
    int passed = 0;
    for (int i = first; i < first + count; i++) {
        snprintf(name, sizeof(name), "s%d.%s", i, dom);
        passed += !account(a, name, now).tripped;
    }
    return passed;
}

static void test_unique_subdomains(void)
{
    struct acct a;
    if (!ok(acct_init(&a, 0), "new guard"))
        return;
    const uint64_t t0 = 1000;
    is_int(subs(&a, "example.org", 0, 300, t0), 300, "300 distinct subdomains pass");
    struct dns_exfil_verdict v = account(&a, "s300.example.org", t0);
    ok(v.tripped && v.first_trip && strcmp(v.why, "unique_subdomains") == 0,
       "301st: tripped, unique_subdomains, first trip");
    is_str(v.domain, "example.org", "domain");
    ok(!account(&a, "s17.example.org", t0 + 1).tripped, "a subdomain already seen resolves");
    ok(!account(&a, "example.org", t0 + 1).tripped, "the registrable domain itself resolves");
    v = account(&a, "s301.example.org", t0 + 2);
    ok(v.tripped && !v.first_trip, "another new one: refused, not reported again");
    ok(!account(&a, "s0.example.net", t0 + 2).tripped, "other domains unaffected");
    /* Blocked for 10 min from the trip at t0. Every entry but s17 (seen at
     * t0 + 1) expires at t0 + 600000. */
    ok(account(&a, "s302.example.org", t0 + 599999).tripped, "9:59.999 after the trip: refused");
    v = account(&a, "s303.example.org", t0 + 600000);
    ok(!v.tripped, "10 min after the trip, entries expired: a new one resolves");
    is_int(subs(&a, "example.org", 1000, 298, t0 + 600000), 298,
           "with s17 and s303 held, 298 more pass");
    v = account(&a, "s2000.example.org", t0 + 600000);
    ok(v.tripped && v.first_trip, "the 301st of the new window trips and is reported");
    ok(!account(&a, "s2001.example.org", t0 + 1200000).tripped,
       "s17 expired and the block ended: a new one resolves");
    dns_exfil_free(a.g);

    /* Sliding window: entries expire 10 min after they were last seen. */
    if (!acct_init(&a, 0))
        return;
    subs(&a, "slide.com", 0, 150, t0);
    subs(&a, "slide.com", 150, 150, t0 + 300000);
    ok(!account(&a, "s0.slide.com", t0 + 300000).tripped, "re-seeing s0 at 5 min");
    is_int(subs(&a, "slide.com", 1000, 149, t0 + 600000), 149,
           "at 10 min 149 of the first half expired: 149 new pass");
    ok(account(&a, "s2000.slide.com", t0 + 600000).tripped, "the next new one trips (300 held)");
    dns_exfil_free(a.g);

    /* The block lasts 10 min from the trip even when the entries expire sooner. */
    if (!acct_init(&a, 0))
        return;
    subs(&a, "block.com", 0, 300, t0);
    v = account(&a, "s300.block.com", t0 + 500000);
    ok(v.tripped && v.first_trip, "trip at 8:20");
    v = account(&a, "s301.block.com", t0 + 600000);
    ok(v.tripped && !v.first_trip, "entries expired at 10:00 but the block holds");
    ok(!account(&a, "s302.block.com", t0 + 1100000).tripped, "block over at 18:20");
    dns_exfil_free(a.g);

    /* A configured limit. */
    if (!acct_init(&a, 0))
        return;
    ok(dns_exfil_config_set(&a.c, "unique_subdomains_per_10min", 5, NULL) == 0, "limit 5");
    dns_exfil_free(a.g);
    a.g = dns_exfil_new(&a.c, NULL);
    is_int(subs(&a, "five.com", 0, 9, t0), 5, "5 of 9 new subdomains pass");
    dns_exfil_free(a.g);
}

static void test_domain_cap(void)
{
    struct acct a;
    const uint64_t t0 = 1000;
    if (!ok(acct_init(&a, 3), "guard tracking 3 domains"))
        return;
    subs(&a, "one.com", 0, 300, t0);
    ok(account(&a, "s300.one.com", t0).tripped, "one.com tripped");
    account(&a, "two.com", t0);
    account(&a, "three.com", t0);
    ok(account(&a, "s301.one.com", t0).tripped, "touching one.com keeps it newest");
    account(&a, "four.com", t0); /* evicts two.com */
    is_int(dns_exfil_domains(a.g), 3, "3 domains tracked");
    account(&a, "five.com", t0); /* evicts three.com */
    account(&a, "six.com", t0);  /* evicts one.com */
    is_int(dns_exfil_domains(a.g), 3, "still 3");
    struct dns_exfil_verdict v = account(&a, "s302.one.com", t0);
    ok(!v.tripped, "an evicted domain's counters restart");
    dns_exfil_free(a.g);

    if (!acct_init(&a, 0))
        return;
    char dom[64];
    for (int i = 0; i < 1100; i++) {
        snprintf(dom, sizeof(dom), "d%d.com", i);
        account(&a, dom, t0);
    }
    is_int(dns_exfil_domains(a.g), 1024, "default cap: 1024 domains tracked");
    dns_exfil_free(a.g);
}

/* The per-VM wrapper reads the VM's injected clock. */
static uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void test_vm_clock(void)
{
    struct event_base *base = event_base_new();
    struct dns_vm_config cfg;
    dns_vm_config_default(&cfg);
    cfg.clock = fake_clock;
    fake_now = 777000;
    struct dns_vm *vm = dns_vm_new(base, &cfg, NULL);
    if (!ok(vm != NULL, "dns_vm with an injected clock")) {
        event_base_free(base);
        return;
    }
    is_int(dns_vm_now_ms(vm), 777000, "clock injected");
    struct dns_exfil_class cls;
    struct dns_exfil_verdict v;
    dns_exfil_classify(dns_vm_exfil_config(vm), SUSPICIOUS, &cls);
    int passed = 0;
    for (int i = 0; i < 21; i++) {
        dns_vm_exfil_account(vm, SUSPICIOUS, &cls, &v, NULL);
        passed += !v.tripped;
    }
    is_int(passed, 20, "20 pass on the VM's clock");
    fake_now += 6000;
    dns_vm_exfil_account(vm, SUSPICIOUS, &cls, &v, NULL);
    ok(!v.tripped, "6 s on the injected clock refills one");
    dns_vm_exfil_account(vm, SUSPICIOUS, &cls, &v, NULL);
    ok(v.tripped && !v.first_trip, "then trips, already reported");
    dns_vm_free(vm);
    event_base_free(base);
}

/* ---- dns.exfil_guard keys ---- */

static void test_config_set(void)
{
    static const struct {
        const char *key;
        double lo, hi;
        bool integer;
    } keys[] = {
        {"max_label", 1, 63, true},
        {"max_name", 1, 253, true},
        {"max_sub_labels", 1, 127, true},
        {"entropy_min_len", 1, 253, true},
        {"entropy_bits", 0, 8, false},
        {"suspicious_burst", 0, 1000000, true},
        {"suspicious_per_min", 0, 1000000, false},
        {"unique_subdomains_per_10min", 1, 100000, true},
    };
    struct dns_exfil_config c;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        dns_exfil_config_default(&c);
        ok(dns_exfil_config_set(&c, keys[i].key, keys[i].lo, NULL) == 0 &&
               dns_exfil_config_set(&c, keys[i].key, keys[i].hi, NULL) == 0,
           "%s accepts %g and %g", keys[i].key, keys[i].lo, keys[i].hi);
        struct err *e = NULL;
        ok(dns_exfil_config_set(&c, keys[i].key, keys[i].hi + 1, &e) < 0 && e && e->status == 400 &&
               strstr(e->msg, keys[i].key),
           "%s refuses %g with a 400 naming the key", keys[i].key, keys[i].hi + 1);
        err_free(e);
        e = NULL;
        double below = keys[i].integer ? keys[i].lo - 1 : keys[i].lo - 0.001;
        ok(dns_exfil_config_set(&c, keys[i].key, below, &e) < 0 && e && e->status == 400,
           "%s refuses %g", keys[i].key, below);
        err_free(e);
        e = NULL;
        ok(dns_exfil_config_set(&c, keys[i].key, NAN, &e) < 0 && e && e->status == 400,
           "%s refuses NaN", keys[i].key);
        err_free(e);
        if (keys[i].integer) {
            e = NULL;
            ok(dns_exfil_config_set(&c, keys[i].key, keys[i].lo + 0.5, &e) < 0 && e &&
                   e->status == 400,
               "%s refuses a fraction", keys[i].key);
            err_free(e);
        }
    }
    dns_exfil_config_default(&c);
    ok(dns_exfil_config_set(&c, "max_label", 40, NULL) == 0 && c.max_label == 40,
       "max_label stored");
    ok(dns_exfil_config_set(&c, "entropy_bits", 2.75, NULL) == 0 && c.entropy_bits == 2.75,
       "entropy_bits stored");
    ok(dns_exfil_config_set(&c, "suspicious_per_min", 0.5, NULL) == 0 &&
           c.suspicious_per_min == 0.5,
       "suspicious_per_min takes a fraction");
    ok(dns_exfil_config_set(&c, "unique_subdomains_per_10min", 1234, NULL) == 0 &&
           c.unique_subdomains_per_10min == 1234,
       "unique_subdomains_per_10min stored");
    struct dns_exfil_config before = c;
    struct err *e = NULL;
    ok(dns_exfil_config_set(&c, "max_label", 64, &e) < 0 && c.max_label == 40,
       "a refused value leaves the config unchanged");
    err_free(e);
    e = NULL;
    ok(dns_exfil_config_set(&c, "window_ms", 1000, &e) < 0 && e && e->status == 400 &&
           strstr(e->msg, "window_ms"),
       "window_ms is not a policy key");
    err_free(e);
    e = NULL;
    ok(dns_exfil_config_set(&c, "max_domains", 10, &e) < 0 && e && e->status == 400,
       "max_domains is not a policy key");
    err_free(e);
    e = NULL;
    ok(dns_exfil_config_set(&c, "suspicious_burst", 1000001, &e) < 0 && e &&
           strstr(e->msg, "between 0 and 1000000"),
       "the range is written out in full: %s", e ? e->msg : "");
    err_free(e);
    e = NULL;
    ok(dns_exfil_config_set(&c, "", 1, &e) < 0 && e, "empty key refused");
    err_free(e);
    ok(memcmp(&before, &c, sizeof(c)) == 0, "refused keys changed nothing");
}

int main(void)
{
    test_psl_table();
    test_psl_lookups();
    test_entropy();
    test_classify_fields();
    test_classify_thresholds();
    test_suspicious_bucket();
    test_unique_subdomains();
    test_domain_cap();
    test_vm_clock();
    test_config_set();
    return done_testing();
}
