/* SPDX-License-Identifier: MIT
 *
 * The engine's worker pool: bounded per-version queues, the runnable list,
 * the worker threads and the background lane. What goes into one backend
 * call, and the call itself, are in batcher.c.
 *
 * A version with queued requests and a free instance sits on the runnable
 * list once. A worker takes it, claims an instance, gathers up to
 * max_batch_size rows (waiting at most max_queue_delay_us from the oldest
 * request for more), runs one backend call, splits the outputs back and calls
 * each request's done(). Results of a merged call equal unmerged calls because
 * every backend computes rows independently.
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Takes one of v's instances if one is free (a compare-and-swap: the
 * lock-free inline path takes them too). */
static bool instance_take(qv_version *v)
{
    int a = atomic_load(&v->active);

    while (a < v->instances)
        if (atomic_compare_exchange_weak(&v->active, &a, a + 1))
            return true;
    return false;
}

/* Puts v on the runnable list if it has work and a free instance. 'self':
 * the calling worker is about to take work itself, so v goes first and no
 * other worker is woken for it. */
static void list_locked(qv_engine *e, qv_version *v, bool self)
{
    if (v->listed || v->qlen == 0 || v->active >= v->instances || v->batch_waiting)
        return;
    v->listed = true;
    if (self) {
        v->run_next = e->run_head;
        e->run_head = v;
        if (e->run_tail == NULL)
            e->run_tail = v;
    } else {
        v->run_next = NULL;
        if (e->run_tail)
            e->run_tail->run_next = v;
        else
            e->run_head = v;
        e->run_tail = v;
    }
    atomic_store_explicit(&e->has_runnable, true, memory_order_release);
    if (!self && !atomic_load_explicit(&e->spinner, memory_order_relaxed))
        pthread_cond_signal(&e->work_cond); /* a spinning worker sees it without a wake-up */
}

static void list_runnable_locked(qv_engine *e, qv_version *v)
{
    list_locked(e, v, false);
}

/* One idle worker at a time polls for new work for spin_ns before it sleeps:
 * a request arriving within that time starts without a thread wake-up,
 * which on a virtual machine costs tens of microseconds. The others sleep,
 * so at most one core is spent polling. Called and returns with qlock held. */
static void spin_for_work(qv_engine *e)
{
    uint64_t until;

    if (e->spin_ns == 0 || atomic_load_explicit(&e->spinner, memory_order_relaxed))
        return;
    atomic_store(&e->spinner, true);
    pthread_mutex_unlock(&e->qlock);
    until = qv_now_ns() + e->spin_ns;
    while (!atomic_load_explicit(&e->has_runnable, memory_order_acquire) && qv_now_ns() < until) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&e->qlock);
    atomic_store(&e->spinner, false);
}

bool qv_engine_is_full(const qv_version *v)
{
    return atomic_load_explicit(&v->queued, memory_order_relaxed) >= v->queue_limit;
}

/* ---- Inline execution ---- */

/* Whether v may run a request inline at all: it does not batch, or it
 * batches without a queue delay, so a worker finding one request in an empty
 * queue would run it alone at once, a batch of one; the inline run is that
 * same call on the submitting thread. A version with max_queue_delay_us
 * waits for rows, and keeps the workers. */
static bool inline_kind(const qv_version *v)
{
    return v->max_batch == 0 || v->delay_ns == 0;
}

#define QV_INLINE_CHECK_NS (20ull * 1000000ull) /* re-decide at most this often */
#define QV_INLINE_MIN_SAMPLES 64                /* compute times a decision needs */

/* Re-decides whether v is fast enough to run inline: the p99 of the compute
 * times recorded since the last decision (at least QV_INLINE_MIN_SAMPLES of
 * them) against the engine's threshold. Cheap when it is not yet time. Called
 * after a backend call, under no lock. */
