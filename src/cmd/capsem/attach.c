/* Attaching the local terminal to a VM's terminal socket: raw mode, a poll
 * loop over stdin, the socket and a signalfd (SIGWINCH for resizes; SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT end the session), and the framing of
 * cli/termclient.h. The terminal is restored on every way out. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "cli.h"
#include "cli/format.h"
#include "cli/termclient.h"

#define CONNECT_WAIT_MS 15000 /* a VM just created may not serve its terminal yet */
#define CLOSE_FLUSH_MS  500

struct attach {
    int sock;
    int sfd;
    struct cli_term *t;
    struct buf display;
    struct termios saved;
    bool raw;
    sigset_t oldmask;
    int result;       /* CLI_ATTACH_* or 128 + signal */
    bool done;        /* the session is over; closing */
    bool peer_closed; /* the server's close frame or EOF arrived */
};

static int connect_retry(const char *path, struct buf *early, struct err **errp)
{
    uint64_t deadline = time_mono_ms() + CONNECT_WAIT_MS;
    for (;;) {
        _cleanup_err_ struct err *e = NULL;
        int fd = cli_term_connect(path, early, &e);
        if (fd >= 0)
            return fd;
        bool absent = e->status == 0 && (e->code == ENOENT || e->code == ECONNREFUSED);
        if (!absent || time_mono_ms() >= deadline) {
            err_move(errp, &e);
            err_prefix(errp, "cannot open the VM's terminal");
            return -1;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int send_size(struct attach *a, struct err **errp)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0 || ws.ws_row == 0)
        return 0; /* unknown size: the guest keeps 80x24 */
    return cli_term_resize(a->t, ws.ws_col, ws.ws_row, errp);
}

static int enter_raw(struct attach *a, struct err **errp)
{
    if (tcgetattr(STDIN_FILENO, &a->saved) < 0)
        return err_sys(errp, "reading terminal settings");
    struct termios raw = a->saved;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
        return err_sys(errp, "setting the terminal to raw mode");
    a->raw = true;
    return 0;
}

static void leave_raw(struct attach *a)
{
    if (a->raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &a->saved);
    a->raw = false;
}

static int setup_signals(struct attach *a, struct err **errp)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    if (sigprocmask(SIG_BLOCK, &set, &a->oldmask) < 0)
        return err_sys(errp, "sigprocmask");
    a->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a->sfd < 0)
        return err_sys(errp, "signalfd");
    return 0;
}

static void finish(struct attach *a, int result)
{
    if (a->done)
        return;
    a->done = true;
    a->result = result;
    cli_term_close(a->t, NULL);
}

static int on_signal(struct attach *a, struct err **errp)
{
    struct signalfd_siginfo si;
    while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGWINCH) {
            if (send_size(a, errp) < 0)
                return -1;
        } else {
            finish(a, 128 + (int)si.ssi_signo);
        }
    }
    return 0;
}

static int on_stdin(struct attach *a, struct err **errp)
{
    uint8_t data[4096];
    ssize_t n = read(STDIN_FILENO, data, sizeof(data));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : err_sys(errp, "reading the terminal");
    if (n == 0) {
        finish(a, CLI_ATTACH_DETACHED); /* no more input: leave the shell running */
        return 0;
    }
    int rc = cli_term_input(a->t, data, (size_t)n, errp);
    if (rc == 1)
        finish(a, CLI_ATTACH_DETACHED);
    return rc < 0 ? -1 : 0;
}

static int on_socket_in(struct attach *a, struct err **errp)
{
    uint8_t data[65536];
    ssize_t n = recv(a->sock, data, sizeof(data), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0 && errno != ECONNRESET)
        return err_sys(errp, "terminal socket");
    if (n <= 0) {
        a->peer_closed = true;
        if (!a->done) { /* the server went away: the shell is over */
            a->done = true;
            a->result = CLI_ATTACH_EXITED;
        }
        return 0;
    }
    int rc = cli_term_feed(a->t, data, (size_t)n, &a->display, errp);
    if (a->display.len && !cli_write(STDOUT_FILENO, buf_head(&a->display), a->display.len))
        return err_sys(errp, "writing to the terminal");
    buf_reset(&a->display);
    if (rc == 1) {
        a->peer_closed = true;
        if (!a->done) {
            a->done = true;
            a->result = CLI_ATTACH_EXITED;
        }
    }
    return rc < 0 ? -1 : 0;
}

