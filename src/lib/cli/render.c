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
