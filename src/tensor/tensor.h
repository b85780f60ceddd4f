/* SPDX-License-Identifier: MIT
 *
 * tensor/tensor.h -- the tensor type that crosses every module (dtype, shape,
 * data) and its KServe v2 JSON codec.
 *
 * A struct qv_tensor owns its data when 'owned' is true (qv_tensor_fini frees
 * it); otherwise data is borrowed and must outlive the tensor. Shapes are at
 * most QV_MAX_DIMS long; a dimension of -1 in a signature means "any".
 */
#ifndef QV_TENSOR_H
#define QV_TENSOR_H

#include "../util/util.h"

#define QV_MAX_DIMS 8
#define QV_NAME_MAX 64

/* Numeric types in ONNX TensorProto order where they exist, so that the ONNX
 * runtime can reuse them. */
enum qv_dtype {
    QV_DTYPE_UNDEF = 0,
    QV_DTYPE_F32,
    QV_DTYPE_U8,
    QV_DTYPE_I8,
    QV_DTYPE_U16,
    QV_DTYPE_I16,
    QV_DTYPE_I32,
    QV_DTYPE_I64,
    QV_DTYPE_STRING, /* KServe "BYTES": see "BYTES tensors" below */
    QV_DTYPE_BOOL,
    QV_DTYPE_F16,
    QV_DTYPE_F64,
    QV_DTYPE_U32,
    QV_DTYPE_U64,
    QV_DTYPE_BF16,
    QV_DTYPE_COUNT
};

#define QV_DTYPE_BYTES QV_DTYPE_STRING

size_t qv_dtype_size(enum qv_dtype t);                   /* 0 for UNDEF/STRING */
const char *qv_dtype_name(enum qv_dtype t);              /* KServe name: "FP32", "INT64", ... */
enum qv_dtype qv_dtype_from_name(const char *kserve);    /* QV_DTYPE_UNDEF if unknown */

struct qv_tensor {
    char name[QV_NAME_MAX];
    enum qv_dtype dtype;
    int ndim;
    int64_t shape[QV_MAX_DIMS];
    void *data;
    size_t nbytes;
    bool owned;
};

/* The declared form of an input or output: shape dims may be -1. */
struct qv_tensor_desc {
    char name[QV_NAME_MAX];
    enum qv_dtype dtype;
    int ndim;
    int64_t shape[QV_MAX_DIMS];
};

int64_t qv_shape_numel(const int64_t *shape, int ndim); /* -1 on overflow or negative dim */
int64_t qv_tensor_numel(const struct qv_tensor *t);
/* Allocates data (zeroed) for the given shape; QV_ENOMEM/QV_E2BIG on failure.
 * Numeric datatypes only (a BYTES tensor's size depends on its elements:
 * qv_tensor_alloc_bytes). */
int qv_tensor_alloc(struct qv_tensor *t, const char *name, enum qv_dtype dtype, int ndim,
                    const int64_t *shape);
void qv_tensor_fini(struct qv_tensor *t); /* frees data if owned; t may be reused */
/* Deep copy of src (any datatype, BYTES included) into dst (owned). */
int qv_tensor_copy(struct qv_tensor *dst, const struct qv_tensor *src);

/* ---- BYTES tensors ----
 * A BYTES tensor holds Triton's serialized form, the same bytes the binary
 * tensor data extension carries: for each element in row-major order, a
 * 4-byte little-endian length followed by that many bytes, concatenated.
 * nbytes is the total; the element count comes from the shape. Elements are
 * arbitrary bytes (not necessarily UTF-8, may hold NUL). */

/* Largest single element accepted (the body limit bounds them anyway). */
#define QV_BYTES_ELEM_MAX (1u << 30)
/* Checks that buf[0..len) is exactly 'count' serialized elements, walking
 * every length prefix without reading past len: a truncated prefix, a
 * length past the end or bytes left over is QV_EINVAL with a diag that
 * begins with 'what' (for example "inputs[0] (\"text\")"). */
