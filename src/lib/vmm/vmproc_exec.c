/* Exec jobs: one exec stream per command. Output is capped here as well as
 * in the guest (the guest is not trusted to respect the cap). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/utf8.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"

/* The host gives the guest this long past the command's own timeout. */
#define EXEC_SAFETY_GRACE_MS 30000

struct hexec {
    struct hstream hs;
    struct vp_reply reply;
    struct vmproc *vp;
    struct mux_stream *s;
    struct rec_reader rr;
    char *command;
    uint64_t timeout_ms;
    uint64_t max_output;
    struct buf out[2];
    bool truncated[2];
    bool waiting;    /* in the ready-waiter list */
    bool cancelled;  /* the requester went away */
    bool counted;    /* counted in vp->active_execs */
    struct event *safety;
    uint64_t queued_ms;
    uint64_t started_real_ms;
};

#define PREVIEW_BYTES 4096

/* One exec_events row per finished command (history, telemetry). */
static void record_exec(struct hexec *x, int code, uint64_t duration, const uint64_t bytes[2])
{
    if (!x->vp->sdb)
        return;
    char *prev[2];
    for (int i = 0; i < 2; i++) {
        size_t n = MIN(x->out[i].len, (size_t)PREVIEW_BYTES);
        prev[i] = utf8_sanitize((const char *)buf_head(&x->out[i]), n, NULL);
    }
    char id[32];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)++x->vp->exec_seq);
    struct sdb_exec_event ev = {.timestamp_ms = (int64_t)x->started_real_ms,
                                .exec_id = id,
                                .command = x->command,
                                .has_exit_code = true,
                                .exit_code = code,
                                .duration_ms = (int64_t)duration,
                                .stdout_preview = prev[0] ? prev[0] : "",
                                .stderr_preview = prev[1] ? prev[1] : "",
                                .stdout_bytes = (int64_t)bytes[0],
                                .stderr_bytes = (int64_t)bytes[1],
                                .source = "api"};
    session_db_add_exec(x->vp->sdb, &ev, NULL);
    free(prev[0]);
    free(prev[1]);
}

static void hexec_free(struct hexec *x)
{
    if (x->counted)
        x->vp->active_execs--;
    if (x->safety)
        event_free(x->safety);
    if (x->s)
        mux_stream_release(x->s);
    rec_reader_free(&x->rr);
    buf_free(&x->out[0]);
    buf_free(&x->out[1]);
    free(x->command);
    free(x);
}

static void hexec_fail(struct hexec *x, int status, const char *msg)
{
    vp_reply_err(&x->reply, status, "%s", msg);
    if (x->s) {
        mux_stream_reset(x->s, MUX_RST_CANCEL);
        vp_channel_kick(x->vp);
    }
    hexec_free(x);
}

static void append_out(struct hexec *x, int i, const uint8_t *p, size_t n)
{
    size_t room = x->max_output > x->out[i].len ? (size_t)(x->max_output - x->out[i].len) : 0;
    size_t keep = MIN(room, n);
    if (keep < n)
        x->truncated[i] = true;
    if (keep && buf_append(&x->out[i], p, keep) < 0)
        x->truncated[i] = true;
}

static void handle_exit(struct hexec *x, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    int32_t code = -1;
    uint32_t timed_out = 0, trunc = 0;
    uint64_t duration = 0, bytes[2] = {0, 0};
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_EXIT_CODE)
            tlv_as_i32(v, n, &code);
        else if (tag == T_TIMED_OUT)
            tlv_as_u32(v, n, &timed_out);
        else if (tag == T_TRUNCATED)
            tlv_as_u32(v, n, &trunc);
        else if (tag == T_DURATION_MS)
            tlv_as_u64(v, n, &duration);
        else if (tag == T_STDOUT_BYTES)
            tlv_as_u64(v, n, &bytes[0]);
        else if (tag == T_STDERR_BYTES)
            tlv_as_u64(v, n, &bytes[1]);
    }
    bool truncated = x->truncated[0] || x->truncated[1] || trunc != 0;
    json_t *res = json_pack("{s:i, s:b, s:b, s:I, s:I, s:I}", "exit_code", code, "timed_out",
                            timed_out != 0, "truncated", truncated, "duration_ms",
                            (json_int_t)duration, "stdout_bytes", (json_int_t)bytes[0],
                            "stderr_bytes", (json_int_t)bytes[1]);
    struct ipc_blob blobs[2] = {{buf_head(&x->out[0]), x->out[0].len},
                                {buf_head(&x->out[1]), x->out[1].len}};
    log_debug("exec done: exit %d in %llu ms (%zu/%zu bytes)", code, (unsigned long long)duration,
              x->out[0].len, x->out[1].len);
    record_exec(x, code, duration, bytes);
    vp_reply_ok(&x->reply, res, blobs, 2);
}

static void exec_on_data(void *h, const uint8_t *d, size_t len)
{
    struct hexec *x = h;
    if (rec_reader_feed(&x->rr, d, len) < 0) {
        hexec_fail(x, 500, "guest sent an oversized exec record");
        return;
    }
    mux_stream_consumed(x->s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&x->rr, &type, &p, &n)) == 1) {
        switch (type) {
        case EXEC_STDOUT:
        case EXEC_STDERR:
            append_out(x, type == EXEC_STDOUT ? 0 : 1, p, n);
            break;
        case EXEC_EXIT:
            handle_exit(x, p, n);
            break;
        case EXEC_ERROR: {
            char msg[512] = "cannot start the command";
            struct tlv_iter it;
            tlv_iter_init(&it, p, n);
            uint16_t tag;
            const uint8_t *v;
            size_t vn;
            while (tlv_next(&it, &tag, &v, &vn) == 1)
                if (tag == T_MESSAGE)
                    snprintf(msg, sizeof(msg), "cannot start the command: %.*s",
                             (int)MIN(vn, 400u), v);
            vp_reply_err(&x->reply, 500, "%s", msg);
            break;
        }
        default:
            hexec_fail(x, 500, "guest sent an unknown exec record");
            return;
        }
    }
    if (rc < 0)
        hexec_fail(x, 500, "guest sent a malformed exec record");
}

