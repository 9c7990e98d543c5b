/* AI interpreters on proxied requests (network.md section 12;
 * docs/ai-interpreters.md, "In the proxy"): an observer per request to an
 * interpreted endpoint keeps a bounded copy of the request body, parses it
 * when the response starts, feeds the response to the interpreter as it is
 * forwarded, and at the end writes one model_calls row and one tool_calls
 * row per tool call the model asked for. Tool results in a later request
 * move the earlier tool_calls row to `responded` (or `error`) through a
 * bounded per-VM map call id -> row id.
 *
 * Everything runs on the VM's event loop; rows go to the session.db queue,
 * which never blocks. Observers only read bytes the proxy already forwarded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ai/interp.h"
#include "ai/prices.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "policy/policy.h"
#include "proxy/proxy.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"
#include "vmm/vmproc_net_int.h"

/* Tool calls remembered for their results: the newest VP_AI_CALLS_MAX. */
#define VP_AI_CALLS_MAX    4096u
#define VP_AI_CALL_BUCKETS 8192u /* power of two */
#define VP_AI_NO_SLOT      UINT32_MAX

struct call_slot {
    char *key;              /* "<provider>\n<call id>" or "<provider>\nfn:<name>"; NULL = free */
    int64_t row_id;         /* tool_calls row */
    uint64_t requested_ms;  /* monotonic: when the response naming the call ended */
    uint32_t next;          /* next slot in the bucket chain */
};

struct vp_ai {
    struct ai_prices *prices; /* NULL: calls are recorded without cost */
    struct call_slot slots[VP_AI_CALLS_MAX];
    uint32_t buckets[VP_AI_CALL_BUCKETS];
    uint32_t next_slot; /* the oldest slot, overwritten next */
};

/* ---------- call id -> tool_calls row ---------- */

static uint32_t key_hash(const char *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h & (VP_AI_CALL_BUCKETS - 1);
}

static void slot_unlink(struct vp_ai *ai, uint32_t idx)
{
    struct call_slot *s = &ai->slots[idx];
    uint32_t *link = &ai->buckets[key_hash(s->key)];
    while (*link != VP_AI_NO_SLOT && *link != idx)
        link = &ai->slots[*link].next;
    if (*link == idx)
        *link = s->next;
    free(s->key);
    s->key = NULL;
    s->next = VP_AI_NO_SLOT;
}

static uint32_t calls_find(struct vp_ai *ai, const char *key)
{
    for (uint32_t i = ai->buckets[key_hash(key)]; i != VP_AI_NO_SLOT; i = ai->slots[i].next)
        if (strcmp(ai->slots[i].key, key) == 0)
            return i;
    return VP_AI_NO_SLOT;
}

/* Remembers key -> row (a repeated key points at the newest row); the
 * oldest entry makes room. */
static void calls_put(struct vp_ai *ai, const char *key, int64_t row_id, uint64_t now_ms)
{
    uint32_t old = calls_find(ai, key);
    if (old != VP_AI_NO_SLOT)
        slot_unlink(ai, old);
    char *k = strdup(key);
    if (!k)
        return;
    uint32_t idx = ai->next_slot;
    ai->next_slot = (ai->next_slot + 1) % VP_AI_CALLS_MAX;
    if (ai->slots[idx].key)
        slot_unlink(ai, idx);
    struct call_slot *s = &ai->slots[idx];
    s->key = k;
    s->row_id = row_id;
    s->requested_ms = now_ms;
    uint32_t b = key_hash(k);
    s->next = ai->buckets[b];
    ai->buckets[b] = idx;
}

/* Finds and forgets key: a result answers its call once. */
static bool calls_take(struct vp_ai *ai, const char *key, int64_t *row_id, uint64_t *requested_ms)
{
    uint32_t idx = calls_find(ai, key);
    if (idx == VP_AI_NO_SLOT)
        return false;
    *row_id = ai->slots[idx].row_id;
    *requested_ms = ai->slots[idx].requested_ms;
    slot_unlink(ai, idx);
    return true;
}

/* The map key of a call (id), or for providers without ids (Gemini) of a
 * function name. false when the call cannot be matched later. */
