/* SPDX-License-Identifier: MIT
 *
 * monitor/monitor.h -- per-version measurements, windows and Prometheus text.
 *
 * A monitor holds one qv_vstats per (model, version). The control plane
 * creates it once (qv_monitor_version, under a lock); the data plane keeps the
 * pointer and records into it with no lock and no lookup: every counter is a
 * relaxed atomic in one of several per-thread shards, and a reader merges the
 * shards. A qv_vstats lives until the monitor is destroyed, so a pointer kept
 * by a version, a queue or a request never dangles.
 *
 * Readers work on snapshots: qv_vstats_snapshot copies the merged counters
 * into a plain struct, and qv_vstats_window turns the difference of two
 * snapshots into the figures the router and controller score. For their
 * convenience the monitor also keeps a ring of snapshots per version, filled
 * by qv_monitor_tick (the server calls it every second), and answers
 * qv_monitor_window(m, model, version, seconds, &w) from it.
 *
 * Latency histograms have fixed log-scale buckets from 10 us to 10 s, ten per
 * decade on the R10 preferred numbers (1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.3,
 * 8); quantiles interpolate linearly inside a bucket, as Prometheus'
 * histogram_quantile does, so a quantile is exact to within one bucket
 * (about 26%).
 */
#ifndef QV_MONITOR_H
#define QV_MONITOR_H

#include "../util/util.h"

/* One version's figures over a window (the difference of two snapshots). */
struct qv_window {
    double seconds;    /* length of the window */
    uint64_t requests; /* finished requests, any outcome */
    uint64_t ok;       /* answered with success */
    uint64_t errors;   /* failed: bad input excluded, overload and timeout included */
    double error_rate; /* errors / requests, 0 when no requests */
    double mean_ms, p50_ms, p95_ms, p99_ms; /* total latency */
    double cpu_ms_per_req;                  /* CPU time spent in inference per request */
    uint64_t memory_bytes;                  /* gauge at the end of the window */
    /* Added fields. */
    uint64_t bad_input;     /* refused as bad input (not counted in errors) */
    uint64_t latency_count; /* requests behind mean/p50/p95/p99 (see qv_vstats_request) */
    uint64_t batches;       /* inference batches run */
    double mean_batch_size; /* rows per batch, 0 when no batches */
    uint64_t overload;      /* refused before reaching the backend (queue full, not
                             * ready, shutting down); counted in errors */
    uint64_t answered;      /* reached the backend: ok + backend errors + timeouts */
};

typedef struct qv_monitor qv_monitor;     /* opaque; defined in monitor.c */
typedef struct qv_vstats qv_vstats;       /* opaque; one (model, version), owned by the monitor */
typedef struct qv_pairstats qv_pairstats; /* opaque; one shadow/compare version pair */

/* How a request ended. Every finished request is counted under exactly one. */
enum qv_outcome {
    QV_OUTCOME_OK,        /* answered */
    QV_OUTCOME_BAD_INPUT, /* refused: the client's input was wrong (4xx); not the version's fault */
    QV_OUTCOME_BACKEND,   /* the backend failed */
    QV_OUTCOME_OVERLOAD,  /* refused: queue full, not ready, shutting down */
    QV_OUTCOME_TIMEOUT,   /* deadline passed before an answer */
    QV_OUTCOME_COUNT
};

/* "ok", "bad_input", "backend", "overload", "timeout" (the `reason` label).
 * Any thread. Never NULL. */
const char *qv_outcome_name(enum qv_outcome o);
/* Maps a qv_err to the outcome it means: QV_OK -> OK; EINVAL, E2BIG, ENOENT,
 * EUNAUTH, EFORBIDDEN, ECONFLICT -> BAD_INPUT; EOVERLOAD, EBUSY, ESHUTDOWN,
 * ENOMEM -> OVERLOAD; ETIMEDOUT -> TIMEOUT; anything else -> BACKEND.
 * Any thread. */
enum qv_outcome qv_outcome_from_err(int err);

/* ---- Fixed histogram layout ---- */

/* Latency buckets: bucket i counts values v with upper(i-1) < v <= upper(i);
 * upper(0) is 10 us, upper(60) is 10 s, and the last bucket (61) counts
 * everything above 10 s. */
#define QV_MONITOR_LAT_BUCKETS 62
/* Batch-size buckets: le 1, 2, 4, ..., 1024, then +Inf. */
#define QV_MONITOR_BATCH_BUCKETS 12

/* Upper bound of latency bucket i in ns; UINT64_MAX for the last bucket.
 * Any thread. */
