/* SPDX-License-Identifier: MIT
 *
 * control/control.h -- the controller: a tick at a time, it turns the
 * monitor's windows into scores and route weights, samples metric history
 * into the store, evaluates alerts and drives canary rollouts (promotion or
 * automatic rollback). It also restores the persisted routes at start.
 *
 * Threads: create/destroy and tick from the main thread; the query and
 * command functions from HTTP threads. Internally serialized.
 */
#ifndef QV_CONTROL_H
#define QV_CONTROL_H

#include "../engine/engine.h"
#include "../monitor/monitor.h"
#include "../router/router.h"
#include "../store/store.h"

typedef struct qv_control qv_control;

/* Restores routes (and bandit state) from the store into the router. */
int qv_control_create(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s, qv_control **out,
                      struct qv_diag *d);
void qv_control_destroy(qv_control *c); /* NULL is a no-op */
/* One controller step; the server calls it about once a second. */
void qv_control_tick(qv_control *c);

#endif /* QV_CONTROL_H */
