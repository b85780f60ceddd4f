/* SPDX-License-Identifier: MIT
 *
 * Inference endpoints: KServe v2 `POST /v2/models/{m}[/versions/{v}]/infer`
 * and TF Serving `POST /v1/models/{m}[/versions/{v}]:predict` (row
 * "instances" and columnar "inputs" formats). Both decode into one
 * qv_infer_req, pick the version (URL first, then the model's route, then the
 * default), queue it on the engine and suspend the connection; the worker that
 * runs it encodes the response and resumes the connection.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum wire { WIRE_KSERVE, WIRE_TFS_ROW, WIRE_TFS_COL };

struct infer_ctx {
    struct qv_infer_req req;
    struct qv_http_req *http;
    qv_version *v;
    enum wire wire;
    char id[128];
    bool has_id;
    int n_wanted; /* requested outputs (KServe "outputs"), 0 for all */
    char wanted[QV_MAX_IO][QV_NAME_MAX];
    json_t *params; /* request "parameters", for sticky keys */
};

static void ctx_free(struct infer_ctx *c)
{
    qv_infer_req_fini(&c->req);
    json_decref(c->params);
    free(c);
}

/* ---- Responses ---- */

static bool output_wanted(const struct infer_ctx *c, const char *name)
{
    if (c->n_wanted == 0)
        return true;
    for (int i = 0; i < c->n_wanted; i++)
        if (strcmp(c->wanted[i], name) == 0)
            return true;
    return false;
}

static int encode_kserve(struct infer_ctx *c, struct qv_buf *b)
{
    int err = qv_buf_append(b, "{\"model_name\":", 14);
    bool first = true;

    err = err ? err : qv__api_json_string(b, qv_version_model(c->v));
    err = err ? err : qv_buf_printf(b, ",\"model_version\":\"%lld\"",
                                    (long long)qv_version_number(c->v));
    if (c->has_id) {
        err = err ? err : qv_buf_append(b, ",\"id\":", 6);
        err = err ? err : qv__api_json_string(b, c->id);
    }
    err = err ? err : qv_buf_append(b, ",\"outputs\":[", 12);
    for (int i = 0; i < c->req.n_outputs && !err; i++) {
        if (!output_wanted(c, c->req.outputs[i].name))
            continue;
        if (!first)
            err = qv_buf_append(b, ",", 1);
        first = false;
        err = err ? err : qv_tensor_to_json(&c->req.outputs[i], b);
    }
    return err ? err : qv_buf_append(b, "]}", 2);
}

static int encode_whole(const struct qv_tensor *t, struct qv_buf *b)
{
    int err;

    if (t->ndim == 0)
        return qv_tensor_row_to_json(t, 0, b);
    err = qv_buf_append(b, "[", 1);
    for (int64_t r = 0; r < t->shape[0] && !err; r++) {
        if (r)
            err = qv_buf_append(b, ",", 1);
        err = err ? err : qv_tensor_row_to_json(t, r, b);
    }
    return err ? err : qv_buf_append(b, "]", 1);
}

