/* Boot templates: a booted, idle guest saved with its memory, from which new
 * VMs of the same configuration start by restoring instead of booting
 * (about 0.3 s instead of 2-3 s under TCG). A template is keyed by
 * everything the saved state depends on (base version, profile, vCPUs, RAM,
 * disk size, accelerator, QEMU binary, host TSC rate, capsem version) and
 * lives in $CAPSEM_HOME/cache/boot-templates/<key>/ with checkpoint.bin and
 * the overlay and workspace disks as they were at that instant. New VMs get
 * sparse copies of the disks and restore the shared checkpoint read-only;
 * the guest agent then takes a fresh boot configuration and reseeds its RNG
 * from the host. The first VM of a configuration boots cold and a template
 * is built for the next ones by a hidden VM. See docs/decisions.md. */
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "base/uuid.h"
#include "service/service.h"
#include "vm/disk.h"

#define TEMPLATE_FORMAT 1
#define BUILD_PREFIX ".build-"

static const char *const disks[] = {"overlay.img", "workspace.img"};

static char *templates_root(struct svc *s)
{
    return paths_join(s->template_dir, "boot-templates");
}

/* An image's identity: its name and when it was made (a new image under an
 * old name must not reuse the old one's template). */
static void image_identity(struct svc *s, const char *image, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *info = NULL;
    if (!image[0] || svc_image_lookup(s, image, &info, NULL) < 0)
        return;
    snprintf(out, cap, "%s@%s", image,
             json_string_value(json_object_get(info, "created_at")) ?: "");
    json_decref(info);
}

static void template_key(struct svc *s, const struct svm *vm, char out[33])
{
    struct stat st = {0};
    stat(s->settings.qemu_binary, &st); /* a PATH name fails: the name alone counts then */
    char image[256];
    image_identity(s, vm->image, image, sizeof(image));
    char text[2048];
    snprintf(text, sizeof(text), "%d|%s|%s|%u|%u|%u|%s|%s|%lld|%lld|%u|%s|%s", TEMPLATE_FORMAT,
             vm->base_version ? vm->base_version : "", vm->profile, vm->cpus, vm->ram_mb,
             s->settings.vm_disk_gb, s->accel, s->settings.qemu_binary, (long long)st.st_size,
             (long long)st.st_mtime, s->tsc_khz / 1000, CAPSEM_VERSION, image);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static char *key_dir(struct svc *s, const char *key)
{
    _cleanup_free_ char *root = templates_root(s);
    return root ? paths_join(root, key) : NULL;
}

static bool templates_enabled(void);

char *svc_template_for(struct svc *s, const struct svm *vm)
{
    if (!templates_enabled())
        return NULL;
    char key[33];
    template_key(s, vm, key);
    _cleanup_free_ char *dir = key_dir(s, key);
    if (!dir)
        return NULL;
    const char *need[] = {"checkpoint.bin", "overlay.img", "workspace.img", "template.json"};
    for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
        _cleanup_free_ char *p = paths_join(dir, need[i]);
        if (!p || access(p, R_OK) != 0)
            return NULL;
    }
    return steal_pointer(&dir);
}

int svc_template_prepare_vm(const char *tdir, struct svm *vm, struct err **errp)
{
    for (size_t i = 0; i < ARRAY_SIZE(disks); i++) {
        _cleanup_free_ char *src = paths_join(tdir, disks[i]);
        _cleanup_free_ char *dst = paths_join(vm->vm_dir, disks[i]);
        if (!src || !dst || disk_clone(src, dst, errp) < 0)
            return -1;
    }
    vm->template_ckpt = paths_join(tdir, "checkpoint.bin");
    return vm->template_ckpt ? 0 : err_set(errp, ENOMEM, "out of memory");
}

void svc_template_drop(struct svc *s, const struct svm *vm)
{
    char key[33];
    template_key(s, vm, key);
    _cleanup_free_ char *dir = key_dir(s, key);
    if (dir && access(dir, F_OK) == 0) {
        log_warn("boot template %s failed to restore; removing it", key);
        rm_rf(dir);
    }
}

/* ---------- building ---------- */

static void build_failed(struct svm *t, const char *why)
{
    log_warn("boot template for %s/%u vCPU/%u MiB not built: %s", t->profile, t->cpus, t->ram_mb,
             why);
    t->svc->template_building = false;
    svc_vm_delete(t, NULL, NULL);
}

static void saved(struct svm *t, struct ipc_frame *f, const struct err *e, void *arg)
{
    if (e)
        build_failed(t, e->msg);
    /* Success: the process exits and svc_template_finish() publishes it. */
}

static void ready(struct svm *t, struct ipc_frame *f, const struct err *e, void *arg)
{
    if (e) {
        build_failed(t, e->msg);
        return;
    }
    t->stopping = true;
    svc_ipc_call(t->ipc, json_pack("{s:s}", "op", "suspend"), NULL, 0, saved, NULL);
}

static void up(struct svm *t, const struct err *e, void *arg)
{
    if (e) {
        t->svc->template_building = false;
        return; /* the VM is already being removed */
    }
    svc_ipc_call(t->ipc, json_pack("{s:s}", "op", "wait_ready"), NULL, 0, ready, NULL);
}

/* CAPSEM_BOOT_TEMPLATES=0 turns templates off (benchmarks of cold boots,
 * diagnostics). */
static bool templates_enabled(void)
{
    const char *v = getenv("CAPSEM_BOOT_TEMPLATES");
    return !v || strcmp(v, "0") != 0;
}

