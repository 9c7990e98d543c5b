/* Host end of the channel: the virtio-serial socket, the mux on top of it,
 * and the control stream (boot configuration, readiness, guest events). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "vmm/vmproc.h"
#include "vmm/vmproc_net_int.h"

#define CHAN_READ_CHUNK (256u * 1024u)

void vp_channel_kick(struct vmproc *vp)
{
    if (!vp->mux || vp->chan_fd < 0)
        return;
    for (;;) {
        size_t n;
        const uint8_t *p = mux_output_peek(vp->mux, &n);
        if (!p)
            break;
        ssize_t w = send(vp->chan_fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN)
                log_warn("channel write: %s", strerror(errno));
            break;
        }
        mux_output_done(vp->mux, (size_t)w);
        if ((size_t)w < n)
            break;
    }
    if (mux_has_output(vp->mux))
        event_add(vp->chan_wr, NULL);
    else
        event_del(vp->chan_wr);
}

static void chan_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vmproc *vp = arg;
    static uint8_t data[CHAN_READ_CHUNK];
    ssize_t n = recv(fd, data, sizeof(data), 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        /* QEMU closed the port: it is exiting; SIGCHLD tells the rest. */
        event_del(vp->chan_rd);
        return;
    }
    mux_input(vp->mux, data, (size_t)n);
    vp_channel_kick(vp);
}

static void chan_write_cb(evutil_socket_t fd, short what, void *arg)
{
    vp_channel_kick(arg);
}

int vp_send_rec(struct mux_stream *s, uint16_t type, const void *payload, size_t len)
{
    return rec_send(s, type, payload, len);
}

/* ---------- control stream ---------- */

static void send_boot(struct vmproc *vp)
{
    struct buf b;
    buf_init(&b, AGENT_MAX_RECORD);
    tlv_put_u64(&b, T_CLOCK_MS, time_real_ms());
    tlv_put_str(&b, T_HOSTNAME, vp->cfg.name);
    tlv_put_str(&b, T_VM_ID, vp->cfg.id);
    tlv_put_str(&b, T_VM_NAME, vp->cfg.name);
    char kv[512];
    snprintf(kv, sizeof(kv), "CAPSEM_VM_ID=%s", vp->cfg.id);
    tlv_put_str(&b, T_ENV, kv);
    snprintf(kv, sizeof(kv), "CAPSEM_VM_NAME=%s", vp->cfg.name);
    tlv_put_str(&b, T_ENV, kv);
    vp_creds_boot_env(vp, &b); /* placeholders, before the user's own variables */
    for (size_t i = 0; i < vp->cfg.nenv; i++)
        tlv_put_str(&b, T_ENV, vp->cfg.env[i]);
    tlv_put_u32(&b, T_PERSISTENT, vp->cfg.persistent);
    uint8_t seed[64];
    if (RAND_bytes(seed, sizeof(seed)) == 1)
        tlv_put(&b, T_SEED, seed, sizeof(seed));
    OPENSSL_cleanse(seed, sizeof(seed));
    if (vp_send_rec(vp->ctl, CTL_BOOT, buf_head(&b), b.len) < 0)
        log_error("boot configuration too large for the control stream");
    buf_free(&b);
}

static void mark_ready(struct vmproc *vp)
{
    vp->state = VP_READY;
    if (vp->restored)
        log_info("guest agent answered after the restore");
    vp->ready_ms = time_mono_ms();
    log_info("guest ready: agent %s, kernel %s, %llu ms after QEMU start", vp->agent_version,
             vp->guest_kernel, (unsigned long long)(vp->ready_ms - vp->qemu_start_ms));
    int fd = open(vp->cfg.ready_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    json_t *ev = json_pack("{s:s, s:I}", "event", "ready", "boot_ms",
                           (json_int_t)(vp->ready_ms - vp->qemu_start_ms));
    vp_broadcast_event(vp, ev);
    json_decref(ev);
    vp_ready_changed(vp, true, NULL);
}

static void handle_boot_ok(struct vmproc *vp, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t proto = 0;
    uint64_t uptime = 0;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_PROTO)
            tlv_as_u32(v, n, &proto);
        else if (tag == T_AGENT_VERSION)
            snprintf(vp->agent_version, sizeof(vp->agent_version), "%.*s", (int)MIN(n, 60u), v);
        else if (tag == T_KERNEL)
            snprintf(vp->guest_kernel, sizeof(vp->guest_kernel), "%.*s", (int)MIN(n, 120u), v);
        else if (tag == T_UPTIME_MS)
            tlv_as_u64(v, n, &uptime);
    }
    if (proto != AGENT_PROTO_VERSION) {
        log_error("channel_incompatible: agent protocol %u, host expects %u", proto,
                  AGENT_PROTO_VERSION);
        vmproc_set_exit(vp, "boot-failed", "channel_incompatible: guest agent protocol %u", proto);
        vp_qemu_kill(vp);
        return;
    }
    if (vp->state != VP_BOOTING)
        return;
    log_info("guest agent up (uptime %llu ms)", (unsigned long long)uptime);
    if (vp->net) {
        /* Ready once the guest's network plumbing is up (CTL_NET_OK). */
        vp_net_guest_ready(vp);
        return;
    }
    mark_ready(vp);
}

