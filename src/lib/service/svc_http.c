/* HTTP/1.1 server for the service API on a UNIX socket: keep-alive, one
 * request at a time per connection (pipelined requests wait their turn),
 * bodies capped, replies possibly asynchronous. Parsing: net/http1. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "net/http1.h"
#include "service/service.h"

#define BODY_MAX (16u * 1024u * 1024u)
#define CONN_IN_MAX (BODY_MAX + 128u * 1024u)
#define CONN_OUT_MAX (64u * 1024u * 1024u)
#define MAX_CONNS 256

struct svc_http_conn {
    struct svc *svc;
    int fd;
    struct event *rd, *wr;
    struct buf in, out;
    struct http1_parser *parser;
    struct svc_req *cur;   /* request being served */
    struct buf body;       /* body of the request being parsed */
    bool keep_alive;
    bool close_after_write;
    bool dead;
    struct svc_http_conn *next;
};

static void conn_free(struct svc_http_conn *c);
static void conn_process(struct svc_http_conn *c);

/* ---------- requests ---------- */

static void req_free(struct svc_req *r)
{
    if (r->owner_free)
        r->owner_free(r->owner);
    free(r->target);
    free(r->path);
    free(r->query);
    free(r->body);
    json_decref(r->json);
    free(r);
}

/* Returns -1 if the connection was freed. */
static int conn_flush(struct svc_http_conn *c)
{
    if (evio_flush(c->fd, &c->out, c->wr) < 0)
        c->dead = true;
    if (c->dead || (c->close_after_write && !c->cur && c->out.len == 0)) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void write_response(struct svc_http_conn *c, int status, const char *ctype,
                           const void *body, size_t len, const char *extra)
{
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, http1_status_text(status));
    if (ctype)
        buf_printf(&c->out, "Content-Type: %s\r\n", ctype);
    buf_printf(&c->out, "Content-Length: %zu\r\n", len);
    if (extra)
        buf_append_str(&c->out, extra);
    if (!c->keep_alive)
        buf_append_str(&c->out, "Connection: close\r\n");
    buf_append_str(&c->out, "\r\n");
    if (len && buf_append(&c->out, body, len) < 0) {
        log_error("http: response of %zu bytes does not fit the output buffer", len);
        c->dead = true;
    }
}

/* Finishes the current request of a connection (if still connected). */
static void complete(struct svc_req *r, int status, const char *ctype, const void *body,
                     size_t len, const char *extra)
{
    struct svc_http_conn *c = r->conn;
    if (c) {
        c->cur = NULL;
        write_response(c, status, ctype, body, len, extra);
        if (!c->keep_alive)
            c->close_after_write = true;
    }
    req_free(r);
    if (!c || conn_flush(c) < 0)
        return;
    /* Serve pipelined requests that arrived meanwhile. */
    event_add(c->rd, NULL);
    conn_process(c);
}

void svc_reply_raw(struct svc_req *r, int status, const char *content_type, const void *data,
                   size_t len, const char *extra_headers)
{
    complete(r, status, content_type, data, len, extra_headers);
}

void svc_reply_json(struct svc_req *r, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        const char *err = "{\"error\":\"cannot encode the response\"}";
        complete(r, 500, "application/json", err, strlen(err), NULL);
        return;
    }
    complete(r, status, "application/json", s, strlen(s), NULL);
    free(s);
}

void svc_reply_error(struct svc_req *r, int status, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status >= 500)
        log_warn("%s %s -> %d: %s", r->method, r->path, status, msg);
    svc_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

void svc_reply_err(struct svc_req *r, const struct err *e)
{
    svc_reply_error(r, e && e->status ? e->status : 500, "%s", err_msg(e));
}

void svc_reply_empty(struct svc_req *r, int status)
{
    complete(r, status, NULL, NULL, 0, NULL);
}

int svc_query_get(const struct svc_req *r, const char *key, char *buf, size_t cap)
{
    if (!r->query)
        return -1;
    return http1_query_get(r->target, key, buf, cap) < 0 ? -1 : 0;
}

/* ---------- connection plumbing ---------- */

static void conn_free(struct svc_http_conn *c)
{
    struct svc *s = c->svc;
    for (struct svc_http_conn **pp = &s->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->cur) {
        /* The handler still owns the request; tell it the client left. */
        struct svc_req *r = c->cur;
        r->conn = NULL;
        c->cur = NULL;
        if (r->on_cancel)
            r->on_cancel(r);
    }
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->body);
    http1_parser_free(c->parser);
    free(c);
}

static void send_error_and_close(struct svc_http_conn *c, int status, const char *msg)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
    c->keep_alive = false;
    write_response(c, status, "application/json", body, strlen(body), NULL);
    c->close_after_write = true;
    event_del(c->rd);
}

