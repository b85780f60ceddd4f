/* SPDX-License-Identifier: MIT
 *
 * Allocation failure at every allocation site of the request path (decode a
 * KServe v2 or TF Serving body, prepare, batch and run on the `test`
 * backend, encode the answer) and of the load path (parse config.json, load
 * a version): each allocation fails once in turn (fault_alloc.h). For each:
 * no crash, an answer that is either right or a JSON error, nothing leaked
 * (LeakSanitizer in the ASan build), and the same operation without the
 * fault succeeds at once afterwards. The controller's documents (rollout
 * start, status and abort, alerts, the tick's events) are whole or absent.
 * The aborting qv_x* allocators the paths still use are listed (they are not
 * failed: they would abort by design).
 */
#include "fault_alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "fuzz/fuzz_server.h"

#define MAX_STEPS 20000

static const char kserve_body[] =
    "{\"id\": \"f-1\", \"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
    "\"shape\": [2, 4], \"data\": [[1, 2, 3, 4], [4, 4, 4, 4]]}], "
    "\"outputs\": [{\"name\": \"output__0\"}]}";
static const char tfs_body[] = "{\"instances\": [[1, 2, 3, 4], [4, 4, 4, 4]]}";

/* The right answer of both bodies: the test model is linear, y = mean(row). */
static void expect_answer(const struct fz_response *a, bool tfs)
{
    json_error_t jerr;
    json_t *root, *vals;

    assert_int_equal(a->status, 200);
    root = json_loadb(a->body, a->len, 0, &jerr);
    assert_non_null(root);
    vals = tfs ? json_object_get(root, "predictions")
               : json_object_get(json_array_get(json_object_get(root, "outputs"), 0), "data");
    assert_int_equal(json_array_size(vals), 2);
    assert_float_equal(json_number_value(json_array_get(vals, 0)), 2.5, 1e-6);
    assert_float_equal(json_number_value(json_array_get(vals, 1)), 4.0, 1e-6);
    json_decref(root);
}

static void expect_error_body(const struct fz_response *a)
{
    json_error_t jerr;
    json_t *root = json_loadb(a->body, a->len, 0, &jerr);

    if (!json_is_string(json_object_get(root, "error")))
        fail_msg("status %d without a JSON error: %s", a->status, a->body);
    json_decref(root);
}

static void request_path(const char *path, const char *body, bool tfs, const char *what)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;
    int statuses[600] = {0};
    long n;

    /* Once without faults: what is created lazily on a first request is
     * then not counted against this path. */
    fz_request(s, "POST", path, NULL, NULL, body, strlen(body), &a);
    expect_answer(&a, tfs);
    fz_response_free(&a);
    for (n = 1; n < MAX_STEPS; n++) {
        bool hit;
        fault_arm(n);
        fz_request(s, "POST", path, NULL, NULL, body, strlen(body), &a);
        hit = fault_disarm();
        if (!hit) { /* every allocation of the path has failed once */
            expect_answer(&a, tfs);
            fz_response_free(&a);
            break;
        }
        if (getenv("QV_FAULT_VERBOSE"))
            printf("[ fault ] %s: step %ld: %d %s\n", what, n, a.status, a.body);
        if (a.status != 200)
            expect_error_body(&a);
        else
            expect_answer(&a, tfs);
        statuses[a.status < 600 && a.status >= 0 ? a.status : 0]++;
        fz_response_free(&a);
        /* The next request, without the fault, is served. */
        fz_request(s, "POST", path, NULL, NULL, body, strlen(body), &a);
        expect_answer(&a, tfs);
        fz_response_free(&a);
    }
    assert_true(n < MAX_STEPS);
    printf("[ fault ] %s: %ld allocations failed in turn; answers:", what, n - 1);
    for (int st = 0; st < 600; st++)
        if (statuses[st])
            printf(" %d x%d", st, statuses[st]);
    printf("\n");
    fault_report_xcallers(what);
}

