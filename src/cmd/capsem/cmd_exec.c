/* capsem exec and capsem run: one command in a VM, output relayed byte for
 * byte, exit code passed through (surface.md section 4 "exec/run output"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "cli.h"
#include "cli/format.h"
#include "cli/render.h"

/* Writes the guest's output and the notes; returns the guest's exit code. */
static int relay_result(const json_t *resp, int64_t timeout)
{
    _cleanup_err_ struct err *e = NULL;
    struct cli_exec_result r;
    if (cli_exec_result_parse(resp, &r, &e) < 0)
        return cli_fail(e);
    bool ok = cli_write(STDOUT_FILENO, r.out, r.out_len);
    ok = cli_write(STDERR_FILENO, r.err, r.err_len) && ok;
    struct buf notes;
    buf_init(&notes, 4096);
    if (cli_exec_notes(&r, timeout, &notes) == 0)
        ok = cli_write(STDERR_FILENO, buf_head(&notes), notes.len) && ok;
    buf_free(&notes);
    if (!ok)
        return cli_failf("writing output: %s", strerror(errno));
    return r.exit_code;
}

static json_t *command_body(const struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_free_ char *cmd = cli_join_words(a->pos + a->tail, a->npos - a->tail);
    json_t *body = json_object();
    if (!cmd || !body || json_object_set_new(body, "command", json_string(cmd)) < 0 ||
        (o->timeout && json_object_set_new(body, "timeout_secs", json_integer(o->timeout)) < 0)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* ---------- exec ---------- */

static int run_exec(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_t *body = command_body(o, a);
    if (!body)
        return cli_failf("out of memory");
    json_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    _cleanup_free_ char *path = c ? cli_vm_path(a->pos[0], "/exec", &e) : NULL;
    int rc = path && cli_client_call(c, "POST", path, body, CLI_NO_TIMEOUT, &resp, &e) == 0
                 ? relay_result(resp, o->timeout)
                 : cli_fail(e);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static const struct cli_opt exec_opts[] = {
    {OPT_TIMEOUT, "timeout", 0, "SECS", "kill the command after SECS (default: 300)"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_exec = {
    .name = "exec",
    .usage = "exec VM [--timeout SECS] [--] COMMAND...",
    .summary = "Run a command in a running VM",
    .description = "Runs COMMAND with /bin/bash -c in the VM (cwd /root, no stdin, no TTY).\n"
                   "The words of COMMAND are joined with single spaces; flags end at the first\n"
                   "COMMAND word. Guest stdout goes to stdout, guest stderr to stderr, and the\n"
                   "exit status is the command's (124 on timeout, 128+N when killed by signal N).",
    .examples = "  capsem exec dev -- ls -la /root\n"
                "  capsem exec dev --timeout 600 make test\n"
                "  capsem exec dev 'cd src && git status'\n",
    .opts = exec_opts,
    .nopts = ARRAY_SIZE(exec_opts),
    .stop_after = 1,
    .min_pos = 2,
    .max_pos = -1,
    .missing = "VM COMMAND",
    .run = run_exec,
};

/* ---------- run ---------- */

static int run_run(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_t *body = command_body(o, a);
    if (!body || cli_spec_body(o, body) < 0) {
        json_decref(body);
        return cli_failf("out of memory");
    }
    json_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    /* Booting takes a while; say so only to a person watching stderr. */
    bool progress = c && ctx->stderr_tty;
    if (progress)
        fputs("Starting VM...", stderr);
    int crc = c ? cli_client_call(c, "POST", "/run", body, CLI_NO_TIMEOUT, &resp, &e) : -1;
    if (progress)
        fputs("\r\033[K", stderr);
    int rc = crc == 0 ? relay_result(resp, o->timeout) : cli_fail(e);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static const struct cli_opt run_opts[] = {
    OPT_ROWS_VM_SPEC,
    {OPT_TIMEOUT, "timeout", 0, "SECS", "kill the command after SECS (default: 300)"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_run = {
    .name = "run",
    .usage = "run [--image IMG] [--profile P] [--cpu N] [--ram SIZE] [-e K=V]... "
             "[--timeout SECS] [--] COMMAND...",
    .summary = "Run a command in a fresh VM, then destroy it",
    .description = "Boots a fresh ephemeral VM, runs COMMAND in it like `capsem exec`, and\n"
                   "destroys the VM (also on error or interrupt). Flags end at the first\n"
                   "COMMAND word. Output and exit status are the command's.",
    .examples = "  capsem run -- uname -a\n"
                "  capsem run --profile minimal --ram 512M 'echo hello; id'\n"
                "  capsem run -e TOKEN=abc --timeout 60 -- python3 -c 'print(1)'\n",
    .opts = run_opts,
    .nopts = ARRAY_SIZE(run_opts),
    .stop_after = 0,
    .min_pos = 1,
    .max_pos = -1,
    .missing = "COMMAND",
    .run = run_run,
};
