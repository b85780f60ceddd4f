/* SPDX-License-Identifier: MIT
 *
 * Shared by the engine's unit tests: a temporary repository of "test"
 * backend versions, an engine on it, and requests sent through the queue.
 */
#ifndef QV_TEST_ENGINE_FIXTURE_H
#define QV_TEST_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"

static char fx_root[256];

static inline void fx_write(const char *rel, const char *text)
{
    char path[600], dir[600];
    char *slash;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", fx_root, rel);
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    *slash = '\0';
    assert_int_equal(qv_mkdir_p(dir), 0);
    /* Written beside and renamed over: a reader sees the old or the new file. */
    {
        char tmp[640];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(rename(tmp, path), 0);
    }
}

static inline void fx_path(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", fx_root, rel);
}

static inline void fx_repo_new(void)
{
    snprintf(fx_root, sizeof(fx_root), "/tmp/qv-engine-XXXXXX");
    assert_non_null(mkdtemp(fx_root));
}

static inline void fx_repo_remove(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s 2>/dev/null; rm -rf %s", fx_root, fx_root);
    assert_int_equal(system(cmd), 0);
}

/* The engine's state-change events, as the server would record them. */
static pthread_mutex_t fx_events_mu = PTHREAD_MUTEX_INITIALIZER;
static char fx_events[16384];

static inline void fx_on_state(void *ud, const char *model, int64_t version, const char *sha256,
                               enum qv_version_state st, const char *reason)
{
    size_t n;

    (void)ud;
    pthread_mutex_lock(&fx_events_mu);
    n = strlen(fx_events);
    if (n < sizeof(fx_events) - 1)
        snprintf(fx_events + n, sizeof(fx_events) - n, "%s/%lld %s sha=%.12s %s\n", model,
                 (long long)version, qv_version_state_name(st), sha256 ? sha256 : "", reason);
    pthread_mutex_unlock(&fx_events_mu);
}

/* Whether an event line containing every one of a, b (b may be NULL) was seen. */
static inline bool fx_event_seen(const char *a, const char *b)
{
    bool seen = false;

    pthread_mutex_lock(&fx_events_mu);
    for (const char *line = fx_events; *line && !seen;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
        seen = strstr(buf, a) != NULL && (b == NULL || strstr(buf, b) != NULL);
        line += len + (end ? 1 : 0);
    }
    pthread_mutex_unlock(&fx_events_mu);
    return seen;
}

static inline qv_engine *fx_engine(qv_monitor **mon, uint64_t budget, int evict_idle_ms)
{
    struct qv_engine_config cfg = {0};
    struct qv_engine_hooks hooks = {.version_state = fx_on_state};
    struct qv_diag d = {{0}};
    qv_engine *e = NULL;

    cfg.repo_root = fx_root;
    cfg.workers = 2;
    cfg.poll_ms = 3600000; /* no background rescans: the test drives changes */
    cfg.memory_budget = budget;
    cfg.evict_idle_ms = evict_idle_ms;
    assert_int_equal(qv_monitor_create(mon), 0);
    pthread_mutex_lock(&fx_events_mu);
    fx_events[0] = '\0';
    pthread_mutex_unlock(&fx_events_mu);
    assert_int_equal(qv_engine_create(&cfg, &hooks, *mon, &e, &d), 0);
    assert_int_equal(qv_engine_start(e, &d), 0);
    return e;
}

/* ---- Requests ---- */

struct fx_req {
    struct qv_infer_req r;
    qv_version *v;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static inline void fx_on_done(struct qv_infer_req *r)
{
    struct fx_req *q = r->ud;

    pthread_mutex_lock(&q->mu);
    q->done = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Queues rows x width values (row i, column c: base + i + c / 8) on
 * model/version. Returns the submit error; on 0, fx_wait() must follow. */
static inline int fx_send(qv_engine *e, const char *model, int64_t version, int64_t rows,
                          int64_t width, float base, struct fx_req *q, struct qv_diag *d)
{
    int64_t shape[2] = {rows, width};
    int err;

    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    err = qv_engine_acquire(e, model, version, &q->v, d);
    if (err)
        return err;
    assert_int_equal(qv_tensor_alloc(&q->r.inputs[0], "input__0", QV_DTYPE_F32, 2, shape), 0);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < width; c++)
            ((float *)q->r.inputs[0].data)[i * width + c] = base + (float)i + (float)c / 8.0f;
    q->r.n_inputs = 1;
    q->r.done = fx_on_done;
    q->r.ud = q;
    err = qv_engine_prepare(q->v, &q->r, d);
    if (!err)
        err = qv_engine_submit(q->v, &q->r, d);
    if (err) {
        qv_infer_req_fini(&q->r);
        qv_version_release(q->v);
        q->v = NULL;
    }
    return err;
}

/* The expected output of row i of fx_send for a linear test version. */
static inline float fx_expect(float base, int64_t i, int64_t width, double scale)
{
    double s = 0;

    for (int64_t c = 0; c < width; c++)
        s += (double)(base + (float)i + (float)c / 8.0f);
    return (float)(scale * (s / (double)width));
}

static inline int fx_wait(struct fx_req *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->done)
        pthread_cond_wait(&q->cv, &q->mu);
    pthread_mutex_unlock(&q->mu);
    return q->r.status;
}

static inline void fx_free(struct fx_req *q)
{
    qv_infer_req_fini(&q->r);
    qv_version_release(q->v);
    q->v = NULL;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* One request of one row, synchronously: its output, or NAN with *err. */
static inline float fx_infer(qv_engine *e, const char *model, int64_t version, int64_t width,
                             float base, int *err)
{
    struct fx_req q;
    struct qv_diag d = {{0}};
    float y = NAN;

    *err = fx_send(e, model, version, 1, width, base, &q, &d);
    if (*err)
        return NAN;
    *err = fx_wait(&q);
    if (*err == 0)
        y = ((float *)q.r.outputs[0].data)[0];
    fx_free(&q);
    return y;
}

static inline enum qv_version_state fx_state(qv_engine *e, const char *model, int64_t version,
                                      char *reason, size_t len)
{
    struct qv_model_info info;
    enum qv_version_state st = QV_STATE_UNLOADED;

    if (reason && len)
        reason[0] = '\0';
    if (qv_engine_model_info(e, model, &info) != QV_OK)
        return (enum qv_version_state)-1;
    for (int i = 0; i < info.n_versions; i++)
        if (info.versions[i].version == version) {
            st = info.versions[i].state;
            if (reason)
                snprintf(reason, len, "%s", info.versions[i].reason);
        }
    qv_model_info_free(&info);
    return st;
}

/* The SHA-256 the metadata shows for model/version ("" if none). */
static inline void fx_sha(qv_engine *e, const char *model, int64_t version, char *out)
{
    struct qv_model_info info;

    out[0] = '\0';
    if (qv_engine_model_info(e, model, &info) != QV_OK)
        return;
    for (int i = 0; i < info.n_versions; i++)
        if (info.versions[i].version == version)
            memcpy(out, info.versions[i].sha256, QV_SHA256_HEX);
    qv_model_info_free(&info);
}

#endif /* QV_TEST_ENGINE_FIXTURE_H */
