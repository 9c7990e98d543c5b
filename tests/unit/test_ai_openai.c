/* OpenAI Chat Completions and Responses interpreters over hand-written
 * fixtures in the shape the API sends (src/lib/ai/openai_*.c). */
#include "test_ai_common.h"

#define HOST "api.openai.com"

/* ---- chat ---- */

static const char chat_req[] =
    "{\"model\":\"gpt-4.1\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"messages\":[{\"role\":\"user\",\"content\":\"weather in Oslo and Rome\"}]}";

#define CHUNK(json) "data: " json "\n\n"
#define HEAD                                                                                       \
    "{\"id\":\"chatcmpl-BvX7\",\"object\":\"chat.completion.chunk\",\"created\":1753000000,"   \
    "\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":"      \
    "\"fp_b3f1157249\","

/* Text, then two tool calls whose argument fragments alternate. */
static const char chat_stream[] =
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
               "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking \"},"
               "\"finish_reason\":null}],\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"both.\"},"
               "\"finish_reason\":null}],\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
               "\"call_Oslo1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
               "\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":"
               "\"call_Rome2\",\"type\":\"function\",\"function\":{\"name\":"
               "\"weather__forecast\",\"arguments\":\"\"}}]},\"finish_reason\":null}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
               "\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
               "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
               "\"function\":{\"arguments\":\"ty\\\":\\\"Oslo\\\"}\"}}]},\"finish_reason\":null}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
               "\"function\":{\"arguments\":\"\\\"Rome\\\"}\"}}]},\"finish_reason\":null}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],"
               "\"usage\":null}")
    CHUNK(HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":64,"
               "\"total_tokens\":1264,\"prompt_tokens_details\":{\"cached_tokens\":1024,"
               "\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,"
               "\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
               "\"rejected_prediction_tokens\":0}}}")
    "data: [DONE]\n\n";

static struct t_call chat_call(void)
{
    return (struct t_call){.host = HOST,
                           .path = "/v1/chat/completions",
                           .req = chat_req,
                           .content_type = "text/event-stream; charset=utf-8",
                           .body = chat_stream,
                           .log_content = true};
}

static void test_chat_stream(void)
{
    struct t_call c = chat_call();
    struct ai_result *r = t_run(&c);
    ok(r != NULL, "chat stream result");
    if (!r)
        return;
    is_str(t_status(r), "ok", "parse ok");
    is_str(r->protocol_name, "openai-chat", "protocol");
    is_str(r->model, "gpt-4.1-2025-04-14", "model from the chunks");
    is_str(r->message_id, "chatcmpl-BvX7", "id");
    is_str(r->stop_reason, "tool_calls", "finish_reason");
    is_str(r->text, "Checking both.", "text");
    is_int(r->input_tokens, 176, "input = prompt - cached");
    is_int(r->cache_read_tokens, 1024, "cached tokens");
    is_int(r->cache_write_tokens, AI_NULL, "no cache writes for OpenAI");
    is_int(r->output_tokens, 64, "completion tokens");
    is_int(r->thinking_tokens, 0, "reasoning tokens");
    is_int(r->n_tool_calls, 2, "two calls");
    if (r->n_tool_calls == 2) {
        is_str(r->tool_calls[0].id, "call_Oslo1", "call 0 id");
        is_str(r->tool_calls[0].arguments, "{\"city\":\"Oslo\"}", "call 0 fragments joined");
        is_str(r->tool_calls[1].name, "weather__forecast", "call 1 name");
        is_str(r->tool_calls[1].arguments, "{\"city\":\"Rome\"}", "call 1 fragments joined");
        is_int(r->tool_calls[1].origin, AI_ORIGIN_MCP_PROXY, "call 1 origin");
    }
    ok(r->usage_details && strstr(r->usage_details, "\"cached_tokens\":1024"), "usage_details");
    ai_result_free(r);
    t_all_splits(chat_call(), "chat stream");

    /* CRLF framing */
    size_t n = strlen(chat_stream), k = 0;
    char *crlf = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        if (chat_stream[i] == '\n')
            crlf[k++] = '\r';
        crlf[k++] = chat_stream[i];
    }
    crlf[k] = '\0';
    c.body = crlf;
    c.chunk = 7;
    r = t_run(&c);
    ok(r && r->parse_status == AI_PARSE_OK && r->n_tool_calls == 2 && r->output_tokens == 64,
       "CRLF chat stream in 7-byte chunks");
    ai_result_free(r);
    free(crlf);
}

