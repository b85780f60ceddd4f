/* SPDX-License-Identifier: MIT
 *
 * The API's control thread: repository load and unload can take as long as a
 * model takes to load (and they wait for each other inside the engine), so
 * they never run on an HTTP thread. The handler queues the request here and
 * suspends its connection, as inference does; this thread runs the work and
 * completes the request. The queue is bounded (429 past it); at a stop,
 * requests still queued are answered 503.
 */
#include "api_int.h"

#define QV_LOG_MODULE "api"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ctl_job {
    struct qv_http_req *r;
    int (*fn)(struct qv_http_req *r);
    struct ctl_job *next;
};

static void finish(struct qv_http_req *r, int err)
{
    if (err != QV_OK)
        qv__api_error(r, err);
    else if (r->status == 0)
        r->status = 200;
    r->complete(r);
}

static void *ctl_main(void *arg)
{
    struct qv_api *a = arg;

    pthread_mutex_lock(&a->ctl_mu);
    for (;;) {
        struct ctl_job *j;

        while (a->ctl_head == NULL && !a->ctl_stop)
            pthread_cond_wait(&a->ctl_cond, &a->ctl_mu);
        j = a->ctl_head;
        if (j == NULL)
            break; /* stopping, nothing queued */
        a->ctl_head = j->next;
        if (a->ctl_head == NULL)
            a->ctl_tail = NULL;
        a->ctl_n--;
        if (a->ctl_stop) {
            pthread_mutex_unlock(&a->ctl_mu);
            qv_fail(&j->r->diag, QV_ESHUTDOWN, "the server is shutting down");
            finish(j->r, QV_ESHUTDOWN);
            free(j);
            pthread_mutex_lock(&a->ctl_mu);
            continue;
        }
        a->ctl_running = true;
        pthread_mutex_unlock(&a->ctl_mu);
        finish(j->r, j->fn(j->r));
        free(j);
        pthread_mutex_lock(&a->ctl_mu);
        a->ctl_running = false;
    }
    a->ctl_exited = true;
    pthread_cond_broadcast(&a->ctl_cond);
    pthread_mutex_unlock(&a->ctl_mu);
    return NULL;
}

int qv__api_ctl_start(struct qv_api *a, struct qv_diag *d)
{
    pthread_mutex_init(&a->ctl_mu, NULL);
    pthread_cond_init(&a->ctl_cond, NULL);
    if (pthread_create(&a->ctl_thread, NULL, ctl_main, a) != 0)
        return qv_fail(d, QV_ENOMEM, "cannot start the API control thread");
    return QV_OK;
}

int qv__api_ctl_submit(struct qv_http_req *r, int (*fn)(struct qv_http_req *r))
{
    struct qv_api *a = r->api;
    struct ctl_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return qv_fail(&r->diag, QV_ENOMEM, "cannot queue the request");
    j->r = r;
    j->fn = fn;
    pthread_mutex_lock(&a->ctl_mu);
    if (a->ctl_stop || a->ctl_n >= QV_API_CTL_QUEUE_MAX) {
        bool stopping = a->ctl_stop;
        pthread_mutex_unlock(&a->ctl_mu);
        free(j);
        if (stopping)
            return qv_fail(&r->diag, QV_ESHUTDOWN, "the server is shutting down");
        return qv_fail(&r->diag, QV_EOVERLOAD,
                       "%d load/unload requests are queued already; retry shortly",
                       QV_API_CTL_QUEUE_MAX);
    }
    /* Suspended before the job is visible: the thread may complete it at once. */
    r->suspend(r);
    if (a->ctl_tail)
        a->ctl_tail->next = j;
    else
        a->ctl_head = j;
    a->ctl_tail = j;
    a->ctl_n++;
    pthread_cond_signal(&a->ctl_cond);
    pthread_mutex_unlock(&a->ctl_mu);
    return QV_API_PENDING;
}

void qv__api_ctl_stop(struct qv_api *a)
{
    struct timespec ts;
    bool exited;

    pthread_mutex_lock(&a->ctl_mu);
    if (a->ctl_stop) {
        pthread_mutex_unlock(&a->ctl_mu);
        return;
    }
    a->ctl_stop = true;
    pthread_cond_broadcast(&a->ctl_cond);
    /* Queued jobs are answered at once; a job already running is waited for
     * a moment only (the drain deadline has passed when this is called). */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    while (!a->ctl_exited) {
        if (pthread_cond_timedwait(&a->ctl_cond, &a->ctl_mu, &ts) != 0)
            break;
    }
    exited = a->ctl_exited;
    pthread_mutex_unlock(&a->ctl_mu);
    if (exited)
        pthread_join(a->ctl_thread, NULL);
    else
        pthread_detach(a->ctl_thread);
}

bool qv__api_ctl_busy(struct qv_api *a)
{
    bool busy;

    pthread_mutex_lock(&a->ctl_mu);
    busy = !a->ctl_exited;
    pthread_mutex_unlock(&a->ctl_mu);
    return busy;
}
