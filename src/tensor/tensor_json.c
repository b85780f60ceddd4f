/* SPDX-License-Identifier: MIT
 *
 * KServe v2 JSON codec for tensors: decoding with jansson, encoding by hand
 * into a qv_buf (the hot path: no intermediate JSON tree). Floats are written
 * with enough digits to round-trip (9 for FP32, 17 for FP64). */
#include "tensor.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts the leaves of a (possibly nested) JSON array; -1 past the depth bound. */
static int64_t count_leaves(const json_t *a, int depth)
{
    int64_t n = 0;
    size_t i;
    json_t *v;

    if (depth > QV_MAX_DIMS + 1)
        return -1;
    json_array_foreach(a, i, v) {
        if (json_is_array(v)) {
            int64_t m = count_leaves(v, depth + 1);
            if (m < 0)
                return -1;
            n += m;
        } else {
            n++;
        }
    }
    return n;
}

static void shape_text(int ndim, const int64_t *shape, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "[");

    for (int k = 0; k < ndim && n < len; k++)
        n += (size_t)snprintf(out + n, len - n, "%s%lld", k ? "," : "", (long long)shape[k]);
    if (n < len)
        snprintf(out + n, len - n, "]");
}

/* Nested exactly as the shape from dimension 'dim' on; 'path' names the array. */
static bool nested_fits(const json_t *a, int ndim, const int64_t *shape, int dim, char *path,
                        size_t plen, size_t pcap)
{
    size_t i;
    json_t *v;

    if (!json_is_array(a) || (int64_t)json_array_size(a) != shape[dim])
        return false;
    json_array_foreach(a, i, v) {
        if (dim == ndim - 1) {
            /* A value, or TF Serving's {"b64": "..."} for a binary string. */
            if (json_is_array(v) ||
                (json_is_object(v) &&
                 !(json_object_size(v) == 1 && json_is_string(json_object_get(v, "b64"))))) {
                snprintf(path + plen, pcap - plen, "[%zu]", i);
                return false;
            }
            continue;
        }
        {
            size_t n = plen + (size_t)snprintf(path + plen, pcap - plen, "[%zu]", i);
            if (n >= pcap)
                n = pcap - 1;
            if (!nested_fits(v, ndim, shape, dim + 1, path, n, pcap))
                return false;
            path[plen] = '\0';
        }
    }
    return true;
}

int qv_tensor_json_check(const json_t *data, int ndim, const int64_t *shape, const char *field,
                         const char *name, struct qv_diag *d)
{
    int64_t numel = qv_shape_numel(shape, ndim);
    char shp[160], path[128] = "";
    bool flat = true;
    size_t i;
    json_t *v;

    if (!json_is_array(data))
        return qv_fail(d, QV_EINVAL, "%s.data: expected an array for input \"%s\"", field, name);
    json_array_foreach(data, i, v) {
        if (json_is_array(v)) {
            flat = false;
            break;
        }
    }
    shape_text(ndim, shape, shp, sizeof(shp));
    if (flat) {
        if ((int64_t)json_array_size(data) != numel)
            return qv_fail(d, QV_EINVAL,
                           "%s.data: input \"%s\" holds %zu values but its shape %s needs %lld",
                           field, name, json_array_size(data), shp, (long long)numel);
        return QV_OK;
    }
    if (ndim >= 1 && nested_fits(data, ndim, shape, 0, path, 0, sizeof(path)))
        return QV_OK;
    {
        int64_t n = count_leaves(data, 0);
        if (n >= 0 && n != numel)
            return qv_fail(d, QV_EINVAL,
                           "%s.data: input \"%s\" holds %lld values but its shape %s needs %lld",
                           field, name, (long long)n, shp, (long long)numel);
    }
    return qv_fail(d, QV_EINVAL,
                   "%s.data: input \"%s\": nested arrays do not follow the shape %s (ragged or "
                   "wrongly nested%s%s); give the values flat or nested exactly as the shape",
                   field, name, shp, path[0] ? " at data" : "", path);
}

