/* Building queued ops: column validation, value copies, text capping, and the
 * typed exec_events helper. Runs on the producer's thread, no locks held. */
#include "store/session_op.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/session_schema.h"

#define MARK_LEN (sizeof(SESSION_DB_TRUNC_MARK) - 1)

const char *session_db_table_name(enum sdb_table t)
{
    return (unsigned)t < SDB_TABLE_COUNT ? sdb_tables[t].name : NULL;
}

size_t session_db_trunc_len(const char *s, size_t len, size_t max, bool *truncated)
{
    if (len <= max || max <= MARK_LEN) {
        *truncated = false;
        return len <= max ? len : max;
    }
    *truncated = true;
    size_t keep = max - MARK_LEN;
    /* Back off to the start of a UTF-8 sequence so the cut never splits one. */
    while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;
    return keep;
}

char *session_db_truncate(const char *s, size_t len, size_t max)
{
    bool cut;
    size_t keep = session_db_trunc_len(s, len, max, &cut);
    size_t total = keep + (cut ? MARK_LEN : 0);
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    memcpy(out, s, keep);
    if (cut)
        memcpy(out + keep, SESSION_DB_TRUNC_MARK, MARK_LEN);
    out[total] = 0;
    return out;
}

/* What one caller value becomes: its column, and for text/blob the number of
 * source bytes kept and whether the mark follows. */
struct val_plan {
    int col;
    enum sdb_type type;
    size_t src_len;
    size_t keep;
    bool cut;
};

static int plan_value(enum sdb_table t, const struct sdb_val *v, size_t hint, uint64_t *mask,
                      struct val_plan *pl, struct err **errp)
{
    const char *tname = sdb_tables[t].name;
    if (!v->col)
        return err_set(errp, EINVAL, "%s: value without a column name", tname);
    pl->col = sdb_col_index(t, v->col, hint);
    if (pl->col < 0)
        return err_set(errp, EINVAL, "%s has no column %s", tname, v->col);
    if (*mask & (UINT64_C(1) << pl->col))
        return err_set(errp, EINVAL, "%s: column %s given twice", tname, v->col);
    *mask |= UINT64_C(1) << pl->col;
    pl->type = v->type;
    pl->keep = 0;
    pl->cut = false;
    switch (v->type) {
    case SDB_NULL:
    case SDB_INT:
    case SDB_REAL:
        return 0;
    case SDB_TEXT:
    case SDB_BLOB:
        break;
    default:
        return err_set(errp, EINVAL, "%s.%s: bad value type %d", tname, v->col, (int)v->type);
    }
    if (!v->p) {
        pl->type = SDB_NULL;
        return 0;
    }
    pl->src_len = (v->type == SDB_TEXT && v->len == SIZE_MAX) ? strlen(v->p) : v->len;
    size_t max = v->type == SDB_TEXT ? SESSION_DB_TEXT_MAX : SESSION_DB_BLOB_MAX;
    pl->keep = session_db_trunc_len(v->p, pl->src_len, max, &pl->cut);
    return 0;
}

static void fill_value(struct sdb_op_val *ov, const struct sdb_val *v, const struct val_plan *pl,
                       uint8_t **payload)
{
    ov->col = (uint8_t)pl->col;
    ov->type = (uint8_t)pl->type;
    ov->len = 0;
    switch (pl->type) {
    case SDB_INT:
        ov->u.i = v->i;
        break;
    case SDB_REAL:
        ov->u.d = v->d;
        break;
    case SDB_TEXT:
    case SDB_BLOB:
        memcpy(*payload, v->p, pl->keep);
        if (pl->cut)
            memcpy(*payload + pl->keep, SESSION_DB_TRUNC_MARK, MARK_LEN);
        ov->len = (uint32_t)(pl->keep + (pl->cut ? MARK_LEN : 0));
        ov->u.p = *payload;
        *payload += ov->len;
        break;
    default:
        ov->u.i = 0;
        break;
    }
}

static void sort_values(struct sdb_op_val *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct sdb_op_val x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1].col > x.col; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

struct sdb_op *sdb_op_new(enum sdb_table t, enum sdb_op_kind kind, const struct sdb_val *vals,
                          size_t n, struct err **errp)
{
    if ((unsigned)t >= SDB_TABLE_COUNT) {
        err_set(errp, EINVAL, "unknown session.db table %d", (int)t);
        return NULL;
    }
    if (n > sdb_tables[t].ncols || (n > 0 && !vals)) {
        err_set(errp, EINVAL, "%s: %zu values for %zu columns", sdb_tables[t].name, n,
                sdb_tables[t].ncols);
        return NULL;
    }
    struct val_plan plan[64];
    uint64_t mask = 0;
    size_t payload = 0;
    for (size_t i = 0; i < n; i++) {
        size_t hint = i > 0 ? (size_t)plan[i - 1].col + 1 : 0;
        if (plan_value(t, &vals[i], hint, &mask, &plan[i], errp) < 0)
            return NULL;
        if (plan[i].type == SDB_TEXT || plan[i].type == SDB_BLOB)
            payload += plan[i].keep + (plan[i].cut ? MARK_LEN : 0);
    }
    size_t head = sizeof(struct sdb_op) + n * sizeof(struct sdb_op_val);
    struct sdb_op *op = malloc(head + payload + 1);
    if (!op) {
        err_set(errp, ENOMEM, "out of memory");
        return NULL;
    }
    *op = (struct sdb_op){.mask = mask,
                          .size = head + payload,
                          .table = (uint8_t)t,
                          .kind = (uint8_t)kind,
                          .nvals = (uint8_t)n};
    uint8_t *p = (uint8_t *)op + head;
    for (size_t i = 0; i < n; i++)
        fill_value(&op->vals[i], &vals[i], &plan[i], &p);
    sort_values(op->vals, n);
    return op;
}

int64_t session_db_add_exec(struct session_db *db, const struct sdb_exec_event *ev,
                            struct err **errp)
{
    struct sdb_val v[] = {
        SDB_TEXT_V("exec_id", ev->exec_id),
        SDB_TEXT_V("command", ev->command),
        ev->has_exit_code ? SDB_INT_V("exit_code", ev->exit_code) : SDB_NULL_V("exit_code"),
        SDB_INT_V("duration_ms", ev->duration_ms),
        SDB_TEXT_V("stdout_preview", ev->stdout_preview),
        SDB_TEXT_V("stderr_preview", ev->stderr_preview),
        SDB_INT_V("stdout_bytes", ev->stdout_bytes),
        SDB_INT_V("stderr_bytes", ev->stderr_bytes),
        SDB_TEXT_V("source", ev->source),
        SDB_TEXT_V("process_name", ev->process_name),
        ev->pid > 0 ? SDB_INT_V("pid", ev->pid) : SDB_NULL_V("pid"),
    };
    return session_db_insert(db, SDB_EXEC_EVENTS, ev->timestamp_ms, v, sizeof(v) / sizeof(v[0]),
                             errp);
}
