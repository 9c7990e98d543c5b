/* Client side of a VM terminal socket; see termclient.h. */
#include "cli/termclient.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sockpath.h"
#include "base/util.h"
#include "net/http1.h"
#include "net/ws.h"

#define HANDSHAKE_MAX_HEAD 16384

struct cli_term {
    struct ws_decoder *dec;
    struct buf outq;
    bool close_sent;
};

/* Blocking send without SIGPIPE (the peer may have gone). */
static int send_all(int fd, const uint8_t *p, size_t n, struct err **errp)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return err_sys(errp, "terminal socket: sending the upgrade request");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until a complete response head; returns its length. */
static ssize_t read_head(int fd, struct buf *in, uint64_t deadline, struct http1_response *resp,
                         struct err **errp)
{
    for (;;) {
        ssize_t n =
            http1_response_parse(buf_head(in), in->len, HANDSHAKE_MAX_HEAD, 100, resp, errp);
        if (n != 0)
            return n;
        uint64_t now = time_mono_ms();
        struct pollfd p = {fd, POLLIN, 0};
        int pr = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return err_set(errp, ETIMEDOUT, "terminal socket: no handshake answer");
        uint8_t *dst = buf_reserve(in, 4096);
        if (!dst)
            return err_set(errp, EMSGSIZE, "terminal socket: handshake answer too large");
        ssize_t r = fd_read_retry(fd, dst, 4096);
        if (r < 0)
            return err_sys(errp, "terminal socket: reading the handshake answer");
        if (r == 0)
            return err_set(errp, EPIPE, "terminal socket closed during the handshake");
        buf_commit(in, (size_t)r);
    }
}

static int handshake(int fd, struct buf *early, struct err **errp)
{
    char key[WS_KEY_LEN + 1];
    struct buf req, in;
    buf_init(&req, 8192);
    buf_init(&in, HANDSHAKE_MAX_HEAD + 8192);
    struct http1_response resp = {0};
    uint64_t deadline = time_mono_ms() + CLI_TERM_HANDSHAKE_MS;
    int rc = -1;
    if (ws_client_key(key, errp) < 0 ||
        ws_client_request(&req, "localhost", "/terminal", key, NULL, 0, errp) < 0 ||
        send_all(fd, buf_head(&req), req.len, errp) < 0)
        goto out;
    ssize_t head = read_head(fd, &in, deadline, &resp, errp);
    if (head < 0)
        goto out;
    if (resp.status != 101) {
        err_status(errp, resp.status, "terminal socket refused the session (HTTP %d %s)",
                   resp.status, resp.reason);
        goto out;
    }
    if (ws_client_verify(&resp, key, errp) < 0)
        goto out;
    buf_consume(&in, (size_t)head);
    if (in.len && buf_append(early, buf_head(&in), in.len) < 0) {
        err_set(errp, EMSGSIZE, "terminal socket: too much early data");
        goto out;
    }
    rc = 0;
out:
    http1_response_free(&resp);
    buf_free(&req);
    buf_free(&in);
    return rc;
}

int cli_term_connect(const char *path, struct buf *early, struct err **errp)
{
    int fd = sockpath_connect(path, errp);
    if (fd < 0)
        return -1;
    if (handshake(fd, early, errp) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct cli_term *cli_term_new(struct err **errp)
{
    struct cli_term *t = calloc(1, sizeof(*t));
    if (!t) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    buf_init(&t->outq, CLI_TERM_MAX_OUTQUEUE);
    t->dec = ws_decoder_new(WS_ROLE_CLIENT, CLI_TERM_MAX_MESSAGE, errp);
    if (!t->dec) {
        cli_term_free(t);
        return NULL;
    }
    return t;
}

void cli_term_free(struct cli_term *t)
{
    if (!t)
        return;
    ws_decoder_free(t->dec);
    buf_free(&t->outq);
    free(t);
}

struct buf *cli_term_outq(struct cli_term *t)
{
    return &t->outq;
}

int cli_term_input(struct cli_term *t, const uint8_t *data, size_t len, struct err **errp)
{
    const uint8_t *key = memchr(data, CLI_TERM_DETACH_KEY, len);
    size_t n = key ? (size_t)(key - data) : len;
    if (n && !t->close_sent && ws_send(&t->outq, WS_ROLE_CLIENT, WS_OP_BINARY, data, n, errp) < 0)
        return -1;
    return key ? 1 : 0;
}

int cli_term_resize(struct cli_term *t, unsigned cols, unsigned rows, struct err **errp)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", cols, rows);
    if (t->close_sent)
        return 0;
    return ws_send(&t->outq, WS_ROLE_CLIENT, WS_OP_TEXT, msg, (size_t)n, errp);
}

int cli_term_close(struct cli_term *t, struct err **errp)
{
    if (t->close_sent)
        return 0;
    t->close_sent = true;
    return ws_send_close(&t->outq, WS_ROLE_CLIENT, WS_CLOSE_NORMAL, NULL, errp);
}

/* Handles one decoder event; 1 = session over, 0 = go on, -1 = error. */
static int on_event(struct cli_term *t, enum ws_event ev, struct buf *display, struct err **errp)
{
    size_t n = 0;
    const uint8_t *p = NULL;
    switch (ev) {
    case WS_MESSAGE:
        p = ws_decoder_payload(t->dec, &n);
        if (ws_decoder_opcode(t->dec) == WS_OP_BINARY && buf_append(display, p, n) < 0)
            return err_set(errp, EMSGSIZE, "terminal output buffer full");
        return 0;
    case WS_PING:
        p = ws_decoder_payload(t->dec, &n);
        return t->close_sent ? 0 : ws_send(&t->outq, WS_ROLE_CLIENT, WS_OP_PONG, p, n, errp);
    case WS_CLOSE:
        return cli_term_close(t, errp) < 0 ? -1 : 1;
    case WS_ERROR: {
        const char *msg = NULL;
        uint16_t code = ws_decoder_error(t->dec, &msg);
        if (!t->close_sent) {
            t->close_sent = true;
            ws_send_close(&t->outq, WS_ROLE_CLIENT, code, NULL, NULL);
        }
        return err_set(errp, EPROTO, "terminal stream: %s", msg ? msg : "protocol error");
    }
    default:
        return 0; /* pongs */
    }
}

int cli_term_feed(struct cli_term *t, const uint8_t *data, size_t len, struct buf *display,
                  struct err **errp)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        enum ws_event ev = ws_decoder_feed(t->dec, data + off, len - off, &used);
        off += used;
        if (ev == WS_NEED_MORE)
            return 0;
        int rc = on_event(t, ev, display, errp);
        if (rc != 0)
            return rc;
    }
}
