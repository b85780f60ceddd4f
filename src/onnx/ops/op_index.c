/* SPDX-License-Identifier: MIT
 *
 * Indexing and rearranging: GatherElements, GatherND, ScatterElements,
 * ScatterND, OneHot, Trilu, CumSum, TopK, DepthToSpace, SpaceToDepth,
 * EyeLike. Data-dependent indices are checked at run time (QV_EINVAL, never
 * an out-of-bounds access).
 */
#include "op.h"

#include <stdint.h>

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es)
{
    memcpy((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, es);
}

static void strides_of(const int64_t *shape, int ndim, int64_t *s)
{
    int64_t acc = 1;

    for (int i = ndim - 1; i >= 0; i--) {
        s[i] = acc;
        acc *= shape[i];
    }
}

static inline int64_t index_at(const struct qv_tensor *t, int64_t i)
{
    return t->dtype == QV_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

static int check_indices_dtype(const struct qv_exec *x, int i, struct qv_diag *d)
{
    if (x->in[i]->dtype != QV_DTYPE_I64 && x->in[i]->dtype != QV_DTYPE_I32)
        return qv_op_fail(x->node, d, QV_EINVAL, "indices must be int32 or int64");
    return QV_OK;
}

struct axis_params {
    int axis;
    int64_t k; /* TopK */
    bool flag,
        flag2;     /* Trilu upper / CumSum exclusive / TopK largest; CumSum reverse / TopK sorted */
    int64_t block; /* DepthToSpace / SpaceToDepth */
    bool crd;      /* DepthToSpace CRD mode */
    int reduction; /* Scatter: 0 none, 1 add, 2 mul */
};

/* ---- GatherElements / ScatterElements ---- */

static int gather_elements_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    const struct qv_tensor *data = x->in[0], *ind = x->in[1];
    size_t es = qv_dtype_size(data->dtype);
    int64_t ds[QV_MAX_DIMS], idx[QV_MAX_DIMS] = {0}, n = qv_numel(ind);
    int r = ind->ndim;

    strides_of(data->shape, data->ndim, ds);
    for (int64_t j = 0; j < n; j++) {
        int64_t off = 0, k = index_at(ind, j), dim = data->shape[p->axis];
        if (k < 0)
            k += dim;
        if (k < 0 || k >= dim)
            return QV_EINVAL;
        for (int i = 0; i < r; i++)
            off += (i == p->axis ? k : idx[i]) * ds[i];
        copy_elem(x->out[0]->data, j, data->data, off, es);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < ind->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int gather_elements_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    err = check_indices_dtype(x, 1, d);
    if (err)
        return err;
    if (x->in[0]->ndim != x->in[1]->ndim || x->in[0]->ndim < 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "data and indices must have the same rank");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), x->in[0]->ndim, &p->axis, d);
    if (err)
        return err;
    for (int i = 0; i < x->in[0]->ndim; i++)
        if (i != p->axis && x->in[1]->shape[i] > x->in[0]->shape[i])
            return qv_op_fail(x->node, d, QV_EINVAL, "indices exceed data in dim %d", i);
    qv_out_set(x, 0, x->in[0]->dtype, x->in[1]->ndim, x->in[1]->shape);
    return QV_OK;
}

#define SCATTER_APPLY(T)                                                                           \
    do {                                                                                           \
        T *dst_ = (T *)x->out[0]->data + off;                                                      \
        T v_ = ((const T *)upd->data)[j];                                                          \
        if (p->reduction == 1)                                                                     \
            *dst_ += v_;                                                                           \
        else if (p->reduction == 2)                                                                \
            *dst_ *= v_;                                                                           \
        else                                                                                       \
            *dst_ = v_;                                                                            \
    } while (0)

static void scatter_one(const struct axis_params *p, struct qv_exec *x, const struct qv_tensor *upd,
                        int64_t off, int64_t j)
{
    switch (upd->dtype) {
    case QV_DTYPE_F32:
        SCATTER_APPLY(float);
        break;
    case QV_DTYPE_F64:
        SCATTER_APPLY(double);
        break;
    case QV_DTYPE_I64:
        SCATTER_APPLY(int64_t);
        break;
    case QV_DTYPE_I32:
        SCATTER_APPLY(int32_t);
        break;
    default:
        copy_elem(x->out[0]->data, off, upd->data, j, qv_dtype_size(upd->dtype));
        break;
    }
}

