/* Fork images: `images/<name>/` with image.json, overlay.img and
 * workspace.img, copied from a VM (FICLONE or sparse copy, never dense),
 * and the VM's credential placeholders (`placeholders`, 0600, never shown
 * by the routes) so VMs created from the image keep its values.
 * Images depend only on the base version they were made from: a VM
 * created from an image owns copies of its disks, and forking such a VM
 * yields another self-contained image. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "service/service.h"
#include "vm/disk.h"

#define IMAGE_JSON_MAX (256u * 1024u)
#define PLACEHOLDER_FILE "placeholders" /* written by capsem-process (vmproc_creds.c) */
#define PLACEHOLDER_FILE_MAX 4096u      /* four "<provider> <placeholder>" lines */

static const char *const disks[] = {"overlay.img", "workspace.img"};

int svc_image_lookup(struct svc *s, const char *name, json_t **info, struct err **errp)
{
    if (svc_check_name("image", name, errp) < 0)
        return -1;
    _cleanup_free_ char *dir = paths_join(s->images_dir, name);
    _cleanup_free_ char *path = dir ? paths_join(dir, "image.json") : NULL;
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (!path || access(path, F_OK) != 0)
        return err_status(errp, 404, "image not found: %s", name);
    if (file_read_all(path, IMAGE_JSON_MAX, &text, &len, errp) < 0)
        return -1;
    json_t *j = json_loadb(text, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_status(errp, 500, "%s is damaged", path);
    }
    *info = j;
    return 0;
}

static json_t *in_use_by(struct svc *s, const char *name)
{
    json_t *arr = json_array();
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && !vm->hidden && strcmp(vm->image, name) == 0)
            json_array_append_new(arr, json_string(vm->name));
    return arr;
}

static json_t *image_view(struct svc *s, json_t *info)
{
    json_t *out = json_deep_copy(info);
    const char *name = json_string_value(json_object_get(info, "name"));
    json_object_set_new(out, "in_use_by", in_use_by(s, name ? name : ""));
    return out;
}

int svc_image_prepare_vm(struct svc *s, const char *image, struct svm *vm, struct err **errp)
{
    _cleanup_free_ char *dir = paths_join(s->images_dir, image);
    for (size_t i = 0; i < ARRAY_SIZE(disks); i++) {
        _cleanup_free_ char *src = paths_join(dir, disks[i]);
        _cleanup_free_ char *dst = paths_join(vm->vm_dir, disks[i]);
        if (!src || !dst || disk_clone(src, dst, errp) < 0) {
            err_prefix(errp, "copy image %s", image);
            return -1;
        }
    }
    return 0;
}

/* ---------- fork ---------- */

struct fork_job {
    struct svc_req *req;
    struct svm *vm;
    char *name;
    char *description;
    bool paused;
};

static void fork_free(struct fork_job *f)
{
    if (f->vm)
        f->vm->forking = false;
    free(f->name);
    free(f->description);
    free(f);
}

static int64_t copy_disks(struct svm *vm, const char *tmpdir, struct err **errp)
{
    int64_t total = 0;
    for (size_t i = 0; i < ARRAY_SIZE(disks); i++) {
        _cleanup_free_ char *src = paths_join(vm->vm_dir, disks[i]);
        _cleanup_free_ char *dst = paths_join(tmpdir, disks[i]);
        if (!src || !dst || disk_clone(src, dst, errp) < 0)
            return -1;
        total += disk_allocated_bytes(dst);
    }
    return total;
}

int svc_copy_placeholders(const char *from_dir, const char *to_dir, struct err **errp)
{
    _cleanup_free_ char *src = paths_join(from_dir, PLACEHOLDER_FILE);
    _cleanup_free_ char *dst = paths_join(to_dir, PLACEHOLDER_FILE);
    if (!src || !dst)
        return err_set(errp, ENOMEM, "out of memory");
    if (access(src, F_OK) != 0)
        return errno == ENOENT ? 0 : err_sys(errp, "%s", src);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (file_read_all(src, PLACEHOLDER_FILE_MAX, &text, &len, errp) < 0 ||
        file_write_atomic(dst, text, len, 0600, errp) < 0)
        return err_prefix(errp, "copy the credential placeholders of %s", from_dir), -1;
    return 0;
}

