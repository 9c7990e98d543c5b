/* Network policy (network.md section 8; docs/policy.md): policy files, the
 * immutable snapshot built from them, rule evaluation for HTTP requests, DNS
 * queries, model calls and MCP calls, the always-blocked destinations,
 * request normalisation helpers, the texts of section 7, and a store that
 * reloads the files when they change.
 *
 * Sources, in evaluation order: corp ($CAPSEM_CORP_CONFIG, else
 * /etc/capsem/corp.toml), user ($CAPSEM_HOME/policy.toml), profile
 * ($CAPSEM_HOME/profiles/<name>.toml, else <bundled_dir>/<name>.toml),
 * compiled defaults. A file with any error (unknown key, duplicate rule id,
 * bad pattern or expression...) is rejected whole: "file:line: reason".
 *
 * Ownership and threads: a `struct policy` is an immutable snapshot with a
 * reference count. policy_load() and policy_store_get() return a reference
 * the caller drops with policy_unref(); a request in flight keeps its own
 * reference, so a reload never changes the rules under it. Every pointer a
 * snapshot hands out (settings strings, warnings, decision rule names and
 * reasons) is borrowed and lives as long as the reference. Evaluation
 * functions only read the snapshot and may run on any thread. A
 * policy_store has one owner thread for reload/watch; policy_store_get() may
 * be called from any thread. */
#ifndef CAPSEM_POLICY_H
#define CAPSEM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "policy/request.h"

#define POLICY_MAX_FILE   (1024 * 1024) /* bytes per policy file (the TOML reader's cap) */
#define POLICY_MAX_RULES  10000         /* rules per file */
#define POLICY_MAX_REASON 200           /* bytes of a rule's reason */
#define POLICY_MAX_HTTP_PORTS 32
#define POLICY_CORP_DEFAULT "/etc/capsem/corp.toml"

enum policy_action { POLICY_ALLOW = 1, POLICY_BLOCK = 2, POLICY_ASK = 3 };
enum policy_source { POLICY_SRC_CORP, POLICY_SRC_USER, POLICY_SRC_PROFILE, POLICY_SRC_DEFAULT };
enum policy_scope { POLICY_SCOPE_NET = 1, POLICY_SCOPE_MODEL = 2, POLICY_SCOPE_MCP = 4 };

const char *policy_action_name(enum policy_action a); /* allow | block | ask */
const char *policy_source_name(enum policy_source s); /* corp | user | profile | default */

/* ---- settings ([policy], [network], [dns], [corp]) ---- */

struct policy_override {
    const char *target_host; /* "api.example.com" (lowercase) */
    uint16_t target_port;
    const char *dial_host; /* IPv4 literal or name */
    uint16_t dial_port;
    const char *ca_file; /* "" when not given */
};

struct policy_upstream {
    bool system; /* "system": the host's /etc/resolv.conf nameservers */
    uint32_t ip; /* host byte order */
    uint16_t port;
};

struct policy_exfil {
    int64_t max_label, max_name, max_sub_labels, entropy_min_len;
    double entropy_bits;
    int64_t suspicious_burst, suspicious_per_min, unique_subdomains_per_10min;
};

/* Resolved values (corp > user > profile > defaults). Strings and arrays are
 * borrowed from the snapshot. */
struct policy_settings {
    int64_t ask_timeout_s;   /* policy.ask_timeout_s: 30, 1..600 */
    int64_t ask_max_pending; /* policy.ask_max_pending: 64, 1..64 */
    enum policy_action default_action;       /* corp only: block */
    enum policy_action default_model_action; /* corp only: allow */
    enum policy_action default_mcp_action;   /* corp only: allow */
    uint16_t http_ports[POLICY_MAX_HTTP_PORTS]; /* network.http_ports: 80 8080 3128 11434 */
    size_t n_http_ports;
    bool log_bodies;                /* network.log_bodies: false */
    int64_t body_preview_bytes;     /* network.body_preview_bytes: 4096, 0..1048576 */
    bool log_model_content;         /* network.log_model_content: true */
    int64_t max_request_body_mib;   /* network.max_request_body_mib: 256, 1..4096 */
    int64_t upstream_idle_s;        /* network.upstream_idle_s: 600, 1..86400 */
    const char *upstream_proxy;     /* corp/user: "" = direct */
    const struct policy_override *overrides; /* corp/user: network.upstream_override */
    size_t n_overrides;
    const struct policy_upstream *upstreams; /* corp/user: dns.upstreams (["system"]) */
    size_t n_upstreams;
    struct policy_exfil exfil; /* corp/user: dns.exfil_guard */
    bool user_rules, profile_rules, asks; /* corp only: [corp], all true */
};

/* ---- loading ---- */

