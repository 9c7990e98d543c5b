/* libFuzzer target for the TOML reader and writer (src/lib/config/toml.h).
 *
 * Every input is parsed. A rejected input must come with a "fuzz.toml:"
 * message. An accepted one is walked through every accessor (each key found
 * again by lookup, lines positive, strings NUL-free UTF-8), converted to JSON,
 * written as TOML and parsed again: the second JSON must equal the first.
 * The only allowed failure on the way back is the output being over the
 * input cap (the writer turns inline arrays of tables into [[headers]]). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/utf8.h"
#include "config/toml.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct toml_value *v, int depth)
{
    CHECK(depth <= TOML_MAX_DEPTH + 1);
    CHECK(toml_line(v) >= 1);
    int64_t i;
    double d;
    bool b;
    switch (toml_type(v)) {
    case TOML_TABLE:
        CHECK(depth <= TOML_MAX_DEPTH);
        for (size_t k = 0; k < toml_table_len(v); k++) {
            const char *key = toml_table_key(v, k);
            CHECK(key && strlen(key) <= TOML_MAX_KEY && utf8_valid(key, strlen(key)));
            CHECK(toml_table_get(v, key) == toml_table_value(v, k));
            walk(toml_table_value(v, k), depth + 1);
        }
        CHECK(toml_table_key(v, toml_table_len(v)) == NULL);
        break;
    case TOML_ARRAY:
        CHECK(depth <= TOML_MAX_DEPTH);
        for (size_t k = 0; k < toml_array_len(v); k++)
            walk(toml_array_at(v, k), depth + 1);
        CHECK(toml_array_at(v, toml_array_len(v)) == NULL);
        break;
    case TOML_STRING: {
        const char *s = toml_string(v);
        CHECK(s && strlen(s) <= TOML_MAX_STRING && utf8_valid(s, strlen(s)));
        break;
    }
    case TOML_INT:
        CHECK(toml_int(v, &i) == 0 && toml_bool(v, &b) < 0);
        break;
    case TOML_FLOAT:
        CHECK(toml_float(v, &d) == 0 && d == d);
        break;
    case TOML_BOOL:
        CHECK(toml_bool(v, &b) == 0 && toml_string(v) == NULL);
        break;
    }
}

static void roundtrip(const struct toml_value *v)
{
    json_t *j = toml_to_json(v);
    CHECK(j != NULL);
    struct err *e = NULL;
    char *out = toml_write(j, "fuzz", &e);
    if (!out) {
        CHECK(e && strstr(err_msg(e), "larger than"));
        err_free(e);
        json_decref(j);
        return;
    }
    struct toml_value *v2 = toml_parse(out, strlen(out), "written.toml", &e);
    if (!v2) {
        CHECK(e && strstr(err_msg(e), "file is larger than"));
        err_free(e);
    } else {
        json_t *j2 = toml_to_json(v2);
        CHECK(j2 && json_equal(j, j2));
        json_decref(j2);
        toml_free(v2);
    }
    free(out);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err *e = NULL;
    struct toml_value *v = toml_parse((const char *)data, size, "fuzz.toml", &e);
    if (!v) {
        CHECK(e && strncmp(err_msg(e), "fuzz.toml:", 10) == 0);
        CHECK(utf8_valid(err_msg(e), strlen(err_msg(e))));
        err_free(e);
        return 0;
    }
    CHECK(e == NULL && toml_type(v) == TOML_TABLE);
    walk(v, 0);
    roundtrip(v);
    toml_free(v);
    return 0;
}
