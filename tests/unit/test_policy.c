/* Unit tests for policy files and loading (src/lib/policy/policy.h,
 * network.md 8.1, 8.2, 8.5, 8.6): the compiled defaults, settings layering (defaults < profile <
 * user < corp, corp keys locked), which source may set which key, whole-file rejection with
 * "file:line: reason", the @debian/@npm host lists, and the bundled `code`
 * profile against the table of 8.6. Where each source file is found is
 * tested with the store, in test_policy_store.c. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "policy/policy_int.h"
#include "tap.h"

static char root[256]; /* the test's temporary directory */

/* ---- files ---- */

static void path_of(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", root, rel);
}

/* Writes text to root/rel, in an existing directory (NULL removes it). */
static void put_file(const char *rel, const char *text)
{
    char path[512];
    path_of(path, sizeof(path), rel);
    if (!text) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0)
        diag("cannot write %s: %s", path, strerror(errno));
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static bool starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- loading ---- */

static char home[300], corp[300], bundled[300];

/* Writes the three sources (NULL = absent) and loads them with profile
 * "test" from the bundled directory. */
static struct policy *load3(const char *corp_text, const char *user_text, const char *profile_text,
                            const struct policy_hostlist *lists, size_t nlists, struct err **e)
{
    put_file("corp.toml", corp_text);
    put_file("home/policy.toml", user_text);
    put_file("bundled/test.toml", profile_text ? profile_text : "");
    struct policy_load_opts o = {.home = home,
                                 .corp_path = corp,
                                 .profile = "test",
                                 .bundled_dir = bundled,
                                 .hostlists = lists,
                                 .nhostlists = nlists};
    return policy_load(&o, e);
}

/* The label policy_load gives each source's file here. */
static const char *label_of(enum policy_source src)
{
    static char prof[400];
    snprintf(prof, sizeof(prof), "%s/test.toml", bundled);
    return src == POLICY_SRC_CORP ? corp : src == POLICY_SRC_USER ? "policy.toml" : prof;
}

/* Loads, expecting the whole load to fail with a 400 whose message starts
 * with want; policy_check_text must refuse the same text the same way. */
static void expect_reject(enum policy_source src, const char *text, const char *want)
{
    struct err *e = NULL, *e2 = NULL;
    struct policy *p =
        load3(src == POLICY_SRC_CORP ? text : NULL, src == POLICY_SRC_USER ? text : NULL,
              src == POLICY_SRC_PROFILE ? text : NULL, NULL, 0, &e);
    ok(!p && e && e->status == 400 && starts(err_msg(e), want), "refused: %s", want);
    if (e && !starts(err_msg(e), want))
        diag("  got: %s", err_msg(e));
    policy_unref(p);
    int rc = policy_check_text(src, text, strlen(text), label_of(src), NULL, 0, &e2);
    ok(rc == -1 && e2 && e && strcmp(err_msg(e2), err_msg(e)) == 0, "  check_text agrees");
    err_free(e);
    err_free(e2);
}

static struct policy *load_ok(const char *c, const char *u, const char *pr)
{
    struct err *e = NULL;
    struct policy *p = load3(c, u, pr, NULL, 0, &e);
    if (!p)
        diag("load failed: %s", err_msg(e));
    err_free(e);
    return p;
}

/* Whether the three texts load (the snapshot is dropped). */
static bool loads(const char *c, const char *u, const char *pr)
{
    struct policy *p = load_ok(c, u, pr);
    policy_unref(p);
    return p != NULL;
}

/* The deciding rule of an HTTP request, "" when evaluation found none. */
static const char *http_rule(const struct policy *p, const char *host, int port, const char *method,
                             const char *path, enum policy_action *a)
{
    static struct policy_decision d;
    struct policy_request r = {0};
    r.http.host = host;
    r.http.port = port;
    r.http.has_port = true;
    r.http.method = method;
    r.http.path = path;
    *a = policy_eval_http(p, &r, &d);
    return d.rule ? d.rule : "";
}

/* ---- tests ---- */

static void test_defaults(void)
{
    struct policy *p = policy_defaults();
    const struct policy_settings *s = policy_settings(p);
    ok(s->ask_timeout_s == 30 && s->ask_max_pending == 64, "[policy] asks: 30 s, 64 pending");
    ok(s->default_action == POLICY_BLOCK && s->default_model_action == POLICY_ALLOW &&
           s->default_mcp_action == POLICY_ALLOW,
       "default actions: net block, model and mcp allow");
    ok(s->n_http_ports == 4 && s->http_ports[0] == 80 && s->http_ports[1] == 8080 &&
           s->http_ports[2] == 3128 && s->http_ports[3] == 11434,
       "http ports 80 8080 3128 11434");
    ok(!s->log_bodies && s->log_model_content && s->body_preview_bytes == 4096 &&
           s->max_request_body_mib == 256 && s->upstream_idle_s == 600,
       "[network] logging and limits");
    ok(strcmp(s->upstream_proxy, "") == 0 && s->n_overrides == 0, "no proxy, no overrides");
    ok(s->n_upstreams == 1 && s->upstreams[0].system, "dns upstreams = [system]");
    ok(s->exfil.max_label == 48 && s->exfil.max_name == 180 && s->exfil.max_sub_labels == 6 &&
           s->exfil.entropy_min_len == 24 && s->exfil.entropy_bits == 3.5 &&
           s->exfil.suspicious_burst == 20 && s->exfil.suspicious_per_min == 10 &&
           s->exfil.unique_subdomains_per_10min == 300,
       "exfil guard thresholds of section 4");
    ok(s->user_rules && s->profile_rules && s->asks, "corp switches all on");
    is_int(policy_setting_source(p, "network.log_bodies"), POLICY_SRC_DEFAULT, "source default");
    is_int(policy_setting_source(p, "dns.exfil_guard.entropy_bits"), POLICY_SRC_DEFAULT,
           "nested key known");
    is_int(policy_setting_source(p, "network.nope"), -1, "unknown key: -1");
    is_int(policy_setting_source(p, "dns.exfil_guard"), -1, "a table is not a key");
    for (int i = POLICY_SRC_CORP; i <= POLICY_SRC_DEFAULT; i++)
        ok(policy_rule_count(p, (enum policy_source)i) == 0 &&
               !policy_source_label(p, (enum policy_source)i),
           "no %s rules, no label", policy_source_name((enum policy_source)i));
    ok(policy_warning_count(p) == 0 && !policy_warning(p, 0), "no warnings");
    is_str(policy_action_name(POLICY_ASK), "ask", "action names");
    is_str(policy_source_name(POLICY_SRC_PROFILE), "profile", "source names");
    ok(policy_ref(p) == p, "policy_ref returns its argument");
    policy_unref(p);
    policy_unref(p);
    policy_unref(NULL);
}

