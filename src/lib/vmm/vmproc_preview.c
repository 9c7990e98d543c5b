/* Body previews for net_events (network.md sections 10 and 11), and the
 * observer multiplexer that runs them next to the AI interpreters.
 *
 * With network.log_bodies on, an allowed request keeps the first
 * network.body_preview_bytes of each direction's body when that body is
 * textual (text/..., JSON, XML, form data, ...+json, ...+xml) and not
 * content-encoded. When the request ends the previews go, with every
 * host-held secret and placeholder replaced by "[secret:<provider>]", into
 * request_body_preview / response_body_preview of its net_events row.
 *
 * The proxy has one observer slot per request; vp_observers_hooks() fills it
 * with a pair (AI observer, preview observer) and forwards every call to
 * whichever of the two wanted the request. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "creds/creds.h"
#include "policy/policy.h"
#include "proxy/proxy.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"
#include "vmm/vmproc_net_int.h"

/* ---------- which bodies are previewed ---------- */

static bool media_is(const char *type, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(type, want, len) == 0;
}

static bool suffix_is(const char *type, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len > sl && strncasecmp(type + len - sl, suffix, sl) == 0;
}

bool vp_preview_textual(const char *content_type)
{
    if (!content_type)
        return false;
    const char *t = content_type;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t len = strcspn(t, ";");
    while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'))
        len--;
    if (len > 5 && strncasecmp(t, "text/", 5) == 0)
        return true;
    return media_is(t, len, "application/json") || media_is(t, len, "application/xml") ||
           media_is(t, len, "application/x-www-form-urlencoded") || suffix_is(t, len, "+json") ||
           suffix_is(t, len, "+xml");
}

bool vp_preview_identity(const char *content_encoding)
{
    if (!content_encoding)
        return true;
    const char *e = content_encoding;
    while (*e == ' ' || *e == '\t')
        e++;
    size_t len = strlen(e);
    while (len > 0 && (e[len - 1] == ' ' || e[len - 1] == '\t'))
        len--;
    return len == 0 || media_is(e, len, "identity");
}

