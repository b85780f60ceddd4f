/* SPDX-License-Identifier: MIT
 *
 * Monitoring on a live server: the history sampler writes rows that survive a
 * restart (with since/version/limit filters and bad parameters rejected), the
 * stats endpoints show counts, windows, weights and scores, alert rules are
 * validated (errors name the field), fire and resolve as audit events and are
 * POSTed to a webhook, and /metrics with route weights in force passes
 * `promtool check metrics`.
 */
#include "integration/harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char body4[] =
    "{\"inputs\": [{\"name\": \"input__0\", \"datatype\": \"FP32\", \"shape\": [1, 4], "
    "\"data\": [0.1, 0.2, 0.3, 0.4]}]}";

static void send_n(struct h_srv *s, const char *path, int n)
{
    for (int i = 0; i < n; i++) {
        struct h_resp r = h_post(s, path, body4);
        h_resp_free(&r);
    }
}

/* Polls path until the JSON array at key has at least n entries. */
static json_t *wait_rows(struct h_srv *s, const char *path, const char *key, size_t n)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        struct h_resp r = h_get(s, path);
        if (r.status == 200 && json_array_size(json_object_get(r.json, key)) >= n) {
            json_t *j = json_incref(r.json);
            h_resp_free(&r);
            return j;
        }
        if (h_now_ms() > deadline)
            fail_msg("%s never had %zu %s: %ld %s", path, n, key, r.status, r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
}

static long total_requests(json_t *rows, const char *version)
{
    json_t *e;
    size_t i;
    long sum = 0;

    json_array_foreach(rows, i, e) if (strcmp(h_jstr(e, "version"), version) == 0) sum +=
        (long)json_integer_value(json_object_get(e, "requests"));
    return sum;
}

static void test_history_survives_restart(void **state)
{
    struct h_srv *s = *state;
    json_t *h1, *h2;
    struct h_resp r;
    char path[256], iso[32];
    long before;

    setenv("QUIVER_HISTORY_INTERVAL_S", "1", 1);
    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4}");
    h_start(s, NULL);
    send_n(s, "/v2/models/m/versions/1/infer", 25);
    /* Rows come every second; wait until the 25 requests are in them. */
    for (uint64_t deadline = h_now_ms() + H_DEADLINE_MS;;) {
        h1 = wait_rows(s, "/v2/models/m/history", "rows", 2);
        if (total_requests(json_object_get(h1, "rows"), "1") == 25)
            break;
        json_decref(h1);
        if (h_now_ms() > deadline)
            fail_msg("history never counted the 25 requests");
        h_sleep_ms(200);
    }
    assert_float_equal(json_number_value(json_object_get(h1, "interval_s")), 1, 0);
    {
        json_t *row = json_array_get(json_object_get(h1, "rows"), 0);
        assert_non_null(h_jstr(row, "ts"));
        assert_non_null(json_object_get(row, "p99_ms"));
        assert_non_null(json_object_get(row, "weight"));
        snprintf(iso, sizeof(iso), "%s", h_jstr(row, "ts"));
    }
    h_stop_ok(s);

    h_start(s, NULL);
    h2 = wait_rows(s, "/v2/models/m/history?version=1", "rows", 1);
    before = total_requests(json_object_get(h2, "rows"), "1");
    assert_int_equal(before, 25);
    assert_int_equal(total_requests(json_object_get(h2, "rows"), "2"), 0);
    json_decref(h2);
    /* since as ISO 8601 and as ms; limit keeps the newest rows. */
    snprintf(path, sizeof(path), "/v2/models/m/history?since=%s&limit=1", iso);
    r = h_get(s, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "rows")), 1);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/history?since=99999999999999");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "rows")), 0);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/history?since=yesterday");
    h_expect_error(&r, 400, "since");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/history?version=x");
    h_expect_error(&r, 400, "version");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/nope/history");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);
    json_decref(h1);
    h_stop_ok(s);
    unsetenv("QUIVER_HISTORY_INTERVAL_S");
}

