/* Per-VM DNS state: cache-first lookups with in-flight sharing, the dial
 * API and thin wrappers over the per-VM objects (dnsvm.h). */
#include "dns/dnsvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* One upstream query and everyone waiting for it. */
struct inflight {
    struct dns_vm *vm;
    struct inflight *prev, *next; /* vm->inflight while joinable */
    struct dns_upquery *uq;
    struct dns_lookup *waiters;
    bool completing;
    uint16_t qtype;
    char qname[DNS_NAME_BUF];
};

struct dns_lookup {
    struct inflight *inf;
    struct dns_lookup *prev, *next;
    bool dial;
    dns_lookup_cb cb;
    dns_dial_cb dial_cb;
    void *arg;
};

struct dns_vm {
    struct dns_vm_config cfg;
    struct dns_cache *cache;
    struct dns_pinset *pins;
    struct dns_exfil *exfil;
    struct dns_resolver *resolver;
    struct dns_rate rate;
    struct inflight *inflight;
};

void dns_vm_config_default(struct dns_vm_config *c)
{
    memset(c, 0, sizeof(*c));
    dns_resolver_config_default(&c->resolver);
    dns_cache_config_default(&c->cache);
    dns_exfil_config_default(&c->exfil);
    c->pin_names = DNS_PINSET_NAMES;
    c->pin_addrs = DNS_PINSET_ADDRS;
    c->rate_per_s = 200;
    c->rate_burst = 500;
    c->max_outstanding = 256;
}

uint64_t dns_vm_now_ms(const struct dns_vm *vm)
{
    return vm->cfg.clock ? vm->cfg.clock(vm->cfg.clock_ctx) : time_mono_ms();
}

struct dns_vm *dns_vm_new(struct event_base *base, const struct dns_vm_config *cfg,
                          struct err **errp)
{
    struct dns_vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        err_set(errp, ENOMEM, "dns: out of memory");
        return NULL;
    }
    vm->cfg = *cfg;
    if (!(vm->cache = dns_cache_new(&cfg->cache, errp)) ||
        !(vm->pins = dns_pinset_new(cfg->pin_names, cfg->pin_addrs, errp)) ||
        !(vm->exfil = dns_exfil_new(&cfg->exfil, errp)) ||
        !(vm->resolver = dns_resolver_new(base, &cfg->resolver, errp))) {
        dns_vm_free(vm);
        return NULL;
    }
    dns_rate_init(&vm->rate, cfg->rate_per_s, cfg->rate_burst, cfg->max_outstanding,
                  dns_vm_now_ms(vm));
    return vm;
}

static void inflight_unlink(struct inflight *inf)
{
    struct dns_vm *vm = inf->vm;
    if (inf->prev)
        inf->prev->next = inf->next;
    else if (vm->inflight == inf)
        vm->inflight = inf->next;
    if (inf->next)
        inf->next->prev = inf->prev;
    inf->prev = inf->next = NULL;
}

