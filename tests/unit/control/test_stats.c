/* SPDX-License-Identifier: MIT
 *
 * The rollout's pure half: the two-proportion z-test on known numbers, the
 * plan parser (defaults and every kind of bad input naming its field), guard
 * evaluation and step decisions from made-up windows, and alert rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/control_int.h"

/* ---- Statistics ---- */

static void test_z_known(void **state)
{
    (void)state;
    /* 20/100 against 10/100: pooled p 0.15, se sqrt(0.15 * 0.85 * 0.02). */
    assert_float_equal(qv_two_prop_z(20, 100, 10, 100), 1.9802950859533488, 1e-12);
    assert_float_equal(qv_two_prop_z(100, 500, 10, 9500), 41.571004176608845, 1e-9);
    assert_float_equal(qv_two_prop_z(6, 500, 40, 9500), 2.5088643778414452, 1e-12);
    assert_float_equal(qv_two_prop_z(3, 100, 2, 100), 0.45291081365783825, 1e-12);
    /* Symmetric, and zero without data or without variance. */
    assert_float_equal(qv_two_prop_z(10, 100, 20, 100), -1.9802950859533488, 1e-12);
    assert_float_equal(qv_two_prop_z(0, 100, 0, 100), 0.0, 0);
    assert_float_equal(qv_two_prop_z(100, 100, 50, 50), 0.0, 0);
    assert_float_equal(qv_two_prop_z(5, 0, 1, 100), 0.0, 0);
}

static void test_normal_sf(void **state)
{
    (void)state;
    assert_float_equal(qv_normal_sf(0), 0.5, 1e-15);
    assert_float_equal(qv_normal_sf(1.959963984540054), 0.025, 1e-12);
    assert_float_equal(qv_normal_sf(1.9802950859533488), 0.02383519032808072, 1e-12);
    assert_float_equal(qv_normal_sf(-1.959963984540054), 0.975, 1e-12);
    assert_true(qv_normal_sf(40) < 1e-300 || qv_normal_sf(40) == 0);
}

/* ---- Plans ---- */

static void test_plan_defaults(void **state)
{
    struct qv_rollout_plan p;
    struct qv_diag d = {{0}};

    (void)state;
    assert_int_equal(qv_rollout_plan_parse("{\"canary\": 2}", &p, &d), QV_OK);
    assert_int_equal(p.canary, 2);
    assert_int_equal(p.n_steps, 4);
    assert_float_equal(p.steps[0], 5, 0);
    assert_float_equal(p.steps[3], 100, 0);
    assert_float_equal(p.step_seconds, 60, 0);
    assert_int_equal(p.min_requests, 500);
    assert_float_equal(p.max_error_rate_delta, 0.01, 0);
    assert_float_equal(p.max_p99_ratio, 1.5, 0);
    assert_float_equal(p.alpha, 0.05, 0);
    assert_false(p.has_min_shadow_agreement);

    assert_int_equal(qv_rollout_plan_parse(
                         "{\"canary\": \"3\", \"steps\": [10, 100], \"step_seconds\": 1, "
                         "\"min_requests\": 20, \"guards\": {\"max_error_rate_delta\": 0.05, "
                         "\"max_p99_ratio\": 2, \"min_shadow_agreement\": 0.98, \"alpha\": 0.01}}",
                         &p, &d),
                     QV_OK);
    assert_int_equal(p.canary, 3);
    assert_int_equal(p.n_steps, 2);
    assert_float_equal(p.step_seconds, 1, 0);
    assert_int_equal(p.min_requests, 20);
    assert_true(p.has_min_shadow_agreement);
    assert_float_equal(p.min_shadow_agreement, 0.98, 0);
    assert_float_equal(p.alpha, 0.01, 0);

    /* The canonical JSON parses back to the same plan. */
    {
        struct qv_rollout_plan q;
        char *text = qv_rollout_plan_json(&p);
        assert_int_equal(qv_rollout_plan_parse(text, &q, &d), QV_OK);
        assert_memory_equal(&p, &q, sizeof(p));
        free(text);
    }
}

static void expect_bad(const char *json, const char *needle)
{
    struct qv_rollout_plan p;
    struct qv_diag d = {{0}};

    memset(&p, 0x5a, sizeof(p));
    if (qv_rollout_plan_parse(json, &p, &d) != QV_EINVAL)
        fail_msg("accepted: %s", json);
    if (strstr(d.msg, needle) == NULL)
        fail_msg("message \"%s\" does not name \"%s\" (input %s)", d.msg, needle, json);
    /* Nothing was written. */
    assert_int_equal(p.n_steps, 0x5a5a5a5a);
}

