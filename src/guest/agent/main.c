/* capsem-agent: the guest side of the channel. Runs as PID 1 after
 * capsem-init switched into the root file system. Multi-call: invoked as
 * poweroff/shutdown/halt/suspend/reboot it asks PID 1 for that action. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/wire.h"

#define PORT_NAME "org.capsem.ch0"
#define MAX_CHILDREN 4096

static int epfd = -1;
static struct mux *mux;
static struct watch port_watch;
static struct watch sig_watch;
static struct deadline *deadlines;
static bool shutting_down;
static uint32_t reset_reason; /* for agent_reset_reason() during on_reset */

struct child {
    pid_t pid;
    child_exit_fn fn;
    void *owner;
};
static struct child children[MAX_CHILDREN];

/* ---------- reactor ---------- */

int watch_add(struct watch *w, int fd, uint32_t events, void (*cb)(struct watch *, uint32_t),
              void *owner)
{
    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->owner = owner;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

void watch_mod(struct watch *w, uint32_t events)
{
    if (w->fd < 0 || w->events == events)
        return;
    w->events = events;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void watch_del(struct watch *w)
{
    if (w->fd >= 0)
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1;
    w->cb = NULL;
}

void deadline_arm(struct deadline *d, uint64_t at_ms)
{
    deadline_disarm(d);
    d->at_ms = at_ms;
    d->next = deadlines;
    deadlines = d;
}

void deadline_disarm(struct deadline *d)
{
    for (struct deadline **pp = &deadlines; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    d->at_ms = 0;
    d->next = NULL;
}

static int next_timeout_ms(void)
{
    uint64_t now = time_mono_ms(), best = 0;
    for (struct deadline *d = deadlines; d; d = d->next)
        if (!best || d->at_ms < best)
            best = d->at_ms;
    if (!best)
        return 1000;
    return best <= now ? 0 : (int)MIN(best - now, 1000u);
}

static void run_deadlines(void)
{
    uint64_t now = time_mono_ms();
    bool again = true;
    while (again) {
        again = false;
        for (struct deadline *d = deadlines; d; d = d->next) {
            if (d->at_ms && d->at_ms <= now) {
                deadline_disarm(d);
                d->cb(d);
                again = true; /* the list may have changed */
                break;
            }
        }
    }
}

int child_track(pid_t pid, child_exit_fn fn, void *owner)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].pid == 0) {
            children[i] = (struct child){pid, fn, owner};
            return 0;
        }
    }
    return -1;
}

void child_untrack(pid_t pid)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid == pid)
            children[i].pid = 0;
}

static void reap_children(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
            if (children[i].pid == pid) {
                struct child c = children[i];
                children[i].pid = 0;
                c.fn(c.owner, pid, status);
                break;
            }
        }
    }
}

/* ---------- channel port ---------- */

static void port_flush(void)
{
    for (;;) {
        size_t n;
        const uint8_t *p = mux_output_peek(mux, &n);
        if (!p)
            break;
        ssize_t w = fd_write_retry(port_watch.fd, p, n);
        if (w < 0) {
            if (errno != EAGAIN)
                log_error("channel write: %s", strerror(errno));
            break;
        }
        mux_output_done(mux, (size_t)w);
        if ((size_t)w < n)
            break;
    }
    /* While the first network configuration is applied, host requests wait
     * in the port (net_input_gated). */
    watch_mod(&port_watch, (net_input_gated() ? 0 : EPOLLIN) | (mux_has_output(mux) ? EPOLLOUT : 0));
}

void agent_kick(void)
{
    port_flush();
}

struct mux *agent_mux(void)
{
    return mux;
}

uint32_t agent_reset_reason(void)
{
    return reset_reason;
}

static void port_cb(struct watch *w, uint32_t revents)
{
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        static uint8_t rbuf[128 * 1024];
        for (int i = 0; i < 16 && !net_input_gated(); i++) {
            ssize_t n = fd_read_retry(w->fd, rbuf, sizeof(rbuf));
            if (n <= 0)
                break;
            mux_input(mux, rbuf, (size_t)n);
        }
    }
    port_flush();
}

