/* SPDX-License-Identifier: MIT
 *
 * Gemm and MatMul on OpenBLAS (cblas). MatMul follows numpy: 1-D operands
 * are promoted and the batch dimensions broadcast; each batch is one GEMM
 * call with offsets computed from broadcast strides.
 */
#include "op.h"

#include <cblas.h>

/* ---- Gemm ---- */

struct gemm_params {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
};

#define GEMV_ROWS 4 /* up to this many rows, Gemm/MatMul use gemv */

#define GEMM_KERNEL(sfx, T, GEMM, GEMV)                                                            \
    static int gemm_##sfx(struct qv_exec *x)                                                       \
    {                                                                                              \
        const struct gemm_params *p = (const void *)x->priv;                                       \
        const struct qv_tensor *c = x->n_in > 2 ? x->in[2] : NULL;                                 \
        T *y = x->out[0]->data;                                                                    \
        T beta = 0;                                                                                \
        if (c && p->beta != 0 && qv_numel(c) > 0) {                                                \
            /* Y = beta * broadcast(C), then accumulate. */                                        \
            const T *cv = c->data;                                                                 \
            int64_t cm = c->ndim == 2 ? c->shape[0] : 1;                                           \
            int64_t cn = c->ndim >= 1 ? c->shape[c->ndim - 1] : 1;                                 \
            for (int64_t i = 0; i < p->m; i++)                                                     \
                for (int64_t j = 0; j < p->n; j++)                                                 \
                    y[i * p->n + j] = (T)p->beta * cv[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)]; \
            beta = 1;                                                                              \
        }                                                                                          \
        if (p->m == 0 || p->n == 0)                                                                \
            return QV_OK;                                                                          \
        if (p->k == 0) {                                                                           \
            if (beta == 0)                                                                         \
                memset(y, 0, sizeof(T) * (size_t)(p->m * p->n));                                   \
            return QV_OK;                                                                          \
        }                                                                                          \
        if (p->m <= GEMV_ROWS) {                                                                   \
            /* A few rows: matrix-vector products, which skip packing B. */                        \
            for (int64_t i = 0; i < p->m; i++) {                                                   \
                const T *ai = (const T *)x->in[0]->data + (p->trans_a ? i : i * p->k);             \
                GEMV(CblasRowMajor, p->trans_b ? CblasNoTrans : CblasTrans,                        \
                     p->trans_b ? (int)p->n : (int)p->k, p->trans_b ? (int)p->k : (int)p->n,       \
                     (T)p->alpha, x->in[1]->data, p->trans_b ? (int)p->k : (int)p->n, ai,          \
                     p->trans_a ? (int)p->m : 1, beta, y + i * p->n, 1);                           \
            }                                                                                      \
            return QV_OK;                                                                          \
        }                                                                                          \
        GEMM(CblasRowMajor, p->trans_a ? CblasTrans : CblasNoTrans,                                \
             p->trans_b ? CblasTrans : CblasNoTrans, (int)p->m, (int)p->n, (int)p->k, (T)p->alpha, \
             x->in[0]->data, p->trans_a ? (int)p->m : (int)p->k, x->in[1]->data,                   \
             p->trans_b ? (int)p->k : (int)p->n, beta, y, (int)p->n);                              \
        return QV_OK;                                                                              \
    }

GEMM_KERNEL(f32, float, cblas_sgemm, cblas_sgemv)
GEMM_KERNEL(f64, double, cblas_dgemm, cblas_dgemv)

