/* SPDX-License-Identifier: MIT
 *
 * Unit tests of src/monitor/: bucketing and quantiles on known inputs,
 * snapshot windows, the tick ring, exact totals under concurrent recording,
 * and the Prometheus text (checked by `promtool check metrics`, which the
 * test set-up installs: a missing promtool fails the test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../../src/monitor/monitor_int.h"

#define MS 1000000ull
#define SEC 1000000000ull

static void assert_near(double got, double want, double tol)
{
    if (fabs(got - want) > tol)
        fail_msg("got %.9g, want %.9g (+/- %g)", got, want, tol);
}

/* ---- Buckets and quantiles ---- */

static void test_lat_buckets(void **state)
{
    (void)state;
    assert_int_equal(qv_monitor_lat_upper_ns(0), 10000);
    assert_int_equal(qv_monitor_lat_upper_ns(1), 12500);
    assert_int_equal(qv_monitor_lat_upper_ns(5), 32000);
    assert_int_equal(qv_monitor_lat_upper_ns(20), 1 * MS);
    assert_int_equal(qv_monitor_lat_upper_ns(60), 10 * SEC);
    assert_true(qv_monitor_lat_upper_ns(61) == UINT64_MAX);

    assert_int_equal(qv__monitor_lat_bucket(0), 0);
    assert_int_equal(qv__monitor_lat_bucket(10000), 0);
    assert_int_equal(qv__monitor_lat_bucket(10001), 1);
    assert_int_equal(qv__monitor_lat_bucket(1 * MS), 20);
    assert_int_equal(qv__monitor_lat_bucket(10 * SEC), 60);
    assert_int_equal(qv__monitor_lat_bucket(10 * SEC + 1), 61);
    assert_int_equal(qv__monitor_lat_bucket(UINT64_MAX), 61);
    /* Every bound belongs to its own bucket, one ns more to the next. */
    for (int i = 0; i < QV_MONITOR_LAT_BUCKETS - 1; i++) {
        uint64_t up = qv_monitor_lat_upper_ns(i);

        assert_int_equal(qv__monitor_lat_bucket(up), i);
        assert_int_equal(qv__monitor_lat_bucket(up + 1), i + 1);
        if (i > 0)
            assert_true(up > qv_monitor_lat_upper_ns(i - 1));
    }
}

static void test_batch_buckets(void **state)
{
    (void)state;
    assert_int_equal(qv__monitor_batch_bucket(0), 0);
    assert_int_equal(qv__monitor_batch_bucket(1), 0);
    assert_int_equal(qv__monitor_batch_bucket(2), 1);
    assert_int_equal(qv__monitor_batch_bucket(3), 2);
    assert_int_equal(qv__monitor_batch_bucket(4), 2);
    assert_int_equal(qv__monitor_batch_bucket(1024), 10);
    assert_int_equal(qv__monitor_batch_bucket(1025), 11);
    assert_int_equal(qv__monitor_batch_bucket(UINT32_MAX), 11);
    assert_int_equal(qv_monitor_batch_upper(10), 1024);
    assert_true(qv_monitor_batch_upper(11) == UINT32_MAX);
}

static void test_quantiles_known(void **state)
{
    struct qv_lat_hist h;

    (void)state;
    memset(&h, 0, sizeof(h));
    assert_near(qv_lat_hist_quantile_ms(&h, 0.5), 0.0, 0);

    /* 50 samples at 1 ms (bucket (0.8, 1] ms) and 50 at 2 ms ((1.6, 2] ms). */
    h.buckets[qv__monitor_lat_bucket(1 * MS)] = 50;
    h.buckets[qv__monitor_lat_bucket(2 * MS)] = 50;
    h.sum_ns = 50 * 1 * MS + 50 * 2 * MS;
    assert_int_equal(qv_lat_hist_count(&h), 100);
    assert_near(qv_lat_hist_quantile_ms(&h, 0.50), 1.0, 1e-9);
    assert_near(qv_lat_hist_quantile_ms(&h, 0.25), 0.9, 1e-9);
    assert_near(qv_lat_hist_quantile_ms(&h, 0.95), 1.6 + 0.4 * 45.0 / 50.0, 1e-9);
    assert_near(qv_lat_hist_quantile_ms(&h, 0.99), 1.6 + 0.4 * 49.0 / 50.0, 1e-9);
    assert_near(qv_lat_hist_quantile_ms(&h, 1.00), 2.0, 1e-9);

    /* The first bucket interpolates from 0; the overflow bucket answers 10 s. */
    memset(&h, 0, sizeof(h));
    h.buckets[0] = 4;
    assert_near(qv_lat_hist_quantile_ms(&h, 0.5), 0.005, 1e-12);
    memset(&h, 0, sizeof(h));
    h.buckets[QV_MONITOR_LAT_BUCKETS - 1] = 3;
    assert_near(qv_lat_hist_quantile_ms(&h, 0.5), 10000.0, 1e-9);
}

