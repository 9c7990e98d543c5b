/* Unit tests for the channel multiplexer: two muxes wired back to back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "proto/mux.h"
#include "proto/wire.h"
#include "tap.h"

struct side {
    const char *name;
    struct mux *m;
    int ready;
    int opens;
    int fins;
    int resets;
    uint32_t last_reset;
    int channel_errors;
    int writable;
    struct mux_stream *accepted;
    uint16_t last_service;
    char meta[64];
    struct buf rx; /* data received on any stream */
    bool auto_consume;
    int refuse;
};

static void on_ready(void *ctx, uint32_t v)
{
    ((struct side *)ctx)->ready++;
}

static int on_open(void *ctx, struct mux_stream *s, uint16_t svc, const uint8_t *meta, size_t n)
{
    struct side *sd = ctx;
    if (sd->refuse)
        return sd->refuse;
    sd->opens++;
    sd->accepted = s;
    sd->last_service = svc;
    size_t k = n < sizeof(sd->meta) - 1 ? n : sizeof(sd->meta) - 1;
    memcpy(sd->meta, meta, k);
    sd->meta[k] = 0;
    return 0;
}

static void on_data(void *ctx, struct mux_stream *s, const uint8_t *d, size_t n)
{
    struct side *sd = ctx;
    buf_append(&sd->rx, d, n);
    if (sd->auto_consume)
        mux_stream_consumed(s, n);
}

static void on_fin(void *ctx, struct mux_stream *s)
{
    ((struct side *)ctx)->fins++;
}

static void on_reset(void *ctx, struct mux_stream *s, uint32_t reason)
{
    struct side *sd = ctx;
    sd->resets++;
    sd->last_reset = reason;
    if (sd->accepted == s)
        sd->accepted = NULL;
    mux_stream_release(s);
}

static void on_writable(void *ctx, struct mux_stream *s)
{
    ((struct side *)ctx)->writable++;
}

static void on_channel_error(void *ctx, const char *why)
{
    ((struct side *)ctx)->channel_errors++;
}

static const struct mux_callbacks cbs = {
    .on_ready = on_ready,
    .on_open = on_open,
    .on_data = on_data,
    .on_fin = on_fin,
    .on_reset = on_reset,
    .on_writable = on_writable,
    .on_channel_error = on_channel_error,
};

static void side_init(struct side *s, const char *name, enum mux_side which)
{
    memset(s, 0, sizeof(*s));
    s->name = name;
    buf_init(&s->rx, 64u << 20);
    s->auto_consume = true;
    s->m = mux_new(which, &cbs, s);
}

static void side_free(struct side *s)
{
    mux_free(s->m);
    buf_free(&s->rx);
}

/* Moves bytes from a to b, `chunk` bytes per mux_input call (0 = all). */
static size_t pump_one(struct side *a, struct side *b, size_t chunk)
{
    size_t moved = 0, n;
    const uint8_t *p;
    while ((p = mux_output_peek(a->m, &n)) != NULL) {
        size_t k = chunk && chunk < n ? chunk : n;
        mux_input(b->m, p, k);
        mux_output_done(a->m, k);
        moved += k;
    }
    return moved;
}

static void pump(struct side *a, struct side *b, size_t chunk)
{
    for (int i = 0; i < 10000; i++) {
        size_t m = pump_one(a, b, chunk) + pump_one(b, a, chunk);
        if (m == 0)
            return;
    }
}

static void test_handshake_and_echo(size_t chunk)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    ok(!mux_is_ready(h.m), "not ready before exchange");
    pump(&h, &g, chunk);
    ok(mux_is_ready(h.m) && mux_is_ready(g.m), "handshake completes (chunk %zu)", chunk);
    is_int(h.ready, 1, "host on_ready once");
    is_int(g.ready, 1, "guest on_ready once");

    struct mux_stream *s = mux_open(h.m, MUX_SVC_EXEC, "meta!", 5);
    ok(s != NULL, "open stream");
    ok((mux_stream_id(s) & 1) == 1, "host ids are odd");
    is_int(mux_stream_write(s, "hello", 5), 5, "write accepted");
    mux_stream_close_write(s);
    pump(&h, &g, chunk);
    is_int(g.opens, 1, "guest saw open");
    is_int(g.last_service, MUX_SVC_EXEC, "service carried");
    is_str(g.meta, "meta!", "metadata carried");
    ok(g.rx.len == 5 && memcmp(buf_head(&g.rx), "hello", 5) == 0, "data carried");
    is_int(g.fins, 1, "guest saw FIN");

    struct mux_stream *gs = g.accepted;
    mux_stream_write(gs, "world", 5);
    mux_stream_close_write(gs);
    mux_stream_release(gs);
    pump(&h, &g, chunk);
    ok(h.rx.len == 5 && memcmp(buf_head(&h.rx), "world", 5) == 0, "reply carried");
    is_int(h.fins, 1, "host saw FIN");
    mux_stream_release(s);
    pump(&h, &g, chunk);
    is_int((int)mux_stream_count(h.m), 0, "host stream freed after both FINs");
    is_int((int)mux_stream_count(g.m), 0, "guest stream freed after both FINs");
    is_int(h.resets + g.resets, 0, "no resets on a clean close");
    side_free(&h);
    side_free(&g);
}

