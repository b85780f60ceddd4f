/* SPDX-License-Identifier: MIT
 *
 * router/router.h -- splits the inference traffic of a model among its versions.
 *
 * The router knows model names and int64 version numbers only. Whether a version
 * can answer is asked through a resolver callback (the engine provides it). Each
 * model has at most one route: an immutable, refcounted snapshot built from a JSON
 * route document (see docs/routing.md). Writers build a whole new snapshot and swap
 * one pointer under a write lock; a reader refs the current snapshot under a read
 * lock held for a few instructions, so a pick sees the old route or the new one,
 * never a mix. A model without a route gets the default: the highest READY version.
 *
 * Also here: the feedback join (request id -> version that served it), the bandit
 * state, score computation for the score policy (score.c) and the select/agreement
 * helpers for compare and shadow traffic (compare.c).
 */
#ifndef QV_ROUTER_H
#define QV_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../monitor/monitor.h"
#include "../util/util.h"

typedef struct qv_router qv_router; /* opaque; defined in router.c */
typedef struct qv_route qv_route;   /* opaque parsed route document; defined in router_int.h */

#define QV_ROUTE_MAX_TARGETS 16 /* entries in "weights" */
#define QV_ROUTE_MAX_LABELS 32  /* entries in "labels" */
#define QV_ROUTE_MAX_SHADOW 4   /* entries in "shadow" */
#define QV_ROUTE_MAX_COMPARE 8  /* entries in "compare.targets" */
#define QV_ROUTE_NAME_MAX 64    /* label and sticky key names: bytes with the NUL */
#define QV_ROUTER_MODEL_MAX 128 /* model names: bytes with the NUL */
#define QV_ROUTER_MAX_SCORES 32 /* versions whose last scores are kept per model */
#define QV_ROUTER_ID_MAX 128    /* feedback request ids: bytes with the NUL */
#define QV_ROUTER_MODEL_MAX 128 /* model names in the feedback ring: bytes with the NUL */

enum qv_policy {
    QV_POLICY_DEFAULT, /* no route, or "policy": "default": the highest READY version */
    QV_POLICY_PINNED,
    QV_POLICY_WEIGHTED,
    QV_POLICY_STICKY,
    QV_POLICY_COMPARE,
    QV_POLICY_SCORE,
    QV_POLICY_BANDIT,
};

enum qv_select {
    QV_SELECT_FIRST,
    QV_SELECT_MEAN,
    QV_SELECT_MAJORITY,
    QV_SELECT_BEST_SCORE,
};

enum qv_sticky_kind {
    QV_STICKY_NONE,
    QV_STICKY_HEADER,    /* key = value of an HTTP request header */
    QV_STICKY_PARAMETER, /* key = value of a request parameter */
};

const char *qv_policy_name(enum qv_policy p); /* "weighted", ... Any thread. Never NULL. */
const char *qv_select_name(enum qv_select s); /* "best_score", ... Any thread. Never NULL. */

/* The engine's view of versions. is_ready is required wherever a resolver is
 * taken; highest_ready is optional: when set, a default pick fills the version in
 * (0 when the model has no READY version). Both are called from any thread, on the
 * pick path too, so they must be cheap and must not call back into the router. */
struct qv_resolver {
    bool (*is_ready)(void *ud, const char *model, int64_t version);
    int64_t (*highest_ready)(void *ud, const char *model); /* (optional) */
    void *ud;
};

/* ---- Route documents ---- */

/* Parse and validate a route document for 'model'. Targets (weights keys, pinned
 * "target", shadow and compare targets) are version numbers ("3" or 3) or label
 * names; label names must not be all digits. If 'res' is not NULL, every version a
 * target refers to must be READY (labels no target uses are not checked). On success *out owns the
 * route (qv_route_free). On error returns QV_EINVAL and d names the field, e.g. "weights.canary:
 * unknown label"; *out is untouched. Any thread. */
int qv_route_parse(const char *json_text, const char *model, const struct qv_resolver *res,
                   qv_route **out, struct qv_diag *d);
/* Canonical JSON text of the route (fixed key order, targets as strings, weights as
 * numbers with at most two decimals). *json is malloc'ed; caller frees. QV_ENOMEM. */
int qv_route_to_json(const qv_route *rt, char **json);
enum qv_policy qv_route_policy(const qv_route *rt); /* Any thread. */
void qv_route_free(qv_route *rt);                   /* NULL is a no-op. */

/* ---- The router ---- */

struct qv_router_config {
    struct qv_resolver resolver; /* used at pick time to skip versions that are not READY */
    size_t feedback_capacity;    /* entries in the feedback ring; 0: 65536 */
};

