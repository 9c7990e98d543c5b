/* Response interpretation: framing choice, incremental parsing under the
 * section 14 caps, parse status and the final result (interp.h). */
#include "ai/ai_int.h"
#include "ai/prices.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t or_default(size_t v, size_t def)
{
    return v ? v : def;
}

struct ai_response *ai_response_new(const struct ai_endpoint *ep, const struct ai_request *req,
                                    const struct ai_response_opts *opts, struct err **errp)
{
    const struct ai_proto_ops *ops = ai_ops_for(ep->protocol);
    if (!ops) {
        err_status(errp, 400, "not an AI endpoint");
        return NULL;
    }
    struct ai_response *r = calloc(1, sizeof(*r));
    if (!r) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    r->ep = *ep;
    r->ops = ops;
    if (opts)
        r->opts = *opts;
    struct ai_response_opts *o = &r->opts;
    o->max_sse_line = or_default(o->max_sse_line, SSE_MAX_LINE);
    o->max_sse_event = or_default(o->max_sse_event, SSE_MAX_EVENT);
    o->max_element = or_default(o->max_element, JSONARR_MAX_ELEMENT);
    o->max_doc = or_default(o->max_doc, AI_MAX_RESPONSE_DOC);
    o->max_preview = or_default(o->max_preview, AI_MAX_PREVIEW);
    o->max_arguments = or_default(o->max_arguments, AI_MAX_ARGUMENTS);
    sse_init(&r->sse, o->max_sse_line, o->max_sse_event);
    jsonarr_init(&r->arr, o->max_element);
    buf_init(&r->doc, o->max_doc);
    ai_text_init(&r->text, o->max_preview);
    ai_text_init(&r->thinking, o->max_preview);
    if (ep->protocol == AI_PROTO_GEMINI) {
        r->stream_expected = ep->url_stream;
        r->stream_known = true;
    } else if (req) {
        r->stream_expected = req->stream;
        r->stream_known = true;
    }
    if (req) {
        r->request_bytes = req->bytes;
        if (req->model && !(r->req_model = strdup(req->model))) {
            ai_response_free(r);
            err_set(errp, ENOMEM, "out of memory");
            return NULL;
        }
    }
    return r;
}

void ai_response_free(struct ai_response *r)
{
    if (!r)
        return;
    sse_free(&r->sse);
    jsonarr_free(&r->arr);
    buf_free(&r->doc);
    ai_text_free(&r->text);
    ai_text_free(&r->thinking);
    for (size_t i = 0; i < r->n_calls; i++) {
        free(r->calls[i].id);
        free(r->calls[i].name);
        free(r->calls[i].args_default);
        ai_text_free(&r->calls[i].args);
    }
    free(r->calls);
    json_decref(r->usage);
    free(r->req_model);
    free(r->detail);
    free(r->model);
    free(r->message_id);
    free(r->stop_reason);
    free(r->error_type);
    free(r->error_message);
    free(r);
}

static bool ct_is(const char *ct, const char *type)
{
    while (ct && (*ct == ' ' || *ct == '\t'))
        ct++;
    return ct && strncasecmp(ct, type, strlen(type)) == 0;
}

void ai_response_set_head(struct ai_response *r, const char *content_type,
                          const char *content_encoding)
{
    r->ct_sse = ct_is(content_type, "text/event-stream");
    r->ct_json = content_type && !r->ct_sse && strcasestr(content_type, "json") != NULL;
    if (content_encoding && *content_encoding && strcasecmp(content_encoding, "identity") != 0) {
        ai_fail(r, AI_PARSE_ERROR, "response body is %.32s-encoded", content_encoding);
        r->mode = AI_MODE_OFF;
    }
}

/* ---- framing callbacks ---- */

static json_t *load_json(struct ai_response *r, const char *what, const char *s, size_t n)
{
    json_error_t jerr;
    json_t *root = json_loadb(s, n, 0, &jerr);
    if (!root)
        ai_fail(r, AI_PARSE_ERROR, "%s: invalid JSON: %s", what, jerr.text);
    return root;
}

static int on_sse_event(void *ctx, const struct sse_event *ev)
{
    struct ai_response *r = ctx;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
        r->complete = true;
        return 0;
    }
    if (ev->data_len == 0)
        return 0;
    json_t *root = load_json(r, "SSE event", ev->data, ev->data_len);
    if (!root)
        return 1;
    if (json_is_object(root))
        r->ops->event(r, ev->event, root);
    else
        ai_fail(r, AI_PARSE_ERROR, "SSE event data is not a JSON object");
    json_decref(root);
    return r->stopped || r->nomem ? 1 : 0;
}

static void element(struct ai_response *r, const json_t *el)
{
    if (!r->ops->element)
        ai_fail(r, AI_PARSE_ERROR, "unexpected JSON array body");
    else if (!json_is_object(el))
        ai_fail(r, AI_PARSE_ERROR, "JSON array element is not an object");
    else
        r->ops->element(r, el);
}

