/* capsem-mcp's main loop; see mcp_stdio.h. */
#include "mcp/mcp_stdio.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "mcp/mcp.h"
#include "mcp/mcp_http.h"

#define READ_CHUNK (64 * 1024)

struct loop {
    int out_fd;
    struct mcp_server *srv;
};

/* Whole lines to the client. Blocking; copes with an O_NONBLOCK file
 * description (stdout shared with a non-blocking stdin). */
static int write_out(void *ctx, const char *data, size_t len)
{
    struct loop *l = ctx;
    while (len > 0) {
        ssize_t n = fd_write_retry(l->out_fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {l->out_fd, POLLOUT, 0};
            (void)poll(&p, 1, 1000);
            continue;
        }
        return -1;
    }
    return 0;
}

static void on_done(void *ctx, uint64_t token, const struct mcp_reply *r)
{
    struct loop *l = ctx;
    mcp_server_complete(l->srv, token, r);
}

static bool readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

/* One read from in_fd into the server; returns true at end of input. */
static bool read_input(struct mcp_server *srv, int in_fd)
{
    static char chunk[READ_CHUNK];
    ssize_t n = fd_read_retry(in_fd, chunk, sizeof(chunk));
    if (n > 0) {
        mcp_server_feed(srv, chunk, (size_t)n);
        return false;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return false;
    if (n < 0)
        log_warn("reading stdin: %s; treating it as end of input", strerror(errno));
    mcp_server_finish_input(srv);
    return true;
}

static int serve(struct loop *l, struct mcp_http *h, int in_fd, struct err **errp)
{
    bool eof = false;
    for (;;) {
        mcp_http_process(h);
        if (mcp_server_output_failed(l->srv)) {
            log_info("client gone (stdout closed); abandoning %zu call(s)",
                     mcp_server_inflight(l->srv));
            return 0;
        }
        if (eof && mcp_server_inflight(l->srv) == 0)
            return 0;
        bool want_in = !eof && mcp_server_inflight(l->srv) < MCP_MAX_INFLIGHT;
        struct curl_waitfd w = {in_fd, CURL_WAIT_POLLIN, 0};
        if (mcp_http_wait(h, want_in ? &w : NULL, want_in ? 1 : 0, 1000, errp) < 0)
            return -1;
        if (want_in && readable(in_fd)) {
            eof = read_input(l->srv, in_fd);
            if (eof)
                log_info("end of input; %zu call(s) still in flight", mcp_server_inflight(l->srv));
        }
    }
}

int mcp_stdio_run(const struct mcp_stdio_config *cfg, int in_fd, int out_fd, struct err **errp)
{
    struct loop l = {out_fd, NULL};
    struct mcp_http_config hc = {
        .socket = cfg->socket,
        .autostart = cfg->autostart,
        .home = cfg->home,
        .run_dir = cfg->run_dir,
        .service_binary = cfg->service_binary,
        .done = on_done,
        .done_ctx = &l,
    };
    struct mcp_http *h = mcp_http_new(&hc, errp);
    if (!h)
        return -1;
    struct mcp_server_config sc = {
        .version = CAPSEM_VERSION,
        .backend = mcp_http_backend(h),
        .write = write_out,
        .write_ctx = &l,
    };
    if (!(l.srv = mcp_server_new(&sc, errp))) {
        mcp_http_free(h);
        return -1;
    }
    int rc = serve(&l, h, in_fd, errp);
    mcp_server_free(l.srv); /* cancels what is left, through h */
    mcp_http_free(h);
    return rc;
}
