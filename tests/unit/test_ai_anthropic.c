/* Anthropic Messages interpreter over hand-written fixtures in the shape the
 * API sends (src/lib/ai/anthropic.c). */
#include "test_ai_common.h"

#define HOST "api.anthropic.com"
#define PATH "/v1/messages"

static const char req_stream[] =
    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8192,\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"weather in Paris and issues?\"}]}";

/* Thinking, text, then three tool calls (native, MCP-proxied, local). */
static const char stream_tools[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","
    "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\","
    "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":2048,\"output_tokens\":2,"
    "\"service_tier\":\"standard\"}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
    "\"thinking\":\"\",\"signature\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"The user wants the weather\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\" and open issues.\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"signature_delta\",\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3h\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"I'll check both \\u2014 \"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"one moment.\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Pa\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"ris\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01B\",\"name\":\"github__list_issues\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"state\\\":\\\"open\\\"}\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":3}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":4,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_01C\",\"name\":\"local__snapshot\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":4,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":4}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":189}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static struct t_call base_stream(void)
{
    return (struct t_call){.host = HOST,
                           .path = PATH,
                           .req = req_stream,
                           .content_type = "text/event-stream; charset=utf-8",
                           .body = stream_tools,
                           .log_content = true};
}

static void test_stream_tools(void)
{
    struct t_call c = base_stream();
    struct ai_result *r = t_run(&c);
    ok(r != NULL, "streamed result");
    if (!r)
        return;
    is_str(t_status(r), "ok", "parse_status ok");
    ok(r->stream, "stream");
    is_str(r->provider, "anthropic", "provider");
    is_str(r->protocol_name, "anthropic-messages", "protocol");
    is_str(r->model, "claude-sonnet-4-5-20250929", "model from the response");
    is_str(r->message_id, "msg_01XFDUDYJgAACzvnptvVoYEL", "message id");
    is_str(r->stop_reason, "tool_use", "stop reason");
    is_int(r->input_tokens, 472, "input tokens");
    is_int(r->cache_read_tokens, 2048, "cache read");
    is_int(r->cache_write_tokens, 0, "cache write");
    is_int(r->output_tokens, 189, "output tokens from message_delta");
    is_int(r->thinking_tokens, AI_NULL, "thinking tokens not reported by Anthropic");
    is_str(r->text, "I'll check both \xe2\x80\x94 one moment.", "text preview");
    is_str(r->thinking, "The user wants the weather and open issues.", "thinking preview");
    is_int(r->n_tool_calls, 3, "three tool calls");
    if (r->n_tool_calls == 3) {
        struct ai_tool_call *t = r->tool_calls;
        ok(t[0].index == 0 && t[1].index == 1 && t[2].index == 2, "call indexes 0, 1, 2");
        is_str(t[0].id, "toolu_01A09q90qw90lq917835lq9", "call 0 id");
        is_str(t[0].name, "get_weather", "call 0 name");
        is_str(t[0].arguments, "{\"city\": \"Paris\"}", "call 0 arguments joined");
        is_int(t[0].origin, AI_ORIGIN_NATIVE, "call 0 native");
        is_str(t[1].arguments, "{\"state\":\"open\"}", "call 1 arguments");
        is_int(t[1].origin, AI_ORIGIN_MCP_PROXY, "call 1 mcp_proxy");
        is_str(t[2].name, "local__snapshot", "call 2 name");
        is_str(t[2].arguments, "{}", "call 2 without input: {}");
        is_int(t[2].origin, AI_ORIGIN_LOCAL, "call 2 local");
    }
    is_str(r->usage_details,
           "{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":"
           "2048,\"output_tokens\":189,\"service_tier\":\"standard\"}",
           "usage_details: message_start usage updated by message_delta");
    is_int(r->ttft_ms, 100, "ttft: first delta at 1000, request at 900");
    is_int(r->duration_ms, 150, "duration to finish");
    is_int(r->response_bytes, strlen(stream_tools), "response bytes");
    is_int(r->request_bytes, strlen(req_stream), "request bytes");
    ai_result_free(r);

    c.log_content = false;
    r = t_run(&c);
    ok(r && !r->text && !r->thinking && r->n_tool_calls == 3,
       "no previews without log_content; tool calls kept");
    ai_result_free(r);
    t_all_splits(base_stream(), "anthropic stream");
}

static char *relf(const char *s, const char *term)
{
    size_t n = strlen(s), tl = strlen(term), k = 0;
    char *o = malloc(n * tl + 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            memcpy(o + k, term, tl);
            k += tl;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    return o;
}

static void test_line_endings(void)
{
    struct t_call c = base_stream();
    struct ai_result *lf = t_run(&c);
    const char *terms[] = {"\r\n", "\r"};
    for (int i = 0; i < 2; i++) {
        char *body = relf(stream_tools, terms[i]);
        c.body = body;
        struct ai_result *r = t_run(&c);
        ok(r && r->parse_status == AI_PARSE_OK && r->n_tool_calls == 3 &&
               t_streq(r->text, lf->text) && r->output_tokens == 189,
           "%s line endings give the same result", i ? "CR" : "CRLF");
        ai_result_free(r);
        c.chunk = 1;
        r = t_run(&c);
        ok(r && r->parse_status == AI_PARSE_OK && r->n_tool_calls == 3,
           "%s line endings, 1 byte at a time", i ? "CR" : "CRLF");
        ai_result_free(r);
        c.chunk = 0;
        free(body);
    }
    ai_result_free(lf);
}

/* Fine-grained tool streaming: fragments of two blocks interleaved. */
static void test_interleaved(void)
{
    const char *body =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":"
        "\"claude-opus-4-1-20250805\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"tu_a\",\"name\":\"a\",\"input\":{}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"tu_b\",\"name\":\"b\",\"input\":{}}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"[1,\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"x\\\":\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"2]\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n"
        "event: message_delta\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{"
        "\"input_tokens\":12,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":"
        "null,\"output_tokens\":40}}\n\n"
        "event: message_stop\n"
        "data: {\"type\":\"message_stop\"}\n\n";
    struct t_call c = {.host = HOST, .path = PATH, .req = req_stream, .body = body};
    struct ai_result *r = t_run(&c);
    ok(r && r->n_tool_calls == 2, "two interleaved calls");
    if (r && r->n_tool_calls == 2) {
        is_str(r->tool_calls[0].arguments, "{\"x\":1}", "call a fragments");
        is_str(r->tool_calls[1].arguments, "[1,2]", "call b fragments");
    }
    is_int(r ? r->input_tokens : -2, 12, "message_delta input_tokens replaces message_start");
    is_int(r ? r->cache_write_tokens : -2, 300, "cache_creation_input_tokens = cache write");
    is_int(r ? r->cache_read_tokens : -2, 0, "null member ignored, absent read = 0");
    is_str(r ? r->text : "", NULL, "no text, no preview");
    ai_result_free(r);
    t_all_splits(c, "interleaved tool fragments");
}

static void test_nonstream(void)
{
    const char *body =
        "{\"id\":\"msg_01NS\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
        "\"claude-haiku-4-5-20251001\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
        "\"hmm\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"Running it.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_NS\",\"name\":\"Bash\",\"input\":{\"command\":"
        "\"ls -la\",\"timeout\":5}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
        "\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":1500,"
        "\"cache_read_input_tokens\":0,\"cache_creation\":{\"ephemeral_5m_input_tokens\":1500,"
        "\"ephemeral_1h_input_tokens\":0},\"output_tokens\":75}}";
    struct t_call c = {.host = HOST,
                       .path = PATH,
                       .req = "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100,\"messages\":[]}",
                       .content_type = "application/json",
                       .body = body,
                       .log_content = true};
    struct ai_result *r = t_run(&c);
    ok(r && r->parse_status == AI_PARSE_OK, "non-streaming ok");
    if (!r)
        return;
    ok(!r->stream, "not a stream");
    is_str(r->model, "claude-haiku-4-5-20251001", "model");
    is_str(r->stop_reason, "tool_use", "stop reason");
    is_str(r->text, "Running it.", "text");
    is_str(r->thinking, "hmm", "thinking");
    is_int(r->input_tokens, 20, "input");
    is_int(r->cache_write_tokens, 1500, "cache write");
    is_int(r->output_tokens, 75, "output");
    ok(r->n_tool_calls == 1 && strcmp(r->tool_calls[0].arguments,
                                      "{\"command\":\"ls -la\",\"timeout\":5}") == 0,
       "tool input serialised in order");
    is_int(r->ttft_ms, 100, "ttft = first byte for a document");
    ai_result_free(r);
    t_all_splits(c, "anthropic document");
}

static void test_errors(void)
{
    /* error event mid-stream */
    const char *body =
        "event: message_start\n"
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e\",\"model\":"
        "\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
        "\"text\":\"\"}}\n\n"
        "event: content_block_delta\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"Hel\"}}\n\n"
        "event: error\n"
        "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
        "\"Overloaded\"}}\n\n";
    struct t_call c = {.host = HOST, .path = PATH, .req = req_stream, .body = body,
                       .log_content = true};
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "ok", "error event ends the stream cleanly");
    is_str(r ? r->stop_reason : NULL, "error", "stop_reason error");
    is_str(r ? r->error_type : NULL, "overloaded_error", "error type");
    is_str(r ? r->error_message : NULL, "Overloaded", "error message");
    is_str(r ? r->text : NULL, "Hel", "text before the error");
    is_int(r ? r->input_tokens : -2, 5, "usage from message_start");
    ai_result_free(r);

    /* HTTP error with a JSON body, although a stream was asked for */
    c.body = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
             "\"Number of request tokens has exceeded your per-minute rate limit\"},"
             "\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}";
    c.content_type = "application/json";
    c.status = 429;
    r = t_run(&c);
    is_str(t_status(r), "ok", "error document parsed");
    is_str(r ? r->error_type : NULL, "rate_limit_error", "429 error type");
    ok(r && r->input_tokens == AI_NULL && r->output_tokens == AI_NULL, "no tokens");
    is_str(r ? r->model : NULL, "claude-sonnet-4-5", "model from the request");
    ok(r && r->status_code == 429 && r->stream, "status kept, stream as requested");
    ai_result_free(r);

    /* cut before message_stop */
    size_t cut = strstr(stream_tools, "event: message_delta") - stream_tools;
    c = base_stream();
    c.len = cut;
    r = t_run(&c);
    is_str(t_status(r), "truncated", "stream cut before message_stop: truncated");
    ok(r && r->n_tool_calls == 3 && r->output_tokens == 2, "what arrived is kept");
    ai_result_free(r);

    /* malformed JSON in an event */
    c = base_stream();
    c.body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n"
             "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n\n"
             "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    r = t_run(&c);
    is_str(t_status(r), "error", "malformed event JSON: error");
    ok(r && r->parse_detail && strstr(r->parse_detail, "invalid JSON"), "detail says why: %s",
       r && r->parse_detail ? r->parse_detail : "");
    is_str(r ? r->message_id : NULL, "m", "earlier events kept");
    ai_result_free(r);

    /* completed stream without usage anywhere */
    c.body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}"
             "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    r = t_run(&c);
    is_str(t_status(r), "usage_missing", "no usage: usage_missing");
    ok(r && r->input_tokens == AI_NULL && r->cache_read_tokens == AI_NULL &&
           r->usage_details == NULL,
       "tokens NULL");
    ai_result_free(r);

    /* compressed body */
    struct ai_endpoint ep;
    ai_detect(HOST, "POST", PATH, NULL, &ep);
    struct ai_response *resp = ai_response_new(&ep, NULL, NULL, NULL);
    ai_response_set_head(resp, "text/event-stream", "gzip");
    ai_response_feed(resp, "\x1f\x8b\x08", 3, 5);
    ai_response_finish(resp, 200, 6, &r, NULL);
    is_str(t_status(r), "error", "gzip body: error");
    ok(r && r->response_bytes == 3 && r->model == NULL, "bytes counted, nothing parsed");
    ok(r && r->ttft_ms == AI_NULL && r->duration_ms == AI_NULL, "no start time: no ttft");
    ai_result_free(r);
    ai_response_free(resp);

    /* no response at all */
    resp = ai_response_new(&ep, NULL, NULL, NULL);
    ai_response_finish(resp, 0, 6, &r, NULL);
    is_str(t_status(r), "truncated", "no response: truncated");
    ai_result_free(r);
    ai_response_free(resp);
}

