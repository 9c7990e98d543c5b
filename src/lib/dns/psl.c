/* Public Suffix List lookups over the generated table (psl.h). */
#include "dns/psl.h"

#include <string.h>

static uint8_t rule_flags(const char *suffix)
{
    size_t lo = 0, hi = dns_psl_rules_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(dns_psl_rules[mid].suffix, suffix);
        if (c == 0)
            return dns_psl_rules[mid].flags;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Label start offsets, rightmost first: starts[0] is the last label. */
static size_t label_starts(const char *name, size_t *starts, size_t cap)
{
    size_t n = 0, len = strlen(name);
    for (size_t i = len; i > 0 && n < cap; i--)
        if (name[i - 1] == '.')
            starts[n++] = i;
    if (n < cap)
        starts[n++] = 0;
    return n;
}

/* Number of labels in the prevailing rule's public suffix. */
static size_t suffix_labels(const char *name, const size_t *starts, size_t n)
{
    size_t best = 1; /* implicit "*" rule */
    for (size_t k = 1; k <= n; k++) {
        uint8_t f = rule_flags(name + starts[k - 1]);
        if (f & DNS_PSL_EXCEPTION)
            return k > 1 ? k - 1 : 1; /* an exception prevails over everything */
        if ((f & DNS_PSL_NORMAL) && k > best)
            best = k;
        if ((f & DNS_PSL_WILDCARD) && k < n && k + 1 > best)
            best = k + 1;
    }
    return best;
}

int dns_psl_suffix_offset(const char *name)
{
    size_t starts[128];
    if (!name[0])
        return -1;
    size_t n = label_starts(name, starts, 128);
    size_t k = suffix_labels(name, starts, n);
    if (k > n)
        k = n;
    return (int)starts[k - 1];
}

int dns_psl_registrable_offset(const char *name)
{
    size_t starts[128];
    if (!name[0])
        return -1;
    size_t n = label_starts(name, starts, 128);
    size_t k = suffix_labels(name, starts, n);
    if (k >= n)
        return -1;
    return (int)starts[k];
}
