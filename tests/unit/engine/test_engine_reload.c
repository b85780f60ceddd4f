/* SPDX-License-Identifier: MIT
 *
 * Live edits: a changed config.json or an artifact replaced (renamed over or
 * rewritten in place) loads the version again as a new generation while the
 * old one serves (make-before-break); a config that fails to parse and a new
 * generation that fails to load leave the old one serving, with the error
 * shown in the metadata and the events.
 */
#include "engine_fixture.h"

#define CFG_BATCH4 "{\"backend\": \"test\", \"max_batch_size\": 4}"

static void expect_batch(qv_engine *e, int64_t rows, int want_err, const char *msg_part)
{
    struct fx_req q;
    struct qv_diag d = {{0}};
    int err = fx_send(e, "m", 1, rows, 4, 1.0f, &q, &d);

    if (err == 0) {
        err = fx_wait(&q);
        if (err)
            d = q.r.diag;
        fx_free(&q);
    }
    if (err != want_err)
        fail_msg("%lld rows: got %d (%s), expected %d", (long long)rows, err, d.msg, want_err);
    if (msg_part)
        assert_non_null(strstr(d.msg, msg_part));
}

static void test_max_batch_size_edit_takes_effect(void **state)
{
    struct qv_model_info info;
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", CFG_BATCH4);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    expect_batch(e, 8, QV_EINVAL, "exceeds max_batch_size 4");
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": 0}");
    assert_int_equal(qv_engine_sync(e), 0);
    /* The version serving now was built with the new config. */
    expect_batch(e, 8, 0, NULL);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_int_equal(info.max_batch_size, 0);
    assert_string_equal(info.problem, "");
    assert_int_equal(info.versions[0].state, QV_STATE_READY);
    qv_model_info_free(&info);
    assert_true(fx_event_seen("m/1 READY", "max_batch_size 4 -> 0"));
    /* And back. */
    fx_write("m/config.json", CFG_BATCH4);
    assert_int_equal(qv_engine_sync(e), 0);
    expect_batch(e, 8, QV_EINVAL, "exceeds max_batch_size 4");
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_int_equal(info.max_batch_size, 4);
    qv_model_info_free(&info);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* ---- Requests keep being answered while generations change ---- */

struct client {
    qv_engine *e;
    _Atomic bool *stop;
    _Atomic int sent;
    _Atomic int failed;
};

static void *client_main(void *arg)
{
    struct client *c = arg;

    while (!atomic_load(c->stop)) {
        int err;
        float y = fx_infer(c->e, "m", 1, 4, 1.0f, &err);
        atomic_fetch_add(&c->sent, 1);
        /* Either generation's answer (scale 1, 3 or 5), never an error. */
        if (err || !(fabsf(y - fx_expect(1.0f, 0, 4, 1.0)) < 1e-4f ||
                     fabsf(y - fx_expect(1.0f, 0, 4, 3.0)) < 1e-4f ||
                     fabsf(y - fx_expect(1.0f, 0, 4, 5.0)) < 1e-4f))
            atomic_fetch_add(&c->failed, 1);
    }
    return NULL;
}