static bool call_key(char *out, size_t cap, const char *provider, const char *id,
                     const char *name)
{
    int n;
    if (id && *id)
        n = snprintf(out, cap, "%s\n%s", provider, id);
    else if (name && *name)
        n = snprintf(out, cap, "%s\nfn:%s", provider, name);
    else
        return false;
    return n > 0 && (size_t)n < cap;
}

/* ---------- the observer ---------- */

struct ai_obs {
    struct vmproc *vp;
    struct ai_endpoint ep;
    struct buf body;       /* request body copy, <= AI_MAX_REQUEST_BODY */
    bool body_lost;        /* over the cap or out of memory: not parsed */
    bool parsed;           /* the request was looked at (req may still be NULL) */
    struct ai_request *req;
    struct ai_response *resp;
    bool log_content;      /* network.log_model_content of the request's snapshot */
    bool sse;              /* the response head said text/event-stream */
    int upstream_status;   /* 0 until the response head */
    uint64_t start_ms;     /* monotonic, when the request was allowed */
    uint32_t pid;
    char process_name[65];
    char method[16];
    char *path;
};

static void obs_free(struct ai_obs *o)
{
    if (!o)
        return;
    buf_free(&o->body);
    ai_response_free(o->resp);
    ai_request_free(o->req);
    free(o->path);
    free(o);
}

/* s with host-held secrets and placeholders replaced by "[secret:<provider>]"
 * (network.md 11), in a new string; NULL for NULL or when out of memory
 * (never the unredacted text). */
static char *redacted(struct vmproc *vp, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    /* a token is shorter than 3 times the shortest secret it replaces */
    size_t cap = n * 3 + 64;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    creds_redact_text(vp->net ? vp->net->creds : NULL, s, n, out, cap);
    return out;
}

static bool log_model_content(struct vmproc *vp)
{
    if (!vp->net)
        return true; /* the spec's default */
    _cleanup_policy_ struct policy *p = vp_net_policy(vp);
    return policy_settings(p)->log_model_content;
}

static void *observe_start(void *ctx, const struct proxy_request *r,
                           const struct proxy_decision *d)
{
    (void)d;
    struct vmproc *vp = ctx;
    if (!vp->ai || !vp->sdb || !r->path)
        return NULL;
    size_t plen = strlen(r->path);
    _cleanup_free_ char *norm = malloc(plen + 2);
    if (!norm || policy_path_normalize(r->path, plen, norm, plen + 2) < 0)
        return NULL;
    struct ai_endpoint ep;
    if (!ai_detect(r->host, r->method, norm, r->query, &ep))
        return NULL;
    struct ai_obs *o = calloc(1, sizeof(*o));
    if (!o || !(o->path = strdup(r->path))) {
        log_warn("ai: out of memory; %s %s not interpreted", r->method, r->path);
        free(o);
        return NULL;
    }
    o->vp = vp;
    o->ep = ep;
    buf_init(&o->body, AI_MAX_REQUEST_BODY);
    o->log_content = log_model_content(vp);
    o->start_ms = time_mono_ms();
    o->pid = r->pid;
    str_copy(o->process_name, sizeof(o->process_name), r->comm ? r->comm : "");
    str_copy(o->method, sizeof(o->method), r->method);
    return o;
}

static void observe_request_body(void *obs, const uint8_t *p, size_t n)
{
    struct ai_obs *o = obs;
    if (o->parsed || o->body_lost)
        return;
    if (buf_append(&o->body, p, n) < 0) {
        log_warn("ai: %s request body over %u MiB; the call is recorded unparsed", o->path,
                 AI_MAX_REQUEST_BODY >> 20);
        o->body_lost = true;
        buf_free(&o->body);
    }
}

/* Tool results in this request answer calls recorded from earlier ones. */
static void apply_tool_results(struct ai_obs *o)
{
    struct vp_ai *ai = o->vp->ai;
    /* duration: from the response that asked to the request that answers */
    uint64_t now = o->start_ms;
    for (size_t i = 0; i < o->req->n_tool_results; i++) {
        const struct ai_tool_result *t = &o->req->tool_results[i];
        char key[2 * AI_MAX_ID + 32];
        /* By name only for a result new in this request: older turns repeat. */
        if (!t->call_id && !t->last_turn)
            continue;
        if (!call_key(key, sizeof(key), o->ep.provider, t->call_id, t->name))
            continue;
        int64_t row;
        uint64_t asked;
        if (!calls_take(ai, key, &row, &asked))
            continue;
        _cleanup_free_ char *preview = o->log_content ? redacted(o->vp, t->preview) : NULL;
        struct sdb_val v[] = {
            SDB_TEXT_V("status", t->is_error ? "error" : "responded"),
            SDB_TEXT_V("response_preview", preview),
            SDB_INT_V("duration_ms", now >= asked ? now - asked : 0),
        };
        session_db_update(o->vp->sdb, SDB_TOOL_CALLS, row, v, ARRAY_SIZE(v), NULL);
    }
}

