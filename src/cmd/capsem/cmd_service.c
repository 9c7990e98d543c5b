/* capsem service install|uninstall|start|stop|status (surface.md section 4). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli.h"
#include "cli/setup.h"
#include "cli/svcctl.h"

#define STOP_WAIT_MS 10000

/* Where service.pid is: the run dir, or the explicit socket's directory. */
static char *service_dir(const struct cli_ctx *ctx)
{
    if (!ctx->socket_explicit)
        return strdup(ctx->run_dir);
    const char *slash = strrchr(ctx->socket, '/');
    return slash ? strndup(ctx->socket, (size_t)(slash - ctx->socket)) : strdup(".");
}

static int refuse_custom_home(const char *what)
{
    const char *var = cli_custom_home_var();
    if (!var)
        return 0;
    return cli_failf("service %s refuses to run with %s set: the user service always uses "
                     "~/.capsem; unset %s first",
                     what, var, var);
}

/* Stops every Running VM (persistent ones become Stopped, ephemeral ones are
 * destroyed). No service: nothing to do. Returns how many failed. */
static int stop_all_vms(struct cli_ctx *ctx)
{
    struct cli_client *c = cli_probe(ctx, NULL);
    json_auto_t *list = NULL;
    _cleanup_err_ struct err *e = NULL;
    if (!c)
        return 0;
    int failed = 0;
    if (cli_client_call(c, "GET", "/vms/list", NULL, CLI_CALL_TIMEOUT, &list, &e) < 0) {
        cli_fail(e);
        failed++;
    }
    size_t i;
    json_t *vm;
    json_array_foreach(json_object_get(list, "sandboxes"), i, vm)
    {
        const char *status = json_string_value(json_object_get(vm, "status"));
        const char *id = json_string_value(json_object_get(vm, "id"));
        if (!id || !status || strcmp(status, "Running") != 0)
            continue;
        _cleanup_err_ struct err *ve = NULL;
        _cleanup_free_ char *path = cli_vm_path(id, "/stop", &ve);
        if (!path || cli_client_call(c, "POST", path, NULL, CLI_CALL_TIMEOUT, NULL, &ve) < 0) {
            cli_fail(ve);
            failed++;
        }
    }
    cli_client_free(c);
    return failed;
}

/* ---------- install / uninstall ---------- */

static int run_install(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    if (refuse_custom_home("install"))
        return EXIT_ERROR;
    _cleanup_err_ struct err *e = NULL;
    ctx->explicit_start = true;
    if (cli_service_install(ctx->run_dir, &e) < 0 || !cli_connect_ex(ctx, false, &e))
        return cli_fail(e);
    printf("Service installed.\n");
    return EXIT_OK;
}

static int run_uninstall(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    if (refuse_custom_home("uninstall"))
        return EXIT_ERROR;
    if (!cli_unit_installed())
        return cli_failf("the capsem user service is not installed");
    if (stop_all_vms(ctx) > 0)
        return cli_failf("some VMs could not be stopped; the service stays installed");
    _cleanup_err_ struct err *e = NULL;
    if (cli_unit_uninstall(&e) < 0)
        return cli_fail(e);
    printf("Service uninstalled.\n");
    return EXIT_OK;
}

/* ---------- start / stop ---------- */

static int run_start(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    ctx->explicit_start = true;
    if (cli_stop_marker(ctx->run_dir, false, &e) < 0 || !cli_connect_ex(ctx, false, &e))
        return cli_fail(e);
    printf("Service started.\n");
    return EXIT_OK;
}

static int stop_service(struct cli_ctx *ctx, struct err **errp)
{
    if (!ctx->socket_explicit && cli_unit_applies()) {
        const char *stop[] = {"stop", CLI_UNIT_NAME, NULL};
        return cli_systemctl(stop, errp);
    }
    _cleanup_free_ char *dir = service_dir(ctx);
    if (!dir)
        return err_set(errp, ENOMEM, "out of memory");
    pid_t pid = cli_service_pid(dir);
    if (pid > 0)
        return cli_service_kill_wait(pid, STOP_WAIT_MS, errp);
    struct cli_client *c = cli_probe(ctx, NULL);
    bool answers = c != NULL;
    cli_client_free(c);
    if (answers)
        return err_set(errp, ESRCH,
                       "a service answers on %s but %s/service.pid does not name a running "
                       "capsem-service",
                       ctx->socket, dir);
    return 0; /* not running: nothing to stop */
}

static int run_stop(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    if (cli_stop_marker(ctx->run_dir, true, &e) < 0)
        return cli_fail(e);
    if (o->vms && stop_all_vms(ctx) > 0)
        return cli_failf("some VMs could not be stopped; the service keeps running");
    if (stop_service(ctx, &e) < 0)
        return cli_fail(e);
    printf("Service stopped.\n");
    return EXIT_OK;
}

/* ---------- status ---------- */

static void print_gateway(const struct cli_ctx *ctx)
{
    _cleanup_free_ char *bin = paths_find_binary("capsem-gateway");
    _cleanup_free_ char *path = paths_join(ctx->run_dir, "gateway.port");
    _cleanup_free_ char *port = NULL;
    if (!bin)
        printf("Gateway: not part of this version\n");
    else if (path && file_read_all(path, 32, &port, NULL, NULL) == 0)
        printf("Gateway: http://127.0.0.1:%.*s\n", (int)strcspn(port, "\r\n"), port);
    else
        printf("Gateway: not running\n");
}

