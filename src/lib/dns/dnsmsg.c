/* DNS wire format: type names, name reader, guest query parser (dnsmsg.h). */
#include "dns/dnsmsg.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

struct type_name {
    uint16_t type;
    const char *name;
};

/* IANA "Resource Record (RR) TYPEs", the ones a client plausibly asks for. */
static const struct type_name type_names[] = {
    {1, "A"},         {2, "NS"},          {5, "CNAME"},     {6, "SOA"},       {12, "PTR"},
    {13, "HINFO"},    {15, "MX"},         {16, "TXT"},      {17, "RP"},       {18, "AFSDB"},
    {24, "SIG"},      {25, "KEY"},        {28, "AAAA"},     {29, "LOC"},      {33, "SRV"},
    {35, "NAPTR"},    {36, "KX"},         {37, "CERT"},     {39, "DNAME"},    {41, "OPT"},
    {42, "APL"},      {43, "DS"},         {44, "SSHFP"},    {45, "IPSECKEY"}, {46, "RRSIG"},
    {47, "NSEC"},     {48, "DNSKEY"},     {49, "DHCID"},    {50, "NSEC3"},    {51, "NSEC3PARAM"},
    {52, "TLSA"},     {53, "SMIMEA"},     {55, "HIP"},      {59, "CDS"},      {60, "CDNSKEY"},
    {61, "OPENPGPKEY"}, {62, "CSYNC"},    {63, "ZONEMD"},   {64, "SVCB"},     {65, "HTTPS"},
    {99, "SPF"},      {108, "EUI48"},     {109, "EUI64"},   {249, "TKEY"},    {250, "TSIG"},
    {251, "IXFR"},    {252, "AXFR"},      {253, "MAILB"},   {254, "MAILA"},   {255, "ANY"},
    {256, "URI"},     {257, "CAA"},
};

const char *dns_type_str(uint16_t type, char *buf, size_t cap)
{
    for (size_t i = 0; i < ARRAY_SIZE(type_names); i++)
        if (type_names[i].type == type)
            return type_names[i].name;
    snprintf(buf, cap, "TYPE%u", (unsigned)type);
    return buf;
}

int dns_type_parse(const char *s, uint16_t *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(type_names); i++) {
        if (strcasecmp(type_names[i].name, s) == 0) {
            *out = type_names[i].type;
            return 0;
        }
    }
    if (strncasecmp(s, "TYPE", 4) != 0 || s[4] == '\0' || s[4] == '+' || s[4] == '-')
        return -1;
    int64_t v;
    if (parse_int64(s + 4, 0, 65535, &v) < 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

const char *dns_rcode_str(unsigned rcode)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED"};
    if (rcode < ARRAY_SIZE(names))
        return names[rcode];
    if (rcode == DNS_RCODE_BADVERS)
        return "BADVERS";
    return "RCODE";
}

enum dns_type_action dns_type_action(uint16_t qtype)
{
    switch (qtype) {
    case DNS_T_A:
    case DNS_T_CNAME:
    case DNS_T_TXT:
    case DNS_T_MX:
    case DNS_T_SRV:
    case DNS_T_CAA:
        return DNS_TYPE_FORWARD;
    case DNS_T_ANY:
    case DNS_T_AXFR:
    case DNS_T_IXFR:
    case DNS_T_MAILA:
    case DNS_T_MAILB:
    case DNS_T_OPT:
    case DNS_T_TKEY:
    case DNS_T_TSIG:
        return DNS_TYPE_NOTIMP;
    default:
        return DNS_TYPE_NODATA;
    }
}

/* ---- names ---- */

int dnsmsg_read_name(const uint8_t *msg, size_t len, size_t *off, uint8_t *wire)
{
    size_t pos = *off, o = 0, end = 0;
    size_t bound = pos; /* every pointer must land strictly before this */
    unsigned jumps = 0;
    for (;;) {
        if (pos >= len)
            return -1;
        uint8_t l = msg[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= len)
                return -1;
            size_t target = ((size_t)(l & 0x3F) << 8) | msg[pos + 1];
            if (jumps == 0)
                end = pos + 2;
            /* Strictly decreasing targets: no loop can form. */
            if (target >= bound || ++jumps > DNSMSG_MAX_JUMPS)
                return -1;
            bound = target;
            pos = target;
            continue;
        }
        if (l & 0xC0) /* 0x40 (extended label), 0x80: reserved */
            return -1;
        if (o + 1 + l > DNS_NAME_WIRE_MAX || pos + 1 + l > len)
            return -1;
        memcpy(wire + o, msg + pos, 1 + (size_t)l);
        o += 1 + (size_t)l;
        pos += 1 + (size_t)l;
        if (l == 0)
            break;
    }
    *off = jumps ? end : pos;
    return (int)o;
}

