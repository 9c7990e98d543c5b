/* capsem-mcp tools: the table and its schemas, argument validation, the
 * mapping of each tool to service requests, result shaping (surface.md
 * section 6). No service: test_mcp_mock.h. */
#include "base/util.h"
#include "mcp/mcp_tools.h"
#include "tap.h"
#include "test_mcp_mock.h"

static const char *const all_tools[] = {
    "capsem_version",      "capsem_list",       "capsem_create",     "capsem_info",
    "capsem_exec",         "capsem_run",        "capsem_read_file",  "capsem_write_file",
    "capsem_stop",         "capsem_delete",     "capsem_suspend",    "capsem_resume",
    "capsem_persist",      "capsem_fork",       "capsem_purge",      "capsem_vm_logs",
    "capsem_service_logs", "capsem_image_list", "capsem_image_info", "capsem_image_delete",
    "capsem_mcp_servers",  "capsem_mcp_tools",  "capsem_mcp_call",   "capsem_ask_list",
    "capsem_ask_resolve",
};

static json_t *find_tool(json_t *list, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(list, "tools"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            return t;
    }
    return NULL;
}

static void test_list(void)
{
    json_t *old = mcp_tools_list(0);
    json_t *cur = mcp_tools_list(MCP_PROTO_2025_03_26);
    is_int(json_array_size(json_object_get(cur, "tools")), ARRAY_SIZE(all_tools),
           "tools/list has every tool");
    is_int(mcp_tools_count(), ARRAY_SIZE(all_tools), "table size");
    bool schemas_ok = true, desc_ok = true;
    for (size_t i = 0; i < ARRAY_SIZE(all_tools); i++) {
        json_t *t = find_tool(cur, all_tools[i]);
        json_t *s = json_object_get(t, "inputSchema");
        if (!t || !s || strcmp(json_string_value(json_object_get(s, "type")), "object") != 0 ||
            !json_is_object(json_object_get(s, "properties")) ||
            !json_is_array(json_object_get(s, "required")) ||
            !json_is_false(json_object_get(s, "additionalProperties"))) {
            diag("bad schema for %s", all_tools[i]);
            schemas_ok = false;
        }
        const char *d = json_string_value(json_object_get(t, "description"));
        if (!d || strlen(d) < 20)
            desc_ok = false;
    }
    ok(schemas_ok, "every tool: inputSchema object/properties/required/additionalProperties:false");
    ok(desc_ok, "every tool has a description");
    ok(json_object_get(find_tool(old, "capsem_list"), "annotations") == NULL,
       "no annotations in 2024-11-05");
    json_t *a = json_object_get(find_tool(cur, "capsem_list"), "annotations");
    ok(json_is_true(json_object_get(a, "readOnlyHint")), "capsem_list readOnlyHint");
    a = json_object_get(find_tool(cur, "capsem_read_file"), "annotations");
    ok(json_is_true(json_object_get(a, "readOnlyHint")), "capsem_read_file readOnlyHint");
    const char *destructive[] = {"capsem_delete", "capsem_purge", "capsem_stop",
                                 "capsem_image_delete"};
    for (size_t i = 0; i < ARRAY_SIZE(destructive); i++) {
        a = json_object_get(find_tool(cur, destructive[i]), "annotations");
        ok(json_is_true(json_object_get(a, "destructiveHint")) &&
               json_is_false(json_object_get(a, "readOnlyHint")),
           "%s destructiveHint", destructive[i]);
    }
    a = json_object_get(find_tool(cur, "capsem_exec"), "annotations");
    ok(json_is_false(json_object_get(a, "destructiveHint")), "capsem_exec not destructive");
    json_t *exec_req =
        json_object_get(json_object_get(find_tool(cur, "capsem_exec"), "inputSchema"), "required");
    ok(json_array_size(exec_req) == 2 &&
           strcmp(json_string_value(json_array_get(exec_req, 0)), "id") == 0 &&
           strcmp(json_string_value(json_array_get(exec_req, 1)), "command") == 0,
       "capsem_exec requires id and command");
    json_decref(old);
    json_decref(cur);
}

