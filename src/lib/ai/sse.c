/* Incremental SSE parser; see sse.h. */
#include "ai/sse.h"

#include <errno.h>
#include <string.h>

static const uint8_t sse_bom[3] = {0xef, 0xbb, 0xbf};

void sse_init(struct sse_parser *p, size_t max_line, size_t max_event)
{
    memset(p, 0, sizeof(*p));
    p->max_line = max_line;
    p->max_event = max_event;
    buf_init(&p->line, max_line);
    /* Every data line is stored with its LF; the last LF is dropped at
     * dispatch, so max_event + 1 stored bytes is max_event joined bytes. */
    buf_init(&p->data, max_event + 1);
    buf_init(&p->event, max_line + 1);
}

void sse_free(struct sse_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->event);
}

const char *sse_status_str(enum sse_status st)
{
    switch (st) {
    case SSE_OK:
        return "ok";
    case SSE_ERR_LINE:
        return "SSE line too long";
    case SSE_ERR_EVENT:
        return "SSE event too large";
    case SSE_ERR_NOMEM:
        return "out of memory";
    case SSE_STOPPED:
        return "stopped";
    }
    return "?";
}

bool sse_pending(const struct sse_parser *p)
{
    return p->line.len > 0 || p->data.len > 0;
}

static enum sse_status buf_status(void)
{
    return errno == EMSGSIZE ? SSE_ERR_EVENT : SSE_ERR_NOMEM;
}

static enum sse_status sse_dispatch(struct sse_parser *p, sse_event_fn fn, void *ctx)
{
    enum sse_status st = SSE_OK;
    if (p->data.len > 0) {
        char *d = (char *)buf_head(&p->data);
        size_t dlen = p->data.len - 1;
        d[dlen] = '\0'; /* replaces the trailing LF */
        struct sse_event ev = {.event = "message", .event_len = 7, .data = d, .data_len = dlen};
        if (p->have_event) {
            ev.event = (const char *)buf_head(&p->event);
            ev.event_len = p->event.len - 1;
        }
        p->events++;
        if (fn(ctx, &ev) != 0)
            st = SSE_STOPPED;
    }
    buf_reset(&p->data);
    buf_reset(&p->event);
    p->have_event = false;
    return st;
}

static enum sse_status sse_field(struct sse_parser *p, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon ? (size_t)(colon - line) : len;
    const char *val = colon ? colon + 1 : line + len;
    size_t vlen = (size_t)(line + len - val);
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        if (buf_append(&p->data, val, vlen) < 0 || buf_append(&p->data, "\n", 1) < 0)
            return buf_status();
    } else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        buf_reset(&p->event);
        /* The type is at most one line, which already passed max_line. */
        if (buf_append(&p->event, val, vlen) < 0 || buf_append(&p->event, "", 1) < 0)
            return SSE_ERR_NOMEM;
        p->have_event = true;
    }
    /* id, retry, unknown field names: ignored. */
    return SSE_OK;
}

static enum sse_status sse_line(struct sse_parser *p, const char *line, size_t len,
                                sse_event_fn fn, void *ctx)
{
    if (len == 0)
        return sse_dispatch(p, fn, ctx);
    if (line[0] == ':')
        return SSE_OK; /* comment */
    return sse_field(p, line, len);
}

/* Finds the first CR or LF in [s, s+n); n when none. */
static size_t find_eol(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r')
            return i;
    return n;
}

static enum sse_status sse_scan(struct sse_parser *p, const uint8_t *s, size_t n,
                                sse_event_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < n) {
        if (p->skip_lf) {
            p->skip_lf = false;
            if (s[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t seg = find_eol(s + i, n - i);
        if (seg == n - i) { /* no terminator: carry the partial line over */
            if (buf_append(&p->line, s + i, seg) < 0)
                return errno == EMSGSIZE ? SSE_ERR_LINE : SSE_ERR_NOMEM;
            return SSE_OK;
        }
        enum sse_status st;
        if (p->line.len == 0) {
            if (seg > p->max_line)
                return SSE_ERR_LINE;
            st = sse_line(p, (const char *)s + i, seg, fn, ctx);
        } else {
            if (buf_append(&p->line, s + i, seg) < 0)
                return errno == EMSGSIZE ? SSE_ERR_LINE : SSE_ERR_NOMEM;
            st = sse_line(p, (const char *)buf_head(&p->line), p->line.len, fn, ctx);
            buf_reset(&p->line);
        }
        if (st != SSE_OK)
            return st;
        p->skip_lf = s[i + seg] == '\r';
        i += seg + 1;
    }
    return SSE_OK;
}

/* Consumes a leading UTF-8 BOM, possibly split across chunks. Returns the
 * number of bytes of s taken; a partial match that fails is replayed as
 * ordinary bytes. */
static size_t sse_bom_step(struct sse_parser *p, const uint8_t *s, size_t n, sse_event_fn fn,
                           void *ctx, enum sse_status *st)
{
    size_t i = 0;
    while (p->bom_seen < 3 && i < n && s[i] == sse_bom[p->bom_seen]) {
        p->bom_seen++;
        i++;
    }
    if (p->bom_seen == 3) {
        p->bom_seen = 4;
    } else if (i < n) {
        uint8_t matched = p->bom_seen;
        p->bom_seen = 4;
        *st = sse_scan(p, sse_bom, matched, fn, ctx);
    }
    return i;
}

enum sse_status sse_feed(struct sse_parser *p, const void *bytes, size_t len, sse_event_fn fn,
                         void *ctx)
{
    if (p->status != SSE_OK)
        return p->status;
    const uint8_t *s = bytes;
    enum sse_status st = SSE_OK;
    if (p->bom_seen < 4) {
        size_t used = sse_bom_step(p, s, len, fn, ctx, &st);
        s += used;
        len -= used;
    }
    if (st == SSE_OK && len > 0)
        st = sse_scan(p, s, len, fn, ctx);
    p->status = st;
    return st;
}