static int write_image(struct fork_job *f, struct err **errp)
{
    struct svm *vm = f->vm;
    struct svc *s = vm->svc;
    _cleanup_free_ char *final = paths_join(s->images_dir, f->name);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-%d", s->images_dir, f->name, (int)getpid());
    rm_rf(tmp);
    if (mkdir_p(tmp, 0700, errp) < 0)
        return -1;
    int64_t size = copy_disks(vm, tmp, errp);
    if (size < 0 || svc_copy_placeholders(vm->vm_dir, tmp, errp) < 0) {
        rm_rf(tmp);
        return -1;
    }
    char created[32];
    time_format_rfc3339((uint64_t)time(NULL), created, sizeof(created));
    const struct asset_version *v =
        s->assets_loaded && vm->base_version ? assets_find(&s->assets, vm->base_version) : NULL;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "name", f->name,
                          "description", f->description ? f->description : "", "profile_id",
                          vm->profile, "base_version", vm->base_version ? vm->base_version : "",
                          "arch", v ? v->arch : "x86_64", "size_bytes", (json_int_t)size,
                          "created_at", created, "forked_from", vm->name, "source_vm_id", vm->id);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    _cleanup_free_ char *meta = paths_join(tmp, "image.json");
    int rc = text ? file_write_atomic(meta, text, strlen(text), 0600, errp)
                  : err_set(errp, ENOMEM, "out of memory");
    free(text);
    if (rc == 0 && rename(tmp, final) < 0)
        rc = err_sys(errp, "publish image %s", f->name);
    if (rc < 0)
        rm_rf(tmp);
    else
        log_info("image %s forked from VM %s (%lld bytes allocated)", f->name, vm->name,
                 (long long)size);
    return rc;
}

static void fork_answer(struct fork_job *f)
{
    struct err *e = NULL;
    if (write_image(f, &e) < 0) {
        svc_reply_err(f->req, e);
        err_free(e);
    } else {
        json_t *info = NULL;
        svc_image_lookup(f->vm->svc, f->name, &info, NULL);
        svc_reply_json(f->req, 200,
                       json_pack("{s:s, s:O, s:s}", "name", f->name, "size_bytes",
                                 json_object_get(info, "size_bytes"), "base_version",
                                 f->vm->base_version ? f->vm->base_version : ""));
        json_decref(info);
    }
}

static void fork_resumed(struct svm *vm, struct ipc_frame *fr, const struct err *e, void *arg)
{
    if (e)
        log_warn("VM %s: cont after a fork failed: %s", vm->name, e->msg);
}

static void fork_paused(struct svm *vm, struct ipc_frame *fr, const struct err *e, void *arg)
{
    struct fork_job *f = arg;
    if (e) {
        svc_reply_error(f->req, e->status ? e->status : 500, "cannot pause VM for the fork: %s",
                        e->msg);
        fork_free(f);
        return;
    }
    fork_answer(f);
    if (vm->ipc)
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "cont"), NULL, 0, fork_resumed, NULL);
    fork_free(f);
}

