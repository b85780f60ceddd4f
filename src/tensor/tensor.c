/* SPDX-License-Identifier: MIT
 *
 * The tensor type: sizes, names, allocation and dtype conversion. */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[QV_DTYPE_COUNT] = {
    [QV_DTYPE_UNDEF] = {"UNDEF", 0},  [QV_DTYPE_F32] = {"FP32", 4},    [QV_DTYPE_U8] = {"UINT8", 1},
    [QV_DTYPE_I8] = {"INT8", 1},      [QV_DTYPE_U16] = {"UINT16", 2},  [QV_DTYPE_I16] = {"INT16", 2},
    [QV_DTYPE_I32] = {"INT32", 4},    [QV_DTYPE_I64] = {"INT64", 8},   [QV_DTYPE_STRING] = {"BYTES", 0},
    [QV_DTYPE_BOOL] = {"BOOL", 1},    [QV_DTYPE_F16] = {"FP16", 2},    [QV_DTYPE_F64] = {"FP64", 8},
    [QV_DTYPE_U32] = {"UINT32", 4},   [QV_DTYPE_U64] = {"UINT64", 8},
    [QV_DTYPE_BF16] = {"BF16", 2},
};

size_t qv_dtype_size(enum qv_dtype t)
{
    return (unsigned)t < QV_DTYPE_COUNT ? dtypes[t].size : 0;
}

const char *qv_dtype_name(enum qv_dtype t)
{
    return (unsigned)t < QV_DTYPE_COUNT ? dtypes[t].name : "UNDEF";
}

enum qv_dtype qv_dtype_from_name(const char *name)
{
    for (int i = 1; i < QV_DTYPE_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return (enum qv_dtype)i;
    return QV_DTYPE_UNDEF;
}

int64_t qv_shape_numel(const int64_t *shape, int ndim)
{
    int64_t n = 1;

    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

int64_t qv_tensor_numel(const struct qv_tensor *t)
{
    return qv_shape_numel(t->shape, t->ndim);
}

int qv_tensor_alloc(struct qv_tensor *t, const char *name, enum qv_dtype dtype, int ndim,
                    const int64_t *shape)
{
    int64_t n;
    size_t es = qv_dtype_size(dtype);

    if (ndim < 0 || ndim > QV_MAX_DIMS || es == 0)
        return QV_EINVAL;
    memset(t, 0, sizeof(*t));
    if (name)
        snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim)
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    n = qv_shape_numel(t->shape, ndim);
    if (n < 0 || (uint64_t)n > SIZE_MAX / es / 2)
        return QV_E2BIG;
    t->nbytes = (size_t)n * es;
    t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
    if (t->data == NULL)
        return QV_ENOMEM;
    t->owned = true;
    return QV_OK;
}

void qv_tensor_fini(struct qv_tensor *t)
{
    if (t == NULL)
        return;
    if (t->owned)
        free(t->data);
    t->data = NULL;
    t->nbytes = 0;
    t->owned = false;
}

void qv_shape_format(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t off = 0;

    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

bool qv_tensor_matches(const struct qv_tensor *t, const struct qv_tensor_desc *desc)
{
    if (t->ndim != desc->ndim)
        return false;
    for (int i = 0; i < t->ndim; i++)
        if (desc->shape[i] >= 0 && desc->shape[i] != t->shape[i])
            return false;
    return true;
}

float qv_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    float f;

    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf or NaN */
    } else if (exp == 0) {
        f = ldexpf((float)man, -24); /* zero or subnormal */
        return sign ? -f : f;
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t qv_float_to_half(float f)
{
    uint32_t bits, sign, man;
    int32_t exp;

    memcpy(&bits, &f, sizeof(bits));
    sign = (bits >> 16) & 0x8000u;
    exp = (int32_t)((bits >> 23) & 0xff);
    man = bits & 0x7fffffu;
    if (exp == 0xff)
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf or NaN */
    exp = exp - 127 + 15;
    if (exp >= 0x1f)
        return (uint16_t)(sign | 0x7c00u); /* overflow: inf */
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign; /* underflow: zero */
        man |= 0x800000u;
        {
            uint32_t shift = (uint32_t)(14 - exp);
            uint32_t half = man >> shift;
            uint32_t rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
            if (rest > mid || (rest == mid && (half & 1u)))
                half++;
            return (uint16_t)(sign | half);
        }
    }
    {
        uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13);
        uint32_t rest = man & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
            half++; /* round to nearest even; a carry into the exponent is right */
        return (uint16_t)half;
    }
}