static void validation(const char *tool, const char *args, const char *want)
{
    const struct tool_def *def = mcp_tool_find(tool);
    json_t *a = json_loads(args, 0, NULL);
    struct tool_run run;
    struct err *e = NULL;
    int rc = mcp_tool_start(&run, def, a, &e);
    if (want) {
        ok(rc < 0 && e && e->status == 400 && strcmp(err_msg(e), want) == 0, "%s %s -> %s", tool,
           args, want);
        if (e && strcmp(err_msg(e), want) != 0)
            diag("  got: %s", err_msg(e));
    } else {
        ok(rc == 0, "%s %s accepted", tool, args);
        if (e)
            diag("  got: %s", err_msg(e));
    }
    err_free(e);
    mcp_tool_run_clear(&run);
    json_decref(a);
}

static void test_validation(void)
{
    validation("capsem_exec", "{\"command\":\"ls\"}", "missing required argument: id");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"x\":1}", "unknown argument: x");
    validation("capsem_exec", "{\"id\":5,\"command\":\"ls\"}", "argument id must be a string");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"timeout\":\"9\"}",
               "argument timeout must be an integer");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"timeout\":1.5}",
               "argument timeout must be an integer");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"timeout\":0}",
               "argument timeout must be at least 1");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"timeout\":86401}",
               "argument timeout must be at most 86400");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"\"}",
               "argument command must not be empty");
    validation("capsem_exec", "{\"id\":\"a\",\"command\":\"ls\",\"timeout\":10.0}", NULL);
    validation("capsem_read_file", "{\"id\":\"a\",\"path\":\"x\",\"encoding\":\"hex\"}",
               "argument encoding must be one of: utf8, base64");
    validation("capsem_create", "{\"env\":{\"A\":1}}", "argument env.A must be a string");
    validation("capsem_create", "{\"env\":[]}", "argument env must be an object");
    validation("capsem_create", "{\"ramMb\":true}", "argument ramMb must be an integer");
    validation("capsem_create", "{\"image\":\"a\",\"from\":\"b\"}",
               "give either image or from, not both");
    validation("capsem_purge", "{\"all\":\"yes\"}", "argument all must be a boolean");
    validation("capsem_list", "{\"x\":null}", "unknown argument: x");
    validation(
        "capsem_mcp_call", "{\"name\":\"nounderscore\"}",
        "invalid tool name: nounderscore (expected <server>__<tool>, e.g. local__fetch_http)");
    validation("capsem_mcp_call", "{\"name\":\"a__b\",\"arguments\":[]}",
               "argument arguments must be an object");
    validation("capsem_info", "{\"id\":\"a/b\"}", "invalid VM reference: a/b");
    validation("capsem_info", "{\"id\":\"..\"}", "invalid VM reference: ..");
    validation("capsem_image_info", "{\"name\":\"x\\\\y\"}", "invalid image name: x\\y");
    validation("capsem_mcp_servers", "{\"profile\":\"../etc\"}", "invalid profile: ../etc");
}

/* One tools/call through the server; checks the request it made. */
static void expect_request(struct mock *m, const char *tool, const char *args, const char *method,
                           const char *path, const char *body, long timeout)
{
    size_t before = m->nreq;
    call_tool(m, 1, tool, args);
    struct mock_req *r = m->nreq > before ? last_req(m) : NULL;
    ok(r && strcmp(r->method, method) == 0 && strcmp(r->path, path) == 0, "%s: %s %s", tool, method,
       path);
    if (r && (strcmp(r->method, method) != 0 || strcmp(r->path, path) != 0))
        diag("  got %s %s", r->method, r->path);
    is_str(r ? r->body : NULL, body, "%s: body", tool);
    is_int(r ? r->timeout : -1, timeout, "%s: timeout %ld s", tool, timeout);
    if (r)
        complete_json(m, r->token, 200, "{}");
    json_decref(next_out(m));
}

