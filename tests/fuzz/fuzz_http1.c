/* libFuzzer target for the HTTP/1 request parser, the response-head parser
 * and the WebSocket decoder (both roles).
 *
 * Every input is parsed whole and split at two data-derived points; the
 * transcripts (events, head fields, body bytes, error) must be identical.
 * The last input byte picks default or tiny limits so the limit paths are
 * reached with small inputs. Any disagreement or broken invariant traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/http1.h"
#include "net/ws.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void log_request(struct buf *log, const struct http1_request *r)
{
    char q[64];
    buf_printf(log, "H %s %s %d %d %zu %d %llu %d %d %d\n", r->method, r->target, r->form,
               r->version_minor, r->nheaders, r->body, (unsigned long long)r->content_length,
               r->keep_alive, r->upgrade, r->expect);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        CHECK(strlen(h->name) == h->name_len && strlen(h->value) == h->value_len);
        buf_printf(log, "%s=%s\n", h->name, h->value);
    }
    /* Helpers must cope with whatever the parser accepted. */
    buf_printf(log, "q=%zd t=%d\n", http1_query_get(r->target, "a", q, sizeof(q)),
               http1_header_has_token(r->headers, r->nheaders, "connection", "close"));
    if (r->host)
        CHECK(http1_host_split(r->host, NULL, NULL, NULL) == 0);
}

static void http_run(const struct http1_limits *lim, const uint8_t *d, size_t n, const size_t *cuts,
                     size_t ncuts, struct buf *log)
{
    struct http1_parser *p = http1_parser_new(lim, NULL);
    CHECK(p);
    size_t start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n, off = start;
        for (;;) {
            size_t used;
            enum http1_event ev = http1_parser_feed(p, d + off, end - off, &used);
            CHECK(used <= end - off);
            off += used;
            if (ev == HTTP1_NEED_MORE) {
                CHECK(off == end);
                break;
            }
            if (ev == HTTP1_HEAD) {
                log_request(log, http1_parser_request(p));
            } else if (ev == HTTP1_BODY) {
                size_t bl;
                const uint8_t *b = http1_parser_body(p, &bl);
                CHECK(bl > 0 && bl <= used && b + bl == d + off);
                buf_append(log, b, bl); /* concatenated: chunking may differ */
            } else if (ev == HTTP1_DONE) {
                buf_printf(log, "\nD %d\n", http1_keep_alive(p));
            } else {
                CHECK(ev == HTTP1_ERROR && http1_parser_error(p) != HTTP1_ERR_NONE);
                buf_printf(log, "\nE %s %s\n", http1_error_reason(http1_parser_error(p)),
                           http1_parser_error_msg(p));
                http1_parser_free(p);
                return;
            }
        }
        start = end;
    }
    buf_printf(log, "EOF %d\n", http1_parser_eof(p));
    http1_parser_free(p);
}

static void ws_run(enum ws_role role, const uint8_t *d, size_t n, const size_t *cuts, size_t ncuts,
                   struct buf *log)
{
    struct ws_decoder *w = ws_decoder_new(role, 300, NULL);
    CHECK(w);
    size_t start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : n, off = start;
        for (;;) {
            size_t used, pl;
            enum ws_event ev = ws_decoder_feed(w, d + off, end - off, &used);
            off += used;
            if (ev == WS_NEED_MORE) {
                CHECK(off == end);
                break;
            }
            if (ev == WS_ERROR || ev == WS_CLOSE) {
                const char *msg;
                uint16_t code = ev == WS_ERROR ? ws_decoder_error(w, &msg)
                                               : ws_decoder_close_code(w, NULL, NULL);
                buf_printf(log, "%s %u\n", ev == WS_ERROR ? "E" : "C", code);
                ws_decoder_free(w);
                return;
            }
            const uint8_t *p = ws_decoder_payload(w, &pl);
            if (ev == WS_MESSAGE && ws_decoder_opcode(w) == WS_OP_TEXT)
                CHECK(ws_utf8_valid(p, pl));
            CHECK(ev != WS_MESSAGE || pl <= 300);
            buf_printf(log, "%d %zu:", ev, pl);
            buf_append(log, p, pl);
        }
        start = end;
    }
    ws_decoder_free(w);
}

static void same(const struct buf *a, const struct buf *b)
{
    CHECK(a->len == b->len && (a->len == 0 || memcmp(buf_head(a), buf_head(b), a->len) == 0));
}

static void response_check(const uint8_t *d, size_t n)
{
    struct http1_response r;
    ssize_t got = http1_response_parse(d, n, 2048, 32, &r, NULL);
    CHECK(got >= -1 && got <= (ssize_t)n);
    if (got > 0) {
        CHECK(r.status >= 100 && r.status <= 599 && r.nheaders <= 32);
        http1_header_has_token(r.headers, r.nheaders, "connection", "upgrade");
        http1_response_free(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_limits lim;
    http1_limits_default(&lim);
    if (size > 0 && (data[size - 1] & 1)) {
        lim = (struct http1_limits){.max_request_line = 40,
                                    .max_header_block = 200,
                                    .max_fields = 5,
                                    .max_field_line = 60,
                                    .max_chunk_line = 20,
                                    .max_trailers = 50,
                                    .max_body = 100};
    }
    size_t cuts[2] = {0, 0};
    if (size > 2) {
        cuts[0] = ((size_t)data[0] | (size_t)data[1] << 8) % size;
        cuts[1] = cuts[0] + ((size_t)data[size - 2] * 131) % (size - cuts[0]);
    }

    struct buf a, b;
    buf_init(&a, 1 << 24);
    buf_init(&b, 1 << 24);
    http_run(&lim, data, size, NULL, 0, &a);
    http_run(&lim, data, size, cuts, 2, &b);
    same(&a, &b);
    for (int role = 0; role < 2; role++) {
        buf_reset(&a);
        buf_reset(&b);
        ws_run((enum ws_role)role, data, size, NULL, 0, &a);
        ws_run((enum ws_role)role, data, size, cuts, 2, &b);
        same(&a, &b);
    }
    buf_free(&a);
    buf_free(&b);
    response_check(data, size);
    return 0;
}
