/* Internals of the expression language shared by expr.c (lexer, parser,
 * type checker), expr_eval.c (evaluator) and expr_re.c (regex checks, globs).
 * Not for use outside src/lib/policy/. */
#ifndef CAPSEM_POLICY_EXPR_INT_H
#define CAPSEM_POLICY_EXPR_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/expr.h"

enum field_id {
    F_HTTP_HOST,
    F_HTTP_PORT,
    F_HTTP_SCHEME,
    F_HTTP_METHOD,
    F_HTTP_PATH,
    F_HTTP_QUERY,
    F_HTTP_HEADER,
    F_HTTP_UPGRADE,
    F_HTTP_SNI,
    F_DNS_QNAME,
    F_DNS_QTYPE,
    F_DNS_SUSPICIOUS,
    F_CONN_DST_IP,
    F_CONN_DST_PORT,
    F_PROC_NAME,
    F_PROC_EXE,
    F_PROC_PID,
    F_VM_ID,
    F_VM_NAME,
    F_VM_PROFILE,
    F_MODEL_PROVIDER,
    F_MODEL_PROTOCOL,
    F_MODEL_NAME,
    F_MODEL_STREAM,
    F_MODEL_MAX_TOKENS,
    F_MODEL_MESSAGES_COUNT,
    F_MODEL_TOOLS,
    F_MCP_SERVER,
    F_MCP_TOOL,
    F_MCP_METHOD,
    F_MCP_ARGS,
};

enum vtype { VT_STRING, VT_INT, VT_BOOL, VT_LIST };

struct field_def {
    const char *name;
    enum field_id id;
    enum vtype type;
    unsigned scopes; /* EXPR_SCOPE_* */
    unsigned cls;    /* one EXPR_CLASS_* */
};

struct lit {
    enum vtype type; /* VT_STRING, VT_INT or VT_BOOL */
    char *s;         /* owned, VT_STRING */
    int64_t i;
    bool b;
};

enum ekind { E_OR, E_AND, E_NOT, E_CONST, E_CMP, E_IN, E_STR_IN, E_METHOD, E_HAS, E_BOOL };
enum ecmp { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };
enum emethod { M_STARTS, M_ENDS, M_CONTAINS, M_MATCHES, M_GLOB };

struct efield {
    const struct field_def *def;
    char *key; /* http.header["key"]: lowercase, owned; else NULL */
};

struct enode {
    enum ekind kind;
    struct enode **kids; /* E_OR, E_AND (>= 2), E_NOT (1) */
    size_t nkids;
    bool cval;        /* E_CONST */
    struct efield f;  /* atoms over a field */
    enum ecmp op;     /* E_CMP */
    struct lit lit;   /* E_CMP */
    struct lit *list; /* E_IN */
    size_t nlist;
    char *str; /* E_STR_IN needle, E_METHOD argument (owned) */
    size_t slen;
    enum emethod m; /* E_METHOD */
    regex_t re;     /* M_MATCHES, M_GLOB */
    bool has_re;
};

struct expr {
    struct enode *root;
    unsigned classes;
    unsigned atoms;
};

/* expr_re.c: checks a `matches` pattern (length, no back-references, bounded
 * repetition growth: `{,m}` counts as a bound, each `+` doubles, more than 8
 * repetitions of parts that can match empty are refused) and compiles it.
 * regcomp only validates; matching runs on expr_re_linear_match(). Returns 0
 * or -1 with `why` filled. */
int expr_regex_compile(const char *pattern, regex_t *out, char *why, size_t cap);

#endif
