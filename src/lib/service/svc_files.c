/* /vms/{id}/files/...: workspace transfers (confined to /root) and guest
 * file read/write (any absolute path), forwarded to capsem-process. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/util.h"
#include "base/paths.h"
#include "service/service.h"
#include "vm/ext4fs.h"

/* Workspace paths: absolute under /root or relative to it; no `..`. */
static bool workspace_path_ok(struct svc_req *r, const char *path)
{
    if (!path || !*path) {
        svc_reply_error(r, 400, "path is required");
        return false;
    }
    if (strlen(path) > 4000 || memchr(path, '\0', strlen(path)) != NULL) {
        svc_reply_error(r, 400, "path too long");
        return false;
    }
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            svc_reply_error(r, 400, "path must not contain '..': %s", path);
            return false;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    if (path[0] == '/' && strcmp(path, "/root") != 0 && !str_has_prefix(path, "/root/")) {
        svc_reply_error(r, 403, "path escapes the workspace");
        return false;
    }
    return true;
}

static bool vm_running(struct svc_req *r, struct svm *vm)
{
    if (vm->status == SVM_RUNNING && !vm->deleting && vm->ipc)
        return true;
    svc_reply_error(r, 409, "cannot access files of VM in state %s",
                    vm->deleting ? "Deleting" : svm_status_name(vm->status));
    return false;
}

static void reply_ipc_error(struct svc_req *r, const struct err *e)
{
    svc_reply_error(r, e->status ? e->status : 500, "%s", e->msg);
}

/* ---------- files/read, files/write ---------- */

static void read_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e) {
        reply_ipc_error(r, e);
        return;
    }
    const uint8_t *data = f->nblobs ? f->blobs[0].data : (const uint8_t *)"";
    size_t len = f->nblobs ? f->blobs[0].len : 0;
    const char *enc = r->owner ? "base64" : "utf8";
    if (!r->owner) {
        if (!utf8_valid((const char *)data, len)) {
            svc_reply_error(r, 400, "file is not valid UTF-8 (use encoding base64)");
            return;
        }
        svc_reply_json(r, 200, json_pack("{s:s%, s:s}", "content", (const char *)data, len,
                                          "encoding", enc));
        return;
    }
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *b64 = malloc(cap);
    if (!b64) {
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    int n = EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    svc_reply_json(r, 200, json_pack("{s:s%, s:s}", "content", b64, (size_t)n, "encoding", enc));
    free(b64);
}

static const char *encoding_arg(struct svc_req *r, bool *ok)
{
    json_t *e = json_object_get(r->json, "encoding");
    *ok = true;
    if (!e || json_is_null(e))
        return "utf8";
    const char *s = json_string_value(e);
    if (s && (strcmp(s, "utf8") == 0 || strcmp(s, "base64") == 0))
        return s;
    svc_reply_error(r, 400, "encoding must be utf8 or base64");
    *ok = false;
    return NULL;
}

void svc_files_read(struct svc_req *r, struct svm *vm)
{
    bool ok;
    const char *path = json_string_value(json_object_get(r->json, "path"));
    const char *enc = encoding_arg(r, &ok);
    if (!ok)
        return;
    if (!path || !*path) {
        svc_reply_error(r, 400, "path is required");
        return;
    }
    if (!vm_running(r, vm))
        return;
    r->owner = strcmp(enc, "base64") == 0 ? (void *)1 : NULL;
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:b, s:I}", "op", "file_read", "path", path, "confine", 0,
                           "max_bytes", (json_int_t)r->svc->settings.files_max_bytes),
                 NULL, 0, read_done, r);
}

static void write_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e)
        reply_ipc_error(r, e);
    else
        svc_reply_json(r, 200, json_pack("{s:b, s:O}", "success", 1, "size",
                                          json_object_get(f->msg, "size")));
}

static int decode_base64(const char *in, size_t n, uint8_t **out, size_t *outlen)
{
    /* EVP_DecodeBlock ignores nothing: strip whitespace first. */
    char *clean = malloc(n + 1);
    if (!clean)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] != '\n' && in[i] != '\r' && in[i] != ' ')
            clean[k++] = in[i];
    if (k % 4 != 0) {
        free(clean);
        return -1;
    }
    uint8_t *buf = malloc(k / 4 * 3 + 1);
    int len = buf ? EVP_DecodeBlock(buf, (unsigned char *)clean, (int)k) : -1;
    if (len < 0) {
        free(clean);
        free(buf);
        return -1;
    }
    if (k >= 1 && clean[k - 1] == '=')
        len--;
    if (k >= 2 && clean[k - 2] == '=')
        len--;
    free(clean);
    *out = buf;
    *outlen = (size_t)len;
    return 0;
}

