/* SPDX-License-Identifier: MIT
 *
 * Health, metadata and repository endpoints: KServe v2 health and model
 * metadata (with quiver's per-version states), TF Serving's model status,
 * Triton's repository extension (index, load, unload; per version too), and
 * /metrics.
 */
#include "api_int.h"
#include "../control/cluster.h"

#define QV_LOG_MODULE "api"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qv__on_live(struct qv_http_req *r)
{
    return qv_buf_append(&r->resp, "{\"live\":true}", 13);
}

int qv__on_ready(struct qv_http_req *r)
{
    bool ready = !qv__api_shutting_down(r->api);

    r->status = ready ? 200 : 503;
    return ready ? qv_buf_append(&r->resp, "{\"ready\":true}", 14)
                 : qv_buf_append(&r->resp, "{\"ready\":false}", 15);
}

int qv__on_server_meta(struct qv_http_req *r)
{
    const char *node = qv_cluster_node_name(); /* [A-Za-z0-9._-]: no escaping needed */

    return qv_buf_printf(&r->resp,
                         "{\"name\":\"quiver\",\"version\":\"%s\",\"extensions\":[\"model_repository\","
                         "\"statistics\",\"routing\"]%s%s%s}",
                         QV_VERSION, node[0] ? ",\"node\":\"" : "", node, node[0] ? "\"" : "");
}

static int put_desc(struct qv_buf *b, const struct qv_tensor_desc *t)
{
    int err = qv_buf_append(b, "{\"name\":", 8);

    err = err ? err : qv__api_json_string(b, t->name);
    err = err ? err : qv_buf_printf(b, ",\"datatype\":\"%s\",\"shape\":[", qv_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && !err; i++)
        err = qv_buf_printf(b, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    return err ? err : qv_buf_append(b, "]}", 2);
}

static int put_sig(struct qv_buf *b, const struct qv_signature *sig)
{
    int err = qv_buf_append(b, ",\"inputs\":[", 11);

    for (int i = 0; i < sig->n_inputs && !err; i++) {
        err = i ? qv_buf_append(b, ",", 1) : 0;
        err = err ? err : put_desc(b, &sig->inputs[i]);
    }
    err = err ? err : qv_buf_append(b, "],\"outputs\":[", 13);
    for (int i = 0; i < sig->n_outputs && !err; i++) {
        err = i ? qv_buf_append(b, ",", 1) : 0;
        err = err ? err : put_desc(b, &sig->outputs[i]);
    }
    return err ? err : qv_buf_append(b, "]", 1);
}

static int put_version_state(struct qv_buf *b, const struct qv_version_info *vi)
{
    char ts[32] = "";
    int err;

    if (vi->loaded_at_ms)
        qv_iso8601(vi->loaded_at_ms, ts);
    err = qv_buf_printf(b, "{\"version\":\"%lld\",\"state\":\"%s\",\"reason\":",
                        (long long)vi->version, qv_version_state_name(vi->state));
    err = err ? err : qv__api_json_string(b, vi->reason);
    err = err ? err : qv_buf_printf(b, ",\"sha256\":\"%s\",\"loaded_at\":%s%s%s,"
                                    "\"memory_bytes\":%llu,\"queue_depth\":%d,\"inflight\":%d}",
                                    vi->sha256, ts[0] ? "\"" : "", ts[0] ? ts : "null",
                                    ts[0] ? "\"" : "", (unsigned long long)vi->memory_bytes,
                                    vi->queue_depth, vi->inflight);
    return err;
}

static const struct qv_version_info *find_info(const struct qv_model_info *mi, int64_t v)
{
    for (int i = 0; i < mi->n_versions; i++)
        if (mi->versions[i].version == v)
            return &mi->versions[i];
    return NULL;
}

/* GET /v2/models/{m} and /v2/models/{m}/versions/{v}. */
int qv__on_model_meta(struct qv_http_req *r)
{
    struct qv_model_info mi;
    struct qv_signature sig;
    const struct qv_version_info *only = NULL;
    int64_t v = 0;
    int err;

    if (r->n_params > 1) {
        v = qv__api_param_version(r, 1);
        if (v < 0)
            return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                           r->params[1]);
    }
    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    sig = mi.sig;
    if (v > 0) {
        qv_version *ver;
        only = find_info(&mi, v);
        if (only == NULL) {
            qv_model_info_free(&mi);
            return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %lld", r->params[0],
                           (long long)v);
        }
        if (qv_engine_acquire(r->deps->engine, r->params[0], v, &ver, NULL) == QV_OK) {
            sig = *qv_version_signature(ver);
            qv_version_release(ver);
        }
    }
    err = qv_buf_append(&r->resp, "{\"name\":", 8);
    err = err ? err : qv__api_json_string(&r->resp, mi.name);
    err = err ? err : qv_buf_append(&r->resp, ",\"versions\":[", 13);
    for (int i = 0, k = 0; i < mi.n_versions && !err; i++) {
        if (only && mi.versions[i].version != v)
            continue;
        err = qv_buf_printf(&r->resp, "%s\"%lld\"", k++ ? "," : "",
                            (long long)mi.versions[i].version);
    }
    err = err ? err : qv_buf_append(&r->resp, "],\"platform\":", 13);
    err = err ? err : qv__api_json_string(&r->resp, mi.backend);
    err = err ? err : put_sig(&r->resp, &sig);
    err = err ? err : qv_buf_printf(&r->resp, ",\"max_batch_size\":%d", mi.max_batch_size);
    if (mi.problem[0]) {
        err = err ? err : qv_buf_append(&r->resp, ",\"config_error\":", 16);
        err = err ? err : qv__api_json_string(&r->resp, mi.problem);
    }
    err = err ? err : qv_buf_append(&r->resp, ",\"version_states\":[", 19);
    for (int i = 0, k = 0; i < mi.n_versions && !err; i++) {
        if (only && mi.versions[i].version != v)
            continue;
        err = k++ ? qv_buf_append(&r->resp, ",", 1) : 0;
        err = err ? err : put_version_state(&r->resp, &mi.versions[i]);
    }
    err = err ? err : qv_buf_append(&r->resp, "]}", 2);
    qv_model_info_free(&mi);
    return err;
}

