/* libFuzzer target for the DNS wire code (src/lib/dns/dnsmsg.h): the guest
 * query parser with the answer builder, and the parser of upstream answers.
 *
 * Input: a DNS message followed by one option byte (see OPT_*). The message
 * is parsed both as a guest query and as an upstream answer to the question
 * it carries. Beyond "no crash", every parse result is checked against its
 * documented bounds, and what the host writes is read back:
 *   - a parsed query rebuilt with dnsmsg_build_query() parses to the same
 *     fields;
 *   - every answer built for a query is walked by an independent reader:
 *     header echo, question echoed byte for byte, records equal to the ones
 *     given, OPT / EDE as asked, size within 512 / EDNS (<= 1232) / 16 KiB,
 *     TC set (UDP) or trailing answers trimmed (TCP) exactly when needed;
 *   - an answer to a forwarded type parses back, through the upstream
 *     parser, to the records it was built from;
 *   - an upstream result has the documented shape (CNAME chain from the
 *     question, then records of the asked type at its end, <= 16 records,
 *     <= 16 KiB of data, names uncompressed, data valid for its type), does
 *     not depend on the id matching by accident, and survives the trip
 *     guest answer -> upstream parser unchanged;
 *   - names read at a few offsets are uncompressed, at most 255 bytes, and
 *     round-trip through their text form.
 * Any broken invariant traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dnsmsg.h"
#include "dns/dnsnorm.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Option byte (the input's last byte). */
#define OPT_EXACT_CASE 0x01 /* upstream: 0x20 check on */
#define OPT_TCP 0x02        /* guest answers over TCP */
#define OPT_RCODE_SHIFT 2   /* 3 bits: rcode of the answer to a good query */
#define OPT_EDE 0x20        /* add an Extended DNS Error */
#define OPT_FLIP_CASE 0x40  /* upstream: expect the question in another case */
#define OPT_BIG 0x80        /* synthetic answers: large records */

static const unsigned rcodes[8] = {
    DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, DNS_RCODE_SERVFAIL, DNS_RCODE_REFUSED,
    DNS_RCODE_NOERROR, DNS_RCODE_NXDOMAIN, DNS_RCODE_FORMERR,  DNS_RCODE_BADVERS,
};

/* EDE texts: short, multi-byte, and longer than DNS_EDE_TEXT_MAX with a
 * sequence straddling the cut. */
static char ede_long[420];
static const char *ede_texts[4] = {"", "capsem: user:no-odd-names: blocked",
                                   "capsem: corp:x: \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92",
                                   ede_long};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)rd16(p) << 16) | rd16(p + 2);
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

/* Length of an uncompressed wire name filling exactly p[0..n), or -1. */
static int plain_name_len(const uint8_t *p, size_t n)
{
    size_t o = 0;
    for (;;) {
        if (o >= n)
            return -1;
        uint8_t l = p[o];
        if (l > DNS_LABEL_MAX)
            return -1;
        o += 1 + (size_t)l;
        if (o > DNS_NAME_WIRE_MAX)
            return -1;
        if (l == 0)
            return (int)o;
    }
}

static bool txt_valid(const uint8_t *p, size_t n)
{
    size_t o = 0;
    while (o < n)
        o += 1 + (size_t)p[o];
    return n > 0 && o == n;
}

static void check_rdata(uint16_t type, const uint8_t *rd, size_t n)
{
    switch (type) {
    case DNS_T_A:
        CHECK(n == 4);
        break;
    case DNS_T_CNAME:
        CHECK(plain_name_len(rd, n) == (int)n);
        break;
    case DNS_T_MX:
        CHECK(n > 2 && plain_name_len(rd + 2, n - 2) == (int)(n - 2));
        break;
    case DNS_T_SRV:
        CHECK(n > 6 && plain_name_len(rd + 6, n - 6) == (int)(n - 6));
        break;
    case DNS_T_TXT:
        CHECK(txt_valid(rd, n));
        break;
    case DNS_T_CAA:
        CHECK(n >= 2 && rd[1] > 0 && 2 + (size_t)rd[1] <= n);
        break;
    default:
        CHECK(0);
    }
}