/* ---- guest queries ---- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static enum dns_parse_status fail(struct dns_query_msg *q, enum dns_parse_status st,
                                  const char *detail)
{
    q->detail = detail;
    return st;
}

/* OPT pseudo-record (RFC 6891 6.1.2): root owner, then type, class (UDP
 * size), TTL (extended rcode, version, DO, Z), options tiling the rdata. */
static int parse_opt(const uint8_t *pkt, size_t len, size_t *off, struct dns_query_msg *q)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    int wl = dnsmsg_read_name(pkt, len, off, wire);
    if (wl != 1 || *off + 10 > len)
        return -1;
    const uint8_t *p = pkt + *off;
    if (rd16(p) != DNS_T_OPT)
        return -1;
    uint16_t size = rd16(p + 2);
    q->edns = true;
    q->edns_udp_size = size < DNS_UDP_ANSWER_MIN ? DNS_UDP_ANSWER_MIN : size;
    q->edns_version = p[5];
    q->edns_do = (p[6] & 0x80) != 0;
    size_t rdlen = rd16(p + 8);
    *off += 10;
    if (*off + rdlen > len)
        return -1;
    size_t o = *off, end = *off + rdlen;
    while (o < end) {
        if (o + 4 > end || o + 4 + rd16(pkt + o + 2) > end)
            return -1;
        o += 4 + rd16(pkt + o + 2);
    }
    *off = end;
    return 0;
}

static enum dns_parse_status parse_question(const uint8_t *pkt, size_t len, size_t *off,
                                            struct dns_query_msg *q)
{
    int wl = dnsmsg_read_name(pkt, len, off, q->q.wire);
    if (wl < 0)
        return fail(q, DNS_PARSE_FORMERR, "bad question name (length, label type or pointer)");
    q->q.wire_len = (size_t)wl;
    if (*off + 4 > len)
        return fail(q, DNS_PARSE_FORMERR, "question truncated");
    q->q.qtype = rd16(pkt + *off);
    q->q.qclass = rd16(pkt + *off + 2);
    *off += 4;
    if (dnsname_wire_to_text(q->q.wire, q->q.wire_len, q->q.name, sizeof(q->q.name)) < 0)
        return fail(q, DNS_PARSE_FORMERR, "name has a label outside [a-z0-9_-] (use A-labels)");
    q->has_question = true;
    return DNS_PARSE_OK;
}

enum dns_parse_status dnsmsg_parse_query(const uint8_t *pkt, size_t len, struct dns_query_msg *q)
{
    memset(q, 0, sizeof(*q));
    if (len < DNS_HEADER_LEN)
        return fail(q, DNS_PARSE_DROP, "shorter than a DNS header");
    uint16_t flags = rd16(pkt + 2);
    q->id = rd16(pkt);
    q->opcode = (uint8_t)((flags >> 11) & 0xF);
    q->rd = (flags & 0x0100) != 0;
    q->cd = (flags & 0x0010) != 0;
    if (flags & 0x8000)
        return fail(q, DNS_PARSE_DROP, "QR set: a response, not a query");
    if (len > DNS_QUERY_MAX)
        return fail(q, DNS_PARSE_FORMERR, "query over 4096 bytes");
    if (q->opcode != 0)
        return fail(q, DNS_PARSE_NOTIMP, "opcode other than QUERY");
    if (rd16(pkt + 4) != 1)
        return fail(q, DNS_PARSE_FORMERR, "QDCOUNT is not 1");
    if (rd16(pkt + 6) != 0 || rd16(pkt + 8) != 0)
        return fail(q, DNS_PARSE_FORMERR, "answer or authority records in a query");
    uint16_t arcount = rd16(pkt + 10);
    if (arcount > 1)
        return fail(q, DNS_PARSE_FORMERR, "additional records other than one OPT");
    size_t off = DNS_HEADER_LEN;
    enum dns_parse_status st = parse_question(pkt, len, &off, q);
    if (st != DNS_PARSE_OK)
        return st;
    if (arcount == 1 && parse_opt(pkt, len, &off, q) < 0) {
        q->edns = false;
        return fail(q, DNS_PARSE_FORMERR, "additional record is not a well-formed OPT");
    }
    if (off != len)
        return fail(q, DNS_PARSE_FORMERR, "trailing bytes after the query");
    if (q->q.qclass != DNS_CLASS_IN)
        return fail(q, DNS_PARSE_NOTIMP, "class other than IN");
    if (q->edns && q->edns_version != 0)
        return fail(q, DNS_PARSE_BADVERS, "EDNS version other than 0");
    return DNS_PARSE_OK;
}
