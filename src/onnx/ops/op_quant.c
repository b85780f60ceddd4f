/* SPDX-License-Identifier: MIT
 *
 * Linear quantization: QuantizeLinear, DequantizeLinear (per tensor or per
 * axis) and DynamicQuantizeLinear. Rounding is half to even, results
 * saturate to the target type.
 */
#include "op.h"

#include <stdint.h>

struct quant_params {
    int axis;           /* per-axis scale, or -1 */
    int64_t inner, dim; /* elements after the axis; axis length */
};

static int quant_common(struct qv_exec *x, struct quant_params *p, struct qv_diag *d)
{
    const struct qv_tensor *in = x->in[0], *scale = x->in[1];
    const struct qv_tensor *zp = x->n_in > 2 ? x->in[2] : NULL;

    p->axis = -1;
    p->inner = 1;
    p->dim = 1;
    if (qv_numel(scale) != 1 || scale->ndim > 1) {
        int axis;
        int err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 1), in->ndim, &axis, d);
        if (err)
            return err;
        if (scale->ndim != 1 || scale->shape[0] != in->shape[axis])
            return qv_op_fail(x->node, d, QV_EINVAL, "scale must be a scalar or [%lld]",
                              (long long)in->shape[axis]);
        p->axis = axis;
        p->dim = in->shape[axis];
        for (int i = axis + 1; i < in->ndim; i++)
            p->inner *= in->shape[i];
    }
    if (zp && qv_numel(zp) != qv_numel(scale))
        return qv_op_fail(x->node, d, QV_EINVAL, "zero point and scale differ in size");
    return QV_OK;
}

static inline int64_t channel(const struct quant_params *p, int64_t i)
{
    return p->axis < 0 ? 0 : (i / p->inner) % p->dim;
}

static int quantize_f32(struct qv_exec *x)
{
    const struct quant_params *p = (const void *)x->priv;
    const float *in = x->in[0]->data, *scale = x->in[1]->data;
    const struct qv_tensor *zp = x->n_in > 2 ? x->in[2] : NULL;
    struct qv_tensor *o = x->out[0];
    bool is_signed = o->dtype == QV_DTYPE_I8;
    int64_t n = qv_numel(o);

    for (int64_t i = 0; i < n; i++) {
        int64_t c = channel(p, i);
        double z = zp ? qv_tensor_get_f64(zp, c) : 0;
        double v = (double)nearbyintf(in[i] / scale[c]) + z; /* float32 math, as ONNX */
        double lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
        v = isnan(v) ? 0 : (v < lo ? lo : (v > hi ? hi : v));
        if (is_signed)
            ((int8_t *)o->data)[i] = (int8_t)v;
        else
            ((uint8_t *)o->data)[i] = (uint8_t)v;
    }
    return QV_OK;
}

static int quantize_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct quant_params *p = (void *)x->priv;
    const struct qv_tensor *zp;
    enum qv_dtype t = QV_DTYPE_U8;
    int err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    zp = x->n_in > 2 ? x->in[2] : NULL;
    if (zp)
        t = zp->dtype;
    if ((t != QV_DTYPE_U8 && t != QV_DTYPE_I8) || x->in[0]->dtype != QV_DTYPE_F32 ||
        x->in[1]->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "float32 to uint8/int8 only");
    err = quant_common(x, p, d);
    if (err)
        return err;
    qv_out_set(x, 0, t, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

static int dequantize_kernel(struct qv_exec *x)
{
    const struct quant_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const float *scale = x->in[1]->data;
    const struct qv_tensor *zp = x->n_in > 2 ? x->in[2] : NULL;
    float *out = x->out[0]->data;
    int64_t n = qv_numel(in);

    for (int64_t i = 0; i < n; i++) {
        int64_t c = channel(p, i);
        double z = zp ? qv_tensor_get_f64(zp, c) : 0;
        out[i] = (float)((qv_tensor_get_f64(in, i) - z) * scale[c]);
    }
    return QV_OK;
}

static int dequantize_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct quant_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    if (x->in[1]->dtype != QV_DTYPE_F32 ||
        (x->n_in > 2 && x->in[2] && x->in[2]->dtype != x->in[0]->dtype))
        return qv_op_fail(x->node, d, QV_ENOTSUP, "scale must be float32, zero point as x");
    err = quant_common(x, p, d);
    if (err)
        return err;
    qv_out_set(x, 0, QV_DTYPE_F32, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

static int dynamic_quantize_f32(struct qv_exec *x)
{
    const float *in = x->in[0]->data;
    uint8_t *y = x->out[0]->data;
    int64_t n = qv_numel(x->in[0]);
    float lo = 0, hi = 0, scale, zpf;
    uint8_t zp;

    for (int64_t i = 0; i < n; i++) {
        lo = in[i] < lo ? in[i] : lo;
        hi = in[i] > hi ? in[i] : hi;
    }
    scale = (hi - lo) / 255.0f;
    zpf = scale == 0 ? 0 : nearbyintf(-lo / scale);
    zp = (uint8_t)(zpf < 0 ? 0 : (zpf > 255 ? 255 : zpf));
    for (int64_t i = 0; i < n; i++) {
        float v = scale == 0 ? 0 : nearbyintf(in[i] / scale) + zp;
        y[i] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
    if (x->n_out > 1 && x->out[1])
        *(float *)x->out[1]->data = scale;
    if (x->n_out > 2 && x->out[2])
        *(uint8_t *)x->out[2]->data = zp;
    return QV_OK;
}

static int dynamic_quantize_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 1, 1, 1, 3, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_F32)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "only float32 is supported");
    qv_out_set(x, 0, QV_DTYPE_U8, x->in[0]->ndim, x->in[0]->shape);
    qv_out_set(x, 1, QV_DTYPE_F32, 0, NULL);
    qv_out_set(x, 2, QV_DTYPE_U8, 0, NULL);
    return QV_OK;
}

const struct qv_op qv_op_dequantize_linear = {
    .name = "DequantizeLinear",
    .since_version = 10,
    .infer_shape = dequantize_infer,
    .kernels = {[QV_DTYPE_U8] = dequantize_kernel,
                [QV_DTYPE_I8] = dequantize_kernel,
                [QV_DTYPE_I32] = dequantize_kernel},
};

const struct qv_op qv_op_dynamic_quantize_linear = {
    .name = "DynamicQuantizeLinear",
    .since_version = 11,
    .infer_shape = dynamic_quantize_infer,
    .kernels = {[QV_DTYPE_F32] = dynamic_quantize_f32},
};

const struct qv_op qv_op_quantize_linear = {
    .name = "QuantizeLinear",
    .since_version = 10,
    .infer_shape = quantize_infer,
    .kernels = {[QV_DTYPE_F32] = quantize_f32},
};
