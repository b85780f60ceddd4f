/* SPDX-License-Identifier: MIT
 *
 * Route documents: every validation error names its field; canonical JSON parses
 * back to the same document; READY validation goes through the resolver.
 */
#include "router_test.h"

static struct fake_engine eng;

static int setup(void **state)
{
    static const int64_t v[] = {1, 2, 3};

    (void)state;
    fake_set(&eng, 3, v);
    return 0;
}

/* Parse 'json' expecting QV_EINVAL with a diag starting with 'prefix'. */
static void expect_error(const char *json, const char *prefix)
{
    struct qv_resolver res = fake_resolver(&eng);
    struct qv_diag d = {{0}};
    qv_route *rt = NULL;
    int err = qv_route_parse(json, "fraud", &res, &rt, &d);

    if (err != QV_EINVAL || strncmp(d.msg, prefix, strlen(prefix)) != 0)
        fail_msg("json=%s err=%d diag=\"%s\" expected prefix \"%s\"", json, err, d.msg, prefix);
    assert_null(rt);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    expect_error("{\"policy\": \"random\"}", "policy: unknown policy");
    expect_error("{\"weights\": {\"1\": 100}}", "policy: required");
    expect_error("[1]", "route: expected a JSON object");
    expect_error("{\"policy\": ", "route: invalid JSON");
    expect_error("{\"policy\": \"weighted\", \"weights\": {\"1\": 90, \"2\": 5}}",
                 "weights: sum is 95, expected 100");
    expect_error("{\"policy\": \"weighted\", \"labels\": {\"stable\": 1},"
                 " \"weights\": {\"stable\": 90, \"canary\": 10}}",
                 "weights.canary: unknown label");
    expect_error("{\"policy\": \"weighted\", \"weights\": {\"1\": 110, \"2\": -10}}",
                 "weights.1: weight above 100");
    expect_error("{\"policy\": \"weighted\", \"weights\": {\"2\": -10, \"1\": 110}}",
                 "weights.2: negative weight");
    expect_error("{\"policy\": \"weighted\", \"weights\": {\"1\": \"x\"}}",
                 "weights.1: expected a number");
    expect_error("{\"policy\": \"weighted\"}", "weights: required by policy weighted");
    expect_error("{\"policy\": \"weighted\", \"weights\": {}}", "weights: empty");
    expect_error("{\"policy\": \"pinned\", \"weights\": {\"1\": 100}}",
                 "target: required by policy pinned");
    expect_error("{\"policy\": \"pinned\", \"target\": 0}", "target: version must be");
    expect_error("{\"policy\": \"pinned\", \"target\": \"x y\"}", "target: \"x y\" is neither");
    expect_error("{\"policy\": \"pinned\", \"target\": 1, \"color\": 2}", "color: unknown key");
    expect_error("{\"policy\": \"sticky\", \"weights\": {\"1\": 100}}",
                 "sticky: required by policy sticky");
    expect_error("{\"policy\": \"sticky\", \"weights\": {\"1\": 100}, \"sticky\": {}}",
                 "sticky: expected exactly one of header, parameter");
    expect_error("{\"policy\": \"sticky\", \"weights\": {\"1\": 100},"
                 " \"sticky\": {\"cookie\": \"u\"}}",
                 "sticky.cookie: unknown key");
    expect_error("{\"policy\": \"pinned\", \"target\": 1,"
                 " \"shadow\": [{\"target\": 2, \"percent\": 150}]}",
                 "shadow[0].percent: must be between 0 and 100");
    expect_error("{\"policy\": \"pinned\", \"target\": 1,"
                 " \"shadow\": [{\"target\": 2}, {\"target\": 3, \"percent\": -1}]}",
                 "shadow[1].percent: must be between 0 and 100");
    expect_error("{\"policy\": \"pinned\", \"target\": 1, \"shadow\": [{\"percent\": 5}]}",
                 "shadow[0].target: required");
    expect_error("{\"policy\": \"pinned\", \"target\": 1,"
                 " \"shadow\": [{\"target\": 2, \"pct\": 5}]}",
                 "shadow[0].pct: unknown key");
    expect_error("{\"policy\": \"compare\", \"compare\": {\"targets\": [1, 2],"
                 " \"select\": \"loudest\"}}",
                 "compare.select: expected first, mean, majority or best_score");
    expect_error("{\"policy\": \"compare\", \"compare\": {\"targets\": []}}",
                 "compare.targets: expected a non-empty array");
    expect_error("{\"policy\": \"compare\", \"compare\": {\"targets\": [1, \"beta\"]}}",
                 "compare.targets[1]: unknown label");
    expect_error("{\"policy\": \"compare\", \"compare\": {\"targets\": [1, \"1\"]}}",
                 "compare.targets[1]: version 1 is also compare.targets[0]");
    expect_error("{\"policy\": \"score\", \"weights\": {\"1\": 50, \"2\": 50},"
                 " \"score\": {\"w_latency\": -1}}",
                 "score.w_latency: must be between");
    expect_error("{\"policy\": \"score\", \"weights\": {\"1\": 50, \"2\": 50},"
                 " \"score\": {\"latency_slo\": 5}}",
                 "score.latency_slo: unknown key");
    expect_error("{\"policy\": \"score\", \"weights\": {\"1\": 50, \"2\": 50},"
                 " \"score\": {\"min_weight\": 60}}",
                 "score.min_weight: 2 versions x 60 exceeds 100");
    expect_error("{\"policy\": \"bandit\", \"weights\": {\"1\": 50, \"2\": 50},"
                 " \"bandit\": {\"algorithm\": \"greedy\"}}",
                 "bandit.algorithm: expected thompson or ucb1");
    expect_error("{\"policy\": \"bandit\"}", "weights: policy bandit needs its arms");
    expect_error("{\"policy\": \"weighted\", \"labels\": {\"stable\": 1},"
                 " \"weights\": {\"stable\": 50, \"1\": 50}}",
                 "weights.1: version 1 is also weights.stable");
    expect_error("{\"policy\": \"default\", \"labels\": {\"7up\": 1}}", "labels.7up: a label");
    expect_error("{\"policy\": \"default\", \"labels\": {\"stable\": -1}}",
                 "labels.stable: expected a positive version number");
    /* READY validation through the resolver. */
    expect_error("{\"policy\": \"weighted\", \"weights\": {\"1\": 90, \"9\": 10}}",
                 "weights.9: version 9 of model fraud is not READY");
    expect_error("{\"policy\": \"pinned\", \"labels\": {\"next\": 9}, \"target\": \"next\"}",
                 "target: version 9 of model fraud is not READY");
}

