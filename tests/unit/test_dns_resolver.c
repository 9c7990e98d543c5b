/* Upstream resolver and per-VM lookups (docs/dns.md, network.md section 4
 * step 7 and section 14) against DNS servers run by this test on 127.0.0.1
 * (UDP and TCP on one port), on the same libevent loop as the resolver:
 * answers, NXDOMAIN, truncation -> TCP, per-attempt and total timeouts,
 * two attempts over two servers, ignored stray datagrams, the TCP size cap,
 * error rcodes, 0x20; dns_vm coalescing, caching with TTL clamps,
 * cancellation and the dial API; dns.upstreams and resolv.conf parsing
 * from files written here. Nothing reaches the host's network or reads
 * /etc/resolv.conf. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "dns/dnsvm.h"
#include "dns/resolver.h"
#include "tap.h"

static struct event_base *base;

/* ---- the test's DNS server: UDP and TCP on one 127.0.0.1 port ---- */

enum reply {
    R_ANSWER, /* NOERROR, the configured records (TCP: padded to tcp_size) */
    R_NXDOMAIN,
    R_RCODE, /* no records, rcode = srv.rcode */
    R_DROP,  /* no reply (TCP: connection kept open) */
    R_TRUNC, /* TC set, no records */
    R_SPOOF, /* UDP: stray datagrams (wrong id, wrong question, QR clear, junk), then R_ANSWER */
    R_LOWER, /* the question echoed lowercased (fails a 0x20 check) */
    R_CLOSE, /* TCP: close without answering */
    R_BADID, /* the answer with a wrong id */
};

struct seen {
    uint16_t id, qtype, edns_size;
    bool rd, edns;
    uint8_t qwire[DNS_NAME_WIRE_MAX];
    size_t qwire_len;
};

struct srv {
    int udp_fd, tcp_fd;
    uint16_t port;
    struct event *udp_ev, *accept_ev;
    enum reply udp, tcp;
    unsigned rcode;
    uint32_t ips[DNS_MAX_ANSWERS];
    size_t n_ips;
    uint32_t ttl;
    const char *cname; /* records: a CNAME to this name, then A records owned by it */
    size_t tcp_size;
    int udp_queries, tcp_queries;
    struct seen last;
    int conn_fd; /* one TCP connection at a time: a new one replaces it */
    struct event *conn_ev;
    uint8_t conn_buf[4096];
    size_t conn_len;
};

static struct msg {
    uint8_t b[70000];
    size_t n;
} reply; /* one reply at a time (single-threaded) */

static void put(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put16(struct msg *m, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(m, b, 2);
}

/* Owner (pointer or wire name), type, class IN, TTL, rdlength. */
static void put_rr(struct msg *m, const uint8_t *owner, size_t olen, unsigned type, uint32_t ttl,
                   size_t rdlen)
{
    if (owner)
        put(m, owner, olen);
    else
        put16(m, 0xC00C);
    put16(m, type);
    put16(m, 1);
    put16(m, ttl >> 16);
    put16(m, ttl & 0xFFFF);
    put16(m, (unsigned)rdlen);
}

/* Reads the resolver's query with the library's strict query parser (so
 * the message it sends is also one the guest side would accept). */
static bool parse_query(const uint8_t *p, size_t len, struct seen *q)
{
    struct dns_query_msg m;
    if (dnsmsg_parse_query(p, len, &m) != DNS_PARSE_OK)
        return false;
    *q = (struct seen){.id = m.id,
                       .qtype = m.q.qtype,
                       .edns_size = m.edns_udp_size,
                       .rd = m.rd,
                       .edns = m.edns,
                       .qwire_len = m.q.wire_len};
    memcpy(q->qwire, m.q.wire, m.q.wire_len);
    return true;
}

#define F_QR 0x8000
#define F_TC 0x0200
#define F_RD 0x0100
#define F_RA 0x0080

/* s's reply to q: header (id, flags), the question as given in qwire, the
 * records when asked, then a TXT filler up to pad_to bytes (not an asked
 * type: the client drops it, but it counts towards the size). */
static void build_reply(const struct srv *s, const struct seen *q, uint16_t id, unsigned flags,
                        const uint8_t *qwire, bool records, size_t pad_to, struct msg *m)
{
    unsigned an = 0;
    m->n = 0;
    uint8_t hdr[12] = {(uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(flags >> 8),
                       (uint8_t)flags,     0,           1};
    put(m, hdr, 12);
    put(m, qwire, q->qwire_len);
    put16(m, q->qtype);
    put16(m, 1);
    uint8_t target[DNS_NAME_WIRE_MAX];
    int tlen = s->cname ? dnsname_text_to_wire(s->cname, target, sizeof(target)) : 0;
    if (records && tlen > 0) {
        put_rr(m, NULL, 0, DNS_T_CNAME, s->ttl, (size_t)tlen);
        put(m, target, (size_t)tlen);
        an++;
    }
    for (size_t i = 0; records && i < s->n_ips; i++, an++) {
        put_rr(m, tlen > 0 ? target : NULL, (size_t)tlen, DNS_T_A, s->ttl, 4);
        put16(m, s->ips[i] >> 16);
        put16(m, s->ips[i] & 0xFFFF);
    }
    if (pad_to > m->n + 12) {
        size_t rdlen = pad_to - m->n - 12;
        put_rr(m, NULL, 0, DNS_T_TXT, 60, rdlen);
        while (rdlen > 0) { /* character-strings of up to 255 bytes */
            size_t chunk = rdlen - 1 > 255 ? 255 : rdlen - 1;
            m->b[m->n++] = (uint8_t)chunk;
            memset(m->b + m->n, 't', chunk);
            m->n += chunk;
            rdlen -= chunk + 1;
        }
        an++;
    }
    m->b[6] = (uint8_t)(an >> 8);
    m->b[7] = (uint8_t)an;
}

/* The reply for mode; false when nothing is sent. */
static bool make_reply(const struct srv *s, const struct seen *q, enum reply mode, bool tcp,
                       struct msg *m)
{
    unsigned flags = F_QR | F_RD | F_RA;
    uint8_t qwire[DNS_NAME_WIRE_MAX];
    memcpy(qwire, q->qwire, q->qwire_len);
    switch (mode) {
    case R_DROP:
    case R_CLOSE:
        return false;
    case R_NXDOMAIN:
    case R_RCODE:
    case R_TRUNC:
        flags |= mode == R_NXDOMAIN ? DNS_RCODE_NXDOMAIN : mode == R_RCODE ? s->rcode : F_TC;
        build_reply(s, q, q->id, flags, qwire, false, 0, m);
        return true;
    case R_LOWER:
        for (size_t i = 0; i < q->qwire_len; i++)
            if (qwire[i] >= 'A' && qwire[i] <= 'Z')
                qwire[i] = (uint8_t)(qwire[i] + 32);
        break;
    default:
        break;
    }
    uint16_t id = mode == R_BADID ? (uint16_t)(q->id ^ 0x5555) : q->id;
    build_reply(s, q, id, flags, qwire, true, tcp ? s->tcp_size : 0, m);
    return true;
}

/* Stray datagrams, each with an address that must never be used. */
static void send_strays(struct srv *s, int fd, const struct seen *q, const struct sockaddr *to,
                        socklen_t tl, struct msg *m)
{
    uint32_t real = s->ips[0];
    s->ips[0] = 0x06060606;
    uint8_t other[DNS_NAME_WIRE_MAX];
    memcpy(other, q->qwire, q->qwire_len);
    other[1] = other[1] == 'z' ? 'y' : 'z'; /* first letter of the first label */
    build_reply(s, q, (uint16_t)(q->id + 1), F_QR | F_RD | F_RA, q->qwire, true, 0, m);
    sendto(fd, m->b, m->n, 0, to, tl);
    build_reply(s, q, q->id, F_QR | F_RD | F_RA, other, true, 0, m);
    sendto(fd, m->b, m->n, 0, to, tl);
    build_reply(s, q, q->id, F_RD, q->qwire, true, 0, m); /* QR clear */
    sendto(fd, m->b, m->n, 0, to, tl);
    sendto(fd, "junk!", 5, 0, to, tl);
    s->ips[0] = real;
}

static void srv_udp_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    uint8_t pkt[4096];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&from, &fl);
    struct seen q;
    if (n < 0 || !parse_query(pkt, (size_t)n, &q))
        return;
    s->udp_queries++;
    s->last = q;
    if (s->udp == R_SPOOF)
        send_strays(s, fd, &q, (struct sockaddr *)&from, fl, &reply);
    if (make_reply(s, &q, s->udp == R_SPOOF ? R_ANSWER : s->udp, false, &reply))
        sendto(fd, reply.b, reply.n, 0, (struct sockaddr *)&from, fl);
}

