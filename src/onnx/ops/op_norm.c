/* SPDX-License-Identifier: MIT
 *
 * Normalization in inference mode: BatchNormalization (running statistics),
 * InstanceNormalization, LayerNormalization and LRN. Training-mode
 * BatchNormalization is rejected at plan time.
 */
#include "op.h"

struct norm_params {
    float eps;
    int64_t outer, channels, inner; /* [outer, channels, inner] view of X */
    float alpha, beta, bias;        /* LRN; alpha is BatchNormalization's momentum */
    bool training;                  /* BatchNormalization training_mode */
    int64_t size;
};

/* ---- BatchNormalization ---- */

/* Training mode (opset 14+): normalize with the batch's own statistics and
 * output the updated running mean and variance (population variance). The
 * batch statistics go to the node's scratch. */
static void batch_stats(const struct norm_params *p, const float *X, float *mean, float *var)
{
    double n = (double)(p->outer * p->inner);

    for (int64_t c = 0; c < p->channels; c++) {
        double m = 0, v = 0;
        for (int64_t o = 0; o < p->outer; o++)
            for (int64_t i = 0; i < p->inner; i++)
                m += X[(o * p->channels + c) * p->inner + i];
        m = n > 0 ? m / n : 0;
        for (int64_t o = 0; o < p->outer; o++)
            for (int64_t i = 0; i < p->inner; i++) {
                double t = X[(o * p->channels + c) * p->inner + i] - m;
                v += t * t;
            }
        mean[c] = (float)m;
        var[c] = (float)(n > 0 ? v / n : 0);
    }
}

/* Planes [c0, c1) of the [outer * channels] planes: y = x * a[c] + b[c]
 * (BatchNormalization) or each plane normalized by its own statistics
 * (InstanceNormalization). */
struct norm_job {
    const struct norm_params *p;
    const float *X, *scale, *B, *mean, *var;
    float *Y;
};

static void batch_norm_part(void *arg, int64_t c0, int64_t c1, int worker)
{
    const struct norm_job *j = arg;
    const struct norm_params *p = j->p;

    (void)worker;
    for (int64_t k = c0; k < c1; k++) {
        int64_t c = k % p->channels;
        float a = j->scale[c] / sqrtf(j->var[c] + p->eps);
        float b = j->B[c] - j->mean[c] * a;
        const float *xs = j->X + k * p->inner;
        float *ys = j->Y + k * p->inner;
        for (int64_t i = 0; i < p->inner; i++)
            ys[i] = xs[i] * a + b;
    }
}

static void instance_norm_part(void *arg, int64_t c0, int64_t c1, int worker)
{
    const struct norm_job *j = arg;
    const struct norm_params *p = j->p;

    (void)worker;
    for (int64_t k = c0; k < c1; k++) {
        int64_t c = k % p->channels;
        const float *xs = j->X + k * p->inner;
        float *ys = j->Y + k * p->inner;
        double mean = 0, var = 0;
        float a, b;
        for (int64_t i = 0; i < p->inner; i++)
            mean += xs[i];
        mean /= (double)(p->inner ? p->inner : 1);
        for (int64_t i = 0; i < p->inner; i++)
            var += (xs[i] - mean) * (xs[i] - mean);
        var /= (double)(p->inner ? p->inner : 1);
        a = j->scale[c] / sqrtf((float)var + p->eps);
        b = j->B[c] - (float)mean * a;
        for (int64_t i = 0; i < p->inner; i++)
            ys[i] = xs[i] * a + b;
    }
}

/* Planes per part: enough elements to pay for the hand-off. */
static int64_t plane_grain(int64_t inner)
{
    return inner >= QV_PAR_GRAIN ? 1 : QV_PAR_GRAIN / (inner + 1) + 1;
}

