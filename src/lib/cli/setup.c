/* `capsem setup` steps; see setup.h. */
#include "cli/setup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/paths.h"
#include "base/util.h"
#include "base/uuid.h"
#include "cli/svcctl.h"
#include "config/settings.h"
#include "creds/creds.h"
#include "policy/policy.h"
#include "tls/ca.h"
#include "vm/assets_install.h"

#define SERVICE_STOP_MS 10000
#define MAX_VERSIONS    256
#define SETUP_JSON_MAX  (64u * 1024u)

static void report(struct cli_setup *s, enum cli_step_level level, const char *step,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(struct cli_setup *s, enum cli_step_level level, const char *step,
                   const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (level == CLI_STEP_WARN)
        s->warnings++;
    if (s->step)
        s->step(s->step_arg, level, step, text);
}

static int fail(struct err **errp, const char *step)
{
    err_prefix(errp, "%s", step);
    return -1;
}

/* ---------- user.toml ---------- */

char *cli_user_toml_template(void)
{
    return settings_user_toml_template(); /* the settings registry knows every key */
}

/* ---------- asset source ---------- */

static bool dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *cli_assets_source(const char *assets_from, struct err **errp)
{
    const char *env = getenv("CAPSEM_ASSETS_SOURCE");
    const char *given = assets_from && *assets_from ? assets_from : env && *env ? env : NULL;
    if (given) {
        if (strstr(given, "://")) {
            err_set(errp, ENOTSUP,
                    "cannot install assets from %s: this version installs from a directory "
                    "only (download it first, then pass --assets-from DIR)",
                    given);
            return NULL;
        }
        char *s = strdup(given);
        if (!s)
            err_set(errp, ENOMEM, "out of memory");
        return s;
    }
    _cleanup_free_ char *self = paths_self_dir();
    char *slash = self ? strrchr(self, '/') : NULL;
    if (!slash)
        return NULL;
    *slash = '\0';
    char *dflt = paths_join(*self ? self : "/", "share/capsem/assets");
    if (dflt && dir_exists(dflt))
        return dflt;
    free(dflt);
    return NULL;
}

/* ---------- steps ---------- */

static int step_layout(struct cli_setup *s, struct err **errp)
{
    static const char *const subdirs[] = {"assets", "images", "logs"};
    if (mkdir_p(s->home, 0700, errp) < 0)
        return -1;
    if (chmod(s->home, 0700) < 0)
        return err_sys(errp, "chmod %s", s->home);
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        _cleanup_free_ char *d = paths_join(s->home, subdirs[i]);
        if (!d || mkdir_p(d, 0700, errp) < 0)
            return d ? -1 : err_set(errp, ENOMEM, "out of memory");
    }
    if (mkdir_p(s->run_dir, 0700, errp) < 0)
        return -1;
    report(s, CLI_STEP_OK, "layout", "%s (0700)", s->home);
    return 0;
}

struct install_log {
    struct buf installed; /* "v1, v2" */
    struct buf skipped;
    const char *how;
};

static void on_assets(void *arg, enum assets_event ev, const char *version, const char *detail)
{
    struct install_log *l = arg;
    struct buf *b = ev == ASSETS_EV_SKIP   ? &l->skipped
                    : ev == ASSETS_EV_DONE ? &l->installed
                                           : NULL;
    if (b)
        buf_printf(b, "%sv%s", b->len ? ", " : "", version);
    if (ev == ASSETS_EV_DONE)
        l->how = detail;
}

static int read_current(struct cli_setup *s, const char *assets_dir, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(assets_dir, "manifest.json");
    json_t *m = path ? json_load_file(path, 0, NULL) : NULL;
    const char *cur = json_string_value(json_object_get(m, "current"));
    free(s->assets_version);
    s->assets_version = cur ? strdup(cur) : NULL;
    json_decref(m);
    if (!s->assets_version)
        return err_status(errp, 412, "%s names no current version", path ? path : assets_dir);
    return 0;
}

