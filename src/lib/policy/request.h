/* The request fields a policy evaluation looks at (network.md sections 8.3
 * and 9), filled by the caller: capsem-process's MITM (http, conn), its DNS
 * service (dns), the AI interpreters (model) and the MCP gateway (mcp).
 *
 * Cheap to fill: everything is borrowed. Strings are NUL-terminated and only
 * read during the evaluation call; NULL means "absent". Integers and booleans
 * have a has_* flag; a zero-initialised struct has every field absent, so
 * callers set only what they know:
 *
 *   struct policy_request r = {0};
 *   r.http.host = "api.github.com";       // normalised: policy_host_normalize()
 *   r.http.port = 443; r.http.has_port = true;
 *   r.http.method = "POST";
 *   r.http.path = norm_path;              // normalised: policy_path_normalize()
 *   r.http.headers = req->headers; r.http.nheaders = req->nheaders;
 *   r.process.name = comm;
 *
 * Comparisons are byte-exact, so the caller passes values normalised as
 * network.md section 9 lists: host and qname lowercase without a trailing dot
 * (A-labels), path normalised without the query, query raw without '?',
 * qtype as a mnemonic ("A", "TXT", "TYPE65"), header names looked up
 * case-insensitively (first value wins). An atom over an absent field is
 * false; has(field) tests presence. */
#ifndef CAPSEM_POLICY_REQUEST_H
#define CAPSEM_POLICY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http1.h" /* struct http1_header (type only) */

struct policy_request {
    struct {
        const char *host;   /* http.host: lowercase, no port, no trailing dot */
        int64_t port;       /* http.port: the destination port */
        bool has_port;
        const char *scheme; /* http.scheme: "https" | "http" */
        const char *method; /* http.method: as received ("GET") */
        const char *path;   /* http.path: normalised, no query */
        const char *query;  /* http.query: raw, without '?'; NULL when none */
        const char *upgrade; /* http.upgrade: lowercase Upgrade token ("websocket") */
        const char *sni;     /* http.sni: NULL without SNI */
        /* http.header["name"]: first field whose name matches, compared
         * case-insensitively. Borrowed array (http1_parser's is fine). */
        const struct http1_header *headers;
        size_t nheaders;
    } http;
    struct {
        const char *qname; /* dns.qname: lowercase, no trailing dot */
        const char *qtype; /* dns.qtype: "A", "AAAA", "TXT", "TYPE<n>" */
        bool suspicious;   /* dns.suspicious: the exfiltration guard's verdict */
        bool has_suspicious;
    } dns;
    struct {
        uint32_t dst_ip; /* conn.dst_ip: IPv4, host byte order; seen as "a.b.c.d" */
        bool has_dst_ip;
        int64_t dst_port; /* conn.dst_port */
        bool has_dst_port;
    } conn;
    struct {
        const char *name; /* process.name: guest-asserted comm */
        const char *exe;  /* process.exe: guest-asserted path */
        int64_t pid;      /* process.pid */
        bool has_pid;
    } process;
    struct {
        const char *id, *name, *profile; /* vm.id, vm.name, vm.profile */
    } vm;
    struct {
        const char *provider; /* model.provider: "anthropic" | "openai" | "google" ... */
        const char *protocol; /* model.protocol: "anthropic-messages" ... */
        const char *name;     /* model.name */
        bool stream;          /* model.stream */
        bool has_stream;
        int64_t max_tokens; /* model.max_tokens */
        bool has_max_tokens;
        int64_t messages_count; /* model.messages_count */
        bool has_messages_count;
        const char *const *tools; /* model.tools: declared tool names */
        size_t ntools;
        bool has_tools; /* present (possibly empty) list */
    } model;
    struct {
        const char *server; /* mcp.server */
        const char *tool;   /* mcp.tool: "server__tool" */
        const char *method; /* mcp.method: JSON-RPC method */
        const char *args;   /* mcp.args: canonical JSON; NULL when over 64 KiB */
    } mcp;
};

#endif