static int batch_norm_f32(struct qv_exec *x)
{
    const struct norm_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *scale = x->in[1]->data, *B = x->in[2]->data;
    const float *mean = x->in[3]->data, *var = x->in[4]->data;
    float *Y = x->out[0]->data;

    if (p->training) {
        float *bm = x->scratch, *bv = bm + p->channels;
        batch_stats(p, X, bm, bv);
        for (int k = 1; k < 3 && k < x->n_out; k++) {
            float *r = x->out[k] ? x->out[k]->data : NULL;
            const float *in_s = k == 1 ? mean : var, *cur = k == 1 ? bm : bv;
            for (int64_t c = 0; r && c < p->channels; c++)
                r[c] = in_s[c] * p->alpha + cur[c] * (1 - p->alpha);
        }
        mean = bm;
        var = bv;
    }
    {
        struct norm_job j = {p, X, scale, B, mean, var, Y};
        qv_parallel_dyn(x, p->outer * p->channels, plane_grain(p->inner), batch_norm_part, &j);
    }
    return QV_OK;
}

static int view_nc(struct qv_exec *x, struct norm_params *p, struct qv_diag *d)
{
    const struct qv_tensor *X = x->in[0];

    if (X->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    if (X->ndim < 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "input rank must be >= 2");
    p->outer = X->shape[0];
    p->channels = X->shape[1];
    p->inner = 1;
    for (int i = 2; i < X->ndim; i++)
        p->inner *= X->shape[i];
    return QV_OK;
}

static int batch_norm_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct norm_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 5, 5, 1, 5, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    err = view_nc(x, p, d);
    if (err)
        return err;
    p->training = x->node->opset >= 14 && qv_attr_int(x->node, "training_mode", 0) != 0;
    if (x->node->opset < 7 && qv_attr_int(x->node, "is_test", 0) == 0 && x->n_out > 1)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "training mode is not supported before opset 14");
    if (x->node->opset < 9 && qv_attr_int(x->node, "spatial", 1) == 0)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "spatial=0 is not supported");
    for (int i = 1; i < 5; i++)
        if (x->in[i]->dtype != QV_DTYPE_F32 || qv_numel(x->in[i]) != p->channels)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d must be float32 [%lld]", i,
                              (long long)p->channels);
    for (int i = p->training ? 3 : 1; i < x->n_out; i++)
        if (x->out[i])
            return qv_op_fail(x->node, d, QV_ENOTSUP,
                              "saved mean/variance outputs are not supported");
    p->eps = qv_attr_float(x->node, "epsilon", 1e-5f);
    p->alpha = qv_attr_float(x->node, "momentum", 0.9f);
    if (p->training) {
        int64_t c = p->channels;
        x->scratch_bytes = sizeof(float) * (size_t)(2 * c + 1);
        qv_out_set(x, 1, QV_DTYPE_F32, 1, &c);
        qv_out_set(x, 2, QV_DTYPE_F32, 1, &c);
    }
    return qv_shape_same_as_input0(x, d);
}

/* ---- InstanceNormalization ---- */

static int instance_norm_f32(struct qv_exec *x)
{
    const struct norm_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *scale = x->in[1]->data, *B = x->in[2]->data;
    float *Y = x->out[0]->data;
    struct norm_job j = {p, X, scale, B, NULL, NULL, Y};

    qv_parallel_dyn(x, p->outer * p->channels, plane_grain(p->inner), instance_norm_part, &j);
    return QV_OK;
}

static int instance_norm_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct norm_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    err = view_nc(x, p, d);
    if (err)
        return err;
    for (int i = 1; i < 3; i++)
        if (x->in[i]->dtype != QV_DTYPE_F32 || qv_numel(x->in[i]) != p->channels)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d must be float32 [%lld]", i,
                              (long long)p->channels);
    p->eps = qv_attr_float(x->node, "epsilon", 1e-5f);
    return qv_shape_same_as_input0(x, d);
}

/* ---- LayerNormalization (opset 17) ---- */

