#include "proto/rec.h"

#include <errno.h>

#include "proto/mux.h"
#include "proto/wire.h"

void rec_reader_init(struct rec_reader *r, size_t max_payload)
{
    /* Room for one maximal record plus one mux frame of the next one. */
    buf_init(&r->in, REC_HEADER_LEN + max_payload + MUX_MAX_PAYLOAD);
    r->max_payload = max_payload;
    r->pending_consume = 0;
}

void rec_reader_free(struct rec_reader *r)
{
    buf_free(&r->in);
}

int rec_reader_feed(struct rec_reader *r, const void *data, size_t len)
{
    if (r->pending_consume) {
        buf_consume(&r->in, r->pending_consume);
        r->pending_consume = 0;
    }
    if (buf_append(&r->in, data, len) < 0) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

int rec_reader_next(struct rec_reader *r, uint16_t *type, const uint8_t **payload, size_t *len)
{
    if (r->pending_consume) {
        buf_consume(&r->in, r->pending_consume);
        r->pending_consume = 0;
    }
    if (r->in.len < REC_HEADER_LEN)
        return 0;
    const uint8_t *h = buf_head(&r->in);
    uint32_t rlen = wire_get_u32(h);
    if (rlen < 2 || rlen - 2 > r->max_payload)
        return -1;
    if (r->in.len < 4 + (size_t)rlen)
        return 0;
    *type = wire_get_u16(h + 4);
    *payload = h + REC_HEADER_LEN;
    *len = rlen - 2;
    r->pending_consume = 4 + (size_t)rlen;
    return 1;
}

size_t rec_reader_buffered(const struct rec_reader *r)
{
    return r->in.len - r->pending_consume;
}

int rec_send(struct mux_stream *s, uint16_t type, const void *payload, size_t len)
{
    if (mux_stream_send_room(s) < REC_HEADER_LEN + len) {
        mux_stream_notify_writable(s);
        return -1;
    }
    uint8_t h[REC_HEADER_LEN];
    rec_header(h, type, len);
    mux_stream_write(s, h, sizeof(h));
    if (len)
        mux_stream_write(s, payload, len);
    return 0;
}

void rec_header(uint8_t hdr[REC_HEADER_LEN], uint16_t type, size_t payload_len)
{
    wire_put_u32(hdr, (uint32_t)(payload_len + 2));
    wire_put_u16(hdr + 4, type);
}

int rec_encode(struct buf *out, uint16_t type, const void *payload, size_t len)
{
    if (len > UINT32_MAX - 2) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t h[REC_HEADER_LEN];
    rec_header(h, type, len);
    if (buf_append(out, h, sizeof(h)) < 0)
        return -1;
    if (len && buf_append(out, payload, len) < 0) {
        out->len -= sizeof(h);
        return -1;
    }
    return 0;
}
