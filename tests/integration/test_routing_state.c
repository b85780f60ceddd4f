/* SPDX-License-Identifier: MIT
 *
 * Routing state on a live server: what is saved and what is refused.
 *  - a route change the store cannot save (the database locked by another process, or its
 *    file deleted) is answered 5xx and not applied, before and after a restart;
 *  - labels are their own resource: a route document without "labels" keeps them;
 *  - the route history is a stack: each rollback steps back one change, and the event
 *    says which revision is in force;
 *  - /v2/events validates limit and since.
 */
#include "harness.h"

#include <sqlite3.h>

static void two_versions(struct h_srv *s, const char *model)
{
    h_test_model(s, model, "\"version_policy\": {\"all\": {}}");
    h_test_version(s, model, 1, "{\"features\": 4, \"scale\": 1.0}");
    h_test_version(s, model, 2, "{\"features\": 4, \"scale\": -1.0}");
}

static void start_two(struct h_srv *s)
{
    two_versions(s, "m");
    h_start(s, NULL);
    h_wait_state(s, "m", 1, "READY");
    h_wait_state(s, "m", 2, "READY");
}

static void expect_status(struct h_srv *s, const char *method, const char *path, const char *body,
                          long status)
{
    struct h_resp r = h_req(s, method, path, body);

    if (r.status != status)
        fail_msg("%s %s %s: %ld %s (expected %ld)", method, path, body ? body : "", r.status,
                 r.body, status);
    h_resp_free(&r);
}

/* The route in force, parsed (caller decrefs). */
static json_t *route_of(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/route");
    json_t *j;

    assert_int_equal(r.status, 200);
    j = json_incref(r.json);
    h_resp_free(&r);
    return j;
}

static const char *target_of(json_t *rt)
{
    const char *t = h_jstr(rt, "target");
    return t ? t : "";
}

static int64_t label_of(json_t *rt, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(rt, "labels"), name));
}

/* ---- A change the store cannot save ---- */

static void test_store_failure_refuses_change(void **state)
{
    struct h_srv *s = *state;
    char path[400];
    sqlite3 *db = NULL;
    struct h_resp r;
    json_t *rt;

    start_two(s);
    expect_status(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 1}", 200);

    /* Another process holds the database's write lock past the busy timeout: the change
     * cannot be saved, so it is refused and the route in force stays. */
    snprintf(path, sizeof(path), "%s/state.db", s->data);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    r = h_req(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 2}");
    if (r.status < 500)
        fail_msg("PUT with the store locked: %ld %s (expected 5xx)", r.status, r.body);
    assert_non_null(h_jstr(r.json, "error"));
    h_resp_free(&r);
    r = h_req(s, "PUT", "/v2/models/m/labels/canary", "{\"version\": 2}");
    assert_true(r.status >= 500);
    h_resp_free(&r);
    rt = route_of(s);
    assert_string_equal(target_of(rt), "1");
    assert_int_equal(label_of(rt, "canary"), 0);
    json_decref(rt);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* After a restart the route is the last one acknowledged. */
    h_stop_ok(s);
    h_start(s, NULL);
    h_wait_state(s, "m", 1, "READY");
    h_wait_state(s, "m", 2, "READY");
    rt = route_of(s);
    assert_string_equal(target_of(rt), "1");
    assert_int_equal(label_of(rt, "canary"), 0);
    json_decref(rt);

    /* The database file deleted under the running server: noticed, changes refused. */
    assert_int_equal(
        h_run("rm -f '%s/state.db' '%s/state.db-wal' '%s/state.db-shm'", s->data, s->data, s->data),
        0);
    r = h_req(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 2}");
    if (r.status < 500)
        fail_msg("PUT with the database deleted: %ld %s (expected 5xx)", r.status, r.body);
    assert_non_null(strstr(h_jstr(r.json, "error"), "deleted"));
    h_resp_free(&r);
    rt = route_of(s);
    assert_string_equal(target_of(rt), "1");
    json_decref(rt);
    h_stop_ok(s);
}

/* ---- Labels are their own resource ---- */

static void test_route_put_keeps_labels(void **state)
{
    struct h_srv *s = *state;
    json_t *rt;

    start_two(s);
    expect_status(s, "PUT", "/v2/models/m/labels/stable", "{\"version\": 1}", 200);
    expect_status(s, "PUT", "/v2/models/m/labels/canary", "{\"version\": 2}", 200);
    /* A document without "labels" keeps them, and may use them. */
    expect_status(s, "PUT", "/v2/models/m/route",
                  "{\"policy\": \"weighted\", \"weights\": {\"stable\": 90, \"canary\": 10}}", 200);
    expect_status(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 1}", 200);
    rt = route_of(s);
    assert_int_equal(label_of(rt, "stable"), 1);
    assert_int_equal(label_of(rt, "canary"), 2);
    json_decref(rt);
    /* "labels" in the document replaces them explicitly. */
    expect_status(s, "PUT", "/v2/models/m/route",
                  "{\"policy\": \"pinned\", \"target\": 1, \"labels\": {\"stable\": 1}}", 200);
    rt = route_of(s);
    assert_int_equal(label_of(rt, "stable"), 1);
    assert_null(json_object_get(json_object_get(rt, "labels"), "canary"));
    json_decref(rt);
    expect_status(s, "PUT", "/v2/models/m/route",
                  "{\"policy\": \"pinned\", \"target\": 1, \"labels\": {}}", 200);
    rt = route_of(s);
    assert_int_equal(json_object_size(json_object_get(rt, "labels")), 0);
    json_decref(rt);
    h_stop_ok(s);
}

