/* Socket -> owning process, for the relay metadata (network.md 2.5).
 *
 * A lookup finds the inode of the guest client's socket (sock_diag over
 * NETLINK_SOCK_DIAG; when the inet_diag modules are not loaded, the same
 * rows read from /proc/net/tcp or /proc/net/udp), then the process holding
 * "socket:[inode]" among /proc/<pid>/fd, then its comm and exe. The /proc
 * scan runs on one worker thread so the reactor never waits on it; lookups
 * queued together share one scan. Each lookup has a time budget counted from
 * its submission; past it the answer is pid 0, comm "?".
 *
 * Threading: procinfo_lookup(), procinfo_cancel() and the callbacks belong to
 * the reactor thread. The worker only touches the job queues (under pi_lock)
 * and the jobs it was handed. Jobs are owned by whoever holds them in a
 * queue; the reactor frees them after the callback. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "base/log.h"
#include "base/util.h"

#define PI_MAX_JOBS 256

/* Kernel ABI (<linux/netlink.h>, <linux/sock_diag.h>, <linux/inet_diag.h>;
 * musl ships none of them). */
#define PI_NETLINK_SOCK_DIAG 4
#define PI_SOCK_DIAG_BY_FAMILY 20
#define PI_NLM_F_REQUEST 0x1
#define PI_NLM_F_DUMP 0x300
#define PI_NLMSG_ERROR 2
#define PI_NLMSG_DONE 3

struct pi_nlmsghdr {
    uint32_t len;
    uint16_t type;
    uint16_t flags;
    uint32_t seq;
    uint32_t pid;
};

struct pi_diag_sockid {
    uint16_t sport; /* network order */
    uint16_t dport;
    uint32_t src[4];
    uint32_t dst[4];
    uint32_t ifindex;
    uint32_t cookie[2];
};

struct pi_diag_req {
    uint8_t family;
    uint8_t protocol;
    uint8_t ext;
    uint8_t pad;
    uint32_t states;
    struct pi_diag_sockid id;
};

struct pi_diag_msg {
    uint8_t family;
    uint8_t state;
    uint8_t timer;
    uint8_t retrans;
    struct pi_diag_sockid id;
    uint32_t expires;
    uint32_t rqueue;
    uint32_t wqueue;
    uint32_t uid;
    uint32_t inode;
};

struct pi_job {
    struct procinfo_query q;
    uint64_t deadline_ms;
    uint64_t inode; /* 0 = not found */
    struct procinfo result;
    size_t slot;
    uint32_t gen;
    struct pi_job *next;
};

struct pi_slot {
    bool used;
    uint32_t gen;
    procinfo_cb cb; /* NULL once cancelled */
    void *owner;
};

static pthread_mutex_t pi_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pi_cond = PTHREAD_COND_INITIALIZER;
static struct pi_job *pi_todo; /* reactor -> worker */
static struct pi_job *pi_done; /* worker -> reactor */
static struct pi_slot pi_slots[PI_MAX_JOBS];
static struct watch pi_watch = {.fd = -1};
static bool pi_started;
static bool pi_no_diag; /* sock_diag for AF_INET unavailable: use /proc/net */

void procinfo_unknown(struct procinfo *pi)
{
    pi->pid = 0;
    str_copy(pi->comm, sizeof(pi->comm), "?");
    pi->exe[0] = '\0';
}

/* ---------- pure helpers (unit-tested) ---------- */

/* Copies at most cap-1 bytes of src, printable ASCII only ('?' for others). */
static void pi_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = MIN(len, cap - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* "socket:[12345]" -> 12345; 0 if the link is anything else. */
static uint64_t pi_socket_link_inode(const char *link, size_t len)
{
    static const char pfx[] = "socket:[";
    if (len < sizeof(pfx) + 1 || memcmp(link, pfx, sizeof(pfx) - 1) != 0 || link[len - 1] != ']')
        return 0;
    uint64_t v = 0;
    for (size_t i = sizeof(pfx) - 1; i < len - 1; i++) {
        if (link[i] < '0' || link[i] > '9' || v > UINT64_MAX / 10)
            return 0;
        v = v * 10 + (uint64_t)(link[i] - '0');
    }
    return v;
}

static int pi_hex_u32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 8)
        return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = hex_digit(c);
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* "0100007F:2760": the address as the kernel prints it (%08X of the __be32,
 * which equals s_addr read as a native integer) and the port in host order. */
