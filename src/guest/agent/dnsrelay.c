/* DNS relay (network.md 4, guest part). iptables redirects UDP and TCP port
 * 53 to 127.0.0.1:1053. Every query goes to the host on one long-lived
 * MUX_SVC_DNS stream as DNS_QUERY {T_TAG, T_PROTO_L4, T_PID, T_COMM,
 * T_PAYLOAD}; DNS_ANSWER {T_TAG, T_PAYLOAD} goes back to the UDP peer or TCP
 * connection the tag belongs to, DNS_DROP {T_TAG} forgets it (the client
 * times out). The stream is opened on the first query and again after a
 * reset.
 *
 * Bounds: 256 pending tags (one more is answered REFUSED here), queries of at
 * most 4 KiB (larger: FORMERR here), 64 TCP connections with at most 16
 * queries in flight each (a 17th closes the connection) and 10 s idle. When
 * the stream is reset, pending queries are answered SERVFAIL so clients fail
 * fast; after a refusal the stream is not reopened for a second. Answers this
 * relay makes itself carry the query's id and question (glibc ignores
 * answers whose question does not match) and no records.
 *
 * TCP connections are freed only from a zero-delay deadline, never inside
 * their own callbacks. Pending entries are owned by dnsr_pend[]; a TCP
 * connection that goes away leaves its entries without a destination. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "proto/wire.h"

#define DNSR_MAX_PENDING 256
#define DNSR_MAX_QUERY 4096u
#define DNSR_MAX_ANSWER 65535u
#define DNSR_TCP_MAX_CONNS 64
#define DNSR_TCP_PIPELINE 16
#define DNSR_TCP_IDLE_MS 10000
#define DNSR_TCP_OUT_MAX (256u * 1024u)
#define DNSR_PENDING_TTL_MS 10000
#define DNSR_LOOKUP_BUDGET_MS 20
#define DNSR_REOPEN_BACKOFF_MS 1000
#define DNSR_HISTORY 16
#define DNSR_L4_UDP 1u
#define DNSR_L4_TCP 2u
#define DNSR_SO_ORIGINAL_DST 80

enum dnsr_rcode { DNSR_FORMERR = 1, DNSR_SERVFAIL = 2, DNSR_REFUSED = 5 };

struct dnsr_tcp {
    int fd;
    struct watch w;
    bool ready; /* process lookup done: reading */
    bool eof;
    bool dead;
    unsigned inflight;
    struct sockaddr_in peer, dst;
    struct procinfo pi;
    struct buf in, out;
    struct deadline idle;
    struct dnsr_tcp *next_dead;
};

enum dnsr_pstate { DNSR_FREE, DNSR_LOOKUP, DNSR_SENT };

struct dnsr_pending {
    enum dnsr_pstate state;
    uint32_t tag;
    uint32_t proto;
    struct sockaddr_in peer; /* UDP */
    struct dnsr_tcp *conn;   /* TCP; NULL once the connection is gone */
    uint8_t *query;
    size_t qlen;
    uint64_t expires_ms;
    size_t hist;
};

struct dnsr_hist {
    uint64_t seq;
    uint32_t proto, pid;
    char comm[PROCINFO_COMM_MAX + 1];
    char outcome[24];
};

struct dnsr_stream_ctx {
    struct stream_ctx base;
    struct rec_reader rr;
};

static int dnsr_udp = -1;
static struct watch dnsr_udp_w = {.fd = -1};
static struct watch dnsr_tcp_lsn = {.fd = -1};
static struct dnsr_pending dnsr_pend[DNSR_MAX_PENDING];
static size_t dnsr_npend;
static uint32_t dnsr_next_tag;
static struct mux_stream *dnsr_stream;
static struct dnsr_stream_ctx dnsr_sctx;
static uint64_t dnsr_reopen_at;
static size_t dnsr_tcp_live;
static struct dnsr_tcp *dnsr_graveyard;
static struct deadline dnsr_reaper, dnsr_sweeper;
static struct dnsr_hist dnsr_hist[DNSR_HISTORY];
static uint64_t dnsr_hist_next = 1;
static struct {
    uint64_t udp, tcp, answered, dropped, expired, refused_local, servfail_local, formerr_local,
        tcp_over_limit, stream_opens, stream_resets;
} dnsr_stats;

