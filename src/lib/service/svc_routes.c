/* HTTP routes of the service API (surface.md section 5). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/utf8.h"
#include "base/util.h"
#include <dirent.h>

#include "config/settings.h"
#include "vm/assets_install.h"
#include "service/service.h"
#include "store/session_db.h"

#define LOG_TAIL_DEFAULT 500
#define LOG_TAIL_MAX 10000

/* ---------- helpers ---------- */

static struct svm *vm_from_path(struct svc_req *r, const char *ref)
{
    struct err *e = NULL;
    if (svc_check_ref(ref, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return NULL;
    }
    struct svm *vm = svc_find_vm(r->svc, ref);
    if (!vm)
        svc_reply_error(r, 404, "VM not found: %s", ref);
    return vm;
}

static bool require_running(struct svc_req *r, struct svm *vm, const char *action)
{
    if (vm->status == SVM_RUNNING && !vm->deleting)
        return true;
    svc_reply_error(r, 409, "cannot %s VM in state %s", action,
                    vm->deleting ? "Deleting" : svm_status_name(vm->status));
    return false;
}

static int64_t timeout_arg(struct svc_req *r, json_t *body, bool *ok)
{
    const struct svc_settings *st = &r->svc->settings;
    json_t *t = json_object_get(body, "timeout_secs");
    *ok = true;
    if (!t || json_is_null(t))
        return st->exec_default_timeout_secs;
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > st->exec_max_timeout_secs) {
        svc_reply_error(r, 400, "timeout_secs must be between 1 and %u", st->exec_max_timeout_secs);
        *ok = false;
        return 0;
    }
    return json_integer_value(t);
}

static const char *command_arg(struct svc_req *r, json_t *body)
{
    json_t *c = json_object_get(body, "command");
    if (!json_is_string(c) || json_string_length(c) == 0) {
        svc_reply_error(r, 400, "command must be a non-empty string");
        return NULL;
    }
    return json_string_value(c);
}

/* ---------- simple routes ---------- */

static void route_version(struct svc_req *r)
{
    svc_reply_json(r, 200, json_pack("{s:s}", "version", CAPSEM_VERSION));
}

static void route_status(struct svc_req *r)
{
    struct svc *s = r->svc;
    unsigned counts[4] = {0, 0, 0, 0}, total = 0;
    for (struct svm *vm = s->vms; vm; vm = vm->next) {
        if (vm->gone || vm->hidden)
            continue;
        counts[vm->status]++;
        total++;
    }
    svc_reply_json(r, 200,
                   json_pack("{s:s, s:s, s:b, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "service",
                             "capsem-service", "version", CAPSEM_VERSION, "ready",
                             s->assets_loaded, "accel", s->accel, "max_concurrent_vms",
                             (json_int_t)s->settings.max_concurrent_vms, "vms", "total",
                             (json_int_t)total, "running", (json_int_t)counts[SVM_RUNNING],
                             "stopped", (json_int_t)counts[SVM_STOPPED], "suspended",
                             (json_int_t)counts[SVM_SUSPENDED], "defunct",
                             (json_int_t)counts[SVM_DEFUNCT]));
}

static void route_list(struct svc_req *r)
{
    json_t *arr = json_array();
    for (struct svm *vm = r->svc->vms; vm; vm = vm->next)
        if (!vm->gone && !vm->hidden)
            json_array_append_new(arr, svm_info_json(vm, false));
    svc_reply_json(r, 200, json_pack("{s:o}", "sandboxes", arr));
}

static void route_info(struct svc_req *r, struct svm *vm)
{
    svc_reply_json(r, 200, svm_info_json(vm, true));
}

