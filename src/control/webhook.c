/* SPDX-License-Identifier: MIT
 *
 * Webhooks: alert notifications POSTed as JSON from one background thread,
 * so the controller's tick never waits on the network. The queue is bounded
 * (the oldest notification is dropped, and logged, when it is full); each
 * POST has a short connect and total timeout; a failure is logged and not
 * retried.
 */
#include "control_int.h"

#define QV_LOG_MODULE "control"

#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WEBHOOK_QUEUE_MAX 256

struct item {
    char *url, *body;
};

struct qv__webhook {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item q[WEBHOOK_QUEUE_MAX]; /* ring; guarded by mu */
    int head, n;                      /* guarded by mu */
    bool stop;                        /* guarded by mu */
};

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void post(CURL *h, const struct item *it)
{
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    CURLcode rc;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, it->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status >= 300)
        qv_log(QV_LOG_WARN, "url=\"%s\" status=%ld msg=\"webhook failed\" reason=\"%s\"", it->url,
               status, rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP status");
    curl_slist_free_all(hdrs);
}

static void *run(void *arg)
{
    struct qv__webhook *w = arg;
    CURL *h = curl_easy_init();

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct item it;
        while (!w->stop && w->n == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        it = w->q[w->head];
        w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        if (h != NULL)
            post(h, &it);
        free(it.url);
        free(it.body);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    curl_easy_cleanup(h);
    return NULL;
}

struct qv__webhook *qv__webhook_start(void)
{
    struct qv__webhook *w = qv_xcalloc(1, sizeof(*w));
    sigset_t all, old;

    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* The thread inherits a full signal mask: signals belong to the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        qv_log(QV_LOG_WARN, "msg=\"webhook thread not started; webhooks disabled\"");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return w;
}

void qv__webhook_post(struct qv__webhook *w, const char *url, const char *body)
{
    pthread_mutex_lock(&w->mu);
    if (w->n == WEBHOOK_QUEUE_MAX) {
        struct item *old = &w->q[w->head];
        qv_log(QV_LOG_WARN, "url=\"%s\" msg=\"webhook queue full; oldest notification dropped\"",
               old->url);
        free(old->url);
        free(old->body);
        w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
        w->n--;
    }
    w->q[(w->head + w->n) % WEBHOOK_QUEUE_MAX].url = qv_xstrdup(url);
    w->q[(w->head + w->n) % WEBHOOK_QUEUE_MAX].body = qv_xstrdup(body);
    w->n++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void qv__webhook_stop(struct qv__webhook *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->n > 0) {
        free(w->q[w->head].url);
        free(w->q[w->head].body);
        w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
        w->n--;
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
