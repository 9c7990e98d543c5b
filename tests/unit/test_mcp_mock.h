/* Test double for the capsem-mcp server core: a backend that records the
 * service requests it is given (and the cancellations), and a writer that
 * collects the output lines. Completions are fed back by the test. */
#ifndef CAPSEM_TEST_MCP_MOCK_H
#define CAPSEM_TEST_MCP_MOCK_H

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "mcp/mcp.h"

#define MOCK_MAX 64

struct mock_req {
    uint64_t token;
    const char *method;
    char *path;
    char *body; /* compact JSON, or NULL */
    long timeout;
    bool autostart, text;
};

struct mock {
    struct mcp_server *srv;
    struct mock_req reqs[MOCK_MAX];
    size_t nreq;
    uint64_t cancelled[MOCK_MAX];
    size_t ncancel;
    struct buf out;
    bool fail_writes;
};

static int mock_submit(void *impl, uint64_t token, const struct mcp_req *req, struct err **errp)
{
    struct mock *m = impl;
    if (m->nreq == MOCK_MAX)
        return err_set(errp, ENOSPC, "mock: too many requests");
    struct mock_req *r = &m->reqs[m->nreq++];
    r->token = token;
    r->method = req->method;
    r->path = strdup(req->path);
    r->body = req->body ? json_dumps(req->body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    r->timeout = req->timeout_secs;
    r->autostart = req->autostart;
    r->text = req->text;
    return 0;
}

static void mock_cancel(void *impl, uint64_t token)
{
    struct mock *m = impl;
    if (m->ncancel < MOCK_MAX)
        m->cancelled[m->ncancel++] = token;
}

static int mock_write(void *ctx, const char *data, size_t len)
{
    struct mock *m = ctx;
    if (m->fail_writes)
        return -1;
    return buf_append(&m->out, data, len);
}

static inline void mock_init(struct mock *m, size_t max_line)
{
    memset(m, 0, sizeof(*m));
    log_init("test_mcp", -1, LOG_ERROR); /* the server logs every call at info */
    buf_init(&m->out, 64u << 20);
    struct mcp_server_config cfg = {
        .version = "9.9.9",
        .max_line = max_line,
        .backend = {m, mock_submit, mock_cancel},
        .write = mock_write,
        .write_ctx = m,
    };
    m->srv = mcp_server_new(&cfg, NULL);
}

static inline void mock_free(struct mock *m)
{
    mcp_server_free(m->srv);
    for (size_t i = 0; i < m->nreq; i++) {
        free(m->reqs[i].path);
        free(m->reqs[i].body);
    }
    buf_free(&m->out);
}

static inline void send_line(struct mock *m, const char *line)
{
    mcp_server_feed(m->srv, line, strlen(line));
    mcp_server_feed(m->srv, "\n", 1);
}

/* The next output line, parsed (NULL when there is none). */
static inline json_t *next_out(struct mock *m)
{
    const char *head = (const char *)buf_head(&m->out);
    const char *nl = m->out.len ? memchr(head, '\n', m->out.len) : NULL;
    if (!nl)
        return NULL;
    size_t n = (size_t)(nl - head);
    json_t *j = json_loadb(head, n, JSON_DECODE_ANY, NULL);
    buf_consume(&m->out, n + 1);
    return j;
}

static inline bool no_output(const struct mock *m)
{
    return m->out.len == 0;
}

static inline struct mock_req *last_req(struct mock *m)
{
    return m->nreq ? &m->reqs[m->nreq - 1] : NULL;
}

static inline void complete_json(struct mock *m, uint64_t token, long status, const char *text)
{
    json_t *j = text && *text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    struct mcp_reply r = {status, j, text ? text : "", text ? strlen(text) : 0, NULL};
    mcp_server_complete(m->srv, token, &r);
    json_decref(j);
}

static inline void complete_text(struct mock *m, uint64_t token, long status, const char *text)
{
    struct mcp_reply r = {status, NULL, text, strlen(text), NULL};
    mcp_server_complete(m->srv, token, &r);
}

static inline void complete_transport(struct mock *m, uint64_t token, int code, const char *msg)
{
    struct err *e = NULL;
    err_set(&e, code, "%s", msg);
    struct mcp_reply r = {0, NULL, "", 0, e};
    mcp_server_complete(m->srv, token, &r);
    err_free(e);
}

/* initialize with version, checks nothing, drops the reply. */
static inline void init_session(struct mock *m, const char *version)
{
    char line[256];
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
             "{\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
             "\"version\":\"1\"}}}",
             version);
    send_line(m, line);
    json_decref(next_out(m));
    send_line(m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
}

static inline void call_tool(struct mock *m, int id, const char *name, const char *args)
{
    char line[4096];
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\""
             "%s%s}}",
             id, name, args ? ",\"arguments\":" : "", args ? args : "");
    send_line(m, line);
}

static inline const char *result_text(const json_t *reply)
{
    const json_t *c =
        json_array_get(json_object_get(json_object_get(reply, "result"), "content"), 0);
    return json_string_value(json_object_get(c, "text"));
}

static inline bool result_is_error(const json_t *reply)
{
    return json_is_true(json_object_get(json_object_get(reply, "result"), "isError"));
}

static inline long error_code(const json_t *reply)
{
    return (long)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
}

#endif
