/* Unit tests for the TOML reader and writer (src/lib/config/toml.h): every
 * construct as JSON, every error with its line, the limits at and one past,
 * accessors, the writer and its round trip. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "config/toml.h"
#include "tap.h"

/* A test name from TOML text: one line, printable, short. */
static const char *nm(const char *s)
{
    static char out[64];
    size_t o = 0;
    for (; *s && o + 3 < sizeof(out); s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = c >= 0x20 && c < 0x7f && c != '#' ? (char)c : '?';
        }
    }
    out[o] = '\0';
    return out;
}

/* buf_steal_str() plus releasing the buffer's storage. */
static char *steal_str(struct buf *b)
{
    char *s = buf_steal_str(b);
    buf_free(b);
    return s;
}

/* Compact JSON of the parsed document, or "ERR <message>". Caller frees. */
static char *parse_json(const char *text, size_t len)
{
    struct err *e = NULL;
    struct toml_value *v = toml_parse(text, len, "t.toml", &e);
    if (!v) {
        struct buf b;
        buf_init(&b, 1 << 20);
        buf_printf(&b, "ERR %s", err_msg(e));
        err_free(e);
        return steal_str(&b);
    }
    json_t *j = toml_to_json(v);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    toml_free(v);
    return s;
}

static void json_is(const char *text, const char *want)
{
    char *got = parse_json(text, strlen(text));
    is_str(got, want, "%s", nm(text));
    free(got);
}

static void err_is(const char *text, const char *want)
{
    struct err *e = NULL;
    struct toml_value *v = toml_parse(text, strlen(text), "t.toml", &e);
    is_str(v ? "(parsed)" : err_msg(e), want, "error: %s", nm(text));
    if (e && e->status != 400)
        diag("status %d, expected 400", e->status);
    toml_free(v);
    err_free(e);
}

struct vcase {
    const char *toml, *json;
};

