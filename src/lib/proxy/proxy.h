/* The HTTPS/HTTP interception proxy of capsem-process (network.md sections
 * 5-7): every guest TCP connection to port 443 or a listed plain-HTTP port
 * arrives as one MUX_SVC_NET stream; the proxy terminates TLS with a minted
 * leaf, parses each request strictly, asks the caller for a decision, and
 * forwards allowed requests upstream with libcurl, streaming responses back
 * as they arrive. Everything host-specific (policy, certificates, upstream
 * overrides, credentials, telemetry) is behind struct proxy_hooks, so the
 * proxy owns only connection mechanics. */
#ifndef CAPSEM_PROXY_H
#define CAPSEM_PROXY_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "net/http1.h"
#include "proto/mux.h"

struct proxy;

enum proxy_action { PROXY_ALLOW = 1, PROXY_BLOCK = 2 };

/* One request as the decision hook sees it; strings are borrowed for the
 * duration of the call. */
struct proxy_request {
    uint64_t conn_id;
    uint32_t request_seq;
    uint32_t dst_ip; /* guest's original destination, host byte order */
    uint16_t dst_port;
    uint32_t pid;
    const char *comm;
    const char *exe;
    const char *scheme; /* "https" or "http" */
    const char *sni;    /* NULL without SNI */
    const char *host;   /* lowercase, without port */
    uint16_t port;
    const char *method;
    const char *target; /* as received */
    const char *path;   /* without the query */
    const char *query;  /* NULL without '?' */
    const struct http1_header *headers;
    size_t nheaders;
    bool websocket;
};

/* Credential substitution the decision asks for (network.md section 10):
 * the forwarded request carries `value` for header `name` instead of the
 * guest's value (the guest-side request is what telemetry records). */
#define PROXY_MAX_SUBST 4
struct proxy_subst {
    char name[40];
    char value[2048];
};

struct proxy_decision {
    enum proxy_action action;
    int status;             /* for blocks: 403 unless said otherwise */
    char reason[48];        /* section 7 code: policy_block, default_deny, ... */
    char rule[160];         /* "source:id" or "-" */
    char text[512];         /* the explanation quoted to the agent */
    char dial[300];         /* upstream override: "ip:port", or "" */
    char ca_file[4096];     /* extra CA for the override, or "" */
    char resolve[300];      /* pinned address for the host ("host:port:ip"), or "" */
    char credential_provider[16]; /* whose secret is substituted, or "" */
    int64_t ask_id;               /* policy_decisions row when an ask decided, else 0 */
    bool hold_body; /* buffer the whole body and call decide_body before going upstream */
    char upstream_proxy[300]; /* network.upstream_proxy ("" = direct; the environment is ignored) */
    struct proxy_subst subst[PROXY_MAX_SUBST];
    size_t nsubst;
    char target_rewrite[8192]; /* forwarded request target when not "" (query key) */
};

/* A finished request or failed connection, for telemetry (net_events). */
struct proxy_event {
    uint64_t conn_id;
    uint32_t request_seq;
    uint64_t started_ms; /* unix ms */
    const struct proxy_request *req; /* NULL for connection-level failures */
    const char *conn_type;           /* https | http | websocket | connection */
    int status;                      /* 0 when no response was sent */
    uint64_t bytes_sent;             /* guest -> upstream body */
    uint64_t bytes_received;         /* upstream -> guest body */
    uint64_t duration_ms;
    int64_t ttfb_ms;                 /* -1 unknown */
    const char *decision;            /* allowed | denied | error */
    const char *rule;
    const char *reason;
    const char *error_detail;
    const char *upstream_http_version;
    const char *response_headers; /* raw upstream head (status line + fields), or NULL */
    const struct proxy_decision *dec; /* the request's decision, NULL when none was made */
    int64_t ask_id;                   /* policy_decisions row of an ask, 0 when none */
};

