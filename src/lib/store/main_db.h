/* sessions/main.db: the index of every VM and the generated-name counters
 * (network.md section 11, surface.md sections 1 and 9, docs/telemetry.md).
 *
 * Written only by capsem-service. Calls are synchronous on the caller's
 * thread and each is one short transaction (lifecycle events are rare); use
 * one `struct main_db` from one thread at a time. Times are Unix ms (UTC). */
#ifndef CAPSEM_MAIN_DB_H
#define CAPSEM_MAIN_DB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define MAIN_DB_VERSION 1

struct main_db;

/* Creates or opens path (mode 0600, WAL) and migrates it; a file newer than
 * MAIN_DB_VERSION is refused (status 409). */
int main_db_open(const char *path, struct main_db **out, struct err **errp);
void main_db_close(struct main_db *db);

/* Next generated name "<profile>-<N>" into out. N comes from the profile's
 * persistent counter and grows by one per call; names for which taken()
 * returns true are skipped (and their N consumed). A number is never handed
 * out twice, across restarts too. taken may be NULL. -1 (ENAMETOOLONG) when
 * out is too small, status 400 for an empty profile. */
int main_db_next_name(struct main_db *db, const char *profile,
                      bool (*taken)(const char *name, void *arg), void *arg, char *out, size_t cap,
                      struct err **errp);

/* The lifecycle fields of one VM. NULL strings and zero numbers are stored
 * as NULL. */
struct main_db_session {
    const char *vm_id; /* required */
    const char *name;  /* required */
    const char *profile;
    bool persistent;
    const char *status; /* "Running", "Stopped", "Suspended", "Defunct" */
    int64_t created_at;
    int64_t stopped_at;
    const char *session_dir;
    const char *image;
    const char *base_version;
    int cpus;
    int ram_mb;
    const char *env_json; /* JSON object text */
    int64_t owner_pid;
    const char *last_error;
};

/* Inserts the VM or updates its lifecycle fields (counters are kept). */
int main_db_upsert_session(struct main_db *db, const struct main_db_session *s, struct err **errp);

/* Sets status and last_error (NULL clears it); stopped_at_ms > 0 also sets
 * stopped_at. Unknown vm_id: status 404. */
int main_db_set_status(struct main_db *db, const char *vm_id, const char *status,
                       const char *last_error, int64_t stopped_at_ms, struct err **errp);

/* Copies the counters of the VM's session.db (session_db_read_counters())
 * into its sessions row. A missing session.db counts as all zeros. Unknown
 * vm_id: status 404. This reads the whole session.db on the caller's
 * thread; capsem-service reads on a worker and calls main_db_set_totals(). */
int main_db_refresh_totals(struct main_db *db, const char *vm_id, const char *session_db_path,
                           struct err **errp);

struct session_db_counters;

/* Stores counters already read (by a worker thread, for instance) in the
 * VM's sessions row and sets updated_at. Unknown vm_id: status 404. */
int main_db_set_totals(struct main_db *db, const char *vm_id, const struct session_db_counters *c,
                       struct err **errp);

/* Removes the VM's row; no row is not an error. */
int main_db_delete_session(struct main_db *db, const char *vm_id, struct err **errp);

/* The sessions row as a JSON object keyed by column name (NULL columns are
 * null, persistent is a boolean); *out is NULL when there is no such VM. */
int main_db_get_session(struct main_db *db, const char *vm_id, json_t **out, struct err **errp);

/* Every sessions row, oldest created_at first, as a JSON array. */
int main_db_list_sessions(struct main_db *db, json_t **out, struct err **errp);

#endif
