/* SPDX-License-Identifier: MIT
 *
 * The controller driven in-process without an HTTP server: a real engine on a
 * temp repository of "test"-backend models, a real monitor, router and an
 * in-memory SQLite store, and a fake wall clock. Traffic is recorded straight
 * into the monitor, so every figure is known. Covers rollout start (and bad
 * plans), rollback with the failing figures in the event, promotion through
 * every step, resume after a restart mid-rollout, stepping aside when an
 * operator changes the route, abort, the history sampler and alerts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "control/control_int.h"

struct fx {
    char dir[64];
    qv_store *store;
    qv_monitor *mon;
    qv_engine *engine;
    qv_router *router;
    qv_control *ctl;
    uint64_t now_ms;  /* the fake wall clock */
    uint64_t mono_ns; /* the monitor's tick clock */
};

static uint64_t fake_clock(void *ud)
{
    return ((struct fx *)ud)->now_ms;
}

static bool fx_ready(void *ud, const char *model, int64_t version)
{
    return qv_engine_is_ready(ud, model, version);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_repo(struct fx *f)
{
    char path[256];

    snprintf(f->dir, sizeof(f->dir), "/tmp/qv-ctl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "mkdir -p %s/m/1 %s/m/2 %s/m/3", f->dir, f->dir, f->dir);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/m/config.json", f->dir);
    write_file(path, "{\"backend\": \"test\", \"version_policy\": {\"specific\": {\"versions\": "
                     "[1, 2]}}, \"alerts\": [{\"name\": \"errors\", \"metric\": \"error_rate\", "
                     "\"op\": \">\", \"threshold\": 0.1, \"window_s\": 5}, {\"metric\": \"p77\", "
                     "\"op\": \">\", \"threshold\": 1}]}\n");
    for (int v = 1; v <= 3; v++) {
        snprintf(path, sizeof(path), "%s/m/%d/model.test", f->dir, v);
        write_file(path, "{\"features\": 4}\n");
    }
}

static void start_control(struct fx *f)
{
    struct qv_control_options o;
    struct qv_diag d = {{0}};

    memset(&o, 0, sizeof(o));
    o.history_interval_s = 10;
    o.history_retention_s = 3600;
    o.clock_ms = fake_clock;
    o.clock_ud = f;
    o.no_webhooks = true;
    assert_int_equal(
        qv_control_create_opts(f->engine, f->router, f->mon, f->store, &o, &f->ctl, &d), QV_OK);
}

static void new_router(struct fx *f)
{
    struct qv_router_config rc;

    memset(&rc, 0, sizeof(rc));
    rc.resolver.is_ready = fx_ready;
    rc.resolver.ud = f->engine;
    qv_router_create(&rc, &f->router);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct qv_engine_config ec;
    struct qv_diag d = {{0}};

    make_repo(f);
    f->now_ms = 1764250000000ull;
    f->mono_ns = qv_now_ns();
    if (qv_store_open("sqlite::memory:", &f->store, &d) != QV_OK)
        fail_msg("store: %s", d.msg);
    qv_monitor_create(&f->mon);
    memset(&ec, 0, sizeof(ec));
    ec.repo_root = f->dir;
    ec.workers = 1;
    ec.memory_budget = 1ull << 30;
    ec.poll_ms = 600000;
    if (qv_engine_create(&ec, NULL, f->mon, &f->engine, &d) != QV_OK ||
        qv_engine_start(f->engine, &d) != QV_OK)
        fail_msg("engine: %s", d.msg);
    assert_true(qv_engine_is_ready(f->engine, "m", 1));
    assert_true(qv_engine_is_ready(f->engine, "m", 2));
    new_router(f);
    start_control(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];

    qv_control_destroy(f->ctl);
    qv_engine_destroy(f->engine);
    qv_router_destroy(f->router);
    qv_monitor_destroy(f->mon);
    qv_store_close(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* n requests to version v, of which 'fail' fail in the backend; latency ms each. */
static void traffic(struct fx *f, int64_t v, int n, int fail, double ms)
{
    qv_vstats *s = qv_monitor_version(f->mon, "m", v);

    for (int i = 0; i < n; i++)
        qv_vstats_request(s, i < fail ? QV_OUTCOME_BACKEND : QV_OUTCOME_OK, 10000,
                          (uint64_t)(ms * 1e6) - 10000, (uint64_t)(ms * 1e6));
}

/* Advances the fake clocks by s seconds and ticks the monitor and controller. */
static void tick(struct fx *f, int s)
{
    for (int i = 0; i < s; i++) {
        f->now_ms += 1000;
        f->mono_ns += 1000000000ull;
        qv_monitor_tick_at(f->mon, f->mono_ns);
        qv_control_tick(f->ctl);
    }
}

static json_t *status(struct fx *f)
{
    char *text = NULL;
    struct qv_diag d = {{0}};
    json_t *j;

    assert_int_equal(qv_control_rollout_status(f->ctl, "m", &text, &d), QV_OK);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    free(text);
    return j;
}

static void expect_state(struct fx *f, const char *want, int step)
{
    json_t *j = status(f);
    const char *st = json_string_value(json_object_get(j, "state"));

    if (strcmp(st, want) != 0)
        fail_msg("state %s, expected %s; %s", st, want,
                 json_string_value(json_object_get(j, "reason")));
    if (step >= 0)
        assert_int_equal(json_integer_value(json_object_get(j, "step")), step);
    json_decref(j);
}

static json_t *route(struct fx *f)
{
    char *doc = NULL;
    json_t *j;

    assert_int_equal(qv_router_get_route(f->router, "m", &doc), QV_OK);
    j = json_loads(doc, 0, NULL);
    free(doc);
    return j;
}

static double weight_of(json_t *rt, const char *key)
{
    return json_number_value(json_object_get(json_object_get(rt, "weights"), key));
}

static void expect_weights(struct fx *f, double stable, double canary)
{
    json_t *rt = route(f);

    assert_float_equal(weight_of(rt, "stable"), stable, 1e-9);
    if (canary >= 0)
        assert_float_equal(weight_of(rt, "canary"), canary, 1e-9);
    else
        assert_null(json_object_get(json_object_get(rt, "weights"), "canary"));
    json_decref(rt);
}

static int64_t label(struct fx *f, const char *name)
{
    int64_t v = 0;

    if (qv_router_get_label(f->router, "m", name, &v) != QV_OK)
        return 0;
    return v;
}

/* The newest event named 'what', parsed from its new_value; NULL when none.
 * Its who must be 'who' ("controller" for what the controller decides). */
static json_t *event_by(struct fx *f, const char *what, const char *who)
{
    struct qv_store_event *ev = NULL;
    struct qv_diag d = {{0}};
    json_t *j = NULL;
    size_t n = 0;

    assert_int_equal(qv_store_event_list(f->store, NULL, &ev, &n, &d), QV_OK);
    for (size_t i = n; i-- > 0 && j == NULL;)
        if (strcmp(ev[i].what, what) == 0) {
            assert_string_equal(ev[i].who, who);
            j = json_loads(ev[i].new_value ? ev[i].new_value : "null", 0, NULL);
        }
    qv_store_event_free(ev, n);
    return j;
}

static json_t *event(struct fx *f, const char *what)
{
    return event_by(f, what, "controller");
}

static const char plan_json[] = "{\"canary\": 2, \"steps\": [10, 50, 100], \"step_seconds\": 10, "
                                "\"min_requests\": 50}";

static void start(struct fx *f, const char *plan)
{
    char *text = NULL;
    struct qv_diag d = {{0}};

    if (qv_control_rollout_start(f->ctl, "m", plan, "tester", &text, &d) != QV_OK)
        fail_msg("rollout start: %s", d.msg);
    free(text);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    struct qv_diag d = {{0}};
    char *text = NULL, *doc = NULL;

    assert_int_equal(qv_control_rollout_start(f->ctl, "m", "{\"canary\": 3}", "t", &text, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "canary: version 3 of model m is not READY"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_rollout_start(f->ctl, "m", "{\"canary\": 2, \"steps\": [50, 5]}",
                                              "t", &text, &d),
                     QV_EINVAL);
    assert_non_null(strstr(d.msg, "steps[1]"));
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_rollout_start(f->ctl, "nope", "{\"canary\": 2}", "t", &text, &d),
                     QV_ENOENT);
    /* Nothing changed: no route, no rollout. */
    assert_int_equal(qv_router_get_route(f->router, "m", &doc), QV_ENOENT);
    assert_int_equal(qv_control_rollout_status(f->ctl, "m", &text, &d), QV_ENOENT);
    /* A second rollout while one runs: conflict. */
    start(f, plan_json);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_rollout_start(f->ctl, "m", plan_json, "t", &text, &d),
                     QV_ECONFLICT);
    memset(&d, 0, sizeof(d));
    assert_int_equal(qv_control_rollout_abort(f->ctl, "m", "t", &text, &d), QV_OK);
    free(text);
    assert_int_equal(qv_control_rollout_abort(f->ctl, "m", "t", &text, &d), QV_ENOENT);
    expect_state(f, "aborted", 0);
    expect_weights(f, 100, -1);
    assert_int_equal(label(f, "stable"), 1);
    assert_int_equal(label(f, "canary"), 0);
}

static void test_rollback(void **state)
{
    struct fx *f = *state;
    json_t *ev, *fig;

    start(f, plan_json);
    expect_weights(f, 90, 10);
    assert_int_equal(label(f, "stable"), 1);
    assert_int_equal(label(f, "canary"), 2);
    ev = event_by(f, "rollout.start", "tester");
    assert_non_null(ev);
    json_decref(ev);
    /* A few bad requests: below min_requests nothing happens. */
    traffic(f, 2, 20, 4, 1);
    traffic(f, 1, 200, 0, 1);
    tick(f, 1);
    expect_state(f, "running", 0);
    /* 60 requests at 20% failures against a clean stable: rolled back at once, mid-step. */
    traffic(f, 2, 40, 8, 1);
    traffic(f, 1, 400, 0, 1);
    tick(f, 1);
    expect_state(f, "rolled_back", 0);
    expect_weights(f, 100, -1);
    assert_int_equal(label(f, "stable"), 1);
    assert_int_equal(label(f, "canary"), 0);
    ev = event(f, "rollout.rollback");
    assert_non_null(ev);
    fig = json_object_get(ev, "figures");
    assert_int_equal(json_integer_value(json_object_get(fig, "canary_requests")), 60);
    assert_int_equal(json_integer_value(json_object_get(fig, "canary_errors")), 12);
    assert_float_equal(json_number_value(json_object_get(fig, "canary_error_rate")), 0.2, 1e-9);
    assert_true(json_is_true(json_object_get(fig, "error_breach")));
    assert_non_null(strstr(json_string_value(json_object_get(ev, "reason")), "error_rate"));
    json_decref(ev);
    /* The store has the final route. */
    {
        char *doc = NULL;
        struct qv_diag d = {{0}};
        assert_int_equal(qv_store_route_get(f->store, "m", &doc, &d), QV_OK);
        assert_null(strstr(doc, "canary"));
        free(doc);
    }
}

/* n requests to version v refused as bad input. */
static void refused(struct fx *f, int64_t v, int n)
{
    qv_vstats *s = qv_monitor_version(f->mon, "m", v);

    for (int i = 0; i < n; i++)
        qv_vstats_request(s, QV_OUTCOME_BAD_INPUT, 1000, 1000, 2000);
}

/* A canary whose traffic is all malformed never answers: it is not promoted,
 * however long it runs; once stable shows that it accepts that traffic, the
 * canary that refuses it is rolled back. */
static void test_bad_input_only_canary(void **state)
{
    struct fx *f = *state;
    json_t *j, *ev;

    start(f, plan_json);
    for (int i = 0; i < 60; i++) {
        refused(f, 2, 20);
        tick(f, 1);
    }
    expect_state(f, "running", 0);
    j = status(f);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "last"), "canary_answered")), 0);
    assert_true(json_integer_value(
                    json_object_get(json_object_get(j, "last"), "canary_bad_input")) >= 1000);
    json_decref(j);
    traffic(f, 1, 500, 0, 1);
    refused(f, 2, 20);
    tick(f, 1);
    expect_state(f, "rolled_back", 0);
    ev = event(f, "rollout.rollback");
    assert_non_null(ev);
    assert_true(json_is_true(json_object_get(json_object_get(ev, "figures"), "bad_input_breach")));
    assert_non_null(strstr(json_string_value(json_object_get(ev, "reason")), "bad_input_rate"));
    json_decref(ev);
}

