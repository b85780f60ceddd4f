/* SPDX-License-Identifier: MIT
 *
 * Monitoring and control endpoints: per-model and per-version statistics in
 * Triton's statistics extension format (/stats) and quiver's own richer ones
 * (/quiver-stats: windows, the composite score and route weights), the metric history from the store, alert rules and their
 * state, and the rollout controller (start, status, abort). The numbers come
 * from the monitor, the router and the store; the decisions from control/.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int put_json(struct qv_http_req *r, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    int err;

    json_decref(root);
    if (text == NULL)
        return qv_fail(&r->diag, QV_ENOMEM, "out of memory encoding the response");
    err = qv_buf_append(&r->resp, text, strlen(text));
    free(text);
    return err;
}

static int put_text(struct qv_http_req *r, char *text)
{
    int err;

    /* The controller made the change but could not encode its echo (out of
     * memory): the answer has no body. */
    if (text == NULL)
        return QV_OK;
    err = qv_buf_append(&r->resp, text, strlen(text));

    free(text);
    return err;
}

static json_t *vstr(int64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

/* ---- Stats ---- */

static json_t *window_json(const struct qv_window *w)
{
    json_t *o = json_object();

    json_object_set_new(o, "seconds", json_real(w->seconds));
    json_object_set_new(o, "requests", json_integer((json_int_t)w->requests));
    json_object_set_new(o, "ok", json_integer((json_int_t)w->ok));
    json_object_set_new(o, "errors", json_integer((json_int_t)w->errors));
    json_object_set_new(o, "bad_input", json_integer((json_int_t)w->bad_input));
    json_object_set_new(o, "error_rate", json_real(w->error_rate));
    json_object_set_new(o, "mean_ms", json_real(w->mean_ms));
    json_object_set_new(o, "p50_ms", json_real(w->p50_ms));
    json_object_set_new(o, "p95_ms", json_real(w->p95_ms));
    json_object_set_new(o, "p99_ms", json_real(w->p99_ms));
    json_object_set_new(o, "cpu_ms_per_req", json_real(w->cpu_ms_per_req));
    json_object_set_new(o, "batches", json_integer((json_int_t)w->batches));
    json_object_set_new(o, "mean_batch_size", json_real(w->mean_batch_size));
    return o;
}

static json_t *version_stats(struct qv_http_req *r, const char *model,
                             const struct qv_version_info *vi, double window_s, double weight,
                             const struct qv_score_terms *terms, int n_terms)
{
    struct qv_vstats_summary s;
    json_t *o = json_object(), *counts = json_object(), *acc = json_object(), *score = NULL;
    uint64_t budget = qv_engine_memory_budget(r->deps->engine), total = 0;

    qv_monitor_summary(r->deps->monitor, model, vi->version, window_s, &s);
    json_object_set_new(o, "version", vstr(vi->version));
    json_object_set_new(o, "state", json_string(qv_version_state_name(vi->state)));
    for (int k = 0; k < QV_OUTCOME_COUNT; k++) {
        json_object_set_new(counts, qv_outcome_name((enum qv_outcome)k),
                            json_integer((json_int_t)s.outcomes[k]));
        total += s.outcomes[k];
    }
    json_object_set_new(counts, "requests", json_integer((json_int_t)total));
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "error_rate", json_real(s.all.error_rate));
    json_object_set_new(o, "last", window_json(&s.last));
    json_object_set_new(o, "since_start", window_json(&s.all));
    json_object_set_new(o, "memory_bytes", json_integer((json_int_t)s.memory_bytes));
    json_object_set_new(o, "memory_share",
                        json_real(budget ? (double)s.memory_bytes / (double)budget : 0));
    json_object_set_new(o, "cpu_ms_per_req", json_real(s.all.cpu_ms_per_req));
    json_object_set_new(o, "inflight", json_integer(s.inflight));
    json_object_set_new(o, "queue_depth", json_integer(s.queue_depth));
    json_object_set_new(o, "route_weight", json_real(weight / 100.0));
    json_object_set_new(acc, "feedback", json_integer((json_int_t)s.feedback_count));
    json_object_set_new(acc, "accuracy",
                        s.feedback_count ? json_real(s.online_accuracy) : json_null());
    json_object_set_new(o, "online_accuracy", acc);
    for (int k = 0; k < n_terms; k++) {
        if (terms[k].version != vi->version)
            continue;
        score = json_object();
        json_object_set_new(score, "p", json_real(terms[k].p));
        json_object_set_new(score, "latency_term", json_real(terms[k].t));
        json_object_set_new(score, "resource_term", json_real(terms[k].r));
        json_object_set_new(score, "error_term", json_real(terms[k].e));
        json_object_set_new(score, "requests", json_integer((json_int_t)terms[k].requests));
    }
    json_object_set_new(o, "score", score ? score : json_null());
    return o;
}