struct proxy_hooks {
    void *ctx;
    /* Required: decide a request. Returns 0 when *d is final, 1 when the
     * decision comes later (an ask, a DNS lookup): the hook then calls
     * proxy_decided() exactly once, unless the proxy first calls cancel. */
    int (*decide)(void *ctx, const struct proxy_request *r, struct proxy_decision *d);
    /* Required when decide can return 1: the connection of a pending
     * decision went away; the hook drops it without calling proxy_decided. */
    void (*cancel)(void *ctx, uint64_t conn_id, uint32_t request_seq);
    /* Required for TLS: install the certificate for `name` on a new SSL. */
    int (*use_cert)(void *ctx, SSL *ssl, const char *name);
    /* Optional: pin-set lookup for SNI-less clients (IPv4 -> name). */
    const char *(*name_for_ip)(void *ctx, uint32_t ip);
    /* Optional: telemetry. Returns the net_events row id (0 when none). */
    int64_t (*record)(void *ctx, const struct proxy_event *ev);
    /* Optional: an observer per allowed request (AI interpreters, body
     * scanning). observe_start returns the observer or NULL (not observed);
     * the proxy then feeds it and always ends it with observe_finish, which
     * frees it. Observers only watch: bytes are forwarded before they are
     * offered and never changed. */
    void *(*observe_start)(void *ctx, const struct proxy_request *r,
                           const struct proxy_decision *d);
    void (*observe_request_body)(void *obs, const uint8_t *p, size_t n);
    void (*observe_response_head)(void *obs, int status, const char *content_type,
                                  const char *content_encoding);
    void (*observe_response_body)(void *obs, const uint8_t *p, size_t n);
    /* ev: the request's final event; net_event_id: its row (0 = none). */
    void (*observe_finish)(void *obs, const struct proxy_event *ev, int64_t net_event_id);
    /* Optional: vet an allowed request's body chunk by chunk BEFORE each
     * chunk goes upstream (credentials in bodies, network.md section 10).
     * vet_start returns a state or NULL (not vetted); vet returns 0 to pass
     * the chunk, else fills reason (a section 7 code) and text, and the
     * proxy aborts the request (403 when no response started, else close);
     * vet_end frees the state. */
    /* Required when decide sets hold_body: the whole request body (<= 64 MiB,
     * else the proxy answers 413) before anything goes upstream (model-scope
     * rules on AI requests, network.md 6 step 10). d holds the decision so
     * far; same return convention as decide (1: proxy_decided() later). */
    int (*decide_body)(void *ctx, const struct proxy_request *r, const uint8_t *body, size_t len,
                       struct proxy_decision *d);
    void *(*vet_start)(void *ctx, const struct proxy_request *r);
    int (*vet)(void *state, const uint8_t *p, size_t n, char reason[48], char text[512]);
    void (*vet_end)(void *state);
};

struct proxy_limits {
    unsigned max_conns;            /* 512 */
    uint64_t max_request_body;     /* 256 MiB */
    unsigned first_bytes_ms;       /* 10 s */
    unsigned head_ms;              /* 30 s */
    unsigned idle_ms;              /* 60 s keep-alive */
    unsigned upstream_connect_s;   /* 15 */
    unsigned upstream_idle_s;      /* 600 */
};
void proxy_limits_default(struct proxy_limits *l);

/* server_ctx: the guest-facing TLS context (TLS 1.2/1.3, ALPN http/1.1). */
struct proxy *proxy_new(struct event_base *base, SSL_CTX *server_ctx,
                        const struct proxy_limits *limits, const struct proxy_hooks *hooks,
                        struct err **errp);
void proxy_free(struct proxy *p);

/* A MUX_SVC_NET stream opened by the guest: validates the metadata (network.md
 * C7) and takes the stream over. Returns 0, or a mux reset reason. kick is
 * called whenever the proxy queued output on any stream. */
int proxy_accept(struct proxy *p, struct mux_stream *s, const uint8_t *meta, size_t len,
                 void (*kick)(void *arg), void *kick_arg);
unsigned proxy_conn_count(const struct proxy *p);

/* Completes a decision that decide() left pending. d is copied. Unknown
 * (conn_id, seq) pairs are ignored: the connection is gone. */
void proxy_decided(struct proxy *p, uint64_t conn_id, uint32_t request_seq,
                   const struct proxy_decision *d);

#endif
