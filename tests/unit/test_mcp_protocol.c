/* capsem-mcp JSON-RPC core: framing, negotiation, dispatch errors, batches,
 * cancellation (surface.md section 6). No service: test_mcp_mock.h. */
#include "tap.h"
#include "test_mcp_mock.h"

#define PING "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"

static void test_framing(void)
{
    struct mock m;
    mock_init(&m, 0);
    const char *msg = PING "\n";
    mcp_server_feed(m.srv, msg, 5);
    ok(no_output(&m), "no reply before the newline");
    mcp_server_feed(m.srv, msg + 5, 10);
    mcp_server_feed(m.srv, msg + 15, strlen(msg) - 15);
    json_t *r = next_out(&m);
    ok(json_is_object(json_object_get(r, "result")) &&
           json_object_size(json_object_get(r, "result")) == 0,
       "ping split over three reads answers {}");
    is_int(json_integer_value(json_object_get(r, "id")), 1, "id echoed");
    is_str(json_string_value(json_object_get(r, "jsonrpc")), "2.0", "jsonrpc 2.0");
    json_decref(r);

    const char two[] = "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"}\r\n\n   \n"
                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n";
    mcp_server_feed(m.srv, two, strlen(two));
    r = next_out(&m);
    is_str(json_string_value(json_object_get(r, "id")), "a", "CRLF line answered (string id)");
    json_decref(r);
    r = next_out(&m);
    is_int(json_integer_value(json_object_get(r, "id")), 2, "blank lines skipped, next answered");
    json_decref(r);
    ok(no_output(&m), "nothing else written");

    /* An unterminated last line is handled at end of input. */
    const char *tail = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}";
    mcp_server_feed(m.srv, tail, strlen(tail));
    ok(no_output(&m), "unterminated line waits");
    mcp_server_finish_input(m.srv);
    r = next_out(&m);
    is_int(json_integer_value(json_object_get(r, "id")), 3, "answered at end of input");
    json_decref(r);
    mock_free(&m);
}

static void test_oversized(void)
{
    struct mock m;
    mock_init(&m, 64);
    char big[200];
    memset(big, 'x', sizeof(big));
    mcp_server_feed(m.srv, big, 100);
    json_t *r = next_out(&m);
    is_int(error_code(r), MCP_INVALID_REQUEST, "line over the cap: -32600");
    ok(json_is_null(json_object_get(r, "id")), "with id null");
    json_decref(r);
    mcp_server_feed(m.srv, big, 100);
    ok(no_output(&m), "rest of the oversized line dropped silently");
    const char after[] = "xxxx\n" PING "\n";
    mcp_server_feed(m.srv, after, strlen(after));
    r = next_out(&m);
    ok(json_is_object(json_object_get(r, "result")), "next line after the newline is served");
    json_decref(r);
    ok(no_output(&m), "exactly one reply");

    /* Oversized and terminated in one read. */
    char line[150];
    memset(line, 'y', sizeof(line));
    line[99] = '\n';
    memcpy(line + 100, "{}\n", 3);
    mcp_server_feed(m.srv, line, 103);
    r = next_out(&m);
    is_int(error_code(r), MCP_INVALID_REQUEST, "oversized line in one read: -32600");
    json_decref(r);
    r = next_out(&m);
    is_int(error_code(r), MCP_INVALID_REQUEST, "following {} answered too (-32600)");
    json_decref(r);
    mock_free(&m);
}

static void expect_error(struct mock *m, const char *line, long code, const char *what)
{
    send_line(m, line);
    json_t *r = next_out(m);
    is_int(error_code(r), code, "%s", what);
    json_decref(r);
}