static int scatter_elements_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    const struct qv_tensor *data = x->in[0], *ind = x->in[1], *upd = x->in[2];
    int64_t ds[QV_MAX_DIMS], idx[QV_MAX_DIMS] = {0}, n = qv_numel(ind);
    int r = ind->ndim;

    memcpy(x->out[0]->data, data->data, x->out[0]->nbytes);
    strides_of(data->shape, data->ndim, ds);
    for (int64_t j = 0; j < n; j++) {
        int64_t off = 0, k = index_at(ind, j), dim = data->shape[p->axis];
        if (k < 0)
            k += dim;
        if (k < 0 || k >= dim)
            return QV_EINVAL;
        for (int i = 0; i < r; i++)
            off += (i == p->axis ? k : idx[i]) * ds[i];
        scatter_one(p, x, upd, off, j);
        for (int i = r - 1; i >= 0; i--) {
            if (++idx[i] < ind->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int read_reduction(struct qv_exec *x, struct axis_params *p, struct qv_diag *d)
{
    const char *red = qv_attr_string(x->node, "reduction", "none");

    if (strcmp(red, "none") == 0)
        p->reduction = 0;
    else if (strcmp(red, "add") == 0)
        p->reduction = 1;
    else if (strcmp(red, "mul") == 0)
        p->reduction = 2;
    else
        return qv_op_fail(x->node, d, QV_ENOTSUP, "reduction '%s' is not supported", red);
    return QV_OK;
}

static int scatter_elements_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    const struct qv_tensor *ind, *upd;
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    err = check_indices_dtype(x, 1, d);
    if (err)
        return err;
    ind = x->in[1];
    upd = x->in[2];
    if (upd->dtype != x->in[0]->dtype || upd->ndim != ind->ndim ||
        memcmp(upd->shape, ind->shape, sizeof(int64_t) * (size_t)ind->ndim) != 0 ||
        ind->ndim != x->in[0]->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "updates must match indices; ranks must match");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), x->in[0]->ndim, &p->axis, d);
    if (!err)
        err = read_reduction(x, p, d);
    if (err)
        return err;
    for (int i = 0; i < ind->ndim; i++)
        if (i != p->axis && ind->shape[i] > x->in[0]->shape[i])
            return qv_op_fail(x->node, d, QV_EINVAL, "indices exceed data in dim %d", i);
    return qv_shape_same_as_input0(x, d);
}

/* ---- GatherND / ScatterND ---- */

struct nd_params {
    int batch_dims;
    int64_t q_last;     /* length of the index tuples */
    int64_t slice;      /* elements per gathered slice */
    int64_t n_batch;    /* product of batch dims */
    int64_t tuples;     /* index tuples per batch */
    int64_t data_batch; /* data elements per batch */
};

static int gather_nd_kernel(struct qv_exec *x)
{
    const struct nd_params *p = (const void *)x->priv;
    const struct qv_tensor *data = x->in[0], *ind = x->in[1];
    size_t es = qv_dtype_size(data->dtype);
    int64_t ds[QV_MAX_DIMS];
    char *out = x->out[0]->data;

    strides_of(data->shape, data->ndim, ds);
    for (int64_t b = 0; b < p->n_batch; b++)
        for (int64_t t = 0; t < p->tuples; t++) {
            int64_t off = b * p->data_batch;
            for (int64_t k = 0; k < p->q_last; k++) {
                int dim = p->batch_dims + (int)k;
                int64_t v = index_at(ind, (b * p->tuples + t) * p->q_last + k);
                if (v < 0)
                    v += data->shape[dim];
                if (v < 0 || v >= data->shape[dim])
                    return QV_EINVAL;
                off += v * ds[dim];
            }
            memcpy(out + (size_t)((b * p->tuples + t) * p->slice) * es,
                   (const char *)data->data + (size_t)off * es, (size_t)p->slice * es);
        }
    return QV_OK;
}

