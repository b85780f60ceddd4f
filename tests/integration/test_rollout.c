/* SPDX-License-Identifier: MIT
 *
 * The rollout controller on a live server: a canary that fails 20% of its
 * requests, and one that is 5x slower, are rolled back automatically within
 * the first step, with the failing figures in the audit event; a good canary
 * is promoted through every step; a restart in the middle of a rollout
 * resumes it; bad plans get 400 naming the field and change nothing; an
 * operator's route change makes the rollout step aside; DELETE aborts.
 *
 * Traffic comes from the harness' client loop; every wait polls with the
 * harness' deadline, nothing asserts on timing.
 */
#include "integration/harness.h"

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

/* Model m with versions 1 (stable) and 2 (canary), both loaded. */
static void two_versions(struct h_srv *s, const char *v1, const char *v2)
{
    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, v1);
    h_test_version(s, "m", 2, v2);
}

static json_t *rollout_status(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/rollout");
    json_t *j;

    if (r.status != 200)
        fail_msg("GET rollout: %ld %s", r.status, r.body);
    j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

/* Polls the rollout until its state is not "running"; returns the final status. */
static json_t *wait_finished(struct h_srv *s)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        json_t *j = rollout_status(s);
        if (strcmp(h_jstr(j, "state"), "running") != 0)
            return j;
        if (h_now_ms() > deadline) {
            char *text = json_dumps(j, 0);
            fail_msg("rollout still running: %s", text);
        }
        json_decref(j);
        h_sleep_ms(50);
    }
}

static void wait_step(struct h_srv *s, int step)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        json_t *j = rollout_status(s);
        long at = (long)json_integer_value(json_object_get(j, "step"));
        bool running = strcmp(h_jstr(j, "state"), "running") == 0;
        json_decref(j);
        if (at >= step || !running) {
            assert_true(running);
            assert_int_equal(at, step);
            return;
        }
        if (h_now_ms() > deadline)
            fail_msg("rollout never reached step %d", step);
        h_sleep_ms(50);
    }
}

/* The newest event of m named 'what', its "new" value parsed; NULL when none.
 * Its who must be 'who': "controller" for the controller's own decisions, the
 * token name ("anonymous" here) for what an operator asked. */
static json_t *find_event_by(struct h_srv *s, const char *what, const char *who)
{
    struct h_resp r = h_get(s, "/v2/models/m/events");
    char last_who[64] = "";
    json_t *e, *found = NULL;
    size_t i;

    assert_int_equal(r.status, 200);
    json_array_foreach(r.json, i, e)
    {
        const char *w = h_jstr(e, "what");
        if (w && strcmp(w, what) == 0) {
            snprintf(last_who, sizeof(last_who), "%s", h_jstr(e, "who"));
            json_decref(found);
            found = json_loads(h_jstr(e, "new"), 0, NULL);
        }
    }
    h_resp_free(&r);
    if (found != NULL)
        assert_string_equal(last_who, who);
    return found;
}

static json_t *find_event(struct h_srv *s, const char *what)
{
    return find_event_by(s, what, "controller");
}

