/* SPDX-License-Identifier: MIT
 *
 * Reconciling the registry with the repository: scans (models in parallel),
 * config.json changes, version policies, new generations of versions whose
 * config or artifact changed (make-before-break), and explicit load/unload
 * requests (Triton's repository extension).
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

/* ---- Reconciling with the repository ---- */

static struct qv_model *model_get_or_add(qv_engine *e, const char *name)
{
    struct qv_model *m;
    int pos = 0;

    pthread_rwlock_rdlock(&e->reg_lock);
    m = qv__find_model_locked(e, name);
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
    v = qv__find_version_locked(m, number);
    pthread_rwlock_unlock(&e->reg_lock);
    if (v)
        return v;
    if (m->n_versions >= QV_MAX_VERSIONS)
        return NULL;
    v = qv__version_new(e, m->name, number);
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
    if (change[0] || !had) {
        /* Versions that failed with the old config are worth another try. */
        for (int k = 0; k < m->n_versions; k++)
            m->versions[k]->failed = false;
    }
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
    nv = qv__version_new(e, m->name, old->number);
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
    if (qv__load_version(e, m, nv, true, &vd) != QV_OK) {
        old->refused_id = old->disk_id;
        old->refused_cfg_gen = m->cfg_gen;
        snprintf(reason, sizeof(reason), "generation %d (%s) failed to load: %s; generation %d "
                 "keeps serving", nv->gen, change, vd.msg, old->gen);
        qv__version_unref(nv);
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
                if (st == QV_STATE_UNLOADED && wanted_base(e, m, v) && qv__fits_now(e, v)) {
                    atomic_store(&v->evicted, false);
                    qv__load_version(e, m, v, false, &vd);
                }
                continue;
            }
            if (!wanted(e, m, v) || st == QV_STATE_READY || st == QV_STATE_DRAINING)
                continue;
            if (v->failed && !v->explicit_load)
                continue;
            if (qv__load_version(e, m, v, true, &vd) != QV_OK) {
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
            qv__drain_version(e, v, v->on_disk ? "unloaded by version policy or request"
                                            : "version directory removed");
        else if (!v->on_disk && (atomic_load(&v->state) == QV_STATE_UNAVAILABLE))
            atomic_store(&v->state, QV_STATE_UNLOADED);
    }
    return first_err;
}

void qv__watch_dir(qv_engine *e, const char *path)
{
    if (e->inotify_fd >= 0)
        inotify_add_watch(e->inotify_fd, path,
                          IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                              IN_DELETE_SELF | IN_ONLYDIR);
}

/* Loads evicted versions again that fit now that memory was freed (a drain
 * finished, a version was removed). Called with ctl_mu held. */
void qv__retry_evicted(qv_engine *e)
{
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        struct qv_diag d = {{0}};
        bool any = false;
        for (int k = 0; k < m->n_versions && !any; k++)
            any = atomic_load(&m->versions[k]->evicted) &&
                  atomic_load(&m->versions[k]->state) == QV_STATE_UNLOADED &&
                  qv__fits_now(e, m->versions[k]);
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
                    qv__set_state(e, m->versions[k], QV_STATE_UNAVAILABLE, m->problem);
            continue;
        }
        reconcile_model(e, m, &d);
    }
    return NULL;
}

int qv__sync_locked(qv_engine *e)
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
            pthread_rwlock_wrlock(&e->reg_lock);
            snprintf(m->problem, sizeof(m->problem), "%s", disk[i].error);
            pthread_rwlock_unlock(&e->reg_lock);
            for (int k = 0; k < m->n_versions; k++)
                m->versions[k]->on_disk = true;
            continue;
        }
        if (m->unreadable) {
            qv_log(QV_LOG_INFO, "model=%s msg=\"model directory readable again\"", m->name);
            m->cfg_stamp = -1; /* read config.json again: it decides the problem shown */
        }
        m->unreadable = false;
        qv__watch_dir(e, disk[i].dir);
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
    qv__finish_drains(e);
    qv__retry_evicted(e);
    return QV_OK;
}

int qv_engine_sync(qv_engine *e)
{
    int err;

    pthread_mutex_lock(&e->ctl_mu);
    err = qv__sync_locked(e);
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}

/* ---- Explicit control (Triton's repository extension) ---- */

/* m->explicit_unload is read by introspection under reg_lock alone. */
static void set_model_unload(qv_engine *e, struct qv_model *m, bool unload)
{
    pthread_rwlock_wrlock(&e->reg_lock);
    m->explicit_unload = unload;
    pthread_rwlock_unlock(&e->reg_lock);
}

static int find_for_control(qv_engine *e, const char *model, int64_t number, struct qv_model **mp,
                            qv_version **vp, struct qv_diag *d)
{
    pthread_rwlock_rdlock(&e->reg_lock);
    *mp = qv__find_model_locked(e, model);
    *vp = (*mp && number > 0) ? qv__find_version_locked(*mp, number) : NULL;
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
    qv__sync_locked(e);
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
    set_model_unload(e, m, false);
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
    qv__finish_drains(e);
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
        set_model_unload(e, m, true);
        for (int i = 0; i < m->n_versions; i++)
            m->versions[i]->explicit_load = false;
        reconcile_model(e, m, d);
        qv__finish_drains(e);
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
    qv__sync_locked(e);
    err = find_for_control(e, model, number, &m, &v, d);
    if (err)
        goto out;
    if (!m->cfg_ok) {
        err = qv_fail(d, QV_EINVAL, "%s", m->problem);
        goto out;
    }
    set_model_unload(e, m, false);
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
        err = qv__load_version(e, m, v, true, d);
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
        qv__drain_version(e, v, "unloaded by request");
        qv__finish_drains(e);
    }
    pthread_mutex_unlock(&e->ctl_mu);
    return err;
}
