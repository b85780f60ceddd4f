/* SPDX-License-Identifier: MIT
 *
 * QLinearMatMul: quantized matrix product with per-tensor scales and zero
 * points. Integer products are summed in double (exact far beyond int8
 * ranges), then requantized with round-half-to-even and saturation.
 */
#include "op.h"

#include <cblas.h>
#include <stdint.h>

/* Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
 * y_zero_point. */
static int qlinear_matmul_kernel(struct qv_exec *x)
{
    const struct qv_int_matmul *p = (const void *)x->priv;
    const struct qv_tensor *A = x->in[0], *B = x->in[3], *zy = x->in[7];
    double sa = qv_tensor_get_f64(x->in[1], 0), sb = qv_tensor_get_f64(x->in[4], 0);
    double sy = qv_tensor_get_f64(x->in[6], 0), z = qv_tensor_get_f64(zy, 0);
    double za = qv_tensor_get_f64(x->in[2], 0), zb = qv_tensor_get_f64(x->in[5], 0);
    double *a = x->scratch, *b = a + p->m * p->k, *c = b + p->k * p->n;
    bool is_signed = zy->dtype == QV_DTYPE_I8;
    struct qv_tensor *o = x->out[0];

    for (int64_t bi = 0; bi < p->batch; bi++) {
        for (int64_t i = 0; i < p->m * p->k; i++)
            a[i] = qv_tensor_get_f64(A, bi * p->a_batch + i) - za;
        for (int64_t i = 0; i < p->k * p->n; i++)
            b[i] = qv_tensor_get_f64(B, bi * p->b_batch + i) - zb;
        if (p->m && p->n && p->k)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->m, (int)p->n, (int)p->k,
                        1.0, a, (int)p->k, b, (int)p->n, 0.0, c, (int)p->n);
        else
            memset(c, 0, sizeof(double) * (size_t)(p->m * p->n));
        for (int64_t i = 0; i < p->m * p->n; i++) {
            double v = nearbyint(c[i] * sa * sb / sy) + z;
            double lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
            v = isnan(v) ? 0 : (v < lo ? lo : (v > hi ? hi : v));
            if (is_signed)
                ((int8_t *)o->data)[bi * p->m * p->n + i] = (int8_t)v;
            else
                ((uint8_t *)o->data)[bi * p->m * p->n + i] = (uint8_t)v;
        }
    }
    return QV_OK;
}

static int qlinear_matmul_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 8, 8, 1, 1, d);

    if (err)
        return err;
    for (int i = 1; i < 8; i++)
        if (i != 3 && qv_numel(x->in[i]) != 1)
            return qv_op_fail(x->node, d, QV_ENOTSUP, "only per-tensor scales and zero points");
    if (x->in[7]->dtype != QV_DTYPE_U8 && x->in[7]->dtype != QV_DTYPE_I8)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "inputs must be int8 or uint8");
    return qv_int_matmul_plan(x, x->in[0], x->in[3], x->in[7]->dtype, (void *)x->priv, d);
}

const struct qv_op qv_op_q_linear_mat_mul = {
    .name = "QLinearMatMul",
    .since_version = 10,
    .infer_shape = qlinear_matmul_infer,
    .kernels = {[QV_DTYPE_U8] = qlinear_matmul_kernel, [QV_DTYPE_I8] = qlinear_matmul_kernel},
};
