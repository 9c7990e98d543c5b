#include "base/paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

char *paths_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    char *s = NULL;
    if (asprintf(&s, "%.*s/%s", (int)la, a, b) < 0)
        return NULL;
    return s;
}

char *paths_home(struct err **errp)
{
    const char *h = getenv("CAPSEM_HOME");
    if (h && *h)
        return strdup(h);
    const char *home = getenv("HOME");
    if (!home || !*home) {
        err_set(errp, ENOENT, "neither CAPSEM_HOME nor HOME is set");
        return NULL;
    }
    return paths_join(home, ".capsem");
}

char *paths_run_dir(struct err **errp)
{
    const char *r = getenv("CAPSEM_RUN_DIR");
    if (r && *r)
        return strdup(r);
    _cleanup_free_ char *home = paths_home(errp);
    return home ? paths_join(home, "run") : NULL;
}

char *paths_service_socket(struct err **errp)
{
    const char *u = getenv("CAPSEM_UDS_PATH");
    if (u && *u)
        return strdup(u);
    _cleanup_free_ char *run = paths_run_dir(errp);
    return run ? paths_join(run, "service.sock") : NULL;
}

char *paths_self_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return strdup(buf);
}

char *paths_share_dir(void)
{
    const char *env = getenv("CAPSEM_SHARE_DIR");
    if (env && *env)
        return strdup(env);
    _cleanup_free_ char *self = paths_self_dir();
    if (self) {
        char *p = paths_join(self, "../share/capsem");
        if (p && access(p, R_OK) == 0)
            return p;
        free(p);
    }
#ifdef CAPSEM_SOURCE_SHARE
    return strdup(CAPSEM_SOURCE_SHARE);
#else
    return NULL;
#endif
}

char *paths_find_binary(const char *name)
{
    _cleanup_free_ char *self = paths_self_dir();
    if (self) {
        char *p = paths_join(self, name);
        if (p && access(p, X_OK) == 0)
            return p;
        free(p);
    }
    _cleanup_free_ char *home = paths_home(NULL);
    if (home) {
        _cleanup_free_ char *bin = paths_join(home, "bin");
        char *p = bin ? paths_join(bin, name) : NULL;
        if (p && access(p, X_OK) == 0)
            return p;
        free(p);
    }
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    _cleanup_free_ char *copy = strdup(path);
    char *save = NULL;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
         dir = strtok_r(NULL, ":", &save)) {
        char *p = paths_join(dir, name);
        if (p && access(p, X_OK) == 0)
            return p;
        free(p);
    }
    return NULL;
}
