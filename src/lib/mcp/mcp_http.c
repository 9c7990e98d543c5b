/* capsem-mcp's service call layer on libcurl multi; see mcp_http.h. */
#include "mcp/mcp_http.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "cli/autostart.h"
#include "cli/client.h"
#include "cli/svcctl.h"

#define CONNECT_TIMEOUT 10

struct xfer {
    struct xfer *next;
    uint64_t token;
    CURL *easy;
    struct curl_slist *hdrs;
    char *payload;
    char *what; /* "METHOD /path" for messages */
    bool text, autostart, retried;
    bool parked; /* waiting for the service to be started */
    long timeout;
    struct buf body;
    char curl_err[CURL_ERROR_SIZE];
};

/* The auto-start worker: written by the thread, read after `done`. */
struct starter {
    pthread_t thread;
    bool running;
    atomic_bool done;
    struct err *err;
    char *version;
    bool started;
};

struct mcp_http {
    struct mcp_http_config cfg;
    char *socket;
    char *home, *run_dir, *binary;
    char real[SOCKPATH_MAX + 64];
    CURLM *multi;
    struct xfer *xfers;
    size_t nxfers;
    struct starter st;
};

/* ---------- transfers ---------- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct xfer *x = ctx;
    if (buf_append(&x->body, data, size * n) < 0)
        return 0; /* CURLE_WRITE_ERROR */
    return size * n;
}

static void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->payload);
    free(x->what);
    buf_free(&x->body);
    free(x);
}

static void xfer_unlink(struct mcp_http *h, struct xfer *x)
{
    for (struct xfer **pp = &h->xfers; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            h->nxfers--;
            return;
        }
    }
}

static int setup_easy(struct mcp_http *h, struct xfer *x, const struct mcp_req *req)
{
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "http://localhost%s", req->path) < 0)
        return -1;
    CURL *e = x->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, h->real) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT, req->timeout_secs) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "capsem-mcp/" CAPSEM_VERSION) != CURLE_OK;
    if (x->payload) {
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->payload) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->payload)) !=
               CURLE_OK;
    } else if (strcmp(req->method, "GET") == 0) {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

static struct xfer *xfer_new(struct mcp_http *h, uint64_t token, const struct mcp_req *req)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->token = token;
    x->text = req->text;
    x->autostart = req->autostart;
    x->timeout = req->timeout_secs;
    buf_init(&x->body, h->cfg.max_response ? h->cfg.max_response : MCP_MAX_RESPONSE);
    if (asprintf(&x->what, "%s %.*s", req->method, (int)strcspn(req->path, "?"), req->path) < 0)
        x->what = NULL;
    if (req->body)
        x->payload = json_dumps(req->body, JSON_COMPACT);
    else if (strcmp(req->method, "POST") == 0)
        x->payload = strdup(""); /* Content-Length: 0 rather than no length */
    if (x->payload && req->body)
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    struct curl_slist *h2 = curl_slist_append(x->hdrs, "Expect:");
    if (h2)
        x->hdrs = h2;
    x->easy = curl_easy_init();
    if (!x->what || !x->easy || !h2 || (!x->payload && strcmp(req->method, "POST") == 0) ||
        setup_easy(h, x, req) < 0) {
        xfer_free(x);
        return NULL;
    }
    return x;
}

int mcp_http_submit(struct mcp_http *h, uint64_t token, const struct mcp_req *req,
                    struct err **errp)
{
    struct xfer *x = xfer_new(h, token, req);
    if (!x)
        return err_set(errp, ENOMEM, "cannot set up the request %s %s", req->method, req->path);
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        xfer_free(x);
        return err_set(errp, EIO, "cannot start the request %s %s", req->method, req->path);
    }
    x->next = h->xfers;
    h->xfers = x;
    h->nxfers++;
    return 0;
}

void mcp_http_cancel(struct mcp_http *h, uint64_t token)
{
    for (struct xfer *x = h->xfers; x; x = x->next) {
        if (x->token != token)
            continue;
        if (!x->parked)
            curl_multi_remove_handle(h->multi, x->easy);
        log_info("abandoned %s", x->what);
        xfer_unlink(h, x);
        xfer_free(x);
        return;
    }
}

size_t mcp_http_active(const struct mcp_http *h)
{
    return h->nxfers;
}

