#include "base/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (n > b->max - b->len) {
        errno = EMSGSIZE;
        return NULL;
    }
    if (b->off + b->len + n <= b->cap)
        return b->data + b->off + b->len;
    /* Compact first: reclaim the consumed prefix before growing. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->len + n <= b->cap)
            return b->data + b->len;
    }
    size_t need = b->len + n + 1; /* +1 keeps room for a terminating NUL */
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nd = realloc(b->data, ncap);
    if (!nd) {
        errno = ENOMEM;
        return NULL;
    }
    b->data = nd;
    b->cap = ncap;
    return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
    b->len += n;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t *dst = buf_reserve(b, n);
    if (!dst)
        return -1;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    uint8_t *dst = buf_reserve(b, (size_t)n + 1);
    if (!dst)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = 0;
        b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void buf_reset(struct buf *b)
{
    b->off = 0;
    b->len = 0;
}

char *buf_steal_str(struct buf *b)
{
    char *s = malloc(b->len + 1);
    if (!s)
        return NULL;
    if (b->len)
        memcpy(s, b->data + b->off, b->len);
    s[b->len] = '\0';
    buf_free(b); /* the caller owns the string; the buffer stays usable */
    return s;
}
