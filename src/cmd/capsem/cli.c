/* capsem CLI: global options, command dispatch, help and the shared helpers
 * of cli.h. */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli/autostart.h"
#include "cli/format.h"
#include "cli/svcctl.h"
#include "config/settings.h"

static const struct cli_command *const commands[] = {
    &cmd_run,    &cmd_create,  &cmd_shell,   &cmd_exec,    &cmd_list,    &cmd_info,
    &cmd_resume, &cmd_suspend, &cmd_stop,    &cmd_restart, &cmd_delete,  &cmd_persist,
    &cmd_fork,   &cmd_image,   &cmd_cp,      &cmd_logs,    &cmd_history, &cmd_purge,
    &cmd_doctor, &cmd_setup,   &cmd_service, &cmd_version,
    &cmd_asks,   &cmd_approve, &cmd_deny,
};

static const struct cli_opt global_opts[] = {OPT_ROW_UDS};

/* ---------- output helpers ---------- */

bool cli_write(int fd, const void *data, size_t len)
{
    fflush(stdout); /* keep the order of stdio text and raw bytes */
    fflush(stderr);
    return len == 0 || fd_write_all(fd, data, len) == 0;
}

int cli_print_buf(struct buf *b)
{
    bool ok = cli_write(STDOUT_FILENO, buf_head(b), b->len);
    buf_free(b);
    if (!ok)
        return cli_failf("writing output: %s", strerror(errno));
    return EXIT_OK;
}

int cli_fail(const struct err *e)
{
    fprintf(stderr, "Error: %s\n", e ? err_msg(e) : "unknown error");
    return EXIT_ERROR;
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_ERROR;
}

/* ---------- help ---------- */

static void print_command_line(FILE *f, const struct cli_command *c)
{
    char label[40];
    const char *alias = c->alias ? strrchr(c->alias, ' ') : NULL;
    alias = alias ? alias + 1 : c->alias;
    snprintf(label, sizeof(label), "%s%s%s%s", c->name, alias ? " (" : "", alias ? alias : "",
             alias ? ")" : "");
    fprintf(f, "  %-18s %s\n", label, c->summary);
}

static void print_main_help(FILE *f)
{
    fputs("capsem - air-gapped Linux VMs for AI agents\n\n"
          "Usage: capsem [--uds-path PATH] COMMAND [ARGS...]\n\nCommands:\n",
          f);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        const struct cli_command *c = commands[i];
        if (!c->subs)
            print_command_line(f, c);
        for (size_t k = 0; c->subs && k < c->nsubs; k++)
            print_command_line(f, c->subs[k]);
    }
    fputs("\nGlobal options:\n"
          "  --uds-path PATH  service socket (also CAPSEM_UDS_PATH); disables auto-start\n"
          "  -h, --help       show help\n\n"
          "Environment: CAPSEM_HOME (~/.capsem), CAPSEM_RUN_DIR ($CAPSEM_HOME/run),\n"
          "CAPSEM_UDS_PATH ($CAPSEM_RUN_DIR/service.sock), CAPSEM_ASSETS_SOURCE (setup).\n\n"
          "Examples:\n"
          "  capsem run -- uname -a\n"
          "  capsem create -n dev && capsem exec dev -- ls /root\n"
          "  capsem shell\n"
          "  capsem doctor\n\n"
          "Run 'capsem COMMAND --help' for more on a command.\n",
          f);
}

static void print_group_help(const struct cli_command *g)
{
    printf("Usage: capsem %s\n\n%s\n\nCommands:\n", g->usage, g->description);
    for (size_t k = 0; k < g->nsubs; k++)
        print_command_line(stdout, g->subs[k]);
    printf("\nExamples:\n%s\nRun 'capsem %s COMMAND --help' for more on a command.\n", g->examples,
           g->name);
}

static void print_command_help(const struct cli_command *c)
{
    printf("Usage: capsem %s\n\n%s\n", c->usage, c->description);
    if (c->alias)
        printf("\nAlias: capsem %s\n", c->alias);
    _cleanup_free_ char *opts = cli_opts_help(c->opts, c->nopts);
    printf("\nOptions:\n%s\nExamples:\n%s", opts ? opts : "", c->examples);
}