/* GET /v2/models/{m}/quiver-stats and /v2/models/{m}/versions/{v}/quiver-stats [?window=S] */
int qv__on_model_stats(struct qv_http_req *r)
{
    const char *model = r->params[0];
    const char *wq = r->query ? r->query(r, "window") : NULL;
    struct qv_model_info mi;
    struct qv_score_terms terms[QV_MAX_VERSIONS];
    struct qv_pair_summary pairs[32];
    int64_t only = 0, vers[QV_MAX_VERSIONS];
    double weights[QV_MAX_VERSIONS], window_s = 60;
    json_t *root, *arr, *agr;
    int n_terms, nv = 0;
    size_t n_pairs;
    bool found = false;

    if (r->n_params > 1) {
        only = qv__api_param_version(r, 1);
        if (only <= 0)
            return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                           r->params[1]);
    }
    if (wq != NULL) {
        char *end;
        window_s = strtod(wq, &end);
        if (*end != '\0' || !(window_s >= 1 && window_s <= 600))
            return qv_fail(&r->diag, QV_EINVAL,
                           "window: expected seconds from 1 to 600, got "
                           "\"%s\"",
                           wq);
    }
    if (qv_engine_model_info(r->deps->engine, model, &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", model);
    n_terms = qv_router_get_scores(r->deps->router, model, terms, QV_MAX_VERSIONS);
    for (int i = 0; i < mi.n_versions && nv < QV_MAX_VERSIONS; i++)
        vers[nv++] = mi.versions[i].version;
    for (int i = 0; i < nv; i++)
        weights[i] = 0;
    if (r->deps->control != NULL) {
        /* Weights among READY versions, as the router picks. */
        int64_t ready[QV_MAX_VERSIONS];
        double rw[QV_MAX_VERSIONS];
        int k = qv_engine_ready_versions(r->deps->engine, model, ready, QV_MAX_VERSIONS);
        qv_control_route_weights(r->deps->control, model, ready, k, rw);
        for (int i = 0; i < nv; i++)
            for (int j = 0; j < k; j++)
                if (vers[i] == ready[j])
                    weights[i] = rw[j];
    }
    root = json_object();
    arr = json_array();
    json_object_set_new(root, "model", json_string(mi.name));
    json_object_set_new(root, "window_s", json_real(window_s));
    for (int i = 0; i < mi.n_versions && i < nv; i++) {
        if (only && mi.versions[i].version != only)
            continue;
        found = true;
        json_array_append_new(
            arr, version_stats(r, model, &mi.versions[i], window_s, weights[i], terms, n_terms));
    }
    qv_model_info_free(&mi);
    if (only && !found) {
        json_decref(root);
        json_decref(arr);
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %lld", model, (long long)only);
    }
    json_object_set_new(root, "versions", arr);
    agr = json_array();
    n_pairs = qv_monitor_agreements(r->deps->monitor, model, pairs, QV_ARRAY_LEN(pairs));
    for (size_t i = 0; i < n_pairs && i < QV_ARRAY_LEN(pairs); i++) {
        json_t *p;
        if (only && pairs[i].primary != only && pairs[i].other != only)
            continue;
        p = json_object();
        json_object_set_new(p, "primary", vstr(pairs[i].primary));
        json_object_set_new(p, "other", vstr(pairs[i].other));
        json_object_set_new(p, "count", json_integer((json_int_t)pairs[i].count));
        json_object_set_new(p, "agreement_rate", json_real(pairs[i].agreement_rate));
        json_object_set_new(p, "abs_diff_mean", json_real(pairs[i].abs_diff_mean));
        json_object_set_new(p, "abs_diff_max", json_real(pairs[i].abs_diff_max));
        json_array_append_new(agr, p);
    }
    json_object_set_new(root, "agreement", agr);
    return put_json(r, root);
}

/* ---- History ---- */

/* GET /v2/models/{m}/history?since=<ms|ISO 8601>&version=N&limit=N */
int qv__on_model_history(struct qv_http_req *r)
{
    const char *since = r->query ? r->query(r, "since") : NULL;
    const char *ver = r->query ? r->query(r, "version") : NULL;
    const char *limit = r->query ? r->query(r, "limit") : NULL;
    struct qv_history_query q;
    struct qv_history_row *rows = NULL;
    struct qv_model_info mi;
    json_t *root, *arr;
    size_t n = 0;
    int err;

    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    qv_model_info_free(&mi);
    if (r->deps->store == NULL)
        return qv_fail(&r->diag, QV_ENOENT, "no store configured: no history");
    memset(&q, 0, sizeof(q));
    q.model = r->params[0];
    q.version = QV_STORE_ANY_VERSION;
    q.limit = 10000;
    if (since != NULL && qv_time_parse(since, &q.since_ms) != 0)
        return qv_fail(&r->diag, QV_EINVAL,
                       "since: expected milliseconds since the epoch or an "
                       "ISO 8601 time such as 2026-11-27T13:00:00Z, got \"%.64s\"",
                       since);
    if (ver != NULL) {
        q.version = qv_repo_parse_version(ver);
        if (q.version <= 0)
            return qv_fail(&r->diag, QV_EINVAL, "version: \"%.32s\" is not a version number", ver);
    }
    if (limit != NULL) {
        char *end;
        unsigned long long x = strtoull(limit, &end, 10);
        if (*end != '\0' || x < 1 || x > 1000000)
            return qv_fail(&r->diag, QV_EINVAL, "limit: expected 1 to 1000000, got \"%.32s\"",
                           limit);
        q.limit = (size_t)x;
    }
    err = qv_store_history_query(r->deps->store, &q, &rows, &n, &r->diag);
    if (err)
        return err;
    root = json_object();
    arr = json_array();
    json_object_set_new(root, "model", json_string(r->params[0]));
    if (r->deps->control)
        json_object_set_new(root, "interval_s",
                            json_real(qv_control_history_interval(r->deps->control)));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        char ts[32];
        qv_iso8601(rows[i].ts_ms, ts);
        json_object_set_new(o, "version", vstr(rows[i].version));
        json_object_set_new(o, "ts", json_string(ts));
        json_object_set_new(o, "ts_ms", json_integer((json_int_t)rows[i].ts_ms));
        json_object_set_new(o, "requests", json_integer((json_int_t)rows[i].requests));
        json_object_set_new(o, "errors", json_integer((json_int_t)rows[i].errors));
        json_object_set_new(
            o, "error_rate",
            json_real(rows[i].requests ? (double)rows[i].errors / (double)rows[i].requests : 0));
        json_object_set_new(o, "p50_ms", json_real(rows[i].p50_ms));
        json_object_set_new(o, "p95_ms", json_real(rows[i].p95_ms));
        json_object_set_new(o, "p99_ms", json_real(rows[i].p99_ms));
        json_object_set_new(o, "mean_ms", json_real(rows[i].mean_ms));
        json_object_set_new(o, "cpu_ms_per_req", json_real(rows[i].cpu_ms_per_req));
        json_object_set_new(o, "memory_bytes", json_integer((json_int_t)rows[i].memory_bytes));
        json_object_set_new(o, "queue_depth", json_integer((json_int_t)rows[i].queue_depth));
        json_object_set_new(o, "weight", json_real(rows[i].weight));
        json_array_append_new(arr, o);
    }
    free(rows);
    json_object_set_new(root, "rows", arr);
    return put_json(r, root);
}

