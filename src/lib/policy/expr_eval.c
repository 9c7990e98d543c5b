/* Expression evaluation (network.md section 9): left to right with
 * short-circuit; an atom over an absent field is false, `!` negates whatever
 * its operand gave; the only runtime error is a `matches`/`glob` subject over
 * EXPR_MAX_SUBJECT bytes, which the caller treats as a deny. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/expr_int.h"

/* expr_re.c (to move to expr_int.h): 1 or 0, -1 when regexec must decide. */

struct val {
    bool present;
    const char *s;
    int64_t i;
    bool b;
    const char *const *list;
    size_t nlist;
};

static void str_val(struct val *v, const char *s)
{
    v->present = s != NULL;
    v->s = s;
}

static void int_val(struct val *v, bool has, int64_t i)
{
    v->present = has;
    v->i = i;
}

static const char *header_value(const struct policy_request *r, const char *key)
{
    for (size_t i = 0; i < r->http.nheaders; i++)
        if (r->http.headers[i].name && strcasecmp(r->http.headers[i].name, key) == 0)
            return r->http.headers[i].value;
    return NULL;
}

/* ipbuf (>= 16 bytes) holds conn.dst_ip's text form. */
static void field_value(const struct efield *f, const struct policy_request *r, struct val *v,
                        char *ipbuf)
{
    memset(v, 0, sizeof(*v));
    switch (f->def->id) {
    case F_HTTP_HOST: str_val(v, r->http.host); break;
    case F_HTTP_PORT: int_val(v, r->http.has_port, r->http.port); break;
    case F_HTTP_SCHEME: str_val(v, r->http.scheme); break;
    case F_HTTP_METHOD: str_val(v, r->http.method); break;
    case F_HTTP_PATH: str_val(v, r->http.path); break;
    case F_HTTP_QUERY: str_val(v, r->http.query); break;
    case F_HTTP_HEADER: str_val(v, header_value(r, f->key)); break;
    case F_HTTP_UPGRADE: str_val(v, r->http.upgrade); break;
    case F_HTTP_SNI: str_val(v, r->http.sni); break;
    case F_DNS_QNAME: str_val(v, r->dns.qname); break;
    case F_DNS_QTYPE: str_val(v, r->dns.qtype); break;
    case F_DNS_SUSPICIOUS:
        v->present = r->dns.has_suspicious;
        v->b = r->dns.suspicious;
        break;
    case F_CONN_DST_IP:
        if (r->conn.has_dst_ip) {
            uint32_t a = r->conn.dst_ip;
            snprintf(ipbuf, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
            str_val(v, ipbuf);
        }
        break;
    case F_CONN_DST_PORT: int_val(v, r->conn.has_dst_port, r->conn.dst_port); break;
    case F_PROC_NAME: str_val(v, r->process.name); break;
    case F_PROC_EXE: str_val(v, r->process.exe); break;
    case F_PROC_PID: int_val(v, r->process.has_pid, r->process.pid); break;
    case F_VM_ID: str_val(v, r->vm.id); break;
    case F_VM_NAME: str_val(v, r->vm.name); break;
    case F_VM_PROFILE: str_val(v, r->vm.profile); break;
    case F_MODEL_PROVIDER: str_val(v, r->model.provider); break;
    case F_MODEL_PROTOCOL: str_val(v, r->model.protocol); break;
    case F_MODEL_NAME: str_val(v, r->model.name); break;
    case F_MODEL_STREAM:
        v->present = r->model.has_stream;
        v->b = r->model.stream;
        break;
    case F_MODEL_MAX_TOKENS: int_val(v, r->model.has_max_tokens, r->model.max_tokens); break;
    case F_MODEL_MESSAGES_COUNT:
        int_val(v, r->model.has_messages_count, r->model.messages_count);
        break;
    case F_MODEL_TOOLS:
        v->present = r->model.has_tools;
        v->list = r->model.tools;
        v->nlist = r->model.tools ? r->model.ntools : 0;
        break;
    case F_MCP_SERVER: str_val(v, r->mcp.server); break;
    case F_MCP_TOOL: str_val(v, r->mcp.tool); break;
    case F_MCP_METHOD: str_val(v, r->mcp.method); break;
    case F_MCP_ARGS: str_val(v, r->mcp.args); break;
    }
}

static bool lit_equal(const struct lit *l, enum vtype t, const struct val *v)
{
    switch (t) {
    case VT_STRING: return strcmp(v->s, l->s) == 0;
    case VT_INT: return v->i == l->i;
    case VT_BOOL: return v->b == l->b;
    case VT_LIST: return false;
    }
    return false;
}

static bool eval_cmp(const struct enode *n, const struct val *v)
{
    bool eq = lit_equal(&n->lit, n->f.def->type, v);
    switch (n->op) {
    case C_EQ: return eq;
    case C_NE: return !eq;
    case C_LT: return v->i < n->lit.i;
    case C_LE: return v->i <= n->lit.i;
    case C_GT: return v->i > n->lit.i;
    case C_GE: return v->i >= n->lit.i;
    }
    return false;
}

/* `matches` and `glob` run on the linear-time matcher (expr_re.c says why
 * regexec is not used on guest subjects); the few patterns it leaves alone
 * go to regexec. */
static int regex_match(const struct enode *n, const char *subject, size_t len)
{
    int r = expr_re_linear_match(n->str, n->m == M_GLOB, subject, len);
    return r >= 0 ? r : expr_regex_match(&n->re, subject);
}

static int eval_method(const struct enode *n, const struct val *v, struct err **errp)
{
    size_t len = strlen(v->s);
    switch (n->m) {
    case M_STARTS: return len >= n->slen && memcmp(v->s, n->str, n->slen) == 0;
    case M_ENDS: return len >= n->slen && memcmp(v->s + len - n->slen, n->str, n->slen) == 0;
    case M_CONTAINS: return memmem(v->s, len, n->str, n->slen) != NULL;
    case M_MATCHES:
    case M_GLOB:
        if (len > EXPR_MAX_SUBJECT)
            return err_status(errp, 400, "%s: subject of %zu bytes is over the %d byte limit",
                              n->f.def->name, len, EXPR_MAX_SUBJECT);
        return regex_match(n, v->s, len);
    }
    return 0;
}

static int eval_atom(const struct enode *n, const struct policy_request *r, struct err **errp)
{
    char ipbuf[16];
    struct val v;
    field_value(&n->f, r, &v, ipbuf);
    if (n->kind == E_HAS)
        return v.present;
    if (!v.present)
        return 0;
    switch (n->kind) {
    case E_BOOL: return v.b;
    case E_CMP: return eval_cmp(n, &v);
    case E_IN:
        for (size_t i = 0; i < n->nlist; i++)
            if (lit_equal(&n->list[i], n->f.def->type, &v))
                return 1;
        return 0;
    case E_STR_IN:
        for (size_t i = 0; i < v.nlist; i++)
            if (v.list[i] && strcmp(v.list[i], n->str) == 0)
                return 1;
        return 0;
    case E_METHOD: return eval_method(n, &v, errp);
    default: return 0;
    }
}

static int eval(const struct enode *n, const struct policy_request *r, struct err **errp)
{
    switch (n->kind) {
    case E_OR:
    case E_AND:
        for (size_t i = 0; i < n->nkids; i++) {
            int x = eval(n->kids[i], r, errp);
            if (x < 0)
                return -1;
            if ((n->kind == E_OR) == (x == 1))
                return x;
        }
        return n->kind == E_AND;
    case E_NOT: {
        int x = eval(n->kids[0], r, errp);
        return x < 0 ? -1 : !x;
    }
    case E_CONST:
        return n->cval;
    default:
        return eval_atom(n, r, errp);
    }
}

int expr_eval(const struct expr *e, const struct policy_request *r, struct err **errp)
{
    return eval(e->root, r, errp);
}
