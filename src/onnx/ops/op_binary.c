/* SPDX-License-Identifier: MIT
 *
 * Elementwise binary and variadic operators with multidirectional
 * broadcasting: Add, Sub, Mul, Div, Pow, Sum, Max, Min, Mean, PRelu, and the
 * comparisons and logic ops (Equal, Greater, Less, ..., And, Or, Xor) plus
 * Where. Before opset 7, Add/Sub/Mul/Div used the legacy "broadcast"/"axis"
 * attributes, handled here by viewing B with 1-padded dims.
 */
#include "op.h"

#include <stdint.h>

/* Parameters infer_shape leaves in x->priv. */
struct bin_params {
    bool legacy; /* opset < 7 with broadcast=1 */
    bool flag;   /* Mod: fmod=1; BitShift: left */
    int b_ndim;  /* legacy view of input 1 */
    int64_t b_shape[QV_MAX_DIMS];
};

_Static_assert(sizeof(struct bin_params) <= QV_EXEC_PRIV, "priv too small");

/* Input 1 as the kernel should see it (legacy broadcasting re-views its shape). */
static struct qv_tensor view_b(const struct qv_exec *x, const struct qv_tensor *b)
{
    const struct bin_params *p = (const void *)x->priv;
    struct qv_tensor v = *b;

    if (p->legacy) {
        v.ndim = p->b_ndim;
        memcpy(v.shape, p->b_shape, sizeof(v.shape));
    }
    return v;
}

/* Applies 'OP' to (a, b) into y, broadcasting; T is the element type of
 * a/b, U of y. 'a' and 'b' are tensors, y the output tensor (already
 * shaped). The loop runs over rows of the last output dim. */
