/* The instance socket (run/instances/<id>.sock): framed JSON requests from
 * capsem-service (docs/ipc.md), replies, events, and readiness waiters. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"
#include "vmm/vmproc_stats.h"

#define CONN_OUT_MAX (IPC_MAX_FRAME * 2u)
#define MAX_CONNS 64

struct vp_conn {
    struct vmproc *vp;
    int fd;
    struct event *rd, *wr;
    struct buf in, out;
    bool dead;
    struct vp_reply *replies;
    struct vp_conn *next;
};

struct vp_waiter {
    vp_ready_fn fn;
    void *arg;
    struct vp_waiter *next;
};

static void conn_close(struct vp_conn *c);

/* ---------- waiters ---------- */

int vp_when_ready(struct vmproc *vp, vp_ready_fn fn, void *arg)
{
    if (vp->state == VP_READY) {
        fn(vp, arg, true, NULL);
        return 0;
    }
    if (vp->state != VP_BOOTING && vp->state != VP_RESTORING) {
        fn(vp, arg, false, vp->state == VP_STOPPING ? "VM is stopping" : "VM has exited");
        return 0;
    }
    struct vp_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        fn(vp, arg, false, "out of memory");
        return -1;
    }
    w->fn = fn;
    w->arg = arg;
    struct vp_waiter **tail = &vp->waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    return 0;
}

void vp_ready_changed(struct vmproc *vp, bool ready, const char *why)
{
    struct vp_waiter *list = vp->waiters;
    vp->waiters = NULL;
    while (list) {
        struct vp_waiter *w = list;
        list = w->next;
        w->fn(vp, w->arg, ready, why);
        free(w);
    }
}

/* ---------- replies ---------- */

void vp_reply_attach(struct vp_reply *r, struct vp_conn *c, json_int_t id)
{
    r->conn = c;
    r->id = id;
    r->next_in_conn = c ? c->replies : NULL;
    if (c)
        c->replies = r;
}

static void reply_detach(struct vp_reply *r)
{
    struct vp_conn *c = r->conn;
    if (!c)
        return;
    for (struct vp_reply **pp = &c->replies; *pp; pp = &(*pp)->next_in_conn) {
        if (*pp == r) {
            *pp = r->next_in_conn;
            break;
        }
    }
    r->conn = NULL;
}

void vp_reply_forget(struct vp_reply *r)
{
    reply_detach(r);
}

static void conn_flush(struct vp_conn *c)
{
    if (evio_flush(c->fd, &c->out, c->wr) < 0)
        c->dead = true;
}

static void conn_send(struct vp_conn *c, json_t *msg, const struct ipc_blob *blobs, size_t n)
{
    struct err *e = NULL;
    if (c->dead)
        return;
    if (ipc_encode(&c->out, msg, blobs, n, &e) < 0) {
        log_warn("ipc: cannot send reply: %s", err_msg(e));
        err_free(e);
        json_t *fallback = json_pack("{s:O, s:b, s:i, s:s}", "id", json_object_get(msg, "id"),
                                     "ok", 0, "status", 500, "error", "reply too large");
        if (fallback && ipc_encode(&c->out, fallback, NULL, 0, NULL) == 0)
            conn_flush(c);
        json_decref(fallback);
        return;
    }
    conn_flush(c);
}

void vp_reply_ok(struct vp_reply *r, json_t *result, const struct ipc_blob *blobs, size_t n)
{
    struct vp_conn *c = r->conn;
    reply_detach(r);
    if (!c) {
        json_decref(result);
        return;
    }
    json_t *msg = result ? result : json_object();
    json_object_set_new(msg, "id", json_integer(r->id));
    json_object_set_new(msg, "ok", json_true());
    conn_send(c, msg, blobs, n);
    json_decref(msg);
}

void vp_reply_err(struct vp_reply *r, int status, const char *fmt, ...)
{
    struct vp_conn *c = r->conn;
    reply_detach(r);
    if (!c)
        return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_t *msg = json_pack("{s:I, s:b, s:i, s:s}", "id", (json_int_t)r->id, "ok", 0, "status",
                            status, "error", text);
    conn_send(c, msg, NULL, 0);
    json_decref(msg);
}

