/* SPDX-License-Identifier: MIT
 *
 * The history sampler: every interval it writes one row per READY version
 * (the figures since the previous sample, from the difference of two
 * snapshots of the version's counters) into the store, and once in a while
 * prunes the rows older than the retention. A store failure is logged; the
 * snapshot is kept, so the next sample covers the lost interval too.
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qv__hist_prev {
    char model[QV_MODEL_NAME_MAX];
    int64_t version;
    struct qv_vstats_snap snap;
};

void qv__history_free(qv_control *c)
{
    free(c->hist);
    c->hist = NULL;
    c->n_hist = 0;
}

double qv_control_history_interval(const qv_control *c)
{
    return c->opt.history_interval_s;
}

static struct qv__hist_prev *prev_of(qv_control *c, const char *model, int64_t v)
{
    for (int i = 0; i < c->n_hist; i++)
        if (c->hist[i].version == v && strcmp(c->hist[i].model, model) == 0)
            return &c->hist[i];
    c->hist = qv_xrealloc(c->hist, (size_t)(c->n_hist + 1) * sizeof(*c->hist));
    memset(&c->hist[c->n_hist], 0, sizeof(c->hist[0]));
    snprintf(c->hist[c->n_hist].model, sizeof(c->hist[0].model), "%s", model);
    c->hist[c->n_hist].version = v;
    return &c->hist[c->n_hist++];
}

static void sample(qv_control *c, uint64_t now_ms)
{
    char(*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0;

    qv_engine_model_names(c->engine, &names, &n);
    for (int i = 0; i < n; i++) {
        int64_t ready[QV_MAX_VERSIONS];
        struct qv_history_row rows[QV_MAX_VERSIONS];
        struct qv_vstats_snap now[QV_MAX_VERSIONS];
        double weights[QV_MAX_VERSIONS];
        struct qv_diag d = {{0}};
        int k = qv_engine_ready_versions(c->engine, names[i], ready, QV_MAX_VERSIONS), m = 0;

        if (k <= 0)
            continue;
        qv_control_route_weights(c, names[i], ready, k, weights);
        for (int j = 0; j < k; j++) {
            qv_vstats *s = qv_monitor_find_hold(c->monitor, names[i], ready[j]);
            struct qv__hist_prev *p;
            struct qv_window w;
            if (s == NULL)
                continue;
            p = prev_of(c, names[i], ready[j]);
            qv_vstats_snapshot(s, &now[m]);
            qv_monitor_release(c->monitor, s);
            qv_vstats_window(&now[m], &p->snap, &w);
            memset(&rows[m], 0, sizeof(rows[m]));
            rows[m].version = ready[j];
            rows[m].ts_ms = now_ms;
            rows[m].requests = w.requests;
            rows[m].errors = w.errors;
            rows[m].p50_ms = w.p50_ms;
            rows[m].p95_ms = w.p95_ms;
            rows[m].p99_ms = w.p99_ms;
            rows[m].mean_ms = w.mean_ms;
            rows[m].cpu_ms_per_req = w.cpu_ms_per_req;
            rows[m].memory_bytes = w.memory_bytes;
            rows[m].queue_depth = now[m].queue_depth > 0 ? (uint64_t)now[m].queue_depth : 0;
            rows[m].weight = weights[j] / 100.0;
            m++;
        }
        if (m == 0)
            continue;
        if (qv_store_history_add(c->store, names[i], rows, (size_t)m, &d) != QV_OK) {
            qv_log(QV_LOG_WARN,
                   "model=%s msg=\"history not stored; next sample covers it\" "
                   "reason=\"%s\"",
                   names[i], d.msg);
            continue;
        }
        for (int j = 0; j < m; j++)
            prev_of(c, names[i], rows[j].version)->snap = now[j];
    }
    free(names);
}

void qv__history_tick(qv_control *c)
{
    uint64_t now = qv__control_now_ms(c);
    struct qv_diag d = {{0}};
    uint64_t deleted = 0;

    if (c->store == NULL)
        return;
    if (c->next_sample_ms == 0)
        c->next_sample_ms = now + (uint64_t)(c->opt.history_interval_s * 1000.0);
    if (now >= c->next_sample_ms) {
        sample(c, now);
        c->next_sample_ms += (uint64_t)(c->opt.history_interval_s * 1000.0);
        if (c->next_sample_ms <= now) /* fell behind (a stall): no burst of samples */
            c->next_sample_ms = now + (uint64_t)(c->opt.history_interval_s * 1000.0);
    }
    if (now >= c->next_prune_ms) {
        uint64_t keep = (uint64_t)(c->opt.history_retention_s * 1000.0);
        if (now > keep && qv_store_history_prune(c->store, now - keep, &deleted, &d) != QV_OK)
            qv_log(QV_LOG_WARN, "msg=\"history not pruned\" reason=\"%s\"", d.msg);
        else if (deleted > 0)
            qv_log(QV_LOG_INFO, "rows=%llu msg=\"history pruned\"", (unsigned long long)deleted);
        c->next_prune_ms = now + 60000;
    }
}
