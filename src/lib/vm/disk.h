/* VM disks: sparse raw ext4 images (overlay.img, workspace.img), created
 * from a cached empty file system and copied with FICLONE or sparse copy. */
#ifndef CAPSEM_DISK_H
#define CAPSEM_DISK_H

#include <stdint.h>

#include "base/err.h"

/* Creates `path` as an empty ext4 of `bytes` unless it exists. Templates are
 * kept in template_dir (made with mke2fs once per size). */
int disk_ensure_ext4(const char *path, uint64_t bytes, const char *template_dir,
                     struct err **errp);
/* Copies src to dst (FICLONE when the file system supports it, else a sparse
 * copy that never writes holes). dst must not exist. */
int disk_clone(const char *src, const char *dst, struct err **errp);
/* Bytes actually allocated on disk for a file. */
int64_t disk_allocated_bytes(const char *path);

#endif
