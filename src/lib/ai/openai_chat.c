/* OpenAI Chat Completions (POST api.openai.com/v1/chat/completions):
 * request fields, `data:` chunks ending with [DONE], and the non-streaming
 * completion (network.md section 12). */
#include "ai/ai_int.h"

#include <string.h>

/* ---- request ---- */

static bool role_is(const json_t *m, const char *role)
{
    const char *r = ai_jstr(m, "role");
    return r && strcmp(r, role) == 0;
}

static void chat_messages(struct ai_req_build *b, const json_t *msgs)
{
    size_t i, last_assistant = SIZE_MAX;
    const json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (role_is(m, "assistant"))
            last_assistant = i;
    }
    json_array_foreach(msgs, i, m)
    {
        if (role_is(m, "system") || role_is(m, "developer")) {
            ai_req_add_system(b, json_object_get(m, "content"));
        } else if (role_is(m, "tool")) {
            bool last = last_assistant == SIZE_MAX || i > last_assistant;
            ai_req_add_result(b, ai_jstr(m, "tool_call_id"), NULL,
                              json_object_get(m, "content"), false, last);
        }
    }
}

static void chat_tools(struct ai_req_build *b, const json_t *root)
{
    size_t i;
    const json_t *t;
    json_array_foreach(ai_jarr(root, "tools"), i, t)
    {
        const char *name = ai_jstr(ai_jobj(t, "function"), "name");
        if (!name)
            name = ai_jstr(ai_jobj(t, "custom"), "name");
        if (!name)
            name = ai_jstr(t, "name");
        if (!name)
            name = ai_jstr(t, "type");
        ai_req_add_tool(b, name);
    }
    json_array_foreach(ai_jarr(root, "functions"), i, t) /* legacy function calling */
    {
        ai_req_add_tool(b, ai_jstr(t, "name"));
    }
}

static void chat_request(struct ai_req_build *b, const json_t *root)
{
    struct ai_request *req = b->req;
    ai_req_set_model(b, ai_jstr(root, "model"));
    req->stream = ai_jtrue(root, "stream");
    int64_t v;
    if (ai_jint(root, "max_completion_tokens", &v) || ai_jint(root, "max_tokens", &v))
        req->max_tokens = v;
    const json_t *msgs = ai_jarr(root, "messages");
    if (msgs) {
        req->messages_count = (int64_t)json_array_size(msgs);
        chat_messages(b, msgs);
    }
    chat_tools(b, root);
}

/* ---- response ---- */

static void chat_error(struct ai_response *r, const json_t *err)
{
    const char *type = ai_jstr(err, "type");
    ai_set_error(r, type ? type : ai_jstr(err, "code"), ai_jstr(err, "message"));
    if (!r->stop_reason)
        ai_set(r, &r->stop_reason, "error");
    r->complete = true;
}

/* tool_calls entries: fragments (stream) or whole calls (document). The key
 * combines the choice and the tool index, so fragments of interleaved calls
 * land in their own call. */
static void chat_tool_calls(struct ai_response *r, int64_t choice, const json_t *tcs)
{
    size_t i;
    const json_t *tc;
    json_array_foreach(tcs, i, tc)
    {
        int64_t idx = (int64_t)i;
        ai_jint(tc, "index", &idx);
        if (idx > 0xffff)
            continue;
        struct ai_call *c = ai_call_get(r, choice << 16 | idx, true);
        if (!c)
            return;
        const json_t *fn = ai_jobj(tc, "function");
        if (!fn)
            fn = ai_jobj(tc, "custom");
        ai_set(r, &c->id, ai_jstr(tc, "id"));
        ai_set(r, &c->name, ai_jstr(fn, "name"));
        const char *args = ai_jstr(fn, "arguments");
        if (!args)
            args = ai_jstr(fn, "input");
        if (args)
            ai_call_args(r, c, args, strlen(args));
    }
}

/* One choices[] entry; `part` is "delta" (stream) or "message" (document). */
static void chat_choice(struct ai_response *r, const json_t *ch, const char *part)
{
    int64_t idx = 0;
    ai_jint(ch, "index", &idx);
    if (idx > 0xffff)
        return;
    const json_t *d = ai_jobj(ch, part);
    if (idx == 0) { /* previews follow the first choice */
        ai_add_text(r, ai_jstr(d, "content"));
        ai_add_thinking(r, ai_jstr(d, "reasoning_content"));
        ai_set(r, &r->stop_reason, ai_jstr(ch, "finish_reason"));
    }
    chat_tool_calls(r, idx, ai_jarr(d, "tool_calls"));
}

static void chat_chunk(struct ai_response *r, const json_t *root, const char *part)
{
    const json_t *err = ai_jobj(root, "error");
    if (err) {
        chat_error(r, err);
        return;
    }
    if (!r->message_id)
        ai_set(r, &r->message_id, ai_jstr(root, "id"));
    ai_set(r, &r->model, ai_jstr(root, "model"));
    size_t i;
    const json_t *ch;
    json_array_foreach(ai_jarr(root, "choices"), i, ch)
    {
        chat_choice(r, ch, part);
        if (r->stopped)
            return;
    }
    ai_usage_set(r, ai_jobj(root, "usage"), false);
}

static void chat_event(struct ai_response *r, const char *name, const json_t *data)
{
    (void)name;
    chat_chunk(r, data, "delta");
}

static void chat_doc(struct ai_response *r, const json_t *root)
{
    chat_chunk(r, root, "message");
}

static void chat_tokens(const json_t *u, struct ai_result *res)
{
    int64_t prompt, cached = 0, v;
    ai_jint(ai_jobj(u, "prompt_tokens_details"), "cached_tokens", &cached);
    if (ai_jint(u, "prompt_tokens", &prompt)) {
        res->input_tokens = prompt > cached ? prompt - cached : 0;
        res->cache_read_tokens = cached;
    }
    if (ai_jint(u, "completion_tokens", &v))
        res->output_tokens = v;
    v = 0;
    ai_jint(ai_jobj(u, "completion_tokens_details"), "reasoning_tokens", &v);
    res->thinking_tokens = v;
}

const struct ai_proto_ops ai_openai_chat_ops = {
    .request = chat_request,
    .event = chat_event,
    .element = NULL,
    .doc = chat_doc,
    .tokens = chat_tokens,
};
