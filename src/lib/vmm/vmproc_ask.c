/* Held policy decisions in capsem-process (network.md 8.4, docs/asks.md).
 *
 * A rule with action `ask` holds its request while the user decides through
 * the service API, the CLI or the host MCP tools. Here live, per VM: the
 * pending items (one per distinct question; identical questions coalesce and
 * their requests wait together), one timer per item, the answers remembered
 * for this VM's session, and the IPC operations `asks` and `ask_resolve`.
 *
 * Every answer reaches its waiter from the event loop, never from inside
 * vp_ask_start(): immediate answers (remembered, queue full) go through a
 * deferred-callback queue. Everything runs on the one reactor thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/util.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"

#define ASK_TIMEOUT_DEFAULT_S 30
#define ASK_TIMEOUT_MAX_S     600
#define ASK_PENDING_MAX       64   /* network.md section 14 */
#define ASK_WAITERS_MAX       512  /* requests held on one item (= connections per VM) */
#define ASK_MEMO_MAX          1024 /* remembered answers per VM; least recently used goes */
#define ASK_ID_BYTES          6    /* 12 hex characters */
#define ASK_ID_MAX            32   /* longest ask_id accepted from a client */

/* IPC operations, dispatched from vmproc_ipc.c. */

/* One held request: the handle vp_ask_start() returns. */
struct vp_ask {
    struct vmproc *vp;
    struct ask_item *item; /* NULL while queued for a deferred answer */
    vp_ask_fn fn;
    void *arg;
    /* deferred answer */
    bool approved;
    const char *status;
    int64_t row_id;
    bool orphan; /* vp_asks_free() ran: vp_ask_cancel() only frees it */
    struct vp_ask *next;
};

/* One distinct pending question. */
struct ask_item {
    struct vp_asks *owner;
    char id[2 * ASK_ID_BYTES + 1];
    int64_t row_id; /* policy_decisions row, 0 when the insert was dropped */
    char *scope, *host, *method, *path, *tool, *rule, *reason, *process;
    int port;
    uint32_t pid;
    uint64_t created_real_ms;
    uint64_t created_mono_ms;
    uint64_t deadline_mono_ms;
    struct event *timer;
    struct vp_ask *waiters; /* in arrival order */
    unsigned nwaiters;
    struct ask_item *next;
};

/* An answer kept for the rest of the VM's session (remember = session or
 * always): keyed by scope, rule, host, port, method and tool. */
struct ask_memo {
    char *scope, *rule, *host, *method, *tool;
    int port;
    bool approved;
    struct ask_memo *next; /* most recently used first */
};

struct vp_asks {
    struct vmproc *vp;
    struct ask_item *items; /* oldest first */
    unsigned nitems;
    struct ask_memo *memos;
    unsigned nmemos;
    struct vp_ask *deferred; /* answers to deliver from the loop, in order */
    struct event *deferred_ev;
};

/* The fields that make two asks "the same question". */
struct ask_key {
    const char *scope, *rule, *host, *method, *tool;
    int port;
};

/* ---------- small helpers ---------- */

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static struct ask_key key_of_info(const struct vp_ask_info *info)
{
    return (struct ask_key){info->scope ? info->scope : "net",
                            info->rule,
                            info->host,
                            info->method,
                            info->tool,
                            info->port};
}

static bool item_matches(const struct ask_item *it, const struct ask_key *k)
{
    return str_eq(it->scope, k->scope) && str_eq(it->rule, k->rule) && str_eq(it->host, k->host) &&
           it->port == k->port && str_eq(it->method, k->method) && str_eq(it->tool, k->tool);
}

static bool memo_matches(const struct ask_memo *m, const struct ask_key *k)
{
    return str_eq(m->scope, k->scope) && str_eq(m->rule, k->rule) && str_eq(m->host, k->host) &&
           m->port == k->port && str_eq(m->method, k->method) && str_eq(m->tool, k->tool);
}

/* "user:no-push" -> source "user", id "no-push" (a rule without a source
 * keeps its whole text as the id). */
static void split_rule(const char *rule, char *source, size_t scap, const char **id)
{
    const char *colon = rule ? strchr(rule, ':') : NULL;
    source[0] = '\0';
    *id = rule;
    if (colon && (size_t)(colon - rule) < scap) {
        memcpy(source, rule, (size_t)(colon - rule));
        source[colon - rule] = '\0';
        *id = colon + 1;
    }
}

