/* capsem-service internals: one libevent reactor serving the HTTP API on
 * run/service.sock, owning the VM registry and one IPC connection to each
 * VM's capsem-process. */
#ifndef CAPSEM_SERVICE_H
#define CAPSEM_SERVICE_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/err.h"
#include "ipc/ipc.h"
#include "vm/assets.h"

/* Settings (surface.md section 10); compiled-in defaults for now. */
struct svc_settings {
    uint32_t vm_cpus;
    uint32_t vm_ram_mb;
    uint32_t vm_disk_gb;
    char vm_profile[32];
    uint32_t boot_timeout_secs;
    uint32_t shutdown_grace_secs;
    uint32_t cpus_min, cpus_max;
    uint32_t ram_mb_min, ram_mb_max;
    uint32_t max_concurrent_vms;
    uint32_t exec_default_timeout_secs;
    uint32_t exec_max_timeout_secs;
    uint64_t exec_max_output_bytes;
    uint32_t exec_max_concurrent_per_vm;
    uint64_t files_max_bytes;
    uint32_t failed_keep;
    char accel_setting[16];
    char qemu_binary[256];
    json_t *vm_env; /* vm.env: variables for every guest (owned) */
};
void svc_settings_defaults(struct svc_settings *s);
struct settings;
/* Copies the layered settings (config/settings.h) into the service's view. */
void svc_settings_apply(struct svc_settings *dst, const struct settings *src);

enum svm_status { SVM_RUNNING, SVM_STOPPED, SVM_SUSPENDED, SVM_DEFUNCT };
const char *svm_status_name(enum svm_status s);

struct svc;
struct svm;
struct svc_req;
struct svc_ipc;
struct main_db;

typedef void (*ipc_reply_fn)(struct svm *vm, struct ipc_frame *reply, const struct err *e,
                             void *arg);

/* Called when a VM's process is gone (stop, suspend, delete, crash); vm is
 * still valid during the call but may be freed right after. */
typedef void (*svm_exit_fn)(struct svm *vm, void *arg);
struct svm_waiter {
    svm_exit_fn fn;
    void *arg;
    struct svm_waiter *next;
};

struct svm {
    struct svc *svc;
    char id[37];
    char name[65];
    char profile[32];
    char image[65];  /* source image name, "" for none */
    bool persistent;
    uint32_t cpus;
    uint32_t ram_mb;
    json_t *env; /* object K -> V (request env) */
    char *base_version;
    enum svm_status status;
    bool defunct;      /* persistent VM whose last boot failed */
    bool guest_ready;
    bool deleting;
    bool stopping;     /* stop or suspend asked; the exit is expected */
    bool gone;         /* removed; the entry is about to be freed */
    pid_t pid;         /* capsem-process, 0 when not running */
    bool is_child;
    bool proc_exited;  /* our child and reaped */
    char exit_reason[32]; /* from the process's exited event */
    uint64_t created_at;  /* unix seconds */
    uint64_t started_ms;  /* monotonic, for uptime */
    char *vm_dir;
    char *uds_path;
    char *last_error;
    pid_t owner_pid;
    int owner_fd;
    struct event *owner_ev;
    struct svc_ipc *ipc;
    struct event *connect_ev; /* retry timer while the process starts */
    unsigned connect_tries;
    void (*on_up)(struct svm *vm, const struct err *e, void *arg);
    void *on_up_arg;
    struct svm_waiter *exit_waiters;
    struct event *kill_ev;
    bool forking; /* a fork copies its disks right now */
    bool hidden;  /* a boot-template build: not listed, not counted */
    bool wants_template; /* build a boot template once this cold VM is ready */
    char *template_ckpt; /* restore this shared checkpoint at the next launch */
    struct svm *next;
};

struct svc {
    struct event_base *base;
    struct svc_settings settings;
    char *home;
    char *run_dir;
    char *uds_path;
    char *assets_dir;
    char *process_binary;
    char *sessions_dir;  /* run/sessions: ephemeral VMs */
    char *persistent_dir; /* run/persistent: named VMs */
    char *images_dir;    /* images/ */
    char *share_dir;     /* bundled profiles and price table */
    char *instances_dir; /* run/instances */
    char *template_dir;  /* ext4 templates */
    const char *accel;
    uint32_t tsc_khz;
    struct assets assets;
    bool assets_loaded;
    struct err *assets_error;
    struct svm *vms; /* oldest first */
    struct main_db *db; /* sessions/main.db: names, index */
    struct settings *config; /* user.toml + corp file */
    bool template_building;
    uint64_t name_counter;
    int listen_fd;
    struct event *listen_ev;
    int lock_fd;
    int log_fd;
    pid_t parent_pid;
    struct event *parent_ev;
    struct event *sig_ev[4];
    struct svc_http_conn *conns;
    bool stopping;
};

