/* SPDX-License-Identifier: MIT
 *
 * control/control.h -- the controller: a tick at a time, it turns the
 * monitor's windows into scores and route weights, samples metric history
 * into the store, evaluates alerts and drives canary rollouts (promotion or
 * automatic rollback). It also restores the persisted routes at start and
 * resumes a rollout that was running when the server stopped.
 *
 * Every route change the controller makes goes through the router's atomic
 * swap (a whole document), is persisted in the store and leaves an audit
 * event (who = "controller" for its own decisions, the operator's token name
 * for a start or abort they asked for). A tick that cannot complete (a store error)
 * logs, changes no traffic and tries again on the next tick.
 *
 * The decision logic (statistics, guards, steps) is pure and lives in
 * control_int.h for the unit tests; docs/control.md describes the behaviour.
 *
 * Threads: create/destroy and tick from the main thread; the query and
 * command functions from HTTP threads. Internally serialized by one lock;
 * webhooks are POSTed from a background thread.
 */
#ifndef QV_CONTROL_H
#define QV_CONTROL_H

#include "../engine/engine.h"
#include "../monitor/monitor.h"
#include "../router/router.h"
#include "../store/store.h"

typedef struct qv_control qv_control;

/* Options of qv_control_create_opts. Zero fields take the defaults. */
struct qv_control_options {
    double history_interval_s;  /* sampler interval; 0: $QUIVER_HISTORY_INTERVAL_S or 10 */
    double history_retention_s; /* rows older are pruned; 0: $QUIVER_HISTORY_RETENTION_S or
                                 * 7 days */
    /* Wall clock in ms (rollout step times, history timestamps); NULL: qv_wall_ms. For tests. */
    uint64_t (*clock_ms)(void *ud);
    void *clock_ud;
    bool no_webhooks; /* never POST (tests); alerts are still recorded */
};

/* Creates the controller with default options: restores routes (and bandit
 * state) from the store into the router and loads the persisted rollouts.
 * store may be NULL (no persistence, no history). Returns 0; allocation
 * failures abort. Main thread. */
int qv_control_create(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s, qv_control **out,
                      struct qv_diag *d);
/* qv_control_create with options (o may be NULL). Main thread. */
int qv_control_create_opts(qv_engine *e, qv_router *r, qv_monitor *m, qv_store *s,
                           const struct qv_control_options *o, qv_control **out, struct qv_diag *d);
/* Stops the webhook thread (dropping what is still queued) and frees c.
 * NULL is a no-op. Main thread, after the HTTP server has stopped. */
void qv_control_destroy(qv_control *c);
/* One controller step; the server calls it about once a second, after
 * qv_monitor_tick. Never fails: problems are logged and retried. Main thread. */
void qv_control_tick(qv_control *c);

/* Cluster mode (control/cluster.h): the rollout controller runs only while
 * qv_cluster_is_leader(cl); on becoming the controller the persisted rollouts are re-read and
 * resumed. Main thread, before the first tick. */
struct qv_cluster;
void qv_control_set_cluster(qv_control *c, const struct qv_cluster *cl);
/* For qv_cluster_start's kv_fn: another node changed the kv namespace ns ("rollout" re-reads
 * the persisted rollouts; "bandit" and "alerts" take the controller node's bandit arms and
 * alert states, on the other nodes). Any thread. */
void qv_control_cluster_kv(void *control, const char *ns);

/* ---- Rollouts (HTTP threads) ---- */

/* Starts a rollout of model from the JSON plan 'body' (see docs/control.md):
 * {"canary": 2, "steps": [5, 25, 50, 100], "step_seconds": 60, "min_requests": 500,
 *  "guards": {"max_error_rate_delta": 0.01, "max_p99_ratio": 1.5,
 *             "min_shadow_agreement": 0.98, "alpha": 0.05}}.
 * The first step's route is published at once. who (the token name) is the
 * who of the "rollout.start" event; the controller's own later decisions are
 * recorded with who "controller". On success *status_json (malloc'ed, caller frees) is the rollout's
 * status as qv_control_rollout_status gives it.
 * QV_EINVAL (d names the field) for a bad plan, a canary that is not READY or
 * no stable version; QV_ENOENT for an unknown model; QV_ECONFLICT when a
 * rollout of the model is already running; QV_ESTORE when the state cannot
 * be persisted (nothing changed). HTTP thread. */
int qv_control_rollout_start(qv_control *c, const char *model, const char *body, const char *who,
                             char **status_json, struct qv_diag *d);
/* Status of the model's current or last rollout as JSON (malloc'ed):
 * {"model", "state": running|promoted|rolled_back|aborted, "canary", "stable",
 *  "step", "steps", "weights", "step_started", "plan", "last": {figures},
 *  "reason"}. QV_ENOENT when the model never had one. HTTP thread. */
int qv_control_rollout_status(qv_control *c, const char *model, char **json, struct qv_diag *d);
/* Aborts the running rollout: canary weight 0, traffic stays on stable,
 * event "rollout.abort" with who. *status_json as above. QV_ENOENT when no rollout is
 * running; QV_ESTORE when the change cannot be persisted (nothing changed).
 * HTTP thread. */
int qv_control_rollout_abort(qv_control *c, const char *model, const char *who, char **status_json,
                             struct qv_diag *d);

/* ---- Alerts (HTTP threads) ---- */

/* The model's alert rules, their state per version and any validation error,
 * as JSON (malloc'ed): {"model", "rules": [{"index", "name", "metric", "op",
 * "threshold", "window_s", "webhook", "firing": [{"version", "value",
 * "since"}]}], "errors": ["alerts[1].metric: unknown metric \"p77\""]}.
 * QV_ENOENT for an unknown model. HTTP thread. */
int qv_control_alerts_json(qv_control *c, const char *model, char **json, struct qv_diag *d);
/* Validates an "alerts" array (JSON text) as config.json holds it. Returns 0,
 * or QV_EINVAL with d naming the first bad field ("alerts[1].metric: unknown
 * metric \"p77\""). Pure; any thread (repo code may call it to reject a
 * config). */
int qv_control_alerts_validate(const char *alerts_json, struct qv_diag *d);

/* ---- Route weights and history ---- */

/* Effective weight (0..100 points) of each of the n versions under the
 * model's current route: weighted/sticky/score/bandit weights through the
 * labels, pinned target 100, compare first target 100, default: the highest
 * READY version 100. Versions the route does not name get 0. Any thread. */
void qv_control_route_weights(qv_control *c, const char *model, const int64_t *versions, int n,
                              double *weights);
/* The sampler's interval in seconds. Any thread. */
double qv_control_history_interval(const qv_control *c);

#endif /* QV_CONTROL_H */
