/* capsem-mcp internals shared by the tool table (mcp_tools.c) and the
 * request builders (mcp_calls.c). Not for other modules. */
#ifndef CAPSEM_MCP_TOOLDEF_H
#define CAPSEM_MCP_TOOLDEF_H

#include <stdbool.h>

#include "mcp/mcp_tools.h"

enum param_type { P_STR, P_INT, P_BOOL, P_ENV, P_OBJ };

/* One tool argument. extra is JSON object text merged into the property's
 * schema (bounds, enum, default); a "default" is filled in before the
 * request is built. */
struct param {
    const char *name;
    enum param_type type;
    bool required;
    const char *desc;
    const char *extra;
};

enum tool_hint { HINT_NONE, HINT_READ_ONLY, HINT_DESTRUCTIVE };

typedef int (*tool_start_fn)(struct tool_run *run, struct err **errp);
typedef int (*tool_step_fn)(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                            struct err **errp);

struct tool_def {
    const char *name;
    const char *desc;
    enum tool_hint hint;
    const struct param *params; /* ends with a NULL name */
    /* Generic mapping (start == NULL): method, path template ("{arg}" is the
     * argument, percent-encoded), body as "arg[:field],..." (NULL: none). */
    const char *method;
    const char *path;
    const char *body;
    bool long_call; /* timeout = argument "timeout" + MCP_EXEC_SLACK */
    tool_start_fn start;
    tool_step_fn step; /* NULL: the service's JSON answer is the result */
};

/* mcp_calls.c */
int calls_generic_start(struct tool_run *run, struct err **errp);
int calls_generic_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp);
int calls_version_start(struct tool_run *run, struct err **errp);
int calls_version_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp);
int calls_vm_logs_start(struct tool_run *run, struct err **errp);
int calls_vm_logs_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                       struct err **errp);
int calls_service_logs_start(struct tool_run *run, struct err **errp);
int calls_service_logs_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                            struct err **errp);
int calls_mcp_servers_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                           struct err **errp);
int calls_mcp_tools_start(struct tool_run *run, struct err **errp);
int calls_mcp_tools_step(struct tool_run *run, const struct mcp_reply *r, json_t **out,
                         struct err **errp);
int calls_mcp_call_start(struct tool_run *run, struct err **errp);

#endif
