/* Controlling capsem-service from the CLI (surface.md section 4 "service"
 * commands, "systemd unit", "Auto-start"): the systemd user unit, systemctl
 * runs (fork/exec with argv, never a shell), service.pid, the stop marker.
 * Library code: nothing is printed; child processes inherit stderr, so
 * systemctl's own messages reach the user. */
#ifndef CAPSEM_CLI_SVCCTL_H
#define CAPSEM_CLI_SVCCTL_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"

#define CLI_UNIT_NAME "capsem"

/* $XDG_CONFIG_HOME/systemd/user/capsem.service (default ~/.config/...). malloc'd. */
char *cli_unit_path(struct err **errp);

/* The unit file text for <bindir>/capsem-service. malloc'd; NULL on ENOMEM. */
char *cli_unit_text(const char *bindir);

/* The unit file exists. */
bool cli_unit_installed(void);

/* The systemd user unit may be used: it is installed and neither CAPSEM_HOME
 * nor CAPSEM_RUN_DIR is set (the unit always serves the default home). */
bool cli_unit_applies(void);

/* CAPSEM_HOME or CAPSEM_RUN_DIR is set (non-empty): the name of the first,
 * else NULL. */
const char *cli_custom_home_var(void);

/* A systemd user instance runs: systemctl is on PATH and
 * $XDG_RUNTIME_DIR/systemd/private (default /run/user/<uid>/...) exists. */
bool cli_systemd_user_running(void);

/* Runs argv[0] (looked up on PATH) with stdin /dev/null, waits for it and
 * stores its exit status (128+N when killed by signal N). -1 when it could
 * not be started. */
int cli_run_wait(const char *const *argv, int *status, struct err **errp);

/* `systemctl --user <args...>` (NULL-terminated); an exit status other than 0
 * is an error `systemctl --user <args> failed (exit status N)`. */
int cli_systemctl(const char *const *args, struct err **errp);

/* Writes the unit for bindir, then daemon-reload and enable --now. */
int cli_unit_install(const char *bindir, struct err **errp);

/* disable --now, removes the unit file, daemon-reload. */
int cli_unit_uninstall(struct err **errp);

/* The pid in dir/service.pid when that process is alive and runs
 * capsem-service (argv[0]'s base name); 0 otherwise. */
pid_t cli_service_pid(const char *dir);

/* SIGTERM to pid, then waits up to timeout_ms for it to exit. */
int cli_service_kill_wait(pid_t pid, int timeout_ms, struct err **errp);

/* Creates (on) or removes (off) run_dir/service.explicitly-stopped; creates
 * run_dir (0700) when needed. */
int cli_stop_marker(const char *run_dir, bool on, struct err **errp);

#endif
