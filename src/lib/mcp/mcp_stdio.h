/* capsem-mcp's main loop: JSON-RPC lines from in_fd, replies to out_fd,
 * service calls on libcurl multi, all on one thread with one poll
 * (curl_multi_poll with the input fd as an extra fd), so a
 * notifications/cancelled is read while calls are in flight. */
#ifndef CAPSEM_MCP_STDIO_H
#define CAPSEM_MCP_STDIO_H

#include <stdbool.h>

#include "base/err.h"

/* Calls in flight past which input is not read until one completes
 * (back-pressure; a batch may go past it). */
#define MCP_MAX_INFLIGHT 64

struct mcp_stdio_config {
    const char *socket;         /* service socket (logical path) */
    bool autostart;             /* start the service when nobody listens */
    const char *home;           /* $CAPSEM_HOME */
    const char *run_dir;        /* run directory */
    const char *service_binary; /* NULL: found like the CLI finds it */
};

/* Serves until end of input and the last call's answer, or until out_fd
 * fails. Returns 0, or -1 with errp set on a setup or poll failure. The
 * caller has run curl_global_init(). */
int mcp_stdio_run(const struct mcp_stdio_config *cfg, int in_fd, int out_fd, struct err **errp);

#endif