uint64_t qv_monitor_lat_upper_ns(int i);
/* Upper bound of batch-size bucket i; UINT32_MAX for the last bucket. Any thread. */
uint32_t qv_monitor_batch_upper(int i);

/* A latency histogram as read by a snapshot. */
struct qv_lat_hist {
    uint64_t buckets[QV_MONITOR_LAT_BUCKETS]; /* per bucket, not cumulative */
    uint64_t sum_ns;                          /* sum of the recorded values */
};

uint64_t qv_lat_hist_count(const struct qv_lat_hist *h); /* Any thread. */
/* The q-quantile (0 <= q <= 1) of h in ms, interpolated linearly inside its
 * bucket (0 as the lower edge of the first bucket; the overflow bucket
 * answers 10 s). 0 when h is empty. Any thread. */
double qv_lat_hist_quantile_ms(const struct qv_lat_hist *h, double q);
/* d = newer - older, bucket by bucket (a window's histogram). Any thread. */
void qv_lat_hist_diff(const struct qv_lat_hist *newer, const struct qv_lat_hist *older,
                      struct qv_lat_hist *d);

/* ---- Monitor ---- */

/* Creates an empty monitor. Returns 0 (allocation failures abort, as for all
 * control-plane allocations). The caller destroys it with qv_monitor_destroy
 * once no thread records into any of its qv_vstats. Any thread. */
int qv_monitor_create(qv_monitor **out);
/* Frees the monitor and every qv_vstats and qv_pairstats it handed out.
 * NULL is a no-op. Any thread, once recording has stopped. */
void qv_monitor_destroy(qv_monitor *m);

/* Returns the stats of (model, version), creating them on first use; never
 * NULL. A version that was forgotten (and is still held) is exported again,
 * its counters intact. The pointer is valid until the version is forgotten
 * while nobody holds it (then its record is freed): a holder that records
 * for the version's whole life uses qv_monitor_hold. Takes the monitor's
 * lock: call it when a version is loaded, not per request. model is copied.
 * Any thread (control plane). */
qv_vstats *qv_monitor_version(qv_monitor *m, const char *model, int64_t version);
/* Like qv_monitor_version, and holds the record: it stays valid (and may
 * record) until the matching qv_monitor_release, forgotten or not. */
qv_vstats *qv_monitor_hold(qv_monitor *m, const char *model, int64_t version);
/* Gives back one hold; a forgotten record is freed with its last hold. NULL
 * is a no-op. Any thread. */
void qv_monitor_release(qv_monitor *m, qv_vstats *s);
/* Number of version records the monitor keeps (exported, or forgotten and
 * still held). Any thread. */
size_t qv_monitor_records(qv_monitor *m);
/* Switches the hot-path recording of every version (present and future) on
 * or off; off exists to measure what the metrics themselves cost
 * (`quiver serve --no-metrics`). Set it before traffic starts. Any thread. */
void qv_monitor_set_recording(qv_monitor *m, bool on);
/* Like qv_monitor_hold but never creates: NULL when unknown. The record is
 * held: it stays valid, even if the version is forgotten meanwhile, until
 * the caller gives it back with qv_monitor_release. Takes the lock. Any
 * thread. */
qv_vstats *qv_monitor_find_hold(qv_monitor *m, const char *model, int64_t version);
/* Marks a version gone: it is no longer exported, listed in Prometheus text
 * or ticked. Its record is freed now if nobody holds it, else with the last
 * qv_monitor_release (held pointers stay valid and may still record).
 * Unknown versions are ignored. Any thread (control plane). */
void qv_monitor_forget(qv_monitor *m, const char *model, int64_t version);
/* Calls fn for every exported (not forgotten) version, sorted by model then
 * version, without holding the monitor's lock (fn may call qv_monitor_forget
 * or qv_monitor_version). QV_ENOMEM. Any thread (control plane). */
int qv_monitor_each(qv_monitor *m, void (*fn)(void *ud, const char *model, int64_t version),
                    void *ud);

/* ---- Server-wide counters ---- */

/* Counts one response the server refused with HTTP status 413 (too large),
 * 429 (overloaded) or 503 (unavailable, shutting down), exported as
 * quiver_http_refusals_total{code="413"|"429"|"503"}; any other status is
 * ignored, so the HTTP layer may call it for every response it sends.
 * Lock-free. Any thread. */
void qv_monitor_count_refusal(qv_monitor *m, int http_status);

/* ---- Hot path: lock-free, Any thread ---- */

/* Records one finished request. Every outcome counts in requests and in its
 * reason. The latency histograms (total, queue, compute) record only outcomes
 * OK, BACKEND and TIMEOUT: bad input and overload are refused before
 * inference and their near-zero times would hide the version's real latency.
 * A queue_ns or compute_ns of 0 means the phase did not happen (e.g. a timeout
 * in the queue) and is not recorded. Any thread. */
