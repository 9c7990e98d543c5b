/* SSE parser and JSON-array splitter (src/lib/ai/sse.h, jsonarr.h). */
#include <stdlib.h>
#include <string.h>

#include "ai/jsonarr.h"
#include "ai/sse.h"
#include "base/buf.h"
#include "tap.h"

/* ---- SSE ---- */

struct rec {
    struct buf out; /* "<event>=<data>|" per event */
    int stop_after; /* stop after this many events (0 = never) */
    int n;
};

static int rec_event(void *ctx, const struct sse_event *ev)
{
    struct rec *r = ctx;
    buf_append(&r->out, ev->event, ev->event_len);
    buf_append(&r->out, "=", 1);
    buf_append(&r->out, ev->data, ev->data_len);
    buf_append(&r->out, "|", 1);
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

/* Parses s fed in pieces of `chunk` bytes (0 = whole); returns the record
 * (caller frees) and the final status. */
static char *sse_run(const char *s, size_t len, size_t chunk, size_t max_line, size_t max_event,
                     enum sse_status *st_out, bool *pending)
{
    struct sse_parser p;
    sse_init(&p, max_line, max_event);
    struct rec r = {0};
    buf_init(&r.out, 1 << 20);
    enum sse_status st = SSE_OK;
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk)
        st = sse_feed(&p, s + off, len - off < chunk ? len - off : chunk, rec_event, &r);
    if (st_out)
        *st_out = st;
    if (pending)
        *pending = sse_pending(&p);
    sse_free(&p);
    char *out = buf_steal_str(&r.out);
    buf_free(&r.out);
    return out;
}

static char *sse_simple(const char *s, size_t chunk)
{
    return sse_run(s, strlen(s), chunk, SSE_MAX_LINE, SSE_MAX_EVENT, NULL, NULL);
}

static void check(const char *in, const char *want, const char *what)
{
    char *got = sse_simple(in, 0);
    is_str(got, want, "%s", what);
    free(got);
    got = sse_simple(in, 1);
    is_str(got, want, "%s (1 byte at a time)", what);
    free(got);
}

/* Replaces every LF of s with the terminator t. */
static char *relf(const char *s, const char *t)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (; *s; s++) {
        if (*s == '\n')
            buf_append_str(&b, t);
        else
            buf_append(&b, s, 1);
    }
    return buf_steal_str(&b);
}

static void test_sse_fields(void)
{
    check("event: a\ndata: x\n\n", "a=x|", "event and data");
    check("data: a\ndata: b\n\n", "message=a\nb|", "multi-line data joined with LF");
    check(": comment\nid: 5\nretry: 100\nfoo: bar\ndata: z\n\n", "message=z|",
          "comments, id, retry, unknown fields ignored");
    check("data:x\n\ndata:  y\n\n", "message=x|message= y|", "one space after the colon removed");
    check("data\n\n", "message=|", "field without colon: empty data still dispatches");
    check("event: only\n\ndata: d\n\n", "message=d|", "event without data: no dispatch, type reset");
    check("data: 1\n\n\n\ndata: 2\n\n", "message=1|message=2|", "extra blank lines");
    check("event: e1\nevent: e2\ndata: v\n\n", "e2=v|", "last event field wins");
    check("data: a:b: c\n\n", "message=a:b: c|", "colons in the value kept");
    check("data: no end", "", "unterminated event is not dispatched");
    check("data: x\n", "", "event without its blank line is not dispatched");
}

static void test_sse_line_endings(void)
{
    const char *base = "event: message_start\ndata: {\"a\":1}\n\n: keepalive\n\nevent: "
                       "delta\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
    const char *want = "message_start={\"a\":1}|delta=line1\nline2|message=[DONE]|";
    const char *terms[] = {"\n", "\r\n", "\r"};
    const char *names[] = {"LF", "CRLF", "CR"};
    for (int t = 0; t < 3; t++) {
        char *s = relf(base, terms[t]);
        size_t len = strlen(s);
        char *whole = sse_simple(s, 0);
        is_str(whole, want, "%s line endings", names[t]);
        size_t bad = 0;
        for (size_t k = 1; k < len; k++) {
            char *got = sse_simple(s, k);
            if (strcmp(got, want) != 0)
                bad++;
            free(got);
            /* two pieces split at k */
            struct sse_parser p;
            sse_init(&p, SSE_MAX_LINE, SSE_MAX_EVENT);
            struct rec r = {0};
            buf_init(&r.out, 1 << 16);
            sse_feed(&p, s, k, rec_event, &r);
            sse_feed(&p, s + k, len - k, rec_event, &r);
            char *two = buf_steal_str(&r.out);
            if (strcmp(two, want) != 0)
                bad++;
            free(two);
            buf_free(&r.out);
            sse_free(&p);
        }
        is_int(bad, 0, "%s: every chunk size and every split point give the same events",
               names[t]);
        free(whole);
        free(s);
    }
    /* Mixed terminators in one stream; CR then LF in separate chunks is one. */
    check("data: a\r\ndata: b\rdata: c\n\r\n", "message=a\nb\nc|", "mixed CR, LF, CRLF");
    check("data: a\r\r", "message=a|", "CR CR is a blank line");
    check("data: a\n\r\n", "message=a|", "LF then CRLF");
}

