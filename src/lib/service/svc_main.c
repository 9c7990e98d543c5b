/* capsem-service startup and shutdown (surface.md section 5.3): run dir,
 * singleton lock, stale socket handling, re-adoption, signals. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "config/settings.h"
#include "service/service.h"
#include "store/main_db.h"
#include "tls/ca.h"
#include "vm/qemu.h"

void svc_settings_defaults(struct svc_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->vm_cpus = 2;
    s->vm_ram_mb = 2048;
    s->vm_disk_gb = 16;
    str_copy(s->vm_profile, sizeof(s->vm_profile), "code");
    s->boot_timeout_secs = 60;
    s->shutdown_grace_secs = 10;
    s->cpus_min = 1;
    s->cpus_max = 8;
    s->ram_mb_min = 256;
    s->ram_mb_max = 16384;
    s->max_concurrent_vms = 10;
    s->exec_default_timeout_secs = 300;
    s->exec_max_timeout_secs = 86400;
    s->exec_max_output_bytes = 10u * 1024 * 1024;
    s->exec_max_concurrent_per_vm = 32;
    s->files_max_bytes = 10u * 1024 * 1024;
    s->failed_keep = 5;
    str_copy(s->accel_setting, sizeof(s->accel_setting), "auto");
    str_copy(s->qemu_binary, sizeof(s->qemu_binary), qemu_default_binary());
}

void svc_settings_apply(struct svc_settings *d, const struct settings *s)
{
    d->vm_cpus = (uint32_t)settings_int(s, "vm.cpus");
    d->vm_ram_mb = (uint32_t)settings_int(s, "vm.ram_mb");
    d->vm_disk_gb = (uint32_t)settings_int(s, "vm.disk_gb");
    str_copy(d->vm_profile, sizeof(d->vm_profile), settings_str(s, "vm.profile"));
    d->boot_timeout_secs = (uint32_t)settings_int(s, "vm.boot_timeout_secs");
    d->shutdown_grace_secs = (uint32_t)settings_int(s, "vm.shutdown_grace_secs");
    d->cpus_min = (uint32_t)settings_int(s, "limits.cpus_min");
    d->cpus_max = (uint32_t)settings_int(s, "limits.cpus_max");
    d->ram_mb_min = (uint32_t)settings_int(s, "limits.ram_mb_min");
    d->ram_mb_max = (uint32_t)settings_int(s, "limits.ram_mb_max");
    d->max_concurrent_vms = (uint32_t)settings_int(s, "limits.max_concurrent_vms");
    d->exec_default_timeout_secs = (uint32_t)settings_int(s, "exec.default_timeout_secs");
    d->exec_max_timeout_secs = (uint32_t)settings_int(s, "exec.max_timeout_secs");
    d->exec_max_output_bytes = (uint64_t)settings_int(s, "exec.max_output_bytes");
    d->exec_max_concurrent_per_vm = (uint32_t)settings_int(s, "exec.max_concurrent_per_vm");
    d->files_max_bytes = (uint64_t)settings_int(s, "files.max_bytes");
    d->failed_keep = (uint32_t)settings_int(s, "sessions.failed_keep");
    str_copy(d->accel_setting, sizeof(d->accel_setting), settings_str(s, "hypervisor.accel"));
    const char *q = settings_str(s, "hypervisor.qemu_binary");
    str_copy(d->qemu_binary, sizeof(d->qemu_binary), q && *q ? q : qemu_default_binary());
    json_decref(d->vm_env);
    const json_t *env = settings_json(s, "vm.env");
    d->vm_env = env ? json_deep_copy(env) : json_object();
    enum log_level lvl;
    if (log_level_parse(settings_str(s, "service.log_level"), &lvl) == 0 && !getenv("CAPSEM_LOG"))
        log_set_level(lvl);
}

static void log_issues(struct svc *s)
{
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)settings_issues(s->config), i, v)
        log_warn("config: %s", json_string_value(v));
}

static int load_config(struct svc *s, struct err **errp)
{
    s->config = settings_load(s->home, errp);
    if (!s->config)
        return -1;
    svc_settings_apply(&s->settings, s->config);
    log_issues(s);
    return 0;
}

/* GET /version on a socket with a short timeout: returns the version (heap)
 * or NULL if nothing answers. */