static void conn_close(struct srv *s)
{
    if (s->conn_ev)
        event_free(s->conn_ev);
    if (s->conn_fd >= 0)
        close(s->conn_fd);
    s->conn_ev = NULL;
    s->conn_fd = -1;
    s->conn_len = 0;
}

static void srv_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    struct seen q;
    ssize_t n = recv(fd, s->conn_buf + s->conn_len, sizeof(s->conn_buf) - s->conn_len, 0);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN)
            conn_close(s);
        return;
    }
    s->conn_len += (size_t)n;
    size_t want = s->conn_len >= 2 ? ((size_t)s->conn_buf[0] << 8) | s->conn_buf[1] : SIZE_MAX;
    if (want == SIZE_MAX || s->conn_len < 2 + want || !parse_query(s->conn_buf + 2, want, &q))
        return;
    s->conn_len = 0;
    s->tcp_queries++;
    s->last = q;
    if (make_reply(s, &q, s->tcp, true, &reply)) {
        /* Small, on loopback: the socket buffer takes it at once. */
        uint8_t len[2] = {(uint8_t)(reply.n >> 8), (uint8_t)reply.n};
        if (send(fd, len, 2, MSG_NOSIGNAL) != 2 ||
            send(fd, reply.b, reply.n, MSG_NOSIGNAL) != (ssize_t)reply.n)
            diag("test server: short TCP write");
    } else if (s->tcp == R_CLOSE) {
        conn_close(s);
    }
}

static void srv_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    conn_close(s);
    s->conn_fd = cfd;
    s->conn_ev = event_new(base, cfd, EV_READ | EV_PERSIST, srv_conn_cb, s);
    event_add(s->conn_ev, NULL);
}

static int bind_loopback(int type, uint16_t port)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
                    (type == SOCK_STREAM && listen(fd, 8) < 0))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static bool srv_start(struct srv *s)
{
    *s = (struct srv){.tcp_fd = -1, .conn_fd = -1, .ttl = 60};
    for (int tries = 0; tries < 50 && s->tcp_fd < 0; tries++) {
        if ((s->udp_fd = bind_loopback(SOCK_DGRAM, 0)) < 0)
            return false;
        s->port = bound_port(s->udp_fd);
        if ((s->tcp_fd = bind_loopback(SOCK_STREAM, s->port)) < 0)
            close(s->udp_fd); /* TCP port taken: another pair */
    }
    if (s->tcp_fd < 0)
        return false;
    s->udp_ev = event_new(base, s->udp_fd, EV_READ | EV_PERSIST, srv_udp_cb, s);
    s->accept_ev = event_new(base, s->tcp_fd, EV_READ | EV_PERSIST, srv_accept_cb, s);
    event_add(s->udp_ev, NULL);
    event_add(s->accept_ev, NULL);
    return true;
}

/* Stops TCP only (connections refused from now on), or everything. */
static void srv_stop_tcp(struct srv *s)
{
    conn_close(s);
    event_free(s->accept_ev);
    close(s->tcp_fd);
    s->accept_ev = NULL;
    s->tcp_fd = -1;
}

static void srv_stop(struct srv *s)
{
    if (s->tcp_fd >= 0)
        srv_stop_tcp(s);
    event_free(s->udp_ev);
    close(s->udp_fd);
}

/* Answers with n A records first_ip, first_ip + 1... */
static void srv_answers(struct srv *s, uint32_t ttl, size_t n, uint32_t first_ip)
{
    s->udp = R_ANSWER;
    s->ttl = ttl;
    s->n_ips = n;
    for (size_t i = 0; i < n; i++)
        s->ips[i] = first_ip + (uint32_t)i;
}

