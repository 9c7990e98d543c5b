/* The VM registry: lookup, validation, JSON views, and the on-disk record
 * of each VM (meta.json in its directory, written atomically). Named VMs
 * live in run/persistent/<id>/, ephemeral ones in run/sessions/<id>/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/sockpath.h"
#include "base/util.h"
#include "base/uuid.h"
#include "service/service.h"
#include "store/main_db.h"
#include "store/session_db.h"

#define META_MAX (1024u * 1024u)

const char *svm_status_name(enum svm_status s)
{
    static const char *const names[] = {"Running", "Stopped", "Suspended", "Defunct"};
    return names[s];
}

/* ---------- lookup and validation ---------- */

int svc_check_ref(const char *ref, struct err **errp)
{
    if (!ref || !*ref || strchr(ref, '/') || strchr(ref, '\\') || strstr(ref, ".."))
        return err_status(errp, 400, "invalid VM reference: %s", ref ? ref : "");
    return 0;
}

struct svm *svc_find_vm(struct svc *s, const char *ref)
{
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && !vm->hidden && strcmp(vm->id, ref) == 0)
            return vm;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && !vm->hidden && strcmp(vm->name, ref) == 0)
            return vm;
    return NULL;
}

unsigned svc_running_count(struct svc *s)
{
    unsigned n = 0;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        if (!vm->gone && !vm->hidden && vm->status == SVM_RUNNING)
            n++;
    return n;
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Names of VMs and images (surface.md section 1). */
int svc_check_name(const char *what, const char *name, struct err **errp)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 64)
        return err_status(errp, 400, "invalid %s name: must be 1-64 characters", what);
    if (!alnum(name[0]))
        return err_status(errp, 400, "invalid %s name: %s (must start with a letter or digit)",
                          what, name);
    for (size_t i = 0; i < n; i++)
        if (!alnum(name[i]) && name[i] != '_' && name[i] != '-')
            return err_status(errp, 400, "invalid %s name: %s (allowed: A-Z a-z 0-9 _ -)", what,
                              name);
    if (uuid_shaped(name))
        return err_status(errp, 400, "invalid %s name: %s (must not look like a VM id)", what,
                          name);
    return 0;
}

static bool env_name_ok(const char *k)
{
    if (!((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!alnum(*p) && *p != '_')
            return false;
    static const char *const banned[] = {"BASH_ENV", "ENV", "IFS", "CDPATH"};
    for (size_t i = 0; i < ARRAY_SIZE(banned); i++)
        if (strcmp(k, banned[i]) == 0)
            return false;
    return !str_has_prefix(k, "CAPSEM_") && !str_has_prefix(k, "LD_") &&
           !str_has_prefix(k, "BASH_FUNC_");
}

static int check_env(json_t *env, struct err **errp)
{
    if (!env || json_is_null(env))
        return 0;
    if (!json_is_object(env))
        return err_status(errp, 400, "env must be an object of strings");
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!json_is_string(v))
            return err_status(errp, 400, "env %s: value must be a string", k);
        if (!env_name_ok(k))
            return err_status(errp, 400, "env name not allowed: %s", k);
        size_t n = json_string_length(v);
        if (n > 32 * 1024)
            return err_status(errp, 400, "env %s: value longer than 32 KiB", k);
        total += n + strlen(k) + 1;
    }
    if (total > 256 * 1024)
        return err_status(errp, 400, "env: more than 256 KiB in total");
    return 0;
}

static int get_int_field(json_t *body, const char *key, int64_t *out, struct err **errp)
{
    json_t *v = json_object_get(body, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return err_status(errp, 400, "%s must be an integer", key);
    *out = json_integer_value(v);
    return 0;
}

static int get_str_field(json_t *body, const char *key, const char **out, struct err **errp)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return err_status(errp, 400, "%s must be a string", key);
    *out = json_string_value(v);
    return 0;
}

