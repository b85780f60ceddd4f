/* SPDX-License-Identifier: MIT
 *
 * engine/engine_int.h -- private to src/engine/: the version, model and
 * engine records shared by engine.c (registry, lifecycle, control) and
 * worker.c (queues, batching, workers).
 *
 * Locks, outermost first: ctl_mu (one control operation at a time), mem_mu
 * (the memory budget: check and reserve, evictions), reg_lock
 * (the registry: models, version lists, states, reasons), qlock (every
 * version's queue and the runnable list). No backend call and no hook runs
 * under reg_lock or qlock.
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
    _Atomic uint64_t last_used_ns;
    _Atomic uint64_t batches;   /* backend calls, for sampling their CPU time */

    /* Queue. Guarded by e->qlock. */
    struct qv_infer_req *head, *tail;
    int qlen;
    _Atomic int queued;         /* qlen, readable without the lock (a hint) */
    int active;                 /* backend calls running */
    bool listed;                /* on the runnable list */
    bool batch_waiting;         /* a worker waits on batch_cond for more rows */
    bool *state_busy;
    pthread_cond_t batch_cond;
    qv_version *run_next;

    /* Control flags. Guarded by ctl_mu; while a sync reconciles models in
     * parallel, by the one thread that reconciles this version's model. */
    bool on_disk;
    bool explicit_load, explicit_unload;
    bool failed;                /* the last load failed; retried only on request */
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
    long long cfg_stamp;         /* mtime+size of config.json when parsed */
    int cfg_gen;                 /* one more per accepted change that versions load with */
    char cfg_change[200];        /* that change, "max_batch_size 64 -> 0" */
    bool on_disk, explicit_unload;
    bool unreadable;             /* the last scan could not read the directory */
    int n_versions;              /* Guarded by reg_lock. Ascending by number. */
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
    int n_models;                /* Guarded by reg_lock. Sorted by name. */
    struct qv_model **models;

    pthread_mutex_t ctl_mu;
    pthread_mutex_t mem_mu;      /* the memory budget's check-and-reserve (loads run in parallel) */

    pthread_mutex_t qlock;
    pthread_cond_t work_cond;
    qv_version *run_head, *run_tail; /* Guarded by qlock. */
    bool stopping;                   /* Guarded by qlock. */
    _Atomic bool has_runnable;       /* run_head != NULL, for a spinning worker */
    _Atomic bool spinner;            /* one idle worker is polling for work */
    uint64_t spin_ns;                /* how long an idle worker polls before sleeping */
    uint64_t evict_idle_ns;          /* idle time before a version may be evicted */
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

/* worker.c */
int qv__engine_workers_start(qv_engine *e);
void qv__engine_workers_stop(qv_engine *e);
int qv__engine_infer_batch(qv_version *v, void *state, struct qv_infer_req **reqs, int n);
/* engine.c */
void qv__engine_wake(qv_engine *e);
/* A hold on v's object and backend state, without the in-flight gauge. */
void qv__version_get(qv_version *v);
void qv__version_put(qv_version *v);

#endif /* QV_ENGINE_INT_H */
