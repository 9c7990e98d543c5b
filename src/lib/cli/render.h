/* Renders service JSON into the CLI's text outputs (surface.md section 4
 * "Output formats" and "exec/run output"). Everything is appended to a
 * caller-owned buf; the JSON is borrowed. Nothing here prints. */
#ifndef CAPSEM_CLI_RENDER_H
#define CAPSEM_CLI_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* GET /vms/list answer ({sandboxes:[SandboxInfo]}): the table
 * `ID NAME STATUS TYPE CPUS RAM UPTIME` with `  ! <last_error>` lines, `No VMs.`
 * when empty, or one id per line when ids_only. */
int cli_render_list(const json_t *resp, bool ids_only, struct buf *out, struct err **errp);

/* GET /vms/{id}/info answer: `Key: value` lines. */
int cli_render_info(const json_t *info, struct buf *out, struct err **errp);

/* Any JSON, 2-space indented, with a final newline (every --json). */
int cli_render_json(const json_t *j, struct buf *out, struct err **errp);

/* ExecResponse {stdout, stderr, exit_code, truncated, timed_out, duration_ms};
 * the byte pointers borrow the JSON strings (NULs inside are kept). */
struct cli_exec_result {
    const char *out;
    size_t out_len;
    const char *err;
    size_t err_len;
    int exit_code; /* clamped to 0..255 (1 when the service sent anything else) */
    bool truncated;
    bool timed_out;
    int64_t duration_ms;
};

int cli_exec_result_parse(const json_t *resp, struct cli_exec_result *r, struct err **errp);

/* The stderr notes after the output: `capsem: output truncated at N bytes`
 * (N = the longer stream) and `capsem: command timed out after N s` (N = the
 * requested timeout, or the measured duration when none was given). */
int cli_exec_notes(const struct cli_exec_result *r, int64_t timeout_secs, struct buf *out);

/* GET /images/list answer ({images:[ImageInfo]}): the table
 * `NAME BASE PROFILE SIZE CREATED DESCRIPTION`, `No images.` when empty, or
 * one name per line when names_only. */
int cli_render_images(const json_t *resp, bool names_only, struct buf *out, struct err **errp);

/* GET /images/{name}/info answer: `Key: value` lines (Name, Description,
 * Profile, Base, Arch, Size, Created, Forked from, Source VM, In use by). */
int cli_render_image_info(const json_t *img, struct buf *out, struct err **errp);

/* Commands in the history table are cut to this many code points. */
#define CLI_HISTORY_CMD_MAX 80

/* GET /vms/{id}/history answer ({commands:[...]} newest first): the table
 * `TIME EXIT DURATION COMMAND`, oldest first, or `No commands.`. Exec rows
 * show the exit code and the command. Rows of the other layers show, under
 * EXIT, the HTTP status (net, model), the DNS rcode (dns) or the call status
 * (tool); under COMMAND `<layer>: <summary>` followed by
 * ` [<decision> <rule>]` when the decision is not `allowed`. */
int cli_render_history(const json_t *resp, struct buf *out, struct err **errp);

/* `850ms`, `1.2s`, `2m03s`, `1h05m`; negative: `-`. */
void cli_format_duration_ms(int64_t ms, char *buf, size_t cap);

/* s on one line (control characters become spaces), cut to max code points
 * with "..." as the last three when longer. malloc'd; NULL on ENOMEM. */
char *cli_cut_text(const char *s, size_t max);

/* Cells of the log tables are cut to these many code points. */
#define CLI_LOG_PATH_MAX 60
#define CLI_LOG_HOST_MAX 48
#define CLI_LOG_TEXT_MAX 32

/* `capsem logs --net`: GET /vms/{id}/history?layer=net answer as the table
 * `TIME PROCESS METHOD HOST:PORT PATH STATUS DECISION RULE REASON BYTES MS`
 * (BYTES = sent/received), oldest first, `-` for missing values, or
 * `No network requests.`. */
int cli_render_net_log(const json_t *resp, struct buf *out, struct err **errp);

/* `capsem logs --dns`: the layer=dns answer as the table
 * `TIME PROCESS TYPE NAME RCODE ANSWER DECISION RULE REASON MS` (MS `cache`
 * for a cache hit), oldest first, or `No DNS queries.`. */
int cli_render_dns_log(const json_t *resp, struct buf *out, struct err **errp);

#endif