static void test_stats(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    json_t *v, *counts;

    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4, \"fail_rate\": 0.5}");
    h_start(s, NULL);
    send_n(s, "/v2/models/m/versions/1/infer", 10);
    send_n(s, "/v2/models/m/versions/2/infer", 40);
    r = h_get(s, "/v2/models/m/quiver-stats");
    assert_int_equal(r.status, 200);
    assert_string_equal(h_jstr(r.json, "model"), "m");
    assert_int_equal(json_array_size(json_object_get(r.json, "versions")), 2);
    v = json_array_get(json_object_get(r.json, "versions"), 1);
    assert_string_equal(h_jstr(v, "version"), "2");
    assert_string_equal(h_jstr(v, "state"), "READY");
    counts = json_object_get(v, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "requests")), 40);
    assert_int_equal(json_integer_value(json_object_get(counts, "ok")) +
                         json_integer_value(json_object_get(counts, "backend")),
                     40);
    assert_true(json_integer_value(json_object_get(counts, "backend")) > 0);
    assert_true(json_number_value(json_object_get(v, "error_rate")) > 0);
    assert_non_null(json_object_get(json_object_get(v, "since_start"), "p99_ms"));
    assert_non_null(json_object_get(json_object_get(v, "last"), "p95_ms"));
    assert_non_null(json_object_get(v, "memory_share"));
    assert_non_null(json_object_get(v, "online_accuracy"));
    /* Default route: the highest READY version has all the weight. */
    assert_float_equal(json_number_value(json_object_get(v, "route_weight")), 1, 1e-9);
    assert_non_null(json_object_get(v, "score"));
    h_resp_free(&r);

    r = h_get(s, "/v2/models/m/versions/1/quiver-stats?window=10");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "versions")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_array_get(json_object_get(r.json, "versions"), 0), "counts"),
            "ok")),
        10);
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/versions/9/quiver-stats");
    h_expect_error(&r, 404, "no version 9");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/m/quiver-stats?window=0");
    h_expect_error(&r, 400, "window");
    h_resp_free(&r);
    r = h_get(s, "/v2/models/nope/quiver-stats");
    h_expect_error(&r, 404, "nope");
    h_resp_free(&r);
    h_stop_ok(s);
}

/* ---- A one-shot webhook receiver ---- */

struct hook {
    int fd, port;
    pthread_t th;
    char body[4096];
    _Atomic bool got;
};

static void *hook_main(void *arg)
{
    struct hook *h = arg;

    for (;;) {
        char buf[8192];
        size_t n = 0;
        int c = accept(h->fd, NULL, NULL);
        const char *p;
        if (c < 0)
            return NULL;
        /* Read until the headers and the announced body are in. */
        for (;;) {
            ssize_t k = recv(c, buf + n, sizeof(buf) - 1 - n, 0);
            const char *cl, *end;
            if (k <= 0)
                break;
            n += (size_t)k;
            buf[n] = '\0';
            end = strstr(buf, "\r\n\r\n");
            cl = strstr(buf, "Content-Length:");
            if (end && cl && strlen(end + 4) >= (size_t)atoi(cl + 15))
                break;
        }
        send(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 57, 0);
        close(c);
        p = strstr(buf, "\r\n\r\n");
        if (p && !atomic_load(&h->got)) {
            snprintf(h->body, sizeof(h->body), "%s", p + 4);
            atomic_store(&h->got, true);
        }
    }
}

static void hook_start(struct hook *h)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(h, 0, sizeof(*h));
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(h->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(h->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(h->fd, 8), 0);
    assert_int_equal(getsockname(h->fd, (struct sockaddr *)&a, &len), 0);
    h->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&h->th, NULL, hook_main, h), 0);
}

static void hook_stop(struct hook *h)
{
    shutdown(h->fd, SHUT_RDWR);
    close(h->fd);
    pthread_join(h->th, NULL);
}

static json_t *find_event(struct h_srv *s, const char *what)
{
    struct h_resp r = h_get(s, "/v2/models/m/events");
    json_t *e, *found = NULL;
    size_t i;

    json_array_foreach(r.json, i, e) if (h_jstr(e, "what") && strcmp(h_jstr(e, "what"), what) == 0)
    {
        json_decref(found);
        found = json_loads(h_jstr(e, "new"), 0, NULL);
    }
    h_resp_free(&r);
    return found;
}

static json_t *wait_event(struct h_srv *s, const char *what)
{
    uint64_t deadline = h_now_ms() + H_DEADLINE_MS;

    for (;;) {
        json_t *ev = find_event(s, what);
        if (ev)
            return ev;
        if (h_now_ms() > deadline)
            fail_msg("no %s event", what);
        h_sleep_ms(100);
    }
}

static void test_alerts(void **state)
{
    struct h_srv *s = *state;
    struct hook hook;
    struct h_resp r;
    char cfg[1024];
    json_t *ev, *rule;

    hook_start(&hook);
    snprintf(cfg, sizeof(cfg),
             "\"version_policy\": {\"all\": {}}, \"alerts\": ["
             "{\"name\": \"errors\", \"metric\": \"error_rate\", \"op\": \">\", \"threshold\": 0.1,"
             " \"window_s\": 5, \"version\": 2, \"webhook\": \"http://127.0.0.1:%d/hook\"},"
             "{\"metric\": \"p77\", \"op\": \">\", \"threshold\": 50},"
             "{\"metric\": \"memory_share\", \"op\": \">\", \"threshold\": 0.5}]",
             hook.port);
    h_test_model(s, "m", cfg);
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4, \"fail_rate\": 0.5}");
    h_start(s, NULL);

    r = h_get(s, "/v2/models/m/alerts");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "rules")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.json, "errors"), 0)),
                        "alerts[1].metric: unknown metric \"p77\"");
    h_resp_free(&r);

    /* Half of version 2's requests fail: the rule fires, is audited and POSTed. */
    h_loop_start(s, "/v2/models/m/versions/2/infer", body4);
    ev = wait_event(s, "alert.fire");
    assert_string_equal(h_jstr(ev, "rule"), "errors");
    assert_int_equal(json_integer_value(json_object_get(ev, "version")), 2);
    assert_true(json_number_value(json_object_get(ev, "value")) > 0.1);
    json_decref(ev);
    r = h_get(s, "/v2/models/m/alerts");
    rule = json_array_get(json_object_get(r.json, "rules"), 0);
    assert_string_equal(h_jstr(rule, "state"), "firing");
    h_resp_free(&r);
    for (uint64_t deadline = h_now_ms() + H_DEADLINE_MS; !atomic_load(&hook.got);) {
        if (h_now_ms() > deadline)
            fail_msg("the webhook was never called");
        h_sleep_ms(50);
    }
    {
        json_t *j = json_loads(hook.body, 0, NULL);
        assert_non_null(j);
        assert_string_equal(h_jstr(j, "status"), "firing");
        assert_string_equal(h_jstr(j, "model"), "m");
        json_decref(j);
    }
    /* Traffic stops: no data in the window, the alert resolves. */
    h_loop_stop(s->loop);
    ev = wait_event(s, "alert.resolve");
    json_decref(ev);
    h_stop_ok(s);
    hook_stop(&hook);
}

