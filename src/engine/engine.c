/* SPDX-License-Identifier: MIT
 *
 * The control side of the engine: the registry of models and versions, their
 * lifecycle (LOADING -> READY -> DRAINING -> UNLOADED, or UNAVAILABLE with a
 * reason), version policies, the memory budget, warm-up, and the control
 * thread that watches the repository (inotify, with polling as the fallback)
 * and finishes drains.
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

static qv_version *version_new(qv_engine *e, const char *model, int64_t number)
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
    v->stats = qv_monitor_version(e->mon, model, number);
    return v;
}

static void backend_states_free(qv_version *v)
{
    for (int i = 0; i < v->n_states; i++)
        qv_backend_unload(v->be, v->states[i]);
    free(v->states);
    free(v->state_busy);
    v->states = NULL;
    v->state_busy = NULL;
    v->n_states = 0;
}

static void version_unref(qv_version *v)
{
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    backend_states_free(v);
    pthread_cond_destroy(&v->batch_cond);
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
    version_unref(v);
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
static void set_state(qv_engine *e, qv_version *v, enum qv_version_state st, const char *reason)
{
    char sha[QV_SHA256_HEX];

    pthread_rwlock_wrlock(&e->reg_lock);
    atomic_store(&v->state, st);
    snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
    memcpy(sha, v->sha256, sizeof(sha));
    pthread_rwlock_unlock(&e->reg_lock);
    if (v->pending)
        return; /* a new generation: published when it replaces the serving one */
    qv_log(st == QV_STATE_UNAVAILABLE ? QV_LOG_WARN : QV_LOG_INFO,
           "model=%s version=%lld state=%s%s%s%s", v->model, (long long)v->number,
           qv_version_state_name(st), reason && *reason ? " reason=\"" : "",
           reason && *reason ? reason : "", reason && *reason ? "\"" : "");
    if (e->hooks.version_state)
        e->hooks.version_state(e->hooks.ud, v->model, v->number, sha, st, reason ? reason : "");
}

void qv__engine_wake(qv_engine *e)
{
    uint64_t one = 1;

    if (write(e->wake_fd, &one, sizeof(one)) < 0) {
        /* The counter saturating is harmless: the thread is awake anyway. */
    }
}

/* ---- Lookup (hot path) ---- */

static struct qv_model *find_model_locked(qv_engine *e, const char *name)
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

