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
#define QUIT_GRACE_MS 3000

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
    if (!vp->sigchld_ev) {
        vp->sigchld_ev = evsignal_new(vp->base, SIGCHLD, sigchld_cb, vp);
        evsignal_add(vp->sigchld_ev, NULL);
    }
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
    if (vp_qmp_start(vp, qmp[0]) < 0)
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
    if (vp_restore_handle_exit(vp))
        return; /* a cold boot replaces it */
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

/* A QEMU that could not restore goes; the same disks boot cold. */
void vp_qemu_cold_restart(struct vmproc *vp)
{
    if (vp->qemu_pid > 0 && !vp->qemu_exited) {
        kill(vp->qemu_pid, SIGKILL);
        int status;
        while (waitpid(vp->qemu_pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    if (vp->console_ev) {
        event_free(vp->console_ev);
        vp->console_ev = NULL;
    }
    if (vp->console_fd >= 0) {
        close(vp->console_fd);
        vp->console_fd = -1;
    }
    vp_qmp_free(vp);
    vp_channel_close(vp);
    vp->qemu_exited = false;
    vp->qemu_pid = 0;
    vp->state = VP_BOOTING;
    struct err *e = NULL;
    if (vp_qemu_start(vp, &e) < 0) {
        log_error("cold boot after a failed restore: %s", err_msg(e));
        vmproc_set_exit(vp, "boot-failed", "cold boot after a failed restore: %s", err_msg(e));
        err_free(e);
        vp->state = VP_EXITED;
        event_base_loopbreak(vp->base);
    }
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

void vp_arm_kill_timer(struct vmproc *vp)
{
    if (!vp->stop_ev)
        vp->stop_ev = event_new(vp->base, -1, 0, stop_timer_cb, vp);
    vp->stop_phase = 2;
    struct timeval tv = {QUIT_GRACE_MS / 1000, 0};
    event_add(vp->stop_ev, &tv);
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