static void route_vm_status(struct svc_req *r, struct svm *vm)
{
    json_t *full = svm_info_json(vm, false);
    json_t *out = json_object();
    const char *keys[] = {"id",          "name",       "status",     "pid",
                          "persistent",  "uptime_secs", "created_at", "last_error",
                          "can_resume",  "resume_blocked_reason", "available_actions"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        json_t *v = json_object_get(full, keys[i]);
        json_object_set(out, keys[i], v ? v : json_null());
    }
    json_decref(full);
    svc_reply_json(r, 200, out);
}

static char *tail_lines(const char *path, long lines)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (file_read_all(path, 64u << 20, &text, &len, NULL) < 0)
        return strdup("");
    size_t start = len;
    long seen = 0;
    if (start > 0 && text[start - 1] == '\n')
        start--;
    while (start > 0) {
        if (text[start - 1] == '\n' && ++seen >= lines)
            break;
        start--;
    }
    return strdup(text + start);
}

static void route_logs(struct svc_req *r, struct svm *vm)
{
    char buf[32];
    int64_t tail = LOG_TAIL_DEFAULT;
    if (svc_query_get(r, "tail", buf, sizeof(buf)) == 0 &&
        parse_int64(buf, 1, LOG_TAIL_MAX, &tail) < 0) {
        svc_reply_error(r, 400, "tail must be between 1 and %d", LOG_TAIL_MAX);
        return;
    }
    _cleanup_free_ char *serial_path = paths_join(vm->vm_dir, "serial.log");
    _cleanup_free_ char *proc_path = paths_join(vm->vm_dir, "process.log");
    char *serial = tail_lines(serial_path, (long)tail);
    char *proc = tail_lines(proc_path, (long)tail);
    size_t sl = 0, pl = 0;
    char *s8 = utf8_sanitize(serial ? serial : "", serial ? strlen(serial) : 0, &sl);
    char *p8 = utf8_sanitize(proc ? proc : "", proc ? strlen(proc) : 0, &pl);
    free(serial);
    free(proc);
    svc_reply_json(r, 200,
                   json_pack("{s:s%, s:s%, s:s%}", "logs", s8 ? s8 : "", s8 ? sl : 0,
                             "serial_logs", s8 ? s8 : "", s8 ? sl : 0, "process_logs",
                             p8 ? p8 : "", p8 ? pl : 0));
    free(s8);
    free(p8);
}

/* ---------- history ---------- */

static void history_read(struct svc_req *r, struct svm *vm);

static void history_flushed(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    history_read(arg, vm);
}

static void route_history(struct svc_req *r, struct svm *vm)
{
    if (vm->status == SVM_RUNNING && vm->ipc && !vm->deleting) {
        svc_ipc_call(vm->ipc, json_pack("{s:s}", "op", "flush"), NULL, 0, history_flushed, r);
        return;
    }
    history_read(r, vm);
}

static void history_read(struct svc_req *r, struct svm *vm)
{
    svc_history_reply(r, vm); /* svc_stats.c: every layer, since, search */
}

/* ---------- create / delete ---------- */

static void create_up(struct svm *vm, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e)
        svc_reply_error(r, 500, "VM failed to start: %s", e->msg);
    else
        svc_reply_json(r, 200, svm_provision_json(vm));
}

static void route_create(struct svc_req *r)
{
    struct svm_create_args a;
    struct err *e = NULL;
    if (svc_parse_create_args(r->svc, r->json, &a, &e) < 0 ||
        !svc_vm_create(r->svc, &a, create_up, r, &e)) {
        svc_reply_err(r, e);
        err_free(e);
    }
}

static void reply_success(struct svm *vm, void *arg)
{
    svc_reply_json(arg, 200, json_pack("{s:b}", "success", 1));
}

static void route_delete(struct svc_req *r, struct svm *vm)
{
    svc_vm_delete(vm, reply_success, r);
}

/* ---------- stop, pause, resume, save ---------- */

static void reply_stopped(struct svm *vm, void *arg)
{
    svc_reply_json(arg, 200, json_pack("{s:b, s:b}", "success", 1, "persistent", vm->persistent));
}