static bool same_rr(const struct dns_rr *a, const struct dns_rr *b)
{
    return a->type == b->type && a->ttl == b->ttl && a->owner_len == b->owner_len &&
           a->rdlen == b->rdlen &&
           memcmp(a->data, b->data, (size_t)a->owner_len + a->rdlen) == 0;
}

/* The first n records of a and b are equal, and b has exactly n. */
static void same_prefix(const struct dns_result *a, const struct dns_result *b, size_t n)
{
    CHECK(b->n == n && n <= a->n && a->rcode == b->rcode);
    for (size_t i = 0; i < n; i++)
        CHECK(same_rr(&a->rr[i], &b->rr[i]));
}

/* ---- upstream results ---- */

/* The documented shape of a result for (qwire, qtype). */
static void check_result_shape(const struct dns_result *r, const uint8_t *qwire, size_t qlen,
                               uint16_t qtype)
{
    CHECK(r->n <= DNS_MAX_ANSWERS);
    CHECK(r->rcode == DNS_RCODE_NOERROR || r->rcode == DNS_RCODE_NXDOMAIN);
    uint8_t cur[DNS_NAME_WIRE_MAX];
    size_t cur_len = qlen, bytes = 0, i = 0, hops = 0;
    for (size_t k = 0; k < qlen; k++)
        cur[k] = lower(qwire[k]);
    if (qtype != DNS_T_CNAME) {
        for (; i < r->n && r->rr[i].type == DNS_T_CNAME; i++) {
            const struct dns_rr *rr = &r->rr[i];
            CHECK(++hops <= DNS_MAX_CHAIN);
            CHECK(rr->owner_len == cur_len && memcmp(dns_rr_owner(rr), cur, cur_len) == 0);
            check_rdata(DNS_T_CNAME, dns_rr_rdata(rr), rr->rdlen);
            memcpy(cur, dns_rr_rdata(rr), rr->rdlen);
            cur_len = rr->rdlen;
        }
    }
    for (; i < r->n; i++) {
        const struct dns_rr *rr = &r->rr[i];
        CHECK(rr->type == qtype);
        CHECK(rr->owner_len == cur_len && memcmp(dns_rr_owner(rr), cur, cur_len) == 0);
        check_rdata(qtype, dns_rr_rdata(rr), rr->rdlen);
        CHECK(!(rr->ttl & 0x80000000u));
    }
    for (i = 0; i < r->n; i++) {
        bytes += r->rr[i].owner_len + (size_t)r->rr[i].rdlen;
        CHECK(!(r->rr[i].ttl & 0x80000000u));
    }
    CHECK(bytes <= DNS_RESULT_MAX_RDATA);
}

/* The small helpers on a result agree with its records. */
static void check_result_helpers(const struct dns_result *r, uint16_t qtype)
{
    struct dns_result copy = {0};
    CHECK(dns_result_copy(&copy, r, NULL) == 0);
    same_prefix(r, &copy, r->n);
    uint32_t min = dns_result_min_ttl(r);
    size_t na = 0;
    bool has_q = false;
    for (size_t i = 0; i < r->n; i++) {
        CHECK(min <= r->rr[i].ttl);
        na += r->rr[i].type == DNS_T_A;
        has_q |= r->rr[i].type == qtype;
    }
    CHECK(r->n == 0 ? min == 0 : true);
    uint32_t ips[DNS_MAX_ANSWERS];
    CHECK(dns_result_ipv4(r, ips, DNS_MAX_ANSWERS) == na);
    CHECK(dns_result_is_negative(r, qtype) == (r->rcode != DNS_RCODE_NOERROR || !has_q));
    if (copy.n > 0) {
        size_t n = copy.n;
        dns_result_remove(&copy, n / 2);
        CHECK(copy.n == n - 1);
        for (size_t i = 0; i < copy.n; i++)
            CHECK(same_rr(&copy.rr[i], &r->rr[i < n / 2 ? i : i + 1]));
        dns_result_set_ttl(&copy, 7);
        CHECK(copy.n == 0 || dns_result_min_ttl(&copy) == 7);
    }
    dns_result_clear(&copy);
    CHECK(copy.n == 0);
}

