/* libFuzzer target: capsem-mcp's JSON-RPC line handling (framing,
 * dispatch, batches, cancellation, argument validation, tool -> request
 * mapping and result shaping) with the service call layer stubbed out: no
 * network. The first byte picks the negotiated protocol version (or none),
 * the second where the input is split across two reads; calls in flight are
 * completed with canned answers picked by token. Every output line must be
 * one valid JSON value. */
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "mcp/mcp.h"

#define MAX_PENDING 256

struct stub {
    uint64_t pending[MAX_PENDING];
    size_t n;
};

static int stub_submit(void *impl, uint64_t token, const struct mcp_req *req, struct err **errp)
{
    struct stub *s = impl;
    if (!req->method || !req->path || req->path[0] != '/')
        abort(); /* every request names a route */
    if (s->n == MAX_PENDING)
        return err_set(errp, 0, "stub: too many calls");
    s->pending[s->n++] = token;
    return 0;
}

static void stub_cancel(void *impl, uint64_t token)
{
    struct stub *s = impl;
    for (size_t i = 0; i < s->n; i++) {
        if (s->pending[i] == token) {
            s->pending[i] = s->pending[--s->n];
            return;
        }
    }
}

static int check_line(void *ctx, const char *data, size_t len)
{
    if (len == 0 || data[len - 1] != '\n' || memchr(data, '\n', len - 1))
        abort(); /* exactly one line per message */
    json_t *j = json_loadb(data, len - 1, JSON_DECODE_ANY, NULL);
    if (!j)
        abort();
    json_decref(j);
    return 0;
}

static void reply_for(struct mcp_server *srv, uint64_t token)
{
    static const struct {
        long status;
        const char *body;
    } canned[] = {
        {200, "{}"},
        {200, "[{\"name\":\"a\"},{\"name\":\"b\"}]"},
        {404, "{\"error\":\"VM not found: x\"}"},
        {404, ""},
        {0, ""},
        {200, "{\"logs\":\"a\\nB\\nc\",\"process_logs\":\"x\\ny\\n\",\"version\":\"1\"}"},
        {500, "not json"},
    };
    size_t k = token % (sizeof(canned) / sizeof(canned[0]));
    json_t *j = json_loads(canned[k].body, JSON_DECODE_ANY, NULL);
    struct err *e = NULL;
    if (canned[k].status == 0)
        err_set(&e, 111, "cannot connect to capsem-service");
    struct mcp_reply r = {canned[k].status, j, canned[k].body, strlen(canned[k].body), e};
    mcp_server_complete(srv, token, &r);
    json_decref(j);
    err_free(e);
}

/* Completes everything in flight; multi-step tools submit again, so loop. */
static void drain(struct mcp_server *srv, struct stub *st)
{
    for (int round = 0; round < 64 && st->n > 0; round++) {
        uint64_t now[MAX_PENDING];
        size_t n = st->n;
        memcpy(now, st->pending, n * sizeof(now[0]));
        st->n = 0;
        for (size_t i = 0; i < n; i++)
            reply_for(srv, now[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet = -2;
    if (quiet == -2) {
        quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
        log_init("fuzz_jsonrpc", quiet, LOG_ERROR);
    }
    if (size < 2)
        return 0;
    struct stub st = {.n = 0};
    struct mcp_server_config cfg = {
        .version = "0.0.0",
        .max_line = 8192,
        .backend = {&st, stub_submit, stub_cancel},
        .write = check_line,
    };
    struct mcp_server *srv = mcp_server_new(&cfg, NULL);
    if (!srv)
        return 0;
    size_t v = data[0] % (mcp_protocol_count + 1);
    if (v < mcp_protocol_count) {
        char init[160];
        int n = snprintf(init, sizeof(init),
                         "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
                         "{\"protocolVersion\":\"%s\"}}\n",
                         mcp_protocol_versions[v]);
        mcp_server_feed(srv, init, (size_t)n);
    }
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    size_t split = len ? data[1] % (len + 1) : 0;
    mcp_server_feed(srv, in, split);
    drain(srv, &st);
    mcp_server_feed(srv, in + split, len - split);
    if (data[1] & 1)
        drain(srv, &st);
    mcp_server_finish_input(srv);
    if (data[1] & 2)
        drain(srv, &st);
    mcp_server_free(srv); /* cancels what is left */
    return 0;
}
