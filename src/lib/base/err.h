/* Error contract (docs/errors.md).
 *
 * A function that can fail returns a negative value (or NULL) and, when the
 * caller passed a non-NULL `struct err **errp`, stores a heap-allocated error
 * there. `*errp` must be NULL on entry. Each layer may prepend context with
 * err_prefix(); the error is printed once, at the top (CLI main, API response,
 * log line), then freed with err_free() (or the _cleanup_err_ attribute).
 *
 * `code` is an errno value (0 when none applies). `status` is an optional
 * HTTP-like class (400, 404, 409, ...) that API layers use to pick a response
 * status; 0 means "internal" (500).
 */
#ifndef CAPSEM_ERR_H
#define CAPSEM_ERR_H

#include <stddef.h>

struct err {
    int code;
    int status;
    char *msg; /* owned, NUL-terminated, never NULL */
};

/* Sets *errp (if errp != NULL) and returns -1. Never fails: on allocation
 * failure a static "out of memory" error is stored instead. */
int err_set(struct err **errp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with an API status class attached. */
int err_status(struct err **errp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like err_set() with code = errno and ": strerror(errno)" appended. */
int err_sys(struct err **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "<context>: " to an existing error; no-op when errp or *errp is NULL. */
void err_prefix(struct err **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Moves *src into *dst (dst must hold NULL); *src becomes NULL. */
void err_move(struct err **dst, struct err **src);

const char *err_msg(const struct err *e);
void err_free(struct err *e);
void err_freep(struct err **e);

#define _cleanup_err_ __attribute__((cleanup(err_freep)))

#endif
