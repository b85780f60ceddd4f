/* SPDX-License-Identifier: MIT
 *
 * api/binary.h -- the binary tensor data extension of the KServe v2 /
 * Triton HTTP protocol: a body made of a JSON header (its length in the
 * Inference-Header-Content-Length header) followed by the raw bytes of the
 * inputs that carry "parameters": {"binary_data_size": N}, in input order;
 * and responses built the same way for outputs asked for in binary.
 */
#ifndef QV_API_BINARY_H
#define QV_API_BINARY_H

#include "api_int.h"

#include <jansson.h>

#define QV_BIN_HEADER "Inference-Header-Content-Length"

/* The binary part of a request body: data[pos..len) is still to be read. */
struct qv_bin {
    const char *data;
    size_t len, pos;
    bool present; /* the request had an Inference-Header-Content-Length */
};

/* Splits h's body: *json_len is the JSON header's length (the whole body
 * when the header is absent) and bin the bytes after it. QV_EINVAL naming
 * the header when it is not a number within the body. */
int qv__bin_split(struct qv_http_req *h, size_t *json_len, struct qv_bin *bin,
                  struct qv_diag *d);
/* Reads input object 'obj' from the binary part when its parameters carry
 * binary_data_size: *used is then true and t filled (owned). The size must
 * equal shape x datatype and fit in what is left of the body; 'obj' must
 * not also carry "data". *used false: the input is JSON (t untouched). */
int qv__bin_input(const json_t *obj, const char *field, struct qv_bin *bin, struct qv_tensor *t,
                  bool *used, struct qv_diag *d);
/* After the last input: every binary byte must have been claimed. */
int qv__bin_finish(const struct qv_bin *bin, struct qv_diag *d);
/* A binary output's entry in the JSON header: name, datatype, shape and
 * parameters.binary_data_size (no "data"). */
int qv__bin_output_head(const struct qv_tensor *t, struct qv_buf *b);
/* Appends t's raw bytes (little-endian, row-major). */
int qv__bin_output_data(const struct qv_tensor *t, struct qv_buf *b);
/* Reads an optional boolean member; QV_EINVAL naming 'field' when present
 * and not a boolean. */
int qv__bin_flag(const json_t *params, const char *key, const char *field, bool *out,
                 bool *given, struct qv_diag *d);

#endif /* QV_API_BINARY_H */