static void route_stop(struct svc_req *r, struct svm *vm)
{
    if (vm->status == SVM_STOPPED) {
        reply_stopped(vm, r);
        return;
    }
    if (vm->status != SVM_RUNNING || vm->deleting) {
        svc_reply_error(r, 409, "cannot stop VM in state %s", svm_status_name(vm->status));
        return;
    }
    svm_on_exit(vm, reply_stopped, r);
    svc_vm_stop(vm);
}

static void suspended(struct svm *vm, void *arg)
{
    struct svc_req *r = arg;
    if (vm->status == SVM_SUSPENDED)
        svc_reply_json(r, 200, json_pack("{s:b}", "success", 1));
    else
        svc_reply_error(r, 500, "suspend failed: the VM is %s%s%s", svm_status_name(vm->status),
                        vm->last_error ? ": " : "", vm->last_error ? vm->last_error : "");
}

static void suspend_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e && vm->status == SVM_RUNNING && e->status != 500) {
        vm->stopping = false;
        svc_reply_error(r, e->status, "%s", e->msg);
        return;
    }
    if (e && vm->status == SVM_RUNNING) {
        vm->stopping = false;
        svc_reply_error(r, 500, "suspend failed: %s", e->msg);
        return;
    }
    svm_on_exit(vm, suspended, r); /* answered once the process is gone */
}

static void route_pause(struct svc_req *r, struct svm *vm)
{
    if (!vm->persistent) {
        svc_reply_error(r, 400, "ephemeral VMs cannot be suspended (persist first)");
        return;
    }
    if (vm->status != SVM_RUNNING || vm->deleting || vm->stopping || !vm->ipc) {
        svc_reply_error(r, 409, "cannot pause VM in state %s", svm_status_name(vm->status));
        return;
    }
    svc_vm_suspend(vm, suspend_done, r);
}

