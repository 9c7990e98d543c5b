/* The VM registry: create (spawn capsem-process and connect to it), delete,
 * exec forwarding, state from process events, owner_pid expiry. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sockpath.h"
#include "base/utf8.h"
#include "base/util.h"
#include "base/uuid.h"
#include "service/service.h"
#include "vm/qemu.h"
#include "vm/vmconfig.h"

#define CONNECT_RETRY_MS 5
#define CONNECT_TIMEOUT_MS 10000
#define KILL_GRACE_MS 5000

const char *svm_status_name(enum svm_status s)
{
    static const char *const names[] = {"Running", "Stopped", "Suspended", "Defunct"};
    return names[s];
}

/* ---------- lookup and validation ---------- */

int svc_check_ref(const char *ref, struct err **errp)
{
    if (!ref || !*ref || strchr(ref, '/') || strchr(ref, '\\') || strstr(ref, ".."))
        return err_status(errp, 400, "invalid VM reference: %s", ref ? ref : "");
    return 0;
}

struct svm *svc_find_vm(struct svc *s, const char *ref)
{
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && strcmp(vm->id, ref) == 0)
            return vm;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && strcmp(vm->name, ref) == 0)
            return vm;
    return NULL;
}

unsigned svc_running_count(struct svc *s)
{
    unsigned n = 0;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && vm->status == SVM_RUNNING)
            n++;
    return n;
}

static int check_name(struct svc *s, const char *name, struct err **errp)
{
    size_t n = strlen(name);
    if (n < 1 || n > 64)
        return err_status(errp, 400, "invalid name: must be 1-64 characters");
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          (name[0] >= '0' && name[0] <= '9')))
        return err_status(errp, 400, "invalid name: %s (must start with a letter or digit)", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return err_status(errp, 400, "invalid name: %s (allowed: A-Z a-z 0-9 _ -)", name);
    }
    if (uuid_shaped(name))
        return err_status(errp, 400, "invalid name: %s (must not look like a VM id)", name);
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && strcmp(vm->name, name) == 0)
            return err_status(errp, 409, "name already in use: %s", name);
    return 0;
}

static bool env_name_ok(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    static const char *const banned[] = {"BASH_ENV", "ENV", "IFS", "CDPATH"};
    for (size_t i = 0; i < ARRAY_SIZE(banned); i++)
        if (strcmp(k, banned[i]) == 0)
            return false;
    return !str_has_prefix(k, "CAPSEM_") && !str_has_prefix(k, "LD_") &&
           !str_has_prefix(k, "BASH_FUNC_");
}

static int check_env(json_t *env, struct err **errp)
{
    if (!env || json_is_null(env))
        return 0;
    if (!json_is_object(env))
        return err_status(errp, 400, "env must be an object of strings");
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!json_is_string(v))
            return err_status(errp, 400, "env %s: value must be a string", k);
        if (!env_name_ok(k))
            return err_status(errp, 400, "env name not allowed: %s", k);
        size_t n = json_string_length(v);
        if (n > 32 * 1024)
            return err_status(errp, 400, "env %s: value longer than 32 KiB", k);
        total += n + strlen(k) + 1;
    }
    if (total > 256 * 1024)
        return err_status(errp, 400, "env: more than 256 KiB in total");
    return 0;
}