static void test_mapping(void)
{
    struct mock m;
    mock_init(&m, 0);
    init_session(&m, "2025-06-18");
    expect_request(&m, "capsem_list", NULL, "GET", "/vms/list", NULL, 120);
    expect_request(&m, "capsem_create",
                   "{\"name\":\"dev\",\"profile\":\"minimal\",\"ramMb\":512,\"cpuCount\":2,"
                   "\"env\":{\"A\":\"1\"},\"from\":\"img\"}",
                   "POST", "/vms/create",
                   "{\"cpus\":2,\"env\":{\"A\":\"1\"},\"image\":\"img\",\"name\":\"dev\","
                   "\"profile_id\":\"minimal\",\"ram_mb\":512}",
                   120);
    expect_request(&m, "capsem_create", "{}", "POST", "/vms/create", "{}", 120);
    expect_request(&m, "capsem_info", "{\"id\":\"my vm\"}", "GET", "/vms/my%20vm/info", NULL, 120);
    expect_request(&m, "capsem_exec", "{\"id\":\"v\",\"command\":\"echo hi\"}", "POST",
                   "/vms/v/exec", "{\"command\":\"echo hi\",\"timeout_secs\":30}", 60);
    expect_request(&m, "capsem_exec", "{\"id\":\"v\",\"command\":\"ls\",\"timeout\":5.0}", "POST",
                   "/vms/v/exec", "{\"command\":\"ls\",\"timeout_secs\":5}", 35);
    expect_request(
        &m, "capsem_run", "{\"command\":\"ls\",\"profile\":\"minimal\",\"ramMb\":512}", "POST",
        "/run",
        "{\"command\":\"ls\",\"profile_id\":\"minimal\",\"ram_mb\":512,\"timeout_secs\":60}", 90);
    expect_request(&m, "capsem_read_file", "{\"id\":\"v\",\"path\":\"a.txt\"}", "POST",
                   "/vms/v/files/read", "{\"encoding\":\"utf8\",\"path\":\"a.txt\"}", 120);
    expect_request(&m, "capsem_write_file",
                   "{\"id\":\"v\",\"path\":\"a\",\"content\":\"aGk=\",\"encoding\":\"base64\"}",
                   "POST", "/vms/v/files/write",
                   "{\"content\":\"aGk=\",\"encoding\":\"base64\",\"path\":\"a\"}", 120);
    expect_request(&m, "capsem_stop", "{\"id\":\"v\"}", "POST", "/vms/v/stop", NULL, 120);
    expect_request(&m, "capsem_delete", "{\"id\":\"v\"}", "DELETE", "/vms/v/delete", NULL, 120);
    expect_request(&m, "capsem_suspend", "{\"id\":\"v\"}", "POST", "/vms/v/pause", NULL, 120);
    expect_request(&m, "capsem_resume", "{\"name\":\"dev\"}", "POST", "/vms/dev/resume", NULL, 120);
    expect_request(&m, "capsem_ask_list", "{\"id\":\"dev\"}", "GET", "/vms/dev/asks", NULL, 120);
    expect_request(&m, "capsem_ask_resolve",
                   "{\"id\":\"dev\",\"ask_id\":\"0a1b2c3d4e5f\",\"decision\":\"approve\"}",
                   "POST", "/vms/dev/asks/0a1b2c3d4e5f",
                   "{\"decision\":\"approve\",\"remember\":\"once\",\"resolver\":\"mcp\"}", 120);
    expect_request(&m, "capsem_persist", "{\"id\":\"v\",\"name\":\"keep\"}", "POST", "/vms/v/save",
                   "{\"name\":\"keep\"}", 120);
    expect_request(&m, "capsem_fork", "{\"id\":\"v\",\"name\":\"img\",\"description\":\"d\"}",
                   "POST", "/vms/v/fork", "{\"description\":\"d\",\"name\":\"img\"}", 120);
    expect_request(&m, "capsem_purge", NULL, "POST", "/purge", "{\"all\":false}", 120);
    expect_request(&m, "capsem_purge", "{\"all\":true}", "POST", "/purge", "{\"all\":true}", 120);
    expect_request(&m, "capsem_image_list", NULL, "GET", "/images/list", NULL, 120);
    expect_request(&m, "capsem_image_info", "{\"name\":\"img\"}", "GET", "/images/img/info", NULL,
                   120);
    expect_request(&m, "capsem_image_delete", "{\"name\":\"img\"}", "DELETE", "/images/img/delete",
                   NULL, 120);
    expect_request(&m, "capsem_vm_logs", "{\"id\":\"v\"}", "GET", "/vms/v/logs", NULL, 120);
    expect_request(&m, "capsem_vm_logs", "{\"id\":\"v\",\"tail\":5}", "GET", "/vms/v/logs?tail=5",
                   NULL, 120);
    expect_request(&m, "capsem_vm_logs", "{\"id\":\"v\",\"tail\":5,\"grep\":\"x\"}", "GET",
                   "/vms/v/logs?tail=10000", NULL, 120);
    expect_request(&m, "capsem_mcp_servers", NULL, "GET", "/profiles/code/mcp/servers/list", NULL,
                   120);
    expect_request(&m, "capsem_mcp_tools", "{\"server\":\"local\",\"profile\":\"minimal\"}", "GET",
                   "/profiles/minimal/mcp/servers/local/tools/list", NULL, 120);
    expect_request(&m, "capsem_mcp_call", "{\"name\":\"local__fetch_http\"}", "POST",
                   "/profiles/code/mcp/servers/local/tools/fetch_http/call", "{\"arguments\":{}}",
                   120);
    expect_request(&m, "capsem_mcp_call",
                   "{\"name\":\"srv__a__b\",\"arguments\":{\"u\":1},\"profile\":\"p\"}", "POST",
                   "/profiles/p/mcp/servers/srv/tools/a__b/call", "{\"arguments\":{\"u\":1}}", 120);
    ok(last_req(&m)->autostart, "tool calls may auto-start the service");
    mock_free(&m);
}