static json_t *get_route(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/route");
    json_t *j;

    assert_int_equal(r.status, 200);
    j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

static long label_of(json_t *route, const char *name)
{
    json_t *v = json_object_get(json_object_get(route, "labels"), name);

    return v ? (long)json_integer_value(v) : 0;
}

static void start_rollout(struct h_srv *s, const char *plan)
{
    struct h_resp r = h_post(s, "/v2/models/m/rollout", plan);

    if (r.status != 201)
        fail_msg("POST rollout: %ld %s", r.status, r.body);
    assert_string_equal(h_jstr(r.json, "state"), "running");
    h_resp_free(&r);
}

static void test_failing_canary_rolled_back(void **state)
{
    struct h_srv *s = *state;
    json_t *st, *ev, *fig, *rt;

    two_versions(s, "{\"features\": 4}", "{\"features\": 4, \"fail_rate\": 0.2}");
    h_start(s, NULL);
    /* A long step: the rollback must come from the guard, not the clock. */
    start_rollout(s, "{\"canary\": 2, \"steps\": [50, 100], \"step_seconds\": 3600, "
                     "\"min_requests\": 100, \"guards\": {\"max_error_rate_delta\": 0.05, "
                     "\"max_p99_ratio\": 1000}}");
    rt = get_route(s);
    assert_int_equal(label_of(rt, "canary"), 2);
    assert_int_equal(label_of(rt, "stable"), 1);
    json_decref(rt);
    h_loop_start(s, "/v2/models/m/infer", body4);
    st = wait_finished(s);
    h_loop_stop(s->loop);
    assert_string_equal(h_jstr(st, "state"), "rolled_back");
    assert_int_equal(json_integer_value(json_object_get(st, "step")), 0);
    json_decref(st);

    rt = get_route(s);
    assert_int_equal(label_of(rt, "canary"), 0);
    assert_int_equal(label_of(rt, "stable"), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(rt, "weights"), "stable")),
                     100);
    json_decref(rt);

    ev = find_event(s, "rollout.rollback");
    assert_non_null(ev);
    fig = json_object_get(ev, "figures");
    assert_true(json_is_true(json_object_get(fig, "error_breach")));
    assert_true(json_integer_value(json_object_get(fig, "canary_requests")) >= 100);
    assert_true(json_number_value(json_object_get(fig, "canary_error_rate")) > 0.05);
    assert_true(json_number_value(json_object_get(fig, "p_value")) < 0.05);
    assert_non_null(strstr(h_jstr(ev, "reason"), "error_rate"));
    json_decref(ev);
    h_stop_ok(s);
}

static void test_slow_canary_rolled_back(void **state)
{
    struct h_srv *s = *state;
    json_t *st, *ev, *fig;

    two_versions(s, "{\"features\": 4, \"delay_us\": 10000}",
                 "{\"features\": 4, \"delay_us\": 50000}");
    h_start(s, NULL);
    start_rollout(s, "{\"canary\": 2, \"steps\": [50, 100], \"step_seconds\": 3600, "
                     "\"min_requests\": 40, \"guards\": {\"max_p99_ratio\": 1.5}}");
    h_loop_start(s, "/v2/models/m/infer", body4);
    st = wait_finished(s);
    h_loop_stop(s->loop);
    assert_string_equal(h_jstr(st, "state"), "rolled_back");
    json_decref(st);
    ev = find_event(s, "rollout.rollback");
    assert_non_null(ev);
    fig = json_object_get(ev, "figures");
    assert_true(json_is_true(json_object_get(fig, "p99_breach")));
    assert_true(json_number_value(json_object_get(fig, "p99_ratio")) > 1.5);
    assert_non_null(strstr(h_jstr(ev, "reason"), "p99"));
    json_decref(ev);
    h_stop_ok(s);
}

static const char good_plan[] = "{\"canary\": 2, \"steps\": [10, 50, 100], \"step_seconds\": 1, "
                                "\"min_requests\": 20, \"guards\": {\"max_error_rate_delta\": 0.05,"
                                " \"max_p99_ratio\": 1000}}";

static void test_good_canary_promoted(void **state)
{
    struct h_srv *s = *state;
    json_t *st, *rt, *ev;

    two_versions(s, "{\"features\": 4, \"delay_us\": 1000}",
                 "{\"features\": 4, \"delay_us\": 1000}");
    h_start(s, NULL);
    start_rollout(s, good_plan);
    h_loop_start(s, "/v2/models/m/infer", body4);
    st = wait_finished(s);
    h_loop_stop(s->loop);
    assert_string_equal(h_jstr(st, "state"), "promoted");
    assert_int_equal(json_integer_value(json_object_get(st, "step")), 2);
    json_decref(st);
    rt = get_route(s);
    assert_int_equal(label_of(rt, "stable"), 2);
    assert_int_equal(label_of(rt, "canary"), 0);
    json_decref(rt);
    /* Every step left an event. */
    ev = find_event(s, "rollout.step");
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "step")), 2);
    json_decref(ev);
    ev = find_event(s, "rollout.promote");
    assert_non_null(ev);
    json_decref(ev);
    /* Traffic now goes to version 2 only. */
    {
        struct h_resp r = h_post(s, "/v2/models/m/infer", body4);
        assert_int_equal(r.status, 200);
        assert_string_equal(h_jstr(r.json, "model_version"), "2");
        h_resp_free(&r);
    }
    h_stop_ok(s);
}

