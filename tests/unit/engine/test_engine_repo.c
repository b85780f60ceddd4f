/* SPDX-License-Identifier: MIT
 *
 * Hostile or unlucky repositories: an artifact that can never fit the memory
 * budget, a FIFO or a device as artifact, a model directory that cannot be
 * read for a while, more version directories than are kept, removed versions
 * and their series, and the queue gauges after traffic.
 */
#include "engine_fixture.h"

#include <errno.h>
#include <signal.h>

#define MIB (1024 * 1024)

static void write_version(const char *model, int v, const char *text)
{
    char rel[256];

    snprintf(rel, sizeof(rel), "%s/%d/model.test", model, v);
    fx_write(rel, text);
}

static void rm_rel(const char *rel)
{
    char cmd[800];

    snprintf(cmd, sizeof(cmd), "rm -rf %s/%s", fx_root, rel);
    assert_int_equal(system(cmd), 0);
}

/* ---- Memory budget ---- */

static void test_never_fits_evicts_nothing(void **state)
{
    char reason[256];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("a/config.json", "{\"backend\": \"test\"}");
    fx_write("b/config.json", "{\"backend\": \"test\"}");
    write_version("a", 1, "{\"features\": 4, \"linear\": true, \"memory_bytes\": 4194304}");
    write_version("b", 1, "{\"features\": 4, \"linear\": true, \"memory_bytes\": 4194304}");
    e = fx_engine(&mon, 10 * MIB, 1);
    assert_int_equal(fx_state(e, "a", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(fx_state(e, "b", 1, NULL, 0), QV_STATE_READY);
    usleep(5000); /* both idle past evict_idle_ms */

    /* 32 MiB can never fit in 10 MiB: refused, and nothing evicted for it. */
    fx_write("c/config.json", "{\"backend\": \"test\"}");
    write_version("c", 1, "{\"features\": 4, \"linear\": true, \"memory_bytes\": 33554432}");
    qv_engine_sync(e);
    assert_int_equal(fx_state(e, "c", 1, reason, sizeof(reason)), QV_STATE_UNAVAILABLE);
    assert_non_null(strstr(reason, "memory budget"));
    assert_int_equal(fx_state(e, "a", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(fx_state(e, "b", 1, NULL, 0), QV_STATE_READY);
    assert_float_equal(fx_infer(e, "a", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 1.0), 1e-5);
    assert_int_equal(err, 0);

    /* One that fits once an idle version goes: that one is evicted ... */
    rm_rel("c");
    usleep(5000);
    fx_write("d/config.json", "{\"backend\": \"test\"}");
    write_version("d", 1, "{\"features\": 4, \"linear\": true, \"memory_bytes\": 4194304}");
    qv_engine_sync(e);
    assert_int_equal(fx_state(e, "d", 1, NULL, 0), QV_STATE_READY);
    {
        int evicted = 0;
        evicted += fx_state(e, "a", 1, reason, sizeof(reason)) == QV_STATE_UNLOADED;
        evicted += fx_state(e, "b", 1, NULL, 0) == QV_STATE_UNLOADED;
        assert_int_equal(evicted, 1);
    }
    /* ... and comes back when the memory is free again. */
    rm_rel("d");
    qv_engine_sync(e);
    assert_int_equal(fx_state(e, "a", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(fx_state(e, "b", 1, NULL, 0), QV_STATE_READY);
    assert_true(qv_engine_memory_used(e) <= 10 * MIB);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* ---- Artifacts that are not files ---- */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "the engine blocked on an artifact\n";
    if (write(2, msg, sizeof(msg) - 1) < 0) {
    }
    _exit(1);
}

static void test_fifo_and_device_artifacts(void **state)
{
    char path[600], reason[256];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    signal(SIGALRM, on_alarm);
    alarm(60); /* a blocked open or an endless read ends the test, not the suite */
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\"}");
    write_version("m", 1, "{\"features\": 4, \"linear\": true}");
    fx_path(path, sizeof(path), "m/2");
    assert_int_equal(qv_mkdir_p(path), 0);
    fx_path(path, sizeof(path), "m/2/model.test");
    assert_int_equal(mkfifo(path, 0600), 0);
    fx_path(path, sizeof(path), "m/3");
    assert_int_equal(qv_mkdir_p(path), 0);
    fx_path(path, sizeof(path), "m/3/model.test");
    assert_int_equal(symlink("/dev/zero", path), 0);
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(fx_state(e, "m", 2, reason, sizeof(reason)), QV_STATE_UNAVAILABLE);
    assert_non_null(strstr(reason, "not a regular file"));
    assert_int_equal(fx_state(e, "m", 3, reason, sizeof(reason)), QV_STATE_UNAVAILABLE);
    assert_non_null(strstr(reason, "not a regular file"));
    /* The others serve and the repository still reloads. */
    assert_float_equal(fx_infer(e, "m", 1, 4, 2.0f, &err), fx_expect(2.0f, 0, 4, 1.0), 1e-5);
    write_version("m", 4, "{\"features\": 4, \"linear\": true, \"scale\": 2.0}");
    assert_int_equal(qv_engine_sync(e), 0);
    assert_float_equal(fx_infer(e, "m", 4, 4, 2.0f, &err), fx_expect(2.0f, 0, 4, 2.0), 1e-5);
    assert_int_equal(err, 0);
    /* A config.json that is a FIFO is refused, not waited on. */
    fx_path(path, sizeof(path), "m/config.json");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    {
        char sha[QV_SHA256_HEX];
        struct qv_diag d = {{0}};
        fx_path(path, sizeof(path), "m/3/model.test");
        assert_int_equal(qv_sha256_file(path, sha, &d), QV_EIO);
        assert_non_null(strstr(d.msg, "not a regular file"));
    }
    alarm(0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* ---- A model directory that cannot be read ---- */

static char deny_suffix[64];

/* Root runs the tests and permissions do not stop root, so the failure is
 * injected where the repository opens directories. */
static int deny_dir(const char *path)
{
    size_t n = strlen(path), k = strlen(deny_suffix);

    return k && n >= k && strcmp(path + n - k, deny_suffix) == 0 ? EACCES : 0;
}

static void test_unreadable_model_dir_keeps_serving(void **state)
{
    struct qv_model_info info;
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\"}");
    write_version("m", 1, "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    snprintf(deny_suffix, sizeof(deny_suffix), "/m");
    qv_repo_opendir_fault = deny_dir;
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    assert_float_equal(fx_infer(e, "m", 1, 4, 1.0f, &err), fx_expect(1.0f, 0, 4, 1.0), 1e-5);
    assert_int_equal(err, 0);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_non_null(strstr(info.problem, "Permission denied"));
    qv_model_info_free(&info);
    qv_repo_opendir_fault = NULL;
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(fx_state(e, "m", 1, NULL, 0), QV_STATE_READY);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_string_equal(info.problem, "");
    qv_model_info_free(&info);
    /* Really removed: it goes. */
    rm_rel("m");
    assert_int_equal(qv_engine_sync(e), 0);
    fx_infer(e, "m", 1, 4, 1.0f, &err);
    assert_int_not_equal(err, 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* ---- Many versions; removed versions leave ---- */

static void test_newest_versions_kept(void **state)
{
    struct qv_model_info info;
    struct qv_buf text = {0};
    char series[128];
    qv_monitor *mon;
    qv_engine *e;
    int err;

    (void)state;
    fx_repo_new();
    fx_write("many/config.json",
             "{\"backend\": \"test\", \"version_policy\": {\"latest\": {\"num_versions\": 1}}}");
    /* Created newest first: readdir order on tmpfs then lists the oldest first. */
    for (int v = QV_MAX_VERSIONS + 4; v >= 1; v--)
        write_version("many", v, "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    assert_int_equal(qv_engine_model_info(e, "many", &info), 0);
    assert_int_equal(info.n_versions, QV_MAX_VERSIONS);
    assert_int_equal(info.versions[0].version, 5);
    assert_int_equal(info.versions[info.n_versions - 1].version, QV_MAX_VERSIONS + 4);
    assert_int_equal(info.versions[info.n_versions - 1].state, QV_STATE_READY);
    qv_model_info_free(&info);
    fx_infer(e, "many", 0, 4, 1.0f, &err);
    assert_int_equal(err, 0);

    /* The newest removed: the one before serves, and the removed version's
     * series leave /metrics. */
    {
        char rel[64];
        snprintf(rel, sizeof(rel), "many/%d", QV_MAX_VERSIONS + 4);
        rm_rel(rel);
    }
    assert_int_equal(qv_engine_sync(e), 0);
    assert_int_equal(qv_engine_sync(e), 0);
    assert_true(qv_engine_is_ready(e, "many", QV_MAX_VERSIONS + 3));
    assert_false(qv_engine_is_ready(e, "many", QV_MAX_VERSIONS + 4));
    assert_int_equal(qv_monitor_render_prometheus(mon, &text), 0);
    snprintf(series, sizeof(series), "model=\"many\",version=\"%d\"", QV_MAX_VERSIONS + 4);
    assert_null(strstr(text.data ? text.data : "", series));
    snprintf(series, sizeof(series), "model=\"many\",version=\"%d\"", QV_MAX_VERSIONS + 3);
    assert_non_null(strstr(text.data, series));
    qv_buf_free(&text);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* ---- Gauges return to zero when idle ---- */

struct sender {
    qv_engine *e;
    int failed;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;

    for (int i = 0; i < 300; i++) {
        int err;
        fx_infer(s->e, "m", 1, 4, 1.0f, &err);
        s->failed += err != 0;
    }
    return NULL;
}

static void test_queue_gauges_return_to_zero(void **state)
{
    struct sender s[4];
    pthread_t th[4];
    struct qv_vstats_snap snap;
    struct qv_model_info info;
    qv_monitor *mon;
    qv_engine *e;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": 4}");
    write_version("m", 1, "{\"features\": 4, \"linear\": true}");
    e = fx_engine(&mon, 0, 0);
    for (int i = 0; i < 4; i++) {
        s[i].e = e;
        s[i].failed = 0;
        assert_int_equal(pthread_create(&th[i], NULL, sender_main, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].failed, 0);
    }
    {
        qv_vstats *held = qv_monitor_find_hold(mon, "m", 1);
        qv_vstats_snapshot(held, &snap);
        qv_monitor_release(mon, held);
    }
    assert_int_equal(snap.queue_depth, 0);
    assert_int_equal(snap.inflight, 0);
    assert_int_equal(qv_engine_model_info(e, "m", &info), 0);
    assert_int_equal(info.versions[0].queue_depth, 0);
    assert_int_equal(info.versions[0].inflight, 0);
    qv_model_info_free(&info);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_fits_evicts_nothing),
        cmocka_unit_test(test_fifo_and_device_artifacts),
        cmocka_unit_test(test_unreadable_model_dir_keeps_serving),
        cmocka_unit_test(test_newest_versions_kept),
        cmocka_unit_test(test_queue_gauges_return_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
