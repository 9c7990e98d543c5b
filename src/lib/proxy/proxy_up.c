/* Upstream side of a proxied request: one libcurl easy handle per request,
 * certificate and host-name verification always on, redirects never
 * followed, proxies from the environment ignored, the response head and
 * body streamed to the guest as they arrive (network.md section 6). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ai/interp.h"
#include "base/log.h"
#include "base/util.h"
#include "policy/policy.h"
#include "proxy/proxy_int.h"

static const char *const hop_by_hop[] = {"connection", "keep-alive",       "proxy-connection",
                                         "proxy-authenticate", "proxy-authorization", "te",
                                         "trailer",    "transfer-encoding", "upgrade",
                                         "expect",     "content-length",    "host"};

static bool is_hop(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(hop_by_hop); i++)
        if (strlen(hop_by_hop[i]) == len && strncasecmp(name, hop_by_hop[i], len) == 0)
            return true;
    return false;
}

/* ---------- request body toward curl ---------- */

static size_t read_cb(char *dst, size_t size, size_t nitems, void *arg)
{
    struct pconn *c = arg;
    size_t cap = size * nitems;
    if (c->body.len == 0) {
        if (c->body_done)
            return 0;
        c->body_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    size_t n = MIN(cap, c->body.len);
    memcpy(dst, buf_head(&c->body), n);
    buf_consume(&c->body, n);
    pconn_resume_input(c); /* room for more body from the guest */
    return n;
}

void pconn_upstream_body(struct pconn *c)
{
    if (c->easy && c->body_paused && (c->body.len > 0 || c->body_done)) {
        c->body_paused = false;
        curl_easy_pause(c->easy, CURLPAUSE_CONT);
        curlev_kick(proxy_curl(c->p));
    }
}

/* ---------- response toward the guest ---------- */

/* Copies a header value, cut to fit (a cut Content-Type or Content-Encoding
 * still names the same kind of body for an observer). */
static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    len = MIN(len, cap - 1);
    memcpy(dst, v, len);
    dst[len] = '\0';
}

/* The head toward the guest. c->resp_head holds the upstream status line,
 * then one field per line: the status line is ours to write (HTTP/1.1 to
 * the guest whatever the upstream version), the fields pass minus
 * hop-by-hop ones. */
static void send_head(struct pconn *c)
{
    struct buf out;
    buf_init(&out, 128 * 1024);
    const char *reason = http1_status_text(c->resp_status);
    buf_printf(&out, "HTTP/1.1 %d %s\r\n", c->resp_status, reason);
    bool has_length = false;
    char ctype[256] = "", cenc[128] = "";
    bool have_ctype = false, have_cenc = false;
    const char *p = (const char *)buf_head(&c->resp_head), *end = p + c->resp_head.len;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        const char *colon = first ? NULL : memchr(p, ':', len);
        first = false;
        if (colon && colon > p) {
            size_t nlen = (size_t)(colon - p);
            if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0 && !c->resp_chunked_up) {
                has_length = true;
                buf_append(&out, p, len);
                buf_append(&out, "\r\n", 2);
            } else if (!is_hop(p, nlen)) {
                buf_append(&out, p, len);
                buf_append(&out, "\r\n", 2);
            }
            size_t vlen = len - nlen - 1;
            if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0 && !have_ctype) {
                copy_value(ctype, sizeof(ctype), colon + 1, vlen);
                have_ctype = true;
            } else if (nlen == 16 && strncasecmp(p, "content-encoding", 16) == 0 && !have_cenc) {
                copy_value(cenc, sizeof(cenc), colon + 1, vlen);
                have_cenc = true;
            }
        }
        p = nl ? nl + 1 : end;
    }
    bool head_req = strcmp(c->method, "HEAD") == 0;
    c->resp_no_body = head_req || c->resp_status == 204 || c->resp_status == 304 ||
                      (c->resp_status >= 100 && c->resp_status < 200);
    c->resp_chunked = !c->resp_no_body && !has_length;
    if (c->resp_chunked)
        buf_append_str(&out, "Transfer-Encoding: chunked\r\n");
    if (c->resp_close || !http1_keep_alive(c->parser))
        buf_append_str(&out, "Connection: close\r\n");
    buf_append_str(&out, "\r\n");
    pconn_output_plain(c, buf_head(&out), out.len);
    buf_free(&out);
    c->head_sent = true;
    c->ttfb_ms = (int64_t)(time_real_ms() - c->req_started_ms);
    const struct proxy_hooks *h = proxy_hooks(c->p);
    if (c->obs && h->observe_response_head)
        h->observe_response_head(c->obs, c->resp_status, have_ctype ? ctype : NULL,
                                 have_cenc ? cenc : NULL);
}

