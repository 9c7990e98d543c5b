/* Command-line option parsing for the capsem CLI; see args.h. */
#include "cli/args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"

struct parse_state {
    const struct cli_opt *opts;
    size_t nopts;
    int argc;
    char **argv;
    int i; /* index of the word being parsed */
    cli_opt_fn fn;
    void *ctx;
};

static const struct cli_opt *find_long(const struct parse_state *st, const char *name, size_t n)
{
    for (size_t k = 0; k < st->nopts; k++) {
        const char *l = st->opts[k].name;
        if (l && strlen(l) == n && memcmp(l, name, n) == 0)
            return &st->opts[k];
    }
    return NULL;
}

static const struct cli_opt *find_short(const struct parse_state *st, char c)
{
    for (size_t k = 0; k < st->nopts; k++)
        if (st->opts[k].short_name == c)
            return &st->opts[k];
    return NULL;
}

static int deliver(struct parse_state *st, const struct cli_opt *o, const char *value,
                   struct err **errp)
{
    return st->fn ? st->fn(st->ctx, o, value, errp) : 0;
}

/* "--name", "--name=value", "--name value"; returns 0, CLI_ARGS_HELP or -1. */
static int parse_long(struct parse_state *st, struct err **errp)
{
    const char *w = st->argv[st->i] + 2;
    const char *eq = strchr(w, '=');
    size_t n = eq ? (size_t)(eq - w) : strlen(w);
    if (!eq && strcmp(w, "help") == 0)
        return CLI_ARGS_HELP;
    const struct cli_opt *o = find_long(st, w, n);
    if (!o)
        return err_set(errp, EINVAL, "unknown flag: --%.*s", (int)n, w);
    if (!o->value) {
        if (eq)
            return err_set(errp, EINVAL, "flag --%s takes no value", o->name);
        return deliver(st, o, NULL, errp);
    }
    if (eq)
        return deliver(st, o, eq + 1, errp);
    if (st->i + 1 >= st->argc)
        return err_set(errp, EINVAL, "flag --%s needs a value (%s)", o->name, o->value);
    st->i++;
    return deliver(st, o, st->argv[st->i], errp);
}

/* "-x", "-xyz" (flags), "-x value", "-xvalue". */
static int parse_short(struct parse_state *st, struct err **errp)
{
    const char *w = st->argv[st->i] + 1;
    for (; *w; w++) {
        if (*w == 'h')
            return CLI_ARGS_HELP;
        const struct cli_opt *o = find_short(st, *w);
        if (!o)
            return err_set(errp, EINVAL, "unknown flag: -%c", *w);
        if (!o->value) {
            if (deliver(st, o, NULL, errp) < 0)
                return -1;
            continue;
        }
        if (w[1])
            return deliver(st, o, w + 1, errp);
        if (st->i + 1 >= st->argc)
            return err_set(errp, EINVAL, "flag -%c needs a value (%s)", *w, o->value);
        st->i++;
        return deliver(st, o, st->argv[st->i], errp);
    }
    return 0;
}

static bool is_flag_word(const char *w)
{
    return w[0] == '-' && w[1] != '\0';
}

int cli_args_parse(const struct cli_opt *opts, size_t nopts, int stop_after, int argc, char **argv,
                   cli_opt_fn fn, void *ctx, struct cli_args *out, struct err **errp)
{
    struct parse_state st = {opts, nopts, argc, argv, 0, fn, ctx};
    memset(out, 0, sizeof(*out));
    out->pos = calloc((size_t)argc + 1, sizeof(*out->pos));
    if (!out->pos)
        return err_set(errp, ENOMEM, "out of memory");
    out->tail = -1;
    bool flags_done = false;
    int rc = 0;
    for (st.i = 0; st.i < argc && rc == 0; st.i++) {
        const char *w = argv[st.i];
        if (!flags_done && strcmp(w, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (!flags_done && is_flag_word(w)) {
            rc = w[1] == '-' ? parse_long(&st, errp) : parse_short(&st, errp);
            continue;
        }
        if (stop_after >= 0 && out->npos == stop_after) {
            out->tail = out->npos;
            flags_done = true;
        }
        out->pos[out->npos++] = w;
    }
    if (out->tail < 0)
        out->tail = out->npos;
    if (rc < 0) {
        cli_args_free(out);
        return -1;
    }
    return rc;
}

void cli_args_free(struct cli_args *a)
{
    free(a->pos);
    a->pos = NULL;
    a->npos = 0;
    a->tail = 0;
}

static void opt_label(const struct cli_opt *o, char *buf, size_t cap)
{
    char sh[8] = "    ";
    if (o->short_name)
        snprintf(sh, sizeof(sh), "-%c%s", o->short_name, o->name ? ", " : "");
    snprintf(buf, cap, "%s%s%s%s%s", sh, o->name ? "--" : "", o->name ? o->name : "",
             o->value ? " " : "", o->value ? o->value : "");
}

char *cli_opts_help(const struct cli_opt *opts, size_t nopts)
{
    char label[128];
    size_t width = strlen("-h, --help");
    for (size_t k = 0; k < nopts; k++) {
        opt_label(&opts[k], label, sizeof(label));
        width = MAX(width, strlen(label));
    }
    struct buf b;
    buf_init(&b, 64 * 1024);
    for (size_t k = 0; k < nopts; k++) {
        opt_label(&opts[k], label, sizeof(label));
        if (buf_printf(&b, "  %-*s  %s\n", (int)width, label, opts[k].help) < 0) {
            buf_free(&b);
            return NULL;
        }
    }
    if (buf_printf(&b, "  %-*s  %s\n", (int)width, "-h, --help", "show this help") < 0) {
        buf_free(&b);
        return NULL;
    }
    char *s = buf_steal_str(&b);
    buf_free(&b);
    return s;
}