/* ---- Alerts and rollouts ---- */

static int need_control(struct qv_http_req *r)
{
    if (r->deps->control == NULL)
        return qv_fail(&r->diag, QV_ENOTSUP, "the controller is not running");
    return QV_OK;
}

/* GET /v2/models/{m}/alerts */
int qv__on_model_alerts(struct qv_http_req *r)
{
    char *json = NULL;
    int err = need_control(r);

    err = err ? err : qv_control_alerts_json(r->deps->control, r->params[0], &json, &r->diag);
    return err ? err : put_text(r, json);
}

/* GET /v2/models/{m}/rollout */
int qv__on_rollout_get(struct qv_http_req *r)
{
    char *json = NULL;
    int err = need_control(r);

    err = err ? err : qv_control_rollout_status(r->deps->control, r->params[0], &json, &r->diag);
    return err ? err : put_text(r, json);
}

/* POST /v2/models/{m}/rollout: the plan; 201 with the status. The controller
 * records the audit events (who "controller", the token name in the reason). */
int qv__on_rollout_post(struct qv_http_req *r)
{
    char *json = NULL, *body;
    int err = need_control(r);

    if (err)
        return err;
    body = malloc(r->body_len + 1);
    if (body == NULL)
        return qv_fail(&r->diag, QV_ENOMEM, "cannot copy the request body");
    memcpy(body, r->body ? r->body : "", r->body_len);
    body[r->body_len] = '\0';
    err = qv_control_rollout_start(r->deps->control, r->params[0], body, r->who, &json, &r->diag);
    free(body);
    if (err)
        return err;
    /* The rollout runs: it is answered 201 even when the status cannot be
     * echoed (then the body is empty). */
    r->status = 201;
    if (put_text(r, json) != QV_OK)
        r->resp.len = 0;
    return QV_OK;
}

