/* SPDX-License-Identifier: MIT
 *
 * Cast and CastLike between the numeric dtypes, float16 included (IEEE
 * binary16, round to nearest even). Integers convert exactly through
 * int64/uint64; floats through double. Float-to-integer conversions of NaN
 * or out-of-range values saturate instead of invoking undefined behaviour.
 */
#include "op.h"

#include <float.h>
#include <stdint.h>

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    float f;

    if (exp == 0) {
        f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t bits, sign, man;
    int32_t exp;

    memcpy(&bits, &f, sizeof(bits));
    sign = (bits >> 16) & 0x8000;
    exp = (int32_t)((bits >> 23) & 0xff) - 127 + 15;
    man = bits & 0x7fffff;
    if (((bits >> 23) & 0xff) == 0xff) /* inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        uint32_t m, shift, r, half;
        if (exp < -10)
            return (uint16_t)sign;
        m = man | 0x800000;
        shift = (uint32_t)(14 - exp);
        r = m >> shift;
        half = 1u << (shift - 1);
        if ((m & ((1u << shift) - 1)) > half || ((m & ((1u << shift) - 1)) == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
        uint32_t rest = man & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
            h++; /* may carry into the exponent, which is correct */
        return (uint16_t)h;
    }
}

static bool is_float(enum qv_dtype t)
{
    return t == QV_DTYPE_F32 || t == QV_DTYPE_F64 || t == QV_DTYPE_F16;
}

static double get_f(const void *p, enum qv_dtype t, int64_t i)
{
    switch (t) {
    case QV_DTYPE_F32:
        return ((const float *)p)[i];
    case QV_DTYPE_F64:
        return ((const double *)p)[i];
    case QV_DTYPE_F16:
        return half_to_float(((const uint16_t *)p)[i]);
    default:
        return 0;
    }
}

static int64_t get_i(const void *p, enum qv_dtype t, int64_t i)
{
    switch (t) {
    case QV_DTYPE_U8:
        return ((const uint8_t *)p)[i];
    case QV_DTYPE_I8:
        return ((const int8_t *)p)[i];
    case QV_DTYPE_U16:
        return ((const uint16_t *)p)[i];
    case QV_DTYPE_I16:
        return ((const int16_t *)p)[i];
    case QV_DTYPE_I32:
        return ((const int32_t *)p)[i];
    case QV_DTYPE_U32:
        return ((const uint32_t *)p)[i];
    case QV_DTYPE_I64:
        return ((const int64_t *)p)[i];
    case QV_DTYPE_U64:
        return (int64_t)((const uint64_t *)p)[i];
    case QV_DTYPE_BOOL:
        return ((const uint8_t *)p)[i] != 0;
    default:
        return 0;
    }
}

static int64_t sat_i64(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9.2233720368547758e18)
        return INT64_MAX;
    if (v <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void put_i(void *p, enum qv_dtype t, int64_t i, int64_t v)
{
    switch (t) {
    case QV_DTYPE_U8:
        ((uint8_t *)p)[i] = (uint8_t)v;
        break;
    case QV_DTYPE_I8:
        ((int8_t *)p)[i] = (int8_t)v;
        break;
    case QV_DTYPE_U16:
        ((uint16_t *)p)[i] = (uint16_t)v;
        break;
    case QV_DTYPE_I16:
        ((int16_t *)p)[i] = (int16_t)v;
        break;
    case QV_DTYPE_I32:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    case QV_DTYPE_U32:
        ((uint32_t *)p)[i] = (uint32_t)v;
        break;
    case QV_DTYPE_I64:
        ((int64_t *)p)[i] = v;
        break;
    case QV_DTYPE_U64:
        ((uint64_t *)p)[i] = (uint64_t)v;
        break;
    case QV_DTYPE_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    default:
        break;
    }
}

static void put_f(void *p, enum qv_dtype t, int64_t i, double v)
{
    switch (t) {
    case QV_DTYPE_F32:
        ((float *)p)[i] = (float)v;
        break;
    case QV_DTYPE_F64:
        ((double *)p)[i] = v;
        break;
    case QV_DTYPE_F16:
        ((uint16_t *)p)[i] = float_to_half((float)v);
        break;
    case QV_DTYPE_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    case QV_DTYPE_U64:
        ((uint64_t *)p)[i] =
            (isnan(v) || v <= 0) ? 0 : (v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v);
        break;
    default:
        put_i(p, t, i, sat_i64(v));
        break;
    }
}

static int cast_kernel(struct qv_exec *x)
{
    const struct qv_tensor *in = x->in[0];
    struct qv_tensor *o = x->out[0];
    int64_t n = qv_numel(o);

    if (in->dtype == o->dtype) {
        if (o->nbytes)
            memcpy(o->data, in->data, o->nbytes);
        return QV_OK;
    }
    if (in->dtype == QV_DTYPE_F16 && o->dtype == QV_DTYPE_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)o->data)[i] = half_to_float(((const uint16_t *)in->data)[i]);
        return QV_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        if (is_float(in->dtype)) {
            put_f(o->data, o->dtype, i, get_f(in->data, in->dtype, i));
        } else if (is_float(o->dtype)) {
            double v = in->dtype == QV_DTYPE_U64 ? (double)((const uint64_t *)in->data)[i]
                                                 : (double)get_i(in->data, in->dtype, i);
            put_f(o->data, o->dtype, i, v);
        } else {
            put_i(o->data, o->dtype, i, get_i(in->data, in->dtype, i));
        }
    }
    return QV_OK;
}

