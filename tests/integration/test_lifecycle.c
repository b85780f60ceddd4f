/* SPDX-License-Identifier: MIT
 *
 * Version lifecycle against the real server: hot add and hot remove under
 * continuous traffic with no failed request, version policies, per-version
 * load and unload, the repository index, a corrupt new version that never
 * takes traffic, and the state kept in SQLite across a restart.
 */
#include "harness.h"

#include "store/store.h"

#define ROW30 "[0.5,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,-1]"
#define GOOD_1ROW                                                                                  \
    "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],\"data\":" ROW30  \
    "}]}"

static void fraud_config(struct h_srv *s, const char *policy)
{
    char cfg[1024];

    snprintf(cfg, sizeof(cfg),
             "{\"backend\": \"xgboost\", \"max_batch_size\": 64,"
             " \"inputs\": [{\"name\": \"features\", \"datatype\": \"FP32\", \"shape\": [-1, 30]}],"
             " \"outputs\": [{\"name\": \"probability\", \"datatype\": \"FP32\", \"shape\": [-1]}],"
             " \"version_policy\": %s}\n",
             policy);
    h_writef(cfg, "%s/fraud/config.json", s->repo);
}

/* Copies fraud/1 to a staging dir the scanner ignores, then renames it into
 * place as version 'v' (one atomic step). 'garbage' makes it a corrupt one. */
static void stage_version(struct h_srv *s, int v, bool garbage)
{
    char from[600], to[600];

    snprintf(from, sizeof(from), "%s/fraud/.staging-%d", s->repo, v);
    snprintf(to, sizeof(to), "%s/fraud/%d", s->repo, v);
    assert_int_equal(h_run("cp -r '%s/fraud/1' '%s'", s->repo, from), 0);
    if (garbage)
        h_writef("{\"learner\": {\"not\": \"a model\"", "%s/model.json", from);
    assert_int_equal(rename(from, to), 0);
}

static void expect_infer(const struct h_srv *s, int v, long status)
{
    char path[128];
    struct h_resp r;

    snprintf(path, sizeof(path), "/v2/models/fraud/versions/%d/infer", v);
    r = h_post(s, path, GOOD_1ROW);
    if (r.status != status)
        fail_msg("%s: expected %ld, got %ld %s", path, status, r.status, r.body);
    h_resp_free(&r);
}

static void test_hot_add_and_remove_under_traffic(void **state)
{
    struct h_srv *s = *state;
    struct h_loop *l;
    char gone[600], cur[600];

    h_copy_examples(s);
    h_start(s, "--poll-ms", "100", NULL);
    l = h_loop_start(s, "/v2/models/fraud/infer", GOOD_1ROW);
    h_loop_wait_version(l, 2, 5);

    /* Added: becomes READY and the default route moves to it. */
    stage_version(s, 3, false);
    h_wait_state(s, "fraud", 3, "READY");
    h_loop_wait_version(l, 3, 20);

    /* Removed: drains, and the default route goes back to 2. */
    snprintf(cur, sizeof(cur), "%s/fraud/3", s->repo);
    snprintf(gone, sizeof(gone), "%s/fraud/.removed-3", s->repo);
    assert_int_equal(rename(cur, gone), 0);
    h_wait_state(s, "fraud", 3, "");
    h_loop_wait_version(l, 2, 20);
    h_loop_stop(l);

    if (atomic_load(&l->failed) != 0)
        fail_msg("%ld of %ld requests failed; first: %s", atomic_load(&l->failed),
                 atomic_load(&l->total), l->first_failure);
    print_message("client loop: %ld requests (v2 %ld, v3 %ld), %ld failed\n",
                  atomic_load(&l->total), atomic_load(&l->by_version[2]),
                  atomic_load(&l->by_version[3]), atomic_load(&l->failed));
    expect_infer(s, 3, 404);
    h_stop_ok(s);
}

