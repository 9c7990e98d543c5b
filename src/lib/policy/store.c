/* The policy store (network.md 8.1 live reload): the current snapshot behind
 * a mutex (readers take a reference and go), reloads that keep the previous
 * snapshot on failure, and an inotify watcher with a debounce timer, both
 * behind one epoll fd the caller puts on its event loop.
 *
 * Watching: for each policy file the store watches the nearest existing
 * directory on its path (the file's own directory when it exists), for the
 * name of the next path component. Editors and the API replace files by
 * rename, so directories are watched, not files. After each debounced batch
 * the watches are rebuilt (directories may have appeared or gone), then the
 * files are re-read. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/util.h"
#include "policy/policy_int.h"

#define DEBOUNCE_QUIET_MS 100
#define DEBOUNCE_MAX_MS   500
#define MAX_WATCHES       16

struct watch {
    int wd;
    char name[NAME_MAX + 1]; /* the entry of interest in the watched directory */
};

struct policy_store {
    /* deep copy of the options */
    struct policy_load_opts o;
    char *home, *corp, *profile, *bundled;
    struct policy_hostlist *lists;
    char ***list_hosts;

    pthread_mutex_t mu;
    struct policy *cur;

    int epfd, infd, tfd;
    struct watch w[MAX_WATCHES];
    size_t nw;
    bool pending;
    uint64_t first_ms;
};

/* ---- options ---- */

static int copy_str(const char *s, char **out)
{
    *out = NULL;
    return !s || (*out = strdup(s)) ? 0 : -1;
}

static int copy_lists(struct policy_store *s, const struct policy_load_opts *o)
{
    if (!o->nhostlists)
        return 0;
    s->lists = calloc(o->nhostlists, sizeof(*s->lists));
    s->list_hosts = calloc(o->nhostlists, sizeof(*s->list_hosts));
    if (!s->lists || !s->list_hosts)
        return -1;
    s->o.nhostlists = o->nhostlists;
    for (size_t i = 0; i < o->nhostlists; i++) {
        const struct policy_hostlist *l = &o->hostlists[i];
        char **h = calloc(l->nhosts + 1, sizeof(char *));
        s->list_hosts[i] = h;
        if (!h || copy_str(l->name, (char **)&s->lists[i].name) < 0)
            return -1;
        for (size_t j = 0; j < l->nhosts; j++)
            if (copy_str(l->hosts[j], &h[j]) < 0)
                return -1;
        s->lists[i].hosts = (const char *const *)h;
        s->lists[i].nhosts = l->nhosts;
    }
    s->o.hostlists = s->lists;
    return 0;
}

static int copy_opts(struct policy_store *s, const struct policy_load_opts *o)
{
    const char *corp = o->corp_path;
    if (!corp) {
        corp = getenv("CAPSEM_CORP_CONFIG");
        if (!corp)
            corp = POLICY_CORP_DEFAULT;
    }
    if (copy_str(o->home, &s->home) < 0 || copy_str(corp, &s->corp) < 0 ||
        copy_str(o->profile, &s->profile) < 0 || copy_str(o->bundled_dir, &s->bundled) < 0 ||
        copy_lists(s, o) < 0)
        return -1;
    s->o.home = s->home;
    s->o.corp_path = s->corp;
    s->o.profile = s->profile;
    s->o.bundled_dir = s->bundled;
    return 0;
}

/* ---- snapshot ---- */

struct policy_store *policy_store_new(const struct policy_load_opts *o, struct err **errp)
{
    struct policy_store *s = calloc(1, sizeof(*s));
    if (!s) {
        err_status(errp, 0, "out of memory");
        return NULL;
    }
    s->epfd = s->infd = s->tfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    if (copy_opts(s, o) < 0 || !(s->cur = policy_defaults())) {
        policy_store_free(s);
        err_status(errp, 0, "out of memory");
        return NULL;
    }
    return s;
}

void policy_store_free(struct policy_store *s)
{
    if (!s)
        return;
    policy_unref(s->cur);
    pthread_mutex_destroy(&s->mu);
    for (size_t i = 0; s->list_hosts && s->lists && i < s->o.nhostlists; i++) {
        for (char **h = s->list_hosts[i]; h && *h; h++)
            free(*h);
        free(s->list_hosts[i]);
        free((char *)s->lists[i].name);
    }
    free(s->list_hosts);
    free(s->lists);
    free(s->home);
    free(s->corp);
    free(s->profile);
    free(s->bundled);
    if (s->infd >= 0)
        close(s->infd);
    if (s->tfd >= 0)
        close(s->tfd);
    if (s->epfd >= 0)
        close(s->epfd);
    free(s);
}

struct policy *policy_store_get(struct policy_store *s)
{
    pthread_mutex_lock(&s->mu);
    struct policy *p = policy_ref(s->cur);
    pthread_mutex_unlock(&s->mu);
    return p;
}