/* Create a router. cfg (NULL: all defaults, no resolver, so every version counts as
 * READY) is copied. Returns 0; aborts on OOM like any control-plane allocation.
 * Main thread. */
int qv_router_create(const struct qv_router_config *cfg, qv_router **out);
/* The resolver the router was created with, for callers that set routes and
 * want the same READY checks (the API, the controller). Any thread. */
const struct qv_resolver *qv_router_resolver(const qv_router *r);
void qv_router_destroy(qv_router *r); /* NULL is a no-op. No call may be running. */

/* Replace the route of 'model' with the document 'json' (validated as in
 * qv_route_parse with 'res'; NULL res skips the READY check, e.g. when restoring
 * routes at boot). Atomic: picks see the old route or the new one. Bandit statistics
 * of versions kept by the new route survive. QV_EINVAL + d on a bad document.
 * HTTP or control thread. */
int qv_router_set_route(qv_router *r, const char *model, const char *json,
                        const struct qv_resolver *res, struct qv_diag *d);
/* A change that must be recorded before it takes effect. fn is called under the
 * router's writer lock, after the new route is validated and before it is
 * published, with its canonical JSON (NULL when the route is being cleared); a
 * non-zero return (an error code, with d filled) cancels the change: nothing is
 * published and the caller gets that error. fn must not call back into the router. */
struct qv_route_commit {
    int (*fn)(void *ud, const char *model, const char *canonical, struct qv_diag *d);
    void *ud;
};

/* The same as qv_router_set_route, qv_router_clear, qv_router_set_label and
 * qv_router_delete_label, with a commit hook (NULL: none), so that a change the
 * store could not save is never applied. HTTP or control thread. */
int qv_router_set_route_commit(qv_router *r, const char *model, const char *json,
                               const struct qv_resolver *res, const struct qv_route_commit *commit,
                               struct qv_diag *d);
int qv_router_clear_commit(qv_router *r, const char *model, const struct qv_route_commit *commit,
                           struct qv_diag *d);
int qv_router_set_label_commit(qv_router *r, const char *model, const char *label, int64_t version,
                               const struct qv_resolver *res, const struct qv_route_commit *commit,
                               struct qv_diag *d);
int qv_router_delete_label_commit(qv_router *r, const char *model, const char *label,
                                  const struct qv_route_commit *commit, struct qv_diag *d);

/* Canonical JSON of the current route into *json (malloc'ed; caller frees).
 * QV_ENOENT when the model has no route. Any thread. */
int qv_router_get_route(qv_router *r, const char *model, char **json);
/* Drop the route of 'model' (back to the default). QV_ENOENT when it had none.
 * HTTP or control thread. */
int qv_router_clear(qv_router *r, const char *model);

/* Point 'label' at 'version' in the route's "labels". A model without a route gets
 * the document {"policy": "default", "labels": {label: version}}, which keeps the
 * default routing. The new route is validated with 'res' (NULL: no READY check) and
 * published atomically. QV_EINVAL + d on a bad label name or a version that is not
 * READY. HTTP or control thread. */
int qv_router_set_label(qv_router *r, const char *model, const char *label, int64_t version,
                        const struct qv_resolver *res, struct qv_diag *d);
/* Remove 'label'. QV_ENOENT + d if absent; QV_EINVAL + d if the route still refers to
 * it ("labels.stable: still used by target"). HTTP or control thread. */
int qv_router_delete_label(qv_router *r, const char *model, const char *label, struct qv_diag *d);
/* Version a label points at, or QV_ENOENT. Any thread. */
int qv_router_get_label(qv_router *r, const char *model, const char *label, int64_t *version);

/* ---- Picking (hot path: any thread, no allocation) ---- */

/* Input of one pick. All fields optional; zero-initialize. */
struct qv_pick_in {
    /* Sticky key: if has_key, key (NUL-terminated) or, when key is NULL, key_hash.
     * If has_key is false and get_key is set, the router asks get_key for the
     * header or parameter the sticky route names (NULL: not present). */
    bool has_key;
    const char *key;
    uint64_t key_hash;
    const char *(*get_key)(void *ud, enum qv_sticky_kind kind, const char *name);
    void *get_key_ud;
    /* Per-request randomness (e.g. a request counter or an RNG draw) for the
     * weighted fallback of a sticky route without a key, not-READY
     * renormalization and shadow percent decisions. 0: the router draws its own. */
    uint64_t rand;
};

