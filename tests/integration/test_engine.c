/* SPDX-License-Identifier: MIT
 *
 * The engine through the real server: bounded queues (429 + Retry-After),
 * dynamic batching (batched outputs equal unbatched ones; requests of other
 * widths never share a call), the memory budget, warm-up, and /metrics
 * checked by promtool.
 */
#include "harness.h"

#define ONE_ROW(x) "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,1],\"data\":[" x "]}]}"

/* ---- Queue limit ---- */

struct bg_multi {
    const struct h_srv *s;
    int n;
    const char *const *paths, *const *bodies;
    struct h_resp *out;
    _Atomic bool done;
};

static void *bg_multi_main(void *arg)
{
    struct bg_multi *b = arg;

    h_multi(b->s, b->n, "POST", b->paths, b->bodies, b->out);
    atomic_store(&b->done, true);
    return NULL;
}

static void test_queue_full_is_429(void **state)
{
    struct h_srv *s = *state;
    enum { N = 10 };
    const char *paths[N], *bodies[N];
    struct h_resp out[N];
    struct bg_multi b;
    pthread_t th;
    int ok = 0, over = 0, lives = 0;
    uint64_t deadline;

    h_test_model(s, "slow", "\"queue_limit\": 2, \"instances\": 1, \"max_batch_size\": 0");
    h_test_version(s, "slow", 1, "{\"features\": 1, \"linear\": true, \"delay_us\": 200000}");
    h_start(s, NULL);

    for (int i = 0; i < N; i++) {
        paths[i] = "/v2/models/slow/infer";
        bodies[i] = ONE_ROW("1");
    }
    memset(&b, 0, sizeof(b));
    b.s = s;
    b.n = N;
    b.paths = paths;
    b.bodies = bodies;
    b.out = out;
    assert_int_equal(pthread_create(&th, NULL, bg_multi_main, &b), 0);

    /* While the slow version is busy, liveness still answers at once. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    while (!atomic_load(&b.done) && h_now_ms() < deadline) {
        struct h_resp r = h_get(s, "/v2/health/live");
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
        lives++;
        h_sleep_ms(10);
    }
    pthread_join(th, NULL);
    assert_true(lives > 0);

    for (int i = 0; i < N; i++) {
        char ra[32];
        if (out[i].status == 200) {
            ok++;
        } else if (out[i].status == 429) {
            over++;
            h_expect_error(&out[i], 429, NULL);
            assert_true(h_header(&out[i], "Retry-After", ra, sizeof(ra)));
            assert_true(atoi(ra) >= 1);
        } else {
            fail_msg("request %d: unexpected %ld %s %s", i, out[i].status, out[i].body,
                     out[i].err);
        }
        h_resp_free(&out[i]);
    }
    print_message("%d served, %d refused with 429, %d liveness probes meanwhile\n", ok, over,
                  lives);
    assert_true(ok >= 1);
    assert_true(over >= 1);
    /* The queue drained: the version serves again. */
    {
        struct h_resp r = h_post(s, "/v2/models/slow/infer", ONE_ROW("1"));
        assert_int_equal(r.status, 200);
        h_resp_free(&r);
    }
    h_stop_ok(s);
}

/* ---- Dynamic batching ---- */

/* Sum of a per-version series "name{model="m",version="v"} N" in /metrics. */
static double metric_value(const char *text, const char *name, const char *model, int v)
{
    char prefix[256];
    const char *p = text;

    snprintf(prefix, sizeof(prefix), "%s{model=\"%s\",version=\"%d\"} ", name, model, v);
    while ((p = strstr(p, prefix)) != NULL) {
        if (p == text || p[-1] == '\n')
            return strtod(p + strlen(prefix), NULL);
        p++;
    }
    return -1;
}