static int make_ask_id(struct vp_asks *asks, char out[2 * ASK_ID_BYTES + 1])
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint8_t raw[ASK_ID_BYTES];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
            return -1;
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
        bool taken = false;
        for (struct ask_item *it = asks->items; it; it = it->next)
            taken = taken || strcmp(it->id, out) == 0;
        if (!taken)
            return 0;
    }
    return -1;
}

static unsigned clamp_timeout(unsigned t)
{
    if (t == 0)
        return ASK_TIMEOUT_DEFAULT_S;
    return t > ASK_TIMEOUT_MAX_S ? ASK_TIMEOUT_MAX_S : t;
}

static unsigned clamp_pending(unsigned n)
{
    return (n == 0 || n > ASK_PENDING_MAX) ? ASK_PENDING_MAX : n;
}

/* ---------- telemetry rows ---------- */

struct ask_row {
    const char *event_id, *scope, *rule, *status, *resolver, *host, *method, *path, *tool;
    const char *process, *reason;
    int port;
    int remember; /* -1: NULL */
};

static int64_t row_insert(struct vmproc *vp, const struct ask_row *r)
{
    if (!vp->sdb)
        return 0;
    char source[16];
    const char *rule_id;
    split_rule(r->rule, source, sizeof(source), &rule_id);
    struct sdb_val v[] = {
        SDB_TEXT_V("event_id", r->event_id),
        SDB_TEXT_V("subject", r->scope),
        SDB_TEXT_V("rule_id", rule_id),
        SDB_TEXT_V("rule_source", source[0] ? source : NULL),
        SDB_TEXT_V("action", "ask"),
        SDB_TEXT_V("status", r->status),
        SDB_TEXT_V("resolver", r->resolver),
        r->remember >= 0 ? SDB_INT_V("remember", r->remember) : SDB_NULL_V("remember"),
        SDB_TEXT_V("host", r->host),
        r->port > 0 ? SDB_INT_V("port", r->port) : SDB_NULL_V("port"),
        SDB_TEXT_V("method", r->method),
        SDB_TEXT_V("path", r->path),
        SDB_TEXT_V("tool_name", r->tool),
        SDB_TEXT_V("process_name", r->process),
        SDB_TEXT_V("reason", r->reason),
        SDB_INT_V("waited_ms", 0),
    };
    struct err *e = NULL;
    int64_t id = session_db_insert(vp->sdb, SDB_POLICY_DECISIONS, 0, v, ARRAY_SIZE(v), &e);
    if (id < 0) {
        log_warn("ask: policy_decisions insert: %s", err_msg(e));
        err_free(e);
        return 0;
    }
    return id;
}

static void row_resolve(struct vmproc *vp, const struct ask_item *it, const char *status,
                        const char *resolver, int remember, const char *reason)
{
    if (!vp->sdb || it->row_id <= 0)
        return;
    struct sdb_val v[] = {
        SDB_TEXT_V("status", status),
        SDB_TEXT_V("resolver", resolver),
        remember >= 0 ? SDB_INT_V("remember", remember) : SDB_NULL_V("remember"),
        SDB_INT_V("waited_ms", time_mono_ms() - it->created_mono_ms),
        reason ? SDB_TEXT_V("reason", reason) : SDB_TEXT_V("reason", it->reason),
    };
    struct err *e = NULL;
    if (session_db_update(vp->sdb, SDB_POLICY_DECISIONS, it->row_id, v, ARRAY_SIZE(v), &e) < 0) {
        log_warn("ask: policy_decisions update: %s", err_msg(e));
        err_free(e);
    }
}

/* ---------- state ---------- */

static void deferred_cb(evutil_socket_t fd, short what, void *arg);

static struct vp_asks *asks_get(struct vmproc *vp)
{
    if (vp->asks)
        return vp->asks;
    struct vp_asks *asks = calloc(1, sizeof(*asks));
    if (!asks)
        return NULL;
    asks->vp = vp;
    asks->deferred_ev = event_new(vp->base, -1, 0, deferred_cb, asks);
    if (!asks->deferred_ev) {
        free(asks);
        return NULL;
    }
    vp->asks = asks;
    return asks;
}

