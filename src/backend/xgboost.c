/* SPDX-License-Identifier: MIT
 *
 * The XGBoost backend, on libxgboost's C API. The only file that sees
 * <xgboost/c_api.h>. Loads XGBoost JSON and UBJSON models and predicts on
 * dense FP32 batches with XGBoosterPredictFromDense (in-place prediction,
 * which the library documents as thread-safe).
 */
#include "backend_impl.h"

#define QV_LOG_MODULE "xgboost"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

struct xgb_model {
    BoosterHandle booster;
    uint64_t n_features;
    int n_outputs;  /* per row: 1 for binary/regression, k for multi-class */
    size_t memory;  /* serialized size, as the in-memory trees' proxy */
    char config[160];
};

static int xgb_error(struct qv_diag *d, const char *what)
{
    return qv_fail(d, QV_EBACKEND, "%s: %s", what, XGBGetLastError());
}

/* Reads num_class from the booster's configuration, to describe the output. */
static int read_num_class(BoosterHandle h)
{
    bst_ulong len = 0;
    const char *cfg = NULL;
    json_t *root, *v;
    int k = 0;

    if (XGBoosterSaveJsonConfig(h, &len, &cfg) != 0 || cfg == NULL)
        return 0;
    root = json_loadb(cfg, len, 0, NULL);
    v = json_object_get(json_object_get(json_object_get(root, "learner"), "learner_model_param"),
                        "num_class");
    if (json_is_string(v))
        k = atoi(json_string_value(v));
    json_decref(root);
    return k;
}

static void xgb_unload(void *state)
{
    struct xgb_model *m = state;

    if (m == NULL)
        return;
    XGBoosterFree(m->booster);
    free(m);
}

static int xgb_load(const char *path, const struct qv_backend_params *p, void **state,
                    struct qv_diag *d)
{
    struct xgb_model *m = qv_xcalloc(1, sizeof(*m));
    bst_ulong feat = 0, len = 0;
    const char *raw = NULL;
    char nthread[16];
    int err = QV_OK;

    if (XGBoosterCreate(NULL, 0, &m->booster) != 0) {
        err = xgb_error(d, "cannot create booster");
        goto out;
    }
    if (XGBoosterLoadModel(m->booster, path) != 0) {
        err = xgb_error(d, "cannot load model");
        goto out;
    }
    snprintf(nthread, sizeof(nthread), "%d", p->threads > 0 ? p->threads : 1);
    if (XGBoosterSetParam(m->booster, "nthread", nthread) != 0) {
        err = xgb_error(d, "cannot set nthread");
        goto out;
    }
    if (XGBoosterGetNumFeature(m->booster, &feat) != 0 || feat == 0) {
        err = qv_fail(d, QV_EBACKEND, "model declares no features");
        goto out;
    }
    m->n_features = feat;
    m->n_outputs = read_num_class(m->booster);
    if (m->n_outputs < 2)
        m->n_outputs = 1;
    if (XGBoosterSaveModelToBuffer(m->booster, "{\"format\": \"ubj\"}", &len, &raw) == 0)
        m->memory = (size_t)len;
    snprintf(m->config, sizeof(m->config),
             "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0,"
             " \"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}");
    *state = m;
    m = NULL;
out:
    xgb_unload(m);
    return err;
}

static int xgb_describe(const void *state, struct qv_signature *sig)
{
    const struct xgb_model *m = state;

    sig->n_inputs = 1;
    snprintf(sig->inputs[0].name, QV_NAME_MAX, "input__0");
    sig->inputs[0].dtype = QV_DTYPE_F32;
    sig->inputs[0].ndim = 2;
    sig->inputs[0].shape[0] = -1;
    sig->inputs[0].shape[1] = (int64_t)m->n_features;
    sig->n_outputs = 1;
    snprintf(sig->outputs[0].name, QV_NAME_MAX, "output__0");
    sig->outputs[0].dtype = QV_DTYPE_F32;
    sig->outputs[0].shape[0] = -1;
    if (m->n_outputs > 1) {
        sig->outputs[0].ndim = 2;
        sig->outputs[0].shape[1] = m->n_outputs;
    } else {
        sig->outputs[0].ndim = 1;
    }
    return QV_OK;
}

static int xgb_infer(void *state, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                     int *n_out, struct qv_diag *d)
{
    struct xgb_model *m = state;
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    char iface[192];
    int64_t rows, oshape[2];
    int err;

    if (n_in != 1 || in[0].dtype != QV_DTYPE_F32 || in[0].ndim != 2 ||
        (uint64_t)in[0].shape[1] != m->n_features)
        return qv_fail(d, QV_EINVAL, "expected one FP32 input of shape [-1,%llu]",
                       (unsigned long long)m->n_features);
    rows = in[0].shape[0];
    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%lld, %llu], \"typestr\": \"<f4\","
             " \"version\": 3}",
             (unsigned long long)(uintptr_t)in[0].data, (long long)rows,
             (unsigned long long)m->n_features);
    if (XGBoosterPredictFromDense(m->booster, iface, m->config, NULL, &shape, &dim, &res) != 0)
        return xgb_error(d, "prediction failed");
    oshape[0] = rows;
    oshape[1] = m->n_outputs;
    err = qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, m->n_outputs > 1 ? 2 : 1, oshape);
    if (err)
        return qv_fail(d, err, "cannot allocate the output");
    {
        bst_ulong total = 1;
        for (bst_ulong i = 0; i < dim; i++)
            total *= shape[i];
        if (total != (bst_ulong)(rows * m->n_outputs)) {
            qv_tensor_fini(&out[0]);
            return qv_fail(d, QV_EBACKEND, "prediction has %llu values, expected %lld",
                           (unsigned long long)total, (long long)(rows * m->n_outputs));
        }
    }
    memcpy(out[0].data, res, out[0].nbytes);
    *n_out = 1;
    return QV_OK;
}

static size_t xgb_memory(const void *state)
{
    return ((const struct xgb_model *)state)->memory;
}

static const char *const xgb_exts[] = {".json", ".ubj", NULL};

const struct qv_backend qv_backend_xgboost = {
    .name = "xgboost",
    .file_exts = xgb_exts,
    .flags = QV_BACKEND_REENTRANT,
    .load = xgb_load,
    .unload = xgb_unload,
    .describe = xgb_describe,
    .infer = xgb_infer,
    .memory_used = xgb_memory,
};
