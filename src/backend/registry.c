/* SPDX-License-Identifier: MIT
 *
 * The backend registry: one line per backend, and thin wrappers that keep the
 * engine away from the vtable. */
#include "backend_impl.h"

#include <stdatomic.h>
#include <string.h>

static atomic_bool test_enabled = true;

void qv_backend_enable_test(bool on)
{
    atomic_store(&test_enabled, on);
}

static _Atomic size_t max_request_bytes;

void qv_backend_set_max_request_bytes(size_t n)
{
    atomic_store(&max_request_bytes, n);
}

size_t qv_backend_max_request_bytes(void)
{
    return atomic_load(&max_request_bytes);
}

static const struct qv_backend *const backends[] = {
#ifdef QV_WITH_XGBOOST
    &qv_backend_xgboost,
#endif
#ifdef QV_WITH_ONNX
    &qv_backend_onnx,
#endif
    &qv_backend_test,
};

static const char *const names[] = {
#ifdef QV_WITH_XGBOOST
    "xgboost",
#endif
#ifdef QV_WITH_ONNX
    "onnx",
#endif
    "test",
    NULL,
};

const char *const *qv_backend_names(void)
{
    return names;
}

const struct qv_backend *qv_backend_find(const char *name)
{
    for (size_t i = 0; i < QV_ARRAY_LEN(backends); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

const struct qv_backend *qv_backend_for_file(const char *file)
{
    size_t n = strlen(file);

    for (size_t i = 0; i < QV_ARRAY_LEN(backends); i++) {
        for (const char *const *e = backends[i]->file_exts; e && *e; e++) {
            size_t m = strlen(*e);
            if (n > m && strcmp(file + n - m, *e) == 0)
                return backends[i];
        }
    }
    return NULL;
}

const char *qv_backend_name(const struct qv_backend *be)
{
    return be->name;
}

unsigned qv_backend_flags(const struct qv_backend *be)
{
    return be->flags;
}

const char *const *qv_backend_exts(const struct qv_backend *be)
{
    return be->file_exts;
}

int qv_backend_load(const struct qv_backend *be, const char *path,
                    const struct qv_backend_params *p, void **state, struct qv_diag *d)
{
    if (be == &qv_backend_test && !atomic_load(&test_enabled))
        return qv_fail(d, QV_ENOTSUP, "the fault-injecting \"test\" backend is off; start "
                                      "quiver serve with --enable-test-backend to use it");
    return be->load(path, p, state, d);
}

void qv_backend_unload(const struct qv_backend *be, void *state)
{
    if (state != NULL)
        be->unload(state);
}

int qv_backend_describe(const struct qv_backend *be, const void *state, struct qv_signature *sig)
{
    memset(sig, 0, sizeof(*sig));
    if (be->describe == NULL)
        return QV_ENOTSUP;
    return be->describe(state, sig);
}

int qv_backend_infer(const struct qv_backend *be, void *state, const struct qv_tensor *in,
                     int n_in, struct qv_tensor *out, int *n_out, struct qv_diag *d)
{
    return be->infer(state, in, n_in, out, n_out, d);
}

size_t qv_backend_memory(const struct qv_backend *be, const void *state)
{
    return be->memory_used ? be->memory_used(state) : 0;
}
