/* Registrable domains from the Public Suffix List (network.md section 4
 * step 6). The list is compiled into the library at build time from
 * Debian's publicsuffix package (psl_gen.py -> psl_data.c): nothing is read
 * at run time. ICANN and private sections both count (github.io is a
 * suffix, so user.github.io is registrable). Names are normalised text
 * (dnsnorm.h); rule matching follows publicsuffix.org's algorithm with the
 * implicit "*" rule for unknown TLDs. */
#ifndef CAPSEM_DNS_PSL_H
#define CAPSEM_DNS_PSL_H

#include <stddef.h>
#include <stdint.h>

#define DNS_PSL_NORMAL 1    /* "<suffix>" is a rule */
#define DNS_PSL_WILDCARD 2  /* "*.<suffix>" is a rule */
#define DNS_PSL_EXCEPTION 4 /* "!<suffix>" is a rule */

struct dns_psl_rule {
    const char *suffix; /* A-labels, lowercase */
    uint8_t flags;
};

/* Generated table, sorted by strcmp(). */
extern const struct dns_psl_rule dns_psl_rules[];
extern const size_t dns_psl_rules_count;
extern const char dns_psl_source_sha256[];

/* Offset in name where its public suffix starts ("co.uk" in "a.b.co.uk"),
 * or -1 for the root. The whole name can be a suffix (offset 0). */
int dns_psl_suffix_offset(const char *name);

/* Offset in name where its registrable domain (public suffix plus one
 * label) starts: "b.co.uk" in "a.b.co.uk" -> 2. -1 when the name is a
 * public suffix itself (or the root): it has no registrable domain. */
int dns_psl_registrable_offset(const char *name);

#endif
