/* Settings (surface.md section 10, docs/config.md): the registry of every
 * key, layered as compiled-in defaults < $CAPSEM_HOME/user.toml < corp file
 * ($CAPSEM_CORP_CONFIG, else /etc/capsem/corp.toml; an empty variable means
 * no corp file).
 *
 * Bad content never fails a load: parse errors, unknown keys, wrong types and
 * out-of-range values become `issues` ("user.toml:12: vm.cpus: must be an
 * integer between 1 and 8") and the lower layer's value applies. A key set in
 * the corp file is locked: the user's value is ignored (with an issue) and
 * settings_edit() refuses it (403).
 *
 * Ownership: a `struct settings` is created by settings_load*() and freed by
 * settings_free(). Strings and json_t values returned by getters are borrowed
 * and stay valid until the next settings_reload(), settings_edit() or
 * settings_free() on that object (json_incref / strdup to keep them longer).
 * Not thread-safe: one owner (the service's reactor) at a time.
 */
#ifndef CAPSEM_SETTINGS_H
#define CAPSEM_SETTINGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "config/toml.h"

#define SETTINGS_CORP_DEFAULT "/etc/capsem/corp.toml"

enum settings_source { SETTINGS_DEFAULT, SETTINGS_USER, SETTINGS_CORP };

struct settings;

/* Reads <home>/user.toml and the corp file (from $CAPSEM_CORP_CONFIG or
 * SETTINGS_CORP_DEFAULT). Missing files are fine. Fails only on I/O errors
 * other than ENOENT (unreadable file, a directory...). */
struct settings *settings_load(const char *home, struct err **errp);

/* Same with explicit paths; corp_path NULL = no corp file. */
struct settings *settings_load_paths(const char *user_path, const char *corp_path,
                                     struct err **errp);

/* Re-reads both files (SIGHUP). On failure the previous state is kept. */
int settings_reload(struct settings *s, struct err **errp);

void settings_free(struct settings *s);
void settings_freep(struct settings **s);
#define _cleanup_settings_ __attribute__((cleanup(settings_freep)))

/* Typed getters by id ("vm.cpus"). An id that is not in the registry or has
 * another type is a programming error: they return 0 / "" / false / NULL. */
int64_t settings_int(const struct settings *s, const char *id);
const char *settings_str(const struct settings *s, const char *id);
bool settings_bool(const struct settings *s, const char *id);
/* Any setting as JSON (borrowed): vm.env is an object of strings,
 * mcp.servers an array of {name, url, headers, enabled} with every field
 * filled in. */
const json_t *settings_json(const struct settings *s, const char *id);
enum settings_source settings_source(const struct settings *s, const char *id);
bool settings_corp_locked(const struct settings *s, const char *id);
const char *settings_source_name(enum settings_source src); /* default|user|corp */

/* Issues of the last load, in order (borrowed array of strings). */
const json_t *settings_issues(const struct settings *s);

/* The parsed files (borrowed; NULL when absent or unparseable), for code that
 * reads other tables of them (network policy reads the corp file's
 * [policy], [network], [dns]). */
const struct toml_value *settings_corp_toml(const struct settings *s);
const struct toml_value *settings_user_toml(const struct settings *s);
const char *settings_user_path(const struct settings *s);
const char *settings_corp_path(const struct settings *s); /* NULL: none */

/* GET /settings/info: {settings:[{id, value, default, source, corp_locked}],
 * issues:[string]} in registry order. New reference (NULL on OOM). */
json_t *settings_info_json(const struct settings *s);

/* PATCH /settings/edit. `patch` maps ids to new values (null removes the
 * user's value, so the default or corp value applies). All or nothing:
 * 400 "unknown setting: X", 403 "setting is locked by corp: X", 400
 * "X: <reason>" for a bad value or for a user value the patch would make
 * invalid (lowering limits.cpus_max below vm.cpus), 409 when user.toml does
 * not parse (it would be overwritten). Then user.toml is rewritten
 * atomically (mode 0600; comments are not kept, other content is) and both
 * files are re-read into `s`. */
int settings_edit(struct settings *s, const json_t *patch, struct err **errp);

/* The text `capsem setup` writes when user.toml is absent: every key
 * commented out with its default and a one-line description. Heap string. */
char *settings_user_toml_template(void);

/* surface.md section 11 rules for guest environment variables, shared with
 * the create/run `env` check: an object of string values, names matching
 * [A-Za-z_][A-Za-z0-9_]* and not reserved, values <= 32 KiB, all values
 * <= 256 KiB. Fails with status 400 and a message without prefix. */
int settings_env_check(const json_t *env, struct err **errp);

/* External MCP server names: 1-64 of [A-Za-z0-9_-], not "local", no "__". */
int settings_mcp_name_check(const char *name, struct err **errp);

#endif