static int layer_norm_f32(struct qv_exec *x)
{
    const struct norm_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data, *scale = x->in[1]->data;
    const struct qv_tensor *bt = x->n_in > 2 ? x->in[2] : NULL;
    const float *B = bt ? bt->data : NULL;
    int64_t ns = qv_numel(x->in[1]), nb = bt ? qv_numel(bt) : 0;
    float *Y = x->out[0]->data;
    float *mean_out = x->n_out > 1 && x->out[1] ? x->out[1]->data : NULL;
    float *rstd_out = x->n_out > 2 && x->out[2] ? x->out[2]->data : NULL;

    for (int64_t o = 0; o < p->outer; o++) {
        const float *xs = X + o * p->inner;
        float *ys = Y + o * p->inner;
        double mean = 0, var = 0;
        float rstd;
        for (int64_t i = 0; i < p->inner; i++)
            mean += xs[i];
        mean /= (double)(p->inner ? p->inner : 1);
        for (int64_t i = 0; i < p->inner; i++)
            var += (xs[i] - mean) * (xs[i] - mean);
        var /= (double)(p->inner ? p->inner : 1);
        rstd = 1.0f / sqrtf((float)var + p->eps);
        for (int64_t i = 0; i < p->inner; i++)
            ys[i] = (float)(xs[i] - mean) * rstd * scale[ns == 1 ? 0 : i] +
                    (B ? B[nb == 1 ? 0 : i] : 0.0f);
        if (mean_out)
            mean_out[o] = (float)mean;
        if (rstd_out)
            rstd_out[o] = rstd;
    }
    return QV_OK;
}

static int layer_norm_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct norm_params *p = (void *)x->priv;
    const struct qv_tensor *X;
    int64_t shape[QV_MAX_DIMS];
    int axis, err = qv_op_arity(x, 2, 3, 1, 3, d);

    if (err)
        return err;
    X = x->in[0];
    if (X->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", -1), X->ndim, &axis, d);
    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    p->outer = 1;
    p->inner = 1;
    for (int i = 0; i < X->ndim; i++) {
        if (i < axis)
            p->outer *= X->shape[i];
        else
            p->inner *= X->shape[i];
        shape[i] = i < axis ? X->shape[i] : 1;
    }
    for (int i = 1; i < x->n_in; i++)
        if (x->in[i] && (qv_numel(x->in[i]) != p->inner && qv_numel(x->in[i]) != 1))
            return qv_op_fail(x->node, d, QV_ENOTSUP, "scale/bias must cover the normalized dims");
    p->eps = qv_attr_float(x->node, "epsilon", 1e-5f);
    qv_shape_same_as_input0(x, d);
    for (int i = 1; i < x->n_out; i++)
        qv_out_set(x, i, QV_DTYPE_F32, X->ndim, shape);
    return QV_OK;
}

/* ---- LRN ---- */

static int lrn_f32(struct qv_exec *x)
{
    const struct norm_params *p = (const void *)x->priv;
    const float *X = x->in[0]->data;
    float *Y = x->out[0]->data;
    int64_t lo = (p->size - 1) / 2, hi = p->size - 1 - lo;

    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t c = 0; c < p->channels; c++)
            for (int64_t i = 0; i < p->inner; i++) {
                double sq = 0;
                for (int64_t k = c - lo; k <= c + hi; k++) {
                    float v;
                    if (k < 0 || k >= p->channels)
                        continue;
                    v = X[(o * p->channels + k) * p->inner + i];
                    sq += (double)v * v;
                }
                Y[(o * p->channels + c) * p->inner + i] =
                    X[(o * p->channels + c) * p->inner + i] /
                    (float)pow(p->bias + p->alpha / (double)p->size * sq, p->beta);
            }
    return QV_OK;
}