/* A host list the loader substitutes for "@name" in a rule's `host`
 * (docs/policy.md): the bundled profile's `debian` and `npm` rules say
 * host = "@debian" / "@npm" and the caller supplies the hosts (the image
 * manifest's apt_hosts, the npm registry host recorded at setup). "debian"
 * and "npm" are always known names (an absent list is empty: the rule then
 * matches nothing); any other @name must be supplied. Entries are exact
 * hosts or "*.suffix" patterns. Borrowed during the load call only. */
struct policy_hostlist {
    const char *name; /* without '@' */
    const char *const *hosts;
    size_t nhosts;
};

struct policy_load_opts {
    const char *home;        /* $CAPSEM_HOME; NULL: no user file, no home profiles */
    const char *corp_path;   /* NULL: $CAPSEM_CORP_CONFIG (empty = none), else
                                POLICY_CORP_DEFAULT; "" = no corp file */
    const char *profile;     /* NULL: "code" */
    const char *bundled_dir; /* directory of the bundled profiles (share/capsem/profiles) */
    const struct policy_hostlist *hostlists;
    size_t nhostlists;
};

/* Reads every source and builds a snapshot (one reference). Missing corp and
 * user files are empty layers; a missing profile is an error. Any rejected
 * file fails the load (status 400, "file:line: reason"); I/O errors have
 * status 0. */
struct policy *policy_load(const struct policy_load_opts *o, struct err **errp);

/* The compiled defaults alone (deny everything on the net; model and mcp
 * allowed). One reference, or NULL on allocation failure. */
struct policy *policy_defaults(void);

/* Checks one file's text as `src` would read it (for API edits before they
 * are written). 0, or -1 with the file's error. */
int policy_check_text(enum policy_source src, const char *text, size_t len, const char *label,
                      const struct policy_hostlist *lists, size_t nlists, struct err **errp);

struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);
void policy_unrefp(struct policy **p);
#define _cleanup_policy_ __attribute__((cleanup(policy_unrefp)))

const struct policy_settings *policy_settings(const struct policy *p);
/* Which source set a settings key ("network.log_bodies",
 * "dns.exfil_guard.max_label"); -1 for an unknown key. A key whose source is
 * POLICY_SRC_CORP is locked (the API answers 409 to edits). */
int policy_setting_source(const struct policy *p, const char *key);
/* Load warnings ("policy.toml:3: rule 'x': ..."), borrowed. */
size_t policy_warning_count(const struct policy *p);
const char *policy_warning(const struct policy *p, size_t i);
/* Rules read from a source (after @list expansion; disabled rules included). */
size_t policy_rule_count(const struct policy *p, enum policy_source src);
/* The label of a source's file ("policy.toml", the corp path...), or NULL. */
const char *policy_source_label(const struct policy *p, enum policy_source src);

/* ---- evaluation ---- */

struct policy_rule;

/* One decision. Strings are borrowed from the snapshot (or static). */
struct policy_decision {
    enum policy_action action;
    enum policy_source source;
    const char *id;     /* "no-git-push", or "default-deny" etc. for defaults */
    const char *rule;   /* "user:no-git-push", "default:default-deny" */
    const char *reason; /* the rule's `reason`, or NULL */
    /* Section 7 code when blocked: "policy_block", "default_deny",
     * "policy_error", "ask_disabled", "private_address"; NULL otherwise. */
    const char *code;
    /* The deciding rule is a corp/user `allow` that names the destination
     * (an exact host pattern equal to it, or an IPv4/CIDR containing the
     * literal): always-blocked addresses are then permitted. */
    bool names_destination;
    char error[160]; /* policy_error: what failed */
    const struct policy_rule *deciding; /* NULL for defaults */
};

/* net, HTTP (8.3): first matching net rule across corp, user, profile, else
 * policy.default_action. `ask` becomes block ("ask_disabled") when corp says
 * asks = false. An always-blocked host (name or IPv4 literal) is blocked
 * ("private_address") unless names_destination. Uses r->http.* (host,
 * port, method, path for the rule fields) plus whatever the expressions read. */
enum policy_action policy_eval_http(const struct policy *p, const struct policy_request *r,
                                    struct policy_decision *d);
/* net, DNS (8.3) for r->dns.qname: returns POLICY_ALLOW (resolve) or
 * POLICY_BLOCK (NXDOMAIN, with the rule and reason for the EDE text). */
enum policy_action policy_eval_dns(const struct policy *p, const struct policy_request *r,
                                   struct policy_decision *d);
/* model and mcp scopes: first matching rule, else the default action. */
enum policy_action policy_eval_model(const struct policy *p, const struct policy_request *r,
                                     struct policy_decision *d);
