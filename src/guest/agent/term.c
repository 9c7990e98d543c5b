/* Terminal streams: one login shell on a PTY per stream. Input from the host
 * is written to the PTY; credit is returned only once it was written, so a
 * large paste cannot grow our buffers. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"

#define TERM_INBUF_MAX (256u * 1024u)

struct term {
    struct stream_ctx base;
    struct mux_stream *s;
    struct rec_reader rr;
    struct watch master;
    pid_t pid;
    bool exited;
    int status;
    bool master_eof;
    bool done;
    struct buf inbuf;       /* input not yet accepted by the PTY */
    bool blocked;           /* records wait until inbuf drains */
};

static int term_process(struct term *t);

/* Resets the stream and frees the session; the caller must not touch t. */
static void term_abort(struct term *t, uint32_t reason);

static void term_free(struct term *t)
{
    if (t->master.fd >= 0) {
        int fd = t->master.fd;
        watch_del(&t->master);
        close(fd);
    }
    if (t->pid > 0 && !t->exited) {
        kill(-t->pid, SIGHUP);
        child_untrack(t->pid);
    }
    rec_reader_free(&t->rr);
    buf_free(&t->inbuf);
    if (t->s)
        mux_stream_release(t->s);
    free(t);
}

static void term_finish(struct term *t)
{
    if (t->done || !t->exited || !t->master_eof)
        return;
    t->done = true;
    if (t->s) {
        int code = WIFEXITED(t->status) ? WEXITSTATUS(t->status) : 128 + WTERMSIG(t->status);
        struct buf b;
        buf_init(&b, 64);
        tlv_put_i32(&b, T_EXIT_CODE, code);
        stream_send_rec(t->s, TERM_EXIT, buf_head(&b), b.len);
        buf_free(&b);
        mux_stream_close_write(t->s);
        agent_kick();
        if (mux_stream_peer_finished(t->s))
            term_free(t);
    }
}

static void master_interest(struct term *t)
{
    if (t->master.fd < 0)
        return;
    uint32_t ev = 0;
    if (t->s && stream_has_room(t->s, AGENT_DATA_CHUNK + 64))
        ev |= EPOLLIN;
    if (t->inbuf.len > 0)
        ev |= EPOLLOUT;
    watch_mod(&t->master, ev);
}

static void master_close(struct term *t)
{
    if (t->master.fd >= 0) {
        int fd = t->master.fd;
        watch_del(&t->master);
        close(fd);
    }
    t->master_eof = true;
}

static void master_cb(struct watch *w, uint32_t revents)
{
    struct term *t = w->owner;
    if (revents & EPOLLOUT && t->inbuf.len > 0) {
        ssize_t n = fd_write_retry(w->fd, buf_head(&t->inbuf), t->inbuf.len);
        if (n > 0)
            buf_consume(&t->inbuf, (size_t)n);
        if (t->inbuf.len == 0 && t->blocked) {
            t->blocked = false;
            if (term_process(t) < 0)
                return;
        }
    }
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        static uint8_t data[AGENT_DATA_CHUNK];
        for (int i = 0; i < 8; i++) {
            if (!t->s || !stream_has_room(t->s, AGENT_DATA_CHUNK + 64))
                break;
            ssize_t n = fd_read_retry(w->fd, data, sizeof(data));
            if (n < 0 && errno == EAGAIN)
                break;
            if (n <= 0) { /* EIO once the shell and its children closed the slave */
                master_close(t);
                term_finish(t);
                return;
            }
            stream_send_rec(t->s, TERM_OUTPUT, data, (size_t)n);
        }
    }
    master_interest(t);
}

static void shell_exited(void *owner, pid_t pid, int status)
{
    struct term *t = owner;
    t->exited = true;
    t->status = status;
    /* Leftover output is still readable; EOF on the master ends the session. */
    term_finish(t);
}

static void set_size(int fd, uint32_t cols, uint32_t rows)
{
    struct winsize ws = {.ws_row = (unsigned short)MIN(rows, 1000u),
                         .ws_col = (unsigned short)MIN(cols, 1000u)};
    if (ws.ws_row == 0)
        ws.ws_row = 24;
    if (ws.ws_col == 0)
        ws.ws_col = 80;
    ioctl(fd, TIOCSWINSZ, &ws);
}

static int parse_size(const uint8_t *p, size_t len, uint32_t *cols, uint32_t *rows)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_COLS)
            tlv_as_u32(v, n, cols);
        else if (tag == T_ROWS)
            tlv_as_u32(v, n, rows);
    }
    return 0;
}

