/* SPDX-License-Identifier: MIT
 *
 * The engine's registry of models and versions: version records and their
 * refcounts, states and the hook that reports them, lookup and acquisition on
 * the hot path, request checks, introspection, and the engine's own life
 * (create, start, the control thread that watches the repository, destroy).
 * Loading and unloading are in lifecycle.c, the memory budget in memory.c,
 * reconciling with the repository in reconcile.c, the queues in worker.c and
 * batching in batcher.c. Locks and what each guards: engine_int.h.
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_POLL_MS 2000

static const char *const state_names[] = {"LOADING", "READY", "DRAINING", "UNLOADED",
                                          "UNAVAILABLE"};

const char *qv_version_state_name(enum qv_version_state st)
{
    return (unsigned)st < QV_ARRAY_LEN(state_names) ? state_names[st] : "UNKNOWN";
}

/* ---- Version records ---- */

qv_version *qv__version_new(qv_engine *e, const char *model, int64_t number)
{
    qv_version *v = qv_xcalloc(1, sizeof(*v));

    atomic_init(&v->refs, 1);
    atomic_init(&v->users, 0);
    atomic_init(&v->requests, 0);
    atomic_init(&v->state, QV_STATE_UNLOADED);
    v->e = e;
    snprintf(v->model, sizeof(v->model), "%s", model);
    v->number = number;
    pthread_cond_init(&v->batch_cond, NULL);
    pthread_mutex_init(&v->inline_mu, NULL);
    v->mon = e->mon;
    v->stats = qv_monitor_hold(e->mon, model, number);
    return v;
}

void qv__backend_states_free(qv_version *v)
{
    for (int i = 0; i < v->n_states; i++)
        qv_backend_unload(v->be, v->states[i]);
    free(v->states);
    free(v->state_busy);
    v->states = NULL;
    v->state_busy = NULL;
    v->n_states = 0;
}

void qv__version_unref(qv_version *v)
{
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    qv__backend_states_free(v);
    qv_monitor_release(v->mon, v->stats);
    pthread_cond_destroy(&v->batch_cond);
    pthread_mutex_destroy(&v->inline_mu);
    free(v);
}

void qv__version_get(qv_version *v)
{
    atomic_fetch_add(&v->refs, 1);
    atomic_fetch_add(&v->users, 1);
}

void qv__version_put(qv_version *v)
{
    if (atomic_fetch_sub_explicit(&v->users, 1, memory_order_acq_rel) == 1 &&
        atomic_load(&v->state) == QV_STATE_DRAINING)
        qv__engine_wake(v->e);
    qv__version_unref(v);
}

qv_version *qv_version_hold(qv_version *v)
{
    atomic_fetch_add(&v->refs, 1);
    atomic_fetch_add(&v->users, 1);
    atomic_fetch_add(&v->requests, 1);
    qv_vstats_inflight(v->stats, 1);
    return v;
}

void qv_version_release(qv_version *v)
{
    if (v == NULL)
        return;
    atomic_fetch_sub(&v->requests, 1);
    qv_vstats_inflight(v->stats, -1);
    qv__version_put(v);
}

const char *qv_version_model(const qv_version *v)
{
    return v->model;
}

int64_t qv_version_number(const qv_version *v)
{
    return v->number;
}

const struct qv_signature *qv_version_signature(const qv_version *v)
{
    return &v->sig;
}

qv_vstats *qv_version_stats(const qv_version *v)
{
    return v->stats;
}

/* Sets a version's state and reason, then tells the hook (outside locks). */
/* Sets the state (and reason) if it is 'from' now (any state when from is
 * -1), then logs and calls the hook outside every lock. */
