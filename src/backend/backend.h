/* SPDX-License-Identifier: MIT
 *
 * backend/backend.h -- what the engine sees of a backend: find one by name or
 * by artifact extension, load a version's artifact, describe it, run a batch
 * and unload it. The vtable itself is in backend_impl.h, for implementers.
 */
#ifndef QV_BACKEND_H
#define QV_BACKEND_H

#include "../tensor/tensor.h"

#define QV_MAX_IO 16

struct qv_backend;

enum {
    QV_BACKEND_REENTRANT = 1u << 0, /* infer() may run concurrently on one state */
    QV_BACKEND_BYTES = 1u << 1,     /* takes BYTES (serialized string) inputs */
};

/* Inputs and outputs of a loaded model, as the metadata endpoint shows them. */
struct qv_signature {
    int n_inputs, n_outputs;
    struct qv_tensor_desc inputs[QV_MAX_IO];
    struct qv_tensor_desc outputs[QV_MAX_IO];
    char engine[16]; /* how the backend evaluates it ("compiled", "libxgboost"); "" if one way */
};

struct qv_kv {
    const char *key, *value;
};

/* What load() gets besides the artifact path. Borrowed for the call only. */
struct qv_backend_params {
    const char *version_dir;            /* the directory holding the artifact */
    int threads;                        /* threads one infer() call may use (>= 1) */
    const struct qv_signature *declared; /* from config.json; n_inputs 0 when absent */
    const struct qv_kv *params;         /* config.json "parameters", may be NULL */
    int n_params;
};

const struct qv_backend *qv_backend_find(const char *name);    /* NULL if unknown */
const struct qv_backend *qv_backend_for_file(const char *file); /* by extension; NULL if none */
const char *qv_backend_name(const struct qv_backend *be);
unsigned qv_backend_flags(const struct qv_backend *be);
const char *const *qv_backend_exts(const struct qv_backend *be); /* NULL-terminated */
/* Names of all registered backends, NULL-terminated. */
const char *const *qv_backend_names(void);

/* The `test` backend injects faults (failures, delays, wrong shapes): it is for
 * tests and benchmarks. On by default in the library (unit tests); `quiver
 * serve` turns it off unless --enable-test-backend is given, and a version
 * that needs it is then UNAVAILABLE saying so. Main thread, before any load. */
void qv_backend_enable_test(bool on);

/* The working memory one request may take in a backend that plans memory
 * from the request's shapes (ONNX): past it the request is refused (413)
 * before anything is allocated. A model's config.json parameter
 * "max_request_memory" overrides it. 0: the backend's own default. `quiver
 * serve --max-request-memory` sets it (default: a quarter of the memory
 * budget). Main thread, before any load. */
void qv_backend_set_max_request_bytes(size_t n);
size_t qv_backend_max_request_bytes(void);

/* Worker thread. On success *state is owned by the caller until qv_backend_unload. */
int qv_backend_load(const struct qv_backend *be, const char *path,
                    const struct qv_backend_params *p, void **state, struct qv_diag *d);
void qv_backend_unload(const struct qv_backend *be, void *state); /* NULL state is a no-op */
/* Fills sig from the model itself; QV_ENOTSUP if the backend cannot. */
int qv_backend_describe(const struct qv_backend *be, const void *state, struct qv_signature *sig);
/* Runs one batch (dim 0 of every input is the batch). On success out[0..*n_out)
 * hold owned tensors the caller must qv_tensor_fini(). Worker thread. */
int qv_backend_infer(const struct qv_backend *be, void *state, const struct qv_tensor *in,
                     int n_in, struct qv_tensor *out, int *n_out, struct qv_diag *d);
size_t qv_backend_memory(const struct qv_backend *be, const void *state);

#endif /* QV_BACKEND_H */
