/* Endpoint detection and request parsing (src/lib/ai/interp.h). */
#include <stdlib.h>
#include <string.h>

#include "ai/interp.h"
#include "base/err.h"
#include "tap.h"

static void test_detect(void)
{
    struct ai_endpoint ep;
    ok(ai_detect("api.anthropic.com", "POST", "/v1/messages", NULL, &ep), "anthropic messages");
    is_int(ep.protocol, AI_PROTO_ANTHROPIC_MESSAGES, "protocol");
    is_str(ep.provider, "anthropic", "provider");
    is_str(ep.protocol_name, "anthropic-messages", "protocol name");
    ok(ai_detect("API.Anthropic.COM", "POST", "/v1/messages", "beta=true", &ep),
       "host compared case-insensitively");
    ok(!ai_detect("api.anthropic.com", "GET", "/v1/messages", NULL, &ep), "GET is not interpreted");
    ok(!ai_detect("api.anthropic.com", "POST", "/v1/messages/count_tokens", NULL, &ep),
       "count_tokens is not a model call");
    ok(!ai_detect("api.anthropic.com", "POST", "/v1/complete", NULL, &ep), "legacy complete");
    ok(!ai_detect("evil.example", "POST", "/v1/messages", NULL, &ep), "other host");
    ok(!ai_detect("api.anthropic.com.evil.example", "POST", "/v1/messages", NULL, &ep),
       "suffix host");
    is_int(ep.protocol, AI_PROTO_NONE, "no protocol when not detected");

    ok(ai_detect("api.openai.com", "POST", "/v1/chat/completions", NULL, &ep), "openai chat");
    is_str(ep.protocol_name, "openai-chat", "chat protocol name");
    is_str(ep.provider, "openai", "openai provider");
    ok(ai_detect("api.openai.com", "POST", "/v1/responses", NULL, &ep), "openai responses");
    is_str(ep.protocol_name, "openai-responses", "responses protocol name");
    ok(!ai_detect("api.openai.com", "POST", "/v1/embeddings", NULL, &ep), "embeddings");
    ok(!ai_detect("api.openai.com", "POST", "/v1/responses/abc/cancel", NULL, &ep),
       "responses sub-resource");

    const char *g = "generativelanguage.googleapis.com";
    ok(ai_detect(g, "POST", "/v1beta/models/gemini-2.5-pro:generateContent", NULL, &ep),
       "gemini generateContent");
    is_str(ep.provider, "google", "gemini provider");
    is_str(ep.protocol_name, "gemini", "gemini protocol name");
    is_str(ep.url_model, "gemini-2.5-pro", "model from the URL");
    ok(!ep.url_stream && !ep.url_sse, "not streaming");
    ok(ai_detect(g, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                 "key=capsem-placeholder-google-x&alt=sse", &ep),
       "gemini stream with alt=sse");
    ok(ep.url_stream && ep.url_sse, "stream + sse");
    ok(ai_detect(g, "POST", "/v1/models/gemini-2.0-flash:streamGenerateContent", "alt=json", &ep),
       "gemini /v1/ stream without sse");
    ok(ep.url_stream && !ep.url_sse, "stream, JSON array");
    ok(!ai_detect(g, "POST", "/v1beta/models/gemini-2.5-pro:countTokens", NULL, &ep),
       "countTokens");
    ok(!ai_detect(g, "POST", "/v1beta/models/:generateContent", NULL, &ep), "empty model");
    ok(!ai_detect(g, "POST", "/v1beta/models/a/b:generateContent", NULL, &ep), "slash in model");
    ok(!ai_detect(g, "POST", "/v1beta/models/x:generateContentX", NULL, &ep), "method suffix");
    ok(!ai_detect(g, "POST", "/v1beta/models/x", NULL, &ep), "no method");
    ok(!ai_detect(g, "POST", "/v2/models/x:generateContent", NULL, &ep), "unknown version");

    is_str(ai_host_provider("api.openai.com"), "openai", "host provider");
    is_str(ai_host_provider("GENERATIVELANGUAGE.googleapis.com"), "google", "host provider case");
    ok(ai_host_provider("example.com") == NULL, "unknown host provider");
    is_int(ai_tool_origin("local__fetch_http"), AI_ORIGIN_LOCAL, "local__ origin");
    is_int(ai_tool_origin("github__search"), AI_ORIGIN_MCP_PROXY, "server__tool origin");
    is_int(ai_tool_origin("get_weather"), AI_ORIGIN_NATIVE, "native origin");
    is_int(ai_tool_origin("local_x"), AI_ORIGIN_NATIVE, "single underscore is native");
    is_str(ai_tool_origin_name(AI_ORIGIN_MCP_PROXY), "mcp_proxy", "origin name");
}

