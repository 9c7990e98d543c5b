/* capsem shell: an interactive terminal in a VM (surface.md section 4
 * "shell"). The terminal session itself is in attach.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli.h"

struct target {
    json_t *vm;     /* SandboxInfo or ProvisionResponse of the VM to attach to (owned) */
    bool temporary; /* created here for this session: delete it afterwards */
};

static bool has_spec_flags(const struct cmd_opts *o)
{
    return o->image || o->profile || o->cpus || o->ram_mb || o->env;
}

static int create_vm(struct cli_ctx *ctx, const struct cmd_opts *o, json_t **out, struct err **errp)
{
    json_t *body = json_object();
    int rc = body && cli_spec_body(o, body) == 0 ? 0 : -1;
    if (rc == 0 && o->name)
        rc = json_object_set_new(body, "name", json_string(o->name));
    else if (rc == 0) /* ephemeral: the service deletes it if we die */
        rc = json_object_set_new(body, "owner_pid", json_integer((json_int_t)getpid()));
    if (rc < 0) {
        json_decref(body);
        return err_set(errp, ENOMEM, "out of memory");
    }
    rc = cli_client_call(ctx->client, "POST", "/vms/create", body, CLI_CALL_TIMEOUT, out, errp);
    json_decref(body);
    return rc;
}

/* A Stopped or Suspended VM is resumed before attaching. */
static int ensure_running(struct cli_ctx *ctx, json_t **vm, struct err **errp)
{
    const char *status = json_string_value(json_object_get(*vm, "status"));
    if (!status || (strcmp(status, "Stopped") != 0 && strcmp(status, "Suspended") != 0))
        return 0;
    const char *id = json_string_value(json_object_get(*vm, "id"));
    _cleanup_free_ char *path = cli_vm_path(id ? id : "", "/resume", errp);
    json_t *resp = NULL;
    if (!path ||
        cli_client_call(ctx->client, "POST", path, NULL, CLI_CALL_TIMEOUT, &resp, errp) < 0)
        return -1;
    json_decref(*vm);
    *vm = resp;
    return 0;
}

static int find_target(struct cli_ctx *ctx, const struct cmd_opts *o, const char *ref,
                       struct target *t, struct err **errp)
{
    _cleanup_err_ struct err *e = NULL;
    if (!cli_connect(ctx, errp))
        return -1;
    if (!ref && !o->name) {
        t->temporary = true;
        return create_vm(ctx, o, &t->vm, errp);
    }
    if (cli_vm_info(ctx, ref ? ref : o->name, &t->vm, &e) == 0)
        return ensure_running(ctx, &t->vm, errp);
    if (ref || e->status != 404) {
        err_move(errp, &e);
        return -1;
    }
    return create_vm(ctx, o, &t->vm, errp); /* -n NAME that does not exist yet */
}

static int delete_vm(struct cli_ctx *ctx, const char *id)
{
    _cleanup_err_ struct err *e = NULL;
    _cleanup_free_ char *path = cli_vm_path(id, "/delete", &e);
    if (!path || cli_client_call(ctx->client, "DELETE", path, NULL, CLI_CALL_TIMEOUT, NULL, &e) < 0)
        return cli_fail(e);
    return EXIT_OK;
}

static int run_shell(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    const char *ref = a->npos ? a->pos[0] : NULL;
    if (ref && (o->name || has_spec_flags(o)))
        return cli_usage(&cmd_shell, "give either a VM to attach to or -n/--image/--profile/"
                                     "--cpu/--ram/-e to create one, not both");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return cli_failf("shell needs a terminal");
    _cleanup_err_ struct err *e = NULL;
    struct target t = {0};
    if (find_target(ctx, o, ref, &t, &e) < 0)
        return cli_fail(e);
    const char *id = json_string_value(json_object_get(t.vm, "id"));
    const char *name = json_string_value(json_object_get(t.vm, "name"));
    const char *uds = json_string_value(json_object_get(t.vm, "uds_path"));
    int rc = EXIT_OK;
    int arc = uds ? cli_attach(uds, &e) : err_set(&e, EPROTO, "the service gave no VM socket");
    if (arc < 0)
        rc = cli_fail(e);
    else if (arc > CLI_ATTACH_DETACHED)
        rc = arc; /* ended by a signal: 128 + N */
    if (t.temporary && id) {
        int drc = delete_vm(ctx, id);
        rc = rc == EXIT_OK ? drc : rc;
    } else if (arc >= 0) {
        fprintf(stderr, "%sDetached from %s; still running.\n",
                arc == CLI_ATTACH_DETACHED ? "\r\n" : "", name ? name : ref);
    }
    json_decref(t.vm);
    return rc;
}

static const struct cli_opt shell_opts[] = {
    {OPT_NAME, "name", 'n', "NAME", "attach to VM NAME, creating it (persistent) if absent"},
    OPT_ROWS_VM_SPEC,
    OPT_ROW_UDS,
};

const struct cli_command cmd_shell = {
    .name = "shell",
    .usage = "shell [VM] [-n NAME] [--image IMG] [--profile P] [--cpu N] [--ram SIZE] "
             "[-e K=V]...",
    .summary = "Open an interactive shell in a VM",
    .description = "Opens a login shell in a VM on this terminal (needs a TTY).\n"
                   "With VM: attaches to it (resuming it first if Stopped or Suspended).\n"
                   "With -n NAME: attaches to NAME, creating it as a persistent VM if absent.\n"
                   "With neither: creates a temporary VM and deletes it when the session ends.\n"
                   "Ctrl-] detaches; the session also ends when the guest shell exits.",
    .examples = "  capsem shell\n"
                "  capsem shell dev\n"
                "  capsem shell -n scratch --profile minimal --ram 1\n"
                "  capsem shell --image py-base\n",
    .opts = shell_opts,
    .nopts = ARRAY_SIZE(shell_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 1,
    .run = run_shell,
};