static void dnsr_tcp_kill(struct dnsr_tcp *c);
static void dnsr_tcp_interest(struct dnsr_tcp *c);

/* ---------- pure helpers (unit-tested) ---------- */

/* Length of the question section of a one-question query starting at
 * offset 12, or 0 if it cannot be walked (compression, bad labels, short). */
static size_t dnsr_question_len(const uint8_t *q, size_t len)
{
    size_t off = 12, name = 0;
    for (;;) {
        if (off >= len)
            return 0;
        uint8_t l = q[off];
        if (l == 0)
            break;
        if (l > 63 || (name += (size_t)l + 1) > 255)
            return 0;
        off += (size_t)l + 1;
    }
    off += 1 + 4; /* root label, type, class */
    return off <= len ? off - 12 : 0;
}

/* An answer made here: the query's id, opcode, RD and question, QR set, the
 * given rcode, no records. Returns its length (<= cap), 0 if the query is too
 * short to have an id and flags. */
static size_t dnsr_error_reply(const uint8_t *q, size_t qlen, uint8_t rcode, uint8_t *out,
                               size_t cap)
{
    if (qlen < 12 || cap < 12)
        return 0;
    memset(out, 0, 12);
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
    out[3] = (uint8_t)(rcode & 0x0f);
    size_t ql = 0;
    if (wire_get_u16(q + 4) == 1 && (q[2] & 0x78) == 0)
        ql = dnsr_question_len(q, qlen);
    if (ql && 12 + ql <= cap) {
        out[5] = 1;
        memcpy(out + 12, q + 12, ql);
        return 12 + ql;
    }
    return 12;
}

static int dnsr_query_build(struct buf *b, uint32_t tag, uint32_t proto, const struct procinfo *pi,
                            const uint8_t *payload, size_t len)
{
    if (tlv_put_u32(b, T_TAG, tag) < 0 || tlv_put_u32(b, T_PROTO_L4, proto) < 0 ||
        tlv_put_u32(b, T_PID, pi->pid) < 0 || tlv_put_str(b, T_COMM, pi->comm) < 0 ||
        tlv_put(b, T_PAYLOAD, payload, len) < 0)
        return -1;
    return 0;
}

/* Next length-prefixed message in a TCP stream buffer. 1: msg and len set
 * (2 + len bytes to consume); 0: incomplete; -1: empty or oversized. */
static int dnsr_tcp_next(const uint8_t *p, size_t avail, const uint8_t **msg, size_t *len)
{
    if (avail < 2)
        return 0;
    size_t l = wire_get_u16(p);
    if (l == 0 || l > DNSR_MAX_QUERY)
        return -1;
    if (avail < 2 + l)
        return 0;
    *msg = p + 2;
    *len = l;
    return 1;
}

/* ---------- pending tags ---------- */

static void dnsr_hist_set(struct dnsr_pending *p, const char *outcome)
{
    struct dnsr_hist *h = &dnsr_hist[p->hist % DNSR_HISTORY];
    if (p->hist && h->seq == p->hist)
        str_copy(h->outcome, sizeof(h->outcome), outcome);
}

static void dnsr_pend_free(struct dnsr_pending *p)
{
    if (p->state == DNSR_FREE)
        return;
    procinfo_cancel(p);
    if (p->conn && p->conn->inflight > 0)
        p->conn->inflight--;
    free(p->query);
    *p = (struct dnsr_pending){.state = DNSR_FREE};
    dnsr_npend--;
}

