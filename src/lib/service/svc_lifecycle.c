/* VM processes and state transitions (surface.md section 3): start a
 * capsem-process and connect to it, stop, suspend, delete, persist, and
 * what a process exit means for each kind of VM. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sockpath.h"
#include "base/utf8.h"
#include "base/util.h"
#include "base/uuid.h"
#include "cli/setup.h"
#include "service/service.h"
#include "store/main_db.h"
#include "vm/disk.h"
#include "vm/vmconfig.h"

#define CONNECT_RETRY_MS 5
#define CONNECT_TIMEOUT_MS 10000
#define KILL_GRACE_MS 5000
#define LOG_TAIL_BYTES 2000

static int start_owner_watch(struct svm *vm);

/* ---------- process config ---------- */

static int write_vm_json(struct svm *vm, const struct asset_version *ver, bool restore,
                         struct err **errp)
{
    struct svc *s = vm->svc;
    const struct asset_file *rootfs = assets_rootfs(ver, vm->profile);
    struct vm_config c = {0};
    char ready[4096], ws[4096], ckpt[4200];
    snprintf(ready, sizeof(ready), "%s/%s.ready", s->instances_dir, vm->id);
    snprintf(ws, sizeof(ws), "%s/%s-ws.sock", s->instances_dir, vm->id);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.bin", vm->vm_dir);
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
    c.home = s->home;
    c.share_dir = s->share_dir;
    /* The policy's host lists: @debian from the image, @npm from setup. */
    const struct asset_rootfs *entry = assets_rootfs_entry(ver, vm->profile);
    c.apt_hosts = entry->apt_hosts;
    c.napt_hosts = entry->napt_hosts;
    char npm_host[256];
    char *npm_hosts[] = {npm_host};
    _cleanup_err_ struct err *npm_err = NULL;
    int have_npm = cli_setup_npm_host(s->home, npm_host, &npm_err);
    if (have_npm < 0)
        log_warn("VM %s: the @npm host list is empty: %s", vm->name, err_msg(npm_err));
    c.npm_hosts = have_npm > 0 ? npm_hosts : NULL;
    c.nnpm_hosts = have_npm > 0 ? 1 : 0;
    const char *corp = getenv("CAPSEM_CORP_CONFIG");
    c.corp_config = (char *)(corp ? corp : "/etc/capsem/corp.toml");
    c.restore_from = restore ? ckpt : vm->template_ckpt;
    c.restore_keep = !restore && vm->template_ckpt;
    char *envs[1024];
    const char *k;
    json_t *v;
    json_object_foreach(vm->env, k, v)
    {
        if (c.nenv < ARRAY_SIZE(envs) &&
            asprintf(&envs[c.nenv], "%s=%s", k, json_string_value(v)) >= 0)
            c.nenv++;
    }
    c.env = envs;
    json_t *j = vm_config_to_json(&c);
    for (size_t i = 0; i < c.nenv; i++)
        free(envs[i]);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
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
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return err_sys(errp, "fork");
    if (pid == 0) {
        setsid();
        /* VMs outlive the service (it re-adopts them); a hidden boot-template
         * build does not: nobody would ever finish or remove it. */
        if (vm->hidden && (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent))
            _exit(1);
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
    vm->proc_exited = false;
    return 0;
}

static char *log_tail(struct svm *vm)
{
    _cleanup_free_ char *log = paths_join(vm->vm_dir, "process.log");
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (!log || file_read_all(log, 1 << 20, &text, &len, NULL) < 0)
        return strdup("(no process.log)");
    const char *t = len > LOG_TAIL_BYTES ? text + len - LOG_TAIL_BYTES : text;
    const char *nl = t != text ? strchr(t, '\n') : NULL;
    return strdup(nl ? nl + 1 : t);
}

/* ---------- connecting to a starting process ---------- */

static void on_status(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    if (f && !e)
        vm->pid = (pid_t)json_integer_value(json_object_get(f->msg, "pid"));
    svm_up_fn fn = vm->on_up;
    vm->on_up = NULL;
    if (fn)
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
    if (!vm->proc_exited && ++vm->connect_tries * CONNECT_RETRY_MS < CONNECT_TIMEOUT_MS) {
        struct timeval tv = {0, CONNECT_RETRY_MS * 1000};
        event_add(vm->connect_ev, &tv);
        return;
    }
    if (!vm->proc_exited && vm->pid > 0)
        kill(vm->pid, SIGKILL);
    _cleanup_free_ char *tail = log_tail(vm);
    free(vm->last_error);
    if (asprintf(&vm->last_error, "capsem-process did not start: %s", tail) < 0)
        vm->last_error = NULL;
    str_copy(vm->exit_reason, sizeof(vm->exit_reason), "boot-failed");
    svc_vm_on_disconnect(vm);
}

int svc_vm_launch(struct svm *vm, bool restore, svm_up_fn on_up, void *arg, struct err **errp)
{
    struct svc *s = vm->svc;
    const struct asset_version *ver =
        s->assets_loaded ? assets_find(&s->assets, vm->base_version) : NULL;
    if (!ver)
        return err_status(errp, 412, "base version %s is not installed (run: capsem setup)",
                          vm->base_version ? vm->base_version : "?");
    if (assets_verify_boot_set(&s->assets, ver, vm->profile, errp) < 0)
        return -1;
    if (!vm->hidden && svc_running_count(s) >= s->settings.max_concurrent_vms)
        return err_status(errp, 409, "too many running VMs (limit %u)",
                          s->settings.max_concurrent_vms);
    int rc = write_vm_json(vm, ver, restore, errp);
    free(vm->template_ckpt); /* one use: later boots are cold or warm of their own */
    vm->template_ckpt = NULL;
    if (rc < 0 || spawn_process(vm, errp) < 0)
        return -1;
    vm->status = SVM_RUNNING;
    vm->guest_ready = false;
    vm->stopping = false;
    vm->exit_reason[0] = '\0';
    vm->started_ms = time_mono_ms();
    vm->on_up = on_up;
    vm->on_up_arg = arg;
    vm->connect_tries = 0;
    svc_stats_watch(s); /* main.db totals every 10 s while it runs */
    if (!vm->connect_ev)
        vm->connect_ev = evtimer_new(s->base, connect_cb, vm);
    struct timeval tv = {0, CONNECT_RETRY_MS * 1000};
    event_add(vm->connect_ev, &tv);
    return 0;
}

/* ---------- create and start ---------- */

static int make_vm_dir(struct svm *vm, const struct svm_create_args *a, struct err **errp)
{
    struct svc *s = vm->svc;
    vm->vm_dir = paths_join(vm->persistent ? s->persistent_dir : s->sessions_dir, vm->id);
    if (!vm->vm_dir || mkdir_p(vm->vm_dir, 0700, errp) < 0)
        return -1;
    _cleanup_free_ char *tdir = svc_template_for(s, vm);
    if (tdir) {
        if (svc_template_prepare_vm(tdir, vm, errp) < 0)
            return -1;
    } else if (a->image && svc_image_prepare_vm(s, a->image, vm, errp) < 0) {
        return -1;
    }
    /* A VM made from an image keeps the image's credential placeholders
     * (network.md section 10), whether its disks come from the image or
     * from the image's boot template. */
    _cleanup_free_ char *image_dir = a->image ? paths_join(s->images_dir, a->image) : NULL;
    if (a->image && !image_dir)
        return err_set(errp, ENOMEM, "out of memory");
    if (a->image && svc_copy_placeholders(image_dir, vm->vm_dir, errp) < 0)
        return -1;
    return svm_save(vm, errp);
}

static int resolve_profile(struct svc *s, const struct svm_create_args *a, struct svm *vm,
                           struct err **errp)
{
    const char *profile = a->profile;
    if (a->image) {
        json_t *info = NULL;
        if (svc_image_lookup(s, a->image, &info, errp) < 0)
            return -1;
        const char *ip = json_string_value(json_object_get(info, "profile_id"));
        const char *bv = json_string_value(json_object_get(info, "base_version"));
        if (profile && ip && strcmp(profile, ip) != 0) {
            json_decref(info);
            return err_status(errp, 400, "image %s is of profile %s, not %s", a->image, ip,
                              profile);
        }
        str_copy(vm->profile, sizeof(vm->profile), ip ? ip : "");
        vm->base_version = bv ? strdup(bv) : NULL;
        str_copy(vm->image, sizeof(vm->image), a->image);
        json_decref(info);
    } else {
        str_copy(vm->profile, sizeof(vm->profile), profile ? profile : s->settings.vm_profile);
        vm->base_version = s->assets_loaded ? strdup(s->assets.current) : NULL;
    }
    if (!s->assets_loaded)
        return err_status(errp, 412, "%s", err_msg(s->assets_error));
    const struct asset_version *ver = assets_find(&s->assets, vm->base_version);
    if (!ver)
        return err_status(errp, 412, "base version %s of image %s is not installed",
                          vm->base_version ? vm->base_version : "?", a->image);
    if (!assets_rootfs(ver, vm->profile))
        return err_status(errp, 400, "unknown profile: %s", vm->profile);
    return 0;
}

struct svm *svc_vm_create(struct svc *s, const struct svm_create_args *a, svm_up_fn on_up,
                          void *arg, struct err **errp)
{
    if (a->name && svc_find_vm(s, a->name))
        return err_status(errp, 409, "name already in use: %s", a->name), NULL;
    if (svc_running_count(s) >= s->settings.max_concurrent_vms)
        return err_status(errp, 409, "too many running VMs (limit %u)",
                          s->settings.max_concurrent_vms),
               NULL;
    struct svm *vm = svm_alloc(s);
    if (!vm)
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    uuid_v4(vm->id);
    if (resolve_profile(s, a, vm, errp) < 0) {
        svc_vm_free(vm);
        return NULL;
    }
    _cleanup_free_ char *gen = a->name ? NULL : svc_generate_name(s, vm->profile);
    str_copy(vm->name, sizeof(vm->name), a->name ? a->name : gen);
    vm->persistent = a->persistent;
    vm->cpus = a->cpus ? (uint32_t)a->cpus : s->settings.vm_cpus;
    vm->ram_mb = a->ram_mb ? (uint32_t)a->ram_mb : s->settings.vm_ram_mb;
    if (s->settings.vm_env)
        json_object_update(vm->env, s->settings.vm_env);
    if (a->env && json_is_object(a->env))
        json_object_update(vm->env, a->env);
    vm->created_at = (uint64_t)time(NULL);
    vm->owner_pid = a->owner_pid;
    char sock[4096];
    snprintf(sock, sizeof(sock), "%s/%s.sock", s->instances_dir, vm->id);
    vm->uds_path = strdup(sock);
    vm->status = SVM_STOPPED; /* not counted as running until launched */
    svm_append(s, vm);
    if (make_vm_dir(vm, a, errp) < 0) {
        if (vm->vm_dir)
            rm_rf(vm->vm_dir);
        svc_vm_free(vm);
        return NULL;
    }
    bool warm = vm->template_ckpt != NULL;
    if (svc_vm_launch(vm, false, on_up, arg, errp) < 0) {
        rm_rf(vm->vm_dir);
        svc_vm_free(vm);
        return NULL;
    }
    /* Built once this VM is up, so the two boots do not compete. */
    vm->wants_template = !warm;
    log_info("creating VM %s (%s), profile %s%s%s, %u vCPU, %u MiB%s", vm->name, vm->id,
             vm->profile, vm->image[0] ? ", image " : "", vm->image, vm->cpus, vm->ram_mb,
             warm ? ", from a boot template" : "");
    if (vm->owner_pid > 0 && start_owner_watch(vm) < 0)
        log_warn("owner_pid %d: cannot watch it; the VM will not expire with it",
                 (int)vm->owner_pid);
    return vm;
}

int svc_vm_start(struct svm *vm, svm_up_fn on_up, void *arg, struct err **errp)
{
    _cleanup_free_ char *ckpt = paths_join(vm->vm_dir, "checkpoint.bin");
    bool restore = vm->status == SVM_SUSPENDED && ckpt && access(ckpt, R_OK) == 0;
    const char *why;
    if (!svm_can_resume(vm, &why))
        return err_status(errp, 412, "cannot start VM %s: %s", vm->name, why);
    log_info("%s VM %s (%s)", restore ? "resuming (warm)" : "starting", vm->name, vm->id);
    if (svc_vm_launch(vm, restore, on_up, arg, errp) < 0)
        return -1;
    vm->defunct = false;
    free(vm->last_error);
    vm->last_error = NULL;
    svm_save(vm, NULL);
    return 0;
}

void svc_vm_adopt(struct svm *vm, int fd)
{
    vm->status = SVM_RUNNING;
    vm->started_ms = time_mono_ms();
    vm->ipc = svc_ipc_new(vm, fd);
    svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "status"), NULL, 0, on_status, NULL);
    svc_stats_watch(vm->svc);
    if (vm->owner_pid > 0 && start_owner_watch(vm) < 0)
        svc_vm_delete(vm, NULL, NULL); /* its owner is already gone */
    log_info("re-adopted VM %s (%s)", vm->name, vm->id);
}