static void item_free(struct ask_item *it)
{
    if (it->timer)
        event_free(it->timer);
    while (it->waiters) {
        struct vp_ask *w = it->waiters;
        it->waiters = w->next;
        free(w);
    }
    free(it->scope);
    free(it->host);
    free(it->method);
    free(it->path);
    free(it->tool);
    free(it->rule);
    free(it->reason);
    free(it->process);
    free(it);
}

static void item_unlink(struct vp_asks *asks, struct ask_item *it)
{
    for (struct ask_item **pp = &asks->items; *pp; pp = &(*pp)->next) {
        if (*pp == it) {
            *pp = it->next;
            asks->nitems--;
            return;
        }
    }
}

static void memo_free(struct ask_memo *m)
{
    free(m->scope);
    free(m->rule);
    free(m->host);
    free(m->method);
    free(m->tool);
    free(m);
}

static struct ask_memo *memo_find(struct vp_asks *asks, const struct ask_key *k)
{
    for (struct ask_memo **pp = &asks->memos; *pp; pp = &(*pp)->next) {
        struct ask_memo *m = *pp;
        if (!memo_matches(m, k))
            continue;
        *pp = m->next; /* move to the front: most recently used */
        m->next = asks->memos;
        asks->memos = m;
        return m;
    }
    return NULL;
}

static void memo_remember(struct vp_asks *asks, const struct ask_item *it, bool approved)
{
    struct ask_key k = {it->scope, it->rule, it->host, it->method, it->tool, it->port};
    struct ask_memo *m = memo_find(asks, &k);
    if (m) {
        m->approved = approved;
        return;
    }
    if (!(m = calloc(1, sizeof(*m))))
        return;
    m->scope = dup_or_null(it->scope);
    m->rule = dup_or_null(it->rule);
    m->host = dup_or_null(it->host);
    m->method = dup_or_null(it->method);
    m->tool = dup_or_null(it->tool);
    m->port = it->port;
    m->approved = approved;
    m->next = asks->memos;
    asks->memos = m;
    if (++asks->nmemos <= ASK_MEMO_MAX)
        return;
    struct ask_memo **pp = &asks->memos;
    while ((*pp)->next)
        pp = &(*pp)->next;
    memo_free(*pp);
    *pp = NULL;
    asks->nmemos--;
}

/* ---------- JSON views and events ---------- */

static json_t *item_json(struct vmproc *vp, const struct ask_item *it)
{
    char created[32], deadline[32];
    uint64_t now = time_mono_ms();
    uint64_t left = it->deadline_mono_ms > now ? it->deadline_mono_ms - now : 0;
    uint64_t deadline_real = it->created_real_ms + (it->deadline_mono_ms - it->created_mono_ms);
    time_format_rfc3339(it->created_real_ms / 1000, created, sizeof(created));
    time_format_rfc3339(deadline_real / 1000, deadline, sizeof(deadline));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "ask_id", it->id,
                          "vm_id", vp->cfg.id ? vp->cfg.id : "", "vm_name",
                          vp->cfg.name ? vp->cfg.name : "", "scope", it->scope, "rule",
                          it->rule ? it->rule : "", "created_at", created, "deadline", deadline,
                          "expires_in_ms", (json_int_t)left, "waiters", (json_int_t)it->nwaiters);
    if (!j)
        return NULL;
    const struct {
        const char *key, *val;
    } opt[] = {{"host", it->host}, {"method", it->method}, {"path", it->path},
               {"tool", it->tool}, {"reason", it->reason}, {"process", it->process}};
    for (size_t i = 0; i < ARRAY_SIZE(opt); i++)
        json_object_set_new(j, opt[i].key, opt[i].val ? json_string(opt[i].val) : json_null());
    json_object_set_new(j, "port", it->port > 0 ? json_integer(it->port) : json_null());
    json_object_set_new(j, "pid", it->pid ? json_integer(it->pid) : json_null());
    return j;
}

static void publish_pending(struct vmproc *vp, const struct ask_item *it)
{
    json_t *ask = item_json(vp, it);
    json_t *ev = ask ? json_pack("{s:s, s:o}", "event", "ask_pending", "ask", ask) : NULL;
    if (ev)
        vp_broadcast_event(vp, ev);
    json_decref(ev);
}

static void publish_resolved(struct vmproc *vp, const struct ask_item *it, const char *status,
                             const char *resolver, const char *remember)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I}", "event", "ask_resolved", "ask_id",
                           it->id, "status", status, "resolver", resolver, "remember", remember,
                           "waited_ms", (json_int_t)(time_mono_ms() - it->created_mono_ms));
    if (ev)
        vp_broadcast_event(vp, ev);
    json_decref(ev);
}

