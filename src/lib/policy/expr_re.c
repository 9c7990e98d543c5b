/* Regular expressions and globs for the policy (network.md 8.2, 9): the
 * load-time checks on `matches` patterns and the glob-to-ERE compiler shared
 * by path_glob and the `glob` method, and a linear-time matcher for both.
 *
 * Patterns are checked and compiled with regcomp (REG_EXTENDED | REG_NOSUB),
 * which decides what is accepted and words the errors. Matching a guest's
 * subject (up to 64 KiB) with regexec is not safe, though: glibc does not
 * backtrack, but it retries an unanchored pattern from every start position
 * (quadratic: "[a-z]+\\.corp\\.example" takes seconds on 64 KiB of
 * letters), and its lazy DFA can need a new state per byte (exponential in
 * the pattern: "x[a-z]{20}y" anchored with ".*" takes as long). So the
 * evaluator matches with expr_re_linear_match(): the same pattern compiled
 * to an NFA and run as a Thompson simulation, O(subject x program) with the
 * program bounded by the growth check below. It handles everything glibc's
 * ERE syntax accepts in the C locale except a few rare bracket forms; for
 * those it says so and the caller falls back to regexec. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/expr_int.h"

/* Declared here and in expr_eval.c until expr_int.h carries it:
 * 1 (match) or 0 for subject[0..len) against a `matches` pattern (glob:
 * a glob) that loaded, -1 when the pattern uses a form this matcher leaves
 * to regexec (or memory ran out). Compiles the pattern on every call. */

#define GLOB_MAX    1024 /* bytes of a glob pattern */
#define GROWTH_MAX  2000 /* estimated pattern size once repetitions are expanded */

/* Index of the ']' closing the bracket expression opened at s[i] (or of the
 * last byte when it is unterminated; regcomp then reports it). */
static size_t skip_bracket(const char *s, size_t i)
{
    size_t j = i + 1;
    if (s[j] == '^')
        j++;
    if (s[j] == ']')
        j++;
    while (s[j] && s[j] != ']') {
        if (s[j] == '[' && s[j + 1] && strchr(":.=", s[j + 1])) {
            char kind = s[j + 1];
            j += 2;
            while (s[j] && !(s[j] == kind && s[j + 1] == ']'))
                j++;
            if (s[j])
                j += 2;
            continue;
        }
        j++;
    }
    return s[j] ? j : j - 1;
}

/* Parses "{n}", "{n,}", "{n,m}" or glibc's "{,m}" (0 to m) at s[i]; returns
 * the index of '}', the smallest count and the largest (n + 1 for "{n,}"),
 * or 0 when it is not a bound (then '{' is literal). */
static size_t parse_bound(const char *s, size_t i, uint64_t *min, uint64_t *max)
{
    size_t j = i + 1;
    uint64_t n = 0, m = 0;
    bool comma = false, have_m = false;
    if ((s[j] < '0' || s[j] > '9') && s[j] != ',')
        return 0;
    for (; s[j] >= '0' && s[j] <= '9'; j++)
        if (n < 100000) /* regcomp refuses counts past RE_DUP_MAX anyway */
            n = n * 10 + (uint64_t)(s[j] - '0');
    if (s[j] == ',') {
        comma = true;
        for (j++; s[j] >= '0' && s[j] <= '9'; j++) {
            have_m = true;
            if (m < 100000)
                m = m * 10 + (uint64_t)(s[j] - '0');
        }
    }
    if (s[j] != '}')
        return 0;
    *min = n;
    *max = have_m ? m : comma ? n + 1 : n;
    if (*max == 0)
        *max = 1;
    return j;
}

struct frame {
    uint64_t total; /* estimated size of this group so far */
    uint64_t last;  /* size of its last atom (what a repetition copies) */
    /* Repetitions of something that can match the empty string, counted
     * with the copies bounds and '+' make: in the group so far, and in its
     * last atom. */
    uint64_t empty_ops, last_ops;
    /* Can match the empty string: the current alternative before its last
     * atom, that atom, and some earlier alternative of the group. */
    bool prefix_empty, last_empty, alt_empty;
};