static int nd_common(struct qv_exec *x, struct nd_params *p, struct qv_diag *d)
{
    const struct qv_tensor *data = x->in[0], *ind = x->in[1];
    int err = check_indices_dtype(x, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    p->batch_dims = (int)qv_attr_int(x->node, "batch_dims", 0);
    if (ind->ndim < 1 || data->ndim < 1 || p->batch_dims < 0 || p->batch_dims >= ind->ndim ||
        p->batch_dims >= data->ndim)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad ranks or batch_dims");
    p->q_last = ind->shape[ind->ndim - 1];
    if (p->q_last < 1 || p->q_last > data->ndim - p->batch_dims)
        return qv_op_fail(x->node, d, QV_EINVAL, "index tuples too long");
    p->n_batch = 1;
    for (int i = 0; i < p->batch_dims; i++) {
        if (ind->shape[i] != data->shape[i])
            return qv_op_fail(x->node, d, QV_EINVAL, "batch dims differ");
        p->n_batch *= ind->shape[i];
    }
    p->tuples = 1;
    for (int i = p->batch_dims; i < ind->ndim - 1; i++)
        p->tuples *= ind->shape[i];
    p->slice = 1;
    for (int i = p->batch_dims + (int)p->q_last; i < data->ndim; i++)
        p->slice *= data->shape[i];
    p->data_batch = 1;
    for (int i = p->batch_dims; i < data->ndim; i++)
        p->data_batch *= data->shape[i];
    return QV_OK;
}

static int gather_nd_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct nd_params *p = (void *)x->priv;
    const struct qv_tensor *data, *ind;
    int64_t shape[2 * QV_MAX_DIMS];
    int k = 0, err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    err = nd_common(x, p, d);
    if (err)
        return err;
    data = x->in[0];
    ind = x->in[1];
    for (int i = 0; i < ind->ndim - 1; i++)
        shape[k++] = ind->shape[i];
    for (int i = p->batch_dims + (int)p->q_last; i < data->ndim; i++)
        shape[k++] = data->shape[i];
    if (k > QV_MAX_DIMS)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "result rank exceeds %d", QV_MAX_DIMS);
    qv_out_set(x, 0, data->dtype, k, shape);
    return QV_OK;
}

static int scatter_nd_kernel(struct qv_exec *x)
{
    const struct nd_params *p = (const void *)x->priv;
    const struct axis_params *ap = (const void *)(x->priv + sizeof(struct nd_params));
    const struct qv_tensor *data = x->in[0], *ind = x->in[1], *upd = x->in[2];
    int64_t ds[QV_MAX_DIMS];

    memcpy(x->out[0]->data, data->data, x->out[0]->nbytes);
    strides_of(data->shape, data->ndim, ds);
    for (int64_t t = 0; t < p->tuples; t++) {
        int64_t off = 0;
        for (int64_t k = 0; k < p->q_last; k++) {
            int64_t v = index_at(ind, t * p->q_last + k);
            if (v < 0)
                v += data->shape[k];
            if (v < 0 || v >= data->shape[k])
                return QV_EINVAL;
            off += v * ds[k];
        }
        for (int64_t s = 0; s < p->slice; s++)
            scatter_one(ap, x, upd, off + s, t * p->slice + s);
    }
    return QV_OK;
}

static int scatter_nd_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct nd_params *p = (void *)x->priv;
    struct axis_params *ap = (void *)(x->priv + sizeof(struct nd_params));
    int err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    err = nd_common(x, p, d);
    if (err)
        return err;
    if (p->batch_dims != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "ScatterND has no batch_dims");
    if (x->in[2]->dtype != x->in[0]->dtype || qv_numel(x->in[2]) != p->tuples * p->slice)
        return qv_op_fail(x->node, d, QV_EINVAL, "updates do not match indices");
    memset(ap, 0, sizeof(*ap));
    err = read_reduction(x, ap, d);
    if (err)
        return err;
    return qv_shape_same_as_input0(x, d);
}

/* ---- OneHot ---- */