/* DELETE /v2/models/{m}/rollout: abort; traffic stays on stable. */
int qv__on_rollout_delete(struct qv_http_req *r)
{
    char *json = NULL;
    int err = need_control(r);

    err = err ? err
              : qv_control_rollout_abort(r->deps->control, r->params[0], r->who, &json, &r->diag);
    if (err)
        return err;
    /* Aborted: answered 200 even when the status cannot be echoed. */
    if (put_text(r, json) != QV_OK)
        r->resp.len = 0;
    return QV_OK;
}

/* ---- Triton's statistics extension ---- */

static json_t *dur(uint64_t count, uint64_t ns)
{
    json_t *o = json_object();

    json_object_set_new(o, "count", json_integer((json_int_t)count));
    json_object_set_new(o, "ns", json_integer((json_int_t)ns));
    return o;
}

/* One entry of "model_stats" in Triton's statistics.md shape. quiver does
 * not time input and output conversion apart from the inference itself, so
 * compute_input and compute_output carry counts with 0 ns; batch sizes are
 * the monitor's power-of-two buckets (each batch_size is an upper bound). */
static json_t *triton_version_stats(struct qv_http_req *r, const char *model, int64_t version)
{
    qv_vstats *vs = qv_monitor_find_hold(r->deps->monitor, model, version);
    struct qv_vstats_snap sn;
    json_t *o = json_object(), *is = json_object(), *bs = json_array();
    uint64_t fail = 0, batches = 0, ok, infer_n;
    char vbuf[24];

    memset(&sn, 0, sizeof(sn));
    if (vs != NULL)
        qv_vstats_snapshot(vs, &sn);
    qv_monitor_release(r->deps->monitor, vs);
    for (int k = 0; k < QV_OUTCOME_COUNT; k++)
        if (k != QV_OUTCOME_OK)
            fail += sn.outcomes[k];
    for (int i = 0; i < QV_MONITOR_BATCH_BUCKETS; i++)
        batches += sn.batch_buckets[i];
    ok = sn.outcomes[QV_OUTCOME_OK];
    infer_n = qv_lat_hist_count(&sn.compute);
    snprintf(vbuf, sizeof(vbuf), "%lld", (long long)version);
    json_object_set_new(o, "name", json_string(model));
    json_object_set_new(o, "version", json_string(vbuf));
    json_object_set_new(o, "last_inference", json_integer(0));
    json_object_set_new(o, "inference_count", json_integer((json_int_t)sn.batch_items));
    json_object_set_new(o, "execution_count", json_integer((json_int_t)batches));
    json_object_set_new(is, "success", dur(ok, sn.total.sum_ns));
    json_object_set_new(is, "fail", dur(fail, 0));
    json_object_set_new(is, "queue", dur(qv_lat_hist_count(&sn.queue), sn.queue.sum_ns));
    json_object_set_new(is, "compute_input", dur(infer_n, 0));
    json_object_set_new(is, "compute_infer", dur(infer_n, sn.compute.sum_ns));
    json_object_set_new(is, "compute_output", dur(infer_n, 0));
    json_object_set_new(is, "cache_hit", dur(0, 0));
    json_object_set_new(is, "cache_miss", dur(0, 0));
    json_object_set_new(o, "inference_stats", is);
    for (int i = 0; i < QV_MONITOR_BATCH_BUCKETS - 1; i++) {
        json_t *b;
        if (sn.batch_buckets[i] == 0)
            continue;
        b = json_object();
        json_object_set_new(b, "batch_size", json_integer((json_int_t)1 << i));
        json_object_set_new(b, "compute_input", dur(sn.batch_buckets[i], 0));
        json_object_set_new(b, "compute_infer", dur(sn.batch_buckets[i], 0));
        json_object_set_new(b, "compute_output", dur(sn.batch_buckets[i], 0));
        json_array_append_new(bs, b);
    }
    json_object_set_new(o, "batch_stats", bs);
    return o;
}