static qv_version *find_version_locked(struct qv_model *m, int64_t number)
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
    m = find_model_locked(e, model);
    if (m == NULL) {
        err = qv_fail(d, QV_ENOENT, "unknown model \"%s\"", model);
        goto out;
    }
    if (version == 0) {
        for (int i = m->n_versions - 1; i >= 0 && v == NULL; i--)
            if (atomic_load(&m->versions[i]->state) == QV_STATE_READY)
                v = m->versions[i];
        if (v == NULL) {
            err = m->problem[0] ? qv_fail(d, QV_EBUSY, "model %s has no READY version: %s",
                                          model, m->problem)
                                : qv_fail(d, QV_EBUSY, "model %s has no READY version", model);
            goto out;
        }
    } else {
        v = find_version_locked(m, version);
        if (v == NULL) {
            err = qv_fail(d, QV_ENOENT, "model %s has no version %lld", model,
                          (long long)version);
            goto out;
        }
        if (atomic_load(&v->state) != QV_STATE_READY) {
            err = qv_fail(d, QV_EBUSY, "%s/%lld is %s%s%s", model, (long long)version,
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
    m = find_model_locked(e, model);
    v = m ? find_version_locked(m, version) : NULL;
    ready = v && atomic_load(&v->state) == QV_STATE_READY;
    pthread_rwlock_unlock(&e->reg_lock);
    return ready;
}

int qv_engine_ready_versions(qv_engine *e, const char *model, int64_t *out, int max)
{
    struct qv_model *m;
    int n = 0;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = find_model_locked(e, model);
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
            if (numel < 0 || qv_dtype_size(t->dtype) == 0 || (t->data == NULL && numel > 0) ||
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
        return qv_fail(d, QV_EINVAL, "inputs[0].shape: batch of %lld rows exceeds max_batch_size %d",
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

/* ---- Loading ---- */

/* Builds the signature: names and shapes from config.json when declared, the
 * backend's own description otherwise. */
static int build_signature(qv_version *v, const struct qv_model_config *cfg, struct qv_diag *d)
{
    struct qv_signature own;
    int err = qv_backend_describe(v->be, v->states[0], &own);

    if (err && cfg->declared.n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "config.json must declare inputs: backend %s cannot "
                       "describe the model", qv_backend_name(v->be));
    v->sig = err ? cfg->declared : own;
    if (!err && cfg->declared.n_inputs > 0) {
        if (cfg->declared.n_inputs != own.n_inputs)
            return qv_fail(d, QV_EINVAL, "config.json declares %d input(s), the model has %d",
                           cfg->declared.n_inputs, own.n_inputs);
        for (int i = 0; i < own.n_inputs; i++) {
            const struct qv_tensor_desc *a = &cfg->declared.inputs[i], *b = &own.inputs[i];
            bool same = a->ndim == b->ndim;
            for (int k = 0; same && k < a->ndim; k++)
                same = a->shape[k] == b->shape[k] || a->shape[k] < 0 || b->shape[k] < 0;
            if (!same)
                return qv_fail(d, QV_EINVAL, "config.json: inputs[%d].shape does not match "
                               "the model", i);
            if (a->dtype != b->dtype)
                return qv_fail(d, QV_EINVAL, "config.json: inputs[%d].datatype is %s, the "
                               "model takes %s", i, qv_dtype_name(a->dtype),
                               qv_dtype_name(b->dtype));
            v->sig.inputs[i] = *a;
            /* -1 declared over a size the model fixes is that size: the
             * signature is never looser than the model itself. */
            for (int k = 0; k < a->ndim; k++)
                if (a->shape[k] < 0 && b->shape[k] >= 0)
                    v->sig.inputs[i].shape[k] = b->shape[k];
        }
    }
    if (!err && cfg->declared.n_outputs > 0) {
        for (int i = 0; i < cfg->declared.n_outputs && i < own.n_outputs; i++)
            snprintf(v->sig.outputs[i].name, QV_NAME_MAX, "%s", cfg->declared.outputs[i].name);
    }
    for (int i = 0; i < v->sig.n_inputs; i++)
        if (v->sig.inputs[i].ndim < 1 || v->sig.inputs[i].shape[0] >= 0)
            v->max_batch = 0; /* no dynamic batch dimension: every request runs alone */
    return QV_OK;
}

/* Runs the warm-up requests: config "warmup" or warmup.json beside the
 * artifact, each {"inputs": [KServe v2 tensors]}. */
static int warm_up(qv_version *v, const struct qv_model_config *cfg, const char *vdir,
                   struct qv_diag *d)
{
    char path[1200];
    json_t *list = NULL;
    json_error_t jerr;
    size_t i;
    json_t *req;
    int err = QV_OK;

    snprintf(path, sizeof(path), "%s/warmup.json", vdir);
    if (access(path, R_OK) == 0) {
        list = json_load_file(path, 0, &jerr);
        if (list == NULL)
            return qv_fail(d, QV_EINVAL, "warmup.json: line %d: %s", jerr.line, jerr.text);
    } else if (cfg->warmup_json) {
        list = json_loads(cfg->warmup_json, 0, NULL);
    }
    if (list == NULL)
        return QV_OK;
    if (!json_is_array(list)) {
        json_decref(list);
        return qv_fail(d, QV_EINVAL, "warmup: expected an array of requests");
    }
    json_array_foreach(list, i, req) {
        struct qv_infer_req r;
        struct qv_diag rd = {{0}};
        json_t *inputs = json_object_get(req, "inputs");
        size_t k;
        json_t *t;

        memset(&r, 0, sizeof(r));
        if (!json_is_array(inputs) || json_array_size(inputs) > QV_MAX_IO) {
            err = qv_fail(&rd, QV_EINVAL, "inputs: expected an array");
        } else {
            json_array_foreach(inputs, k, t) {
                char field[64];
                snprintf(field, sizeof(field), "inputs[%zu]", k);
                err = qv_tensor_from_json(t, field, &r.inputs[k], &rd);
                if (err)
                    break;
                r.n_inputs++;
            }
        }
        if (!err)
            err = qv_engine_prepare(v, &r, &rd);
        if (!err) {
            err = qv_engine_run_inline(v, &r);
            if (err)
                rd = r.diag;
        }
        qv_infer_req_fini(&r);
        if (err) {
            qv_fail(d, err, "warmup[%zu] failed: %s", i, rd.msg);
            break;
        }
    }
    json_decref(list);
    return err;
}

/* Frees v's loaded state and returns its memory to the budget. v is
 * DRAINING without users (no holder can appear: acquisition needs READY). */
static void unload_now(qv_engine *e, qv_version *v, const char *reason)
{
    backend_states_free(v);
    atomic_fetch_sub(&e->mem_used, atomic_exchange(&v->memory, 0));
    qv_vstats_memory(v->stats, 0);
    set_state(e, v, QV_STATE_UNLOADED, reason);
}

/* Frees room for 'need' bytes by evicting idle READY versions, least
 * recently used first. A version that could not fit even with every evictable
 * version gone is refused at once, evicting nothing. Called with mem_mu held
 * (and ctl_mu, by the control operation that loads). */
static bool make_room(qv_engine *e, qv_version *loading, uint64_t need, bool may_evict, char *why,
                      size_t len)
{
    uint64_t used = atomic_load(&e->mem_used), now = qv_now_ns(), evictable = 0;

    if (used + need <= e->budget)
        return true;
    pthread_rwlock_rdlock(&e->reg_lock);
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_versions; k++) {
            qv_version *c = m->versions[k];
            if (c != loading && atomic_load(&c->state) == QV_STATE_READY &&
                atomic_load(&c->users) == 0 &&
                now - atomic_load(&c->last_used_ns) >= e->evict_idle_ns)
                evictable += atomic_load(&c->memory);
        }
    }
    pthread_rwlock_unlock(&e->reg_lock);
    if (!may_evict || used - (evictable < used ? evictable : used) + need > e->budget) {
        snprintf(why, len, "memory budget: needs %llu bytes, %llu of %llu in use%s%llu could be "
                 "evicted", (unsigned long long)need, (unsigned long long)used,
                 (unsigned long long)e->budget, may_evict ? " and only " : "; not evicting; ",
                 (unsigned long long)evictable);
        return false;
    }
    for (;;) {
        qv_version *victim = NULL;

        used = atomic_load(&e->mem_used);
        now = qv_now_ns();
        if (used + need <= e->budget)
            return true;
        pthread_rwlock_rdlock(&e->reg_lock);
        for (int i = 0; i < e->n_models; i++) {
            struct qv_model *m = e->models[i];
            for (int k = 0; k < m->n_versions; k++) {
                qv_version *c = m->versions[k];
                uint64_t last = atomic_load(&c->last_used_ns);
                if (c == loading || atomic_load(&c->state) != QV_STATE_READY ||
                    atomic_load(&c->users) > 0 || now - last < e->evict_idle_ns)
                    continue;
                if (victim == NULL || last < atomic_load(&victim->last_used_ns))
                    victim = c;
            }
        }
        if (victim)
            atomic_fetch_add(&victim->refs, 1);
        pthread_rwlock_unlock(&e->reg_lock);
        if (victim == NULL) {
            snprintf(why, len, "memory budget: needs %llu bytes, %llu of %llu in use and no idle "
                     "version to evict", (unsigned long long)need, (unsigned long long)used,
                     (unsigned long long)e->budget);
            return false;
        }
        {
            char reason[200];
            snprintf(reason, sizeof(reason), "evicted to make room for %s/%lld",
                     loading->model, (long long)loading->number);
            atomic_store(&victim->evicted_memory, atomic_load(&victim->memory));
            atomic_store(&victim->evicted, true);
            set_state(e, victim, QV_STATE_DRAINING, reason);
            /* Idle and without users: it unloads at once. */
            if (atomic_load(&victim->users) == 0)
                unload_now(e, victim, reason);
        }
        version_unref(victim);
    }
}

/* Loads version v of model m. Called with ctl_mu held; v is UNLOADED or
 * UNAVAILABLE. On failure v is UNAVAILABLE with the reason in d. */
static int load_version(qv_engine *e, struct qv_model *m, qv_version *v, bool may_evict,
                        struct qv_diag *d)
{
    struct qv_model_config *cfg = &m->cfg;
    struct qv_backend_params p;
    char vdir[1100], why[256];
    struct stat st;
    uint64_t need, reserved = 0;
    bool fits;
    int err = QV_OK;

    memset(&p, 0, sizeof(p));
    v->failed = false;
    v->loaded_id = v->disk_id;
    v->cfg_gen = m->cfg_gen;
    if (v->gen == 0)
        v->gen = 1;
    set_state(e, v, QV_STATE_LOADING, "");
    if (!m->cfg_ok) {
        err = qv_fail(d, QV_EINVAL, "%s", m->problem);
        goto fail;
    }
    if (v->problem[0] || v->artifact[0] == '\0') {
        err = qv_fail(d, QV_ENOENT, "%s", v->problem[0] ? v->problem : "no artifact");
        goto fail;
    }
    v->be = cfg->backend[0] ? qv_backend_find(cfg->backend) : qv_backend_for_file(v->artifact);
    if (v->be == NULL) {
        err = qv_fail(d, QV_EINVAL, "no backend for %s", v->artifact);
        goto fail;
    }
    if (cfg->backend[0] && qv_backend_for_file(v->artifact) != v->be) {
        err = qv_fail(d, QV_EINVAL, "artifact %s does not fit backend %s", v->artifact,
                      cfg->backend);
        goto fail;
    }
    {
        char sha[QV_SHA256_HEX];
        err = qv_sha256_file(v->artifact, sha, d);
        if (err)
            goto fail;
        pthread_rwlock_wrlock(&e->reg_lock);
        memcpy(v->sha256, sha, sizeof(sha));
        pthread_rwlock_unlock(&e->reg_lock);
    }
    if (stat(v->artifact, &st) != 0) {
        err = qv_fail(d, QV_EIO, "cannot stat %s", v->artifact);
        goto fail;
    }
    /* Reserve an estimate now (loads may run in parallel), the real figure after. */
    need = (uint64_t)st.st_size * 2;
    pthread_mutex_lock(&e->mem_mu);
    if (make_room(e, v, need, may_evict, why, sizeof(why))) {
        atomic_fetch_add(&e->mem_used, need);
        reserved = need;
    }
    pthread_mutex_unlock(&e->mem_mu);
    if (reserved == 0) {
        err = qv_fail(d, QV_ENOMEM, "%s", why);
        goto fail;
    }
    snprintf(vdir, sizeof(vdir), "%s/%s/%lld", e->root, m->name, (long long)v->number);
    v->instances = cfg->instances > 0 ? cfg->instances : 1;
    v->queue_limit = cfg->queue_limit;
    v->max_batch = cfg->max_batch_size;
    v->delay_ns = cfg->max_queue_delay_us * 1000;
    v->n_preferred = cfg->n_preferred;
    memcpy(v->preferred, cfg->preferred_batch_sizes, sizeof(v->preferred));
    p.version_dir = vdir;
    p.threads = cfg->threads > 0 ? cfg->threads : 1;
    p.declared = &cfg->declared;
    p.params = cfg->params;
    p.n_params = cfg->n_params;
    v->n_states = (qv_backend_flags(v->be) & QV_BACKEND_REENTRANT) ? 1 : v->instances;
    v->states = qv_xcalloc((size_t)v->n_states, sizeof(void *));
    v->state_busy = qv_xcalloc((size_t)v->n_states, sizeof(bool));
    for (int i = 0; i < v->n_states; i++) {
        err = qv_backend_load(v->be, v->artifact, &p, &v->states[i], d);
        if (err)
            goto fail;
    }
    err = build_signature(v, cfg, d);
    if (err)
        goto fail;
    err = warm_up(v, cfg, vdir, d);
    if (err)
        goto fail;
    /* The estimate made before loading may be low: what counts is what the
     * loaded version holds. Evict idle versions for it, or refuse it. */
    need = (uint64_t)st.st_size + v->n_states * qv_backend_memory(v->be, v->states[0]);
    pthread_mutex_lock(&e->mem_mu);
    atomic_fetch_sub(&e->mem_used, reserved);
    reserved = 0;
    fits = make_room(e, v, need, may_evict, why, sizeof(why));
    if (fits)
        atomic_fetch_add(&e->mem_used, need);
    pthread_mutex_unlock(&e->mem_mu);
    if (!fits) {
        err = qv_fail(d, QV_ENOMEM, "%s", why);
        goto fail;
    }
    atomic_store(&v->memory, need);
    qv_vstats_memory(v->stats, need);
    v->loaded_at_ms = qv_wall_ms();
    atomic_store(&v->last_used_ns, qv_now_ns());
    set_state(e, v, QV_STATE_READY, "");
    return QV_OK;
fail:
    if (reserved)
        atomic_fetch_sub(&e->mem_used, reserved);
    if (v->states)
        backend_states_free(v);
    if (err == QV_ENOMEM && !may_evict) {
        /* An evicted version coming back: it waits for memory, unfailed. */
        char reason[300];
        snprintf(reason, sizeof(reason), "evicted; waiting for memory (%s)", d->msg);
        atomic_store(&v->evicted, true);
        set_state(e, v, QV_STATE_UNLOADED, reason);
        return err;
    }
    v->failed = true;
    set_state(e, v, QV_STATE_UNAVAILABLE, d->msg);
    return err;
}

/* Stops new requests on v; the control thread unloads it once its last user
 * has gone. Called with ctl_mu held. */
static void drain_version(qv_engine *e, qv_version *v, const char *why)
{
    if (atomic_load(&v->state) != QV_STATE_READY)
        return;
    set_state(e, v, QV_STATE_DRAINING, why);
    qv__engine_wake(e);
}

/* Unloads drained versions without users and drops records whose directory
 * is gone. Called with ctl_mu held. */
static void finish_drains(qv_engine *e)
{
    pthread_rwlock_rdlock(&e->reg_lock);
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_versions; k++) {
            qv_version *v = m->versions[k];
            if (atomic_load(&v->state) != QV_STATE_DRAINING || atomic_load(&v->users) > 0)
                continue;
            pthread_rwlock_unlock(&e->reg_lock);
            /* No user can appear: acquisition needs READY. */
            {
                char reason[256] = "";
                if (atomic_load(&v->evicted)) {
                    pthread_rwlock_rdlock(&e->reg_lock);
                    snprintf(reason, sizeof(reason), "%s", v->reason);
                    pthread_rwlock_unlock(&e->reg_lock);
                }
                unload_now(e, v, reason);
            }
            pthread_rwlock_rdlock(&e->reg_lock);
        }
    }
    pthread_rwlock_unlock(&e->reg_lock);

    /* Replaced generations, once their last holder has gone. Only the
     * control side touches the retired lists (under ctl_mu). */
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_retired; k++) {
            qv_version *v = m->retired[k];
            if (atomic_load(&v->users) > 0)
                continue;
            backend_states_free(v);
            atomic_fetch_sub(&e->mem_used, atomic_exchange(&v->memory, 0));
            atomic_store(&v->state, QV_STATE_UNLOADED);
            qv_log(QV_LOG_INFO, "model=%s version=%lld generation=%d msg=\"replaced generation "
                   "unloaded\"", m->name, (long long)v->number, v->gen);
            m->retired[k] = m->retired[--m->n_retired];
            k--;
            version_unref(v);
        }
    }

    /* Records whose directory is gone, once nothing runs on them. */
    pthread_rwlock_wrlock(&e->reg_lock);
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_versions; k++) {
            qv_version *v = m->versions[k];
            int st = atomic_load(&v->state);
            if (v->on_disk || st == QV_STATE_READY || st == QV_STATE_DRAINING ||
                st == QV_STATE_LOADING)
                continue;
            memmove(&m->versions[k], &m->versions[k + 1],
                    sizeof(m->versions[0]) * (size_t)(m->n_versions - k - 1));
            m->n_versions--;
            k--;
            /* Its series leave /metrics with it. */
            qv_monitor_forget(e->mon, m->name, v->number);
            version_unref(v);
        }
        if (!m->on_disk && m->n_versions == 0 && m->n_retired == 0) {
            qv_model_config_free(&m->cfg);
            free(m);
            memmove(&e->models[i], &e->models[i + 1],
                    sizeof(e->models[0]) * (size_t)(e->n_models - i - 1));
            e->n_models--;
            i--;
        }
    }
    pthread_rwlock_unlock(&e->reg_lock);
}

