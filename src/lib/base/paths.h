/* Where things live (surface.md section 9). All results are heap strings
 * the caller frees. */
#ifndef CAPSEM_PATHS_H
#define CAPSEM_PATHS_H

#include "base/err.h"

/* $CAPSEM_HOME, else $HOME/.capsem. */
char *paths_home(struct err **errp);
/* $CAPSEM_RUN_DIR, else <home>/run. */
char *paths_run_dir(struct err **errp);
/* $CAPSEM_UDS_PATH, else <run dir>/service.sock. */
char *paths_service_socket(struct err **errp);
/* Joins a and b with one '/'. */
char *paths_join(const char *a, const char *b);
/* Directory of the running executable (from /proc/self/exe). */
char *paths_self_dir(void);
/* Bundled data (profiles/, prices.json): $CAPSEM_SHARE_DIR, else
 * <dir of the executable>/../share/capsem (an installed tree), else the
 * source tree the binary was built from (development and tests). */
char *paths_share_dir(void);
/* Finds a sibling binary, then <home>/bin/<name>, then PATH; NULL if absent. */
char *paths_find_binary(const char *name);

#endif