static int lrn_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct norm_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    err = view_nc(x, p, d);
    if (err)
        return err;
    p->alpha = qv_attr_float(x->node, "alpha", 1e-4f);
    p->beta = qv_attr_float(x->node, "beta", 0.75f);
    p->bias = qv_attr_float(x->node, "bias", 1.0f);
    p->size = qv_attr_int(x->node, "size", 0);
    if (p->size < 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "attribute 'size' must be >= 1");
    return qv_shape_same_as_input0(x, d);
}

/* ---- MeanVarianceNormalization ---- */

struct mvn_params {
    bool reduce[QV_MAX_DIMS];
};

/* (X - mean) / sqrt(var) over the 'axes' dims, for each position of the others. */
static int mvn_f32(struct qv_exec *x)
{
    const struct mvn_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const float *X = in->data;
    float *Y = x->out[0]->data;
    int64_t n = qv_numel(in), groups = 1, per = 1, kstride[QV_MAX_DIMS], gstride[QV_MAX_DIMS];
    int r = in->ndim;

    /* Enumerate kept dims as groups and reduced dims as members. */
    for (int i = r - 1; i >= 0; i--) {
        if (p->reduce[i]) {
            kstride[i] = per;
            gstride[i] = 0;
            per *= in->shape[i];
        } else {
            gstride[i] = groups;
            kstride[i] = 0;
            groups *= in->shape[i];
        }
    }
    (void)n;
    for (int64_t g = 0; g < groups; g++) {
        double mean = 0, var = 0;
        for (int pass = 0; pass < 3; pass++) {
            for (int64_t m = 0; m < per; m++) {
                int64_t off = 0, acc = 1;
                for (int i = r - 1; i >= 0; i--) {
                    int64_t c = p->reduce[i] ? (m / kstride[i]) % in->shape[i]
                                             : (g / gstride[i]) % in->shape[i];
                    off += c * acc;
                    acc *= in->shape[i];
                }
                if (pass == 0)
                    mean += X[off];
                else if (pass == 1)
                    var += (X[off] - mean) * (X[off] - mean);
                else
                    Y[off] = (float)((X[off] - mean) / sqrt(var + 1e-9));
            }
            if (pass == 0)
                mean /= (double)(per ? per : 1);
            else if (pass == 1)
                var /= (double)(per ? per : 1);
        }
    }
    return QV_OK;
}

static int mvn_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct mvn_params *p = (void *)x->priv;
    static const int64_t dflt[] = {0, 2, 3};
    const int64_t *axes;
    int n, err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    axes = qv_attr_ints(x->node, "axes", &n);
    if (axes == NULL) {
        axes = dflt;
        n = 3;
    }
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < n; i++) {
        int a;
        err = qv_axis_norm(x, axes[i], x->in[0]->ndim, &a, d);
        if (err)
            return err;
        p->reduce[a] = true;
    }
    return qv_shape_same_as_input0(x, d);
}

const struct qv_op qv_op_mean_variance_normalization = {.name = "MeanVarianceNormalization",
                                                        .since_version = 9,
                                                        .infer_shape = mvn_infer,
                                                        .kernels = {[QV_DTYPE_F32] = mvn_f32}};
const struct qv_op qv_op_batch_normalization = {.name = "BatchNormalization",
                                                .since_version = 1,
                                                .infer_shape = batch_norm_infer,
                                                .kernels = {[QV_DTYPE_F32] = batch_norm_f32}};
const struct qv_op qv_op_instance_normalization = {.name = "InstanceNormalization",
                                                   .since_version = 1,
                                                   .infer_shape = instance_norm_infer,
                                                   .kernels = {[QV_DTYPE_F32] = instance_norm_f32}};
const struct qv_op qv_op_layer_normalization = {.name = "LayerNormalization",
                                                .since_version = 17,
                                                .infer_shape = layer_norm_infer,
                                                .kernels = {[QV_DTYPE_F32] = layer_norm_f32}};
const struct qv_op qv_op_lrn = {.name = "LRN",
                                .since_version = 1,
                                .infer_shape = lrn_infer,
                                .kernels = {[QV_DTYPE_F32] = lrn_f32}};