static int pi_parse_endpoint(const char *tok, size_t len, uint32_t *ip, uint16_t *port)
{
    const char *colon = memchr(tok, ':', len);
    uint32_t p;
    if (!colon || pi_hex_u32(tok, (size_t)(colon - tok), ip) < 0 ||
        pi_hex_u32(colon + 1, len - (size_t)(colon + 1 - tok), &p) < 0 || p > 0xffff)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

struct pi_row {
    uint32_t lip, rip;
    uint16_t lport, rport;
    uint64_t inode;
};

/* One data line of /proc/net/tcp or /proc/net/udp:
 * "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...". */
static int pi_parse_proc_net_line(const char *line, struct pi_row *row)
{
    const char *tok[10];
    size_t tlen[10];
    size_t nt = 0;
    const char *p = line;
    while (nt < 10) {
        p += strspn(p, " \t");
        if (!*p || *p == '\n')
            break;
        tok[nt] = p;
        tlen[nt] = strcspn(p, " \t\n");
        p += tlen[nt++];
    }
    if (nt < 10 || pi_parse_endpoint(tok[1], tlen[1], &row->lip, &row->lport) < 0 ||
        pi_parse_endpoint(tok[2], tlen[2], &row->rip, &row->rport) < 0)
        return -1;
    uint64_t inode = 0;
    for (size_t i = 0; i < tlen[9]; i++) {
        char c = tok[9][i];
        if (c < '0' || c > '9' || inode > UINT64_MAX / 10)
            return -1;
        inode = inode * 10 + (uint64_t)(c - '0');
    }
    row->inode = inode;
    return 0;
}

/* Does this socket row belong to the client of q? TCP: the 4-tuple (the
 * local end alone when dst_port is 0). UDP: the local port, the local address
 * if bound, the peer if connected. */
static bool pi_row_matches(const struct procinfo_query *q, const struct pi_row *r)
{
    if (r->inode == 0 || r->lport != q->src_port)
        return false;
    if (q->proto == IPPROTO_TCP)
        return r->lip == q->src_ip &&
               (q->dst_port == 0 || (r->rip == q->dst_ip && r->rport == q->dst_port));
    if (r->lip != 0 && r->lip != q->src_ip)
        return false;
    if (r->rport != 0 && q->dst_port != 0 && (r->rip != q->dst_ip || r->rport != q->dst_port))
        return false;
    return true;
}

/* Walks a NETLINK_SOCK_DIAG dump reply. 1: found (*inode set), 0: need more
 * messages, 2: end of dump, -1: error (errno set; ENOENT = no inet_diag). */
static int pi_diag_parse(const uint8_t *buf, size_t len, const struct procinfo_query *q,
                         uint64_t *inode)
{
    while (len >= sizeof(struct pi_nlmsghdr)) {
        struct pi_nlmsghdr h;
        memcpy(&h, buf, sizeof(h));
        if (h.len < sizeof(h) || h.len > len) {
            errno = EPROTO;
            return -1;
        }
        if (h.type == PI_NLMSG_DONE)
            return 2;
        if (h.type == PI_NLMSG_ERROR) {
            int32_t e = -EPROTO;
            if (h.len >= sizeof(h) + 4)
                memcpy(&e, buf + sizeof(h), 4);
            errno = e < 0 ? -e : EPROTO;
            return -1;
        }
        if (h.type == PI_SOCK_DIAG_BY_FAMILY && h.len >= sizeof(h) + sizeof(struct pi_diag_msg)) {
            struct pi_diag_msg m;
            memcpy(&m, buf + sizeof(h), sizeof(m));
            struct pi_row r = {.lip = m.id.src[0], .rip = m.id.dst[0],
                               .lport = ntohs(m.id.sport), .rport = ntohs(m.id.dport),
                               .inode = m.inode};
            if (pi_row_matches(q, &r)) {
                *inode = r.inode;
                return 1;
            }
        }
        size_t step = (h.len + 3u) & ~3u;
        if (step >= len)
            break;
        buf += step;
        len -= step;
    }
    return 0;
}

/* ---------- worker: inode lookup ---------- */

struct pi_sockaddr_nl {
    sa_family_t family;
    unsigned short pad;
    uint32_t pid;
    uint32_t groups;
};

/* 0: done (*inode 0 if the kernel knows no such socket); -1: sock_diag
 * failed (errno; ENOENT when the inet_diag modules are not loaded). */
static int pi_diag_lookup(const struct procinfo_query *q, uint64_t *inode)
{
    *inode = 0;
    _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, PI_NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct {
        struct pi_nlmsghdr h;
        struct pi_diag_req r;
    } req = {0};
    req.h.len = sizeof(req);
    req.h.type = PI_SOCK_DIAG_BY_FAMILY;
    req.h.flags = PI_NLM_F_REQUEST | PI_NLM_F_DUMP;
    req.h.seq = 1;
    req.r.family = AF_INET;
    req.r.protocol = (uint8_t)q->proto;
    req.r.states = ~0u;
    struct pi_sockaddr_nl kernel = {.family = AF_NETLINK};
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -1;
    uint8_t buf[32768];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        int rc = pi_diag_parse(buf, (size_t)n, q, inode);
        if (rc < 0)
            return -1;
        if (rc > 0)
            return 0;
    }
}

