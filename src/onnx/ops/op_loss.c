/* SPDX-License-Identifier: MIT
 *
 * Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with class
 * weights, ignore_index and reduction none / sum / mean. Out-of-range
 * targets fail the run with QV_EINVAL.
 */
#include "op.h"

enum { RED_NONE, RED_SUM, RED_MEAN };

struct loss_params {
    int reduction;
    bool has_ignore;
    int64_t ignore;
    int64_t n, c, d; /* input viewed as [n, c, d] */
};

#define LOSS_KERNEL(sfx, T, EXP, LOG)                                                              \
    static int loss_##sfx(struct qv_exec *x)                                                       \
    {                                                                                              \
        const struct loss_params *p = (const void *)x->priv;                                       \
        bool sce = strcmp(x->node->op_type, "SoftmaxCrossEntropyLoss") == 0;                       \
        const T *in = x->in[0]->data;                                                              \
        const struct qv_tensor *tt = x->in[1];                                                     \
        const T *w = x->n_in > 2 && x->in[2] ? x->in[2]->data : NULL;                              \
        T *out = x->out[0]->data, sum = 0, wsum = 0;                                               \
        T *logp = sce ? (x->n_out > 1 && x->out[1] ? x->out[1]->data : x->scratch) : NULL;         \
        if (sce) {                                                                                 \
            for (int64_t n = 0; n < p->n; n++)                                                     \
                for (int64_t j = 0; j < p->d; j++) {                                               \
                    T mx = -INFINITY, s = 0;                                                       \
                    for (int64_t c = 0; c < p->c; c++)                                             \
                        mx = in[(n * p->c + c) * p->d + j] > mx ? in[(n * p->c + c) * p->d + j]    \
                                                                : mx;                              \
                    for (int64_t c = 0; c < p->c; c++)                                             \
                        s += EXP(in[(n * p->c + c) * p->d + j] - mx);                              \
                    for (int64_t c = 0; c < p->c; c++)                                             \
                        logp[(n * p->c + c) * p->d + j] =                                          \
                            in[(n * p->c + c) * p->d + j] - mx - LOG(s);                           \
                }                                                                                  \
            in = logp;                                                                             \
        }                                                                                          \
        for (int64_t n = 0; n < p->n; n++)                                                         \
            for (int64_t j = 0; j < p->d; j++) {                                                   \
                int64_t i = n * p->d + j;                                                          \
                int64_t t = tt->dtype == QV_DTYPE_I64 ? ((const int64_t *)tt->data)[i]             \
                                                      : ((const int32_t *)tt->data)[i];            \
                T l = 0, wt = 0;                                                                   \
                if (!(p->has_ignore && t == p->ignore)) {                                          \
                    if (t < 0 || t >= p->c)                                                        \
                        return QV_EINVAL;                                                          \
                    wt = w ? w[t] : 1;                                                             \
                    l = -in[(n * p->c + t) * p->d + j] * wt;                                       \
                }                                                                                  \
                if (p->reduction == RED_NONE)                                                      \
                    out[i] = l;                                                                    \
                sum += l;                                                                          \
                wsum += wt;                                                                        \
            }                                                                                      \
        if (p->reduction == RED_SUM)                                                               \
            out[0] = sum;                                                                          \
        else if (p->reduction == RED_MEAN)                                                         \
            out[0] = sum / wsum;                                                                   \
        return QV_OK;                                                                              \
    }

LOSS_KERNEL(f32, float, expf, logf)
LOSS_KERNEL(f64, double, exp, log)

static int loss_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct loss_params *p = (void *)x->priv;
    const struct qv_tensor *in, *t;
    const char *red = qv_attr_string(x->node, "reduction", "mean");
    bool sce = strcmp(x->node->op_type, "SoftmaxCrossEntropyLoss") == 0;
    int64_t shape[QV_MAX_DIMS];
    int k = 0, err = qv_op_arity(x, 2, 3, 1, sce ? 2 : 1, d);

    if (err)
        return err;
    in = x->in[0];
    t = x->in[1];
    memset(p, 0, sizeof(*p));
    if (strcmp(red, "none") == 0)
        p->reduction = RED_NONE;
    else if (strcmp(red, "sum") == 0)
        p->reduction = RED_SUM;
    else if (strcmp(red, "mean") == 0)
        p->reduction = RED_MEAN;
    else
        return qv_op_fail(x->node, d, QV_EINVAL, "unknown reduction '%s'", red);
    p->has_ignore = qv_attr_find(x->node, "ignore_index") != NULL;
    p->ignore = qv_attr_int(x->node, "ignore_index", 0);
    if (in->ndim < 2 || t->ndim != in->ndim - 1 ||
        (t->dtype != QV_DTYPE_I64 && t->dtype != QV_DTYPE_I32))
        return qv_op_fail(x->node, d, QV_EINVAL, "input [N,C,...] and int target [N,...]");
    p->n = in->shape[0];
    p->c = in->shape[1];
    p->d = 1;
    for (int i = 2; i < in->ndim; i++) {
        if (t->shape[i - 1] != in->shape[i])
            return qv_op_fail(x->node, d, QV_EINVAL, "target does not match input");
        p->d *= in->shape[i];
    }
    if (t->shape[0] != p->n)
        return qv_op_fail(x->node, d, QV_EINVAL, "target does not match input");
    if (x->n_in > 2 && x->in[2] && (x->in[2]->dtype != in->dtype || qv_numel(x->in[2]) != p->c))
        return qv_op_fail(x->node, d, QV_EINVAL, "weight must be [C] of the input type");
    if (p->reduction == RED_NONE) {
        shape[k++] = p->n;
        for (int i = 2; i < in->ndim; i++)
            shape[k++] = in->shape[i];
    }
    qv_out_set(x, 0, in->dtype, k, shape);
    if (sce) {
        qv_out_set(x, 1, in->dtype, in->ndim, in->shape);
        x->scratch_bytes = (size_t)qv_numel(in) * qv_dtype_size(in->dtype) + 1;
    }
    return QV_OK;
}

const struct qv_op qv_op_negative_log_likelihood_loss = {
    .name = "NegativeLogLikelihoodLoss",
    .since_version = 12,
    .infer_shape = loss_infer,
    .kernels = {[QV_DTYPE_F32] = loss_f32, [QV_DTYPE_F64] = loss_f64},
};

const struct qv_op qv_op_softmax_cross_entropy_loss = {
    .name = "SoftmaxCrossEntropyLoss",
    .since_version = 12,
    .infer_shape = loss_infer,
    .kernels = {[QV_DTYPE_F32] = loss_f32, [QV_DTYPE_F64] = loss_f64},
};
