/* SPDX-License-Identifier: MIT
 *
 * Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
 * ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare, and
 * ArgMax/ArgMin. Axes come from the attribute before the opset that moved
 * them to an input (13 for ReduceSum, 18 for the others).
 */
#include "op.h"

#include <float.h>
#include <stdint.h>

enum red_kind { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ };

struct reduce_params {
    enum red_kind kind;
    bool reduce[QV_MAX_DIMS];
    int64_t count;                /* elements folded into each output */
    int64_t ostride[QV_MAX_DIMS]; /* output stride per input dim, 0 on reduced dims */
    int axis;                     /* ArgMax/ArgMin */
    bool last;                    /* select_last_index */
};

static const struct {
    const char *name;
    enum red_kind kind;
} kinds[] = {
    {"ReduceL1", R_L1},         {"ReduceL2", R_L2},
    {"ReduceLogSum", R_LOGSUM}, {"ReduceLogSumExp", R_LOGSUMEXP},
    {"ReduceMax", R_MAX},       {"ReduceMean", R_MEAN},
    {"ReduceMin", R_MIN},       {"ReduceProd", R_PROD},
    {"ReduceSum", R_SUM},       {"ReduceSumSquare", R_SUMSQ},
};

/* Walks the input in row-major order; 'off' tracks the output element. */
#define REDUCE_WALK(T, INIT, STEP)                                                                 \
    do {                                                                                           \
        const T *in_ = x->in[0]->data;                                                             \
        T *out_ = x->out[0]->data;                                                                 \
        const struct qv_tensor *it_ = x->in[0];                                                    \
        int64_t on_ = qv_numel(x->out[0]), n_ = qv_numel(it_), idx_[QV_MAX_DIMS] = {0}, off = 0;   \
        for (int64_t i_ = 0; i_ < on_; i_++)                                                       \
            out_[i_] = (INIT);                                                                     \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                      \
            T v = in_[i_];                                                                         \
            T *acc = &out_[off];                                                                   \
            STEP;                                                                                  \
            for (int k_ = it_->ndim - 1; k_ >= 0; k_--) {                                          \
                off += p->ostride[k_];                                                             \
                if (++idx_[k_] < it_->shape[k_])                                                   \
                    break;                                                                         \
                off -= p->ostride[k_] * it_->shape[k_];                                            \
                idx_[k_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define REDUCE_FLOAT(sfx, T, FABS, SQRT, LOG, EXP)                                                 \
    static int reduce_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct reduce_params *p = (const void *)x->priv;                                     \
        T *out = x->out[0]->data;                                                                  \
        int64_t on = qv_numel(x->out[0]);                                                          \
                                                                                                   \
        switch (p->kind) {                                                                         \
        case R_SUM:                                                                                \
        case R_MEAN:                                                                               \
            REDUCE_WALK(T, 0, *acc += v);                                                          \
            break;                                                                                 \
        case R_MAX:                                                                                \
            REDUCE_WALK(T, -INFINITY, if (v > *acc || isnan(v)) *acc = v);                         \
            break;                                                                                 \
        case R_MIN:                                                                                \
            REDUCE_WALK(T, INFINITY, if (v < *acc || isnan(v)) *acc = v);                          \
            break;                                                                                 \
        case R_PROD:                                                                               \
            REDUCE_WALK(T, 1, *acc *= v);                                                          \
            break;                                                                                 \
        case R_L1:                                                                                 \
            REDUCE_WALK(T, 0, *acc += FABS(v));                                                    \
            break;                                                                                 \
        case R_L2:                                                                                 \
        case R_SUMSQ:                                                                              \
            REDUCE_WALK(T, 0, *acc += v * v);                                                      \
            break;                                                                                 \
        case R_LOGSUM:                                                                             \
            REDUCE_WALK(T, 0, *acc += v);                                                          \
            break;                                                                                 \
        case R_LOGSUMEXP:                                                                          \
            REDUCE_WALK(T, 0, *acc += EXP(v));                                                     \
            break;                                                                                 \
        }                                                                                          \
        for (int64_t i = 0; i < on; i++) {                                                         \
            if (p->kind == R_MEAN)                                                                 \
                out[i] = p->count ? out[i] / (T)p->count : (T)NAN;                                 \
            else if (p->kind == R_L2)                                                              \
                out[i] = SQRT(out[i]);                                                             \
            else if (p->kind == R_LOGSUM || p->kind == R_LOGSUMEXP)                                \
                out[i] = LOG(out[i]);                                                              \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

REDUCE_FLOAT(f32, float, fabsf, sqrtf, logf, expf)
REDUCE_FLOAT(f64, double, fabs, sqrt, log, exp)

#define REDUCE_INT(sfx, T, TMIN, TMAX)                                                             \
    static int reduce_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct reduce_params *p = (const void *)x->priv;                                     \
        T *out = x->out[0]->data;                                                                  \
        int64_t on = qv_numel(x->out[0]);                                                          \
        switch (p->kind) {                                                                         \
        case R_MAX:                                                                                \
            REDUCE_WALK(T, TMIN, if (v > *acc) *acc = v);                                          \
            break;                                                                                 \
        case R_MIN:                                                                                \
            REDUCE_WALK(T, TMAX, if (v < *acc) *acc = v);                                          \
            break;                                                                                 \
        case R_PROD:                                                                               \
            REDUCE_WALK(T, 1, *acc = (T)((uint64_t)*acc * (uint64_t)v));                           \
            break;                                                                                 \
        case R_L1:                                                                                 \
            REDUCE_WALK(T, 0, *acc = (T)((uint64_t)*acc + (uint64_t)(v < 0 ? -v : v)));            \
            break;                                                                                 \
        case R_SUMSQ:                                                                              \
            REDUCE_WALK(T, 0, *acc = (T)((uint64_t)*acc + (uint64_t)v * (uint64_t)v));             \
            break;                                                                                 \
        default:                                                                                   \
            REDUCE_WALK(T, 0, *acc = (T)((uint64_t)*acc + (uint64_t)v));                           \
            break;                                                                                 \
        }                                                                                          \
        if (p->kind == R_MEAN)                                                                     \
            for (int64_t i = 0; i < on; i++)                                                       \
                out[i] = p->count ? (T)(out[i] / p->count) : 0;                                    \
        return QV_OK;                                                                              \
    }

REDUCE_INT(i64, int64_t, INT64_MIN, INT64_MAX)
REDUCE_INT(i32, int32_t, INT32_MIN, INT32_MAX)

static int reduce_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct reduce_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t axes[QV_MAX_DIMS], shape[QV_MAX_DIMS], stride = 1;
    int n_axes = 0, k = 0, err;
    bool keep = qv_attr_int(x->node, "keepdims", 1) != 0;
    bool noop = qv_attr_int(x->node, "noop_with_empty_axes", 0) != 0;
    bool from_input = x->node->opset >= (strcmp(x->node->op_type, "ReduceSum") == 0 ? 13 : 18);

    err = qv_op_arity(x, 1, from_input ? 2 : 1, 1, 1, d);
    if (err)
        return err;
    in = x->in[0];
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < QV_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].name, x->node->op_type) == 0)
            p->kind = kinds[i].kind;
    if (from_input) {
        if (x->n_in > 1 && x->in[1]) {
            err = qv_input_ints(x, 1, axes, QV_MAX_DIMS, &n_axes, d);
            if (err)
                return err;
        }
    } else {
        const int64_t *a = qv_attr_ints(x->node, "axes", &n_axes);
        if (n_axes > QV_MAX_DIMS)
            return qv_op_fail(x->node, d, QV_EINVAL, "too many axes");
        for (int i = 0; i < n_axes; i++)
            axes[i] = a[i];
    }
    if (n_axes == 0 && !(noop && from_input)) {
        for (int i = 0; i < in->ndim; i++)
            p->reduce[i] = true;
    }
    for (int i = 0; i < n_axes; i++) {
        int a;
        err = qv_axis_norm(x, axes[i], in->ndim, &a, d);
        if (err)
            return err;
        p->reduce[a] = true;
    }
    p->count = 1;
    for (int i = in->ndim - 1; i >= 0; i--) {
        if (p->reduce[i]) {
            p->count *= in->shape[i];
            p->ostride[i] = 0;
        } else {
            p->ostride[i] = stride;
            stride *= in->shape[i];
        }
    }
    for (int i = 0; i < in->ndim; i++) {
        if (!p->reduce[i])
            shape[k++] = in->shape[i];
        else if (keep)
            shape[k++] = 1;
    }
    qv_out_set(x, 0, in->dtype, k, shape);
    return QV_OK;
}