static void exec_on_fin(void *h)
{
    struct hexec *x = h;
    if (x->reply.conn)
        vp_reply_err(&x->reply, 500, "guest closed the exec stream without an exit status");
    hexec_free(x);
}

static void exec_on_reset(void *h, uint32_t reason)
{
    struct hexec *x = h;
    mux_stream_release(x->s);
    x->s = NULL;
    char *tail = vmproc_log_tail(x->vp, 2048);
    vp_reply_err(&x->reply, 500, "exec stream reset (%s); the VM may have died. process.log: %s",
                 mux_reset_reason_name(reason), tail ? tail : "");
    free(tail);
    hexec_free(x);
}

static const struct hstream_ops exec_ops = {
    .on_data = exec_on_data,
    .on_fin = exec_on_fin,
    .on_reset = exec_on_reset,
};

static void safety_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hexec *x = arg;
    log_warn("exec: guest did not finish %llu ms past the timeout; giving up",
             (unsigned long long)EXEC_SAFETY_GRACE_MS);
    hexec_fail(x, 500, "the guest did not report the command's end in time");
}

static void exec_cancel(struct vp_reply *r)
{
    struct hexec *x = r->owner;
    x->cancelled = true;
    if (x->waiting)
        return; /* freed when the waiter fires */
    /* Resetting the stream makes the guest kill the command's process group. */
    hexec_fail(x, 499, "client went away");
}

static void exec_start(struct vmproc *vp, void *arg, bool ready, const char *why)
{
    struct hexec *x = arg;
    x->waiting = false;
    if (x->cancelled) {
        hexec_free(x);
        return;
    }
    if (!ready) {
        char *tail = vmproc_log_tail(vp, 2048);
        vp_reply_err(&x->reply, vp->state == VP_BOOTING ? 503 : 500, "guest not ready: %s%s%s",
                     why ? why : "unknown", tail && *tail ? ". process.log: " : "",
                     tail ? tail : "");
        free(tail);
        hexec_free(x);
        return;
    }
    x->s = vp_open_stream(vp, MUX_SVC_EXEC, &x->hs);
    if (!x->s) {
        hexec_fail(x, 503, "cannot open an exec stream to the guest");
        return;
    }
    struct buf b;
    buf_init(&b, AGENT_MAX_COMMAND + 4096);
    tlv_put_str(&b, T_COMMAND, x->command);
    tlv_put_u64(&b, T_TIMEOUT_MS, x->timeout_ms);
    tlv_put_u64(&b, T_MAX_OUTPUT, x->max_output);
    int rc = vp_send_rec(x->s, EXEC_START, buf_head(&b), b.len);
    buf_free(&b);
    if (rc < 0) {
        hexec_fail(x, 400, "command too long");
        return;
    }
    mux_stream_close_write(x->s);
    vp_channel_kick(vp);
    x->safety = evtimer_new(vp->base, safety_cb, x);
    uint64_t ms = x->timeout_ms + EXEC_SAFETY_GRACE_MS;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(x->safety, &tv);
}

void vp_exec_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req)
{
    struct hexec *x = calloc(1, sizeof(*x));
    if (!x)
        return;
    x->hs.ops = &exec_ops;
    x->vp = vp;
    x->reply.owner = x;
    x->reply.on_cancel = exec_cancel;
    vp_reply_attach(&x->reply, c, id);
    const char *cmd = json_string_value(json_object_get(req, "command"));
    json_int_t timeout = json_integer_value(json_object_get(req, "timeout_secs"));
    json_t *mo = json_object_get(req, "max_output_bytes");
    x->max_output = json_is_integer(mo) && json_integer_value(mo) > 0
                        ? (uint64_t)json_integer_value(mo)
                        : vp->cfg.max_output_bytes;
    buf_init(&x->out[0], (size_t)x->max_output);
    buf_init(&x->out[1], (size_t)x->max_output);
    rec_reader_init(&x->rr, AGENT_DATA_CHUNK + 4096);
    if (!cmd || !*cmd) {
        vp_reply_err(&x->reply, 400, "command must be a non-empty string");
        hexec_free(x);
        return;
    }
    if (strlen(cmd) > AGENT_MAX_COMMAND) {
        vp_reply_err(&x->reply, 400, "command longer than %u bytes", AGENT_MAX_COMMAND);
        hexec_free(x);
        return;
    }
    if (timeout <= 0 || timeout > 86400 * 7) {
        vp_reply_err(&x->reply, 400, "timeout_secs must be between 1 and %d", 86400 * 7);
        hexec_free(x);
        return;
    }
    if (vp->active_execs >= vp->cfg.max_concurrent_execs) {
        vp_reply_err(&x->reply, 429, "too many concurrent execs on this VM (max %u)",
                     vp->cfg.max_concurrent_execs);
        hexec_free(x);
        return;
    }
    vp->active_execs++;
    x->counted = true;
    x->command = strdup(cmd);
    x->timeout_ms = (uint64_t)timeout * 1000;
    x->queued_ms = time_mono_ms();
    x->started_real_ms = time_real_ms();
    x->waiting = true;
    vp_when_ready(vp, exec_start, x);
}
