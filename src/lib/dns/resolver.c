/* Asynchronous upstream DNS client (resolver.h).
 *
 * A query is a small state machine driven by three events: its socket, a
 * per-attempt timer (which also kicks off the first attempt from the loop)
 * and the overall deadline. UDP sockets are connect()ed, so only the chosen
 * upstream's datagrams (and its ICMP errors) arrive on them. */
#include "dns/resolver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/evio.h"
#include "base/util.h"

#define RX_MAX 65536

struct dns_resolver {
    struct event_base *base;
    struct dns_resolver_config cfg;
    struct dns_upquery *head;
    size_t pending;
    unsigned next_server;
    uint8_t *rx; /* one UDP datagram */
};

struct dns_upquery {
    struct dns_resolver *r;
    struct dns_upquery *prev, *next;
    dns_resolve_cb cb;
    void *arg;
    uint16_t qtype, id;
    char qname[DNS_NAME_BUF];
    uint8_t qwire[DNS_NAME_WIRE_MAX]; /* as sent this attempt (0x20 applied) */
    size_t qwire_len;
    uint8_t pkt[DNS_HEADER_LEN + DNS_NAME_WIRE_MAX + 4 + 11];
    size_t pkt_len;
    bool started, tcp, used_tcp, connected;
    unsigned attempt, first_server;
    int fd;
    struct event *rd, *wr, *attempt_timer, *total_timer;
    struct buf out, in;
    uint64_t start_ms;
    const char *last_error;
};

static void start_attempt(struct dns_upquery *q);

/* ---- lifetime ---- */

struct dns_resolver *dns_resolver_new(struct event_base *base,
                                      const struct dns_resolver_config *cfg, struct err **errp)
{
    struct dns_resolver *r = calloc(1, sizeof(*r));
    uint8_t *rx = malloc(RX_MAX);
    if (!r || !rx) {
        free(r);
        free(rx);
        err_set(errp, ENOMEM, "dns resolver: out of memory");
        return NULL;
    }
    r->base = base;
    r->cfg = *cfg;
    if (r->cfg.max_answer == 0 || r->cfg.max_answer > DNS_UPSTREAM_MAX)
        r->cfg.max_answer = DNS_UPSTREAM_MAX;
    r->rx = rx;
    return r;
}

static void close_transport(struct dns_upquery *q)
{
    if (q->rd)
        event_free(q->rd);
    if (q->wr)
        event_free(q->wr);
    q->rd = q->wr = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    buf_free(&q->out);
    buf_free(&q->in);
    q->tcp = q->connected = false;
}

static void query_free(struct dns_upquery *q)
{
    struct dns_resolver *r = q->r;
    close_transport(q);
    if (q->attempt_timer)
        event_free(q->attempt_timer);
    if (q->total_timer)
        event_free(q->total_timer);
    if (q->prev)
        q->prev->next = q->next;
    else
        r->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    r->pending--;
    free(q);
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    while (r->head)
        query_free(r->head);
    free(r->rx);
    free(r);
}

size_t dns_resolver_pending(const struct dns_resolver *r)
{
    return r->pending;
}

void dns_upquery_cancel(struct dns_upquery *q)
{
    if (q)
        query_free(q);
}

/* ---- completion ---- */

static void finish(struct dns_upquery *q, const struct dns_result *res, const char *detail)
{
    struct dns_resolve_info info = {
        .ok = res != NULL,
        .result = res,
        .elapsed_ms = (uint32_t)MIN(time_mono_ms() - q->start_ms, (uint64_t)UINT32_MAX),
        .detail = res ? NULL : (detail ? detail : "timeout"),
        .attempts = q->attempt,
        .used_tcp = q->used_tcp,
    };
    dns_resolve_cb cb = q->cb;
    void *arg = q->arg;
    query_free(q); /* first: the callback may start queries */
    cb(arg, &info);
}

static const char *rcode_detail(unsigned rcode)
{
    switch (rcode) {
    case DNS_RCODE_FORMERR:
        return "upstream FORMERR";
    case DNS_RCODE_SERVFAIL:
        return "upstream SERVFAIL";
    case DNS_RCODE_NOTIMP:
        return "upstream NOTIMP";
    case DNS_RCODE_REFUSED:
        return "upstream REFUSED";
    default:
        return "upstream error rcode";
    }
}

/* Handles one complete message. Returns true when the query is finished
 * or moved on (the caller must not touch q again). */
static bool handle_answer(struct dns_upquery *q, const uint8_t *msg, size_t len);

static void start_tcp(struct dns_upquery *q);

static void tcp_or_next(struct dns_upquery *q, const char *why)
{
    q->last_error = why;
    start_attempt(q);
}