/* GET /v2/models/{m}[/versions/{v}]/ready: 200 when READY, else 503 (KServe
 * says the body carries {"ready": bool}). */
int qv__on_model_ready(struct qv_http_req *r)
{
    int64_t v = 0;
    qv_version *ver = NULL;
    int err;

    if (r->n_params > 1) {
        v = qv__api_param_version(r, 1);
        if (v < 0)
            return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                           r->params[1]);
    }
    err = qv_engine_acquire(r->deps->engine, r->params[0], v, &ver, &r->diag);
    if (err == QV_ENOENT)
        return err;
    qv_version_release(ver);
    r->status = err ? 503 : 200;
    qv_buf_append(&r->resp, "{\"name\":", 8);
    qv__api_json_string(&r->resp, r->params[0]);
    return qv_buf_printf(&r->resp, ",\"ready\":%s}", err ? "false" : "true");
}

static const char *tfs_state(enum qv_version_state st)
{
    switch (st) {
    case QV_STATE_LOADING: return "LOADING";
    case QV_STATE_READY: return "AVAILABLE";
    case QV_STATE_DRAINING: return "UNLOADING";
    default: return "END";
    }
}

/* GET /v1/models/{m}[/versions/{v}]: TF Serving's model status. */
int qv__on_tfs_status(struct qv_http_req *r)
{
    struct qv_model_info mi;
    int64_t v = r->n_params > 1 ? qv__api_param_version(r, 1) : 0;
    int err, k = 0;

    if (v < 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                       r->params[1]);
    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    if (v > 0 && find_info(&mi, v) == NULL) {
        qv_model_info_free(&mi);
        return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %lld", r->params[0],
                       (long long)v);
    }
    err = qv_buf_append(&r->resp, "{\"model_version_status\":[", 25);
    for (int i = mi.n_versions - 1; i >= 0 && !err; i--) {
        const struct qv_version_info *vi = &mi.versions[i];
        bool bad = vi->state == QV_STATE_UNAVAILABLE;
        if (v > 0 && vi->version != v)
            continue;
        err = qv_buf_printf(&r->resp, "%s{\"version\":\"%lld\",\"state\":\"%s\",\"status\":"
                            "{\"error_code\":\"%s\",\"error_message\":",
                            k++ ? "," : "", (long long)vi->version, tfs_state(vi->state),
                            bad ? "UNAVAILABLE" : "OK");
        err = err ? err : qv__api_json_string(&r->resp, bad ? vi->reason : "");
        err = err ? err : qv_buf_append(&r->resp, "}}", 2);
    }
    err = err ? err : qv_buf_append(&r->resp, "]}", 2);
    qv_model_info_free(&mi);
    return err;
}

