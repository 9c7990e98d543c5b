/* Evaluation (network.md 8.3): first matching rule across corp, user and
 * profile (minus the sources corp switched off), else the default; DNS
 * decidability; the always-blocked check and its naming exception. Every
 * evaluation error denies ("policy_error"). */
#include <stdio.h>
#include <string.h>

#include "policy/policy_int.h"

enum { D_NET, D_MODEL, D_MCP };

/* Default decisions: [scope][action - 1] -> id. */
static const char *const default_ids[3][3] = {
    {"default-allow", "default-deny", "default-ask"},
    {"model-default-allow", "model-default-deny", "model-default-ask"},
    {"mcp-default-allow", "mcp-default-deny", "mcp-default-ask"},
};
static const char *const default_rules[3][3] = {
    {"default:default-allow", "default:default-deny", "default:default-ask"},
    {"default:model-default-allow", "default:model-default-deny", "default:model-default-ask"},
    {"default:mcp-default-allow", "default:mcp-default-deny", "default:mcp-default-ask"},
};

static bool source_on(const struct policy *p, int s)
{
    if (s == POLICY_SRC_USER)
        return p->st.user_rules;
    if (s == POLICY_SRC_PROFILE)
        return p->st.profile_rules;
    return true;
}

static void decision_reset(struct policy_decision *d)
{
    memset(d, 0, sizeof(*d));
}

/* `ask` with corp asks = false becomes a block. */
static void apply_action(const struct policy *p, enum policy_action a, struct policy_decision *d)
{
    d->action = a;
    d->code = NULL;
    if (a == POLICY_ASK && !p->st.asks) {
        d->action = POLICY_BLOCK;
        d->code = "ask_disabled";
    } else if (a == POLICY_BLOCK) {
        d->code = "policy_block";
    }
}

static void decide_rule(const struct policy *p, const struct policy_rule *r,
                        struct policy_decision *d)
{
    decision_reset(d);
    d->source = r->source;
    d->id = r->id;
    d->rule = r->rule;
    d->reason = r->reason;
    d->deciding = r;
    apply_action(p, r->action, d);
}

static void decide_default(const struct policy *p, int which, enum policy_action a,
                           struct policy_decision *d)
{
    decision_reset(d);
    d->source = POLICY_SRC_DEFAULT;
    d->id = default_ids[which][a - 1];
    d->rule = default_rules[which][a - 1];
    apply_action(p, a, d);
    if (d->code && strcmp(d->code, "policy_block") == 0)
        d->code = "default_deny";
}

static void decide_error(const struct policy_rule *r, struct err *e, struct policy_decision *d)
{
    decision_reset(d);
    d->action = POLICY_BLOCK;
    d->code = "policy_error";
    d->source = r->source;
    d->id = r->id;
    d->rule = r->rule;
    d->reason = r->reason;
    d->deciding = r;
    snprintf(d->error, sizeof(d->error), "%s", e ? err_msg(e) : "evaluation failed");
}

/* 1: rule matches, 0: no, -1: error (d filled). */
static int rule_matches(const struct policy_rule *rule, const struct policy_request *r,
                        struct policy_decision *d)
{
    if (!rule_fields_match(rule, r))
        return 0;
    if (!rule->expr)
        return 1;
    struct err *e = NULL;
    int x = expr_eval(rule->expr, r, &e);
    if (x < 0)
        decide_error(rule, e, d);
    err_free(e);
    return x;
}

/* First matching rule of `scope`: 1 decided (d filled), 0 none. */
static int first_match(const struct policy *p, enum policy_scope scope,
                       const struct policy_request *r, struct policy_decision *d)
{
    for (int s = 0; s < 3; s++) {
        if (!source_on(p, s))
            continue;
        const struct rule_set *set = &p->src[s];
        for (size_t i = 0; i < set->n; i++) {
            const struct policy_rule *rule = &set->rules[i];
            if (!rule->enabled || rule->scope != scope)
                continue;
            int x = rule_matches(rule, r, d);
            if (x < 0)
                return 1;
            if (x > 0) {
                decide_rule(p, rule, d);
                return 1;
            }
        }
    }
    return 0;
}

