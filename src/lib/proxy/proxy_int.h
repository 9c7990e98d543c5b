/* Internals of the proxy: one struct pconn per guest TCP connection. */
#ifndef CAPSEM_PROXY_INT_H
#define CAPSEM_PROXY_INT_H

#include <curl/curl.h>

#include "base/buf.h"
#include "net/curlev.h"
#include "proto/hstream.h"
#include "proxy/proxy.h"
#include "tls/clienthello.h"

/* Bytes of request body buffered for curl before credit stops flowing. */
#define PROXY_BODY_BUF (256u * 1024u)
/* A body held whole for decide_body (network.md section 14: AI request body). */
#define PROXY_HOLD_MAX (64u << 20)
/* Plaintext response bytes queued toward the guest before curl is paused. */
#define PROXY_OUT_HIGH (192u * 1024u)
#define PROXY_CLIENT_HELLO_MAX (16u * 1024u)

enum pconn_state {
    PC_CLASSIFY,  /* waiting for the first bytes */
    PC_TLS,       /* handshake */
    PC_HEAD,      /* reading a request head */
    PC_DECIDE,    /* the head is read; the decision is pending (ask, DNS) */
    PC_BODY,      /* forwarding a request body */
    PC_RESPONSE,  /* waiting for / streaming the upstream response */
    PC_WS,        /* a WebSocket upgrade: upstream leg, then the splice (proxy_ws.c) */
    PC_CLOSING,   /* flushing a final response, then FIN */
    PC_DEAD,
};

struct pconn {
    struct hstream hs; /* first: the stream's user pointer */
    struct proxy *p;
    struct mux_stream *s;
    struct pconn *next, *prev;
    enum pconn_state state;
    uint64_t id;
    uint32_t seq;
    uint64_t opened_ms;
    /* metadata from the guest relay */
    uint32_t dst_ip;
    uint16_t dst_port;
    uint32_t pid;
    char comm[65];
    char exe[257];
    /* transport */
    bool tls;
    struct clienthello_parser *hello; /* validates the raw ClientHello, then freed */
    SSL *ssl;
    BIO *rbio, *wbio;
    char sni[256];
    char tls_name[256]; /* SNI, pin-set name or IP literal */
    struct buf pending; /* guest bytes not yet given to TLS / the parser */
    struct buf outq;    /* bytes for the stream (ciphertext with TLS) */
    struct buf plain;   /* plaintext the parser did not take yet (pipelining) */
    bool guest_fin;
    bool fin_sent;
    /* request */
    struct http1_parser *parser;
    struct proxy_request req;
    char host[256];
    char path[8192];
    char method[32];
    char target[8192];
    uint64_t req_started_ms;
    struct proxy_decision dec;
    bool deciding;        /* decide() answered "later": waiting for proxy_decided() */
    bool holding;         /* the body is being buffered whole for decide_body */
    bool body_phase;      /* the pending decision is decide_body's */
    void *obs;            /* observer of this request (hooks->observe_*), or NULL */
    void *vet;            /* body vetting state (hooks->vet_*), or NULL */
    /* upstream */
    CURL *easy;
    struct curl_slist *up_headers;
    struct curl_slist *up_resolve;
    struct curl_slist *up_connect;
    struct buf body;      /* request body waiting for curl */
    bool body_done;       /* the request body is complete */
    bool body_paused;     /* curl asked for body bytes we did not have */
    bool resp_paused;     /* curl paused: the guest is not reading */
    struct buf resp_head; /* upstream status line + headers */
    int resp_status;
    bool head_sent;
    bool resp_chunked; /* we frame the body to the guest as chunked */
    bool resp_no_body;
    bool resp_close;   /* close after this response */
    bool resp_chunked_up; /* the upstream used chunked framing */
    const char *upstream_version;
    char errbuf[CURL_ERROR_SIZE];
    uint64_t bytes_up, bytes_down;
    int64_t ttfb_ms;
    /* timers */
    struct event *timer;
    /* WebSocket upgrade (proxy_ws.c), NULL otherwise */
    struct pws *ws;
};

/* proxy.c */
void pconn_output_plain(struct pconn *c, const void *data, size_t len);
void pconn_flush(struct pconn *c);
size_t pconn_room(struct pconn *c);
void pconn_close(struct pconn *c, bool graceful);
void pconn_arm_timer(struct pconn *c, unsigned ms);
/* Reads TLS plaintext already decrypted but not consumed (after the request
 * state starts accepting input again). */
void pconn_pump_tls(struct pconn *c);
/* Request state accepts input again: process buffered guest bytes. */
void pconn_resume_input(struct pconn *c);
struct curlev *proxy_curl(struct proxy *p);
struct event_base *proxy_base(struct proxy *p);
const struct proxy_hooks *proxy_hooks(struct proxy *p);
/* The live connection with this id, or NULL. */
struct pconn *proxy_find_conn(struct proxy *p, uint64_t conn_id);
const struct proxy_limits *proxy_limits(struct proxy *p);
void proxy_record(struct pconn *c, const char *conn_type, int status, const char *decision,
                  const char *rule, const char *reason, const char *detail);

/* proxy_req.c */
void pconn_feed_plain(struct pconn *c, const uint8_t *data, size_t len);
void pconn_reply(struct pconn *c, int status, const char *reason, const char *rule,
                 const char *text);
void pconn_request_done(struct pconn *c);
/* Ends the request's body vetting (NULL-safe). */
void pconn_vet_end(struct pconn *c);

/* proxy_up.c */
int pconn_upstream_start(struct pconn *c, struct err **errp);
void pconn_upstream_body(struct pconn *c);
void pconn_upstream_resume(struct pconn *c);
void pconn_upstream_free(struct pconn *c);

/* proxy_ws.c: WebSocket upgrades (network.md section 6 step 13) */
/* After an allow: dial the upstream, send the head, answer; sets PC_WS. */
void pconn_ws_start(struct pconn *c);
/* The splice takes guest plaintext now (101 seen, upstream queue not full). */
bool pconn_ws_can_take(const struct pconn *c);
/* Guest plaintext for the upstream (only while pconn_ws_can_take). */
void pconn_ws_guest_data(struct pconn *c, const uint8_t *data, size_t len);
/* The guest ended its stream; every byte before it was handed over. */
void pconn_ws_guest_eof(struct pconn *c);
/* The guest's queue has room again: resume reading the upstream. */
void pconn_ws_guest_writable(struct pconn *c);
/* Writes the row if none was written, closes the upstream leg (NULL-safe). */
void pconn_ws_free(struct pconn *c);

#endif