static void handle_net_ok(struct vmproc *vp, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t err = 0;
    char msg[300] = "";
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_ERRNO)
            tlv_as_u32(v, n, &err);
        else if (tag == T_MESSAGE)
            snprintf(msg, sizeof(msg), "%.*s", (int)MIN(n, sizeof(msg) - 1), v);
    }
    if (err) {
        log_error("guest network setup failed: %s (%s)", msg, strerror((int)err));
        if (vp->state == VP_BOOTING) {
            vmproc_set_exit(vp, "boot-failed", "guest network setup failed: %s", msg);
            vp_qemu_kill(vp);
        }
        return;
    }
    if (vp->net)
        vp->net->configured = true;
    if (vp->state == VP_BOOTING)
        mark_ready(vp);
    else
        log_info("guest network configuration updated");
}

static void handle_event(struct vmproc *vp, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t event = 0;
    while (tlv_next(&it, &tag, &v, &n) == 1)
        if (tag == T_EVENT)
            tlv_as_u32(v, n, &event);
    const char *name = event == CTL_EVENT_POWEROFF  ? "guest-poweroff"
                       : event == CTL_EVENT_SUSPEND ? "guest-suspend"
                       : event == CTL_EVENT_REBOOT  ? "guest-reboot"
                                                    : "unknown";
    log_info("guest event: %s", name);
    if (event == CTL_EVENT_POWEROFF)
        vp->guest_poweroff_requested = true;
    json_t *ev = json_pack("{s:s}", "event", name);
    vp_broadcast_event(vp, ev);
    json_decref(ev);
    if (event == CTL_EVENT_SUSPEND) {
        vp->guest_suspend_requested = true;
        vp_guest_requested_suspend(vp);
    }
}

static void sync_done(struct vmproc *vp, bool ok)
{
    void (*cb)(struct vmproc *, bool, void *) = vp->sync_cb;
    vp->sync_cb = NULL;
    if (cb)
        cb(vp, ok, vp->sync_arg);
}

int vp_guest_sync(struct vmproc *vp, void (*cb)(struct vmproc *vp, bool ok, void *arg), void *arg)
{
    if (!vp->ctl || vp->sync_cb)
        return -1;
    if (vp_send_rec(vp->ctl, CTL_SYNC, NULL, 0) < 0)
        return -1;
    vp->sync_cb = cb;
    vp->sync_arg = arg;
    vp_channel_kick(vp);
    return 0;
}

static void ctl_on_data(void *h, const uint8_t *d, size_t len)
{
    struct vmproc *vp = h;
    if (rec_reader_feed(&vp->ctl_rr, d, len) < 0) {
        log_error("control stream: record too large");
        mux_stream_reset(vp->ctl, MUX_RST_PROTOCOL);
        return;
    }
    mux_stream_consumed(vp->ctl, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&vp->ctl_rr, &type, &p, &n)) == 1) {
        if (type == CTL_BOOT_OK)
            handle_boot_ok(vp, p, n);
        else if (type == CTL_EVENT)
            handle_event(vp, p, n);
        else if (type == CTL_SYNC_OK)
            sync_done(vp, true);
        else if (type == CTL_NET_OK)
            handle_net_ok(vp, p, n);
        else if (type == CTL_ERROR)
            log_warn("guest control error");
    }
    if (rc < 0)
        log_error("control stream: malformed record");
}

static void ctl_on_reset(void *h, uint32_t reason)
{
    struct vmproc *vp = h;
    sync_done(vp, false);
    log_warn("control stream reset (%s)", mux_reset_reason_name(reason));
    mux_stream_release(vp->ctl);
    vp->ctl = NULL;
}

static void ctl_on_fin(void *h)
{
    struct vmproc *vp = h;
    mux_stream_close_write(vp->ctl);
    mux_stream_release(vp->ctl);
    vp->ctl = NULL;
}

static const struct hstream_ops ctl_ops = {
    .on_data = ctl_on_data,
    .on_fin = ctl_on_fin,
    .on_reset = ctl_on_reset,
};

static struct hstream ctl_hstream = {.ops = &ctl_ops};

void vp_guest_shutdown(struct vmproc *vp)
{
    if (vp->ctl)
        vp_send_rec(vp->ctl, CTL_SHUTDOWN, NULL, 0);
    vp_channel_kick(vp);
}