static void test_plan_bad(void **state)
{
    (void)state;
    expect_bad("", "body");
    expect_bad("[1]", "body");
    expect_bad("{}", "canary");
    expect_bad("{\"canary\": 0}", "canary");
    expect_bad("{\"canary\": \"two\"}", "canary");
    expect_bad("{\"canary\": 2, \"steps\": []}", "steps: empty");
    expect_bad("{\"canary\": 2, \"steps\": 5}", "steps");
    expect_bad("{\"canary\": 2, \"steps\": [5, 5, 100]}", "steps[1]");
    expect_bad("{\"canary\": 2, \"steps\": [50, 25]}", "steps[1]");
    expect_bad("{\"canary\": 2, \"steps\": [0.5, 100]}", "steps[0]");
    expect_bad("{\"canary\": 2, \"steps\": [5, 101]}", "steps[1]");
    expect_bad("{\"canary\": 2, \"steps\": [\"5\"]}", "steps[0]");
    expect_bad("{\"canary\": 2, \"step_seconds\": 0}", "step_seconds");
    expect_bad("{\"canary\": 2, \"min_requests\": 0}", "min_requests");
    expect_bad("{\"canary\": 2, \"min_requests\": 1.5}", "min_requests");
    expect_bad("{\"canary\": 2, \"guards\": []}", "guards");
    expect_bad("{\"canary\": 2, \"guards\": {\"max_error_rate_delta\": 2}}",
               "guards.max_error_rate_delta");
    expect_bad("{\"canary\": 2, \"guards\": {\"max_p99_ratio\": 0}}", "guards.max_p99_ratio");
    expect_bad("{\"canary\": 2, \"guards\": {\"min_shadow_agreement\": -0.1}}",
               "guards.min_shadow_agreement");
    expect_bad("{\"canary\": 2, \"guards\": {\"alpha\": 0.9}}", "guards.alpha");
    expect_bad("{\"canary\": 2, \"guards\": {\"max_latency\": 3}}",
               "guards.max_latency: unknown key");
    expect_bad("{\"canary\": 2, \"stepz\": [5]}", "stepz: unknown key");
    expect_bad("{\"canary\": 2, \"canary\": 3}", "body");
}

/* ---- Decisions ---- */

static struct qv_rollout_plan plan(void)
{
    struct qv_rollout_plan p;
    struct qv_diag d = {{0}};

    assert_int_equal(qv_rollout_plan_parse("{\"canary\": 2, \"steps\": [5, 50, 100], "
                                           "\"step_seconds\": 60, \"min_requests\": 100}",
                                           &p, &d),
                     QV_OK);
    return p;
}

static struct qv_window win(uint64_t requests, uint64_t errors, double p99)
{
    struct qv_window w;

    memset(&w, 0, sizeof(w));
    w.seconds = 30;
    w.requests = requests;
    w.errors = errors;
    w.ok = requests - errors;
    w.error_rate = requests ? (double)errors / (double)requests : 0;
    w.latency_count = requests;
    w.p99_ms = p99;
    return w;
}

static void test_decide_waits_for_requests(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    /* A terrible canary, but only 99 requests: noise does not decide. */
    o.elapsed_s = 600;
    o.canary = win(99, 99, 500);
    o.stable = win(2000, 0, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.enough);
    assert_non_null(strstr(v.reason, "min_requests"));
}

