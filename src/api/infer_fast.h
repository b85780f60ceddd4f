/* SPDX-License-Identifier: MIT
 *
 * The common KServe v2 JSON request, decoded in one pass without a JSON tree.
 */
#ifndef QV_API_INFER_FAST_H
#define QV_API_INFER_FAST_H

#include "../backend/backend.h"
#include "../tensor/tensor.h"

#include <stdbool.h>
#include <stddef.h>

struct qv_fast_req {
    struct qv_tensor inputs[QV_MAX_IO];
    int n_inputs;
    char id[128];
    bool has_id;
    char wanted[QV_MAX_IO][QV_NAME_MAX]; /* "outputs" names, in order */
    int n_wanted;
};

/* Decodes body[0..len) when it has the shape nearly every client sends:
 *
 *   {"id": "...", "inputs": [{"name": "...", "datatype": "...", "shape": [...],
 *    "data": [...]}, ...], "outputs": [{"name": "..."}, ...]}
 *
 * ("id" and "outputs" optional, keys in any order but "data" after "datatype"
 * and "shape"; data flat or nested exactly as the shape; datatypes FP32,
 * FP64, INT32 and INT64; strings without escapes). Returns true with 'out'
 * filled (its tensors owned by the caller) when the body is that and valid;
 * false, with nothing left allocated, for anything else (other keys,
 * "parameters", an invalid value, invalid JSON): the caller then decodes the
 * body with the general decoder, which accepts the rest and words every
 * error. Every value decoded here is the value the general decoder gives. */
bool qv__infer_fast_decode(const char *body, size_t len, struct qv_fast_req *out);

#endif
