/* The capsem-mcp tool table (surface.md section 6): names, descriptions,
 * input schemas, annotations, and the dispatch of a tools/call to the
 * request builders of mcp_calls.c. */
#include <errno.h>
#include <string.h>

#include "base/util.h"
#include "mcp/mcp_tooldef.h"

/* ---------- arguments ---------- */

#define ARG_ID                                                                                     \
    {                                                                                              \
        "id", P_STR, true, "VM id or name", "{\"minLength\":1}"                                    \
    }
#define ARG_PROFILE                                                                                \
    {                                                                                              \
        "profile", P_STR, false, "Root file system profile: code (the default) or minimal",        \
            "{\"minLength\":1}"                                                                    \
    }
#define ARG_RAM                                                                                    \
    {                                                                                              \
        "ramMb", P_INT, false, "RAM in MiB (default: the vm.ram_mb setting)", "{\"minimum\":1}"    \
    }
#define ARG_CPUS                                                                                   \
    {                                                                                              \
        "cpuCount", P_INT, false, "Number of vCPUs (default: the vm.cpus setting)",                \
            "{\"minimum\":1}"                                                                      \
    }
#define ARG_ENV                                                                                    \
    {                                                                                              \
        "env", P_ENV, false,                                                                       \
            "Environment variables for every command in the guest (names [A-Za-z_][A-Za-z0-9_]*)", \
            NULL                                                                                   \
    }
#define ARG_IMAGE                                                                                  \
    {                                                                                              \
        "image", P_STR, false, "Image to start from (see capsem_image_list)", "{\"minLength\":1}"  \
    }
#define ARG_COMMAND                                                                                \
    {                                                                                              \
        "command", P_STR, true, "Shell command, run by /bin/bash -c as root in /root",             \
            "{\"minLength\":1}"                                                                    \
    }
#define ARG_TIMEOUT(def)                                                                           \
    {                                                                                              \
        "timeout", P_INT, false, "Seconds before the command is killed (exit_code 124)",           \
            "{\"minimum\":1,\"maximum\":86400,\"default\":" def "}"                                \
    }
#define ARG_PATH                                                                                   \
    {                                                                                              \
        "path", P_STR, true, "File path in the guest; relative paths are under /root",             \
            "{\"minLength\":1}"                                                                    \
    }
#define ARG_ENCODING(what)                                                                         \
    {                                                                                              \
        "encoding", P_STR, false, what, "{\"enum\":[\"utf8\",\"base64\"],\"default\":\"utf8\"}"    \
    }
#define ARG_GREP                                                                                   \
    {                                                                                              \
        "grep", P_STR, false, "Keep only lines containing this text (case-insensitive)", NULL      \
    }
#define ARG_TAIL                                                                                   \
    {                                                                                              \
        "tail", P_INT, false, "Keep only the last N lines", "{\"minimum\":1,\"maximum\":10000}"    \
    }
#define ARG_IMAGE_NAME                                                                             \
    {                                                                                              \
        "name", P_STR, true, "Image name", "{\"minLength\":1}"                                     \
    }
#define ARG_MCP_PROFILE                                                                            \
    {                                                                                              \
        "profile", P_STR, false, "Profile whose MCP configuration to use",                         \
            "{\"minLength\":1,\"default\":\"code\"}"                                               \
    }
#define ARG_END                                                                                    \
    {                                                                                              \
        NULL, P_STR, false, NULL, NULL                                                             \
    }

static const struct param no_args[] = {ARG_END};
static const struct param id_only[] = {ARG_ID, ARG_END};
static const struct param image_name_only[] = {ARG_IMAGE_NAME, ARG_END};