#define BCAST_LOOP(T, U, A, B, Y, OP)                                                              \
    do {                                                                                           \
        const struct qv_tensor *ops_[2] = {(A), (B)};                                              \
        struct qv_bcast bc_;                                                                       \
        const T *pa_ = (const T *)(A)->data;                                                       \
        const T *pb_ = (const T *)(B)->data;                                                       \
        U *py_ = (U *)(Y)->data;                                                                   \
        int64_t n_ = qv_numel(Y);                                                                  \
        if (qv_bcast_init(&bc_, 2, ops_, NULL, NULL) != 0)                                         \
            return QV_EINVAL;                                                                      \
        if (bc_.same[0] && bc_.same[1]) {                                                          \
            for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
                T a = pa_[i_], b = pb_[i_];                                                        \
                py_[i_] = (U)(OP);                                                                 \
            }                                                                                      \
        } else if (bc_.same[0] && qv_numel(B) == 1) {                                              \
            T b = pb_[0];                                                                          \
            for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
                T a = pa_[i_];                                                                     \
                py_[i_] = (U)(OP);                                                                 \
            }                                                                                      \
        } else if (bc_.same[1] && qv_numel(A) == 1) {                                              \
            T a = pa_[0];                                                                          \
            for (int64_t i_ = 0; i_ < n_; i_++) {                                                  \
                T b = pb_[i_];                                                                     \
                py_[i_] = (U)(OP);                                                                 \
            }                                                                                      \
        } else if (n_ > 0) {                                                                       \
            int64_t inner_ = bc_.ndim ? bc_.shape[bc_.ndim - 1] : 1;                               \
            int64_t sa_ = bc_.ndim ? bc_.strides[0][bc_.ndim - 1] : 0;                             \
            int64_t sb_ = bc_.ndim ? bc_.strides[1][bc_.ndim - 1] : 0;                             \
            for (int64_t r_ = 0; r_ < n_; r_ += inner_) {                                          \
                int64_t off_[QV_BCAST_MAX];                                                        \
                qv_bcast_offsets(&bc_, r_, off_);                                                  \
                for (int64_t j_ = 0; j_ < inner_; j_++) {                                          \
                    T a = pa_[off_[0] + j_ * sa_], b = pb_[off_[1] + j_ * sb_];                    \
                    py_[r_ + j_] = (U)(OP);                                                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Defines name_T: out = in0 OP in1 (OP over a, b), then folds in2.. for variadic ops. */
#define BIN_KERNEL(name, sfx, T, OP)                                                               \
    static int name##_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        struct qv_tensor b0 = view_b(x, x->in[x->n_in > 1 ? 1 : 0]);                               \
        const struct qv_tensor *a0 = x->in[0];                                                     \
        if (x->n_in == 1) {                                                                        \
            memcpy(x->out[0]->data, a0->data, x->out[0]->nbytes);                                  \
            return QV_OK;                                                                          \
        }                                                                                          \
        BCAST_LOOP(T, T, a0, &b0, x->out[0], OP);                                                  \
        for (int k_ = 2; k_ < x->n_in; k_++)                                                       \
            BCAST_LOOP(T, T, x->out[0], x->in[k_], x->out[0], OP);                                 \
        return QV_OK;                                                                              \
    }

#define CMP_KERNEL(name, sfx, T, OP)                                                               \
    static int name##_##sfx(struct qv_exec *x)                                                     \
    {                                                                                              \
        BCAST_LOOP(T, uint8_t, x->in[0], x->in[1], x->out[0], OP);                                 \
        return QV_OK;                                                                              \
    }

static inline int64_t idiv64(int64_t a, int64_t b)
{
    if (b == 0)
        return 0;
    if (b == -1)
        return (int64_t)(0 - (uint64_t)a);
    return a / b;
}

static inline int32_t idiv32(int32_t a, int32_t b)
{
    if (b == 0)
        return 0;
    if (b == -1)
        return (int32_t)(0 - (uint32_t)a);
    return a / b;
}

static inline int64_t ipow64(int64_t a, int64_t b)
{
    int64_t r = 1;

    if (b < 0)
        return a == 1 ? 1 : 0;
    while (b > 0) {
        if (b & 1)
            r = (int64_t)((uint64_t)r * (uint64_t)a);
        a = (int64_t)((uint64_t)a * (uint64_t)a);
        b >>= 1;
    }
    return r;
}

/* Wrapping add/sub/mul for signed ints (no UB on overflow). */
#define WADD(T, UT, a, b) ((T)((UT)(a) + (UT)(b)))
#define WSUB(T, UT, a, b) ((T)((UT)(a) - (UT)(b)))
#define WMUL(T, UT, a, b) ((T)((UT)(a) * (UT)(b)))

BIN_KERNEL(add, f32, float, a + b)
BIN_KERNEL(add, f64, double, a + b)
BIN_KERNEL(add, i64, int64_t, WADD(int64_t, uint64_t, a, b))
BIN_KERNEL(add, i32, int32_t, WADD(int32_t, uint32_t, a, b))
BIN_KERNEL(sub, f32, float, a - b)
BIN_KERNEL(sub, f64, double, a - b)
BIN_KERNEL(sub, i64, int64_t, WSUB(int64_t, uint64_t, a, b))
BIN_KERNEL(sub, i32, int32_t, WSUB(int32_t, uint32_t, a, b))
BIN_KERNEL(mul, f32, float, a *b)
BIN_KERNEL(mul, f64, double, a *b)
BIN_KERNEL(mul, i64, int64_t, WMUL(int64_t, uint64_t, a, b))
BIN_KERNEL(mul, i32, int32_t, WMUL(int32_t, uint32_t, a, b))
BIN_KERNEL(div, f32, float, a / b)
BIN_KERNEL(div, f64, double, a / b)
BIN_KERNEL(div, i64, int64_t, idiv64(a, b))
BIN_KERNEL(div, i32, int32_t, idiv32(a, b))
BIN_KERNEL(pow_same, f32, float, powf(a, b))
BIN_KERNEL(pow_same, f64, double, pow(a, b))
BIN_KERNEL(pow_same, i64, int64_t, ipow64(a, b))

/* Pow with an exponent of another type: element by element through double
 * (integers exactly when both are integers); the result has the base's type. */
static int pow_mixed(struct qv_exec *x)
{
    const struct qv_tensor *ops[2] = {x->in[0], x->in[1]};
    struct qv_tensor *o = x->out[0];
    bool ints = o->dtype != QV_DTYPE_F32 && o->dtype != QV_DTYPE_F64 &&
                x->in[1]->dtype != QV_DTYPE_F32 && x->in[1]->dtype != QV_DTYPE_F64;
    struct qv_bcast bc;
    int64_t off[QV_BCAST_MAX];

    if (qv_bcast_init(&bc, 2, ops, NULL, NULL) != 0)
        return QV_EINVAL;
    for (int64_t j = 0; j < bc.numel; j++) {
        double a, b, r;
        qv_bcast_offsets(&bc, j, off);
        a = qv_tensor_get_f64(x->in[0], off[0]);
        b = qv_tensor_get_f64(x->in[1], off[1]);
        r = ints ? (double)ipow64((int64_t)a, (int64_t)b) : pow(a, b);
        switch (o->dtype) {
        case QV_DTYPE_F32:
            ((float *)o->data)[j] = (float)r;
            break;
        case QV_DTYPE_F64:
            ((double *)o->data)[j] = r;
            break;
        case QV_DTYPE_I32:
            ((int32_t *)o->data)[j] = (int32_t)(isfinite(r) && fabs(r) < 2e9 ? r : 0);
            break;
        default:
            ((int64_t *)o->data)[j] = ints ? ipow64((int64_t)a, (int64_t)b)
                                           : (int64_t)(isfinite(r) && fabs(r) < 9e18 ? r : 0);
            break;
        }
    }
    return QV_OK;
}

static int pow_f32(struct qv_exec *x)
{
    return x->in[1]->dtype == QV_DTYPE_F32 ? pow_same_f32(x) : pow_mixed(x);
}

static int pow_f64(struct qv_exec *x)
{
    return x->in[1]->dtype == QV_DTYPE_F64 ? pow_same_f64(x) : pow_mixed(x);
}

static int pow_i64(struct qv_exec *x)
{
    return x->in[1]->dtype == QV_DTYPE_I64 ? pow_same_i64(x) : pow_mixed(x);
}
BIN_KERNEL(max, f32, float, (isnan(a) || a > b) ? a : b)
BIN_KERNEL(max, f64, double, (isnan(a) || a > b) ? a : b)
BIN_KERNEL(max, i64, int64_t, a > b ? a : b)
BIN_KERNEL(max, i32, int32_t, a > b ? a : b)
BIN_KERNEL(min, f32, float, (isnan(a) || a < b) ? a : b)
BIN_KERNEL(min, f64, double, (isnan(a) || a < b) ? a : b)
BIN_KERNEL(min, i64, int64_t, a < b ? a : b)
BIN_KERNEL(min, i32, int32_t, a < b ? a : b)
BIN_KERNEL(prelu, f32, float, a < 0 ? a * b : a)
BIN_KERNEL(prelu, f64, double, a < 0 ? a * b : a)

/* The narrower integer types, for the arithmetic ops and Max/Min. */
#define BIN_SMALL(name, OP)                                                                        \
    BIN_KERNEL(name, u8, uint8_t, OP)                                                              \
    BIN_KERNEL(name, i8, int8_t, OP)                                                               \
    BIN_KERNEL(name, u16, uint16_t, OP)                                                            \
    BIN_KERNEL(name, i16, int16_t, OP)                                                             \
    BIN_KERNEL(name, u32, uint32_t, OP)                                                            \
    BIN_KERNEL(name, u64, uint64_t, OP)

BIN_SMALL(add, (uint64_t)a + (uint64_t)b)
BIN_SMALL(sub, (uint64_t)a - (uint64_t)b)
BIN_SMALL(mul, (uint64_t)a *(uint64_t)b)
BIN_SMALL(div, b == 0 ? 0 : a / b) /* unsigned or promoted to int: no overflow */
BIN_SMALL(max, a > b ? a : b)
BIN_SMALL(min, a < b ? a : b)

/* Mod: integer remainder takes the divisor's sign unless fmod=1 (C fmod). */
static inline int64_t imod64(int64_t a, int64_t b, bool fmod_)
{
    int64_t r;

    if (b == 0)
        return 0;
    if (b == -1)
        return 0;
    r = a % b;
    if (!fmod_ && r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

#define MOD_KERNEL(sfx, T, EXPR)                                                                   \
    static int mod_##sfx(struct qv_exec *x)                                                        \
    {                                                                                              \
        const struct bin_params *p_ = (const void *)x->priv;                                       \
        bool fm = p_->flag;                                                                        \
        (void)fm;                                                                                  \
        BCAST_LOOP(T, T, x->in[0], x->in[1], x->out[0], EXPR);                                     \
        return QV_OK;                                                                              \
    }

MOD_KERNEL(f32, float, fmodf(a, b))
MOD_KERNEL(f64, double, fmod(a, b))
MOD_KERNEL(i64, int64_t, imod64(a, b, fm))
MOD_KERNEL(i32, int32_t, imod64(a, b, fm))
MOD_KERNEL(i16, int16_t, imod64(a, b, fm))
MOD_KERNEL(i8, int8_t, imod64(a, b, fm))
MOD_KERNEL(u8, uint8_t, b == 0 ? 0 : a % b)
MOD_KERNEL(u16, uint16_t, b == 0 ? 0 : a % b)
MOD_KERNEL(u32, uint32_t, b == 0 ? 0 : a % b)
MOD_KERNEL(u64, uint64_t, b == 0 ? 0 : a % b)

#define SHIFT_KERNEL(sfx, T)                                                                       \
    static int shift_##sfx(struct qv_exec *x)                                                      \
    {                                                                                              \
        const struct bin_params *p_ = (const void *)x->priv;                                       \
        bool left = p_->flag;                                                                      \
        BCAST_LOOP(T, T, x->in[0], x->in[1], x->out[0],                                            \
                   b >= sizeof(T) * 8 ? 0 : (left ? (T)(a << b) : (T)(a >> b)));                   \
        return QV_OK;                                                                              \
    }

SHIFT_KERNEL(u8, uint8_t)
SHIFT_KERNEL(u16, uint16_t)
SHIFT_KERNEL(u32, uint32_t)
SHIFT_KERNEL(u64, uint64_t)

/* Mean: sum then scale. */
static int mean_f32(struct qv_exec *x)
{
    int64_t n = qv_numel(x->out[0]);
    float *y = x->out[0]->data;
    float s = 1.0f / (float)x->n_in;

    add_f32(x);
    for (int64_t i = 0; i < n; i++)
        y[i] *= s;
    return QV_OK;
}

#define CMP_ALL(name, OP)                                                                          \
    CMP_KERNEL(name, f32, float, OP)                                                               \
    CMP_KERNEL(name, f64, double, OP)                                                              \
    CMP_KERNEL(name, i64, int64_t, OP)                                                             \
    CMP_KERNEL(name, i32, int32_t, OP)                                                             \
    CMP_KERNEL(name, u8, uint8_t, OP)

CMP_ALL(equal, a == b)
CMP_ALL(greater, a > b)
CMP_ALL(less, a < b)
CMP_ALL(greater_equal, a >= b)
CMP_ALL(less_equal, a <= b)
CMP_KERNEL(and, u8, uint8_t, (a && b))
CMP_KERNEL(or, u8, uint8_t, (a || b))
CMP_KERNEL(xor, u8, uint8_t, ((a != 0) != (b != 0)))

/* ---- Shape inference ---- */

static int bin_infer_common(struct qv_exec *x, enum qv_dtype out_dtype, bool same_dtype,
                            struct qv_diag *d)
{
    struct bin_params *p = (void *)x->priv;
    const struct qv_tensor *ops[QV_BCAST_MAX];
    struct qv_tensor bview;
    struct qv_bcast bc;
    int err, n = 0;

    err = qv_op_arity(x, 1, 1000000, 1, 1, d);
    if (err)
        return err;
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < x->n_in; i++) {
        if (x->in[i] == NULL)
            return qv_op_fail(x->node, d, QV_EINVAL, "input %d is missing", i);
        if (same_dtype && x->in[i]->dtype != x->in[0]->dtype)
            return qv_op_fail(x->node, d, QV_EINVAL, "inputs have different data types %s, %s",
                              qv_dtype_name(x->in[0]->dtype), qv_dtype_name(x->in[i]->dtype));
    }
    if (x->node->opset < 7 && x->n_in == 2 && qv_attr_int(x->node, "broadcast", 0) != 0) {
        const struct qv_tensor *a = x->in[0], *b = x->in[1];
        int axis = a->ndim - b->ndim;
        if (qv_attr_find(x->node, "axis")) {
            err = qv_axis_norm(x, qv_attr_int(x->node, "axis", 0), a->ndim, &axis, d);
            if (err)
                return err;
        }
        if (axis < 0 || axis + b->ndim > a->ndim)
            return qv_op_fail(x->node, d, QV_EINVAL, "legacy broadcast does not fit");
        p->legacy = true;
        p->b_ndim = a->ndim;
        for (int i = 0; i < a->ndim; i++)
            p->b_shape[i] = (i >= axis && i < axis + b->ndim) ? b->shape[i - axis] : 1;
    }
    /* Shape: broadcast all inputs pairwise (legacy B viewed as padded). */
    bview = view_b(x, x->in[x->n_in > 1 ? 1 : 0]);
    ops[0] = x->in[0];
    ops[1] = &bview;
    n = x->n_in > 1 ? 2 : 1;
    err = qv_bcast_init(&bc, n, ops, x->node, d);
    if (err)
        return err;
    for (int i = 2; i < x->n_in; i++) {
        struct qv_tensor acc;
        memset(&acc, 0, sizeof(acc));
        acc.ndim = bc.ndim;
        memcpy(acc.shape, bc.shape, sizeof(acc.shape));
        ops[0] = &acc;
        ops[1] = x->in[i];
        err = qv_bcast_init(&bc, 2, ops, x->node, d);
        if (err)
            return err;
    }
    if (x->node->opset < 7 && !p->legacy && x->n_in == 2 &&
        (x->in[0]->ndim != x->in[1]->ndim ||
         memcmp(x->in[0]->shape, x->in[1]->shape, sizeof(int64_t) * (size_t)x->in[0]->ndim))) {
        /* Without broadcast=1, old opsets need equal shapes; accept the
         * numpy result anyway when B is a scalar, as producers relied on it. */
        if (qv_numel(x->in[1]) != 1)
            return qv_op_fail(x->node, d, QV_EINVAL, "shapes differ and broadcast=0");
    }
    qv_out_set(x, 0, out_dtype == QV_DTYPE_UNDEF ? x->in[0]->dtype : out_dtype, bc.ndim, bc.shape);
    return QV_OK;
}

static int bin_infer(struct qv_exec *x, struct qv_diag *d)
{
    if (x->n_in < 1 || x->in[0] == NULL)
        return qv_op_fail(x->node, d, QV_EINVAL, "needs inputs");
    return bin_infer_common(x, QV_DTYPE_UNDEF, true, d);
}

static int bin2_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    return bin_infer_common(x, QV_DTYPE_UNDEF, true, d);
}

static int pow_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    if (qv_dtype_size(x->in[1]->dtype) == 0 || x->in[1]->dtype == QV_DTYPE_F16)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "exponent type %s is not supported",
                          qv_dtype_name(x->in[1]->dtype));
    return bin_infer_common(x, QV_DTYPE_UNDEF, false, d);
}