static void test_dispatch_errors(void)
{
    struct mock m;
    mock_init(&m, 0);
    expect_error(&m, "{\"jsonrpc\":", MCP_PARSE_ERROR, "truncated JSON: -32700");
    expect_error(&m, "not json", MCP_PARSE_ERROR, "garbage: -32700");
    expect_error(&m, "5", MCP_INVALID_REQUEST, "a number: -32600");
    expect_error(&m, "\"ping\"", MCP_INVALID_REQUEST, "a string: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", MCP_INVALID_REQUEST,
                 "boolean id: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", MCP_INVALID_REQUEST,
                 "null id: -32600");
    expect_error(&m, "{\"id\":4,\"method\":\"ping\"}", MCP_INVALID_REQUEST, "no jsonrpc: -32600");
    expect_error(&m, "{\"jsonrpc\":\"1.0\",\"id\":4,\"method\":\"ping\"}", MCP_INVALID_REQUEST,
                 "jsonrpc 1.0: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":7}", MCP_INVALID_REQUEST,
                 "numeric method: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\",\"params\":3}",
                 MCP_INVALID_REQUEST, "scalar params: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}",
                 MCP_NOT_INITIALIZED, "tools/list before initialize: -32002");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{}}",
                 MCP_NOT_INITIALIZED, "tools/call before initialize: -32002");
    expect_error(&m, "[" PING "]", MCP_INVALID_REQUEST, "batch before initialize: -32600");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"resources/list\"}",
                 MCP_METHOD_NOT_FOUND, "unknown method: -32601");

    send_line(&m, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
    json_t *r = next_out(&m);
    ok(json_is_object(json_object_get(r, "result")), "ping works before initialize");
    json_decref(r);

    send_line(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    send_line(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such/notification\",\"params\":{}}");
    send_line(&m, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}");
    ok(no_output(&m), "notifications and client responses get no reply");

    init_session(&m, "2025-06-18");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"initialize\",\"params\":{}}",
                 MCP_INVALID_REQUEST, "second initialize: -32600");
    expect_error(&m,
                 "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"capsem_nope\"}}",
                 MCP_INVALID_PARAMS, "unknown tool: -32602");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{}}",
                 MCP_INVALID_PARAMS, "tools/call without a name: -32602");
    expect_error(&m, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\",\"params\":[]}",
                 MCP_INVALID_PARAMS, "array params: -32602");
    expect_error(&m, "[" PING "]", MCP_INVALID_REQUEST, "batch in a 2025-06-18 session: -32600");
    ok(m.nreq == 0, "no service request was made");
    mock_free(&m);
}

static void check_negotiation(const char *asked, const char *want)
{
    struct mock m;
    mock_init(&m, 0);
    char line[256];
    snprintf(
        line, sizeof(line),
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"0\"}}}",
        asked);
    send_line(&m, line);
    json_t *r = next_out(&m);
    json_t *res = json_object_get(r, "result");
    is_str(json_string_value(json_object_get(res, "protocolVersion")), want, "%s -> %s", asked,
           want);
    is_str(mcp_server_protocol(m.srv), want, "session version %s", want);
    json_t *info = json_object_get(res, "serverInfo");
    ok(strcmp(json_string_value(json_object_get(info, "name")), "capsem-mcp") == 0 &&
           strcmp(json_string_value(json_object_get(info, "version")), "9.9.9") == 0,
       "serverInfo {capsem-mcp, version}");
    json_t *tools = json_object_get(json_object_get(res, "capabilities"), "tools");
    ok(json_is_false(json_object_get(tools, "listChanged")),
       "capabilities.tools.listChanged false");
    json_decref(r);
    mock_free(&m);
}

static void test_negotiation(void)
{
    for (size_t i = 0; i < mcp_protocol_count; i++)
        check_negotiation(mcp_protocol_versions[i], mcp_protocol_versions[i]);
    check_negotiation("2099-01-01", "2025-11-25");
    check_negotiation("2024-10-07", "2025-11-25");
}