/* ---- ArgMax / ArgMin ---- */

#define ARG_KERNEL(name, sfx, T, BETTER)                                                           \
    static int name##_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct reduce_params *p = (const void *)x->priv;                                     \
        const struct qv_tensor *it = x->in[0];                                                     \
        const T *in = it->data;                                                                    \
        int64_t *out = x->out[0]->data, outer = 1, inner = 1, n = it->shape[p->axis];              \
        for (int i = 0; i < p->axis; i++)                                                          \
            outer *= it->shape[i];                                                                 \
        for (int i = p->axis + 1; i < it->ndim; i++)                                               \
            inner *= it->shape[i];                                                                 \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                const T *a = in + o * n * inner + j;                                               \
                int64_t best = 0;                                                                  \
                for (int64_t i = 1; i < n; i++) {                                                  \
                    T v = a[i * inner], b = a[best * inner];                                       \
                    if ((BETTER) || (p->last && v == b))                                           \
                        best = i;                                                                  \
                }                                                                                  \
                out[o * inner + j] = best;                                                         \
            }                                                                                      \
        return QV_OK;                                                                              \
    }

ARG_KERNEL(argmax, f32, float, v > b)
ARG_KERNEL(argmax, i64, int64_t, v > b)
ARG_KERNEL(argmax, i32, int32_t, v > b)
ARG_KERNEL(argmin, f32, float, v < b)
ARG_KERNEL(argmin, i64, int64_t, v < b)
ARG_KERNEL(argmin, i32, int32_t, v < b)