static int on_element(void *ctx, const char *s, size_t n)
{
    struct ai_response *r = ctx;
    json_t *root = load_json(r, "JSON array element", s, n);
    if (!root)
        return 1;
    element(r, root);
    json_decref(root);
    return r->stopped || r->nomem ? 1 : 0;
}

/* Picks the framing from the head and the first non-blank byte; returns
 * the number of leading blank bytes skipped (all of them when undecided). */
static size_t decide_mode(struct ai_response *r, const uint8_t *s, size_t n)
{
    if (r->ct_sse) {
        r->mode = AI_MODE_SSE;
        return 0;
    }
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i == n)
        return n;
    if (s[i] == '[')
        r->mode = AI_MODE_ARRAY;
    else if (s[i] == '{' || r->ct_json || (r->stream_known && !r->stream_expected))
        r->mode = AI_MODE_DOC;
    else
        r->mode = AI_MODE_SSE;
    return i;
}

static void feed_framed(struct ai_response *r, const uint8_t *s, size_t n)
{
    switch (r->mode) {
    case AI_MODE_SSE: {
        enum sse_status st = sse_feed(&r->sse, s, n, on_sse_event, r);
        if (st == SSE_ERR_LINE || st == SSE_ERR_EVENT)
            ai_fail(r, AI_PARSE_TRUNCATED, "%s", sse_status_str(st));
        else if (st == SSE_ERR_NOMEM)
            r->nomem = true;
        break;
    }
    case AI_MODE_ARRAY: {
        enum jsonarr_status st = jsonarr_feed(&r->arr, s, n, on_element, r);
        if (st == JSONARR_ERR_SIZE)
            ai_fail(r, AI_PARSE_TRUNCATED, "%s", jsonarr_status_str(st));
        else if (st == JSONARR_ERR_SYNTAX)
            ai_fail(r, AI_PARSE_ERROR, "%s", jsonarr_status_str(st));
        else if (st == JSONARR_ERR_NOMEM)
            r->nomem = true;
        break;
    }
    case AI_MODE_DOC:
        if (buf_append(&r->doc, s, n) < 0) {
            if (errno == EMSGSIZE)
                ai_fail(r, AI_PARSE_TRUNCATED, "response body over %zu bytes", r->opts.max_doc);
            else
                r->nomem = true;
        }
        break;
    default:
        break;
    }
}

void ai_response_feed(struct ai_response *r, const void *bytes, size_t len, uint64_t now_ms)
{
    if (!r || len == 0)
        return;
    r->bytes += len;
    r->now_ms = now_ms;
    if (r->first_byte_ms == 0)
        r->first_byte_ms = now_ms ? now_ms : 1;
    if (r->stopped || r->nomem || r->mode == AI_MODE_OFF)
        return;
    const uint8_t *s = bytes;
    if (r->mode == AI_MODE_UNDECIDED) {
        size_t skip = decide_mode(r, s, len);
        s += skip;
        len -= skip;
        if (len == 0)
            return;
    }
    feed_framed(r, s, len);
}

/* ---- finish ---- */

static void finish_doc(struct ai_response *r)
{
    if (r->doc.len == 0)
        return;
    r->now_ms = r->first_byte_ms; /* the whole answer arrived with its first byte */
    json_t *root = load_json(r, "response body", (const char *)buf_head(&r->doc), r->doc.len);
    if (!root)
        return;
    if (json_is_array(root)) {
        size_t i;
        json_t *el;
        json_array_foreach(root, i, el)
        {
            if (r->stopped)
                break;
            element(r, el);
        }
    } else {
        r->ops->doc(r, root);
    }
    if (!r->stopped)
        r->complete = true;
    json_decref(root);
}

static void final_status(struct ai_response *r, int status_code)
{
    if (r->stopped)
        return;
    bool ok2xx = status_code >= 200 && status_code < 300;
    if (r->nomem)
        ai_fail(r, AI_PARSE_ERROR, "out of memory");
    else if (status_code == 0)
        ai_fail(r, AI_PARSE_TRUNCATED, "no response from upstream");
    else if (ok2xx && !r->complete)
        ai_fail(r, AI_PARSE_TRUNCATED, "response ended before its final event");
    else if (ok2xx && !r->usage && !r->error_type) /* an error report has no usage */
        ai_fail(r, AI_PARSE_USAGE_MISSING, "no usage reported");
}

int ai_response_finish(struct ai_response *r, int status_code, uint64_t now_ms,
                       struct ai_result **out, struct err **errp)
{
    *out = NULL;
    if (r->mode == AI_MODE_DOC && !r->stopped && !r->nomem)
        finish_doc(r);
    else if (r->mode == AI_MODE_ARRAY && !r->stopped)
        r->complete = jsonarr_done(&r->arr);
    r->now_ms = now_ms;
    final_status(r, status_code);
    return ai_result_build(r, status_code, now_ms, out, errp);
}