/* GET|POST /v2/repository/index: every model and version with its state. */
int qv__on_repo_index(struct qv_http_req *r)
{
    char (*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0, err, k = 0;

    qv_engine_model_names(r->deps->engine, &names, &n);
    err = qv_buf_append(&r->resp, "[", 1);
    for (int i = 0; i < n && !err; i++) {
        struct qv_model_info mi;
        if (qv_engine_model_info(r->deps->engine, names[i], &mi) != QV_OK)
            continue;
        for (int j = 0; j < mi.n_versions && !err; j++) {
            const struct qv_version_info *vi = &mi.versions[j];
            err = qv_buf_printf(&r->resp, "%s{\"name\":", k++ ? "," : "");
            err = err ? err : qv__api_json_string(&r->resp, mi.name);
            err = err ? err : qv_buf_printf(&r->resp, ",\"version\":\"%lld\",\"state\":\"%s\","
                                            "\"reason\":", (long long)vi->version,
                                            qv_version_state_name(vi->state));
            err = err ? err : qv__api_json_string(&r->resp, vi->reason);
            err = err ? err : qv_buf_append(&r->resp, "}", 1);
        }
        if (mi.n_versions == 0 && !err) {
            err = qv_buf_printf(&r->resp, "%s{\"name\":", k++ ? "," : "");
            err = err ? err : qv__api_json_string(&r->resp, mi.name);
            err = err ? err : qv_buf_append(&r->resp, ",\"state\":\"UNAVAILABLE\",\"reason\":", 32);
            err = err ? err : qv__api_json_string(&r->resp, mi.problem[0] ? mi.problem
                                                                          : "no versions");
            err = err ? err : qv_buf_append(&r->resp, "}", 1);
        }
        qv_model_info_free(&mi);
    }
    free(names);
    return err ? err : qv_buf_append(&r->resp, "]", 1);
}

static int repo_action(struct qv_http_req *r, bool load)
{
    qv_engine *e = r->deps->engine;
    int64_t v = r->n_params > 1 ? qv__api_param_version(r, 1) : 0;
    int err;

    if (v < 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                       r->params[1]);
    if (v > 0)
        err = load ? qv_engine_load_version(e, r->params[0], v, &r->diag)
                   : qv_engine_unload_version(e, r->params[0], v, &r->diag);
    else
        err = load ? qv_engine_load_model(e, r->params[0], &r->diag)
                   : qv_engine_unload_model(e, r->params[0], &r->diag);
    if (err == QV_EBACKEND || (load && err == QV_ENOMEM))
        err = QV_EBUSY; /* the version is UNAVAILABLE with the reason in the diag */
    if (err)
        return err;
    {
        char what[160];
        snprintf(what, sizeof(what), "%s/%s", r->params[0], v > 0 ? r->params[1] : "*");
        qv__api_audit(r, r->params[0], load ? "repository.load" : "repository.unload", NULL,
                      what);
    }
    return qv_buf_append(&r->resp, load ? "{\"loaded\":true}" : "{\"unloaded\":true}",
                         load ? 15 : 17);
}

static int repo_load_job(struct qv_http_req *r)
{
    return repo_action(r, true);
}

static int repo_unload_job(struct qv_http_req *r)
{
    return repo_action(r, false);
}

/* A load may take as long as the model takes: it runs on the API's control
 * thread, never on an HTTP thread (health keeps answering meanwhile). */
static int repo_queue(struct qv_http_req *r, bool load)
{
    if (r->n_params > 1 && qv__api_param_version(r, 1) < 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                       r->params[1]);
    if (r->suspend == NULL) /* driven in memory, without an HTTP layer */
        return repo_action(r, load);
    return qv__api_lane_submit(r->api->ctl, r, load ? repo_load_job : repo_unload_job);
}

int qv__on_repo_load(struct qv_http_req *r)
{
    return repo_queue(r, true);
}

int qv__on_repo_unload(struct qv_http_req *r)
{
    return repo_queue(r, false);
}

/* Server-wide series after the per-version ones. */
static int metrics_extra(struct qv_buf *out, struct qv_http_req *r)
{
    return qv_buf_printf(out,
                         "# HELP quiver_up Whether the server is serving (1) or shutting down (0).\n"
                         "# TYPE quiver_up gauge\nquiver_up %d\n"
                         "# HELP quiver_process_resident_memory_bytes Resident set size of the "
                         "server process.\n"
                         "# TYPE quiver_process_resident_memory_bytes gauge\n"
                         "quiver_process_resident_memory_bytes %llu\n"
                         "# HELP quiver_memory_budget_bytes Memory budget for loaded versions.\n"
                         "# TYPE quiver_memory_budget_bytes gauge\n"
                         "quiver_memory_budget_bytes %llu\n"
                         "# HELP quiver_memory_used_bytes Memory held by loaded versions.\n"
                         "# TYPE quiver_memory_used_bytes gauge\nquiver_memory_used_bytes %llu\n",
                         qv__api_shutting_down(r->api) ? 0 : 1,
                         (unsigned long long)qv_rss_bytes(),
                         (unsigned long long)qv_engine_memory_budget(r->deps->engine),
                         (unsigned long long)qv_engine_memory_used(r->deps->engine));
}

int qv__on_metrics(struct qv_http_req *r)
{
    int err = qv_monitor_render_prometheus(r->deps->monitor, &r->resp);

    return err ? err : metrics_extra(&r->resp, r);
}