static int put_value(const json_t *v, enum qv_dtype dtype, void *dst, int64_t i, const char *field,
                     int64_t flat, struct qv_diag *d)
{
    double x;

    if (dtype == QV_DTYPE_BOOL) {
        if (json_is_boolean(v)) {
            ((uint8_t *)dst)[i] = json_is_true(v);
            return QV_OK;
        }
        if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
            ((uint8_t *)dst)[i] = (uint8_t)json_integer_value(v);
            return QV_OK;
        }
        return qv_fail(d, QV_EINVAL, "%s.data[%lld]: expected a boolean for datatype BOOL", field,
                       (long long)flat);
    }
    if (json_is_string(v) &&
        (dtype == QV_DTYPE_F32 || dtype == QV_DTYPE_F64 || dtype == QV_DTYPE_F16 ||
         dtype == QV_DTYPE_BF16)) {
        const char *t = json_string_value(v);
        double nf = strcmp(t, "NaN") == 0         ? NAN
                    : strcmp(t, "Infinity") == 0  ? INFINITY
                    : strcmp(t, "-Infinity") == 0 ? -INFINITY
                                                  : 0;
        if (nf == 0)
            return qv_fail(d, QV_EINVAL,
                           "%s.data[%lld]: expected a number (or NaN, Infinity, -Infinity) for "
                           "datatype %s", field, (long long)flat, qv_dtype_name(dtype));
        if (dtype == QV_DTYPE_F32)
            ((float *)dst)[i] = (float)nf;
        else if (dtype == QV_DTYPE_F16)
            ((uint16_t *)dst)[i] = qv_float_to_half((float)nf);
        else if (dtype == QV_DTYPE_BF16)
            ((uint16_t *)dst)[i] = qv_float_to_bf16((float)nf);
        else
            ((double *)dst)[i] = nf;
        return QV_OK;
    }
    if (!json_is_number(v))
        return qv_fail(d, QV_EINVAL, "%s.data[%lld]: expected a number for datatype %s", field,
                       (long long)flat, qv_dtype_name(dtype));
    switch (dtype) {
    case QV_DTYPE_F32:
        ((float *)dst)[i] = (float)json_number_value(v);
        return QV_OK;
    case QV_DTYPE_F64:
        ((double *)dst)[i] = json_number_value(v);
        return QV_OK;
    case QV_DTYPE_F16:
        ((uint16_t *)dst)[i] = qv_float_to_half((float)json_number_value(v));
        return QV_OK;
    case QV_DTYPE_BF16:
        ((uint16_t *)dst)[i] = qv_float_to_bf16((float)json_number_value(v));
        return QV_OK;
    default:
        break;
    }
    if (!json_is_integer(v))
        return qv_fail(d, QV_EINVAL, "%s.data[%lld]: expected an integer for datatype %s", field,
                       (long long)flat, qv_dtype_name(dtype));
    {
        json_int_t k = json_integer_value(v);
        x = (double)k;
        switch (dtype) {
        case QV_DTYPE_I64: ((int64_t *)dst)[i] = k; return QV_OK;
        case QV_DTYPE_U64:
            if (k < 0)
                break;
            ((uint64_t *)dst)[i] = (uint64_t)k;
            return QV_OK;
        case QV_DTYPE_I32:
            if (k < INT32_MIN || k > INT32_MAX)
                break;
            ((int32_t *)dst)[i] = (int32_t)k;
            return QV_OK;
        case QV_DTYPE_U32:
            if (k < 0 || k > (json_int_t)UINT32_MAX)
                break;
            ((uint32_t *)dst)[i] = (uint32_t)k;
            return QV_OK;
        case QV_DTYPE_I16:
            if (k < INT16_MIN || k > INT16_MAX)
                break;
            ((int16_t *)dst)[i] = (int16_t)k;
            return QV_OK;
        case QV_DTYPE_U16:
            if (k < 0 || k > UINT16_MAX)
                break;
            ((uint16_t *)dst)[i] = (uint16_t)k;
            return QV_OK;
        case QV_DTYPE_I8:
            if (k < INT8_MIN || k > INT8_MAX)
                break;
            ((int8_t *)dst)[i] = (int8_t)k;
            return QV_OK;
        case QV_DTYPE_U8:
            if (k < 0 || k > UINT8_MAX)
                break;
            ((uint8_t *)dst)[i] = (uint8_t)k;
            return QV_OK;
        default:
            return qv_fail(d, QV_EINVAL, "%s.datatype: %s is not supported", field,
                           qv_dtype_name(dtype));
        }
    }
    return qv_fail(d, QV_EINVAL, "%s.data[%lld]: %.0f is out of range for %s", field,
                   (long long)flat, x, qv_dtype_name(dtype));
}