static void test_restart_resumes(void **state)
{
    struct h_srv *s = *state;
    json_t *st, *ev;

    two_versions(s, "{\"features\": 4}", "{\"features\": 4}");
    h_start(s, NULL);
    start_rollout(s, "{\"canary\": 2, \"steps\": [10, 50, 100], \"step_seconds\": 1, "
                     "\"min_requests\": 40, \"guards\": {\"max_error_rate_delta\": 0.05, "
                     "\"max_p99_ratio\": 1000}}");
    h_loop_start(s, "/v2/models/m/infer", body4);
    wait_step(s, 1);
    h_loop_stop(s->loop);
    free(s->loop);
    s->loop = NULL;
    h_stop_ok(s);

    h_start(s, NULL);
    st = rollout_status(s);
    assert_string_equal(h_jstr(st, "state"), "running");
    assert_int_equal(json_integer_value(json_object_get(st, "step")), 1);
    assert_float_equal(json_number_value(json_object_get(json_object_get(st, "weights"), "canary")),
                       50, 1e-9);
    json_decref(st);
    /* The start event is still in the audit log. */
    ev = find_event_by(s, "rollout.start", "anonymous");
    assert_non_null(ev);
    json_decref(ev);
    h_loop_start(s, "/v2/models/m/infer", body4);
    st = wait_finished(s);
    h_loop_stop(s->loop);
    assert_string_equal(h_jstr(st, "state"), "promoted");
    json_decref(st);
    h_stop_ok(s);
}

/* Requests the canary refuses as bad input (400) are reported but are never evidence:
 * a canary that only ever saw malformed traffic stays at its first step however many
 * steps' time passes (it was promoted with 0 answers before); and once stable shows it
 * accepts what the canary refuses, the canary is rolled back. */
static const char bad4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 3], "
    "\"data\": [0.1, 0.2, 0.3]}]}";

static long last_figure(struct h_srv *s, const char *key)
{
    json_t *st = rollout_status(s);
    long v = (long)json_integer_value(json_object_get(json_object_get(st, "last"), key));

    json_decref(st);
    return v;
}

static void test_malformed_traffic_is_not_evidence(void **state)
{
    struct h_srv *s = *state;
    uint64_t deadline;
    json_t *st, *ev;

    two_versions(s, "{\"features\": 4}", "{\"features\": 4}");
    h_start(s, NULL);
    start_rollout(s, "{\"canary\": 2, \"steps\": [10, 50, 100], \"step_seconds\": 1, "
                     "\"min_requests\": 20}");
    {
        struct h_resp r = h_post(s, "/v2/models/m/versions/2/infer", bad4);
        assert_int_equal(r.status, 400);
        h_resp_free(&r);
    }
    h_loop_start(s, "/v2/models/m/versions/2/infer", bad4);
    /* Many refusals, then three steps' time more: still at step 0, waiting. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (last_figure(s, "canary_bad_input") < 100) {
        if (h_now_ms() > deadline)
            fail_msg("the canary's bad-input refusals were never counted");
        h_sleep_ms(50);
    }
    h_sleep_ms(3500);
    st = rollout_status(s);
    assert_string_equal(h_jstr(st, "state"), "running");
    assert_int_equal(json_integer_value(json_object_get(st, "step")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(st, "last"), "canary_answered")), 0);
    assert_string_equal(h_jstr(json_object_get(st, "last"), "decision"), "wait");
    json_decref(st);
    h_loop_stop(s->loop);
    free(s->loop);
    s->loop = NULL;

    /* Stable answers the same traffic (well-formed for it): the canary that refuses is
     * rolled back, and the event says why. */
    h_loop_start(s, "/v2/models/m/versions/1/infer", body4);
    st = wait_finished(s);
    h_loop_stop(s->loop);
    free(s->loop);
    s->loop = NULL;
    if (strcmp(h_jstr(st, "state"), "rolled_back") != 0) {
        char *text = json_dumps(st, 0);
        fail_msg("expected rolled_back: %s", text);
    }
    json_decref(st);
    ev = find_event(s, "rollout.rollback");
    assert_non_null(ev);
    assert_non_null(strstr(h_jstr(ev, "reason"), "bad_input_rate"));
    json_decref(ev);
    h_stop_ok(s);
}

