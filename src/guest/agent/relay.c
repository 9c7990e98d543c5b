/* TCP relay (network.md 2.5). iptables redirects every guest TCP connection
 * to port 443 or an http port to 127.0.0.1:10080. Per accepted connection we
 * read the original destination (SO_ORIGINAL_DST), find the owning process
 * (procinfo.c, 50 ms budget), open a MUX_SVC_NET stream whose metadata is
 * {T_DST_IP, T_DST_PORT, T_PID, T_COMM, T_EXE} and copy bytes both ways:
 *
 * - client -> host: read the socket only while the stream's send queue has
 *   room (else ask for on_writable), so a slow host stops the client;
 * - host -> client: write as data arrives; what the socket does not take is
 *   kept (at most one stream window) and credit is returned
 *   (mux_stream_consumed) only for bytes really written;
 * - half-close both ways: socket EOF -> FIN on the stream; FIN from the host
 *   -> shutdown(SHUT_WR) once everything before it was written;
 * - aborts both ways: a stream reset closes the socket with SO_LINGER 0 (the
 *   client sees RST); a socket error resets the stream.
 *
 * Connections are freed only from a zero-delay deadline (after the reactor
 * dispatched the current batch of events), never inside their callbacks. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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

#define RELAY_MAX_CONNS 512
/* network.md 2.5 says 50 ms; under TCG a sock_diag dump plus the /proc scan
 * takes longer than that, and an unnamed process weakens process.* rules and
 * the telemetry, so the relay waits up to 200 ms (docs/guest-network.md). */
#define RELAY_LOOKUP_BUDGET_MS 200
#define RELAY_READ_CHUNK (64u * 1024u)
#define RELAY_READS_PER_EVENT 8
#define RELAY_HISTORY 16
/* Kernel ABI (<linux/netfilter_ipv4.h>): the pre-NAT destination. */
#define RELAY_SO_ORIGINAL_DST 80

enum relay_state { RELAY_LOOKUP, RELAY_OPEN, RELAY_DEAD };

struct relay_conn {
    struct stream_ctx base; /* first: main.c reads it through the stream's user */
    struct mux_stream *s;
    int fd;
    struct watch w; /* on fd, unless parked */
    enum relay_state state;
    bool sock_eof; /* the client finished sending; FIN requested on the stream */
    bool peer_fin; /* the host finished sending */
    bool shut_wr;  /* shutdown(SHUT_WR) done on the socket */
    bool parked;   /* socket off the reactor: hung up while the stream had no room */
    struct sockaddr_in peer, dst;
    struct procinfo pi;
    struct buf out; /* host -> client bytes the socket did not take yet */
    uint64_t hist_seq;
    struct relay_conn *next_dead;
};

struct relay_hist {
    uint64_t seq; /* 0 = empty */
    struct sockaddr_in dst;
    uint32_t pid;
    char comm[PROCINFO_COMM_MAX + 1];
    char exe[PROCINFO_EXE_MAX + 1];
    char outcome[48];
    uint64_t to_host, to_guest;
};

static struct watch relay_lsn = {.fd = -1};
static size_t relay_live;
static struct relay_conn *relay_graveyard;
static struct deadline relay_reaper;
static struct relay_hist relay_hist[RELAY_HISTORY];
static uint64_t relay_hist_next = 1;
static struct {
    uint64_t accepted, over_limit, bad_dst, opened, open_failed, host_resets, guest_aborts,
        completed;
} relay_stats;
static uint8_t relay_rbuf[RELAY_READ_CHUNK];

static const struct stream_ops relay_stream_ops;

/* ---------- helpers ---------- */

/* The open metadata (agent_proto.h, MUX_SVC_NET). */
static int relay_meta_build(struct buf *b, const struct sockaddr_in *dst,
                            const struct procinfo *pi)
{
    if (tlv_put_u32(b, T_DST_IP, ntohl(dst->sin_addr.s_addr)) < 0 ||
        tlv_put_u32(b, T_DST_PORT, ntohs(dst->sin_port)) < 0 ||
        tlv_put_u32(b, T_PID, pi->pid) < 0 || tlv_put_str(b, T_COMM, pi->comm) < 0)
        return -1;
    if (pi->exe[0] && tlv_put_str(b, T_EXE, pi->exe) < 0)
        return -1;
    return 0;
}

/* Original destinations we never relay: the guest itself (a direct connect to
 * the relay port would loop) and addresses the host refuses anyway (C7). */
static bool relay_dst_ok(const struct sockaddr_in *dst)
{
    uint32_t a = ntohl(dst->sin_addr.s_addr);
    return dst->sin_family == AF_INET && dst->sin_port != 0 && (a >> 24) != 127 &&
           (a >> 24) != 0 && a != 0x0a000001u;
}

