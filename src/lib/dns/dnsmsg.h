/* DNS wire format (RFC 1035, EDNS RFC 6891, Extended DNS Errors RFC 8914):
 * a strict parser for the guest's queries, the builder of the answers the
 * host sends back (never the upstream's bytes), and the upstream side (query
 * builder, response parser). network.md section 4 steps 1, 2, 5 and 8.
 *
 * Everything here is pure: no I/O, no clock, no randomness. Parsers read
 * caller buffers and never keep pointers into them. The only allocation is
 * the record data of a struct dns_result (see dns_result_clear()).
 *
 * Names inside messages may be compressed; the reader follows pointers only
 * backwards (strictly before the label that holds them), at most
 * DNSMSG_MAX_JUMPS times, and never past the message: loops and
 * out-of-bounds pointers are errors, not hangs. */
#ifndef CAPSEM_DNS_DNSMSG_H
#define CAPSEM_DNS_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dns/dnsnorm.h"

/* ---- limits (network.md section 14) ---- */
#define DNS_HEADER_LEN 12
#define DNS_QUERY_MAX 4096        /* guest query; beyond -> FORMERR */
#define DNS_UDP_ANSWER_MIN 512    /* UDP answer without EDNS; beyond -> TC */
#define DNS_EDNS_ANSWER_MAX 1232  /* cap on the guest's EDNS UDP size */
#define DNS_TCP_ANSWER_MAX 16384  /* TCP answer; beyond -> answers trimmed */
#define DNS_UPSTREAM_MAX 65535    /* upstream answer; beyond -> SERVFAIL */
#define DNS_MAX_ANSWERS 16        /* records in an answer (CNAME chain included) */
#define DNS_MAX_CHAIN 8           /* CNAME hops followed in an upstream answer */
#define DNSMSG_MAX_JUMPS 32       /* compression pointers followed per name */
#define DNS_RESULT_MAX_RDATA 16384 /* record data kept per result (fits a TCP answer) */

/* ---- types, classes, codes ---- */
enum {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_CNAME = 5,
    DNS_T_SOA = 6,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_SRV = 33,
    DNS_T_OPT = 41,
    DNS_T_SVCB = 64,
    DNS_T_HTTPS = 65,
    DNS_T_TKEY = 249,
    DNS_T_TSIG = 250,
    DNS_T_IXFR = 251,
    DNS_T_AXFR = 252,
    DNS_T_MAILB = 253,
    DNS_T_MAILA = 254,
    DNS_T_ANY = 255,
    DNS_T_CAA = 257,
};

#define DNS_CLASS_IN 1

enum {
    DNS_RCODE_NOERROR = 0,
    DNS_RCODE_FORMERR = 1,
    DNS_RCODE_SERVFAIL = 2,
    DNS_RCODE_NXDOMAIN = 3,
    DNS_RCODE_NOTIMP = 4,
    DNS_RCODE_REFUSED = 5,
    DNS_RCODE_BADVERS = 16, /* extended: needs EDNS */
};

#define DNS_EDE_BLOCKED 15 /* RFC 8914 "Blocked" */
#define DNS_EDE_TEXT_MAX 300

/* Mnemonic of a type ("A", "HTTPS"...). Unknown types are written as
 * "TYPE<n>" into buf (cap >= DNS_TYPE_STR_MAX) and buf is returned. */
#define DNS_TYPE_STR_MAX 12
const char *dns_type_str(uint16_t type, char *buf, size_t cap);
/* Reverse of dns_type_str(), "TYPE<n>" included, case-insensitive. */
int dns_type_parse(const char *s, uint16_t *out);
/* "NOERROR", "FORMERR"...; "RCODE<n>" is not produced: unknown -> "RCODE". */
const char *dns_rcode_str(unsigned rcode);