static void triton_model_stats(struct qv_http_req *r, const struct qv_model_info *mi,
                               int64_t only, json_t *arr)
{
    for (int i = 0; i < mi->n_versions; i++)
        if (!only || mi->versions[i].version == only)
            json_array_append_new(arr, triton_version_stats(r, mi->name,
                                                            mi->versions[i].version));
}

/* GET /v2/models/stats, /v2/models/{m}/stats, /v2/models/{m}/versions/{v}/stats */
int qv__on_triton_stats(struct qv_http_req *r)
{
    struct qv_model_info mi;
    json_t *root = json_object(), *arr = json_array();
    int64_t only = 0;

    json_object_set_new(root, "model_stats", arr);
    if (r->n_params == 0) {
        char (*names)[QV_MODEL_NAME_MAX] = NULL;
        int n = 0;
        qv_engine_model_names(r->deps->engine, &names, &n);
        for (int i = 0; i < n; i++) {
            if (qv_engine_model_info(r->deps->engine, names[i], &mi) != QV_OK)
                continue;
            triton_model_stats(r, &mi, 0, arr);
            qv_model_info_free(&mi);
        }
        free(names);
        return put_json(r, root);
    }
    if (r->n_params > 1) {
        only = qv__api_param_version(r, 1);
        if (only <= 0) {
            json_decref(root);
            return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                           r->params[1]);
        }
    }
    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK) {
        json_decref(root);
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    }
    triton_model_stats(r, &mi, only, arr);
    qv_model_info_free(&mi);
    if (only && json_array_size(arr) == 0) {
        json_decref(root);
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %lld", r->params[0],
                       (long long)only);
    }
    return put_json(r, root);
}
