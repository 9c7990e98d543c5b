/* Unit tests for the capsem CLI's later commands' pure parts: image and
 * history rendering, durations, text cutting, cp arguments, log-follow line
 * matching, route and query building. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cli/client.h"
#include "cli/format.h"
#include "cli/render.h"
#include "tap.h"

static char *render_str(int (*fn)(const json_t *, struct buf *, struct err **), const char *json)
{
    json_t *j = json_loads(json, 0, NULL);
    struct buf b;
    buf_init(&b, 1 << 20);
    char *s = fn(j, &b, NULL) == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    json_decref(j);
    return s;
}

static int images_table(const json_t *j, struct buf *b, struct err **e)
{
    return cli_render_images(j, false, b, e);
}

static int images_names(const json_t *j, struct buf *b, struct err **e)
{
    return cli_render_images(j, true, b, e);
}

static void test_images(void)
{
    const char *two =
        "{\"images\":[{\"name\":\"base\",\"description\":\"python + deps\",\"profile_id\":\"code\","
        "\"base_version\":\"ad36\",\"arch\":\"x86_64\",\"size_bytes\":3145728,"
        "\"created_at\":\"2026-11-29T10:00:00Z\",\"forked_from\":\"dev\",\"source_vm_id\":\"u1\","
        "\"in_use_by\":[\"a\",\"b\"]},{\"name\":\"min\",\"description\":\"\","
        "\"profile_id\":\"minimal\",\"base_version\":\"ad36\",\"size_bytes\":512,"
        "\"created_at\":\"2026-11-29T11:00:00Z\",\"in_use_by\":[]}]}";
    char *s = render_str(images_table, two);
    is_str(s,
           "NAME  BASE  PROFILE  SIZE  CREATED               DESCRIPTION\n"
           "base  ad36  code     3.0M  2026-11-29T10:00:00Z  python + deps\n"
           "min   ad36  minimal  512B  2026-11-29T11:00:00Z  \n",
           "image table");
    free(s);
    s = render_str(images_names, two);
    is_str(s, "base\nmin\n", "image names");
    free(s);
    s = render_str(images_table, "{\"images\":[]}");
    is_str(s, "No images.\n", "no images");
    free(s);
    ok(render_str(images_table, "{}") == NULL, "missing images list is an error");

    const char *one =
        "{\"name\":\"base\",\"description\":\"python + deps\",\"profile_id\":\"code\","
        "\"base_version\":\"ad36\",\"arch\":\"x86_64\",\"size_bytes\":3145728,"
        "\"created_at\":\"2026-11-29T10:00:00Z\",\"forked_from\":\"dev\","
        "\"source_vm_id\":\"u1\",\"in_use_by\":[\"a\",\"b\"]}";
    s = render_str(cli_render_image_info, one);
    is_str(s,
           "Name: base\nDescription: python + deps\nProfile: code\nBase: ad36\nArch: x86_64\n"
           "Size: 3.0M\nCreated: 2026-11-29T10:00:00Z\nForked from: dev\nSource VM: u1\n"
           "In use by: a, b\n",
           "image info lines");
    free(s);
}

static void test_history(void)
{
    char long_cmd[200];
    memset(long_cmd, 'x', sizeof(long_cmd) - 1);
    long_cmd[sizeof(long_cmd) - 1] = '\0';
    char *json = NULL;
    if (asprintf(&json,
                 "{\"commands\":[{\"timestamp\":\"2026-11-29T10:00:02Z\",\"layer\":\"exec\","
                 "\"command\":\"%s\",\"exit_code\":0,\"duration_ms\":1500},"
                 "{\"timestamp\":\"2026-11-29T10:00:01Z\",\"layer\":\"exec\",\"command\":"
                 "\"make\\ntest\",\"exit_code\":124,\"duration_ms\":75000}],\"total\":2,"
                 "\"has_more\":false}",
                 long_cmd) < 0)
        abort();
    char *s = render_str(cli_render_history, json);
    char want[600];
    snprintf(want, sizeof(want),
             "TIME                  EXIT  DURATION  COMMAND\n"
             "2026-11-29T10:00:01Z  124   1m15s     make test\n"
             "2026-11-29T10:00:02Z  0     1.5s      %.77s...\n",
             long_cmd);
    is_str(s, want, "history oldest first, newline flattened, cut at 80");
    free(s);
    free(json);
    s = render_str(cli_render_history, "{\"commands\":[]}");
    is_str(s, "No commands.\n", "empty history");
    free(s);

    char d[24];
    static const struct {
        int64_t ms;
        const char *want;
    } durs[] = {{0, "0ms"},       {999, "999ms"},      {1000, "1.0s"},     {59999, "59.9s"},
                {60000, "1m00s"}, {3599000, "59m59s"}, {3600000, "1h00m"}, {-1, "-"}};
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        cli_format_duration_ms(durs[i].ms, d, sizeof(d));
        is_str(d, durs[i].want, "duration %lld ms", (long long)durs[i].ms);
    }
    char *c = cli_cut_text("h\xc3\xa9llo world", 8);
    is_str(c, "h\xc3\xa9llo...", "cut counts code points");
    free(c);
    c = cli_cut_text("exactly8", 8);
    is_str(c, "exactly8", "no cut at the limit");
    free(c);
}

static void test_cp_args(void)
{
    char *vm = NULL;
    const char *path = NULL;
    is_int(cli_split_remote("dev:notes.txt", &vm, &path), 1, "VM:PATH");
    is_str(vm, "dev", "VM part");
    is_str(path, "notes.txt", "PATH part");
    free(vm);
    vm = NULL;
    is_int(cli_split_remote("dev:", &vm, &path), 1, "VM: with empty path");
    is_str(path, "", "empty path");
    free(vm);
    vm = NULL;
    is_int(cli_split_remote("./a:b", &vm, &path), 0, "./a:b is a host path");
    is_int(cli_split_remote("/tmp/x", &vm, &path), 0, "absolute host path");
    is_int(cli_split_remote(":x", &vm, &path), 0, "empty VM part: host path");
    is_int(cli_split_remote("-", &vm, &path), 0, "- is host side");
    is_str(cli_base_name("/root/a/b.txt"), "b.txt", "base name");
    is_str(cli_base_name("dir/"), "dir/", "trailing slash kept in the component");
    is_str(cli_base_name("plain"), "plain", "no slash");
}

static void lines(struct cli_lines *l, const char *text)
{
    if (cli_lines_split(text, l) < 0)
        abort();
}

static void test_follow(void)
{
    struct cli_lines a, b;
    lines(&a, "one\ntwo\nthr");
    is_int(a.n, 2, "partial last line left out");
    is_str(a.line[1], "two", "lines split");
    lines(&b, "one\ntwo\nthree\nfour\n");
    is_int(cli_lines_new_start(&a, &b), 2, "appended lines start after the overlap");
    cli_lines_free(&a);
    /* A full window that slid by two lines. */
    lines(&a, "1\n2\n3\n4\n");
    cli_lines_free(&b);
    lines(&b, "3\n4\n5\n6\n");
    is_int(cli_lines_new_start(&a, &b), 2, "sliding window");
    cli_lines_free(&b);
    lines(&b, "1\n2\n3\n4\n");
    is_int(cli_lines_new_start(&a, &b), 4, "nothing new");
    cli_lines_free(&b);
    lines(&b, "x\ny\n");
    is_int(cli_lines_new_start(&a, &b), 0, "no overlap: everything is new");
    cli_lines_free(&b);
    lines(&b, "a\nb\na\nb\na\nb\n");
    cli_lines_free(&a);
    lines(&a, "a\nb\na\nb\n");
    is_int(cli_lines_new_start(&a, &b), 4, "repeated lines: longest overlap");
    cli_lines_free(&a);
    cli_lines_free(&b);
    lines(&a, "");
    is_int(a.n, 0, "empty text");
    cli_lines_free(&a);
}