static void test_kserve_request(void **state)
{
    (void)state;
    request_path("/v2/models/m/infer", kserve_body, false, "KServe v2 request");
}

static void test_tfs_request(void **state)
{
    (void)state;
    request_path("/v1/models/m/versions/2:predict", tfs_body, true, "TF Serving request");
}

static void test_config_parse(void **state)
{
    struct fz_server *s = fz_server_get();
    char path[512];
    long n;

    (void)state;
    /* jansson 2.14 does not survive a failed allocation while it lexes a
     * string longer than 15 bytes (lex_save ignores strbuffer's failure; the
     * lexer then reads a string that lost a byte and asserts). config.json has
     * such strings, so here only quiver's own allocations fail. */
    atomic_store(&g_fault_json, false);
    snprintf(path, sizeof(path), "%s/m/config.json", s->root);
    for (n = 1; n < MAX_STEPS; n++) {
        struct qv_model_config cfg;
        struct qv_diag d = {{0}};
        int err;
        bool hit;
        memset(&cfg, 0, sizeof(cfg));
        fault_arm(n);
        err = qv_model_config_load(path, &cfg, &d);
        hit = fault_disarm();
        if (err == QV_OK)
            qv_model_config_free(&cfg);
        else if (d.msg[0] == '\0')
            fail_msg("config.json: error %d without a message", err);
        if (!hit) {
            assert_int_equal(err, QV_OK);
            break;
        }
    }
    atomic_store(&g_fault_json, true);
    printf("[ fault ] config.json: %ld allocations failed in turn\n", n - 1);
    fault_report_xcallers("config.json");
}

/* Unload version 2 and wait until it is gone from the READY set. */
static void unload_v2(struct fz_server *s)
{
    struct qv_diag d = {{0}};

    assert_int_equal(qv_engine_unload_version(s->engine, "m", 2, &d), QV_OK);
    for (int i = 0; i < 500 && qv_engine_is_ready(s->engine, "m", 2); i++)
        usleep(2000);
    assert_false(qv_engine_is_ready(s->engine, "m", 2));
}

static int load_v2(struct fz_server *s, struct qv_diag *d)
{
    int err = QV_EBUSY;

    /* A version still draining from the unload answers EBUSY: retry. */
    for (int i = 0; i < 500 && err == QV_EBUSY; i++) {
        d->msg[0] = '\0';
        err = qv_engine_load_version(s->engine, "m", 2, d);
        if (err == QV_EBUSY && strstr(d->msg, "draining") == NULL)
            break;
        if (err == QV_EBUSY)
            usleep(2000);
    }
    return err;
}

static void test_version_load(void **state)
{
    struct fz_server *s = fz_server_get();
    int failed_loads = 0;
    long n;

    (void)state;
    for (n = 1; n < MAX_STEPS; n++) {
        struct qv_diag d = {{0}};
        struct fz_response a;
        int err;
        bool hit;
        unload_v2(s);
        fault_arm(n);
        err = load_v2(s, &d);
        hit = fault_disarm();
        if (err != QV_OK) {
            failed_loads++;
            if (d.msg[0] == '\0')
                fail_msg("load: error %d without a message", err);
        }
        if (!hit) {
            assert_int_equal(err, QV_OK);
            break;
        }
        /* Without the fault the version loads and serves. */
        if (err != QV_OK) {
            d.msg[0] = '\0';
            err = load_v2(s, &d);
            if (err != QV_OK)
                fail_msg("load after a failed allocation (step %ld): %s", n, d.msg);
        }
        fz_request(s, "POST", "/v1/models/m/versions/2:predict", NULL, NULL, tfs_body,
                   strlen(tfs_body), &a);
        expect_answer(&a, true);
        fz_response_free(&a);
    }
    assert_true(qv_engine_is_ready(s->engine, "m", 2));
    printf("[ fault ] version load: %ld allocations failed in turn, %d loads refused\n", n - 1,
           failed_loads);
    fault_report_xcallers("version load");
}

