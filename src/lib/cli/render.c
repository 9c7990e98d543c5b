/* Renders service JSON into the CLI's text outputs; see render.h. */
#include "cli/render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/format.h"

static const char *str_field(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : dflt;
}

static int64_t int_field(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static const char *vm_type(const json_t *vm)
{
    return json_is_true(json_object_get(vm, "persistent")) ? "persistent" : "ephemeral";
}

/* Uptime only means something for a Running VM. */
static void vm_uptime(const json_t *vm, char *buf, size_t cap)
{
    bool running = strcmp(str_field(vm, "status", ""), "Running") == 0;
    cli_format_uptime(running ? int_field(vm, "uptime_secs", -1) : -1, buf, cap);
}

static int list_row(struct cli_table *t, const json_t *vm)
{
    char cpus[24], ram[24], up[24];
    snprintf(cpus, sizeof(cpus), "%lld", (long long)int_field(vm, "cpus", 0));
    snprintf(ram, sizeof(ram), "%lldM", (long long)int_field(vm, "ram_mb", 0));
    vm_uptime(vm, up, sizeof(up));
    const char *cells[] = {str_field(vm, "id", "-"),
                           str_field(vm, "name", "-"),
                           str_field(vm, "status", "-"),
                           vm_type(vm),
                           cpus,
                           ram,
                           up};
    if (cli_table_add(t, cells) < 0)
        return -1;
    const char *problem = str_field(vm, "last_error", NULL);
    if (!problem)
        return 0;
    char *line = NULL;
    if (asprintf(&line, "  ! %s", problem) < 0)
        return -1;
    int rc = cli_table_note(t, line);
    free(line);
    return rc;
}

int cli_render_list(const json_t *resp, bool ids_only, struct buf *out, struct err **errp)
{
    const json_t *vms = json_object_get(resp, "sandboxes");
    if (!json_is_array(vms))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no sandboxes list");
    size_t i;
    const json_t *vm;
    if (ids_only) {
        json_array_foreach(vms, i, vm)
        {
            if (buf_printf(out, "%s\n", str_field(vm, "id", "-")) < 0)
                return err_set(errp, ENOMEM, "out of memory");
        }
        return 0;
    }
    if (json_array_size(vms) == 0)
        return buf_append_str(out, "No VMs.\n") < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
    struct cli_table *t = cli_table_new(7);
    static const char *const header[] = {"ID", "NAME", "STATUS", "TYPE", "CPUS", "RAM", "UPTIME"};
    int rc = t ? cli_table_add(t, header) : -1;
    json_array_foreach(vms, i, vm)
    {
        if (rc == 0)
            rc = list_row(t, vm);
    }
    if (rc == 0)
        rc = cli_table_render(t, out);
    cli_table_free(t);
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

static int actions_text(const json_t *info, struct buf *b)
{
    const json_t *acts = json_object_get(info, "available_actions");
    size_t i;
    const json_t *a;
    size_t n = 0;
    json_array_foreach(acts, i, a)
    {
        if (!json_is_string(a))
            continue;
        if (buf_printf(b, "%s%s", n++ ? ", " : "", json_string_value(a)) < 0)
            return -1;
    }
    return n ? 0 : buf_append_str(b, "-");
}

int cli_render_info(const json_t *info, struct buf *out, struct err **errp)
{
    if (!json_is_object(info) || !json_is_string(json_object_get(info, "id")))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no VM id");
    char up[24], disk[24], pid[24];
    vm_uptime(info, up, sizeof(up));
    int64_t size = int_field(info, "size_bytes", -1);
    if (size >= 0)
        cli_format_size((uint64_t)size, disk, sizeof(disk));
    else
        snprintf(disk, sizeof(disk), "-");
    int64_t p = int_field(info, "pid", 0);
    if (p > 0)
        snprintf(pid, sizeof(pid), "%lld", (long long)p);
    else
        snprintf(pid, sizeof(pid), "-");
    const char *problem = str_field(info, "last_error", NULL);
    int rc = buf_printf(
        out,
        "ID: %s\nName: %s\nStatus: %s\nType: %s\nProfile: %s\nImage: %s\n"
        "Base: %s\nCPUs: %lld\nRAM: %lldM\nPID: %s\nCreated: %s\nUptime: %s\n"
        "Disk: %s\n",
        str_field(info, "id", "-"), str_field(info, "name", "-"), str_field(info, "status", "-"),
        vm_type(info), str_field(info, "profile_id", "-"), str_field(info, "image", "-"),
        str_field(info, "base_version", "-"), (long long)int_field(info, "cpus", 0),
        (long long)int_field(info, "ram_mb", 0), pid, str_field(info, "created_at", "-"), up, disk);
    if (rc == 0 && problem)
        rc = buf_printf(out, "Problem: %s\n", problem);
    if (rc == 0)
        rc = buf_append_str(out, "Actions: ");
    if (rc == 0)
        rc = actions_text(info, out);
    if (rc == 0)
        rc = buf_append_str(out, "\n");
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

int cli_render_json(const json_t *j, struct buf *out, struct err **errp)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (!s)
        return err_set(errp, ENOMEM, "cannot encode JSON");
    int rc = buf_printf(out, "%s\n", s);
    free(s);
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

int cli_exec_result_parse(const json_t *resp, struct cli_exec_result *r, struct err **errp)
{
    const json_t *o = json_object_get(resp, "stdout");
    const json_t *e = json_object_get(resp, "stderr");
    const json_t *code = json_object_get(resp, "exit_code");
    if (!json_is_string(o) || !json_is_string(e) || !json_is_integer(code))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no exec result");
    memset(r, 0, sizeof(*r));
    r->out = json_string_value(o);
    r->out_len = json_string_length(o);
    r->err = json_string_value(e);
    r->err_len = json_string_length(e);
    json_int_t c = json_integer_value(code);
    r->exit_code = c >= 0 && c <= 255 ? (int)c : 1;
    r->truncated = json_is_true(json_object_get(resp, "truncated"));
    r->timed_out = json_is_true(json_object_get(resp, "timed_out"));
    r->duration_ms = int_field(resp, "duration_ms", 0);
    return 0;
}

int cli_exec_notes(const struct cli_exec_result *r, int64_t timeout_secs, struct buf *out)
{
    if (r->truncated &&
        buf_printf(out, "capsem: output truncated at %zu bytes\n", MAX(r->out_len, r->err_len)) < 0)
        return -1;
    int64_t secs = timeout_secs > 0 ? timeout_secs : (r->duration_ms + 500) / 1000;
    if (r->timed_out &&
        buf_printf(out, "capsem: command timed out after %lld s\n", (long long)secs) < 0)
        return -1;
    return 0;
}

/* ---------- images ---------- */

static int image_row(struct cli_table *t, const json_t *img)
{
    char size[24];
    int64_t bytes = int_field(img, "size_bytes", -1);
    if (bytes >= 0)
        cli_format_size((uint64_t)bytes, size, sizeof(size));
    else
        snprintf(size, sizeof(size), "-");
    const char *cells[] = {str_field(img, "name", "-"),       str_field(img, "base_version", "-"),
                           str_field(img, "profile_id", "-"), size,
                           str_field(img, "created_at", "-"), str_field(img, "description", "")};
    return cli_table_add(t, cells);
}

int cli_render_images(const json_t *resp, bool names_only, struct buf *out, struct err **errp)
{
    const json_t *imgs = json_object_get(resp, "images");
    if (!json_is_array(imgs))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no images list");
    size_t i;
    const json_t *img;
    int rc = 0;
    if (names_only) {
        json_array_foreach(imgs, i, img)
        {
            if (rc == 0)
                rc = buf_printf(out, "%s\n", str_field(img, "name", "-"));
        }
        return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
    }
    if (json_array_size(imgs) == 0)
        return buf_append_str(out, "No images.\n") < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
    static const char *const header[] = {"NAME", "BASE",    "PROFILE",
                                         "SIZE", "CREATED", "DESCRIPTION"};
    struct cli_table *t = cli_table_new(ARRAY_SIZE(header));
    rc = t ? cli_table_add(t, header) : -1;
    json_array_foreach(imgs, i, img)
    {
        if (rc == 0)
            rc = image_row(t, img);
    }
    if (rc == 0)
        rc = cli_table_render(t, out);
    cli_table_free(t);
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

static int names_text(const json_t *arr, struct buf *b)
{
    size_t i, n = 0;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && buf_printf(b, "%s%s", n++ ? ", " : "", json_string_value(v)) < 0)
            return -1;
    }
    return n ? 0 : buf_append_str(b, "-");
}

int cli_render_image_info(const json_t *img, struct buf *out, struct err **errp)
{
    if (!json_is_object(img) || !json_is_string(json_object_get(img, "name")))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no image name");
    char size[24];
    int64_t bytes = int_field(img, "size_bytes", -1);
    if (bytes >= 0)
        cli_format_size((uint64_t)bytes, size, sizeof(size));
    else
        snprintf(size, sizeof(size), "-");
    int rc = buf_printf(out,
                        "Name: %s\nDescription: %s\nProfile: %s\nBase: %s\nArch: %s\nSize: %s\n"
                        "Created: %s\nForked from: %s\nSource VM: %s\nIn use by: ",
                        str_field(img, "name", "-"), str_field(img, "description", "-"),
                        str_field(img, "profile_id", "-"), str_field(img, "base_version", "-"),
                        str_field(img, "arch", "-"), size, str_field(img, "created_at", "-"),
                        str_field(img, "forked_from", "-"), str_field(img, "source_vm_id", "-"));
    if (rc == 0)
        rc = names_text(json_object_get(img, "in_use_by"), out);
    if (rc == 0)
        rc = buf_append_str(out, "\n");
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

/* ---------- history ---------- */

void cli_format_duration_ms(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        snprintf(buf, cap, "-");
    else if (ms < 1000)
        snprintf(buf, cap, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(buf, cap, "%.1fs", (double)(ms / 100) / 10.0);
    else if (ms < 3600000)
        snprintf(buf, cap, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        snprintf(buf, cap, "%lldh%02lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
}

char *cli_cut_text(const char *s, size_t max)
{
    size_t len = strlen(s);
    char *out = malloc(len + 4);
    if (!out)
        return NULL;
    size_t o = 0, cps = 0, keep_bytes = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch & 0xC0) != 0x80) {
            if (cps == max - 3)
                keep_bytes = o; /* where "..." goes if the text is too long */
            cps++;
        }
        out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (cps > max && max >= 3) {
        memcpy(out + keep_bytes, "...", 3);
        o = keep_bytes + 3;
    }
    out[o] = '\0';
    return out;
}

/* A text field cut for a table cell ("-" when absent or empty); malloc'd. */
static char *cell_text(const json_t *row, const char *key, size_t max)
{
    return cli_cut_text(str_field(row, key, "-"), max);
}

/* An integer field as text, "-" when absent. */
static void cell_int(const json_t *row, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(row, key);
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, cap, "-");
}

/* EXIT of a history row: what ended it, per layer. */
static void history_result(const json_t *h, const char *layer, char *buf, size_t cap)
{
    if (strcmp(layer, "dns") == 0)
        snprintf(buf, cap, "%s", str_field(h, "rcode", "-"));
    else if (strcmp(layer, "tool") == 0)
        snprintf(buf, cap, "%s", str_field(h, "status", "-"));
    else
        cell_int(h, strcmp(layer, "exec") == 0 ? "exit_code" : "status_code", buf, cap);
}

/* COMMAND of a history row: exec rows as they ran, others tagged. */
static char *history_text(const json_t *h, const char *layer)
{
    const char *cmd = str_field(h, "command", "");
    if (strcmp(layer, "exec") == 0)
        return cli_cut_text(cmd, CLI_HISTORY_CMD_MAX);
    const char *decision = str_field(h, "decision", NULL);
    char *full = NULL;
    int n = decision && strcmp(decision, "allowed") != 0
                ? asprintf(&full, "%s: %s [%s %s]", layer, cmd, decision,
                           str_field(h, "matched_rule", "-"))
                : asprintf(&full, "%s: %s", layer, cmd);
    if (n < 0)
        return NULL;
    char *cut = cli_cut_text(full, CLI_HISTORY_CMD_MAX);
    free(full);
    return cut;
}

static int history_row(struct cli_table *t, const json_t *h)
{
    char code[24], dur[24];
    const char *layer = str_field(h, "layer", "exec");
    history_result(h, layer, code, sizeof(code));
    cli_format_duration_ms(
        int_field(h, strcmp(layer, "dns") == 0 ? "upstream_resolver_ms" : "duration_ms", -1), dur,
        sizeof(dur));
    char *cut = history_text(h, layer);
    if (!cut)
        return -1;
    const char *cells[] = {str_field(h, "timestamp", "-"), code, dur, cut};
    int rc = cli_table_add(t, cells);
    free(cut);
    return rc;
}

/* The rows of a history-shaped answer (newest first) as a table, oldest
 * first, or empty_text when there are none. */
static int render_rows(const json_t *resp, const char *const *header, size_t ncols,
                       int (*row)(struct cli_table *t, const json_t *r), const char *empty_text,
                       struct buf *out, struct err **errp)
{
    const json_t *rows = json_object_get(resp, "commands");
    if (!json_is_array(rows))
        return err_set(errp, EPROTO, "unexpected answer from capsem-service: no commands list");
    size_t n = json_array_size(rows);
    if (n == 0)
        return buf_append_str(out, empty_text) < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
    struct cli_table *t = cli_table_new(ncols);
    int rc = t ? cli_table_add(t, header) : -1;
    for (size_t i = n; rc == 0 && i > 0; i--) /* the service sends newest first */
        rc = row(t, json_array_get(rows, i - 1));
    if (rc == 0)
        rc = cli_table_render(t, out);
    cli_table_free(t);
    return rc < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
}

int cli_render_history(const json_t *resp, struct buf *out, struct err **errp)
{
    static const char *const header[] = {"TIME", "EXIT", "DURATION", "COMMAND"};
    return render_rows(resp, header, ARRAY_SIZE(header), history_row, "No commands.\n", out, errp);
}

/* ---------- logs --net, --dns ---------- */

static int add_cut_row(struct cli_table *t, const char *const *cells, char **owned, size_t nowned)
{
    int rc = 0;
    for (size_t i = 0; i < nowned; i++)
        rc |= owned[i] ? 0 : -1;
    if (rc == 0)
        rc = cli_table_add(t, cells);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    return rc;
}

static int net_row(struct cli_table *t, const json_t *r)
{
    char hostport[300], status[24], ms[24], sent[16], recv[16], bytes[40];
    const json_t *port = json_object_get(r, "port");
    const char *host = str_field(r, "domain", str_field(r, "dst_ip", "-"));
    if (json_is_integer(port))
        snprintf(hostport, sizeof(hostport), "%.255s:%lld", host,
                 (long long)json_integer_value(port));
    else
        snprintf(hostport, sizeof(hostport), "%.255s", host);
    cell_int(r, "status_code", status, sizeof(status));
    cell_int(r, "duration_ms", ms, sizeof(ms));
    cli_format_size((uint64_t)MAX(int_field(r, "bytes_sent", 0), 0), sent, sizeof(sent));
    cli_format_size((uint64_t)MAX(int_field(r, "bytes_received", 0), 0), recv, sizeof(recv));
    snprintf(bytes, sizeof(bytes), "%s/%s", sent, recv);
    char *owned[] = {cell_text(r, "process_name", CLI_LOG_TEXT_MAX),
                     cell_text(r, "method", CLI_LOG_TEXT_MAX),
                     cli_cut_text(hostport, CLI_LOG_HOST_MAX),
                     cell_text(r, "path", CLI_LOG_PATH_MAX),
                     cell_text(r, "decision", CLI_LOG_TEXT_MAX),
                     cell_text(r, "matched_rule", CLI_LOG_HOST_MAX),
                     cell_text(r, "reason", CLI_LOG_TEXT_MAX)};
    const char *cells[] = {str_field(r, "timestamp", "-"),
                           owned[0],
                           owned[1],
                           owned[2],
                           owned[3],
                           status,
                           owned[4],
                           owned[5],
                           owned[6],
                           bytes,
                           ms};
    return add_cut_row(t, cells, owned, ARRAY_SIZE(owned));
}

int cli_render_net_log(const json_t *resp, struct buf *out, struct err **errp)
{
    static const char *const header[] = {"TIME",   "PROCESS", "METHOD",   "HOST:PORT",
                                         "PATH",   "STATUS",  "DECISION", "RULE",
                                         "REASON", "BYTES",   "MS"};
    return render_rows(resp, header, ARRAY_SIZE(header), net_row, "No network requests.\n", out,
                       errp);
}

static int dns_row(struct cli_table *t, const json_t *r)
{
    char ms[24];
    if (json_is_true(json_object_get(r, "cache_hit")))
        snprintf(ms, sizeof(ms), "cache");
    else
        cell_int(r, "upstream_resolver_ms", ms, sizeof(ms));
    char *owned[] = {
        cell_text(r, "process_name", CLI_LOG_TEXT_MAX), cell_text(r, "qtype", CLI_LOG_TEXT_MAX),
        cell_text(r, "qname", CLI_LOG_PATH_MAX),        cell_text(r, "rcode", CLI_LOG_TEXT_MAX),
        cell_text(r, "answer_ip", CLI_LOG_TEXT_MAX),    cell_text(r, "decision", CLI_LOG_TEXT_MAX),
        cell_text(r, "matched_rule", CLI_LOG_HOST_MAX), cell_text(r, "reason", CLI_LOG_TEXT_MAX)};
    const char *cells[] = {str_field(r, "timestamp", "-"),
                           owned[0],
                           owned[1],
                           owned[2],
                           owned[3],
                           owned[4],
                           owned[5],
                           owned[6],
                           owned[7],
                           ms};
    return add_cut_row(t, cells, owned, ARRAY_SIZE(owned));
}

int cli_render_dns_log(const json_t *resp, struct buf *out, struct err **errp)
{
    static const char *const header[] = {"TIME",   "PROCESS",  "TYPE", "NAME",   "RCODE",
                                         "ANSWER", "DECISION", "RULE", "REASON", "MS"};
    return render_rows(resp, header, ARRAY_SIZE(header), dns_row, "No DNS queries.\n", out, errp);
}
