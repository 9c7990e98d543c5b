/* Asynchronous upstream DNS client on a libevent base (network.md section 4
 * step 7). Each query is fresh: the host builds its own message (random id,
 * a new UDP socket per attempt so the kernel picks a random source port,
 * optional 0x20 case randomisation, EDNS 1232), never the guest's bytes.
 *
 * Per query: UDP to upstream i, TCP to the same upstream when the answer is
 * truncated; 2 s per attempt, 2 attempts (rotating over the upstreams),
 * 5 s in total; answers over 64 KiB, upstream error rcodes and timeouts end
 * in SERVFAIL. A UDP datagram that is not the answer to this query (id,
 * question, QR) is ignored and the wait goes on.
 *
 * Upstream list (`dns.upstreams`): "system" = the host's /etc/resolv.conf
 * nameservers; otherwise "ip", "ip:port", "[v6]" or "[v6]:port".
 *
 * Callbacks run from the event loop, never from inside dns_resolver_query().
 * Single-threaded: the base's thread owns everything here. */
#ifndef CAPSEM_DNS_RESOLVER_H
#define CAPSEM_DNS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/err.h"
#include "dns/dnsmsg.h"

struct event_base;

#define DNS_MAX_UPSTREAMS 8

struct dns_upstream {
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct dns_resolver_config {
    struct dns_upstream servers[DNS_MAX_UPSTREAMS];
    size_t n_servers;
    uint32_t attempt_ms; /* 2000 */
    unsigned attempts;   /* 2 */
    uint32_t total_ms;   /* 5000 */
    size_t max_answer;   /* 65535 */
    uint16_t edns_size;  /* advertised upstream; 1232, 0 = no EDNS */
    bool use_0x20;       /* randomise the question's case, require it echoed */
};

/* Timing and limits above; no servers. */
void dns_resolver_config_default(struct dns_resolver_config *c);

/* One `dns.upstreams` entry other than "system". */
int dns_upstream_parse(const char *s, struct dns_upstream *out, struct err **errp);
/* "nameserver" lines of a resolv.conf (IPv4 and IPv6, port 53), at most
 * cap; *n gets the count (0 is not an error). */
int dns_resolv_conf_read(const char *path, struct dns_upstream *out, size_t cap, size_t *n,
                         struct err **errp);
/* Fills cfg->servers from `dns.upstreams` (items[0..n)); "system" expands
 * to the nameservers of resolv_conf (NULL: /etc/resolv.conf). Duplicates
 * are kept once; more than DNS_MAX_UPSTREAMS is an error. n == 0 means
 * {"system"}. Fails when the result is empty. */
int dns_upstreams_configure(struct dns_resolver_config *cfg, const char *const *items, size_t n,
                            const char *resolv_conf, struct err **errp);
/* "1.2.3.4:53" / "[::1]:53" into buf (cap >= 64). */
void dns_upstream_format(const struct dns_upstream *u, char *buf, size_t cap);

struct dns_resolver;
struct dns_upquery;

struct dns_resolver *dns_resolver_new(struct event_base *base,
                                      const struct dns_resolver_config *cfg, struct err **errp);
/* Cancels every pending query (no callbacks) and frees. */
void dns_resolver_free(struct dns_resolver *r);
/* Number of queries in flight. */
size_t dns_resolver_pending(const struct dns_resolver *r);

struct dns_resolve_info {
    bool ok;                          /* false: answer SERVFAIL */
    const struct dns_result *result;  /* ok only; borrowed until the callback returns */
    uint32_t elapsed_ms;              /* upstream_resolver_ms */
    const char *detail;               /* static text when !ok: "timeout", "upstream REFUSED"... */
    unsigned attempts;                /* attempts started */
    bool used_tcp;
};

/* Called once per query unless cancelled; the query handle is invalid once
 * it returns. The callback may start new queries; it must not free the
 * resolver. */
typedef void (*dns_resolve_cb)(void *arg, const struct dns_resolve_info *info);

/* Starts resolving (qname normalised text, qtype a forwarded type). The
 * handle stays valid until the callback returns or dns_upquery_cancel(). */
struct dns_upquery *dns_resolver_query(struct dns_resolver *r, const char *qname, uint16_t qtype,
                                       dns_resolve_cb cb, void *arg, struct err **errp);
/* Stops a query; its callback is not called. Not from inside its own callback. */
void dns_upquery_cancel(struct dns_upquery *q);

#endif
