/* SPDX-License-Identifier: MIT
 *
 * Operators that move bytes without arithmetic: Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout (inference), Constant, Shape, Size, Concat,
 * Transpose, Gather. Their kernels work for every dtype by element size.
 * Constant inputs that define shapes (Reshape's shape, Squeeze's axes) must
 * be known at plan time; Shape-derived chains are, because Shape is folded.
 */
#include "op.h"

#include <stdint.h>

static int copy_kernel(struct qv_exec *x)
{
    if (x->out[0]->nbytes)
        memmove(x->out[0]->data, x->in[0]->data, x->out[0]->nbytes);
    return QV_OK;
}

/* ---- Reshape ---- */

static int reshape_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *in;
    int64_t want[QV_MAX_DIMS], shape[QV_MAX_DIMS], known = 1;
    int n = 0, infer_at = -1, err;
    bool allowzero = qv_attr_int(x->node, "allowzero", 0) != 0;

    if (x->node->opset < 5) {
        const int64_t *s = qv_attr_ints(x->node, "shape", &n);
        err = qv_op_arity(x, 1, 1, 1, 1, d);
        if (err)
            return err;
        if (n > QV_MAX_DIMS)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "rank %d exceeds %d", n, QV_MAX_DIMS);
        for (int i = 0; i < n; i++)
            want[i] = s[i];
    } else {
        err = qv_op_arity(x, 2, 2, 1, 1, d);
        if (err)
            return err;
        err = qv_input_ints(x, 1, want, QV_MAX_DIMS, &n, d);
        if (err)
            return err;
    }
    in = x->in[0];
    for (int i = 0; i < n; i++) {
        if (want[i] == -1) {
            if (infer_at >= 0)
                return qv_op_fail(x->node, d, QV_EINVAL, "more than one -1 in the shape");
            infer_at = i;
            shape[i] = 1;
            continue;
        }
        if (want[i] > QV_ONNX_MAX_ELEMS || (known && want[i] > QV_ONNX_MAX_ELEMS / known))
            return qv_op_fail(x->node, d, QV_E2BIG, "shape too large");
        if (want[i] < -1)
            return qv_op_fail(x->node, d, QV_EINVAL, "negative dimension %lld", (long long)want[i]);
        if (want[i] == 0 && !allowzero) {
            if (i >= in->ndim)
                return qv_op_fail(x->node, d, QV_EINVAL, "0 copies a dimension past the rank");
            shape[i] = in->shape[i];
        } else {
            shape[i] = want[i];
        }
        known *= shape[i];
    }
    if (infer_at >= 0) {
        if (known == 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "cannot infer -1 with a zero dimension");
        shape[infer_at] = qv_numel(in) / known;
        known *= shape[infer_at];
    }
    if (known != qv_numel(in)) {
        char a[96], b[96];
        qv_shape_format(in->shape, in->ndim, a, sizeof(a));
        qv_shape_format(shape, n, b, sizeof(b));
        return qv_op_fail(x->node, d, QV_EINVAL, "cannot reshape %s to %s", a, b);
    }
    qv_out_set(x, 0, in->dtype, n, shape);
    return QV_OK;
}

/* ---- Flatten ---- */

static int flatten_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *in;
    int64_t shape[2] = {1, 1};
    int64_t axis;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    axis = qv_attr_int(x->node, "axis", 1);
    if (axis < 0)
        axis += in->ndim;
    if (axis < 0 || axis > in->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "axis out of range for rank %d", in->ndim);
    for (int i = 0; i < in->ndim; i++)
        shape[i < axis ? 0 : 1] *= in->shape[i];
    qv_out_set(x, 0, in->dtype, 2, shape);
    return QV_OK;
}

/* ---- Squeeze / Unsqueeze ---- */

static int read_axes(struct qv_exec *x, int64_t *axes, int *n, bool *given, struct qv_diag *d)
{
    *n = 0;
    *given = false;
    if (x->node->opset < 13) {
        const int64_t *a = qv_attr_ints(x->node, "axes", n);
        if (*n > QV_MAX_DIMS)
            return qv_op_fail(x->node, d, QV_EINVAL, "too many axes");
        for (int i = 0; i < *n; i++)
            axes[i] = a[i];
        *given = a != NULL;
        return QV_OK;
    }
    if (x->n_in < 2 || x->in[1] == NULL)
        return QV_OK;
    *given = true;
    return qv_input_ints(x, 1, axes, QV_MAX_DIMS, n, d);
}

