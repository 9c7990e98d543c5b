/* Line logger: one write(2) per event, so lines from threads and processes
 * sharing a file never interleave. Format:
 *   2026-11-29T10:00:00.123Z INFO capsem-process[123]: message
 */
#ifndef CAPSEM_LOG_H
#define CAPSEM_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* fd is borrowed (stays open); -1 means stderr. */
void log_init(const char *prog, int fd, enum log_level level);
void log_set_level(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);
int log_get_fd(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
