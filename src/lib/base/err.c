#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char oom_msg[] = "out of memory";
static struct err oom_err = {.code = ENOMEM, .status = 0, .msg = oom_msg};

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static int err_store(struct err **errp, int code, int status, char *msg)
{
    if (!errp) {
        free(msg);
        return -1;
    }
    if (*errp) {
        /* Contract violation: keep the first error, drop the second. */
        free(msg);
        return -1;
    }
    struct err *e = msg ? malloc(sizeof(*e)) : NULL;
    if (!e) {
        free(msg);
        *errp = &oom_err;
        return -1;
    }
    e->code = code;
    e->status = status;
    e->msg = msg;
    *errp = e;
    return -1;
}

int err_set(struct err **errp, int code, const char *fmt, ...)
{
    if (!errp)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return err_store(errp, code, 0, msg);
}

int err_status(struct err **errp, int status, const char *fmt, ...)
{
    if (!errp)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return err_store(errp, 0, status, msg);
}

int err_sys(struct err **errp, const char *fmt, ...)
{
    int saved = errno;
    if (!errp) {
        errno = saved;
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    char *head = vformat(fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (head) {
        const char *reason = strerror(saved);
        size_t n = strlen(head) + strlen(reason) + 3;
        msg = malloc(n);
        if (msg)
            snprintf(msg, n, "%s: %s", head, reason);
        free(head);
    }
    err_store(errp, saved, 0, msg);
    errno = saved;
    return -1;
}

void err_prefix(struct err **errp, const char *fmt, ...)
{
    if (!errp || !*errp || *errp == &oom_err)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *head = vformat(fmt, ap);
    va_end(ap);
    if (!head)
        return;
    struct err *e = *errp;
    size_t n = strlen(head) + strlen(e->msg) + 3;
    char *msg = malloc(n);
    if (msg) {
        snprintf(msg, n, "%s: %s", head, e->msg);
        free(e->msg);
        e->msg = msg;
    }
    free(head);
}

void err_move(struct err **dst, struct err **src)
{
    if (!src || !*src)
        return;
    if (!dst || *dst) {
        err_free(*src);
        *src = NULL;
        return;
    }
    *dst = *src;
    *src = NULL;
}

const char *err_msg(const struct err *e)
{
    return e ? e->msg : "unknown error";
}

void err_free(struct err *e)
{
    if (!e || e == &oom_err)
        return;
    free(e->msg);
    free(e);
}

void err_freep(struct err **e)
{
    if (e && *e) {
        err_free(*e);
        *e = NULL;
    }
}
