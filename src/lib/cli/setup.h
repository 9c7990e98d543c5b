/* `capsem setup` (surface.md section 4 "setup steps"): layout, assets,
 * user.toml, API keys into credentials.toml and the per-install MITM CA
 * (network.md sections 5 and 10), dashboard, systemd unit, /dev/kvm, asset
 * cleanup, setup.json.
 * Idempotent: every step looks at what is there first. Library code: each
 * step reports one line through a callback; questions go through another
 * (none in non-interactive mode). */
#ifndef CAPSEM_CLI_SETUP_H
#define CAPSEM_CLI_SETUP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum cli_step_level { CLI_STEP_OK, CLI_STEP_SKIP, CLI_STEP_WARN };

/* One finished step: step is its short name ("assets"), text the rest. */
typedef void (*cli_step_fn)(void *arg, enum cli_step_level level, const char *step,
                            const char *text);
/* A yes/no question; returns the answer. */
typedef bool (*cli_ask_fn)(void *arg, const char *question);

struct cli_setup {
    /* in */
    const char *home;        /* $CAPSEM_HOME */
    const char *run_dir;     /* $CAPSEM_RUN_DIR */
    const char *assets_from; /* --assets-from, or NULL: cli_assets_source() rules */
    bool force;              /* re-install and re-verify assets, rewrite the unit */
    bool no_service;         /* --no-service */
    bool rotate_ca;          /* --rotate-ca: replace the MITM CA (running VMs keep theirs) */
    char *const *env;        /* environment the API keys are read from; NULL: environ */
    const char *const *keep; /* extra asset versions in use (from the service), may be NULL */
    size_t nkeep;
    cli_step_fn step;
    void *step_arg;
    cli_ask_fn ask; /* NULL: non-interactive (every default taken) */
    void *ask_arg;
    unsigned npm_timeout_ms; /* `npm config get registry` deadline; 0: 10 s */
    /* out */
    char *assets_version; /* current version after the run (malloc'd) */
    char npm_host[256];   /* the npm registry host recorded, "" for none */
    int warnings;
};

/* The `npm` step runs `npm config get registry` (npm found on the PATH of
 * env; absent = [skip]) and records the URL's host in setup.json as
 * "npm_registry_host": the `@npm` host list of the network policy
 * (docs/policy.md "Host lists"). A failure there is a [warn], never fatal. */

/* Runs every step in order; stops at the first failing step with errp set
 * (message prefixed with the step's name). Free with cli_setup_free(). */
int cli_setup_run(struct cli_setup *s, struct err **errp);
void cli_setup_free(struct cli_setup *s);

/* Where assets come from: assets_from when given (a URL is refused: this
 * version installs from directories only), else $CAPSEM_ASSETS_SOURCE, else
 * <prefix>/share/capsem/assets (prefix = the directory above the running
 * executable's) when it exists. Returns NULL without an error when nothing
 * was given and the default does not exist. malloc'd. */
char *cli_assets_source(const char *assets_from, struct err **errp);

/* The user.toml written when none exists: every key of surface.md section 10
 * with its default, commented out (settings_user_toml_template()). malloc'd. */
char *cli_user_toml_template(void);

/* Asset versions referenced by VM directories (run/sessions/<id>/vm.json,
 * run/persistent/<id>/vm.json)
 * and images (home/images/<name>/image.json) among the versions installed
 * (their names in installed[0..n)). Fills keep[] (pointers into installed)
 * and returns how many, or -1 with errp set when a VM directory cannot be
 * read (then nothing may be removed). */
int cli_assets_in_use(const char *home, const char *run_dir, const char *const *installed, size_t n,
                      const char **keep, struct err **errp);

/* The host of an npm registry URL as npm prints it ("https://host[:port]/
 * path", surrounding white space ignored): http or https, no user info, a
 * plain host name (no IP literal), lowercased into out (256 bytes). Returns
 * its length, or -1 with errp saying what is wrong. */
int cli_npm_registry_host(const char *url, char out[256], struct err **errp);

/* The npm registry host recorded in home/setup.json: 1 and out filled, 0
 * when there is none (no file, no key), -1 with errp when the file cannot
 * be read or holds something that is not a plain host name. */
int cli_setup_npm_host(const char *home, char out[256], struct err **errp);

/* Installs the systemd user unit for the capsem-service found next to this
 * executable (or in $CAPSEM_HOME/bin or PATH): a service started outside
 * systemd is stopped first (its VMs keep running and are re-adopted), the
 * stop marker is cleared, then daemon-reload and enable --now. */
int cli_service_install(const char *run_dir, struct err **errp);

#endif
