/* Gemini interpreter over hand-written fixtures in the shape the API sends:
 * SSE (alt=sse), the streamed JSON array, and one document
 * (src/lib/ai/gemini.c). */
#include "test_ai_common.h"

#define HOST "generativelanguage.googleapis.com"
#define STREAM_PATH "/v1beta/models/gemini-2.5-flash:streamGenerateContent"

static const char req[] = "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]}]}";

/* Three GenerateContentResponse chunks: thought, text, then a function call
 * with the finish reason and the final usage. */
#define C1                                                                                         \
    "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"**Considering** the request\","   \
    "\"thought\": true}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {"               \
    "\"promptTokenCount\": 1500,\"totalTokenCount\": 1500,\"cachedContentTokenCount\": 1024},"   \
    "\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Jz6oaM3yJ4OcxN8P9Mbz6AQ\"}"
#define C2                                                                                         \
    "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Sure \\u2014 checking \"}],"       \
    "\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1500,"       \
    "\"totalTokenCount\": 1500,\"cachedContentTokenCount\": 1024},\"modelVersion\": "           \
    "\"gemini-2.5-flash\",\"responseId\": \"Jz6oaM3yJ4OcxN8P9Mbz6AQ\"}"
#define C3                                                                                         \
    "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"now.\"},{\"functionCall\": {"     \
    "\"name\": \"get_weather\",\"args\": {\"city\": \"Oslo\",\"units\": \"metric\"}},"          \
    "\"thoughtSignature\": \"CiwB0e2Kb...\"},{\"functionCall\": {\"name\": "                     \
    "\"local__fetch_http\",\"args\": {\"url\": \"https://yr.no\"}}}],\"role\": \"model\"},"     \
    "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 1500,"  \
    "\"candidatesTokenCount\": 40,\"totalTokenCount\": 1660,\"cachedContentTokenCount\": 1024,"  \
    "\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 1500}],"                  \
    "\"thoughtsTokenCount\": 120},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": "      \
    "\"Jz6oaM3yJ4OcxN8P9Mbz6AQ\"}"

static const char sse_body[] = "data: " C1 "\r\n\r\ndata: " C2 "\r\n\r\ndata: " C3 "\r\n\r\n";
static const char array_body[] = "[" C1 "\n,\r\n" C2 "\n,\r\n" C3 "\n]";

static void check_full(const struct ai_result *r, const char *what)
{
    ok(r != NULL, "%s: result", what);
    if (!r)
        return;
    is_str(t_status(r), "ok", "%s: parse ok", what);
    is_str(r->provider, "google", "%s: provider", what);
    is_str(r->protocol_name, "gemini", "%s: protocol", what);
    is_str(r->model, "gemini-2.5-flash", "%s: modelVersion", what);
    is_str(r->message_id, "Jz6oaM3yJ4OcxN8P9Mbz6AQ", "%s: responseId", what);
    is_str(r->stop_reason, "STOP", "%s: finishReason", what);
    is_str(r->text, "Sure \xe2\x80\x94 checking now.", "%s: text", what);
    is_str(r->thinking, "**Considering** the request", "%s: thought parts", what);
    is_int(r->input_tokens, 476, "%s: input = prompt - cached", what);
    is_int(r->cache_read_tokens, 1024, "%s: cached", what);
    is_int(r->cache_write_tokens, AI_NULL, "%s: no cache write", what);
    is_int(r->output_tokens, 160, "%s: output = candidates + thoughts", what);
    is_int(r->thinking_tokens, 120, "%s: thoughts", what);
    is_int(r->n_tool_calls, 2, "%s: two function calls", what);
    if (r->n_tool_calls == 2) {
        is_str(r->tool_calls[0].name, "get_weather", "%s: call 0", what);
        is_str(r->tool_calls[0].arguments, "{\"city\":\"Oslo\",\"units\":\"metric\"}",
               "%s: call 0 args", what);
        ok(r->tool_calls[0].id == NULL, "%s: no call id from Gemini", what);
        is_int(r->tool_calls[1].origin, AI_ORIGIN_LOCAL, "%s: call 1 local", what);
        is_int(r->tool_calls[1].index, 1, "%s: call 1 index", what);
    }
    ok(r->usage_details && strstr(r->usage_details, "\"thoughtsTokenCount\":120"),
       "%s: last usageMetadata kept", what);
}

