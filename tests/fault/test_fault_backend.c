/* SPDX-License-Identifier: MIT
 *
 * Backends that fail, hang (for a bounded time) or return the wrong shapes:
 * each request gets a clear JSON error naming the problem, and a healthy
 * model served by the same engine keeps answering right meanwhile.
 *
 * The `test` backend's knobs (backend/test_backend.c) give the failing
 * ("fail_rate"), slow ("delay_us") and unloadable ("fail_load") models; a
 * wrapper around qv_backend_infer (linked with -Wl,--wrap=qv_backend_infer)
 * corrupts the outputs of the model with 7 features.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/backend_impl.h"
#include "fuzz/fuzz_server.h"

enum shape_fault { SHAPE_OK, SHAPE_EXTRA_ROW, SHAPE_NO_OUTPUT, SHAPE_SCALAR, SHAPE_SHORT_DATA };
static _Atomic int g_shape_fault;

int __real_qv_backend_infer(const struct qv_backend *be, void *state, const struct qv_tensor *in,
                            int n_in, struct qv_tensor *out, int *n_out, struct qv_diag *d);
int __wrap_qv_backend_infer(const struct qv_backend *be, void *state, const struct qv_tensor *in,
                            int n_in, struct qv_tensor *out, int *n_out, struct qv_diag *d);

int __wrap_qv_backend_infer(const struct qv_backend *be, void *state, const struct qv_tensor *in,
                            int n_in, struct qv_tensor *out, int *n_out, struct qv_diag *d)
{
    int err = __real_qv_backend_infer(be, state, in, n_in, out, n_out, d);
    int64_t shape[2];

    if (err || n_in < 1 || in[0].ndim != 2 || in[0].shape[1] != 7)
        return err;
    switch (atomic_load(&g_shape_fault)) {
    case SHAPE_EXTRA_ROW: /* a well-formed tensor with one row too many */
        shape[0] = out[0].shape[0] + 1;
        qv_tensor_fini(&out[0]);
        return qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, 1, shape);
    case SHAPE_NO_OUTPUT:
        qv_tensor_fini(&out[0]);
        *n_out = 0;
        return QV_OK;
    case SHAPE_SCALAR:
        qv_tensor_fini(&out[0]);
        return qv_tensor_alloc(&out[0], "output__0", QV_DTYPE_F32, 0, shape);
    case SHAPE_SHORT_DATA: /* the shape claims 3 values a row, the data holds 1 */
        out[0].ndim = 2;
        out[0].shape[1] = 3;
        return QV_OK;
    default:
        return QV_OK;
    }
}

static const char body4[] = "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
                            "\"shape\": [2, 4], \"data\": [1, 2, 3, 4, 4, 4, 4, 4]}]}";
static const char body7[] = "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
                            "\"shape\": [2, 7], \"data\": [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]}]}";

static json_t *post(const char *model, const char *body, int *status)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;
    char path[256];
    json_error_t jerr;
    json_t *root;

    snprintf(path, sizeof(path), "/v2/models/%s/infer", model);
    fz_request(s, "POST", path, NULL, NULL, body, strlen(body), &a);
    root = json_loadb(a.body, a.len, 0, &jerr);
    if (!json_is_object(root))
        fail_msg("%s: status %d, not a JSON object: %s", model, a.status, a.body);
    *status = a.status;
    fz_response_free(&a);
    return root;
}

/* The healthy model answers right. */
static void expect_healthy(void)
{
    int status;
    json_t *r = post("m", body4, &status), *data;

    assert_int_equal(status, 200);
    data = json_object_get(json_array_get(json_object_get(r, "outputs"), 0), "data");
    assert_float_equal(json_number_value(json_array_get(data, 0)), 2.5, 1e-6);
    assert_float_equal(json_number_value(json_array_get(data, 1)), 4.0, 1e-6);
    json_decref(r);
}

static void expect_error(const char *model, const char *body, int want_status, const char *words)
{
    int status;
    json_t *r = post(model, body, &status);
    const char *msg = json_string_value(json_object_get(r, "error"));

    if (status != want_status || msg == NULL || strstr(msg, words) == NULL)
        fail_msg("%s: expected %d with \"%s\", got %d: %s", model, want_status, words, status,
                 msg ? msg : "(no error)");
    json_decref(r);
}

static void test_failing_backend(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        expect_error("failing", body4, 500, "injected failure");
        expect_healthy();
    }
}

static void test_unloadable_artifact(void **state)
{
    struct fz_server *s = fz_server_get();
    struct qv_model_info info;

    (void)state;
    expect_error("badload", body4, 503, "");
    assert_int_equal(qv_engine_model_info(s->engine, "badload", &info), QV_OK);
    assert_int_equal(info.n_versions, 1);
    assert_int_equal(info.versions[0].state, QV_STATE_UNAVAILABLE);
    assert_non_null(strstr(info.versions[0].reason, "corrupt artifact (injected)"));
    qv_model_info_free(&info);
    expect_healthy();
}

struct slow_call {
    pthread_t th;
    int status;
};

static void *slow_main(void *arg)
{
    struct slow_call *c = arg;
    json_t *r = post("slow", body4, &c->status);

    json_decref(r);
    return NULL;
}

/* A backend call that takes long (bounded: 300 ms) holds its own request
 * only: the healthy model is served while it runs. */
static void test_slow_backend(void **state)
{
    struct slow_call c[2];

    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&c[i].th, NULL, slow_main, &c[i]), 0);
    for (int i = 0; i < 10; i++)
        expect_healthy();
    for (int i = 0; i < 2; i++) {
        pthread_join(c[i].th, NULL);
        assert_int_equal(c[i].status, 200);
    }
}

static void test_wrong_shapes(void **state)
{
    int status;
    json_t *r;

    (void)state;
    atomic_store(&g_shape_fault, SHAPE_EXTRA_ROW);
    expect_error("shape", body7, 500, "backend output 0 has 3 rows, expected 2");
    expect_healthy();
    atomic_store(&g_shape_fault, SHAPE_SCALAR);
    expect_error("shape", body7, 500, "backend output 0 has");
    expect_healthy();
    atomic_store(&g_shape_fault, SHAPE_OK);
    r = post("shape", body7, &status);
    assert_int_equal(status, 200);
    json_decref(r);
}

/* A backend that returns fewer outputs than the model declares, or a tensor
 * whose data is shorter than its shape, is a backend failure (500) for that
 * request only: nothing reads past the data. */
static void test_wrong_shapes_more(void **state)
{
    (void)state;
    atomic_store(&g_shape_fault, SHAPE_NO_OUTPUT);
    expect_error("shape", body7, 500, "output");
    expect_healthy();
    atomic_store(&g_shape_fault, SHAPE_SHORT_DATA);
    expect_error("shape", body7, 500, "output");
    expect_healthy();
    atomic_store(&g_shape_fault, SHAPE_OK);
}

static int setup(void **state)
{
    (void)state;
    fz_server_add_model("failing", "{\"features\": 4, \"fail_rate\": 1.0, \"linear\": true}");
    fz_server_add_model("slow", "{\"features\": 4, \"delay_us\": 300000, \"linear\": true}");
    fz_server_add_model("badload", "{\"fail_load\": \"corrupt artifact (injected)\"}");
    fz_server_add_model("shape", "{\"features\": 7, \"linear\": true}");
    fz_server_get();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fz_server_destroy();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failing_backend),
        cmocka_unit_test(test_unloadable_artifact),
        cmocka_unit_test(test_slow_backend),
        cmocka_unit_test(test_wrong_shapes),
        cmocka_unit_test(test_wrong_shapes_more),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
