/* SPDX-License-Identifier: MIT
 *
 * engine/engine.h -- the versions that are loaded and the work that runs on
 * them: version lifecycle and policies, hot reload from the repository,
 * refcounted versions, bounded per-version queues, dynamic batching, worker
 * threads and a memory budget.
 *
 * Lifetimes. A version record lives while its directory exists (or while a
 * request still holds it). A request acquires a READY version with
 * qv_engine_acquire() and holds it until its response is written
 * (qv_version_release()); unloading marks the version DRAINING, which stops
 * new acquisitions, and the backend state is freed only when the last holder
 * has released it. A swap is make-before-break: a new version is READY before
 * an old one drains.
 *
 * Threads. Acquire, submit and release: any thread, no blocking on inference.
 * Workers call each request's done() on a worker thread. Control functions
 * (load, unload, sync): any thread; they are serialized among themselves and
 * may block while a model loads.
 */
#ifndef QV_ENGINE_H
#define QV_ENGINE_H

#include "../backend/backend.h"
#include "../monitor/monitor.h"
#include "../repo/repo.h"

typedef struct qv_engine qv_engine;
typedef struct qv_version qv_version;

enum qv_version_state {
    QV_STATE_LOADING,
    QV_STATE_READY,
    QV_STATE_DRAINING,
    QV_STATE_UNLOADED,
    QV_STATE_UNAVAILABLE,
};
const char *qv_version_state_name(enum qv_version_state st);

struct qv_engine_config {
    const char *repo_root;
    int workers;            /* worker threads; 0: one per core */
    uint64_t memory_budget; /* bytes for all loaded versions; 0: half the machine's RAM */
    int poll_ms;            /* repository rescan interval; 0: 2000 */
    bool watch;             /* inotify on the repository (rescan soon after a change) */
    bool explicit_mode;     /* load only on API request (Triton's explicit model control) */
    int spin_us;            /* an idle worker polls this long before sleeping; -1: 0, 0: 50 */
    int evict_idle_ms;      /* a version idle this long may be evicted for memory; 0: 10000 */
    int inline_us;          /* a version whose recent compute p99 is under this runs requests
                             * on the submitting thread (see qv_engine_submit); 0: 100, -1: never */
    int bg_limit;           /* shadow copies the background lane holds; 0: 16 */
};

/* Called (under no engine lock) on every state change, from the thread that
 * made it. The server records them in the store. */
struct qv_engine_hooks {
    void (*version_state)(void *ud, const char *model, int64_t version, const char *sha256,
                          enum qv_version_state st, const char *reason);
    /* Optional: called during a load with the artifact's SHA-256 (hex) before the backend
     * loads it; a non-zero return refuses the version (UNAVAILABLE, reason = why). Cluster
     * mode uses it to refuse an artifact that differs from the one the cluster recorded. */
    int (*check_artifact)(void *ud, const char *model, int64_t version, const char *sha256,
                          char *why, size_t why_len);
    void *ud;
};

int qv_engine_create(const struct qv_engine_config *cfg, const struct qv_engine_hooks *hooks,
                     qv_monitor *mon, qv_engine **out, struct qv_diag *d);
/* Loads what the repository and policies ask for (synchronously), then starts
 * the workers and the control thread (watching and reloading). */
int qv_engine_start(qv_engine *e, struct qv_diag *d);
/* Stops the control thread, finishes queued requests, unloads everything. */
void qv_engine_destroy(qv_engine *e);

/* ---- Requests ---- */

struct qv_infer_req {
    /* In: inputs in any order; qv_engine_prepare() orders and checks them. */
    int n_inputs;
    struct qv_tensor inputs[QV_MAX_IO];
    int64_t rows;                       /* set by qv_engine_prepare */
    /* Out, set before done(): status QV_OK and outputs, or an error in diag. */
    int status;
    struct qv_diag diag;
    int n_outputs;
    struct qv_tensor outputs[QV_MAX_IO];
    uint64_t t_submit, t_start, t_done; /* monotonic ns */
    uint32_t batch_size;                /* rows in the backend call that ran it */
    void (*done)(struct qv_infer_req *r);
    void *ud;
    /* In: the caller lets qv_engine_submit run r on the calling thread (then
     * done(r) is called before submit returns). */
    bool may_inline;
    bool ran_inline;                    /* out: it did */
    struct qv_infer_req *next;          /* engine-private queue link */
    qv_version *bg_version;             /* engine-private */
};
void qv_infer_req_fini(struct qv_infer_req *r); /* frees inputs and outputs */

/* Finds a READY version and holds it for the caller. version 0 means the
 * model's default (the highest READY version). QV_ENOENT for an unknown model
 * or version, QV_EBUSY (with the reason) for a version that is not READY yet
 * (LOADING, DRAINING: worth a retry) and QV_EUNAVAIL for one that is
 * UNAVAILABLE (it waits for a change to the repository). */
