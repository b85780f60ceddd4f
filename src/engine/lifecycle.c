/* SPDX-License-Identifier: MIT
 *
 * Loading and unloading one version: backend state, signature, warm-up and
 * the memory it is charged (LOADING -> READY, or UNAVAILABLE with a reason),
 * draining (READY -> DRAINING) and unloading once the last holder has gone
 * (DRAINING -> UNLOADED), including replaced generations.
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Loading ---- */

/* Builds the signature: names and shapes from config.json when declared, the
 * backend's own description otherwise. */
/* A version's instances when its config does not say: a backend whose calls
 * share one loaded state costs nothing per instance, so it gets as many as
 * fill the cores with its intra-op threads (cores / threads, at least 1, as
 * Triton gives its re-entrant CPU backends more than one); any other
 * backend, one (each instance is a loaded copy). */
static int default_instances(const struct qv_backend *be, int threads)
{
    int n;

    if (!(qv_backend_flags(be) & QV_BACKEND_REENTRANT))
        return 1;
    n = qv_cpu_count() / (threads > 0 ? threads : 1);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

static int build_signature(qv_version *v, const struct qv_model_config *cfg, struct qv_diag *d)
{
    struct qv_signature own;
    int err = qv_backend_describe(v->be, v->states[0], &own);

    if (err && cfg->declared.n_inputs == 0)
        return qv_fail(d, QV_EINVAL, "config.json must declare inputs: backend %s cannot "
                       "describe the model", qv_backend_name(v->be));
    v->sig = err ? cfg->declared : own;
    /* A BYTES input, declared or described, needs a backend that takes one. */
    if (!(qv_backend_flags(v->be) & QV_BACKEND_BYTES)) {
        for (int i = 0; i < cfg->declared.n_inputs; i++)
            if (cfg->declared.inputs[i].dtype == QV_DTYPE_BYTES)
                return qv_fail(d, QV_EINVAL, "config.json: input \"%s\" is BYTES; backend %s "
                               "does not take BYTES inputs", cfg->declared.inputs[i].name,
                               qv_backend_name(v->be));
        for (int i = 0; !err && i < own.n_inputs; i++)
            if (own.inputs[i].dtype == QV_DTYPE_BYTES)
                return qv_fail(d, QV_EINVAL, "input \"%s\" is BYTES (string); backend %s does "
                               "not take BYTES inputs", own.inputs[i].name,
                               qv_backend_name(v->be));
    }
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
        struct stat st;
        /* Looked at first: a FIFO would block the control thread. */
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20))
            return qv_fail(d, QV_EINVAL, "warmup.json: not a regular file of at most 16 MiB");
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
void qv__unload_now(qv_engine *e, qv_version *v, const char *reason)
{
    qv__backend_states_free(v);
    atomic_fetch_sub(&e->mem_used, atomic_exchange(&v->memory, 0));
    qv_vstats_memory(v->stats, 0);
    qv__set_state(e, v, QV_STATE_UNLOADED, reason);
}

/* Loads version v of model m. Called with ctl_mu held; v is UNLOADED or
 * UNAVAILABLE. On failure v is UNAVAILABLE with the reason in d. */
int qv__load_version(qv_engine *e, struct qv_model *m, qv_version *v, bool may_evict,
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
    qv__set_state(e, v, QV_STATE_LOADING, "");
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
        char differs[256] = "";
        err = qv_sha256_file(v->artifact, sha, d);
        if (err)
            goto fail;
        if (e->hooks.check_artifact &&
            e->hooks.check_artifact(e->hooks.ud, m->name, v->number, sha, differs, sizeof(differs))) {
            err = qv_fail(d, QV_EINVAL, "%s", differs);
            goto fail;
        }
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
    if (qv__make_room(e, v, need, may_evict, why, sizeof(why))) {
        atomic_fetch_add(&e->mem_used, need);
        reserved = need;
    }
    pthread_mutex_unlock(&e->mem_mu);
    if (reserved == 0) {
        err = qv_fail(d, QV_ENOMEM, "%s", why);
        goto fail;
    }
    snprintf(vdir, sizeof(vdir), "%s/%s/%lld", e->root, m->name, (long long)v->number);
    v->instances = cfg->instances > 0 ? cfg->instances : default_instances(v->be, cfg->threads);
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
    fits = qv__make_room(e, v, need, may_evict, why, sizeof(why));
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
    qv__set_state(e, v, QV_STATE_READY, "");
    return QV_OK;
fail:
    if (reserved)
        atomic_fetch_sub(&e->mem_used, reserved);
    if (v->states)
        qv__backend_states_free(v);
    if (err == QV_ENOMEM && !may_evict) {
        /* An evicted version coming back: it waits for memory, unfailed. */
        char reason[300];
        snprintf(reason, sizeof(reason), "evicted; waiting for memory (%s)", d->msg);
        atomic_store(&v->evicted, true);
        qv__set_state(e, v, QV_STATE_UNLOADED, reason);
        return err;
    }
    v->failed = true;
    qv__set_state(e, v, QV_STATE_UNAVAILABLE, d->msg);
    return err;
}

/* Stops new requests on v; the control thread unloads it once its last user
 * has gone. Called with ctl_mu held. */
void qv__drain_version(qv_engine *e, qv_version *v, const char *why)
{
    if (qv__drain_if_ready(e, v, why))
        qv__engine_wake(e);
}

/* Unloads drained versions without users and drops records whose directory
 * is gone. Called with ctl_mu held. */
void qv__finish_drains(qv_engine *e)
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
                qv__unload_now(e, v, reason);
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
            qv__backend_states_free(v);
            atomic_fetch_sub(&e->mem_used, atomic_exchange(&v->memory, 0));
            atomic_store(&v->state, QV_STATE_UNLOADED);
            qv_log(QV_LOG_INFO, "model=%s version=%lld generation=%d msg=\"replaced generation "
                   "unloaded\"", m->name, (long long)v->number, v->gen);
            m->retired[k] = m->retired[--m->n_retired];
            k--;
            qv__version_unref(v);
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
            qv__version_unref(v);
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