/* The route in the router and in the store, as canonical text. */
static void routes_now(struct fz_server *s, char **router_doc, char **store_doc)
{
    struct qv_diag d = {{0}};

    *router_doc = *store_doc = NULL;
    qv_router_get_route(s->router, "m", router_doc);
    qv_store_route_get(s->store, "m", store_doc, &d);
}

/* A route change under allocation failure: answered 200 only when the new
 * route is both in force and persisted; any other answer leaves the route in
 * force as it was (the route is saved before it is published, its text must
 * read back as the same document -- jansson's encoder can drop an object key
 * when it runs out of memory -- and a saved change is answered 200 even when
 * its echo cannot be built). */
static void test_route_put(void **state)
{
    static const char doc[] = "{\"policy\": \"weighted\", \"labels\": {\"stable\": 1, "
                              "\"canary\": 2}, \"weights\": {\"stable\": 90, \"canary\": 10}}";
    struct fz_server *s = fz_server_get();
    int statuses[600] = {0}, lost = 0, changed = 0;
    long n;

    (void)state;
    for (n = 1; n < MAX_STEPS; n++) {
        struct fz_response a;
        char *before = NULL, *after = NULL, *stored = NULL, *ignored = NULL;
        bool hit;
        qv_router_clear(s->router, "m");
        routes_now(s, &before, &ignored);
        free(ignored);
        fault_arm(n);
        fz_request(s, "PUT", "/v2/models/m/route", NULL, NULL, doc, strlen(doc), &a);
        hit = fault_disarm();
        if (getenv("QV_FAULT_VERBOSE"))
            printf("[ fault ] route put: step %ld: %d %s\n", n, a.status, a.body);
        routes_now(s, &after, &stored);
        if (a.status == 200) {
            assert_non_null(after);
            if (stored == NULL || strcmp(after, stored) != 0) {
                printf("[ fault ] route put: step %ld: answered 200, but the store holds %s\n",
                       n, stored ? stored : "(nothing)");
                lost++;
            }
        } else {
            expect_error_body(&a);
            if ((before == NULL) != (after == NULL) ||
                (before && after && strcmp(before, after) != 0)) {
                printf("[ fault ] route put: step %ld: answered %d, but the route changed\n", n,
                       a.status);
                changed++;
            }
        }
        if (hit)
            statuses[a.status < 600 && a.status >= 0 ? a.status : 0]++;
        free(before);
        free(after);
        free(stored);
        fz_response_free(&a);
        if (!hit) {
            assert_int_equal(a.status, 200);
            break;
        }
    }
    qv_router_clear(s->router, "m");
    assert_true(n < MAX_STEPS);
    printf("[ fault ] route put: %ld allocations failed in turn; answers:", n - 1);
    for (int st = 0; st < 600; st++)
        if (statuses[st])
            printf(" %d x%d", st, statuses[st]);
    printf("\n");
    fault_report_xcallers("route put");
    if (lost > 0 || changed > 0)
        fail_msg("route put: %d acknowledged changes not persisted, %d refused but applied",
                 lost, changed);
}

/* Runs a request with id "f-<k>", so that feedback has something to score. */
static void remember_id(struct fz_server *s, long k, char *body, size_t len)
{
    struct fz_response a;
    int n = snprintf(body, len,
                     "{\"id\": \"f-%ld\", \"inputs\": [{\"name\": \"input__0\", "
                     "\"datatype\": \"FP32\", \"shape\": [2, 4], \"data\": [[1, 2, 3, 4], "
                     "[4, 4, 4, 4]]}]}", k);

    fz_request(s, "POST", "/v2/models/m/infer", NULL, NULL, body, (size_t)n, &a);
    expect_answer(&a, false);
    fz_response_free(&a);
    snprintf(body, len, "{\"id\": \"f-%ld\", \"label\": 1}", k);
}

