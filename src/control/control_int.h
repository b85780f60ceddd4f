/* SPDX-License-Identifier: MIT
 *
 * control/control_int.h -- private to src/control/ (and its unit tests): the
 * rollout plan and its pure decision function, the statistics behind it, the
 * alert rules, and the controller's struct.
 *
 * Everything in the "pure" sections takes plain numbers and returns plain
 * numbers: no clock, no store, no server, so a test can drive a rollout step
 * by step with made-up windows and a fake clock.
 */
#ifndef QV_CONTROL_INT_H
#define QV_CONTROL_INT_H

#include "control.h"
#include "cluster.h"

#include <jansson.h>

/* ---- Statistics (pure; stats.c) ---- */

/* z statistic of the two-proportion test for H1: p1 > p2, with x1 successes
 * of n1 against x2 of n2 and the pooled standard error. 0 when either n is 0
 * or the pooled proportion is 0 or 1 (no variance). Any thread. */
double qv_two_prop_z(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2);
/* P(Z > z) for a standard normal Z (the one-sided p-value). Any thread. */
double qv_normal_sf(double z);

/* ---- Rollout plan (pure; stats.c) ---- */

#define QV_ROLLOUT_MAX_STEPS 32

struct qv_rollout_plan {
    int64_t canary;
    int n_steps;
    double steps[QV_ROLLOUT_MAX_STEPS]; /* canary weight in points, increasing, in 1..100 */
    double step_seconds;                /* > 0 */
    uint64_t min_requests;              /* >= 1: canary requests a step needs before deciding */
    double max_error_rate_delta;        /* 0..1 */
    double max_p99_ratio;               /* > 0 */
    double min_shadow_agreement;        /* 0..1; has_min_shadow_agreement says if set */
    bool has_min_shadow_agreement;
    double alpha; /* significance of the error-rate test, (0, 0.5]; default 0.05 */
};

/* Parses a plan (the POST body). Defaults: steps [5, 25, 50, 100],
 * step_seconds 60, min_requests 500, max_error_rate_delta 0.01,
 * max_p99_ratio 1.5, alpha 0.05, no shadow agreement guard. canary is
 * required. QV_EINVAL with d naming the field on anything wrong (unknown
 * keys included). Pure. */
int qv_rollout_plan_parse(const char *json, struct qv_rollout_plan *p, struct qv_diag *d);
/* The plan as canonical JSON (malloc'ed); NULL when out of memory. */
char *qv_rollout_plan_json(const struct qv_rollout_plan *p);
/* json_dumps(j, flags), read back and compared with j (stats.c): NULL when
 * the text cannot be made whole (out of memory). */
char *qv__json_dumps_checked(const json_t *j, size_t flags);

/* What the stable version is compared with when it has too few requests of
 * its own in the step (e.g. at 100% canary): figures kept from earlier. */
struct qv_rollout_ref {
    uint64_t requests, errors; /* requests: not refused as bad input */
    uint64_t latency_count;
    double p99_ms;
    uint64_t bad_input; /* refused as bad input */
};

/* What a tick observes for the current step. */
struct qv_rollout_obs {
    double elapsed_s;        /* since the step started */
    struct qv_window canary; /* both over the step so far */
    struct qv_window stable;
    struct qv_rollout_ref ref; /* the stable reference kept from earlier (may be empty) */
    uint64_t agree_count;      /* shadow comparisons stable vs canary in the step */
    uint64_t agree_n;
};

enum qv_rollout_action {
    QV_ROLLOUT_WAIT,     /* keep the step: too early or too few requests */
    QV_ROLLOUT_NEXT,     /* every guard passed at the end of the step: next step */
    QV_ROLLOUT_PROMOTE,  /* ... and it was the last step */
    QV_ROLLOUT_ROLLBACK, /* a guard is breached */
};
const char *qv_rollout_action_name(enum qv_rollout_action a);

