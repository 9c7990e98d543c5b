/* libFuzzer target: the channel mux, records and TLV fields, fed with
 * untrusted bytes as a hostile guest would send them. The first two bytes
 * pick a split point so framing across reads is exercised too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mux.h"
#include "proto/rec.h"
#include "proto/tlv.h"

static int on_open(void *ctx, struct mux_stream *s, uint16_t svc, const uint8_t *meta, size_t n)
{
    if (svc == 9999)
        return MUX_RST_REFUSED;
    struct rec_reader *rr = calloc(1, sizeof(*rr));
    rec_reader_init(rr, 4096);
    mux_stream_set_user(s, rr);
    return 0;
}

static void drop(struct mux_stream *s)
{
    struct rec_reader *rr = mux_stream_user(s);
    if (rr) {
        rec_reader_free(rr);
        free(rr);
    }
    mux_stream_set_user(s, NULL);
    mux_stream_release(s);
}

static void on_data(void *ctx, struct mux_stream *s, const uint8_t *d, size_t n)
{
    struct rec_reader *rr = mux_stream_user(s);
    mux_stream_consumed(s, n);
    if (!rr || rec_reader_feed(rr, d, n) < 0)
        return;
    uint16_t type;
    const uint8_t *p;
    size_t len;
    while (rec_reader_next(rr, &type, &p, &len) == 1) {
        struct tlv_iter it;
        tlv_iter_init(&it, p, len);
        uint16_t tag;
        const uint8_t *v;
        size_t vn;
        while (tlv_next(&it, &tag, &v, &vn) == 1) {
            uint32_t u;
            tlv_as_u32(v, vn, &u);
            free(tlv_as_str(v, vn));
        }
        if (type == 1)
            mux_stream_write(s, p, len); /* echo: exercises the send path */
        if (type == 2)
            mux_stream_close_write(s);
    }
}

static void on_fin(void *ctx, struct mux_stream *s)
{
    mux_stream_close_write(s);
    drop(s);
}

static void on_reset(void *ctx, struct mux_stream *s, uint32_t reason)
{
    drop(s);
}

static const struct mux_callbacks cbs = {
    .on_open = on_open, .on_data = on_data, .on_fin = on_fin, .on_reset = on_reset};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mux *m = mux_new(MUX_SIDE_HOST, &cbs, NULL);
    /* Complete the handshake as a well-behaved guest would, then let the
     * input speak. */
    uint8_t hello[MUX_HEADER_LEN + 16] = {MUX_F_HELLO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16};
    memcpy(hello + MUX_HEADER_LEN, "CAPSEMMX", 8);
    hello[MUX_HEADER_LEN + 11] = MUX_VERSION;
    hello[MUX_HEADER_LEN + 15] = 1;
    mux_input(m, hello, sizeof(hello));
    size_t split = size >= 2 ? ((size_t)data[0] << 8 | data[1]) % (size + 1) : 0;
    mux_input(m, data, split);
    for (int i = 0; i < 4; i++) {
        size_t n;
        const uint8_t *p = mux_output_peek(m, &n);
        if (p)
            mux_output_done(m, n);
    }
    mux_input(m, data + split, size - split);
    size_t n;
    while (mux_output_peek(m, &n))
        mux_output_done(m, n);
    mux_tick(m, 0);
    /* Streams still open keep their rec_reader; free them via reset. */
    mux_restart(m, MUX_RST_CANCEL);
    mux_free(m);
    return 0;
}
