/* SPDX-License-Identifier: MIT
 *
 * The intra-op thread pool: a fixed set of threads, created once per
 * execution context, that kernels hand ranges of work to through
 * qv_parallel_for(). The calling thread works too, so a pool of n threads
 * starts n - 1. Chunks are contiguous, at most n, of ceil(items / chunks)
 * items each (the last may be shorter), fixed by (items, grain, n) alone;
 * each chunk runs on exactly one thread, so a kernel whose items are
 * independent gives the same bits at any thread count.
 *
 * qv_parallel_dyn() cuts finer, up to QV_DYN_CHUNKS chunks per thread of even
 * sizes, and qv_parallel_tasks() runs one task per chunk, as many chunks as
 * tasks; both pass each call the index of the thread running it (0 the
 * caller, i for worker i) instead of the chunk's, for per-thread scratch.
 *
 * Affinity: a job's chunks are cut into one contiguous run per thread, and
 * thread i runs its own run i first, front to back; only then does it help
 * with what is left of the others'. So when nothing is late, chunk c of
 * every job goes to the same thread: a kernel that splits its output the
 * way the previous kernel split its own (by channels, by rows) reads on
 * each core what that core just wrote, instead of pulling it from the other
 * core's cache. A thread that is slow to wake (a busy machine) costs
 * nothing: the others take its run.
 *
 * Hand-off: the caller publishes the job under a new generation; idle
 * workers spin on it for a short while (a kernel usually follows within
 * microseconds) before sleeping on a condition variable. The caller then
 * waits (spinning, then sleeping) for chunks still running elsewhere.
 */
#include "onnx_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Spin iterations before sleeping (a pause each, tens of nanoseconds). */
#define SPIN 4000

/* One thread's run of a job's chunks: (generation << 32) | (front << 16) |
 * back, the chunks [front, back) not yet claimed. The owner claims from the
 * front, other threads from the back, each by a CAS of the same generation:
 * a thread only ever runs chunks of the job whose fields it has seen, and
 * the owner keeps the contiguous start of its run. */
struct run {
    _Alignas(64) atomic_uint_fast64_t word;
};

struct qv_tpool {
    int n; /* threads, the caller included */
    int started;
    pthread_t *th;
    struct worker *w;
    struct run *runs; /* n of them */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    /* (job generation << 32) | (chunks << 16) | runs. Stored with release
     * after the job's fields and the runs' counters. */
    atomic_uint_fast64_t ticket;
    atomic_int finished; /* chunks of the current job completed */
    atomic_bool stop;
    /* The current job: written before the ticket is published. */
    qv_range_fn fn;
    void *arg;
    bool by_worker; /* fn's last argument: the thread's index, not the chunk's */
    bool even;      /* chunk c is [items * c / chunks, items * (c + 1) / chunks) */
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

/* First chunk of run r of 'runs' over 'chunks'. */
static inline int run_begin(int chunks, int runs, int r)
{
    return (int)((int64_t)chunks * r / runs);
}

/* Runs chunk c of the current job on thread 'id'. */
static void run_one(struct qv_tpool *p, int c, int chunks, int id)
{
    int64_t b, e;

    if (p->even) {
        b = p->items * c / chunks;
        e = p->items * (c + 1) / chunks;
    } else {
        b = (int64_t)c * p->chunk;
        e = b + p->chunk < p->items ? b + p->chunk : p->items;
    }
    p->fn(p->arg, b, e, p->by_worker ? id : c);
    if (atomic_fetch_add_explicit(&p->finished, 1, memory_order_acq_rel) + 1 == chunks) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Claims a chunk of generation 'gen' from run r: its front if 'own', else
 * its back. Returns the chunk, -1 if the run is empty, -2 if the job is
 * over (a later generation is published). */
static int claim(struct run *r, uint_fast64_t gen, bool own)
{
    uint_fast64_t v = atomic_load_explicit(&r->word, memory_order_acquire);

    for (;;) {
        int front = (int)((v >> 16) & 0xffffu), back = (int)(v & 0xffffu);
        if ((v >> 32) != gen)
            return -2;
        if (front >= back)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&r->word, &v, own ? v + 0x10000u : v - 1u,
                                                  memory_order_acq_rel, memory_order_acquire))
            return own ? front : back - 1;
    }
}

/* Runs chunks of generation 'gen': run 'id' from its front, then the
 * others' from their backs, until none is left; 'id' is the calling
 * thread's index (0 for the caller). */
