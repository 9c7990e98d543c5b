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

/* Takes a live VM back: its entry is rebuilt from vm.json. */
static void adopt_one(struct svc *s, struct vm_config *cfg, const char *dir, int fd)
{
    struct svm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        close(fd);
        return;
    }
    vm->svc = s;
    vm->owner_fd = -1;
    str_copy(vm->id, sizeof(vm->id), cfg->id);
    str_copy(vm->name, sizeof(vm->name), cfg->name);
    str_copy(vm->profile, sizeof(vm->profile), cfg->profile);
    vm->persistent = cfg->persistent;
    vm->cpus = cfg->cpus;
    vm->ram_mb = cfg->ram_mb;
    vm->env = json_object();
    for (size_t i = 0; i < cfg->nenv; i++) {
        char *eq = strchr(cfg->env[i], '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(vm->env, cfg->env[i], json_string(eq + 1));
        }
    }
    _cleanup_free_ char *cfgpath = paths_join(dir, "vm.json");
    struct stat st;
    vm->created_at = cfgpath && stat(cfgpath, &st) == 0 ? (uint64_t)st.st_mtime
                                                         : (uint64_t)time(NULL);
    vm->started_ms = time_mono_ms();
    vm->vm_dir = strdup(dir);
    vm->uds_path = strdup(cfg->instance_sock);
    vm->status = SVM_RUNNING;
    struct svm **tail = &s->vms;
    while (*tail)
        tail = &(*tail)->next;
    *tail = vm;
    vm->ipc = svc_ipc_new(vm, fd);
    svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "status"), NULL, 0, adopt_status, NULL);
    log_info("re-adopted VM %s (%s)", vm->name, vm->id);
}

static void remove_instance_files(const struct vm_config *cfg)
{
    const char *paths[] = {cfg->instance_sock, cfg->ws_sock, cfg->ready_path};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        char real[SOCKPATH_MAX + 64];
        if (paths[i] && sockpath_resolve(paths[i], real, sizeof(real), NULL) == 0)
            unlink(real);
    }
}

/* One VM directory: adopt its process if it answers, else it crashed while
 * nobody watched: keep an ephemeral VM's directory as failed. */
static void scan_vm_dir(struct svc *s, const char *name)
{
    _cleanup_free_ char *dir = paths_join(s->sessions_dir, name);
    _cleanup_free_ char *cfgpath = dir ? paths_join(dir, "vm.json") : NULL;
    struct vm_config cfg;
    struct err *e = NULL;
    if (!cfgpath || vm_config_load(cfgpath, &cfg, &e) < 0) {
        log_warn("VM directory %s: %s; leaving it alone", name, err_msg(e));
        err_free(e);
        return;
    }
    int fd = sockpath_connect(cfg.instance_sock, NULL);
    if (fd >= 0) {
        adopt_one(s, &cfg, dir, fd);
        vm_config_free(&cfg);
        return;
    }
    remove_instance_files(&cfg);
    vm_config_free(&cfg);
    char dst[4096];
    snprintf(dst, sizeof(dst), "%s-failed-%lld", dir, (long long)time(NULL));
    log_info("ephemeral VM %s has no live process; keeping its directory as %s", name, dst);
    if (rename(dir, dst) < 0)
        log_warn("rename %s: %s", dir, strerror(errno));
}

void svc_readopt(struct svc *s)
{
    DIR *d = opendir(s->sessions_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (uuid_shaped(de->d_name))
            scan_vm_dir(s, de->d_name);
    closedir(d);
}