/* ---------- exits ---------- */

void svm_on_exit(struct svm *vm, svm_exit_fn fn, void *arg)
{
    if (vm->status != SVM_RUNNING && !vm->deleting) {
        fn(vm, arg);
        return;
    }
    struct svm_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->fn = fn;
    w->arg = arg;
    struct svm_waiter **tail = &vm->exit_waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
}

static void run_exit_waiters(struct svm *vm)
{
    while (vm->exit_waiters) {
        struct svm_waiter *w = vm->exit_waiters;
        vm->exit_waiters = w->next;
        w->fn(vm, w->arg);
        free(w);
    }
}

/* Keeps a crashed ephemeral VM's directory for inspection (newest N kept);
 * returns where it is now (caller frees), NULL when it was removed. */
static char *keep_failed_dir(struct svm *vm);

/* The process removes these itself when it exits cleanly; after a SIGKILL
 * nobody else would. */
void svc_remove_instance_files(struct svm *vm)
{
    struct svc *s = vm->svc;
    const char *suffixes[] = {".sock", "-ws.sock", ".ready"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        char path[4200], real[SOCKPATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s%s", s->instances_dir, vm->id, suffixes[i]);
        if (sockpath_resolve(path, real, sizeof(real), NULL) == 0)
            unlink(real);
    }
}

static void vm_remove(struct svm *vm, bool keep_as_failed)
{
    vm->gone = true;
    if (vm->svc->db)
        main_db_set_status(vm->svc->db, vm->id, keep_as_failed ? "Crashed" : "Deleted",
                           vm->last_error, time_real_ms(), NULL);
    svc_remove_instance_files(vm);
    if (keep_as_failed) {
        _cleanup_free_ char *kept = keep_failed_dir(vm);
        svc_stats_final(vm->svc, vm->id, kept, false);
    } else {
        svc_stats_final(vm->svc, vm->id, vm->vm_dir, true);
        rm_rf(vm->vm_dir);
    }
    log_info("VM %s (%s) removed%s", vm->name, vm->id, keep_as_failed ? " (crashed)" : "");
    run_exit_waiters(vm);
    svc_vm_free(vm);
}

static bool clean_reason(const char *r)
{
    return strcmp(r, "stopped") == 0 || strcmp(r, "guest-poweroff") == 0 ||
           strcmp(r, "killed") == 0 || strcmp(r, "suspended") == 0;
}

void svc_vm_on_event(struct svm *vm, json_t *ev)
{
    const char *name = json_string_value(json_object_get(ev, "event"));
    const char *detail = json_string_value(json_object_get(ev, "detail"));
    if (!name)
        return;
    if (strcmp(name, "ready") == 0) {
        vm->guest_ready = true;
        if (vm->wants_template) {
            vm->wants_template = false;
            svc_template_build(vm->svc, vm);
        }
        log_info("VM %s ready after %lld ms", vm->name,
                 (long long)json_integer_value(json_object_get(ev, "boot_ms")));
    } else if (strcmp(name, "template-failed") == 0) {
        svc_template_drop(vm->svc, vm);
    } else if (strcmp(name, "restore-failed") == 0) {
        free(vm->last_error);
        vm->last_error = detail ? strdup(detail) : NULL;
        svm_save(vm, NULL);
        log_warn("VM %s: %s", vm->name, detail ? detail : "warm restore failed");
    } else if (strcmp(name, "exited") == 0) {
        const char *reason = json_string_value(json_object_get(ev, "reason"));
        str_copy(vm->exit_reason, sizeof(vm->exit_reason), reason ? reason : "crashed");
        if (!clean_reason(vm->exit_reason)) {
            free(vm->last_error);
            vm->last_error = strdup(detail ? detail : vm->exit_reason);
        }
        log_info("VM %s exited: %s %s", vm->name, vm->exit_reason, detail ? detail : "");
    } else if (strcmp(name, "ask_pending") == 0 || strcmp(name, "ask_resolved") == 0) {
        /* Held requests show in the service log so a user tailing it sees
         * what waits for `capsem approve`. */
        json_t *a = json_object_get(ev, "ask");
        const char *id = json_string_value(json_object_get(a ? a : ev, "ask_id"));
        const char *host = json_string_value(json_object_get(a ? a : ev, "host"));
        const char *st = json_string_value(json_object_get(a ? a : ev, "status"));
        log_info("VM %s: %s %s %s%s%s", vm->name, name, id ? id : "-", host ? host : "",
                 st ? " " : "", st ? st : "");
    }
}

/* A persistent VM whose process is gone: what state is it in now? */
static void persistent_exited(struct svm *vm)
{
    const char *r = vm->exit_reason[0] ? vm->exit_reason : "crashed";
    if (!vm->exit_reason[0] && !vm->last_error)
        vm->last_error = strdup("capsem-process exited unexpectedly");
    if (strcmp(r, "suspended") == 0) {
        vm->status = SVM_SUSPENDED;
    } else if (strcmp(r, "boot-failed") == 0) {
        vm->status = SVM_DEFUNCT;
        vm->defunct = true;
        _cleanup_free_ char *tail = log_tail(vm);
        free(vm->last_error);
        if (asprintf(&vm->last_error, "boot failed: %s", tail) < 0)
            vm->last_error = NULL;
    } else {
        vm->status = SVM_STOPPED;
        if (clean_reason(r)) {
            free(vm->last_error);
            vm->last_error = NULL;
        }
    }
    vm->pid = 0;
    vm->guest_ready = false;
    svc_ipc_free(vm->ipc);
    vm->ipc = NULL;
    svc_remove_instance_files(vm);
    if (vm->kill_ev)
        event_del(vm->kill_ev);
    struct err *e = NULL;
    if (svm_save(vm, &e) < 0) {
        log_error("VM %s: cannot record its state: %s", vm->name, err_msg(e));
        err_free(e);
    }
    log_info("VM %s is %s%s%s", vm->name, svm_status_name(vm->status),
             vm->last_error ? ": " : "", vm->last_error ? vm->last_error : "");
    svc_stats_final(vm->svc, vm->id, vm->vm_dir, false); /* main.db totals at stop */
    run_exit_waiters(vm);
}

void svc_vm_on_disconnect(struct svm *vm)
{
    if (vm->hidden) {
        vm->on_up = NULL;
        svc_remove_instance_files(vm);
        svc_template_finish(vm);
        return;
    }
    if (vm->on_up) {
        struct err e = {.status = 500,
                        .msg = vm->last_error ? vm->last_error : "the VM process exited"};
        svm_up_fn fn = vm->on_up;
        vm->on_up = NULL;
        fn(vm, &e, vm->on_up_arg);
    }
    if (vm->deleting) {
        vm_remove(vm, false);
        return;
    }
    if (vm->persistent) {
        persistent_exited(vm);
        return;
    }
    bool crashed = !vm->exit_reason[0] || !clean_reason(vm->exit_reason);
    if (crashed && !vm->last_error)
        vm->last_error = strdup("capsem-process exited unexpectedly");
    vm_remove(vm, crashed);
}

static char *keep_failed_dir(struct svm *vm)
{
    struct svc *s = vm->svc;
    char dst[4096];
    snprintf(dst, sizeof(dst), "%s/%s-failed-%lld", s->sessions_dir, vm->id,
             (long long)time(NULL));
    if (rename(vm->vm_dir, dst) < 0) {
        rm_rf(vm->vm_dir);
        return NULL;
    }
    DIR *d = opendir(s->sessions_dir);
    if (!d)
        return strdup(dst);
    char *names[256];
    long long stamps[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < ARRAY_SIZE(names)) {
        const char *m = strstr(de->d_name, "-failed-");
        if (!m || !(names[n] = strdup(de->d_name)))
            continue;
        stamps[n++] = strtoll(m + 8, NULL, 10);
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
    return access(dst, F_OK) == 0 ? strdup(dst) : NULL;
}

/* ---------- stop, suspend, delete, persist ---------- */

static void kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svm *vm = arg;
    log_warn("VM %s: process did not exit; sending SIGKILL", vm->name);
    if (vm->pid > 0)
        kill(vm->pid, SIGKILL);
    if (!vm->ipc)
        svc_vm_on_disconnect(vm);
}

static void arm_kill(struct svm *vm, unsigned ms)
{
    if (!vm->kill_ev)
        vm->kill_ev = evtimer_new(vm->svc->base, kill_timer_cb, vm);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(vm->kill_ev, &tv);
}

void svc_vm_stop(struct svm *vm)
{
    if (vm->status != SVM_RUNNING || vm->stopping)
        return;
    vm->stopping = true;
    log_info("stopping VM %s (%s)", vm->name, vm->id);
    if (vm->ipc)
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "stop"), NULL, 0, NULL, NULL);
    else if (vm->pid > 0)
        kill(vm->pid, SIGTERM);
    arm_kill(vm, (vm->svc->settings.shutdown_grace_secs + 10) * 1000u);
}

