/* Non-blocking socket I/O against capped buffers, for libevent owners.
 * One implementation of the "write what the socket takes, arm EV_WRITE for
 * the rest" and "read a chunk into a bounded buffer" loops. */
#ifndef CAPSEM_EVIO_H
#define CAPSEM_EVIO_H

#include <event2/event.h>
#include <sys/types.h>

#include "base/buf.h"

/* Sends as much of `out` as the socket accepts. When bytes remain the write
 * event `wr` is armed, else it is disarmed. Returns 0, or -1 on a socket
 * error (errno set; `out` is emptied). */
int evio_flush(int fd, struct buf *out, struct event *wr);

enum evio_read_result {
    EVIO_DATA = 1,   /* bytes were appended */
    EVIO_AGAIN = 0,  /* nothing to read now */
    EVIO_EOF = -1,   /* peer closed */
    EVIO_ERROR = -2, /* socket error (errno) */
    EVIO_FULL = -3,  /* `in` is at its cap */
};

/* Reads up to `chunk` bytes onto the end of `in`. */
enum evio_read_result evio_read(int fd, struct buf *in, size_t chunk);

#endif