static const struct vcase valid[] = {
    {"", "{}"},
    {"# only a comment\n\n   \t\n", "{}"},
    {"\xef\xbb\xbf"
     "a = 1",
     "{\"a\":1}"},
    {"a = 1 # trailing comment\r\nb = 2\r\n", "{\"a\":1,\"b\":2}"},
    /* keys */
    {"bare_key-1 = 1\n\"quoted key\" = 2\n'literal key' = 3\n\"\" = 4\n1234 = 5",
     "{\"bare_key-1\":1,\"quoted key\":2,\"literal key\":3,\"\":4,\"1234\":5}"},
    {"a.b.c = 1\na . \"b\" . d = 2\n", "{\"a\":{\"b\":{\"c\":1,\"d\":2}}}"},
    {"\"a.b\" = 1\n'c\\d' = 2", "{\"a.b\":1,\"c\\\\d\":2}"},
    /* strings */
    {"s = \"tab\\tnl\\nq\\\"bs\\\\cr\\rbs\\bff\\f\"",
     "{\"s\":\"tab\\tnl\\nq\\\"bs\\\\cr\\rbs\\bff\\f\"}"},
    {"s = \"\\u00e9\\U0001F600\\u0041\"", "{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80"
                                          "A\"}"},
    {"s = \"caf\xc3\xa9 \t tab\"", "{\"s\":\"caf\xc3\xa9 \\t tab\"}"},
    {"s = 'C:\\no\\escapes'", "{\"s\":\"C:\\\\no\\\\escapes\"}"},
    {"s = \"\"\"\nline1\nline2\"\"\"", "{\"s\":\"line1\\nline2\"}"},
    {"s = \"\"\"\r\nline1\r\nline2\r\n\"\"\"", "{\"s\":\"line1\\nline2\\n\"}"},
    {"s = \"\"\"a \\\n    b \\  \n\n  c\"\"\"", "{\"s\":\"a b c\"}"},
    {"s = \"\"\"one \"quote\" two \"\"quotes\"\" \"\"\"\"\"",
     "{\"s\":\"one \\\"quote\\\" two \\\"\\\"quotes\\\"\\\" \\\"\\\"\"}"},
    {"s = '''\nraw \\n 'x' ''y'' '''", "{\"s\":\"raw \\\\n 'x' ''y'' \"}"},
    {"s = ''''one'''''", "{\"s\":\"'one''\"}"},
    {"s = \"\"\n", "{\"s\":\"\"}"},
    {"s = ''", "{\"s\":\"\"}"},
    /* integers */
    {"a = 0\nb = +17\nc = -17\nd = 1_000_000\ne = -0",
     "{\"a\":0,\"b\":17,\"c\":-17,\"d\":1000000,\"e\":0}"},
    {"a = 9223372036854775807\nb = -9223372036854775808",
     "{\"a\":9223372036854775807,\"b\":-9223372036854775808}"},
    {"h = 0xDEAD_beef\no = 0o755\nb = 0b1101\nz = 0x0",
     "{\"h\":3735928559,\"o\":493,\"b\":13,\"z\":0}"},
    {"h = 0x7fffffffffffffff", "{\"h\":9223372036854775807}"},
    /* floats */
    {"a = 1.5\nb = -2.5e3\nc = 1e2\nd = 6.25E-2\ne = 1_0.2_5\nf = +0.0",
     "{\"a\":1.5,\"b\":-2500.0,\"c\":100.0,\"d\":0.0625,\"e\":10.25,\"f\":0.0}"},
    {"a = 1e+02\nb = 3E0_1", "{\"a\":100.0,\"b\":30.0}"},
    /* booleans */
    {"t = true\nf = false", "{\"t\":true,\"f\":false}"},
    /* arrays */
    {"a = []\nb = [ ]\nc = [1, 2, 3]", "{\"a\":[],\"b\":[],\"c\":[1,2,3]}"},
    {"a = [1, 'two', [3, [4]], {x = 5}, true]", "{\"a\":[1,\"two\",[3,[4]],{\"x\":5},true]}"},
    {"a = [\n  1, # one\n  2,\n  # comment line\n  3,\n]\nb = 4", "{\"a\":[1,2,3],\"b\":4}"},
    {"a = [\"\"\"x\ny\"\"\", '''z''']", "{\"a\":[\"x\\ny\",\"z\"]}"},
    /* inline tables */
    {"t = {}\nu = { a = 1, b.c = 'x', d = { e = [] } }",
     "{\"t\":{},\"u\":{\"a\":1,\"b\":{\"c\":\"x\"},\"d\":{\"e\":[]}}}"},
    /* tables */
    {"[a]\nx = 1\n[b]\n[a.c]\ny = 2", "{\"a\":{\"x\":1,\"c\":{\"y\":2}},\"b\":{}}"},
    {"[ a . \"b c\" . 'd' ]\nk = 1", "{\"a\":{\"b c\":{\"d\":{\"k\":1}}}}"},
    {"[x.y.z]\n[x]\nk = 1", "{\"x\":{\"y\":{\"z\":{}},\"k\":1}}"},
    {"[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true",
     "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},\"texture\":{\"smooth\":"
     "true}}}}"},
    /* arrays of tables */
    {"[[s]]\nn = 1\n[[s]]\n[[s]]\nn = 3", "{\"s\":[{\"n\":1},{},{\"n\":3}]}"},
    {"[[m.servers]]\nname = 'a'\n[m.servers.headers]\nX = 'y'\n[[m.servers]]\nname = 'b'",
     "{\"m\":{\"servers\":[{\"name\":\"a\",\"headers\":{\"X\":\"y\"}},{\"name\":\"b\"}]}}"},
    {"[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[[a]]\n[[a.b]]\nx = 3",
     "{\"a\":[{\"b\":[{\"x\":1},{\"x\":2}]},{\"b\":[{\"x\":3}]}]}"},
    {"[[a]]\nb.c = 1\n[[a]]\nb.c = 2", "{\"a\":[{\"b\":{\"c\":1}},{\"b\":{\"c\":2}}]}"},
    {"rule = [ { id = 'x', ports = [443, '8443-8444'] } ]\n[policy]\nask_timeout_s = 45",
     "{\"rule\":[{\"id\":\"x\",\"ports\":[443,\"8443-8444\"]}],\"policy\":{\"ask_timeout_s\":45}}"},
};