static int install_from(struct cli_setup *s, const char *src, const char *dst, struct err **errp)
{
    struct install_log l = {.how = "linked"};
    buf_init(&l.installed, 4096);
    buf_init(&l.skipped, 4096);
    int rc = assets_install(src, dst, s->force, on_assets, &l, errp);
    if (rc == 0)
        rc = read_current(s, dst, errp);
    if (rc == 0 && l.installed.len)
        report(s, CLI_STEP_OK, "assets", "%s %.*s from %s (%s, sha256 verified); current v%s",
               s->force ? "re-installed" : "installed", (int)l.installed.len,
               (const char *)buf_head(&l.installed), src, l.how, s->assets_version);
    else if (rc == 0)
        report(s, CLI_STEP_OK, "assets", "%.*s already installed; current v%s", (int)l.skipped.len,
               (const char *)buf_head(&l.skipped), s->assets_version);
    buf_free(&l.installed);
    buf_free(&l.skipped);
    return rc;
}

static int step_assets(struct cli_setup *s, struct err **errp)
{
    _cleanup_free_ char *dst = paths_join(s->home, "assets");
    _cleanup_free_ char *manifest = dst ? paths_join(dst, "manifest.json") : NULL;
    if (!manifest)
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_free_ char *src = cli_assets_source(s->assets_from, errp);
    if (src)
        return install_from(s, src, dst, errp);
    if (errp && *errp)
        return -1;
    if (access(manifest, F_OK) < 0)
        return err_status(errp, 412,
                          "no guest assets to install: pass --assets-from DIR or set "
                          "CAPSEM_ASSETS_SOURCE (nothing at <prefix>/share/capsem/assets)");
    if (read_current(s, dst, errp) < 0)
        return -1;
    report(s, CLI_STEP_OK, "assets", "v%s installed (no asset source to update from)",
           s->assets_version);
    return 0;
}

static int step_config(struct cli_setup *s, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(s->home, "user.toml");
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(path, F_OK) == 0) {
        report(s, CLI_STEP_OK, "config", "%s kept", path);
        return 0;
    }
    _cleanup_free_ char *text = cli_user_toml_template();
    if (!text)
        return err_set(errp, ENOMEM, "out of memory");
    if (file_write_atomic(path, text, strlen(text), 0600, errp) < 0)
        return -1;
    report(s, CLI_STEP_OK, "config", "wrote %s (every setting at its default)", path);
    return 0;
}

/* ---------- credentials and CA (network.md sections 5 and 10) ---------- */

