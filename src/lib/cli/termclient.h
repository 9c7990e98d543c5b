/* Client side of a VM terminal socket (`<id>-ws.sock`, path /terminal;
 * surface.md sections 4 "shell" and 8 "GET /terminal/{id}"): the WebSocket
 * handshake over a UNIX socket and a small session state machine that turns
 * keyboard bytes, window sizes and server frames into bytes to send and bytes
 * to show. No TTY handling and no printing here: the CLI owns the terminal.
 *
 * Framing: client binary frames = PTY input; client text frame
 * {"type":"resize","cols":C,"rows":R}; server binary frames = PTY output;
 * server text frames are ignored; pings are answered; a close frame ends the
 * session (echoed). */
#ifndef CAPSEM_CLI_TERMCLIENT_H
#define CAPSEM_CLI_TERMCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define CLI_TERM_DETACH_KEY   0x1d       /* Ctrl-] */
#define CLI_TERM_MAX_MESSAGE  (1u << 20) /* one server frame */
#define CLI_TERM_MAX_OUTQUEUE (4u << 20) /* bytes waiting for the socket */
#define CLI_TERM_HANDSHAKE_MS 10000

/* Connects to the terminal socket at path (long paths mapped), sends the
 * upgrade request for /terminal and checks the 101 answer within
 * CLI_TERM_HANDSHAKE_MS. Bytes received after the answer's head are
 * appended to `early` (already frames). Returns a blocking fd (O_CLOEXEC),
 * -1 with errp set; err->code ENOENT/ECONNREFUSED when nothing listens. */
int cli_term_connect(const char *path, struct buf *early, struct err **errp);

struct cli_term;

struct cli_term *cli_term_new(struct err **errp);
void cli_term_free(struct cli_term *t);

/* Keyboard input. Bytes before a detach key are queued as one binary frame;
 * returns 1 when the detach key was seen (the rest is dropped), 0 otherwise,
 * -1 on error (queue full). */
int cli_term_input(struct cli_term *t, const uint8_t *data, size_t len, struct err **errp);

/* Queues the resize text frame. */
int cli_term_resize(struct cli_term *t, unsigned cols, unsigned rows, struct err **errp);

/* Bytes from the socket. Terminal output is appended to `display`. Returns
 * 1 when the session ended (close frame: a close is queued in answer), 0 to
 * go on, -1 on a protocol error (a close is queued; errp set). */
int cli_term_feed(struct cli_term *t, const uint8_t *data, size_t len, struct buf *display,
                  struct err **errp);

/* Queues a close frame (1000) unless one was sent already. */
int cli_term_close(struct cli_term *t, struct err **errp);

/* Bytes waiting to be written to the socket; consume them with
 * buf_consume() after a write. Borrowed: owned by the session. */
struct buf *cli_term_outq(struct cli_term *t);

#endif
