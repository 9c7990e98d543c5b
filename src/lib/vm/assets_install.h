/* Installing guest assets into $CAPSEM_HOME/assets and removing versions
 * nothing uses any more (surface.md sections 4 "setup steps" and 9).
 *
 * Layout: <dir>/manifest.json and <dir>/v<version>/<files>. A version is
 * copied into <dir>/.v<version>.tmp-<pid>/ (hard link, else FICLONE reflink,
 * else a plain copy), every file is checked against the source manifest's
 * size and sha256, and only then is the directory renamed into place, so a
 * half-copied version never appears. The merged manifest (versions already
 * installed plus the new ones; current = the source's current) is written
 * atomically. Both functions hold an flock on <dir>/.lock while they work, so
 * two setups (for example two first-use CLIs) do not interleave.
 *
 * Library code: nothing is printed; progress goes to the callback. */
#ifndef CAPSEM_ASSETS_INSTALL_H
#define CAPSEM_ASSETS_INSTALL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum assets_event {
    ASSETS_EV_SKIP,    /* version already installed (detail NULL) */
    ASSETS_EV_INSTALL, /* starting to install a version (detail: source dir) */
    ASSETS_EV_FILE,    /* one file placed and verified (detail: file name) */
    ASSETS_EV_DONE,    /* version installed (detail: "linked", "copied" or "mixed") */
};

/* Called on the installing thread; strings are borrowed until return. */
typedef void (*assets_progress_fn)(void *arg, enum assets_event ev, const char *version,
                                   const char *detail);

/* Installs the current version of src_dir/manifest.json unless dst_dir has
 * it already (again, re-verified, when force); other versions the source
 * lists are left alone (they would only be cleaned up again). The whole
 * source manifest is checked. dst_dir is created (0700) when missing.
 * Errors: a source file missing or not matching its manifest entry (status
 * 412, nothing of that version left behind), a bad source manifest (400),
 * I/O errors. progress may be NULL. */
int assets_install(const char *src_dir, const char *dst_dir, bool force,
                   assets_progress_fn progress, void *progress_arg, struct err **errp);

/* Removes dst_dir/v<ver>/ for every version that is neither the manifest's
 * current one nor listed in keep_versions (n entries), drops them from the
 * manifest, and removes temp directories left by interrupted installs whose
 * process is gone. Returns the number of versions removed, or -1. A missing
 * manifest removes nothing (returns 0): without it current is unknown. */
int assets_cleanup(const char *dst_dir, const char *const *keep_versions, size_t n,
                   struct err **errp);

#endif