int cli_usage(const struct cli_command *c, const char *msg)
{
    fprintf(stderr, "Error: %s\n", msg);
    if (c)
        fprintf(stderr, "Usage: capsem %s\nRun 'capsem %s --help' for more.\n", c->usage, c->name);
    else
        fputs("Usage: capsem [--uds-path PATH] COMMAND [ARGS...]\n"
              "Run 'capsem --help' for the list of commands.\n",
              stderr);
    return EXIT_USAGE;
}

/* ---------- options ---------- */

static int set_env(struct cmd_opts *o, const char *kv, struct err **errp)
{
    _cleanup_free_ char *key = NULL;
    const char *value = NULL;
    if (cli_parse_env(kv, &key, &value, errp) < 0)
        return -1;
    if (!o->env && !(o->env = json_object()))
        return err_set(errp, ENOMEM, "out of memory");
    if (json_object_set_new(o->env, key, json_string(value)) < 0)
        return err_set(errp, EINVAL, "invalid -e value '%s': not valid UTF-8", kv);
    return 0;
}

struct opt_ctx {
    struct cli_ctx *ctx;
    struct cmd_opts *o;
};

/* Value-less flags. */
static int on_flag(struct cmd_opts *o, int id, struct err **errp)
{
    bool *flags[] = {
        [OPT_SERIAL] = &o->serial,
        [OPT_PROCESS] = &o->process,
        [OPT_FOLLOW] = &o->follow,
        [OPT_ALL] = &o->all,
        [OPT_YES] = &o->yes,
        [OPT_QUICK] = &o->quick,
        [OPT_FORCE] = &o->force,
        [OPT_NON_INTERACTIVE] = &o->non_interactive,
        [OPT_NO_SERVICE] = &o->no_service,
        [OPT_VMS] = &o->vms,
        [OPT_ROTATE_CA] = &o->rotate_ca,
        [OPT_NET] = &o->net,
        [OPT_DNS] = &o->dns,
    };
    if (id < 0 || (size_t)id >= ARRAY_SIZE(flags) || !flags[id])
        return err_set(errp, EINVAL, "unhandled option");
    *flags[id] = true;
    return 0;
}

static int on_opt(void *p, const struct cli_opt *opt, const char *value, struct err **errp)
{
    struct opt_ctx *oc = p;
    struct cmd_opts *o = oc->o;
    switch (opt->id) {
    case OPT_UDS:
        oc->ctx->uds_flag = value;
        return 0;
    case OPT_NAME:
        o->name = value;
        return 0;
    case OPT_PROFILE:
        o->profile = value;
        return 0;
    case OPT_CPU:
        return cli_parse_count("--cpu", value, 1024, &o->cpus, errp);
    case OPT_RAM:
        return cli_parse_ram_mb(value, &o->ram_mb, errp);
    case OPT_ENV:
        return set_env(o, value, errp);
    case OPT_TIMEOUT:
        return cli_parse_count("--timeout", value, INT32_MAX, &o->timeout, errp);
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_IMAGE:
        o->image = value;
        return 0;
    case OPT_TAIL:
        return cli_parse_count("--tail", value, 1000000, &o->tail, errp);
    case OPT_SEARCH:
        o->search = value;
        return 0;
    case OPT_DESC:
        o->desc = value;
        return 0;
    case OPT_ASSETS_FROM:
        o->assets_from = value;
        return 0;
    case OPT_REMEMBER:
        o->remember = value;
        return 0;
    case OPT_LAYER:
        o->layer = value;
        return 0;
    case OPT_SINCE:
        o->since = value;
        return 0;
    default:
        return on_flag(o, opt->id, errp);
    }
    return err_set(errp, EINVAL, "unhandled option");
}

int cli_spec_body(const struct cmd_opts *o, json_t *body)
{
    int rc = 0;
    if (o->image)
        rc |= json_object_set_new(body, "image", json_string(o->image));
    if (o->profile)
        rc |= json_object_set_new(body, "profile_id", json_string(o->profile));
    if (o->cpus)
        rc |= json_object_set_new(body, "cpus", json_integer(o->cpus));
    if (o->ram_mb)
        rc |= json_object_set_new(body, "ram_mb", json_integer(o->ram_mb));
    if (o->env)
        rc |= json_object_set(body, "env", o->env);
    return rc ? -1 : 0;
}

/* ---------- context and connection ---------- */

