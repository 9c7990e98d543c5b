/* Unit tests for policy evaluation (src/lib/policy/policy.h, network.md 8.2,
 * 8.3, section 7): first match across corp, user and profile, the defaults,
 * every rule field, corp switches, the always-blocked destinations and the
 * corp/user naming exception, DNS decidability, model and mcp scopes, the
 * texts agents read, and the request normalisation helpers. */
#include <arpa/inet.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "tap.h"

static char root[256], home[300], corp[300], bundled[300];

static void write_text(const char *path, const char *text)
{
    if (!text) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "w");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0)
        diag("cannot write %s", path);
}

/* Builds a snapshot from corp, user and profile texts (NULL = absent). */
static struct policy *load(const char *c, const char *u, const char *pr)
{
    char path[400];
    write_text(corp, c);
    snprintf(path, sizeof(path), "%s/policy.toml", home);
    write_text(path, u);
    snprintf(path, sizeof(path), "%s/test.toml", bundled);
    write_text(path, pr ? pr : "");
    struct policy_load_opts o = {
        .home = home, .corp_path = corp, .profile = "test", .bundled_dir = bundled};
    struct err *e = NULL;
    struct policy *p = policy_load(&o, &e);
    if (!p)
        diag("load failed: %s", err_msg(e));
    err_free(e);
    return p;
}

/* A user file "schema = 1\nrule = [ <rules> ]". */
static struct policy *load_user_rules(const char *rules)
{
    char text[8192];
    snprintf(text, sizeof(text), "schema = 1\nrule = [\n%s\n]\n", rules);
    return load(NULL, text, NULL);
}

static struct policy_request req(const char *host, int port, const char *method, const char *path)
{
    struct policy_request r = {0};
    r.http.host = host;
    if (port) {
        r.http.port = port;
        r.http.has_port = true;
    }
    r.http.method = method;
    r.http.path = path;
    return r;
}

static struct policy_decision d; /* the last decision */

static const char *http(const struct policy *p, const char *host, int port, const char *method,
                        const char *path)
{
    struct policy_request r = req(host, port, method, path);
    memset(&d, 0x5a, sizeof(d)); /* evaluation must fill every field */
    policy_eval_http(p, &r, &d);
    return d.rule;
}

static const char *dns(const struct policy *p, const char *qname, const char *qtype)
{
    struct policy_request r = {0};
    r.dns.qname = qname;
    r.dns.qtype = qtype;
    memset(&d, 0x5a, sizeof(d));
    policy_eval_dns(p, &r, &d);
    return d.rule;
}

/* ---- first match, defaults ---- */

static void test_first_match(void)
{
    const char *c = "schema = 1\nrule = [\n"
                    " { id = \"c-block\", action = \"block\", host = \"both.example\", reason = "
                    "\"corp says no\" },\n"
                    "]\n";
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"u-allow\", action = \"allow\", host = [\"both.example\", \"user.example\"] },\n"
        " { id = \"u-later\", action = \"block\", host = \"user.example\" },\n"
        " { id = \"u-off\", action = \"block\", host = \"prof.example\", enabled = false },\n"
        "]\n";
    const char *pr = "schema = 1\nrule = [\n"
                     " { id = \"p-allow\", action = \"allow\", host = \"prof.example\" },\n"
                     " { id = \"p-ask\", action = \"ask\", host = \"ask.example\" },\n"
                     "]\n";
    struct policy *p = load(c, u, pr);
    is_str(http(p, "both.example", 443, "GET", "/"), "corp:c-block", "corp decides first");
    is_int(d.action, POLICY_BLOCK, "blocked");
    is_int(d.source, POLICY_SRC_CORP, "source corp");
    is_str(d.id, "c-block", "id");
    is_str(d.reason, "corp says no", "reason");
    is_str(d.code, "policy_block", "code policy_block");
    ok(d.deciding != NULL && !d.names_destination, "deciding rule set");
    is_str(http(p, "user.example", 443, "GET", "/"), "user:u-allow", "first rule of the file wins");
    is_int(d.action, POLICY_ALLOW, "allowed");
    ok(d.code == NULL && d.reason == NULL, "no code, no reason on allow");
    is_str(http(p, "prof.example", 443, "GET", "/"), "profile:p-allow",
           "disabled user rule skipped");
    is_str(http(p, "ask.example", 443, "GET", "/"), "profile:p-ask", "ask rule");
    is_int(d.action, POLICY_ASK, "ask");
    ok(d.code == NULL, "ask has no block code");
    is_str(http(p, "other.example", 443, "GET", "/"), "default:default-deny", "default deny");
    is_int(d.action, POLICY_BLOCK, "default blocks");
    is_int(d.source, POLICY_SRC_DEFAULT, "source default");
    is_str(d.id, "default-deny", "default id");
    is_str(d.code, "default_deny", "code default_deny");
    ok(d.reason == NULL && d.deciding == NULL && !d.names_destination, "default has no rule");
    policy_unref(p);

    /* The compiled defaults alone deny the net and allow model and mcp. */
    p = policy_defaults();
    is_str(http(p, "api.anthropic.com", 443, "POST", "/v1/messages"), "default:default-deny",
           "defaults: net denied");
    struct policy_request r = {0};
    is_int(policy_eval_model(p, &r, &d), POLICY_ALLOW, "defaults: model allowed");
    is_str(d.rule, "default:model-default-allow", "model default rule");
    is_int(policy_eval_mcp(p, &r, &d), POLICY_ALLOW, "defaults: mcp allowed");
    is_str(d.rule, "default:mcp-default-allow", "mcp default rule");
    is_str(dns(p, "example.com", "A"), "default:default-deny", "defaults: DNS NXDOMAIN");
    is_int(d.action, POLICY_BLOCK, "  blocked");
    policy_unref(p);

    /* Corp default actions. */
    p = load("schema = 1\n[policy]\ndefault_action = \"allow\"\n", NULL, NULL);
    is_str(http(p, "x.example", 443, "GET", "/"), "default:default-allow", "corp default allow");
    is_int(d.action, POLICY_ALLOW, "  allowed");
    is_str(dns(p, "x.example", "A"), "default:default-allow", "DNS follows default allow");
    is_int(d.action, POLICY_ALLOW, "  resolves");
    policy_unref(p);
    p = load("schema = 1\n[policy]\ndefault_action = \"ask\"\n", NULL, NULL);
    is_str(http(p, "x.example", 443, "GET", "/"), "default:default-ask", "corp default ask");
    is_int(d.action, POLICY_ASK, "  ask");
    is_str(dns(p, "x.example", "A"), "default:default-ask", "DNS: default ask resolves");
    is_int(d.action, POLICY_ALLOW, "  resolves");
    policy_unref(p);
    p = load("schema = 1\n[policy]\ndefault_action = \"ask\"\n[corp]\nasks = false\n", NULL, NULL);
    is_str(http(p, "x.example", 443, "GET", "/"), "default:default-ask", "default ask, asks off");
    is_int(d.action, POLICY_BLOCK, "  blocked");
    is_str(d.code, "ask_disabled", "  ask_disabled");
    is_int(policy_eval_dns(p, &(struct policy_request){.dns.qname = "x.example"}, &d), POLICY_BLOCK,
           "  DNS blocked too");
    policy_unref(p);
}

