/* Turning a finished response into a struct ai_result (interp.h). */
#include "ai/ai_int.h"
#include "ai/prices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void ai_result_free(struct ai_result *res)
{
    if (!res)
        return;
    free(res->model);
    free(res->message_id);
    free(res->stop_reason);
    free(res->text);
    free(res->thinking);
    free(res->usage_details);
    free(res->parse_detail);
    free(res->error_type);
    free(res->error_message);
    for (size_t i = 0; i < res->n_tool_calls; i++) {
        free(res->tool_calls[i].id);
        free(res->tool_calls[i].name);
        free(res->tool_calls[i].arguments);
    }
    free(res->tool_calls);
    free(res);
}

static int64_t ms_since(uint64_t start, uint64_t t)
{
    if (start == 0 || t == 0 || t < start)
        return AI_NULL;
    return (int64_t)(t - start);
}

static char *pick_model(struct ai_response *r)
{
    if (r->model)
        return steal_pointer(&r->model);
    if (r->req_model)
        return steal_pointer(&r->req_model);
    return r->ep.url_model[0] ? strdup(r->ep.url_model) : NULL;
}

static int build_calls(struct ai_response *r, struct ai_result *res, bool *nomem)
{
    if (r->n_calls == 0)
        return 0;
    res->tool_calls = calloc(r->n_calls, sizeof(*res->tool_calls));
    if (!res->tool_calls)
        return -1;
    for (size_t i = 0; i < r->n_calls; i++) {
        struct ai_call *c = &r->calls[i];
        struct ai_tool_call *t = &res->tool_calls[i];
        res->n_tool_calls++;
        t->index = (uint32_t)i;
        t->id = c->id;
        t->name = c->name;
        c->id = c->name = NULL;
        t->origin = ai_tool_origin(t->name);
        t->arguments_truncated = c->args.truncated;
        if (c->args_any)
            t->arguments = ai_text_take(&c->args, nomem);
        else if (c->args_default)
            t->arguments = strdup(c->args_default);
        if (!t->arguments && !(t->arguments = strdup("")))
            return -1;
    }
    return 0;
}

static void tokens_null(struct ai_result *res)
{
    res->input_tokens = res->output_tokens = AI_NULL;
    res->cache_read_tokens = res->cache_write_tokens = res->thinking_tokens = AI_NULL;
}

static void build_usage(struct ai_response *r, struct ai_result *res, bool *nomem)
{
    tokens_null(res);
    if (!r->usage)
        return;
    r->ops->tokens(r->usage, res);
    char *s = json_dumps(r->usage, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) {
        *nomem = true;
        return;
    }
    if (strlen(s) > AI_MAX_USAGE_DETAILS) {
        free(s); /* a provider's usage object is small; a huge one is not kept */
        return;
    }
    res->usage_details = s;
}

static void build_cost(struct ai_response *r, struct ai_result *res)
{
    const struct ai_prices *p = r->opts.prices;
    if (!p)
        return;
    res->price_table_version = ai_prices_version(p);
    double usd;
    if (ai_prices_cost(p, res->provider, res->model, res->input_tokens, res->cache_read_tokens,
                       res->cache_write_tokens, res->output_tokens, &usd)) {
        res->has_cost = true;
        res->cost_usd = usd;
    }
}

int ai_result_build(struct ai_response *r, int status_code, uint64_t now_ms,
                    struct ai_result **out, struct err **errp)
{
    struct ai_result *res = calloc(1, sizeof(*res));
    if (!res)
        return err_set(errp, ENOMEM, "out of memory");
    bool nomem = false;
    res->protocol = r->ep.protocol;
    res->provider = r->ep.provider;
    res->protocol_name = r->ep.protocol_name;
    res->stream = r->stream_known ? r->stream_expected
                                  : (r->mode == AI_MODE_SSE || r->mode == AI_MODE_ARRAY);
    res->status_code = status_code;
    res->model = pick_model(r);
    res->message_id = steal_pointer(&r->message_id);
    res->stop_reason = steal_pointer(&r->stop_reason);
    res->error_type = steal_pointer(&r->error_type);
    res->error_message = steal_pointer(&r->error_message);
    res->parse_status = r->status;
    res->parse_detail = steal_pointer(&r->detail);
    res->text = ai_text_take(&r->text, &nomem);
    res->thinking = ai_text_take(&r->thinking, &nomem);
    res->ttft_ms = ms_since(r->opts.request_start_ms, r->first_token_ms);
    res->duration_ms = ms_since(r->opts.request_start_ms, now_ms);
    res->request_bytes = r->request_bytes;
    res->response_bytes = r->bytes;
    build_usage(r, res, &nomem);
    if (build_calls(r, res, &nomem) < 0)
        nomem = true;
    build_cost(r, res);
    if (nomem) {
        ai_result_free(res);
        return err_set(errp, ENOMEM, "out of memory building an AI result");
    }
    *out = res;
    return 0;
}