static enum qv_dtype onnx_to_dtype(int64_t t)
{
    /* TensorProto.DataType numbering; explicit rather than assumed. */
    switch (t) {
    case 1:
        return QV_DTYPE_F32;
    case 2:
        return QV_DTYPE_U8;
    case 3:
        return QV_DTYPE_I8;
    case 4:
        return QV_DTYPE_U16;
    case 5:
        return QV_DTYPE_I16;
    case 6:
        return QV_DTYPE_I32;
    case 7:
        return QV_DTYPE_I64;
    case 9:
        return QV_DTYPE_BOOL;
    case 10:
        return QV_DTYPE_F16;
    case 11:
        return QV_DTYPE_F64;
    case 12:
        return QV_DTYPE_U32;
    case 13:
        return QV_DTYPE_U64;
    default:
        return QV_DTYPE_UNDEF;
    }
}

static enum qv_dtype name_to_dtype(const char *s)
{
    static const struct {
        const char *name;
        enum qv_dtype t;
    } names[] = {{"FLOAT", QV_DTYPE_F32},  {"UINT8", QV_DTYPE_U8},   {"INT8", QV_DTYPE_I8},
                 {"UINT16", QV_DTYPE_U16}, {"INT16", QV_DTYPE_I16},  {"INT32", QV_DTYPE_I32},
                 {"INT64", QV_DTYPE_I64},  {"BOOL", QV_DTYPE_BOOL},  {"FLOAT16", QV_DTYPE_F16},
                 {"DOUBLE", QV_DTYPE_F64}, {"UINT32", QV_DTYPE_U32}, {"UINT64", QV_DTYPE_U64}};

    for (size_t i = 0; i < QV_ARRAY_LEN(names); i++)
        if (strcmp(names[i].name, s) == 0)
            return names[i].t;
    return QV_DTYPE_UNDEF;
}

static int cast_infer(struct qv_exec *x, struct qv_diag *d)
{
    const struct qv_attr *to = qv_attr_find(x->node, "to");
    enum qv_dtype t = QV_DTYPE_UNDEF;
    int err = qv_op_arity(x, 1, 1, 1, 1, d);

    if (err)
        return err;
    if (to && to->type == QV_ATTR_INT)
        t = onnx_to_dtype(to->i);
    else if (to && to->type == QV_ATTR_STRING)
        t = name_to_dtype(to->s);
    if (t == QV_DTYPE_UNDEF)
        return qv_op_fail(x->node, d, QV_ENOTSUP, "target type is missing or not supported");
    qv_out_set(x, 0, t, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

static int cast_like_infer(struct qv_exec *x, struct qv_diag *d)
{
    int err = qv_op_arity(x, 2, 2, 1, 1, d);

    if (err)
        return err;
    qv_out_set(x, 0, x->in[1]->dtype, x->in[0]->ndim, x->in[0]->shape);
    return QV_OK;
}

const struct qv_op qv_op_cast = {.name = "Cast",
                                 .since_version = 1,
                                 .infer_shape = cast_infer,
                                 .kernels = {QV_KERNELS_ALL(cast_kernel)}};
const struct qv_op qv_op_cast_like = {.name = "CastLike",
                                      .since_version = 15,
                                      .infer_shape = cast_like_infer,
                                      .kernels = {QV_KERNELS_ALL(cast_kernel)}};
