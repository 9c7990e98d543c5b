#include "store/session_schema.h"

#include <string.h>

#include "base/util.h"

#define I "INTEGER"
#define R "REAL"
#define T "TEXT"
#define B "BLOB"

static const struct sdb_col net_cols[] = {
    {"vm_id", T},
    {"conn_id", I},
    {"request_seq", I},
    {"process_name", T},
    {"pid", I},
    {"conn_type", T},
    {"method", T},
    {"scheme", T},
    {"domain", T},
    {"port", I},
    {"dst_ip", T},
    {"path", T},
    {"query", T},
    {"status_code", I},
    {"bytes_sent", I},
    {"bytes_received", I},
    {"duration_ms", I},
    {"ttfb_ms", I},
    {"decision", T},
    {"matched_rule", T},
    {"reason", T},
    {"error_detail", T},
    {"upstream_http_version", T},
    {"request_headers", T},
    {"response_headers", T},
    {"request_body_preview", B},
    {"response_body_preview", B},
    {"ask_id", T},
    {"credential_provider", T},
};

static const struct sdb_col dns_cols[] = {
    {"vm_id", T},        {"process_name", T}, {"pid", I},          {"qname", T},
    {"qtype", T},        {"qclass", T},       {"rcode", T},        {"answer_ip", T},
    {"answer_count", I}, {"decision", T},     {"matched_rule", T}, {"reason", T},
    {"source_proto", T}, {"cache_hit", I},    {"suspicious", I},   {"upstream_resolver_ms", I},
};

static const struct sdb_col exec_cols[] = {
    {"exec_id", T},        {"command", T},        {"exit_code", I},    {"duration_ms", I},
    {"stdout_preview", T}, {"stderr_preview", T}, {"stdout_bytes", I}, {"stderr_bytes", I},
    {"source", T},         {"process_name", T},   {"pid", I},
};

static const struct sdb_col fs_cols[] = {
    {"action", T}, {"path", T}, {"directory", T}, {"name", T}, {"size", I}, {"process_name", T},
};

static const struct sdb_col model_cols[] = {
    {"net_event_id", I},
    {"provider", T},
    {"protocol", T},
    {"model", T},
    {"process_name", T},
    {"pid", I},
    {"method", T},
    {"path", T},
    {"stream", I},
    {"status_code", I},
    {"message_id", T},
    {"system_prompt_preview", T},
    {"messages_count", I},
    {"tools_count", I},
    {"request_bytes", I},
    {"response_bytes", I},
    {"input_tokens", I},
    {"output_tokens", I},
    {"cache_read_tokens", I},
    {"cache_write_tokens", I},
    {"thinking_tokens", I},
    {"stop_reason", T},
    {"text_content", T},
    {"thinking_content", T},
    {"estimated_cost_usd", R},
    {"price_table_version", T},
    {"ttft_ms", I},
    {"duration_ms", I},
    {"usage_details", T},
    {"parse_status", T},
};

static const struct sdb_col tool_cols[] = {
    {"model_call_id", I},  {"provider", T},      {"status", T},       {"call_index", I},
    {"call_id", T},        {"tool_name", T},     {"arguments", T},    {"response_preview", T},
    {"origin", T},         {"transport", T},     {"server_name", T},  {"method", T},
    {"request_id", T},     {"decision", T},      {"matched_rule", T}, {"ask_id", T},
    {"duration_ms", I},    {"error_message", T}, {"process_name", T}, {"bytes_sent", I},
    {"bytes_received", I},
};

static const struct sdb_col policy_cols[] = {
    {"event_id", T},     {"subject", T}, {"ref_table", T}, {"ref_id", I},   {"rule_id", T},
    {"rule_source", T},  {"action", T},  {"status", T},    {"resolver", T}, {"remember", I},
    {"host", T},         {"port", I},    {"method", T},    {"path", T},     {"tool_name", T},
    {"process_name", T}, {"reason", T},  {"waited_ms", I},
};

static const struct sdb_col gap_cols[] = {
    {"table_name", T},
    {"dropped", I},
    {"from_ts", I},
    {"to_ts", I},
};

#define TABLE(n, c)                                                                                \
    {                                                                                              \
        n, c, ARRAY_SIZE(c)                                                                        \
    }

const struct sdb_table_def sdb_tables[SDB_TABLE_COUNT] = {
    [SDB_NET_EVENTS] = TABLE("net_events", net_cols),
    [SDB_DNS_EVENTS] = TABLE("dns_events", dns_cols),
    [SDB_EXEC_EVENTS] = TABLE("exec_events", exec_cols),
    [SDB_FS_EVENTS] = TABLE("fs_events", fs_cols),
    [SDB_MODEL_CALLS] = TABLE("model_calls", model_cols),
    [SDB_TOOL_CALLS] = TABLE("tool_calls", tool_cols),
    [SDB_POLICY_DECISIONS] = TABLE("policy_decisions", policy_cols),
    [SDB_TELEMETRY_GAPS] = TABLE("telemetry_gaps", gap_cols),
};

/* Version 1. Frozen: a schema change is a new step appended below, never an
 * edit of this text (files in the field were created by it). */
