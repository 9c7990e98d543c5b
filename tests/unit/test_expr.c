/* Unit tests for the policy expression language (src/lib/policy/expr.h,
 * network.md section 9): every construct, types, absent fields, short
 * circuit, every compile error with its column, each limit at and one past. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/expr.h"
#include "tap.h"

static const struct http1_header hdrs[] = {
    {.name = "User-Agent", .value = "curl/8.5.0"},
    {.name = "X-Token", .value = "abc"},
    {.name = "user-agent", .value = "second"},
};
static const char *const tools[] = {"bash", "local__fetch_http"};

static struct policy_request full(void)
{
    struct policy_request r = {0};
    r.http.host = "api.example.com";
    r.http.port = 443;
    r.http.has_port = true;
    r.http.scheme = "https";
    r.http.method = "POST";
    r.http.path = "/org/repo.git/git-receive-pack";
    r.http.query = "a=1&b=2";
    r.http.upgrade = "websocket";
    r.http.sni = "api.example.com";
    r.http.headers = hdrs;
    r.http.nheaders = 3;
    r.dns.qname = "a.example.com";
    r.dns.qtype = "TXT";
    r.dns.has_suspicious = true;
    r.dns.suspicious = false;
    r.conn.dst_ip = 0xC0000207; /* 192.0.2.7 */
    r.conn.has_dst_ip = true;
    r.conn.dst_port = 443;
    r.conn.has_dst_port = true;
    r.process.name = "curl";
    r.process.exe = "/usr/bin/curl";
    r.process.pid = 42;
    r.process.has_pid = true;
    r.vm.id = "vm-1";
    r.vm.name = "dev";
    r.vm.profile = "code";
    r.model.provider = "anthropic";
    r.model.protocol = "anthropic-messages";
    r.model.name = "claude-opus-4";
    r.model.stream = true;
    r.model.has_stream = true;
    r.model.max_tokens = 64000;
    r.model.has_max_tokens = true;
    r.model.messages_count = 3;
    r.model.has_messages_count = true;
    r.model.tools = tools;
    r.model.ntools = 2;
    r.model.has_tools = true;
    r.mcp.server = "local";
    r.mcp.tool = "local__fetch_http";
    r.mcp.method = "tools/call";
    r.mcp.args = "{\"url\":\"https://wiki.corp.example/x\"}";
    return r;
}

/* -2: compile error (shown), else expr_eval's result. */
static int run(const char *src, enum expr_scope sc, const struct policy_request *r)
{
    struct err *e = NULL;
    struct expr *x = expr_compile(src, strlen(src), sc, &e);
    if (!x) {
        diag("compile '%s': %s", src, err_msg(e));
        err_free(e);
        return -2;
    }
    int v = expr_eval(x, r, NULL);
    expr_free(x);
    return v;
}

static char errbuf[600];
static const char *cerr(const char *src, enum expr_scope sc)
{
    struct err *e = NULL;
    struct expr *x = expr_compile(src, strlen(src), sc, &e);
    if (x) {
        expr_free(x);
        return "OK";
    }
    snprintf(errbuf, sizeof(errbuf), "%s", err_msg(e));
    err_free(e);
    return errbuf;
}

#define N EXPR_SCOPE_NET
#define M EXPR_SCOPE_MODEL
#define C EXPR_SCOPE_MCP

struct vcase {
    const char *src;
    enum expr_scope sc;
    int want_full, want_empty;
};