/* ---- Reconciling with the repository ---- */

static struct qv_model *model_get_or_add(qv_engine *e, const char *name)
{
    struct qv_model *m;
    int pos = 0;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = find_model_locked(e, name);
    pthread_rwlock_unlock(&e->reg_lock);
    if (m)
        return m;
    m = qv_xcalloc(1, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    qv_model_config_defaults(&m->cfg);
    m->cfg_stamp = -1;
    pthread_rwlock_wrlock(&e->reg_lock);
    e->models = qv_xrealloc(e->models, sizeof(e->models[0]) * (size_t)(e->n_models + 1));
    while (pos < e->n_models && strcmp(e->models[pos]->name, name) < 0)
        pos++;
    memmove(&e->models[pos + 1], &e->models[pos],
            sizeof(e->models[0]) * (size_t)(e->n_models - pos));
    e->models[pos] = m;
    e->n_models++;
    pthread_rwlock_unlock(&e->reg_lock);
    qv_log(QV_LOG_INFO, "model=%s msg=\"model found\"", name);
    return m;
}

static qv_version *version_get_or_add(qv_engine *e, struct qv_model *m, int64_t number)
{
    qv_version *v;
    int pos = 0;

    pthread_rwlock_rdlock(&e->reg_lock);
    v = find_version_locked(m, number);
    pthread_rwlock_unlock(&e->reg_lock);
    if (v)
        return v;
    if (m->n_versions >= QV_MAX_VERSIONS)
        return NULL;
    v = version_new(e, m->name, number);
    pthread_rwlock_wrlock(&e->reg_lock);
    while (pos < m->n_versions && m->versions[pos]->number < number)
        pos++;
    memmove(&m->versions[pos + 1], &m->versions[pos],
            sizeof(m->versions[0]) * (size_t)(m->n_versions - pos));
    m->versions[pos] = v;
    m->n_versions++;
    pthread_rwlock_unlock(&e->reg_lock);
    return v;
}

static bool str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Describes what differs between two configs in what a loaded version is
 * built from ("max_batch_size 64 -> 0, instances 1 -> 2"); "" if nothing. */
static void config_change(const struct qv_model_config *a, const struct qv_model_config *b,
                          char *out, size_t len)
{
    size_t n = 0;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (n < len)                                                                               \
            n += (size_t)snprintf(out + n, len - n, "%s", n ? ", " : "");                          \
        if (n < len)                                                                               \
            n += (size_t)snprintf(out + n, len - n, __VA_ARGS__);                                  \
    } while (0)
    out[0] = '\0';
    if (strcmp(a->backend, b->backend) != 0)
        ADD("backend \"%s\" -> \"%s\"", a->backend, b->backend);
    if (memcmp(&a->declared, &b->declared, sizeof(a->declared)) != 0)
        ADD("inputs/outputs changed");
    if (a->max_batch_size != b->max_batch_size)
        ADD("max_batch_size %d -> %d", a->max_batch_size, b->max_batch_size);
    if (a->max_queue_delay_us != b->max_queue_delay_us)
        ADD("max_queue_delay_us %llu -> %llu", (unsigned long long)a->max_queue_delay_us,
            (unsigned long long)b->max_queue_delay_us);
    if (a->n_preferred != b->n_preferred ||
        memcmp(a->preferred_batch_sizes, b->preferred_batch_sizes,
               sizeof(a->preferred_batch_sizes)) != 0)
        ADD("preferred_batch_sizes changed");
    if (a->instances != b->instances)
        ADD("instances %d -> %d", a->instances, b->instances);
    if (a->threads != b->threads)
        ADD("threads %d -> %d", a->threads, b->threads);
    if (a->queue_limit != b->queue_limit)
        ADD("queue_limit %d -> %d", a->queue_limit, b->queue_limit);
    if (!str_same(a->warmup_json, b->warmup_json))
        ADD("warmup changed");
    {
        bool same = a->n_params == b->n_params;
        for (int i = 0; same && i < a->n_params; i++)
            same = str_same(a->params[i].key, b->params[i].key) &&
                   str_same(a->params[i].value, b->params[i].value);
        if (!same)
            ADD("parameters changed");
    }
#undef ADD
}

