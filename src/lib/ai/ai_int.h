/* Internals shared by the AI interpreter files (not a public header).
 *
 * interp.c owns the response state machine (framing, limits, parse status,
 * result building); anthropic.c, openai_chat.c, openai_responses.c and
 * gemini.c each provide one `struct ai_proto_ops` that turns parsed JSON
 * (requests, SSE events, array elements, whole documents) into calls on the
 * accumulators below; interp_util.c holds those accumulators and JSON
 * helpers. */
#ifndef CAPSEM_AI_INT_H
#define CAPSEM_AI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ai/interp.h"
#include "ai/jsonarr.h"
#include "ai/sse.h"
#include "base/buf.h"

/* ---- capped text accumulator ---- */

struct ai_text {
    struct buf b; /* max = cap */
    bool truncated;
};

void ai_text_init(struct ai_text *t, size_t cap);
void ai_text_free(struct ai_text *t);
/* Appends what fits; sets truncated when something did not. */
void ai_text_add(struct ai_text *t, const char *s, size_t n);
/* Heap string of the text, cut on a UTF-8 boundary and ending with
 * AI_TRUNC_MARK when truncated (total <= cap). NULL when empty and
 * !truncated, or on ENOMEM (*nomem set). */
char *ai_text_take(struct ai_text *t, bool *nomem);

/* Heap copy of s cut to at most max bytes on a UTF-8 boundary (no mark). */
char *ai_strndup_cap(const char *s, size_t len, size_t max);
/* Length of the longest prefix of [s, s+len) of at most max bytes that does
 * not split a UTF-8 sequence. */
size_t ai_utf8_cut(const char *s, size_t len, size_t max);

/* ---- JSON helpers: NULL / false for absent or wrongly typed fields ---- */

const char *ai_jstr(const json_t *obj, const char *key);
json_t *ai_jobj(const json_t *obj, const char *key);
json_t *ai_jarr(const json_t *obj, const char *key);
/* Non-negative integer field; false when absent, not an integer, or < 0. */
bool ai_jint(const json_t *obj, const char *key, int64_t *out);
bool ai_jtrue(const json_t *obj, const char *key);
/* First of two spellings (Gemini accepts camelCase and snake_case). */
json_t *ai_jget2(const json_t *obj, const char *k1, const char *k2);
/* Appends a JSON value's text: a string as is, an array as the "text" of
 * its elements (strings kept too), anything else compact JSON. */
void ai_text_add_json(struct ai_text *t, const json_t *v);

/* ---- request building (request.c / interp_util.c) ---- */

struct ai_req_build {
    struct ai_request *req;
    const struct ai_request_opts *opts;
    size_t preview_max;
    struct ai_text system;
    bool nomem;
    size_t cap_results; /* allocated tool_results */
    size_t cap_tools;
};

void ai_req_set_model(struct ai_req_build *b, const char *model);
void ai_req_add_tool(struct ai_req_build *b, const char *name);
/* content may be NULL; its preview is kept only with opts->log_content. */
void ai_req_add_result(struct ai_req_build *b, const char *call_id, const char *name,
                       const json_t *content, bool is_error, bool last_turn);
/* Adds a piece of system prompt (separated from earlier pieces by LF). */
void ai_req_add_system(struct ai_req_build *b, const json_t *v);

/* ---- response state ---- */

struct ai_call {
    int64_t key; /* protocol's slot: content block, tool index, output index */
    char *id;
    char *name;
    struct ai_text args;
    bool args_any;      /* a fragment was appended */
    char *args_default; /* used when no fragment arrives (Anthropic start input) */
};

enum ai_mode { AI_MODE_UNDECIDED = 0, AI_MODE_SSE, AI_MODE_ARRAY, AI_MODE_DOC, AI_MODE_OFF };

struct ai_proto_ops;

struct ai_response {
    struct ai_endpoint ep;
    const struct ai_proto_ops *ops;
    struct ai_response_opts opts;
    char *req_model;
    bool stream_expected;
    bool stream_known;
    uint64_t request_bytes;
    bool ct_sse;  /* Content-Type text/event-stream */
    bool ct_json; /* Content-Type */
    enum ai_mode mode;
    struct sse_parser sse;
    struct jsonarr arr;
    struct buf doc;
    bool doc_over;
    /* parse state */
    enum ai_parse_status status; /* first failure; OK while running */
    char *detail;
    bool stopped;
    bool complete; /* the terminal event (or whole document) was seen */
    bool nomem;
    uint64_t now_ms;
    uint64_t first_byte_ms;
    uint64_t first_token_ms;
    uint64_t bytes;
    /* result under construction */
    char *model;
    char *message_id;
    char *stop_reason;
    char *error_type;
    char *error_message;
    json_t *usage;
    struct ai_text text;
    struct ai_text thinking;
    struct ai_call *calls;
    size_t n_calls;
    int64_t pstate; /* protocol-private small state */
};

/* Stops interpretation with a status (the first one wins). */
void ai_fail(struct ai_response *r, enum ai_parse_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replaces *dst with a capped copy of s (NULL s leaves *dst alone). */
void ai_set(struct ai_response *r, char **dst, const char *s);
void ai_set_error(struct ai_response *r, const char *type, const char *message);
void ai_add_text(struct ai_response *r, const char *s);
void ai_add_thinking(struct ai_response *r, const char *s);
/* Records the first token time. */
void ai_token_seen(struct ai_response *r);
/* Finds the call with key, or creates it (NULL past AI_MAX_TOOL_CALLS, which
 * also stops the interpreter with `truncated`). */
struct ai_call *ai_call_get(struct ai_response *r, int64_t key, bool create);
void ai_call_args(struct ai_response *r, struct ai_call *c, const char *s, size_t n);
/* Sets the arguments from a JSON value (object -> compact JSON, string as is). */
void ai_call_args_json(struct ai_response *r, struct ai_call *c, const json_t *v);
/* Takes a copy of a usage object (replace) or merges its non-null members. */
void ai_usage_set(struct ai_response *r, const json_t *usage, bool merge);

/* result.c: moves the accumulated state into a new result. */
int ai_result_build(struct ai_response *r, int status_code, uint64_t now_ms,
                    struct ai_result **out, struct err **errp);

/* ---- protocol table ---- */

struct ai_proto_ops {
    /* Request body -> req fields. */
    void (*request)(struct ai_req_build *b, const json_t *root);
    /* One SSE event whose data parsed as JSON (data "[DONE]" is handled by
     * interp.c: it completes the stream). */
    void (*event)(struct ai_response *r, const char *name, const json_t *data);
    /* One element of a JSON-array body (NULL: arrays are malformed). */
    void (*element)(struct ai_response *r, const json_t *el);
    /* A whole non-streaming JSON document (object). */
    void (*doc)(struct ai_response *r, const json_t *root);
    /* Usage object -> token columns (called only when r->usage is set). */
    void (*tokens)(const json_t *usage, struct ai_result *res);
};

const struct ai_proto_ops *ai_ops_for(enum ai_protocol p);

extern const struct ai_proto_ops ai_anthropic_ops;
extern const struct ai_proto_ops ai_openai_chat_ops;
extern const struct ai_proto_ops ai_openai_responses_ops;
extern const struct ai_proto_ops ai_gemini_ops;

#endif