static int squeeze_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *in;
    int64_t axes[QV_MAX_DIMS], shape[QV_MAX_DIMS];
    bool drop[QV_MAX_DIMS] = {false};
    bool given;
    int n, k = 0, err;

    err = qv_op_arity(x, 1, 2, 1, 1, d);
    if (err)
        return err;
    err = read_axes(x, axes, &n, &given, d);
    if (err)
        return err;
    in = x->in[0];
    if (!given) {
        for (int i = 0; i < in->ndim; i++)
            drop[i] = in->shape[i] == 1;
    }
    for (int i = 0; i < n; i++) {
        int a;
        err = qv_axis_norm(x, axes[i], in->ndim, &a, d);
        if (err)
            return err;
        if (in->shape[a] != 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "cannot squeeze axis %d of size %lld", a,
                              (long long)in->shape[a]);
        drop[a] = true;
    }
    for (int i = 0; i < in->ndim; i++)
        if (!drop[i])
            shape[k++] = in->shape[i];
    qv_out_set(x, 0, in->dtype, k, shape);
    return QV_OK;
}

static int unsqueeze_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *in;
    int64_t axes[QV_MAX_DIMS], shape[QV_MAX_DIMS];
    bool add[QV_MAX_DIMS] = {false};
    bool given;
    int n, rank, k = 0, err;

    err = qv_op_arity(x, 1, 2, 1, 1, d);
    if (err)
        return err;
    err = read_axes(x, axes, &n, &given, d);
    if (err)
        return err;
    in = x->in[0];
    rank = in->ndim + n;
    if (!given || rank > QV_MAX_DIMS)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs axes and a result rank <= %d", QV_MAX_DIMS);
    for (int i = 0; i < n; i++) {
        int a;
        err = qv_axis_norm(x, axes[i], rank, &a, d);
        if (err)
            return err;
        if (add[a])
            return qv_op_fail(x->node, d, QV_EINVAL, "axis %d given twice", a);
        add[a] = true;
    }
    for (int i = 0; i < rank; i++)
        shape[i] = add[i] ? 1 : in->shape[k++];
    qv_out_set(x, 0, in->dtype, rank, shape);
    return QV_OK;
}

/* ---- Identity / Dropout ---- */

static int identity_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    return qv_shape_same_as_input0(x, d);
}

static int dropout_kernel(struct qv_exec *x)
{
    copy_kernel(x);
    if (x->n_out > 1 && x->out[1]) {
        struct qv_tensor *m = x->out[1];
        if (m->dtype == QV_DTYPE_BOOL)
            memset(m->data, 1, m->nbytes);
        else
            memset(m->data, 0, m->nbytes); /* overwritten below for float masks */
        if (m->dtype == QV_DTYPE_F32)
            for (int64_t i = 0; i < qv_numel(m); i++)
                ((float *)m->data)[i] = 1.0f;
    }
    return QV_OK;
}

static int dropout_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 1, 3, 1, 2, d);

    if (err)
        return err;
    if (x->n_in > 2 && x->in[2]) {
        const struct qv_tensor *tm = x->in[2];
        err = qv_input_known(x, 2, d);
        if (err)
            return err;
        if (tm->dtype != QV_DTYPE_BOOL)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "training_mode must be a constant bool");
        if (*(const uint8_t *)tm->data) {
            /* Training mode is random, except with a ratio of 0 (identity). */
            const struct qv_tensor *r = x->in[1];
            if (r == NULL || qv_input_known(x, 1, d) != QV_OK || qv_numel(r) != 1 ||
                qv_tensor_get_f64(r, 0) != 0.0)
                return qv_op_fail(x->node, d, QV_ENOTSUP,
                                  "training mode is supported only with ratio 0");
        }
    }
    if (x->node->opset < 7 && qv_attr_int(x->node, "is_test", 0) == 0 && x->n_out > 1)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "training mode is not supported");
    qv_shape_same_as_input0(x, d);
    if (x->n_out > 1)
        qv_out_set(x, 1, x->node->opset >= 10 ? QV_DTYPE_BOOL : x->in[0]->dtype, x->in[0]->ndim,
                   x->in[0]->shape);
    return QV_OK;
}

/* ---- Constant ---- */

