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
#include "binary.h"
#include "infer_fast.h"

#define QV_LOG_MODULE "api"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum wire { WIRE_KSERVE, WIRE_TFS_ROW, WIRE_TFS_COL };
/* TF Serving's methods on /v1/models/{m}...: predict, classify, regress. */
enum tfs_method { TFS_PREDICT, TFS_CLASSIFY, TFS_REGRESS };

struct infer_ctx {
    struct qv_infer_req req;
    struct qv_http_req *http;
    qv_version *v;
    enum wire wire;
    enum tfs_method method;
    char id[128];
    bool has_id;
    int n_wanted; /* requested outputs (KServe "outputs"), 0 for all */
    char wanted[QV_MAX_IO][QV_NAME_MAX];
    bool wanted_bin[QV_MAX_IO]; /* the output asked for in binary */
    bool bin_default;           /* parameters.binary_data_output */
    struct qv_bin bin;          /* the body's binary part (read while decoding) */
    json_t *params; /* request "parameters", for sticky keys */
    int n_pairs;    /* shadow copies waiting for this request's outputs */
    struct shadow_pair *pairs[QV_ROUTE_MAX_SHADOW];
    struct compare_group *group; /* compare policy: the group this member belongs to */
    uint64_t latency_ns;
};

/* A primary request and one shadow copy: whichever finishes second compares
 * the two outputs and records the agreement. */
struct shadow_pair {
    _Atomic int refs;
    qv_monitor *mon;
    char model[QV_MODEL_NAME_MAX];
    int64_t primary_v, shadow_v;
    struct qv_tensor primary, shadow;
    bool primary_ok, shadow_ok;
    uint64_t primary_ns, shadow_ns;
};

struct shadow_ctx {
    struct qv_infer_req req;
    struct shadow_pair *pair;
    qv_version *v;
};

/* Compare policy: every member runs the same input on its version; the last
 * one to finish chooses the answer and resumes the connection. */
struct compare_group {
    _Atomic int pending;
    struct qv_http_req *http;
    enum qv_select select;
    bool all_outputs;
    int n;
    struct infer_ctx *members[QV_ROUTE_MAX_COMPARE];
    double scores[QV_ROUTE_MAX_COMPARE];
};

static void ctx_free(struct infer_ctx *c)
{
    qv_infer_req_fini(&c->req);
    json_decref(c->params);
    free(c);
}

static void pair_put(struct shadow_pair *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (p->primary_ok && p->shadow_ok && p->primary.ndim >= 1 && p->shadow.ndim >= 1 &&
        qv_tensor_numel(&p->primary) == qv_tensor_numel(&p->shadow) &&
        qv_tensor_convert(&p->primary, QV_DTYPE_F32, NULL) == QV_OK &&
        qv_tensor_convert(&p->shadow, QV_DTYPE_F32, NULL) == QV_OK) {
        struct qv_agreement a;
        size_t rows = (size_t)p->primary.shape[0];
        size_t cols = rows ? (size_t)qv_tensor_numel(&p->primary) / rows : 0;
        qv_compare_agreement(p->primary.data, p->shadow.data, rows, cols, &a);
        qv_monitor_agreement(p->mon, p->model, p->primary_v, p->shadow_v, a.same_class == a.rows,
                             a.mean_abs_diff, a.max_abs_diff, p->primary_ns, p->shadow_ns);
    }
    qv_tensor_fini(&p->primary);
    qv_tensor_fini(&p->shadow);
    free(p);
}

/* Deep copy of a tensor; false when out of memory. */
static bool tensor_copy(struct qv_tensor *dst, const struct qv_tensor *src)
{
    return qv_tensor_copy(dst, src) == QV_OK;
}

/* Background lane: a shadow copy finished. Its result never reaches the client. */
static void on_shadow_done(struct qv_infer_req *q)
{
    struct shadow_ctx *s = q->ud;
    struct shadow_pair *p = s->pair;

    if (q->status == QV_OK && q->n_outputs > 0) {
        p->shadow = q->outputs[0];
        q->outputs[0].owned = false; /* moved into the pair */
        p->shadow_ok = true;
    }
    p->shadow_ns = q->t_done - q->t_start; /* compute only: the lane's queue is not the model's */
    qv_infer_req_fini(q);
    qv_version_release(s->v);
    free(s);
    pair_put(p);
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

/* Whether output 'name' goes in binary (it is wanted). */
static bool output_binary(const struct infer_ctx *c, const char *name)
{
    for (int i = 0; i < c->n_wanted; i++)
        if (strcmp(c->wanted[i], name) == 0)
            return c->wanted_bin[i];
    return c->bin_default;
}

static int encode_kserve(struct infer_ctx *c, struct qv_buf *b)
{
    int err = qv_buf_append(b, "{\"model_name\":", 14);
    bool first = true, any_bin = false;

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
        if (output_binary(c, c->req.outputs[i].name)) {
            any_bin = true;
            err = err ? err : qv__bin_output_head(&c->req.outputs[i], b);
        } else {
            err = err ? err : qv_tensor_to_json(&c->req.outputs[i], b);
        }
    }
    err = err ? err : qv_buf_append(b, "]}", 2);
    if (err || !any_bin)
        return err;
    /* The JSON header, then the binary outputs' bytes in the same order. */
    {
        char len[24];
        snprintf(len, sizeof(len), "%zu", b->len);
        for (int i = 0; i < c->req.n_outputs && !err; i++)
            if (output_wanted(c, c->req.outputs[i].name) &&
                output_binary(c, c->req.outputs[i].name))
                err = qv__bin_output_data(&c->req.outputs[i], b);
        if (!err) {
            qv__api_add_header(c->http, QV_BIN_HEADER, len);
            c->http->content_type = "application/octet-stream";
        }
    }
    return err;
}

