/* Per-VM pin set (pinset.h). Two tables over the same entries: names in
 * recency order, and an address index whose nodes are embedded in the name
 * entries (each address is indexed by at most one name: the latest). */
#include "dns/pinset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dns/dnslru.h"
#include "dns/dnsnorm.h"

struct pin_name;

struct pin_addr {
    struct dns_lru_node node; /* in by_ip while indexed */
    uint32_t ip;
    bool indexed;
    struct pin_name *owner;
};

struct pin_name {
    struct dns_lru_node node; /* in by_name */
    size_t n;
    struct pin_addr addr[DNS_PINSET_ADDRS];
    size_t name_len;
    char name[DNS_NAME_BUF];
};

struct dns_pinset {
    size_t max_names, max_addrs;
    struct dns_lru by_name;
    struct dns_lru by_ip;
};

struct dns_pinset *dns_pinset_new(size_t max_names, size_t max_addrs, struct err **errp)
{
    struct dns_pinset *ps = calloc(1, sizeof(*ps));
    if (!ps) {
        err_set(errp, ENOMEM, "dns pin set: out of memory");
        return NULL;
    }
    ps->max_names = max_names ? max_names : 1;
    ps->max_addrs = MIN(max_addrs ? max_addrs : 1, (size_t)DNS_PINSET_ADDRS);
    if (dns_lru_init(&ps->by_name, ps->max_names, errp) < 0 ||
        dns_lru_init(&ps->by_ip, ps->max_names * ps->max_addrs, errp) < 0) {
        dns_lru_fini(&ps->by_name);
        free(ps);
        return NULL;
    }
    return ps;
}

static void unindex(struct dns_pinset *ps, struct pin_addr *a)
{
    if (!a->indexed)
        return;
    dns_lru_remove(&ps->by_ip, &a->node);
    a->indexed = false;
}

static void name_drop(struct dns_pinset *ps, struct pin_name *e)
{
    for (size_t i = 0; i < e->n; i++)
        unindex(ps, &e->addr[i]);
    dns_lru_remove(&ps->by_name, &e->node);
    free(e);
}

void dns_pinset_free(struct dns_pinset *ps)
{
    if (!ps)
        return;
    struct dns_lru_node *n;
    while ((n = dns_lru_oldest(&ps->by_name)))
        name_drop(ps, dns_container_of(n, struct pin_name, node));
    dns_lru_fini(&ps->by_name);
    dns_lru_fini(&ps->by_ip);
    free(ps);
}

static struct pin_name *find_name(const struct dns_pinset *ps, const char *name, size_t len,
                                  uint64_t hash)
{
    for (struct dns_lru_node *n = dns_lru_bucket(&ps->by_name, hash); n; n = n->hnext) {
        struct pin_name *e = dns_container_of(n, struct pin_name, node);
        if (n->hash == hash && e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

static struct pin_addr *find_addr(const struct dns_pinset *ps, uint32_t ip)
{
    uint64_t hash = dns_lru_hash(&ps->by_ip, &ip, sizeof(ip));
    for (struct dns_lru_node *n = dns_lru_bucket(&ps->by_ip, hash); n; n = n->hnext) {
        struct pin_addr *a = dns_container_of(n, struct pin_addr, node);
        if (n->hash == hash && a->ip == ip)
            return a;
    }
    return NULL;
}

static void set_addrs(struct dns_pinset *ps, struct pin_name *e, const uint32_t *addrs, size_t n)
{
    for (size_t i = 0; i < e->n; i++)
        unindex(ps, &e->addr[i]);
    e->n = 0;
    for (size_t i = 0; i < n && e->n < ps->max_addrs; i++) {
        bool dup = false;
        for (size_t j = 0; j < e->n && !dup; j++)
            dup = e->addr[j].ip == addrs[i];
        if (dup)
            continue;
        struct pin_addr *prev = find_addr(ps, addrs[i]);
        if (prev)
            unindex(ps, prev); /* the address now belongs to this name */
        struct pin_addr *a = &e->addr[e->n++];
        a->ip = addrs[i];
        a->owner = e;
        a->indexed = true;
        dns_lru_insert(&ps->by_ip, &a->node, dns_lru_hash(&ps->by_ip, &a->ip, sizeof(a->ip)));
    }
}

int dns_pinset_add(struct dns_pinset *ps, const char *name, const uint32_t *addrs, size_t n,
                   struct err **errp)
{
    size_t len = strlen(name);
    if (n == 0)
        return 0;
    if (len > DNS_NAME_TEXT_MAX)
        return err_set(errp, EINVAL, "dns pin set: name too long");
    uint64_t hash = dns_lru_hash(&ps->by_name, name, len);
    struct pin_name *e = find_name(ps, name, len, hash);
    if (e) {
        dns_lru_touch(&ps->by_name, &e->node);
    } else {
        e = calloc(1, sizeof(*e));
        if (!e)
            return err_set(errp, ENOMEM, "dns pin set: out of memory");
        memcpy(e->name, name, len + 1);
        e->name_len = len;
        if (ps->by_name.count >= ps->max_names)
            name_drop(ps, dns_container_of(dns_lru_oldest(&ps->by_name), struct pin_name, node));
        dns_lru_insert(&ps->by_name, &e->node, hash);
    }
    set_addrs(ps, e, addrs, n);
    return 0;
}

bool dns_pinset_lookup(struct dns_pinset *ps, uint32_t addr, char *out, size_t cap)
{
    struct pin_addr *a = find_addr(ps, addr);
    if (!a || str_copy(out, cap, a->owner->name) < 0)
        return false;
    dns_lru_touch(&ps->by_name, &a->owner->node);
    return true;
}

size_t dns_pinset_count(const struct dns_pinset *ps)
{
    return ps->by_name.count;
}
