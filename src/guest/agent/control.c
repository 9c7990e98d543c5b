/* Control stream: boot configuration (clock, hostname, environment),
 * shutdown and sync requests from the host, lifecycle events to the host. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"

struct control {
    struct stream_ctx base;
    struct mux_stream *s;
    struct rec_reader rr;
};

static struct control *ctl; /* the one live control stream */
static struct guest_env boot_env;

const struct guest_env *agent_env(void)
{
    return &boot_env;
}

static void env_clear(void)
{
    for (size_t i = 0; i < boot_env.count; i++)
        free(boot_env.vars[i]);
    free(boot_env.vars);
    boot_env.vars = NULL;
    boot_env.count = 0;
}

static int env_push(char ***vars, size_t *count, const char *kv)
{
    char **nv = realloc(*vars, (*count + 2) * sizeof(char *));
    if (!nv)
        return -1;
    *vars = nv;
    nv[*count] = strdup(kv);
    if (!nv[*count])
        return -1;
    (*count)++;
    nv[*count] = NULL;
    return 0;
}

/* Does one of vars[0..n) set the variable that kv ("NAME=value") sets? */
static bool env_names(char *const *vars, size_t n, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < n; i++)
        if (vars[i] && strncmp(vars[i], kv, klen) == 0 && vars[i][klen] == '=')
            return true;
    return false;
}

char **env_build(const char *term, char *const *extra, size_t nextra)
{
    char **envp = NULL;
    size_t n = 0;
    char termvar[64];
    snprintf(termvar, sizeof(termvar), "TERM=%s", term);
    const char *fixed[] = {"HOME=/root", "LANG=C.UTF-8", "USER=root", "LOGNAME=root",
                           "SHELL=/bin/bash",
                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           termvar};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        if (env_push(&envp, &n, fixed[i]) < 0)
            goto fail;
    for (size_t i = 0; i < boot_env.count; i++)
        if (env_push(&envp, &n, boot_env.vars[i]) < 0)
            goto fail;
    /* The CA bundle variables (network.md 2.6), unless the boot environment
     * or the request sets them. */
    size_t nnet;
    const char *const *netv = net_env(&nnet);
    for (size_t i = 0; i < nnet; i++)
        if (!env_names(boot_env.vars, boot_env.count, netv[i]) &&
            !env_names(extra, nextra, netv[i]) && env_push(&envp, &n, netv[i]) < 0)
            goto fail;
    for (size_t i = 0; i < nextra; i++)
        if (env_push(&envp, &n, extra[i]) < 0)
            goto fail;
    if (!envp)
        envp = calloc(1, sizeof(char *));
    return envp;
fail:
    env_free(envp);
    return NULL;
}

void env_free(char **envp)
{
    if (!envp)
        return;
    for (char **p = envp; *p; p++)
        free(*p);
    free(envp);
}

static void send_error(struct control *c, const char *msg)
{
    struct buf b;
    buf_init(&b, 4096);
    tlv_put_str(&b, T_MESSAGE, msg);
    stream_send_rec(c->s, CTL_ERROR, buf_head(&b), b.len);
    buf_free(&b);
}

/* Kernel ABI (<linux/random.h> is not in musl): RNDADDENTROPY credits the
 * bytes, RNDRESEEDCRNG makes the CRNG use them now. Matters most for VMs
 * restored from a shared boot snapshot, whose RNG state would otherwise be
 * identical. */
#define CAPSEM_RNDADDENTROPY 0x40085203
#define CAPSEM_RNDRESEEDCRNG 0x5207

static void reseed(const uint8_t *seed, size_t n)
{
    struct {
        int entropy_count;
        int buf_size;
        uint8_t buf[256];
    } info;
    if (n == 0 || n > sizeof(info.buf))
        return;
    info.entropy_count = (int)n * 8;
    info.buf_size = (int)n;
    memcpy(info.buf, seed, n);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (ioctl(fd, CAPSEM_RNDADDENTROPY, &info) < 0 || ioctl(fd, CAPSEM_RNDRESEEDCRNG) < 0)
        log_warn("reseeding the RNG: %s", strerror(errno));
    close(fd);
    memset(&info, 0, sizeof(info));
}