static int prelu_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);
    const struct qv_tensor *a, *s;

    if (err)
        return err;
    a = x->in[0];
    s = x->in[1];
    /* Before opset 7 (and in old exporters) the slope may be [C] against
     * NCHW input: view it as [C,1,1] (unidirectional broadcasting). */
    if (s->ndim == 1 && a->ndim > 2 && s->shape[0] == a->shape[1] && s->shape[0] != 1) {
        struct bin_params *p = (void *)x->priv;
        err = bin_infer_common(x, QV_DTYPE_UNDEF, true, NULL);
        if (err == QV_OK)
            return QV_OK;
        memset(p, 0, sizeof(*p));
        p->legacy = true;
        p->b_ndim = a->ndim;
        for (int i = 0; i < a->ndim; i++)
            p->b_shape[i] = i == 1 ? s->shape[0] : 1;
        qv_out_set(x, 0, a->dtype, a->ndim, a->shape);
        return QV_OK;
    }
    return bin_infer_common(x, QV_DTYPE_UNDEF, true, d);
}

static int mod_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct bin_params *p = (void *)x->priv;
    int err = bin2_infer(x, d);
    enum qv_dtype t;

    if (err)
        return err;
    p->flag = qv_attr_int(x->node, "fmod", 0) != 0;
    t = x->in[0]->dtype;
    if ((t == QV_DTYPE_F32 || t == QV_DTYPE_F64) && !p->flag)
        return qv_op_fail(x->node, d, QV_EINVAL, "floating-point Mod needs fmod=1");
    return QV_OK;
}