/* Recorded latencies end up where the bucketing says, and quantiles land
 * within one bucket of the true value. */
static void test_quantiles_recorded(void **state)
{
    qv_monitor *m = NULL;
    qv_vstats *s;
    struct qv_vstats_snap sn, zero;
    struct qv_window w;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    s = qv_monitor_version(m, "lat", 1);
    /* 1..1000 ms, uniformly: p50 = 500 ms, p95 = 950, p99 = 990. */
    for (uint64_t i = 1; i <= 1000; i++)
        qv_vstats_request(s, QV_OUTCOME_OK, 0, 0, i * MS);
    qv_vstats_snapshot(s, &sn);
    memset(&zero, 0, sizeof(zero));
    qv_vstats_window(&sn, &zero, &w);
    assert_int_equal(w.latency_count, 1000);
    assert_near(w.mean_ms, 500.5, 1e-9);
    assert_near(w.p50_ms, 500.0, 500.0 * 0.26);
    assert_near(w.p95_ms, 950.0, 950.0 * 0.26);
    assert_near(w.p99_ms, 990.0, 990.0 * 0.26);
    assert_true(w.p50_ms <= w.p95_ms && w.p95_ms <= w.p99_ms);
    qv_monitor_destroy(m);
}

/* ---- Windows ---- */

static void test_window_diff(void **state)
{
    qv_monitor *m = NULL;
    qv_vstats *s;
    struct qv_vstats_snap a, b, zero;
    struct qv_window w;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    s = qv_monitor_version(m, "fraud", 3);
    assert_ptr_equal(s, qv_monitor_version(m, "fraud", 3));
    assert_ptr_equal(s, qv_monitor_find_hold(m, "fraud", 3));
    qv_monitor_release(m, s);
    assert_null(qv_monitor_find_hold(m, "fraud", 4));

    qv_vstats_request(s, QV_OUTCOME_OK, 1 * MS, 2 * MS, 4 * MS);
    qv_vstats_batch(s, 1, 1 * MS);
    qv_vstats_snapshot(s, &a);

    for (int i = 0; i < 6; i++)
        qv_vstats_request(s, QV_OUTCOME_OK, 1 * MS, 3 * MS, 5 * MS);
    qv_vstats_request(s, QV_OUTCOME_BAD_INPUT, 0, 0, 10000);
    qv_vstats_request(s, QV_OUTCOME_OVERLOAD, 0, 0, 10000);
    qv_vstats_request(s, QV_OUTCOME_BACKEND, 1 * MS, 3 * MS, 5 * MS);
    qv_vstats_request(s, QV_OUTCOME_TIMEOUT, 5 * MS, 0, 5 * MS);
    qv_vstats_batch(s, 4, 8 * MS);
    qv_vstats_batch(s, 3, 6 * MS);
    qv_vstats_memory(s, 12345);
    qv_vstats_queue_depth(s, 7);
    qv_vstats_inflight(s, 2);
    qv_vstats_snapshot(s, &b);

    qv_vstats_window(&b, &a, &w);
    assert_true(w.seconds >= 0.0);
    assert_int_equal(w.requests, 10);
    assert_int_equal(w.ok, 6);
    assert_int_equal(w.bad_input, 1);
    assert_int_equal(w.errors, 3);
    assert_near(w.error_rate, 0.3, 1e-12);
    /* Bad input and overload carry no latency; the rest all took 5 ms. */
    assert_int_equal(w.latency_count, 8);
    assert_near(w.mean_ms, 5.0, 1e-9);
    /* All in the (4, 5] ms bucket: the median interpolates to its middle. */
    assert_near(w.p50_ms, 4.5, 1e-9);
    assert_int_equal(w.batches, 2);
    assert_near(w.mean_batch_size, 3.5, 1e-12);
    assert_near(w.cpu_ms_per_req, 2.0, 1e-12);
    assert_int_equal(w.memory_bytes, 12345);
    assert_int_equal(b.queue_depth, 7);
    assert_int_equal(b.inflight, 2);
    /* Queue time recorded for 8 (the timeout waited), compute for 7. */
    assert_int_equal(qv_lat_hist_count(&b.queue) - qv_lat_hist_count(&a.queue), 8);
    assert_int_equal(qv_lat_hist_count(&b.compute) - qv_lat_hist_count(&a.compute), 7);

    /* A zeroed snapshot means "since creation". */
    memset(&zero, 0, sizeof(zero));
    qv_vstats_window(&b, &zero, &w);
    assert_int_equal(w.requests, 11);
    assert_int_equal(w.ok, 7);
    assert_int_equal(w.batches, 3);
    assert_near(w.cpu_ms_per_req, 15.0 / 8.0, 1e-12);
    assert_true(w.seconds >= 0.0 && w.seconds < 60.0);

    /* Empty window: all zero, no division by zero. */
    qv_vstats_window(&b, &b, &w);
    assert_int_equal(w.requests, 0);
    assert_near(w.error_rate, 0.0, 0);
    assert_near(w.p99_ms, 0.0, 0);
    assert_near(w.cpu_ms_per_req, 0.0, 0);
    qv_monitor_destroy(m);
}