static void test_chat_variants(void)
{
    /* no include_usage: usage_missing */
    const char *body =
        CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
                   "\"finish_reason\":null}]}")
        CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}")
        "data: [DONE]\n\n";
    struct t_call c = chat_call();
    c.body = body;
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "usage_missing", "no usage chunk: usage_missing");
    ok(r && r->input_tokens == AI_NULL && r->output_tokens == AI_NULL &&
           r->thinking_tokens == AI_NULL,
       "tokens NULL");
    is_str(r ? r->stop_reason : NULL, "stop", "stop");
    ai_result_free(r);

    /* no [DONE]: truncated */
    c.len = strlen(body) - strlen("data: [DONE]\n\n");
    r = t_run(&c);
    is_str(t_status(r), "truncated", "missing [DONE]: truncated");
    ai_result_free(r);

    /* error chunk mid-stream */
    c.len = 0;
    c.body = CHUNK(HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"},"
                        "\"finish_reason\":null}]}")
        CHUNK("{\"error\":{\"message\":\"The server had an error while processing your "
              "request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    r = t_run(&c);
    is_str(t_status(r), "ok", "error chunk ends the stream");
    is_str(r ? r->error_type : NULL, "server_error", "error type");
    is_str(r ? r->stop_reason : NULL, "error", "stop reason error");
    ai_result_free(r);

    /* non-streaming document with o-series reasoning tokens */
    c = chat_call();
    c.req = "{\"model\":\"o4-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    c.content_type = "application/json";
    c.body = "{\"id\":\"chatcmpl-NS\",\"object\":\"chat.completion\",\"created\":1,\"model\":"
             "\"o4-mini-2025-04-16\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
             "\"function\",\"function\":{\"name\":\"local__fetch_http\",\"arguments\":"
             "\"{\\\"url\\\":\\\"https://example.com\\\"}\"}}],\"refusal\":null,"
             "\"annotations\":[]},\"finish_reason\":\"tool_calls\"}],\"usage\":{"
             "\"prompt_tokens\":50,\"completion_tokens\":300,\"total_tokens\":350,"
             "\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{"
             "\"reasoning_tokens\":256}}}";
    r = t_run(&c);
    is_str(t_status(r), "ok", "chat document ok");
    ok(r && !r->stream, "not streamed");
    is_int(r ? r->thinking_tokens : -2, 256, "reasoning tokens");
    is_int(r ? r->output_tokens : -2, 300, "output includes reasoning");
    is_int(r ? r->input_tokens : -2, 50, "input");
    ok(r && r->n_tool_calls == 1 && r->tool_calls[0].origin == AI_ORIGIN_LOCAL &&
           strcmp(r->tool_calls[0].arguments, "{\"url\":\"https://example.com\"}") == 0,
       "document tool call");
    ai_result_free(r);

    /* 401 error body */
    c.status = 401;
    c.body = "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":"
             "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}";
    r = t_run(&c);
    is_str(t_status(r), "ok", "401 error document");
    is_str(r ? r->error_type : NULL, "invalid_request_error", "401 error type");
    is_str(r ? r->model : NULL, "o4-mini", "model from the request");
    ai_result_free(r);

    /* not JSON at all (an HTML error page) */
    c.status = 502;
    c.content_type = "text/html";
    c.body = "<html><body>Bad gateway</body></html>";
    r = t_run(&c);
    is_str(t_status(r), "error", "HTML body: error");
    ai_result_free(r);
}

/* ---- responses ---- */

static const char resp_req[] =
    "{\"model\":\"gpt-5\",\"stream\":true,\"input\":\"list the repo\","
    "\"tools\":[{\"type\":\"function\",\"name\":\"shell\"}]}";

#define EV(name, json) "event: " name "\ndata: " json "\n\n"
#define RESP_OBJ(status, extra)                                                                    \
    "{\"id\":\"resp_68a1\",\"object\":\"response\",\"created_at\":1755000000,\"status\":\""     \
    status "\",\"model\":\"gpt-5-2025-08-07\",\"output\":[]," extra "\"usage\":null}"

