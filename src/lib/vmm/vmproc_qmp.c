/* QMP client of capsem-process: JSON lines over the socketpair QEMU got as
 * `-chardev socket,id=qmp,fd=N`. Commands carry an id; replies are matched
 * to callbacks; events are logged (and counted for the migration code).
 * File descriptors are passed with SCM_RIGHTS for `getfd`. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/util.h"
#include "vmm/vmproc.h"

#define QMP_LINE_MAX (1024u * 1024u)

struct qmp_pending {
    json_int_t id;
    qmp_result_fn cb;
    void *arg;
    struct qmp_pending *next;
};

struct qmp {
    int fd;
    struct event *rd, *wr;
    struct buf in, out;
    bool ready;
    json_int_t next_id;
    struct qmp_pending *pending;
    struct buf queued; /* commands sent before the greeting was handled */
};

static void qmp_flush(struct vmproc *vp)
{
    struct qmp *q = vp->qmp;
    if (evio_flush(q->fd, &q->out, q->wr) < 0)
        log_warn("qmp: write failed: %s", strerror(errno));
}

static void qmp_send_json(struct vmproc *vp, json_t *msg)
{
    struct qmp *q = vp->qmp;
    char *s = json_dumps(msg, JSON_COMPACT);
    if (!s)
        return;
    struct buf *dst = q->ready ? &q->out : &q->queued;
    buf_append_str(dst, s);
    buf_append(dst, "\n", 1);
    free(s);
    if (q->ready)
        qmp_flush(vp);
}

int vp_qmp_command(struct vmproc *vp, const char *cmd, json_t *args, qmp_result_fn cb, void *arg)
{
    struct qmp *q = vp->qmp;
    if (!q) {
        json_decref(args);
        return -1;
    }
    json_int_t id = ++q->next_id;
    json_t *msg = json_pack("{s:s, s:I}", "execute", cmd, "id", id);
    if (args)
        json_object_set_new(msg, "arguments", args);
    struct qmp_pending *p = calloc(1, sizeof(*p));
    if (p) {
        p->id = id;
        p->cb = cb;
        p->arg = arg;
        p->next = q->pending;
        q->pending = p;
    }
    qmp_send_json(vp, msg);
    json_decref(msg);
    return 0;
}

static void qmp_handle(struct vmproc *vp, json_t *msg)
{
    struct qmp *q = vp->qmp;
    if (json_object_get(msg, "QMP")) {
        json_t *caps = json_pack("{s:s}", "execute", "qmp_capabilities");
        char *s = json_dumps(caps, JSON_COMPACT);
        json_decref(caps);
        if (s) {
            buf_append_str(&q->out, s);
            buf_append(&q->out, "\n", 1);
            free(s);
        }
        q->ready = true;
        buf_append(&q->out, buf_head(&q->queued), q->queued.len);
        buf_reset(&q->queued);
        qmp_flush(vp);
        vp_restore_on_qmp_ready(vp);
        return;
    }
    json_t *ev = json_object_get(msg, "event");
    if (ev) {
        log_info("qemu event: %s", json_string_value(ev));
        return;
    }
    json_t *jid = json_object_get(msg, "id");
    if (!jid)
        return; /* the capabilities reply */
    json_int_t id = json_integer_value(jid);
    for (struct qmp_pending **pp = &q->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != id)
            continue;
        struct qmp_pending *p = *pp;
        *pp = p->next;
        json_t *e = json_object_get(msg, "error");
        if (e)
            log_warn("qmp error: %s", json_string_value(json_object_get(e, "desc")));
        if (p->cb)
            p->cb(vp, msg, p->arg);
        free(p);
        return;
    }
}

static void qmp_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vmproc *vp = arg;
    struct qmp *q = vp->qmp;
    uint8_t *dst = buf_reserve(&q->in, 65536);
    if (!dst) {
        log_error("qmp: line too long; dropping the QMP connection");
        event_del(q->rd);
        return;
    }
    ssize_t n = recv(fd, dst, 65536, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        event_del(q->rd);
        return;
    }
    buf_commit(&q->in, (size_t)n);
    for (;;) {
        uint8_t *nl = memchr(buf_head(&q->in), '\n', q->in.len);
        if (!nl)
            break;
        size_t len = (size_t)(nl - buf_head(&q->in));
        json_t *msg = json_loadb((const char *)buf_head(&q->in), len, 0, NULL);
        buf_consume(&q->in, len + 1);
        if (msg) {
            qmp_handle(vp, msg);
            json_decref(msg);
        }
    }
}

static void qmp_write_cb(evutil_socket_t fd, short what, void *arg)
{
    qmp_flush(arg);
}

int vp_qmp_start(struct vmproc *vp, int fd)
{
    struct qmp *q = calloc(1, sizeof(*q));
    if (!q)
        return -1;
    q->fd = fd;
    buf_init(&q->in, QMP_LINE_MAX);
    buf_init(&q->out, QMP_LINE_MAX);
    buf_init(&q->queued, QMP_LINE_MAX);
    fd_set_nonblock(fd, true);
    q->rd = event_new(vp->base, fd, EV_READ | EV_PERSIST, qmp_read_cb, vp);
    q->wr = event_new(vp->base, fd, EV_WRITE, qmp_write_cb, vp);
    event_add(q->rd, NULL);
    vp->qmp = q;
    return 0;
}

void vp_qmp_free(struct vmproc *vp)
{
    struct qmp *q = vp->qmp;
    if (!q)
        return;
    event_free(q->rd);
    event_free(q->wr);
    while (q->pending) {
        struct qmp_pending *p = q->pending;
        q->pending = p->next;
        free(p);
    }
    buf_free(&q->in);
    buf_free(&q->out);
    buf_free(&q->queued);
    close(q->fd);
    free(q);
    vp->qmp = NULL;
}


/* getfd: the descriptor travels with the command's bytes, so the queue must
 * be empty first (it is, outside the first milliseconds of QEMU's life). */
int vp_qmp_getfd(struct vmproc *vp, const char *name, int fd, qmp_result_fn cb, void *arg)
{
    struct qmp *q = vp->qmp;
    if (!q || !q->ready)
        return -1;
    if (q->out.len > 0 && (evio_flush(q->fd, &q->out, q->wr) < 0 || q->out.len > 0))
        return -1;
    json_int_t id = ++q->next_id;
    json_t *msg = json_pack("{s:s, s:I, s:{s:s}}", "execute", "getfd", "id", id, "arguments",
                            "fdname", name);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text)
        return -1;
    size_t len = strlen(text);
    char line[1024];
    if (len + 1 >= sizeof(line)) {
        free(text);
        return -1;
    }
    memcpy(line, text, len);
    line[len++] = '\n';
    free(text);
    struct iovec iov = {.iov_base = line, .iov_len = len};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len)
        return -1;
    struct qmp_pending *p = calloc(1, sizeof(*p));
    if (p) {
        p->id = id;
        p->cb = cb;
        p->arg = arg;
        p->next = q->pending;
        q->pending = p;
    }
    return 0;
}

bool vp_qmp_ready(struct vmproc *vp)
{
    return vp->qmp && vp->qmp->ready;
}