static const struct param create_args[] = {
    {"name", P_STR, false,
     "Name of a persistent VM (1-64 characters of A-Za-z0-9_-, first alphanumeric). Omit it for an "
     "ephemeral VM",
     "{\"minLength\":1}"},
    ARG_PROFILE,
    ARG_RAM,
    ARG_CPUS,
    ARG_ENV,
    ARG_IMAGE,
    {"from", P_STR, false, "Alias of image", "{\"minLength\":1}"},
    ARG_END,
};
static const struct param exec_args[] = {ARG_ID, ARG_COMMAND, ARG_TIMEOUT("30"), ARG_END};
static const struct param run_args[] = {
    ARG_COMMAND, ARG_PROFILE, ARG_TIMEOUT("60"), ARG_ENV, ARG_RAM, ARG_CPUS, ARG_IMAGE, ARG_END,
};
static const struct param read_args[] = {
    ARG_ID,
    ARG_PATH,
    ARG_ENCODING("utf8 (text; fails on other bytes) or base64 (any bytes)"),
    ARG_END,
};
static const struct param write_args[] = {
    ARG_ID,
    ARG_PATH,
    {"content", P_STR, true, "File content: text, or base64 when encoding is base64", NULL},
    ARG_ENCODING("How content is encoded: utf8 (text) or base64"),
    ARG_END,
};
static const struct param resume_args[] = {
    {"name", P_STR, true, "VM name or id", "{\"minLength\":1}"},
    ARG_END,
};
static const struct param persist_args[] = {
    ARG_ID,
    {"name", P_STR, true, "New name of the VM (same rules as capsem_create)", "{\"minLength\":1}"},
    ARG_END,
};
static const struct param fork_args[] = {
    ARG_ID,
    {"name", P_STR, true, "Name of the new image", "{\"minLength\":1}"},
    {"description", P_STR, false, "Description of the image", NULL},
    ARG_END,
};
static const struct param purge_args[] = {
    {"all", P_BOOL, false, "Also delete persistent VMs", "{\"default\":false}"},
    ARG_END,
};
static const struct param vm_logs_args[] = {ARG_ID, ARG_GREP, ARG_TAIL, ARG_END};
static const struct param service_logs_args[] = {ARG_GREP, ARG_TAIL, ARG_END};
static const struct param mcp_servers_args[] = {ARG_MCP_PROFILE, ARG_END};
static const struct param mcp_tools_args[] = {
    ARG_MCP_PROFILE,
    {"server", P_STR, false, "Server name; omit it for the tools of every server",
     "{\"minLength\":1}"},
    ARG_END,
};
static const struct param mcp_call_args[] = {
    {"name", P_STR, true, "Namespaced tool name <server>__<tool>, for example local__fetch_http",
     "{\"minLength\":1}"},
    {"arguments", P_OBJ, false, "The tool's arguments", "{\"default\":{}}"},
    ARG_MCP_PROFILE,
    ARG_END,
};

static const struct param ask_resolve_args[] = {
    ARG_ID,
    {"ask_id", P_STR, true, "Id of the pending ask, from capsem_ask_list", "{\"minLength\":1}"},
    {"decision", P_STR, true, "approve lets the held requests through; deny answers them 403",
     "{\"enum\":[\"approve\",\"deny\"]}"},
    {"remember", P_STR, false,
     "once: this ask only; session: identical requests of this VM until it stops; always "
     "(approve, net asks only): add an allow rule for the host and port to the user's "
     "policy.toml",
     "{\"enum\":[\"once\",\"session\",\"always\"],\"default\":\"once\"}"},
    ARG_END,
};

/* capsem_ask_resolve: the generic POST, marked as answered through MCP. */
static int ask_resolve_start(struct tool_run *run, struct err **errp)
{
    const char *ask_id = json_string_value(json_object_get(run->args, "ask_id"));
    _cleanup_free_ char *seg = ask_id ? mcp_path_segment(ask_id) : NULL;
    if (!seg)
        return err_status(errp, 400, "invalid ask_id: %s", ask_id ? ask_id : "");
    if (calls_generic_start(run, errp) < 0)
        return -1;
    if (json_object_set_new(run->req.body, "resolver", json_string("mcp")) < 0)
        return err_set(errp, ENOMEM, "out of memory");
    return 0;
}

/* ---------- the table ---------- */

#define GENERIC(m, p, b) m, p, b, false, NULL, NULL

