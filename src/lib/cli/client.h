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

/* One request. path starts with '/'; body may be NULL (no body). timeout_secs
 * CLI_NO_TIMEOUT waits forever. On 2xx, *out (when out != NULL) receives the
 * parsed JSON answer (caller json_decref()s; JSON null for an empty body). */
int cli_client_call(struct cli_client *c, const char *method, const char *path, const json_t *body,
                    long timeout_secs, json_t **out, struct err **errp);

/* True when err says no service listens on the socket (ENOENT, ECONNREFUSED). */
bool cli_err_is_not_running(const struct err *e);

/* "/vms/<ref><suffix>" with ref checked like the service does (empty, '/',
 * '\\', "..": 400 `invalid VM reference: X`) and percent-encoded. malloc'd. */
char *cli_vm_path(const char *ref, const char *suffix, struct err **errp);

#endif
