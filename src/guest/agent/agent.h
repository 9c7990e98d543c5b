/* capsem-agent internals: one epoll reactor (PID 1 of the guest) driving the
 * channel mux and the per-stream handlers (control, exec, terminal, files). */
#ifndef CAPSEM_AGENT_H
#define CAPSEM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/err.h"
#include "proto/mux.h"
#include "proto/rec.h"

struct agent;

/* An fd registered with the reactor. */
struct watch {
    int fd;
    uint32_t events; /* EPOLLIN/EPOLLOUT currently armed */
    void (*cb)(struct watch *w, uint32_t revents);
    void *owner;
};

int watch_add(struct watch *w, int fd, uint32_t events, void (*cb)(struct watch *, uint32_t),
              void *owner);
void watch_mod(struct watch *w, uint32_t events);
void watch_del(struct watch *w);

/* Child process bookkeeping: PID 1 reaps everything; owners get their exit. */
typedef void (*child_exit_fn)(void *owner, pid_t pid, int status);
int child_track(pid_t pid, child_exit_fn fn, void *owner);
void child_untrack(pid_t pid);

/* Timers: a deadline checked by the reactor loop (coarse, ms). */
struct deadline {
    uint64_t at_ms; /* 0 = disarmed */
    void (*cb)(struct deadline *d);
    void *owner;
    struct deadline *next;
};
void deadline_arm(struct deadline *d, uint64_t at_ms);
void deadline_disarm(struct deadline *d);

/* Sends one record on a stream (whole or nothing): -1 if the queue lacks room. */
int stream_send_rec(struct mux_stream *s, uint16_t type, const void *payload, size_t len);
/* Payload room for one more record. */
size_t stream_data_room(struct mux_stream *s);
/* True if a record of `need` payload bytes fits; else asks for on_writable
 * (the caller pauses its producer until then). */
bool stream_has_room(struct mux_stream *s, size_t need);

/* Environment shared by exec and terminal: set from CTL_BOOT. */
struct guest_env {
    char **vars; /* NULL-terminated "K=V" list */
    size_t count;
};
const struct guest_env *agent_env(void);
/* Builds envp for a child: fixed base + boot env + extra; caller frees with env_free. */
char **env_build(const char *term, char *const *extra, size_t nextra);
void env_free(char **envp);

/* Per-service stream handlers. Each returns 0 to accept the stream. */
struct stream_ops {
    void (*on_data)(struct mux_stream *s, const uint8_t *data, size_t len);
    void (*on_fin)(struct mux_stream *s);
    void (*on_reset)(struct mux_stream *s);
    void (*on_writable)(struct mux_stream *s);
};
struct stream_ctx {
    const struct stream_ops *ops;
};

int control_open(struct mux_stream *s);
int exec_open(struct mux_stream *s);
int term_open(struct mux_stream *s);
int files_open(struct mux_stream *s);

/* Lifecycle requests from guest tools (signals to PID 1). */
void control_report_event(uint32_t event);
void agent_poweroff(void);

/* Output pump: call after queueing data so the port gets written. */
void agent_kick(void);
/* The channel multiplexer (for streams the guest opens: network, DNS). */
struct mux *agent_mux(void);
/* Inside a stream_ops on_reset callback: the reset reason (mux_reset_reason). */
uint32_t agent_reset_reason(void);
/* Sends one record on the live control stream, if any (net.c's replies). */
void control_send_rec(uint16_t type, const void *payload, size_t len);

/* ---- network: net.c (plumbing), relay.c (TCP), dnsrelay.c, procinfo.c ----
 * docs/guest-network.md. Nothing runs until the first CTL_NET_CONFIG. */

/* CTL_NET_CONFIG from the host; the reply (CTL_NET_OK) goes back on the
 * control stream once the plumbing is done. */
void net_config_from_host(const uint8_t *payload, size_t len);
/* True while the first configuration is being applied: the channel is not
 * read, so exec/terminal requests wait for the plumbing. */
bool net_input_gated(void);
/* "NAME=value" entries for every exec and terminal (the CA bundle
 * variables once a CA was installed); borrowed, valid until the next config. */
const char *const *net_env(size_t *count);
/* Local test/debug hook (/run/capsem/agent.sock, root only). */
int net_hook_start(void);
/* `capsem-agent net-config ...` / `capsem-agent net-status` (client side). */
int net_cli_main(int argc, char **argv);

/* TCP relay on 127.0.0.1:port and DNS relay on 127.0.0.1:port (UDP + TCP). */
int relay_start(uint16_t port, struct err **errp);
/* A non-blocking listening TCP socket on 127.0.0.1:port; -1 on error. */
int relay_listen_tcp(uint16_t port, struct err **errp);
void relay_status(struct buf *out);
int dns_relay_start(uint16_t port, struct err **errp);
void dns_relay_status(struct buf *out);

/* Socket -> owning process. Addresses in network byte order, ports in host
 * order; `src` is the client socket's local end. */
#define PROCINFO_COMM_MAX 64
#define PROCINFO_EXE_MAX 256
struct procinfo {
    uint32_t pid; /* 0 = unknown (comm "?", exe "") */
    char comm[PROCINFO_COMM_MAX + 1];
    char exe[PROCINFO_EXE_MAX + 1];
};
struct procinfo_query {
    int proto; /* IPPROTO_TCP or IPPROTO_UDP */
    uint32_t src_ip, dst_ip;
    uint16_t src_port, dst_port; /* dst 0 = any (unconnected UDP) */
    unsigned budget_ms;
};
/* The result is borrowed for the duration of the callback. */
typedef void (*procinfo_cb)(void *owner, const struct procinfo *pi);
/* Starts an asynchronous lookup; the callback runs later on the reactor.
 * -1 when the lookup queue is full (the caller goes on with pid 0). */
int procinfo_lookup(const struct procinfo_query *q, procinfo_cb cb, void *owner);
/* No callback will be made for owner any more. */
void procinfo_cancel(void *owner);
void procinfo_unknown(struct procinfo *pi);

#endif
