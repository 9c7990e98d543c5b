/* capsem-process main flow: load vm.json, prepare disks, listen, start QEMU,
 * run the reactor until QEMU is gone, then record why and clean up. */
#include "vmm/vmproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "store/session_db.h"
#include "vm/disk.h"

#define TICK_MS 1000

void vmproc_set_exit(struct vmproc *vp, const char *reason, const char *fmt, ...)
{
    if (vp->exit_reason[0])
        return; /* the first cause wins */
    str_copy(vp->exit_reason, sizeof(vp->exit_reason), reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vp->exit_detail, sizeof(vp->exit_detail), fmt, ap);
    va_end(ap);
}

char *vmproc_log_tail(struct vmproc *vp, size_t max_bytes)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/process.log", vp->cfg.vm_dir);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return strdup("");
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)max_bytes ? end - (off_t)max_bytes : 0;
    char *buf = calloc(1, max_bytes + 1);
    if (!buf)
        return NULL;
    ssize_t n = pread(fd, buf, max_bytes, start);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    /* Start at a line boundary. */
    char *nl = start > 0 ? strchr(buf, '\n') : NULL;
    if (nl) {
        memmove(buf, nl + 1, strlen(nl + 1) + 1);
    }
    return buf;
}

static void write_exit_file(struct vmproc *vp)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/exit.json", vp->cfg.vm_dir);
    json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "reason",
                          vp->exit_reason[0] ? vp->exit_reason : "crashed", "detail",
                          vp->exit_detail, "at_ms", (json_int_t)time_real_ms(), "qemu_status",
                          (json_int_t)vp->qemu_status);
    char *s = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    if (s) {
        struct err *e = NULL;
        if (file_write_atomic(path, s, strlen(s), 0600, &e) < 0)
            log_warn("exit.json: %s", err_msg(e));
        err_free(e);
        free(s);
    }
}

static void tick_cb(evutil_socket_t fd, short ev, void *arg)
{
    struct vmproc *vp = arg;
    uint64_t now = time_mono_ms();
    if (vp->state == VP_RESTORING &&
        now - vp->qemu_start_ms > (uint64_t)vp->cfg.boot_timeout_secs * 1000) {
        log_error("restore did not finish within %u s", vp->cfg.boot_timeout_secs);
        vp_qemu_kill(vp); /* the exit handler falls back to a cold boot */
    } else if (vp->state == VP_BOOTING &&
               now - vp->qemu_start_ms > (uint64_t)vp->cfg.boot_timeout_secs * 1000) {
        log_error("guest agent not ready after %u s; stopping the VM", vp->cfg.boot_timeout_secs);
        vmproc_set_exit(vp, "boot-failed", "guest agent not ready within %u s",
                        vp->cfg.boot_timeout_secs);
        vp_ready_changed(vp, false, "guest not ready in time");
        vp_qemu_kill(vp);
    }
    if (vp->mux && vp->state == VP_READY)
        mux_tick(vp->mux, now);
    vp_channel_kick(vp);
}

static void signal_cb(evutil_socket_t sig, short ev, void *arg)
{
    struct vmproc *vp = arg;
    log_info("signal %d: stopping the VM", (int)sig);
    vmproc_begin_stop(vp, "stopped");
}

static int open_logs(struct vmproc *vp, struct err **errp)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/process.log", vp->cfg.vm_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_sys(errp, "open %s", path);
    dup2(fd, STDERR_FILENO);
    if (fd != STDERR_FILENO)
        close(fd);
    log_init("capsem-process", STDERR_FILENO, LOG_INFO);
    const char *lvl = getenv("CAPSEM_LOG");
    enum log_level l;
    if (lvl && log_level_parse(lvl, &l) == 0)
        log_set_level(l);
    snprintf(path, sizeof(path), "%s/serial.log", vp->cfg.vm_dir);
    vp->serial_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (vp->serial_fd < 0)
        return err_sys(errp, "open %s", path);
    return 0;
}

static int prepare_disks(struct vmproc *vp, struct err **errp)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/overlay.img", vp->cfg.vm_dir);
    if (disk_ensure_ext4(path, vp->cfg.disk_bytes, vp->cfg.template_dir, errp) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/workspace.img", vp->cfg.vm_dir);
    return disk_ensure_ext4(path, vp->cfg.workspace_bytes, vp->cfg.template_dir, errp);
}

