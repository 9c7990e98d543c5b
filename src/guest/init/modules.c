/* Parallel kernel module loader for capsem-init.
 *
 * Under TCG, loading the ~30 initrd modules one after the other takes about
 * half a second (ext4 alone ~0.2 s: relocation and init run in emulated code).
 * With the dependency graph from modules.dep, independent modules load on
 * several vCPUs at once. Workers take modules in load-order order and wait
 * until the dependencies of the one they took are loaded; since load-order is
 * topologically sorted, every awaited module is already taken by a worker
 * that never waits on a later one, so this cannot deadlock. */
#include "modules.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"

#define MAX_MODULES 256
#define MAX_DEPS    32
#define MAX_WORKERS 8
#define NAME_CAP    64

struct module {
    char name[NAME_CAP];
    int deps[MAX_DEPS];
    int ndeps;
    bool done;
};

struct loader {
    const char *dir;
    void (*trace)(const char *name);
    struct module mods[MAX_MODULES];
    int n;
    int next;        /* next module index to hand out */
    struct err *err; /* first failure; the others stop at once */
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

/* Parameters for a module from the kernel command line ("dummy.numdummies=0"),
 * as modprobe would pass them: the kernel applies command-line parameters
 * only to built-in modules. Module names compare with '-' and '_' equal. */
static char cmdline[4096];
static pthread_once_t cmdline_once = PTHREAD_ONCE_INIT;

static void read_cmdline(void)
{
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? fd_read_retry(fd, cmdline, sizeof(cmdline) - 1) : 0;
    if (fd >= 0)
        close(fd);
    cmdline[n > 0 ? n : 0] = '\0';
}

static void cmdline_params(const char *file, char *out, size_t cap)
{
    pthread_once(&cmdline_once, read_cmdline);
    char mod[NAME_CAP];
    size_t m = 0;
    for (const char *p = file; *p && *p != '.' && m < sizeof(mod) - 1; p++)
        mod[m++] = *p == '-' ? '_' : *p;
    mod[m] = '\0';
    size_t o = 0;
    out[0] = '\0';
    for (const char *tok = cmdline; *tok;) {
        size_t len = strcspn(tok, " \n");
        bool match = len > m + 1 && tok[m] == '.';
        for (size_t i = 0; match && i < m; i++)
            match = (tok[i] == '-' ? '_' : tok[i]) == mod[i];
        if (match && o + len - m + 1 < cap) {
            if (o)
                out[o++] = ' ';
            memcpy(out + o, tok + m + 1, len - m - 1);
            o += len - m - 1;
            out[o] = '\0';
        }
        tok += len;
        while (*tok == ' ' || *tok == '\n')
            tok++;
    }
}

static int load_one(const char *dir, const char *name, struct err **errp)
{
    char path[256], params[1024];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return err_set(errp, ENAMETOOLONG, "module path too long: %s", name);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(errp, "open %s", path);
    cmdline_params(name, params, sizeof(params));
    if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
        return err_sys(errp, "finit_module %s", name);
    return 0;
}

static int find_module(const struct loader *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->mods[i].name, name) == 0)
            return i;
    return -1;
}

/* Splits buf in place into lines; calls fn for each non-empty, non-comment line. */
static int for_each_line(char *buf, int (*fn)(struct loader *, char *, struct err **),
                         struct loader *l, struct err **errp)
{
    for (char *line = buf; *line;) {
        char *end = line + strcspn(line, "\n");
        bool last = *end == '\0';
        *end = '\0';
        if (*line && *line != '#' && fn(l, line, errp) < 0)
            return -1;
        if (last)
            break;
        line = end + 1;
    }
    return 0;
}

static int add_module(struct loader *l, char *line, struct err **errp)
{
    if (l->n == MAX_MODULES)
        return err_set(errp, E2BIG, "load-order: more than %d modules", MAX_MODULES);
    if (strchr(line, '/') || str_copy(l->mods[l->n].name, NAME_CAP, line) < 0)
        return err_set(errp, EINVAL, "load-order: bad module name '%s'", line);
    l->n++;
    return 0;
}

