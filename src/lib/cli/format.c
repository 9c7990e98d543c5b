/* Pure formatting and parsing helpers of the capsem CLI; see format.h. */
#include "cli/format.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

#define RAM_MAX_MB (1024 * 1024) /* 1 TiB: far above any limit, below any overflow */

/* Suffix after the digits: "" (GiB), "M"/"MB"/"MiB" or "G"/"GB"/"GiB". Returns
 * the multiplier in MiB, or 0 when the suffix is not one of those. */
static int64_t ram_suffix_mult(const char *suf)
{
    if (*suf == '\0')
        return 1024;
    int64_t mult = 0;
    if (*suf == 'm' || *suf == 'M')
        mult = 1;
    else if (*suf == 'g' || *suf == 'G')
        mult = 1024;
    else
        return 0;
    suf++;
    if (*suf == '\0' || strcasecmp(suf, "b") == 0 || strcasecmp(suf, "ib") == 0)
        return mult;
    return 0;
}

int cli_parse_ram_mb(const char *s, int64_t *mb, struct err **errp)
{
    const char *p = s;
    int64_t n = 0;
    for (; isdigit((unsigned char)*p); p++)
        n = MIN(n * 10 + (*p - '0'), (int64_t)RAM_MAX_MB + 1); /* saturate, no overflow */
    int64_t mult = p == s ? 0 : ram_suffix_mult(p);
    if (mult == 0)
        return err_set(errp, EINVAL,
                       "invalid --ram value '%s': use whole GiB (4) or a size like 512M or 2G", s);
    if (n == 0 || n > RAM_MAX_MB / mult)
        return err_set(errp, ERANGE, "invalid --ram value '%s': out of range", s);
    *mb = n * mult;
    return 0;
}

int cli_parse_count(const char *flag, const char *s, int64_t max, int64_t *out, struct err **errp)
{
    if (parse_int64(s, 1, max, out) < 0)
        return err_set(errp, EINVAL,
                       "invalid %s value '%s': expected a whole number from 1 to %lld", flag, s,
                       (long long)max);
    return 0;
}

int cli_parse_env(const char *kv, char **key, const char **value, struct err **errp)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return err_set(errp, EINVAL, "invalid -e value '%s': expected KEY=VALUE", kv);
    *key = strndup(kv, (size_t)(eq - kv));
    if (!*key)
        return err_set(errp, ENOMEM, "out of memory");
    *value = eq + 1;
    return 0;
}

void cli_format_uptime(int64_t secs, char *buf, size_t cap)
{
    if (secs < 0)
        snprintf(buf, cap, "-");
    else if (secs < 60)
        snprintf(buf, cap, "%llds", (long long)secs);
    else if (secs < 3600)
        snprintf(buf, cap, "%lldm", (long long)(secs / 60));
    else if (secs < 86400)
        snprintf(buf, cap, "%lldh%02lldm", (long long)(secs / 3600), (long long)(secs % 3600 / 60));
    else
        snprintf(buf, cap, "%lldd%02lldh", (long long)(secs / 86400),
                 (long long)(secs % 86400 / 3600));
}

void cli_format_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char units[] = "KMGTPE";
    if (bytes < 1024) {
        snprintf(buf, cap, "%" PRIu64 "B", bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) - 1) {
        v /= 1024.0;
        u++;
    }
    if (v < 9.95)
        snprintf(buf, cap, "%.1f%c", v, units[u]);
    else
        snprintf(buf, cap, "%.0f%c", v, units[u]);
}

char *cli_join_words(const char *const *words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        if (i > 0)
            s[off++] = ' ';
        memcpy(s + off, words[i], l);
        off += l;
    }
    s[off] = '\0';
    return s;
}

char *cli_ws_socket_path(const char *uds_path)
{
    size_t n = strlen(uds_path);
    if (str_has_suffix(uds_path, ".sock"))
        n -= strlen(".sock");
    char *s = NULL;
    if (asprintf(&s, "%.*s-ws.sock", (int)n, uds_path) < 0)
        return NULL;
    return s;
}

size_t cli_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* ---------- tables ---------- */

struct table_row {
    char **cells;
    char **notes;
    size_t nnotes;
};

struct cli_table {
    size_t ncols;
    struct table_row *rows;
    size_t nrows;
    size_t cap;
};

struct cli_table *cli_table_new(size_t ncols)
{
    struct cli_table *t = calloc(1, sizeof(*t));
    if (t)
        t->ncols = ncols;
    return t;
}

static void row_free(struct table_row *r, size_t ncols)
{
    for (size_t c = 0; r->cells && c < ncols; c++)
        free(r->cells[c]);
    free(r->cells);
    for (size_t k = 0; k < r->nnotes; k++)
        free(r->notes[k]);
    free(r->notes);
}