static int setup(struct vmproc *vp, const char *config_path, struct err **errp)
{
    if (vm_config_load(config_path, &vp->cfg, errp) < 0)
        return -1;
    if (open_logs(vp, errp) < 0)
        return -1;
    log_info("starting VM %s (%s), profile %s, %u vCPU, %u MiB, accel %s%s", vp->cfg.name,
             vp->cfg.id, vp->cfg.profile, vp->cfg.cpus, vp->cfg.ram_mb, vp->cfg.accel,
             strcmp(vp->cfg.accel, "tcg") == 0 ? " (software emulation: no usable /dev/kvm)" : "");
    vp->base = event_base_new();
    if (!vp->base)
        return err_set(errp, ENOMEM, "event_base_new failed");
    if (prepare_disks(vp, errp) < 0)
        return -1;
    char dbpath[4200];
    snprintf(dbpath, sizeof(dbpath), "%s/session.db", vp->cfg.vm_dir);
    struct err *e = NULL;
    if (session_db_open(dbpath, NULL, &vp->sdb, &e) < 0) {
        /* Telemetry must never keep a VM from running. */
        log_error("session.db: %s; running without telemetry", err_msg(e));
        err_free(e);
    }
    if (vp_ai_init(vp, &e) < 0) {
        log_warn("AI interpreters: %s; model calls are recorded without cost", err_msg(e));
        err_free(e);
        e = NULL;
    }
    if (vp_net_init(vp, errp) < 0)
        return -1;
    if (vp_ipc_listen(vp, errp) < 0 || vp_term_listen(vp, errp) < 0)
        return -1;
    vp->sigterm_ev = evsignal_new(vp->base, SIGTERM, signal_cb, vp);
    vp->sigint_ev = evsignal_new(vp->base, SIGINT, signal_cb, vp);
    evsignal_add(vp->sigterm_ev, NULL);
    evsignal_add(vp->sigint_ev, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    vp->state = vp->cfg.restore_from ? VP_RESTORING : VP_BOOTING;
    if (vp_qemu_start(vp, errp) < 0)
        return -1;
    vp->tick_ev = event_new(vp->base, -1, EV_PERSIST, tick_cb, vp);
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    event_add(vp->tick_ev, &tv);
    return 0;
}

static void teardown(struct vmproc *vp)
{
    vp_ready_changed(vp, false, vp->exit_detail[0] ? vp->exit_detail : "VM exited");
    json_t *ev = json_pack("{s:s, s:s, s:s}", "event", "exited", "reason",
                           vp->exit_reason[0] ? vp->exit_reason : "crashed", "detail",
                           vp->exit_detail);
    vp_broadcast_event(vp, ev);
    json_decref(ev);
    write_exit_file(vp);
    unlink(vp->cfg.ready_path);
    vp_term_close_all(vp);
    vp_ipc_close_all(vp);
    vp_net_detach(vp);
    vp_channel_close(vp);
    vp_qmp_free(vp);
}

static void free_event(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

/* Everything but the files on disk, at exit. */
static void vmproc_free(struct vmproc *vp)
{
    vp_snapshot_free(vp);
    vp_asks_free(vp);
    vp_net_free(vp);
    vp_ai_free(vp);
    if (vp->sdb) {
        struct err *e = NULL;
        if (session_db_close(vp->sdb, &e) < 0)
            log_warn("session.db: %s", err_msg(e));
        err_free(e);
        vp->sdb = NULL;
    }
    struct event **evs[] = {&vp->sigchld_ev, &vp->sigterm_ev, &vp->sigint_ev, &vp->console_ev,
                            &vp->tick_ev,    &vp->stop_ev};
    for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
        free_event(evs[i]);
    if (vp->console_fd >= 0)
        close(vp->console_fd);
    if (vp->serial_fd >= 0)
        close(vp->serial_fd);
    if (vp->base)
        event_base_free(vp->base);
    vm_config_free(&vp->cfg);
}

int vmproc_run(const char *config_path)
{
    struct vmproc vp_storage = {0}, *vp = &vp_storage;
    vp->start_ms = time_mono_ms();
    vp->listen_fd = vp->ws_listen_fd = vp->chan_fd = vp->console_fd = vp->serial_fd = -1;
    struct err *e = NULL;
    if (setup(vp, config_path, &e) < 0) {
        log_error("cannot start VM: %s", err_msg(e));
        vmproc_set_exit(vp, "boot-failed", "%s", err_msg(e));
        err_free(e);
        if (vp->cfg.vm_dir)
            write_exit_file(vp);
        if (vp->qemu_pid > 0)
            vp_qemu_kill(vp);
        vp_term_close_all(vp);
        vp_ipc_close_all(vp);
        vp_channel_close(vp);
        vp_qmp_free(vp);
        vmproc_free(vp);
        return 1;
    }
    event_base_dispatch(vp->base);
    log_info("VM %s exited: %s%s%s", vp->cfg.name, vp->exit_reason[0] ? vp->exit_reason : "crashed",
             vp->exit_detail[0] ? ": " : "", vp->exit_detail);
    teardown(vp);
    vmproc_free(vp);
    return 0;
}