/* Reads config.json again when it changed. A config that fails to parse
 * leaves the one in force (and every loaded version) as it was, with the
 * error shown as the model's problem. A change to what versions are built
 * from starts a new configuration generation: reconcile_model loads the
 * READY versions again with it. Called with ctl_mu held. */
static void refresh_config(qv_engine *e, struct qv_model *m, const struct qv_repo_model *dm)
{
    struct qv_model_config cfg, old;
    struct qv_diag d = {{0}};
    struct stat st;
    long long stamp = 0;
    char change[200] = "";
    bool had = m->cfg_ok;

    if (stat(dm->config_path, &st) == 0)
        stamp = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec + st.st_size +
                (long long)st.st_ino;
    if (stamp == m->cfg_stamp)
        return;
    m->cfg_stamp = stamp;
    if (qv_model_config_load(dm->config_path, &cfg, &d) != QV_OK) {
        qv_log(QV_LOG_WARN, "model=%s msg=\"config rejected%s\" reason=\"%s\"", m->name,
               had ? "; the versions loaded keep serving with the config they had" : "", d.msg);
        pthread_rwlock_wrlock(&e->reg_lock);
        snprintf(m->problem, sizeof(m->problem), "%s", d.msg);
        pthread_rwlock_unlock(&e->reg_lock);
        return;
    }
    if (had)
        config_change(&m->cfg, &cfg, change, sizeof(change));
    pthread_rwlock_wrlock(&e->reg_lock);
    old = m->cfg;
    m->cfg = cfg;
    m->cfg_ok = true;
    snprintf(m->backend, sizeof(m->backend), "%s", cfg.backend);
    m->problem[0] = '\0';
    pthread_rwlock_unlock(&e->reg_lock);
    qv_model_config_free(&old);
    if (change[0]) {
        m->cfg_gen++;
        snprintf(m->cfg_change, sizeof(m->cfg_change), "%s", change);
        qv_log(QV_LOG_INFO, "model=%s msg=\"config changed\" change=\"%s\"", m->name, change);
    }
}

