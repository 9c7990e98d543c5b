/* HTTP/1.1 + JSON client for capsem-service over its UNIX socket; see
 * client.h. */
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/sockpath.h"
#include "base/util.h"

struct cli_client {
    CURL *curl;
    char *socket;                 /* logical path, as users see it */
    char real[SOCKPATH_MAX + 64]; /* what we connect to (mapped when long) */
    size_t max_response;
    struct buf body; /* answer being received */
    char curl_err[CURL_ERROR_SIZE];
    volatile sig_atomic_t *abort_flag; /* see cli_client_set_abort() */
};

struct cli_client *cli_client_new(const char *socket_path, size_t max_response, struct err **errp)
{
    struct cli_client *c = calloc(1, sizeof(*c));
    if (!c) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    c->max_response = max_response;
    buf_init(&c->body, max_response);
    c->socket = strdup(socket_path);
    c->curl = curl_easy_init();
    if (!c->socket || !c->curl) {
        err_set(errp, ENOMEM, "cannot set up the HTTP client");
        cli_client_free(c);
        return NULL;
    }
    if (sockpath_resolve(socket_path, c->real, sizeof(c->real), errp) < 0) {
        err_prefix(errp, "service socket %s", socket_path);
        cli_client_free(c);
        return NULL;
    }
    return c;
}

void cli_client_free(struct cli_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    buf_free(&c->body);
    free(c->socket);
    free(c);
}

const char *cli_client_socket(const struct cli_client *c)
{
    return c->socket;
}

void cli_client_set_abort(struct cli_client *c, volatile sig_atomic_t *flag)
{
    c->abort_flag = flag;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const struct cli_client *c = ctx;
    return c->abort_flag && *c->abort_flag ? 1 : 0;
}

bool cli_err_is_not_running(const struct err *e)
{
    return e && e->status == 0 && (e->code == ENOENT || e->code == ECONNREFUSED);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct cli_client *c = ctx;
    if (buf_append(&c->body, data, size * n) < 0)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    return size * n;
}

static int transport_error(struct cli_client *c, CURLcode rc, long timeout, struct err **errp)
{
    long os_errno = 0;
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        if (os_errno == 0)
            os_errno = ECONNREFUSED;
        return err_set(errp, (int)os_errno, "cannot connect to capsem-service at %s: %s", c->socket,
                       strerror((int)os_errno));
    case CURLE_OPERATION_TIMEDOUT:
        return err_set(errp, ETIMEDOUT, "capsem-service at %s did not answer within %ld s",
                       c->socket, timeout ? timeout : (long)CLI_CONNECT_TIMEOUT);
    case CURLE_ABORTED_BY_CALLBACK:
        return err_set(errp, EINTR, "interrupted");
    case CURLE_WRITE_ERROR:
        return err_set(errp, EMSGSIZE, "answer from capsem-service larger than %zu bytes",
                       c->max_response);
    default:
        return err_set(errp, EIO, "talking to capsem-service at %s: %s", c->socket,
                       c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
    }
}

struct request {
    const char *method;
    const char *path;
    const char *content_type; /* NULL: no body */
    const void *data;
    size_t len;
    long timeout;
};

static bool method_has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