static const char schema_v1[] =
    "CREATE TABLE net_events (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " vm_id TEXT, conn_id INTEGER, request_seq INTEGER, process_name TEXT, pid INTEGER,"
    " conn_type TEXT, method TEXT, scheme TEXT, domain TEXT, port INTEGER, dst_ip TEXT,"
    " path TEXT, query TEXT, status_code INTEGER, bytes_sent INTEGER, bytes_received INTEGER,"
    " duration_ms INTEGER, ttfb_ms INTEGER, decision TEXT, matched_rule TEXT, reason TEXT,"
    " error_detail TEXT, upstream_http_version TEXT, request_headers TEXT,"
    " response_headers TEXT, request_body_preview BLOB, response_body_preview BLOB,"
    " ask_id TEXT, credential_provider TEXT);"
    "CREATE TABLE dns_events (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " vm_id TEXT, process_name TEXT, pid INTEGER, qname TEXT, qtype TEXT, qclass TEXT,"
    " rcode TEXT, answer_ip TEXT, answer_count INTEGER, decision TEXT, matched_rule TEXT,"
    " reason TEXT, source_proto TEXT, cache_hit INTEGER, suspicious INTEGER,"
    " upstream_resolver_ms INTEGER);"
    "CREATE TABLE exec_events (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " exec_id TEXT, command TEXT, exit_code INTEGER, duration_ms INTEGER,"
    " stdout_preview TEXT, stderr_preview TEXT, stdout_bytes INTEGER, stderr_bytes INTEGER,"
    " source TEXT, process_name TEXT, pid INTEGER);"
    "CREATE TABLE fs_events (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " action TEXT, path TEXT, directory TEXT, name TEXT, size INTEGER, process_name TEXT);"
    "CREATE TABLE model_calls (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " net_event_id INTEGER, provider TEXT, protocol TEXT, model TEXT, process_name TEXT,"
    " pid INTEGER, method TEXT, path TEXT, stream INTEGER, status_code INTEGER,"
    " message_id TEXT, system_prompt_preview TEXT, messages_count INTEGER,"
    " tools_count INTEGER, request_bytes INTEGER, response_bytes INTEGER,"
    " input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,"
    " cache_write_tokens INTEGER, thinking_tokens INTEGER, stop_reason TEXT,"
    " text_content TEXT, thinking_content TEXT, estimated_cost_usd REAL,"
    " price_table_version TEXT, ttft_ms INTEGER, duration_ms INTEGER, usage_details TEXT,"
    " parse_status TEXT);"
    "CREATE TABLE tool_calls (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " model_call_id INTEGER, provider TEXT, status TEXT, call_index INTEGER, call_id TEXT,"
    " tool_name TEXT, arguments TEXT, response_preview TEXT, origin TEXT, transport TEXT,"
    " server_name TEXT, method TEXT, request_id TEXT, decision TEXT, matched_rule TEXT,"
    " ask_id TEXT, duration_ms INTEGER, error_message TEXT, process_name TEXT,"
    " bytes_sent INTEGER, bytes_received INTEGER);"
    "CREATE TABLE policy_decisions (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " event_id TEXT, subject TEXT, ref_table TEXT, ref_id INTEGER, rule_id TEXT,"
    " rule_source TEXT, action TEXT, status TEXT, resolver TEXT, remember INTEGER, host TEXT,"
    " port INTEGER, method TEXT, path TEXT, tool_name TEXT, process_name TEXT, reason TEXT,"
    " waited_ms INTEGER);"
    "CREATE TABLE telemetry_gaps (id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,"
    " table_name TEXT, dropped INTEGER, from_ts INTEGER, to_ts INTEGER);"
    "CREATE INDEX net_events_ts ON net_events(timestamp);"
    "CREATE INDEX dns_events_ts ON dns_events(timestamp);"
    "CREATE INDEX exec_events_ts ON exec_events(timestamp);"
    "CREATE INDEX fs_events_ts ON fs_events(timestamp);"
    "CREATE INDEX model_calls_ts ON model_calls(timestamp);"
    "CREATE INDEX tool_calls_ts ON tool_calls(timestamp);"
    "CREATE INDEX policy_decisions_ts ON policy_decisions(timestamp);"
    "CREATE INDEX telemetry_gaps_ts ON telemetry_gaps(timestamp);"
    "CREATE INDEX net_events_domain ON net_events(domain);"
    "CREATE INDEX dns_events_qname ON dns_events(qname);"
    "CREATE INDEX tool_calls_call_id ON tool_calls(call_id);"
    "CREATE INDEX policy_decisions_event_id ON policy_decisions(event_id);"
    "CREATE INDEX model_calls_net_event_id ON model_calls(net_event_id);";

const char *const sdb_migrations[SESSION_DB_VERSION] = {
    schema_v1,
};

int sdb_col_index(enum sdb_table t, const char *name, size_t hint)
{
    const struct sdb_table_def *d = &sdb_tables[t];
    for (size_t k = 0; k < d->ncols; k++) {
        size_t i = (hint + k) % d->ncols;
        if (strcmp(d->cols[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}