static int gemm_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct gemm_params *p = (void *)x->priv;
    const struct qv_tensor *a, *b, *c;
    int64_t shape[2], ka, kb;
    int err = qv_op_arity(x, 2, 3, 1, 1, d);

    if (err)
        return err;
    a = x->in[0];
    b = x->in[1];
    c = x->n_in > 2 ? x->in[2] : NULL;
    if (x->node->opset < 11 && c == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "input C is required before opset 11");
    if (a->ndim != 2 || b->ndim != 2)
        return qv_op_fail(x->node, d, QV_EINVAL, "A and B must be 2-D (got rank %d and %d)",
                          a->ndim, b->ndim);
    if (b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return qv_op_fail(x->node, d, QV_EINVAL, "inputs differ in data type");
    p->trans_a = qv_attr_int(x->node, "transA", 0) != 0;
    p->trans_b = qv_attr_int(x->node, "transB", 0) != 0;
    p->alpha = qv_attr_float(x->node, "alpha", 1.0f);
    p->beta = qv_attr_float(x->node, "beta", 1.0f);
    p->m = p->trans_a ? a->shape[1] : a->shape[0];
    ka = p->trans_a ? a->shape[0] : a->shape[1];
    kb = p->trans_b ? b->shape[1] : b->shape[0];
    p->n = p->trans_b ? b->shape[0] : b->shape[1];
    p->k = ka;
    if (ka != kb)
        return qv_op_fail(x->node, d, QV_EINVAL, "inner dimensions differ: %lld vs %lld",
                          (long long)ka, (long long)kb);
    if (p->m > INT32_MAX || p->n > INT32_MAX || p->k > INT32_MAX)
        return qv_op_fail(x->node, d, QV_E2BIG, "dimensions too large for BLAS");
    if (c) {
        /* C broadcasts unidirectionally to [M, N]. */
        bool ok = c->ndim <= 2;
        if (ok && c->ndim >= 1)
            ok = c->shape[c->ndim - 1] == 1 || c->shape[c->ndim - 1] == p->n;
        if (ok && c->ndim == 2)
            ok = c->shape[0] == 1 || c->shape[0] == p->m;
        if (!ok)
            return qv_op_fail(x->node, d, QV_EINVAL, "C does not broadcast to [%lld,%lld]",
                              (long long)p->m, (long long)p->n);
    }
    shape[0] = p->m;
    shape[1] = p->n;
    qv_out_set(x, 0, a->dtype, 2, shape);
    return QV_OK;
}

/* ---- MatMul ---- */

struct matmul_params {
    int64_t m, n, k;
    int batch_ndim;
    int64_t batch[QV_MAX_DIMS];
    int64_t a_stride[QV_MAX_DIMS], b_stride[QV_MAX_DIMS]; /* in matrices, 0 on broadcast */
};

_Static_assert(sizeof(struct matmul_params) <= QV_EXEC_PRIV, "priv too small");

#define MATMUL_KERNEL(sfx, T, GEMM, GEMV)                                                          \
    static int matmul_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct matmul_params *p = (const void *)x->priv;                                     \
        const T *a = x->in[0]->data, *b = x->in[1]->data;                                          \
        T *y = x->out[0]->data;                                                                    \
        int64_t nb = 1;                                                                            \
        for (int i = 0; i < p->batch_ndim; i++)                                                    \
            nb *= p->batch[i];                                                                     \
        if (p->m == 0 || p->n == 0)                                                                \
            return QV_OK;                                                                          \
        for (int64_t bi = 0; bi < nb; bi++) {                                                      \
            int64_t rem = bi, ao = 0, bo = 0;                                                      \
            for (int i = p->batch_ndim - 1; i >= 0; i--) {                                         \
                int64_t idx = rem % p->batch[i];                                                   \
                rem /= p->batch[i];                                                                \
                ao += idx * p->a_stride[i];                                                        \
                bo += idx * p->b_stride[i];                                                        \
            }                                                                                      \
            if (p->k == 0) {                                                                       \
                memset(y + bi * p->m * p->n, 0, sizeof(T) * (size_t)(p->m * p->n));                \
                continue;                                                                          \
            }                                                                                      \
            if (p->m <= GEMV_ROWS) {                                                               \
                for (int64_t i = 0; i < p->m; i++)                                                 \
                    GEMV(CblasRowMajor, CblasTrans, (int)p->k, (int)p->n, 1, b + bo * p->k * p->n, \
                         (int)p->n, a + ao * p->m * p->k + i * p->k, 1, 0,                         \
                         y + bi * p->m * p->n + i * p->n, 1);                                      \
                continue;                                                                          \
            }                                                                                      \
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->m, (int)p->n, (int)p->k, 1,    \
                 a + ao * p->m * p->k, (int)p->k, b + bo * p->k * p->n, (int)p->n, 0,              \
                 y + bi * p->m * p->n, (int)p->n);                                                 \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

