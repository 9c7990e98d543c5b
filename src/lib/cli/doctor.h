/* Host-side checks of `capsem doctor` (surface.md section 4 "doctor
 * checks"). Each returns 0 (check passed) or -1 with errp saying what is
 * wrong; nothing here prints or talks to the service. */
#ifndef CAPSEM_CLI_DOCTOR_H
#define CAPSEM_CLI_DOCTOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define CLI_DOCTOR_MIN_FREE (2ull << 30) /* 2 GiB under the run dir */

/* Runs `binary --version` (PATH lookup when binary has no '/'; 10 s at most)
 * and copies the first line of its output into version. *path gets the
 * binary's full path (malloc'd). */
int cli_qemu_version(const char *binary, char **path, char *version, size_t cap, struct err **errp);

/* Bytes available to us on the file system holding path (or its nearest
 * existing parent). */
int cli_free_bytes(const char *path, uint64_t *bytes, struct err **errp);

/* Loads assets_dir/manifest.json and re-hashes every file of every version
 * (no cache). On success appends "v<ver> (N files, SIZE)" per version to
 * summary. */
int cli_assets_check(const char *assets_dir, struct buf *summary, struct err **errp);

/* Interface names from the text of /proc/net/dev, separated by ", ", into
 * names; returns how many are neither `lo` nor `dummy0` (-1 when the text is
 * not /proc/net/dev). */
int cli_ifaces_parse(const char *proc_net_dev, char *names, size_t cap);

#endif