static void route_resume(struct svc_req *r, struct svm *vm)
{
    if (vm->status == SVM_RUNNING && !vm->deleting) {
        svc_reply_json(r, 200, svm_provision_json(vm));
        return;
    }
    const char *why;
    if (vm->deleting || (vm->status == SVM_DEFUNCT && !svm_can_resume(vm, &why))) {
        svc_reply_error(r, 409, "cannot resume VM in state %s", svm_status_name(vm->status));
        return;
    }
    struct err *e = NULL;
    if (svc_vm_start(vm, create_up, r, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
    }
}

static void route_save(struct svc_req *r, struct svm *vm)
{
    const char *name = json_string_value(json_object_get(r->json, "name"));
    struct err *e = NULL;
    if (!name) {
        svc_reply_error(r, 400, "name is required");
        return;
    }
    if (svc_vm_persist(vm, name, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    svc_reply_json(r, 200, json_pack("{s:b, s:s}", "success", 1, "name", vm->name));
}

/* ---------- exec ---------- */

static void exec_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct svc_req *r = arg;
    if (e)
        svc_reply_error(r, e->status ? e->status : 500, "%s", e->msg);
    else
        svc_reply_json(r, 200, svc_exec_response(f));
}

static void route_exec(struct svc_req *r, struct svm *vm)
{
    if (!require_running(r, vm, "exec in"))
        return;
    const char *cmd = command_arg(r, r->json);
    bool ok;
    int64_t timeout = cmd ? timeout_arg(r, r->json, &ok) : 0;
    if (!cmd || !ok)
        return;
    svc_vm_exec(vm, cmd, timeout, exec_done, r);
}

/* ---------- run: create, exec, delete ---------- */

struct run_job {
    struct svc_req *req;
    char *command;
    int64_t timeout;
    struct svm *vm;
    json_t *result;
    int status;
    bool cancelled;
};

static void run_finish(struct run_job *j)
{
    if (j->req) {
        if (j->result)
            svc_reply_json(j->req, j->status, j->result);
        else
            svc_reply_error(j->req, 500, "run failed");
    } else {
        json_decref(j->result);
    }
    free(j->command);
    free(j);
}

static void run_gone(struct svm *vm, void *arg)
{
    run_finish(arg);
}

static void run_exec_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct run_job *j = arg;
    if (e) {
        j->status = e->status ? e->status : 500;
        j->result = json_pack("{s:s}", "error", e->msg);
    } else {
        j->status = 200;
        j->result = svc_exec_response(f);
    }
    /* The VM goes either way; answer once it is gone, so a `list` right
     * after `run` never shows it. */
    j->vm = NULL;
    svc_vm_delete(vm, run_gone, j);
}

static void run_up(struct svm *vm, const struct err *e, void *arg)
{
    struct run_job *j = arg;
    if (e) {
        j->status = 500;
        j->result = json_pack("{s:s}", "error", e->msg);
        run_finish(j);
        return;
    }
    if (j->cancelled) {
        svc_vm_delete(vm, run_gone, j);
        return;
    }
    j->vm = vm;
    svc_vm_exec(vm, j->command, j->timeout, run_exec_done, j);
}

static void run_cancel(struct svc_req *r)
{
    struct run_job *j = r->owner;
    j->cancelled = true;
    j->req = NULL;
    if (j->vm)
        svc_vm_delete(j->vm, NULL, NULL); /* run_exec_done still fires and frees j */
}

static void route_run(struct svc_req *r)
{
    const char *cmd = command_arg(r, r->json);
    bool ok;
    int64_t timeout = cmd ? timeout_arg(r, r->json, &ok) : 0;
    if (!cmd || !ok)
        return;
    json_object_del(r->json, "name");
    json_object_del(r->json, "persistent");
    struct svm_create_args a;
    struct err *e = NULL;
    if (svc_parse_create_args(r->svc, r->json, &a, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    struct run_job *j = calloc(1, sizeof(*j));
    if (!j) {
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    j->req = r;
    j->command = strdup(cmd);
    j->timeout = timeout;
    r->owner = j;
    r->on_cancel = run_cancel;
    if (!svc_vm_create(r->svc, &a, run_up, j, &e)) {
        r->on_cancel = NULL;
        svc_reply_err(r, e);
        err_free(e);
        free(j->command);
        free(j);
    }
}

/* ---------- purge ---------- */

struct purge {
    struct svc_req *req;
    unsigned pending, persistent, ephemeral;
    bool all;
};

/* After `purge --all`: asset versions nobody uses go (surface.md section 9).
 * Images pin their base version; so would VMs, but there are none left. */
static void cleanup_assets(struct svc *s)
{
    const char *keep[256];
    size_t n = 0;
    DIR *d = opendir(s->images_dir);
    struct dirent *de;
    json_t *infos = json_array();
    while (d && (de = readdir(d)) != NULL && n < ARRAY_SIZE(keep)) {
        json_t *info = NULL;
        if (de->d_name[0] == '.' || svc_image_lookup(s, de->d_name, &info, NULL) < 0)
            continue;
        json_array_append_new(infos, info);
        const char *bv = json_string_value(json_object_get(info, "base_version"));
        if (bv)
            keep[n++] = bv;
    }
    if (d)
        closedir(d);
    for (struct svm *vm = s->vms; vm && n < ARRAY_SIZE(keep); vm = vm->next)
        if (vm->base_version)
            keep[n++] = vm->base_version;
    struct err *e = NULL;
    if (assets_cleanup(s->assets_dir, keep, n, &e) < 0)
        log_warn("asset cleanup: %s", err_msg(e));
    err_free(e);
    json_decref(infos);
}

static void purge_one_gone(struct svm *vm, void *arg)
{
    struct purge *p = arg;
    if (--p->pending > 0)
        return;
    if (p->all)
        cleanup_assets(p->req->svc);
    svc_reply_json(p->req, 200,
                   json_pack("{s:I, s:I, s:I}", "purged", (json_int_t)(p->persistent + p->ephemeral),
                             "persistent_purged", (json_int_t)p->persistent, "ephemeral_purged",
                             (json_int_t)p->ephemeral));
    free(p);
}

static void route_purge(struct svc_req *r)
{
    json_t *all = json_object_get(r->json, "all");
    if (all && !json_is_boolean(all)) {
        svc_reply_error(r, 400, "all must be a boolean");
        return;
    }
    struct purge *p = calloc(1, sizeof(*p));
    if (!p) {
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    p->req = r;
    p->all = json_is_true(all);
    p->pending = 1; /* held until every delete was issued */
    for (struct svm *vm = r->svc->vms, *next; vm; vm = next) {
        next = vm->next;
        if (vm->gone || vm->hidden || (vm->persistent && !json_is_true(all)))
            continue;
        vm->persistent ? p->persistent++ : p->ephemeral++;
        p->pending++;
        svc_vm_delete(vm, purge_one_gone, p);
    }
    purge_one_gone(NULL, p);
}

/* ---------- service logs, profiles ---------- */

static void route_service_logs(struct svc_req *r)
{
    char buf[64], grep[256] = "";
    int64_t tail = LOG_TAIL_DEFAULT;
    if (svc_query_get(r, "tail", buf, sizeof(buf)) == 0 &&
        parse_int64(buf, 1, LOG_TAIL_MAX, &tail) < 0) {
        svc_reply_error(r, 400, "tail must be between 1 and %d", LOG_TAIL_MAX);
        return;
    }
    svc_query_get(r, "grep", grep, sizeof(grep));
    _cleanup_free_ char *logs = paths_join(r->svc->home, "logs/service.log");
    _cleanup_free_ char *text = tail_lines(logs, grep[0] ? LOG_TAIL_MAX : (long)tail);
    struct buf out;
    buf_init(&out, 64u << 20);
    /* Filter (case-insensitive substring), then keep the last `tail` lines. */
    size_t kept = 0;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char save = line[len];
        line[len] = '\0';
        if (!grep[0] || strcasestr(line, grep)) {
            buf_append(&out, line, len);
            buf_append(&out, "\n", 1);
            kept++;
        }
        line[len] = save;
    }
    const uint8_t *start = buf_head(&out);
    size_t n = out.len;
    for (size_t skip = kept > (size_t)tail ? kept - (size_t)tail : 0; skip > 0; skip--) {
        const uint8_t *nl = memchr(start, '\n', n);
        n -= (size_t)(nl + 1 - start);
        start = nl + 1;
    }
    svc_reply_raw(r, 200, "text/plain; charset=utf-8", start, n, NULL);
    buf_free(&out);
}

static void route_settings_info(struct svc_req *r)
{
    svc_reply_json(r, 200, settings_info_json(r->svc->config));
}

static void route_settings_edit(struct svc_req *r)
{
    struct err *e = NULL;
    if (settings_edit(r->svc->config, r->json, &e) < 0) {
        svc_reply_err(r, e);
        err_free(e);
        return;
    }
    svc_settings_apply(&r->svc->settings, r->svc->config);
    log_info("settings edited through the API");
    svc_reply_json(r, 200, settings_info_json(r->svc->config));
}

static void route_profiles(struct svc_req *r)
{
    struct svc *s = r->svc;
    static const struct {
        const char *id, *name, *description;
    } known[] = {
        {"code", "Code", "Debian bookworm with git, Python 3, Node.js and common tools"},
        {"minimal", "Minimal", "bash and busybox; boots fastest"},
    };
    json_t *arr = json_array();
    const struct asset_version *v = s->assets_loaded ? assets_find(&s->assets, s->assets.current)
                                                     : NULL;
    for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
        const struct asset_file *f = v ? assets_rootfs(v, known[i].id) : NULL;
        struct stat st;
        bool ready = f && stat(f->path, &st) == 0 && (uint64_t)st.st_size == f->size;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b}", "id", known[i].id, "name",
                                             known[i].name, "description", known[i].description,
                                             "ready", ready));
    }
    svc_reply_json(r, 200, json_pack("{s:o}", "profiles", arr));
}