static void test_routes(void)
{
    struct err *e = NULL;
    char *p = cli_image_path("py base", "/info", NULL);
    is_str(p, "/images/py%20base/info", "image route escaped");
    free(p);
    ok(cli_image_path("a/b", "/info", &e) == NULL && e &&
           strcmp(err_msg(e), "invalid image name: a/b") == 0 && e->status == 400,
       "image name with / refused");
    err_free(e);
    const char *q[] = {"path", "/root/a b&c.txt", "tail", NULL, "x", "1"};
    p = cli_path_query("/vms/dev/files/content", q, 3);
    is_str(p, "/vms/dev/files/content?path=%2Froot%2Fa%20b%26c.txt&x=1",
           "query escaped, NULL values left out");
    free(p);
}

static void test_layer_tables(void)
{
    const char *rows =
        "{\"commands\":["
        "{\"timestamp\":\"2026-11-29T10:00:03Z\",\"layer\":\"net\",\"command\":\"https "
        "1.2.3.4:443\","
        "\"conn_type\":\"https\",\"dst_ip\":\"1.2.3.4\",\"port\":443,\"decision\":\"error\","
        "\"reason\":\"tls_handshake_failed\",\"bytes_sent\":517,\"bytes_received\":0},"
        "{\"timestamp\":\"2026-11-29T10:00:02Z\",\"layer\":\"net\","
        "\"command\":\"GET "
        "https://example.com:443/a\",\"process_name\":\"curl\",\"method\":\"GET\","
        "\"domain\":\"example.com\",\"port\":443,\"path\":\"/a\",\"status_code\":403,"
        "\"decision\":\"denied\",\"matched_rule\":\"default:default-deny\","
        "\"reason\":\"default_deny\",\"bytes_sent\":0,\"bytes_received\":2048,"
        "\"duration_ms\":12},"
        "{\"timestamp\":\"2026-11-29T10:00:01Z\",\"layer\":\"dns\",\"command\":\"A example.com\","
        "\"process_name\":\"curl\",\"qtype\":\"A\",\"qname\":\"example.com\",\"rcode\":\"NOERROR\","
        "\"answer_ip\":\"93.184.216.34\",\"decision\":\"allowed\",\"matched_rule\":\"user:web\","
        "\"cache_hit\":true},"
        "{\"timestamp\":\"2026-11-29T10:00:00Z\",\"layer\":\"exec\",\"command\":\"curl x\","
        "\"exit_code\":7,\"duration_ms\":40}],\"total\":4,\"has_more\":false}";
    char *s = render_str(cli_render_history, rows);
    is_str(s,
           "TIME                  EXIT     DURATION  COMMAND\n"
           "2026-11-29T10:00:00Z  7        40ms      curl x\n"
           "2026-11-29T10:00:01Z  NOERROR  -         dns: A example.com\n"
           "2026-11-29T10:00:02Z  403      12ms      net: GET https://example.com:443/a [denied "
           "default:default-deny]\n"
           "2026-11-29T10:00:03Z  -        -         net: https 1.2.3.4:443 [error -]\n",
           "history of every layer: result, duration, tagged summary");
    free(s);

    const char *net = "{\"commands\":[{\"timestamp\":\"2026-11-29T10:00:03Z\",\"conn_type\":"
                      "\"https\",\"dst_ip\":\"1.2.3.4\",\"port\":443,\"decision\":\"error\","
                      "\"reason\":\"tls_handshake_failed\",\"bytes_sent\":517},"
                      "{\"timestamp\":\"2026-11-29T10:00:02Z\",\"process_name\":\"curl\","
                      "\"method\":\"GET\",\"domain\":\"example.com\",\"port\":443,\"path\":"
                      "\"/a\\nb\",\"status_code\":403,\"decision\":\"denied\",\"matched_rule\":"
                      "\"default:default-deny\",\"reason\":\"default_deny\",\"bytes_sent\":0,"
                      "\"bytes_received\":2048,\"duration_ms\":12}]}";
    s = render_str(cli_render_net_log, net);
    is_str(s,
           "TIME                  PROCESS  METHOD  HOST:PORT        PATH  STATUS  DECISION  "
           "RULE                  REASON                BYTES    MS\n"
           "2026-11-29T10:00:02Z  curl     GET     example.com:443  /a b  403     denied    "
           "default:default-deny  default_deny          0B/2.0K  12\n"
           "2026-11-29T10:00:03Z  -        -       1.2.3.4:443      -     -       error     "
           "-                     tls_handshake_failed  517B/0B  -\n",
           "net log table, oldest first, control chars flattened");
    free(s);
    s = render_str(cli_render_net_log, "{\"commands\":[]}");
    is_str(s, "No network requests.\n", "empty net log");
    free(s);

    const char *dns = "{\"commands\":[{\"timestamp\":\"2026-11-29T10:00:05Z\",\"qtype\":\"TXT\","
                      "\"qname\":\"x.evil.example\",\"rcode\":\"NXDOMAIN\",\"decision\":\"denied\","
                      "\"matched_rule\":\"user:no-odd-names\",\"reason\":\"policy_block\"},"
                      "{\"timestamp\":\"2026-11-29T10:00:01Z\",\"process_name\":\"curl\","
                      "\"qtype\":\"A\",\"qname\":\"example.com\",\"rcode\":\"NOERROR\","
                      "\"answer_ip\":\"93.184.216.34\",\"decision\":\"allowed\","
                      "\"matched_rule\":\"user:web\",\"upstream_resolver_ms\":23}]}";
    s = render_str(cli_render_dns_log, dns);
    is_str(s,
           "TIME                  PROCESS  TYPE  NAME            RCODE     ANSWER         "
           "DECISION  RULE               REASON        MS\n"
           "2026-11-29T10:00:01Z  curl     A     example.com     NOERROR   93.184.216.34  "
           "allowed   user:web           -             23\n"
           "2026-11-29T10:00:05Z  -        TXT   x.evil.example  NXDOMAIN  -              "
           "denied    user:no-odd-names  policy_block  -\n",
           "dns log table");
    free(s);
    s = render_str(cli_render_dns_log, "{\"commands\":[]}");
    is_str(s, "No DNS queries.\n", "empty dns log");
    free(s);
    ok(render_str(cli_render_net_log, "{}") == NULL, "missing rows list is an error");
}