/* ---- rule fields ---- */

static void test_hosts(void)
{
    struct policy *p = load_user_rules(
        " { id = \"exact\", action = \"allow\", host = \"API.GitHub.com.\" },\n"
        " { id = \"suffix\", action = \"allow\", host = \"*.github.io\" },\n"
        " { id = \"ip\", action = \"allow\", host = \"93.184.216.34\" },\n"
        " { id = \"cidr\", action = \"allow\", host = \"203.0.113.0/24\" },\n"
        " { id = \"cidr0\", action = \"allow\", host = \"198.51.100.7/32\" },\n"
        " { id = \"any\", action = \"ask\", host = \"*\", methods = [\"PUT\"] },\n");
    static const struct {
        const char *host, *method, *rule;
    } c[] = {
        {"api.github.com", "GET", "user:exact"},
        {"github.com", "GET", "default:default-deny"},
        {"x.api.github.com", "GET", "default:default-deny"},
        {"user.github.io", "GET", "user:suffix"},
        {"a.b.github.io", "GET", "user:suffix"},
        {"github.io", "GET", "default:default-deny"},
        {"evilgithub.io", "GET", "default:default-deny"},
        {"github.io.evil.example", "GET", "default:default-deny"},
        {"93.184.216.34", "GET", "user:ip"},
        {"93.184.216.35", "GET", "default:default-deny"},
        {"203.0.113.0", "GET", "user:cidr"},
        {"203.0.113.255", "GET", "user:cidr"},
        {"203.0.114.0", "GET", "default:default-deny"},
        {"203.0.112.255", "GET", "default:default-deny"},
        {"198.51.100.7", "GET", "user:cidr0"},
        {"198.51.100.8", "GET", "default:default-deny"},
        {"anything.example", "PUT", "user:any"},
        {"8.8.8.8", "PUT", "user:any"},
        {"anything.example", "GET", "default:default-deny"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        is_str(http(p, c[i].host, 443, c[i].method, "/"), c[i].rule, "host %s %s", c[i].method,
               c[i].host);
    struct policy_request r = req(NULL, 443, "GET", "/");
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "default:default-deny", "no host: host rules never match");
    policy_unref(p);

    /* A name pattern does not match an address and a CIDR not a name. */
    p = load_user_rules(
        " { id = \"n\", action = \"allow\", host = \"1.2.3.4.example\" },\n"
        " { id = \"all\", action = \"allow\", host = \"0.0.0.0/0\", methods = [\"GET\"] },\n");
    is_str(http(p, "1.2.3.4.example", 443, "GET", "/"), "user:n", "name with digits");
    is_str(http(p, "8.8.4.4", 443, "GET", "/"), "user:all", "/0 matches every address");
    is_str(http(p, "name.example", 443, "GET", "/"), "default:default-deny", "/0 matches no name");
    policy_unref(p);
}

static void test_fields(void)
{
    struct policy *p = load_user_rules(
        " { id = \"port\", action = \"allow\", host = \"p.example\", ports = [443, \"8000-8002\", "
        "\"9000-9000\"] },\n"
        " { id = \"meth\", action = \"allow\", host = \"m.example\", methods = [\"GET\", \"HEAD\"] "
        "},\n"
        " { id = \"pre\", action = \"allow\", host = \"x.example\", path_prefix = \"/api/\" },\n"
        " { id = \"glob\", action = \"block\", host = \"g.example\", methods = [\"POST\"], "
        "path_glob = \"/**/git-receive-pack\" },\n"
        " { id = \"glob-any\", action = \"allow\", host = \"g.example\" },\n"
        " { id = \"seg\", action = \"allow\", host = \"s.example\", path_glob = \"/v1/*/items/?\" "
        "},\n"
        " { id = \"none\", action = \"block\", host = \"none.example\" },\n"
        " { id = \"empty\", action = \"allow\" },\n");
    static const struct {
        const char *host;
        int port;
        const char *method, *path, *rule;
    } c[] = {
        {"p.example", 443, "GET", "/", "user:port"},
        {"p.example", 8000, "GET", "/", "user:port"},
        {"p.example", 8002, "GET", "/", "user:port"},
        {"p.example", 8003, "GET", "/", "user:empty"},
        {"p.example", 7999, "GET", "/", "user:empty"},
        {"p.example", 9000, "GET", "/", "user:port"},
        {"p.example", 9001, "GET", "/", "user:empty"},
        {"p.example", 0, "GET", "/", "user:empty"}, /* no port: a port rule cannot match */
        {"m.example", 443, "GET", "/", "user:meth"},
        {"m.example", 443, "HEAD", "/", "user:meth"},
        {"m.example", 443, "get", "/", "user:empty"},
        {"m.example", 443, "POST", "/", "user:empty"},
        {"m.example", 443, NULL, "/", "user:empty"},
        {"x.example", 443, "GET", "/api/", "user:pre"},
        {"x.example", 443, "GET", "/api/v1", "user:pre"},
        {"x.example", 443, "GET", "/api", "user:empty"},
        {"x.example", 443, "GET", "/API/", "user:empty"},
        {"x.example", 443, "GET", NULL, "user:empty"},
        {"g.example", 443, "POST", "/org/repo.git/git-receive-pack", "user:glob"},
        {"g.example", 443, "POST", "/git-receive-pack", "user:glob"},
        {"g.example", 443, "POST", "/org/repo.git/git-upload-pack", "user:glob-any"},
        {"g.example", 443, "GET", "/org/repo.git/git-receive-pack", "user:glob-any"},
        {"g.example", 443, "POST", "/a/git-receive-pack/x", "user:glob-any"},
        {"s.example", 443, "GET", "/v1/abc/items/7", "user:seg"},
        {"s.example", 443, "GET", "/v1/a/b/items/7", "user:empty"},
        {"s.example", 443, "GET", "/v1/abc/items/77", "user:empty"},
        {"none.example", 1, "TRACE", "/", "user:none"},
        {"z.example", 65535, "OPTIONS", "/", "user:empty"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        is_str(http(p, c[i].host, c[i].port, c[i].method, c[i].path), c[i].rule, "%s %s:%d%s",
               c[i].method ? c[i].method : "(none)", c[i].host, c[i].port,
               c[i].path ? c[i].path : "(none)");
    policy_unref(p);
}

static const struct http1_header ua[] = {{.name = "User-Agent", .value = "curl/8.5.0"}};

static void test_expr_rules(void)
{
    struct policy *p = load_user_rules(
        " { id = \"no-curl-uploads\", action = \"block\", methods = [\"POST\", \"PUT\"], expr = "
        "'process.name in [\"curl\", \"wget\"]' },\n"
        " { id = \"ua\", action = \"block\", expr = "
        "'http.header[\"user-agent\"].startsWith(\"curl/\") && http.host == \"ua.example\"' },\n"
        " { id = \"big\", action = \"allow\", host = \"re.example\", expr = "
        "'http.path.matches(\"^/[a-z]+$\")', reason = \"short paths\" },\n"
        " { id = \"ws\", action = \"ask\", expr = 'http.upgrade == \"websocket\"' },\n"
        " { id = \"rest\", action = \"allow\" },\n");
    struct policy_request r = req("up.example", 443, "POST", "/");
    r.process.name = "curl";
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "user:no-curl-uploads", "fields and expr both hold");
    r.process.name = "python3";
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "user:rest", "expr false: next rule");
    r.process.name = "curl";
    r.http.method = "GET";
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "user:rest", "fields false: expr not enough");
    r = req("ua.example", 443, "GET", "/");
    r.http.headers = ua;
    r.http.nheaders = 1;
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "user:ua", "header lookup is case-insensitive");
    r.http.host = "other.example";
    policy_eval_http(p, &r, &d);
    is_str(d.rule, "user:rest", "&& needs both");
    r = req("ws.example", 443, "GET", "/");
    r.http.upgrade = "websocket";
    is_int(policy_eval_http(p, &r, &d), POLICY_ASK, "websocket upgrade asks");

    /* An evaluation error denies (fail closed) with policy_error. */
    size_t big = 64 * 1024 + 2;
    char *path = malloc(big + 1);
    memset(path, 'a', big);
    path[0] = '/';
    path[big] = '\0';
    r = req("re.example", 443, "GET", path);
    is_int(policy_eval_http(p, &r, &d), POLICY_BLOCK, "subject over 64 KiB: denied");
    is_str(d.code, "policy_error", "  policy_error");
    is_str(d.rule, "user:big", "  the failing rule is named");
    ok(d.error[0] != '\0', "  error text: %s", d.error);
    /* The failing rule's own reason is not the reason for the denial. */
    struct policy_block_info b;
    char body[1024];
    policy_block_info_from(&d, "re.example", 443, &b);
    policy_render_reason(&b, body, sizeof(body));
    is_str(body, "the policy could not be evaluated for re.example:443, so it is denied",
           "  policy_error text, not the rule's reason");
    path[64 * 1024] = '\0'; /* 64 KiB exactly: evaluates */
    r.http.path = path;
    is_int(policy_eval_http(p, &r, &d), POLICY_ALLOW, "subject of 64 KiB: evaluated");
    is_str(d.rule, "user:big", "  matched");
    free(path);
    policy_unref(p);
}

