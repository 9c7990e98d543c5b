/* Service routes for held policy decisions (network.md 8.4, docs/asks.md):
 *
 *   GET  /vms/{id}/asks             pending asks of a VM
 *   POST /vms/{id}/asks/{ask_id}    {decision: approve|deny,
 *                                    remember?: once|session|always,
 *                                    resolver?: api|mcp|dashboard}
 *
 * The asks live in the VM's capsem-process (vmproc_ask.c); these routes
 * forward to its IPC ops `asks` and `ask_resolve`. remember=always also
 * writes an exact host+port allow rule at the top of $CAPSEM_HOME/policy.toml
 * (the user source), checked with policy_check_text() and replaced
 * atomically; every capsem-process reloads it through its file watch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "config/toml.h"
#include "policy/policy.h"
#include "service/service.h"

#define ASK_ID_MAX   32
#define RULE_ID_MAX  64
#define RULE_ID_BASE "approved-"

/* Route handlers, listed in svc_routes.c's table. */

static bool vm_live(const struct svm *vm)
{
    return vm->status == SVM_RUNNING && vm->ipc && !vm->deleting;
}

static void reply_ipc_error(struct svc_req *r, const struct err *e)
{
    svc_reply_error(r, e->status ? e->status : 500, "%s", e->msg);
}

/* ---------- GET /vms/{id}/asks ---------- */

static void list_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e) {
        reply_ipc_error(r, e);
        return;
    }
    json_t *asks = json_object_get(f->msg, "asks");
    svc_reply_json(r, 200, json_pack("{s:O}", "asks", json_is_array(asks) ? asks : json_null()));
}

void svc_asks_list(struct svc_req *r, struct svm *vm)
{
    if (!vm_live(vm)) {
        /* Asks live in the VM's process: a VM that is not running has none. */
        svc_reply_json(r, 200, json_pack("{s:[]}", "asks"));
        return;
    }
    svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "asks"), NULL, 0, list_done, r);
}

/* ---------- remember=always: the policy.toml rule ---------- */

/* Exact host names and IPv4 literals as the policy normalises them. */
static bool plain_host(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool id_taken(const struct toml_value *rules, const char *id)
{
    for (size_t i = 0; i < toml_array_len(rules); i++) {
        const char *have = toml_string(toml_table_get(toml_array_at(rules, i), "id"));
        if (have && strcmp(have, id) == 0)
            return true;
    }
    return false;
}

/* "approved-<host>-<port>", cut to the rule id limit, made unique in the
 * file with "-2", "-3"... */
static int choose_rule_id(const struct toml_value *rules, const char *host, int port,
                          char out[RULE_ID_MAX + 1])
{
    char suffix[16];
    snprintf(suffix, sizeof(suffix), "-%d", port);
    for (int n = 1; n < 100; n++) {
        char uniq[8] = "";
        if (n > 1)
            snprintf(uniq, sizeof(uniq), "-%d", n);
        size_t room = RULE_ID_MAX - strlen(RULE_ID_BASE) - strlen(suffix) - strlen(uniq);
        snprintf(out, RULE_ID_MAX + 1, "%s%.*s%s%s", RULE_ID_BASE, (int)MIN(room, strlen(host)),
                 host, suffix, uniq);
        if (!id_taken(rules, out))
            return 0;
    }
    return -1;
}

/* Offset of the start of 1-based line `line` in text, or -1. */
static ssize_t line_offset(const char *text, size_t len, int line)
{
    size_t off = 0;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(text + off, '\n', len - off);
        if (!nl)
            return -1;
        off = (size_t)(nl - text) + 1;
    }
    return (ssize_t)off;
}