int svc_parse_create_args(struct svc *s, json_t *body, struct svm_create_args *a,
                          struct err **errp)
{
    memset(a, 0, sizeof(*a));
    const struct svc_settings *st = &s->settings;
    int64_t owner = 0;
    if (get_str_field(body, "name", &a->name, errp) < 0 ||
        get_str_field(body, "profile_id", &a->profile, errp) < 0 ||
        get_str_field(body, "image", &a->image, errp) < 0 ||
        (!a->image && get_str_field(body, "from", &a->image, errp) < 0) ||
        get_int_field(body, "cpus", &a->cpus, errp) < 0 ||
        get_int_field(body, "ram_mb", &a->ram_mb, errp) < 0 ||
        get_int_field(body, "owner_pid", &owner, errp) < 0)
        return -1;
    json_t *p = json_object_get(body, "persistent");
    if (p && !json_is_null(p) && !json_is_boolean(p))
        return err_status(errp, 400, "persistent must be a boolean");
    a->persistent = a->name != NULL || json_is_true(p);
    if (a->name && svc_check_name("VM", a->name, errp) < 0)
        return -1;
    if (a->image && svc_check_name("image", a->image, errp) < 0)
        return -1;
    if (a->cpus && (a->cpus < st->cpus_min || a->cpus > st->cpus_max))
        return err_status(errp, 400, "cpus must be between %u and %u", st->cpus_min,
                          st->cpus_max);
    if (a->ram_mb && (a->ram_mb < st->ram_mb_min || a->ram_mb > st->ram_mb_max))
        return err_status(errp, 400, "ram_mb must be between %u and %u", st->ram_mb_min,
                          st->ram_mb_max);
    if (owner < 0 || owner > 4194304)
        return err_status(errp, 400, "owner_pid is not a valid pid");
    a->owner_pid = (pid_t)owner;
    a->env = json_object_get(body, "env");
    return check_env(a->env, errp);
}

/* ---------- JSON views ---------- */

bool svm_can_resume(struct svm *vm, const char **why)
{
    *why = NULL;
    if (vm->status == SVM_RUNNING)
        return false;
    struct svc *s = vm->svc;
    const struct asset_version *v =
        s->assets_loaded && vm->base_version ? assets_find(&s->assets, vm->base_version) : NULL;
    if (!v) {
        *why = "base assets are not installed";
        return false;
    }
    const struct asset_file *files[] = {&v->kernel, &v->initrd, assets_rootfs(v, vm->profile)};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        struct stat st;
        if (!files[i] || stat(files[i]->path, &st) < 0 || (uint64_t)st.st_size != files[i]->size) {
            *why = "base assets are missing or do not match";
            return false;
        }
    }
    _cleanup_free_ char *ovl = paths_join(vm->vm_dir, "overlay.img");
    if (!ovl || access(ovl, F_OK) != 0) {
        *why = "the overlay disk is missing";
        return false;
    }
    return true;
}

static json_t *actions_json(struct svm *vm)
{
    json_t *a = json_array();
    const char *why;
    switch (vm->status) {
    case SVM_RUNNING:
        if (vm->persistent)
            json_array_append_new(a, json_string("pause"));
        json_array_append_new(a, json_string("stop"));
        json_array_append_new(a, json_string("fork"));
        break;
    case SVM_STOPPED:
        json_array_append_new(a, json_string("start"));
        json_array_append_new(a, json_string("fork"));
        break;
    case SVM_SUSPENDED:
        json_array_append_new(a, json_string("resume"));
        json_array_append_new(a, json_string("fork"));
        break;
    case SVM_DEFUNCT:
        if (svm_can_resume(vm, &why))
            json_array_append_new(a, json_string("start"));
        break;
    }
    json_array_append_new(a, json_string("delete"));
    return a;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static int64_t dir_usage(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode))
            total += (int64_t)st.st_blocks * 512;
    }
    closedir(d);
    return total;
}

