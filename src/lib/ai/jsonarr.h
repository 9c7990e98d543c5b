/* Streaming splitter for one top-level JSON array (Gemini's
 * :streamGenerateContent without alt=sse), network.md section 12.
 *
 * Bytes arrive in arbitrary chunks; each complete element of the top-level
 * array is handed to a callback as soon as its last byte has been seen (an
 * object or array at its closing bracket, a string at its closing quote, a
 * number or literal at the following `,`, `]` or whitespace). The splitter
 * tracks only nesting and strings (escapes included): it does not validate
 * an element, the callback parses it (jansson). Outside elements it accepts
 * exactly JSON whitespace, one `[`, `,` between elements and one `]`;
 * anything else (a missing `[`, `,,`, a trailing comma, bytes after `]`)
 * stops it with JSONARR_ERR_SYNTAX. A leading UTF-8 BOM is skipped.
 *
 * An element longer than max_element bytes stops it with JSONARR_ERR_SIZE
 * before more than max_element bytes are buffered. A stopped splitter keeps
 * its status and ignores later bytes. */
#ifndef CAPSEM_AI_JSONARR_H
#define CAPSEM_AI_JSONARR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define JSONARR_MAX_ELEMENT (8u << 20) /* 8 MiB, network.md section 14 */

enum jsonarr_status {
    JSONARR_OK = 0,
    JSONARR_ERR_SYNTAX, /* not a JSON array at the top level */
    JSONARR_ERR_SIZE,   /* an element over max_element */
    JSONARR_ERR_NOMEM,
    JSONARR_STOPPED, /* the callback returned non-zero */
};

/* elem is borrowed until return and NUL-terminated (len excludes the NUL).
 * Return 0 to continue, non-zero to stop (JSONARR_STOPPED). */
typedef int (*jsonarr_elem_fn)(void *ctx, const char *elem, size_t len);

enum jsonarr_state {
    JA_START,      /* before `[` */
    JA_BEFORE,     /* after `[` or `,`: an element or (after `[` only) `]` */
    JA_IN_ELEM,    /* inside an element */
    JA_AFTER,      /* after an element: `,` or `]` */
    JA_DONE,       /* after `]`: whitespace only */
};

struct jsonarr {
    struct buf elem;
    size_t max_element;
    uint64_t elements; /* delivered so far */
    uint32_t depth;    /* open brackets inside the current element */
    uint8_t bom_seen;  /* 0..3 bytes of a leading BOM matched, 4 = decided */
    uint8_t state;     /* enum jsonarr_state */
    bool first;        /* JA_BEFORE right after `[` (so `]` is allowed) */
    bool in_string;
    bool escape;
    bool scalar; /* the current element is a number or literal */
    enum jsonarr_status status;
};

void jsonarr_init(struct jsonarr *a, size_t max_element);
void jsonarr_free(struct jsonarr *a);

/* Splits len more bytes. Returns JSONARR_OK or the sticky stop status. */
enum jsonarr_status jsonarr_feed(struct jsonarr *a, const void *bytes, size_t len,
                                 jsonarr_elem_fn fn, void *ctx);

/* True once the closing `]` was seen (the array is complete). */
bool jsonarr_done(const struct jsonarr *a);

const char *jsonarr_status_str(enum jsonarr_status st);

#endif
