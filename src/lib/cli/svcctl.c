/* Controlling capsem-service from the CLI; see svcctl.h. */
#include "cli/svcctl.h"

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

#include "base/buf.h"
#include "base/paths.h"
#include "base/util.h"

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

char *cli_unit_path(struct err **errp)
{
    const char *cfg = env_nonempty("XDG_CONFIG_HOME");
    const char *home = env_nonempty("HOME");
    if (!cfg && !home) {
        err_set(errp, ENOENT, "HOME is not set: cannot find the systemd user unit directory");
        return NULL;
    }
    char *s = NULL;
    int rc = cfg ? asprintf(&s, "%s/systemd/user/%s.service", cfg, CLI_UNIT_NAME)
                 : asprintf(&s, "%s/.config/systemd/user/%s.service", home, CLI_UNIT_NAME);
    if (rc < 0) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    return s;
}

char *cli_unit_text(const char *bindir)
{
    char *s = NULL;
    if (asprintf(&s,
                 "[Unit]\n"
                 "Description=Capsem sandbox service\n"
                 "\n"
                 "[Service]\n"
                 "ExecStart=%s/capsem-service --foreground\n"
                 "Restart=on-failure\n"
                 "RestartSec=2\n"
                 "# VM processes are children of the service but must survive its restart.\n"
                 "KillMode=process\n"
                 "\n"
                 "[Install]\n"
                 "WantedBy=default.target\n",
                 bindir) < 0)
        return NULL;
    return s;
}

bool cli_unit_installed(void)
{
    _cleanup_free_ char *path = cli_unit_path(NULL);
    return path && access(path, F_OK) == 0;
}

const char *cli_custom_home_var(void)
{
    if (env_nonempty("CAPSEM_HOME"))
        return "CAPSEM_HOME";
    if (env_nonempty("CAPSEM_RUN_DIR"))
        return "CAPSEM_RUN_DIR";
    return NULL;
}

bool cli_unit_applies(void)
{
    return !cli_custom_home_var() && cli_unit_installed();
}

bool cli_systemd_user_running(void)
{
    _cleanup_free_ char *systemctl = paths_find_binary("systemctl");
    if (!systemctl)
        return false;
    char path[512];
    const char *rt = env_nonempty("XDG_RUNTIME_DIR");
    if (rt)
        snprintf(path, sizeof(path), "%s/systemd/private", rt);
    else
        snprintf(path, sizeof(path), "/run/user/%u/systemd/private", (unsigned)getuid());
    return access(path, F_OK) == 0;
}

int cli_run_wait(const char *const *argv, int *status, struct err **errp)
{
    _cleanup_close_ int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return err_sys(errp, "open /dev/null");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return err_sys(errp, "fork");
    if (pid == 0) {
        if (dup2(null_fd, STDIN_FILENO) < 0)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return err_sys(errp, "waitpid %s", argv[0]);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return err_set(errp, ENOENT, "cannot run %s", argv[0]);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

int cli_systemctl(const char *const *args, struct err **errp)
{
    const char *argv[16] = {"systemctl", "--user"};
    size_t n = 2;
    struct buf words;
    buf_init(&words, 4096);
    for (size_t i = 0; args[i] && n + 1 < ARRAY_SIZE(argv); i++) {
        argv[n++] = args[i];
        buf_printf(&words, "%s%s", i ? " " : "", args[i]);
    }
    argv[n] = NULL;
    int status = 0;
    int rc = cli_run_wait(argv, &status, errp);
    if (rc == 0 && status != 0)
        rc = err_set(errp, EIO, "systemctl --user %.*s failed (exit status %d)", (int)words.len,
                     (const char *)buf_head(&words), status);
    buf_free(&words);
    return rc;
}

int cli_unit_install(const char *bindir, struct err **errp)
{
    _cleanup_free_ char *path = cli_unit_path(errp);
    _cleanup_free_ char *text = path ? cli_unit_text(bindir) : NULL;
    if (!text)
        return path ? err_set(errp, ENOMEM, "out of memory") : -1;
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return err_set(errp, ENOMEM, "out of memory");
    *strrchr(dir, '/') = '\0';
    if (mkdir_p(dir, 0755, errp) < 0 || file_write_atomic(path, text, strlen(text), 0644, errp) < 0)
        return -1;
    const char *reload[] = {"daemon-reload", NULL};
    const char *enable[] = {"enable", "--now", CLI_UNIT_NAME, NULL};
    if (cli_systemctl(reload, errp) < 0 || cli_systemctl(enable, errp) < 0)
        return -1;
    return 0;
}

int cli_unit_uninstall(struct err **errp)
{
    _cleanup_free_ char *path = cli_unit_path(errp);
    if (!path)
        return -1;
    const char *disable[] = {"disable", "--now", CLI_UNIT_NAME, NULL};
    const char *reload[] = {"daemon-reload", NULL};
    if (cli_systemctl(disable, errp) < 0)
        return -1;
    if (unlink(path) < 0 && errno != ENOENT)
        return err_sys(errp, "remove %s", path);
    return cli_systemctl(reload, errp);
}

/* argv[0] of a process, base name only. */
static bool runs_capsem_service(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *cmd = NULL;
    size_t len = 0;
    if (file_read_all(path, 4096, &cmd, &len, NULL) < 0 || len == 0)
        return false;
    const char *slash = strrchr(cmd, '/'); /* within argv[0]: cmd is NUL-separated */
    const char *base = slash ? slash + 1 : cmd;
    return strcmp(base, "capsem-service") == 0;
}

pid_t cli_service_pid(const char *dir)
{
    _cleanup_free_ char *path = paths_join(dir, "service.pid");
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (!path || file_read_all(path, 64, &text, &len, NULL) < 0)
        return 0;
    text[strcspn(text, "\n")] = '\0';
    int64_t pid = 0;
    if (parse_int64(text, 2, INT32_MAX, &pid) < 0 || kill((pid_t)pid, 0) < 0 ||
        !runs_capsem_service((pid_t)pid))
        return 0;
    return (pid_t)pid;
}

/* Exited but not reaped yet (its parent may not be us, or may be slow). */
static bool is_zombie(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *stat = NULL;
    if (file_read_all(path, 4096, &stat, NULL, NULL) < 0)
        return true; /* gone */
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

int cli_service_kill_wait(pid_t pid, int timeout_ms, struct err **errp)
{
    if (kill(pid, SIGTERM) < 0)
        return errno == ESRCH ? 0 : err_sys(errp, "signal capsem-service (pid %d)", (int)pid);
    uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms;
    while (kill(pid, 0) == 0 || errno != ESRCH) {
        /* A child of ours (spawned in this run) must be reaped to disappear. */
        if (waitpid(pid, NULL, WNOHANG) == pid || is_zombie(pid))
            return 0;
        if (time_mono_ms() >= deadline)
            return err_set(errp, ETIMEDOUT, "capsem-service (pid %d) did not stop within %d s",
                           (int)pid, timeout_ms / 1000);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int cli_stop_marker(const char *run_dir, bool on, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(run_dir, "service.explicitly-stopped");
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    if (!on)
        return unlink(path) < 0 && errno != ENOENT ? err_sys(errp, "remove %s", path) : 0;
    if (mkdir_p(run_dir, 0700, errp) < 0)
        return -1;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    return fd < 0 ? err_sys(errp, "create %s", path) : 0;
}