static int fill(const json_t *a, enum qv_dtype dtype, void *dst, int64_t *pos, int64_t count,
                const char *field, struct qv_diag *d)
{
    size_t i;
    json_t *v;
    int err;

    json_array_foreach(a, i, v) {
        if (json_is_array(v)) {
            err = fill(v, dtype, dst, pos, count, field, d);
            if (err)
                return err;
            continue;
        }
        if (*pos >= count)
            return qv_fail(d, QV_EINVAL, "%s.data: more values than the shape holds", field);
        err = put_value(v, dtype, dst, *pos, field, *pos, d);
        if (err)
            return err;
        (*pos)++;
    }
    return QV_OK;
}

int qv_tensor_data_from_json(const json_t *data, enum qv_dtype dtype, int64_t count, void *dst,
                             const char *field, struct qv_diag *d)
{
    int64_t n, pos = 0;

    if (!json_is_array(data))
        return qv_fail(d, QV_EINVAL, "%s.data: expected an array", field);
    n = count_leaves(data, 0);
    if (n != count)
        return qv_fail(d, QV_EINVAL,
                       "%s.data: holds %lld values but the shape needs %lld", field, (long long)n,
                       (long long)count);
    return fill(data, dtype, dst, &pos, count, field, d);
}

int qv_tensor_head_from_json(const json_t *obj, const char *field, char *name_out,
                             enum qv_dtype *dt_out, int *ndim_out, int64_t *dims,
                             struct qv_diag *d)
{
    const json_t *name, *shape, *dtype, *dim;
    enum qv_dtype dt;
    size_t i, ndim;

    if (!json_is_object(obj))
        return qv_fail(d, QV_EINVAL, "%s: expected an object", field);
    name = json_object_get(obj, "name");
    shape = json_object_get(obj, "shape");
    dtype = json_object_get(obj, "datatype");
    if (!json_is_string(name))
        return qv_fail(d, QV_EINVAL, "%s.name: missing or not a string", field);
    if (json_string_length(name) >= QV_NAME_MAX)
        return qv_fail(d, QV_EINVAL, "%s.name: longer than %d bytes", field, QV_NAME_MAX - 1);
    if (!json_is_string(dtype))
        return qv_fail(d, QV_EINVAL, "%s.datatype: missing or not a string", field);
    dt = qv_dtype_from_name(json_string_value(dtype));
    if (dt == QV_DTYPE_UNDEF)
        return qv_fail(d, QV_EINVAL, "%s.datatype: unsupported datatype \"%s\"", field,
                       json_string_value(dtype));
    if (!json_is_array(shape))
        return qv_fail(d, QV_EINVAL, "%s.shape: missing or not an array", field);
    ndim = json_array_size(shape);
    if (ndim > QV_MAX_DIMS)
        return qv_fail(d, QV_EINVAL, "%s.shape: more than %d dimensions", field, QV_MAX_DIMS);
    json_array_foreach(shape, i, dim) {
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return qv_fail(d, QV_EINVAL, "%s.shape[%zu]: expected a non-negative integer", field,
                           i);
        dims[i] = json_integer_value(dim);
    }
    if (qv_shape_numel(dims, (int)ndim) < 0 ||
        qv_shape_numel(dims, (int)ndim) > QV_TENSOR_MAX_ELEMS)
        return qv_fail(d, QV_EINVAL, "%s.shape: input \"%s\" declares more than %lld elements",
                       field, json_string_value(name), (long long)QV_TENSOR_MAX_ELEMS);
    snprintf(name_out, QV_NAME_MAX, "%s", json_string_value(name));
    *dt_out = dt;
    *ndim_out = (int)ndim;
    return QV_OK;
}

/* ---- BYTES from JSON ---- */

/* The decoded size of standard base64 text s[0..n) (padding counted out);
 * false when it is not base64 (length not a multiple of 4, a byte outside
 * the alphabet, or padding anywhere but the end). */
