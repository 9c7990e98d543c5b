/* capsem-mcp JSON-RPC core: line framing, dispatch, protocol negotiation,
 * batches, cancellation and the bookkeeping of tools/call requests in
 * flight. See mcp.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "mcp/mcp.h"
#include "mcp/mcp_tools.h"

const char *const mcp_protocol_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18",
                                             "2025-11-25"};
const size_t mcp_protocol_count = ARRAY_SIZE(mcp_protocol_versions);

/* The replies of one batch, sent as one array once its last call is done. */
struct batch {
    json_t *replies;
    size_t pending; /* calls of the batch in flight */
    bool open;      /* its elements are still being dispatched */
};

/* One tools/call in flight. */
struct call {
    struct call *next;
    uint64_t token; /* of the service request in flight */
    json_t *id;
    struct batch *batch; /* NULL: answered on its own */
    struct tool_run run;
    uint64_t started_ms;
};

struct mcp_server {
    struct mcp_server_config cfg;
    struct buf line;
    bool skipping; /* dropping the rest of an oversized line */
    int proto;     /* index into mcp_protocol_versions; -1 before initialize */
    struct call *calls;
    size_t ncalls;
    uint64_t next_token;
    bool out_failed;
};

int mcp_protocol_index(const char *v)
{
    for (size_t i = 0; v && i < mcp_protocol_count; i++)
        if (strcmp(v, mcp_protocol_versions[i]) == 0)
            return (int)i;
    return -1;
}

/* ---------- output ---------- */