json_t *svm_info_json(struct svm *vm, bool detailed)
{
    char created[32];
    time_format_rfc3339(vm->created_at, created, sizeof(created));
    const char *why = NULL;
    bool can_resume = svm_can_resume(vm, &why);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:o, s:o, s:s, s:o, s:b, "
                          "s:o, s:o, s:s}",
                          "id", vm->id, "name", vm->name, "profile_id", vm->profile, "status",
                          svm_status_name(vm->status), "persistent", vm->persistent, "pid",
                          (json_int_t)(vm->status == SVM_RUNNING ? vm->pid : 0), "cpus",
                          (json_int_t)vm->cpus, "ram_mb", (json_int_t)vm->ram_mb, "image",
                          str_or_null(vm->image), "base_version", str_or_null(vm->base_version),
                          "created_at", created, "last_error", str_or_null(vm->last_error),
                          "can_resume", can_resume, "resume_blocked_reason",
                          vm->status != SVM_RUNNING && !can_resume ? str_or_null(why) : json_null(),
                          "available_actions", actions_json(vm), "uds_path", vm->uds_path);
    if (vm->status == SVM_RUNNING)
        json_object_set_new(j, "uptime_secs",
                            json_integer((json_int_t)((time_mono_ms() - vm->started_ms) / 1000)));
    if (detailed) {
        json_object_set_new(j, "size_bytes", json_integer(dir_usage(vm->vm_dir)));
        json_object_set_new(j, "accel", json_string(vm->svc->accel));
        json_object_set_new(j, "guest_ready", json_boolean(vm->guest_ready));
        struct session_db_counters c = {0};
        _cleanup_free_ char *db = paths_join(vm->vm_dir, "session.db");
        if (db)
            session_db_read_counters(db, &c, NULL);
        json_object_set_new(j, "total_requests", json_integer(c.net_requests));
        json_object_set_new(j, "allowed_requests", json_integer(c.net_allowed));
        json_object_set_new(j, "denied_requests", json_integer(c.net_denied));
        json_object_set_new(j, "total_tool_calls", json_integer(c.tool_calls));
    }
    return j;
}

json_t *svm_provision_json(struct svm *vm)
{
    const char *why;
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:s}", "id", vm->id, "name", vm->name,
                     "profile_id", vm->profile, "status", svm_status_name(vm->status),
                     "persistent", vm->persistent, "can_resume", svm_can_resume(vm, &why),
                     "available_actions", actions_json(vm), "uds_path", vm->uds_path);
}

/* ---------- the on-disk record ---------- */

struct svm *svm_alloc(struct svc *s)
{
    struct svm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    vm->svc = s;
    vm->owner_fd = -1;
    vm->env = json_object();
    return vm;
}

void svm_append(struct svc *s, struct svm *vm)
{
    struct svm **tail = &s->vms;
    while (*tail)
        tail = &(*tail)->next;
    vm->next = NULL;
    *tail = vm;
}

static void index_vm(struct svm *vm);

int svm_save(struct svm *vm, struct err **errp)
{
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:b, s:I, s:I, s:O, s:o, s:o, s:I, s:o, s:b, s:I}",
                          "format", 1, "id", vm->id, "name", vm->name, "profile", vm->profile,
                          "persistent", vm->persistent, "cpus", (json_int_t)vm->cpus, "ram_mb",
                          (json_int_t)vm->ram_mb, "env", vm->env, "image", str_or_null(vm->image),
                          "base_version", str_or_null(vm->base_version), "created_at",
                          (json_int_t)vm->created_at, "last_error", str_or_null(vm->last_error),
                          "defunct", vm->defunct, "owner_pid", (json_int_t)vm->owner_pid);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!text)
        return err_set(errp, ENOMEM, "out of memory");
    _cleanup_free_ char *path = paths_join(vm->vm_dir, "meta.json");
    int rc = file_write_atomic(path, text, strlen(text), 0600, errp);
    free(text);
    index_vm(vm);
    return rc;
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    str_copy(dst, cap, s ? s : "");
}