/* min_shadow_agreement on a route without a shadow of the canary can never act:
 * the start answer, the status and the event say so. */
static void test_guard_that_cannot_act_warns(void **state)
{
    struct fx *f = *state;
    struct qv_diag d = {{0}};
    char *text = NULL;
    json_t *j, *ev;

    assert_int_equal(qv_control_rollout_start(f->ctl, "m",
                                              "{\"canary\": 2, \"min_requests\": 50, "
                                              "\"guards\": {\"min_shadow_agreement\": 0.9}}",
                                              "tester", &text, &d),
                     QV_OK);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(json_array_size(json_object_get(j, "warnings")), 1);
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(j, "warnings"), 0)),
                           "min_shadow_agreement"));
    json_decref(j);
    ev = event_by(f, "rollout.start", "tester");
    assert_non_null(ev);
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(ev, "warnings"), 0)),
                           "can never act"));
    json_decref(ev);
    assert_int_equal(qv_control_rollout_abort(f->ctl, "m", "t", &text, &d), QV_OK);
    free(text);
    /* With a shadow of the canary, no warning. */
    assert_int_equal(qv_router_set_route(f->router, "m",
                                         "{\"policy\": \"pinned\", \"target\": 1, "
                                         "\"shadow\": [{\"target\": 2, \"percent\": 100}]}",
                                         NULL, &d),
                     QV_OK);
    assert_int_equal(qv_control_rollout_start(f->ctl, "m",
                                              "{\"canary\": 2, \"min_requests\": 50, "
                                              "\"guards\": {\"min_shadow_agreement\": 0.9}}",
                                              "tester", &text, &d),
                     QV_OK);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(json_array_size(json_object_get(j, "warnings")), 0);
    json_decref(j);
}