/* Keeps c->resp_head a C string (the NUL is not counted in len) so the
 * request's event can carry the raw head. header_cb leaves a byte of room. */
static int head_terminate(struct pconn *c)
{
    uint8_t *room = buf_reserve(&c->resp_head, 1);
    if (!room)
        return -1;
    *room = '\0';
    return 0;
}

/* Appends one head line unless it would leave no room for the NUL. */
static int head_append(struct pconn *c, const char *data, size_t len)
{
    if (c->resp_head.len + len >= c->resp_head.max)
        return -1;
    if (buf_append(&c->resp_head, data, len) < 0)
        return -1;
    return head_terminate(c);
}

/* Status line and fields, one call per line; the blank line ends a head.
 * Interim (1xx) heads are skipped: we answered 100-continue ourselves. The
 * final head (status line included) stays in c->resp_head. */
static size_t header_cb(char *data, size_t size, size_t nitems, void *arg)
{
    struct pconn *c = arg;
    size_t len = size * nitems;
    if (c->head_sent)
        return len; /* trailers: dropped */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        buf_reset(&c->resp_head);
        const char *sp = memchr(data, ' ', len);
        c->resp_status = sp ? (int)strtol(sp + 1, NULL, 10) : 502;
        c->resp_chunked_up = false;
        return head_append(c, data, len) < 0 ? 0 : len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (c->resp_status >= 100 && c->resp_status < 200)
            return len;
        send_head(c);
        return len;
    }
    if (len > 18 && strncasecmp(data, "transfer-encoding:", 18) == 0)
        c->resp_chunked_up = true;
    if (head_append(c, data, len) < 0)
        return 0; /* head over 100 KiB: abort (upstream_protocol) */
    return len;
}

static size_t write_cb(char *data, size_t size, size_t nitems, void *arg)
{
    struct pconn *c = arg;
    size_t len = size * nitems;
    if (!c->head_sent)
        send_head(c);
    if (pconn_room(c) < len + 32) {
        c->resp_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (c->resp_no_body)
        return len;
    if (c->resp_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        pconn_output_plain(c, hdr, (size_t)n);
        pconn_output_plain(c, data, len);
        pconn_output_plain(c, "\r\n", 2);
    } else {
        pconn_output_plain(c, data, len);
    }
    c->bytes_down += len;
    /* Offered only once queued toward the guest: an observer never delays
     * or changes what the guest gets. */
    const struct proxy_hooks *h = proxy_hooks(c->p);
    if (c->obs && h->observe_response_body)
        h->observe_response_body(c->obs, (const uint8_t *)data, len);
    return len;
}

void pconn_upstream_resume(struct pconn *c)
{
    if (!c->easy || !c->resp_paused)
        return;
    c->resp_paused = false;
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
    curlev_kick(proxy_curl(c->p));
}

/* ---------- completion ---------- */

static const char *upstream_reason(CURLcode rc, int *status)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        *status = 502;
        return "upstream_dns";
    case CURLE_OPERATION_TIMEDOUT:
        *status = 504;
        return "upstream_timeout";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        *status = 502;
        return "upstream_tls";
    case CURLE_COULDNT_CONNECT:
        *status = 502;
        return "upstream_connect";
    default:
        *status = 502;
        return "upstream_protocol";
    }
}

