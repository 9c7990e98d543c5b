/* Incremental Server-Sent Events parser (WHATWG "event stream"
 * interpretation), network.md section 12; docs/ai-interpreters.md.
 *
 * Bytes arrive in arbitrary chunks; every complete event is handed to a
 * callback as soon as its terminating blank line has been seen:
 *
 *   struct sse_parser p;
 *   sse_init(&p, SSE_MAX_LINE, SSE_MAX_EVENT);
 *   st = sse_feed(&p, chunk, n, on_event, ctx);   // repeat per chunk
 *   sse_free(&p);
 *
 * Rules: lines end with LF, CR or CRLF (a CRLF split across two chunks is
 * one terminator); a leading UTF-8 BOM is skipped; `:` lines are comments;
 * `event:` sets the type of the next dispatch; `data:` lines are joined with
 * LF; `id:`, `retry:` and unknown fields are ignored; one space after the
 * colon is removed. A blank line dispatches when data was seen (an event
 * with only `event:` is dropped, as the standard says), then resets the type.
 * Bytes after the last blank line at end of stream are not an event.
 *
 * Limits are checked before anything is buffered: a line (without its
 * terminator) longer than max_line, or joined data longer than max_event,
 * stops the parser with SSE_ERR_LINE / SSE_ERR_EVENT. Once stopped (error or
 * callback refusal), every later sse_feed() returns the same status and
 * ignores its bytes. Memory held: at most max_line + max_event + a type
 * string of at most max_line. */
#ifndef CAPSEM_AI_SSE_H
#define CAPSEM_AI_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SSE_MAX_LINE  (1u << 20) /* 1 MiB, network.md section 14 */
#define SSE_MAX_EVENT (8u << 20) /* 8 MiB */

enum sse_status {
    SSE_OK = 0,
    SSE_ERR_LINE,    /* a line over max_line */
    SSE_ERR_EVENT,   /* joined data over max_event */
    SSE_ERR_NOMEM,   /* allocation failed */
    SSE_STOPPED,     /* the callback returned non-zero */
};

/* One dispatched event. Both strings are borrowed: valid only until the
 * callback returns. `event` is "message" when no `event:` field was given;
 * `data` is NUL-terminated (data_len excludes the NUL) and may contain NULs. */
struct sse_event {
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
};

/* Returns 0 to continue, non-zero to stop the parser (SSE_STOPPED). */
typedef int (*sse_event_fn)(void *ctx, const struct sse_event *ev);

struct sse_parser {
    struct buf line;  /* partial line carried over between chunks */
    struct buf data;  /* joined data, each line followed by LF */
    struct buf event; /* event type of the event being built */
    size_t max_line;
    size_t max_event;
    uint64_t events; /* dispatched so far */
    uint8_t bom_seen; /* bytes of the initial BOM matched (0..3), 4 = decided */
    bool skip_lf;     /* the previous chunk ended with CR: drop a leading LF */
    bool have_event;  /* an `event:` field was seen for this event */
    enum sse_status status;
};

/* No allocation until bytes arrive. max_line and max_event must be > 0. */
void sse_init(struct sse_parser *p, size_t max_line, size_t max_event);
void sse_free(struct sse_parser *p);

/* Parses len bytes, calling fn once per complete event, in order. Returns
 * SSE_OK or the (sticky) status that stopped the parser. */
enum sse_status sse_feed(struct sse_parser *p, const void *bytes, size_t len, sse_event_fn fn,
                         void *ctx);

/* True when bytes of an unfinished line or event are buffered (the stream
 * ended mid-event if this holds at end of stream). */
bool sse_pending(const struct sse_parser *p);

/* "ok", "line too long", ... (static). */
const char *sse_status_str(enum sse_status st);

#endif