void svc_files_write(struct svc_req *r, struct svm *vm)
{
    bool ok;
    const char *path = json_string_value(json_object_get(r->json, "path"));
    json_t *content = json_object_get(r->json, "content");
    const char *enc = encoding_arg(r, &ok);
    if (!ok)
        return;
    json_t *mode = json_object_get(r->json, "mode");
    if (!path || !*path || !json_is_string(content)) {
        svc_reply_error(r, 400, "path and content (string) are required");
        return;
    }
    if (mode && (!json_is_integer(mode) || json_integer_value(mode) < 0 ||
                 json_integer_value(mode) > 07777)) {
        svc_reply_error(r, 400, "mode must be an integer permission (e.g. 420 for 0644)");
        return;
    }
    if (!vm_running(r, vm))
        return;
    uint8_t *data = NULL;
    size_t len = json_string_length(content);
    if (strcmp(enc, "base64") == 0) {
        if (decode_base64(json_string_value(content), len, &data, &len) < 0) {
            svc_reply_error(r, 400, "content is not valid base64");
            return;
        }
    }
    if (len > r->svc->settings.files_max_bytes) {
        free(data);
        svc_reply_error(r, 413, "content larger than files.max_bytes (%llu)",
                        (unsigned long long)r->svc->settings.files_max_bytes);
        return;
    }
    struct ipc_blob blob = {data ? data : (const uint8_t *)json_string_value(content), len};
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:b, s:I, s:I}", "op", "file_write", "path", path,
                           "confine", 0, "mode", mode ? json_integer_value(mode) : 0644,
                           "max_bytes", (json_int_t)r->svc->settings.files_max_bytes),
                 &blob, 1, write_done, r);
    free(data);
}

/* ---------- files/content (workspace, raw bytes) ---------- */

static void download_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e) {
        reply_ipc_error(r, e);
        return;
    }
    const char *path = r->owner;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char hdr[512];
    /* The name is for the user's browser only; keep it to safe characters. */
    char safe[256];
    size_t k = 0;
    for (const char *p = base; *p && k < sizeof(safe) - 1; p++)
        safe[k++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '_' : *p;
    safe[k] = '\0';
    snprintf(hdr, sizeof(hdr), "Content-Disposition: attachment; filename=\"%s\"\r\n", safe);
    svc_reply_raw(r, 200, "application/octet-stream", f->nblobs ? f->blobs[0].data : NULL,
                  f->nblobs ? f->blobs[0].len : 0, hdr);
}

static char *query_path(struct svc_req *r, const char *def)
{
    char buf[4096];
    if (svc_query_get(r, "path", buf, sizeof(buf)) < 0)
        return def ? strdup(def) : NULL;
    return strdup(buf);
}

/* A VM without a running guest: its workspace disk is read (and, when it
 * is Stopped, written) on the host with libext2fs. Running means the guest
 * agent owns the file system; Suspended means the guest's memory holds
 * cached state, so it is read-only (surface.md section 3). */
static bool offline(struct svm *vm)
{
    return vm->status != SVM_RUNNING && !vm->deleting;
}

static char *workspace_image(struct svm *vm)
{
    return paths_join(vm->vm_dir, "workspace.img");
}

static void offline_download(struct svc_req *r, struct svm *vm, char *path)
{
    _cleanup_free_ char *img = workspace_image(vm);
    uint8_t *data = NULL;
    size_t len = 0;
    struct err *e = NULL;
    if (ext4fs_read(img, path, r->svc->settings.files_max_bytes, &data, &len, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        free(path);
        return;
    }
    struct ipc_frame f = {.nblobs = 1};
    f.blobs[0].data = data;
    f.blobs[0].len = len;
    r->owner = path;
    r->owner_free = free;
    download_done(vm, &f, NULL, r);
    free(data);
}

void svc_files_download(struct svc_req *r, struct svm *vm)
{
    char *path = query_path(r, NULL);
    if (!workspace_path_ok(r, path)) {
        free(path);
        return;
    }
    if (offline(vm)) {
        offline_download(r, vm, path);
        return;
    }
    if (!vm_running(r, vm)) {
        free(path);
        return;
    }
    /* r->owner keeps the path alive until the reply frees the request. */
    r->owner = path;
    r->owner_free = free;
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:b, s:I}", "op", "file_read", "path", path, "confine", 1,
                           "max_bytes", (json_int_t)r->svc->settings.files_max_bytes),
                 NULL, 0, download_done, r);
}