static void test_tick_windows(void **state)
{
    qv_monitor *m = NULL;
    qv_vstats *s;
    struct qv_vstats_snap sn;
    struct qv_window w;
    uint64_t t0;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    s = qv_monitor_hold(m, "fraud", 1); /* recorded into after the forget below */
    qv_vstats_snapshot(s, &sn);
    t0 = sn.created_ns;

    /* Before the first tick the window is empty. */
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 60, &w), 0);
    assert_int_equal(w.requests, 0);
    assert_near(w.seconds, 0.0, 0);
    assert_int_equal(qv_monitor_window(m, "fraud", 2, 60, &w), QV_ENOENT);

    /* Tick k (k = 1..200, one per second) follows k requests. */
    for (uint64_t k = 1; k <= 200; k++) {
        for (uint64_t i = 0; i < k; i++)
            qv_vstats_request(s, i % 10 == 0 ? QV_OUTCOME_BACKEND : QV_OUTCOME_OK, 0, 0, 2 * MS);
        qv_monitor_tick_at(m, t0 + k * SEC);
    }
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 1, &w), 0);
    assert_near(w.seconds, 1.0, 1e-9);
    assert_int_equal(w.requests, 200);
    assert_int_equal(w.errors, 20);
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 5, &w), 0);
    assert_near(w.seconds, 5.0, 1e-9);
    assert_int_equal(w.requests, 200 + 199 + 198 + 197 + 196);
    /* 100 s is past the one-second ring: served by the 10 s ring. */
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 100, &w), 0);
    assert_near(w.seconds, 100.0, 1e-9);
    assert_int_equal(w.requests, (200 * 201 - 100 * 101) / 2);
    /* Longer than the history: since creation. */
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 3600, &w), 0);
    assert_near(w.seconds, 200.0, 1e-9);
    assert_int_equal(w.requests, 200 * 201 / 2);
    assert_near(w.p50_ms, 1.8, 1e-9); /* middle of (1.6, 2] ms */

    /* A forgotten version is not ticked any more. */
    qv_monitor_forget(m, "fraud", 1);
    qv_vstats_request(s, QV_OUTCOME_OK, 0, 0, 2 * MS);
    qv_monitor_tick_at(m, t0 + 201 * SEC);
    assert_int_equal(qv_monitor_window(m, "fraud", 1, 1, &w), 0);
    assert_int_equal(w.requests, 200);
    qv_monitor_destroy(m);
}

/* ---- Concurrency ---- */

#define THREADS 4
#define PER_THREAD 200000

struct worker_arg {
    qv_vstats *s;
    int id;
};

static void *record_worker(void *p)
{
    struct worker_arg *a = p;

    for (uint64_t i = 0; i < PER_THREAD; i++) {
        uint64_t ns = 10000 + (i % 1000) * 1000 + (uint64_t)a->id;

        qv_vstats_inflight(a->s, 1);
        qv_vstats_request(a->s, i % 100 == 0 ? QV_OUTCOME_TIMEOUT : QV_OUTCOME_OK, ns, ns, ns);
        if (i % 8 == 0)
            qv_vstats_batch(a->s, 8, 1000);
        qv_vstats_inflight(a->s, -1);
    }
    return NULL;
}

