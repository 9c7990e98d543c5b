/* File operations through the guest agent: read, write and list, one file
 * stream each, with the same size cap enforced on both ends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "vmm/vmproc.h"

struct hfile {
    struct hstream hs;
    struct vp_reply reply;
    struct vmproc *vp;
    struct mux_stream *s;
    struct rec_reader rr;
    uint32_t op;
    char *path;
    bool confine;
    uint32_t mode;
    uint32_t depth;
    uint64_t max_bytes;
    struct buf data;     /* read: received content; write: content to send */
    size_t sent;         /* write: bytes of data already queued */
    bool end_sent;
    json_t *entries;     /* list */
    bool waiting, cancelled, answered;
};

static void hfile_free(struct hfile *f)
{
    if (f->s)
        mux_stream_release(f->s);
    rec_reader_free(&f->rr);
    buf_free(&f->data);
    json_decref(f->entries);
    free(f->path);
    free(f);
}

static void hfile_fail(struct hfile *f, int status, const char *msg)
{
    vp_reply_err(&f->reply, status, "%s", msg);
    f->answered = true;
    if (f->s) {
        mux_stream_reset(f->s, MUX_RST_CANCEL);
        vp_channel_kick(f->vp);
    }
    hfile_free(f);
}

static int errno_status(uint32_t e)
{
    switch (e) {
    case ENOENT:
        return 404;
    case EXDEV:
    case EACCES:
    case EPERM:
    case ELOOP:
        return 403;
    case EISDIR:
    case ENOTDIR:
    case EINVAL:
    case ENAMETOOLONG:
        return 400;
    case EFBIG:
        return 413;
    default:
        return 500;
    }
}

static void handle_result(struct hfile *f, const uint8_t *p, size_t len)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t e = 0;
    uint64_t size = 0;
    char msg[512] = "";
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_ERRNO)
            tlv_as_u32(v, n, &e);
        else if (tag == T_SIZE)
            tlv_as_u64(v, n, &size);
        else if (tag == T_MESSAGE)
            snprintf(msg, sizeof(msg), "%.*s", (int)MIN(n, 400u), v);
    }
    f->answered = true;
    if (e != 0) {
        if (e == EXDEV)
            vp_reply_err(&f->reply, 403, "path escapes the workspace");
        else if (e == ENOENT)
            vp_reply_err(&f->reply, 404, "no such file: %s", f->path);
        else
            vp_reply_err(&f->reply, errno_status(e), "%s: %s", f->path, msg[0] ? msg : "failed");
        return;
    }
    if (f->op == FILE_OP_READ) {
        struct ipc_blob blob = {buf_head(&f->data), f->data.len};
        vp_reply_ok(&f->reply, json_pack("{s:I}", "size", (json_int_t)f->data.len), &blob, 1);
    } else if (f->op == FILE_OP_WRITE) {
        vp_reply_ok(&f->reply, json_pack("{s:I}", "size", (json_int_t)size), NULL, 0);
    } else {
        vp_reply_ok(&f->reply, json_pack("{s:O}", "entries", f->entries), NULL, 0);
    }
}

static void handle_entry(struct hfile *f, const uint8_t *p, size_t len)
{
    static const char *const types[] = {"other", "file", "dir", "symlink", "other"};
    struct tlv_iter it;
    tlv_iter_init(&it, p, len);
    uint16_t tag;
    const uint8_t *v;
    size_t n;
    uint32_t type = 4, depth = 0;
    uint64_t size = 0, mtime = 0;
    char *path = NULL, *name = NULL;
    while (tlv_next(&it, &tag, &v, &n) == 1) {
        if (tag == T_PATH && !path)
            path = tlv_as_str(v, n);
        else if (tag == T_NAME && !name)
            name = tlv_as_str(v, n);
        else if (tag == T_TYPE)
            tlv_as_u32(v, n, &type);
        else if (tag == T_SIZE)
            tlv_as_u64(v, n, &size);
        else if (tag == T_MTIME)
            tlv_as_u64(v, n, &mtime);
        else if (tag == T_DEPTH)
            tlv_as_u32(v, n, &depth);
    }
    if (path && name && json_array_size(f->entries) < 100000)
        json_array_append_new(f->entries,
                              json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "path", path, "name", name,
                                        "type", types[type < 5 ? type : 4], "size",
                                        (json_int_t)size, "mtime", (json_int_t)mtime, "depth",
                                        (json_int_t)depth));
    free(path);
    free(name);
}

static void write_pump(struct hfile *f)
{
    while (f->s && !f->end_sent) {
        size_t left = f->data.len - f->sent;
        if (left == 0) {
            if (vp_send_rec(f->s, FILE_END, NULL, 0) == 0) {
                f->end_sent = true;
                mux_stream_close_write(f->s);
            }
            break;
        }
        size_t n = MIN(left, (size_t)AGENT_DATA_CHUNK);
        if (vp_send_rec(f->s, FILE_DATA, buf_head(&f->data) + f->sent, n) < 0)
            break; /* on_writable resumes */
        f->sent += n;
    }
    vp_channel_kick(f->vp);
}