static void inline_update(qv_version *v)
{
    qv_engine *e = v->e;
    uint64_t now = qv_now_ns(), last;
    struct qv_vstats_snap *sn;
    struct qv_lat_hist w;

    if (e->inline_ns == 0 || !inline_kind(v))
        return;
    last = atomic_load_explicit(&v->inline_checked_ns, memory_order_relaxed);
    /* Before the first decision, one is tried as soon as the calls since the
     * baseline can hold QV_INLINE_MIN_SAMPLES compute times: a new version
     * (a swap, a canary at high rates) leaves the workers after its first
     * calls rather than a whole window later. */
    if (last != 0 && now - last < QV_INLINE_CHECK_NS &&
        (atomic_load_explicit(&v->inline_decided, memory_order_relaxed) ||
         atomic_fetch_add_explicit(&v->inline_probe, 1, memory_order_relaxed) + 1 <
             QV_INLINE_MIN_SAMPLES))
        return;
    if (pthread_mutex_trylock(&v->inline_mu) != 0)
        return;
    last = atomic_load_explicit(&v->inline_checked_ns, memory_order_relaxed);
    if (last != 0 && now - last < QV_INLINE_CHECK_NS &&
        atomic_load_explicit(&v->inline_decided, memory_order_relaxed)) {
        pthread_mutex_unlock(&v->inline_mu);
        return;
    }
    sn = malloc(sizeof(*sn));
    if (sn == NULL) {
        pthread_mutex_unlock(&v->inline_mu);
        return;
    }
    qv_vstats_snapshot(v->stats, sn);
    if (last == 0) {
        /* The first look: only what this generation records from now counts. */
        v->inline_prev = sn->compute;
    } else {
        qv_lat_hist_diff(&sn->compute, &v->inline_prev, &w);
        if (qv_lat_hist_count(&w) >= QV_INLINE_MIN_SAMPLES) {
            /* Hysteresis: a version enters the inline path under the
             * threshold and leaves it over twice the threshold. A window's
             * p99 on a busy machine includes the times the thread was
             * preempted mid-call; near the threshold that noise alone would
             * flip the path every window, and each flip queues requests
             * behind a worker wake-up. A really slow version (a canary ten
             * times slower) still leaves within one window. */
            double p99_ns = qv_lat_hist_quantile_ms(&w, 0.99) * 1e6;
            double limit = (double)e->inline_ns;
            if (atomic_load_explicit(&v->inline_ok, memory_order_relaxed))
                limit *= 2.0;
            atomic_store_explicit(&v->inline_ok, p99_ns < limit, memory_order_relaxed);
            atomic_store_explicit(&v->inline_decided, true, memory_order_relaxed);
            v->inline_prev = sn->compute;
        } else if (!atomic_load_explicit(&v->inline_decided, memory_order_relaxed)) {
            /* Too few compute times yet: probe again after as many calls. */
            atomic_store_explicit(&v->inline_probe, 0, memory_order_relaxed);
        }
    }
    atomic_store_explicit(&v->inline_checked_ns, now, memory_order_relaxed);
    pthread_mutex_unlock(&v->inline_mu);
    free(sn);
}

/* Runs r on v on the calling thread. Called with qlock held, v's queue empty
 * and an instance free; returns with qlock released, after done(r). */
static void run_inline_locked(qv_engine *e, qv_version *v, struct qv_infer_req *r)
{
    int slot = 0;

    if (v->n_states > 1) {
        for (slot = 0; slot < v->n_states && v->state_busy[slot]; slot++) {
        }
        v->state_busy[slot] = true;
    }
    qv__version_get(v);
    pthread_mutex_unlock(&e->qlock);

    r->ran_inline = true;
    qv__engine_infer_batch(v, v->states[slot], &r, 1);
    r->t_done = qv_now_ns();
    qv_vstats_execution(v->stats, true);
    qv_vstats_request(v->stats, r->status ? qv_outcome_from_err(r->status) : QV_OUTCOME_OK,
                      r->t_start - r->t_submit, r->t_done - r->t_start, r->t_done - r->t_submit);
    atomic_store_explicit(&v->last_used_ns, r->t_done, memory_order_relaxed);

    pthread_mutex_lock(&e->qlock);
    if (v->n_states > 1)
        v->state_busy[slot] = false;
    v->active--;
    list_runnable_locked(e, v); /* requests queued meanwhile go to a worker */
    pthread_mutex_unlock(&e->qlock);
    inline_update(v);
    r->done(r); /* may release the request's hold; the engine's own hold is v's */
    qv__version_put(v);
}