/* ---------- answering ---------- */

/* Delivers one decision to every request held on `it` and frees it. The
 * item is out of the list first, so callbacks may start new asks or cancel
 * other waiters of this item (they are still in it->waiters). */
static void item_finish(struct vp_asks *asks, struct ask_item *it, bool approved,
                        const char *status)
{
    item_unlink(asks, it);
    if (it->timer)
        event_del(it->timer);
    while (it->waiters) {
        struct vp_ask *w = it->waiters;
        it->waiters = w->next;
        it->nwaiters--;
        vp_ask_fn fn = w->fn;
        void *arg = w->arg;
        free(w);
        fn(arg, approved, status, it->row_id);
    }
    item_free(it);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ask_item *it = arg;
    struct vp_asks *asks = it->owner;
    struct vmproc *vp = asks->vp;
    log_info("ask %s (%s %s:%d, rule %s) timed out after %llu ms with %u waiting", it->id,
             it->scope, it->host ? it->host : (it->tool ? it->tool : "-"), it->port,
             it->rule ? it->rule : "-", (unsigned long long)(time_mono_ms() - it->created_mono_ms),
             it->nwaiters);
    row_resolve(vp, it, "timeout", "timeout", -1, NULL);
    publish_resolved(vp, it, "timeout", "timeout", NULL);
    item_finish(asks, it, false, "timeout");
}

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vp_asks *asks = arg;
    /* Take one at a time from the head: a callback may cancel a later one. */
    while (asks->deferred) {
        struct vp_ask *w = asks->deferred;
        asks->deferred = w->next;
        vp_ask_fn fn = w->fn;
        void *fn_arg = w->arg;
        bool approved = w->approved;
        const char *status = w->status;
        int64_t row = w->row_id;
        free(w);
        fn(fn_arg, approved, status, row);
    }
}

/* Queues an answer for the loop to deliver (never from the caller's stack). */
static void defer_answer(struct vp_asks *asks, struct vp_ask *w, bool approved, const char *status,
                         int64_t row_id)
{
    w->item = NULL;
    w->approved = approved;
    w->status = status;
    w->row_id = row_id;
    w->next = NULL;
    struct vp_ask **tail = &asks->deferred;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    event_active(asks->deferred_ev, EV_TIMEOUT, 0);
}

static struct ask_row row_from_info(const struct vp_ask_info *info, const char *event_id,
                                    const char *status, const char *resolver, int remember,
                                    const char *reason)
{
    return (struct ask_row){.event_id = event_id,
                            .scope = info->scope ? info->scope : "net",
                            .rule = info->rule,
                            .status = status,
                            .resolver = resolver,
                            .host = info->host,
                            .method = info->method,
                            .path = info->path,
                            .tool = info->tool,
                            .process = info->process,
                            .reason = reason,
                            .port = info->port,
                            .remember = remember};
}

static struct ask_item *item_new(struct vp_asks *asks, const struct vp_ask_info *info)
{
    struct vmproc *vp = asks->vp;
    struct ask_item *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->owner = asks;
    it->scope = strdup(info->scope ? info->scope : "net");
    it->host = dup_or_null(info->host);
    it->method = dup_or_null(info->method);
    it->path = dup_or_null(info->path);
    it->tool = dup_or_null(info->tool);
    it->rule = dup_or_null(info->rule);
    it->reason = dup_or_null(info->reason);
    it->process = dup_or_null(info->process);
    it->port = info->port;
    it->pid = info->pid;
    it->created_real_ms = time_real_ms();
    it->created_mono_ms = time_mono_ms();
    unsigned timeout_s = clamp_timeout(info->timeout_s);
    it->deadline_mono_ms = it->created_mono_ms + (uint64_t)timeout_s * 1000u;
    it->timer = evtimer_new(vp->base, timeout_cb, it);
    struct timeval tv = {(time_t)timeout_s, 0};
    if (!it->scope || make_ask_id(asks, it->id) < 0 || !it->timer ||
        evtimer_add(it->timer, &tv) < 0 || (info->host && !it->host) || (info->rule && !it->rule)) {
        item_free(it);
        return NULL;
    }
    struct ask_row row = row_from_info(info, it->id, "pending", NULL, -1, info->reason);
    it->row_id = row_insert(vp, &row);
    struct ask_item **tail = &asks->items;
    while (*tail)
        tail = &(*tail)->next;
    *tail = it;
    asks->nitems++;
    log_info("ask %s: %s %s %s:%d%s (rule %s, process %s) waits up to %u s", it->id, it->scope,
             it->method ? it->method : "-", it->host ? it->host : (it->tool ? it->tool : "-"),
             it->port, it->path ? it->path : "", it->rule ? it->rule : "-",
             it->process ? it->process : "?", timeout_s);
    publish_pending(vp, it);
    return it;
}