static const char resp_stream[] =
    EV("response.created", "{\"type\":\"response.created\",\"sequence_number\":0,\"response\":"
       RESP_OBJ("in_progress", "") "}")
    EV("response.in_progress", "{\"type\":\"response.in_progress\",\"sequence_number\":1,"
       "\"response\":" RESP_OBJ("in_progress", "") "}")
    EV("response.output_item.added", "{\"type\":\"response.output_item.added\","
       "\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":"
       "\"reasoning\",\"summary\":[]}}")
    EV("response.reasoning_summary_text.delta", "{\"type\":"
       "\"response.reasoning_summary_text.delta\",\"sequence_number\":3,\"item_id\":\"rs_1\","
       "\"output_index\":0,\"summary_index\":0,\"delta\":\"**Planning** the listing\"}")
    EV("response.output_item.added", "{\"type\":\"response.output_item.added\","
       "\"sequence_number\":4,\"output_index\":1,\"item\":{\"id\":\"msg_1\",\"type\":"
       "\"message\",\"status\":\"in_progress\",\"content\":[],\"role\":\"assistant\"}}")
    EV("response.output_text.delta", "{\"type\":\"response.output_text.delta\","
       "\"sequence_number\":5,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,"
       "\"delta\":\"Let me \",\"logprobs\":[]}")
    EV("response.output_text.delta", "{\"type\":\"response.output_text.delta\","
       "\"sequence_number\":6,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,"
       "\"delta\":\"look.\",\"logprobs\":[]}")
    EV("response.output_item.added", "{\"type\":\"response.output_item.added\","
       "\"sequence_number\":7,\"output_index\":2,\"item\":{\"id\":\"fc_1\",\"type\":"
       "\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":"
       "\"call_shell1\",\"name\":\"shell\"}}")
    EV("response.function_call_arguments.delta", "{\"type\":"
       "\"response.function_call_arguments.delta\",\"sequence_number\":8,\"item_id\":\"fc_1\","
       "\"output_index\":2,\"delta\":\"{\\\"cmd\\\":[\\\"ls\\\",\"}")
    EV("response.function_call_arguments.delta", "{\"type\":"
       "\"response.function_call_arguments.delta\",\"sequence_number\":9,\"item_id\":\"fc_1\","
       "\"output_index\":2,\"delta\":\"\\\"-la\\\"]}\"}")
    EV("response.function_call_arguments.done", "{\"type\":"
       "\"response.function_call_arguments.done\",\"sequence_number\":10,\"item_id\":\"fc_1\","
       "\"output_index\":2,\"arguments\":\"{\\\"cmd\\\":[\\\"ls\\\",\\\"-la\\\"]}\"}")
    EV("response.output_item.done", "{\"type\":\"response.output_item.done\","
       "\"sequence_number\":11,\"output_index\":2,\"item\":{\"id\":\"fc_1\",\"type\":"
       "\"function_call\",\"status\":\"completed\",\"arguments\":"
       "\"{\\\"cmd\\\":[\\\"ls\\\",\\\"-la\\\"]}\",\"call_id\":\"call_shell1\",\"name\":"
       "\"shell\"}}")
    EV("response.completed", "{\"type\":\"response.completed\",\"sequence_number\":12,"
       "\"response\":{\"id\":\"resp_68a1\",\"object\":\"response\",\"status\":\"completed\","
       "\"model\":\"gpt-5-2025-08-07\",\"incomplete_details\":null,\"error\":null,\"output\":[],"
       "\"usage\":{\"input_tokens\":3000,\"input_tokens_details\":{\"cached_tokens\":2048},"
       "\"output_tokens\":700,\"output_tokens_details\":{\"reasoning_tokens\":512},"
       "\"total_tokens\":3700}}}");

static struct t_call resp_call(void)
{
    return (struct t_call){.host = HOST,
                           .path = "/v1/responses",
                           .req = resp_req,
                           .content_type = "text/event-stream",
                           .body = resp_stream,
                           .log_content = true};
}

static void test_responses_stream(void)
{
    struct t_call c = resp_call();
    struct ai_result *r = t_run(&c);
    ok(r != NULL, "responses stream result");
    if (!r)
        return;
    is_str(t_status(r), "ok", "parse ok");
    is_str(r->protocol_name, "openai-responses", "protocol");
    is_str(r->model, "gpt-5-2025-08-07", "model");
    is_str(r->message_id, "resp_68a1", "response id");
    is_str(r->stop_reason, "completed", "status as stop reason");
    is_str(r->text, "Let me look.", "text");
    is_str(r->thinking, "**Planning** the listing", "reasoning summary");
    is_int(r->input_tokens, 952, "input - cached");
    is_int(r->cache_read_tokens, 2048, "cached");
    is_int(r->output_tokens, 700, "output");
    is_int(r->thinking_tokens, 512, "reasoning");
    ok(r->n_tool_calls == 1, "one call");
    if (r->n_tool_calls == 1) {
        is_str(r->tool_calls[0].id, "call_shell1", "call_id is the id results answer");
        is_str(r->tool_calls[0].name, "shell", "name");
        is_str(r->tool_calls[0].arguments, "{\"cmd\":[\"ls\",\"-la\"]}", "arguments once");
    }
    ai_result_free(r);
    t_all_splits(resp_call(), "responses stream");
}