static const struct vcase vcases[] = {
    /* literals, operators, precedence */
    {"true", N, 1, 1},
    {"false", N, 0, 0},
    {"!false", N, 1, 1},
    {"!!true", N, 1, 1},
    {"true || false && false", N, 1, 1},
    {"(true || false) && false", N, 0, 0},
    {"!true || true", N, 1, 1},
    {"false || false || true", N, 1, 1},
    {"true && true && false", N, 0, 0},
    /* http.* */
    {"http.host == \"api.example.com\"", N, 1, 0},
    {"http.host != \"api.example.com\"", N, 0, 0},
    {"http.host != 'other.example'", N, 1, 0},
    {"!(http.host == \"x\")", N, 1, 1},
    {"http.port == 443", N, 1, 0},
    {"http.port != 80", N, 1, 0},
    {"http.port < 444", N, 1, 0},
    {"http.port <= 443", N, 1, 0},
    {"http.port > 443", N, 0, 0},
    {"http.port >= 443", N, 1, 0},
    {"http.port in [80, 443]", N, 1, 0},
    {"http.port in [80]", N, 0, 0},
    {"http.scheme == \"https\"", N, 1, 0},
    {"http.method in [\"GET\", \"POST\"]", N, 1, 0},
    {"http.method == \"post\"", N, 0, 0},
    {"http.path.startsWith(\"/org/\")", N, 1, 0},
    {"http.path.endsWith(\"git-receive-pack\")", N, 1, 0},
    {"http.path.contains(\"repo.git\")", N, 1, 0},
    {"http.path.contains(\"\")", N, 1, 0},
    {"http.path.glob(\"/**/git-receive-pack\")", N, 1, 0},
    {"http.path.glob(\"/*/git-receive-pack\")", N, 0, 0},
    {"http.path.glob(\"/org/*.git/*\")", N, 1, 0},
    {"http.path.glob(\"/org/rep?.git/**\")", N, 1, 0},
    {"http.path.matches(\"^/org/[a-z]+\\\\.git/\")", N, 1, 0},
    {"http.path.matches(\"receive|upload\")", N, 1, 0},
    {"http.path.matches(\"^receive\")", N, 0, 0},
    /* the linear-time matcher: the ERE forms glibc accepts */
    {"http.path.matches(\"/[[:lower:]]{3}/[^/]+\\\\.git/\")", N, 1, 0},
    {"http.path.matches(\"\\\\bgit-[a-z]+-pack$\")", N, 1, 0},
    {"http.path.matches(\"\\\\Bgit-\")", N, 0, 0},
    {"http.path.matches(\"\\\\<repo\\\\>\\\\.\\\\w+/\")", N, 1, 0},
    {"http.path.matches(\"(org|x)/(re){1,2}po{,3}\\\\.(git)?/\")", N, 1, 0},
    {"http.path.matches(\"^(/[a-z.-]+){3}$\")", N, 1, 0},
    {"http.path.matches(\"^(/[a-z.-]+){4}$\")", N, 0, 0},
    {"http.path.matches(\"[]a]pack|[^-/a-z.]\")", N, 0, 0},
    {"http.path.matches(\"[]a-]pack\")", N, 1, 0},
    {"http.path.matches(\"ORG|repo\\\\)|\\\\.gi[t]/(a|)git\")", N, 1, 0},
    {"process.exe.matches(\"^/usr/(s?bin|lib)/c[[:alpha:]]+l$\")", N, 1, 0},
    {"process.exe.matches(\"\\\\`/usr\\\\'\")", N, 0, 0},
    {"http.query == \"a=1&b=2\"", N, 1, 0},
    {"http.query.contains(\"b=2\")", N, 1, 0},
    {"http.header[\"user-agent\"].startsWith(\"curl/\")", N, 1, 0},
    {"http.header[\"User-Agent\"] == \"curl/8.5.0\"", N, 1, 0},
    {"http.header[\"x-token\"] == \"abc\"", N, 1, 0},
    {"has(http.header[\"x-missing\"])", N, 0, 0},
    {"http.header[\"x-missing\"] != \"a\"", N, 0, 0},
    {"has(http.header[\"x-token\"])", N, 1, 0},
    {"http.upgrade == \"websocket\"", N, 1, 0},
    {"http.sni == http.host", N, -2, -2},
    {"http.sni == \"api.example.com\"", N, 1, 0},
    /* dns.*, conn.* */
    {"dns.qname.endsWith(\".example.com\")", N, 1, 0},
    {"dns.suspicious || dns.qtype == \"TXT\"", N, 1, 0},
    {"dns.suspicious", N, 0, 0},
    {"!dns.suspicious", N, 1, 1},
    {"dns.suspicious == false", N, 1, 0},
    {"conn.dst_ip == \"192.0.2.7\"", N, 1, 0},
    {"conn.dst_ip.startsWith(\"192.0.2.\")", N, 1, 0},
    {"conn.dst_port == 443", N, 1, 0},
    /* process.*, vm.* */
    {"process.name in [\"curl\", \"wget\"]", N, 1, 0},
    {"process.name in [\"wget\"]", N, 0, 0},
    {"process.exe.glob(\"/usr/bin/*\")", C, 1, 0},
    {"process.pid == 42", M, 1, 0},
    {"process.pid in [1, 42]", N, 1, 0},
    {"has(process.pid)", N, 1, 0},
    {"vm.id == \"vm-1\" && vm.name == \"dev\" && vm.profile == \"code\"", C, 1, 0},
    /* model.* */
    {"model.provider == \"anthropic\" && model.name.startsWith(\"claude-opus\") && "
     "model.max_tokens > 32000",
     M, 1, 0},
    {"model.protocol == \"anthropic-messages\"", M, 1, 0},
    {"model.stream", M, 1, 0},
    {"model.stream == true", M, 1, 0},
    {"model.messages_count >= 3", M, 1, 0},
    {"\"bash\" in model.tools", M, 1, 0},
    {"'edit' in model.tools", M, 0, 0},
    {"has(model.tools)", M, 1, 0},
    {"!(\"bash\" in model.tools)", M, 0, 1},
    /* mcp.* */
    {"mcp.tool == \"local__fetch_http\" && mcp.args.matches(\"https?://[^/\\\"]*\\\\.corp\\\\."
     "example\")",
     C, 1, 0},
    {"mcp.server == \"local\"", C, 1, 0},
    {"mcp.method == \"tools/call\"", C, 1, 0},
    {"has(mcp.args)", C, 1, 0},
    /* strings and escapes */
    {"process.exe == \"\\x2fusr\\x2Fbin/curl\"", N, 1, 0},
    {"http.query == 'a=1\\x26b=2'", N, 1, 0},
    {"process.name != \"cu\\\"rl\"", N, 1, 0},
    {"process.name != 'it\\'s'", N, 1, 0},
    {"process.name != \"a\\nb\\tc\\\\\"", N, 1, 0},
    {"process.name != \"caf\xc3\xa9\"", N, 1, 0},
    {"process.name != \"caf\\xc3\\xa9\"", N, 1, 0},
    /* whitespace and layout */
    {"  process.name\n==\t\"curl\"\r\n ", N, 1, 0},
    {"process . name == \"curl\"", N, 1, 0},
    {"http.path.contains (\"repo\")", N, 1, 0},
    /* int limits */
    {"process.pid < 9007199254740991", N, 1, 0},
    {"process.pid >= 0", N, 1, 0},
    {"process.pid == 00042", N, 1, 0},
};

