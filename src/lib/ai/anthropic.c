/* Anthropic Messages API (POST api.anthropic.com/v1/messages): request
 * fields, SSE events and the non-streaming message (network.md section 12). */
#include "ai/ai_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- request ---- */

static void anthropic_results(struct ai_req_build *b, const json_t *msgs)
{
    size_t i, last_assistant = SIZE_MAX;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = ai_jstr(m, "role");
        if (role && strcmp(role, "assistant") == 0)
            last_assistant = i;
    }
    json_array_foreach(msgs, i, m)
    {
        const json_t *content = ai_jarr(m, "content");
        size_t k;
        const json_t *blk;
        json_array_foreach(content, k, blk)
        {
            const char *type = ai_jstr(blk, "type");
            if (!type || strcmp(type, "tool_result") != 0)
                continue;
            bool last = last_assistant == SIZE_MAX || i > last_assistant;
            ai_req_add_result(b, ai_jstr(blk, "tool_use_id"), NULL, json_object_get(blk, "content"),
                              ai_jtrue(blk, "is_error"), last);
        }
    }
}

static void anthropic_request(struct ai_req_build *b, const json_t *root)
{
    struct ai_request *req = b->req;
    ai_req_set_model(b, ai_jstr(root, "model"));
    req->stream = ai_jtrue(root, "stream");
    int64_t v;
    if (ai_jint(root, "max_tokens", &v))
        req->max_tokens = v;
    ai_req_add_system(b, json_object_get(root, "system"));
    const json_t *msgs = ai_jarr(root, "messages");
    if (msgs) {
        req->messages_count = (int64_t)json_array_size(msgs);
        anthropic_results(b, msgs);
    }
    size_t i;
    const json_t *t;
    json_array_foreach(ai_jarr(root, "tools"), i, t)
    {
        ai_req_add_tool(b, ai_jstr(t, "name"));
    }
}

/* ---- response ---- */

static void anthropic_error(struct ai_response *r, const json_t *err)
{
    ai_set_error(r, ai_jstr(err, "type"), ai_jstr(err, "message"));
    if (!r->stop_reason)
        ai_set(r, &r->stop_reason, "error");
    r->complete = true;
}

static void block_start(struct ai_response *r, int64_t idx, const json_t *cb)
{
    const char *type = ai_jstr(cb, "type");
    if (!type)
        return;
    if (strcmp(type, "text") == 0) {
        ai_add_text(r, ai_jstr(cb, "text"));
    } else if (strcmp(type, "thinking") == 0) {
        ai_add_thinking(r, ai_jstr(cb, "thinking"));
    } else if (strcmp(type, "tool_use") == 0) {
        struct ai_call *c = ai_call_get(r, idx, true);
        if (!c)
            return;
        ai_set(r, &c->id, ai_jstr(cb, "id"));
        ai_set(r, &c->name, ai_jstr(cb, "name"));
        const json_t *input = json_object_get(cb, "input");
        if (input && !c->args_default) {
            c->args_default = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY |
                                                    JSON_PRESERVE_ORDER);
            if (!c->args_default)
                r->nomem = true;
        }
    }
}

static void block_delta(struct ai_response *r, int64_t idx, const json_t *d)
{
    const char *type = ai_jstr(d, "type");
    if (!type)
        return;
    if (strcmp(type, "text_delta") == 0) {
        ai_add_text(r, ai_jstr(d, "text"));
    } else if (strcmp(type, "thinking_delta") == 0) {
        ai_add_thinking(r, ai_jstr(d, "thinking"));
    } else if (strcmp(type, "input_json_delta") == 0) {
        struct ai_call *c = ai_call_get(r, idx, false);
        const char *frag = ai_jstr(d, "partial_json");
        if (c && frag)
            ai_call_args(r, c, frag, strlen(frag));
    }
}

static void message_fields(struct ai_response *r, const json_t *msg)
{
    ai_set(r, &r->message_id, ai_jstr(msg, "id"));
    ai_set(r, &r->model, ai_jstr(msg, "model"));
    ai_set(r, &r->stop_reason, ai_jstr(msg, "stop_reason"));
}

static void anthropic_event(struct ai_response *r, const char *name, const json_t *data)
{
    const char *type = ai_jstr(data, "type");
    if (!type)
        type = name;
    int64_t idx = -1;
    ai_jint(data, "index", &idx);
    if (strcmp(type, "message_start") == 0) {
        const json_t *msg = ai_jobj(data, "message");
        message_fields(r, msg);
        ai_usage_set(r, ai_jobj(msg, "usage"), false);
    } else if (strcmp(type, "content_block_start") == 0) {
        block_start(r, idx, ai_jobj(data, "content_block"));
    } else if (strcmp(type, "content_block_delta") == 0) {
        block_delta(r, idx, ai_jobj(data, "delta"));
    } else if (strcmp(type, "message_delta") == 0) {
        ai_set(r, &r->stop_reason, ai_jstr(ai_jobj(data, "delta"), "stop_reason"));
        /* Cumulative counts: later non-null members replace earlier ones. */
        ai_usage_set(r, ai_jobj(data, "usage"), true);
    } else if (strcmp(type, "message_stop") == 0) {
        r->complete = true;
    } else if (strcmp(type, "error") == 0) {
        anthropic_error(r, ai_jobj(data, "error"));
    }
    /* ping, content_block_stop, unknown types: nothing to record */
}

static void anthropic_doc(struct ai_response *r, const json_t *root)
{
    const char *type = ai_jstr(root, "type");
    if (type && strcmp(type, "error") == 0) {
        anthropic_error(r, ai_jobj(root, "error"));
        return;
    }
    message_fields(r, root);
    ai_usage_set(r, ai_jobj(root, "usage"), false);
    size_t i;
    const json_t *blk;
    json_array_foreach(ai_jarr(root, "content"), i, blk)
    {
        const char *bt = ai_jstr(blk, "type");
        if (!bt)
            continue;
        if (strcmp(bt, "text") == 0) {
            ai_add_text(r, ai_jstr(blk, "text"));
        } else if (strcmp(bt, "thinking") == 0) {
            ai_add_thinking(r, ai_jstr(blk, "thinking"));
        } else if (strcmp(bt, "tool_use") == 0) {
            struct ai_call *c = ai_call_get(r, (int64_t)i, true);
            if (!c)
                return;
            ai_set(r, &c->id, ai_jstr(blk, "id"));
            ai_set(r, &c->name, ai_jstr(blk, "name"));
            ai_call_args_json(r, c, json_object_get(blk, "input"));
        }
    }
}

static void anthropic_tokens(const json_t *u, struct ai_result *res)
{
    int64_t v;
    if (ai_jint(u, "input_tokens", &v))
        res->input_tokens = v;
    res->cache_read_tokens = ai_jint(u, "cache_read_input_tokens", &v) ? v : 0;
    res->cache_write_tokens = ai_jint(u, "cache_creation_input_tokens", &v) ? v : 0;
    if (ai_jint(u, "output_tokens", &v))
        res->output_tokens = v;
    /* Thinking is billed inside output_tokens and not reported apart. */
}

const struct ai_proto_ops ai_anthropic_ops = {
    .request = anthropic_request,
    .event = anthropic_event,
    .element = NULL,
    .doc = anthropic_doc,
    .tokens = anthropic_tokens,
};