/* Series of removed models and of versions the engine does not serve disappear from
 * /metrics at the next tick, instead of exporting their last route weight forever. */
static void test_metrics_of_removed_versions_disappear(void **state)
{
    struct fx *f = *state;
    struct qv_buf out = QV_BUF_INIT(0);
    char *text;

    /* A model the engine does not have and a version its policy does not load. */
    qv_monitor_route_weight(f->mon, "gone", 1, 1.0);
    qv_monitor_route_weight(f->mon, "m", 3, 1.0);
    traffic(f, 1, 5, 0, 1);
    assert_int_equal(qv_monitor_render_prometheus(f->mon, &out), 0);
    text = qv_buf_take(&out);
    assert_non_null(strstr(text, "model=\"gone\""));
    assert_non_null(strstr(text, "model=\"m\",version=\"3\""));
    free(text);
    tick(f, 1);
    assert_int_equal(qv_monitor_render_prometheus(f->mon, &out), 0);
    text = qv_buf_take(&out);
    assert_null(strstr(text, "model=\"gone\""));
    assert_null(strstr(text, "model=\"m\",version=\"3\""));
    assert_non_null(strstr(text, "quiver_requests_total{model=\"m\",version=\"1\"} 5"));
    assert_non_null(strstr(text, "model=\"m\",version=\"2\""));
    free(text);
}

