/* Channel multiplexer: many ordered, reliable, flow-controlled byte streams
 * over one byte transport (a virtio-serial port). One implementation, used by
 * the host (capsem-process, libevent) and the guest (capsem-agent, epoll).
 * The mux does no I/O itself: the owner feeds received bytes with
 * mux_input() and drains bytes to send with mux_output_peek()/mux_output_done().
 * Wire format: docs/channel.md.
 *
 * Ownership: a struct mux_stream is owned by the mux. The application may use
 * it from the moment it opens or accepts it until it calls
 * mux_stream_release(); after that it must drop the pointer. Callbacks are
 * never invoked for a released stream. Buffers passed to callbacks are
 * borrowed until the callback returns.
 */
#ifndef CAPSEM_MUX_H
#define CAPSEM_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MUX_VERSION 1
#define MUX_HEADER_LEN 12
#define MUX_MAX_PAYLOAD (64u * 1024u)
#define MUX_MAX_META 1024u
#define MUX_WINDOW (128u * 1024u)
#define MUX_SEND_QUEUE_MAX (256u * 1024u)
#define MUX_MAX_STREAMS 1024u
#define MUX_MAX_OPENS_PER_SEC 1000u
#define MUX_BUFFERED_MAX (64u * 1024u * 1024u)
#define MUX_MIN_GRANT (16u * 1024u)
#define MUX_PING_IDLE_MS 5000u
#define MUX_DEAD_MS 15000u

/* Logical services (architecture.md, network.md C1). */
enum mux_service {
    MUX_SVC_CONTROL = 5000,
    MUX_SVC_TERMINAL = 5001,
    MUX_SVC_NET = 5002,
    MUX_SVC_MCP = 5003,
    MUX_SVC_LIFECYCLE = 5004,
    MUX_SVC_EXEC = 5005,
    MUX_SVC_AUDIT = 5006,
    MUX_SVC_DNS = 5007,
    MUX_SVC_FILES = 5008,
};

enum mux_frame_type {
    MUX_F_HELLO = 1,
    MUX_F_OPEN = 2,
    MUX_F_DATA = 3,
    MUX_F_CREDIT = 4,
    MUX_F_FIN = 5,
    MUX_F_RST = 6,
    MUX_F_PING = 7,
    MUX_F_PONG = 8,
};

enum mux_reset_reason {
    MUX_RST_CANCEL = 1,
    MUX_RST_REFUSED = 2,          /* no such service / not accepted */
    MUX_RST_TOO_MANY_STREAMS = 3,
    MUX_RST_FLOW_VIOLATION = 4,   /* data beyond credit */
    MUX_RST_PROTOCOL = 5,         /* bad frame for this stream's state */
    MUX_RST_CHANNEL_RESET = 6,    /* the whole channel was reset */
    MUX_RST_BAD_METADATA = 7,
    MUX_RST_PORT_NOT_REDIRECTED = 8,
    MUX_RST_INTERNAL = 9,
};

enum mux_side { MUX_SIDE_HOST = 1, MUX_SIDE_GUEST = 2 };

struct mux;
struct mux_stream;

struct mux_callbacks {
    /* Handshake complete (each side got the other's HELLO). */
    void (*on_ready)(void *ctx, uint32_t peer_version);
    /* Peer opened a stream. Return 0 to accept, or a mux_reset_reason to
     * refuse (the stream is then gone; do not keep it). */
    int (*on_open)(void *ctx, struct mux_stream *s, uint16_t service, const uint8_t *meta,
                   size_t meta_len);
    /* Bytes arrived. The application must later call mux_stream_consumed()
     * for them once drained (that is what grants the peer more credit). */
    void (*on_data)(void *ctx, struct mux_stream *s, const uint8_t *data, size_t len);
    /* Peer will send no more data on this stream. */
    void (*on_fin)(void *ctx, struct mux_stream *s);
    /* Stream reset by the peer, by a stream-level violation, or by a channel
     * reset. The application should release the stream. */
    void (*on_reset)(void *ctx, struct mux_stream *s, uint32_t reason);
    /* Send queue room became available after having been full. */
    void (*on_writable)(void *ctx, struct mux_stream *s);
    /* Channel-level violation: all streams were reset (on_reset called for
     * each) and the mux waits for a new handshake. `why` is for the log. */
    void (*on_channel_error)(void *ctx, const char *why);
    /* There is output to send: arm write interest on the transport. */
    void (*on_output)(void *ctx);
};

struct mux *mux_new(enum mux_side side, const struct mux_callbacks *cb, void *ctx);
void mux_free(struct mux *m);

/* Feed bytes read from the transport. Returns 0, or -1 if a channel
 * violation happened (already handled: on_channel_error was called). */
int mux_input(struct mux *m, const uint8_t *data, size_t len);

/* Pending bytes for the transport. Returns NULL when nothing is pending. */
const uint8_t *mux_output_peek(struct mux *m, size_t *len);
void mux_output_done(struct mux *m, size_t n);
bool mux_has_output(struct mux *m);

/* Periodic liveness (call about once a second with time_mono_ms()): sends a
 * PING after MUX_PING_IDLE_MS of silence; after MUX_DEAD_MS without any frame
 * the channel is reset. Only the side that calls it enforces liveness. */
void mux_tick(struct mux *m, uint64_t now_ms);
/* Forget the silence so far (after a VM pause/resume). */
void mux_touch(struct mux *m);

/* Start over: reset every stream and send a new HELLO (used after the
 * transport was reconnected). */
void mux_restart(struct mux *m, uint32_t reason);

bool mux_is_ready(const struct mux *m);
size_t mux_stream_count(const struct mux *m);

/* Opens a stream to `service` with opaque metadata (<= MUX_MAX_META bytes).
 * Returns NULL (errno set) if the channel is not ready or limits are hit. */
struct mux_stream *mux_open(struct mux *m, uint16_t service, const void *meta, size_t meta_len);

/* Queues up to len bytes; returns the number accepted (may be less than len,
 * 0 when the queue is full: wait for on_writable), or -1 if the stream can no
 * longer send (closed for writing or reset). */
ssize_t mux_stream_write(struct mux_stream *s, const void *data, size_t len);
/* Room left in the send queue. */
size_t mux_stream_send_room(const struct mux_stream *s);
/* Asks for one on_writable callback once queued data has drained (use it
 * after finding too little room, before pausing the producer). */
void mux_stream_notify_writable(struct mux_stream *s);
size_t mux_stream_send_queued(const struct mux_stream *s);
/* Half-close: a FIN follows the queued data. */
int mux_stream_close_write(struct mux_stream *s);
/* Abort: drop queues, send RST. No on_reset callback for a local reset. */
void mux_stream_reset(struct mux_stream *s, uint32_t reason);
/* The application consumed n bytes delivered by on_data. */
void mux_stream_consumed(struct mux_stream *s, size_t n);
/* Detach. If the peer has not finished sending, the stream is reset. If a
 * FIN is still queued behind data, the data and FIN are still delivered. */
void mux_stream_release(struct mux_stream *s);

void mux_stream_set_user(struct mux_stream *s, void *user);
void *mux_stream_user(const struct mux_stream *s);
uint32_t mux_stream_id(const struct mux_stream *s);
uint16_t mux_stream_service(const struct mux_stream *s);
bool mux_stream_is_reset(const struct mux_stream *s);
bool mux_stream_peer_finished(const struct mux_stream *s);
/* Control-like streams are served before bulk ones. */
void mux_stream_set_priority(struct mux_stream *s, bool high);

const char *mux_reset_reason_name(uint32_t reason);

#endif