void svc_fork(struct svc_req *r, struct svm *vm)
{
    struct svc *s = r->svc;
    const char *name = json_string_value(json_object_get(r->json, "name"));
    json_t *desc = json_object_get(r->json, "description");
    struct err *e = NULL;
    if (!name || svc_check_name("image", name, &e) < 0) {
        if (!e)
            err_status(&e, 400, "name (the image name) is required");
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    if (desc && !json_is_null(desc) && (!json_is_string(desc) || json_string_length(desc) > 1024)) {
        svc_reply_error(r, 400, "description must be a string of at most 1024 bytes");
        return;
    }
    _cleanup_free_ char *dir = paths_join(s->images_dir, name);
    if (dir && access(dir, F_OK) == 0) {
        svc_reply_error(r, 409, "image name already in use: %s", name);
        return;
    }
    if (vm->status == SVM_DEFUNCT || vm->deleting || vm->forking ||
        (vm->status == SVM_RUNNING && (!vm->ipc || vm->stopping))) {
        svc_reply_error(r, 409, "cannot fork VM in state %s",
                        vm->deleting ? "Deleting" : svm_status_name(vm->status));
        return;
    }
    if (mkdir_p(s->images_dir, 0700, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    struct fork_job *f = calloc(1, sizeof(*f));
    f->req = r;
    f->vm = vm;
    f->name = strdup(name);
    f->description = json_is_string(desc) ? strdup(json_string_value(desc)) : NULL;
    vm->forking = true;
    if (vm->status == SVM_RUNNING) {
        /* Guest sync + QMP stop keep the copies consistent with each other. */
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "pause"), NULL, 0, fork_paused, f);
        return;
    }
    fork_answer(f);
    fork_free(f);
}

/* ---------- /images routes ---------- */

static int by_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

static void images_list(struct svc_req *r)
{
    struct svc *s = r->svc;
    json_t *items[1024];
    size_t n = 0;
    DIR *d = opendir(s->images_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n < ARRAY_SIZE(items)) {
        json_t *info = NULL;
        if (de->d_name[0] == '.' || svc_image_lookup(s, de->d_name, &info, NULL) < 0)
            continue;
        items[n++] = info;
    }
    if (d)
        closedir(d);
    qsort(items, n, sizeof(items[0]), by_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, image_view(s, items[i]));
        json_decref(items[i]);
    }
    svc_reply_json(r, 200, json_pack("{s:o}", "images", arr));
}

static void image_delete(struct svc_req *r, const char *name, json_t *info)
{
    struct svc *s = r->svc;
    json_t *users = in_use_by(s, name);
    if (json_array_size(users) > 0) {
        struct buf b;
        buf_init(&b, 64 * 1024);
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u) buf_printf(&b, "%s%s", i ? ", " : "",
                                                    json_string_value(u));
        _cleanup_free_ char *list = buf_steal_str(&b);
        buf_free(&b);
        json_decref(users);
        svc_reply_error(r, 409, "image in use by: %s", list ? list : "?");
        return;
    }
    json_decref(users);
    _cleanup_free_ char *dir = paths_join(s->images_dir, name);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/.%s.deleting-%d", s->images_dir, name, (int)getpid());
    if (!dir || rename(dir, tmp) < 0) {
        svc_reply_error(r, 500, "cannot delete image %s: %s", name, strerror(errno));
        return;
    }
    rm_rf(tmp);
    svc_templates_drop_image(s, name);
    log_info("image %s deleted", name);
    svc_reply_json(r, 200, json_pack("{s:b}", "success", 1));
}

void svc_images_route(struct svc_req *r, const char *rest)
{
    if (strcmp(rest, "list") == 0) {
        if (strcmp(r->method, "GET") != 0)
            svc_reply_empty(r, 405);
        else
            images_list(r);
        return;
    }
    const char *slash = strchr(rest, '/');
    if (!slash || (strcmp(slash, "/info") != 0 && strcmp(slash, "/delete") != 0)) {
        svc_reply_empty(r, 404);
        return;
    }
    bool del = strcmp(slash, "/delete") == 0;
    if (strcmp(r->method, del ? "DELETE" : "GET") != 0) {
        svc_reply_empty(r, 405);
        return;
    }
    char name[128];
    if ((size_t)(slash - rest) >= sizeof(name)) {
        svc_reply_error(r, 400, "invalid image name");
        return;
    }
    memcpy(name, rest, (size_t)(slash - rest));
    name[slash - rest] = '\0';
    json_t *info = NULL;
    struct err *e = NULL;
    if (svc_image_lookup(r->svc, name, &info, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    if (del)
        image_delete(r, name, info);
    else
        svc_reply_json(r, 200, image_view(r->svc, info));
    json_decref(info);
}