static void test_flow_control_isolation(void)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    pump(&h, &g, 0);
    g.auto_consume = false;
    struct mux_stream *bulk = mux_open(h.m, MUX_SVC_NET, NULL, 0);
    static uint8_t big[MUX_SEND_QUEUE_MAX];
    memset(big, 'x', sizeof(big));
    ssize_t w = mux_stream_write(bulk, big, sizeof(big));
    is_int((int)w, (int)sizeof(big), "bulk queue filled");
    is_int((int)mux_stream_write(bulk, "y", 1), 0, "full queue accepts nothing");
    pump(&h, &g, 0);
    is_int((int)g.rx.len, (int)MUX_WINDOW, "receiver got exactly one window without consuming");
    struct mux_stream *gbulk = g.accepted;

    /* A second stream still flows while the first is stalled. */
    struct mux_stream *ctl = mux_open(h.m, MUX_SVC_CONTROL, NULL, 0);
    mux_stream_write(ctl, "ping", 4);
    buf_reset(&g.rx);
    pump(&h, &g, 0);
    ok(g.rx.len == 4 && memcmp(buf_head(&g.rx), "ping", 4) == 0, "control stream not blocked");
    mux_stream_consumed(g.accepted, 4);

    /* Consuming the bulk window lets the rest through. */
    buf_reset(&g.rx);
    g.auto_consume = true;
    mux_stream_consumed(gbulk, MUX_WINDOW);
    pump(&h, &g, 0);
    is_int((int)g.rx.len, (int)(sizeof(big) - MUX_WINDOW), "rest delivered after consume");
    ok(h.writable >= 1, "sender told the queue has room again");
    side_free(&h);
    side_free(&g);
}

static void test_reset_and_refuse(void)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    pump(&h, &g, 0);
    struct mux_stream *s = mux_open(h.m, MUX_SVC_EXEC, NULL, 0);
    mux_stream_write(s, "abc", 3);
    pump(&h, &g, 0);
    mux_stream_reset(g.accepted, MUX_RST_CANCEL);
    mux_stream_release(g.accepted);
    pump(&h, &g, 0);
    is_int(h.resets, 1, "peer reset delivered");
    is_int((int)h.last_reset, MUX_RST_CANCEL, "reason carried");
    is_int((int)mux_stream_count(h.m), 0, "reset stream freed after release");

    g.refuse = MUX_RST_REFUSED;
    s = mux_open(h.m, 4242, NULL, 0);
    pump(&h, &g, 0);
    is_int((int)h.last_reset, MUX_RST_REFUSED, "refused open reset");
    is_int((int)mux_stream_count(g.m), 0, "refused stream not kept");
    side_free(&h);
    side_free(&g);
}

static void raw_frame(struct side *to, uint8_t type, uint16_t aux, uint32_t id, const void *p,
                      uint32_t len)
{
    uint8_t hdr[MUX_HEADER_LEN];
    hdr[0] = type;
    hdr[1] = 0;
    wire_put_u16(hdr + 2, aux);
    wire_put_u32(hdr + 4, id);
    wire_put_u32(hdr + 8, len);
    mux_input(to->m, hdr, sizeof(hdr));
    if (len)
        mux_input(to->m, p, len);
}