void vp_broadcast_event(struct vmproc *vp, json_t *ev)
{
    for (struct vp_conn *c = vp->conns; c; c = c->next)
        conn_send(c, ev, NULL, 0);
}

/* ---------- requests ---------- */

static json_t *status_json(struct vmproc *vp)
{
    static const char *const names[] = {"restoring", "booting", "ready", "stopping", "exited"};
    uint64_t now = time_mono_ms();
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:I}", "vm_id", vp->cfg.id,
                     "name", vp->cfg.name, "state", names[vp->state], "pid", (json_int_t)getpid(),
                     "qemu_pid", (json_int_t)vp->qemu_pid, "accel", vp->cfg.accel, "boot_ms",
                     (json_int_t)(vp->ready_ms ? vp->ready_ms - vp->qemu_start_ms : 0),
                     "agent_version", vp->agent_version, "guest_kernel", vp->guest_kernel,
                     "uptime_ms", (json_int_t)(now - vp->start_ms));
}

struct ready_wait {
    struct vp_reply reply;
    struct event *timer;
    bool answered;
};

static void ready_wait_done(struct vmproc *vp, void *arg, bool ready, const char *why)
{
    struct ready_wait *w = arg;
    if (!w->answered) {
        w->answered = true;
        if (ready)
            vp_reply_ok(&w->reply, status_json(vp), NULL, 0);
        else
            vp_reply_err(&w->reply, 503, "guest not ready: %s", why ? why : "unknown");
    }
    if (w->timer) {
        /* Still owned by the waiter list until it fires: free on both paths. */
        event_free(w->timer);
        w->timer = NULL;
    }
    free(w);
}

/* vmproc_ask.c: IPC ops "asks" and "ask_resolve". */

static void handle_request(struct vp_conn *c, struct ipc_frame *f)
{
    struct vmproc *vp = c->vp;
    json_t *req = f->msg;
    json_t *jid = json_object_get(req, "id");
    const char *op = json_string_value(json_object_get(req, "op"));
    struct vp_reply tmp = {0};
    if (!json_is_integer(jid) || !op) {
        log_warn("ipc: request without id or op; closing the connection");
        c->dead = true;
        return;
    }
    json_int_t id = json_integer_value(jid);
    vp_reply_attach(&tmp, c, id);
    if (strcmp(op, "status") == 0) {
        vp_reply_ok(&tmp, status_json(vp), NULL, 0);
    } else if (strcmp(op, "wait_ready") == 0) {
        reply_detach(&tmp);
        struct ready_wait *w = calloc(1, sizeof(*w));
        if (!w)
            return;
        vp_reply_attach(&w->reply, c, id);
        vp_when_ready(vp, ready_wait_done, w);
    } else if (strcmp(op, "stop") == 0) {
        vp_reply_ok(&tmp, NULL, NULL, 0);
        vmproc_begin_stop(vp, "stopped");
    } else if (strcmp(op, "suspend") == 0 || strcmp(op, "pause") == 0 ||
               strcmp(op, "cont") == 0) {
        reply_detach(&tmp);
        vp_snapshot_request(vp, c, id, op);
    } else if (strcmp(op, "rename") == 0) {
        const char *dir = json_string_value(json_object_get(req, "vm_dir"));
        const char *name = json_string_value(json_object_get(req, "name"));
        if (dir) {
            free(vp->cfg.vm_dir);
            vp->cfg.vm_dir = strdup(dir);
        }
        if (name) {
            free(vp->cfg.name);
            vp->cfg.name = strdup(name);
        }
        json_t *p = json_object_get(req, "persistent");
        if (p)
            vp->cfg.persistent = json_is_true(p);
        log_info("VM is now %s in %s", vp->cfg.name, vp->cfg.vm_dir);
        vp_reply_ok(&tmp, NULL, NULL, 0);
    } else if (strcmp(op, "flush") == 0) {
        /* Read-your-writes for history: commit what is queued (at most one
         * batch interval, ~100 ms, of blocking). */
        if (vp->sdb)
            session_db_flush(vp->sdb, 2000, NULL);
        vp_reply_ok(&tmp, NULL, NULL, 0);
    } else if (strcmp(op, "stats") == 0) {
        vp_stats_request(vp, &tmp, req); /* vmproc_stats.c */
    } else if (strcmp(op, "kill") == 0) {
        vp_reply_ok(&tmp, NULL, NULL, 0);
        vmproc_set_exit(vp, "killed", "deleted on request");
        vp->state = VP_STOPPING;
        vp_qemu_kill(vp);
    } else if (strcmp(op, "exec") == 0) {
        reply_detach(&tmp);
        vp_exec_request(vp, c, id, req);
    } else if (str_has_prefix(op, "file_")) {
        reply_detach(&tmp);
        vp_files_request(vp, c, id, req, f);
    } else if (strcmp(op, "asks") == 0 || strcmp(op, "ask_resolve") == 0) {
        reply_detach(&tmp);
        vp_ask_request(vp, c, id, req); /* vmproc_ask.c */
    } else {
        vp_reply_err(&tmp, 400, "unknown operation: %s", op);
    }
}

