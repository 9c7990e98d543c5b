/* capsem resume, suspend, stop, restart, persist, purge: VM state changes
 * (surface.md sections 3 and 4). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/util.h"
#include "cli.h"

static const char *str_of(const json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* ---------- resume ---------- */

static int resume_vm(struct cli_ctx *ctx, const char *ref, json_t **out, struct err **errp)
{
    return cli_vm_call(ctx, "POST", ref, "/resume", NULL, out, errp);
}

static int run_resume(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    if (resume_vm(ctx, a->pos[0], &resp, &e) < 0)
        return cli_fail(e);
    const char *id = str_of(resp, "id");
    if (!id)
        return cli_failf("unexpected answer from capsem-service: no VM id");
    printf("%s\n", id);
    return EXIT_OK;
}

static const struct cli_opt ref_only_opts[] = {OPT_ROW_UDS};

const struct cli_command cmd_resume = {
    .name = "resume",
    .usage = "resume VM",
    .summary = "Start a stopped or suspended VM",
    .description = "Brings a persistent VM back to Running and prints its id: a Suspended VM\n"
                   "continues where it was (memory restored), a Stopped or Defunct one boots\n"
                   "from its disk. Resuming a Running VM does nothing. Does not attach; use\n"
                   "`capsem shell VM` for that.",
    .examples = "  capsem resume dev\n"
                "  capsem resume dev && capsem exec dev -- uptime\n",
    .opts = ref_only_opts,
    .nopts = ARRAY_SIZE(ref_only_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_resume,
};

/* ---------- suspend ---------- */

static int run_suspend(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *info = NULL;
    if (cli_vm_info(ctx, a->pos[0], &info, &e) < 0)
        return cli_fail(e);
    const char *id = str_of(info, "id");
    if (cli_vm_call(ctx, "POST", id ? id : a->pos[0], "/pause", NULL, NULL, &e) < 0)
        return cli_fail(e);
    printf("%s\n", str_of(info, "name") ? str_of(info, "name") : a->pos[0]);
    return EXIT_OK;
}

const struct cli_command cmd_suspend = {
    .name = "suspend",
    .usage = "suspend VM",
    .summary = "Save a persistent VM's memory to disk and stop it",
    .description = "Suspends a running persistent VM: guest file systems are synced, its\n"
                   "memory is saved, and its process exits. `capsem resume VM` continues it.\n"
                   "Ephemeral VMs cannot be suspended (persist them first). Prints the name.",
    .examples = "  capsem suspend dev\n"
                "  capsem suspend dev && capsem resume dev\n",
    .opts = ref_only_opts,
    .nopts = ARRAY_SIZE(ref_only_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_suspend,
};

/* ---------- stop ---------- */

/* Stops one VM and prints its name (looked up first, so that stopping by id
 * still prints the name). */
static int stop_one(struct cli_ctx *ctx, const char *ref, struct err **errp)
{
    json_auto_t *info = NULL;
    if (cli_vm_info(ctx, ref, &info, errp) < 0)
        return -1;
    const char *id = str_of(info, "id");
    if (cli_vm_call(ctx, "POST", id ? id : ref, "/stop", NULL, NULL, errp) < 0)
        return -1;
    printf("%s\n", str_of(info, "name") ? str_of(info, "name") : ref);
    fflush(stdout);
    return 0;
}

static int run_stop(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    int rc = EXIT_OK;
    for (int i = 0; i < a->npos; i++) {
        _cleanup_err_ struct err *e = NULL;
        if (stop_one(ctx, a->pos[i], &e) < 0)
            rc = cli_fail(e);
    }
    return rc;
}

const struct cli_command cmd_stop = {
    .name = "stop",
    .usage = "stop VM...",
    .summary = "Power off VMs",
    .description = "Stops each VM in order: the guest gets vm.shutdown_grace_secs to power\n"
                   "off, then it is killed. A persistent VM becomes Stopped and keeps its\n"
                   "disks; an ephemeral VM is destroyed. Prints each VM's name; exits 1 if any\n"
                   "failed (the others are still stopped).",
    .examples = "  capsem stop dev\n"
                "  capsem stop code-3 code-4\n",
    .opts = ref_only_opts,
    .nopts = ARRAY_SIZE(ref_only_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = -1,
    .missing = "VM",
    .run = run_stop,
};

/* ---------- restart ---------- */

static int run_restart(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *info = NULL;
    json_auto_t *resp = NULL;
    if (cli_vm_info(ctx, a->pos[0], &info, &e) < 0)
        return cli_fail(e);
    if (!json_is_true(json_object_get(info, "persistent")))
        return cli_failf("only persistent VMs can be restarted");
    const char *id = str_of(info, "id") ? str_of(info, "id") : a->pos[0];
    const char *status = str_of(info, "status");
    if (status && strcmp(status, "Running") == 0 &&
        cli_vm_call(ctx, "POST", id, "/stop", NULL, NULL, &e) < 0)
        return cli_fail(e);
    if (resume_vm(ctx, id, &resp, &e) < 0)
        return cli_fail(e);
    printf("%s\n", str_of(resp, "id") ? str_of(resp, "id") : id);
    return EXIT_OK;
}

const struct cli_command cmd_restart = {
    .name = "restart",
    .usage = "restart VM",
    .summary = "Stop a persistent VM, then boot it again",
    .description = "Stops a running persistent VM (as `capsem stop`) and boots it again from\n"
                   "its disk (as `capsem resume`); a VM that is not running is just resumed.\n"
                   "Prints its id. Ephemeral VMs cannot be restarted: they are destroyed when\n"
                   "they stop.",
    .examples = "  capsem restart dev\n",
    .opts = ref_only_opts,
    .nopts = ARRAY_SIZE(ref_only_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_restart,
};

/* ---------- persist ---------- */

static int run_persist(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *body = json_pack("{s:s}", "name", a->pos[1]);
    json_auto_t *resp = NULL;
    if (!body)
        return cli_failf("invalid NAME '%s': not valid UTF-8", a->pos[1]);
    if (cli_vm_call(ctx, "POST", a->pos[0], "/save", body, &resp, &e) < 0)
        return cli_fail(e);
    printf("%s\n", str_of(resp, "name") ? str_of(resp, "name") : a->pos[1]);
    return EXIT_OK;
}

const struct cli_command cmd_persist = {
    .name = "persist",
    .usage = "persist VM NAME",
    .summary = "Make a running ephemeral VM persistent under NAME",
    .description = "Turns a running ephemeral VM into a persistent one named NAME, keeping its\n"
                   "id, disks and processes: it survives stop, suspend and restarts from now\n"
                   "on. Prints NAME.",
    .examples = "  capsem persist code-7 dev\n",
    .opts = ref_only_opts,
    .nopts = ARRAY_SIZE(ref_only_opts),
    .stop_after = -1,
    .min_pos = 2,
    .max_pos = 2,
    .missing = "VM NAME",
    .run = run_persist,
};

/* ---------- purge ---------- */

/* Reads one answer line from stdin: y or yes (any case) means yes. */
static bool confirm(void)
{
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return strcasecmp(s, "y") == 0 || strcasecmp(s, "yes") == 0;
}

/* `--all` without -y: asks on stderr; returns 1 to go on, 0 when declined. */
static int ask_purge_all(struct cli_ctx *ctx, struct err **errp)
{
    json_auto_t *list = NULL;
    struct cli_client *c = cli_connect(ctx, errp);
    if (!c || cli_client_call(c, "GET", "/vms/list", NULL, CLI_CALL_TIMEOUT, &list, errp) < 0)
        return -1;
    size_t i, n = 0, p = 0;
    json_t *vm;
    json_array_foreach(json_object_get(list, "sandboxes"), i, vm)
    {
        n++;
        p += json_is_true(json_object_get(vm, "persistent"));
    }
    if (n == 0)
        return 1;
    fprintf(stderr, "Delete %zu VM%s (%zu persistent)? [y/N] ", n, n == 1 ? "" : "s", p);
    fflush(stderr);
    bool yes = confirm();
    if (!isatty(STDIN_FILENO))
        fputc('\n', stderr); /* the answer was not echoed */
    return yes ? 1 : 0;
}

static int run_purge(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    if (o->all && !o->yes) {
        int go = ask_purge_all(ctx, &e);
        if (go < 0)
            return cli_fail(e);
        if (go == 0) {
            fputs("Aborted.\n", stderr);
            return EXIT_OK;
        }
    }
    json_auto_t *body = json_pack("{s:b}", "all", o->all);
    json_auto_t *resp = NULL;
    struct cli_client *c = cli_connect(ctx, &e);
    if (!c || cli_client_call(c, "POST", "/purge", body, CLI_CALL_TIMEOUT, &resp, &e) < 0)
        return cli_fail(e);
    json_int_t n = json_integer_value(json_object_get(resp, "purged"));
    printf("Purged %lld VM%s (%lld ephemeral, %lld persistent).\n", (long long)n, n == 1 ? "" : "s",
           (long long)json_integer_value(json_object_get(resp, "ephemeral_purged")),
           (long long)json_integer_value(json_object_get(resp, "persistent_purged")));
    return EXIT_OK;
}

static const struct cli_opt purge_opts[] = {
    {OPT_ALL, "all", 0, NULL, "also delete persistent VMs (asks first)"},
    {OPT_YES, "yes", 'y', NULL, "do not ask"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_purge = {
    .name = "purge",
    .usage = "purge [--all] [-y]",
    .summary = "Delete every ephemeral VM (--all: every VM)",
    .description = "Deletes every ephemeral VM. With --all, persistent VMs too (their disks\n"
                   "are lost): it first asks `Delete N VMs (P persistent)? [y/N]` on stderr and\n"
                   "reads the answer from stdin; anything but y or yes prints `Aborted.` and\n"
                   "exits 0. -y skips the question. --all also removes asset versions no\n"
                   "image uses any more.",
    .examples = "  capsem purge\n"
                "  capsem purge --all\n"
                "  capsem purge --all -y\n",
    .opts = purge_opts,
    .nopts = ARRAY_SIZE(purge_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_purge,
};
