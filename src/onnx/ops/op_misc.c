/* SPDX-License-Identifier: MIT
 *
 * Assorted operators: window functions (HannWindow, HammingWindow,
 * BlackmanWindow), ReverseSequence, MaxUnpool, Det and MatMulInteger.
 */
#include "op.h"

#include <cblas.h>
#include <stdint.h>

/* ---- Windows ---- */

enum { W_HANN, W_HAMMING, W_BLACKMAN };

struct window_params {
    int kind;
    bool periodic;
};

static int window_kernel(struct qv_exec *x)
{
    const struct window_params *p = (const void *)x->priv;
    struct qv_tensor *o = x->out[0];
    int64_t n = qv_numel(o);
    double N = (double)(p->periodic ? n : n - 1);

    for (int64_t i = 0; i < n; i++) {
        double a = N > 0 ? 2 * M_PI * (double)i / N : 0, v;
        if (p->kind == W_HANN)
            v = 0.5 - 0.5 * cos(a);
        else if (p->kind == W_HAMMING)
            v = 25.0 / 46.0 - 21.0 / 46.0 * cos(a);
        else
            v = 0.42 - 0.5 * cos(a) + 0.08 * cos(2 * a);
        switch (o->dtype) {
        case QV_DTYPE_F32:
            ((float *)o->data)[i] = (float)v;
            break;
        case QV_DTYPE_F64:
            ((double *)o->data)[i] = v;
            break;
        default:
            ((int64_t *)o->data)[i] = (int64_t)v;
            break;
        }
    }
    return QV_OK;
}

static int window_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct window_params *p = (void *)x->priv;
    const char *op = x->node->op_type;
    int64_t size, dt = qv_attr_int(x->node, "output_datatype", 1);
    enum qv_dtype t = dt == 1 ? QV_DTYPE_F32 : (dt == 11 ? QV_DTYPE_F64 : QV_DTYPE_UNDEF);
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (!err)
        err = qv_input_known(x, 0, d);
    if (err)
        return err;
    if (t == QV_DTYPE_UNDEF)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "output_datatype %lld", (long long)dt);
    if (qv_numel(x->in[0]) != 1 ||
        (x->in[0]->dtype != QV_DTYPE_I64 && x->in[0]->dtype != QV_DTYPE_I32))
        return qv_op_fail(x->node, d, QV_EINVAL, "size must be an integer scalar");
    size = (int64_t)qv_tensor_get_f64(x->in[0], 0);
    if (size < 0 || size > 100000000)
        return qv_op_fail(x->node, d, QV_EINVAL, "bad size");
    p->kind = op[0] == 'H' && op[2] == 'n' ? W_HANN : (op[0] == 'H' ? W_HAMMING : W_BLACKMAN);
    p->periodic = qv_attr_int(x->node, "periodic", 1) != 0;
    x->kdtype = x->in[0]->dtype;
    qv_out_set(x, 0, t, 1, &size);
    return QV_OK;
}

/* ---- ReverseSequence ---- */

struct revseq_params {
    int batch_axis, time_axis;
};

static int reverse_sequence_kernel(struct qv_exec *x)
{
    const struct revseq_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0], *lens = x->in[1];
    size_t es = qv_dtype_size(in->dtype);
    int64_t strides[QV_MAX_DIMS], idx[QV_MAX_DIMS] = {0}, acc = 1, n = qv_numel(in);

    for (int i = in->ndim - 1; i >= 0; i--) {
        strides[i] = acc;
        acc *= in->shape[i];
    }
    for (int64_t j = 0; j < n; j++) {
        int64_t b = idx[p->batch_axis], t = idx[p->time_axis];
        int64_t len = lens->dtype == QV_DTYPE_I64 ? ((const int64_t *)lens->data)[b]
                                                  : ((const int32_t *)lens->data)[b];
        int64_t src = j;
        if (len < 0 || len > in->shape[p->time_axis])
            return QV_EINVAL;
        if (t < len)
            src = j + (len - 1 - 2 * t) * strides[p->time_axis];
        memcpy((char *)x->out[0]->data + (size_t)j * es, (const char *)in->data + (size_t)src * es,
               es);
        for (int i = in->ndim - 1; i >= 0; i--) {
            if (++idx[i] < in->shape[i])
                break;
            idx[i] = 0;
        }
    }
    return QV_OK;
}

