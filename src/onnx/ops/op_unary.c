/* SPDX-License-Identifier: MIT
 *
 * Elementwise unary operators: math (Neg, Abs, Exp, Log, Sqrt, Reciprocal,
 * Floor, Ceil, Round, Sign, Erf, trigonometry) and activations (Relu,
 * LeakyRelu, Elu, Selu, Celu, Sigmoid, Tanh, HardSigmoid, HardSwish,
 * Softplus, Softsign, ThresholdedRelu, Clip, Not). Attributes are read once
 * at plan time into struct unary_params.
 */
#include "op.h"

#include <float.h>
#include <stdint.h>

struct unary_params {
    float alpha, beta, gamma;
    double lo, hi; /* Clip bounds */
};

_Static_assert(sizeof(struct unary_params) <= QV_EXEC_PRIV, "priv too small");

#define UNARY_KERNEL(name, sfx, T, EXPR)                                                           \
    static int name##_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct unary_params *p = (const void *)x->priv;                                      \
        const T *in_ = x->in[0]->data;                                                             \
        T *out_ = x->out[0]->data;                                                                 \
        int64_t n_ = qv_numel(x->out[0]);                                                          \
        (void)p;                                                                                   \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                      \
            T v = in_[i_];                                                                         \
            out_[i_] = (T)(EXPR);                                                                  \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

#define UNARY_F(name, EXPR_F, EXPR_D)                                                              \
    UNARY_KERNEL(name, f32, float, EXPR_F)                                                         \
    UNARY_KERNEL(name, f64, double, EXPR_D)

static inline float sigmoidf(float v)
{
    return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
}

static inline double sigmoidd(double v)
{
    return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

static inline float softplusf(float v)
{
    return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v));
}

static inline double softplusd(double v)
{
    return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

/* Round half to even. */
static inline float roundevenf(float v)
{
    return nearbyintf(v);
}

UNARY_F(neg, -v, -v)
UNARY_KERNEL(neg, i64, int64_t, (int64_t)(0 - (uint64_t)v))
UNARY_KERNEL(neg, i32, int32_t, (int32_t)(0 - (uint32_t)v))
UNARY_KERNEL(neg, i8, int8_t, -v)
UNARY_F(abs, fabsf(v), fabs(v))
UNARY_KERNEL(abs, i64, int64_t, v < 0 ? (int64_t)(0 - (uint64_t)v) : v)
UNARY_KERNEL(abs, i32, int32_t, v < 0 ? (int32_t)(0 - (uint32_t)v) : v)
UNARY_F(exp, expf(v), exp(v))
UNARY_F(log, logf(v), log(v))
UNARY_F(sqrt, sqrtf(v), sqrt(v))
UNARY_F(reciprocal, 1.0f / v, 1.0 / v)
UNARY_F(floor, floorf(v), floor(v))
UNARY_F(ceil, ceilf(v), ceil(v))
UNARY_F(round, roundevenf(v), nearbyint(v))
UNARY_F(sign, v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f), v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0))
UNARY_KERNEL(sign, i64, int64_t, v > 0 ? 1 : (v < 0 ? -1 : 0))
UNARY_F(erf, erff(v), erf(v))
UNARY_F(sin, sinf(v), sin(v))
UNARY_F(cos, cosf(v), cos(v))
UNARY_F(tan, tanf(v), tan(v))
UNARY_F(asin, asinf(v), asin(v))
UNARY_F(acos, acosf(v), acos(v))
UNARY_F(atan, atanf(v), atan(v))
UNARY_F(sinh, sinhf(v), sinh(v))
UNARY_F(cosh, coshf(v), cosh(v))
UNARY_F(asinh, asinhf(v), asinh(v))
UNARY_F(acosh, acoshf(v), acosh(v))
UNARY_F(atanh, atanhf(v), atanh(v))
UNARY_F(relu, v > 0 ? v : 0.0f, v > 0 ? v : 0.0)
UNARY_KERNEL(relu, i64, int64_t, v > 0 ? v : 0)
UNARY_KERNEL(relu, i32, int32_t, v > 0 ? v : 0)
UNARY_F(leaky_relu, v < 0 ? p->alpha * v : v, v < 0 ? p->alpha * v : v)
UNARY_F(elu, v < 0 ? p->alpha * (expf(v) - 1.0f) : v, v < 0 ? p->alpha * (exp(v) - 1.0) : v)
UNARY_F(selu, v <= 0 ? p->gamma * (p->alpha * expf(v) - p->alpha) : p->gamma * v,
        v <= 0 ? p->gamma * (p->alpha * exp(v) - p->alpha) : p->gamma * v)
