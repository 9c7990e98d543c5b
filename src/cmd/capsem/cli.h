/* Internals of the capsem CLI binary (docs/cli.md): the command table, the
 * per-invocation context and the helpers commands share. Only this binary
 * prints; reusable logic lives in src/lib/cli/. */
#ifndef CAPSEM_CMD_CLI_H
#define CAPSEM_CMD_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "cli/args.h"
#include "cli/client.h"

/* Exit codes (surface.md section 4). */
#define EXIT_OK    0
#define EXIT_ERROR 1
#define EXIT_USAGE 2

struct cli_ctx {
    const char *uds_flag; /* --uds-path (borrowed from argv), or NULL */
    char *home;           /* $CAPSEM_HOME or ~/.capsem */
    char *run_dir;        /* $CAPSEM_RUN_DIR or <home>/run */
    char *socket;         /* service socket (logical path) */
    bool socket_explicit; /* --uds-path or CAPSEM_UDS_PATH: no auto-start */
    bool stderr_tty;
    bool explicit_start;       /* `service start`: ignore service.auto_start */
    struct cli_client *client; /* after cli_connect() */
};

/* Exit code of a command interrupted by SIGINT (doctor). */
#define EXIT_INTERRUPTED 130

/* Option ids shared by every command's option table. */
enum cli_opt_id {
    OPT_UDS = 1,
    OPT_NAME,
    OPT_PROFILE,
    OPT_CPU,
    OPT_RAM,
    OPT_ENV,
    OPT_TIMEOUT,
    OPT_QUIET,
    OPT_JSON,
    OPT_IMAGE,
    OPT_TAIL,
    OPT_SERIAL,
    OPT_PROCESS,
    OPT_FOLLOW,
    OPT_ALL,
    OPT_YES,
    OPT_SEARCH,
    OPT_DESC,
    OPT_QUICK,
    OPT_FORCE,
    OPT_NON_INTERACTIVE,
    OPT_ASSETS_FROM,
    OPT_NO_SERVICE,
    OPT_VMS,
    OPT_REMEMBER,
    OPT_ROTATE_CA,
    OPT_NET,
    OPT_DNS,
    OPT_LAYER,
    OPT_SINCE,
};

/* Parsed flag values; 0/NULL = not given. */
struct cmd_opts {
    const char *name;
    const char *profile;
    int64_t cpus;
    int64_t ram_mb;
    int64_t timeout;
    json_t *env; /* object, owned; NULL when no -e */
    bool quiet;
    bool json;
    const char *image;
    int64_t tail; /* 0: not given */
    bool serial, process, follow;
    bool all, yes;
    const char *search;
    const char *desc;
    bool quick;
    bool force, non_interactive, no_service;
    const char *assets_from;
    bool vms;
    bool rotate_ca; /* setup --rotate-ca */
    bool net;       /* logs --net */
    bool dns;       /* logs --dns */
    const char *layer; /* history/logs --layer */
    const char *since; /* history/logs --since */
    const char *remember; /* approve --remember */
};

struct cli_command {
    const char *name;
    const char *alias;       /* or NULL */
    const char *usage;       /* after "capsem " */
    const char *summary;     /* one line for the command list */
    const char *description; /* paragraph(s) for --help */
    const char *examples;    /* lines, each starting "  capsem ..." */
    const struct cli_opt *opts;
    size_t nopts;
    int stop_after;      /* see cli_args_parse() */
    int min_pos;         /* positional words required (tail included) */
    int max_pos;         /* -1: any number */
    const char *missing; /* names of the required slots, in order: "VM COMMAND" */
    int (*run)(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a);
    /* A command group (`image`, `service`): run is NULL and the next word
     * picks one of subs, whose names are "<group> <word>". */
    const struct cli_command *const *subs;
    size_t nsubs;
};

/* Command table entries, defined next to their implementations. */
extern const struct cli_command cmd_run, cmd_create, cmd_exec, cmd_shell, cmd_list, cmd_info,
    cmd_delete, cmd_version;
