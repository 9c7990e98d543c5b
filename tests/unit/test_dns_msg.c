/* DNS wire format: guest query parser (every rcode path, compression loops,
 * truncations, limits at and one past), names, type mnemonics, the answer
 * builder (bytes checked, parsed back) and the upstream response parser. */
#include <stdlib.h>
#include <string.h>

#include "dns/dnsmsg.h"
#include "dns/dnsnorm.h"
#include "tap.h"

/* ---- a small message writer for the tests ---- */

struct w {
    uint8_t b[70000];
    size_t n;
};

static void w8(struct w *w, unsigned v)
{
    w->b[w->n++] = (uint8_t)v;
}
static void w16(struct w *w, unsigned v)
{
    w8(w, v >> 8);
    w8(w, v & 0xFF);
}
static void w32(struct w *w, uint32_t v)
{
    w16(w, v >> 16);
    w16(w, v & 0xFFFF);
}
static void wbytes(struct w *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
/* Text name, uncompressed ("" = root). */
static void wname(struct w *w, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        w8(w, (unsigned)l);
        wbytes(w, name, l);
        name += l + (dot ? 1 : 0);
    }
    w8(w, 0);
}
static void whdr(struct w *w, unsigned id, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                 unsigned ar)
{
    w->n = 0;
    w16(w, id);
    w16(w, flags);
    w16(w, qd);
    w16(w, an);
    w16(w, ns);
    w16(w, ar);
}
static void wopt(struct w *w, unsigned size, unsigned version, size_t padding)
{
    w8(w, 0);
    w16(w, DNS_T_OPT);
    w16(w, size);
    w32(w, (uint32_t)version << 16);
    w16(w, (unsigned)(padding ? padding + 4 : 0));
    if (padding) {
        w16(w, 12); /* EDNS padding option */
        w16(w, (unsigned)padding);
        for (size_t i = 0; i < padding; i++)
            w8(w, 0);
    }
}
/* A plain query. */
static void wquery(struct w *w, unsigned id, const char *name, unsigned qtype, bool edns)
{
    whdr(w, id, 0x0100, 1, 0, 0, edns ? 1 : 0);
    wname(w, name);
    w16(w, qtype);
    w16(w, DNS_CLASS_IN);
    if (edns)
        wopt(w, 4096, 0, 0);
}

static enum dns_parse_status parse(struct w *w, struct dns_query_msg *q)
{
    return dnsmsg_parse_query(w->b, w->n, q);
}

/* ---- names ---- */

static void test_names(void)
{
    char t[DNS_NAME_BUF];
    uint8_t wire[DNS_NAME_WIRE_MAX];
    is_int(dnsname_normalise("WWW.Example.COM.", t, sizeof(t)), 15, "normalise: length");
    is_str(t, "www.example.com", "normalise: lowercase, no trailing dot");
    ok(dnsname_normalise("a..b", t, sizeof(t)) < 0, "normalise: empty label rejected");
    ok(dnsname_normalise("caf\xc3\xa9.fr", t, sizeof(t)) < 0, "normalise: non-ASCII rejected");
    ok(dnsname_normalise("xn--caf-dma.fr", t, sizeof(t)) > 0, "normalise: A-label accepted");
    ok(dnsname_normalise("_dmarc.example.com", t, sizeof(t)) > 0, "normalise: underscore ok");
    ok(dnsname_normalise("a b.com", t, sizeof(t)) < 0, "normalise: space rejected");
    is_int(dnsname_normalise(".", t, sizeof(t)), 0, "normalise: root");
    is_int(dnsname_text_to_wire("a.bc", wire, sizeof(wire)), 6, "text_to_wire length");
    is_mem(wire, 6, "\x01" "a\x02" "bc\x00", 6, "text_to_wire bytes");
    char l63[64], l64[65];
    memset(l63, 'a', 63);
    l63[63] = 0;
    memset(l64, 'a', 64);
    l64[64] = 0;
    ok(dnsname_normalise(l63, t, sizeof(t)) == 63, "label of 63 accepted");
    ok(dnsname_normalise(l64, t, sizeof(t)) < 0, "label of 64 rejected");
    is_int(dnsname_label_count("a.b.c"), 3, "label count");
    is_int(dnsname_longest_label("ab.cdef.g"), 4, "longest label");
}

