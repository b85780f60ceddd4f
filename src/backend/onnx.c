/* SPDX-License-Identifier: MIT
 *
 * The ONNX backend: quiver's own runtime (src/onnx/) behind struct
 * qv_backend. The model is re-entrant (a pool of execution contexts), so the
 * backend sets QV_BACKEND_REENTRANT and the engine may call infer() from
 * several workers at once.
 */
#include "backend_impl.h"

#define QV_LOG_MODULE "onnx"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../onnx/onnx.h"
#include "ubj_check.h"

static void onnx_unload(void *state)
{
    qv_onnx_free(state);
}

/* "1073741824", "512M", "4G" (binary units) to bytes; false if malformed. */
static bool parse_bytes(const char *s, size_t *out)
{
    char *end;
    unsigned long long n;
    unsigned shift = 0;

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'i' && end[1] == 'B' && shift)
        end += 2;
    else if (*end == 'B' && shift)
        end++;
    if (*end != '\0' || n == 0 || n > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)n << shift;
    return true;
}

/* The working memory one request may take: config.json's parameter
 * "max_request_memory", else $QUIVER_MAX_REQUEST_MEMORY, else the server's
 * --max-request-memory, else the runtime's default. */
static int max_request_memory(const struct qv_backend_params *p, size_t *out, struct qv_diag *d)
{
    const char *env = getenv("QUIVER_MAX_REQUEST_MEMORY");

    *out = 0;
    for (int i = 0; p != NULL && p->params != NULL && i < p->n_params; i++) {
        if (p->params[i].key == NULL || strcmp(p->params[i].key, "max_request_memory") != 0)
            continue;
        if (p->params[i].value == NULL || !parse_bytes(p->params[i].value, out))
            return qv_fail(d, QV_EINVAL,
                           "parameters: max_request_memory: expected a byte count such as 512M");
        return QV_OK;
    }
    if (env != NULL && *env != '\0' && !parse_bytes(env, out))
        qv_log(QV_LOG_WARN, "QUIVER_MAX_REQUEST_MEMORY=%s is not a byte count; using the default",
               env);
    if (*out == 0)
        *out = qv_backend_max_request_bytes();
    return QV_OK;
}

static int onnx_load(const char *path, const struct qv_backend_params *p, void **state,
                     struct qv_diag *d)
{
    struct qv_onnx_options opt = {.threads = p && p->threads > 0 ? p->threads : 1};
    qv_onnx_model *m = NULL;
    int err;

    err = max_request_memory(p, &opt.max_run_bytes, d);
    if (err)
        return err;

    err = qv_onnx_load_file(path, &opt, &m, d);
    if (err) {
        if (d != NULL)
            qv_reason_clean(d->msg);
        return err;
    }
    if (qv_onnx_n_inputs(m) > QV_MAX_IO || qv_onnx_n_outputs(m) > QV_MAX_IO) {
        qv_onnx_free(m);
        return qv_fail(d, QV_ENOTSUP, "model has more than %d inputs or outputs", QV_MAX_IO);
    }
    *state = m;
    return QV_OK;
}

static int onnx_describe(const void *state, struct qv_signature *sig)
{
    const qv_onnx_model *m = state;

    sig->n_inputs = qv_onnx_n_inputs(m);
    sig->n_outputs = qv_onnx_n_outputs(m);
    for (int i = 0; i < sig->n_inputs; i++)
        sig->inputs[i] = *qv_onnx_input(m, i);
    for (int i = 0; i < sig->n_outputs; i++) {
        sig->outputs[i] = *qv_onnx_output(m, i);
        if (sig->outputs[i].ndim < 0)
            sig->outputs[i].ndim = 0;
    }
    return QV_OK;
}

static int onnx_infer(void *state, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                      int *n_out, struct qv_diag *d)
{
    return qv_onnx_run(state, in, n_in, out, QV_MAX_IO, n_out, d);
}

static size_t onnx_memory(const void *state)
{
    return qv_onnx_memory(state);
}

static const char *const onnx_exts[] = {".onnx", NULL};

const struct qv_backend qv_backend_onnx = {
    .name = "onnx",
    .file_exts = onnx_exts,
    .flags = QV_BACKEND_REENTRANT,
    .load = onnx_load,
    .unload = onnx_unload,
    .describe = onnx_describe,
    .infer = onnx_infer,
    .memory_used = onnx_memory,
};