/* What the host does with a question type (step 5). */
enum dns_type_action {
    DNS_TYPE_FORWARD, /* A, CNAME, TXT, MX, SRV, CAA: resolve upstream */
    DNS_TYPE_NODATA,  /* AAAA, HTTPS, SVCB and every other data type: NOERROR, no data */
    DNS_TYPE_NOTIMP,  /* ANY and meta types (AXFR, IXFR, MAILA, MAILB, OPT, TKEY, TSIG) */
};
enum dns_type_action dns_type_action(uint16_t qtype);

/* ---- guest queries ---- */

struct dns_question {
    uint8_t wire[DNS_NAME_WIRE_MAX]; /* name as received (case kept, uncompressed) */
    size_t wire_len;
    char name[DNS_NAME_BUF]; /* normalised text (dnsnorm.h) */
    uint16_t qtype;
    uint16_t qclass;
};

struct dns_query_msg {
    uint16_t id;
    uint8_t opcode;
    bool rd, cd;
    bool has_question; /* the question parsed (may be echoed in an error answer) */
    struct dns_question q;
    bool edns;              /* an OPT record was present */
    uint16_t edns_udp_size; /* as sent, 512 when smaller */
    uint8_t edns_version;
    bool edns_do;
    const char *detail; /* static text: why parsing failed, NULL when OK */
};

enum dns_parse_status {
    DNS_PARSE_OK = 0,
    DNS_PARSE_DROP,    /* undecodable header or a response: no answer (reason `malformed`) */
    DNS_PARSE_FORMERR, /* answer FORMERR (reason `malformed`) */
    DNS_PARSE_NOTIMP,  /* opcode other than QUERY, class other than IN */
    DNS_PARSE_BADVERS, /* EDNS version other than 0: answer BADVERS */
};

/* Parses one guest query (len is the whole message: one UDP payload, or one
 * TCP message without its length prefix). Rules: header of 12 bytes (else
 * DROP); QR clear (else DROP); len <= 4096, QDCOUNT 1, ANCOUNT and NSCOUNT 0,
 * at most one additional record which must be a well-formed OPT, no trailing
 * bytes, a name whose labels normalise (else FORMERR); opcode QUERY and
 * class IN (else NOTIMP). Fills *out as far as it got (id and opcode always
 * when the header decoded). */
enum dns_parse_status dnsmsg_parse_query(const uint8_t *pkt, size_t len,
                                         struct dns_query_msg *out);

/* Reads a possibly compressed name at *off into uncompressed wire form
 * (wire >= DNS_NAME_WIRE_MAX bytes); advances *off past the name as it is
 * stored at *off. Returns the wire length or -1. */
int dnsmsg_read_name(const uint8_t *msg, size_t len, size_t *off, uint8_t *wire);

/* ---- records and results ---- */

struct dns_rr {
    uint16_t type;
    uint32_t ttl;
    uint8_t owner_len; /* wire length of the owner name */
    uint16_t rdlen;
    uint8_t *data; /* owned: owner wire name, then rdata (names uncompressed) */
};

static inline const uint8_t *dns_rr_owner(const struct dns_rr *rr)
{
    return rr->data;
}
static inline const uint8_t *dns_rr_rdata(const struct dns_rr *rr)
{
    return rr->data + rr->owner_len;
}

/* An answer as the host keeps it: rcode NOERROR or NXDOMAIN, then the CNAME
 * chain from the question name followed by the records of the asked type at
 * its end, in upstream order, at most DNS_MAX_ANSWERS records and
 * DNS_RESULT_MAX_RDATA bytes of names + data. Zero-initialise before use;
 * dns_result_clear() frees the record data and resets it. */
struct dns_result {
    uint8_t rcode;
    uint8_t n;
    struct dns_rr rr[DNS_MAX_ANSWERS];
};

void dns_result_clear(struct dns_result *r);
/* Deep copy into dst (which is cleared first). */
int dns_result_copy(struct dns_result *dst, const struct dns_result *src, struct err **errp);
/* Appends a record (owner wire name + rdata copied). -1 when full or out of memory. */
int dns_result_add(struct dns_result *r, uint16_t type, uint32_t ttl, const uint8_t *owner,
                   size_t owner_len, const uint8_t *rdata, size_t rdlen);