struct ecase {
    const char *toml, *err;
};

static const struct ecase invalid[] = {
    /* syntax */
    {"a = 1\nb", "t.toml:2: expected '=' after the key"},
    {"a = 1\n= 2", "t.toml:2: expected a key, found '='"},
    {"a =", "t.toml:1: expected a value"},
    {"a = # c", "t.toml:1: expected a value"},
    {"a = 1 2", "t.toml:1: expected the end of the line, found '2'"},
    {"[a] x = 1", "t.toml:1: expected the end of the line, found 'x'"},
    {"a = 1\n\n\nb = bare", "t.toml:4: invalid value 'bare' (strings need quotes)"},
    {"a = @", "t.toml:1: expected a value, found '@'"},
    {"a = 1\rb = 2", "t.toml:1: expected the end of the line, found byte 0x0D"},
    {"a = 1\n# bad \x01 comment", "t.toml:2: control character U+0001 in comment"},
    {"a\x00 = 1", "t.toml:1: expected '=' after the key"},
    {"ok = 1\nbad = 'x\xff'", "t.toml:2: invalid UTF-8"},
    {"bad = '\xc0\x80'", "t.toml:1: invalid UTF-8"},
    /* strings */
    {"s = \"abc", "t.toml:1: unterminated string"},
    {"s = \"abc\ndef\"",
     "t.toml:1: newline in a single-line string (use \"\"\" for several lines)"},
    {"s = 'abc", "t.toml:1: unterminated string"},
    {"\n\ns = \"\"\"abc\n\n", "t.toml:3: unterminated string"},
    {"s = '''a\nb", "t.toml:1: unterminated string"},
    {"s = \"a\\qb\"", "t.toml:1: invalid escape sequence: backslash then 'q' in string"},
    {"s = \"a\\ b\"", "t.toml:1: invalid escape sequence: backslash then byte 0x20 in string"},
    {"s = \"\\u12\"", "t.toml:1: \\u escape needs 4 hex digits"},
    {"s = \"\\U0001F60\"", "t.toml:1: \\U escape needs 8 hex digits"},
    {"s = \"\\uD800\"", "t.toml:1: escape U+D800 is not a Unicode scalar value"},
    {"s = \"\\U00110000\"", "t.toml:1: escape U+110000 is not a Unicode scalar value"},
    {"s = \"\\u0000\"", "t.toml:1: NUL characters (\\u0000) are not supported"},
    {"s = \"a\x01\"", "t.toml:1: control character U+0001 in string"},
    {"s = 'a\x7f'", "t.toml:1: control character U+007F in string"},
    {"s = \"\"\"\na\n\x1f\"\"\"", "t.toml:3: control character U+001F in string"},
    {"s = \"\"\"a\rb\"\"\"", "t.toml:1: control character U+000D in string"},
    {"s = \"\"\"abc\"\"\"\"\"\"", "t.toml:1: too many quotes at the end of a multi-line string"},
    {"\"\"\"k\"\"\" = 1", "t.toml:1: a key cannot be a multi-line string"},
    {"\"k\nx\" = 1", "t.toml:1: newline in a single-line key (use \"\"\" for several lines)"},
    /* numbers and other values */
    {"a = 01", "t.toml:1: leading zeros are not allowed in '01'"},
    {"a = -012", "t.toml:1: leading zeros are not allowed in '-012'"},
    {"a = 1__0", "t.toml:1: invalid value '1__0'"},
    {"a = _1", "t.toml:1: invalid value '_1' (strings need quotes)"},
    {"a = 1_", "t.toml:1: invalid value '1_'"},
    {"a = 9223372036854775808", "t.toml:1: integer '9223372036854775808' is out of range"},
    {"a = -9223372036854775809", "t.toml:1: integer '-9223372036854775809' is out of range"},
    {"a = 0x8000000000000000", "t.toml:1: integer '0x8000000000000000' is out of range"},
    {"a = 0xG1", "t.toml:1: invalid hexadecimal integer '0xG1'"},
    {"a = 0o8", "t.toml:1: invalid octal integer '0o8'"},
    {"a = 0b2", "t.toml:1: invalid binary integer '0b2'"},
    {"a = 0x", "t.toml:1: invalid hexadecimal integer '0x'"},
    {"a = -0x1", "t.toml:1: a hexadecimal, octal or binary integer cannot have a sign"},
    {"a = 1.", "t.toml:1: invalid value '1.'"},
    {"a = .5", "t.toml:1: invalid value '.5' (strings need quotes)"},
    {"a = 1e", "t.toml:1: invalid value '1e'"},
    {"a = 1.5.2", "t.toml:1: invalid value '1.5.2'"},
    {"a = 1e400", "t.toml:1: float '1e400' is out of range"},
    {"a = inf", "t.toml:1: inf and nan are not supported"},
    {"a = -nan", "t.toml:1: inf and nan are not supported"},
    {"a = 1979-05-27", "t.toml:1: dates and times are not supported (use a string)"},
    {"a = 07:32:00", "t.toml:1: dates and times are not supported (use a string)"},
    {"a = True", "t.toml:1: invalid value 'True' (strings need quotes)"},
    /* arrays and inline tables */
    {"a = [1 2]", "t.toml:1: expected ',' or ']' in array"},
    {"a = [1,\n2,\n", "t.toml:3: expected a value"},
    {"a = [,]", "t.toml:1: expected a value, found ','"},
    {"a = {x = 1\n}", "t.toml:1: expected ',' or '}' in an inline table"},
    {"a = {\nx = 1}", "t.toml:1: newline in an inline table (keep { ... } on one line)"},
    {"a = {x = 1,}", "t.toml:1: trailing comma in an inline table"},
    {"a = {x = 1, x = 2}", "t.toml:1: duplicate key 'x' (first defined at line 1)"},
    {"a = {x 1}", "t.toml:1: expected '=' after a key in an inline table"},
    {"a = {b = {c = 1}, b.d = 2}",
     "t.toml:1: cannot add keys to 'b' with dotted keys: it is an inline table (line 1)"},
    {"a = {x = 1}\n[a]",
     "t.toml:2: cannot define table [a]: it is already an inline table (line 1)"},
    {"a = {x = 1}\na.y = 2",
     "t.toml:2: cannot add keys to 'a' with dotted keys: it is an inline table (line 1)"},
    {"a = {x = 1}\n[a.b]",
     "t.toml:2: cannot define a table under 'a': it is an inline table (line 1)"},
    /* duplicates and redefinitions */
    {"a = 1\nb = 2\na = 3", "t.toml:3: duplicate key 'a' (first defined at line 1)"},
    {"a = 1\n'a' = 2", "t.toml:2: duplicate key 'a' (first defined at line 1)"},
    {"a.b = 1\na.b = 2", "t.toml:2: duplicate key 'a.b' (first defined at line 1)"},
    {"a = 1\na.b = 2",
     "t.toml:2: cannot add keys to 'a' with dotted keys: it is an integer (line 1)"},
    {"[a]\nx = 1\n[b]\n[a]", "t.toml:4: table [a] is defined twice (first at line 1)"},
    {"[a.b]\n[a]\n[a.b]", "t.toml:3: table [a.b] is defined twice (first at line 1)"},
    {"a.b = 1\n[a]",
     "t.toml:2: cannot define table [a]: it is already a table made by dotted keys (line 1)"},
    {"[a]\nb.c = 1\n[a.b]",
     "t.toml:3: cannot define table [a.b]: it is already a table made by dotted keys (line 2)"},
    {"[a.b.c]\n[a]\nb.c.d = 1",
     "t.toml:3: cannot add keys to 'b' with dotted keys: it is a table (line 1)"},
    {"a = 1\n[a]", "t.toml:2: cannot define table [a]: it is already an integer (line 1)"},
    {"a = 's'\n[a.b]", "t.toml:2: cannot define a table under 'a': it is a string (line 1)"},
    {"a = [1]\n[[a]]", "t.toml:2: cannot define [[a]]: it is already an array (line 1)"},
    {"a = [1]\n[a.b]", "t.toml:2: cannot define a table under 'a': it is an array (line 1)"},
    {"[a]\n[[a]]", "t.toml:2: cannot define [[a]]: it is already a table (line 1)"},
    {"[[a]]\n[a]", "t.toml:2: cannot define table [a]: it is already an array of tables (line 1)"},
    {"[[a]]\nx = 1\nx = 2", "t.toml:3: duplicate key 'x' (first defined at line 2)"},
    {"[t]\n[t.x]\n[t]\n", "t.toml:3: table [t] is defined twice (first at line 1)"},
    /* headers */
    {"[a", "t.toml:1: expected ']' to close the table header"},
    {"[[a]", "t.toml:1: expected ']]' to close the table header"},
    {"[[a] ]", "t.toml:1: expected ']]' to close the table header"},
    {"[]", "t.toml:1: expected a key, found ']'"},
    {"[a.]", "t.toml:1: expected a key, found ']'"},
};

