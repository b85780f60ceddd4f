/* SPDX-License-Identifier: MIT
 *
 * engine/engine_int.h -- private to src/engine/: the version, model and
 * engine records, and the functions the engine's files share:
 *
 *   engine.c     registry: version records, states, lookup, introspection,
 *                create/start/destroy and the control thread
 *   lifecycle.c  loading, draining and unloading one version
 *   memory.c     the memory budget and eviction
 *   reconcile.c  scans, config changes, policies, generations, explicit control
 *   batcher.c    which requests share a backend call, and the call
 *   worker.c     queues, the runnable list, workers, the background lane
 *
 * Locks, outermost first (a thread holding one may take only those after it):
 *
 *   ctl_mu    one control operation at a time (sync, load, unload, drains).
 *             A sync reconciles models in parallel threads that it starts
 *             and joins while it holds ctl_mu: each model is then owned by
 *             the one thread reconciling it, which may write what ctl_mu
 *             guards for that model and its versions.
 *   mem_mu    the budget's check-and-reserve and evictions (memory.c).
 *   reg_lock  (rwlock) the registry: the models array, each model's version
 *             slots, states, reasons, hashes, cfg and backend. Hot path: read.
 *   qlock     every version's queue, the runnable list, the background lane.
 *
 * No backend call and no hook runs under reg_lock or qlock. Fields without a
 * lock are atomics, or immutable while the version is READY or DRAINING (set
 * by the load before READY is published under reg_lock).
 */
#ifndef QV_ENGINE_INT_H
#define QV_ENGINE_INT_H

#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>

struct qv_version {
    _Atomic int refs;           /* object lifetime: registry + holders */
    _Atomic int users;          /* holders of the loaded backend state */
    _Atomic int requests;       /* of which requests (qv_version_hold .. release) */
    _Atomic int state;          /* enum qv_version_state; written under reg_lock */
    qv_engine *e;
    char model[QV_MODEL_NAME_MAX];
    int64_t number;
    char reason[256];           /* Guarded by reg_lock. */
    char sha256[QV_SHA256_HEX]; /* Guarded by reg_lock. */
    char artifact[1024];        /* Guarded by ctl_mu. */
    char problem[256];          /* from the scan: why it cannot load. Guarded by ctl_mu. */

    /* Immutable while READY/DRAINING (set by the load, before READY). */
    const struct qv_backend *be;
    int n_states;               /* 1 for re-entrant backends, else instances */
    void **states;
    struct qv_signature sig;
    int max_batch;              /* 0: no batching */
    uint64_t delay_ns;
    int n_preferred;
    int preferred[QV_MAX_PREFERRED];
    int instances, queue_limit;
    _Atomic uint64_t memory;        /* written by the control side, read by info */
    _Atomic uint64_t loaded_at_ms;
    qv_vstats *stats;
    qv_monitor *mon; /* holds stats (qv_monitor_hold); released with the version */
    _Atomic uint64_t last_used_ns;
    _Atomic uint64_t batches;   /* backend calls, for sampling their CPU time */
    _Atomic uint64_t cpu_sampled_call; /* batches at the last CPU-time sample */
    _Atomic uint64_t cpu_sampled_ns;   /* when that sample was taken */

    /* Inline execution (worker.c): whether v's recent compute p99 is under
     * the engine's threshold, re-decided at most every QV_INLINE_CHECK_NS
     * from the compute histogram's growth since the last decision. */
    _Atomic bool inline_ok;
    _Atomic uint64_t inline_checked_ns;
    _Atomic bool inline_decided;    /* a decision was made (not only the baseline) */
    _Atomic uint32_t inline_probe;  /* calls seen before the first decision */
    pthread_mutex_t inline_mu;  /* one thread re-decides at a time; guards inline_prev */
    struct qv_lat_hist inline_prev;

    /* Queue. Guarded by e->qlock. */
    struct qv_infer_req *head, *tail;
    int qlen;
    _Atomic int queued;         /* qlen, readable without the lock (a hint) */
    _Atomic int active;         /* backend calls running (instances in use): taken with
                                 * instance_take(), by workers under e->qlock and by the
                                 * lock-free inline path without it */
    bool listed;                /* on the runnable list */
    bool batch_waiting;         /* a worker waits on batch_cond for more rows */
    bool *state_busy;
    pthread_cond_t batch_cond;
    qv_version *run_next;

    /* Control flags. Guarded by ctl_mu; while a sync reconciles models in
     * parallel, by the one thread that reconciles this version's model. */
    bool on_disk;
    /* These three are also read without ctl_mu, under reg_lock alone, by
     * qv_engine_model_info (readiness): atomic, written under ctl_mu. */
    _Atomic bool explicit_load, explicit_unload;
    _Atomic bool failed;        /* the last load failed; retried only on request */
    bool pending;               /* a new generation loading beside the serving one */
    int gen;                    /* generation: 1, then one more per reload in place */
    int cfg_gen;                /* the model's cfg_gen this generation was loaded with */
    struct qv_file_id disk_id;  /* the artifact as the last scan saw it */
    struct qv_file_id loaded_id; /* the artifact this generation was loaded from */
    struct qv_file_id refused_id; /* a new generation from this artifact failed ... */
    int refused_cfg_gen;        /* ... with this config: not retried until either changes */
    /* Evicted for memory; it loads again once it fits without evicting.
     * Written under mem_mu (make_room) or ctl_mu; read anywhere. */
    _Atomic bool evicted;
    _Atomic uint64_t evicted_memory; /* what it held when evicted */
};

