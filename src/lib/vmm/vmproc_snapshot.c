/* Memory snapshots through QEMU migration to a file descriptor (QEMU runs
 * with -sandbox spawn=deny, so no exec: URIs):
 *  - suspend: guest sync, QMP stop, migrate to checkpoint.bin, quit;
 *  - restore: -incoming defer, migrate-incoming from checkpoint.bin, cont;
 *    on any failure the checkpoint is renamed checkpoint.failed-<unix> and the
 *    same disks cold-boot;
 *  - sync-pause / cont around a fork's disk copy. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "vmm/vmproc.h"

#define POLL_MS 50
#define SYNC_TIMEOUT_MS 10000
#define MIGRATE_TIMEOUT_MS 300000
#define PAUSE_SAFETY_SECS 120
#define CKPT_FD_NAME "capsem-ckpt"

enum snap_kind { SNAP_SUSPEND, SNAP_PAUSE, SNAP_RESTORE };

struct snap_job {
    struct vmproc *vp;
    enum snap_kind kind;
    struct vp_reply reply;
    bool has_reply;
    int fd;
    char path[4096];
    char tmp[4200];
    struct event *timer;
    uint64_t deadline_ms;
    bool sync_done;
};

static void job_free(struct snap_job *j)
{
    if (j->vp->snap == j)
        j->vp->snap = NULL;
    if (j->timer)
        event_free(j->timer);
    if (j->fd >= 0)
        close(j->fd);
    free(j);
}

static void job_fail(struct snap_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void job_fail(struct snap_job *j, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_error("%s failed: %s", j->kind == SNAP_SUSPEND ? "suspend" : "pause", msg);
    if (j->kind == SNAP_SUSPEND && j->tmp[0])
        unlink(j->tmp);
    if (j->has_reply)
        vp_reply_err(&j->reply, 500, "%s", msg);
    /* The VM keeps running. */
    vp_qmp_command(j->vp, "cont", NULL, NULL, NULL);
    job_free(j);
}

static void arm(struct snap_job *j, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(j->timer, &tv);
}

/* ---------- migration progress ---------- */

static void migrate_finished(struct snap_job *j);
static void restore_failed(struct vmproc *vp, const char *why);

static void query_reply(struct vmproc *vp, json_t *reply, void *arg)
{
    struct snap_job *j = arg;
    const char *status = json_string_value(json_object_get(json_object_get(reply, "return"),
                                                           "status"));
    if (status && strcmp(status, "completed") == 0) {
        migrate_finished(j);
        return;
    }
    if (!status || strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0) {
        const char *desc = json_string_value(
            json_object_get(json_object_get(reply, "return"), "error-desc"));
        if (j->kind == SNAP_RESTORE) {
            char why[300];
            snprintf(why, sizeof(why), "migration %s%s%s", status ? status : "error",
                     desc ? ": " : "", desc ? desc : "");
            job_free(j);
            restore_failed(vp, why);
        } else {
            job_fail(j, "migration %s%s%s", status ? status : "error", desc ? ": " : "",
                     desc ? desc : "");
        }
        return;
    }
    if (time_mono_ms() > j->deadline_ms) {
        if (j->kind == SNAP_RESTORE) {
            job_free(j);
            restore_failed(vp, "migration did not finish in time");
        } else {
            job_fail(j, "migration did not finish in time");
        }
        return;
    }
    arm(j, POLL_MS);
}

static void poll_timer(evutil_socket_t fd, short what, void *arg)
{
    struct snap_job *j = arg;
    vp_qmp_command(j->vp, "query-migrate", NULL, query_reply, j);
}

static bool qmp_ok(json_t *reply, char *why, size_t cap)
{
    json_t *e = json_object_get(reply, "error");
    if (!e)
        return true;
    snprintf(why, cap, "%s", json_string_value(json_object_get(e, "desc")));
    return false;
}

/* ---------- suspend ---------- */

static void suspend_migrate_reply(struct vmproc *vp, json_t *reply, void *arg)
{
    struct snap_job *j = arg;
    char why[256];
    if (!qmp_ok(reply, why, sizeof(why))) {
        job_fail(j, "migrate: %s", why);
        return;
    }
    j->deadline_ms = time_mono_ms() + MIGRATE_TIMEOUT_MS;
    arm(j, POLL_MS);
}