/* Result of one pick. */
struct qv_pick {
    enum qv_policy policy;
    int64_t version; /* the primary version; 0 with is_default and no highest_ready */
    bool is_default; /* no route, or no routed version READY: the caller serves the
                      * highest READY version (filled in when the resolver can) */
    int n_shadow;    /* shadow versions whose percent decision said "send" */
    int64_t shadow[QV_ROUTE_MAX_SHADOW];
    int n_compare; /* compare policy: READY versions in document order; the
                    * primary is compare[0] */
    int64_t compare[QV_ROUTE_MAX_COMPARE];
    double compare_score[QV_ROUTE_MAX_COMPARE]; /* last P of each, NAN if unknown */
    enum qv_select select;
    uint64_t generation; /* of the snapshot used; grows with every publish */
};

/* Pick the version(s) for one request to 'model'. Always succeeds (returns 0);
 * out->is_default says when the router had nothing to say. Versions that are not
 * READY (router resolver) are skipped and the rest renormalized. Any thread. */
int qv_router_pick(qv_router *r, const char *model, const struct qv_pick_in *in,
                   struct qv_pick *out);

/* ---- Score policy ---- */

/* Parameters of the score policy ("score" in the route document). */
struct qv_score_cfg {
    double w_latency, w_resource, w_error; /* w1, w2, w3 >= 0 */
    double latency_slo_ms;                 /* > 0 */
    double min_weight;                     /* floor for every version, points of 100 */
    uint64_t min_requests;                 /* each version needs this many in the window */
    double threshold;                      /* move only if some weight changes by more */
    double step;                           /* fraction of the way to the target, (0, 1] */
};
void qv_score_cfg_default(struct qv_score_cfg *c);

/* One version's score over a window: P = w1*T + w2*R + w3*E, lower is better.
 * T = p95_ms / latency_slo_ms; R = n * (cpu share + memory share) / 2 across the n
 * versions scored together (1.0 = average use); E = error_rate. */
struct qv_score_terms {
    int64_t version;
    uint64_t requests;
    double t, r, e, p;
};

/* Terms for n versions from their windows. Pure; any thread. */
void qv_score_compute(const struct qv_score_cfg *c, const struct qv_window *w, int n,
                      struct qv_score_terms *terms);
/* Next weights (points, sum 100) from the terms and the current weights: the target
 * is proportional to 1/P with every version at least min_weight; nothing moves
 * (returns false, next = cur) unless every version has min_requests and some target
 * differs from cur by more than threshold; then each weight moves 'step' of the way.
 * Pure; any thread. */
bool qv_score_next_weights(const struct qv_score_cfg *c, const struct qv_score_terms *t,
                           const double *cur, int n, double *next);

/* Recompute scores of 'model' from the windows of 'versions' (n of them, any n >= 0),
 * remember them (for best_score and qv_router_get_scores; up to QV_ROUTER_MAX_SCORES,
 * the versions the route lists first), and publish a snapshot carrying them; for the
 * score policy the snapshot has the new weights when they move. Versions the route
 * does not list are scored but get no weight; while a listed version has no window,
 * weights stay. Works for models without a route too (scores only; the default score
 * parameters). QV_EINVAL on bad arguments. Control thread. */
int qv_router_update_scores(qv_router *r, const char *model, const int64_t *versions,
                            const struct qv_window *w, int n);
/* As qv_router_update_scores, but the score policy moves the route's weights only when
 * move is true (in a cluster, only on the node running the controller; the others keep
 * the terms for the stats endpoint and get the weights with the shared route). *moved
 * (may be NULL) tells whether the weights moved. */
int qv_router_update_scores_ex(qv_router *r, const char *model, const int64_t *versions,
                               const struct qv_window *w, int n, bool move, bool *moved);
/* Copy up to max of the last computed terms into terms; returns how many (0 if none).
 * Control or HTTP thread (takes the writers' lock). */
int qv_router_get_scores(qv_router *r, const char *model, struct qv_score_terms *terms, int max);

/* ---- Bandit ---- */

/* Reward in [0, 1] (clamped) for 'version' of 'model': Thompson adds it to alpha and
 * 1 - reward to beta; UCB1 adds it to the arm's sum. QV_ENOENT when the route is not a
 * bandit or does not list the version. Any thread. */
int qv_router_feedback(qv_router *r, const char *model, int64_t version, double reward);
/* Export the bandit arms as JSON text {"algorithm": .., "arms": [{"version": 2,
 * "alpha": .., "beta": .., "n": .., "sum": ..}]} (malloc'ed; caller frees). */
int qv_router_bandit_state_get(qv_router *r, const char *model, char **json);
/* Import arms exported by qv_router_bandit_state_get; arms of versions the route
 * does not list are ignored. QV_EINVAL + d on malformed text, QV_ENOENT without a
 * bandit route. */
int qv_router_bandit_state_set(qv_router *r, const char *model, const char *json,
                               struct qv_diag *d);

/* ---- Feedback join ---- */