int qv_bytes_check(const void *buf, size_t len, int64_t count, const char *what,
                   struct qv_diag *d);
/* Iterates the elements of a BYTES tensor (or any checked buffer): start
 * with *off = 0; each call sets *p and *n to the next element and advances
 * *off. False at the end or when the next element does not fit. */
bool qv_bytes_next(const void *buf, size_t len, size_t *off, const uint8_t **p, uint32_t *n);
/* Allocates a BYTES tensor of the given shape whose elements total
 * 'payload' bytes (nbytes = 4 x count + payload); fill it with
 * qv_bytes_put. QV_E2BIG/QV_ENOMEM on failure. */
int qv_tensor_alloc_bytes(struct qv_tensor *t, const char *name, int ndim, const int64_t *shape,
                          size_t payload);
/* Writes one element (prefix and bytes) at *off and advances it; the
 * caller sized the buffer (qv_tensor_alloc_bytes). */
void qv_bytes_put(void *buf, size_t *off, const void *p, uint32_t n);
/* Builds a BYTES tensor from 'count' NUL-terminated strings (count must be
 * the shape's element count). */
int qv_tensor_from_strings(struct qv_tensor *t, const char *name, int ndim, const int64_t *shape,
                           const char *const *strs, int64_t count);
/* Byte offset of element 'index' of a checked BYTES tensor. */
size_t qv_bytes_offset(const struct qv_tensor *t, int64_t index);
/* True when p[0..n) is valid UTF-8 without NUL bytes. */
bool qv_utf8_valid(const uint8_t *p, size_t n);
/* "[2,30]" into buf. */
void qv_shape_format(const int64_t *shape, int ndim, char *buf, size_t len);
/* True when t's shape fits the desc (-1 matches anything). */
bool qv_tensor_matches(const struct qv_tensor *t, const struct qv_tensor_desc *desc);
/* Converts t in place to dtype (numeric types only). */
int qv_tensor_convert(struct qv_tensor *t, enum qv_dtype to, struct qv_diag *d);
double qv_tensor_get_f64(const struct qv_tensor *t, int64_t i);
/* IEEE 754 half precision (FP16) to and from float; round to nearest even. */
float qv_half_to_float(uint16_t h);
uint16_t qv_float_to_half(float f);
/* bfloat16 (BF16: float's upper 16 bits) to and from float; round to nearest
 * even, a NaN stays a (quiet) NaN of the same sign. */
float qv_bf16_to_float(uint16_t b);
uint16_t qv_float_to_bf16(float f);
/* The class that row 0 of t stands for: the argmax over the row's values, or
 * 1/0 by a threshold of 0.5 when the row is one value; -1 for an empty t. */
int qv_tensor_class(const struct qv_tensor *t);

#endif /* QV_TENSOR_H */

/* ---- JSON codec (KServe v2 tensors) ----
 * The JSON values are jansson's json_t; callers that have none need not
 * include <jansson.h>. */
struct json_t;

/* Elements one request tensor may declare (and must then actually carry). */
#define QV_TENSOR_MAX_ELEMS (1ll << 31)

/* Fills t (owned data) from one KServe v2 input object {"name", "shape",
 * "datatype", "data"}. 'field' names the object in messages ("inputs[0]").
 * data may be flat row-major or nested arrays. QV_EINVAL with a diag naming
 * the field on any mismatch. */
int qv_tensor_from_json(const struct json_t *obj, const char *field, struct qv_tensor *t,
                        struct qv_diag *d);
/* The head of a KServe v2 tensor object: name, datatype and shape checked
 * (each error names the field), without its data. dims holds QV_MAX_DIMS. */
int qv_tensor_head_from_json(const struct json_t *obj, const char *field, char *name_out,
                             enum qv_dtype *dt_out, int *ndim_out, int64_t *dims,
                             struct qv_diag *d);