static void getfd_reply(struct vmproc *vp, json_t *reply, void *arg)
{
    struct snap_job *j = arg;
    char why[256];
    if (!qmp_ok(reply, why, sizeof(why))) {
        if (j->kind == SNAP_RESTORE) {
            job_free(j);
            restore_failed(vp, why);
        } else {
            job_fail(j, "getfd: %s", why);
        }
        return;
    }
    /* Our descriptor now lives in QEMU. */
    close(j->fd);
    j->fd = -1;
    const char *cmd = j->kind == SNAP_RESTORE ? "migrate-incoming" : "migrate";
    json_t *args = json_pack("{s:s}", "uri", "fd:" CKPT_FD_NAME);
    vp_qmp_command(vp, cmd, args, suspend_migrate_reply, j);
}

static void stopped_reply(struct vmproc *vp, json_t *reply, void *arg)
{
    struct snap_job *j = arg;
    char why[256];
    if (!qmp_ok(reply, why, sizeof(why))) {
        job_fail(j, "stop: %s", why);
        return;
    }
    if (j->kind == SNAP_PAUSE) {
        log_info("VM paused for a disk copy (resumes on cont, or after %d s)", PAUSE_SAFETY_SECS);
        if (j->has_reply)
            vp_reply_ok(&j->reply, NULL, NULL, 0);
        j->has_reply = false;
        arm(j, PAUSE_SAFETY_SECS * 1000);
        return;
    }
    /* Throttling makes no sense for a file; zero pages cost nothing anyway. */
    vp_qmp_command(vp, "migrate-set-parameters",
                   json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 40), NULL, NULL);
    j->fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        job_fail(j, "create %s: %s", j->tmp, strerror(errno));
        return;
    }
    if (vp_qmp_getfd(vp, CKPT_FD_NAME, j->fd, getfd_reply, j) < 0)
        job_fail(j, "cannot pass the checkpoint file to QEMU");
}

static void synced(struct vmproc *vp, bool ok, void *arg)
{
    struct snap_job *j = arg;
    if (j->sync_done)
        return;
    j->sync_done = true;
    if (!ok)
        log_warn("guest did not confirm sync within %d ms; continuing", SYNC_TIMEOUT_MS);
    vp_qmp_command(vp, "stop", NULL, stopped_reply, j);
}

static void migrate_finished(struct snap_job *j)
{
    struct vmproc *vp = j->vp;
    if (j->kind == SNAP_RESTORE) {
        log_info("memory restored from %s in %llu ms; continuing the VM", j->path,
                 (unsigned long long)(time_mono_ms() - vp->qemu_start_ms));
        vp_qmp_command(vp, "cont", NULL, NULL, NULL);
        if (!vp->cfg.restore_keep)
            unlink(j->path); /* the disks move on: the checkpoint is spent */
        vp->state = VP_BOOTING;
        vp->restored = true;
        job_free(j);
        return;
    }
    int fd = open(j->tmp, O_RDONLY | O_CLOEXEC);
    bool durable = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!durable || rename(j->tmp, j->path) < 0) {
        job_fail(j, "cannot store %s: %s", j->path, strerror(errno));
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", vp->cfg.vm_dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    log_info("memory saved to %s; VM suspended", j->path);
    vmproc_set_exit(vp, "suspended", "suspended with memory");
    if (j->has_reply)
        vp_reply_ok(&j->reply, NULL, NULL, 0);
    j->has_reply = false;
    job_free(j);
    vp->state = VP_STOPPING;
    vp_ready_changed(vp, false, "VM is suspended");
    vp_qmp_command(vp, "quit", NULL, NULL, NULL);
    vp_arm_kill_timer(vp);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct snap_job *j = arg;
    if (!j->sync_done) {
        synced(j->vp, false, j);
    } else if (j->kind == SNAP_PAUSE) {
        log_warn("no cont within %d s after a pause; resuming the VM", PAUSE_SAFETY_SECS);
        vp_qmp_command(j->vp, "cont", NULL, NULL, NULL);
        job_free(j);
    } else {
        poll_timer(fd, what, arg);
    }
}

static struct snap_job *job_new(struct vmproc *vp, enum snap_kind kind, struct vp_conn *c,
                                json_int_t id)
{
    struct snap_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->vp = vp;
    j->kind = kind;
    j->fd = -1;
    j->timer = evtimer_new(vp->base, timer_cb, j);
    if (c) {
        vp_reply_attach(&j->reply, c, id);
        j->has_reply = true;
    }
    snprintf(j->path, sizeof(j->path), "%s/checkpoint.bin", vp->cfg.vm_dir);
    snprintf(j->tmp, sizeof(j->tmp), "%s.tmp", j->path);
    vp->snap = j;
    return j;
}

static void begin_sync_stop(struct snap_job *j)
{
    arm(j, SYNC_TIMEOUT_MS);
    if (vp_guest_sync(j->vp, synced, j) < 0)
        synced(j->vp, false, j);
}

