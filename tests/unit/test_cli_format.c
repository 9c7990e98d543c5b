/* Unit tests for the capsem CLI's pure parts: --ram parsing, uptime and
 * size formats, tables, argument splitting, rendering of service JSON, the
 * terminal socket path and the terminal session framing. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cli/args.h"
#include "cli/client.h"
#include "cli/format.h"
#include "cli/render.h"
#include "cli/termclient.h"
#include "net/ws.h"
#include "tap.h"

static void test_ram(void)
{
    static const struct {
        const char *in;
        int64_t mb;
    } good[] = {{"4", 4096},    {"1", 1024},   {"512M", 512},     {"512m", 512},
                {"2G", 2048},   {"2g", 2048},  {"2GB", 2048},     {"2GiB", 2048},
                {"768MB", 768}, {"16", 16384}, {"1024G", 1048576}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t mb = 0;
        struct err *e = NULL;
        int rc = cli_parse_ram_mb(good[i].in, &mb, &e);
        ok(rc == 0 && mb == good[i].mb, "--ram %s = %lld MiB (got %lld)", good[i].in,
           (long long)good[i].mb, (long long)mb);
        err_free(e);
    }
    static const char *const bad[] = {"",   "0",  "0M",  "M",    "-1",    "1.5G",
                                      "4K", "4T", "4 G", "4MBs", "1025G", "99999999999999999999",
                                      "G4", " 4", "4M ", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t mb = -7;
        struct err *e = NULL;
        int rc = cli_parse_ram_mb(bad[i], &mb, &e);
        ok(rc < 0 && mb == -7 && e && strstr(err_msg(e), "--ram"), "--ram '%s' rejected", bad[i]);
        err_free(e);
    }
}

static void test_counts_env(void)
{
    int64_t v = 0;
    struct err *e = NULL;
    ok(cli_parse_count("--cpu", "4", 1024, &v, NULL) == 0 && v == 4, "--cpu 4");
    ok(cli_parse_count("--cpu", "0", 1024, &v, &e) < 0, "--cpu 0 rejected");
    is_str(err_msg(e), "invalid --cpu value '0': expected a whole number from 1 to 1024",
           "count error message");
    err_free(e);
    ok(cli_parse_count("--timeout", "1x", 100, &v, NULL) < 0, "--timeout 1x rejected");
    ok(cli_parse_count("--timeout", "", 100, &v, NULL) < 0, "--timeout '' rejected");

    char *key = NULL;
    const char *val = NULL;
    ok(cli_parse_env("A=b=c", &key, &val, NULL) == 0, "env A=b=c parses");
    is_str(key, "A", "env key");
    is_str(val, "b=c", "env value keeps later '='");
    free(key);
    key = NULL;
    ok(cli_parse_env("EMPTY=", &key, &val, NULL) == 0 && *val == '\0', "env empty value");
    free(key);
    key = NULL;
    ok(cli_parse_env("=x", &key, &val, NULL) < 0 && !key, "env without key rejected");
    ok(cli_parse_env("NOEQ", &key, &val, NULL) < 0 && !key, "env without '=' rejected");
}

static void test_uptime_size(void)
{
    static const struct {
        int64_t secs;
        const char *want;
    } up[] = {{-1, "-"},           {0, "0s"},         {45, "45s"},      {59, "59s"},
              {60, "1m"},          {720, "12m"},      {3599, "59m"},    {3600, "1h00m"},
              {11040, "3h04m"},    {86399, "23h59m"}, {86400, "1d00h"}, {183600, "2d03h"},
              {8640000, "100d00h"}};
    char buf[32];
    for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++) {
        cli_format_uptime(up[i].secs, buf, sizeof(buf));
        is_str(buf, up[i].want, "uptime %lld", (long long)up[i].secs);
    }
    static const struct {
        uint64_t bytes;
        const char *want;
    } sz[] = {
        {0, "0B"},      {1023, "1023B"},     {1024, "1.0K"},          {1536, "1.5K"},
        {10240, "10K"}, {356515840, "340M"}, {2147483648ULL, "2.0G"}, {1099511627776ULL, "1.0T"}};
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        cli_format_size(sz[i].bytes, buf, sizeof(buf));
        is_str(buf, sz[i].want, "size %llu", (unsigned long long)sz[i].bytes);
    }
}

static void test_words_paths(void)
{
    const char *w[] = {"echo", "a b", "", "$HOME"};
    char *s = cli_join_words(w, 4);
    is_str(s, "echo a b  $HOME", "words joined by one space, kept verbatim");
    free(s);
    s = cli_join_words(w, 0);
    is_str(s, "", "no words");
    free(s);

    s = cli_ws_socket_path("/home/u/.capsem/run/instances/abc.sock");
    is_str(s, "/home/u/.capsem/run/instances/abc-ws.sock", "ws path replaces .sock");
    free(s);
    s = cli_ws_socket_path("/x/abc");
    is_str(s, "/x/abc-ws.sock", "ws path appended without .sock");
    free(s);
    s = cli_ws_socket_path("/x/a.sock.sock");
    is_str(s, "/x/a.sock-ws.sock", "only the trailing .sock is replaced");
    free(s);

    is_int(cli_text_width("abc"), 3, "ascii width");
    is_int(cli_text_width("h\xc3\xa9\xe2\x82\xac"), 3, "utf-8 width counts code points");

    struct err *e = NULL;
    s = cli_vm_path("dev", "/info", NULL);
    is_str(s, "/vms/dev/info", "vm path");
    free(s);
    s = cli_vm_path("a b%", "/exec", NULL);
    is_str(s, "/vms/a%20b%25/exec", "vm path percent-encodes");
    free(s);
    static const char *const refs[] = {"", "a/b", "a\\b", "..", "x..y"};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        s = cli_vm_path(refs[i], "/info", &e);
        ok(!s && e && e->status == 400 && strstr(err_msg(e), "invalid VM reference: "),
           "vm ref '%s' refused like the service", refs[i]);
        err_free(e);
        e = NULL;
    }
}

static void test_table(void)
{
    struct cli_table *t = cli_table_new(3);
    const char *h[] = {"ID", "NAME", "X"};
    const char *r1[] = {"1", "a-long-name", "y"};
    const char *r2[] = {"22", "b", NULL};
    cli_table_add(t, h);
    cli_table_add(t, r1);
    cli_table_note(t, "  ! broken");
    cli_table_add(t, r2);
    struct buf b;
    buf_init(&b, 4096);
    ok(cli_table_render(t, &b) == 0, "table renders");
    buf_append(&b, "", 1);
    is_str((char *)buf_head(&b),
           "ID  NAME         X\n"
           "1   a-long-name  y\n"
           "  ! broken\n"
           "22  b            \n",
           "table columns, two spaces, notes after their row");
    buf_free(&b);
    is_int(cli_table_rows(t), 3, "row count");
    cli_table_free(t);
    struct cli_table *empty = cli_table_new(2);
    ok(cli_table_note(empty, "x") < 0, "note without a row refused");
    cli_table_free(empty);
}

enum { O_T = 1, O_N, O_Q, O_Y, O_E };
static const struct cli_opt opts[] = {
    {O_T, "timeout", 0, "SECS", "t"}, {O_N, "name", 'n', "NAME", "n"},
    {O_Q, "quiet", 'q', NULL, "q"},   {O_Y, NULL, 'y', NULL, "y"},
    {O_E, NULL, 'e', "K=V", "e"},
};

struct seen {
    char log[256];
};

static int on_opt(void *ctx, const struct cli_opt *o, const char *v, struct err **errp)
{
    struct seen *s = ctx;
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof(s->log) - n, "[%d:%s]", o->id, v ? v : "-");
    return 0;
}

/* Parses a space-separated command line; returns rc, fills log and the
 * positionals joined with '|' and the tail start. */
