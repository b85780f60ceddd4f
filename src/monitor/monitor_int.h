/* SPDX-License-Identifier: MIT
 *
 * monitor/monitor_int.h -- private to src/monitor/ (and its unit tests): the
 * layout of the counters, the metric table and the helpers the Prometheus
 * renderer shares with the recorder.
 */
#ifndef QV_MONITOR_INT_H
#define QV_MONITOR_INT_H

#include "monitor.h"

#include <stdatomic.h>

/* Every exported metric family, in exposition order: id, name, type, labels,
 * help. The labels column is what each series carries; `docs/metrics.md`
 * documents each row and a unit test checks that it names every one.
 *
 * Label sets: VERSION = model,version; REASON = model,version,reason;
 * PAIR = model,version,other_version; CODE = code (server-wide, no model). */
#define QV_MONITOR_METRICS(X)                                                                      \
    X(REQUESTS, "quiver_requests_total", "counter", VERSION,                                       \
      "Finished inference requests, any outcome.")                                                 \
    X(FAILURES, "quiver_request_failures_total", "counter", REASON,                                \
      "Finished inference requests that did not succeed, by reason.")                              \
    X(REQUEST_DURATION, "quiver_request_duration_seconds", "histogram", VERSION,                   \
      "End-to-end request latency (outcomes ok, backend and timeout).")                            \
    X(QUEUE_DURATION, "quiver_queue_duration_seconds", "histogram", VERSION,                       \
      "Time requests waited in the version's queue.")                                              \
    X(COMPUTE_DURATION, "quiver_compute_duration_seconds", "histogram", VERSION,                   \
      "Time spent computing requests (their batch's inference time).")                             \
    X(BATCH_SIZE, "quiver_batch_size", "histogram", VERSION,                                       \
      "Rows per inference batch (the rows of all requests merged into it).")                       \
    X(CPU, "quiver_inference_cpu_seconds_total", "counter", VERSION,                               \
      "CPU time spent in inference.")                                                              \
    X(EXECUTIONS, "quiver_executions_total", "counter", VERSION,                                   \
      "Backend executions of requests, by path: inline (on the HTTP thread) or queued (a worker).") \
    X(SHADOW_DROPPED, "quiver_shadow_dropped_total", "counter", VERSION,                           \
      "Shadow copies dropped because the background lane was behind.")                           \
    X(INFLIGHT, "quiver_inflight_requests", "gauge", VERSION,                                      \
      "Requests accepted and not yet answered.")                                                   \
    X(QUEUE_DEPTH, "quiver_queue_depth", "gauge", VERSION, "Requests waiting in the queue.")       \
    X(MEMORY, "quiver_memory_bytes", "gauge", VERSION, "Memory held by the loaded version.")       \
    X(ROUTE_WEIGHT, "quiver_route_weight", "gauge", VERSION,                                       \
      "Share of the model's traffic routed to the version.")                                       \
    X(FEEDBACK, "quiver_feedback_total", "counter", VERSION, "Online feedback events received.")   \
    X(FEEDBACK_REWARD, "quiver_feedback_reward", "summary", VERSION,                               \
      "Online feedback reward; _sum / _count is the online accuracy.")                             \
    X(SHADOW_COMPARISONS, "quiver_shadow_comparisons_total", "counter", PAIR,                      \
      "Shadow or compare runs of other_version against version.")                                  \
    X(SHADOW_AGREEMENTS, "quiver_shadow_agreements_total", "counter", PAIR,                        \
      "Shadow or compare runs whose answers agreed.")                                              \
    X(SHADOW_ABS_DIFF, "quiver_shadow_abs_diff", "summary", PAIR,                                  \
      "Mean absolute output difference of each comparison.")                                       \
    X(SHADOW_ABS_DIFF_MAX, "quiver_shadow_abs_diff_max", "gauge", PAIR,                            \
      "Largest absolute output difference seen.")                                                  \
    X(SHADOW_PRIMARY_SECONDS, "quiver_shadow_primary_compute_seconds_total", "counter", PAIR,      \
      "Compute time of the primary version in compared runs.")                                     \
    X(SHADOW_OTHER_SECONDS, "quiver_shadow_other_compute_seconds_total", "counter", PAIR,          \
      "Compute time of other_version in compared runs.")                                           \
    X(HTTP_REFUSALS, "quiver_http_refusals_total", "counter", CODE,                                \
      "Requests the server refused as too large (413), overloaded (429) or unavailable (503).")

enum qv__monitor_metric {
#define X(id, name, type, labels, help) QV__METRIC_##id,
    QV_MONITOR_METRICS(X)
#undef X
        QV__METRIC_COUNT
};

enum qv__monitor_labels { QV__LABELS_VERSION, QV__LABELS_REASON, QV__LABELS_PAIR, QV__LABELS_CODE };

/* The refusal codes counted by qv_monitor_count_refusal, in exposition order. */
#define QV__MONITOR_N_REFUSALS 3
extern const int qv__monitor_refusal_codes[QV__MONITOR_N_REFUSALS];
/* The refusal counts, in the order of qv__monitor_refusal_codes. Any thread. */
void qv__monitor_refusals(qv_monitor *m, uint64_t out[QV__MONITOR_N_REFUSALS]);

struct qv__monitor_metric_def {
    const char *name;
    const char *type;
    enum qv__monitor_labels labels;
    const char *help;
};

extern const struct qv__monitor_metric_def qv__monitor_metrics[QV__METRIC_COUNT];

/* Bucket index of a latency in ns (0 .. QV_MONITOR_LAT_BUCKETS-1). */
int qv__monitor_lat_bucket(uint64_t ns);
/* Bucket index of a batch size (0 .. QV_MONITOR_BATCH_BUCKETS-1). */
int qv__monitor_batch_bucket(uint32_t n);

/* Pointer copies of the exported versions and pairs, sorted, for a reader
 * that must not hold the lock while it works. Each listed version is held
 * (a forget meanwhile does not free it): the caller gives the list back with
 * qv__monitor_unlist_versions; *out of the pairs it frees. QV_ENOMEM. */
int qv__monitor_list_versions(qv_monitor *m, qv_vstats ***out, size_t *n);
void qv__monitor_unlist_versions(qv_monitor *m, qv_vstats **v, size_t n);
int qv__monitor_list_pairs(qv_monitor *m, qv_pairstats ***out, size_t *n);

/* Read-only views for the renderer. */
const char *qv__vstats_model(const qv_vstats *s);
int64_t qv__vstats_version(const qv_vstats *s);
bool qv__vstats_route_weight(const qv_vstats *s, double *weight);
const char *qv__pairstats_model(const qv_pairstats *p);
void qv__pairstats_read(const qv_pairstats *p, struct qv_pair_summary *out, uint64_t *primary_ns,
                        uint64_t *other_ns, double *abs_diff_sum);

#endif /* QV_MONITOR_INT_H */