static const struct tool_def tools[] = {
    {"capsem_version",
     "Versions of capsem-mcp and capsem-service, and whether the service is reachable. Never "
     "starts the service.",
     HINT_READ_ONLY, no_args, NULL, NULL, NULL, false, calls_version_start, calls_version_step},
    {"capsem_list",
     "List every VM with its id, name, status (Running, Stopped, Suspended, Defunct), type, CPUs, "
     "RAM and available actions, oldest first.",
     HINT_READ_ONLY, no_args, GENERIC("GET", "/vms/list", NULL)},
    {"capsem_create",
     "Create and boot an air-gapped Linux VM; returns its id and name. Without a name the VM is "
     "ephemeral (destroyed when stopped); with a name it is persistent (its disks survive stop and "
     "restarts). Boot continues in the background: the first capsem_exec waits for it.",
     HINT_NONE, create_args,
     GENERIC("POST", "/vms/create",
             "name,profile:profile_id,ramMb:ram_mb,cpuCount:cpus,env,image,from:image")},
    {"capsem_info",
     "Details of one VM: status, profile, image, CPUs, RAM, disk use, uptime, last error and "
     "available actions.",
     HINT_READ_ONLY, id_only, GENERIC("GET", "/vms/{id}/info", NULL)},
    {"capsem_exec",
     "Run a shell command in a running VM (bash -c, as root, in /root, no stdin, no TTY). Returns "
     "stdout, stderr, exit_code, truncated, timed_out and duration_ms; a non-zero exit code is a "
     "normal result. On timeout the command is killed and exit_code is 124.",
     HINT_NONE, exec_args, "POST", "/vms/{id}/exec", "command,timeout:timeout_secs", true, NULL,
     NULL},
    {"capsem_run",
     "Run one shell command in a fresh ephemeral VM that is destroyed afterwards; returns the "
     "fields of capsem_exec. Each call boots a VM: for several commands use capsem_create and "
     "capsem_exec.",
     HINT_NONE, run_args, "POST", "/run",
     "command,profile:profile_id,timeout:timeout_secs,env,ramMb:ram_mb,cpuCount:cpus,image", true,
     NULL, NULL},
    {"capsem_read_file",
     "Read a file in a running VM. Returns {content, encoding}. Text must be UTF-8; read other "
     "files with encoding base64.",
     HINT_READ_ONLY, read_args, GENERIC("POST", "/vms/{id}/files/read", "path,encoding")},
    {"capsem_write_file",
     "Write a file in a running VM (parent directories created, mode 0644). Returns {success, "
     "size}.",
     HINT_NONE, write_args, GENERIC("POST", "/vms/{id}/files/write", "path,content,encoding")},
    {"capsem_stop",
     "Stop a VM. A persistent VM keeps its disks and can be resumed; an ephemeral VM is "
     "destroyed.",
     HINT_DESTRUCTIVE, id_only, GENERIC("POST", "/vms/{id}/stop", NULL)},
    {"capsem_delete",
     "Delete a VM in any state: its process is killed and its disks are removed. Cannot be "
     "undone.",
     HINT_DESTRUCTIVE, id_only, GENERIC("DELETE", "/vms/{id}/delete", NULL)},
    {"capsem_suspend",
     "Suspend a running persistent VM: its memory is saved to disk and it stops using CPU and "
     "RAM until capsem_resume.",
     HINT_NONE, id_only, GENERIC("POST", "/vms/{id}/pause", NULL)},
    {"capsem_resume",
     "Start a Stopped, Suspended or Defunct persistent VM again (a Running VM is left as it is).",
     HINT_NONE, resume_args, GENERIC("POST", "/vms/{name}/resume", NULL)},
    {"capsem_persist",
     "Make a running ephemeral VM persistent under a name; it keeps running and keeps its id.",
     HINT_NONE, persist_args, GENERIC("POST", "/vms/{id}/save", "name")},
    {"capsem_fork",
     "Save a VM's disks as a reusable image; new VMs start from it with capsem_create image.",
     HINT_NONE, fork_args, GENERIC("POST", "/vms/{id}/fork", "name,description")},
    {"capsem_purge",
     "Delete every ephemeral VM, or with all=true every VM, persistent ones included.",
     HINT_DESTRUCTIVE, purge_args, GENERIC("POST", "/purge", "all")},
    {"capsem_vm_logs",
     "Serial console and process logs of a VM ({logs, serial_logs, process_logs}), filtered to "
     "the lines containing grep (case-insensitive) and to the last tail lines.",
     HINT_READ_ONLY, vm_logs_args, NULL, NULL, NULL, false, calls_vm_logs_start,
     calls_vm_logs_step},
    {"capsem_service_logs",
     "Lines of the capsem-service log ({logs}), filtered to those containing grep "
     "(case-insensitive) and to the last tail lines (500 by default).",
     HINT_READ_ONLY, service_logs_args, NULL, NULL, NULL, false, calls_service_logs_start,
     calls_service_logs_step},
    {"capsem_image_list", "List the images made with capsem_fork, by name.", HINT_READ_ONLY,
     no_args, GENERIC("GET", "/images/list", NULL)},
    {"capsem_image_info",
     "Details of one image: description, profile, base version, size, source VM and the VMs "
     "created from it.",
     HINT_READ_ONLY, image_name_only, GENERIC("GET", "/images/{name}/info", NULL)},
    {"capsem_image_delete", "Delete an image. Refused while a VM created from it exists.",
     HINT_DESTRUCTIVE, image_name_only, GENERIC("DELETE", "/images/{name}/delete", NULL)},
    {"capsem_mcp_servers",
     "MCP servers configured for the guests of a profile ({servers:[...]}), with their state "
     "and tool counts.",
     HINT_READ_ONLY, mcp_servers_args, "GET", "/profiles/{profile}/mcp/servers/list", NULL, false,
     NULL, calls_mcp_servers_step},
    {"capsem_mcp_tools",
     "Tools offered to the guests of a profile ({tools:[...]}) by one MCP server, or by every "
     "server.",
     HINT_READ_ONLY, mcp_tools_args, NULL, NULL, NULL, false, calls_mcp_tools_start,
     calls_mcp_tools_step},
    {"capsem_mcp_call",
     "Call a guest MCP tool (built-in local__* or <server>__<tool>) through a running VM of the "
     "profile, under its network policy. Returns the tool's MCP result.",
     HINT_NONE, mcp_call_args, NULL, NULL, NULL, false, calls_mcp_call_start, NULL},
    {"capsem_ask_list",
     "Requests of a VM held by a policy rule with action ask, waiting for a decision "
     "({asks:[{ask_id, scope, host, port, method, path, tool, rule, reason, process, waiters, "
     "created_at, deadline, expires_in_ms}]}). Unanswered asks are denied at their deadline.",
     HINT_READ_ONLY, id_only, GENERIC("GET", "/vms/{id}/asks", NULL)},
    {"capsem_ask_resolve",
     "Approve or deny a pending ask of a VM (see capsem_ask_list); every request waiting on it "
     "gets the answer. Returns {ask} (and {policy_rule} when remember is always).",
     HINT_NONE, ask_resolve_args, "POST", "/vms/{id}/asks/{ask_id}", "decision,remember", false,
     ask_resolve_start, NULL},
};