struct qv_model {
    char name[QV_MODEL_NAME_MAX];
    /* Written under ctl_mu and reg_lock (write); read under either. */
    char backend[32];
    struct qv_model_config cfg;  /* copied into versions at load */
    bool cfg_ok;
    char problem[256];           /* Guarded by reg_lock. */
    /* Guarded by ctl_mu (during a parallel sync: the model's thread). */
    long long cfg_stamp;         /* mtime+size+inode of config.json when parsed */
    int cfg_gen;                 /* one more per accepted change that versions load with */
    char cfg_change[200];        /* that change, "max_batch_size 64 -> 0" */
    bool on_disk;
    bool unreadable;             /* the last scan could not read the directory */
    /* Written under ctl_mu and reg_lock (write): the control side reads
     * them under ctl_mu alone, everyone else under reg_lock. */
    bool explicit_unload;        /* unloaded by request (introspection shows it) */
    int n_versions;              /* Ascending by number. */
    qv_version *versions[QV_MAX_VERSIONS];
    /* Generations replaced by a newer one, draining. Guarded by ctl_mu. */
    int n_retired;
    qv_version *retired[QV_MAX_VERSIONS];
};

struct qv_engine {
    struct qv_engine_config cfg;
    char root[1024];
    struct qv_engine_hooks hooks;
    qv_monitor *mon;
    uint64_t budget;
    _Atomic uint64_t mem_used;

    pthread_rwlock_t reg_lock;
    int n_models;                /* Sorted by name. Written under ctl_mu and reg_lock. */
    struct qv_model **models;

    pthread_mutex_t ctl_mu;
    pthread_mutex_t mem_mu;      /* the memory budget's check-and-reserve (loads run in parallel) */

    pthread_mutex_t qlock;
    pthread_cond_t work_cond;
    qv_version *run_head, *run_tail; /* Guarded by qlock. */
    _Atomic bool stopping;           /* Written under qlock; read without it by the
                                      * lock-free inline path (a hint there). */
    _Atomic bool has_runnable;       /* run_head != NULL, for a spinning worker */
    _Atomic bool spinner;            /* one idle worker is polling for work */
    uint64_t spin_ns;                /* how long an idle worker polls before sleeping */
    uint64_t evict_idle_ns;          /* idle time before a version may be evicted */
    uint64_t inline_ns;              /* inline threshold on compute p99; 0: never inline */
    int bg_limit;                    /* background lane capacity */
    int n_workers;
    pthread_t *workers;

    /* Background lane (shadow traffic). Guarded by qlock. */
    struct qv_infer_req *bg_head, *bg_tail;
    int bg_len;
    pthread_cond_t bg_cond;
    pthread_t bg_thread;
    bool bg_started;

    pthread_t ctl_thread;
    bool ctl_started;
    _Atomic bool ctl_stop;
    int wake_fd;                 /* eventfd: drains finished, stop */
    int inotify_fd;              /* -1 when not watching */
};

/* engine.c */
qv_version *qv__version_new(qv_engine *e, const char *model, int64_t number);
void qv__version_unref(qv_version *v);
void qv__backend_states_free(qv_version *v);
/* Sets v's state and reason (under reg_lock), logs, and calls the hook
 * outside every lock; silent for a pending generation. */
void qv__set_state(qv_engine *e, qv_version *v, enum qv_version_state st, const char *reason);
/* READY -> DRAINING in one step under reg_lock; false if v was not READY
 * (another thread drained, evicted or replaced it first). */
bool qv__drain_if_ready(qv_engine *e, qv_version *v, const char *reason);
void qv__engine_wake(qv_engine *e);
/* A hold on v's object and backend state, without the in-flight gauge. */
void qv__version_get(qv_version *v);
void qv__version_put(qv_version *v);
struct qv_model *qv__find_model_locked(qv_engine *e, const char *name); /* reg_lock held */
qv_version *qv__find_version_locked(struct qv_model *m, int64_t number); /* reg_lock held */

/* lifecycle.c -- ctl_mu held (or the model's reconciling thread) */
int qv__load_version(qv_engine *e, struct qv_model *m, qv_version *v, bool may_evict,
                     struct qv_diag *d);
void qv__drain_version(qv_engine *e, qv_version *v, const char *why);
void qv__unload_now(qv_engine *e, qv_version *v, const char *reason);
void qv__finish_drains(qv_engine *e); /* ctl_mu held, no parallel reconcile */

/* memory.c */
bool qv__make_room(qv_engine *e, qv_version *loading, uint64_t need, bool may_evict, char *why,
                   size_t len); /* mem_mu held */
bool qv__fits_now(qv_engine *e, const qv_version *v);

/* reconcile.c -- ctl_mu held */
int qv__sync_locked(qv_engine *e);
void qv__retry_evicted(qv_engine *e);
void qv__watch_dir(qv_engine *e, const char *path);

/* batcher.c -- qlock held for the first two */
int64_t qv__batch_gather_locked(qv_version *v, int64_t max, struct qv_infer_req **out,
                                int *count);
bool qv__batch_is_preferred(const qv_version *v, int64_t rows);
int qv__engine_infer_batch(qv_version *v, void *state, struct qv_infer_req **reqs, int n);

/* worker.c */
int qv__engine_workers_start(qv_engine *e);
void qv__engine_workers_stop(qv_engine *e);

#endif /* QV_ENGINE_INT_H */
