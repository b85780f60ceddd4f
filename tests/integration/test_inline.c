/* SPDX-License-Identifier: MIT
 *
 * Inline execution of fast versions and the admin listener, against a real
 * server: requests of a fast version run on the HTTP thread (counted apart
 * from queued ones in /metrics), a version that gets slow goes back to the
 * workers, overload still answers 429, a stop drains inline requests in
 * flight, an unload under load fails nothing, and the admin port answers
 * health while the main port is flooded.
 */
#include "integration/harness.h"

static const char *k_body =
    "{\"inputs\":[{\"name\":\"input__0\",\"shape\":[1,2],\"datatype\":\"FP32\","
    "\"data\":[1,2]}]}";

/* The admin port: the port file's second line. */
static int admin_port(const struct h_srv *s)
{
    char *text = h_read_file(s->port_file, NULL);
    char *nl = text ? strchr(text, '\n') : NULL;
    int port = nl ? atoi(nl + 1) : 0;

    free(text);
    assert_true(port > 0);
    return port;
}

/* A server view on the admin port (same repo, other base URL). */
static struct h_srv admin_view(const struct h_srv *s)
{
    struct h_srv a = *s;

    a.port = admin_port(s);
    snprintf(a.base, sizeof(a.base), "http://127.0.0.1:%d", a.port);
    a.loop = NULL;
    return a;
}

/* A counter or gauge of model m version 1 from /metrics ("" extra: none). */
static double metric(const struct h_srv *s, const char *name, const char *extra)
{
    struct h_resp r = h_get(s, "/metrics");
    char needle[256];
    const char *p;
    double v = -1;

    assert_int_equal(r.status, 200);
    snprintf(needle, sizeof(needle), "%s{model=\"m\",version=\"1\"%s}", name, extra);
    p = strstr(r.body, needle);
    if (p != NULL)
        v = strtod(p + strlen(needle), NULL);
    h_resp_free(&r);
    return v;
}

static double inline_count(const struct h_srv *s)
{
    return metric(s, "quiver_executions_total", ",path=\"inline\"");
}

static double queued_count(const struct h_srv *s)
{
    return metric(s, "quiver_executions_total", ",path=\"queued\"");
}

static void infer_ok(const struct h_srv *s)
{
    struct h_resp r = h_post(s, "/v2/models/m/infer", k_body);

    if (r.status != 200)
        fail_msg("infer: %ld %s %s", r.status, r.body ? r.body : "", r.err);
    h_resp_free(&r);
}

/* Sends requests one after another until the version runs them inline. */
static void warm_until_inline(const struct h_srv *s)
{
    for (int i = 0; i < 2000; i++) {
        infer_ok(s);
        if (i % 10 == 9 && inline_count(s) > 0)
            return;
        h_sleep_ms(1);
    }
    h_print_log(s);
    fail_msg("the fast version never ran a request inline");
}

static void test_inline_counts_and_switch_back(void **state)
{
    struct h_srv *s = *state;
    double inl, q, inl2, q2;
    int streak = 0;

    /* Fast for 300 calls, then 30 ms each: far over a 5 ms threshold (which
     * the fast calls stay under even on a busy machine). */
    h_test_model(s, "m", "");
    h_test_version(s, "m", 1, "{\"features\": 2, \"slow_after\": 300, \"slow_delay_us\": 30000}");
    h_start(s, "--inline-threshold-us", "5000", NULL);
    warm_until_inline(s);
    inl = inline_count(s);
    q = queued_count(s);
    assert_true(inl >= 1);
    assert_true(q >= 1); /* the first requests, before the version was measured */

    /* Past call 300 the version is slow: within a window of its compute
     * times it goes back to the workers, and stays there. */
    for (int i = 0; i < 1500 && streak < 20; i++) {
        infer_ok(s);
        inl2 = inline_count(s);
        q2 = queued_count(s);
        if (i > 320 && inl2 == inl && q2 == q + 1)
            streak++;
        else
            streak = 0;
        inl = inl2;
        q = q2;
    }
    if (streak < 20) {
        h_print_log(s);
        fail_msg("the slow version kept running inline (inline %.0f, queued %.0f)", inl, q);
    }
    h_stop_ok(s);
}

/* Clients that send one request each, concurrently, on their own threads. */
struct flood {
    const struct h_srv *s;
    int n;
    struct h_resp *out;
    pthread_t th;
    _Atomic bool done;
};

static void *flood_main(void *arg)
{
    struct flood *f = arg;
    const char **paths = calloc((size_t)f->n, sizeof(*paths));
    const char **bodies = calloc((size_t)f->n, sizeof(*bodies));

    for (int i = 0; i < f->n; i++) {
        paths[i] = "/v2/models/m/infer";
        bodies[i] = k_body;
    }
    h_multi(f->s, f->n, "POST", paths, bodies, f->out);
    atomic_store(&f->done, true);
    free(paths);
    free(bodies);
    return NULL;
}

static void flood_start(struct flood *f, const struct h_srv *s, int n)
{
    f->s = s;
    f->n = n;
    f->out = calloc((size_t)n, sizeof(*f->out));
    assert_non_null(f->out);
    atomic_init(&f->done, false);
    assert_int_equal(pthread_create(&f->th, NULL, flood_main, f), 0);
}

static void flood_join(struct flood *f, long *ok, long *overload, long *other)
{
    pthread_join(f->th, NULL);
    *ok = *overload = *other = 0;
    for (int i = 0; i < f->n; i++) {
        if (f->out[i].status == 200)
            (*ok)++;
        else if (f->out[i].status == 429)
            (*overload)++;
        else
            (*other)++;
        h_resp_free(&f->out[i]);
    }
    free(f->out);
}

