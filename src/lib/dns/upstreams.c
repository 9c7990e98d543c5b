/* `dns.upstreams` and /etc/resolv.conf parsing (resolver.h). */
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define UPSTREAM_HINT "use \"system\", \"192.0.2.53\", \"192.0.2.53:53\" or \"[2001:db8::53]:53\""

void dns_resolver_config_default(struct dns_resolver_config *c)
{
    memset(c, 0, sizeof(*c));
    c->attempt_ms = 2000;
    c->attempts = 2;
    c->total_ms = 5000;
    c->max_answer = DNS_UPSTREAM_MAX;
    c->edns_size = DNS_EDNS_ANSWER_MAX;
}

static int set_addr(struct dns_upstream *out, const char *host, unsigned port)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->addr_len = sizeof(*v6);
        return 0;
    }
    return -1;
}

int dns_upstream_parse(const char *s, struct dns_upstream *out, struct err **errp)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s = NULL;
    size_t len = strlen(s);
    const char *colon = strchr(s, ':');
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (size_t)(close - s - 1) >= sizeof(host) || strchr(s + 1, '[') ||
            (close[1] != '\0' && close[1] != ':'))
            goto bad;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (!strchr(host, ':'))
            goto bad; /* brackets are for IPv6 only */
        port_s = close[1] == ':' ? close + 2 : NULL;
    } else if (colon && !strchr(colon + 1, ':')) {
        if ((size_t)(colon - s) >= sizeof(host))
            goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (!strchr(host, '.'))
            goto bad;
        port_s = colon + 1;
    } else {
        if (len >= sizeof(host))
            goto bad;
        memcpy(host, s, len + 1);
    }
    int64_t port = 53;
    if (port_s && parse_int64(port_s, 1, 65535, &port) < 0)
        goto bad;
    if (set_addr(out, host, (unsigned)port) < 0)
        goto bad;
    return 0;
bad:
    return err_status(errp, 400, "dns.upstreams: \"%s\" is not an address (%s)", s,
                      UPSTREAM_HINT);
}

void dns_upstream_format(const struct dns_upstream *u, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (u->addr.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&u->addr;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (u->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&u->addr;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(buf, cap, "?");
    }
}

static bool same_upstream(const struct dns_upstream *a, const struct dns_upstream *b)
{
    return a->addr_len == b->addr_len && memcmp(&a->addr, &b->addr, a->addr_len) == 0;
}

/* One resolv.conf line: "nameserver ADDR" (scoped IPv6 addresses skipped). */
static bool conf_line(char *line, struct dns_upstream *out)
{
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "nameserver", 10) != 0 || (p[10] != ' ' && p[10] != '\t'))
        return false;
    p += 10;
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = p;
    while (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '#' && *end != ';')
        end++;
    *end = '\0';
    return *p && set_addr(out, p, 53) == 0;
}

int dns_resolv_conf_read(const char *path, struct dns_upstream *out, size_t cap, size_t *n,
                         struct err **errp)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    *n = 0;
    if (file_read_all(path, 64 * 1024, &text, &len, errp) < 0) {
        err_prefix(errp, "dns: reading nameservers");
        return -1;
    }
    char *save = text;
    while (save && *save && *n < cap) {
        char *line = save;
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        if (!conf_line(line, &out[*n]))
            continue;
        /* Duplicates once, so repeated lines do not use up the cap. */
        bool seen = false;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = same_upstream(&out[i], &out[*n]);
        if (!seen)
            (*n)++;
    }
    return 0;
}

static int add_server(struct dns_resolver_config *cfg, const struct dns_upstream *u,
                      struct err **errp)
{
    for (size_t i = 0; i < cfg->n_servers; i++)
        if (same_upstream(&cfg->servers[i], u))
            return 0;
    if (cfg->n_servers >= DNS_MAX_UPSTREAMS)
        return err_status(errp, 400, "dns.upstreams: more than %d servers", DNS_MAX_UPSTREAMS);
    cfg->servers[cfg->n_servers++] = *u;
    return 0;
}

int dns_upstreams_configure(struct dns_resolver_config *cfg, const char *const *items, size_t n,
                            const char *resolv_conf, struct err **errp)
{
    static const char *const system_only[] = {"system"};
    if (n == 0) {
        items = system_only;
        n = 1;
    }
    const char *path = resolv_conf ? resolv_conf : "/etc/resolv.conf";
    cfg->n_servers = 0;
    for (size_t i = 0; i < n; i++) {
        struct dns_upstream u[DNS_MAX_UPSTREAMS];
        size_t k = 1;
        if (strcmp(items[i], "system") == 0) {
            if (dns_resolv_conf_read(path, u, DNS_MAX_UPSTREAMS, &k, errp) < 0)
                return -1;
        } else if (dns_upstream_parse(items[i], &u[0], errp) < 0) {
            return -1;
        }
        for (size_t j = 0; j < k; j++)
            if (add_server(cfg, &u[j], errp) < 0)
                return -1;
    }
    if (cfg->n_servers == 0)
        return err_status(errp, 400,
                          "dns.upstreams: no nameserver found (%s has none; list servers "
                          "explicitly, e.g. [\"192.0.2.53:53\"])",
                          path);
    return 0;
}