static struct dnsr_pending *dnsr_pend_find(uint32_t tag)
{
    for (size_t i = 0; i < DNSR_MAX_PENDING; i++)
        if (dnsr_pend[i].state == DNSR_SENT && dnsr_pend[i].tag == tag)
            return &dnsr_pend[i];
    return NULL;
}

/* Delivers a DNS message to whoever asked; consumes nothing. */
static void dnsr_deliver(struct dnsr_pending *p, const uint8_t *msg, size_t len)
{
    if (p->proto == DNSR_L4_UDP) {
        if (sendto(dnsr_udp, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&p->peer,
                   sizeof(p->peer)) < 0)
            log_debug("dns: answer to udp client: %s", strerror(errno));
        return;
    }
    struct dnsr_tcp *c = p->conn;
    if (!c || c->dead)
        return;
    uint8_t hdr[2];
    wire_put_u16(hdr, (uint16_t)len);
    if (len > DNSR_MAX_ANSWER || buf_append(&c->out, hdr, 2) < 0 ||
        buf_append(&c->out, msg, len) < 0) {
        dnsr_tcp_kill(c); /* the client does not read its answers */
        return;
    }
    dnsr_tcp_interest(c);
}

/* Answers a query here (FORMERR/SERVFAIL/REFUSED). */
static void dnsr_local_answer(struct dnsr_pending *p, const uint8_t *q, size_t qlen, uint8_t rcode)
{
    uint8_t out[12 + 256 + 5];
    size_t n = dnsr_error_reply(q, qlen, rcode, out, sizeof(out));
    if (rcode == DNSR_REFUSED)
        dnsr_stats.refused_local++;
    else if (rcode == DNSR_SERVFAIL)
        dnsr_stats.servfail_local++;
    else
        dnsr_stats.formerr_local++;
    if (n)
        dnsr_deliver(p, out, n);
}

/* Every query still waiting on the host gets SERVFAIL (the stream is gone). */
static void dnsr_fail_all_sent(void)
{
    for (size_t i = 0; i < DNSR_MAX_PENDING; i++) {
        struct dnsr_pending *p = &dnsr_pend[i];
        if (p->state != DNSR_SENT)
            continue;
        dnsr_local_answer(p, p->query, p->qlen, DNSR_SERVFAIL);
        dnsr_hist_set(p, "servfail:stream-gone");
        dnsr_pend_free(p);
    }
}

/* ---------- the DNS stream ---------- */

static void dnsr_stream_end(bool reset_by_host)
{
    if (!dnsr_stream)
        return;
    uint32_t why = reset_by_host ? agent_reset_reason() : 0;
    dnsr_stats.stream_resets++;
    mux_stream_release(dnsr_stream);
    dnsr_stream = NULL;
    rec_reader_free(&dnsr_sctx.rr);
    dnsr_reopen_at = time_mono_ms() + (why == MUX_RST_REFUSED ? DNSR_REOPEN_BACKOFF_MS : 0);
    if (why)
        log_debug("dns: stream reset by the host (%s)", mux_reset_reason_name(why));
    dnsr_fail_all_sent();
}

static void dnsr_handle_record(uint16_t type, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v, *payload = NULL;
    size_t n, plen = 0;
    uint32_t qtag = 0;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_TAG)
            tlv_as_u32(v, n, &qtag);
        else if (tag == T_PAYLOAD) {
            payload = v;
            plen = n;
        }
    }
    struct dnsr_pending *pd = qtag ? dnsr_pend_find(qtag) : NULL;
    if (!pd)
        return; /* expired, or a tag we never sent: nothing to do */
    if (type == DNS_ANSWER && payload && plen > 0) {
        dnsr_stats.answered++;
        dnsr_deliver(pd, payload, plen);
        dnsr_hist_set(pd, "answered");
    } else {
        dnsr_stats.dropped++;
        dnsr_hist_set(pd, "dropped");
    }
    dnsr_pend_free(pd);
}

