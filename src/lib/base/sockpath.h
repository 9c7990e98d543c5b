/* UNIX socket paths longer than sun_path allows (107 bytes) are mapped to
 * /tmp/capsem-<uid>/<first 16 hex of sha256(path)>.sock (directory 0700).
 * Binders and connectors both call this, so the logical path stays the one
 * users see (surface.md section 9). */
#ifndef CAPSEM_SOCKPATH_H
#define CAPSEM_SOCKPATH_H

#include <stddef.h>

#include "base/err.h"

#define SOCKPATH_MAX 108

int sockpath_resolve(const char *path, char *out, size_t cap, struct err **errp);
/* Creates, binds (mode 0600, via umask so there is no window) and listens
 * on a non-blocking UNIX stream socket. An existing file at the path is
 * replaced: callers that must not steal a live socket check first. */
int sockpath_listen(const char *path, int backlog, struct err **errp);
/* Connects (blocking); returns the fd or -1 with errno preserved in errp. */
int sockpath_connect(const char *path, struct err **errp);

#endif