/* A port on 127.0.0.1 with nobody listening (bound, read, released). */
static uint16_t closed_port(void)
{
    int fd = bind_loopback(SOCK_DGRAM, 0);
    uint16_t p = fd >= 0 ? bound_port(fd) : 9;
    if (fd >= 0)
        close(fd);
    return p;
}

static void upstream_at(struct dns_resolver_config *c, uint16_t port)
{
    char spec[32];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", port);
    if (dns_upstream_parse(spec, &c->servers[c->n_servers], NULL) == 0)
        c->n_servers++;
}

/* Resolver defaults with short timers and one server (port 0: none). */
static struct dns_resolver_config rcfg(uint32_t attempt_ms, uint32_t total_ms, uint16_t port)
{
    struct dns_resolver_config c;
    dns_resolver_config_default(&c);
    c.attempt_ms = attempt_ms;
    c.total_ms = total_ms;
    if (port)
        upstream_at(&c, port);
    return c;
}

/* ---- running the loop ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until *count >= want or max_ms passed; true when reached. */
static bool run_until(const int *count, int want, int max_ms)
{
    uint64_t deadline = time_mono_ms() + (uint64_t)max_ms;
    while (*count < want && time_mono_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    return *count >= want;
}

/* Runs the loop for ms (to show that nothing more happens). */
static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

/* ---- what callbacks saw ---- */

static int all_calls; /* every callback of every kind */

struct got {
    int calls;
    bool ok;
    unsigned rcode;
    size_t n_rr, n_ips;
    uint32_t ips[DNS_MAX_ANSWERS];
    uint32_t ttl0;
    char detail[80];
    unsigned attempts;
    bool used_tcp, cache_hit;
    uint32_t ms;
};

static void got_result(struct got *g, const struct dns_result *r)
{
    g->rcode = r->rcode;
    g->n_rr = r->n;
    g->n_ips = dns_result_ipv4(r, g->ips, DNS_MAX_ANSWERS);
    g->ttl0 = r->n ? r->rr[0].ttl : 0;
}

static void resolve_cb(void *arg, const struct dns_resolve_info *info)
{
    struct got *g = arg;
    g->calls++;
    all_calls++;
    g->ok = info->ok;
    if (info->ok)
        got_result(g, info->result);
    snprintf(g->detail, sizeof(g->detail), "%s", info->detail ? info->detail : "");
    g->attempts = info->attempts;
    g->used_tcp = info->used_tcp;
    g->ms = info->elapsed_ms;
}

/* Calls seen inside dns_resolver_query() / still pending after a callback. */
static int sync_calls, pending_after;

/* One query on a fresh resolver; waits up to 3 s. */
static struct got resolve_once(const struct dns_resolver_config *c, const char *qname)
{
    struct got g = {0};
    struct dns_resolver *r = dns_resolver_new(base, c, NULL);
    struct dns_upquery *q = r ? dns_resolver_query(r, qname, DNS_T_A, resolve_cb, &g, NULL) : NULL;
    if (!q)
        diag("cannot start a query for %s", qname);
    sync_calls += g.calls;
    if (q && run_until(&g.calls, 1, 3000) && dns_resolver_pending(r) != 0)
        pending_after++;
    dns_resolver_free(r);
    return g;
}

/* Runs the loop until a and b were both called (3 s at most). */
static bool wait_both(const struct got *a, const struct got *b)
{
    run_until(&all_calls, all_calls + 2 - a->calls - b->calls, 3000);
    return a->calls + b->calls == 2;
}

/* ---- resolver ---- */

static void test_answer(void)
{
    struct srv s;
    if (!ok(srv_start(&s), "test server on 127.0.0.1 (UDP and TCP on one port)"))
        return;
    struct dns_resolver_config c = rcfg(2000, 5000, s.port);
    srv_answers(&s, 77, 3, 0xC0000201);
    struct got g = resolve_once(&c, "www.example.com");
    ok(g.calls == 1 && g.ok && g.rcode == DNS_RCODE_NOERROR, "answer: ok, NOERROR");
    ok(g.n_ips == 3 && g.ips[0] == 0xC0000201 && g.ips[2] == 0xC0000203,
       "three A records, in order");
    is_int(g.ttl0, 77, "TTL as sent");
    ok(g.attempts == 1 && !g.used_tcp && g.ms < 1000, "one attempt, UDP, %u ms", g.ms);
    is_int(s.udp_queries, 1, "server saw one query");
    is_mem(s.last.qwire, s.last.qwire_len, "\3www\7example\3com", 17,
           "question as asked, lowercase (0x20 off by default)");
    ok(s.last.rd && s.last.qtype == DNS_T_A, "RD set, type A");
    ok(s.last.edns && s.last.edns_size == 1232, "EDNS advertising 1232");

    s.cname = "target.example.net";
    g = resolve_once(&c, "alias.example.com");
    ok(g.ok && g.n_rr == 4 && g.n_ips == 3, "CNAME chain followed to the A records");
    s.cname = NULL;

    s.udp = R_NXDOMAIN;
    g = resolve_once(&c, "nx.example.com");
    ok(g.calls == 1 && g.ok && g.rcode == DNS_RCODE_NXDOMAIN && g.n_rr == 0 && g.attempts == 1,
       "NXDOMAIN is a usable answer: no second attempt");

    struct dns_resolver_config none = rcfg(2000, 5000, 0);
    g = resolve_once(&none, "www.example.com");
    ok(g.calls == 1 && !g.ok && strcmp(g.detail, "no upstream servers configured") == 0,
       "no servers: '%s'", g.detail);

    struct dns_resolver *r = dns_resolver_new(base, &c, NULL);
    struct err *e = NULL;
    ok(!dns_resolver_query(r, "www.example.com", DNS_T_AAAA, resolve_cb, &g, &e) && e,
       "AAAA is not asked upstream");
    err_free(e);
    e = NULL;
    ok(!dns_resolver_query(r, "bad name.com", DNS_T_A, resolve_cb, &g, &e) && e,
       "invalid name refused");
    err_free(e);
    dns_resolver_free(r);
    srv_stop(&s);
}

static void test_truncation_tcp(void)
{
    struct srv s;
    if (!ok(srv_start(&s), "test server"))
        return;
    struct dns_resolver_config c = rcfg(300, 5000, s.port);
    srv_answers(&s, 60, 16, 0x0A0B0C01);
    s.udp = R_TRUNC;
    struct got g = resolve_once(&c, "big.example.com");
    ok(g.ok && g.n_ips == 16 && g.ips[15] == 0x0A0B0C10, "TC over UDP -> full answer over TCP");
    ok(g.used_tcp && g.attempts == 1, "same attempt, used TCP");
    ok(s.udp_queries == 1 && s.tcp_queries == 1, "one UDP and one TCP query");

    /* The TCP answer cap: at the limit, and one past. */
    c.max_answer = 1000;
    s.tcp_size = 1000;
    g = resolve_once(&c, "big.example.com");
    ok(g.ok && g.n_ips == 16, "TCP answer of exactly max_answer (1000) bytes accepted");
    s.tcp_size = 1001;
    s.tcp_queries = 0;
    g = resolve_once(&c, "big.example.com");
    ok(g.calls == 1 && !g.ok && strcmp(g.detail, "upstream answer over the size limit") == 0,
       "1001 bytes: failed ('%s')", g.detail);
    ok(g.attempts == 1 && s.tcp_queries == 1, "at once, no second attempt");
    s.tcp_size = 0;
    c.max_answer = DNS_UPSTREAM_MAX;

    /* TCP leg failures end the attempt; the next one starts at once (long
     * timers, so waiting for one would show). */
    c.attempt_ms = 1500;
    static const struct {
        enum reply mode;
        const char *detail;
    } legs[] = {
        {R_CLOSE, "upstream closed the TCP connection"},
        {R_TRUNC, "truncated answer over TCP"},
        {R_BADID, "mismatched answer over TCP"},
    };
    for (size_t i = 0; i < sizeof(legs) / sizeof(legs[0]); i++) {
        s.tcp = legs[i].mode;
        s.udp_queries = s.tcp_queries = 0;
        g = resolve_once(&c, "big.example.com");
        ok(!g.ok && strcmp(g.detail, legs[i].detail) == 0 && g.attempts == 2 &&
               s.udp_queries == 2 && s.tcp_queries == 2 && g.ms < 1000,
           "TCP leg '%s': next attempt without waiting (%u ms)", g.detail, g.ms);
    }

    /* Nobody listening on TCP. */
    srv_stop_tcp(&s);
    g = resolve_once(&c, "big.example.com");
    ok(!g.ok && strcmp(g.detail, "TCP connect to the upstream failed") == 0 && g.ms < 1000,
       "TCP refused: '%s'", g.detail);
    srv_stop(&s);
    if (!ok(srv_start(&s), "test server again"))
        return;
    c = rcfg(300, 5000, s.port);
    s.udp = R_TRUNC;

    /* A silent TCP leg gets its own attempt timer. */
    s.tcp = R_DROP;
    g = resolve_once(&c, "big.example.com");
    ok(!g.ok && strcmp(g.detail, "timeout") == 0 && g.used_tcp && s.tcp_queries == 2,
       "silent TCP: timeout after two TCP legs");
    ok(g.ms >= 590 && g.ms < 2000, "two 300 ms TCP legs (%u ms)", g.ms);
    srv_stop(&s);
}

static void test_timeouts(void)
{
    struct srv s;
    if (!ok(srv_start(&s), "test server"))
        return;
    s.udp = R_DROP;
    struct dns_resolver_config c = rcfg(200, 5000, s.port);
    struct got g = resolve_once(&c, "slow.example.com");
    ok(g.calls == 1 && !g.ok && strcmp(g.detail, "timeout") == 0, "silent server: timeout");
    ok(g.attempts == 2 && s.udp_queries == 2, "2 attempts, 2 queries");
    ok(g.ms >= 390 && g.ms < 1500, "2 x 200 ms per attempt (%u ms)", g.ms);

    /* The total deadline cuts the attempts short. */
    c = rcfg(400, 500, s.port);
    c.attempts = 3;
    s.udp_queries = 0;
    g = resolve_once(&c, "slow.example.com");
    ok(g.calls == 1 && !g.ok && strcmp(g.detail, "timeout") == 0, "total deadline: timeout");
    ok(g.attempts == 2 && s.udp_queries == 2, "ended during the 2nd of 3 attempts");
    ok(g.ms >= 490 && g.ms < 1100, "after 500 ms total, not 1200 (%u ms)", g.ms);

    /* Error rcodes end an attempt at once. */
    s.udp = R_RCODE;
    s.rcode = DNS_RCODE_SERVFAIL;
    c = rcfg(2000, 5000, s.port);
    s.udp_queries = 0;
    g = resolve_once(&c, "sf.example.com");
    ok(!g.ok && strcmp(g.detail, "upstream SERVFAIL") == 0, "SERVFAIL: '%s'", g.detail);
    ok(g.attempts == 2 && s.udp_queries == 2 && g.ms < 1000, "retried once, no timer wait");
    s.rcode = DNS_RCODE_REFUSED;
    g = resolve_once(&c, "ref.example.com");
    ok(!g.ok && strcmp(g.detail, "upstream REFUSED") == 0, "REFUSED: '%s'", g.detail);
    srv_stop(&s);
}

static void test_two_servers(void)
{
    struct srv a, b;
    if (!ok(srv_start(&a) && srv_start(&b), "two test servers"))
        return;
    a.udp = R_DROP;
    srv_answers(&b, 60, 1, 0x01020304);
    struct dns_resolver_config c = rcfg(200, 5000, a.port);
    upstream_at(&c, b.port);
    struct got g = resolve_once(&c, "rr.example.com");
    ok(g.ok && g.n_ips == 1 && g.ips[0] == 0x01020304, "attempt 2 goes to the second server");
    ok(g.attempts == 2 && a.udp_queries == 1 && b.udp_queries == 1 && g.ms >= 190,
       "one query each, after the first attempt's timer (%u ms)", g.ms);

    /* detail names how the last attempt failed, not an earlier one. */
    a.udp = R_DROP;
    b.udp = R_TRUNC;
    b.tcp = R_BADID;
    g = resolve_once(&c, "rr.example.com");
    ok(!g.ok && strcmp(g.detail, "mismatched answer over TCP") == 0,
       "timeout, then a wrong TCP answer: '%s'", g.detail);

    c.attempt_ms = 1500;
    a.udp = R_RCODE;
    a.rcode = DNS_RCODE_SERVFAIL;
    b.udp = R_ANSWER;
    g = resolve_once(&c, "rr.example.com");
    ok(g.ok && g.attempts == 2 && g.ms < 1000, "SERVFAIL from the first: the second answers");

    /* Round robin: consecutive queries start on consecutive servers. */
    srv_answers(&a, 60, 1, 0x0A0A0A0A);
    a.udp_queries = b.udp_queries = 0;
    struct dns_resolver *r = dns_resolver_new(base, &c, NULL);
    struct got g1 = {0}, g2 = {0};
    dns_resolver_query(r, "one.example.com", DNS_T_A, resolve_cb, &g1, NULL);
    dns_resolver_query(r, "two.example.com", DNS_T_A, resolve_cb, &g2, NULL);
    is_int(dns_resolver_pending(r), 2, "two queries pending");
    ok(wait_both(&g1, &g2) && a.udp_queries == 1 && b.udp_queries == 1, "one query to each server");
    ok(g1.ips[0] == 0x0A0A0A0A && g2.ips[0] == 0x01020304, "first to server 1, second to 2");
    dns_resolver_free(r);

    /* An ICMP port unreachable ends the attempt without waiting. */
    struct dns_resolver_config d = rcfg(2000, 5000, closed_port());
    upstream_at(&d, b.port);
    g = resolve_once(&d, "icmp.example.com");
    ok(g.ok && g.attempts == 2 && g.ips[0] == 0x01020304 && g.ms < 1000,
       "closed port: next server at once (%u ms)", g.ms);
    d = rcfg(2000, 5000, closed_port());
    g = resolve_once(&d, "icmp.example.com");
    ok(!g.ok && strcmp(g.detail, "upstream unreachable") == 0 && g.ms < 1000,
       "only a closed port: '%s'", g.detail);
    srv_stop(&a);
    srv_stop(&b);
}

static void test_stray_datagrams(void)
{
    struct srv s;
    if (!ok(srv_start(&s), "test server"))
        return;
    srv_answers(&s, 60, 1, 0x5D5D5D5D);
    s.udp = R_SPOOF;
    struct dns_resolver_config c = rcfg(500, 5000, s.port);
    struct got g = resolve_once(&c, "spoof.example.com");
    ok(g.ok && g.n_ips == 1 && g.ips[0] == 0x5D5D5D5D,
       "wrong id, wrong question, QR clear and junk ignored; the answer used");
    is_int(g.attempts, 1, "within the first attempt");

    /* 0x20: the question goes out in mixed case and must come back so. */
    c.use_0x20 = true;
    s.udp = R_ANSWER;
    const char *name = "abcdefghijklmnopqrstuvwxyz.example.com";
    g = resolve_once(&c, name);
    ok(g.ok && g.ips[0] == 0x5D5D5D5D, "0x20: answer echoing the question accepted");
    bool upper = false;
    for (size_t i = 0; i < s.last.qwire_len; i++)
        upper |= s.last.qwire[i] >= 'A' && s.last.qwire[i] <= 'Z';
    ok(upper, "0x20: the question had upper-case letters");
    s.udp = R_LOWER;
    s.udp_queries = 0;
    g = resolve_once(&c, name);
    ok(!g.ok && strcmp(g.detail, "timeout") == 0 && s.udp_queries == 2,
       "0x20: a lowercased echo is ignored like a spoof: '%s'", g.detail);
    srv_stop(&s);
}

/* ---- dns_vm ---- */

static uint64_t fake_now = 1000000;
static uint64_t fake_clock(void *ctx)
{
    return fake_now;
}

static struct dns_vm *vm_for(uint16_t port, uint32_t attempt_ms)
{
    struct dns_vm_config cfg;
    dns_vm_config_default(&cfg);
    cfg.resolver.attempt_ms = attempt_ms;
    upstream_at(&cfg.resolver, port);
    cfg.clock = fake_clock;
    return dns_vm_new(base, &cfg, NULL);
}

static void lookup_cb(void *arg, const struct dns_lookup_info *info)
{
    struct got *g = arg;
    g->calls++;
    all_calls++;
    g->ok = info->ok;
    if (info->ok)
        got_result(g, info->result);
    g->cache_hit = info->cache_hit;
    g->ms = info->upstream_ms;
    snprintf(g->detail, sizeof(g->detail), "%s", info->detail ? info->detail : "");
}

/* dns_vm_lookup() for type A; a hit lands in *hit (caller clears it). */
static int lookup(struct dns_vm *vm, const char *name, struct dns_result *hit, struct got *g,
                  struct dns_lookup **h)
{
    return dns_vm_lookup(vm, name, DNS_T_A, hit, lookup_cb, g, h, NULL);
}

/* A lookup expected to miss, run to its callback. */
static struct got lookup_wait(struct dns_vm *vm, const char *name)
{
    struct got g = {0};
    struct dns_result hit = {0};
    struct dns_lookup *h;
    if (lookup(vm, name, &hit, &g, &h) == 0)
        run_until(&g.calls, 1, 3000);
    dns_result_clear(&hit);
    return g;
}

/* A callback that cancels the other waiter and looks the name up again. */
static int cancel_other_calls;
struct cancel_other {
    struct got g;
    struct dns_lookup **other;
    struct dns_vm *vm;
    int nested_rc;
};

static void cancel_other_cb(void *arg, const struct dns_lookup_info *info)
{
    struct cancel_other *co = arg;
    cancel_other_calls++;
    lookup_cb(&co->g, info);
    if (*co->other)
        dns_lookup_cancel(*co->other);
    *co->other = NULL;
    struct dns_result hit = {0};
    struct dns_lookup *h;
    co->nested_rc = lookup(co->vm, "share.example.com", &hit, &co->g, &h);
    dns_result_clear(&hit);
}

static void test_vm_lookup(void)
{
    struct srv s;
    struct dns_vm *vm = srv_start(&s) ? vm_for(s.port, 300) : NULL;
    if (!ok(vm != NULL, "test server and dns_vm"))
        return;
    srv_answers(&s, 5, 2, 0x08080801);
    struct dns_result hit = {0};
    struct dns_lookup *h1, *h2, *h3;
    struct got g1 = {0}, g2 = {0};
    ok(lookup(vm, "share.example.com", &hit, &g1, &h1) == 0 && h1, "miss: pending");
    ok(lookup(vm, "share.example.com", &hit, &g2, &h2) == 0 && h2, "identical lookup: pending");
    is_int(dns_resolver_pending(dns_vm_resolver(vm)), 1, "one upstream query in flight");
    ok(wait_both(&g1, &g2) && g1.ok && g2.ok, "both callbacks ran");
    is_int(s.udp_queries, 1, "the server saw one query");
    ok(g1.n_ips == 2 && g2.n_ips == 2 && g2.ips[1] == 0x08080802 && !g1.cache_hit,
       "both got the answer, not from the cache");
    is_int(g1.ttl0, 5, "the callback gets the upstream TTL");

    /* The second lookup hits the cache; TTL 5 is clamped up to 30. */
    is_int(lookup(vm, "share.example.com", &hit, &g1, &h3), 1, "second lookup: cache hit");
    ok(h3 == NULL && hit.n == 2 && hit.rr[0].ttl == 30, "TTL clamped to 30 (%u)",
       hit.n ? hit.rr[0].ttl : 0);
    dns_result_clear(&hit);
    fake_now += 20000;
    lookup(vm, "share.example.com", &hit, &g1, &h3);
    is_int(hit.n ? hit.rr[0].ttl : 0, 10, "20 s later: 10 s left");
    dns_result_clear(&hit);
    is_int(dns_vm_lookup(vm, "share.example.com", DNS_T_TXT, &hit, lookup_cb, &g1, &h3, NULL), 0,
           "another type misses");
    dns_lookup_cancel(h3);
    fake_now += 10000;
    struct got g3 = lookup_wait(vm, "share.example.com");
    ok(g3.calls == 1 && g3.ok && s.udp_queries == 2, "30 s later: expired, upstream again");

    /* A long TTL is clamped down to 300. */
    srv_answers(&s, 86400, 1, 0x08080808);
    lookup_wait(vm, "long.example.com");
    ok(lookup(vm, "long.example.com", &hit, &g3, &h3) == 1 && hit.rr[0].ttl == 300,
       "TTL 86400 cached as 300");
    dns_result_clear(&hit);

    /* NXDOMAIN is cached 30 s; a failure is not cached. */
    s.udp = R_NXDOMAIN;
    lookup_wait(vm, "nx.example.com");
    ok(lookup(vm, "nx.example.com", &hit, &g3, &h3) == 1 && hit.rcode == DNS_RCODE_NXDOMAIN,
       "NXDOMAIN cached");
    dns_result_clear(&hit);
    fake_now += 30000;
    ok(lookup(vm, "nx.example.com", &hit, &g3, &h3) == 0, "negative entry gone after 30 s");
    dns_lookup_cancel(h3);
    s.udp = R_RCODE;
    s.rcode = DNS_RCODE_SERVFAIL;
    g3 = lookup_wait(vm, "fail.example.com");
    ok(g3.calls == 1 && !g3.ok && strcmp(g3.detail, "upstream SERVFAIL") == 0,
       "SERVFAIL: !ok, '%s'", g3.detail);
    ok(lookup(vm, "fail.example.com", &hit, &g3, &h3) == 0, "a failure is not cached");
    dns_lookup_cancel(h3);

    struct err *e = NULL;
    ok(dns_vm_lookup(vm, "x.example.com", DNS_T_AAAA, &hit, lookup_cb, &g3, &h3, &e) < 0 && e,
       "AAAA is not looked up");
    err_free(e);
    dns_vm_free(vm);
    srv_stop(&s);
}

static void test_vm_cancel(void)
{
    struct srv s;
    struct dns_vm *vm = srv_start(&s) ? vm_for(s.port, 150) : NULL;
    if (!ok(vm != NULL, "test server and dns_vm"))
        return;
    struct dns_result hit = {0};
    struct dns_lookup *h1 = NULL, *h2 = NULL;
    struct got g1 = {0}, g2 = {0};

    /* The only waiter cancelled before the loop runs: nothing is sent. */
    srv_answers(&s, 60, 1, 0x01010101);
    lookup(vm, "c1.example.com", &hit, &g1, &h1);
    dns_lookup_cancel(h1);
    is_int(dns_resolver_pending(dns_vm_resolver(vm)), 0, "upstream query cancelled with it");
    run_for(200);
    ok(g1.calls == 0 && s.udp_queries == 0, "no callback, no query sent");

    /* Cancelled after the query went out: no retry, no callback. */
    s.udp = R_DROP;
    lookup(vm, "c2.example.com", &hit, &g1, &h1);
    run_until(&s.udp_queries, 1, 2000);
    dns_lookup_cancel(h1);
    run_for(400);
    ok(g1.calls == 0 && s.udp_queries == 1, "no second attempt, no callback");

    /* One of two waiters cancelled: the other still gets the answer. */
    srv_answers(&s, 60, 1, 0x02020202);
    lookup(vm, "c3.example.com", &hit, &g1, &h1);
    lookup(vm, "c3.example.com", &hit, &g2, &h2);
    dns_lookup_cancel(h1);
    is_int(dns_resolver_pending(dns_vm_resolver(vm)), 1, "query kept for the other waiter");
    run_until(&g2.calls, 1, 3000);
    ok(g2.calls == 1 && g2.ok && g2.ips[0] == 0x02020202 && g1.calls == 0,
       "remaining waiter answered, cancelled one not called");

    /* A callback cancels the other waiter of its query and looks again. */
    struct cancel_other a = {.vm = vm}, b = {.vm = vm};
    struct dns_lookup *ha = NULL, *hb = NULL;
    a.other = &hb;
    b.other = &ha;
    dns_vm_lookup(vm, "share.example.com", DNS_T_A, &hit, cancel_other_cb, &a, &ha, NULL);
    dns_vm_lookup(vm, "share.example.com", DNS_T_A, &hit, cancel_other_cb, &b, &hb, NULL);
    run_until(&cancel_other_calls, 1, 3000);
    run_for(100);
    ok(a.g.calls + b.g.calls == 1, "exactly one callback ran (%d + %d)", a.g.calls, b.g.calls);
    ok(a.nested_rc == 1 || b.nested_rc == 1, "lookup from inside the callback hits the cache");

    /* Freeing the VM with lookups pending calls nothing. */
    s.udp = R_DROP;
    g1.calls = 0;
    int sent = s.udp_queries;
    lookup(vm, "c4.example.com", &hit, &g1, &h1);
    lookup(vm, "c5.example.com", &hit, &g1, &h2);
    run_until(&s.udp_queries, sent + 2, 2000);
    dns_vm_free(vm);
    run_for(50);
    ok(s.udp_queries == sent + 2 && g1.calls == 0, "dns_vm_free: pending callbacks not called");
    srv_stop(&s);
}

static void dial_cb(void *arg, const struct dns_dial_info *info)
{
    struct got *g = arg;
    g->calls++;
    all_calls++;
    g->ok = info->ok;
    g->rcode = info->rcode;
    g->n_ips = info->n;
    memcpy(g->ips, info->addrs, sizeof(g->ips));
    g->cache_hit = info->cache_hit;
    snprintf(g->detail, sizeof(g->detail), "%s", info->detail ? info->detail : "");
}

/* A dial expected to be pending, run to its callback. */
static struct got dial_wait(struct dns_vm *vm, const char *host)
{
    struct got g = {0};
    struct dns_dial_info hit;
    struct dns_lookup *h;
    if (dns_vm_resolve_ipv4(vm, host, &hit, dial_cb, &g, &h, NULL) == 0 && h)
        run_until(&g.calls, 1, 3000);
    return g;
}

static void test_vm_dial(void)
{
    struct srv s;
    struct dns_vm *vm = srv_start(&s) ? vm_for(s.port, 150) : NULL;
    if (!ok(vm != NULL, "test server and dns_vm"))
        return;
    struct dns_dial_info hit;
    struct dns_lookup *h;
    struct got g = {0};
    ok(dns_vm_resolve_ipv4(vm, "192.0.2.7", &hit, dial_cb, &g, &h, NULL) == 1 && h == NULL,
       "IPv4 literal: answered at once");
    ok(hit.ok && hit.n == 1 && hit.addrs[0] == 0xC0000207 && hit.rcode == DNS_RCODE_NOERROR,
       "literal address in host order");
    is_int(s.udp_queries, 0, "no query for a literal");

    srv_answers(&s, 60, 2, 0xCB007101);
    s.cname = "edge.example.net";
    g = dial_wait(vm, "Dial.Example.COM.");
    ok(g.calls == 1 && g.ok && g.rcode == DNS_RCODE_NOERROR && g.n_ips == 2 &&
           g.ips[0] == 0xCB007101 && g.ips[1] == 0xCB007102 && !g.cache_hit,
       "name: A records at the end of the CNAME chain, host order");
    is_mem(s.last.qwire, s.last.qwire_len, "\4dial\7example\3com", 18, "asked the normalised name");
    struct dns_result cached = {0};
    ok(lookup(vm, "dial.example.com", &cached, &g, &h) == 1, "the dial filled the shared cache");
    dns_result_clear(&cached);
    ok(dns_vm_resolve_ipv4(vm, "dial.example.com", &hit, dial_cb, &g, &h, NULL) == 1 &&
           hit.cache_hit && hit.n == 2 && hit.addrs[1] == 0xCB007102,
       "second dial: cache hit");
    is_int(s.udp_queries, 1, "one upstream query in all");
    s.cname = NULL;

    /* A guest lookup and a dial for one name share the upstream query. */
    struct got gl = {0}, gd = {0};
    lookup(vm, "both.example.com", &cached, &gl, &h);
    dns_vm_resolve_ipv4(vm, "both.example.com", &hit, dial_cb, &gd, &h, NULL);
    ok(wait_both(&gl, &gd) && gl.ok && gd.ok && gd.n_ips == 2 && s.udp_queries == 2,
       "lookup and dial coalesced into one query");

    s.udp = R_NXDOMAIN;
    g = dial_wait(vm, "nx.example.com");
    ok(g.calls == 1 && g.ok && g.rcode == DNS_RCODE_NXDOMAIN && g.n_ips == 0,
       "NXDOMAIN: ok, no addresses");
    s.udp = R_DROP;
    g = dial_wait(vm, "slow.example.com");
    ok(g.calls == 1 && !g.ok && strcmp(g.detail, "timeout") == 0, "no answer: !ok, timeout");
    struct err *e = NULL;
    ok(dns_vm_resolve_ipv4(vm, "bad host!", &hit, dial_cb, &g, &h, &e) < 0 && e && e->status == 400,
       "not a host name: 400");
    err_free(e);
    dns_vm_free(vm);
    srv_stop(&s);
}

/* ---- dns.upstreams and resolv.conf ---- */

static char tmpdir[64];

static const char *write_conf(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* dns_upstreams_configure() into a fresh config; the servers as text into
 * out, or the error's status and message. */
static int configure(const char *const *items, size_t n, const char *conf, char *out, size_t cap)
{
    struct dns_resolver_config c;
    dns_resolver_config_default(&c);
    struct err *e = NULL;
    int rc = dns_upstreams_configure(&c, items, n, conf, &e);
    size_t k = 0;
    out[0] = '\0';
    if (rc < 0)
        snprintf(out, cap, "%d %s", e ? e->status : -1, e ? e->msg : "(no error)");
    for (size_t i = 0; rc == 0 && i < c.n_servers && k < cap; i++) {
        char one[80];
        dns_upstream_format(&c.servers[i], one, sizeof(one));
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? " " : "", one);
    }
    err_free(e);
    return rc;
}

static void test_upstream_parse(void)
{
    static const struct {
        const char *in, *want;
    } good[] = {
        {"192.0.2.53", "192.0.2.53:53"},         {"192.0.2.53:5353", "192.0.2.53:5353"},
        {"[2001:db8::53]", "[2001:db8::53]:53"}, {"[::1]:5300", "[::1]:5300"},
        {"2001:db8::1", "[2001:db8::1]:53"},     {"1.2.3.4:65535", "1.2.3.4:65535"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct dns_upstream u;
        char buf[80] = "";
        if (dns_upstream_parse(good[i].in, &u, NULL) == 0)
            dns_upstream_format(&u, buf, sizeof(buf));
        is_str(buf, good[i].want, "parse '%s'", good[i].in);
    }
    static const char *const bad[] = {
        "",         "system2",       "example.com", "300.1.1.1",    "192.0.2.1:0",
        "1.2.3.4:", "1.2.3.4:65536", ":53",         "[192.0.2.1]",  "[::1]:",
        "[::1]x",   "[::1",          "[[::1]]",     "fe80::1%eth0", "1.2.3.4:53x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dns_upstream u;
        struct err *e = NULL;
        ok(dns_upstream_parse(bad[i], &u, &e) < 0 && e && e->status == 400, "refuse '%s'", bad[i]);
        err_free(e);
    }
}

static void test_upstreams_configure(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_dns_resolver.XXXXXX");
    if (!ok(mkdtemp(tmpdir) != NULL, "temporary directory"))
        return;
    char out[1024];
    const char *conf = write_conf(
        "resolv.conf", "# written by the test\nsearch example.com\nnameserver 192.0.2.1\n"
                       "nameserver 2001:db8::53\nnameserver\t192.0.2.2   # trailing comment\n"
                       "nameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver not-an-ip\n"
                       "options ndots:2\n  nameserver 192.0.2.3\nnameserver192.0.2.9\n"
                       "; nameserver 192.0.2.8\nnameserver 192.0.2.4");
    ok(configure(NULL, 0, conf, out, sizeof(out)) == 0, "empty list = system");
    is_str(out, "192.0.2.1:53 [2001:db8::53]:53 192.0.2.2:53 192.0.2.3:53 192.0.2.4:53",
           "nameservers: IPv4 and IPv6, duplicates once, scoped and junk skipped");
    const char *items[] = {"system", "192.0.2.1:53", "198.51.100.1:5353", "[2001:db8::1]:5300",
                           "198.51.100.1:5353"};
    ok(configure(items, 5, conf, out, sizeof(out)) == 0, "system plus explicit servers");
    is_str(out,
           "192.0.2.1:53 [2001:db8::53]:53 192.0.2.2:53 192.0.2.3:53 192.0.2.4:53 "
           "198.51.100.1:5353 [2001:db8::1]:5300",
           "explicit duplicates kept once");

    /* Eight servers, and one more. */
    const char *nine[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5",
                          "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"};
    ok(configure(nine, 8, conf, out, sizeof(out)) == 0 && strstr(out, "10.0.0.8:53"), "8 servers");
    ok(configure(nine, 9, conf, out, sizeof(out)) < 0 && strncmp(out, "400 ", 4) == 0 &&
           strstr(out, "more than 8"),
       "9 servers: %s", out);
    const char *sys_plus[] = {"system", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"};
    ok(configure(sys_plus, 4, conf, out, sizeof(out)) == 0, "5 from the file + 3 = 8");
    ok(configure(sys_plus, 5, conf, out, sizeof(out)) < 0 && strncmp(out, "400 ", 4) == 0,
       "5 from the file + 4 = 9: %s", out);

    /* Duplicates do not use up the server slots. */
    char dup_text[400];
    for (size_t i = 0, k = 0; i < 10; i++)
        k += (size_t)snprintf(dup_text + k, sizeof(dup_text) - k, "nameserver 192.0.2.%d\n",
                              i < 9 ? 1 : 2);
    configure(NULL, 0, write_conf("dups.conf", dup_text), out, sizeof(out));
    is_str(out, "192.0.2.1:53 192.0.2.2:53", "nine copies then another: both kept");

    /* Empty results are errors that name the file. */
    const char *empty = write_conf("empty.conf", "");
    ok(configure(NULL, 0, empty, out, sizeof(out)) < 0 && strncmp(out, "400 ", 4) == 0 &&
           strstr(out, empty),
       "empty file: %s", out);
    const char *comments = write_conf("comments.conf", "# nothing\nsearch example.com\n");
    ok(configure(NULL, 0, comments, out, sizeof(out)) < 0 && strncmp(out, "400 ", 4) == 0,
       "no nameserver line: %s", out);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
    ok(configure(NULL, 0, missing, out, sizeof(out)) < 0 && strstr(out, "missing.conf"),
       "missing file: %s", out);
    const char *bad_items[] = {"system", "not-an-address"};
    ok(configure(bad_items, 2, conf, out, sizeof(out)) < 0 && strncmp(out, "400 ", 4) == 0 &&
           strstr(out, "not-an-address"),
       "bad entry: %s", out);

    /* The file is capped at 64 KiB. */
    char *huge = malloc(70000);
    memset(huge, '#', 69999);
    huge[69999] = '\0';
    memcpy(huge, "nameserver 192.0.2.1\n", 21);
    const char *big = write_conf("big.conf", huge);
    free(huge);
    ok(configure(NULL, 0, big, out, sizeof(out)) < 0, "resolv.conf over 64 KiB: %s", out);

    static const char *const names[] = {"resolv.conf", "dups.conf", "empty.conf", "comments.conf",
                                        "big.conf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(write_conf(names[i], ""));
    ok(rmdir(tmpdir) == 0, "temporary directory removed");
}

int main(void)
{
    base = event_base_new();
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval ten_ms = {0, 10000};
    event_add(tick, &ten_ms); /* EVLOOP_ONCE returns at least every 10 ms */
    test_answer();
    test_truncation_tcp();
    test_timeouts();
    test_two_servers();
    test_stray_datagrams();
    is_int(sync_calls, 0, "no callback ran inside dns_resolver_query()");
    is_int(pending_after, 0, "no query left pending after its callback");
    test_vm_lookup();
    test_vm_cancel();
    test_vm_dial();
    test_upstream_parse();
    test_upstreams_configure();
    event_free(tick);
    event_base_free(base);
    return done_testing();
}
