#include "vm/assets.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "policy/policy.h"

#define MANIFEST_MAX (1024u * 1024u)

struct assets_cache_entry {
    char *path;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino;
    char sha256[65];
    struct assets_cache_entry *next;
};

int sha256_file(const char *path, char out[65], struct err **errp)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(errp, "open %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return err_set(errp, EIO, "sha256 init failed");
    }
    static __thread unsigned char buf[1 << 20];
    ssize_t n;
    while ((n = fd_read_retry(fd, buf, sizeof(buf))) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (n < 0)
        return err_sys(errp, "read %s", path);
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static int load_file(json_t *j, const char *vdir, struct asset_file *f, const char *what,
                     struct err **errp)
{
    const char *file = json_string_value(json_object_get(j, "file"));
    const char *sha = json_string_value(json_object_get(j, "sha256"));
    json_t *size = json_object_get(j, "size");
    if (!file || !sha || !json_is_integer(size) || strchr(file, '/') || strlen(sha) != 64)
        return err_status(errp, 412, "assets manifest: bad entry for %s", what);
    f->file = strdup(file);
    f->path = paths_join(vdir, file);
    f->sha256 = strdup(sha);
    f->size = (uint64_t)json_integer_value(size);
    return f->file && f->path && f->sha256 ? 0 : err_set(errp, ENOMEM, "out of memory");
}

/* "apt_hosts": optional; an array of at most ASSETS_MAX_APT_HOSTS host names
 * (or IPv4 literals) that the policy loader would accept, stored normalised.
 * Anything else refuses the manifest: a host the policy rejects would
 * otherwise make every policy load of the VM fail. */
static int load_apt_hosts(json_t *j, const char *ver, struct asset_rootfs *r, struct err **errp)
{
    json_t *arr = json_object_get(j, "apt_hosts");
    if (!arr || json_is_null(arr))
        return 0;
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n > ASSETS_MAX_APT_HOSTS)
        return err_status(errp, 412,
                          "assets manifest: version %s, rootfs %s: apt_hosts must be an array of "
                          "at most %d host names",
                          ver, r->profile, ASSETS_MAX_APT_HOSTS);
    r->apt_hosts = calloc(n + 1, sizeof(char *));
    if (!r->apt_hosts)
        return err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *h = json_string_value(json_array_get(arr, i));
        char norm[256];
        struct err *e = NULL;
        if (!h || policy_host_normalize(h, strlen(h), norm, sizeof(norm), &e) < 0) {
            int rc = err_status(errp, 412,
                                "assets manifest: version %s, rootfs %s: apt_hosts entry %zu is "
                                "not a host name (%s)",
                                ver, r->profile, i, e ? err_msg(e) : "not a string");
            err_free(e);
            return rc;
        }
        r->apt_hosts[i] = strdup(norm);
        if (!r->apt_hosts[i])
            return err_set(errp, ENOMEM, "out of memory");
        r->napt_hosts = i + 1;
    }
    return 0;
}

static int load_version(const char *dir, const char *ver, json_t *j, struct asset_version *v,
                        struct err **errp)
{
    if (!*ver || strchr(ver, '/') || strstr(ver, ".."))
        return err_status(errp, 412, "assets manifest: bad version name %s", ver);
    char sub[300];
    snprintf(sub, sizeof(sub), "v%s", ver);
    _cleanup_free_ char *vdir = paths_join(dir, sub);
    v->version = strdup(ver);
    const char *arch = json_string_value(json_object_get(j, "arch"));
    v->arch = strdup(arch ? arch : "x86_64");
    if (load_file(json_object_get(j, "kernel"), vdir, &v->kernel, "kernel", errp) < 0 ||
        load_file(json_object_get(j, "initrd"), vdir, &v->initrd, "initrd", errp) < 0)
        return -1;
    json_t *rootfs = json_object_get(j, "rootfs");
    const char *profile;
    json_t *val;
    json_object_foreach(rootfs, profile, val)
    {
        if (v->nrootfs >= ASSETS_MAX_PROFILES)
            break;
        struct asset_rootfs *r = &v->rootfs[v->nrootfs];
        r->profile = strdup(profile);
        v->nrootfs++;
        if (load_file(val, vdir, &r->f, profile, errp) < 0 || load_apt_hosts(val, ver, r, errp) < 0)
            return -1;
    }
    return 0;
}