static int pi_proc_net_lookup(const struct procinfo_query *q, uint64_t *inode)
{
    _cleanup_fclose_ FILE *f =
        fopen(q->proto == IPPROTO_TCP ? "/proc/net/tcp" : "/proc/net/udp", "re");
    if (!f)
        return -1;
    char line[512];
    *inode = 0;
    if (!fgets(line, sizeof(line), f)) /* header */
        return 0;
    while (fgets(line, sizeof(line), f)) {
        struct pi_row r;
        if (pi_parse_proc_net_line(line, &r) == 0 && pi_row_matches(q, &r)) {
            *inode = r.inode;
            break;
        }
    }
    return 0;
}

static uint64_t pi_find_inode(const struct procinfo_query *q)
{
    uint64_t inode = 0;
    if (!pi_no_diag) {
        if (pi_diag_lookup(q, &inode) == 0)
            return inode;
        /* No inet_diag module (ENOENT) or no sock_diag at all. */
        if (errno == ENOENT || errno == EPROTONOSUPPORT || errno == EAFNOSUPPORT)
            pi_no_diag = true;
    }
    if (pi_proc_net_lookup(q, &inode) < 0)
        return 0;
    return inode;
}

/* ---------- worker: process scan ---------- */

static void pi_fill_process(struct procinfo *pi, uint32_t pid)
{
    char path[64], text[PROCINFO_EXE_MAX + 1];
    pi->pid = pid;
    str_copy(pi->comm, sizeof(pi->comm), "?");
    pi->exe[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%u/comm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = fd_read_retry(fd, text, sizeof(text) - 1);
        close(fd);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\0'))
            n--;
        if (n > 0)
            pi_sanitize(pi->comm, sizeof(pi->comm), text, (size_t)n);
    }
    snprintf(path, sizeof(path), "/proc/%u/exe", pid);
    ssize_t n = readlink(path, text, sizeof(text) - 1);
    if (n > 0)
        pi_sanitize(pi->exe, sizeof(pi->exe), text, (size_t)n);
}

/* Marks every job whose inode is among this process's fds; returns how many. */
static size_t pi_scan_fds(uint32_t pid, struct pi_job **jobs, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%u/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    size_t found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char link[64];
        ssize_t ln = readlinkat(dirfd(d), de->d_name, link, sizeof(link));
        if (ln <= 0 || (size_t)ln >= sizeof(link))
            continue;
        uint64_t ino = pi_socket_link_inode(link, (size_t)ln);
        if (!ino)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (jobs[i]->inode == ino && jobs[i]->result.pid == 0) {
                pi_fill_process(&jobs[i]->result, pid);
                found++;
            }
        }
    }
    closedir(d);
    return found;
}

static void pi_scan_proc(struct pi_job **jobs, size_t n, size_t wanted, uint64_t deadline)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while (wanted > 0 && (de = readdir(d)) != NULL) {
        int64_t pid;
        if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
            parse_int64(de->d_name, 1, 4194304, &pid) < 0)
            continue;
        size_t got = pi_scan_fds((uint32_t)pid, jobs, n);
        wanted -= MIN(got, wanted);
        if (time_mono_ms() >= deadline)
            break;
    }
    closedir(d);
}

