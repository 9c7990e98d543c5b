/* capsem-agent internals: one epoll reactor (PID 1 of the guest) driving the
 * channel mux and the per-stream handlers (control, exec, terminal, files). */
#ifndef CAPSEM_AGENT_H
#define CAPSEM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
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

#endif
