/* Accumulators and JSON helpers shared by the AI interpreters (ai_int.h). */
#include "ai/ai_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text ---- */

void ai_text_init(struct ai_text *t, size_t cap)
{
    buf_init(&t->b, cap);
    t->truncated = false;
}

void ai_text_free(struct ai_text *t)
{
    buf_free(&t->b);
}

void ai_text_add(struct ai_text *t, const char *s, size_t n)
{
    if (t->truncated || n == 0)
        return;
    size_t room = buf_room(&t->b);
    size_t take = n < room ? n : room;
    if (buf_append(&t->b, s, take) < 0 || take < n)
        t->truncated = true;
}

size_t ai_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t k = max;
    /* Back off continuation bytes so the cut lands on a sequence start. */
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return k;
}

char *ai_strndup_cap(const char *s, size_t len, size_t max)
{
    size_t k = ai_utf8_cut(s, len, max);
    char *d = malloc(k + 1);
    if (!d)
        return NULL;
    memcpy(d, s, k);
    d[k] = '\0';
    return d;
}

char *ai_text_take(struct ai_text *t, bool *nomem)
{
    if (t->b.len == 0 && !t->truncated)
        return NULL;
    const char *s = (const char *)buf_head(&t->b);
    size_t len = t->b.len;
    size_t mark = strlen(AI_TRUNC_MARK);
    size_t keep = len;
    if (t->truncated)
        keep = ai_utf8_cut(s, len, t->b.max > mark ? t->b.max - mark : 0);
    char *out = malloc(keep + (t->truncated ? mark : 0) + 1);
    if (!out) {
        *nomem = true;
        return NULL;
    }
    if (keep)
        memcpy(out, s, keep);
    if (t->truncated)
        memcpy(out + keep, AI_TRUNC_MARK, mark);
    out[keep + (t->truncated ? mark : 0)] = '\0';
    return out;
}

/* ---- JSON ---- */

