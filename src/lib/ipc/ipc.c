#include "ipc/ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "proto/wire.h"

int ipc_encode(struct buf *out, json_t *msg, const struct ipc_blob *blobs, size_t nblobs,
               struct err **errp)
{
    size_t tail = 0;
    if (nblobs > 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nblobs; i++) {
            json_array_append_new(arr, json_integer((json_int_t)blobs[i].len));
            tail += blobs[i].len;
        }
        json_object_set_new(msg, "blobs", arr);
    }
    _cleanup_free_ char *js = json_dumps(msg, JSON_COMPACT);
    if (!js)
        return err_set(errp, ENOMEM, "cannot encode IPC message");
    size_t jlen = strlen(js);
    size_t total = 4 + jlen + tail;
    if (jlen > IPC_MAX_JSON || total > IPC_MAX_FRAME)
        return err_status(errp, 413, "IPC message too large (%zu bytes)", total);
    uint8_t h[IPC_HEADER_LEN];
    wire_put_u32(h, (uint32_t)total);
    wire_put_u32(h + 4, (uint32_t)jlen);
    if (buf_append(out, h, sizeof(h)) < 0 || buf_append(out, js, jlen) < 0)
        return err_set(errp, ENOBUFS, "IPC output buffer full");
    for (size_t i = 0; i < nblobs; i++)
        if (blobs[i].len && buf_append(out, blobs[i].data, blobs[i].len) < 0)
            return err_set(errp, ENOBUFS, "IPC output buffer full");
    return 0;
}

void ipc_frame_clear(struct ipc_frame *f)
{
    if (f->msg)
        json_decref(f->msg);
    free(f->storage);
    memset(f, 0, sizeof(*f));
}

static int split_blobs(struct ipc_frame *f, size_t tail, struct err **errp)
{
    json_t *arr = json_object_get(f->msg, "blobs");
    size_t want = 0, off = 0;
    if (arr && !json_is_array(arr))
        return err_set(errp, EPROTO, "IPC blobs is not an array");
    if (arr && json_array_size(arr) > ARRAY_SIZE(f->blobs))
        return err_set(errp, EPROTO, "too many IPC blobs");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return err_set(errp, EPROTO, "bad IPC blob length");
        size_t n = (size_t)json_integer_value(v);
        if (n > tail - want)
            return err_set(errp, EPROTO, "IPC blob lengths exceed the frame");
        want += n;
        f->blobs[i].data = f->storage + off;
        f->blobs[i].len = n;
        off += n;
        f->nblobs = i + 1;
    }
    if (want != tail)
        return err_set(errp, EPROTO, "IPC frame tail does not match its blobs");
    return 0;
}

int ipc_decode_next(struct buf *in, struct ipc_frame *f, struct err **errp)
{
    memset(f, 0, sizeof(*f));
    if (in->len < IPC_HEADER_LEN)
        return 0;
    const uint8_t *h = buf_head(in);
    uint32_t total = wire_get_u32(h);
    uint32_t jlen = wire_get_u32(h + 4);
    if (total > IPC_MAX_FRAME || jlen > IPC_MAX_JSON || total < 4 || jlen > total - 4)
        return err_set(errp, EPROTO, "bad IPC frame header (total %u, json %u)", total, jlen);
    if (in->len < 4 + (size_t)total)
        return 0;
    json_error_t jerr;
    f->msg = json_loadb((const char *)h + IPC_HEADER_LEN, jlen, JSON_REJECT_DUPLICATES, &jerr);
    size_t tail = total - 4 - jlen;
    if (!f->msg || !json_is_object(f->msg)) {
        ipc_frame_clear(f);
        return err_set(errp, EPROTO, "bad IPC JSON: %s", jerr.text);
    }
    if (tail > 0) {
        f->storage = malloc(tail);
        if (!f->storage) {
            ipc_frame_clear(f);
            return err_set(errp, ENOMEM, "out of memory");
        }
        memcpy(f->storage, h + IPC_HEADER_LEN + jlen, tail);
    }
    if (split_blobs(f, tail, errp) < 0) {
        ipc_frame_clear(f);
        return -1;
    }
    buf_consume(in, 4 + (size_t)total);
    return 1;
}

int ipc_call(int fd, json_t *req, const struct ipc_blob *blobs, size_t nblobs,
             struct ipc_frame *resp, int timeout_ms, struct err **errp)
{
    struct buf out;
    buf_init(&out, IPC_MAX_FRAME + IPC_HEADER_LEN);
    if (ipc_encode(&out, req, blobs, nblobs, errp) < 0) {
        buf_free(&out);
        return -1;
    }
    int rc = fd_write_all(fd, buf_head(&out), out.len);
    buf_free(&out);
    if (rc < 0)
        return err_sys(errp, "IPC write");
    json_int_t id = json_integer_value(json_object_get(req, "id"));
    struct buf in;
    buf_init(&in, IPC_MAX_FRAME + IPC_HEADER_LEN);
    uint64_t deadline = time_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int r = ipc_decode_next(&in, resp, errp);
        if (r < 0)
            break;
        if (r == 1) {
            json_t *rid = json_object_get(resp->msg, "id");
            if (rid && json_integer_value(rid) == id) {
                buf_free(&in);
                return 0;
            }
            ipc_frame_clear(resp);
            continue;
        }
        uint64_t now = time_mono_ms();
        if (now >= deadline) {
            err_set(errp, ETIMEDOUT, "IPC call timed out");
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        uint8_t *dst = buf_reserve(&in, 65536);
        if (!dst) {
            err_set(errp, EPROTO, "IPC response too large");
            break;
        }
        ssize_t n = fd_read_retry(fd, dst, 65536);
        if (n <= 0) {
            if (n == 0)
                err_set(errp, ECONNRESET, "IPC peer closed the connection");
            else
                err_sys(errp, "IPC read");
            break;
        }
        buf_commit(&in, (size_t)n);
    }
    buf_free(&in);
    return -1;
}

const char *ipc_json_enum(json_t *obj, const char *field, const char *const *allowed, size_t n,
                          const char *def, struct err **errp)
{
    json_t *v = json_object_get(obj, field);
    if ((!v || json_is_null(v)) && def)
        return def;
    const char *s = json_string_value(v);
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, allowed[i]) == 0)
            return allowed[i];
    char list[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 allowed[i]);
    err_status(errp, 400, "%s must be one of: %s", field, list);
    return NULL;
}