UNARY_F(celu, fmaxf(0.0f, v) + fminf(0.0f, p->alpha *(expf(v / p->alpha) - 1.0f)),
        fmax(0.0, v) + fmin(0.0, p->alpha *(exp(v / p->alpha) - 1.0)))
UNARY_F(thresholded_relu, v > p->alpha ? v : 0.0f, v > p->alpha ? v : 0.0)
UNARY_F(sigmoid, sigmoidf(v), sigmoidd(v))
UNARY_F(tanh, tanhf(v), tanh(v))
UNARY_F(hard_sigmoid, fmaxf(0.0f, fminf(1.0f, p->alpha *v + p->beta)),
        fmax(0.0, fmin(1.0, p->alpha *v + p->beta)))
UNARY_F(hard_swish, v *fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f)),
        v *fmax(0.0, fmin(1.0, v / 6.0 + 0.5)))
UNARY_F(softplus, softplusf(v), softplusd(v))
UNARY_F(softsign, v / (1.0f + fabsf(v)), v / (1.0 + fabs(v)))
UNARY_KERNEL(not, u8, uint8_t, !v)
UNARY_F(shrink, v < -p->alpha ? v + p->beta : (v > p->alpha ? v - p->beta : 0.0f),
        v < -p->alpha ? v + p->beta : (v > p->alpha ? v - p->beta : 0.0))

/* IsNaN / IsInf: float in, bool out. */
#define PREDICATE_KERNEL(name, sfx, T, EXPR)                                                       \
    static int name##_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        const struct unary_params *p = (const void *)x->priv;                                      \
        const T *in_ = x->in[0]->data;                                                             \
        uint8_t *out_ = x->out[0]->data;                                                           \
        int64_t n_ = qv_numel(x->out[0]);                                                          \
        (void)p;                                                                                   \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                      \
            T v = in_[i_];                                                                         \
            out_[i_] = (EXPR) ? 1 : 0;                                                             \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

PREDICATE_KERNEL(is_nan, f32, float, isnan(v))
PREDICATE_KERNEL(is_nan, f64, double, isnan(v))
PREDICATE_KERNEL(is_inf, f32, float,
                 isinf(v) && ((v > 0 && p->alpha != 0) || (v < 0 && p->beta != 0)))
PREDICATE_KERNEL(is_inf, f64, double,
                 isinf(v) && ((v > 0 && p->alpha != 0) || (v < 0 && p->beta != 0)))

/* Clip: NaN stays NaN; bounds from attributes (opset < 11) or inputs. */
#define CLIP_KERNEL(sfx, T)                                                                        \
    static int clip_##sfx(struct qv_exec *x)                                                       \
    {                                                                                              \
        const struct unary_params *p = (const void *)x->priv;                                      \
        const T *in_ = x->in[0]->data;                                                             \
        T *out_ = x->out[0]->data;                                                                 \
        int64_t n_ = qv_numel(x->out[0]);                                                          \
        T lo = (T)p->lo, hi = (T)p->hi;                                                            \
        if (x->node->opset >= 11) {                                                                \
            if (x->n_in > 1 && x->in[1])                                                           \
                lo = *(const T *)x->in[1]->data;                                                   \
            if (x->n_in > 2 && x->in[2])                                                           \
                hi = *(const T *)x->in[2]->data;                                                   \
        }                                                                                          \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                                      \
            T v = in_[i_];                                                                         \
            v = v < lo ? lo : v;                                                                   \
            out_[i_] = v > hi ? hi : v;                                                            \
        }                                                                                          \
        return QV_OK;                                                                              \
    }