static int ctx_init(struct cli_ctx *ctx, struct err **errp)
{
    ctx->stderr_tty = isatty(STDERR_FILENO);
    if (!(ctx->home = paths_home(errp)) || !(ctx->run_dir = paths_run_dir(errp)))
        return -1;
    const char *env = getenv("CAPSEM_UDS_PATH");
    if (ctx->uds_flag && *ctx->uds_flag)
        ctx->socket = strdup(ctx->uds_flag);
    else if (env && *env)
        ctx->socket = strdup(env);
    else
        ctx->socket = paths_join(ctx->run_dir, "service.sock");
    ctx->socket_explicit = (ctx->uds_flag && *ctx->uds_flag) || (env && *env);
    if (!ctx->socket)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

static void ctx_free(struct cli_ctx *ctx)
{
    cli_client_free(ctx->client);
    free(ctx->home);
    free(ctx->run_dir);
    free(ctx->socket);
}

/* service.auto_start from user.toml and the corp file (true when they
 * cannot be read: the service reports their problems). */
static bool auto_start_setting(const struct cli_ctx *ctx)
{
    struct settings *s = settings_load(ctx->home, NULL);
    bool on = !s || settings_bool(s, "service.auto_start");
    settings_free(s);
    return on;
}

static struct cli_autostart autostart_cfg(const struct cli_ctx *ctx, bool explicit_start)
{
    bool on = explicit_start || ctx->socket_explicit || auto_start_setting(ctx);
    return (struct cli_autostart){
        .home = ctx->home,
        .run_dir = ctx->run_dir,
        .allowed = !ctx->socket_explicit,
        .disabled = on ? NULL
                       : "capsem-service is not running and service.auto_start is false; run: "
                         "capsem service start",
        .systemd = cli_unit_applies(),
        .wait_ms = CLI_START_WAIT_MS};
}

struct cli_client *cli_connect_ex(struct cli_ctx *ctx, bool first_use, struct err **errp)
{
    if (ctx->client)
        return ctx->client;
    if (first_use && !ctx->socket_explicit && cli_first_use(ctx, errp) < 0)
        return NULL;
    struct cli_client *c = cli_client_new(ctx->socket, CLI_MAX_RESPONSE, errp);
    if (!c)
        return NULL;
    struct cli_autostart a = autostart_cfg(ctx, ctx->explicit_start);
    _cleanup_free_ char *version = NULL;
    bool started = false;
    if (cli_service_ensure(c, &a, &version, &started, errp) < 0) {
        cli_client_free(c);
        return NULL;
    }
    if (strcmp(version, CAPSEM_VERSION) != 0)
        fprintf(stderr, "warning: capsem-service is %s, capsem is %s\n", version, CAPSEM_VERSION);
    ctx->client = c;
    return c;
}

struct cli_client *cli_connect(struct cli_ctx *ctx, struct err **errp)
{
    return cli_connect_ex(ctx, true, errp);
}

struct cli_client *cli_probe(struct cli_ctx *ctx, char **version)
{
    struct cli_client *c = cli_client_new(ctx->socket, CLI_MAX_RESPONSE, NULL);
    char *v = NULL;
    if (!c || cli_service_version(c, &v, NULL) < 0) {
        cli_client_free(c);
        return NULL;
    }
    if (version)
        *version = v;
    else
        free(v);
    return c;
}

int cli_vm_info(struct cli_ctx *ctx, const char *ref, json_t **out, struct err **errp)
{
    return cli_vm_call(ctx, "GET", ref, "/info", NULL, out, errp);
}

int cli_vm_call(struct cli_ctx *ctx, const char *method, const char *ref, const char *suffix,
                const json_t *body, json_t **out, struct err **errp)
{
    struct cli_client *c = cli_connect(ctx, errp);
    _cleanup_free_ char *path = c ? cli_vm_path(ref, suffix, errp) : NULL;
    if (!path)
        return -1;
    return cli_client_call(c, method, path, body, CLI_CALL_TIMEOUT, out, errp);
}

/* ---------- dispatch ---------- */

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i]->name, name) == 0 ||
            (commands[i]->alias && strcmp(commands[i]->alias, name) == 0))
            return commands[i];
    return NULL;
}

