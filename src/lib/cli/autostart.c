/* Finding and starting capsem-service for the CLI; see autostart.h. */
#include "cli/autostart.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli/svcctl.h"

int cli_service_version(struct cli_client *c, char **version, struct err **errp)
{
    json_t *j = NULL;
    if (cli_client_call(c, "GET", "/version", NULL, CLI_CONNECT_TIMEOUT, &j, errp) < 0)
        return -1;
    const char *v = json_string_value(json_object_get(j, "version"));
    *version = strdup(v ? v : "unknown");
    json_decref(j);
    if (!*version)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

/* In the child between fork and exec: only async-signal-safe calls. */
static void __attribute__((noreturn))
exec_detached(const char *binary, char *const argv[], int null_fd, int log_fd)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    close_range(3, ~0U, 0);
    execv(binary, argv);
    _exit(127);
}

pid_t cli_service_spawn(const char *binary, const char *log_path, struct err **errp)
{
    _cleanup_free_ char *logdir = strdup(log_path);
    char *slash = logdir ? strrchr(logdir, '/') : NULL;
    if (slash && slash != logdir) {
        *slash = '\0';
        if (mkdir_p(logdir, 0700, errp) < 0)
            return -1;
    }
    _cleanup_close_ int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return err_sys(errp, "open /dev/null");
    _cleanup_close_ int log_fd =
        open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (log_fd < 0)
        return err_sys(errp, "open %s", log_path);
    char *const argv[] = {(char *)binary, NULL};
    pid_t pid = fork();
    if (pid < 0)
        return err_sys(errp, "fork");
    if (pid == 0)
        exec_detached(binary, argv, null_fd, log_fd);
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Polls /version until it answers, the child fails or the deadline passes. */
static int wait_for_service(struct cli_client *c, pid_t pid, const char *log_path, int wait_ms,
                            char **version, struct err **errp)
{
    uint64_t deadline = time_mono_ms() + (uint64_t)wait_ms;
    long pause = 20;
    bool child_gone = false;
    for (;;) {
        _cleanup_err_ struct err *e = NULL;
        if (cli_service_version(c, version, &e) == 0)
            return 0;
        if (!cli_err_is_not_running(e)) {
            err_move(errp, &e);
            return -1;
        }
        int st = 0;
        if (pid > 0 && !child_gone && waitpid(pid, &st, WNOHANG) == pid) {
            child_gone = true; /* exit 0: another instance won the lock; keep polling */
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                return err_set(errp, ECHILD, "capsem-service failed to start (%s %d); see %s",
                               WIFEXITED(st) ? "exit status" : "signal",
                               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log_path);
        }
        if (time_mono_ms() >= deadline)
            return err_set(errp, ETIMEDOUT, "capsem-service did not answer within %d s; see %s",
                           wait_ms / 1000, log_path);
        sleep_ms(pause);
        pause = MIN(pause * 2, 200);
    }
}

int cli_service_start(struct cli_client *c, const struct cli_autostart *a, char **version,
                      struct err **errp)
{
    _cleanup_free_ char *logs = paths_join(a->home, "logs");
    _cleanup_free_ char *log_path = logs ? paths_join(logs, "service.log") : NULL;
    if (!log_path)
        return err_set(errp, ENOMEM, "out of memory");
    if (a->systemd) {
        const char *start[] = {"start", CLI_UNIT_NAME, NULL};
        if (cli_systemctl(start, errp) < 0)
            return -1;
        return wait_for_service(c, -1, "journalctl --user -u capsem", a->wait_ms, version, errp);
    }
    _cleanup_free_ char *found = a->binary ? NULL : paths_find_binary("capsem-service");
    const char *bin = a->binary ? a->binary : found;
    if (!bin)
        return err_set(errp, ENOENT,
                       "capsem-service not found next to capsem, in %s/bin or on PATH; "
                       "install capsem or pass --uds-path",
                       a->home);
    pid_t pid = cli_service_spawn(bin, log_path, errp);
    if (pid < 0) {
        err_prefix(errp, "starting %s", bin);
        return -1;
    }
    return wait_for_service(c, pid, log_path, a->wait_ms, version, errp);
}

static int start_service(struct cli_client *c, const struct cli_autostart *a, char **version,
                         struct err **errp)
{
    _cleanup_free_ char *marker = paths_join(a->run_dir, "service.explicitly-stopped");
    if (!marker)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(marker, F_OK) == 0)
        return err_set(errp, ESRCH, "service is stopped; run: capsem service start");
    if (a->disabled)
        return err_set(errp, ESRCH, "%s", a->disabled);
    return cli_service_start(c, a, version, errp);
}

int cli_service_ensure(struct cli_client *c, const struct cli_autostart *a, char **version,
                       bool *started, struct err **errp)
{
    *started = false;
    _cleanup_err_ struct err *e = NULL;
    if (cli_service_version(c, version, &e) == 0)
        return 0;
    if (!a->allowed || !cli_err_is_not_running(e)) {
        err_move(errp, &e);
        return -1;
    }
    if (start_service(c, a, version, errp) < 0)
        return -1;
    *started = true;
    return 0;
}
