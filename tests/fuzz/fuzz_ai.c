/* AI traffic interpreters on peer-filled bytes (network.md section 12): the
 * request body a guest sends and the response body an upstream returns,
 * through the SSE parser, the JSON-array splitter and the four protocol
 * interpreters, with small caps so the limit paths run too.
 *
 * Input: byte 0 picks the endpoint and framing, byte 1 the chunk size; the
 * rest is "request \xff\xfe response" (no separator: all response). Checks
 * beyond "no crash": the result's byte count equals what was fed, tool call
 * indexes are 0..n-1, and capped previews stay within their cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ai/interp.h"

static const struct {
    const char *host, *path, *query;
} endpoints[] = {
    {"api.anthropic.com", "/v1/messages", NULL},
    {"api.openai.com", "/v1/chat/completions", NULL},
    {"api.openai.com", "/v1/responses", NULL},
    {"generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-pro:generateContent", NULL},
    {"generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
     NULL},
    {"generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
     "alt=sse"},
};

static const char *const ctypes[] = {NULL, "text/event-stream", "application/json",
                                     "application/json; charset=utf-8"};

#define CAP_PREVIEW 256
#define CAP_ARGS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t chunk = (size_t)data[1] % 64 + 1;
    data += 2;
    size -= 2;
    struct ai_endpoint ep;
    size_t ei = sel % (sizeof(endpoints) / sizeof(endpoints[0]));
    if (!ai_detect(endpoints[ei].host, "POST", endpoints[ei].path, endpoints[ei].query, &ep))
        abort(); /* the registry must know its own endpoints */
    const uint8_t *req_body = NULL, *resp = data;
    size_t req_len = 0, resp_len = size;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == 0xff && data[i + 1] == 0xfe) {
            req_body = data;
            req_len = i;
            resp = data + i + 2;
            resp_len = size - i - 2;
            break;
        }
    struct ai_request *req = NULL;
    if (req_body) {
        struct ai_request_opts ro = {.preview_max = CAP_PREVIEW, .log_content = sel & 0x40};
        if (ai_request_parse(&ep, req_body, req_len, &ro, &req, NULL) == 0 && req->system_preview &&
            strlen(req->system_preview) > CAP_PREVIEW + sizeof(AI_TRUNC_MARK))
            abort();
    }
    struct ai_response_opts o = {.log_content = sel & 0x80,
                                 .request_start_ms = 1000,
                                 .max_sse_line = 512,
                                 .max_sse_event = 2048,
                                 .max_element = 2048,
                                 .max_doc = 4096,
                                 .max_preview = CAP_PREVIEW,
                                 .max_arguments = CAP_ARGS};
    struct ai_response *r = ai_response_new(&ep, req, &o, NULL);
    if (!r) {
        ai_request_free(req);
        return 0;
    }
    ai_response_set_head(r, ctypes[(sel >> 3) % 4], (sel & 0x20) ? "gzip" : NULL);
    for (size_t off = 0; off < resp_len; off += chunk)
        ai_response_feed(r, resp + off, resp_len - off < chunk ? resp_len - off : chunk,
                         1000 + off);
    struct ai_result *res = NULL;
    if (ai_response_finish(r, 200, 5000, &res, NULL) == 0) {
        if (res->response_bytes != resp_len)
            abort();
        for (size_t i = 0; i < res->n_tool_calls; i++) {
            if (res->tool_calls[i].index != i)
                abort();
            if (res->tool_calls[i].arguments &&
                strlen(res->tool_calls[i].arguments) > CAP_ARGS + sizeof(AI_TRUNC_MARK))
                abort();
        }
        if (res->text && strlen(res->text) > CAP_PREVIEW + sizeof(AI_TRUNC_MARK))
            abort();
        ai_result_free(res);
    }
    ai_response_free(r);
    ai_request_free(req);
    return 0;
}