static int encode_whole(const struct qv_tensor *t, struct qv_buf *b)
{
    return qv_tensor_nested_to_json(t, b);
}

static int put_score(struct qv_buf *b, double v)
{
    char num[40];
    int n;

    if (isnan(v))
        return qv_buf_append(b, "NaN", 3);
    if (isinf(v))
        return v > 0 ? qv_buf_append(b, "Infinity", 8) : qv_buf_append(b, "-Infinity", 9);
    n = snprintf(num, sizeof(num), "%.9g", v);
    return qv_buf_append(b, num, (size_t)n);
}

/* :classify and :regress (TF Serving's api_rest.md): one output, read per row.
 * Classification gives [["class", score], ...] per row: a one-value row is a
 * binary probability p (classes "0" with 1-p and "1" with p), a k-value row
 * is one score per class "0".."k-1". Regression gives one number per row. */
static int encode_tfs_method(struct infer_ctx *c, struct qv_buf *b)
{
    const struct qv_infer_req *q = &c->req;
    const struct qv_tensor *t = &q->outputs[0];
    int64_t rows = q->rows, per;
    int err;

    if (q->n_outputs != 1 || rows <= 0 || qv_tensor_numel(t) % rows != 0)
        return QV_EINVAL;
    per = qv_tensor_numel(t) / rows;
    if (c->method == TFS_REGRESS && per != 1)
        return QV_EINVAL;
    err = qv_buf_append(b, "{\"results\":[", 12);
    for (int64_t r = 0; r < rows && !err; r++) {
        err = r ? qv_buf_append(b, ",", 1) : 0;
        if (c->method == TFS_REGRESS) {
            err = err ? err : put_score(b, qv_tensor_get_f64(t, r));
            continue;
        }
        err = err ? err : qv_buf_append(b, "[", 1);
        if (per == 1) {
            double p = qv_tensor_get_f64(t, r);
            err = err ? err : qv_buf_append(b, "[\"0\",", 5);
            err = err ? err : put_score(b, 1.0 - p);
            err = err ? err : qv_buf_append(b, "],[\"1\",", 7);
            err = err ? err : put_score(b, p);
            err = err ? err : qv_buf_append(b, "]", 1);
        }
        for (int64_t k = 0; per > 1 && k < per && !err; k++) {
            char cls[32];
            int n = snprintf(cls, sizeof(cls), "%s[\"%lld\",", k ? "," : "", (long long)k);
            err = qv_buf_append(b, cls, (size_t)n);
            err = err ? err : put_score(b, qv_tensor_get_f64(t, r * per + k));
            err = err ? err : qv_buf_append(b, "]", 1);
        }
        err = err ? err : qv_buf_append(b, "]", 1);
    }
    return err ? err : qv_buf_append(b, "]}", 2);
}

static int encode_tfs(struct infer_ctx *c, struct qv_buf *b)
{
    const struct qv_infer_req *q = &c->req;
    size_t cursor[QV_MAX_IO] = {0}; /* where each output's next row starts (BYTES) */
    int err;

    if (c->method != TFS_PREDICT)
        return encode_tfs_method(c, b);

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
            err = err ? err : qv_tensor_row_to_json_at(&q->outputs[0], r, &cursor[0], b);
            continue;
        }
        err = err ? err : qv_buf_append(b, "{", 1);
        for (int i = 0; i < q->n_outputs && !err; i++) {
            err = i ? qv_buf_append(b, ",", 1) : 0;
            err = err ? err : qv__api_json_string(b, q->outputs[i].name);
            err = err ? err : qv_buf_append(b, ":", 1);
            err = err ? err : qv_tensor_row_to_json_at(&q->outputs[i], r, &cursor[i], b);
        }
        err = err ? err : qv_buf_append(b, "}", 1);
    }
    return err ? err : qv_buf_append(b, "]}", 2);
}

static void finish_compare(struct compare_group *g);

/* Hands the primary's first output to its shadow pairs. */
static void feed_pairs(struct infer_ctx *c)
{
    const struct qv_infer_req *q = &c->req;

    for (int i = 0; i < c->n_pairs; i++) {
        struct shadow_pair *p = c->pairs[i];
        if (q->status == QV_OK && q->n_outputs > 0)
            p->primary_ok = tensor_copy(&p->primary, &q->outputs[0]);
        p->primary_ns = q->t_done - q->t_start;
        pair_put(p);
    }
    c->n_pairs = 0;
}

