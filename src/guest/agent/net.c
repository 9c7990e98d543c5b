/* Guest network plumbing (network.md section 2), applied when the host sends
 * CTL_NET_CONFIG and again on every later one (a live change of http_ports):
 *
 *   lo up; dummy0 (created over rtnetlink) up with 10.0.0.1/24 and the default
 *   route; /run/capsem/resolv.conf bind-mounted over /etc/resolv.conf; the TCP
 *   and DNS relays listening; the install CA in /run/capsem/capsem-ca.crt and
 *   /run/capsem/ca-bundle.crt (bind-mounted over the distribution bundle when
 *   there is one), /etc/profile.d/capsem.sh and the exec/terminal environment;
 *   last, the iptables rules, fed to the legacy iptables-restore through a pipe
 *   (the whole nat and filter tables the first time, then only the CAPSEM_OUT
 *   chain with --noflush, one atomic table swap).
 *
 * Every request is answered with CTL_NET_OK, carrying T_ERRNO and T_MESSAGE
 * (naming the failed step) on failure. Requests that arrive while one is
 * being applied are merged: the newest configuration is applied next and
 * every waiting requester gets its outcome. While the first configuration is
 * applied the agent does not read the channel (net_input_gated), so exec and
 * terminal requests wait for the plumbing.
 *
 * Also here: the local hook /run/capsem/agent.sock (root only) through which
 * `capsem-agent net-config` / `net-status` inside the guest send the same
 * CTL_NET_CONFIG record or ask for the relay status (docs/guest-network.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"

#define NET_RUN_DIR "/run/capsem"
#define NET_RESOLV NET_RUN_DIR "/resolv.conf"
#define NET_CA_FILE NET_RUN_DIR "/capsem-ca.crt"
#define NET_BUNDLE NET_RUN_DIR "/ca-bundle.crt"
#define NET_DIST_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define NET_PROFILE_DIR "/etc/profile.d"
#define NET_PROFILE NET_PROFILE_DIR "/capsem.sh"
#define NET_HOOK_SOCK NET_RUN_DIR "/agent.sock"
#define NET_RELAY_PORT 10080
#define NET_DNS_PORT 1053
#define NET_MAX_HTTP_PORTS 32
#define NET_MAX_CA (64u * 1024u)
#define NET_MAX_DIST_BUNDLE (8u * 1024u * 1024u)
#define NET_IPT_TIMEOUT_MS 5000
#define NET_MULTIPORT_MAX 15 /* ports per -m multiport rule (kernel limit) */
#define NET_MAX_WAITERS 16
#define NET_HOOK_CONNS 4
#define NET_HOOK_MAX_RECORD (NET_MAX_CA + 4096)
#define NET_REC_STATUS 0x7f01 /* hook only: status request and reply (T_MESSAGE) */

struct net_cfg {
    uint16_t http[NET_MAX_HTTP_PORTS]; /* without 443, which is always redirected */
    size_t nhttp;
    char *ca; /* PEM, NULL if none was sent */
};

/* Who gets told the outcome of a request: the host (control stream) or a
 * local hook client (fd, owned here until the reply is written). */
struct net_waiter {
    int fd; /* -1 = the host */
};

static struct {
    bool running;
    struct net_waiter waiters[NET_MAX_WAITERS];
    size_t nwaiters;
    pid_t pid;
    struct watch out_w; /* iptables-restore stdout+stderr */
    char out[512];
    size_t outlen;
    bool timed_out;
    bool full; /* full table restore (not --noflush) */
    struct deadline timeout;
} net_job = {.out_w = {.fd = -1}};

static struct net_cfg net_next; /* merged requests waiting for the running one */
static bool net_have_next;
static struct net_waiter net_next_waiters[NET_MAX_WAITERS];
static size_t net_next_nwaiters;

static bool net_gate;          /* the first configuration is being applied */
static bool net_rules_applied; /* the full tables were loaded once */
static bool net_resolv_mounted, net_bundle_mounted;
static char *net_dist;         /* distribution CA bundle as found before our mount */
static size_t net_dist_len;
static bool net_dist_loaded;
static char *net_ca_installed; /* PEM currently installed */
static uint16_t net_cur_http[NET_MAX_HTTP_PORTS];
static size_t net_cur_nhttp;
static bool net_configured;

static const char *const net_env_vars[] = {
    "SSL_CERT_FILE=" NET_BUNDLE,          "REQUESTS_CA_BUNDLE=" NET_BUNDLE,
    "CURL_CA_BUNDLE=" NET_BUNDLE,         "PIP_CERT=" NET_BUNDLE,
    "GIT_SSL_CAINFO=" NET_BUNDLE,         "CARGO_HTTP_CAINFO=" NET_BUNDLE,
    "NODE_EXTRA_CA_CERTS=" NET_CA_FILE,
};