static int count_events(struct fx *f, const char *what)
{
    struct qv_store_event *ev = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;
    int k = 0;

    assert_int_equal(qv_store_event_list(f->store, NULL, &ev, &n, &d), QV_OK);
    for (size_t i = 0; i < n; i++)
        k += strcmp(ev[i].what, what) == 0;
    qv_store_event_free(ev, n);
    return k;
}

/* A route that names a version the engine stops serving (unloaded: a version policy
 * change, an unload) is reported once with an event saying which field names it, and
 * again when the version is back; the fallback is never silent. */
static void test_named_version_missing_is_reported(void **state)
{
    struct fx *f = *state;
    struct qv_diag d = {{0}};
    json_t *ev;

    assert_int_equal(qv_router_set_route(f->router, "m",
                                         "{\"policy\": \"pinned\", \"target\": \"canary\", "
                                         "\"labels\": {\"stable\": 1, \"canary\": 2}}",
                                         NULL, &d),
                     QV_OK);
    tick(f, 1);
    assert_int_equal(count_events(f, "route.version_missing"), 0);
    if (qv_engine_unload_version(f->engine, "m", 2, &d) != QV_OK)
        fail_msg("unload: %s", d.msg);
    tick(f, 2);
    assert_int_equal(count_events(f, "route.version_missing"), 1);
    ev = event(f, "route.version_missing");
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(ev, "named_by")), "target");
    json_decref(ev);
    if (qv_engine_load_version(f->engine, "m", 2, &d) != QV_OK)
        fail_msg("load: %s", d.msg);
    tick(f, 1);
    assert_int_equal(count_events(f, "route.version_restored"), 1);
    assert_int_equal(count_events(f, "route.version_missing"), 1);
}

