/* AI traffic interpreters (network.md section 12; docs/ai-interpreters.md).
 *
 * The MITM proxy uses this module per request on an AI endpoint:
 *
 *   struct ai_endpoint ep;
 *   if (ai_detect(host, method, path, query, &ep)) {
 *       // request body buffered (<= AI_MAX_REQUEST_BODY, else 413)
 *       struct ai_request *req = NULL;
 *       if (ai_request_parse(&ep, body, len, &ropts, &req, &e) < 0)
 *           log it; req stays NULL (the request is still forwarded)
 *       ... model-scope policy from req ...
 *       struct ai_response *r = ai_response_new(&ep, req, &opts, &e);
 *       // response head arrived: ai_response_set_head(r, content_type, encoding)
 *       // each body chunk, *after* it was forwarded to the guest:
 *       ai_response_feed(r, chunk, n, now_ms);
 *       // end of body (or upstream error):
 *       struct ai_result *res;
 *       ai_response_finish(r, status, now_ms, &res, &e);
 *       ... model_calls / tool_calls rows from res (mapping in the doc) ...
 *       ai_result_free(res); ai_response_free(r); ai_request_free(req);
 *   }
 *
 * Interpreters only observe: they never alter, hold or delay bytes. Every
 * buffer is capped (section 14); past a cap or on malformed input the
 * interpreter stops and records parse_status, and feeding continues to be
 * accepted (and ignored). Objects are not thread-safe; one per request. */
#ifndef CAPSEM_AI_INTERP_H
#define CAPSEM_AI_INTERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct ai_prices; /* ai/prices.h */

/* ---- limits (network.md section 14) ---- */

#define AI_MAX_REQUEST_BODY  (64u << 20) /* request copy; over -> the proxy answers 413 */
#define AI_MAX_RESPONSE_DOC  (64u << 20) /* non-streaming response copy */
#define AI_MAX_PREVIEW       (16u << 10) /* text / thinking / system previews */
#define AI_MAX_ARGUMENTS     (64u << 10) /* tool call arguments */
#define AI_MAX_TOOL_CALLS    256u        /* per response; more -> truncated */
#define AI_MAX_TOOL_RESULTS  1024u       /* reported per request; more are dropped */
#define AI_MAX_TOOLS         512u        /* declared tool names kept per request */
#define AI_MAX_ID            256u        /* ids, names, model, stop reason (bytes) */
#define AI_MAX_USAGE_DETAILS (64u << 10) /* usage_details JSON */

/* Marks a cut text (same mark as the telemetry store). */
#define AI_TRUNC_MARK "\xe2\x80\xa6[truncated]"

/* Integer columns that may be NULL use this value for NULL. */
#define AI_NULL INT64_C(-1)

/* ---- endpoint detection ---- */

enum ai_protocol {
    AI_PROTO_NONE = 0,
    AI_PROTO_ANTHROPIC_MESSAGES,
    AI_PROTO_OPENAI_CHAT,
    AI_PROTO_OPENAI_RESPONSES,
    AI_PROTO_GEMINI,
};

/* How the response body is framed. */
enum ai_framing {
    AI_FRAMING_JSON = 0, /* one JSON document (non-streaming) */
    AI_FRAMING_SSE,      /* text/event-stream */
    AI_FRAMING_JSON_ARRAY, /* Gemini streamGenerateContent without alt=sse */
};

struct ai_endpoint {
    enum ai_protocol protocol;
    const char *provider;      /* "anthropic" | "openai" | "google"; static */
    const char *protocol_name; /* model_calls.protocol; static */
    bool url_stream;           /* the URL says streaming (Gemini :streamGenerateContent) */
    bool url_sse;              /* alt=sse in the query */
    char url_model[AI_MAX_ID]; /* Gemini: the model named in the path ("" otherwise) */
};

/* True when (host, method, path) is an interpreted endpoint; fills *out.
 * host: lowercase or not, no port; path: the normalised path without the
 * query; query: raw query without '?' (NULL = none). Registry: one table in
 * interp.c (api.anthropic.com, api.openai.com, generativelanguage.googleapis.com). */
bool ai_detect(const char *host, const char *method, const char *path, const char *query,
               struct ai_endpoint *out);

/* Provider owning a host in the registry ("anthropic", ...), or NULL. */
const char *ai_host_provider(const char *host);

/* "anthropic-messages", ... ; NULL for AI_PROTO_NONE. */
const char *ai_protocol_name(enum ai_protocol p);

/* ---- request ---- */

struct ai_request_opts {
    size_t preview_max; /* system prompt preview cap; 0 = AI_MAX_PREVIEW */
    bool log_content;   /* also keep tool result previews */
};

/* A tool result found in the request: the proxy marks the tool_calls row
 * with this call id `responded` (or `error` when is_error). */
struct ai_tool_result {
    char *call_id;  /* tool_use_id / tool_call_id / call_id / functionResponse.id; may be NULL */
    char *name;     /* Gemini functionResponse.name; NULL elsewhere */
    char *preview;  /* result content, <= AI_MAX_PREVIEW, only with log_content; else NULL */
    bool is_error;  /* Anthropic is_error: true */
    bool last_turn; /* after the last assistant/model message (new in this request) */
};

