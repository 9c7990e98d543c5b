/* Small helpers shared by host and guest code: cleanup attributes, ownership
 * moves, EINTR-safe I/O, checked number parsing, time. No allocation unless
 * stated. */
#ifndef CAPSEM_UTIL_H
#define CAPSEM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/err.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

void util_freep(void *p);
void util_closep(int *fd);
void util_fclosep(FILE **f);

#define _cleanup_free_ __attribute__((cleanup(util_freep)))
#define _cleanup_close_ __attribute__((cleanup(util_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(util_fclosep)))

/* Ownership moves: return the value and leave the source empty. */
static inline void *util_steal_pointer(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) util_steal_pointer(pp)

static inline int steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

/* EINTR is retried here and nowhere else. Return -1 with errno set. */
ssize_t fd_read_retry(int fd, void *buf, size_t len);
ssize_t fd_write_retry(int fd, const void *buf, size_t len);
/* Writes all of buf on a blocking fd; -1 on error. */
int fd_write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes on a blocking fd; returns bytes read (< len on EOF) or -1. */
ssize_t fd_read_full(int fd, void *buf, size_t len);
int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd);

/* Whole-file helpers. file_read_all() fails with EFBIG past max bytes; the
 * result is NUL-terminated (not counted in *len) and owned by the caller. */
int file_read_all(const char *path, size_t max, char **out, size_t *len, struct err **errp);
/* Writes via temp file + fsync + rename + directory fsync. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      struct err **errp);
/* mkdir -p with mode for every created component. */
int mkdir_p(const char *path, mode_t mode, struct err **errp);

/* Parses a whole string as a base-10 integer within [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Bounded copy; always NUL-terminates; returns -1 if truncated. */
int str_copy(char *dst, size_t cap, const char *src);
/* The value of an ASCII hex digit (either case), else -1 (also for EOF and
 * bytes >= 0x80 passed as negative chars). */
static inline int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

uint64_t time_mono_ms(void);
uint64_t time_mono_us(void);
uint64_t time_real_ms(void);
/* "2026-11-29T10:00:00Z" into buf (>= 21 bytes). */
void time_format_rfc3339(uint64_t unix_secs, char *buf, size_t cap);

#endif