static void test_valid(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(valid); i++)
        json_is(valid[i].toml, valid[i].json);
}

static void test_invalid(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(invalid); i++)
        err_is(invalid[i].toml, invalid[i].err);
    /* A NUL byte inside a string. */
    static const char nul[] = "s = 'a\0b'";
    char *got = parse_json(nul, sizeof(nul) - 1);
    is_str(got, "ERR t.toml:1: control character U+0000 in string", "NUL byte in a string");
    free(got);
}

/* Builds "<prefix><n copies of c><suffix>". */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    struct buf b;
    buf_init(&b, 1 << 22);
    buf_append_str(&b, prefix);
    for (size_t i = 0; i < n; i++)
        buf_append(&b, &c, 1);
    buf_append_str(&b, suffix);
    return steal_str(&b);
}

static bool parses(const char *text, size_t len, char **msg)
{
    struct err *e = NULL;
    struct toml_value *v = toml_parse(text, len, "t.toml", &e);
    *msg = e ? strdup(err_msg(e)) : NULL;
    err_free(e);
    toml_free(v);
    return v != NULL;
}

static void limit_case(char *text, bool want_ok, const char *want_err, const char *name)
{
    char *msg = NULL;
    bool okp = parses(text, strlen(text), &msg);
    if (want_ok)
        ok(okp, "%s: parses", name);
    else
        is_str(msg, want_err, "%s: rejected", name);
    if (want_ok && !okp)
        diag("%s", msg);
    free(msg);
    free(text);
}