static int encode_tfs(struct infer_ctx *c, struct qv_buf *b)
{
    const struct qv_infer_req *q = &c->req;
    int err;

    if (c->wire == WIRE_TFS_COL) {
        if (q->n_outputs == 1) {
            err = qv_buf_append(b, "{\"outputs\":", 11);
            err = err ? err : encode_whole(&q->outputs[0], b);
            return err ? err : qv_buf_append(b, "}", 1);
        }
        err = qv_buf_append(b, "{\"outputs\":{", 12);
        for (int i = 0; i < q->n_outputs && !err; i++) {
            err = i ? qv_buf_append(b, ",", 1) : 0;
            err = err ? err : qv__api_json_string(b, q->outputs[i].name);
            err = err ? err : qv_buf_append(b, ":", 1);
            err = err ? err : encode_whole(&q->outputs[i], b);
        }
        return err ? err : qv_buf_append(b, "}}", 2);
    }
    err = qv_buf_append(b, "{\"predictions\":[", 16);
    for (int64_t r = 0; r < q->rows && !err; r++) {
        err = r ? qv_buf_append(b, ",", 1) : 0;
        if (q->n_outputs == 1) {
            err = err ? err : qv_tensor_row_to_json(&q->outputs[0], r, b);
            continue;
        }
        err = err ? err : qv_buf_append(b, "{", 1);
        for (int i = 0; i < q->n_outputs && !err; i++) {
            err = i ? qv_buf_append(b, ",", 1) : 0;
            err = err ? err : qv__api_json_string(b, q->outputs[i].name);
            err = err ? err : qv_buf_append(b, ":", 1);
            err = err ? err : qv_tensor_row_to_json(&q->outputs[i], r, b);
        }
        err = err ? err : qv_buf_append(b, "}", 1);
    }
    return err ? err : qv_buf_append(b, "]}", 2);
}

/* Worker thread: the request ran; write the response and resume. */
static void on_done(struct qv_infer_req *q)
{
    struct infer_ctx *c = q->ud;
    struct qv_http_req *h = c->http;
    int err = q->status;

    if (err == QV_OK) {
        h->resp.len = 0;
        err = c->wire == WIRE_KSERVE ? encode_kserve(c, &h->resp) : encode_tfs(c, &h->resp);
        if (err)
            qv_fail(&h->diag, err, "cannot encode the response");
        else
            h->status = 200;
    } else {
        h->diag = q->diag;
    }
    if (err)
        qv__api_error(h, err);
    qv_version_release(c->v);
    ctx_free(c);
    h->complete(h);
}

/* ---- Picking the version ---- */