static void test_concurrent_totals(void **state)
{
    qv_monitor *m = NULL;
    qv_vstats *s;
    pthread_t th[THREADS];
    struct worker_arg args[THREADS];
    struct qv_vstats_snap sn;
    uint64_t want_sum = 0;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    s = qv_monitor_version(m, "busy", 1);
    for (int t = 0; t < THREADS; t++) {
        args[t].s = s;
        args[t].id = t;
        assert_int_equal(pthread_create(&th[t], NULL, record_worker, &args[t]), 0);
    }
    /* A reader meanwhile: every count it sees only grows. */
    for (int k = 0, last = 0; k < 200; k++) {
        uint64_t seen;

        qv_vstats_snapshot(s, &sn);
        seen = sn.outcomes[QV_OUTCOME_OK] + sn.outcomes[QV_OUTCOME_TIMEOUT];
        assert_true(seen >= (uint64_t)last);
        assert_true(seen <= THREADS * PER_THREAD);
        last = (int)seen;
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    for (int t = 0; t < THREADS; t++)
        for (uint64_t i = 0; i < PER_THREAD; i++)
            want_sum += 10000 + (i % 1000) * 1000 + (uint64_t)t;
    qv_vstats_snapshot(s, &sn);
    assert_int_equal(sn.outcomes[QV_OUTCOME_OK], THREADS * (PER_THREAD - PER_THREAD / 100));
    assert_int_equal(sn.outcomes[QV_OUTCOME_TIMEOUT], THREADS * (PER_THREAD / 100));
    assert_int_equal(qv_lat_hist_count(&sn.total), THREADS * PER_THREAD);
    assert_int_equal(qv_lat_hist_count(&sn.queue), THREADS * PER_THREAD);
    assert_int_equal(qv_lat_hist_count(&sn.compute), THREADS * PER_THREAD);
    assert_true(sn.total.sum_ns == want_sum);
    assert_true(sn.queue.sum_ns == want_sum);
    assert_int_equal(sn.batch_items, THREADS * PER_THREAD);
    assert_int_equal(sn.cpu_ns, THREADS * (PER_THREAD / 8) * 1000);
    assert_int_equal(sn.inflight, 0);
    qv_monitor_destroy(m);
}

/* ---- Extras ---- */

static void test_extras(void **state)
{
    qv_monitor *m = NULL;
    struct qv_pair_summary pa[4];
    struct qv_vstats_summary sum;
    uint64_t count;
    double reward;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    (void)qv_monitor_version(m, "fraud", 1);

    /* Feedback never creates a version. */
    assert_int_equal(qv_monitor_feedback(m, "fraud", 9, 1.0), QV_ENOENT);
    assert_null(qv_monitor_find_hold(m, "fraud", 9));
    assert_int_equal(qv_monitor_feedback(m, "fraud", 1, 1.0), 0);
    assert_int_equal(qv_monitor_feedback(m, "fraud", 1, 0.0), 0);
    assert_int_equal(qv_monitor_feedback(m, "fraud", 1, 1.0), 0);
    assert_int_equal(qv_monitor_feedback(m, "fraud", 1, 1.0), 0);
    assert_int_equal(qv_monitor_feedback_get(m, "fraud", 1, &count, &reward), 0);
    assert_int_equal(count, 4);
    assert_near(reward, 3.0, 1e-12);
    assert_int_equal(qv_monitor_feedback_get(m, "nope", 1, &count, &reward), QV_ENOENT);

    qv_monitor_route_weight(m, "fraud", 1, 0.75);
    qv_monitor_route_weight(m, "fraud", 2, 0.25); /* creates fraud/2 */
    {
        qv_vstats *held = qv_monitor_find_hold(m, "fraud", 2);
        assert_non_null(held);
        qv_monitor_release(m, held);
    }

    qv_monitor_agreement(m, "fraud", 1, 2, true, 0.1, 0.5, 2 * MS, 4 * MS);
    qv_monitor_agreement(m, "fraud", 1, 2, false, 0.3, 0.9, 4 * MS, 6 * MS);
    qv_monitor_agreement(m, "fraud", 1, 3, true, 0.0, 0.0, 1 * MS, 1 * MS);
    qv_monitor_agreement(m, "other", 1, 2, true, 0.0, 0.0, 1 * MS, 1 * MS);
    assert_int_equal(qv_monitor_agreement_get(m, "fraud", 1, 2, &pa[0]), 0);
    assert_int_equal(pa[0].count, 2);
    assert_int_equal(pa[0].agreements, 1);
    assert_near(pa[0].agreement_rate, 0.5, 1e-12);
    assert_near(pa[0].abs_diff_mean, 0.2, 1e-12);
    assert_near(pa[0].abs_diff_max, 0.9, 1e-12);
    assert_near(pa[0].primary_ms_mean, 3.0, 1e-12);
    assert_near(pa[0].other_ms_mean, 5.0, 1e-12);
    assert_int_equal(qv_monitor_agreement_get(m, "fraud", 2, 1, &pa[0]), QV_ENOENT);
    assert_int_equal(qv_monitor_agreements(m, "fraud", pa, 1), 2);
    assert_int_equal(pa[0].other, 2);
    assert_int_equal(qv_monitor_agreements(m, "fraud", pa, 4), 2);
    assert_int_equal(pa[1].other, 3);
    assert_int_equal(pa[1].count, 1);

    {
        qv_vstats *held = qv_monitor_find_hold(m, "fraud", 1);
        qv_vstats_request(held, QV_OUTCOME_OK, 0, 0, 1 * MS);
        qv_vstats_request(held, QV_OUTCOME_BACKEND, 0, 0, 1 * MS);
        qv_monitor_release(m, held);
    }
    assert_int_equal(qv_monitor_summary(m, "fraud", 1, 60, &sum), 0);
    assert_int_equal(sum.outcomes[QV_OUTCOME_OK], 1);
    assert_int_equal(sum.outcomes[QV_OUTCOME_BACKEND], 1);
    assert_int_equal(sum.all.requests, 2);
    assert_near(sum.all.error_rate, 0.5, 1e-12);
    assert_near(sum.all.p50_ms, 0.9, 1e-9); /* middle of (0.8, 1] ms */
    assert_int_equal(sum.last.requests, 0); /* no tick yet */
    assert_true(sum.has_route_weight);
    assert_near(sum.route_weight, 0.75, 0);
    assert_int_equal(sum.feedback_count, 4);
    assert_near(sum.online_accuracy, 0.75, 1e-12);
    assert_int_equal(qv_monitor_summary(m, "fraud", 7, 60, &sum), QV_ENOENT);

    assert_int_equal(qv_outcome_from_err(QV_OK), QV_OUTCOME_OK);
    assert_int_equal(qv_outcome_from_err(QV_EINVAL), QV_OUTCOME_BAD_INPUT);
    assert_int_equal(qv_outcome_from_err(QV_EOVERLOAD), QV_OUTCOME_OVERLOAD);
    assert_int_equal(qv_outcome_from_err(QV_ETIMEDOUT), QV_OUTCOME_TIMEOUT);
    assert_int_equal(qv_outcome_from_err(QV_EBACKEND), QV_OUTCOME_BACKEND);
    assert_string_equal(qv_outcome_name(QV_OUTCOME_BAD_INPUT), "bad_input");
    qv_monitor_destroy(m);
}

/* ---- Prometheus text ---- */

/* Feeds text to `promtool check metrics` and returns its exit status. */
static int promtool_check(const char *text)
{
    FILE *p;
    int st;

    if (access("/usr/bin/promtool", X_OK) != 0)
        fail_msg("/usr/bin/promtool is missing: install the Debian package 'prometheus' "
                 "(make deps-test does)");
    p = popen("/usr/bin/promtool check metrics", "w");
    assert_non_null(p);
    assert_true(fwrite(text, 1, strlen(text), p) == strlen(text));
    st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void assert_has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL)
        fail_msg("missing from the exposition: %s", line);
}

