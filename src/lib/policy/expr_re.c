/* Regular expressions and globs for the policy (network.md 8.2, 9): the
 * load-time checks on `matches` patterns and the glob-to-ERE compiler shared
 * by path_glob and the `glob` method. Both compile with regcomp
 * (REG_EXTENDED | REG_NOSUB); glibc's matcher does not backtrack for patterns
 * without back-references, which are refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/expr_int.h"

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

/* Parses "{n}", "{n,}" or "{n,m}" at s[i]; returns the index of '}' and the
 * largest count, or 0 when it is not a bound (then '{' is literal). */
static size_t parse_bound(const char *s, size_t i, uint64_t *max)
{
    size_t j = i + 1;
    uint64_t n = 0, m = 0;
    bool comma = false, have_m = false;
    if (s[j] < '0' || s[j] > '9')
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
    *max = have_m ? m : comma ? n + 1 : n;
    if (*max == 0)
        *max = 1;
    return j;
}

struct frame {
    uint64_t total; /* estimated size of this group so far */
    uint64_t last;  /* size of its last atom (what a repetition copies) */
};

/* Refuses back-references and patterns whose bounded repetitions would make
 * regcomp build a huge automaton ("((a{1,255}){1,255}){1,255}"). */
static int regex_scan(const char *s, char *why, size_t cap)
{
    struct frame st[EXPR_MAX_REGEX + 2] = {{0, 0}};
    size_t sp = 0;
    for (size_t i = 0; s[i]; i++) {
        struct frame *f = &st[sp];
        uint64_t atom = 1, mx;
        size_t j;
        switch (s[i]) {
        case '\\':
            if (s[i + 1] >= '1' && s[i + 1] <= '9') {
                snprintf(why, cap, "back-references (\\1 to \\9) are not supported");
                return -1;
            }
            if (s[i + 1])
                i++;
            break;
        case '[':
            i = skip_bracket(s, i);
            break;
        case '(':
            st[++sp] = (struct frame){0, 0};
            continue;
        case ')':
            if (sp > 0) {
                atom = st[sp].total + 1;
                f = &st[--sp];
            }
            break;
        case '|':
            f->last = 0;
            continue;
        case '*':
        case '+':
        case '?':
            f->total += f->last;
            if (f->total > GROWTH_MAX)
                goto too_big;
            continue;
        case '{':
            if ((j = parse_bound(s, i, &mx)) == 0)
                break;
            i = j;
            f->total += f->last * (mx - 1);
            f->last *= mx;
            if (f->total > GROWTH_MAX || f->last > GROWTH_MAX)
                goto too_big;
            continue;
        default:
            break;
        }
        f->total += atom;
        f->last = atom;
        if (f->total > GROWTH_MAX)
            goto too_big;
    }
    return 0;
too_big:
    snprintf(why, cap, "repetition counts make the pattern too large");
    return -1;
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

int expr_glob_compile(const char *pattern, regex_t *out, struct err **errp)
{
    size_t n = strlen(pattern);
    if (n > GLOB_MAX)
        return err_status(errp, 400, "pattern is longer than %d bytes", GLOB_MAX);
    char *re = malloc(n * 6 + 3);
    if (!re)
        return err_status(errp, 0, "out of memory");
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
