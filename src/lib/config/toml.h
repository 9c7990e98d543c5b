/* A small, strict TOML reader and a JSON-shaped TOML writer (docs/config.md).
 *
 * Reader: TOML 1.0 minus dates/times and inf/nan, with hard limits (input,
 * nesting, string and key sizes). Errors are 400-class `struct err`s whose
 * message is "<filename>:<line>: <reason>". The result is a tree of values
 * that keeps every key in file order and every value's line number.
 *
 * Ownership: toml_parse*() return a tree the caller frees with toml_free()
 * (the root only). Every pointer a getter returns (values, keys, strings) is
 * borrowed from the tree and lives until toml_free(). The tree is read-only
 * and may be shared between threads for reading.
 *
 * Writer: toml_write() turns a jansson object into TOML text (no comments
 * preserved); toml_to_json() goes the other way. Parsing the writer's output
 * gives back an equal JSON value (the fuzz target checks this).
 */
#ifndef CAPSEM_TOML_H
#define CAPSEM_TOML_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define TOML_MAX_INPUT  (1024 * 1024) /* bytes of input */
#define TOML_MAX_DEPTH  32            /* tables/arrays nested below the root */
#define TOML_MAX_STRING (64 * 1024)   /* bytes of one decoded string */
#define TOML_MAX_KEY    256           /* bytes of one decoded key component */

enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INT,
    TOML_FLOAT,
    TOML_BOOL,
};

struct toml_value;

/* Parses text[0..len) (need not be NUL-terminated; NUL bytes are errors).
 * `filename` only labels error messages ("user.toml:3: expected '='").
 * Returns the root table or NULL with *errp set (status 400). */
struct toml_value *toml_parse(const char *text, size_t len, const char *filename,
                              struct err **errp);

/* Reads and parses a file. `label` names it in messages (NULL = path).
 * A missing file is an error with code ENOENT and status 0 (so callers can
 * tell "absent" from "bad"); other I/O errors have status 0 as well; a file
 * over TOML_MAX_INPUT and bad content are status 400. */
struct toml_value *toml_parse_file(const char *path, const char *label, struct err **errp);

void toml_free(struct toml_value *v);
void toml_freep(struct toml_value **v);
#define _cleanup_toml_ __attribute__((cleanup(toml_freep)))

enum toml_type toml_type(const struct toml_value *v);
/* "table", "array", "string", "integer", "float", "boolean". */
const char *toml_type_name(enum toml_type t);
/* 1-based line where the value (or table header / first key) starts. */
int toml_line(const struct toml_value *v);

/* Tables: keys in file order (a table defined by a header, by dotted keys or
 * inline). toml_table_get() looks up one literal key; toml_lookup() splits
 * `path` on '.' ("vm.cpus") and descends tables (NULL if any step is not a
 * table or is absent). */
size_t toml_table_len(const struct toml_value *t);
const char *toml_table_key(const struct toml_value *t, size_t i);
const struct toml_value *toml_table_value(const struct toml_value *t, size_t i);
const struct toml_value *toml_table_get(const struct toml_value *t, const char *key);
const struct toml_value *toml_lookup(const struct toml_value *root, const char *path);

/* Arrays: 0 / NULL for a non-array or an index past the end. */
size_t toml_array_len(const struct toml_value *a);
const struct toml_value *toml_array_at(const struct toml_value *a, size_t i);

/* Scalars. toml_string() returns NULL unless v is a string (strings never
 * hold NUL and are valid UTF-8). The others return -1 on a type mismatch. */
const char *toml_string(const struct toml_value *v);
int toml_int(const struct toml_value *v, int64_t *out);
int toml_float(const struct toml_value *v, double *out);
int toml_bool(const struct toml_value *v, bool *out);

/* The tree as JSON: tables -> objects (key order kept), arrays -> arrays,
 * integers -> integers, floats -> reals. Returns a new reference or NULL on
 * allocation failure. */
json_t *toml_to_json(const struct toml_value *v);

/* Writes `root` (a JSON object) as TOML: scalars and inline arrays first,
 * then `[sub.tables]`, then `[[arrays.of.tables]]` (any non-empty array whose
 * elements are all objects). `header` (may be NULL) is emitted first; each
 * line of it is prefixed with "# ". Fails (status 400) on null values, strings
 * holding NUL, or nesting deeper than TOML_MAX_DEPTH. Returns a heap string
 * the caller frees. */
char *toml_write(const json_t *root, const char *header, struct err **errp);

#endif