static int get_int_field(json_t *body, const char *key, int64_t *out, struct err **errp)
{
    json_t *v = json_object_get(body, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return err_status(errp, 400, "%s must be an integer", key);
    *out = json_integer_value(v);
    return 0;
}

int svc_parse_create_args(struct svc *s, json_t *body, struct svm_create_args *a,
                          struct err **errp)
{
    memset(a, 0, sizeof(*a));
    const struct svc_settings *st = &s->settings;
    json_t *name = json_object_get(body, "name");
    json_t *profile = json_object_get(body, "profile_id");
    if (name && !json_is_null(name) && !json_is_string(name))
        return err_status(errp, 400, "name must be a string");
    if (profile && !json_is_null(profile) && !json_is_string(profile))
        return err_status(errp, 400, "profile_id must be a string");
    a->name = json_string_value(name);
    a->profile = json_string_value(profile);
    if (!a->profile)
        a->profile = st->vm_profile;
    json_t *p = json_object_get(body, "persistent");
    a->persistent = a->name != NULL || (p && json_is_true(p));
    int64_t owner = 0;
    if (get_int_field(body, "cpus", &a->cpus, errp) < 0 ||
        get_int_field(body, "ram_mb", &a->ram_mb, errp) < 0 ||
        get_int_field(body, "owner_pid", &owner, errp) < 0)
        return -1;
    if (a->cpus && (a->cpus < st->cpus_min || a->cpus > st->cpus_max))
        return err_status(errp, 400, "cpus must be between %u and %u", st->cpus_min,
                          st->cpus_max);
    if (a->ram_mb && (a->ram_mb < st->ram_mb_min || a->ram_mb > st->ram_mb_max))
        return err_status(errp, 400, "ram_mb must be between %u and %u", st->ram_mb_min,
                          st->ram_mb_max);
    if (owner < 0 || owner > 4194304)
        return err_status(errp, 400, "owner_pid is not a valid pid");
    a->owner_pid = (pid_t)owner;
    a->env = json_object_get(body, "env");
    if (check_env(a->env, errp) < 0)
        return -1;
    if (json_object_get(body, "image") || json_object_get(body, "from"))
        if (!json_is_null(json_object_get(body, "image")) ||
            !json_is_null(json_object_get(body, "from")))
            return err_status(errp, 400, "images are not supported yet");
    return 0;
}

/* ---------- JSON views ---------- */

static json_t *actions_json(struct svm *vm)
{
    json_t *a = json_array();
    if (vm->status == SVM_RUNNING) {
        if (vm->persistent)
            json_array_append_new(a, json_string("pause"));
        json_array_append_new(a, json_string("stop"));
        json_array_append_new(a, json_string("fork"));
    }
    json_array_append_new(a, json_string("delete"));
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int64_t dir_usage(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode))
            total += (int64_t)st.st_blocks * 512;
    }
    closedir(d);
    return total;
}

json_t *svm_info_json(struct svm *vm, bool detailed)
{
    char created[32];
    time_format_rfc3339(vm->created_at, created, sizeof(created));
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:n, s:o, s:s, s:o, s:b, s:n, s:o, s:s}", "id",
        vm->id, "name", vm->name, "profile_id", vm->profile, "status",
        svm_status_name(vm->status), "persistent", vm->persistent, "pid",
        (json_int_t)(vm->status == SVM_RUNNING ? vm->pid : 0), "cpus", (json_int_t)vm->cpus,
        "ram_mb", (json_int_t)vm->ram_mb, "image", "base_version", str_or_null(vm->base_version),
        "created_at", created, "last_error", str_or_null(vm->last_error), "can_resume", false,
        "resume_blocked_reason", "available_actions", actions_json(vm), "uds_path", vm->uds_path);
    if (vm->status == SVM_RUNNING)
        json_object_set_new(j, "uptime_secs",
                            json_integer((json_int_t)((time_mono_ms() - vm->started_ms) / 1000)));
    if (detailed) {
        json_object_set_new(j, "size_bytes", json_integer(dir_usage(vm->vm_dir)));
        json_object_set_new(j, "accel", json_string(vm->svc->accel));
        json_object_set_new(j, "guest_ready", json_boolean(vm->guest_ready));
        const char *counters[] = {"total_requests", "allowed_requests", "denied_requests",
                                  "total_tool_calls"};
        for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
            json_object_set_new(j, counters[i], json_integer(0));
    }
    return j;
}

json_t *svm_provision_json(struct svm *vm)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:s}", "id", vm->id, "name", vm->name,
                     "profile_id", vm->profile, "status", svm_status_name(vm->status),
                     "persistent", vm->persistent, "can_resume", false, "available_actions",
                     actions_json(vm), "uds_path", vm->uds_path);
}

/* ---------- lifetime ---------- */