/* Where each provider's key is read from, preferred first. */
static const char *const key_vars[CREDS_NPROV][2] = {
    [CREDS_ANTHROPIC] = {"ANTHROPIC_API_KEY", NULL},
    [CREDS_OPENAI] = {"OPENAI_API_KEY", NULL},
    [CREDS_GOOGLE] = {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
    [CREDS_GITHUB] = {"GH_TOKEN", "GITHUB_TOKEN"},
};

static const char *env_lookup(char *const *env, const char *name)
{
    if (!env)
        return getenv(name);
    size_t n = strlen(name);
    for (; *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

/* Appends ", name" (or "name" first) to a provider list. */
static void list_add(char *list, size_t cap, const char *name)
{
    size_t n = strlen(list);
    snprintf(list + n, cap - n, "%s%s", n ? ", " : "", name);
}

/* Keys in the environment into values[]; bad ones are reported and left
 * out. Returns how many were taken. Values are never printed. */
static int keys_from_env(struct cli_setup *s, const char *values[CREDS_NPROV])
{
    int found = 0;
    for (int p = 0; p < CREDS_NPROV; p++) {
        const char *var = NULL, *v = NULL;
        for (size_t i = 0; i < 2 && key_vars[p][i] && !var; i++) {
            v = env_lookup(s->env, key_vars[p][i]);
            var = v && *v ? key_vars[p][i] : NULL;
        }
        if (!var)
            continue;
        _cleanup_err_ struct err *e = NULL;
        if (creds_secret_check((enum creds_provider)p, v, &e) < 0) {
            report(s, CLI_STEP_WARN, "credentials", "%s ignored: %s", var, err_msg(e));
            continue;
        }
        values[p] = v;
        found++;
    }
    return found;
}

static int report_stored_keys(struct cli_setup *s, const char *path)
{
    _cleanup_err_ struct err *e = NULL;
    struct creds *c = creds_load(s->home, &e);
    if (!c) {
        report(s, CLI_STEP_WARN, "credentials", "%s", err_msg(e));
        return 0;
    }
    char held[64] = "";
    for (int p = 0; p < CREDS_NPROV; p++)
        if (creds_secret(c, (enum creds_provider)p))
            list_add(held, sizeof(held), creds_provider_name((enum creds_provider)p));
    creds_free(c);
    if (*held)
        report(s, CLI_STEP_OK, "credentials", "no API keys in the environment; %s holds %s", path,
               held);
    else
        report(s, CLI_STEP_SKIP, "credentials",
               "no API keys in the environment (ANTHROPIC_API_KEY, OPENAI_API_KEY, "
               "GEMINI_API_KEY or GOOGLE_API_KEY, GH_TOKEN or GITHUB_TOKEN)");
    return 0;
}

static int step_credentials(struct cli_setup *s, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(s->home, CREDS_FILE);
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    const char *values[CREDS_NPROV] = {NULL};
    if (keys_from_env(s, values) == 0)
        return report_stored_keys(s, path);
    struct creds *old = creds_load(s->home, errp);
    if (!old)
        return -1;
    char stored[64] = "", same[64] = "";
    for (int p = 0; p < CREDS_NPROV; p++) {
        const char *cur = creds_secret(old, (enum creds_provider)p);
        const char *name = creds_provider_name((enum creds_provider)p);
        if (!values[p])
            continue;
        if (cur && strcmp(cur, values[p]) == 0) {
            values[p] = NULL; /* keep: nothing to rewrite */
            list_add(same, sizeof(same), name);
        } else {
            list_add(stored, sizeof(stored), name);
        }
    }
    creds_free(old);
    if (*stored && creds_save(s->home, values, errp) < 0)
        return -1;
    if (*stored)
        report(s, CLI_STEP_OK, "credentials", "stored %s in %s (0600)%s%s%s", stored, path,
               *same ? "; " : "", same, *same ? " unchanged" : "");
    else
        report(s, CLI_STEP_OK, "credentials", "%s unchanged in %s", same, path);
    return 0;
}

static bool file_present(const char *dir, const char *name)
{
    _cleanup_free_ char *p = paths_join(dir, name);
    struct stat st;
    return p && lstat(p, &st) == 0;
}

/* The per-install MITM CA: created when absent, checked when present,
 * replaced with --rotate-ca; plus the telemetry HMAC key beside it. */
static int step_ca(struct cli_setup *s, struct err **errp)
{
    _cleanup_free_ char *dir = paths_join(s->home, "ca");
    char id[UUID_STR_LEN];
    if (!dir)
        return err_set(errp, ENOMEM, "out of memory");
    if (uuid_v4(id) < 0)
        return err_set(errp, EIO, "cannot draw a random install id");
    bool exists = file_present(dir, CA_CERT_FILE) || file_present(dir, CA_KEY_FILE);
    struct ca *ca = s->rotate_ca ? ca_rotate(dir, id, errp)
                    : exists     ? ca_load(dir, errp)
                                 : ca_create(dir, id, errp);
    char fp[96];
    if (!ca || ca_fingerprint_sha256(ca, fp, errp) < 0) {
        ca_free(ca);
        return -1;
    }
    ca_free(ca);
    bool had_key = file_present(dir, CREDS_HMAC_KEY_FILE);
    uint8_t key[32];
    int rc = creds_hmac_key(s->home, key, errp);
    explicit_bzero(key, sizeof(key));
    if (rc < 0)
        return -1;
    const char *tk = had_key ? "" : "; telemetry key created";
    if (s->rotate_ca && exists)
        report(s, CLI_STEP_OK, "ca",
               "replaced %s/%s (install id %s, SHA-256 %s); the previous pair is kept as "
               "%s.old and %s.old; running VMs keep theirs until restarted%s",
               dir, CA_CERT_FILE, id, fp, CA_CERT_FILE, CA_KEY_FILE, tk);
    else if (exists)
        report(s, CLI_STEP_OK, "ca", "%s/%s kept (SHA-256 %s)%s", dir, CA_CERT_FILE, fp, tk);
    else
        report(s, CLI_STEP_OK, "ca", "created %s/%s (install id %s, SHA-256 %s)%s", dir,
               CA_CERT_FILE, id, fp, tk);
    return 0;
}

/* ---------- npm registry host (network.md 8.6, docs/policy.md "Host lists") ---------- */

#define NPM_TIMEOUT_MS 10000
#define NPM_OUTPUT_MAX 4096

/* A lowercase host name the policy accepts, and not an IP literal. */
static int plain_host(const char *in, size_t len, char out[256], struct err **errp)
{
    uint32_t ip;
    int n = policy_host_normalize(in, len, out, 256, errp);
    if (n < 0)
        return -1;
    if (policy_ipv4_parse(out, (size_t)n, &ip) == 0)
        return err_status(errp, 400, "%s is an IP address, not a host name", out);
    return n;
}

int cli_npm_registry_host(const char *url, char out[256], struct err **errp)
{
    while (*url == ' ' || *url == '\t' || *url == '\r' || *url == '\n')
        url++;
    size_t len = strlen(url);
    while (len > 0 && (url[len - 1] == ' ' || url[len - 1] == '\t' || url[len - 1] == '\r' ||
                       url[len - 1] == '\n'))
        len--;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return err_status(errp, 400, "the registry URL holds spaces or control characters");
    size_t skip = strncasecmp(url, "https://", 8) == 0  ? 8
                  : strncasecmp(url, "http://", 7) == 0 ? 7
                                                        : 0;
    if (!skip)
        return err_status(errp, 400, "'%.*s' is not an http(s) URL", (int)MIN(len, 200u), url);
    const char *host = url + skip;
    size_t hlen = strcspn(host, "/?#");
    hlen = MIN(hlen, len - skip);
    if (memchr(host, '@', hlen))
        return err_status(errp, 400, "the registry URL carries user information; not recorded");
    if (memchr(host, '[', hlen))
        return err_status(errp, 400, "the registry URL names an IPv6 address, not a host name");
    const char *colon = memchr(host, ':', hlen);
    if (colon) {
        char port[8];
        int64_t v;
        size_t plen = hlen - (size_t)(colon + 1 - host);
        if (plen == 0 || plen >= sizeof(port))
            return err_status(errp, 400, "the registry URL has a bad port");
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
        if (port[0] < '0' || port[0] > '9' || parse_int64(port, 1, 65535, &v) < 0)
            return err_status(errp, 400, "the registry URL has a bad port");
        hlen = (size_t)(colon - host);
    }
    return plain_host(host, hlen, out, errp);
}

/* Executable `name` in a PATH list (empty entries are skipped, not ".").
 * malloc'd, NULL when absent. */
static char *find_on_path(const char *path, const char *name)
{
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < 4000) {
            char dir[4096];
            memcpy(dir, path, n);
            dir[n] = '\0';
            char *p = paths_join(dir, name);
            struct stat st;
            if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
                return p;
            free(p);
        }
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Reads the child's stdout until EOF and exit, or the deadline. Returns 0
 * with *status set, or -1 (timed out, output over the cap, poll failure):
 * the caller then kills the process group. */
static int npm_collect(int out_fd, int pid_fd, unsigned timeout_ms, char *buf, size_t cap,
                       size_t *len, int *status, pid_t pid, struct err **errp)
{
    uint64_t deadline = time_mono_ms() + timeout_ms;
    bool eof = false, exited = false;
    *len = 0;
    while (!eof || !exited) {
        uint64_t now = time_mono_ms();
        if (now >= deadline)
            return err_set(errp, ETIMEDOUT, "npm config get registry did not answer within %u s",
                           (timeout_ms + 999) / 1000);
        struct pollfd fds[2] = {{.fd = eof ? -1 : out_fd, .events = POLLIN},
                                {.fd = exited ? -1 : pid_fd, .events = POLLIN}};
        int r = poll(fds, 2, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return err_sys(errp, "poll");
        if (r <= 0)
            continue;
        if (fds[0].revents) {
            ssize_t n = fd_read_retry(out_fd, buf + *len, cap - 1 - *len);
            if (n < 0)
                return err_sys(errp, "read the output of npm");
            eof = n == 0;
            *len += (size_t)n;
            if (*len >= cap - 1)
                return err_set(errp, EMSGSIZE, "npm config get registry printed over %zu bytes",
                               cap - 1);
        }
        if (fds[1].revents)
            exited = true;
    }
    buf[*len] = '\0';
    if (waitpid(pid, status, 0) < 0)
        return err_sys(errp, "wait for npm");
    return 0;
}

/* `npm config get registry` with an argv array, stdin and stderr on
 * /dev/null, in its own process group (killed whole on timeout). */
static int npm_registry_url(struct cli_setup *s, const char *npm, char *buf, size_t cap,
                            struct err **errp)
{
    char *const argv[] = {"npm", "config", "get", "registry", NULL};
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return err_sys(errp, "pipe");
    _cleanup_close_ int rd = pipefd[0];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGHUP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, npm, &fa, &at, argv, s->env ? s->env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pipefd[1]);
    if (rc != 0) {
        errno = rc;
        return err_sys(errp, "run %s", npm);
    }
    _cleanup_close_ int pid_fd = (int)syscall(SYS_pidfd_open, pid, 0);
    size_t len;
    int status = 0;
    unsigned timeout = s->npm_timeout_ms ? s->npm_timeout_ms : NPM_TIMEOUT_MS;
    if (pid_fd < 0)
        rc = err_sys(errp, "pidfd_open");
    else
        rc = npm_collect(rd, pid_fd, timeout, buf, cap, &len, &status, pid, errp);
    if (rc < 0) {
        kill(-pid, SIGKILL); /* its group: npm may have started helpers */
        waitpid(pid, NULL, 0);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return err_set(errp, EIO, "npm config get registry failed (%s %d)",
                       WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

static void step_npm(struct cli_setup *s)
{
    s->npm_host[0] = '\0';
    _cleanup_free_ char *npm = find_on_path(env_lookup(s->env, "PATH"), "npm");
    if (!npm) {
        report(s, CLI_STEP_SKIP, "npm", "npm not found on PATH; the @npm host list stays empty");
        return;
    }
    char out[NPM_OUTPUT_MAX];
    _cleanup_err_ struct err *e = NULL;
    if (npm_registry_url(s, npm, out, sizeof(out), &e) < 0 ||
        cli_npm_registry_host(out, s->npm_host, &e) < 0) {
        s->npm_host[0] = '\0';
        report(s, CLI_STEP_WARN, "npm", "%s; the @npm host list stays empty", err_msg(e));
        return;
    }
    report(s, CLI_STEP_OK, "npm", "registry host %s (from %s config get registry)", s->npm_host,
           npm);
}

int cli_setup_npm_host(const char *home, char out[256], struct err **errp)
{
    out[0] = '\0';
    _cleanup_free_ char *path = paths_join(home, "setup.json");
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (!path)
        return err_set(errp, ENOMEM, "out of memory");
    struct stat st;
    if (stat(path, &st) < 0 && errno == ENOENT)
        return 0;
    if (file_read_all(path, SETUP_JSON_MAX, &text, &len, errp) < 0)
        return -1;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j)
        return err_status(errp, 400, "%s:%d: %s", path, jerr.line, jerr.text);
    json_t *v = json_object_get(j, "npm_registry_host");
    const char *h = json_string_value(v);
    int rc = h ? 1 : 0;
    if (v && !h && !json_is_null(v))
        rc = err_status(errp, 400, "npm_registry_host must be a string");
    else if (h && plain_host(h, strlen(h), out, errp) < 0)
        rc = -1;
    json_decref(j);
    if (rc < 0) {
        out[0] = '\0';
        err_prefix(errp, "%s", path);
    }
    return rc;
}

static int step_service(struct cli_setup *s, struct err **errp)
{
    const char *var = cli_custom_home_var();
    if (s->no_service) {
        report(s, CLI_STEP_SKIP, "service", "--no-service given");
    } else if (var) {
        report(s, CLI_STEP_SKIP, "service",
               "%s is set; the user service runs the default ~/.capsem only", var);
    } else if (!cli_systemd_user_running()) {
        report(s, CLI_STEP_SKIP, "service",
               "no systemd user instance; the CLI starts capsem-service on demand");
    } else if (cli_unit_installed() && !s->force) {
        report(s, CLI_STEP_OK, "service", "capsem.service already installed");
    } else if (s->ask && !s->ask(s->ask_arg, "Install the capsem user service? [Y/n] ")) {
        report(s, CLI_STEP_SKIP, "service", "declined; install later with: capsem service install");
    } else {
        if (cli_service_install(s->run_dir, errp) < 0)
            return -1;
        report(s, CLI_STEP_OK, "service", "installed and started capsem.service");
    }
    return 0;
}

static int step_kvm(struct cli_setup *s, struct err **errp)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        report(s, CLI_STEP_OK, "kvm", "/dev/kvm is accessible");
    } else if (errno == ENOENT) {
        report(s, CLI_STEP_WARN, "kvm",
               "no /dev/kvm: VMs use slow software emulation (TCG); enable virtualization "
               "(or nested virtualization) to get KVM");
    } else {
        report(s, CLI_STEP_WARN, "kvm",
               "/dev/kvm is not accessible (%s): VMs use slow software emulation (TCG); add "
               "yourself to group kvm (sudo usermod -aG kvm $USER) and log in again",
               strerror(errno));
    }
    return 0;
}

static size_t installed_versions(const char *assets_dir, json_t **manifest, const char **out,
                                 size_t cap)
{
    _cleanup_free_ char *path = paths_join(assets_dir, "manifest.json");
    *manifest = path ? json_load_file(path, 0, NULL) : NULL;
    size_t n = 0;
    const char *ver;
    json_t *v;
    json_object_foreach(json_object_get(*manifest, "versions"), ver, v)
    {
        if (n < cap)
            out[n++] = ver;
    }
    return n;
}

static int step_cleanup(struct cli_setup *s, struct err **errp)
{
    _cleanup_free_ char *dir = paths_join(s->home, "assets");
    json_t *m = NULL;
    const char *installed[MAX_VERSIONS], *keep[MAX_VERSIONS * 2];
    size_t n = dir ? installed_versions(dir, &m, installed, MAX_VERSIONS) : 0;
    _cleanup_err_ struct err *e = NULL;
    int nkeep = cli_assets_in_use(s->home, s->run_dir, installed, n, keep, &e);
    int rc = 0;
    if (nkeep < 0) {
        report(s, CLI_STEP_SKIP, "cleanup", "%s; nothing removed", err_msg(e));
        goto out;
    }
    for (size_t i = 0; i < s->nkeep && (size_t)nkeep < ARRAY_SIZE(keep); i++)
        keep[nkeep++] = s->keep[i];
    int removed = assets_cleanup(dir, keep, (size_t)nkeep, errp);
    if (removed < 0) {
        rc = -1;
        goto out;
    }
    if (removed)
        report(s, CLI_STEP_OK, "cleanup", "removed %d unused asset version%s", removed,
               removed == 1 ? "" : "s");
    else
        report(s, CLI_STEP_OK, "cleanup", "no unused asset versions");
out:
    json_decref(m);
    return rc;
}

static int step_state(struct cli_setup *s, struct err **errp)
{
    char now[32];
    time_format_rfc3339(time_real_ms() / 1000, now, sizeof(now));
    json_t *j = json_pack("{s:s, s:s, s:s?}", "version", CAPSEM_VERSION, "completed_at", now,
                          "assets_version", s->assets_version);
    if (j && s->npm_host[0])
        json_object_set_new(j, "npm_registry_host", json_string(s->npm_host));
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    _cleanup_free_ char *path = paths_join(s->home, "setup.json");
    _cleanup_free_ char *line = NULL;
    int rc = text && path && asprintf(&line, "%s\n", text) >= 0
                 ? file_write_atomic(path, line, strlen(line), 0600, errp)
                 : err_set(errp, ENOMEM, "out of memory");
    free(text);
    if (rc == 0)
        report(s, CLI_STEP_OK, "state", "wrote %s", path);
    return rc;
}

int cli_setup_run(struct cli_setup *s, struct err **errp)
{
    s->warnings = 0;
    if (step_layout(s, errp) < 0)
        return fail(errp, "layout");
    if (step_assets(s, errp) < 0)
        return fail(errp, "assets");
    if (step_config(s, errp) < 0)
        return fail(errp, "config");
    if (step_credentials(s, errp) < 0)
        return fail(errp, "credentials");
    if (step_ca(s, errp) < 0)
        return fail(errp, "ca");
    step_npm(s); /* never fatal: a [warn] at worst */
    report(s, CLI_STEP_SKIP, "dashboard", "not part of this version");
    if (step_service(s, errp) < 0)
        return fail(errp, "service");
    if (step_kvm(s, errp) < 0)
        return fail(errp, "kvm");
    if (step_cleanup(s, errp) < 0)
        return fail(errp, "cleanup");
    if (step_state(s, errp) < 0)
        return fail(errp, "state");
    return 0;
}

void cli_setup_free(struct cli_setup *s)
{
    free(s->assets_version);
    s->assets_version = NULL;
}

/* ---------- versions in use ---------- */

/* Adds every installed version that text mentions ("v<ver>/" in a path or
 * "<ver>" as a JSON string). */
static size_t mark_mentions(const char *text, const char *const *installed, size_t n, bool *used)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        char pat1[300], pat2[300];
        snprintf(pat1, sizeof(pat1), "v%s/", installed[i]);
        snprintf(pat2, sizeof(pat2), "\"%s\"", installed[i]);
        if (strstr(text, pat1) || strstr(text, pat2)) {
            used[i] = true;
            found++;
        }
    }
    return found;
}

/* Reads dir/<entry>/<file> for each entry of dir; a VM directory without a
 * readable file is an error (we cannot tell what it uses). */
static int scan_dir(const char *dir, const char *file, bool required, const char *const *installed,
                    size_t n, bool *used, struct err **errp)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : err_sys(errp, "open %s", dir);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *sub = paths_join(dir, de->d_name);
        _cleanup_free_ char *path = sub ? paths_join(sub, file) : NULL;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (!path || !dir_exists(sub))
            continue;
        if (file_read_all(path, 1u << 20, &text, &len, NULL) == 0)
            mark_mentions(text, installed, n, used);
        else if (required)
            rc = err_set(errp, ENOENT, "cannot tell which asset version %s uses", sub);
    }
    closedir(d);
    return rc;
}

