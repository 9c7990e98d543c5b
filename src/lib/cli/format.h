/* Pure formatting and parsing helpers of the capsem CLI (surface.md section 4
 * "Output formats"): sizes, uptimes, aligned tables, command words, the
 * terminal socket path. No I/O; nothing here prints. */
#ifndef CAPSEM_CLI_FORMAT_H
#define CAPSEM_CLI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* `--ram` value to MiB: a bare integer is GiB ("4" -> 4096); a suffix M or G
 * (either case, optional trailing "B"/"iB") gives MiB or GiB ("512M" -> 512,
 * "2G" -> 2048). Returns 0, or -1 (errp: message naming the value) when the
 * value is malformed, zero or larger than 1 TiB. */
int cli_parse_ram_mb(const char *s, int64_t *mb, struct err **errp);

/* Whole positive number within [1, max] for flags like --cpu and --timeout;
 * -1 with a message naming `flag` otherwise. */
int cli_parse_count(const char *flag, const char *s, int64_t max, int64_t *out, struct err **errp);

/* Splits "KEY=VALUE" at the first '='. KEY must be non-empty; VALUE may be
 * empty. *key is malloc'd (caller frees); *value points into kv. */
int cli_parse_env(const char *kv, char **key, const char **value, struct err **errp);

/* Uptime as `45s`, `12m`, `3h04m`, `2d03h`; negative means not running: `-`.
 * buf needs 16 bytes. */
void cli_format_uptime(int64_t secs, char *buf, size_t cap);

/* 1024-based size: `512B`, `1.5K`, `340M`, `2.0G` (one decimal below 10). */
void cli_format_size(uint64_t bytes, char *buf, size_t cap);

/* Joins words with one space. Returns a malloc'd string (caller frees),
 * NULL on ENOMEM. n == 0 gives "". */
char *cli_join_words(const char *const *words, int n);

/* The terminal socket of a VM: its instance socket path with a trailing
 * ".sock" replaced by "-ws.sock" ("-ws.sock" appended when there is no such
 * suffix). malloc'd; NULL on ENOMEM. */
char *cli_ws_socket_path(const char *uds_path);

/* Display width of a UTF-8 string in code points (every cell is treated as
 * one column wide). */
size_t cli_text_width(const char *s);

/* A table (the first row added is the header): left-aligned columns separated by two spaces, each
 * as wide as its widest cell; the last column is not padded. A row may carry note lines, printed
 * verbatim after it and ignored for widths. */
struct cli_table;

struct cli_table *cli_table_new(size_t ncols);
void cli_table_free(struct cli_table *t);
/* Copies ncols cells (NULL cells print as ""). -1 on ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *cells);
/* Attaches a note line to the last row added (copied). -1 if no row/ENOMEM. */
int cli_table_note(struct cli_table *t, const char *line);
size_t cli_table_rows(const struct cli_table *t);
/* Appends the rendered table, every line ending in '\n'. */
int cli_table_render(const struct cli_table *t, struct buf *out);

/* `cp` arguments: returns 1 when arg is `VM:PATH` (a ':' with a non-empty
 * part before it that holds no '/'; write `./a:b` for a host file named
 * "a:b"), with *vm malloc'd and *path pointing into arg; 0 for a host path;
 * -1 on ENOMEM. */
int cli_split_remote(const char *arg, char **vm, const char **path);

/* The last component of path (trailing slashes ignored); points into path. */
const char *cli_base_name(const char *path);

/* Complete lines of a log text (a last line without '\n' is left out, it
 * may still be growing). */
struct cli_lines {
    char *text;        /* owned copy, NULs where the newlines were */
    const char **line; /* n pointers into text */
    size_t n;
};

int cli_lines_split(const char *text, struct cli_lines *l);
void cli_lines_free(struct cli_lines *l);

/* Two successive tails of the same log: the index in cur of the first line
 * that prev did not have, found as the longest suffix of prev that is a
 * prefix of cur (0 when they share nothing: everything in cur is new). */
size_t cli_lines_new_start(const struct cli_lines *prev, const struct cli_lines *cur);

/* `--since` of history and logs: a relative age ("90s", "10m", "2h", "3d")
 * becomes now_ms minus that age, in Unix ms; anything else (RFC 3339, Unix
 * ms) is passed through for the service to check. Writes the query value to
 * out. -1 (EINVAL, message naming the value) when empty, when an age is 0
 * or over 100 years, or when out is too small. */
int cli_since_value(const char *s, int64_t now_ms, char *out, size_t cap, struct err **errp);

#endif