static void dnsr_on_data(struct mux_stream *s, const uint8_t *d, size_t len)
{
    if (rec_reader_feed(&dnsr_sctx.rr, d, len) < 0)
        goto violation;
    mux_stream_consumed(s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&dnsr_sctx.rr, &type, &p, &n)) == 1) {
        if (type != DNS_ANSWER && type != DNS_DROP)
            goto violation;
        dnsr_handle_record(type, p, n);
    }
    if (rc == 0)
        return;
violation:
    log_warn("dns: malformed record from the host; resetting the DNS stream");
    mux_stream_reset(s, MUX_RST_PROTOCOL);
    dnsr_stream_end(false);
}

static void dnsr_on_fin(struct mux_stream *s)
{
    mux_stream_close_write(s);
    dnsr_stream_end(false);
}

static void dnsr_on_reset(struct mux_stream *s)
{
    dnsr_stream_end(true);
}

static const struct stream_ops dnsr_stream_ops = {
    .on_data = dnsr_on_data,
    .on_fin = dnsr_on_fin,
    .on_reset = dnsr_on_reset,
};

static struct mux_stream *dnsr_get_stream(void)
{
    if (dnsr_stream)
        return dnsr_stream;
    if (time_mono_ms() < dnsr_reopen_at)
        return NULL;
    struct mux_stream *s = mux_open(agent_mux(), MUX_SVC_DNS, NULL, 0);
    if (!s)
        return NULL;
    dnsr_stats.stream_opens++;
    dnsr_sctx.base.ops = &dnsr_stream_ops;
    rec_reader_init(&dnsr_sctx.rr, DNSR_MAX_ANSWER + 256);
    mux_stream_set_user(s, &dnsr_sctx);
    dnsr_stream = s;
    return s;
}

/* ---------- queries ---------- */

static void dnsr_send(struct dnsr_pending *p, const struct procinfo *pi)
{
    struct dnsr_hist *h = &dnsr_hist[dnsr_hist_next % DNSR_HISTORY];
    *h = (struct dnsr_hist){.seq = dnsr_hist_next, .proto = p->proto, .pid = pi->pid};
    str_copy(h->comm, sizeof(h->comm), pi->comm);
    str_copy(h->outcome, sizeof(h->outcome), "sent");
    p->hist = dnsr_hist_next++;
    struct mux_stream *s = dnsr_get_stream();
    struct buf b;
    buf_init(&b, DNSR_MAX_QUERY + 512);
    int rc = -1;
    if (s && dnsr_query_build(&b, p->tag, p->proto, pi, p->query, p->qlen) == 0)
        rc = stream_send_rec(s, DNS_QUERY, buf_head(&b), b.len);
    buf_free(&b);
    if (rc < 0) {
        /* No stream (refused, channel down) or no room in its queue. */
        uint8_t rcode = s ? DNSR_REFUSED : DNSR_SERVFAIL;
        dnsr_local_answer(p, p->query, p->qlen, rcode);
        dnsr_hist_set(p, s ? "refused:busy" : "servfail:no-stream");
        dnsr_pend_free(p);
        return;
    }
    p->state = DNSR_SENT;
    p->expires_ms = time_mono_ms() + DNSR_PENDING_TTL_MS;
    if (!dnsr_sweeper.at_ms)
        deadline_arm(&dnsr_sweeper, time_mono_ms() + 1000);
    agent_kick();
}

static void dnsr_lookup_done(void *owner, const struct procinfo *pi)
{
    dnsr_send(owner, pi);
}