/* Test names must stay on one TAP line. */
static const char *oneline(const char *s)
{
    static char buf[256];
    size_t i = 0;
    for (; s[i] && i < sizeof(buf) - 1; i++)
        buf[i] = (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') ? ' ' : s[i];
    buf[i] = '\0';
    return buf;
}

static void test_values(void)
{
    struct policy_request r = full(), empty = {0};
    for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
        const struct vcase *c = &vcases[i];
        is_int(run(c->src, c->sc, &r), c->want_full, "full: %s", oneline(c->src));
        if (c->want_full != -2)
            is_int(run(c->src, c->sc, &empty), c->want_empty, "absent: %s", oneline(c->src));
    }
    /* header lookup is case-insensitive and takes the first value */
    r.http.nheaders = 0;
    is_int(run("has(http.header[\"user-agent\"])", N, &r), 0, "no headers: absent");
    /* model.tools present but empty */
    r.model.ntools = 0;
    is_int(run("\"bash\" in model.tools", M, &r), 0, "empty tools list");
    is_int(run("has(model.tools)", M, &r), 1, "empty tools list is present");
    /* conn.dst_ip text form */
    r.conn.dst_ip = 0x0A000001;
    is_int(run("conn.dst_ip == \"10.0.0.1\"", N, &r), 1, "dst_ip 10.0.0.1");
    r.conn.dst_ip = 0xFFFFFFFF;
    is_int(run("conn.dst_ip == \"255.255.255.255\"", N, &r), 1, "dst_ip 255.255.255.255");
}