/* What the server appends after the monitor's text. */
/* Asserts the line `\n<name>{model="fraud",<labels>} <value>\n` is in text. */
static void assert_fraud(const char *text, const char *name, const char *labels, const char *value)
{
    char line[512];

    snprintf(line, sizeof(line), "\n%s{model=\"fraud\",%s} %s\n", name, labels, value);
    assert_has(text, line);
}

static int extra_lines(struct qv_buf *out)
{
    return qv_buf_printf(out, "# HELP quiver_up Whether the server is up.\n"
                              "# TYPE quiver_up gauge\nquiver_up 1\n");
}

static void fill(qv_monitor *m)
{
    qv_vstats *a = qv_monitor_version(m, "fraud", 1);
    qv_vstats *b = qv_monitor_hold(m, "fraud", 2); /* held, as a loaded version is */

    for (int i = 0; i < 7; i++)
        qv_vstats_request(a, QV_OUTCOME_OK, 100000, 1 * MS, 2 * MS);
    qv_vstats_request(a, QV_OUTCOME_BACKEND, 100000, 1 * MS, 2 * MS);
    qv_vstats_request(a, QV_OUTCOME_OVERLOAD, 0, 0, 1000);
    qv_vstats_request(a, QV_OUTCOME_TIMEOUT, 3 * SEC, 0, 3 * SEC);
    qv_vstats_request(a, QV_OUTCOME_OK, 0, 20 * SEC, 20 * SEC); /* overflow bucket */
    qv_vstats_batch(a, 4, 1500 * MS);
    qv_vstats_batch(a, 1, 500 * MS);
    qv_vstats_memory(a, 4096);
    qv_vstats_queue_depth(a, 3);
    qv_vstats_inflight(a, 2);
    qv_vstats_route_weight(a, 0.9);
    qv_vstats_feedback(a, 1.0);
    qv_vstats_feedback(a, 0.5);
    qv_vstats_request(b, QV_OUTCOME_OK, 0, 0, 5 * MS);
    qv_monitor_agreement(m, "fraud", 1, 2, true, 0.25, 0.5, 1 * MS, 2 * MS);
    qv_monitor_agreement(m, "fraud", 1, 2, false, 0.75, 1.5, 1 * MS, 2 * MS);
}