void vp_snapshot_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, const char *op)
{
    struct vp_reply tmp = {0};
    vp_reply_attach(&tmp, c, id);
    bool suspend = strcmp(op, "suspend") == 0;
    if (strcmp(op, "cont") == 0) {
        if (vp->snap && vp->snap->kind == SNAP_PAUSE)
            job_free(vp->snap);
        vp_qmp_command(vp, "cont", NULL, NULL, NULL);
        vp_reply_ok(&tmp, NULL, NULL, 0);
        return;
    }
    if (suspend && !vp->cfg.persistent) {
        vp_reply_err(&tmp, 400, "ephemeral VMs cannot be suspended (persist first)");
        return;
    }
    if (vp->state != VP_READY || vp->snap) {
        vp_reply_err(&tmp, 409, "cannot %s: the VM is %s", op,
                     vp->snap ? "busy with another snapshot" : "not ready");
        return;
    }
    struct vp_conn *conn = tmp.conn;
    json_int_t rid = tmp.id;
    /* Detach the temporary reply; the job owns the answer. */
    vp_reply_forget(&tmp);
    struct snap_job *j = job_new(vp, suspend ? SNAP_SUSPEND : SNAP_PAUSE, conn, rid);
    if (!j)
        return;
    log_info("%s requested", suspend ? "suspend" : "pause for a disk copy");
    begin_sync_stop(j);
}

void vp_guest_requested_suspend(struct vmproc *vp)
{
    if (!vp->cfg.persistent || vp->state != VP_READY || vp->snap) {
        log_info("guest asked to suspend; refused (%s)",
                 !vp->cfg.persistent ? "ephemeral VM" : "not ready");
        return;
    }
    struct snap_job *j = job_new(vp, SNAP_SUSPEND, NULL, 0);
    if (j)
        begin_sync_stop(j);
}

/* ---------- restore ---------- */

static void restore_failed(struct vmproc *vp, const char *why)
{
    if (vp->cfg.restore_keep) {
        /* A boot template that does not restore: boot cold, tell the service
         * so it drops the template. */
        log_warn("boot template did not restore (%s); booting cold", why);
        json_t *ev = json_pack("{s:s, s:s}", "event", "template-failed", "detail", why);
        vp_broadcast_event(vp, ev);
        json_decref(ev);
        free(vp->cfg.restore_from);
        vp->cfg.restore_from = NULL;
        vp_qemu_cold_restart(vp);
        return;
    }
    char failed[4200];
    snprintf(failed, sizeof(failed), "%s/checkpoint.failed-%lld", vp->cfg.vm_dir,
             (long long)time(NULL));
    log_error("warm restore failed (%s); keeping the checkpoint as %s and cold-booting the "
              "same disks",
              why, failed);
    rename(vp->cfg.restore_from, failed);
    char detail[700];
    snprintf(detail, sizeof(detail),
             "warm restore failed (%s); cold-booted the same disks, memory state lost", why);
    json_t *ev = json_pack("{s:s, s:s}", "event", "restore-failed", "detail", detail);
    vp_broadcast_event(vp, ev);
    json_decref(ev);
    free(vp->cfg.restore_from);
    vp->cfg.restore_from = NULL;
    vp_qemu_cold_restart(vp);
}

static void restore_getfd(struct vmproc *vp, struct snap_job *j)
{
    j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
    if (j->fd < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot open the checkpoint: %s", strerror(errno));
        job_free(j);
        restore_failed(vp, why);
        return;
    }
    j->deadline_ms = time_mono_ms() + MIGRATE_TIMEOUT_MS;
    if (vp_qmp_getfd(vp, CKPT_FD_NAME, j->fd, getfd_reply, j) < 0) {
        job_free(j);
        restore_failed(vp, "cannot pass the checkpoint to QEMU");
    }
}

void vp_restore_on_qmp_ready(struct vmproc *vp)
{
    if (!vp->cfg.restore_from || vp->snap)
        return;
    struct snap_job *j = job_new(vp, SNAP_RESTORE, NULL, 0);
    if (!j)
        return;
    snprintf(j->path, sizeof(j->path), "%s", vp->cfg.restore_from);
    j->sync_done = true;
    log_info("restoring memory from %s", j->path);
    restore_getfd(vp, j);
}

/* QEMU died while restoring: fall back to a cold boot. */
bool vp_restore_handle_exit(struct vmproc *vp)
{
    if (vp->state != VP_RESTORING)
        return false;
    if (vp->snap)
        job_free(vp->snap);
    restore_failed(vp, "QEMU exited while loading the checkpoint");
    return true;
}

void vp_snapshot_free(struct vmproc *vp)
{
    if (vp->snap)
        job_free(vp->snap);
}