struct ecase {
    const char *src;
    enum expr_scope sc;
    const char *msg;
};

static const struct ecase ecases[] = {
    {"", N, "column 1: empty expression"},
    {"   ", N, "column 1: empty expression"},
    {"http.hots == \"x\"", N, "column 1: unknown field 'http.hots'"},
    {"Process.name == \"x\"", N, "column 1: unknown field 'Process' (field names are lowercase)"},
    {"http.host = \"x\"", N, "column 11: unexpected '=' (use == to compare)"},
    {"true & false", N, "column 6: unexpected '&' (use && or ||)"},
    {"true | false", N, "column 6: unexpected '|' (use && or ||)"},
    {"true ; false", N, "column 6: unexpected character ';'"},
    {"true \x01", N, "column 6: unexpected byte 0x01"},
    {"true false", N, "column 6: unexpected a name"},
    {"(true", N, "column 6: expected ')', found the end"},
    {"true)", N, "column 5: unexpected ')'"},
    {"true &&", N, "column 8: expected a condition, found the end"},
    {"|| true", N, "column 1: expected a condition, found '||'"},
    {"!", N, "column 2: expected a condition, found the end"},
    {"http.host", N, "column 1: 'http.host' is a string: compare it (==, in, a method) or test "
                     "has(http.host)"},
    {"http.port", N, "column 1: 'http.port' is an integer: compare it (==, in, a method) or test "
                     "has(http.port)"},
    {"http.port == \"443\"", N, "column 11: '==' compares an integer ('http.port') with a string"},
    {"http.host == 1", N, "column 11: '==' compares a string ('http.host') with an integer"},
    {"dns.suspicious == \"yes\"", N,
     "column 16: '==' compares a boolean ('dns.suspicious') with a string"},
    {"http.host < 3", N, "column 11: '<' compares integers; 'http.host' is a string and the "
                         "literal an integer"},
    {"http.port >= \"1\"", N, "column 11: '>=' compares integers; 'http.port' is an integer and "
                              "the literal a string"},
    {"model.tools == \"a\"", M,
     "column 13: '==' does not apply to the list 'model.tools' (use \"name\" in model.tools)"},
    {"http.port in [\"a\"]", N, "column 15: list items must be an integer like 'http.port'"},
    {"http.host in [\"a\", 1]", N, "column 20: list items must be a string like 'http.host'"},
    {"dns.suspicious in [true]", N,
     "column 16: 'in [...]' needs a string or integer field; 'dns.suspicious' is a boolean"},
    {"model.tools in [\"a\"]", M,
     "column 13: 'in [...]' needs a string or integer field; 'model.tools' is a list"},
    {"http.host in []", N,
     "column 15: expected a literal (a string, an integer, true or false), found ']'"},
    {"http.host in [\"a\",]", N,
     "column 19: expected a literal (a string, an integer, true or false), found ']'"},
    {"http.host in [\"a\" \"b\"]", N, "column 19: expected ',' or ']', found a string"},
    {"http.host in \"a\"", N, "column 14: expected '[' after 'in', found a string"},
    {"\"a\" in http.host", N,
     "column 1: '\"...\" in field' needs a list field; 'http.host' is a string"},
    {"\"a\" == http.host", N,
     "column 5: expected 'in' after a string (\"name\" in model.tools), found '=='"},
    {"\"a\" in model.tools", N, "column 8: field 'model.tools' is not available in net rules"},
    {"http.port.startsWith(\"4\")", N,
     "column 1: startsWith() needs a string field; 'http.port' is an integer"},
    {"http.host.lower(\"x\")", N,
     "column 11: unknown method 'lower' (startsWith, endsWith, contains, matches, glob)"},
    {"http.host.contains(1)", N, "column 20: expected a string argument, found an integer"},
    {"http.host.contains(\"a\"", N, "column 23: expected ')', found the end"},
    {"http.header == \"x\"", N, "column 1: http.header needs a name: http.header[\"user-agent\"]"},
    {"http.host[\"x\"] == \"y\"", N, "column 1: only http.header takes [\"name\"]"},
    {"http.header[\"a b\"] == \"y\"", N,
     "column 13: header name \"a b\" is not an HTTP token"},
    {"http.header[\"\"] == \"y\"", N, "column 13: empty header name"},
    {"http.header[1] == \"y\"", N, "column 13: expected a header name string, found an integer"},
    {"http.header[\"a\"].x == \"y\"", N, "column 18: expected a method call after '.'"},
    {"http. == \"y\"", N, "column 7: expected a name after '.', found '=='"},
    {"has(http.host.contains(\"a\"))", N, "column 1: has() takes a field, not a method call"},
    {"has(1)", N, "column 5: expected a field in has(), found an integer"},
    {"has(http.host", N, "column 14: expected ')', found the end"},
    {"dns.qname == \"x\"", C, "column 1: field 'dns.qname' is not available in mcp rules"},
    {"dns.qname == \"x\"", M, "column 1: field 'dns.qname' is not available in model rules"},
    {"http.host == \"x\"", C, "column 1: field 'http.host' is not available in mcp rules"},
    {"conn.dst_port == 1", C, "column 1: field 'conn.dst_port' is not available in mcp rules"},
    {"model.name == \"x\"", N, "column 1: field 'model.name' is not available in net rules"},
    {"mcp.tool == \"x\"", M, "column 1: field 'mcp.tool' is not available in model rules"},
    {"process.name == \"abc", N, "column 17: unterminated string"},
    {"process.name == 'a\\q'", N, "column 19: invalid escape (use \\\\ \\\" \\' \\n \\t or \\xHH)"},
    {"process.name == 'a\\x4'", N, "column 19: \\x needs two hex digits"},
    {"process.name == 'a\\x00'", N, "column 19: \\x00 is not allowed in strings"},
    {"process.name == 'a\tb'", N, "column 19: control character in a string (use \\n or \\t)"},
    {"process.name == 'a\\xffb'", N, "column 17: string is not valid UTF-8"},
    {"process.pid == 9007199254740992", N, "column 16: integer too large (the limit is 2^53 - 1)"},
    {"process.pid == -1", N, "column 16: unexpected character '-'"},
    {"process.name == true", N, "column 14: '==' compares a string ('process.name') with a "
                                "boolean"},
    {"process.name.matches(\"(a)\\\\1\")", N,
     "column 22: matches: back-references (\\1 to \\9) are not supported"},
    {"process.name.matches(\"a(\")", N, "column 22: matches: Unmatched ( or \\("},
    {"process.name.matches(\"((a{1,100}){1,100})\")", N,
     "column 22: matches: repetition counts make the pattern too large"},
    /* glibc reads "{,m}" as {0,m}: it counts like any bound (found by fuzz_policy_expr) */
    {"process.name.matches(\"((a{,255}){,255}){,255}\")", N,
     "column 22: matches: repetition counts make the pattern too large"},
    {"process.name.matches(\"(a{,45}){,45}\")", N,
     "column 22: matches: repetition counts make the pattern too large"},
    /* regcomp doubles what precedes each '+' (x+ is x x*): "y++++..." ran it out of memory */
    {"process.name.matches(\"x[a-z]{3}y++++++++++++\")", N,
     "column 22: matches: repetition counts make the pattern too large"},
    {"in == 1", N, "column 1: unknown field 'in'"},
    {"has == 1", N, "column 1: unknown field 'has'"},
    {"http.host.matches", N, "column 1: unknown field 'http.host.matches'"},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++)
        is_str(cerr(ecases[i].src, ecases[i].sc), ecases[i].msg, "error: %s",
               oneline(ecases[i].src));
}

