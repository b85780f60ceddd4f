/* SPDX-License-Identifier: MIT
 *
 * Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to
 * 2-D at 'axis' (default 1) and the op runs over the flattened trailing
 * dims; from opset 13 it runs along 'axis' (default -1) only.
 */
#include "op.h"

struct softmax_params {
    int64_t outer, n, inner;
};

enum { SOFTMAX, LOG_SOFTMAX, HARDMAX };

static int softmax_run(struct qv_exec *x, int kind)
{
    const struct softmax_params *p = (const void *)x->priv;
    const float *in = x->in[0]->data;
    float *out = x->out[0]->data;

    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t j = 0; j < p->inner; j++) {
            const float *a = in + o * p->n * p->inner + j;
            float *y = out + o * p->n * p->inner + j;
            float mx = -INFINITY, sum = 0;
            int64_t arg = 0;
            for (int64_t i = 0; i < p->n; i++)
                if (a[i * p->inner] > mx) {
                    mx = a[i * p->inner];
                    arg = i;
                }
            if (kind == HARDMAX) {
                for (int64_t i = 0; i < p->n; i++)
                    y[i * p->inner] = i == arg ? 1.0f : 0.0f;
                continue;
            }
            for (int64_t i = 0; i < p->n; i++) {
                float e = expf(a[i * p->inner] - mx);
                sum += e;
                if (kind == SOFTMAX)
                    y[i * p->inner] = e;
            }
            if (kind == SOFTMAX) {
                float inv = 1.0f / sum;
                for (int64_t i = 0; i < p->n; i++)
                    y[i * p->inner] *= inv;
            } else {
                float ls = logf(sum);
                for (int64_t i = 0; i < p->n; i++)
                    y[i * p->inner] = a[i * p->inner] - mx - ls;
            }
        }
    return QV_OK;
}

static int softmax_f32(struct qv_exec *x)
{
    return softmax_run(x, SOFTMAX);
}

static int log_softmax_f32(struct qv_exec *x)
{
    return softmax_run(x, LOG_SOFTMAX);
}

static int hardmax_f32(struct qv_exec *x)
{
    return softmax_run(x, HARDMAX);
}

static int softmax_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct softmax_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int axis, err = qv_op_arity(x, 1, 1, 1, 1, d);
    bool legacy = x->node->opset < 13;

    if (err)
        return err;
    in = x->in[0];
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", legacy ? 1 : -1), in->ndim, &axis, d);
    if (err)
        return err;
    p->outer = 1;
    p->n = 1;
    p->inner = 1;
    for (int i = 0; i < in->ndim; i++) {
        if (i < axis)
            p->outer *= in->shape[i];
        else if (i == axis || legacy)
            p->n *= in->shape[i];
        else
            p->inner *= in->shape[i];
    }
    return qv_shape_same_as_input0(x, d);
}

const struct qv_op qv_op_hardmax = {.name = "Hardmax",
                                    .since_version = 1,
                                    .infer_shape = softmax_infer,
                                    .kernels = {[QV_DTYPE_F32] = hardmax_f32}};
const struct qv_op qv_op_log_softmax = {.name = "LogSoftmax",
                                        .since_version = 1,
                                        .infer_shape = softmax_infer,
                                        .kernels = {[QV_DTYPE_F32] = log_softmax_f32}};
const struct qv_op qv_op_softmax = {.name = "Softmax",
                                    .since_version = 1,
                                    .infer_shape = softmax_infer,
                                    .kernels = {[QV_DTYPE_F32] = softmax_f32}};