extern const struct cli_command cmd_resume, cmd_suspend, cmd_stop, cmd_restart, cmd_persist,
    cmd_purge;                                         /* cmd_state.c */
extern const struct cli_command cmd_logs, cmd_history; /* cmd_logs.c */
extern const struct cli_command cmd_fork, cmd_image;   /* cmd_image.c */
extern const struct cli_command cmd_cp;                /* cmd_cp.c */
extern const struct cli_command cmd_doctor;            /* cmd_doctor.c */
extern const struct cli_command cmd_setup;             /* cmd_setup.c */
extern const struct cli_command cmd_service;           /* cmd_service.c */
extern const struct cli_command cmd_asks, cmd_approve, cmd_deny; /* cmd_ask.c */

/* Common option rows, for the commands' tables. */
#define OPT_ROW_UDS                                                                                \
    {                                                                                              \
        OPT_UDS, "uds-path", 0, "PATH", "service socket (no auto-start)"                           \
    }
#define OPT_ROWS_VM_SPEC                                                                           \
    {OPT_IMAGE, "image", 0, "IMG", "start from image IMG (see capsem fork)"},                      \
        {OPT_PROFILE, "profile", 0, "P", "rootfs profile: code (default) or minimal"},             \
        {OPT_CPU, "cpu", 0, "N", "virtual CPUs (default: vm.cpus)"},                               \
        {OPT_RAM, "ram", 0, "SIZE", "memory: whole GiB (4) or 512M, 2G (default: vm.ram_mb)"},     \
    {                                                                                              \
        OPT_ENV, NULL, 'e', "K=V", "environment variable for the guest (repeatable)"               \
    }

/* Connects to the service once per run: first-use setup when
 * assets/manifest.json is missing, auto-start when nobody listens (both only
 * when the socket was not chosen explicitly). */
struct cli_client *cli_connect(struct cli_ctx *ctx, struct err **errp);
/* Same; first_use false skips the first-use setup (doctor, service). */
struct cli_client *cli_connect_ex(struct cli_ctx *ctx, bool first_use, struct err **errp);
/* A client for the socket without auto-start (NULL when nobody answers
 * GET /version); *version gets the service's version when not NULL. */
struct cli_client *cli_probe(struct cli_ctx *ctx, char **version);

/* Runs `capsem setup --non-interactive` (steps on stderr) when
 * <home>/assets/manifest.json is missing (cmd_setup.c). */
int cli_first_use(struct cli_ctx *ctx, struct err **errp);

/* Prints a rendered buffer on stdout and frees it; EXIT_OK or EXIT_ERROR. */
int cli_print_buf(struct buf *b);

/* Prints `Error: <message>` on stderr and returns EXIT_ERROR. */
int cli_fail(const struct err *e);
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes all bytes to fd; false on error (EPIPE included). */
bool cli_write(int fd, const void *data, size_t len);

/* The VM-spec flags as a create/run request body (fields only when given). */
int cli_spec_body(const struct cmd_opts *o, json_t *body);

/* GET /vms/<ref>/info; *out owned by the caller. */
int cli_vm_info(struct cli_ctx *ctx, const char *ref, json_t **out, struct err **errp);
/* POST (or other method) /vms/<ref><suffix> with body (may be NULL). */
int cli_vm_call(struct cli_ctx *ctx, const char *method, const char *ref, const char *suffix,
                const json_t *body, json_t **out, struct err **errp);

/* Attaches the local terminal to the terminal socket of the VM whose instance
 * socket is uds_path. Returns CLI_ATTACH_EXITED when the guest shell ended,
 * CLI_ATTACH_DETACHED on Ctrl-] (or end of input), 128 + N when signal N
 * ended the session, -1 on error. The terminal is restored in every case. */
#define CLI_ATTACH_EXITED   0
#define CLI_ATTACH_DETACHED 1
int cli_attach(const char *uds_path, struct err **errp);

/* Prints `Error: msg` and the command's usage on stderr; returns EXIT_USAGE. */
int cli_usage(const struct cli_command *c, const char *msg);

int capsem_main(int argc, char **argv);

#endif
