#include "base/evio.h"

#include <errno.h>
#include <sys/socket.h>

int evio_flush(int fd, struct buf *out, struct event *wr)
{
    while (out->len > 0) {
        ssize_t n = send(fd, buf_head(out), out->len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                event_add(wr, NULL);
                return 0;
            }
            int saved = errno;
            buf_reset(out);
            event_del(wr);
            errno = saved;
            return -1;
        }
        buf_consume(out, (size_t)n);
    }
    event_del(wr);
    return 0;
}

enum evio_read_result evio_read(int fd, struct buf *in, size_t chunk)
{
    uint8_t *dst = buf_reserve(in, chunk);
    if (!dst) {
        /* Less than a chunk left: read what still fits. */
        size_t room = buf_room(in);
        if (room == 0 || !(dst = buf_reserve(in, room)))
            return EVIO_FULL;
        chunk = room;
    }
    ssize_t n;
    do {
        n = recv(fd, dst, chunk, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        buf_commit(in, (size_t)n);
        return EVIO_DATA;
    }
    if (n == 0)
        return EVIO_EOF;
    return errno == EAGAIN ? EVIO_AGAIN : EVIO_ERROR;
}