static struct ai_request *parse(const char *host, const char *path, const char *query,
                                const char *body, bool log_content)
{
    struct ai_endpoint ep;
    if (!ai_detect(host, "POST", path, query, &ep))
        return NULL;
    struct ai_request_opts o = {.log_content = log_content};
    struct ai_request *req = NULL;
    struct err *e = NULL;
    if (ai_request_parse(&ep, body, strlen(body), &o, &req, &e) < 0) {
        diag("parse: %s", err_msg(e));
        err_free(e);
    }
    return req;
}

static const char anthropic_req[] =
    "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":64000,\"stream\":true,"
    "\"system\":[{\"type\":\"text\",\"text\":\"You are Claude Code.\"},"
    "{\"type\":\"text\",\"text\":\"Be brief.\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"tools\":[{\"name\":\"Bash\",\"input_schema\":{\"type\":\"object\"}},"
    "{\"name\":\"github__create_issue\",\"input_schema\":{}},"
    "{\"type\":\"web_search_20250305\",\"name\":\"web_search\",\"max_uses\":5}],"
    "\"messages\":["
    "{\"role\":\"user\",\"content\":\"list files\"},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_old\","
    "\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_old\","
    "\"content\":\"a.txt\"}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
    "\"Bash\",\"input\":{\"command\":\"cat a.txt\"}},{\"type\":\"tool_use\",\"id\":\"toolu_2\","
    "\"name\":\"github__create_issue\",\"input\":{}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
    "\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]},{\"type\":\"tool_result\","
    "\"tool_use_id\":\"toolu_2\",\"is_error\":true,\"content\":\"403 forbidden\"}]}]}";

static void test_request_anthropic(void)
{
    struct ai_request *req =
        parse("api.anthropic.com", "/v1/messages", NULL, anthropic_req, true);
    ok(req != NULL, "anthropic request parsed");
    if (!req)
        return;
    is_str(req->model, "claude-sonnet-4-5-20250929", "model");
    ok(req->stream, "stream");
    is_int(req->max_tokens, 64000, "max_tokens");
    is_str(req->system_preview, "You are Claude Code.\nBe brief.", "system preview joined");
    is_int(req->messages_count, 5, "messages_count");
    is_int(req->tools_count, 3, "tools_count");
    ok(req->n_tools == 3 && strcmp(req->tools[1], "github__create_issue") == 0 &&
           strcmp(req->tools[2], "web_search") == 0,
       "tool names");
    is_int(req->n_tool_results, 3, "three tool results");
    is_str(req->tool_results[0].call_id, "toolu_old", "old result id");
    ok(!req->tool_results[0].last_turn, "old result is not in the last turn");
    is_str(req->tool_results[1].call_id, "toolu_1", "result 1 id");
    ok(req->tool_results[1].last_turn && !req->tool_results[1].is_error, "result 1 new, ok");
    is_str(req->tool_results[1].preview, "hello", "result preview from text blocks");
    is_str(req->tool_results[2].call_id, "toolu_2", "result 2 id");
    ok(req->tool_results[2].is_error, "is_error kept");
    is_str(req->tool_results[2].preview, "403 forbidden", "string preview");
    is_int(req->bytes, strlen(anthropic_req), "request bytes");
    ai_request_free(req);

    req = parse("api.anthropic.com", "/v1/messages", NULL, anthropic_req, false);
    ok(req && req->tool_results[1].preview == NULL, "no previews without log_content");
    ai_request_free(req);
    req = parse("api.anthropic.com", "/v1/messages", NULL,
                "{\"model\":7,\"messages\":{},\"max_tokens\":-1,\"system\":\"s\"}", false);
    ok(req && !req->model && !req->stream && req->max_tokens == AI_NULL &&
           req->messages_count == AI_NULL,
       "wrongly typed fields are absent");
    is_str(req ? req->system_preview : NULL, "s", "string system");
    ai_request_free(req);
}

