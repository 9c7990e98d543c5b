/* Unit tests for the HTTP/1 request parser, helpers, writers and the
 * response-head parser. Every parse also runs split at each byte boundary
 * and one byte at a time, and must give the same transcript. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/http1.h"
#include "tap.h"

/* ---- transcript harness ---- */

struct run {
    struct buf log;  /* events, head fields, body per message */
    struct buf body; /* body of the current message */
    enum http1_error err;
    int heads, dones;
    size_t consumed_at_done; /* total bytes consumed at the last DONE */
};

static void log_head(struct buf *l, const struct http1_request *r)
{
    buf_printf(l, "HEAD %s %s 1.%d form=%d\n", r->method, r->target, r->version_minor, r->form);
    for (size_t i = 0; i < r->nheaders; i++)
        buf_printf(l, "  [%s]=[%s]\n", r->headers[i].name, r->headers[i].value);
    buf_printf(l, "  host=%s body=%d cl=%llu ka=%d up=%d expect=%d\n", r->host ? r->host : "-",
               r->body, (unsigned long long)r->content_length, r->keep_alive, r->upgrade,
               r->expect);
}

/* Feeds data in pieces ending at the given cut points (sorted, within n). */
static void run_cuts(struct run *R, const struct http1_limits *lim, const uint8_t *d, size_t n,
                     const size_t *cuts, size_t ncuts, bool eof)
{
    struct http1_parser *p = http1_parser_new(lim, NULL);
    buf_init(&R->log, 1 << 24);
    buf_init(&R->body, 1 << 24);
    R->err = HTTP1_ERR_NONE;
    R->heads = R->dones = 0;
    size_t start = 0, total = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n;
        size_t off = start;
        for (;;) {
            size_t used;
            enum http1_event ev = http1_parser_feed(p, d + off, end - off, &used);
            off += used;
            total += used;
            if (ev == HTTP1_NEED_MORE)
                break;
            if (ev == HTTP1_HEAD) {
                R->heads++;
                log_head(&R->log, http1_parser_request(p));
            } else if (ev == HTTP1_BODY) {
                size_t bl;
                const uint8_t *b = http1_parser_body(p, &bl);
                buf_append(&R->body, b, bl);
            } else if (ev == HTTP1_DONE) {
                R->dones++;
                buf_printf(&R->log, "BODY %zu:", R->body.len);
                buf_append(&R->log, buf_head(&R->body), R->body.len);
                buf_printf(&R->log, "\nDONE ka=%d\n", http1_keep_alive(p));
                buf_reset(&R->body);
                R->consumed_at_done = total;
                /* Pipelining: the caller decides whether to go on. */
            } else {
                R->err = http1_parser_error(p);
                buf_printf(&R->log, "ERROR %d %s: %s\n", http1_error_status(R->err),
                           http1_error_reason(R->err), http1_parser_error_msg(p));
                goto out;
            }
        }
        start = end;
    }
    if (eof) {
        int r = http1_parser_eof(p);
        if (r < 0) {
            R->err = http1_parser_error(p);
            buf_printf(&R->log, "EOF %s: %s\n", http1_error_reason(R->err),
                       http1_parser_error_msg(p));
        } else {
            buf_printf(&R->log, "EOF clean\n");
        }
    }
out:
    buf_free(&R->body);
    http1_parser_free(p);
}

static void run_free(struct run *R)
{
    buf_free(&R->log);
}

static bool same_log(const struct run *a, const struct run *b)
{
    return a->log.len == b->log.len &&
           memcmp(buf_head(&a->log), buf_head(&b->log), a->log.len) == 0;
}

/* Parses whole, then at every single split point (inputs up to max_splits
 * bytes), then one byte at a time; all transcripts must match. Returns the
 * whole-buffer run (caller frees). */
static struct run parse_all(const struct http1_limits *lim, const void *data, size_t n, bool eof,
                            const char *name)
{
    const uint8_t *d = data;
    struct run whole, other;
    run_cuts(&whole, lim, d, n, NULL, 0, eof);
    bool same = true;
    size_t bad_cut = 0;
    /* Large inputs: a sample of split points, plus every point near the end. */
    size_t stride = n <= 2048 ? 1 : n / 256;
    for (size_t k = 1; k < n && same; k += (k + 64 >= n ? 1 : stride)) {
        run_cuts(&other, lim, d, n, &k, 1, eof);
        same = same_log(&whole, &other);
        bad_cut = k;
        run_free(&other);
    }
    ok(same, "%s: identical at %s split point", name, stride == 1 ? "every" : "sampled");
    if (!same)
        diag("  first differing split at byte %zu", bad_cut);
    size_t *cuts = malloc((n ? n : 1) * sizeof(*cuts));
    for (size_t k = 0; k + 1 < n; k++)
        cuts[k] = k + 1;
    run_cuts(&other, lim, d, n, cuts, n ? n - 1 : 0, eof);
    free(cuts);
    ok(same_log(&whole, &other), "%s: identical one byte at a time", name);
    run_free(&other);
    return whole;
}

