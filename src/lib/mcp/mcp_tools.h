/* capsem-mcp internals: the tool table (names, descriptions, input schemas,
 * annotations) and the mapping of each tool to capsem-service requests
 * (surface.md section 6). Used by mcp_server.c and the unit tests. */
#ifndef CAPSEM_MCP_TOOLS_H
#define CAPSEM_MCP_TOOLS_H

#include <jansson.h>

#include "base/err.h"
#include "mcp/mcp.h"

/* Service timeouts (seconds): exec and run get their own timeout plus
 * MCP_EXEC_SLACK, everything else MCP_CALL_TIMEOUT. */
#define MCP_CALL_TIMEOUT 120
#define MCP_EXEC_SLACK   30

struct tool_def;

/* One tools/call in progress. */
struct tool_run {
    const struct tool_def *def;
    json_t *args;       /* validated arguments (owned) */
    struct mcp_req req; /* the request to send next (path and body owned) */
    int step;           /* requests completed so far */
    json_t *state;      /* tool-specific state (owned) or NULL */
};

/* The tools/list result ({tools:[...]}) for a negotiated version index.
 * New reference; NULL on allocation failure. */
json_t *mcp_tools_list(int proto);
size_t mcp_tools_count(void);

/* Tool by name, or NULL. */
const struct tool_def *mcp_tool_find(const char *name);
const char *mcp_tool_name(const struct tool_def *def);
/* The tool's inputSchema (new reference). */
json_t *mcp_tool_schema(const struct tool_def *def);

/* Validates args (borrowed) against the tool's input schema and prepares the
 * first request in run->req. Errors carry status 400 for bad arguments. */
int mcp_tool_start(struct tool_run *run, const struct tool_def *def, json_t *args,
                   struct err **errp);

/* Feeds the reply of run->req. Returns 1 when run->req now holds another
 * request to send, 0 when *out holds the result object (new reference), -1
 * on error (err->status: the service's HTTP status, 0 for transport). */
int mcp_tool_step(struct tool_run *run, const struct mcp_reply *r, json_t **out, struct err **errp);

/* Frees what run owns; run may be reused. */
void mcp_tool_run_clear(struct tool_run *run);

/* Checks value against the subset of JSON Schema the tool table uses: type
 * (string, integer, number, boolean, object, array), properties, required,
 * additionalProperties (false or a schema), enum (strings), minimum, maximum,
 * minLength. Errors have status 400 and name the offending argument. */
int mcp_schema_validate(const json_t *schema, const json_t *value, struct err **errp);

/* Keeps the lines of text that contain grep (ASCII case-insensitive; NULL or
 * "" keeps all), then the last tail of them (tail <= 0: all). malloc'd. */
char *mcp_filter_lines(const char *text, const char *grep, long tail);

/* "%XX"-encodes one path segment; NULL for segments the service would refuse
 * (empty, containing '/', '\\', NUL or ".."). malloc'd. */
char *mcp_path_segment(const char *s);

#endif
