/* SPDX-License-Identifier: MIT
 *
 * The "test" backend: a model described by a small JSON artifact
 * (model.test) whose behaviour is chosen on purpose -- slow, failing a share
 * of its calls, heavy in memory, slow to load. The test suites and the
 * rollout/routing walkthroughs use it to stand for a bad canary; it computes
 * y = sigmoid(scale * mean(row) + bias) (or the linear value with
 * "linear": true), so its outputs are checkable.
 *
 *   {"features": 30, "scale": 1.0, "bias": 0.0, "linear": false,
 *    "delay_us": 0, "fail_rate": 0.0, "memory_bytes": 0, "load_delay_ms": 0,
 *    "slow_after": 0, "slow_delay_us": 0}
 *
 * With "slow_after": N > 0, every call after the first N sleeps
 * "slow_delay_us" instead of "delay_us" (a version that gets slow).
 *
 * "features": -1 takes rows of any width (input shape [-1,-1]).
 *
 * With "echo": "<datatype>" (a KServe name: "BYTES", "INT32", ...) the
 * model is the identity on one input of that datatype, shape [-1,features]:
 * output__0 is input__0, same datatype, shape and bytes.
 */
#include "backend_impl.h"

#define QV_LOG_MODULE "testbe"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct test_model {
    int64_t features;
    double scale, bias, fail_rate;
    bool linear;
    enum qv_dtype echo; /* QV_DTYPE_UNDEF: the sigmoid model */
    uint64_t delay_us;
    uint64_t slow_after, slow_delay_us;
    size_t memory;
    void *ballast; /* memory_bytes really held, so RSS shows it */
    _Atomic uint64_t calls;
};

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void test_unload(void *state)
{
    struct test_model *m = state;

    if (m == NULL)
        return;
    free(m->ballast);
    free(m);
}

static int test_load(const char *path, const struct qv_backend_params *p, void **state,
                     struct qv_diag *d)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    struct test_model *m;
    json_t *v;

    (void)p;
    if (root == NULL)
        return qv_fail(d, QV_EINVAL, "%s: invalid JSON at line %d: %s", path, jerr.line,
                       jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return qv_fail(d, QV_EINVAL, "%s: expected a JSON object", path);
    }
    v = json_object_get(root, "load_delay_ms");
    if (json_is_integer(v))
        sleep_us((uint64_t)json_integer_value(v) * 1000);
    v = json_object_get(root, "fail_load");
    if (json_is_string(v)) {
        qv_fail(d, QV_EBACKEND, "%s", json_string_value(v));
        json_decref(root);
        return QV_EBACKEND;
    }
    m = qv_xcalloc(1, sizeof(*m));
    m->features = json_integer_value(json_object_get(root, "features"));
    if (m->features <= 0 && m->features != -1)
        m->features = 1;
    v = json_object_get(root, "scale");
    m->scale = json_is_number(v) ? json_number_value(v) : 1.0;
    m->bias = json_number_value(json_object_get(root, "bias"));
    m->fail_rate = json_number_value(json_object_get(root, "fail_rate"));
    m->linear = json_is_true(json_object_get(root, "linear"));
    v = json_object_get(root, "echo");
    if (v != NULL) {
        m->echo = json_is_string(v) ? qv_dtype_from_name(json_string_value(v)) : QV_DTYPE_UNDEF;
        if (m->echo == QV_DTYPE_UNDEF) {
            json_decref(root);
            free(m);
            return qv_fail(d, QV_EINVAL, "%s: echo: expected a datatype name (\"BYTES\", "
                           "\"FP32\", ...)", path);
        }
    }
    m->delay_us = (uint64_t)json_integer_value(json_object_get(root, "delay_us"));
    m->memory = (size_t)json_integer_value(json_object_get(root, "memory_bytes"));
    v = json_object_get(root, "slow_after");
    m->slow_after = json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    v = json_object_get(root, "slow_delay_us");
    m->slow_delay_us = json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    json_decref(root);
    if (m->memory) {
        m->ballast = malloc(m->memory);
        if (m->ballast == NULL) {
            size_t want = m->memory;
            free(m);
            return qv_fail(d, QV_ENOMEM, "cannot hold %zu bytes", want);
        }
        memset(m->ballast, 1, m->memory);
    }
    *state = m;
    return QV_OK;
}