/* Repeats `unit` n times, joined by `sep`, between pre and post. */
static char *build(const char *pre, const char *unit, const char *sep, int n, const char *post)
{
    size_t cap = strlen(pre) + (strlen(unit) + strlen(sep)) * (size_t)n + strlen(post) + 1;
    char *s = malloc(cap);
    size_t o = 0;
    o += (size_t)snprintf(s + o, cap - o, "%s", pre);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%s", i ? sep : "", unit);
    snprintf(s + o, cap - o, "%s", post);
    return s;
}

static void limit(const char *what, char *ok_src, char *bad_src, const char *bad_msg)
{
    is_str(cerr(ok_src, N), "OK", "%s: at the limit", what);
    is_str(cerr(bad_src, N), bad_msg, "%s: one past", what);
    free(ok_src);
    free(bad_src);
}

static void test_limits(void)
{
    /* length: process.name == "xxx..." of exactly 4096 / 4097 bytes */
    char *a = build("process.name == \"", "x", "", 4096 - 18, "\"");
    char *b = build("process.name == \"", "x", "", 4097 - 18, "\"");
    is_int(strlen(a), 4096, "4096-byte expression built");
    limit("length", a, b, "expression is longer than 4096 bytes");
    limit("atoms", build("", "true", " || ", 64, ""), build("", "true", " || ", 65, ""),
          "column 513: more than 64 atoms");
    limit("atoms of every kind",
          build("", "has(http.host) && http.port in [1] && http.path.contains('a') && dns.suspicious",
                " || ", 16, ""),
          build("", "has(http.host) && http.port in [1] && http.path.contains('a') && dns.suspicious",
                " || ", 16, " || true"),
          "column 1329: more than 64 atoms");
    limit("nesting (", build("", "(", "", 16, "true))))))))))))))))"),
          build("", "(", "", 17, "true)))))))))))))))))"), "column 17: nested deeper than 16 levels");
    limit("nesting !", build("", "!", "", 16, "true"), build("", "!", "", 17, "true"),
          "column 17: nested deeper than 16 levels");
    limit("nesting mixed", build("", "!(", "", 8, "true))))))))"),
          build("", "!(", "", 8, "!true))))))))"), "column 17: nested deeper than 16 levels");
    limit("list", build("process.pid in [", "1", ",", 256, "]"),
          build("process.pid in [", "1", ",", 257, "]"), "column 529: list has more than 256 items");
    /* regcomp is exponential in loops over empty-matching parts after ^ or \b */
    limit("empty loops", build("process.name.matches(\"^", "(a*)*", "", 8, "\")"),
          build("process.name.matches(\"^", "(a*)*", "", 9, "\")"),
          "column 22: matches: more than 8 repetitions of something that can match the empty "
          "string (like (a*)* or a**)");
    /* ... also when bounds and '+' copy them: regcomp took minutes on "(b??){20}+" */
    is_str(cerr("process.name.matches(\"x(b?\?){20}+\")", N),
           "column 22: matches: more than 8 repetitions of something that can match the empty "
           "string (like (a*)* or a**)",
           "empty-matching repetitions copied by a bound");
    limit("regex", build("process.name.matches(\"", "a", "", 256, "\")"),
          build("process.name.matches(\"", "a", "", 257, "\")"),
          "column 22: matches: pattern is longer than 256 bytes");
    /* sequential (not nested) parentheses do not add up */
    char *seq = build("", "(true)", " && ", 20, "");
    is_str(cerr(seq, N), "OK", "20 sibling groups are fine");
    free(seq);

    /* subject of matches/glob: 64 KiB evaluates, one more byte is an error */
    struct err *e = NULL;
    struct expr *x = expr_compile("mcp.args.matches(\"z$\")", 22, C, &e);
    struct expr *g = expr_compile("mcp.args.glob(\"*z\")", 19, C, &e);
    ok(x && g, "subject expressions compile");
    char *subj = malloc(EXPR_MAX_SUBJECT + 2);
    memset(subj, 'a', EXPR_MAX_SUBJECT + 1);
    subj[EXPR_MAX_SUBJECT - 1] = 'z';
    subj[EXPR_MAX_SUBJECT] = '\0';
    struct policy_request r = {0};
    r.mcp.args = subj;
    is_int(expr_eval(x, &r, NULL), 1, "matches: 64 KiB subject evaluates");
    is_int(expr_eval(g, &r, NULL), 1, "glob: 64 KiB subject evaluates");
    subj[EXPR_MAX_SUBJECT] = 'z';
    subj[EXPR_MAX_SUBJECT + 1] = '\0';
    is_int(expr_eval(x, &r, &e), -1, "matches: 64 KiB + 1 is an evaluation error");
    is_str(e ? err_msg(e) : NULL, "mcp.args: subject of 65537 bytes is over the 65536 byte limit",
           "subject error text");
    err_free(e);
    e = NULL;
    is_int(expr_eval(g, &r, NULL), -1, "glob: 64 KiB + 1 is an evaluation error");
    /* the error propagates through operators, but short-circuit skips it */
    struct expr *o1 = expr_compile("true || mcp.args.matches(\"z\")", 30, C, NULL);
    struct expr *o2 = expr_compile("false || !mcp.args.matches(\"z\")", 32, C, NULL);
    struct expr *o3 = expr_compile("false && mcp.args.matches(\"z\")", 31, C, NULL);
    is_int(expr_eval(o1, &r, NULL), 1, "short-circuit ||: error not reached");
    is_int(expr_eval(o2, &r, NULL), -1, "error through ! and ||");
    is_int(expr_eval(o3, &r, NULL), 0, "short-circuit &&: error not reached");
    expr_free(o1);
    expr_free(o2);
    expr_free(o3);
    free(subj);
    expr_free(x);
    expr_free(g);
}

