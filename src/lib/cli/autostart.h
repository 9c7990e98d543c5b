/* Finding and starting capsem-service for the CLI (surface.md section 4
 * "Auto-start"). Library code: nothing is printed; warnings are returned to
 * the caller. */
#ifndef CAPSEM_CLI_AUTOSTART_H
#define CAPSEM_CLI_AUTOSTART_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"
#include "cli/client.h"

#define CLI_START_WAIT_MS 10000

struct cli_autostart {
    const char *home;     /* $CAPSEM_HOME (logs/ goes under it) */
    const char *run_dir;  /* holds service.explicitly-stopped */
    bool allowed;         /* false when the socket was chosen explicitly */
    const char *disabled; /* allowed but turned off (service.auto_start = false): the error */
    const char *binary;   /* capsem-service to run; NULL: paths_find_binary() */
    bool systemd;         /* start with `systemctl --user start capsem` (cli_unit_applies()) */
    int wait_ms;          /* how long to poll GET /version after spawning */
};

/* GET /version (connect timeout only, 10 s overall). *version is malloc'd. */
int cli_service_version(struct cli_client *c, char **version, struct err **errp);

/* Makes sure the service answers on c. When nobody listens (ENOENT,
 * ECONNREFUSED) and a->allowed: fails with `service is stopped; run: capsem
 * service start` if the stop marker exists, with a->disabled when set, else
 * starts the service
 * (cli_service_start()) and polls GET /version until it answers or a->wait_ms
 * pass. *version gets the
 * service's version (malloc'd), *started whether we spawned it. */
int cli_service_ensure(struct cli_client *c, const struct cli_autostart *a, char **version,
                       bool *started, struct err **errp);

/* Starts the service without looking at the stop marker: `systemctl --user
 * start capsem` when a->systemd, else spawns it detached; then polls GET
 * /version for up to a->wait_ms. */
int cli_service_start(struct cli_client *c, const struct cli_autostart *a, char **version,
                      struct err **errp);

/* Runs binary detached: own session, stdin /dev/null, stdout and stderr
 * appended to log_path (its directory created 0700), argv without a shell.
 * Returns the child's pid; the caller may waitpid() it to notice an early
 * exit. */
pid_t cli_service_spawn(const char *binary, const char *log_path, struct err **errp);

#endif
