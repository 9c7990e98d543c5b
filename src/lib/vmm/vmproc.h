/* capsem-process internals: one process per VM, one libevent reactor.
 * Owns QEMU (spawn, QMP, console), the host end of the channel mux, the
 * exec/file/terminal jobs, and the instance socket the service talks to. */
#ifndef CAPSEM_VMPROC_H
#define CAPSEM_VMPROC_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "ipc/ipc.h"
#include "proto/hstream.h"
#include "proto/mux.h"
#include "proto/rec.h"
#include "vm/vmconfig.h"

enum vp_state { VP_RESTORING, VP_BOOTING, VP_READY, VP_STOPPING, VP_EXITED };

struct vp_conn;
struct vp_waiter;
struct qmp;
struct vp_terminal;
struct snap_job;
struct session_db;

struct vmproc {
    struct vm_config cfg;
    struct event_base *base;
    enum vp_state state;
    uint64_t start_ms;     /* capsem-process start */
    uint64_t qemu_start_ms;
    uint64_t ready_ms;
    /* QEMU */
    pid_t qemu_pid;
    bool qemu_exited;
    int qemu_status;
    struct event *sigchld_ev;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct qmp *qmp;
    int console_fd;
    struct event *console_ev;
    int serial_fd;
    uint64_t serial_bytes;
    /* channel */
    int chan_fd;
    struct event *chan_rd;
    struct event *chan_wr;
    struct mux *mux;
    struct mux_stream *ctl;
    struct rec_reader ctl_rr;
    char agent_version[64];
    char guest_kernel[128];
    /* lifecycle */
    char exit_reason[64];   /* "stopped", "guest-poweroff", "crashed", "boot-failed" */
    char exit_detail[512];
    bool guest_poweroff_requested;
    bool guest_suspend_requested;
    struct event *tick_ev;
    struct event *stop_ev; /* grace timer during stop */
    int stop_phase;
    /* service side */
    int listen_fd;
    struct event *listen_ev;
    struct vp_conn *conns;
    struct vp_waiter *waiters; /* requests waiting for the guest to be ready */
    unsigned active_execs;
    uint64_t exec_seq;
    struct vp_terminal *term;
    int ws_listen_fd;
    struct event *ws_listen_ev;
    struct snap_job *snap; /* suspend / pause / restore in progress */
    struct session_db *sdb; /* telemetry: <vm dir>/session.db */
    bool restored;         /* this boot came from a checkpoint */
    void (*sync_cb)(struct vmproc *vp, bool ok, void *arg);
    void *sync_arg;
};

/* ---- vmproc.c ---- */
int vmproc_run(const char *config_path);
void vmproc_begin_stop(struct vmproc *vp, const char *reason);
void vmproc_set_exit(struct vmproc *vp, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Last lines of process.log (for boot failures). Caller frees. */
char *vmproc_log_tail(struct vmproc *vp, size_t max_bytes);

/* ---- vmproc_qemu.c ---- */
int vp_qemu_start(struct vmproc *vp, struct err **errp);
void vp_qemu_on_exit(struct vmproc *vp, int status);
void vp_qemu_kill(struct vmproc *vp);
/* Replaces a QEMU that failed to restore with a cold boot of the same disks. */
void vp_qemu_cold_restart(struct vmproc *vp);
/* After QMP quit: kill QEMU if it is still there in 3 s. */
void vp_arm_kill_timer(struct vmproc *vp);

/* ---- vmproc_qmp.c ---- */
/* Sends a QMP command; result_cb may be NULL. args is consumed. */
typedef void (*qmp_result_fn)(struct vmproc *vp, json_t *reply, void *arg);
int vp_qmp_start(struct vmproc *vp, int fd);
int vp_qmp_command(struct vmproc *vp, const char *cmd, json_t *args, qmp_result_fn cb, void *arg);
/* getfd with the descriptor attached (SCM_RIGHTS); fd stays ours to close. */
int vp_qmp_getfd(struct vmproc *vp, const char *name, int fd, qmp_result_fn cb, void *arg);
bool vp_qmp_ready(struct vmproc *vp);
void vp_qmp_free(struct vmproc *vp);

/* ---- vmproc_snapshot.c ---- */
/* IPC ops "suspend", "pause" (sync + stop for a disk copy) and "cont". */
void vp_snapshot_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, const char *op);
void vp_guest_requested_suspend(struct vmproc *vp);
void vp_restore_on_qmp_ready(struct vmproc *vp);
bool vp_restore_handle_exit(struct vmproc *vp);
void vp_snapshot_free(struct vmproc *vp);

/* ---- vmproc_guest.c ---- */
int vp_channel_start(struct vmproc *vp, int fd, struct err **errp);
void vp_channel_kick(struct vmproc *vp);
void vp_channel_close(struct vmproc *vp);
void vp_guest_shutdown(struct vmproc *vp);
/* Asks the guest to sync its file systems; cb(ok) on CTL_SYNC_OK. One at a
 * time; -1 when there is no control stream. */
int vp_guest_sync(struct vmproc *vp, void (*cb)(struct vmproc *vp, bool ok, void *arg), void *arg);

/* Host-side stream handlers (proto/hstream.h), dispatched by user pointer. */
/* Opens a stream whose callbacks go to h (h starts with struct hstream). */
struct mux_stream *vp_open_stream(struct vmproc *vp, uint16_t service, struct hstream *h);
int vp_send_rec(struct mux_stream *s, uint16_t type, const void *payload, size_t len);

/* ---- vmproc_ipc.c ---- */
int vp_ipc_listen(struct vmproc *vp, struct err **errp);
void vp_ipc_close_all(struct vmproc *vp);
/* Replies: the conn may be gone (NULL-safe via the reply handle). */
struct vp_reply {
    struct vp_conn *conn;
    json_int_t id;
    struct vp_reply *next_in_conn; /* pending replies per connection */
    void (*on_cancel)(struct vp_reply *r); /* the connection closed */
    void *owner;
};
void vp_reply_attach(struct vp_reply *r, struct vp_conn *c, json_int_t id);
/* Detaches without answering (ownership of the answer moved elsewhere). */
void vp_reply_forget(struct vp_reply *r);
void vp_reply_ok(struct vp_reply *r, json_t *result, const struct ipc_blob *blobs, size_t n);
void vp_reply_err(struct vp_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vp_broadcast_event(struct vmproc *vp, json_t *ev);

/* Requests that need the guest wait here until it is ready. */
typedef void (*vp_ready_fn)(struct vmproc *vp, void *arg, bool ready, const char *why);
int vp_when_ready(struct vmproc *vp, vp_ready_fn fn, void *arg);
void vp_ready_changed(struct vmproc *vp, bool ready, const char *why);

/* ---- vmproc_exec.c / vmproc_files.c ---- */
void vp_exec_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req);
void vp_files_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req,
                      const struct ipc_frame *f);

/* ---- vmproc_term.c ---- */
int vp_term_listen(struct vmproc *vp, struct err **errp);
void vp_term_close_all(struct vmproc *vp);

#endif