void qv_vstats_request(qv_vstats *s, enum qv_outcome o, uint64_t queue_ns, uint64_t compute_ns,
                       uint64_t total_ns);
/* Records one inference batch of batch_size rows (the rows of every request
 * merged into it) that used cpu_ns of CPU time. Any thread. */
void qv_vstats_batch(qv_vstats *s, uint32_t batch_size, uint64_t cpu_ns);
/* Counts one request run by the backend, inline (on the thread that parsed
 * it) or queued (by a worker). Any thread. */
void qv_vstats_execution(qv_vstats *s, bool inline_path);
/* Counts one shadow copy dropped because the background lane was behind.
 * Any thread. */
void qv_vstats_shadow_dropped(qv_vstats *s);
/* Adds delta (+1 when a request starts, -1 when it ends) to the in-flight
 * gauge. Any thread. */
void qv_vstats_inflight(qv_vstats *s, int delta);
/* Sets the queue-depth gauge (requests waiting). Any thread. */
void qv_vstats_queue_depth(qv_vstats *s, int64_t depth);
/* Sets the memory gauge (bytes held by the loaded version). Any thread. */
void qv_vstats_memory(qv_vstats *s, uint64_t bytes);
/* Records one online feedback reward (e.g. 1 right, 0 wrong). Any thread. */
void qv_vstats_feedback(qv_vstats *s, double reward);
/* Adds feedback kept from an earlier run (count rewards summing to reward_sum). */
void qv_vstats_feedback_restore(qv_vstats *s, uint64_t count, double reward_sum);
/* Sets the route weight in force for this version (exported from then on).
 * Any thread. */
void qv_vstats_route_weight(qv_vstats *s, double weight);

/* ---- Snapshots and windows ---- */

/* Everything a qv_vstats counts, merged, at one moment. Plain data: copy it,
 * keep it in a ring, diff two of them. A zeroed snapshot means "at creation". */
struct qv_vstats_snap {
    uint64_t t_ns;       /* qv_now_ns() when taken; 0 in a zeroed snapshot */
    uint64_t created_ns; /* qv_now_ns() when the qv_vstats was created */
    uint64_t outcomes[QV_OUTCOME_COUNT];
    struct qv_lat_hist total, queue, compute;
    uint64_t batch_buckets[QV_MONITOR_BATCH_BUCKETS];
    uint64_t batch_items;  /* rows run in batches (sum of batch sizes) */
    uint64_t cpu_ns;       /* inference CPU time */
    uint64_t exec_inline, exec_queued; /* requests run inline / by a worker */
    uint64_t shadow_dropped; /* shadow copies the background lane dropped */
    int64_t inflight;      /* gauge */
    int64_t queue_depth;   /* gauge */
    uint64_t memory_bytes; /* gauge */
    uint64_t feedback_count;
    double feedback_reward_sum;
};

/* Fills out with the current merged counters. Lock-free; counters are read
 * one by one, so a snapshot taken while requests record may be mid-request
 * (each counter on its own is exact and never goes back). Any thread. */
void qv_vstats_snapshot(const qv_vstats *s, struct qv_vstats_snap *out);
/* Fills w with the figures between older and newer (newer taken later).
 * older may be zeroed for "since start"; w->seconds then runs from creation.
 * errors = BACKEND + OVERLOAD + TIMEOUT; latency figures come from the total
 * histogram; cpu_ms_per_req divides CPU time by the requests run in batches.
 * Any thread. */
void qv_vstats_window(const struct qv_vstats_snap *newer, const struct qv_vstats_snap *older,
                      struct qv_window *w);

/* Takes a snapshot of every exported version into its ring (one per second
 * kept for 64 s; one per 10 s kept for about 10 min). The server calls it
 * every second from one background thread. Any thread (control plane). */
void qv_monitor_tick(qv_monitor *m);
/* qv_monitor_tick with the time given, for tests and replays; now_ns must not
 * go back from one call to the next. */
void qv_monitor_tick_at(qv_monitor *m, uint64_t now_ns);
/* Fills w with the window ending at the last tick and starting at the newest
 * ring snapshot at least `seconds` older (or the oldest one kept, so
 * w->seconds may come out shorter, or 0 before the first tick). "At least"
 * allows 100 ms of slack, so a tick that came a little early still counts.
 * Returns 0, or QV_ENOENT (w zeroed) when the version is unknown. Any thread. */
int qv_monitor_window(qv_monitor *m, const char *model, int64_t version, double seconds,
                      struct qv_window *w);