void cli_table_free(struct cli_table *t)
{
    if (!t)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        row_free(&t->rows[r], t->ncols);
    free(t->rows);
    free(t);
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        struct table_row *nr = realloc(t->rows, ncap * sizeof(*nr));
        if (!nr)
            return -1;
        t->rows = nr;
        t->cap = ncap;
    }
    struct table_row r = {calloc(t->ncols, sizeof(char *)), NULL, 0};
    if (!r.cells)
        return -1;
    for (size_t c = 0; c < t->ncols; c++) {
        r.cells[c] = strdup(cells[c] ? cells[c] : "");
        if (!r.cells[c]) {
            row_free(&r, t->ncols);
            return -1;
        }
    }
    t->rows[t->nrows++] = r;
    return 0;
}

int cli_table_note(struct cli_table *t, const char *line)
{
    if (t->nrows == 0)
        return -1;
    struct table_row *r = &t->rows[t->nrows - 1];
    char **nn = realloc(r->notes, (r->nnotes + 1) * sizeof(*nn));
    if (!nn)
        return -1;
    r->notes = nn;
    if (!(nn[r->nnotes] = strdup(line)))
        return -1;
    r->nnotes++;
    return 0;
}

size_t cli_table_rows(const struct cli_table *t)
{
    return t->nrows;
}

static int render_row(const struct cli_table *t, const struct table_row *r, const size_t *width,
                      struct buf *out)
{
    for (size_t c = 0; c < t->ncols; c++) {
        bool last = c + 1 == t->ncols;
        size_t pad = last ? 0 : width[c] - cli_text_width(r->cells[c]) + 2;
        if (buf_append_str(out, r->cells[c]) < 0 || buf_printf(out, "%*s", (int)pad, "") < 0)
            return -1;
    }
    if (buf_append_str(out, "\n") < 0)
        return -1;
    for (size_t k = 0; k < r->nnotes; k++)
        if (buf_printf(out, "%s\n", r->notes[k]) < 0)
            return -1;
    return 0;
}

int cli_table_render(const struct cli_table *t, struct buf *out)
{
    size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof(*width));
    if (!width)
        return -1;
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++)
            width[c] = MAX(width[c], cli_text_width(t->rows[r].cells[c]));
    int rc = 0;
    for (size_t r = 0; r < t->nrows && rc == 0; r++)
        rc = render_row(t, &t->rows[r], width, out);
    free(width);
    return rc;
}

/* ---------- cp arguments ---------- */

int cli_split_remote(const char *arg, char **vm, const char **path)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || memchr(arg, '/', (size_t)(colon - arg)))
        return 0;
    if (!(*vm = strndup(arg, (size_t)(colon - arg))))
        return -1;
    *path = colon + 1;
    return 1;
}

const char *cli_base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *p = path + n;
    while (p > path && p[-1] != '/')
        p--;
    return p;
}

/* ---------- log lines ---------- */

void cli_lines_free(struct cli_lines *l)
{
    free(l->text);
    free(l->line);
    memset(l, 0, sizeof(*l));
}

int cli_lines_split(const char *text, struct cli_lines *l)
{
    memset(l, 0, sizeof(*l));
    size_t len = strlen(text);
    size_t complete = len;
    while (complete > 0 && text[complete - 1] != '\n')
        complete--;
    if (!(l->text = strndup(text, complete)))
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < complete; i++)
        n += l->text[i] == '\n';
    l->line = calloc(n + 1, sizeof(*l->line));
    if (!l->line) {
        cli_lines_free(l);
        return -1;
    }
    char *p = l->text;
    for (size_t i = 0; i < n; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        l->line[l->n++] = p;
        p = nl + 1;
    }
    return 0;
}

size_t cli_lines_new_start(const struct cli_lines *prev, const struct cli_lines *cur)
{
    size_t max = MIN(prev->n, cur->n);
    for (size_t k = max; k > 0; k--) {
        size_t i = 0;
        while (i < k && strcmp(prev->line[prev->n - k + i], cur->line[i]) == 0)
            i++;
        if (i == k)
            return k;
    }
    return 0;
}

/* ---------- --since ---------- */

int cli_since_value(const char *s, int64_t now_ms, char *out, size_t cap, struct err **errp)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    size_t len = s ? strlen(s) : 0;
    if (len == 0)
        return err_set(errp, EINVAL,
                       "invalid --since value '': use an age (10m, 2h, 3d) or a "
                       "time (2026-11-29T10:00:00Z)");
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (s[len - 1] != units[i].unit || len > 20)
            continue;
        char num[24];
        memcpy(num, s, len - 1);
        num[len - 1] = '\0';
        int64_t n;
        if (parse_int64(num, 1, 36500LL * 86400000 / units[i].ms, &n) < 0)
            return err_set(errp, EINVAL,
                           "invalid --since age '%s': a whole number of s, m, h "
                           "or d, at most 100 years",
                           s);
        int w = snprintf(out, cap, "%lld", (long long)(now_ms - n * units[i].ms));
        return w < 0 || (size_t)w >= cap ? err_set(errp, EINVAL, "--since: no room") : 0;
    }
    if (len >= cap)
        return err_set(errp, EINVAL, "invalid --since value '%.64s': too long", s);
    memcpy(out, s, len + 1);
    return 0;
}