static bool set_state_from(qv_engine *e, qv_version *v, int from, enum qv_version_state st,
                           const char *reason)
{
    char sha[QV_SHA256_HEX];
    bool pending;

    pthread_rwlock_wrlock(&e->reg_lock);
    if (from >= 0 && atomic_load(&v->state) != from) {
        pthread_rwlock_unlock(&e->reg_lock);
        return false;
    }
    atomic_store(&v->state, st);
    snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
    memcpy(sha, v->sha256, sizeof(sha));
    pending = v->pending;
    pthread_rwlock_unlock(&e->reg_lock);
    if (pending)
        return true; /* a new generation: published when it replaces the serving one */
    qv_log(st == QV_STATE_UNAVAILABLE ? QV_LOG_WARN : QV_LOG_INFO,
           "model=%s version=%lld state=%s%s%s%s", v->model, (long long)v->number,
           qv_version_state_name(st), reason && *reason ? " reason=\"" : "",
           reason && *reason ? reason : "", reason && *reason ? "\"" : "");
    if (e->hooks.version_state)
        e->hooks.version_state(e->hooks.ud, v->model, v->number, sha, st, reason ? reason : "");
    return true;
}

void qv__set_state(qv_engine *e, qv_version *v, enum qv_version_state st, const char *reason)
{
    set_state_from(e, v, -1, st, reason);
}

bool qv__drain_if_ready(qv_engine *e, qv_version *v, const char *reason)
{
    return set_state_from(e, v, QV_STATE_READY, QV_STATE_DRAINING, reason);
}

void qv__engine_wake(qv_engine *e)
{
    uint64_t one = 1;

    if (write(e->wake_fd, &one, sizeof(one)) < 0) {
        /* The counter saturating is harmless: the thread is awake anyway. */
    }
}

/* ---- Lookup (hot path) ---- */

