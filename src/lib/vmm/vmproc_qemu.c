/* QEMU child: spawn with inherited socketpairs, QMP client, serial console
 * capture into serial.log (bounded), exit handling and the stop sequence. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/evio.h"
#include "base/log.h"
#include "base/util.h"
#include "vm/qemu.h"
#include "vmm/vmproc.h"

#define SERIAL_LOG_MAX (8u * 1024u * 1024u)
#define QMP_LINE_MAX (1024u * 1024u)
#define QUIT_GRACE_MS 3000

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

/* ---------- QMP ---------- */

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

static int qmp_start(struct vmproc *vp, int fd)
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

/* ---------- console ---------- */

static void console_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vmproc *vp = arg;
    static uint8_t data[16384];
    ssize_t n = recv(fd, data, sizeof(data), 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        event_del(vp->console_ev);
        return;
    }
    if (vp->serial_bytes + (uint64_t)n > SERIAL_LOG_MAX) {
        /* A chatty guest must not fill the host disk: start over. */
        if (ftruncate(vp->serial_fd, 0) == 0) {
            const char *note = "[capsem: serial.log reached its size cap and was restarted]\n";
            fd_write_all(vp->serial_fd, note, strlen(note));
            vp->serial_bytes = strlen(note);
        }
    }
    if (fd_write_all(vp->serial_fd, data, (size_t)n) == 0)
        vp->serial_bytes += (uint64_t)n;
}

/* ---------- process ---------- */

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    struct vmproc *vp = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == vp->qemu_pid)
            vp_qemu_on_exit(vp, status);
    }
}

static void child_exec(struct vmproc *vp, char **argv, const int *keep, size_t nkeep)
{
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0)
        dup2(null, STDIN_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO); /* process.log */
    for (size_t i = 0; i < nkeep; i++) {
        int fl = fcntl(keep[i], F_GETFD);
        fcntl(keep[i], F_SETFD, fl & ~FD_CLOEXEC);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "capsem-process: cannot execute %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int vp_qemu_start(struct vmproc *vp, struct err **errp)
{
    int chan[2], qmp[2], con[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0)
        return err_sys(errp, "socketpair");
    struct qemu_fds fds = {.channel = chan[1], .qmp = qmp[1], .console = con[1]};
    char **argv = qemu_build_argv(&vp->cfg, &fds, errp);
    if (!argv)
        return -1;
    char cmdline[8192] = "";
    for (char **a = argv; *a; a++) {
        strncat(cmdline, *a, sizeof(cmdline) - strlen(cmdline) - 2);
        strncat(cmdline, " ", sizeof(cmdline) - strlen(cmdline) - 1);
    }
    log_info("qemu: %s", cmdline);
    char *kcmd = qemu_kernel_cmdline(&vp->cfg);
    log_info("kernel cmdline: %s", kcmd ? kcmd : "?");
    free(kcmd);
    vp->sigchld_ev = evsignal_new(vp->base, SIGCHLD, sigchld_cb, vp);
    evsignal_add(vp->sigchld_ev, NULL);
    vp->qemu_start_ms = time_mono_ms();
    pid_t pid = fork();
    if (pid < 0) {
        qemu_argv_free(argv);
        return err_sys(errp, "fork");
    }
    if (pid == 0) {
        int keep[] = {chan[1], qmp[1], con[1]};
        child_exec(vp, argv, keep, ARRAY_SIZE(keep));
    }
    qemu_argv_free(argv);
    vp->qemu_pid = pid;
    close(chan[1]);
    close(qmp[1]);
    close(con[1]);
    log_info("qemu pid %d", (int)pid);
    vp->console_fd = con[0];
    fd_set_nonblock(con[0], true);
    vp->console_ev = event_new(vp->base, con[0], EV_READ | EV_PERSIST, console_cb, vp);
    event_add(vp->console_ev, NULL);
    if (qmp_start(vp, qmp[0]) < 0)
        return err_set(errp, ENOMEM, "out of memory");
    return vp_channel_start(vp, chan[0], errp);
}

void vp_qemu_kill(struct vmproc *vp)
{
    if (vp->qemu_pid > 0 && !vp->qemu_exited)
        kill(vp->qemu_pid, SIGKILL);
}

void vp_qemu_on_exit(struct vmproc *vp, int status)
{
    vp->qemu_exited = true;
    vp->qemu_status = status;
    if (vp->console_ev) {
        /* Drain what the console still holds before we go. */
        console_cb(vp->console_fd, EV_READ, vp);
        event_del(vp->console_ev);
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (vp->state == VP_STOPPING)
        vmproc_set_exit(vp, "stopped", "stopped on request");
    else if (vp->guest_poweroff_requested && clean)
        vmproc_set_exit(vp, "guest-poweroff", "the guest powered off");
    else if (vp->state == VP_BOOTING)
        vmproc_set_exit(vp, "boot-failed", "QEMU exited while the guest was booting (%s %d)",
                        WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    else if (clean)
        vmproc_set_exit(vp, "guest-poweroff", "the guest shut down");
    else
        vmproc_set_exit(vp, "crashed", "QEMU exited unexpectedly (%s %d)",
                        WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    log_info("qemu exited (%s %d)", WIFEXITED(status) ? "status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    vp->state = VP_EXITED;
    event_base_loopbreak(vp->base);
}

/* ---------- stop sequence ---------- */

static void stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vmproc *vp = arg;
    if (vp->qemu_exited)
        return;
    if (vp->stop_phase == 1) {
        log_warn("guest did not power off within %u s; asking QEMU to quit",
                 vp->cfg.shutdown_grace_secs);
        vp->stop_phase = 2;
        vp_qmp_command(vp, "quit", NULL, NULL, NULL);
        struct timeval tv = {QUIT_GRACE_MS / 1000, 0};
        event_add(vp->stop_ev, &tv);
    } else {
        log_warn("QEMU did not quit; killing it");
        vp_qemu_kill(vp);
    }
}

void vmproc_begin_stop(struct vmproc *vp, const char *reason)
{
    if (vp->state == VP_STOPPING || vp->state == VP_EXITED)
        return;
    bool was_ready = vp->state == VP_READY;
    vp->state = VP_STOPPING;
    vmproc_set_exit(vp, reason, "stopped on request");
    vp_ready_changed(vp, false, "VM is stopping");
    if (!vp->stop_ev)
        vp->stop_ev = event_new(vp->base, -1, 0, stop_timer_cb, vp);
    struct timeval tv;
    if (was_ready) {
        vp->stop_phase = 1;
        vp_guest_shutdown(vp);
        tv = (struct timeval){vp->cfg.shutdown_grace_secs, 0};
    } else {
        vp->stop_phase = 2;
        vp_qmp_command(vp, "quit", NULL, NULL, NULL);
        tv = (struct timeval){QUIT_GRACE_MS / 1000, 0};
    }
    event_add(vp->stop_ev, &tv);
}