static bool b64_size(const char *s, size_t n, size_t *out)
{
    size_t pad = 0;

    if (n % 4 != 0 || n > (size_t)INT_MAX)
        return false;
    if (n >= 1 && s[n - 1] == '=')
        pad++;
    if (n >= 2 && s[n - 2] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    *out = n / 4 * 3 - pad;
    return true;
}

/* One element's bytes: a JSON string, or {"b64": "..."} when allowed. */
static int bytes_elem(const json_t *v, bool b64, const char *field, const char *name, int64_t i,
                      const char **p, size_t *n, bool *is_b64, struct qv_diag *d)
{
    const json_t *s = v;

    *is_b64 = false;
    if (b64 && json_is_object(v)) {
        s = json_object_get(v, "b64");
        if (!json_is_string(s) || json_object_size(v) != 1)
            return qv_fail(d, QV_EINVAL, "%s.data[%lld]: input \"%s\": expected {\"b64\": "
                           "\"<base64>\"}", field, (long long)i, name);
        *is_b64 = true;
    } else if (!json_is_string(v)) {
        return qv_fail(d, QV_EINVAL, "%s.data[%lld]: input \"%s\" is BYTES: expected a string%s",
                       field, (long long)i, name, b64 ? " or {\"b64\": ...}" : "");
    }
    *p = json_string_value(s);
    *n = json_string_length(s);
    if (*is_b64) {
        size_t raw;
        if (!b64_size(*p, *n, &raw))
            return qv_fail(d, QV_EINVAL, "%s.data[%lld].b64: input \"%s\": not valid base64",
                           field, (long long)i, name);
        if (raw > QV_BYTES_ELEM_MAX)
            return qv_fail(d, QV_EINVAL, "%s.data[%lld]: input \"%s\": element too large", field,
                           (long long)i, name);
        return QV_OK;
    }
    if (*n > QV_BYTES_ELEM_MAX)
        return qv_fail(d, QV_EINVAL, "%s.data[%lld]: input \"%s\": element too large", field,
                       (long long)i, name);
    return QV_OK;
}

/* Walks the leaves in order: the first pass sums sizes, the second writes. */
static int bytes_walk(const json_t *a, bool b64, const char *field, const char *name,
                      int64_t *pos, int64_t count, size_t *payload, struct qv_tensor *t,
                      size_t *off, struct qv_diag *d)
{
    size_t i;
    json_t *v;

    json_array_foreach(a, i, v) {
        const char *p = NULL;
        size_t n = 0;
        bool is_b64 = false;
        int err;

        if (json_is_array(v)) {
            err = bytes_walk(v, b64, field, name, pos, count, payload, t, off, d);
            if (err)
                return err;
            continue;
        }
        if (*pos >= count)
            return qv_fail(d, QV_EINVAL, "%s.data: more values than the shape holds", field);
        err = bytes_elem(v, b64, field, name, *pos, &p, &n, &is_b64, d);
        if (err)
            return err;
        if (t == NULL) {
            size_t raw = n;
            if (is_b64)
                b64_size(p, n, &raw);
            if (raw > SIZE_MAX / 4 - *payload)
                return qv_fail(d, QV_EINVAL, "%s.data: input \"%s\" is too large", field, name);
            *payload += raw;
        } else if (is_b64) {
            uint8_t *dst = (uint8_t *)t->data + *off + 4;
            size_t raw = 0;
            b64_size(p, n, &raw);
            /* EVP_DecodeBlock writes n/4*3 bytes (padding included): the
             * padding lands on bytes the next element overwrites, or on the
             * spare bytes the buffer holds at its end. */
            if (n > 0 && EVP_DecodeBlock(dst, (const unsigned char *)p, (int)n) < 0)
                return qv_fail(d, QV_EINVAL, "%s.data[%lld].b64: input \"%s\": not valid base64",
                               field, (long long)*pos, name);
            qv_bytes_put(t->data, off, dst, (uint32_t)raw); /* prefix; bytes are in place */
        } else {
            qv_bytes_put(t->data, off, p, (uint32_t)n);
        }
        (*pos)++;
    }
    return QV_OK;
}

int qv_tensor_bytes_from_json(const json_t *data, const char *field, const char *name, int ndim,
                              const int64_t *shape, bool b64, struct qv_tensor *t,
                              struct qv_diag *d)
{
    int64_t count = qv_shape_numel(shape, ndim), pos = 0;
    size_t payload = 0, off = 0;
    int err;

    memset(t, 0, sizeof(*t));
    if (!json_is_array(data))
        return qv_fail(d, QV_EINVAL, "%s.data: expected an array for input \"%s\"", field, name);
    if (count < 0 || count > QV_TENSOR_MAX_ELEMS)
        return qv_fail(d, QV_EINVAL, "%s.shape: input \"%s\" has too many elements", field, name);
    err = bytes_walk(data, b64, field, name, &pos, count, &payload, NULL, &off, d);
    if (err)
        return err;
    if (pos != count)
        return qv_fail(d, QV_EINVAL, "%s.data: input \"%s\" holds %lld values but its shape "
                       "needs %lld", field, name, (long long)pos, (long long)count);
    /* Two spare bytes: base64 padding decodes past an element's end. */
    err = qv_tensor_alloc_bytes(t, name, ndim, shape, payload + 2);
    if (err)
        return qv_fail(d, err, "%s: cannot allocate input \"%s\"", field, name);
    pos = 0;
    err = bytes_walk(data, b64, field, name, &pos, count, &payload, t, &off, d);
    if (err) {
        qv_tensor_fini(t);
        return err;
    }
    t->nbytes = off;
    return QV_OK;
}

int qv_tensor_from_json(const json_t *obj, const char *field, struct qv_tensor *t,
                        struct qv_diag *d)
{
    const json_t *data;
    int64_t dims[QV_MAX_DIMS];
    char name[QV_NAME_MAX];
    enum qv_dtype dt;
    int ndim, err;

    memset(t, 0, sizeof(*t));
    err = qv_tensor_head_from_json(obj, field, name, &dt, &ndim, dims, d);
    if (err)
        return err;
    data = json_object_get(obj, "data");
    if (data == NULL)
        return qv_fail(d, QV_EINVAL, "%s.data: missing", field);
    /* Structure and count first: nothing is allocated for data that cannot fit. */
    err = qv_tensor_json_check(data, ndim, dims, field, name, d);
    if (err)
        return err;
    if (dt == QV_DTYPE_BYTES)
        return qv_tensor_bytes_from_json(data, field, name, ndim, dims, false, t, d);
    err = qv_tensor_alloc(t, name, dt, ndim, dims);
    if (err)
        return qv_fail(d, err, "%s: cannot allocate the tensor", field);
    err = qv_tensor_data_from_json(data, dt, qv_tensor_numel(t), t->data, field, d);
    if (err)
        qv_tensor_fini(t);
    return err;
}

/* NaN and the infinities as Python's json module and Triton write them:
 * bare NaN, Infinity, -Infinity (so the three stay apart). */
static int put_nonfinite(double f, struct qv_buf *out)
{
    if (isnan(f))
        return qv_buf_append(out, "NaN", 3);
    return f > 0 ? qv_buf_append(out, "Infinity", 8) : qv_buf_append(out, "-Infinity", 9);
}

static int put_one(const struct qv_tensor *t, int64_t i, struct qv_buf *out)
{
    char num[40];
    int n;

    switch (t->dtype) {
    case QV_DTYPE_F32: {
        float f = ((const float *)t->data)[i];
        if (!isfinite(f))
            return put_nonfinite(f, out);
        n = snprintf(num, sizeof(num), "%.9g", (double)f);
        break;
    }
    case QV_DTYPE_F64: {
        double f = ((const double *)t->data)[i];
        if (!isfinite(f))
            return put_nonfinite(f, out);
        n = snprintf(num, sizeof(num), "%.17g", f);
        break;
    }
    case QV_DTYPE_F16: {
        float f = qv_half_to_float(((const uint16_t *)t->data)[i]);
        if (!isfinite(f))
            return put_nonfinite(f, out);
        n = snprintf(num, sizeof(num), "%.5g", (double)f);
        break;
    }
    case QV_DTYPE_BF16: {
        float f = qv_bf16_to_float(((const uint16_t *)t->data)[i]);
        if (!isfinite(f))
            return put_nonfinite(f, out);
        n = snprintf(num, sizeof(num), "%.4g", (double)f);
        break;
    }
    case QV_DTYPE_BOOL:
        return ((const uint8_t *)t->data)[i] ? qv_buf_append(out, "true", 4)
                                              : qv_buf_append(out, "false", 5);
    case QV_DTYPE_I64:
        n = snprintf(num, sizeof(num), "%lld", (long long)((const int64_t *)t->data)[i]);
        break;
    case QV_DTYPE_U64:
        n = snprintf(num, sizeof(num), "%llu", (unsigned long long)((const uint64_t *)t->data)[i]);
        break;
    default:
        n = snprintf(num, sizeof(num), "%.0f", qv_tensor_get_f64(t, i));
        break;
    }
    return qv_buf_append(out, num, (size_t)n);
}

static bool name_ends_bytes(const struct qv_tensor *t)
{
    size_t n = strlen(t->name);

    return n >= 6 && strcmp(t->name + n - 6, "_bytes") == 0;
}

/* {"b64": "..."}: standard base64, encoded by libcrypto in chunks. */
static int put_b64(const uint8_t *p, size_t n, struct qv_buf *out)
{
    unsigned char enc[4 * 1024 + 1];
    int err = qv_buf_append(out, "{\"b64\":\"", 8);

    for (size_t i = 0; i < n && !err; i += 3 * 1024) {
        size_t k = n - i < 3 * 1024 ? n - i : 3 * 1024;
        int m = EVP_EncodeBlock(enc, p + i, (int)k);
        err = qv_buf_append(out, enc, (size_t)m);
    }
    return err ? err : qv_buf_append(out, "\"}", 2);
}

/* The BYTES element at *cursor (advanced). KServe writes a JSON string; TF
 * Serving's form ('tfs') is base64 for binary strings and "*_bytes". */
static int put_bytes(const struct qv_tensor *t, size_t *cursor, bool tfs, struct qv_buf *out)
{
    const uint8_t *p;
    uint32_t n;

    if (!qv_bytes_next(t->data, t->nbytes, cursor, &p, &n))
        return QV_EINVAL;
    if (tfs && (name_ends_bytes(t) || !qv_utf8_valid(p, n)))
        return put_b64(p, n, out);
    return qv_json_put_stringn(out, (const char *)p, n);
}

static int put_elem(const struct qv_tensor *t, int64_t i, size_t *cursor, bool tfs,
                    struct qv_buf *out)
{
    return t->dtype == QV_DTYPE_BYTES ? put_bytes(t, cursor, tfs, out) : put_one(t, i, out);
}

static int put_range(const struct qv_tensor *t, int64_t start, int64_t count, size_t *cursor,
                     bool tfs, struct qv_buf *out)
{
    int err = qv_buf_append(out, "[", 1);

    for (int64_t i = 0; i < count && !err; i++) {
        if (i)
            err = qv_buf_append(out, ",", 1);
        if (!err)
            err = put_elem(t, start + i, cursor, tfs, out);
    }
    return err ? err : qv_buf_append(out, "]", 1);
}

int qv_tensor_values_to_json(const struct qv_tensor *t, int64_t start, int64_t count,
                             struct qv_buf *out)
{
    size_t cursor = t->dtype == QV_DTYPE_BYTES ? qv_bytes_offset(t, start) : 0;

    return put_range(t, start, count, &cursor, false, out);
}

static int put_nested(const struct qv_tensor *t, int dim, int64_t start, size_t *cursor,
                      struct qv_buf *out)
{
    int64_t inner = qv_shape_numel(t->shape + dim + 1, t->ndim - dim - 1);
    int err;

    if (dim == t->ndim - 1)
        return put_range(t, start, t->shape[dim], cursor, true, out);
    err = qv_buf_append(out, "[", 1);
    for (int64_t i = 0; i < t->shape[dim] && !err; i++) {
        if (i)
            err = qv_buf_append(out, ",", 1);
        if (!err)
            err = put_nested(t, dim + 1, start + i * inner, cursor, out);
    }
    return err ? err : qv_buf_append(out, "]", 1);
}

int qv_tensor_row_to_json_at(const struct qv_tensor *t, int64_t row, size_t *cursor,
                             struct qv_buf *out)
{
    if (t->ndim <= 1)
        return put_elem(t, row, cursor, true, out);
    return put_nested(t, 1, row * qv_shape_numel(t->shape + 1, t->ndim - 1), cursor, out);
}

int qv_tensor_row_to_json(const struct qv_tensor *t, int64_t row, struct qv_buf *out)
{
    int64_t inner = t->ndim <= 1 ? 1 : qv_shape_numel(t->shape + 1, t->ndim - 1);
    size_t cursor = t->dtype == QV_DTYPE_BYTES ? qv_bytes_offset(t, row * inner) : 0;

    return qv_tensor_row_to_json_at(t, row, &cursor, out);
}

int qv_tensor_nested_to_json(const struct qv_tensor *t, struct qv_buf *out)
{
    size_t cursor = 0;

    if (t->ndim == 0)
        return put_elem(t, 0, &cursor, true, out);
    return put_nested(t, 0, 0, &cursor, out);
}

/* Length of the valid UTF-8 sequence at p (2 to 4), or 0. */
static int utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    int n;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* utf8_len with at most 'left' bytes readable (a short tail is padded with
 * NUL bytes, which no continuation byte matches). */
static int utf8_len_at(const unsigned char *p, size_t left)
{
    unsigned char tail[4] = {0};

    if (left >= 4)
        return utf8_len(p);
    memcpy(tail, p, left);
    return utf8_len(tail);
}

int qv_json_put_stringn(struct qv_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    int err = qv_buf_append(b, "\"", 1);

    while (p < end && !err) {
        unsigned char c = *p;
        int n;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            err = qv_buf_append(b, esc, 2);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            err = qv_buf_printf(b, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            err = qv_buf_append(b, p, 1);
            p++;
        } else if ((n = utf8_len_at(p, (size_t)(end - p))) > 0) {
            err = qv_buf_append(b, p, (size_t)n);
            p += n;
        } else {
            err = qv_buf_append(b, "\\ufffd", 6); /* not UTF-8: the replacement character */
            p++;
        }
    }
    return err ? err : qv_buf_append(b, "\"", 1);
}

int qv_json_put_string(struct qv_buf *b, const char *s)
{
    return qv_json_put_stringn(b, s, strlen(s));
}

int qv_tensor_to_json(const struct qv_tensor *t, struct qv_buf *out)
{
    int err = qv_buf_append(out, "{\"name\":", 8);

    err = err ? err : qv_json_put_string(out, t->name);
    err = err ? err : qv_buf_printf(out, ",\"datatype\":\"%s\",\"shape\":[",
                                    qv_dtype_name(t->dtype));

    for (int i = 0; i < t->ndim && !err; i++)
        err = qv_buf_printf(out, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (!err)
        err = qv_buf_append(out, "],\"data\":", 9);
    if (!err)
        err = qv_tensor_values_to_json(t, 0, qv_tensor_numel(t), out);
    return err ? err : qv_buf_append(out, "}", 1);
}

char *qv_json_quote_nonfinite(const char *text, size_t len, size_t *out_len)
{
    static const char *const toks[] = {"-Infinity", "Infinity", "NaN"};
    bool in_str = false, found = false;
    char *out;
    size_t n = 0;

    for (size_t i = 0; i < len && !found; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == 'N' || c == 'I') {
            found = true;
        }
    }
    if (!found || len > (SIZE_MAX - 1) / 2)
        return NULL;
    out = malloc(len * 2 + 1);
    if (out == NULL)
        return NULL;
    in_str = false;
    for (size_t i = 0; i < len;) {
        char c = text[i];
        bool done = false;
        if (in_str) {
            out[n++] = c;
            if (c == '\\' && i + 1 < len)
                out[n++] = text[++i];
            else if (c == '"')
                in_str = false;
            i++;
            continue;
        }
        if (c == '"') {
            in_str = true;
            out[n++] = c;
            i++;
            continue;
        }
        for (size_t k = 0; k < 3 && !done; k++) {
            size_t tl = strlen(toks[k]);
            if (len - i >= tl && memcmp(text + i, toks[k], tl) == 0) {
                out[n++] = '"';
                memcpy(out + n, toks[k], tl);
                n += tl;
                out[n++] = '"';
                i += tl;
                done = true;
            }
        }
        if (!done)
            out[n++] = text[i++];
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}
