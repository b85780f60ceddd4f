/* SPDX-License-Identifier: MIT
 *
 * The intra-op thread pool: a fixed set of threads, created once per
 * execution context, that kernels hand ranges of work to through
 * qv_parallel_for(). The calling thread works too, so a pool of n threads
 * starts n - 1. Chunks are contiguous, at most n, of ceil(items / chunks)
 * items each (the last may be shorter), fixed by (items, grain, n) alone;
 * each chunk runs on exactly one thread, so a kernel whose items are
 * independent gives the same bits at any thread count. Which thread runs
 * which chunk is decided at run time.
 *
 * qv_parallel_tasks() runs one task per chunk, as many chunks as tasks, and
 * passes each call the index of the thread running it (0 the caller, i for
 * worker i) instead of the chunk's, for per-thread scratch.
 *
 * Hand-off: the caller publishes the job under a new generation; idle
 * workers spin on it for a short while (a kernel usually follows within
 * microseconds) before sleeping on a condition variable. Every thread,
 * the caller included, claims chunks until none is left, so a worker that
 * is slow to wake costs nothing; the caller then waits (spinning, then
 * sleeping) for chunks still running elsewhere.
 */
#include "onnx_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Spin iterations before sleeping (a pause each, tens of nanoseconds). */
#define SPIN 4000

struct qv_tpool {
    int n; /* threads, the caller included */
    int started;
    pthread_t *th;
    struct worker *w;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    /* (job generation << 32) | (chunks << 16) | next chunk to claim.
     * Publishing a job stores it with release; claiming a chunk is a CAS of
     * the same generation, so a thread only ever runs chunks of the job
     * whose fields it has seen, and decides from this word alone. */
    atomic_uint_fast64_t ticket;
    atomic_int finished; /* chunks of the current job completed */
    atomic_bool stop;
    /* The current job: written before the ticket is published. */
    qv_range_fn fn;
    void *arg;
    bool by_worker; /* fn's last argument: the thread's index, not the chunk's */
    int64_t items, chunk;
    int chunks; /* read by the caller only; workers read it from the ticket */
};

struct worker {
    struct qv_tpool *p;
    int id;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of generation 'gen' until none is left; 'id' is
 * the calling thread's index (0 for the caller). */
static void run_chunks(struct qv_tpool *p, uint_fast64_t gen, int id)
{
    for (;;) {
        uint_fast64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        int c = (int)(t & 0xffffu), chunks = (int)((t >> 16) & 0xffffu);
        int64_t b, e;
        if ((t >> 32) != gen || c >= chunks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        b = (int64_t)c * p->chunk;
        e = b + p->chunk < p->items ? b + p->chunk : p->items;
        p->fn(p->arg, b, e, p->by_worker ? id : c);
        if (atomic_fetch_add_explicit(&p->finished, 1, memory_order_acq_rel) + 1 == chunks) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct qv_tpool *p = w->p;
    uint_fast64_t seen = 0;

    for (;;) {
        uint_fast64_t g = atomic_load_explicit(&p->ticket, memory_order_acquire) >> 32;
        for (int k = 0; g == seen && k < SPIN; k++) {
            cpu_relax();
            g = atomic_load_explicit(&p->ticket, memory_order_acquire) >> 32;
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->ticket, memory_order_acquire) >> 32) == seen &&
                   !atomic_load(&p->stop))
                pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        run_chunks(p, g, w->id);
    }
}

struct qv_tpool *qv__tpool_create(int threads)
{
    struct qv_tpool *p;

    if (threads < 2)
        return NULL;
    if (threads > QV_TPOOL_MAX)
        threads = QV_TPOOL_MAX;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->th = calloc((size_t)threads, sizeof(*p->th));
    p->w = calloc((size_t)threads, sizeof(*p->w));
    if (p->th == NULL || p->w == NULL) {
        free(p->th);
        free(p->w);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->stop, false);
    p->n = 1;
    for (int i = 1; i < threads; i++) {
        p->w[i].p = p;
        p->w[i].id = i;
        if (pthread_create(&p->th[i], NULL, worker_main, &p->w[i]) != 0)
            break; /* run with the threads we have */
        p->n++;
    }
    p->started = p->n;
    if (p->n < 2) {
        qv__tpool_free(p);
        return NULL;
    }
    return p;
}

void qv__tpool_free(struct qv_tpool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->started; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p->w);
    free(p);
}

int qv__tpool_threads(const struct qv_tpool *p)
{
    return p ? p->n : 1;
}

/* Runs 'chunks' chunks of 'chunk' items over [0, items) on the pool. */
static void run_job(struct qv_tpool *p, int64_t items, int64_t chunk, qv_range_fn fn, void *arg,
                    bool by_worker)
{
    uint_fast64_t gen;

    gen = ((atomic_load_explicit(&p->ticket, memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    p->fn = fn;
    p->arg = arg;
    p->by_worker = by_worker;
    p->items = items;
    p->chunk = chunk;
    p->chunks = (int)((items + chunk - 1) / chunk);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->ticket, (gen << 32) | ((uint_fast64_t)p->chunks << 16),
                          memory_order_release);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    /* The caller claims chunks too: if a worker is slow to wake (a busy
     * machine), the caller runs its chunks instead of waiting for it. */
    run_chunks(p, gen, 0);
    for (int k = 0;
         k < SPIN && atomic_load_explicit(&p->finished, memory_order_acquire) < p->chunks; k++)
        cpu_relax();
    if (atomic_load_explicit(&p->finished, memory_order_acquire) < p->chunks) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->finished, memory_order_acquire) < p->chunks)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void qv_parallel_for(const struct qv_exec *x, int64_t items, int64_t grain, qv_range_fn fn,
                     void *arg)
{
    struct qv_tpool *p = x ? x->pool : NULL;
    int64_t chunks;

    if (items <= 0)
        return;
    if (grain < 1)
        grain = 1;
    chunks = items / grain;
    if (p == NULL || chunks < 2) {
        fn(arg, 0, items, 0);
        return;
    }
    if (chunks > p->n)
        chunks = p->n;
    run_job(p, items, (items + chunks - 1) / chunks, fn, arg, false);
}

/* Chunks a ticket can count (16 bits). */
#define MAX_TASKS 0xffff

void qv_parallel_tasks(const struct qv_exec *x, int64_t tasks, qv_range_fn fn, void *arg)
{
    struct qv_tpool *p = x ? x->pool : NULL;

    if (tasks <= 0)
        return;
    if (p == NULL || tasks < 2) {
        for (int64_t t = 0; t < tasks; t++)
            fn(arg, t, t + 1, 0);
        return;
    }
    /* One task per chunk, or runs of them past what a ticket counts. */
    run_job(p, tasks, tasks > MAX_TASKS ? (tasks + MAX_TASKS - 1) / MAX_TASKS : 1, fn, arg, true);
}

int qv_parallel_chunks(const struct qv_exec *x, int64_t items, int64_t grain)
{
    const struct qv_tpool *p = x ? x->pool : NULL;
    int64_t chunks;

    if (grain < 1)
        grain = 1;
    chunks = items / grain;
    if (p == NULL || chunks < 2)
        return 1;
    if (chunks > p->n)
        chunks = p->n;
    {
        int64_t chunk = (items + chunks - 1) / chunks;
        return (int)((items + chunk - 1) / chunk);
    }
}
