/* capsem setup and the first-use setup of commands that need the service
 * (surface.md section 4 "setup steps", "First use"). The steps are in
 * src/lib/cli/setup.c; this file prints them and asks the questions. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli.h"
#include "cli/setup.h"

#define MAX_KEEP 512

static void on_step(void *arg, enum cli_step_level level, const char *step, const char *text)
{
    static const char *const tags[] = {
        [CLI_STEP_OK] = "ok", [CLI_STEP_SKIP] = "skip", [CLI_STEP_WARN] = "warn"};
    FILE *f = arg;
    fprintf(f, "[%s] %s: %s\n", tags[level], step, text);
    fflush(f);
}

/* [Y/n]: an empty answer is yes; end of input is no. */
static bool ask_yes(void *arg, const char *question)
{
    fputs(question, stderr);
    fflush(stderr);
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    s[strcspn(s, " \t\r\n")] = '\0';
    return !*s || strcasecmp(s, "y") == 0 || strcasecmp(s, "yes") == 0;
}

/* Base versions of the VMs and images the running service knows (it may
 * know VMs whose directories we cannot see). Strings are copies owned by
 * *hold; no service: nothing. */
static size_t service_versions(struct cli_ctx *ctx, json_t **hold, const char **keep, size_t cap)
{
    *hold = json_array();
    struct cli_client *c = cli_probe(ctx, NULL);
    if (!c || !*hold) {
        cli_client_free(c);
        return 0;
    }
    static const char *const routes[][2] = {{"/vms/list", "sandboxes"}, {"/images/list", "images"}};
    size_t n = 0;
    for (size_t r = 0; r < ARRAY_SIZE(routes); r++) {
        json_t *resp = NULL;
        if (cli_client_call(c, "GET", routes[r][0], NULL, CLI_CALL_TIMEOUT, &resp, NULL) < 0)
            continue;
        json_array_append(*hold, resp);
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(resp, routes[r][1]), i, item)
        {
            const char *v = json_string_value(json_object_get(item, "base_version"));
            if (v && n < cap)
                keep[n++] = v;
        }
        json_decref(resp);
    }
    cli_client_free(c);
    return n;
}

static int run_setup(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_t *hold = NULL;
    const char *keep[MAX_KEEP];
    size_t nkeep = service_versions(ctx, &hold, keep, ARRAY_SIZE(keep));
    bool interactive = !o->non_interactive && isatty(STDIN_FILENO);
    struct cli_setup s = {.home = ctx->home,
                          .run_dir = ctx->run_dir,
                          .assets_from = o->assets_from,
                          .force = o->force,
                          .no_service = o->no_service,
                          .rotate_ca = o->rotate_ca,
                          .keep = keep,
                          .nkeep = nkeep,
                          .step = on_step,
                          .step_arg = stdout,
                          .ask = interactive ? ask_yes : NULL};
    int rc = cli_setup_run(&s, &e);
    json_decref(hold);
    if (rc < 0) {
        cli_setup_free(&s);
        return cli_fail(e);
    }
    printf("Setup complete: %s (assets v%s, %d warning%s).\n", ctx->home,
           s.assets_version ? s.assets_version : "-", s.warnings, s.warnings == 1 ? "" : "s");
    cli_setup_free(&s);
    return EXIT_OK;
}

int cli_first_use(struct cli_ctx *ctx, struct err **errp)
{
    _cleanup_free_ char *assets = paths_join(ctx->home, "assets");
    _cleanup_free_ char *manifest = assets ? paths_join(assets, "manifest.json") : NULL;
    if (!manifest)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(manifest, F_OK) == 0)
        return 0;
    fprintf(stderr, "capsem: first use: running capsem setup --non-interactive\n");
    struct cli_setup s = {
        .home = ctx->home, .run_dir = ctx->run_dir, .step = on_step, .step_arg = stderr};
    int rc = cli_setup_run(&s, errp);
    cli_setup_free(&s);
    if (rc < 0)
        err_prefix(errp, "setup failed");
    return rc;
}

static const struct cli_opt setup_opts[] = {
    {OPT_FORCE, "force", 0, NULL, "re-install and re-verify the assets, rewrite the unit"},
    {OPT_NON_INTERACTIVE, "non-interactive", 0, NULL, "ask nothing (implied without a TTY)"},
    {OPT_ASSETS_FROM, "assets-from", 0, "DIR",
     "install assets from DIR (default: $CAPSEM_ASSETS_SOURCE, else <prefix>/share/capsem/assets)"},
    {OPT_NO_SERVICE, "no-service", 0, NULL, "do not install the systemd user service"},
    {OPT_ROTATE_CA, "rotate-ca", 0, NULL,
     "replace the MITM CA (running VMs keep theirs until restarted)"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_setup = {
    .name = "setup",
    .usage = "setup [--force] [--non-interactive] [--assets-from DIR] [--no-service] [--rotate-ca]",
    .summary = "Prepare ~/.capsem: assets, config, API keys, CA, user service",
    .description =
        "Sets up $CAPSEM_HOME, one line per step: the directory layout (0700); the guest\n"
        "assets, copied (hard-linked when possible) and checked against their sha256 and\n"
        "size, versions already installed skipped; user.toml with every setting commented\n"
        "out, if absent; API keys found in ANTHROPIC_API_KEY, OPENAI_API_KEY,\n"
        "GEMINI_API_KEY (or GOOGLE_API_KEY) and GH_TOKEN (or GITHUB_TOKEN), stored in\n"
        "credentials.toml (0600; values never printed; guests only see placeholders);\n"
        "the per-install MITM CA in ca/ (created once, then checked) and the telemetry\n"
        "key beside it; the npm registry host (npm config get registry) for the code\n"
        "policy's @npm rules; the systemd user service when a user systemd instance runs (asks\n"
        "first on a terminal); a /dev/kvm check; removal of asset versions nothing uses;\n"
        "setup.json. Running it again changes nothing that is in place. Commands that\n"
        "need the service run it by themselves (non-interactively) on first use.",
    .examples = "  capsem setup\n"
                "  capsem setup --assets-from build/assets --non-interactive\n"
                "  capsem setup --force --no-service\n",
    .opts = setup_opts,
    .nopts = ARRAY_SIZE(setup_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_setup,
};