static void test_corp_switches(void)
{
    const char *u =
        "schema = 1\nrule = [{ id = \"u\", action = \"allow\", host = \"u.example\" },\n"
        " { id = \"uask\", action = \"ask\", host = \"ask.example\" }]\n";
    const char *pr =
        "schema = 1\nrule = [{ id = \"p\", action = \"allow\", host = \"p.example\" },\n"
        " { id = \"pu\", action = \"allow\", host = \"u.example\" }]\n";
    struct policy *p = load("schema = 1\n[corp]\nuser_rules = false\n", u, pr);
    is_str(http(p, "u.example", 443, "GET", "/"), "profile:pu", "user_rules = false skips user");
    is_str(http(p, "p.example", 443, "GET", "/"), "profile:p", "profile still on");
    is_str(dns(p, "u.example", "A"), "profile:pu", "DNS skips user too");
    policy_unref(p);
    p = load("schema = 1\n[corp]\nprofile_rules = false\n", u, pr);
    is_str(http(p, "p.example", 443, "GET", "/"), "default:default-deny", "profile_rules = false");
    is_str(http(p, "u.example", 443, "GET", "/"), "user:u", "user still on");
    is_str(dns(p, "p.example", "A"), "default:default-deny", "DNS skips profile too");
    policy_unref(p);
    p = load("schema = 1\nrule = [{ id = \"c\", action = \"allow\", host = \"c.example\" }]\n"
             "[corp]\nuser_rules = false\nprofile_rules = false\nasks = false\n",
             u, pr);
    is_str(http(p, "c.example", 443, "GET", "/"), "corp:c", "corp rules always on");
    is_str(http(p, "u.example", 443, "GET", "/"), "default:default-deny", "both off");
    policy_unref(p);
    p = load("schema = 1\n[corp]\nasks = false\n", u, pr);
    struct policy_request r = req("ask.example", 443, "GET", "/");
    is_int(policy_eval_http(p, &r, &d), POLICY_BLOCK, "asks = false: ask becomes block");
    is_str(d.code, "ask_disabled", "  ask_disabled");
    is_str(d.rule, "user:uask", "  the ask rule is named");
    is_str(dns(p, "ask.example", "A"), "user:uask", "DNS: a decidable ask with asks off");
    is_int(d.action, POLICY_BLOCK, "  is blocked");
    policy_unref(p);
}

/* ---- always-blocked ---- */