static void test_limits(void)
{
    /* input size: exactly 1 MiB (a comment) and one byte more */
    limit_case(repeat("#", 'x', TOML_MAX_INPUT - 1, ""), true, NULL, "input at 1 MiB");
    limit_case(repeat("#", 'x', TOML_MAX_INPUT, ""), false,
               "t.toml: file is larger than 1048576 bytes", "input one past 1 MiB");
    /* strings: 64 KiB decoded */
    limit_case(repeat("s = '", 'x', TOML_MAX_STRING, "'"), true, NULL, "string at 64 KiB");
    limit_case(repeat("s = '", 'x', TOML_MAX_STRING + 1, "'"), false,
               "t.toml:1: string longer than 65536 bytes", "string one past 64 KiB");
    limit_case(repeat("s = \"\"\"\n", 'x', TOML_MAX_STRING + 1, "\"\"\""), false,
               "t.toml:2: string longer than 65536 bytes", "multi-line string one past 64 KiB");
    /* keys: 256 bytes, bare and quoted */
    limit_case(repeat("", 'k', TOML_MAX_KEY, " = 1"), true, NULL, "bare key at 256");
    limit_case(repeat("", 'k', TOML_MAX_KEY + 1, " = 1"), false,
               "t.toml:1: key longer than 256 bytes", "bare key one past 256");
    limit_case(repeat("\"", 'k', TOML_MAX_KEY, "\" = 1"), true, NULL, "quoted key at 256");
    limit_case(repeat("'", 'k', TOML_MAX_KEY + 1, "' = 1"), false,
               "t.toml:1: key longer than 256 bytes", "quoted key one past 256");
    /* nesting: arrays, inline tables, headers, dotted keys */
    limit_case(repeat("a = ", '[', TOML_MAX_DEPTH, ""), false, "t.toml:1: expected a value",
               "32 open arrays reach the end");
    char *a32 = repeat("a = ", '[', TOML_MAX_DEPTH, "");
    char *c32 = repeat(a32, ']', TOML_MAX_DEPTH, "");
    limit_case(c32, true, NULL, "arrays nested 32 deep");
    char *a33 = repeat("a = ", '[', TOML_MAX_DEPTH + 1, "");
    limit_case(repeat(a33, ']', TOML_MAX_DEPTH + 1, ""), false,
               "t.toml:1: nesting deeper than 32 levels", "arrays nested 33 deep");
    free(a32);
    free(a33);
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < TOML_MAX_DEPTH; i++)
        buf_printf(&b, "%sk%d", i ? "." : "[", i);
    char *hdr = steal_str(&b); /* "[k0.k1...k31" */
    limit_case(repeat(hdr, ']', 1, "\nx = 1"), true, NULL, "32-part header plus a key");
    limit_case(repeat(hdr, ']', 1, "\nx.y = 1"), false, "t.toml:2: nesting deeper than 32 levels",
               "32-part header plus a dotted key");
    limit_case(repeat(hdr, '.', 1, "k32]"), false, "t.toml:1: key has more than 32 parts",
               "header with 33 parts");
    limit_case(repeat(hdr, ']', 1, "\nx = [1]"), false, "t.toml:2: nesting deeper than 32 levels",
               "array below a 32-part header");
    free(hdr);
    buf_init(&b, 1 << 20);
    for (int i = 0; i <= TOML_MAX_DEPTH; i++)
        buf_printf(&b, "%sk%d", i ? "." : "", i);
    buf_append_str(&b, " = 1");
    limit_case(steal_str(&b), false, "t.toml:1: key has more than 32 parts",
               "dotted key with 33 parts");
    limit_case(strdup("a = {b = {c = {d = 1}}}\n"), true, NULL, "inline tables nest");
    for (int depth = TOML_MAX_DEPTH; depth <= TOML_MAX_DEPTH + 1; depth++) {
        buf_init(&b, 1 << 20);
        buf_append_str(&b, "a = ");
        for (int i = 0; i < depth; i++)
            buf_append_str(&b, "{b = ");
        buf_append_str(&b, "1");
        for (int i = 0; i < depth; i++)
            buf_append_str(&b, "}");
        limit_case(steal_str(&b), depth == TOML_MAX_DEPTH,
                   "t.toml:1: nesting deeper than 32 levels",
                   depth == TOML_MAX_DEPTH ? "inline tables nested 32 deep"
                                           : "inline tables nested 33 deep");
    }
}