static int one_hot_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    const struct qv_tensor *ind = x->in[0], *vals = x->in[2];
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(o->dtype);
    int64_t depth = o->shape[p->axis], outer = 1, inner = 1;

    for (int i = 0; i < p->axis; i++)
        outer *= o->shape[i];
    for (int i = p->axis + 1; i < o->ndim; i++)
        inner *= o->shape[i];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t k = 0; k < depth; k++)
            for (int64_t b = 0; b < inner; b++) {
                double v = qv_tensor_get_f64(ind, a * inner + b);
                int64_t want = (int64_t)(v < 0 ? v + (double)depth : v);
                copy_elem(o->data, (a * depth + k) * inner + b, vals->data, want == k ? 1 : 0, es);
            }
    return QV_OK;
}

static int one_hot_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    const struct qv_tensor *ind, *dep, *vals;
    int64_t shape[QV_MAX_DIMS], depth;
    int axis, k = 0, err = qv_op_arity(x, 3, 3, 1, 1, d);

    if (err)
        return err;
    ind = x->in[0];
    dep = x->in[1];
    vals = x->in[2];
    err = qv_input_known(x, 1, d);
    if (err)
        return err;
    if (qv_numel(dep) != 1 || qv_numel(vals) != 2 || qv_dtype_size(ind->dtype) == 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "depth must be a scalar, values a pair");
    depth = (int64_t)qv_tensor_get_f64(dep, 0);
    if (depth < 1 || ind->ndim + 1 > QV_MAX_DIMS)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad depth or rank");
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", -1), ind->ndim + 1, &axis, d);
    if (err)
        return err;
    for (int i = 0; i <= ind->ndim; i++)
        shape[i] = i == axis ? depth : ind->shape[k++];
    p->axis = axis;
    x->kdtype = vals->dtype;
    qv_out_set(x, 0, vals->dtype, ind->ndim + 1, shape);
    return QV_OK;
}

/* ---- Trilu ---- */

static int trilu_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t rows = in->shape[in->ndim - 2], cols = in->shape[in->ndim - 1];
    int64_t mats = (rows > 0 && cols > 0) ? qv_numel(in) / (rows * cols) : 0;

    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                int64_t off = (m * rows + i) * cols + j;
                bool keep = p->flag ? j - i >= p->k : j - i <= p->k;
                if (keep)
                    copy_elem(x->out[0]->data, off, in->data, off, es);
                else
                    memset((char *)x->out[0]->data + (size_t)off * es, 0, es);
            }
    return QV_OK;
}

static int trilu_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, 2, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->ndim < 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "input rank must be >= 2");
    p->flag = qv_attr_int(x->node, "upper", 1) != 0;
    p->k = 0;
    if (x->n_in > 1 && x->in[1]) {
        err = qv_input_known(x, 1, d);
        if (err)
            return err;
        if (x->in[1]->dtype != QV_DTYPE_I64 || qv_numel(x->in[1]) != 1)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "k must be a constant int64 scalar");
        p->k = *(const int64_t *)x->in[1]->data;
    }
    return qv_shape_same_as_input0(x, d);
}

/* ---- CumSum ---- */

#define CUMSUM_KERNEL(sfx, T)                                                                      \
    static int cumsum_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct axis_params *p = (const void *)x->priv;                                       \
        const struct qv_tensor *in = x->in[0];                                                     \
        const T *a = in->data;                                                                     \
        T *y = x->out[0]->data;                                                                    \
        int64_t n = in->shape[p->axis], outer = 1, inner = 1;                                      \
        for (int i = 0; i < p->axis; i++)                                                          \
            outer *= in->shape[i];                                                                 \
        for (int i = p->axis + 1; i < in->ndim; i++)                                               \
            inner *= in->shape[i];                                                                 \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                T acc = 0;                                                                         \
                for (int64_t s = 0; s < n; s++) {                                                  \
                    int64_t i = p->flag2 ? n - 1 - s : s;                                          \
                    int64_t off = (o * n + i) * inner + j;                                         \
                    if (p->flag) {                                                                 \
                        y[off] = acc;                                                              \
                        acc += a[off];                                                             \
                    } else {                                                                       \
                        acc += a[off];                                                             \
                        y[off] = acc;                                                              \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        return QV_OK;                                                                              \
    }

CUMSUM_KERNEL(f32, float)
CUMSUM_KERNEL(f64, double)
CUMSUM_KERNEL(i64, int64_t)
CUMSUM_KERNEL(i32, int32_t)

static int cumsum_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    int64_t axis;
    int n, err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    err = qv_input_ints(x, 1, &axis, 1, &n, d);
    if (err)
        return err;
    if (n != 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "axis must be a scalar");
    err = qv_axis_norm(x, axis, x->in[0]->ndim, &p->axis, d);
    if (err)
        return err;
    p->flag = qv_attr_int(x->node, "exclusive", 0) != 0;
    p->flag2 = qv_attr_int(x->node, "reverse", 0) != 0;
    return qv_shape_same_as_input0(x, d);
}