static void test_types(void)
{
    char buf[DNS_TYPE_STR_MAX];
    uint16_t t;
    is_str(dns_type_str(1, buf, sizeof(buf)), "A", "type A");
    is_str(dns_type_str(28, buf, sizeof(buf)), "AAAA", "type AAAA");
    is_str(dns_type_str(65, buf, sizeof(buf)), "HTTPS", "type HTTPS");
    is_str(dns_type_str(257, buf, sizeof(buf)), "CAA", "type CAA");
    is_str(dns_type_str(999, buf, sizeof(buf)), "TYPE999", "unknown type -> TYPE<n>");
    ok(dns_type_parse("txt", &t) == 0 && t == 16, "parse txt");
    ok(dns_type_parse("TYPE999", &t) == 0 && t == 999, "parse TYPE999");
    ok(dns_type_parse("TYPE70000", &t) < 0, "parse TYPE70000 rejected");
    ok(dns_type_parse("BOGUS", &t) < 0, "parse unknown mnemonic rejected");
    is_str(dns_rcode_str(3), "NXDOMAIN", "rcode NXDOMAIN");
    is_str(dns_rcode_str(16), "BADVERS", "rcode BADVERS");
    is_int(dns_type_action(DNS_T_A), DNS_TYPE_FORWARD, "A forwarded");
    is_int(dns_type_action(DNS_T_CAA), DNS_TYPE_FORWARD, "CAA forwarded");
    is_int(dns_type_action(DNS_T_AAAA), DNS_TYPE_NODATA, "AAAA no data");
    is_int(dns_type_action(DNS_T_HTTPS), DNS_TYPE_NODATA, "HTTPS no data");
    is_int(dns_type_action(DNS_T_SVCB), DNS_TYPE_NODATA, "SVCB no data");
    is_int(dns_type_action(DNS_T_PTR), DNS_TYPE_NODATA, "PTR no data");
    is_int(dns_type_action(DNS_T_ANY), DNS_TYPE_NOTIMP, "ANY not implemented");
    is_int(dns_type_action(DNS_T_AXFR), DNS_TYPE_NOTIMP, "AXFR not implemented");
}

/* ---- query parser ---- */

static void test_parse_good(void)
{
    static struct w w;
    struct dns_query_msg q;
    wquery(&w, 0x1234, "WwW.ExAmple.com", DNS_T_A, false);
    is_int(parse(&w, &q), DNS_PARSE_OK, "good query parses");
    is_int(q.id, 0x1234, "id");
    ok(q.rd && !q.cd && !q.edns, "RD set, no CD, no EDNS");
    is_str(q.q.name, "www.example.com", "qname normalised");
    is_mem(q.q.wire, q.q.wire_len, "\x03WwW\x07" "ExAmple\x03" "com\x00", 17, "wire case kept");
    is_int(q.q.qtype, DNS_T_A, "qtype");
    is_int(dnsmsg_udp_limit(&q), 512, "UDP limit without EDNS");

    wquery(&w, 7, "example.com", DNS_T_TXT, true);
    is_int(parse(&w, &q), DNS_PARSE_OK, "EDNS query parses");
    ok(q.edns && q.edns_udp_size == 4096 && q.edns_version == 0, "EDNS size 4096");
    is_int(dnsmsg_udp_limit(&q), 1232, "EDNS limit capped at 1232");

    whdr(&w, 7, 0x0100, 1, 0, 0, 1);
    wname(&w, "example.com");
    w16(&w, DNS_T_A);
    w16(&w, 1);
    wopt(&w, 100, 0, 0);
    is_int(parse(&w, &q), DNS_PARSE_OK, "EDNS size 100 parses");
    is_int(q.edns_udp_size, 512, "EDNS size below 512 counts as 512");

    wquery(&w, 9, "", DNS_T_NS, false);
    is_int(parse(&w, &q), DNS_PARSE_OK, "root query parses");
    is_str(q.q.name, "", "root qname is empty");

    wquery(&w, 9, "_dmarc.example.com", DNS_T_TXT, false);
    is_int(parse(&w, &q), DNS_PARSE_OK, "underscore label parses");
}

static void test_parse_header(void)
{
    static struct w w;
    struct dns_query_msg q;
    wquery(&w, 1, "a.com", DNS_T_A, false);
    is_int(dnsmsg_parse_query(w.b, 11, &q), DNS_PARSE_DROP, "11 bytes: drop");
    is_int(dnsmsg_parse_query(w.b, 0, &q), DNS_PARSE_DROP, "0 bytes: drop");
    is_int(dnsmsg_parse_query(w.b, 12, &q), DNS_PARSE_FORMERR, "header only: FORMERR");
    is_int(dnsmsg_parse_query(w.b, w.n - 1, &q), DNS_PARSE_FORMERR,
           "question cut short: FORMERR");
    ok(!q.has_question, "question not available after truncation");

    whdr(&w, 1, 0x8100, 1, 0, 0, 0);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    is_int(parse(&w, &q), DNS_PARSE_DROP, "QR set: drop");

    whdr(&w, 1, 0x1100, 1, 0, 0, 0); /* opcode 2 STATUS */
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    is_int(parse(&w, &q), DNS_PARSE_NOTIMP, "opcode STATUS: NOTIMP");
    is_int(q.opcode, 2, "opcode kept for the answer");

    static const unsigned counts[][4] = {{0, 0, 0, 0}, {2, 0, 0, 0}, {1, 1, 0, 0},
                                         {1, 0, 1, 0}, {1, 0, 0, 2}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        whdr(&w, 1, 0x0100, counts[i][0], counts[i][1], counts[i][2], counts[i][3]);
        wname(&w, "a.com");
        w16(&w, 1);
        w16(&w, 1);
        is_int(parse(&w, &q), DNS_PARSE_FORMERR, "counts qd=%u an=%u ns=%u ar=%u: FORMERR",
               counts[i][0], counts[i][1], counts[i][2], counts[i][3]);
    }

    wquery(&w, 1, "a.com", DNS_T_A, false);
    w.b[w.n - 1] = 3; /* class CH */
    is_int(parse(&w, &q), DNS_PARSE_NOTIMP, "class CH: NOTIMP");
    ok(q.has_question, "question kept for the NOTIMP answer");

    wquery(&w, 1, "a.com", DNS_T_A, false);
    w8(&w, 0);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "trailing byte: FORMERR");
}