#define EMPTY_OPS_MAX 8

/* A repetition of the last atom: '*' or '?' (star), else making `copies`
 * copies of it (2 for '+', the upper bound for {n,m}, n + 1 for {n,}). */
static void frame_repeat(struct frame *f, bool star, uint64_t copies, bool may_be_empty)
{
    uint64_t ops = f->last_ops * copies + (f->last_empty ? 1 : 0);
    f->total += star ? f->last : f->last * (copies - 1);
    f->last *= copies;
    f->empty_ops += ops - f->last_ops;
    f->last_ops = ops;
    f->last_empty |= may_be_empty;
}

/* Refuses back-references and patterns regcomp would take too long or too
 * much memory to compile: bounded repetitions growing a huge automaton
 * ("((a{1,255}){1,255}){1,255}", "a++++++++++++": regcomp writes x+ as
 * x x*), and repetitions of parts that can match the empty string, which
 * glibc handles in exponential (or at best cubic) time: "^(a*)*(b*)*...",
 * "\bf******...", "(b??){20}+". */
static int regex_scan(const char *s, char *why, size_t cap)
{
    struct frame st[EXPR_MAX_REGEX + 2];
    size_t sp = 0;
    const struct frame fresh = {.prefix_empty = true, .last_empty = true};
    st[0] = fresh;
    for (size_t i = 0; s[i]; i++) {
        struct frame *f = &st[sp];
        uint64_t atom = 1, atom_ops = 0, mn, mx;
        bool atom_empty = false;
        size_t j;
        switch (s[i]) {
        case '\\':
            if (s[i + 1] >= '1' && s[i + 1] <= '9') {
                snprintf(why, cap, "back-references (\\1 to \\9) are not supported");
                return -1;
            }
            if (s[i + 1]) {
                i++;
                atom_empty = strchr("bB<>`'", s[i]) != NULL; /* assertions */
            }
            break;
        case '^':
        case '$':
            atom_empty = true;
            break;
        case '[':
            i = skip_bracket(s, i);
            break;
        case '(':
            st[++sp] = fresh;
            continue;
        case ')':
            if (sp > 0) {
                atom = st[sp].total + 1;
                atom_ops = st[sp].empty_ops;
                atom_empty = st[sp].alt_empty || (st[sp].prefix_empty && st[sp].last_empty);
                f = &st[--sp];
            }
            break;
        case '|':
            f->alt_empty |= f->prefix_empty && f->last_empty;
            f->last = f->last_ops = 0;
            f->prefix_empty = f->last_empty = true;
            continue;
        case '+':
            frame_repeat(f, false, 2, false);
            goto check;
        case '*':
        case '?':
            frame_repeat(f, true, 1, true);
            goto check;
        case '{':
            if ((j = parse_bound(s, i, &mn, &mx)) == 0)
                break;
            i = j;
            frame_repeat(f, false, mx, mn == 0);
            goto check;
        default:
            break;
        }
        f->total += atom;
        f->last = atom;
        f->empty_ops += atom_ops;
        f->last_ops = atom_ops;
        f->prefix_empty = f->prefix_empty && f->last_empty;
        f->last_empty = atom_empty;
    check:
        if (f->total > GROWTH_MAX || f->last > GROWTH_MAX) {
            snprintf(why, cap, "repetition counts make the pattern too large");
            return -1;
        }
        if (f->empty_ops > EMPTY_OPS_MAX) {
            snprintf(why, cap, "more than %d repetitions of something that can match the "
                               "empty string (like (a*)* or a**)", EMPTY_OPS_MAX);
            return -1;
        }
    }
    return 0;
}