void svc_template_build(struct svc *s, const struct svm *like)
{
    if (s->template_building || s->stopping || !templates_enabled())
        return;
    char key[33];
    template_key(s, like, key);
    _cleanup_free_ char *final = key_dir(s, key);
    if (!final || access(final, F_OK) == 0)
        return;
    struct svm *t = svm_alloc(s);
    if (!t)
        return;
    t->hidden = true;
    t->persistent = true; /* suspend is what writes the checkpoint */
    uuid_v4(t->id);
    str_copy(t->name, sizeof(t->name), "capsem-template");
    str_copy(t->profile, sizeof(t->profile), like->profile);
    t->cpus = like->cpus;
    t->ram_mb = like->ram_mb;
    t->base_version = like->base_version ? strdup(like->base_version) : NULL;
    str_copy(t->image, sizeof(t->image), like->image);
    t->created_at = (uint64_t)time(NULL);
    _cleanup_free_ char *root = templates_root(s);
    char dir[4200], sock[4200];
    snprintf(dir, sizeof(dir), "%s/" BUILD_PREFIX "%s", root ? root : ".", key);
    snprintf(sock, sizeof(sock), "%s/%s.sock", s->instances_dir, t->id);
    t->vm_dir = strdup(dir);
    t->uds_path = strdup(sock);
    rm_rf(dir);
    struct err *e = NULL;
    if (mkdir_p(dir, 0700, &e) < 0 ||
        (t->image[0] && svc_image_prepare_vm(s, t->image, t, &e) < 0) ||
        svc_vm_launch(t, false, up, NULL, &e) < 0) {
        log_warn("boot template: %s", err_msg(e));
        err_free(e);
        rm_rf(dir);
        svc_vm_free(t);
        return;
    }
    svm_append(s, t);
    s->template_building = true;
    log_info("building a boot template for %s/%u vCPU/%u MiB (%s)", t->profile, t->cpus,
             t->ram_mb, key);
}

/* The hidden VM's process exited: publish its directory or drop it. */
void svc_template_finish(struct svm *t)
{
    struct svc *s = t->svc;
    s->template_building = false;
    _cleanup_free_ char *ckpt = paths_join(t->vm_dir, "checkpoint.bin");
    char key[33];
    template_key(s, t, key);
    _cleanup_free_ char *final = key_dir(s, key);
    bool ok = strcmp(t->exit_reason, "suspended") == 0 && ckpt && access(ckpt, R_OK) == 0;
    if (ok) {
        /* The hidden VM's placeholders are its own: they must never reach
         * the VMs restored from the template (only the disks are copied to
         * them, and each one's capsem-process makes and sends its own). */
        _cleanup_free_ char *ph = paths_join(t->vm_dir, "placeholders");
        if (ph)
            unlink(ph);
        json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:I, s:s}", "format",
                              TEMPLATE_FORMAT, "base_version",
                              t->base_version ? t->base_version : "", "profile", t->profile,
                              "cpus", (json_int_t)t->cpus, "ram_mb", (json_int_t)t->ram_mb,
                              "accel", s->accel, "created_at", (json_int_t)time(NULL), "image",
                              t->image);
        char *text = json_dumps(j, JSON_INDENT(2));
        json_decref(j);
        _cleanup_free_ char *meta = paths_join(t->vm_dir, "template.json");
        ok = text && meta && file_write_atomic(meta, text, strlen(text), 0600, NULL) == 0 &&
             final && rename(t->vm_dir, final) == 0;
        free(text);
    }
    if (ok)
        log_info("boot template %s ready", key);
    else
        rm_rf(t->vm_dir);
    t->gone = true;
    svc_vm_free(t);
}

/* At start: half-built templates are leftovers of a crash; templates of
 * base versions that are gone are useless. */
void svc_templates_sweep(struct svc *s)
{
    _cleanup_free_ char *root = templates_root(s);
    DIR *d = root ? opendir(root) : NULL;
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *dir = paths_join(root, de->d_name);
        _cleanup_free_ char *meta = dir ? paths_join(dir, "template.json") : NULL;
        json_t *j = meta ? json_load_file(meta, 0, NULL) : NULL;
        const char *bv = json_string_value(json_object_get(j, "base_version"));
        const char *image = json_string_value(json_object_get(j, "image"));
        json_t *info = NULL;
        bool image_ok = !image || !*image || svc_image_lookup(s, image, &info, NULL) == 0;
        json_decref(info);
        bool keep = !str_has_prefix(de->d_name, BUILD_PREFIX) && bv && s->assets_loaded &&
                    assets_find(&s->assets, bv) && image_ok;
        json_decref(j);
        if (!keep && dir)
            rm_rf(dir);
    }
    closedir(d);
}

/* An image was deleted: its templates go too. */
void svc_templates_drop_image(struct svc *s, const char *image)
{
    _cleanup_free_ char *root = templates_root(s);
    DIR *d = root ? opendir(root) : NULL;
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *dir = paths_join(root, de->d_name);
        _cleanup_free_ char *meta = dir ? paths_join(dir, "template.json") : NULL;
        json_t *j = meta ? json_load_file(meta, 0, NULL) : NULL;
        const char *img = json_string_value(json_object_get(j, "image"));
        if (img && strcmp(img, image) == 0)
            rm_rf(dir);
        json_decref(j);
    }
    closedir(d);
}

/* At shutdown: a template build must not outlive the service (nobody would
 * ever adopt it). */
void svc_templates_abort(struct svc *s)
{
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (vm->hidden && vm->pid > 0) {
            kill(vm->pid, SIGKILL); /* cannot clean up after itself now */
            svc_remove_instance_files(vm);
        }
}