struct qv_model *qv__find_model_locked(qv_engine *e, const char *name)
{
    int lo = 0, hi = e->n_models - 1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(e->models[mid]->name, name);
        if (c == 0)
            return e->models[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

qv_version *qv__find_version_locked(struct qv_model *m, int64_t number)
{
    for (int i = 0; i < m->n_versions; i++)
        if (m->versions[i]->number == number)
            return m->versions[i];
    return NULL;
}

int qv_engine_acquire(qv_engine *e, const char *model, int64_t version, qv_version **out,
                      struct qv_diag *d)
{
    struct qv_model *m;
    qv_version *v = NULL;
    int err = QV_OK;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = qv__find_model_locked(e, model);
    if (m == NULL) {
        err = qv_fail(d, QV_ENOENT, "unknown model \"%s\"", model);
        goto out;
    }
    if (version == 0) {
        for (int i = m->n_versions - 1; i >= 0 && v == NULL; i--)
            if (atomic_load(&m->versions[i]->state) == QV_STATE_READY)
                v = m->versions[i];
        if (v == NULL) {
            /* Only a version on its way (LOADING, DRAINING) is worth a retry;
             * UNAVAILABLE ones wait for a change to the repository. */
            int busy = QV_EUNAVAIL;
            for (int i = 0; i < m->n_versions; i++)
                if (atomic_load(&m->versions[i]->state) != QV_STATE_UNAVAILABLE)
                    busy = QV_EBUSY;
            err = m->problem[0] ? qv_fail(d, busy, "model %s has no READY version: %s", model,
                                          m->problem)
                                : qv_fail(d, busy, "model %s has no READY version", model);
            goto out;
        }
    } else {
        v = qv__find_version_locked(m, version);
        if (v == NULL) {
            err = qv_fail(d, QV_ENOENT, "model %s has no version %lld", model,
                          (long long)version);
            goto out;
        }
        if (atomic_load(&v->state) != QV_STATE_READY) {
            int state = atomic_load(&v->state);
            err = qv_fail(d, state == QV_STATE_UNAVAILABLE ? QV_EUNAVAIL : QV_EBUSY,
                          "%s/%lld is %s%s%s", model, (long long)version,
                          qv_version_state_name(atomic_load(&v->state)),
                          v->reason[0] ? ": " : "", v->reason);
            v = NULL;
            goto out;
        }
    }
    *out = qv_version_hold(v);
out:
    pthread_rwlock_unlock(&e->reg_lock);
    return err;
}

bool qv_engine_is_ready(qv_engine *e, const char *model, int64_t version)
{
    struct qv_model *m;
    qv_version *v;
    bool ready = false;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = qv__find_model_locked(e, model);
    v = m ? qv__find_version_locked(m, version) : NULL;
    ready = v && atomic_load(&v->state) == QV_STATE_READY;
    pthread_rwlock_unlock(&e->reg_lock);
    return ready;
}

int qv_engine_ready_versions(qv_engine *e, const char *model, int64_t *out, int max)
{
    struct qv_model *m;
    int n = 0;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = qv__find_model_locked(e, model);
    for (int i = 0; m && i < m->n_versions && n < max; i++)
        if (atomic_load(&m->versions[i]->state) == QV_STATE_READY)
            out[n++] = m->versions[i]->number;
    pthread_rwlock_unlock(&e->reg_lock);
    return n;
}

int qv_engine_prepare(const qv_version *v, struct qv_infer_req *r, struct qv_diag *d)
{
    struct qv_tensor ordered[QV_MAX_IO];
    bool used[QV_MAX_IO] = {false};
    const struct qv_signature *sig = &v->sig;
    int64_t rows = -1;

    if (r->n_inputs < 0 || r->n_inputs > QV_MAX_IO)
        return qv_fail(d, QV_EINVAL, "inputs: at most %d inputs", QV_MAX_IO);
    /* Each request tensor is named once and matches at most one input: two
     * inputs sharing one tensor would be freed twice. */
    for (int i = 0; i < r->n_inputs; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(r->inputs[i].name, r->inputs[k].name) == 0)
                return qv_fail(d, QV_EINVAL, "inputs[%d].name: input \"%s\" is given twice", i,
                               r->inputs[i].name);
    if (r->n_inputs > sig->n_inputs ||
        sig->n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "inputs: %s/%lld takes %d input(s), got %d", v->model,
                       (long long)v->number, sig->n_inputs, r->n_inputs);
    for (int j = 0; j < sig->n_inputs; j++) {
        const struct qv_tensor_desc *want = &sig->inputs[j];
        int found = -1;

        for (int i = 0; i < r->n_inputs && found < 0; i++)
            if (!used[i] && strcmp(r->inputs[i].name, want->name) == 0)
                found = i;
        if (found < 0 && sig->n_inputs == 1 && r->n_inputs == 1)
            return qv_fail(d, QV_EINVAL, "inputs[0].name: %s/%lld has no input \"%s\" (its input "
                           "is \"%s\")", v->model, (long long)v->number, r->inputs[0].name,
                           want->name);
        if (found < 0)
            return qv_fail(d, QV_EINVAL, "inputs: missing input \"%s\"", want->name);
        used[found] = true;
        {
            const struct qv_tensor *t = &r->inputs[found];
            char got[96], exp[96];
            int64_t numel;

            if (t->dtype != want->dtype)
                return qv_fail(d, QV_EINVAL, "inputs[%d].datatype: input \"%s\" expects %s, got %s",
                               found, want->name, qv_dtype_name(want->dtype),
                               qv_dtype_name(t->dtype));
            if (!qv_tensor_matches(t, (const struct qv_tensor_desc *)want)) {
                qv_shape_format(t->shape, t->ndim, got, sizeof(got));
                qv_shape_format(want->shape, want->ndim, exp, sizeof(exp));
                return qv_fail(d, QV_EINVAL, "inputs[%d].shape: input \"%s\" expects %s, got %s",
                               found, want->name, exp, got);
            }
            if (t->ndim < 1 || t->shape[0] < 1)
                return qv_fail(d, QV_EINVAL, "inputs[%d].shape: needs at least one row", found);
            /* The data is exactly what the shape says: batching copies by
             * byte counts, so a mismatch would read or write past a buffer. */
            numel = qv_shape_numel(t->shape, t->ndim);
            if (t->dtype == QV_DTYPE_BYTES) {
                /* Serialized elements: every length prefix lies within nbytes. */
                char what[QV_NAME_MAX + 32];
                snprintf(what, sizeof(what), "inputs[%d] (\"%s\")", found, want->name);
                int e = t->data == NULL && t->nbytes > 0
                            ? qv_fail(d, QV_EINVAL, "%s: no data", what)
                            : qv_bytes_check(t->data, t->nbytes, numel, what, d);
                if (e)
                    return e;
            } else if (numel < 0 || qv_dtype_size(t->dtype) == 0 || (t->data == NULL && numel > 0) ||
                (uint64_t)numel > SIZE_MAX / qv_dtype_size(t->dtype) ||
                t->nbytes != (size_t)numel * qv_dtype_size(t->dtype))
                return qv_fail(d, QV_EINVAL, "inputs[%d]: input \"%s\" holds %zu bytes, its "
                               "shape and datatype need another size", found, want->name,
                               t->nbytes);
            if (rows >= 0 && t->shape[0] != rows)
                return qv_fail(d, QV_EINVAL, "inputs[%d].shape: %lld rows, other inputs have %lld",
                               found, (long long)t->shape[0], (long long)rows);
            rows = t->shape[0];
            ordered[j] = *t;
        }
    }
    if (v->max_batch > 0 && rows > v->max_batch)
        return qv_fail(d, QV_EINVAL,
                       "inputs[0].shape: batch of %lld rows exceeds max_batch_size %d",
                       (long long)rows, v->max_batch);
    memcpy(r->inputs, ordered, sizeof(ordered[0]) * (size_t)sig->n_inputs);
    r->n_inputs = sig->n_inputs;
    r->rows = rows;
    return QV_OK;
}

int qv_engine_run_inline(qv_version *v, struct qv_infer_req *r)
{
    struct qv_infer_req *one = r;
    int err;

    r->t_submit = qv_now_ns();
    err = qv__engine_infer_batch(v, v->states[0], &one, 1);
    r->t_done = qv_now_ns();
    return err;
}

/* ---- Introspection ---- */

int qv_engine_model_info(qv_engine *e, const char *model, struct qv_model_info *info)
{
    struct qv_model *m;
    int best = -1;

    memset(info, 0, sizeof(*info));
    pthread_rwlock_rdlock(&e->reg_lock);
    m = qv__find_model_locked(e, model);
    if (m == NULL) {
        pthread_rwlock_unlock(&e->reg_lock);
        return QV_ENOENT;
    }
    snprintf(info->name, sizeof(info->name), "%s", m->name);
    snprintf(info->backend, sizeof(info->backend), "%s", m->backend);
    snprintf(info->problem, sizeof(info->problem), "%s", m->problem);
    info->unloaded_by_request = m->explicit_unload;
    info->sig = m->cfg.declared;
    info->max_batch_size = m->cfg.max_batch_size;
    info->latency_slo_ms = m->cfg.latency_slo_ms;
    info->alerts_json = m->cfg.alerts_json ? qv_xstrdup(m->cfg.alerts_json) : NULL;
    info->versions = qv_xcalloc((size_t)(m->n_versions + 1), sizeof(*info->versions));
    for (int i = 0; i < m->n_versions; i++) {
        qv_version *v = m->versions[i];
        struct qv_version_info *vi = &info->versions[info->n_versions++];
        vi->version = v->number;
        vi->state = (enum qv_version_state)atomic_load(&v->state);
        snprintf(vi->reason, sizeof(vi->reason), "%s", v->reason);
        memcpy(vi->sha256, v->sha256, sizeof(vi->sha256));
        vi->loaded_at_ms = atomic_load(&v->loaded_at_ms);
        vi->memory_bytes = atomic_load(&v->memory);
        vi->inflight = atomic_load(&v->requests);
        if (vi->state == QV_STATE_READY)
            best = i;
    }
    if (best >= 0) {
        /* What serves, not what config.json says now: a change in it takes
         * effect with the generation that loads it. */
        info->sig = m->versions[best]->sig;
        info->max_batch_size = m->versions[best]->max_batch;
        if (info->backend[0] == '\0' && m->versions[best]->be)
            snprintf(info->backend, sizeof(info->backend), "%s",
                     qv_backend_name(m->versions[best]->be));
    }
    /* Lock order: reg_lock, then qlock. */
    pthread_mutex_lock(&e->qlock);
    for (int i = 0; i < m->n_versions && i < info->n_versions; i++)
        info->versions[i].queue_depth = m->versions[i]->qlen;
    pthread_mutex_unlock(&e->qlock);
    pthread_rwlock_unlock(&e->reg_lock);
    return QV_OK;
}

void qv_model_info_free(struct qv_model_info *info)
{
    free(info->versions);
    free(info->alerts_json);
    info->versions = NULL;
    info->alerts_json = NULL;
}

int qv_engine_model_names(qv_engine *e, char (**names)[QV_MODEL_NAME_MAX], int *n)
{
    pthread_rwlock_rdlock(&e->reg_lock);
    *names = qv_xcalloc((size_t)e->n_models + 1, QV_MODEL_NAME_MAX);
    for (int i = 0; i < e->n_models; i++)
        snprintf((*names)[i], QV_MODEL_NAME_MAX, "%s", e->models[i]->name);
    *n = e->n_models;
    pthread_rwlock_unlock(&e->reg_lock);
    return QV_OK;
}

uint64_t qv_engine_memory_used(qv_engine *e)
{
    return atomic_load(&e->mem_used);
}

uint64_t qv_engine_memory_budget(qv_engine *e)
{
    return e->budget;
}

bool qv_engine_is_ready_all(qv_engine *e)
{
    bool ok = true;

    pthread_rwlock_rdlock(&e->reg_lock);
    for (int i = 0; i < e->n_models && ok; i++)
        for (int k = 0; k < e->models[i]->n_versions && ok; k++)
            ok = atomic_load(&e->models[i]->versions[k]->state) != QV_STATE_LOADING;
    pthread_rwlock_unlock(&e->reg_lock);
    return ok;
}

/* ---- Lifecycle ---- */

static void *control_main(void *arg)
{
    qv_engine *e = arg;
    int poll_ms = e->cfg.poll_ms > 0 ? e->cfg.poll_ms : DEFAULT_POLL_MS;
    uint64_t next_scan = qv_now_ns() + (uint64_t)poll_ms * 1000000ull;

    while (!atomic_load(&e->ctl_stop)) {
        struct pollfd fds[2] = {{e->wake_fd, POLLIN, 0}, {e->inotify_fd, POLLIN, 0}};
        uint64_t now = qv_now_ns();
        int timeout = now >= next_scan ? 0 : (int)((next_scan - now) / 1000000ull) + 1;
        bool changed = false;
        char buf[4096];

        if (poll(fds, e->inotify_fd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR)
            break;
        if (atomic_load(&e->ctl_stop))
            break;
        if (fds[0].revents & POLLIN) {
            uint64_t n;
            if (read(e->wake_fd, &n, sizeof(n)) < 0) {
                /* Spurious wake-ups are harmless. */
            }
        }
        if (e->inotify_fd >= 0 && (fds[1].revents & POLLIN)) {
            while (read(e->inotify_fd, buf, sizeof(buf)) > 0) {
            }
            changed = true;
            /* Let a burst of changes (a copy in progress) settle. */
            usleep(50000);
            while (read(e->inotify_fd, buf, sizeof(buf)) > 0) {
            }
        }
        pthread_mutex_lock(&e->ctl_mu);
        if (changed || qv_now_ns() >= next_scan) {
            qv__sync_locked(e);
            next_scan = qv_now_ns() + (uint64_t)poll_ms * 1000000ull;
        } else {
            qv__finish_drains(e);
            qv__retry_evicted(e);
        }
        pthread_mutex_unlock(&e->ctl_mu);
    }
    return NULL;
}

int qv_engine_create(const struct qv_engine_config *cfg, const struct qv_engine_hooks *hooks,
                     qv_monitor *mon, qv_engine **out, struct qv_diag *d)
{
    qv_engine *e;
    struct stat st;

    if (cfg->repo_root == NULL || stat(cfg->repo_root, &st) != 0 || !S_ISDIR(st.st_mode))
        return qv_fail(d, QV_EINVAL, "--repo: %s is not a directory",
                       cfg->repo_root ? cfg->repo_root : "(none)");
    e = qv_xcalloc(1, sizeof(*e));
    e->cfg = *cfg;
    snprintf(e->root, sizeof(e->root), "%s", cfg->repo_root);
    e->cfg.repo_root = e->root;
    if (hooks)
        e->hooks = *hooks;
    e->mon = mon;
    e->budget = cfg->memory_budget ? cfg->memory_budget : qv_mem_total_bytes() / 2;
    e->n_workers = cfg->workers > 0 ? cfg->workers : qv_cpu_count();
    e->evict_idle_ns = (uint64_t)(cfg->evict_idle_ms > 0 ? cfg->evict_idle_ms : 10000) * 1000000ull;
    e->spin_ns = cfg->spin_us < 0 ? 0 : (uint64_t)(cfg->spin_us ? cfg->spin_us : 50) * 1000;
    e->inline_ns = cfg->inline_us < 0 ? 0 : (uint64_t)(cfg->inline_us ? cfg->inline_us : 100) * 1000;
    e->bg_limit = cfg->bg_limit > 0 ? cfg->bg_limit : 16;
    pthread_rwlock_init(&e->reg_lock, NULL);
    pthread_mutex_init(&e->ctl_mu, NULL);
    pthread_mutex_init(&e->mem_mu, NULL);
    pthread_mutex_init(&e->qlock, NULL);
    pthread_cond_init(&e->work_cond, NULL);
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->inotify_fd = cfg->watch ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
    if (e->wake_fd < 0) {
        free(e);
        return qv_fail(d, QV_EIO, "eventfd: %s", strerror(errno));
    }
    qv__watch_dir(e, e->root);
    *out = e;
    return QV_OK;
}

int qv_engine_start(qv_engine *e, struct qv_diag *d)
{
    int err = qv__engine_workers_start(e);

    if (err)
        return qv_fail(d, err, "cannot start %d worker threads", e->n_workers);
    qv_engine_sync(e);
    if (pthread_create(&e->ctl_thread, NULL, control_main, e) != 0)
        return qv_fail(d, QV_ENOMEM, "cannot start the control thread");
    e->ctl_started = true;
    return QV_OK;
}

void qv_engine_destroy(qv_engine *e)
{
    if (e == NULL)
        return;
    if (e->ctl_started) {
        atomic_store(&e->ctl_stop, true);
        qv__engine_wake(e);
        pthread_join(e->ctl_thread, NULL);
    }
    qv__engine_workers_stop(e);
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_versions; k++)
            qv__version_unref(m->versions[k]);
        for (int k = 0; k < m->n_retired; k++) {
            atomic_fetch_sub(&e->mem_used, atomic_exchange(&m->retired[k]->memory, 0));
            qv__version_unref(m->retired[k]);
        }
        qv_model_config_free(&m->cfg);
        free(m);
    }
    free(e->models);
    if (e->inotify_fd >= 0)
        close(e->inotify_fd);
    close(e->wake_fd);
    pthread_cond_destroy(&e->work_cond);
    pthread_mutex_destroy(&e->qlock);
    pthread_mutex_destroy(&e->ctl_mu);
    pthread_mutex_destroy(&e->mem_mu);
    pthread_rwlock_destroy(&e->reg_lock);
    free(e);
}