static void test_blocked_lists(void)
{
    static const struct {
        const char *ip;
        bool blocked;
    } v4[] = {
        {"0.0.0.0", 1},         {"0.255.255.255", 1},   {"1.0.0.0", 0},
        {"9.255.255.255", 0},   {"10.0.0.0", 1},        {"10.255.255.255", 1},
        {"11.0.0.0", 0},        {"100.63.255.255", 0},  {"100.64.0.0", 1},
        {"100.127.255.255", 1}, {"100.128.0.0", 0},     {"100.100.100.200", 1},
        {"126.255.255.255", 0}, {"127.0.0.1", 1},       {"127.255.255.255", 1},
        {"128.0.0.0", 0},       {"169.253.255.255", 0}, {"169.254.169.254", 1},
        {"169.255.0.0", 0},     {"172.15.255.255", 0},  {"172.16.0.0", 1},
        {"172.31.255.255", 1},  {"172.32.0.0", 0},      {"191.255.255.255", 0},
        {"192.0.0.0", 1},       {"192.0.0.255", 1},     {"192.0.1.0", 0},
        {"192.0.2.1", 0},       {"192.167.255.255", 0}, {"192.168.0.0", 1},
        {"192.168.255.255", 1}, {"192.169.0.0", 0},     {"198.17.255.255", 0},
        {"198.18.0.0", 1},      {"198.19.255.255", 1},  {"198.20.0.0", 0},
        {"223.255.255.255", 0}, {"224.0.0.0", 1},       {"239.255.255.255", 1},
        {"240.0.0.0", 1},       {"255.255.255.255", 1}, {"8.8.8.8", 0},
    };
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        uint32_t a = 0;
        policy_ipv4_parse(v4[i].ip, strlen(v4[i].ip), &a);
        is_int(policy_ipv4_always_blocked(a), v4[i].blocked, "IPv4 %s %s", v4[i].ip,
               v4[i].blocked ? "blocked" : "open");
        is_int(policy_host_always_blocked(v4[i].ip), v4[i].blocked, "  as a host literal");
    }
    static const struct {
        const char *ip;
        bool blocked;
    } v6[] = {
        {"::", 1},
        {"::1", 1},
        {"fc00::1", 1},
        {"fdff:ffff::1", 1},
        {"fd00:ec2::254", 1},
        {"fe80::1", 1},
        {"febf::1", 1},
        {"fec0::1", 0},
        {"ff02::1", 1},
        {"2606:4700:4700::1111", 0},
        {"::ffff:10.0.0.1", 1},
        {"::ffff:169.254.169.254", 1},
        {"::ffff:8.8.8.8", 0},
        {"::127.0.0.1", 1},
        {"::8.8.8.8", 0},
        {"64:ff9b::a9fe:a9fe", 1},
        {"64:ff9b::808:808", 0},
        {"64:ff9b:1::a00:1", 1},
        {"64:ff9b:1::808:808", 0},
        {"64:ff9b:1:a00:0:100::", 1},       /* 10.0.0.1 at /48 */
        {"64:ff9b:1:a00:0:100:808:808", 1}, /* /48 says 10.0.0.1, /96 says 8.8.8.8 */
        {"64:ff9b:2::a00:1", 0},            /* outside both NAT64 prefixes */
        {"2002:a00:1::1", 0},               /* 6to4 is not in the list */
    };
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
        uint8_t a[16];
        ok(inet_pton(AF_INET6, v6[i].ip, a) == 1, "parse %s", v6[i].ip);
        is_int(policy_ipv6_always_blocked(a), v6[i].blocked, "IPv6 %s %s", v6[i].ip,
               v6[i].blocked ? "blocked" : "open");
    }
    static const struct {
        const char *host;
        bool blocked;
    } names[] = {
        {"localhost", 1},
        {"LOCALHOST", 1},
        {"localhost.", 1},
        {"a.localhost", 1},
        {"a.b.localhost", 1},
        {"notlocalhost", 0},
        {"localhost.example", 0},
        {"metadata.google.internal", 1},
        {"x.metadata.google.internal", 0},
        {"host.capsem.internal", 1},
        {"capsem.internal", 0},
        {"example.com", 0},
        {"[::1]", 1},
        {"::1", 1},
        {"[fe80::1]", 1},
        {"[::ffff:8.8.8.8]", 0},
        {"[nonsense:]", 1},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        is_int(policy_host_always_blocked(names[i].host), names[i].blocked, "name %s %s",
               names[i].host, names[i].blocked ? "blocked" : "open");
}

