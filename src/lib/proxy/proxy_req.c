/* Requests on a proxy connection (network.md section 6): strict parsing,
 * target checks (SNI = Host, ports), the decision, generated responses
 * (section 7), request bodies toward the upstream, keep-alive. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "proxy/proxy_int.h"

/* ---------- generated responses ---------- */

void pconn_reply(struct pconn *c, int status, const char *reason, const char *rule,
                 const char *text)
{
    char hostport[300];
    snprintf(hostport, sizeof(hostport), "%s:%u", c->host[0] ? c->host : c->tls_name,
             c->dst_port);
    struct buf body;
    buf_init(&body, 8192);
    bool blocked = status == 403;
    buf_printf(&body, "capsem: %s\nhost: %s\nrule: %s\nreason: %s\n",
               blocked ? "request blocked" : "request failed", hostport, rule ? rule : "-",
               text && *text ? text : reason);
    if (blocked && strcmp(reason, "policy_block") != 0 && strcmp(reason, "placeholder_misuse") &&
        strcmp(reason, "secret_leak"))
        buf_printf(&body, "hint: ask the user to allow %s in the capsem policy\n", hostport);
    struct buf head;
    buf_init(&head, 4096);
    buf_printf(&head,
               "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Connection: close\r\nX-Capsem-Reason: %s\r\nX-Capsem-Rule: %s\r\n%s"
               "Content-Length: %zu\r\n\r\n",
               status, http1_status_text(status), reason, rule ? rule : "-",
               status == 503 ? "Retry-After: 1\r\n" : "", body.len);
    pconn_output_plain(c, buf_head(&head), head.len);
    if (!c->req.method || strcmp(c->req.method, "HEAD") != 0)
        pconn_output_plain(c, buf_head(&body), body.len);
    buf_free(&head);
    buf_free(&body);
    const char *decision = status == 403 ? "denied" : "error";
    proxy_record(c, c->tls ? "https" : "http", status, decision, rule ? rule : "-", reason,
                 text);
    c->req.method = NULL;
    pconn_close(c, true);
}

/* ---------- the request target ---------- */

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Checks Host against the connection and fills c->host (network.md 6.5).
 * Returns 0, or replies and returns -1. */
static int check_target(struct pconn *c, const struct http1_request *r)
{
    const char *hname = NULL;
    size_t hlen = 0;
    int hport = -1;
    if (!r->host || http1_host_split(r->host, &hname, &hlen, &hport) < 0 || hlen == 0 ||
        hlen >= sizeof(c->host)) {
        pconn_reply(c, 400, "bad_host", "-", "missing or malformed Host");
        return -1;
    }
    char host[256];
    memcpy(host, hname, hlen);
    host[hlen] = '\0';
    lower(host);
    if (hport >= 0 && hport != c->dst_port) {
        pconn_reply(c, c->tls ? 421 : 400, c->tls ? "sni_host_mismatch" : "bad_host", "-",
                    "the Host port differs from the connection's port");
        return -1;
    }
    if (c->tls) {
        char ipl[32];
        struct in_addr a = {.s_addr = htonl(c->dst_ip)};
        inet_ntop(AF_INET, &a, ipl, sizeof(ipl));
        bool ok = strcmp(host, c->tls_name) == 0 || (!c->sni[0] && strcmp(host, ipl) == 0);
        if (!ok) {
            pconn_reply(c, 421, "sni_host_mismatch", "-",
                        "the Host header does not match the TLS server name");
            return -1;
        }
        str_copy(c->host, sizeof(c->host), c->sni[0] ? c->sni : host);
    } else {
        str_copy(c->host, sizeof(c->host), host);
    }
    return 0;
}

static int fill_request(struct pconn *c, const struct http1_request *r)
{
    str_copy(c->method, sizeof(c->method), r->method);
    if (str_copy(c->target, sizeof(c->target), r->target) < 0) {
        pconn_reply(c, 414, "uri_too_long", "-", "request target too long");
        return -1;
    }
    const char *path, *query;
    size_t plen, qlen;
    http1_target_split(c->target, &path, &plen, &query, &qlen);
    if (plen >= sizeof(c->path))
        plen = sizeof(c->path) - 1;
    memcpy(c->path, path, plen);
    c->path[plen] = '\0';
    memset(&c->req, 0, sizeof(c->req));
    c->req.conn_id = c->id;
    c->req.request_seq = ++c->seq;
    c->req.dst_ip = c->dst_ip;
    c->req.dst_port = c->dst_port;
    c->req.pid = c->pid;
    c->req.comm = c->comm;
    c->req.exe = c->exe;
    c->req.scheme = c->tls ? "https" : "http";
    c->req.sni = c->sni[0] ? c->sni : NULL;
    c->req.host = c->host;
    c->req.port = c->dst_port;
    c->req.method = c->method;
    c->req.target = c->target;
    c->req.path = c->path;
    c->req.query = query ? c->target + (query - c->target) : NULL;
    c->req.headers = r->headers;
    c->req.nheaders = r->nheaders;
    c->req.websocket = r->upgrade && http1_header_has_token(r->headers, r->nheaders, "upgrade",
                                                            "websocket");
    c->req_started_ms = time_real_ms();
    c->bytes_up = c->bytes_down = 0;
    c->ttfb_ms = -1;
    return 0;
}