static void test_since(void)
{
    char v[64];
    const int64_t now = 1795946400000;
    ok(cli_since_value("10m", now, v, sizeof(v), NULL) == 0 && strcmp(v, "1795945800000") == 0,
       "10m ago in Unix ms: %s", v);
    ok(cli_since_value("2d", now, v, sizeof(v), NULL) == 0 && strcmp(v, "1795773600000") == 0,
       "2d ago: %s", v);
    ok(cli_since_value("2026-11-29T10:00:00Z", now, v, sizeof(v), NULL) == 0 &&
           strcmp(v, "2026-11-29T10:00:00Z") == 0,
       "a time passes through");
    struct err *e = NULL;
    is_int(cli_since_value("0m", now, v, sizeof(v), &e), -1, "zero age refused");
    ok(e && strstr(err_msg(e), "'0m'"), "message names it: %s", err_msg(e));
    err_free(e);
    ok(cli_since_value("", now, v, sizeof(v), NULL) == -1, "empty refused");
    ok(cli_since_value("99999999999d", now, v, sizeof(v), NULL) == -1, "huge age refused");
    ok(cli_since_value("-5m", now, v, sizeof(v), NULL) == -1, "negative age refused");
}

int main(void)
{
    test_images();
    test_history();
    test_layer_tables();
    test_since();
    test_cp_args();
    test_follow();
    test_routes();
    return done_testing();
}