static void test_policy_latest_and_specific(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    h_copy_examples(s);
    stage_version(s, 3, false);
    fraud_config(s, "{\"latest\": {\"num_versions\": 2}}");
    h_start(s, NULL);
    h_wait_state(s, "fraud", 3, "READY");
    h_wait_state(s, "fraud", 2, "READY");
    {
        char st[32];
        h_state_of(s, "fraud", 1, st, sizeof(st), NULL, 0);
        assert_string_not_equal(st, "READY");
    }
    expect_infer(s, 1, 503);
    expect_infer(s, 2, 200);
    expect_infer(s, 3, 200);
    h_stop_ok(s);

    /* Same repository, policy specific [1, 3]. */
    fraud_config(s, "{\"specific\": {\"versions\": [1, 3]}}");
    h_start(s, NULL);
    h_wait_state(s, "fraud", 1, "READY");
    h_wait_state(s, "fraud", 3, "READY");
    {
        char st[32];
        h_state_of(s, "fraud", 2, st, sizeof(st), NULL, 0);
        assert_string_not_equal(st, "READY");
    }
    expect_infer(s, 1, 200);
    expect_infer(s, 2, 503);
    expect_infer(s, 3, 200);
    r = h_post(s, "/v2/models/fraud/infer", GOOD_1ROW);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "model_version"), "3");
    h_resp_free(&r);
    h_stop_ok(s);
}

static void test_load_unload_per_version(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *e;
    size_t i;
    int listed = 0;

    h_copy_examples(s);
    h_start(s, "--poll-ms", "100", NULL);

    r = h_post(s, "/v2/repository/models/fraud/versions/1/unload", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_wait_state(s, "fraud", 1, "UNLOADED");
    r = h_post(s, "/v2/models/fraud/versions/1/infer", GOOD_1ROW);
    h_expect_error(&r, 503, "UNLOADED");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/fraud/versions/1/ready");
    assert_int_equal(r.status, 503);
    h_resp_free(&r);
    expect_infer(s, 2, 200);

    /* The index shows every version with its state. */
    r = h_get(s, "/v2/repository/index");
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(r.json));
    json_array_foreach(r.json, i, e) {
        const char *name = h_jstr(e, "name"), *v = h_jstr(e, "version"), *st = h_jstr(e, "state");
        assert_non_null(name);
        assert_non_null(st);
        if (strcmp(name, "fraud") == 0 && strcmp(v, "1") == 0) {
            assert_string_equal(st, "UNLOADED");
            listed++;
        } else if (strcmp(name, "fraud") == 0 && strcmp(v, "2") == 0) {
            assert_string_equal(st, "READY");
            listed++;
        } else if (strcmp(name, "housing") == 0 && strcmp(v, "1") == 0) {
            assert_string_equal(st, "READY");
            listed++;
        }
    }
    assert_int_equal(listed, 3);
    h_resp_free(&r);

    /* An explicit unload sticks across repository rescans (poll is 100 ms). */
    r = h_post(s, "/v2/repository/index", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    expect_infer(s, 1, 503);

    r = h_post(s, "/v2/repository/models/fraud/versions/1/load", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_wait_state(s, "fraud", 1, "READY");
    expect_infer(s, 1, 200);

    /* Whole-model unload and load. */
    r = h_post(s, "/v2/repository/models/housing/unload", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_wait_state(s, "housing", 1, "UNLOADED");
    r = h_post(s, "/v2/models/housing/infer",
               "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,8],"
               "\"data\":[1,2,3,4,5,6,7,8]}]}");
    h_expect_error(&r, 503, "housing");
    h_resp_free(&r);
    r = h_post(s, "/v2/repository/models/housing/load", NULL);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_wait_state(s, "housing", 1, "READY");
    h_stop_ok(s);
}

static void test_corrupt_new_version_takes_no_traffic(void **state)
{
    struct h_srv *s = *state;
    struct h_loop *l;
    char st[32], reason[256];

    h_copy_examples(s);
    fraud_config(s, "{\"latest\": {\"num_versions\": 1}}");
    h_start(s, "--poll-ms", "100", NULL);
    h_wait_state(s, "fraud", 2, "READY");
    l = h_loop_start(s, "/v2/models/fraud/infer", GOOD_1ROW);
    h_loop_wait_version(l, 2, 5);

    stage_version(s, 3, true);
    h_wait_state(s, "fraud", 3, "UNAVAILABLE");
    h_state_of(s, "fraud", 3, st, sizeof(st), reason, sizeof(reason));
    assert_true(strlen(reason) > 0);
    /* Version 2 keeps serving the default route, before and after. */
    h_loop_wait_version(l, 2, 20);
    h_loop_stop(l);
    h_state_of(s, "fraud", 2, st, sizeof(st), NULL, 0);
    assert_string_equal(st, "READY");
    if (atomic_load(&l->failed) != 0)
        fail_msg("%ld of %ld requests failed; first: %s", atomic_load(&l->failed),
                 atomic_load(&l->total), l->first_failure);
    assert_int_equal(atomic_load(&l->by_version[3]), 0);
    expect_infer(s, 3, 503);
    {
        /* UNAVAILABLE waits for a change to the repository: no Retry-After. */
        char v[16];
        struct h_resp r = h_post(s, "/v2/models/fraud/versions/3/infer", GOOD_1ROW);
        assert_int_equal(r.status, 503);
        assert_false(h_header(&r, "Retry-After", v, sizeof(v)));
        h_resp_free(&r);
    }
    h_stop_ok(s);
}

static void test_state_survives_restart(void **state)
{
    struct h_srv *s = *state;
    struct qv_store_version *rows = NULL;
    struct qv_diag d = {{0}};
    qv_store *st = NULL;
    size_t n = 0;
    char url[600], sha2[QV_SHA256_HEX];
    bool seen1 = false, seen2 = false;

    h_copy_examples(s);
    h_start(s, NULL);
    {
        struct h_resp r = h_get(s, "/v2/models/fraud/versions/2");
        assert_int_equal(r.status, 200);
        snprintf(sha2, sizeof(sha2), "%s", h_jstr(h_version_state(r.json, 2), "sha256"));
        assert_int_equal(strlen(sha2), 64);
        h_resp_free(&r);
    }
    h_stop_ok(s);

    /* Version 2 leaves the repository; the server restarts on the same data. */
    assert_int_equal(h_run("rm -rf '%s/fraud/2'", s->repo), 0);
    h_start(s, NULL);
    expect_infer(s, 1, 200);
    h_stop_ok(s);

    snprintf(url, sizeof(url), "sqlite:%s/state.db", s->data);
    assert_int_equal(qv_store_open(url, &st, &d), QV_OK);
    assert_int_equal(qv_store_version_list(st, "fraud", &rows, &n, &d), QV_OK);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].model, "fraud");
        assert_int_equal(strlen(rows[i].sha256), 64);
        if (rows[i].version == 1)
            seen1 = true;
        if (rows[i].version == 2) {
            seen2 = true;
            assert_string_equal(rows[i].sha256, sha2);
        }
    }
    assert_true(seen1);
    assert_true(seen2);
    qv_store_version_free(rows, n);
    qv_store_close(st);
}