static int on_socket_out(struct attach *a, struct err **errp)
{
    struct buf *q = cli_term_outq(a->t);
    ssize_t n = send(a->sock, buf_head(q), q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : err_sys(errp, "terminal socket");
    buf_consume(q, (size_t)n);
    return 0;
}

/* One poll round; returns -1 on error. */
static int step(struct attach *a, int timeout_ms, struct err **errp)
{
    struct buf *q = cli_term_outq(a->t);
    struct pollfd p[3] = {
        {a->sfd, POLLIN, 0},
        {a->sock, (short)(POLLIN | (q->len ? POLLOUT : 0)), 0},
        {STDIN_FILENO, (short)(a->done || q->len > CLI_TERM_MAX_OUTQUEUE / 2 ? 0 : POLLIN), 0},
    };
    int n = poll(p, 3, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : err_sys(errp, "poll");
    if ((p[0].revents & POLLIN) && on_signal(a, errp) < 0)
        return -1;
    if ((p[1].revents & POLLOUT) && on_socket_out(a, errp) < 0)
        return -1;
    if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && on_socket_in(a, errp) < 0)
        return -1;
    if ((p[2].revents & (POLLIN | POLLHUP)) && on_stdin(a, errp) < 0)
        return -1;
    return 0;
}

static int session(struct attach *a, struct err **errp)
{
    if (setup_signals(a, errp) < 0 || enter_raw(a, errp) < 0 || send_size(a, errp) < 0)
        return -1;
    if (a->display.len && !cli_write(STDOUT_FILENO, buf_head(&a->display), a->display.len))
        return err_sys(errp, "writing to the terminal");
    buf_reset(&a->display);
    while (!a->done)
        if (step(a, -1, errp) < 0)
            return -1;
    /* Closing handshake, briefly: our close frame out, the server's back. */
    uint64_t deadline = time_mono_ms() + CLOSE_FLUSH_MS;
    while ((cli_term_outq(a->t)->len || !a->peer_closed) && time_mono_ms() < deadline)
        if (step(a, 50, NULL) < 0)
            break;
    return 0;
}

int cli_attach(const char *uds_path, struct err **errp)
{
    struct attach a = {.sock = -1, .sfd = -1, .result = CLI_ATTACH_EXITED};
    buf_init(&a.display, CLI_TERM_MAX_MESSAGE * 2);
    sigemptyset(&a.oldmask);
    sigprocmask(SIG_BLOCK, NULL, &a.oldmask);
    _cleanup_free_ char *path = cli_ws_socket_path(uds_path);
    int rc = -1;
    if (!path) {
        err_set(errp, ENOMEM, "out of memory");
        goto out;
    }
    a.sock = connect_retry(path, &a.display, errp); /* early bytes are frames, fed below */
    if (a.sock < 0 || !(a.t = cli_term_new(errp)))
        goto out;
    struct buf early = a.display;
    buf_init(&a.display, CLI_TERM_MAX_MESSAGE * 2);
    int frc = early.len ? cli_term_feed(a.t, buf_head(&early), early.len, &a.display, errp) : 0;
    buf_free(&early);
    if (frc < 0)
        goto out;
    a.done = a.peer_closed = frc == 1; /* the shell may be over before we start */
    if (session(&a, errp) < 0)
        goto out;
    rc = a.result;
out:
    leave_raw(&a);
    if (a.sfd >= 0)
        close(a.sfd);
    sigprocmask(SIG_SETMASK, &a.oldmask, NULL);
    if (a.sock >= 0)
        close(a.sock);
    cli_term_free(a.t);
    buf_free(&a.display);
    return rc;
}
