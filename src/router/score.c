/* SPDX-License-Identifier: MIT
 *
 * router/score.c -- the score policy's arithmetic, and nothing else.
 *
 *   P_i = w1*T_i + w2*R_i + w3*E_i          (lower is better)
 *   T_i = p95_ms_i / latency_slo_ms
 *   R_i = n * (cpu_share_i + mem_share_i) / 2, shares of the sums over the n versions
 *   E_i = error_rate_i
 *
 * Target weights are proportional to 1/P, floored at min_weight. Weights move only
 * when every version has enough requests and some target is more than 'threshold'
 * points away, and then only 'step' of the way (hysteresis and damping, so that
 * noise in one window does not shake traffic around).
 */
#include <math.h>
#include <string.h>

#include "router_int.h"

#define P_FLOOR 1e-6 /* a perfect version must not get an infinite weight */

void qv_score_compute(const struct qv_score_cfg *c, const struct qv_window *w, int n,
                      struct qv_score_terms *terms)
{
    double cpu_sum = 0, mem_sum = 0;

    for (int i = 0; i < n; i++) {
        cpu_sum += w[i].cpu_ms_per_req > 0 ? w[i].cpu_ms_per_req : 0;
        mem_sum += (double)w[i].memory_bytes;
    }
    for (int i = 0; i < n; i++) {
        struct qv_score_terms *t = &terms[i];
        double cpu_share =
            cpu_sum > 0 ? (w[i].cpu_ms_per_req > 0 ? w[i].cpu_ms_per_req : 0) / cpu_sum : 1.0 / n;
        double mem_share = mem_sum > 0 ? (double)w[i].memory_bytes / mem_sum : 1.0 / n;

        t->requests = w[i].requests;
        t->t = w[i].p95_ms > 0 ? w[i].p95_ms / c->latency_slo_ms : 0;
        t->r = n * (cpu_share + mem_share) / 2.0;
        t->e = w[i].error_rate > 0 ? w[i].error_rate : 0;
        t->p = c->w_latency * t->t + c->w_resource * t->r + c->w_error * t->e;
    }
}

/* Weights proportional to 1/P summing to 100, none below min_weight: versions under
 * the floor are pinned to it and the rest is shared again among the others. */
static void target_weights(const struct qv_score_cfg *c, const struct qv_score_terms *t, int n,
                           double *out)
{
    bool pinned[QV_ROUTE_MAX_TARGETS] = {false};
    double floor_w = c->min_weight * n <= 100.0 ? c->min_weight : 100.0 / n;

    for (int round = 0; round <= n; round++) {
        double inv_sum = 0, left = 100.0;
        bool changed = false;

        for (int i = 0; i < n; i++) {
            if (pinned[i])
                left -= floor_w;
            else
                inv_sum += 1.0 / fmax(t[i].p, P_FLOOR);
        }
        for (int i = 0; i < n; i++)
            out[i] = pinned[i] ? floor_w : left * (1.0 / fmax(t[i].p, P_FLOOR)) / inv_sum;
        for (int i = 0; i < n; i++)
            if (!pinned[i] && out[i] < floor_w) {
                pinned[i] = true;
                changed = true;
            }
        if (!changed)
            break;
    }
}

/* A version that starts below the floor (say at 0) reaches it in one update; the
 * points come from the versions above the floor, in proportion to their excess. */
static void enforce_floor(const struct qv_score_cfg *c, double *w, int n)
{
    double floor_w = c->min_weight * n <= 100.0 ? c->min_weight : 100.0 / n;
    double deficit = 0, excess = 0;

    for (int i = 0; i < n; i++) {
        if (w[i] < floor_w)
            deficit += floor_w - w[i];
        else
            excess += w[i] - floor_w;
    }
    if (deficit <= 0 || excess <= 0)
        return;
    for (int i = 0; i < n; i++)
        w[i] = w[i] < floor_w ? floor_w : w[i] - deficit * (w[i] - floor_w) / excess;
}

bool qv_score_next_weights(const struct qv_score_cfg *c, const struct qv_score_terms *t,
                           const double *cur, int n, double *next)
{
    double target[QV_ROUTE_MAX_TARGETS];
    double max_move = 0;

    memcpy(next, cur, sizeof(double) * (size_t)n);
    if (n < 2 || n > QV_ROUTE_MAX_TARGETS)
        return false;
    for (int i = 0; i < n; i++)
        if (t[i].requests < c->min_requests)
            return false;
    target_weights(c, t, n, target);
    for (int i = 0; i < n; i++)
        max_move = fmax(max_move, fabs(target[i] - cur[i]));
    if (max_move <= c->threshold)
        return false;
    for (int i = 0; i < n; i++)
        next[i] = cur[i] + c->step * (target[i] - cur[i]);
    enforce_floor(c, next, n);
    qv__round_weights(next, n);
    return true;
}