/* Which versions of m should be READY: the policy over the versions on disk
 * that have not failed, unless unloaded by request. Evicted versions aside. */
static bool wanted_base(const qv_engine *e, const struct qv_model *m, const qv_version *v)
{
    struct qv_repo_model cand;

    if (!v->on_disk || !m->on_disk || m->explicit_unload || v->explicit_unload)
        return false;
    if (v->explicit_load)
        return true;
    if (e->cfg.explicit_mode)
        return false;
    memset(&cand, 0, sizeof(cand));
    for (int i = 0; i < m->n_versions; i++) {
        const qv_version *c = m->versions[i];
        if (c->on_disk && (!c->failed || c == v))
            cand.versions[cand.n_versions++].version = c->number;
    }
    return qv_repo_policy_selects(&m->cfg.policy, &cand, v->number);
}

static bool wanted(const qv_engine *e, const struct qv_model *m, const qv_version *v)
{
    return !atomic_load(&v->evicted) && wanted_base(e, m, v);
}

/* Does an evicted version fit now, without evicting anything? */
static bool fits_now(qv_engine *e, const qv_version *v)
{
    uint64_t need = atomic_load(&v->evicted_memory), used = atomic_load(&e->mem_used);

    return used <= e->budget && need <= e->budget - used;
}

/* Loads version slot i of m again as a new generation beside the serving
 * one (make-before-break): once the new one is READY it takes the slot and
 * the old one drains. If the new one fails, the old one keeps serving and
 * its reason says why. 'change' says what changed. Called with ctl_mu (or as
 * the model's reconciling thread). */