static void test_not_ready_is_fine_without_resolver(void **state)
{
    struct qv_diag d = {{0}};
    qv_route *rt = NULL;

    (void)state;
    assert_int_equal(
        qv_route_parse("{\"policy\": \"pinned\", \"target\": 9}", "fraud", NULL, &rt, &d), 0);
    assert_int_equal(qv_route_policy(rt), QV_POLICY_PINNED);
    qv_route_free(rt);
}

static void roundtrip(const char *json, const char *canonical)
{
    struct qv_resolver res = fake_resolver(&eng);
    struct qv_diag d = {{0}};
    qv_route *rt = NULL, *rt2 = NULL;
    char *out = NULL, *out2 = NULL;

    if (qv_route_parse(json, "fraud", &res, &rt, &d) != 0)
        fail_msg("json=%s diag=%s", json, d.msg);
    assert_int_equal(qv_route_to_json(rt, &out), 0);
    assert_string_equal(out, canonical);
    assert_int_equal(qv_route_parse(out, "fraud", &res, &rt2, &d), 0);
    assert_int_equal(qv_route_to_json(rt2, &out2), 0);
    assert_string_equal(out2, canonical);
    free(out);
    free(out2);
    qv_route_free(rt);
    qv_route_free(rt2);
}

static void test_canonical_json(void **state)
{
    (void)state;
    roundtrip("{\"weights\": {\"stable\": 90, \"canary\": 10.0}, \"policy\": \"weighted\","
              " \"labels\": {\"stable\": 1, \"canary\": \"2\"},"
              " \"shadow\": [{\"target\": 3, \"percent\": 100}]}",
              "{\"policy\":\"weighted\",\"labels\":{\"stable\":1,\"canary\":2},"
              "\"weights\":{\"stable\":90,\"canary\":10},"
              "\"shadow\":[{\"target\":\"3\",\"percent\":100}]}");
    /* Thirds keep a sum of exactly 100 at two decimals. */
    roundtrip("{\"policy\": \"weighted\","
              " \"weights\": {\"1\": 33.3333333, \"2\": 33.3333333, \"3\": 33.3333334}}",
              "{\"policy\":\"weighted\",\"weights\":{\"1\":33.33,\"2\":33.33,\"3\":33.34}}");
    roundtrip("{\"policy\": \"sticky\", \"weights\": {\"1\": 50, \"2\": 50},"
              " \"sticky\": {\"parameter\": \"user_id\"}}",
              "{\"policy\":\"sticky\",\"weights\":{\"1\":50,\"2\":50},"
              "\"sticky\":{\"parameter\":\"user_id\"}}");
    roundtrip("{\"policy\": \"pinned\", \"target\": \"2\"}",
              "{\"policy\":\"pinned\",\"target\":\"2\"}");
    roundtrip("{\"policy\": \"compare\", \"compare\": {\"targets\": [\"1\", 2, 3],"
              " \"select\": \"best_score\"}}",
              "{\"policy\":\"compare\",\"compare\":{\"targets\":[\"1\",\"2\",\"3\"],"
              "\"select\":\"best_score\"}}");
    roundtrip("{\"policy\": \"score\", \"weights\": {\"1\": 50, \"2\": 50},"
              " \"score\": {\"w_latency\": 0.5, \"w_resource\": 0.3, \"w_error\": 0.2,"
              " \"latency_slo_ms\": 5, \"min_weight\": 2}}",
              "{\"policy\":\"score\",\"weights\":{\"1\":50,\"2\":50},\"score\":"
              "{\"w_latency\":0.5,\"w_resource\":0.3,\"w_error\":0.2,\"latency_slo_ms\":5.0,"
              "\"min_weight\":2.0,\"min_requests\":20,\"threshold\":1.0,\"step\":0.5}}");
    roundtrip("{\"policy\": \"bandit\", \"weights\": {\"1\": 50, \"2\": 50},"
              " \"bandit\": {\"algorithm\": \"ucb1\", \"seed\": 7}}",
              "{\"policy\":\"bandit\",\"weights\":{\"1\":50,\"2\":50},"
              "\"bandit\":{\"algorithm\":\"ucb1\",\"seed\":7}}");
}