struct vp_ask *vp_ask_start(struct vmproc *vp, const struct vp_ask_info *info, vp_ask_fn fn,
                            void *arg)
{
    struct vp_asks *asks = asks_get(vp);
    struct vp_ask *w = asks ? calloc(1, sizeof(*w)) : NULL;
    if (!w)
        return NULL;
    w->vp = vp;
    w->fn = fn;
    w->arg = arg;
    struct ask_key key = key_of_info(info);
    struct ask_memo *memo = memo_find(asks, &key);
    if (memo) {
        struct ask_row row = row_from_info(info, NULL, "remembered", "policy", 1, info->reason);
        defer_answer(asks, w, memo->approved, "remembered", row_insert(vp, &row));
        return w;
    }
    for (struct ask_item *it = asks->items; it; it = it->next) {
        if (!item_matches(it, &key) || it->nwaiters >= ASK_WAITERS_MAX)
            continue;
        w->item = it;
        struct vp_ask **tail = &it->waiters;
        while (*tail)
            tail = &(*tail)->next;
        *tail = w;
        it->nwaiters++;
        return w;
    }
    struct ask_item *it = NULL;
    if (asks->nitems < clamp_pending(info->max_pending)) {
        if (!(it = item_new(asks, info))) {
            free(w);
            return NULL;
        }
    }
    if (!it) {
        log_warn("ask refused: %u asks already pending (policy.ask_max_pending)", asks->nitems);
        struct ask_row row = row_from_info(info, NULL, "denied", "policy", -1, "ask_queue_full");
        defer_answer(asks, w, false, "queue_full", row_insert(vp, &row));
        return w;
    }
    w->item = it;
    it->waiters = w;
    it->nwaiters = 1;
    return w;
}

/* The request went away (its connection closed). Its item stays pending
 * until answered or timed out: a client that retries joins it again, and an
 * answer given meanwhile with remember=session still counts. */
void vp_ask_cancel(struct vp_ask *a)
{
    if (!a)
        return;
    if (a->orphan) {
        free(a);
        return;
    }
    struct vp_asks *asks = a->vp->asks;
    struct vp_ask **pp = a->item ? &a->item->waiters : &asks->deferred;
    for (; *pp; pp = &(*pp)->next) {
        if (*pp != a)
            continue;
        *pp = a->next;
        if (a->item)
            a->item->nwaiters--;
        break;
    }
    free(a);
}

/* A handle its owner still holds: no callback will come, and a later
 * vp_ask_cancel() (the owner tearing down its own state) only frees it. */
static void orphan_all(struct vp_ask *list)
{
    while (list) {
        struct vp_ask *w = list;
        list = w->next;
        w->orphan = true;
        w->item = NULL;
        w->next = NULL;
    }
}

void vp_asks_free(struct vmproc *vp)
{
    struct vp_asks *asks = vp->asks;
    if (!asks)
        return;
    while (asks->items) {
        struct ask_item *it = asks->items;
        asks->items = it->next;
        log_info("ask %s dropped with %u request(s) waiting: the VM stopped", it->id, it->nwaiters);
        row_resolve(vp, it, "denied", "policy", -1, "vm_stopped");
        orphan_all(it->waiters);
        it->waiters = NULL;
        item_free(it);
    }
    orphan_all(asks->deferred);
    asks->deferred = NULL;
    while (asks->memos) {
        struct ask_memo *m = asks->memos;
        asks->memos = m->next;
        memo_free(m);
    }
    event_free(asks->deferred_ev);
    free(asks);
    vp->asks = NULL;
}

/* ---------- IPC: asks, ask_resolve ---------- */

static struct ask_item *item_by_id(struct vp_asks *asks, const char *id)
{
    for (struct ask_item *it = asks ? asks->items : NULL; it; it = it->next)
        if (strcmp(it->id, id) == 0)
            return it;
    return NULL;
}

