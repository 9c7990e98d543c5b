/* Channel multiplexer. Wire format and rules: docs/channel.md. */
#include "proto/mux.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "proto/wire.h"

#define HASH_BUCKETS 256u
#define HELLO_MAGIC "CAPSEMMX"
#define HELLO_LEN 16u
#define HELLO_FLAG_ACK 1u
#define CTRLQ_MAX (1024u * 1024u)
#define OUT_FILL_TARGET (64u * 1024u)
#define GRANT_THRESHOLD (16u * 1024u)

struct mux_stream {
    struct mux *m;
    uint32_t id;
    uint16_t service;
    bool high;
    bool released;
    bool reset;
    bool fin_requested;
    bool fin_sent;
    bool fin_received;
    bool want_writable;
    bool queued_free;
    uint32_t send_credit;
    uint32_t recv_window_left;
    size_t recv_unconsumed;
    size_t grant_pending;
    struct buf sendq;
    void *user;
    struct mux_stream *hnext;
    struct mux_stream *anext; /* active (has something to send) list */
    bool active;
    struct mux_stream *all_next, *all_prev;
};

enum rx_state { RX_HANDSHAKE, RX_READY, RX_RESYNC, RX_INCOMPATIBLE };

struct mux {
    enum mux_side side;
    struct mux_callbacks cb;
    void *ctx;
    enum rx_state rx;
    bool peer_hello;
    uint32_t peer_version;
    uint32_t next_id;
    struct mux_stream *buckets[HASH_BUCKETS];
    struct mux_stream *all; /* every live stream, for channel resets */
    size_t nstreams;
    struct mux_stream *active_hi_head, *active_hi_tail;
    struct mux_stream *active_lo_head, *active_lo_tail;
    struct mux_stream *graveyard;
    int depth;
    struct buf in;    /* partial frame */
    struct buf ctrlq; /* control frames, sent before data */
    struct buf out;   /* serialized frames ready for the transport */
    bool pong_pending;
    uint8_t pong_data[8];
    size_t buffered; /* delivered, not yet consumed, all streams */
    uint64_t last_rx_ms;
    uint64_t last_tx_ms;
    bool ping_outstanding;
    uint64_t open_window_start;
    uint32_t opens_in_window;
};

static void stream_maybe_free(struct mux_stream *s);
static void channel_violation(struct mux *m, const char *why);

/* ---------- helpers ---------- */

static unsigned bucket_of(uint32_t id)
{
    return (id * 2654435761u) % HASH_BUCKETS;
}