static void test_parse_edns(void)
{
    static struct w w;
    struct dns_query_msg q;
    whdr(&w, 1, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    wopt(&w, 1232, 1, 0);
    is_int(parse(&w, &q), DNS_PARSE_BADVERS, "EDNS version 1: BADVERS");

    whdr(&w, 1, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    wname(&w, "a.com"); /* an A record as additional */
    w16(&w, 1);
    w16(&w, 1);
    w32(&w, 0);
    w16(&w, 4);
    w32(&w, 0x01020304);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "additional A record: FORMERR");

    whdr(&w, 1, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    w8(&w, 0);
    w16(&w, DNS_T_OPT);
    w16(&w, 1232);
    w32(&w, 0);
    w16(&w, 6); /* one option claiming 5 bytes of data in 2 */
    w16(&w, 10);
    w16(&w, 5);
    w16(&w, 0);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "OPT option overruns rdata: FORMERR");
    ok(!q.edns, "EDNS not claimed for a bad OPT");

    /* Size limit: exactly 4096 bytes (padding option), then one more. */
    size_t base = 12 + 7 + 4 + 11 + 4;
    whdr(&w, 1, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    wopt(&w, 1232, 0, 4096 - base);
    is_int(w.n, 4096, "built a 4096-byte query");
    is_int(parse(&w, &q), DNS_PARSE_OK, "4096-byte query: OK");
    whdr(&w, 1, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    wopt(&w, 1232, 0, 4097 - base);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "4097-byte query: FORMERR");
}

static void test_parse_names(void)
{
    static struct w w;
    struct dns_query_msg q;
    /* Pointer to itself. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w16(&w, 0xC00C);
    w16(&w, 1);
    w16(&w, 1);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "self pointer: FORMERR");
    /* Label then pointer back to the label (a loop). */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w8(&w, 1);
    w8(&w, 'a');
    w16(&w, 0xC00C);
    w16(&w, 1);
    w16(&w, 1);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "pointer loop: FORMERR");
    /* Forward pointer. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w16(&w, 0xC010);
    w16(&w, 1);
    w16(&w, 1);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "forward pointer: FORMERR");
    /* Pointer past the end. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w16(&w, 0xFFFF);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "pointer out of bounds: FORMERR");
    /* Reserved label types. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w8(&w, 0x41);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "label type 0x40: FORMERR");
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w8(&w, 0x81);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "label type 0x80: FORMERR");
    /* Label running past the end. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    w8(&w, 10);
    w8(&w, 'a');
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "label past the end: FORMERR");
    /* Non-ASCII and other bytes. */
    wquery(&w, 1, "caf\xc3\xa9.fr", DNS_T_A, false);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "non-ASCII label: FORMERR");
    wquery(&w, 1, "a*b.fr", DNS_T_A, false);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "'*' in a label: FORMERR");

    /* 255 wire bytes (253 chars) is the limit; 256 is one past. */
    char name[300];
    memset(name, 'a', sizeof(name));
    name[63] = name[127] = name[191] = '.';
    name[253] = 0;
    wquery(&w, 1, name, DNS_T_A, false);
    is_int(parse(&w, &q), DNS_PARSE_OK, "255-byte wire name: OK");
    is_int(strlen(q.q.name), 253, "253-char qname");
    name[253] = 'a';
    name[254] = 0;
    wquery(&w, 1, name, DNS_T_A, false);
    is_int(parse(&w, &q), DNS_PARSE_FORMERR, "256-byte wire name: FORMERR");

    /* A backward pointer chain longer than the jump cap. */
    whdr(&w, 1, 0x0100, 1, 0, 0, 0);
    size_t first = w.n;
    w8(&w, 0); /* offset 12: root */
    for (int i = 0; i < DNSMSG_MAX_JUMPS + 1; i++)
        w16(&w, 0xC000 | (unsigned)(first + (i ? 2 * (size_t)(i - 1) + 1 : 0)));
    size_t qname_at = w.n;
    w16(&w, 0xC000 | (unsigned)(qname_at - 2));
    uint8_t wire[DNS_NAME_WIRE_MAX];
    size_t off = qname_at;
    ok(dnsmsg_read_name(w.b, w.n, &off, wire) < 0, "more than %d jumps rejected",
       DNSMSG_MAX_JUMPS);
    off = first + 2 * 3 + 1;
    ok(dnsmsg_read_name(w.b, w.n, &off, wire) == 1, "a few jumps accepted");
    is_int(off, first + 2 * 3 + 1 + 2, "offset advances past the pointer only");
}

