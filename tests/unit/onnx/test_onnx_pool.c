/* SPDX-License-Identifier: MIT
 *
 * The ONNX runtime's intra-op pool handing out tasks (qv_parallel_tasks):
 * every task runs exactly once, before the call returns, on a thread whose
 * index is below the pool's size (per-thread scratch relies on it), for
 * task counts below, at and above the pool's size and above what one
 * ticket counts; without a pool the tasks run in order on the caller
 * (index 0). qv_parallel_for still passes chunk indices after a tasks job.
 * qv_parallel_dyn: every item once, in contiguous chunks of even sizes, at
 * least 'grain' items and at most QV_DYN_CHUNKS per thread; and a thread
 * stuck in its first chunk does not hold up the rest of its run: the others
 * take it over. Run under TSan too (docs/onnx.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onnx/onnx_int.h"
#include "onnx/ops/op.h"

struct tasks_job {
    atomic_int *runs;   /* per task */
    atomic_int *worker; /* per task: the worker that ran it */
    atomic_int bad;     /* a range or worker index out of bounds */
    int64_t tasks;
    int threads;
    atomic_llong order; /* without a pool: the next task expected */
};

static void task_fn(void *arg, int64_t b, int64_t e, int worker)
{
    struct tasks_job *j = arg;

    if (b < 0 || e > j->tasks || b >= e || worker < 0 || worker >= j->threads)
        atomic_fetch_add(&j->bad, 1);
    for (int64_t t = b; t < e && t >= 0 && t < j->tasks; t++) {
        atomic_fetch_add(&j->runs[t], 1);
        atomic_store(&j->worker[t], worker);
    }
}

static void run_tasks(struct qv_tpool *pool, int threads, int64_t tasks)
{
    struct qv_exec x;
    struct tasks_job j;

    memset(&x, 0, sizeof(x));
    x.pool = pool;
    memset(&j, 0, sizeof(j));
    j.tasks = tasks;
    j.threads = threads;
    j.runs = calloc((size_t)tasks + 1, sizeof(*j.runs));
    j.worker = calloc((size_t)tasks + 1, sizeof(*j.worker));
    assert_non_null(j.runs);
    assert_non_null(j.worker);
    qv_parallel_tasks(&x, tasks, task_fn, &j);
    assert_int_equal(atomic_load(&j.bad), 0);
    for (int64_t t = 0; t < tasks; t++)
        if (atomic_load(&j.runs[t]) != 1)
            fail_msg("%lld tasks on %d threads: task %lld ran %d times", (long long)tasks, threads,
                     (long long)t, atomic_load(&j.runs[t]));
    if (pool == NULL)
        for (int64_t t = 0; t < tasks; t++)
            assert_int_equal(atomic_load(&j.worker[t]), 0);
    free(j.runs);
    free(j.worker);
}

static void test_tasks_each_once(void **state)
{
    static const int64_t counts[] = {1, 2, 3, 5, 64, 1000, 70000};

    (void)state;
    for (int threads = 2; threads <= 3; threads++) {
        struct qv_tpool *pool = qv__tpool_create(threads);
        assert_non_null(pool);
        threads = qv__tpool_threads(pool);
        for (int rep = 0; rep < 20; rep++)
            for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
                run_tasks(pool, threads, counts[i]);
        qv__tpool_free(pool);
    }
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        run_tasks(NULL, 1, counts[i]);
}

/* Without a pool, tasks run in order on the caller. */
static void order_fn(void *arg, int64_t b, int64_t e, int worker)
{
    struct tasks_job *j = arg;

    if (worker != 0 || b != atomic_load(&j->order))
        atomic_fetch_add(&j->bad, 1);
    atomic_store(&j->order, e);
}

static void test_tasks_without_pool_in_order(void **state)
{
    struct qv_exec x;
    struct tasks_job j;

    (void)state;
    memset(&x, 0, sizeof(x));
    memset(&j, 0, sizeof(j));
    qv_parallel_tasks(&x, 37, order_fn, &j);
    assert_int_equal(atomic_load(&j.bad), 0);
    assert_int_equal(atomic_load(&j.order), 37);
}

/* qv_parallel_for after a tasks job: chunk indices again, each chunk once. */
static void chunk_fn(void *arg, int64_t b, int64_t e, int chunk)
{
    atomic_int *seen = arg;

    (void)b;
    (void)e;
    if (chunk >= 0 && chunk < 3)
        atomic_fetch_add(&seen[chunk], 1);
    else
        atomic_fetch_add(&seen[3], 1);
}

static void test_for_after_tasks_uses_chunks(void **state)
{
    struct qv_tpool *pool = qv__tpool_create(3);
    struct qv_exec x;

    (void)state;
    assert_non_null(pool);
    memset(&x, 0, sizeof(x));
    x.pool = pool;
    for (int rep = 0; rep < 50; rep++) {
        atomic_int seen[4] = {0};
        int chunks = qv_parallel_chunks(&x, 300, 1);
        run_tasks(pool, qv__tpool_threads(pool), 10);
        qv_parallel_for(&x, 300, 1, chunk_fn, seen);
        assert_int_equal(atomic_load(&seen[3]), 0);
        for (int c = 0; c < 3; c++)
            assert_int_equal(atomic_load(&seen[c]), c < chunks ? 1 : 0);
    }
    qv__tpool_free(pool);
}

