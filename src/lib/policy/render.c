/* Texts of network.md section 7: the 403 body agents read (also the MCP
 * -32001 message), the X-Capsem-* header values and the DNS EDE text. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

void policy_block_info_from(const struct policy_decision *d, const char *host, int port,
                            struct policy_block_info *b)
{
    memset(b, 0, sizeof(*b));
    b->code = d->code ? d->code : "policy_block";
    b->rule = d->rule;
    b->reason = d->reason;
    b->host = host;
    b->port = port;
}

const char *policy_header_reason(const struct policy_block_info *b)
{
    return b->code ? b->code : "policy_block";
}

const char *policy_header_rule(const struct policy_block_info *b)
{
    return b->rule ? b->rule : "-";
}

/* Appends to out[*n..cap); sets *n past cap on overflow. */
static void __attribute__((format(printf, 4, 5)))
put(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = *n < cap ? vsnprintf(out + *n, cap - *n, fmt, ap) : 0;
    va_end(ap);
    *n = *n >= cap || k < 0 ? cap : *n + (size_t)k;
}

/* "host:port", "host", or the tool name; control characters become '?'. */
static void target(const struct policy_block_info *b, char *buf, size_t cap)
{
    if (b->tool)
        snprintf(buf, cap, "%s", b->tool);
    else if (b->host && b->port > 0)
        snprintf(buf, cap, "%s:%d", b->host, b->port);
    else
        snprintf(buf, cap, "%s", b->host ? b->host : "-");
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

static bool is(const struct policy_block_info *b, const char *code)
{
    return strcmp(policy_header_reason(b), code) == 0;
}

static void reason_text(const struct policy_block_info *b, const char *t, char *out, size_t cap,
                        size_t *n)
{
    /* A rule's reason explains that rule's verdict; it is not why the
     * destination is reserved or why evaluation failed. */
    if (b->reason && *b->reason && !is(b, "private_address") && !is(b, "policy_error"))
        put(out, cap, n, "%s", b->reason);
    else if (is(b, "default_deny"))
        put(out, cap, n, "no allow rule matches %s", t);
    else if (is(b, "policy_block"))
        put(out, cap, n, "the rule %s blocks %s", policy_header_rule(b), t);
    else if (is(b, "policy_error"))
        put(out, cap, n, "the policy could not be evaluated for %s, so it is denied", t);
    else if (is(b, "ask_denied"))
        put(out, cap, n, "the user denied access to %s", t);
    else if (is(b, "ask_timeout"))
        put(out, cap, n, "nobody approved access to %s in time", t);
    else if (is(b, "ask_queue_full"))
        put(out, cap, n, "too many requests are waiting for approval");
    else if (is(b, "ask_disabled"))
        put(out, cap, n, "%s needs approval and approvals are disabled by the corp policy", t);
    else if (is(b, "private_address"))
        put(out, cap, n, "%s is a private, loopback or reserved destination", t);
    else if (is(b, "placeholder_misuse"))
        put(out, cap, n, "a capsem credential placeholder was sent to %s, which does not own it",
            t);
    else if (is(b, "secret_leak"))
        put(out, cap, n, "a credential was found in a request to %s", t);
    else
        put(out, cap, n, "%s", policy_header_reason(b));
}

static void hint_text(const struct policy_block_info *b, const char *t, char *out, size_t cap,
                      size_t *n)
{
    if (is(b, "policy_block"))
        put(out, cap, n,
            "this is a deliberate policy rule: do not retry or work around it; "
            "tell the user if the task needs it");
    else if (is(b, "private_address"))
        put(out, cap, n, "only a user or corp rule naming %s exactly can open it", t);
    else if (is(b, "ask_queue_full"))
        put(out, cap, n, "wait for pending approvals, then retry");
    else if (is(b, "policy_error"))
        put(out, cap, n, "tell the user the capsem policy failed to evaluate this request");
    else if (is(b, "placeholder_misuse") || is(b, "secret_leak"))
        put(out, cap, n, "send credentials only to the provider that owns them");
    else if (b->tool)
        put(out, cap, n, "ask the user to allow the tool %s in the capsem policy", t);
    else
        put(out, cap, n, "ask the user to allow %s in the capsem policy", t);
}

int policy_render_reason(const struct policy_block_info *b, char *out, size_t cap)
{
    char t[320];
    size_t n = 0;
    target(b, t, sizeof(t));
    reason_text(b, t, out, cap, &n);
    return n < cap ? (int)n : -1;
}

int policy_render_body(const struct policy_block_info *b, char *out, size_t cap)
{
    char t[320];
    size_t n = 0;
    target(b, t, sizeof(t));
    put(out, cap, &n,
        "capsem: request blocked\n%s: %s\nrule: %s\nreason: ", b->tool ? "tool" : "host", t,
        policy_header_rule(b));
    reason_text(b, t, out, cap, &n);
    put(out, cap, &n, "\nhint: ");
    hint_text(b, t, out, cap, &n);
    put(out, cap, &n, "\n");
    return n < cap ? (int)n : -1;
}

int policy_render_dns_ede(const struct policy_block_info *b, char *out, size_t cap)
{
    char t[320];
    size_t n = 0;
    target(b, t, sizeof(t));
    put(out, cap, &n, "capsem: %s: ", policy_header_rule(b));
    reason_text(b, t, out, cap, &n);
    return n < cap ? (int)n : -1;
}