int cli_assets_in_use(const char *home, const char *run_dir, const char *const *installed, size_t n,
                      const char **keep, struct err **errp)
{
    bool used[MAX_VERSIONS] = {false};
    n = MIN(n, (size_t)MAX_VERSIONS);
    _cleanup_free_ char *images = paths_join(home, "images");
    _cleanup_free_ char *sessions = paths_join(run_dir, "sessions");
    _cleanup_free_ char *persistent = paths_join(run_dir, "persistent");
    if (!images || !sessions || !persistent)
        return err_set(errp, ENOMEM, "out of memory");
    if (scan_dir(images, "image.json", true, installed, n, used, errp) < 0 ||
        scan_dir(sessions, "vm.json", true, installed, n, used, errp) < 0 ||
        scan_dir(persistent, "vm.json", true, installed, n, used, errp) < 0)
        return -1;
    int k = 0;
    for (size_t i = 0; i < n; i++)
        if (used[i])
            keep[k++] = installed[i];
    return k;
}

/* ---------- systemd unit ---------- */

int cli_service_install(const char *run_dir, struct err **errp)
{
    _cleanup_free_ char *bin = paths_find_binary("capsem-service");
    if (!bin)
        return err_set(errp, ENOENT,
                       "capsem-service not found next to capsem, in $CAPSEM_HOME/bin or on PATH");
    _cleanup_free_ char *real = realpath(bin, NULL);
    if (!real)
        return err_sys(errp, "resolve %s", bin);
    *strrchr(real, '/') = '\0';
    pid_t pid = cli_service_pid(run_dir);
    if (pid > 0 && cli_service_kill_wait(pid, SERVICE_STOP_MS, errp) < 0)
        return -1;
    if (cli_stop_marker(run_dir, false, errp) < 0)
        return -1;
    return cli_unit_install(*real ? real : "/", errp);
}