static void test_bad_plans(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;

    two_versions(s, "{\"features\": 4}", "{\"features\": 4}");
    h_test_version(s, "m", 3, "{\"features\": 4, \"fail_load\": \"broken on purpose\"}");
    h_start(s, NULL);
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 3}");
    h_expect_error(&r, 400, "canary: version 3 of model m is not READY");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 2, \"steps\": [25, 5]}");
    h_expect_error(&r, 400, "steps[1]");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 2, \"steps\": []}");
    h_expect_error(&r, 400, "steps");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 2, \"guards\": {\"max_p99_ratio\": -1}}");
    h_expect_error(&r, 400, "guards.max_p99_ratio");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 2, \"colour\": 1}");
    h_expect_error(&r, 400, "colour: unknown key");
    h_resp_free(&r);
    r = h_post(s, "/v2/models/nope/rollout", "{\"canary\": 2}");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);
    /* Nothing changed. */
    r = h_get(s, "/v2/models/m/rollout");
    h_expect_error(&r, 404, NULL);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/route");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "policy"), "default");
    h_resp_free(&r);
    r = h_req(s, "DELETE", "/v2/models/m/rollout", NULL);
    h_expect_error(&r, 404, "no running rollout");
    h_resp_free(&r);
    h_stop_ok(s);
}

static void test_abort_and_override(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *st, *rt, *ev;

    two_versions(s, "{\"features\": 4}", "{\"features\": 4}");
    h_start(s, NULL);
    start_rollout(s, "{\"canary\": 2, \"step_seconds\": 3600, \"min_requests\": 10}");
    r = h_post(s, "/v2/models/m/rollout", "{\"canary\": 2}");
    h_expect_error(&r, 409, "running");
    h_resp_free(&r);
    r = h_req(s, "DELETE", "/v2/models/m/rollout", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "state"), "aborted");
    h_resp_free(&r);
    rt = get_route(s);
    assert_int_equal(label_of(rt, "canary"), 0);
    assert_int_equal(label_of(rt, "stable"), 1);
    json_decref(rt);
    ev = find_event_by(s, "rollout.abort", "anonymous");
    assert_non_null(ev);
    assert_non_null(strstr(h_jstr(ev, "reason"), "aborted by anonymous"));
    json_decref(ev);

    /* An operator replaces the route during a rollout: the controller steps aside. */
    start_rollout(s, "{\"canary\": 2, \"step_seconds\": 3600, \"min_requests\": 10}");
    r = h_req(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 1}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    st = wait_finished(s);
    assert_string_equal(h_jstr(st, "state"), "aborted");
    assert_non_null(strstr(h_jstr(st, "reason"), "changed"));
    json_decref(st);
    rt = get_route(s);
    assert_string_equal(h_jstr(rt, "policy"), "pinned");
    json_decref(rt);
    ev = find_event(s, "rollout.abort");
    assert_non_null(ev);
    assert_non_null(strstr(h_jstr(ev, "reason"), "changed"));
    json_decref(ev);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_failing_canary_rolled_back),
    H_TEST(test_slow_canary_rolled_back),
    H_TEST(test_good_canary_promoted),
    H_TEST(test_restart_resumes),
    H_TEST(test_malformed_traffic_is_not_evidence),
    H_TEST(test_bad_plans),
    H_TEST(test_abort_and_override),
};

H_MAIN(tests)
