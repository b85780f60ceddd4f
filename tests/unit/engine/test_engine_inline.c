/* SPDX-License-Identifier: MIT
 *
 * Inline execution (a fast version's request runs on the submitting thread)
 * and the background lane's shedding (a full lane drops and counts shadow
 * copies instead of queueing them without bound).
 */
#include "unit/engine/engine_fixture.h"

static qv_engine *inline_engine(qv_monitor **mon, int inline_us, int bg_limit)
{
    struct qv_engine_config cfg = {0};
    struct qv_engine_hooks hooks = {.version_state = fx_on_state};
    struct qv_diag d = {{0}};
    qv_engine *e = NULL;

    cfg.repo_root = fx_root;
    cfg.workers = 2;
    cfg.poll_ms = 3600000;
    cfg.inline_us = inline_us;
    cfg.bg_limit = bg_limit;
    assert_int_equal(qv_monitor_create(mon), 0);
    assert_int_equal(qv_engine_create(&cfg, &hooks, *mon, &e, &d), 0);
    assert_int_equal(qv_engine_start(e, &d), 0);
    return e;
}

/* Submits q (may_inline) and returns without waiting; whether it ran inline. */
static bool submit_inline(qv_engine *e, struct fx_req *q, float base)
{
    int64_t shape[2] = {1, 2};
    struct qv_diag d = {{0}};

    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    assert_int_equal(qv_engine_acquire(e, "m", 0, &q->v, &d), 0);
    assert_int_equal(qv_tensor_alloc(&q->r.inputs[0], "input__0", QV_DTYPE_F32, 2, shape), 0);
    ((float *)q->r.inputs[0].data)[0] = base;
    ((float *)q->r.inputs[0].data)[1] = base;
    q->r.n_inputs = 1;
    q->r.done = fx_on_done;
    q->r.ud = q;
    q->r.may_inline = true;
    assert_int_equal(qv_engine_prepare(q->v, &q->r, &d), 0);
    assert_int_equal(qv_engine_submit(q->v, &q->r, &d), 0);
    return q->r.ran_inline;
}

/* Like fx_send, with may_inline set: submits q and waits for it; returns
 * whether it ran inline. */
static bool send_inline(qv_engine *e, struct fx_req *q, float base)
{
    bool ran = submit_inline(e, q, base);

    if (ran) {
        /* done() was called before submit returned. */
        pthread_mutex_lock(&q->mu);
        assert_true(q->done);
        pthread_mutex_unlock(&q->mu);
    }
    assert_int_equal(fx_wait(q), 0);
    return ran;
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};

    nanosleep(&ts, NULL);
}

static void test_inline_after_measuring(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    struct fx_req q;
    struct qv_vstats_snap sn;
    int first_inline = -1;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\"}");
    fx_write("m/1/model.test", "{\"features\": 2}");
    /* 5 ms: a threshold that scheduling noise on a busy machine does not cross. */
    e = inline_engine(&mon, 5000, 0);
    for (int i = 0; i < 3000 && first_inline < 0; i++) {
        if (send_inline(e, &q, (float)i))
            first_inline = i;
        fx_free(&q);
        sleep_us(500);
    }
    /* Not before the version was measured (64 compute times), then inline. */
    assert_true(first_inline >= 64);
    {
        qv_vstats *held = qv_monitor_find_hold(mon, "m", 1);
        qv_vstats_snapshot(held, &sn);
        qv_monitor_release(mon, held);
    }
    assert_true(sn.exec_inline >= 1);
    assert_true(sn.exec_queued >= 16);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* Batching without a queue delay: a lone request would be a batch of one on
 * a worker at once, so a fast version runs it inline like an unbatched one. */
static void test_inline_when_batching_without_delay(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    struct fx_req q;
    int first_inline = -1;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": 8}");
    fx_write("m/1/model.test", "{\"features\": 2}");
    e = inline_engine(&mon, 5000, 0);
    for (int i = 0; i < 3000 && first_inline < 0; i++) {
        if (send_inline(e, &q, (float)i))
            first_inline = i;
        assert_int_equal(q.r.status, 0);
        assert_int_equal(q.r.n_outputs, 1);
        fx_free(&q);
        sleep_us(500);
    }
    assert_true(first_inline >= 64);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* With max_queue_delay_us the version waits for rows: never inline. */