int expr_regex_compile(const char *pattern, regex_t *out, char *why, size_t cap)
{
    if (strlen(pattern) > EXPR_MAX_REGEX) {
        snprintf(why, cap, "pattern is longer than %d bytes", EXPR_MAX_REGEX);
        return -1;
    }
    if (regex_scan(pattern, why, cap) < 0)
        return -1;
    int rc = regcomp(out, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, out, msg, sizeof(msg));
        snprintf(why, cap, "%s", msg);
        return -1;
    }
    return 0;
}

/* The ERE of a glob (see expr.h), malloc'ed; NULL when out of memory. */
static char *glob_to_ere(const char *pattern)
{
    size_t n = strlen(pattern);
    char *re = malloc(n * 6 + 3);
    if (!re)
        return NULL;
    size_t o = 0;
    re[o++] = '^';
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '*' && pattern[i + 1] == '*') {
            bool seg_start = i == 0 || pattern[i - 1] == '/';
            while (pattern[i + 1] == '*')
                i++;
            if (seg_start && pattern[i + 1] == '/') {
                memcpy(re + o, "(.*/)?", 6); /* "**" as a whole segment: zero or more */
                o += 6;
                i++;
            } else {
                memcpy(re + o, ".*", 2);
                o += 2;
            }
        } else if (c == '*') {
            memcpy(re + o, "[^/]*", 5);
            o += 5;
        } else if (c == '?') {
            memcpy(re + o, "[^/]", 4);
            o += 4;
        } else {
            if (strchr(".[]()+{}|^$\\", c))
                re[o++] = '\\';
            re[o++] = c;
        }
    }
    re[o++] = '$';
    re[o] = '\0';
    return re;
}

int expr_glob_compile(const char *pattern, regex_t *out, struct err **errp)
{
    if (strlen(pattern) > GLOB_MAX)
        return err_status(errp, 400, "pattern is longer than %d bytes", GLOB_MAX);
    char *re = glob_to_ere(pattern);
    if (!re)
        return err_status(errp, 0, "out of memory");
    int rc = regcomp(out, re, REG_EXTENDED | REG_NOSUB);
    free(re);
    if (rc != 0)
        return err_status(errp, 400, "pattern cannot be compiled");
    return 0;
}

bool expr_regex_match(const regex_t *re, const char *subject)
{
    return regexec(re, subject, 0, NULL, 0) == 0;
}

/* ---- linear-time matcher ---- */

/* Instructions of the NFA program. A thread at a SET instruction consumes
 * one byte of the set; SPLIT forks to x and y; the assertions let a thread
 * through only where they hold. */
enum re_op {
    RE_SET,
    RE_SPLIT,
    RE_JMP,
    RE_BOL,   /* ^ and \` : start of the subject */
    RE_EOL,   /* $ and \' : end of the subject */
    RE_WORDB, /* \b */
    RE_NWORDB, /* \B */
    RE_WBEG,  /* \< */
    RE_WEND,  /* \> */
    RE_MATCH,
};

#define RE_PROG_MAX 8192 /* instructions; the growth check keeps real ones far below */

struct re_inst {
    uint8_t op;
    uint32_t x, y; /* SPLIT targets, JMP target (x), SET: index of the byte set */
};

struct re_bytes {
    uint64_t w[4];
};

/* Parse tree: ALT over two children (a, b), CAT over a list (a, then each
 * node's next: no recursion along a long concatenation), REP over a. */
enum re_kind { N_EMPTY, N_SET, N_ASSERT, N_CAT, N_ALT, N_REP };

struct re_node {
    uint8_t kind, op; /* op: N_ASSERT's RE_* */
    uint32_t set;
    int a, b;         /* children */
    int next;         /* following element of the enclosing CAT */
    int min, max;     /* N_REP; max < 0: no upper bound */
};