/* "<group> <word>" among the group's sub-commands (names and aliases). */
static const struct cli_command *find_sub(const struct cli_command *g, const char *word)
{
    char full[128];
    snprintf(full, sizeof(full), "%s %s", g->name, word);
    for (size_t k = 0; k < g->nsubs; k++)
        if (strcmp(g->subs[k]->name, full) == 0 ||
            (g->subs[k]->alias && strcmp(g->subs[k]->alias, full) == 0))
            return g->subs[k];
    return NULL;
}

static int check_positionals(const struct cli_command *c, const struct cli_args *a)
{
    char msg[256];
    if (a->npos < c->min_pos) {
        /* c->missing names the slots in order ("VM COMMAND"): report the first absent one. */
        const char *m = c->missing ? c->missing : "argument";
        for (int k = 0; k < a->npos && strchr(m, ' '); k++)
            m = strchr(m, ' ') + 1;
        snprintf(msg, sizeof(msg), "missing argument: %.*s", (int)strcspn(m, " "), m);
        return cli_usage(c, msg);
    }
    if (c->max_pos >= 0 && a->npos > c->max_pos) {
        snprintf(msg, sizeof(msg), "unexpected argument: %s", a->pos[c->max_pos]);
        return cli_usage(c, msg);
    }
    return 0;
}

static int run_command(struct cli_ctx *ctx, const struct cli_command *c, int argc, char **argv)
{
    struct cmd_opts o = {0};
    struct opt_ctx oc = {ctx, &o};
    struct cli_args a;
    _cleanup_err_ struct err *e = NULL;
    int rc = cli_args_parse(c->opts, c->nopts, c->stop_after, argc, argv, on_opt, &oc, &a, &e);
    if (rc < 0) {
        json_decref(o.env);
        return cli_usage(c, err_msg(e));
    }
    if (rc == CLI_ARGS_HELP) {
        print_command_help(c);
        rc = EXIT_OK;
    } else if ((rc = check_positionals(c, &a)) == 0) {
        rc = ctx_init(ctx, &e) < 0 ? cli_fail(e) : c->run(ctx, &o, &a);
    }
    json_decref(o.env);
    cli_args_free(&a);
    return rc;
}

/* Global options come before the command word. Returns the index of the
 * command word, argc when there is none, or -1 (help) / -2 (usage error). */
static int parse_globals(struct cli_ctx *ctx, int argc, char **argv, struct err **errp)
{
    struct cmd_opts unused = {0};
    struct opt_ctx oc = {ctx, &unused};
    int i = 1;
    while (i < argc && argv[i][0] == '-' && argv[i][1]) {
        int end = i + 1;
        if (strcmp(argv[i], "--uds-path") == 0 && end < argc)
            end++;
        struct cli_args a;
        int rc = cli_args_parse(global_opts, ARRAY_SIZE(global_opts), -1, end - i, argv + i, on_opt,
                                &oc, &a, errp);
        if (rc >= 0)
            cli_args_free(&a);
        if (rc != 0)
            return rc == CLI_ARGS_HELP ? -1 : -2;
        i = end;
    }
    return i;
}

int capsem_main(int argc, char **argv)
{
    struct cli_ctx ctx = {0};
    _cleanup_err_ struct err *e = NULL;
    int idx = parse_globals(&ctx, argc, argv, &e);
    if (idx == -2)
        return cli_usage(NULL, err_msg(e));
    if (idx == -1 || idx >= argc) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    const struct cli_command *c = find_command(argv[idx]);
    char msg[256];
    if (!c) {
        snprintf(msg, sizeof(msg), "unknown command: %s", argv[idx]);
        return cli_usage(NULL, msg);
    }
    if (c->subs) {
        const char *word = idx + 1 < argc ? argv[idx + 1] : NULL;
        if (!word || strcmp(word, "-h") == 0 || strcmp(word, "--help") == 0) {
            print_group_help(c);
            return EXIT_OK;
        }
        const struct cli_command *sub = find_sub(c, word);
        if (!sub) {
            snprintf(msg, sizeof(msg), "unknown command: %s %s", c->name, word);
            return cli_usage(c, msg);
        }
        c = sub;
        idx++;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cli_failf("cannot initialise libcurl");
    int rc = run_command(&ctx, c, argc - idx - 1, argv + idx + 1);
    ctx_free(&ctx);
    curl_global_cleanup();
    return rc;
}