/* Remember that request 'id' of 'model' was served by 'version', so a later feedback
 * call can find it. Bounded FIFO: the oldest entry is evicted when full (rings of
 * 2 * 4096 entries and more are split in up to 16 shards, each its own FIFO and lock,
 * chosen by a keyed hash of the id). Ids are hashed with SipHash-1-3 under a random
 * key, and a hash chain holds at most 16 entries (the oldest of a full chain is
 * dropped), so chosen ids cannot make the walks long. QV_EINVAL when
 * id (QV_ROUTER_ID_MAX) or model (QV_ROUTE_NAME_MAX, shorter than route model names)
 * is empty or too long. Any thread (one short lock). */
int qv_router_remember(qv_router *r, const char *id, const char *model, int64_t version);
/* Find request 'id'. model_out (QV_ROUTER_MODEL_MAX bytes, may be NULL) and *version
 * get what was remembered. QV_ENOENT when unknown or evicted. Any thread. */
int qv_router_lookup(qv_router *r, const char *id, char *model_out, int64_t *version);
/* Records what request 'id' answered: the class of its first output (argmax,
 * or a threshold of 0.5 for one value), so that a label feedback can be
 * scored. QV_ENOENT when the id is not remembered. Any thread. */
int qv_router_set_outcome(qv_router *r, const char *id, int cls);
/* qv_router_lookup plus the recorded class (*cls -1 when none was recorded). */
int qv_router_lookup_outcome(qv_router *r, const char *id, char *model_out, int64_t *version,
                             int *cls);
/* Accept the one feedback of request 'id' of 'model': the first claim of a
 * remembered request succeeds, every later one gets QV_ECONFLICT, so that one
 * request id cannot steer the bandit twice. QV_ENOENT when the id is unknown,
 * evicted, or was served for another model. A request remembered again under the
 * same id (a new inference) can be claimed again. Any thread. */
int qv_router_feedback_claim(qv_router *r, const char *id, const char *model);
/* Undo a claim whose feedback could not be recorded after all (cluster mode: the store was
 * unreachable), so that the client may send it again. Any thread. */
void qv_router_feedback_unclaim(qv_router *r, const char *id, const char *model);

/* Cluster mode: requests answered by other nodes. fn (ud, id, model_out of
 * QV_ROUTER_MODEL_MAX bytes, *version, *cls) returns 0 when another node answered
 * 'id'; qv_router_lookup_outcome and qv_router_feedback_claim then take that entry
 * into this ring when they do not know the id. fn runs on the caller's thread (an HTTP
 * feedback call, never inference) with no router lock held. Set once, before traffic. */
typedef int (*qv_router_fb_source_fn)(void *ud, const char *id, char *model_out,
                                      int64_t *version, int *cls);
void qv_router_set_feedback_source(qv_router *r, qv_router_fb_source_fn fn, void *ud);

struct qv_router_fb_entry {
    char id[QV_ROUTER_ID_MAX];
    char model[QV_ROUTER_MODEL_MAX];
    int64_t version;
    int cls; /* -1: none recorded */
    uint64_t ts_ms;
};
/* Copy up to max ring entries remembered since the last export and at or before
 * cutoff_ms (wall ms; younger entries wait for their outcome) into out, oldest first
 * per shard; returns how many. Entries overwritten before an export are skipped. One
 * exporting thread at a time. */
size_t qv_router_feedback_export(qv_router *r, uint64_t cutoff_ms, struct qv_router_fb_entry *out,
                                 size_t max);

/* ---- Compare and shadow helpers (compare.c) ---- */

/* Choose among n outputs of several versions for the same request, each a float
 * array of rows*cols values (row-major). For FIRST and BEST_SCORE, *chosen is the
 * index of the output to return (BEST_SCORE: lowest finite scores[i], else 0; scores
 * may be NULL) and combined is untouched. For MEAN (element-wise mean) and MAJORITY
 * (per row: each version votes the row's class -- argmax when cols > 1, value >= 0.5
 * when cols == 1 -- and the row of the first version voting the winning class is
 * copied; ties go to the class voted first), combined (rows*cols floats) is filled
 * and *chosen = -1. QV_EINVAL when n < 1 (or n > 32 for MAJORITY). Any thread. */
int qv_compare_select(enum qv_select mode, const float *const *outs, int n, size_t rows,
                      size_t cols, const double *scores, float *combined, int *chosen);

/* Agreement of a primary output and a shadow output of the same shape. */
struct qv_agreement {
    size_t rows;
    size_t same_class;                  /* rows where both give the same class */
    double agree_rate;                  /* same_class / rows; 1 when rows == 0 */
    double mean_abs_diff, max_abs_diff; /* over all rows*cols values */
};
void qv_compare_agreement(const float *a, const float *b, size_t rows, size_t cols,
                          struct qv_agreement *out);

#endif /* QV_ROUTER_H */