static int parse(const char *line, int stop_after, struct seen *s, char *pos, size_t cap, int *tail)
{
    char copy[256];
    char *argv[32];
    int argc = 0;
    snprintf(copy, sizeof(copy), "%s", line);
    for (char *save = NULL, *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
        argv[argc++] = strcmp(w, "_") == 0 ? (char *)"" : w;
    memset(s, 0, sizeof(*s));
    struct cli_args a;
    struct err *e = NULL;
    int rc = cli_args_parse(opts, sizeof(opts) / sizeof(opts[0]), stop_after, argc, argv, on_opt, s,
                            &a, &e);
    pos[0] = '\0';
    if (rc >= 0) {
        for (int i = 0; i < a.npos; i++)
            snprintf(pos + strlen(pos), cap - strlen(pos), "%s%s", i ? "|" : "", a.pos[i]);
        *tail = a.tail;
        cli_args_free(&a);
    } else {
        snprintf(pos, cap, "ERR %s", err_msg(e));
    }
    err_free(e);
    return rc;
}

static void test_args(void)
{
    struct seen s;
    char pos[256];
    int tail = -1;
    ok(parse("vm --timeout 5 ls -la", 1, &s, pos, sizeof(pos), &tail) == 0, "exec line");
    is_str(s.log, "[1:5]", "exec: --timeout before the command");
    is_str(pos, "vm|ls|-la", "exec: flags after the command are words");
    is_int(tail, 1, "exec: tail starts at the command");

    parse("vm -- --timeout 5", 1, &s, pos, sizeof(pos), &tail);
    is_str(s.log, "", "exec: -- ends flags");
    is_str(pos, "vm|--timeout|5", "exec: words after --");
    is_int(tail, 1, "exec: tail after --");

    parse("-e A=1 -eB=2 --timeout=9 echo -q", 0, &s, pos, sizeof(pos), &tail);
    is_str(s.log, "[5:A=1][5:B=2][1:9]", "run: -e K=V, -eK=V, --long=value");
    is_str(pos, "echo|-q", "run: command words");
    is_int(tail, 0, "run: tail from the first word");

    parse("a -q b --name=x -qy c", -1, &s, pos, sizeof(pos), &tail);
    is_str(s.log, "[3:-][2:x][3:-][4:-]", "mixed: flags anywhere, clusters");
    is_str(pos, "a|b|c", "mixed: positionals");
    is_int(tail, 3, "mixed: no tail");

    parse("-nfoo - _", -1, &s, pos, sizeof(pos), &tail);
    is_str(s.log, "[2:foo]", "-nVALUE");
    is_str(pos, "-|", "lone - and empty words are positional");

    ok(parse("vm", 1, &s, pos, sizeof(pos), &tail) == 0 && tail == 1, "exec without command");
    ok(parse("x --help", -1, &s, pos, sizeof(pos), &tail) == CLI_ARGS_HELP, "--help");
    ok(parse("-qh", -1, &s, pos, sizeof(pos), &tail) == CLI_ARGS_HELP, "-h in a cluster");
    ok(parse("ls --help", 0, &s, pos, sizeof(pos), &tail) == 0, "--help in the tail is a word");
    parse("--bogus", -1, &s, pos, sizeof(pos), &tail);
    is_str(pos, "ERR unknown flag: --bogus", "unknown long flag");
    parse("-z", -1, &s, pos, sizeof(pos), &tail);
    is_str(pos, "ERR unknown flag: -z", "unknown short flag");
    parse("--timeout", -1, &s, pos, sizeof(pos), &tail);
    is_str(pos, "ERR flag --timeout needs a value (SECS)", "missing value");
    parse("--quiet=1", -1, &s, pos, sizeof(pos), &tail);
    is_str(pos, "ERR flag --quiet takes no value", "value on a flag");
    parse("-qn", -1, &s, pos, sizeof(pos), &tail);
    is_str(pos, "ERR flag -n needs a value (NAME)", "cluster ending in a value flag");

    char *help = cli_opts_help(opts, 2);
    is_str(help,
           "      --timeout SECS  t\n"
           "  -n, --name NAME     n\n"
           "  -h, --help          show this help\n",
           "option help is aligned");
    free(help);
}

static json_t *load(const char *s)
{
    json_t *j = json_loads(s, JSON_ALLOW_NUL, NULL);
    if (!j)
        diag("bad test JSON: %s", s);
    return j;
}

static char *render_str(struct buf *b)
{
    buf_append(b, "", 1);
    return (char *)buf_head(b);
}

static void test_render(void)
{
    json_t *j = load("{\"sandboxes\":[{\"id\":\"11111111-1111-4111-8111-111111111111\","
                     "\"name\":\"dev\",\"status\":\"Running\",\"persistent\":true,\"cpus\":2,"
                     "\"ram_mb\":4096,\"uptime_secs\":45,\"last_error\":null},"
                     "{\"id\":\"22222222-2222-4222-8222-222222222222\",\"name\":\"code-10\","
                     "\"status\":\"Stopped\",\"persistent\":false,\"cpus\":8,\"ram_mb\":512,"
                     "\"uptime_secs\":99,\"last_error\":\"boot failed\"}]}");
    struct buf b;
    buf_init(&b, 1 << 16);
    ok(cli_render_list(j, false, &b, NULL) == 0, "list renders");
    is_str(
        render_str(&b),
        "ID                                    NAME     STATUS   TYPE        CPUS  RAM    UPTIME\n"
        "11111111-1111-4111-8111-111111111111  dev      Running  persistent  2     4096M  45s\n"
        "22222222-2222-4222-8222-222222222222  code-10  Stopped  ephemeral   8     512M   -\n"
        "  ! boot failed\n",
        "list table");
    buf_reset(&b);
    cli_render_list(j, true, &b, NULL);
    is_str(render_str(&b),
           "11111111-1111-4111-8111-111111111111\n22222222-2222-4222-8222-222222222222\n",
           "list -q");
    json_decref(j);

    j = load("{\"sandboxes\":[]}");
    buf_reset(&b);
    cli_render_list(j, false, &b, NULL);
    is_str(render_str(&b), "No VMs.\n", "empty list");
    buf_reset(&b);
    cli_render_list(j, true, &b, NULL);
    is_str(render_str(&b), "", "empty list -q prints nothing");
    buf_reset(&b);
    cli_render_json(j, &b, NULL);
    is_str(render_str(&b), "{\n  \"sandboxes\": []\n}\n", "json is 2-space indented");
    json_decref(j);

    j = load("{}");
    struct err *e = NULL;
    ok(cli_render_list(j, false, &b, &e) < 0 && e, "list without sandboxes is an error");
    err_free(e);
    json_decref(j);
    buf_free(&b);
}

static void test_info(void)
{
    json_t *j = load("{\"id\":\"11111111-1111-4111-8111-111111111111\",\"name\":\"dev\","
                     "\"profile_id\":\"code\",\"status\":\"Running\",\"persistent\":true,"
                     "\"pid\":4242,\"cpus\":2,\"ram_mb\":2048,\"image\":null,"
                     "\"base_version\":\"2026.11.1\",\"created_at\":\"2026-11-29T10:00:00Z\","
                     "\"uptime_secs\":11040,\"last_error\":\"disk nearly full\","
                     "\"available_actions\":[\"pause\",\"stop\",\"fork\",\"delete\"],"
                     "\"size_bytes\":356515840,\"uds_path\":\"/r/i/x.sock\"}");
    struct buf b;
    buf_init(&b, 1 << 16);
    ok(cli_render_info(j, &b, NULL) == 0, "info renders");
    is_str(render_str(&b),
           "ID: 11111111-1111-4111-8111-111111111111\nName: dev\nStatus: Running\n"
           "Type: persistent\nProfile: code\nImage: -\nBase: 2026.11.1\nCPUs: 2\nRAM: 2048M\n"
           "PID: 4242\nCreated: 2026-11-29T10:00:00Z\nUptime: 3h04m\nDisk: 340M\n"
           "Problem: disk nearly full\nActions: pause, stop, fork, delete\n",
           "info lines");
    json_decref(j);

    j = load("{\"id\":\"x\",\"name\":\"old\",\"status\":\"Stopped\",\"persistent\":true,"
             "\"pid\":0,\"cpus\":1,\"ram_mb\":256,\"image\":\"base-img\",\"uptime_secs\":5,"
             "\"last_error\":null,\"available_actions\":[]}");
    buf_reset(&b);
    cli_render_info(j, &b, NULL);
    is_str(render_str(&b),
           "ID: x\nName: old\nStatus: Stopped\nType: persistent\nProfile: -\nImage: base-img\n"
           "Base: -\nCPUs: 1\nRAM: 256M\nPID: -\nCreated: -\nUptime: -\nDisk: -\nActions: -\n",
           "info of a stopped VM: no Problem line, dashes");
    json_decref(j);
    buf_free(&b);
}

static void test_exec_result(void)
{
    json_t *j = load("{\"stdout\":\"a\\u0000b\",\"stderr\":\"\",\"exit_code\":137,"
                     "\"truncated\":true,\"timed_out\":false,\"duration_ms\":1500}");
    struct cli_exec_result r;
    ok(cli_exec_result_parse(j, &r, NULL) == 0, "exec result parses");
    is_mem(r.out, r.out_len, "a\0b", 3, "stdout keeps NUL bytes");
    is_int(r.exit_code, 137, "exit code");
    struct buf b;
    buf_init(&b, 4096);
    cli_exec_notes(&r, 0, &b);
    is_str(render_str(&b), "capsem: output truncated at 3 bytes\n", "truncated note");
    json_decref(j);

    j = load("{\"stdout\":\"\",\"stderr\":\"x\",\"exit_code\":124,\"truncated\":false,"
             "\"timed_out\":true,\"duration_ms\":2600}");
    cli_exec_result_parse(j, &r, NULL);
    buf_reset(&b);
    cli_exec_notes(&r, 0, &b);
    is_str(render_str(&b), "capsem: command timed out after 3 s\n", "timeout from duration");
    buf_reset(&b);
    cli_exec_notes(&r, 2, &b);
    is_str(render_str(&b), "capsem: command timed out after 2 s\n", "timeout as requested");
    json_decref(j);

    j = load("{\"stdout\":\"\",\"stderr\":\"\",\"exit_code\":300}");
    cli_exec_result_parse(j, &r, NULL);
    is_int(r.exit_code, 1, "out-of-range exit code becomes 1");
    json_decref(j);
    j = load("{\"stdout\":1}");
    struct err *e = NULL;
    ok(cli_exec_result_parse(j, &r, &e) < 0 && e, "malformed exec result is an error");
    err_free(e);
    json_decref(j);
    buf_free(&b);
}

/* Decodes everything the client queued, as the server would. */
static int server_read(struct cli_term *t, struct ws_decoder *srv, int *op, char *out, size_t cap)
{
    struct buf *q = cli_term_outq(t);
    size_t used = 0;
    enum ws_event ev = ws_decoder_feed(srv, buf_head(q), q->len, &used);
    buf_consume(q, used);
    size_t n = 0;
    const uint8_t *p = ws_decoder_payload(srv, &n);
    *op = ev == WS_MESSAGE ? (int)ws_decoder_opcode(srv)
          : ev == WS_PING  ? -1
          : ev == WS_CLOSE ? 8
          : ev == WS_PONG  ? 10
                           : 0;
    if (ev == WS_CLOSE)
        n = 0;
    snprintf(out, cap, "%.*s", (int)n, p ? (const char *)p : "");
    return (int)ev;
}

static void test_term(void)
{
    struct cli_term *t = cli_term_new(NULL);
    struct ws_decoder *srv = ws_decoder_new(WS_ROLE_SERVER, 1 << 20, NULL);
    char got[256];
    int op = 0;

    ok(cli_term_resize(t, 120, 40, NULL) == 0, "resize queued");
    server_read(t, srv, &op, got, sizeof(got));
    is_int(op, WS_OP_TEXT, "resize is a text frame");
    is_str(got, "{\"type\":\"resize\",\"cols\":120,\"rows\":40}", "resize message");

    is_int(cli_term_input(t, (const uint8_t *)"ls\r", 3, NULL), 0, "input queued");
    ok(cli_term_outq(t)->data[cli_term_outq(t)->off + 1] & 0x80, "client frames are masked");
    server_read(t, srv, &op, got, sizeof(got));
    is_int(op, WS_OP_BINARY, "input is a binary frame");
    is_str(got, "ls\r", "input bytes");

    is_int(cli_term_input(t,
                          (const uint8_t *)"ab\x1d"
                                           "cd",
                          5, NULL),
           1, "Ctrl-] detaches");
    server_read(t, srv, &op, got, sizeof(got));
    is_str(got, "ab", "bytes before Ctrl-] are sent, the rest dropped");
    is_int(cli_term_input(t, (const uint8_t *)"\x1d", 1, NULL), 1, "lone Ctrl-]");
    is_int(cli_term_outq(t)->len, 0, "nothing queued for a lone Ctrl-]");

    /* Server to client: binary output, a text frame (ignored), a ping, a close. */
    struct buf in, display;
    buf_init(&in, 4096);
    buf_init(&display, 4096);
    ws_send(&in, WS_ROLE_SERVER, WS_OP_BINARY, "hello\r\n", 7, NULL);
    ws_send(&in, WS_ROLE_SERVER, WS_OP_TEXT, "{}", 2, NULL);
    ws_send(&in, WS_ROLE_SERVER, WS_OP_PING, "p1", 2, NULL);
    ws_send(&in, WS_ROLE_SERVER, WS_OP_BINARY, "$ ", 2, NULL);
    /* Fed in two pieces split inside a frame. */
    is_int(cli_term_feed(t, buf_head(&in), 5, &display, NULL), 0, "partial frame");
    is_int(cli_term_feed(t, buf_head(&in) + 5, in.len - 5, &display, NULL), 0, "rest");
    is_mem(buf_head(&display), display.len, "hello\r\n$ ", 9, "binary frames displayed");
    server_read(t, srv, &op, got, sizeof(got));
    is_int(op, 10, "ping answered with a pong");
    is_str(got, "p1", "pong echoes the payload");

    buf_reset(&in);
    ws_send_close(&in, WS_ROLE_SERVER, 1000, NULL, NULL);
    is_int(cli_term_feed(t, buf_head(&in), in.len, &display, NULL), 1, "close ends the session");
    server_read(t, srv, &op, got, sizeof(got));
    is_int(op, 8, "close echoed");
    is_int(cli_term_input(t, (const uint8_t *)"x", 1, NULL), 0, "input after close");
    is_int(cli_term_outq(t)->len, 0, "nothing sent after close");

    struct cli_term *t2 = cli_term_new(NULL);
    struct err *e = NULL;
    ok(cli_term_feed(t2, (const uint8_t *)"\x82\x85xxxx", 6, &display, &e) < 0 && e,
       "masked server frame is a protocol error");
    ok(cli_term_outq(t2)->len > 0, "a close is queued on protocol errors");
    err_free(e);
    cli_term_free(t2);

    buf_free(&in);
    buf_free(&display);
    ws_decoder_free(srv);
    cli_term_free(t);
}

int main(void)
{
    test_ram();
    test_counts_env();
    test_uptime_size();
    test_words_paths();
    test_table();
    test_args();
    test_render();
    test_info();
    test_exec_result();
    test_term();
    return done_testing();
}