static void reload_generation(qv_engine *e, struct qv_model *m, int i, const char *change)
{
    qv_version *old = m->versions[i], *nv;
    struct qv_diag vd = {{0}};
    char reason[256], sha_old[QV_SHA256_HEX], sha_new[QV_SHA256_HEX];

    if (m->n_retired >= (int)QV_ARRAY_LEN(m->retired))
        return; /* too many generations still draining: next time */
    nv = version_new(e, m->name, old->number);
    nv->pending = true;
    nv->gen = old->gen + 1;
    nv->on_disk = old->on_disk;
    nv->explicit_load = old->explicit_load;
    nv->disk_id = old->disk_id;
    snprintf(nv->artifact, sizeof(nv->artifact), "%s", old->artifact);
    snprintf(nv->problem, sizeof(nv->problem), "%s", old->problem);
    qv_log(QV_LOG_INFO, "model=%s version=%lld generation=%d msg=\"loading a new generation\" "
           "change=\"%s\"", m->name, (long long)old->number, nv->gen, change);
    pthread_rwlock_rdlock(&e->reg_lock);
    memcpy(sha_old, old->sha256, sizeof(sha_old));
    pthread_rwlock_unlock(&e->reg_lock);
    if (load_version(e, m, nv, true, &vd) != QV_OK) {
        old->refused_id = old->disk_id;
        old->refused_cfg_gen = m->cfg_gen;
        snprintf(reason, sizeof(reason), "generation %d (%s) failed to load: %s; generation %d "
                 "keeps serving", nv->gen, change, vd.msg, old->gen);
        version_unref(nv);
        pthread_rwlock_wrlock(&e->reg_lock);
        snprintf(old->reason, sizeof(old->reason), "%s", reason);
        pthread_rwlock_unlock(&e->reg_lock);
        qv_log(QV_LOG_WARN, "model=%s version=%lld state=READY reason=\"%s\"", m->name,
               (long long)old->number, reason);
        if (e->hooks.version_state)
            e->hooks.version_state(e->hooks.ud, m->name, old->number, sha_old, QV_STATE_READY,
                                   reason);
        return;
    }
    memcpy(sha_new, nv->sha256, sizeof(sha_new));
    if (strcmp(sha_old, sha_new) != 0)
        snprintf(reason, sizeof(reason), "generation %d -> %d: %s; sha256 %.12s -> %.12s",
                 old->gen, nv->gen, change, sha_old, sha_new);
    else
        snprintf(reason, sizeof(reason), "generation %d -> %d: %s", old->gen, nv->gen, change);
    atomic_store(&nv->last_used_ns, atomic_load(&old->last_used_ns));
    pthread_rwlock_wrlock(&e->reg_lock);
    nv->pending = false;
    m->versions[i] = nv;
    if (atomic_load(&old->state) == QV_STATE_READY)
        atomic_store(&old->state, QV_STATE_DRAINING);
    snprintf(old->reason, sizeof(old->reason), "replaced by generation %d", nv->gen);
    pthread_rwlock_unlock(&e->reg_lock);
    m->retired[m->n_retired++] = old;
    qv_log(QV_LOG_INFO, "model=%s version=%lld state=READY generation=%d reason=\"%s\"",
           m->name, (long long)nv->number, nv->gen, reason);
    if (e->hooks.version_state)
        e->hooks.version_state(e->hooks.ud, m->name, nv->number, sha_new, QV_STATE_READY, reason);
    qv__engine_wake(e);
}

/* Whether READY version v must be loaded again: its config generation is
 * older than the model's, or its artifact was replaced or rewritten (same
 * identity but a new content hash). Fills 'change'. */
static bool needs_new_generation(struct qv_model *m, qv_version *v, char *change, size_t len)
{
    bool cfg = v->cfg_gen != m->cfg_gen, art = false;

    if (v->artifact[0] && v->problem[0] == '\0' &&
        !qv_file_id_equal(&v->disk_id, &v->loaded_id)) {
        char sha[QV_SHA256_HEX], cur[QV_SHA256_HEX];
        struct qv_diag d = {{0}};
        pthread_rwlock_rdlock(&v->e->reg_lock);
        memcpy(cur, v->sha256, sizeof(cur));
        pthread_rwlock_unlock(&v->e->reg_lock);
        if (qv_sha256_file(v->artifact, sha, &d) == QV_OK && strcmp(sha, cur) == 0)
            v->loaded_id = v->disk_id; /* touched or copied over with the same bytes */
        else
            art = true;
    }
    if (!cfg && !art)
        return false;
    if (qv_file_id_equal(&v->disk_id, &v->refused_id) && v->refused_cfg_gen == m->cfg_gen)
        return false; /* this very combination failed already */
    snprintf(change, len, "%s%s%s", cfg ? m->cfg_change : "", cfg && art ? "; " : "",
             art ? "artifact replaced" : "");
    return true;
}

/* Loads what m wants and drains what it no longer wants, loads first
 * (make-before-break); READY versions whose config or artifact changed load
 * again as a new generation. Returns the first load error. Called with ctl_mu
 * (or as the one thread reconciling m during a parallel sync). */
static int reconcile_model(qv_engine *e, struct qv_model *m, struct qv_diag *d)
{
    int first_err = QV_OK;

    for (int round = 0; round < 4; round++) {
        bool again = false;
        for (int i = m->n_versions - 1; i >= 0; i--) {
            qv_version *v = m->versions[i];
            int st = atomic_load(&v->state);
            struct qv_diag vd = {{0}};
            if (atomic_load(&v->evicted)) {
                /* Back once it fits without pushing another version out. */
                if (st == QV_STATE_UNLOADED && wanted_base(e, m, v) && fits_now(e, v)) {
                    atomic_store(&v->evicted, false);
                    load_version(e, m, v, false, &vd);
                }
                continue;
            }
            if (!wanted(e, m, v) || st == QV_STATE_READY || st == QV_STATE_DRAINING)
                continue;
            if (v->failed && !v->explicit_load)
                continue;
            if (load_version(e, m, v, true, &vd) != QV_OK) {
                if (first_err == QV_OK) {
                    first_err = QV_EBACKEND;
                    qv_diag_set(d, "%s/%lld: %s", m->name, (long long)v->number, vd.msg);
                }
                v->explicit_load = false;
                again = true; /* a failed version may let an older one in */
            }
        }
        if (!again)
            break;
    }
    for (int i = 0; i < m->n_versions; i++) {
        qv_version *v = m->versions[i];
        char change[256];
        if (atomic_load(&v->state) == QV_STATE_READY && wanted(e, m, v) &&
            needs_new_generation(m, v, change, sizeof(change)))
            reload_generation(e, m, i, change);
    }
    for (int i = 0; i < m->n_versions; i++) {
        qv_version *v = m->versions[i];
        if (atomic_load(&v->state) == QV_STATE_READY && !wanted(e, m, v))
            drain_version(e, v, v->on_disk ? "unloaded by version policy or request"
                                            : "version directory removed");
        else if (!v->on_disk && (atomic_load(&v->state) == QV_STATE_UNAVAILABLE))
            atomic_store(&v->state, QV_STATE_UNLOADED);
    }
    return first_err;
}

