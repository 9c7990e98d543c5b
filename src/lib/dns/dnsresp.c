/* Upstream answers: validation against the query, CNAME chain extraction,
 * record data checks and decompression (dnsmsg_parse_response(), dnsmsg.h). */
#include "dns/dnsmsg.h"

#include <string.h>

#include "base/util.h"

#define MAX_CANDIDATES 64 /* CNAME / asked-type records looked at per answer */

struct cand {
    size_t name_off; /* owner name position in the message */
    uint16_t type;
    uint32_t ttl;
    size_t rdoff, rdlen;
    bool used;
};

struct resp {
    const uint8_t *pkt;
    size_t len;
    uint16_t qtype;
    struct cand c[MAX_CANDIDATES];
    size_t nc;
};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Header and question: is this the answer to our query? */
static enum dns_upstream_status check_head(const uint8_t *pkt, size_t len, uint16_t id,
                                           const uint8_t *qwire, size_t qwire_len, uint16_t qtype,
                                           bool exact_case, size_t *off)
{
    if (len < DNS_HEADER_LEN || rd16(pkt) != id)
        return DNS_UP_MISMATCH;
    uint16_t flags = rd16(pkt + 2);
    if (!(flags & 0x8000) || ((flags >> 11) & 0xF) != 0 || rd16(pkt + 4) != 1)
        return DNS_UP_MISMATCH;
    uint8_t wire[DNS_NAME_WIRE_MAX];
    *off = DNS_HEADER_LEN;
    int wl = dnsmsg_read_name(pkt, len, off, wire);
    if (wl < 0 || *off + 4 > len)
        return DNS_UP_MALFORMED;
    bool same = exact_case ? ((size_t)wl == qwire_len && memcmp(wire, qwire, qwire_len) == 0)
                           : dnsname_wire_equal(wire, (size_t)wl, qwire, qwire_len);
    if (!same || rd16(pkt + *off) != qtype || rd16(pkt + *off + 2) != DNS_CLASS_IN)
        return DNS_UP_MISMATCH;
    *off += 4;
    return DNS_UP_OK;
}

/* Walks the answer section, remembering CNAME and asked-type IN records. */
static int collect(struct resp *r, size_t off, unsigned ancount)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    for (unsigned i = 0; i < ancount; i++) {
        size_t name_off = off;
        if (dnsmsg_read_name(r->pkt, r->len, &off, wire) < 0 || off + 10 > r->len)
            return -1;
        const uint8_t *p = r->pkt + off;
        uint16_t type = rd16(p), cls = rd16(p + 2);
        uint32_t ttl = rd32(p + 4);
        size_t rdlen = rd16(p + 8);
        off += 10;
        if (off + rdlen > r->len)
            return -1;
        if (cls == DNS_CLASS_IN && (type == DNS_T_CNAME || type == r->qtype) &&
            r->nc < MAX_CANDIDATES) {
            /* RFC 2181 8: a TTL with the top bit set is treated as zero. */
            r->c[r->nc++] = (struct cand){.name_off = name_off, .type = type,
                                          .ttl = (ttl & 0x80000000u) ? 0 : ttl,
                                          .rdoff = off, .rdlen = rdlen};
        }
        off += rdlen;
    }
    return 0;
}

static bool owner_is(const struct resp *r, const struct cand *c, const uint8_t *name, size_t nlen)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    size_t off = c->name_off;
    int wl = dnsmsg_read_name(r->pkt, r->len, &off, wire);
    return wl > 0 && dnsname_wire_equal(wire, (size_t)wl, name, nlen);
}

/* A name filling the rest of the record data exactly, decompressed after
 * `fixed` bytes copied as they are. Returns the rdata length or -1. */
static int rdata_with_name(const struct resp *r, const struct cand *c, size_t fixed, uint8_t *out)
{
    if (c->rdlen <= fixed)
        return -1;
    memcpy(out, r->pkt + c->rdoff, fixed);
    size_t off = c->rdoff + fixed;
    int wl = dnsmsg_read_name(r->pkt, r->len, &off, out + fixed);
    if (wl < 0 || off != c->rdoff + c->rdlen)
        return -1;
    return (int)(fixed + (size_t)wl);
}

static bool txt_ok(const uint8_t *p, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return false;
    while (o < n)
        o += 1 + (size_t)p[o];
    return o == n;
}