static bool log_has(const struct run *R, const char *needle)
{
    return memmem(buf_head(&R->log), R->log.len, needle, strlen(needle)) != NULL;
}

/* Expects an error with the given reason (or success when reason is NULL). */
static void expect(const char *name, const char *in, const char *reason)
{
    struct run R = parse_all(NULL, in, strlen(in), true, name);
    if (reason) {
        is_str(http1_error_reason(R.err), reason, "%s -> %s", name, reason);
        is_int(R.dones, 0, "%s: no message completed", name);
    } else {
        is_int(R.err, HTTP1_ERR_NONE, "%s accepted", name);
        if (R.err) {
            R.log.data[R.log.off + R.log.len - 1] = 0;
            diag("%s", (char *)buf_head(&R.log));
        }
    }
    run_free(&R);
}

/* ---- basic parsing ---- */

static void test_simple_get(void)
{
    const char *in = "GET /vms/list?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                     "X-Dup: a\r\nx-dup:  b \r\n\r\n";
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used;
    enum http1_event ev = http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    is_int(ev, HTTP1_HEAD, "GET: head event");
    is_int(used, strlen(in), "GET: whole head consumed");
    const struct http1_request *r = http1_parser_request(p);
    is_str(r->method, "GET", "method");
    is_str(r->target, "/vms/list?x=1", "target");
    is_int(r->version_minor, 1, "version 1.1");
    is_int(r->form, HTTP1_TARGET_ORIGIN, "origin form");
    is_int(r->nheaders, 4, "four fields");
    is_str(r->host, "localhost", "host");
    is_str(http1_header_get(r->headers, r->nheaders, "ACCEPT"), "*/*", "case-insensitive get");
    size_t pos = 0;
    const struct http1_header *h1 = http1_header_find(r->headers, r->nheaders, "x-dup", &pos);
    const struct http1_header *h2 = http1_header_find(r->headers, r->nheaders, "x-dup", &pos);
    const struct http1_header *h3 = http1_header_find(r->headers, r->nheaders, "x-dup", &pos);
    ok(h1 && h2 && !h3, "duplicates found in order");
    is_str(h1 ? h1->value : NULL, "a", "first duplicate");
    is_str(h2 ? h2->value : NULL, "b", "second duplicate, OWS trimmed");
    is_str(h2 ? h2->name : NULL, "x-dup", "name case kept");
    is_int(h2 ? h2->value_len : 0, 1, "value_len");
    is_int(r->body, HTTP1_BODY_EMPTY, "no body");
    ok(r->keep_alive && http1_keep_alive(p), "1.1 keep-alive by default");
    ok(!r->upgrade, "no upgrade");
    is_int(r->expect, HTTP1_EXPECT_NONE, "no expect");
    ok(!http1_parser_idle(p), "not idle before DONE");
    ev = http1_parser_feed(p, NULL, 0, &used);
    is_int(ev, HTTP1_DONE, "DONE with no more input");
    ok(http1_parser_idle(p), "idle after DONE");
    is_int(http1_parser_eof(p), 0, "clean EOF");
    http1_parser_free(p);
}

static void test_content_length_body(void)
{
    const char *in = "POST /vms/create HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
                     "{\"a\":\"b c\"}";
    struct run R = parse_all(NULL, in, strlen(in), true, "CL body");
    ok(log_has(&R, "body=1 cl=11"), "length body kind");
    ok(log_has(&R, "BODY 11:{\"a\":\"b c\"}\nDONE ka=1\nEOF clean"), "body delivered whole");
    run_free(&R);

    in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    R = parse_all(NULL, in, strlen(in), true, "CL 0");
    ok(log_has(&R, "body=0 cl=0") && log_has(&R, "BODY 0:\nDONE"), "Content-Length: 0 is empty");
    run_free(&R);

    in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\ncontent-length: 005\r\n\r\nabcde";
    R = parse_all(NULL, in, strlen(in), true, "CL repeated identical");
    ok(log_has(&R, "BODY 5:abcde"), "identical repeated Content-Length accepted");
    run_free(&R);

    in = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    R = parse_all(NULL, in, strlen(in), true, "CL truncated");
    is_str(http1_error_reason(R.err), "client_aborted", "EOF inside body -> client_aborted");
    run_free(&R);

    in = "GET / HTTP/1.1\r\nHost: x";
    R = parse_all(NULL, in, strlen(in), true, "head truncated");
    is_str(http1_error_reason(R.err), "client_aborted", "EOF inside head -> client_aborted");
    run_free(&R);
}