static void good_step(struct fx *f, int seconds)
{
    for (int i = 0; i < seconds; i++) {
        traffic(f, 2, 20, 0, 1);
        traffic(f, 1, 20, 0, 1);
        tick(f, 1);
    }
}

static void test_promote(void **state)
{
    struct fx *f = *state;
    json_t *ev;

    start(f, plan_json);
    good_step(f, 9);
    expect_state(f, "running", 0);
    expect_weights(f, 90, 10);
    good_step(f, 1);
    expect_state(f, "running", 1);
    expect_weights(f, 50, 50);
    ev = event(f, "rollout.step");
    assert_non_null(ev);
    assert_float_equal(json_number_value(json_object_get(ev, "canary_weight")), 50, 0);
    json_decref(ev);
    good_step(f, 10);
    expect_state(f, "running", 2);
    expect_weights(f, 0, 100);
    /* At 100% only the canary serves; stable is compared with its reference. */
    for (int i = 0; i < 10; i++) {
        traffic(f, 2, 20, 0, 1);
        tick(f, 1);
    }
    expect_state(f, "promoted", 2);
    expect_weights(f, 100, -1);
    assert_int_equal(label(f, "stable"), 2);
    assert_int_equal(label(f, "canary"), 0);
    ev = event(f, "rollout.promote");
    assert_non_null(ev);
    json_decref(ev);
}