/* The first value of header `name`, or NULL. */
static const char *header_value(const struct proxy_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ---------- the preview observer ---------- */

/* Bytes kept past the preview's end, so a placeholder the cut would split
 * is still recognized (and its token dropped whole). */
#define PREVIEW_LOOKAHEAD CREDS_PLACEHOLDER_MAX
#define SECRET_TOKEN      "[secret:"

struct preview_dir {
    bool wanted;   /* a textual, identity-encoded body */
    uint8_t *data; /* cap + PREVIEW_LOOKAHEAD bytes, allocated with the first body bytes */
    size_t len;
    bool lost; /* out of memory: no preview rather than a partial one */
};

struct preview_obs {
    struct vmproc *vp;
    size_t cap; /* body_preview_bytes of the request's snapshot */
    struct preview_dir req;
    struct preview_dir resp;
};

static void preview_free(struct preview_obs *o)
{
    if (!o)
        return;
    free(o->req.data);
    free(o->resp.data);
    free(o);
}

static void dir_feed(struct preview_dir *d, size_t preview_cap, const uint8_t *p, size_t n)
{
    size_t cap = preview_cap + PREVIEW_LOOKAHEAD;
    if (!d->wanted || d->lost || n == 0 || d->len == cap)
        return;
    if (!d->data && !(d->data = malloc(cap))) {
        log_warn("preview: out of memory; a body preview is dropped");
        d->lost = true;
        return;
    }
    size_t room = cap - d->len;
    size_t take = n < room ? n : room;
    memcpy(d->data + d->len, p, take);
    d->len += take;
}

static struct preview_obs *preview_start(struct vmproc *vp, const struct proxy_request *r)
{
    if (!vp->sdb || !vp->net)
        return NULL;
    _cleanup_policy_ struct policy *p = vp_net_policy(vp);
    const struct policy_settings *st = policy_settings(p);
    if (!st->log_bodies || st->body_preview_bytes <= 0)
        return NULL;
    size_t cap = (size_t)st->body_preview_bytes;
    if (cap > VP_PREVIEW_MAX)
        cap = VP_PREVIEW_MAX;
    struct preview_obs *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->vp = vp;
    o->cap = cap;
    o->req.wanted = vp_preview_textual(header_value(r, "Content-Type")) &&
                    vp_preview_identity(header_value(r, "Content-Encoding"));
    o->resp.wanted = true; /* until the response head says otherwise */
    return o;
}

static void preview_response_head(struct preview_obs *o, const char *content_type,
                                  const char *content_encoding)
{
    o->resp.wanted = vp_preview_textual(content_type) && vp_preview_identity(content_encoding);
}

/* The length of the first `limit` bytes of redacted text, shortened so no
 * replacement token is cut in two. */
static size_t cut_outside_token(const char *text, size_t len, size_t limit)
{
    if (len <= limit)
        return len;
    size_t tl = strlen(SECRET_TOKEN);
    /* a token is "[secret:" + a provider name + "]": under 32 bytes */
    size_t from = limit > 32 ? limit - 32 : 0;
    for (size_t i = limit; i-- > from;) {
        if (text[i] == ']')
            break; /* any token before here is closed before the cut */
        if (len - i >= tl && memcmp(text + i, SECRET_TOKEN, tl) == 0)
            return i; /* its ']' is at or past the cut */
    }
    return limit;
}

/* The redacted preview of one direction (at most cap bytes) as a BLOB. */
static struct sdb_val dir_value(struct vmproc *vp, const char *col, const struct preview_dir *d,
                                size_t preview_cap, char **owned)
{
    *owned = NULL;
    if (!d->wanted || d->lost || !d->data)
        return SDB_NULL_V(col);
    /* A replacement token may be longer than what it replaces (a secret
     * is >= CREDS_SECRET_MIN bytes, a token < 3 times that). */
    size_t cap = d->len * 3 + 64;
    char *out = malloc(cap);
    if (!out)
        return SDB_NULL_V(col); /* never the unredacted bytes */
    size_t n =
        creds_redact_text(vp->net ? vp->net->creds : NULL, (const char *)d->data, d->len, out, cap);
    *owned = out;
    return SDB_BLOB_V(col, out, cut_outside_token(out, n, preview_cap));
}

static void preview_finish(struct preview_obs *o, int64_t net_event_id)
{
    if (net_event_id > 0 && o->vp->sdb && (o->req.data || o->resp.data)) {
        char *req_text, *resp_text;
        struct sdb_val v[] = {
            dir_value(o->vp, "request_body_preview", &o->req, o->cap, &req_text),
            dir_value(o->vp, "response_body_preview", &o->resp, o->cap, &resp_text),
        };
        struct err *e = NULL;
        if (session_db_update(o->vp->sdb, SDB_NET_EVENTS, net_event_id, v, ARRAY_SIZE(v), &e) < 0) {
            log_error("preview: net_events row: %s", err_msg(e));
            err_free(e);
        }
        free(req_text);
        free(resp_text);
    }
    preview_free(o);
}

/* ---------- the multiplexer ---------- */

/* The AI observer's functions, as vp_ai_hooks() installs them. */
static struct proxy_hooks ai_inner;

struct obs_pair {
    void *ai;
    struct preview_obs *preview;
};

static void *pair_start(void *ctx, const struct proxy_request *r, const struct proxy_decision *d)
{
    /* allocated first: nothing is started that could not be ended */
    struct obs_pair *pair = calloc(1, sizeof(*pair));
    if (!pair) {
        log_warn("observers: out of memory; %s %s not observed", r->method, r->path);
        return NULL;
    }
    pair->ai = ai_inner.observe_start ? ai_inner.observe_start(ctx, r, d) : NULL;
    pair->preview = preview_start(ctx, r);
    if (!pair->ai && !pair->preview) {
        free(pair);
        return NULL;
    }
    return pair;
}

static void pair_request_body(void *obs, const uint8_t *p, size_t n)
{
    struct obs_pair *pair = obs;
    if (pair->ai && ai_inner.observe_request_body)
        ai_inner.observe_request_body(pair->ai, p, n);
    if (pair->preview)
        dir_feed(&pair->preview->req, pair->preview->cap, p, n);
}

static void pair_response_head(void *obs, int status, const char *content_type,
                               const char *content_encoding)
{
    struct obs_pair *pair = obs;
    if (pair->ai && ai_inner.observe_response_head)
        ai_inner.observe_response_head(pair->ai, status, content_type, content_encoding);
    if (pair->preview)
        preview_response_head(pair->preview, content_type, content_encoding);
}

static void pair_response_body(void *obs, const uint8_t *p, size_t n)
{
    struct obs_pair *pair = obs;
    if (pair->ai && ai_inner.observe_response_body)
        ai_inner.observe_response_body(pair->ai, p, n);
    if (pair->preview)
        dir_feed(&pair->preview->resp, pair->preview->cap, p, n);
}

static void pair_finish(void *obs, const struct proxy_event *ev, int64_t net_event_id)
{
    struct obs_pair *pair = obs;
    if (pair->ai && ai_inner.observe_finish)
        ai_inner.observe_finish(pair->ai, ev, net_event_id);
    if (pair->preview)
        preview_finish(pair->preview, net_event_id);
    free(pair);
}

void vp_observers_hooks(struct vmproc *vp, struct proxy_hooks *h)
{
    struct proxy_hooks scratch = {0};
    vp_ai_hooks(vp, &scratch);
    ai_inner = scratch;
    h->observe_start = pair_start;
    h->observe_request_body = pair_request_body;
    h->observe_response_head = pair_response_head;
    h->observe_response_body = pair_response_body;
    h->observe_finish = pair_finish;
}