static int find_port(char *path, size_t cap)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    struct dirent *de;
    int rc = -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char np[300], name[128] = {0};
        snprintf(np, sizeof(np), "/sys/class/virtio-ports/%s/name", de->d_name);
        int fd = open(np, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = fd_read_retry(fd, name, sizeof(name) - 1);
        close(fd);
        if (n <= 0)
            continue;
        name[strcspn(name, "\n")] = 0;
        if (strcmp(name, PORT_NAME) == 0) {
            snprintf(path, cap, "/dev/%s", de->d_name);
            rc = 0;
            break;
        }
    }
    closedir(d);
    return rc;
}

static int open_port(void)
{
    char path[300];
    for (int i = 0; i < 2000; i++) {
        if (find_port(path, sizeof(path)) == 0) {
            int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0)
                return fd;
        }
        usleep(5000);
    }
    return -1;
}

/* ---------- streams ---------- */

int stream_send_rec(struct mux_stream *s, uint16_t type, const void *payload, size_t len)
{
    return rec_send(s, type, payload, len);
}

size_t stream_data_room(struct mux_stream *s)
{
    size_t room = mux_stream_send_room(s);
    return room > REC_HEADER_LEN ? room - REC_HEADER_LEN : 0;
}

bool stream_has_room(struct mux_stream *s, size_t need)
{
    if (stream_data_room(s) >= need)
        return true;
    mux_stream_notify_writable(s);
    return false;
}

static int mux_on_open(void *ctx, struct mux_stream *s, uint16_t svc, const uint8_t *meta,
                       size_t n)
{
    switch (svc) {
    case MUX_SVC_CONTROL:
        return control_open(s);
    case MUX_SVC_EXEC:
        return exec_open(s);
    case MUX_SVC_TERMINAL:
        return term_open(s);
    case MUX_SVC_FILES:
        return files_open(s);
    default:
        return MUX_RST_REFUSED;
    }
}

static struct stream_ctx *ctx_of(struct mux_stream *s)
{
    return mux_stream_user(s);
}

static void mux_on_data(void *ctx, struct mux_stream *s, const uint8_t *d, size_t n)
{
    struct stream_ctx *c = ctx_of(s);
    if (c && c->ops->on_data)
        c->ops->on_data(s, d, n);
    else
        mux_stream_consumed(s, n);
}

static void mux_on_fin(void *ctx, struct mux_stream *s)
{
    struct stream_ctx *c = ctx_of(s);
    if (c && c->ops->on_fin)
        c->ops->on_fin(s);
}

static void mux_on_reset(void *ctx, struct mux_stream *s, uint32_t reason)
{
    struct stream_ctx *c = ctx_of(s);
    reset_reason = reason;
    if (c && c->ops->on_reset)
        c->ops->on_reset(s);
    else
        mux_stream_release(s);
    reset_reason = 0;
}

static void mux_on_writable(void *ctx, struct mux_stream *s)
{
    struct stream_ctx *c = ctx_of(s);
    if (c && c->ops->on_writable)
        c->ops->on_writable(s);
}

static void mux_on_channel_error(void *ctx, const char *why)
{
    log_warn("channel error: %s", why);
}

static const struct mux_callbacks mux_cbs = {
    .on_open = mux_on_open,
    .on_data = mux_on_data,
    .on_fin = mux_on_fin,
    .on_reset = mux_on_reset,
    .on_writable = mux_on_writable,
    .on_channel_error = mux_on_channel_error,
};

/* ---------- signals and lifecycle ---------- */

/* A clean power-off: every process ends, the workspace is remounted
 * read-only (which commits its journal and clears the recovery flag, so
 * the host can write to the stopped VM's disk), then the VM goes. */
