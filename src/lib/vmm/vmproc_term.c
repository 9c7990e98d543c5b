/* Terminal socket (<id>-ws.sock): WebSocket clients sharing one guest PTY
 * session (surface.md section 8 framing). Binary frames in are keystrokes,
 * text frames {"type":"resize",...} resize, binary frames out are PTY output;
 * a new client first gets up to the last 64 KiB. When the guest shell exits
 * every client gets close 1000 and the next attach starts a fresh shell. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "net/http1.h"
#include "net/ws.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "vmm/vmproc.h"

#define SCROLLBACK_MAX (64u * 1024u)
#define CLIENT_OUT_MAX (8u * 1024u * 1024u)
#define CLIENT_IN_MAX (256u * 1024u)
#define WS_MESSAGE_MAX (64u * 1024u)
#define MAX_CLIENTS 16

enum tc_state { TC_HANDSHAKE, TC_OPEN, TC_CLOSING };

struct term_client {
    struct vp_terminal *t;
    int fd;
    struct event *rd, *wr;
    enum tc_state state;
    struct buf in, out;
    struct http1_parser *http;
    struct ws_decoder *ws;
    bool paused;         /* waiting for room in the guest stream */
    struct buf pending;  /* the input message that did not fit yet */
    struct term_client *next;
};

struct vp_terminal {
    struct hstream hs;
    struct vmproc *vp;
    struct mux_stream *s;
    bool opening; /* waiting for the guest */
    struct rec_reader rr;
    struct buf scrollback;
    uint32_t cols, rows;
    struct term_client *clients;
};

static void client_free(struct term_client *c);
static void client_read_cb(evutil_socket_t fd, short what, void *arg);

/* ---------- client output ---------- */

static int client_flush(struct term_client *c)
{
    if (evio_flush(c->fd, &c->out, c->wr) < 0) {
        client_free(c);
        return -1;
    }
    if (c->state == TC_CLOSING && c->out.len == 0) {
        client_free(c);
        return -1;
    }
    return 0;
}

static void client_close(struct term_client *c, uint16_t code, const char *why)
{
    if (c->state == TC_OPEN)
        ws_send_close(&c->out, WS_ROLE_SERVER, code, why, NULL);
    c->state = TC_CLOSING;
    event_del(c->rd);
    client_flush(c);
}

static void client_send(struct term_client *c, enum ws_opcode op, const void *p, size_t n)
{
    if (c->state != TC_OPEN)
        return;
    if (ws_send(&c->out, WS_ROLE_SERVER, op, p, n, NULL) < 0) {
        log_warn("terminal: a client is not reading; disconnecting it");
        buf_reset(&c->out);
        c->state = TC_CLOSING;
        event_del(c->rd);
    }
    client_flush(c);
}

static void broadcast(struct vp_terminal *t, const uint8_t *p, size_t n)
{
    for (struct term_client *c = t->clients, *next; c; c = next) {
        next = c->next;
        client_send(c, WS_OP_BINARY, p, n);
    }
}

static void close_all(struct vp_terminal *t, uint16_t code, const char *why)
{
    for (struct term_client *c = t->clients, *next; c; c = next) {
        next = c->next;
        if (c->state != TC_CLOSING)
            client_close(c, code, why);
    }
}

/* ---------- guest session ---------- */

static void session_end(struct vp_terminal *t)
{
    if (t->s) {
        mux_stream_release(t->s);
        t->s = NULL;
    }
    rec_reader_free(&t->rr);
    rec_reader_init(&t->rr, AGENT_DATA_CHUNK + 4096);
    buf_reset(&t->scrollback);
}

static void keep_scrollback(struct vp_terminal *t, const uint8_t *p, size_t n)
{
    if (n >= SCROLLBACK_MAX) {
        buf_reset(&t->scrollback);
        buf_append(&t->scrollback, p + n - SCROLLBACK_MAX, SCROLLBACK_MAX);
        return;
    }
    if (t->scrollback.len + n > SCROLLBACK_MAX)
        buf_consume(&t->scrollback, t->scrollback.len + n - SCROLLBACK_MAX);
    buf_append(&t->scrollback, p, n);
}