static void test_streams(void)
{
    struct t_call c = {.host = HOST,
                       .path = STREAM_PATH,
                       .query = "alt=sse",
                       .req = req,
                       .content_type = "text/event-stream",
                       .body = sse_body,
                       .log_content = true};
    struct ai_result *r = t_run(&c);
    check_full(r, "alt=sse");
    ok(r && r->stream, "alt=sse is a stream");
    is_int(r ? r->ttft_ms : -2, 100, "ttft");
    ai_result_free(r);
    t_all_splits(c, "gemini SSE");

    c.query = NULL;
    c.content_type = "application/json; charset=UTF-8";
    c.body = array_body;
    r = t_run(&c);
    check_full(r, "JSON array");
    ai_result_free(r);
    t_all_splits(c, "gemini JSON array");

    /* no head: sniffed from the first byte */
    c.content_type = NULL;
    r = t_run(&c);
    is_str(t_status(r), "ok", "array sniffed without Content-Type");
    ai_result_free(r);
    c.body = sse_body;
    r = t_run(&c);
    is_str(t_status(r), "ok", "SSE sniffed without Content-Type");
    ai_result_free(r);

    /* array not closed: truncated even though finishReason arrived */
    c.body = array_body;
    c.len = strlen(array_body) - 1;
    c.content_type = "application/json";
    r = t_run(&c);
    is_str(t_status(r), "truncated", "array without ']': truncated");
    ai_result_free(r);
    /* SSE cut before the finishReason chunk */
    c.body = sse_body;
    c.len = strlen("data: " C1 "\r\n\r\ndata: " C2 "\r\n\r\n");
    c.content_type = "text/event-stream";
    r = t_run(&c);
    is_str(t_status(r), "truncated", "SSE without finishReason: truncated");
    is_int(r ? r->output_tokens : -2, 0, "partial usage: zero counts omitted by Gemini");
    ai_result_free(r);
}

static void test_document(void)
{
    struct t_call c = {.host = HOST,
                       .path = "/v1beta/models/gemini-2.5-pro:generateContent",
                       .req = req,
                       .content_type = "application/json",
                       .body = C3,
                       .log_content = true};
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "ok", "document ok");
    ok(r && !r->stream, "not a stream");
    is_str(r ? r->text : NULL, "now.", "document text");
    is_int(r ? r->output_tokens : -2, 160, "document output");
    ai_result_free(r);
    t_all_splits(c, "gemini document");

    /* model from the URL when the response names none */
    c.body = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":"
             "\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":3,"
             "\"candidatesTokenCount\":7}}";
    r = t_run(&c);
    is_str(r ? r->model : NULL, "gemini-2.5-pro", "model from the URL");
    is_str(r ? r->stop_reason : NULL, "MAX_TOKENS", "MAX_TOKENS");
    ok(r && r->thinking_tokens == 0 && r->cache_read_tokens == 0 && r->output_tokens == 7,
       "omitted counts are 0");
    ai_result_free(r);

    /* blocked prompt */
    c.body = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{"
             "\"promptTokenCount\":9,\"totalTokenCount\":9},\"modelVersion\":\"gemini-2.5-pro\"}";
    r = t_run(&c);
    is_str(t_status(r), "ok", "blocked prompt parsed");
    is_str(r ? r->stop_reason : NULL, "SAFETY", "blockReason as stop reason");
    ai_result_free(r);

    /* error body, and an error element in a streamed array */
    c.status = 429;
    c.body = "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check "
             "quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}";
    r = t_run(&c);
    is_str(r ? r->error_type : NULL, "RESOURCE_EXHAUSTED", "error status");
    is_str(t_status(r), "ok", "error body ok");
    ai_result_free(r);
    c.path = STREAM_PATH;
    c.status = 200;
    c.body = "[{\"error\": {\"code\": 503,\"message\": \"The model is overloaded.\",\"status\": "
             "\"UNAVAILABLE\"}}]";
    r = t_run(&c);
    is_str(r ? r->error_type : NULL, "UNAVAILABLE", "error element");
    is_str(r ? r->stop_reason : NULL, "error", "error element stop reason");
    ai_result_free(r);

    /* malformed element */
    c.body = "[" C1 ",{\"candidates\": [}]";
    r = t_run(&c);
    is_str(t_status(r), "error", "malformed element: error");
    is_str(r ? r->message_id : NULL, "Jz6oaM3yJ4OcxN8P9Mbz6AQ", "earlier elements kept");
    ai_result_free(r);
    c.body = "[" C1 ",,]";
    r = t_run(&c);
    is_str(t_status(r), "error", "array syntax error: error");
    ai_result_free(r);
}