static void handle_boot(struct control *c, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    env_clear();
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_CLOCK_MS) {
            uint64_t ms;
            if (tlv_as_u64(v, n, &ms) == 0) {
                struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                                      .tv_nsec = (long)(ms % 1000) * 1000000L};
                clock_settime(CLOCK_REALTIME, &ts);
            }
        } else if (tag == T_HOSTNAME && n > 0 && n < 64) {
            sethostname((const char *)v, n);
        } else if (tag == T_SEED) {
            reseed(v, n);
        } else if (tag == T_PERSISTENT) {
            uint32_t persistent = 0;
            tlv_as_u32(v, n, &persistent);
            int fd = open("/run/capsem/persistent", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
            if (fd >= 0) {
                fd_write_all(fd, persistent ? "1\n" : "0\n", 2);
                close(fd);
            }
        } else if (tag == T_ENV) {
            _cleanup_free_ char *kv = tlv_as_str(v, n);
            if (kv && strchr(kv, '='))
                env_push(&boot_env.vars, &boot_env.count, kv);
        }
    }
    struct utsname u;
    uname(&u);
    struct timespec up;
    clock_gettime(CLOCK_BOOTTIME, &up);
    struct buf b;
    buf_init(&b, 4096);
    tlv_put_u32(&b, T_PROTO, AGENT_PROTO_VERSION);
    tlv_put_str(&b, T_AGENT_VERSION, CAPSEM_VERSION);
    tlv_put_str(&b, T_KERNEL, u.release);
    tlv_put_u64(&b, T_UPTIME_MS, (uint64_t)up.tv_sec * 1000 + (uint64_t)up.tv_nsec / 1000000);
    stream_send_rec(c->s, CTL_BOOT_OK, buf_head(&b), b.len);
    buf_free(&b);
}

static void handle_record(struct control *c, uint16_t type, const uint8_t *p, size_t len)
{
    switch (type) {
    case CTL_BOOT:
        handle_boot(c, p, len);
        break;
    case CTL_SHUTDOWN:
        agent_poweroff();
        break;
    case CTL_SYNC:
        sync();
        stream_send_rec(c->s, CTL_SYNC_OK, NULL, 0);
        break;
    case CTL_NET_CONFIG:
        net_config_from_host(p, len); /* CTL_NET_OK follows (control_send_rec) */
        break;
    default:
        send_error(c, "unknown control record");
        break;
    }
}

static void control_free(struct control *c)
{
    if (ctl == c)
        ctl = NULL;
    rec_reader_free(&c->rr);
    mux_stream_release(c->s);
    free(c);
}

static void control_on_data(struct mux_stream *s, const uint8_t *d, size_t len)
{
    struct control *c = mux_stream_user(s);
    if (rec_reader_feed(&c->rr, d, len) < 0) {
        mux_stream_reset(s, MUX_RST_PROTOCOL);
        control_free(c);
        return;
    }
    mux_stream_consumed(s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&c->rr, &type, &p, &n)) == 1)
        handle_record(c, type, p, n);
    if (rc < 0) {
        mux_stream_reset(s, MUX_RST_PROTOCOL);
        control_free(c);
    }
}

static void control_on_fin(struct mux_stream *s)
{
    struct control *c = mux_stream_user(s);
    mux_stream_close_write(s);
    control_free(c);
}

static void control_on_reset(struct mux_stream *s)
{
    control_free(mux_stream_user(s));
}

static const struct stream_ops control_ops = {
    .on_data = control_on_data,
    .on_fin = control_on_fin,
    .on_reset = control_on_reset,
};

int control_open(struct mux_stream *s)
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c)
        return MUX_RST_INTERNAL;
    c->base.ops = &control_ops;
    c->s = s;
    rec_reader_init(&c->rr, AGENT_MAX_RECORD);
    mux_stream_set_user(s, c);
    mux_stream_set_priority(s, true);
    if (ctl) /* a newer control stream replaces the old one */
        control_free(ctl);
    ctl = c;
    return 0;
}

void control_send_rec(uint16_t type, const void *payload, size_t len)
{
    if (!ctl)
        return;
    if (stream_send_rec(ctl->s, type, payload, len) < 0)
        log_warn("control stream full: record %u dropped", type);
    agent_kick();
}

void control_report_event(uint32_t event)
{
    if (!ctl)
        return;
    struct buf b;
    buf_init(&b, 64);
    tlv_put_u32(&b, T_EVENT, event);
    stream_send_rec(ctl->s, CTL_EVENT, buf_head(&b), b.len);
    buf_free(&b);
    agent_kick();
}