/* ---- answers built by the host ---- */

static void add_a(struct dns_result *r, const char *owner, uint32_t ttl, uint32_t ip)
{
    uint8_t wire[DNS_NAME_WIRE_MAX], rd[4] = {ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF,
                                              ip & 0xFF};
    int wl = dnsname_text_to_wire(owner, wire, sizeof(wire));
    ok(dns_result_add(r, DNS_T_A, ttl, wire, (size_t)wl, rd, 4) == 0, "add A %s", owner);
}

static void add_cname(struct dns_result *r, const char *owner, uint32_t ttl, const char *target)
{
    uint8_t wire[DNS_NAME_WIRE_MAX], rd[DNS_NAME_WIRE_MAX];
    int wl = dnsname_text_to_wire(owner, wire, sizeof(wire));
    int tl = dnsname_text_to_wire(target, rd, sizeof(rd));
    ok(dns_result_add(r, DNS_T_CNAME, ttl, wire, (size_t)wl, rd, (size_t)tl) == 0,
       "add CNAME %s", owner);
}

static void test_build_nxdomain_ede(void)
{
    static struct w w;
    struct dns_query_msg q;
    uint8_t out[DNS_TCP_ANSWER_MAX];
    wquery(&w, 0xBEEF, "Evil.com", DNS_T_A, true);
    w.b[3] |= 0x10; /* CD */
    ok(parse(&w, &q) == DNS_PARSE_OK && q.cd, "EDNS query with CD");
    struct dns_reply r = {.query = &q, .rcode = DNS_RCODE_NXDOMAIN, .ede = true,
                          .ede_code = DNS_EDE_BLOCKED, .ede_text = "capsem: user:x: no"};
    int n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    static const uint8_t want[] = {
        0xBE, 0xEF, 0x81, 0x93, 0, 1, 0, 0, 0, 0, 0, 1,  /* QR RD RA CD NXDOMAIN */
        4, 'E', 'v', 'i', 'l', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1, /* question as sent */
        0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0,               /* OPT 1232, rcode ext 0 */
        0, 24, 0, 15, 0, 20, 0, 15,                     /* EDE option, info 15 */
        'c', 'a', 'p', 's', 'e', 'm', ':', ' ', 'u', 's', 'e', 'r', ':', 'x', ':', ' ', 'n', 'o'};
    is_mem(out, (size_t)(n > 0 ? n : 0), want, sizeof(want), "NXDOMAIN + EDE 15 bytes");

    wquery(&w, 0xBEEF, "evil.com", DNS_T_A, false);
    parse(&w, &q);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(n, 12 + 14, "no EDNS in the query: no OPT, no EDE");
    is_int(out[11], 0, "ARCOUNT 0");
    is_int(out[3] & 0xF, DNS_RCODE_NXDOMAIN, "rcode NXDOMAIN");
}

static void test_build_errors(void)
{
    static struct w w;
    struct dns_query_msg q;
    uint8_t out[DNS_TCP_ANSWER_MAX];
    whdr(&w, 0x4242, 0x0100, 2, 0, 0, 0);
    ok(parse(&w, &q) == DNS_PARSE_FORMERR && !q.has_question, "FORMERR without question");
    struct dns_reply r = {.query = &q, .rcode = DNS_RCODE_FORMERR};
    int n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    static const uint8_t formerr[] = {0x42, 0x42, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0};
    is_mem(out, (size_t)n, formerr, sizeof(formerr), "FORMERR: header only, QDCOUNT 0");

    whdr(&w, 5, 0x1100, 1, 0, 0, 0);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    ok(parse(&w, &q) == DNS_PARSE_NOTIMP, "NOTIMP query");
    r = (struct dns_reply){.query = &q, .rcode = DNS_RCODE_NOTIMP};
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(out[2], 0x91, "NOTIMP echoes opcode 2, QR, RD");
    is_int(out[3], 0x84, "RA + NOTIMP");

    whdr(&w, 6, 0x0100, 1, 0, 0, 1);
    wname(&w, "a.com");
    w16(&w, 1);
    w16(&w, 1);
    wopt(&w, 1232, 3, 0);
    ok(parse(&w, &q) == DNS_PARSE_BADVERS, "BADVERS query");
    r = (struct dns_reply){.query = &q, .rcode = DNS_RCODE_BADVERS};
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(out[3] & 0xF, 0, "BADVERS: header rcode bits 0");
    is_int(out[n - 6], 1, "BADVERS: OPT extended rcode 1");

    wquery(&w, 6, "a.com", DNS_T_A, false);
    parse(&w, &q);
    r = (struct dns_reply){.query = &q, .rcode = DNS_RCODE_REFUSED};
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n == 12 + 11 && (out[3] & 0xF) == DNS_RCODE_REFUSED, "REFUSED with question");
    r.rcode = DNS_RCODE_SERVFAIL;
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n == 23 && (out[3] & 0xF) == DNS_RCODE_SERVFAIL, "SERVFAIL with question");
    r.rcode = DNS_RCODE_BADVERS; /* not allowed without EDNS */
    dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(out[3] & 0xF, DNS_RCODE_FORMERR, "extended rcode without EDNS becomes FORMERR");
    ok(dnsmsg_build_reply(&r, out, 20, NULL) < 0, "buffer too small is an error");

    /* EDE text cut at DNS_EDE_TEXT_MAX without splitting UTF-8. */
    wquery(&w, 6, "a.com", DNS_T_A, true);
    parse(&w, &q);
    char text[400];
    memset(text, 'x', sizeof(text));
    memcpy(text + 299, "\xc3\xa9", 2); /* e-acute straddling the 300-byte cut */
    text[399] = 0;
    r = (struct dns_reply){.query = &q, .rcode = DNS_RCODE_NXDOMAIN, .ede = true,
                           .ede_code = 15, .ede_text = text};
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(n, 12 + 11 + 11 + 6 + 299, "EDE text cut before a split UTF-8 sequence");
}

