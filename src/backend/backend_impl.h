/* SPDX-License-Identifier: MIT
 *
 * backend/backend_impl.h -- for backend implementers only. One vtable per
 * backend, registered by one line in registry.c.
 */
#ifndef QV_BACKEND_IMPL_H
#define QV_BACKEND_IMPL_H

#include "backend.h"

struct qv_backend {
    const char *name;             /* "xgboost", "onnx"; used in config and metrics */
    const char *const *file_exts; /* NULL-terminated, e.g. { ".onnx", NULL } */
    unsigned flags;               /* QV_BACKEND_REENTRANT, ... */

    /* Parse and prepare a model. Worker thread. *state is owned by the
     * backend until unload(). On failure nothing leaks and d says why. */
    int (*load)(const char *path, const struct qv_backend_params *p, void **state,
                struct qv_diag *d);
    void (*unload)(void *state);
    /* (optional) Describe inputs and outputs from the model itself. */
    int (*describe)(const void *state, struct qv_signature *sig);
    /* Run one batch; see qv_backend_infer. */
    int (*infer)(void *state, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                 int *n_out, struct qv_diag *d);
    /* (optional) Bytes the loaded model holds. */
    size_t (*memory_used)(const void *state);
};

extern const struct qv_backend qv_backend_xgboost;
extern const struct qv_backend qv_backend_onnx;
extern const struct qv_backend qv_backend_test;

#endif /* QV_BACKEND_IMPL_H */