/* Runs r inline on a reentrant version without the queue's lock, in the
 * instance the caller took: the backend call shares the version's one state
 * with every other caller, so no state slot is picked. The request's own hold
 * keeps v alive; the engine's hold, as on the other paths, keeps v's backend
 * state until the call returns. */
static void run_inline_shared(qv_engine *e, qv_version *v, struct qv_infer_req *r)
{
    qv__version_get(v);
    r->ran_inline = true;
    qv__engine_infer_batch(v, v->states[0], &r, 1);
    r->t_done = qv_now_ns();
    qv_vstats_execution(v->stats, true);
    qv_vstats_request(v->stats, r->status ? qv_outcome_from_err(r->status) : QV_OUTCOME_OK,
                      r->t_start - r->t_submit, r->t_done - r->t_start, r->t_done - r->t_submit);
    atomic_store_explicit(&v->last_used_ns, r->t_done, memory_order_relaxed);
    /* The instance goes back, then the queue is looked at: a submitter that
     * found every instance busy queued its request and then looked at the
     * instances (both sequentially consistent), so one of the two sees the
     * other and the request gets a worker. */
    atomic_fetch_sub(&v->active, 1);
    if (atomic_load(&v->queued) > 0) {
        pthread_mutex_lock(&e->qlock);
        list_runnable_locked(e, v);
        pthread_mutex_unlock(&e->qlock);
    }
    inline_update(v);
    r->done(r);
    qv__version_put(v);
}

int qv_engine_submit(qv_version *v, struct qv_infer_req *r, struct qv_diag *d)
{
    qv_engine *e = v->e;
    int depth;

    r->t_submit = qv_now_ns();
    r->next = NULL;
    r->ran_inline = false;
    /* A fast reentrant version with nothing queued and a free instance runs
     * here with no lock taken: the queue's lock, taken twice per request by
     * every HTTP thread, is the contended point at high request rates. A
     * request that finds the queue non-empty or every instance busy joins
     * the queue (and its limit: 429 past it). */
    if (r->may_inline && inline_kind(v) && v->n_states == 1 &&
        (qv_backend_flags(v->be) & QV_BACKEND_REENTRANT) &&
        atomic_load_explicit(&v->inline_ok, memory_order_relaxed) &&
        atomic_load_explicit(&v->queued, memory_order_relaxed) == 0 &&
        !atomic_load_explicit(&e->stopping, memory_order_relaxed) && instance_take(v)) {
        run_inline_shared(e, v, r);
        return QV_OK;
    }
    pthread_mutex_lock(&e->qlock);
    if (e->stopping) {
        pthread_mutex_unlock(&e->qlock);
        return qv_fail(d, QV_ESHUTDOWN, "the server is shutting down");
    }
    if (r->may_inline && inline_kind(v) && v->qlen == 0 &&
        atomic_load_explicit(&v->inline_ok, memory_order_relaxed) && instance_take(v)) {
        run_inline_locked(e, v, r);
        return QV_OK;
    }
    if (v->qlen >= v->queue_limit) {
        int limit = v->queue_limit;
        pthread_mutex_unlock(&e->qlock);
        qv_vstats_request(v->stats, QV_OUTCOME_OVERLOAD, 0, 0, 0);
        return qv_fail(d, QV_EOVERLOAD, "%s/%lld: queue is full (%d pending requests)", v->model,
                       (long long)v->number, limit);
    }
    if (v->tail)
        v->tail->next = r;
    else
        v->head = r;
    v->tail = r;
    depth = ++v->qlen;
    /* Sequentially consistent, before list_runnable_locked reads active:
     * see run_inline_shared. */
    atomic_store(&v->queued, depth);
    /* The gauge is written under the queue's lock, so the last value
     * written is the queue's real depth. */
    qv_vstats_queue_depth(v->stats, depth);
    if (v->batch_waiting)
        pthread_cond_signal(&v->batch_cond);
    else
        list_runnable_locked(e, v);
    pthread_mutex_unlock(&e->qlock);
    return QV_OK;
}

