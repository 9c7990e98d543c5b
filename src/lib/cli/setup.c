/* `capsem setup` steps; see setup.h. */
#include "cli/setup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/paths.h"
#include "base/util.h"
#include "cli/svcctl.h"
#include "config/settings.h"
#include "vm/assets_install.h"

#define SERVICE_STOP_MS 10000
#define MAX_VERSIONS    256

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