/* The deciding rule is a corp/user allow with a pattern naming host. */
static bool names_host(const struct policy_decision *d, const char *host)
{
    const struct policy_rule *r = d->deciding;
    if (!host || !r || d->action != POLICY_ALLOW || r->action != POLICY_ALLOW ||
        (r->source != POLICY_SRC_CORP && r->source != POLICY_SRC_USER))
        return false;
    uint32_t ip = 0;
    bool is_ip = policy_ipv4_parse(host, strlen(host), &ip) == 0;
    for (size_t i = 0; i < r->nhosts; i++)
        if (hostpat_names(&r->hosts[i], host, is_ip, ip))
            return true;
    return false;
}

/* Always-blocked names and literals unless the decision names them. */
static void check_destination(const char *host, struct policy_decision *d)
{
    d->names_destination = names_host(d, host);
    if (d->action != POLICY_BLOCK && host && policy_host_always_blocked(host) &&
        !d->names_destination) {
        d->action = POLICY_BLOCK;
        d->code = "private_address";
    }
}

enum policy_action policy_eval_http(const struct policy *p, const struct policy_request *r,
                                    struct policy_decision *d)
{
    if (!first_match(p, POLICY_SCOPE_NET, r, d))
        decide_default(p, D_NET, p->st.default_action, d);
    if (strcmp(d->code ? d->code : "", "policy_error") != 0)
        check_destination(r->http.host, d);
    return d->action;
}

/* One net rule for a DNS query: 1 decided, 0 skip, -1 error (d filled). */
static int dns_rule(const struct policy *p, const struct policy_rule *rule,
                    const struct policy_request *r, struct policy_decision *d)
{
    if (!rule->enabled || rule->scope != POLICY_SCOPE_NET || !rule_host_match(rule, r->dns.qname))
        return 0;
    enum policy_action a = rule->action;
    if (a == POLICY_ASK && !p->st.asks)
        a = POLICY_BLOCK;
    if (!rule->name_decidable) {
        if (a == POLICY_BLOCK)
            return 0;
    } else if (rule->expr) {
        struct err *e = NULL;
        int x = expr_eval(rule->expr, r, &e);
        if (x < 0)
            decide_error(rule, e, d);
        err_free(e);
        if (x <= 0)
            return x;
    }
    decide_rule(p, rule, d);
    if (d->action == POLICY_ASK)
        d->action = POLICY_ALLOW; /* DNS never asks: the name resolves */
    return 1;
}

enum policy_action policy_eval_dns(const struct policy *p, const struct policy_request *r,
                                   struct policy_decision *d)
{
    int x = 0;
    for (int s = 0; s < 3 && x == 0; s++) {
        if (!source_on(p, s))
            continue;
        for (size_t i = 0; i < p->src[s].n && x == 0; i++)
            x = dns_rule(p, &p->src[s].rules[i], r, d);
    }
    if (x < 0)
        return d->action;
    if (x == 0) {
        decide_default(p, D_NET, p->st.default_action, d);
        if (d->action == POLICY_ASK)
            d->action = POLICY_ALLOW;
    }
    check_destination(r->dns.qname, d);
    return d->action;
}

enum policy_action policy_eval_model(const struct policy *p, const struct policy_request *r,
                                     struct policy_decision *d)
{
    if (!first_match(p, POLICY_SCOPE_MODEL, r, d))
        decide_default(p, D_MODEL, p->st.default_model_action, d);
    return d->action;
}

enum policy_action policy_eval_mcp(const struct policy *p, const struct policy_request *r,
                                   struct policy_decision *d)
{
    if (!first_match(p, POLICY_SCOPE_MCP, r, d))
        decide_default(p, D_MCP, p->st.default_mcp_action, d);
    return d->action;
}

/* ---- resolved addresses ---- */

bool policy_permits_ipv4(const struct policy_decision *d, uint32_t addr)
{
    if (!policy_ipv4_always_blocked(addr) || d->names_destination)
        return true;
    const struct policy_rule *r = d->deciding;
    if (!r || d->action != POLICY_ALLOW || r->action != POLICY_ALLOW ||
        (r->source != POLICY_SRC_CORP && r->source != POLICY_SRC_USER))
        return false;
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct host_pat *hp = &r->hosts[i];
        if ((hp->kind == HP_IPV4 || hp->kind == HP_CIDR) && (addr & hp->mask) == hp->addr)
            return true;
    }
    return false;
}

bool policy_permits_ipv6(const struct policy_decision *d, const uint8_t addr[16])
{
    return !policy_ipv6_always_blocked(addr) || d->names_destination;
}
