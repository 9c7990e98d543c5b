/* Growable byte buffer with a hard cap fixed at init. Appending past the cap
 * fails (returns -1, errno EMSGSIZE) instead of growing: every buffer a peer
 * can fill is bounded. Data lives in [data + off, data + off + len). */
#ifndef CAPSEM_BUF_H
#define CAPSEM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t off; /* consumed prefix */
    size_t len; /* live bytes after off */
    size_t cap; /* allocated */
    size_t max; /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Appends n bytes; -1 (EMSGSIZE) past max, -1 (ENOMEM) on allocation failure. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reserves room for n more bytes and returns a pointer to it (NULL past max). */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
static inline uint8_t *buf_head(const struct buf *b)
{
    return b->data + b->off;
}
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Room left before max. */
static inline size_t buf_room(const struct buf *b)
{
    return b->max - b->len;
}
/* Hands the bytes to the caller as a NUL-terminated string (malloc'd); the
 * buffer becomes empty. */
char *buf_steal_str(struct buf *b);

#endif
