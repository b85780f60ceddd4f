/* SPDX-License-Identifier: MIT
 *
 * The binary tensor data extension (Triton's binary_tensor_data.md, adopted
 * by KServe): see binary.h. Every size is checked against the tensor's
 * shape x datatype and against the bytes the body really holds before
 * anything is allocated or copied.
 */
#include "binary.h"

#define QV_LOG_MODULE "api"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qv__bin_split(struct qv_http_req *h, size_t *json_len, struct qv_bin *bin,
                  struct qv_diag *d)
{
    const char *v = h->header ? h->header(h, QV_BIN_HEADER) : NULL;
    unsigned long long n;
    char *end;

    memset(bin, 0, sizeof(*bin));
    *json_len = h->body_len;
    if (v == NULL)
        return QV_OK;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0)
        return qv_fail(d, QV_EINVAL, QV_BIN_HEADER ": \"%.32s\" is not a byte count", v);
    if (n == 0 || n > h->body_len)
        return qv_fail(d, QV_EINVAL,
                       QV_BIN_HEADER ": %llu is not within the body of %zu bytes (the JSON "
                       "header must be at least 1 byte and at most the body)",
                       n, h->body_len);
    *json_len = (size_t)n;
    bin->data = h->body + n;
    bin->len = h->body_len - (size_t)n;
    bin->present = true;
    return QV_OK;
}

int qv__bin_flag(const json_t *params, const char *key, const char *field, bool *out,
                 bool *given, struct qv_diag *d)
{
    const json_t *v = json_object_get(params, key);

    if (given)
        *given = v != NULL;
    if (v == NULL)
        return QV_OK;
    if (!json_is_boolean(v))
        return qv_fail(d, QV_EINVAL, "%s.%s: expected true or false", field, key);
    *out = json_is_true(v);
    return QV_OK;
}

int qv__bin_input(const json_t *obj, const char *field, struct qv_bin *bin, struct qv_tensor *t,
                  bool *used, struct qv_diag *d)
{
    const json_t *params = json_object_get(obj, "parameters"), *size;
    int64_t dims[QV_MAX_DIMS];
    char name[QV_NAME_MAX];
    enum qv_dtype dt;
    int ndim, err;
    json_int_t n;
    int64_t numel;

    *used = false;
    if (params == NULL)
        return QV_OK;
    if (!json_is_object(params))
        return qv_fail(d, QV_EINVAL, "%s.parameters: expected an object", field);
    size = json_object_get(params, "binary_data_size");
    if (size == NULL)
        return QV_OK;
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return qv_fail(d, QV_EINVAL,
                       "%s.parameters.binary_data_size: expected a non-negative integer", field);
    n = json_integer_value(size);
    err = qv_tensor_head_from_json(obj, field, name, &dt, &ndim, dims, d);
    if (err)
        return err;
    if (json_object_get(obj, "data") != NULL)
        return qv_fail(d, QV_EINVAL,
                       "%s: input \"%s\" has both \"data\" and parameters.binary_data_size",
                       field, name);
    if (!bin->present)
        return qv_fail(d, QV_EINVAL,
                       "%s.parameters.binary_data_size: input \"%s\" is binary but the request "
                       "has no " QV_BIN_HEADER " header", field, name);
    numel = qv_shape_numel(dims, ndim);
    if (dt == QV_DTYPE_BYTES) {
        /* Serialized elements: the part must lie in the body, then every
         * length prefix is walked within it before anything is copied. */
        char what[QV_NAME_MAX + 48];
        if ((uint64_t)n > bin->len - bin->pos)
            return qv_fail(d, QV_EINVAL,
                           "%s.parameters.binary_data_size: input \"%s\" needs %lld bytes but "
                           "only %zu are left in the body", field, name, (long long)n,
                           bin->len - bin->pos);
        snprintf(what, sizeof(what), "%s (input \"%s\")", field, name);
        err = qv_bytes_check(bin->data + bin->pos, (size_t)n, numel, what, d);
        if (err)
            return err;
        err = qv_tensor_alloc_bytes(t, name, ndim, dims, (size_t)n - (size_t)numel * 4);
        if (err)
            return qv_fail(d, err, "%s: cannot allocate input \"%s\"", field, name);
        if (n > 0)
            memcpy(t->data, bin->data + bin->pos, (size_t)n);
        bin->pos += (size_t)n;
        *used = true;
        return QV_OK;
    }
    if ((uint64_t)n != (uint64_t)numel * qv_dtype_size(dt))
        return qv_fail(d, QV_EINVAL,
                       "%s.parameters.binary_data_size: input \"%s\" declares %lld bytes but its "
                       "shape and datatype %s need %llu", field, name, (long long)n,
                       qv_dtype_name(dt),
                       (unsigned long long)((uint64_t)numel * qv_dtype_size(dt)));
    if ((uint64_t)n > bin->len - bin->pos)
        return qv_fail(d, QV_EINVAL,
                       "%s.parameters.binary_data_size: input \"%s\" needs %lld bytes but only "
                       "%zu are left in the body", field, name, (long long)n,
                       bin->len - bin->pos);
    err = qv_tensor_alloc(t, name, dt, ndim, dims);
    if (err)
        return qv_fail(d, err, "%s: cannot allocate input \"%s\"", field, name);
    if (n > 0)
        memcpy(t->data, bin->data + bin->pos, (size_t)n);
    bin->pos += (size_t)n;
    if (dt == QV_DTYPE_BOOL) {
        uint8_t *p = t->data;
        for (int64_t i = 0; i < numel; i++)
            p[i] = p[i] != 0;
    }
    *used = true;
    return QV_OK;
}

int qv__bin_finish(const struct qv_bin *bin, struct qv_diag *d)
{
    if (bin->present && bin->pos != bin->len)
        return qv_fail(d, QV_EINVAL,
                       "body: %zu bytes of binary data after the JSON header are not claimed by "
                       "any input's parameters.binary_data_size", bin->len - bin->pos);
    return QV_OK;
}

int qv__bin_output_head(const struct qv_tensor *t, struct qv_buf *b)
{
    int err = qv_buf_append(b, "{\"name\":", 8);

    err = err ? err : qv_json_put_string(b, t->name);
    err = err ? err : qv_buf_printf(b, ",\"datatype\":\"%s\",\"shape\":[", qv_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && !err; i++)
        err = qv_buf_printf(b, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    return err ? err : qv_buf_printf(b, "],\"parameters\":{\"binary_data_size\":%zu}}", t->nbytes);
}

int qv__bin_output_data(const struct qv_tensor *t, struct qv_buf *b)
{
    return t->nbytes ? qv_buf_append(b, t->data, t->nbytes) : QV_OK;
}