static struct mux_stream *stream_find(struct mux *m, uint32_t id)
{
    for (struct mux_stream *s = m->buckets[bucket_of(id)]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static void signal_output(struct mux *m)
{
    if (m->cb.on_output)
        m->cb.on_output(m->ctx);
}

static void put_header(uint8_t *h, uint8_t type, uint16_t aux, uint32_t id, uint32_t len)
{
    h[0] = type;
    h[1] = 0;
    wire_put_u16(h + 2, aux);
    wire_put_u32(h + 4, id);
    wire_put_u32(h + 8, len);
}

static int ctrl_frame(struct mux *m, uint8_t type, uint16_t aux, uint32_t id, const void *payload,
                      size_t len)
{
    uint8_t h[MUX_HEADER_LEN];
    put_header(h, type, aux, id, (uint32_t)len);
    if (buf_room(&m->ctrlq) < MUX_HEADER_LEN + len)
        return -1;
    buf_append(&m->ctrlq, h, sizeof(h));
    buf_append(&m->ctrlq, payload, len);
    signal_output(m);
    return 0;
}

static void ctrl_u32(struct mux *m, uint8_t type, uint32_t id, uint32_t v)
{
    uint8_t p[4];
    wire_put_u32(p, v);
    if (ctrl_frame(m, type, 0, id, p, sizeof(p)) < 0)
        channel_violation(m, "control queue overflow (peer not reading)");
}

static void send_hello(struct mux *m, bool ack)
{
    uint8_t p[HELLO_LEN];
    memcpy(p, HELLO_MAGIC, 8);
    wire_put_u32(p + 8, MUX_VERSION);
    wire_put_u32(p + 12, ack ? HELLO_FLAG_ACK : 0);
    ctrl_frame(m, MUX_F_HELLO, 0, 0, p, sizeof(p));
}

/* ---------- active (send) lists ---------- */

static bool stream_has_output(const struct mux_stream *s)
{
    if (s->reset)
        return false;
    if (s->sendq.len > 0 && s->send_credit > 0)
        return true;
    return s->fin_requested && !s->fin_sent && s->sendq.len == 0;
}

static void active_push(struct mux_stream *s)
{
    struct mux *m = s->m;
    if (s->active || !stream_has_output(s))
        return;
    s->active = true;
    s->anext = NULL;
    struct mux_stream **head = s->high ? &m->active_hi_head : &m->active_lo_head;
    struct mux_stream **tail = s->high ? &m->active_hi_tail : &m->active_lo_tail;
    if (*tail)
        (*tail)->anext = s;
    else
        *head = s;
    *tail = s;
    signal_output(m);
}

static struct mux_stream *active_pop(struct mux *m, bool high)
{
    struct mux_stream **head = high ? &m->active_hi_head : &m->active_lo_head;
    struct mux_stream **tail = high ? &m->active_hi_tail : &m->active_lo_tail;
    struct mux_stream *s = *head;
    if (!s)
        return NULL;
    *head = s->anext;
    if (!*head)
        *tail = NULL;
    s->anext = NULL;
    s->active = false;
    return s;
}

static void active_remove(struct mux_stream *s)
{
    if (!s->active)
        return;
    struct mux *m = s->m;
    for (int pass = 0; pass < 2; pass++) {
        struct mux_stream **head = pass ? &m->active_lo_head : &m->active_hi_head;
        struct mux_stream **tail = pass ? &m->active_lo_tail : &m->active_hi_tail;
        struct mux_stream *prev = NULL;
        for (struct mux_stream *it = *head; it; prev = it, it = it->anext) {
            if (it != s)
                continue;
            if (prev)
                prev->anext = it->anext;
            else
                *head = it->anext;
            if (*tail == it)
                *tail = prev;
            s->active = false;
            s->anext = NULL;
            return;
        }
    }
}

/* ---------- stream lifecycle ---------- */

static struct mux_stream *stream_new(struct mux *m, uint32_t id, uint16_t service)
{
    struct mux_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->m = m;
    s->id = id;
    s->service = service;
    s->high = service == MUX_SVC_CONTROL || service == MUX_SVC_DNS;
    s->send_credit = MUX_WINDOW;
    s->recv_window_left = MUX_WINDOW;
    buf_init(&s->sendq, MUX_SEND_QUEUE_MAX);
    unsigned b = bucket_of(id);
    s->hnext = m->buckets[b];
    m->buckets[b] = s;
    s->all_next = m->all;
    if (m->all)
        m->all->all_prev = s;
    m->all = s;
    m->nstreams++;
    return s;
}

static void stream_unlink(struct mux_stream *s)
{
    struct mux *m = s->m;
    struct mux_stream **pp = &m->buckets[bucket_of(s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        m->all = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    active_remove(s);
    m->nstreams--;
    m->buffered -= MIN(m->buffered, s->recv_unconsumed);
    s->recv_unconsumed = 0;
}

static void stream_destroy(struct mux_stream *s)
{
    buf_free(&s->sendq);
    free(s);
}

static void stream_maybe_free(struct mux_stream *s)
{
    if (s->queued_free || !s->released)
        return;
    if (!s->reset && !(s->fin_sent && s->fin_received))
        return;
    struct mux *m = s->m;
    stream_unlink(s);
    s->queued_free = true;
    if (m->depth > 0) {
        s->hnext = m->graveyard;
        m->graveyard = s;
    } else {
        stream_destroy(s);
    }
}

static void graveyard_flush(struct mux *m)
{
    if (m->depth > 0)
        return;
    while (m->graveyard) {
        struct mux_stream *s = m->graveyard;
        m->graveyard = s->hnext;
        stream_destroy(s);
    }
}

/* Marks a stream dead. `notify`: tell the application (peer or violation). */
static void stream_kill(struct mux_stream *s, uint32_t reason, bool send_rst, bool notify)
{
    if (s->reset)
        return;
    struct mux *m = s->m;
    s->reset = true;
    buf_free(&s->sendq);
    active_remove(s);
    m->buffered -= MIN(m->buffered, s->recv_unconsumed);
    s->recv_unconsumed = 0;
    if (send_rst)
        ctrl_u32(m, MUX_F_RST, s->id, reason);
    if (notify && !s->released && m->cb.on_reset) {
        m->depth++;
        m->cb.on_reset(m->ctx, s, reason);
        m->depth--;
    }
    stream_maybe_free(s);
}

static void reset_all_streams(struct mux *m, uint32_t reason)
{
    m->depth++;
    /* Collect first: callbacks may release streams (deferred by depth). */
    struct mux_stream *s = m->all;
    while (s) {
        struct mux_stream *next = s->all_next;
        if (!s->reset) {
            s->reset = true;
            buf_free(&s->sendq);
            active_remove(s);
            s->recv_unconsumed = 0;
            if (!s->released && m->cb.on_reset)
                m->cb.on_reset(m->ctx, s, reason);
        }
        s = next;
    }
    s = m->all;
    while (s) {
        struct mux_stream *next = s->all_next;
        stream_maybe_free(s);
        s = next;
    }
    m->depth--;
    m->buffered = 0;
}

static void channel_violation(struct mux *m, const char *why)
{
    if (m->rx == RX_RESYNC)
        return;
    m->rx = RX_RESYNC;
    m->peer_hello = false;
    /* Complete frames already in `out` still go out (a half-sent frame must
     * be finished); queued control frames refer to dead streams. */
    buf_reset(&m->ctrlq);
    m->pong_pending = false;
    reset_all_streams(m, MUX_RST_CHANNEL_RESET);
    if (m->cb.on_channel_error) {
        m->depth++;
        m->cb.on_channel_error(m->ctx, why);
        m->depth--;
    }
    send_hello(m, false);
}

/* ---------- public: setup ---------- */

struct mux *mux_new(enum mux_side side, const struct mux_callbacks *cb, void *ctx)
{
    struct mux *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->side = side;
    m->cb = *cb;
    m->ctx = ctx;
    m->rx = RX_HANDSHAKE;
    m->next_id = side == MUX_SIDE_HOST ? 1 : 2;
    buf_init(&m->in, MUX_HEADER_LEN + MUX_MAX_PAYLOAD);
    buf_init(&m->ctrlq, CTRLQ_MAX);
    buf_init(&m->out, 4 * MUX_MAX_PAYLOAD);
    m->last_rx_ms = time_mono_ms();
    send_hello(m, false);
    return m;
}

void mux_free(struct mux *m)
{
    if (!m)
        return;
    struct mux_stream *s = m->all;
    while (s) {
        struct mux_stream *next = s->all_next;
        stream_destroy(s);
        s = next;
    }
    m->depth = 0;
    graveyard_flush(m);
    buf_free(&m->in);
    buf_free(&m->ctrlq);
    buf_free(&m->out);
    free(m);
}

bool mux_is_ready(const struct mux *m)
{
    return m->rx == RX_READY;
}

size_t mux_stream_count(const struct mux *m)
{
    return m->nstreams;
}

void mux_restart(struct mux *m, uint32_t reason)
{
    m->rx = RX_HANDSHAKE;
    m->peer_hello = false;
    buf_reset(&m->in);
    buf_reset(&m->ctrlq);
    buf_reset(&m->out);
    m->pong_pending = false;
    reset_all_streams(m, reason);
    graveyard_flush(m);
    send_hello(m, false);
}

/* ---------- input ---------- */

static void handle_hello(struct mux *m, const uint8_t *p, uint32_t len)
{
    if (len != HELLO_LEN || memcmp(p, HELLO_MAGIC, 8) != 0) {
        channel_violation(m, "malformed HELLO");
        return;
    }
    uint32_t version = wire_get_u32(p + 8);
    uint32_t flags = wire_get_u32(p + 12);
    if (version != MUX_VERSION) {
        m->rx = RX_INCOMPATIBLE;
        reset_all_streams(m, MUX_RST_CHANNEL_RESET);
        if (m->cb.on_channel_error) {
            m->depth++;
            m->cb.on_channel_error(m->ctx, "channel_incompatible: peer speaks another version");
            m->depth--;
        }
        return;
    }
    bool ack = (flags & HELLO_FLAG_ACK) != 0;
    if (!ack) {
        /* A fresh HELLO: the peer (re)started. Anything we had is gone. */
        if (m->rx == RX_READY)
            reset_all_streams(m, MUX_RST_CHANNEL_RESET);
        send_hello(m, true);
    }
    bool was_ready = m->rx == RX_READY;
    m->peer_version = version;
    m->peer_hello = true;
    m->rx = RX_READY;
    if ((!was_ready || !ack) && m->cb.on_ready) {
        m->depth++;
        m->cb.on_ready(m->ctx, version);
        m->depth--;
    }
}

static bool open_rate_ok(struct mux *m)
{
    uint64_t now = time_mono_ms();
    if (now - m->open_window_start >= 1000) {
        m->open_window_start = now;
        m->opens_in_window = 0;
    }
    return ++m->opens_in_window <= MUX_MAX_OPENS_PER_SEC;
}

static void handle_open(struct mux *m, uint32_t id, uint16_t service, const uint8_t *p,
                        uint32_t len)
{
    bool peer_parity = (id & 1u) == (m->side == MUX_SIDE_HOST ? 0u : 1u);
    if (id == 0 || !peer_parity) {
        ctrl_u32(m, MUX_F_RST, id, MUX_RST_PROTOCOL);
        return;
    }
    struct mux_stream *old = stream_find(m, id);
    if (old) {
        stream_kill(old, MUX_RST_PROTOCOL, true, true);
        return;
    }
    if (len > MUX_MAX_META) {
        ctrl_u32(m, MUX_F_RST, id, MUX_RST_BAD_METADATA);
        return;
    }
    if (m->nstreams >= MUX_MAX_STREAMS || !open_rate_ok(m)) {
        ctrl_u32(m, MUX_F_RST, id, MUX_RST_TOO_MANY_STREAMS);
        return;
    }
    struct mux_stream *s = stream_new(m, id, service);
    if (!s) {
        ctrl_u32(m, MUX_F_RST, id, MUX_RST_INTERNAL);
        return;
    }
    int rc = MUX_RST_REFUSED;
    if (m->cb.on_open) {
        m->depth++;
        rc = m->cb.on_open(m->ctx, s, service, p, len);
        m->depth--;
    }
    if (rc != 0) {
        s->released = true;
        stream_kill(s, (uint32_t)rc, true, false);
    }
}

static void handle_data(struct mux *m, struct mux_stream *s, uint32_t id, const uint8_t *p,
                        uint32_t len)
{
    if (!s || s->reset) {
        if (!s)
            ctrl_u32(m, MUX_F_RST, id, MUX_RST_PROTOCOL);
        return;
    }
    if (s->fin_received) {
        stream_kill(s, MUX_RST_PROTOCOL, true, true);
        return;
    }
    if (len > s->recv_window_left) {
        stream_kill(s, MUX_RST_FLOW_VIOLATION, true, true);
        return;
    }
    if (len == 0)
        return;
    s->recv_window_left -= len;
    if (s->released) {
        /* Nobody reads any more: discard and keep the peer flowing. */
        s->grant_pending += len;
        mux_stream_consumed(s, 0);
        return;
    }
    s->recv_unconsumed += len;
    m->buffered += len;
    if (m->cb.on_data) {
        m->depth++;
        m->cb.on_data(m->ctx, s, p, len);
        m->depth--;
    }
}

static void handle_frame(struct mux *m, uint8_t type, uint16_t aux, uint32_t id, const uint8_t *p,
                         uint32_t len)
{
    if (type == MUX_F_HELLO) {
        if (id != 0 || aux != 0)
            channel_violation(m, "bad HELLO header");
        else
            handle_hello(m, p, len);
        return;
    }
    if (m->rx != RX_READY) {
        channel_violation(m, "frame before handshake");
        return;
    }
    if (aux != 0 && type != MUX_F_OPEN) {
        channel_violation(m, "nonzero aux field");
        return;
    }
    struct mux_stream *s = id ? stream_find(m, id) : NULL;
    switch (type) {
    case MUX_F_OPEN:
        handle_open(m, id, aux, p, len);
        break;
    case MUX_F_DATA:
        handle_data(m, s, id, p, len);
        break;
    case MUX_F_CREDIT:
        if (len != 4) {
            channel_violation(m, "bad CREDIT length");
            return;
        }
        if (s && !s->reset) {
            uint64_t c = (uint64_t)s->send_credit + wire_get_u32(p);
            if (c > 64ull * MUX_WINDOW) {
                stream_kill(s, MUX_RST_PROTOCOL, true, true);
                return;
            }
            s->send_credit = (uint32_t)c;
            active_push(s);
        }
        break;
    case MUX_F_FIN:
        if (len != 0) {
            channel_violation(m, "bad FIN length");
            return;
        }
        if (!s) {
            ctrl_u32(m, MUX_F_RST, id, MUX_RST_PROTOCOL);
            return;
        }
        if (s->reset || s->fin_received)
            return;
        s->fin_received = true;
        if (!s->released && m->cb.on_fin) {
            m->depth++;
            m->cb.on_fin(m->ctx, s);
            m->depth--;
        }
        stream_maybe_free(s);
        break;
    case MUX_F_RST:
        if (len != 4) {
            channel_violation(m, "bad RST length");
            return;
        }
        if (s)
            stream_kill(s, wire_get_u32(p), false, true);
        break;
    case MUX_F_PING:
        if (len != 8) {
            channel_violation(m, "bad PING length");
            return;
        }
        memcpy(m->pong_data, p, 8);
        m->pong_pending = true;
        signal_output(m);
        break;
    case MUX_F_PONG:
        if (len != 8) {
            channel_violation(m, "bad PONG length");
            return;
        }
        m->ping_outstanding = false;
        break;
    default:
        channel_violation(m, "unknown frame type");
        break;
    }
}

/* In RESYNC, discard bytes until a fresh HELLO frame starts at in[0]. */
static void resync_scan(struct mux *m)
{
    uint8_t pat[MUX_HEADER_LEN + 8];
    put_header(pat, MUX_F_HELLO, 0, 0, HELLO_LEN);
    memcpy(pat + MUX_HEADER_LEN, HELLO_MAGIC, 8);
    const uint8_t *d = buf_head(&m->in);
    size_t n = m->in.len;
    size_t i = 0;
    for (; i < n; i++) {
        size_t k = MIN(sizeof(pat), n - i);
        if (memcmp(d + i, pat, k) == 0)
            break;
    }
    buf_consume(&m->in, i);
    if (m->in.len >= sizeof(pat))
        m->rx = RX_HANDSHAKE;
}

/* Parses every complete frame in m->in. Returns -1 if a channel violation
 * happened (the parser then resynchronises on the next HELLO). */
static int process_input(struct mux *m)
{
    int rc = 0;
    for (;;) {
        if (m->rx == RX_INCOMPATIBLE) {
            buf_reset(&m->in);
            return rc;
        }
        if (m->rx == RX_RESYNC) {
            resync_scan(m);
            if (m->rx == RX_RESYNC)
                return rc;
        }
        if (m->in.len < MUX_HEADER_LEN)
            return rc;
        const uint8_t *h = buf_head(&m->in);
        uint32_t plen = wire_get_u32(h + 8);
        if (plen > MUX_MAX_PAYLOAD || h[1] != 0) {
            channel_violation(m, plen > MUX_MAX_PAYLOAD ? "frame too long" : "bad flags");
            buf_consume(&m->in, 1);
            rc = -1;
            continue;
        }
        if (m->in.len < MUX_HEADER_LEN + plen)
            return rc;
        enum rx_state before = m->rx;
        handle_frame(m, h[0], wire_get_u16(h + 2), wire_get_u32(h + 4), h + MUX_HEADER_LEN, plen);
        if (m->rx == RX_RESYNC && before != RX_RESYNC) {
            buf_consume(&m->in, 1);
            rc = -1;
            continue;
        }
        buf_consume(&m->in, MUX_HEADER_LEN + plen);
    }
}

int mux_input(struct mux *m, const uint8_t *data, size_t len)
{
    int rc = 0;
    m->depth++;
    m->last_rx_ms = time_mono_ms();
    m->ping_outstanding = false;
    do {
        size_t take = MIN(buf_room(&m->in), len);
        if (take > 0) {
            buf_append(&m->in, data, take);
            data += take;
            len -= take;
        }
        if (process_input(m) < 0)
            rc = -1;
    } while (len > 0);
    m->depth--;
    graveyard_flush(m);
    return rc;
}

/* ---------- output ---------- */

static void emit_stream(struct mux *m, struct mux_stream *s)
{
    uint8_t h[MUX_HEADER_LEN];
    if (s->sendq.len > 0 && s->send_credit > 0) {
        size_t n = MIN(MIN(s->sendq.len, (size_t)s->send_credit), (size_t)MUX_MAX_PAYLOAD);
        put_header(h, MUX_F_DATA, 0, s->id, (uint32_t)n);
        buf_append(&m->out, h, sizeof(h));
        buf_append(&m->out, buf_head(&s->sendq), n);
        buf_consume(&s->sendq, n);
        s->send_credit -= (uint32_t)n;
        if (s->want_writable && !s->fin_requested && !s->released &&
            buf_room(&s->sendq) > 0) {
            s->want_writable = false;
            if (m->cb.on_writable)
                m->cb.on_writable(m->ctx, s);
        }
    }
    if (s->fin_requested && !s->fin_sent && s->sendq.len == 0 && !s->reset) {
        put_header(h, MUX_F_FIN, 0, s->id, 0);
        buf_append(&m->out, h, sizeof(h));
        s->fin_sent = true;
        stream_maybe_free(s);
        return;
    }
    if (!s->queued_free)
        active_push(s);
}

static void fill_output(struct mux *m)
{
    if (m->ctrlq.len > 0) {
        size_t n = MIN(m->ctrlq.len, buf_room(&m->out));
        buf_append(&m->out, buf_head(&m->ctrlq), n);
        buf_consume(&m->ctrlq, n);
    }
    if (m->pong_pending && buf_room(&m->out) >= MUX_HEADER_LEN + 8) {
        uint8_t h[MUX_HEADER_LEN];
        put_header(h, MUX_F_PONG, 0, 0, 8);
        buf_append(&m->out, h, sizeof(h));
        buf_append(&m->out, m->pong_data, 8);
        m->pong_pending = false;
    }
    if (m->rx != RX_READY)
        return;
    while (m->out.len < OUT_FILL_TARGET && m->ctrlq.len == 0 &&
           buf_room(&m->out) >= MUX_HEADER_LEN * 2 + MUX_MAX_PAYLOAD) {
        struct mux_stream *s = active_pop(m, true);
        if (!s)
            s = active_pop(m, false);
        if (!s)
            break;
        emit_stream(m, s);
    }
}

const uint8_t *mux_output_peek(struct mux *m, size_t *len)
{
    m->depth++;
    if (m->out.len < OUT_FILL_TARGET)
        fill_output(m);
    m->depth--;
    graveyard_flush(m);
    *len = m->out.len;
    return m->out.len ? buf_head(&m->out) : NULL;
}

void mux_output_done(struct mux *m, size_t n)
{
    buf_consume(&m->out, n);
    if (n > 0)
        m->last_tx_ms = time_mono_ms();
}

bool mux_has_output(struct mux *m)
{
    return m->out.len > 0 || m->ctrlq.len > 0 || m->pong_pending ||
           (m->rx == RX_READY && (m->active_hi_head || m->active_lo_head));
}

void mux_tick(struct mux *m, uint64_t now_ms)
{
    if (m->rx != RX_READY)
        return;
    uint64_t idle = now_ms > m->last_rx_ms ? now_ms - m->last_rx_ms : 0;
    if (idle >= MUX_DEAD_MS) {
        channel_violation(m, "channel dead: no frame for 15 s");
        graveyard_flush(m);
        return;
    }
    if (idle >= MUX_PING_IDLE_MS && !m->ping_outstanding) {
        uint8_t p[8];
        wire_put_u64(p, now_ms);
        if (ctrl_frame(m, MUX_F_PING, 0, 0, p, sizeof(p)) == 0)
            m->ping_outstanding = true;
    }
}

void mux_touch(struct mux *m)
{
    m->last_rx_ms = time_mono_ms();
    m->ping_outstanding = false;
}

/* ---------- public: streams ---------- */

struct mux_stream *mux_open(struct mux *m, uint16_t service, const void *meta, size_t meta_len)
{
    if (m->rx != RX_READY) {
        errno = ENOTCONN;
        return NULL;
    }
    if (meta_len > MUX_MAX_META) {
        errno = EMSGSIZE;
        return NULL;
    }
    if (m->nstreams >= MUX_MAX_STREAMS) {
        errno = EMFILE;
        return NULL;
    }
    uint32_t id = m->next_id;
    while (id == 0 || stream_find(m, id))
        id += 2;
    m->next_id = id + 2;
    if (m->next_id >= 0x7ffffff0u)
        m->next_id = m->side == MUX_SIDE_HOST ? 1 : 2;
    if (ctrl_frame(m, MUX_F_OPEN, service, id, meta, meta_len) < 0) {
        errno = ENOBUFS;
        return NULL;
    }
    struct mux_stream *s = stream_new(m, id, service);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

ssize_t mux_stream_write(struct mux_stream *s, const void *data, size_t len)
{
    if (s->reset || s->fin_requested || s->released) {
        errno = EPIPE;
        return -1;
    }
    size_t n = MIN(len, buf_room(&s->sendq));
    if (n > 0 && buf_append(&s->sendq, data, n) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (n < len)
        s->want_writable = true;
    if (n > 0)
        active_push(s);
    return (ssize_t)n;
}

size_t mux_stream_send_room(const struct mux_stream *s)
{
    if (s->reset || s->fin_requested)
        return 0;
    return buf_room(&s->sendq);
}

void mux_stream_notify_writable(struct mux_stream *s)
{
    if (!s->reset && !s->released)
        s->want_writable = true;
}

size_t mux_stream_send_queued(const struct mux_stream *s)
{
    return s->sendq.len;
}

int mux_stream_close_write(struct mux_stream *s)
{
    if (s->reset) {
        errno = EPIPE;
        return -1;
    }
    if (s->fin_requested)
        return 0;
    s->fin_requested = true;
    active_push(s);
    return 0;
}

void mux_stream_reset(struct mux_stream *s, uint32_t reason)
{
    stream_kill(s, reason, true, false);
}

void mux_stream_consumed(struct mux_stream *s, size_t n)
{
    struct mux *m = s->m;
    if (s->reset)
        return;
    n = MIN(n, s->recv_unconsumed);
    s->recv_unconsumed -= n;
    m->buffered -= MIN(m->buffered, n);
    s->grant_pending += n;
    if (s->fin_received || s->grant_pending == 0)
        return;
    bool drained = s->recv_unconsumed == 0;
    if (s->grant_pending < GRANT_THRESHOLD && !drained)
        return;
    if (m->buffered > MUX_BUFFERED_MAX && s->recv_window_left >= MUX_MIN_GRANT)
        return; /* over the per-VM budget: defer, this stream can still get 16 KiB */
    uint32_t g = (uint32_t)s->grant_pending;
    s->grant_pending = 0;
    s->recv_window_left += g;
    ctrl_u32(m, MUX_F_CREDIT, s->id, g);
}

void mux_stream_release(struct mux_stream *s)
{
    struct mux *m = s->m;
    if (s->released)
        return;
    s->released = true;
    s->user = NULL;
    if (!s->reset && !s->fin_received) {
        stream_kill(s, MUX_RST_CANCEL, true, false);
        return;
    }
    if (!s->reset && !s->fin_requested) {
        s->fin_requested = true;
        active_push(s);
    }
    stream_maybe_free(s); /* may free s */
    graveyard_flush(m);
}

void mux_stream_set_user(struct mux_stream *s, void *user)
{
    s->user = user;
}

void *mux_stream_user(const struct mux_stream *s)
{
    return s->user;
}

uint32_t mux_stream_id(const struct mux_stream *s)
{
    return s->id;
}

uint16_t mux_stream_service(const struct mux_stream *s)
{
    return s->service;
}

bool mux_stream_is_reset(const struct mux_stream *s)
{
    return s->reset;
}

bool mux_stream_peer_finished(const struct mux_stream *s)
{
    return s->fin_received;
}

void mux_stream_set_priority(struct mux_stream *s, bool high)
{
    if (s->high == high)
        return;
    bool was_active = s->active;
    active_remove(s);
    s->high = high;
    if (was_active)
        active_push(s);
}

const char *mux_reset_reason_name(uint32_t reason)
{
    switch (reason) {
    case MUX_RST_CANCEL:
        return "cancel";
    case MUX_RST_REFUSED:
        return "refused";
    case MUX_RST_TOO_MANY_STREAMS:
        return "too_many_streams";
    case MUX_RST_FLOW_VIOLATION:
        return "flow_violation";
    case MUX_RST_PROTOCOL:
        return "protocol_error";
    case MUX_RST_CHANNEL_RESET:
        return "channel_reset";
    case MUX_RST_BAD_METADATA:
        return "bad_metadata";
    case MUX_RST_PORT_NOT_REDIRECTED:
        return "port_not_redirected";
    case MUX_RST_INTERNAL:
        return "internal";
    default:
        return "unknown";
    }
}