/* "a.ko: b.ko c.ko" */
static int add_deps(struct loader *l, char *line, struct err **errp)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return err_set(errp, EINVAL, "modules.dep: no ':' in '%s'", line);
    *colon = '\0';
    int i = find_module(l, line);
    if (i < 0)
        return err_set(errp, EINVAL, "modules.dep: %s is not in load-order", line);
    for (char *p = colon + 1; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (len == 0)
            break;
        char dep[NAME_CAP];
        if (len >= sizeof(dep))
            return err_set(errp, EINVAL, "modules.dep: name too long in %s", line);
        memcpy(dep, p, len);
        dep[len] = '\0';
        p += len;
        int d = find_module(l, dep);
        if (d < 0 || d >= i)
            return err_set(errp, EINVAL, "modules.dep: %s needs %s, which is not before it", line,
                           dep);
        if (l->mods[i].ndeps == MAX_DEPS)
            return err_set(errp, E2BIG, "modules.dep: %s has too many dependencies", line);
        l->mods[i].deps[l->mods[i].ndeps++] = d;
    }
    return 0;
}

static bool deps_done(const struct loader *l, int i)
{
    for (int k = 0; k < l->mods[i].ndeps; k++)
        if (!l->mods[l->mods[i].deps[k]].done)
            return false;
    return true;
}

static void *worker(void *arg)
{
    struct loader *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->err && l->next < l->n) {
        int i = l->next++;
        while (!l->err && !deps_done(l, i))
            pthread_cond_wait(&l->cond, &l->lock);
        if (l->err)
            break;
        pthread_mutex_unlock(&l->lock);
        struct err *e = NULL;
        int rc = load_one(l->dir, l->mods[i].name, &e);
        if (rc == 0 && l->trace)
            l->trace(l->mods[i].name);
        pthread_mutex_lock(&l->lock);
        if (rc < 0 && !l->err)
            l->err = e;
        else if (rc < 0)
            err_free(e);
        else
            l->mods[i].done = true;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void loader_free(struct loader *l)
{
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    err_free(l->err);
    free(l);
}

int modules_load(const char *dir, int workers, void (*trace)(const char *name), struct err **errp)
{
    char path[256];
    _cleanup_free_ char *order = NULL;
    _cleanup_free_ char *deps = NULL;

    snprintf(path, sizeof(path), "%s/load-order", dir);
    if (file_read_all(path, 65536, &order, NULL, errp) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/modules.dep", dir);
    if (file_read_all(path, 65536, &deps, NULL, NULL) < 0)
        workers = 1; /* no graph: strictly in order */

    struct loader *l = calloc(1, sizeof(*l));
    if (!l)
        return err_set(errp, ENOMEM, "out of memory");
    l->dir = dir;
    l->trace = trace;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    if (for_each_line(order, add_module, l, errp) < 0) {
        loader_free(l);
        return -1;
    }
    if (deps) {
        if (for_each_line(deps, add_deps, l, errp) < 0) {
            loader_free(l);
            return -1;
        }
    } else {
        for (int i = 1; i < l->n; i++) { /* each module waits for the previous one */
            l->mods[i].deps[0] = i - 1;
            l->mods[i].ndeps = 1;
        }
    }

    pthread_t threads[MAX_WORKERS];
    int started = 0;
    workers = MIN(MAX(workers, 1), MAX_WORKERS);
    while (started < workers - 1 && pthread_create(&threads[started], NULL, worker, l) == 0)
        started++;
    worker(l); /* this thread works too */
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);

    int rc = 0;
    if (l->err) {
        err_move(errp, &l->err);
        rc = -1;
    }
    loader_free(l);
    return rc;
}
