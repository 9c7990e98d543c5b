/* IPC op "stats": the session.db writer's metrics for GET /vms/{id}/stats. */
#include "vmm/vmproc_stats.h"

#include "base/err.h"
#include "base/log.h"
#include "store/session_db.h"
#include "vmm/vmproc.h"

#define STATS_FLUSH_MS 2000

void vp_stats_request(struct vmproc *vp, struct vp_reply *r, json_t *req)
{
    if (!vp->sdb) { /* telemetry failed to open: nothing is being written */
        vp_reply_ok(r, json_pack("{s:n}", "writer"), NULL, 0);
        return;
    }
    if (json_is_true(json_object_get(req, "flush"))) {
        struct err *e = NULL;
        if (session_db_flush(vp->sdb, STATS_FLUSH_MS, &e) < 0)
            log_warn("stats: telemetry flush: %s", err_msg(e));
        err_free(e);
    }
    struct session_db_metrics m;
    session_db_get_metrics(vp->sdb, &m);
    json_t *w = session_db_metrics_json(&m);
    if (!w) {
        vp_reply_err(r, 500, "out of memory");
        return;
    }
    vp_reply_ok(r, json_pack("{s:o}", "writer", w), NULL, 0);
}