struct svm *svm_load(struct svc *s, const char *dir, struct err **errp)
{
    _cleanup_free_ char *path = paths_join(dir, "meta.json");
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (file_read_all(path, META_MAX, &text, &len, errp) < 0)
        return NULL;
    json_t *j = json_loadb(text, len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!j || !id || !uuid_shaped(id) || !name) {
        json_decref(j);
        return err_status(errp, 500, "%s: not a valid VM record", path), NULL;
    }
    struct svm *vm = svm_alloc(s);
    if (!vm) {
        json_decref(j);
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    }
    copy_str(vm->id, sizeof(vm->id), json_object_get(j, "id"));
    copy_str(vm->name, sizeof(vm->name), json_object_get(j, "name"));
    copy_str(vm->profile, sizeof(vm->profile), json_object_get(j, "profile"));
    copy_str(vm->image, sizeof(vm->image), json_object_get(j, "image"));
    vm->persistent = json_is_true(json_object_get(j, "persistent"));
    vm->cpus = (uint32_t)json_integer_value(json_object_get(j, "cpus"));
    vm->ram_mb = (uint32_t)json_integer_value(json_object_get(j, "ram_mb"));
    json_t *env = json_object_get(j, "env");
    if (json_is_object(env))
        json_object_update(vm->env, env);
    const char *bv = json_string_value(json_object_get(j, "base_version"));
    vm->base_version = bv ? strdup(bv) : NULL;
    vm->created_at = (uint64_t)json_integer_value(json_object_get(j, "created_at"));
    const char *le = json_string_value(json_object_get(j, "last_error"));
    vm->last_error = le ? strdup(le) : NULL;
    vm->defunct = json_is_true(json_object_get(j, "defunct"));
    vm->owner_pid = (pid_t)json_integer_value(json_object_get(j, "owner_pid"));
    json_decref(j);
    vm->vm_dir = strdup(dir);
    char sock[4096];
    snprintf(sock, sizeof(sock), "%s/%s.sock", s->instances_dir, vm->id);
    vm->uds_path = strdup(sock);
    return vm;
}

void svc_vm_free(struct svm *vm)
{
    struct svc *s = vm->svc;
    for (struct svm **pp = &s->vms; *pp; pp = &(*pp)->next) {
        if (*pp == vm) {
            *pp = vm->next;
            break;
        }
    }
    if (vm->owner_ev)
        event_free(vm->owner_ev);
    if (vm->owner_fd >= 0)
        close(vm->owner_fd);
    if (vm->connect_ev)
        event_free(vm->connect_ev);
    if (vm->kill_ev)
        event_free(vm->kill_ev);
    while (vm->exit_waiters) {
        struct svm_waiter *w = vm->exit_waiters;
        vm->exit_waiters = w->next;
        free(w);
    }
    svc_ipc_free(vm->ipc);
    json_decref(vm->env);
    free(vm->base_version);
    free(vm->vm_dir);
    free(vm->uds_path);
    free(vm->last_error);
    free(vm->template_ckpt);
    free(vm);
}

int rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *child = paths_join(path, de->d_name);
        struct stat st;
        if (child && lstat(child, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rm_rf(child);
            else
                unlink(child);
        }
    }
    closedir(d);
    return rmdir(path);
}

static bool name_taken(const char *name, void *arg)
{
    return svc_find_vm(arg, name) != NULL;
}

char *svc_generate_name(struct svc *s, const char *profile)
{
    char name[80];
    struct err *e = NULL;
    if (main_db_next_name(s->db, profile, name_taken, s, name, sizeof(name), &e) == 0)
        return strdup(name);
    /* The index is unusable: fall back to an in-memory counter. */
    log_warn("main.db: %s", err_msg(e));
    err_free(e);
    for (;;) {
        snprintf(name, sizeof(name), "%s-x%llu", profile, (unsigned long long)++s->name_counter);
        if (!svc_find_vm(s, name))
            return strdup(name);
    }
}

