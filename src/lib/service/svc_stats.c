/* Per-VM telemetry reads of capsem-service (network.md section 11,
 * docs/telemetry.md): GET /vms/{id}/stats, the query parsing of
 * GET /vms/{id}/history, and the sessions/main.db totals refreshed from
 * every running VM each 10 s and once more when it stops.
 *
 * The totals are aggregates over whole session.db tables (counts by
 * decision, token sums), which scan the file: they run on one worker thread
 * fed through a bounded queue, and their results come back to the reactor
 * through an eventfd. main.db is written only on the reactor. There is one
 * service per process, so the worker is a file-level singleton. */
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "net/http1.h"
#include "service/service.h"
#include "store/main_db.h"
#include "store/session_db.h"

#define STATS_QUEUE_MAX    256 /* jobs waiting for the worker */
#define REFRESH_SECS       10
#define FINAL_PREFIX       ".final-" /* moved-aside session.db of a removed VM */
#define HISTORY_SEARCH_CAP (4096 + 2)

enum stats_job_kind { JOB_ROUTE, JOB_REFRESH };

struct stats_job {
    enum stats_job_kind kind;
    char vm_id[37];
    char *db_path;
    bool unlink_after;   /* db_path is a moved-aside copy: delete it once read */
    bool missing;        /* no file to read (moved, never written): keep old totals */
    struct svc_req *req; /* JOB_ROUTE: answered on the reactor */
    json_t *head;        /* JOB_ROUTE: {id, name, status, writer} */
    struct session_db_stats stats;
    struct err *err;
    struct stats_job *next;
};

struct stats_worker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    struct stats_job *todo; /* FIFO */
    struct stats_job *done; /* newest first */
    size_t ntodo;
    int wake_fd; /* eventfd: the worker finished jobs */
    struct event *done_ev, *tick_ev;
};

static struct stats_worker worker = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .wake_fd = -1,
};

static void job_free(struct stats_job *j)
{
    free(j->db_path);
    json_decref(j->head);
    err_free(j->err);
    free(j);
}

static void unlink_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        unlink(p);
    }
}

/* ---------- the worker thread ---------- */

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&worker.lock);
    for (;;) {
        while (!worker.todo && !worker.stopping)
            pthread_cond_wait(&worker.cond, &worker.lock);
        if (worker.stopping)
            break;
        struct stats_job *j = worker.todo;
        worker.todo = j->next;
        worker.ntodo--;
        pthread_mutex_unlock(&worker.lock);
        struct stat st;
        j->missing = stat(j->db_path, &st) < 0 && errno == ENOENT;
        if (!j->missing)
            session_db_read_stats(j->db_path, &j->stats, &j->err);
        if (j->unlink_after)
            unlink_db_files(j->db_path);
        pthread_mutex_lock(&worker.lock);
        j->next = worker.done;
        worker.done = j;
        uint64_t one = 1;
        if (write(worker.wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            break; /* cannot happen with an eventfd we own */
    }
    pthread_mutex_unlock(&worker.lock);
    return NULL;
}

/* Queues j (ownership passes) unless the queue is full; a refresh of a VM
 * that already waits in the queue is merged into it (it will read the file
 * later anyway). */
static bool submit(struct stats_job *j)
{
    pthread_mutex_lock(&worker.lock);
    struct stats_job **tail = &worker.todo;
    bool merged = false;
    for (; *tail; tail = &(*tail)->next)
        merged = merged || (j->kind == JOB_REFRESH && (*tail)->kind == JOB_REFRESH &&
                            !j->unlink_after && strcmp((*tail)->vm_id, j->vm_id) == 0);
    bool ok = merged || worker.ntodo < STATS_QUEUE_MAX;
    if (ok && !merged) {
        j->next = NULL;
        *tail = j;
        worker.ntodo++;
        pthread_cond_signal(&worker.cond);
    }
    pthread_mutex_unlock(&worker.lock);
    if (merged)
        job_free(j);
    return ok;
}

/* ---------- results, on the reactor ---------- */

static void finish_route(struct stats_job *j)
{
    if (j->err) {
        svc_reply_err(j->req, j->err);
        return;
    }
    json_t *body = session_db_stats_json(&j->stats);
    if (!body || json_object_update(j->head, body) < 0) {
        json_decref(body);
        svc_reply_error(j->req, 500, "out of memory");
        return;
    }
    json_decref(body);
    svc_reply_json(j->req, 200, json_incref(j->head));
}

static void finish_refresh(struct svc *s, struct stats_job *j)
{
    struct err *e = NULL;
    if (j->missing)
        return;
    if (j->err)
        log_warn("main.db totals of VM %s: %s", j->vm_id, err_msg(j->err));
    else if (s->db && main_db_set_totals(s->db, j->vm_id, &j->stats.c, &e) < 0 && e->status != 404)
        log_warn("main.db totals of VM %s: %s", j->vm_id, err_msg(e));
    err_free(e);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *s = arg;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("stats: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&worker.lock);
    struct stats_job *newest = worker.done;
    worker.done = NULL;
    pthread_mutex_unlock(&worker.lock);
    /* In the order the worker finished them: a VM's final totals must not
     * be overwritten by an older periodic read finished just before. */
    struct stats_job *list = NULL;
    while (newest) {
        struct stats_job *j = newest;
        newest = j->next;
        j->next = list;
        list = j;
    }
    while (list) {
        struct stats_job *j = list;
        list = j->next;
        if (j->kind == JOB_ROUTE)
            finish_route(j);
        else
            finish_refresh(s, j);
        job_free(j);
    }
}

/* ---------- starting, the periodic refresh ---------- */

static struct stats_job *refresh_job(const char *vm_id, const char *dir)
{
    struct stats_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->db_path = paths_join(dir, "session.db"))) {
        free(j);
        return NULL;
    }
    j->kind = JOB_REFRESH;
    str_copy(j->vm_id, sizeof(j->vm_id), vm_id);
    return j;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct svc *s = arg;
    for (struct svm *vm = s->vms; vm; vm = vm->next) {
        if (vm->status != SVM_RUNNING || vm->gone || vm->hidden || !vm->vm_dir)
            continue;
        struct stats_job *j = refresh_job(vm->id, vm->vm_dir);
        if (j && !submit(j)) {
            log_warn("main.db totals: reader queue full; VM %s skipped this round", vm->name);
            job_free(j);
        }
    }
}