/* One query from a client. conn is NULL for UDP. */
static void dnsr_query(const uint8_t *q, size_t len, const struct sockaddr_in *peer,
                       struct dnsr_tcp *conn)
{
    struct dnsr_pending tmp = {.proto = conn ? DNSR_L4_TCP : DNSR_L4_UDP, .conn = conn};
    if (peer)
        tmp.peer = *peer;
    if (len > DNSR_MAX_QUERY) {
        dnsr_local_answer(&tmp, q, len, DNSR_FORMERR);
        return;
    }
    struct dnsr_pending *p = NULL;
    for (size_t i = 0; i < DNSR_MAX_PENDING && dnsr_npend < DNSR_MAX_PENDING; i++) {
        if (dnsr_pend[i].state == DNSR_FREE) {
            p = &dnsr_pend[i];
            break;
        }
    }
    uint8_t *copy = p ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        dnsr_local_answer(&tmp, q, len, DNSR_REFUSED);
        return;
    }
    memcpy(copy, q, len);
    *p = tmp;
    p->state = DNSR_LOOKUP;
    p->query = copy;
    p->qlen = len;
    if (++dnsr_next_tag == 0)
        dnsr_next_tag = 1;
    p->tag = dnsr_next_tag;
    dnsr_npend++;
    if (conn) {
        conn->inflight++;
        dnsr_stats.tcp++;
        dnsr_send(p, &conn->pi);
        return;
    }
    dnsr_stats.udp++;
    struct procinfo_query pq = {.proto = IPPROTO_UDP,
                                .src_ip = peer->sin_addr.s_addr,
                                .src_port = ntohs(peer->sin_port),
                                .budget_ms = DNSR_LOOKUP_BUDGET_MS};
    if (procinfo_lookup(&pq, dnsr_lookup_done, p) < 0) {
        struct procinfo unknown;
        procinfo_unknown(&unknown);
        dnsr_send(p, &unknown);
    }
}

/* Forgets queries the host never answered (the client gave up long ago). */
static void dnsr_sweep(struct deadline *d)
{
    uint64_t now = time_mono_ms();
    bool left = false;
    for (size_t i = 0; i < DNSR_MAX_PENDING; i++) {
        struct dnsr_pending *p = &dnsr_pend[i];
        if (p->state != DNSR_SENT)
            continue;
        if (p->expires_ms <= now) {
            dnsr_stats.expired++;
            dnsr_hist_set(p, "expired");
            dnsr_pend_free(p);
        } else {
            left = true;
        }
    }
    if (left)
        deadline_arm(&dnsr_sweeper, now + 1000);
}

/* ---------- UDP ---------- */

static void dnsr_udp_cb(struct watch *w, uint32_t revents)
{
    static uint8_t pkt[DNSR_MAX_QUERY + 1];
    for (int i = 0; i < 32; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        ssize_t n = recvfrom(w->fd, pkt, sizeof(pkt), MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&peer, &pl);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        if (pl != sizeof(peer) || peer.sin_family != AF_INET)
            continue;
        /* MSG_TRUNC: n is the real size, only sizeof(pkt) bytes are in pkt;
         * more than DNSR_MAX_QUERY gets FORMERR either way. */
        dnsr_query(pkt, MIN((size_t)n, sizeof(pkt)), &peer, NULL);
    }
}

/* ---------- TCP ---------- */