static void test_build_answers(void)
{
    static struct w w;
    struct dns_query_msg q;
    uint8_t out[DNS_TCP_ANSWER_MAX];
    struct dns_result res = {0}, back = {0};
    wquery(&w, 0x77, "WWW.example.com", DNS_T_A, false);
    parse(&w, &q);
    add_cname(&res, "www.example.com", 300, "edge.cdn.net");
    add_a(&res, "edge.cdn.net", 60, 0x5DB8D822);
    add_a(&res, "edge.cdn.net", 60, 0x5DB8D823);
    struct dns_reply r = {.query = &q, .rcode = DNS_RCODE_NOERROR, .answers = &res};
    int n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n > 0, "answer built (%d bytes)", n);
    is_int(out[7], 3, "ANCOUNT 3");
    is_int((out[2] << 8 | out[3]) & 0x8780, 0x8180, "QR, RD, RA; no AA, no TC");
    is_int(out[12 + 21] << 8 | out[12 + 22], 0xC00C, "first owner compressed to the question");
    unsigned rcode;
    is_int(dnsmsg_parse_response(out, (size_t)n, 0x77, q.q.wire, q.q.wire_len, DNS_T_A, true,
                                 &back, &rcode),
           DNS_UP_OK, "answer parses back");
    is_int(back.n, 3, "three records back");
    ok(back.rr[0].type == DNS_T_CNAME && back.rr[0].ttl == 300, "CNAME first");
    uint32_t ips[4];
    is_int(dns_result_ipv4(&back, ips, 4), 2, "two addresses back");
    ok(ips[0] == 0x5DB8D822 && ips[1] == 0x5DB8D823, "addresses in order");
    dns_result_clear(&back);

    /* NOERROR without data (AAAA). */
    wquery(&w, 0x78, "example.com", DNS_T_AAAA, false);
    parse(&w, &q);
    r = (struct dns_reply){.query = &q, .rcode = DNS_RCODE_NOERROR};
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n == 12 + 17 && out[7] == 0 && (out[3] & 0xF) == 0, "NOERROR, no data");
    dns_result_clear(&res);
}

static void add_txt(struct dns_result *r, const char *owner, size_t len)
{
    static uint8_t rd[2000];
    uint8_t wire[DNS_NAME_WIRE_MAX];
    int wl = dnsname_text_to_wire(owner, wire, sizeof(wire));
    size_t o = 0;
    while (o < len) {
        size_t chunk = len - o - 1 > 255 ? 255 : len - o - 1;
        rd[o++] = (uint8_t)chunk;
        memset(rd + o, 't', chunk);
        o += chunk;
    }
    dns_result_add(r, DNS_T_TXT, 60, wire, (size_t)wl, rd, len);
}