static bool handle_answer(struct dns_upquery *q, const uint8_t *msg, size_t len)
{
    struct dns_result res = {0};
    unsigned rcode;
    enum dns_upstream_status st =
        dnsmsg_parse_response(msg, len, q->id, q->qwire, q->qwire_len, q->qtype,
                              q->r->cfg.use_0x20, &res, &rcode);
    switch (st) {
    case DNS_UP_OK:
        finish(q, &res, NULL);
        dns_result_clear(&res);
        return true;
    case DNS_UP_TRUNCATED:
        if (q->tcp) {
            tcp_or_next(q, "truncated answer over TCP");
            return true;
        }
        start_tcp(q);
        return true;
    case DNS_UP_RCODE:
        tcp_or_next(q, rcode_detail(rcode));
        return true;
    case DNS_UP_MALFORMED:
    case DNS_UP_MISMATCH:
        break;
    }
    if (q->tcp) { /* a dedicated connection answering something else is broken */
        tcp_or_next(q, st == DNS_UP_MALFORMED ? "malformed answer" : "mismatched answer over TCP");
        return true;
    }
    return false; /* UDP: spoofed or stray datagram, keep waiting */
}

/* ---- UDP ---- */

static void udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_upquery *q = arg;
    for (;;) {
        ssize_t n = recv(fd, q->r->rx, RX_MAX, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            tcp_or_next(q, "upstream unreachable");
            return;
        }
        if (handle_answer(q, q->r->rx, (size_t)n))
            return;
    }
}

static void random_bytes(void *p, size_t n)
{
    ssize_t got;
    do
        got = getrandom(p, n, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)n) {
        /* Never expected on Linux >= 3.17; keep going with clock bits. */
        uint64_t t = time_mono_us();
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)p)[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)i;
    }
}

/* New id and (with 0x20) new letter case for this attempt's message. */
static int prepare_packet(struct dns_upquery *q)
{
    uint8_t rnd[2 + 32];
    random_bytes(rnd, sizeof(rnd));
    q->id = (uint16_t)((rnd[0] << 8) | rnd[1]);
    q->qwire_len = (size_t)dnsname_text_to_wire(q->qname, q->qwire, sizeof(q->qwire));
    if (q->r->cfg.use_0x20) {
        for (size_t i = 0; i < q->qwire_len; i++) {
            uint8_t c = q->qwire[i];
            bool flip = (rnd[2 + (i / 8) % 32] >> (i % 8)) & 1;
            if (flip && c >= 'a' && c <= 'z')
                q->qwire[i] = (uint8_t)(c - 'a' + 'A');
        }
    }
    int n = dnsmsg_build_query(q->id, q->qwire, q->qwire_len, q->qtype, q->r->cfg.edns_size,
                               q->pkt, sizeof(q->pkt));
    if (n < 0)
        return -1;
    q->pkt_len = (size_t)n;
    return 0;
}

static const struct dns_upstream *current_server(struct dns_upquery *q)
{
    const struct dns_resolver_config *c = &q->r->cfg;
    return &c->servers[(q->first_server + q->attempt - 1) % c->n_servers];
}

static int open_socket(struct dns_upquery *q, int type)
{
    const struct dns_upstream *s = current_server(q);
    q->fd = socket(s->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -1;
    if (connect(q->fd, (const struct sockaddr *)&s->addr, s->addr_len) < 0 &&
        errno != EINPROGRESS)
        return -1;
    return 0;
}

static void arm_attempt_timer(struct dns_upquery *q)
{
    uint32_t ms = q->r->cfg.attempt_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(q->attempt_timer, &tv);
}

static void start_attempt(struct dns_upquery *q)
{
    close_transport(q);
    if (q->r->cfg.n_servers == 0) {
        finish(q, NULL, "no upstream servers configured");
        return;
    }
    if (q->attempt >= q->r->cfg.attempts) {
        finish(q, NULL, q->last_error);
        return;
    }
    q->attempt++;
    if (prepare_packet(q) < 0 || open_socket(q, SOCK_DGRAM) < 0 ||
        send(q->fd, q->pkt, q->pkt_len, 0) != (ssize_t)q->pkt_len) {
        q->last_error = "upstream unreachable";
        start_attempt(q); /* depth bounded by the attempt count */
        return;
    }
    q->rd = event_new(q->r->base, q->fd, EV_READ | EV_PERSIST, udp_read_cb, q);
    if (!q->rd || event_add(q->rd, NULL) < 0) {
        finish(q, NULL, "event loop error");
        return;
    }
    arm_attempt_timer(q);
}

/* ---- TCP (after a truncated UDP answer) ---- */

/* True when the query finished or moved on (q may be gone). */
static bool tcp_try_complete(struct dns_upquery *q)
{
    if (q->in.len < 2)
        return false;
    const uint8_t *p = buf_head(&q->in);
    size_t want = ((size_t)p[0] << 8) | p[1];
    if (want > q->r->cfg.max_answer) {
        finish(q, NULL, "upstream answer over the size limit");
        return true;
    }
    if (q->in.len < 2 + want)
        return false;
    return handle_answer(q, p + 2, want); /* always true over TCP */
}

static void tcp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_upquery *q = arg;
    for (;;) {
        enum evio_read_result rr = evio_read(fd, &q->in, 16384);
        if (rr == EVIO_DATA) {
            if (tcp_try_complete(q))
                return;
            continue;
        }
        if (rr == EVIO_AGAIN)
            return;
        tcp_or_next(q, rr == EVIO_EOF ? "upstream closed the TCP connection" : "TCP error");
        return;
    }
}

