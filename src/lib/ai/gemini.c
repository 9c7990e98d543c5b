/* Gemini generateContent / streamGenerateContent
 * (generativelanguage.googleapis.com/v1beta/models/<m>:...): request fields
 * and GenerateContentResponse objects, which arrive as SSE data (alt=sse),
 * array elements or one document (network.md section 12). The API accepts
 * camelCase and snake_case request fields; responses use camelCase. */
#include "ai/ai_int.h"

#include <stdint.h>
#include <string.h>

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* ---- request ---- */

static void gemini_contents(struct ai_req_build *b, const json_t *contents)
{
    size_t i, last_model = SIZE_MAX;
    const json_t *c;
    json_array_foreach(contents, i, c)
    {
        if (str_is(ai_jstr(c, "role"), "model"))
            last_model = i;
    }
    json_array_foreach(contents, i, c)
    {
        size_t k;
        const json_t *part;
        json_array_foreach(ai_jarr(c, "parts"), k, part)
        {
            const json_t *fr = ai_jget2(part, "functionResponse", "function_response");
            if (!json_is_object(fr))
                continue;
            bool last = last_model == SIZE_MAX || i > last_model;
            ai_req_add_result(b, ai_jstr(fr, "id"), ai_jstr(fr, "name"),
                              json_object_get(fr, "response"), false, last);
        }
    }
}

static void gemini_tools(struct ai_req_build *b, const json_t *tools)
{
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)t, key, v)
        {
            if (strcmp(key, "functionDeclarations") != 0 &&
                strcmp(key, "function_declarations") != 0) {
                ai_req_add_tool(b, key); /* googleSearch, codeExecution, ... */
                continue;
            }
            size_t k;
            const json_t *fd;
            json_array_foreach(v, k, fd)
            {
                ai_req_add_tool(b, ai_jstr(fd, "name"));
            }
        }
    }
}

static void gemini_request(struct ai_req_build *b, const json_t *root)
{
    struct ai_request *req = b->req;
    const json_t *gc = ai_jget2(root, "generationConfig", "generation_config");
    const json_t *mt = ai_jget2(gc, "maxOutputTokens", "max_output_tokens");
    if (json_is_integer(mt) && json_integer_value(mt) >= 0)
        req->max_tokens = (int64_t)json_integer_value(mt);
    const json_t *si = ai_jget2(root, "systemInstruction", "system_instruction");
    if (json_is_object(si))
        ai_req_add_system(b, json_object_get(si, "parts"));
    else
        ai_req_add_system(b, si);
    const json_t *contents = ai_jarr(root, "contents");
    if (contents) {
        req->messages_count = (int64_t)json_array_size(contents);
        gemini_contents(b, contents);
    }
    const json_t *tools = ai_jarr(root, "tools");
    if (tools)
        gemini_tools(b, tools);
}

/* ---- response ---- */

static void gemini_error(struct ai_response *r, const json_t *err)
{
    const char *type = ai_jstr(err, "status");
    ai_set_error(r, type ? type : "error", ai_jstr(err, "message"));
    if (!r->stop_reason)
        ai_set(r, &r->stop_reason, "error");
    r->complete = true;
}

static void gemini_part(struct ai_response *r, const json_t *part, bool first_candidate)
{
    const json_t *fc = json_object_get(part, "functionCall");
    if (json_is_object(fc)) {
        /* Calls arrive whole, one per part: each is a new slot. */
        struct ai_call *c = ai_call_get(r, (int64_t)r->n_calls, true);
        if (!c)
            return;
        ai_set(r, &c->id, ai_jstr(fc, "id"));
        ai_set(r, &c->name, ai_jstr(fc, "name"));
        ai_call_args_json(r, c, json_object_get(fc, "args"));
        return;
    }
    if (!first_candidate)
        return;
    if (ai_jtrue(part, "thought"))
        ai_add_thinking(r, ai_jstr(part, "text"));
    else
        ai_add_text(r, ai_jstr(part, "text"));
}

static void gemini_chunk(struct ai_response *r, const json_t *root)
{
    const json_t *err = ai_jobj(root, "error");
    if (err) {
        gemini_error(r, err);
        return;
    }
    ai_set(r, &r->message_id, ai_jstr(root, "responseId"));
    ai_set(r, &r->model, ai_jstr(root, "modelVersion"));
    size_t i;
    const json_t *cand;
    json_array_foreach(ai_jarr(root, "candidates"), i, cand)
    {
        int64_t idx = 0;
        ai_jint(cand, "index", &idx);
        size_t k;
        const json_t *part;
        json_array_foreach(ai_jarr(ai_jobj(cand, "content"), "parts"), k, part)
        {
            gemini_part(r, part, idx == 0);
            if (r->stopped)
                return;
        }
        const char *fr = ai_jstr(cand, "finishReason");
        if (fr && idx == 0) {
            ai_set(r, &r->stop_reason, fr);
            r->complete = true;
        }
    }
    const char *blocked = ai_jstr(ai_jobj(root, "promptFeedback"), "blockReason");
    if (blocked) {
        ai_set(r, &r->stop_reason, blocked);
        r->complete = true;
    }
    /* Every chunk carries the totals so far: the last one wins. */
    ai_usage_set(r, ai_jobj(root, "usageMetadata"), false);
}

static void gemini_event(struct ai_response *r, const char *name, const json_t *data)
{
    (void)name;
    gemini_chunk(r, data);
}

static void gemini_tokens(const json_t *u, struct ai_result *res)
{
    /* Zero counts are omitted from Gemini's JSON: absent means 0. */
    int64_t prompt = 0, cached = 0, cand = 0, thoughts = 0;
    ai_jint(u, "promptTokenCount", &prompt);
    ai_jint(u, "cachedContentTokenCount", &cached);
    ai_jint(u, "candidatesTokenCount", &cand);
    ai_jint(u, "thoughtsTokenCount", &thoughts);
    res->input_tokens = prompt > cached ? prompt - cached : 0;
    res->cache_read_tokens = cached;
    res->output_tokens = cand > INT64_MAX - thoughts ? INT64_MAX : cand + thoughts;
    res->thinking_tokens = thoughts;
}

const struct ai_proto_ops ai_gemini_ops = {
    .request = gemini_request,
    .event = gemini_event,
    .element = gemini_chunk,
    .doc = gemini_chunk,
    .tokens = gemini_tokens,
};