static size_t skip_spaces(const char *s, size_t i, size_t end)
{
    while (i < end && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

/* On the line starting at `off`: `rule = [` (key bare or quoted). Returns the
 * offset just after '[', or -1 when the line has another shape. */
static ssize_t inline_array_open(const char *text, size_t len, size_t off)
{
    const char *nl = memchr(text + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - text) : len;
    size_t i = skip_spaces(text, off, end);
    char q = (i < end && (text[i] == '"' || text[i] == '\'')) ? text[i] : 0;
    i += q ? 1 : 0;
    if (end - i < 4 || memcmp(text + i, "rule", 4) != 0)
        return -1;
    i += 4;
    if (q && (i >= end || text[i++] != q))
        return -1;
    i = skip_spaces(text, i, end);
    if (i >= end || text[i++] != '=')
        return -1;
    i = skip_spaces(text, i, end);
    if (i >= end || text[i] != '[')
        return -1;
    return (ssize_t)i + 1;
}

static bool is_aot_header(const char *text, size_t len, size_t off)
{
    const char *nl = memchr(text + off, '\n', len - off);
    size_t end = nl ? (size_t)(nl - text) : len;
    size_t i = skip_spaces(text, off, end);
    return end - i >= 2 && text[i] == '[' && text[i + 1] == '[';
}

struct rule_text {
    const char *id, *host, *comment;
    int port;
};

static int put_inline_rule(struct buf *b, const struct rule_text *rt)
{
    return buf_printf(b, "{ id = \"%s\", action = \"allow\", host = \"%s\", ports = [%d] }", rt->id,
                      rt->host, rt->port);
}

/* Builds the new file text into out: the rule goes first in evaluation
 * order, the rest of the file is kept byte for byte. */
static int splice_rule(const char *text, size_t len, const struct toml_value *root,
                       const struct rule_text *rt, struct buf *out, struct err **errp)
{
    const struct toml_value *rules = toml_table_get(root, "rule");
    int rc = 0;
    if (!rules) {
        const struct toml_value *schema = toml_table_get(root, "schema");
        ssize_t at = schema ? line_offset(text, len, toml_line(schema) + 1) : 0;
        if (at < 0) /* schema on the last line, without a newline */
            at = (ssize_t)len;
        rc |= buf_append(out, text, (size_t)at);
        if (at > 0 && text[at - 1] != '\n')
            rc |= buf_append_str(out, "\n");
        if (!schema)
            rc |= buf_append_str(out, "schema = 1\n");
        rc |= buf_printf(out, "rule = [\n  # %s\n  ", rt->comment);
        rc |= put_inline_rule(out, rt);
        rc |= buf_append_str(out, ",\n]\n");
        rc |= buf_append(out, text + at, len - (size_t)at);
        return rc ? err_set(errp, ENOMEM, "out of memory") : 0;
    }
    ssize_t off = toml_type(rules) == TOML_ARRAY ? line_offset(text, len, toml_line(rules)) : -1;
    ssize_t open_at = off >= 0 ? inline_array_open(text, len, (size_t)off) : -1;
    if (open_at >= 0) {
        /* An element on the same line as the '[' moves to a line of its own. */
        size_t rest = skip_spaces(text, (size_t)open_at, len);
        bool own_line = rest < len && text[rest] != '\n' && text[rest] != '#' && text[rest] != ']';
        rc |= buf_append(out, text, (size_t)open_at);
        rc |= buf_printf(out, "\n  # %s\n  ", rt->comment);
        rc |= put_inline_rule(out, rt);
        rc |= buf_append_str(out, own_line ? ",\n  " : ",");
        size_t from = own_line ? rest : (size_t)open_at;
        rc |= buf_append(out, text + from, len - from);
    } else if (off >= 0 && is_aot_header(text, len, (size_t)off)) {
        rc |= buf_append(out, text, (size_t)off);
        rc |= buf_printf(out,
                         "# %s\n[[rule]]\nid = \"%s\"\naction = \"allow\"\nhost = \"%s\"\n"
                         "ports = [%d]\n\n",
                         rt->comment, rt->id, rt->host, rt->port);
        rc |= buf_append(out, text + off, len - (size_t)off);
    } else {
        return err_status(errp, 409,
                          "cannot place a rule at the top of policy.toml automatically (its "
                          "'rule' list has an unusual layout); add an allow rule for %s port %d "
                          "first in it yourself",
                          rt->host, rt->port);
    }
    return rc ? err_set(errp, ENOMEM, "out of memory") : 0;
}

/* The spliced text must parse, hold our rule first, and pass the policy
 * loader's checks for the user source. */
static int check_result(const char *text, size_t len, const char *id, struct err **errp)
{
    _cleanup_toml_ struct toml_value *root = toml_parse(text, len, "policy.toml", errp);
    if (!root)
        return -1;
    const struct toml_value *first = toml_array_at(toml_table_get(root, "rule"), 0);
    const char *got = toml_string(toml_table_get(first, "id"));
    if (!got || strcmp(got, id) != 0)
        return err_status(errp, 409, "policy.toml: the new rule %s did not end up first", id);
    return policy_check_text(POLICY_SRC_USER, text, len, "policy.toml", NULL, 0, errp);
}

/* Writes an allow rule for host:port atop <home>/policy.toml. *rule_id gets
 * the rule's id. */
static int write_always_rule(struct svc *s, const char *host, int port, const char *comment,
                             char rule_id[RULE_ID_MAX + 1], struct err **errp)
{
    _cleanup_free_ char *path = paths_join(s->home, "policy.toml");
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    mode_t mode = 0600;
    struct stat st;
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    if (stat(path, &st) == 0)
        mode = st.st_mode & 0777;
    struct err *e = NULL;
    if (file_read_all(path, POLICY_MAX_FILE, &text, &len, &e) < 0) {
        if (e->code != ENOENT) {
            err_move(errp, &e);
            err_prefix(errp, "reading %s", path);
            return -1;
        }
        err_free(e);
    }
    _cleanup_toml_ struct toml_value *root = toml_parse(text ? text : "", len, "policy.toml", &e);
    if (!root) {
        err_status(errp, 409, "%s; fix policy.toml before approving with remember=always",
                   err_msg(e));
        err_free(e);
        return -1;
    }
    /* Refuse a file the VMs already reject: its errors are the user's to fix,
     * with the line numbers of their own file. */
    if (len > 0 && policy_check_text(POLICY_SRC_USER, text, len, "policy.toml", NULL, 0, &e) < 0) {
        err_status(errp, 409, "%s; fix policy.toml before approving with remember=always",
                   err_msg(e));
        err_free(e);
        return -1;
    }
    if (choose_rule_id(toml_table_get(root, "rule"), host, port, rule_id) < 0)
        return err_status(errp, 409, "policy.toml already has rules %s%s-%d-2 to -99", RULE_ID_BASE,
                          host, port);
    struct rule_text rt = {rule_id, host, comment, port};
    struct buf out;
    buf_init(&out, POLICY_MAX_FILE + 4096u); /* room to report "too large" below */
    int rc = splice_rule(text ? text : "", len, root, &rt, &out, errp);
    if (rc == 0 && out.len > POLICY_MAX_FILE)
        rc = err_status(errp, 409, "policy.toml would exceed %d bytes", POLICY_MAX_FILE);
    if (rc == 0 && check_result((const char *)buf_head(&out), out.len, rule_id, &e) < 0) {
        rc = err_status(errp, 409,
                        "the updated policy.toml would be rejected: %s; nothing was written",
                        err_msg(e));
        err_free(e);
    }
    if (rc == 0)
        rc = file_write_atomic(path, buf_head(&out), out.len, mode, errp);
    buf_free(&out);
    if (rc == 0)
        log_info("policy.toml: added rule user:%s (allow %s:%d) for an approved ask", rule_id, host,
                 port);
    return rc;
}

/* ---------- POST /vms/{id}/asks/{ask_id} ---------- */

struct resolve_job {
    struct svc_req *r;
    char ask_id[ASK_ID_MAX + 1];
    const char *decision, *remember, *resolver; /* static strings */
    char rule_id[RULE_ID_MAX + 1];              /* written for remember=always, or "" */
};

static void job_reply_error(struct resolve_job *j, int status, const char *msg)
{
    svc_reply_error(j->r, status, "%s", msg);
    free(j);
}

static void resolve_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct resolve_job *j = arg;
    if (e) {
        if (j->rule_id[0] && e->status == 404)
            svc_reply_error(j->r, 404,
                            "%s; the rule user:%s was written to policy.toml and applies to "
                            "later requests",
                            e->msg, j->rule_id);
        else
            reply_ipc_error(j->r, e);
        free(j);
        return;
    }
    json_t *out = json_object();
    json_t *ask = json_object_get(f->msg, "ask");
    if (out && ask)
        json_object_set(out, "ask", ask);
    if (out && j->rule_id[0])
        json_object_set_new(out, "policy_rule",
                            json_pack("{s:s, s:s}", "id", j->rule_id, "source", "user"));
    svc_reply_json(j->r, 200, out);
    free(j);
}

static void send_resolve(struct svm *vm, struct resolve_job *j)
{
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "ask_resolve", "ask_id", j->ask_id, "decision",
                  j->decision, "remember", j->remember, "resolver", j->resolver);
    if (!req) {
        job_reply_error(j, 500, "out of memory");
        return;
    }
    svc_ipc_call(vm->ipc, req, NULL, 0, resolve_done, j);
}