/* ---- guest answers ---- */

/* Skips a name written by the builder: plain labels, or the pointer to the
 * question (0xC00C) when there is one. Returns its wire bytes, or -1. */
static int skip_built_name(const uint8_t *m, size_t len, size_t *off, bool ptr_ok,
                           const uint8_t **plain)
{
    size_t o = *off;
    *plain = NULL;
    if (o + 2 <= len && (m[o] & 0xC0) == 0xC0) {
        CHECK(ptr_ok && rd16(m + o) == (0xC000 | DNS_HEADER_LEN));
        *off = o + 2;
        return 0;
    }
    CHECK(o < len);
    int n = plain_name_len(m + o, len - o);
    CHECK(n > 0);
    *plain = m + o;
    *off = o + (size_t)n;
    return n;
}

/* What the EDE text must be cut to (at most max bytes, whole UTF-8). */
static size_t ede_expected_len(const char *text, size_t max)
{
    size_t n = strlen(text);
    if (n <= max)
        return n;
    while (max > 0 && ((uint8_t)text[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* Size of one answer record as the builder writes it. */
static size_t built_rr_size(const struct dns_query_msg *q, const struct dns_rr *rr)
{
    bool ptr = q->has_question &&
               dnsname_wire_equal(dns_rr_owner(rr), rr->owner_len, q->q.wire, q->q.wire_len);
    return (ptr ? 2 : rr->owner_len) + 10 + (size_t)rr->rdlen;
}

/* Builds the answer for r and reads it back. Returns the number of answer
 * records written, or -1 when the build failed. */
static int build_and_check(const struct dns_reply *r, uint8_t *out, size_t *out_len)
{
    const struct dns_query_msg *q = r->query;
    int n = dnsmsg_build_reply(r, out, DNS_TCP_ANSWER_MAX, NULL);
    CHECK(n >= DNS_HEADER_LEN);
    size_t len = (size_t)n;
    size_t limit = r->tcp ? DNS_TCP_ANSWER_MAX : dnsmsg_udp_limit(q);
    CHECK(limit >= DNS_UDP_ANSWER_MIN && limit <= DNS_TCP_ANSWER_MAX);
    CHECK(r->tcp || limit <= DNS_EDNS_ANSWER_MAX);
    CHECK(q->edns || limit == DNS_UDP_ANSWER_MIN || r->tcp);
    CHECK(len <= limit);

    /* Header. */
    unsigned rcode = r->rcode > 15 && !q->edns ? DNS_RCODE_FORMERR : r->rcode;
    uint16_t flags = rd16(out + 2);
    bool tc = flags & 0x0200;
    CHECK(rd16(out) == q->id);
    CHECK(flags & 0x8000);                       /* QR */
    CHECK(((flags >> 11) & 0xF) == q->opcode);   /* opcode echoed */
    CHECK(!(flags & 0x0400));                    /* never AA */
    CHECK(!!(flags & 0x0100) == q->rd);          /* RD echoed */
    CHECK(flags & 0x0080);                       /* RA */
    CHECK(!(flags & 0x0040));                    /* Z */
    CHECK(!(flags & 0x0020));                    /* AD */
    CHECK(!!(flags & 0x0010) == q->cd);          /* CD echoed */
    CHECK((flags & 0xF) == (rcode & 0xF));
    CHECK(rd16(out + 4) == (q->has_question ? 1 : 0));
    size_t an = rd16(out + 6), given = r->answers ? r->answers->n : 0;
    CHECK(an <= given);
    CHECK(rd16(out + 8) == 0);
    CHECK(rd16(out + 10) == (q->edns ? 1 : 0));
    CHECK(!tc || (!r->tcp && an == 0 && given > 0));
    if (!r->tcp)
        CHECK(tc || an == given);

    /* Question, byte for byte as received. */
    size_t off = DNS_HEADER_LEN;
    const uint8_t *plain;
    if (q->has_question) {
        CHECK(off + q->q.wire_len + 4 <= len);
        CHECK(memcmp(out + off, q->q.wire, q->q.wire_len) == 0);
        off += q->q.wire_len;
        CHECK(rd16(out + off) == q->q.qtype && rd16(out + off + 2) == q->q.qclass);
        off += 4;
    }
    /* Answers: the first `an` records given, in order. */
    for (size_t i = 0; i < an; i++) {
        const struct dns_rr *rr = &r->answers->rr[i];
        size_t start = off;
        int wl = skip_built_name(out, len, &off, q->has_question, &plain);
        if (wl == 0)
            CHECK(dnsname_wire_equal(dns_rr_owner(rr), rr->owner_len, q->q.wire, q->q.wire_len));
        else
            CHECK((size_t)wl == rr->owner_len && memcmp(plain, dns_rr_owner(rr), (size_t)wl) == 0);
        CHECK(off + 10 <= len);
        CHECK(rd16(out + off) == rr->type && rd16(out + off + 2) == DNS_CLASS_IN);
        CHECK(rd32(out + off + 4) == rr->ttl && rd16(out + off + 8) == rr->rdlen);
        off += 10;
        CHECK(off + rr->rdlen <= len);
        CHECK(rr->rdlen == 0 || memcmp(out + off, dns_rr_rdata(rr), rr->rdlen) == 0);
        off += rr->rdlen;
        CHECK(off - start == built_rr_size(q, rr));
    }
    /* OPT, with the EDE when asked. */
    if (q->edns) {
        CHECK(off + 11 <= len && out[off] == 0);
        CHECK(rd16(out + off + 1) == DNS_T_OPT && rd16(out + off + 3) == DNS_EDNS_ANSWER_MAX);
        CHECK(rd32(out + off + 5) == (uint32_t)(rcode >> 4) << 24);
        size_t rdlen = rd16(out + off + 9);
        off += 11;
        CHECK(off + rdlen <= len);
        if (r->ede) {
            size_t qsize = q->has_question ? q->q.wire_len + 4 : 0;
            size_t room = limit - (DNS_HEADER_LEN + qsize + 11 + 6);
            const char *text = r->ede_text ? r->ede_text : "";
            size_t tl = ede_expected_len(text, room < DNS_EDE_TEXT_MAX ? room : DNS_EDE_TEXT_MAX);
            CHECK(rdlen == 6 + tl);
            CHECK(rd16(out + off) == 15 && rd16(out + off + 2) == 2 + tl);
            CHECK(rd16(out + off + 4) == r->ede_code);
            CHECK(memcmp(out + off + 6, text, tl) == 0);
        } else {
            CHECK(rdlen == 0);
        }
        off += rdlen;
    }
    CHECK(off == len);
    /* TCP trims only what does not fit; UDP truncates only when needed. */
    if (an < given && !tc)
        CHECK(len + built_rr_size(q, &r->answers->rr[an]) > limit);
    if (tc) {
        size_t all = len;
        for (size_t i = 0; i < given; i++)
            all += built_rr_size(q, &r->answers->rr[i]);
        CHECK(all > limit);
    }
    /* An answer is never taken for a query. */
    struct dns_query_msg again;
    CHECK(dnsmsg_parse_query(out, len, &again) == DNS_PARSE_DROP);
    *out_len = len;
    return (int)an;
}

/* The answer to a forwarded type, read by the upstream parser, gives back
 * the first `an` records it was built from. */
static void check_parse_back(const struct dns_reply *r, const uint8_t *out, size_t len, int an)
{
    const struct dns_query_msg *q = r->query;
    if (!q->has_question || q->opcode != 0 || q->q.qclass != DNS_CLASS_IN ||
        dns_type_action(q->q.qtype) != DNS_TYPE_FORWARD)
        return;
    struct dns_result back = {0};
    unsigned rcode;
    enum dns_upstream_status st = dnsmsg_parse_response(out, len, q->id, q->q.wire, q->q.wire_len,
                                                        q->q.qtype, true, &back, &rcode);
    if (rd16(out + 2) & 0x0200) {
        CHECK(st == DNS_UP_TRUNCATED && back.n == 0);
        return;
    }
    unsigned rc = r->rcode > 15 && !q->edns ? DNS_RCODE_FORMERR : r->rcode;
    if ((rc & 0xF) != DNS_RCODE_NOERROR && (rc & 0xF) != DNS_RCODE_NXDOMAIN) {
        CHECK(st == DNS_UP_RCODE && rcode == (rc & 0xF) && back.n == 0);
        return;
    }
    CHECK(st == DNS_UP_OK && rcode == (rc & 0xF) && back.rcode == rcode);
    CHECK(back.n == (size_t)an);
    for (int i = 0; i < an; i++)
        CHECK(same_rr(&r->answers->rr[i], &back.rr[i]));
    dns_result_clear(&back);
}

static void reply_round(const struct dns_reply *r)
{
    static uint8_t out[DNS_TCP_ANSWER_MAX];
    size_t len;
    int an = build_and_check(r, out, &len);
    check_parse_back(r, out, len, an);
}

/* Records of the asked type owned by the question name, valid for the type,
 * sized from `seed` so UDP/TCP limits are crossed. */
static void synth_answers(const struct dns_query_msg *q, uint8_t opt, uint16_t seed,
                          struct dns_result *res)
{
    uint8_t owner[DNS_NAME_WIRE_MAX], rd[2048];
    size_t olen = q->q.wire_len;
    for (size_t i = 0; i < olen; i++)
        owner[i] = lower(q->q.wire[i]);
    res->rcode = DNS_RCODE_NOERROR;
    unsigned count = 1 + seed % DNS_MAX_ANSWERS;
    size_t big = (opt & OPT_BIG) ? 200 + seed % 1800 : 1 + seed % 64;
    for (unsigned i = 0; i < count; i++) {
        size_t n = 0;
        switch (q->q.qtype) {
        case DNS_T_A:
            memcpy(rd, (uint8_t[]){93, 184, (uint8_t)seed, (uint8_t)i}, 4);
            n = 4;
            break;
        case DNS_T_TXT:
            while (n < big) {
                size_t chunk = big - n - 1 > 255 ? 255 : big - n - 1;
                rd[n++] = (uint8_t)chunk;
                memset(rd + n, 'a' + (int)(i % 26), chunk);
                n += chunk;
            }
            break;
        case DNS_T_CAA:
            rd[0] = 0;
            rd[1] = 5;
            memcpy(rd + 2, "issue", 5);
            n = 7 + (big < 500 ? big : 500);
            memset(rd + 7, 'c', n - 7);
            break;
        default: { /* CNAME, MX, SRV: a name after 0, 2 or 6 fixed bytes */
            size_t fixed = q->q.qtype == DNS_T_MX ? 2 : q->q.qtype == DNS_T_SRV ? 6 : 0;
            memset(rd, (int)i, fixed);
            memcpy(rd + fixed, owner, olen);
            n = fixed + olen;
            break;
        }
        }
        if (dns_result_add(res, q->q.qtype, 60 + i, owner, olen, rd, n) < 0)
            break;
    }
}

static void guest_path(const uint8_t *msg, size_t len, uint8_t opt)
{
    struct dns_query_msg q;
    enum dns_parse_status st = dnsmsg_parse_query(msg, len, &q);
    CHECK(st >= DNS_PARSE_OK && st <= DNS_PARSE_BADVERS);
    CHECK((st == DNS_PARSE_OK) == (q.detail == NULL));
    if (len < DNS_HEADER_LEN) {
        CHECK(st == DNS_PARSE_DROP);
        return;
    }
    CHECK(q.id == rd16(msg) && q.opcode == ((msg[2] >> 3) & 0xF));
    CHECK(q.rd == !!(msg[2] & 1) && q.cd == !!(msg[3] & 0x10));
    if (msg[2] & 0x80) {
        CHECK(st == DNS_PARSE_DROP);
        return;
    }
    CHECK(st != DNS_PARSE_DROP);
    if (q.has_question) {
        /* The name normalises, and normalising its text gives it back. */
        CHECK(q.q.wire_len >= 1 && q.q.wire_len <= DNS_NAME_WIRE_MAX);
        size_t tl = strnlen(q.q.name, sizeof(q.q.name));
        CHECK(tl <= DNS_NAME_TEXT_MAX);
        for (size_t i = 0; i < tl; i++)
            CHECK(q.q.name[i] == '.' || dnsname_char_ok((uint8_t)q.q.name[i]));
        uint8_t wire[DNS_NAME_WIRE_MAX];
        int wl = dnsname_text_to_wire(q.q.name, wire, sizeof(wire));
        CHECK(wl > 0 && dnsname_wire_equal(wire, (size_t)wl, q.q.wire, q.q.wire_len));
        size_t labels = 0;
        for (size_t o = 0; q.q.wire[o]; o += 1 + (size_t)q.q.wire[o])
            labels++;
        CHECK(dnsname_label_count(q.q.name) == labels);
        CHECK(tl == (q.q.wire_len > 1 ? q.q.wire_len - 2 : 0));
    }
    if (q.edns)
        CHECK(q.edns_udp_size >= DNS_UDP_ANSWER_MIN);
    if (st == DNS_PARSE_OK) {
        CHECK(len <= DNS_QUERY_MAX && q.opcode == 0 && q.has_question);
        CHECK(q.q.qclass == DNS_CLASS_IN && (!q.edns || q.edns_version == 0));
        /* What the host would send upstream for it parses the same. */
        uint8_t pkt[DNS_HEADER_LEN + DNS_NAME_WIRE_MAX + 4 + 11];
        int pl = dnsmsg_build_query(q.id, q.q.wire, q.q.wire_len, q.q.qtype,
                                    q.edns ? q.edns_udp_size : 0, pkt, sizeof(pkt));
        CHECK(pl > 0);
        struct dns_query_msg q2;
        CHECK(dnsmsg_parse_query(pkt, (size_t)pl, &q2) == DNS_PARSE_OK);
        CHECK(q2.id == q.id && q2.rd && !q2.cd && q2.edns == q.edns);
        CHECK(q2.q.wire_len == q.q.wire_len && memcmp(q2.q.wire, q.q.wire, q.q.wire_len) == 0);
        CHECK(q2.q.qtype == q.q.qtype && strcmp(q2.q.name, q.q.name) == 0);
        CHECK(!q.edns || q2.edns_udp_size == q.edns_udp_size);
    }

    /* The answer the host gives to this query, and variants. */
    unsigned rcode;
    switch (st) {
    case DNS_PARSE_FORMERR: rcode = DNS_RCODE_FORMERR; break;
    case DNS_PARSE_NOTIMP: rcode = DNS_RCODE_NOTIMP; break;
    case DNS_PARSE_BADVERS: rcode = DNS_RCODE_BADVERS; break;
    default: rcode = rcodes[(opt >> OPT_RCODE_SHIFT) & 7]; break;
    }
    struct dns_result res = {0};
    if (st == DNS_PARSE_OK && rcode == DNS_RCODE_NOERROR &&
        dns_type_action(q.q.qtype) == DNS_TYPE_FORWARD)
        synth_answers(&q, opt, (uint16_t)(len * 131 + msg[len - 1]), &res);
    struct dns_reply r = {.query = &q, .rcode = rcode, .answers = &res,
                          .ede = (opt & OPT_EDE) != 0, .ede_code = DNS_EDE_BLOCKED,
                          .ede_text = ede_texts[len % 4], .tcp = (opt & OPT_TCP) != 0};
    reply_round(&r);
    r.tcp = !r.tcp;
    reply_round(&r);
    dns_result_clear(&res);
}

/* ---- upstream path ---- */

/* The guest asks (qwire, qtype); the upstream answer is res: the answer
 * built for the guest must read back as res (or its first records). */
static void answer_guest(const uint8_t *qwire, size_t qlen, uint16_t qtype,
                         const struct dns_result *res, uint8_t opt)
{
    uint8_t pkt[DNS_HEADER_LEN + DNS_NAME_WIRE_MAX + 4 + 11];
    uint16_t edns_size = (opt & OPT_BIG) ? (uint16_t)(512 + qlen * 7) : 0;
    int pl = dnsmsg_build_query(0x1234, qwire, qlen, qtype, edns_size, pkt, sizeof(pkt));
    CHECK(pl > 0);
    struct dns_query_msg q;
    char text[DNS_NAME_BUF];
    enum dns_parse_status st = dnsmsg_parse_query(pkt, (size_t)pl, &q);
    if (dnsname_wire_to_text(qwire, qlen, text, sizeof(text)) < 0) {
        CHECK(st == DNS_PARSE_FORMERR);
        return;
    }
    CHECK(st == DNS_PARSE_OK);
    struct dns_reply r = {.query = &q, .rcode = res->rcode, .answers = res,
                          .ede = (opt & OPT_EDE) != 0, .ede_code = DNS_EDE_BLOCKED,
                          .ede_text = ede_texts[qlen % 4], .tcp = false};
    reply_round(&r);
    r.tcp = true;
    reply_round(&r);
}

static void upstream_path(const uint8_t *msg, size_t len, uint8_t opt)
{
    /* The question the message carries is the one "we" asked. */
    uint8_t qwire[DNS_NAME_WIRE_MAX];
    size_t off = DNS_HEADER_LEN;
    int ql = len >= DNS_HEADER_LEN ? dnsmsg_read_name(msg, len, &off, qwire) : -1;
    if (ql < 0) {
        static const uint8_t fallback[] = "\x07" "example" "\x03" "com";
        memcpy(qwire, fallback, sizeof(fallback));
        ql = (int)sizeof(fallback);
    }
    CHECK(ql >= 1 && ql <= DNS_NAME_WIRE_MAX);
    static const uint16_t fwd[8] = {DNS_T_A, DNS_T_CNAME, DNS_T_TXT, DNS_T_MX,
                                    DNS_T_SRV, DNS_T_CAA, DNS_T_A, DNS_T_TXT};
    uint16_t qtype = off + 2 <= len ? rd16(msg + off) : DNS_T_A;
    if (dns_type_action(qtype) != DNS_TYPE_FORWARD)
        qtype = fwd[(opt >> OPT_RCODE_SHIFT) & 7];
    if (opt & OPT_FLIP_CASE)
        for (int i = 0; i < ql; i++)
            if ((qwire[i] | 0x20) >= 'a' && (qwire[i] | 0x20) <= 'z')
                qwire[i] ^= 0x20;
    uint16_t id = len >= 2 ? rd16(msg) : 0;
    bool exact = (opt & OPT_EXACT_CASE) != 0;

    struct dns_result res = {0};
    unsigned rcode = 99;
    enum dns_upstream_status st =
        dnsmsg_parse_response(msg, len, id, qwire, (size_t)ql, qtype, exact, &res, &rcode);
    CHECK(st >= DNS_UP_OK && st <= DNS_UP_MALFORMED);
    if (st != DNS_UP_OK)
        CHECK(res.n == 0);
    if (st == DNS_UP_MISMATCH || st == DNS_UP_TRUNCATED)
        CHECK(rcode == 0);
    if (st == DNS_UP_MALFORMED)
        CHECK(rcode == DNS_RCODE_NOERROR || rcode == DNS_RCODE_NXDOMAIN);
    if (st == DNS_UP_RCODE)
        CHECK(rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN && rcode <= 15);
    if (st != DNS_UP_MISMATCH)
        CHECK(len >= DNS_HEADER_LEN && (msg[2] & 0x80) && ((msg[2] >> 3) & 0xF) == 0);
    if (st == DNS_UP_TRUNCATED)
        CHECK(msg[2] & 0x02);

    /* Another id is never accepted; a non-forwarded type is refused. */
    struct dns_result other = {0};
    unsigned rc2;
    CHECK(dnsmsg_parse_response(msg, len, (uint16_t)(id ^ 0x8001), qwire, (size_t)ql, qtype,
                                exact, &other, &rc2) == DNS_UP_MISMATCH &&
          other.n == 0);
    CHECK(dnsmsg_parse_response(msg, len, id, qwire, (size_t)ql, DNS_T_AAAA, exact, &other,
                                &rc2) == DNS_UP_MISMATCH &&
          other.n == 0);
    /* Case-insensitive matching accepts whatever exact matching accepts. */
    if (exact) {
        enum dns_upstream_status st2 =
            dnsmsg_parse_response(msg, len, id, qwire, (size_t)ql, qtype, false, &other, &rc2);
        CHECK(st == DNS_UP_MISMATCH || (st2 == st && rc2 == rcode));
        if (st == DNS_UP_OK)
            same_prefix(&res, &other, res.n);
        dns_result_clear(&other);
    }

    if (st == DNS_UP_OK) {
        CHECK(rcode == res.rcode);
        check_result_shape(&res, qwire, (size_t)ql, qtype);
        check_result_helpers(&res, qtype);
        answer_guest(qwire, (size_t)ql, qtype, &res, opt);
    }
    dns_result_clear(&res);
}

/* ---- names ---- */

/* The name reader at a few offsets: an uncompressed name of at most 255
 * bytes, the offset moved forward inside the message, and the text form
 * (when it normalises) converts back to the same name. */
static void names_path(const uint8_t *msg, size_t len, uint8_t opt)
{
    size_t starts[3] = {DNS_HEADER_LEN, len ? (opt * 7u) % len : 0, len > 2 ? len - 2 : 0};
    for (int k = 0; k < 3; k++) {
        uint8_t wire[DNS_NAME_WIRE_MAX];
        size_t off = starts[k];
        int wl = dnsmsg_read_name(msg, len, &off, wire);
        if (wl < 0)
            continue;
        CHECK(wl >= 1 && wl <= DNS_NAME_WIRE_MAX && plain_name_len(wire, (size_t)wl) == wl);
        CHECK(off > starts[k] && off <= len);
        char text[DNS_NAME_BUF];
        int tl = dnsname_wire_to_text(wire, (size_t)wl, text, sizeof(text));
        if (tl < 0)
            continue;
        CHECK((size_t)tl == strlen(text) && tl == (wl > 1 ? wl - 2 : 0));
        uint8_t back[DNS_NAME_WIRE_MAX];
        CHECK(dnsname_text_to_wire(text, back, sizeof(back)) == wl);
        CHECK(dnsname_wire_equal(back, (size_t)wl, wire, (size_t)wl));
        char again[DNS_NAME_BUF];
        CHECK(dnsname_normalise(text, again, sizeof(again)) == tl && strcmp(again, text) == 0);
        CHECK(dnsname_longest_label(text) <= DNS_LABEL_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!ede_long[0]) {
        memset(ede_long, 'x', sizeof(ede_long) - 1);
        memcpy(ede_long + 298, "\xe2\x82\xac", 3); /* straddles the 300-byte cut */
    }
    uint8_t opt = data[size - 1];
    size_t len = size - 1;
    /* A private copy, so reads past the message are caught. */
    uint8_t *msg = malloc(len ? len : 1);
    CHECK(msg);
    memcpy(msg, data, len);
    guest_path(msg, len, opt);
    upstream_path(msg, len, opt);
    names_path(msg, len, opt);
    free(msg);
    return 0;
}