void svc_files_upload(struct svc_req *r, struct svm *vm)
{
    _cleanup_free_ char *path = query_path(r, NULL);
    if (!workspace_path_ok(r, path))
        return;
    if (r->body_len > r->svc->settings.files_max_bytes) {
        svc_reply_error(r, 413, "upload larger than files.max_bytes (%llu)",
                        (unsigned long long)r->svc->settings.files_max_bytes);
        return;
    }
    if (offline(vm)) {
        if (vm->status != SVM_STOPPED) {
            svc_reply_error(r, 409, "cannot upload to VM in state %s",
                            svm_status_name(vm->status));
            return;
        }
        _cleanup_free_ char *img = workspace_image(vm);
        struct err *e = NULL;
        if (ext4fs_write(img, path, r->body ? r->body : (const uint8_t *)"", r->body_len, 0644,
                         &e) < 0) {
            svc_reply_err(r, e);
            err_free(e);
            return;
        }
        svc_reply_json(r, 200, json_pack("{s:b, s:I}", "success", 1, "size",
                                          (json_int_t)r->body_len));
        return;
    }
    if (!vm_running(r, vm))
        return;
    struct ipc_blob blob = {r->body ? r->body : (const uint8_t *)"", r->body_len};
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:b, s:I, s:I}", "op", "file_write", "path", path,
                           "confine", 1, "mode", (json_int_t)0644, "max_bytes",
                           (json_int_t)r->svc->settings.files_max_bytes),
                 &blob, 1, write_done, r);
}

/* ---------- files/list ---------- */

static int by_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

static void sort_tree(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **items = n ? calloc(n, sizeof(*items)) : NULL;
    if (!items)
        return;
    for (size_t i = 0; i < n; i++) {
        items[i] = json_incref(json_array_get(arr, i));
        sort_tree(json_object_get(items[i], "children"));
    }
    qsort(items, n, sizeof(*items), by_name);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
}

static void list_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e) {
        reply_ipc_error(r, e);
        return;
    }
    /* Entries come flat, parents before children, with their level; the
     * tree matches the host-side listing (vm/ext4fs.c): `children` only on
     * directories above the last level, every level sorted by name. */
    json_int_t depth = (json_int_t)(intptr_t)r->owner;
    r->owner = NULL;
    json_t *flat = json_object_get(f->msg, "entries");
    json_t *top = json_array();
    json_t *stack[8] = {top};
    size_t i;
    json_t *ent;
    json_array_foreach(flat, i, ent)
    {
        json_int_t d = json_integer_value(json_object_get(ent, "depth"));
        if (d < 0 || d > 6 || !stack[d])
            continue;
        json_t *node = json_pack("{s:O, s:O, s:O, s:O, s:O}", "name", json_object_get(ent, "name"),
                                 "path", json_object_get(ent, "path"), "type",
                                 json_object_get(ent, "type"), "size", json_object_get(ent, "size"),
                                 "mtime", json_object_get(ent, "mtime"));
        json_array_append(stack[d], node);
        for (size_t k = (size_t)d + 1; k < 8; k++)
            stack[k] = NULL;
        const char *type = json_string_value(json_object_get(ent, "type"));
        if (type && strcmp(type, "dir") == 0 && d + 1 < depth) {
            json_t *kids = json_array();
            json_object_set_new(node, "children", kids);
            stack[d + 1] = kids;
        }
        json_decref(node);
    }
    sort_tree(top);
    svc_reply_json(r, 200, json_pack("{s:o}", "entries", top));
}

void svc_files_list(struct svc_req *r, struct svm *vm)
{
    _cleanup_free_ char *path = query_path(r, "/root");
    char buf[16];
    int64_t depth = 1;
    if (svc_query_get(r, "depth", buf, sizeof(buf)) == 0 && parse_int64(buf, 1, 6, &depth) < 0) {
        svc_reply_error(r, 400, "depth must be between 1 and 6");
        return;
    }
    if (!workspace_path_ok(r, path))
        return;
    if (offline(vm)) {
        _cleanup_free_ char *img = workspace_image(vm);
        json_t *entries = NULL;
        struct err *e = NULL;
        if (ext4fs_list(img, path, (int)depth, 0, &entries, NULL, &e) < 0) {
            svc_reply_err(r, e);
            err_free(e);
            return;
        }
        svc_reply_json(r, 200, json_pack("{s:o}", "entries", entries));
        return;
    }
    if (!vm_running(r, vm))
        return;
    r->owner = (void *)(intptr_t)depth;
    svc_ipc_call(vm->ipc,
                 json_pack("{s:s, s:s, s:b, s:I}", "op", "file_list", "path", path, "confine", 1,
                           "depth", (json_int_t)depth),
                 NULL, 0, list_done, r);
}