void svc_vm_free(struct svm *vm)
{
    struct svc *s = vm->svc;
    for (struct svm **pp = &s->vms; *pp; pp = &(*pp)->next) {
        if (*pp == vm) {
            *pp = vm->next;
            break;
        }
    }
    if (vm->owner_ev)
        event_free(vm->owner_ev);
    if (vm->owner_fd >= 0)
        close(vm->owner_fd);
    if (vm->connect_ev)
        event_free(vm->connect_ev);
    if (vm->kill_ev)
        event_free(vm->kill_ev);
    svc_ipc_free(vm->ipc);
    json_decref(vm->env);
    free(vm->base_version);
    free(vm->vm_dir);
    free(vm->uds_path);
    free(vm->last_error);
    free(vm->delete_reqs);
    free(vm);
}

static int rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *child = paths_join(path, de->d_name);
        struct stat st;
        if (child && lstat(child, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rm_rf(child);
            else
                unlink(child);
        }
    }
    closedir(d);
    return rmdir(path);
}

/* Keeps a crashed ephemeral VM's directory for inspection (newest N kept). */
static void keep_failed_dir(struct svm *vm)
{
    struct svc *s = vm->svc;
    char dst[4096];
    snprintf(dst, sizeof(dst), "%s/%s-failed-%lld", s->sessions_dir, vm->id,
             (long long)time(NULL));
    if (rename(vm->vm_dir, dst) < 0) {
        rm_rf(vm->vm_dir);
        return;
    }
    /* Prune: collect failed dirs, drop all but the newest failed_keep. */
    DIR *d = opendir(s->sessions_dir);
    if (!d)
        return;
    char *names[256];
    long long stamps[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < ARRAY_SIZE(names)) {
        const char *m = strstr(de->d_name, "-failed-");
        if (!m)
            continue;
        names[n] = strdup(de->d_name);
        stamps[n] = strtoll(m + 8, NULL, 10);
        if (names[n])
            n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        size_t newer = 0;
        for (size_t k = 0; k < n; k++)
            if (stamps[k] > stamps[i] || (stamps[k] == stamps[i] && k > i))
                newer++;
        if (newer >= s->settings.failed_keep) {
            _cleanup_free_ char *p = paths_join(s->sessions_dir, names[i]);
            if (p)
                rm_rf(p);
        }
        free(names[i]);
    }
}

static void finish_deletes(struct svm *vm)
{
    for (size_t i = 0; i < vm->ndelete_reqs; i++)
        svc_reply_json(vm->delete_reqs[i], 200, json_pack("{s:b}", "success", 1));
    vm->ndelete_reqs = 0;
}

/* The VM's process is gone (exit event, closed socket, or never started). */
static void vm_destroy(struct svm *vm, bool crashed)
{
    if (vm->gone)
        return;
    vm->gone = true;
    char real[SOCKPATH_MAX + 64];
    if (sockpath_resolve(vm->uds_path, real, sizeof(real), NULL) == 0)
        unlink(real);
    if (vm->deleting || !crashed)
        rm_rf(vm->vm_dir);
    else
        keep_failed_dir(vm);
    log_info("VM %s (%s) removed%s", vm->name, vm->id, crashed && !vm->deleting ? " (crashed)" : "");
    finish_deletes(vm);
    if (vm->on_gone)
        vm->on_gone(vm->on_gone_arg);
    svc_vm_free(vm);
}

void svc_vm_on_event(struct svm *vm, json_t *ev)
{
    const char *name = json_string_value(json_object_get(ev, "event"));
    if (!name)
        return;
    if (strcmp(name, "ready") == 0) {
        vm->guest_ready = true;
        log_info("VM %s ready after %lld ms", vm->name,
                 (long long)json_integer_value(json_object_get(ev, "boot_ms")));
    } else if (strcmp(name, "exited") == 0) {
        const char *reason = json_string_value(json_object_get(ev, "reason"));
        const char *detail = json_string_value(json_object_get(ev, "detail"));
        free(vm->last_error);
        vm->last_error = NULL;
        vm->exit_clean = reason && (strcmp(reason, "stopped") == 0 ||
                                    strcmp(reason, "guest-poweroff") == 0 ||
                                    strcmp(reason, "killed") == 0);
        if (!vm->exit_clean)
            vm->last_error = strdup(detail ? detail : reason ? reason : "exited");
        log_info("VM %s exited: %s %s", vm->name, reason ? reason : "?", detail ? detail : "");
    }
}

