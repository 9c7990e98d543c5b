/* The policy expression language (network.md section 9): lexer, parser and
 * type checker (expr.c), evaluator (expr_eval.c). docs/policy.md has the
 * grammar, the field table and the limits.
 *
 * An expression is compiled once, when its policy file loads: syntax, field
 * names, field scopes, types, limits and regular expressions are all checked
 * there, so evaluation can only fail on a runtime limit (a `matches`/`glob`
 * subject over 64 KiB), which the caller turns into a deny (fail closed).
 *
 * Ownership: expr_compile() returns an object the caller frees with
 * expr_free(). A compiled expression is immutable; expr_eval() may run on it
 * from several threads at once. */
#ifndef CAPSEM_POLICY_EXPR_H
#define CAPSEM_POLICY_EXPR_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "policy/request.h"

#define EXPR_MAX_LEN      4096          /* bytes of expression text */
#define EXPR_MAX_ATOMS    64            /* comparisons, in, methods, has(), bare fields, literals */
#define EXPR_MAX_NESTING  16            /* each '(' and each '!' opens a level */
#define EXPR_MAX_LIST     256           /* items in a [list] */
#define EXPR_MAX_REGEX    256           /* bytes of a `matches` pattern */
#define EXPR_MAX_SUBJECT  (64 * 1024)   /* bytes of a `matches`/`glob` subject */

/* Rule scopes, as a bit set: a field is usable in the scopes it lists. */
enum expr_scope {
    EXPR_SCOPE_NET = 1,
    EXPR_SCOPE_MODEL = 2,
    EXPR_SCOPE_MCP = 4,
};

/* Field classes (the part before the first dot), as a bit set. */
enum expr_class {
    EXPR_CLASS_HTTP = 1,
    EXPR_CLASS_DNS = 2,
    EXPR_CLASS_CONN = 4,
    EXPR_CLASS_PROCESS = 8,
    EXPR_CLASS_VM = 16,
    EXPR_CLASS_MODEL = 32,
    EXPR_CLASS_MCP = 64,
};

struct expr;

/* Compiles text[0..len) for a rule of `scope` (one EXPR_SCOPE_* value).
 * On error returns NULL with a 400 error whose message has no file prefix:
 * "column 12: unknown field 'http.hots'" (callers prepend "file:line: ..."). */
struct expr *expr_compile(const char *text, size_t len, enum expr_scope scope, struct err **errp);
void expr_free(struct expr *e);

/* 1 (true), 0 (false) or -1 (evaluation error: a subject over
 * EXPR_MAX_SUBJECT bytes; *errp, if given, says which). */
int expr_eval(const struct expr *e, const struct policy_request *r, struct err **errp);

/* The EXPR_CLASS_* bits of every field the expression mentions. */
unsigned expr_classes(const struct expr *e);
/* Number of atoms (for tests). */
unsigned expr_atoms(const struct expr *e);

/* Whole-string glob (network.md 8.2 path_glob): `*` any run of bytes other
 * than '/', `**` any run of bytes, and as a whole segment (between slashes)
 * zero or more segments, `?` one byte other than '/'; everything else is
 * literal. Compiled to a POSIX ERE. Returns 0, or -1 with a 400 error (no
 * prefix). */
int expr_glob_compile(const char *pattern, regex_t *out, struct err **errp);
/* Matches a NUL-terminated subject against a compiled glob or regex. */
bool expr_regex_match(const regex_t *re, const char *subject);
/* Matches subject[0..len) against a pattern the compile functions accepted
 * (glob: a path_glob / `glob` pattern, else a `matches` ERE) in time linear
 * in len (an NFA simulation; regexec retries from every start position).
 * 1 match, 0 no match, -1 when the pattern uses a form it does not support
 * (the caller then falls back to expr_regex_match). */
int expr_re_linear_match(const char *pattern, bool glob, const char *subject, size_t len);

#endif