static void waiter_unlink(struct dns_lookup *l)
{
    struct inflight *inf = l->inf;
    if (l->prev)
        l->prev->next = l->next;
    else
        inf->waiters = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

void dns_vm_free(struct dns_vm *vm)
{
    if (!vm)
        return;
    while (vm->inflight) {
        struct inflight *inf = vm->inflight;
        inflight_unlink(inf);
        dns_upquery_cancel(inf->uq);
        while (inf->waiters) {
            struct dns_lookup *l = inf->waiters;
            waiter_unlink(l);
            free(l);
        }
        free(inf);
    }
    dns_resolver_free(vm->resolver);
    dns_exfil_free(vm->exfil);
    dns_pinset_free(vm->pins);
    dns_cache_free(vm->cache);
    free(vm);
}

struct dns_cache *dns_vm_cache(struct dns_vm *vm)
{
    return vm->cache;
}

struct dns_pinset *dns_vm_pinset(struct dns_vm *vm)
{
    return vm->pins;
}

struct dns_exfil *dns_vm_exfil(struct dns_vm *vm)
{
    return vm->exfil;
}

struct dns_resolver *dns_vm_resolver(struct dns_vm *vm)
{
    return vm->resolver;
}

const struct dns_exfil_config *dns_vm_exfil_config(const struct dns_vm *vm)
{
    return &vm->cfg.exfil;
}

enum dns_rate_verdict dns_vm_admit(struct dns_vm *vm)
{
    return dns_rate_admit(&vm->rate, dns_vm_now_ms(vm));
}

void dns_vm_done(struct dns_vm *vm)
{
    dns_rate_done(&vm->rate);
}

unsigned dns_vm_outstanding(const struct dns_vm *vm)
{
    return vm->rate.outstanding;
}

int dns_vm_exfil_account(struct dns_vm *vm, const char *qname, const struct dns_exfil_class *cls,
                         struct dns_exfil_verdict *v, struct err **errp)
{
    return dns_exfil_account(vm->exfil, qname, cls, dns_vm_now_ms(vm), v, errp);
}

int dns_vm_pin_answer(struct dns_vm *vm, const char *qname, const struct dns_result *res,
                      struct err **errp)
{
    uint32_t addrs[DNS_MAX_ANSWERS];
    size_t n = dns_result_ipv4(res, addrs, ARRAY_SIZE(addrs));
    return dns_pinset_add(vm->pins, qname, addrs, n, errp);
}

/* ---- lookups ---- */

static void dial_info_from(struct dns_dial_info *d, const struct dns_lookup_info *li)
{
    memset(d, 0, sizeof(*d));
    d->ok = li->ok;
    d->cache_hit = li->cache_hit;
    d->upstream_ms = li->upstream_ms;
    d->detail = li->detail;
    if (li->ok) {
        d->rcode = li->result->rcode;
        d->n = dns_result_ipv4(li->result, d->addrs, ARRAY_SIZE(d->addrs));
    }
}

static void deliver(struct dns_lookup *l, const struct dns_lookup_info *li)
{
    if (l->dial) {
        struct dns_dial_info d;
        dial_info_from(&d, li);
        l->dial_cb(l->arg, &d);
    } else {
        l->cb(l->arg, li);
    }
}

static void upstream_done(void *arg, const struct dns_resolve_info *ri)
{
    struct inflight *inf = arg;
    struct dns_vm *vm = inf->vm;
    inf->uq = NULL;
    inf->completing = true;
    inflight_unlink(inf); /* new lookups start afresh (or hit the cache) */
    if (ri->ok)
        (void)dns_cache_put(vm->cache, inf->qname, inf->qtype, ri->result, dns_vm_now_ms(vm),
                            NULL);
    struct dns_lookup_info li = {.ok = ri->ok, .result = ri->result,
                                 .upstream_ms = ri->elapsed_ms, .detail = ri->detail};
    /* Pop one at a time: a callback may cancel other waiters. */
    struct dns_lookup *l;
    while ((l = inf->waiters)) {
        waiter_unlink(l);
        deliver(l, &li);
        free(l);
    }
    free(inf);
}

static struct inflight *inflight_find(struct dns_vm *vm, const char *qname, uint16_t qtype)
{
    for (struct inflight *inf = vm->inflight; inf; inf = inf->next)
        if (inf->qtype == qtype && strcmp(inf->qname, qname) == 0)
            return inf;
    return NULL;
}

static struct inflight *inflight_start(struct dns_vm *vm, const char *qname, uint16_t qtype,
                                       struct err **errp)
{
    struct inflight *inf = calloc(1, sizeof(*inf));
    if (!inf) {
        err_set(errp, ENOMEM, "dns: out of memory");
        return NULL;
    }
    inf->vm = vm;
    inf->qtype = qtype;
    if (str_copy(inf->qname, sizeof(inf->qname), qname) < 0) {
        free(inf);
        err_set(errp, EINVAL, "dns: name too long");
        return NULL;
    }
    inf->uq = dns_resolver_query(vm->resolver, qname, qtype, upstream_done, inf, errp);
    if (!inf->uq) {
        free(inf);
        return NULL;
    }
    inf->next = vm->inflight;
    if (vm->inflight)
        vm->inflight->prev = inf;
    vm->inflight = inf;
    return inf;
}

static struct dns_lookup *join(struct dns_vm *vm, const char *qname, uint16_t qtype,
                               struct err **errp)
{
    struct inflight *inf = inflight_find(vm, qname, qtype);
    if (!inf && !(inf = inflight_start(vm, qname, qtype, errp)))
        return NULL;
    struct dns_lookup *l = calloc(1, sizeof(*l));
    if (!l) {
        if (!inf->waiters) {
            inflight_unlink(inf);
            dns_upquery_cancel(inf->uq);
            free(inf);
        }
        err_set(errp, ENOMEM, "dns: out of memory");
        return NULL;
    }
    l->inf = inf;
    l->next = inf->waiters;
    if (inf->waiters)
        inf->waiters->prev = l;
    inf->waiters = l;
    return l;
}

void dns_lookup_cancel(struct dns_lookup *l)
{
    if (!l)
        return;
    struct inflight *inf = l->inf;
    waiter_unlink(l);
    free(l);
    if (!inf->waiters && !inf->completing) {
        inflight_unlink(inf);
        dns_upquery_cancel(inf->uq);
        free(inf);
    }
}

int dns_vm_lookup(struct dns_vm *vm, const char *qname, uint16_t qtype, struct dns_result *hit,
                  dns_lookup_cb cb, void *arg, struct dns_lookup **handle, struct err **errp)
{
    *handle = NULL;
    if (dns_type_action(qtype) != DNS_TYPE_FORWARD)
        return err_set(errp, EINVAL, "dns: type %u is not resolved upstream", qtype);
    int rc = dns_cache_get(vm->cache, qname, qtype, dns_vm_now_ms(vm), hit, errp);
    if (rc != 0)
        return rc;
    struct dns_lookup *l = join(vm, qname, qtype, errp);
    if (!l)
        return -1;
    l->cb = cb;
    l->arg = arg;
    *handle = l;
    return 0;
}

int dns_vm_resolve_ipv4(struct dns_vm *vm, const char *host, struct dns_dial_info *hit,
                        dns_dial_cb cb, void *arg, struct dns_lookup **handle,
                        struct err **errp)
{
    char name[DNS_NAME_BUF];
    uint32_t lit;
    *handle = NULL;
    memset(hit, 0, sizeof(*hit));
    if (dns_ipv4_parse(host, &lit) == 0) {
        *hit = (struct dns_dial_info){.ok = true, .n = 1, .addrs = {lit}, .cache_hit = true};
        return 1;
    }
    if (dnsname_normalise(host, name, sizeof(name)) < 0)
        return err_status(errp, 400, "dns: '%s' is not a host name", host);
    struct dns_result res = {0};
    int rc = dns_cache_get(vm->cache, name, DNS_T_A, dns_vm_now_ms(vm), &res, errp);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        struct dns_lookup_info li = {.ok = true, .result = &res, .cache_hit = true};
        dial_info_from(hit, &li);
        dns_result_clear(&res);
        return 1;
    }
    struct dns_lookup *l = join(vm, name, DNS_T_A, errp);
    if (!l)
        return -1;
    l->dial = true;
    l->dial_cb = cb;
    l->arg = arg;
    *handle = l;
    return 0;
}