static void test_resume(void **state)
{
    struct fx *f = *state;
    json_t *j;

    start(f, plan_json);
    good_step(f, 10);
    expect_state(f, "running", 1);
    good_step(f, 4);
    /* Restart: a new router and controller on the same store; the monitor starts afresh too. */
    qv_control_destroy(f->ctl);
    qv_router_destroy(f->router);
    qv_engine_destroy(f->engine);
    qv_monitor_destroy(f->mon);
    {
        struct qv_engine_config ec;
        struct qv_diag d = {{0}};
        qv_monitor_create(&f->mon);
        memset(&ec, 0, sizeof(ec));
        ec.repo_root = f->dir;
        ec.workers = 1;
        ec.memory_budget = 1ull << 30;
        ec.poll_ms = 600000;
        assert_int_equal(qv_engine_create(&ec, NULL, f->mon, &f->engine, &d), QV_OK);
        assert_int_equal(qv_engine_start(f->engine, &d), QV_OK);
    }
    f->mono_ns = qv_now_ns();
    new_router(f);
    start_control(f);
    expect_state(f, "running", 1);
    expect_weights(f, 50, 50);
    j = status(f);
    assert_int_equal(json_integer_value(json_object_get(j, "canary")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "stable")), 1);
    json_decref(j);
    /* The step started 4 s before the restart: 6 more seconds (with enough requests) end it. */
    good_step(f, 5);
    expect_state(f, "running", 1);
    good_step(f, 1);
    expect_state(f, "running", 2);
    for (int i = 0; i < 10; i++) {
        traffic(f, 2, 20, 0, 1);
        tick(f, 1);
    }
    expect_state(f, "promoted", 2);
}

static void test_operator_override(void **state)
{
    struct fx *f = *state;
    struct qv_resolver res = {fx_ready, NULL, f->engine};
    struct qv_diag d = {{0}};
    json_t *ev;

    start(f, plan_json);
    good_step(f, 3);
    assert_int_equal(
        qv_router_set_route(f->router, "m", "{\"policy\": \"pinned\", \"target\": 1}", &res, &d),
        QV_OK);
    tick(f, 1);
    expect_state(f, "aborted", 0);
    /* The operator's route stands. */
    {
        json_t *rt = route(f);
        assert_string_equal(json_string_value(json_object_get(rt, "policy")), "pinned");
        json_decref(rt);
    }
    ev = event(f, "rollout.abort");
    assert_non_null(ev);
    assert_non_null(strstr(json_string_value(json_object_get(ev, "reason")), "changed"));
    json_decref(ev);
    good_step(f, 20);
    expect_state(f, "aborted", 0);
}

static void test_history(void **state)
{
    struct fx *f = *state;
    struct qv_history_query q;
    struct qv_history_row *rows = NULL;
    struct qv_diag d = {{0}};
    size_t n = 0;
    uint64_t t0 = f->now_ms;

    /* The first sample is due one interval (10 s) after the first tick. */
    traffic(f, 1, 30, 3, 2);
    tick(f, 1);
    traffic(f, 2, 10, 0, 1);
    tick(f, 10);
    traffic(f, 1, 5, 0, 2);
    tick(f, 10);
    memset(&q, 0, sizeof(q));
    q.model = "m";
    q.version = QV_STORE_ANY_VERSION;
    assert_int_equal(qv_store_history_query(f->store, &q, &rows, &n, &d), QV_OK);
    assert_int_equal(n, 4); /* two samples x two READY versions */
    assert_int_equal(rows[0].version, 1);
    assert_int_equal(rows[0].requests, 30);
    assert_int_equal(rows[0].errors, 3);
    assert_int_equal(rows[0].ts_ms, t0 + 11000);
    assert_true(rows[0].p99_ms > 1.5 && rows[0].p99_ms < 2.6);
    assert_float_equal(rows[0].weight, 0, 0); /* default route: the highest READY version */
    assert_int_equal(rows[1].version, 2);
    assert_int_equal(rows[1].requests, 10);
    assert_float_equal(rows[1].weight, 1, 0);
    assert_int_equal(rows[2].requests, 5); /* the difference since the previous sample */
    assert_int_equal(rows[3].requests, 0);
    free(rows);
}