static int test_describe(const void *state, struct qv_signature *sig)
{
    const struct test_model *m = state;

    sig->n_inputs = 1;
    snprintf(sig->inputs[0].name, QV_NAME_MAX, "input__0");
    sig->inputs[0].dtype = m->echo ? m->echo : QV_DTYPE_F32;
    sig->inputs[0].ndim = 2;
    sig->inputs[0].shape[0] = -1;
    sig->inputs[0].shape[1] = m->features;
    sig->n_outputs = 1;
    snprintf(sig->outputs[0].name, QV_NAME_MAX, "output__0");
    sig->outputs[0].dtype = sig->inputs[0].dtype;
    sig->outputs[0].ndim = m->echo ? 2 : 1;
    sig->outputs[0].shape[0] = -1;
    sig->outputs[0].shape[1] = m->features;
    return QV_OK;
}

static int test_infer(void *state, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                      int *n_out, struct qv_diag *d)
{
    struct test_model *m = state;
    uint64_t call = atomic_fetch_add(&m->calls, 1);
    int64_t rows, width = n_in == 1 && in[0].ndim == 2 ? in[0].shape[1] : 0;
    int err;

    if (m->echo) {
        if (n_in != 1 || in[0].dtype != m->echo)
            return qv_fail(d, QV_EINVAL, "expected one %s input", qv_dtype_name(m->echo));
        if (m->delay_us)
            sleep_us(m->delay_us);
        err = qv_tensor_copy(&out[0], &in[0]);
        if (err)
            return qv_fail(d, err, "cannot allocate the output");
        snprintf(out[0].name, sizeof(out[0].name), "output__0");
        *n_out = 1;
        return QV_OK;
    }
    if (n_in != 1 || in[0].dtype != QV_DTYPE_F32 || in[0].ndim != 2 || width < 1 ||
        (m->features > 0 && width != m->features))
        return qv_fail(d, QV_EINVAL, "expected one FP32 input of shape [-1,%lld]",
                       (long long)m->features);
    if (m->slow_after > 0 && call >= m->slow_after) {
        if (m->slow_delay_us)
            sleep_us(m->slow_delay_us);
    } else if (m->delay_us) {
        sleep_us(m->delay_us);
    }
    /* A deterministic share of calls fails: call k fails when its hash falls
     * under the rate, so a run of N calls fails about N * fail_rate. */
    if (m->fail_rate > 0 &&
        (double)(qv_mix64(call + 1) >> 11) / (double)(1ull << 53) < m->fail_rate)
        return qv_fail(d, QV_EBACKEND, "injected failure (fail_rate %.2f)", m->fail_rate);
    rows = in[0].shape[0];
    err = qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, 1, &rows);
    if (err)
        return qv_fail(d, err, "cannot allocate the output");
    for (int64_t r = 0; r < rows; r++) {
        const float *x = (const float *)in[0].data + r * width;
        double s = 0;
        for (int64_t c = 0; c < width; c++)
            s += x[c];
        s = m->scale * (s / (double)width) + m->bias;
        ((float *)out[0].data)[r] = (float)(m->linear ? s : 1.0 / (1.0 + exp(-s)));
    }
    *n_out = 1;
    return QV_OK;
}

static size_t test_memory(const void *state)
{
    return ((const struct test_model *)state)->memory;
}

static const char *const test_exts[] = {".test", NULL};

const struct qv_backend qv_backend_test = {
    .name = "test",
    .file_exts = test_exts,
    .flags = QV_BACKEND_REENTRANT | QV_BACKEND_BYTES,
    .load = test_load,
    .unload = test_unload,
    .describe = test_describe,
    .infer = test_infer,
    .memory_used = test_memory,
};