static void pi_resolve(struct pi_job **jobs, size_t n)
{
    uint64_t deadline = 0;
    size_t wanted = 0;
    for (size_t i = 0; i < n; i++) {
        procinfo_unknown(&jobs[i]->result);
        deadline = MAX(deadline, jobs[i]->deadline_ms);
        if (time_mono_ms() < jobs[i]->deadline_ms)
            jobs[i]->inode = pi_find_inode(&jobs[i]->q);
        wanted += jobs[i]->inode != 0;
    }
    if (wanted > 0 && time_mono_ms() < deadline)
        pi_scan_proc(jobs, n, wanted, deadline);
}

static void *pi_worker(void *arg)
{
    int efd = (int)(intptr_t)arg;
    for (;;) {
        pthread_mutex_lock(&pi_lock);
        while (!pi_todo)
            pthread_cond_wait(&pi_cond, &pi_lock);
        struct pi_job *batch = pi_todo;
        pi_todo = NULL;
        pthread_mutex_unlock(&pi_lock);
        struct pi_job *jobs[PI_MAX_JOBS];
        size_t n = 0;
        for (struct pi_job *j = batch; j && n < PI_MAX_JOBS; j = j->next)
            jobs[n++] = j;
        pi_resolve(jobs, n);
        pthread_mutex_lock(&pi_lock);
        for (size_t i = 0; i < n; i++) {
            jobs[i]->next = pi_done;
            pi_done = jobs[i];
        }
        pthread_mutex_unlock(&pi_lock);
        uint64_t one = 1;
        if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("procinfo: eventfd: %s", strerror(errno));
    }
    return NULL;
}

/* ---------- reactor side ---------- */

static void pi_deliver(struct pi_job *j)
{
    struct pi_slot *s = &pi_slots[j->slot];
    if (s->used && s->gen == j->gen) {
        procinfo_cb cb = s->cb;
        void *owner = s->owner;
        s->used = false;
        s->cb = NULL;
        s->owner = NULL;
        if (cb)
            cb(owner, &j->result);
    }
    free(j);
}

static void pi_event_cb(struct watch *w, uint32_t revents)
{
    uint64_t v;
    if (fd_read_retry(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&pi_lock);
    struct pi_job *done = pi_done;
    pi_done = NULL;
    pthread_mutex_unlock(&pi_lock);
    while (done) {
        struct pi_job *next = done->next;
        pi_deliver(done);
        done = next;
    }
}

static int pi_start(void)
{
    if (pi_started)
        return 0;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0)
        return -1;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&t, &attr, pi_worker, (void *)(intptr_t)efd);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(efd);
        log_warn("procinfo: cannot start the worker thread: %s", strerror(rc));
        return -1;
    }
    watch_add(&pi_watch, efd, EPOLLIN, pi_event_cb, NULL);
    pi_started = true;
    return 0;
}

int procinfo_lookup(const struct procinfo_query *q, procinfo_cb cb, void *owner)
{
    if (pi_start() < 0)
        return -1;
    size_t slot = PI_MAX_JOBS;
    for (size_t i = 0; i < PI_MAX_JOBS; i++) {
        if (!pi_slots[i].used) {
            slot = i;
            break;
        }
    }
    if (slot == PI_MAX_JOBS)
        return -1;
    struct pi_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->q = *q;
    j->deadline_ms = time_mono_ms() + (q->budget_ms ? q->budget_ms : 50);
    j->slot = slot;
    j->gen = ++pi_slots[slot].gen;
    pi_slots[slot] = (struct pi_slot){.used = true, .gen = j->gen, .cb = cb, .owner = owner};
    pthread_mutex_lock(&pi_lock);
    j->next = pi_todo;
    pi_todo = j;
    pthread_cond_signal(&pi_cond);
    pthread_mutex_unlock(&pi_lock);
    return 0;
}

void procinfo_cancel(void *owner)
{
    for (size_t i = 0; i < PI_MAX_JOBS; i++) {
        if (pi_slots[i].used && pi_slots[i].owner == owner) {
            /* The slot stays taken until the job comes back (bounds memory). */
            pi_slots[i].cb = NULL;
            pi_slots[i].owner = NULL;
        }
    }
}