static int reverse_sequence_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct revseq_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->ndim < 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "input rank must be >= 2");
    err = qv_axis_norm(x, qv_attr_int(x->node, "batch_axis", 1), x->in[0]->ndim, &p->batch_axis, d);
    if (!err)
        err =
            qv_axis_norm(x, qv_attr_int(x->node, "time_axis", 0), x->in[0]->ndim, &p->time_axis, d);
    if (err)
        return err;
    if (p->batch_axis == p->time_axis ||
        (x->in[1]->dtype != QV_DTYPE_I64 && x->in[1]->dtype != QV_DTYPE_I32) ||
        qv_numel(x->in[1]) != x->in[0]->shape[p->batch_axis])
        return qv_op_fail(x->node, d, QV_EINVAL, "sequence_lens must be int [batch]");
    return qv_shape_same_as_input0(x, d);
}

/* ---- MaxUnpool ---- */

struct unpool_params {
    int64_t def[QV_MAX_DIMS]; /* the shape the indices refer to (from kernel_shape etc.) */
};

/* Indices are flat positions in the default output shape; with an explicit
 * output_shape the element keeps its coordinates in the larger tensor. */
static int max_unpool_kernel(struct qv_exec *x)
{
    const struct unpool_params *p = (const void *)x->priv;
    const struct qv_tensor *in = x->in[0], *ind = x->in[1];
    struct qv_tensor *o = x->out[0];
    size_t es = qv_dtype_size(in->dtype);
    int64_t n = qv_numel(in), total = qv_shape_numel(p->def, o->ndim);

    memset(o->data, 0, o->nbytes);
    for (int64_t j = 0; j < n; j++) {
        int64_t k = ((const int64_t *)ind->data)[j], rem, off = 0, coord[QV_MAX_DIMS];
        if (k < 0 || k >= total)
            return QV_EINVAL;
        rem = k;
        for (int i = o->ndim - 1; i >= 0; i--) {
            coord[i] = rem % p->def[i];
            rem /= p->def[i];
        }
        for (int i = 0; i < o->ndim; i++) {
            if (coord[i] >= o->shape[i])
                return QV_EINVAL;
            off = off * o->shape[i] + coord[i];
        }
        memcpy((char *)o->data + (size_t)off * es, (const char *)in->data + (size_t)j * es, es);
    }
    return QV_OK;
}