static char *probe_version(const char *uds, int timeout_ms)
{
    int fd = sockpath_connect(uds, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    const char *req = "GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    char resp[4096];
    size_t got = 0;
    if (fd_write_all(fd, req, strlen(req)) == 0) {
        ssize_t n;
        while (got < sizeof(resp) - 1 &&
               (n = fd_read_retry(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
            got += (size_t)n;
    }
    close(fd);
    resp[got] = '\0';
    char *body = strstr(resp, "\r\n\r\n");
    if (!body || !str_has_prefix(resp, "HTTP/1.1 200"))
        return NULL;
    json_t *j = json_loads(body + 4, 0, NULL);
    const char *v = json_string_value(json_object_get(j, "version"));
    char *out = v ? strdup(v) : NULL;
    json_decref(j);
    return out;
}

static int handle_existing(const char *uds, int *exit_code)
{
    _cleanup_free_ char *v = probe_version(uds, 500);
    if (!v)
        return 0;
    /* Said on stderr too: whoever started this copy wants to know. */
    if (strcmp(v, CAPSEM_VERSION) == 0) {
        log_info("capsem-service %s is already running on %s", v, uds);
        fprintf(stderr, "capsem-service %s is already running on %s\n", v, uds);
        *exit_code = 0;
    } else {
        log_error("another capsem-service %s is running on %s", v, uds);
        fprintf(stderr, "capsem-service: another capsem-service %s is running on %s\n", v, uds);
        *exit_code = 1;
    }
    return 1;
}

static int take_lock(struct svc *s, int *exit_code)
{
    _cleanup_free_ char *path = paths_join(s->run_dir, "service.lock");
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        log_error("open %s: %s", path, strerror(errno));
        *exit_code = 1;
        return -1;
    }
    for (int i = 0; i < 100; i++) {
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (i == 0 && handle_existing(s->uds_path, exit_code))
            return -1;
        usleep(100 * 1000);
    }
    log_error("service.lock is held by another process that does not answer; giving up");
    *exit_code = 1;
    return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct svc *s = arg;
    if (sig == SIGCHLD) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (struct svm *vm = s->vms; vm; vm = vm->next)
                if (vm->pid == pid && vm->is_child)
                    vm->proc_exited = true;
        return;
    }
    if (sig == SIGHUP) {
        struct err *e = NULL;
        if (settings_reload(s->config, &e) < 0) {
            log_error("SIGHUP: reload failed, keeping the old settings: %s", err_msg(e));
            err_free(e);
            return;
        }
        svc_settings_apply(&s->settings, s->config);
        log_info("SIGHUP: settings reloaded (they apply to VMs started from now on)");
        log_issues(s);
        return;
    }
    log_info("signal %d: shutting down (VMs keep running)", (int)sig);
    s->stopping = true;
    event_base_loopbreak(s->base);
}

static void parent_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *s = arg;
    log_info("parent process %d exited; shutting down", (int)s->parent_pid);
    event_base_loopbreak(s->base);
}

static int init_paths(struct svc *s, struct err **errp)
{
    s->home = paths_home(errp);
    if (!s->home)
        return -1;
    if (!s->run_dir && !(s->run_dir = paths_run_dir(errp)))
        return -1;
    if (!s->uds_path)
        s->uds_path = paths_join(s->run_dir, "service.sock");
    if (!s->assets_dir)
        s->assets_dir = paths_join(s->home, "assets");
    s->sessions_dir = paths_join(s->run_dir, "sessions");
    s->persistent_dir = paths_join(s->run_dir, "persistent");
    s->images_dir = paths_join(s->home, "images");
    s->share_dir = paths_share_dir();
    s->instances_dir = paths_join(s->run_dir, "instances");
    s->template_dir = paths_join(s->home, "cache");
    if (!s->process_binary)
        s->process_binary = paths_find_binary("capsem-process");
    if (!s->process_binary)
        return err_set(errp, ENOENT, "capsem-process not found next to capsem-service, in "
                                     "$CAPSEM_HOME/bin or on PATH");
    if (mkdir_p(s->home, 0700, errp) < 0 || mkdir_p(s->run_dir, 0700, errp) < 0 ||
        mkdir_p(s->sessions_dir, 0700, errp) < 0 || mkdir_p(s->instances_dir, 0700, errp) < 0 ||
        mkdir_p(s->persistent_dir, 0700, errp) < 0)
        return -1;
    return 0;
}

/* The per-install MITM CA (network.md section 5): `capsem setup` makes it;
 * a service started without setup makes it here, so a VM never starts
 * without one. An existing CA is never replaced (setup --rotate-ca does). */
static int ensure_ca(struct svc *s, struct err **errp)
{
    _cleanup_free_ char *dir = paths_join(s->home, "ca");
    _cleanup_free_ char *crt = dir ? paths_join(dir, CA_CERT_FILE) : NULL;
    if (!crt)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(crt, F_OK) == 0)
        return 0;
    uint8_t rnd[8];
    char id[2 * sizeof(rnd) + 1];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return err_set(errp, EIO, "no randomness for the CA install id");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    struct ca *ca = ca_create(dir, id, errp);
    if (!ca)
        return -1;
    ca_free(ca);
    log_info("created the install CA in %s (capsem MITM CA %s)", dir, id);
    return 0;
}

