/* HTTP/1.1 + JSON client for the capsem-service API over its UNIX socket
 * (surface.md section 5), on a libcurl easy handle (keep-alive between
 * calls). Callers run curl_global_init() once before the first client.
 *
 * Errors: transport failures set err->code to the socket errno when known
 * (ENOENT, ECONNREFUSED: nobody is serving; used by auto-start), ETIMEDOUT or
 * EIO; err->status 0. An HTTP status >= 400 sets err->status to it and the
 * message to the service's `error` text. */
#ifndef CAPSEM_CLI_CLIENT_H
#define CAPSEM_CLI_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/* Timeouts (seconds): connect, ordinary calls; exec and run have none. */
#define CLI_CONNECT_TIMEOUT 10
#define CLI_CALL_TIMEOUT    120
#define CLI_NO_TIMEOUT      0

/* Cap on an answer body: two 10 MiB output streams, JSON-escaped. */
#define CLI_MAX_RESPONSE (192u << 20)

struct cli_client;

/* socket_path is the logical path (copied); long paths are mapped with
 * sockpath_resolve(). Returns NULL with errp set on failure. */
struct cli_client *cli_client_new(const char *socket_path, size_t max_response, struct err **errp);
void cli_client_free(struct cli_client *c);
const char *cli_client_socket(const struct cli_client *c);

/* While *flag is non-zero, requests in progress are abandoned (error code
 * EINTR, `interrupted`) within about a second; NULL turns this off. A signal
 * handler may set the flag. */
void cli_client_set_abort(struct cli_client *c, volatile sig_atomic_t *flag);

/* One request. path starts with '/'; body may be NULL (no body). timeout_secs
 * CLI_NO_TIMEOUT waits forever. On 2xx, *out (when out != NULL) receives the
 * parsed JSON answer (caller json_decref()s; JSON null for an empty body). */
int cli_client_call(struct cli_client *c, const char *method, const char *path, const json_t *body,
                    long timeout_secs, json_t **out, struct err **errp);

/* A request with a raw body (data may be NULL: none; sent as
 * application/octet-stream) whose 2xx answer is returned as bytes: *out is
 * malloc'd, NUL-terminated (not counted in *out_len); caller frees. Errors as
 * cli_client_call(). */
int cli_client_raw(struct cli_client *c, const char *method, const char *path, const void *data,
                   size_t len, long timeout_secs, char **out, size_t *out_len, struct err **errp);

/* True when err says no service listens on the socket (ENOENT, ECONNREFUSED). */
bool cli_err_is_not_running(const struct err *e);

/* "<prefix><ref><suffix>" with ref checked like the service does (empty,
 * '/', '\\', "..": 400 `invalid <what>: X`) and percent-encoded. malloc'd. */
char *cli_ref_path(const char *prefix, const char *ref, const char *suffix, const char *what,
                   struct err **errp);
/* "/vms/<ref><suffix>" (`invalid VM reference: X`). */
char *cli_vm_path(const char *ref, const char *suffix, struct err **errp);
/* "/images/<name><suffix>" (`invalid image name: X`). */
char *cli_image_path(const char *name, const char *suffix, struct err **errp);

/* path followed by a query string from n key/value pairs (kv[2i], kv[2i+1]);
 * pairs whose value is NULL are left out; values are percent-encoded.
 * malloc'd; NULL on ENOMEM. */
char *cli_path_query(const char *path, const char *const *kv, size_t n);

#endif