size_t mcp_tools_count(void)
{
    return ARRAY_SIZE(tools);
}

const struct tool_def *mcp_tool_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
        if (strcmp(tools[i].name, name) == 0)
            return &tools[i];
    return NULL;
}

const char *mcp_tool_name(const struct tool_def *def)
{
    return def->name;
}

/* ---------- schemas ---------- */

static json_t *param_schema(const struct param *p)
{
    static const char *const types[] = {"string", "integer", "boolean", "object", "object"};
    json_t *s = json_pack("{s:s, s:s}", "type", types[p->type], "description", p->desc);
    if (s && p->type == P_ENV &&
        json_object_set_new(s, "additionalProperties", json_pack("{s:s}", "type", "string")) < 0)
        goto fail;
    if (s && p->extra) {
        json_t *extra = json_loads(p->extra, 0, NULL);
        if (!extra || json_object_update(s, extra) < 0) {
            json_decref(extra);
            goto fail;
        }
        json_decref(extra);
    }
    return s;
fail:
    json_decref(s);
    return NULL;
}

json_t *mcp_tool_schema(const struct tool_def *def)
{
    json_t *props = json_object();
    json_t *req = json_array();
    json_t *schema = json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props,
                               "required", req, "additionalProperties", 0);
    if (!schema)
        return NULL; /* json_pack stole (and released) props and req */
    for (const struct param *p = def->params; p->name; p++) {
        if (json_object_set_new(props, p->name, param_schema(p)) < 0 ||
            (p->required && json_array_append_new(req, json_string(p->name)) < 0)) {
            json_decref(schema);
            return NULL;
        }
    }
    return schema;
}

