#include "net/curlev.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/log.h"

struct curlev_sock {
    struct curlev *c;
    curl_socket_t fd;
    struct event *ev;
};

struct curlev_xfer {
    CURL *easy;
    curlev_done_fn done;
    void *arg;
    struct curlev_xfer *prev, *next;
};

struct curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    int running;
    struct curlev_xfer *xfers; /* curl 7.88 has no curl_multi_get_handles */
};

static void xfer_unlink(struct curlev *c, struct curlev_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void check_done(struct curlev *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        struct curlev_xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(c->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        if (x) {
            curlev_done_fn done = x->done;
            void *arg = x->arg;
            xfer_unlink(c, x);
            free(x);
            if (done)
                done(easy, result, arg);
        }
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct curlev_sock *s = arg;
    struct curlev *c = s->c;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(c->multi, fd, flags, &c->running);
    check_done(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct curlev *c = arg;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
    check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct curlev *c = userp;
    struct curlev_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->c = c;
        s->fd = fd;
        curl_multi_assign(c->multi, fd, s);
    } else {
        event_free(s->ev);
    }
    short ev = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    s->ev = event_new(c->base, fd, ev, on_socket_event, s);
    event_add(s->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct curlev *c = userp;
    if (timeout_ms < 0) {
        event_del(c->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    event_add(c->timer, &tv);
    return 0;
}

struct curlev *curlev_new(struct event_base *base, struct err **errp)
{
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return err_set(errp, EIO, "curl_global_init failed"), NULL;
        global_done = true;
    }
    struct curlev *c = calloc(1, sizeof(*c));
    if (!c)
        return err_set(errp, ENOMEM, "out of memory"), NULL;
    c->base = base;
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, on_timer, c);
    if (!c->multi || !c->timer) {
        curlev_free(c);
        return err_set(errp, ENOMEM, "cannot create the curl multi handle"), NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

void curlev_free(struct curlev *c)
{
    if (!c)
        return;
    if (c->multi) {
        while (c->xfers) {
            struct curlev_xfer *x = c->xfers;
            curl_multi_remove_handle(c->multi, x->easy);
            curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
            xfer_unlink(c, x);
            free(x);
        }
        curl_multi_cleanup(c->multi);
    }
    if (c->timer)
        event_free(c->timer);
    free(c);
}

int curlev_add(struct curlev *c, CURL *easy, curlev_done_fn done, void *arg, struct err **errp)
{
    struct curlev_xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return err_set(errp, ENOMEM, "out of memory");
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    CURLMcode rc = curl_multi_add_handle(c->multi, easy);
    if (rc != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return err_set(errp, EIO, "curl_multi_add_handle: %s", curl_multi_strerror(rc));
    }
    x->next = c->xfers;
    if (c->xfers)
        c->xfers->prev = x;
    c->xfers = x;
    return 0;
}

void curlev_remove(struct curlev *c, CURL *easy)
{
    struct curlev_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(c->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (x) {
        xfer_unlink(c, x);
        free(x);
    }
}

void curlev_kick(struct curlev *c)
{
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &c->running);
    check_done(c);
}

CURLM *curlev_multi(struct curlev *c)
{
    return c->multi;
}