/* The fault-injecting test backend is off in a server started without
 * --enable-test-backend: its versions are UNAVAILABLE saying how to turn it
 * on, and the other models serve. */
static void test_test_backend_off_by_default(void **state)
{
    struct h_srv *s = *state;
    char st[32], reason[256];

    h_copy_examples(s);
    h_test_model(s, "faulty", "");
    h_test_version(s, "faulty", 1, "{\"features\": 2, \"fail_rate\": 1.0}");
    s->production = true;
    h_start(s, NULL);
    h_wait_state(s, "faulty", 1, "UNAVAILABLE");
    h_state_of(s, "faulty", 1, st, sizeof(st), reason, sizeof(reason));
    if (strstr(reason, "--enable-test-backend") == NULL)
        fail_msg("reason does not say how to enable the test backend: %s", reason);
    expect_infer(s, 2, 200);
    h_stop_ok(s);

    s->production = false;
    h_start(s, NULL);
    h_wait_state(s, "faulty", 1, "READY");
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_hot_add_and_remove_under_traffic),
    H_TEST(test_policy_latest_and_specific),
    H_TEST(test_load_unload_per_version),
    H_TEST(test_corrupt_new_version_takes_no_traffic),
    H_TEST(test_state_survives_restart),
    H_TEST(test_test_backend_off_by_default),
};

H_MAIN(tests)