static void test_artifact_replaced_serves_new_hash(void **state)
{
    char sha0[QV_SHA256_HEX], sha1[QV_SHA256_HEX], sha2[QV_SHA256_HEX], want[QV_SHA256_HEX];
    char path[600];
    struct qv_diag d = {{0}};
    struct client c[2];
    pthread_t th[2];
    _Atomic bool stop = false;
    qv_monitor *mon;
    qv_engine *e;
    FILE *f;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", CFG_BATCH4);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 1.0}");
    e = fx_engine(&mon, 0, 0);
    fx_sha(e, "m", 1, sha0);
    assert_int_equal(strlen(sha0), 64);
    for (int i = 0; i < 2; i++) {
        c[i].e = e;
        c[i].stop = &stop;
        atomic_init(&c[i].sent, 0);
        atomic_init(&c[i].failed, 0);
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &c[i]), 0);
    }

    /* Renamed over (a new file under the same name). */
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 3.0}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 3.0), 1e-4);
    assert_int_equal(err, 0);
    fx_sha(e, "m", 1, sha1);
    fx_path(path, sizeof(path), "m/1/model.test");
    assert_int_equal(qv_sha256_file(path, want, &d), 0);
    assert_string_equal(sha1, want);
    assert_string_not_equal(sha1, sha0);
    assert_true(fx_event_seen("m/1 READY", "artifact replaced"));

    /* Rewritten in place (same inode, other bytes). */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"features\": 4, \"linear\": true, \"scale\": 5.00}", f);
    fclose(f);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 5.0), 1e-4);
    fx_sha(e, "m", 1, sha2);
    assert_int_equal(qv_sha256_file(path, want, &d), 0);
    assert_string_equal(sha2, want);

    /* Touched, same bytes: no new generation. */
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 5.00}");
    assert_int_equal(qv_engine_sync(e), 0);
    fx_sha(e, "m", 1, sha1);
    assert_string_equal(sha1, sha2);

    while (atomic_load(&c[0].sent) < 5 || atomic_load(&c[1].sent) < 5)
        usleep(1000);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&c[i].failed), 0);
    }
    /* The replaced generations drained and gave their memory back. */
    assert_int_equal(qv_engine_sync(e), 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

static void test_broken_config_edit_keeps_old(void **state)
{
    struct qv_model_info info;
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", CFG_BATCH4);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": \"lots\"}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_non_null(strstr(info.problem, "max_batch_size"));
    assert_int_equal(info.versions[0].state, QV_STATE_READY);
    assert_int_equal(info.max_batch_size, 4);
    qv_model_info_free(&info);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 1.0), 1e-5);
    assert_int_equal(err, 0);
    expect_batch(e, 8, QV_EINVAL, "exceeds max_batch_size 4");
    /* Fixed: the problem goes, the edit applies. */
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": 16}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_string_equal(info.problem, "");
    assert_int_equal(info.max_batch_size, 16);
    qv_model_info_free(&info);
    expect_batch(e, 8, 0, NULL);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

static void test_failed_new_generation_keeps_old(void **state)
{
    char sha0[QV_SHA256_HEX], sha1[QV_SHA256_HEX], reason[256];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", CFG_BATCH4);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 2.0}");
    e = fx_engine(&mon, 0, 0);
    fx_sha(e, "m", 1, sha0);
    fx_write("m/1/model.test", "{\"fail_load\": \"corrupt weights\"}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, reason, sizeof(reason)), QV_STATE_READY);
    assert_non_null(strstr(reason, "failed to load"));
    assert_non_null(strstr(reason, "corrupt weights"));
    assert_true(fx_event_seen("m/1 READY", "corrupt weights"));
    /* The old generation answers, with its own hash in the metadata. */
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 2.0), 1e-5);
    assert_int_equal(err, 0);
    fx_sha(e, "m", 1, sha1);
    assert_string_equal(sha0, sha1);
    /* Not retried while nothing changes; a fixed artifact loads. */
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 3.0}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 3.0), 1e-5);
    assert_int_equal(fx_state(e, "m", 1, reason, sizeof(reason)), QV_STATE_READY);
    assert_null(strstr(reason, "failed"));
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* A version directory replaced under the same number. */
static void test_version_directory_replaced(void **state)
{
    char cmd[800];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", CFG_BATCH4);
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 1.0}");
    fx_write("m/staging/model.test", "{\"features\": 4, \"linear\": true, \"scale\": 3.0}");
    e = fx_engine(&mon, 0, 0);
    snprintf(cmd, sizeof(cmd), "cd %s/m && mv 1 old && mv staging 1", fx_root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 3.0), 1e-5);
    assert_int_equal(err, 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* A version that failed with one config is tried again with the next. */
static void test_config_fix_retries_failed_version(void **state)
{
    char reason[256];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json",
             "{\"backend\": \"test\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": "
             "\"INT32\", \"shape\": [-1, 4]}]}");
    fx_write("m/1/model.test", "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(fx_state(e, "m", 1, reason, sizeof(reason)), QV_STATE_UNAVAILABLE);
    assert_non_null(strstr(reason, "datatype"));
    fx_write("m/config.json", CFG_BATCH4);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 1.0), 1e-5);
    assert_int_equal(err, 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_batch_size_edit_takes_effect),
        cmocka_unit_test(test_artifact_replaced_serves_new_hash),
        cmocka_unit_test(test_broken_config_edit_keeps_old),
        cmocka_unit_test(test_failed_new_generation_keeps_old),
        cmocka_unit_test(test_version_directory_replaced),
        cmocka_unit_test(test_config_fix_retries_failed_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