static void test_inline_overload_still_429(void **state)
{
    struct h_srv *s = *state;
    struct flood f;
    long ok, overload, other;

    /* Inline-eligible (threshold 1 s) yet 20 ms per call once warm: one
     * instance and a queue of one, so concurrent requests must get 429. */
    h_test_model(s, "m", "\"instances\": 1, \"queue_limit\": 1");
    h_test_version(s, "m", 1, "{\"features\": 2, \"slow_after\": 100, \"slow_delay_us\": 20000}");
    h_start(s, "--inline-threshold-us", "1000000", NULL);
    warm_until_inline(s);
    for (int i = 0; i < 3; i++) {
        flood_start(&f, s, 48);
        flood_join(&f, &ok, &overload, &other);
        assert_int_equal(other, 0);
        assert_true(ok >= 1);
        if (overload > 0)
            break;
    }
    assert_true(overload > 0);
    assert_true(inline_count(s) >= 1);
    h_stop_ok(s);
}

static void test_inline_drain_on_stop(void **state)
{
    struct h_srv *s = *state;
    struct h_srv adm;
    struct flood f;
    long ok, overload, other;
    uint64_t deadline;

    /* Inline once warm, then 300 ms per call: the stop comes while requests
     * run on the HTTP threads. */
    h_test_model(s, "m", "\"instances\": 2");
    h_test_version(s, "m", 1, "{\"features\": 2, \"slow_after\": 100, \"slow_delay_us\": 300000}");
    h_start(s, "--inline-threshold-us", "1000000", "--admin-port", "0", NULL);
    adm = admin_view(s);
    warm_until_inline(s);
    while (inline_count(&adm) < 1)
        h_sleep_ms(5);
    /* Past call 100: every further call is slow. */
    for (int i = 0; i < 100; i++) {
        struct h_resp r = h_post(s, "/v2/models/m/infer", k_body);
        h_resp_free(&r);
        if (metric(&adm, "quiver_requests_total", "") >= 100)
            break;
    }
    flood_start(&f, s, 2);
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (metric(&adm, "quiver_inflight_requests", "") < 1 && h_now_ms() < deadline)
        h_sleep_ms(2);
    assert_true(metric(&adm, "quiver_inflight_requests", "") >= 1);
    assert_int_equal(h_stop(s), 0);
    flood_join(&f, &ok, &overload, &other);
    /* Dispatched before the stop: finished, not cut. */
    assert_true(ok >= 1);
    assert_int_equal(overload, 0);
    assert_int_equal(ok + other, 2);
    (void)other; /* a request that arrived after the stop began gets 503 */
}

static void test_inline_unload_under_load(void **state)
{
    struct h_srv *s = *state;
    struct h_loop *l;

    h_test_model(s, "m", "\"version_policy\": {\"latest\": {\"num_versions\": 1}}");
    h_test_version(s, "m", 1, "{\"features\": 2}");
    h_start(s, "--inline-threshold-us", "5000", NULL);
    warm_until_inline(s);
    l = h_loop_start(s, "/v2/models/m/infer", k_body);
    h_loop_advance(l, 50);
    /* The loop runs inline on version 1 (its series leave /metrics once it is
     * unloaded, and version 2 starts on the workers until it is measured). */
    assert_true(inline_count(s) >= 1);
    /* Version 2 arrives: version 1 drains and unloads under the loop. */
    h_test_version(s, "m", 2, "{\"features\": 2}");
    h_loop_wait_version(l, 2, 50);
    h_wait_state(s, "m", 1, "UNLOADED");
    h_loop_advance(l, 50);
    h_loop_stop(l);
    if (atomic_load(&l->failed) != 0)
        fail_msg("%ld of %ld requests failed: %s", atomic_load(&l->failed),
                 atomic_load(&l->total), l->first_failure);
    h_stop_ok(s);
}

static void test_admin_health_during_flood(void **state)
{
    struct h_srv *s = *state;
    struct h_srv adm;
    struct flood f;
    long ok, overload, other;
    bool answered_during = false;
    uint64_t deadline;

    /* 20 ms per call on the worker path and a deep queue: 96 concurrent
     * clients keep the main port busy for about a second. */
    h_test_model(s, "m", "\"queue_limit\": 1000");
    h_test_version(s, "m", 1, "{\"features\": 2, \"delay_us\": 20000}");
    h_start(s, "--admin-port", "0", NULL);
    adm = admin_view(s);
    flood_start(&f, s, 96);
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (metric(&adm, "quiver_queue_depth", "") < 1 && !atomic_load(&f.done) &&
           h_now_ms() < deadline)
        h_sleep_ms(2);
    for (int i = 0; i < 5 && !atomic_load(&f.done); i++) {
        struct h_resp live = h_get(&adm, "/v2/health/live");
        struct h_resp ready = h_get(&adm, "/v2/health/ready");
        bool flood_on = !atomic_load(&f.done);
        assert_int_equal(live.status, 200);
        assert_int_equal(ready.status, 200);
        answered_during = answered_during || flood_on;
        h_resp_free(&live);
        h_resp_free(&ready);
    }
    flood_join(&f, &ok, &overload, &other);
    assert_int_equal(other, 0);
    /* Health was answered while the flood was still being served. */
    assert_true(answered_during);
    /* The admin port answers health and metrics only. */
    {
        struct h_resp r = h_post(&adm, "/v2/models/m/infer", k_body);
        assert_int_equal(r.status, 404);
        h_resp_free(&r);
    }
    h_stop_ok(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_inline_counts_and_switch_back),
        H_TEST(test_inline_overload_still_429),
        H_TEST(test_inline_drain_on_stop),
        H_TEST(test_inline_unload_under_load),
        H_TEST(test_admin_health_during_flood),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
