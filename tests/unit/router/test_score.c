/* SPDX-License-Identifier: MIT
 *
 * Score policy: the terms of P, weights that move toward the faster, error-free
 * version, the min_weight floor, hysteresis (min_requests and threshold) and the
 * damped step; and the router publishing the new weights.
 */
#include <math.h>

#include "router_test.h"

static struct qv_score_cfg cfg(void)
{
    struct qv_score_cfg c;

    qv_score_cfg_default(&c);
    c.w_latency = 0.5;
    c.w_resource = 0.3;
    c.w_error = 0.2;
    c.latency_slo_ms = 5;
    c.min_weight = 2;
    c.min_requests = 100;
    c.threshold = 1;
    c.step = 0.5;
    return c;
}

static struct qv_window win(uint64_t requests, double p95, double err_rate, double cpu,
                            uint64_t mem)
{
    struct qv_window w = {.seconds = 10,
                          .requests = requests,
                          .p95_ms = p95,
                          .error_rate = err_rate,
                          .cpu_ms_per_req = cpu,
                          .memory_bytes = mem};
    w.errors = (uint64_t)(err_rate * requests);
    w.ok = requests - w.errors;
    return w;
}

static void test_terms(void **state)
{
    struct qv_score_cfg c = cfg();
    struct qv_window w[2] = {win(1000, 10, 0.1, 3, 300), win(1000, 2.5, 0, 1, 100)};
    struct qv_score_terms t[2];

    (void)state;
    qv_score_compute(&c, w, 2, t);
    assert_float_equal(t[0].t, 2.0, 1e-12); /* 10 / 5 */
    assert_float_equal(t[1].t, 0.5, 1e-12);
    /* cpu shares 0.75 / 0.25, memory shares 0.75 / 0.25: R = 2 * share. */
    assert_float_equal(t[0].r, 1.5, 1e-12);
    assert_float_equal(t[1].r, 0.5, 1e-12);
    assert_float_equal(t[0].e, 0.1, 1e-12);
    assert_float_equal(t[1].e, 0.0, 1e-12);
    assert_float_equal(t[0].p, 0.5 * 2 + 0.3 * 1.5 + 0.2 * 0.1, 1e-12);
    assert_float_equal(t[1].p, 0.5 * 0.5 + 0.3 * 0.5, 1e-12);
    assert_int_equal(t[0].requests, 1000);
    /* Nothing measured: equal shares, R = 1. */
    struct qv_window z[3] = {win(0, 0, 0, 0, 0), win(0, 0, 0, 0, 0), win(0, 0, 0, 0, 0)};
    struct qv_score_terms tz[3];
    qv_score_compute(&c, z, 3, tz);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(tz[i].r, 1.0, 1e-12);
        assert_float_equal(tz[i].p, 0.3, 1e-12);
    }
}

static void test_moves_toward_better(void **state)
{
    struct qv_score_cfg c = cfg();
    /* v0 slow and failing, v1 fast and clean. */
    struct qv_window w[2] = {win(1000, 10, 0.2, 2, 100), win(1000, 2, 0, 2, 100)};
    struct qv_score_terms t[2];
    double cur[2] = {50, 50}, next[2];

    (void)state;
    qv_score_compute(&c, w, 2, t);
    assert_true(t[1].p < t[0].p);
    assert_true(qv_score_next_weights(&c, t, cur, 2, next));
    assert_true(next[1] > 50 && next[0] < 50);
    assert_float_equal(next[0] + next[1], 100, 1e-9);
    /* Half way to the 1/P target: target_1 = 100 * (1/P1) / (1/P0 + 1/P1). */
    double tgt1 = 100 * (1 / t[1].p) / (1 / t[0].p + 1 / t[1].p);
    assert_float_equal(next[1], round((50 + 0.5 * (tgt1 - 50)) * 100) / 100, 0.011);
    /* Repeating converges to the target, never past it. */
    for (int i = 0; i < 20; i++) {
        cur[0] = next[0];
        cur[1] = next[1];
        qv_score_next_weights(&c, t, cur, 2, next);
    }
    assert_float_equal(next[1], tgt1, 1.0 + 0.01);
}

