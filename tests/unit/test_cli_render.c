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

int main(void)
{
    test_images();
    test_history();
    test_cp_args();
    test_follow();
    test_routes();
    return done_testing();
}
