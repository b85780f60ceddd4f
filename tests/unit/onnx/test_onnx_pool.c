/* SPDX-License-Identifier: MIT
 *
 * The ONNX runtime's intra-op pool handing out tasks (qv_parallel_tasks):
 * every task runs exactly once, before the call returns, on a thread whose
 * index is below the pool's size (per-thread scratch relies on it), for
 * task counts below, at and above the pool's size and above what one
 * ticket counts; without a pool the tasks run in order on the caller
 * (index 0). qv_parallel_for still passes chunk indices after a tasks job.
 * Run under TSan too (docs/onnx.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_each_once),
        cmocka_unit_test(test_tasks_without_pool_in_order),
        cmocka_unit_test(test_for_after_tasks_uses_chunks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