int qv_engine_acquire(qv_engine *e, const char *model, int64_t version, qv_version **out,
                      struct qv_diag *d);
void qv_version_release(qv_version *v); /* NULL is a no-op */
qv_version *qv_version_hold(qv_version *v); /* one more hold on an acquired version */

/* Checks r's inputs against v's signature: names, datatypes, shapes, batch
 * limit. Reorders them into signature order and sets r->rows. QV_EINVAL with
 * a diag naming the field. */
int qv_engine_prepare(const qv_version *v, struct qv_infer_req *r, struct qv_diag *d);
/* A cheap look, without the queue's lock: is v's queue full now? A caller
 * can refuse a request at once instead of preparing it; qv_engine_submit
 * still decides. Any thread. */
bool qv_engine_is_full(const qv_version *v);
/* Queues r on v. QV_OK: done(r) will be called once, on a worker thread.
 * QV_EOVERLOAD when v's queue is full (done is not called).
 *
 * Inline execution: when r->may_inline is set, v does not batch (or batches
 * without a queue delay), its queue is empty, an instance is free and the p99 of v's recent compute times is under
 * the engine's inline threshold, r runs at once on the calling thread and
 * done(r) is called before submit returns QV_OK (r->ran_inline set). The run
 * holds one of v's instances like a worker's call, so v's concurrency is never
 * exceeded, and a version that gets slow goes back to the workers by itself. */
int qv_engine_submit(qv_version *v, struct qv_infer_req *r, struct qv_diag *d);
/* Queues r on the engine's background lane: one low-priority thread that runs
 * shadow copies, so that a slow or failing shadow version never holds a
 * worker that primary traffic needs. Bounded: QV_EOVERLOAD when full (the
 * copy is dropped; done is not called). */
int qv_engine_submit_background(qv_version *v, struct qv_infer_req *r, struct qv_diag *d);
/* Runs r on v on the calling thread (warm-up, tests, the CLI). */
int qv_engine_run_inline(qv_version *v, struct qv_infer_req *r);

const char *qv_version_model(const qv_version *v);
int64_t qv_version_number(const qv_version *v);
const struct qv_signature *qv_version_signature(const qv_version *v);
qv_vstats *qv_version_stats(const qv_version *v);

/* For the router: is this version READY now? Any thread. */
bool qv_engine_is_ready(qv_engine *e, const char *model, int64_t version);
/* READY versions of a model, ascending; returns how many (at most max). */
int qv_engine_ready_versions(qv_engine *e, const char *model, int64_t *out, int max);

/* ---- Control ---- */

int qv_engine_sync(qv_engine *e);                       /* rescan the repository now */
int qv_engine_load_model(qv_engine *e, const char *model, struct qv_diag *d);
int qv_engine_unload_model(qv_engine *e, const char *model, struct qv_diag *d);
int qv_engine_load_version(qv_engine *e, const char *model, int64_t v, struct qv_diag *d);
int qv_engine_unload_version(qv_engine *e, const char *model, int64_t v, struct qv_diag *d);

/* ---- Introspection ---- */

struct qv_version_info {
    int64_t version;
    enum qv_version_state state;
    char reason[256];
    char sha256[QV_SHA256_HEX];
    uint64_t loaded_at_ms;   /* wall clock; 0 if never loaded */
    uint64_t memory_bytes;
    int queue_depth, inflight;
};

struct qv_model_info {
    char name[QV_MODEL_NAME_MAX];
    char backend[32];
    char problem[256];       /* config error, "" if none */
    /* The repository asks for it: not unloaded through the API, and (in
     * explicit model control) a version loaded, loading, or whose load
     * through the API failed. */
    bool asked_for;
    struct qv_signature sig; /* of the default version, else as declared */
    int max_batch_size;
    double latency_slo_ms;
    char *alerts_json;       /* copy of config "alerts" or NULL; freed by qv_model_info_free */
    int n_versions;
    struct qv_version_info *versions; /* ascending */
};

/* Fills info for one model (QV_ENOENT if unknown). Free with qv_model_info_free. */
int qv_engine_model_info(qv_engine *e, const char *model, struct qv_model_info *info);
void qv_model_info_free(struct qv_model_info *info);
/* Names of every known model, sorted; *names is one allocation (free it). */
int qv_engine_model_names(qv_engine *e, char (**names)[QV_MODEL_NAME_MAX], int *n);
uint64_t qv_engine_memory_used(qv_engine *e);
uint64_t qv_engine_memory_budget(qv_engine *e);
bool qv_engine_is_ready_all(qv_engine *e); /* every version that should be READY is */

#endif /* QV_ENGINE_H */