/* The figures behind a verdict (kept as the rollout's "last" comparison). */
struct qv_rollout_figures {
    bool enough;                             /* canary has min_requests answered in the step */
    uint64_t canary_requests, canary_errors; /* requests: all but bad-input refusals */
    uint64_t canary_answered;                /* reached the backend: ok, backend errors, timeouts */
    uint64_t canary_bad_input,
        stable_bad_input; /* refused as bad input (stable: the source used) */
    double canary_bad_input_rate, stable_bad_input_rate; /* of all requests, bad input included */
    bool bad_input_evaluated, bad_input_breach;
    double canary_error_rate;
    uint64_t stable_requests, stable_errors; /* of the reference used */
    double stable_error_rate;
    const char *stable_source;                      /* "step", "reference" or "none" */
    double error_rate_delta;                        /* canary - stable */
    double z, p_value;                              /* two-proportion test, H1: canary worse */
    double canary_p99_ms, stable_p99_ms, p99_ratio; /* ratio 0 when not evaluated */
    bool p99_evaluated;
    double agreement; /* shadow agreement in the step; -1 when not available */
    uint64_t agreement_n;
    bool error_breach, p99_breach, agreement_breach;
};

struct qv_rollout_verdict {
    enum qv_rollout_action action;
    struct qv_rollout_figures f;
    char reason[256]; /* the failing guard(s) with figures, or why it waits */
};

/* Decides one tick of step 'step' (0-based) of plan p from what was observed.
 *  - Evidence is what reached the canary's backend: answered requests (ok,
 *    backend errors, timeouts). Bad-input refusals (400) and overload
 *    refusals never count toward min_requests.
 *  - Too few answered canary requests (< min_requests): WAIT; noise never
 *    decides -- except for the bad-input guard below.
 *  - Bad-input guard: the canary refuses as bad input significantly more of
 *    its requests than stable (same test as the error guard, on the share of
 *    bad-input refusals among all requests, with max_error_rate_delta): a
 *    canary that rejects what stable accepts is broken. Evaluated when the
 *    canary has min_requests requests of any kind and stable has figures.
 *  - Error guard: breached when the canary's error rate is significantly
 *    higher than stable's (one-sided two-proportion z-test, p < alpha) AND
 *    the difference exceeds max_error_rate_delta. Stable's figures are its
 *    own in the step when it has min_requests there, else the reference;
 *    with neither, the canary's error rate alone must not exceed the delta.
 *  - p99 guard: canary p99 / stable p99 > max_p99_ratio, evaluated when both
 *    sides have min_requests latency samples (step or reference).
 *  - Shadow guard (when set): agreement < min_shadow_agreement, evaluated
 *    when the step has min_requests comparisons.
 * Any breach: ROLLBACK at once, whatever the elapsed time. No breach and
 * elapsed >= step_seconds: NEXT, or PROMOTE after the last step. Else WAIT.
 * Pure. */
void qv_rollout_decide(const struct qv_rollout_plan *p, int step, const struct qv_rollout_obs *o,
                       struct qv_rollout_verdict *v);

/* ---- Alert rules (pure parts; alerts.c) ---- */

#define QV_ALERT_MAX_RULES 32

enum qv_alert_metric {
    QV_AM_ERROR_RATE,
    QV_AM_P50_MS,
    QV_AM_P95_MS,
    QV_AM_P99_MS,
    QV_AM_MEAN_MS,
    QV_AM_MEMORY_BYTES,
    QV_AM_MEMORY_SHARE,
    QV_AM_CPU_MS_PER_REQ,
    QV_AM_REQUESTS,
    QV_AM_COUNT
};
enum qv_alert_op { QV_OP_GT, QV_OP_GE, QV_OP_LT, QV_OP_LE };

struct qv_alert_rule {
    char name[64];
    enum qv_alert_metric metric;
    enum qv_alert_op op;
    double threshold;
    double window_s;       /* 1..600; default 60 */
    int64_t version;       /* 0: every READY version */
    uint64_t min_requests; /* per-request metrics need this many in the window; default 10 */
    char webhook[512];     /* "" for none */
};