static void parse_request(struct ai_obs *o)
{
    if (o->parsed)
        return;
    o->parsed = true;
    if (!o->body_lost) {
        struct ai_request_opts ropts = {.log_content = o->log_content};
        struct err *e = NULL;
        if (ai_request_parse(&o->ep, buf_head(&o->body), o->body.len, &ropts, &o->req, &e) < 0) {
            log_debug("ai: %s request not parsed: %s", o->path, err_msg(e));
            err_free(e);
            o->req = NULL;
        }
    }
    buf_free(&o->body);
    if (o->req)
        apply_tool_results(o);
}

/* The response interpreter, made once the request is complete (the
 * response head, or the end of the request when no head came). */
static struct ai_response *response_of(struct ai_obs *o)
{
    if (o->resp)
        return o->resp;
    parse_request(o);
    struct ai_response_opts opts = {.log_content = o->log_content,
                                    .request_start_ms = o->start_ms,
                                    .prices = o->vp->ai->prices};
    struct err *e = NULL;
    o->resp = ai_response_new(&o->ep, o->req, &opts, &e);
    if (!o->resp) {
        log_warn("ai: %s: %s", o->path, err_msg(e));
        err_free(e);
    }
    return o->resp;
}

static void observe_response_head(void *obs, int status, const char *content_type,
                                  const char *content_encoding)
{
    struct ai_obs *o = obs;
    o->upstream_status = status;
    o->sse = content_type && strncasecmp(content_type, "text/event-stream", 17) == 0;
    struct ai_response *r = response_of(o);
    if (r)
        ai_response_set_head(r, content_type, content_encoding);
}

static void observe_response_body(void *obs, const uint8_t *p, size_t n)
{
    struct ai_obs *o = obs;
    struct ai_response *r = response_of(o);
    if (r)
        ai_response_feed(r, p, n, time_mono_ms());
}

/* ---------- rows ---------- */

#define OPT_INT(col, v) ((v) == AI_NULL ? SDB_NULL_V(col) : SDB_INT_V(col, (v)))

static const char *model_name(const struct ai_obs *o, const struct ai_result *res)
{
    if (res && res->model)
        return res->model;
    if (o->req && o->req->model)
        return o->req->model;
    return o->ep.url_model[0] ? o->ep.url_model : NULL;
}