static void test_min_weight_floor(void **state)
{
    struct qv_score_cfg c = cfg();
    /* v0 is terrible: its 1/P share is far below 2 points. */
    struct qv_window w[3] = {win(1000, 5000, 1.0, 50, 1000), win(1000, 1, 0, 1, 10),
                             win(1000, 1.2, 0, 1, 10)};
    struct qv_score_terms t[3];
    double cur[3] = {0, 50, 50}, next[3];

    (void)state;
    c.step = 1.0;
    qv_score_compute(&c, w, 3, t);
    assert_true(qv_score_next_weights(&c, t, cur, 3, next));
    assert_float_equal(next[0], 2.0, 1e-9);
    assert_true(next[1] > next[2]);
    assert_float_equal(next[0] + next[1] + next[2], 100, 1e-9);
    /* Damped steps still respect the floor, also from 0. */
    c.step = 0.1;
    cur[0] = 0;
    cur[1] = 50;
    cur[2] = 50;
    assert_true(qv_score_next_weights(&c, t, cur, 3, next));
    assert_true(next[0] >= 2.0 - 1e-9);
    assert_float_equal(next[0] + next[1] + next[2], 100, 1e-9);
}

static void test_hysteresis(void **state)
{
    struct qv_score_cfg c = cfg();
    struct qv_window w[2] = {win(1000, 10, 0.2, 2, 100), win(99, 2, 0, 2, 100)};
    struct qv_score_terms t[2];
    double cur[2] = {50, 50}, next[2];

    (void)state;
    /* Too few requests for one version: nothing moves. */
    qv_score_compute(&c, w, 2, t);
    assert_false(qv_score_next_weights(&c, t, cur, 2, next));
    assert_float_equal(next[0], 50, 0);
    assert_float_equal(next[1], 50, 0);
    /* Enough requests but nearly equal versions: the target is within the threshold. */
    w[0] = win(1000, 2.0, 0, 2, 100);
    w[1] = win(1000, 2.05, 0, 2, 100);
    qv_score_compute(&c, w, 2, t);
    assert_false(qv_score_next_weights(&c, t, cur, 2, next));
    assert_float_equal(next[0], 50, 0);
    /* A lower threshold lets the same difference move. */
    c.threshold = 0.1;
    assert_true(qv_score_next_weights(&c, t, cur, 2, next));
    assert_true(next[0] > 50);
}

static void test_router_publishes_weights(void **state)
{
    static const int64_t v[] = {1, 2};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    struct qv_score_terms got[4];
    struct qv_pick p;
    qv_router *r;
    char *json = NULL;
    int64_t versions[2] = {1, 2};
    struct qv_window w[2] = {win(1000, 10, 0.2, 2, 100), win(1000, 2, 0, 2, 100)};
    int c2 = 0;

    (void)state;
    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    /* Without a route, scores are kept for the stats endpoint. */
    assert_int_equal(qv_router_update_scores(r, "m", versions, w, 2), 0);
    assert_int_equal(qv_router_get_scores(r, "m", got, 4), 2);
    assert_int_equal(qv_router_get_scores(r, "other", got, 4), 0);
    assert_int_equal(qv_router_set_route(r, "m",
                                         "{\"policy\": \"score\","
                                         " \"weights\": {\"1\": 50, \"2\": 50},"
                                         " \"score\": {\"latency_slo_ms\": 5, \"min_weight\": 2,"
                                         " \"min_requests\": 100, \"step\": 1}}",
                                         &res, &d),
                     0);
    assert_int_equal(qv_router_update_scores(r, "m", versions, w, 2), 0);
    assert_int_equal(qv_router_get_scores(r, "m", got, 4), 2);
    assert_int_equal(got[0].version, 1);
    assert_true(got[1].p < got[0].p);
    assert_int_equal(qv_router_get_route(r, "m", &json), 0);
    /* The document shows the new weights, and they parse back (sum exactly 100). */
    assert_int_equal(qv_router_set_route(r, "m", json, &res, &d), 0);
    free(json);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(qv_router_pick(r, "m", NULL, &p), 0);
        c2 += p.version == 2;
    }
    double tgt2 = 100 * (1 / got[1].p) / (1 / got[0].p + 1 / got[1].p);
    assert_in_range(c2, (int)(tgt2 * 100) - 150, (int)(tgt2 * 100) + 150);
    qv_router_destroy(r);
}