static void test_build_limits(void)
{
    static struct w w;
    struct dns_query_msg q;
    static uint8_t out[DNS_TCP_ANSWER_MAX];
    struct dns_result res = {0};
    for (int i = 0; i < 16; i++)
        add_txt(&res, "example.com", 100);
    is_int(res.n, 16, "16 TXT records");
    ok(dns_result_add(&res, DNS_T_TXT, 1, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1) < 0,
       "a 17th record is refused");

    wquery(&w, 1, "example.com", DNS_T_TXT, false);
    parse(&w, &q);
    struct dns_reply r = {.query = &q, .rcode = 0, .answers = &res};
    int n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n <= 512 && (out[2] & 0x02) && out[7] == 0, "UDP > 512 B: TC, no answers (%d B)", n);

    wquery(&w, 1, "example.com", DNS_T_TXT, true);
    parse(&w, &q);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n <= 1232 && (out[2] & 0x02), "UDP with EDNS 4096: over 1232 B still TC (%d B)", n);

    dns_result_clear(&res);
    for (int i = 0; i < 4; i++)
        add_txt(&res, "example.com", 100);
    wquery(&w, 1, "example.com", DNS_T_TXT, false);
    parse(&w, &q);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(!(out[2] & 0x02) && out[7] == 4, "4 x 100 B fits 512: no TC (%d B)", n);

    /* 512 at the limit, 513 one past. 12 + 17 + 16 (record head) = 45 fixed. */
    dns_result_clear(&res);
    add_txt(&res, "example.com", 469);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    is_int(n, 510, "510-byte answer");
    dns_result_clear(&res);
    add_txt(&res, "example.com", 512 - 41);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n == 512 && !(out[2] & 0x02), "512-byte answer: no TC");
    dns_result_clear(&res);
    add_txt(&res, "example.com", 513 - 41);
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok((out[2] & 0x02) && out[7] == 0, "513-byte answer: TC");

    /* TCP: 16 KiB at most, trailing answers trimmed, no TC. */
    dns_result_clear(&res);
    for (int i = 0; i < 15; i++)
        add_txt(&res, "b.example.com", 1070);
    is_int(res.n, 15, "15 x 1070 B TXT");
    r.tcp = true;
    n = dnsmsg_build_reply(&r, out, sizeof(out), NULL);
    ok(n <= DNS_TCP_ANSWER_MAX && !(out[2] & 0x02) && out[7] == 14,
       "TCP > 16 KiB: trimmed to 14 answers, no TC (%d B)", n);
    dns_result_clear(&res);
}

/* ---- upstream responses ---- */

static uint8_t qw[DNS_NAME_WIRE_MAX];
static size_t qwl;

static void wresp(struct w *w, unsigned id, unsigned flags, const char *qname, unsigned qtype,
                  unsigned an)
{
    whdr(w, id, flags, 1, an, 0, 0);
    wname(w, qname);
    w16(w, qtype);
    w16(w, DNS_CLASS_IN);
    qwl = (size_t)dnsname_text_to_wire(qname, qw, sizeof(qw));
}

static void wrr_head(struct w *w, unsigned owner_ptr, unsigned type, uint32_t ttl, unsigned rdlen)
{
    w16(w, 0xC000 | owner_ptr);
    w16(w, type);
    w16(w, DNS_CLASS_IN);
    w32(w, ttl);
    w16(w, rdlen);
}

static enum dns_upstream_status presp(struct w *w, unsigned id, unsigned qtype,
                                      struct dns_result *out, unsigned *rcode)
{
    dns_result_clear(out);
    return dnsmsg_parse_response(w->b, w->n, id, qw, qwl, qtype, false, out, rcode);
}

static void test_response_chain(void)
{
    static struct w w;
    struct dns_result res = {0};
    unsigned rcode;
    wresp(&w, 0x1111, 0x8180, "www.example.com", DNS_T_A, 4);
    wrr_head(&w, 12, DNS_T_CNAME, 300, 7);
    size_t target = w.n;
    w8(&w, 4);
    wbytes(&w, "edge", 4);
    w16(&w, 0xC010); /* "example.com" inside the question */
    wrr_head(&w, (unsigned)target, 46, 300, 3);
    wbytes(&w, "sig", 3);
    wrr_head(&w, (unsigned)target, DNS_T_A, 0x80000001u, 4);
    w32(&w, 0x01020304);
    w8(&w, 5);
    wbytes(&w, "other", 5);
    w16(&w, 0xC018); /* "com" */
    w16(&w, DNS_T_A);
    w16(&w, 1);
    w32(&w, 60);
    w16(&w, 4);
    w32(&w, 0x09090909);
    is_int(presp(&w, 0x1111, DNS_T_A, &res, &rcode), DNS_UP_OK, "chain answer parses");
    is_int(res.n, 2, "CNAME + A kept, RRSIG and unrelated A skipped");
    is_mem(dns_rr_rdata(&res.rr[0]), res.rr[0].rdlen, "\x04" "edge\x07" "example\x03" "com\x00", 18,
           "CNAME target decompressed");
    is_int(res.rr[1].ttl, 0, "TTL with the top bit set is 0");
    is_mem(dns_rr_owner(&res.rr[1]), res.rr[1].owner_len, "\x04" "edge\x07" "example\x03" "com\x00",
           18, "A owner is the chain end");

    /* Mismatches: id, QR, question name, type, QDCOUNT. */
    is_int(presp(&w, 0x1112, DNS_T_A, &res, &rcode), DNS_UP_MISMATCH, "other id: mismatch");
    w.b[2] &= 0x7F;
    is_int(presp(&w, 0x1111, DNS_T_A, &res, &rcode), DNS_UP_MISMATCH, "QR clear: mismatch");
    w.b[2] |= 0x80;
    is_int(presp(&w, 0x1111, DNS_T_TXT, &res, &rcode), DNS_UP_MISMATCH, "other qtype: mismatch");
    is_int(dnsmsg_parse_response(w.b, w.n, 0x1111, (const uint8_t *)"\x01x\x00", 3, DNS_T_A, false,
                                 &res, &rcode),
           DNS_UP_MISMATCH, "other qname: mismatch");
    is_int(presp(&w, 0x1111, DNS_T_AAAA, &res, &rcode), DNS_UP_MISMATCH,
           "non-forwarded qtype refused");
    uint8_t mixed[DNS_NAME_WIRE_MAX];
    memcpy(mixed, qw, qwl);
    mixed[1] = 'W';
    is_int(dnsmsg_parse_response(w.b, w.n, 0x1111, mixed, qwl, DNS_T_A, true, &res, &rcode),
           DNS_UP_MISMATCH, "0x20: case not echoed -> mismatch");
    is_int(dnsmsg_parse_response(w.b, w.n, 0x1111, mixed, qwl, DNS_T_A, false, &res, &rcode),
           DNS_UP_OK, "without 0x20 the case does not matter");
    is_mem(dns_rr_owner(&res.rr[0]), res.rr[0].owner_len, "\x03www\x07" "example\x03" "com\x00", 17,
           "stored owner lowercase");

    /* Truncations of the chain message: never OK with garbage, never a crash. */
    size_t full = w.n;
    int bad = 0;
    for (size_t cut = 0; cut < full; cut++) {
        w.n = cut;
        enum dns_upstream_status st = presp(&w, 0x1111, DNS_T_A, &res, &rcode);
        if (st == DNS_UP_OK || (cut >= 12 + 21 && st != DNS_UP_MALFORMED))
            bad++;
    }
    is_int(bad, 0, "every truncation is a mismatch or malformed");
    dns_result_clear(&res);
}