static void start_request(struct svc_http_conn *c)
{
    struct svc_req *r = calloc(1, sizeof(*r));
    if (!r) {
        send_error_and_close(c, 500, "out of memory");
        return;
    }
    const struct http1_request *hr = http1_parser_request(c->parser);
    r->svc = c->svc;
    r->conn = c;
    str_copy(r->method, sizeof(r->method), hr->method);
    const char *path, *query;
    size_t plen, qlen;
    http1_target_split(hr->target, &path, &plen, &query, &qlen);
    r->target = strdup(hr->target);
    r->path = strndup(path, plen);
    r->query = query ? strndup(query, qlen) : NULL;
    r->body_len = c->body.len;
    r->body = c->body.len ? (uint8_t *)buf_steal_str(&c->body) : NULL;
    buf_reset(&c->body);
    c->keep_alive = http1_keep_alive(c->parser);
    c->cur = r;
    if (!r->target || !r->path) {
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    /* JSON body for everything but raw uploads. */
    bool raw = strcmp(r->method, "POST") == 0 && str_has_suffix(r->path, "/files/content");
    if (!raw) {
        if (r->body_len == 0) {
            r->json = json_object();
        } else {
            json_error_t jerr;
            r->json = json_loadb((const char *)r->body, r->body_len, 0, &jerr);
            if (!r->json || !json_is_object(r->json)) {
                svc_reply_error(r, 400, "malformed JSON body: %s",
                                r->json ? "expected an object" : jerr.text);
                return;
            }
        }
    }
    log_debug("%s %s", r->method, r->path);
    svc_dispatch(r);
}

static void parse_failed(struct svc_http_conn *c)
{
    enum http1_error e = http1_parser_error(c->parser);
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s", http1_error_reason(e),
             http1_parser_error_msg(c->parser));
    log_info("http: bad request: %s", msg);
    send_error_and_close(c, http1_error_status(e), msg);
}

/* Parses as much input as possible while no request is in service. */
static void conn_process(struct svc_http_conn *c)
{
    /* Feed until the parser needs more: a bodiless request's DONE comes from a
     * call with no bytes left. */
    while (!c->cur && !c->close_after_write) {
        size_t used = 0;
        enum http1_event ev = http1_parser_feed(c->parser, buf_head(&c->in), c->in.len, &used);
        if (ev == HTTP1_BODY) {
            size_t n = 0;
            const uint8_t *d = http1_parser_body(c->parser, &n);
            if (buf_append(&c->body, d, n) < 0) {
                buf_consume(&c->in, used);
                send_error_and_close(c, 413, "request body too large");
                return;
            }
        }
        buf_consume(&c->in, used);
        switch (ev) {
        case HTTP1_ERROR:
            parse_failed(c);
            return;
        case HTTP1_HEAD:
            if (http1_parser_request(c->parser)->expect == HTTP1_EXPECT_CONTINUE)
                buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            break;
        case HTTP1_DONE:
            start_request(c);
            break;
        case HTTP1_NEED_MORE:
            return;
        case HTTP1_BODY:
            break;
        }
    }
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_http_conn *c = arg;
    enum evio_read_result r = evio_read(fd, &c->in, 65536);
    if (r == EVIO_FULL) {
        /* Input buffer full while a request is in service: stop reading. */
        event_del(c->rd);
        return;
    }
    if (r == EVIO_AGAIN)
        return;
    if (r != EVIO_DATA) {
        conn_free(c);
        return;
    }
    conn_process(c);
    if (c->out.len > 0)
        conn_flush(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_http_conn *c = arg;
    if (conn_flush(c) == 0 && !c->cur)
        conn_process(c);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct svc *s = arg;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        size_t n = 0;
        for (struct svc_http_conn *it = s->conns; it; it = it->next)
            n++;
        struct svc_http_conn *c = n < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
            log_warn("http: refusing a connection (%zu open)", n);
            close(fd);
            continue;
        }
        c->svc = s;
        c->fd = fd;
        buf_init(&c->in, CONN_IN_MAX);
        buf_init(&c->out, CONN_OUT_MAX);
        buf_init(&c->body, BODY_MAX);
        struct http1_limits lim;
        http1_limits_default(&lim);
        lim.max_body = BODY_MAX;
        c->parser = http1_parser_new(&lim, NULL);
        c->rd = event_new(s->base, fd, EV_READ | EV_PERSIST, read_cb, c);
        c->wr = event_new(s->base, fd, EV_WRITE, write_cb, c);
        event_add(c->rd, NULL);
        c->next = s->conns;
        s->conns = c;
    }
}

int svc_http_listen(struct svc *s, struct err **errp)
{
    s->listen_fd = sockpath_listen(s->uds_path, 128, errp);
    if (s->listen_fd < 0)
        return -1;
    s->listen_ev = event_new(s->base, s->listen_fd, EV_READ | EV_PERSIST, accept_cb, s);
    event_add(s->listen_ev, NULL);
    return 0;
}

void svc_http_close_all(struct svc *s)
{
    if (s->listen_ev) {
        event_free(s->listen_ev);
        s->listen_ev = NULL;
        close(s->listen_fd);
    }
    while (s->conns)
        conn_free(s->conns);
}