static void test_violations(void)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    pump(&h, &g, 0);
    struct mux_stream *s = mux_open(g.m, MUX_SVC_NET, NULL, 0);
    pump(&h, &g, 0);
    ok(s && h.accepted, "stream open before violation");

    /* Data beyond credit: only that stream is reset. */
    h.auto_consume = false;
    struct mux_stream *s2 = mux_open(g.m, MUX_SVC_NET, NULL, 0);
    pump(&h, &g, 0);
    static uint8_t chunk[MUX_MAX_PAYLOAD];
    for (int i = 0; i < 3; i++)
        raw_frame(&h, MUX_F_DATA, 0, mux_stream_id(s2), chunk, sizeof(chunk));
    is_int(h.resets, 1, "overrun stream reset");
    is_int((int)h.last_reset, MUX_RST_FLOW_VIOLATION, "reason flow_violation");
    is_int(h.channel_errors, 0, "no channel error for a stream fault");
    ok(mux_is_ready(h.m), "channel still up");

    /* Garbage: a channel violation, every stream reset, then recovery. */
    h.auto_consume = true;
    h.resets = 0;
    uint8_t junk[40];
    memset(junk, 0xee, sizeof(junk));
    mux_input(h.m, junk, sizeof(junk));
    is_int(h.channel_errors, 1, "garbage is a channel violation");
    ok(h.resets >= 1, "open streams reset by the violation");
    ok(!mux_is_ready(h.m), "host waits for a new handshake");
    pump(&h, &g, 0);
    ok(mux_is_ready(h.m) && mux_is_ready(g.m), "handshake redone after violation");
    struct mux_stream *s3 = mux_open(h.m, MUX_SVC_EXEC, NULL, 0);
    mux_stream_write(s3, "again", 5);
    buf_reset(&g.rx);
    pump(&h, &g, 0);
    ok(g.rx.len == 5 && memcmp(buf_head(&g.rx), "again", 5) == 0, "streams work after recovery");

    /* Oversized frame header. */
    int before = h.channel_errors;
    uint8_t hdr[MUX_HEADER_LEN] = {MUX_F_DATA, 0, 0, 0, 0, 0, 0, 2};
    wire_put_u32(hdr + 8, MUX_MAX_PAYLOAD + 1);
    mux_input(h.m, hdr, sizeof(hdr));
    is_int(h.channel_errors, before + 1, "oversized frame is a channel violation");
    pump(&h, &g, 0);
    ok(mux_is_ready(h.m), "recovers again");

    /* Unknown frame type. */
    before = h.channel_errors;
    raw_frame(&h, 99, 0, 0, NULL, 0);
    is_int(h.channel_errors, before + 1, "unknown type is a channel violation");
    pump(&h, &g, 0);
    ok(mux_is_ready(h.m), "recovers after unknown type");
    side_free(&h);
    side_free(&g);
}

static void test_stream_limit(void)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    pump(&h, &g, 0);
    for (uint32_t i = 0; i < MUX_MAX_STREAMS + 5; i++)
        raw_frame(&h, MUX_F_OPEN, MUX_SVC_NET, 2 + 2 * i, NULL, 0);
    /* The open rate limit (1000/s) trips before the 1024-stream cap. */
    is_int((int)mux_stream_count(h.m), (int)MUX_MAX_OPENS_PER_SEC, "stream opens capped");
    pump(&h, &g, 0);
    is_int(h.channel_errors, 0, "limit is not a channel error");
    side_free(&h);
    side_free(&g);
}

static void test_many_streams_fair(void)
{
    struct side h, g;
    side_init(&h, "host", MUX_SIDE_HOST);
    side_init(&g, "guest", MUX_SIDE_GUEST);
    pump(&h, &g, 0);
    enum { N = 50 };
    struct mux_stream *s[N];
    static uint8_t data[4000];
    for (int i = 0; i < N; i++) {
        s[i] = mux_open(h.m, MUX_SVC_NET, NULL, 0);
        memset(data, 'a' + (i % 26), sizeof(data));
        mux_stream_write(s[i], data, sizeof(data));
        mux_stream_close_write(s[i]);
    }
    pump(&h, &g, 7);
    is_int((int)g.rx.len, N * (int)sizeof(data), "all stream data delivered byte-split");
    is_int(g.fins, N, "all FINs delivered");
    side_free(&h);
    side_free(&g);
}

int main(void)
{
    test_handshake_and_echo(0);
    test_handshake_and_echo(1);
    test_handshake_and_echo(5);
    test_flow_control_isolation();
    test_reset_and_refuse();
    test_violations();
    test_stream_limit();
    test_many_streams_fair();
    return done_testing();
}