static void tcp_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_upquery *q = arg;
    if (!q->connected) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
            tcp_or_next(q, "TCP connect to the upstream failed");
            return;
        }
        q->connected = true;
    }
    if (evio_flush(fd, &q->out, q->wr) < 0) {
        tcp_or_next(q, "TCP error");
        return;
    }
    if (q->out.len == 0 && event_add(q->rd, NULL) < 0)
        finish(q, NULL, "event loop error");
}

static void start_tcp(struct dns_upquery *q)
{
    /* Same upstream, same message: only the transport changes. */
    if (q->rd)
        event_free(q->rd);
    q->rd = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    q->used_tcp = true;
    uint8_t len[2] = {(uint8_t)(q->pkt_len >> 8), (uint8_t)q->pkt_len};
    buf_init(&q->out, 2 + q->pkt_len);
    buf_init(&q->in, 2 + q->r->cfg.max_answer);
    if (open_socket(q, SOCK_STREAM) < 0 || buf_append(&q->out, len, 2) < 0 ||
        buf_append(&q->out, q->pkt, q->pkt_len) < 0) {
        tcp_or_next(q, "TCP connect to the upstream failed");
        return;
    }
    q->tcp = true;
    q->rd = event_new(q->r->base, q->fd, EV_READ | EV_PERSIST, tcp_read_cb, q);
    q->wr = event_new(q->r->base, q->fd, EV_WRITE | EV_PERSIST, tcp_write_cb, q);
    if (!q->rd || !q->wr || event_add(q->wr, NULL) < 0) {
        finish(q, NULL, "event loop error");
        return;
    }
    arm_attempt_timer(q); /* the TCP leg gets its own 2 s; the 5 s total still caps */
}

/* ---- timers and start ---- */

static void attempt_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_upquery *q = arg;
    if (!q->started) {
        q->started = true;
        start_attempt(q);
        return;
    }
    tcp_or_next(q, "timeout");
}

static void total_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    finish(arg, NULL, "timeout");
}

struct dns_upquery *dns_resolver_query(struct dns_resolver *r, const char *qname, uint16_t qtype,
                                       dns_resolve_cb cb, void *arg, struct err **errp)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    if (dnsname_text_to_wire(qname, wire, sizeof(wire)) < 0 ||
        dns_type_action(qtype) != DNS_TYPE_FORWARD) {
        err_set(errp, EINVAL, "dns resolver: cannot ask for %s type %u", qname, qtype);
        return NULL;
    }
    struct dns_upquery *q = calloc(1, sizeof(*q));
    if (!q) {
        err_set(errp, ENOMEM, "dns resolver: out of memory");
        return NULL;
    }
    q->r = r;
    q->fd = -1;
    q->cb = cb;
    q->arg = arg;
    q->qtype = qtype;
    str_copy(q->qname, sizeof(q->qname), qname);
    q->start_ms = time_mono_ms();
    q->first_server = r->cfg.n_servers ? r->next_server++ % r->cfg.n_servers : 0;
    q->next = r->head;
    if (r->head)
        r->head->prev = q;
    r->head = q;
    r->pending++;
    q->attempt_timer = evtimer_new(r->base, attempt_timer_cb, q);
    q->total_timer = evtimer_new(r->base, total_timer_cb, q);
    struct timeval now = {0, 0};
    struct timeval total = {.tv_sec = r->cfg.total_ms / 1000,
                            .tv_usec = (suseconds_t)(r->cfg.total_ms % 1000) * 1000};
    if (!q->attempt_timer || !q->total_timer || evtimer_add(q->attempt_timer, &now) < 0 ||
        evtimer_add(q->total_timer, &total) < 0) {
        query_free(q);
        err_set(errp, ENOMEM, "dns resolver: cannot arm timers");
        return NULL;
    }
    return q;
}