static void test_prometheus(void **state)
{
    qv_monitor *m = NULL;
    struct qv_buf out = QV_BUF_INIT(0);
    char *text;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    /* An empty monitor is valid text too. */
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_int_equal(promtool_check(text), 0);
    free(text);

    fill(m);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    assert_int_equal(extra_lines(&out), 0);
    text = qv_buf_take(&out);
    assert_int_equal(promtool_check(text), 0);

    assert_has(text, "# TYPE quiver_requests_total counter\n");
    assert_has(text, "# HELP quiver_requests_total ");
    assert_fraud(text, "quiver_requests_total", "version=\"1\"", "11");
    assert_fraud(text, "quiver_requests_total", "version=\"2\"", "1");
    assert_fraud(text, "quiver_request_failures_total", "version=\"1\",reason=\"backend\"", "1");
    assert_fraud(text, "quiver_request_failures_total", "version=\"1\",reason=\"overload\"", "1");
    assert_fraud(text, "quiver_request_failures_total", "version=\"1\",reason=\"timeout\"", "1");
    assert_fraud(text, "quiver_request_failures_total", "version=\"1\",reason=\"bad_input\"", "0");
    assert_has(text, "# TYPE quiver_request_duration_seconds histogram\n");
    assert_fraud(text, "quiver_request_duration_seconds_bucket", "version=\"1\",le=\"0.00001\"",
                 "0");
    assert_fraud(text, "quiver_request_duration_seconds_bucket", "version=\"1\",le=\"0.0025\"",
                 "8");
    assert_fraud(text, "quiver_request_duration_seconds_bucket", "version=\"1\",le=\"10\"", "9");
    assert_fraud(text, "quiver_request_duration_seconds_bucket", "version=\"1\",le=\"+Inf\"", "10");
    assert_fraud(text, "quiver_request_duration_seconds_sum", "version=\"1\"", "23.016");
    assert_fraud(text, "quiver_request_duration_seconds_count", "version=\"1\"", "10");
    assert_fraud(text, "quiver_queue_duration_seconds_count", "version=\"1\"", "9");
    assert_fraud(text, "quiver_queue_duration_seconds_sum", "version=\"1\"", "3.0008");
    assert_fraud(text, "quiver_compute_duration_seconds_count", "version=\"1\"", "9");
    assert_fraud(text, "quiver_batch_size_bucket", "version=\"1\",le=\"1\"", "1");
    assert_fraud(text, "quiver_batch_size_bucket", "version=\"1\",le=\"2\"", "1");
    assert_fraud(text, "quiver_batch_size_bucket", "version=\"1\",le=\"4\"", "2");
    assert_fraud(text, "quiver_batch_size_bucket", "version=\"1\",le=\"+Inf\"", "2");
    assert_fraud(text, "quiver_batch_size_sum", "version=\"1\"", "5");
    assert_fraud(text, "quiver_batch_size_count", "version=\"1\"", "2");
    assert_fraud(text, "quiver_inference_cpu_seconds_total", "version=\"1\"", "2");
    assert_fraud(text, "quiver_inflight_requests", "version=\"1\"", "2");
    assert_fraud(text, "quiver_queue_depth", "version=\"1\"", "3");
    assert_fraud(text, "quiver_memory_bytes", "version=\"1\"", "4096");
    assert_fraud(text, "quiver_route_weight", "version=\"1\"", "0.9");
    assert_null(strstr(text, "quiver_route_weight{model=\"fraud\",version=\"2\"}"));
    assert_fraud(text, "quiver_feedback_total", "version=\"1\"", "2");
    assert_has(text, "# TYPE quiver_feedback_reward summary\n");
    assert_fraud(text, "quiver_feedback_reward_sum", "version=\"1\"", "1.5");
    assert_fraud(text, "quiver_feedback_reward_count", "version=\"1\"", "2");
    assert_fraud(text, "quiver_shadow_comparisons_total", "version=\"1\",other_version=\"2\"", "2");
    assert_fraud(text, "quiver_shadow_agreements_total", "version=\"1\",other_version=\"2\"", "1");
    assert_fraud(text, "quiver_shadow_abs_diff_sum", "version=\"1\",other_version=\"2\"", "1");
    assert_fraud(text, "quiver_shadow_abs_diff_max", "version=\"1\",other_version=\"2\"", "1.5");
    assert_fraud(text, "quiver_shadow_primary_compute_seconds_total",
                 "version=\"1\",other_version=\"2\"", "0.002");
    assert_fraud(text, "quiver_shadow_other_compute_seconds_total",
                 "version=\"1\",other_version=\"2\"", "0.004");
    assert_has(text, "\nquiver_up 1\n");
    /* Every series is quiver_*. */
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
        if (line[0] != '#' && strncmp(line, "quiver_", 7) != 0)
            fail_msg("series outside quiver_*: %.60s", line);
    }
    free(text);

    /* A forgotten version disappears, with its pairs. */
    qv_monitor_forget(m, "fraud", 2);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_null(strstr(text, "version=\"2\""));
    assert_fraud(text, "quiver_requests_total", "version=\"1\"", "11");
    free(text);
    (void)qv_monitor_version(m, "fraud", 2);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_fraud(text, "quiver_requests_total", "version=\"2\"", "1");
    free(text);

    /* A buffer limit is honoured. */
    {
        struct qv_buf small = QV_BUF_INIT(100);

        assert_int_equal(qv_monitor_render_prometheus(m, &small), QV_E2BIG);
        assert_true(small.len <= 100);
        qv_buf_free(&small);
    }
    qv_monitor_destroy(m);
}