MATMUL_KERNEL(f32, float, cblas_sgemm, cblas_sgemv)
MATMUL_KERNEL(f64, double, cblas_dgemm, cblas_dgemv)

static int matmul_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct matmul_params *p = (void *)x->priv;
    const struct qv_tensor *a, *b;
    int64_t as[QV_MAX_DIMS + 1], bs[QV_MAX_DIMS + 1], shape[QV_MAX_DIMS + 1];
    int an, bn, nd, k = 0, err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    a = x->in[0];
    b = x->in[1];
    if (a->dtype != b->dtype)
        return qv_op_fail(x->node, d, QV_EINVAL, "inputs differ in data type");
    if (a->ndim < 1 || b->ndim < 1)
        return qv_op_fail(x->node, d, QV_EINVAL, "inputs must have rank >= 1");
    /* Promote 1-D operands: [K] -> [1,K] for A, [K] -> [K,1] for B. */
    an = a->ndim;
    memcpy(as, a->shape, sizeof(int64_t) * (size_t)an);
    if (an == 1) {
        as[1] = as[0];
        as[0] = 1;
        an = 2;
    }
    bn = b->ndim;
    memcpy(bs, b->shape, sizeof(int64_t) * (size_t)bn);
    if (bn == 1) {
        bs[1] = 1;
        bn = 2;
    }
    if (as[an - 1] != bs[bn - 2])
        return qv_op_fail(x->node, d, QV_EINVAL, "inner dimensions differ: %lld vs %lld",
                          (long long)as[an - 1], (long long)bs[bn - 2]);
    memset(p, 0, sizeof(*p));
    p->m = as[an - 2];
    p->k = as[an - 1];
    p->n = bs[bn - 1];
    if (p->m > INT32_MAX || p->n > INT32_MAX || p->k > INT32_MAX)
        return qv_op_fail(x->node, d, QV_E2BIG, "dimensions too large for BLAS");
    nd = (an > bn ? an : bn) - 2;
    p->batch_ndim = nd;
    {
        int64_t sa = 1, sb = 1;
        for (int i = nd - 1; i >= 0; i--) {
            int ia = i - (nd - (an - 2)), ib = i - (nd - (bn - 2));
            int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
            if (da != db && da != 1 && db != 1)
                return qv_op_fail(x->node, d, QV_EINVAL, "batch dimensions do not broadcast");
            p->batch[i] = da == 1 ? db : da;
            p->a_stride[i] = da == 1 ? 0 : sa;
            p->b_stride[i] = db == 1 ? 0 : sb;
            sa *= da;
            sb *= db;
        }
    }
    for (int i = 0; i < nd; i++)
        shape[k++] = p->batch[i];
    if (a->ndim > 1)
        shape[k++] = p->m;
    if (b->ndim > 1)
        shape[k++] = p->n;
    qv_out_set(x, 0, a->dtype, k, shape);
    return QV_OK;
}

const struct qv_op qv_op_gemm = {
    .name = "Gemm",
    .since_version = 1,
    .infer_shape = gemm_infer,
    .kernels = {[QV_DTYPE_F32] = gemm_f32, [QV_DTYPE_F64] = gemm_f64},
};

const struct qv_op qv_op_matmul = {
    .name = "MatMul",
    .since_version = 1,
    .infer_shape = matmul_infer,
    .kernels = {[QV_DTYPE_F32] = matmul_f32, [QV_DTYPE_F64] = matmul_f64},
};
