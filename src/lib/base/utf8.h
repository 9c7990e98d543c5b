/* UTF-8 helpers for turning guest bytes into JSON strings. */
#ifndef CAPSEM_UTF8_H
#define CAPSEM_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Returns a heap copy of [p, p+n) where every invalid sequence (including
 * overlongs, surrogates and code points past U+10FFFF) becomes U+FFFD.
 * *out_len gets the byte length; NUL bytes are kept. Caller frees. */
char *utf8_sanitize(const char *p, size_t n, size_t *out_len);
bool utf8_valid(const char *p, size_t n);

#endif