static void test_limits(void)
{
    /* text preview: exactly the cap, then one past (mark) */
    struct ai_response_opts o = {.max_preview = 64};
    char body[1024];
    char text[80];
    for (int extra = 0; extra <= 1; extra++) {
        memset(text, 'a', sizeof(text));
        text[64 + extra] = '\0';
        snprintf(body, sizeof(body),
                 "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"
                 "\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
                 "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"
                 "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"%s\"}}\n\n"
                 "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                 text);
        struct t_call c = {.host = HOST, .path = PATH, .body = body, .log_content = true,
                           .opts = &o};
        struct ai_result *r = t_run(&c);
        if (extra == 0) {
            ok(r && r->text && strlen(r->text) == 64 && !strstr(r->text, "[truncated]"),
               "text of exactly the preview cap kept whole");
        } else {
            ok(r && r->text && strlen(r->text) == 64 &&
                   strcmp(r->text + 64 - strlen(AI_TRUNC_MARK), AI_TRUNC_MARK) == 0,
               "text one past the cap: cut to the cap with the mark");
            is_str(t_status(r), "ok", "a preview cut is not a parse failure");
        }
        ai_result_free(r);
    }
    /* arguments cap */
    struct ai_response_opts oa = {.max_arguments = 16};
    for (int extra = 0; extra <= 1; extra++) {
        snprintf(body, sizeof(body),
                 "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                 "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\","
                 "\"name\":\"n\",\"input\":{}}}\n\nevent: content_block_delta\ndata: "
                 "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                 "\"input_json_delta\",\"partial_json\":\"%s\"}}\n\n",
                 extra ? "12345678901234567" : "1234567890123456");
        struct t_call c = {.host = HOST, .path = PATH, .body = body, .opts = &oa};
        struct ai_result *r = t_run(&c);
        ok(r && r->n_tool_calls == 1 &&
               r->tool_calls[0].arguments_truncated == (extra == 1) &&
               strlen(r->tool_calls[0].arguments) == 16,
           "arguments %s the cap", extra ? "one past" : "at");
        ai_result_free(r);
    }
    /* SSE line cap through the interpreter */
    struct ai_response_opts ol = {.max_sse_line = 100};
    struct t_call c = base_stream();
    c.opts = &ol;
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "truncated", "SSE line over the cap: truncated");
    ok(r && r->parse_detail && strstr(r->parse_detail, "line"), "detail names the line");
    ok(r && r->response_bytes == strlen(stream_tools), "bytes still counted after the stop");
    ai_result_free(r);
    /* document cap: at and one past */
    const char *doc = "{\"id\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}";
    struct ai_response_opts od = {.max_doc = strlen(doc)};
    c = (struct t_call){.host = HOST, .path = PATH, .body = doc, .opts = &od,
                        .content_type = "application/json"};
    r = t_run(&c);
    is_str(t_status(r), "ok", "document of exactly max_doc parsed");
    ai_result_free(r);
    od.max_doc--;
    r = t_run(&c);
    is_str(t_status(r), "truncated", "document of max_doc + 1: truncated");
    ai_result_free(r);
}

int main(void)
{
    test_stream_tools();
    test_line_endings();
    test_interleaved();
    test_nonstream();
    test_errors();
    test_limits();
    return done_testing();
}