/* ---------- the head ---------- */

static void after_decision(struct pconn *c);
static bool vet_refused(struct pconn *c, const uint8_t *b, size_t n);

static void on_head(struct pconn *c)
{
    const struct http1_request *r = http1_parser_request(c->parser);
    if (strcmp(r->method, "CONNECT") == 0) {
        pconn_reply(c, 405, "unsupported", "-", "CONNECT is not supported");
        return;
    }
    if (r->expect == HTTP1_EXPECT_OTHER) {
        pconn_reply(c, 417, "unsupported", "-", "only Expect: 100-continue is supported");
        return;
    }
    if (r->form != HTTP1_TARGET_ORIGIN && r->form != HTTP1_TARGET_ABSOLUTE) {
        pconn_reply(c, 400, "bad_request", "-", "unsupported request target form");
        return;
    }
    if (check_target(c, r) < 0 || fill_request(c, r) < 0)
        return;
    memset(&c->dec, 0, sizeof(c->dec));
    c->dec.action = PROXY_BLOCK;
    c->dec.status = 403;
    str_copy(c->dec.reason, sizeof(c->dec.reason), "policy_error");
    str_copy(c->dec.rule, sizeof(c->dec.rule), "-");
    const struct proxy_hooks *h = proxy_hooks(c->p);
    /* An evaluation error stays a block (P3). */
    if (h->decide(h->ctx, &c->req, &c->dec) == 1) {
        /* Held (an ask, a DNS lookup): the body waits unread in the guest's
         * window; proxy_decided() continues. */
        c->state = PC_DECIDE;
        c->deciding = true;
        event_del(c->timer);
        return;
    }
    after_decision(c);
}

/* Starts the upstream leg; false when it failed (answered 502). */
static bool start_upstream(struct pconn *c)
{
    struct err *e = NULL;
    if (pconn_upstream_start(c, &e) < 0) {
        pconn_reply(c, 502, "upstream_connect", c->dec.rule, err_msg(e));
        err_free(e);
        return false;
    }
    return true;
}

/* decide_body answered for a held body: refuse, or send it all upstream. */
static void after_body_decision(struct pconn *c)
{
    c->body_phase = false;
    if (c->dec.action != PROXY_ALLOW) {
        pconn_reply(c, c->dec.status ? c->dec.status : 403, c->dec.reason, c->dec.rule,
                    c->dec.text);
        return;
    }
    if (!start_upstream(c))
        return;
    c->state = PC_RESPONSE;
    c->body_done = true;
    pconn_upstream_body(c);
}

/* The held body is complete. */
static void held_body_done(struct pconn *c)
{
    const struct proxy_hooks *h = proxy_hooks(c->p);
    c->holding = false;
    c->body_done = true;
    c->body_phase = true;
    if (h->decide_body(h->ctx, &c->req, buf_head(&c->body), c->body.len, &c->dec) == 1) {
        c->state = PC_DECIDE;
        c->deciding = true;
        return;
    }
    after_body_decision(c);
}

/* The decision for the current head is in c->dec: answer or go upstream. */
static void after_decision(struct pconn *c)
{
    const struct http1_request *r = http1_parser_request(c->parser);
    if (c->dec.action != PROXY_ALLOW) {
        pconn_reply(c, c->dec.status ? c->dec.status : 403, c->dec.reason, c->dec.rule,
                    c->dec.text);
        return;
    }
    if (c->req.websocket) {
        event_del(c->timer);
        pconn_ws_start(c); /* the upstream leg, then the splice (proxy_ws.c) */
        return;
    }
    const struct proxy_hooks *h = proxy_hooks(c->p);
    if (h->observe_start)
        c->obs = h->observe_start(h->ctx, &c->req, &c->dec);
    if (h->vet_start && r->body != HTTP1_BODY_EMPTY)
        c->vet = h->vet_start(h->ctx, &c->req);
    /* A held body is read whole first; decide_body then starts upstream. */
    bool hold = c->dec.hold_body && h->decide_body && r->body != HTTP1_BODY_EMPTY;
    if (!hold && !start_upstream(c))
        return;
    if (r->expect == HTTP1_EXPECT_CONTINUE) {
        const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";
        pconn_output_plain(c, cont, strlen(cont));
    }
    if (hold) {
        c->holding = true;
        c->body.max = PROXY_HOLD_MAX + 64 * 1024;
    }
    c->state = r->body == HTTP1_BODY_EMPTY ? PC_RESPONSE : PC_BODY;
    if (c->state == PC_RESPONSE)
        c->body_done = true;
    event_del(c->timer);
}