static void write_msg(struct mcp_server *s, json_t *msg)
{
    static const char oom[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
                              "\"message\":\"out of memory\"}}\n";
    if (s->out_failed) {
        json_decref(msg);
        return;
    }
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    size_t n = text ? strlen(text) : 0;
    char *line = text ? realloc(text, n + 2) : NULL;
    int rc;
    if (line) {
        line[n] = '\n';
        rc = s->cfg.write(s->cfg.write_ctx, line, n + 1);
        free(line);
    } else {
        free(text);
        log_error("cannot encode a reply: out of memory");
        rc = s->cfg.write(s->cfg.write_ctx, oom, sizeof(oom) - 1);
    }
    if (rc < 0) {
        log_warn("cannot write to stdout; dropping further output");
        s->out_failed = true;
    }
}

/* Sends msg (stolen) now, or keeps it for its batch. */
static void emit(struct mcp_server *s, struct batch *b, json_t *msg)
{
    if (b) {
        if (msg)
            json_array_append_new(b->replies, msg);
        return;
    }
    write_msg(s, msg);
}

static void reply_result(struct mcp_server *s, struct batch *b, json_t *id, json_t *result)
{
    emit(s, b, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void __attribute__((format(printf, 5, 6)))
reply_error(struct mcp_server *s, struct batch *b, json_t *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *null = json_null();
    emit(s, b,
         json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : null, "error",
                   "code", code, "message", msg));
}

static void batch_maybe_flush(struct mcp_server *s, struct batch *b)
{
    if (!b || b->open || b->pending)
        return;
    if (json_array_size(b->replies) > 0)
        write_msg(s, json_incref(b->replies));
    json_decref(b->replies);
    free(b);
}

/* ---------- tool results ---------- */

static json_t *text_result(const char *text, bool is_error)
{
    json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
    if (r && is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

static json_t *tool_ok(const struct mcp_server *s, json_t *obj)
{
    _cleanup_free_ char *text = json_dumps(obj, JSON_INDENT(2));
    json_t *r = text ? text_result(text, false) : NULL;
    if (r && s->proto >= MCP_PROTO_2025_06_18)
        json_object_set(r, "structuredContent", obj);
    json_decref(obj);
    return r;
}

static json_t *tool_error(const struct err *e)
{
    char text[4096];
    if (e->status)
        snprintf(text, sizeof(text), "%d: %s", e->status, err_msg(e));
    else
        snprintf(text, sizeof(text), "%s", err_msg(e));
    return text_result(text, true);
}

/* ---------- calls in flight ---------- */

static void call_free(struct call *c)
{
    mcp_tool_run_clear(&c->run);
    json_decref(c->id);
    free(c);
}

static void call_unlink(struct mcp_server *s, struct call *c)
{
    for (struct call **pp = &s->calls; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            s->ncalls--;
            return;
        }
    }
}

/* Answers c (result or error, exactly one given) and retires it. */
static void call_finish(struct mcp_server *s, struct call *c, json_t *result, const struct err *e)
{
    const char *tool = mcp_tool_name(c->run.def);
    uint64_t ms = time_mono_ms() - c->started_ms;
    if (e)
        log_info("tools/call %s: error after %llu ms: %s", tool, (unsigned long long)ms,
                 err_msg(e));
    else
        log_info("tools/call %s: ok after %llu ms", tool, (unsigned long long)ms);
    json_t *res = e ? tool_error(e) : tool_ok(s, result);
    struct batch *b = c->batch;
    reply_result(s, b, c->id, res);
    call_unlink(s, c);
    call_free(c);
    if (b) {
        b->pending--;
        batch_maybe_flush(s, b);
    }
}

/* Sends c->run.req under a fresh token; c is already linked. */
static void call_submit(struct mcp_server *s, struct call *c)
{
    _cleanup_err_ struct err *e = NULL;
    c->token = ++s->next_token;
    log_debug("service call %s %s", c->run.req.method, c->run.req.path);
    if (s->cfg.backend.submit(s->cfg.backend.impl, c->token, &c->run.req, &e) < 0)
        call_finish(s, c, NULL, e);
}

static void start_call(struct mcp_server *s, struct batch *b, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    if (!name) {
        reply_error(s, b, id, MCP_INVALID_PARAMS, "missing tool name (params.name)");
        return;
    }
    const struct tool_def *def = mcp_tool_find(name);
    if (!def) {
        reply_error(s, b, id, MCP_INVALID_PARAMS, "unknown tool: %s", name);
        return;
    }
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        reply_error(s, b, id, -32603, "out of memory");
        return;
    }
    c->id = json_incref(id);
    c->batch = b;
    c->started_ms = time_mono_ms();
    c->next = s->calls;
    s->calls = c;
    s->ncalls++;
    if (b)
        b->pending++;
    _cleanup_err_ struct err *e = NULL;
    json_t *args = json_object_get(params, "arguments");
    json_t *empty = args ? NULL : json_object();
    if (mcp_tool_start(&c->run, def, args ? args : empty, &e) < 0)
        call_finish(s, c, NULL, e);
    else
        call_submit(s, c);
    json_decref(empty);
}

void mcp_server_complete(struct mcp_server *s, uint64_t token, const struct mcp_reply *r)
{
    struct call *c = s->calls;
    while (c && c->token != token)
        c = c->next;
    if (!c)
        return;
    json_t *result = NULL;
    _cleanup_err_ struct err *e = NULL;
    int rc = mcp_tool_step(&c->run, r, &result, &e);
    if (rc == 1)
        call_submit(s, c);
    else
        call_finish(s, c, rc == 0 ? result : NULL, rc == 0 ? NULL : e);
}

static void cancel_request(struct mcp_server *s, const json_t *id)
{
    struct call **pp = &s->calls;
    while (id && *pp) {
        struct call *c = *pp;
        if (!json_equal(c->id, (json_t *)id)) {
            pp = &c->next;
            continue;
        }
        log_info("tools/call %s: cancelled by the client", mcp_tool_name(c->run.def));
        s->cfg.backend.cancel(s->cfg.backend.impl, c->token);
        *pp = c->next;
        s->ncalls--;
        struct batch *b = c->batch;
        call_free(c);
        if (b) {
            b->pending--;
            batch_maybe_flush(s, b);
        }
    }
}

/* ---------- methods ---------- */

static void do_initialize(struct mcp_server *s, struct batch *b, json_t *id, json_t *params)
{
    if (b) {
        reply_error(s, b, id, MCP_INVALID_REQUEST, "initialize cannot be part of a batch");
        return;
    }
    if (s->proto >= 0) {
        reply_error(s, b, id, MCP_INVALID_REQUEST, "already initialized");
        return;
    }
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    int idx = mcp_protocol_index(asked);
    s->proto = idx >= 0 ? idx : (int)mcp_protocol_count - 1;
    const char *client =
        json_string_value(json_object_get(json_object_get(params, "clientInfo"), "name"));
    log_info("initialize: client %s asked %s, using %s", client ? client : "?",
             asked ? asked : "(none)", mcp_protocol_versions[s->proto]);
    reply_result(s, b, id,
                 json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion",
                           mcp_protocol_versions[s->proto], "capabilities", "tools", "listChanged",
                           0, "serverInfo", "name", "capsem-mcp", "version", s->cfg.version));
}

static void handle_request(struct mcp_server *s, struct batch *b, json_t *id, const char *method,
                           json_t *params)
{
    bool known = strcmp(method, "initialize") == 0 || strcmp(method, "ping") == 0 ||
                 strcmp(method, "tools/list") == 0 || strcmp(method, "tools/call") == 0;
    if (!known) {
        reply_error(s, b, id, MCP_METHOD_NOT_FOUND, "method not found: %s", method);
        return;
    }
    if (params && !json_is_object(params)) {
        reply_error(s, b, id, MCP_INVALID_PARAMS, "params must be an object");
        return;
    }
    if (strcmp(method, "initialize") == 0)
        do_initialize(s, b, id, params);
    else if (strcmp(method, "ping") == 0)
        reply_result(s, b, id, json_object());
    else if (s->proto < 0)
        reply_error(s, b, id, MCP_NOT_INITIALIZED, "server not initialized: send initialize first");
    else if (strcmp(method, "tools/list") == 0)
        reply_result(s, b, id, mcp_tools_list(s->proto));
    else
        start_call(s, b, id, params);
}

static void handle_notification(struct mcp_server *s, const char *method, json_t *params)
{
    if (strcmp(method, "notifications/cancelled") == 0)
        cancel_request(s, json_object_get(params, "requestId"));
    /* notifications/initialized and anything else: nothing to do */
}

static void handle_message(struct mcp_server *s, json_t *msg, struct batch *b)
{
    if (!json_is_object(msg)) {
        reply_error(s, b, NULL, MCP_INVALID_REQUEST, "invalid request: not a JSON object");
        return;
    }
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error")))
        return; /* a response; this server sends no requests */
    if (id && !json_is_string(id) && !json_is_integer(id)) {
        reply_error(s, b, NULL, MCP_INVALID_REQUEST,
                    "invalid request: id must be a string or an integer");
        return;
    }
    const char *v = json_string_value(json_object_get(msg, "jsonrpc"));
    if (!v || strcmp(v, "2.0") != 0 || !json_is_string(method) ||
        (params && !json_is_object(params) && !json_is_array(params))) {
        reply_error(s, b, id, MCP_INVALID_REQUEST,
                    "invalid request: needs jsonrpc \"2.0\", a string method and object params");
        return;
    }
    if (!id)
        handle_notification(s, json_string_value(method), params);
    else
        handle_request(s, b, id, json_string_value(method), params);
}

static void handle_batch(struct mcp_server *s, json_t *arr)
{
    if (s->proto != MCP_PROTO_2025_03_26) {
        reply_error(s, NULL, NULL, MCP_INVALID_REQUEST,
                    "batches are only accepted in protocol version 2025-03-26");
        return;
    }
    if (json_array_size(arr) == 0) {
        reply_error(s, NULL, NULL, MCP_INVALID_REQUEST, "invalid request: empty batch");
        return;
    }
    struct batch *b = calloc(1, sizeof(*b));
    if (!b || !(b->replies = json_array())) {
        free(b);
        reply_error(s, NULL, NULL, -32603, "out of memory");
        return;
    }
    b->open = true;
    size_t i;
    json_t *elem;
    json_array_foreach(arr, i, elem)
    {
        handle_message(s, elem, b);
    }
    b->open = false;
    batch_maybe_flush(s, b);
}

static void handle_line(struct mcp_server *s, const char *data, size_t len)
{
    while (len > 0 && isspace((unsigned char)data[len - 1]))
        len--;
    size_t lead = 0;
    while (lead < len && isspace((unsigned char)data[lead]))
        lead++;
    if (lead == len)
        return; /* blank line */
    json_error_t jerr;
    json_t *msg = json_loadb(data + lead, len - lead, JSON_DECODE_ANY, &jerr);
    if (!msg) {
        reply_error(s, NULL, NULL, MCP_PARSE_ERROR, "parse error: %s", jerr.text);
        return;
    }
    if (json_is_array(msg))
        handle_batch(s, msg);
    else
        handle_message(s, msg, NULL);
    json_decref(msg);
}

/* ---------- public ---------- */

struct mcp_server *mcp_server_new(const struct mcp_server_config *cfg, struct err **errp)
{
    if (!cfg->write || !cfg->backend.submit || !cfg->backend.cancel) {
        err_set(errp, EINVAL, "mcp server: write, submit and cancel are required");
        return NULL;
    }
    struct mcp_server *s = calloc(1, sizeof(*s));
    if (!s) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (!s->cfg.version)
        s->cfg.version = CAPSEM_VERSION;
    buf_init(&s->line, cfg->max_line ? cfg->max_line : MCP_MAX_LINE);
    s->proto = -1;
    return s;
}

void mcp_server_free(struct mcp_server *s)
{
    if (!s)
        return;
    while (s->calls) {
        struct call *c = s->calls;
        s->calls = c->next;
        s->cfg.backend.cancel(s->cfg.backend.impl, c->token);
        struct batch *b = c->batch;
        call_free(c);
        if (b && --b->pending == 0 && !b->open) {
            json_decref(b->replies);
            free(b);
        }
    }
    buf_free(&s->line);
    free(s);
}

void mcp_server_feed(struct mcp_server *s, const char *data, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;
        if (!s->skipping && buf_append(&s->line, data, seg) < 0) {
            buf_reset(&s->line);
            s->skipping = true;
            log_warn("input message over %zu bytes refused", s->line.max);
            reply_error(s, NULL, NULL, MCP_INVALID_REQUEST,
                        "invalid request: message larger than %zu bytes", s->line.max);
        }
        if (nl) {
            if (!s->skipping)
                handle_line(s, (const char *)buf_head(&s->line), s->line.len);
            buf_reset(&s->line);
            s->skipping = false;
            seg++;
        }
        data += seg;
        n -= seg;
    }
}

void mcp_server_finish_input(struct mcp_server *s)
{
    if (!s->skipping && s->line.len > 0)
        handle_line(s, (const char *)buf_head(&s->line), s->line.len);
    buf_reset(&s->line);
    s->skipping = false;
}

size_t mcp_server_inflight(const struct mcp_server *s)
{
    return s->ncalls;
}

const char *mcp_server_protocol(const struct mcp_server *s)
{
    return s->proto >= 0 ? mcp_protocol_versions[s->proto] : NULL;
}

bool mcp_server_output_failed(const struct mcp_server *s)
{
    return s->out_failed;
}