static void test_batches(void)
{
    struct mock m;
    mock_init(&m, 0);
    init_session(&m, "2025-03-26");
    send_line(&m, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"},"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
                  "\"capsem_list\"}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"},"
                  "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":{}},"
                  "7]");
    ok(no_output(&m), "a batch waits for its calls");
    is_int(m.nreq, 1, "one service call for the batch");
    complete_json(&m, last_req(&m)->token, 200, "{\"sandboxes\":[]}");
    json_t *r = next_out(&m);
    ok(json_is_array(r), "batch answered with an array");
    is_int(json_array_size(r), 5, "five replies (the notification gets none)");
    int seen = 0;
    size_t i;
    json_t *e;
    json_array_foreach(r, i, e)
    {
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        if (id == 1 && json_object_get(e, "result"))
            seen |= 1;
        if (id == 2 && result_text(e) && strstr(result_text(e), "sandboxes"))
            seen |= 2;
        if (id == 3 && error_code(e) == MCP_METHOD_NOT_FOUND)
            seen |= 4;
        if (id == 4 && error_code(e) == MCP_INVALID_REQUEST)
            seen |= 8;
        if (json_is_null(json_object_get(e, "id")) && error_code(e) == MCP_INVALID_REQUEST)
            seen |= 16;
    }
    is_int(seen, 31, "ping, tool result, -32601, batched initialize -32600, element 7 -32600");
    json_decref(r);

    expect_error(&m, "[]", MCP_INVALID_REQUEST, "empty batch: -32600");
    send_line(&m, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]");
    ok(no_output(&m), "batch of notifications: no reply");

    /* A cancelled call is left out of its batch. */
    send_line(&m, "[{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":"
                  "\"capsem_list\"}},{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}]");
    uint64_t tok = last_req(&m)->token;
    send_line(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                  "{\"requestId\":11,\"reason\":\"test\"}}");
    r = next_out(&m);
    ok(json_is_array(r) && json_array_size(r) == 1 &&
           json_integer_value(json_object_get(json_array_get(r, 0), "id")) == 12,
       "batch flushed without the cancelled call");
    json_decref(r);
    ok(m.ncancel == 1 && m.cancelled[0] == tok, "backend told to cancel");
    mock_free(&m);
}

static void test_cancel(void)
{
    struct mock m;
    mock_init(&m, 0);
    init_session(&m, "2025-06-18");
    call_tool(&m, 7, "capsem_exec", "{\"id\":\"vm1\",\"command\":\"sleep 100\"}");
    call_tool(&m, 8, "capsem_list", NULL);
    is_int(mcp_server_inflight(m.srv), 2, "two calls in flight");
    uint64_t t7 = m.reqs[0].token, t8 = m.reqs[1].token;
    send_line(&m, PING);
    json_t *r = next_out(&m);
    ok(json_object_get(r, "result") != NULL, "ping answered while calls are in flight");
    json_decref(r);
    send_line(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                  "{\"requestId\":\"7\"}}");
    is_int(m.ncancel, 0, "string \"7\" does not match id 7");
    send_line(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                  "{\"requestId\":7}}");
    ok(m.ncancel == 1 && m.cancelled[0] == t7, "exec call cancelled in the backend");
    is_int(mcp_server_inflight(m.srv), 1, "one call left");
    ok(no_output(&m), "no reply for a cancelled request");
    complete_json(&m, t7, 200, "{\"exit_code\":0}");
    ok(no_output(&m), "a late completion of a cancelled call is ignored");
    complete_json(&m, t8, 200, "{\"sandboxes\":[]}");
    r = next_out(&m);
    is_int(json_integer_value(json_object_get(r, "id")), 8, "the other call still answers");
    json_decref(r);

    /* Calls still in flight are cancelled when the server goes away. */
    call_tool(&m, 9, "capsem_list", NULL);
    uint64_t t9 = last_req(&m)->token;
    mcp_server_free(m.srv);
    m.srv = NULL;
    ok(m.ncancel == 2 && m.cancelled[1] == t9, "free cancels calls in flight");
    mock_free(&m);
}

static void test_output_failure(void)
{
    struct mock m;
    mock_init(&m, 0);
    m.fail_writes = true;
    send_line(&m, PING);
    ok(mcp_server_output_failed(m.srv), "a failed write is remembered");
    mock_free(&m);
}

int main(void)
{
    test_framing();
    test_oversized();
    test_dispatch_errors();
    test_negotiation();
    test_batches();
    test_cancel();
    test_output_failure();
    return done_testing();
}