static json_t *run_tool(struct mock *m, const char *tool, const char *args, long status,
                        const char *answer)
{
    call_tool(m, 42, tool, args);
    complete_json(m, last_req(m)->token, status, answer);
    return next_out(m);
}

static void test_results(void)
{
    struct mock m;
    mock_init(&m, 0);
    init_session(&m, "2025-06-18");
    json_t *r = run_tool(&m, "capsem_info", "{\"id\":\"v\"}", 200, "{\"id\":\"v\",\"cpus\":2}");
    is_str(result_text(r), "{\n  \"id\": \"v\",\n  \"cpus\": 2\n}", "text is the 2-space JSON");
    json_t *sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    ok(json_integer_value(json_object_get(sc, "cpus")) == 2, "structuredContent in 2025-06-18");
    ok(!result_is_error(r), "not an error");
    json_decref(r);

    r = run_tool(&m, "capsem_info", "{\"id\":\"zz\"}", 404, "{\"error\":\"VM not found: zz\"}");
    ok(result_is_error(r), "service 404 -> isError");
    is_str(result_text(r), "404: VM not found: zz", "text <status>: <error>");
    json_decref(r);

    r = run_tool(&m, "capsem_stop", "{\"id\":\"v\"}", 404, "");
    is_str(result_text(r),
           "404: capsem-service does not offer POST /vms/v/stop (not in this service version)",
           "route missing in the service");
    json_decref(r);

    r = run_tool(&m, "capsem_exec", "{\"id\":\"v\",\"command\":\"false\"}", 200,
                 "{\"stdout\":\"\",\"exit_code\":1}");
    ok(!result_is_error(r), "guest non-zero exit is a normal result");
    json_decref(r);

    call_tool(&m, 5, "capsem_exec", "{\"id\":\"v\"}");
    r = next_out(&m);
    ok(result_is_error(r), "bad arguments -> isError");
    is_str(result_text(r), "400: missing required argument: command", "validation text");
    json_decref(r);

    call_tool(&m, 6, "capsem_list", NULL);
    complete_transport(&m, last_req(&m)->token, ECONNREFUSED, "cannot connect to capsem-service");
    r = next_out(&m);
    ok(result_is_error(r) && strcmp(result_text(r), "cannot connect to capsem-service") == 0,
       "transport failure -> isError with the message");
    json_decref(r);

    /* capsem_version: never auto-starts; unreachable is a normal result. */
    call_tool(&m, 7, "capsem_version", NULL);
    ok(!last_req(&m)->autostart && strcmp(last_req(&m)->path, "/version") == 0,
       "capsem_version: GET /version without auto-start");
    complete_transport(&m, last_req(&m)->token, ENOENT, "no socket");
    r = next_out(&m);
    sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    is_str(json_string_value(json_object_get(sc, "service")), "unreachable: no socket",
           "service unreachable: <reason>");
    ok(json_object_get(sc, "mcp_version") && !json_object_get(sc, "service_version"),
       "mcp_version, no service_version");
    json_decref(r);
    r = run_tool(&m, "capsem_version", NULL, 200, "{\"version\":\"1.2.3\"}");
    sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    ok(strcmp(json_string_value(json_object_get(sc, "service")), "connected") == 0 &&
           strcmp(json_string_value(json_object_get(sc, "service_version")), "1.2.3") == 0,
       "connected + service_version");
    json_decref(r);
    mock_free(&m);

    mock_init(&m, 0);
    init_session(&m, "2025-03-26");
    r = run_tool(&m, "capsem_list", NULL, 200, "{\"sandboxes\":[]}");
    ok(json_object_get(json_object_get(r, "result"), "structuredContent") == NULL,
       "no structuredContent before 2025-06-18");
    json_decref(r);
    mock_free(&m);
}