/* Mirrors the VM into sessions/main.db (the index; meta.json is the truth). */
static void index_vm(struct svm *vm)
{
    char *env = json_dumps(vm->env, JSON_COMPACT);
    struct main_db_session row = {.vm_id = vm->id,
                                  .name = vm->name,
                                  .profile = vm->profile,
                                  .persistent = vm->persistent,
                                  .status = svm_status_name(vm->status),
                                  .created_at = (int64_t)vm->created_at * 1000,
                                  .stopped_at = vm->status == SVM_RUNNING ? 0 : time_real_ms(),
                                  .session_dir = vm->vm_dir,
                                  .image = vm->image[0] ? vm->image : NULL,
                                  .base_version = vm->base_version,
                                  .cpus = (int)vm->cpus,
                                  .ram_mb = (int)vm->ram_mb,
                                  .env_json = env,
                                  .owner_pid = vm->owner_pid,
                                  .last_error = vm->last_error};
    struct err *e = NULL;
    if (vm->svc->db && main_db_upsert_session(vm->svc->db, &row, &e) < 0)
        log_warn("main.db: %s", err_msg(e));
    err_free(e);
    free(env);
}

/* ---------- loading at start ---------- */

/* A VM directory without a live process: a persistent VM is Stopped,
 * Suspended or Defunct; an ephemeral one crashed while nobody watched. */
static void load_dir(struct svc *s, const char *parent, const char *name)
{
    _cleanup_free_ char *dir = paths_join(parent, name);
    struct err *e = NULL;
    struct svm *vm = svm_load(s, dir, &e);
    if (!vm) {
        log_warn("VM directory %s: %s; leaving it alone", dir, err_msg(e));
        err_free(e);
        return;
    }
    /* Generated names must not be handed out again. */
    const char *dash = strrchr(vm->name, '-');
    int64_t n;
    if (dash && strncmp(vm->name, vm->profile, (size_t)(dash - vm->name)) == 0 &&
        parse_int64(dash + 1, 1, INT64_MAX, &n) == 0 && (uint64_t)n > s->name_counter)
        s->name_counter = (uint64_t)n;
    int fd = sockpath_connect(vm->uds_path, NULL);
    if (fd >= 0) {
        vm->status = SVM_RUNNING;
        svm_append(s, vm);
        svc_vm_adopt(vm, fd);
        return;
    }
    const char *suffixes[] = {".sock", "-ws.sock", ".ready"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        char path[4200], real[SOCKPATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s%s", s->instances_dir, vm->id, suffixes[i]);
        if (sockpath_resolve(path, real, sizeof(real), NULL) == 0)
            unlink(real);
    }
    if (!vm->persistent) {
        char dst[4200];
        snprintf(dst, sizeof(dst), "%s-failed-%lld", dir, (long long)time(NULL));
        log_info("ephemeral VM %s has no live process; keeping its directory as %s", vm->name,
                 dst);
        rename(dir, dst);
        svc_vm_free(vm);
        return;
    }
    _cleanup_free_ char *ckpt = paths_join(dir, "checkpoint.bin");
    vm->status = vm->defunct                         ? SVM_DEFUNCT
                 : ckpt && access(ckpt, F_OK) == 0 ? SVM_SUSPENDED
                                                     : SVM_STOPPED;
    svm_append(s, vm);
    log_info("VM %s: %s", vm->name, svm_status_name(vm->status));
}

static void scan(struct svc *s, const char *parent)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    while ((de = readdir(d)) != NULL) {
        if (!uuid_shaped(de->d_name))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof(*names));
        if (!nn)
            break;
        names = nn;
        names[n] = strdup(de->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    /* Oldest first, by creation time of the record. */
    for (size_t i = 0; i < n; i++) {
        load_dir(s, parent, names[i]);
        free(names[i]);
    }
    free(names);
}

static int by_created(const void *a, const void *b)
{
    const struct svm *x = *(struct svm *const *)a, *y = *(struct svm *const *)b;
    return x->created_at < y->created_at ? -1 : x->created_at > y->created_at;
}

void svc_load_registry(struct svc *s)
{
    scan(s, s->persistent_dir);
    scan(s, s->sessions_dir);
    size_t n = 0;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        n++;
    if (n < 2)
        return;
    struct svm **arr = calloc(n, sizeof(*arr));
    if (!arr)
        return;
    size_t i = 0;
    for (struct svm *vm = s->vms; vm; vm = vm->next)
        arr[i++] = vm;
    qsort(arr, n, sizeof(*arr), by_created);
    s->vms = NULL;
    for (i = 0; i < n; i++)
        svm_append(s, arr[i]);
    free(arr);
}