static int arg_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct reduce_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[QV_MAX_DIMS];
    int axis, k = 0, err = qv_op_arity(x, 1, 1, 1, 1, d);
    bool keep = qv_attr_int(x->node, "keepdims", 1) != 0;

    if (err)
        return err;
    in = x->in[0];
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), in->ndim, &axis, d);
    if (err)
        return err;
    if (in->shape[axis] == 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "cannot reduce an empty axis");
    memset(p, 0, sizeof(*p));
    p->axis = axis;
    p->last = qv_attr_int(x->node, "select_last_index", 0) != 0;
    for (int i = 0; i < in->ndim; i++) {
        if (i != axis)
            shape[k++] = in->shape[i];
        else if (keep)
            shape[k++] = 1;
    }
    qv_out_set(x, 0, QV_DTYPE_I64, k, shape);
    return QV_OK;
}

#define RED_KERNELS                                                                                \
    {                                                                                              \
        [QV_DTYPE_F32] = reduce_f32, [QV_DTYPE_F64] = reduce_f64, [QV_DTYPE_I64] = reduce_i64,     \
        [QV_DTYPE_I32] = reduce_i32                                                                \
    }
#define RED_OP(Name, cname)                                                                        \
    const struct qv_op qv_op_##cname = {                                                           \
        .name = #Name, .since_version = 1, .infer_shape = reduce_infer, .kernels = RED_KERNELS};

RED_OP(ReduceL1, reduce_l1)
RED_OP(ReduceL2, reduce_l2)
RED_OP(ReduceLogSum, reduce_log_sum)
RED_OP(ReduceLogSumExp, reduce_log_sum_exp)
RED_OP(ReduceMax, reduce_max)
RED_OP(ReduceMean, reduce_mean)
RED_OP(ReduceMin, reduce_min)
RED_OP(ReduceProd, reduce_prod)
RED_OP(ReduceSum, reduce_sum)
RED_OP(ReduceSumSquare, reduce_sum_square)

const struct qv_op qv_op_arg_max = {
    .name = "ArgMax",
    .since_version = 1,
    .infer_shape = arg_infer,
    .kernels =
        {[QV_DTYPE_F32] = argmax_f32, [QV_DTYPE_I64] = argmax_i64, [QV_DTYPE_I32] = argmax_i32},
};
const struct qv_op qv_op_arg_min = {
    .name = "ArgMin",
    .since_version = 1,
    .infer_shape = arg_infer,
    .kernels =
        {[QV_DTYPE_F32] = argmin_f32, [QV_DTYPE_I64] = argmin_i64, [QV_DTYPE_I32] = argmin_i32},
};