/* remember=always: the ask's destination, then the rule, then the answer. */
static void always_lookup_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct resolve_job *j = arg;
    if (e) {
        svc_reply_error(j->r, e->status ? e->status : 500, "%s", e->msg);
        free(j);
        return;
    }
    json_t *ask = json_array_get(json_object_get(f->msg, "asks"), 0);
    const char *scope = json_string_value(json_object_get(ask, "scope"));
    const char *host = json_string_value(json_object_get(ask, "host"));
    const char *rule = json_string_value(json_object_get(ask, "rule"));
    json_int_t port = json_integer_value(json_object_get(ask, "port"));
    char msg[512];
    if (!scope || strcmp(scope, "net") != 0 || !plain_host(host) || port < 1 || port > 65535) {
        snprintf(msg, sizeof(msg),
                 "remember=always writes a host+port allow rule and only applies to net asks "
                 "(this one is %s%s%s); use remember=session",
                 scope ? scope : "?", host ? " for " : "", host ? host : "");
        job_reply_error(j, 400, msg);
        return;
    }
    if (rule && str_has_prefix(rule, "corp:")) {
        snprintf(msg, sizeof(msg),
                 "the ask comes from the corp rule %s, which a rule in policy.toml cannot "
                 "override; use remember=session",
                 rule);
        job_reply_error(j, 409, msg);
        return;
    }
    char comment[256];
    snprintf(comment, sizeof(comment), "added by capsem: ask %s (VM %s, rule %s) approved always",
             j->ask_id, vm->name, rule ? rule : "-");
    struct err *we = NULL;
    if (write_always_rule(vm->svc, host, (int)port, comment, j->rule_id, &we) < 0) {
        svc_reply_err(j->r, we);
        err_free(we);
        free(j);
        return;
    }
    if (!vm_live(vm)) {
        job_reply_error(j, 404, "the VM stopped before the ask was answered");
        return;
    }
    send_resolve(vm, j);
}