static void test_metrics_promtool_during_rollout(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char path[400];
    int rc;

    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4}");
    h_start(s, NULL);
    r = h_post(s, "/v2/models/m/rollout",
               "{\"canary\": 2, \"steps\": [25, 100], "
               "\"step_seconds\": 3600, \"min_requests\": 1000000}");
    assert_int_equal(r.status, 201);
    h_resp_free(&r);
    send_n(s, "/v2/models/m/infer", 20);
    /* The controller exports the weights in force on its next tick. */
    for (uint64_t deadline = h_now_ms() + H_DEADLINE_MS;;) {
        r = h_get(s, "/metrics");
        assert_int_equal(r.status, 200);
        if (strstr(r.body, "quiver_route_weight{model=\"m\",version=\"2\"} 0.25"))
            break;
        if (h_now_ms() > deadline)
            fail_msg("no route weight 0.25 for m/2 in /metrics:\n%s", r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    snprintf(path, sizeof(path), "%s/metrics.txt", s->dir);
    h_write_file(path, r.body);
    h_resp_free(&r);
    rc = h_run("promtool check metrics < '%s'", path);
    if (rc != 0)
        fail_msg("promtool check metrics failed (status %d)", rc);
    h_stop_ok(s);
}

/* A model removed from the repository and a version removed from a model stop being
 * exported: /metrics tells what serves (before, their series stayed forever, the removed
 * model's with route weight 1). What stays passes promtool. */
static void test_removed_series_disappear(void **state)
{
    struct h_srv *s = *state;
    struct h_resp r;
    char path[400];
    int rc;

    h_test_model(s, "m", "\"version_policy\": {\"all\": {}}");
    h_test_version(s, "m", 1, "{\"features\": 4}");
    h_test_version(s, "m", 2, "{\"features\": 4}");
    h_test_model(s, "old", "");
    h_test_version(s, "old", 1, "{\"features\": 4}");
    h_start(s, NULL);
    h_wait_state(s, "m", 2, "READY");
    h_wait_state(s, "old", 1, "READY");
    send_n(s, "/v2/models/old/infer", 3);
    send_n(s, "/v2/models/m/versions/2/infer", 3);
    for (uint64_t deadline = h_now_ms() + H_DEADLINE_MS;;) {
        r = h_get(s, "/metrics");
        if (strstr(r.body, "quiver_route_weight{model=\"old\",version=\"1\"} 1"))
            break;
        if (h_now_ms() > deadline)
            fail_msg("no route weight for old/1 in /metrics:\n%s", r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    h_resp_free(&r);
    assert_int_equal(h_run("rm -rf '%s/old' '%s/m/2'", s->repo, s->repo), 0);
    for (uint64_t deadline = h_now_ms() + H_DEADLINE_MS;;) {
        r = h_get(s, "/metrics");
        assert_int_equal(r.status, 200);
        if (strstr(r.body, "model=\"old\"") == NULL &&
            strstr(r.body, "model=\"m\",version=\"2\"") == NULL)
            break;
        if (h_now_ms() > deadline)
            fail_msg("series of removed old/1 or m/2 still in /metrics:\n%s", r.body);
        h_resp_free(&r);
        h_sleep_ms(200);
    }
    assert_non_null(strstr(r.body, "model=\"m\",version=\"1\""));
    snprintf(path, sizeof(path), "%s/metrics.txt", s->dir);
    h_write_file(path, r.body);
    h_resp_free(&r);
    rc = h_run("promtool check metrics < '%s'", path);
    if (rc != 0)
        fail_msg("promtool check metrics failed (status %d)", rc);
    h_stop_ok(s);
}

static const struct CMUnitTest tests[] = {
    H_TEST(test_history_survives_restart),
    H_TEST(test_stats),
    H_TEST(test_alerts),
    H_TEST(test_metrics_promtool_during_rollout),
    H_TEST(test_removed_series_disappear),
};

H_MAIN(tests)