static void done_cb(CURL *easy, CURLcode rc, void *arg)
{
    struct pconn *c = arg;
    long version = 0;
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    const char *hv = version == CURL_HTTP_VERSION_2_0 ? "2" : version == CURL_HTTP_VERSION_1_0 ? "1.0" : "1.1";
    if (rc != CURLE_OK) {
        char detail[CURL_ERROR_SIZE + 64];
        snprintf(detail, sizeof(detail), "%s: %s", curl_easy_strerror(rc), c->errbuf);
        int status;
        const char *reason = upstream_reason(rc, &status);
        if (!c->head_sent) {
            buf_reset(&c->resp_head); /* a partial upstream head is not the answer sent */
            pconn_reply(c, status, reason, c->dec.rule, detail);
            return;
        }
        proxy_record(c, c->tls ? "https" : "http", c->resp_status, "error", c->dec.rule,
                     "upstream_truncated", detail);
        pconn_close(c, false);
        return;
    }
    if (!c->head_sent)
        send_head(c);
    if (c->resp_chunked)
        pconn_output_plain(c, "0\r\n\r\n", 5);
    c->upstream_version = hv;
    proxy_record(c, c->tls ? "https" : "http", c->resp_status, "allowed", c->dec.rule,
                 c->dec.reason[0] ? c->dec.reason : NULL, NULL);
    pconn_request_done(c);
}

/* ---------- start ---------- */

/* An interpreted AI endpoint (network.md 6 step 10): the interpreter must
 * read the body, so it is asked for without compression. */
static bool is_interpreted(const struct pconn *c)
{
    char norm[sizeof(c->path) + 2];
    if (policy_path_normalize(c->path, strlen(c->path), norm, sizeof(norm)) < 0)
        return false;
    struct ai_endpoint ep;
    return ai_detect(c->host, c->method, norm, c->req.query, &ep);
}

/* The decision's credential substitution for a header, or NULL. */
static const char *subst_for(const struct pconn *c, const struct http1_header *h)
{
    for (size_t i = 0; i < c->dec.nsubst && i < PROXY_MAX_SUBST; i++) {
        const struct proxy_subst *s = &c->dec.subst[i];
        if (strlen(s->name) == h->name_len && strncasecmp(h->name, s->name, h->name_len) == 0)
            return s->value;
    }
    return NULL;
}

static void add_header(struct pconn *c, const char *name, const char *value)
{
    char line[20 * 1024];
    /* "Name:" would make curl drop the header; "Name;" sends it empty. */
    int n = *value ? snprintf(line, sizeof(line), "%s: %s", name, value)
                   : snprintf(line, sizeof(line), "%s;", name);
    if (n > 0 && (size_t)n < sizeof(line))
        c->up_headers = curl_slist_append(c->up_headers, line);
}

static void set_headers(struct pconn *c)
{
    const struct proxy_request *r = &c->req;
    bool identity = is_interpreted(c);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        if (is_hop(h->name, h->name_len))
            continue;
        if (identity && h->name_len == 15 && strncasecmp(h->name, "accept-encoding", 15) == 0)
            continue;
        const char *sub = subst_for(c, h);
        add_header(c, h->name, sub ? sub : h->value);
    }
    if (identity)
        c->up_headers = curl_slist_append(c->up_headers, "Accept-Encoding: identity");
    /* curl must not add what the guest did not send. */
    c->up_headers = curl_slist_append(c->up_headers, "Expect:");
    if (!http1_header_get(r->headers, r->nheaders, "accept"))
        c->up_headers = curl_slist_append(c->up_headers, "Accept:");
}

