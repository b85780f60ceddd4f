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

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qv__on_live(struct qv_http_req *r)
{
    return qv_buf_append(&r->resp, "{\"live\":true}", 13);
}

/* Whether model 'mi' is one the repository asks for (see asked_for; and a
 * version that is not UNLOADED, or a config problem), and if so whether it
 * serves. */
static bool model_wanted(const struct qv_model_info *mi, bool *ready, const char **state,
                         const char **reason)
{
    bool wanted = mi->n_versions == 0 && mi->problem[0];

    if (!mi->asked_for)
        return false;
    *ready = false;
    *state = "UNAVAILABLE";
    *reason = mi->problem[0] ? mi->problem : "";
    for (int j = 0; j < mi->n_versions; j++) {
        const struct qv_version_info *vi = &mi->versions[j];
        if (vi->state == QV_STATE_UNLOADED)
            continue;
        wanted = true;
        if (vi->state == QV_STATE_READY)
            *ready = true;
        if (vi->state == QV_STATE_LOADING)
            *state = "LOADING";
        if (!**reason && vi->reason[0])
            *reason = vi->reason;
    }
    return wanted;
}

/* GET /v2/health/ready. Strict (the default, as Triton): 200 only when every
 * model the repository asks for has a READY version; otherwise 503 naming
 * each model that does not, with its state (LOADING while a version still
 * loads, else UNAVAILABLE) and why. */
int qv__on_ready(struct qv_http_req *r)
{
    char (*names)[QV_MODEL_NAME_MAX] = NULL;
    int n = 0, k = 0, err;

    if (qv__api_shutting_down(r->api)) {
        r->status = 503;
        return qv_buf_printf(&r->resp, "{\"ready\":false,\"reason\":\"shutting down\"}");
    }
    if ((r->api && r->api->cfg.lax_readiness) || r->deps == NULL || r->deps->engine == NULL) {
        r->status = 200;
        return qv_buf_append(&r->resp, "{\"ready\":true}", 14);
    }
    qv_engine_model_names(r->deps->engine, &names, &n);
    err = qv_buf_append(&r->resp, "{\"ready\":", 9);
    for (int i = 0; i < n && !err; i++) {
        struct qv_model_info mi;
        const char *state, *reason;
        bool ready;
        if (qv_engine_model_info(r->deps->engine, names[i], &mi) != QV_OK)
            continue;
        if (model_wanted(&mi, &ready, &state, &reason) && !ready) {
            err = k++ ? qv_buf_append(&r->resp, ",", 1)
                      : qv_buf_printf(&r->resp, "false,\"not_ready\":[");
            err = err ? err : qv_buf_printf(&r->resp, "{\"name\":");
            err = err ? err : qv__api_json_string(&r->resp, mi.name);
            err = err ? err : qv_buf_printf(&r->resp, ",\"state\":\"%s\",\"reason\":", state);
            err = err ? err : qv__api_json_string(&r->resp, reason);
            err = err ? err : qv_buf_append(&r->resp, "}", 1);
        }
        qv_model_info_free(&mi);
    }
    free(names);
    r->status = k ? 503 : 200;
    return err ? err : k ? qv_buf_append(&r->resp, "]}", 2) : qv_buf_append(&r->resp, "true}", 5);
}

int qv__on_server_meta(struct qv_http_req *r)
{
    const char *node = qv_cluster_node_name(); /* [A-Za-z0-9._-]: no escaping needed */

    return qv_buf_printf(&r->resp,
                         "{\"name\":\"quiver\",\"version\":\"%s\",\"extensions\":["
                         "\"binary_tensor_data\",\"model_configuration\",\"model_repository\","
                         "\"statistics\",\"routing\"]%s%s%s}",
                         QV_VERSION, node[0] ? ",\"node\":\"" : "", node, node[0] ? "\"" : "");
}

/* The KServe/Triton platform name of a backend: "onnx_onnxv1" for ONNX;
 * other backends have no name in the spec and keep their own ("xgboost"). */
