/* Exec streams: `/bin/bash -c <command>` in /root, in its own process group,
 * stdin /dev/null, stdout and stderr streamed separately, output capped,
 * timeout enforced here (it counts from the spawn). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"

#define DRAIN_AFTER_EXIT_MS 200
/* Room kept free in the send queue so the exit record always fits. */
#define EXIT_RESERVE 256

struct exec_job {
    struct stream_ctx base;
    struct mux_stream *s;
    struct rec_reader rr;
    bool started;
    pid_t pid;
    struct watch out[2]; /* stdout, stderr */
    bool eof[2];
    uint64_t bytes[2];
    bool truncated[2];
    uint64_t max_output;
    uint64_t start_ms, end_ms;
    int status;
    bool exited;
    bool timed_out;
    bool done;
    bool stream_gone;
    struct deadline timeout;
    struct deadline drain;
};

static void job_maybe_finish(struct exec_job *j);

static void job_free(struct exec_job *j)
{
    for (int i = 0; i < 2; i++) {
        if (j->out[i].fd >= 0) {
            int fd = j->out[i].fd;
            watch_del(&j->out[i]);
            close(fd);
        }
    }
    deadline_disarm(&j->timeout);
    deadline_disarm(&j->drain);
    if (j->pid > 0 && !j->exited)
        child_untrack(j->pid);
    rec_reader_free(&j->rr);
    if (j->s)
        mux_stream_release(j->s);
    free(j);
}

static void kill_group(struct exec_job *j)
{
    if (j->pid > 0 && !j->exited)
        kill(-j->pid, SIGKILL);
}

static void pipe_update_interest(struct exec_job *j)
{
    bool room = j->s && stream_has_room(j->s, AGENT_DATA_CHUNK + EXIT_RESERVE);
    for (int i = 0; i < 2; i++)
        if (j->out[i].fd >= 0)
            watch_mod(&j->out[i], room ? EPOLLIN : 0);
}

static void pipe_close(struct exec_job *j, int i)
{
    if (j->out[i].fd < 0)
        return;
    int fd = j->out[i].fd;
    watch_del(&j->out[i]);
    close(fd);
    j->eof[i] = true;
}

static void pipe_cb(struct watch *w, uint32_t revents)
{
    struct exec_job *j = w->owner;
    int i = w == &j->out[0] ? 0 : 1;
    static uint8_t data[AGENT_DATA_CHUNK];
    for (int round = 0; round < 8; round++) {
        if (j->s && !stream_has_room(j->s, AGENT_DATA_CHUNK + EXIT_RESERVE))
            break;
        ssize_t n = fd_read_retry(w->fd, data, sizeof(data));
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            pipe_close(j, i);
            job_maybe_finish(j);
            return;
        }
        uint64_t keep = 0;
        if (j->bytes[i] < j->max_output)
            keep = MIN((uint64_t)n, j->max_output - j->bytes[i]);
        if (keep < (uint64_t)n)
            j->truncated[i] = true;
        j->bytes[i] += (uint64_t)n;
        if (keep > 0 && j->s)
            stream_send_rec(j->s, i == 0 ? EXEC_STDOUT : EXEC_STDERR, data, (size_t)keep);
    }
    pipe_update_interest(j);
}

static void send_exit(struct exec_job *j)
{
    int code;
    if (j->timed_out)
        code = 124;
    else if (WIFEXITED(j->status))
        code = WEXITSTATUS(j->status);
    else if (WIFSIGNALED(j->status))
        code = 128 + WTERMSIG(j->status);
    else
        code = 1;
    struct buf b;
    buf_init(&b, 256);
    tlv_put_i32(&b, T_EXIT_CODE, code);
    tlv_put_u32(&b, T_TIMED_OUT, j->timed_out);
    tlv_put_u32(&b, T_TRUNCATED, (j->truncated[0] ? 1u : 0u) | (j->truncated[1] ? 2u : 0u));
    tlv_put_u64(&b, T_DURATION_MS, j->end_ms - j->start_ms);
    tlv_put_u64(&b, T_STDOUT_BYTES, j->bytes[0]);
    tlv_put_u64(&b, T_STDERR_BYTES, j->bytes[1]);
    /* The exit record is small; the queue always has room for it once the
     * pipes stopped feeding it (we only read when a full chunk fits). */
    stream_send_rec(j->s, EXEC_EXIT, buf_head(&b), b.len);
    buf_free(&b);
    mux_stream_close_write(j->s);
}

static void job_maybe_finish(struct exec_job *j)
{
    if (j->done || !j->exited)
        return;
    bool drained = j->eof[0] && j->eof[1];
    if (!drained && j->drain.at_ms)
        return; /* still draining, within the 200 ms */
    if (!drained && !j->drain.at_ms) {
        deadline_arm(&j->drain, time_mono_ms() + DRAIN_AFTER_EXIT_MS);
        return;
    }
    j->done = true;
    deadline_disarm(&j->drain);
    deadline_disarm(&j->timeout);
    pipe_close(j, 0);
    pipe_close(j, 1);
    if (j->s && !j->stream_gone) {
        send_exit(j);
        agent_kick();
    }
    if (j->stream_gone || (j->s && mux_stream_peer_finished(j->s)))
        job_free(j);
}