static void test_inline_never_when_batching_waits(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    struct fx_req q;
    struct qv_vstats_snap sn;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\", \"max_batch_size\": 8, "
                              "\"max_queue_delay_us\": 100}");
    fx_write("m/1/model.test", "{\"features\": 2}");
    e = inline_engine(&mon, 0, 0);
    for (int i = 0; i < 200; i++) {
        assert_false(send_inline(e, &q, (float)i));
        fx_free(&q);
        if (i % 20 == 0)
            sleep_us(25000);
    }
    {
        qv_vstats *held = qv_monitor_find_hold(mon, "m", 1);
        qv_vstats_snapshot(held, &sn);
        qv_monitor_release(mon, held);
    }
    assert_int_equal(sn.exec_inline, 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* Whether q completed within 'ms'. */
static bool wait_ms(struct fx_req *q, long ms)
{
    struct timespec ts;
    bool done;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&q->mu);
    while (!q->done)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) != 0)
            break;
    done = q->done;
    pthread_mutex_unlock(&q->mu);
    return done;
}

struct slow_call {
    qv_engine *e;
    struct fx_req q;
    bool ran_inline;
};

static void *slow_call_main(void *arg)
{
    struct slow_call *c = arg;

    c->ran_inline = submit_inline(c->e, &c->q, 1.0f);
    return NULL;
}

/* A re-entrant version's inline run takes one of its instances without the
 * queue's lock. With its only instance held by a slow inline call, the next
 * request is queued, not run beside it; and when the inline call gives the
 * instance back, the queued request gets a worker at once (a missed hand-off
 * would leave it in the queue until some other request came). */
static void test_inline_instance_handoff(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    struct fx_req q;
    struct slow_call slow;
    pthread_t th;
    int inline_runs = 0;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\", \"instances\": 1}");
    /* Fast for 1000 calls, then 300 ms per call; the threshold (1 s) keeps
     * the slow calls inline. */
    fx_write("m/1/model.test",
             "{\"features\": 2, \"slow_after\": 1000, \"slow_delay_us\": 300000}");
    e = inline_engine(&mon, 1000000, 0);
    for (int i = 0; i < 1000; i++) {
        inline_runs += send_inline(e, &q, (float)i);
        fx_free(&q);
        if (i % 50 == 0)
            sleep_us(20000); /* lets the 20 ms decision windows pass */
    }
    assert_true(inline_runs > 0);
    slow.e = e;
    assert_int_equal(pthread_create(&th, NULL, slow_call_main, &slow), 0);
    sleep_us(100000); /* the slow call is running inline and holds the instance */
    assert_false(submit_inline(e, &q, 2.0f));
    assert_true(wait_ms(&q, 20000));
    assert_int_equal(q.r.status, 0);
    pthread_join(th, NULL);
    assert_true(slow.ran_inline);
    assert_true(wait_ms(&slow.q, 20000));
    fx_free(&slow.q);
    fx_free(&q);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

/* Three threads sending inline-eligible requests while the version is
 * unloaded and loaded again (for TSan). */
struct sender {
    qv_engine *e;
    _Atomic bool *stop;
    long ok, refused;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;

    while (!atomic_load(s->stop)) {
        int64_t shape[2] = {1, 2};
        struct fx_req q;
        struct qv_diag d = {{0}};
        int err;

        memset(&q, 0, sizeof(q));
        pthread_mutex_init(&q.mu, NULL);
        pthread_cond_init(&q.cv, NULL);
        err = qv_engine_acquire(s->e, "m", 1, &q.v, &d);
        if (err) {
            s->refused++;
            pthread_mutex_destroy(&q.mu);
            pthread_cond_destroy(&q.cv);
            sleep_us(200);
            continue;
        }
        assert_int_equal(qv_tensor_alloc(&q.r.inputs[0], "input__0", QV_DTYPE_F32, 2, shape), 0);
        q.r.n_inputs = 1;
        q.r.done = fx_on_done;
        q.r.ud = &q;
        q.r.may_inline = true;
        err = qv_engine_prepare(q.v, &q.r, &d);
        if (!err)
            err = qv_engine_submit(q.v, &q.r, &d);
        if (!err) {
            assert_int_equal(fx_wait(&q), 0);
            s->ok++;
        } else {
            s->refused++;
        }
        fx_free(&q);
    }
    return NULL;
}