static void test_accessors(void)
{
    const char *text = "top = 1\n"
                       "[vm]\n"
                       "cpus = 4\n"
                       "name = 'x'\n"
                       "on = true\n"
                       "ratio = 0.5\n"
                       "list = [10, 20]\n"
                       "[[mcp.servers]]\n"
                       "name = 'a'\n";
    struct err *e = NULL;
    struct toml_value *root = toml_parse(text, strlen(text), "t.toml", &e);
    ok(root != NULL, "accessor document parses");
    if (!root)
        return;
    is_int(toml_type(root), TOML_TABLE, "root is a table");
    is_int(toml_table_len(root), 3, "root has 3 keys");
    is_str(toml_table_key(root, 0), "top", "first key in file order");
    is_str(toml_table_key(root, 1), "vm", "second key");
    is_str(toml_table_key(root, 2), "mcp", "third key");
    ok(toml_table_key(root, 3) == NULL, "key past the end is NULL");
    const struct toml_value *vm = toml_table_get(root, "vm");
    is_int(toml_line(vm), 2, "table line is its header's");
    int64_t i = 0;
    ok(toml_int(toml_lookup(root, "vm.cpus"), &i) == 0 && i == 4, "lookup vm.cpus = 4");
    is_int(toml_line(toml_lookup(root, "vm.cpus")), 3, "vm.cpus line");
    is_str(toml_string(toml_lookup(root, "vm.name")), "x", "string getter");
    ok(toml_string(toml_lookup(root, "vm.cpus")) == NULL, "string getter on an int is NULL");
    bool bv = false;
    ok(toml_bool(toml_lookup(root, "vm.on"), &bv) == 0 && bv, "bool getter");
    ok(toml_int(toml_lookup(root, "vm.on"), &i) < 0, "int getter on a bool fails");
    double d = 0;
    ok(toml_float(toml_lookup(root, "vm.ratio"), &d) == 0 && d == 0.5, "float getter");
    const struct toml_value *list = toml_lookup(root, "vm.list");
    is_int(toml_type(list), TOML_ARRAY, "array type");
    is_int(toml_array_len(list), 2, "array length");
    ok(toml_int(toml_array_at(list, 1), &i) == 0 && i == 20, "array index");
    ok(toml_array_at(list, 2) == NULL, "array index past the end");
    ok(toml_lookup(root, "vm.missing") == NULL, "missing key");
    ok(toml_lookup(root, "top.x") == NULL, "lookup through a scalar");
    const struct toml_value *srv = toml_lookup(root, "mcp.servers");
    is_int(toml_array_len(srv), 1, "array of tables length");
    is_str(toml_string(toml_table_get(toml_array_at(srv, 0), "name")), "a", "element field");
    is_int(toml_line(toml_array_at(srv, 0)), 8, "element line");
    is_str(toml_type_name(TOML_FLOAT), "float", "type name");
    toml_free(root);
}