static void net_job_start(struct net_cfg *cfg, const struct net_waiter *w, size_t nw);

/* ---------- configuration and rules (pure, unit-tested) ---------- */

static void net_cfg_free(struct net_cfg *cfg)
{
    free(cfg->ca);
    cfg->ca = NULL;
    cfg->nhttp = 0;
}

static int net_cfg_parse(const uint8_t *p, size_t len, struct net_cfg *cfg, struct err **errp)
{
    *cfg = (struct net_cfg){0};
    if (!tlv_valid(p, len))
        return err_set(errp, EINVAL, "malformed CTL_NET_CONFIG");
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        uint32_t port;
        if (tag == T_HTTP_PORT) {
            if (tlv_as_u32(v, n, &port) < 0 || port == 0 || port > 65535)
                goto bad_port;
            bool dup = port == 443;
            for (size_t i = 0; i < cfg->nhttp; i++)
                dup |= cfg->http[i] == port;
            if (!dup && cfg->nhttp == NET_MAX_HTTP_PORTS) {
                net_cfg_free(cfg);
                return err_set(errp, E2BIG, "more than %d http ports", NET_MAX_HTTP_PORTS);
            }
            if (!dup)
                cfg->http[cfg->nhttp++] = (uint16_t)port;
        } else if (tag == T_CA_CERT && !cfg->ca) {
            cfg->ca = n <= NET_MAX_CA ? tlv_as_str(v, n) : NULL;
            if (!cfg->ca || !strstr(cfg->ca, "-----BEGIN CERTIFICATE-----") ||
                !strstr(cfg->ca, "-----END CERTIFICATE-----")) {
                net_cfg_free(cfg);
                return err_set(errp, EINVAL, "CA certificate: not a PEM certificate of at most "
                                             "64 KiB");
            }
        }
    }
    return 0;
bad_port:
    net_cfg_free(cfg);
    return err_set(errp, EINVAL, "http port out of range (1-65535)");
}

/* The iptables-restore input. full: both tables whole (first time); else the
 * CAPSEM_OUT chain only, for `iptables-restore --noflush`, which flushes a
 * declared user chain and refills it in the same commit.
 *
 * filter OUTPUT has one rule more than network.md 2.4: `-m addrtype
 * --dst-type LOCAL -j ACCEPT`. The kernel fixes the output device of a local
 * packet once for the whole OUTPUT hook, before nat redirects it, so `-o lo`
 * never matches a connection to 1.1.1.1:443 that nat just sent to
 * 127.0.0.1:10080, and the tcp-reset rule would refuse it. The address test
 * sees the rewritten destination. */
