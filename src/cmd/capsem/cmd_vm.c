/* capsem create, list, info, delete, version. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "cli.h"
#include "cli/autostart.h"
#include "cli/render.h"

/* ---------- create ---------- */

static int run_create(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *body = json_object();
    json_auto_t *resp = NULL;
    if (!body || cli_spec_body(o, body) < 0 ||
        (o->name && json_object_set_new(body, "name", json_string(o->name)) < 0))
        return cli_failf("out of memory");
    struct cli_client *c = cli_connect(ctx, &e);
    if (!c || cli_client_call(c, "POST", "/vms/create", body, CLI_CALL_TIMEOUT, &resp, &e) < 0)
        return cli_fail(e);
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (!id)
        return cli_failf("unexpected answer from capsem-service: no VM id");
    printf("%s\n", id);
    return EXIT_OK;
}

static const struct cli_opt create_opts[] = {
    {OPT_NAME, "name", 'n', "NAME", "name the VM (makes it persistent)"},
    OPT_ROWS_VM_SPEC,
    OPT_ROW_UDS,
};

const struct cli_command cmd_create = {
    .name = "create",
    .usage = "create [-n NAME] [--image IMG] [--profile P] [--cpu N] [--ram SIZE] [-e K=V]...",
    .summary = "Create a VM and leave it running",
    .description = "Creates a VM and prints its id once it is up. Without -n the VM is\n"
                   "ephemeral (gets a generated name, destroyed when stopped); with -n it is\n"
                   "persistent (its disks survive stop, suspend and restarts). --image starts\n"
                   "from an image made with `capsem fork` (it does not make the VM persistent).",
    .examples = "  capsem create\n"
                "  capsem create -n dev --cpu 4 --ram 8\n"
                "  capsem create -n small --profile minimal --ram 512M -e DEBUG=1\n"
                "  capsem create -n work2 --image py-base\n",
    .opts = create_opts,
    .nopts = ARRAY_SIZE(create_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_create,
};

/* ---------- list ---------- */

static int run_list(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    if (!c || cli_client_call(c, "GET", "/vms/list", NULL, CLI_CALL_TIMEOUT, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : cli_render_list(resp, o->quiet, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt list_opts[] = {
    {OPT_QUIET, "quiet", 'q', NULL, "print VM ids only"},
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_list = {
    .name = "list",
    .alias = "ls",
    .usage = "list [-q] [--json]",
    .summary = "List VMs",
    .description = "Lists every VM, oldest first: id, name, state, type, CPUs, RAM and uptime.\n"
                   "A VM with a problem is followed by a line `  ! <problem>`.",
    .examples = "  capsem list\n"
                "  capsem ls -q | xargs capsem delete\n"
                "  capsem list --json\n",
    .opts = list_opts,
    .nopts = ARRAY_SIZE(list_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_list,
};

/* ---------- info ---------- */

static int run_info(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    if (cli_vm_info(ctx, a->pos[0], &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : cli_render_info(resp, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt info_opts[] = {
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_info = {
    .name = "info",
    .usage = "info VM [--json]",
    .summary = "Show details of a VM",
    .description = "Shows a VM's id, name, state, type, profile, image, base version, CPUs,\n"
                   "RAM, process id, creation time, uptime, disk use, problem and the actions\n"
                   "its state allows. VM is an id or a name.",
    .examples = "  capsem info dev\n"
                "  capsem info 3f2a1c9e-8d4b-4e21-9a6f-0b1c2d3e4f50\n"
                "  capsem info dev --json\n",
    .opts = info_opts,
    .nopts = ARRAY_SIZE(info_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_info,
};

/* ---------- delete ---------- */

/* Deletes one VM and prints its name; the name comes from info first so
 * that deleting by id still prints the name. */
static int delete_one(struct cli_ctx *ctx, const char *ref, struct err **errp)
{
    json_auto_t *info = NULL;
    if (cli_vm_info(ctx, ref, &info, errp) < 0)
        return -1;
    const char *id = json_string_value(json_object_get(info, "id"));
    const char *name = json_string_value(json_object_get(info, "name"));
    _cleanup_free_ char *path = cli_vm_path(id ? id : ref, "/delete", errp);
    if (!path)
        return -1;
    if (cli_client_call(ctx->client, "DELETE", path, NULL, CLI_CALL_TIMEOUT, NULL, errp) < 0)
        return -1;
    printf("%s\n", name ? name : ref);
    fflush(stdout);
    return 0;
}

static int run_delete(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    int rc = EXIT_OK;
    for (int i = 0; i < a->npos; i++) {
        _cleanup_err_ struct err *e = NULL;
        if (delete_one(ctx, a->pos[i], &e) < 0)
            rc = cli_fail(e);
    }
    return rc;
}

static const struct cli_opt delete_opts[] = {OPT_ROW_UDS};

const struct cli_command cmd_delete = {
    .name = "delete",
    .alias = "rm",
    .usage = "delete VM...",
    .summary = "Delete VMs",
    .description = "Deletes each VM in order, in any state: its process is killed and its\n"
                   "directory removed. Prints each deleted VM's name; exits 1 if any failed.",
    .examples = "  capsem delete dev\n"
                "  capsem rm code-3 code-4\n"
                "  capsem delete $(capsem list -q)\n",
    .opts = delete_opts,
    .nopts = ARRAY_SIZE(delete_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = -1,
    .missing = "VM",
    .run = run_delete,
};

/* ---------- version ---------- */

static int run_version(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    printf("capsem %s\n", CAPSEM_VERSION);
    fflush(stdout);
    _cleanup_err_ struct err *e = NULL;
    struct cli_client *c = cli_client_new(ctx->socket, CLI_MAX_RESPONSE, &e);
    _cleanup_free_ char *version = NULL;
    if (c && cli_service_version(c, &version, &e) == 0)
        printf("capsem-service %s\n", version);
    else
        printf("capsem-service: not running\n");
    cli_client_free(c);
    return EXIT_OK;
}

static const struct cli_opt version_opts[] = {OPT_ROW_UDS};

const struct cli_command cmd_version = {
    .name = "version",
    .usage = "version",
    .summary = "Show the CLI and service versions",
    .description = "Prints the CLI's version and the running service's version. Never starts\n"
                   "the service.",
    .examples = "  capsem version\n"
                "  capsem --uds-path /tmp/test.sock version\n",
    .opts = version_opts,
    .nopts = ARRAY_SIZE(version_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_version,
};