CLIP_KERNEL(f32, float)
CLIP_KERNEL(f64, double)
CLIP_KERNEL(i64, int64_t)
CLIP_KERNEL(i32, int32_t)
CLIP_KERNEL(u8, uint8_t)
CLIP_KERNEL(i8, int8_t)

/* Default attribute values, by op name. */
static const struct {
    const char *op;
    float alpha, beta, gamma;
} defaults[] = {
    {"Celu", 1.0f, 0, 0},
    {"Elu", 1.0f, 0, 0},
    {"HardSigmoid", 0.2f, 0.5f, 0},
    {"LeakyRelu", 0.01f, 0, 0},
    {"Selu", 1.67326319217681884765625f, 0, 1.05070102214813232421875f},
    {"ThresholdedRelu", 1.0f, 0, 0},
};

static int unary_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unary_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < QV_ARRAY_LEN(defaults); i++)
        if (strcmp(defaults[i].op, x->node->op_type) == 0) {
            p->alpha = qv_attr_float(x->node, "alpha", defaults[i].alpha);
            p->beta = qv_attr_float(x->node, "beta", defaults[i].beta);
            p->gamma = qv_attr_float(x->node, "gamma", defaults[i].gamma);
        }
    return qv_shape_same_as_input0(x, d);
}

static int predicate_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unary_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    p->alpha = (float)qv_attr_int(x->node, "detect_positive", 1);
    p->beta = (float)qv_attr_int(x->node, "detect_negative", 1);
    qv_out_set(x, 0, QV_DTYPE_BOOL, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

static int shrink_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unary_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    p->alpha = qv_attr_float(x->node, "lambd", 0.5f);
    p->beta = qv_attr_float(x->node, "bias", 0.0f);
    return qv_shape_same_as_input0(x, d);
}

static int not_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = unary_infer(x, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_BOOL)
        return qv_op_fail(x->node, d, QV_EINVAL, "input must be bool");
    x->kdtype = QV_DTYPE_U8;
    return QV_OK;
}

static void clip_range(enum qv_dtype t, double *lo, double *hi)
{
    switch (t) {
    case QV_DTYPE_F32:
        *lo = -FLT_MAX;
        *hi = FLT_MAX;
        break;
    case QV_DTYPE_I64:
        *lo = -9.2e18;
        *hi = 9.2e18;
        break; /* exact int64 limits overflow a cast */
    case QV_DTYPE_I32:
        *lo = INT32_MIN;
        *hi = INT32_MAX;
        break;
    case QV_DTYPE_U8:
        *lo = 0;
        *hi = UINT8_MAX;
        break;
    case QV_DTYPE_I8:
        *lo = INT8_MIN;
        *hi = INT8_MAX;
        break;
    default:
        *lo = -DBL_MAX;
        *hi = DBL_MAX;
        break;
    }
}

static int clip_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct unary_params *p = (void *)x->priv;
    int err = qv_op_arity(x, 1, x->node->opset >= 11 ? 3 : 1, 1, 1, d);

    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    clip_range(x->in[0]->dtype, &p->lo, &p->hi);
    if (x->node->opset < 11) {
        p->lo = qv_attr_float(x->node, "min", (float)p->lo);
        p->hi = qv_attr_float(x->node, "max", (float)p->hi);
        if (x->in[0]->dtype == QV_DTYPE_F32) {
            p->lo = qv_attr_float(x->node, "min", -FLT_MAX);
            p->hi = qv_attr_float(x->node, "max", FLT_MAX);
        }
    }
    for (int i = 1; i < x->n_in; i++) {
        if (x->in[i] == NULL)
            continue;
        if (x->in[i]->dtype != x->in[0]->dtype || qv_numel(x->in[i]) != 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "bound %d must be a scalar of the input type",
                              i);
    }
    return qv_shape_same_as_input0(x, d);
}

#define KF(name) [QV_DTYPE_F32] = name##_f32, [QV_DTYPE_F64] = name##_f64

