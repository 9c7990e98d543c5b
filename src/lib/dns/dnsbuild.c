/* DNS results and the messages the host writes: answers to the guest and
 * queries to the upstream (dnsmsg.h). */
#include "dns/dnsmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- results ---- */

void dns_result_clear(struct dns_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->rr[i].data);
    memset(r, 0, sizeof(*r));
}

static size_t result_bytes(const struct dns_result *r)
{
    size_t sum = 0;
    for (size_t i = 0; i < r->n; i++)
        sum += r->rr[i].owner_len + (size_t)r->rr[i].rdlen;
    return sum;
}

int dns_result_add(struct dns_result *r, uint16_t type, uint32_t ttl, const uint8_t *owner,
                   size_t owner_len, const uint8_t *rdata, size_t rdlen)
{
    if (r->n >= DNS_MAX_ANSWERS || owner_len == 0 || owner_len > DNS_NAME_WIRE_MAX ||
        result_bytes(r) + owner_len + rdlen > DNS_RESULT_MAX_RDATA)
        return -1;
    uint8_t *d = malloc(owner_len + rdlen);
    if (!d)
        return -1;
    memcpy(d, owner, owner_len);
    if (rdlen)
        memcpy(d + owner_len, rdata, rdlen);
    struct dns_rr *rr = &r->rr[r->n++];
    rr->type = type;
    rr->ttl = ttl;
    rr->owner_len = (uint8_t)owner_len;
    rr->rdlen = (uint16_t)rdlen;
    rr->data = d;
    return 0;
}

int dns_result_copy(struct dns_result *dst, const struct dns_result *src, struct err **errp)
{
    dns_result_clear(dst);
    dst->rcode = src->rcode;
    for (size_t i = 0; i < src->n; i++) {
        const struct dns_rr *rr = &src->rr[i];
        if (dns_result_add(dst, rr->type, rr->ttl, dns_rr_owner(rr), rr->owner_len,
                           dns_rr_rdata(rr), rr->rdlen) < 0) {
            dns_result_clear(dst);
            return err_set(errp, ENOMEM, "dns: out of memory copying an answer");
        }
    }
    return 0;
}

void dns_result_remove(struct dns_result *r, size_t i)
{
    if (i >= r->n)
        return;
    free(r->rr[i].data);
    memmove(&r->rr[i], &r->rr[i + 1], (r->n - i - 1) * sizeof(r->rr[0]));
    r->n--;
    memset(&r->rr[r->n], 0, sizeof(r->rr[0]));
}

uint32_t dns_result_min_ttl(const struct dns_result *r)
{
    uint32_t m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (i == 0 || r->rr[i].ttl < m)
            m = r->rr[i].ttl;
    return m;
}

void dns_result_set_ttl(struct dns_result *r, uint32_t ttl)
{
    for (size_t i = 0; i < r->n; i++)
        r->rr[i].ttl = ttl;
}

size_t dns_result_ipv4(const struct dns_result *r, uint32_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n && k < cap; i++) {
        const struct dns_rr *rr = &r->rr[i];
        if (rr->type != DNS_T_A || rr->rdlen != 4)
            continue;
        const uint8_t *p = dns_rr_rdata(rr);
        out[k++] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    return k;
}

bool dns_result_is_negative(const struct dns_result *r, uint16_t qtype)
{
    if (r->rcode != DNS_RCODE_NOERROR)
        return true;
    for (size_t i = 0; i < r->n; i++)
        if (r->rr[i].type == qtype)
            return false;
    return true;
}

/* ---- writer ---- */

#define DNS_OPT_EDE 15 /* EDNS option code of Extended DNS Errors (RFC 8914) */

struct wbuf {
    uint8_t *p;
    size_t cap, len;
};

static void put(struct wbuf *w, const void *d, size_t n)
{
    /* Sizes are computed before writing; this only guards against a bug. */
    if (w->len + n > w->cap)
        abort();
    memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void put16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void put32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

size_t dnsmsg_udp_limit(const struct dns_query_msg *q)
{
    if (!q->edns)
        return DNS_UDP_ANSWER_MIN;
    size_t s = q->edns_udp_size;
    return s > DNS_EDNS_ANSWER_MAX ? DNS_EDNS_ANSWER_MAX : MAX(s, (size_t)DNS_UDP_ANSWER_MIN);
}

/* Cut at most max bytes of UTF-8 text without splitting a sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((uint8_t)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

static bool owner_is_qname(const struct dns_query_msg *q, const struct dns_rr *rr)
{
    return q->has_question && dnsname_wire_equal(dns_rr_owner(rr), rr->owner_len, q->q.wire,
                                                 q->q.wire_len);
}

static size_t rr_size(const struct dns_query_msg *q, const struct dns_rr *rr)
{
    return (owner_is_qname(q, rr) ? 2 : rr->owner_len) + 10 + (size_t)rr->rdlen;
}

static void put_rr(struct wbuf *w, const struct dns_query_msg *q, const struct dns_rr *rr)
{
    if (owner_is_qname(q, rr))
        put16(w, 0xC000 | DNS_HEADER_LEN); /* the echoed question name */
    else
        put(w, dns_rr_owner(rr), rr->owner_len);
    put16(w, rr->type);
    put16(w, DNS_CLASS_IN);
    put32(w, rr->ttl);
    put16(w, rr->rdlen);
    put(w, dns_rr_rdata(rr), rr->rdlen);
}