static void print_vms(const json_t *st)
{
    const json_t *v = json_object_get(st, "vms");
    if (!json_is_object(v)) {
        printf("VMs: -\n");
        return;
    }
#define N(k) (long long)json_integer_value(json_object_get(v, k))
    printf("VMs: %lld (%lld running, %lld stopped, %lld suspended, %lld defunct)\n", N("total"),
           N("running"), N("stopped"), N("suspended"), N("defunct"));
#undef N
}

static int run_status(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_free_ char *unit = cli_unit_path(NULL);
    _cleanup_free_ char *dir = service_dir(ctx);
    _cleanup_free_ char *version = NULL;
    json_auto_t *st = NULL;
    pid_t pid = dir ? cli_service_pid(dir) : 0;
    struct cli_client *c = cli_probe(ctx, &version);
    bool running = c != NULL;
    if (c && cli_client_call(c, "GET", "/status", NULL, CLI_CALL_TIMEOUT, &st, NULL) < 0)
        st = NULL;
    cli_client_free(c);
    bool ready = json_is_true(json_object_get(st, "ready"));
    bool installed = cli_unit_installed();
    printf("Installed: %s%s%s%s\n", installed ? "yes (" : "no", installed ? unit : "",
           installed ? ")" : "",
           installed && cli_custom_home_var() ? ", not used: custom home" : "");
    if (!running)
        printf("Running: no\n");
    else if (pid > 0)
        printf("Running: yes (pid %d)%s\n", (int)pid,
               ready ? "" : ", not ready (run: capsem doctor)");
    else
        printf("Running: yes%s\n", ready ? "" : ", not ready (run: capsem doctor)");
    printf("Version: %s\nSocket: %s\n", version ? version : "-", ctx->socket);
    print_gateway(ctx);
    const char *accel = json_string_value(json_object_get(st, "accel"));
    printf("Accel: %s\n", accel ? accel : "-");
    print_vms(st);
    return running && st && ready ? EXIT_OK : EXIT_ERROR;
}

/* ---------- table ---------- */

static const struct cli_opt plain_opts[] = {OPT_ROW_UDS};
static const struct cli_opt stop_opts[] = {
    {OPT_VMS, "vms", 0, NULL, "stop every running VM first (VMs keep running otherwise)"},
    OPT_ROW_UDS,
};

#define SERVICE_SUB(var, word, use, sum, desc, ex, opt_table, fn)                                  \
    static const struct cli_command var = {.name = "service " word,                                \
                                           .usage = "service " use,                                \
                                           .summary = sum,                                         \
                                           .description = desc,                                    \
                                           .examples = ex,                                         \
                                           .opts = opt_table,                                      \
                                           .nopts = ARRAY_SIZE(opt_table),                         \
                                           .stop_after = -1,                                       \
                                           .min_pos = 0,                                           \
                                           .max_pos = 0,                                           \
                                           .run = fn}

SERVICE_SUB(cmd_service_install, "install", "install", "Install and start the systemd user service",
            "Writes ~/.config/systemd/user/capsem.service for the capsem-service next to this\n"
            "capsem, runs systemctl --user daemon-reload and enable --now capsem, and clears\n"
            "the stop marker. A service started outside systemd is stopped first (VMs keep\n"
            "running). Refused when CAPSEM_HOME or CAPSEM_RUN_DIR is set.",
            "  capsem service install\n", plain_opts, run_install);
SERVICE_SUB(cmd_service_uninstall, "uninstall", "uninstall", "Remove the systemd user service",
            "Stops every running VM, runs systemctl --user disable --now capsem, removes the\n"
            "unit file and reloads systemd. ~/.capsem is kept.",
            "  capsem service uninstall\n", plain_opts, run_uninstall);
SERVICE_SUB(cmd_service_start, "start", "start", "Start capsem-service",
            "Clears the stop marker and starts the service: with systemctl --user when the\n"
            "unit is installed (and neither CAPSEM_HOME nor CAPSEM_RUN_DIR is set), else as a\n"
            "detached process logging to logs/service.log. Waits until it answers.",
            "  capsem service start\n", plain_opts, run_start);
SERVICE_SUB(cmd_service_stop, "stop", "stop [--vms]", "Stop capsem-service",
            "Writes the stop marker (commands no longer start the service by themselves;\n"
            "`capsem service start` clears it), then stops the service: systemctl --user stop\n"
            "when the unit applies, else SIGTERM to the pid in service.pid and up to 10 s of\n"
            "waiting. VMs keep running unless --vms.",
            "  capsem service stop\n  capsem service stop --vms\n", stop_opts, run_stop);
SERVICE_SUB(cmd_service_status, "status", "status", "Show the service's state",
            "Prints whether the unit is installed, whether the service runs (pid), its\n"
            "version, socket, gateway, accelerator and VM counts. Exits 0 when it runs and\n"
            "its assets are ready, else 1. Never starts the service.",
            "  capsem service status\n", plain_opts, run_status);

static const struct cli_command *const service_subs[] = {&cmd_service_install,
                                                         &cmd_service_uninstall, &cmd_service_start,
                                                         &cmd_service_stop, &cmd_service_status};

const struct cli_command cmd_service = {
    .name = "service",
    .usage = "service COMMAND",
    .summary = "Manage capsem-service",
    .description = "Installs, starts, stops and inspects capsem-service, the daemon that owns\n"
                   "the VMs. Commands that need it start it on demand unless it was stopped\n"
                   "with `capsem service stop`.",
    .examples = "  capsem service status\n"
                "  capsem service install\n"
                "  capsem service stop --vms\n",
    .subs = service_subs,
    .nsubs = ARRAY_SIZE(service_subs),
};
