/* Endpoint registry, request parsing entry point, names (interp.h). The
 * response state machine is in response.c. */
#include "ai/ai_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

/* ---- provider registry (compiled defaults, network.md section 12) ---- */

enum route_match {
    ROUTE_EXACT,  /* path equals `path` */
    ROUTE_GEMINI, /* `path` + <model> + ":generateContent" | ":streamGenerateContent" */
};

struct ai_route {
    const char *host;
    const char *provider;
    enum ai_protocol protocol;
    enum route_match match;
    const char *path;
};

static const struct ai_route ai_routes[] = {
    {"api.anthropic.com", "anthropic", AI_PROTO_ANTHROPIC_MESSAGES, ROUTE_EXACT, "/v1/messages"},
    {"api.openai.com", "openai", AI_PROTO_OPENAI_CHAT, ROUTE_EXACT, "/v1/chat/completions"},
    {"api.openai.com", "openai", AI_PROTO_OPENAI_RESPONSES, ROUTE_EXACT, "/v1/responses"},
    {"generativelanguage.googleapis.com", "google", AI_PROTO_GEMINI, ROUTE_GEMINI,
     "/v1beta/models/"},
    {"generativelanguage.googleapis.com", "google", AI_PROTO_GEMINI, ROUTE_GEMINI, "/v1/models/"},
};

static const char *const ai_proto_names[] = {
    [AI_PROTO_NONE] = NULL,
    [AI_PROTO_ANTHROPIC_MESSAGES] = "anthropic-messages",
    [AI_PROTO_OPENAI_CHAT] = "openai-chat",
    [AI_PROTO_OPENAI_RESPONSES] = "openai-responses",
    [AI_PROTO_GEMINI] = "gemini",
};

const char *ai_protocol_name(enum ai_protocol p)
{
    if ((size_t)p >= sizeof(ai_proto_names) / sizeof(ai_proto_names[0]))
        return NULL;
    return ai_proto_names[p];
}

const char *ai_host_provider(const char *host)
{
    if (!host)
        return NULL;
    for (size_t i = 0; i < sizeof(ai_routes) / sizeof(ai_routes[0]); i++)
        if (strcasecmp(host, ai_routes[i].host) == 0)
            return ai_routes[i].provider;
    return NULL;
}

static bool model_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

/* "<model>:generateContent" or "<model>:streamGenerateContent". */
static bool gemini_tail(const char *tail, struct ai_endpoint *out)
{
    const char *colon = strchr(tail, ':');
    if (!colon || colon == tail || (size_t)(colon - tail) >= sizeof(out->url_model))
        return false;
    for (const char *c = tail; c < colon; c++)
        if (!model_char_ok(*c))
            return false;
    if (strcmp(colon + 1, "generateContent") == 0)
        out->url_stream = false;
    else if (strcmp(colon + 1, "streamGenerateContent") == 0)
        out->url_stream = true;
    else
        return false;
    memcpy(out->url_model, tail, (size_t)(colon - tail));
    out->url_model[colon - tail] = '\0';
    return true;
}

/* alt=sse among the &-separated query parameters. */
static bool query_alt_sse(const char *q)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n == 7 && memcmp(q, "alt=sse", 7) == 0)
            return true;
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

bool ai_detect(const char *host, const char *method, const char *path, const char *query,
               struct ai_endpoint *out)
{
    memset(out, 0, sizeof(*out));
    if (!host || !method || !path || strcmp(method, "POST") != 0)
        return false;
    for (size_t i = 0; i < sizeof(ai_routes) / sizeof(ai_routes[0]); i++) {
        const struct ai_route *rt = &ai_routes[i];
        if (strcasecmp(host, rt->host) != 0)
            continue;
        if (rt->match == ROUTE_EXACT && strcmp(path, rt->path) != 0)
            continue;
        if (rt->match == ROUTE_GEMINI &&
            (!str_has_prefix(path, rt->path) || !gemini_tail(path + strlen(rt->path), out)))
            continue;
        out->protocol = rt->protocol;
        out->provider = rt->provider;
        out->protocol_name = ai_protocol_name(rt->protocol);
        out->url_sse = rt->protocol == AI_PROTO_GEMINI && query_alt_sse(query);
        return true;
    }
    memset(out, 0, sizeof(*out));
    return false;
}

