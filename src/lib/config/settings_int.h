/* Settings internals shared by settings.c (layering, API) and
 * settings_registry.c (the key table, validators, template). */
#ifndef CAPSEM_SETTINGS_INT_H
#define CAPSEM_SETTINGS_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/settings.h"

enum setting_type {
    ST_INT,
    ST_BOOL,
    ST_STR,  /* free string with a length cap */
    ST_NAME, /* profile-style name */
    ST_ENUM,
    ST_ENV, /* vm.env */
    ST_MCP, /* mcp.servers */
};

struct setting_def {
    const char *id; /* "section.key" */
    enum setting_type type;
    int64_t def;                /* ST_INT / ST_BOOL default */
    const char *def_s;          /* ST_STR / ST_NAME / ST_ENUM default */
    int64_t min, max;           /* ST_INT hard range; ST_STR max bytes */
    const char *lo_ref;         /* ST_INT: id whose value raises the minimum */
    const char *hi_ref;         /* ST_INT: id whose value lowers the maximum */
    const char *const *choices; /* ST_ENUM, NULL-terminated */
    const char *desc;           /* one line, for the template */
};

extern const struct setting_def settings_defs[];
extern const size_t settings_ndefs;

/* Index of id in settings_defs, or -1. */
int settings_def_find(const char *id);

/* Default value as a new JSON reference. */
json_t *settings_def_default(const struct setting_def *d);

/* Checks `in` against d (integers against [lo, hi]). On success stores the
 * normalized value (new reference) in *out and returns 0; otherwise writes
 * the reason ("must be an integer between 1 and 8") to why and returns -1. */
int settings_validate(const struct setting_def *d, const json_t *in, int64_t lo, int64_t hi,
                      json_t **out, char *why, size_t cap);

/* Top-level tables of the corp file that belong to network policy
 * (network.md section 8) and are skipped by settings. */
bool settings_policy_table(const char *name);

#endif