float qv_bf16_to_float(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;

    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t qv_float_to_bf16(float f)
{
    uint32_t bits;

    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep the sign, make it quiet */
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u); /* round to nearest even; inf stays inf */
    return (uint16_t)(bits >> 16);
}

double qv_tensor_get_f64(const struct qv_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QV_DTYPE_F32: return ((const float *)t->data)[i];
    case QV_DTYPE_F64: return ((const double *)t->data)[i];
    case QV_DTYPE_F16: return qv_half_to_float(((const uint16_t *)t->data)[i]);
    case QV_DTYPE_BF16: return qv_bf16_to_float(((const uint16_t *)t->data)[i]);
    case QV_DTYPE_I8: return ((const int8_t *)t->data)[i];
    case QV_DTYPE_U8: return ((const uint8_t *)t->data)[i];
    case QV_DTYPE_I16: return ((const int16_t *)t->data)[i];
    case QV_DTYPE_U16: return ((const uint16_t *)t->data)[i];
    case QV_DTYPE_I32: return ((const int32_t *)t->data)[i];
    case QV_DTYPE_U32: return ((const uint32_t *)t->data)[i];
    case QV_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
    case QV_DTYPE_U64: return (double)((const uint64_t *)t->data)[i];
    case QV_DTYPE_BOOL: return ((const uint8_t *)t->data)[i] ? 1.0 : 0.0;
    default: return 0.0;
    }
}

static void set_f64(void *data, enum qv_dtype t, int64_t i, double v)
{
    switch (t) {
    case QV_DTYPE_F32: ((float *)data)[i] = (float)v; break;
    case QV_DTYPE_F64: ((double *)data)[i] = v; break;
    case QV_DTYPE_F16: ((uint16_t *)data)[i] = qv_float_to_half((float)v); break;
    case QV_DTYPE_BF16: ((uint16_t *)data)[i] = qv_float_to_bf16((float)v); break;
    case QV_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)v; break;
    case QV_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)v; break;
    case QV_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)v; break;
    case QV_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)v; break;
    case QV_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    case QV_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
    case QV_DTYPE_I64: ((int64_t *)data)[i] = (int64_t)v; break;
    case QV_DTYPE_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
    case QV_DTYPE_BOOL: ((uint8_t *)data)[i] = v != 0.0; break;
    default: break;
    }
}

int qv_tensor_convert(struct qv_tensor *t, enum qv_dtype to, struct qv_diag *d)
{
    size_t es = qv_dtype_size(to);
    int64_t n = qv_tensor_numel(t);
    void *nd;

    if (t->dtype == to)
        return QV_OK;
    if (es == 0 || qv_dtype_size(t->dtype) == 0)
        return qv_fail(d, QV_ENOTSUP, "cannot convert %s to %s", qv_dtype_name(t->dtype),
                       qv_dtype_name(to));
    nd = malloc((size_t)n * es + 1);
    if (nd == NULL)
        return QV_ENOMEM;
    for (int64_t i = 0; i < n; i++)
        set_f64(nd, to, i, qv_tensor_get_f64(t, i));
    qv_tensor_fini(t);
    t->data = nd;
    t->owned = true;
    t->dtype = to;
    t->nbytes = (size_t)n * es;
    return QV_OK;
}

int qv_tensor_class(const struct qv_tensor *t)
{
    int64_t cols = t->ndim >= 2 ? qv_shape_numel(t->shape + 1, t->ndim - 1) : 1;
    int best = 0;

    if (qv_tensor_numel(t) < 1 || cols < 1)
        return -1;
    if (cols == 1)
        return qv_tensor_get_f64(t, 0) >= 0.5 ? 1 : 0;
    for (int64_t c = 1; c < cols; c++)
        if (qv_tensor_get_f64(t, c) > qv_tensor_get_f64(t, best))
            best = (int)c;
    return best;
}