static void test_inline_races_with_unload(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    struct sender s[3];
    pthread_t th[3];
    _Atomic bool stop = false;
    struct qv_diag d = {{0}};
    long ok = 0;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\", \"instances\": 2}");
    fx_write("m/1/model.test", "{\"features\": 2}");
    e = inline_engine(&mon, 1000000, 0);
    for (int i = 0; i < 3; i++) {
        s[i] = (struct sender){e, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sender_main, &s[i]), 0);
    }
    for (int k = 0; k < 4; k++) {
        sleep_us(50000);
        assert_int_equal(qv_engine_unload_version(e, "m", 1, &d), 0);
        sleep_us(20000);
        /* A load while the unloaded version still drains (a request in
         * flight holds it) is refused as busy: tried again until it is gone. */
        for (int tries = 0; tries < 500; tries++) {
            int err = qv_engine_load_version(e, "m", 1, &d);
            if (err == QV_OK)
                break;
            if (err != QV_EBUSY)
                fail_msg("load: %d %s", err, d.msg);
            sleep_us(10000);
        }
        assert_true(qv_engine_is_ready(e, "m", 1));
    }
    sleep_us(50000);
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ok += s[i].ok;
    }
    assert_true(ok > 0);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

static void on_bg_done(struct qv_infer_req *r)
{
    _Atomic int *n = r->ud;

    atomic_fetch_add(n, 1);
}

static void test_shadow_lane_sheds(void **state)
{
    qv_monitor *mon;
    qv_engine *e;
    qv_version *v;
    struct qv_diag d = {{0}};
    struct qv_infer_req *reqs;
    struct qv_vstats_snap sn;
    _Atomic int done = 0;
    int accepted = 0, dropped = 0;
    const int n = 12;

    (void)state;
    fx_repo_new();
    fx_write("m/config.json", "{\"backend\": \"test\"}");
    fx_write("m/1/model.test", "{\"features\": 2, \"delay_us\": 100000}");
    e = inline_engine(&mon, 0, 4);
    reqs = calloc((size_t)n, sizeof(*reqs));
    assert_non_null(reqs);
    assert_int_equal(qv_engine_acquire(e, "m", 1, &v, &d), 0);
    for (int i = 0; i < n; i++) {
        int64_t shape[2] = {1, 2};
        assert_int_equal(qv_tensor_alloc(&reqs[i].inputs[0], "input__0", QV_DTYPE_F32, 2, shape),
                         0);
        reqs[i].n_inputs = 1;
        reqs[i].done = on_bg_done;
        reqs[i].ud = &done;
        assert_int_equal(qv_engine_prepare(v, &reqs[i], &d), 0);
        if (qv_engine_submit_background(v, &reqs[i], &d) == QV_OK) {
            accepted++;
        } else {
            assert_non_null(strstr(d.msg, "background lane is full"));
            dropped++;
        }
    }
    /* At most one copy running and four waiting: the rest were dropped. */
    assert_true(accepted <= 5);
    assert_int_equal(accepted + dropped, n);
    {
        qv_vstats *held = qv_monitor_find_hold(mon, "m", 1);
        qv_vstats_snapshot(held, &sn);
        qv_monitor_release(mon, held);
    }
    assert_int_equal(sn.shadow_dropped, (uint64_t)dropped);
    while (atomic_load(&done) < accepted)
        sleep_us(5000);
    for (int i = 0; i < n; i++)
        qv_infer_req_fini(&reqs[i]);
    free(reqs);
    qv_version_release(v);
    qv_engine_destroy(e);
    qv_monitor_destroy(mon);
    fx_repo_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_after_measuring),
        cmocka_unit_test(test_inline_when_batching_without_delay),
        cmocka_unit_test(test_inline_instance_handoff),
        cmocka_unit_test(test_inline_never_when_batching_waits),
        cmocka_unit_test(test_inline_races_with_unload),
        cmocka_unit_test(test_shadow_lane_sheds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