static void test_chunked(void)
{
    const char *in = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "4;name=val;q=\"a \\\"b\\\" c\"\r\nWiki\r\n"
                     "5 ; ext\r\npedia\r\n"
                     "E\r\n in\r\n\r\nchunks.\r\n"
                     "0\r\nX-Trailer: yes\r\nChecksum: abc\r\n\r\n";
    struct run R = parse_all(NULL, in, strlen(in), true, "chunked");
    ok(log_has(&R, "body=2"), "chunked kind");
    ok(log_has(&R, "BODY 23:Wikipedia in\r\n\r\nchunks.\nDONE ka=1\nEOF clean"),
       "chunked body decoded, trailers dropped");
    run_free(&R);

    in = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n";
    R = parse_all(NULL, in, strlen(in), true, "empty chunked");
    ok(log_has(&R, "BODY 0:\nDONE"), "empty chunked body, coding case-insensitive");
    run_free(&R);

    in = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n00000A\r\n0123456789"
         "\r\n0000\r\n\r\n";
    R = parse_all(NULL, in, strlen(in), true, "leading zeros");
    ok(log_has(&R, "BODY 10:0123456789"), "chunk sizes with leading zeros");
    run_free(&R);

    static const struct {
        const char *name, *chunks, *reason;
    } bad[] = {
        {"non-hex size", "xyz\r\n", "bad_chunked"},
        {"empty size", "\r\n", "bad_chunked"},
        {"negative size", "-1\r\n", "bad_chunked"},
        {"size then junk", "4 x\r\nWiki\r\n", "bad_chunked"},
        {"size then space", "4 \r\nWiki\r\n", "bad_chunked"},
        {"ext then space", "4;a=b \r\nWiki\r\n", "bad_chunked"},
        {"hex prefix", "0x4\r\nWiki\r\n", "bad_chunked"},
        {"ext CTL in quotes", "4;a=\"\x01\"\r\nWiki\r\n", "bad_chunked"},
        {"bad ext name", "4;=v\r\nWiki\r\n", "bad_chunked"},
        {"unterminated quoted ext", "4;a=\"v\r\nWiki\r\n", "bad_chunked"},
        {"size over 2^40", "10000000001\r\n", "bad_chunked"},
        {"huge size", "ffffffffffffffffffffffff\r\n", "bad_chunked"},
        {"missing CRLF after data", "4\r\nWikiXY", "bad_chunked"},
        {"LF only after data", "4\r\nWiki\n0\r\n\r\n", "bad_chunked"},
        {"bare LF size line", "4\nWiki\r\n", "bad_chunked"},
        {"bare CR in size line", "4\r;a\r\nWiki\r\n", "bad_chunked"},
        {"bad trailer", "0\r\nbad trailer\r\n\r\n", "bad_chunked"},
        {"folded trailer", "0\r\nA: b\r\n c\r\n\r\n", "bad_chunked"},
        {"size 2^40 over max body", "10000000000\r\n", "body_too_large"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                 bad[i].chunks);
        expect(bad[i].name, buf, bad[i].reason);
    }

    /* 2^40 itself is a valid size when the body cap allows it. */
    struct http1_limits lim;
    http1_limits_default(&lim);
    lim.max_body = 1ULL << 41;
    in = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000\r\nabc";
    R = parse_all(&lim, in, strlen(in), true, "size 2^40");
    ok(log_has(&R, "EOF client_aborted"), "chunk size 2^40 accepted (then EOF mid-chunk)");
    run_free(&R);
}

static void test_pipelined(void)
{
    const char *in =
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
        "GET /d HTTP/1.0\r\n\r\n";
    struct run R = parse_all(NULL, in, strlen(in), true, "pipelined");
    is_int(R.heads, 4, "four heads");
    is_int(R.dones, 4, "four messages");
    ok(log_has(&R, "HEAD GET /a") && log_has(&R, "BODY 3:abc") && log_has(&R, "BODY 1:z") &&
           log_has(&R, "HEAD GET /d HTTP") == false && log_has(&R, "HEAD GET /d 1.0"),
       "each request seen in order");
    ok(log_has(&R, "BODY 0:\nDONE ka=0\nEOF clean"), "1.0 request last, not keep-alive");
    run_free(&R);
}

static void test_upgrade_leaves_bytes(void)
{
    const char *in = "GET /events HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                     "Upgrade: websocket\r\n\r\n\x81\x85garbage";
    size_t head_len = strlen(in) - 9;
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used, off = 0;
    enum http1_event ev = http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    off += used;
    is_int(ev, HTTP1_HEAD, "upgrade: head");
    ok(http1_parser_request(p)->upgrade, "upgrade flagged");
    ev = http1_parser_feed(p, (const uint8_t *)in + off, strlen(in) - off, &used);
    off += used;
    is_int(ev, HTTP1_DONE, "upgrade: done");
    is_int(off, head_len, "bytes after the head stay unconsumed");
    http1_parser_free(p);

    in = "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    p = http1_parser_new(NULL, NULL);
    http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    ok(!http1_parser_request(p)->upgrade, "Upgrade ignored on HTTP/1.0");
    http1_parser_free(p);

    in = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
    p = http1_parser_new(NULL, NULL);
    http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    ok(!http1_parser_request(p)->upgrade, "Upgrade without Connection: upgrade is no upgrade");
    http1_parser_free(p);
}

static bool keep_alive_of(const char *in)
{
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used;
    bool ka = false;
    if (http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used) == HTTP1_HEAD)
        ka = http1_keep_alive(p);
    http1_parser_free(p);
    return ka;
}