static void test_many_keys(void)
{
    /* Enough keys to use the hash index; a duplicate far down is still found. */
    struct buf b;
    buf_init(&b, 1 << 22);
    for (int i = 0; i < 5000; i++)
        buf_printf(&b, "k%d = %d\n", i, i);
    buf_append_str(&b, "k1234 = 0\n");
    char *text = steal_str(&b);
    char *msg = NULL;
    ok(!parses(text, strlen(text), &msg), "duplicate among 5000 keys rejected");
    is_str(msg, "t.toml:5001: duplicate key 'k1234' (first defined at line 1235)",
           "duplicate key message");
    free(msg);
    text[strlen(text) - 10] = '\0';
    struct toml_value *v = toml_parse(text, strlen(text), "t.toml", NULL);
    int64_t n = 0;
    ok(v && toml_int(toml_table_get(v, "k4321"), &n) == 0 && n == 4321, "lookup among 5000");
    is_str(toml_table_key(v, 4999), "k4999", "order kept among 5000");
    toml_free(v);
    free(text);
}

static void test_files(void)
{
    struct err *e = NULL;
    ok(toml_parse_file("/nonexistent/x.toml", NULL, &e) == NULL && e && e->code == ENOENT,
       "missing file: ENOENT");
    is_int(e ? e->status : -1, 0, "missing file is not a 400");
    err_free(e);
    e = NULL;
    char path[] = "/tmp/test_toml_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "a = 1\nb = ?\n";
    ok(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "temp file");
    close(fd);
    ok(toml_parse_file(path, "label.toml", &e) == NULL, "bad file fails");
    is_str(e ? err_msg(e) : NULL, "label.toml:2: expected a value, found '?'", "label in message");
    is_int(e ? e->status : 0, 400, "bad content is 400");
    err_free(e);
    unlink(path);
}