const char *qv_alert_metric_name(enum qv_alert_metric m);
const char *qv_alert_op_name(enum qv_alert_op op);
/* Parses an "alerts" array. Valid rules go to rules (at most
 * QV_ALERT_MAX_RULES), each with its index in the array in idx; every
 * invalid rule adds one message to errs (errs[i] is malloc'ed; free with
 * qv_alert_errors_free). Returns the number of valid rules, or -1 when the
 * text cannot be read for want of memory (errs says so). Pure. */
int qv_alert_rules_parse(const char *json, struct qv_alert_rule *rules, int *idx, char ***errs,
                         int *n_errs);
void qv_alert_errors_free(char **errs, int n);
/* True when value op threshold holds. Pure. */
bool qv_alert_compare(enum qv_alert_op op, double value, double threshold);
/* The metric's value from a window (memory_share from budget); false when
 * the window has no requests for a per-request metric (no data). Pure. */
bool qv_alert_value(enum qv_alert_metric m, const struct qv_window *w, uint64_t budget,
                    double *value);

/* ---- The controller ---- */

struct qv__alert_state; /* counters.c: cluster-wide figures (cluster mode only) */
void qv__counters_publish(qv_control *c);
/* The sum over every node of the latest published counters of (model, version); t_ns now. */
int qv__counters_sum(qv_control *c, const char *model, int64_t version,
                     struct qv_vstats_snap *out);
/* alerts.c */
struct qv__rollout;     /* rollout.c */
struct qv__hist_prev;   /* history.c */
struct qv__webhook;     /* webhook.c */
struct qv__missing;     /* watch.c */

struct qv_control {
    qv_engine *engine;
    qv_router *router;
    qv_monitor *monitor;
    qv_store *store; /* may be NULL */
    struct qv_control_options opt;
    pthread_mutex_t mu; /* guards everything below */
    uint64_t next_sample_ms, next_prune_ms;
    struct qv__hist_prev *hist; /* last snapshot per (model, version) */
    int n_hist;
    struct qv__alert_state *alerts; /* per model */
    int n_alerts;
    struct qv__rollout *rollouts; /* per model */
    int n_rollouts;
    struct qv__webhook *webhook; /* NULL when disabled */
    struct qv__missing *missing; /* named versions not served, reported once */
    int n_missing;
    const struct qv_cluster *cluster; /* NULL: a single node, always the controller */
    bool was_leader;                  /* ran the controller at the last tick */
};

uint64_t qv__control_now_ms(const qv_control *c);

/* rollout.c */
void qv__rollout_load(qv_control *c);
void qv__rollout_tick(qv_control *c);
void qv__rollout_free(qv_control *c);
/* Re-read the persisted rollouts and take every one whose stored state differs from the one
 * in memory (another node's change); under c->mu. */
void qv__rollout_sync(qv_control *c);
/* alerts.c */
void qv__alerts_tick(qv_control *c);
void qv__alerts_free(qv_control *c);
/* Cluster mode: take the alert states the controller node stored (kv "alerts"); under c->mu. */
void qv__alerts_follow(qv_control *c);
/* bandit_sync.c (cluster mode): the controller moves the arms from the cluster's feedback
 * totals and stores them; the other nodes take the stored arms. Under c->mu. */
void qv__bandit_tick(qv_control *c);
void qv__bandit_follow(qv_control *c);
/* history.c */
void qv__history_tick(qv_control *c);
void qv__history_free(qv_control *c);
/* watch.c */
void qv__watch_tick(qv_control *c);
void qv__watch_free(qv_control *c);
/* webhook.c */
struct qv__webhook *qv__webhook_start(void);
/* Queues one POST of body (JSON) to url; never blocks on the network. */
void qv__webhook_post(struct qv__webhook *w, const char *url, const char *body);
void qv__webhook_stop(struct qv__webhook *w);

#endif /* QV_CONTROL_INT_H */
