/* Unit tests for the WebSocket handshake helpers, frame decoder and encoder.
 * Decoding also runs one byte at a time and must give the same transcript. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "net/http1.h"
#include "net/ws.h"
#include "tap.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- transcript harness ---- */

/* Decodes data in pieces of `step` bytes (0: whole) into a transcript. */
static void decode(enum ws_role role, size_t max, const uint8_t *d, size_t n, size_t step,
                   struct buf *log)
{
    struct ws_decoder *dec = ws_decoder_new(role, max, NULL);
    buf_init(log, 1 << 22);
    size_t start = 0;
    bool stop = false;
    while (!stop && (start < n || n == 0)) {
        size_t end = step ? (start + step < n ? start + step : n) : n;
        size_t off = start;
        for (;;) {
            size_t used, plen;
            enum ws_event ev = ws_decoder_feed(dec, d + off, end - off, &used);
            off += used;
            if (ev == WS_NEED_MORE)
                break;
            const uint8_t *pl = ws_decoder_payload(dec, &plen);
            if (ev == WS_MESSAGE) {
                buf_printf(log, "MSG op=%d %zu:", ws_decoder_opcode(dec), plen);
                buf_append(log, pl, plen);
                buf_append(log, "\n", 1);
            } else if (ev == WS_PING || ev == WS_PONG) {
                buf_printf(log, "%s %zu:", ev == WS_PING ? "PING" : "PONG", plen);
                buf_append(log, pl, plen);
                buf_append(log, "\n", 1);
            } else if (ev == WS_CLOSE) {
                const uint8_t *r;
                size_t rl;
                uint16_t code = ws_decoder_close_code(dec, &r, &rl);
                buf_printf(log, "CLOSE %u %.*s\n", code, (int)rl, (const char *)r);
                stop = true;
                break;
            } else {
                const char *msg;
                uint16_t code = ws_decoder_error(dec, &msg);
                buf_printf(log, "ERROR %u %s\n", code, msg);
                stop = true;
                break;
            }
        }
        start = end;
        if (n == 0)
            break;
    }
    ws_decoder_free(dec);
}

/* Decodes whole and byte by byte; returns the whole transcript (caller frees). */
static struct buf decode_both(enum ws_role role, size_t max, const struct buf *in, const char *name)
{
    struct buf a, b;
    decode(role, max, buf_head(in), in->len, 0, &a);
    decode(role, max, buf_head(in), in->len, 1, &b);
    ok(a.len == b.len && memcmp(buf_head(&a), buf_head(&b), a.len) == 0,
       "%s: whole and byte-by-byte agree", name);
    buf_free(&b);
    return a;
}

static void expect_log(enum ws_role role, size_t max, const struct buf *in, const char *want,
                       const char *name)
{
    struct buf log = decode_both(role, max, in, name);
    is_mem(buf_head(&log), log.len, want, strlen(want), "%s", name);
    if (log.len != strlen(want) || memcmp(buf_head(&log), want, log.len) != 0) {
        buf_append(&log, "", 1);
        diag("got: %s", (char *)buf_head(&log));
    }
    buf_free(&log);
}

static void raw(struct buf *b, const char *bytes, size_t n)
{
    buf_append(b, bytes, n);
}

/* ---- handshake ---- */

static const struct http1_request *parse_req(struct http1_parser *p, const char *in)
{
    size_t used;
    if (http1_parser_feed(p, (const uint8_t *)in, strlen(in), &used) != HTTP1_HEAD)
        return NULL;
    return http1_parser_request(p);
}