static void test_layering(void)
{
    const char *profile = "schema = 1\n[policy]\nask_timeout_s = 10\n"
                          "[network]\nbody_preview_bytes = 100\nlog_bodies = true\n";
    const char *user = "schema = 1\n[policy]\nask_timeout_s = 20\nask_max_pending = 5\n"
                       "[network]\nlog_bodies = false\n"
                       "upstream_proxy = \"http://proxy.example:3128\"\n";
    struct policy *p = load_ok(NULL, user, profile);
    const struct policy_settings *s = p ? policy_settings(p) : NULL;
    ok(s && s->ask_timeout_s == 20, "user beats profile");
    ok(s && s->body_preview_bytes == 100, "profile beats defaults");
    ok(s && !s->log_bodies, "user false beats profile true");
    ok(s && s->ask_max_pending == 5, "user value");
    is_str(s ? s->upstream_proxy : NULL, "http://proxy.example:3128", "user proxy");
    is_int(p ? policy_setting_source(p, "policy.ask_timeout_s") : -2, POLICY_SRC_USER,
           "ask_timeout_s from user");
    is_int(p ? policy_setting_source(p, "network.body_preview_bytes") : -2, POLICY_SRC_PROFILE,
           "body_preview_bytes from profile");
    is_int(p ? policy_setting_source(p, "network.upstream_idle_s") : -2, POLICY_SRC_DEFAULT,
           "upstream_idle_s default");
    is_int(p ? policy_warning_count(p) : 99, 0, "no warnings without corp");
    policy_unref(p);

    const char *corpt = "schema = 1\n[policy]\nask_timeout_s = 40\ndefault_action = \"ask\"\n"
                        "default_model_action = \"block\"\ndefault_mcp_action = \"ask\"\n"
                        "[corp]\nuser_rules = false\nasks = false\n";
    p = load_ok(corpt, user, profile);
    s = p ? policy_settings(p) : NULL;
    ok(s && s->ask_timeout_s == 40, "corp beats user");
    is_int(p ? policy_setting_source(p, "policy.ask_timeout_s") : -2, POLICY_SRC_CORP,
           "ask_timeout_s locked by corp");
    ok(s && s->default_action == POLICY_ASK && s->default_model_action == POLICY_BLOCK &&
           s->default_mcp_action == POLICY_ASK,
       "corp default actions");
    ok(s && !s->user_rules && s->profile_rules && !s->asks, "corp switches");
    is_int(p ? policy_warning_count(p) : 0, 2, "two locked keys: user and profile values ignored");
    is_str(p ? policy_warning(p, 0) : NULL,
           "policy.toml:3: policy.ask_timeout_s: ignored: locked by the corp file",
           "user lock warning");
    char want[500];
    snprintf(want, sizeof(want),
             "%s/test.toml:3: policy.ask_timeout_s: ignored: locked by the corp file", bundled);
    is_str(p ? policy_warning(p, 1) : NULL, want, "profile lock warning");
    policy_unref(p);

    /* Corp rules come first and cannot be overridden by user rules. */
    const char *c2 =
        "schema = 1\nrule = [{ id = \"no-x\", action = \"block\", host = \"x.example\" }]\n";
    const char *u2 =
        "schema = 1\nrule = [{ id = \"x\", action = \"allow\", host = \"x.example\" },\n"
        "  { id = \"y\", action = \"allow\", host = \"y.example\" }]\n";
    const char *p2 =
        "schema = 1\nrule = [{ id = \"y\", action = \"block\", host = \"y.example\" },\n"
        "  { id = \"z\", action = \"allow\", host = \"z.example\" }]\n";
    p = load_ok(c2, u2, p2);
    enum policy_action a = 0;
    is_str(p ? http_rule(p, "x.example", 443, "GET", "/", &a) : NULL, "corp:no-x", "corp first");
    is_int(a, POLICY_BLOCK, "corp block wins over user allow");
    is_str(p ? http_rule(p, "y.example", 443, "GET", "/", &a) : NULL, "user:y",
           "user before profile");
    is_int(a, POLICY_ALLOW, "user allow wins over profile block");
    is_str(p ? http_rule(p, "z.example", 443, "GET", "/", &a) : NULL, "profile:z", "profile rule");
    is_str(p ? http_rule(p, "w.example", 443, "GET", "/", &a) : NULL, "default:default-deny",
           "default last");
    policy_unref(p);
}

static void test_settings_values(void)
{
    const char *user =
        "schema = 1\n"
        "[network]\n"
        "http_ports = [8000, 9000]\n"
        "body_preview_bytes = 1048576\n"
        "max_request_body_mib = 4096\n"
        "upstream_idle_s = 1\n"
        "log_model_content = false\n"
        "upstream_override = [\n"
        "  { target = \"API.Anthropic.com:443\", dial = \"127.0.0.1:18443\", ca_file = "
        "\"/tmp/ca.pem\" },\n"
        "  { target = \"b.example:80\", dial = \"localhost:8080\" },\n"
        "]\n"
        "[dns]\n"
        "upstreams = [\"192.0.2.53:5353\", \"198.51.100.53\", \"system\"]\n"
        "exfil_guard = { max_label = 40, entropy_bits = 3, unique_subdomains_per_10min = 50 }\n"
        "[dns.exfil_guard]\n";
    /* The last line redefines a table: a TOML error, reported with its line. */
    expect_reject(POLICY_SRC_USER, user, "policy.toml:15: ");
    char fixed[2000];
    snprintf(fixed, sizeof(fixed), "%.*s", (int)(strstr(user, "[dns.exfil_guard]\n") - user), user);
    struct policy *p = load_ok(NULL, fixed, NULL);
    const struct policy_settings *s = p ? policy_settings(p) : NULL;
    ok(s && s->n_http_ports == 2 && s->http_ports[0] == 8000 && s->http_ports[1] == 9000,
       "http_ports read");
    ok(s && s->body_preview_bytes == 1048576 && s->max_request_body_mib == 4096 &&
           s->upstream_idle_s == 1 && !s->log_model_content,
       "network limits at their maximum/minimum");
    const struct policy_override *ov = s && s->n_overrides == 2 ? s->overrides : NULL;
    ok(ov && strcmp(ov[0].target_host, "api.anthropic.com") == 0 && ov[0].target_port == 443 &&
           strcmp(ov[0].dial_host, "127.0.0.1") == 0 && ov[0].dial_port == 18443 &&
           strcmp(ov[0].ca_file, "/tmp/ca.pem") == 0,
       "override: target lowercased, dial, ca_file");
    ok(ov && strcmp(ov[1].ca_file, "") == 0 && strcmp(ov[1].dial_host, "localhost") == 0,
       "override: dial by name, no ca_file");
    const struct policy_upstream *up = s && s->n_upstreams == 3 ? s->upstreams : NULL;
    ok(up && !up[0].system && up[0].ip == 0xC0000235 && up[0].port == 5353 &&
           up[1].ip == 0xC6336435 && up[1].port == 53 && up[2].system,
       "three upstreams: with a port, default port 53, system");
    ok(s && s->exfil.max_label == 40 && s->exfil.entropy_bits == 3.0 &&
           s->exfil.unique_subdomains_per_10min == 50,
       "exfil guard keys set");
    ok(s && s->exfil.max_name == 180, "unset exfil keys keep their default");
    is_int(p ? policy_setting_source(p, "dns.exfil_guard.max_label") : -2, POLICY_SRC_USER,
           "exfil key source user");
    is_int(p ? policy_setting_source(p, "dns.exfil_guard.max_name") : -2, POLICY_SRC_DEFAULT,
           "unset exfil key source default");
    policy_unref(p);

    /* An empty port list is allowed (only 443 is redirected). */
    p = load_ok(NULL, "schema = 1\n[network]\nhttp_ports = []\n", NULL);
    ok(p && policy_settings(p)->n_http_ports == 0, "empty http_ports");
    policy_unref(p);
    /* 32 ports at the limit. */
    char ports[600] = "schema = 1\n[network]\nhttp_ports = [";
    for (int i = 0; i < 32; i++)
        snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports), "%s%d", i ? ", " : "",
                 1000 + i);
    size_t plen = strlen(ports);
    snprintf(ports + plen, sizeof(ports) - plen, "]\n");
    p = load_ok(NULL, ports, NULL);
    ok(p && policy_settings(p)->n_http_ports == 32, "32 http ports");
    policy_unref(p);
    snprintf(ports + plen, sizeof(ports) - plen, ", 2000]\n");
    expect_reject(POLICY_SRC_USER, ports,
                  "policy.toml:3: network.http_ports has more than 32 ports");
}