/* ---------- completions ---------- */

static void transport_error(struct mcp_http *h, struct xfer *x, CURLcode rc, struct err **errp)
{
    long os_errno = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == 0)
            os_errno = ECONNREFUSED;
        err_set(errp, (int)os_errno, "cannot connect to capsem-service at %s: %s", h->socket,
                strerror((int)os_errno));
        return;
    case CURLE_OPERATION_TIMEDOUT:
        err_set(errp, ETIMEDOUT, "capsem-service did not answer %s within %ld s", x->what,
                x->timeout);
        return;
    case CURLE_WRITE_ERROR:
        err_set(errp, EMSGSIZE, "answer from capsem-service larger than %zu bytes", x->body.max);
        return;
    default:
        err_set(errp, EIO, "talking to capsem-service at %s: %s", h->socket,
                x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc));
    }
}

static bool not_running(struct mcp_http *h, struct xfer *x, CURLcode rc)
{
    long os_errno = 0;
    if (rc != CURLE_COULDNT_CONNECT)
        return false;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    return os_errno == 0 || os_errno == ENOENT || os_errno == ECONNREFUSED;
}

/* Delivers x's outcome and frees x (already unlinked and out of the multi). */
static void deliver(struct mcp_http *h, struct xfer *x, CURLcode rc, const struct err *fail)
{
    _cleanup_err_ struct err *e = NULL;
    struct mcp_reply r = {0};
    json_t *json = NULL;
    uint8_t *nul = buf_reserve(&x->body, 1);
    if (nul)
        *nul = '\0';
    r.body = x->body.len && nul ? (const char *)buf_head(&x->body) : "";
    r.body_len = nul ? x->body.len : 0;
    if (fail) {
        r.err = fail;
    } else if (rc != CURLE_OK) {
        transport_error(h, x, rc, &e);
        r.err = e;
    } else {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
        bool ok = r.status >= 200 && r.status < 300;
        json_error_t jerr;
        if (!(ok && x->text) && r.body_len)
            json = json_loadb(r.body, r.body_len, 0, &jerr);
        if (ok && !x->text && r.body_len && !json) {
            err_set(&e, EPROTO, "capsem-service sent invalid JSON for %s: %s", x->what, jerr.text);
            r.err = e;
        }
        r.json = json ? json : (ok && !x->text ? json_null() : NULL);
    }
    uint64_t token = x->token;
    h->cfg.done(h->cfg.done_ctx, token, &r);
    json_decref(json);
    xfer_free(x);
}

static void start_service(struct mcp_http *h);

static void on_finished(struct mcp_http *h, struct xfer *x, CURLcode rc)
{
    curl_multi_remove_handle(h->multi, x->easy);
    if (h->cfg.autostart && x->autostart && !x->retried && not_running(h, x, rc)) {
        x->parked = true;
        buf_reset(&x->body);
        start_service(h);
        return;
    }
    xfer_unlink(h, x);
    deliver(h, x, rc, NULL);
}

/* ---------- auto-start ---------- */

static void *starter_main(void *p)
{
    struct mcp_http *h = p;
    struct err *e = NULL;
    struct cli_client *c = cli_client_new(h->socket, 1u << 20, &e);
    struct cli_autostart a = {
        .home = h->home,
        .run_dir = h->run_dir,
        .allowed = true,
        .binary = h->binary,
        .systemd = cli_unit_applies(),
        .wait_ms = CLI_START_WAIT_MS,
    };
    if (c)
        cli_service_ensure(c, &a, &h->st.version, &h->st.started, &e);
    cli_client_free(c);
    h->st.err = e;
    atomic_store(&h->st.done, true);
    curl_multi_wakeup(h->multi);
    return NULL;
}

static void start_service(struct mcp_http *h)
{
    if (h->st.running)
        return;
    atomic_store(&h->st.done, false);
    h->st.err = NULL;
    h->st.version = NULL;
    h->st.started = false;
    int rc = pthread_create(&h->st.thread, NULL, starter_main, h);
    if (rc != 0) {
        errno = rc;
        err_sys(&h->st.err, "cannot start the auto-start thread");
        atomic_store(&h->st.done, true);
        return; /* st.running stays false: starter_done() fails the parked calls */
    }
    h->st.running = true;
    log_info("nobody listens on %s; starting capsem-service", h->socket);
}