/* ---- TopK ---- */

#define TOPK_KERNEL(sfx, T)                                                                        \
    static int topk_##sfx(struct qv_exec *x)                                                       \
    {                                                                                              \
        const struct axis_params *p = (const void *)x->priv;                                       \
        const struct qv_tensor *in = x->in[0];                                                     \
        const T *a = in->data;                                                                     \
        T *vals = x->out[0]->data;                                                                 \
        int64_t *idx = x->out[1]->data, n = in->shape[p->axis], outer = 1, inner = 1;              \
        for (int i = 0; i < p->axis; i++)                                                          \
            outer *= in->shape[i];                                                                 \
        for (int i = p->axis + 1; i < in->ndim; i++)                                               \
            inner *= in->shape[i];                                                                 \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                /* Selection by insertion into the k-long output (k is small). */                  \
                int64_t have = 0;                                                                  \
                for (int64_t i = 0; i < n; i++) {                                                  \
                    T v = a[(o * n + i) * inner + j];                                              \
                    int64_t pos = have;                                                            \
                    while (pos > 0) {                                                              \
                        T w = vals[(o * p->k + pos - 1) * inner + j];                              \
                        bool before = p->flag ? v > w : v < w;                                     \
                        if (!before)                                                               \
                            break;                                                                 \
                        pos--;                                                                     \
                    }                                                                              \
                    if (pos >= p->k)                                                               \
                        continue;                                                                  \
                    for (int64_t m = (have < p->k ? have : p->k - 1); m > pos; m--) {              \
                        vals[(o * p->k + m) * inner + j] = vals[(o * p->k + m - 1) * inner + j];   \
                        idx[(o * p->k + m) * inner + j] = idx[(o * p->k + m - 1) * inner + j];     \
                    }                                                                              \
                    vals[(o * p->k + pos) * inner + j] = v;                                        \
                    idx[(o * p->k + pos) * inner + j] = i;                                         \
                    if (have < p->k)                                                               \
                        have++;                                                                    \
                }                                                                                  \
            }                                                                                      \
        return QV_OK;                                                                              \
    }

TOPK_KERNEL(f32, float)
TOPK_KERNEL(f64, double)
TOPK_KERNEL(i64, int64_t)
TOPK_KERNEL(i32, int32_t)

static int topk_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[QV_MAX_DIMS], k;
    int n, err;

    err = qv_op_arity(x, 1, 2, 2, 2, d);
    if (err)
        return err;
    in = x->in[0];
    memset(p, 0, sizeof(*p));
    if (x->node->opset < 10) {
        k = qv_attr_int(x->node, "k", -1);
    } else {
        err = qv_input_ints(x, 1, &k, 1, &n, d);
        if (err)
            return err;
    }
    err = qv_axis_norm(x, qv_attr_int(x->node, "axis", -1), in->ndim, &p->axis, d);
    if (err)
        return err;
    if (k < 0 || k > in->shape[p->axis])
        return qv_op_fail(x->node, d, QV_EINVAL, "k out of range");
    p->k = k;
    p->flag = qv_attr_int(x->node, "largest", 1) != 0;
    memcpy(shape, in->shape, sizeof(shape));
    shape[p->axis] = k;
    qv_out_set(x, 0, in->dtype, in->ndim, shape);
    qv_out_set(x, 1, QV_DTYPE_I64, in->ndim, shape);
    return QV_OK;
}