static void watch_dir(qv_engine *e, const char *path)
{
    if (e->inotify_fd >= 0)
        inotify_add_watch(e->inotify_fd, path,
                          IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                              IN_DELETE_SELF | IN_ONLYDIR);
}

/* Loads evicted versions again that fit now that memory was freed (a drain
 * finished, a version was removed). Called with ctl_mu held. */
static void retry_evicted(qv_engine *e)
{
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        struct qv_diag d = {{0}};
        bool any = false;
        for (int k = 0; k < m->n_versions && !any; k++)
            any = atomic_load(&m->versions[k]->evicted) &&
                  atomic_load(&m->versions[k]->state) == QV_STATE_UNLOADED &&
                  fits_now(e, m->versions[k]);
        if (any && m->cfg_ok)
            reconcile_model(e, m, &d);
    }
}

struct sync_job {
    qv_engine *e;
    struct qv_model **models;
    int n;
    _Atomic int next;
};

/* Reconciles models taken one at a time from the job until none is left. */
static void *sync_worker(void *arg)
{
    struct sync_job *job = arg;
    qv_engine *e = job->e;

    for (;;) {
        int i = atomic_fetch_add(&job->next, 1);
        struct qv_model *m;
        struct qv_diag d = {{0}};

        if (i >= job->n)
            break;
        m = job->models[i];
        if (!m->cfg_ok && m->on_disk) {
            /* Never had a valid config: every version shows why. */
            for (int k = 0; k < m->n_versions; k++)
                if (atomic_load(&m->versions[k]->state) != QV_STATE_UNAVAILABLE ||
                    strcmp(m->versions[k]->reason, m->problem) != 0)
                    set_state(e, m->versions[k], QV_STATE_UNAVAILABLE, m->problem);
            continue;
        }
        reconcile_model(e, m, &d);
    }
    return NULL;
}

static int sync_locked(qv_engine *e)
{
    struct qv_repo_model *disk = NULL;
    struct qv_diag d = {{0}};
    int n = 0, err;

    err = qv_repo_scan(e->root, &disk, &n, &d);
    if (err) {
        qv_log(QV_LOG_WARN, "msg=\"repository scan failed\" reason=\"%s\"", d.msg);
        return err;
    }
    pthread_rwlock_rdlock(&e->reg_lock);
    for (int i = 0; i < e->n_models; i++) {
        e->models[i]->on_disk = false;
        for (int k = 0; k < e->models[i]->n_versions; k++)
            e->models[i]->versions[k]->on_disk = false;
    }
    pthread_rwlock_unlock(&e->reg_lock);
    for (int i = 0; i < n; i++) {
        struct qv_model *m = model_get_or_add(e, disk[i].name);
        m->on_disk = true;
        if (disk[i].error[0]) {
            /* There but unreadable (a permission change, say): what it
             * serves keeps serving until the directory reads again or is
             * gone. */
            if (!m->unreadable)
                qv_log(QV_LOG_WARN, "model=%s msg=\"model directory unreadable; keeping its "
                       "versions as they are\" reason=\"%s\"", m->name, disk[i].error);
            m->unreadable = true;
            for (int k = 0; k < m->n_versions; k++)
                m->versions[k]->on_disk = true;
            continue;
        }
        if (m->unreadable)
            qv_log(QV_LOG_INFO, "model=%s msg=\"model directory readable again\"", m->name);
        m->unreadable = false;
        watch_dir(e, disk[i].dir);
        refresh_config(e, m, &disk[i]);
        for (int k = 0; k < disk[i].n_versions; k++) {
            const struct qv_repo_version *dv = &disk[i].versions[k];
            qv_version *v = version_get_or_add(e, m, dv->version);
            if (v == NULL)
                continue;
            if (strcmp(v->artifact, dv->artifact) != 0 || strcmp(v->problem, dv->problem) != 0 ||
                !qv_file_id_equal(&v->disk_id, &dv->id))
                v->failed = false; /* something changed on disk: worth another try */
            v->on_disk = true;
            v->disk_id = dv->id;
            snprintf(v->artifact, sizeof(v->artifact), "%s", dv->artifact);
            snprintf(v->problem, sizeof(v->problem), "%s", dv->problem);
        }
    }
    free(disk);
    {
        /* Models are reconciled in parallel (loading is most of a start);
         * the registry only grows under ctl_mu, which the caller holds. */
        struct sync_job job;
        int n_threads;
        pthread_t th[8];

        memset(&job, 0, sizeof(job));
        job.e = e;
        pthread_rwlock_rdlock(&e->reg_lock);
        job.n = e->n_models;
        job.models = qv_xcalloc((size_t)job.n + 1, sizeof(*job.models));
        memcpy(job.models, e->models, sizeof(*job.models) * (size_t)job.n);
        pthread_rwlock_unlock(&e->reg_lock);
        n_threads = qv_cpu_count();
        if (n_threads > (int)QV_ARRAY_LEN(th))
            n_threads = (int)QV_ARRAY_LEN(th);
        if (n_threads > job.n)
            n_threads = job.n;
        for (int i = 1; i < n_threads; i++)
            if (pthread_create(&th[i], NULL, sync_worker, &job) != 0)
                n_threads = i;
        sync_worker(&job);
        for (int i = 1; i < n_threads; i++)
            pthread_join(th[i], NULL);
        free(job.models);
    }
    finish_drains(e);
    retry_evicted(e);
    return QV_OK;
}