/* Retries or fails the parked transfers once the starter is done. */
static void starter_done(struct mcp_http *h)
{
    if (!atomic_load(&h->st.done))
        return;
    if (h->st.running)
        pthread_join(h->st.thread, NULL);
    h->st.running = false;
    atomic_store(&h->st.done, false);
    _cleanup_err_ struct err *e = steal_pointer(&h->st.err);
    _cleanup_free_ char *version = steal_pointer(&h->st.version);
    if (e)
        log_error("auto-start failed: %s", err_msg(e));
    else if (strcmp(version, CAPSEM_VERSION) != 0)
        log_warn("capsem-service is %s, capsem-mcp is %s", version, CAPSEM_VERSION);
    else
        log_info("capsem-service %s is up%s", version, h->st.started ? " (started)" : "");
    struct xfer **pp = &h->xfers;
    while (*pp) {
        struct xfer *x = *pp;
        if (!x->parked) {
            pp = &x->next;
            continue;
        }
        x->parked = false;
        x->retried = true;
        if (!e && curl_multi_add_handle(h->multi, x->easy) == CURLM_OK) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        h->nxfers--;
        deliver(h, x, CURLE_OK, e); /* may submit more: they go to the head of the list */
        pp = &h->xfers; /* the list may have changed: rescan (parked ones are cleared) */
    }
}

/* ---------- loop ---------- */

void mcp_http_process(struct mcp_http *h)
{
    int running = 0;
    curl_multi_perform(h->multi, &running);
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        if (x)
            on_finished(h, x, rc);
    }
    starter_done(h);
}

int mcp_http_wait(struct mcp_http *h, struct curl_waitfd *extra, unsigned n, int timeout_ms,
                  struct err **errp)
{
    CURLMcode rc = curl_multi_poll(h->multi, extra, n, timeout_ms, NULL);
    if (rc != CURLM_OK)
        return err_set(errp, EIO, "curl_multi_poll: %s", curl_multi_strerror(rc));
    return 0;
}

/* ---------- lifetime ---------- */

static int backend_submit(void *impl, uint64_t token, const struct mcp_req *req, struct err **errp)
{
    return mcp_http_submit(impl, token, req, errp);
}

static void backend_cancel(void *impl, uint64_t token)
{
    mcp_http_cancel(impl, token);
}

struct mcp_backend mcp_http_backend(struct mcp_http *h)
{
    return (struct mcp_backend){h, backend_submit, backend_cancel};
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct mcp_http *mcp_http_new(const struct mcp_http_config *cfg, struct err **errp)
{
    struct mcp_http *h = calloc(1, sizeof(*h));
    if (!h) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    h->cfg = *cfg;
    h->socket = strdup(cfg->socket);
    h->home = dup_or_null(cfg->home);
    h->run_dir = dup_or_null(cfg->run_dir);
    h->binary = dup_or_null(cfg->service_binary);
    h->multi = curl_multi_init();
    if (!h->socket || !h->multi || (cfg->home && !h->home) || (cfg->run_dir && !h->run_dir) ||
        (cfg->service_binary && !h->binary)) {
        err_set(errp, ENOMEM, "cannot set up the HTTP client");
        mcp_http_free(h);
        return NULL;
    }
    if (cfg->autostart && (!h->home || !h->run_dir)) {
        err_set(errp, EINVAL, "auto-start needs the capsem home and run directories");
        mcp_http_free(h);
        return NULL;
    }
    if (sockpath_resolve(cfg->socket, h->real, sizeof(h->real), errp) < 0) {
        err_prefix(errp, "service socket %s", cfg->socket);
        mcp_http_free(h);
        return NULL;
    }
    return h;
}

void mcp_http_free(struct mcp_http *h)
{
    if (!h)
        return;
    if (h->st.running) {
        pthread_join(h->st.thread, NULL);
        err_free(h->st.err);
        free(h->st.version);
    }
    while (h->xfers) {
        struct xfer *x = h->xfers;
        h->xfers = x->next;
        if (!x->parked)
            curl_multi_remove_handle(h->multi, x->easy);
        xfer_free(x);
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    free(h->socket);
    free(h->home);
    free(h->run_dir);
    free(h->binary);
    free(h);
}