/* ---------- dispatch ---------- */

struct vm_route {
    const char *method;
    const char *action; /* a last segment of "*" stands for any one segment */
    void (*fn)(struct svc_req *r, struct svm *vm);
};

/* svc_asks.c */

static const struct vm_route vm_routes[] = {
    {"GET", "info", route_info},
    {"GET", "status", route_vm_status},
    {"POST", "exec", route_exec},
    {"DELETE", "delete", route_delete},
    {"POST", "stop", route_stop},
    {"POST", "pause", route_pause},
    {"POST", "resume", route_resume},
    {"POST", "start", route_resume},
    {"POST", "save", route_save},
    {"POST", "fork", svc_fork},
    {"GET", "logs", route_logs},
    {"GET", "history", route_history},
    {"GET", "stats", svc_stats_route},
    {"POST", "files/read", svc_files_read},
    {"POST", "files/write", svc_files_write},
    {"GET", "files/content", svc_files_download},
    {"POST", "files/content", svc_files_upload},
    {"GET", "files/list", svc_files_list},
    {"GET", "asks", svc_asks_list},
    {"POST", "asks/*", svc_asks_resolve},
};

static bool action_matches(const char *pattern, const char *action)
{
    size_t n = strlen(pattern);
    if (n < 2 || strcmp(pattern + n - 2, "/*") != 0)
        return strcmp(pattern, action) == 0;
    return strncmp(pattern, action, n - 1) == 0 && action[n - 1] &&
           !strchr(action + n - 1, '/');
}