struct ede {
    bool on;
    uint16_t code;
    const char *text;
    size_t len;
};

static void put_opt(struct wbuf *w, unsigned rcode, const struct ede *e)
{
    put(w, "", 1); /* root owner */
    put16(w, DNS_T_OPT);
    put16(w, DNS_EDNS_ANSWER_MAX);
    put32(w, (uint32_t)(rcode >> 4) << 24); /* extended rcode, version 0, DO clear */
    if (!e->on) {
        put16(w, 0);
        return;
    }
    put16(w, (uint16_t)(4 + 2 + e->len));
    put16(w, DNS_OPT_EDE);
    put16(w, (uint16_t)(2 + e->len));
    put16(w, e->code);
    if (e->len)
        put(w, e->text, e->len);
}

/* How many answers fit under limit after base bytes; sets *tc for UDP. */
static size_t answers_that_fit(const struct dns_reply *r, size_t base, size_t limit, bool *tc)
{
    const struct dns_result *a = r->answers;
    size_t n = a ? a->n : 0, total = base, k = 0;
    for (; k < n; k++) {
        size_t s = rr_size(r->query, &a->rr[k]);
        if (total + s > limit)
            break;
        total += s;
    }
    *tc = false;
    if (k < n && !r->tcp) {
        *tc = true; /* RFC 2181 9: a truncated UDP answer, the client retries over TCP */
        k = 0;
    }
    return k;
}

int dnsmsg_build_reply(const struct dns_reply *r, uint8_t *out, size_t cap, struct err **errp)
{
    const struct dns_query_msg *q = r->query;
    size_t limit = MIN(r->tcp ? (size_t)DNS_TCP_ANSWER_MAX : dnsmsg_udp_limit(q), cap);
    unsigned rcode = r->rcode;
    if (rcode > 15 && !q->edns)
        rcode = DNS_RCODE_FORMERR; /* extended rcodes need an OPT record */
    struct ede ede = {.on = r->ede && q->edns, .code = r->ede_code,
                      .text = r->ede_text ? r->ede_text : ""};
    size_t qsize = q->has_question ? q->q.wire_len + 4 : 0;
    size_t optsize = q->edns ? 11 : 0;
    size_t base = DNS_HEADER_LEN + qsize + optsize;
    if (ede.on) {
        size_t room = limit > base + 6 ? limit - base - 6 : 0;
        ede.len = utf8_cut(ede.text, MIN(room, (size_t)DNS_EDE_TEXT_MAX));
        if (base + 6 <= limit)
            base += 6 + ede.len;
        else
            ede.on = false;
    }
    if (base > limit)
        return err_set(errp, EMSGSIZE, "dns: answer buffer of %zu bytes too small", cap);
    bool tc;
    size_t k = answers_that_fit(r, base, limit, &tc);

    struct wbuf w = {.p = out, .cap = limit};
    uint16_t flags = 0x8000 | (uint16_t)((q->opcode & 0xF) << 11) | (tc ? 0x0200 : 0) |
                     (q->rd ? 0x0100 : 0) | 0x0080 | (q->cd ? 0x0010 : 0) | (rcode & 0xF);
    put16(&w, q->id);
    put16(&w, flags);
    put16(&w, q->has_question ? 1 : 0);
    put16(&w, (uint16_t)k);
    put16(&w, 0);
    put16(&w, q->edns ? 1 : 0);
    if (q->has_question) {
        put(&w, q->q.wire, q->q.wire_len);
        put16(&w, q->q.qtype);
        put16(&w, q->q.qclass);
    }
    for (size_t i = 0; i < k; i++)
        put_rr(&w, q, &r->answers->rr[i]);
    if (q->edns)
        put_opt(&w, rcode, &ede);
    return (int)w.len;
}

int dnsmsg_build_query(uint16_t id, const uint8_t *qwire, size_t qwire_len, uint16_t qtype,
                       uint16_t edns_size, uint8_t *out, size_t cap)
{
    size_t need = DNS_HEADER_LEN + qwire_len + 4 + (edns_size ? 11 : 0);
    if (need > cap || qwire_len == 0 || qwire_len > DNS_NAME_WIRE_MAX)
        return -1;
    struct wbuf w = {.p = out, .cap = cap};
    put16(&w, id);
    put16(&w, 0x0100); /* RD */
    put16(&w, 1);
    put16(&w, 0);
    put16(&w, 0);
    put16(&w, edns_size ? 1 : 0);
    put(&w, qwire, qwire_len);
    put16(&w, qtype);
    put16(&w, DNS_CLASS_IN);
    if (edns_size) {
        put(&w, "", 1);
        put16(&w, DNS_T_OPT);
        put16(&w, edns_size);
        put32(&w, 0);
        put16(&w, 0);
    }
    return (int)w.len;
}