int assets_load(const char *dir, struct assets *a, struct err **errp)
{
    memset(a, 0, sizeof(*a));
    _cleanup_free_ char *path = paths_join(dir, "manifest.json");
    _cleanup_free_ char *text = NULL;
    size_t len;
    struct err *e = NULL;
    if (file_read_all(path, MANIFEST_MAX, &text, &len, &e) < 0) {
        int rc = err_status(errp, 412, "guest assets are not installed (run: capsem setup): %s",
                            err_msg(e));
        err_free(e);
        return rc;
    }
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j)
        return err_status(errp, 412, "%s:%d: %s", path, jerr.line, jerr.text);
    a->dir = strdup(dir);
    const char *cur = json_string_value(json_object_get(j, "current"));
    json_t *versions = json_object_get(j, "versions");
    a->current = cur ? strdup(cur) : NULL;
    size_t n = json_object_size(versions);
    a->versions = calloc(n ? n : 1, sizeof(*a->versions));
    const char *ver;
    json_t *val;
    int rc = 0;
    json_object_foreach(versions, ver, val)
    {
        if (load_version(dir, ver, val, &a->versions[a->nversions++], errp) < 0) {
            rc = -1;
            break;
        }
    }
    json_decref(j);
    if (rc == 0 && (!a->current || !assets_find(a, a->current)))
        rc = err_status(errp, 412, "assets manifest names no installed current version");
    if (rc < 0)
        assets_free(a);
    return rc;
}

static void free_file(struct asset_file *f)
{
    free(f->file);
    free(f->path);
    free(f->sha256);
}

void assets_free(struct assets *a)
{
    for (size_t i = 0; i < a->nversions; i++) {
        struct asset_version *v = &a->versions[i];
        free(v->version);
        free(v->arch);
        free_file(&v->kernel);
        free_file(&v->initrd);
        for (size_t k = 0; k < v->nrootfs; k++) {
            struct asset_rootfs *r = &v->rootfs[k];
            free(r->profile);
            free_file(&r->f);
            for (size_t h = 0; h < r->napt_hosts; h++)
                free(r->apt_hosts[h]);
            free(r->apt_hosts);
        }
    }
    free(a->versions);
    while (a->cache) {
        struct assets_cache_entry *e = a->cache;
        a->cache = e->next;
        free(e->path);
        free(e);
    }
    free(a->dir);
    free(a->current);
    memset(a, 0, sizeof(*a));
}

const struct asset_version *assets_find(const struct assets *a, const char *version)
{
    for (size_t i = 0; i < a->nversions; i++)
        if (strcmp(a->versions[i].version, version) == 0)
            return &a->versions[i];
    return NULL;
}

const struct asset_rootfs *assets_rootfs_entry(const struct asset_version *v, const char *profile)
{
    for (size_t i = 0; i < v->nrootfs; i++)
        if (strcmp(v->rootfs[i].profile, profile) == 0)
            return &v->rootfs[i];
    return NULL;
}

const struct asset_file *assets_rootfs(const struct asset_version *v, const char *profile)
{
    const struct asset_rootfs *r = assets_rootfs_entry(v, profile);
    return r ? &r->f : NULL;
}

int assets_verify(struct assets *a, const struct asset_file *f, struct err **errp)
{
    struct stat st;
    if (stat(f->path, &st) < 0)
        return err_status(errp, 412, "asset %s is missing (run: capsem setup --force)", f->path);
    if ((uint64_t)st.st_size != f->size)
        return err_status(errp, 412, "asset %s has size %lld, the manifest says %llu", f->path,
                          (long long)st.st_size, (unsigned long long)f->size);
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    for (struct assets_cache_entry *e = a->cache; e; e = e->next)
        if (strcmp(e->path, f->path) == 0 && e->size == (uint64_t)st.st_size &&
            e->mtime_ns == mt && e->ino == (uint64_t)st.st_ino && strcmp(e->sha256, f->sha256) == 0)
            return 0;
    char sum[65];
    struct err *e = NULL;
    if (sha256_file(f->path, sum, &e) < 0) {
        int rc = err_status(errp, 412, "%s", err_msg(e));
        err_free(e);
        return rc;
    }
    if (strcmp(sum, f->sha256) != 0)
        return err_status(errp, 412,
                          "asset %s does not match the manifest (sha256 %s, expected %s); "
                          "refusing to boot it",
                          f->path, sum, f->sha256);
    struct assets_cache_entry *ce = calloc(1, sizeof(*ce));
    if (ce) {
        ce->path = strdup(f->path);
        ce->size = (uint64_t)st.st_size;
        ce->mtime_ns = mt;
        ce->ino = (uint64_t)st.st_ino;
        memcpy(ce->sha256, sum, sizeof(sum));
        ce->next = a->cache;
        a->cache = ce;
    }
    return 0;
}

int assets_verify_boot_set(struct assets *a, const struct asset_version *v, const char *profile,
                           struct err **errp)
{
    const struct asset_file *r = assets_rootfs(v, profile);
    if (!r)
        return err_status(errp, 412, "profile %s is not installed in assets version %s", profile,
                          v->version);
    if (assets_verify(a, &v->kernel, errp) < 0 || assets_verify(a, &v->initrd, errp) < 0 ||
        assets_verify(a, r, errp) < 0)
        return -1;
    return 0;
}