static void test_response_codes(void)
{
    static struct w w;
    struct dns_result res = {0};
    unsigned rcode;
    wresp(&w, 2, 0x8380, "a.com", DNS_T_A, 0);
    is_int(presp(&w, 2, DNS_T_A, &res, &rcode), DNS_UP_TRUNCATED, "TC: truncated");
    wresp(&w, 2, 0x8182, "a.com", DNS_T_A, 0);
    ok(presp(&w, 2, DNS_T_A, &res, &rcode) == DNS_UP_RCODE && rcode == 2, "SERVFAIL: rcode");
    wresp(&w, 2, 0x8185, "a.com", DNS_T_A, 0);
    ok(presp(&w, 2, DNS_T_A, &res, &rcode) == DNS_UP_RCODE && rcode == 5, "REFUSED: rcode");
    wresp(&w, 2, 0x8183, "a.com", DNS_T_A, 0);
    ok(presp(&w, 2, DNS_T_A, &res, &rcode) == DNS_UP_OK && res.rcode == 3 && res.n == 0,
       "NXDOMAIN: OK, no records");
    ok(dns_result_is_negative(&res, DNS_T_A), "NXDOMAIN is negative");

    wresp(&w, 3, 0x8180, "a.com", DNS_T_A, 1);
    wrr_head(&w, 12, DNS_T_A, 60, 5);
    w32(&w, 0x01020304);
    w8(&w, 0);
    is_int(presp(&w, 3, DNS_T_A, &res, &rcode), DNS_UP_MALFORMED, "A with 5 bytes: malformed");

    wresp(&w, 3, 0x8180, "a.com", DNS_T_A, 2);
    wrr_head(&w, 12, DNS_T_A, 60, 4);
    w32(&w, 0x01020304);
    is_int(presp(&w, 3, DNS_T_A, &res, &rcode), DNS_UP_MALFORMED, "ANCOUNT past the end: malformed");

    wresp(&w, 3, 0x8180, "a.com", DNS_T_A, 1);
    size_t at = w.n;
    w16(&w, 0xC000 | (unsigned)at); /* owner points at itself */
    w16(&w, 1);
    w16(&w, 1);
    w32(&w, 1);
    w16(&w, 4);
    w32(&w, 1);
    is_int(presp(&w, 3, DNS_T_A, &res, &rcode), DNS_UP_MALFORMED, "owner pointer loop: malformed");

    wresp(&w, 4, 0x8180, "a.com", DNS_T_A, 20);
    for (unsigned i = 0; i < 20; i++) {
        wrr_head(&w, 12, DNS_T_A, 60, 4);
        w32(&w, 0x08080800 + i);
    }
    ok(presp(&w, 4, DNS_T_A, &res, &rcode) == DNS_UP_OK && res.n == DNS_MAX_ANSWERS,
       "20 A records: 16 kept");

    wresp(&w, 5, 0x8180, "a.com", DNS_T_A, 3);
    wrr_head(&w, 12, DNS_T_CNAME, 60, 4);
    w8(&w, 1);
    w8(&w, 'b');
    w16(&w, 0xC00E); /* "com" */
    size_t b_at = w.n - 4;
    wrr_head(&w, (unsigned)b_at, DNS_T_CNAME, 60, 2);
    w16(&w, 0xC00C); /* back to a.com */
    wrr_head(&w, 12, DNS_T_A, 60, 4);
    w32(&w, 0x01010101);
    ok(presp(&w, 5, DNS_T_A, &res, &rcode) == DNS_UP_OK && res.n == 3 &&
           res.rr[0].type == DNS_T_CNAME && res.rr[1].type == DNS_T_CNAME,
       "CNAME loop a->b->a: each CNAME used once, no hang");
    dns_result_clear(&res);
}