/* Checks, without allocating, that a JSON data array fits a shape: either
 * flat with exactly numel values (no arrays inside), or nested exactly as the
 * shape (every array at depth k holds shape[k] items, values only at the
 * innermost level). Ragged or wrongly nested data, or a count that differs
 * from the shape's, is QV_EINVAL naming the field and the input. */
int qv_tensor_json_check(const struct json_t *data, int ndim, const int64_t *shape,
                         const char *field, const char *name, struct qv_diag *d);
/* Reads 'count' values of dtype from a JSON array (flat or nested) into dst;
 * the caller has checked it with qv_tensor_json_check. */
int qv_tensor_data_from_json(const struct json_t *data, enum qv_dtype dtype, int64_t count,
                             void *dst, const char *field, struct qv_diag *d);
/* Request JSON may hold the bare tokens NaN, Infinity and -Infinity (as
 * Python's json and Triton's client write them), which JSON itself lacks:
 * returns a copy of text with each such token outside strings quoted (the
 * tensor codec reads the strings "NaN", "Infinity", "-Infinity" as those
 * values for FP32/FP64), or NULL when text has none (or out of memory).
 * Free the copy. Output writes them back bare, so NaN, +Inf and -Inf stay
 * distinguishable. */
char *qv_json_quote_nonfinite(const char *text, size_t len, size_t *out_len);
/* Appends s as a JSON string: quotes, backslashes and control bytes escaped,
 * and every byte that is not part of valid UTF-8 replaced by U+FFFD, so the
 * output is always valid JSON whatever s holds. */
int qv_json_put_string(struct qv_buf *b, const char *s);
/* The same for s[0..n), which may hold NUL bytes (written as \u0000). */
int qv_json_put_stringn(struct qv_buf *b, const char *s, size_t n);
/* Fills t (owned) as a BYTES tensor of the given shape from a JSON data
 * array (flat or nested, checked with qv_tensor_json_check): each value a
 * JSON string (its UTF-8 bytes), or, with 'b64', an object {"b64": "..."}
 * holding standard base64 (TF Serving's form for binary strings). */
int qv_tensor_bytes_from_json(const struct json_t *data, const char *field, const char *name,
                              int ndim, const int64_t *shape, bool b64, struct qv_tensor *t,
                              struct qv_diag *d);
/* Appends the whole tensor as nested arrays following its shape (a 0-D
 * tensor gives its value): TF Serving's columnar "outputs". Like
 * qv_tensor_row_to_json, BYTES elements are written as TF Serving writes
 * strings: a JSON string when valid UTF-8 (no NUL), else {"b64": "..."};
 * always {"b64": ...} for a tensor whose name ends in "_bytes". */
int qv_tensor_nested_to_json(const struct qv_tensor *t, struct qv_buf *out);
/* qv_tensor_row_to_json for consecutive rows: *cursor is the byte offset of
 * the row's first element (0 for row 0; advanced past the row), so a BYTES
 * tensor is walked once. */
int qv_tensor_row_to_json_at(const struct qv_tensor *t, int64_t row, size_t *cursor,
                             struct qv_buf *out);
/* Appends {"name":...,"datatype":...,"shape":[...],"data":[...]} to out.
 * BYTES elements are JSON strings; bytes that are not valid UTF-8 become
 * U+FFFD there (the binary_data output form carries them exactly). */
int qv_tensor_to_json(const struct qv_tensor *t, struct qv_buf *out);
/* Appends the values [start, start+count) as a flat JSON array. */
int qv_tensor_values_to_json(const struct qv_tensor *t, int64_t start, int64_t count,
                             struct qv_buf *out);
/* Appends rows [row, row+1) of t as nested arrays following shape[1..]; a 1-D
 * tensor gives a scalar. For TF Serving's "predictions". */
int qv_tensor_row_to_json(const struct qv_tensor *t, int64_t row, struct qv_buf *out);