static void test_batched_equals_unbatched(void **state)
{
    struct h_srv *s = *state;
    enum { N = 16, COLS = 30 };
    char *bodies[N];
    const char *paths[N];
    double alone[N];
    struct h_resp out[N];
    double items = 0, batches = 0;
    uint64_t deadline;
    int rounds = 0;

    h_copy_examples(s);
    h_writef("{\"backend\": \"xgboost\", \"max_batch_size\": 16, \"max_queue_delay_us\": 20000,"
             " \"instances\": 1, \"version_policy\": {\"specific\": {\"versions\": [2]}},"
             " \"inputs\": [{\"name\": \"features\", \"datatype\": \"FP32\", \"shape\": [-1, 30]}],"
             " \"outputs\": [{\"name\": \"probability\", \"datatype\": \"FP32\", \"shape\": [-1]}]}",
             "%s/fraud/config.json", s->repo);
    h_start(s, NULL);

    /* 16 different rows, fixed seed; each answered alone first. */
    srand(12345);
    for (int i = 0; i < N; i++) {
        float x[COLS];
        struct h_resp r;
        for (int c = 0; c < COLS; c++)
            x[c] = (float)((rand() % 2001) - 1000) / 128.0f;
        bodies[i] = h_kserve_body(NULL, "features", x, 1, COLS);
        paths[i] = "/v2/models/fraud/versions/2/infer";
        r = h_post(s, paths[i], bodies[i]);
        if (r.status != 200)
            fail_msg("row %d alone: %ld %s", i, r.status, r.body);
        assert_int_equal(h_output_values(r.json, 0, &alone[i], 1), 1);
        h_resp_free(&r);
    }

    /* Concurrently, until the metrics show a batch of more than one row. */
    deadline = h_now_ms() + H_DEADLINE_MS;
    for (;;) {
        struct h_resp m;
        h_multi(s, N, "POST", paths, (const char *const *)bodies, out);
        rounds++;
        for (int i = 0; i < N; i++) {
            double y;
            if (out[i].status != 200)
                fail_msg("request %d: %ld %s %s", i, out[i].status, out[i].body, out[i].err);
            assert_int_equal(h_output_values(out[i].json, 0, &y, 1), 1);
            if (y != alone[i])
                fail_msg("row %d: batched %.9g, alone %.9g", i, y, alone[i]);
            h_resp_free(&out[i]);
        }
        m = h_get(s, "/metrics");
        assert_int_equal(m.status, 200);
        items = metric_value(m.body, "quiver_batch_size_sum", "fraud", 2);
        batches = metric_value(m.body, "quiver_batch_size_count", "fraud", 2);
        h_resp_free(&m);
        assert_true(items > 0 && batches > 0);
        if (items > batches)
            break;
        if (h_now_ms() > deadline)
            fail_msg("no batch of more than one row in %d rounds (%g rows in %g batches)",
                     rounds, items, batches);
    }
    print_message("%d round(s): %g rows in %g backend calls\n", rounds, items, batches);
    for (int i = 0; i < N; i++)
        free(bodies[i]);
    h_stop_ok(s);
}

/* ---- Batching with a dynamic non-batch dimension ---- */

/* Concurrent requests of different widths to a [-1, -1] input with dynamic
 * batching: each is answered from its own rows (a batch only ever holds
 * requests of one width). */
static void test_mixed_widths_batched(void **state)
{
    struct h_srv *s = *state;
    enum { N = 8 };
    static const int widths[N] = {2, 7, 2, 7, 3, 2, 7, 3};
    char *bodies[N];
    const char *paths[N];
    struct h_resp out[N];

    h_test_model(s, "seq", "\"max_batch_size\": 16, \"max_queue_delay_us\": 200000, "
                           "\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", "
                           "\"shape\": [-1, -1]}]");
    h_test_version(s, "seq", 1, "{\"features\": -1, \"linear\": true}");
    h_start(s, NULL);
    for (int i = 0; i < N; i++) {
        float x[8];
        for (int c = 0; c < widths[i]; c++)
            x[c] = (float)(i + 1); /* the row's mean is i + 1, whatever its width */
        bodies[i] = h_kserve_body(NULL, "input__0", x, 1, widths[i]);
        paths[i] = "/v2/models/seq/infer";
    }
    for (int round = 0; round < 3; round++) {
        h_multi(s, N, "POST", paths, (const char *const *)bodies, out);
        for (int i = 0; i < N; i++) {
            double y;
            if (out[i].status != 200)
                fail_msg("request %d (width %d): %ld %s %s", i, widths[i], out[i].status,
                         out[i].body, out[i].err);
            assert_int_equal(h_output_values(out[i].json, 0, &y, 1), 1);
            if (y != (double)(i + 1))
                fail_msg("request %d (width %d): %g, expected %d", i, widths[i], y, i + 1);
            h_resp_free(&out[i]);
        }
    }
    for (int i = 0; i < N; i++)
        free(bodies[i]);
    h_stop_ok(s);
}