static int constant_kernel(struct qv_exec *x)
{
    const struct qv_tensor *t = qv_attr_tensor(x->node, "value");
    struct qv_tensor *o = x->out[0];
    int n;

    if (t) {
        if (o->nbytes)
            memcpy(o->data, t->data, o->nbytes);
    } else if (qv_attr_find(x->node, "value_float")) {
        *(float *)o->data = qv_attr_float(x->node, "value_float", 0);
    } else if (qv_attr_find(x->node, "value_int")) {
        *(int64_t *)o->data = qv_attr_int(x->node, "value_int", 0);
    } else if (qv_attr_find(x->node, "value_floats")) {
        const float *f = qv_attr_floats(x->node, "value_floats", &n);
        if (n)
            memcpy(o->data, f, sizeof(float) * (size_t)n);
    } else {
        const int64_t *v = qv_attr_ints(x->node, "value_ints", &n);
        if (n)
            memcpy(o->data, v, sizeof(int64_t) * (size_t)n);
    }
    return QV_OK;
}

static int constant_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *t = qv_attr_tensor(x->node, "value");
    int64_t shape[1];
    int n;

    if (x->n_out != 1 || x->out[0] == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs one output");
    if (t) {
        qv_out_set(x, 0, t->dtype, t->ndim, t->shape);
    } else if (qv_attr_find(x->node, "value_float")) {
        qv_out_set(x, 0, QV_DTYPE_F32, 0, shape);
    } else if (qv_attr_find(x->node, "value_int")) {
        qv_out_set(x, 0, QV_DTYPE_I64, 0, shape);
    } else if (qv_attr_floats(x->node, "value_floats", &n)) {
        shape[0] = n;
        qv_out_set(x, 0, QV_DTYPE_F32, 1, shape);
    } else if (qv_attr_ints(x->node, "value_ints", &n)) {
        shape[0] = n;
        qv_out_set(x, 0, QV_DTYPE_I64, 1, shape);
    } else {
        return qv_op_fail(x->node, d, QV_ENOTSUP, "needs a tensor, float(s) or int(s) value");
    }
    x->kdtype = x->out[0]->dtype;
    return QV_OK;
}

/* ---- Shape / Size ---- */

struct shape_params {
    int start, end;
};

static int shape_kernel(struct qv_exec *x)
{
    const struct shape_params *p = (const void *)x->priv;
    int64_t *o = x->out[0]->data;

    for (int i = p->start; i < p->end; i++)
        o[i - p->start] = x->in[0]->shape[i];
    return QV_OK;
}

static int shape_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct shape_params *p = (void *)x->priv;
    int64_t start, end, len;
    int r, err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    r = x->in[0]->ndim;
    start = qv_attr_int(x->node, "start", 0);
    end = qv_attr_int(x->node, "end", r);
    if (start < 0)
        start += r;
    if (end < 0)
        end += r;
    start = start < 0 ? 0 : (start > r ? r : start);
    end = end < 0 ? 0 : (end > r ? r : end);
    if (end < start)
        end = start;
    p->start = (int)start;
    p->end = (int)end;
    len = end - start;
    qv_out_set(x, 0, QV_DTYPE_I64, 1, &len);
    return QV_OK;
}

static int size_kernel(struct qv_exec *x)
{
    *(int64_t *)x->out[0]->data = qv_numel(x->in[0]);
    return QV_OK;
}

static int size_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    qv_out_set(x, 0, QV_DTYPE_I64, 0, NULL);
    return QV_OK;
}

/* ---- Concat ---- */

struct concat_params {
    int axis;
};

static int concat_kernel(struct qv_exec *x)
{
    const struct concat_params *p = (const void *)x->priv;
    const struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(o->dtype);
    int64_t outer = 1, inner = 1;
    char *dst = o->data;

    for (int i = 0; i < p->axis; i++)
        outer *= o->shape[i];
    for (int i = p->axis + 1; i < o->ndim; i++)
        inner *= o->shape[i];
    for (int64_t r = 0; r < outer; r++)
        for (int k = 0; k < x->n_in; k++) {
            const struct qv_tensor *t = x->in[k];
            size_t chunk = (size_t)(t->shape[p->axis] * inner) * es;
            if (chunk == 0)
                continue;
            memcpy(dst, (const char *)t->data + (size_t)r * chunk, chunk);
            dst += chunk;
        }
    return QV_OK;
}