struct ai_request {
    enum ai_protocol protocol;
    char *model;           /* request body (Gemini: the URL); NULL when absent */
    bool stream;           /* the response will stream */
    int64_t max_tokens;    /* AI_NULL when absent */
    char *system_preview;  /* system prompt text, capped with AI_TRUNC_MARK; NULL if none */
    int64_t messages_count;  /* messages / input items / contents; AI_NULL when absent */
    size_t tools_count;    /* declared tools (all, even past AI_MAX_TOOLS) */
    size_t n_tools;        /* names kept */
    char **tools;          /* declared tool names */
    size_t n_tool_results;
    struct ai_tool_result *tool_results;
    uint64_t bytes;        /* request body size */
};

/* Parses a buffered request body (len <= AI_MAX_REQUEST_BODY). Returns 0 and
 * a new *out (free with ai_request_free), or -1 with *errp (status 400) when
 * the body is not a JSON object or is over the cap, (status 0) on ENOMEM.
 * Fields of the wrong type are treated as absent. opts may be NULL. */
int ai_request_parse(const struct ai_endpoint *ep, const void *body, size_t len,
                     const struct ai_request_opts *opts, struct ai_request **out,
                     struct err **errp);
void ai_request_free(struct ai_request *req);

/* ---- response ---- */

struct ai_response_opts {
    bool log_content;        /* keep text / thinking previews */
    uint64_t request_start_ms; /* when the request was sent upstream; 0 = unknown (no ttft) */
    const struct ai_prices *prices; /* borrowed until ai_response_finish(); NULL = no cost */
    /* Tests: caps; 0 = section 14 defaults. */
    size_t max_sse_line, max_sse_event, max_element, max_doc, max_preview, max_arguments;
};

enum ai_parse_status {
    AI_PARSE_OK = 0,
    AI_PARSE_TRUNCATED,     /* a cap was reached, or the body ended before its terminal event */
    AI_PARSE_ERROR,         /* malformed framing or JSON, or an encoded body */
    AI_PARSE_USAGE_MISSING, /* parsed, but the provider reported no usage */
};

enum ai_tool_origin { AI_ORIGIN_NATIVE = 0, AI_ORIGIN_MCP_PROXY, AI_ORIGIN_LOCAL };

struct ai_tool_call {
    uint32_t index;   /* tool_calls.call_index: order in the response, from 0 */
    char *id;         /* call id the next request answers; NULL when the provider gives none */
    char *name;       /* NULL when never named (truncated stream) */
    char *arguments;  /* JSON text as sent, capped with AI_TRUNC_MARK; "" when none */
    bool arguments_truncated;
    enum ai_tool_origin origin;
};

struct ai_result {
    enum ai_protocol protocol;
    const char *provider;      /* static */
    const char *protocol_name; /* static */
    bool stream;               /* SSE or JSON-array body */
    int status_code;
    char *model;       /* response > request > URL; NULL if none */
    char *message_id;  /* NULL if none */
    char *stop_reason; /* NULL if none; "error" after a provider error event */
    /* Tokens (section 12 rules); AI_NULL = NULL. */
    int64_t input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, thinking_tokens;
    char *text;     /* preview, only with log_content; NULL if none */
    char *thinking; /* preview, only with log_content; NULL if none */
    int64_t ttft_ms;     /* first text/thinking/tool delta - request_start_ms; AI_NULL */
    int64_t duration_ms; /* finish now_ms - request_start_ms; AI_NULL */
    char *usage_details; /* the provider's usage object, compact JSON; NULL if none */
    enum ai_parse_status parse_status;
    char *parse_detail;  /* why parse_status is not ok (for logs); NULL when ok */
    char *error_type;    /* provider error (event or error body); NULL if none */
    char *error_message;
    uint64_t request_bytes, response_bytes;
    size_t n_tool_calls;
    struct ai_tool_call *tool_calls;
    bool has_cost;
    double cost_usd;                 /* valid when has_cost */
    const char *price_table_version; /* borrowed from opts.prices; NULL without prices */
};

/* req may be NULL (unparsed request); it is not retained. opts may be NULL.
 * NULL with *errp only on ENOMEM. */
struct ai_response *ai_response_new(const struct ai_endpoint *ep, const struct ai_request *req,
                                    const struct ai_response_opts *opts, struct err **errp);

/* Response head: Content-Type picks SSE (text/event-stream); otherwise the
 * body is sniffed (`[` -> JSON array, `{` -> JSON document, else SSE when a
 * stream was asked for). A Content-Encoding other than identity makes the
 * body unreadable (parse_status error). Either may be NULL. Optional; call
 * before the first feed. */
void ai_response_set_head(struct ai_response *r, const char *content_type,
                          const char *content_encoding);

/* Offers len body bytes (borrowed, not retained) received at now_ms. */
void ai_response_feed(struct ai_response *r, const void *bytes, size_t len, uint64_t now_ms);

/* Ends the body: status_code is the upstream status (0 if none arrived).
 * Returns 0 and a new *out (free with ai_result_free), -1 with *errp on
 * ENOMEM. The response may only be freed afterwards. */
int ai_response_finish(struct ai_response *r, int status_code, uint64_t now_ms,
                       struct ai_result **out, struct err **errp);
void ai_response_free(struct ai_response *r);
void ai_result_free(struct ai_result *res);

/* ---- small helpers ---- */

/* local__* -> local; other names containing "__" -> mcp_proxy; else native. */
enum ai_tool_origin ai_tool_origin(const char *name);
const char *ai_tool_origin_name(enum ai_tool_origin o); /* "native", ... */
const char *ai_parse_status_name(enum ai_parse_status s); /* "ok", ... */

#endif