static void test_keep_alive(void)
{
    ok(keep_alive_of("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "1.1 default persistent");
    ok(!keep_alive_of("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), "1.1 close");
    ok(!keep_alive_of("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n"),
       "1.1 close token in a list, any case");
    ok(!keep_alive_of("GET / HTTP/1.1\r\nHost: x\r\nConnection: a\r\nConnection: close\r\n\r\n"),
       "1.1 close in a second Connection field");
    ok(keep_alive_of("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n"),
       "1.1 'closed' is not 'close'");
    ok(!keep_alive_of("GET / HTTP/1.0\r\n\r\n"), "1.0 default not persistent");
    ok(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), "1.0 keep-alive");
    ok(!keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"),
       "1.0 keep-alive with close");

    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used;
    const char *in = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n";
    http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    ok(!http1_keep_alive(p), "no keep-alive after an error");
    is_int(http1_parser_feed(p, (const uint8_t *)"GET", 3, &used), HTTP1_ERROR, "error is sticky");
    is_int(used, 0, "nothing consumed after an error");
    http1_parser_free(p);
}

static void test_expect(void)
{
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used;
    const char *in =
        "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
    is_int(http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used), HTTP1_HEAD, "expect head");
    is_int(http1_parser_request(p)->expect, HTTP1_EXPECT_CONTINUE, "100-continue visible");
    /* The caller answers 100 before the body arrives; the parser just waits. */
    is_int(http1_parser_feed(p, NULL, 0, &used), HTTP1_NEED_MORE, "waits for the body");
    http1_parser_free(p);

    p = http1_parser_new(NULL, NULL);
    in = "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n\r\n";
    http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    is_int(http1_parser_request(p)->expect, HTTP1_EXPECT_NONE, "100-continue ignored on 1.0");
    http1_parser_free(p);

    p = http1_parser_new(NULL, NULL);
    in = "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n";
    http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used);
    is_int(http1_parser_request(p)->expect, HTTP1_EXPECT_OTHER, "other expectation -> 417 case");
    http1_parser_free(p);
}

/* ---- strictness ---- */

static void test_strict_head(void)
{
    static const struct {
        const char *name, *in, *reason;
    } cases[] = {
        {"valid", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL},
        {"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", "bad_request"},
        {"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"bare LF header", "GET / HTTP/1.1\r\nHost: x\nA: b\r\n\r\n", "bad_request"},
        {"bare LF request line", "GET / HTTP/1.1\nHost: x\r\n\r\n", "bad_request"},
        {"bare LF end of head", "GET / HTTP/1.1\r\nHost: x\r\n\n", "bad_request"},
        {"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nA: b\0c\r\n\r\n", "bad_request"},
        {"control char in value", "GET / HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n", "bad_request"},
        {"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nA: b\x7f\r\n\r\n", "bad_request"},
        {"tab and obs-text in value", "GET / HTTP/1.1\r\nHost: x\r\nA: b\tc\xe9\r\n\r\n", NULL},
        {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "bad_request"},
        {"tab before colon", "GET / HTTP/1.1\r\nHost: x\r\nA\t: b\r\n\r\n", "bad_request"},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", "bad_request"},
        {"obs-fold tab", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\tc\r\n\r\n", "bad_request"},
        {"space before first field", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", "bad_request"},
        {"no colon", "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", "bad_request"},
        {"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "bad_request"},
        {"bad name char", "GET / HTTP/1.1\r\nHost: x\r\nFo@o: v\r\n\r\n", "bad_request"},
        {"name with slash", "GET / HTTP/1.1\r\nHost: x\r\nA/B: v\r\n\r\n", "bad_request"},
        {"bad method char", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"no version", "GET /\r\n\r\n", "bad_request"},
        {"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", "bad_request"},
        {"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"short version", "GET / HTTP/1\r\nHost: x\r\n\r\n", "bad_request"},
        {"non-ascii target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"relative target", "GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"absolute form", "GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n", NULL},
        {"asterisk OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", NULL},
        {"asterisk GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
         NULL},
        {"CONNECT path", "CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"CONNECT no port", "CONNECT example.com HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"HTTP/2.0", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "version_not_supported"},
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", "version_not_supported"},
        {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", "version_not_supported"},
        {"HTTP/1.0 no host", "GET / HTTP/1.0\r\n\r\n", NULL},
        {"missing host", "GET / HTTP/1.1\r\nA: b\r\n\r\n", "bad_host"},
        {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "bad_host"},
        {"two hosts 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", "bad_host"},
        {"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_host"},
        {"host bad port", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", "bad_host"},
        {"host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "bad_host"},
        {"host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "bad_host"},
        {"host ipv6", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", NULL},
        {"host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", NULL},
        {"one leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL},
        {"two leading CRLF", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"leading bare LF", "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request"},
        {"binary garbage", "\x16\x03\x01\x02\x01\xfc\r\n", "bad_request"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Include the embedded NUL: measure up to the final CRLFCRLF. */
        const char *in = cases[i].in;
        size_t n = strlen(in);
        if (strstr(cases[i].name, "NUL"))
            n = strlen(in) + 1 + strlen(in + strlen(in) + 1);
        struct run R = parse_all(NULL, in, n, true, cases[i].name);
        if (cases[i].reason)
            is_str(http1_error_reason(R.err), cases[i].reason, "%s -> %s", cases[i].name,
                   cases[i].reason);
        else
            ok(R.err == HTTP1_ERR_NONE && R.dones == 1, "%s accepted", cases[i].name);
        run_free(&R);
    }
}

static void test_framing_rules(void)
{
    static const struct {
        const char *name, *fields, *reason;
    } cases[] = {
        {"CL and TE", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "ambiguous_length"},
        {"TE and CL", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "ambiguous_length"},
        {"differing CL", "Content-Length: 3\r\nContent-Length: 4\r\n", "ambiguous_length"},
        {"differing CL list", "Content-Length: 3, 4\r\n", "ambiguous_length"},
        {"non-numeric CL", "Content-Length: abc\r\n", "ambiguous_length"},
        {"signed CL", "Content-Length: +3\r\n", "ambiguous_length"},
        {"negative CL", "Content-Length: -3\r\n", "ambiguous_length"},
        {"hex CL", "Content-Length: 0x3\r\n", "ambiguous_length"},
        {"empty CL", "Content-Length:\r\n", "ambiguous_length"},
        {"CL empty element", "Content-Length: 3,,3\r\n", "ambiguous_length"},
        {"CL inner space", "Content-Length: 1 2\r\n", "ambiguous_length"},
        {"huge CL", "Content-Length: 99999999999999999999999\r\n", "body_too_large"},
        {"TE gzip only", "Transfer-Encoding: gzip\r\n", "ambiguous_length"},
        {"TE chunked not last", "Transfer-Encoding: chunked, gzip\r\n", "ambiguous_length"},
        {"TE chunked twice", "Transfer-Encoding: chunked, chunked\r\n", "ambiguous_length"},
        {"TE chunked twice fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
         "ambiguous_length"},
        {"TE gzip then chunked", "Transfer-Encoding: gzip, chunked\r\n", "unsupported"},
        {"TE split fields", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
         "unsupported"},
        {"TE empty", "Transfer-Encoding:\r\n", "ambiguous_length"},
        {"TE chunked params", "Transfer-Encoding: chunked;x=1\r\n", "ambiguous_length"},
        {"TE xchunked", "Transfer-Encoding: xchunked\r\n", "ambiguous_length"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: x\r\n%s\r\n0\r\n\r\n",
                 cases[i].fields);
        expect(cases[i].name, buf, cases[i].reason);
    }
    expect("TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "ambiguous_length");
}

/* ---- limits: at the limit and one past ---- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static void expect_big(const char *name, const struct http1_limits *lim, struct buf *in,
                       const char *reason)
{
    struct run R = parse_all(lim, buf_head(in), in->len, true, name);
    if (reason)
        is_str(http1_error_reason(R.err), reason, "%s -> %s", name, reason);
    else
        ok(R.err == HTTP1_ERR_NONE && R.dones == 1, "%s accepted", name);
    run_free(&R);
    buf_free(in);
}

static void test_request_line_limit(void)
{
    for (int extra = 0; extra <= 1; extra++) {
        /* "GET " + target + " HTTP/1.1" == 8192 (+ extra) */
        size_t tlen = 8192 - 4 - 9 + (size_t)extra;
        char *t = repeat('a', tlen);
        t[0] = '/';
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", t);
        expect_big(extra ? "request line 8193" : "request line 8192", NULL, &in,
                   extra ? "uri_too_long" : NULL);
        free(t);
    }
    /* Without any LF at all: detected as soon as the limit passes. */
    char *t = repeat('a', 9000);
    struct buf in;
    buf_init(&in, 1 << 20);
    buf_printf(&in, "GET /%s", t);
    expect_big("request line without end", NULL, &in, "uri_too_long");
    free(t);
}

static void test_field_limits(void)
{
    for (int extra = 0; extra <= 1; extra++) {
        /* "X: " + value == 16384 (+ extra) */
        char *v = repeat('v', 16384 - 3 + (size_t)extra);
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in, "GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n", v);
        expect_big(extra ? "field line 16385" : "field line 16384", NULL, &in,
                   extra ? "headers_too_large" : NULL);
        free(v);
    }
    for (int extra = 0; extra <= 1; extra++) {
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (int i = 1; i < 100 + extra; i++)
            buf_printf(&in, "F%d: v\r\n", i);
        buf_printf(&in, "\r\n");
        expect_big(extra ? "101 fields" : "100 fields", NULL, &in,
                   extra ? "headers_too_large" : NULL);
    }
    /* Header block: 4 lines of 16000 bytes + CRLF, then one sized to hit 65536 exactly. */
    for (int extra = 0; extra <= 1; extra++) {
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in, "GET / HTTP/1.1\r\n");
        size_t block = 0;
        const char *host = "Host: x\r\n";
        buf_printf(&in, "%s", host);
        block += strlen(host);
        char *v = repeat('v', 16000 - 4);
        for (int i = 0; i < 4; i++) {
            buf_printf(&in, "A%d: %s\r\n", i, v);
            block += 16000 + 2;
        }
        free(v);
        size_t last = 65536 - block - 2 - 2 + (size_t)extra; /* minus its CRLF and final CRLF */
        v = repeat('w', last - 3);
        buf_printf(&in, "Z: %s\r\n\r\n", v);
        free(v);
        expect_big(extra ? "header block 65537" : "header block 65536", NULL, &in,
                   extra ? "headers_too_large" : NULL);
    }
}

static void test_chunk_limits(void)
{
    for (int extra = 0; extra <= 1; extra++) {
        /* "4;e=" + pad == 1024 (+ extra) */
        char *pad = repeat('p', 1024 - 4 + (size_t)extra);
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in,
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "4;e=%s\r\nWiki\r\n0\r\n\r\n",
                   pad);
        expect_big(extra ? "chunk line 1025" : "chunk line 1024", NULL, &in,
                   extra ? "bad_chunked" : NULL);
        free(pad);
    }
    for (int extra = 0; extra <= 1; extra++) {
        /* trailer section: one field line + CRLF + final CRLF == 8192 (+ extra) */
        char *v = repeat('t', 8192 - 4 - 3 + (size_t)extra);
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in,
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\nT: %s\r\n\r\n",
                   v);
        expect_big(extra ? "trailers 8193" : "trailers 8192", NULL, &in,
                   extra ? "bad_chunked" : NULL);
        free(v);
    }
}

static void test_body_limits(void)
{
    struct http1_limits lim;
    http1_limits_default(&lim);
    lim.max_body = 10;
    for (int extra = 0; extra <= 1; extra++) {
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%.*s", 10 + extra,
                   10 + extra, "0123456789A");
        expect_big(extra ? "CL body 11 over 10" : "CL body 10 at 10", &lim, &in,
                   extra ? "body_too_large" : NULL);
    }
    for (int extra = 0; extra <= 1; extra++) {
        struct buf in;
        buf_init(&in, 1 << 20);
        buf_printf(&in,
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "6\r\n012345\r\n%x\r\n%.*s\r\n0\r\n\r\n",
                   4 + extra, 4 + extra, "ABCDE");
        expect_big(extra ? "chunked body 11 over 10" : "chunked body 10 at 10", &lim, &in,
                   extra ? "body_too_large" : NULL);
    }
    is_int(http1_error_status(HTTP1_ERR_BODY_TOO_LARGE), 413, "413 status");
    is_int(http1_error_status(HTTP1_ERR_URI_TOO_LONG), 414, "414 status");
    is_int(http1_error_status(HTTP1_ERR_HEADERS_TOO_LARGE), 431, "431 status");
    is_int(http1_error_status(HTTP1_ERR_VERSION), 505, "505 status");
    is_int(http1_error_status(HTTP1_ERR_UNSUPPORTED), 501, "501 status");
    is_int(http1_error_status(HTTP1_ERR_AMBIGUOUS_LENGTH), 400, "400 status");
}

static void test_keep_alive_reuse(void)
{
    /* Many requests through one parser: the head buffer is reused and a big
     * head releases its memory afterwards. */
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    int done = 0;
    for (int i = 0; i < 200; i++) {
        struct buf in;
        buf_init(&in, 1 << 20);
        char *v = repeat('v', i % 7 == 0 ? 15000 : 10);
        buf_printf(&in, "POST /%d HTTP/1.1\r\nHost: x\r\nBig: %s\r\nContent-Length: 1\r\n\r\nx", i,
                   v);
        free(v);
        size_t off = 0, used;
        for (;;) {
            enum http1_event ev = http1_parser_feed(p, buf_head(&in) + off, in.len - off, &used);
            off += used;
            if (ev == HTTP1_DONE)
                done++;
            if (ev == HTTP1_NEED_MORE || ev == HTTP1_ERROR)
                break;
        }
        buf_free(&in);
    }
    is_int(done, 200, "200 requests on one parser");
    http1_parser_free(p);
}

/* ---- helpers ---- */

static void test_query(void)
{
    char b[32];
    const char *t = "/vms/x/logs?tail=10&grep=hello+w%6Frld&e=&flag&t%61g=%2F%25&long=0123456789"
                    "0123456789012345678901234567890123456789";
    is_int(http1_query_get(t, "tail", b, sizeof(b)), 2, "tail length");
    is_str(b, "10", "tail value");
    is_int(http1_query_get(t, "grep", b, sizeof(b)), 11, "grep length");
    is_str(b, "hello world", "plus and percent decoded");
    is_int(http1_query_get(t, "e", b, sizeof(b)), 0, "empty value");
    is_int(http1_query_get(t, "flag", b, sizeof(b)), 0, "flag without =");
    is_int(http1_query_get(t, "tag", b, sizeof(b)), 2, "name decoded before comparing");
    is_str(b, "/%", "escapes in value");
    is_int(http1_query_get(t, "missing", b, sizeof(b)), -1, "absent");
    is_int(http1_query_get(t, "long", b, sizeof(b)), -2, "too long for buffer");
    is_int(http1_query_get("/a?x=%zz", "x", b, sizeof(b)), -2, "bad escape");
    is_int(http1_query_get("/a?x=%4", "x", b, sizeof(b)), -2, "truncated escape");
    is_int(http1_query_get("/a?x=a%00b", "x", b, sizeof(b)), -2, "decoded NUL refused");
    is_int(http1_query_get("/a", "x", b, sizeof(b)), -1, "no query");
    is_int(http1_query_get("/a?x=1&x=2", "x", b, sizeof(b)), 1, "first occurrence");
    is_str(b, "1", "first occurrence value");

    const char *path, *query;
    size_t pl, ql;
    http1_target_split("/p/q?a=b", &path, &pl, &query, &ql);
    ok(pl == 4 && memcmp(path, "/p/q", 4) == 0 && ql == 3 && memcmp(query, "a=b", 3) == 0,
       "target split");
    http1_target_split("/p", &path, &pl, &query, &ql);
    ok(pl == 2 && query == NULL && ql == 0, "target without query");

    is_int(http1_pct_decode("a%2Fb+c", 7, false, b, sizeof(b)), 5, "pct decode without plus");
    is_str(b, "a/b+c", "plus kept in paths");
    is_int(http1_pct_decode("abc", 3, false, b, 3), -1, "no room for NUL");
    is_int(http1_pct_decode("abc", 3, false, b, 4), 3, "exact fit");
}

static void test_host_split(void)
{
    const char *n;
    size_t nl;
    int port;
    ok(http1_host_split("example.com:8080", &n, &nl, &port) == 0 && nl == 11 && port == 8080 &&
           memcmp(n, "example.com", 11) == 0,
       "host:port");
    ok(http1_host_split("example.com", &n, &nl, &port) == 0 && nl == 11 && port == -1, "no port");
    ok(http1_host_split("[::1]:443", &n, &nl, &port) == 0 && nl == 3 && port == 443 &&
           memcmp(n, "::1", 3) == 0,
       "IPv6 literal without brackets");
    ok(http1_host_split("10.0.0.1:0", &n, &nl, &port) == 0 && port == 0, "IPv4, port 0");
    ok(http1_host_split("%2Frun%2Fs.sock", &n, &nl, &port) == 0, "pct-encoded reg-name");
    ok(http1_host_split("", &n, &nl, &port) == 0 && nl == 0, "empty");
    ok(http1_host_split("a:65535", NULL, NULL, &port) == 0 && port == 65535, "port 65535");
    ok(http1_host_split("a:65536", NULL, NULL, NULL) < 0, "port 65536");
    ok(http1_host_split("a:b", NULL, NULL, NULL) < 0, "non-numeric port");
    ok(http1_host_split("[::1", NULL, NULL, NULL) < 0, "unterminated IPv6");
    ok(http1_host_split("[]", NULL, NULL, NULL) < 0, "empty IPv6");
    ok(http1_host_split("[::g]", NULL, NULL, NULL) < 0, "bad IPv6 char");
    ok(http1_host_split("a%zz", NULL, NULL, NULL) < 0, "bad escape");
    ok(http1_host_split("a:1:2", NULL, NULL, NULL) < 0, "two colons");
    ok(http1_token_valid("GET", 3) && !http1_token_valid("", 0) && !http1_token_valid("a b", 3),
       "token check");
    ok(http1_header_has_token(
           &(struct http1_header){"Connection", "keep-alive , Upgrade;x=1", 10, 24}, 1,
           "connection", "upgrade"),
       "token in list with spaces and parameters");
}

static void test_writers(void)
{
    struct buf b;
    buf_init(&b, 4096);
    struct http1_field f[] = {{"Content-Type", "application/json"}, {"X-A", "1"}};
    ok(http1_write_response_head(&b, 200, NULL, f, 2, 2, NULL) == 0, "write 200");
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: 1\r\n"
                       "Content-Length: 2\r\n\r\n";
    is_mem(buf_head(&b), b.len, want, strlen(want), "200 head bytes");
    buf_reset(&b);
    ok(http1_write_response_head(&b, 404, "Nope", NULL, 0, HTTP1_LEN_CHUNKED, NULL) == 0,
       "write chunked head");
    http1_write_chunk(&b, "hello", 5, NULL);
    http1_write_chunk(&b, "", 0, NULL);
    http1_write_chunk(&b, "0123456789abcdefX", 17, NULL);
    http1_write_chunk_end(&b, NULL);
    want = "HTTP/1.1 404 Nope\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
           "11\r\n0123456789abcdefX\r\n0\r\n\r\n";
    is_mem(buf_head(&b), b.len, want, strlen(want), "chunked response bytes");
    buf_reset(&b);
    ok(http1_write_response_head(&b, 204, NULL, NULL, 0, HTTP1_LEN_NONE, NULL) == 0, "204");
    want = "HTTP/1.1 204 No Content\r\n\r\n";
    is_mem(buf_head(&b), b.len, want, strlen(want), "204 without length");

    size_t before = b.len;
    struct err *e = NULL;
    struct http1_field inj[] = {{"X", "a\r\nSet-Cookie: evil"}};
    ok(http1_write_response_head(&b, 200, NULL, inj, 1, 0, &e) < 0 && e && e->status == 500,
       "header injection refused");
    err_free(e);
    e = NULL;
    struct http1_field badname[] = {{"X Y", "a"}};
    ok(http1_write_response_head(&b, 200, NULL, badname, 1, 0, NULL) < 0, "bad name refused");
    ok(http1_write_response_head(&b, 200, "O\nK", NULL, 0, 0, NULL) < 0, "bad reason refused");
    is_int(b.len, before, "nothing appended on failure");
    buf_free(&b);

    buf_init(&b, 40);
    ok(http1_write_response_head(&b, 200, NULL, f, 2, 0, &e) < 0 && e, "full buffer fails");
    is_int(b.len, 0, "full buffer: nothing appended");
    err_free(e);
    buf_free(&b);

    buf_init(&b, 4096);
    struct http1_field rf[] = {{"Host", "localhost"}};
    ok(http1_write_request_head(&b, "POST", "/vms/create", rf, 1, 2, NULL) == 0, "request head");
    want = "POST /vms/create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n";
    is_mem(buf_head(&b), b.len, want, strlen(want), "request head bytes");
    ok(http1_write_request_head(&b, "GET", "/a b", rf, 1, 0, NULL) < 0, "space in target refused");
    buf_free(&b);

    is_str(http1_status_text(404), "Not Found", "status text 404");
    is_str(http1_status_text(431), "Request Header Fields Too Large", "status text 431");
    is_str(http1_status_text(299), "Unknown", "unknown status text");
}

static void test_response_parse(void)
{
    struct http1_response r;
    struct err *e = NULL;
    const char *in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n\r\n\x81\x05";
    size_t head = strlen(in) - 2;
    ssize_t n = http1_response_parse((const uint8_t *)in, strlen(in), 1024, 10, &r, &e);
    is_int(n, (ssize_t)head, "101 head length");
    is_int(r.status, 101, "status");
    is_str(r.reason, "Switching Protocols", "reason");
    is_int(r.nheaders, 2, "two fields");
    is_str(http1_header_get(r.headers, r.nheaders, "upgrade"), "websocket", "field");
    http1_response_free(&r);

    for (size_t k = 0; k < head; k++)
        if (http1_response_parse((const uint8_t *)in, k, 1024, 10, &r, NULL) != 0) {
            ok(0, "partial head needs more (at %zu)", k);
            break;
        } else if (k == head - 1) {
            ok(1, "every partial head needs more");
        }

    in = "HTTP/1.0 200\r\n\r\n";
    ok(http1_response_parse((const uint8_t *)in, strlen(in), 1024, 10, &r, NULL) == 16 &&
           r.status == 200 && r.version_minor == 0 && strcmp(r.reason, "") == 0 && r.nheaders == 0,
       "no reason, no fields");
    http1_response_free(&r);

    static const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 099 X\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
        "HTTP/1.1 200 OK\nA: b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = NULL;
        n = http1_response_parse((const uint8_t *)bad[i], strlen(bad[i]), 1024, 10, &r, &e);
        ok(n == -1 && e && e->status == 502, "malformed response %zu refused", i);
        err_free(e);
    }
    in = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ok(http1_response_parse((const uint8_t *)in, strlen(in), 1024, 3, &r, NULL) > 0,
       "3 fields at max 3");
    http1_response_free(&r);
    ok(http1_response_parse((const uint8_t *)in, strlen(in), 1024, 2, &r, NULL) == -1,
       "3 fields over max 2");
    ok(http1_response_parse((const uint8_t *)in, strlen(in), strlen(in), 3, &r, NULL) > 0,
       "head exactly max bytes");
    http1_response_free(&r);
    ok(http1_response_parse((const uint8_t *)in, strlen(in), strlen(in) - 1, 3, &r, NULL) == -1,
       "head one byte over max");
    in = "HTTP/1.1 200 OK\r\nA: 1\r\n";
    ok(http1_response_parse((const uint8_t *)in, strlen(in), strlen(in), 3, &r, NULL) == -1,
       "incomplete head at max fails");

    /* Writer output reads back. */
    struct buf b;
    buf_init(&b, 1024);
    struct http1_field f[] = {{"X-Y", "z"}};
    http1_write_response_head(&b, 503, NULL, f, 1, 0, NULL);
    n = http1_response_parse(buf_head(&b), b.len, 1024, 10, &r, NULL);
    ok(n == (ssize_t)b.len && r.status == 503 && strcmp(r.reason, "Service Unavailable") == 0 &&
           r.nheaders == 2,
       "writer output parses back");
    http1_response_free(&r);
    buf_free(&b);
}

int main(void)
{
    test_simple_get();
    test_content_length_body();
    test_chunked();
    test_pipelined();
    test_upgrade_leaves_bytes();
    test_keep_alive();
    test_expect();
    test_strict_head();
    test_framing_rules();
    test_request_line_limit();
    test_field_limits();
    test_chunk_limits();
    test_body_limits();
    test_keep_alive_reuse();
    test_query();
    test_host_split();
    test_writers();
    test_response_parse();
    return done_testing();
}