/* ---- DepthToSpace / SpaceToDepth ---- */

static int depth_space_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0];
    const struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t bs = p->block, N = in->shape[0];
    bool to_space = p->flag;
    /* Work in terms of the "space" tensor [N, C, H*bs, W*bs] and the
     * "depth" tensor [N, C*bs*bs, H, W]. */
    const struct qv_tensor *depth = to_space ? in : o;
    int64_t C = depth->shape[1] / (bs * bs), H = depth->shape[2], W = depth->shape[3];

    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t by = 0; by < bs; by++)
                    for (int64_t w = 0; w < W; w++)
                        for (int64_t bx = 0; bx < bs; bx++) {
                            int64_t dc =
                                p->crd ? c * bs * bs + by * bs + bx : (by * bs + bx) * C + c;
                            int64_t doff = ((n * C * bs * bs + dc) * H + h) * W + w;
                            int64_t soff =
                                ((n * C + c) * H * bs + h * bs + by) * W * bs + w * bs + bx;
                            if (to_space)
                                copy_elem(o->data, soff, in->data, doff, es);
                            else
                                copy_elem(o->data, doff, in->data, soff, es);
                        }
    return QV_OK;
}

static int depth_space_infer(struct qv_exec *x, bool to_space, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    int64_t shape[4], bs;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    bs = qv_attr_int(x->node, "blocksize", 0);
    if (in->ndim != 4 || bs < 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs a 4-D input and blocksize >= 1");
    memset(p, 0, sizeof(*p));
    p->block = bs;
    p->flag = to_space;
    p->crd = to_space && strcmp(qv_attr_string(x->node, "mode", "DCR"), "CRD") == 0;
    shape[0] = in->shape[0];
    if (to_space) {
        if (in->shape[1] % (bs * bs) != 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "channels not divisible by blocksize^2");
        shape[1] = in->shape[1] / (bs * bs);
        shape[2] = in->shape[2] * bs;
        shape[3] = in->shape[3] * bs;
    } else {
        if (in->shape[2] % bs != 0 || in->shape[3] % bs != 0)
            return qv_op_fail(x->node, d, QV_EINVAL, "spatial dims not divisible by blocksize");
        shape[1] = in->shape[1] * bs * bs;
        shape[2] = in->shape[2] / bs;
        shape[3] = in->shape[3] / bs;
    }
    qv_out_set(x, 0, in->dtype, 4, shape);
    return QV_OK;
}

static int depth_to_space_infer(struct qv_exec *x, struct qv_diag *d)
{
    return depth_space_infer(x, true, d);
}

static int space_to_depth_infer(struct qv_exec *x, struct qv_diag *d)
{
    return depth_space_infer(x, false, d);
}

/* ---- EyeLike ---- */

static int eye_like_kernel(struct qv_exec *x)
{
    const struct axis_params *p = (const void *)x->priv;
    struct qv_tensor *o = x->out[0];
    int64_t rows = o->shape[0], cols = o->shape[1];

    memset(o->data, 0, o->nbytes);
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = i + p->k;
        if (j < 0 || j >= cols)
            continue;
        switch (o->dtype) {
        case QV_DTYPE_F32:
            ((float *)o->data)[i * cols + j] = 1.0f;
            break;
        case QV_DTYPE_F64:
            ((double *)o->data)[i * cols + j] = 1.0;
            break;
        case QV_DTYPE_I64:
            ((int64_t *)o->data)[i * cols + j] = 1;
            break;
        case QV_DTYPE_I32:
            ((int32_t *)o->data)[i * cols + j] = 1;
            break;
        default:
            ((uint8_t *)o->data)[(i * cols + j) * (int64_t)qv_dtype_size(o->dtype)] = 1;
            break;
        }
    }
    return QV_OK;
}