/* `matches` on a 64 KiB subject: regexec needs seconds for each of these
 * (quadratic retries, or one DFA state per byte); the evaluator's matcher
 * is linear. Generous CPU bound: 2 s for all of them, sanitizers included. */
static void test_match_time(void)
{
    static const struct {
        const char *pattern;
        char fill;
    } c[] = {
        {"[a-z]+\\\\.corp\\\\.example", 'a'},
        {"[a-z0-9._%+-]+@[a-z0-9.-]+\\\\.[a-z]{2,}", 'a'},
        {"[A-Za-z0-9+/]{40,}={0,2}x", 'a'},
        {"a+x", 'a'},
        {"(a|aa)*x", 'a'},
        {"x[a-z]{20}y", 'x'},
        {"sk-ant-[A-Za-z0-9_-]{80,}!", 's'},
    };
    char *subj = malloc(EXPR_MAX_SUBJECT + 1);
    struct policy_request r = {0};
    r.mcp.args = subj;
    clock_t start = clock();
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        /* "x" / "sk-ant-" interleaved with letters keeps many threads alive */
        for (size_t k = 0; k < EXPR_MAX_SUBJECT; k++)
            subj[k] = c[i].fill == 's' ? "sk-ant-a"[k % 8] : (k % 3 == 0 ? c[i].fill : 'a');
        subj[EXPR_MAX_SUBJECT] = '\0';
        char src[200];
        snprintf(src, sizeof(src), "mcp.args.matches(\"%s\")", c[i].pattern);
        is_int(run(src, C, &r), 0, "64 KiB subject, no match: %s", c[i].pattern);
    }
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    ok(secs < 2.0, "matching 64 KiB subjects is linear (%.3f s of CPU)", secs);
    /* and a match at the very end is still found */
    memset(subj, 'a', EXPR_MAX_SUBJECT);
    memcpy(subj + EXPR_MAX_SUBJECT - 16, ".corp.example", 13);
    is_int(run("mcp.args.matches(\"[a-z]+\\\\.corp\\\\.example\")", C, &r), 1,
           "match at the end of 64 KiB");
    free(subj);
}