/* ---- Per-model extras ---- */

/* Sets the route weight in force for (model, version), creating its stats if
 * needed. Any thread (control plane). */
void qv_monitor_route_weight(qv_monitor *m, const char *model, int64_t version, double weight);

/* Returns the stats of the shadow/compare pair (model, primary, other),
 * creating them on first use; never NULL, valid until qv_monitor_destroy.
 * Takes the lock. Any thread (control plane). */
qv_pairstats *qv_monitor_pair(qv_monitor *m, const char *model, int64_t primary, int64_t other);
/* Records one comparison of primary's answer with other's: whether they
 * agree, the mean and max absolute difference of their outputs, and each
 * side's compute time. Lock-free. Any thread. */
void qv_pairstats_record(qv_pairstats *p, bool agree, double abs_diff_mean, double abs_diff_max,
                         uint64_t primary_ns, uint64_t other_ns);
/* qv_monitor_pair + qv_pairstats_record in one call. Any thread. */
void qv_monitor_agreement(qv_monitor *m, const char *model, int64_t primary, int64_t other,
                          bool agree, double abs_diff_mean, double abs_diff_max,
                          uint64_t primary_ns, uint64_t other_ns);

/* Aggregates of one version pair. */
struct qv_pair_summary {
    int64_t primary, other;
    uint64_t count;         /* comparisons */
    uint64_t agreements;    /* comparisons that agreed */
    double agreement_rate;  /* agreements / count, 0 when no comparisons */
    double abs_diff_mean;   /* mean over comparisons of their mean absolute difference */
    double abs_diff_max;    /* largest absolute difference seen */
    double primary_ms_mean; /* mean compute time of each side */
    double other_ms_mean;
};

/* Fills out with the pair's aggregates. Returns 0, or QV_ENOENT (out zeroed)
 * when the pair was never recorded. Any thread. */
int qv_monitor_agreement_get(qv_monitor *m, const char *model, int64_t primary, int64_t other,
                             struct qv_pair_summary *out);
/* Fills up to cap pairs of model (ordered by primary, then other) and returns
 * how many pairs the model has (may exceed cap). Any thread. */
size_t qv_monitor_agreements(qv_monitor *m, const char *model, struct qv_pair_summary *out,
                             size_t cap);

/* Records one online feedback reward for (model, version). Does not create:
 * feedback names come from clients, so an unknown version returns QV_ENOENT
 * and no series is made. Returns 0 otherwise. Any thread. */
int qv_monitor_feedback(qv_monitor *m, const char *model, int64_t version, double reward);
/* Feedback count and reward sum of (model, version) (online accuracy is
 * sum / count). Returns 0, or QV_ENOENT (zeros) when unknown. Any thread. */
int qv_monitor_feedback_get(qv_monitor *m, const char *model, int64_t version, uint64_t *count,
                            double *reward_sum);

/* ---- JSON-friendly stats ---- */

/* Everything the API shows about one version; plain numbers for a JSON
 * encoder. */
struct qv_vstats_summary {
    uint64_t outcomes[QV_OUTCOME_COUNT]; /* finished requests by outcome (index = qv_outcome) */
    struct qv_window all;                /* since creation (live) */
    struct qv_window last; /* the last `seconds` from the tick ring (see qv_monitor_window) */
    int64_t inflight;
    int64_t queue_depth;
    uint64_t memory_bytes;
    bool has_route_weight;
    double route_weight;
    uint64_t feedback_count;
    double feedback_reward_sum;
    double online_accuracy; /* reward sum / count, 0 when no feedback */
};

/* Fills out for (model, version), with `last` over `seconds`. Returns 0, or
 * QV_ENOENT (out zeroed) when unknown. Any thread. */
int qv_monitor_summary(qv_monitor *m, const char *model, int64_t version, double seconds,
                       struct qv_vstats_summary *out);

/* ---- Prometheus text ---- */

/* Appends the Prometheus text exposition (version 0.0.4) of every exported
 * version and pair to out. Server-level lines (quiver_up, process RSS) are
 * appended by the caller afterwards, each family with its HELP and TYPE.
 * Returns 0, QV_ENOMEM or QV_E2BIG (out's limit); out may then hold a partial
 * text. Any thread (HTTP thread for GET /metrics). */
int qv_monitor_render_prometheus(qv_monitor *m, struct qv_buf *out);
/* Appends s to out escaped as a label value (\\, \" and \n). Returns 0 or a
 * qv_buf error. For callers adding their own series. Any thread. */
int qv_monitor_escape_label(struct qv_buf *out, const char *s);

#endif /* QV_MONITOR_H */