static const char *platform_name(const char *backend)
{
    return strcmp(backend, "onnx") == 0 ? "onnx_onnxv1" : backend;
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
    err = err ? err : qv_buf_append(b, "]", 1);
    if (!err && sig->engine[0]) /* the backend's evaluator, e.g. xgboost's "compiled" */
        err = qv_buf_printf(b, ",\"engine\":\"%s\"", sig->engine);
    return err;
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
    err = err ? err : qv__api_json_string(&r->resp, platform_name(mi.backend));
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
    bool ready_only = false;

    if (r->body_len > 0) {
        json_error_t jerr;
        json_t *root = json_loadb(r->body, r->body_len, 0, &jerr), *rd;
        const char *key;
        json_t *val;
        if (!json_is_object(root)) {
            json_decref(root);
            return qv_fail(&r->diag, QV_EINVAL, "body: expected a JSON object such as "
                           "{\"ready\": true}");
        }
        json_object_foreach(root, key, val) {
            if (strcmp(key, "ready") != 0) {
                qv_fail(&r->diag, QV_EINVAL, "%s: unknown key (the index takes \"ready\")",
                        key);
                json_decref(root);
                return QV_EINVAL;
            }
        }
        rd = json_object_get(root, "ready");
        if (rd != NULL && !json_is_boolean(rd)) {
            json_decref(root);
            return qv_fail(&r->diag, QV_EINVAL, "ready: expected true or false");
        }
        ready_only = json_is_true(rd);
        json_decref(root);
    }

    qv_engine_model_names(r->deps->engine, &names, &n);
    err = qv_buf_append(&r->resp, "[", 1);
    for (int i = 0; i < n && !err; i++) {
        struct qv_model_info mi;
        if (qv_engine_model_info(r->deps->engine, names[i], &mi) != QV_OK)
            continue;
        for (int j = 0; j < mi.n_versions && !err; j++) {
            const struct qv_version_info *vi = &mi.versions[j];
            if (ready_only && vi->state != QV_STATE_READY)
                continue;
            err = qv_buf_printf(&r->resp, "%s{\"name\":", k++ ? "," : "");
            err = err ? err : qv__api_json_string(&r->resp, mi.name);
            err = err ? err : qv_buf_printf(&r->resp, ",\"version\":\"%lld\",\"state\":\"%s\","
                                            "\"reason\":", (long long)vi->version,
                                            qv_version_state_name(vi->state));
            err = err ? err : qv__api_json_string(&r->resp, vi->reason);
            err = err ? err : qv_buf_append(&r->resp, "}", 1);
        }
        if (mi.n_versions == 0 && !err && !ready_only) {
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
        err = QV_EUNAVAIL; /* the version is UNAVAILABLE with the reason in the diag */
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

/* The load request's body: Triton's {"parameters": {"config": "..."}}
 * (load with a configuration override) is refused, never ignored; so is
 * any other parameter. */
static int check_load_body(struct qv_http_req *r)
{
    json_error_t jerr;
    json_t *root, *params, *val;
    const char *key;

    if (r->body_len == 0)
        return QV_OK;
    root = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return qv_fail(&r->diag, QV_EINVAL, "body: expected a JSON object");
    }
    json_object_foreach(root, key, val) {
        if (strcmp(key, "parameters") != 0) {
            qv_fail(&r->diag, QV_EINVAL, "%s: unknown key (a load takes \"parameters\")", key);
            json_decref(root);
            return QV_EINVAL;
        }
    }
    params = json_object_get(root, "parameters");
    if (params != NULL && !json_is_object(params)) {
        json_decref(root);
        return qv_fail(&r->diag, QV_EINVAL, "parameters: expected an object");
    }
    json_object_foreach(params, key, val) {
        if (strcmp(key, "config") == 0)
            qv_fail(&r->diag, QV_EINVAL,
                    "parameters.config: loading with a configuration override is not "
                    "supported; change the model's config.json in the repository and load it");
        else
            qv_fail(&r->diag, QV_EINVAL, "parameters.%s: not supported by load", key);
        json_decref(root);
        return QV_EINVAL;
    }
    json_decref(root);
    return QV_OK;
}

int qv__on_repo_load(struct qv_http_req *r)
{
    int err = check_load_body(r);

    return err ? err : repo_queue(r, true);
}

/* Triton's data_type for a KServe datatype. */
static const char *triton_type(enum qv_dtype t)
{
    static const char *const names[QV_DTYPE_COUNT] = {
        [QV_DTYPE_F32] = "TYPE_FP32",   [QV_DTYPE_U8] = "TYPE_UINT8",
        [QV_DTYPE_I8] = "TYPE_INT8",    [QV_DTYPE_U16] = "TYPE_UINT16",
        [QV_DTYPE_I16] = "TYPE_INT16",  [QV_DTYPE_I32] = "TYPE_INT32",
        [QV_DTYPE_I64] = "TYPE_INT64",  [QV_DTYPE_STRING] = "TYPE_STRING",
        [QV_DTYPE_BOOL] = "TYPE_BOOL",  [QV_DTYPE_F16] = "TYPE_FP16", [QV_DTYPE_BF16] = "TYPE_BF16",
        [QV_DTYPE_F64] = "TYPE_FP64",   [QV_DTYPE_U32] = "TYPE_UINT32",
        [QV_DTYPE_U64] = "TYPE_UINT64",
    };
    return t > QV_DTYPE_UNDEF && t < QV_DTYPE_COUNT && names[t] ? names[t] : "TYPE_INVALID";
}

/* Triton's "input"/"output" entries: dims without the batch dimension when
 * the model batches (max_batch_size > 0), as Triton's config has them. */
static int put_config_io(struct qv_buf *b, const char *key, const struct qv_tensor_desc *d,
                         int n, bool batched)
{
    int err = qv_buf_printf(b, ",\"%s\":[", key);

    for (int i = 0; i < n && !err; i++) {
        int first = batched && d[i].ndim > 0 ? 1 : 0;
        err = qv_buf_append(b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        err = err ? err : qv__api_json_string(b, d[i].name);
        err = err ? err : qv_buf_printf(b, ",\"data_type\":\"%s\",\"dims\":[",
                                        triton_type(d[i].dtype));
        for (int k = first; k < d[i].ndim && !err; k++)
            err = qv_buf_printf(b, "%s%lld", k > first ? "," : "", (long long)d[i].shape[k]);
        err = err ? err : qv_buf_append(b, "]}", 2);
    }
    return err ? err : qv_buf_append(b, "]", 1);
}

/* GET /v2/models/{m}[/versions/{v}]/config: the model's configuration in
 * Triton's field names (model configuration extension). */
int qv__on_model_config(struct qv_http_req *r)
{
    struct qv_model_info mi;
    struct qv_signature sig;
    bool batched;
    int err;

    if (r->n_params > 1 && qv__api_param_version(r, 1) <= 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                       r->params[1]);
    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    sig = mi.sig;
    if (r->n_params > 1) {
        qv_version *ver;
        if (find_info(&mi, qv__api_param_version(r, 1)) == NULL) {
            qv_model_info_free(&mi);
            return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %s", r->params[0],
                           r->params[1]);
        }
        if (qv_engine_acquire(r->deps->engine, r->params[0], qv__api_param_version(r, 1), &ver,
                              NULL) == QV_OK) {
            sig = *qv_version_signature(ver);
            qv_version_release(ver);
        }
    }
    batched = mi.max_batch_size > 0;
    err = qv_buf_append(&r->resp, "{\"name\":", 8);
    err = err ? err : qv__api_json_string(&r->resp, mi.name);
    err = err ? err : qv_buf_append(&r->resp, ",\"platform\":", 12);
    err = err ? err : qv__api_json_string(&r->resp, platform_name(mi.backend));
    err = err ? err : qv_buf_append(&r->resp, ",\"backend\":", 11);
    err = err ? err : qv__api_json_string(&r->resp, mi.backend);
    err = err ? err : qv_buf_printf(&r->resp, ",\"max_batch_size\":%d", mi.max_batch_size);
    err = err ? err : put_config_io(&r->resp, "input", sig.inputs, sig.n_inputs, batched);
    err = err ? err : put_config_io(&r->resp, "output", sig.outputs, sig.n_outputs, batched);
    err = err ? err : qv_buf_append(&r->resp, "}", 1);
    qv_model_info_free(&mi);
    return err;
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

    err = err ? err : qv__api_http_metrics(r->api, &r->resp);
    return err ? err : metrics_extra(&r->resp, r);
}

/* TF Serving's DataType name for a dtype. */
static const char *tf_type(enum qv_dtype t)
{
    static const char *const names[QV_DTYPE_COUNT] = {
        [QV_DTYPE_F32] = "DT_FLOAT",   [QV_DTYPE_U8] = "DT_UINT8",   [QV_DTYPE_I8] = "DT_INT8",
        [QV_DTYPE_U16] = "DT_UINT16",  [QV_DTYPE_I16] = "DT_INT16",  [QV_DTYPE_I32] = "DT_INT32",
        [QV_DTYPE_I64] = "DT_INT64",   [QV_DTYPE_STRING] = "DT_STRING",
        [QV_DTYPE_BOOL] = "DT_BOOL",   [QV_DTYPE_F16] = "DT_HALF", [QV_DTYPE_BF16] = "DT_BFLOAT16",   [QV_DTYPE_F64] = "DT_DOUBLE",
        [QV_DTYPE_U32] = "DT_UINT32",  [QV_DTYPE_U64] = "DT_UINT64",
    };
    return t > QV_DTYPE_UNDEF && t < QV_DTYPE_COUNT && names[t] ? names[t] : "DT_INVALID";
}

static int put_tf_io(struct qv_buf *b, const struct qv_tensor_desc *d, int n)
{
    int err = qv_buf_append(b, "{", 1);

    for (int i = 0; i < n && !err; i++) {
        err = i ? qv_buf_append(b, ",", 1) : 0;
        err = err ? err : qv__api_json_string(b, d[i].name);
        err = err ? err : qv_buf_printf(b, ":{\"dtype\":\"%s\",\"tensor_shape\":{\"dim\":[",
                                        tf_type(d[i].dtype));
        for (int k = 0; k < d[i].ndim && !err; k++)
            err = qv_buf_printf(b, "%s{\"size\":\"%lld\",\"name\":\"\"}", k ? "," : "",
                                (long long)d[i].shape[k]);
        err = err ? err : qv_buf_append(b, "],\"unknown_rank\":false},\"name\":", 31);
        err = err ? err : qv__api_json_string(b, d[i].name);
        err = err ? err : qv_buf_append(b, "}", 1);
    }
    return err ? err : qv_buf_append(b, "}", 1);
}

/* GET /v1/models/{m}[/versions/{v}]/metadata: TF Serving's signature_def,
 * one "serving_default" signature made of the model's inputs and outputs. */
int qv__on_tfs_metadata(struct qv_http_req *r)
{
    struct qv_model_info mi;
    struct qv_signature sig;
    int64_t v = r->n_params > 1 ? qv__api_param_version(r, 1) : 0, shown = 0;
    int err;

    if (v < 0)
        return qv_fail(&r->diag, QV_EINVAL, "version: \"%s\" is not a version number",
                       r->params[1]);
    if (qv_engine_model_info(r->deps->engine, r->params[0], &mi) != QV_OK)
        return qv_fail(&r->diag, QV_ENOENT, "unknown model \"%s\"", r->params[0]);
    sig = mi.sig;
    {
        qv_version *ver;
        if (v > 0 && find_info(&mi, v) == NULL) {
            qv_model_info_free(&mi);
            return qv_fail(&r->diag, QV_ENOENT, "model %s has no version %lld", r->params[0],
                           (long long)v);
        }
        if (qv_engine_acquire(r->deps->engine, r->params[0], v, &ver, NULL) == QV_OK) {
            sig = *qv_version_signature(ver);
            shown = qv_version_number(ver);
            qv_version_release(ver);
        }
    }
    if (shown == 0)
        shown = v;
    err = qv_buf_append(&r->resp, "{\"model_spec\":{\"name\":", 22);
    err = err ? err : qv__api_json_string(&r->resp, mi.name);
    err = err ? err : qv_buf_printf(&r->resp, ",\"signature_name\":\"\",\"version\":\"%lld\"},"
                                    "\"metadata\":{\"signature_def\":{\"signature_def\":{"
                                    "\"serving_default\":{\"inputs\":", (long long)shown);
    err = err ? err : put_tf_io(&r->resp, sig.inputs, sig.n_inputs);
    err = err ? err : qv_buf_append(&r->resp, ",\"outputs\":", 11);
    err = err ? err : put_tf_io(&r->resp, sig.outputs, sig.n_outputs);
    err = err ? err : qv_buf_append(&r->resp, ",\"method_name\":\"tensorflow/serving/predict\"}}}}}",
                                    48);
    qv_model_info_free(&mi);
    return err;
}