static int concat_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct concat_params *p = (void *)x->priv;
    const struct qv_tensor *a;
    int64_t shape[QV_MAX_DIMS];
    int axis, err;

    if (x->n_in < 1 || x->n_out != 1 || x->out[0] == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs inputs and one output");
    for (int k = 0; k < x->n_in; k++)
        if (x->in[k] == NULL)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d is missing", k);
    a = x->in[0];
    if (x->node->opset >= 4 && !qv_attr_find(x->node, "axis"))
        return qv_op_fail(x->node, d, QV_EINVAL, "attribute 'axis' is required");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 1), a->ndim, &axis, d);
    if (err)
        return err;
    memcpy(shape, a->shape, sizeof(shape));
    shape[axis] = 0;
    for (int k = 0; k < x->n_in; k++) {
        const struct qv_tensor *t = x->in[k];
        if (t->dtype != a->dtype || t->ndim != a->ndim)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d differs in type or rank", k);
        for (int i = 0; i < a->ndim; i++)
            if (i != axis && t->shape[i] != a->shape[i])
                return qv_op_fail(x->node, d, QV_EINVAL, "input %d differs in dim %d", k, i);
        shape[axis] += t->shape[axis];
    }
    p->axis = axis;
    qv_out_set(x, 0, a->dtype, a->ndim, shape);
    return QV_OK;
}

/* ---- Transpose ---- */

struct transpose_params {
    int perm[QV_MAX_DIMS];
};

#define TRANSPOSE_LOOP(T)                                                                          \
    do {                                                                                           \
        const T *src_ = in->data;                                                                  \
        T *dst_ = o->data;                                                                         \
        for (int64_t i_ = 0; i_ < n; i_++) {                                                       \
            dst_[i_] = src_[off];                                                                  \
            for (int k_ = r - 1; k_ >= 0; k_--) {                                                  \
                off += stride[k_];                                                                 \
                if (++idx[k_] < o->shape[k_])                                                      \
                    break;                                                                         \
                off -= stride[k_] * o->shape[k_];                                                  \
                idx[k_] = 0;                                                                       \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static int transpose_kernel(struct qv_exec *x)
{
    const struct transpose_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const struct qv_tensor *o = x->out[0];
    int64_t istride[QV_MAX_DIMS], stride[QV_MAX_DIMS], idx[QV_MAX_DIMS] = {0};
    int64_t n = qv_numel(o), off = 0, s = 1;
    int r = in->ndim;

    for (int i = r - 1; i >= 0; i--) {
        istride[i] = s;
        s *= in->shape[i];
    }
    for (int i = 0; i < r; i++)
        stride[i] = istride[p->perm[i]];
    switch (qv_dtype_size(o->dtype)) {
    case 1:
        TRANSPOSE_LOOP(uint8_t);
        break;
    case 2:
        TRANSPOSE_LOOP(uint16_t);
        break;
    case 4:
        TRANSPOSE_LOOP(uint32_t);
        break;
    case 8:
        TRANSPOSE_LOOP(uint64_t);
        break;
    default:
        return QV_ENOTSUP;
    }
    return QV_OK;
}

static int transpose_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct transpose_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[QV_MAX_DIMS];
    bool seen[QV_MAX_DIMS] = {false};
    const int64_t *perm;
    int n, err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    perm = qv_attr_ints(x->node, "perm", &n);
    if (perm && n != in->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "perm has %d entries for rank %d", n, in->ndim);
    for (int i = 0; i < in->ndim; i++) {
        int64_t v = perm ? perm[i] : in->ndim - 1 - i;
        if (v < 0)
            v += in->ndim;
        if (v < 0 || v >= in->ndim || seen[v])
            return qv_op_fail(x->node, d, QV_EINVAL, "perm is not a permutation");
        seen[v] = true;
        p->perm[i] = (int)v;
        shape[i] = in->shape[v];
    }
    qv_out_set(x, 0, in->dtype, in->ndim, shape);
    return QV_OK;
}

/* ---- Gather ---- */

struct gather_params {
    int axis;
};

static int gather_kernel(struct qv_exec *x)
{
    const struct gather_params *p = (const void *)x->priv;
    const struct qv_tensor *data = x->in[0], *ind = x->in[1];
    size_t es = qv_dtype_size(data->dtype);
    int64_t outer = 1, inner = 1, n_ind = qv_numel(ind), dim = data->shape[p->axis];
    char *dst = x->out[0]->data;

    for (int i = 0; i < p->axis; i++)
        outer *= data->shape[i];
    for (int i = p->axis + 1; i < data->ndim; i++)
        inner *= data->shape[i];
    for (int64_t r = 0; r < outer; r++)
        for (int64_t j = 0; j < n_ind; j++) {
            int64_t k = ind->dtype == QV_DTYPE_I64 ? ((const int64_t *)ind->data)[j]
                                                   : ((const int32_t *)ind->data)[j];
            if (k < 0)
                k += dim;
            if (k < 0 || k >= dim)
                return QV_EINVAL;
            memcpy(dst, (const char *)data->data + (size_t)((r * dim + k) * inner) * es,
                   (size_t)inner * es);
            dst += (size_t)inner * es;
        }
    return QV_OK;
}

static int gather_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct gather_params *p = (void *)x->priv;
    const struct qv_tensor *data, *ind;
    int64_t shape[QV_MAX_DIMS];
    int axis, k = 0, err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    data = x->in[0];
    ind = x->in[1];
    if (ind->dtype != QV_DTYPE_I64 && ind->dtype != QV_DTYPE_I32)
        return qv_op_fail(x->node, d, QV_EINVAL, "indices must be int32 or int64");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), data->ndim, &axis, d);
    if (err)
        return err;
    if (data->ndim - 1 + ind->ndim > QV_MAX_DIMS)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "result rank exceeds %d", QV_MAX_DIMS);
    for (int i = 0; i < axis; i++)
        shape[k++] = data->shape[i];
    for (int i = 0; i < ind->ndim; i++)
        shape[k++] = ind->shape[i];
    for (int i = axis + 1; i < data->ndim; i++)
        shape[k++] = data->shape[i];
    p->axis = axis;
    qv_out_set(x, 0, data->dtype, k, shape);
    return QV_OK;
}