static void test_alerts(void **state)
{
    struct fx *f = *state;
    char *text = NULL;
    struct qv_diag d = {{0}};
    json_t *j, *ev;

    tick(f, 1);
    assert_int_equal(qv_control_alerts_json(f->ctl, "m", &text, &d), QV_OK);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(json_array_size(json_object_get(j, "rules")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "errors"), 0)),
                        "alerts[1].metric: unknown metric \"p77\"");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "rules"), 0), "state")),
        "ok");
    json_decref(j);
    assert_null(event(f, "alert.fire"));
    /* Every request fails, but 5 requests are below the rule's min_requests (10): no verdict. */
    traffic(f, 1, 5, 5, 1);
    tick(f, 1);
    assert_null(event(f, "alert.fire"));
    /* 30% errors on version 1 over the 5 s window. */
    for (int i = 0; i < 3; i++) {
        traffic(f, 1, 10, 3, 1);
        tick(f, 1);
    }
    ev = event(f, "alert.fire");
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "rule")), "errors");
    assert_int_equal(json_integer_value(json_object_get(ev, "version")), 1);
    assert_true(json_number_value(json_object_get(ev, "value")) > 0.1);
    json_decref(ev);
    assert_int_equal(qv_control_alerts_json(f->ctl, "m", &text, &d), QV_OK);
    assert_non_null(strstr(text, "\"firing\""));
    free(text);
    /* Clean traffic for longer than the window: resolved. */
    for (int i = 0; i < 8; i++) {
        traffic(f, 1, 10, 0, 1);
        tick(f, 1);
    }
    ev = event(f, "alert.resolve");
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "version")), 1);
    json_decref(ev);
}

static void test_route_weights(void **state)
{
    struct fx *f = *state;
    struct qv_resolver res = {fx_ready, NULL, f->engine};
    struct qv_diag d = {{0}};
    int64_t v[2] = {1, 2};
    double w[2];

    qv_control_route_weights(f->ctl, "m", v, 2, w);
    assert_float_equal(w[0], 0, 0);
    assert_float_equal(w[1], 100, 0);
    assert_int_equal(qv_router_set_route(f->router, "m",
                                         "{\"policy\": \"weighted\", \"labels\": {\"a\": 1}, "
                                         "\"weights\": {\"a\": 30, \"2\": 70}}",
                                         &res, &d),
                     QV_OK);
    qv_control_route_weights(f->ctl, "m", v, 2, w);
    assert_float_equal(w[0], 30, 1e-9);
    assert_float_equal(w[1], 70, 1e-9);
    assert_int_equal(
        qv_router_set_route(f->router, "m", "{\"policy\": \"pinned\", \"target\": 1}", &res, &d),
        QV_OK);
    qv_control_route_weights(f->ctl, "m", v, 2, w);
    assert_float_equal(w[0], 100, 0);
    assert_float_equal(w[1], 0, 0);
}

/* A store that fails (another connection holds the write lock): the tick that
 * would move to the next step logs and keeps the route; once the store works
 * again the step happens. */
static void test_store_failure_keeps_route(void **state)
{
    struct fx *f = *state;
    struct qv_diag d = {{0}};
    char url[128], path[96];
    sqlite3 *other = NULL;

    qv_control_destroy(f->ctl);
    qv_store_close(f->store);
    snprintf(path, sizeof(path), "%s/state.db", f->dir);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    assert_int_equal(qv_store_open(url, &f->store, &d), QV_OK);
    start_control(f);
    start(f, plan_json);
    good_step(f, 9);
    expect_state(f, "running", 0);

    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    good_step(f, 1); /* the step is due, but its state cannot be persisted */
    expect_state(f, "running", 0);
    expect_weights(f, 90, 10);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    tick(f, 1);
    expect_state(f, "running", 1);
    expect_weights(f, 50, 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_only_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_version_missing_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_of_removed_versions_disappear, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_guard_that_cannot_act_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_keeps_route, setup, teardown),
    };

    qv_log_set_level(QV_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
