/* IPC op "stats" of capsem-process (docs/telemetry.md "Stats"): the
 * session.db writer's back-pressure metrics. */
#ifndef CAPSEM_VMPROC_STATS_H
#define CAPSEM_VMPROC_STATS_H

#include <jansson.h>

struct vmproc;
struct vp_reply;

/* Answers r at once with {"writer": metrics or null}. With "flush": true
 * in req, ops queued so far are committed first (waits at most one batch,
 * capped at 2 s), so a reader sees them. */
void vp_stats_request(struct vmproc *vp, struct vp_reply *r, json_t *req);

#endif