static int max_unpool_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unpool_params *p = (void *)x->priv;
    const struct qv_tensor *in;
    const int64_t *ks, *st, *pa;
    int64_t shape[QV_MAX_DIMS];
    int nk, ns, np, sp, n, err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    sp = in->ndim - 2;
    if (sp < 1 || x->in[1]->dtype != QV_DTYPE_I64 || qv_numel(x->in[1]) != qv_numel(in))
        return qv_op_fail(x->node, d, QV_EINVAL, "needs X [N,C,...] and int64 indices like X");
    ks = qv_attr_ints(x->node, "kernel_shape", &nk);
    st = qv_attr_ints(x->node, "strides", &ns);
    pa = qv_attr_ints(x->node, "pads", &np);
    if (ks == NULL || nk != sp || (st && ns != sp) || (pa && np != 2 * sp))
        return qv_op_fail(x->node, d, QV_EINVAL, "kernel_shape/strides/pads do not match");
    p->def[0] = in->shape[0];
    p->def[1] = in->shape[1];
    for (int i = 0; i < sp; i++) {
        int64_t stv = st ? st[i] : 1;
        if (stv < 1 || stv > QV_ONNX_MAX_ELEMS / (in->shape[2 + i] + 1) || ks[i] < 1 ||
            ks[i] > QV_ONNX_MAX_ELEMS ||
            (pa && (pa[i] < 0 || pa[sp + i] < 0 || pa[i] > QV_ONNX_MAX_ELEMS ||
                    pa[sp + i] > QV_ONNX_MAX_ELEMS)))
            return qv_op_fail(x->node, d, QV_EINVAL, "bad strides, kernel_shape or pads");
        p->def[2 + i] =
            (in->shape[2 + i] - 1) * (st ? st[i] : 1) + ks[i] - (pa ? pa[i] + pa[sp + i] : 0);
        if (p->def[2 + i] < 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "output size below 1");
    }
    memcpy(shape, p->def, sizeof(shape));
    if (x->n_in > 2 && x->in[2]) {
        err = qv_input_ints(x, 2, shape, QV_MAX_DIMS, &n, d);
        if (err)
            return err;
        if (n != in->ndim)
            return qv_op_fail(x->node, d, QV_EINVAL, "output_shape has the wrong rank");
        for (int i = 0; i < n; i++)
            if (shape[i] < 0)
                return qv_op_fail(x->node, d, QV_EINVAL, "negative output_shape");
    }
    qv_out_set(x, 0, in->dtype, in->ndim, shape);
    return QV_OK;
}

/* ---- Det ---- */

#define DET_KERNEL(sfx, T)                                                                         \
    static int det_##sfx(struct qv_exec *x)                                                        \
    {                                                                                              \
        const struct qv_tensor *in = x->in[0];                                                     \
        int64_t m = in->shape[in->ndim - 1], mats = m ? qv_numel(in) / (m * m) : 0;                \
        double *a = x->scratch;                                                                    \
        for (int64_t k = 0; k < mats; k++) {                                                       \
            double det = 1;                                                                        \
            for (int64_t i = 0; i < m * m; i++)                                                    \
                a[i] = ((const T *)in->data)[k * m * m + i];                                       \
            for (int64_t c = 0; c < m; c++) {                                                      \
                int64_t piv = c;                                                                   \
                for (int64_t r = c + 1; r < m; r++)                                                \
                    if (fabs(a[r * m + c]) > fabs(a[piv * m + c]))                                 \
                        piv = r;                                                                   \
                if (a[piv * m + c] == 0) {                                                         \
                    det = 0;                                                                       \
                    break;                                                                         \
                }                                                                                  \
                if (piv != c) {                                                                    \
                    for (int64_t j = 0; j < m; j++) {                                              \
                        double t = a[c * m + j];                                                   \
                        a[c * m + j] = a[piv * m + j];                                             \
                        a[piv * m + j] = t;                                                        \
                    }                                                                              \
                    det = -det;                                                                    \
                }                                                                                  \
                det *= a[c * m + c];                                                               \
                for (int64_t r = c + 1; r < m; r++) {                                              \
                    double f = a[r * m + c] / a[c * m + c];                                        \
                    for (int64_t j = c; j < m; j++)                                                \
                        a[r * m + j] -= f * a[c * m + j];                                          \
                }                                                                                  \
            }                                                                                      \
            ((T *)x->out[0]->data)[k] = (T)det;                                                    \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

DET_KERNEL(f32, float)
DET_KERNEL(f64, double)

static int det_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_tensor *in;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    in = x->in[0];
    if (in->ndim < 2 || in->shape[in->ndim - 1] != in->shape[in->ndim - 2])
        return qv_op_fail(x->node, d, QV_EINVAL, "input must be [..., M, M]");
    if (in->shape[in->ndim - 1] > 4096)
        return qv_op_fail(x->node, d, QV_E2BIG, "matrix too large");
    x->scratch_bytes =
        sizeof(double) * (size_t)(in->shape[in->ndim - 1] * in->shape[in->ndim - 1]) + 1;
    qv_out_set(x, 0, in->dtype, in->ndim - 2, in->shape);
    return QV_OK;
}

/* ---- MatMulInteger ---- */

/* A and B minus their zero points, as doubles in scratch, then dgemm: exact
 * for any int8/uint8 product sum that fits a double's 53 bits. */
static int matmul_integer_kernel(struct qv_exec *x)
{
    const struct qv_int_matmul *p = (const void *)x->priv;
    const struct qv_tensor *A = x->in[0], *B = x->in[1];
    const struct qv_tensor *za = x->n_in > 2 ? x->in[2] : NULL, *zb = x->n_in > 3 ? x->in[3] : NULL;
    double *a = x->scratch, *b = a + p->m * p->k, *c = b + p->k * p->n;
    int32_t *y = x->out[0]->data;

    for (int64_t bi = 0; bi < p->batch; bi++) {
        for (int64_t i = 0; i < p->m * p->k; i++) {
            int64_t row = i / p->k;
            double z = za ? qv_tensor_get_f64(za, qv_numel(za) == 1 ? 0 : row) : 0;
            a[i] = qv_tensor_get_f64(A, bi * p->a_batch + i) - z;
        }
        for (int64_t i = 0; i < p->k * p->n; i++) {
            int64_t col = i % p->n;
            double z = zb ? qv_tensor_get_f64(zb, qv_numel(zb) == 1 ? 0 : col) : 0;
            b[i] = qv_tensor_get_f64(B, bi * p->b_batch + i) - z;
        }
        if (p->m && p->n && p->k)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->m, (int)p->n, (int)p->k,
                        1.0, a, (int)p->k, b, (int)p->n, 0.0, c, (int)p->n);
        else
            memset(c, 0, sizeof(double) * (size_t)(p->m * p->n));
        for (int64_t i = 0; i < p->m * p->n; i++)
            y[bi * p->m * p->n + i] = (int32_t)c[i];
    }
    return QV_OK;
}