static void file_on_data(void *h, const uint8_t *d, size_t len)
{
    struct hfile *f = h;
    if (rec_reader_feed(&f->rr, d, len) < 0) {
        hfile_fail(f, 500, "guest sent an oversized file record");
        return;
    }
    mux_stream_consumed(f->s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&f->rr, &type, &p, &n)) == 1) {
        if (type == FILE_DATA && f->op == FILE_OP_READ) {
            if (buf_append(&f->data, p, n) < 0) {
                hfile_fail(f, 413, "file is larger than the transfer limit");
                return;
            }
        } else if (type == FILE_ENTRY && f->op == FILE_OP_LIST) {
            handle_entry(f, p, n);
        } else if (type == FILE_RESULT) {
            handle_result(f, p, n);
        } else if (type != FILE_INFO) {
            hfile_fail(f, 500, "guest sent an unexpected file record");
            return;
        }
    }
    if (rc < 0)
        hfile_fail(f, 500, "guest sent a malformed file record");
}

static void file_on_fin(void *h)
{
    struct hfile *f = h;
    if (!f->answered)
        vp_reply_err(&f->reply, 500, "guest ended the file stream without a result");
    if (!f->end_sent && f->s)
        mux_stream_close_write(f->s);
    hfile_free(f);
}

static void file_on_reset(void *h, uint32_t reason)
{
    struct hfile *f = h;
    mux_stream_release(f->s);
    f->s = NULL;
    if (!f->answered)
        vp_reply_err(&f->reply, 500, "file stream reset (%s)", mux_reset_reason_name(reason));
    hfile_free(f);
}

static void file_on_writable(void *h)
{
    struct hfile *f = h;
    if (f->op == FILE_OP_WRITE)
        write_pump(f);
}

static const struct hstream_ops file_ops = {
    .on_data = file_on_data,
    .on_fin = file_on_fin,
    .on_reset = file_on_reset,
    .on_writable = file_on_writable,
};

static void file_cancel(struct vp_reply *r)
{
    struct hfile *f = r->owner;
    f->cancelled = true;
    if (!f->waiting)
        hfile_fail(f, 499, "client went away");
}

static void file_start(struct vmproc *vp, void *arg, bool ready, const char *why)
{
    struct hfile *f = arg;
    f->waiting = false;
    if (f->cancelled) {
        hfile_free(f);
        return;
    }
    if (!ready) {
        vp_reply_err(&f->reply, 503, "guest not ready: %s", why ? why : "unknown");
        hfile_free(f);
        return;
    }
    f->s = vp_open_stream(vp, MUX_SVC_FILES, &f->hs);
    if (!f->s) {
        hfile_fail(f, 503, "cannot open a file stream to the guest");
        return;
    }
    struct buf b;
    buf_init(&b, 8192);
    tlv_put_u32(&b, T_OP, f->op);
    tlv_put_str(&b, T_PATH, f->path);
    tlv_put_u32(&b, T_MODE, f->mode);
    tlv_put_u64(&b, T_MAX_BYTES, f->max_bytes);
    tlv_put_u32(&b, T_CONFINE, f->confine);
    tlv_put_u32(&b, T_DEPTH, f->depth);
    vp_send_rec(f->s, FILE_REQ, buf_head(&b), b.len);
    buf_free(&b);
    if (f->op == FILE_OP_WRITE) {
        write_pump(f);
    } else {
        mux_stream_close_write(f->s);
        vp_channel_kick(vp);
    }
}

void vp_files_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req,
                      const struct ipc_frame *fr)
{
    struct hfile *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->hs.ops = &file_ops;
    f->vp = vp;
    f->reply.owner = f;
    f->reply.on_cancel = file_cancel;
    vp_reply_attach(&f->reply, c, id);
    const char *op = json_string_value(json_object_get(req, "op"));
    const char *path = json_string_value(json_object_get(req, "path"));
    json_t *mb = json_object_get(req, "max_bytes");
    f->max_bytes = json_is_integer(mb) && json_integer_value(mb) > 0
                       ? (uint64_t)json_integer_value(mb)
                       : vp->cfg.files_max_bytes;
    f->confine = json_is_true(json_object_get(req, "confine"));
    f->mode = (uint32_t)json_integer_value(json_object_get(req, "mode"));
    f->depth = (uint32_t)json_integer_value(json_object_get(req, "depth"));
    rec_reader_init(&f->rr, AGENT_DATA_CHUNK + 8192);
    buf_init(&f->data, (size_t)f->max_bytes);
    if (strcmp(op, "file_read") == 0) {
        f->op = FILE_OP_READ;
    } else if (strcmp(op, "file_write") == 0) {
        f->op = FILE_OP_WRITE;
        if (fr->nblobs != 1 || buf_append(&f->data, fr->blobs[0].data, fr->blobs[0].len) < 0) {
            vp_reply_err(&f->reply, fr->nblobs == 1 ? 413 : 400,
                         fr->nblobs == 1 ? "content larger than the transfer limit"
                                         : "file_write needs one content blob");
            hfile_free(f);
            return;
        }
    } else if (strcmp(op, "file_list") == 0) {
        f->op = FILE_OP_LIST;
        f->entries = json_array();
    } else {
        vp_reply_err(&f->reply, 400, "unknown operation: %s", op);
        hfile_free(f);
        return;
    }
    if (!path || !*path || strlen(path) > 4000) {
        vp_reply_err(&f->reply, 400, "path must be a non-empty string");
        hfile_free(f);
        return;
    }
    f->path = strdup(path);
    f->waiting = true;
    vp_when_ready(vp, file_start, f);
}