/* Worker thread: the request ran; write the response and resume. */
static void on_done(struct qv_infer_req *q)
{
    struct infer_ctx *c = q->ud;
    struct qv_http_req *h = c->http;
    int err = q->status;

    feed_pairs(c);
    if (c->group) {
        c->latency_ns = q->t_done - q->t_submit;
        if (atomic_fetch_sub_explicit(&c->group->pending, 1, memory_order_acq_rel) == 1)
            finish_compare(c->group);
        return;
    }

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
    else if (c->has_id && h->deps->router && q->n_outputs > 0)
        qv_router_set_outcome(h->deps->router, c->id, qv_tensor_class(&q->outputs[0]));
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

static int pick_and_acquire(struct infer_ctx *c, const char *model, struct qv_pick *pick,
                            struct qv_diag *d)
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

        memset(&in, 0, sizeof(in));
        in.get_key = sticky_key;
        in.get_key_ud = c;
        qv_router_pick(deps->router, model, &in, pick);
        if (!pick->is_default)
            version = pick->version;
    }
    err = qv_engine_acquire(deps->engine, model, version, &c->v, d);
    if (err == QV_OK || h->n_params > 1 || version == 0)
        return err;
    /* The routed version left between pick and acquire: serve the default. */
    d->msg[0] = '\0';
    return qv_engine_acquire(deps->engine, model, 0, &c->v, d);
}

/* ---- Decoding ---- */

/* The fast decoder's request into c; false (c untouched) when it does not
 * take the body. */