/* ---- svc_main.c ---- */
int svc_main(int argc, char **argv);

/* ---- svc_http.c: the HTTP/1.1 server (uses net/http1) ---- */
struct svc_req {
    struct svc *svc;
    struct svc_http_conn *conn; /* NULL once the client went away */
    char method[16];
    char *target; /* as received */
    char *path;  /* without the query */
    char *query; /* raw, may be NULL */
    uint8_t *body;
    size_t body_len;
    json_t *json; /* body as JSON (an object; {} when empty), for JSON routes */
    void (*on_cancel)(struct svc_req *r);
    void *owner;
    void (*owner_free)(void *owner); /* called when the request is freed */
};
int svc_http_listen(struct svc *s, struct err **errp);
void svc_http_close_all(struct svc *s);
/* Each reply frees the request; the connection may be gone (no-op then). */
void svc_reply_json(struct svc_req *r, int status, json_t *body);
void svc_reply_error(struct svc_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void svc_reply_err(struct svc_req *r, const struct err *e);
void svc_reply_raw(struct svc_req *r, int status, const char *content_type, const void *data,
                   size_t len, const char *extra_headers);
void svc_reply_empty(struct svc_req *r, int status);
/* Query parameter (percent-decoded) into buf; -1 if absent. */
int svc_query_get(const struct svc_req *r, const char *key, char *buf, size_t cap);

/* ---- svc_routes.c ---- */
void svc_dispatch(struct svc_req *r);

/* ---- svc_vms.c: registry, validation, JSON views ---- */
struct svm *svc_find_vm(struct svc *s, const char *ref);
int svc_check_ref(const char *ref, struct err **errp);
int svc_check_name(const char *what, const char *name, struct err **errp);
json_t *svm_info_json(struct svm *vm, bool detailed);
json_t *svm_provision_json(struct svm *vm);
/* can_resume with the reason when not (static string) or NULL. */
bool svm_can_resume(struct svm *vm, const char **why);
struct svm_create_args {
    const char *name;
    const char *profile;
    const char *image;
    int64_t cpus;    /* 0 = default */
    int64_t ram_mb;  /* 0 = default */
    bool persistent;
    json_t *env;     /* borrowed object or NULL */
    pid_t owner_pid;
};
int svc_parse_create_args(struct svc *s, json_t *body, struct svm_create_args *a,
                          struct err **errp);
unsigned svc_running_count(struct svc *s);
struct svm *svm_alloc(struct svc *s);
void svm_append(struct svc *s, struct svm *vm);
/* Writes meta.json (the registry record) atomically. */
int svm_save(struct svm *vm, struct err **errp);
/* Loads a VM directory's meta.json (or vm.json for older dirs). */
struct svm *svm_load(struct svc *s, const char *dir, struct err **errp);
void svc_vm_free(struct svm *vm);
void svc_load_registry(struct svc *s);
int rm_rf(const char *path);
char *svc_generate_name(struct svc *s, const char *profile);

/* ---- svc_lifecycle.c: processes and state transitions ---- */
typedef void (*svm_up_fn)(struct svm *vm, const struct err *e, void *arg);
/* Creates a VM and starts it; on_up runs once capsem-process answers (or
 * with an error, the VM already gone). NULL + errp on immediate errors. */
struct svm *svc_vm_create(struct svc *s, const struct svm_create_args *a, svm_up_fn on_up,
                          void *arg, struct err **errp);
/* Starts a Stopped, Suspended (warm restore) or Defunct VM. */
int svc_vm_start(struct svm *vm, svm_up_fn on_up, void *arg, struct err **errp);
/* fn runs when the VM's process has exited (immediately if not running). */
void svm_on_exit(struct svm *vm, svm_exit_fn fn, void *arg);
void svc_vm_stop(struct svm *vm);
void svc_vm_suspend(struct svm *vm, ipc_reply_fn done, void *arg);
/* Kills and removes a VM in any state; fn (may be NULL) runs when gone. */
void svc_vm_delete(struct svm *vm, svm_exit_fn fn, void *arg);
int svc_vm_persist(struct svm *vm, const char *name, struct err **errp);
void svc_vm_exec(struct svm *vm, const char *command, int64_t timeout_secs,
                 ipc_reply_fn done, void *arg);
json_t *svc_exec_response(struct ipc_frame *f);
void svc_vm_adopt(struct svm *vm, int fd);
/* Writes vm.json and spawns capsem-process for an existing entry. */
int svc_vm_launch(struct svm *vm, bool restore, svm_up_fn on_up, void *arg, struct err **errp);

/* ---- svc_templates.c: boot templates (restore instead of boot) ---- */
char *svc_template_for(struct svc *s, const struct svm *vm);
int svc_template_prepare_vm(const char *tdir, struct svm *vm, struct err **errp);
void svc_template_drop(struct svc *s, const struct svm *vm);
void svc_template_build(struct svc *s, const struct svm *like);
void svc_template_finish(struct svm *t);
void svc_templates_sweep(struct svc *s);
void svc_templates_drop_image(struct svc *s, const char *image);
void svc_templates_abort(struct svc *s);

/* ---- svc_images.c: fork and images ---- */
void svc_fork(struct svc_req *r, struct svm *vm);
void svc_images_route(struct svc_req *r, const char *rest);
/* Copies an image's disks into a new VM directory (create --image). */
int svc_image_prepare_vm(struct svc *s, const char *image, struct svm *vm, struct err **errp);
/* Copies a VM's or image's credential placeholders file (0600) from one
 * directory to another; none there is not an error (network.md 10: forks
 * keep their parent's placeholders). */
int svc_copy_placeholders(const char *from_dir, const char *to_dir, struct err **errp);
int svc_image_lookup(struct svc *s, const char *name, json_t **info, struct err **errp);

/* ---- svc_files.c: /vms/{id}/files/... ---- */
void svc_files_read(struct svc_req *r, struct svm *vm);
void svc_files_write(struct svc_req *r, struct svm *vm);
void svc_files_download(struct svc_req *r, struct svm *vm);
void svc_files_upload(struct svc_req *r, struct svm *vm);
void svc_files_list(struct svc_req *r, struct svm *vm);

/* ---- svc_stats.c: telemetry reads (docs/telemetry.md) ---- */
/* GET /vms/{id}/stats: session.db totals (read on the stats worker) plus,
 * for a Running VM, its writer metrics from capsem-process (op "stats"). */
void svc_stats_route(struct svc_req *r, struct svm *vm);
/* GET /vms/{id}/history once the writer was flushed: parses limit, offset,
 * search, layer (alias kind) and since, and answers. */
void svc_history_reply(struct svc_req *r, struct svm *vm);
/* Starts the worker and the 10 s main.db totals refresh of every Running
 * VM (idempotent; called when a VM process is launched or adopted). */
void svc_stats_watch(struct svc *s);
/* Queues the last main.db totals refresh of a VM whose process is gone.
 * take_files: vm_dir is about to be removed, so its session.db files are
 * moved aside first and deleted once read. */
void svc_stats_final(struct svc *s, const char *vm_id, const char *vm_dir, bool take_files);
/* Joins the worker; queued /stats requests get 503 (call before the HTTP
 * connections are closed at shutdown). */
void svc_stats_shutdown(void);
/* Removes a VM's instance sockets and ready file (after a SIGKILL). */
void svc_remove_instance_files(struct svm *vm);
/* svc_asks.c: GET /vms/{id}/asks, POST /vms/{id}/asks/{ask_id} */
void svc_asks_list(struct svc_req *r, struct svm *vm);
void svc_asks_resolve(struct svc_req *r, struct svm *vm);

/* ---- svc_ipc.c: async IPC client to capsem-process ---- */
struct svc_ipc *svc_ipc_new(struct svm *vm, int fd);
void svc_ipc_free(struct svc_ipc *c);
int svc_ipc_call(struct svc_ipc *c, json_t *req, const struct ipc_blob *blobs, size_t nblobs,
                 ipc_reply_fn fn, void *arg);
/* Called by svc_ipc when the process sends an event or the connection ends. */
void svc_vm_on_event(struct svm *vm, json_t *ev);
void svc_vm_on_disconnect(struct svm *vm);

#endif
