/* Host-side access to a stopped VM's workspace disk (workspace.img, raw
 * ext4) through libext2fs: list, read and write files without mounting the
 * image and without running external tools. docs/ext4fs.md has the details.
 *
 * Paths are guest paths: absolute under /root or relative to /root; inside
 * the image /root is the file system root. `..` components are refused (400);
 * symlinks are resolved here, component by component, and a resolution that
 * leaves the image root (absolute target, `..` above the root) is 403
 * "path escapes the workspace"; more than EXT4FS_MAX_SYMLINKS hops is 400.
 *
 * Callers guarantee the VM is not running (Stopped or Suspended; writes only
 * while Stopped). As a second line of defence, a write refuses an image that
 * QEMU holds locked (409) and one whose journal needs a replay (409); reads
 * are always allowed. Concurrent calls on one image are serialised by an
 * OFD lock on the image (readers shared, writers exclusive), so the functions
 * may run in parallel on worker threads. They block on disk I/O: never call
 * them from an event loop thread.
 *
 * Errors follow base/err.h; `status` is 400 bad path, 403 escape, 404 no such
 * file, 409 image busy or needing a journal replay, 413 over a cap or out of
 * space, 0 (500) for I/O errors and damaged images. */
#ifndef CAPSEM_EXT4FS_H
#define CAPSEM_EXT4FS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

#define EXT4FS_PATH_MAX     4096  /* longest accepted guest path */
#define EXT4FS_MAX_SYMLINKS 40    /* symlink hops per resolution */
#define EXT4FS_LIST_MAX     10000 /* default cap on entries per listing */
#define EXT4FS_DEPTH_MAX    6

/* Lists the directory `path` (symlinks followed, the last one included) down
 * to `depth` levels (1..EXT4FS_DEPTH_MAX). *entries gets a new jansson array
 * (caller owns, json_decref) of objects
 *   {name, path, type, size, mtime[, children]}
 * sorted by name at every level; `path` is the guest path (/root/...), `type`
 * "file" | "dir" | "symlink" | "other" (devices, fifos, sockets), `size` in
 * bytes (a symlink's is its target length), `mtime` unix seconds. Symlinks
 * are listed, not followed. `children` (possibly empty) is present on dirs
 * above the last level only. At most `max_entries` entries are returned in
 * total (0 means EXT4FS_LIST_MAX); *truncated (may be NULL) tells whether
 * some were left out. A `path` that is not a directory is 400. */
int ext4fs_list(const char *image, const char *path, int depth, size_t max_entries,
                json_t **entries, bool *truncated, struct err **errp);

/* Reads the regular file `path` (a final symlink is followed). Files larger
 * than max_bytes are refused (413) before any data is read; a directory is
 * 400, any other non-regular file 400. On success *data is malloc'd (caller
 * frees), holds *len bytes and one extra NUL byte not counted in *len. */
int ext4fs_read(const char *image, const char *path, size_t max_bytes, uint8_t **data, size_t *len,
                struct err **errp);

/* Writes `len` bytes as the content of the regular file `path`. Missing parent
 * directories are created (0755, root); an existing regular file is truncated
 * and rewritten in place (its inode, hard links and xattrs are kept); a final
 * symlink is followed under the rules above. The file gets permission bits
 * `mode & 07777` (0 means 0644), uid/gid 0 and the current time. The image is
 * opened read-write only here and is flushed, fsync'd and closed before
 * return, leaving it consistent for the guest's ext4 driver (e2fsck -fn
 * clean). Out of space is 413 (checked before writing). If writing fails
 * midway the file may be left truncated. */
int ext4fs_write(const char *image, const char *path, const uint8_t *data, size_t len, mode_t mode,
                 struct err **errp);

#endif