static void *worker_main(void *arg)
{
    qv_engine *e = arg;

    pthread_mutex_lock(&e->qlock);
    for (;;) {
        struct qv_infer_req *batch[1024];
        qv_version *v;
        int n = 0, slot = 0, take, depth;
        int64_t max, rows;

        if (e->run_head == NULL && !e->stopping)
            spin_for_work(e);
        while (e->run_head == NULL && !e->stopping)
            pthread_cond_wait(&e->work_cond, &e->qlock);
        if (e->run_head == NULL)
            break; /* stopping and nothing left */
        v = e->run_head;
        e->run_head = v->run_next;
        if (e->run_head == NULL) {
            e->run_tail = NULL;
            atomic_store_explicit(&e->has_runnable, false, memory_order_relaxed);
        } else {
            pthread_cond_signal(&e->work_cond); /* more listed than this worker takes */
        }
        v->listed = false;
        if (v->qlen == 0 || !instance_take(v))
            continue;
        max = v->max_batch > 0 ? v->max_batch : 1;
        if (max > (int64_t)QV_ARRAY_LEN(batch))
            max = QV_ARRAY_LEN(batch);
        rows = qv__batch_gather_locked(v, max, NULL, &take);
        /* Dynamic batching: wait for more rows until the oldest request has
         * waited max_queue_delay_us, the batch is full or hits a preferred size. */
        if (v->max_batch > 0 && v->delay_ns > 0 && rows < max && !qv__batch_is_preferred(v, rows) &&
            !e->stopping) {
            uint64_t deadline = v->head->t_submit + v->delay_ns;
            struct timespec ts;
            uint64_t now_rt;

            v->batch_waiting = true;
            for (;;) {
                uint64_t now = qv_now_ns();
                if (now >= deadline || e->stopping)
                    break;
                clock_gettime(CLOCK_REALTIME, &ts);
                now_rt = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                         (deadline - now);
                ts.tv_sec = (time_t)(now_rt / 1000000000ull);
                ts.tv_nsec = (long)(now_rt % 1000000000ull);
                pthread_cond_timedwait(&v->batch_cond, &e->qlock, &ts);
                rows = qv__batch_gather_locked(v, max, NULL, &take);
                if (rows >= max || qv__batch_is_preferred(v, rows))
                    break;
            }
            v->batch_waiting = false;
        }
        qv__batch_gather_locked(v, max, batch, &n);
        v->qlen -= n;
        atomic_store_explicit(&v->queued, v->qlen, memory_order_relaxed);
        if (v->n_states > 1) {
            for (slot = 0; slot < v->n_states && v->state_busy[slot]; slot++) {
            }
            v->state_busy[slot] = true;
        }
        list_runnable_locked(e, v); /* more work and a free instance: another worker */
        depth = v->qlen;
        qv_vstats_queue_depth(v->stats, depth);
        /* The requests' own holds end in done(); the worker keeps v and its
         * backend state until it has finished with them. */
        qv__version_get(v);
        pthread_mutex_unlock(&e->qlock);

        qv__engine_infer_batch(v, v->states[slot], batch, n);
        for (int k = 0; k < n; k++) {
            struct qv_infer_req *r = batch[k];
            r->t_done = qv_now_ns();
            qv_vstats_execution(v->stats, false);
            qv_vstats_request(v->stats, r->status ? qv_outcome_from_err(r->status) : QV_OUTCOME_OK,
                              r->t_start - r->t_submit, r->t_done - r->t_start,
                              r->t_done - r->t_submit);
            r->done(r);
        }
        inline_update(v);
        atomic_store_explicit(&v->last_used_ns, qv_now_ns(), memory_order_relaxed);

        pthread_mutex_lock(&e->qlock);
        if (v->n_states > 1)
            v->state_busy[slot] = false;
        v->active--;
        list_locked(e, v, true); /* this worker goes on with v's next batch */
        pthread_mutex_unlock(&e->qlock);
        qv__version_put(v); /* may unload or free v: outside the lock */
        pthread_mutex_lock(&e->qlock);
    }
    pthread_mutex_unlock(&e->qlock);
    return NULL;
}

/* ---- Background lane ---- */