static void test_blocked_eval(void)
{
    const char *c = "schema = 1\nrule = [\n"
                    " { id = \"c-ip\", action = \"allow\", host = \"10.0.0.5\" },\n"
                    " { id = \"c-cidr\", action = \"allow\", host = [\"svc.corp.example\", "
                    "\"172.16.0.0/12\"] },\n"
                    " { id = \"c-mixed\", action = \"allow\", host = [\"*.corp2.example\", "
                    "\"100.64.0.0/10\"] },\n"
                    "]\n";
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"host-ollama\", action = \"allow\", host = \"host.capsem.internal\", ports = "
        "[11434] },\n"
        " { id = \"wild\", action = \"allow\", host = \"*.capsem.internal\" },\n"
        " { id = \"wiki\", action = \"allow\", host = \"wiki.corp.example\" },\n"
        " { id = \"ask-meta\", action = \"ask\", host = \"metadata.google.internal\" },\n"
        " { id = \"star\", action = \"allow\", host = \"*\", methods = [\"GET\"] },\n"
        "]\n";
    const char *pr = "schema = 1\nrule = [\n"
                     " { id = \"p-local\", action = \"allow\", host = \"localhost\" },\n"
                     " { id = \"p-ip\", action = \"allow\", host = \"127.0.0.1\" },\n"
                     " { id = \"p-name\", action = \"allow\", host = \"internal.example\" },\n"
                     "]\n";
    struct policy *p = load(c, u, pr);
    static const struct {
        const char *host;
        int port;
        const char *method, *rule;
        enum policy_action action;
        bool names;
    } t[] = {
        {"host.capsem.internal", 11434, "POST", "user:host-ollama", POLICY_ALLOW, true},
        {"host.capsem.internal", 22, "POST", "user:wild", POLICY_BLOCK, false},
        {"10.0.0.5", 443, "POST", "corp:c-ip", POLICY_ALLOW, true},
        {"10.0.0.6", 443, "GET", "user:star", POLICY_BLOCK, false},
        {"172.20.1.1", 443, "POST", "corp:c-cidr", POLICY_ALLOW, true},
        {"metadata.google.internal", 80, "GET", "user:ask-meta", POLICY_BLOCK, false},
        {"169.254.169.254", 80, "GET", "user:star", POLICY_BLOCK, false},
        {"localhost", 80, "POST", "profile:p-local", POLICY_BLOCK, false},
        {"127.0.0.1", 80, "POST", "profile:p-ip", POLICY_BLOCK, false},
        {"a.localhost", 80, "GET", "user:star", POLICY_BLOCK, false},
        {"example.com", 443, "GET", "user:star", POLICY_ALLOW, false},
        {"8.8.8.8", 443, "GET", "user:star", POLICY_ALLOW, false},
        {"192.168.1.1", 443, "POST", "default:default-deny", POLICY_BLOCK, false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        is_str(http(p, t[i].host, t[i].port, t[i].method, "/"), t[i].rule, "%s %s:%d", t[i].method,
               t[i].host, t[i].port);
        is_int(d.action, t[i].action, "  action %s", policy_action_name(t[i].action));
        is_int(d.names_destination, t[i].names, "  names_destination %d", t[i].names);
        if (t[i].action == POLICY_BLOCK && strcmp(t[i].rule, "default:default-deny") != 0)
            is_str(d.code, "private_address", "  code private_address");
    }

    /* Resolved addresses: names open them, wildcards and profiles do not. */
    uint32_t priv = 0x0A000001, pub = 0x5DB8D822,
             cgn = 0xAC140101; /* 10.0.0.1, 93.184.216.34, 172.20.1.1 */
    uint8_t v6priv[16], v6pub[16];
    inet_pton(AF_INET6, "fd12::1", v6priv);
    inet_pton(AF_INET6, "2606:4700::1", v6pub);
    http(p, "wiki.corp.example", 443, "GET", "/");
    ok(d.action == POLICY_ALLOW && d.names_destination, "user exact name names it");
    ok(policy_permits_ipv4(&d, priv), "  its private address may be dialled");
    ok(policy_permits_ipv6(&d, v6priv), "  IPv6 too");
    http(p, "svc.corp.example", 443, "GET", "/");
    is_str(d.rule, "corp:c-cidr", "corp rule with a name and a CIDR");
    ok(policy_permits_ipv4(&d, cgn), "  the CIDR opens an address inside it");
    ok(policy_permits_ipv4(&d, 0xAC100000), "  (its first address)");
    ok(policy_permits_ipv4(&d, priv), "  the exact name names it: any address");
    http(p, "x.corp2.example", 443, "GET", "/");
    is_str(d.rule, "corp:c-mixed", "corp rule with a wildcard and a CIDR");
    ok(!d.names_destination, "  the wildcard does not name the host");
    ok(policy_permits_ipv4(&d, 0x64400101), "  the CIDR opens an address inside it (100.64.1.1)");
    ok(!policy_permits_ipv4(&d, priv), "  not one outside it (10.0.0.1)");
    ok(!policy_permits_ipv6(&d, v6priv), "  nor a private IPv6 address");
    http(p, "internal.example", 443, "POST", "/");
    is_str(d.rule, "profile:p-name", "profile exact name");
    ok(!d.names_destination, "  profile rules never name");
    ok(!policy_permits_ipv4(&d, priv), "  private address refused");
    ok(policy_permits_ipv4(&d, pub), "  public address fine");
    ok(!policy_permits_ipv6(&d, v6priv), "  private IPv6 refused");
    ok(policy_permits_ipv6(&d, v6pub), "  public IPv6 fine");
    http(p, "anything.example", 443, "GET", "/");
    is_str(d.rule, "user:star", "user wildcard");
    ok(!policy_permits_ipv4(&d, priv), "  wildcards never name");
    ok(policy_permits_ipv4(&d, pub), "  public fine");
    http(p, "other.example", 443, "POST", "/");
    ok(!policy_permits_ipv4(&d, priv), "default decision: private refused");
    policy_unref(p);

    /* A profile rule cannot open them even when it is the only rule. */
    p = load(
        NULL, NULL,
        "schema = 1\nrule = [{ id = \"meta\", action = \"allow\", host = \"169.254.169.254\" }]\n");
    http(p, "169.254.169.254", 80, "GET", "/latest/meta-data/");
    ok(d.action == POLICY_BLOCK && strcmp(d.code, "private_address") == 0,
       "profile allow of the metadata address: private_address");
    policy_unref(p);
    /* Corp default allow never opens them. */
    p = load("schema = 1\n[policy]\ndefault_action = \"allow\"\n", NULL, NULL);
    http(p, "localhost", 80, "GET", "/");
    ok(d.action == POLICY_BLOCK && strcmp(d.code, "private_address") == 0,
       "corp default allow: localhost still blocked");
    is_str(d.rule, "default:default-allow", "  the default is named");
    policy_unref(p);
}

/* ---- DNS (8.3) ---- */

static void test_dns(void)
{
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"no-odd-names\", action = \"block\", expr = 'dns.suspicious || dns.qtype == "
        "\"TXT\"', reason = \"odd names are not resolved\" },\n"
        " { id = \"push\", action = \"block\", host = \"github.com\", methods = [\"POST\"] },\n"
        " { id = \"hdr\", action = \"block\", host = \"h.example\", expr = 'http.path == \"/x\"' "
        "},\n"
        " { id = \"conn\", action = \"block\", host = \"h.example\", expr = 'conn.dst_port == 1' "
        "},\n"
        " { id = \"gh\", action = \"allow\", host = \"github.com\", ports = [443] },\n"
        " { id = \"wiki\", action = \"ask\", host = \"*.wiki.example\" },\n"
        " { id = \"wiki-ports\", action = \"ask\", host = \"w.example\", ports = [443] },\n"
        " { id = \"evil\", action = \"block\", host = \"*.evil.example\", reason = \"no\" },\n"
        " { id = \"curl\", action = \"block\", host = \"c.example\", expr = 'process.name == "
        "\"curl\"' },\n"
        " { id = \"off\", action = \"allow\", host = \"off.example\", enabled = false },\n"
        " { id = \"m\", scope = \"model\", action = \"allow\" },\n"
        " { id = \"ollama\", action = \"allow\", host = \"host.capsem.internal\", ports = [11434] "
        "},\n"
        " { id = \"lh\", action = \"allow\", host = \"*.localhost\" },\n"
        " { id = \"pass\", action = \"allow\", host = [\"h.example\", \"c.example\", "
        "\"x.evil.example\"] },\n"
        "]\n";
    struct policy *p = load(NULL, u, NULL);
    static const struct {
        const char *qname, *qtype, *rule;
        enum policy_action action;
        const char *code;
    } c[] = {
        {"github.com", "A", "user:gh", POLICY_ALLOW, NULL}, /* non-decidable block skipped */
        {"github.com", "TXT", "user:no-odd-names", POLICY_BLOCK, "policy_block"},
        {"a.wiki.example", "A", "user:wiki", POLICY_ALLOW, NULL},  /* decidable ask resolves */
        {"w.example", "A", "user:wiki-ports", POLICY_ALLOW, NULL}, /* non-decidable ask resolves */
        {"x.evil.example", "A", "user:evil", POLICY_BLOCK, "policy_block"},
        {"h.example", "A", "user:pass", POLICY_ALLOW, NULL}, /* http.* and conn.* blocks skipped */
        {"c.example", "A", "user:pass", POLICY_ALLOW, NULL}, /* process absent: atom false */
        {"off.example", "A", "default:default-deny", POLICY_BLOCK, "default_deny"},
        {"other.example", "A", "default:default-deny", POLICY_BLOCK, "default_deny"},
        {"host.capsem.internal", "A", "user:ollama", POLICY_ALLOW, NULL}, /* named by user */
        {"a.localhost", "A", "user:lh", POLICY_BLOCK, "private_address"}, /* wildcard: no */
        {"localhost", "A", "default:default-deny", POLICY_BLOCK, "default_deny"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        is_str(dns(p, c[i].qname, c[i].qtype), c[i].rule, "DNS %s %s", c[i].qtype, c[i].qname);
        is_int(d.action, c[i].action, "  %s",
               c[i].action == POLICY_ALLOW ? "resolves" : "NXDOMAIN");
        is_str(d.code, c[i].code, "  code");
    }
    dns(p, "host.capsem.internal", "A");
    ok(d.names_destination, "named reserved name: A records kept");
    ok(policy_permits_ipv4(&d, 0x7F000001), "  loopback answer permitted");
    dns(p, "github.com", "A");
    ok(d.names_destination && policy_permits_ipv4(&d, 0x0A000001),
       "github.com (user exact, non-decidable) names the name: private answers kept");
    dns(p, "a.wiki.example", "A");
    ok(!d.names_destination && !policy_permits_ipv4(&d, 0x0A000001),
       "a decidable ask never names: private answers dropped");

    struct policy_request r = {0};
    r.dns.qname = "c.example";
    r.dns.qtype = "A";
    r.process.name = "curl";
    policy_eval_dns(p, &r, &d);
    is_str(d.rule, "user:curl", "process.* keeps a rule decidable");
    is_int(d.action, POLICY_BLOCK, "  blocked for curl");
    r.dns.qname = "z.example";
    r.dns.suspicious = true;
    r.dns.has_suspicious = true;
    policy_eval_dns(p, &r, &d);
    is_str(d.rule, "user:no-odd-names", "suspicious name blocked");
    is_str(d.reason, "odd names are not resolved", "  with the rule's reason");
    /* HTTP never sees dns.* fields: the DNS-only rule does not match. */
    is_str(http(p, "github.com", 443, "GET", "/"), "user:gh", "HTTP skips the dns.* rule");
    is_str(http(p, "github.com", 443, "POST", "/"), "user:push", "HTTP applies the methods rule");
    policy_unref(p);
}

/* ---- model and mcp ---- */

static void test_scopes(void)
{
    static const char *const tools[] = {"bash", "local__fetch_http"};
    const char *u =
        "schema = 1\nrule = [\n"
        " { id = \"ask-big-opus\", scope = \"model\", action = \"ask\", expr = 'model.provider == "
        "\"anthropic\" && model.name.startsWith(\"claude-opus\") && model.max_tokens > 32000' },\n"
        " { id = \"no-bash\", scope = \"model\", action = \"block\", host = \"api.openai.com\", "
        "expr = '\"bash\" in model.tools' },\n"
        " { id = \"fetch-no-internal\", scope = \"mcp\", action = \"block\", expr = 'mcp.tool == "
        "\"local__fetch_http\" && mcp.args.matches(\"https?://[^/\\\"]*\\\\.corp\\\\.example\")', "
        "reason = \"internal sites are not fetched through MCP\" },\n"
        " { id = \"mcp-ask\", scope = \"mcp\", action = \"ask\", expr = 'mcp.server == \"github\"' "
        "},\n"
        " { id = \"net-all\", action = \"block\" },\n"
        "]\n";
    struct policy *p = load(NULL, u, NULL);
    struct policy_request r = {0};
    r.http.host = "api.anthropic.com";
    r.model.provider = "anthropic";
    r.model.name = "claude-opus-4-1";
    r.model.max_tokens = 64000;
    r.model.has_max_tokens = true;
    is_int(policy_eval_model(p, &r, &d), POLICY_ASK, "model rule asks");
    is_str(d.rule, "user:ask-big-opus", "  named");
    r.model.max_tokens = 32000;
    is_int(policy_eval_model(p, &r, &d), POLICY_ALLOW, "model rule not matching: default allow");
    is_str(d.rule, "default:model-default-allow", "  default rule; net rules ignored");
    r.http.host = "api.openai.com";
    r.model.tools = tools;
    r.model.ntools = 2;
    r.model.has_tools = true;
    is_int(policy_eval_model(p, &r, &d), POLICY_BLOCK, "model rule with host and expr");
    is_str(d.code, "policy_block", "  policy_block");
    r.http.host = "api.anthropic.com";
    is_int(policy_eval_model(p, &r, &d), POLICY_ALLOW, "  host differs: default");

    struct policy_request m = {0};
    m.mcp.server = "local";
    m.mcp.tool = "local__fetch_http";
    m.mcp.args = "{\"url\":\"https://wiki.corp.example/x\"}";
    is_int(policy_eval_mcp(p, &m, &d), POLICY_BLOCK, "mcp rule blocks");
    is_str(d.rule, "user:fetch-no-internal", "  named");
    is_str(d.reason, "internal sites are not fetched through MCP", "  reason");
    m.mcp.args = "{\"url\":\"https://example.com/x\"}";
    is_int(policy_eval_mcp(p, &m, &d), POLICY_ALLOW, "other args: default allow");
    is_str(d.rule, "default:mcp-default-allow", "  mcp default");
    m.mcp.args = NULL; /* over 64 KiB: absent, the atom is false */
    is_int(policy_eval_mcp(p, &m, &d), POLICY_ALLOW, "absent args: atom false");
    m.mcp.server = "github";
    is_int(policy_eval_mcp(p, &m, &d), POLICY_ASK, "mcp ask");
    /* Net evaluation ignores model and mcp rules. */
    is_str(http(p, "api.anthropic.com", 443, "POST", "/v1/messages"), "user:net-all",
           "net sees only net rules");
    policy_unref(p);

    p = load(
        "schema = 1\n[policy]\ndefault_model_action = \"block\"\ndefault_mcp_action = \"ask\"\n"
        "[corp]\nasks = false\n",
        "schema = 1\nrule = [{ id = \"ma\", scope = \"model\", action = \"ask\" }]\n", NULL);
    is_int(policy_eval_model(p, &r, &d), POLICY_BLOCK, "model ask with asks off");
    is_str(d.code, "ask_disabled", "  ask_disabled");
    policy_unref(p);
    p = load(
        "schema = 1\n[policy]\ndefault_model_action = \"block\"\ndefault_mcp_action = \"ask\"\n",
        NULL, NULL);
    is_int(policy_eval_model(p, &r, &d), POLICY_BLOCK, "corp default_model_action block");
    is_str(d.rule, "default:model-default-deny", "  rule");
    is_str(d.code, "default_deny", "  default_deny");
    is_int(policy_eval_mcp(p, &m, &d), POLICY_ASK, "corp default_mcp_action ask");
    is_str(d.rule, "default:mcp-default-ask", "  rule");
    policy_unref(p);
}

/* ---- section 7 texts ---- */

static void test_texts(void)
{
    struct policy *p = load_user_rules(
        " { id = \"no-git-push\", action = \"block\", host = \"github.com\", reason = \"pushing "
        "from the sandbox is disabled; tell the user the branch is ready\" },\n"
        " { id = \"plain\", action = \"block\", host = \"plain.example\" },\n"
        " { id = \"star\", action = \"allow\", host = \"*\" },\n");
    char out[1024];
    struct policy_block_info b;

    http(p, "example.com", 443, "GET", "/");
    is_str(http(p, "example.com", 443, "GET", "/"), "user:star", "allowed by star");
    http(p, "10.1.1.1", 443, "GET", "/");
    policy_block_info_from(&d, "10.1.1.1", 443, &b);
    policy_render_body(&b, out, sizeof(out));
    is_str(out,
           "capsem: request blocked\nhost: 10.1.1.1:443\nrule: user:star\n"
           "reason: 10.1.1.1:443 is a private, loopback or reserved destination\n"
           "hint: only a user or corp rule naming 10.1.1.1:443 exactly can open it\n",
           "private_address body");
    is_str(policy_header_reason(&b), "private_address", "X-Capsem-Reason private_address");
    policy_unref(p);

    p = load_user_rules(
        " { id = \"no-git-push\", action = \"block\", host = \"github.com\", reason = \"pushing "
        "from the sandbox is disabled; tell the user the branch is ready\" },\n"
        " { id = \"plain\", action = \"block\", host = \"plain.example\" },\n");
    http(p, "example.com", 443, "GET", "/");
    policy_block_info_from(&d, "example.com", 443, &b);
    int n = policy_render_body(&b, out, sizeof(out));
    const char *want = "capsem: request blocked\n"
                       "host: example.com:443\n"
                       "rule: default:default-deny\n"
                       "reason: no allow rule matches example.com:443\n"
                       "hint: ask the user to allow example.com:443 in the capsem policy\n";
    is_str(out, want, "default deny body is the section 7 text");
    is_int(n, strlen(want), "length returned");
    is_str(policy_header_reason(&b), "default_deny", "X-Capsem-Reason");
    is_str(policy_header_rule(&b), "default:default-deny", "X-Capsem-Rule");
    is_int(policy_render_body(&b, out, strlen(want)), -1, "one byte short: -1");
    is_int(policy_render_body(&b, out, strlen(want) + 1), (int)strlen(want), "exact fit");
    policy_render_dns_ede(&b, out, sizeof(out));
    is_str(out, "capsem: default:default-deny: no allow rule matches example.com:443",
           "EDE default");

    http(p, "github.com", 443, "POST", "/o/r.git/git-receive-pack");
    policy_block_info_from(&d, "github.com", 443, &b);
    policy_render_body(&b, out, sizeof(out));
    is_str(out,
           "capsem: request blocked\nhost: github.com:443\nrule: user:no-git-push\n"
           "reason: pushing from the sandbox is disabled; tell the user the branch is ready\n"
           "hint: this is a deliberate policy rule: do not retry or work around it; tell the user "
           "if the task needs it\n",
           "rule block body quotes the reason");
    is_str(policy_header_reason(&b), "policy_block", "X-Capsem-Reason policy_block");
    is_str(policy_header_rule(&b), "user:no-git-push", "X-Capsem-Rule user:no-git-push");
    b.port = 0;
    policy_render_dns_ede(&b, out, sizeof(out));
    is_str(out,
           "capsem: user:no-git-push: pushing from the sandbox is disabled; tell the user the "
           "branch is ready",
           "EDE text quotes the reason");
    dns(p, "plain.example", "A");
    policy_block_info_from(&d, "plain.example", 0, &b);
    policy_render_dns_ede(&b, out, sizeof(out));
    is_str(out, "capsem: user:plain: the rule user:plain blocks plain.example",
           "EDE without reason");
    policy_render_reason(&b, out, sizeof(out));
    is_str(out, "the rule user:plain blocks plain.example", "reason sentence alone");
    policy_unref(p);

    /* Codes set by later stages and tools. */
    struct policy_block_info x = {
        .code = "ask_timeout", .rule = "user:wiki", .host = "w.example", .port = 8443};
    policy_render_reason(&x, out, sizeof(out));
    is_str(out, "nobody approved access to w.example:8443 in time", "ask_timeout text");
    x.code = "ask_denied";
    policy_render_reason(&x, out, sizeof(out));
    is_str(out, "the user denied access to w.example:8443", "ask_denied text");
    x.code = "ask_queue_full";
    policy_render_body(&x, out, sizeof(out));
    ok(strstr(out, "hint: wait for pending approvals, then retry\n") != NULL, "queue full hint");
    x.code = "placeholder_misuse";
    x.rule = NULL;
    policy_render_body(&x, out, sizeof(out));
    ok(strstr(out, "rule: -\n") && strstr(out, "hint: send credentials only to the provider"),
       "no rule: '-'");
    is_str(policy_header_rule(&x), "-", "X-Capsem-Rule -");
    struct policy_block_info t = {.code = "policy_block",
                                  .rule = "user:fetch-no-internal",
                                  .reason = "internal sites are not fetched through MCP",
                                  .tool = "local__fetch_http"};
    policy_render_body(&t, out, sizeof(out));
    is_str(out,
           "capsem: request blocked\ntool: local__fetch_http\nrule: user:fetch-no-internal\n"
           "reason: internal sites are not fetched through MCP\nhint: this is a deliberate policy "
           "rule: do not retry or work around it; tell the user if the task needs it\n",
           "MCP error body names the tool");
    struct policy_block_info ctl = {.code = "default_deny", .host = "a\nb\x7f", .port = 80};
    policy_render_body(&ctl, out, sizeof(out));
    ok(strstr(out, "host: a?b?:80\n") != NULL, "control characters in the host become '?'");
    struct policy_block_info none = {0};
    policy_render_reason(&none, out, sizeof(out));
    is_str(out, "the rule - blocks -", "empty info renders");
    is_str(policy_header_reason(&none), "policy_block", "empty info: policy_block");
}

/* ---- normalisation ---- */

static void test_normalize(void)
{
    static const struct {
        const char *in, *out;
    } paths[] = {
        {"/a/b", "/a/b"},
        {"a/b", "/a/b"},
        {"", "/"},
        {"/", "/"},
        {"//", "/"},
        {"/a//b", "/a/b"},
        {"/a/", "/a/"},
        {"/%61%62", "/ab"},
        {"/%41%7e%2D%5f", "/A~-_"},
        {"/%2e%2e/x", "/x"},
        {"/a/%2E%2E/b", "/b"},
        {"/.%2e/x", "/x"},
        {"/a/%2F/b", "/a/%2F/b"},
        {"/a/./b/../c", "/a/c"},
        {"/../../x", "/x"},
        {"/a/b/..", "/a/"},
        {"/a/b/.", "/a/b/"},
        {"/a/...", "/a/..."},
        {"/%20", "/%20"},
        {"/%zz", "/%zz"},
        {"/a%4", "/a%4"},
        {"/a%", "/a%"},
        {"/a/..b/c", "/a/..b/c"},
        {"/a/b/../../..", "/"},
        {"/x/.%2E/%2e%2E/y", "/y"},
        {"/a/b%2f..", "/a/b%2f.."},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char out[64];
        ssize_t n = policy_path_normalize(paths[i].in, strlen(paths[i].in), out, sizeof(out));
        is_str(n >= 0 ? out : NULL, paths[i].out, "path '%s'", paths[i].in);
        is_int(n, strlen(paths[i].out), "  length");
    }
    char small[8];
    is_int(policy_path_normalize("/abcdef", 7, small, 8), -1, "cap len + 1: refused");
    char nine[9];
    is_int(policy_path_normalize("abcdefg", 7, nine, 9), 8, "cap len + 2 suffices");
    is_str(nine, "/abcdefg", "  with the added '/'");

    static const struct {
        const char *in, *out; /* out NULL: refused */
    } hosts[] = {
        {"Example.COM.", "example.com"},
        {"xn--bcher-kva.example", "xn--bcher-kva.example"},
        {"a_b.example", "a_b.example"},
        {"10.0.0.1", "10.0.0.1"},
        {"123.example", "123.example"},
        {"", NULL},
        {".", NULL},
        {"a..b", NULL},
        {".a", NULL},
        {"a b", NULL},
        {"bücher.example", NULL},
        {"[::1]", NULL},
        {"::1", NULL},
        {"010.0.0.1", NULL},
        {"1.2.3", NULL},
        {"2130706433", NULL},
        {"example.123", NULL},
        {"a.b:443", NULL},
    };
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        char out[254];
        struct err *e = NULL;
        int n = policy_host_normalize(hosts[i].in, strlen(hosts[i].in), out, sizeof(out), &e);
        is_str(n >= 0 ? out : NULL, hosts[i].out, "host '%s'", hosts[i].in);
        if (!hosts[i].out)
            ok(e && e->status == 400, "  400 error: %s", e ? err_msg(e) : "(none)");
        err_free(e);
    }
    char name[300], out[254];
    memset(name, 'a', 63);
    memcpy(name + 63, ".example", 9);
    ok(policy_host_normalize(name, strlen(name), out, sizeof(out), NULL) == 71, "label of 63");
    memset(name, 'a', 64);
    memcpy(name + 64, ".example", 9);
    ok(policy_host_normalize(name, strlen(name), out, sizeof(out), NULL) == -1, "label of 64");
    for (int i = 0; i < 253; i++)
        name[i] = (i % 2) ? '.' : 'a';
    name[253] = '\0';
    is_int(policy_host_normalize(name, 253, out, sizeof(out), NULL), 253, "name of 253");
    name[253] = '.';
    name[254] = '\0';
    is_int(policy_host_normalize(name, 254, out, sizeof(out), NULL), 253, "253 + trailing dot");
    name[253] = 'a';
    name[254] = 'a';
    name[255] = '\0';
    ok(policy_host_normalize(name, 255, out, sizeof(out), NULL) == -1, "name of 255");
    ok(policy_host_normalize("abc.example", 11, out, 11, NULL) == -1, "cap too small");

    static const struct {
        const char *in;
        uint32_t v;
        bool ok;
    } v4[] = {
        {"0.0.0.0", 0, 1},
        {"255.255.255.255", 0xFFFFFFFF, 1},
        {"192.0.2.7", 0xC0000207, 1},
        {"256.0.0.0", 0, 0},
        {"1.2.3", 0, 0},
        {"1.2.3.4.", 0, 0},
        {"01.2.3.4", 0, 0},
        {"1.2.3.4 ", 0, 0},
        {"1..2.3", 0, 0},
        {"1234.1.1.1", 0, 0},
        {"", 0, 0},
        {"-1.2.3.4", 0, 0},
        {"0x7f.0.0.1", 0, 0},
    };
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        uint32_t got = 0x12345678;
        int rc = policy_ipv4_parse(v4[i].in, strlen(v4[i].in), &got);
        is_int(rc, v4[i].ok ? 0 : -1, "ipv4 '%s'", v4[i].in);
        if (v4[i].ok)
            is_int(got, v4[i].v, "  value");
    }
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/capsem-test-policy-eval-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(home, sizeof(home), "%s/home", root);
    snprintf(corp, sizeof(corp), "%s/corp.toml", root);
    snprintf(bundled, sizeof(bundled), "%s/bundled", root);
    mkdir(home, 0700);
    mkdir(bundled, 0700);

    test_first_match();
    test_hosts();
    test_fields();
    test_expr_rules();
    test_corp_switches();
    test_blocked_lists();
    test_blocked_eval();
    test_dns();
    test_scopes();
    test_texts();
    test_normalize();

    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
