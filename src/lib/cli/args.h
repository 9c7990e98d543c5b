/* Command-line option parsing for the capsem CLI (docs/cli.md).
 *
 * One pass over argv[0..argc) of a command (argv[0] is the first word after
 * the command name). Supported forms: `--long VALUE`, `--long=VALUE`,
 * `-s VALUE`, `-sVALUE`, clusters of value-less short flags (`-qy`), `--`
 * (everything after it is positional) and a lone `-` (positional).
 * `-h`/`--help` anywhere before the tail asks for help.
 *
 * stop_after >= 0 makes the parser stop treating words as flags at the
 * (stop_after + 1)-th positional word: that word and every word after it
 * form the tail (`exec VM [--timeout S] COMMAND...` uses 1, `run` uses 0).
 * stop_after < 0 lets flags and positionals mix freely.
 *
 * No allocation except out->pos (free with cli_args_free); all strings
 * point into argv. */
#ifndef CAPSEM_CLI_ARGS_H
#define CAPSEM_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

struct cli_opt {
    int id;            /* caller's identifier, passed back to the callback */
    const char *name;  /* long name without "--", or NULL */
    char short_name;   /* 0 when none */
    const char *value; /* value placeholder for help ("SECS"); NULL: a flag */
    const char *help;  /* one-line description */
};

/* Called once per occurrence, in order. value is NULL for flags. A negative
 * return (with *errp set) aborts parsing as a usage error. */
typedef int (*cli_opt_fn)(void *ctx, const struct cli_opt *opt, const char *value,
                          struct err **errp);

struct cli_args {
    const char **pos; /* positional words, then the tail; NULL-terminated */
    int npos;         /* all positional words including the tail */
    int tail;         /* index in pos where the tail starts (npos when none) */
};

#define CLI_ARGS_HELP 1

/* Returns 0, CLI_ARGS_HELP when -h/--help was given, or -1 on a usage error
 * (unknown flag, missing value, callback failure) with *errp set. */
int cli_args_parse(const struct cli_opt *opts, size_t nopts, int stop_after, int argc, char **argv,
                   cli_opt_fn fn, void *ctx, struct cli_args *out, struct err **errp);
void cli_args_free(struct cli_args *a);

/* The option list for help, one "  -n, --name NAME   help" line per option,
 * aligned. Returns a malloc'd string (caller frees), NULL on ENOMEM. */
char *cli_opts_help(const struct cli_opt *opts, size_t nopts);

#endif
