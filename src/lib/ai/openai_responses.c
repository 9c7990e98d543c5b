/* OpenAI Responses API (POST api.openai.com/v1/responses): request fields,
 * typed SSE events and the non-streaming response object (network.md
 * section 12). */
#include "ai/ai_int.h"

#include <string.h>

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* ---- request ---- */

/* Input items the model produced (earlier turns replayed by the client). */
static bool item_from_model(const json_t *it)
{
    const char *type = ai_jstr(it, "type");
    return str_is(ai_jstr(it, "role"), "assistant") || str_is(type, "function_call") ||
           str_is(type, "custom_tool_call") || str_is(type, "reasoning");
}

static void resp_input(struct ai_req_build *b, const json_t *input)
{
    size_t i, last_model = SIZE_MAX;
    const json_t *it;
    json_array_foreach(input, i, it)
    {
        if (item_from_model(it))
            last_model = i;
    }
    json_array_foreach(input, i, it)
    {
        const char *type = ai_jstr(it, "type");
        const char *role = ai_jstr(it, "role");
        bool last = last_model == SIZE_MAX || i > last_model;
        if (str_is(type, "function_call_output") || str_is(type, "custom_tool_call_output"))
            ai_req_add_result(b, ai_jstr(it, "call_id"), NULL, json_object_get(it, "output"),
                              false, last);
        else if (str_is(role, "system") || str_is(role, "developer"))
            ai_req_add_system(b, json_object_get(it, "content"));
    }
}

static void resp_request(struct ai_req_build *b, const json_t *root)
{
    struct ai_request *req = b->req;
    ai_req_set_model(b, ai_jstr(root, "model"));
    req->stream = ai_jtrue(root, "stream");
    int64_t v;
    if (ai_jint(root, "max_output_tokens", &v))
        req->max_tokens = v;
    ai_req_add_system(b, json_object_get(root, "instructions"));
    const json_t *input = json_object_get(root, "input");
    if (json_is_string(input)) {
        req->messages_count = 1;
    } else if (json_is_array(input)) {
        req->messages_count = (int64_t)json_array_size(input);
        resp_input(b, input);
    }
    size_t i;
    const json_t *t;
    json_array_foreach(ai_jarr(root, "tools"), i, t)
    {
        const char *name = ai_jstr(t, "name");
        if (!name)
            name = ai_jstr(t, "server_label");
        ai_req_add_tool(b, name ? name : ai_jstr(t, "type"));
    }
}

/* ---- response ---- */

static void resp_error(struct ai_response *r, const json_t *err)
{
    const char *type = ai_jstr(err, "code");
    ai_set_error(r, type ? type : ai_jstr(err, "type"), ai_jstr(err, "message"));
    if (!r->stop_reason)
        ai_set(r, &r->stop_reason, "error");
}

/* A function_call / custom_tool_call output item at slot key. */
static void resp_call_item(struct ai_response *r, int64_t key, const json_t *item, bool done)
{
    const char *type = ai_jstr(item, "type");
    if (!str_is(type, "function_call") && !str_is(type, "custom_tool_call"))
        return;
    struct ai_call *c = ai_call_get(r, key, true);
    if (!c)
        return;
    const char *id = ai_jstr(item, "call_id");
    ai_set(r, &c->id, id ? id : ai_jstr(item, "id"));
    ai_set(r, &c->name, ai_jstr(item, "name"));
    const char *args = ai_jstr(item, "arguments");
    if (!args)
        args = ai_jstr(item, "input");
    /* The item at `done` repeats the whole arguments: use it only when no
     * fragment arrived. */
    if (args && (!done || !c->args_any))
        ai_call_args(r, c, args, strlen(args));
}

static void resp_message_item(struct ai_response *r, const json_t *item)
{
    const char *type = ai_jstr(item, "type");
    size_t i;
    const json_t *p;
    if (str_is(type, "message")) {
        json_array_foreach(ai_jarr(item, "content"), i, p)
        {
            if (str_is(ai_jstr(p, "type"), "output_text"))
                ai_add_text(r, ai_jstr(p, "text"));
        }
    } else if (str_is(type, "reasoning")) {
        json_array_foreach(ai_jarr(item, "summary"), i, p)
        {
            ai_add_thinking(r, ai_jstr(p, "text"));
        }
    }
}

