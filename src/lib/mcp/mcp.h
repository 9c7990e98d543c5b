/* capsem-mcp: MCP stdio server core (surface.md section 6).
 *
 * The server speaks JSON-RPC 2.0, one message per line. It is transport
 * free: bytes come in through mcp_server_feed(), complete lines go out through
 * the write callback, and service calls go through a backend (two function
 * pointers), so tests and the fuzzer run it without a service. The real
 * backend is mcp_http.h (libcurl multi); mcp_stdio_run() ties both to
 * stdin/stdout.
 *
 * Threading: single-threaded; every function here is called from one thread
 * (the loop's). */
#ifndef CAPSEM_MCP_H
#define CAPSEM_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Cap on one input line (a JSON-RPC message or batch); past it the line is
 * answered with -32600 and skipped up to the next newline. */
#define MCP_MAX_LINE (4u << 20)

/* JSON-RPC / MCP error codes. */
#define MCP_PARSE_ERROR      (-32700)
#define MCP_INVALID_REQUEST  (-32600)
#define MCP_METHOD_NOT_FOUND (-32601)
#define MCP_INVALID_PARAMS   (-32602)
#define MCP_NOT_INITIALIZED  (-32002)

/* Protocol versions this server speaks, oldest first; the last one is the
 * answer to an unknown version. */
extern const char *const mcp_protocol_versions[];
extern const size_t mcp_protocol_count;
/* Index of v in mcp_protocol_versions, or -1. */
int mcp_protocol_index(const char *v);

/* Feature gates by negotiated version index. */
#define MCP_PROTO_2025_03_26 1 /* tool annotations; batches (this version only) */
#define MCP_PROTO_2025_06_18 2 /* structuredContent */

/* One HTTP request to capsem-service. All fields are owned by the caller of
 * submit and stay valid until the call completes or is cancelled. */
struct mcp_req {
    const char *method; /* "GET", "POST", "DELETE" */
    char *path;         /* "/vms/<ref>/exec?..." (already percent-encoded) */
    json_t *body;       /* request JSON; NULL: no body */
    long timeout_secs;  /* whole transfer */
    bool autostart;     /* may start the service when nobody listens */
    bool text;          /* the answer is text/plain, not JSON */
};

/* The outcome of a request; everything is borrowed for the duration of the
 * completion call. */
struct mcp_reply {
    long status;        /* HTTP status; 0 when the request never got one */
    const json_t *json; /* parsed answer (JSON requests, and error bodies) or NULL */
    const char *body;   /* raw body, NUL-terminated ("" when empty) */
    size_t body_len;
    const struct err *err; /* transport failure, bad JSON in a 2xx answer; else NULL */
};

/* Service call layer. submit() must not complete the call before it returns;
 * the completion comes later through mcp_server_complete(). cancel() abandons
 * a submitted call (its connection is closed); no completion follows. */
struct mcp_backend {
    void *impl;
    int (*submit)(void *impl, uint64_t token, const struct mcp_req *req, struct err **errp);
    void (*cancel)(void *impl, uint64_t token);
};

/* Writes one whole output line (including its '\n'); -1 on failure (the
 * client is gone: later output is dropped). */
typedef int (*mcp_write_fn)(void *ctx, const char *data, size_t len);

struct mcp_server_config {
    const char *version; /* serverInfo.version */
    size_t max_line;     /* 0: MCP_MAX_LINE */
    struct mcp_backend backend;
    mcp_write_fn write;
    void *write_ctx;
};

struct mcp_server;

struct mcp_server *mcp_server_new(const struct mcp_server_config *cfg, struct err **errp);
/* Cancels every call still in flight (through the backend), then frees. */
void mcp_server_free(struct mcp_server *s);

/* Input bytes, in any split; every complete line is handled before return. */
void mcp_server_feed(struct mcp_server *s, const char *data, size_t n);
/* End of input: an unterminated last line is handled as a line. Calls in
 * flight still complete and are answered. */
void mcp_server_finish_input(struct mcp_server *s);

/* Completion of the call submitted with token (unknown tokens are ignored:
 * the call may have been cancelled). */
void mcp_server_complete(struct mcp_server *s, uint64_t token, const struct mcp_reply *r);

/* Calls in flight (answered or cancelled ones excluded). */
size_t mcp_server_inflight(const struct mcp_server *s);
/* Negotiated protocol version, NULL before initialize. */
const char *mcp_server_protocol(const struct mcp_server *s);
/* True once a write failed. */
bool mcp_server_output_failed(const struct mcp_server *s);

#endif
