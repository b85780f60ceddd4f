/* SPDX-License-Identifier: MIT
 *
 * Dynamic batching with a dynamic non-batch dimension: requests of different
 * widths queued together never share a backend call (a merged buffer is
 * sized from one request's shape), and each gets its own right answer.
 * Duplicate input names, in config.json or in a request, are refused.
 */
#include "engine_fixture.h"

static void test_mixed_widths_never_merge(void **state)
{
    enum { N = 12 };
    static const int64_t widths[N] = {2, 5, 2, 9, 5, 2, 2, 9, 5, 2, 5, 9};
    struct fx_req q[N];
    struct qv_diag d = {{0}};
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    /* A long queue delay: everything sent below waits in one queue together. */
    fx_write("w/config.json",
             "{\"backend\": \"test\", \"max_batch_size\": 64, \"max_queue_delay_us\": 300000,"
             " \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\","
             " \"shape\": [-1, -1]}]}");
    fx_write("w/1/model.test", "{\"features\": -1, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(fx_send(e, "w", 1, 1 + i % 3, widths[i], (float)i, &q[i], &d), 0);
    for (int i = 0; i < N; i++) {
        int64_t rows = 1 + i % 3;
        assert_int_equal(fx_wait(&q[i]), 0);
        assert_int_equal(q[i].r.n_outputs, 1);
        assert_int_equal(q[i].r.outputs[0].shape[0], rows);
        for (int64_t k = 0; k < rows; k++)
            assert_float_equal(((float *)q[i].r.outputs[0].data)[k],
                               fx_expect((float)i, k, widths[i], 1.0), 1e-4);
        /* A batch never holds more rows than requests of this width sent. */
        {
            int64_t same = 0;
            for (int k = 0; k < N; k++)
                if (widths[k] == widths[i])
                    same += 1 + k % 3;
            assert_true((int64_t)q[i].r.batch_size <= same);
        }
    }
    for (int i = 0; i < N; i++)
        fx_free(&q[i]);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* A request whose data is not the size its shape says is refused before it
 * can reach a merged buffer. */
static void test_data_size_must_match_shape(void **state)
{
    struct qv_infer_req r;
    struct qv_diag d = {{0}};
    int64_t shape[2] = {1, 4};
    qv_version *v = NULL;
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    fx_write("w/config.json", "{\"backend\": \"test\", \"max_batch_size\": 8}");
    fx_write("w/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(qv_engine_acquire(e, "w", 1, &v, &d), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(qv_tensor_alloc(&r.inputs[0], "input__0", QV_DTYPE_F32, 2, shape), 0);
    r.n_inputs = 1;
    r.inputs[0].nbytes = 64; /* says more than the shape holds */
    assert_int_equal(qv_engine_prepare(v, &r, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "inputs[0]"));
    r.inputs[0].nbytes = 16;
    assert_int_equal(qv_engine_prepare(v, &r, &d), QV_OK);
    qv_infer_req_fini(&r);
    qv_version_release(v);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* config.json declaring [-1, -1] over a model that fixes its width: the
 * signature takes the model's width, so other widths are refused up front. */
static void test_declared_dynamic_dim_takes_model_size(void **state)
{
    struct qv_model_info info;
    int err;
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    fx_write("w/config.json",
             "{\"backend\": \"test\", \"max_batch_size\": 8,"
             " \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\","
             " \"shape\": [-1, -1]}]}");
    fx_write("w/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(qv_engine_model_info(e, "w", &info), 0);
    assert_int_equal(info.sig.inputs[0].shape[0], -1);
    assert_int_equal(info.sig.inputs[0].shape[1], 4);
    qv_model_info_free(&info);
    fx_infer(e, "w", 1, 6, 1.0f, &err);
    assert_int_equal(err, QV_EINVAL);
    assert_float_equal(fx_infer(e, "w", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 1.0), 1e-5);
    assert_int_equal(err, 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

static void test_duplicate_io_names_refused(void **state)
{
    struct qv_model_config cfg;
    struct qv_diag d = {{0}};

    (void)state;
    assert_int_equal(qv_model_config_parse(
                         "{\"inputs\": [{\"name\": \"x\", \"shape\": [-1, 2]},"
                         " {\"name\": \"x\", \"shape\": [-1, 2]}]}",
                         "config.json", &cfg, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "inputs[1].name"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_model_config_parse(
                         "{\"outputs\": [{\"name\": \"y\", \"shape\": [-1]},"
                         " {\"name\": \"y\", \"shape\": [-1]}]}",
                         "config.json", &cfg, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "outputs[1].name"));
    assert_int_equal(qv_model_config_parse(
                         "{\"inputs\": [{\"name\": \"x\", \"shape\": [-1, 2]},"
                         " {\"name\": \"z\", \"shape\": [-1, 2]}]}",
                         "config.json", &cfg, &d),
                     QV_OK);
    qv_model_config_free(&cfg);
}

/* A request naming one input twice is refused; each tensor matches once. */
static void test_duplicate_request_inputs_refused(void **state)
{
    struct qv_infer_req r;
    struct qv_diag d = {{0}};
    int64_t shape[2] = {1, 4};
    qv_version *v = NULL;
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    fx_write("w/config.json", "{\"backend\": \"test\"}");
    fx_write("w/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(qv_engine_acquire(e, "w", 1, &v, &d), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(qv_tensor_alloc(&r.inputs[0], "input__0", QV_DTYPE_F32, 2, shape), 0);
    r.n_inputs = 1;
    assert_int_equal(qv_engine_prepare(v, &r, &d), QV_OK);
    assert_int_equal(qv_tensor_alloc(&r.inputs[1], "input__0", QV_DTYPE_F32, 2, shape), 0);
    r.n_inputs = 2;
    assert_int_equal(qv_engine_prepare(v, &r, &d), QV_EINVAL);
    assert_non_null(strstr(d.msg, "given twice"));
    qv_infer_req_fini(&r); /* frees each tensor once (LeakSanitizer / ASan check it) */
    qv_version_release(v);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_widths_never_merge),
        cmocka_unit_test(test_data_size_must_match_shape),
        cmocka_unit_test(test_declared_dynamic_dim_takes_model_size),
        cmocka_unit_test(test_duplicate_io_names_refused),
        cmocka_unit_test(test_duplicate_request_inputs_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