#define UNARY_OP(Name, cname, since, ...)                                                          \
    const struct qv_op qv_op_##cname = {.name = #Name,                                             \
                                        .since_version = since,                                    \
                                        .flags = QV_OP_ELEMENTWISE,                                \
                                        .infer_shape = unary_infer,                                \
                                        .kernels = {__VA_ARGS__}};

UNARY_OP(Abs, abs, 1, KF(abs), [QV_DTYPE_I64] = abs_i64, [QV_DTYPE_I32] = abs_i32)
UNARY_OP(Acos, acos, 7, KF(acos))
UNARY_OP(Acosh, acosh, 9, KF(acosh))
UNARY_OP(Asin, asin, 7, KF(asin))
UNARY_OP(Asinh, asinh, 9, KF(asinh))
UNARY_OP(Atan, atan, 7, KF(atan))
UNARY_OP(Atanh, atanh, 9, KF(atanh))
UNARY_OP(Ceil, ceil, 1, KF(ceil))
UNARY_OP(Celu, celu, 12, KF(celu))
UNARY_OP(Cos, cos, 7, KF(cos))
UNARY_OP(Cosh, cosh, 9, KF(cosh))
UNARY_OP(Elu, elu, 1, KF(elu))
UNARY_OP(Erf, erf, 9, KF(erf))
UNARY_OP(Exp, exp, 1, KF(exp))
UNARY_OP(Floor, floor, 1, KF(floor))
UNARY_OP(HardSigmoid, hard_sigmoid, 1, KF(hard_sigmoid))
UNARY_OP(HardSwish, hard_swish, 14, KF(hard_swish))
UNARY_OP(LeakyRelu, leaky_relu, 1, KF(leaky_relu))
UNARY_OP(Log, log, 1, KF(log))
UNARY_OP(Neg, neg, 1,
         KF(neg), [QV_DTYPE_I64] = neg_i64, [QV_DTYPE_I32] = neg_i32, [QV_DTYPE_I8] = neg_i8)
UNARY_OP(Reciprocal, reciprocal, 1, KF(reciprocal))
UNARY_OP(Relu, relu, 1, KF(relu), [QV_DTYPE_I64] = relu_i64, [QV_DTYPE_I32] = relu_i32)
UNARY_OP(Round, round, 11, KF(round))
UNARY_OP(Selu, selu, 1, KF(selu))
UNARY_OP(Sigmoid, sigmoid, 1, KF(sigmoid))
UNARY_OP(Sign, sign, 9, KF(sign), [QV_DTYPE_I64] = sign_i64)
UNARY_OP(Sin, sin, 7, KF(sin))
UNARY_OP(Sinh, sinh, 9, KF(sinh))
UNARY_OP(Softplus, softplus, 1, KF(softplus))
UNARY_OP(Softsign, softsign, 1, KF(softsign))
UNARY_OP(Sqrt, sqrt, 1, KF(sqrt))
UNARY_OP(Tan, tan, 7, KF(tan))
UNARY_OP(Tanh, tanh, 1, KF(tanh))
UNARY_OP(ThresholdedRelu, thresholded_relu, 10, KF(thresholded_relu))

const struct qv_op qv_op_not = {.name = "Not",
                                .since_version = 1,
                                .infer_shape = not_infer,
                                .kernels = {[QV_DTYPE_U8] = not_u8}};

const struct qv_op qv_op_clip = {
    .name = "Clip",
    .since_version = 1,
    .flags = QV_OP_ELEMENTWISE,
    .infer_shape = clip_infer,
    .kernels = {KF(clip), [QV_DTYPE_I64] = clip_i64, [QV_DTYPE_I32] = clip_i32,
                [QV_DTYPE_U8] = clip_u8, [QV_DTYPE_I8] = clip_i8}};

const struct qv_op qv_op_is_inf = {
    .name = "IsInf", .since_version = 10, .infer_shape = predicate_infer, .kernels = {KF(is_inf)}};
const struct qv_op qv_op_is_nan = {
    .name = "IsNaN", .since_version = 9, .infer_shape = predicate_infer, .kernels = {KF(is_nan)}};
const struct qv_op qv_op_shrink = {
    .name = "Shrink", .since_version = 9, .infer_shape = shrink_infer, .kernels = {KF(shrink)}};