/* ---- Rollback is a stack ---- */

/* The revision the newest route.rollback event says is in force. */
static long rollback_revision(struct h_srv *s)
{
    struct h_resp r = h_get(s, "/v2/models/m/events");
    json_t *ev, *nv;
    size_t i;
    long rev = -1;

    assert_int_equal(r.status, 200);
    json_array_foreach(r.json, i, ev)
    {
        if (strcmp(h_jstr(ev, "what"), "route.rollback") != 0)
            continue;
        nv = json_loads(h_jstr(ev, "new"), 0, NULL);
        rev = (long)json_integer_value(json_object_get(nv, "revision"));
        json_decref(nv);
    }
    h_resp_free(&r);
    return rev;
}

static void test_rollback_steps_back(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *rt;

    start_two(s);
    expect_status(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 1}", 200);
    expect_status(s, "PUT", "/v2/models/m/route", "{\"policy\": \"pinned\", \"target\": 2}", 200);
    expect_status(s, "PUT", "/v2/models/m/route",
                  "{\"policy\": \"weighted\", \"weights\": {\"1\": 50, \"2\": 50}}", 200);
    expect_status(s, "POST", "/v2/models/m/route/rollback", NULL, 200);
    rt = route_of(s);
    assert_string_equal(h_jstr(rt, "policy"), "pinned");
    assert_string_equal(target_of(rt), "2");
    json_decref(rt);
    assert_int_equal(rollback_revision(s), 2);
    /* A second rollback goes one more step back, not forth again. */
    expect_status(s, "POST", "/v2/models/m/route/rollback", NULL, 200);
    rt = route_of(s);
    assert_string_equal(target_of(rt), "1");
    json_decref(rt);
    assert_int_equal(rollback_revision(s), 1);
    r = h_post(s, "/v2/models/m/route/rollback", NULL);
    h_expect_error(&r, 404, "no previous route");
    h_resp_free(&r);
    h_stop_ok(s);
}

/* ---- Events: limit and since ---- */

static void test_events_limit_and_since(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char path[200], iso[32];
    uint64_t mid;
    time_t t;
    struct tm tm;

    start_two(s);
    expect_status(s, "PUT", "/v2/models/m/labels/a", "{\"version\": 1}", 200);
    expect_status(s, "PUT", "/v2/models/m/labels/b", "{\"version\": 1}", 200);
    /* A point in time between the changes, a second away from both, so that its ISO
     * form (whole seconds) falls between them too. */
    h_sleep_ms(1100);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        mid = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        t = ts.tv_sec;
    }
    h_sleep_ms(1100);
    expect_status(s, "PUT", "/v2/models/m/labels/c", "{\"version\": 2}", 200);

    /* limit=N: the newest N. */
    r = h_get(s, "/v2/models/m/events?limit=2");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_non_null(strstr(h_jstr(json_array_get(r.json, 1), "new"), "c=2"));
    h_resp_free(&r);
    /* since as epoch ms and as ISO 8601 (UTC and with an offset): only the last change. */
    snprintf(path, sizeof(path), "/v2/models/m/events?since=%llu", (unsigned long long)mid);
    r = h_get(s, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    h_resp_free(&r);
    gmtime_r(&t, &tm);
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(path, sizeof(path), "/v2/models/m/events?since=%s", iso);
    r = h_get(s, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    h_resp_free(&r);
    t += 2 * 3600;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S%%2B02:00", &tm);
    snprintf(path, sizeof(path), "/v2/models/m/events?since=%s", iso);
    r = h_get(s, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    h_resp_free(&r);

    /* A duration back from now: the last hour holds every event of the test. */
    {
        size_t all;
        r = h_get(s, "/v2/models/m/events");
        all = json_array_size(r.json);
        h_resp_free(&r);
        r = h_get(s, "/v2/models/m/events?since=1h");
        assert_int_equal(r.status, 200);
        assert_int_equal(json_array_size(r.json), all);
        assert_true(all >= 3);
        h_resp_free(&r);
    }

    /* Bad values: 400 naming the parameter (before, 0 or garbage meant "no limit"). */
    r = h_get(s, "/v2/events?limit=0");
    h_expect_error(&r, 400, "limit");
    h_resp_free(&r);
    r = h_get(s, "/v2/events?limit=abc");
    h_expect_error(&r, 400, "limit");
    h_resp_free(&r);
    r = h_get(s, "/v2/events?limit=-3");
    h_expect_error(&r, 400, "limit");
    h_resp_free(&r);
    r = h_get(s, "/v2/events?limit=99999999999999999999999");
    h_expect_error(&r, 400, "limit");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/events?since=yesterday");
    h_expect_error(&r, 400, "since");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/events?since=2026-13-01T00:00:00Z");
    h_expect_error(&r, 400, "since");
    h_resp_free(&r);
    h_stop_ok(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_store_failure_refuses_change),
        H_TEST(test_route_put_keeps_labels),
        H_TEST(test_rollback_steps_back),
        H_TEST(test_events_limit_and_since),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
