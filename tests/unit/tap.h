/* Tiny TAP (Test Anything Protocol) producer for unit tests, header only.
 *
 *   plan(n)                  optional; otherwise done_testing() prints the plan
 *   ok(cond, fmt, ...)       one test point; failures print file:line as a diagnostic
 *   is_int(got, want, fmt, ...)   integer equality (values shown on failure)
 *   is_str(got, want, fmt, ...)   string equality (NULL-safe)
 *   is_mem(got, glen, want, wlen, fmt, ...)   byte-range equality
 *   diag(fmt, ...)           "# ..." comment line on stdout
 *   done_testing()           prints the plan if none was given; returns the exit status
 *                            for main (0 when every point passed and the count matched)
 *
 * Every macro evaluates its arguments once. The state is file-static: one TAP
 * stream per test program. Output goes to stdout, unbuffered enough for meson's
 * TAP parser (flushed after every line). */
#ifndef CAPSEM_TEST_TAP_H
#define CAPSEM_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int tap_run_ __attribute__((unused));
static int tap_failed_ __attribute__((unused));
static int tap_planned_ __attribute__((unused)) = -1;

static inline void plan(int n)
{
    tap_planned_ = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline __attribute__((format(printf, 1, 2))) void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static inline __attribute__((format(printf, 4, 0))) void
tap_vreport_(bool pass, const char *file, int line, const char *fmt, va_list ap)
{
    tap_run_++;
    if (!pass)
        tap_failed_++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_run_);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    if (!pass)
        printf("#   failed at %s:%d\n", file, line);
    fflush(stdout);
}

static inline __attribute__((format(printf, 4, 5))) bool tap_ok_(bool pass, const char *file,
                                                                 int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vreport_(pass, file, line, fmt, ap);
    va_end(ap);
    return pass;
}

static inline __attribute__((format(printf, 5, 6))) bool
tap_is_int_(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vreport_(got == want, file, line, fmt, ap);
    va_end(ap);
    if (got != want)
        diag("  got: %lld, expected: %lld", got, want);
    return got == want;
}

static inline __attribute__((format(printf, 5, 6))) bool
tap_is_str_(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
    bool pass = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    va_list ap;
    va_start(ap, fmt);
    tap_vreport_(pass, file, line, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("  got: \"%s\", expected: \"%s\"", got ? got : "(null)", want ? want : "(null)");
    return pass;
}

static inline __attribute__((format(printf, 7, 8))) bool tap_is_mem_(const void *got, size_t glen,
                                                                     const void *want, size_t wlen,
                                                                     const char *file, int line,
                                                                     const char *fmt, ...)
{
    bool pass = glen == wlen && (glen == 0 || memcmp(got, want, glen) == 0);
    va_list ap;
    va_start(ap, fmt);
    tap_vreport_(pass, file, line, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("  got %zu bytes, expected %zu bytes%s", glen, wlen,
             glen == wlen ? " (contents differ)" : "");
    return pass;
}

static inline int done_testing(void)
{
    if (tap_planned_ < 0)
        printf("1..%d\n", tap_run_);
    else if (tap_planned_ != tap_run_)
        diag("planned %d tests but ran %d", tap_planned_, tap_run_);
    fflush(stdout);
    if (tap_failed_)
        diag("%d of %d tests failed", tap_failed_, tap_run_);
    return (tap_failed_ || (tap_planned_ >= 0 && tap_planned_ != tap_run_)) ? 1 : 0;
}

#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                                     \
    tap_is_int_((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str_((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_mem(got, glen, want, wlen, ...)                                                         \
    tap_is_mem_((got), (glen), (want), (wlen), __FILE__, __LINE__, __VA_ARGS__)

#endif