static void relay_close_rst(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static struct relay_hist *relay_hist_of(struct relay_conn *c)
{
    struct relay_hist *h = &relay_hist[c->hist_seq % RELAY_HISTORY];
    return c->hist_seq && h->seq == c->hist_seq ? h : NULL;
}

static void relay_set_outcome(struct relay_conn *c, const char *what, const char *detail)
{
    struct relay_hist *h = relay_hist_of(c);
    if (h)
        snprintf(h->outcome, sizeof(h->outcome), "%s%s%s", what, detail ? ":" : "",
                 detail ? detail : "");
}

static void relay_reap(struct deadline *d)
{
    while (relay_graveyard) {
        struct relay_conn *c = relay_graveyard;
        relay_graveyard = c->next_dead;
        buf_free(&c->out);
        free(c);
    }
}

/* Ends the connection now (socket closed, stream released); the memory goes at
 * the next safe point. `rst`: close with SO_LINGER 0. `reset`: reset the
 * stream first (the host sees an abort, not a clean end). */
static void relay_kill(struct relay_conn *c, bool rst, uint32_t reset)
{
    if (c->state == RELAY_DEAD)
        return;
    if (c->fd >= 0) {
        if (!c->parked)
            watch_del(&c->w);
        if (rst)
            relay_close_rst(c->fd);
        else
            close(c->fd);
        c->fd = -1;
    }
    if (c->s) {
        if (reset && !mux_stream_is_reset(c->s))
            mux_stream_reset(c->s, reset);
        mux_stream_release(c->s);
        c->s = NULL;
    }
    procinfo_cancel(c);
    c->state = RELAY_DEAD;
    relay_live--;
    c->next_dead = relay_graveyard;
    relay_graveyard = c;
    deadline_arm(&relay_reaper, time_mono_ms());
    agent_kick();
}

/* Something went wrong on the guest side: tell the host, drop the client. */
static void relay_guest_abort(struct relay_conn *c, int err)
{
    relay_stats.guest_aborts++;
    relay_set_outcome(c, "guest-error", strerror(err));
    relay_kill(c, true, MUX_RST_CANCEL);
}

static void relay_interest(struct relay_conn *c)
{
    if (c->state != RELAY_OPEN || c->parked)
        return;
    uint32_t ev = 0;
    if (!c->sock_eof) {
        if (mux_stream_send_room(c->s) > 0)
            ev |= EPOLLIN;
        else
            mux_stream_notify_writable(c->s);
    }
    if (c->out.len > 0)
        ev |= EPOLLOUT;
    watch_mod(&c->w, ev);
}

static void relay_maybe_done(struct relay_conn *c)
{
    if (c->state != RELAY_OPEN)
        return;
    if (c->peer_fin && c->out.len == 0 && !c->shut_wr) {
        shutdown(c->fd, SHUT_WR);
        c->shut_wr = true;
    }
    if (c->sock_eof && c->shut_wr) {
        relay_stats.completed++;
        relay_set_outcome(c, "closed", NULL);
        relay_kill(c, false, 0);
    }
}

/* ---------- data paths ---------- */

/* host -> client: writes what the socket takes, returns credit for it.
 * -1: the client is gone (the connection was aborted). */
static int relay_write(struct relay_conn *c, const uint8_t *p, size_t n, size_t *written)
{
    *written = 0;
    while (*written < n) {
        ssize_t w = send(c->fd, p + *written, n - *written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            relay_guest_abort(c, w < 0 ? errno : EPIPE);
            return -1;
        }
        *written += (size_t)w;
    }
    struct relay_hist *h = relay_hist_of(c);
    if (h)
        h->to_guest += *written;
    if (*written)
        mux_stream_consumed(c->s, *written);
    return 0;
}

static void relay_flush_out(struct relay_conn *c)
{
    size_t w;
    if (c->out.len == 0)
        return;
    if (relay_write(c, buf_head(&c->out), c->out.len, &w) < 0)
        return;
    buf_consume(&c->out, w);
}

/* client -> host, only while the stream has room. */
static void relay_read(struct relay_conn *c)
{
    for (int i = 0; i < RELAY_READS_PER_EVENT && !c->sock_eof; i++) {
        size_t room = mux_stream_send_room(c->s);
        if (room == 0)
            return;
        ssize_t n = recv(c->fd, relay_rbuf, MIN(room, sizeof(relay_rbuf)), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            relay_guest_abort(c, errno);
            return;
        }
        if (n == 0) {
            c->sock_eof = true;
            mux_stream_close_write(c->s);
            agent_kick();
            return;
        }
        mux_stream_write(c->s, relay_rbuf, (size_t)n);
        struct relay_hist *h = relay_hist_of(c);
        if (h)
            h->to_host += (uint64_t)n;
    }
}

static void relay_sock_cb(struct watch *w, uint32_t revents)
{
    struct relay_conn *c = w->owner;
    if (c->state == RELAY_LOOKUP) {
        /* Not reading yet; only an abort by the client is reported here. */
        if (revents & (EPOLLERR | EPOLLHUP)) {
            relay_set_outcome(c, "guest-gone", NULL);
            relay_kill(c, false, 0);
        }
        return;
    }
    if (c->state != RELAY_OPEN)
        return;
    if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        relay_flush_out(c);
    if (c->state == RELAY_OPEN && (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        relay_read(c);
    if (c->state != RELAY_OPEN)
        return;
    relay_maybe_done(c);
    if (c->state != RELAY_OPEN)
        return;
    if ((revents & (EPOLLERR | EPOLLHUP)) && !c->sock_eof && mux_stream_send_room(c->s) == 0) {
        /* Hung up with unread data and no room: epoll would report it again
         * and again; take the socket off until the stream drains. */
        watch_del(&c->w);
        c->parked = true;
        mux_stream_notify_writable(c->s);
        return;
    }
    relay_interest(c);
    agent_kick();
}

/* ---------- stream callbacks ---------- */

static void relay_on_data(struct mux_stream *s, const uint8_t *d, size_t n)
{
    struct relay_conn *c = mux_stream_user(s);
    size_t w = 0;
    if (c->out.len == 0 && relay_write(c, d, n, &w) < 0)
        return;
    if (w < n && buf_append(&c->out, d + w, n - w) < 0) {
        /* More than a window unconsumed: the host ignored our credit. */
        relay_set_outcome(c, "host-overrun", NULL);
        relay_kill(c, true, MUX_RST_FLOW_VIOLATION);
        return;
    }
    relay_interest(c);
}

static void relay_on_fin(struct mux_stream *s)
{
    struct relay_conn *c = mux_stream_user(s);
    c->peer_fin = true;
    relay_maybe_done(c);
}

static void relay_on_reset(struct mux_stream *s)
{
    struct relay_conn *c = mux_stream_user(s);
    relay_stats.host_resets++;
    relay_set_outcome(c, "host-reset", mux_reset_reason_name(agent_reset_reason()));
    relay_kill(c, true, 0);
}

static void relay_on_writable(struct mux_stream *s)
{
    struct relay_conn *c = mux_stream_user(s);
    if (c->parked && c->state == RELAY_OPEN) {
        c->parked = false;
        if (watch_add(&c->w, c->fd, EPOLLIN, relay_sock_cb, c) < 0) {
            relay_guest_abort(c, errno);
            return;
        }
    }
    relay_interest(c);
}

static const struct stream_ops relay_stream_ops = {
    .on_data = relay_on_data,
    .on_fin = relay_on_fin,
    .on_reset = relay_on_reset,
    .on_writable = relay_on_writable,
};

/* ---------- accept ---------- */

static void relay_hist_start(struct relay_conn *c)
{
    c->hist_seq = relay_hist_next++;
    struct relay_hist *h = &relay_hist[c->hist_seq % RELAY_HISTORY];
    *h = (struct relay_hist){.seq = c->hist_seq, .dst = c->dst, .pid = c->pi.pid};
    str_copy(h->comm, sizeof(h->comm), c->pi.comm);
    str_copy(h->exe, sizeof(h->exe), c->pi.exe);
    str_copy(h->outcome, sizeof(h->outcome), "open");
}

static void relay_lookup_done(void *owner, const struct procinfo *pi)
{
    struct relay_conn *c = owner;
    c->pi = *pi;
    relay_hist_start(c);
    struct buf meta;
    buf_init(&meta, MUX_MAX_META);
    struct mux_stream *s = NULL;
    if (relay_meta_build(&meta, &c->dst, pi) == 0)
        s = mux_open(agent_mux(), MUX_SVC_NET, buf_head(&meta), meta.len);
    int err = errno;
    buf_free(&meta);
    if (!s) {
        relay_stats.open_failed++;
        relay_set_outcome(c, "no-stream", strerror(err));
        relay_kill(c, true, 0);
        return;
    }
    relay_stats.opened++;
    c->s = s;
    c->state = RELAY_OPEN;
    mux_stream_set_user(s, c);
    relay_interest(c);
    agent_kick();
}

/* Takes ownership of fd (a connected, non-blocking TCP socket). */
static void relay_adopt(int fd, const struct sockaddr_in *peer, const struct sockaddr_in *dst)
{
    struct relay_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        relay_close_rst(fd);
        return;
    }
    c->base.ops = &relay_stream_ops;
    c->peer = *peer;
    c->dst = *dst;
    c->state = RELAY_LOOKUP;
    c->fd = fd;
    buf_init(&c->out, MUX_WINDOW);
    if (watch_add(&c->w, fd, 0, relay_sock_cb, c) < 0) {
        relay_close_rst(fd);
        buf_free(&c->out);
        free(c);
        return;
    }
    relay_live++;
    struct procinfo_query q = {.proto = IPPROTO_TCP,
                               .src_ip = peer->sin_addr.s_addr,
                               .src_port = ntohs(peer->sin_port),
                               .dst_ip = dst->sin_addr.s_addr,
                               .dst_port = ntohs(dst->sin_port),
                               .budget_ms = RELAY_LOOKUP_BUDGET_MS};
    if (procinfo_lookup(&q, relay_lookup_done, c) < 0) {
        struct procinfo unknown;
        procinfo_unknown(&unknown);
        relay_lookup_done(c, &unknown);
    }
}

static void relay_accept_one(int fd, const struct sockaddr_in *peer)
{
    relay_stats.accepted++;
    if (relay_live >= RELAY_MAX_CONNS) {
        relay_stats.over_limit++;
        relay_close_rst(fd);
        return;
    }
    struct sockaddr_in dst;
    socklen_t dl = sizeof(dst);
    if (getsockopt(fd, SOL_IP, RELAY_SO_ORIGINAL_DST, &dst, &dl) < 0 || !relay_dst_ok(&dst)) {
        relay_stats.bad_dst++;
        relay_close_rst(fd);
        return;
    }
    relay_adopt(fd, peer, &dst);
}

static void relay_accept_cb(struct watch *w, uint32_t revents)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("relay: accept: %s", strerror(errno));
            return;
        }
        /* Bytes from the host go out at once: without this a response head
         * and body written as two TLS records wait ~40 ms for the client's
         * delayed ACK (measured in bench/bench_net.py). */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        relay_accept_one(fd, &peer);
    }
}