static void test_request_openai(void)
{
    const char *chat =
        "{\"model\":\"gpt-4.1\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_completion_tokens\":2048,\"messages\":["
        "{\"role\":\"developer\",\"content\":\"dev rules\"},"
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"sys\"}]},"
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_a\","
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"42\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}},"
        "{\"type\":\"custom\",\"custom\":{\"name\":\"apply_patch\"}}]}";
    struct ai_request *req = parse("api.openai.com", "/v1/chat/completions", NULL, chat, true);
    ok(req != NULL, "chat request parsed");
    if (req) {
        is_str(req->model, "gpt-4.1", "chat model");
        ok(req->stream, "chat stream");
        is_int(req->max_tokens, 2048, "max_completion_tokens");
        is_str(req->system_preview, "dev rules\nsys", "developer + system preview");
        is_int(req->messages_count, 5, "chat messages_count");
        ok(req->n_tools == 2 && strcmp(req->tools[0], "f") == 0 &&
               strcmp(req->tools[1], "apply_patch") == 0,
           "chat tool names");
        ok(req->n_tool_results == 1 && strcmp(req->tool_results[0].call_id, "call_a") == 0 &&
               req->tool_results[0].last_turn,
           "role:tool result");
        is_str(req->tool_results[0].preview, "42", "tool result preview");
    }
    ai_request_free(req);
    req = parse("api.openai.com", "/v1/chat/completions", NULL,
                "{\"model\":\"gpt-4o\",\"max_tokens\":10,\"messages\":[]}", false);
    ok(req && req->max_tokens == 10 && !req->stream && req->messages_count == 0,
       "legacy max_tokens");
    ai_request_free(req);

    const char *resp =
        "{\"model\":\"gpt-5\",\"stream\":false,\"max_output_tokens\":4000,"
        "\"instructions\":\"Be a coder.\",\"input\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"go\"}]},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"shell\","
        "\"arguments\":\"{}\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"call_1\",\"output\":\"ok\"}],"
        "\"tools\":[{\"type\":\"function\",\"name\":\"shell\"},{\"type\":\"web_search\"},"
        "{\"type\":\"mcp\",\"server_label\":\"deepwiki\"}]}";
    req = parse("api.openai.com", "/v1/responses", NULL, resp, false);
    ok(req != NULL, "responses request parsed");
    if (req) {
        is_str(req->model, "gpt-5", "responses model");
        ok(!req->stream, "responses not streaming");
        is_int(req->max_tokens, 4000, "max_output_tokens");
        is_str(req->system_preview, "Be a coder.", "instructions as system");
        is_int(req->messages_count, 4, "input items");
        ok(req->n_tools == 3 && strcmp(req->tools[1], "web_search") == 0 &&
               strcmp(req->tools[2], "deepwiki") == 0,
           "responses tool names");
        ok(req->n_tool_results == 1 && strcmp(req->tool_results[0].call_id, "call_1") == 0 &&
               req->tool_results[0].last_turn,
           "function_call_output result");
    }
    ai_request_free(req);
    req = parse("api.openai.com", "/v1/responses", NULL, "{\"model\":\"o3\",\"input\":\"hi\"}",
                false);
    ok(req && req->messages_count == 1, "string input counts as one message");
    ai_request_free(req);
}