void svc_vm_on_disconnect(struct svm *vm)
{
    bool crashed = !vm->exit_clean && !vm->deleting;
    if (crashed && vm->last_error == NULL) /* no exit event: SIGKILL or a crash */
        vm->last_error = strdup("capsem-process exited unexpectedly");
    if (vm->create_req || vm->on_up) {
        struct err e = {.status = 500, .msg = vm->last_error ? vm->last_error : "VM failed"};
        if (vm->on_up)
            vm->on_up(vm, &e, vm->on_up_arg);
        vm->on_up = NULL;
    }
    vm_destroy(vm, crashed && !vm->deleting);
}

/* ---------- create ---------- */

static char *generate_name(struct svc *s, const char *profile)
{
    for (;;) {
        char name[80];
        snprintf(name, sizeof(name), "%s-%llu", profile, (unsigned long long)++s->name_counter);
        if (!svc_find_vm(s, name))
            return strdup(name);
    }
}

static int write_vm_json(struct svm *vm, const struct asset_version *ver,
                         const struct asset_file *rootfs, struct err **errp)
{
    struct svc *s = vm->svc;
    struct vm_config c = {0};
    char ready[4096], ws[4096];
    snprintf(ready, sizeof(ready), "%s/%s.ready", s->instances_dir, vm->id);
    snprintf(ws, sizeof(ws), "%s/%s-ws.sock", s->instances_dir, vm->id);
    c.id = vm->id;
    c.name = vm->name;
    c.profile = vm->profile;
    c.persistent = vm->persistent;
    c.cpus = vm->cpus;
    c.ram_mb = vm->ram_mb;
    c.kernel = ver->kernel.path;
    c.initrd = ver->initrd.path;
    c.rootfs = rootfs->path;
    c.vm_dir = vm->vm_dir;
    c.instance_sock = vm->uds_path;
    c.ws_sock = ws;
    c.ready_path = ready;
    c.template_dir = s->template_dir;
    c.disk_bytes = (uint64_t)s->settings.vm_disk_gb << 30;
    c.workspace_bytes = (uint64_t)s->settings.vm_disk_gb << 30;
    c.accel = (char *)s->accel;
    c.qemu_binary = s->settings.qemu_binary;
    c.tsc_khz = s->tsc_khz;
    c.boot_timeout_secs = s->settings.boot_timeout_secs;
    c.shutdown_grace_secs = s->settings.shutdown_grace_secs;
    c.max_output_bytes = s->settings.exec_max_output_bytes;
    c.max_concurrent_execs = s->settings.exec_max_concurrent_per_vm;
    c.files_max_bytes = s->settings.files_max_bytes;
    size_t n = json_object_size(vm->env);
    char *envs[1024];
    const char *k;
    json_t *v;
    json_object_foreach(vm->env, k, v)
    {
        if (c.nenv >= ARRAY_SIZE(envs))
            break;
        if (asprintf(&envs[c.nenv], "%s=%s", k, json_string_value(v)) >= 0)
            c.nenv++;
    }
    (void)n;
    c.env = envs;
    json_t *j = vm_config_to_json(&c);
    for (size_t i = 0; i < c.nenv; i++)
        free(envs[i]);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (!text)
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_free_ char *path = paths_join(vm->vm_dir, "vm.json");
    int rc = file_write_atomic(path, text, strlen(text), 0600, errp);
    free(text);
    return rc;
}

static int spawn_process(struct svm *vm, struct err **errp)
{
    struct svc *s = vm->svc;
    _cleanup_free_ char *config = paths_join(vm->vm_dir, "vm.json");
    pid_t pid = fork();
    if (pid < 0)
        return err_sys(errp, "fork");
    if (pid == 0) {
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        char *argv[] = {s->process_binary, "--config", config, NULL};
        execv(s->process_binary, argv);
        _exit(127);
    }
    vm->pid = pid;
    vm->is_child = true;
    return 0;
}