/* Moved-aside files of removed VMs that a previous service never read. */
static void sweep_final_files(struct svc *s)
{
    DIR *d = opendir(s->sessions_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!str_has_prefix(de->d_name, FINAL_PREFIX))
            continue;
        _cleanup_free_ char *p = paths_join(s->sessions_dir, de->d_name);
        if (p)
            unlink(p);
    }
    if (d)
        closedir(d);
}

static int worker_start(struct svc *s)
{
    if (worker.started)
        return 0;
    sweep_final_files(s);
    worker.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (worker.wake_fd < 0) {
        log_error("stats: eventfd: %s", strerror(errno));
        return -1;
    }
    worker.done_ev = event_new(s->base, worker.wake_fd, EV_READ | EV_PERSIST, done_cb, s);
    worker.tick_ev = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
    int rc = pthread_create(&worker.thread, NULL, worker_main, NULL);
    if (!worker.done_ev || !worker.tick_ev || rc != 0) {
        log_error("stats: cannot start the telemetry reader: %s", strerror(rc ? rc : ENOMEM));
        if (worker.done_ev)
            event_free(worker.done_ev);
        if (worker.tick_ev)
            event_free(worker.tick_ev);
        worker.done_ev = worker.tick_ev = NULL;
        close(worker.wake_fd);
        worker.wake_fd = -1;
        return -1;
    }
    struct timeval every = {REFRESH_SECS, 0};
    event_add(worker.done_ev, NULL);
    event_add(worker.tick_ev, &every);
    worker.started = true;
    return 0;
}

void svc_stats_watch(struct svc *s)
{
    worker_start(s);
}

void svc_stats_final(struct svc *s, const char *vm_id, const char *vm_dir, bool take_files)
{
    if (!vm_dir || worker_start(s) < 0)
        return;
    struct stats_job *j = refresh_job(vm_id, vm_dir);
    if (!j)
        return;
    if (take_files) {
        /* The directory is about to go: keep its telemetry long enough to
         * be read (a rename in the same file system never blocks). */
        char dst[4200];
        snprintf(dst, sizeof(dst), "%s/" FINAL_PREFIX "%s.db", s->sessions_dir, vm_id);
        static const char *const suffixes[] = {"-wal", "-shm", ""}; /* the db last */
        for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
            char from[4200], to[4300];
            snprintf(from, sizeof(from), "%s%s", j->db_path, suffixes[i]);
            snprintf(to, sizeof(to), "%s%s", dst, suffixes[i]);
            if (rename(from, to) < 0 && errno != ENOENT)
                log_warn("VM %s: cannot keep session.db for its totals: %s", vm_id,
                         strerror(errno));
        }
        free(j->db_path);
        j->db_path = strdup(dst);
        j->unlink_after = true;
    }
    if (!j->db_path || !submit(j)) {
        log_warn("main.db totals of VM %s: reader queue full; final totals not recorded", vm_id);
        if (j->unlink_after && j->db_path)
            unlink_db_files(j->db_path);
        job_free(j);
    }
}