static void test_response_types(void)
{
    static struct w w;
    struct dns_result res = {0};
    unsigned rcode;
    wresp(&w, 6, 0x8180, "a.com", DNS_T_MX, 1);
    wrr_head(&w, 12, DNS_T_MX, 60, 4);
    w16(&w, 10);
    w16(&w, 0xC00C);
    ok(presp(&w, 6, DNS_T_MX, &res, &rcode) == DNS_UP_OK && res.n == 1, "MX parses");
    is_mem(dns_rr_rdata(&res.rr[0]), res.rr[0].rdlen, "\x00\x0a\x01" "a\x03" "com\x00", 9,
           "MX exchange decompressed");

    wresp(&w, 6, 0x8180, "_x._tcp.a.com", DNS_T_SRV, 1);
    wrr_head(&w, 12, DNS_T_SRV, 60, 8);
    w16(&w, 1);
    w16(&w, 2);
    w16(&w, 443);
    w16(&w, 0xC000 | 20); /* "a.com" inside the question */
    ok(presp(&w, 6, DNS_T_SRV, &res, &rcode) == DNS_UP_OK && res.rr[0].rdlen == 6 + 7,
       "SRV target decompressed");

    wresp(&w, 6, 0x8180, "a.com", DNS_T_TXT, 1);
    wrr_head(&w, 12, DNS_T_TXT, 60, 6);
    wbytes(&w, "\x02hi\x01!", 5);
    w8(&w, 0);
    is_int(presp(&w, 6, DNS_T_TXT, &res, &rcode), DNS_UP_OK, "TXT with an empty string parses");
    w.b[w.n - 6] = 9; /* first string overruns */
    is_int(presp(&w, 6, DNS_T_TXT, &res, &rcode), DNS_UP_MALFORMED, "bad TXT: malformed");

    wresp(&w, 6, 0x8180, "a.com", DNS_T_CAA, 1);
    wrr_head(&w, 12, DNS_T_CAA, 60, 2 + 5 + 11);
    w8(&w, 0);
    w8(&w, 5);
    wbytes(&w, "issue", 5);
    wbytes(&w, "letsencrypt", 11);
    is_int(presp(&w, 6, DNS_T_CAA, &res, &rcode), DNS_UP_OK, "CAA parses");
    w.b[w.n - 17] = 0;
    is_int(presp(&w, 6, DNS_T_CAA, &res, &rcode), DNS_UP_MALFORMED, "CAA empty tag: malformed");

    wresp(&w, 7, 0x8180, "a.com", DNS_T_CNAME, 1);
    wrr_head(&w, 12, DNS_T_CNAME, 60, 4);
    w8(&w, 1);
    w8(&w, 'b');
    w16(&w, 0xC00E);
    ok(presp(&w, 7, DNS_T_CNAME, &res, &rcode) == DNS_UP_OK && res.n == 1 &&
           res.rr[0].type == DNS_T_CNAME,
       "CNAME question: the CNAME record itself");
    dns_result_clear(&res);
}

static void test_result_helpers(void)
{
    struct dns_result a = {0}, b = {0};
    add_a(&a, "x.com", 100, 0x01020304);
    add_cname(&a, "y.com", 50, "x.com");
    is_int(dns_result_min_ttl(&a), 50, "min TTL");
    ok(dns_result_copy(&b, &a, NULL) == 0 && b.n == 2, "copy");
    dns_result_remove(&b, 0);
    ok(b.n == 1 && b.rr[0].type == DNS_T_CNAME, "remove keeps order");
    dns_result_set_ttl(&b, 7);
    is_int(b.rr[0].ttl, 7, "set TTL");
    ok(dns_result_is_negative(&b, DNS_T_A), "no A record: negative for A");
    ok(!dns_result_is_negative(&a, DNS_T_A), "A record: positive");
    dns_result_clear(&a);
    dns_result_clear(&b);
}

int main(void)
{
    test_names();
    test_types();
    test_parse_good();
    test_parse_header();
    test_parse_edns();
    test_parse_names();
    test_build_nxdomain_ede();
    test_build_errors();
    test_build_answers();
    test_build_limits();
    test_response_chain();
    test_response_codes();
    test_response_types();
    test_result_helpers();
    return done_testing();
}