static void test_settings_rejects(void)
{
    enum { C = POLICY_SRC_CORP, U = POLICY_SRC_USER, P = POLICY_SRC_PROFILE };
    /* "schema = 1\n[<table>]\n<line>\n" (line 3), or "schema = 1\n<line>\n"
     * (line 2) without a table; refused with "<file>:<line>: <want>". */
    static const struct {
        int src;
        const char *table, *line, *want;
    } c[] = {
        {U, "policy", "default_action = \"allow\"",
         "policy.default_action can only be set in the corp file"},
        {P, "policy", "default_mcp_action = \"block\"",
         "policy.default_mcp_action can only be set in the corp file"},
        {U, "corp", "asks = false", "corp.asks can only be set in the corp file"},
        {P, "network", "upstream_proxy = \"\"",
         "network.upstream_proxy can only be set in the corp or user file"},
        {P, "dns", "upstreams = [\"system\"]",
         "dns.upstreams can only be set in the corp or user file"},
        {P, "dns.exfil_guard", "max_label = 10",
         "dns.exfil_guard.max_label can only be set in the corp or user file"},
        {P, "network", "upstream_override = [{ target = \"a:1\", dial = \"b:2\" }]",
         "network.upstream_override can only be set in the corp or user file"},
        {U, "policy", "ask_timeout_s = 601",
         "policy.ask_timeout_s must be an integer between 1 and 600"},
        {U, "policy", "ask_timeout_s = 0",
         "policy.ask_timeout_s must be an integer between 1 and 600"},
        {U, "policy", "ask_max_pending = 65",
         "policy.ask_max_pending must be an integer between 1 and 64"},
        {U, "policy", "ask_timeout_s = \"30\"", "policy.ask_timeout_s must be an integer"},
        {U, "network", "body_preview_bytes = 1048577",
         "network.body_preview_bytes must be an integer between 0 and 1048576"},
        {U, "network", "max_request_body_mib = 4097",
         "network.max_request_body_mib must be an integer between 1 and 4096"},
        {U, "network", "log_bodies = 1", "network.log_bodies must be true or false"},
        {U, "network", "http_ports = [80, 443]", "network.http_ports: 443 is always redirected"},
        {U, "network", "http_ports = [80, 80]", "network.http_ports: port 80 is listed twice"},
        {U, "network", "http_ports = [0]", "network.http_ports: entries are ports (1-65535)"},
        {U, "network", "http_ports = 80", "network.http_ports must be an array of ports"},
        {U, "network", "upstream_proxy = \"socks5://p:1080\"",
         "network.upstream_proxy must be \"\" or an http:// or https:// URL"},
        {U, "network", "upstream_proxy = \"http://\"", "network.upstream_proxy must be"},
        {U, "network", "upstream_proxy = \"http://a b\"", "network.upstream_proxy must be"},
        {U, "network", "upstream_override = [{ target = \"a\", dial = \"b:2\" }]",
         "network.upstream_override: target must be \"host:port\""},
        {U, "network", "upstream_override = [{ target = \"a:1\", dial = \"b: 2\" }]",
         "network.upstream_override: dial must be \"host:port\""},
        {U, "network",
         "upstream_override = [{ target = \"a:1\", dial = \"b:2\", ca_file = \"rel.pem\" }]",
         "network.upstream_override: ca_file must be an absolute path"},
        {U, "network", "upstream_override = [{ target = \"a:1\", dial = \"b:2\", via = 1 }]",
         "network.upstream_override: unknown field 'via'"},
        {U, "network",
         "upstream_override = [{ target = \"a:1\", dial = \"b:2\" }, { target = \"A:1\", dial = "
         "\"c:3\" }]",
         "network.upstream_override: target a:1 is listed twice"},
        {U, "dns", "upstreams = []", "dns.upstreams must be an array of 1 to 8 entries"},
        {U, "dns", "upstreams = [\"dns.google\"]",
         "dns.upstreams: entries are \"system\" or \"a.b.c.d[:port]\""},
        {U, "dns", "upstreams = [\"192.0.2.1: 53\"]", "dns.upstreams: entries are"},
        {U, "dns", "exfil_guard = { entropy_bits = 8.5 }",
         "dns.exfil_guard.entropy_bits must be a number between 0 and 8"},
        {U, "dns", "exfil_guard = { max_lable = 3 }", "unknown key 'dns.exfil_guard.max_lable'"},
        {U, "dns", "exfil_guard = 3", "dns.exfil_guard must be a table"},
        {U, "network", "http_port = [80]", "unknown key 'network.http_port'"},
        {U, NULL, "network = 3", "network must be a table"},
        {C, "corp", "user_rules = \"no\"", "corp.user_rules must be true or false"},
        {C, "corp", "ask = false", "unknown key 'corp.ask'"},
        {C, "policy", "default_action = \"deny\"",
         "policy.default_action must be \"allow\", \"block\" or \"ask\""},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char text[400], want[700];
        if (c[i].table)
            snprintf(text, sizeof(text), "schema = 1\n[%s]\n%s\n", c[i].table, c[i].line);
        else
            snprintf(text, sizeof(text), "schema = 1\n%s\n", c[i].line);
        snprintf(want, sizeof(want), "%s:%d: %s", label_of((enum policy_source)c[i].src),
                 c[i].table ? 3 : 2, c[i].want);
        expect_reject((enum policy_source)c[i].src, text, want);
    }
}

/* One rule `{ id = "a", action = "allow", <fields> }` on line 2 of the user
 * file, refused with "policy.toml:2: rule 'a': <want>". */
