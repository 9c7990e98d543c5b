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
struct proxy;
struct proxy_hooks;
struct vp_net;
struct vp_ai;
struct vp_asks;
struct vp_ask;

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
    /* the air gap (network.md): policy, TLS, DNS, credentials (vmproc_net.c,
     * vmproc_dns.c), the MITM proxy, AI interpreters (vmproc_ai.c), asks
     * (vmproc_ask.c) */
    struct vp_net *net;
    struct proxy *proxy;
    struct vp_ai *ai;
    struct vp_asks *asks;
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

/* ---- vmproc_net.c: the air gap ---- */
/* Loads policy, CA, credentials; makes the TLS context, DNS state and proxy.
 * Failure is fatal to the VM start (the air gap cannot be half up). */
int vp_net_init(struct vmproc *vp, struct err **errp);
void vp_net_free(struct vmproc *vp);
/* Closes every guest connection and pending decision: call before the
 * channel (and its streams) goes away. */
void vp_net_detach(struct vmproc *vp);
/* A MUX_SVC_NET stream opened by the guest: 0 or a mux reset reason. */
int vp_net_open(struct vmproc *vp, struct mux_stream *s, const uint8_t *meta, size_t len);
/* A MUX_SVC_DNS stream opened by the guest (vmproc_dns.c). */
int vp_dns_open(struct vmproc *vp, struct mux_stream *s, const uint8_t *meta, size_t len);
/* The guest is up: send CTL_NET_CONFIG (CA, http ports). */
void vp_net_guest_ready(struct vmproc *vp);

/* ---- vmproc_ai.c: AI interpreters on proxied requests ---- */
int vp_ai_init(struct vmproc *vp, struct err **errp); /* price table */
/* Fills the observe_* members of h (h->ctx stays the vmproc). */
void vp_ai_hooks(struct vmproc *vp, struct proxy_hooks *h);
void vp_ai_free(struct vmproc *vp);

/* ---- vmproc_ask.c: held decisions (network.md 8.4) ---- */
struct vp_ask_info {
    const char *scope;   /* "net" | "model" | "mcp" */
    const char *host;    /* NULL for mcp */
    int port;
    const char *method;
    const char *path;
    const char *tool;    /* mcp */
    const char *rule;    /* "user:x" */
    const char *reason;  /* the rule's reason or NULL */
    const char *process; /* guest process name */
    uint32_t pid;
    unsigned timeout_s;  /* policy.ask_timeout_s */
    unsigned max_pending; /* policy.ask_max_pending */
};
/* The outcome: approved or not, the policy_decisions status ("approved",
 * "denied", "timeout", "remembered", "queue_full") and the row id (0 none). */
typedef void (*vp_ask_fn)(void *arg, bool approved, const char *status, int64_t ask_row_id);
/* Holds a decision: fn is called exactly once, later, from the loop (never
 * from inside vp_ask_start), unless vp_ask_cancel() comes first. NULL on
 * allocation failure. */
struct vp_ask *vp_ask_start(struct vmproc *vp, const struct vp_ask_info *info, vp_ask_fn fn,
                            void *arg);
void vp_ask_cancel(struct vp_ask *a);
void vp_asks_free(struct vmproc *vp);
/* IPC ops "asks" and "ask_resolve". */
void vp_ask_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req);

#endif