static int64_t write_model_call(struct ai_obs *o, const struct ai_result *res,
                                const struct proxy_event *ev, int64_t net_event_id)
{
    const struct ai_request *req = o->req;
    /* network.md 11: text and thinking only with log_model_content; the
     * system prompt preview is kept (docs/ai-interpreters.md). */
    bool content = o->log_content;
    _cleanup_free_ char *system = redacted(o->vp, req ? req->system_preview : NULL);
    _cleanup_free_ char *text = redacted(o->vp, content && res ? res->text : NULL);
    _cleanup_free_ char *thinking = redacted(o->vp, content && res ? res->thinking : NULL);
    struct sdb_val v[] = {
        net_event_id > 0 ? SDB_INT_V("net_event_id", net_event_id) : SDB_NULL_V("net_event_id"),
        SDB_TEXT_V("provider", o->ep.provider),
        SDB_TEXT_V("protocol", o->ep.protocol_name),
        SDB_TEXT_V("model", model_name(o, res)),
        SDB_TEXT_V("process_name", o->process_name[0] ? o->process_name : NULL),
        o->pid ? SDB_INT_V("pid", o->pid) : SDB_NULL_V("pid"),
        SDB_TEXT_V("method", o->method),
        SDB_TEXT_V("path", o->path),
        res ? SDB_INT_V("stream", res->stream) : req ? SDB_INT_V("stream", req->stream)
                                                     : SDB_NULL_V("stream"),
        o->upstream_status ? SDB_INT_V("status_code", o->upstream_status)
                           : SDB_NULL_V("status_code"),
        SDB_TEXT_V("message_id", res ? res->message_id : NULL),
        SDB_TEXT_V("system_prompt_preview", system),
        OPT_INT("messages_count", req ? req->messages_count : AI_NULL),
        req ? SDB_INT_V("tools_count", req->tools_count) : SDB_NULL_V("tools_count"),
        res ? SDB_INT_V("request_bytes", res->request_bytes)
            : SDB_INT_V("request_bytes", ev->bytes_sent),
        res ? SDB_INT_V("response_bytes", res->response_bytes)
            : SDB_INT_V("response_bytes", ev->bytes_received),
        OPT_INT("input_tokens", res ? res->input_tokens : AI_NULL),
        OPT_INT("output_tokens", res ? res->output_tokens : AI_NULL),
        OPT_INT("cache_read_tokens", res ? res->cache_read_tokens : AI_NULL),
        OPT_INT("cache_write_tokens", res ? res->cache_write_tokens : AI_NULL),
        OPT_INT("thinking_tokens", res ? res->thinking_tokens : AI_NULL),
        SDB_TEXT_V("stop_reason", res ? res->stop_reason : NULL),
        SDB_TEXT_V("text_content", text),
        SDB_TEXT_V("thinking_content", thinking),
        res && res->has_cost ? SDB_REAL_V("estimated_cost_usd", res->cost_usd)
                             : SDB_NULL_V("estimated_cost_usd"),
        SDB_TEXT_V("price_table_version", res ? res->price_table_version : NULL),
        OPT_INT("ttft_ms", res ? res->ttft_ms : AI_NULL),
        OPT_INT("duration_ms", res ? res->duration_ms : AI_NULL),
        SDB_TEXT_V("usage_details", res ? res->usage_details : NULL),
        SDB_TEXT_V("parse_status",
                   ai_parse_status_name(res ? res->parse_status : AI_PARSE_ERROR)),
    };
    struct err *e = NULL;
    int64_t id = session_db_insert(o->vp->sdb, SDB_MODEL_CALLS, (int64_t)ev->started_ms, v,
                                   ARRAY_SIZE(v), &e);
    if (id < 0) {
        log_error("ai: model_calls row: %s", err_msg(e));
        err_free(e);
        return 0;
    }
    return id;
}

/* "server" of "server__tool" for MCP-routed tools (local__x is server
 * "local"); NULL for native tools. */
static void server_of(const struct ai_tool_call *tc, char *out, size_t cap)
{
    out[0] = '\0';
    if (tc->origin == AI_ORIGIN_NATIVE || !tc->name)
        return;
    const char *sep = strstr(tc->name, "__");
    if (sep && (size_t)(sep - tc->name) < cap) {
        memcpy(out, tc->name, (size_t)(sep - tc->name));
        out[sep - tc->name] = '\0';
    }
}

static void write_tool_calls(struct ai_obs *o, const struct ai_result *res, int64_t model_call_id)
{
    struct vp_ai *ai = o->vp->ai;
    int64_t now_real = (int64_t)time_real_ms();
    uint64_t now = time_mono_ms();
    for (size_t i = 0; i < res->n_tool_calls; i++) {
        const struct ai_tool_call *tc = &res->tool_calls[i];
        char server[AI_MAX_ID];
        server_of(tc, server, sizeof(server));
        _cleanup_free_ char *arguments = redacted(o->vp, tc->arguments);
        struct sdb_val v[] = {
            model_call_id > 0 ? SDB_INT_V("model_call_id", model_call_id)
                              : SDB_NULL_V("model_call_id"),
            SDB_TEXT_V("provider", o->ep.provider),
            SDB_TEXT_V("status", "requested"),
            SDB_INT_V("call_index", tc->index),
            SDB_TEXT_V("call_id", tc->id),
            SDB_TEXT_V("tool_name", tc->name),
            SDB_TEXT_V("arguments", arguments),
            SDB_TEXT_V("origin", ai_tool_origin_name(tc->origin)),
            SDB_TEXT_V("transport", o->sse ? "sse" : "http"),
            SDB_TEXT_V("server_name", server[0] ? server : NULL),
            SDB_TEXT_V("process_name", o->process_name[0] ? o->process_name : NULL),
        };
        struct err *e = NULL;
        int64_t row = session_db_insert(o->vp->sdb, SDB_TOOL_CALLS, now_real, v, ARRAY_SIZE(v),
                                        &e);
        if (row < 0) {
            log_error("ai: tool_calls row: %s", err_msg(e));
            err_free(e);
            continue;
        }
        char key[2 * AI_MAX_ID + 32];
        if (row > 0 && call_key(key, sizeof(key), o->ep.provider, tc->id, tc->name))
            calls_put(ai, key, row, now);
    }
}