int policy_store_reload(struct policy_store *s, struct err **errp)
{
    struct policy *p = policy_load(&s->o, errp);
    if (!p)
        return -1;
    pthread_mutex_lock(&s->mu);
    struct policy *old = s->cur;
    s->cur = p;
    pthread_mutex_unlock(&s->mu);
    policy_unref(old);
    return 0;
}

/* ---- watching ---- */

#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* Watches the nearest existing directory on `path` for the name of the
 * component below it, adding the watch to w[*nw]. Directories that cannot
 * be watched are skipped. */
static void add_target(struct watch w[MAX_WATCHES], size_t *nw, int infd, const char *path)
{
    char buf[PATH_MAX];
    if (str_copy(buf, sizeof(buf), path) < 0)
        return;
    for (;;) {
        char *slash = strrchr(buf, '/');
        if (!slash || *nw == MAX_WATCHES)
            return;
        char name[NAME_MAX + 1];
        if (str_copy(name, sizeof(name), slash + 1) < 0)
            return;
        *slash = '\0';
        int wd = inotify_add_watch(infd, slash == buf ? "/" : buf, WATCH_MASK);
        if (wd >= 0) {
            w[*nw].wd = wd;
            memcpy(w[*nw].name, name, sizeof(name));
            (*nw)++;
            return;
        }
        if ((errno != ENOENT && errno != ENOTDIR) || slash == buf)
            return;
    }
}

/* A fresh inotify fd with watches for every policy file, swapped into the
 * epoll set together with its watch table. On failure the old fd and
 * table stay in place and keep working. */
static int rewatch(struct policy_store *s, struct err **errp)
{
    struct watch w[MAX_WATCHES];
    size_t nw = 0;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return err_sys(errp, "inotify_init1");
    char path[PATH_MAX];
    const char *prof = s->profile ? s->profile : "code";
    if (*s->corp)
        add_target(w, &nw, fd, s->corp);
    if (s->home) {
        snprintf(path, sizeof(path), "%s/policy.toml", s->home);
        add_target(w, &nw, fd, path);
        snprintf(path, sizeof(path), "%s/profiles/%s.toml", s->home, prof);
        add_target(w, &nw, fd, path);
    }
    if (s->bundled) {
        snprintf(path, sizeof(path), "%s/%s.toml", s->bundled, prof);
        add_target(w, &nw, fd, path);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        err_sys(errp, "epoll_ctl");
        close(fd);
        return -1;
    }
    if (s->infd >= 0) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->infd, NULL);
        close(s->infd);
    }
    s->infd = fd;
    memcpy(s->w, w, nw * sizeof(w[0]));
    s->nw = nw;
    return 0;
}

int policy_store_watch_fd(struct policy_store *s, struct err **errp)
{
    if (s->epfd >= 0)
        return s->epfd;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return err_sys(errp, "epoll_create1");
    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->tfd};
    if (s->tfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev) < 0 || rewatch(s, errp) < 0) {
        if (errp && !*errp)
            err_sys(errp, "policy watch");
        close(s->epfd);
        if (s->tfd >= 0)
            close(s->tfd);
        s->epfd = s->tfd = -1;
        return -1;
    }
    return s->epfd;
}

/* Arms the timer: 100 ms after the latest event, 500 ms after the first. */
static void schedule(struct policy_store *s)
{
    uint64_t now = time_mono_ms();
    if (!s->pending) {
        s->pending = true;
        s->first_ms = now;
    }
    uint64_t due = MIN(now + DEBOUNCE_QUIET_MS, s->first_ms + DEBOUNCE_MAX_MS);
    uint64_t delay = due > now ? due - now : 1;
    struct itimerspec its = {.it_value = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000}};
    timerfd_settime(s->tfd, 0, &its, NULL);
}

static bool relevant(const struct policy_store *s, const struct inotify_event *ev)
{
    if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
        return true;
    for (size_t i = 0; ev->len && i < s->nw; i++)
        if (s->w[i].wd == ev->wd && strcmp(s->w[i].name, ev->name) == 0)
            return true;
    return false;
}

static void drain_inotify(struct policy_store *s)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = fd_read_retry(s->infd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)(buf + off);
            if (relevant(s, ev))
                schedule(s);
            off += sizeof(*ev) + ev->len;
        }
    }
}

int policy_store_watch_process(struct policy_store *s, struct err **errp)
{
    if (s->epfd < 0)
        return 0;
    drain_inotify(s);
    uint64_t ticks;
    if (fd_read_retry(s->tfd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks) || !s->pending)
        return 0;
    s->pending = false;
    struct err *e = NULL;
    rewatch(s, &e); /* on failure the previous watches stay */
    err_free(e);
    return policy_store_reload(s, errp) < 0 ? -1 : 1;
}
