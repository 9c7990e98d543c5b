/* WebSocket (RFC 6455) for both roles: opening handshake helpers, an
 * incremental frame decoder that reassembles messages up to a cap set at
 * init, and a frame encoder. No extensions (permessage-deflate is refused by
 * never offering or accepting it), so the RSV bits must be zero.
 *
 * The decoder is pull-driven like the HTTP/1 parser:
 *
 *   for (off = 0;;) {
 *       ev = ws_decoder_feed(d, data + off, len - off, &used);
 *       off += used;
 *       if (ev == WS_NEED_MORE) break;               // every byte consumed
 *       if (ev == WS_MESSAGE) ... ws_decoder_payload(d, &n), ws_decoder_opcode(d)
 *       if (ev == WS_PING)    ... answer with a pong carrying the same payload
 *       if (ev == WS_CLOSE)   ... ws_decoder_close_code(d); echo a close, then close
 *       if (ev == WS_ERROR)   ... send a close with ws_decoder_error(d, &msg), then close
 *   }
 *
 * Payload pointers are owned by the decoder and valid until the next feed.
 */
#ifndef CAPSEM_NET_WS_H
#define CAPSEM_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "net/http1.h"

#define WS_KEY_LEN        24 /* base64 of 16 random bytes */
#define WS_ACCEPT_LEN     28 /* base64 of a SHA-1 digest */
#define WS_MAX_CONTROL    125
#define WS_MAX_FRAME_HEAD 14

enum ws_role {
    WS_ROLE_SERVER, /* receives masked frames, sends unmasked ones */
    WS_ROLE_CLIENT, /* receives unmasked frames, sends masked ones */
};

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* reported, never sent */
    WS_CLOSE_BAD_DATA = 1007,  /* invalid UTF-8 in a text message or close reason */
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* ---- handshake ---- */

/* True when key is 24 base64 characters decoding to 16 bytes. */
bool ws_key_valid(const char *key);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + RFC 6455 GUID)). */
int ws_accept_value(const char *key, char out[WS_ACCEPT_LEN + 1], struct err **errp);

/* Server: checks an upgrade request (GET, HTTP/1.1, "Upgrade: websocket",
 * Connection with "upgrade", one "Sec-WebSocket-Version: 13", one valid
 * Sec-WebSocket-Key) and appends the 101 response with `extra` fields to out.
 * On failure nothing is appended and the error's status says what to answer:
 * 400, or 426 (then send "Sec-WebSocket-Version: 13"). */
int ws_server_handshake(const struct http1_request *req, const struct http1_field *extra,
                        size_t nextra, struct buf *out, struct err **errp);

/* Client: a fresh random key (OpenSSL RAND_bytes), NUL-terminated. */
int ws_client_key(char out[WS_KEY_LEN + 1], struct err **errp);

/* Client: appends "GET target HTTP/1.1" with Host, the upgrade fields, the
 * key and `extra` fields to out. */
int ws_client_request(struct buf *out, const char *host, const char *target, const char *key,
                      const struct http1_field *extra, size_t nextra, struct err **errp);

/* Client: checks the server's answer to key: 101, "Upgrade: websocket",
 * Connection with "upgrade", the matching Sec-WebSocket-Accept and no
 * extension. -1 (errp, status 502) otherwise. */
int ws_client_verify(const struct http1_response *resp, const char *key, struct err **errp);

/* ---- decoder ---- */

struct ws_decoder;

enum ws_event {
    WS_NEED_MORE = 0, /* all input consumed */
    WS_MESSAGE,       /* a complete text or binary message */
    WS_PING,
    WS_PONG,
    WS_CLOSE, /* close frame received; the decoder accepts nothing after it */
    WS_ERROR, /* sticky; send a close with ws_decoder_error()'s code */
};

/* role is the decoder owner's role: a server decodes client frames (masked).
 * max_message caps a reassembled message. Free with ws_decoder_free(). */
struct ws_decoder *ws_decoder_new(enum ws_role role, size_t max_message, struct err **errp);
void ws_decoder_free(struct ws_decoder *d);

/* Consumes a prefix of data (*consumed) and returns the next event. After
 * WS_CLOSE the peer may send nothing more: feeding bytes then is WS_ERROR. */
enum ws_event ws_decoder_feed(struct ws_decoder *d, const uint8_t *data, size_t len,
                              size_t *consumed);

/* After WS_MESSAGE, WS_PING, WS_PONG: the (unmasked) payload. Owned by the
 * decoder, valid until the next feed. */
const uint8_t *ws_decoder_payload(const struct ws_decoder *d, size_t *len);
/* After WS_MESSAGE: WS_OP_TEXT or WS_OP_BINARY. */
enum ws_opcode ws_decoder_opcode(const struct ws_decoder *d);
/* After WS_CLOSE: the peer's code (1005 when the frame had none) and reason
 * (UTF-8, not NUL-terminated; valid until the decoder is freed). */
uint16_t ws_decoder_close_code(const struct ws_decoder *d, const uint8_t **reason,
                               size_t *reason_len);
/* After WS_ERROR: the close code to send (1002, 1007 or 1009) and a message. */
uint16_t ws_decoder_error(const struct ws_decoder *d, const char **msg);

/* ---- encoder ---- */

/* Appends one frame. mask NULL sends it unmasked (server role); otherwise
 * the 4-byte masking key (client role). Control frames must have fin set and
 * at most 125 bytes. Nothing is appended on failure. */
int ws_frame_write(struct buf *out, enum ws_opcode op, bool fin, const void *payload, size_t len,
                   const uint8_t *mask, struct err **errp);

/* Appends a whole message (one frame) or control frame as `role` sends it:
 * clients mask with a fresh random key. Text payloads must be valid UTF-8. */
int ws_send(struct buf *out, enum ws_role role, enum ws_opcode op, const void *payload, size_t len,
            struct err **errp);

/* Appends a close frame with code and an optional UTF-8 reason (<= 123 bytes). */
int ws_send_close(struct buf *out, enum ws_role role, uint16_t code, const char *reason,
                  struct err **errp);

/* True when [p, p+n) is valid UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF). */
bool ws_utf8_valid(const uint8_t *p, size_t n);

#endif