const char *ai_jstr(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *ai_jobj(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_object(v) ? v : NULL;
}

json_t *ai_jarr(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_array(v) ? v : NULL;
}

bool ai_jint(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

bool ai_jtrue(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_true(v);
}

json_t *ai_jget2(const json_t *obj, const char *k1, const char *k2)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *v = json_object_get(obj, k1);
    return v ? v : json_object_get(obj, k2);
}

static void text_add_dump(struct ai_text *t, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (s) {
        ai_text_add(t, s, strlen(s));
        free(s);
    } else {
        t->truncated = true;
    }
}

void ai_text_add_json(struct ai_text *t, const json_t *v)
{
    if (json_is_string(v)) {
        ai_text_add(t, json_string_value(v), json_string_length(v));
        return;
    }
    if (!json_is_array(v)) {
        if (v && !json_is_null(v))
            text_add_dump(t, v);
        return;
    }
    size_t i;
    const json_t *el;
    bool first = true;
    json_array_foreach(v, i, el)
    {
        const json_t *txt = json_is_string(el) ? el : json_object_get(el, "text");
        if (!json_is_string(txt))
            continue;
        if (!first)
            ai_text_add(t, "\n", 1);
        ai_text_add(t, json_string_value(txt), json_string_length(txt));
        first = false;
    }
}

/* ---- request building ---- */

static char *cap_dup(struct ai_req_build *b, const char *s)
{
    if (!s)
        return NULL;
    char *d = ai_strndup_cap(s, strlen(s), AI_MAX_ID);
    if (!d)
        b->nomem = true;
    return d;
}

void ai_req_set_model(struct ai_req_build *b, const char *model)
{
    if (!model)
        return;
    char *m = cap_dup(b, model);
    if (!m)
        return;
    free(b->req->model);
    b->req->model = m;
}

void ai_req_add_tool(struct ai_req_build *b, const char *name)
{
    struct ai_request *req = b->req;
    req->tools_count++;
    if (!name || req->n_tools >= AI_MAX_TOOLS)
        return;
    if (req->n_tools == b->cap_tools) {
        size_t ncap = b->cap_tools ? b->cap_tools * 2 : 8;
        char **nt = realloc(req->tools, ncap * sizeof(*nt));
        if (!nt) {
            b->nomem = true;
            return;
        }
        req->tools = nt;
        b->cap_tools = ncap;
    }
    char *d = cap_dup(b, name);
    if (d)
        req->tools[req->n_tools++] = d;
}

void ai_req_add_result(struct ai_req_build *b, const char *call_id, const char *name,
                       const json_t *content, bool is_error, bool last_turn)
{
    struct ai_request *req = b->req;
    if (req->n_tool_results >= AI_MAX_TOOL_RESULTS)
        return;
    if (req->n_tool_results == b->cap_results) {
        size_t ncap = b->cap_results ? b->cap_results * 2 : 8;
        struct ai_tool_result *nr = realloc(req->tool_results, ncap * sizeof(*nr));
        if (!nr) {
            b->nomem = true;
            return;
        }
        req->tool_results = nr;
        b->cap_results = ncap;
    }
    struct ai_tool_result *r = &req->tool_results[req->n_tool_results++];
    memset(r, 0, sizeof(*r));
    r->call_id = cap_dup(b, call_id);
    r->name = cap_dup(b, name);
    r->is_error = is_error;
    r->last_turn = last_turn;
    if (b->opts && b->opts->log_content && content) {
        struct ai_text t;
        ai_text_init(&t, b->preview_max);
        ai_text_add_json(&t, content);
        r->preview = ai_text_take(&t, &b->nomem);
        ai_text_free(&t);
    }
}

void ai_req_add_system(struct ai_req_build *b, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (b->system.b.len > 0)
        ai_text_add(&b->system, "\n", 1);
    ai_text_add_json(&b->system, v);
}

/* ---- response accumulators ---- */

void ai_fail(struct ai_response *r, enum ai_parse_status st, const char *fmt, ...)
{
    if (r->stopped)
        return;
    r->stopped = true;
    r->status = st;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(r->detail);
    r->detail = strdup(msg);
    if (!r->detail)
        r->nomem = true;
}

void ai_set(struct ai_response *r, char **dst, const char *s)
{
    if (!s)
        return;
    char *d = ai_strndup_cap(s, strlen(s), AI_MAX_ID);
    if (!d) {
        r->nomem = true;
        return;
    }
    free(*dst);
    *dst = d;
}

void ai_set_error(struct ai_response *r, const char *type, const char *message)
{
    ai_set(r, &r->error_type, type ? type : "error");
    if (message) {
        char *m = ai_strndup_cap(message, strlen(message), AI_MAX_PREVIEW);
        if (!m) {
            r->nomem = true;
            return;
        }
        free(r->error_message);
        r->error_message = m;
    }
}

void ai_token_seen(struct ai_response *r)
{
    if (r->first_token_ms == 0)
        r->first_token_ms = r->now_ms ? r->now_ms : 1;
}

void ai_add_text(struct ai_response *r, const char *s)
{
    if (!s || !*s)
        return;
    ai_token_seen(r);
    if (r->opts.log_content)
        ai_text_add(&r->text, s, strlen(s));
}

void ai_add_thinking(struct ai_response *r, const char *s)
{
    if (!s || !*s)
        return;
    ai_token_seen(r);
    if (r->opts.log_content)
        ai_text_add(&r->thinking, s, strlen(s));
}

struct ai_call *ai_call_get(struct ai_response *r, int64_t key, bool create)
{
    for (size_t i = 0; i < r->n_calls; i++)
        if (r->calls[i].key == key)
            return &r->calls[i];
    if (!create)
        return NULL;
    if (r->n_calls >= AI_MAX_TOOL_CALLS) {
        ai_fail(r, AI_PARSE_TRUNCATED, "more than %u tool calls", AI_MAX_TOOL_CALLS);
        return NULL;
    }
    if ((r->n_calls & (r->n_calls - 1)) == 0) { /* grow at 0, 1, 2, 4, 8, ... */
        size_t ncap = r->n_calls ? r->n_calls * 2 : 1;
        struct ai_call *nc = realloc(r->calls, ncap * sizeof(*nc));
        if (!nc) {
            r->nomem = true;
            return NULL;
        }
        r->calls = nc;
    }
    struct ai_call *c = &r->calls[r->n_calls++];
    memset(c, 0, sizeof(*c));
    c->key = key;
    ai_text_init(&c->args, r->opts.max_arguments);
    ai_token_seen(r);
    return c;
}

void ai_call_args(struct ai_response *r, struct ai_call *c, const char *s, size_t n)
{
    (void)r;
    if (n == 0)
        return; /* an empty fragment is not an argument (Anthropic sends "" first) */
    c->args_any = true;
    ai_text_add(&c->args, s, n);
}

void ai_call_args_json(struct ai_response *r, struct ai_call *c, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        ai_call_args(r, c, json_string_value(v), json_string_length(v));
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!s) {
        r->nomem = true;
        return;
    }
    ai_call_args(r, c, s, strlen(s));
    free(s);
}

void ai_usage_set(struct ai_response *r, const json_t *usage, bool merge)
{
    if (!json_is_object(usage))
        return;
    if (!merge || !r->usage) {
        json_t *copy = json_deep_copy(usage);
        if (!copy) {
            r->nomem = true;
            return;
        }
        json_decref(r->usage);
        r->usage = copy;
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)usage, k, v)
    {
        if (json_is_null(v))
            continue;
        json_t *copy = json_deep_copy(v);
        if (!copy || json_object_set_new(r->usage, k, copy) < 0)
            r->nomem = true;
    }
}