static int matmul_integer_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 4, 1, 1, d);

    if (err)
        return err;
    return qv_int_matmul_plan(x, x->in[0], x->in[1], QV_DTYPE_I32, (void *)x->priv, d);
}

#define ALL(fn)                                                                                    \
    {                                                                                              \
        QV_KERNELS_ALL(fn)                                                                         \
    }

const struct qv_op qv_op_blackman_window = {.name = "BlackmanWindow",
                                            .since_version = 17,
                                            .infer_shape = window_infer,
                                            .kernels = ALL(window_kernel)};
const struct qv_op qv_op_det = {.name = "Det",
                                .since_version = 11,
                                .infer_shape = det_infer,
                                .kernels = {[QV_DTYPE_F32] = det_f32, [QV_DTYPE_F64] = det_f64}};
const struct qv_op qv_op_hamming_window = {.name = "HammingWindow",
                                           .since_version = 17,
                                           .infer_shape = window_infer,
                                           .kernels = ALL(window_kernel)};
const struct qv_op qv_op_hann_window = {.name = "HannWindow",
                                        .since_version = 17,
                                        .infer_shape = window_infer,
                                        .kernels = ALL(window_kernel)};
const struct qv_op qv_op_mat_mul_integer = {
    .name = "MatMulInteger",
    .since_version = 10,
    .infer_shape = matmul_integer_infer,
    .kernels = {[QV_DTYPE_U8] = matmul_integer_kernel, [QV_DTYPE_I8] = matmul_integer_kernel}};
const struct qv_op qv_op_max_unpool = {.name = "MaxUnpool",
                                       .since_version = 9,
                                       .infer_shape = max_unpool_infer,
                                       .kernels = ALL(max_unpool_kernel)};
const struct qv_op qv_op_reverse_sequence = {.name = "ReverseSequence",
                                             .since_version = 10,
                                             .infer_shape = reverse_sequence_infer,
                                             .kernels = ALL(reverse_sequence_kernel)};