static void dispatch_vm(struct svc_req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    if (!slash) {
        svc_reply_empty(r, 404);
        return;
    }
    char ref[256];
    if ((size_t)(slash - rest) >= sizeof(ref)) {
        svc_reply_error(r, 400, "invalid VM reference");
        return;
    }
    memcpy(ref, rest, (size_t)(slash - rest));
    ref[slash - rest] = '\0';
    const char *action = slash + 1;
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(vm_routes); i++) {
        if (!action_matches(vm_routes[i].action, action))
            continue;
        known = true;
        if (strcmp(vm_routes[i].method, r->method) != 0)
            continue;
        struct svm *vm = vm_from_path(r, ref);
        if (!vm)
            return;
        vm_routes[i].fn(r, vm);
        return;
    }
    svc_reply_empty(r, known ? 405 : 404);
}

void svc_dispatch(struct svc_req *r)
{
    const char *p = r->path;
    struct {
        const char *method, *path;
        void (*fn)(struct svc_req *);
    } routes[] = {
        {"GET", "/version", route_version},
        {"GET", "/status", route_status},
        {"POST", "/vms/create", route_create},
        {"GET", "/vms/list", route_list},
        {"POST", "/run", route_run},
        {"POST", "/purge", route_purge},
        {"GET", "/service-logs", route_service_logs},
        {"GET", "/profiles/list", route_profiles},
        {"GET", "/settings/info", route_settings_info},
        {"PATCH", "/settings/edit", route_settings_edit},
    };
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        if (strcmp(routes[i].path, p) != 0)
            continue;
        known = true;
        if (strcmp(routes[i].method, r->method) == 0) {
            routes[i].fn(r);
            return;
        }
    }
    if (known) {
        svc_reply_empty(r, 405);
        return;
    }
    if (str_has_prefix(p, "/vms/") && p[5]) {
        dispatch_vm(r, p + 5);
        return;
    }
    if (str_has_prefix(p, "/images/") && p[8]) {
        svc_images_route(r, p + 8);
        return;
    }
    svc_reply_empty(r, 404);
}
