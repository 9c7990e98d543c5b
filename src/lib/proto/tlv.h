/* Tag-length-value fields inside a record payload.
 * Field: u16 tag | u32 length | value (big-endian integers).
 * Unknown tags are skipped by readers, so fields can be added compatibly. */
#ifndef CAPSEM_TLV_H
#define CAPSEM_TLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define TLV_HEADER_LEN 6u

int tlv_put(struct buf *b, uint16_t tag, const void *v, size_t len);
int tlv_put_u32(struct buf *b, uint16_t tag, uint32_t v);
int tlv_put_u64(struct buf *b, uint16_t tag, uint64_t v);
int tlv_put_i32(struct buf *b, uint16_t tag, int32_t v);
int tlv_put_str(struct buf *b, uint16_t tag, const char *s);

struct tlv_iter {
    const uint8_t *p;
    size_t left;
};

void tlv_iter_init(struct tlv_iter *it, const uint8_t *p, size_t len);
/* 1: a field; 0: end; -1: malformed (truncated field). */
int tlv_next(struct tlv_iter *it, uint16_t *tag, const uint8_t **v, size_t *len);

int tlv_as_u32(const uint8_t *v, size_t len, uint32_t *out);
int tlv_as_u64(const uint8_t *v, size_t len, uint64_t *out);
int tlv_as_i32(const uint8_t *v, size_t len, int32_t *out);
/* Heap copy, NUL-terminated; NULL if the value holds a NUL byte or on ENOMEM. */
char *tlv_as_str(const uint8_t *v, size_t len);
/* Checks the whole payload is well-formed. */
bool tlv_valid(const uint8_t *p, size_t len);

#endif