/* The ask id is the path's last segment: /vms/{id}/asks/{ask_id}. */
static int ask_id_from_path(const char *path, char out[ASK_ID_MAX + 1], struct err **errp)
{
    const char *seg = strstr(path, "/asks/");
    seg = seg ? seg + strlen("/asks/") : "";
    size_t n = strlen(seg);
    bool ok = n > 0 && n <= ASK_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = seg[i] > 0x20 && seg[i] < 0x7f && seg[i] != '/';
    if (!ok)
        return err_status(errp, 400, "invalid ask id: %.*s", (int)MIN(n, 64), seg);
    memcpy(out, seg, n + 1);
    return 0;
}

void svc_asks_resolve(struct svc_req *r, struct svm *vm)
{
    static const char *const decisions[] = {"approve", "deny"};
    static const char *const remembers[] = {"once", "session", "always"};
    static const char *const resolvers[] = {"api", "mcp", "dashboard"};
    struct resolve_job *j = calloc(1, sizeof(*j));
    struct err *e = NULL;
    if (!j) {
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    j->r = r;
    if (ask_id_from_path(r->path, j->ask_id, &e) < 0 ||
        !(j->decision = ipc_json_enum(r->json, "decision", decisions, 2, NULL, &e)) ||
        !(j->remember = ipc_json_enum(r->json, "remember", remembers, 3, "once", &e)) ||
        !(j->resolver = ipc_json_enum(r->json, "resolver", resolvers, 3, "api", &e))) {
        svc_reply_err(r, e);
        err_free(e);
        free(j);
        return;
    }
    bool always = strcmp(j->remember, "always") == 0;
    if (always && strcmp(j->decision, "approve") != 0) {
        job_reply_error(j, 400,
                        "remember=always only goes with approve (it writes an allow rule); to "
                        "deny every later identical request of this VM use remember=session");
        return;
    }
    if (!vm_live(vm)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "ask not found: %s (VM %s is not running)", j->ask_id, vm->name);
        job_reply_error(j, 404, msg);
        return;
    }
    if (always) {
        json_t *req = json_pack("{s:s, s:s}", "op", "asks", "ask_id", j->ask_id);
        if (!req) {
            job_reply_error(j, 500, "out of memory");
            return;
        }
        svc_ipc_call(vm->ipc, req, NULL, 0, always_lookup_done, j);
        return;
    }
    send_resolve(vm, j);
}