/* A listening TCP socket on 127.0.0.1:port (shared with dnsrelay.c). */
int relay_listen_tcp(uint16_t port, struct err **errp)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_sys(errp, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 512) < 0) {
        err_sys(errp, "listen on 127.0.0.1:%u", port);
        close(fd);
        return -1;
    }
    return fd;
}

int relay_start(uint16_t port, struct err **errp)
{
    if (relay_lsn.fd >= 0)
        return 0;
    int fd = relay_listen_tcp(port, errp);
    if (fd < 0)
        return -1;
    relay_reaper.cb = relay_reap;
    if (watch_add(&relay_lsn, fd, EPOLLIN, relay_accept_cb, NULL) < 0) {
        close(fd);
        return err_sys(errp, "epoll");
    }
    return 0;
}

void relay_status(struct buf *out)
{
    buf_printf(out,
               "relay: listening %s, live %zu/%d, accepted %llu, opened %llu, over-limit %llu, "
               "bad-dst %llu, open-failed %llu, host-resets %llu, guest-aborts %llu, "
               "completed %llu\n",
               relay_lsn.fd >= 0 ? "yes" : "no", relay_live, RELAY_MAX_CONNS,
               (unsigned long long)relay_stats.accepted, (unsigned long long)relay_stats.opened,
               (unsigned long long)relay_stats.over_limit, (unsigned long long)relay_stats.bad_dst,
               (unsigned long long)relay_stats.open_failed,
               (unsigned long long)relay_stats.host_resets,
               (unsigned long long)relay_stats.guest_aborts,
               (unsigned long long)relay_stats.completed);
    for (uint64_t k = relay_hist_next > RELAY_HISTORY ? relay_hist_next - RELAY_HISTORY : 1;
         k < relay_hist_next; k++) {
        const struct relay_hist *h = &relay_hist[k % RELAY_HISTORY];
        if (h->seq != k)
            continue;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &h->dst.sin_addr, ip, sizeof(ip));
        buf_printf(out, "conn %s:%u pid=%u comm=%s exe=%s up=%llu down=%llu outcome=%s\n", ip,
                   ntohs(h->dst.sin_port), h->pid, h->comm, h->exe[0] ? h->exe : "-",
                   (unsigned long long)h->to_host, (unsigned long long)h->to_guest, h->outcome);
    }
}
