/* SPDX-License-Identifier: MIT
 *
 * Bandit policy: the Beta sampler, Thompson sampling and UCB1 learning the better
 * version from simulated feedback (fixed seeds), and state export/import.
 */
#include <math.h>

#include "router_test.h"
#include "router/router_int.h"

static void test_beta_sampler_moments(void **state)
{
    uint64_t s = 42;
    double sum = 0, sum2 = 0;
    const int n = 20000;

    (void)state;
    /* Beta(2, 5): mean 2/7, variance 10/392. */
    for (int i = 0; i < n; i++) {
        double x = qv__rng_beta(&s, 2.0, 5.0);
        assert_true(x > 0 && x < 1);
        sum += x;
        sum2 += x * x;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    assert_float_equal(mean, 2.0 / 7.0, 0.01);
    assert_float_equal(var, 10.0 / 392.0, 0.003);
    /* Gamma(0.5) through the a < 1 path: mean 0.5. */
    sum = 0;
    for (int i = 0; i < n; i++)
        sum += qv__rng_gamma(&s, 0.5);
    assert_float_equal(sum / n, 0.5, 0.03);
}

/* 2,000 requests; version 1 is right 70% of the time, version 2 90%. Rewards come
 * from a separate fixed-seed stream. Returns the picks of version 2. */
static int simulate(const char *route)
{
    static const int64_t v[] = {1, 2};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    uint64_t world = 7;
    qv_router *r;
    int to2 = 0;

    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    if (qv_router_set_route(r, "m", route, &res, &d) != 0)
        fail_msg("%s", d.msg);
    for (int i = 0; i < 2000; i++) {
        struct qv_pick p;
        assert_int_equal(qv_router_pick(r, "m", NULL, &p), 0);
        assert_int_equal(p.policy, QV_POLICY_BANDIT);
        assert_true(p.version == 1 || p.version == 2);
        double right = p.version == 2 ? 0.9 : 0.7;
        double reward = qv__rng_unit(&world) < right ? 1.0 : 0.0;
        assert_int_equal(qv_router_feedback(r, "m", p.version, reward), 0);
        to2 += p.version == 2;
    }
    qv_router_destroy(r);
    return to2;
}

static void test_thompson_learns(void **state)
{
    int to2;

    (void)state;
    to2 = simulate("{\"policy\": \"bandit\", \"weights\": {\"1\": 50, \"2\": 50},"
                   " \"bandit\": {\"algorithm\": \"thompson\", \"seed\": 1}}");
    print_message("thompson: %d of 2000 picks to version 2\n", to2);
    assert_true(to2 >= 1600);
}

static void test_ucb1_learns(void **state)
{
    int to2;

    (void)state;
    /* UCB1 explores more; it still prefers the better arm clearly. */
    to2 = simulate("{\"policy\": \"bandit\", \"compare\": {\"targets\": [1, 2]},"
                   " \"bandit\": {\"algorithm\": \"ucb1\"}}");
    print_message("ucb1: %d of 2000 picks to version 2\n", to2);
    assert_true(to2 >= 1200);
}

static void test_state_roundtrip(void **state)
{
    static const int64_t v[] = {1, 2};
    struct fake_engine eng;
    struct qv_resolver res;
    struct qv_diag d = {{0}};
    const char *route = "{\"policy\": \"bandit\", \"weights\": {\"1\": 50, \"2\": 50}}";
    qv_router *r;
    char *js = NULL, *js2 = NULL;

    (void)state;
    fake_set(&eng, 2, v);
    res = fake_resolver(&eng);
    r = fake_router(&eng);
    assert_int_equal(qv_router_bandit_state_get(r, "m", &js), QV_ENOENT);
    assert_int_equal(qv_router_feedback(r, "m", 1, 1.0), QV_ENOENT);
    assert_int_equal(qv_router_set_route(r, "m", route, &res, &d), 0);
    assert_int_equal(qv_router_feedback(r, "m", 9, 1.0), QV_ENOENT);
    assert_int_equal(qv_router_feedback(r, "m", 1, 1.0), 0);
    assert_int_equal(qv_router_feedback(r, "m", 2, 0.25), 0);
    assert_int_equal(qv_router_feedback(r, "m", 2, 7.0), 0); /* clamped to 1 */
    assert_int_equal(qv_router_bandit_state_get(r, "m", &js), 0);
    assert_string_equal(js, "{\"algorithm\":\"thompson\",\"arms\":["
                            "{\"version\":1,\"alpha\":2.0,\"beta\":1.0,\"sum\":1.0,\"n\":1},"
                            "{\"version\":2,\"alpha\":2.25,\"beta\":1.75,\"sum\":1.25,\"n\":2}]}");
    /* A label change keeps the arms; a new router imports them. */
    assert_int_equal(qv_router_set_label(r, "m", "x", 1, &res, &d), 0);
    assert_int_equal(qv_router_bandit_state_get(r, "m", &js2), 0);
    assert_string_equal(js, js2);
    free(js2);
    qv_router_destroy(r);

    r = fake_router(&eng);
    assert_int_equal(qv_router_set_route(r, "m", route, &res, &d), 0);
    assert_int_equal(qv_router_bandit_state_set(r, "m", js, &d), 0);
    assert_int_equal(qv_router_bandit_state_get(r, "m", &js2), 0);
    assert_string_equal(js, js2);
    free(js2);
    assert_int_equal(qv_router_bandit_state_set(r, "m", "{\"arms\": [{\"version\": 1}]}", &d),
                     QV_EINVAL);
    assert_string_equal(d.msg,
                        "arms[0]: expected {version > 0, alpha > 0, beta > 0, sum >= 0, n >= 0}");
    /* A new route that keeps version 2 keeps its statistics. */
    assert_int_equal(qv_router_set_route(r, "m",
                                         "{\"policy\": \"bandit\","
                                         " \"weights\": {\"2\": 50, \"1\": 50}}",
                                         &res, &d),
                     0);
    assert_int_equal(qv_router_bandit_state_get(r, "m", &js2), 0);
    assert_non_null(strstr(js2, "{\"version\":2,\"alpha\":2.25,\"beta\":1.75"));
    free(js2);
    free(js);
    qv_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beta_sampler_moments),
        cmocka_unit_test(test_thompson_learns),
        cmocka_unit_test(test_ucb1_learns),
        cmocka_unit_test(test_state_roundtrip),
    };
    qv_log_set_level(QV_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