static int shift_infer(struct qv_exec *x, struct qv_diag *d)
{
    struct bin_params *p = (void *)x->priv;
    const char *dir = qv_attr_string(x->node, "direction", "");
    int err = bin2_infer(x, d);

    if (err)
        return err;
    if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
        return qv_op_fail(x->node, d, QV_EINVAL, "direction must be LEFT or RIGHT");
    p->flag = dir[0] == 'L';
    return QV_OK;
}

static int cmp_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->dtype == QV_DTYPE_BOOL)
        x->kdtype = QV_DTYPE_U8;
    return bin_infer_common(x, QV_DTYPE_BOOL, true, d);
}

static int logic_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    if (x->in[0]->dtype != QV_DTYPE_BOOL || x->in[1]->dtype != QV_DTYPE_BOOL)
        return qv_op_fail(x->node, d, QV_EINVAL, "inputs must be bool");
    x->kdtype = QV_DTYPE_U8;
    return bin_infer_common(x, QV_DTYPE_BOOL, true, d);
}

#define KF(name) [QV_DTYPE_F32] = name##_f32, [QV_DTYPE_F64] = name##_f64
#define KFI(name) KF(name), [QV_DTYPE_I64] = name##_i64, [QV_DTYPE_I32] = name##_i32
#define KALL(name)                                                                                 \
    KFI(name), [QV_DTYPE_U8] = name##_u8, [QV_DTYPE_I8] = name##_i8, [QV_DTYPE_U16] = name##_u16,  \
               [QV_DTYPE_I16] = name##_i16, [QV_DTYPE_U32] = name##_u32,                           \
               [QV_DTYPE_U64] = name##_u64