static void dnsr_reap(struct deadline *d)
{
    while (dnsr_graveyard) {
        struct dnsr_tcp *c = dnsr_graveyard;
        dnsr_graveyard = c->next_dead;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

static void dnsr_tcp_kill(struct dnsr_tcp *c)
{
    if (c->dead)
        return;
    c->dead = true;
    watch_del(&c->w);
    close(c->fd);
    c->fd = -1;
    deadline_disarm(&c->idle);
    procinfo_cancel(c);
    for (size_t i = 0; i < DNSR_MAX_PENDING; i++)
        if (dnsr_pend[i].state != DNSR_FREE && dnsr_pend[i].conn == c)
            dnsr_pend[i].conn = NULL;
    dnsr_tcp_live--;
    c->next_dead = dnsr_graveyard;
    dnsr_graveyard = c;
    deadline_arm(&dnsr_reaper, time_mono_ms());
}

static void dnsr_tcp_interest(struct dnsr_tcp *c)
{
    if (c->dead)
        return;
    uint32_t ev = 0;
    if (c->ready && !c->eof)
        ev |= EPOLLIN;
    if (c->out.len > 0)
        ev |= EPOLLOUT;
    watch_mod(&c->w, ev);
    if (c->eof && c->inflight == 0 && c->out.len == 0)
        dnsr_tcp_kill(c);
}

static void dnsr_tcp_touch(struct dnsr_tcp *c)
{
    deadline_arm(&c->idle, time_mono_ms() + DNSR_TCP_IDLE_MS);
}

static void dnsr_tcp_idle(struct deadline *d)
{
    dnsr_tcp_kill(d->owner);
}

static void dnsr_tcp_parse(struct dnsr_tcp *c)
{
    for (;;) {
        const uint8_t *msg;
        size_t len;
        int rc = dnsr_tcp_next(buf_head(&c->in), c->in.len, &msg, &len);
        if (rc == 0)
            return;
        if (rc < 0 || c->inflight >= DNSR_TCP_PIPELINE) {
            dnsr_tcp_kill(c);
            return;
        }
        dnsr_query(msg, len, NULL, c);
        buf_consume(&c->in, 2 + len);
        if (c->dead)
            return;
    }
}

/* Reads what the client sent and hands complete queries on. */
static void dnsr_tcp_read(struct dnsr_tcp *c)
{
    uint8_t *dst = buf_reserve(&c->in, 4096);
    if (!dst) { /* cannot happen: a frame is at most 2 + 4 KiB and gets consumed */
        dnsr_tcp_kill(c);
        return;
    }
    ssize_t n = recv(c->fd, dst, 4096, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        dnsr_tcp_kill(c);
        return;
    }
    if (n == 0) {
        c->eof = true; /* answers still pending are written, then we close */
        return;
    }
    buf_commit(&c->in, (size_t)n);
    dnsr_tcp_touch(c);
    dnsr_tcp_parse(c);
}

static void dnsr_tcp_cb(struct watch *w, uint32_t revents)
{
    struct dnsr_tcp *c = w->owner;
    if (c->dead)
        return;
    if (!c->ready) {
        if (revents & (EPOLLERR | EPOLLHUP))
            dnsr_tcp_kill(c);
        return;
    }
    if (c->out.len > 0 && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        ssize_t n = send(c->fd, buf_head(&c->out), c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            dnsr_tcp_kill(c);
            return;
        }
        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            dnsr_tcp_touch(c);
        }
    }
    if (!c->eof && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        dnsr_tcp_read(c);
    else if (c->eof && (revents & (EPOLLERR | EPOLLHUP)))
        dnsr_tcp_kill(c); /* reset, or both directions shut: nobody to answer */
    dnsr_tcp_interest(c);
}

static void dnsr_tcp_lookup_done(void *owner, const struct procinfo *pi)
{
    struct dnsr_tcp *c = owner;
    c->pi = *pi;
    c->ready = true;
    dnsr_tcp_interest(c);
}

static void dnsr_tcp_adopt(int fd, const struct sockaddr_in *peer)
{
    struct dnsr_tcp *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->peer = *peer;
    buf_init(&c->in, 2 + DNSR_MAX_QUERY + 4096);
    buf_init(&c->out, DNSR_TCP_OUT_MAX);
    c->idle.cb = dnsr_tcp_idle;
    c->idle.owner = c;
    socklen_t dl = sizeof(c->dst);
    if (getsockopt(fd, SOL_IP, DNSR_SO_ORIGINAL_DST, &c->dst, &dl) < 0)
        memset(&c->dst, 0, sizeof(c->dst));
    if (watch_add(&c->w, fd, 0, dnsr_tcp_cb, c) < 0) {
        close(fd);
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
        return;
    }
    dnsr_tcp_live++;
    dnsr_tcp_touch(c);
    struct procinfo_query q = {.proto = IPPROTO_TCP,
                               .src_ip = peer->sin_addr.s_addr,
                               .src_port = ntohs(peer->sin_port),
                               .dst_ip = c->dst.sin_addr.s_addr,
                               .dst_port = ntohs(c->dst.sin_port),
                               .budget_ms = DNSR_LOOKUP_BUDGET_MS};
    if (procinfo_lookup(&q, dnsr_tcp_lookup_done, c) < 0) {
        struct procinfo unknown;
        procinfo_unknown(&unknown);
        dnsr_tcp_lookup_done(c, &unknown);
    }
}

static void dnsr_accept_cb(struct watch *w, uint32_t revents)
{
    for (int i = 0; i < 32; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        if (dnsr_tcp_live >= DNSR_TCP_MAX_CONNS) {
            dnsr_stats.tcp_over_limit++;
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            close(fd);
            continue;
        }
        dnsr_tcp_adopt(fd, &peer);
    }
}

/* ---------- start and status ---------- */

static int dnsr_udp_open(uint16_t port, struct err **errp)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_sys(errp, "socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        err_sys(errp, "bind udp 127.0.0.1:%u", port);
        close(fd);
        return -1;
    }
    return fd;
}

int dns_relay_start(uint16_t port, struct err **errp)
{
    if (dnsr_udp >= 0)
        return 0;
    dnsr_reaper.cb = dnsr_reap;
    dnsr_sweeper.cb = dnsr_sweep;
    int ufd = dnsr_udp_open(port, errp);
    if (ufd < 0)
        return -1;
    int tfd = relay_listen_tcp(port, errp);
    if (tfd < 0) {
        close(ufd);
        return -1;
    }
    if (watch_add(&dnsr_udp_w, ufd, EPOLLIN, dnsr_udp_cb, NULL) < 0 ||
        watch_add(&dnsr_tcp_lsn, tfd, EPOLLIN, dnsr_accept_cb, NULL) < 0) {
        watch_del(&dnsr_udp_w);
        close(ufd);
        close(tfd);
        return err_sys(errp, "epoll");
    }
    dnsr_udp = ufd;
    return 0;
}

void dns_relay_status(struct buf *out)
{
    buf_printf(out,
               "dns: listening %s, stream %s, pending %zu/%d, udp %llu, tcp %llu, answered %llu, "
               "dropped %llu, expired %llu, refused-local %llu, servfail-local %llu, "
               "formerr-local %llu, tcp-conns %zu, stream-opens %llu, stream-resets %llu\n",
               dnsr_udp >= 0 ? "yes" : "no", dnsr_stream ? "open" : "closed", dnsr_npend,
               DNSR_MAX_PENDING, (unsigned long long)dnsr_stats.udp,
               (unsigned long long)dnsr_stats.tcp, (unsigned long long)dnsr_stats.answered,
               (unsigned long long)dnsr_stats.dropped, (unsigned long long)dnsr_stats.expired,
               (unsigned long long)dnsr_stats.refused_local,
               (unsigned long long)dnsr_stats.servfail_local,
               (unsigned long long)dnsr_stats.formerr_local, dnsr_tcp_live,
               (unsigned long long)dnsr_stats.stream_opens,
               (unsigned long long)dnsr_stats.stream_resets);
    for (uint64_t k = dnsr_hist_next > DNSR_HISTORY ? dnsr_hist_next - DNSR_HISTORY : 1;
         k < dnsr_hist_next; k++) {
        const struct dnsr_hist *h = &dnsr_hist[k % DNSR_HISTORY];
        if (h->seq == k)
            buf_printf(out, "query proto=%s pid=%u comm=%s outcome=%s\n",
                       h->proto == DNSR_L4_TCP ? "tcp" : "udp", h->pid, h->comm, h->outcome);
    }
}