/* The example of docs/routing.md parses. */
static void test_full_example(void **state)
{
    const char *json =
        "{\"policy\": \"weighted\",\n"
        " \"labels\": {\"stable\": 1, \"canary\": 2},\n"
        " \"weights\": {\"stable\": 90, \"canary\": 10},\n"
        " \"sticky\": {\"header\": \"X-User-Id\"},\n"
        " \"shadow\": [{\"target\": \"3\", \"percent\": 100}],\n"
        " \"score\": {\"w_latency\": 0.5, \"w_resource\": 0.3, \"w_error\": 0.2,"
        " \"latency_slo_ms\": 5, \"min_weight\": 2},\n"
        " \"compare\": {\"targets\": [\"1\", \"2\", \"3\"], \"select\": \"best_score\"}}";
    struct qv_resolver res = fake_resolver(&eng);
    struct qv_diag d = {{0}};
    qv_route *rt = NULL;

    (void)state;
    if (qv_route_parse(json, "fraud", &res, &rt, &d) != 0)
        fail_msg("%s", d.msg);
    assert_int_equal(qv_route_policy(rt), QV_POLICY_WEIGHTED);
    qv_route_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_not_ready_is_fine_without_resolver),
        cmocka_unit_test(test_canonical_json),
        cmocka_unit_test(test_full_example),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
