/* DNS exfiltration guard (network.md section 4 step 6), for names that
 * would be forwarded, on the guest DNS path and on host-side dial lookups.
 *
 * Two parts:
 *  - dns_exfil_classify(): pure. Splits the qname into subdomain part and
 *    registrable domain (Public Suffix List, psl.h) and flags it suspicious:
 *    a label >= 48 chars, qname >= 180 chars, >= 6 subdomain labels, or a
 *    subdomain part of >= 24 chars (dots not counted) whose Shannon entropy
 *    is >= 3.5 bits/char. The result also feeds the policy field
 *    `dns.suspicious`, so callers classify before policy.
 *  - dns_exfil_account(): per (VM, registrable domain) state. Suspicious
 *    queries draw from a token bucket (burst 20, 10/min). Distinct
 *    subdomains are counted over a sliding 10 min window; a new one past
 *    300 is refused and so is every new one for 10 min from that trip
 *    (subdomains already seen keep resolving). A refusal is a trip: answer
 *    NXDOMAIN `dns_exfil_guard`; `first_trip` is set once per domain per
 *    10 min so the caller writes one policy_decisions row.
 * Tracked domains are capped (LRU); each tracks at most
 * unique_subdomains_per_10min subdomain hashes. Time is passed in (ms). */
#ifndef CAPSEM_DNS_EXFIL_H
#define CAPSEM_DNS_EXFIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dns/dnsnorm.h"

/* Keys of policy `dns.exfil_guard` (names as in network.md 8.5). */
struct dns_exfil_config {
    unsigned max_label;                   /* 48 */
    unsigned max_name;                    /* 180 */
    unsigned max_sub_labels;              /* 6 */
    unsigned entropy_min_len;             /* 24 */
    double entropy_bits;                  /* 3.5 */
    unsigned suspicious_burst;            /* 20 */
    double suspicious_per_min;            /* 10 */
    unsigned unique_subdomains_per_10min; /* 300 */
    uint64_t window_ms;                   /* 600000 (not a policy key) */
    size_t max_domains;                   /* 1024 tracked domains (not a policy key) */
};

void dns_exfil_config_default(struct dns_exfil_config *c);
/* Sets one `dns.exfil_guard` key from a number (integers for the unsigned
 * keys); -1 with a message for an unknown key or an out-of-range value. */
int dns_exfil_config_set(struct dns_exfil_config *c, const char *key, double value,
                         struct err **errp);

struct dns_exfil_class {
    bool suspicious;
    const char *why;     /* static: "long_label", "long_name", "many_labels", "high_entropy" */
    bool has_regdom;     /* false: the qname is itself a public suffix */
    size_t regdom_off;   /* where the registrable domain starts in qname */
    size_t sub_len;      /* subdomain part length, dots included, without the joining dot */
    unsigned sub_labels; /* labels in the subdomain part */
    double entropy;      /* bits/char over the subdomain part without dots */
};

/* qname is normalised text (dnsnorm.h). */
void dns_exfil_classify(const struct dns_exfil_config *c, const char *qname,
                        struct dns_exfil_class *out);

/* Shannon entropy in bits per byte of s[0..n) skipping '.'; 0 for none. */
double dns_entropy_bits(const char *s, size_t n);

struct dns_exfil;

struct dns_exfil *dns_exfil_new(const struct dns_exfil_config *c, struct err **errp);
void dns_exfil_free(struct dns_exfil *g);

struct dns_exfil_verdict {
    bool tripped;
    bool first_trip;  /* first trip for this domain in its 10 min: write one row */
    const char *why;  /* static: "suspicious_rate" or "unique_subdomains" when tripped */
    char domain[DNS_NAME_BUF]; /* the registrable domain (or the qname when it has none) */
};

/* Accounts one query for qname classified by cls (from dns_exfil_classify()
 * on the same config and name). 0 with *v filled; -1 out of memory (fail
 * closed: answer SERVFAIL). */
int dns_exfil_account(struct dns_exfil *g, const char *qname, const struct dns_exfil_class *cls,
                      uint64_t now_ms, struct dns_exfil_verdict *v, struct err **errp);

size_t dns_exfil_domains(const struct dns_exfil *g);

#endif