static void test_field_rejects(void)
{
    static const struct {
        const char *fields, *want;
    } c[] = {
        {"scope = \"mcp\", host = \"x.example\"", "host is not allowed in mcp rules"},
        {"scope = \"mcp\", ports = [1]", "ports is not allowed in mcp rules"},
        {"scope = \"mcp\", methods = [\"GET\"]", "methods is not allowed in mcp rules"},
        {"scope = \"mcp\", path_glob = \"/x\"", "path_glob is not allowed in mcp rules"},
        {"host = []", "host must be a string or a non-empty array of strings"},
        {"host = [1]", "host entries must be strings"},
        {"host = \"*.*.example\"",
         "host: '*.*.example': '*' is allowed only alone or as '*.suffix'"},
        {"host = \"a*.example\"", "host: 'a*.example': '*' is allowed only"},
        {"host = \"*.\"", "host: '*.'"},
        {"host = \"*.10.0.0.1\"", "host: '*.10.0.0.1'"},
        {"host = \"exa mple.com\"", "host: 'exa mple.com': a host name holds only"},
        {"host = \"bücher.example\"", "host: 'bücher.example': host name is not ASCII"},
        {"host = \"::1\"", "host: '::1': IPv6 addresses are not supported"},
        {"host = \"10.0.0.256\"", "host: '10.0.0.256'"},
        {"host = \"10.0.0.1/8\"", "host: '10.0.0.1/8' has bits set past the /8 prefix"},
        {"host = \"10.0.0.0/33\"", "host: '10.0.0.0/33' is not an IPv4 CIDR"},
        {"host = \"10.0.0.0/ 8\"", "host: '10.0.0.0/ 8' is not an IPv4 CIDR"},
        {"host = \"10.0.0.0/+8\"", "host: '10.0.0.0/+8' is not an IPv4 CIDR"},
        {"host = \"10.0.0.0/08\"", "host: '10.0.0.0/08' is not an IPv4 CIDR"},
        {"host = \"x.example/8\"", "host: 'x.example/8' is not an IPv4 CIDR"},
        {"host = \"@pypi\"", "host: unknown host list '@pypi' (known: @debian, @npm)"},
        {"host = \"@Bad!\"", "host: '@Bad!' is not a host list name"},
        {"ports = []", "ports must be a non-empty array"},
        {"ports = 443", "ports must be a non-empty array"},
        {"ports = [0]", "ports: 0 is not a port (1-65535)"},
        {"ports = [65536]", "ports: 65536 is not a port (1-65535)"},
        {"ports = [\"90-80\"]", "ports: entries are ports (443) or ranges (\"8000-8999\")"},
        {"ports = [\"443\"]", "ports: entries are ports"},
        {"ports = [\"0-80\"]", "ports: entries are ports"},
        {"ports = [\" 80-90\"]", "ports: entries are ports"},
        {"ports = [\"80- 90\"]", "ports: entries are ports"},
        {"ports = [\"80-90-100\"]", "ports: entries are ports"},
        {"methods = [\"get\"]", "methods: entries are uppercase HTTP methods"},
        {"methods = []", "methods must be a non-empty array of strings"},
        {"methods = [\"GE T\"]", "methods: entries are uppercase"},
        {"path_prefix = \"x/\"", "path_prefix must start with '/'"},
        {"path_glob = \"/a b\"", "path_glob holds a space or control character"},
        {"path_prefix = \"/api//v1/\"",
         "path_prefix '/api//v1/' never matches a normalised request path; write '/api/v1/'"},
        {"path_prefix = \"/a/./b\"", "path_prefix '/a/./b' never matches"},
        {"path_glob = \"/x/../**\"",
         "path_glob '/x/../**' never matches a normalised request path; write '/**'"},
        {"path_glob = \"/%7Euser/*\"",
         "path_glob '/%7Euser/*' never matches a normalised request path; write '/~user/*'"},
        {"path_prefix = \"/a\", path_glob = \"/b\"", "give path_prefix or path_glob, not both"},
        {"expr = \"http.hots == 'x'\"", "expr: column 1: unknown field 'http.hots'"},
        {"expr = \"model.name == 'x'\"", "expr: column 1:"},
        {"scope = \"mcp\", expr = \"http.host == 'x'\"", "expr: column 1:"},
        {"expr = 3", "expr must be a string"},
        {"reason = \"two\\nlines\"", "reason holds a control character"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char text[400], want[300];
        snprintf(text, sizeof(text),
                 "schema = 1\nrule = [{ id = \"a\", action = \"allow\", %s }]\n", c[i].fields);
        snprintf(want, sizeof(want), "policy.toml:2: rule 'a': %s", c[i].want);
        expect_reject(POLICY_SRC_USER, text, want);
    }
}

static void test_file_rejects(void)
{
    static const struct {
        const char *text, *want;
    } c[] = {
        {"schema = 1\nfoo = 1\n", "policy.toml:2: unknown key 'foo'"},
        {"schema = 2\n", "policy.toml:1: schema must be 1"},
        {"schema = \"1\"\n", "policy.toml:1: schema must be 1"},
        {"rule = []\n", "policy.toml:1: missing 'schema = 1'"},
        {"[network]\nlog_bodies = true\n", "policy.toml:1: missing 'schema = 1'"},
        {"schema = 1\nrule = 3\n", "policy.toml:2: rule must be an array of tables"},
        {"schema = 1\n[rule]\nid = \"a\"\n", "policy.toml:2: rule must be an array of tables"},
        {"schema = 1\nrule = [ 3 ]\n", "policy.toml:2: rule #1: each rule must be a table"},
        {"schema = 1\nrule = [\n { action = \"allow\" },\n]\n",
         "policy.toml:3: rule #1: missing id"},
        {"schema = 1\nrule = [\n { id = \"a\" },\n]\n",
         "policy.toml:3: rule 'a': missing action (allow, block or ask)"},
        {"schema = 1\nrule = [\n { id = \"A\", action = \"allow\" },\n]\n",
         "policy.toml:3: rule #1: id 'A' must match [a-z0-9][a-z0-9._-]{0,63}"},
        {"schema = 1\nrule = [\n { id = \"-a\", action = \"allow\" },\n]\n",
         "policy.toml:3: rule #1: id '-a'"},
        {"schema = 1\nrule = [\n { id = 5, action = \"allow\" },\n]\n",
         "policy.toml:3: rule #1: id must be a string"},
        {"schema = 1\nrule = [\n { id = \"a\", action = \"deny\" },\n]\n",
         "policy.toml:3: rule 'a': action must be allow, block or ask (not 'deny')"},
        {"schema = 1\nrule = [\n { id = \"a\", action = \"allow\", scope = \"dns\" },\n]\n",
         "policy.toml:3: rule 'a': scope must be net, model or mcp (not 'dns')"},
        {"schema = 1\nrule = [\n { id = \"a\", action = \"allow\", hosts = \"x\" },\n]\n",
         "policy.toml:3: rule #1: unknown field 'hosts'"},
        {"schema = 1\nrule = [\n { id = \"a\", action = \"allow\", enabled = \"no\" },\n]\n",
         "policy.toml:3: rule 'a': enabled must be true or false"},
        {"schema = 1\nrule = [\n { id = \"a\", action = \"allow\" },\n { id = \"b\", action = "
         "\"allow\" },\n"
         " { id = \"a\", action = \"block\" },\n]\n",
         "policy.toml:5: duplicate rule id 'a' (first at line 3)"},
        {"schema = 1\n[[rule]]\nid = \"a\"\naction = \"allow\"\n\n[[rule]]\nid = \"a\"\naction = "
         "\"allow\"\n",
         "policy.toml:6: duplicate rule id 'a' (first at line 2)"},
        {"schema = 1\nrule = [{ id = \"a\", action = \"allow\" }\n", "policy.toml:"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        expect_reject(POLICY_SRC_USER, c[i].text, c[i].want);

    /* reason: 200 bytes accepted, 201 refused. */
    char text[600], want[200];
    char reason[202];
    memset(reason, 'r', 201);
    reason[200] = '\0';
    snprintf(text, sizeof(text),
             "schema = 1\nrule = [{ id = \"a\", action = \"block\", reason = \"%s\" }]\n", reason);
    ok(loads(NULL, text, NULL), "reason of 200 bytes accepted");
    reason[200] = 'r';
    reason[201] = '\0';
    snprintf(text, sizeof(text),
             "schema = 1\nrule = [{ id = \"a\", action = \"block\", reason = \"%s\" }]\n", reason);
    snprintf(want, sizeof(want), "policy.toml:2: rule 'a': reason is longer than 200 bytes");
    expect_reject(POLICY_SRC_USER, text, want);

    /* id: 64 bytes accepted, 65 refused. */
    char id[66];
    memset(id, 'i', 65);
    id[64] = '\0';
    snprintf(text, sizeof(text), "schema = 1\nrule = [{ id = \"%s\", action = \"block\" }]\n", id);
    ok(loads(NULL, text, NULL), "id of 64 bytes accepted");
    id[64] = 'i';
    id[65] = '\0';
    snprintf(text, sizeof(text), "schema = 1\nrule = [{ id = \"%s\", action = \"block\" }]\n", id);
    expect_reject(POLICY_SRC_USER, text, "policy.toml:2: rule #1: id 'iiii");

    /* A bad rule anywhere rejects the whole file: the good rules before it
     * never take effect, and a corp file with one bad rule fails the load. */
    struct err *e = NULL;
    struct policy *p = load3(NULL,
                             "schema = 1\nrule = [\n { id = \"good\", action = \"allow\" },\n"
                             " { id = \"bad\", action = \"allow\", ports = [0] },\n]\n",
                             "", NULL, 0, &e);
    ok(!p && e && starts(err_msg(e), "policy.toml:4: rule 'bad': ports: 0"),
       "one bad rule rejects the file");
    err_free(e);
    e = NULL;
    p = load3("schema = 1\nrule = [{ id = \"x\", action = \"nope\" }]\n", NULL, "", NULL, 0, &e);
    ok(!p && e && strstr(err_msg(e), "corp.toml:2: rule 'x': action"),
       "bad corp file fails the load");
    err_free(e);

    /* The corp file shares its path with the settings registry: other
     * top-level keys are skipped there, never in the other files. */
    ok(loads("[vm]\ncpus = 2\n", NULL, NULL), "corp file with settings-registry keys only");
    p = load_ok("schema = 1\n[vm]\ncpus = 2\n[corp]\nasks = false\n", NULL, NULL);
    ok(p && !policy_settings(p)->asks, "corp file mixing registry and policy keys");
    policy_unref(p);
    char wantvm[400];
    snprintf(wantvm, sizeof(wantvm), "%s/test.toml:2: unknown key 'vm'", bundled);
    expect_reject(POLICY_SRC_PROFILE, "schema = 1\n[vm]\ncpus = 2\n", wantvm);

    /* Files with no policy keys at all need no schema. */
    ok(loads(NULL, "# nothing yet\n", ""), "comment-only user file");
}

/* The complete example of network.md 8.5, as the user file. */
static const char spec_example[] =
    "schema = 1\n"
    "rule = [   # top-level, before any [table]; order = evaluation order\n"
    "  { id = \"no-git-push\", action = \"block\", host = \"github.com\", methods = [\"POST\"], "
    "path_glob = \"/**/git-receive-pack\", reason = \"pushing from the sandbox is disabled; tell "
    "the user the branch is ready\" },\n"
    "  { id = \"internal-wiki\", action = \"ask\", host = [\"wiki.corp.example\", "
    "\"*.docs.corp.example\"], ports = [443, \"8443-8444\"], methods = [\"GET\", \"HEAD\"], "
    "path_prefix = \"/wiki/\" },\n"
    "  { id = \"host-ollama\", action = \"allow\", host = \"host.capsem.internal\", ports = "
    "[11434] },   # names a loopback target: allowed, source is user\n"
    "  { id = \"hf-read\", action = \"allow\", host = [\"huggingface.co\", \"*.hf.co\"], methods = "
    "[\"GET\", \"HEAD\"], enabled = false },\n"
    "  { id = \"no-curl-uploads\", action = \"block\", methods = [\"POST\", \"PUT\", \"PATCH\"], "
    "expr = 'process.name in [\"curl\", \"wget\"]' },\n"
    "  { id = \"no-odd-names\", action = \"block\", expr = 'dns.suspicious || dns.qtype == "
    "\"TXT\"' },        # name-decidable: applies to DNS\n"
    "  { id = \"ask-big-opus\", scope = \"model\", action = \"ask\", expr = 'model.provider == "
    "\"anthropic\" && model.name.startsWith(\"claude-opus\") && model.max_tokens > 32000' },\n"
    "  { id = \"fetch-no-internal\", scope = \"mcp\", action = \"block\", expr = 'mcp.tool == "
    "\"local__fetch_http\" && mcp.args.matches(\"https?://[^/\\\"]*\\\\.corp\\\\.example\")', "
    "reason = \"internal sites are not fetched through MCP\" },\n"
    "]\n"
    "[policy]\n"
    "ask_timeout_s = 45                      # default 30, max 600\n"
    "ask_max_pending = 64\n"
    "[network]\n"
    "http_ports = [80, 8080, 3128, 11434]    # guest ports redirected as plain HTTP; 443 is always "
    "redirected\n"
    "log_bodies = false                      # body previews in net_events\n"
    "body_preview_bytes = 4096               # per direction, max 1048576\n"
    "log_model_content = true                # text/thinking previews in model_calls\n"
    "max_request_body_mib = 256\n"
    "upstream_idle_s = 600\n"
    "upstream_proxy = \"\"                     # e.g. \"http://proxy.corp.example:3128\"; empty = "
    "direct\n"
    "upstream_override = [                   # tests: point a name at a local server\n"
    "  { target = \"api.anthropic.com:443\", dial = \"127.0.0.1:18443\", ca_file = "
    "\"/tmp/capsem-test/upstream-ca.pem\" },\n"
    "]\n"
    "[dns]\n"
    "upstreams = [\"system\"]                  # or [\"192.0.2.53:53\", \"198.51.100.53:53\"]\n"
    "exfil_guard = { max_label = 48, max_name = 180, max_sub_labels = 6, entropy_min_len = 24, "
    "entropy_bits = 3.5, suspicious_burst = 20, suspicious_per_min = 10, "
    "unique_subdomains_per_10min = 300 }\n"
    "# corp.toml only:  [corp] user_rules = true, profile_rules = true, asks = true\n"
    "#                  [policy] default_action = \"block\", default_model_action = \"allow\", "
    "default_mcp_action = \"allow\"\n";

static void test_spec_example(void)
{
    struct policy *p = load_ok(NULL, spec_example, NULL);
    ok(p, "the example of 8.5 loads");
    if (!p)
        return;
    const struct policy_settings *s = policy_settings(p);
    is_int(policy_rule_count(p, POLICY_SRC_USER), 8, "eight rules");
    is_int(policy_warning_count(p), 0, "no warnings");
    ok(s->ask_timeout_s == 45 && s->ask_max_pending == 64, "[policy]");
    ok(s->n_http_ports == 4 && !s->log_bodies && s->body_preview_bytes == 4096 &&
           s->log_model_content && s->max_request_body_mib == 256 && s->upstream_idle_s == 600 &&
           strcmp(s->upstream_proxy, "") == 0,
       "[network]");
    ok(s->n_overrides == 1 && strcmp(s->overrides[0].target_host, "api.anthropic.com") == 0 &&
           s->overrides[0].dial_port == 18443 &&
           strcmp(s->overrides[0].ca_file, "/tmp/capsem-test/upstream-ca.pem") == 0,
       "upstream_override");
    ok(s->n_upstreams == 1 && s->upstreams[0].system && s->exfil.unique_subdomains_per_10min == 300,
       "[dns]");
    static const struct {
        const char *host;
        int port;
        const char *method, *path, *rule;
        enum policy_action a;
    } c[] = {
        {"github.com", 443, "POST", "/o/r.git/git-receive-pack", "user:no-git-push", POLICY_BLOCK},
        {"github.com", 443, "GET", "/o/r.git/info/refs", "default:default-deny", POLICY_BLOCK},
        {"wiki.corp.example", 443, "GET", "/wiki/Main", "user:internal-wiki", POLICY_ASK},
        {"a.docs.corp.example", 8444, "HEAD", "/wiki/", "user:internal-wiki", POLICY_ASK},
        {"wiki.corp.example", 8445, "GET", "/wiki/Main", "default:default-deny", POLICY_BLOCK},
        {"docs.corp.example", 443, "GET", "/wiki/Main", "default:default-deny", POLICY_BLOCK},
        {"host.capsem.internal", 11434, "POST", "/api/chat", "user:host-ollama", POLICY_ALLOW},
        {"huggingface.co", 443, "GET", "/", "default:default-deny", POLICY_BLOCK},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        enum policy_action a = 0;
        is_str(http_rule(p, c[i].host, c[i].port, c[i].method, c[i].path, &a), c[i].rule,
               "example: %s %s:%d%s", c[i].method, c[i].host, c[i].port, c[i].path);
        is_int(a, c[i].a, "  action");
    }
    struct policy_decision d;
    struct policy_request r = {0};
    r.http.host = "uploads.example";
    r.http.method = "PUT";
    r.process.name = "wget";
    is_int(policy_eval_http(p, &r, &d), POLICY_BLOCK, "example: wget PUT blocked");
    is_str(d.rule, "user:no-curl-uploads", "  by no-curl-uploads");
    struct policy_request q = {.dns.qname = "x.example", .dns.qtype = "TXT"};
    is_int(policy_eval_dns(p, &q, &d), POLICY_BLOCK, "example: TXT query NXDOMAIN");
    is_str(d.rule, "user:no-odd-names", "  by no-odd-names");
    struct policy_request m = {.model.provider = "anthropic",
                               .model.name = "claude-opus-4",
                               .model.max_tokens = 64000,
                               .model.has_max_tokens = true};
    is_int(policy_eval_model(p, &m, &d), POLICY_ASK, "example: big opus call asks");
    struct policy_request t = {.mcp.tool = "local__fetch_http",
                               .mcp.args = "{\"url\":\"http://wiki.corp.example/a\"}"};
    is_int(policy_eval_mcp(p, &t, &d), POLICY_BLOCK, "example: internal fetch blocked");
    is_str(d.reason, "internal sites are not fetched through MCP", "  with its reason");
    policy_unref(p);
}

static void test_limits(void)
{
    /* 10,000 rules load; 10,001 do not. */
    size_t cap = 10001 * 48 + 64;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, "schema = 1\nrule = [\n");
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(text + n, cap - n, "{ id = \"r%d\", action = \"block\" },\n", i);
    snprintf(text + n, cap - n, "]\n");
    struct policy *p = load_ok(NULL, text, NULL);
    is_int(p ? policy_rule_count(p, POLICY_SRC_USER) : 0, 10000, "10000 rules");
    policy_unref(p);
    n += (size_t)snprintf(text + n, cap - n, "{ id = \"r10000\", action = \"block\" },\n");
    snprintf(text + n, cap - n, "]\n");
    expect_reject(POLICY_SRC_USER, text, "policy.toml:10003: more than 10000 rules in one file");
    free(text);

    /* An expression of 4 KiB loads; one byte more rejects the file. */
    char *ex = malloc(8192), body[4200];
    size_t k = (size_t)snprintf(body, sizeof(body), "process.name == \"");
    memset(body + k, 'x', sizeof(body) - k);
    for (int len = 4096; len <= 4097; len++) {
        snprintf(ex, 8192,
                 "schema = 1\nrule = [{ id = \"e\", action = \"block\", expr = '%.*s\"' }]\n",
                 len - 1, body);
        if (len == 4096)
            ok(loads(NULL, ex, NULL), "expression of 4096 bytes");
        else
            expect_reject(POLICY_SRC_USER, ex, "policy.toml:2: rule 'e': expr: ");
    }
    free(ex);

    /* A file over 1 MiB is refused before parsing (the comment-only file of
     * exactly 1 MiB loads). */
    struct policy_load_opts o = {
        .home = home, .corp_path = "", .profile = "test", .bundled_dir = bundled};
    text = malloc(POLICY_MAX_FILE + 2);
    for (size_t i = 0; i <= POLICY_MAX_FILE; i++)
        text[i] = i % 80 == 79 ? '\n' : '#';
    for (int extra = 1; extra >= 0; extra--) {
        text[POLICY_MAX_FILE + extra] = '\0';
        put_file("home/policy.toml", text);
        struct err *e = NULL;
        p = policy_load(&o, &e);
        if (extra)
            ok(!p && e && e->status == 400 && strstr(err_msg(e), "larger than"),
               "1 MiB + 1 refused");
        else
            ok(p, "file of exactly 1 MiB accepted");
        policy_unref(p);
        err_free(e);
    }
    free(text);
    put_file("home/policy.toml", NULL);
}

static void test_warnings(void)
{
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"claims\", action = \"allow\", expr = 'process.name == \"apt\"' },\n"
        " { id = \"star\", action = \"allow\", host = \"*\", expr = 'process.exe == \"/x\"' },\n"
        " { id = \"fine\", action = \"allow\", host = \"a.example\", expr = 'process.name == "
        "\"x\"' },\n"
        " { id = \"blk\", action = \"block\", expr = 'process.name == \"curl\"' },\n"
        "]\n";
    struct policy *p = load_ok(NULL, u, NULL);
    is_int(p ? policy_warning_count(p) : 0, 2, "two process-only allow rules warn");
    ok(p && starts(policy_warning(p, 0),
                   "policy.toml:3: rule 'claims': an allow rule conditioned only on process.*"),
       "warning names file, line and rule");
    ok(p && starts(policy_warning(p, 1), "policy.toml:4: rule 'star': "),
       "host = \"*\" is no condition");
    policy_unref(p);
}

static void test_hostlists(void)
{
    static const char *const deb[] = {"deb.debian.org", "*.debian.org", "10.9.9.9"};
    static const char *const npm[] = {"registry.npmjs.org"};
    static const char *const corp_m[] = {"mirror.corp.example"};
    struct policy_hostlist lists[] = {
        {.name = "debian", .hosts = deb, .nhosts = 3},
        {.name = "npm", .hosts = npm, .nhosts = 1},
        {.name = "mirrors", .hosts = corp_m, .nhosts = 1},
    };
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"deb\", action = \"allow\", host = \"@debian\" },\n"
        " { id = \"mixed\", action = \"allow\", host = [\"@npm\", \"x.example\", \"@mirrors\"] },\n"
        "]\n";
    struct err *e = NULL;
    struct policy *p = load3(NULL, u, "", lists, 3, &e);
    ok(p, "host lists expand");
    if (!p)
        diag("  %s", err_msg(e));
    err_free(e);
    enum policy_action a = 0;
    static const char *const hl[][2] = {
        {"deb.debian.org", "user:deb"},         {"security.debian.org", "user:deb"},
        {"debian.org", "default:default-deny"}, {"10.9.9.9", "user:deb"},
        {"registry.npmjs.org", "user:mixed"},   {"x.example", "user:mixed"},
        {"mirror.corp.example", "user:mixed"},
    };
    is_int(p ? policy_rule_count(p, POLICY_SRC_USER) : 0, 2, "one rule per list rule");
    for (size_t i = 0; p && i < sizeof(hl) / sizeof(hl[0]); i++)
        is_str(http_rule(p, hl[i][0], 443, "GET", "/", &a), hl[i][1], "list host %s", hl[i][0]);
    policy_unref(p);

    /* Not supplied: @debian and @npm are known and match nothing. */
    e = NULL;
    p = load3(NULL, u, "", NULL, 0, &e);
    ok(!p && e && strstr(err_msg(e), "unknown host list '@mirrors'"),
       "a caller list not supplied is unknown");
    err_free(e);
    u = "schema = 1\nrule = [{ id = \"deb\", action = \"allow\", host = \"@debian\" }]\n";
    p = load_ok(NULL, u, NULL);
    ok(p, "@debian without a list loads");
    is_str(p ? http_rule(p, "deb.debian.org", 80, "GET", "/", &a) : NULL, "default:default-deny",
           "empty @debian matches nothing");
    struct policy_request dq = {.dns.qname = "deb.debian.org"};
    struct policy_decision dd;
    ok(p && policy_eval_dns(p, &dq, &dd) == POLICY_BLOCK, "empty @debian resolves nothing");
    policy_unref(p);
    struct policy_hostlist empty = {.name = "debian", .hosts = NULL, .nhosts = 0};
    p = load3(NULL, u, "", &empty, 1, NULL);
    is_str(p ? http_rule(p, "deb.debian.org", 80, "GET", "/", &a) : NULL, "default:default-deny",
           "an empty supplied list matches nothing");
    policy_unref(p);

    /* Bad entries in a list reject the file that uses it. */
    static const char *const bad[] = {"ok.example", "bad host"};
    struct policy_hostlist bl = {.name = "debian", .hosts = bad, .nhosts = 2};
    e = NULL;
    p = load3(NULL, u, "", &bl, 1, &e);
    ok(!p && e && starts(err_msg(e), "policy.toml:2: rule 'deb': host: @debian: 'bad host'"),
       "bad list entry named with the list");
    err_free(e);
    static const char *const star[] = {"*"};
    struct policy_hostlist sl = {.name = "debian", .hosts = star, .nhosts = 1};
    e = NULL;
    p = load3(NULL, u, "", &sl, 1, &e);
    ok(!p && e &&
           starts(err_msg(e), "policy.toml:2: rule 'deb': host: @debian: '*' is not allowed"),
       "'*' in a list refused");
    err_free(e);
    e = NULL;
    is_int(policy_check_text(POLICY_SRC_USER, u, strlen(u), "policy.toml", &sl, 1, &e), -1,
           "check_text uses the lists");
    err_free(e);
}

/* The bundled profile, table of network.md 8.6. */
static void test_code_profile(void)
{
    static const char *const deb[] = {"deb.debian.org", "security.debian.org"};
    static const char *const npm[] = {"registry.npmjs.org"};
    struct policy_hostlist lists[] = {
        {.name = "debian", .hosts = deb, .nhosts = 2},
        {.name = "npm", .hosts = npm, .nhosts = 1},
    };
    struct policy_load_opts o = {.corp_path = "",
                                 .bundled_dir = CAPSEM_SOURCE_SHARE "/profiles",
                                 .hostlists = lists,
                                 .nhostlists = 2};
    struct err *e = NULL;
    struct policy *p = policy_load(&o, &e);
    ok(p, "bundled code profile loads from share/profiles");
    if (!p) {
        diag("  %s", err_msg(e));
        err_free(e);
        return;
    }
    is_str(policy_source_label(p, POLICY_SRC_PROFILE), CAPSEM_SOURCE_SHARE "/profiles/code.toml",
           "profile label");
    is_int(policy_warning_count(p), 0, "no warnings");
    static const char *const ids[] = {"anthropic", "openai",    "gemini",        "debian",
                                      "npm",       "npm-audit", "pypi",          "crates",
                                      "go",        "github",    "github-content"};
    size_t n = policy_rule_count(p, POLICY_SRC_PROFILE);
    is_int(n, 11, "eleven rules");
    for (size_t i = 0; i < n && i < 11; i++) {
        const struct policy_rule *r = &p->src[POLICY_SRC_PROFILE].rules[i];
        ok(strcmp(r->id, ids[i]) == 0 && r->action == POLICY_ALLOW && r->enabled &&
               r->scope == POLICY_SCOPE_NET,
           "rule %zu: %s, enabled net allow", i, ids[i]);
    }
    static const struct {
        const char *host;
        int port;
        const char *method, *path, *rule; /* rule NULL: denied by default */
    } c[] = {
        {"api.anthropic.com", 443, "POST", "/v1/messages", "profile:anthropic"},
        {"api.anthropic.com", 443, "DELETE", "/v1/files/x", "profile:anthropic"},
        {"api.anthropic.com", 80, "GET", "/", NULL},
        {"x.api.anthropic.com", 443, "GET", "/", NULL},
        {"anthropic.com", 443, "GET", "/", NULL},
        {"api.openai.com", 443, "POST", "/v1/responses", "profile:openai"},
        {"generativelanguage.googleapis.com", 443, "POST", "/v1beta/models/g:generateContent",
         "profile:gemini"},
        {"storage.googleapis.com", 443, "GET", "/", NULL},
        {"deb.debian.org", 80, "GET", "/debian/dists/bookworm/InRelease", "profile:debian"},
        {"deb.debian.org", 443, "HEAD", "/", "profile:debian"},
        {"security.debian.org", 80, "GET", "/", "profile:debian"},
        {"deb.debian.org", 8080, "GET", "/", NULL},
        {"deb.debian.org", 80, "POST", "/", NULL},
        {"ftp.debian.org", 80, "GET", "/", NULL},
        {"registry.npmjs.org", 443, "GET", "/left-pad", "profile:npm"},
        {"registry.npmjs.org", 443, "HEAD", "/left-pad", "profile:npm"},
        {"registry.npmjs.org", 443, "PUT", "/left-pad", NULL},
        {"registry.npmjs.org", 443, "POST", "/-/npm/v1/security/advisories/bulk",
         "profile:npm-audit"},
        {"registry.npmjs.org", 443, "POST", "/-/npm/v1/security/audits/quick", "profile:npm-audit"},
        {"registry.npmjs.org", 443, "POST", "/-/v1/login", NULL},
        {"registry.npmjs.org", 443, "DELETE", "/-/npm/v1/security/x", NULL},
        {"registry.npmjs.org", 80, "GET", "/left-pad", NULL},
        {"registry.yarnpkg.com", 443, "GET", "/", NULL},
        {"pypi.org", 443, "GET", "/simple/requests/", "profile:pypi"},
        {"files.pythonhosted.org", 443, "GET", "/packages/x.whl", "profile:pypi"},
        {"pypi.org", 443, "POST", "/legacy/", NULL},
        {"upload.pypi.org", 443, "POST", "/legacy/", NULL},
        {"crates.io", 443, "GET", "/api/v1/crates/serde", "profile:crates"},
        {"index.crates.io", 443, "GET", "/se/rd/serde", "profile:crates"},
        {"static.crates.io", 443, "HEAD", "/crates/serde", "profile:crates"},
        {"crates.io", 443, "PUT", "/api/v1/crates/new", NULL},
        {"proxy.golang.org", 443, "GET", "/github.com/x/@v/list", "profile:go"},
        {"sum.golang.org", 443, "GET", "/lookup/x", "profile:go"},
        {"proxy.golang.org", 443, "POST", "/", NULL},
        {"golang.org", 443, "GET", "/", NULL},
        {"github.com", 443, "POST", "/org/repo.git/git-receive-pack", "profile:github"},
        {"api.github.com", 443, "PATCH", "/repos/o/r", "profile:github"},
        {"github.com", 80, "GET", "/", NULL},
        {"gist.github.com", 443, "GET", "/", NULL},
        {"codeload.github.com", 443, "GET", "/o/r/tar.gz/main", "profile:github-content"},
        {"raw.githubusercontent.com", 443, "GET", "/o/r/main/README", "profile:github-content"},
        {"objects.githubusercontent.com", 443, "HEAD", "/x", "profile:github-content"},
        {"release-assets.githubusercontent.com", 443, "GET", "/x", "profile:github-content"},
        {"raw.githubusercontent.com", 443, "POST", "/x", NULL},
        {"gist.githubusercontent.com", 443, "GET", "/x", NULL},
        {"example.com", 443, "GET", "/", NULL},
        {"1.1.1.1", 443, "GET", "/", NULL},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        enum policy_action a = 0;
        const char *got = http_rule(p, c[i].host, c[i].port, c[i].method, c[i].path, &a);
        is_str(got, c[i].rule ? c[i].rule : "default:default-deny", "%s %s:%d%s", c[i].method,
               c[i].host, c[i].port, c[i].path);
        is_int(a, c[i].rule ? POLICY_ALLOW : POLICY_BLOCK, "  action");
    }
    /* DNS: every profile rule has ports, so each resolves its names (the
     * connection is checked later) and nothing else resolves. */
    static const struct {
        const char *qname, *rule;
    } dn[] = {
        {"api.anthropic.com", "profile:anthropic"},
        {"registry.npmjs.org", "profile:npm"},
        {"security.debian.org", "profile:debian"},
        {"release-assets.githubusercontent.com", "profile:github-content"},
        {"example.com", "default:default-deny"},
        {"x.github.com", "default:default-deny"},
    };
    for (size_t i = 0; i < sizeof(dn) / sizeof(dn[0]); i++) {
        struct policy_request r = {0};
        struct policy_decision d;
        r.dns.qname = dn[i].qname;
        r.dns.qtype = "A";
        enum policy_action a = policy_eval_dns(p, &r, &d);
        is_str(d.rule, dn[i].rule, "DNS %s", dn[i].qname);
        is_int(a, strcmp(dn[i].rule, "default:default-deny") ? POLICY_ALLOW : POLICY_BLOCK,
               "  action");
    }
    policy_unref(p);

    /* Without the host lists the debian and npm rules match nothing. */
    o.hostlists = NULL;
    o.nhostlists = 0;
    p = policy_load(&o, NULL);
    enum policy_action a = 0;
    is_str(p ? http_rule(p, "deb.debian.org", 80, "GET", "/", &a) : NULL, "default:default-deny",
           "no apt hosts recorded: debian allows nothing");
    is_str(p ? http_rule(p, "registry.npmjs.org", 443, "GET", "/", &a) : NULL,
           "default:default-deny", "no npm registry recorded: npm allows nothing");
    policy_unref(p);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/capsem-test-policy-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    path_of(home, sizeof(home), "home");
    path_of(corp, sizeof(corp), "corp.toml");
    path_of(bundled, sizeof(bundled), "bundled");
    mkdir(home, 0700);
    mkdir(bundled, 0700);
    unsetenv("CAPSEM_CORP_CONFIG");

    test_defaults();
    test_layering();
    test_settings_values();
    test_settings_rejects();
    test_file_rejects();
    test_field_rejects();
    test_spec_example();
    test_limits();
    test_warnings();
    test_hostlists();
    test_code_profile();

    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