static void test_responses_variants(void)
{
    struct t_call c = resp_call();
    c.body = EV("response.created", "{\"type\":\"response.created\",\"response\":"
                RESP_OBJ("in_progress", "") "}")
        EV("response.output_text.delta", "{\"type\":\"response.output_text.delta\","
           "\"output_index\":0,\"delta\":\"long\"}")
        EV("response.incomplete", "{\"type\":\"response.incomplete\",\"response\":{\"id\":"
           "\"resp_68a1\",\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":"
           "\"max_output_tokens\"},\"usage\":{\"input_tokens\":10,\"output_tokens\":16}}}");
    struct ai_result *r = t_run(&c);
    is_str(t_status(r), "ok", "incomplete response parsed");
    is_str(r ? r->stop_reason : NULL, "max_output_tokens", "incomplete reason");
    is_int(r ? r->cache_read_tokens : -2, 0, "no details: cached 0");
    ai_result_free(r);

    c.body = EV("response.failed", "{\"type\":\"response.failed\",\"response\":{\"id\":"
                "\"resp_x\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\","
                "\"message\":\"boom\"},\"usage\":null}}");
    r = t_run(&c);
    is_str(t_status(r), "ok", "failed response: an error report, not a parse failure");
    is_str(r ? r->stop_reason : NULL, "failed", "failed status");
    is_str(r ? r->error_type : NULL, "server_error", "failed error code");
    ai_result_free(r);

    c.body = EV("error", "{\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":"
                "\"slow down\",\"param\":null,\"sequence_number\":3}");
    r = t_run(&c);
    is_str(r ? r->error_type : NULL, "rate_limit_exceeded", "error event");
    is_str(r ? r->error_message : NULL, "slow down", "error message");
    ai_result_free(r);

    /* non-streaming response object */
    c = resp_call();
    c.req = "{\"model\":\"gpt-5-mini\",\"input\":\"hi\"}";
    c.content_type = "application/json";
    c.body = "{\"id\":\"resp_NS\",\"object\":\"response\",\"status\":\"completed\",\"model\":"
             "\"gpt-5-mini-2025-08-07\",\"error\":null,\"incomplete_details\":null,\"output\":["
             "{\"id\":\"rs_2\",\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\","
             "\"text\":\"thinking...\"}]},"
             "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{"
             "\"type\":\"output_text\",\"text\":\"Hello!\",\"annotations\":[]}]},"
             "{\"id\":\"fc_2\",\"type\":\"function_call\",\"call_id\":\"call_A\",\"name\":"
             "\"github__get_me\",\"arguments\":\"{}\"},"
             "{\"id\":\"ctc_3\",\"type\":\"custom_tool_call\",\"call_id\":\"call_B\",\"name\":"
             "\"apply_patch\",\"input\":\"*** Begin Patch\"}],"
             "\"usage\":{\"input_tokens\":8,\"input_tokens_details\":{\"cached_tokens\":0},"
             "\"output_tokens\":20,\"output_tokens_details\":{\"reasoning_tokens\":12},"
             "\"total_tokens\":28}}";
    r = t_run(&c);
    is_str(t_status(r), "ok", "responses document ok");
    is_str(r ? r->text : NULL, "Hello!", "document text");
    is_str(r ? r->thinking : NULL, "thinking...", "document reasoning summary");
    ok(r && r->n_tool_calls == 2 && strcmp(r->tool_calls[0].id, "call_A") == 0 &&
           r->tool_calls[0].origin == AI_ORIGIN_MCP_PROXY &&
           strcmp(r->tool_calls[1].arguments, "*** Begin Patch") == 0 &&
           r->tool_calls[1].index == 1,
       "function_call and custom_tool_call items");
    is_int(r ? r->thinking_tokens : -2, 12, "document reasoning tokens");
    ai_result_free(r);
    t_all_splits(c, "responses document");

    c.status = 400;
    c.body = "{\"error\":{\"message\":\"Unsupported parameter: 'temperature'\",\"type\":"
             "\"invalid_request_error\",\"param\":\"temperature\",\"code\":"
             "\"unsupported_parameter\"}}";
    r = t_run(&c);
    is_str(r ? r->error_type : NULL, "unsupported_parameter", "400 error code");
    is_str(t_status(r), "ok", "400 error parsed");
    ai_result_free(r);
}

int main(void)
{
    test_chat_stream();
    test_chat_variants();
    test_responses_stream();
    test_responses_variants();
    return done_testing();
}