static void stop_everything(void)
{
    kill(-1, SIGTERM); /* everyone but PID 1 */
    uint64_t until = time_mono_ms() + 300;
    while (time_mono_ms() < until) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (kill(-1, 0) < 0 && errno == ESRCH)
            break;
        usleep(10000);
    }
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    usleep(20000);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    sync();
    if (mount(NULL, "/root", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
        log_warn("remount /root read-only: %s", strerror(errno));
    sync();
}

void agent_poweroff(void)
{
    if (shutting_down)
        return;
    shutting_down = true;
    /* Give the host the last frames (best effort, bounded). */
    uint64_t until = time_mono_ms() + 200;
    while (mux_has_output(mux) && time_mono_ms() < until) {
        port_flush();
        if (mux_has_output(mux))
            usleep(2000);
    }
    stop_everything();
    reboot(RB_POWER_OFF);
    reboot(RB_AUTOBOOT);
    _exit(1);
}

static void sig_cb(struct watch *w, uint32_t revents)
{
    struct signalfd_siginfo si;
    while (fd_read_retry(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap_children();
            break;
        case SIGUSR2: /* poweroff / shutdown / halt */
            control_report_event(CTL_EVENT_POWEROFF);
            agent_poweroff();
            break;
        case SIGUSR1: /* suspend */
            control_report_event(CTL_EVENT_SUSPEND);
            break;
        default: /* SIGTERM/SIGINT: reboot requests, refused */
            control_report_event(CTL_EVENT_REBOOT);
            break;
        }
    }
    reap_children();
}

static int sysutil_main(const char *name)
{
    if (strcmp(name, "reboot") == 0) {
        fprintf(stderr, "reboot: not supported in a capsem VM; use capsem restart on the host\n");
        return 1;
    }
    int sig = strcmp(name, "suspend") == 0 ? SIGUSR1 : SIGUSR2;
    if (sig == SIGUSR1) {
        char flag[4] = "";
        int fd = open("/run/capsem/persistent", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (fd_read_retry(fd, flag, sizeof(flag) - 1) < 0)
                flag[0] = '\0';
            close(fd);
        }
        if (flag[0] != '1') {
            fprintf(stderr, "suspend: ephemeral VMs cannot be suspended (persist first)\n");
            return 1;
        }
    }
    sync();
    if (kill(1, sig) < 0) {
        fprintf(stderr, "%s: %s\n", name, strerror(errno));
        return 1;
    }
    if (sig == SIGUSR2)
        pause(); /* the VM goes away under us */
    return 0;
}

static int agent_main(void)
{
    log_init("capsem-agent", -1, LOG_INFO);
    sigset_t mask;
    sigemptyset(&mask);
    int sigs[] = {SIGCHLD, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
        sigaddset(&mask, sigs[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sigdelset(&mask, SIGPIPE);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (epfd < 0 || sfd < 0) {
        log_error("epoll/signalfd: %s", strerror(errno));
        return 1;
    }
    watch_add(&sig_watch, sfd, EPOLLIN, sig_cb, NULL);
    int pfd = open_port();
    if (pfd < 0) {
        log_error("channel port %s not found", PORT_NAME);
        return 1;
    }
    mux = mux_new(MUX_SIDE_GUEST, &mux_cbs, NULL);
    watch_add(&port_watch, pfd, EPOLLIN | EPOLLOUT, port_cb, NULL);
    net_hook_start(); /* local test/debug hook; the network stays off until configured */
    port_flush();
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(epfd, evs, ARRAY_SIZE(evs), next_timeout_ms());
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            if (w->cb)
                w->cb(w, evs[i].events);
        }
        run_deadlines();
        port_flush();
    }
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    if (strcmp(name, "capsem-sysutil") == 0) {
        if (argc < 2) {
            fprintf(stderr, "usage: capsem-sysutil poweroff|shutdown|halt|suspend\n");
            return 2;
        }
        name = argv[1];
    }
    if (strcmp(name, "poweroff") == 0 || strcmp(name, "shutdown") == 0 ||
        strcmp(name, "halt") == 0 || strcmp(name, "suspend") == 0 ||
        strcmp(name, "reboot") == 0)
        return sysutil_main(name);
    if (argc > 1 && (strcmp(argv[1], "net-config") == 0 || strcmp(argv[1], "net-status") == 0))
        return net_cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("capsem-agent %s\n", CAPSEM_VERSION);
        return 0;
    }
    if (getpid() != 1 && !getenv("CAPSEM_AGENT_NOT_INIT")) {
        fprintf(stderr, "capsem-agent: must run as PID 1 inside a capsem VM\n");
        return 2;
    }
    return agent_main();
}