static void test_limits(void)
{
    size_t e1 = strlen(C1);
    struct ai_response_opts o = {.max_element = e1};
    struct t_call c = {.host = HOST, .path = STREAM_PATH, .req = req,
                       .content_type = "application/json", .body = "[" C1 "]", .opts = &o};
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "ok", "element of exactly max_element accepted (closed array)");
    is_str(r ? r->message_id : NULL, "Jz6oaM3yJ4OcxN8P9Mbz6AQ", "and parsed");
    ai_result_free(r);
    o.max_element = e1 - 1;
    r = t_run(&c);
    is_str(t_status(r), "truncated", "element of max_element + 1: truncated");
    ok(r && r->parse_detail && strstr(r->parse_detail, "too large"), "by the element cap");
    ok(r && r->message_id == NULL, "the oversized element was not parsed");
    ai_result_free(r);

    struct ai_response_opts os = {.max_sse_event = e1};
    c = (struct t_call){.host = HOST, .path = STREAM_PATH, .query = "alt=sse", .req = req,
                        .content_type = "text/event-stream", .opts = &os,
                        .body = "data: " C1 "\n\n"};
    r = t_run(&c);
    is_str(r ? r->message_id : NULL, "Jz6oaM3yJ4OcxN8P9Mbz6AQ", "SSE event of exactly max_event");
    ai_result_free(r);
    os.max_sse_event = e1 - 1;
    r = t_run(&c);
    ok(r && r->parse_status == AI_PARSE_TRUNCATED && r->message_id == NULL,
       "SSE event of max_event + 1: truncated, not parsed");
    ai_result_free(r);

    /* more tool calls than AI_MAX_TOOL_CALLS */
    size_t cap = 64 + 40 * (AI_MAX_TOOL_CALLS + 2);
    char *body = malloc(cap);
    size_t k = (size_t)snprintf(body, cap, "{\"candidates\":[{\"content\":{\"parts\":[");
    for (unsigned i = 0; i < AI_MAX_TOOL_CALLS + 1; i++)
        k += (size_t)snprintf(body + k, cap - k, "%s{\"functionCall\":{\"name\":\"f%u\"}}",
                              i ? "," : "", i);
    snprintf(body + k, cap - k, "]}}]}");
    c = (struct t_call){.host = HOST, .path = "/v1beta/models/m:generateContent", .req = req,
                        .content_type = "application/json", .body = body};
    r = t_run(&c);
    ok(r && r->n_tool_calls == AI_MAX_TOOL_CALLS && r->parse_status == AI_PARSE_TRUNCATED,
       "tool calls capped at %u, truncated", AI_MAX_TOOL_CALLS);
    ai_result_free(r);
    free(body);
}

int main(void)
{
    test_streams();
    test_document();
    test_limits();
    return done_testing();
}