/* ---------- mux glue ---------- */

/* Streams opened by the host carry a struct hstream as user pointer; the
 * control stream's user is the vmproc itself, flagged by ctl_hstream. */
static struct hstream *hs_of(struct vmproc *vp, struct mux_stream *s, void **self)
{
    if (s == vp->ctl) {
        *self = vp;
        return &ctl_hstream;
    }
    struct hstream *h = mux_stream_user(s);
    *self = h;
    return h;
}

static void on_ready(void *ctx, uint32_t version)
{
    struct vmproc *vp = ctx;
    log_info("channel up (mux v%u); sending boot configuration", version);
    if (vp->ctl)
        return;
    rec_reader_free(&vp->ctl_rr);
    rec_reader_init(&vp->ctl_rr, AGENT_MAX_RECORD);
    vp->ctl = mux_open(vp->mux, MUX_SVC_CONTROL, NULL, 0);
    if (!vp->ctl) {
        log_error("cannot open the control stream");
        return;
    }
    mux_stream_set_priority(vp->ctl, true);
    send_boot(vp);
}

static int on_open(void *ctx, struct mux_stream *s, uint16_t svc, const uint8_t *meta, size_t n)
{
    struct vmproc *vp = ctx;
    if (svc == MUX_SVC_NET)
        return vp_net_open(vp, s, meta, n);
    if (svc == MUX_SVC_DNS)
        return vp_dns_open(vp, s, meta, n);
    return MUX_RST_REFUSED;
}

static void on_data(void *ctx, struct mux_stream *s, const uint8_t *d, size_t n)
{
    void *self;
    struct hstream *h = hs_of(ctx, s, &self);
    if (h && h->ops->on_data)
        h->ops->on_data(self, d, n);
    else
        mux_stream_consumed(s, n);
}

static void on_fin(void *ctx, struct mux_stream *s)
{
    void *self;
    struct hstream *h = hs_of(ctx, s, &self);
    if (h && h->ops->on_fin)
        h->ops->on_fin(self);
}

static void on_reset(void *ctx, struct mux_stream *s, uint32_t reason)
{
    void *self;
    struct hstream *h = hs_of(ctx, s, &self);
    if (h && h->ops->on_reset)
        h->ops->on_reset(self, reason);
    else
        mux_stream_release(s);
}

static void on_writable(void *ctx, struct mux_stream *s)
{
    void *self;
    struct hstream *h = hs_of(ctx, s, &self);
    if (h && h->ops->on_writable)
        h->ops->on_writable(self);
}

static void on_channel_error(void *ctx, const char *why)
{
    struct vmproc *vp = ctx;
    sync_done(vp, false);
    log_error("channel error: %s (all streams reset; waiting for a new handshake)", why);
    vp->ctl = NULL;
}

static void on_output(void *ctx)
{
    struct vmproc *vp = ctx;
    if (vp->chan_wr)
        event_add(vp->chan_wr, NULL);
}

static const struct mux_callbacks mux_cbs = {
    .on_ready = on_ready,
    .on_open = on_open,
    .on_data = on_data,
    .on_fin = on_fin,
    .on_reset = on_reset,
    .on_writable = on_writable,
    .on_channel_error = on_channel_error,
    .on_output = on_output,
};

struct mux_stream *vp_open_stream(struct vmproc *vp, uint16_t service, struct hstream *h)
{
    if (!vp->mux)
        return NULL;
    struct mux_stream *s = mux_open(vp->mux, service, NULL, 0);
    if (s)
        mux_stream_set_user(s, h);
    return s;
}

int vp_channel_start(struct vmproc *vp, int fd, struct err **errp)
{
    vp->chan_fd = fd;
    fd_set_nonblock(fd, true);
    rec_reader_init(&vp->ctl_rr, AGENT_MAX_RECORD);
    vp->mux = mux_new(MUX_SIDE_HOST, &mux_cbs, vp);
    if (!vp->mux)
        return err_set(errp, ENOMEM, "out of memory");
    vp->chan_rd = event_new(vp->base, fd, EV_READ | EV_PERSIST, chan_read_cb, vp);
    vp->chan_wr = event_new(vp->base, fd, EV_WRITE, chan_write_cb, vp);
    event_add(vp->chan_rd, NULL);
    vp_channel_kick(vp);
    return 0;
}

void vp_channel_close(struct vmproc *vp)
{
    if (vp->chan_rd) {
        event_free(vp->chan_rd);
        event_free(vp->chan_wr);
        vp->chan_rd = vp->chan_wr = NULL;
    }
    if (vp->mux) {
        mux_free(vp->mux);
        vp->mux = NULL;
    }
    rec_reader_free(&vp->ctl_rr);
    if (vp->chan_fd >= 0)
        close(vp->chan_fd);
    vp->chan_fd = -1;
}