static void load_assets(struct svc *s)
{
    err_freep(&s->assets_error);
    if (s->assets_loaded)
        assets_free(&s->assets);
    s->assets_loaded = assets_load(s->assets_dir, &s->assets, &s->assets_error) == 0;
    if (s->assets_loaded)
        log_info("assets: version %s in %s", s->assets.current, s->assets_dir);
    else
        log_warn("assets: %s", err_msg(s->assets_error));
}

/* KVM verdict, probed once per host boot (cached in run/accel.json). */
static bool kvm_works(struct svc *s)
{
    if (!qemu_kvm_usable())
        return false;
    if (!s->assets_loaded)
        return true; /* no kernel to probe with; VMs cannot start anyway */
    const struct asset_version *v = assets_find(&s->assets, s->assets.current);
    _cleanup_free_ char *boot_id = NULL;
    file_read_all("/proc/sys/kernel/random/boot_id", 128, &boot_id, NULL, NULL);
    _cleanup_free_ char *cache = paths_join(s->run_dir, "accel.json");
    char key[1024];
    snprintf(key, sizeof(key), "%s|%s|%s", boot_id ? boot_id : "", s->settings.qemu_binary,
             v->kernel.sha256);
    json_t *j = json_load_file(cache, 0, NULL);
    const char *ck = json_string_value(json_object_get(j, "key"));
    if (ck && strcmp(ck, key) == 0) {
        bool ok = json_is_true(json_object_get(j, "kvm"));
        json_decref(j);
        return ok;
    }
    json_decref(j);
    char why[256] = "";
    bool ok = qemu_kvm_probe(s->settings.qemu_binary, v->kernel.path, 3000, why, sizeof(why));
    if (!ok)
        log_warn("/dev/kvm is present but not usable: %s", why);
    j = json_pack("{s:s, s:b, s:s}", "key", key, "kvm", ok, "why", why);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (text)
        file_write_atomic(cache, text, strlen(text), 0600, NULL);
    free(text);
    return ok;
}

/* One line per event in $CAPSEM_HOME/logs/service.log (surface.md section 2);
 * stderr keeps only what happens before this point (and sanitizer output). */
static void open_log(struct svc *s)
{
    _cleanup_free_ char *dir = paths_join(s->home, "logs");
    _cleanup_free_ char *path = dir ? paths_join(dir, "service.log") : NULL;
    if (!path || mkdir_p(dir, 0700, NULL) < 0)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_warn("cannot open %s: %s; logging to stderr", path, strerror(errno));
        return;
    }
    s->log_fd = fd;
    enum log_level lvl = LOG_INFO;
    const char *env = getenv("CAPSEM_LOG");
    if (env)
        log_level_parse(env, &lvl);
    log_init("capsem-service", fd, lvl);
}

static int parse_args(struct svc *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--foreground") == 0 || strcmp(a, "--no-gateway") == 0)
            continue;
        if (strcmp(a, "--version") == 0) {
            printf("capsem-service %s\n", CAPSEM_VERSION);
            exit(0);
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("usage: capsem-service [--uds-path P] [--assets-dir D] [--process-binary F]\n"
                   "                      [--parent-pid P] [--foreground]\n"
                   "The Capsem daemon: owns VMs and serves the API on run/service.sock.\n"
                   "Normally started by the capsem CLI or systemd.\n");
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "capsem-service: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--uds-path") == 0) {
            s->uds_path = strdup(v);
            char *slash = strrchr(s->uds_path, '/');
            s->run_dir = slash ? strndup(s->uds_path, (size_t)(slash - s->uds_path)) : strdup(".");
        } else if (strcmp(a, "--assets-dir") == 0) {
            s->assets_dir = strdup(v);
        } else if (strcmp(a, "--process-binary") == 0) {
            s->process_binary = strdup(v);
        } else if (strcmp(a, "--parent-pid") == 0) {
            int64_t p;
            if (parse_int64(v, 1, 4194304, &p) < 0) {
                fprintf(stderr, "capsem-service: bad --parent-pid %s\n", v);
                return -1;
            }
            s->parent_pid = (pid_t)p;
        } else if (strcmp(a, "--gateway-binary") == 0 || strcmp(a, "--gateway-port") == 0) {
            /* The gateway is not part of this version; accepted for compatibility. */
        } else {
            fprintf(stderr, "capsem-service: unknown option %s\n", a);
            return -1;
        }
        i++;
    }
    return 0;
}