/* ---------- connections ---------- */

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vp_conn *c = arg;
    enum evio_read_result r = evio_read(fd, &c->in, 256 * 1024);
    if (r == EVIO_AGAIN)
        return;
    if (r != EVIO_DATA) {
        if (r == EVIO_FULL)
            log_warn("ipc: peer exceeded the frame size; closing");
        conn_close(c);
        return;
    }
    for (;;) {
        struct ipc_frame f;
        struct err *e = NULL;
        int rc = ipc_decode_next(&c->in, &f, &e);
        if (rc < 0) {
            log_warn("ipc: %s; closing the connection", err_msg(e));
            err_free(e);
            conn_close(c);
            return;
        }
        if (rc == 0)
            break;
        handle_request(c, &f);
        ipc_frame_clear(&f);
        if (c->dead) {
            conn_close(c);
            return;
        }
    }
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vp_conn *c = arg;
    conn_flush(c);
    if (c->dead)
        conn_close(c);
}

static void conn_close(struct vp_conn *c)
{
    struct vmproc *vp = c->vp;
    for (struct vp_conn **pp = &vp->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    while (c->replies) {
        struct vp_reply *r = c->replies;
        c->replies = r->next_in_conn;
        r->conn = NULL;
        if (r->on_cancel)
            r->on_cancel(r);
    }
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct vmproc *vp = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    size_t n = 0;
    for (struct vp_conn *it = vp->conns; it; it = it->next)
        n++;
    if (n >= MAX_CONNS) {
        log_warn("ipc: too many connections; refusing one");
        close(fd);
        return;
    }
    struct vp_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->vp = vp;
    c->fd = fd;
    buf_init(&c->in, IPC_MAX_FRAME + IPC_HEADER_LEN + 256 * 1024);
    buf_init(&c->out, CONN_OUT_MAX);
    c->rd = event_new(vp->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->wr = event_new(vp->base, fd, EV_WRITE, conn_write_cb, c);
    event_add(c->rd, NULL);
    c->next = vp->conns;
    vp->conns = c;
}

int vp_ipc_listen(struct vmproc *vp, struct err **errp)
{
    vp->listen_fd = sockpath_listen(vp->cfg.instance_sock, 16, errp);
    if (vp->listen_fd < 0)
        return -1;
    vp->listen_ev = event_new(vp->base, vp->listen_fd, EV_READ | EV_PERSIST, accept_cb, vp);
    event_add(vp->listen_ev, NULL);
    return 0;
}

void vp_ipc_close_all(struct vmproc *vp)
{
    if (vp->listen_ev) {
        event_free(vp->listen_ev);
        vp->listen_ev = NULL;
        close(vp->listen_fd);
        char real[256];
        if (sockpath_resolve(vp->cfg.instance_sock, real, sizeof(real), NULL) == 0)
            unlink(real);
    }
    /* Last words (exit event, replies) go out with a short blocking flush. */
    while (vp->conns) {
        struct vp_conn *c = vp->conns;
        fd_set_nonblock(c->fd, false);
        struct timeval tv = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (c->out.len && !c->dead)
            fd_write_all(c->fd, buf_head(&c->out), c->out.len);
        buf_reset(&c->out);
        conn_close(c);
    }
}