/* One management request under allocation failure: every answer is 200 or
 * a JSON error, and the same request without the fault is answered 200.
 * For feedback, each attempt scores a request of its own (feedback on one
 * request id may be taken once). */
static void manage_path(const char *method, const char *path, const char *body_fixed,
                        const char *what)
{
    struct fz_server *s = fz_server_get();
    int statuses[600] = {0};
    char body[512];
    long n;

    for (n = 1; n < MAX_STEPS; n++) {
        struct fz_response a;
        bool hit;
        if (body_fixed == NULL)
            remember_id(s, 2 * n, body, sizeof(body));
        else
            snprintf(body, sizeof(body), "%s", body_fixed);
        fault_arm(n);
        fz_request(s, method, path, NULL, NULL, body, strlen(body), &a);
        hit = fault_disarm();
        if (getenv("QV_FAULT_VERBOSE"))
            printf("[ fault ] %s: step %ld: %d %s\n", what, n, a.status, a.body);
        if (a.status != 200)
            expect_error_body(&a);
        if (hit)
            statuses[a.status < 600 && a.status >= 0 ? a.status : 0]++;
        fz_response_free(&a);
        if (body_fixed == NULL)
            remember_id(s, 2 * n + 1, body, sizeof(body));
        fz_request(s, method, path, NULL, NULL, body, strlen(body), &a);
        if (a.status != 200)
            fail_msg("%s: step %ld: the request without the fault got %d: %s", what, n,
                     a.status, a.body);
        fz_response_free(&a);
        if (!hit)
            break;
    }
    assert_true(n < MAX_STEPS);
    printf("[ fault ] %s: %ld allocations failed in turn; answers:", what, n - 1);
    for (int st = 0; st < 600; st++)
        if (statuses[st])
            printf(" %d x%d", st, statuses[st]);
    printf("\n");
    fault_report_xcallers(what);
}

static void test_feedback_and_label(void **state)
{
    struct fz_server *s = fz_server_get();

    (void)state;
    manage_path("POST", "/v2/models/m/feedback", NULL, "feedback");
    manage_path("PUT", "/v2/models/m/labels/stable", "{\"version\": 2}", "label put");
    qv_router_clear(s->router, "m");
}

/* Aborts the model's rollout if one runs and drops its route. */
static void rollout_reset(struct fz_server *s)
{
    struct fz_response a;

    fz_request(s, "DELETE", "/v2/models/m/rollout", NULL, NULL, "", 0, &a);
    fz_response_free(&a);
    qv_router_clear(s->router, "m");
}

/* Starting a rollout under allocation failure (quiver's and jansson's):
 * 201 or a JSON error; a refused start leaves no rollout running; without
 * the fault it starts. A start whose status echo cannot be built is still
 * 201 (with an empty body). */
