/* Helpers shared by the AI interpreter tests: run a request + response body
 * through the public API with a chosen chunking, and compare results. */
#ifndef CAPSEM_TEST_AI_COMMON_H
#define CAPSEM_TEST_AI_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "ai/interp.h"
#include "ai/prices.h"
#include "base/err.h"
#include "tap.h"

#define T_START_MS 900u /* request sent; first chunk arrives at 1000 */

struct t_call {
    const char *host, *path, *query;
    const char *req;          /* request JSON, NULL for none */
    const char *content_type; /* response head */
    const char *body;
    size_t len;               /* 0 = strlen(body) */
    size_t chunk;             /* 0 = whole body in one feed */
    size_t split;             /* when chunk == 0 and split != 0: two feeds at this offset */
    int status;               /* 0 = 200 */
    bool log_content;
    const struct ai_prices *prices;
    struct ai_response_opts *opts; /* caps for limit tests; NULL = defaults */
};

static inline struct ai_result *t_run(const struct t_call *c)
{
    struct ai_endpoint ep;
    if (!ai_detect(c->host, "POST", c->path, c->query, &ep)) {
        diag("not an AI endpoint: %s %s", c->host, c->path);
        return NULL;
    }
    struct err *e = NULL;
    struct ai_request *req = NULL;
    if (c->req && ai_request_parse(&ep, c->req, strlen(c->req), NULL, &req, &e) < 0) {
        diag("request: %s", err_msg(e));
        err_free(e);
        return NULL;
    }
    struct ai_response_opts o = {0};
    if (c->opts)
        o = *c->opts;
    o.log_content = c->log_content;
    o.request_start_ms = T_START_MS;
    o.prices = c->prices;
    struct ai_response *r = ai_response_new(&ep, req, &o, &e);
    ai_request_free(req);
    if (!r)
        return NULL;
    ai_response_set_head(r, c->content_type, NULL);
    size_t len = c->len ? c->len : strlen(c->body);
    uint64_t now = 1000;
    if (c->chunk == 0 && c->split && c->split < len) {
        ai_response_feed(r, c->body, c->split, now);
        ai_response_feed(r, c->body + c->split, len - c->split, now + 10);
        now += 10;
    } else if (c->chunk == 0) {
        ai_response_feed(r, c->body, len, now);
    } else {
        for (size_t off = 0; off < len; off += c->chunk, now += 1)
            ai_response_feed(r, c->body + off, len - off < c->chunk ? len - off : c->chunk, now);
    }
    struct ai_result *res = NULL;
    if (ai_response_finish(r, c->status ? c->status : 200, now + 50, &res, &e) < 0) {
        diag("finish: %s", err_msg(e));
        err_free(e);
    }
    ai_response_free(r);
    return res;
}

static inline bool t_streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Everything except timing (ttft, duration). */
static inline bool t_same(const struct ai_result *a, const struct ai_result *b)
{
    if (!a || !b)
        return false;
    bool same = t_streq(a->model, b->model) && t_streq(a->message_id, b->message_id) &&
                t_streq(a->stop_reason, b->stop_reason) && t_streq(a->text, b->text) &&
                t_streq(a->thinking, b->thinking) && t_streq(a->usage_details, b->usage_details) &&
                t_streq(a->error_type, b->error_type) &&
                t_streq(a->error_message, b->error_message) &&
                a->parse_status == b->parse_status && a->input_tokens == b->input_tokens &&
                a->output_tokens == b->output_tokens &&
                a->cache_read_tokens == b->cache_read_tokens &&
                a->cache_write_tokens == b->cache_write_tokens &&
                a->thinking_tokens == b->thinking_tokens && a->n_tool_calls == b->n_tool_calls &&
                a->response_bytes == b->response_bytes;
    for (size_t i = 0; same && i < a->n_tool_calls; i++) {
        const struct ai_tool_call *x = &a->tool_calls[i], *y = &b->tool_calls[i];
        same = x->index == y->index && t_streq(x->id, y->id) && t_streq(x->name, y->name) &&
               t_streq(x->arguments, y->arguments) && x->origin == y->origin;
    }
    return same;
}

/* Whole body vs one byte at a time vs every two-piece split. */
static inline void t_all_splits(struct t_call c, const char *what)
{
    c.chunk = 0;
    c.split = 0;
    struct ai_result *whole = t_run(&c);
    c.chunk = 1;
    struct ai_result *bytewise = t_run(&c);
    ok(t_same(whole, bytewise), "%s: 1 byte at a time = whole", what);
    ai_result_free(bytewise);
    c.chunk = 0;
    size_t len = c.len ? c.len : strlen(c.body);
    size_t bad = 0;
    for (size_t k = 1; k < len; k++) {
        c.split = k;
        struct ai_result *r = t_run(&c);
        if (!t_same(whole, r) && bad++ == 0)
            diag("first differing split at byte %zu", k);
        ai_result_free(r);
    }
    ok(bad == 0, "%s: split at each of %zu byte boundaries = whole", what, len - 1);
    ai_result_free(whole);
}

static inline const char *t_status(const struct ai_result *r)
{
    return r ? ai_parse_status_name(r->parse_status) : "(no result)";
}

#endif