struct re_build {
    const char *p;
    size_t n, i;
    unsigned depth;
    bool unsupported; /* outside what this matcher knows: use regexec */
    struct re_node *nodes;
    size_t nnodes;
    struct re_bytes *sets;
    size_t nsets;
    struct re_inst *ins;
    size_t nins, cap;
};

static void bytes_add(struct re_bytes *b, unsigned c)
{
    b->w[c >> 6] |= UINT64_C(1) << (c & 63);
}

static bool bytes_has(const struct re_bytes *b, unsigned c)
{
    return (b->w[c >> 6] >> (c & 63)) & 1;
}

static bool is_word_byte(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* POSIX character classes in the C locale (ASCII only). */
static bool class_has(const char *name, size_t len, unsigned c, bool *known)
{
    bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
    bool alpha = upper || lower, print = c >= 0x20 && c < 0x7f;
    bool space = c == ' ' || (c >= '\t' && c <= '\r');
    *known = true;
#define CLASS(s, v)                                                                                \
    if (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)                                         \
        return (v);
    CLASS("alpha", alpha)
    CLASS("upper", upper)
    CLASS("lower", lower)
    CLASS("digit", digit)
    CLASS("alnum", alpha || digit)
    CLASS("xdigit", digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
    CLASS("space", space)
    CLASS("blank", c == ' ' || c == '\t')
    CLASS("print", print)
    CLASS("graph", print && c != ' ')
    CLASS("punct", print && c != ' ' && !alpha && !digit)
    CLASS("cntrl", c < 0x20 || c == 0x7f)
#undef CLASS
    *known = false;
    return false;
}

static int new_node(struct re_build *b, enum re_kind kind)
{
    if (b->nnodes >= 3 * b->n + 4) { /* cannot happen: at most 3 per pattern byte */
        b->unsupported = true;
        return -1;
    }
    b->nodes[b->nnodes] = (struct re_node){.kind = (uint8_t)kind, .a = -1, .b = -1, .next = -1};
    return (int)b->nnodes++;
}

static int new_set(struct re_build *b, const struct re_bytes *set)
{
    if (b->nsets >= b->n + 2) {
        b->unsupported = true;
        return -1;
    }
    b->sets[b->nsets] = *set;
    int nd = new_node(b, N_SET);
    if (nd >= 0)
        b->nodes[nd].set = (uint32_t)b->nsets++;
    return nd;
}

static int byte_node(struct re_build *b, unsigned c)
{
    struct re_bytes set = {{0}};
    bytes_add(&set, c);
    return new_set(b, &set);
}

static int assert_node(struct re_build *b, enum re_op op)
{
    int nd = new_node(b, N_ASSERT);
    if (nd >= 0)
        b->nodes[nd].op = (uint8_t)op;
    return nd;
}

static int pair_node(struct re_build *b, enum re_kind kind, int l, int r)
{
    int nd = new_node(b, kind);
    if (nd >= 0) {
        b->nodes[nd].a = l;
        b->nodes[nd].b = r;
    }
    return nd;
}

/* One bracket element at b->i: a byte, [.c.] or [=c=] (one byte each), or
 * [:class:] (added to set, *is_class set). Returns the byte, or -1. */
static int bracket_element(struct re_build *b, struct re_bytes *set, bool *is_class)
{
    const char *p = b->p;
    *is_class = false;
    if (p[b->i] == '[' && b->i + 1 < b->n && strchr(":.=", p[b->i + 1])) {
        char kind = p[b->i + 1];
        size_t start = b->i + 2, j = start;
        while (j + 1 < b->n && !(p[j] == kind && p[j + 1] == ']'))
            j++;
        if (j + 1 >= b->n) {
            b->unsupported = true;
            return -1;
        }
        b->i = j + 2;
        if (kind != ':') {
            if (j - start != 1 || kind == '=') { /* multi-byte names; [=c=] */
                b->unsupported = true;
                return -1;
            }
            return (unsigned char)p[start];
        }
        bool known = false;
        for (unsigned c = 1; c < 256; c++)
            if (class_has(p + start, j - start, c, &known))
                bytes_add(set, c);
        class_has(p + start, j - start, 'a', &known);
        if (!known)
            b->unsupported = true;
        *is_class = true;
        return -1;
    }
    return (unsigned char)p[b->i++];
}

/* A bracket expression, b->i just past its '['. */
static int parse_bracket(struct re_build *b)
{
    struct re_bytes set = {{0}};
    bool neg = false, first = true;
    if (b->i < b->n && b->p[b->i] == '^') {
        neg = true;
        b->i++;
    }
    for (;;) {
        if (b->i >= b->n || b->unsupported) {
            b->unsupported = true;
            return -1;
        }
        if (b->p[b->i] == ']' && !first) {
            b->i++;
            break;
        }
        first = false;
        bool is_class;
        int lo = bracket_element(b, &set, &is_class);
        if (b->unsupported)
            return -1;
        bool range = b->i + 1 < b->n && b->p[b->i] == '-' && b->p[b->i + 1] != ']';
        if (is_class) {
            if (range) /* a class cannot start a range */
                b->unsupported = true;
            continue;
        }
        if (!range) {
            bytes_add(&set, (unsigned)lo);
            continue;
        }
        b->i++; /* '-' */
        bool end_class;
        int hi = bracket_element(b, &set, &end_class);
        if (b->unsupported || end_class || hi < lo) {
            b->unsupported = true;
            return -1;
        }
        for (int c = lo; c <= hi; c++)
            bytes_add(&set, (unsigned)c);
        /* "[a-c-e]": what the second '-' means is left to regcomp */
        if (b->i + 1 < b->n && b->p[b->i] == '-' && b->p[b->i + 1] != ']')
            b->unsupported = true;
    }
    if (neg)
        for (int k = 0; k < 4; k++)
            set.w[k] = ~set.w[k];
    set.w[0] &= ~UINT64_C(1); /* never NUL: subjects are C strings */
    return new_set(b, &set);
}

/* \w \W \s \S as byte sets. */
static int escape_set(struct re_build *b, char c)
{
    struct re_bytes set = {{0}};
    for (unsigned x = 1; x < 256; x++) {
        bool in = (c == 'w' || c == 'W') ? is_word_byte(x)
                                         : (x == ' ' || (x >= '\t' && x <= '\r'));
        if (in == (c == 'w' || c == 's'))
            bytes_add(&set, x);
    }
    return new_set(b, &set);
}

static int parse_alt(struct re_build *b);

static int parse_atom(struct re_build *b)
{
    char c = b->p[b->i++];
    switch (c) {
    case '(': {
        if (++b->depth > EXPR_MAX_REGEX) {
            b->unsupported = true;
            return -1;
        }
        int e = parse_alt(b);
        if (b->i >= b->n || b->p[b->i] != ')') {
            b->unsupported = true;
            return -1;
        }
        b->i++;
        b->depth--;
        return e;
    }
    case '[':
        return parse_bracket(b);
    case '.': {
        struct re_bytes all = {{~UINT64_C(1), ~UINT64_C(0), ~UINT64_C(0), ~UINT64_C(0)}};
        return new_set(b, &all);
    }
    case '^':
        return assert_node(b, RE_BOL);
    case '$':
        return assert_node(b, RE_EOL);
    case '*':
    case '+':
    case '?':
    case '{':
        b->unsupported = true; /* regcomp refuses a repetition with nothing to repeat */
        return -1;
    case '\\': {
        if (b->i >= b->n) {
            b->unsupported = true;
            return -1;
        }
        char e = b->p[b->i++];
        switch (e) {
        case 'w': case 'W': case 's': case 'S': return escape_set(b, e);
        case 'b': return assert_node(b, RE_WORDB);
        case 'B': return assert_node(b, RE_NWORDB);
        case '<': return assert_node(b, RE_WBEG);
        case '>': return assert_node(b, RE_WEND);
        case '`': return assert_node(b, RE_BOL);
        case '\'': return assert_node(b, RE_EOL);
        default:
            if (e >= '1' && e <= '9') { /* back-references are refused at load */
                b->unsupported = true;
                return -1;
            }
            return byte_node(b, (unsigned char)e);
        }
    }
    default: /* ')' here is an unmatched one: an ordinary byte in an ERE */
        return byte_node(b, (unsigned char)c);
    }
}

/* "{n}", "{n,}", "{n,m}", "{,m}" at b->i (on the '{'). */
static bool parse_interval(struct re_build *b, int *min, int *max)
{
    size_t j = b->i + 1;
    long lo = -1, hi = -1;
    for (; j < b->n && b->p[j] >= '0' && b->p[j] <= '9'; j++)
        lo = (lo < 0 ? 0 : lo) * 10 + (b->p[j] - '0') > RE_PROG_MAX ? RE_PROG_MAX + 1
             : (lo < 0 ? 0 : lo) * 10 + (b->p[j] - '0');
    if (j < b->n && b->p[j] == ',') {
        for (j++; j < b->n && b->p[j] >= '0' && b->p[j] <= '9'; j++)
            hi = (hi < 0 ? 0 : hi) * 10 + (b->p[j] - '0') > RE_PROG_MAX ? RE_PROG_MAX + 1
                 : (hi < 0 ? 0 : hi) * 10 + (b->p[j] - '0');
        if (lo < 0)
            lo = 0;
    } else {
        if (lo < 0)
            return false;
        hi = lo;
    }
    if (j >= b->n || b->p[j] != '}' || (hi >= 0 && hi < lo))
        return false;
    *min = (int)lo;
    *max = (int)hi;
    b->i = j + 1;
    return true;
}

static int parse_repeat(struct re_build *b)
{
    bool group = b->p[b->i] == '(';
    int e = parse_atom(b);
    if (e < 0)
        return -1;
    bool is_assert = !group && b->nodes[e].kind == N_ASSERT;
    while (b->i < b->n && strchr("*+?{", b->p[b->i])) {
        int min, max;
        char c = b->p[b->i];
        if (is_assert) { /* "^*": refused by regcomp */
            b->unsupported = true;
            return -1;
        }
        if (c == '{') {
            if (!parse_interval(b, &min, &max)) {
                b->unsupported = true;
                return -1;
            }
        } else {
            b->i++;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
        }
        int r = new_node(b, N_REP);
        if (r < 0)
            return -1;
        b->nodes[r].a = e;
        b->nodes[r].min = min;
        b->nodes[r].max = max;
        e = r;
    }
    return e;
}

static int parse_concat(struct re_build *b)
{
    int first = -1, last = -1;
    while (b->i < b->n && b->p[b->i] != '|' && !(b->p[b->i] == ')' && b->depth > 0)) {
        int r = parse_repeat(b);
        if (r < 0)
            return -1;
        if (first < 0)
            first = r;
        else
            b->nodes[last].next = r;
        last = r;
    }
    if (first < 0)
        return new_node(b, N_EMPTY);
    if (first == last)
        return first;
    int cat = new_node(b, N_CAT);
    if (cat >= 0)
        b->nodes[cat].a = first;
    return cat;
}

static int parse_alt(struct re_build *b)
{
    int e = parse_concat(b);
    while (e >= 0 && b->i < b->n && b->p[b->i] == '|') {
        b->i++;
        int r = parse_concat(b);
        if (r < 0)
            return -1;
        e = pair_node(b, N_ALT, e, r);
    }
    return e;
}

static uint32_t emit(struct re_build *b, enum re_op op, uint32_t x, uint32_t y)
{
    if (b->nins == b->cap) {
        size_t cap = b->cap * 2 > RE_PROG_MAX ? RE_PROG_MAX : b->cap * 2;
        struct re_inst *ins = cap > b->cap ? realloc(b->ins, cap * sizeof(*ins)) : NULL;
        if (!ins) { /* over RE_PROG_MAX, or out of memory: leave it to regexec */
            b->unsupported = true;
            return 0;
        }
        b->ins = ins;
        b->cap = cap;
    }
    b->ins[b->nins] = (struct re_inst){.op = (uint8_t)op, .x = x, .y = y};
    return (uint32_t)b->nins++;
}

static void emit_node(struct re_build *b, int nd)
{
    if (b->unsupported)
        return;
    const struct re_node *n = &b->nodes[nd];
    switch (n->kind) {
    case N_EMPTY:
        break;
    case N_SET:
        emit(b, RE_SET, n->set, 0);
        break;
    case N_ASSERT:
        emit(b, (enum re_op)n->op, 0, 0);
        break;
    case N_CAT:
        for (int k = n->a; k >= 0; k = b->nodes[k].next)
            emit_node(b, k);
        break;
    case N_ALT: {
        uint32_t split = emit(b, RE_SPLIT, 0, 0);
        emit_node(b, n->a);
        uint32_t jmp = emit(b, RE_JMP, 0, 0);
        uint32_t right = (uint32_t)b->nins;
        emit_node(b, n->b);
        if (b->unsupported)
            return;
        b->ins[split].x = split + 1;
        b->ins[split].y = right;
        b->ins[jmp].x = (uint32_t)b->nins;
        break;
    }
    case N_REP: {
        int min = n->min, max = n->max, child = n->a;
        for (int k = 0; k < min && !b->unsupported; k++)
            emit_node(b, child);
        if (max < 0) { /* loop: split (body, out); body; jmp split */
            uint32_t split = emit(b, RE_SPLIT, 0, 0);
            emit_node(b, child);
            emit(b, RE_JMP, split, 0);
            if (!b->unsupported) {
                b->ins[split].x = split + 1;
                b->ins[split].y = (uint32_t)b->nins;
            }
            break;
        }
        /* max - min optional copies; every copy's split exits to the end,
         * chained through y until the end is known */
        uint32_t chain = UINT32_MAX;
        for (int k = min; k < max; k++) {
            uint32_t split = emit(b, RE_SPLIT, 0, 0);
            if (b->unsupported)
                return;
            b->ins[split].x = split + 1;
            b->ins[split].y = chain;
            chain = split;
            emit_node(b, child);
        }
        if (b->unsupported)
            return;
        while (chain != UINT32_MAX) {
            uint32_t prev = b->ins[chain].y;
            b->ins[chain].y = (uint32_t)b->nins;
            chain = prev;
        }
        break;
    }
    }
}

static void build_free(struct re_build *b)
{
    free(b->nodes);
    free(b->sets);
    free(b->ins);
}

/* Parses and compiles an ERE into b (ins, sets). -1: unsupported or out of
 * memory. */
static int build_program(struct re_build *b, const char *pattern)
{
    memset(b, 0, sizeof(*b));
    b->p = pattern;
    b->n = strlen(pattern);
    size_t max_nodes = 3 * b->n + 4;
    b->nodes = malloc(max_nodes * sizeof(*b->nodes));
    b->sets = malloc((b->n + 2) * sizeof(*b->sets));
    b->cap = 2 * b->n + 16 < RE_PROG_MAX ? 2 * b->n + 16 : RE_PROG_MAX;
    b->ins = malloc(b->cap * sizeof(*b->ins));
    if (!b->nodes || !b->sets || !b->ins)
        return -1;
    int root = parse_alt(b);
    if (root < 0 || b->unsupported || b->i != b->n)
        return -1;
    emit_node(b, root);
    emit(b, RE_MATCH, 0, 0);
    return b->unsupported ? -1 : 0;
}

/* Thread lists: sparse sets of program counters. */
struct re_list {
    uint32_t *dense, *sparse;
    size_t n;
};

static bool list_has(const struct re_list *l, uint32_t pc)
{
    uint32_t k = l->sparse[pc];
    return k < l->n && l->dense[k] == pc;
}

static void list_add(struct re_list *l, uint32_t pc)
{
    l->sparse[pc] = (uint32_t)l->n;
    l->dense[l->n++] = pc;
}

struct re_vm {
    const struct re_build *prog;
    const unsigned char *s;
    size_t len;
    uint32_t *stack;
};

static bool assert_holds(const struct re_vm *vm, enum re_op op, size_t pos)
{
    bool before = pos > 0 && is_word_byte(vm->s[pos - 1]);
    bool after = pos < vm->len && is_word_byte(vm->s[pos]);
    switch (op) {
    case RE_BOL: return pos == 0;
    case RE_EOL: return pos == vm->len;
    case RE_WORDB: return before != after;
    case RE_NWORDB: return before == after;
    case RE_WBEG: return !before && after;
    case RE_WEND: return before && !after;
    default: return false;
    }
}

/* Adds pc and everything reachable from it without consuming a byte at
 * pos. Returns true when the program can match there. */
static bool add_thread(const struct re_vm *vm, struct re_list *l, uint32_t pc, size_t pos)
{
    size_t sp = 0;
    vm->stack[sp++] = pc;
    while (sp > 0) {
        pc = vm->stack[--sp];
        if (list_has(l, pc))
            continue;
        list_add(l, pc);
        const struct re_inst *in = &vm->prog->ins[pc];
        switch ((enum re_op)in->op) {
        case RE_MATCH:
            return true;
        case RE_JMP:
            vm->stack[sp++] = in->x;
            break;
        case RE_SPLIT:
            vm->stack[sp++] = in->y;
            vm->stack[sp++] = in->x;
            break;
        case RE_SET:
            break;
        default:
            if (assert_holds(vm, (enum re_op)in->op, pos))
                vm->stack[sp++] = pc + 1;
            break;
        }
    }
    return false;
}

/* Thompson simulation: one pass over the subject, a new thread at every
 * position (the search is unanchored), each program counter at most once
 * per position. */
static int run_program(const struct re_build *prog, const char *subject, size_t len)
{
    size_t n = prog->nins;
    /* Two lists, and a stack: each instruction enters a list at most once
     * per position and pushes at most two successors. */
    uint32_t *mem = calloc(6 * n + 1, sizeof(uint32_t));
    if (!mem)
        return -1;
    struct re_list a = {mem, mem + n, 0}, b = {mem + 2 * n, mem + 3 * n, 0};
    struct re_vm vm = {prog, (const unsigned char *)subject, len, mem + 4 * n};
    struct re_list *cur = &a, *next = &b;
    int found = 0;
    for (size_t pos = 0;; pos++) {
        if (add_thread(&vm, cur, 0, pos)) {
            found = 1;
            break;
        }
        if (pos == len)
            break;
        unsigned c = vm.s[pos];
        next->n = 0;
        for (size_t k = 0; k < cur->n && !found; k++) {
            const struct re_inst *in = &prog->ins[cur->dense[k]];
            if (in->op == RE_SET && bytes_has(&prog->sets[in->x], c))
                found = add_thread(&vm, next, cur->dense[k] + 1, pos + 1);
        }
        if (found)
            break;
        struct re_list *t = cur;
        cur = next;
        next = t;
    }
    free(mem);
    return found;
}

int expr_re_linear_match(const char *pattern, bool glob, const char *subject, size_t len)
{
    char *ere = glob ? glob_to_ere(pattern) : NULL;
    if (glob && !ere)
        return -1;
    struct re_build b;
    int r = build_program(&b, glob ? ere : pattern);
    if (r == 0)
        r = run_program(&b, subject, len);
    build_free(&b);
    free(ere);
    return r;
}
