/* Guest assets: assets/manifest.json and the files it pins by sha256 and
 * size (surface.md section 9). A VM never boots from a file that does not
 * match; verifications are cached by (size, mtime, inode). */
#ifndef CAPSEM_ASSETS_H
#define CAPSEM_ASSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define ASSETS_MAX_PROFILES 16
/* apt_hosts entries a rootfs may list (the manifest is refused past it). */
#define ASSETS_MAX_APT_HOSTS 64

struct asset_file {
    char *file;   /* name inside v<version>/ */
    char *path;   /* absolute */
    char *sha256; /* lowercase hex */
    uint64_t size;
};

struct asset_rootfs {
    char *profile;
    struct asset_file f;
    /* The hosts of the image's apt sources (manifest "apt_hosts", absent for
     * profiles without apt): lowercase host names or IPv4 literals, checked
     * as the policy loader checks hosts. They fill the `@debian` host list
     * of the network policy (docs/policy.md "Host lists"). */
    char **apt_hosts;
    size_t napt_hosts;
};

struct asset_version {
    char *version;
    char *arch;
    struct asset_file kernel;
    struct asset_file initrd;
    struct asset_rootfs rootfs[ASSETS_MAX_PROFILES];
    size_t nrootfs;
};

struct assets_cache_entry;

struct assets {
    char *dir;
    char *current;
    struct asset_version *versions;
    size_t nversions;
    struct assets_cache_entry *cache;
};

/* Loads dir/manifest.json. A missing manifest is an error with status 412. */
int assets_load(const char *dir, struct assets *a, struct err **errp);
void assets_free(struct assets *a);
const struct asset_version *assets_find(const struct assets *a, const char *version);
const struct asset_file *assets_rootfs(const struct asset_version *v, const char *profile);
/* The whole rootfs entry of a profile (file and apt hosts), or NULL. */
const struct asset_rootfs *assets_rootfs_entry(const struct asset_version *v, const char *profile);
/* Checks size and sha256 (cached). Errors carry status 412. */
int assets_verify(struct assets *a, const struct asset_file *f, struct err **errp);
/* Verifies kernel, initrd and the profile's rootfs of a version. */
int assets_verify_boot_set(struct assets *a, const struct asset_version *v, const char *profile,
                           struct err **errp);
/* sha256 of a file as lowercase hex (65 bytes). */
int sha256_file(const char *path, char out[65], struct err **errp);

#endif