static void term_on_data(void *h, const uint8_t *d, size_t len)
{
    struct vp_terminal *t = h;
    if (rec_reader_feed(&t->rr, d, len) < 0) {
        mux_stream_reset(t->s, MUX_RST_PROTOCOL);
        session_end(t);
        close_all(t, WS_CLOSE_INTERNAL, "guest terminal protocol error");
        return;
    }
    mux_stream_consumed(t->s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    while (rec_reader_next(&t->rr, &type, &p, &n) == 1) {
        if (type == TERM_OUTPUT) {
            keep_scrollback(t, p, n);
            broadcast(t, p, n);
        } else if (type == TERM_EXIT) {
            log_info("terminal: guest shell exited");
            mux_stream_close_write(t->s);
            session_end(t);
            close_all(t, WS_CLOSE_NORMAL, "shell exited");
            return;
        }
    }
}

static void term_on_fin(void *h)
{
    struct vp_terminal *t = h;
    mux_stream_close_write(t->s);
    session_end(t);
    close_all(t, WS_CLOSE_NORMAL, "shell exited");
}

static void term_on_reset(void *h, uint32_t reason)
{
    struct vp_terminal *t = h;
    mux_stream_release(t->s);
    t->s = NULL;
    session_end(t);
    close_all(t, WS_CLOSE_INTERNAL, "terminal stream reset");
}

static void term_on_writable(void *h)
{
    struct vp_terminal *t = h;
    for (struct term_client *c = t->clients; c; c = c->next) {
        if (c->paused) {
            c->paused = false;
            event_add(c->rd, NULL);
            client_read_cb(c->fd, EV_READ, c); /* process what is buffered */
        }
    }
}

static const struct hstream_ops term_ops = {
    .on_data = term_on_data,
    .on_fin = term_on_fin,
    .on_reset = term_on_reset,
    .on_writable = term_on_writable,
};

static void send_size(struct vp_terminal *t, uint16_t type)
{
    struct buf b;
    buf_init(&b, 64);
    tlv_put_u32(&b, T_COLS, t->cols);
    tlv_put_u32(&b, T_ROWS, t->rows);
    vp_send_rec(t->s, type, buf_head(&b), b.len);
    buf_free(&b);
    vp_channel_kick(t->vp);
}

static void session_ready(struct vmproc *vp, void *arg, bool ready, const char *why)
{
    struct vp_terminal *t = arg;
    t->opening = false;
    if (!ready) {
        close_all(t, WS_CLOSE_INTERNAL, why ? why : "guest not ready");
        return;
    }
    if (t->s || !t->clients)
        return;
    t->s = vp_open_stream(vp, MUX_SVC_TERMINAL, &t->hs);
    if (!t->s) {
        close_all(t, WS_CLOSE_INTERNAL, "cannot open a terminal stream");
        return;
    }
    send_size(t, TERM_OPEN);
}

static void session_ensure(struct vp_terminal *t)
{
    if (t->s || t->opening)
        return;
    t->opening = true;
    vp_when_ready(t->vp, session_ready, t);
}

/* ---------- client input ---------- */

static void handle_text(struct term_client *c, const uint8_t *p, size_t n)
{
    struct vp_terminal *t = c->t;
    json_t *j = json_loadb((const char *)p, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && strcmp(type, "resize") == 0) {
        json_int_t cols = json_integer_value(json_object_get(j, "cols"));
        json_int_t rows = json_integer_value(json_object_get(j, "rows"));
        if (cols > 0 && cols <= 1000 && rows > 0 && rows <= 1000) {
            t->cols = (uint32_t)cols;
            t->rows = (uint32_t)rows;
            if (t->s)
                send_size(t, TERM_RESIZE);
        }
    }
    json_decref(j);
}

/* Queues keystrokes for the guest; false when the stream has no room yet. */
static bool send_input(struct term_client *c, const uint8_t *p, size_t n)
{
    struct vp_terminal *t = c->t;
    if (!t->s || n == 0)
        return true; /* the session is starting: early keystrokes are dropped */
    if (vp_send_rec(t->s, TERM_INPUT, p, n) < 0)
        return false;
    vp_channel_kick(t->vp);
    return true;
}

/* Returns false when the message was parked in c->pending (no room yet). */
static bool handle_message(struct term_client *c)
{
    size_t n;
    const uint8_t *p = ws_decoder_payload(c->ws, &n);
    if (ws_decoder_opcode(c->ws) == WS_OP_TEXT) {
        handle_text(c, p, n);
        return true;
    }
    if (send_input(c, p, n))
        return true;
    buf_reset(&c->pending);
    buf_append(&c->pending, p, n);
    return false;
}

static void ws_input(struct term_client *c)
{
    if (c->pending.len) {
        if (!send_input(c, buf_head(&c->pending), c->pending.len)) {
            c->paused = true;
            event_del(c->rd);
            return;
        }
        buf_reset(&c->pending);
    }
    while (c->in.len > 0 && !c->paused) {
        size_t used = 0;
        enum ws_event ev = ws_decoder_feed(c->ws, buf_head(&c->in), c->in.len, &used);
        buf_consume(&c->in, used);
        if (ev == WS_MESSAGE && !handle_message(c)) {
            c->paused = true; /* resumed by term_on_writable */
            event_del(c->rd);
            return;
        }
        if (ev == WS_NEED_MORE)
            return;
        if (ev == WS_PING) {
            size_t n;
            const uint8_t *p = ws_decoder_payload(c->ws, &n);
            client_send(c, WS_OP_PONG, p, n);
        } else if (ev == WS_CLOSE) {
            client_close(c, WS_CLOSE_NORMAL, "bye");
            return;
        } else if (ev == WS_ERROR) {
            const char *msg = NULL;
            uint16_t code = ws_decoder_error(c->ws, &msg);
            client_close(c, code, msg ? msg : "protocol error");
            return;
        }
    }
}

static void http_input(struct term_client *c)
{
    size_t used = 0;
    enum http1_event ev = http1_parser_feed(c->http, buf_head(&c->in), c->in.len, &used);
    buf_consume(&c->in, used);
    if (ev == HTTP1_NEED_MORE)
        return;
    if (ev == HTTP1_ERROR || ev == HTTP1_BODY) {
        buf_append_str(&c->out, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n");
        c->state = TC_CLOSING;
        client_flush(c);
        return;
    }
    if (ev != HTTP1_DONE && ev != HTTP1_HEAD)
        return;
    const struct http1_request *req = http1_parser_request(c->http);
    struct err *e = NULL;
    const char *path = req->target;
    if (strcmp(path, "/terminal") != 0 && !str_has_prefix(path, "/terminal?")) {
        buf_append_str(&c->out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n");
        c->state = TC_CLOSING;
        client_flush(c);
        return;
    }
    if (ws_server_handshake(req, NULL, 0, &c->out, &e) < 0) {
        buf_printf(&c->out, "HTTP/1.1 %d Bad Request\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n", e && e->status ? e->status : 400);
        err_free(e);
        c->state = TC_CLOSING;
        client_flush(c);
        return;
    }
    c->state = TC_OPEN;
    struct vp_terminal *t = c->t;
    if (t->scrollback.len)
        ws_send(&c->out, WS_ROLE_SERVER, WS_OP_BINARY, buf_head(&t->scrollback),
                t->scrollback.len, NULL);
    if (client_flush(c) < 0)
        return;
    session_ensure(t);
    if (ev == HTTP1_HEAD) {
        /* Upgrade requests have no body: the next feed yields DONE. */
        http1_parser_feed(c->http, NULL, 0, &used);
    }
    ws_input(c);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct term_client *c = arg;
    if (what & EV_READ) {
        enum evio_read_result r = evio_read(fd, &c->in, 16384);
        if (r == EVIO_EOF || r == EVIO_ERROR) {
            client_free(c);
            return;
        }
        if (r == EVIO_FULL && !c->paused) {
            client_close(c, WS_CLOSE_TOO_BIG, "input too large");
            return;
        }
    }
    if (c->state == TC_HANDSHAKE)
        http_input(c);
    else if (c->state == TC_OPEN)
        ws_input(c);
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
    client_flush(arg);
}

static void client_free(struct term_client *c)
{
    struct vp_terminal *t = c->t;
    for (struct term_client **pp = &t->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->pending);
    http1_parser_free(c->http);
    ws_decoder_free(c->ws);
    free(c);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct vmproc *vp = arg;
    struct vp_terminal *t = vp->term;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    size_t n = 0;
    for (struct term_client *it = t->clients; it; it = it->next)
        n++;
    struct term_client *c = n < MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(fd);
        return;
    }
    c->t = t;
    c->fd = fd;
    buf_init(&c->in, CLIENT_IN_MAX);
    buf_init(&c->out, CLIENT_OUT_MAX);
    buf_init(&c->pending, WS_MESSAGE_MAX);
    c->http = http1_parser_new(NULL, NULL);
    c->ws = ws_decoder_new(WS_ROLE_SERVER, WS_MESSAGE_MAX, NULL);
    c->rd = event_new(vp->base, fd, EV_READ | EV_PERSIST, client_read_cb, c);
    c->wr = event_new(vp->base, fd, EV_WRITE, client_write_cb, c);
    if (!c->http || !c->ws) {
        client_free(c);
        return;
    }
    event_add(c->rd, NULL);
    c->next = t->clients;
    t->clients = c;
}

int vp_term_listen(struct vmproc *vp, struct err **errp)
{
    struct vp_terminal *t = calloc(1, sizeof(*t));
    if (!t)
        return err_set(errp, ENOMEM, "out of memory");
    t->hs.ops = &term_ops;
    t->vp = vp;
    t->cols = 80;
    t->rows = 24;
    buf_init(&t->scrollback, SCROLLBACK_MAX);
    rec_reader_init(&t->rr, AGENT_DATA_CHUNK + 4096);
    vp->term = t;
    vp->ws_listen_fd = sockpath_listen(vp->cfg.ws_sock, 16, errp);
    if (vp->ws_listen_fd < 0)
        return -1;
    vp->ws_listen_ev = event_new(vp->base, vp->ws_listen_fd, EV_READ | EV_PERSIST, accept_cb, vp);
    event_add(vp->ws_listen_ev, NULL);
    return 0;
}

void vp_term_close_all(struct vmproc *vp)
{
    struct vp_terminal *t = vp->term;
    if (vp->ws_listen_ev) {
        event_free(vp->ws_listen_ev);
        vp->ws_listen_ev = NULL;
        close(vp->ws_listen_fd);
        char real[256];
        if (sockpath_resolve(vp->cfg.ws_sock, real, sizeof(real), NULL) == 0)
            unlink(real);
    }
    if (!t)
        return;
    for (struct term_client *c = t->clients; c; c = c->next) {
        if (c->state == TC_OPEN) {
            ws_send_close(&c->out, WS_ROLE_SERVER, WS_CLOSE_GOING_AWAY, "VM stopped", NULL);
            fd_set_nonblock(c->fd, false);
            fd_write_all(c->fd, buf_head(&c->out), c->out.len);
        }
    }
    while (t->clients)
        client_free(t->clients);
    if (t->s)
        mux_stream_release(t->s);
    rec_reader_free(&t->rr);
    buf_free(&t->scrollback);
    free(t);
    vp->term = NULL;
}