/* Many versions: the scores kept are capped, the route's versions first. */
static void test_many_versions(void **state)
{
    static const int64_t v[] = {40, 41};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    struct qv_score_terms got[64];
    struct qv_window w[41];
    int64_t versions[41];
    qv_router *r;

    (void)state;
    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    assert_int_equal(qv_router_set_route(r, "m",
                                         "{\"policy\": \"weighted\","
                                         " \"weights\": {\"40\": 50, \"41\": 50}}",
                                         &res, &d),
                     0);
    for (int i = 0; i < 41; i++) {
        versions[i] = i + 1;
        w[i] = win(100, 1 + i, 0, 1, 1);
    }
    assert_int_equal(qv_router_update_scores(r, "m", versions, w, 41), 0);
    assert_int_equal(qv_router_get_scores(r, "m", got, 64), QV_ROUTER_MAX_SCORES);
    assert_int_equal(got[0].version, 40);
    assert_int_equal(got[1].version, 41);
    assert_int_equal(got[2].version, 1);
    assert_int_equal(qv_router_update_scores(r, "m", versions, w, -1), QV_EINVAL);
    qv_router_destroy(r);
}

/* Publishing a snapshot on every tick must not restart the round-robin: with one
 * request per tick a 90/10 route still sends about 10% to the canary. */
static void test_frequent_publish_keeps_shares(void **state)
{
    static const int64_t v[] = {1, 2};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    struct qv_pick p;
    qv_router *r;
    int64_t versions[2] = {1, 2};
    struct qv_window w[2] = {win(10, 2, 0, 1, 1), win(10, 2, 0, 1, 1)};
    int c2 = 0;

    (void)state;
    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    assert_int_equal(qv_router_set_route(r, "m",
                                         "{\"policy\": \"weighted\","
                                         " \"weights\": {\"1\": 90, \"2\": 10}}",
                                         &res, &d),
                     0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(qv_router_update_scores(r, "m", versions, w, 2), 0);
        assert_int_equal(qv_router_pick(r, "m", NULL, &p), 0);
        c2 += p.version == 2;
    }
    assert_int_equal(c2, 100); /* exact: the cycle of 10 continues across snapshots */
    qv_router_destroy(r);
}

/* A node that does not run the controller keeps the route's weights (move false):
 * the scores are kept, the weights stay 50/50; the controller node (move true) moves them. */
static void test_no_move_off_controller(void **state)
{
    static const int64_t v[] = {1, 2};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    struct qv_score_terms got[4];
    qv_router *r;
    char *before = NULL, *after = NULL;
    int64_t versions[2] = {1, 2};
    struct qv_window w[2] = {win(1000, 10, 0.2, 2, 100), win(1000, 2, 0, 2, 100)};
    bool moved = true;

    (void)state;
    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    assert_int_equal(qv_router_set_route(r, "m",
                                         "{\"policy\": \"score\","
                                         " \"weights\": {\"1\": 50, \"2\": 50},"
                                         " \"score\": {\"latency_slo_ms\": 5, \"min_weight\": 2,"
                                         " \"min_requests\": 100, \"step\": 1}}",
                                         &res, &d),
                     0);
    assert_int_equal(qv_router_get_route(r, "m", &before), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(qv_router_update_scores_ex(r, "m", versions, w, 2, false, &moved), 0);
        assert_false(moved);
    }
    assert_int_equal(qv_router_get_scores(r, "m", got, 4), 2);
    assert_int_equal(qv_router_get_route(r, "m", &after), 0);
    assert_string_equal(before, after);
    free(after);
    after = NULL;
    assert_int_equal(qv_router_update_scores_ex(r, "m", versions, w, 2, true, &moved), 0);
    assert_true(moved);
    assert_int_equal(qv_router_get_route(r, "m", &after), 0);
    assert_string_not_equal(before, after);
    free(before);
    free(after);
    qv_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_moves_toward_better),
        cmocka_unit_test(test_min_weight_floor),
        cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_router_publishes_weights),
        cmocka_unit_test(test_frequent_publish_keeps_shares),
        cmocka_unit_test(test_many_versions),
        cmocka_unit_test(test_no_move_off_controller),
    };
    qv_log_set_level(QV_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