#define ALL(fn)                                                                                    \
    {                                                                                              \
        QV_KERNELS_ALL(fn)                                                                         \
    }

const struct qv_op qv_op_concat = {.name = "Concat",
                                   .since_version = 1,
                                   .infer_shape = concat_infer,
                                   .kernels = ALL(concat_kernel)};
const struct qv_op qv_op_constant = {.name = "Constant",
                                     .since_version = 1,
                                     .infer_shape = constant_infer,
                                     .kernels = ALL(constant_kernel)};
const struct qv_op qv_op_dropout = {.name = "Dropout",
                                    .since_version = 1,
                                    .infer_shape = dropout_infer,
                                    .kernels = ALL(dropout_kernel)};
const struct qv_op qv_op_flatten = {.name = "Flatten",
                                    .since_version = 1,
                                    .infer_shape = flatten_infer,
                                    .kernels = ALL(copy_kernel)};
const struct qv_op qv_op_gather = {.name = "Gather",
                                   .since_version = 1,
                                   .infer_shape = gather_infer,
                                   .kernels = ALL(gather_kernel)};
const struct qv_op qv_op_identity = {.name = "Identity",
                                     .since_version = 1,
                                     .infer_shape = identity_infer,
                                     .kernels = ALL(copy_kernel)};
const struct qv_op qv_op_reshape = {.name = "Reshape",
                                    .since_version = 1,
                                    .infer_shape = reshape_infer,
                                    .kernels = ALL(copy_kernel)};
const struct qv_op qv_op_shape = {.name = "Shape",
                                  .since_version = 1,
                                  .flags = QV_OP_SHAPE_ONLY,
                                  .infer_shape = shape_infer,
                                  .kernels = ALL(shape_kernel)};
const struct qv_op qv_op_size = {.name = "Size",
                                 .since_version = 1,
                                 .flags = QV_OP_SHAPE_ONLY,
                                 .infer_shape = size_infer,
                                 .kernels = ALL(size_kernel)};
const struct qv_op qv_op_squeeze = {.name = "Squeeze",
                                    .since_version = 1,
                                    .infer_shape = squeeze_infer,
                                    .kernels = ALL(copy_kernel)};
const struct qv_op qv_op_transpose = {.name = "Transpose",
                                      .since_version = 1,
                                      .infer_shape = transpose_infer,
                                      .kernels = ALL(transpose_kernel)};
const struct qv_op qv_op_unsqueeze = {.name = "Unsqueeze",
                                      .since_version = 1,
                                      .infer_shape = unsqueeze_infer,
                                      .kernels = ALL(copy_kernel)};
