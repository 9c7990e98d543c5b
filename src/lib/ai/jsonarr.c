/* Streaming JSON array element splitter; see jsonarr.h. */
#include "ai/jsonarr.h"

#include <errno.h>
#include <string.h>

static const uint8_t ja_bom[3] = {0xef, 0xbb, 0xbf};

void jsonarr_init(struct jsonarr *a, size_t max_element)
{
    memset(a, 0, sizeof(*a));
    a->max_element = max_element;
    buf_init(&a->elem, max_element + 1); /* + the NUL added at delivery */
    a->state = JA_START;
}

void jsonarr_free(struct jsonarr *a)
{
    buf_free(&a->elem);
}

bool jsonarr_done(const struct jsonarr *a)
{
    return a->state == JA_DONE;
}

const char *jsonarr_status_str(enum jsonarr_status st)
{
    switch (st) {
    case JSONARR_OK:
        return "ok";
    case JSONARR_ERR_SYNTAX:
        return "not a JSON array";
    case JSONARR_ERR_SIZE:
        return "JSON array element too large";
    case JSONARR_ERR_NOMEM:
        return "out of memory";
    case JSONARR_STOPPED:
        return "stopped";
    }
    return "?";
}

static bool ja_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static enum jsonarr_status ja_keep(struct jsonarr *a, const uint8_t *s, size_t n)
{
    if (n > a->max_element - a->elem.len)
        return JSONARR_ERR_SIZE;
    if (buf_append(&a->elem, s, n) < 0)
        return JSONARR_ERR_NOMEM;
    return JSONARR_OK;
}

static enum jsonarr_status ja_deliver(struct jsonarr *a, jsonarr_elem_fn fn, void *ctx)
{
    if (buf_append(&a->elem, "", 1) < 0)
        return JSONARR_ERR_NOMEM;
    a->elements++;
    int rc = fn(ctx, (const char *)buf_head(&a->elem), a->elem.len - 1);
    buf_reset(&a->elem);
    a->state = JA_AFTER;
    return rc != 0 ? JSONARR_STOPPED : JSONARR_OK;
}

/* Scans an element from s; *used gets the bytes belonging to it. *end is set
 * when the element ended (its last byte is s[*used - 1], or for a scalar the
 * delimiter is s[*used], left for the caller). */
static void ja_elem_scan(struct jsonarr *a, const uint8_t *s, size_t n, size_t *used, bool *end)
{
    *end = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (a->scalar) {
            if (ja_ws(c) || c == ',' || c == ']') {
                *used = i;
                *end = true;
                return;
            }
            continue;
        }
        if (a->in_string) {
            if (a->escape)
                a->escape = false;
            else if (c == '\\')
                a->escape = true;
            else if (c == '"')
                a->in_string = false;
            if (!a->in_string && a->depth == 0) {
                *used = i + 1;
                *end = true;
                return;
            }
            continue;
        }
        if (c == '"') {
            a->in_string = true;
        } else if (c == '{' || c == '[') {
            a->depth++;
        } else if (c == '}' || c == ']') {
            if (--a->depth == 0) {
                *used = i + 1;
                *end = true;
                return;
            }
        }
    }
    *used = n;
}

/* Starts an element at byte c (already known not to be whitespace). */
static void ja_elem_begin(struct jsonarr *a, uint8_t c)
{
    a->state = JA_IN_ELEM;
    a->depth = 0;
    a->in_string = false;
    a->escape = false;
    a->scalar = !(c == '{' || c == '[' || c == '"');
}

/* One structural byte outside an element. Returns true when it starts an
 * element (the byte is not consumed). */
static bool ja_outside(struct jsonarr *a, uint8_t c, enum jsonarr_status *st)
{
    if (ja_ws(c))
        return false;
    switch (a->state) {
    case JA_START:
        if (c != '[')
            *st = JSONARR_ERR_SYNTAX;
        a->state = JA_BEFORE;
        a->first = true;
        return false;
    case JA_BEFORE:
        if (c == ']' && a->first) {
            a->state = JA_DONE;
            return false;
        }
        if (c == ',' || c == ']') {
            *st = JSONARR_ERR_SYNTAX;
            return false;
        }
        a->first = false;
        ja_elem_begin(a, c);
        return true;
    case JA_AFTER:
        if (c == ',')
            a->state = JA_BEFORE;
        else if (c == ']')
            a->state = JA_DONE;
        else
            *st = JSONARR_ERR_SYNTAX;
        return false;
    default: /* JA_DONE */
        *st = JSONARR_ERR_SYNTAX;
        return false;
    }
}

static enum jsonarr_status ja_scan(struct jsonarr *a, const uint8_t *s, size_t n,
                                   jsonarr_elem_fn fn, void *ctx)
{
    enum jsonarr_status st = JSONARR_OK;
    size_t i = 0;
    while (i < n && st == JSONARR_OK) {
        if (a->state != JA_IN_ELEM) {
            if (!ja_outside(a, s[i], &st))
                i++;
            continue;
        }
        size_t used;
        bool end;
        ja_elem_scan(a, s + i, n - i, &used, &end);
        st = ja_keep(a, s + i, used);
        i += used;
        if (st == JSONARR_OK && end)
            st = ja_deliver(a, fn, ctx);
    }
    return st;
}

enum jsonarr_status jsonarr_feed(struct jsonarr *a, const void *bytes, size_t len,
                                 jsonarr_elem_fn fn, void *ctx)
{
    if (a->status != JSONARR_OK)
        return a->status;
    const uint8_t *s = bytes;
    enum jsonarr_status st = JSONARR_OK;
    if (a->bom_seen < 4) {
        size_t i = 0;
        while (a->bom_seen < 3 && i < len && s[i] == ja_bom[a->bom_seen]) {
            a->bom_seen++;
            i++;
        }
        if (a->bom_seen == 3 || i < len) {
            /* A partial BOM followed by something else is not JSON. */
            st = a->bom_seen == 3 || a->bom_seen == 0 ? JSONARR_OK : JSONARR_ERR_SYNTAX;
            a->bom_seen = 4;
        }
        s += i;
        len -= i;
    }
    if (st == JSONARR_OK)
        st = ja_scan(a, s, len, fn, ctx);
    a->status = st;
    return st;
}