/* The lane sheds rather than competes: it holds at most bg_limit copies
 * (default 16), and a copy that finds it full is dropped and counted
 * (quiver_shadow_dropped_total). Its thread runs at the lowest priority, so
 * on a busy machine the primaries take the CPU and the lane falls behind,
 * fills and drops, instead of slowing them. */
int qv_engine_submit_background(qv_version *v, struct qv_infer_req *r, struct qv_diag *d)
{
    qv_engine *e = v->e;

    r->may_inline = false;
    if (!(qv_backend_flags(v->be) & QV_BACKEND_REENTRANT)) {
        /* Its state cannot be shared with a second thread: a worker runs it,
         * but only when the version has nothing else waiting. */
        if (atomic_load_explicit(&v->queued, memory_order_relaxed) > 0) {
            qv_vstats_shadow_dropped(v->stats);
            return qv_fail(d, QV_EOVERLOAD, "background lane is full");
        }
        return qv_engine_submit(v, r, d);
    }
    r->t_submit = qv_now_ns();
    r->next = NULL;
    r->bg_version = v;
    pthread_mutex_lock(&e->qlock);
    if (e->stopping || e->bg_len >= e->bg_limit) {
        pthread_mutex_unlock(&e->qlock);
        qv_vstats_shadow_dropped(v->stats);
        return qv_fail(d, QV_EOVERLOAD, "background lane is full");
    }
    if (e->bg_tail)
        e->bg_tail->next = r;
    else
        e->bg_head = r;
    e->bg_tail = r;
    e->bg_len++;
    pthread_cond_signal(&e->bg_cond);
    pthread_mutex_unlock(&e->qlock);
    return QV_OK;
}

static void *background_main(void *arg)
{
    qv_engine *e = arg;

    /* The lowest priority for this thread alone (Linux: a thread's nice
     * value is its own). Failing to lower it is not an error. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    pthread_mutex_lock(&e->qlock);
    for (;;) {
        struct qv_infer_req *r;
        qv_version *v;

        while (e->bg_head == NULL && !e->stopping)
            pthread_cond_wait(&e->bg_cond, &e->qlock);
        if (e->bg_head == NULL)
            break;
        r = e->bg_head;
        e->bg_head = r->next;
        if (e->bg_head == NULL)
            e->bg_tail = NULL;
        e->bg_len--;
        pthread_mutex_unlock(&e->qlock);
        v = r->bg_version;
        qv__engine_infer_batch(v, v->states[0], &r, 1);
        r->t_done = qv_now_ns();
        qv_vstats_request(v->stats, r->status ? qv_outcome_from_err(r->status) : QV_OUTCOME_OK,
                          r->t_start - r->t_submit, r->t_done - r->t_start,
                          r->t_done - r->t_submit);
        r->done(r);
        pthread_mutex_lock(&e->qlock);
    }
    pthread_mutex_unlock(&e->qlock);
    return NULL;
}

int qv__engine_workers_start(qv_engine *e)
{
    pthread_cond_init(&e->bg_cond, NULL);
    if (pthread_create(&e->bg_thread, NULL, background_main, e) == 0)
        e->bg_started = true;
    e->workers = qv_xcalloc((size_t)e->n_workers, sizeof(pthread_t));
    for (int i = 0; i < e->n_workers; i++) {
        if (pthread_create(&e->workers[i], NULL, worker_main, e) != 0) {
            qv_log(QV_LOG_ERROR, "msg=\"cannot start a worker thread\"");
            e->n_workers = i;
            return QV_ENOMEM;
        }
    }
    return QV_OK;
}

/* Lets the workers finish every queued request, then joins them. */
void qv__engine_workers_stop(qv_engine *e)
{
    pthread_mutex_lock(&e->qlock);
    e->stopping = true;
    pthread_cond_broadcast(&e->work_cond);
    pthread_cond_broadcast(&e->bg_cond);
    pthread_mutex_unlock(&e->qlock);
    if (e->bg_started)
        pthread_join(e->bg_thread, NULL);
    e->bg_started = false;
    for (int i = 0; i < e->n_workers; i++)
        pthread_join(e->workers[i], NULL);
    free(e->workers);
    e->workers = NULL;
    e->n_workers = 0;
}