static json_t *annotations(const struct tool_def *def)
{
    if (def->hint == HINT_READ_ONLY)
        return json_pack("{s:b}", "readOnlyHint", 1);
    return json_pack("{s:b, s:b}", "readOnlyHint", 0, "destructiveHint",
                     def->hint == HINT_DESTRUCTIVE);
}

json_t *mcp_tools_list(int proto)
{
    json_t *list = json_array();
    json_t *out = json_pack("{s:o}", "tools", list);
    if (!out)
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
        json_t *t = json_pack("{s:s, s:s, s:o}", "name", tools[i].name, "description",
                              tools[i].desc, "inputSchema", mcp_tool_schema(&tools[i]));
        if (t && proto >= MCP_PROTO_2025_03_26 &&
            json_object_set_new(t, "annotations", annotations(&tools[i])) < 0) {
            json_decref(t);
            t = NULL;
        }
        if (!t || json_array_append_new(list, t) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ---------- calls ---------- */

/* Copies args, turns integral reals of integer parameters (30.0) into
 * integers and fills in the defaults of absent parameters. */
static json_t *with_defaults(const struct tool_def *def, json_t *args)
{
    json_t *a = json_copy(args);
    for (const struct param *p = def->params; a && p->name; p++) {
        json_t *v = json_object_get(a, p->name);
        if (p->type == P_INT && json_is_real(v) &&
            json_object_set_new(a, p->name, json_integer((json_int_t)json_real_value(v))) < 0) {
            json_decref(a);
            return NULL;
        }
        if (!p->extra || v)
            continue;
        json_t *extra = json_loads(p->extra, 0, NULL);
        json_t *d = json_object_get(extra, "default");
        if (d && json_object_set(a, p->name, d) < 0) {
            json_decref(a);
            a = NULL;
        }
        json_decref(extra);
    }
    return a;
}

int mcp_tool_start(struct tool_run *run, const struct tool_def *def, json_t *args,
                   struct err **errp)
{
    memset(run, 0, sizeof(*run));
    run->def = def;
    json_t *schema = mcp_tool_schema(def);
    if (!schema)
        return err_set(errp, ENOMEM, "out of memory");
    int rc = mcp_schema_validate(schema, args, errp);
    json_decref(schema);
    if (rc < 0)
        return -1;
    if (!(run->args = with_defaults(def, args)))
        return err_set(errp, ENOMEM, "out of memory");
    run->req.autostart = true;
    run->req.timeout_secs = MCP_CALL_TIMEOUT;
    return def->start ? def->start(run, errp) : calls_generic_start(run, errp);
}

int mcp_tool_step(struct tool_run *run, const struct mcp_reply *r, json_t **out, struct err **errp)
{
    *out = NULL;
    /* run->req still describes the request being answered (for messages);
     * a step that sends another one replaces it with calls_next(). */
    int rc =
        run->def->step ? run->def->step(run, r, out, errp) : calls_generic_step(run, r, out, errp);
    run->step++;
    return rc;
}

void mcp_tool_run_clear(struct tool_run *run)
{
    json_decref(run->args);
    json_decref(run->state);
    json_decref(run->req.body);
    free(run->req.path);
    memset(run, 0, sizeof(*run));
}