enum policy_action policy_eval_mcp(const struct policy *p, const struct policy_request *r,
                                   struct policy_decision *d);

/* Whether a resolved address may be dialled (or returned to the guest) for
 * this decision: outside the always-blocked ranges, or the decision names
 * the destination, or the deciding corp/user allow rule has an IPv4/CIDR
 * pattern containing it. Addresses are host byte order / network order bytes. */
bool policy_permits_ipv4(const struct policy_decision *d, uint32_t addr);
bool policy_permits_ipv6(const struct policy_decision *d, const uint8_t addr[16]);

/* The always-blocked lists (8.3). The name check covers the reserved names,
 * IPv4 literals in blocked ranges and IPv6 literals. */
bool policy_ipv4_always_blocked(uint32_t addr);
bool policy_ipv6_always_blocked(const uint8_t addr[16]);
bool policy_host_always_blocked(const char *host);

/* ---- normalisation (network.md section 6 step 6, section 4 step 2) ---- */

/* Request path (without the query) as policy matches it: percent-escapes of
 * unreserved characters decoded, dot-segments resolved, "//" collapsed; a
 * path not starting with '/' gets one. Writes a NUL-terminated result of at
 * most len + 1 bytes into out; returns its length, or -1 when cap is too
 * small (cap >= len + 2 always suffices). */
ssize_t policy_path_normalize(const char *path, size_t len, char *out, size_t cap);

/* Host name or IPv4 literal: lowercase, one trailing dot removed, checked
 * (labels of [a-z0-9_-], 1..63 bytes, 253 in all, no IPv6, ASCII only: a
 * non-ASCII name must arrive in A-label form). out needs 254 bytes. Returns
 * the length, or -1 with a 400 error. */
int policy_host_normalize(const char *in, size_t len, char *out, size_t cap, struct err **errp);

/* Strict dotted-quad IPv4 ("10.0.0.1"; no leading zeros); host byte order. */
int policy_ipv4_parse(const char *s, size_t len, uint32_t *out);

/* ---- texts of network.md section 7 ---- */

struct policy_block_info {
    const char *code;   /* "default_deny", "policy_block", "ask_timeout", ... */
    const char *rule;   /* "user:x", or NULL ("-") */
    const char *reason; /* the rule's reason, or NULL for the code's default text */
    const char *host;   /* destination host (HTTP, DNS), or NULL */
    int port;           /* destination port, 0 when none */
    const char *tool;   /* MCP: the tool name instead of host:port */
};

/* Fills b from a decision (code, rule, reason) and a destination. */
void policy_block_info_from(const struct policy_decision *d, const char *host, int port,
                            struct policy_block_info *b);
/* The 403 body (also the MCP -32001 message):
 *   capsem: request blocked\nhost: h:p\nrule: r\nreason: ...\nhint: ...\n
 * Writes a NUL-terminated text into out; returns its length, or -1 when it
 * does not fit (1 KiB is always enough). */
int policy_render_body(const struct policy_block_info *b, char *out, size_t cap);
/* The "reason:" sentence alone. Same return convention. */
int policy_render_reason(const struct policy_block_info *b, char *out, size_t cap);
/* X-Capsem-Reason and X-Capsem-Rule values. */
const char *policy_header_reason(const struct policy_block_info *b);
const char *policy_header_rule(const struct policy_block_info *b);
/* DNS Extended Error text: "capsem: <rule>: <reason>". */
int policy_render_dns_ede(const struct policy_block_info *b, char *out, size_t cap);

/* ---- store: current snapshot, reload, file watching ---- */

struct policy_store;

/* Copies the options (host lists included) and starts with the compiled
 * defaults snapshot; call policy_store_reload() for the first load. NULL on
 * allocation failure. */
struct policy_store *policy_store_new(const struct policy_load_opts *o, struct err **errp);
void policy_store_free(struct policy_store *s);
/* Loads every source; on success swaps the new snapshot in and returns 0; on
 * failure keeps the current one and returns -1 with the error. */
int policy_store_reload(struct policy_store *s, struct err **errp);
/* The current snapshot: a new reference (never NULL). Any thread. */
struct policy *policy_store_get(struct policy_store *s);
/* A pollable fd (level-triggered, readable when something needs doing) that
 * watches the policy files' directories with inotify and debounces changes
 * (100 ms quiet, 500 ms at most). Owned by the store. -1 on error. */
int policy_store_watch_fd(struct policy_store *s, struct err **errp);
/* Call when the fd is readable: drains events and reloads when the debounce
 * timer expired. Returns 0 (nothing swapped), 1 (new snapshot in place) or
 * -1 (reload failed, the previous snapshot stays, *errp says why). */
int policy_store_watch_process(struct policy_store *s, struct err **errp);

#endif