/* ---- Memory budget ---- */

static void test_memory_budget(void **state)
{
    struct h_srv *s = *state;
    int ready = 0, refused = 0;
    struct h_resp r;

    /* Three versions holding 1 MiB each under a 3 MiB budget: two fit. */
    h_test_model(s, "heavy", "");
    for (int v = 1; v <= 3; v++)
        h_test_version(s, "heavy", v, "{\"features\": 1, \"linear\": true, "
                                      "\"memory_bytes\": 1048576}");
    h_start(s, "--memory-budget", "3M", NULL);

    for (int v = 1; v <= 3; v++) {
        char st[32], reason[256], path[128];
        h_state_of(s, "heavy", v, st, sizeof(st), reason, sizeof(reason));
        snprintf(path, sizeof(path), "/v2/models/heavy/versions/%d/infer", v);
        if (strcmp(st, "READY") == 0) {
            ready++;
            r = h_post(s, path, ONE_ROW("2"));
            assert_int_equal(r.status, 200);
            h_resp_free(&r);
        } else {
            refused++;
            assert_string_equal(st, "UNAVAILABLE");
            if (strstr(reason, "memory budget") == NULL)
                fail_msg("heavy/%d: reason \"%s\" does not mention the memory budget", v,
                         reason);
            r = h_post(s, path, ONE_ROW("2"));
            h_expect_error(&r, 503, "memory budget");
            h_resp_free(&r);
        }
    }
    assert_int_equal(ready, 2);
    assert_int_equal(refused, 1);

    /* An explicit load beyond the budget is refused the same way; the server stays up. */
    for (int v = 1; v <= 3; v++) {
        char st[32], path[128];
        h_state_of(s, "heavy", v, st, sizeof(st), NULL, 0);
        if (strcmp(st, "UNAVAILABLE") != 0)
            continue;
        snprintf(path, sizeof(path), "/v2/repository/models/heavy/versions/%d/load", v);
        r = h_post(s, path, NULL);
        h_expect_error(&r, 503, "memory budget");
        h_resp_free(&r);
    }
    r = h_get(s, "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "quiver_memory_budget_bytes 3145728\n"));
    h_resp_free(&r);
    r = h_get(s, "/v2/health/live");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    h_stop_ok(s);
}

/* ---- Warm-up ---- */

/* A load that does not fit evicts the least recently used idle version. */
static void test_memory_budget_evicts_idle(void **state)
{
    struct h_srv *s = *state;
    char st[3][32], reason[256];
    int refused = -1, evicted = 0;
    struct h_resp r;

    h_test_model(s, "heavy", "");
    for (int v = 1; v <= 3; v++)
        h_test_version(s, "heavy", v, "{\"features\": 1, \"linear\": true, "
                                      "\"memory_bytes\": 1048576}");
    h_start(s, "--memory-budget", "3M", "--evict-idle-ms", "1000", NULL);
    for (int v = 1; v <= 3; v++) {
        h_state_of(s, "heavy", v, st[v - 1], sizeof(st[0]), NULL, 0);
        if (strcmp(st[v - 1], "UNAVAILABLE") == 0)
            refused = v;
    }
    assert_true(refused > 0);
    /* Ask for the refused version until an idle one can make room for it
     * (a version is idle after 1 s without requests: long enough that those
     * loaded at start are not idle yet while the last one loads, even on a
     * busy machine). */
    for (int tries = 0; tries < 900; tries++) {
        char path[128];
        snprintf(path, sizeof(path), "/v2/repository/models/heavy/versions/%d/load", refused);
        r = h_post(s, path, NULL);
        if (r.status == 200) {
            h_resp_free(&r);
            break;
        }
        h_expect_error(&r, 503, "memory budget");
        h_resp_free(&r);
        usleep(100 * 1000);
    }
    h_state_of(s, "heavy", refused, st[0], sizeof(st[0]), NULL, 0);
    assert_string_equal(st[0], "READY");
    for (int v = 1; v <= 3; v++) {
        if (v == refused)
            continue;
        h_state_of(s, "heavy", v, st[1], sizeof(st[1]), reason, sizeof(reason));
        if (strcmp(st[1], "UNLOADED") == 0) {
            evicted++;
            assert_non_null(strstr(reason, "evicted"));
        } else {
            assert_string_equal(st[1], "READY");
        }
    }
    assert_int_equal(evicted, 1);
    h_stop_ok(s);
}

static void test_warmup(void **state)
{
    struct h_srv *s = *state;
    char st[32], reason[256];
    struct h_resp r;

    h_test_model(s, "warm_good",
                 "\"warmup\": [{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\","
                 " \"shape\": [2, 2], \"data\": [1, 2, 3, 4]}]}]");
    h_test_version(s, "warm_good", 1, "{\"features\": 2}");
    /* Wrong width for a 2-feature model. */
    h_test_model(s, "warm_bad",
                 "\"warmup\": [{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\","
                 " \"shape\": [1, 3], \"data\": [1, 2, 3]}]}]");
    h_test_version(s, "warm_bad", 1, "{\"features\": 2}");
    h_start(s, NULL);

    h_state_of(s, "warm_good", 1, st, sizeof(st), reason, sizeof(reason));
    assert_string_equal(st, "READY");
    r = h_post(s, "/v2/models/warm_good/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,2],"
               "\"data\":[1,2]}]}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    h_state_of(s, "warm_bad", 1, st, sizeof(st), reason, sizeof(reason));
    assert_string_equal(st, "UNAVAILABLE");
    if (strstr(reason, "warmup") == NULL)
        fail_msg("warm_bad/1: reason \"%s\" does not name the warm-up", reason);
    r = h_post(s, "/v2/models/warm_bad/versions/1/infer",
               "{\"inputs\":[{\"name\":\"input__0\",\"datatype\":\"FP32\",\"shape\":[1,2],"
               "\"data\":[1,2]}]}");
    h_expect_error(&r, 503, "warmup");
    h_resp_free(&r);
    h_stop_ok(s);
}

/* ---- /metrics ---- */

static void test_metrics_pass_promtool(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char path[600];
    int rc;

    h_copy_examples(s);
    h_test_model(s, "flaky", "");
    h_test_version(s, "flaky", 1, "{\"features\": 1, \"fail_rate\": 0.5}");
    h_start(s, NULL);
    /* Some traffic of each outcome, so the series carry values. */
    for (int i = 0; i < 8; i++) {
        r = h_post(s, "/v2/models/flaky/infer", ONE_ROW("1"));
        assert_true(r.status == 200 || r.status == 500);
        h_resp_free(&r);
    }
    r = h_post(s, "/v2/models/fraud/infer", "{\"inputs\": 1}");
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    r = h_post(s, "/v2/models/housing/infer",
               "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,8],"
               "\"data\":[1,2,3,4,5,6,7,8]}]}");
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    r = h_get(s, "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "quiver_requests_total{model=\"flaky\",version=\"1\"} 8"));
    snprintf(path, sizeof(path), "%s/metrics.txt", s->dir);
    h_write_file(path, r.body);
    h_resp_free(&r);
    /* promtool must be installed (Debian package prometheus): absent is a failure. */
    rc = h_run("promtool check metrics < '%s'", path);
    if (rc != 0)
        fail_msg("promtool check metrics failed (status %d); is promtool installed?", rc);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_queue_full_is_429),
    H_TEST(test_batched_equals_unbatched),
    H_TEST(test_mixed_widths_batched),
    H_TEST(test_memory_budget),
    H_TEST(test_memory_budget_evicts_idle),
    H_TEST(test_warmup),
    H_TEST(test_metrics_pass_promtool),
};

H_MAIN(tests)