static void setup_signals(struct svc *s)
{
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
        s->sig_ev[i] = evsignal_new(s->base, sigs[i], on_signal, s);
        evsignal_add(s->sig_ev[i], NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    if (s->parent_pid > 0) {
        int fd = (int)syscall(SYS_pidfd_open, s->parent_pid, 0);
        if (fd >= 0) {
            s->parent_ev = event_new(s->base, fd, EV_READ, parent_gone_cb, s);
            event_add(s->parent_ev, NULL);
        }
    }
}

static void write_pid(struct svc *s)
{
    _cleanup_free_ char *path = paths_join(s->run_dir, "service.pid");
    char pid[32];
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    file_write_atomic(path, pid, strlen(pid), 0600, NULL);
}

static void cleanup_files(struct svc *s)
{
    char real[SOCKPATH_MAX + 64];
    if (sockpath_resolve(s->uds_path, real, sizeof(real), NULL) == 0)
        unlink(real);
    _cleanup_free_ char *pid = paths_join(s->run_dir, "service.pid");
    unlink(pid);
}

/* Releases everything at exit (VMs keep running: only our memory goes). */
static void svc_free(struct svc *s)
{
    while (s->vms)
        svc_vm_free(s->vms);
    for (size_t i = 0; i < ARRAY_SIZE(s->sig_ev); i++)
        if (s->sig_ev[i])
            event_free(s->sig_ev[i]);
    if (s->parent_ev)
        event_free(s->parent_ev);
    if (s->assets_loaded)
        assets_free(&s->assets);
    err_free(s->assets_error);
    if (s->db)
        main_db_close(s->db);
    settings_free(s->config);
    json_decref(s->settings.vm_env);
    char *strs[] = {s->home,           s->run_dir,        s->uds_path,
                    s->assets_dir,     s->process_binary, s->sessions_dir,
                    s->instances_dir,  s->template_dir,   s->persistent_dir,
                    s->images_dir,     s->share_dir};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
        free(strs[i]);
    if (s->base)
        event_base_free(s->base);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
}

static void close_log(struct svc *s)
{
    if (s->log_fd >= 0) {
        log_init("capsem-service", -1, LOG_INFO);
        close(s->log_fd);
        s->log_fd = -1;
    }
}

int svc_main(int argc, char **argv)
{
    struct svc storage = {0}, *s = &storage;
    s->listen_fd = s->lock_fd = s->log_fd = -1;
    log_init("capsem-service", -1, LOG_INFO);
    const char *lvl = getenv("CAPSEM_LOG");
    enum log_level l;
    if (lvl && log_level_parse(lvl, &l) == 0)
        log_set_level(l);
    svc_settings_defaults(&s->settings);
    if (parse_args(s, argc, argv) < 0)
        return 2;
    struct err *e = NULL;
    int exit_code = 0;
    if (init_paths(s, &e) < 0) {
        log_error("%s", err_msg(e));
        return 1;
    }
    open_log(s);
    if (load_config(s, &e) < 0) {
        log_error("%s", err_msg(e));
        return 1;
    }
    if (take_lock(s, &exit_code) < 0)
        return exit_code;
    if (handle_existing(s->uds_path, &exit_code))
        return exit_code;
    load_assets(s);
    if (ensure_ca(s, &e) < 0) {
        log_error("install CA: %s", err_msg(e));
        return 1;
    }
    _cleanup_free_ char *dbdir = paths_join(s->home, "sessions");
    _cleanup_free_ char *dbpath = dbdir ? paths_join(dbdir, "main.db") : NULL;
    if (!dbpath || mkdir_p(dbdir, 0700, &e) < 0 || main_db_open(dbpath, &s->db, &e) < 0) {
        log_error("sessions/main.db: %s", err_msg(e));
        return 1;
    }
    if (qemu_choose_accel(s->settings.accel_setting, kvm_works(s), &s->accel, &e) < 0) {
        log_error("%s", err_msg(e));
        return 1;
    }
    if (strcmp(s->accel, "tcg") == 0) {
        s->tsc_khz = qemu_host_tsc_khz();
        log_warn("KVM is not usable: VMs run under TCG software emulation (slow). "
                 "Host TSC %u kHz.", s->tsc_khz);
    }
    s->base = event_base_new();
    if (svc_http_listen(s, &e) < 0) {
        log_error("%s", err_msg(e));
        return 1;
    }
    write_pid(s);
    setup_signals(s);
    svc_templates_sweep(s);
    svc_load_registry(s);
    log_info("capsem-service %s listening on %s (accel %s)", CAPSEM_VERSION, s->uds_path,
             s->accel);
    event_base_dispatch(s->base);
    svc_stats_shutdown();
    svc_templates_abort(s);
    svc_http_close_all(s);
    cleanup_files(s);
    log_info("capsem-service stopped");
    svc_free(s);
    close_log(s);
    return 0;
}