static const char *sticky_key(void *ud, enum qv_sticky_kind kind, const char *name)
{
    struct infer_ctx *c = ud;
    json_t *v;

    if (kind == QV_STICKY_HEADER)
        return c->http->header ? c->http->header(c->http, name) : NULL;
    v = json_object_get(c->params, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int pick_and_acquire(struct infer_ctx *c, const char *model, struct qv_diag *d)
{
    struct qv_http_req *h = c->http;
    const struct qv_api_deps *deps = h->deps;
    int64_t version = 0;
    int err;

    if (h->n_params > 1) {
        version = qv__api_param_version(h, 1);
        if (version < 0)
            return qv_fail(d, QV_EINVAL, "version: \"%s\" is not a version number",
                           h->params[1]);
    } else if (deps->router) {
        struct qv_pick_in in;
        struct qv_pick pick;

        memset(&in, 0, sizeof(in));
        in.get_key = sticky_key;
        in.get_key_ud = c;
        qv_router_pick(deps->router, model, &in, &pick);
        if (!pick.is_default)
            version = pick.version;
    }
    err = qv_engine_acquire(deps->engine, model, version, &c->v, d);
    if (err == QV_OK || h->n_params > 1 || version == 0)
        return err;
    /* The routed version left between pick and acquire: serve the default. */
    d->msg[0] = '\0';
    return qv_engine_acquire(deps->engine, model, 0, &c->v, d);
}

/* ---- Decoding ---- */

static int decode_kserve(struct infer_ctx *c, json_t *root, struct qv_diag *d)
{
    json_t *inputs = json_object_get(root, "inputs"), *t, *id, *outs;
    size_t i;
    int err;

    if (!json_is_object(root))
        return qv_fail(d, QV_EINVAL, "body: expected a JSON object");
    id = json_object_get(root, "id");
    if (id != NULL) {
        if (!json_is_string(id) || json_string_length(id) >= sizeof(c->id))
            return qv_fail(d, QV_EINVAL, "id: expected a string of at most %zu bytes",
                           sizeof(c->id) - 1);
        snprintf(c->id, sizeof(c->id), "%s", json_string_value(id));
        c->has_id = true;
    }
    c->params = json_incref(json_object_get(root, "parameters"));
    if (c->params != NULL && !json_is_object(c->params))
        return qv_fail(d, QV_EINVAL, "parameters: expected an object");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0)
        return qv_fail(d, QV_EINVAL, "inputs: expected a non-empty array of tensors");
    if (json_array_size(inputs) > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "inputs: at most %d tensors", QV_MAX_IO);
    json_array_foreach(inputs, i, t) {
        char field[32];
        snprintf(field, sizeof(field), "inputs[%zu]", i);
        err = qv_tensor_from_json(t, field, &c->req.inputs[i], d);
        if (err)
            return err;
        c->req.n_inputs++;
    }
    outs = json_object_get(root, "outputs");
    if (outs != NULL) {
        if (!json_is_array(outs) || json_array_size(outs) > QV_MAX_IO)
            return qv_fail(d, QV_EINVAL, "outputs: expected an array of {\"name\": ...}");
        json_array_foreach(outs, i, t) {
            json_t *name = json_object_get(t, "name");
            if (!json_is_string(name))
                return qv_fail(d, QV_EINVAL, "outputs[%zu].name: expected a string", i);
            snprintf(c->wanted[c->n_wanted++], QV_NAME_MAX, "%s", json_string_value(name));
        }
    }
    return QV_OK;
}

/* Builds one input tensor from TF Serving values: 'vals' holds n rows. */
static int tfs_tensor(const struct qv_tensor_desc *desc, json_t *vals, int64_t n,
                      const char *field, struct qv_tensor *t, struct qv_diag *d)
{
    int64_t shape[QV_MAX_DIMS];
    json_t *first = json_array_get(vals, 0);
    int err;

    memcpy(shape, desc->shape, sizeof(shape));
    shape[0] = n;
    /* Unknown inner sizes come from the first row (one level per dim). */
    for (int k = 1; k < desc->ndim; k++) {
        if (shape[k] < 0) {
            if (!json_is_array(first))
                return qv_fail(d, QV_EINVAL, "%s: rows must be arrays for input \"%s\"", field,
                               desc->name);
            shape[k] = (int64_t)json_array_size(first);
        }
        first = json_array_get(first, 0);
    }
    err = qv_tensor_alloc(t, desc->name, desc->dtype, desc->ndim, shape);
    if (err)
        return qv_fail(d, err, "%s: cannot allocate input \"%s\"", field, desc->name);
    err = qv_tensor_data_from_json(vals, desc->dtype, qv_tensor_numel(t), t->data, field, d);
    if (err)
        qv_tensor_fini(t);
    return err;
}

static int decode_tfs(struct infer_ctx *c, json_t *root, struct qv_diag *d)
{
    const struct qv_signature *sig = qv_version_signature(c->v);
    json_t *inst = json_object_get(root, "instances"), *cols = json_object_get(root, "inputs");
    int err;

    if (!json_is_object(root))
        return qv_fail(d, QV_EINVAL, "body: expected a JSON object");
    if ((inst == NULL) == (cols == NULL))
        return qv_fail(d, QV_EINVAL, "body: expected exactly one of \"instances\" or \"inputs\"");
    if (sig->n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "model has no declared inputs");
    c->wire = inst ? WIRE_TFS_ROW : WIRE_TFS_COL;
    if (inst != NULL) {
        int64_t n = (int64_t)json_array_size(inst);
        if (!json_is_array(inst) || n == 0)
            return qv_fail(d, QV_EINVAL, "instances: expected a non-empty array");
        if (json_is_object(json_array_get(inst, 0))) {
            for (int i = 0; i < sig->n_inputs; i++) {
                json_t *vals = json_array();
                size_t k;
                json_t *row;
                char field[96];
                json_array_foreach(inst, k, row) {
                    json_t *v = json_object_get(row, sig->inputs[i].name);
                    if (v == NULL) {
                        json_decref(vals);
                        return qv_fail(d, QV_EINVAL, "instances[%zu].%s: missing", k,
                                       sig->inputs[i].name);
                    }
                    json_array_append(vals, v);
                }
                snprintf(field, sizeof(field), "instances[].%s", sig->inputs[i].name);
                err = tfs_tensor(&sig->inputs[i], vals, n, field, &c->req.inputs[i], d);
                json_decref(vals);
                if (err)
                    return err;
                c->req.n_inputs++;
            }
            return QV_OK;
        }
        if (sig->n_inputs != 1)
            return qv_fail(d, QV_EINVAL, "instances: the model takes %d inputs; give each "
                           "instance as an object of named inputs", sig->n_inputs);
        err = tfs_tensor(&sig->inputs[0], inst, n, "instances", &c->req.inputs[0], d);
        c->req.n_inputs = err ? 0 : 1;
        return err;
    }
    if (json_is_object(cols)) {
        for (int i = 0; i < sig->n_inputs; i++) {
            json_t *vals = json_object_get(cols, sig->inputs[i].name);
            char field[96];
            snprintf(field, sizeof(field), "inputs.%s", sig->inputs[i].name);
            if (!json_is_array(vals))
                return qv_fail(d, QV_EINVAL, "%s: missing or not an array", field);
            err = tfs_tensor(&sig->inputs[i], vals, (int64_t)json_array_size(vals), field,
                             &c->req.inputs[i], d);
            if (err)
                return err;
            c->req.n_inputs++;
        }
        return QV_OK;
    }
    if (!json_is_array(cols) || json_array_size(cols) == 0 || sig->n_inputs != 1)
        return qv_fail(d, QV_EINVAL, "inputs: expected a non-empty array (one-input model) or "
                       "an object of named inputs");
    err = tfs_tensor(&sig->inputs[0], cols, (int64_t)json_array_size(cols), "inputs",
                     &c->req.inputs[0], d);
    c->req.n_inputs = err ? 0 : 1;
    return err;
}

/* ---- Handlers ---- */

static int infer(struct qv_http_req *h, bool tfs)
{
    const struct qv_api_deps *deps = h->deps;
    const char *model = h->params[0];
    struct infer_ctx *c;
    json_error_t jerr;
    json_t *root;
    int err;

    root = json_loadb(h->body, h->body_len, 0, &jerr);
    if (root == NULL)
        return qv_fail(&h->diag, QV_EINVAL, "body: invalid JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(root);
        return qv_fail(&h->diag, QV_ENOMEM, "cannot allocate the request");
    }
    c->http = h;
    c->wire = WIRE_KSERVE;
    c->req.done = on_done;
    c->req.ud = c;
    if (!tfs) {
        err = decode_kserve(c, root, &h->diag);
        if (!err)
            err = pick_and_acquire(c, model, &h->diag);
    } else {
        err = pick_and_acquire(c, model, &h->diag);
        if (!err)
            err = decode_tfs(c, root, &h->diag);
    }
    json_decref(root);
    if (!err) {
        snprintf(h->version_header, sizeof(h->version_header), "%lld",
                 (long long)qv_version_number(c->v));
        err = qv_engine_prepare(c->v, &c->req, &h->diag);
        if (err)
            qv_vstats_request(qv_version_stats(c->v), QV_OUTCOME_BAD_INPUT, 0, 0, 0);
    }
    if (!err && c->has_id && deps->router)
        qv_router_remember(deps->router, c->id, model, qv_version_number(c->v));
    if (!err) {
        h->suspend(h);
        err = qv_engine_submit(c->v, &c->req, &h->diag);
        if (!err)
            return QV_API_PENDING;
        qv__api_error(h, err);
        qv_version_release(c->v);
        ctx_free(c);
        h->complete(h);
        return QV_API_PENDING;
    }
    qv_version_release(c->v);
    ctx_free(c);
    return err;
}

int qv__on_infer(struct qv_http_req *h)
{
    return infer(h, false);
}

int qv__on_tfs_predict(struct qv_http_req *h)
{
    return infer(h, true);
}