const struct qv_op qv_op_add = {.name = "Add",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin2_infer,
                                .kernels = {KALL(add)}};
const struct qv_op qv_op_sub = {.name = "Sub",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin2_infer,
                                .kernels = {KALL(sub)}};
const struct qv_op qv_op_mul = {.name = "Mul",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin2_infer,
                                .kernels = {KALL(mul)}};
const struct qv_op qv_op_div = {.name = "Div",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin2_infer,
                                .kernels = {KALL(div)}};
const struct qv_op qv_op_pow = {
    .name = "Pow",
    .since_version = 1,
    .infer_shape = pow_infer,
    .kernels = {KF(pow), [QV_DTYPE_I64] = pow_i64, [QV_DTYPE_I32] = pow_mixed}};
const struct qv_op qv_op_sum = {.name = "Sum",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin_infer,
                                .kernels = {KFI(add)}};
const struct qv_op qv_op_max = {.name = "Max",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin_infer,
                                .kernels = {KALL(max)}};
const struct qv_op qv_op_min = {.name = "Min",
                                .since_version = 1,
                                .flags = QV_OP_ELEMENTWISE,
                                .infer_shape = bin_infer,
                                .kernels = {KALL(min)}};
const struct qv_op qv_op_mean = {.name = "Mean",
                                 .since_version = 1,
                                 .infer_shape = bin_infer,
                                 .kernels = {[QV_DTYPE_F32] = mean_f32}};