const struct ai_proto_ops *ai_ops_for(enum ai_protocol p)
{
    switch (p) {
    case AI_PROTO_ANTHROPIC_MESSAGES:
        return &ai_anthropic_ops;
    case AI_PROTO_OPENAI_CHAT:
        return &ai_openai_chat_ops;
    case AI_PROTO_OPENAI_RESPONSES:
        return &ai_openai_responses_ops;
    case AI_PROTO_GEMINI:
        return &ai_gemini_ops;
    default:
        return NULL;
    }
}

/* ---- request ---- */

void ai_request_free(struct ai_request *req)
{
    if (!req)
        return;
    free(req->model);
    free(req->system_preview);
    for (size_t i = 0; i < req->n_tools; i++)
        free(req->tools[i]);
    free(req->tools);
    for (size_t i = 0; i < req->n_tool_results; i++) {
        free(req->tool_results[i].call_id);
        free(req->tool_results[i].name);
        free(req->tool_results[i].preview);
    }
    free(req->tool_results);
    free(req);
}

int ai_request_parse(const struct ai_endpoint *ep, const void *body, size_t len,
                     const struct ai_request_opts *opts, struct ai_request **out,
                     struct err **errp)
{
    *out = NULL;
    const struct ai_proto_ops *ops = ai_ops_for(ep->protocol);
    if (!ops)
        return err_status(errp, 400, "not an AI endpoint");
    if (len > AI_MAX_REQUEST_BODY)
        return err_status(errp, 413, "AI request body over %u MiB", AI_MAX_REQUEST_BODY >> 20);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return err_status(errp, 400, "%s request body is not a JSON object%s%s",
                          ep->protocol_name, root ? "" : ": ", root ? "" : jerr.text);
    }
    struct ai_request *req = calloc(1, sizeof(*req));
    if (!req) {
        json_decref(root);
        return err_set(errp, ENOMEM, "out of memory");
    }
    req->protocol = ep->protocol;
    req->max_tokens = AI_NULL;
    req->messages_count = AI_NULL;
    req->bytes = len;
    struct ai_req_build b = {.req = req, .opts = opts};
    b.preview_max = opts && opts->preview_max ? opts->preview_max : AI_MAX_PREVIEW;
    ai_text_init(&b.system, b.preview_max);
    if (ep->url_model[0])
        ai_req_set_model(&b, ep->url_model);
    if (ep->protocol == AI_PROTO_GEMINI)
        req->stream = ep->url_stream;
    ops->request(&b, root);
    req->system_preview = ai_text_take(&b.system, &b.nomem);
    ai_text_free(&b.system);
    json_decref(root);
    if (b.nomem) {
        ai_request_free(req);
        return err_set(errp, ENOMEM, "out of memory parsing an AI request");
    }
    *out = req;
    return 0;
}

/* ---- names ---- */

enum ai_tool_origin ai_tool_origin(const char *name)
{
    if (!name)
        return AI_ORIGIN_NATIVE;
    if (strncmp(name, "local__", 7) == 0)
        return AI_ORIGIN_LOCAL;
    if (strstr(name, "__"))
        return AI_ORIGIN_MCP_PROXY;
    return AI_ORIGIN_NATIVE;
}

const char *ai_tool_origin_name(enum ai_tool_origin o)
{
    switch (o) {
    case AI_ORIGIN_LOCAL:
        return "local";
    case AI_ORIGIN_MCP_PROXY:
        return "mcp_proxy";
    default:
        return "native";
    }
}

const char *ai_parse_status_name(enum ai_parse_status s)
{
    switch (s) {
    case AI_PARSE_TRUNCATED:
        return "truncated";
    case AI_PARSE_ERROR:
        return "error";
    case AI_PARSE_USAGE_MISSING:
        return "usage_missing";
    default:
        return "ok";
    }
}