int qv_tensor_copy(struct qv_tensor *dst, const struct qv_tensor *src)
{
    int err;

    if (src->dtype != QV_DTYPE_BYTES) {
        err = qv_tensor_alloc(dst, src->name, src->dtype, src->ndim, src->shape);
        if (err)
            return err;
        if (src->nbytes != dst->nbytes) {
            qv_tensor_fini(dst);
            return QV_EINVAL;
        }
        if (src->nbytes)
            memcpy(dst->data, src->data, src->nbytes);
        return QV_OK;
    }
    memset(dst, 0, sizeof(*dst));
    snprintf(dst->name, sizeof(dst->name), "%s", src->name);
    dst->dtype = src->dtype;
    dst->ndim = src->ndim;
    memcpy(dst->shape, src->shape, sizeof(dst->shape));
    dst->data = malloc(src->nbytes ? src->nbytes : 1);
    if (dst->data == NULL)
        return QV_ENOMEM;
    if (src->nbytes)
        memcpy(dst->data, src->data, src->nbytes);
    dst->nbytes = src->nbytes;
    dst->owned = true;
    return QV_OK;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int qv_bytes_check(const void *buf, size_t len, int64_t count, const char *what,
                   struct qv_diag *d)
{
    const uint8_t *b = buf;
    size_t off = 0;

    if (count < 0)
        return qv_fail(d, QV_EINVAL, "%s: invalid element count", what);
    for (int64_t i = 0; i < count; i++) {
        uint32_t n;
        if (len - off < 4)
            return qv_fail(d, QV_EINVAL,
                           "%s: BYTES element %lld of %lld: its 4-byte length prefix is "
                           "truncated (%zu bytes left)", what, (long long)i, (long long)count,
                           len - off);
        n = get_le32(b + off);
        off += 4;
        if (n > QV_BYTES_ELEM_MAX || n > len - off)
            return qv_fail(d, QV_EINVAL,
                           "%s: BYTES element %lld of %lld declares %lu bytes but only %zu are "
                           "left", what, (long long)i, (long long)count, (unsigned long)n,
                           len - off);
        off += n;
    }
    if (off != len)
        return qv_fail(d, QV_EINVAL,
                       "%s: %zu bytes are left after the %lld BYTES elements its shape holds",
                       what, len - off, (long long)count);
    return QV_OK;
}

bool qv_bytes_next(const void *buf, size_t len, size_t *off, const uint8_t **p, uint32_t *n)
{
    const uint8_t *b = buf;
    uint32_t k;

    if (*off > len || len - *off < 4)
        return false;
    k = get_le32(b + *off);
    if (k > len - *off - 4)
        return false;
    *p = b + *off + 4;
    *n = k;
    *off += 4 + (size_t)k;
    return true;
}

int qv_tensor_alloc_bytes(struct qv_tensor *t, const char *name, int ndim, const int64_t *shape,
                          size_t payload)
{
    int64_t n;

    if (ndim < 0 || ndim > QV_MAX_DIMS)
        return QV_EINVAL;
    memset(t, 0, sizeof(*t));
    if (name)
        snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = QV_DTYPE_BYTES;
    t->ndim = ndim;
    if (ndim)
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    n = qv_shape_numel(t->shape, ndim);
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8 || payload > SIZE_MAX / 2 - (size_t)n * 4)
        return QV_E2BIG;
    t->nbytes = (size_t)n * 4 + payload;
    t->data = calloc(t->nbytes ? t->nbytes : 1, 1);
    if (t->data == NULL)
        return QV_ENOMEM;
    t->owned = true;
    return QV_OK;
}

void qv_bytes_put(void *buf, size_t *off, const void *p, uint32_t n)
{
    uint8_t *b = (uint8_t *)buf + *off;

    b[0] = (uint8_t)n;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 24);
    if (n)
        memcpy(b + 4, p, n);
    *off += 4 + (size_t)n;
}

int qv_tensor_from_strings(struct qv_tensor *t, const char *name, int ndim, const int64_t *shape,
                           const char *const *strs, int64_t count)
{
    size_t payload = 0, off = 0;
    int err;

    if (qv_shape_numel(shape, ndim) != count)
        return QV_EINVAL;
    for (int64_t i = 0; i < count; i++) {
        size_t l = strlen(strs[i]);
        if (l > QV_BYTES_ELEM_MAX || payload > SIZE_MAX / 2 - l)
            return QV_E2BIG;
        payload += l;
    }
    err = qv_tensor_alloc_bytes(t, name, ndim, shape, payload);
    if (err)
        return err;
    for (int64_t i = 0; i < count; i++)
        qv_bytes_put(t->data, &off, strs[i], (uint32_t)strlen(strs[i]));
    return QV_OK;
}

size_t qv_bytes_offset(const struct qv_tensor *t, int64_t index)
{
    size_t off = 0;
    const uint8_t *p;
    uint32_t n;

    for (int64_t i = 0; i < index && qv_bytes_next(t->data, t->nbytes, &off, &p, &n); i++) {
    }
    return off;
}

bool qv_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            k = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            k = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            k = 4;
        else
            return false;
        if (n - i < k)
            return false;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        else if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t j = 2; j < k; j++)
            if (p[i + j] < 0x80 || p[i + j] > 0xBF)
                return false;
        i += k;
    }
    return true;
}