static void test_accept(void)
{
    char acc[WS_ACCEPT_LEN + 1];
    ok(ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==", acc, NULL) == 0, "accept computed");
    is_str(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 example accept value");
    ok(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="), "RFC key valid");
    ok(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="), "short key");
    ok(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==="), "long key");
    ok(!ws_key_valid("dGhlIHNhbXBsZSBub25j*Q=="), "bad char");
    ok(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQAA"), "no padding");
    char key[WS_KEY_LEN + 1], key2[WS_KEY_LEN + 1];
    ok(ws_client_key(key, NULL) == 0 && ws_key_valid(key), "random client key is valid");
    ws_client_key(key2, NULL);
    ok(strcmp(key, key2) != 0, "two client keys differ");
}

static void test_server_handshake(void)
{
    const char *good = "GET /terminal/abc HTTP/1.1\r\nHost: localhost\r\nUpgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    struct buf out;
    buf_init(&out, 4096);
    struct http1_field extra[] = {{"X-Capsem", "1"}};
    ok(ws_server_handshake(parse_req(p, good), extra, 1, &out, NULL) == 0, "server handshake ok");
    const char *want =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "X-Capsem: 1\r\n\r\n";
    is_mem(buf_head(&out), out.len, want, strlen(want), "101 response bytes");
    http1_parser_free(p);

    static const struct {
        const char *name, *in;
        int status;
    } bad[] = {
        {"POST",
         "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400},
        {"no Upgrade",
         "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400},
        {"no Connection",
         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400},
        {"version 8",
         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         426},
        {"no version",
         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         426},
        {"bad key",
         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short==\r\n\r\n",
         400},
        {"two keys",
         "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
         400},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = http1_parser_new(NULL, NULL);
        struct err *e = NULL;
        buf_reset(&out);
        const struct http1_request *r = parse_req(p, bad[i].in);
        ok(r && ws_server_handshake(r, NULL, 0, &out, &e) < 0 && e && e->status == bad[i].status,
           "handshake refused: %s (%d)", bad[i].name, bad[i].status);
        is_int(out.len, 0, "%s: nothing written", bad[i].name);
        err_free(e);
        http1_parser_free(p);
    }
    buf_free(&out);
}

static void test_client_handshake(void)
{
    char key[WS_KEY_LEN + 1];
    ws_client_key(key, NULL);
    struct buf req, resp;
    buf_init(&req, 4096);
    buf_init(&resp, 4096);
    struct http1_field extra[] = {{"Authorization", "Bearer t"}};
    ok(ws_client_request(&req, "127.0.0.1:19222", "/events", key, extra, 1, NULL) == 0,
       "client request built");

    /* Our own server side accepts it. */
    struct http1_parser *p = http1_parser_new(NULL, NULL);
    size_t used;
    is_int(http1_parser_feed(p, buf_head(&req), req.len, &used), HTTP1_HEAD, "request parses");
    const struct http1_request *r = http1_parser_request(p);
    ok(r->upgrade, "parsed as an upgrade");
    is_str(http1_header_get(r->headers, r->nheaders, "authorization"), "Bearer t", "extra field");
    ok(ws_server_handshake(r, NULL, 0, &resp, NULL) == 0, "server accepts the client request");
    http1_parser_free(p);

    struct http1_response hr;
    ok(http1_response_parse(buf_head(&resp), resp.len, 8192, 32, &hr, NULL) > 0, "101 parses");
    ok(ws_client_verify(&hr, key, NULL) == 0, "client verifies the accept value");
    char other[WS_KEY_LEN + 1];
    ws_client_key(other, NULL);
    struct err *e = NULL;
    ok(ws_client_verify(&hr, other, &e) < 0 && e && e->status == 502, "wrong key refused");
    err_free(e);
    http1_response_free(&hr);

    const char *no = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    http1_response_parse((const uint8_t *)no, strlen(no), 8192, 32, &hr, NULL);
    e = NULL;
    ok(ws_client_verify(&hr, key, &e) < 0 && strstr(err_msg(e), "403"), "non-101 refused");
    err_free(e);
    http1_response_free(&hr);

    char acc[WS_ACCEPT_LEN + 1], ext[256];
    ws_accept_value(key, acc, NULL);
    snprintf(ext, sizeof(ext),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
             acc);
    http1_response_parse((const uint8_t *)ext, strlen(ext), 8192, 32, &hr, NULL);
    ok(ws_client_verify(&hr, key, NULL) < 0, "unrequested extension refused");
    http1_response_free(&hr);
    buf_free(&req);
    buf_free(&resp);
}

/* ---- frames ---- */

static void test_round_trips(void)
{
    for (int r = 0; r < 2; r++) {
        enum ws_role sender = r ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
        enum ws_role receiver = r ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
        const char *who = r ? "server->client" : "client->server";
        struct buf in;
        buf_init(&in, 1 << 20);
        ws_send(&in, sender, WS_OP_TEXT, "hello \xe2\x82\xac", 9, NULL);
        ws_send(&in, sender, WS_OP_BINARY, "\x01\x02\xff", 3, NULL);
        ws_send(&in, sender, WS_OP_PING, "p", 1, NULL);
        ws_send(&in, sender, WS_OP_PONG, "", 0, NULL);
        ws_send(&in, sender, WS_OP_TEXT, "", 0, NULL);
        ws_send_close(&in, sender, 1000, "bye", NULL);
        char name[64];
        snprintf(name, sizeof(name), "round trip %s", who);
        expect_log(receiver, 1024, &in,
                   "MSG op=1 9:hello \xe2\x82\xac\nMSG op=2 3:\x01\x02\xff\nPING 1:p\nPONG 0:\n"
                   "MSG op=1 0:\nCLOSE 1000 bye\n",
                   name);
        /* The client's frames are masked, the server's are not. */
        ok(((buf_head(&in)[1] & 0x80) != 0) == (sender == WS_ROLE_CLIENT), "%s: mask bit", who);
        buf_free(&in);
    }
}

static void test_lengths(void)
{
    static const size_t sizes[] = {125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *p = malloc(n);
        for (size_t k = 0; k < n; k++)
            p[k] = (uint8_t)(k * 7);
        struct buf in;
        buf_init(&in, 1 << 20);
        ws_frame_write(&in, WS_OP_BINARY, true, p, n, MASK, NULL);
        size_t head = n < 126 ? 6 : n <= 65535 ? 8 : 14;
        is_int(in.len, head + n, "%zu-byte frame has a %zu-byte header", n, head);
        struct buf log;
        decode(WS_ROLE_SERVER, 1 << 20, buf_head(&in), in.len, 0, &log);
        struct buf want;
        buf_init(&want, 1 << 20);
        buf_printf(&want, "MSG op=2 %zu:", n);
        buf_append(&want, p, n);
        buf_append(&want, "\n", 1);
        is_mem(buf_head(&log), log.len, buf_head(&want), want.len, "%zu-byte payload intact", n);
        buf_free(&log);
        buf_free(&want);
        buf_free(&in);
        free(p);
    }
}

static void test_fragments(void)
{
    struct buf in;
    buf_init(&in, 4096);
    /* "Hello w€rld" in three fragments with a ping between them; the euro sign
     * is split across fragments. */
    ws_frame_write(&in, WS_OP_TEXT, false, "Hel", 3, MASK, NULL);
    ws_frame_write(&in, WS_OP_PING, true, "mid", 3, MASK, NULL);
    ws_frame_write(&in, WS_OP_CONT, false, "lo w\xe2", 5, MASK, NULL);
    ws_frame_write(&in, WS_OP_CONT, false, "", 0, MASK, NULL);
    ws_frame_write(&in, WS_OP_CONT, true, "\x82\xacrld", 5, MASK, NULL);
    ws_frame_write(&in, WS_OP_BINARY, false, "ab", 2, MASK, NULL);
    ws_frame_write(&in, WS_OP_CONT, true, "cd", 2, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in,
               "PING 3:mid\nMSG op=1 13:Hello w\xe2\x82\xacrld\nMSG op=2 4:abcd\n", "fragmented");
    buf_free(&in);

    buf_init(&in, 4096);
    ws_frame_write(&in, WS_OP_CONT, true, "x", 1, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in, "ERROR 1002 continuation frame without a message\n",
               "continuation first");
    buf_free(&in);

    buf_init(&in, 4096);
    ws_frame_write(&in, WS_OP_TEXT, false, "a", 1, MASK, NULL);
    ws_frame_write(&in, WS_OP_BINARY, true, "b", 1, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in, "ERROR 1002 new message before the previous one ended\n",
               "interleaved data frames");
    buf_free(&in);
}

static void test_masking_rules(void)
{
    struct buf in;
    buf_init(&in, 4096);
    ws_frame_write(&in, WS_OP_TEXT, true, "hi", 2, NULL, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in, "ERROR 1002 unmasked frame from a client\n",
               "server refuses unmasked frames");
    expect_log(WS_ROLE_CLIENT, 64, &in, "MSG op=1 2:hi\n", "client accepts unmasked frames");
    buf_reset(&in);
    ws_frame_write(&in, WS_OP_TEXT, true, "hi", 2, MASK, NULL);
    expect_log(WS_ROLE_CLIENT, 64, &in, "ERROR 1002 masked frame from a server\n",
               "client refuses masked frames");
    buf_free(&in);
}

static void test_size_limits(void)
{
    struct buf in;
    buf_init(&in, 4096);
    ws_frame_write(&in, WS_OP_BINARY, true, "0123456789abcdef", 16, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 16, &in, "MSG op=2 16:0123456789abcdef\n", "message at the cap");
    buf_reset(&in);
    ws_frame_write(&in, WS_OP_BINARY, true, "0123456789abcdefg", 17, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 16, &in, "ERROR 1009 message larger than 16 bytes\n",
               "message one past the cap");
    buf_reset(&in);
    ws_frame_write(&in, WS_OP_TEXT, false, "0123456789", 10, MASK, NULL);
    ws_frame_write(&in, WS_OP_CONT, true, "abcdefg", 7, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 16, &in, "ERROR 1009 message larger than 16 bytes\n",
               "fragments past the cap");
    buf_reset(&in);
    /* A header claiming 2^62 bytes is refused before any payload arrives. */
    raw(&in, "\x82\xff\x40\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14);
    expect_log(WS_ROLE_SERVER, 16, &in, "ERROR 1009 message larger than 16 bytes\n",
               "huge length refused from the header");
    buf_reset(&in);

    uint8_t big[126] = {0};
    memset(big, 'x', sizeof(big));
    ws_frame_write(&in, WS_OP_PING, true, big, 125, MASK, NULL);
    struct buf log = decode_both(WS_ROLE_SERVER, 16, &in, "125-byte ping");
    ok(log.len == 5 + 4 + 125 + 1 && memcmp(buf_head(&log), "PING 125:", 9) == 0,
       "125-byte ping accepted (control frames ignore the message cap)");
    buf_free(&log);
    buf_reset(&in);
    raw(&in, "\x89\xfe\x00\x7e\x01\x02\x03\x04", 8);
    buf_append(&in, big, 126);
    expect_log(WS_ROLE_SERVER, 1024, &in, "ERROR 1002 control frame longer than 125 bytes\n",
               "126-byte ping refused");
    ok(ws_frame_write(&in, WS_OP_PING, true, big, 126, MASK, NULL) < 0,
       "encoder refuses a 126-byte ping");
    ok(ws_frame_write(&in, WS_OP_PING, false, "x", 1, MASK, NULL) < 0,
       "encoder refuses a fragmented ping");
    buf_free(&in);
}

static void test_protocol_errors(void)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t n;
        const char *want;
    } cases[] = {
        {"RSV1 set", "\xc1\x80\x00\x00\x00\x00", 6,
         "ERROR 1002 reserved bits set without an extension\n"},
        {"RSV3 set", "\x91\x80\x00\x00\x00\x00", 6,
         "ERROR 1002 reserved bits set without an extension\n"},
        {"opcode 3", "\x83\x80\x00\x00\x00\x00", 6, "ERROR 1002 unknown opcode 0x3\n"},
        {"opcode 0xB", "\x8b\x80\x00\x00\x00\x00", 6, "ERROR 1002 unknown opcode 0xb\n"},
        {"fragmented ping", "\x09\x80\x00\x00\x00\x00", 6, "ERROR 1002 fragmented control frame\n"},
        {"16-bit length 5", "\x82\xfe\x00\x05\x00\x00\x00\x00xxxxx", 13,
         "ERROR 1002 payload length not minimally encoded\n"},
        {"64-bit length 200", "\x82\xff\x00\x00\x00\x00\x00\x00\x00\xc8\x00\x00\x00\x00", 14,
         "ERROR 1002 payload length not minimally encoded\n"},
        {"64-bit top bit", "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14,
         "ERROR 1002 payload length has the top bit set\n"},
        {"close 1 byte", "\x88\x81\x00\x00\x00\x00\x03", 7,
         "ERROR 1002 close frame with a 1-byte payload\n"},
        {"close empty", "\x88\x80\x00\x00\x00\x00", 6, "CLOSE 1005 \n"},
        {"close 1005", "\x88\x82\x00\x00\x00\x00\x03\xed", 8,
         "ERROR 1002 invalid close code 1005\n"},
        {"close 999", "\x88\x82\x00\x00\x00\x00\x03\xe7", 8, "ERROR 1002 invalid close code 999\n"},
        {"close 1016", "\x88\x82\x00\x00\x00\x00\x03\xf8", 8,
         "ERROR 1002 invalid close code 1016\n"},
        {"close 3000", "\x88\x82\x00\x00\x00\x00\x0b\xb8", 8, "CLOSE 3000 \n"},
        {"close 4999", "\x88\x82\x00\x00\x00\x00\x13\x87", 8, "CLOSE 4999 \n"},
        {"close 5000", "\x88\x82\x00\x00\x00\x00\x13\x88", 8,
         "ERROR 1002 invalid close code 5000\n"},
        {"close bad reason", "\x88\x84\x00\x00\x00\x00\x03\xe8\xc0\x80", 10,
         "ERROR 1007 invalid UTF-8 in close reason\n"},
        {"data after close", "\x88\x80\x00\x00\x00\x00\x81\x80\x00\x00\x00\x00", 12,
         "CLOSE 1005 \n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf in;
        buf_init(&in, 4096);
        raw(&in, cases[i].bytes, cases[i].n);
        expect_log(WS_ROLE_SERVER, 1024, &in, cases[i].want, cases[i].name);
        buf_free(&in);
    }

    /* Feeding after a close is an error. */
    struct ws_decoder *d = ws_decoder_new(WS_ROLE_SERVER, 64, NULL);
    size_t used;
    const uint8_t *two = (const uint8_t *)"\x88\x80\x00\x00\x00\x00\x81\x80\x00\x00\x00\x00";
    is_int(ws_decoder_feed(d, two, 12, &used), WS_CLOSE, "close event");
    is_int(used, 6, "bytes after the close frame left unconsumed");
    is_int(ws_decoder_feed(d, two + 6, 6, &used), WS_ERROR, "data after close is an error");
    is_int(ws_decoder_error(d, NULL), 1002, "with 1002");
    is_int(ws_decoder_feed(d, two, 1, &used), WS_ERROR, "errors are sticky");
    ws_decoder_free(d);
}

static void test_utf8(void)
{
    static const struct {
        const char *name, *bytes;
        bool valid;
    } cases[] = {
        {"ascii", "abc", true},
        {"2-byte", "\xc3\xa9", true},
        {"3-byte", "\xe2\x82\xac", true},
        {"4-byte", "\xf0\x9f\x98\x80", true},
        {"U+10FFFF", "\xf4\x8f\xbf\xbf", true},
        {"overlong 2", "\xc0\x80", false},
        {"overlong 3", "\xe0\x80\xaf", false},
        {"overlong 4", "\xf0\x80\x80\xaf", false},
        {"surrogate", "\xed\xa0\x80", false},
        {"past U+10FFFF", "\xf4\x90\x80\x80", false},
        {"F5", "\xf5\x80\x80\x80", false},
        {"lone continuation", "\x80", false},
        {"truncated", "\xe2\x82", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].bytes);
        ok(ws_utf8_valid((const uint8_t *)cases[i].bytes, n) == cases[i].valid, "utf8 %s",
           cases[i].name);
        struct buf in;
        buf_init(&in, 4096);
        ws_frame_write(&in, WS_OP_TEXT, true, cases[i].bytes, n, MASK, NULL);
        struct buf log = decode_both(WS_ROLE_SERVER, 64, &in, cases[i].name);
        bool err = log.len > 10 && memcmp(buf_head(&log), "ERROR 1007", 10) == 0;
        ok(err == !cases[i].valid, "text frame %s %s", cases[i].name,
           cases[i].valid ? "accepted" : "-> 1007");
        buf_free(&log);
        buf_free(&in);
    }
    /* Binary frames carry anything. */
    struct buf in;
    buf_init(&in, 4096);
    ws_frame_write(&in, WS_OP_BINARY, true, "\xc0\x80", 2, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in, "MSG op=2 2:\xc0\x80\n", "binary is not UTF-8 checked");
    buf_reset(&in);
    /* Fail fast: a bad byte in the first fragment fails before the message ends. */
    ws_frame_write(&in, WS_OP_TEXT, false, "a\xff", 2, MASK, NULL);
    expect_log(WS_ROLE_SERVER, 64, &in, "ERROR 1007 invalid UTF-8 in text message\n",
               "bad UTF-8 caught in the first fragment");
    ok(ws_send(&in, WS_ROLE_SERVER, WS_OP_TEXT, "\xff", 1, NULL) < 0,
       "encoder refuses invalid UTF-8 text");
    ok(ws_send_close(&in, WS_ROLE_SERVER, 1000, "\xff", NULL) < 0,
       "encoder refuses an invalid close reason");
    buf_free(&in);
}

static void test_encoder_atomic(void)
{
    struct buf b;
    buf_init(&b, 10);
    struct err *e = NULL;
    ok(ws_send(&b, WS_ROLE_SERVER, WS_OP_BINARY, "0123456789", 10, &e) < 0 && e,
       "frame past the buffer cap fails");
    is_int(b.len, 0, "nothing appended");
    err_free(e);
    ok(ws_send(&b, WS_ROLE_SERVER, WS_OP_BINARY, "01234567", 8, NULL) == 0, "frame fits exactly");
    is_int(b.len, 10, "2-byte header + 8 bytes");
    buf_free(&b);
    uint8_t reason[200];
    memset(reason, 'r', sizeof(reason));
    reason[124] = 0;
    buf_init(&b, 1024);
    ok(ws_send_close(&b, WS_ROLE_SERVER, 1000, (const char *)reason, NULL) < 0,
       "close reason of 124 bytes refused");
    reason[123] = 0;
    ok(ws_send_close(&b, WS_ROLE_SERVER, 1000, (const char *)reason, NULL) == 0,
       "close reason of 123 bytes accepted");
    is_int(b.len, 2 + 125, "close frame of 125 bytes");
    buf_free(&b);
}

int main(void)
{
    test_accept();
    test_server_handshake();
    test_client_handshake();
    test_round_trips();
    test_lengths();
    test_fragments();
    test_masking_rules();
    test_size_limits();
    test_protocol_errors();
    test_utf8();
    test_encoder_atomic();
    return done_testing();
}