static void test_sse_bom(void)
{
    check("\xef\xbb\xbf"
          "data: x\n\n",
          "message=x|", "leading BOM skipped");
    check("\xef\xbb"
          "data: x\n\ndata: y\n\n",
          "message=y|", "partial BOM stays in the first line (an unknown field name)");
    check("data: \xef\xbb\xbfx\n\n",
          "message=\xef\xbb\xbfx|", "BOM inside a value kept");
}

static void test_sse_limits(void)
{
    enum sse_status st;
    const size_t ml = 64, me = 100;
    char line[256];
    /* "data: " + 58 bytes = 64-byte line: at the limit */
    memset(line, 0, sizeof(line));
    memcpy(line, "data: ", 6);
    memset(line + 6, 'x', 58);
    strcat(line, "\n\n"); /* test code; bounded by the array */
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        char *got = sse_run(line, strlen(line), chunk, ml, me, &st, NULL);
        ok(st == SSE_OK && strlen(got) == 8 + 58 + 1,
           "line of exactly max_line accepted (chunk %zu)", chunk);
        free(got);
    }
    memset(line + 6, 'x', 59);
    line[65] = '\n';
    line[66] = '\n';
    line[67] = '\0';
    for (size_t chunk = 0; chunk <= 1; chunk++) {
        char *got = sse_run(line, strlen(line), chunk, ml, me, &st, NULL);
        is_int(st, SSE_ERR_LINE, "line of max_line + 1 rejected (chunk %zu)", chunk);
        is_str(got, "", "nothing dispatched past the line limit");
        free(got);
    }
    /* A line over the limit is caught before its end arrives. */
    struct sse_parser p;
    sse_init(&p, ml, me);
    struct rec r = {0};
    buf_init(&r.out, 1024);
    char big[65];
    memset(big, 'y', sizeof(big));
    is_int(sse_feed(&p, big, 64, rec_event, &r), SSE_OK, "64 unterminated bytes buffered");
    is_int(sse_feed(&p, big, 1, rec_event, &r), SSE_ERR_LINE, "65th byte without EOL rejected");
    is_int(sse_feed(&p, "\n\n", 2, rec_event, &r), SSE_ERR_LINE, "errors are sticky");
    ok(p.line.cap <= 64 + 256, "no more than the cap buffered (%zu)", p.line.cap);
    buf_free(&r.out);
    sse_free(&p);

    /* Event: joined data of exactly max_event (two lines 50 + LF + 49). */
    char ev[512];
    int n = snprintf(ev, sizeof(ev), "data: %.50s\ndata: %.49s\n\n",
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    char *got = sse_run(ev, (size_t)n, 0, ml, me, &st, NULL);
    ok(st == SSE_OK && strlen(got) == 8 + 100 + 1, "event of exactly max_event accepted");
    free(got);
    n = snprintf(ev, sizeof(ev), "data: %.50s\ndata: %.50s\n\n",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    got = sse_run(ev, (size_t)n, 1, ml, me, &st, NULL);
    is_int(st, SSE_ERR_EVENT, "event of max_event + 1 rejected");
    free(got);
}

static void test_sse_misc(void)
{
    /* callback stop */
    struct sse_parser p;
    sse_init(&p, SSE_MAX_LINE, SSE_MAX_EVENT);
    struct rec r = {.stop_after = 1};
    buf_init(&r.out, 1024);
    const char *s = "data: 1\n\ndata: 2\n\n";
    is_int(sse_feed(&p, s, strlen(s), rec_event, &r), SSE_STOPPED, "callback can stop");
    is_int(r.n, 1, "no event after the stop");
    is_int(sse_feed(&p, s, strlen(s), rec_event, &r), SSE_STOPPED, "stop is sticky");
    buf_free(&r.out);
    sse_free(&p);
    /* NUL bytes in data are kept */
    const char nul[] = "data: a\0b\n\n";
    enum sse_status st;
    bool pending;
    char *got = sse_run(nul, sizeof(nul) - 1, 0, SSE_MAX_LINE, SSE_MAX_EVENT, &st, &pending);
    ok(st == SSE_OK && !pending, "NUL in data accepted");
    free(got);
    got = sse_run("data: x\n\ndata: part", 19, 0, SSE_MAX_LINE, SSE_MAX_EVENT, &st, &pending);
    ok(pending, "unfinished event reported pending");
    free(got);
    is_str(sse_status_str(SSE_ERR_LINE), "SSE line too long", "status string");
}

/* ---- JSON array splitter ---- */

struct arec {
    struct buf out; /* "<elem>|" */
    int n;
};

static int arec_elem(void *ctx, const char *e, size_t n)
{
    struct arec *r = ctx;
    if (e[n] != '\0')
        return 1; /* must be NUL-terminated */
    buf_append(&r->out, e, n);
    buf_append(&r->out, "|", 1);
    r->n++;
    return 0;
}

static char *ja_run(const char *s, size_t len, size_t chunk, size_t max, enum jsonarr_status *st,
                    bool *done)
{
    struct jsonarr a;
    jsonarr_init(&a, max);
    struct arec r = {0};
    buf_init(&r.out, 1 << 20);
    enum jsonarr_status last = JSONARR_OK;
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk)
        last = jsonarr_feed(&a, s + off, len - off < chunk ? len - off : chunk, arec_elem, &r);
    if (st)
        *st = last;
    if (done)
        *done = jsonarr_done(&a);
    jsonarr_free(&a);
    char *out = buf_steal_str(&r.out);
    buf_free(&r.out);
    return out;
}

