/* capsem-mcp's service call layer: HTTP/1.1 + JSON requests to
 * capsem-service over its UNIX socket on a libcurl multi handle, so any
 * number of calls run at once on one thread and each can be abandoned
 * (cancel closes its connection; for /run the service then destroys the
 * VM). When nobody listens on the socket and auto-start is allowed, the
 * failed requests are parked while a worker thread starts the service like
 * the CLI does (cli/autostart.h), then retried once.
 *
 * Callers run curl_global_init() once first. Single-threaded API: every
 * function is called from the loop's thread; completions are delivered
 * from mcp_http_process(). */
#ifndef CAPSEM_MCP_HTTP_H
#define CAPSEM_MCP_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "mcp/mcp.h"

/* Cap on one answer body: two 10 MiB output streams, JSON-escaped. */
#define MCP_MAX_RESPONSE (192u << 20)

typedef void (*mcp_http_done_fn)(void *ctx, uint64_t token, const struct mcp_reply *r);

struct mcp_http_config {
    const char *socket;         /* logical socket path (copied) */
    bool autostart;             /* start the service when nobody listens */
    const char *home;           /* $CAPSEM_HOME: logs/service.log */
    const char *run_dir;        /* holds service.explicitly-stopped */
    const char *service_binary; /* NULL: paths_find_binary("capsem-service") */
    size_t max_response;        /* 0: MCP_MAX_RESPONSE */
    mcp_http_done_fn done;
    void *done_ctx;
};

struct mcp_http;

struct mcp_http *mcp_http_new(const struct mcp_http_config *cfg, struct err **errp);
/* Abandons every transfer (no completions) and waits for an auto-start in
 * progress to end. */
void mcp_http_free(struct mcp_http *h);

/* Starts req (copied: req may go away after return). */
int mcp_http_submit(struct mcp_http *h, uint64_t token, const struct mcp_req *req,
                    struct err **errp);
/* Abandons the transfer of token, if any; no completion follows. */
void mcp_http_cancel(struct mcp_http *h, uint64_t token);

/* The backend view of h for mcp_server_config. */
struct mcp_backend mcp_http_backend(struct mcp_http *h);

/* Sleeps until a transfer's socket, one of extra (curl_multi_poll
 * semantics) or the end of an auto-start needs attention, at most
 * timeout_ms. */
int mcp_http_wait(struct mcp_http *h, struct curl_waitfd *extra, unsigned n, int timeout_ms,
                  struct err **errp);
/* Moves transfers along and delivers completions through cfg.done. */
void mcp_http_process(struct mcp_http *h);
/* Transfers not yet completed (parked ones included). */
size_t mcp_http_active(const struct mcp_http *h);

#endif