static void observe_finish(void *obs, const struct proxy_event *ev, int64_t net_event_id)
{
    struct ai_obs *o = obs;
    struct ai_result *res = NULL;
    struct ai_response *r = response_of(o);
    if (r) {
        struct err *e = NULL;
        if (ai_response_finish(r, o->upstream_status, time_mono_ms(), &res, &e) < 0) {
            log_warn("ai: %s: %s", o->path, err_msg(e));
            err_free(e);
            res = NULL;
        }
    }
    if (res && res->parse_status != AI_PARSE_OK)
        log_debug("ai: %s %s: parse %s: %s", o->ep.protocol_name, o->path,
                  ai_parse_status_name(res->parse_status),
                  res->parse_detail ? res->parse_detail : "-");
    int64_t id = write_model_call(o, res, ev, net_event_id);
    if (res)
        write_tool_calls(o, res, id);
    ai_result_free(res);
    obs_free(o);
}

/* ---------- setup ---------- */

/* $CAPSEM_HOME/prices.json over <share>/prices.json; a broken override
 * falls back to the bundled table, a missing bundled table to no prices. */
static struct ai_prices *load_prices(const struct vm_config *cfg)
{
    _cleanup_free_ char *bundled = cfg->share_dir ? paths_join(cfg->share_dir, "prices.json")
                                                  : NULL;
    _cleanup_free_ char *over = cfg->home ? paths_join(cfg->home, "prices.json") : NULL;
    struct ai_prices *p = NULL;
    struct err *e = NULL;
    if (!bundled) {
        log_warn("ai: no share directory: model calls are recorded without cost");
        return NULL;
    }
    if (ai_prices_load(bundled, over, &p, &e) == 0)
        return p;
    log_warn("ai: price table: %s", err_msg(e));
    err_free(e);
    e = NULL;
    if (over && ai_prices_load(bundled, NULL, &p, &e) == 0) {
        log_warn("ai: using the bundled price table only");
        return p;
    }
    if (e)
        log_warn("ai: bundled price table: %s; model calls are recorded without cost",
                 err_msg(e));
    err_free(e);
    return NULL;
}

int vp_ai_init(struct vmproc *vp, struct err **errp)
{
    struct vp_ai *ai = calloc(1, sizeof(*ai));
    if (!ai)
        return err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; i < VP_AI_CALL_BUCKETS; i++)
        ai->buckets[i] = VP_AI_NO_SLOT;
    for (size_t i = 0; i < VP_AI_CALLS_MAX; i++)
        ai->slots[i].next = VP_AI_NO_SLOT;
    ai->prices = load_prices(&vp->cfg);
    vp->ai = ai;
    if (ai->prices)
        log_info("ai: price table %s, %zu models", ai_prices_version(ai->prices),
                 ai_prices_count(ai->prices));
    return 0;
}

void vp_ai_hooks(struct vmproc *vp, struct proxy_hooks *h)
{
    (void)vp;
    h->observe_start = observe_start;
    h->observe_request_body = observe_request_body;
    h->observe_response_head = observe_response_head;
    h->observe_response_body = observe_response_body;
    h->observe_finish = observe_finish;
}

void vp_ai_free(struct vmproc *vp)
{
    struct vp_ai *ai = vp->ai;
    if (!ai)
        return;
    for (size_t i = 0; i < VP_AI_CALLS_MAX; i++)
        free(ai->slots[i].key);
    ai_prices_free(ai->prices);
    free(ai);
    vp->ai = NULL;
}