int qv_engine_sync(qv_engine *e)
{
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    err = sync_locked(e);
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

/* ---- Explicit control (Triton's repository extension) ---- */

static int find_for_control(qv_engine *e, const char *model, int64_t number, struct qv_model **mp,
                            qv_version **vp, struct qv_diag *d)
{
    pthread_rwlock_rdlock(&e->reg_lock);
    *mp = find_model_locked(e, model);
    *vp = (*mp && number > 0) ? find_version_locked(*mp, number) : NULL;
    pthread_rwlock_unlock(&e->reg_lock);
    if (*mp == NULL || !(*mp)->on_disk)
        return qv_fail(d, QV_ENOENT, "unknown model \"%s\" (no such directory in the repository)",
                       model);
    if (number > 0 && (*vp == NULL || !(*vp)->on_disk))
        return qv_fail(d, QV_ENOENT, "model %s has no version %lld in the repository", model,
                       (long long)number);
    return QV_OK;
}

int qv_engine_load_model(qv_engine *e, const char *model, struct qv_diag *d)
{
    struct qv_model *m;
    qv_version *v;
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    sync_locked(e);
    err = find_for_control(e, model, 0, &m, &v, d);
    if (err)
        goto out;
    m->cfg_stamp = -1; /* re-read config.json */
    {
        struct qv_repo_model dm;
        if (qv_repo_scan_model(e->root, model, &dm, NULL) == QV_OK)
            refresh_config(e, m, &dm);
    }
    if (m->problem[0]) {
        err = qv_fail(d, QV_EINVAL, "%s", m->problem);
        goto out;
    }
    m->explicit_unload = false;
    for (int i = 0; i < m->n_versions; i++) {
        m->versions[i]->explicit_unload = false;
        atomic_store(&m->versions[i]->evicted, false);
        m->versions[i]->failed = false;
        if (e->cfg.explicit_mode && m->versions[i]->on_disk) {
            struct qv_repo_model cand;
            memset(&cand, 0, sizeof(cand));
            for (int k = 0; k < m->n_versions; k++)
                if (m->versions[k]->on_disk)
                    cand.versions[cand.n_versions++].version = m->versions[k]->number;
            m->versions[i]->explicit_load =
                qv_repo_policy_selects(&m->cfg.policy, &cand, m->versions[i]->number);
        }
    }
    err = reconcile_model(e, m, d);
    finish_drains(e);
out:
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

int qv_engine_unload_model(qv_engine *e, const char *model, struct qv_diag *d)
{
    struct qv_model *m;
    qv_version *v;
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    err = find_for_control(e, model, 0, &m, &v, d);
    if (!err) {
        m->explicit_unload = true;
        for (int i = 0; i < m->n_versions; i++)
            m->versions[i]->explicit_load = false;
        reconcile_model(e, m, d);
        finish_drains(e);
    }
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

int qv_engine_load_version(qv_engine *e, const char *model, int64_t number, struct qv_diag *d)
{
    struct qv_model *m;
    qv_version *v;
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    sync_locked(e);
    err = find_for_control(e, model, number, &m, &v, d);
    if (err)
        goto out;
    if (!m->cfg_ok) {
        err = qv_fail(d, QV_EINVAL, "%s", m->problem);
        goto out;
    }
    m->explicit_unload = false;
    v->explicit_unload = false;
    atomic_store(&v->evicted, false);
    v->explicit_load = true;
    v->failed = false;
    if (atomic_load(&v->state) == QV_STATE_DRAINING) {
        err = qv_fail(d, QV_EBUSY, "%s/%lld is still draining; retry shortly", model,
                      (long long)number);
        goto out;
    }
    if (atomic_load(&v->state) != QV_STATE_READY)
        err = load_version(e, m, v, true, d);
out:
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

int qv_engine_unload_version(qv_engine *e, const char *model, int64_t number, struct qv_diag *d)
{
    struct qv_model *m;
    qv_version *v;
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    err = find_for_control(e, model, number, &m, &v, d);
    if (!err) {
        v->explicit_unload = true;
        v->explicit_load = false;
        drain_version(e, v, "unloaded by request");
        finish_drains(e);
    }
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

/* ---- Introspection ---- */

int qv_engine_model_info(qv_engine *e, const char *model, struct qv_model_info *info)
{
    struct qv_model *m;
    int best = -1;

    memset(info, 0, sizeof(*info));
    pthread_rwlock_rdlock(&e->reg_lock);
    m = find_model_locked(e, model);
    if (m == NULL) {
        pthread_rwlock_unlock(&e->reg_lock);
        return QV_ENOENT;
    }
    snprintf(info->name, sizeof(info->name), "%s", m->name);
    snprintf(info->backend, sizeof(info->backend), "%s", m->backend);
    snprintf(info->problem, sizeof(info->problem), "%s", m->problem);
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
            sync_locked(e);
            next_scan = qv_now_ns() + (uint64_t)poll_ms * 1000000ull;
        } else {
            finish_drains(e);
            retry_evicted(e);
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
    watch_dir(e, e->root);
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
            version_unref(m->versions[k]);
        for (int k = 0; k < m->n_retired; k++) {
            atomic_fetch_sub(&e->mem_used, atomic_exchange(&m->retired[k]->memory, 0));
            version_unref(m->retired[k]);
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