static void test_label_escaping(void **state)
{
    qv_monitor *m = NULL;
    struct qv_buf out = QV_BUF_INIT(0);
    char *text;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    qv_vstats_request(qv_monitor_version(m, "we\"ird\\na\nme", 5), QV_OUTCOME_OK, 0, 0, 1 * MS);
    qv_monitor_agreement(m, "we\"ird\\na\nme", 5, 6, true, 0, 0, 1, 1);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_int_equal(promtool_check(text), 0);
    assert_has(text, "quiver_requests_total{model=\"we\\\"ird\\\\na\\nme\",version=\"5\"} 1\n");
    assert_has(text, "quiver_shadow_comparisons_total{model=\"we\\\"ird\\\\na\\nme\",version=\"5\","
                     "other_version=\"6\"} 1\n");
    free(text);

    assert_int_equal(qv_monitor_escape_label(&out, "a\"b\\c\nd"), 0);
    assert_string_equal(out.data, "a\\\"b\\\\c\\nd");
    qv_buf_free(&out);
    qv_monitor_destroy(m);
}

static void count_each(void *ud, const char *model, int64_t version)
{
    assert_string_equal(model, "fraud");
    assert_int_equal(version, 1);
    (*(int *)ud)++;
}

/* 413, 429 and 503 refusals are counted server-wide, every code always present; other
 * statuses are ignored; forgotten versions disappear from the text. */
static void test_refusals_and_forget(void **state)
{
    qv_monitor *m = NULL;
    struct qv_buf out = QV_BUF_INIT(0);
    char *text;
    int calls = 0;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_has(text, "\nquiver_http_refusals_total{code=\"413\"} 0\n");
    assert_has(text, "\nquiver_http_refusals_total{code=\"429\"} 0\n");
    assert_has(text, "\nquiver_http_refusals_total{code=\"503\"} 0\n");
    free(text);
    qv_monitor_count_refusal(m, 413);
    qv_monitor_count_refusal(m, 429);
    qv_monitor_count_refusal(m, 429);
    qv_monitor_count_refusal(m, 503);
    qv_monitor_count_refusal(m, 200);
    qv_monitor_count_refusal(m, 400);
    fill(m);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_int_equal(promtool_check(text), 0);
    assert_has(text, "# TYPE quiver_http_refusals_total counter\n");
    assert_has(text, "\nquiver_http_refusals_total{code=\"413\"} 1\n");
    assert_has(text, "\nquiver_http_refusals_total{code=\"429\"} 2\n");
    assert_has(text, "\nquiver_http_refusals_total{code=\"503\"} 1\n");
    assert_has(text, "version=\"2\"");
    free(text);

    /* Forgotten: version 2 and its pair go, version 1 stays. */
    qv_monitor_forget(m, "fraud", 2);
    assert_int_equal(qv_monitor_render_prometheus(m, &out), 0);
    text = qv_buf_take(&out);
    assert_int_equal(promtool_check(text), 0);
    assert_null(strstr(text, "version=\"2\""));
    assert_null(strstr(text, "other_version=\"2\""));
    assert_fraud(text, "quiver_requests_total", "version=\"1\"", "11");
    free(text);
    qv_monitor_each(m, count_each, &calls);
    assert_int_equal(calls, 1);
    qv_monitor_destroy(m);
}

/* ---- Forgotten versions free their records ---- */

struct late_recorder {
    qv_vstats *s;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool go;
};

static void *late_record(void *arg)
{
    struct late_recorder *r = arg;

    pthread_mutex_lock(&r->mu);
    while (!r->go)
        pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
    /* The version was forgotten meanwhile: a request finishing late still records. */
    for (int i = 0; i < 1000; i++)
        qv_vstats_request(r->s, QV_OUTCOME_OK, 0, 0, 1 * MS);
    return NULL;
}