void svc_vm_suspend(struct svm *vm, ipc_reply_fn done, void *arg)
{
    vm->stopping = true;
    log_info("suspending VM %s (%s)", vm->name, vm->id);
    svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "suspend"), NULL, 0, done, arg);
}

void svc_vm_delete(struct svm *vm, svm_exit_fn fn, void *arg)
{
    if (fn)
        svm_on_exit(vm, fn, arg);
    if (vm->deleting)
        return;
    vm->deleting = true;
    log_info("deleting VM %s (%s)", vm->name, vm->id);
    if (vm->status != SVM_RUNNING) {
        vm_remove(vm, false);
        return;
    }
    if (vm->ipc)
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "kill"), NULL, 0, NULL, NULL);
    else if (vm->pid > 0)
        kill(vm->pid, SIGTERM);
    arm_kill(vm, KILL_GRACE_MS);
}

int svc_vm_persist(struct svm *vm, const char *name, struct err **errp)
{
    struct svc *s = vm->svc;
    if (vm->persistent)
        return err_status(errp, 409, "VM %s is already persistent", vm->name);
    if (vm->status != SVM_RUNNING || vm->deleting)
        return err_status(errp, 409, "cannot save VM in state %s", svm_status_name(vm->status));
    if (svc_check_name("VM", name, errp) < 0)
        return -1;
    if (svc_find_vm(s, name))
        return err_status(errp, 409, "name already in use: %s", name);
    _cleanup_free_ char *dst = paths_join(s->persistent_dir, vm->id);
    if (!dst || rename(vm->vm_dir, dst) < 0)
        return err_sys(errp, "move %s to %s", vm->vm_dir, dst ? dst : "?");
    free(vm->vm_dir);
    vm->vm_dir = steal_pointer(&dst);
    str_copy(vm->name, sizeof(vm->name), name);
    vm->persistent = true;
    vm->owner_pid = 0;
    if (vm->owner_ev) {
        event_free(vm->owner_ev);
        vm->owner_ev = NULL;
    }
    if (svm_save(vm, errp) < 0)
        return -1;
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:s, s:b}", "op", "rename", "vm_dir", vm->vm_dir, "name",
                           vm->name, "persistent", 1),
                 NULL, 0, NULL, NULL);
    log_info("VM %s (%s) is now persistent", vm->name, vm->id);
    return 0;
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
    svc_vm_delete(vm, NULL, NULL);
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