const struct qv_op qv_op_prelu = {
    .name = "PRelu", .since_version = 1, .infer_shape = prelu_infer, .kernels = {KF(prelu)}};

#define KCMP(name) KFI(name), [QV_DTYPE_U8] = name##_u8
const struct qv_op qv_op_equal = {
    .name = "Equal", .since_version = 1, .infer_shape = cmp_infer, .kernels = {KCMP(equal)}};
const struct qv_op qv_op_greater = {
    .name = "Greater", .since_version = 1, .infer_shape = cmp_infer, .kernels = {KCMP(greater)}};
const struct qv_op qv_op_greater_or_equal = {.name = "GreaterOrEqual",
                                             .since_version = 12,
                                             .infer_shape = cmp_infer,
                                             .kernels = {KCMP(greater_equal)}};
const struct qv_op qv_op_less = {
    .name = "Less", .since_version = 1, .infer_shape = cmp_infer, .kernels = {KCMP(less)}};
const struct qv_op qv_op_less_or_equal = {.name = "LessOrEqual",
                                          .since_version = 12,
                                          .infer_shape = cmp_infer,
                                          .kernels = {KCMP(less_equal)}};
const struct qv_op qv_op_and = {.name = "And",
                                .since_version = 1,
                                .infer_shape = logic_infer,
                                .kernels = {[QV_DTYPE_U8] = and_u8}};