/* A response object (document, or inside created/completed/... events). */
static void resp_object(struct ai_response *r, const json_t *resp, bool final, bool items)
{
    ai_set(r, &r->message_id, ai_jstr(resp, "id"));
    ai_set(r, &r->model, ai_jstr(resp, "model"));
    if (!final)
        return;
    const char *status = ai_jstr(resp, "status");
    const char *why = ai_jstr(ai_jobj(resp, "incomplete_details"), "reason");
    ai_set(r, &r->stop_reason, str_is(status, "incomplete") && why ? why : status);
    const json_t *err = ai_jobj(resp, "error");
    if (err)
        resp_error(r, err);
    ai_usage_set(r, ai_jobj(resp, "usage"), false);
    size_t i;
    const json_t *item;
    json_array_foreach(items ? ai_jarr(resp, "output") : NULL, i, item)
    {
        resp_message_item(r, item);
        resp_call_item(r, (int64_t)i, item, true);
    }
    r->complete = true;
}

static void resp_event(struct ai_response *r, const char *name, const json_t *data)
{
    const char *type = ai_jstr(data, "type");
    if (!type)
        type = name;
    int64_t oi = -1;
    ai_jint(data, "output_index", &oi);
    if (str_is(type, "response.created") || str_is(type, "response.in_progress")) {
        resp_object(r, ai_jobj(data, "response"), false, false);
    } else if (str_is(type, "response.output_item.added")) {
        resp_call_item(r, oi, ai_jobj(data, "item"), false);
    } else if (str_is(type, "response.output_item.done")) {
        resp_call_item(r, oi, ai_jobj(data, "item"), true);
    } else if (str_is(type, "response.function_call_arguments.delta") ||
               str_is(type, "response.custom_tool_call_input.delta")) {
        struct ai_call *c = ai_call_get(r, oi, true);
        const char *d = ai_jstr(data, "delta");
        if (c && d)
            ai_call_args(r, c, d, strlen(d));
    } else if (str_is(type, "response.output_text.delta")) {
        ai_add_text(r, ai_jstr(data, "delta"));
    } else if (str_is(type, "response.reasoning_summary_text.delta") ||
               str_is(type, "response.reasoning_text.delta")) {
        ai_add_thinking(r, ai_jstr(data, "delta"));
    } else if (str_is(type, "response.completed") || str_is(type, "response.incomplete") ||
               str_is(type, "response.failed")) {
        /* Items were already seen as events; only status and usage count. */
        resp_object(r, ai_jobj(data, "response"), true, false);
    } else if (str_is(type, "error")) {
        const json_t *err = ai_jobj(data, "error");
        resp_error(r, err ? err : data);
        r->complete = true;
    }
}

static void resp_doc(struct ai_response *r, const json_t *root)
{
    const json_t *err = ai_jobj(root, "error");
    if (err && !ai_jstr(root, "object")) { /* an API error body, not a response */
        resp_error(r, err);
        r->complete = true;
        return;
    }
    resp_object(r, root, true, true);
}

static void resp_tokens(const json_t *u, struct ai_result *res)
{
    int64_t in, cached = 0, v;
    ai_jint(ai_jobj(u, "input_tokens_details"), "cached_tokens", &cached);
    if (ai_jint(u, "input_tokens", &in)) {
        res->input_tokens = in > cached ? in - cached : 0;
        res->cache_read_tokens = cached;
    }
    if (ai_jint(u, "output_tokens", &v))
        res->output_tokens = v;
    v = 0;
    ai_jint(ai_jobj(u, "output_tokens_details"), "reasoning_tokens", &v);
    res->thinking_tokens = v;
}

const struct ai_proto_ops ai_openai_responses_ops = {
    .request = resp_request,
    .event = resp_event,
    .element = NULL,
    .doc = resp_doc,
    .tokens = resp_tokens,
};