static int start_shell(struct term *t, uint32_t cols, uint32_t rows)
{
    int master = -1, slave = -1;
    struct winsize ws = {.ws_row = (unsigned short)(rows ? MIN(rows, 1000u) : 24),
                         .ws_col = (unsigned short)(cols ? MIN(cols, 1000u) : 80)};
    if (openpty(&master, &slave, NULL, NULL, &ws) < 0)
        return -1;
    char **envp = env_build("xterm-256color", NULL, 0);
    pid_t pid = fork();
    if (pid < 0) {
        close(master);
        close(slave);
        env_free(envp);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        setsid();
        ioctl(slave, TIOCSCTTY, 0);
        dup2(slave, 0);
        dup2(slave, 1);
        dup2(slave, 2);
        if (slave > 2)
            close(slave);
        close(master);
        if (chdir("/root") < 0)
            _exit(126);
        char *argv[] = {"-bash", NULL};
        execve("/bin/bash", argv, envp);
        char *shargv[] = {"-sh", NULL};
        execve("/bin/sh", shargv, envp);
        _exit(127);
    }
    env_free(envp);
    close(slave);
    fd_set_nonblock(master, true);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    t->pid = pid;
    watch_add(&t->master, master, EPOLLIN, master_cb, t);
    child_track(pid, shell_exited, t);
    return 0;
}

static int term_input(struct term *t, const uint8_t *p, size_t len)
{
    size_t off = 0;
    if (t->inbuf.len == 0 && t->master.fd >= 0) {
        ssize_t n = fd_write_retry(t->master.fd, p, len);
        if (n > 0)
            off = (size_t)n;
    }
    if (off < len && buf_append(&t->inbuf, p + off, len - off) < 0)
        return -1;
    if (t->inbuf.len > 0)
        t->blocked = true;
    return 0;
}

static void term_abort(struct term *t, uint32_t reason)
{
    if (t->s) {
        mux_stream_reset(t->s, reason);
        mux_stream_release(t->s);
        t->s = NULL;
    }
    term_free(t);
}

static int term_process(struct term *t)
{
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while (!t->blocked && (rc = rec_reader_next(&t->rr, &type, &p, &n)) == 1) {
        size_t rec_bytes = REC_HEADER_LEN + n;
        uint32_t cols = 0, rows = 0;
        switch (type) {
        case TERM_OPEN:
            parse_size(p, n, &cols, &rows);
            if (t->pid == 0 && start_shell(t, cols, rows) < 0) {
                term_abort(t, MUX_RST_INTERNAL);
                return -1;
            }
            break;
        case TERM_INPUT:
            if (term_input(t, p, n) < 0) {
                term_abort(t, MUX_RST_INTERNAL);
                return -1;
            }
            break;
        case TERM_RESIZE:
            parse_size(p, n, &cols, &rows);
            if (t->master.fd >= 0)
                set_size(t->master.fd, cols, rows);
            break;
        default:
            term_abort(t, MUX_RST_PROTOCOL);
            return -1;
        }
        mux_stream_consumed(t->s, rec_bytes);
    }
    if (!t->blocked && rc < 0) {
        term_abort(t, MUX_RST_PROTOCOL);
        return -1;
    }
    master_interest(t);
    return 0;
}

static void term_on_data(struct mux_stream *s, const uint8_t *d, size_t len)
{
    struct term *t = mux_stream_user(s);
    if (rec_reader_feed(&t->rr, d, len) < 0) {
        term_abort(t, MUX_RST_PROTOCOL);
        return;
    }
    term_process(t);
}

static void term_on_fin(struct mux_stream *s)
{
    struct term *t = mux_stream_user(s);
    if (t->done)
        term_free(t);
    else if (t->pid > 0 && !t->exited)
        kill(-t->pid, SIGHUP); /* the host detached: end the session */
}

static void term_on_reset(struct mux_stream *s)
{
    struct term *t = mux_stream_user(s);
    mux_stream_release(s);
    t->s = NULL;
    term_free(t);
}

static void term_on_writable(struct mux_stream *s)
{
    master_interest(mux_stream_user(s));
}

static const struct stream_ops term_ops = {
    .on_data = term_on_data,
    .on_fin = term_on_fin,
    .on_reset = term_on_reset,
    .on_writable = term_on_writable,
};

int term_open(struct mux_stream *s)
{
    struct term *t = calloc(1, sizeof(*t));
    if (!t)
        return MUX_RST_INTERNAL;
    t->base.ops = &term_ops;
    t->s = s;
    t->master.fd = -1;
    rec_reader_init(&t->rr, AGENT_MAX_RECORD);
    buf_init(&t->inbuf, TERM_INBUF_MAX);
    mux_stream_set_user(s, t);
    return 0;
}