static void run_chunks(struct qv_tpool *p, uint_fast64_t gen, int id)
{
    uint_fast64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
    int chunks = (int)((t >> 16) & 0xffffu), runs = (int)(t & 0xffffu);

    if ((t >> 32) != gen || runs == 0)
        return;
    for (int k = 0; k < runs; k++) {
        int r = (id + k) % runs, c;
        while ((c = claim(&p->runs[r], gen, k == 0)) >= 0)
            run_one(p, c, chunks, id);
        if (c == -2)
            return; /* a later job: this one is over */
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
    p->runs = aligned_alloc(_Alignof(struct run), sizeof(struct run) * (size_t)threads);
    if (p->th == NULL || p->w == NULL || p->runs == NULL) {
        free(p->th);
        free(p->w);
        free(p->runs);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->ticket, 0);
    for (int i = 0; i < threads; i++)
        atomic_init(&p->runs[i].word, 0);
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
    free(p->runs);
    free(p);
}

int qv__tpool_threads(const struct qv_tpool *p)
{
    return p ? p->n : 1;
}

/* Runs the chunks of [0, items) on the pool: 'chunk' items each (the last
 * may be shorter), or, with 'even', 'chunk' chunks of even sizes. */
static void run_job(struct qv_tpool *p, int64_t items, int64_t chunk, qv_range_fn fn, void *arg,
                    bool by_worker, bool even)
{
    uint_fast64_t gen;
    int runs;

    gen = ((atomic_load_explicit(&p->ticket, memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    p->fn = fn;
    p->arg = arg;
    p->by_worker = by_worker;
    p->even = even;
    p->items = items;
    p->chunk = chunk;
    p->chunks = even ? (int)chunk : (int)((items + chunk - 1) / chunk);
    runs = p->chunks < p->n ? p->chunks : p->n;
    for (int r = 0; r < runs; r++)
        atomic_store_explicit(&p->runs[r].word,
                              (gen << 32) |
                                  ((uint_fast64_t)run_begin(p->chunks, runs, r) << 16) |
                                  (uint_fast64_t)run_begin(p->chunks, runs, r + 1),
                              memory_order_relaxed);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->ticket,
                          (gen << 32) | ((uint_fast64_t)p->chunks << 16) | (uint_fast64_t)runs,
                          memory_order_release);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    /* The caller runs its own run, then takes over runs of workers that
     * are slow to wake (a busy machine) instead of waiting for them. */
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

/* How many parts of at least 'grain' items [0, items) is cut into on pool
 * p, at most 'per_thread' per thread; 1 (run it on the caller) without a
 * pool or with fewer than two parts' worth of items. */
static int64_t parts(const struct qv_tpool *p, int64_t items, int64_t grain, int64_t per_thread)
{
    int64_t n = items / (grain < 1 ? 1 : grain);

    if (p == NULL || n < 2)
        return 1;
    return n < per_thread * p->n ? n : per_thread * p->n;
}

void qv_parallel_for(const struct qv_exec *x, int64_t items, int64_t grain, qv_range_fn fn,
                     void *arg)
{
    struct qv_tpool *p = x ? x->pool : NULL;
    int64_t chunks = parts(p, items, grain, 1);

    if (items <= 0)
        return;
    if (chunks < 2) {
        fn(arg, 0, items, 0);
        return;
    }
    run_job(p, items, (items + chunks - 1) / chunks, fn, arg, false, false);
}

void qv_parallel_dyn(const struct qv_exec *x, int64_t items, int64_t grain, qv_range_fn fn,
                     void *arg)
{
    struct qv_tpool *p = x ? x->pool : NULL;
    int64_t chunks = parts(p, items, grain, QV_DYN_CHUNKS);

    if (items <= 0)
        return;
    if (chunks < 2) {
        fn(arg, 0, items, 0);
        return;
    }
    run_job(p, items, chunks, fn, arg, true, true);
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
    run_job(p, tasks, tasks > MAX_TASKS ? (tasks + MAX_TASKS - 1) / MAX_TASKS : 1, fn, arg, true,
            false);
}

int qv_parallel_chunks(const struct qv_exec *x, int64_t items, int64_t grain)
{
    int64_t chunks = parts(x ? x->pool : NULL, items, grain, 1), chunk;

    if (chunks < 2)
        return 1;
    chunk = (items + chunks - 1) / chunks;
    return (int)((items + chunk - 1) / chunk);
}
