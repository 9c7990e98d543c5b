/* Records: typed messages carried inside one mux stream.
 * Wire: u32 length (of type + payload, big-endian) | u16 type | payload.
 * Every reader has a maximum payload fixed at init; a longer record is a
 * protocol violation for that stream. */
#ifndef CAPSEM_REC_H
#define CAPSEM_REC_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define REC_HEADER_LEN 6u

struct rec_reader {
    struct buf in;
    size_t max_payload;
    size_t pending_consume; /* bytes of the record returned last time */
};

void rec_reader_init(struct rec_reader *r, size_t max_payload);
void rec_reader_free(struct rec_reader *r);
/* Appends bytes; -1 (EMSGSIZE) if they cannot be held (peer exceeded limits). */
int rec_reader_feed(struct rec_reader *r, const void *data, size_t len);
/* 1: a record (payload borrowed until the next call); 0: need more bytes;
 * -1: violation (record longer than max_payload or shorter than its type). */
int rec_reader_next(struct rec_reader *r, uint16_t *type, const uint8_t **payload, size_t *len);
/* Bytes buffered but not yet returned. */
size_t rec_reader_buffered(const struct rec_reader *r);

struct mux_stream;
/* Queues one record on a stream, whole or not at all: -1 when the send queue
 * lacks room (an on_writable callback is then requested). */
int rec_send(struct mux_stream *s, uint16_t type, const void *payload, size_t len);

/* Appends one encoded record to out. */
int rec_encode(struct buf *out, uint16_t type, const void *payload, size_t len);
/* Encodes the 6-byte header only (payload written separately). */
void rec_header(uint8_t hdr[REC_HEADER_LEN], uint16_t type, size_t payload_len);

#endif
