#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

static char log_prog[64] = "capsem";
static int log_fd = -1;
static enum log_level log_max = LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *prog, int fd, enum log_level level)
{
    str_copy(log_prog, sizeof(log_prog), prog);
    log_fd = fd;
    log_max = level;
}

void log_set_level(enum log_level level)
{
    log_max = level;
}

int log_get_fd(void)
{
    return log_fd < 0 ? STDERR_FILENO : log_fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_max)
        return;
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s %s[%d]: ",
                  ts.tv_nsec / 1000000, level_names[level], log_prog, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + MIN((size_t)m, sizeof(line) - (size_t)n - 2);
    line[len++] = '\n';
    (void)fd_write_all(log_get_fd(), line, len);
}