static void test_rollout_start(void **state)
{
    static const char plan[] = "{\"canary\": 2, \"steps\": [10, 100], \"step_seconds\": 60}";
    struct fz_server *s = fz_server_get();
    int statuses[600] = {0}, started = 0;
    long n;

    (void)state;
    rollout_reset(s);
    for (n = 1; n < MAX_STEPS; n++) {
        struct fz_response a;
        bool hit;
        fault_arm(n);
        fz_request(s, "POST", "/v2/models/m/rollout", NULL, NULL, plan, strlen(plan), &a);
        hit = fault_disarm();
        if (getenv("QV_FAULT_VERBOSE"))
            printf("[ fault ] rollout start: step %ld: %d %s\n", n, a.status, a.body);
        if (hit)
            statuses[a.status < 600 && a.status >= 0 ? a.status : 0]++;
        if (a.status == 201 && a.len > 0) {
            json_t *j = json_loadb(a.body, a.len, 0, NULL);
            if (!json_is_string(json_object_get(j, "state")))
                fail_msg("rollout start: step %ld: 201 with an incomplete status: %s", n, a.body);
            json_decref(j);
        }
        if (a.status != 201) {
            expect_error_body(&a);
            fz_response_free(&a);
            /* Refused: nothing should run, so a new start is not a conflict. */
            fz_request(s, "POST", "/v2/models/m/rollout", NULL, NULL, plan, strlen(plan), &a);
            if (a.status == 409) {
                printf("[ fault ] rollout start: step %ld: refused, but the rollout runs\n", n);
                started++;
                fz_response_free(&a);
                rollout_reset(s);
                fz_request(s, "POST", "/v2/models/m/rollout", NULL, NULL, plan, strlen(plan),
                           &a);
            }
            if (a.status != 201)
                fail_msg("rollout start: step %ld: the start without the fault got %d: %s", n,
                         a.status, a.body);
        }
        fz_response_free(&a);
        rollout_reset(s);
        if (!hit)
            break;
    }
    assert_true(n < MAX_STEPS);
    if (started > 0)
        fail_msg("rollout start: %d refused starts left a rollout running", started);
    printf("[ fault ] rollout start: %ld allocations failed in turn; answers:", n - 1);
    for (int st = 0; st < 600; st++)
        if (statuses[st])
            printf(" %d x%d", st, statuses[st]);
    printf("\n");
    fault_report_xcallers("rollout start");
}

/* The state of the model's rollout ("running", "aborted", ...), read
 * without a fault; "" when there is none. */
static void rollout_state(struct fz_server *s, char *out, size_t len)
{
    struct fz_response a;
    json_t *j;

    fz_request(s, "GET", "/v2/models/m/rollout", NULL, NULL, "", 0, &a);
    j = a.status == 200 ? json_loadb(a.body, a.len, 0, NULL) : NULL;
    snprintf(out, len, "%s", json_is_string(json_object_get(j, "state"))
                                 ? json_string_value(json_object_get(j, "state")) : "");
    json_decref(j);
    fz_response_free(&a);
}

static void rollout_begin(struct fz_server *s)
{
    static const char plan[] = "{\"canary\": 2, \"steps\": [10, 100], \"step_seconds\": 60}";
    struct fz_response a;

    rollout_reset(s);
    fz_request(s, "POST", "/v2/models/m/rollout", NULL, NULL, plan, strlen(plan), &a);
    if (a.status != 201)
        fail_msg("rollout start without a fault: %d %s", a.status, a.body);
    fz_response_free(&a);
}

/* Reading a rollout's status and the model's alerts under allocation
 * failure: 200 with a whole document or a JSON error (5xx), never a crash
 * or a document with keys missing. Aborting one: 200 (the body may be empty
 * when its echo cannot be built) and the rollout is aborted, or an error and
 * it still runs. */