static int eye_like_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct axis_params *p = (void *)x->priv;
    const struct qv_attr *dt = qv_attr_find(x->node, "dtype");
    enum qv_dtype t;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->ndim != 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "input must be 2-D");
    t = x->in[0]->dtype;
    if (dt) {
        static const enum qv_dtype map[] = {
            [1] = QV_DTYPE_F32,  [2] = QV_DTYPE_U8,   [3] = QV_DTYPE_I8,   [4] = QV_DTYPE_U16,
            [5] = QV_DTYPE_I16,  [6] = QV_DTYPE_I32,  [7] = QV_DTYPE_I64,  [9] = QV_DTYPE_BOOL,
            [11] = QV_DTYPE_F64, [12] = QV_DTYPE_U32, [13] = QV_DTYPE_U64,
        };
        if (dt->type != QV_ATTR_INT || dt->i < 0 || dt->i >= (int64_t)QV_ARRAY_LEN(map) ||
            map[dt->i] == QV_DTYPE_UNDEF)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "dtype not supported");
        t = map[dt->i];
    }
    p->k = qv_attr_int(x->node, "k", 0);
    x->kdtype = t;
    qv_out_set(x, 0, t, 2, x->in[0]->shape);
    return QV_OK;
}

#define ALL(fn)                                                                                    \
    {                                                                                              \
        QV_KERNELS_ALL(fn)                                                                         \
    }
#define NUM(name)                                                                                  \
    {                                                                                              \
        [QV_DTYPE_F32] = name##_f32, [QV_DTYPE_F64] = name##_f64, [QV_DTYPE_I64] = name##_i64,     \
        [QV_DTYPE_I32] = name##_i32                                                                \
    }

const struct qv_op qv_op_cum_sum = {
    .name = "CumSum", .since_version = 11, .infer_shape = cumsum_infer, .kernels = NUM(cumsum)};
const struct qv_op qv_op_depth_to_space = {.name = "DepthToSpace",
                                           .since_version = 1,
                                           .infer_shape = depth_to_space_infer,
                                           .kernels = ALL(depth_space_kernel)};
const struct qv_op qv_op_eye_like = {.name = "EyeLike",
                                     .since_version = 9,
                                     .infer_shape = eye_like_infer,
                                     .kernels = ALL(eye_like_kernel)};
const struct qv_op qv_op_gather_elements = {.name = "GatherElements",
                                            .since_version = 11,
                                            .infer_shape = gather_elements_infer,
                                            .kernels = ALL(gather_elements_kernel)};
const struct qv_op qv_op_gather_nd = {.name = "GatherND",
                                      .since_version = 11,
                                      .infer_shape = gather_nd_infer,
                                      .kernels = ALL(gather_nd_kernel)};
const struct qv_op qv_op_one_hot = {.name = "OneHot",
                                    .since_version = 9,
                                    .infer_shape = one_hot_infer,
                                    .kernels = ALL(one_hot_kernel)};
const struct qv_op qv_op_scatter_elements = {.name = "ScatterElements",
                                             .since_version = 11,
                                             .infer_shape = scatter_elements_infer,
                                             .kernels = ALL(scatter_elements_kernel)};
/* Scatter (opset 9-10) is ScatterElements under its old name. */
const struct qv_op qv_op_scatter = {.name = "Scatter",
                                    .since_version = 9,
                                    .infer_shape = scatter_elements_infer,
                                    .kernels = ALL(scatter_elements_kernel)};
const struct qv_op qv_op_scatter_nd = {.name = "ScatterND",
                                       .since_version = 11,
                                       .infer_shape = scatter_nd_infer,
                                       .kernels = ALL(scatter_nd_kernel)};
const struct qv_op qv_op_space_to_depth = {.name = "SpaceToDepth",
                                           .since_version = 1,
                                           .infer_shape = space_to_depth_infer,
                                           .kernels = ALL(depth_space_kernel)};
const struct qv_op qv_op_top_k = {
    .name = "TopK", .since_version = 1, .infer_shape = topk_infer, .kernels = NUM(topk)};
const struct qv_op qv_op_trilu = {
    .name = "Trilu", .since_version = 14, .infer_shape = trilu_infer, .kernels = ALL(trilu_kernel)};
