/* Argument validation against the tools' input schemas; see mcp_tools.h.
 * Only the keywords the tool table uses are understood, so the schema a
 * client sees in tools/list is exactly what is enforced. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "mcp/mcp_tools.h"

/* Depth is bounded by the schema (values are only walked where the schema
 * has a sub-schema), not by the input. */
static int check(const json_t *schema, const json_t *v, const char *path, struct err **errp);

static int bad(struct err **errp, const char *path, const char *what)
{
    if (*path)
        return err_status(errp, 400, "argument %s %s", path, what);
    return err_status(errp, 400, "arguments %s", what);
}

static bool is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d && fabs(d) < 9.0e15;
}

static double number_of(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static bool type_matches(const char *type, const json_t *v)
{
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0)
        return is_integral(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    return true; /* unknown type names do not constrain */
}

static int check_type(const json_t *schema, const json_t *v, const char *path, struct err **errp)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (!type || type_matches(type, v))
        return 0;
    char what[64];
    bool vowel = strchr("aeiou", type[0]) != NULL;
    snprintf(what, sizeof(what), "must be %s %s", vowel ? "an" : "a", type);
    return bad(errp, path, what);
}

static int check_enum(const json_t *schema, const json_t *v, const char *path, struct err **errp)
{
    const json_t *en = json_object_get(schema, "enum");
    if (!json_is_array(en))
        return 0;
    size_t i;
    const json_t *opt;
    json_array_foreach(en, i, opt)
    {
        if (json_equal((json_t *)opt, (json_t *)v))
            return 0;
    }
    char what[256] = "must be one of:";
    size_t used = strlen(what);
    json_array_foreach(en, i, opt)
    {
        const char *s = json_string_value(opt);
        int n = snprintf(what + used, sizeof(what) - used, "%s %s", i ? "," : "", s ? s : "?");
        if (n < 0 || (size_t)n >= sizeof(what) - used)
            break;
        used += (size_t)n;
    }
    return bad(errp, path, what);
}

static int check_bounds(const json_t *schema, const json_t *v, const char *path, struct err **errp)
{
    char what[96];
    const json_t *min = json_object_get(schema, "minimum");
    const json_t *max = json_object_get(schema, "maximum");
    if (json_is_number(v) && json_is_number(min) && number_of(v) < number_of(min)) {
        snprintf(what, sizeof(what), "must be at least %.15g", number_of(min));
        return bad(errp, path, what);
    }
    if (json_is_number(v) && json_is_number(max) && number_of(v) > number_of(max)) {
        snprintf(what, sizeof(what), "must be at most %.15g", number_of(max));
        return bad(errp, path, what);
    }
    const json_t *minlen = json_object_get(schema, "minLength");
    if (json_is_string(v) && json_is_integer(minlen) &&
        (json_int_t)json_string_length(v) < json_integer_value(minlen)) {
        if (json_integer_value(minlen) == 1)
            return bad(errp, path, "must not be empty");
        snprintf(what, sizeof(what), "must be at least %lld characters long",
                 (long long)json_integer_value(minlen));
        return bad(errp, path, what);
    }
    return 0;
}

static char *child_path(const char *path, const char *key)
{
    char *p = NULL;
    if (asprintf(&p, "%s%s%s", path, *path ? "." : "", key) < 0)
        return NULL;
    return p;
}

static int check_required(const json_t *schema, const json_t *v, const char *path,
                          struct err **errp)
{
    size_t i;
    const json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req)
    {
        const char *key = json_string_value(req);
        if (key && !json_object_get(v, key)) {
            if (*path)
                return err_status(errp, 400, "argument %s: missing required field: %s", path, key);
            return err_status(errp, 400, "missing required argument: %s", key);
        }
    }
    return 0;
}

static int check_object(const json_t *schema, const json_t *v, const char *path, struct err **errp)
{
    if (check_required(schema, v, path, errp) < 0)
        return -1;
    const json_t *props = json_object_get(schema, "properties");
    const json_t *extra = json_object_get(schema, "additionalProperties");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        const json_t *sub = json_object_get(props, key);
        if (!sub && json_is_false(extra)) {
            if (*path)
                return err_status(errp, 400, "argument %s: unknown field: %s", path, key);
            return err_status(errp, 400, "unknown argument: %s", key);
        }
        if (!sub && json_is_object(extra))
            sub = extra;
        if (!sub)
            continue;
        _cleanup_free_ char *cp = child_path(path, key);
        if (!cp)
            return err_set(errp, ENOMEM, "out of memory");
        if (check(sub, val, cp, errp) < 0)
            return -1;
    }
    return 0;
}

static int check(const json_t *schema, const json_t *v, const char *path, struct err **errp)
{
    if (check_type(schema, v, path, errp) < 0 || check_enum(schema, v, path, errp) < 0 ||
        check_bounds(schema, v, path, errp) < 0)
        return -1;
    if (json_is_object(v))
        return check_object(schema, v, path, errp);
    return 0;
}

int mcp_schema_validate(const json_t *schema, const json_t *value, struct err **errp)
{
    return check(schema, value, "", errp);
}