static void test_special_tools(void)
{
    struct mock m;
    mock_init(&m, 0);
    init_session(&m, "2025-06-18");
    json_t *r = run_tool(&m, "capsem_vm_logs", "{\"id\":\"v\",\"grep\":\"ERR\",\"tail\":1}", 200,
                         "{\"logs\":\"a\\nerror 1\\nb\\nError 2\\n\",\"serial_logs\":\"a\\nerror "
                         "1\\nb\\nError 2\\n\",\"process_logs\":\"ok\\nerr x\\n\"}");
    json_t *sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    is_str(json_string_value(json_object_get(sc, "logs")), "Error 2\n", "vm_logs grep+tail logs");
    is_str(json_string_value(json_object_get(sc, "process_logs")), "err x\n",
           "vm_logs grep+tail process_logs");
    json_decref(r);

    call_tool(&m, 3, "capsem_service_logs", "{\"grep\":\"a b&c\",\"tail\":5}");
    struct mock_req *q = last_req(&m);
    is_str(q->path, "/service-logs?tail=5&grep=a%20b%26c", "service_logs query");
    ok(q->text, "service_logs answer is text");
    complete_text(&m, q->token, 200, "line1\nline2\n");
    r = next_out(&m);
    sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    is_str(json_string_value(json_object_get(sc, "logs")), "line1\nline2\n", "{logs: text}");
    json_decref(r);

    r = run_tool(&m, "capsem_mcp_servers", NULL, 200, "[{\"name\":\"local\"}]");
    sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    ok(json_array_size(json_object_get(sc, "servers")) == 1, "mcp_servers wraps the array");
    json_decref(r);

    /* capsem_mcp_tools without a server: list, then each server's tools. */
    call_tool(&m, 4, "capsem_mcp_tools", NULL);
    is_str(last_req(&m)->path, "/profiles/code/mcp/servers/list", "mcp_tools: servers first");
    complete_json(&m, last_req(&m)->token, 200, "[{\"name\":\"a\"},{\"name\":\"b\"}]");
    is_str(last_req(&m)->path, "/profiles/code/mcp/servers/a/tools/list", "then server a");
    complete_json(&m, last_req(&m)->token, 200, "[{\"namespaced_name\":\"a__x\"}]");
    is_str(last_req(&m)->path, "/profiles/code/mcp/servers/b/tools/list", "then server b");
    ok(no_output(&m), "no answer before the last step");
    complete_json(&m, last_req(&m)->token, 200,
                  "[{\"namespaced_name\":\"b__y\"},{\"namespaced_name\":\"b__z\"}]");
    r = next_out(&m);
    sc = json_object_get(json_object_get(r, "result"), "structuredContent");
    ok(json_array_size(json_object_get(sc, "tools")) == 3, "tools of both servers");
    json_decref(r);

    call_tool(&m, 5, "capsem_mcp_tools", NULL);
    complete_json(&m, last_req(&m)->token, 200, "[{\"name\":\"a\"}]");
    complete_json(&m, last_req(&m)->token, 503, "{\"error\":\"no running VM\"}");
    r = next_out(&m);
    is_str(result_text(r), "503: no running VM", "a failing step fails the call");
    json_decref(r);
    mock_free(&m);
}

static void test_helpers(void)
{
    char *s = mcp_filter_lines("one\nTWO\nthree\ntwo again", "two", 0);
    is_str(s, "TWO\ntwo again", "filter: case-insensitive, last line without newline");
    free(s);
    s = mcp_filter_lines("a\nb\nc\n", NULL, 2);
    is_str(s, "b\nc\n", "filter: tail only");
    free(s);
    s = mcp_filter_lines("a\nb\n", "zzz", 5);
    is_str(s, "", "filter: nothing matches");
    free(s);
    s = mcp_filter_lines("", "", 3);
    is_str(s, "", "filter: empty text");
    free(s);
    s = mcp_path_segment("a b/é");
    ok(s == NULL, "segment with '/' refused");
    free(s);
    s = mcp_path_segment("a b%é");
    is_str(s, "a%20b%25%C3%A9", "segment percent-encoded");
    free(s);
    ok(mcp_path_segment("") == NULL, "empty segment refused");
}

int main(void)
{
    test_list();
    test_validation();
    test_mapping();
    test_results();
    test_special_tools();
    test_helpers();
    return done_testing();
}