/* ask_id from a request: a short printable string, or NULL with a reply sent. */
static const char *ask_id_arg(struct vp_reply *r, json_t *req, bool required)
{
    json_t *v = json_object_get(req, "ask_id");
    if (!v && !required)
        return "";
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    bool ok = n > 0 && n <= ASK_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] > 0x20 && s[i] < 0x7f;
    if (!ok) {
        vp_reply_err(r, 400, "ask_id must be a string of 1 to %d printable characters", ASK_ID_MAX);
        return NULL;
    }
    return s;
}

static void op_list(struct vmproc *vp, struct vp_reply *r, json_t *req)
{
    const char *want = ask_id_arg(r, req, false);
    if (!want)
        return;
    json_t *arr = json_array();
    for (struct ask_item *it = vp->asks ? vp->asks->items : NULL; arr && it; it = it->next)
        if (!want[0] || strcmp(it->id, want) == 0)
            json_array_append_new(arr, item_json(vp, it));
    if (!arr) {
        vp_reply_err(r, 500, "out of memory");
        return;
    }
    if (want[0] && json_array_size(arr) == 0) {
        json_decref(arr);
        vp_reply_err(r, 404, "ask not found: %s (it was answered, timed out, or never existed)",
                     want);
        return;
    }
    vp_reply_ok(r, json_pack("{s:o}", "asks", arr), NULL, 0);
}

/* One of `allowed` for `field` of req, else NULL after a 400 reply. */
static const char *enum_arg(struct vp_reply *r, json_t *req, const char *field,
                            const char *const *allowed, size_t n, const char *def)
{
    struct err *e = NULL;
    const char *v = ipc_json_enum(req, field, allowed, n, def, &e);
    if (!v) {
        vp_reply_err(r, 400, "%s", err_msg(e));
        err_free(e);
    }
    return v;
}

static void op_resolve(struct vmproc *vp, struct vp_reply *r, json_t *req)
{
    static const char *const decisions[] = {"approve", "deny"};
    static const char *const remembers[] = {"once", "session", "always"};
    static const char *const resolvers[] = {"api", "mcp", "dashboard"};
    const char *id = ask_id_arg(r, req, true);
    const char *decision = id ? enum_arg(r, req, "decision", decisions, 2, NULL) : NULL;
    const char *remember = decision ? enum_arg(r, req, "remember", remembers, 3, "once") : NULL;
    const char *resolver = remember ? enum_arg(r, req, "resolver", resolvers, 3, "api") : NULL;
    if (!resolver)
        return;
    struct ask_item *it = item_by_id(vp->asks, id);
    if (!it) {
        vp_reply_err(r, 404, "ask not found: %s (it was answered, timed out, or never existed)",
                     id);
        return;
    }
    bool approved = strcmp(decision, "approve") == 0;
    const char *status = approved ? "approved" : "denied";
    bool keep = strcmp(remember, "once") != 0;
    json_t *view = item_json(vp, it);
    if (view)
        json_object_set_new(view, "status", json_string(status));
    if (view)
        json_object_set_new(view, "remember", json_string(remember));
    log_info("ask %s %s by %s (remember %s), %u request(s) waiting", it->id, status, resolver,
             remember, it->nwaiters);
    if (keep)
        memo_remember(vp->asks, it, approved);
    row_resolve(vp, it, status, resolver, keep ? 1 : 0, NULL);
    publish_resolved(vp, it, status, resolver, remember);
    /* Answer the API first: the waiters' callbacks may take a while to
     * forward their requests, and the caller only needs the outcome. */
    vp_reply_ok(r, json_pack("{s:o*}", "ask", view), NULL, 0);
    item_finish(vp->asks, it, approved, status);
}

void vp_ask_request(struct vmproc *vp, struct vp_conn *c, json_int_t id, json_t *req)
{
    struct vp_reply r = {0};
    vp_reply_attach(&r, c, id);
    const char *op = json_string_value(json_object_get(req, "op"));
    if (op && strcmp(op, "asks") == 0)
        op_list(vp, &r, req);
    else if (op && strcmp(op, "ask_resolve") == 0)
        op_resolve(vp, &r, req);
    else
        vp_reply_err(&r, 400, "unknown operation: %s", op ? op : "(none)");
}