static void test_decide_error_breach(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 5; /* long before the end of the step: a breach acts at once */
    o.canary = win(100, 20, 5);
    o.stable = win(1900, 19, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
    assert_true(v.f.error_breach);
    assert_false(v.f.p99_breach);
    assert_float_equal(v.f.canary_error_rate, 0.2, 1e-12);
    assert_float_equal(v.f.stable_error_rate, 0.01, 1e-12);
    assert_float_equal(v.f.z, qv_two_prop_z(20, 100, 19, 1900), 1e-12);
    assert_true(v.f.p_value < 0.05);
    assert_string_equal(v.f.stable_source, "step");
    assert_non_null(strstr(v.reason, "error_rate: canary 0.2000 vs stable 0.0100"));
}

static void test_decide_error_not_significant_or_small(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 5;
    /* Delta 0.02 > 0.01 but 3/100 against 1/100 is not significant: no breach. */
    o.canary = win(100, 3, 5);
    o.stable = win(100, 1, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.error_breach);
    assert_true(v.f.p_value > 0.05);
    /* Significant (many requests) but the delta 0.004 is within 0.01: no breach. */
    o.canary = win(100000, 500, 5);
    o.stable = win(100000, 100, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_true(v.f.p_value < 1e-6);
    assert_false(v.f.error_breach);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
}

static void test_decide_p99(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 5;
    o.canary = win(100, 0, 10);
    o.stable = win(1900, 0, 4);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
    assert_true(v.f.p99_breach);
    assert_float_equal(v.f.p99_ratio, 2.5, 1e-12);
    assert_non_null(
        strstr(v.reason, "p99: canary 10.000 ms vs stable 4.000 ms, ratio 2.50 > 1.50"));
    /* 1.4x passes. */
    o.canary = win(100, 0, 5.6);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_true(v.f.p99_evaluated);
    assert_false(v.f.p99_breach);
}

static void test_decide_shadow(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    p.has_min_shadow_agreement = true;
    p.min_shadow_agreement = 0.98;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 5;
    o.canary = win(100, 0, 5);
    o.stable = win(1900, 0, 5);
    /* Too few comparisons: not evaluated. */
    o.agree_n = 50;
    o.agree_count = 10;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.agreement_breach);
    o.agree_n = 1000;
    o.agree_count = 950;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
    assert_true(v.f.agreement_breach);
    assert_float_equal(v.f.agreement, 0.95, 1e-12);
    o.agree_count = 990;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
}

static void test_decide_steps(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.canary = win(150, 1, 5);
    o.stable = win(2850, 20, 5);
    o.elapsed_s = 59.9;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    o.elapsed_s = 60;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_NEXT);
    qv_rollout_decide(&p, 1, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_NEXT);
    qv_rollout_decide(&p, 2, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_PROMOTE);
    /* At the end of the step but short of min_requests: wait, never advance on little data. */
    o.canary = win(10, 0, 5);
    o.elapsed_s = 6000;
    qv_rollout_decide(&p, 2, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
}

static void test_decide_reference(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    /* At 100% canary stable serves nothing; the reference kept from earlier decides. */
    o.elapsed_s = 1;
    o.canary = win(1000, 100, 5);
    o.stable = win(0, 0, 0);
    o.ref.requests = 5000;
    o.ref.errors = 5;
    o.ref.latency_count = 5000;
    o.ref.p99_ms = 2;
    qv_rollout_decide(&p, 2, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
    assert_string_equal(v.f.stable_source, "reference");
    assert_true(v.f.error_breach);
    assert_true(v.f.p99_breach); /* 5 / 2 */
    /* No reference at all: the canary's own error rate against the delta. */
    memset(&o.ref, 0, sizeof(o.ref));
    o.canary = win(1000, 5, 5);
    qv_rollout_decide(&p, 2, &o, &v);
    assert_string_equal(v.f.stable_source, "none");
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.p99_evaluated);
    o.canary = win(1000, 50, 5);
    qv_rollout_decide(&p, 2, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
}

/* Bad-input refusals are reported but never count as evidence: a canary that
 * only refused malformed requests (0 answers) waits forever, however long the
 * step has run. */
static void test_decide_bad_input_is_not_evidence(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 600;
    o.canary = win(0, 0, 0);
    o.canary.requests = 5000;
    o.canary.bad_input = 5000;
    qv_rollout_decide(&p, 2, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.enough);
    assert_int_equal(v.f.canary_answered, 0);
    assert_int_equal(v.f.canary_bad_input, 5000);
    assert_non_null(strstr(v.reason, "answered 0 of 100"));
    /* 99 answers and 5000 refusals: still not enough. 100 answers: enough. */
    o.canary = win(99, 0, 5);
    o.canary.requests += 5000;
    o.canary.bad_input = 5000;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    o.canary = win(100, 0, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_NEXT);
    /* Overload refusals did not reach the backend either. */
    o.canary = win(150, 60, 5);
    o.canary.overload = 60;
    o.stable = win(2000, 0, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.f.canary_answered, 90);
    assert_false(v.f.enough);
}

/* A canary that refuses as bad input what stable accepts is rolled back, even
 * when it has answered nothing; one that refuses as much as stable is not. */
static void test_decide_bad_input_guard(void **state)
{
    struct qv_rollout_plan p = plan();
    struct qv_rollout_obs o;
    struct qv_rollout_verdict v;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.elapsed_s = 5;
    o.canary = win(0, 0, 0);
    o.canary.requests = 200;
    o.canary.bad_input = 200;
    o.stable = win(2000, 0, 5);
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_ROLLBACK);
    assert_true(v.f.bad_input_breach);
    assert_float_equal(v.f.canary_bad_input_rate, 1.0, 1e-12);
    assert_float_equal(v.f.stable_bad_input_rate, 0.0, 1e-12);
    assert_non_null(strstr(v.reason, "bad_input_rate"));
    /* Both refuse 10%: no breach, and the canary's 180 answers decide. */
    o.elapsed_s = 600;
    o.canary = win(180, 0, 5);
    o.canary.requests += 20;
    o.canary.bad_input = 20;
    o.stable = win(1800, 0, 5);
    o.stable.requests += 200;
    o.stable.bad_input = 200;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_false(v.f.bad_input_breach);
    assert_int_equal(v.action, QV_ROLLOUT_NEXT);
    /* The error rate is over the requests that were not bad input. */
    assert_int_equal(v.f.canary_requests, 180);
    /* Without stable figures the guard cannot compare: it waits for answers. */
    memset(&o.stable, 0, sizeof(o.stable));
    o.canary = win(0, 0, 0);
    o.canary.requests = 200;
    o.canary.bad_input = 200;
    qv_rollout_decide(&p, 0, &o, &v);
    assert_int_equal(v.action, QV_ROLLOUT_WAIT);
    assert_false(v.f.bad_input_evaluated);
}

/* A whole rollout driven by the pure function with a fake clock: a good
 * canary goes through every step and is promoted; a bad one is rolled back
 * in the step where it turns bad. */
static int drive(const struct qv_rollout_plan *p, double canary_err, int bad_from_step,
                 int *ended_step)
{
    struct qv_rollout_ref ref = {0, 0, 0, 0, 0};
    double t = 0, step_start = 0;
    int step = 0;
    uint64_t rate = 100; /* requests per second, all versions */

    for (int tick = 0; tick < 10000; tick++, t += 1) {
        struct qv_rollout_obs o;
        struct qv_rollout_verdict v;
        double el = t - step_start, w = p->steps[step] / 100.0;
        uint64_t nc = (uint64_t)(el * rate * w), ns = (uint64_t)(el * rate * (1 - w));
        double e = step >= bad_from_step ? canary_err : 0.001;

        memset(&o, 0, sizeof(o));
        o.elapsed_s = el;
        o.canary = win(nc, (uint64_t)(nc * e), 5);
        o.stable = win(ns, (uint64_t)(ns * 0.001), 5);
        o.ref = ref;
        qv_rollout_decide(p, step, &o, &v);
        switch (v.action) {
        case QV_ROLLOUT_WAIT:
            break;
        case QV_ROLLOUT_NEXT:
            if (o.stable.requests >= p->min_requests) {
                ref.requests = o.stable.requests;
                ref.errors = o.stable.errors;
                ref.latency_count = o.stable.latency_count;
                ref.p99_ms = o.stable.p99_ms;
            }
            step++;
            step_start = t;
            break;
        case QV_ROLLOUT_PROMOTE:
        case QV_ROLLOUT_ROLLBACK:
            *ended_step = step;
            return v.action;
        }
    }
    return -1;
}

static void test_drive(void **state)
{
    struct qv_rollout_plan p = plan();
    int step = -1;

    (void)state;
    assert_int_equal(drive(&p, 0.001, 99, &step), QV_ROLLOUT_PROMOTE);
    assert_int_equal(step, 2);
    assert_int_equal(drive(&p, 0.2, 0, &step), QV_ROLLOUT_ROLLBACK);
    assert_int_equal(step, 0);
    assert_int_equal(drive(&p, 0.2, 1, &step), QV_ROLLOUT_ROLLBACK);
    assert_int_equal(step, 1);
    /* At 100% canary only the reference from step 1 is left to compare with. */
    assert_int_equal(drive(&p, 0.2, 2, &step), QV_ROLLOUT_ROLLBACK);
    assert_int_equal(step, 2);
}

/* ---- Alert rules ---- */

static void test_alert_rules(void **state)
{
    struct qv_alert_rule rules[QV_ALERT_MAX_RULES];
    int idx[QV_ALERT_MAX_RULES], n, n_errs;
    char **errs;
    struct qv_diag d = {{0}};

    (void)state;
    n = qv_alert_rules_parse(
        "[{\"name\": \"errors\", \"metric\": \"error_rate\", \"op\": \">\", \"threshold\": 0.02, "
        "\"window_s\": 60}, {\"metric\": \"p77\", \"op\": \">\", \"threshold\": 1}, "
        "{\"metric\": \"p99_ms\", \"op\": \">=\", \"threshold\": 50, \"webhook\": "
        "\"http://127.0.0.1:9/hook\"}, {\"metric\": \"memory_share\", \"op\": \"!=\", "
        "\"threshold\": 0.5}, {\"metric\": \"requests\", \"op\": \"<\", \"threshold\": 1, "
        "\"colour\": 1}, {\"metric\": \"mean_ms\", \"op\": \"<=\", \"threshold\": \"x\"}]",
        rules, idx, &errs, &n_errs);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    assert_string_equal(rules[0].name, "errors");
    assert_int_equal(rules[0].metric, QV_AM_ERROR_RATE);
    assert_int_equal(rules[1].op, QV_OP_GE);
    assert_float_equal(rules[1].window_s, 60, 0);
    assert_int_equal(rules[1].min_requests, 10);
    assert_string_equal(rules[1].webhook, "http://127.0.0.1:9/hook");
    assert_string_equal(rules[1].name, "p99_ms >= 50");
    assert_int_equal(n_errs, 4);
    assert_string_equal(errs[0], "alerts[1].metric: unknown metric \"p77\"");
    assert_non_null(strstr(errs[1], "alerts[3].op"));
    assert_string_equal(errs[2], "alerts[4].colour: unknown key");
    assert_non_null(strstr(errs[3], "alerts[5].threshold"));
    qv_alert_errors_free(errs, n_errs);

    assert_int_equal(qv_control_alerts_validate("[{\"metric\": \"p77\", \"op\": \">\", "
                                                "\"threshold\": 1}]",
                                                &d),
                     QV_EINVAL);
    assert_string_equal(d.msg, "alerts[0].metric: unknown metric \"p77\"");
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_alerts_validate("[{\"metric\": \"requests\", \"op\": \"<\", "
                                                "\"threshold\": 1, \"min_requests\": -1}]",
                                                &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "alerts[0].min_requests"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_alerts_validate("[]", &d), QV_OK);
    assert_int_equal(qv_control_alerts_validate("{}", &d), QV_EINVAL);
}

static void test_alert_values(void **state)
{
    struct qv_window w = win(200, 10, 42);
    double v = -1;

    (void)state;
    w.memory_bytes = 300;
    w.p50_ms = 1;
    assert_true(qv_alert_value(QV_AM_ERROR_RATE, &w, 1000, &v));
    assert_float_equal(v, 0.05, 1e-12);
    assert_true(qv_alert_value(QV_AM_P99_MS, &w, 1000, &v));
    assert_float_equal(v, 42, 0);
    assert_true(qv_alert_value(QV_AM_MEMORY_SHARE, &w, 1000, &v));
    assert_float_equal(v, 0.3, 1e-12);
    assert_true(qv_alert_value(QV_AM_REQUESTS, &w, 1000, &v));
    assert_float_equal(v, 200, 0);
    /* No requests: latency and error rate have no data; memory still does. */
    w = win(0, 0, 0);
    assert_false(qv_alert_value(QV_AM_ERROR_RATE, &w, 1000, &v));
    assert_false(qv_alert_value(QV_AM_P99_MS, &w, 1000, &v));
    assert_true(qv_alert_value(QV_AM_MEMORY_BYTES, &w, 1000, &v));
    assert_true(qv_alert_compare(QV_OP_GT, 0.03, 0.02));
    assert_false(qv_alert_compare(QV_OP_GT, 0.02, 0.02));
    assert_true(qv_alert_compare(QV_OP_GE, 0.02, 0.02));
    assert_true(qv_alert_compare(QV_OP_LT, 1, 2));
    assert_true(qv_alert_compare(QV_OP_LE, 2, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z_known),
        cmocka_unit_test(test_normal_sf),
        cmocka_unit_test(test_plan_defaults),
        cmocka_unit_test(test_plan_bad),
        cmocka_unit_test(test_decide_waits_for_requests),
        cmocka_unit_test(test_decide_error_breach),
        cmocka_unit_test(test_decide_error_not_significant_or_small),
        cmocka_unit_test(test_decide_p99),
        cmocka_unit_test(test_decide_shadow),
        cmocka_unit_test(test_decide_bad_input_is_not_evidence),
        cmocka_unit_test(test_decide_bad_input_guard),
        cmocka_unit_test(test_decide_steps),
        cmocka_unit_test(test_decide_reference),
        cmocka_unit_test(test_drive),
        cmocka_unit_test(test_alert_rules),
        cmocka_unit_test(test_alert_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