static bool caa_ok(const uint8_t *p, size_t n)
{
    if (n < 2 || p[1] == 0 || 2 + (size_t)p[1] > n)
        return false;
    for (size_t i = 0; i < p[1]; i++) {
        uint8_t ch = p[2 + i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

/* Validates the candidate's data and appends it (names decompressed).
 * -1: malformed. A full result is not an error: the record is left out. */
static int add_record(const struct resp *r, const struct cand *c, const uint8_t *owner,
                      size_t owner_len, struct dns_result *out)
{
    uint8_t buf[6 + DNS_NAME_WIRE_MAX];
    const uint8_t *rd = r->pkt + c->rdoff;
    int n = (int)c->rdlen;
    switch (c->type) {
    case DNS_T_A:
        if (c->rdlen != 4)
            return -1;
        break;
    case DNS_T_CNAME:
        n = rdata_with_name(r, c, 0, buf);
        rd = buf;
        break;
    case DNS_T_MX:
        n = rdata_with_name(r, c, 2, buf);
        rd = buf;
        break;
    case DNS_T_SRV:
        n = rdata_with_name(r, c, 6, buf);
        rd = buf;
        break;
    case DNS_T_TXT:
        if (!txt_ok(rd, c->rdlen))
            return -1;
        break;
    case DNS_T_CAA:
        if (!caa_ok(rd, c->rdlen))
            return -1;
        break;
    default:
        return -1;
    }
    if (n < 0)
        return -1;
    (void)dns_result_add(out, c->type, c->ttl, owner, owner_len, rd, (size_t)n);
    return 0;
}

/* Follows CNAMEs from the question name; *cur receives the chain's end. */
static int follow_chain(struct resp *r, uint8_t *cur, size_t *cur_len, struct dns_result *out)
{
    for (unsigned hop = 0; hop < DNS_MAX_CHAIN && r->qtype != DNS_T_CNAME; hop++) {
        struct cand *c = NULL;
        for (size_t i = 0; i < r->nc && !c; i++)
            if (!r->c[i].used && r->c[i].type == DNS_T_CNAME && owner_is(r, &r->c[i], cur, *cur_len))
                c = &r->c[i];
        if (!c)
            break;
        c->used = true;
        uint8_t target[DNS_NAME_WIRE_MAX];
        int tl = rdata_with_name(r, c, 0, target);
        if (tl < 0 || add_record(r, c, cur, *cur_len, out) < 0)
            return -1;
        memcpy(cur, target, (size_t)tl);
        *cur_len = (size_t)tl;
    }
    return 0;
}

static enum dns_upstream_status build_result(struct resp *r, const uint8_t *qwire, size_t qwire_len,
                                             struct dns_result *out)
{
    uint8_t cur[DNS_NAME_WIRE_MAX];
    size_t cur_len = qwire_len;
    memcpy(cur, qwire, qwire_len);
    /* Stored owners are lowercase whatever 0x20 did to the question. */
    for (size_t i = 0; i < cur_len; i++)
        if (cur[i] >= 'A' && cur[i] <= 'Z')
            cur[i] = (uint8_t)(cur[i] - 'A' + 'a');
    if (follow_chain(r, cur, &cur_len, out) < 0)
        return DNS_UP_MALFORMED;
    for (size_t i = 0; i < r->nc; i++) {
        struct cand *c = &r->c[i];
        if (c->used || c->type != r->qtype || !owner_is(r, c, cur, cur_len))
            continue;
        if (add_record(r, c, cur, cur_len, out) < 0)
            return DNS_UP_MALFORMED;
    }
    return DNS_UP_OK;
}

enum dns_upstream_status dnsmsg_parse_response(const uint8_t *pkt, size_t len, uint16_t id,
                                               const uint8_t *qwire, size_t qwire_len,
                                               uint16_t qtype, bool exact_case,
                                               struct dns_result *out, unsigned *rcode)
{
    size_t off = 0;
    *rcode = 0;
    if (dns_type_action(qtype) != DNS_TYPE_FORWARD)
        return DNS_UP_MISMATCH;
    enum dns_upstream_status st =
        check_head(pkt, len, id, qwire, qwire_len, qtype, exact_case, &off);
    if (st != DNS_UP_OK)
        return st;
    uint16_t flags = rd16(pkt + 2);
    if (flags & 0x0200)
        return DNS_UP_TRUNCATED;
    *rcode = flags & 0xF;
    if (*rcode != DNS_RCODE_NOERROR && *rcode != DNS_RCODE_NXDOMAIN)
        return DNS_UP_RCODE;
    struct resp r = {.pkt = pkt, .len = len, .qtype = qtype};
    if (collect(&r, off, rd16(pkt + 6)) < 0)
        return DNS_UP_MALFORMED;
    dns_result_clear(out);
    out->rcode = (uint8_t)*rcode;
    st = build_result(&r, qwire, qwire_len, out);
    if (st != DNS_UP_OK)
        dns_result_clear(out);
    return st;
}