/* Substituted values come from the host's credential store; one with a
 * line break would forge header lines, so it fails the request. */
static int check_rewrites(const struct pconn *c, struct err **errp)
{
    for (size_t i = 0; i < c->dec.nsubst && i < PROXY_MAX_SUBST; i++) {
        const struct proxy_subst *s = &c->dec.subst[i];
        if (!s->name[0] || strpbrk(s->value, "\r\n") || strpbrk(s->name, "\r\n: \t"))
            return err_set(errp, EINVAL, "credential substitution for header '%s' is malformed",
                           s->name);
    }
    const char *t = c->dec.target_rewrite;
    if (t[0] && (t[0] != '/' || strpbrk(t, "\r\n \t")))
        return err_set(errp, EINVAL, "rewritten request target is malformed");
    return 0;
}

static void set_body(struct pconn *c, const struct http1_request *hr)
{
    if (hr->body == HTTP1_BODY_EMPTY && strcmp(c->method, "POST") != 0 &&
        strcmp(c->method, "PUT") != 0 && strcmp(c->method, "PATCH") != 0)
        return;
    curl_easy_setopt(c->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c->easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c->easy, CURLOPT_READDATA, c);
    curl_off_t size = hr->body == HTTP1_BODY_LENGTH ? (curl_off_t)hr->content_length
                      : hr->body == HTTP1_BODY_EMPTY ? 0
                                                      : -1;
    curl_easy_setopt(c->easy, CURLOPT_INFILESIZE_LARGE, size);
}

int pconn_upstream_start(struct pconn *c, struct err **errp)
{
    const struct http1_request *hr = http1_parser_request(c->parser);
    const struct proxy_limits *lim = proxy_limits(c->p);
    if (check_rewrites(c, errp) < 0)
        return -1;
    char url[16 * 1024];
    const char *path = hr->form == HTTP1_TARGET_ABSOLUTE ? strchr(strstr(c->target, "//") + 2, '/')
                                                         : c->target;
    if (c->dec.target_rewrite[0])
        path = c->dec.target_rewrite; /* a credential in the query (network.md 10) */
    int n = snprintf(url, sizeof(url), "%s://%s:%u%s", c->tls ? "https" : "http", c->host,
                     c->dst_port, path ? path : "/");
    if (n < 0 || (size_t)n >= sizeof(url))
        return err_set(errp, EMSGSIZE, "upstream URL too long");
    c->easy = curl_easy_init();
    if (!c->easy)
        return err_set(errp, ENOMEM, "cannot create an upstream transfer");
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* forwarded as received (section 6 step 6) */
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (strcmp(c->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    set_headers(c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->up_headers);
    set_body(c, hr);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, c->dec.upstream_proxy); /* "" = direct, never the env */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)lim->upstream_connect_s);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)lim->upstream_idle_s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->dec.dial[0]) {
        char connect_to[700];
        snprintf(connect_to, sizeof(connect_to), "%s:%u:%s", c->host, c->dst_port, c->dec.dial);
        c->up_connect = curl_slist_append(NULL, connect_to);
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->up_connect);
    }
    if (c->dec.ca_file[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, c->dec.ca_file);
    if (c->dec.resolve[0]) {
        c->up_resolve = curl_slist_append(NULL, c->dec.resolve);
        curl_easy_setopt(e, CURLOPT_RESOLVE, c->up_resolve);
    }
    c->body_paused = false;
    c->resp_paused = false;
    c->head_sent = false;
    c->resp_status = 0;
    return curlev_add(proxy_curl(c->p), e, done_cb, c, errp);
}

void pconn_upstream_free(struct pconn *c)
{
    if (c->easy) {
        curlev_remove(proxy_curl(c->p), c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    curl_slist_free_all(c->up_headers);
    curl_slist_free_all(c->up_resolve);
    curl_slist_free_all(c->up_connect);
    c->up_headers = c->up_resolve = c->up_connect = NULL;
}
