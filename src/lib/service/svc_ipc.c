/* Service side of the IPC to each capsem-process: framed JSON requests with
 * ids, replies matched to callbacks, unsolicited events. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/util.h"
#include "service/service.h"

struct ipc_pending {
    json_int_t id;
    ipc_reply_fn fn;
    void *arg;
    struct ipc_pending *next;
};

struct svc_ipc {
    struct svm *vm;
    int fd;
    struct event *rd, *wr;
    struct buf in, out;
    json_int_t next_id;
    struct ipc_pending *pending;
    bool closed;
    int depth;           /* inside read_cb: frees are deferred */
    bool free_pending;
    struct event *dead_ev; /* deferred disconnect handling */
};

/* Runs from the reactor, never inside another callback of this connection. */
static void dead_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_ipc *c = arg;
    struct ipc_pending *list = c->pending;
    c->pending = NULL;
    struct err e = {.code = ECONNRESET, .status = 500, .msg = "the VM process exited"};
    while (list) {
        struct ipc_pending *p = list;
        list = p->next;
        if (p->fn)
            p->fn(c->vm, NULL, &e, p->arg);
        free(p);
    }
    svc_vm_on_disconnect(c->vm);
}

static void ipc_shutdown(struct svc_ipc *c)
{
    if (c->closed)
        return;
    c->closed = true;
    event_del(c->rd);
    event_del(c->wr);
    event_active(c->dead_ev, EV_TIMEOUT, 0);
}

static void flush(struct svc_ipc *c)
{
    if (evio_flush(c->fd, &c->out, c->wr) < 0)
        ipc_shutdown(c);
}

static void handle_frame(struct svc_ipc *c, struct ipc_frame *f)
{
    json_t *id = json_object_get(f->msg, "id");
    if (!id) {
        if (json_object_get(f->msg, "event"))
            svc_vm_on_event(c->vm, f->msg);
        return;
    }
    json_int_t v = json_integer_value(id);
    for (struct ipc_pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != v)
            continue;
        struct ipc_pending *p = *pp;
        *pp = p->next;
        if (p->fn) {
            if (json_is_true(json_object_get(f->msg, "ok"))) {
                p->fn(c->vm, f, NULL, p->arg);
            } else {
                const char *msg = json_string_value(json_object_get(f->msg, "error"));
                json_int_t st = json_integer_value(json_object_get(f->msg, "status"));
                struct err e = {.code = 0, .status = st ? (int)st : 500,
                                .msg = (char *)(msg ? msg : "VM process error")};
                p->fn(c->vm, f, &e, p->arg);
            }
        }
        free(p);
        return;
    }
}

static void read_frames(struct svc_ipc *c, evutil_socket_t fd);

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc_ipc *c = arg;
    c->depth++;
    read_frames(c, fd);
    c->depth--;
    if (c->free_pending)
        svc_ipc_free(c);
}

static void read_frames(struct svc_ipc *c, evutil_socket_t fd)
{
    enum evio_read_result r = evio_read(fd, &c->in, 256 * 1024);
    if (r == EVIO_AGAIN)
        return;
    if (r != EVIO_DATA) {
        if (r == EVIO_FULL)
            log_warn("ipc %s: oversized frame from capsem-process", c->vm->id);
        ipc_shutdown(c);
        return;
    }
    for (;;) {
        struct ipc_frame f;
        struct err *e = NULL;
        int rc = ipc_decode_next(&c->in, &f, &e);
        if (rc < 0) {
            log_warn("ipc %s: %s", c->vm->id, err_msg(e));
            err_free(e);
            ipc_shutdown(c);
            return;
        }
        if (rc == 0)
            return;
        handle_frame(c, &f);
        ipc_frame_clear(&f);
        if (c->closed)
            return;
    }
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    flush(arg);
}

struct svc_ipc *svc_ipc_new(struct svm *vm, int fd)
{
    struct svc_ipc *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->vm = vm;
    c->fd = fd;
    fd_set_nonblock(fd, true);
    buf_init(&c->in, IPC_MAX_FRAME + IPC_HEADER_LEN + 256 * 1024);
    buf_init(&c->out, IPC_MAX_FRAME * 2u);
    c->rd = event_new(vm->svc->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    c->dead_ev = event_new(vm->svc->base, -1, 0, dead_cb, c);
    c->wr = event_new(vm->svc->base, fd, EV_WRITE, write_cb, c);
    event_add(c->rd, NULL);
    return c;
}

void svc_ipc_free(struct svc_ipc *c)
{
    if (!c)
        return;
    c->closed = true; /* no callbacks from here on */
    if (c->depth > 0) {
        c->free_pending = true;
        return;
    }
    while (c->pending) {
        struct ipc_pending *p = c->pending;
        c->pending = p->next;
        free(p);
    }
    event_free(c->rd);
    event_free(c->wr);
    event_free(c->dead_ev);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
}

int svc_ipc_call(struct svc_ipc *c, json_t *req, const struct ipc_blob *blobs, size_t nblobs,
                 ipc_reply_fn fn, void *arg)
{
    struct err *e = NULL;
    if (c->closed) {
        struct err gone = {.code = ECONNRESET, .status = 500, .msg = "the VM process exited"};
        if (fn)
            fn(c->vm, NULL, &gone, arg);
        json_decref(req);
        return -1;
    }
    json_int_t id = ++c->next_id;
    json_object_set_new(req, "id", json_integer(id));
    if (ipc_encode(&c->out, req, blobs, nblobs, &e) < 0) {
        if (fn)
            fn(c->vm, NULL, e, arg);
        err_free(e);
        json_decref(req);
        return -1;
    }
    json_decref(req);
    struct ipc_pending *p = calloc(1, sizeof(*p));
    if (p) {
        p->id = id;
        p->fn = fn;
        p->arg = arg;
        p->next = c->pending;
        c->pending = p;
    }
    flush(c);
    return 0;
}
