/* capsem fork and capsem image list|info|delete: reusable VM templates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli.h"
#include "cli/render.h"

/* ---------- fork ---------- */

static int run_fork(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *body = json_pack("{s:s}", "name", a->pos[1]);
    json_auto_t *resp = NULL;
    if (!body || (o->desc && json_object_set_new(body, "description", json_string(o->desc)) < 0))
        return cli_failf("IMAGE and -d must be valid UTF-8");
    if (cli_vm_call(ctx, "POST", a->pos[0], "/fork", body, &resp, &e) < 0)
        return cli_fail(e);
    const char *name = json_string_value(json_object_get(resp, "name"));
    printf("%s\n", name ? name : a->pos[1]);
    return EXIT_OK;
}

static const struct cli_opt fork_opts[] = {
    {OPT_DESC, "description", 'd', "DESC", "a description shown by `capsem image list`"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_fork = {
    .name = "fork",
    .usage = "fork VM IMAGE [-d DESC]",
    .summary = "Save a VM's disks as image IMAGE",
    .description = "Copies the VM's system disk and workspace into a new image named IMAGE,\n"
                   "which `create --image`, `run --image` and `shell --image` start from. A\n"
                   "running VM is paused while its disks are copied. Prints IMAGE.",
    .examples = "  capsem fork dev py-base -d 'python 3.12 + deps'\n"
                "  capsem create -n dev2 --image py-base\n",
    .opts = fork_opts,
    .nopts = ARRAY_SIZE(fork_opts),
    .stop_after = -1,
    .min_pos = 2,
    .max_pos = 2,
    .missing = "VM IMAGE",
    .run = run_fork,
};

/* ---------- image list ---------- */

static int run_image_list(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    if (!c || cli_client_call(c, "GET", "/images/list", NULL, CLI_CALL_TIMEOUT, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : cli_render_images(resp, o->quiet, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt image_list_opts[] = {
    {OPT_QUIET, "quiet", 'q', NULL, "print image names only"},
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

static const struct cli_command cmd_image_list = {
    .name = "image list",
    .alias = "image ls",
    .usage = "image list [-q] [--json]",
    .summary = "List images",
    .description = "Lists images by name: base asset version, profile, size, creation time\n"
                   "and description.",
    .examples = "  capsem image list\n"
                "  capsem image ls -q\n",
    .opts = image_list_opts,
    .nopts = ARRAY_SIZE(image_list_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_image_list,
};

/* ---------- image info ---------- */

static int run_image_info(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    _cleanup_free_ char *path = c ? cli_image_path(a->pos[0], "/info", &e) : NULL;
    if (!path || cli_client_call(c, "GET", path, NULL, CLI_CALL_TIMEOUT, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : cli_render_image_info(resp, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt image_info_opts[] = {
    {OPT_JSON, "json", 0, NULL, "print the service's JSON"},
    OPT_ROW_UDS,
};

static const struct cli_command cmd_image_info = {
    .name = "image info",
    .usage = "image info IMAGE [--json]",
    .summary = "Show details of an image",
    .description = "Shows an image's name, description, profile, base asset version, arch,\n"
                   "size, creation time, the VM it was forked from and the VMs created from it.",
    .examples = "  capsem image info py-base\n"
                "  capsem image info py-base --json\n",
    .opts = image_info_opts,
    .nopts = ARRAY_SIZE(image_info_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "IMAGE",
    .run = run_image_info,
};

/* ---------- image delete ---------- */

static int delete_image(struct cli_ctx *ctx, const char *name, struct err **errp)
{
    struct cli_client *c = cli_connect(ctx, errp);
    _cleanup_free_ char *path = c ? cli_image_path(name, "/delete", errp) : NULL;
    if (!path || cli_client_call(c, "DELETE", path, NULL, CLI_CALL_TIMEOUT, NULL, errp) < 0)
        return -1;
    printf("%s\n", name);
    fflush(stdout);
    return 0;
}

static int run_image_delete(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    int rc = EXIT_OK;
    for (int i = 0; i < a->npos; i++) {
        _cleanup_err_ struct err *e = NULL;
        if (delete_image(ctx, a->pos[i], &e) < 0)
            rc = cli_fail(e);
    }
    return rc;
}

static const struct cli_opt image_delete_opts[] = {OPT_ROW_UDS};

static const struct cli_command cmd_image_delete = {
    .name = "image delete",
    .alias = "image rm",
    .usage = "image delete IMAGE...",
    .summary = "Delete images",
    .description = "Deletes each image in order and prints its name. An image that VMs were\n"
                   "created from cannot be deleted while they exist. Exits 1 if any failed.",
    .examples = "  capsem image delete py-base\n"
                "  capsem image rm old-1 old-2\n",
    .opts = image_delete_opts,
    .nopts = ARRAY_SIZE(image_delete_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = -1,
    .missing = "IMAGE",
    .run = run_image_delete,
};

static const struct cli_command *const image_subs[] = {&cmd_image_list, &cmd_image_info,
                                                       &cmd_image_delete};

const struct cli_command cmd_image = {
    .name = "image",
    .usage = "image COMMAND [ARGS...]",
    .summary = "Manage images",
    .description = "Images are reusable VM templates made with `capsem fork`.",
    .examples = "  capsem image list\n"
                "  capsem image info py-base\n"
                "  capsem image delete py-base\n",
    .subs = image_subs,
    .nsubs = ARRAY_SIZE(image_subs),
};