void svc_stats_shutdown(void)
{
    if (!worker.started)
        return;
    pthread_mutex_lock(&worker.lock);
    worker.stopping = true;
    pthread_cond_signal(&worker.cond);
    pthread_mutex_unlock(&worker.lock);
    pthread_join(worker.thread, NULL);
    event_free(worker.done_ev);
    event_free(worker.tick_ev);
    close(worker.wake_fd);
    struct stats_job *lists[] = {worker.todo, worker.done};
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        while (lists[i]) {
            struct stats_job *j = lists[i];
            lists[i] = j->next;
            if (j->kind == JOB_ROUTE)
                svc_reply_error(j->req, 503, "capsem-service is stopping");
            if (j->unlink_after)
                unlink_db_files(j->db_path);
            job_free(j);
        }
    }
    worker = (struct stats_worker){.wake_fd = -1};
    pthread_mutex_init(&worker.lock, NULL);
    pthread_cond_init(&worker.cond, NULL);
}

/* ---------- GET /vms/{id}/stats ---------- */

static void route_submit(struct stats_job *j)
{
    if (worker_start(j->req->svc) == 0 && submit(j))
        return;
    svc_reply_error(j->req, 503, "telemetry reader busy; retry");
    job_free(j);
}

static void stats_ipc_done(struct svm *vm, struct ipc_frame *f, const struct err *e, void *arg)
{
    struct stats_job *j = arg;
    json_t *w = !e && f ? json_object_get(f->msg, "writer") : NULL;
    if (e)
        log_debug("VM %s: stats op: %s", vm->name, e->msg);
    json_object_set(j->head, "writer", json_is_object(w) ? w : json_null());
    route_submit(j);
}

void svc_stats_route(struct svc_req *r, struct svm *vm)
{
    struct stats_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->db_path = paths_join(vm->vm_dir, "session.db")) ||
        !(j->head = json_pack("{s:s, s:s, s:s, s:n}", "id", vm->id, "name", vm->name, "status",
                              svm_status_name(vm->status), "writer"))) {
        if (j)
            job_free(j);
        svc_reply_error(r, 500, "out of memory");
        return;
    }
    j->kind = JOB_ROUTE;
    j->req = r;
    str_copy(j->vm_id, sizeof(j->vm_id), vm->id);
    if (vm->status == SVM_RUNNING && vm->ipc && !vm->deleting) {
        /* Flushing first makes what already happened visible to the read. */
        svc_ipc_call(vm->ipc, json_pack("{s:s, s:b}", "op", "stats", "flush", 1), NULL, 0,
                     stats_ipc_done, j);
        return;
    }
    route_submit(j);
}

/* ---------- GET /vms/{id}/history query ---------- */

/* A query parameter: 1 and the value in buf, 0 when absent, -1 when longer
 * than cap allows. */
static int query_param(const struct svc_req *r, const char *key, char *buf, size_t cap)
{
    if (!r->query)
        return 0;
    ssize_t n = http1_query_get(r->target, key, buf, cap);
    return n == -1 ? 0 : n < 0 ? -1 : 1;
}

static int parse_history_query(struct svc_req *r, struct sdb_history_query *q, char *search,
                               struct err **errp)
{
    char buf[300];
    *q = (struct sdb_history_query){.limit = 500};
    if ((query_param(r, "limit", buf, sizeof(buf)) == 1 &&
         parse_int64(buf, 0, 10000, &q->limit) < 0) ||
        (query_param(r, "offset", buf, sizeof(buf)) == 1 &&
         parse_int64(buf, 0, INT64_MAX, &q->offset) < 0))
        return err_status(errp, 400, "limit must be 0-10000 and offset a non-negative integer");
    int rc = query_param(r, "search", search, HISTORY_SEARCH_CAP);
    if (rc < 0)
        return err_status(errp, 400, "search must be at most 4096 bytes");
    q->search = rc == 1 ? search : NULL;
    /* `layer` (surface.md); `kind` is accepted as another name for it. */
    rc = query_param(r, "layer", buf, sizeof(buf));
    if (rc == 0)
        rc = query_param(r, "kind", buf, sizeof(buf));
    if (rc < 0 || session_db_parse_layers(rc == 1 ? buf : NULL, &q->layers, errp) < 0)
        return rc < 0 ? err_status(errp, 400, "layer is too long") : -1;
    rc = query_param(r, "since", buf, sizeof(buf));
    if (rc < 0 || (rc == 1 && session_db_parse_time(buf, &q->since_ms, errp) < 0))
        return rc < 0 ? err_status(errp, 400, "since is too long") : -1;
    return 0;
}

void svc_history_reply(struct svc_req *r, struct svm *vm)
{
    char search[HISTORY_SEARCH_CAP];
    struct sdb_history_query q;
    struct err *e = NULL;
    _cleanup_free_ char *db = paths_join(vm->vm_dir, "session.db");
    json_t *out = NULL;
    if (parse_history_query(r, &q, search, &e) < 0 || !db ||
        session_db_history_query(db, &q, &out, &e) < 0) {
        if (e)
            svc_reply_err(r, e);
        else
            svc_reply_error(r, 500, "out of memory");
        err_free(e);
        return;
    }
    svc_reply_json(r, 200, out);
}