static void test_request_gemini(void)
{
    const char *body =
        "{\"system_instruction\":{\"parts\":[{\"text\":\"You are terse.\"}]},"
        "\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"weather?\"}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\","
        "\"args\":{\"city\":\"Oslo\"}}}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"get_weather\","
        "\"id\":\"fc-1\",\"response\":{\"temp\":3}}}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\"},{\"name\":\"b\"}]},"
        "{\"googleSearch\":{}}],"
        "\"generationConfig\":{\"maxOutputTokens\":1024,\"thinkingConfig\":{}}}";
    struct ai_request *req =
        parse("generativelanguage.googleapis.com",
              "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse", body, true);
    ok(req != NULL, "gemini request parsed");
    if (!req)
        return;
    is_str(req->model, "gemini-2.5-flash", "model from the URL");
    ok(req->stream, "stream from the URL");
    is_int(req->max_tokens, 1024, "maxOutputTokens");
    is_str(req->system_preview, "You are terse.", "systemInstruction (snake_case)");
    is_int(req->messages_count, 3, "contents");
    ok(req->n_tools == 3 && strcmp(req->tools[2], "googleSearch") == 0, "gemini tools");
    ok(req->n_tool_results == 1 && strcmp(req->tool_results[0].name, "get_weather") == 0 &&
           strcmp(req->tool_results[0].call_id, "fc-1") == 0 && req->tool_results[0].last_turn,
       "functionResponse result");
    is_str(req->tool_results[0].preview, "{\"temp\":3}", "functionResponse preview");
    ai_request_free(req);
}

static void test_request_errors(void)
{
    struct ai_endpoint ep;
    ai_detect("api.openai.com", "POST", "/v1/responses", NULL, &ep);
    struct ai_request *req = NULL;
    struct err *e = NULL;
    is_int(ai_request_parse(&ep, "{\"model\":", 9, NULL, &req, &e), -1, "truncated JSON fails");
    ok(e && e->status == 400 && req == NULL, "status 400, no request");
    err_free(e);
    e = NULL;
    is_int(ai_request_parse(&ep, "[1]", 3, NULL, &req, &e), -1, "array body fails");
    err_free(e);
    e = NULL;
    is_int(ai_request_parse(&ep, "{}", AI_MAX_REQUEST_BODY + 1ul, NULL, &req, &e), -1,
           "body over 64 MiB fails");
    ok(e && e->status == 413, "status 413");
    err_free(e);
    e = NULL;
    is_int(ai_request_parse(&ep, "{}", 2, NULL, &req, &e), 0, "empty object parses");
    ok(req && !req->model && req->messages_count == AI_NULL && req->system_preview == NULL,
       "everything absent");
    ai_request_free(req);

    /* Preview cap with the truncation mark. */
    size_t n = 20000;
    char *big = malloc(n + 64);
    int k = snprintf(big, n + 64, "{\"instructions\":\"");
    memset(big + k, 'x', n);
    snprintf(big + k + n, 64, "\"}");
    struct ai_request_opts o = {.preview_max = 100};
    ai_request_parse(&ep, big, strlen(big), &o, &req, &e);
    ok(req && req->system_preview && strlen(req->system_preview) == 100 &&
           strcmp(req->system_preview + 100 - strlen(AI_TRUNC_MARK), AI_TRUNC_MARK) == 0,
       "system preview capped at preview_max with the mark");
    ai_request_free(req);
    free(big);
}

int main(void)
{
    test_detect();
    test_request_anthropic();
    test_request_openai();
    test_request_gemini();
    test_request_errors();
    return done_testing();
}