static bool fast_decode(struct infer_ctx *c, const char *body, size_t len)
{
    struct qv_fast_req fr, *f = &fr; /* 3.7 KiB of stack on the decoding thread */
    bool ok = qv__infer_fast_decode(body, len, f);

    if (ok) {
        memcpy(c->req.inputs, f->inputs, sizeof(f->inputs[0]) * (size_t)f->n_inputs);
        c->req.n_inputs = f->n_inputs;
        if (f->has_id) {
            memcpy(c->id, f->id, sizeof(c->id));
            c->has_id = true;
        }
        for (int i = 0; i < f->n_wanted; i++) {
            memcpy(c->wanted[i], f->wanted[i], QV_NAME_MAX);
            c->wanted_bin[i] = false; /* no parameters: JSON, as binary_data_output's default */
        }
        c->n_wanted = f->n_wanted;
    }
    return ok;
}

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
    err = qv__bin_flag(c->params, "binary_data_output", "parameters", &c->bin_default, NULL, d);
    if (err)
        return err;
    if (!json_is_array(inputs) || json_array_size(inputs) == 0)
        return qv_fail(d, QV_EINVAL, "inputs: expected a non-empty array of tensors");
    if (json_array_size(inputs) > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "inputs: at most %d tensors", QV_MAX_IO);
    json_array_foreach(inputs, i, t) {
        char field[32];
        bool used;
        snprintf(field, sizeof(field), "inputs[%zu]", i);
        err = qv__bin_input(t, field, &c->bin, &c->req.inputs[i], &used, d);
        if (!err && !used)
            err = qv_tensor_from_json(t, field, &c->req.inputs[i], d);
        if (err)
            return err;
        c->req.n_inputs++;
        for (int k = 0; k + 1 < c->req.n_inputs; k++)
            if (strcmp(c->req.inputs[k].name, c->req.inputs[i].name) == 0)
                return qv_fail(d, QV_EINVAL, "%s.name: input \"%s\" is given twice", field,
                               c->req.inputs[i].name);
    }
    err = qv__bin_finish(&c->bin, d);
    if (err)
        return err;
    outs = json_object_get(root, "outputs");
    if (outs != NULL) {
        if (!json_is_array(outs) || json_array_size(outs) > QV_MAX_IO)
            return qv_fail(d, QV_EINVAL, "outputs: expected an array of {\"name\": ...}");
        json_array_foreach(outs, i, t) {
            json_t *name = json_object_get(t, "name"), *op = json_object_get(t, "parameters");
            char field[48];
            if (!json_is_string(name))
                return qv_fail(d, QV_EINVAL, "outputs[%zu].name: expected a string", i);
            for (int k = 0; k < c->n_wanted; k++)
                if (strcmp(c->wanted[k], json_string_value(name)) == 0)
                    return qv_fail(d, QV_EINVAL,
                                   "outputs[%zu].name: output \"%s\" is requested twice", i,
                                   json_string_value(name));
            snprintf(field, sizeof(field), "outputs[%zu].parameters", i);
            if (op != NULL && !json_is_object(op))
                return qv_fail(d, QV_EINVAL, "%s: expected an object", field);
            /* Triton's classification extension (class_count in its clients)
             * is not implemented: refused, never answered as raw values. */
            if (json_object_get(op, "classification") != NULL)
                return qv_fail(d, QV_EINVAL, "%s.classification: the classification extension "
                               "is not implemented; ask for the output's values", field);
            c->wanted_bin[c->n_wanted] = c->bin_default;
            err = qv__bin_flag(op, "binary_data", field, &c->wanted_bin[c->n_wanted], NULL, d);
            if (err)
                return err;
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
    if (qv_shape_numel(shape, desc->ndim) < 0 ||
        qv_shape_numel(shape, desc->ndim) > QV_TENSOR_MAX_ELEMS)
        return qv_fail(d, QV_EINVAL, "%s: input \"%s\" would have more than %lld elements",
                       field, desc->name, (long long)QV_TENSOR_MAX_ELEMS);
    /* Structure and count first: nothing is allocated for data that cannot fit. */
    err = qv_tensor_json_check(vals, desc->ndim, shape, field, desc->name, d);
    if (err)
        return err;
    if (desc->dtype == QV_DTYPE_BYTES) /* strings, or {"b64": ...} (api_rest.md) */
        return qv_tensor_bytes_from_json(vals, field, desc->name, desc->ndim, shape, true, t, d);
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
    const char *ifield = "instances";
    int err;

    if (!json_is_object(root))
        return qv_fail(d, QV_EINVAL, "body: expected a JSON object");
    if (c->method != TFS_PREDICT) {
        const char *m = c->method == TFS_CLASSIFY ? ":classify" : ":regress";
        const struct qv_tensor_desc *o = &sig->outputs[0];
        int64_t per = 1;

        if (sig->n_inputs != 1 || sig->n_outputs != 1)
            return qv_fail(d, QV_EINVAL, "%s: takes a model with one input and one output; "
                           "this model has %d inputs and %d outputs (use :predict)", m,
                           sig->n_inputs, sig->n_outputs);
        if (o->dtype == QV_DTYPE_BYTES)
            return qv_fail(d, QV_EINVAL, "%s: output \"%s\" is BYTES, not scores (use :predict)",
                           m, o->name);
        for (int k = 1; k < o->ndim; k++)
            per = o->shape[k] < 0 ? -1 : (per < 0 ? -1 : per * o->shape[k]);
        if (c->method == TFS_REGRESS && per > 1)
            return qv_fail(d, QV_EINVAL, ":regress: output \"%s\" has %lld values a row; "
                           "regression takes one (use :predict or :classify)", o->name,
                           (long long)per);
        /* "examples" (api_rest.md): rows, each the input's values or an
         * object naming the input, read as "instances" are. */
        if (inst == NULL && cols == NULL) {
            inst = json_object_get(root, "examples");
            ifield = "examples";
        }
    }
    if ((inst == NULL) == (cols == NULL))
        return qv_fail(d, QV_EINVAL, c->method == TFS_PREDICT
                       ? "body: expected exactly one of \"instances\" or \"inputs\""
                       : "body: expected exactly one of \"examples\", \"instances\" or \"inputs\"");
    {
        json_t *sn = json_object_get(root, "signature_name");
        if (sn != NULL && (!json_is_string(sn) ||
                           strcmp(json_string_value(sn), "serving_default") != 0))
            return qv_fail(d, QV_EINVAL, "signature_name: the model has one signature, "
                           "\"serving_default\"");
    }
    if (sig->n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "model has no declared inputs");
    c->wire = inst ? WIRE_TFS_ROW : WIRE_TFS_COL;
    if (inst != NULL) {
        int64_t n = (int64_t)json_array_size(inst);
        if (!json_is_array(inst) || n == 0)
            return qv_fail(d, QV_EINVAL, "%s: expected a non-empty array", ifield);
        json_t *first = json_array_get(inst, 0);
        /* {"b64": "..."} is a value (a BYTES input's row), not named inputs. */
        if (json_is_object(first) &&
            !(json_object_size(first) == 1 && json_is_string(json_object_get(first, "b64")))) {
            for (int i = 0; i < sig->n_inputs; i++) {
                json_t *vals = json_array();
                size_t k;
                json_t *row;
                char field[96];
                json_array_foreach(inst, k, row) {
                    json_t *v = json_object_get(row, sig->inputs[i].name);
                    if (v == NULL) {
                        json_decref(vals);
                        return qv_fail(d, QV_EINVAL, "%s[%zu].%s: missing", ifield, k,
                                       sig->inputs[i].name);
                    }
                    json_array_append(vals, v);
                }
                snprintf(field, sizeof(field), "%s[].%s", ifield, sig->inputs[i].name);
                err = tfs_tensor(&sig->inputs[i], vals, n, field, &c->req.inputs[i], d);
                json_decref(vals);
                if (err)
                    return err;
                c->req.n_inputs++;
            }
            return QV_OK;
        }
        if (sig->n_inputs != 1)
            return qv_fail(d, QV_EINVAL, "%s: the model takes %d inputs; give each "
                           "instance as an object of named inputs", ifield, sig->n_inputs);
        err = tfs_tensor(&sig->inputs[0], inst, n, ifield, &c->req.inputs[0], d);
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

/* FP16 and BF16 inputs are widened for a model that computes in FP32 or FP64 (the
 * backends here have no half-precision kernels). */
static int widen_half(struct infer_ctx *c, struct qv_diag *d)
{
    const struct qv_signature *sig = qv_version_signature(c->v);

    for (int i = 0; i < c->req.n_inputs; i++) {
        struct qv_tensor *t = &c->req.inputs[i];
        if (t->dtype != QV_DTYPE_F16 && t->dtype != QV_DTYPE_BF16)
            continue;
        for (int k = 0; k < sig->n_inputs; k++) {
            if (strcmp(sig->inputs[k].name, t->name) != 0)
                continue;
            if (sig->inputs[k].dtype == QV_DTYPE_F32 || sig->inputs[k].dtype == QV_DTYPE_F64) {
                int err = qv_tensor_convert(t, sig->inputs[k].dtype, d);
                if (err)
                    return err == QV_ENOMEM ? qv_fail(d, err, "inputs[%d]: cannot widen %s",
                                                      i, qv_dtype_name(t->dtype)) : err;
            }
        }
    }
    return QV_OK;
}

/* Every output the request names must exist. */
static int check_wanted(const struct infer_ctx *c, struct qv_diag *d)
{
    const struct qv_signature *sig = qv_version_signature(c->v);

    for (int i = 0; i < c->n_wanted; i++) {
        bool found = false;
        for (int k = 0; k < sig->n_outputs && !found; k++)
            found = strcmp(sig->outputs[k].name, c->wanted[i]) == 0;
        if (!found)
            return qv_fail(d, QV_EINVAL, "outputs[%d].name: %s/%lld has no output \"%s\"", i,
                           qv_version_model(c->v), (long long)qv_version_number(c->v),
                           c->wanted[i]);
    }
    return QV_OK;
}

/* ---- Shadow traffic ---- */

/* Prepares shadow copies of c's (already checked) request for the versions the
 * route names; returns how many were queued. Pairs are attached to c before
 * anything is submitted, so the primary can finish at any time. */
static void start_shadows(struct infer_ctx *c, const struct qv_pick *pick,
                          struct shadow_ctx **todo, int *n_todo)
{
    const struct qv_api_deps *deps = c->http->deps;
    const char *model = qv_version_model(c->v);

    *n_todo = 0;
    for (int i = 0; i < pick->n_shadow; i++) {
        struct shadow_ctx *s;
        struct shadow_pair *p;
        struct qv_diag d = {{0}};
        qv_version *v = NULL;
        bool ok = true;

        if (pick->shadow[i] == qv_version_number(c->v) ||
            qv_engine_acquire(deps->engine, model, pick->shadow[i], &v, &d) != QV_OK)
            continue;
        s = calloc(1, sizeof(*s));
        p = calloc(1, sizeof(*p));
        if (s == NULL || p == NULL) {
            free(s);
            free(p);
            qv_version_release(v);
            continue;
        }
        for (int k = 0; k < c->req.n_inputs && ok; k++) {
            ok = tensor_copy(&s->req.inputs[k], &c->req.inputs[k]);
            s->req.n_inputs += ok;
        }
        if (!ok || qv_engine_prepare(v, &s->req, &d) != QV_OK) {
            qv_infer_req_fini(&s->req);
            free(s);
            free(p);
            qv_version_release(v);
            continue;
        }
        atomic_init(&p->refs, 2);
        p->mon = deps->monitor;
        snprintf(p->model, sizeof(p->model), "%s", model);
        p->primary_v = qv_version_number(c->v);
        p->shadow_v = pick->shadow[i];
        s->pair = p;
        s->v = v;
        s->req.done = on_shadow_done;
        s->req.ud = s;
        c->pairs[c->n_pairs++] = p;
        todo[(*n_todo)++] = s;
    }
}

static void submit_shadows(struct shadow_ctx **todo, int n)
{
    for (int i = 0; i < n; i++) {
        struct shadow_ctx *s = todo[i];
        struct qv_diag d = {{0}};
        if (qv_engine_submit_background(s->v, &s->req, &d) == QV_OK)
            continue;
        /* Dropped (lane full): the pair records nothing. */
        struct shadow_pair *p = s->pair;
        qv_infer_req_fini(&s->req);
        qv_version_release(s->v);
        free(s);
        pair_put(p);
    }
}

/* ---- Compare policy ---- */

static int put_member_outputs(struct qv_buf *b, const struct infer_ctx *m)
{
    int err = qv_buf_printf(b, "{\"model_version\":\"%lld\",\"latency_ms\":%.3f,",
                            (long long)qv_version_number(m->v), (double)m->latency_ns / 1e6);

    if (m->req.status != QV_OK) {
        err = err ? err : qv_buf_append(b, "\"error\":", 8);
        err = err ? err : qv__api_json_string(b, m->req.diag.msg);
        return err ? err : qv_buf_append(b, "}", 1);
    }
    err = err ? err : qv_buf_append(b, "\"outputs\":[", 11);
    for (int i = 0; i < m->req.n_outputs && !err; i++) {
        err = i ? qv_buf_append(b, ",", 1) : 0;
        err = err ? err : qv_tensor_to_json(&m->req.outputs[i], b);
    }
    return err ? err : qv_buf_append(b, "]}", 2);
}

/* Worker thread: every member has finished; choose and answer. */
static void finish_compare(struct compare_group *g)
{
    struct qv_http_req *h = g->http;
    const float *outs[QV_ROUTE_MAX_COMPARE];
    double scores[QV_ROUTE_MAX_COMPARE];
    struct infer_ctx *ok[QV_ROUTE_MAX_COMPARE];
    struct infer_ctx *lead = NULL;
    struct qv_tensor mixed;
    float *combined = NULL;
    int n = 0, chosen = -1, err = QV_OK;
    size_t rows = 0, cols = 0;

    memset(&mixed, 0, sizeof(mixed));
    for (int i = 0; i < g->n; i++) {
        struct infer_ctx *m = g->members[i];
        struct qv_tensor *t = &m->req.outputs[0];
        if (m->req.status != QV_OK || m->req.n_outputs < 1 || t->ndim < 1 ||
            qv_tensor_convert(t, QV_DTYPE_F32, NULL) != QV_OK)
            continue;
        if (n > 0 && (size_t)qv_tensor_numel(t) != rows * cols)
            continue; /* a version whose output does not line up cannot vote */
        if (n == 0) {
            rows = (size_t)t->shape[0];
            cols = rows ? (size_t)qv_tensor_numel(t) / rows : 0;
        }
        outs[n] = t->data;
        scores[n] = g->scores[i];
        ok[n++] = m;
    }
    h->resp.len = 0;
    if (n == 0) {
        const struct qv_infer_req *q0 = &g->members[0]->req;
        h->diag = q0->diag;
        err = q0->status ? q0->status : QV_EBACKEND;
        if (q0->status == QV_OK && q0->n_outputs > 0 && q0->outputs[0].dtype == QV_DTYPE_BYTES)
            err = qv_fail(&h->diag, QV_EINVAL, "compare: output \"%s\" is BYTES; the compare "
                          "policy combines numeric outputs", q0->outputs[0].name);
        goto out;
    }
    combined = malloc(sizeof(float) * (rows * cols + 1));
    if (combined == NULL ||
        qv_compare_select(g->select, outs, n, rows, cols, scores, combined, &chosen) != QV_OK) {
        err = qv_fail(&h->diag, QV_EBACKEND, "compare: cannot combine the outputs");
        goto out;
    }
    lead = chosen >= 0 ? ok[chosen] : ok[0];
    if (chosen < 0) {
        /* mean or majority: the answer is no single version's output. */
        const struct qv_tensor *t = &lead->req.outputs[0];
        err = qv_tensor_alloc(&mixed, t->name, QV_DTYPE_F32, t->ndim, t->shape);
        if (err) {
            qv_fail(&h->diag, err, "compare: cannot allocate the combined output");
            goto out;
        }
        memcpy(mixed.data, combined, sizeof(float) * rows * cols);
    }
    if (lead->has_id && h->deps->router) {
        qv_router_remember(h->deps->router, lead->id, qv_version_model(lead->v),
                           qv_version_number(lead->v));
        qv_router_set_outcome(h->deps->router, lead->id,
                              qv_tensor_class(mixed.data ? &mixed : &lead->req.outputs[0]));
    }
    snprintf(h->version_header, sizeof(h->version_header), "%lld",
             (long long)qv_version_number(lead->v));
    err = qv_buf_append(&h->resp, "{\"model_name\":", 14);
    err = err ? err : qv__api_json_string(&h->resp, qv_version_model(lead->v));
    err = err ? err : qv_buf_printf(&h->resp, ",\"model_version\":\"%lld\"",
                                    (long long)qv_version_number(lead->v));
    if (lead->has_id) {
        err = err ? err : qv_buf_append(&h->resp, ",\"id\":", 6);
        err = err ? err : qv__api_json_string(&h->resp, lead->id);
    }
    err = err ? err : qv_buf_printf(&h->resp, ",\"parameters\":{\"compare\":{\"select\":\"%s\","
                                    "\"versions\":[", qv_select_name(g->select));
    for (int i = 0; i < g->n && !err; i++)
        err = qv_buf_printf(&h->resp, "%s\"%lld\"", i ? "," : "",
                            (long long)qv_version_number(g->members[i]->v));
    err = err ? err : qv_buf_append(&h->resp, "]}", 2);
    if (g->all_outputs) {
        err = err ? err : qv_buf_append(&h->resp, ",\"all_outputs\":[", 16);
        for (int i = 0; i < g->n && !err; i++) {
            err = i ? qv_buf_append(&h->resp, ",", 1) : 0;
            err = err ? err : put_member_outputs(&h->resp, g->members[i]);
        }
        err = err ? err : qv_buf_append(&h->resp, "]", 1);
    }
    err = err ? err : qv_buf_append(&h->resp, "},\"outputs\":[", 13);
    for (int i = 0; i < lead->req.n_outputs && !err; i++) {
        err = i ? qv_buf_append(&h->resp, ",", 1) : 0;
        err = err ? err : qv_tensor_to_json(i == 0 && mixed.data ? &mixed : &lead->req.outputs[i],
                                            &h->resp);
    }
    err = err ? err : qv_buf_append(&h->resp, "]}", 2);
    h->status = 200;
out:
    if (err)
        qv__api_error(h, err);
    qv_tensor_fini(&mixed);
    free(combined);
    for (int i = 0; i < g->n; i++) {
        qv_version_release(g->members[i]->v);
        ctx_free(g->members[i]);
    }
    free(g);
    h->complete(h);
}

/* Runs the request on every compare target. c holds the decoded inputs; it
 * becomes the first member. Returns QV_API_PENDING or an error (nothing
 * started). */
static int run_compare(struct infer_ctx *c, const struct qv_pick *pick)
{
    struct qv_http_req *h = c->http;
    const struct qv_api_deps *deps = h->deps;
    const char *model = h->params[0];
    struct compare_group *g;
    json_t *all;
    int err = QV_OK;

    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return qv_fail(&h->diag, QV_ENOMEM, "cannot allocate the compare group");
    g->http = h;
    g->select = pick->select;
    all = json_object_get(c->params, "all_outputs");
    g->all_outputs = json_is_true(all);
    for (int i = 0; i < pick->n_compare; i++) {
        struct infer_ctx *m = i == 0 ? c : calloc(1, sizeof(*m));
        struct qv_diag d = {{0}};
        bool ok = true;
        int rc;

        if (m == NULL)
            continue;
        if (i > 0) {
            m->http = h;
            m->wire = WIRE_KSERVE;
            m->has_id = c->has_id;
            memcpy(m->id, c->id, sizeof(m->id));
            for (int k = 0; k < c->req.n_inputs && ok; k++) {
                ok = tensor_copy(&m->req.inputs[k], &c->req.inputs[k]);
                m->req.n_inputs += ok;
            }
        }
        m->req.done = on_done;
        m->req.ud = m;
        m->group = g;
        rc = ok ? qv_engine_acquire(deps->engine, model, pick->compare[i], &m->v, &d)
                : qv_fail(&d, QV_ENOMEM, "cannot copy the inputs");
        if (rc == QV_OK)
            rc = qv_engine_prepare(m->v, &m->req, &d);
        if (rc != QV_OK) {
            if (i == 0) {
                err = qv_fail(&h->diag, rc, "%s", d.msg[0] ? d.msg : qv_strerror(rc));
                qv_version_release(m->v);
                m->v = NULL;
                break;
            }
            qv_version_release(m->v);
            ctx_free(m);
            continue;
        }
        g->scores[g->n] = pick->compare_score[i];
        g->members[g->n++] = m;
    }
    if (err || g->n == 0) {
        for (int i = 1; i < g->n; i++) {
            qv_version_release(g->members[i]->v);
            ctx_free(g->members[i]);
        }
        free(g);
        return err ? err : qv_fail(&h->diag, QV_EBUSY, "compare: no target is READY");
    }
    atomic_init(&g->pending, g->n);
    snprintf(h->version_header, sizeof(h->version_header), "%lld",
             (long long)qv_version_number(c->v));
    h->suspend(h);
    for (int i = 0, n = g->n; i < n; i++) {
        struct infer_ctx *m = g->members[i];
        struct qv_diag d = {{0}};
        if (qv_engine_submit(m->v, &m->req, &d) != QV_OK) {
            m->req.status = QV_EOVERLOAD;
            m->req.diag = d;
            if (atomic_fetch_sub_explicit(&g->pending, 1, memory_order_acq_rel) == 1)
                finish_compare(g);
        }
    }
    return QV_API_PENDING;
}

/* ---- Handlers ---- */

/* A full queue is refused before anything is prepared or suspended, so that
 * a 429 stays cheap under overload (qv_engine_submit still has the last word). */
static int refuse_if_full(struct qv_http_req *h, const qv_version *v)
{
    if (!qv_engine_is_full(v))
        return QV_OK;
    snprintf(h->version_header, sizeof(h->version_header), "%lld",
             (long long)qv_version_number(v));
    qv_vstats_request(qv_version_stats(v), QV_OUTCOME_OVERLOAD, 0, 0, 0);
    return qv_fail(&h->diag, QV_EOVERLOAD, "%s/%lld: queue is full", qv_version_model(v),
                   (long long)qv_version_number(v));
}

static void no_suspend(struct qv_http_req *h)
{
    (void)h; /* the lane suspended the connection already */
}

/* Takes an estimate of the JSON tree's memory from the server's decoding
 * budget: jansson's tree is up to ~20 times the text. */
static int decode_budget_take(struct qv_http_req *h, size_t json_len, size_t *took)
{
    struct qv_api *a = h->api;
    size_t want = json_len * QV_API_JSON_TREE_FACTOR, cur;

    *took = 0;
    if (a == NULL || json_len < QV_API_LARGE_BODY)
        return QV_OK; /* small bodies are not counted */
    cur = atomic_load(&a->decode_bytes);
    do {
        if (cur + want > a->cfg.decode_budget_bytes && cur > 0)
            return qv_fail(&h->diag, QV_EOVERLOAD,
                           "body: decoding it now would exceed the server's JSON decoding "
                           "budget of %zu bytes; retry shortly", a->cfg.decode_budget_bytes);
    } while (!atomic_compare_exchange_weak(&a->decode_bytes, &cur, cur + want));
    *took = want;
    return QV_OK;
}

static void decode_budget_give(struct qv_http_req *h, size_t took)
{
    if (took)
        atomic_fetch_sub(&h->api->decode_bytes, took);
}

static int infer(struct qv_http_req *h, bool tfs);

static int infer_lane_kserve(struct qv_http_req *h)
{
    h->suspend = no_suspend;
    return infer(h, false);
}

static int infer_lane_tfs(struct qv_http_req *h)
{
    h->suspend = no_suspend;
    return infer(h, true);
}

static int infer(struct qv_http_req *h, bool tfs)
{
    const struct qv_api_deps *deps = h->deps;
    const char *model = h->params[0];
    struct shadow_ctx *shadows[QV_ROUTE_MAX_SHADOW];
    struct qv_pick pick;
    struct infer_ctx *c;
    json_error_t jerr;
    json_t *root;
    size_t took = 0, json_len;
    struct qv_bin bin;
    int err, n_shadows = 0;
    bool fast;

    /* A version named in the URL with a full queue is refused before the body
     * is even parsed: under overload a 429 must cost as little as possible. */
    if (h->n_params > 1 && qv__api_param_version(h, 1) > 0) {
        qv_version *v = NULL;
        if (qv_engine_acquire(deps->engine, model, qv__api_param_version(h, 1), &v, NULL) ==
            QV_OK) {
            err = refuse_if_full(h, v);
            qv_version_release(v);
            if (err)
                return err;
        }
    }
    /* A large body is decoded on the decode lane, not on an HTTP thread. */
    if (h->body_len >= QV_API_LARGE_BODY && h->api && h->api->decode &&
        h->suspend != no_suspend) {
        h->keep_body = true;
        err = qv__api_lane_submit(h->api->decode, h, tfs ? infer_lane_tfs : infer_lane_kserve);
        if (err != QV_API_PENDING)
            h->keep_body = false;
        return err;
    }
    err = qv__bin_split(h, &json_len, &bin, &h->diag);
    if (!err && tfs && bin.present)
        err = qv_fail(&h->diag, QV_EINVAL, QV_BIN_HEADER ": binary tensor data is a KServe v2 "
                      "extension; TF Serving requests are JSON only");
    if (err)
        return err;
    err = decode_budget_take(h, json_len, &took);
    if (err)
        return err;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        decode_budget_give(h, took);
        if (h->keep_body && h->body_done)
            h->body_done(h);
        return qv_fail(&h->diag, QV_ENOMEM, "cannot allocate the request");
    }
    /* The common request shape in one pass (infer_fast.c); any other body,
     * and every invalid one, through jansson. */
    fast = !tfs && !bin.present && fast_decode(c, h->body, json_len);
    root = NULL;
    if (!fast) {
        size_t ql = 0;
        char *quoted = qv_json_quote_nonfinite(h->body, json_len, &ql);
        root = quoted ? json_loadb(quoted, ql, 0, &jerr) : json_loadb(h->body, json_len, 0, &jerr);
        free(quoted);
        if (root == NULL) {
            free(c);
            if (h->keep_body && h->body_done)
                h->body_done(h);
            decode_budget_give(h, took);
            return qv_fail(&h->diag, QV_EINVAL, "body: invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
        }
    }
    c->http = h;
    c->bin = bin;
    c->wire = WIRE_KSERVE;
    if (tfs) {
        size_t pl = strlen(h->path);
        if (pl > 9 && strcmp(h->path + pl - 9, ":classify") == 0)
            c->method = TFS_CLASSIFY;
        else if (pl > 8 && strcmp(h->path + pl - 8, ":regress") == 0)
            c->method = TFS_REGRESS;
    }
    c->req.done = on_done;
    c->req.ud = c;
    memset(&pick, 0, sizeof(pick));
    if (!tfs) {
        err = fast ? QV_OK : decode_kserve(c, root, &h->diag);
        if (!err)
            err = pick_and_acquire(c, model, &pick, &h->diag);
    } else {
        err = pick_and_acquire(c, model, &pick, &h->diag);
        if (!err)
            err = decode_tfs(c, root, &h->diag);
    }
    json_decref(root);
    decode_budget_give(h, took);
    memset(&c->bin, 0, sizeof(c->bin)); /* the body goes now */
    if (h->keep_body && h->body_done)
        h->body_done(h); /* the text is no longer needed */
    if (!err && !tfs && pick.n_compare > 1 && h->n_params < 2) {
        qv_version_release(c->v);
        c->v = NULL;
        err = run_compare(c, &pick);
        if (err == QV_API_PENDING)
            return err;
        ctx_free(c);
        return err;
    }
    if (!err)
        err = refuse_if_full(h, c->v);
    if (!err) {
        snprintf(h->version_header, sizeof(h->version_header), "%lld",
                 (long long)qv_version_number(c->v));
        err = widen_half(c, &h->diag);
        if (!err)
            err = qv_engine_prepare(c->v, &c->req, &h->diag);
        if (!err)
            err = check_wanted(c, &h->diag);
        if (err)
            qv_vstats_request(qv_version_stats(c->v), QV_OUTCOME_BAD_INPUT, 0, 0, 0);
    }
    if (!err && c->has_id && deps->router)
        qv_router_remember(deps->router, c->id, model, qv_version_number(c->v));
    if (!err) {
        if (pick.n_shadow > 0 && h->n_params < 2)
            start_shadows(c, &pick, shadows, &n_shadows);
        h->suspend(h);
        /* May run (and complete h) right here. Shadow copies hold copies of
         * the inputs and their pairs get the primary's output in on_done, so
         * an inline primary hands them on before they reach the lane. */
        c->req.may_inline = true;
        err = qv_engine_submit(c->v, &c->req, &h->diag);
        if (!err) {
            submit_shadows(shadows, n_shadows);
            return QV_API_PENDING;
        }
        /* The primary was refused (queue full): its shadows go nowhere. */
        for (int i = 0; i < n_shadows; i++) {
            struct shadow_pair *p = shadows[i]->pair;
            qv_infer_req_fini(&shadows[i]->req);
            qv_version_release(shadows[i]->v);
            free(shadows[i]);
            pair_put(p);
        }
        feed_pairs(c);
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