static void on_status(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    if (!vm->on_up)
        return;
    void (*fn)(struct svm *, const struct err *, void *) = vm->on_up;
    vm->on_up = NULL;
    fn(vm, e, vm->on_up_arg);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svm *vm = arg;
    int sfd = sockpath_connect(vm->uds_path, NULL);
    if (sfd >= 0) {
        vm->ipc = svc_ipc_new(vm, sfd);
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "status"), NULL, 0, on_status, NULL);
        return;
    }
    bool dead = vm->proc_exited;
    if (!dead && ++vm->connect_tries * CONNECT_RETRY_MS < CONNECT_TIMEOUT_MS) {
        struct timeval tv = {0, CONNECT_RETRY_MS * 1000};
        event_add(vm->connect_ev, &tv);
        return;
    }
    if (!dead && vm->pid > 0)
        kill(vm->pid, SIGKILL);
    _cleanup_free_ char *log = paths_join(vm->vm_dir, "process.log");
    _cleanup_free_ char *tail = NULL;
    size_t len = 0;
    file_read_all(log, 1 << 20, &tail, &len, NULL);
    const char *t = tail ? tail : "";
    if (len > 2000)
        t += len - 2000;
    free(vm->last_error);
    if (asprintf(&vm->last_error, "capsem-process did not start: %s", *t ? t : "(no log)") < 0)
        vm->last_error = NULL;
    svc_vm_on_disconnect(vm);
}

static int start_owner_watch(struct svm *vm);

struct svm *svc_vm_create(struct svc *s, const struct svm_create_args *a,
                          void (*on_up)(struct svm *, const struct err *, void *), void *arg,
                          struct err **errp)
{
    if (!s->assets_loaded)
        return err_status(errp, 412, "%s", err_msg(s->assets_error)), NULL;
    const struct asset_version *ver = assets_find(&s->assets, s->assets.current);
    if (!assets_rootfs(ver, a->profile))
        return err_status(errp, 400, "unknown profile: %s", a->profile), NULL;
    if (a->name && check_name(s, a->name, errp) < 0)
        return NULL;
    if (svc_running_count(s) >= s->settings.max_concurrent_vms)
        return err_status(errp, 409, "too many running VMs (limit %u)",
                          s->settings.max_concurrent_vms),
               NULL;
    if (assets_verify_boot_set(&s->assets, ver, a->profile, errp) < 0)
        return NULL;
    struct svm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    vm->svc = s;
    vm->owner_fd = -1;
    uuid_v4(vm->id);
    _cleanup_free_ char *gen = a->name ? NULL : generate_name(s, a->profile);
    str_copy(vm->name, sizeof(vm->name), a->name ? a->name : gen);
    str_copy(vm->profile, sizeof(vm->profile), a->profile);
    vm->persistent = a->persistent;
    vm->cpus = a->cpus ? (uint32_t)a->cpus : s->settings.vm_cpus;
    vm->ram_mb = a->ram_mb ? (uint32_t)a->ram_mb : s->settings.vm_ram_mb;
    vm->env = a->env && json_is_object(a->env) ? json_deep_copy(a->env) : json_object();
    vm->base_version = strdup(ver->version);
    vm->created_at = (uint64_t)time(NULL);
    vm->started_ms = time_mono_ms();
    vm->vm_dir = paths_join(s->sessions_dir, vm->id);
    char sock[4096];
    snprintf(sock, sizeof(sock), "%s/%s.sock", s->instances_dir, vm->id);
    vm->uds_path = strdup(sock);
    vm->owner_pid = a->owner_pid;
    vm->on_up = on_up;
    vm->on_up_arg = arg;
    vm->next = NULL;
    struct svm **tail = &s->vms;
    while (*tail)
        tail = &(*tail)->next;
    *tail = vm;
    const struct asset_file *rootfs = assets_rootfs(ver, a->profile);
    if (mkdir_p(vm->vm_dir, 0700, errp) < 0 || write_vm_json(vm, ver, rootfs, errp) < 0 ||
        spawn_process(vm, errp) < 0) {
        rm_rf(vm->vm_dir);
        svc_vm_free(vm);
        return NULL;
    }
    log_info("creating VM %s (%s), profile %s, %u vCPU, %u MiB", vm->name, vm->id, vm->profile,
             vm->cpus, vm->ram_mb);
    vm->connect_ev = evtimer_new(s->base, connect_cb, vm);
    struct timeval tv = {0, CONNECT_RETRY_MS * 1000};
    event_add(vm->connect_ev, &tv);
    if (vm->owner_pid > 0 && start_owner_watch(vm) < 0)
        log_warn("owner_pid %d: cannot watch it; the VM will not expire with it",
                 (int)vm->owner_pid);
    return vm;
}

