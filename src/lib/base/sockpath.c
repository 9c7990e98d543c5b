#include "base/sockpath.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"

int sockpath_resolve(const char *path, char *out, size_t cap, struct err **errp)
{
    if (strlen(path) < SOCKPATH_MAX) {
        if (str_copy(out, cap, path) < 0)
            return err_set(errp, ENAMETOOLONG, "socket path too long");
        return 0;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(path, strlen(path), md, &mdlen, EVP_sha256(), NULL))
        return err_set(errp, EIO, "sha256 failed");
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/capsem-%u", (unsigned)getuid());
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return err_sys(errp, "mkdir %s", dir);
    struct stat st;
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 077))
        return err_set(errp, EPERM, "%s is not a private directory owned by you", dir);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (snprintf(out, cap, "%s/%s.sock", dir, hex) >= (int)cap)
        return err_set(errp, ENAMETOOLONG, "socket path too long");
    return 0;
}

static int fill_addr(const char *path, struct sockaddr_un *sa, struct err **errp)
{
    char real[SOCKPATH_MAX + 64];
    if (sockpath_resolve(path, real, sizeof(real), errp) < 0)
        return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (str_copy(sa->sun_path, sizeof(sa->sun_path), real) < 0)
        return err_set(errp, ENAMETOOLONG, "socket path too long: %s", real);
    return 0;
}

int sockpath_listen(const char *path, int backlog, struct err **errp)
{
    struct sockaddr_un sa;
    if (fill_addr(path, &sa, errp) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_sys(errp, "socket");
    unlink(sa.sun_path);
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, backlog) < 0) {
        err_sys(errp, "bind %s", sa.sun_path);
        close(fd);
        return -1;
    }
    return fd;
}

int sockpath_connect(const char *path, struct err **errp)
{
    struct sockaddr_un sa;
    if (fill_addr(path, &sa, errp) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_sys(errp, "socket");
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        err_sys(errp, "connect %s", path);
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}
