/* Service <-> capsem-process IPC over a UNIX stream socket.
 * Frame: u32 total length | u32 JSON length | JSON object | binary tail.
 * The JSON may carry "blobs":[n1, n2, ...] describing how the binary tail
 * splits into byte strings (file contents, exec stdout/stderr), so bulk data
 * never goes through base64. Frames are capped at IPC_MAX_FRAME.
 *
 * Requests:  {"id":N, "op":"...", ...}
 * Responses: {"id":N, "ok":true, ...} or {"id":N, "ok":false, "status":S, "error":"..."}
 * Events:    {"event":"...", ...} (no id)
 * Operations are listed in docs/ipc.md. */
#ifndef CAPSEM_IPC_H
#define CAPSEM_IPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define IPC_MAX_FRAME (96u * 1024u * 1024u)
#define IPC_MAX_JSON (1024u * 1024u)
#define IPC_HEADER_LEN 8u

struct ipc_blob {
    const uint8_t *data;
    size_t len;
};

/* Appends one frame to out. blobs may be NULL when nblobs == 0; when
 * nblobs > 0 the JSON gets a "blobs" array (the object is modified). */
int ipc_encode(struct buf *out, json_t *msg, const struct ipc_blob *blobs, size_t nblobs,
               struct err **errp);

/* Decoder state: feed bytes, pull frames. */
struct ipc_frame {
    json_t *msg;            /* owned by the caller after ipc_decode_next() */
    struct ipc_blob blobs[8];
    size_t nblobs;
    uint8_t *storage;       /* owns the blob bytes; free with ipc_frame_clear */
};

/* Checks a complete frame at the head of `in`: 1 = frame decoded and
 * consumed; 0 = need more bytes; -1 = protocol violation (close the peer). */
int ipc_decode_next(struct buf *in, struct ipc_frame *f, struct err **errp);
void ipc_frame_clear(struct ipc_frame *f);

/* Blocking helpers for one-shot clients (CLI tools, tests): send a request
 * and wait for the response with the same id, skipping events. */
int ipc_call(int fd, json_t *req, const struct ipc_blob *blobs, size_t nblobs,
             struct ipc_frame *resp, int timeout_ms, struct err **errp);

/* The string value of obj[field] when it is one of allowed[0..n) (returns
 * that static entry); def when the field is absent or null (def may be NULL:
 * then absent is an error); else NULL with a 400 "field must be one of: ..."
 * in errp. For request bodies on both sides of the API. */
const char *ipc_json_enum(json_t *obj, const char *field, const char *const *allowed, size_t n,
                          const char *def, struct err **errp);

#endif
