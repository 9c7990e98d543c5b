/* Re-adoption at service start (surface.md section 5.3 step 3): VMs whose
 * capsem-process still answers on run/instances/<id>.sock are taken back;
 * dead sockets and leftover ephemeral directories are cleaned up. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "base/uuid.h"
#include "service/service.h"
#include "vm/vmconfig.h"

static void adopt_status(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    if (e || !f)
        return;
    vm->pid = (pid_t)json_integer_value(json_object_get(f->msg, "pid"));
    const char *state = json_string_value(json_object_get(f->msg, "state"));
    vm->guest_ready = state && strcmp(state, "ready") == 0;
    json_int_t up = json_integer_value(json_object_get(f->msg, "uptime_ms"));
    uint64_t now = time_mono_ms();
    vm->started_ms = now > (uint64_t)up ? now - (uint64_t)up : now;
}

static void adopt_one(struct svc *s, const char *id, int fd)
{
    _cleanup_free_ char *dir = paths_join(s->sessions_dir, id);
    _cleanup_free_ char *cfgpath = dir ? paths_join(dir, "vm.json") : NULL;
    struct vm_config cfg;
    struct err *e = NULL;
    if (!cfgpath || vm_config_load(cfgpath, &cfg, &e) < 0) {
        log_warn("re-adopt %s: %s; leaving it alone", id, err_msg(e));
        err_free(e);
        close(fd);
        return;
    }
    struct svm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        vm_config_free(&cfg);
        close(fd);
        return;
    }
    vm->svc = s;
    vm->owner_fd = -1;
    str_copy(vm->id, sizeof(vm->id), cfg.id);
    str_copy(vm->name, sizeof(vm->name), cfg.name);
    str_copy(vm->profile, sizeof(vm->profile), cfg.profile);
    vm->persistent = cfg.persistent;
    vm->cpus = cfg.cpus;
    vm->ram_mb = cfg.ram_mb;
    vm->env = json_object();
    for (size_t i = 0; i < cfg.nenv; i++) {
        char *eq = strchr(cfg.env[i], '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(vm->env, cfg.env[i], json_string(eq + 1));
        }
    }
    struct stat st;
    vm->created_at = stat(cfgpath, &st) == 0 ? (uint64_t)st.st_mtime : (uint64_t)time(NULL);
    vm->started_ms = time_mono_ms();
    vm->vm_dir = strdup(dir);
    vm->uds_path = strdup(cfg.instance_sock);
    vm->status = SVM_RUNNING;
    vm_config_free(&cfg);
    struct svm **tail = &s->vms;
    while (*tail)
        tail = &(*tail)->next;
    *tail = vm;
    vm->ipc = svc_ipc_new(vm, fd);
    svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "status"), NULL, 0, adopt_status, NULL);
    log_info("re-adopted VM %s (%s)", vm->name, vm->id);
}

static void remove_instance_files(struct svc *s, const char *id)
{
    char name[128];
    const char *suffixes[] = {".sock", "-ws.sock", ".ready"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        snprintf(name, sizeof(name), "%s%s", id, suffixes[i]);
        _cleanup_free_ char *p = paths_join(s->instances_dir, name);
        char real[SOCKPATH_MAX + 64];
        if (p && sockpath_resolve(p, real, sizeof(real), NULL) == 0)
            unlink(real);
    }
}

static void scan_instances(struct svc *s)
{
    DIR *d = opendir(s->instances_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char id[64];
        if (!str_has_suffix(de->d_name, ".sock") || str_has_suffix(de->d_name, "-ws.sock"))
            continue;
        size_t n = strlen(de->d_name) - 5;
        if (n >= sizeof(id))
            continue;
        memcpy(id, de->d_name, n);
        id[n] = '\0';
        if (!uuid_shaped(id))
            continue;
        _cleanup_free_ char *sock = paths_join(s->instances_dir, de->d_name);
        int fd = sock ? sockpath_connect(sock, NULL) : -1;
        if (fd >= 0) {
            adopt_one(s, id, fd);
        } else {
            log_info("instance %s is gone; cleaning up its socket", id);
            remove_instance_files(s, id);
        }
    }
    closedir(d);
}

static bool adopted(struct svc *s, const char *id)
{
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (strcmp(vm->id, id) == 0)
            return true;
    return false;
}

/* Ephemeral VM directories with no live process: their VM is gone. */
static void sweep_sessions(struct svc *s)
{
    DIR *d = opendir(s->sessions_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!uuid_shaped(de->d_name) || adopted(s, de->d_name))
            continue;
        _cleanup_free_ char *dir = paths_join(s->sessions_dir, de->d_name);
        char dst[4096];
        snprintf(dst, sizeof(dst), "%s-failed-%lld", dir, (long long)time(NULL));
        log_info("ephemeral VM %s has no live process; keeping its directory as %s",
                 de->d_name, dst);
        if (rename(dir, dst) < 0)
            log_warn("rename %s: %s", dir, strerror(errno));
    }
    closedir(d);
}

void svc_readopt(struct svc *s)
{
    scan_instances(s);
    sweep_sessions(s);
}