/* parse -> JSON -> write -> parse -> JSON gives the same JSON */
static void roundtrip(const char *text)
{
    struct toml_value *v = toml_parse(text, strlen(text), "t.toml", NULL);
    json_t *j1 = v ? toml_to_json(v) : NULL;
    struct err *e = NULL;
    char *out = j1 ? toml_write(j1, "header", &e) : NULL;
    struct toml_value *v2 = out ? toml_parse(out, strlen(out), "w.toml", &e) : NULL;
    json_t *j2 = v2 ? toml_to_json(v2) : NULL;
    ok(j2 && json_equal(j1, j2), "round trip: %s", nm(text));
    if (e)
        diag("%s", err_msg(e));
    err_free(e);
    json_decref(j1);
    json_decref(j2);
    toml_free(v);
    toml_free(v2);
    free(out);
}

static void test_writer(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(valid); i++)
        roundtrip(valid[i].toml);
    json_t *doc = json_pack("{s:i, s:{s:s, s:b}, s:[{s:s, s:{s:s}}, {s:s}], s:[], s:{}, s:f}",
                            "top", 1, "vm", "profile", "co de\"\n", "on", 1, "servers", "name", "a",
                            "headers", "X-Key", "v", "name", "b", "empty", "tbl", "r", 2.0);
    struct err *e = NULL;
    char *out = toml_write(doc, "line one\n\nline three", &e);
    is_str(out,
           "# line one\n#\n# line three\n\n"
           "top = 1\n"
           "empty = []\n"
           "r = 2.0\n"
           "\n[vm]\nprofile = \"co de\\\"\\n\"\non = true\n"
           "\n[tbl]\n"
           "\n[[servers]]\nname = \"a\"\n"
           "\n[servers.headers]\nX-Key = \"v\"\n"
           "\n[[servers]]\nname = \"b\"\n",
           "writer output");
    free(out);
    json_decref(doc);
    doc = json_pack("{s:s, s:[i, {s:s}], s:{s:i}}", "we ird.key", "\x01\x7f\t", "mixed", 1, "a b",
                    "c", "k", "", 1);
    out = toml_write(doc, NULL, &e);
    is_str(out,
           "\"we ird.key\" = \"\\u0001\\u007F\\t\"\nmixed = [1, {\"a b\" = \"c\"}]\n"
           "\n[k]\n\"\" = 1\n",
           "quoted keys, escapes, inline tables in arrays");
    free(out);
    json_decref(doc);
    doc = json_pack("{s:n}", "a");
    out = toml_write(doc, NULL, &e);
    is_str(out ? "(written)" : err_msg(e), "null has no TOML form", "null refused");
    err_free(e);
    e = NULL;
    json_decref(doc);
    doc = json_object();
    json_object_set_new(doc, "a", json_stringn("x\0y", 3));
    out = toml_write(doc, NULL, &e);
    is_str(out ? "(written)" : err_msg(e), "strings holding NUL cannot be written as TOML",
           "NUL refused");
    err_free(e);
    e = NULL;
    json_decref(doc);
    /* root + 32 nested tables is the deepest document the reader takes */
    json_t *deep = json_integer(1);
    for (int i = 0; i < TOML_MAX_DEPTH + 1; i++)
        deep = json_pack("{s:o}", "k", deep);
    out = toml_write(deep, NULL, &e);
    struct toml_value *back = out ? toml_parse(out, strlen(out), "w.toml", NULL) : NULL;
    json_t *bj = back ? toml_to_json(back) : NULL;
    ok(bj && json_equal(bj, deep), "32 nested tables written and read back");
    json_decref(bj);
    toml_free(back);
    free(out);
    deep = json_pack("{s:o}", "k", deep);
    out = toml_write(deep, NULL, &e);
    is_str(out ? "(written)" : err_msg(e), "nesting deeper than 32 levels", "depth refused");
    err_free(e);
    json_decref(deep);
    e = NULL;
    json_t *arr = json_array();
    out = toml_write(arr, NULL, &e);
    ok(!out && e && e->status == 400, "non-object root refused");
    err_free(e);
    json_decref(arr);
}

int main(void)
{
    test_valid();
    test_invalid();
    test_limits();
    test_accessors();
    test_many_keys();
    test_files();
    test_writer();
    return done_testing();
}