void proxy_decided(struct proxy *p, uint64_t conn_id, uint32_t request_seq,
                   const struct proxy_decision *d)
{
    struct pconn *c = proxy_find_conn(p, conn_id);
    if (!c || !c->deciding || c->seq != request_seq || c->state != PC_DECIDE)
        return;
    c->deciding = false;
    c->dec = *d;
    if (c->body_phase) {
        after_body_decision(c);
        return; /* the body is all in: nothing more to read for this request */
    }
    c->state = PC_HEAD; /* after_decision moves on from the head */
    after_decision(c);
    if (c->state == PC_BODY || c->state == PC_RESPONSE) {
        pconn_upstream_body(c);
        pconn_resume_input(c);
    }
}

static void parse_error(struct pconn *c)
{
    enum http1_error e = http1_parser_error(c->parser);
    const char *msg = http1_parser_error_msg(c->parser);
    if (c->head_sent || c->state == PC_RESPONSE) {
        proxy_record(c, c->tls ? "https" : "http", c->resp_status, "error", c->dec.rule,
                     http1_error_reason(e), msg);
        pconn_close(c, false);
        return;
    }
    pconn_reply(c, http1_error_status(e), http1_error_reason(e), "-", msg);
}

void pconn_feed_plain(struct pconn *c, const uint8_t *data, size_t len)
{
    if (!c->parser) {
        struct http1_limits lim;
        http1_limits_default(&lim);
        lim.max_body = proxy_limits(c->p)->max_request_body;
        c->parser = http1_parser_new(&lim, NULL);
        if (!c->parser) {
            pconn_close(c, false);
            return;
        }
    }
    size_t off = 0;
    while (c->state == PC_HEAD || c->state == PC_BODY) {
        size_t used = 0;
        enum http1_event ev = http1_parser_feed(c->parser, data + off, len - off, &used);
        if (ev == HTTP1_BODY) {
            size_t n;
            const uint8_t *b = http1_parser_body(c->parser, &n);
            if (c->vet && vet_refused(c, b, n))
                return;
            if (c->holding && c->body.len + n > PROXY_HOLD_MAX) {
                pconn_reply(c, 413, "body_too_large", c->dec.rule,
                            "an AI request body is limited to 64 MiB");
                return;
            }
            buf_append(&c->body, b, n);
            c->bytes_up += n;
            if (c->obs && proxy_hooks(c->p)->observe_request_body)
                proxy_hooks(c->p)->observe_request_body(c->obs, b, n);
        }
        off += used;
        if (ev == HTTP1_NEED_MORE)
            break;
        if (ev == HTTP1_ERROR) {
            parse_error(c);
            return;
        }
        if (ev == HTTP1_HEAD) {
            on_head(c);
        } else if (ev == HTTP1_DONE && c->holding) {
            held_body_done(c);
        } else if (ev == HTTP1_DONE) {
            c->body_done = true;
            if (c->state == PC_BODY)
                c->state = PC_RESPONSE;
        }
        if (c->state == PC_BODY || c->state == PC_RESPONSE)
            pconn_upstream_body(c);
        if (c->state == PC_RESPONSE)
            break; /* pipelined bytes wait for this response */
    }
    if (off < len && c->state != PC_DEAD && c->state != PC_CLOSING) {
        /* Not taken yet (a pipelined request): it goes first next time. */
        struct buf rest;
        buf_init(&rest, c->plain.max);
        buf_append(&rest, data + off, len - off);
        buf_append(&rest, buf_head(&c->plain), c->plain.len);
        buf_free(&c->plain);
        c->plain = rest;
    }
}

void pconn_vet_end(struct pconn *c)
{
    if (c->vet) {
        proxy_hooks(c->p)->vet_end(c->vet);
        c->vet = NULL;
    }
}

/* A body chunk the vetting hook refused: nothing of it goes upstream. */
static bool vet_refused(struct pconn *c, const uint8_t *b, size_t n)
{
    char reason[48] = "", text[512] = "";
    if (proxy_hooks(c->p)->vet(c->vet, b, n, reason, text) == 0)
        return false;
    pconn_vet_end(c);
    pconn_upstream_free(c);
    if (!c->head_sent) {
        pconn_reply(c, 403, reason, "-", text);
    } else {
        proxy_record(c, c->tls ? "https" : "http", c->resp_status, "denied", "-", reason, text);
        pconn_close(c, false);
    }
    return true;
}

/* The upstream response is complete: next request or close. */
void pconn_request_done(struct pconn *c)
{
    pconn_vet_end(c);
    pconn_upstream_free(c);
    if (!c->body_done || c->resp_close || c->guest_fin ||
        !http1_keep_alive(c->parser)) {
        pconn_close(c, true);
        return;
    }
    c->state = PC_HEAD;
    c->req.method = NULL;
    c->head_sent = false;
    c->body_done = false;
    c->holding = c->body_phase = false;
    buf_reset(&c->body);
    c->body.max = PROXY_BODY_BUF + 16 * 1024; /* as at connection start */
    buf_reset(&c->resp_head);
    pconn_arm_timer(c, proxy_limits(c->p)->idle_ms);
    pconn_resume_input(c);
}