static void test_rollout_status_abort_alerts(void **state)
{
    struct fz_server *s = fz_server_get();
    char st[32];
    long n, n_get = 0, n_alerts = 0, n_abort = 0;
    bool hit_get = true, hit_alerts = true, hit_abort = true;

    (void)state;
    rollout_begin(s);
    for (n = 1; n < MAX_STEPS && (hit_get || hit_alerts); n++) {
        struct fz_response a;
        json_t *j;
        if (hit_get) {
            fault_arm(n);
            fz_request(s, "GET", "/v2/models/m/rollout", NULL, NULL, "", 0, &a);
            hit_get = fault_disarm();
            n_get += hit_get;
            j = a.status == 200 ? json_loadb(a.body, a.len, 0, NULL) : NULL;
            if (a.status == 200 && (!json_is_string(json_object_get(j, "state")) ||
                                    !json_is_object(json_object_get(j, "plan")) ||
                                    json_object_get(j, "last") == NULL))
                fail_msg("rollout status: step %ld: 200 with an incomplete document: %s", n,
                         a.body);
            if (a.status != 200)
                expect_error_body(&a);
            json_decref(j);
            fz_response_free(&a);
        }
        if (hit_alerts) {
            fault_arm(n);
            fz_request(s, "GET", "/v2/models/m/alerts", NULL, NULL, "", 0, &a);
            hit_alerts = fault_disarm();
            n_alerts += hit_alerts;
            j = a.status == 200 ? json_loadb(a.body, a.len, 0, NULL) : NULL;
            if (a.status == 200 && (!json_is_array(json_object_get(j, "rules")) ||
                                    !json_is_array(json_object_get(j, "errors"))))
                fail_msg("alerts: step %ld: 200 with an incomplete document: %s", n, a.body);
            if (a.status != 200)
                expect_error_body(&a);
            json_decref(j);
            fz_response_free(&a);
        }
    }
    assert_true(n < MAX_STEPS);
    rollout_state(s, st, sizeof(st));
    assert_string_equal(st, "running");
    for (n = 1; n < MAX_STEPS && hit_abort; n++) {
        struct fz_response a;
        fault_arm(n);
        fz_request(s, "DELETE", "/v2/models/m/rollout", NULL, NULL, "", 0, &a);
        hit_abort = fault_disarm();
        n_abort += hit_abort;
        rollout_state(s, st, sizeof(st));
        if (a.status == 200 && strcmp(st, "aborted") != 0)
            fail_msg("rollout abort: step %ld: 200 but the rollout is %s", n, st);
        if (a.status != 200) {
            expect_error_body(&a);
            if (strcmp(st, "running") != 0)
                fail_msg("rollout abort: step %ld: refused (%d) but the rollout is %s", n,
                         a.status, st);
        }
        fz_response_free(&a);
        rollout_begin(s);
    }
    assert_true(n < MAX_STEPS);
    rollout_reset(s);
    printf("[ fault ] rollout status: %ld, alerts: %ld, rollout abort: %ld allocations failed "
           "in turn\n", n_get, n_alerts, n_abort);
    fault_report_xcallers("rollout status, alerts, abort");
}

/* The controller's tick (scores, history, alert transitions with their
 * events, the rollout's decision) under allocation failure: no crash, and
 * afterwards the rollout still reads back whole and the alert rule of the
 * model (memory_bytes >= 0, which holds at once) fires once the allocations
 * succeed: a transition whose event cannot be built is made again on the
 * next tick. */
static void test_controller_tick(void **state)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;
    char st[32];
    json_t *j;
    long n;

    (void)state;
    rollout_begin(s);
    for (n = 1; n < MAX_STEPS; n++) {
        bool hit;
        fault_arm(n);
        qv_control_tick(s->control);
        hit = fault_disarm();
        rollout_state(s, st, sizeof(st));
        if (st[0] == '\0')
            fail_msg("controller tick: step %ld: the rollout no longer reads back", n);
        if (!hit)
            break;
    }
    assert_true(n < MAX_STEPS);
    qv_control_tick(s->control);
    fz_request(s, "GET", "/v2/models/m/alerts", NULL, NULL, "", 0, &a);
    assert_int_equal(a.status, 200);
    j = json_loadb(a.body, a.len, 0, NULL);
    {
        const char *rs = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "rules"), 0), "state"));
        if (rs == NULL || strcmp(rs, "firing") != 0)
            fail_msg("controller tick: the alert rule does not fire: %s", a.body);
    }
    json_decref(j);
    fz_response_free(&a);
    rollout_reset(s);
    printf("[ fault ] controller tick: %ld allocations failed in turn\n", n - 1);
    fault_report_xcallers("controller tick");
}

static int teardown_all(void **state)
{
    (void)state;
    fz_server_destroy();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kserve_request),
        cmocka_unit_test(test_tfs_request),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_version_load),
        cmocka_unit_test(test_route_put),
        cmocka_unit_test(test_feedback_and_label),
        cmocka_unit_test(test_rollout_start),
        cmocka_unit_test(test_rollout_status_abort_alerts),
        cmocka_unit_test(test_controller_tick),
    };

    fault_init();
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