static void test_classes(void)
{
    struct {
        const char *src;
        enum expr_scope sc;
        unsigned cls, atoms;
    } c[] = {
        {"true", N, 0, 1},
        {"process.name == \"a\"", N, EXPR_CLASS_PROCESS, 1},
        {"dns.suspicious || dns.qtype == \"TXT\"", N, EXPR_CLASS_DNS, 2},
        {"http.port == 1 && conn.dst_port == 2 && !has(vm.id)", N,
         EXPR_CLASS_HTTP | EXPR_CLASS_CONN | EXPR_CLASS_VM, 3},
        {"\"x\" in model.tools || model.stream", M, EXPR_CLASS_MODEL, 2},
        {"mcp.args.contains(\"a\")", C, EXPR_CLASS_MCP, 1},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct expr *x = expr_compile(c[i].src, strlen(c[i].src), c[i].sc, NULL);
        ok(x && expr_classes(x) == c[i].cls, "classes of %s", c[i].src);
        ok(x && expr_atoms(x) == c[i].atoms, "atoms of %s", c[i].src);
        expr_free(x);
    }
}

static int globm(const char *pat, const char *subj)
{
    regex_t re;
    if (expr_glob_compile(pat, &re, NULL) < 0)
        return -1;
    int m = expr_regex_match(&re, subj);
    regfree(&re);
    return m;
}

