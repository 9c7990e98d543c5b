/* Internals shared by the files of src/lib/policy/ (not for other modules):
 * the snapshot layout, compiled rules, host patterns, the settings table. */
#ifndef CAPSEM_POLICY_INT_H
#define CAPSEM_POLICY_INT_H

#include <regex.h>
#include <stdatomic.h>

#include "config/toml.h"
#include "policy/expr.h"
#include "policy/policy.h"

/* ---- host patterns (hosts.c) ---- */

enum hp_kind { HP_EXACT, HP_SUFFIX, HP_ANY, HP_IPV4, HP_CIDR };

struct host_pat {
    enum hp_kind kind;
    char *name; /* HP_EXACT: the host; HP_SUFFIX: the part after "*." (owned) */
    size_t nlen;
    uint32_t addr, mask; /* HP_IPV4 (mask all ones), HP_CIDR */
};

/* Parses one pattern (already known not to be "@list"). 0, or -1 with why. */
int hostpat_parse(const char *s, struct host_pat *hp, char *why, size_t cap);
void hostpat_clear(struct host_pat *hp);
/* host: normalised request host; ip/is_ip: its IPv4 value when a literal. */
bool hostpat_match(const struct host_pat *hp, const char *host, bool is_ip, uint32_t ip);
/* Names the host: exact equal, or an IPv4/CIDR containing the literal. */
bool hostpat_names(const struct host_pat *hp, const char *host, bool is_ip, uint32_t ip);

/* ---- rules (rules.c) ---- */

struct port_range {
    uint16_t lo, hi;
};

struct policy_rule {
    char *id;
    char *rule; /* "<source>:<id>" */
    enum policy_source source;
    enum policy_action action;
    enum policy_scope scope;
    int line;
    bool enabled;
    bool has_host; /* a `host` field was given (an empty expansion matches nothing) */
    struct host_pat *hosts;
    size_t nhosts;
    struct port_range *ports;
    size_t nports;
    char **methods;
    size_t nmethods;
    char *path_prefix;
    size_t prefix_len;
    regex_t path_glob;      /* validates; regexec is the fallback matcher */
    char *path_glob_text;   /* matched in linear time (expr_re_linear_match) */
    bool has_glob;
    struct expr *expr;
    char *reason;
    bool name_decidable; /* 8.3: no ports/methods/path, expr without http./conn. */
};

struct rule_set {
    struct policy_rule *rules;
    size_t n;
};

struct load_ctx {
    const char *label; /* file name for messages */
    enum policy_source src;
    const struct policy_hostlist *lists;
    size_t nlists;
    struct warnings *warn; /* may be NULL (checks only) */
};

/* Parses the top-level `rule` array into set. 0, or -1 (400 "file:line: ..."). */
int rules_parse(const struct toml_value *arr, const struct load_ctx *c, struct rule_set *set,
                struct err **errp);
void rules_free(struct rule_set *set);
/* Whether the rule's host patterns match host (true without a host field). */
bool rule_host_match(const struct policy_rule *rule, const char *host);
/* Whether the rule's own fields (host, ports, methods, path) match r. */
bool rule_fields_match(const struct policy_rule *rule, const struct policy_request *r);

/* ---- warnings ---- */

struct warnings {
    char **v;
    size_t n;
};
void warnings_add(struct warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void warnings_free(struct warnings *w);

/* ---- settings (settings.c) ---- */

#define POLICY_NKEYS 25

/* One file's settings as read (values plus which keys it set). */
struct settings_layer {
    bool set[POLICY_NKEYS];
    int line[POLICY_NKEYS];
    struct policy_settings v; /* only the set keys are meaningful; strings owned */
    struct policy_override *overrides;
    struct policy_upstream *upstreams;
    char *proxy;
};

/* Reads [policy], [network], [dns], [corp] of one file. Keys the source may
 * not set are errors. */
int settings_parse(const struct toml_value *root, const struct load_ctx *c,
                   struct settings_layer *out, struct err **errp);
void settings_layer_free(struct settings_layer *l);
/* Defaults, then profile, user, corp on top; locked keys warn. Moves owned
 * strings/arrays of the winning layers into `dst`. */
void settings_merge(struct settings_layer *layers[3], const char *labels[3], struct warnings *w,
                    struct settings_layer *dst, int key_src[POLICY_NKEYS]);
void settings_defaults(struct policy_settings *s);
int settings_key_index(const char *key);

/* ---- the snapshot ---- */

struct policy {
    atomic_int refs;
    struct policy_settings st;
    struct settings_layer owned; /* owns the strings st points to */
    int key_src[POLICY_NKEYS];
    struct rule_set src[3]; /* corp, user, profile */
    char *labels[3];
    struct warnings warn;
};

/* Parses and checks one file's tree as source c->src; fills rules and
 * settings. Used by the loader and by policy_check_text(). */
int policy_parse_file(const struct toml_value *root, const struct load_ctx *c,
                      struct rule_set *rules, struct settings_layer *st, struct err **errp);

#endif