static int setup_request(struct cli_client *c, const struct request *rq, struct curl_slist *hdrs)
{
    char url[8192];
    if (snprintf(url, sizeof(url), "http://localhost%s", rq->path) >= (int)sizeof(url))
        return -1;
    CURL *h = c->curl;
    curl_easy_reset(h);
    c->curl_err[0] = '\0';
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->real) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CLI_CONNECT_TIMEOUT) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT, rq->timeout) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, c) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "capsem/" CAPSEM_VERSION) != CURLE_OK;
    if (c->abort_flag) {
        bad |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, c) != CURLE_OK;
    }
    const void *data = rq->data;
    if (!data && method_has_body(rq->method))
        data = ""; /* Content-Length: 0 rather than no length at all */
    if (data) {
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, data) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len) != CURLE_OK;
    } else if (strcmp(rq->method, "GET") == 0) {
        bad |= curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

/* Turns a 4xx/5xx answer into an error carrying the service's message. */
static int status_error(struct cli_client *c, long status, const char *method, const char *path,
                        struct err **errp)
{
    json_t *j = json_loadb((const char *)buf_head(&c->body), c->body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (msg)
        err_status(errp, (int)status, "%s", msg);
    else if (status == 404 || status == 405)
        err_status(errp, (int)status,
                   "capsem-service does not support %s %s (HTTP %ld); is it older than this CLI?",
                   method, path, status);
    else
        err_status(errp, (int)status, "capsem-service answered HTTP %ld to %s %s", status, method,
                   path);
    json_decref(j);
    return -1;
}

static int parse_answer(struct cli_client *c, json_t **out, struct err **errp)
{
    if (!out)
        return 0;
    if (c->body.len == 0) {
        *out = json_null();
        return 0;
    }
    json_error_t jerr;
    *out = json_loadb((const char *)buf_head(&c->body), c->body.len, JSON_ALLOW_NUL, &jerr);
    if (!*out)
        return err_set(errp, EPROTO, "capsem-service sent invalid JSON: %s", jerr.text);
    return 0;
}

/* Sends rq; on 2xx the answer is left in c->body for the caller. */
static int perform(struct cli_client *c, const struct request *rq, struct err **errp)
{
    char ctype[128];
    struct curl_slist *hdrs = NULL;
    if (rq->content_type) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", rq->content_type);
        hdrs = curl_slist_append(hdrs, ctype);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    buf_reset(&c->body);
    int rc = -1;
    if (!hdrs || setup_request(c, rq, hdrs) < 0) {
        err_set(errp, ENOMEM, "cannot set up the request %s %s", rq->method, rq->path);
        goto out;
    }
    CURLcode cr = curl_easy_perform(c->curl);
    if (cr != CURLE_OK) {
        transport_error(c, cr, rq->timeout, errp);
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400 || status < 200)
        status_error(c, status, rq->method, rq->path, errp);
    else
        rc = 0;
out:
    curl_slist_free_all(hdrs);
    if (rc < 0)
        buf_reset(&c->body);
    return rc;
}

int cli_client_call(struct cli_client *c, const char *method, const char *path, const json_t *body,
                    long timeout_secs, json_t **out, struct err **errp)
{
    _cleanup_free_ char *payload = NULL;
    if (body && !(payload = json_dumps(body, JSON_COMPACT)))
        return err_set(errp, ENOMEM, "cannot encode the request");
    struct request rq = {method,
                         path,
                         payload ? "application/json" : NULL,
                         payload,
                         payload ? strlen(payload) : 0,
                         timeout_secs};
    if (perform(c, &rq, errp) < 0)
        return -1;
    int rc = parse_answer(c, out, errp);
    buf_reset(&c->body);
    return rc;
}

int cli_client_raw(struct cli_client *c, const char *method, const char *path, const void *data,
                   size_t len, long timeout_secs, char **out, size_t *out_len, struct err **errp)
{
    struct request rq = {method, path, data ? "application/octet-stream" : NULL,
                         data,   len,  timeout_secs};
    if (perform(c, &rq, errp) < 0)
        return -1;
    *out_len = c->body.len;
    *out = buf_steal_str(&c->body);
    buf_reset(&c->body);
    if (!*out)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

static bool bad_ref(const char *ref)
{
    return !*ref || strchr(ref, '/') || strchr(ref, '\\') || strstr(ref, "..");
}

/* Percent-encodes everything but unreserved characters (RFC 3986). */
static int append_escaped(struct buf *b, const char *s)
{
    int rc = 0;
    for (const char *p = s; rc == 0 && *p; p++) {
        unsigned char ch = (unsigned char)*p;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~';
        rc = plain ? buf_append(b, p, 1) : buf_printf(b, "%%%02X", ch);
    }
    return rc;
}

char *cli_ref_path(const char *prefix, const char *ref, const char *suffix, const char *what,
                   struct err **errp)
{
    if (bad_ref(ref)) {
        err_status(errp, 400, "invalid %s: %s", what, ref);
        return NULL;
    }
    struct buf b;
    buf_init(&b, 64 * 1024);
    int rc = buf_append_str(&b, prefix);
    if (rc == 0)
        rc = append_escaped(&b, ref);
    if (rc == 0)
        rc = buf_append_str(&b, suffix);
    char *s = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    if (!s)
        err_set(errp, ENOMEM, "out of memory");
    return s;
}

char *cli_vm_path(const char *ref, const char *suffix, struct err **errp)
{
    return cli_ref_path("/vms/", ref, suffix, "VM reference", errp);
}

char *cli_image_path(const char *name, const char *suffix, struct err **errp)
{
    return cli_ref_path("/images/", name, suffix, "image name", errp);
}

char *cli_path_query(const char *path, const char *const *kv, size_t n)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    int rc = buf_append_str(&b, path);
    size_t added = 0;
    for (size_t i = 0; rc == 0 && i + 1 < n * 2; i += 2) {
        if (!kv[i + 1])
            continue;
        rc = buf_printf(&b, "%c%s=", added++ ? '&' : (strchr(path, '?') ? '&' : '?'), kv[i]);
        if (rc == 0)
            rc = append_escaped(&b, kv[i + 1]);
    }
    char *s = rc == 0 ? buf_steal_str(&b) : NULL;
    buf_free(&b);
    return s;
}