/* ---------- delete ---------- */

static void kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svm *vm = arg;
    log_warn("VM %s: process did not exit; sending SIGKILL", vm->name);
    if (vm->pid > 0)
        kill(vm->pid, SIGKILL);
    if (!vm->ipc)
        svc_vm_on_disconnect(vm);
}

void svc_vm_delete(struct svm *vm, struct svc_req *reply_to)
{
    if (reply_to) {
        struct svc_req **n =
            realloc(vm->delete_reqs, (vm->ndelete_reqs + 1) * sizeof(*vm->delete_reqs));
        if (n) {
            vm->delete_reqs = n;
            n[vm->ndelete_reqs++] = reply_to;
        }
    }
    if (vm->deleting)
        return;
    vm->deleting = true;
    log_info("deleting VM %s (%s)", vm->name, vm->id);
    if (vm->ipc) {
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "kill"), NULL, 0, NULL, NULL);
    } else if (vm->pid > 0) {
        kill(vm->pid, SIGTERM);
    }
    vm->kill_ev = evtimer_new(vm->svc->base, kill_timer_cb, vm);
    struct timeval tv = {KILL_GRACE_MS / 1000, 0};
    event_add(vm->kill_ev, &tv);
}

/* ---------- exec ---------- */

void svc_vm_exec(struct svm *vm, const char *command, int64_t timeout_secs, ipc_reply_fn done,
                 void *arg)
{
    json_t *req = json_pack("{s:s, s:s, s:I, s:I}", "op", "exec", "command", command,
                            "timeout_secs", (json_int_t)timeout_secs, "max_output_bytes",
                            (json_int_t)vm->svc->settings.exec_max_output_bytes);
    if (!vm->ipc) {
        struct err e = {.status = 503, .msg = "VM process is not connected yet"};
        json_decref(req);
        done(vm, NULL, &e, arg);
        return;
    }
    svc_ipc_call(vm->ipc, req, NULL, 0, done, arg);
}

static json_t *blob_string(const struct ipc_frame *f, size_t i)
{
    if (i >= f->nblobs)
        return json_string("");
    size_t n = 0;
    char *s = utf8_sanitize((const char *)f->blobs[i].data, f->blobs[i].len, &n);
    json_t *j = s ? json_stringn(s, n) : json_string("");
    free(s);
    return j ? j : json_string("");
}

json_t *svc_exec_response(struct ipc_frame *f)
{
    json_t *m = f->msg;
    return json_pack("{s:o, s:o, s:O, s:O, s:O, s:O}", "stdout", blob_string(f, 0), "stderr",
                     blob_string(f, 1), "exit_code", json_object_get(m, "exit_code"), "truncated",
                     json_object_get(m, "truncated"), "timed_out", json_object_get(m, "timed_out"),
                     "duration_ms", json_object_get(m, "duration_ms"));
}

/* ---------- owner_pid ---------- */

static void owner_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svm *vm = arg;
    log_info("VM %s: owner process %d exited; deleting the VM", vm->name, (int)vm->owner_pid);
    event_del(vm->owner_ev);
    svc_vm_delete(vm, NULL);
}

static int start_owner_watch(struct svm *vm)
{
    int fd = (int)syscall(SYS_pidfd_open, vm->owner_pid, 0);
    if (fd < 0)
        return -1;
    vm->owner_fd = fd;
    vm->owner_ev = event_new(vm->svc->base, fd, EV_READ, owner_gone_cb, vm);
    return event_add(vm->owner_ev, NULL);
}