static void drain_expired(struct deadline *d)
{
    struct exec_job *j = d->owner;
    /* Background processes keep the pipes open: stop waiting for them. */
    j->eof[0] = j->eof[1] = true;
    job_maybe_finish(j);
}

static void timeout_expired(struct deadline *d)
{
    struct exec_job *j = d->owner;
    if (j->exited)
        return;
    j->timed_out = true;
    kill_group(j);
}

static void child_exited(void *owner, pid_t pid, int status)
{
    struct exec_job *j = owner;
    j->exited = true;
    j->status = status;
    j->end_ms = time_mono_ms();
    deadline_disarm(&j->timeout);
    job_maybe_finish(j);
}

static int spawn(struct exec_job *j, const char *command, char **envp)
{
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        goto fail;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, "/root");
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"bash", "-c", (char *)command, NULL};
    j->start_ms = time_mono_ms();
    int rc = posix_spawn(&j->pid, "/bin/bash", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        errno = rc;
        return -1;
    }
    fd_set_nonblock(out[0], true);
    fd_set_nonblock(err[0], true);
    watch_add(&j->out[0], out[0], EPOLLIN, pipe_cb, j);
    watch_add(&j->out[1], err[0], EPOLLIN, pipe_cb, j);
    child_track(j->pid, child_exited, j);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return -1;
}

static void send_error(struct exec_job *j, int errnum, const char *msg)
{
    struct buf b;
    buf_init(&b, 1024);
    tlv_put_u32(&b, T_ERRNO, (uint32_t)errnum);
    tlv_put_str(&b, T_MESSAGE, msg);
    stream_send_rec(j->s, EXEC_ERROR, buf_head(&b), b.len);
    buf_free(&b);
    mux_stream_close_write(j->s);
    agent_kick();
}

static void handle_start(struct exec_job *j, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    _cleanup_free_ char *command = NULL;
    uint64_t timeout_ms = 0;
    char *extra[64];
    size_t nextra = 0;
    j->max_output = 10u * 1024 * 1024;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_COMMAND && !command)
            command = tlv_as_str(v, n);
        else if (tag == T_TIMEOUT_MS)
            tlv_as_u64(v, n, &timeout_ms);
        else if (tag == T_MAX_OUTPUT)
            tlv_as_u64(v, n, &j->max_output);
        else if (tag == T_ENV && nextra < ARRAY_SIZE(extra))
            if ((extra[nextra] = tlv_as_str(v, n)) != NULL)
                nextra++;
    }
    j->started = true;
    if (!command || !*command) {
        send_error(j, EINVAL, "empty or invalid command");
    } else {
        char **envp = env_build("dumb", extra, nextra);
        if (!envp || spawn(j, command, envp) < 0)
            send_error(j, errno, strerror(errno));
        else if (timeout_ms)
            deadline_arm(&j->timeout, j->start_ms + timeout_ms);
        env_free(envp);
    }
    for (size_t i = 0; i < nextra; i++)
        free(extra[i]);
}

static void exec_on_data(struct mux_stream *s, const uint8_t *d, size_t len)
{
    struct exec_job *j = mux_stream_user(s);
    if (rec_reader_feed(&j->rr, d, len) < 0)
        goto violation;
    mux_stream_consumed(s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&j->rr, &type, &p, &n)) == 1) {
        if (type == EXEC_START && !j->started)
            handle_start(j, p, n);
        else if (type == EXEC_KILL)
            kill_group(j);
        else
            goto violation;
    }
    if (rc < 0)
        goto violation;
    return;
violation:
    kill_group(j);
    mux_stream_reset(s, MUX_RST_PROTOCOL);
    j->stream_gone = true;
    mux_stream_release(s);
    j->s = NULL;
    if (!j->pid || j->exited || !j->started)
        job_free(j);
}

static void exec_on_fin(struct mux_stream *s)
{
    struct exec_job *j = mux_stream_user(s);
    if (!j->started) {
        send_error(j, EINVAL, "no command");
        return;
    }
    if (j->done)
        job_free(j);
}

static void exec_on_reset(struct mux_stream *s)
{
    struct exec_job *j = mux_stream_user(s);
    /* The host gave up on this command: kill it, keep reaping. */
    kill_group(j);
    j->stream_gone = true;
    mux_stream_release(s);
    j->s = NULL;
    if (!j->pid || j->done || j->exited)
        job_free(j);
}

static void exec_on_writable(struct mux_stream *s)
{
    pipe_update_interest(mux_stream_user(s));
}

static const struct stream_ops exec_ops = {
    .on_data = exec_on_data,
    .on_fin = exec_on_fin,
    .on_reset = exec_on_reset,
    .on_writable = exec_on_writable,
};

int exec_open(struct mux_stream *s)
{
    struct exec_job *j = calloc(1, sizeof(*j));
    if (!j)
        return MUX_RST_INTERNAL;
    j->base.ops = &exec_ops;
    j->s = s;
    j->out[0].fd = j->out[1].fd = -1;
    j->timeout.cb = timeout_expired;
    j->timeout.owner = j;
    j->drain.cb = drain_expired;
    j->drain.owner = j;
    rec_reader_init(&j->rr, AGENT_MAX_COMMAND + AGENT_MAX_ENV_TOTAL + 4096);
    mux_stream_set_user(s, j);
    return 0;
}