static void test_forget_frees_records(void **state)
{
    qv_monitor *m = NULL;
    size_t base;
    qv_vstats **list = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    (void)qv_monitor_version(m, "stay", 1);
    base = qv_monitor_records(m);
    assert_int_equal(base, 1);

    /* Unheld: freed by the forget itself. */
    for (int64_t v = 1; v <= 100; v++) {
        qv_vstats_request(qv_monitor_version(m, "deploy", v), QV_OUTCOME_OK, 0, 0, 1 * MS);
        qv_monitor_forget(m, "deploy", v);
    }
    assert_int_equal(qv_monitor_records(m), base);

    /* Held: kept (and recordable) past the forget, freed with the last hold. */
    for (int64_t v = 1; v <= 100; v++) {
        struct late_recorder r = {.go = false};
        pthread_t t;

        r.s = qv_monitor_hold(m, "deploy", v);
        pthread_mutex_init(&r.mu, NULL);
        pthread_cond_init(&r.cond, NULL);
        assert_int_equal(pthread_create(&t, NULL, late_record, &r), 0);
        qv_monitor_forget(m, "deploy", v);
        assert_int_equal(qv_monitor_records(m), base + 1);
        pthread_mutex_lock(&r.mu);
        r.go = true;
        pthread_cond_signal(&r.cond);
        pthread_mutex_unlock(&r.mu);
        assert_int_equal(pthread_join(t, NULL), 0);
        qv_monitor_release(m, r.s);
        assert_int_equal(qv_monitor_records(m), base);
        pthread_cond_destroy(&r.cond);
        pthread_mutex_destroy(&r.mu);
    }

    /* Two holds: the first release keeps it. A held version forgotten and
     * asked for again is exported again with its counters. */
    {
        qv_vstats *a = qv_monitor_hold(m, "deploy", 7);
        qv_vstats *b = qv_monitor_hold(m, "deploy", 7);
        struct qv_vstats_snap snap;

        assert_ptr_equal(a, b);
        qv_vstats_request(a, QV_OUTCOME_OK, 0, 0, 1 * MS);
        qv_monitor_forget(m, "deploy", 7);
        qv_monitor_release(m, a);
        assert_int_equal(qv_monitor_records(m), base + 1);
        assert_ptr_equal(qv_monitor_version(m, "deploy", 7), b);
        qv_vstats_snapshot(b, &snap);
        assert_int_equal(snap.outcomes[QV_OUTCOME_OK], 1);
        qv_monitor_forget(m, "deploy", 7);
        qv_monitor_release(m, b);
        assert_int_equal(qv_monitor_records(m), base);
    }

    /* A reader walking a list copy holds its entries across a forget. */
    (void)qv_monitor_version(m, "deploy", 8);
    assert_int_equal(qv__monitor_list_versions(m, &list, &n), 0);
    assert_int_equal(n, 2);
    qv_monitor_forget(m, "deploy", 8);
    assert_int_equal(qv_monitor_records(m), base + 1);
    for (size_t i = 0; i < n; i++)
        qv_vstats_request(list[i], QV_OUTCOME_OK, 0, 0, 1 * MS);
    qv__monitor_unlist_versions(m, list, n);
    assert_int_equal(qv_monitor_records(m), base);

    /* Release of NULL is a no-op. */
    qv_monitor_release(m, NULL);
    qv_monitor_destroy(m);
}

/* docs/metrics.md documents every family of the table. */
static void test_docs_cover_table(void **state)
{
    const char *src = getenv("QV_SOURCE_DIR");
    char path[4096];
    char *doc = NULL;
    size_t len = 0;
    struct qv_diag d = {{0}};

    (void)state;
    if (src != NULL) {
        snprintf(path, sizeof(path), "%s/docs/metrics.md", src);
    } else {
        /* This file is <source>/tests/unit/monitor/test_monitor.c. */
        const char *f = __FILE__;
        const char *tail = strstr(f, "tests/unit/monitor/");

        assert_non_null(tail);
        snprintf(path, sizeof(path), "%.*sdocs/metrics.md", (int)(tail - f), f);
    }
    assert_int_equal(qv_file_read_all(path, 1 << 20, &doc, &len, &d), 0);
    for (int i = 0; i < QV__METRIC_COUNT; i++) {
        char want[128];

        snprintf(want, sizeof(want), "`%s`", qv__monitor_metrics[i].name);
        if (strstr(doc, want) == NULL)
            fail_msg("docs/metrics.md does not document %s", want);
    }
    free(doc);
}

/* Recording switched off leaves the counters alone; back on, they count. */
static void test_recording_switch(void **state)
{
    struct qv_vstats_summary sum;
    qv_monitor *m;
    qv_vstats *s;

    (void)state;
    assert_int_equal(qv_monitor_create(&m), 0);
    qv_monitor_set_recording(m, false);
    s = qv_monitor_version(m, "m", 1);
    qv_vstats_request(s, QV_OUTCOME_OK, 1000, 2000, 3000);
    qv_vstats_batch(s, 4, 100);
    assert_int_equal(qv_monitor_summary(m, "m", 1, 10, &sum), 0);
    assert_int_equal(sum.outcomes[QV_OUTCOME_OK], 0);
    qv_monitor_set_recording(m, true);
    qv_vstats_request(s, QV_OUTCOME_OK, 1000, 2000, 3000);
    assert_int_equal(qv_monitor_summary(m, "m", 1, 10, &sum), 0);
    assert_int_equal(sum.outcomes[QV_OUTCOME_OK], 1);
    qv_monitor_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lat_buckets),
        cmocka_unit_test(test_batch_buckets),
        cmocka_unit_test(test_recording_switch),
        cmocka_unit_test(test_quantiles_known),
        cmocka_unit_test(test_quantiles_recorded),
        cmocka_unit_test(test_window_diff),
        cmocka_unit_test(test_tick_windows),
        cmocka_unit_test(test_concurrent_totals),
        cmocka_unit_test(test_extras),
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_docs_cover_table),
        cmocka_unit_test(test_refusals_and_forget),
        cmocka_unit_test(test_forget_frees_records),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