static void test_glob(void)
{
    struct {
        const char *pat, *subj;
        int want;
    } c[] = {
        {"/**/git-receive-pack", "/git-receive-pack", 1},
        {"/**/git-receive-pack", "/a/b/c.git/git-receive-pack", 1},
        {"/**/git-receive-pack", "/a/xgit-receive-pack", 0},
        {"/**", "/", 1},
        {"/**", "/a/b/c", 1},
        {"/a/**", "/a", 0},
        {"/a/**", "/a/", 1},
        {"/a/**/b", "/a/b", 1},
        {"/a/**/b", "/a/x/y/b", 1},
        {"/a/**b", "/a/x/yb", 1},
        {"/a/*", "/a/b", 1},
        {"/a/*", "/a/b/c", 0},
        {"/a/*/c", "/a//c", 1},
        {"/a/?", "/a/b", 1},
        {"/a/?", "/a/bc", 0},
        {"/a/?", "/a//", 0},
        {"/a.b", "/aXb", 0},
        {"/a.b", "/a.b", 1},
        {"/(x)+[y]{1}|^$\\", "/(x)+[y]{1}|^$\\", 1},
        {"/v1/*:generate*", "/v1/models:generateContent", 1},
        {"/***/x", "/a/b/x", 1},
        {"*", "abc", 1},
        {"*", "a/b", 0},
        {"**", "a/b", 1},
        {"", "", 1},
        {"", "x", 0},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        is_int(globm(c[i].pat, c[i].subj), c[i].want, "glob '%s' on '%s'", c[i].pat, c[i].subj);
    char *big = malloc(1026);
    memset(big, 'a', 1025);
    big[1024] = '\0';
    is_int(globm(big, big), 1, "glob of 1024 bytes");
    big[1024] = 'a';
    big[1025] = '\0';
    struct err *e = NULL;
    regex_t re;
    is_int(expr_glob_compile(big, &re, &e), -1, "glob of 1025 bytes refused");
    is_str(e ? err_msg(e) : NULL, "pattern is longer than 1024 bytes", "glob length message");
    err_free(e);
    free(big);
}

int main(void)
{
    test_values();
    test_errors();
    test_limits();
    test_match_time();
    test_classes();
    test_glob();
    return done_testing();
}
