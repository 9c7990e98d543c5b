/* libcurl multi driven by a libevent reactor: curl tells us which sockets
 * and timeouts it needs (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), libevent
 * watches them, and finished transfers are reported to their owners. One
 * instance per reactor (per VM in capsem-process). */
#ifndef CAPSEM_CURLEV_H
#define CAPSEM_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>

#include "base/err.h"

struct curlev;

/* Called once per finished transfer (success or not); the easy handle has
 * been removed from the multi handle; the owner may free or reuse it. */
typedef void (*curlev_done_fn)(CURL *easy, CURLcode result, void *arg);

struct curlev *curlev_new(struct event_base *base, struct err **errp);
/* Removes and cleans up every transfer still running (their done callbacks
 * are not called), then frees. */
void curlev_free(struct curlev *c);

/* Starts a transfer. The easy handle stays the caller's. */
int curlev_add(struct curlev *c, CURL *easy, curlev_done_fn done, void *arg, struct err **errp);
/* Aborts a running transfer without calling its done callback. */
void curlev_remove(struct curlev *c, CURL *easy);
/* After curl_easy_pause(easy, CURLPAUSE_CONT): let curl act on it now. */
void curlev_kick(struct curlev *c);

CURLM *curlev_multi(struct curlev *c);

#endif