/* ---- qv_parallel_dyn ---- */

struct dyn_job {
    atomic_int *runs;     /* per item */
    atomic_llong *sizes;  /* per chunk start: the chunk's size */
    atomic_int bad;       /* a range or worker index out of bounds */
    atomic_int chunks;    /* calls */
    int64_t items;
    int threads;
};

static void dyn_fn(void *arg, int64_t b, int64_t e, int worker)
{
    struct dyn_job *j = arg;

    if (b < 0 || e > j->items || b >= e || worker < 0 || worker >= j->threads) {
        atomic_fetch_add(&j->bad, 1);
        return;
    }
    atomic_fetch_add(&j->chunks, 1);
    atomic_store(&j->sizes[b], e - b);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&j->runs[i], 1);
}

static void run_dyn(struct qv_tpool *pool, int threads, int64_t items, int64_t grain)
{
    struct qv_exec x;
    struct dyn_job j;
    int64_t lo = INT64_MAX, hi = 0;

    memset(&x, 0, sizeof(x));
    x.pool = pool;
    memset(&j, 0, sizeof(j));
    j.items = items;
    j.threads = threads;
    j.runs = calloc((size_t)items + 1, sizeof(*j.runs));
    j.sizes = calloc((size_t)items + 1, sizeof(*j.sizes));
    assert_non_null(j.runs);
    assert_non_null(j.sizes);
    qv_parallel_dyn(&x, items, grain, dyn_fn, &j);
    assert_int_equal(atomic_load(&j.bad), 0);
    for (int64_t i = 0; i < items; i++)
        if (atomic_load(&j.runs[i]) != 1)
            fail_msg("%lld items, grain %lld, %d threads: item %lld ran %d times",
                     (long long)items, (long long)grain, threads, (long long)i,
                     atomic_load(&j.runs[i]));
    for (int64_t i = 0; i < items; i++) {
        int64_t n = atomic_load(&j.sizes[i]);
        if (n == 0)
            continue;
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    /* Even sizes; at least the grain unless the whole range is one chunk. */
    assert_true(hi - lo <= 1);
    if (atomic_load(&j.chunks) > 1)
        assert_true(lo >= grain);
    assert_true(atomic_load(&j.chunks) <= (pool ? QV_DYN_CHUNKS * threads : 1));
    if (pool == NULL || items / (grain > 0 ? grain : 1) < 2)
        assert_int_equal(atomic_load(&j.chunks), 1);
    free(j.runs);
    free(j.sizes);
}

static void test_dyn_each_once(void **state)
{
    static const int64_t items[] = {1, 2, 3, 7, 25, 64, 1000, 100000};
    static const int64_t grains[] = {1, 2, 3, 16, 16384};

    (void)state;
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        for (size_t g = 0; g < sizeof(grains) / sizeof(grains[0]); g++)
            run_dyn(NULL, 1, items[i], grains[g]);
    for (int threads = 2; threads <= 3; threads++) {
        struct qv_tpool *pool = qv__tpool_create(threads);
        assert_non_null(pool);
        threads = qv__tpool_threads(pool);
        for (int rep = 0; rep < 10; rep++)
            for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
                for (size_t g = 0; g < sizeof(grains) / sizeof(grains[0]); g++)
                    run_dyn(pool, threads, items[i], grains[g]);
        qv__tpool_free(pool);
    }
}

/* The first chunk of the second thread's run waits until every other chunk
 * is done: without taking over the rest of that run, the call would never
 * return (the wait gives up after 20 s and records it). */
struct stall_job {
    int64_t items, stall_at;
    atomic_int done, runs, gave_up;
};

static void stall_fn(void *arg, int64_t b, int64_t e, int worker)
{
    struct stall_job *j = arg;
    int chunks = QV_DYN_CHUNKS * 2; /* 800 items, grain 1, 2 threads */

    (void)e;
    (void)worker;
    atomic_fetch_add(&j->runs, 1);
    if (b == j->stall_at) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&j->done) < chunks - 1) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 20) {
                atomic_store(&j->gave_up, 1);
                break;
            }
        }
    }
    atomic_fetch_add(&j->done, 1);
}

static void test_dyn_takes_over_a_stalled_run(void **state)
{
    struct qv_tpool *pool = qv__tpool_create(2);
    struct qv_exec x;

    (void)state;
    assert_non_null(pool);
    assert_int_equal(qv__tpool_threads(pool), 2);
    memset(&x, 0, sizeof(x));
    x.pool = pool;
    for (int rep = 0; rep < 20; rep++) {
        struct stall_job j;
        memset(&j, 0, sizeof(j));
        j.items = 800; /* 8 chunks of 100: runs [0, 400) and [400, 800) */
        j.stall_at = 400;
        qv_parallel_dyn(&x, j.items, 1, stall_fn, &j);
        assert_int_equal(atomic_load(&j.gave_up), 0);
        assert_int_equal(atomic_load(&j.runs), 8);
        assert_int_equal(atomic_load(&j.done), 8);
    }
    qv__tpool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_each_once),
        cmocka_unit_test(test_tasks_without_pool_in_order),
        cmocka_unit_test(test_for_after_tasks_uses_chunks),
        cmocka_unit_test(test_dyn_each_once),
        cmocka_unit_test(test_dyn_takes_over_a_stalled_run),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
