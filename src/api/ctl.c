/* SPDX-License-Identifier: MIT
 *
 * The API's lanes: small thread pools for request work that must not run on
 * an HTTP thread. The handler queues the request on a lane and suspends its
 * connection, as inference does; a lane thread runs the work and completes
 * the request.
 *
 *  - control: repository load and unload, which take as long as a model
 *    takes to load (and wait for each other inside the engine);
 *  - decode: the JSON of large inference bodies (parsing 16 MiB takes
 *    seconds), so that health and small requests keep their threads.
 *
 * Each queue is bounded (429 past it); at a stop, requests still queued are
 * answered 503.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LANE_MAX_THREADS 8

struct lane_job {
    struct qv_http_req *r;
    int (*fn)(struct qv_http_req *r);
    struct lane_job *next;
};

struct qv_api_lane {
    const char *what;        /* for messages: "load/unload", "large inference" */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t th[LANE_MAX_THREADS];
    int n_threads, max_queue;
    /* Guarded by mu. */
    struct lane_job *head, *tail;
    int n;
    bool stop;
    int exited;
};

static void finish(struct qv_http_req *r, int err)
{
    if (err == QV_API_PENDING)
        return; /* handed on (to the engine), which completes it */
    if (err != QV_OK)
        qv__api_error(r, err);
    else if (r->status == 0)
        r->status = 200;
    r->complete(r);
}

static void *lane_main(void *arg)
{
    struct qv_api_lane *l = arg;

    pthread_mutex_lock(&l->mu);
    for (;;) {
        struct lane_job *j;
        bool stopping;

        while (l->head == NULL && !l->stop)
            pthread_cond_wait(&l->cond, &l->mu);
        j = l->head;
        if (j == NULL)
            break; /* stopping, nothing queued */
        l->head = j->next;
        if (l->head == NULL)
            l->tail = NULL;
        l->n--;
        stopping = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stopping) {
            qv_fail(&j->r->diag, QV_ESHUTDOWN, "the server is shutting down");
            finish(j->r, QV_ESHUTDOWN);
        } else {
            finish(j->r, j->fn(j->r));
        }
        free(j);
        pthread_mutex_lock(&l->mu);
    }
    l->exited++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

struct qv_api_lane *qv__api_lane_start(const char *what, int threads, int max_queue,
                                       struct qv_diag *d)
{
    struct qv_api_lane *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        qv_fail(d, QV_ENOMEM, "cannot allocate the %s lane", what);
        return NULL;
    }
    l->what = what;
    l->max_queue = max_queue;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    if (threads > LANE_MAX_THREADS)
        threads = LANE_MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&l->th[i], NULL, lane_main, l) != 0)
            break;
        l->n_threads++;
    }
    if (l->n_threads == 0) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cond);
        free(l);
        qv_fail(d, QV_ENOMEM, "cannot start the %s threads", what);
        return NULL;
    }
    return l;
}

int qv__api_lane_submit(struct qv_api_lane *l, struct qv_http_req *r,
                        int (*fn)(struct qv_http_req *r))
{
    struct lane_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return qv_fail(&r->diag, QV_ENOMEM, "cannot queue the request");
    j->r = r;
    j->fn = fn;
    pthread_mutex_lock(&l->mu);
    if (l->stop || l->n >= l->max_queue) {
        bool stopping = l->stop;
        pthread_mutex_unlock(&l->mu);
        free(j);
        if (stopping)
            return qv_fail(&r->diag, QV_ESHUTDOWN, "the server is shutting down");
        return qv_fail(&r->diag, QV_EOVERLOAD, "%d %s requests are queued already; retry "
                       "shortly", l->max_queue, l->what);
    }
    /* Suspended before the job is visible: a thread may complete it at once. */
    r->suspend(r);
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
    return QV_API_PENDING;
}

bool qv__api_lane_stop(struct qv_api_lane *l)
{
    struct timespec ts;
    bool all;

    if (l == NULL)
        return true;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cond);
    /* Queued jobs are answered at once; a job already running is waited for
     * a moment only (the drain deadline has passed when this is called). */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    while (l->exited < l->n_threads) {
        if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) != 0)
            break;
    }
    all = l->exited == l->n_threads;
    pthread_mutex_unlock(&l->mu);
    if (!all) {
        /* Left running inside a job, with the lane: reachable until the exit. */
        for (int i = 0; i < l->n_threads; i++)
            pthread_detach(l->th[i]);
        return false;
    }
    for (int i = 0; i < l->n_threads; i++)
        pthread_join(l->th[i], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond);
    free(l);
    return true;
}