static int net_rules_build(struct buf *b, const uint16_t *http, size_t nhttp, bool full)
{
    int rc = buf_append_str(b, "*nat\n");
    if (full)
        rc |= buf_append_str(b, ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    rc |= buf_append_str(b, ":CAPSEM_OUT - [0:0]\n");
    if (full)
        rc |= buf_append_str(b, "-A OUTPUT -j CAPSEM_OUT\n");
    rc |= buf_printf(b,
                     "-A CAPSEM_OUT -p udp -m udp --dport 53 -j REDIRECT --to-ports %d\n"
                     "-A CAPSEM_OUT -p tcp -m tcp --dport 53 -j REDIRECT --to-ports %d\n"
                     "-A CAPSEM_OUT -m addrtype --dst-type LOCAL -j RETURN\n",
                     NET_DNS_PORT, NET_DNS_PORT);
    /* 443 first, then the http ports, at most 15 per multiport rule. */
    size_t total = nhttp + 1;
    for (size_t start = 0; start < total; start += NET_MULTIPORT_MAX) {
        rc |= buf_append_str(b, "-A CAPSEM_OUT -p tcp -m multiport --dports ");
        for (size_t i = start; i < total && i < start + NET_MULTIPORT_MAX; i++)
            rc |= buf_printf(b, "%s%u", i > start ? "," : "", i == 0 ? 443u : http[i - 1]);
        rc |= buf_printf(b, " -j REDIRECT --to-ports %d\n", NET_RELAY_PORT);
    }
    rc |= buf_append_str(b, "COMMIT\n");
    if (full)
        rc |= buf_append_str(b, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n"
                                "-A OUTPUT -o lo -j ACCEPT\n"
                                "-A OUTPUT -m addrtype --dst-type LOCAL -j ACCEPT\n"
                                "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset\n"
                                "-A OUTPUT -j REJECT --reject-with icmp-port-unreachable\n"
                                "COMMIT\n");
    return rc ? -1 : 0;
}

/* ---------- rtnetlink (kernel ABI; musl has no <linux/rtnetlink.h>) ---------- */

#define NL_NETLINK_ROUTE 0
#define NL_RTM_NEWLINK 16
#define NL_RTM_NEWADDR 20
#define NL_RTM_NEWROUTE 24
#define NL_F_REQUEST 0x1
#define NL_F_ACK 0x4
#define NL_F_REPLACE 0x100
#define NL_F_EXCL 0x200
#define NL_F_CREATE 0x400
#define NL_MSG_ERROR 2
#define NL_IFLA_IFNAME 3
#define NL_IFLA_LINKINFO 18
#define NL_IFLA_INFO_KIND 1
#define NL_IFA_ADDRESS 1
#define NL_IFA_LOCAL 2
#define NL_RTA_OIF 4
#define NL_RT_TABLE_MAIN 254
#define NL_RTPROT_BOOT 3
#define NL_RT_SCOPE_LINK 253
#define NL_RTN_UNICAST 1

struct nl_hdr {
    uint32_t len;
    uint16_t type, flags;
    uint32_t seq, pid;
};
struct nl_ifinfo {
    uint8_t family, pad;
    uint16_t type;
    int32_t index;
    uint32_t flags, change;
};
struct nl_ifaddr {
    uint8_t family, prefixlen, flags, scope;
    uint32_t index;
};
struct nl_rtmsg {
    uint8_t family, dst_len, src_len, tos, table, protocol, scope, type;
    uint32_t flags;
};
struct nl_sockaddr {
    sa_family_t family;
    unsigned short pad;
    uint32_t pid, groups;
};

struct nl_msg {
    uint8_t b[512];
    size_t len;
};

static void nl_begin(struct nl_msg *m, uint16_t type, uint16_t flags, const void *body, size_t n)
{
    memset(m, 0, sizeof(*m));
    struct nl_hdr h = {.type = type, .flags = (uint16_t)(NL_F_REQUEST | NL_F_ACK | flags),
                       .seq = 1};
    memcpy(m->b, &h, sizeof(h));
    memcpy(m->b + sizeof(h), body, n);
    m->len = sizeof(h) + ((n + 3u) & ~3u);
}

/* Appends an attribute; returns its offset (for nesting). */
static size_t nl_attr(struct nl_msg *m, uint16_t type, const void *data, size_t n)
{
    size_t off = m->len;
    uint16_t hdr[2] = {(uint16_t)(4 + n), type};
    if (off + 4 + ((n + 3u) & ~3u) > sizeof(m->b))
        return 0; /* our messages are far smaller; never happens */
    memcpy(m->b + off, hdr, 4);
    if (n)
        memcpy(m->b + off + 4, data, n);
    m->len = off + 4 + ((n + 3u) & ~3u);
    return off;
}

static void nl_nest_end(struct nl_msg *m, size_t off)
{
    uint16_t len = (uint16_t)(m->len - off);
    memcpy(m->b + off, &len, 2);
}

/* Sends one request and waits for its ack: 0, or -errno from the kernel. */
static int nl_talk(int fd, struct nl_msg *m)
{
    uint32_t len = (uint32_t)m->len;
    memcpy(m->b, &len, 4);
    struct nl_sockaddr k = {.family = AF_NETLINK};
    if (sendto(fd, m->b, m->len, 0, (struct sockaddr *)&k, sizeof(k)) < 0)
        return -errno;
    uint8_t r[1024];
    for (;;) {
        ssize_t n = recv(fd, r, sizeof(r), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        struct nl_hdr h;
        if ((size_t)n < sizeof(h) + 4)
            return -EPROTO;
        memcpy(&h, r, sizeof(h));
        if (h.type != NL_MSG_ERROR)
            continue;
        int32_t e;
        memcpy(&e, r + sizeof(h), 4);
        return e;
    }
}

static int net_link_up(int fd, const char *name, struct err **errp)
{
    struct nl_ifinfo ifi = {.family = AF_UNSPEC, .flags = IFF_UP, .change = IFF_UP};
    struct nl_msg m;
    nl_begin(&m, NL_RTM_NEWLINK, 0, &ifi, sizeof(ifi));
    nl_attr(&m, NL_IFLA_IFNAME, name, strlen(name) + 1);
    int rc = nl_talk(fd, &m);
    return rc ? err_set(errp, -rc, "%s: set up: %s", name, strerror(-rc)) : 0;
}

static int net_dummy_create(int fd, struct err **errp)
{
    struct nl_ifinfo ifi = {.family = AF_UNSPEC};
    struct nl_msg m;
    nl_begin(&m, NL_RTM_NEWLINK, NL_F_CREATE | NL_F_EXCL, &ifi, sizeof(ifi));
    nl_attr(&m, NL_IFLA_IFNAME, "dummy0", 7);
    size_t nest = nl_attr(&m, NL_IFLA_LINKINFO, NULL, 0);
    nl_attr(&m, NL_IFLA_INFO_KIND, "dummy", 5);
    nl_nest_end(&m, nest);
    int rc = nl_talk(fd, &m);
    if (rc && rc != -EEXIST)
        return err_set(errp, -rc, "dummy0: create link: %s%s", strerror(-rc),
                       rc == -EOPNOTSUPP ? " (is the dummy module loaded?)" : "");
    return 0;
}

static int net_addr_add(int fd, unsigned ifindex, struct err **errp)
{
    struct nl_ifaddr ifa = {.family = AF_INET, .prefixlen = 24, .index = ifindex};
    struct nl_msg m;
    nl_begin(&m, NL_RTM_NEWADDR, NL_F_CREATE | NL_F_REPLACE, &ifa, sizeof(ifa));
    uint32_t a = htonl(0x0a000001u);
    nl_attr(&m, NL_IFA_LOCAL, &a, 4);
    nl_attr(&m, NL_IFA_ADDRESS, &a, 4);
    int rc = nl_talk(fd, &m);
    return rc ? err_set(errp, -rc, "dummy0: address 10.0.0.1/24: %s", strerror(-rc)) : 0;
}

static int net_route_add(int fd, unsigned ifindex, struct err **errp)
{
    struct nl_rtmsg rt = {.family = AF_INET, .table = NL_RT_TABLE_MAIN,
                          .protocol = NL_RTPROT_BOOT, .scope = NL_RT_SCOPE_LINK,
                          .type = NL_RTN_UNICAST};
    struct nl_msg m;
    nl_begin(&m, NL_RTM_NEWROUTE, NL_F_CREATE | NL_F_REPLACE, &rt, sizeof(rt));
    uint32_t oif = ifindex;
    nl_attr(&m, NL_RTA_OIF, &oif, 4);
    int rc = nl_talk(fd, &m);
    return rc ? err_set(errp, -rc, "default route via dummy0: %s", strerror(-rc)) : 0;
}

static int net_links(struct err **errp)
{
    _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NL_NETLINK_ROUTE);
    if (fd < 0)
        return err_sys(errp, "rtnetlink socket");
    if (net_link_up(fd, "lo", errp) < 0 || net_dummy_create(fd, errp) < 0 ||
        net_link_up(fd, "dummy0", errp) < 0)
        return -1;
    unsigned idx = if_nametoindex("dummy0");
    if (idx == 0)
        return err_sys(errp, "dummy0: index");
    return net_addr_add(fd, idx, errp) < 0 || net_route_add(fd, idx, errp) < 0 ? -1 : 0;
}

/* ---------- files ---------- */

/* A regular file to bind-mount over (a symlink, e.g. to a resolver stub that
 * does not exist here, is replaced). */
static int net_bind_target(const char *path, struct err **errp)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    if (unlink(path) < 0 && errno != ENOENT)
        return err_sys(errp, "replace %s", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_sys(errp, "create %s", path);
    close(fd);
    return 0;
}

/* Binds src over target, replacing an earlier bind of ours. */
static int net_bind(const char *src, const char *target, bool *mounted, struct err **errp)
{
    if (*mounted && umount2(target, MNT_DETACH) < 0)
        return err_sys(errp, "unmount %s", target);
    *mounted = false;
    if (mount(src, target, NULL, MS_BIND, NULL) < 0)
        return err_sys(errp, "bind %s over %s", src, target);
    *mounted = true;
    return 0;
}

static int net_resolv(struct err **errp)
{
    if (net_resolv_mounted)
        return 0;
    static const char text[] = "nameserver 127.0.0.1\n";
    if (file_write_atomic(NET_RESOLV, text, sizeof(text) - 1, 0644, errp) < 0 ||
        net_bind_target("/etc/resolv.conf", errp) < 0)
        return -1;
    return net_bind(NET_RESOLV, "/etc/resolv.conf", &net_resolv_mounted, errp);
}

static int net_profile(struct err **errp)
{
    struct stat st;
    if (stat(NET_PROFILE_DIR, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    struct buf b;
    buf_init(&b, 4096);
    buf_append_str(&b, "# Written by capsem-agent: the capsem CA for TLS clients "
                       "(docs/guest-network.md).\n");
    for (size_t i = 0; i < ARRAY_SIZE(net_env_vars); i++)
        buf_printf(&b, "export %s\n", net_env_vars[i]);
    int rc = file_write_atomic(NET_PROFILE, buf_head(&b), b.len, 0644, errp);
    buf_free(&b);
    return rc;
}

/* The CA files, the bundle and its bind mount, the profile script. */
static int net_install_ca(const char *pem, struct err **errp)
{
    if (net_ca_installed && strcmp(net_ca_installed, pem) == 0)
        return 0;
    if (!net_dist_loaded) { /* before our bind mount hides it */
        if (access(NET_DIST_BUNDLE, F_OK) == 0 &&
            file_read_all(NET_DIST_BUNDLE, NET_MAX_DIST_BUNDLE, &net_dist, &net_dist_len,
                          errp) < 0)
            return -1;
        net_dist_loaded = true;
    }
    size_t plen = strlen(pem);
    if (file_write_atomic(NET_CA_FILE, pem, plen, 0644, errp) < 0)
        return -1;
    struct buf b;
    buf_init(&b, net_dist_len + plen + 2);
    if (net_dist_len) {
        buf_append(&b, net_dist, net_dist_len);
        if (net_dist[net_dist_len - 1] != '\n')
            buf_append_str(&b, "\n");
    }
    buf_append(&b, pem, plen);
    int rc = file_write_atomic(NET_BUNDLE, buf_head(&b), b.len, 0644, errp);
    buf_free(&b);
    if (rc < 0)
        return -1;
    if (net_dist && net_bind(NET_BUNDLE, NET_DIST_BUNDLE, &net_bundle_mounted, errp) < 0)
        return -1;
    if (net_profile(errp) < 0)
        return -1;
    free(net_ca_installed);
    net_ca_installed = strdup(pem);
    return 0;
}

const char *const *net_env(size_t *count)
{
    *count = net_ca_installed ? ARRAY_SIZE(net_env_vars) : 0;
    return net_env_vars;
}

bool net_input_gated(void)
{
    return net_gate;
}

/* ---------- the job: synchronous steps, then iptables-restore ---------- */

static void net_reply(const struct net_waiter *w, const struct err *e)
{
    struct buf b;
    buf_init(&b, 4096);
    if (e) {
        tlv_put_u32(&b, T_ERRNO, (uint32_t)(e->code ? e->code : EIO));
        tlv_put_str(&b, T_MESSAGE, err_msg(e));
    }
    if (w->fd < 0) {
        control_send_rec(CTL_NET_OK, buf_head(&b), b.len);
    } else {
        struct buf rec;
        buf_init(&rec, 8192);
        if (rec_encode(&rec, CTL_NET_OK, buf_head(&b), b.len) == 0)
            (void)send(w->fd, buf_head(&rec), rec.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        buf_free(&rec);
        close(w->fd);
    }
    buf_free(&b);
}

static void net_job_finish(struct err *e)
{
    if (e)
        log_error("network configuration: %s", err_msg(e));
    else
        log_info("network configured (%zu http ports, CA %s)", net_cur_nhttp,
                 net_ca_installed ? "installed" : "none");
    for (size_t i = 0; i < net_job.nwaiters; i++)
        net_reply(&net_job.waiters[i], e);
    err_free(e);
    net_job.nwaiters = 0;
    net_job.running = false;
    if (net_gate) {
        net_gate = false;
        agent_kick(); /* port_flush re-arms reading the channel */
    }
    if (net_have_next) {
        struct net_cfg cfg = net_next;
        net_have_next = false;
        net_next = (struct net_cfg){0};
        size_t nw = net_next_nwaiters;
        net_next_nwaiters = 0;
        net_job_start(&cfg, net_next_waiters, nw);
    }
}

static void net_out_drain(int fd)
{
    char tmp[512];
    for (;;) {
        ssize_t n = fd_read_retry(fd, tmp, sizeof(tmp));
        if (n <= 0)
            return;
        size_t keep = MIN((size_t)n, sizeof(net_job.out) - 1 - net_job.outlen);
        memcpy(net_job.out + net_job.outlen, tmp, keep);
        net_job.outlen += keep;
    }
}

static void net_out_cb(struct watch *w, uint32_t revents)
{
    net_out_drain(w->fd);
    if (revents & (EPOLLHUP | EPOLLERR)) {
        int fd = w->fd;
        watch_del(w);
        close(fd);
    }
}

static void net_ipt_exited(void *owner, pid_t pid, int status)
{
    deadline_disarm(&net_job.timeout);
    if (net_job.out_w.fd >= 0) {
        int fd = net_job.out_w.fd;
        net_out_drain(fd);
        watch_del(&net_job.out_w);
        close(fd);
    }
    net_job.out[net_job.outlen] = '\0';
    net_job.out[strcspn(net_job.out, "\n")] = '\0';
    struct err *e = NULL;
    if (net_job.timed_out)
        err_set(&e, ETIMEDOUT, "iptables-restore: no answer after %d ms (killed)",
                NET_IPT_TIMEOUT_MS);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        err_set(&e, EIO, "iptables-restore failed (status %d): %s",
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                net_job.outlen ? net_job.out : "no output");
    else if (net_job.full)
        net_rules_applied = true;
    net_job_finish(e);
}

static void net_ipt_timeout(struct deadline *d)
{
    net_job.timed_out = true;
    kill(net_job.pid, SIGKILL);
}

static const char *net_ipt_path(void)
{
    static const char *const cands[] = {"/usr/sbin/iptables-legacy-restore",
                                        "/sbin/iptables-legacy-restore",
                                        "/usr/sbin/iptables-restore", "/sbin/iptables-restore"};
    for (size_t i = 0; i < ARRAY_SIZE(cands); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

static int net_ipt_spawn(const char *path, const struct buf *rules, struct err **errp)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        err_sys(errp, "iptables-restore: pipe");
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"iptables-restore", "--wait=5", net_job.full ? NULL : "--noflush", NULL};
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int rc = posix_spawn(&net_job.pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    if (rc != 0) {
        err_set(errp, rc, "iptables-restore: spawn %s: %s", path, strerror(rc));
        goto fail;
    }
    /* A few hundred bytes: the pipe takes them without blocking. */
    if (fd_write_all(in[1], buf_head(rules), rules->len) < 0)
        log_warn("iptables-restore: writing the rules: %s", strerror(errno));
    close(in[1]);
    fd_set_nonblock(out[0], true);
    watch_add(&net_job.out_w, out[0], EPOLLIN, net_out_cb, NULL);
    child_track(net_job.pid, net_ipt_exited, NULL);
    net_job.timeout.cb = net_ipt_timeout;
    deadline_arm(&net_job.timeout, time_mono_ms() + NET_IPT_TIMEOUT_MS);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return -1;
}

/* Everything but iptables, in the order of network.md section 2. */
static int net_setup_sync(const struct net_cfg *cfg, struct err **errp)
{
    if (mkdir_p(NET_RUN_DIR, 0755, errp) < 0 || net_links(errp) < 0 || net_resolv(errp) < 0)
        return -1;
    if (relay_start(NET_RELAY_PORT, errp) < 0 || dns_relay_start(NET_DNS_PORT, errp) < 0) {
        err_prefix(errp, "relays");
        return -1;
    }
    if (cfg->ca && net_install_ca(cfg->ca, errp) < 0) {
        err_prefix(errp, "CA");
        return -1;
    }
    return 0;
}

static void net_job_start(struct net_cfg *cfg, const struct net_waiter *w, size_t nw)
{
    net_job.running = true;
    memcpy(net_job.waiters, w, nw * sizeof(*w));
    net_job.nwaiters = nw;
    net_job.outlen = 0;
    net_job.timed_out = false;
    net_job.full = !net_rules_applied;
    if (!net_configured)
        net_gate = true;
    net_configured = true;
    memcpy(net_cur_http, cfg->http, sizeof(net_cur_http));
    net_cur_nhttp = cfg->nhttp;
    struct err *e = NULL;
    struct buf rules;
    buf_init(&rules, 16384);
    const char *ipt = net_ipt_path();
    if (net_setup_sync(cfg, &e) == 0) {
        if (!ipt)
            err_set(&e, ENOENT, "iptables-restore: not found (install iptables, legacy backend)");
        else if (net_rules_build(&rules, cfg->http, cfg->nhttp, net_job.full) < 0)
            err_set(&e, ENOMEM, "iptables rules: out of memory");
        else
            net_ipt_spawn(ipt, &rules, &e);
    }
    buf_free(&rules);
    net_cfg_free(cfg);
    if (e)
        net_job_finish(e);
}

/* A request from the host (w->fd -1) or a hook client. */
static void net_request(const uint8_t *p, size_t len, struct net_waiter w)
{
    struct net_cfg cfg;
    struct err *e = NULL;
    if (net_cfg_parse(p, len, &cfg, &e) < 0) {
        net_reply(&w, e);
        err_free(e);
        return;
    }
    if (!net_job.running) {
        net_job_start(&cfg, &w, 1);
        return;
    }
    if (net_next_nwaiters == NET_MAX_WAITERS) {
        err_set(&e, EBUSY, "too many network configurations in flight");
        net_reply(&w, e);
        err_free(e);
        net_cfg_free(&cfg);
        return;
    }
    net_cfg_free(&net_next);
    net_next = cfg;
    net_have_next = true;
    net_next_waiters[net_next_nwaiters++] = w;
}

void net_config_from_host(const uint8_t *payload, size_t len)
{
    net_request(payload, len, (struct net_waiter){.fd = -1});
}

/* ---------- local hook: /run/capsem/agent.sock ---------- */

struct net_hook_conn {
    struct watch w;
    bool used;
    struct rec_reader rr;
    struct deadline timeout;
};
static struct net_hook_conn net_hook_conns[NET_HOOK_CONNS];
static struct watch net_hook_w = {.fd = -1};

static void net_status(struct buf *out)
{
    buf_printf(out, "network: %s, rules %s, http ports 443", net_configured ? "configured" : "off",
               net_rules_applied ? "applied" : "not applied");
    for (size_t i = 0; i < net_cur_nhttp; i++)
        buf_printf(out, ",%u", net_cur_http[i]);
    buf_printf(out, ", CA %s\n", net_ca_installed ? "installed" : "none");
    relay_status(out);
    dns_relay_status(out);
}

/* Ends a hook connection; keep_fd: the fd now belongs to a waiter. */
static void net_hook_end(struct net_hook_conn *c, bool keep_fd)
{
    int fd = c->w.fd;
    watch_del(&c->w);
    if (!keep_fd && fd >= 0)
        close(fd);
    deadline_disarm(&c->timeout);
    rec_reader_free(&c->rr);
    c->used = false;
}

static void net_hook_timeout(struct deadline *d)
{
    net_hook_end(d->owner, false);
}

static void net_hook_record(struct net_hook_conn *c, uint16_t type, const uint8_t *p, size_t n)
{
    int fd = c->w.fd;
    if (type == CTL_NET_CONFIG) {
        /* The fd goes to the waiter; p lives in c->rr until net_hook_end. */
        watch_del(&c->w);
        net_request(p, n, (struct net_waiter){.fd = fd});
        net_hook_end(c, true);
        return;
    }
    struct buf text, tlv, rec;
    buf_init(&text, 32768);
    buf_init(&tlv, 40000);
    buf_init(&rec, 40000);
    if (type == NET_REC_STATUS)
        net_status(&text);
    else
        buf_append_str(&text, "unknown request");
    buf_append(&text, "", 1);
    tlv_put_str(&tlv, T_MESSAGE, (const char *)buf_head(&text));
    if (rec_encode(&rec, NET_REC_STATUS, buf_head(&tlv), tlv.len) == 0)
        (void)send(fd, buf_head(&rec), rec.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    buf_free(&text);
    buf_free(&tlv);
    buf_free(&rec);
    net_hook_end(c, false);
}

static void net_hook_conn_cb(struct watch *w, uint32_t revents)
{
    struct net_hook_conn *c = w->owner;
    uint8_t tmp[8192];
    ssize_t n = fd_read_retry(w->fd, tmp, sizeof(tmp));
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0 || rec_reader_feed(&c->rr, tmp, (size_t)n) < 0) {
        net_hook_end(c, false);
        return;
    }
    uint16_t type;
    const uint8_t *p;
    size_t len;
    int rc = rec_reader_next(&c->rr, &type, &p, &len);
    if (rc == 1)
        net_hook_record(c, type, p, len);
    else if (rc < 0)
        net_hook_end(c, false);
}

static void net_hook_accept_cb(struct watch *w, uint32_t revents)
{
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (size_t i = 0; i < NET_HOOK_CONNS; i++) {
        struct net_hook_conn *c = &net_hook_conns[i];
        if (c->used)
            continue;
        c->used = true;
        rec_reader_init(&c->rr, NET_HOOK_MAX_RECORD);
        c->timeout.cb = net_hook_timeout;
        c->timeout.owner = c;
        deadline_arm(&c->timeout, time_mono_ms() + 5000);
        if (watch_add(&c->w, fd, EPOLLIN, net_hook_conn_cb, c) < 0) {
            c->w.fd = fd;
            net_hook_end(c, false);
        }
        return;
    }
    close(fd); /* busy */
}

int net_hook_start(void)
{
    if (net_hook_w.fd >= 0)
        return 0;
    if (mkdir_p(NET_RUN_DIR, 0755, NULL) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    str_copy(a.sun_path, sizeof(a.sun_path), NET_HOOK_SOCK);
    unlink(NET_HOOK_SOCK);
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
    umask(old);
    if (rc < 0 || listen(fd, 4) < 0 || watch_add(&net_hook_w, fd, EPOLLIN, net_hook_accept_cb,
                                                 NULL) < 0) {
        log_warn("network hook %s: %s", NET_HOOK_SOCK, strerror(errno));
        close(fd);
        return -1;
    }
    return 0;
}

/* ---------- client side: capsem-agent net-config / net-status ---------- */

static int net_cli_ports(struct buf *tlv, const char *list)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        char tok[16];
        int64_t v;
        if (n == 0 || n >= sizeof(tok))
            return -1;
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (parse_int64(tok, 1, 65535, &v) < 0)
            return -1;
        tlv_put_u32(tlv, T_HTTP_PORT, (uint32_t)v);
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int net_cli_usage(void)
{
    fprintf(stderr, "usage: capsem-agent net-config [--http-ports LIST] [--ca PEM-FILE]\n"
                    "       capsem-agent net-status\n"
                    "Test/debug hook: applies a network configuration as if the host had sent "
                    "it (default http ports 80,8080,3128,11434), or prints the relay status.\n");
    return 2;
}

/* Sends one record to the agent and reads its one-record answer. */
static int net_cli_call(uint16_t type, const struct buf *tlv, struct rec_reader *rr,
                        uint16_t *rtype, const uint8_t **rp, size_t *rlen)
{
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    str_copy(a.sun_path, sizeof(a.sun_path), NET_HOOK_SOCK);
    struct timeval tv = {.tv_sec = 30};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "capsem-agent: %s: %s\n", NET_HOOK_SOCK, strerror(errno));
        return -1;
    }
    struct buf rec;
    buf_init(&rec, NET_HOOK_MAX_RECORD + 16);
    int rc = rec_encode(&rec, type, buf_head(tlv), tlv->len);
    if (rc == 0)
        rc = fd_write_all(fd, buf_head(&rec), rec.len);
    buf_free(&rec);
    uint8_t tmp[8192];
    while (rc == 0) {
        int got = rec_reader_next(rr, rtype, rp, rlen);
        if (got == 1)
            return 0;
        ssize_t n = got < 0 ? -1 : fd_read_retry(fd, tmp, sizeof(tmp));
        if (n <= 0 || rec_reader_feed(rr, tmp, (size_t)n) < 0)
            break;
    }
    fprintf(stderr, "capsem-agent: no answer from the agent\n");
    return -1;
}

int net_cli_main(int argc, char **argv)
{
    bool status = strcmp(argv[0], "net-status") == 0;
    struct buf tlv;
    buf_init(&tlv, NET_HOOK_MAX_RECORD);
    const char *ports = "80,8080,3128,11434", *ca = NULL;
    for (int i = 1; i < argc; i++) {
        if (!status && i + 1 < argc && strcmp(argv[i], "--http-ports") == 0)
            ports = argv[++i];
        else if (!status && i + 1 < argc && strcmp(argv[i], "--ca") == 0)
            ca = argv[++i];
        else
            return net_cli_usage();
    }
    if (!status && net_cli_ports(&tlv, ports) < 0) {
        fprintf(stderr, "capsem-agent: bad --http-ports '%s' (comma-separated 1-65535)\n", ports);
        return 2;
    }
    if (ca) {
        _cleanup_free_ char *pem = NULL;
        struct err *e = NULL;
        if (file_read_all(ca, NET_MAX_CA, &pem, NULL, &e) < 0) {
            fprintf(stderr, "capsem-agent: %s\n", err_msg(e));
            err_free(e);
            return 1;
        }
        tlv_put_str(&tlv, T_CA_CERT, pem);
    }
    struct rec_reader rr;
    rec_reader_init(&rr, 256 * 1024);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc = net_cli_call(status ? NET_REC_STATUS : CTL_NET_CONFIG, &tlv, &rr, &type, &p, &n);
    buf_free(&tlv);
    if (rc < 0) {
        rec_reader_free(&rr);
        return 1;
    }
    struct tlv_iter it;
    tlv_iter_init(&it, p, n);
    uint16_t tag;
    const uint8_t *v;
    size_t vn;
    uint32_t errnum = 0;
    const char *msg = NULL;
    size_t msglen = 0;
    while (tlv_next(&it, &tag, &v, &vn) == 1) {
        if (tag == T_ERRNO)
            tlv_as_u32(v, vn, &errnum);
        else if (tag == T_MESSAGE) {
            msg = (const char *)v;
            msglen = vn;
        }
    }
    if (errnum)
        fprintf(stderr, "capsem-agent: network configuration failed: %.*s\n", (int)msglen,
                msg ? msg : "");
    else if (msg)
        printf("%.*s", (int)strnlen(msg, msglen), msg);
    else
        printf("ok\n");
    rec_reader_free(&rr);
    return errnum ? 1 : 0;
}
