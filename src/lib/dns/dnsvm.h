/* Per-VM DNS state and the composable steps of network.md section 4, for
 * capsem-process. One struct dns_vm per VM, owned by the VM's event loop.
 *
 * The guest query path, in order (policy is src/lib/policy's):
 *
 *   st = dnsmsg_parse_query(pkt, len, &q);               step 1
 *     DROP -> no answer, row reason `malformed`; FORMERR/NOTIMP/BADVERS ->
 *     dnsmsg_build_reply() with that rcode.
 *   q.q.name is the normalised qname; dns_type_str() the qtype.  step 2
 *   v = dns_vm_admit(vm)  (REFUSED unless DNS_RATE_OK; then dns_vm_done()
 *     once answered);  dns_qname_has_placeholder() -> NXDOMAIN.   step 3
 *   dns_exfil_classify(dns_vm_exfil_config(vm), qname, &cls)
 *     -> cls.suspicious is the policy field dns.suspicious.
 *   policy (deny -> NXDOMAIN + EDE 15 "capsem: <rule>: <reason>").  step 4
 *   dns_type_action(qtype): NOTIMP / NODATA answered here.        step 5
 *   dns_vm_exfil_account(vm, qname, &cls, &ev): tripped -> NXDOMAIN
 *     `dns_exfil_guard` (+ one policy_decisions row if ev.first_trip). step 6
 *   dns_vm_lookup(): a hit now, or a callback later; !ok -> SERVFAIL. step 7
 *   dns_result_filter_private() (DNS_FILTER_EMPTY -> NXDOMAIN
 *     `private_address`), dnsmsg_build_reply(), dns_vm_pin_answer().  step 8
 *
 * The HTTPS proxy's dial (section 6 step 9) runs dns_exfil_classify() +
 * dns_vm_exfil_account() and then dns_vm_resolve_ipv4(), which shares the
 * cache and the resolver with the guest path. */
#ifndef CAPSEM_DNS_DNSVM_H
#define CAPSEM_DNS_DNSVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dns/cache.h"
#include "dns/dnsaddr.h"
#include "dns/dnsmsg.h"
#include "dns/exfil.h"
#include "dns/pinset.h"
#include "dns/ratelimit.h"
#include "dns/resolver.h"

struct event_base;

struct dns_vm_config {
    struct dns_resolver_config resolver; /* servers: dns_upstreams_configure() */
    struct dns_cache_config cache;
    struct dns_exfil_config exfil;
    size_t pin_names; /* 4096 */
    size_t pin_addrs; /* 8 */
    double rate_per_s; /* 200 */
    double rate_burst; /* 500 */
    unsigned max_outstanding; /* 256 */
    /* Monotonic milliseconds; NULL = time_mono_ms(). Tests inject a clock. */
    uint64_t (*clock)(void *ctx);
    void *clock_ctx;
};

/* network.md defaults; resolver without servers. */
void dns_vm_config_default(struct dns_vm_config *c);

struct dns_vm;
struct dns_lookup;

struct dns_vm *dns_vm_new(struct event_base *base, const struct dns_vm_config *cfg,
                          struct err **errp);
/* Cancels pending lookups without calling their callbacks, then frees. */
void dns_vm_free(struct dns_vm *vm);

uint64_t dns_vm_now_ms(const struct dns_vm *vm);
struct dns_cache *dns_vm_cache(struct dns_vm *vm);
struct dns_pinset *dns_vm_pinset(struct dns_vm *vm);
struct dns_exfil *dns_vm_exfil(struct dns_vm *vm);
struct dns_resolver *dns_vm_resolver(struct dns_vm *vm);
const struct dns_exfil_config *dns_vm_exfil_config(const struct dns_vm *vm);

/* Step 3: admission of one guest query (rate and outstanding caps). */
enum dns_rate_verdict dns_vm_admit(struct dns_vm *vm);
/* The admitted query was answered (or dropped). */
void dns_vm_done(struct dns_vm *vm);
unsigned dns_vm_outstanding(const struct dns_vm *vm);

/* Step 6 at the VM's clock (see dns_exfil_account()). */
int dns_vm_exfil_account(struct dns_vm *vm, const char *qname, const struct dns_exfil_class *cls,
                         struct dns_exfil_verdict *v, struct err **errp);

struct dns_lookup_info {
    bool ok;                         /* false: answer SERVFAIL */
    const struct dns_result *result; /* ok only; borrowed until the callback returns */
    bool cache_hit;
    uint32_t upstream_ms;
    const char *detail; /* static text when !ok */
};
typedef void (*dns_lookup_cb)(void *arg, const struct dns_lookup_info *info);

/* Step 7: (qname, qtype) through the cache, else upstream (identical lookups
 * in flight share one upstream query; answers are cached). Returns 1 on a
 * cache hit with *hit filled (caller clears it, TTLs = seconds left), 0
 * when pending (*handle set; cb runs later from the loop, exactly once
 * unless dns_lookup_cancel()), -1 on error. qtype must be forwarded. */
int dns_vm_lookup(struct dns_vm *vm, const char *qname, uint16_t qtype, struct dns_result *hit,
                  dns_lookup_cb cb, void *arg, struct dns_lookup **handle, struct err **errp);
/* Drops a pending lookup (its callback is not called). Not from inside its
 * own callback. */
void dns_lookup_cancel(struct dns_lookup *l);

/* Step 8: records the answer's A addresses for qname in the pin set. */
int dns_vm_pin_answer(struct dns_vm *vm, const char *qname, const struct dns_result *res,
                      struct err **errp);

struct dns_dial_info {
    bool ok;        /* false: resolution failed (SERVFAIL, timeout): 502 upstream_dns */
    unsigned rcode; /* NOERROR or NXDOMAIN when ok */
    size_t n;       /* IPv4 addresses (host order), A records at the chain end */
    uint32_t addrs[DNS_MAX_ANSWERS];
    bool cache_hit;
    uint32_t upstream_ms;
    const char *detail;
};
typedef void (*dns_dial_cb)(void *arg, const struct dns_dial_info *info);

/* Section 6 step 9: IPv4 addresses to dial for host (a name, or an IPv4
 * literal answered at once). Same contract as dns_vm_lookup(): 1 = *hit
 * filled now, 0 = pending, -1 = error. The caller filters always-blocked
 * addresses with dns_ipv4_always_blocked() and its rule exception. */
int dns_vm_resolve_ipv4(struct dns_vm *vm, const char *host, struct dns_dial_info *hit,
                        dns_dial_cb cb, void *arg, struct dns_lookup **handle,
                        struct err **errp);

#endif
