/* capsem asks, capsem approve, capsem deny: answering the policy's `ask`
 * rules (network.md 8.4, docs/asks.md). A request that an `ask` rule holds
 * waits (policy.ask_timeout_s, 30 s by default) for one of these, else it
 * is denied. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli.h"
#include "cli/format.h"
#include "cli/render.h"

#define ASK_ID_MAX 32

/* ---------- capsem asks ---------- */

static void destination(const json_t *ask, char *out, size_t cap)
{
    const char *host = json_string_value(json_object_get(ask, "host"));
    const char *tool = json_string_value(json_object_get(ask, "tool"));
    json_int_t port = json_integer_value(json_object_get(ask, "port"));
    if (host && port > 0)
        snprintf(out, cap, "%s:%lld", host, (long long)port);
    else
        snprintf(out, cap, "%s", host ? host : tool ? tool : "-");
}

static void request_line(const json_t *ask, char *out, size_t cap)
{
    const char *method = json_string_value(json_object_get(ask, "method"));
    const char *path = json_string_value(json_object_get(ask, "path"));
    _cleanup_free_ char *cut = path ? cli_cut_text(path, 60) : NULL;
    snprintf(out, cap, "%s%s%s", method ? method : "-", cut ? " " : "", cut ? cut : "");
}

static int render_asks(const json_t *resp, struct buf *out, struct err **errp)
{
    const json_t *asks = json_object_get(resp, "asks");
    if (!json_is_array(asks))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no asks");
    if (json_array_size(asks) == 0)
        return buf_append_str(out, "No pending asks.\n") < 0
                   ? err_set(errp, ENOMEM, "out of memory")
                   : 0;
    struct cli_table *t = cli_table_new(7);
    static const char *const head[] = {"ASK",     "DESTINATION", "REQUEST", "RULE",
                                       "PROCESS", "WAITING",     "EXPIRES"};
    int rc = t ? cli_table_add(t, head) : -1;
    size_t i;
    const json_t *ask;
    json_array_foreach(asks, i, ask)
    {
        char dest[300], req[128], waiting[24], expires[24];
        destination(ask, dest, sizeof(dest));
        request_line(ask, req, sizeof(req));
        snprintf(waiting, sizeof(waiting), "%lld",
                 (long long)json_integer_value(json_object_get(ask, "waiters")));
        snprintf(expires, sizeof(expires), "%llds",
                 (long long)(json_integer_value(json_object_get(ask, "expires_in_ms")) + 999) /
                     1000);
        const char *process = json_string_value(json_object_get(ask, "process"));
        const char *cells[] = {json_string_value(json_object_get(ask, "ask_id")),
                               dest,
                               req,
                               json_string_value(json_object_get(ask, "rule")),
                               process ? process : "?",
                               waiting,
                               expires};
        rc = rc < 0 ? rc : cli_table_add(t, cells);
        const char *reason = json_string_value(json_object_get(ask, "reason"));
        char note[300];
        snprintf(note, sizeof(note), "  reason: %s", reason ? reason : "");
        if (rc == 0 && reason && *reason)
            rc = cli_table_note(t, note);
    }
    rc = rc < 0 ? rc : cli_table_render(t, out);
    cli_table_free(t);
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

static int run_asks(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    if (cli_vm_call(ctx, "GET", a->pos[0], "/asks", NULL, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : render_asks(resp, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt asks_opts[] = {
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_asks = {
    .name = "asks",
    .usage = "asks VM [--json]",
    .summary = "List requests waiting for approval",
    .description = "Lists the requests of the VM that a policy rule with action `ask` holds until\n"
                   "someone answers with capsem approve or capsem deny: the ask id, destination,\n"
                   "method and path, the rule, the guest process, how many requests wait on it\n"
                   "(identical requests share one ask) and the seconds left before it is denied\n"
                   "(policy.ask_timeout_s). A VM that is not running has none.",
    .examples = "  capsem asks dev\n"
                "  capsem asks dev --json\n",
    .opts = asks_opts,
    .nopts = ARRAY_SIZE(asks_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_asks,
};

/* ---------- capsem approve / capsem deny ---------- */

static bool ask_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ASK_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int resolve(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a,
                   const char *decision)
{
    const char *remember = o->remember ? o->remember : "once";
    if (strcmp(remember, "once") != 0 && strcmp(remember, "session") != 0 &&
        strcmp(remember, "always") != 0)
        return cli_usage(&cmd_approve, "--remember must be once, session or always");
    const char *ref = a->pos[0], *ask_id = a->pos[1];
    if (!ask_id_ok(ask_id))
        return cli_failf("invalid ask id: %s (see capsem asks %s)", ask_id, ref);
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "/asks/%s", ask_id);
    json_auto_t *body = json_pack("{s:s, s:s}", "decision", decision, "remember", remember);
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    if (!body)
        return cli_failf("out of memory");
    if (cli_vm_call(ctx, "POST", ref, suffix, body, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = 0;
    if (o->json) {
        rc = cli_render_json(resp, &b, &e);
    } else {
        const json_t *ask = json_object_get(resp, "ask");
        char dest[300];
        destination(ask, dest, sizeof(dest));
        long long waiting = (long long)json_integer_value(json_object_get(ask, "waiters"));
        rc = buf_printf(&b, "%s %s (%s; %lld request%s waiting)\n",
                        strcmp(decision, "approve") == 0 ? "Approved" : "Denied", ask_id, dest,
                        waiting, waiting == 1 ? "" : "s");
        const char *rule =
            json_string_value(json_object_get(json_object_get(resp, "policy_rule"), "id"));
        if (rc == 0 && rule)
            rc = buf_printf(&b, "Added rule user:%s to policy.toml (allow %s).\n", rule, dest);
        else if (rc == 0 && strcmp(remember, "session") == 0)
            rc = buf_printf(&b, "Identical requests of this VM are %s until it stops.\n",
                            strcmp(decision, "approve") == 0 ? "approved" : "denied");
        if (rc < 0)
            rc = err_set(&e, ENOMEM, "out of memory");
    }
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static int run_approve(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    return resolve(ctx, o, a, "approve");
}

static int run_deny(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    return resolve(ctx, o, a, "deny");
}

static const struct cli_opt approve_opts[] = {
    {OPT_REMEMBER, "remember", 0, "WHEN", "once (the default), session or always (see above)"},
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_approve = {
    .name = "approve",
    .usage = "approve VM ASK_ID [--remember once|session|always] [--json]",
    .summary = "Let a held request through",
    .description =
        "Approves a pending ask (see capsem asks): every request waiting on it goes on.\n"
        "--remember session also approves, without asking, the same requests of this VM\n"
        "(same rule, host, port and method) until the VM stops. --remember always writes\n"
        "an allow rule for exactly that host and port at the top of\n"
        "$CAPSEM_HOME/policy.toml, which every VM uses from then on (net asks only, and\n"
        "not for asks that come from a corp rule).",
    .examples = "  capsem approve dev 3f9a0c1b2d4e\n"
                "  capsem approve dev 3f9a0c1b2d4e --remember session\n"
                "  capsem approve dev 3f9a0c1b2d4e --remember always\n",
    .opts = approve_opts,
    .nopts = ARRAY_SIZE(approve_opts),
    .stop_after = -1,
    .min_pos = 2,
    .max_pos = 2,
    .missing = "VM ASK_ID",
    .run = run_approve,
};

static const struct cli_opt deny_opts[] = {
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_deny = {
    .name = "deny",
    .usage = "deny VM ASK_ID [--json]",
    .summary = "Refuse a held request",
    .description =
        "Denies a pending ask (see capsem asks): every request waiting on it gets a 403\n"
        "with reason ask_denied. Later identical requests ask again.",
    .examples = "  capsem deny dev 3f9a0c1b2d4e\n",
    .opts = deny_opts,
    .nopts = ARRAY_SIZE(deny_opts),
    .stop_after = -1,
    .min_pos = 2,
    .max_pos = 2,
    .missing = "VM ASK_ID",
    .run = run_deny,
};