static void ja_check(const char *in, const char *want, enum jsonarr_status want_st,
                     const char *what)
{
    size_t len = strlen(in), bad = 0;
    for (size_t chunk = 0; chunk <= len; chunk++) {
        enum jsonarr_status st;
        char *got = ja_run(in, len, chunk, JSONARR_MAX_ELEMENT, &st, NULL);
        if (chunk == 0) {
            is_str(got, want, "%s", what);
            is_int(st, want_st, "%s: status", what);
        } else if (strcmp(got, want) != 0 || st != want_st) {
            bad++;
        }
        free(got);
    }
    is_int(bad, 0, "%s: same for every chunk size", what);
}

static void test_jsonarr(void)
{
    ja_check("[{\"a\":1},{\"b\":[1,2,{\"c\":\"]\"}]}]", "{\"a\":1}|{\"b\":[1,2,{\"c\":\"]\"}]}|",
             JSONARR_OK, "objects with brackets inside strings");
    ja_check("[\"x\\\"]\", \"\\\\\"]", "\"x\\\"]\"|\"\\\\\"|", JSONARR_OK,
             "strings with escaped quotes and backslashes");
    ja_check("[1, true,null ,-2.5e3]", "1|true|null|-2.5e3|", JSONARR_OK, "scalars");
    ja_check("  []  ", "", JSONARR_OK, "empty array");
    ja_check("[{\n  \"candidates\": []\n}\n,\r\n{\n  \"x\": \"}{\"\n}\n]\n",
             "{\n  \"candidates\": []\n}|{\n  \"x\": \"}{\"\n}|", JSONARR_OK,
             "Gemini layout with CRLF separators");
    ja_check("\xef\xbb\xbf[{}]", "{}|", JSONARR_OK, "leading BOM");
    ja_check("{\"a\":1}", "", JSONARR_ERR_SYNTAX, "object at top level");
    ja_check("[,1]", "", JSONARR_ERR_SYNTAX, "leading comma");
    ja_check("[1,,2]", "1|", JSONARR_ERR_SYNTAX, "double comma");
    ja_check("[1,]", "1|", JSONARR_ERR_SYNTAX, "trailing comma");
    ja_check("[{}] x", "{}|", JSONARR_ERR_SYNTAX, "bytes after the array");
    ja_check("[{} {}]", "{}|", JSONARR_ERR_SYNTAX, "missing comma");

    bool done;
    enum jsonarr_status st;
    char *got = ja_run("[{}", 3, 0, 100, &st, &done);
    ok(st == JSONARR_OK && !done, "unclosed array is not done");
    free(got);
    got = ja_run("[{}]", 4, 0, 100, &st, &done);
    ok(done, "closed array is done");
    free(got);

    /* element size: 10-byte element at max 10 ok, 11 rejected */
    got = ja_run("[\"12345678\"]", 12, 1, 10, &st, NULL);
    ok(st == JSONARR_OK && strcmp(got, "\"12345678\"|") == 0, "element of exactly max accepted");
    free(got);
    got = ja_run("[\"123456789\"]", 13, 1, 10, &st, NULL);
    is_int(st, JSONARR_ERR_SIZE, "element of max + 1 rejected");
    free(got);
    got = ja_run("[\"123456789\"]", 13, 0, 10, &st, NULL);
    is_int(st, JSONARR_ERR_SIZE, "element of max + 1 rejected (whole)");
    free(got);
    got = ja_run("[12345678901]", 13, 0, 10, &st, NULL);
    is_int(st, JSONARR_ERR_SIZE, "scalar of max + 1 rejected");
    free(got);
}

int main(void)
{
    test_sse_fields();
    test_sse_line_endings();
    test_sse_bom();
    test_sse_limits();
    test_sse_misc();
    test_jsonarr();
    return done_testing();
}
