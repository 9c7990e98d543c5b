#include "proto/tlv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

int tlv_put(struct buf *b, uint16_t tag, const void *v, size_t len)
{
    if (len > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t h[TLV_HEADER_LEN];
    wire_put_u16(h, tag);
    wire_put_u32(h + 2, (uint32_t)len);
    if (buf_room(b) < sizeof(h) + len) {
        errno = EMSGSIZE;
        return -1;
    }
    if (buf_append(b, h, sizeof(h)) < 0 || buf_append(b, v, len) < 0)
        return -1;
    return 0;
}

int tlv_put_u32(struct buf *b, uint16_t tag, uint32_t v)
{
    uint8_t p[4];
    wire_put_u32(p, v);
    return tlv_put(b, tag, p, sizeof(p));
}

int tlv_put_u64(struct buf *b, uint16_t tag, uint64_t v)
{
    uint8_t p[8];
    wire_put_u64(p, v);
    return tlv_put(b, tag, p, sizeof(p));
}

int tlv_put_i32(struct buf *b, uint16_t tag, int32_t v)
{
    return tlv_put_u32(b, tag, (uint32_t)v);
}

int tlv_put_str(struct buf *b, uint16_t tag, const char *s)
{
    return tlv_put(b, tag, s, strlen(s));
}

void tlv_iter_init(struct tlv_iter *it, const uint8_t *p, size_t len)
{
    it->p = p;
    it->left = len;
}

int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **v, size_t *len)
{
    if (it->left == 0)
        return 0;
    if (it->left < TLV_HEADER_LEN)
        return -1;
    uint32_t n = wire_get_u32(it->p + 2);
    if (n > it->left - TLV_HEADER_LEN)
        return -1;
    *tag = wire_get_u16(it->p);
    *v = it->p + TLV_HEADER_LEN;
    *len = n;
    it->p += TLV_HEADER_LEN + n;
    it->left -= TLV_HEADER_LEN + n;
    return 1;
}

int tlv_as_u32(const uint8_t *v, size_t len, uint32_t *out)
{
    if (len != 4)
        return -1;
    *out = wire_get_u32(v);
    return 0;
}

int tlv_as_u64(const uint8_t *v, size_t len, uint64_t *out)
{
    if (len != 8)
        return -1;
    *out = wire_get_u64(v);
    return 0;
}

int tlv_as_i32(const uint8_t *v, size_t len, int32_t *out)
{
    uint32_t u;
    if (tlv_as_u32(v, len, &u) < 0)
        return -1;
    *out = (int32_t)u;
    return 0;
}

char *tlv_as_str(const uint8_t *v, size_t len)
{
    if (memchr(v, '\0', len))
        return NULL;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    memcpy(s, v, len);
    s[len] = '\0';
    return s;
}

bool tlv_valid(const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    int rc;
    while ((rc = tlv_next(&it, &tag, &v, &n)) == 1)
        ;
    return rc == 0;
}