/* Removes record i, keeping the order. */
void dns_result_remove(struct dns_result *r, size_t i);
/* Smallest TTL among the records (0 when there are none). */
uint32_t dns_result_min_ttl(const struct dns_result *r);
/* Sets every record's TTL. */
void dns_result_set_ttl(struct dns_result *r, uint32_t ttl);
/* A records' addresses in host byte order (as agent_proto's T_DST_IP), in
 * order, at most cap. Returns the count. */
size_t dns_result_ipv4(const struct dns_result *r, uint32_t *out, size_t cap);
/* NXDOMAIN, or NOERROR without a record of the asked type at the chain end. */
bool dns_result_is_negative(const struct dns_result *r, uint16_t qtype);

/* ---- answers built by the host (step 8) ---- */

struct dns_reply {
    const struct dns_query_msg *query; /* borrowed: id, opcode, RD, CD, question, EDNS */
    unsigned rcode;                    /* DNS_RCODE_*, BADVERS included */
    const struct dns_result *answers;  /* borrowed; NULL or empty: no answer records */
    bool ede;                          /* add an Extended DNS Error (only when query->edns) */
    uint16_t ede_code;
    const char *ede_text; /* UTF-8, cut at DNS_EDE_TEXT_MAX bytes; may be NULL */
    bool tcp;             /* TCP: up to 16 KiB, trimmed; UDP: 512 B or EDNS size, else TC */
};

/* Builds the answer into out (cap >= DNS_TCP_ANSWER_MAX is always enough).
 * QR, RA set; RD and CD copied; the question echoed as received (omitted
 * when the query's question did not parse). UDP over the limit: answers are
 * dropped and TC set. TCP over 16 KiB: trailing answers are dropped.
 * Returns the length, or -1 if cap is too small for the minimal message. */
int dnsmsg_build_reply(const struct dns_reply *r, uint8_t *out, size_t cap,
                       struct err **errp);

/* Size limit for a UDP answer to this query (512, or the EDNS size capped
 * at 1232). */
size_t dnsmsg_udp_limit(const struct dns_query_msg *q);

/* ---- upstream side ---- */

/* Builds a recursive query (RD set) for qwire/qtype with id; when edns_size
 * is non-zero an OPT record advertising it is added. Returns the length or
 * -1 when cap is too small. */
int dnsmsg_build_query(uint16_t id, const uint8_t *qwire, size_t qwire_len, uint16_t qtype,
                       uint16_t edns_size, uint8_t *out, size_t cap);

enum dns_upstream_status {
    DNS_UP_OK = 0,    /* NOERROR or NXDOMAIN: *out filled */
    DNS_UP_MISMATCH,  /* not an answer to this query (id, QR, question): ignore it */
    DNS_UP_TRUNCATED, /* TC set: ask again over TCP */
    DNS_UP_RCODE,     /* another rcode (SERVFAIL, REFUSED...) in *rcode */
    DNS_UP_MALFORMED, /* the answer for this query does not parse */
};

/* Parses an upstream answer to (id, qwire, qtype); qtype must be one of the
 * forwarded types (dns_type_action() == DNS_TYPE_FORWARD). With exact_case
 * the question must match byte for byte (0x20 check), else ASCII
 * case-insensitively. Records whose owner is not on the CNAME chain, whose
 * type is neither CNAME nor qtype, or whose class is not IN are skipped;
 * kept records have their data validated and names decompressed. *out must
 * be empty; it is left empty unless DNS_UP_OK. */
enum dns_upstream_status dnsmsg_parse_response(const uint8_t *pkt, size_t len, uint16_t id,
                                               const uint8_t *qwire, size_t qwire_len,
                                               uint16_t qtype, bool exact_case,
                                               struct dns_result *out, unsigned *rcode);

#endif