const struct qv_op qv_op_or = {.name = "Or",
                               .since_version = 1,
                               .infer_shape = logic_infer,
                               .kernels = {[QV_DTYPE_U8] = or_u8}};
const struct qv_op qv_op_xor = {.name = "Xor",
                                .since_version = 1,
                                .infer_shape = logic_infer,
                                .kernels = {[QV_DTYPE_U8] = xor_u8}};
const struct qv_op qv_op_bit_shift = {.name = "BitShift",
                                      .since_version = 11,
                                      .infer_shape = shift_infer,
                                      .kernels = {[QV_DTYPE_U8] = shift_u8,
                                                  [QV_DTYPE_U16] = shift_u16,
                                                  [QV_DTYPE_U32] = shift_u32,
                                                  [QV_DTYPE_U64] = shift_u64}};
const struct qv_op qv_op_mod = {
    .name = "Mod",
    .since_version = 10,
    .infer_shape = mod_infer,
    .kernels = {KF(mod), [QV_DTYPE_I64] = mod_i64, [QV_DTYPE_I32] = mod_i32,
                [QV_DTYPE_I16] = mod_i16, [QV_DTYPE_I8] = mod_i8, [QV_DTYPE_U8] = mod_u8,
                [QV_DTYPE_U16] = mod_u16, [QV_DTYPE_U32] = mod_u32, [QV_DTYPE_U64] = mod_u64}};
